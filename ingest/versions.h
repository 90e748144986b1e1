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

/* On a shared catalog another host may have written a newer version of a
 * path this host's spool still holds (file fd, stat st, name `name` in
 * directory dirfd): the spool file is then an older version of ours, in S3
 * under its version key (cat_stale_copy, SHA-256 compared), not a change.
 * Such a file is removed, if it is still the one looked at. 1 if removed
 * (who[] names the host that wrote the newer version), 0 if the file is
 * not such a copy (always on SQLite), or a negative errno. */
struct stat;
int ver_drop_stale(struct cat *cat, const char *catpath, int dirfd, const char *name, int fd,
		   const struct stat *st, char *who, size_t wlen);

#endif
