/* catalog_pg.h - the catalog on PostgreSQL (libpq), private to store/.
 *
 * catalog.c hands every public cat_* call to the function of the same name
 * here when the catalog was opened with a postgresql:// (or postgres://)
 * URL; the semantics are those of catalog.h. What differs:
 *
 * - Several lzfs daemons may share one database. Each write request runs
 *   as one server-side function call (PL/pgSQL, created with the schema),
 *   so a batch of requests is sent in one pipeline and committed together
 *   (group commit, as on SQLite). Races between hosts on the same path are
 *   settled by the unique indexes (one current row per path, one row per
 *   path and version): an insert that loses waits for the winner, then
 *   takes the next version. A batch aborted by a deadlock or a lost race
 *   is retried as a whole; a request that fails for its own reason is
 *   dropped from the batch with its error and the rest retried.
 * - Rows carry an owner (cat_set_owner; default: the host name):
 *   cat_unfinished returns only the rows of this catalog handle's owner,
 *   so a daemon never recovers another live daemon's uploads. Totals are
 *   kept per owner and summed by cat_status.
 * - A dropped connection is reopened (with back-off) by the writer and by
 *   the readers. A batch whose COMMIT was in flight when the connection
 *   dropped is looked up by its transaction id (txid_status): committed, or
 *   sent again if aborted, or -EIO if that cannot be known; never twice.
 * - Passwords in the URL never reach a log line (cat_redact).
 */
#ifndef LZFS_CATALOG_PG_H
#define LZFS_CATALOG_PG_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

struct catpg;

/* 1 if location is a PostgreSQL URL. */
int catpg_is_url(const char *location);
/* location with the password of a URL replaced by "***", in buf. */
const char *catpg_redact(const char *location, char *buf, size_t size);

int catpg_open(const char *url, int flags, struct catpg **out);
void catpg_close(struct catpg *c);
void catpg_stats(struct catpg *c, struct cat_stats *out);
void catpg_set_busy_timeout(struct catpg *c, int ms);
int catpg_set_owner(struct catpg *c, const char *owner);
int catpg_check(struct catpg *c);

int catpg_coll_ensure(struct catpg *c, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                      int64_t *id);
int catpg_coll_get(struct catpg *c, const char *path, struct cat_coll *out);
int catpg_coll_remove(struct catpg *c, const char *path);

int catpg_obj_add(struct catpg *c, struct cat_obj *o);
int catpg_obj_add_many(struct catpg *c, struct cat_obj *objs, size_t n, int *results);
int catpg_obj_set_uploading(struct catpg *c, int64_t id, const char *upload_id);
int catpg_obj_part_done(struct catpg *c, int64_t id, int part_number, const char *etag,
                        int64_t size);
int catpg_obj_set_ingested(struct catpg *c, int64_t id, int64_t size, const char *sha256,
                           const char *etag);
int catpg_obj_set_failed(struct catpg *c, int64_t id, const char *error);
int catpg_obj_set_pending(struct catpg *c, int64_t id, const char *reason);
int catpg_obj_set_deleted(struct catpg *c, int64_t id, const char *reason);
int catpg_obj_rename(struct catpg *c, int64_t id, const char *new_path, const char *new_key);
int catpg_obj_set_attr(struct catpg *c, int64_t id, uint32_t mode, uint32_t uid, uint32_t gid,
                       int64_t mtime_ns);
int catpg_obj_get(struct catpg *c, const char *path, struct cat_obj *out);
int catpg_path_claimed(struct catpg *c, const char *path, char *owner, size_t len);
int catpg_upload_foreign(struct catpg *c, const char *upload_id);
int catpg_stale_copy(struct catpg *c, const char *path, int64_t size, int64_t mtime_ns,
                     const char *sha256, char *owner, size_t len);
int catpg_obj_get_id(struct catpg *c, int64_t id, struct cat_obj *out);
int catpg_obj_versions(struct catpg *c, const char *path,
                       int (*cb)(const struct cat_obj *o, void *arg), void *arg);
int catpg_obj_parts(struct catpg *c, int64_t id,
                    int (*cb)(int part_number, const char *etag, int64_t size, void *arg),
                    void *arg);

int catpg_list(struct catpg *c, const char *path,
               int (*cb)(const struct cat_coll *c, const struct cat_obj *o, void *arg), void *arg);
int catpg_find(struct catpg *c, const struct cat_query *q,
               int (*cb)(const struct cat_obj *o, void *arg), void *arg);

int catpg_meta_set(struct catpg *c, const char *path, const char *name, const char *value,
                   const char *unit);
int catpg_meta_rm(struct catpg *c, const char *path, const char *name);
int catpg_meta_list(struct catpg *c, const char *path,
                    int (*cb)(const struct cat_avu *a, void *arg), void *arg);

int catpg_event_add(struct catpg *c, int64_t obj_id, const char *path, const char *kind,
                    const char *detail);
int catpg_events(struct catpg *c, const char *path, int limit,
                 int (*cb)(const struct cat_event *e, void *arg), void *arg);

int catpg_status(struct catpg *c, struct cat_status *out);
int catpg_unfinished(struct catpg *c, int (*cb)(const struct cat_obj *o, void *arg), void *arg);

#endif
