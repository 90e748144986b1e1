/* opts.h - lzfs mount options: parsing and validation, without FUSE, so
 * that they can be unit-tested and shared with the config file reader. */
#ifndef LZFS_OPTS_H
#define LZFS_OPTS_H

#include <stddef.h>
#include <stdint.h>

struct lzfs_opts {
	/* from the command line: s3://BUCKET[/PREFIX] MOUNTPOINT */
	char *url;
	char *bucket;
	char *prefix;
	char *mountpoint;
	/* -o options (char * are malloc'd by fuse_opt or opt_*) */
	char *endpoint;
	char *region;
	int path_style;          /* -1 = automatic */
	char *credentials;
	char *profile;
	char *catalog;
	char *landing;
	char *part_size_s, *mem_limit_s;
	uint64_t part_size, mem_limit;
	int max_inflight_parts;
	int max_parts;
	int max_connections;
	char *durability_s;
	int durability;
	char *unlink_s;
	int unlink_mode;
	char *overwrite_s;
	int overwrite;
	char *retention_s;
	int64_t evict_after;     /* seconds, 0 = keep */
	int high_watermark;      /* percent, 0 = off */
	char *log_level_s;
	char *log_file;
	int log_level;
	int insecure_tls;
	char *ca_file;
	int retry_budget;        /* seconds for one S3 request incl. retries */
	int connect_timeout;     /* seconds */
	int drain_timeout;       /* seconds */
	int retry_interval;      /* seconds before the first background retry */
	int offline_ok;          /* mount even if S3 cannot be reached */
	int rescan_interval;     /* seconds between walks of the spool; 0 = no rescanner */
	int settle_time;         /* seconds a file dropped into the spool must stay unchanged */
	int files_per_task;      /* files the rescanner hands to an upload worker at once */
	int rescan_workers;      /* files the rescanner uploads at once */
	char *rescan_stat_s;
	int rescan_stat_all;     /* every walk stats every file (rescan_stat=all) */
	char *config_file;       /* -o config=FILE (config.h) */
	char *mount_name;        /* -o mount=NAME: the section of the config file */
	int show_help, show_version, check_config;
	int nonopt;              /* positional arguments seen while parsing */
};

void opts_defaults(struct lzfs_opts *o);

/* "8M", "8MiB", "1G", "5242880", "64k" -> bytes. -EINVAL on junk. */
int opt_parse_size(const char *s, uint64_t *out);

/* "90", "90s", "15m", "2h", "7d" -> seconds. -EINVAL on junk. */
int opt_parse_duration(const char *s, int64_t *out);

/* "s3://bucket/some/prefix/" -> bucket "bucket", prefix "some/prefix".
 * Rejects a missing bucket, an invalid bucket name, "." or ".." in the
 * prefix. Writes a message into err on failure. */
int opt_parse_url(const char *url, char **bucket, char **prefix, char *err, size_t errlen);

/* Makes *path absolute (relative to the current directory), since the
 * daemon changes to / when it detaches. */
int opt_make_absolute(char **path);

/* Checks and converts the string options; fills err with one line that says
 * what is wrong. Returns 0 or -EINVAL. */
int opts_finish(struct lzfs_opts *o, char *err, size_t errlen);

void opts_free(struct lzfs_opts *o);

#endif
