/* beneath.c - see beneath.h. */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* 0: not tried yet, 1: openat2 works, -1: the kernel has none. */
static atomic_int have_openat2;

int beneath_open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	if (path[0] == '/')
		return -EXDEV;
	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		const char *rest = p + n;
		while (*rest == '/')
			rest++;
		int last = *rest == '\0';
		int want_dir = last && p[n] == '/'; /* "dir/": must be a directory */
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			close(dfd);
			return -EXDEV;
		}
		if (n == 0 || (n == 1 && p[0] == '.')) {
			if (!last) {
				p = rest;
				continue;
			}
			/* the directory itself, opened with the caller's flags */
			int fd = openat(dfd, ".", (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC, mode);
			int e = errno;
			close(dfd);
			return fd < 0 ? -e : fd;
		}
		char name[NAME_MAX + 1];
		if (n > NAME_MAX) {
			close(dfd);
			return -ENAMETOOLONG;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		int fd;
		struct stat st;
		if (!last || (flags & O_PATH)) {
			/* O_PATH | O_NOFOLLOW gives the symlink itself: look, then refuse it. */
			fd = openat(dfd, name, (last ? flags : O_PATH) | O_NOFOLLOW | O_CLOEXEC, mode);
			if (fd >= 0 && fstat(fd, &st) < 0) {
				int e = errno;
				close(fd);
				close(dfd);
				return -e;
			}
			if (fd >= 0 && S_ISLNK(st.st_mode)) {
				close(fd);
				close(dfd);
				return -ELOOP;
			}
			if (fd >= 0 && (!last || want_dir) && !S_ISDIR(st.st_mode)) {
				close(fd);
				close(dfd);
				return -ENOTDIR;
			}
		} else {
			fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0),
				    mode);
			/* O_DIRECTORY on a symlink says ENOTDIR; openat2 says ELOOP. */
			if (fd < 0 && errno == ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				errno = ELOOP;
		}
		int e = errno;
		close(dfd);
		if (fd < 0)
			return -e;
		if (last)
			return fd;
		dfd = fd;
		p = rest;
	}
}

/* A ".." component, which openat2 would allow while it stays beneath. */
static int has_dotdot(const char *p)
{
	for (; *p; p += strcspn(p, "/"), p += *p == '/')
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return 1;
	return 0;
}

int beneath_open(int dirfd, const char *path, int flags, mode_t mode)
{
	if (path[0] == '/' || has_dotdot(path))
		return -EXDEV;
	if (atomic_load(&have_openat2) >= 0) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_CLOEXEC),
			.mode = (flags & O_CREAT) ? (mode & 07777) : 0, /* openat2 refuses S_IFREG */
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		int fd = (int)syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof how);
		if (fd >= 0 || errno != ENOSYS) {
			atomic_store(&have_openat2, 1);
			return fd < 0 ? -errno : fd;
		}
		if (atomic_exchange(&have_openat2, -1) == 0)
			log_notice("openat2 is not available (ENOSYS): spool paths are resolved one "
				   "component at a time");
	}
	return beneath_open_walk(dirfd, path, flags, mode);
}
