/* versions.h - keeping an object's previous content before it is replaced.
 *
 * overwrite=version (the mount and scan jobs alike): before new content
 * replaces `key` in S3, the newest ingested version of catpath still stored
 * at that key is copied server-side to PREFIX/.lzfs/versions/REL.vN and its
 * catalog row points there, so every version stays readable.
 */
#ifndef LZFS_VERSIONS_H
#define LZFS_VERSIONS_H

#include <stdint.h>

#include "catalog.h"
#include "s3.h"

#define VER_DIR ".lzfs/versions"

/* skip_id: the row being written (not a previous version), 0 if none.
 * Returns 0 when there was nothing to keep or it was kept (*kept = 1), or
 * a negative errno: the caller must then not overwrite key. */
int ver_keep_previous(struct cat *cat, struct s3_client *s3, const char *bucket,
		      const char *prefix, const char *catpath, const char *rel, const char *key,
		      int64_t skip_id, int *kept);

#endif
