/* jobs.c - see jobs.h. One SQLite connection per job_db, used under a
 * mutex (the daemon's job threads share it). */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"

#define JOBS_BUSY_MS 10000

struct job_db {
	sqlite3 *db;
	PGconn *pg;   /* a PostgreSQL catalog instead (db NULL) */
	char *url;    /* its URL, to reconnect; file is the URL without password */
	char *file;
	pthread_mutex_t mu;
};

#define JOB_COLS                                                                             \
	"name, source, target, args, interval, state, stop, created_ns, started_ns, "       \
	"finished_ns, next_ns, heartbeat_ns, runner, runs, files_total, files_done, "       \
	"bytes_total, bytes_done, files_failed, files_skipped, last_error, summary"

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void job_clear(struct job *j)
{
	free(j->name);
	free(j->source);
	free(j->target);
	free(j->args);
	free(j->state);
	free(j->runner);
	free(j->last_error);
	free(j->summary);
	memset(j, 0, sizeof *j);
}

int job_name_ok(const char *n)
{
	size_t l = n ? strlen(n) : 0;
	if (l == 0 || l > JOB_NAME_MAX || n[0] == '.' || n[0] == '-')
		return 0;
	for (size_t i = 0; i < l; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int fail(struct job_db *d, int rc, const char *what)
{
	log_err("catalog %s: jobs: %s: %s", d->file, what, sqlite3_errmsg(d->db));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* ---------- PostgreSQL ----------
 *
 * The same statements as on SQLite (the jobs table is the same, created
 * with the catalog's schema), sent with PQexecParams: "?N" becomes "$N",
 * every parameter travels as text (NULL as SQL NULL). */

/* Keepalives: a session lock of a host that vanished must not be held
 * for the kernel's two hours. */
static int pg_connect(const char *url, const char *name, PGconn **out)
{
	const char *const keys[] = {"dbname", "keepalives_idle", "keepalives_interval",
				    "keepalives_count", "application_name", NULL};
	const char *const vals[] = {url, "30", "10", "3", "lzfs jobs", NULL};
	PGconn *db = PQconnectdbParams(keys, vals, 1);
	if (!db)
		return -ENOMEM;
	if (PQstatus(db) != CONNECTION_OK) {
		char m[512];
		snprintf(m, sizeof m, "%s", PQerrorMessage(db));
		m[strcspn(m, "\n")] = '\0';
		log_err("catalog %s: jobs: cannot connect: %s", name, m);
		PQfinish(db);
		return -EIO;
	}
	*out = db;
	return 0;
}

static int pg_errno(PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!st)
		return -EIO;
	if (strcmp(st, "23505") == 0)
		return -EEXIST;
	if (strncmp(st, "40", 2) == 0 || strcmp(st, "55P03") == 0)
		return -EBUSY;
	if (strcmp(st, "25006") == 0)
		return -EROFS;
	if (strncmp(st, "28", 2) == 0 || strcmp(st, "42501") == 0)
		return -EACCES;
	return -EIO;
}

/* Runs sql (SQLite's "?N" placeholders) with n text parameters; *res gets
 * the result on success (the caller clears it). A connection the server
 * dropped is reopened once. */
static int pg_run(struct job_db *d, const char *sql, int n, const char *const *v, const char *what,
		  PGresult **res)
{
	char q[1024];
	size_t k = 0;
	for (const char *p = sql; *p && k + 1 < sizeof q; p++)
		q[k++] = *p == '?' ? '$' : *p;
	q[k] = '\0';
	for (int attempt = 0;; attempt++) {
		if (PQstatus(d->pg) != CONNECTION_OK)
			PQreset(d->pg);
		PGresult *r = PQexecParams(d->pg, q, n, NULL, v, NULL, NULL, 0);
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
			*res = r;
			return 0;
		}
		if (attempt == 0 && PQstatus(d->pg) != CONNECTION_OK) {
			PQclear(r);
			continue;
		}
		int rc = pg_errno(r);
		if (rc != -EEXIST) {
			char m[512];
			snprintf(m, sizeof m, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(d->pg));
			m[strcspn(m, "\n")] = '\0';
			log_err("catalog %s: jobs: %s: %s", d->file, what, m);
		}
		PQclear(r);
		return rc;
	}
}

static int pg_have_jobs(struct job_db *d)
{
	PGresult *r;
	int rc = pg_run(d, "SELECT to_regclass('jobs') IS NOT NULL AND"
			   " to_regclass('lzfs_catalog') IS NOT NULL", 0, NULL, "reading the schema", &r);
	if (rc < 0)
		return rc;
	int have = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!have) {
		log_err("catalog %s has no lzfs catalog yet: it is created when lzfs starts "
			"(or by lzfsctl scan)", d->file);
		return -ENOENT;
	}
	return 0;
}

static char *pg_dup(PGresult *r, int row, int col, int *oom)
{
	if (PQgetisnull(r, row, col))
		return NULL;
	char *s = strdup(PQgetvalue(r, row, col));
	if (!s)
		*oom = 1;
	return s;
}

static int64_t pg_i64(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int pg_row_job(PGresult *r, int row, struct job *j)
{
	int oom = 0;
	memset(j, 0, sizeof *j);
	j->name = pg_dup(r, row, 0, &oom);
	j->source = pg_dup(r, row, 1, &oom);
	j->target = pg_dup(r, row, 2, &oom);
	j->args = pg_dup(r, row, 3, &oom);
	j->interval = pg_i64(r, row, 4);
	j->state = pg_dup(r, row, 5, &oom);
	j->stop = (int)pg_i64(r, row, 6);
	j->created_ns = pg_i64(r, row, 7);
	j->started_ns = pg_i64(r, row, 8);
	j->finished_ns = pg_i64(r, row, 9);
	j->next_ns = pg_i64(r, row, 10);
	j->heartbeat_ns = pg_i64(r, row, 11);
	j->runner = pg_dup(r, row, 12, &oom);
	j->runs = pg_i64(r, row, 13);
	j->files_total = pg_i64(r, row, 14);
	j->files_done = pg_i64(r, row, 15);
	j->bytes_total = pg_i64(r, row, 16);
	j->bytes_done = pg_i64(r, row, 17);
	j->files_failed = pg_i64(r, row, 18);
	j->files_skipped = pg_i64(r, row, 19);
	j->last_error = pg_dup(r, row, 20, &oom);
	j->summary = pg_dup(r, row, 21, &oom);
	if (oom) {
		job_clear(j);
		return -ENOMEM;
	}
	return 0;
}

/* Numbers as text parameters. */
struct pg_num {
	char v[12][24];
};
static const char *pg_n(struct pg_num *n, int i, int64_t x)
{
	snprintf(n->v[i], sizeof n->v[i], "%lld", (long long)x);
	return n->v[i];
}

/* A write on PostgreSQL: *changes gets the rows changed. */
static int pg_write(struct job_db *d, const char *sql, int n, const char *const *v,
		    const char *what, int *changes)
{
	PGresult *r;
	pthread_mutex_lock(&d->mu);
	int rc = pg_run(d, sql, n, v, what, &r);
	pthread_mutex_unlock(&d->mu);
	if (rc < 0)
		return rc;
	if (changes)
		*changes = atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

int job_db_open(const char *file, struct job_db **out)
{
	*out = NULL;
	struct job_db *d = calloc(1, sizeof *d);
	if (!d || !(d->file = strdup(file))) {
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->mu, NULL);
	if (strstr(file, "://")) {
		char name[1024];
		free(d->file);
		d->file = strdup(cat_redact(file, name, sizeof name));
		d->url = strdup(file);
		int rc = d->file && d->url ? pg_connect(d->url, d->file, &d->pg) : -ENOMEM;
		if (rc == 0)
			rc = pg_have_jobs(d);
		if (rc < 0) {
			job_db_close(d);
			return rc;
		}
		*out = d;
		return 0;
	}
	int rc = sqlite3_open_v2(file, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_err("catalog %s: cannot open for jobs: %s", file,
			d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
		rc = rc == SQLITE_CANTOPEN ? -ENOENT : -EIO;
		goto bad;
	}
	sqlite3_busy_timeout(d->db, JOBS_BUSY_MS);
	sqlite3_stmt *st;
	rc = sqlite3_prepare_v2(d->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND"
				       " name = 'jobs'", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = fail(d, rc, "reading the schema");
		goto bad;
	}
	int have = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
	sqlite3_finalize(st);
	if (!have) {
		log_err("catalog %s has no jobs table (an older schema): open it read-write once "
			"(start lzfs, or run lzfsctl scan) to migrate it", file);
		rc = -ENOTSUP;
		goto bad;
	}
	*out = d;
	return 0;
bad:
	job_db_close(d);
	return rc;
}

void job_db_close(struct job_db *d)
{
	if (!d)
		return;
	sqlite3_close(d->db);
	if (d->pg)
		PQfinish(d->pg);
	pthread_mutex_destroy(&d->mu);
	free(d->url);
	free(d->file);
	free(d);
}

static char *col_dup(sqlite3_stmt *st, int i, int *oom)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

static int row_job(sqlite3_stmt *st, struct job *j)
{
	int oom = 0;
	memset(j, 0, sizeof *j);
	j->name = col_dup(st, 0, &oom);
	j->source = col_dup(st, 1, &oom);
	j->target = col_dup(st, 2, &oom);
	j->args = col_dup(st, 3, &oom);
	j->interval = sqlite3_column_int64(st, 4);
	j->state = col_dup(st, 5, &oom);
	j->stop = sqlite3_column_int(st, 6);
	j->created_ns = sqlite3_column_int64(st, 7);
	j->started_ns = sqlite3_column_int64(st, 8);
	j->finished_ns = sqlite3_column_int64(st, 9);
	j->next_ns = sqlite3_column_int64(st, 10);
	j->heartbeat_ns = sqlite3_column_int64(st, 11);
	j->runner = col_dup(st, 12, &oom);
	j->runs = sqlite3_column_int64(st, 13);
	j->files_total = sqlite3_column_int64(st, 14);
	j->files_done = sqlite3_column_int64(st, 15);
	j->bytes_total = sqlite3_column_int64(st, 16);
	j->bytes_done = sqlite3_column_int64(st, 17);
	j->files_failed = sqlite3_column_int64(st, 18);
	j->files_skipped = sqlite3_column_int64(st, 19);
	j->last_error = col_dup(st, 20, &oom);
	j->summary = col_dup(st, 21, &oom);
	if (oom) {
		job_clear(j);
		return -ENOMEM;
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Runs a prepared write; *changes gets the rows changed. */
static int exec_write(struct job_db *d, sqlite3_stmt *st, const char *what, int *changes)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = fail(d, rc, what);
		sqlite3_finalize(st);
		return rc;
	}
	if (changes)
		*changes = sqlite3_changes(d->db);
	sqlite3_finalize(st);
	return 0;
}

static int prepare(struct job_db *d, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(d->db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : fail(d, rc, "preparing a statement");
}

int job_add(struct job_db *d, const struct job *j)
{
	if (!job_name_ok(j->name))
		return -EINVAL;
	static const char sql[] = "INSERT INTO jobs(name, source, target, args, interval, state,"
				  " created_ns, next_ns) VALUES(?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)";
	if (d->pg) {
		struct pg_num n;
		const char *v[] = {j->name, j->source, j->target, j->args ? j->args : "",
				   pg_n(&n, 0, j->interval), pg_n(&n, 1, now_ns())};
		return pg_write(d, sql, 6, v, "adding a job", NULL);
	}
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, sql, &st);
	if (rc == 0) {
		bind_text(st, 1, j->name);
		bind_text(st, 2, j->source);
		bind_text(st, 3, j->target);
		bind_text(st, 4, j->args ? j->args : "");
		sqlite3_bind_int64(st, 5, j->interval);
		sqlite3_bind_int64(st, 6, now_ns());
		rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
			rc = -EEXIST;
		else if (rc != SQLITE_DONE)
			rc = fail(d, rc, "adding a job");
		else
			rc = 0;
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

int job_get(struct job_db *d, const char *name, struct job *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&d->mu);
	if (d->pg) {
		PGresult *r;
		const char *v[] = {name};
		int rc = pg_run(d, "SELECT " JOB_COLS " FROM jobs WHERE name = ?1", 1, v,
				"reading a job", &r);
		pthread_mutex_unlock(&d->mu);
		if (rc < 0)
			return rc;
		rc = PQntuples(r) == 1 ? pg_row_job(r, 0, out) : -ENOENT;
		PQclear(r);
		return rc;
	}
	sqlite3_stmt *st;
	int rc = prepare(d, "SELECT " JOB_COLS " FROM jobs WHERE name = ?1", &st);
	if (rc == 0) {
		bind_text(st, 1, name);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW)
			rc = row_job(st, out);
		else if (s == SQLITE_DONE)
			rc = -ENOENT;
		else
			rc = fail(d, s, "reading a job");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

int job_list(struct job_db *d, int (*cb)(const struct job *j, void *arg), void *arg)
{
	/* Rows are copied out first so that cb may call back into jobs. */
	struct job *all = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st = NULL;
	int rc;
	if (d->pg) {
		PGresult *r;
		rc = pg_run(d, "SELECT " JOB_COLS " FROM jobs ORDER BY name", 0, NULL,
			    "listing jobs", &r);
		if (rc == 0) {
			cap = (size_t)PQntuples(r);
			all = cap ? calloc(cap, sizeof *all) : NULL;
			if (cap && !all)
				rc = -ENOMEM;
			for (; rc == 0 && n < cap; n++)
				if ((rc = pg_row_job(r, (int)n, &all[n])) < 0)
					break;
			PQclear(r);
		}
	} else {
		rc = prepare(d, "SELECT " JOB_COLS " FROM jobs ORDER BY name", &st);
	}
	if (rc == 0 && st) {
		int s;
		while ((s = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				size_t c2 = cap ? cap * 2 : 16;
				struct job *a = realloc(all, c2 * sizeof *a);
				if (!a) {
					rc = -ENOMEM;
					break;
				}
				all = a;
				cap = c2;
			}
			if ((rc = row_job(st, &all[n])) < 0)
				break;
			n++;
		}
		if (rc == 0 && s != SQLITE_DONE)
			rc = fail(d, s, "listing jobs");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	for (size_t i = 0; i < n && rc == 0; i++) {
		int v = cb(&all[i], arg);
		if (v) {
			rc = v < 0 ? v : 0;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		job_clear(&all[i]);
	free(all);
	return rc;
}

int job_request_stop(struct job_db *d, const char *name)
{
	static const char sql[] = "UPDATE jobs SET stop = 1, state = CASE WHEN state = 'running'"
				  " THEN state ELSE 'stopped' END WHERE name = ?1";
	int changes = 0;
	if (d->pg) {
		const char *v[] = {name};
		int rc = pg_write(d, sql, 1, v, "stopping a job", &changes);
		return rc == 0 && changes == 0 ? -ENOENT : rc;
	}
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, sql, &st);
	if (rc == 0) {
		bind_text(st, 1, name);
		rc = exec_write(d, st, "stopping a job", &changes);
	}
	pthread_mutex_unlock(&d->mu);
	return rc == 0 && changes == 0 ? -ENOENT : rc;
}

int job_remove(struct job_db *d, const char *name)
{
	struct job j;
	int rc = job_get(d, name, &j);
	if (rc < 0)
		return rc;
	int running = strcmp(j.state, "running") == 0;
	job_clear(&j);
	if (running)
		return -EBUSY;
	int changes = 0;
	if (d->pg) {
		const char *v[] = {name};
		rc = pg_write(d, "DELETE FROM jobs WHERE name = ?1 AND state <> 'running'", 1, v,
			      "removing a job", &changes);
		return rc == 0 && changes == 0 ? -EBUSY : rc;
	}
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	rc = prepare(d, "DELETE FROM jobs WHERE name = ?1 AND state <> 'running'", &st);
	if (rc == 0) {
		bind_text(st, 1, name);
		rc = exec_write(d, st, "removing a job", &changes);
	}
	pthread_mutex_unlock(&d->mu);
	return rc == 0 && changes == 0 ? -EBUSY : rc;
}

int job_claim(struct job_db *d, const char *name, const char *runner, int64_t stale_ns)
{
	int64_t now = now_ns();
	/* One UPDATE decides: two daemons on one catalog cannot both win (on
	 * PostgreSQL the second waits for the first's row lock, then finds the
	 * row no longer claimable). */
	static const char sql[] =
	    "UPDATE jobs SET state = 'running', runner = ?2, started_ns = ?3,"
	    " heartbeat_ns = ?3, finished_ns = 0, runs = runs + 1, files_total = 0,"
	    " files_done = 0, bytes_total = 0, bytes_done = 0, files_failed = 0,"
	    " files_skipped = 0, last_error = NULL"
	    " WHERE name = ?1 AND stop = 0 AND ((state IN ('queued', 'waiting') AND"
	    " next_ns <= ?3) OR (state = 'running' AND heartbeat_ns < ?4))";
	int changes = 0;
	if (d->pg) {
		struct pg_num n;
		const char *v[] = {name, runner, pg_n(&n, 0, now), pg_n(&n, 1, now - stale_ns)};
		int rc = pg_write(d, sql, 4, v, "claiming a job", &changes);
		return rc == 0 && changes == 0 ? -EBUSY : rc;
	}
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, sql, &st);
	if (rc == 0) {
		bind_text(st, 1, name);
		bind_text(st, 2, runner);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_int64(st, 4, now - stale_ns);
		rc = exec_write(d, st, "claiming a job", &changes);
	}
	pthread_mutex_unlock(&d->mu);
	return rc == 0 && changes == 0 ? -EBUSY : rc;
}

int job_progress(struct job_db *d, const struct job *j, int *stop)
{
	static const char sql[] =
	    "UPDATE jobs SET heartbeat_ns = ?2, files_total = ?3, files_done = ?4,"
	    " bytes_total = ?5, bytes_done = ?6, files_failed = ?7, files_skipped = ?8,"
	    " summary = coalesce(?9, summary) WHERE name = ?1 RETURNING stop";
	pthread_mutex_lock(&d->mu);
	if (d->pg) {
		struct pg_num n;
		const char *v[] = {j->name, pg_n(&n, 0, now_ns()), pg_n(&n, 1, j->files_total),
				   pg_n(&n, 2, j->files_done), pg_n(&n, 3, j->bytes_total),
				   pg_n(&n, 4, j->bytes_done), pg_n(&n, 5, j->files_failed),
				   pg_n(&n, 6, j->files_skipped), j->summary};
		PGresult *r;
		int rc = pg_run(d, sql, 9, v, "reporting job progress", &r);
		pthread_mutex_unlock(&d->mu);
		if (rc < 0)
			return rc;
		if (PQntuples(r) == 1) {
			if (stop)
				*stop = atoi(PQgetvalue(r, 0, 0));
		} else {
			rc = -ENOENT; /* removed under us: treat as a stop */
			if (stop)
				*stop = 1;
		}
		PQclear(r);
		return rc;
	}
	sqlite3_stmt *st;
	int rc = prepare(d, sql, &st);
	if (rc == 0) {
		bind_text(st, 1, j->name);
		sqlite3_bind_int64(st, 2, now_ns());
		sqlite3_bind_int64(st, 3, j->files_total);
		sqlite3_bind_int64(st, 4, j->files_done);
		sqlite3_bind_int64(st, 5, j->bytes_total);
		sqlite3_bind_int64(st, 6, j->bytes_done);
		sqlite3_bind_int64(st, 7, j->files_failed);
		sqlite3_bind_int64(st, 8, j->files_skipped);
		bind_text(st, 9, j->summary);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			if (stop)
				*stop = sqlite3_column_int(st, 0);
			s = sqlite3_step(st);
		} else if (s == SQLITE_DONE) {
			rc = -ENOENT; /* removed under us: treat as a stop */
			if (stop)
				*stop = 1;
		}
		if (rc == 0 && s != SQLITE_DONE)
			rc = fail(d, s, "reporting job progress");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

int job_finish(struct job_db *d, const struct job *j, const char *state, int64_t next_ns)
{
	static const char sql[] =
	    "UPDATE jobs SET state = CASE WHEN stop = 1 THEN 'stopped' ELSE ?2 END,"
	    " next_ns = ?3, finished_ns = ?4, heartbeat_ns = ?4, files_total = ?5,"
	    " files_done = ?6, bytes_total = ?7, bytes_done = ?8, files_failed = ?9,"
	    " files_skipped = ?10, summary = ?11, last_error = ?12, runner = NULL"
	    " WHERE name = ?1";
	if (d->pg) {
		struct pg_num n;
		const char *v[] = {j->name, state, pg_n(&n, 0, next_ns), pg_n(&n, 1, now_ns()),
				   pg_n(&n, 2, j->files_total), pg_n(&n, 3, j->files_done),
				   pg_n(&n, 4, j->bytes_total), pg_n(&n, 5, j->bytes_done),
				   pg_n(&n, 6, j->files_failed), pg_n(&n, 7, j->files_skipped),
				   j->summary, j->last_error};
		return pg_write(d, sql, 12, v, "finishing a job run", NULL);
	}
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, sql, &st);
	if (rc == 0) {
		bind_text(st, 1, j->name);
		bind_text(st, 2, state);
		sqlite3_bind_int64(st, 3, next_ns);
		sqlite3_bind_int64(st, 4, now_ns());
		sqlite3_bind_int64(st, 5, j->files_total);
		sqlite3_bind_int64(st, 6, j->files_done);
		sqlite3_bind_int64(st, 7, j->bytes_total);
		sqlite3_bind_int64(st, 8, j->bytes_done);
		sqlite3_bind_int64(st, 9, j->files_failed);
		sqlite3_bind_int64(st, 10, j->files_skipped);
		bind_text(st, 11, j->summary);
		bind_text(st, 12, j->last_error);
		rc = exec_write(d, st, "finishing a job run", NULL);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

/* ---------- run locks ---------- */

struct job_lock {
	int fd;
	PGconn *pg;
};

int job_lock(const char *catalog, const char *name, struct job_lock **out)
{
	*out = NULL;
	if (!job_name_ok(name))
		return -EINVAL;
	struct job_lock *lk = calloc(1, sizeof *lk);
	if (!lk)
		return -ENOMEM;
	lk->fd = -1;
	int rc;
	if (strstr(catalog, "://")) {
		char redacted[1024];
		cat_redact(catalog, redacted, sizeof redacted);
		rc = pg_connect(catalog, redacted, &lk->pg);
		if (rc == 0) {
			/* 64 bits of md5: a collision between two names costs a
			 * false EBUSY, never a shared run. */
			const char *v[] = {name};
			PGresult *r = PQexecParams(
			    lk->pg,
			    "SELECT pg_try_advisory_lock(('x' || substr(md5(current_schema() ||"
			    " '/lzfs scan/' || $1), 1, 16))::bit(64)::bigint)",
			    1, NULL, v, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK) {
				char m[512];
				snprintf(m, sizeof m, "%s", PQresultErrorMessage(r));
				m[strcspn(m, "\n")] = '\0';
				log_err("catalog %s: scan %s: cannot lock: %s", redacted, name, m);
				rc = -EIO;
			} else if (PQgetvalue(r, 0, 0)[0] != 't') {
				rc = -EBUSY;
			}
			PQclear(r);
		}
	} else {
		char *path;
		if (asprintf(&path, "%s.scan-%s.lock", catalog, name) < 0) {
			free(lk);
			return -ENOMEM;
		}
		lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		rc = lk->fd < 0 ? -errno : 0;
		if (rc == 0 && flock(lk->fd, LOCK_EX | LOCK_NB) < 0)
			rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc < 0 && rc != -EBUSY)
			log_err("%s: cannot lock: %s", path, strerror(-rc));
		free(path);
	}
	if (rc < 0) {
		job_unlock(lk);
		return rc;
	}
	*out = lk;
	return 0;
}

void job_unlock(struct job_lock *lk)
{
	if (!lk)
		return;
	if (lk->fd >= 0)
		close(lk->fd); /* releases the flock */
	if (lk->pg) {
		/* Released now, not when the server gets round to the closed
		 * session: the next run may start at once. */
		PQclear(PQexec(lk->pg, "SELECT pg_advisory_unlock_all()"));
		PQfinish(lk->pg);
	}
	free(lk);
}
