/* rescan.h - the rescanner: ingests files that reach a directory without
 * passing through the mount (NFS/SMB writers, transfer tools, a daemon that
 * crashed mid-upload), and in the daemon also runs the catalog's scan jobs.
 *
 * One thread, owned by the rescan object (started by rescan_start, joined
 * by rescan_stop), watches the tree with inotify (a watch per directory,
 * new directories watched and walked as they appear, a queue overflow
 * answered by a full walk) and walks it every `interval` seconds so that
 * nothing is missed across restarts or past the inotify watch limit.
 *
 * A file is handed to the scan's workers only once it is stable: its size,
 * mtime, ctime and inode unchanged between two looks at least `settle`
 * seconds apart, not open for writing by any process on this host
 * (/proc/PID/fdinfo), and not busy by the scan's busy() callback (the
 * mount has it open). A file still growing is looked at again later. What
 * the workers do is decided by the scan's mode against the catalog (an
 * unchanged ingested file is never sent again; a changed one becomes a new
 * version); rows pending or uploading belong to someone else (the landing
 * zone's recovery queue) and are skipped.
 */
#ifndef LZFS_RESCAN_H
#define LZFS_RESCAN_H

#include <stdint.h>

#include "catalog.h"
#include "s3.h"
#include "scan.h"
#include "upload.h"

struct rescan_config {
	const char *dir;              /* the tree watched */
	int interval;                 /* seconds between full walks; default 600 */
	int settle;                   /* seconds a file must stay unchanged; default 5;
				       * 0 = as soon as it is closed */
	int stat_all;                 /* 1: every walk stats every file, even where
				       * filesystem change events (fschange.h) would
				       * let it stat only the files that changed */
	struct scan_config scan;      /* what to do with settled files */
	/* Scan jobs (store/jobs.h) run by this rescanner's thread: */
	const char *catalog_file;     /* NULL: no jobs */
	int run_jobs;
	const struct s3_config *s3cfg; /* for job targets in other buckets (may be NULL) */
};

struct rescan_stats {
	struct scan_stats scan;
	uint64_t walks;               /* full walks done */
	uint64_t trusted_walks;       /* of which stated only changed files */
	uint64_t unstated;            /* files found unchanged without a stat */
	uint64_t events;              /* inotify events read */
	uint64_t overflows;           /* inotify queue overflows (each one walks) */
	uint64_t watches;             /* directories watched now */
	uint64_t tracked;             /* files waiting to settle now */
	uint64_t jobs_started;
	int watch_limit;              /* 1 once the inotify watch limit was hit */
};

struct rescan;

/* Starts the thread. cat, s3 and pool are the caller's and must outlive
 * rescan_stop(). The first full walk starts at once. */
int rescan_start(const struct rescan_config *cfg, struct cat *cat, struct s3_client *s3,
		 struct up_pool *pool, struct rescan **out);
/* Stops watching, drops files not yet started, waits for the files being
 * uploaded and for running jobs to stop (their state says so), joins. */
void rescan_stop(struct rescan *r);
/* The same, and the counters once everything has stopped (out may be NULL). */
void rescan_stop_stats(struct rescan *r, struct rescan_stats *out);
void rescan_get_stats(struct rescan *r, struct rescan_stats *out);
/* Asks for a full walk now (SIGUSR1 in the daemon, tests). */
void rescan_walk_now(struct rescan *r);

#endif
