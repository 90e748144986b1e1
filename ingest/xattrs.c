/* xattrs.c - a file's user.* extended attributes as catalog metadata. */
#include "xattrs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "log.h"

/* Linux caps a value at 64 KiB (XATTR_SIZE_MAX). */
#define VALUE_MAX 65536

/* The whole name list: it may outgrow any fixed buffer (and change between
 * the size query and the read, hence the loop). */
static ssize_t list_names(int fd, char **out)
{
	for (int tries = 0; tries < 4; tries++) {
		ssize_t n = flistxattr(fd, NULL, 0);
		if (n <= 0) {
			*out = NULL;
			return n < 0 ? -errno : 0;
		}
		char *names = malloc((size_t)n);
		if (!names)
			return -ENOMEM;
		ssize_t got = flistxattr(fd, names, (size_t)n);
		if (got >= 0) {
			*out = names;
			return got;
		}
		int e = errno;
		free(names);
		if (e != ERANGE)
			return -e;
	}
	return -ERANGE;
}

int xa_import(struct cat *cat, int fd, const char *catpath)
{
	char *names;
	ssize_t n = list_names(fd, &names);
	if (n < 0) {
		if (n != -ENOTSUP)
			log_warn("%s: cannot list extended attributes: %s", catpath, strerror((int)-n));
		return (int)n;
	}
	char *val = n ? malloc(VALUE_MAX + 1) : NULL;
	int set = 0;
	for (ssize_t i = 0; val && i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *name = names + i;
		if (strncmp(name, "user.", 5) != 0 || strncmp(name, "user.lzfs.", 10) == 0)
			continue;
		ssize_t vl = fgetxattr(fd, name, val, VALUE_MAX);
		if (vl < 0) {
			log_warn("%s: cannot read extended attribute %s: %s", catpath, name,
				 strerror(errno));
			continue;
		}
		val[vl] = '\0';
		/* (cat_meta_set logs its own refusals: a NUL in the value, say) */
		if (cat_meta_set(cat, catpath, name + 5, val, NULL) == 0)
			set++;
	}
	if (n && !val) {
		free(names);
		return -ENOMEM;
	}
	free(val);
	free(names);
	return set;
}
