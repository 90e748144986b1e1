/* scan.h - ingest of trees that did not come through the mount: the walker,
 * filters, key templates, sync modes, hooks and the worker pool shared by
 * `lzfsctl scan`, the daemon's scan jobs and its spool rescanner.
 *
 * A scan maps every regular file below a source directory to an S3 key
 * (a key template) and a catalog path, and decides from the file and the
 * path's current catalog row what to do (the sync mode). Decisions are
 * re-made by the worker that acts on them, from a fresh fstat() and a fresh
 * catalog row, so a file queued long ago is judged as it is now.
 *
 * Files are opened without following anything: directories with
 * openat(O_NOFOLLOW|O_DIRECTORY) from their parent's fd, files with O_PATH
 * first and reopened for reading only once fstat() says they are regular,
 * so a FIFO, a device or a symlink swapped in at the last moment is never
 * opened for reading. Unreadable entries are logged and counted; the scan
 * goes on.
 *
 * Functions return 0 or a negative errno unless said otherwise.
 */
#ifndef LZFS_SCAN_H
#define LZFS_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "catalog.h"
#include "s3.h"
#include "upload.h"

/* ---------- sync modes ---------- */

enum scan_mode {
	SCAN_PUT = 0,        /* upload new files; anything the catalog has is left alone */
	SCAN_PUT_SYNC = 1,   /* upload new and changed files (a change is a new version) */
	SCAN_PUT_APPEND = 2, /* like put-sync, but a file that grew sends only the new bytes */
	SCAN_REGISTER = 3,   /* catalog objects already in S3 (ListObjectsV2), upload nothing */
	SCAN_NOOP = 4,       /* report what put-sync would do; change nothing */
};
int scan_mode_parse(const char *s); /* mode or -EINVAL */
const char *scan_mode_name(int mode);

/* What to do with one file. */
enum scan_action {
	SCAN_SKIP = 0,      /* unchanged, or mode put and already cataloged */
	SCAN_NEW,           /* no current row (or a failed one): upload */
	SCAN_CHANGED,       /* different size: upload a new version */
	SCAN_VERIFY,        /* same size, other mtime: compare SHA-256 before deciding */
	SCAN_APPEND,        /* grew past >= 5 MiB already in S3: compose old object + new bytes */
	SCAN_BUSY,          /* the row is pending/uploading: someone else is on it */
};
const char *scan_action_name(int action);

/* The part of a catalog row decisions need. */
struct scan_row {
	int64_t id;
	int64_t size;
	int64_t mtime_ns;
	int state;          /* enum cat_state */
	int has_sha256;
};

/* Pure decision for a regular file of `size` and `mtime_ns` whose path has
 * current row `row` (NULL: none). */
int scan_decide(int mode, int64_t size, int64_t mtime_ns, const struct scan_row *row);

/* ---------- key templates ---------- */

/* Variables: {prefix} the target prefix, {relpath} the path below the
 * source directory, {dir} its directory part ("" at the top), {name} the
 * file name, {stem} the name without its last extension, {ext} that
 * extension without the dot ("" if none), {yyyy} {mm} {dd} {hh} from the
 * file's mtime (UTC), {host} this host's name. "{{" and "}}" are literal
 * braces. {prefix} and {dir} are path variables: when empty, the '/' that
 * follows them is dropped, so "{prefix}/{dir}/{name}" works at the top of
 * the tree and with an empty prefix.
 *
 * scan_tmpl_new refuses unknown variables, unbalanced braces, a template
 * with a literal ".", ".." or empty segment, a leading '/', and a template
 * that does not start with {prefix} (the key must stay under the prefix).
 * Expansion refuses (per file) a key with a ".", ".." or empty segment, a
 * key not under the prefix, more than 1024 bytes or invalid UTF-8. */
#define SCAN_DEFAULT_TEMPLATE "{prefix}/{relpath}"
#define SCAN_KEY_MAX 1024

struct scan_tmpl;
int scan_tmpl_new(const char *text, struct scan_tmpl **out, char *err, size_t errlen);
void scan_tmpl_free(struct scan_tmpl *t);
/* *key is malloc'd. On -EINVAL err says why. */
int scan_tmpl_expand(const struct scan_tmpl *t, const char *prefix, const char *relpath,
		     int64_t mtime_ns, char **key, char *err, size_t errlen);
/* 1 if the key's directory depends only on the file's directory (no
 * {yyyy}, {name} ... before the last '/'): the walker may then list the
 * catalog once per directory instead of once per file. */
int scan_tmpl_dir_stable(const struct scan_tmpl *t);

/* ---------- filters ---------- */

/* File and directory names are matched as a whole against POSIX extended
 * regular expressions (a name matches "a.*" only if it starts with a).
 * Types: regular, directory, character, block, socket, pipe, link. An
 * excluded directory is not descended into. */
struct scan_filter;
int scan_filter_new(struct scan_filter **out);
void scan_filter_free(struct scan_filter *f);
int scan_filter_add_file_name(struct scan_filter *f, const char *regex, char *err, size_t errlen);
int scan_filter_add_dir_name(struct scan_filter *f, const char *regex, char *err, size_t errlen);
int scan_filter_add_type(struct scan_filter *f, const char *type);
/* 1 if excluded. mode: st_mode (only the type bits are used). */
int scan_filter_excludes(const struct scan_filter *f, const char *name, mode_t mode);

/* ---------- hooks ---------- */

/* What a hook sees, in LZFS_PATH, LZFS_KEY, LZFS_SIZE, LZFS_SHA256,
 * LZFS_ERROR, LZFS_HOOK (pre-ingest, post-ingest, on-failure), plus
 * LZFS_BUCKET and LZFS_MODE. NULL fields are left out. */
struct scan_hook_env {
	const char *hook;
	const char *path;
	const char *key;
	const char *bucket;
	const char *mode;
	int64_t size;
	const char *sha256;
	const char *error;
};

/* Runs `/bin/sh -c CMD` in its own process group with the values only in
 * the environment (never in the command line), stdin from /dev/null and
 * stdout/stderr logged (the first 4 KiB, line by line). AWS_SECRET_ACCESS_KEY
 * and AWS_SESSION_TOKEN are removed from its environment. Returns the exit
 * status (0..255), 128+N if killed by signal N, -ETIMEDOUT after
 * timeout_s (the process group is killed), or a negative errno. */
int scan_run_hook(const char *cmd, const struct scan_hook_env *env, int timeout_s);

/* ---------- files open for writing ---------- */

/* The (device, inode) pairs that some process on this host has open for
 * writing, from /proc/PID/fdinfo: a snapshot taken before ingesting files
 * that look settled (a writer may pause longer than settle_time). Writers
 * on other hosts (NFS, SMB clients) are not visible here; settle_time is
 * the guard for them. */
struct scan_openset;
int scan_openset_load(struct scan_openset **out);
int scan_openset_has(const struct scan_openset *s, dev_t dev, ino_t ino);
void scan_openset_free(struct scan_openset *s);

/* ---------- a scan ---------- */

/* What a new version does to the object it replaces (as lzfs's overwrite=). */
enum scan_overwrite {
	SCAN_OVERWRITE_VERSION = 0, /* the previous content is first copied to
				     * PREFIX/.lzfs/versions/PATH.vN and its row points there */
	SCAN_OVERWRITE_REPLACE = 1, /* the previous content is replaced */
	SCAN_OVERWRITE_DENY = 2,    /* an ingested file is never sent again (logged) */
};
int scan_overwrite_parse(const char *s); /* value or -EINVAL */

enum scan_path_mode {
	SCAN_PATH_KEY = 0,  /* catalog path = collection + key below the prefix (default: the key) */
	SCAN_PATH_REL = 1,  /* catalog path = path below the source dir (the spool rescanner) */
};

struct scan_config {
	int mode;
	const char *bucket;
	const char *prefix;             /* "" or without leading/trailing '/' */
	const char *key_template;       /* NULL: SCAN_DEFAULT_TEMPLATE */
	const char *collection;         /* SCAN_PATH_KEY: catalog collection of the prefix;
					 * NULL = the prefix itself (path = key) */
	int path_mode;
	int overwrite;                  /* enum scan_overwrite */
	const struct scan_filter *filter; /* may be NULL; owned by the caller */
	const char *const *meta;        /* "NAME=VALUE" strings: S3 metadata and catalog AVUs */
	int nmeta;
	const char *pre_hook, *post_hook, *fail_hook;
	int hook_timeout;               /* seconds; default 60 */
	int max_retries;                /* per file, after the S3 client's own; default 2 */
	int retry_delay_ms;             /* first retry delay; default 1000, doubling */
	int workers;                    /* files uploaded at once; default 8 (the scan runs
					 * 4 threads per upload slot, so that files waiting
					 * for their catalog commit do not idle the network) */
	int files_per_task;             /* files handed to a worker at once; default 50 */
	uint64_t part_size;             /* the pool's first part size (single PUT below it) */
	const char *source;             /* catalog source: "rescan", "scan:NAME" */
	const char *skip_top;           /* a top-level name never scanned (".lzfs"), or NULL */
	int stale_copies;               /* the tree is a mount's spool, on a shared catalog
					 * its files may be stale copies (cat_stale_copy):
					 * those are removed, not sent */
	int settle_ms;                  /* scan_walk without cb: files changed less than this
					 * long ago, or open for writing, are left for later
					 * (counted busy); 0 = only the open-for-writing check */
	/* Whether another actor owns relpath now (the mount has it open). */
	int (*busy)(void *arg, const char *relpath);
	void *busy_arg;
	/* The walker asks first whether a file is known unchanged since an
	 * earlier walk (the rescanner's memory): then the catalog is not read
	 * for it. May be NULL. */
	int (*known)(void *arg, const char *relpath, const struct stat *st);
	/* Asked before the stat, for an entry the directory lists as a
	 * regular file: whether it is known unchanged without looking (the
	 * rescanner, when filesystem change events cover it). ino is the
	 * entry's inode as listed, dir the fstat of its directory. May be
	 * NULL. */
	int (*known_name)(void *arg, const char *relpath, uint64_t ino, const struct stat *dir);
	void *known_arg;
	/* No-op mode and verbose runs: one call per decision. */
	void (*report)(void *arg, const char *what, const char *relpath, const char *key,
		       int64_t size);
	void *report_arg;
};

struct scan_stats {
	uint64_t seen;              /* regular files considered */
	uint64_t excluded;          /* files and directories filtered out */
	uint64_t unchanged;         /* skipped: nothing to do */
	uint64_t busy;              /* skipped: row pending/uploading or file open */
	uint64_t hook_skipped;      /* pre-ingest hook said no */
	uint64_t unreadable;        /* permission and I/O errors: logged, the scan goes on */
	uint64_t vanished;          /* deleted between the walk and the upload */
	uint64_t not_regular;       /* devices, FIFOs, sockets, symlinks met as files */
	uint64_t queued, queued_bytes;   /* files (and bytes) handed to workers to act on */
	uint64_t done, done_bytes;       /* of which finished, successfully or not */
	uint64_t uploaded, uploaded_bytes; /* new objects and new versions sent */
	uint64_t appended, appended_bytes; /* put-append: new bytes sent */
	uint64_t touched;           /* same content, attributes updated */
	uint64_t registered;        /* register mode */
	uint64_t would;             /* no-op mode: actions reported */
	uint64_t failed;            /* gave up after retries */
	uint64_t retries;
	uint64_t cancelled;         /* queued files dropped by scan_cancel */
};

struct scan_ctx;

/* Checks one "NAME=VALUE" metadata item: NAME of letters, digits, '-' and
 * '_' (what S3 user metadata names allow in practice), VALUE printable
 * ASCII (it travels in an HTTP header). -EINVAL with err set. */
int scan_meta_check(const char *item, char *err, size_t errlen);

/* Starts 4 x cfg->workers threads (owned by the scan). cat, s3 and pool are
 * the caller's and must outlive the scan. */
int scan_new(const struct scan_config *cfg, struct cat *cat, struct s3_client *s3,
	     struct up_pool *pool, struct scan_ctx **out, char *err, size_t errlen);
/* Cancels what is queued, joins the workers, frees. */
void scan_free(struct scan_ctx *c);

/* One entry seen by the walker: a regular file (after the filters) with
 * its catalog row, if any (row is NULL when the path has none). */
struct scan_entry {
	const char *relpath;
	const char *catpath;        /* NULL if the key template refused this file */
	const char *key;
	const struct stat *st;
	const struct scan_row *row;
};

/* Walks the directory `rel` ("" = the top) below rootfd, applying the
 * filters, and calls cb for every regular file and, with a directory in
 * e->st (key and catpath NULL), for every directory before descending into
 * it; cb returns 0 to go on.
 * Without cb, every file is decided and queued (scan_submit). Files whose
 * decision is SKIP/BUSY are counted and not queued. Returns when the walk
 * is done; the workers may still be busy (scan_wait). */
int scan_walk(struct scan_ctx *c, int rootfd, const char *rel,
	      int (*cb)(const struct scan_entry *e, void *arg), void *arg);

/* Queues relpath (below rootfd, which must stay open until scan_wait) for a
 * worker; batched by files_per_task (scan_flush sends a partial batch).
 * size is a hint for progress. May wait while the queue is full. */
int scan_submit(struct scan_ctx *c, int rootfd, const char *relpath, int64_t size);
void scan_flush(struct scan_ctx *c);

/* Register mode: lists the prefix with ListObjectsV2 and catalogs every
 * object the filters keep that the catalog does not have (or has with
 * another ETag or size). */
int scan_register(struct scan_ctx *c);

/* Waits until everything queued is done. */
void scan_wait(struct scan_ctx *c);
/* Stops: queued files are dropped (counted as cancelled), running ones end. */
void scan_cancel(struct scan_ctx *c);
int scan_cancelled(struct scan_ctx *c);
void scan_get_stats(struct scan_ctx *c, struct scan_stats *out);

/* ---------- one runner per scan name ---------- */

/* A scan named NAME (catalog source "scan:NAME") holds an exclusive lock
 * while it runs (job_lock in store/jobs.h: a lock file next to an SQLite
 * catalog, an advisory lock in a PostgreSQL one): rows of that source in
 * state pending/uploading belong to the holder, and anyone who can take the
 * lock knows they were left by a run that died. -EBUSY if it is held. */
struct job_lock;
int scan_lock(const char *catalog, const char *name, struct job_lock **lk);
void scan_unlock(struct job_lock *lk);

/* Rows of `source` (or, with source "scan:*", of every scan whose lock is
 * free) left pending or uploading: their multipart uploads are aborted and
 * the rows marked failed, so the next run uploads those files again and no
 * upload is left open on the server. s3 is a client for `bucket`; rows in
 * other buckets are left and logged. Returns the rows recovered. */
int scan_recover(struct cat *cat, const char *catalog_file, struct s3_client *s3,
		 const char *bucket, const char *source);

/* The key and catalog path of relpath under this scan (both malloc'd).
 * -EINVAL with err set when the key template refuses the file. */
int scan_key(struct scan_ctx *c, const char *relpath, int64_t mtime_ns, char **key, char **catpath,
	     char *err, size_t errlen);

/* The catalog path a key maps to under this scan (malloc'd), for tests. */
char *scan_catpath(struct scan_ctx *c, const char *relpath, const char *key);

#endif
