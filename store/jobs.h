/* jobs.h - scan jobs, kept in the catalog's `jobs` table (schema >= 3).
 *
 * `lzfsctl job start` adds a job; the daemon claims due jobs and runs them
 * (ingest/rescan.c), reporting progress here about once a second; `lzfsctl
 * job list|watch|stop` read it and ask for a stop. The table lives in the
 * catalog file, but this module uses its own SQLite connection: jobs are a
 * few small rows written once a second, not worth the catalog's writer
 * queue, and lzfsctl (another process) writes them too. SQLite's locking
 * (WAL, busy timeout) serializes these writes with the catalog's.
 *
 * States: queued (waiting for its first run), running, waiting (periodic:
 * between runs), stopped, done (a once job that finished), failed (a once
 * job whose run had failures). Every function returns 0 or a negative
 * errno and logs on failure.
 */
#ifndef LZFS_JOBS_H
#define LZFS_JOBS_H

#include <stdint.h>

#define JOB_NAME_MAX 64

struct job {
	char *name;
	char *source;        /* a directory, or s3://BUCKET/PREFIX for register */
	char *target;        /* s3://BUCKET/PREFIX */
	char *args;          /* scan options, one per line (as given to lzfsctl scan) */
	int64_t interval;    /* seconds between runs; 0 = once; -1 = watch */
	char *state;
	int stop;            /* a stop was asked for */
	int64_t created_ns, started_ns, finished_ns, next_ns, heartbeat_ns;
	char *runner;        /* "PID@HOST" of the process running it */
	int64_t runs;
	int64_t files_total, files_done, bytes_total, bytes_done, files_failed, files_skipped;
	char *last_error;
	char *summary;       /* one line about the last run */
};
void job_clear(struct job *j);

/* 1 if name is a valid job name: 1..64 of [A-Za-z0-9._-], not starting
 * with '.' or '-'. */
int job_name_ok(const char *name);

struct job_db;

/* Opens the jobs table of the catalog file. -ENOTSUP (logged) if the
 * catalog predates it: open it read-write once with lzfs or lzfsctl. */
int job_db_open(const char *catalog_file, struct job_db **out);
void job_db_close(struct job_db *db);

/* Adds a job in state queued, due now. -EEXIST if the name is taken. */
int job_add(struct job_db *db, const struct job *j);
int job_get(struct job_db *db, const char *name, struct job *out);
/* Every job, by name. cb returns non-zero to stop. */
int job_list(struct job_db *db, int (*cb)(const struct job *j, void *arg), void *arg);
/* Asks the runner to stop; a job not running becomes stopped at once. */
int job_request_stop(struct job_db *db, const char *name);
/* Removes a job that is not running (-EBUSY if it is). */
int job_remove(struct job_db *db, const char *name);

/* The runner's side. Claims the job for `runner` if it is due (queued or
 * waiting, next_ns <= now, no stop asked) or running with a heartbeat older
 * than stale_ns (its runner died): state running, runs + 1, counters reset.
 * -EBUSY if not claimable now. */
int job_claim(struct job_db *db, const char *name, const char *runner, int64_t stale_ns);
/* Progress of the running job (counters, summary) and a heartbeat. Sets
 * *stop to 1 if a stop was asked for. */
int job_progress(struct job_db *db, const struct job *j, int *stop);
/* Ends a run: state (waiting, done, failed, stopped), when it is due next,
 * its summary and error (may be NULL). */
int job_finish(struct job_db *db, const struct job *j, const char *state, int64_t next_ns);

/* The run lock of scan NAME: while one process holds it, rows of source
 * "scan:NAME" in state pending/uploading are that run's, and whoever can
 * take it knows they were left by a run that died. For an SQLite catalog
 * an flock() on CATALOG.scan-NAME.lock; for a PostgreSQL one a session
 * advisory lock (keyed by the catalog's schema and NAME) on a connection
 * of its own, so that hosts sharing the catalog exclude each other and a
 * process that dies releases it with its connection. -EBUSY if held
 * (not logged), -EINVAL for a bad name. */
struct job_lock;
int job_lock(const char *catalog, const char *name, struct job_lock **out);
void job_unlock(struct job_lock *lk); /* NULL is fine */

#endif
