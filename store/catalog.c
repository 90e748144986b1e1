/* catalog.c - the catalog on SQLite: see catalog.h.
 *
 * The file is laid out in the order a catalog lives: identity checks done
 * before SQLite may write a byte, schema creation and migration, the writer
 * thread with its operations (each runs inside the group-commit transaction
 * under its own savepoint), then the read side (a small pool of read
 * connections, one borrowed per call).
 */
#include "catalog.h"
#include "catalog_pg.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CAT_SCHEMA_VERSION  3
#define CAT_APP_ID          0x4c5a4653 /* "LZFS", PRAGMA application_id */
#define CAT_FORMAT          "lzfs catalog"
#define CAT_BATCH_MAX       1000 /* rows per transaction (a batch of adds: its rows) */
#define CAT_BUSY_MS         10000
#define CAT_POOL_IDLE       8     /* idle read connections kept open */
#define CAT_CKPT_PAGES      1000  /* WAL pages that wake the checkpointer */
#define CAT_WAL_RESET_PAGES 4000  /* the writer finishes an idle checkpointer's work */
#define CAT_WAL_MAX_PAGES   65536 /* the writer checkpoints itself, even if busy */

/* ------------------------------------------------------------------ */
/* schema */

/* Counters for status, so that it costs the same at a billion rows as at
 * ten. k 0..4: current rows per state (count, bytes); 5: deleted rows; 6:
 * all rows. The writer keeps them: each request tallies how rows enter
 * and leave these classes, and the transaction's net change is written just
 * before its COMMIT (triggers doing the same cost a fifth of the writer's
 * time). cat_check recounts them. The state index leaves out `ingested`,
 * the bulk of a catalog, and its entries (state, rowid) are appended in id
 * order: a registration dirties no random page. */
#define TOTALS_SQL                                                                                 \
	"CREATE INDEX objects_state ON objects(state) WHERE state <> 2;"                           \
	"CREATE TABLE totals(k INTEGER PRIMARY KEY, n INTEGER NOT NULL, bytes INTEGER NOT NULL);"  \
	"INSERT INTO totals VALUES(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0),"          \
	" (5, 0, 0), (6, 0, 0);"                                                                   \
	"CREATE TRIGGER objects_no_delete BEFORE DELETE ON objects"                                \
	" BEGIN SELECT RAISE(ABORT, 'object rows are never deleted'); END;"

/* Version 1 is kept here only as documentation of what migrate_1_2 starts
 * from: it had no parts table and no objects.symlink column. */
static const char schema_v2[] =
    "CREATE TABLE lzfs_catalog(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE collections("
    " id INTEGER PRIMARY KEY,"
    " path TEXT NOT NULL UNIQUE,"
    " parent_id INTEGER REFERENCES collections(id),"
    " mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);"
    "CREATE INDEX collections_parent ON collections(parent_id);"
    "CREATE TABLE objects("
    " id INTEGER PRIMARY KEY,"
    " path TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK(version >= 1),"
    " coll_id INTEGER REFERENCES collections(id) ON DELETE SET NULL,"
    " bucket TEXT NOT NULL, key TEXT NOT NULL,"
    " size INTEGER NOT NULL DEFAULT 0,"
    " mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    " ingest_ns INTEGER NOT NULL DEFAULT 0,"
    " sha256 TEXT NOT NULL DEFAULT '', etag TEXT NOT NULL DEFAULT '',"
    " source TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL CHECK(state BETWEEN 0 AND 4),"
    " upload_id TEXT, parts_done INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " current INTEGER NOT NULL DEFAULT 0 CHECK(current IN (0, 1) AND NOT (current = 1 AND state = "
    "4)),"
    " symlink TEXT,"
    " UNIQUE(path, version));"
    /* At most one current version per path: registration is exactly-once
     * even if two threads race to add the same path. */
    "CREATE UNIQUE INDEX objects_current ON objects(path) WHERE current = 1;"
    "CREATE INDEX objects_coll ON objects(coll_id, current);"
    "CREATE INDEX objects_key ON objects(key);" TOTALS_SQL "CREATE TABLE parts("
    " obj_id INTEGER NOT NULL REFERENCES objects(id),"
    " number INTEGER NOT NULL CHECK(number BETWEEN 1 AND 10000),"
    " etag TEXT NOT NULL, size INTEGER NOT NULL,"
    " PRIMARY KEY(obj_id, number)) WITHOUT ROWID;"
    /* kind 0: target is an object row, 1: a collection. */
    "CREATE TABLE meta("
    " id INTEGER PRIMARY KEY,"
    " kind INTEGER NOT NULL CHECK(kind IN (0, 1)),"
    " target INTEGER NOT NULL,"
    " name TEXT NOT NULL, value TEXT NOT NULL, unit TEXT,"
    " UNIQUE(kind, target, name));"
    "CREATE INDEX meta_name ON meta(name, value);"
    "CREATE TABLE events("
    " id INTEGER PRIMARY KEY,"
    " time_ns INTEGER NOT NULL,"
    " obj_id INTEGER,"
    " path TEXT,"
    " kind TEXT NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX events_obj ON events(obj_id) WHERE obj_id IS NOT NULL;"
    "CREATE INDEX events_path ON events(path) WHERE obj_id IS NULL;"
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;";

static const char migrate_1_2[] =
    "ALTER TABLE objects ADD COLUMN symlink TEXT;"
    "DROP INDEX IF EXISTS objects_state;" TOTALS_SQL
    "UPDATE totals SET n = (SELECT count(*) FROM objects o WHERE o.state = totals.k AND"
    " o.current = 1), bytes = (SELECT total(size) FROM objects o WHERE o.state = totals.k"
    " AND o.current = 1) WHERE k < 5;"
    "UPDATE totals SET n = (SELECT count(*) FROM objects WHERE state = 4) WHERE k = 5;"
    "UPDATE totals SET n = (SELECT count(*) FROM objects) WHERE k = 6;"
    "CREATE TABLE parts("
    " obj_id INTEGER NOT NULL REFERENCES objects(id),"
    " number INTEGER NOT NULL CHECK(number BETWEEN 1 AND 10000),"
    " etag TEXT NOT NULL, size INTEGER NOT NULL,"
    " PRIMARY KEY(obj_id, number)) WITHOUT ROWID;";

/* Version 3 adds the scan jobs run by the daemon (store/jobs.c reads and
 * writes this table; the catalog only creates it). */
static const char jobs_v3[] =
    "CREATE TABLE jobs("
    " name TEXT PRIMARY KEY,"
    " source TEXT NOT NULL, target TEXT NOT NULL,"
    " args TEXT NOT NULL DEFAULT '',"
    " interval INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL,"
    " stop INTEGER NOT NULL DEFAULT 0,"
    " created_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL DEFAULT 0,"
    " finished_ns INTEGER NOT NULL DEFAULT 0, next_ns INTEGER NOT NULL DEFAULT 0,"
    " heartbeat_ns INTEGER NOT NULL DEFAULT 0, runner TEXT,"
    " runs INTEGER NOT NULL DEFAULT 0,"
    " files_total INTEGER NOT NULL DEFAULT 0, files_done INTEGER NOT NULL DEFAULT 0,"
    " bytes_total INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0,"
    " files_failed INTEGER NOT NULL DEFAULT 0, files_skipped INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, summary TEXT);";

/* migrations[v] upgrades version v to v + 1. */
static const char *const migrations[CAT_SCHEMA_VERSION] = {
    [1] = migrate_1_2,
    [2] = jobs_v3,
};

#define OBJ_COLS                                                                                   \
	"id, path, version, bucket, key, size, mode, uid, gid, mtime_ns, ctime_ns, "               \
	"ingest_ns, sha256, etag, source, state, upload_id, parts_done, last_error, "              \
	"symlink, current"
#define COLL_COLS "id, path, mode, uid, gid, mtime_ns, ctime_ns"

/* ------------------------------------------------------------------ */
/* statements */

enum wstmt {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_SAVEPOINT,
	W_RELEASE,
	W_ROLLBACK_TO,
	W_COLL_ID,
	W_COLL_INSERT,
	W_COLL_HAS_CHILD,
	W_COLL_HAS_OBJ,
	W_COLL_DELETE,
	W_META_DELETE_COLL,
	W_OBJ_CURRENT_ID,
	W_MAX_VERSION,
	W_DEMOTE,
	W_OBJ_INSERT,
	W_META_COPY,
	W_EVENT,
	W_OBJ_ROW,
	W_SET_UPLOADING,
	W_SET_INGESTED,
	W_SET_FAILED,
	W_SET_PENDING,
	W_SET_DELETED,
	W_PROMOTE,
	W_PARTS_CLEAR,
	W_PART_PUT,
	W_PARTS_COUNT,
	W_RENAME,
	W_SET_KEY,
	W_SET_ATTR,
	W_META_PUT,
	W_META_DEL,
	W_TOTALS,
	W_ADD_PROBE,
	W_SEG_SAVEPOINT,
	W_SEG_RELEASE,
	W_SEG_ROLLBACK_TO,
	W_COUNT
};

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT req",
    [W_RELEASE] = "RELEASE req",
    [W_ROLLBACK_TO] = "ROLLBACK TO req",
    [W_COLL_ID] = "SELECT id FROM collections WHERE path = ?1",
    [W_COLL_INSERT] = "INSERT INTO collections(path, parent_id, mode, uid, gid, mtime_ns, ctime_ns)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [W_COLL_HAS_CHILD] = "SELECT 1 FROM collections WHERE parent_id = ?1 LIMIT 1",
    [W_COLL_HAS_OBJ] = "SELECT 1 FROM objects WHERE coll_id = ?1 AND current = 1 LIMIT 1",
    [W_COLL_DELETE] = "DELETE FROM collections WHERE id = ?1",
    [W_META_DELETE_COLL] = "DELETE FROM meta WHERE kind = 1 AND target = ?1",
    [W_OBJ_CURRENT_ID] = "SELECT id FROM objects WHERE path = ?1 AND current = 1",
    [W_MAX_VERSION] = "SELECT max(version), max(CASE WHEN current = 1 THEN id END)"
                      " FROM objects WHERE path = ?1",
    [W_DEMOTE] = "UPDATE objects SET current = 0 WHERE id = ?1 RETURNING state, size",
    [W_OBJ_INSERT] = "INSERT INTO objects(path, version, coll_id, bucket, key, size, mode, uid,"
                     " gid, mtime_ns, ctime_ns, source, state, symlink, current, sha256, etag,"
                     " ingest_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?14,"
                     " ?13, 1, ?15, ?16, ?17)",
    [W_META_COPY] = "INSERT INTO meta(kind, target, name, value, unit)"
                    " SELECT 0, ?2, name, value, unit FROM meta WHERE kind = 0 AND target = ?1",
    [W_EVENT] =
        "INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(?1, ?2, ?3, ?4, ?5)",
    [W_OBJ_ROW] = "SELECT state, path, current, version, size FROM objects WHERE id = ?1",
    [W_SET_UPLOADING] =
        "UPDATE objects SET state = 1, upload_id = ?2, parts_done = 0 WHERE id = ?1",
    [W_SET_INGESTED] = "UPDATE objects SET state = 2, size = ?2, sha256 = ?3, etag = ?4,"
                       " ingest_ns = ?5, upload_id = NULL, last_error = NULL WHERE id = ?1",
    [W_SET_FAILED] = "UPDATE objects SET state = 3, last_error = ?2 WHERE id = ?1",
    [W_SET_PENDING] = "UPDATE objects SET state = 0, upload_id = NULL, parts_done = 0,"
                      " last_error = NULL WHERE id = ?1",
    [W_SET_DELETED] = "UPDATE objects SET state = 4, current = 0 WHERE id = ?1",
    [W_PROMOTE] = "UPDATE objects SET current = 1 WHERE id = (SELECT id FROM objects"
                  " WHERE path = ?1 AND state <> 4 ORDER BY version DESC LIMIT 1)"
                  " RETURNING id, version, state, size",
    [W_PARTS_CLEAR] = "DELETE FROM parts WHERE obj_id = ?1",
    [W_PART_PUT] = "INSERT INTO parts(obj_id, number, etag, size) VALUES(?1, ?2, ?3, ?4)"
                   " ON CONFLICT(obj_id, number) DO UPDATE SET etag = excluded.etag,"
                   " size = excluded.size",
    [W_PARTS_COUNT] = "UPDATE objects SET parts_done = (SELECT count(*) FROM parts"
                      " WHERE obj_id = ?1) WHERE id = ?1",
    [W_RENAME] = "UPDATE objects SET path = ?2, version = ?3, key = coalesce(?4, key),"
                 " coll_id = ?5, current = 1 WHERE id = ?1",
    [W_SET_KEY] = "UPDATE objects SET key = coalesce(?2, key) WHERE id = ?1",
    [W_SET_ATTR] = "UPDATE objects SET mode = ?2, uid = ?3, gid = ?4, mtime_ns = ?5 WHERE id = ?1",
    [W_META_PUT] = "INSERT INTO meta(kind, target, name, value, unit) VALUES(?1, ?2, ?3, ?4, ?5)"
                   " ON CONFLICT(kind, target, name) DO UPDATE SET value = excluded.value,"
                   " unit = excluded.unit",
    [W_META_DEL] = "DELETE FROM meta WHERE kind = ?1 AND target = ?2 AND name = ?3",
    [W_TOTALS] = "UPDATE totals SET n = n + ?2, bytes = bytes + ?3 WHERE k = ?1",
    /* All an add needs to know, in one statement: is the path a
     * collection, the parent's id, the highest version, the current row. */
    [W_ADD_PROBE] = "SELECT (SELECT id FROM collections WHERE path = ?1),"
                    " (SELECT id FROM collections WHERE path = ?2), v.maxv, v.cur FROM"
                    " (SELECT max(version) AS maxv, max(CASE WHEN current = 1 THEN id END) AS cur"
                    " FROM objects WHERE path = ?1) AS v",
    [W_SEG_SAVEPOINT] = "SAVEPOINT seg",
    [W_SEG_RELEASE] = "RELEASE seg",
    [W_SEG_ROLLBACK_TO] = "ROLLBACK TO seg",
};

enum rstmt {
	R_OBJ_PATH,
	R_OBJ_ID,
	R_VERSIONS,
	R_PARTS,
	R_COLL_PATH,
	R_LIST_COLLS,
	R_LIST_OBJS,
	R_OBJ_CURRENT_ID,
	R_META_LIST,
	R_UNFINISHED,
	R_COUNT
};

static const char *const rsql[R_COUNT] = {
    [R_OBJ_PATH] = "SELECT " OBJ_COLS " FROM objects WHERE path = ?1 AND current = 1",
    [R_OBJ_ID] = "SELECT " OBJ_COLS " FROM objects WHERE id = ?1",
    [R_VERSIONS] = "SELECT " OBJ_COLS " FROM objects WHERE path = ?1 ORDER BY version DESC",
    [R_PARTS] = "SELECT number, etag, size FROM parts WHERE obj_id = ?1 ORDER BY number",
    [R_COLL_PATH] = "SELECT " COLL_COLS " FROM collections WHERE path = ?1",
    [R_LIST_COLLS] = "SELECT " COLL_COLS " FROM collections WHERE parent_id = ?1 ORDER BY path",
    [R_LIST_OBJS] = "SELECT " OBJ_COLS " FROM objects WHERE coll_id = ?1 AND current = 1"
                    " ORDER BY path",
    [R_OBJ_CURRENT_ID] = "SELECT id FROM objects WHERE path = ?1 AND current = 1",
    [R_META_LIST] = "SELECT name, value, unit FROM meta WHERE kind = ?1 AND target = ?2"
                    " ORDER BY name",
    [R_UNFINISHED] = "SELECT " OBJ_COLS " FROM objects WHERE state IN (0, 1) AND state <> 2"
                     " AND current = 1 ORDER BY id",
};

/* ------------------------------------------------------------------ */
/* the catalog */

enum req_op {
	OP_COLL_ENSURE,
	OP_COLL_REMOVE,
	OP_OBJ_ADD,
	OP_UPLOADING,
	OP_PART_DONE,
	OP_INGESTED,
	OP_FAILED,
	OP_PENDING,
	OP_DELETED,
	OP_RENAME,
	OP_SET_ATTR,
	OP_META_SET,
	OP_META_RM,
	OP_EVENT,
	OP_OBJ_ADD_MANY,
};

/* A write request lives on the caller's stack: the caller waits until the
 * writer has committed (or failed) it, so the writer may use the caller's
 * strings without copying them. */
struct req {
	enum req_op op;
	int rc;
	sem_t done; /* posted by the writer after the commit */
	struct req *next;
	int64_t id;     /* object id in; new id out */
	int64_t n1, n2; /* size, part number, mtime */
	uint32_t mode, uid, gid;
	const char *s1, *s2, *s3, *s4;
	const struct cat_obj *obj;
	int version; /* out */
	/* OP_OBJ_ADD_MANY: rows objs[0..nobjs), each undone alone if it fails,
	 * each with its own result (r->rc is unused). */
	struct cat_obj *objs;
	int *results;
	size_t nobjs;
};

/* Net change of the totals table (see TOTALS_SQL). */
struct tally {
	int64_t n[7];
	int64_t bytes[5];
};

struct rconn {
	sqlite3 *db;
	int busy_ms; /* the busy timeout set on db */
	sqlite3_stmt *st[R_COUNT];
	struct rconn *next;
};

struct cat {
	struct catpg *pg; /* a PostgreSQL catalog: every call goes there */
	char *file;
	int flags;
	sqlite3 *db; /* the writer's; the writer thread owns it while running */
	sqlite3_stmt *ws[W_COUNT];
	struct tally req_tally; /* of the request running */
	struct tally seg_tally; /* of the requests done in this segment */
	struct tally txn_tally; /* of the requests done in this transaction */
	int busy_ms;            /* atomic: set by any thread */
	int busy_applied;       /* the writer's */

	pthread_mutex_t qlock;
	pthread_cond_t qcond; /* the writer waits here for work */
	struct req *qhead, *qtail;
	int stopping;
	int writer_waiting;
	int writer_started;
	pthread_t writer;
	struct cat_stats stats; /* under qlock */

	/* The checkpointer copies WAL pages into the database file on its own
	 * connection, so commits never wait for it (SQLite would otherwise run
	 * checkpoints inside the COMMIT of the writer). */
	sqlite3 *ckdb;
	pthread_t ckpt;
	int ckpt_started;
	pthread_mutex_t cklock;
	pthread_cond_t ckcond;
	int ck_wanted, ck_stop, ck_running;
	uint64_t checkpoints; /* under cklock */
	int wal_warned;

	pthread_mutex_t plock;
	struct rconn *idle; /* read connection pool */
	int nidle;
};

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

const char *cat_state_name(enum cat_state s)
{
	static const char *const names[] = {"pending", "uploading", "ingested", "failed",
	                                    "deleted"};
	if ((unsigned)s >= sizeof names / sizeof names[0])
		return "invalid";
	return names[s];
}

int cat_state_parse(const char *s)
{
	for (int i = CAT_PENDING; i <= CAT_DELETED; i++)
		if (s && strcmp(s, cat_state_name(i)) == 0)
			return i;
	return -EINVAL;
}

void cat_obj_from_stat(struct cat_obj *o, const char *path, const char *bucket, const char *key,
		       const struct stat *st, const char *source)
{
	memset(o, 0, sizeof *o);
	o->path = (char *)path;
	o->bucket = (char *)bucket;
	o->key = (char *)key;
	o->size = st->st_size;
	o->mode = st->st_mode;
	o->uid = st->st_uid;
	o->gid = st->st_gid;
	o->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	o->source = (char *)source;
}

void cat_obj_clear(struct cat_obj *o)
{
	if (!o)
		return;
	free(o->path);
	free(o->bucket);
	free(o->key);
	free(o->source);
	free(o->upload_id);
	free(o->last_error);
	free(o->symlink);
	memset(o, 0, sizeof *o);
}

void cat_coll_clear(struct cat_coll *c)
{
	if (!c)
		return;
	free(c->path);
	memset(c, 0, sizeof *c);
}

void cat_query_init(struct cat_query *q)
{
	memset(q, 0, sizeof *q);
	q->state = -1;
	q->min_size = -1;
	q->max_size = -1;
}

/* A catalog path: "" (the root, only where allowed) or non-empty components
 * separated by single slashes, none of them "." or "..". Any other byte is
 * allowed: names come from a POSIX file system. */
static int path_valid(const char *p, int allow_root)
{
	if (!p)
		return 0;
	if (!*p)
		return allow_root;
	for (const char *s = p;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		if (!e)
			return 1;
		s = e + 1;
	}
}

/* "" for a top-level name, else a malloc'd copy of everything before the
 * last '/'. NULL on allocation failure. */
static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? strndup(path, slash - path) : strdup("");
}

static int errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EPROTO;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* Logs a failed SQLite call with the file and what was being done, and
 * returns the errno for it. */
static int db_fail(struct cat *c, sqlite3 *db, int rc, const char *what)
{
	int e = errno_of(rc);
	if ((rc & 0xff) == SQLITE_BUSY)
		log_err("catalog %s: %s: still locked after %d ms (another process holds the "
		        "write lock)",
		        c->file, what, __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED));
	else if (e == -EPROTO)
		log_err("catalog %s: %s: database is corrupt: %s", c->file, what,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	else
		log_err("catalog %s: %s: %s", c->file, what,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	return e ? e : -EIO;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static void st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows (or whose rows are ignored). */
static int st_exec(struct cat *c, sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	st_done(st);
	return rc == SQLITE_DONE ? 0 : db_fail(c, db, rc, what);
}

/* First column of the first row as an integer: 1 and *out set, 0 if there
 * is no row or it is NULL, or a negative errno. */
static int st_int64(struct cat *c, sqlite3 *db, sqlite3_stmt *st, int64_t *out, const char *what)
{
	int rc = sqlite3_step(st);
	int found = 0;
	if (rc == SQLITE_ROW) {
		found = sqlite3_column_type(st, 0) != SQLITE_NULL;
		*out = sqlite3_column_int64(st, 0);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	st_done(st);
	return rc == SQLITE_DONE ? found : db_fail(c, db, rc, what);
}

static int exec_sql(struct cat *c, sqlite3 *db, const char *sql, const char *what)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		int e = errno_of(rc);
		log_err("catalog %s: %s: %s", c->file, what, err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return e ? e : -EIO;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* opening */

/* 1 if the file must be created, 0 if it may be a catalog, or a negative
 * errno after logging why it is refused. Reads only: a file refused here
 * is never opened by SQLite. The application id in the main file's header
 * is only trusted without a live WAL: until a checkpoint, page 1 may exist
 * only in the WAL (the read-only probe in cat_open checks it then). */
static int check_file(struct cat *c)
{
	struct stat st, ws;
	char wal[4096];
	if (stat(c->file, &st) < 0) {
		if (errno == ENOENT)
			return 1;
		int e = -errno;
		log_err("catalog %s: %s", c->file, strerror(errno));
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("catalog %s: not a regular file; refusing to touch it", c->file);
		return -ENOTSUP;
	}
	snprintf(wal, sizeof wal, "%s-wal", c->file);
	int live_wal = stat(wal, &ws) == 0 && ws.st_size > 0;
	if (st.st_size == 0)
		return live_wal ? 0 : 1;
	unsigned char h[100];
	int fd = open(c->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		log_err("catalog %s: %s", c->file, strerror(errno));
		return e;
	}
	ssize_t n = pread(fd, h, sizeof h, 0);
	close(fd);
	if (n != (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
		log_err("catalog %s: not an lzfs catalog (not an SQLite database: garbage or a "
		        "corrupt header); refusing to touch it",
		        c->file);
		return -ENOTSUP;
	}
	uint32_t app = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 | (uint32_t)h[70] << 8 | h[71];
	if (app != CAT_APP_ID && !live_wal) {
		log_err("catalog %s: not an lzfs catalog (no lzfs marker: SQLite application_id "
		        "0x%08x); refusing to touch it",
		        c->file, app);
		return -ENOTSUP;
	}
	return 0;
}

static int get_pragma_int(struct cat *c, sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(c, db, rc, sql);
	rc = st_int64(c, db, st, out, sql);
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}

static int init_schema(struct cat *c, sqlite3 *db)
{
	int rc = exec_sql(c, db, "BEGIN IMMEDIATE", "creating the schema");
	if (rc)
		return rc;
	int64_t tables = 0;
	rc = get_pragma_int(c, db, "SELECT count(*) FROM sqlite_schema", &tables);
	if (rc == 0 && tables != 0) {
		/* Someone created it between our check and our lock. */
		exec_sql(c, db, "ROLLBACK", "creating the schema");
		return 1;
	}
	char sql[512];
	int64_t now = now_ns();
	snprintf(sql, sizeof sql,
	         "INSERT INTO lzfs_catalog VALUES('format', '" CAT_FORMAT
	         "'), ('created_ns', '%lld');"
	         "INSERT INTO collections(id, path, parent_id, mode, uid, gid, mtime_ns, ctime_ns)"
	         " VALUES(1, '', NULL, %u, 0, 0, %lld, %lld);"
	         "PRAGMA application_id = %d; PRAGMA user_version = %d;",
	         (long long)now, (unsigned)(S_IFDIR | 0755), (long long)now, (long long)now,
	         CAT_APP_ID, CAT_SCHEMA_VERSION);
	if (rc == 0)
		rc = exec_sql(c, db, schema_v2, "creating the schema");
	if (rc == 0)
		rc = exec_sql(c, db, jobs_v3, "creating the schema");
	if (rc == 0)
		rc = exec_sql(c, db, sql, "creating the schema");
	if (rc == 0)
		rc = exec_sql(c, db, "COMMIT", "creating the schema");
	if (rc) {
		exec_sql(c, db, "ROLLBACK", "creating the schema");
		return rc;
	}
	log_notice("catalog %s: created (schema version %d)", c->file, CAT_SCHEMA_VERSION);
	return 0;
}

static int migrate(struct cat *c, sqlite3 *db)
{
	int rc = exec_sql(c, db, "BEGIN IMMEDIATE", "migrating");
	if (rc)
		return rc;
	int64_t v = 0;
	rc = get_pragma_int(c, db, "PRAGMA user_version", &v);
	int64_t from = v;
	while (rc == 0 && v < CAT_SCHEMA_VERSION) {
		if (v < 1 || !migrations[v]) {
			log_err("catalog %s: no migration from schema version %lld", c->file,
			        (long long)v);
			rc = -ENOTSUP;
			break;
		}
		rc = exec_sql(c, db, migrations[v], "migrating");
		v++;
	}
	if (rc == 0 && v != from) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)v);
		rc = exec_sql(c, db, sql, "migrating");
	}
	if (rc == 0)
		rc = exec_sql(c, db, "COMMIT", "migrating");
	if (rc) {
		exec_sql(c, db, "ROLLBACK", "migrating");
		return rc;
	}
	if (v != from)
		log_notice("catalog %s: schema migrated from version %lld to %lld", c->file,
		           (long long)from, (long long)v);
	return 0;
}

/* The identity checks SQLite can do: application id, marker table, schema
 * version (in *version). Reads only. */
static int verify(struct cat *c, sqlite3 *db, int64_t *version_out)
{
	int64_t app = 0, version = 0, marker = 0;
	sqlite3_stmt *st;
	int rc = get_pragma_int(c, db, "PRAGMA application_id", &app);
	if (rc == 0)
		rc = get_pragma_int(c, db, "PRAGMA user_version", &version);
	if (rc == 0) {
		rc = sqlite3_prepare_v2(db,
		                        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
		                        " AND name = 'lzfs_catalog'",
		                        -1, &st, NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, db, rc, "reading the schema");
		rc = st_int64(c, db, st, &marker, "reading the schema");
		sqlite3_finalize(st);
		rc = rc < 0 ? rc : 0;
	}
	if (rc)
		return rc;
	if (app != CAT_APP_ID || !marker) {
		log_err("catalog %s: not an lzfs catalog (no lzfs marker); refusing to touch it",
		        c->file);
		return -ENOTSUP;
	}
	int64_t ok = 0;
	rc = sqlite3_prepare_v2(db,
	                        "SELECT count(*) FROM lzfs_catalog WHERE name = 'format'"
	                        " AND value = '" CAT_FORMAT "'",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(c, db, rc, "reading the marker");
	rc = st_int64(c, db, st, &ok, "reading the marker");
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	if (!ok) {
		log_err("catalog %s: not an lzfs catalog (bad lzfs marker); refusing to touch it",
		        c->file);
		return -ENOTSUP;
	}
	if (version > CAT_SCHEMA_VERSION) {
		log_err("catalog %s: schema version %lld is newer than this program knows (%d); "
		        "refusing to use it (upgrade lzfs)",
		        c->file, (long long)version, CAT_SCHEMA_VERSION);
		return -ENOTSUP;
	}
	if (version < CAT_SCHEMA_VERSION &&
	    ((c->flags & CAT_READONLY) || !(c->flags & CAT_CREATE))) {
		log_err("catalog %s: schema version %lld is older than %d; open it read-write "
		        "once (start lzfs) to migrate it",
		        c->file, (long long)version, CAT_SCHEMA_VERSION);
		return -ENOTSUP;
	}
	*version_out = version;
	return 0;
}

static void glob_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *pat = (const char *)sqlite3_value_text(argv[0]);
	const char *path = (const char *)sqlite3_value_text(argv[1]);
	if (!pat || !path) {
		sqlite3_result_int(ctx, 0);
		return;
	}
	const char *name = strrchr(path, '/');
	/* Byte-wise like find -name: the C locale's fnmatch, '/' never in a name. */
	sqlite3_result_int(ctx, fnmatch(pat, name ? name + 1 : path, 0) == 0);
}

/* Options every connection gets. */
static int conn_setup(struct cat *c, sqlite3 *db, int reader)
{
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED));
	int rc = sqlite3_create_function_v2(db, "lzfs_glob", 2,
	                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
	                                    NULL, glob_fn, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(c, db, rc, "registering lzfs_glob");
	if (reader && !(c->flags & CAT_READONLY))
		return exec_sql(c, db, "PRAGMA query_only = 1; PRAGMA cache_size = -16384",
		                "configuring a reader");
	return exec_sql(c, db, "PRAGMA cache_size = -16384", "configuring a connection");
}

static int rconn_open(struct cat *c, struct rconn **out)
{
	struct rconn *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	int flags = SQLITE_OPEN_NOMUTEX |
	            ((c->flags & CAT_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
	int rc = sqlite3_open_v2(c->file, &r->db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(c, r->db, rc, "opening a read connection");
		sqlite3_close(r->db);
		free(r);
		return rc;
	}
	rc = conn_setup(c, r->db, 1);
	if (rc) {
		sqlite3_close(r->db);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static void rconn_close(struct rconn *r)
{
	for (int i = 0; i < R_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
	free(r);
}

static void *writer_main(void *arg);

/* Called by SQLite in the writer after each commit, with the WAL's size.
 *
 * Checkpoints copy WAL pages into the database file. SQLite runs them in
 * the COMMIT that crosses a threshold, which made them most of the writer's
 * time; here a thread does the copying on its own connection instead. But a
 * checkpoint running beside a writer that keeps appending never reaches the
 * WAL's end, and SQLite only starts the WAL over once everything is copied:
 * so when the WAL has grown and the checkpointer is idle (its pass done,
 * most pages copied), the writer copies the rest itself, between two of its
 * transactions, and the next one starts the WAL over. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct cat *c = arg;
	int inline_ckpt = 0;
	pthread_mutex_lock(&c->cklock);
	if (pages >= CAT_WAL_MAX_PAGES) {
		inline_ckpt = 1;
	} else if (pages >= CAT_WAL_RESET_PAGES && !c->ck_running && !c->ck_wanted) {
		inline_ckpt = 1;
	} else if (pages >= CAT_CKPT_PAGES && !c->ck_running) {
		c->ck_wanted = 1;
		pthread_cond_signal(&c->ckcond);
	}
	pthread_mutex_unlock(&c->cklock);
	if (inline_ckpt) {
		if (pages >= CAT_WAL_MAX_PAGES && !c->wal_warned) {
			log_warn(
			    "catalog %s: the WAL holds %d pages; the writer checkpoints itself",
			    c->file, pages);
			c->wal_warned = 1;
		}
		/* Busy if the checkpointer is at it after all: then next time. */
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
	return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
	struct cat *c = arg;
	int warned = 0;
	pthread_setname_np(pthread_self(), "lzfs-checkpoint");
	pthread_mutex_lock(&c->cklock);
	for (;;) {
		while (!c->ck_wanted && !c->ck_stop)
			pthread_cond_wait(&c->ckcond, &c->cklock);
		if (c->ck_stop)
			break;
		c->ck_wanted = 0;
		c->ck_running = 1;
		pthread_mutex_unlock(&c->cklock);
		/* PASSIVE: copies what no reader still needs, without waiting
		 * for anyone. Again while the writer appended a lot meanwhile. */
		int rc, log = 0, done = 0;
		do {
			rc = sqlite3_wal_checkpoint_v2(c->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE,
			                               &log, &done);
		} while (rc == SQLITE_OK && log - done >= CAT_CKPT_PAGES && !c->ck_stop);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !warned) {
			log_warn("catalog %s: checkpoint: %s", c->file, sqlite3_errmsg(c->ckdb));
			warned = 1;
		}
		pthread_mutex_lock(&c->cklock);
		c->ck_running = 0;
		c->checkpoints++;
	}
	pthread_mutex_unlock(&c->cklock);
	return NULL;
}

static void sqlite_once(void)
{
	/* lzfs is SQLite's only user in its processes. Without this, every
	 * allocation SQLite makes in any thread takes one global mutex. Fails
	 * harmlessly (SQLITE_MISUSE) if SQLite was already initialised. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int cat_open(const char *file, int flags, struct cat **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sqlite_once);
	*out = NULL;
	if (sqlite3_threadsafe() == 0) {
		log_err("catalog %s: libsqlite3 was built without thread support", file);
		return -ENOTSUP;
	}
	if (catpg_is_url(file)) {
		struct cat *c = calloc(1, sizeof *c);
		if (!c)
			return -ENOMEM;
		int rc = catpg_open(file, flags, &c->pg);
		if (rc) {
			free(c);
			return rc;
		}
		*out = c;
		return 0;
	}
	struct cat *c = calloc(1, sizeof *c);
	if (!c || !(c->file = strdup(file))) {
		free(c);
		return -ENOMEM;
	}
	c->flags = flags;
	c->busy_ms = CAT_BUSY_MS;
	c->busy_applied = CAT_BUSY_MS;
	pthread_mutex_init(&c->qlock, NULL);
	pthread_cond_init(&c->qcond, NULL);
	pthread_mutex_init(&c->plock, NULL);
	pthread_mutex_init(&c->cklock, NULL);
	pthread_cond_init(&c->ckcond, NULL);

	int ro = flags & CAT_READONLY;
	int create = check_file(c);
	int rc = create < 0 ? create : 0;
	if (create == 1 && (ro || !(flags & CAT_CREATE))) {
		log_err("catalog %s: does not exist (or is empty); it is created when lzfs starts",
		        file);
		rc = -ENOENT;
	}
	if (rc)
		goto fail;

	/* Identity first, on a read-only connection: it can neither write nor
	 * checkpoint a foreign file's WAL into it when it closes. */
	int64_t version = CAT_SCHEMA_VERSION;
	if (!create) {
		rc =
		    sqlite3_open_v2(file, &c->db, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READONLY, NULL);
		if (rc != SQLITE_OK) {
			rc = db_fail(c, c->db, rc, "opening");
			goto fail;
		}
		if ((rc = conn_setup(c, c->db, 1)) || (rc = verify(c, c->db, &version)))
			goto fail;
		if (ro) {
			struct rconn *r = calloc(1, sizeof *r);
			if (!r) {
				rc = -ENOMEM;
				goto fail;
			}
			r->db = c->db;
			c->db = NULL;
			c->idle = r;
			c->nidle = 1;
			*out = c;
			return 0;
		}
		sqlite3_close(c->db);
		c->db = NULL;
	}

	int oflags =
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(file, &c->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(c, c->db, rc, "opening");
		goto fail;
	}
	if ((rc = conn_setup(c, c->db, 0)))
		goto fail;
	if (create) {
		/* WAL before the first table so even creation is crash-safe. */
		rc = exec_sql(c, c->db, "PRAGMA journal_mode = WAL", "enabling WAL");
		if (rc == 0)
			rc = init_schema(c, c->db);
		if (rc == 1) /* another process created it meanwhile */
			rc = verify(c, c->db, &version);
	}
	if (rc == 0 && version < CAT_SCHEMA_VERSION)
		rc = migrate(c, c->db);
	if (rc)
		goto fail;

	sqlite3_stmt *st;
	rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		const char *mode =
		    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		rc = mode && strcmp(mode, "wal") == 0 ? 0 : -EIO;
		if (rc)
			log_err("catalog %s: cannot switch to WAL mode (%s)", file,
			        mode ? mode : sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
	} else {
		rc = db_fail(c, c->db, rc, "enabling WAL");
	}
	/* FULL in WAL mode: the WAL is fsynced at every commit, so a write
	 * call that returned 0 survives a power cut. Group commit keeps the
	 * number of fsyncs low. */
	if (rc == 0)
		rc = exec_sql(c, c->db,
		              "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
		              "PRAGMA cache_size = -65536; PRAGMA journal_size_limit = 67108864;"
		              "PRAGMA temp_store = MEMORY",
		              "configuring the writer");
	if (rc)
		goto fail;
	rc = sqlite3_open_v2(file, &c->ckdb, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(c, c->ckdb, rc, "opening the checkpointer's connection");
		goto fail;
	}
	/* FULL: a checkpoint syncs the WAL before and the database after. */
	if ((rc = conn_setup(c, c->ckdb, 0)) ||
	    (rc = exec_sql(c, c->ckdb, "PRAGMA synchronous = FULL", "configuring checkpoints")))
		goto fail;
	rc = pthread_create(&c->ckpt, NULL, ckpt_main, c);
	if (rc) {
		log_err("catalog %s: cannot start the checkpointer thread: %s", file, strerror(rc));
		rc = -rc;
		goto fail;
	}
	c->ckpt_started = 1;
	/* Replaces SQLite's own checkpoints at commit. */
	sqlite3_wal_hook(c->db, wal_hook, c);
	rc = pthread_create(&c->writer, NULL, writer_main, c);
	if (rc) {
		log_err("catalog %s: cannot start the writer thread: %s", file, strerror(rc));
		rc = -rc;
		goto fail;
	}
	c->writer_started = 1;
	*out = c;
	return 0;
fail:
	cat_close(c);
	return rc < 0 ? rc : -EIO;
}

void cat_close(struct cat *c)
{
	if (!c)
		return;
	if (c->pg) {
		catpg_close(c->pg);
		free(c);
		return;
	}
	if (c->writer_started) {
		pthread_mutex_lock(&c->qlock);
		c->stopping = 1;
		pthread_cond_signal(&c->qcond);
		pthread_mutex_unlock(&c->qlock);
		pthread_join(c->writer, NULL);
	}
	if (c->ckpt_started) {
		pthread_mutex_lock(&c->cklock);
		c->ck_stop = 1;
		pthread_cond_signal(&c->ckcond);
		pthread_mutex_unlock(&c->cklock);
		pthread_join(c->ckpt, NULL);
	}
	if (c->ckdb)
		sqlite3_close(c->ckdb);
	while (c->idle) {
		struct rconn *r = c->idle;
		c->idle = r->next;
		rconn_close(r);
	}
	for (int i = 0; i < W_COUNT; i++)
		sqlite3_finalize(c->ws[i]);
	if (c->db) {
		if (c->writer_started)
			sqlite3_exec(c->db, "PRAGMA optimize", NULL, NULL, NULL);
		/* The last connection checkpoints and removes the WAL. */
		int rc = sqlite3_close(c->db);
		if (rc != SQLITE_OK)
			log_err("catalog %s: close: %s", c->file, sqlite3_errstr(rc));
	}
	pthread_mutex_destroy(&c->qlock);
	pthread_cond_destroy(&c->qcond);
	pthread_mutex_destroy(&c->plock);
	pthread_mutex_destroy(&c->cklock);
	pthread_cond_destroy(&c->ckcond);
	free(c->file);
	free(c);
}

void cat_stats(struct cat *c, struct cat_stats *out)
{
	if (c->pg) {
		catpg_stats(c->pg, out);
		return;
	}
	pthread_mutex_lock(&c->qlock);
	*out = c->stats;
	pthread_mutex_unlock(&c->qlock);
	pthread_mutex_lock(&c->cklock);
	out->checkpoints = c->checkpoints;
	pthread_mutex_unlock(&c->cklock);
}

void cat_set_busy_timeout(struct cat *c, int ms)
{
	if (c->pg) {
		catpg_set_busy_timeout(c->pg, ms);
		return;
	}
	/* The writer and each read connection pick it up when next used. */
	__atomic_store_n(&c->busy_ms, ms, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* the writer */

static sqlite3_stmt *wst(struct cat *c, enum wstmt id)
{
	if (!c->ws[id]) {
		int rc = sqlite3_prepare_v3(c->db, wsql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                            &c->ws[id], NULL);
		if (rc != SQLITE_OK) {
			db_fail(c, c->db, rc, wsql[id]);
			c->ws[id] = NULL;
		}
	}
	return c->ws[id];
}

/* Statement id prepared or return -EIO from the calling op. */
#define WST(var, id)                                                                               \
	sqlite3_stmt *var = wst(c, id);                                                            \
	if (!var)                                                                                  \
	return -EIO

/* A row with these values leaves (sign -1) or enters (+1) the totals. */
static void tally(struct cat *c, int state, int current, int64_t size, int sign)
{
	if (current) {
		c->req_tally.n[state] += sign;
		c->req_tally.bytes[state] += sign * size;
	}
	if (state == CAT_DELETED)
		c->req_tally.n[5] += sign;
}

static int w_event(struct cat *c, int64_t obj_id, const char *path, const char *kind,
                   const char *detail)
{
	WST(st, W_EVENT);
	sqlite3_bind_int64(st, 1, now_ns());
	if (obj_id > 0)
		sqlite3_bind_int64(st, 2, obj_id);
	bind_text(st, 3, path);
	bind_text(st, 4, kind);
	bind_text(st, 5, detail);
	return st_exec(c, c->db, st, "appending an event");
}

static int w_coll_id(struct cat *c, const char *path, int64_t *id)
{
	WST(st, W_COLL_ID);
	bind_text(st, 1, path);
	return st_int64(c, c->db, st, id, "looking up a collection");
}

static int w_current_id(struct cat *c, const char *path, int64_t *id)
{
	WST(st, W_OBJ_CURRENT_ID);
	bind_text(st, 1, path);
	return st_int64(c, c->db, st, id, "looking up an object");
}

/* mkdir -p: the id of collection `path`, creating it and its parents. */
static int w_coll_ensure(struct cat *c, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                         int64_t *id)
{
	int rc = w_coll_id(c, path, id);
	if (rc)
		return rc < 0 ? rc : 0;
	if (!*path) {
		log_err("catalog %s: the root collection is missing", c->file);
		return -EPROTO;
	}
	int64_t obj;
	rc = w_current_id(c, path, &obj);
	if (rc < 0)
		return rc;
	if (rc) {
		log_warn("catalog %s: cannot create collection %s: an object has that path",
		         c->file, path);
		return -ENOTDIR;
	}
	char *parent = parent_of(path);
	if (!parent)
		return -ENOMEM;
	int64_t pid;
	rc = w_coll_ensure(c, parent, mode, uid, gid, &pid);
	free(parent);
	if (rc)
		return rc;
	WST(st, W_COLL_INSERT);
	bind_text(st, 1, path);
	sqlite3_bind_int64(st, 2, pid);
	sqlite3_bind_int64(st, 3, (mode & S_IFMT) ? mode : (mode | S_IFDIR));
	sqlite3_bind_int64(st, 4, uid);
	sqlite3_bind_int64(st, 5, gid);
	sqlite3_bind_int64(st, 6, now_ns());
	rc = st_exec(c, c->db, st, "creating a collection");
	if (rc)
		return rc;
	*id = sqlite3_last_insert_rowid(c->db);
	return w_event(c, 0, path, "mkdir", NULL);
}

static int w_op_coll_ensure(struct cat *c, struct req *r)
{
	if (!path_valid(r->s1, 1)) {
		log_warn("catalog %s: invalid collection path", c->file);
		return -EINVAL;
	}
	return w_coll_ensure(c, r->s1, r->mode, r->uid, r->gid, &r->id);
}

static int w_op_coll_remove(struct cat *c, struct req *r)
{
	if (!path_valid(r->s1, 0))
		return -EINVAL;
	int64_t id, x;
	int rc = w_coll_id(c, r->s1, &id);
	if (rc <= 0)
		return rc < 0 ? rc : -ENOENT;
	WST(child, W_COLL_HAS_CHILD);
	sqlite3_bind_int64(child, 1, id);
	if ((rc = st_int64(c, c->db, child, &x, "checking a collection")) != 0)
		return rc < 0 ? rc : -ENOTEMPTY;
	WST(obj, W_COLL_HAS_OBJ);
	sqlite3_bind_int64(obj, 1, id);
	if ((rc = st_int64(c, c->db, obj, &x, "checking a collection")) != 0)
		return rc < 0 ? rc : -ENOTEMPTY;
	WST(meta, W_META_DELETE_COLL);
	sqlite3_bind_int64(meta, 1, id);
	if ((rc = st_exec(c, c->db, meta, "removing a collection")))
		return rc;
	/* Older versions that lived here keep their rows; the foreign key
	 * sets their coll_id to NULL. They are all deleted (none is current),
	 * so none can become current again without a new add. */
	WST(del, W_COLL_DELETE);
	sqlite3_bind_int64(del, 1, id);
	if ((rc = st_exec(c, c->db, del, "removing a collection")))
		return rc;
	return w_event(c, 0, r->s1, "rmdir", NULL);
}

/* The highest non-deleted version of path becomes current (after its
 * current version was deleted or renamed away). */
static int w_promote(struct cat *c, const char *path, int64_t gone_id)
{
	WST(st, W_PROMOTE);
	bind_text(st, 1, path);
	int rc = sqlite3_step(st);
	int64_t id = 0, version = 0;
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		version = sqlite3_column_int64(st, 1);
		int state = sqlite3_column_int(st, 2);
		int64_t size = sqlite3_column_int64(st, 3);
		tally(c, state, 0, size, -1);
		tally(c, state, 1, size, +1);
		rc = sqlite3_step(st);
	}
	st_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(c, c->db, rc, "promoting an older version");
	if (!id)
		return 0;
	char detail[96];
	snprintf(detail, sizeof detail, "version %lld is current again (object %lld gone)",
	         (long long)version, (long long)gone_id);
	return w_event(c, id, path, "current", detail);
}

/* Demotes current row cur. */
static int w_demote(struct cat *c, int64_t cur)
{
	WST(dm, W_DEMOTE);
	sqlite3_bind_int64(dm, 1, cur);
	int rc = sqlite3_step(dm);
	if (rc == SQLITE_ROW) {
		int state = sqlite3_column_int(dm, 0);
		int64_t size = sqlite3_column_int64(dm, 1);
		tally(c, state, 1, size, -1);
		tally(c, state, 0, size, +1);
		rc = sqlite3_step(dm);
	}
	st_done(dm);
	return rc == SQLITE_DONE ? 0 : db_fail(c, c->db, rc, "demoting the current version");
}

/* Demotes the current version at path, if any (its id in *prev, else 0),
 * and returns in *version the version number a new row there gets. */
static int w_make_room(struct cat *c, const char *path, int64_t *prev, int *version)
{
	WST(mv, W_MAX_VERSION);
	bind_text(mv, 1, path);
	int rc = sqlite3_step(mv);
	int64_t maxv = 0, cur = 0;
	if (rc == SQLITE_ROW) {
		maxv = sqlite3_column_int64(mv, 0);
		cur = sqlite3_column_int64(mv, 1);
		rc = sqlite3_step(mv);
	}
	st_done(mv);
	if (rc != SQLITE_DONE)
		return db_fail(c, c->db, rc, "reading versions");
	*version = (int)maxv + 1;
	*prev = cur;
	return cur ? w_demote(c, cur) : 0;
}

static int hex64(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* Adds one object row: the body of cat_obj_add and of each row of
 * cat_obj_add_many. *id_out and *version_out are set on success. */
static int w_obj_add(struct cat *c, const struct cat_obj *o, int64_t *id_out, int *version_out)
{
	/* Ingested at once: a small file already sent in one PUT and verified. */
	int ingested = o->state == CAT_INGESTED;
	if (!path_valid(o->path, 0) || !o->key || !*o->key) {
		log_warn("catalog %s: refusing to add an object with an invalid path or key",
		         c->file);
		return -EINVAL;
	}
	if ((o->state != CAT_PENDING && !ingested) ||
	    (ingested &&
	     ((o->sha256[0] && !hex64(o->sha256)) || !memchr(o->etag, '\0', sizeof o->etag)))) {
		log_warn("catalog %s: %s: an object is added as pending, or as ingested with a "
		         "sha256 in hex",
		         c->file, o->path);
		return -EINVAL;
	}
	const char *slash = strrchr(o->path, '/');
	int parent_len = slash ? (int)(slash - o->path) : 0;
	WST(pr, W_ADD_PROBE);
	bind_text(pr, 1, o->path);
	sqlite3_bind_text(pr, 2, o->path, parent_len, SQLITE_STATIC);
	int rc = sqlite3_step(pr);
	int64_t is_coll = 0, coll = 0, prev = 0;
	int version = 1;
	if (rc == SQLITE_ROW) {
		is_coll = sqlite3_column_type(pr, 0) != SQLITE_NULL;
		coll = sqlite3_column_int64(pr, 1);
		version = sqlite3_column_int(pr, 2) + 1;
		prev = sqlite3_column_int64(pr, 3);
		rc = sqlite3_step(pr);
	}
	st_done(pr);
	if (rc != SQLITE_DONE)
		return db_fail(c, c->db, rc, "looking up a path");
	if (is_coll)
		return -EISDIR;
	if (!coll) {
		char *parent = strndup(o->path, parent_len);
		if (!parent)
			return -ENOMEM;
		rc = w_coll_ensure(c, parent, S_IFDIR | 0755, o->uid, o->gid, &coll);
		free(parent);
		if (rc)
			return rc;
	}
	if (prev && (rc = w_demote(c, prev)))
		return rc;
	int64_t now = now_ns();
	WST(st, W_OBJ_INSERT);
	bind_text(st, 1, o->path);
	sqlite3_bind_int(st, 2, version);
	sqlite3_bind_int64(st, 3, coll);
	bind_text(st, 4, o->bucket ? o->bucket : "");
	bind_text(st, 5, o->key);
	sqlite3_bind_int64(st, 6, o->size);
	sqlite3_bind_int64(st, 7, o->mode);
	sqlite3_bind_int64(st, 8, o->uid);
	sqlite3_bind_int64(st, 9, o->gid);
	sqlite3_bind_int64(st, 10, o->mtime_ns);
	sqlite3_bind_int64(st, 11, now);
	bind_text(st, 12, o->source ? o->source : "");
	bind_text(st, 13, o->symlink);
	sqlite3_bind_int(st, 14, ingested ? CAT_INGESTED : CAT_PENDING);
	bind_text(st, 15, ingested ? o->sha256 : "");
	bind_text(st, 16, ingested ? o->etag : "");
	sqlite3_bind_int64(st, 17, ingested ? now : 0);
	if ((rc = st_exec(c, c->db, st, "adding an object")))
		return rc;
	int64_t id = sqlite3_last_insert_rowid(c->db);
	tally(c, ingested ? CAT_INGESTED : CAT_PENDING, 1, o->size, +1);
	c->req_tally.n[6]++;
	if (prev) {
		/* Metadata follows the path: the new version starts with the
		 * AVUs of the one it replaces, which keeps its own. */
		WST(mc, W_META_COPY);
		sqlite3_bind_int64(mc, 1, prev);
		sqlite3_bind_int64(mc, 2, id);
		if ((rc = st_exec(c, c->db, mc, "copying metadata")))
			return rc;
	}
	char *detail = NULL;
	/* The row keeps key, bucket and times; the event says what happened. */
	if (asprintf(&detail, "version %d, %lld bytes%s%s", version, (long long)o->size,
	             o->source && *o->source ? ", source " : "", o->source ? o->source : "") < 0)
		return -ENOMEM;
	rc = w_event(c, id, o->path, "add", detail);
	free(detail);
	if (rc == 0 && ingested) {
		/* The same history as the long way, in the same transaction. */
		if (asprintf(&detail, "%lld bytes, etag %s", (long long)o->size,
		             o->etag[0] ? o->etag : "-") < 0)
			return -ENOMEM;
		rc = w_event(c, id, NULL, "ingested", detail);
		free(detail);
	}
	*id_out = id;
	*version_out = version;
	return rc;
}

static int w_op_obj_add(struct cat *c, struct req *r)
{
	return w_obj_add(c, r->obj, &r->id, &r->version);
}

/* Legal transitions, [from][to]. */
static const unsigned char legal[5][5] = {
    [CAT_PENDING] = {[CAT_UPLOADING] = 1, [CAT_FAILED] = 1, [CAT_DELETED] = 1},
    [CAT_UPLOADING] = {[CAT_PENDING] = 1, [CAT_INGESTED] = 1, [CAT_FAILED] = 1, [CAT_DELETED] = 1},
    [CAT_INGESTED] = {[CAT_DELETED] = 1},
    [CAT_FAILED] = {[CAT_PENDING] = 1, [CAT_DELETED] = 1},
    [CAT_DELETED] = {0},
};

struct row {
	int state;
	int current;
	int version;
	int64_t size;
	char *path;
};

/* 0 and *row filled (free row->path), -ENOENT, or a negative errno. */
static int w_row(struct cat *c, int64_t id, struct row *row)
{
	WST(st, W_OBJ_ROW);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row->state = sqlite3_column_int(st, 0);
		row->path = strdup((const char *)sqlite3_column_text(st, 1));
		row->current = sqlite3_column_int(st, 2);
		row->version = sqlite3_column_int(st, 3);
		row->size = sqlite3_column_int64(st, 4);
		st_done(st);
		return row->path ? 0 : -ENOMEM;
	}
	st_done(st);
	if (rc == SQLITE_DONE) {
		log_warn("catalog %s: no object with id %lld", c->file, (long long)id);
		return -ENOENT;
	}
	return db_fail(c, c->db, rc, "reading an object");
}

static int w_op_transition(struct cat *c, struct req *r, enum cat_state to)
{
	if (to == CAT_INGESTED &&
	    ((r->s1 && *r->s1 && !hex64(r->s1)) ||
	     (r->s2 && strlen(r->s2) >= sizeof(((struct cat_obj *)0)->etag)))) {
		log_warn("catalog %s: object %lld: malformed sha256 or etag", c->file,
		         (long long)r->id);
		return -EINVAL;
	}
	struct row row;
	int rc = w_row(c, r->id, &row);
	if (rc)
		return rc;
	if (!legal[row.state][to]) {
		log_warn("catalog %s: object %lld (%s v%d): illegal transition %s -> %s refused",
		         c->file, (long long)r->id, row.path, row.version,
		         cat_state_name(row.state), cat_state_name(to));
		free(row.path);
		return -EINVAL;
	}
	char *detail = NULL;
	const char *kind = cat_state_name(to);
	sqlite3_stmt *st = NULL;
	switch (to) {
	case CAT_UPLOADING:
		st = wst(c, W_SET_UPLOADING);
		if (st)
			bind_text(st, 2, r->s1);
		detail = strdup(r->s1 ? r->s1 : "single put");
		break;
	case CAT_INGESTED:
		st = wst(c, W_SET_INGESTED);
		if (st) {
			sqlite3_bind_int64(st, 2, r->n1);
			bind_text(st, 3, r->s1 ? r->s1 : "");
			bind_text(st, 4, r->s2 ? r->s2 : "");
			sqlite3_bind_int64(st, 5, now_ns());
		}
		if (asprintf(&detail, "%lld bytes, etag %s", (long long)r->n1,
		             r->s2 && *r->s2 ? r->s2 : "-") < 0)
			detail = NULL;
		break;
	case CAT_FAILED:
		st = wst(c, W_SET_FAILED);
		if (st)
			bind_text(st, 2, r->s1 ? r->s1 : "unknown error");
		detail = strdup(r->s1 ? r->s1 : "unknown error");
		break;
	case CAT_PENDING:
		st = wst(c, W_SET_PENDING);
		detail = r->s1 ? strdup(r->s1) : NULL;
		kind = "retry";
		if (row.state == CAT_UPLOADING)
			kind = "restart";
		break;
	case CAT_DELETED:
		st = wst(c, W_SET_DELETED);
		detail = r->s1 ? strdup(r->s1) : NULL;
		break;
	}
	if (!st) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, r->id);
	if ((rc = st_exec(c, c->db, st, "changing an object's state")))
		goto out;
	tally(c, row.state, row.current, row.size, -1);
	tally(c, to, to == CAT_DELETED ? 0 : row.current, to == CAT_INGESTED ? r->n1 : row.size,
	      +1);
	/* Parts only matter while an upload can still be resumed. */
	if (to == CAT_INGESTED || to == CAT_PENDING || to == CAT_DELETED) {
		sqlite3_stmt *pc = wst(c, W_PARTS_CLEAR);
		if (!pc) {
			rc = -EIO;
			goto out;
		}
		sqlite3_bind_int64(pc, 1, r->id);
		if ((rc = st_exec(c, c->db, pc, "clearing parts")))
			goto out;
	}
	/* The path is the object's (events show its current one); only events
	 * that set a path record it. */
	rc = w_event(c, r->id, NULL, kind, detail);
	if (rc == 0 && to == CAT_DELETED && row.current)
		rc = w_promote(c, row.path, r->id);
out:
	free(detail);
	free(row.path);
	return rc;
}

static int w_op_part_done(struct cat *c, struct req *r)
{
	if (r->n1 < 1 || r->n1 > 10000 || !r->s1) {
		log_warn("catalog %s: object %lld: invalid part %lld", c->file, (long long)r->id,
		         (long long)r->n1);
		return -EINVAL;
	}
	struct row row;
	int rc = w_row(c, r->id, &row);
	if (rc)
		return rc;
	free(row.path);
	if (row.state != CAT_UPLOADING) {
		log_warn("catalog %s: object %lld: part %lld reported while %s; refused", c->file,
		         (long long)r->id, (long long)r->n1, cat_state_name(row.state));
		return -EINVAL;
	}
	WST(st, W_PART_PUT);
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int64(st, 2, r->n1);
	bind_text(st, 3, r->s1);
	sqlite3_bind_int64(st, 4, r->n2);
	if ((rc = st_exec(c, c->db, st, "recording a part")))
		return rc;
	WST(cnt, W_PARTS_COUNT);
	sqlite3_bind_int64(cnt, 1, r->id);
	return st_exec(c, c->db, cnt, "counting parts");
}

static int w_op_rename(struct cat *c, struct req *r)
{
	const char *to = r->s1;
	if (!path_valid(to, 0) || (r->s2 && !*r->s2)) {
		log_warn("catalog %s: object %lld: invalid rename target", c->file,
		         (long long)r->id);
		return -EINVAL;
	}
	struct row row;
	int rc = w_row(c, r->id, &row);
	if (rc)
		return rc;
	char *detail = NULL;
	if (row.state == CAT_DELETED) {
		log_warn("catalog %s: object %lld (%s): cannot rename a deleted version", c->file,
		         (long long)r->id, row.path);
		rc = -EINVAL;
		goto out;
	}
	if (asprintf(&detail, "%s -> %s%s%s", row.path, to, r->s2 ? ", key " : "",
	             r->s2 ? r->s2 : "") < 0) {
		detail = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if (strcmp(row.path, to) == 0) {
		sqlite3_stmt *st = wst(c, W_SET_KEY);
		if (!st) {
			rc = -EIO;
			goto out;
		}
		sqlite3_bind_int64(st, 1, r->id);
		bind_text(st, 2, r->s2);
		if ((rc = st_exec(c, c->db, st, "renaming")) == 0)
			rc = w_event(c, r->id, to, "rename", detail);
		goto out;
	}
	int64_t x, coll, prev = 0;
	int version = 1;
	if ((rc = w_coll_id(c, to, &x))) {
		rc = rc < 0 ? rc : -EISDIR;
		goto out;
	}
	char *parent = parent_of(to);
	if (!parent) {
		rc = -ENOMEM;
		goto out;
	}
	rc = w_coll_ensure(c, parent, S_IFDIR | 0755, 0, 0, &coll);
	free(parent);
	if (rc || (rc = w_make_room(c, to, &prev, &version)))
		goto out;
	if (prev) {
		char msg[64];
		snprintf(msg, sizeof msg, "replaced by object %lld (rename)", (long long)r->id);
		if ((rc = w_event(c, prev, to, "superseded", msg)))
			goto out;
	}
	sqlite3_stmt *st = wst(c, W_RENAME);
	if (!st) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, r->id);
	bind_text(st, 2, to);
	sqlite3_bind_int(st, 3, version);
	bind_text(st, 4, r->s2);
	sqlite3_bind_int64(st, 5, coll);
	if ((rc = st_exec(c, c->db, st, "renaming")))
		goto out;
	tally(c, row.state, row.current, row.size, -1);
	tally(c, row.state, 1, row.size, +1);
	if ((rc = w_event(c, r->id, to, "rename", detail)))
		goto out;
	if (row.current)
		rc = w_promote(c, row.path, r->id);
out:
	free(detail);
	free(row.path);
	return rc;
}

static int w_op_set_attr(struct cat *c, struct req *r)
{
	WST(st, W_SET_ATTR);
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int64(st, 2, r->mode);
	sqlite3_bind_int64(st, 3, r->uid);
	sqlite3_bind_int64(st, 4, r->gid);
	sqlite3_bind_int64(st, 5, r->n1);
	int rc = st_exec(c, c->db, st, "setting attributes");
	if (rc)
		return rc;
	if (sqlite3_changes(c->db) == 0) {
		log_warn("catalog %s: no object with id %lld", c->file, (long long)r->id);
		return -ENOENT;
	}
	char detail[96];
	snprintf(detail, sizeof detail, "mode %o, uid %u, gid %u, mtime %lld", (unsigned)r->mode,
	         (unsigned)r->uid, (unsigned)r->gid, (long long)r->n1);
	return w_event(c, r->id, NULL, "attr", detail);
}

/* Metadata target of path: its current object (kind 0) or collection. */
static int w_meta_target(struct cat *c, const char *path, int *kind, int64_t *id)
{
	int rc = 0;
	if (*path) {
		rc = w_current_id(c, path, id);
		if (rc < 0)
			return rc;
		*kind = 0;
	}
	if (rc == 0) {
		rc = w_coll_id(c, path, id);
		if (rc < 0)
			return rc;
		*kind = 1;
	}
	return rc ? 0 : -ENOENT;
}

static int w_op_meta(struct cat *c, struct req *r)
{
	const char *path = r->s1, *name = r->s2;
	if (!path_valid(path, 1) || !name || !*name || (r->op == OP_META_SET && !r->s3))
		return -EINVAL;
	int kind;
	int64_t id;
	int rc = w_meta_target(c, path, &kind, &id);
	if (rc)
		return rc;
	char *detail = NULL;
	if (r->op == OP_META_SET) {
		WST(st, W_META_PUT);
		sqlite3_bind_int(st, 1, kind);
		sqlite3_bind_int64(st, 2, id);
		bind_text(st, 3, name);
		bind_text(st, 4, r->s3);
		bind_text(st, 5, r->s4);
		if ((rc = st_exec(c, c->db, st, "setting metadata")))
			return rc;
		if (asprintf(&detail, "%s = %s%s%s", name, r->s3, r->s4 ? " " : "",
		             r->s4 ? r->s4 : "") < 0)
			return -ENOMEM;
	} else {
		WST(st, W_META_DEL);
		sqlite3_bind_int(st, 1, kind);
		sqlite3_bind_int64(st, 2, id);
		bind_text(st, 3, name);
		if ((rc = st_exec(c, c->db, st, "removing metadata")))
			return rc;
		if (sqlite3_changes(c->db) == 0)
			return -ENOENT;
		if (!(detail = strdup(name)))
			return -ENOMEM;
	}
	rc = w_event(c, kind == 0 ? id : 0, kind == 0 ? NULL : path,
	             r->op == OP_META_SET ? "meta-set" : "meta-rm", detail);
	free(detail);
	return rc;
}

static int w_run(struct cat *c, struct req *r)
{
	switch (r->op) {
	case OP_COLL_ENSURE:
		return w_op_coll_ensure(c, r);
	case OP_COLL_REMOVE:
		return w_op_coll_remove(c, r);
	case OP_OBJ_ADD:
		return w_op_obj_add(c, r);
	case OP_UPLOADING:
		return w_op_transition(c, r, CAT_UPLOADING);
	case OP_PART_DONE:
		return w_op_part_done(c, r);
	case OP_INGESTED:
		return w_op_transition(c, r, CAT_INGESTED);
	case OP_FAILED:
		return w_op_transition(c, r, CAT_FAILED);
	case OP_PENDING:
		return w_op_transition(c, r, CAT_PENDING);
	case OP_DELETED:
		return w_op_transition(c, r, CAT_DELETED);
	case OP_RENAME:
		return w_op_rename(c, r);
	case OP_SET_ATTR:
		return w_op_set_attr(c, r);
	case OP_META_SET:
	case OP_META_RM:
		return w_op_meta(c, r);
	case OP_EVENT:
		if (!r->s2 || !*r->s2)
			return -EINVAL;
		return w_event(c, r->id, r->s1, r->s2, r->s3);
	case OP_OBJ_ADD_MANY: /* row by row, in w_run_row */
		break;
	}
	return -EINVAL;
}

static void tally_add(struct tally *to, const struct tally *t)
{
	for (int k = 0; k < 7; k++)
		to->n[k] += t->n[k];
	for (int k = 0; k < 5; k++)
		to->bytes[k] += t->bytes[k];
}

/* Writes the transaction's net change of the totals. */
static int w_totals(struct cat *c)
{
	for (int k = 0; k < 7; k++) {
		int64_t bytes = k < 5 ? c->txn_tally.bytes[k] : 0;
		if (!c->txn_tally.n[k] && !bytes)
			continue;
		WST(st, W_TOTALS);
		sqlite3_bind_int(st, 1, k);
		sqlite3_bind_int64(st, 2, c->txn_tally.n[k]);
		sqlite3_bind_int64(st, 3, bytes);
		int rc = st_exec(c, c->db, st, "updating totals");
		if (rc)
			return rc;
	}
	return 0;
}

static int w_simple(struct cat *c, enum wstmt id, const char *what)
{
	sqlite3_stmt *st = wst(c, id);
	return st ? st_exec(c, c->db, st, what) : -EIO;
}

/* Rows a request holds: what CAT_BATCH_MAX and the stats count. */
static size_t req_rows(const struct req *r)
{
	return r->op == OP_OBJ_ADD_MANY ? r->nobjs : 1;
}

/* Fails whatever of q had not failed yet (its transaction is lost). */
static void req_fail(struct req *q, int e)
{
	if (q->op != OP_OBJ_ADD_MANY) {
		if (q->rc == 0)
			q->rc = e;
		return;
	}
	for (size_t i = 0; i < q->nobjs; i++)
		if (q->results[i] == 0)
			q->results[i] = e;
}

/* Runs row i of r (a request, or one row of a batch of adds). */
static int w_run_row(struct cat *c, struct req *r, size_t i)
{
	if (r->op != OP_OBJ_ADD_MANY)
		return r->rc = w_run(c, r);
	struct cat_obj *o = &r->objs[i];
	int64_t id = 0;
	int version = 0;
	int rc = w_obj_add(c, o, &id, &version);
	if (rc == 0) {
		o->id = id;
		o->version = version;
	}
	return r->results[i] = rc;
}

/* The result of unit (r, i) so far. */
static int unit_rc(const struct req *r, size_t i)
{
	return r->op == OP_OBJ_ADD_MANY ? r->results[i] : r->rc;
}

/* The next unit of work after (r, i): the next row, or the next request. */
static void unit_next(struct req **r, size_t *i)
{
	if (++*i >= req_rows(*r)) {
		*r = (*r)->next;
		*i = 0;
	}
}

/* SQLite rolled the whole transaction back (disk full, I/O error): the
 * requests from first to r are lost; the caller starts again after r. */
static void txn_lost(struct cat *c, struct req *first, struct req *r, int rc)
{
	int e = rc ? rc : -EIO;
	for (struct req *q = first; q != r->next; q = q->next)
		req_fail(q, e);
	log_err("catalog %s: transaction rolled back by SQLite; %s", c->file, strerror(-e));
}

/* Runs a batch of requests in as few transactions as possible: normally
 * one. A request, or a row of a batch of adds, that fails is undone alone
 * and the others still commit.
 *
 * A savepoint per request made SQLite copy every page the request touched
 * into its sub-journal: a third of the writer's instructions for an add.
 * So requests run in segments, one savepoint for many of them. A request
 * that fails without having changed a row (sqlite3_total_changes64, which
 * a statement SQLite rolled back does not count) needs no undo. One that
 * fails after changing rows rolls the segment back; the requests before it
 * in the segment, which succeeded on the same data, run again each under
 * its own savepoint; the failed one keeps its result; a new segment starts
 * after it. Each request thus runs at most twice, and only when a request
 * after it in its segment failed late. */
static void run_batch(struct cat *c, struct req *batch, struct req *end)
{
	struct req *r = batch;
	size_t i = 0;
	while (r != end) {
		struct req *first = r;
		int rc = w_simple(c, W_BEGIN, "beginning a transaction");
		if (rc) {
			for (; r != end; r = r->next)
				req_fail(r, rc);
			return;
		}
		int broken = 0, seg_open = 0;
		struct req *seg_r = NULL;
		size_t seg_i = 0;
		memset(&c->txn_tally, 0, sizeof c->txn_tally);
		while (r != end && !broken) {
			if (!seg_open) {
				if ((rc = w_simple(c, W_SEG_SAVEPOINT, "savepoint"))) {
					txn_lost(c, first, r, rc);
					broken = 1;
					break;
				}
				seg_open = 1;
				seg_r = r;
				seg_i = i;
				memset(&c->seg_tally, 0, sizeof c->seg_tally);
			}
			memset(&c->req_tally, 0, sizeof c->req_tally);
			sqlite3_int64 changes = sqlite3_total_changes64(c->db);
			rc = w_run_row(c, r, i);
			if (sqlite3_get_autocommit(c->db)) {
				txn_lost(c, first, r, rc);
				broken = 1;
				break;
			}
			if (rc == 0) {
				tally_add(&c->seg_tally, &c->req_tally);
			} else if (sqlite3_total_changes64(c->db) != changes) {
				/* Undo the segment and redo its good part. */
				w_simple(c, W_SEG_ROLLBACK_TO, "rolling back a segment");
				memset(&c->seg_tally, 0, sizeof c->seg_tally);
				for (struct req *q = seg_r; q != r || seg_i != i; unit_next(&q, &seg_i)) {
					/* One that failed changed nothing and would
					 * fail again the same way. */
					if (unit_rc(q, seg_i))
						continue;
					memset(&c->req_tally, 0, sizeof c->req_tally);
					int e = w_simple(c, W_SAVEPOINT, "savepoint");
					if (e == 0)
						e = w_run_row(c, q, seg_i);
					if (sqlite3_get_autocommit(c->db)) {
						txn_lost(c, first, r, e);
						broken = 1;
						break;
					}
					if (e)
						w_simple(c, W_ROLLBACK_TO, "rolling back a request");
					else
						tally_add(&c->seg_tally, &c->req_tally);
					w_simple(c, W_RELEASE, "releasing a savepoint");
				}
				if (broken)
					break;
				w_simple(c, W_SEG_RELEASE, "releasing a savepoint");
				tally_add(&c->txn_tally, &c->seg_tally);
				seg_open = 0;
			}
			unit_next(&r, &i);
		}
		if (broken) {
			/* Start again after the request that was running. */
			r = r->next;
			i = 0;
			continue;
		}
		if (seg_open) {
			w_simple(c, W_SEG_RELEASE, "releasing a savepoint");
			tally_add(&c->txn_tally, &c->seg_tally);
		}
		rc = w_totals(c);
		int64_t t0 = clock_ns(CLOCK_MONOTONIC), u0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		if (rc == 0)
			rc = w_simple(c, W_COMMIT, "committing");
		int64_t t1 = clock_ns(CLOCK_MONOTONIC), u1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		pthread_mutex_lock(&c->qlock);
		c->stats.commit_ns += t1 - t0;
		c->stats.commit_cpu_ns += u1 - u0;
		pthread_mutex_unlock(&c->qlock);
		if (rc) {
			if (!sqlite3_get_autocommit(c->db))
				w_simple(c, W_ROLLBACK, "rolling back");
			for (struct req *q = first; q != r; q = q->next)
				req_fail(q, rc);
		} else {
			pthread_mutex_lock(&c->qlock);
			c->stats.transactions++;
			pthread_mutex_unlock(&c->qlock);
		}
	}
}

static void *writer_main(void *arg)
{
	struct cat *c = arg;
	pthread_setname_np(pthread_self(), "lzfs-catalog");
	pthread_mutex_lock(&c->qlock);
	for (;;) {
		while (!c->qhead && !c->stopping) {
			c->writer_waiting = 1;
			pthread_cond_wait(&c->qcond, &c->qlock);
			c->writer_waiting = 0;
		}
		if (!c->qhead)
			break;
		struct req *batch = c->qhead, *end = batch;
		uint64_t n = 0;
		while (end && n < CAT_BATCH_MAX) {
			n += req_rows(end);
			end = end->next;
		}
		c->qhead = end;
		if (!end)
			c->qtail = NULL;
		int busy_ms = __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->qlock);

		if (busy_ms != c->busy_applied) {
			sqlite3_busy_timeout(c->db, busy_ms);
			c->busy_applied = busy_ms;
		}
		int64_t t0 = clock_ns(CLOCK_MONOTONIC), u0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		run_batch(c, batch, end);
		int64_t busy = clock_ns(CLOCK_MONOTONIC) - t0;
		int64_t u1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

		uint64_t failed = 0;
		for (struct req *r = batch; r != end; r = r->next) {
			if (r->op != OP_OBJ_ADD_MANY)
				failed += r->rc != 0;
			else
				for (size_t i = 0; i < r->nobjs; i++)
					failed += r->results[i] != 0;
		}
		pthread_mutex_lock(&c->qlock);
		c->stats.requests += n;
		c->stats.failed += failed;
		if (n > c->stats.max_batch)
			c->stats.max_batch = n;
		c->stats.busy_ns += busy;
		c->stats.busy_cpu_ns += u1 - u0;
		c->stats.cpu_ns = u1;
		pthread_mutex_unlock(&c->qlock);
		/* Waiters are woken outside qlock, so none of them blocks on
		 * it right after waking. */
		for (struct req *r = batch, *next; r != end; r = next) {
			next = r->next; /* r may be gone once posted */
			sem_post(&r->done);
		}
		pthread_mutex_lock(&c->qlock);
	}
	pthread_mutex_unlock(&c->qlock);
	return NULL;
}

/* Queues r and waits until the transaction holding it has committed. */
static int submit(struct cat *c, struct req *r)
{
	if (c->flags & CAT_READONLY)
		return -EROFS;
	r->rc = 0;
	r->next = NULL;
	pthread_mutex_lock(&c->qlock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->qlock);
		return -ESHUTDOWN;
	}
	sem_init(&r->done, 0, 0);
	if (c->qtail)
		c->qtail->next = r;
	else
		c->qhead = r;
	c->qtail = r;
	if (c->writer_waiting)
		pthread_cond_signal(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
	while (sem_wait(&r->done) != 0)
		; /* EINTR */
	sem_destroy(&r->done);
	return r->rc;
}

/* ------------------------------------------------------------------ */
/* write API */

int cat_coll_ensure(struct cat *cat, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                    int64_t *id)
{
	if (cat->pg)
		return catpg_coll_ensure(cat->pg, path, mode, uid, gid, id);
	struct req r = {.op = OP_COLL_ENSURE, .s1 = path, .mode = mode, .uid = uid, .gid = gid};
	int rc = submit(cat, &r);
	if (rc == 0 && id)
		*id = r.id;
	return rc;
}

int cat_coll_remove(struct cat *cat, const char *path)
{
	if (cat->pg)
		return catpg_coll_remove(cat->pg, path);
	struct req r = {.op = OP_COLL_REMOVE, .s1 = path};
	return submit(cat, &r);
}

int cat_obj_add(struct cat *cat, struct cat_obj *o)
{
	if (cat->pg)
		return catpg_obj_add(cat->pg, o);
	struct req r = {.op = OP_OBJ_ADD, .obj = o};
	int rc = submit(cat, &r);
	if (rc == 0) {
		o->id = r.id;
		o->version = r.version;
		if (o->state != CAT_INGESTED)
			o->state = CAT_PENDING;
		o->current = 1;
	}
	return rc;
}

int cat_obj_add_many(struct cat *cat, struct cat_obj *objs, size_t n, int *results)
{
	if (cat->pg)
		return catpg_obj_add_many(cat->pg, objs, n, results);
	int first_err = 0;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < CAT_ADD_MANY_MAX ? n - done : CAT_ADD_MANY_MAX;
		struct req r = {
		    .op = OP_OBJ_ADD_MANY, .objs = objs + done, .results = results + done, .nobjs = k};
		memset(results + done, 0, k * sizeof *results);
		int rc = submit(cat, &r);
		for (size_t i = done; i < done + k; i++) {
			if (rc && results[i] == 0)
				results[i] = rc; /* never reached the writer */
			if (results[i] == 0) {
				if (objs[i].state != CAT_INGESTED)
					objs[i].state = CAT_PENDING;
				objs[i].current = 1;
			} else {
				objs[i].id = 0;
				objs[i].version = 0;
				if (!first_err)
					first_err = results[i];
			}
		}
		done += k;
	}
	return first_err;
}

int cat_obj_set_uploading(struct cat *cat, int64_t id, const char *upload_id)
{
	if (cat->pg)
		return catpg_obj_set_uploading(cat->pg, id, upload_id);
	struct req r = {.op = OP_UPLOADING, .id = id, .s1 = upload_id};
	return submit(cat, &r);
}

int cat_obj_part_done(struct cat *cat, int64_t id, int part_number, const char *etag, int64_t size)
{
	if (cat->pg)
		return catpg_obj_part_done(cat->pg, id, part_number, etag, size);
	struct req r = {.op = OP_PART_DONE, .id = id, .n1 = part_number, .n2 = size, .s1 = etag};
	return submit(cat, &r);
}

int cat_obj_set_ingested(struct cat *cat, int64_t id, int64_t size, const char *sha256,
                         const char *etag)
{
	if (cat->pg)
		return catpg_obj_set_ingested(cat->pg, id, size, sha256, etag);
	struct req r = {.op = OP_INGESTED, .id = id, .n1 = size, .s1 = sha256, .s2 = etag};
	return submit(cat, &r);
}

int cat_obj_set_failed(struct cat *cat, int64_t id, const char *error)
{
	if (cat->pg)
		return catpg_obj_set_failed(cat->pg, id, error);
	struct req r = {.op = OP_FAILED, .id = id, .s1 = error};
	return submit(cat, &r);
}

int cat_obj_set_pending(struct cat *cat, int64_t id, const char *reason)
{
	if (cat->pg)
		return catpg_obj_set_pending(cat->pg, id, reason);
	struct req r = {.op = OP_PENDING, .id = id, .s1 = reason};
	return submit(cat, &r);
}

int cat_obj_set_deleted(struct cat *cat, int64_t id, const char *reason)
{
	if (cat->pg)
		return catpg_obj_set_deleted(cat->pg, id, reason);
	struct req r = {.op = OP_DELETED, .id = id, .s1 = reason};
	return submit(cat, &r);
}

int cat_obj_rename(struct cat *cat, int64_t id, const char *new_path, const char *new_key)
{
	if (cat->pg)
		return catpg_obj_rename(cat->pg, id, new_path, new_key);
	struct req r = {.op = OP_RENAME, .id = id, .s1 = new_path, .s2 = new_key};
	return submit(cat, &r);
}

int cat_obj_set_attr(struct cat *cat, int64_t id, uint32_t mode, uint32_t uid, uint32_t gid,
                     int64_t mtime_ns)
{
	if (cat->pg)
		return catpg_obj_set_attr(cat->pg, id, mode, uid, gid, mtime_ns);
	struct req r = {
	    .op = OP_SET_ATTR, .id = id, .mode = mode, .uid = uid, .gid = gid, .n1 = mtime_ns};
	return submit(cat, &r);
}

int cat_meta_set(struct cat *cat, const char *path, const char *name, const char *value,
                 const char *unit)
{
	if (cat->pg)
		return catpg_meta_set(cat->pg, path, name, value, unit);
	struct req r = {.op = OP_META_SET, .s1 = path, .s2 = name, .s3 = value, .s4 = unit};
	return submit(cat, &r);
}

int cat_meta_rm(struct cat *cat, const char *path, const char *name)
{
	if (cat->pg)
		return catpg_meta_rm(cat->pg, path, name);
	struct req r = {.op = OP_META_RM, .s1 = path, .s2 = name};
	return submit(cat, &r);
}

int cat_event_add(struct cat *cat, int64_t obj_id, const char *path, const char *kind,
                  const char *detail)
{
	if (cat->pg)
		return catpg_event_add(cat->pg, obj_id, path, kind, detail);
	struct req r = {.op = OP_EVENT, .id = obj_id, .s1 = path, .s2 = kind, .s3 = detail};
	return submit(cat, &r);
}

/* ------------------------------------------------------------------ */
/* the read side */

static int rget(struct cat *c, struct rconn **out)
{
	pthread_mutex_lock(&c->plock);
	struct rconn *r = c->idle;
	if (r) {
		c->idle = r->next;
		c->nidle--;
	}
	pthread_mutex_unlock(&c->plock);
	int rc = r ? 0 : rconn_open(c, &r);
	if (rc)
		return rc;
	int ms = __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED);
	if (r->busy_ms != ms) {
		sqlite3_busy_timeout(r->db, ms);
		r->busy_ms = ms;
	}
	*out = r;
	return 0;
}

static void rput(struct cat *c, struct rconn *r)
{
	pthread_mutex_lock(&c->plock);
	if (c->nidle < CAT_POOL_IDLE) {
		r->next = c->idle;
		c->idle = r;
		c->nidle++;
		r = NULL;
	}
	pthread_mutex_unlock(&c->plock);
	if (r)
		rconn_close(r);
}

static sqlite3_stmt *rst(struct cat *c, struct rconn *r, enum rstmt id)
{
	if (!r->st[id]) {
		int rc = sqlite3_prepare_v3(r->db, rsql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                            &r->st[id], NULL);
		if (rc != SQLITE_OK) {
			db_fail(c, r->db, rc, rsql[id]);
			r->st[id] = NULL;
		}
	}
	return r->st[id];
}

static const char *ctext(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Fills o from a row of OBJ_COLS. copy: strings are malloc'd (the caller
 * frees them with cat_obj_clear) instead of pointing into the row. */
static int row_obj(sqlite3_stmt *s, struct cat_obj *o, int copy)
{
	memset(o, 0, sizeof *o);
	o->id = sqlite3_column_int64(s, 0);
	o->version = sqlite3_column_int(s, 2);
	o->size = sqlite3_column_int64(s, 5);
	o->mode = (uint32_t)sqlite3_column_int64(s, 6);
	o->uid = (uint32_t)sqlite3_column_int64(s, 7);
	o->gid = (uint32_t)sqlite3_column_int64(s, 8);
	o->mtime_ns = sqlite3_column_int64(s, 9);
	o->ctime_ns = sqlite3_column_int64(s, 10);
	o->ingest_ns = sqlite3_column_int64(s, 11);
	copy_str(o->sha256, sizeof o->sha256, ctext(s, 12));
	copy_str(o->etag, sizeof o->etag, ctext(s, 13));
	o->state = sqlite3_column_int(s, 15);
	o->parts_done = sqlite3_column_int(s, 17);
	o->current = sqlite3_column_int(s, 20);
	static const int cols[] = {1, 3, 4, 14, 16, 18, 19};
	char **dst[] = {&o->path,      &o->bucket,     &o->key,    &o->source,
	                &o->upload_id, &o->last_error, &o->symlink};
	for (unsigned i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		const char *v = ctext(s, cols[i]);
		if (!v)
			continue;
		*dst[i] = copy ? strdup(v) : (char *)v;
		if (!*dst[i]) {
			cat_obj_clear(o);
			return -ENOMEM;
		}
	}
	return 0;
}

static int row_coll(sqlite3_stmt *s, struct cat_coll *o, int copy)
{
	memset(o, 0, sizeof *o);
	o->id = sqlite3_column_int64(s, 0);
	o->mode = (uint32_t)sqlite3_column_int64(s, 2);
	o->uid = (uint32_t)sqlite3_column_int64(s, 3);
	o->gid = (uint32_t)sqlite3_column_int64(s, 4);
	o->mtime_ns = sqlite3_column_int64(s, 5);
	o->ctime_ns = sqlite3_column_int64(s, 6);
	const char *p = ctext(s, 1);
	o->path = copy ? strdup(p) : (char *)p;
	return o->path ? 0 : -ENOMEM;
}

/* Steps a row statement: 1 for a row, 0 at the end, or an errno. */
static int rstep(struct cat *c, struct rconn *r, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(c, r->db, rc, what);
}

/* A callback's answer: negative stops with that error, positive stops. */
static int cb_stop(int v, int *rc)
{
	if (v < 0)
		*rc = v;
	return v != 0;
}

/* One object by a prepared statement with ?1 bound by the caller. */
static int get_one(struct cat *c, struct rconn *r, sqlite3_stmt *st, struct cat_obj *out)
{
	int rc = rstep(c, r, st, "reading an object");
	if (rc == 1)
		rc = row_obj(st, out, 1);
	else if (rc == 0)
		rc = -ENOENT;
	st_done(st);
	return rc;
}

int cat_obj_get(struct cat *c, const char *path, struct cat_obj *out)
{
	if (c->pg)
		return catpg_obj_get(c->pg, path, out);
	memset(out, 0, sizeof *out);
	if (!path_valid(path, 0))
		return -ENOENT;
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	sqlite3_stmt *st = rst(c, r, R_OBJ_PATH);
	if (st) {
		bind_text(st, 1, path);
		rc = get_one(c, r, st, out);
	} else {
		rc = -EIO;
	}
	rput(c, r);
	return rc;
}

int cat_obj_get_id(struct cat *c, int64_t id, struct cat_obj *out)
{
	if (c->pg)
		return catpg_obj_get_id(c->pg, id, out);
	memset(out, 0, sizeof *out);
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	sqlite3_stmt *st = rst(c, r, R_OBJ_ID);
	if (st) {
		sqlite3_bind_int64(st, 1, id);
		rc = get_one(c, r, st, out);
	} else {
		rc = -EIO;
	}
	rput(c, r);
	return rc;
}

/* Streams the object rows of a prepared, bound statement to cb. */
static int each_obj(struct cat *c, struct rconn *r, sqlite3_stmt *st,
                    int (*cb)(const struct cat_obj *o, void *arg), void *arg, int *count)
{
	int rc = 0, n = 0, s;
	while ((s = rstep(c, r, st, "reading objects")) == 1) {
		struct cat_obj o;
		row_obj(st, &o, 0);
		n++;
		if (cb_stop(cb(&o, arg), &rc))
			break;
	}
	if (s < 0)
		rc = s;
	st_done(st);
	if (count)
		*count = n;
	return rc;
}

int cat_obj_versions(struct cat *c, const char *path, int (*cb)(const struct cat_obj *o, void *arg),
                     void *arg)
{
	if (c->pg)
		return catpg_obj_versions(c->pg, path, cb, arg);
	if (!path_valid(path, 0))
		return -ENOENT;
	struct rconn *r;
	int rc = rget(c, &r), n = 0;
	if (rc)
		return rc;
	sqlite3_stmt *st = rst(c, r, R_VERSIONS);
	if (st) {
		bind_text(st, 1, path);
		rc = each_obj(c, r, st, cb, arg, &n);
	} else {
		rc = -EIO;
	}
	rput(c, r);
	return rc == 0 && n == 0 ? -ENOENT : rc;
}

int cat_obj_parts(struct cat *c, int64_t id,
                  int (*cb)(int part_number, const char *etag, int64_t size, void *arg), void *arg)
{
	if (c->pg)
		return catpg_obj_parts(c->pg, id, cb, arg);
	struct rconn *r;
	int rc = rget(c, &r), s;
	if (rc)
		return rc;
	sqlite3_stmt *st = rst(c, r, R_PARTS);
	if (!st) {
		rput(c, r);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, id);
	while ((s = rstep(c, r, st, "reading parts")) == 1)
		if (cb_stop(cb(sqlite3_column_int(st, 0), ctext(st, 1), sqlite3_column_int64(st, 2),
		               arg),
		            &rc))
			break;
	if (s < 0)
		rc = s;
	st_done(st);
	rput(c, r);
	return rc;
}

static int coll_lookup(struct cat *c, struct rconn *r, const char *path, struct cat_coll *out,
                       int copy)
{
	sqlite3_stmt *st = rst(c, r, R_COLL_PATH);
	if (!st)
		return -EIO;
	bind_text(st, 1, path);
	int rc = rstep(c, r, st, "reading a collection");
	if (rc == 1)
		rc = row_coll(st, out, copy);
	else if (rc == 0)
		rc = -ENOENT;
	if (!copy && rc == 0)
		return 0; /* caller resets st when done with out */
	st_done(st);
	return rc;
}

int cat_coll_get(struct cat *c, const char *path, struct cat_coll *out)
{
	if (c->pg)
		return catpg_coll_get(c->pg, path, out);
	memset(out, 0, sizeof *out);
	if (!path_valid(path, 1))
		return -ENOENT;
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	rc = coll_lookup(c, r, path, out, 1);
	rput(c, r);
	return rc;
}

int cat_list(struct cat *c, const char *path,
             int (*cb)(const struct cat_coll *c, const struct cat_obj *o, void *arg), void *arg)
{
	if (c->pg)
		return catpg_list(c->pg, path, cb, arg);
	if (!path_valid(path, 1))
		return -ENOENT;
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	struct cat_coll self;
	rc = coll_lookup(c, r, path, &self, 0);
	int64_t coll_id = self.id;
	if (rc == 0)
		st_done(rst(c, r, R_COLL_PATH));
	if (rc == -ENOENT && *path) {
		sqlite3_stmt *st = rst(c, r, R_OBJ_CURRENT_ID);
		int64_t x;
		if (st) {
			bind_text(st, 1, path);
			if (st_int64(c, r->db, st, &x, "reading an object") == 1)
				rc = -ENOTDIR;
		}
	}
	sqlite3_stmt *cs = rc ? NULL : rst(c, r, R_LIST_COLLS);
	sqlite3_stmt *os = rc ? NULL : rst(c, r, R_LIST_OBJS);
	if (rc == 0 && (!cs || !os))
		rc = -EIO;
	if (rc) {
		rput(c, r);
		return rc;
	}
	/* Two sorted streams merged by name. Both order by path with the same
	 * parent prefix, so comparing whole paths compares names; BINARY
	 * collation is memcmp, as strcmp. */
	sqlite3_bind_int64(cs, 1, coll_id);
	sqlite3_bind_int64(os, 1, coll_id);
	int hc = rstep(c, r, cs, "listing collections");
	int ho = rstep(c, r, os, "listing objects");
	while (hc == 1 || ho == 1) {
		struct cat_coll cc;
		struct cat_obj oo;
		int v;
		if (hc == 1 && (ho != 1 || strcmp(ctext(cs, 1), ctext(os, 1)) < 0)) {
			row_coll(cs, &cc, 0);
			v = cb(&cc, NULL, arg);
			if (cb_stop(v, &rc))
				break;
			hc = rstep(c, r, cs, "listing collections");
		} else {
			row_obj(os, &oo, 0);
			v = cb(NULL, &oo, arg);
			if (cb_stop(v, &rc))
				break;
			ho = rstep(c, r, os, "listing objects");
		}
	}
	if (hc < 0)
		rc = hc;
	else if (ho < 0)
		rc = ho;
	st_done(cs);
	st_done(os);
	rput(c, r);
	return rc;
}

int cat_find(struct cat *c, const struct cat_query *q,
             int (*cb)(const struct cat_obj *o, void *arg), void *arg)
{
	if (c->pg)
		return catpg_find(c->pg, q, cb, arg);
	char sql[1024];
	size_t len = 0;
	/* Every condition below has a fixed text, so the buffer is large enough. */
#define ADD(s) (len += (size_t)snprintf(sql + len, sizeof sql - len, "%s", s))
	ADD("SELECT " OBJ_COLS " FROM objects WHERE 1");
	if (!q->all_versions)
		ADD(" AND current = 1");
	char *lo = NULL, *hi = NULL;
	if (q->under && *q->under) {
		if (!path_valid(q->under, 0))
			return -EINVAL;
		/* Range on the path index: the subtree of "a" is
		 * ["a/", "a0"), '0' being the byte after '/'. No LIKE or GLOB
		 * escaping of the prefix needed. */
		if (asprintf(&lo, "%s/", q->under) < 0)
			return -ENOMEM;
		if (asprintf(&hi, "%s0", q->under) < 0) {
			free(lo);
			return -ENOMEM;
		}
		ADD(" AND path >= ?1 AND path < ?2");
	}
	if (q->name_glob)
		ADD(" AND lzfs_glob(?3, path)");
	if (q->state >= 0)
		ADD(q->state == CAT_INGESTED ? " AND state = ?4"
		                             : " AND state = ?4 AND state <> 2");
	if (q->min_size >= 0)
		ADD(" AND size >= ?5");
	if (q->max_size >= 0)
		ADD(" AND size <= ?6");
	if (q->mtime_after_ns)
		ADD(" AND mtime_ns > ?7");
	if (q->mtime_before_ns)
		ADD(" AND mtime_ns < ?8");
	if (q->meta_key)
		ADD(q->meta_value ? " AND id IN (SELECT target FROM meta WHERE kind = 0 AND"
		                    " name = ?9 AND value = ?10)"
		                  : " AND id IN (SELECT target FROM meta WHERE kind = 0 AND"
		                    " name = ?9)");
	ADD(" ORDER BY path, version DESC");
	if (q->limit > 0)
		ADD(" LIMIT ?11");
#undef ADD
	struct rconn *r = NULL;
	int rc = rget(c, &r);
	sqlite3_stmt *st = NULL;
	if (rc == 0) {
		rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
		if (rc != SQLITE_OK)
			rc = db_fail(c, r->db, rc, "preparing a search");
	}
	if (rc == 0) {
		bind_text(st, 1, lo);
		bind_text(st, 2, hi);
		bind_text(st, 3, q->name_glob);
		sqlite3_bind_int(st, 4, q->state);
		sqlite3_bind_int64(st, 5, q->min_size);
		sqlite3_bind_int64(st, 6, q->max_size);
		sqlite3_bind_int64(st, 7, q->mtime_after_ns);
		sqlite3_bind_int64(st, 8, q->mtime_before_ns);
		bind_text(st, 9, q->meta_key);
		bind_text(st, 10, q->meta_value);
		sqlite3_bind_int(st, 11, q->limit);
		rc = each_obj(c, r, st, cb, arg, NULL);
	}
	sqlite3_finalize(st);
	if (r)
		rput(c, r);
	free(lo);
	free(hi);
	return rc;
}

int cat_meta_list(struct cat *c, const char *path, int (*cb)(const struct cat_avu *a, void *arg),
                  void *arg)
{
	if (c->pg)
		return catpg_meta_list(c->pg, path, cb, arg);
	if (!path_valid(path, 1))
		return -ENOENT;
	struct rconn *r;
	int rc = rget(c, &r), s, kind = 0;
	if (rc)
		return rc;
	int64_t id = 0;
	sqlite3_stmt *st = rst(c, r, R_OBJ_CURRENT_ID);
	if (!st)
		rc = -EIO;
	if (rc == 0 && *path) {
		bind_text(st, 1, path);
		rc = st_int64(c, r->db, st, &id, "reading an object");
		rc = rc == 1 ? 0 : rc < 0 ? rc : -ENOENT;
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	if (rc == -ENOENT) {
		struct cat_coll cc;
		rc = coll_lookup(c, r, path, &cc, 0);
		if (rc == 0) {
			id = cc.id;
			kind = 1;
			st_done(rst(c, r, R_COLL_PATH));
		}
	}
	st = rc ? NULL : rst(c, r, R_META_LIST);
	if (rc == 0 && !st)
		rc = -EIO;
	if (rc == 0) {
		sqlite3_bind_int(st, 1, kind);
		sqlite3_bind_int64(st, 2, id);
		while ((s = rstep(c, r, st, "reading metadata")) == 1) {
			struct cat_avu a = {ctext(st, 0), ctext(st, 1), ctext(st, 2)};
			if (cb_stop(cb(&a, arg), &rc))
				break;
		}
		if (s < 0)
			rc = s;
		st_done(st);
	}
	rput(c, r);
	return rc;
}

int cat_events(struct cat *c, const char *path, int limit,
               int (*cb)(const struct cat_event *e, void *arg), void *arg)
{
	if (c->pg)
		return catpg_events(c->pg, path, limit, cb, arg);
	/* With a limit: the newest `limit` events, still oldest first. An
	 * object's history follows its id (all versions at path, renames
	 * included); events not tied to an object match by path. */
	const char *cols = "id, time_ns, obj_id, coalesce(path, (SELECT path FROM objects o"
	                   " WHERE o.id = obj_id)), kind, detail";
	char sql[768];
	if (path)
		snprintf(sql, sizeof sql,
		         "SELECT * FROM (SELECT %s FROM events WHERE obj_id IN (SELECT id FROM"
		         " objects WHERE path = ?1) UNION ALL SELECT %s FROM events WHERE obj_id"
		         " IS NULL AND path = ?1 ORDER BY id DESC%s) ORDER BY id",
		         cols, cols, limit > 0 ? " LIMIT ?2" : "");
	else
		snprintf(sql, sizeof sql,
		         "SELECT * FROM (SELECT %s FROM events ORDER BY id DESC%s) ORDER BY id",
		         cols, limit > 0 ? " LIMIT ?2" : "");
	struct rconn *r;
	int rc = rget(c, &r), s;
	if (rc)
		return rc;
	sqlite3_stmt *st;
	rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(c, r->db, rc, "preparing the event query");
		rput(c, r);
		return rc;
	}
	bind_text(st, 1, path);
	sqlite3_bind_int(st, 2, limit);
	rc = 0;
	while ((s = rstep(c, r, st, "reading events")) == 1) {
		struct cat_event e = {
		    .id = sqlite3_column_int64(st, 0),
		    .time_ns = sqlite3_column_int64(st, 1),
		    .obj_id = sqlite3_column_int64(st, 2),
		    .path = ctext(st, 3),
		    .kind = ctext(st, 4),
		    .detail = ctext(st, 5),
		};
		if (cb_stop(cb(&e, arg), &rc))
			break;
	}
	if (s < 0)
		rc = s;
	sqlite3_finalize(st);
	rput(c, r);
	return rc;
}

int cat_status(struct cat *c, struct cat_status *out)
{
	if (c->pg)
		return catpg_status(c->pg, out);
	memset(out, 0, sizeof *out);
	struct rconn *r;
	int rc = rget(c, &r), s;
	if (rc)
		return rc;
	/* One read transaction: the numbers belong to the same moment. */
	static const char sql[] =
	    "SELECT k, n, bytes FROM totals;"
	    /* Ids grow in registration order: the oldest unfinished row is
	     * the first of each state in the (state, rowid) index. */
	    "SELECT 7, min(t), 0 FROM (SELECT * FROM (SELECT ctime_ns AS t FROM objects"
	    " WHERE state = 0 AND state <> 2 AND current = 1 ORDER BY id LIMIT 1)"
	    " UNION ALL SELECT * FROM (SELECT ctime_ns FROM objects WHERE state = 1"
	    " AND state <> 2 AND current = 1 ORDER BY id LIMIT 1));"
	    "SELECT 8, count(*), 0 FROM collections;";
	rc = exec_sql(c, r->db, "BEGIN", "reading status");
	const char *tail = sql;
	while (rc == 0 && *tail) {
		sqlite3_stmt *st;
		int prc = sqlite3_prepare_v2(r->db, tail, -1, &st, &tail);
		if (prc != SQLITE_OK) {
			rc = db_fail(c, r->db, prc, "reading status");
			break;
		}
		if (!st)
			break;
		while ((s = rstep(c, r, st, "reading status")) == 1) {
			int k = sqlite3_column_int(st, 0);
			int64_t v = sqlite3_column_int64(st, 1);
			if (k >= 0 && k < CAT_DELETED) {
				out->count[k] = v;
				if (k == CAT_INGESTED)
					out->bytes_ingested = sqlite3_column_int64(st, 2);
			} else if (k == 5) {
				out->count[CAT_DELETED] = v;
			} else if (k == 6) {
				out->versions = v;
			} else if (k == 7) {
				out->oldest_pending_ns = v;
			} else if (k == 8) {
				out->collections = v;
			}
		}
		if (s < 0)
			rc = s;
		sqlite3_finalize(st);
	}
	sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	rput(c, r);
	return rc;
}

int cat_unfinished(struct cat *c, int (*cb)(const struct cat_obj *o, void *arg), void *arg)
{
	if (c->pg)
		return catpg_unfinished(c->pg, cb, arg);
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	sqlite3_stmt *st = rst(c, r, R_UNFINISHED);
	rc = st ? each_obj(c, r, st, cb, arg, NULL) : -EIO;
	rput(c, r);
	return rc;
}

int cat_check(struct cat *c)
{
	if (c->pg)
		return catpg_check(c->pg);
	struct rconn *r;
	int rc = rget(c, &r), s, problems = 0;
	if (rc)
		return rc;
	sqlite3_stmt *st;
	rc = sqlite3_prepare_v2(r->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(c, r->db, rc, "integrity check");
		rput(c, r);
		return rc;
	}
	rc = 0;
	while ((s = rstep(c, r, st, "integrity check")) == 1) {
		const char *msg = ctext(st, 0);
		if (msg && strcmp(msg, "ok") != 0) {
			log_err("catalog %s: integrity: %s", c->file, msg);
			problems++;
		}
	}
	sqlite3_finalize(st);
	if (s < 0)
		rc = s;
	else if (problems)
		rc = -EPROTO;
	if (rc == 0) {
		/* The invariant the schema cannot state: the current version
		 * of a path is its highest version that is not deleted. */
		rc = sqlite3_prepare_v2(
		    r->db,
		    "SELECT count(*) FROM (SELECT path, max(version) AS v FROM objects"
		    " WHERE state <> 4 GROUP BY path) m WHERE NOT EXISTS (SELECT 1 FROM objects o"
		    " WHERE o.path = m.path AND o.version = m.v AND o.current = 1)",
		    -1, &st, NULL);
		if (rc != SQLITE_OK) {
			rc = db_fail(c, r->db, rc, "checking current versions");
		} else {
			int64_t bad = 0;
			rc = st_int64(c, r->db, st, &bad, "checking current versions");
			sqlite3_finalize(st);
			if (rc >= 0 && bad) {
				log_err("catalog %s: %lld paths whose current version is not their "
				        "newest live version",
				        c->file, (long long)bad);
				rc = -EPROTO;
			} else if (rc > 0) {
				rc = 0;
			}
		}
	}
	if (rc == 0) {
		rc = sqlite3_prepare_v2(
		    r->db,
		    "SELECT count(*) FROM totals t WHERE t.n <> CASE"
		    " WHEN t.k < 5 THEN (SELECT count(*) FROM objects WHERE state = t.k AND "
		    "current = 1)"
		    " WHEN t.k = 5 THEN (SELECT count(*) FROM objects WHERE state = 4)"
		    " ELSE (SELECT count(*) FROM objects) END"
		    " OR (t.k < 5 AND t.bytes <> (SELECT total(size) FROM objects"
		    " WHERE state = t.k AND current = 1))",
		    -1, &st, NULL);
		if (rc != SQLITE_OK) {
			rc = db_fail(c, r->db, rc, "checking totals");
		} else {
			int64_t bad = 0;
			rc = st_int64(c, r->db, st, &bad, "checking totals");
			sqlite3_finalize(st);
			if (rc >= 0 && bad) {
				log_err("catalog %s: status totals disagree with the objects",
				        c->file);
				rc = -EPROTO;
			} else if (rc > 0) {
				rc = 0;
			}
		}
	}
	rput(c, r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* backends */

int cat_set_owner(struct cat *c, const char *owner)
{
	/* An SQLite catalog has one daemon: its rows are all its own. */
	return c->pg ? catpg_set_owner(c->pg, owner) : 0;
}

const char *cat_redact(const char *location, char *buf, size_t size)
{
	return catpg_redact(location, buf, size);
}

int cat_shared(struct cat *c)
{
	return c->pg != NULL;
}

int cat_path_claimed(struct cat *c, const char *path, char *owner, size_t len)
{
	if (c->pg)
		return catpg_path_claimed(c->pg, path, owner, len);
	return 0; /* one owner */
}

int cat_stale_copy(struct cat *c, const char *path, int64_t size, int64_t mtime_ns,
		   const char *sha256, char *owner, size_t len)
{
	if (c->pg)
		return catpg_stale_copy(c->pg, path, size, mtime_ns, sha256, owner, len);
	return 0;
}

int cat_upload_foreign(struct cat *c, const char *upload_id)
{
	if (c->pg)
		return catpg_upload_foreign(c->pg, upload_id);
	return 0;
}
