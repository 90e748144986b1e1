/* catalog_pg.c - the catalog on PostgreSQL: see catalog_pg.h and catalog.h.
 *
 * Laid out like catalog.c: URLs and errors, opening (schema creation under
 * an advisory lock), the writer thread (one connection, pipelined batches),
 * then the read side (a small pool of connections, one borrowed per call).
 */
#include "catalog_pg.h"
#include "log.h"

#include <errno.h>
#include <fnmatch.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog_pg_sql.h"

#define PG_FORMAT      "lzfs catalog"
#define PG_LOCK_KEY    0x4c5a4653 /* "LZFS": advisory lock while creating the schema */
#define PG_BATCH_MAX   1000       /* requests per transaction */
#define PG_PIPE_MAX    200        /* requests per pipeline sync: results fit in socket buffers */
#define PG_POOL_IDLE   8          /* idle read connections kept open */
#define PG_RETRIES     8          /* a batch aborted by a race or a deadlock */
#define PG_RECONNECTS  6          /* attempts to reopen a dropped connection */
#define PG_BUSY_MS     10000
#define PG_NPARAMS     16

/* ------------------------------------------------------------------ */
/* URLs */

int catpg_is_url(const char *s)
{
	return s && (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0);
}

const char *catpg_redact(const char *s, char *buf, size_t size)
{
	if (!size)
		return "";
	snprintf(buf, size, "%s", s ? s : "");
	if (!catpg_is_url(buf))
		return buf;
	/* user:password@ in the authority */
	char *auth = strstr(buf, "://") + 3;
	char *end = auth + strcspn(auth, "/?");
	char *at = memchr(auth, '@', end - auth);
	char *colon = at ? memchr(auth, ':', at - auth) : NULL;
	if (colon && at - colon > 1) {
		char rest[4096];
		snprintf(rest, sizeof rest, "%s", at);
		snprintf(colon + 1, size - (colon + 1 - buf), "***%s", rest);
	}
	/* password=... among the parameters */
	for (char *p = strchr(buf, '?'); p && (p = strstr(p, "password=")) != NULL;) {
		if (p[-1] != '?' && p[-1] != '&') {
			p += 9;
			continue;
		}
		char *v = p + 9, *e = v + strcspn(v, "&");
		char rest[4096];
		snprintf(rest, sizeof rest, "%s", e);
		snprintf(v, size - (v - buf), "***%s", rest);
		p = v + 3;
	}
	return buf;
}

/* ------------------------------------------------------------------ */
/* the catalog */

enum req_op {
	OP_COLL_ENSURE,
	OP_COLL_REMOVE,
	OP_OBJ_ADD,
	OP_TRANSITION,
	OP_PART_DONE,
	OP_RENAME,
	OP_SET_ATTR,
	OP_META,
	OP_EVENT,
	OP_COUNT
};

/* The statement of each op, prepared once per writer connection. */
static const char *const wsql[OP_COUNT] = {
    [OP_COLL_ENSURE] = "SELECT * FROM lzfs_w_coll_ensure($1, $2, $3, $4, $5)",
    [OP_COLL_REMOVE] = "SELECT * FROM lzfs_w_coll_remove($1, $2)",
    [OP_OBJ_ADD] = "SELECT * FROM lzfs_w_obj_add($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
                   " $12, $13, $14, $15, $16)",
    [OP_TRANSITION] = "SELECT * FROM lzfs_w_transition($1, $2, $3, $4, $5, $6)",
    [OP_PART_DONE] = "SELECT * FROM lzfs_w_part_done($1, $2, $3, $4)",
    [OP_RENAME] = "SELECT * FROM lzfs_w_rename($1, $2, $3, $4, $5)",
    [OP_SET_ATTR] = "SELECT * FROM lzfs_w_set_attr($1, $2, $3, $4, $5, $6, $7)",
    [OP_META] = "SELECT * FROM lzfs_w_meta($1, $2, $3, $4, $5, $6)",
    [OP_EVENT] = "SELECT * FROM lzfs_w_event($1, $2, $3, $4, $5)",
};
static const char *const wname[OP_COUNT] = {"w_coll_ensure", "w_coll_remove", "w_obj_add",
                                            "w_transition",  "w_part_done",   "w_rename",
                                            "w_set_attr",    "w_meta",        "w_event"};

/* A write request lives on the caller's stack while the caller waits. Its
 * parameters are text, formatted by the caller: the writer only sends. */
struct req {
	enum req_op op;
	int rc;
	sem_t done;
	struct req *next;
	int nparams;
	const char *v[PG_NPARAMS];
	char num[PG_NPARAMS][24];
	int64_t id; /* out */
	int version;
	int dropped; /* failed on its own in this batch: not sent again */
};

struct tally {
	int64_t v[12]; /* n[0..6], bytes[0..4] */
};

struct rconn {
	PGconn *db;
	struct rconn *next;
};

struct catpg {
	char *url;
	char name[512]; /* the URL without its password, for log lines */
	int flags;
	char owner[256];
	int busy_ms;
	PGconn *db; /* the writer's */
	int prepared[OP_COUNT];
	int busy_applied;

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct req *qhead, *qtail;
	int stopping;
	int writer_waiting;
	int writer_started;
	pthread_t writer;
	struct cat_stats stats;

	pthread_mutex_t plock;
	struct rconn *idle;
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
	return clock_ns(CLOCK_REALTIME);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
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

static int hex64(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* errno for an SQLSTATE. */
static int errno_of_state(const char *st)
{
	if (!st)
		return -EIO;
	if (strcmp(st, "23505") == 0)
		return -EEXIST;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "57014") == 0)
		return -EBUSY;
	if (strcmp(st, "25006") == 0)
		return -EROFS;
	if (strcmp(st, "53100") == 0)
		return -ENOSPC;
	if (strncmp(st, "53", 2) == 0)
		return -ENOMEM;
	if (strncmp(st, "28", 2) == 0 || strcmp(st, "42501") == 0)
		return -EACCES;
	if (strcmp(st, "3D000") == 0)
		return -ENOENT;
	if (strcmp(st, "22021") == 0 || strcmp(st, "22P05") == 0)
		return -EILSEQ;
	return -EIO;
}

/* The server ended the session (restart, pg_terminate_backend) or the
 * network dropped it: reconnecting is the cure. */
static int conn_lost(PGconn *db, const char *st)
{
	return PQstatus(db) == CONNECTION_BAD ||
	       (st && (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
	               strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0));
}

/* A race lost to another host or a deadlock: the batch may simply run again. */
static int transient_state(const char *st)
{
	return st && (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 ||
	              strcmp(st, "23505") == 0);
}

/* Logs a failed result (or a dead connection) and returns its errno. */
static int res_fail(struct catpg *c, PGconn *db, const PGresult *res, const char *what)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : "";
	if (!msg || !*msg)
		msg = PQerrorMessage(db);
	char m[512];
	copy_str(m, sizeof m, msg);
	m[strcspn(m, "\n")] = '\0';
	if (PQstatus(db) == CONNECTION_BAD) {
		log_err("catalog %s: %s: connection lost: %s", c->name, what, m);
		return -EIO;
	}
	log_err("catalog %s: %s: %s", c->name, what, m);
	return errno_of_state(st);
}

static void notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	log_debug("catalog: server: %s", msg);
}

/* Opens a connection with the options every one gets. */
static int conn_open(struct catpg *c, PGconn **out, int reader)
{
	/* Defaults first: the URL's own settings win (expand_dbname). */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {"10", "lzfs", c->url, NULL};
	PGconn *db = PQconnectdbParams(keys, vals, 1);
	if (!db)
		return -ENOMEM;
	if (PQstatus(db) != CONNECTION_OK) {
		char m[512];
		copy_str(m, sizeof m, PQerrorMessage(db));
		m[strcspn(m, "\n")] = '\0';
		log_err("catalog %s: cannot connect: %s", c->name, m);
		int e = strstr(m, "does not exist") ? -ENOENT
		        : strstr(m, "password") || strstr(m, "authentication") ? -EACCES
		                                                                : -ECONNREFUSED;
		PQfinish(db);
		return e;
	}
	PQsetNoticeProcessor(db, notice_quiet, NULL);
	char sql[256];
	/* Readers only read (like SQLite's query_only). */
	snprintf(sql, sizeof sql, "SET client_min_messages = warning; SET lock_timeout = %d;%s",
	         __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED),
	         reader || (c->flags & CAT_READONLY) ? " SET default_transaction_read_only = on;"
	                                              : "");
	PGresult *res = PQexec(db, sql);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : res_fail(c, db, res, "configuring");
	PQclear(res);
	if (rc) {
		PQfinish(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* ------------------------------------------------------------------ */
/* opening */

static int exec_ok(struct catpg *c, PGconn *db, const char *sql, const char *what)
{
	PGresult *res = PQexec(db, sql);
	ExecStatusType s = PQresultStatus(res);
	int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : res_fail(c, db, res, what);
	PQclear(res);
	return rc;
}

/* One text value (NULL if no row or NULL) of a query. */
static int query_value(struct catpg *c, PGconn *db, const char *sql, const char *p1, char *out,
                       size_t size, const char *what)
{
	const char *v[1] = {p1};
	PGresult *res = PQexecParams(db, sql, p1 ? 1 : 0, NULL, v, NULL, NULL, 0);
	int rc = 0;
	out[0] = '\0';
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = res_fail(c, db, res, what);
	else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		copy_str(out, size, PQgetvalue(res, 0, 0)), rc = 1;
	PQclear(res);
	return rc;
}

/* 1: no catalog here yet; 0: a catalog (version in *version); or an errno. */
static int probe(struct catpg *c, PGconn *db, int *version)
{
	char v[64];
	int rc = query_value(c, db, "SELECT to_regclass('lzfs_catalog')::text", NULL, v, sizeof v,
	                     "reading the schema");
	if (rc < 0)
		return rc;
	if (rc == 0) {
		rc = query_value(c, db, "SELECT to_regclass('objects')::text", NULL, v, sizeof v,
		                 "reading the schema");
		if (rc < 0)
			return rc;
		if (rc) {
			log_err("catalog %s: not an lzfs catalog (a table 'objects' but no lzfs "
			        "marker); refusing to touch it",
			        c->name);
			return -ENOTSUP;
		}
		return 1;
	}
	rc = query_value(c, db, "SELECT value FROM lzfs_catalog WHERE name = 'format'", NULL, v,
	                 sizeof v, "reading the marker");
	if (rc < 0)
		return rc;
	if (rc == 0 || strcmp(v, PG_FORMAT) != 0) {
		log_err("catalog %s: not an lzfs catalog (bad lzfs marker); refusing to touch it",
		        c->name);
		return -ENOTSUP;
	}
	rc = query_value(c, db, "SELECT value FROM lzfs_catalog WHERE name = 'schema_version'",
	                 NULL, v, sizeof v, "reading the schema version");
	if (rc < 0)
		return rc;
	*version = rc ? atoi(v) : 0;
	if (*version > PG_SCHEMA_VERSION) {
		log_err("catalog %s: schema version %d is newer than this program knows (%d); "
		        "refusing to use it (upgrade lzfs)",
		        c->name, *version, PG_SCHEMA_VERSION);
		return -ENOTSUP;
	}
	if (*version < 1) {
		log_err("catalog %s: no migration from schema version %d", c->name, *version);
		return -ENOTSUP;
	}
	return 0;
}

/* Creates the schema unless another daemon did: one transaction under an
 * advisory lock, so several daemons starting at once create it once. */
static int create_schema(struct catpg *c, PGconn *db)
{
	char sql[256];
	snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%d)", PG_LOCK_KEY);
	int rc = exec_ok(c, db, sql, "creating the schema");
	if (rc)
		return rc;
	int version = 0;
	rc = probe(c, db, &version);
	if (rc == 0 && version < PG_SCHEMA_VERSION) {
		rc = exec_ok(c, db, pg_migrate_v2, "upgrading the schema");
		if (rc == 0)
			rc = exec_ok(c, db, pg_fn_obj_add, "upgrading the schema");
		if (rc == 0)
			rc = exec_ok(c, db, pg_fn_rename, "upgrading the schema");
		if (rc == 0) {
			char up[128];
			snprintf(up, sizeof up,
			         "UPDATE lzfs_catalog SET value = '%d' WHERE name = 'schema_version'",
			         PG_SCHEMA_VERSION);
			rc = exec_ok(c, db, up, "upgrading the schema");
		}
		if (rc == 0)
			log_notice("catalog %s: schema upgraded from version %d to %d", c->name,
			           version, PG_SCHEMA_VERSION);
	}
	if (rc == 1) {
		rc = exec_ok(c, db, pg_schema_v1, "creating the schema");
		if (rc == 0)
			rc = exec_ok(c, db, pg_fn_obj_add, "creating the schema");
		if (rc == 0)
			rc = exec_ok(c, db, pg_fn_rename, "creating the schema");
		if (rc == 0) {
			int64_t now = now_ns();
			char ins[512];
			snprintf(ins, sizeof ins,
			         "INSERT INTO lzfs_catalog VALUES('format', '" PG_FORMAT "'),"
			         " ('schema_version', '%d'), ('created_ns', '%lld');"
			         "INSERT INTO collections(path, parent_id, mode, uid, gid, mtime_ns,"
			         " ctime_ns) VALUES('', NULL, %u, 0, 0, %lld, %lld)",
			         PG_SCHEMA_VERSION, (long long)now, (unsigned)(S_IFDIR | 0755),
			         (long long)now, (long long)now);
			rc = exec_ok(c, db, ins, "creating the schema");
		}
		if (rc == 0)
			rc = exec_ok(c, db, "COMMIT", "creating the schema");
		if (rc == 0) {
			char enc[64] = "";
			query_value(c, db, "SHOW server_encoding", NULL, enc, sizeof enc, "encoding");
			log_notice("catalog %s: created (schema version %d)", c->name,
			           PG_SCHEMA_VERSION);
			if (strcmp(enc, "SQL_ASCII") != 0)
				log_warn("catalog %s: database encoding %s: file names that are not "
				         "valid %s are refused (create the database with ENCODING "
				         "'SQL_ASCII' to take any name)",
				         c->name, enc, enc);
		}
	}
	if (rc)
		exec_ok(c, db, "ROLLBACK", "creating the schema");
	else if (rc == 0 && version)
		rc = exec_ok(c, db, "COMMIT", "creating the schema");
	return rc < 0 ? rc : 0;
}

static void *writer_main(void *arg);

int catpg_open(const char *url, int flags, struct catpg **out)
{
	*out = NULL;
	struct catpg *c = calloc(1, sizeof *c);
	if (!c || !(c->url = strdup(url))) {
		free(c);
		return -ENOMEM;
	}
	catpg_redact(url, c->name, sizeof c->name);
	c->flags = flags;
	c->busy_ms = PG_BUSY_MS;
	c->busy_applied = PG_BUSY_MS;
	if (gethostname(c->owner, sizeof c->owner - 1) != 0 || !c->owner[0])
		strcpy(c->owner, "localhost");
	pthread_mutex_init(&c->qlock, NULL);
	pthread_cond_init(&c->qcond, NULL);
	pthread_mutex_init(&c->plock, NULL);

	PGconn *db = NULL;
	int version = 0;
	int rc = conn_open(c, &db, 0);
	if (rc == 0)
		rc = probe(c, db, &version);
	if (rc == 0 && version < PG_SCHEMA_VERSION && !(flags & CAT_READONLY))
		rc = create_schema(c, db); /* upgrades it, under the same lock */
	if (rc == 1) {
		if ((flags & CAT_READONLY) || !(flags & CAT_CREATE)) {
			log_err("catalog %s: has no lzfs catalog; it is created when lzfs starts",
			        c->name);
			rc = -ENOENT;
		} else {
			rc = create_schema(c, db);
		}
	}
	if (rc) {
		if (db)
			PQfinish(db);
		catpg_close(c);
		return rc < 0 ? rc : -EIO;
	}
	if (flags & CAT_READONLY) {
		struct rconn *r = calloc(1, sizeof *r);
		if (!r) {
			PQfinish(db);
			catpg_close(c);
			return -ENOMEM;
		}
		PQsetNoticeProcessor(db, notice_quiet, NULL);
		exec_ok(c, db, "SET default_transaction_read_only = on", "configuring");
		r->db = db;
		c->idle = r;
		c->nidle = 1;
		*out = c;
		return 0;
	}
	c->db = db;
	rc = pthread_create(&c->writer, NULL, writer_main, c);
	if (rc) {
		log_err("catalog %s: cannot start the writer thread: %s", c->name, strerror(rc));
		catpg_close(c);
		return -rc;
	}
	c->writer_started = 1;
	*out = c;
	return 0;
}

void catpg_close(struct catpg *c)
{
	if (!c)
		return;
	if (c->writer_started) {
		pthread_mutex_lock(&c->qlock);
		c->stopping = 1;
		pthread_cond_signal(&c->qcond);
		pthread_mutex_unlock(&c->qlock);
		pthread_join(c->writer, NULL);
	}
	while (c->idle) {
		struct rconn *r = c->idle;
		c->idle = r->next;
		PQfinish(r->db);
		free(r);
	}
	if (c->db)
		PQfinish(c->db);
	pthread_mutex_destroy(&c->qlock);
	pthread_cond_destroy(&c->qcond);
	pthread_mutex_destroy(&c->plock);
	free(c->url);
	free(c);
}

void catpg_stats(struct catpg *c, struct cat_stats *out)
{
	pthread_mutex_lock(&c->qlock);
	*out = c->stats;
	pthread_mutex_unlock(&c->qlock);
}

void catpg_set_busy_timeout(struct catpg *c, int ms)
{
	__atomic_store_n(&c->busy_ms, ms, __ATOMIC_RELAXED);
}

int catpg_set_owner(struct catpg *c, const char *owner)
{
	if (!owner || !*owner || strlen(owner) >= sizeof c->owner)
		return -EINVAL;
	/* Read by the writer when it formats an add: set before any write. */
	pthread_mutex_lock(&c->qlock);
	copy_str(c->owner, sizeof c->owner, owner);
	pthread_mutex_unlock(&c->qlock);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the writer */

/* Reopens the writer's connection after it dropped, with back-off. */
static int w_reconnect(struct catpg *c)
{
	for (int i = 0; i < PG_RECONNECTS; i++) {
		if (i)
			sleep_ms(100 << (i < 5 ? i : 5));
		PQreset(c->db);
		if (PQstatus(c->db) == CONNECTION_OK) {
			PQsetNoticeProcessor(c->db, notice_quiet, NULL);
			memset(c->prepared, 0, sizeof c->prepared);
			c->busy_applied = -1;
			log_notice("catalog %s: reconnected", c->name);
			return 0;
		}
	}
	log_err("catalog %s: cannot reconnect: %s", c->name, PQerrorMessage(c->db));
	return -EIO;
}

static int w_prepare(struct catpg *c, enum req_op op)
{
	if (c->prepared[op])
		return 0;
	PGresult *res = PQprepare(c->db, wname[op], wsql[op], 0, NULL);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = conn_lost(c->db, PQresultErrorField(res, PG_DIAG_SQLSTATE))
		         ? -ENOTCONN
		         : res_fail(c, c->db, res, wsql[op]);
	PQclear(res);
	if (rc == 0)
		c->prepared[op] = 1;
	return rc;
}

/* Parses "{1,2,...}" into t. */
static void parse_tally(const char *s, struct tally *t)
{
	memset(t, 0, sizeof *t);
	if (!s || *s != '{')
		return;
	s++;
	for (int i = 0; i < 12 && *s && *s != '}'; i++) {
		char *e;
		t->v[i] = strtoll(s, &e, 10);
		s = *e == ',' ? e + 1 : e;
	}
}

/* Outcome of one attempt at a batch. */
enum attempt {
	A_OK,        /* committed */
	A_RETRY,     /* transient (race, deadlock): run it again */
	A_DROPPED,   /* one request failed on its own: dropped, run the rest again */
	A_RECONNECT, /* the connection dropped before the COMMIT was sent */
	A_FAILED,    /* everything failed (rc in the requests) */
};

/* Reads results until the pipeline's sync point. */
static void drain_to_sync(PGconn *db)
{
	PGresult *res;
	for (;;) {
		res = PQgetResult(db);
		if (!res) {
			if (PQstatus(db) == CONNECTION_BAD)
				return;
			continue;
		}
		ExecStatusType s = PQresultStatus(res);
		PQclear(res);
		if (s == PGRES_PIPELINE_SYNC)
			return;
	}
}

static enum attempt w_commit_outcome(struct catpg *c, struct req *batch, struct req *end,
                                     const char *xid, int *fail_rc);

/* The connection's state is not what the writer expects: log it and have
 * the batch sent again on a fresh connection (nothing was committed). */
static enum attempt w_out_of_step(struct catpg *c, const char *what)
{
	char m[256];
	copy_str(m, sizeof m, PQerrorMessage(c->db));
	m[strcspn(m, "\n")] = '\0';
	log_err("catalog %s: writer out of step with the server (%s%s%s); reconnecting", c->name,
	        what, m[0] ? ": " : "", m);
	PQreset(c->db);
	return A_RECONNECT;
}

/* One try at running the batch's live requests in one transaction. */
static enum attempt w_attempt(struct catpg *c, struct req *batch, struct req *end, int *fail_rc,
                              const char **fail_state_out, char *state_buf)
{
	PGconn *db = c->db;
	struct tally total = {0};
	*fail_state_out = NULL;
	for (int op = 0; op < OP_COUNT; op++) {
		int rc = w_prepare(c, op);
		if (rc == -ENOTCONN) {
			log_warn("catalog %s: connection lost; reconnecting", c->name);
			return A_RECONNECT;
		}
		if (rc < 0) {
			*fail_rc = rc;
			return A_FAILED;
		}
	}
	int busy = __atomic_load_n(&c->busy_ms, __ATOMIC_RELAXED);
	if (busy != c->busy_applied) {
		char sql[64];
		snprintf(sql, sizeof sql, "SET lock_timeout = %d", busy);
		if (exec_ok(c, db, sql, "setting the lock timeout") == 0)
			c->busy_applied = busy;
	}
	if (!PQenterPipelineMode(db))
		return PQstatus(db) == CONNECTION_BAD ? A_RECONNECT : A_FAILED;
	enum attempt out = A_OK;
	int began = 0, want_xid = 0;
	char xid[32] = "";
	struct req *r = batch;
	while (r != end && out == A_OK) {
		/* Up to PG_PIPE_MAX calls, then a sync and their results. */
		struct req *first = r;
		int sent = 0;
		if (!began) {
			/* The transaction id tells, after a connection lost
			 * during COMMIT, whether the batch committed. */
			if (!PQsendQueryParams(db, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) ||
			    !PQsendQueryParams(db, "SELECT txid_current()", 0, NULL, NULL, NULL, NULL,
			                       0)) {
				out = w_out_of_step(c, "sending BEGIN");
				break;
			}
			began = want_xid = 1;
		}
		int unsent = 0;
		for (; r != end && sent < PG_PIPE_MAX; r = r->next) {
			if (r->dropped)
				continue;
			if (!PQsendQueryPrepared(db, wname[r->op], r->nparams, r->v, NULL, NULL, 0))
				unsent = 1;
			sent++;
		}
		struct req *stop = r;
		if (unsent) {
			out = w_out_of_step(c, "sending a request");
			break;
		}
		if (!PQpipelineSync(db)) {
			out = A_RECONNECT;
			break;
		}
		int answered = 0;
		int aborted = 0;
		r = first;
		for (;;) {
			PGresult *res = PQgetResult(db);
			if (!res) {
				if (PQstatus(db) == CONNECTION_BAD) {
					out = A_RECONNECT;
					break;
				}
				continue; /* end of one query's results */
			}
			ExecStatusType s = PQresultStatus(res);
			if (s == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				break;
			}
			answered += s != PGRES_COMMAND_OK && !(want_xid && s == PGRES_TUPLES_OK);
			if (s == PGRES_COMMAND_OK) { /* BEGIN */
				PQclear(res);
				continue;
			}
			if (want_xid && s == PGRES_TUPLES_OK) {
				copy_str(xid, sizeof xid, PQgetvalue(res, 0, 0));
				want_xid = 0;
				PQclear(res);
				continue;
			}
			while (r != stop && r->dropped)
				r = r->next;
			if (s == PGRES_TUPLES_OK && r != stop && PQntuples(res) == 1) {
				r->rc = atoi(PQgetvalue(res, 0, 0));
				r->id = PQgetisnull(res, 0, 1) ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
				r->version = PQgetisnull(res, 0, 2) ? 0 : atoi(PQgetvalue(res, 0, 2));
				if (!PQgetisnull(res, 0, 4))
					log_warn("catalog %s: %s", c->name, PQgetvalue(res, 0, 4));
				if (r->rc == 0 && !PQgetisnull(res, 0, 3)) {
					struct tally t;
					parse_tally(PQgetvalue(res, 0, 3), &t);
					for (int k = 0; k < 12; k++)
						total.v[k] += t.v[k];
				}
				r = r->next;
			} else if (s == PGRES_PIPELINE_ABORTED) {
				aborted = 1;
			} else if (!aborted) {
				/* This request raised: the transaction is lost. */
				const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
				if (st)
					copy_str(state_buf, 6, st), *fail_state_out = state_buf;
				if (conn_lost(db, st)) {
					log_warn("catalog %s: connection lost; reconnecting", c->name);
					out = A_RECONNECT;
				} else if (transient_state(st)) {
					log_debug("catalog %s: batch aborted (%s); retrying", c->name,
					          st);
					out = A_RETRY;
				} else {
					int e = res_fail(c, db, res, "writing");
					if (r != stop) {
						r->rc = e;
						r->dropped = 1;
						out = A_DROPPED;
					} else {
						*fail_rc = e;
						out = A_FAILED;
					}
				}
				aborted = 1;
			}
			PQclear(res);
		}
		if (out == A_OK && aborted)
			out = A_FAILED, *fail_rc = -EIO;
		if (out == A_OK && answered != sent) {
			/* Results and requests out of step: never guess which
			 * answer is whose. */
			char what[96];
			snprintf(what, sizeof what, "%d answers to %d requests", answered, sent);
			out = w_out_of_step(c, what);
		}
	}
	if (out == A_OK) {
		/* The batch's net change of this owner's totals, then COMMIT. */
		char ks[64] = "{", ns[256] = "{", bs[256] = "{";
		int any = 0;
		for (int k = 0; k < 7; k++) {
			int64_t b = k < 5 ? total.v[7 + k] : 0;
			if (!total.v[k] && !b)
				continue;
			size_t kl = strlen(ks), nl = strlen(ns), bl = strlen(bs);
			snprintf(ks + kl, sizeof ks - kl, "%s%d", any ? "," : "", k);
			snprintf(ns + nl, sizeof ns - nl, "%s%lld", any ? "," : "", (long long)total.v[k]);
			snprintf(bs + bl, sizeof bs - bl, "%s%lld", any ? "," : "", (long long)b);
			any = 1;
		}
		strcat(ks, "}"), strcat(ns, "}"), strcat(bs, "}");
		pthread_mutex_lock(&c->qlock);
		char owner[256];
		copy_str(owner, sizeof owner, c->owner);
		pthread_mutex_unlock(&c->qlock);
		if (any) {
			const char *v[4] = {owner, ks, ns, bs};
			PQsendQueryParams(db,
			                  "INSERT INTO totals(owner, k, n, bytes) SELECT $1, x.k, x.n, x.b"
			                  " FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS x(k, n, b)"
			                  " ON CONFLICT (owner, k) DO UPDATE SET n = totals.n + excluded.n,"
			                  " bytes = totals.bytes + excluded.bytes",
			                  4, NULL, v, NULL, NULL, 0);
		}
		PQsendQueryParams(db, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
		if (!PQpipelineSync(db)) {
			out = A_RECONNECT;
		} else {
			int failed = 0, lost = 0;
			const char *st = NULL;
			for (;;) {
				PGresult *res = PQgetResult(db);
				if (!res) {
					if (PQstatus(db) == CONNECTION_BAD) {
						lost = 1;
						break;
					}
					continue;
				}
				ExecStatusType s = PQresultStatus(res);
				if (s == PGRES_PIPELINE_SYNC) {
					PQclear(res);
					break;
				}
				if (s != PGRES_COMMAND_OK && !failed) {
					st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
					if (st)
						copy_str(state_buf, 6, st), *fail_state_out = state_buf;
					if (!transient_state(st))
						*fail_rc = res_fail(c, db, res, "committing");
					failed = 1;
				}
				PQclear(res);
			}
			if (lost) {
				/* Sent, but did it commit? Running it again could
				 * register twice: ask the server. */
				PQexitPipelineMode(db);
				return w_commit_outcome(c, batch, end, xid, fail_rc);
			}
			if (failed)
				out = transient_state(st) ? A_RETRY : A_FAILED;
		}
	}
	if (out != A_OK && out != A_RECONNECT && PQstatus(db) == CONNECTION_OK) {
		/* Out of the aborted transaction, whatever state it is in. */
		PQsendQueryParams(db, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
		if (PQpipelineSync(db))
			drain_to_sync(db);
	}
	if (PQstatus(db) == CONNECTION_OK && !PQexitPipelineMode(db)) {
		/* Something is left unread: start over on a clean connection. */
		log_warn("catalog %s: the connection is not idle after a batch (%s); reconnecting",
		         c->name, PQerrorMessage(db));
		w_reconnect(c);
	}
	return out;
}

/* After a connection lost while a COMMIT was in flight: reconnects and
 * asks the server what became of transaction xid. */
static enum attempt w_commit_outcome(struct catpg *c, struct req *batch, struct req *end,
                                     const char *xid, int *fail_rc)
{
	int n = 0;
	for (struct req *q = batch; q != end; q = q->next)
		n += !q->dropped;
	*fail_rc = -EIO;
	for (int i = 0; i < 50 && xid[0] && w_reconnect(c) == 0; i++) {
		char st[32];
		int rc = query_value(c, c->db, "SELECT txid_status($1::bigint)", xid, st, sizeof st,
		                     "asking for a transaction's outcome");
		if (rc == 1 && strcmp(st, "committed") == 0) {
			log_notice("catalog %s: connection lost during COMMIT; the batch of %d "
			           "request(s) was committed",
			           c->name, n);
			return A_OK;
		}
		if (rc == 1 && strcmp(st, "aborted") == 0) {
			log_notice("catalog %s: connection lost during COMMIT; the batch was not "
			           "committed: sending it again",
			           c->name);
			return A_RETRY;
		}
		if (rc != 1 || strcmp(st, "in progress") != 0)
			break;
		sleep_ms(100);
	}
	log_err("catalog %s: connection lost during COMMIT; %d request(s) may or may not be "
	        "committed",
	        c->name, n);
	return A_FAILED;
}

static void run_batch(struct catpg *c, struct req *batch, struct req *end)
{
	int retries = 0, reconnects = 0, attempts = 0, n = 0;
	for (struct req *r = batch; r != end; r = r->next)
		n++;
	for (;;) {
		if (++attempts > n + 4 * PG_RETRIES) {
			/* Each attempt drops a request, retries or reconnects a
			 * bounded number of times: this is a bug, not a state. */
			log_err("catalog %s: a batch of %d request(s) failed %d attempts; giving up",
			        c->name, n, attempts - 1);
			for (struct req *r = batch; r != end; r = r->next)
				if (!r->dropped)
					r->rc = -EIO;
			return;
		}
		int fail_rc = -EIO;
		const char *st = NULL;
		char stbuf[8];
		for (struct req *r = batch; r != end; r = r->next)
			if (!r->dropped)
				r->rc = 0;
		enum attempt a = w_attempt(c, batch, end, &fail_rc, &st, stbuf);
		if (a == A_OK) {
			pthread_mutex_lock(&c->qlock);
			c->stats.transactions++;
			pthread_mutex_unlock(&c->qlock);
			return;
		}
		if (a == A_DROPPED)
			continue; /* one more request dropped: at most n times */
		if (a == A_RETRY && ++retries <= PG_RETRIES) {
			/* Let the other host's transaction finish first. */
			sleep_ms(1 + rand() % (5 << (retries < 6 ? retries : 6)));
			continue;
		}
		if (a == A_RECONNECT && ++reconnects <= 2) {
			if (w_reconnect(c) == 0)
				continue;
		}
		if (a == A_RETRY) {
			log_err("catalog %s: a batch lost %d races in a row (%s)", c->name, PG_RETRIES,
			        st ? st : "?");
			fail_rc = errno_of_state(st);
		}
		if (a == A_RECONNECT)
			fail_rc = -EIO;
		if (retries > PG_RETRIES && batch->next != end) {
			/* Alone, a request cannot deadlock with itself: run
			 * each in its own transaction. */
			for (struct req *r = batch; r != end; r = r->next) {
				if (r->dropped)
					continue;
				struct req *next = r->next;
				r->next = end;
				r->rc = 0;
				int tries = 0;
				enum attempt b;
				do {
					b = w_attempt(c, r, end, &fail_rc, &st, stbuf);
				} while ((b == A_RETRY && ++tries < PG_RETRIES) || b == A_DROPPED);
				if (b != A_OK && !r->dropped)
					r->rc = fail_rc;
				r->next = next;
			}
			return;
		}
		for (struct req *r = batch; r != end; r = r->next)
			if (!r->dropped)
				r->rc = fail_rc;
		return;
	}
}

static void *writer_main(void *arg)
{
	struct catpg *c = arg;
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
		while (end && n < PG_BATCH_MAX) {
			end = end->next;
			n++;
		}
		c->qhead = end;
		if (!end)
			c->qtail = NULL;
		pthread_mutex_unlock(&c->qlock);

		int64_t t0 = clock_ns(CLOCK_MONOTONIC);
		run_batch(c, batch, end);
		int64_t busy = clock_ns(CLOCK_MONOTONIC) - t0;

		uint64_t failed = 0;
		for (struct req *r = batch; r != end; r = r->next)
			failed += r->rc != 0;
		pthread_mutex_lock(&c->qlock);
		c->stats.requests += n;
		c->stats.failed += failed;
		if (n > c->stats.max_batch)
			c->stats.max_batch = n;
		c->stats.busy_ns += busy;
		c->stats.cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		pthread_mutex_unlock(&c->qlock);
		for (struct req *r = batch, *next; r != end; r = next) {
			next = r->next;
			sem_post(&r->done);
		}
		pthread_mutex_lock(&c->qlock);
	}
	pthread_mutex_unlock(&c->qlock);
	return NULL;
}

static int submit_many(struct catpg *c, struct req *rs, size_t n, const int *skip);

static int submit(struct catpg *c, struct req *r)
{
	int rc = submit_many(c, r, 1, &(int){0});
	return rc ? rc : r->rc;
}

/* Queues the requests whose skip[i] is 0 at once and waits for them all. */
static int submit_many(struct catpg *c, struct req *rs, size_t n, const int *skip)
{
	if (c->flags & CAT_READONLY)
		return -EROFS;
	pthread_mutex_lock(&c->qlock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->qlock);
		return -ESHUTDOWN;
	}
	for (size_t i = 0; i < n; i++) {
		if (skip[i])
			continue;
		struct req *r = &rs[i];
		r->rc = 0;
		r->next = NULL;
		r->dropped = 0;
		sem_init(&r->done, 0, 0);
		if (c->qtail)
			c->qtail->next = r;
		else
			c->qhead = r;
		c->qtail = r;
	}
	if (c->writer_waiting)
		pthread_cond_signal(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
	for (size_t i = 0; i < n; i++) {
		if (skip[i])
			continue;
		while (sem_wait(&rs[i].done) != 0)
			;
		sem_destroy(&rs[i].done);
	}
	return 0;
}

/* Parameter helpers: text for libpq, numbers formatted into the request. */
static void p_str(struct req *r, const char *s)
{
	r->v[r->nparams++] = s;
}

static void p_int(struct req *r, int64_t n)
{
	snprintf(r->num[r->nparams], sizeof r->num[0], "%lld", (long long)n);
	r->v[r->nparams] = r->num[r->nparams];
	r->nparams++;
}

static void p_now(struct req *r)
{
	p_int(r, now_ns());
}

/* ------------------------------------------------------------------ */
/* write API */

int catpg_coll_ensure(struct catpg *c, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                      int64_t *id)
{
	if (!path_valid(path, 1)) {
		log_warn("catalog %s: invalid collection path", c->name);
		return -EINVAL;
	}
	struct req r = {.op = OP_COLL_ENSURE};
	p_str(&r, path);
	p_int(&r, mode);
	p_int(&r, uid);
	p_int(&r, gid);
	p_now(&r);
	int rc = submit(c, &r);
	if (rc == 0 && id)
		*id = r.id;
	return rc;
}

int catpg_coll_remove(struct catpg *c, const char *path)
{
	if (!path_valid(path, 0))
		return -EINVAL;
	struct req r = {.op = OP_COLL_REMOVE};
	p_str(&r, path);
	p_now(&r);
	return submit(c, &r);
}

/* Checks o and fills r with its parameters; *parent is malloc'd (free it
 * after the request ran). */
static int add_prepare(struct catpg *c, const struct cat_obj *o, struct req *r, char **parent)
{
	int ingested = o->state == CAT_INGESTED;
	if (!path_valid(o->path, 0) || !o->key || !*o->key) {
		log_warn("catalog %s: refusing to add an object with an invalid path or key",
		         c->name);
		return -EINVAL;
	}
	if ((o->state != CAT_PENDING && !ingested) ||
	    (ingested &&
	     ((o->sha256[0] && !hex64(o->sha256)) || !memchr(o->etag, '\0', sizeof o->etag)))) {
		log_warn("catalog %s: %s: an object is added as pending, or as ingested with a "
		         "sha256 in hex",
		         c->name, o->path);
		return -EINVAL;
	}
	const char *slash = strrchr(o->path, '/');
	*parent = strndup(o->path, slash ? (size_t)(slash - o->path) : 0);
	if (!*parent)
		return -ENOMEM;
	memset(r, 0, sizeof *r);
	r->op = OP_OBJ_ADD;
	p_str(r, o->path);
	p_str(r, *parent);
	p_str(r, o->bucket ? o->bucket : "");
	p_str(r, o->key);
	p_int(r, o->size);
	p_int(r, o->mode);
	p_int(r, o->uid);
	p_int(r, o->gid);
	p_int(r, o->mtime_ns);
	p_str(r, o->source ? o->source : "");
	p_str(r, o->symlink);
	p_str(r, ingested ? "t" : "f");
	p_str(r, o->sha256);
	p_str(r, o->etag);
	p_str(r, c->owner); /* stable: cat_set_owner comes before any write */
	p_now(r);
	return 0;
}

static void add_done(struct cat_obj *o, const struct req *r)
{
	if (r->rc == 0) {
		o->id = r->id;
		o->version = r->version;
		if (o->state != CAT_INGESTED)
			o->state = CAT_PENDING;
		o->current = 1;
	} else {
		o->id = 0;
		o->version = 0;
	}
}

int catpg_obj_add(struct catpg *c, struct cat_obj *o)
{
	struct req r;
	char *parent = NULL;
	pthread_mutex_lock(&c->qlock);
	int rc = add_prepare(c, o, &r, &parent);
	pthread_mutex_unlock(&c->qlock);
	if (rc)
		return rc;
	rc = submit(c, &r);
	free(parent);
	if (rc == 0)
		add_done(o, &r);
	return rc;
}

int catpg_obj_add_many(struct catpg *c, struct cat_obj *objs, size_t n, int *results)
{
	int first_err = 0;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < CAT_ADD_MANY_MAX ? n - done : CAT_ADD_MANY_MAX;
		struct req *rs = calloc(k, sizeof *rs);
		char **parents = calloc(k, sizeof *parents);
		if (!rs || !parents) {
			free(rs);
			free(parents);
			return -ENOMEM;
		}
		/* Queued together, so the writer takes them into one batch. */
		size_t live = 0;
		pthread_mutex_lock(&c->qlock);
		for (size_t i = 0; i < k; i++) {
			results[done + i] = add_prepare(c, &objs[done + i], &rs[i], &parents[i]);
			live += results[done + i] == 0;
		}
		pthread_mutex_unlock(&c->qlock);
		int rc = submit_many(c, rs, k, results + done);
		for (size_t i = 0; i < k; i++) {
			if (results[done + i] == 0 && rc)
				results[done + i] = rc;
			else if (results[done + i] == 0)
				results[done + i] = rs[i].rc;
			rs[i].rc = results[done + i];
			add_done(&objs[done + i], &rs[i]);
			if (results[done + i] && !first_err)
				first_err = results[done + i];
			free(parents[i]);
		}
		free(rs);
		free(parents);
		(void)live;
		done += k;
	}
	return first_err;
}

static int transition(struct catpg *c, int64_t id, enum cat_state to, const char *s1,
                      const char *s2, int64_t n1)
{
	struct req r = {.op = OP_TRANSITION};
	p_int(&r, id);
	p_int(&r, to);
	p_str(&r, s1);
	p_str(&r, s2);
	p_int(&r, n1);
	p_now(&r);
	return submit(c, &r);
}

int catpg_obj_set_uploading(struct catpg *c, int64_t id, const char *upload_id)
{
	return transition(c, id, CAT_UPLOADING, upload_id, NULL, 0);
}

int catpg_obj_part_done(struct catpg *c, int64_t id, int part_number, const char *etag,
                        int64_t size)
{
	if (part_number < 1 || part_number > 10000 || !etag) {
		log_warn("catalog %s: object %lld: invalid part %d", c->name, (long long)id,
		         part_number);
		return -EINVAL;
	}
	struct req r = {.op = OP_PART_DONE};
	p_int(&r, id);
	p_int(&r, part_number);
	p_str(&r, etag);
	p_int(&r, size);
	return submit(c, &r);
}

int catpg_obj_set_ingested(struct catpg *c, int64_t id, int64_t size, const char *sha256,
                           const char *etag)
{
	if ((sha256 && *sha256 && !hex64(sha256)) ||
	    (etag && strlen(etag) >= sizeof(((struct cat_obj *)0)->etag))) {
		log_warn("catalog %s: object %lld: malformed sha256 or etag", c->name,
		         (long long)id);
		return -EINVAL;
	}
	return transition(c, id, CAT_INGESTED, sha256, etag, size);
}

int catpg_obj_set_failed(struct catpg *c, int64_t id, const char *error)
{
	return transition(c, id, CAT_FAILED, error, NULL, 0);
}

int catpg_obj_set_pending(struct catpg *c, int64_t id, const char *reason)
{
	return transition(c, id, CAT_PENDING, reason, NULL, 0);
}

int catpg_obj_set_deleted(struct catpg *c, int64_t id, const char *reason)
{
	return transition(c, id, CAT_DELETED, reason, NULL, 0);
}

int catpg_obj_rename(struct catpg *c, int64_t id, const char *new_path, const char *new_key)
{
	if (!path_valid(new_path, 0) || (new_key && !*new_key)) {
		log_warn("catalog %s: object %lld: invalid rename target", c->name, (long long)id);
		return -EINVAL;
	}
	struct req r = {.op = OP_RENAME};
	p_int(&r, id);
	p_str(&r, new_path);
	p_str(&r, new_key);
	p_now(&r);
	p_str(&r, c->owner);
	return submit(c, &r);
}

int catpg_obj_set_attr(struct catpg *c, int64_t id, uint32_t mode, uint32_t uid, uint32_t gid,
                       int64_t mtime_ns)
{
	char detail[96];
	snprintf(detail, sizeof detail, "mode %o, uid %u, gid %u, mtime %lld", (unsigned)mode,
	         (unsigned)uid, (unsigned)gid, (long long)mtime_ns);
	struct req r = {.op = OP_SET_ATTR};
	p_int(&r, id);
	p_int(&r, mode);
	p_int(&r, uid);
	p_int(&r, gid);
	p_int(&r, mtime_ns);
	p_str(&r, detail);
	p_now(&r);
	return submit(c, &r);
}

static int meta(struct catpg *c, const char *path, const char *name, const char *value,
                const char *unit, int set)
{
	if (!path_valid(path, 1) || !name || !*name || (set && !value))
		return -EINVAL;
	struct req r = {.op = OP_META};
	p_str(&r, path);
	p_str(&r, name);
	p_str(&r, value);
	p_str(&r, unit);
	p_str(&r, set ? "t" : "f");
	p_now(&r);
	return submit(c, &r);
}

int catpg_meta_set(struct catpg *c, const char *path, const char *name, const char *value,
                   const char *unit)
{
	return meta(c, path, name, value, unit, 1);
}

int catpg_meta_rm(struct catpg *c, const char *path, const char *name)
{
	return meta(c, path, name, NULL, NULL, 0);
}

int catpg_event_add(struct catpg *c, int64_t obj_id, const char *path, const char *kind,
                    const char *detail)
{
	if (!kind || !*kind)
		return -EINVAL;
	struct req r = {.op = OP_EVENT};
	p_int(&r, obj_id);
	p_str(&r, path);
	p_str(&r, kind);
	p_str(&r, detail);
	p_now(&r);
	return submit(c, &r);
}

/* ------------------------------------------------------------------ */
/* the read side */

static int rget(struct catpg *c, struct rconn **out)
{
	pthread_mutex_lock(&c->plock);
	struct rconn *r = c->idle;
	if (r) {
		c->idle = r->next;
		c->nidle--;
	}
	pthread_mutex_unlock(&c->plock);
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return -ENOMEM;
		int rc = conn_open(c, &r->db, 1);
		if (rc) {
			free(r);
			return rc;
		}
	}
	*out = r;
	return 0;
}

static void rput(struct catpg *c, struct rconn *r)
{
	if (PQstatus(r->db) == CONNECTION_OK && PQtransactionStatus(r->db) == PQTRANS_IDLE) {
		pthread_mutex_lock(&c->plock);
		if (c->nidle < PG_POOL_IDLE) {
			r->next = c->idle;
			c->idle = r;
			c->nidle++;
			r = NULL;
		}
		pthread_mutex_unlock(&c->plock);
	}
	if (r) {
		PQfinish(r->db);
		free(r);
	}
}

/* A query on a borrowed connection, its rows streamed to row_cb one at a
 * time (single-row mode: a listing of millions never sits in memory). A
 * connection found dead before any row was delivered is reopened and the
 * query sent again. row_cb returns 0 to go on, non-zero to stop (negative:
 * that error). */
static int rquery(struct catpg *c, const char *sql, int n, const char *const *v,
                  int (*row_cb)(PGresult *res, void *arg), void *arg, const char *what)
{
	struct rconn *r;
	int rc = rget(c, &r);
	if (rc)
		return rc;
	for (int attempt = 0;; attempt++) {
		int delivered = 0, stopped = 0;
		rc = 0;
		if (!PQsendQueryParams(r->db, sql, n, NULL, v, NULL, NULL, 0)) {
			rc = -EIO;
		} else {
			PQsetSingleRowMode(r->db);
			PGresult *res;
			while ((res = PQgetResult(r->db)) != NULL) {
				ExecStatusType s = PQresultStatus(res);
				if (s == PGRES_SINGLE_TUPLE && !stopped) {
					delivered = 1;
					int v2 = row_cb(res, arg);
					if (v2) {
						/* The rest is read and dropped: a cancel
						 * could hit the connection's next query. */
						stopped = 1;
						if (v2 < 0)
							rc = v2;
					}
				} else if (s != PGRES_TUPLES_OK && s != PGRES_SINGLE_TUPLE &&
				           s != PGRES_COMMAND_OK && !stopped && rc == 0) {
					if (conn_lost(r->db,
					              PQresultErrorField(res, PG_DIAG_SQLSTATE)))
						rc = -ENOTCONN;
					else
						rc = res_fail(c, r->db, res, what);
				}
				PQclear(res);
			}
		}
		if ((rc == -ENOTCONN || PQstatus(r->db) == CONNECTION_BAD) && !delivered &&
		    attempt < PG_RECONNECTS) {
			if (attempt)
				sleep_ms(100 << (attempt < 5 ? attempt : 5));
			PQreset(r->db);
			if (PQstatus(r->db) == CONNECTION_OK)
				PQsetNoticeProcessor(r->db, notice_quiet, NULL);
			if (attempt == 0)
				log_warn("catalog %s: %s: connection lost; reconnecting", c->name,
				         what);
			continue;
		}
		if (rc == -ENOTCONN) {
			log_err("catalog %s: %s: connection lost", c->name, what);
			rc = -EIO;
		}
		break;
	}
	rput(c, r);
	return rc;
}

static const char *cell(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static int64_t cell_i64(PGresult *res, int col)
{
	const char *s = cell(res, col);
	return s ? strtoll(s, NULL, 10) : 0;
}

#define OBJ_COLS                                                                                   \
	"id, path, version, bucket, key, size, mode, uid, gid, mtime_ns, ctime_ns, "               \
	"ingest_ns, sha256, etag, source, state, upload_id, parts_done, last_error, "              \
	"symlink, current"
#define COLL_COLS "id, path, mode, uid, gid, mtime_ns, ctime_ns"

/* Fills o from a row of OBJ_COLS starting at column off. copy: strings
 * are malloc'd instead of pointing into the result. */
static int row_obj(PGresult *res, int off, struct cat_obj *o, int copy)
{
	memset(o, 0, sizeof *o);
	o->id = cell_i64(res, off + 0);
	o->version = (int)cell_i64(res, off + 2);
	o->size = cell_i64(res, off + 5);
	o->mode = (uint32_t)cell_i64(res, off + 6);
	o->uid = (uint32_t)cell_i64(res, off + 7);
	o->gid = (uint32_t)cell_i64(res, off + 8);
	o->mtime_ns = cell_i64(res, off + 9);
	o->ctime_ns = cell_i64(res, off + 10);
	o->ingest_ns = cell_i64(res, off + 11);
	copy_str(o->sha256, sizeof o->sha256, cell(res, off + 12));
	copy_str(o->etag, sizeof o->etag, cell(res, off + 13));
	o->state = (enum cat_state)cell_i64(res, off + 15);
	o->parts_done = (int)cell_i64(res, off + 17);
	o->current = (int)cell_i64(res, off + 20);
	static const int cols[] = {1, 3, 4, 14, 16, 18, 19};
	char **dst[] = {&o->path,      &o->bucket,     &o->key,    &o->source,
	                &o->upload_id, &o->last_error, &o->symlink};
	for (unsigned i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		const char *v = cell(res, off + cols[i]);
		if (!v)
			continue;
		*dst[i] = copy ? strdup(v) : (char *)v;
		if (!*dst[i]) {
			if (copy)
				cat_obj_clear(o);
			return -ENOMEM;
		}
	}
	return 0;
}

static int row_coll(PGresult *res, int off, struct cat_coll *o, int copy)
{
	memset(o, 0, sizeof *o);
	o->id = cell_i64(res, off + 0);
	o->mode = (uint32_t)cell_i64(res, off + 2);
	o->uid = (uint32_t)cell_i64(res, off + 3);
	o->gid = (uint32_t)cell_i64(res, off + 4);
	o->mtime_ns = cell_i64(res, off + 5);
	o->ctime_ns = cell_i64(res, off + 6);
	const char *p = cell(res, off + 1);
	o->path = copy ? strdup(p ? p : "") : (char *)(p ? p : "");
	return o->path ? 0 : -ENOMEM;
}

struct one {
	struct cat_obj *obj;
	struct cat_coll *coll;
	int found;
	int rc;
};

static int one_cb(PGresult *res, void *arg)
{
	struct one *a = arg;
	a->found = 1;
	a->rc = a->obj ? row_obj(res, 0, a->obj, 1) : row_coll(res, 0, a->coll, 1);
	return 1;
}

int catpg_obj_get(struct catpg *c, const char *path, struct cat_obj *out)
{
	memset(out, 0, sizeof *out);
	if (!path_valid(path, 0))
		return -ENOENT;
	struct one a = {.obj = out};
	const char *v[1] = {path};
	int rc = rquery(c, "SELECT " OBJ_COLS " FROM objects WHERE path = $1 AND current = 1", 1, v,
	                one_cb, &a, "reading an object");
	return rc ? rc : !a.found ? -ENOENT : a.rc;
}

struct claim {
	char *owner;
	size_t len;
	int found;
};

static int claim_cb(PGresult *res, void *arg)
{
	struct claim *a = arg;
	a->found = 1;
	copy_str(a->owner, a->len, PQgetvalue(res, 0, 0));
	return 1;
}

int catpg_path_claimed(struct catpg *c, const char *path, char *owner, size_t len)
{
	if (!path_valid(path, 0))
		return 0;
	char me[256], *lo = NULL, *hi = NULL;
	copy_str(me, sizeof me, c->owner);
	if (asprintf(&lo, "%s/", path) < 0)
		return -ENOMEM;
	if (asprintf(&hi, "%s0", path) < 0) {
		free(lo);
		return -ENOMEM;
	}
	const char *v[4] = {me, path, lo, hi};
	struct claim a = {.owner = owner, .len = len};
	int rc = rquery(c,
	                "SELECT owner FROM objects WHERE state IN (0, 1) AND owner <> $1"
	                " AND (path = $2 OR (path >= $3 AND path < $4)) LIMIT 1",
	                4, v, claim_cb, &a, "looking for another host's uploads");
	free(lo);
	free(hi);
	return rc ? rc : a.found;
}

int catpg_upload_foreign(struct catpg *c, const char *upload_id)
{
	char me[256];
	copy_str(me, sizeof me, c->owner);
	const char *v[2] = {upload_id, me};
	struct claim a = {.owner = me, .len = sizeof me};
	int rc = rquery(c,
	                "SELECT owner FROM objects WHERE state = 1 AND upload_id = $1 AND owner <> $2"
	                " LIMIT 1",
	                2, v, claim_cb, &a, "looking up a multipart upload");
	return rc ? rc : a.found;
}

int catpg_stale_copy(struct catpg *c, const char *path, int64_t size, int64_t mtime_ns,
                     const char *sha256, char *owner, size_t len)
{
	if (!path_valid(path, 0))
		return 0;
	char me[256], sz[24], mt[24];
	copy_str(me, sizeof me, c->owner);
	snprintf(sz, sizeof sz, "%lld", (long long)size);
	snprintf(mt, sizeof mt, "%lld", (long long)mtime_ns);
	const char *v[5] = {path, me, sz, mt, sha256};
	struct claim a = {.owner = owner, .len = len};
	int rc = rquery(c,
	                "SELECT cur.owner FROM objects v JOIN objects cur"
	                " ON cur.path = v.path AND cur.current = 1 AND cur.state = 2 AND cur.owner <> $2"
	                " WHERE v.path = $1 AND v.current = 0 AND v.state = 2 AND v.owner = $2"
	                " AND v.size = $3 AND v.mtime_ns = $4 AND v.sha256 = $5 LIMIT 1",
	                5, v, claim_cb, &a, "looking for an older version");
	return rc ? rc : a.found;
}

int catpg_obj_get_id(struct catpg *c, int64_t id, struct cat_obj *out)
{
	memset(out, 0, sizeof *out);
	char n[24];
	snprintf(n, sizeof n, "%lld", (long long)id);
	const char *v[1] = {n};
	struct one a = {.obj = out};
	int rc = rquery(c, "SELECT " OBJ_COLS " FROM objects WHERE id = $1", 1, v, one_cb, &a,
	                "reading an object");
	return rc ? rc : !a.found ? -ENOENT : a.rc;
}

int catpg_coll_get(struct catpg *c, const char *path, struct cat_coll *out)
{
	memset(out, 0, sizeof *out);
	if (!path_valid(path, 1))
		return -ENOENT;
	struct one a = {.coll = out};
	const char *v[1] = {path};
	int rc = rquery(c, "SELECT " COLL_COLS " FROM collections WHERE path = $1", 1, v, one_cb,
	                &a, "reading a collection");
	return rc ? rc : !a.found ? -ENOENT : a.rc;
}

struct each {
	int (*cb)(const struct cat_obj *o, void *arg);
	void *arg;
	int n;
	const char *glob; /* find: matched against the last path component */
	int limit, seen;
};

static int each_cb(PGresult *res, void *arg)
{
	struct each *a = arg;
	struct cat_obj o;
	if (row_obj(res, 0, &o, 0) < 0)
		return -ENOMEM;
	if (a->glob) {
		const char *name = strrchr(o.path, '/');
		if (fnmatch(a->glob, name ? name + 1 : o.path, 0) != 0)
			return 0;
		if (a->limit > 0 && a->seen >= a->limit)
			return 1;
		a->seen++;
	}
	a->n++;
	return a->cb(&o, a->arg);
}

int catpg_obj_versions(struct catpg *c, const char *path,
                       int (*cb)(const struct cat_obj *o, void *arg), void *arg)
{
	if (!path_valid(path, 0))
		return -ENOENT;
	struct each a = {.cb = cb, .arg = arg};
	const char *v[1] = {path};
	int rc = rquery(c, "SELECT " OBJ_COLS " FROM objects WHERE path = $1 ORDER BY version DESC",
	                1, v, each_cb, &a, "reading versions");
	return rc == 0 && a.n == 0 ? -ENOENT : rc;
}

struct parts_arg {
	int (*cb)(int part_number, const char *etag, int64_t size, void *arg);
	void *arg;
};

static int parts_cb(PGresult *res, void *arg)
{
	struct parts_arg *a = arg;
	return a->cb((int)cell_i64(res, 0), cell(res, 1), cell_i64(res, 2), a->arg);
}

int catpg_obj_parts(struct catpg *c, int64_t id,
                    int (*cb)(int part_number, const char *etag, int64_t size, void *arg),
                    void *arg)
{
	char n[24];
	snprintf(n, sizeof n, "%lld", (long long)id);
	const char *v[1] = {n};
	struct parts_arg a = {cb, arg};
	return rquery(c, "SELECT number, etag, size FROM parts WHERE obj_id = $1 ORDER BY number",
	              1, v, parts_cb, &a, "reading parts");
}

struct list_arg {
	int (*cb)(const struct cat_coll *c, const struct cat_obj *o, void *arg);
	void *arg;
	int kind; /* of the first row: 0 nothing, 1 the collection, 2 an object there */
	int64_t id;
};

static int probe_cb(PGresult *res, void *arg)
{
	struct list_arg *a = arg;
	a->kind = (int)cell_i64(res, 0);
	a->id = cell_i64(res, 1);
	return 1;
}

static int list_cb(PGresult *res, void *arg)
{
	struct list_arg *a = arg;
	if (cell_i64(res, 0) == 0) {
		struct cat_coll cc;
		row_coll(res, 1, &cc, 0);
		return a->cb(&cc, NULL, a->arg);
	}
	struct cat_obj o;
	if (row_obj(res, 8, &o, 0) < 0)
		return -ENOMEM;
	return a->cb(NULL, &o, a->arg);
}

int catpg_list(struct catpg *c, const char *path,
               int (*cb)(const struct cat_coll *c, const struct cat_obj *o, void *arg), void *arg)
{
	if (!path_valid(path, 1))
		return -ENOENT;
	struct list_arg a = {.cb = cb, .arg = arg};
	const char *v[1] = {path};
	int rc = rquery(c,
	                "SELECT * FROM (SELECT 1, id FROM collections WHERE path = $1 UNION ALL"
	                " SELECT 2, id FROM objects WHERE path = $1 AND current = 1) x"
	                " ORDER BY 1 LIMIT 1",
	                1, v, probe_cb, &a, "reading a collection");
	if (rc)
		return rc;
	if (a.kind != 1)
		return a.kind == 2 && *path ? -ENOTDIR : -ENOENT;
	char n[24];
	snprintf(n, sizeof n, "%lld", (long long)a.id);
	const char *v2[1] = {n};
	/* Collections and current objects in one stream, merged by path (COLLATE
	 * "C": byte order, as strcmp). Columns: kind, COLL_COLS, OBJ_COLS. */
	return rquery(c,
	              "SELECT 0 AS kind, " COLL_COLS ", NULL::bigint, NULL::text, NULL::int,"
	              " NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,"
	              " NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,"
	              " NULL::text, NULL::text, NULL::smallint, NULL::text, NULL::int, NULL::text,"
	              " NULL::text, NULL::smallint, path AS sort FROM collections"
	              " WHERE parent_id = $1"
	              " UNION ALL SELECT 1, NULL::bigint, NULL::text, NULL::bigint, NULL::bigint,"
	              " NULL::bigint, NULL::bigint, NULL::bigint, " OBJ_COLS ", path FROM objects"
	              " WHERE coll_id = $1 AND current = 1 ORDER BY sort",
	              1, v2, list_cb, &a, "listing a collection");
}

int catpg_find(struct catpg *c, const struct cat_query *q,
               int (*cb)(const struct cat_obj *o, void *arg), void *arg)
{
	char sql[1024];
	size_t len = 0;
#define ADD(s) (len += (size_t)snprintf(sql + len, sizeof sql - len, "%s", s))
	ADD("SELECT " OBJ_COLS " FROM objects WHERE true");
	if (!q->all_versions)
		ADD(" AND current = 1");
	char *lo = NULL, *hi = NULL;
	if (q->under && *q->under) {
		if (!path_valid(q->under, 0))
			return -EINVAL;
		if (asprintf(&lo, "%s/", q->under) < 0)
			return -ENOMEM;
		if (asprintf(&hi, "%s0", q->under) < 0) {
			free(lo);
			return -ENOMEM;
		}
		ADD(" AND path >= $1 AND path < $2");
	} else {
		ADD(" AND $1::text IS NULL AND $2::text IS NULL");
	}
	if (q->state >= 0)
		ADD(q->state == CAT_INGESTED ? " AND state = $3::smallint"
		                             : " AND state = $3::smallint AND state <> 2");
	else
		ADD(" AND $3::int IS NOT NULL");
	ADD(q->min_size >= 0 ? " AND size >= $4::bigint" : " AND $4::bigint IS NOT NULL");
	ADD(q->max_size >= 0 ? " AND size <= $5::bigint" : " AND $5::bigint IS NOT NULL");
	ADD(q->mtime_after_ns ? " AND mtime_ns > $6::bigint" : " AND $6::bigint IS NOT NULL");
	ADD(q->mtime_before_ns ? " AND mtime_ns < $7::bigint" : " AND $7::bigint IS NOT NULL");
	if (q->meta_key)
		ADD(q->meta_value ? " AND id IN (SELECT target FROM meta WHERE kind = 0 AND"
		                    " name = $8 AND value = $9)"
		                  : " AND id IN (SELECT target FROM meta WHERE kind = 0 AND"
		                    " name = $8) AND $9::text IS NULL");
	else
		ADD(" AND $8::text IS NULL AND $9::text IS NULL");
	ADD(" ORDER BY path, version DESC");
	/* A name pattern is matched here, with fnmatch like find -name: the
	 * limit then counts matches. */
	if (q->limit > 0 && !q->name_glob)
		ADD(" LIMIT $10::int");
	else
		ADD(" LIMIT CASE WHEN $10::int > 0 THEN NULL::bigint END");
#undef ADD
	char nums[6][24];
	snprintf(nums[0], 24, "%d", q->state);
	snprintf(nums[1], 24, "%lld", (long long)q->min_size);
	snprintf(nums[2], 24, "%lld", (long long)q->max_size);
	snprintf(nums[3], 24, "%lld", (long long)q->mtime_after_ns);
	snprintf(nums[4], 24, "%lld", (long long)q->mtime_before_ns);
	snprintf(nums[5], 24, "%d", q->limit);
	const char *v[10] = {lo,       hi,       nums[0],     nums[1],       nums[2],
	                     nums[3],  nums[4],  q->meta_key, q->meta_value, nums[5]};
	struct each a = {.cb = cb, .arg = arg, .glob = q->name_glob, .limit = q->limit};
	int rc = rquery(c, sql, 10, v, each_cb, &a, "searching");
	free(lo);
	free(hi);
	return rc;
}

struct meta_arg {
	int (*cb)(const struct cat_avu *a, void *arg);
	void *arg;
};

static int meta_cb(PGresult *res, void *arg)
{
	struct meta_arg *m = arg;
	struct cat_avu a = {cell(res, 0), cell(res, 1), cell(res, 2)};
	return m->cb(&a, m->arg);
}

int catpg_meta_list(struct catpg *c, const char *path,
                    int (*cb)(const struct cat_avu *a, void *arg), void *arg)
{
	if (!path_valid(path, 1))
		return -ENOENT;
	struct list_arg t = {0};
	const char *v[1] = {path};
	int rc = rquery(c,
	                "SELECT * FROM (SELECT 2, id FROM objects WHERE $1 <> '' AND path = $1"
	                " AND current = 1 UNION ALL SELECT 1, id FROM collections"
	                " WHERE path = $1) x ORDER BY 1 DESC LIMIT 1",
	                1, v, probe_cb, &t, "reading metadata");
	if (rc)
		return rc;
	if (!t.kind)
		return -ENOENT;
	char k[4], n[24];
	snprintf(k, sizeof k, "%d", t.kind == 2 ? 0 : 1);
	snprintf(n, sizeof n, "%lld", (long long)t.id);
	const char *v2[2] = {k, n};
	struct meta_arg m = {cb, arg};
	return rquery(c,
	              "SELECT name, value, unit FROM meta WHERE kind = $1 AND target = $2"
	              " ORDER BY name",
	              2, v2, meta_cb, &m, "reading metadata");
}

struct ev_arg {
	int (*cb)(const struct cat_event *e, void *arg);
	void *arg;
};

static int ev_cb(PGresult *res, void *arg)
{
	struct ev_arg *a = arg;
	struct cat_event e = {
	    .id = cell_i64(res, 0),
	    .time_ns = cell_i64(res, 1),
	    .obj_id = cell_i64(res, 2),
	    .path = cell(res, 3),
	    .kind = cell(res, 4),
	    .detail = cell(res, 5),
	};
	return a->cb(&e, a->arg);
}

int catpg_events(struct catpg *c, const char *path, int limit,
                 int (*cb)(const struct cat_event *e, void *arg), void *arg)
{
	const char *cols = "id, time_ns, obj_id, coalesce(path, (SELECT o.path FROM objects o"
	                   " WHERE o.id = obj_id)) AS path, kind, detail";
	char sql[1024];
	if (path)
		snprintf(sql, sizeof sql,
		         "SELECT * FROM (SELECT %s FROM events WHERE obj_id IN (SELECT id FROM"
		         " objects WHERE path = $1) UNION ALL SELECT %s FROM events WHERE obj_id"
		         " IS NULL AND path = $1 ORDER BY id DESC%s) x ORDER BY id",
		         cols, cols, limit > 0 ? " LIMIT $2::int" : " LIMIT NULLIF($2::int, $2::int)");
	else
		snprintf(sql, sizeof sql,
		         "SELECT * FROM (SELECT %s FROM events WHERE $1::text IS NULL ORDER BY id"
		         " DESC%s) x ORDER BY id",
		         cols, limit > 0 ? " LIMIT $2::int" : " LIMIT NULLIF($2::int, $2::int)");
	char n[24];
	snprintf(n, sizeof n, "%d", limit);
	const char *v[2] = {path, n};
	struct ev_arg a = {cb, arg};
	return rquery(c, sql, 2, v, ev_cb, &a, "reading events");
}

static int status_cb(PGresult *res, void *arg)
{
	struct cat_status *out = arg;
	int k = (int)cell_i64(res, 0);
	int64_t v = cell_i64(res, 1);
	if (k >= 0 && k < CAT_DELETED) {
		out->count[k] = v;
		if (k == CAT_INGESTED)
			out->bytes_ingested = cell_i64(res, 2);
	} else if (k == 5) {
		out->count[CAT_DELETED] = v;
	} else if (k == 6) {
		out->versions = v;
	} else if (k == 7) {
		out->oldest_pending_ns = v;
	} else if (k == 8) {
		out->collections = v;
	}
	return 0;
}

int catpg_status(struct catpg *c, struct cat_status *out)
{
	memset(out, 0, sizeof *out);
	/* One statement, one snapshot: the numbers belong to the same moment. */
	return rquery(c,
	              "SELECT k, sum(n)::bigint, sum(bytes)::bigint FROM totals GROUP BY k"
	              " UNION ALL SELECT 7, min(t), 0 FROM (SELECT * FROM (SELECT ctime_ns AS t"
	              " FROM objects WHERE state = 0 AND current = 1 ORDER BY id LIMIT 1) a"
	              " UNION ALL SELECT * FROM (SELECT ctime_ns FROM objects WHERE state = 1"
	              " AND current = 1 ORDER BY id LIMIT 1) b) m"
	              " UNION ALL SELECT 8, count(*), 0 FROM collections",
	              0, NULL, status_cb, out, "reading status");
}

int catpg_unfinished(struct catpg *c, int (*cb)(const struct cat_obj *o, void *arg), void *arg)
{
	char owner[256];
	pthread_mutex_lock(&c->qlock);
	copy_str(owner, sizeof owner, c->owner);
	pthread_mutex_unlock(&c->qlock);
	const char *v[1] = {owner};
	struct each a = {.cb = cb, .arg = arg};
	/* Only this owner's: another host's uploads are its own to recover. */
	return rquery(c,
	              "SELECT " OBJ_COLS " FROM objects WHERE owner = $1 AND state IN (0, 1)"
	              " AND current = 1 ORDER BY id",
	              1, v, each_cb, &a, "reading unfinished objects");
}

static int count_cb(PGresult *res, void *arg)
{
	*(int64_t *)arg = cell_i64(res, 0);
	return 0;
}

int catpg_check(struct catpg *c)
{
	int64_t bad = 0;
	int rc = rquery(c,
	                "SELECT count(*) FROM (SELECT path, max(version) AS v FROM objects"
	                " WHERE state <> 4 GROUP BY path) m WHERE NOT EXISTS (SELECT 1 FROM"
	                " objects o WHERE o.path = m.path AND o.version = m.v AND o.current = 1)",
	                0, NULL, count_cb, &bad, "checking current versions");
	if (rc == 0 && bad) {
		log_err("catalog %s: %lld paths whose current version is not their newest live "
		        "version",
		        c->name, (long long)bad);
		return -EPROTO;
	}
	if (rc == 0)
		rc = rquery(c,
		            "WITH t AS (SELECT k, sum(n) AS n, sum(bytes) AS bytes FROM totals"
		            " GROUP BY k), r AS (SELECT k.k, CASE WHEN k.k < 5 THEN (SELECT"
		            " count(*) FROM objects WHERE state = k.k AND current = 1) WHEN k.k = 5"
		            " THEN (SELECT count(*) FROM objects WHERE state = 4) ELSE (SELECT"
		            " count(*) FROM objects) END AS n, CASE WHEN k.k < 5 THEN (SELECT"
		            " coalesce(sum(size), 0) FROM objects WHERE state = k.k AND current = 1)"
		            " ELSE 0 END AS bytes FROM generate_series(0, 6) AS k(k))"
		            " SELECT count(*) FROM r LEFT JOIN t ON t.k = r.k"
		            " WHERE coalesce(t.n, 0) <> r.n OR coalesce(t.bytes, 0) <> r.bytes",
		            0, NULL, count_cb, &bad, "checking totals");
	if (rc == 0 && bad) {
		log_err("catalog %s: status totals disagree with the objects", c->name);
		return -EPROTO;
	}
	return rc;
}
