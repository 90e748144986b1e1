/* landing.h - the landing zone: what happens to files written through the
 * mount, from create() to a catalog row.
 *
 * The namespace is the spool directory (landing=DIR): every file written
 * through the mount lives there first, so any POSIX write works and nothing
 * is lost if S3 is away. A file created (or truncated to zero) through the
 * mount is streamed to S3 while it is written (upload.h); at flush (close)
 * the upload is completed, verified and registered in the catalog before
 * close() returns (durability=close). Anything the stream could not follow
 * (seek back, sparse writes, O_RDWR rewrites, appends to existing files, S3
 * failures) is uploaded from the spool file instead. When S3 cannot be
 * reached the file stays in the spool, fsync'ed, with a `pending` row, and
 * a background thread owned by the landing zone retries it.
 *
 * Paths are relative to the mount root ("" is the root, no leading '/').
 * The top-level name ".lzfs" is reserved (catalog, state) and invisible.
 * Functions return 0 (or a byte count) or a negative errno.
 */
#ifndef LZFS_LANDING_H
#define LZFS_LANDING_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "catalog.h"
#include "s3.h"
#include "upload.h"

#define LAND_RESERVED ".lzfs"
/* Old versions live under PREFIX/.lzfs/versions/ (versions.h); ".lzfs" is
 * reserved in the mount, so no user path maps there. */

enum land_durability {
	LAND_DUR_CLOSE = 0, /* close() returns when the file is in S3 and the catalog */
	LAND_DUR_ASYNC = 1, /* close() returns once the spool file is fsync'ed */
};

enum land_unlink {
	LAND_UNLINK_DELETE = 0, /* unlink removes spool file and S3 object, row `deleted` */
	LAND_UNLINK_KEEP = 1,   /* unlink removes only the spool file; S3 and row stay */
};

enum land_overwrite {
	LAND_OVERWRITE_VERSION = 0, /* the previous content is kept under a versions key */
	LAND_OVERWRITE_REPLACE = 1, /* the previous content is replaced */
	LAND_OVERWRITE_DENY = 2,    /* ingested files are read-only (EACCES) */
};

struct land_config {
	const char *bucket;
	const char *prefix;       /* key prefix without leading/trailing '/', may be "" */
	const char *spool_dir;
	const char *mountpoint;   /* absolute; to recognise other fds on a file */
	int durability;
	int unlink_mode;
	int overwrite;            /* enum land_overwrite */
	int64_t evict_after_secs; /* retention: drop ingested spool copies this old; 0 = keep */
	int high_watermark;       /* retention: evict oldest while the spool fs is fuller (%); 0 = off */
	int drain_secs;           /* bounded wait for queued work at shutdown; default 60 */
	int retry_secs;           /* first retry delay for pending files; default 5 */
};

struct land;
struct land_fh;

/* Takes references to s3, cat and pool (owned by the caller, who frees them
 * after land_close). Starts the background thread and queues the catalog's
 * unfinished rows for recovery. */
int land_open(const struct land_config *cfg, struct s3_client *s3, struct cat *cat,
	      struct up_pool *pool, struct land **out);
/* Read-only opens of evicted files then stream from S3 through this pool
 * (parallel ranged GETs with read-ahead) instead of restoring the file into
 * the spool first. Set before the mount serves requests; NULL = restore. */
struct rd_pool;
void land_set_reader(struct land *l, struct rd_pool *rd);

/* Drains queued work for at most drain_secs, parks the rest (rows stay
 * pending, files stay in the spool), joins the thread, frees. */
void land_close(struct land *l);

/* Maps a relative path to its S3 key (malloc'd). */
char *land_key(const struct land *l, const char *path);

/* Files. */
int land_create(struct land *l, const char *path, mode_t mode, int flags, uid_t uid, gid_t gid,
		struct land_fh **fh);
int land_open_file(struct land *l, const char *path, int flags, struct land_fh **fh);
ssize_t land_read(struct land_fh *fh, char *buf, size_t size, off_t off);
ssize_t land_write(struct land_fh *fh, const char *buf, size_t size, off_t off);
/* pid: the process closing the file (FUSE's flush carries it). */
int land_flush(struct land_fh *fh, pid_t pid);
int land_fsync(struct land_fh *fh, int datasync);
int land_release(struct land_fh *fh);
int land_fgetattr(struct land_fh *fh, struct stat *st);

/* Namespace. */
int land_getattr(struct land *l, const char *path, struct stat *st);
int land_readdir(struct land *l, const char *path,
		 int (*fill)(void *arg, const char *name, const struct stat *st), void *arg);
int land_mkdir(struct land *l, const char *path, mode_t mode, uid_t uid, gid_t gid);
int land_rmdir(struct land *l, const char *path);
int land_unlink(struct land *l, const char *path);
int land_rename(struct land *l, const char *from, const char *to, unsigned int flags);
int land_symlink(struct land *l, const char *target, const char *path, uid_t uid, gid_t gid);
int land_readlink(struct land *l, const char *path, char *buf, size_t size);
int land_truncate(struct land *l, const char *path, off_t size, struct land_fh *fh);
int land_chmod(struct land *l, const char *path, mode_t mode);
int land_chown(struct land *l, const char *path, uid_t uid, gid_t gid);
int land_utimens(struct land *l, const char *path, const struct timespec tv[2]);
int land_statfs(struct land *l, struct statvfs *st);
int land_access(struct land *l, const char *path, int mask);

/* Extended attributes: user.lzfs.{state,key,sha256,etag,version} are
 * read-only views of the catalog row; other user.* names are catalog
 * metadata (AVUs without unit). */
ssize_t land_getxattr(struct land *l, const char *path, const char *name, char *buf, size_t size);
int land_setxattr(struct land *l, const char *path, const char *name, const char *value,
		  size_t size, int flags);
ssize_t land_listxattr(struct land *l, const char *path, char *buf, size_t size);
int land_removexattr(struct land *l, const char *path, const char *name);

/* 1 if path (a file) is open through the mount or has a commit queued:
 * the rescanner leaves such files to the landing zone. */
int land_is_busy(struct land *l, const char *path);

struct land_stats {
	uint64_t files_ingested, bytes_ingested;
	uint64_t files_streamed;     /* ingested by the stream, without a spool re-read */
	uint64_t files_from_spool;   /* ingested by uploading the spool file */
	uint64_t files_parked;       /* left pending after an S3 failure */
	uint64_t files_evicted;      /* spool copies removed by retention */
	uint64_t versions_kept;      /* previous contents preserved on overwrite */
	int queue_depth;             /* background work waiting */
	int open_files;
};
void land_get_stats(struct land *l, struct land_stats *out);

#endif
