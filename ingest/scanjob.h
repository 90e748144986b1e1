/* scanjob.h - a scan as `lzfsctl scan` and the daemon's jobs describe it:
 * its options parsed into a spec, and one pass over the source (walk or
 * S3 listing, then the workers) with progress ticks, a timeout and a stop.
 *
 * Options (the same for `lzfsctl scan`, `lzfsctl job start` and a job's
 * stored args; each "--opt VALUE" may be written "--opt=VALUE"):
 *   --once | --interval SECONDS | --watch
 *   --mode put|put-sync|put-append|register|no-op     (put-sync)
 *   --exclude-file-name REGEX, --exclude-directory-name REGEX,
 *   --exclude-file-type regular|directory|character|block|socket|pipe|link
 *                                                      (repeatable)
 *   --key-template TEMPLATE                            ({prefix}/{relpath})
 *   --collection PATH      catalog collection of the target prefix (the prefix)
 *   --metadata NAME=VALUE                              (repeatable)
 *   --overwrite version|replace|deny   a new version keeps the old one under
 *                          PREFIX/.lzfs/versions/ (version, the default)
 *   --pre-ingest CMD, --post-ingest CMD, --on-failure CMD, --hook-timeout SECS
 *   --max-retries N (2), --timeout SECS (per pass, 0 = none), --workers N (16),
 *   --files-per-task N (50), --settle-time SECS (0 once, else 5),
 *   --name NAME            the scan's name (default: derived from source and target)
 * then SOURCE_DIR s3://BUCKET[/PREFIX], or for register only s3://BUCKET[/PREFIX].
 */
#ifndef LZFS_SCANJOB_H
#define LZFS_SCANJOB_H

#include "catalog.h"
#include "s3.h"
#include "scan.h"
#include "upload.h"

enum { SJ_ONCE = 0, SJ_INTERVAL = 1, SJ_WATCH = 2 };

struct sj_spec {
	char *name;
	int run;                 /* SJ_ONCE, SJ_INTERVAL, SJ_WATCH */
	int interval;            /* seconds between passes (SJ_INTERVAL) */
	int settle;              /* seconds */
	int timeout;             /* seconds per pass; 0 = none */
	char *source;            /* absolute directory; NULL in register mode */
	char *target;            /* s3://BUCKET[/PREFIX] as given */
	char *bucket, *prefix;
	struct scan_config cfg;  /* strings point into the spec */
	struct scan_filter *filter;
	char *args;              /* the options, one per line (a job's args) */
	/* owned strings behind cfg */
	char *mode_s, *tmpl, *collection, *pre, *post, *fail, *source_tag;
	char **meta;
	int nmeta;
};

/* Parses argv (options then positionals). err gets one line on -EINVAL. */
int sj_parse(int argc, char **argv, struct sj_spec **out, char *err, size_t errlen);
/* A job's stored form: args (one option per line) plus source and target. */
int sj_parse_job(const char *args, const char *source, const char *target, struct sj_spec **out,
		 char *err, size_t errlen);
void sj_free(struct sj_spec *s);

/* Called about four times a second during a pass; non-zero cancels it. */
typedef int (*sj_tick_fn)(void *arg, const struct scan_stats *st, int walking);

/* One pass: takes the scan's lock (-EBUSY if another run holds it),
 * recovers what an interrupted run left, walks the source (or lists the
 * prefix) and waits for the workers. Returns 0 if nothing failed, -EIO if
 * some files failed, -ETIMEDOUT after spec->timeout, -ECANCELED when tick
 * asked to stop, or a setup error. *st gets the final counters. */
int sj_pass(const struct sj_spec *s, const char *catalog_file, struct cat *cat,
	    struct s3_client *s3, struct up_pool *pool, sj_tick_fn tick, void *arg,
	    struct scan_stats *st);

/* One line: "1200 files seen: 1000 uploaded (1.2 GiB), 150 unchanged, ..." */
void sj_summary(const struct scan_stats *st, double secs, char *buf, size_t len);

/* "12.5 MiB" */
void sj_human_bytes(uint64_t b, char *buf, size_t len);

#endif
