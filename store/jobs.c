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

#include "log.h"

#define JOBS_BUSY_MS 10000

struct job_db {
	sqlite3 *db;
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
		log_err("scan jobs need an SQLite catalog (not yet a PostgreSQL one)");
		job_db_close(d);
		return -ENOTSUP;
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
	pthread_mutex_destroy(&d->mu);
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, "INSERT INTO jobs(name, source, target, args, interval, state,"
			    " created_ns, next_ns) VALUES(?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)", &st);
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
	sqlite3_stmt *st;
	int rc = prepare(d, "SELECT " JOB_COLS " FROM jobs ORDER BY name", &st);
	if (rc == 0) {
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int changes = 0;
	int rc = prepare(d, "UPDATE jobs SET stop = 1, state = CASE WHEN state = 'running' THEN"
			    " state ELSE 'stopped' END WHERE name = ?1", &st);
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	rc = prepare(d, "DELETE FROM jobs WHERE name = ?1 AND state <> 'running'", &st);
	int changes = 0;
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	/* One UPDATE decides: two daemons on one catalog cannot both win. */
	int rc = prepare(d, "UPDATE jobs SET state = 'running', runner = ?2, started_ns = ?3,"
			    " heartbeat_ns = ?3, finished_ns = 0, runs = runs + 1, files_total = 0,"
			    " files_done = 0, bytes_total = 0, bytes_done = 0, files_failed = 0,"
			    " files_skipped = 0, last_error = NULL"
			    " WHERE name = ?1 AND stop = 0 AND ((state IN ('queued', 'waiting') AND"
			    " next_ns <= ?3) OR (state = 'running' AND heartbeat_ns < ?4))", &st);
	int changes = 0;
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, "UPDATE jobs SET heartbeat_ns = ?2, files_total = ?3, files_done = ?4,"
			    " bytes_total = ?5, bytes_done = ?6, files_failed = ?7, files_skipped = ?8,"
			    " summary = coalesce(?9, summary) WHERE name = ?1 RETURNING stop", &st);
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
	pthread_mutex_lock(&d->mu);
	sqlite3_stmt *st;
	int rc = prepare(d, "UPDATE jobs SET state = CASE WHEN stop = 1 THEN 'stopped' ELSE ?2 END,"
			    " next_ns = ?3, finished_ns = ?4, heartbeat_ns = ?4, files_total = ?5,"
			    " files_done = ?6, bytes_total = ?7, bytes_done = ?8, files_failed = ?9,"
			    " files_skipped = ?10, summary = ?11, last_error = ?12, runner = NULL"
			    " WHERE name = ?1", &st);
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
