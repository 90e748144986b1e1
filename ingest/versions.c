/* versions.c - see versions.h. */
#include "versions.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"

struct prev {
	int64_t skip_id;
	const char *key;
	int64_t id;
	int version;
};

/* cat_obj_versions gives newest first: the first match is the one. */
static int find_prev(const struct cat_obj *o, void *arg)
{
	struct prev *p = arg;
	if (o->id == p->skip_id || o->state != CAT_INGESTED || o->symlink || strcmp(o->key, p->key))
		return 0;
	p->id = o->id;
	p->version = o->version;
	return 1;
}

int ver_keep_previous(struct cat *cat, struct s3_client *s3, const char *bucket,
		      const char *prefix, const char *catpath, const char *rel, const char *key,
		      int64_t skip_id, int *kept)
{
	*kept = 0;
	struct prev p = {.skip_id = skip_id, .key = key};
	int rc = cat_obj_versions(cat, catpath, find_prev, &p);
	if ((rc < 0 && rc != -ENOENT) || !p.id)
		return rc == -ENOENT ? 0 : rc < 0 ? rc : 0;
	char *vkey = NULL;
	if (asprintf(&vkey, "%s%s%s/%s.v%d", prefix, prefix[0] ? "/" : "", VER_DIR, rel,
		     p.version) < 0)
		return -ENOMEM;
	char etag[S3_ETAG_MAX];
	rc = s3_copy_object(s3, key, vkey, etag, NULL);
	if (rc == 0)
		rc = cat_obj_rename(cat, p.id, catpath, vkey);
	if (rc == 0) {
		*kept = 1;
		log_info("%s: version %d kept as s3://%s/%s", catpath, p.version, bucket, vkey);
	} else {
		log_err("%s: cannot keep version %d before overwriting it (%s); the new content "
			"is not sent now", catpath, p.version, strerror(-rc));
	}
	free(vkey);
	return rc;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int ver_drop_stale(struct cat *cat, const char *catpath, int dirfd, const char *name, int fd,
		   const struct stat *st, char *who, size_t wlen)
{
	if (!cat_shared(cat))
		return 0;
	unsigned char d[HASH_SHA256_LEN];
	char sha[65];
	int rc = hash_fd(HASH_SHA256, fd, 0, (uint64_t)st->st_size, d);
	if (rc < 0)
		return rc;
	hash_hex(d, sizeof d, sha);
	rc = cat_stale_copy(cat, catpath, st->st_size, mtime_ns(st), sha, who, wlen);
	if (rc <= 0)
		return rc;
	/* Only the file looked at: not one renamed over it since. */
	struct stat now;
	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 1 : -errno;
	if (now.st_ino != st->st_ino || now.st_dev != st->st_dev || now.st_size != st->st_size ||
	    mtime_ns(&now) != mtime_ns(st))
		return 0;
	if (unlinkat(dirfd, name, 0) < 0)
		return -errno;
	log_notice("%s: the spool holds an older version of this host's, and %s wrote a newer one: "
		   "the stale copy is removed (the path reads from S3)", catpath, who);
	return 1;
}
