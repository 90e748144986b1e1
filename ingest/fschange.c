/* fschange.c - see fschange.h. */
#include "fschange.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"

#define FSC_MASK                                                                            \
	(FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | \
	 FAN_MOVED_TO)
/* Past this many changed inodes between two walks the walk stats
 * everything anyway: the set is 16 MiB at most. */
#define FSC_MAX_INODES (1u << 20)
/* Past this many events in one fsc_read, events arrive faster than they
 * are read: give up on them until the next restart rather than spin. */
#define FSC_MAX_READ (1u << 16)
#define FSC_CACHE 64
#define FSC_HANDLE_MAX 128

/* Recently resolved handles: a file being written raises an event per
 * write() read, all naming the same handle. Compared whole, never by hash:
 * a wrong inode here would be a change not seen. A handle includes the
 * inode's generation, so a cached entry stays true. */
struct fsc_cached {
	int type;
	unsigned bytes;
	unsigned char h[FSC_HANDLE_MAX];
	uint64_t ino;
};

struct fsc {
	int fd;                       /* fanotify */
	int mfd;                      /* any descriptor on the filesystem, for open_by_handle_at */
	dev_t dev;
	uint64_t *set;                /* inode numbers; 0 = empty slot */
	size_t cap, n;
	int lost;
	uint64_t events;
	struct fsc_cached cache[FSC_CACHE];
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void lose(struct fsc *t, const char *why)
{
	if (!t->lost)
		log_info("filesystem change events incomplete (%s): the next walk stats every file",
			 why);
	t->lost = 1;
}

static int set_grow(struct fsc *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	uint64_t *s = calloc(cap, sizeof *s);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->set[i])
			continue;
		size_t j = mix(t->set[i]) & (cap - 1);
		while (s[j])
			j = (j + 1) & (cap - 1);
		s[j] = t->set[i];
	}
	free(t->set);
	t->set = s;
	t->cap = cap;
	return 0;
}

static void set_add(struct fsc *t, uint64_t ino)
{
	if (!ino)
		ino = ~0ull; /* not a real inode number on any of the filesystems allowed */
	if ((t->n + 1) * 2 > t->cap) {
		if (t->n >= FSC_MAX_INODES) {
			lose(t, "too many changed files between two walks");
			return;
		}
		if (set_grow(t) < 0) {
			lose(t, "out of memory");
			return;
		}
	}
	size_t j = mix(ino) & (t->cap - 1);
	while (t->set[j] && t->set[j] != ino)
		j = (j + 1) & (t->cap - 1);
	if (!t->set[j]) {
		t->set[j] = ino;
		t->n++;
	}
}

int fsc_changed(const struct fsc *t, uint64_t ino)
{
	if (!t->n)
		return 0;
	if (!ino)
		ino = ~0ull;
	for (size_t j = mix(ino) & (t->cap - 1); t->set[j]; j = (j + 1) & (t->cap - 1))
		if (t->set[j] == ino)
			return 1;
	return 0;
}

/* The inode a handle names: 0 and *gone when it no longer exists. */
static int resolve(struct fsc *t, struct file_handle *fh, uint64_t *ino)
{
	if (fh->handle_bytes > FSC_HANDLE_MAX)
		return -EOVERFLOW;
	uint64_t hh = (uint64_t)fh->handle_type;
	for (unsigned i = 0; i < fh->handle_bytes; i++)
		hh = (hh ^ fh->f_handle[i]) * 1099511628211ull;
	struct fsc_cached *c = &t->cache[mix(hh) % FSC_CACHE];
	if (c->bytes == fh->handle_bytes && c->type == fh->handle_type &&
	    memcmp(c->h, fh->f_handle, fh->handle_bytes) == 0) {
		*ino = c->ino;
		return 0;
	}
	int fd = open_by_handle_at(t->mfd, fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	if (st.st_dev != t->dev)
		return -EXDEV;
	*ino = (uint64_t)st.st_ino;
	c->type = fh->handle_type;
	c->bytes = fh->handle_bytes;
	memcpy(c->h, fh->f_handle, fh->handle_bytes);
	c->ino = *ino;
	return 0;
}

/* One event of len bytes at p, its metadata m. Records follow each other
 * unpadded (an event with a file id is not a multiple of 8 bytes long), so
 * every structure is copied out before it is read. */
static void one_event(struct fsc *t, const struct fanotify_event_metadata *m, const char *p,
		      size_t len)
{
	t->events++;
	if (m->mask & FAN_Q_OVERFLOW) {
		lose(t, "event queue overflow");
		return;
	}
	size_t off = m->metadata_len;
	int seen = 0;
	struct fanotify_event_info_header h;
	while (off + sizeof h <= len) {
		memcpy(&h, p + off, sizeof h);
		if (h.len < sizeof h || h.len > len - off)
			break;
		size_t fh_off = off + offsetof(struct fanotify_event_info_fid, handle);
		if (h.info_type == FAN_EVENT_INFO_TYPE_FID &&
		    fh_off + sizeof(struct file_handle) <= off + h.len) {
			struct {
				struct file_handle fh;
				unsigned char b[FSC_HANDLE_MAX];
			} fh;
			memcpy(&fh.fh, p + fh_off, sizeof fh.fh);
			size_t bytes = fh.fh.handle_bytes;
			int rc = -EOVERFLOW;
			uint64_t ino = 0;
			if (bytes <= FSC_HANDLE_MAX &&
			    fh_off + sizeof fh.fh + bytes <= off + h.len) {
				memcpy(fh.fh.f_handle, p + fh_off + sizeof fh.fh, bytes);
				rc = resolve(t, &fh.fh, &ino);
			}
			if (rc == 0) {
				set_add(t, ino);
			} else if (rc != -ESTALE && rc != -ENOENT && rc != -EXDEV) {
				/* ESTALE, ENOENT: gone, no name leads to it any more;
				 * EXDEV: another device of the filesystem (a btrfs
				 * subvolume), whose files are never trusted. */
				char why[96];
				snprintf(why, sizeof why, "cannot resolve a file handle: %s",
					 strerror(-rc));
				lose(t, why);
				return;
			}
			seen = 1;
		}
		off += h.len;
	}
	if (!seen)
		lose(t, "an event without a file id");
}

void fsc_read(struct fsc *t)
{
	char buf[64 * 1024];
	for (uint64_t first = t->events;;) {
		if (t->events - first > FSC_MAX_READ) {
			lose(t, "events arrive faster than they are read");
			return;
		}
		ssize_t n = read(t->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			lose(t, strerror(errno));
		if (n <= 0)
			return;
		struct fanotify_event_metadata m;
		for (size_t off = 0; off + sizeof m <= (size_t)n; off += m.event_len) {
			memcpy(&m, buf + off, sizeof m);
			if (m.event_len < sizeof m || m.event_len > (size_t)n - off) {
				lose(t, "a malformed event");
				break;
			}
			if (m.vers != FANOTIFY_METADATA_VERSION) {
				lose(t, "unknown fanotify event version");
				continue;
			}
			if (m.fd >= 0)
				close(m.fd); /* not expected with file ids */
			one_event(t, &m, buf + off, m.event_len);
		}
	}
}

static int local_fs(long type)
{
	switch ((unsigned long)type) {
	case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return 1;
	}
	return 0;
}

int fsc_open(const char *dir, struct fsc **out, char *why, size_t whylen)
{
	*out = NULL;
	struct fsc *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->fd = t->mfd = -1;
	int rc;
	struct statfs sf;
	struct stat st;
	t->mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->mfd < 0 || fstatfs(t->mfd, &sf) < 0 || fstat(t->mfd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (!local_fs(sf.f_type)) {
		rc = -EOPNOTSUPP;
		snprintf(why, whylen, "not a local filesystem this kernel sees every write to "
				      "(type 0x%lx)", (unsigned long)sf.f_type);
		goto fail;
	}
	t->dev = st.st_dev;
	t->fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK,
			      O_RDONLY | O_LARGEFILE);
	if (t->fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "fanotify: %s", strerror(errno));
		goto fail;
	}
	if (fanotify_mark(t->fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FSC_MASK, t->mfd, NULL) < 0) {
		rc = -errno;
		snprintf(why, whylen, "fanotify filesystem mark: %s", strerror(errno));
		goto fail;
	}
	/* Events name inodes by handle: check now that handles open, rather
	 * than find out at the first event. */
	struct {
		struct file_handle fh;
		unsigned char b[FSC_HANDLE_MAX];
	} h;
	h.fh.handle_bytes = FSC_HANDLE_MAX;
	int mnt;
	uint64_t ino;
	rc = name_to_handle_at(t->mfd, "", &h.fh, &mnt, AT_EMPTY_PATH) < 0 ? -errno : 0;
	if (rc == 0)
		rc = resolve(t, &h.fh, &ino);
	if (rc == 0 && ino != (uint64_t)st.st_ino)
		rc = -EIO;
	if (rc < 0) {
		snprintf(why, whylen, "file handles: %s", strerror(-rc));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	fsc_close(t);
	return rc;
}

void fsc_close(struct fsc *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	if (t->mfd >= 0)
		close(t->mfd);
	free(t->set);
	free(t);
}

uint64_t fsc_dev(const struct fsc *t) { return (uint64_t)t->dev; }
int fsc_complete(const struct fsc *t) { return !t->lost; }
uint64_t fsc_events(const struct fsc *t) { return t->events; }
size_t fsc_count(const struct fsc *t) { return t->n; }

void fsc_clear(struct fsc *t)
{
	if (t->n)
		memset(t->set, 0, t->cap * sizeof *t->set);
	t->n = 0;
}

void fsc_restart(struct fsc *t)
{
	fsc_read(t);
	fsc_clear(t);
	t->lost = 0;
}
