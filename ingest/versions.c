/* versions.c - see versions.h. */
#include "versions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
