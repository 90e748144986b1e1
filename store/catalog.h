/* catalog.h - the catalog of collections and data objects (SQLite).
 *
 * One database file in WAL mode, synchronous=FULL: a write call that
 * returned 0 is on disk. Writes go through one writer thread owned by the
 * catalog: each write call queues its request and waits until the
 * transaction holding it has committed (group commit), so many threads
 * registering small files share one fsync; each request runs under its own
 * savepoint, so a failed one is undone alone. A second thread copies the
 * WAL into the database file (checkpoints) off the commit path. Reads
 * borrow a connection from a small pool, never wait for the writer, and may
 * run in any thread and any process (lzfsctl reads while the daemon writes).
 *
 * Paths are relative to the mount root, without a leading or trailing '/',
 * "" being the root collection. Object rows are versions: a path has one
 * current row (the highest version not `deleted`) and older versions stay
 * listed with their keys.
 *
 * State machine of an object version:
 *   pending -> uploading -> ingested
 *   pending|uploading -> failed -> pending (retry)
 *   pending|uploading|ingested|failed -> deleted
 *   uploading -> pending (upload aborted, will restart from the spool)
 * Anything else is refused with -EINVAL and logged.
 * Leaving `uploading` for `pending`, `ingested` or `deleted` drops the
 * recorded parts; `pending` also clears upload_id and last_error.
 *
 * Collections and objects cannot share a path (-EISDIR / -ENOTDIR).
 * Pointers passed to callbacks are valid only during the call; a callback
 * may call any catalog function, reads and writes.
 *
 * All functions return 0 or a negative errno (-ENOENT when a path or id is
 * unknown, -EEXIST on a duplicate, -EINVAL on an illegal transition,
 * -EBUSY if the database stayed locked past the busy timeout, -EIO on SQLite
 * errors, -ENOTSUP/-EPROTO for a database that is not an lzfs catalog or is
 * corrupt: never recreated over).
 */
#ifndef LZFS_CATALOG_H
#define LZFS_CATALOG_H

#include <stddef.h>
#include <stdint.h>

enum cat_state {
	CAT_PENDING = 0,
	CAT_UPLOADING = 1,
	CAT_INGESTED = 2,
	CAT_FAILED = 3,
	CAT_DELETED = 4,
};
const char *cat_state_name(enum cat_state s);
int cat_state_parse(const char *s); /* state or -EINVAL */

struct cat_obj {
	int64_t id;
	char *path;  /* relative path */
	int version; /* 1, 2, ... per path */
	char *bucket;
	char *key;
	int64_t size;
	uint32_t mode; /* full st_mode incl. type bits */
	uint32_t uid, gid;
	int64_t mtime_ns;  /* file mtime */
	int64_t ctime_ns;  /* when the row was created */
	int64_t ingest_ns; /* when it became ingested; 0 before */
	char sha256[65];   /* hex, "" if unknown */
	char etag[80];     /* S3 ETag, no quotes, "" if unknown */
	char *source;      /* "mount", "rescan", "scan:JOB" */
	enum cat_state state;
	char *upload_id; /* multipart upload in progress, or NULL */
	int parts_done;
	char *last_error; /* NULL unless failed */
	char *symlink;    /* target if this object is a symlink, else NULL */
	int current;      /* 1 if this is the path's current version */
};
void cat_obj_clear(struct cat_obj *o); /* frees the strings, zeroes */
struct stat;
/* A new row for a file: path, bucket, key and source are borrowed (not
 * copied); size, mode, owner and mtime from st; everything else zero. */
void cat_obj_from_stat(struct cat_obj *o, const char *path, const char *bucket, const char *key,
		       const struct stat *st, const char *source);

struct cat_coll {
	int64_t id;
	char *path;
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime_ns;
	int64_t ctime_ns;
};
void cat_coll_clear(struct cat_coll *c);

struct cat;

enum {
	CAT_READONLY = 1, /* lzfsctl: no writer thread, refuses writes (-EROFS) */
	CAT_CREATE = 2,   /* create the file and schema if missing */
};

/* Opens (and with CAT_CREATE creates/migrates) the catalog at `file`. A file
 * that is not an lzfs catalog, is corrupt, or has a newer schema than this
 * program knows gives a clear error naming the file.
 *
 * `file` may instead be a PostgreSQL URL (postgresql://... or postgres://,
 * libpq's syntax): the same catalog in a database that several lzfs
 * daemons share (store/catalog_pg.h says what differs). Its password, if
 * any, is never logged: print locations with cat_redact. */
int cat_open(const char *file, int flags, struct cat **out);
/* The owner recorded on rows this handle adds, and the only rows
 * cat_unfinished returns: daemons sharing a PostgreSQL catalog each recover
 * only their own uploads. Default: the host name. Set it before the first
 * write (lzfs: "HOST:SPOOL"). No effect on SQLite, which has one owner. */
int cat_set_owner(struct cat *cat, const char *owner);
/* A catalog location as it may be logged: a URL's password replaced by
 * "***". Returns buf. */
const char *cat_redact(const char *location, char *buf, size_t size);
/* Drains the writer queue, commits, stops the writer thread, closes. */
void cat_close(struct cat *cat);

/* Counters of the writer, for tests and monitoring: requests per
 * transaction is the group-commit batching factor (one WAL fsync per
 * transaction). */
struct cat_stats {
	uint64_t requests;     /* write requests executed (each row of
	                        * cat_obj_add_many counts as one) */
	uint64_t failed;       /* of which returned an error */
	uint64_t transactions; /* committed write transactions */
	uint64_t max_batch;    /* most requests taken at once */
	uint64_t busy_ns;      /* writer time inside transactions (wall) */
	uint64_t cpu_ns;       /* writer thread CPU time */
	uint64_t checkpoints;  /* WAL checkpoints run by the checkpointer */
	uint64_t busy_cpu_ns;  /* of cpu_ns, inside transactions */
	uint64_t commit_ns;    /* of busy_ns, in COMMIT (WAL write, fsync, and
	                        * checkpoints the writer runs itself) */
	uint64_t commit_cpu_ns; /* of busy_cpu_ns, in COMMIT */
};
void cat_stats(struct cat *cat, struct cat_stats *out);
/* How long a write or read waits for a lock held by another process before
 * giving up with -EBUSY (default 10 s). */
void cat_set_busy_timeout(struct cat *cat, int ms);
/* SQLite's integrity_check plus the current-version invariant: 0, or
 * -EPROTO with every problem logged. Reads the whole file. */
int cat_check(struct cat *cat);

/* --- collections --- */
/* Creates the collection and its missing parents (like mkdir -p); returns
 * the id of `path`. Existing collections are left as they are. */
int cat_coll_ensure(struct cat *cat, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                    int64_t *id);
int cat_coll_get(struct cat *cat, const char *path, struct cat_coll *out);
/* Removes an empty collection (-ENOTEMPTY if it holds current objects or
 * collections). */
int cat_coll_remove(struct cat *cat, const char *path);

/* --- objects --- */
/* Registers a new version of o->path and makes it the current version; the
 * previous current version, if any, stays as an older version. Parent
 * collections are created. Sets o->id and o->version. Fields used: path,
 * bucket, key, size, mode, uid, gid, mtime_ns, source, symlink, state.
 * o->state is CAT_PENDING (the usual start), or CAT_INGESTED for an object
 * already uploaded and verified (sha256 and etag used too; ingest_ns set
 * now): one transaction, one commit, for small files; any other state is
 * refused (-EINVAL). Events: "add", then "ingested". The new version
 * starts with a copy of the metadata (AVUs) of the version it replaces.
 * On PostgreSQL, -EBUSY (logged with that owner's name) while another
 * owner (cat_set_owner) has a version of the path pending or uploading:
 * that host is uploading to the path's key. */
int cat_obj_add(struct cat *cat, struct cat_obj *o);
/* 1 if other daemons may write this catalog (PostgreSQL): a path may then
 * be claimed by another host (cat_obj_add's -EBUSY). */
int cat_shared(struct cat *cat);
/* 1 (and that owner in owner[len]) if another owner has a version of path,
 * or of a path below it, pending or uploading; 0 if not (always on
 * SQLite). For a rename, before anything moves: cat_obj_rename's -EBUSY
 * comes after the local rename and the S3 copy. */
int cat_path_claimed(struct cat *cat, const char *path, char *owner, size_t len);
/* 1 if another owner's uploading row records multipart upload upload_id
 * (it is that host's, alive); 0 if not (always on SQLite). */
int cat_upload_foreign(struct cat *cat, const char *upload_id);
/* 1 (and the current version's owner in owner[len]) if a file of this
 * size, mtime and SHA-256 at path is an older ingested version this owner
 * registered, and the current version is another owner's: a host's spool
 * copy that another host's write has made stale. 0 if not (always on
 * SQLite). */
int cat_stale_copy(struct cat *cat, const char *path, int64_t size, int64_t mtime_ns,
		   const char *sha256, char *owner, size_t len);
/* Registers n objects as cat_obj_add does each, in order, in one request
 * to the writer (one commit waited for, not n). A row that fails is undone
 * alone and the others are registered. results[i] is row i's fate: 0
 * (objs[i].id, version, state, current set as by cat_obj_add) or its
 * negative errno (-EINVAL, -EISDIR, -ENOTDIR, -EEXIST, ...; then objs[i].id
 * and version are 0; a failed commit fails every row it held). The same
 * path twice in one batch makes two versions, as two cat_obj_add would.
 * Returns 0 if every row was registered, else the errno of the first row
 * that failed. Rows beyond CAT_ADD_MANY_MAX go in further requests,
 * committed in turn. */
#define CAT_ADD_MANY_MAX 1000
int cat_obj_add_many(struct cat *cat, struct cat_obj *objs, size_t n, int *results);

/* Transitions; each also appends an event. */
int cat_obj_set_uploading(struct cat *cat, int64_t id, const char *upload_id);
int cat_obj_part_done(struct cat *cat, int64_t id, int part_number, const char *etag, int64_t size);
int cat_obj_set_ingested(struct cat *cat, int64_t id, int64_t size, const char *sha256,
                         const char *etag);
int cat_obj_set_failed(struct cat *cat, int64_t id, const char *error);
int cat_obj_set_pending(struct cat *cat, int64_t id, const char *reason);
int cat_obj_set_deleted(struct cat *cat, int64_t id, const char *reason);

/* Changes path and key of a row (rename within the mount). If another
 * current row exists at new_path it becomes an older version. -EBUSY as
 * cat_obj_add when another owner is writing new_path. */
int cat_obj_rename(struct cat *cat, int64_t id, const char *new_path, const char *new_key);

/* Updates attributes without changing the state (chmod, chown, utimens). */
int cat_obj_set_attr(struct cat *cat, int64_t id, uint32_t mode, uint32_t uid, uint32_t gid,
                     int64_t mtime_ns);

/* The current version of path (-ENOENT if none). */
int cat_obj_get(struct cat *cat, const char *path, struct cat_obj *out);
int cat_obj_get_id(struct cat *cat, int64_t id, struct cat_obj *out);
/* Versions of path, newest first. */
int cat_obj_versions(struct cat *cat, const char *path,
                     int (*cb)(const struct cat_obj *o, void *arg), void *arg);

/* Parts recorded for an upload (resume after a crash). */
int cat_obj_parts(struct cat *cat, int64_t id,
                  int (*cb)(int part_number, const char *etag, int64_t size, void *arg), void *arg);

/* --- listing and search --- */
/* Direct children of a collection: sub-collections (o == NULL, c set) and
 * current objects (c == NULL, o set), sorted by name. cb returns non-zero
 * to stop. */
int cat_list(struct cat *cat, const char *path,
             int (*cb)(const struct cat_coll *c, const struct cat_obj *o, void *arg), void *arg);

struct cat_query {
	const char *under;                       /* collection path prefix, NULL = all */
	const char *name_glob;                   /* matched against the last path component */
	int state;                               /* -1 = any */
	int64_t min_size, max_size;              /* -1 = unbounded */
	int64_t mtime_after_ns, mtime_before_ns; /* 0 = unbounded */
	const char *meta_key;                    /* with meta_value: objects having that AVU */
	const char *meta_value;                  /* NULL = any value */
	int all_versions;                        /* 0: current versions only */
	int limit;                               /* 0 = no limit */
};
void cat_query_init(struct cat_query *q);
int cat_find(struct cat *cat, const struct cat_query *q,
             int (*cb)(const struct cat_obj *o, void *arg), void *arg);

/* --- user metadata (AVUs) on an object's current version or a collection --- */
struct cat_avu {
	const char *name;
	const char *value;
	const char *unit; /* may be NULL */
};
/* Sets (replaces) name on path; path may name an object or a collection. */
int cat_meta_set(struct cat *cat, const char *path, const char *name, const char *value,
                 const char *unit);
int cat_meta_rm(struct cat *cat, const char *path, const char *name);
int cat_meta_list(struct cat *cat, const char *path, int (*cb)(const struct cat_avu *a, void *arg),
                  void *arg);

/* --- events (append-only audit log) --- */
struct cat_event {
	int64_t id;
	int64_t time_ns;
	int64_t obj_id; /* 0 for events not tied to an object */
	const char *path;
	const char *kind; /* "add", "uploading", "ingested", "failed", "rename", ... */
	const char *detail;
};
int cat_event_add(struct cat *cat, int64_t obj_id, const char *path, const char *kind,
                  const char *detail);
/* Events for path (NULL = all), oldest first, at most limit (0 = all): the
 * newest `limit` ones. An object's events follow its id across renames.
 * e->path: for add and rename, the path then; for other events of an
 * object, its current path; for events not tied to an object, theirs. */
int cat_events(struct cat *cat, const char *path, int limit,
               int (*cb)(const struct cat_event *e, void *arg), void *arg);

/* --- status --- */
struct cat_status {
	int64_t count[5]; /* per state, current versions; deleted rows
	                   * are never current: count[CAT_DELETED]
	                   * counts all deleted rows */
	int64_t bytes_ingested;
	int64_t oldest_pending_ns; /* ctime of the first registered current row
	                            * still pending or uploading, 0 if none */
	int64_t collections;
	int64_t versions; /* all object rows */
};
int cat_status(struct cat *cat, struct cat_status *out);

/* Rows in state pending or uploading (current versions), for recovery; on
 * PostgreSQL only those of this handle's owner (cat_set_owner). */
int cat_unfinished(struct cat *cat, int (*cb)(const struct cat_obj *o, void *arg), void *arg);

#endif
