/* opts.c - see opts.h. */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "landing.h"
#include "log.h"
#include "s3.h"
#include <limits.h>
#include <unistd.h>

void opts_defaults(struct lzfs_opts *o)
{
	memset(o, 0, sizeof *o);
	o->path_style = -1;
	o->max_inflight_parts = 8;
	o->max_parts = S3_MAX_PARTS;
	o->max_connections = 16;
	o->durability = LAND_DUR_CLOSE;
	o->unlink_mode = LAND_UNLINK_DELETE;
	o->log_level = LZ_INFO;
	o->retry_budget = 30;
	o->connect_timeout = 5;
	o->drain_timeout = 60;
	o->retry_interval = 5;
	o->rescan_interval = 600;
	o->settle_time = 5;
	o->files_per_task = 50;
	o->rescan_workers = 8;
}

int opt_parse_size(const char *s, uint64_t *out)
{
	/* strtoull would skip blanks and take a sign ("-1" wraps to 2^64-1). */
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = 1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mul = 1ull << 10; break;
		case 'M': mul = 1ull << 20; break;
		case 'G': mul = 1ull << 30; break;
		case 'T': mul = 1ull << 40; break;
		default: return -EINVAL;
		}
		end++;
		if (strcasecmp(end, "iB") != 0 && strcasecmp(end, "B") != 0 && *end != '\0')
			return -EINVAL;
	}
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = (uint64_t)v * mul;
	return 0;
}

int opt_parse_duration(const char *s, int64_t *out)
{
	if (!s || !*s || *s == '-')
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -EINVAL;
	int64_t mul = 1;
	if (*end) {
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (v > INT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* S3 bucket naming rules (the subset that matters for a URL). */
static int bucket_ok(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' || c == '.'))
			return 0;
	}
	return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

int opt_parse_url(const char *url, char **bucket, char **prefix, char *err, size_t errlen)
{
	if (!url || strncmp(url, "s3://", 5) != 0) {
		snprintf(err, errlen, "expected s3://BUCKET[/PREFIX], got '%s'", url ? url : "");
		return -EINVAL;
	}
	const char *b = url + 5;
	const char *slash = strchr(b, '/');
	size_t bl = slash ? (size_t)(slash - b) : strlen(b);
	if (!bucket_ok(b, bl)) {
		snprintf(err, errlen, "invalid bucket name in '%s' (3-63 of a-z 0-9 . -)", url);
		return -EINVAL;
	}
	/* Prefix: drop empty segments; refuse . and .. so no key escapes it. */
	char *p = strdup(slash ? slash + 1 : "");
	char *out = calloc(1, strlen(p) + 1);
	if (!p || !out) {
		free(p);
		free(out);
		return -ENOMEM;
	}
	char *save = NULL;
	for (char *seg = strtok_r(p, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0) {
			snprintf(err, errlen, "prefix in '%s' must not contain '.' or '..'", url);
			free(p);
			free(out);
			return -EINVAL;
		}
		if (*out)
			strcat(out, "/");
		strcat(out, seg);
	}
	free(p);
	*bucket = strndup(b, bl);
	*prefix = out;
	return *bucket ? 0 : -ENOMEM;
}

int opts_finish(struct lzfs_opts *o, char *err, size_t errlen)
{
	if (!o->url) {
		snprintf(err, errlen, "missing s3://BUCKET[/PREFIX] argument");
		return -EINVAL;
	}
	free(o->bucket); /* a second call (after fixing an option) must not leak */
	free(o->prefix);
	o->bucket = o->prefix = NULL;
	if (opt_parse_url(o->url, &o->bucket, &o->prefix, err, errlen) < 0)
		return -EINVAL;
	if (!o->mountpoint) {
		snprintf(err, errlen, "missing MOUNTPOINT argument");
		return -EINVAL;
	}
	if (!o->landing) {
		snprintf(err, errlen, "missing -o landing=DIR (the local spool directory)");
		return -EINVAL;
	}
	if (!o->endpoint && !(o->endpoint = strdup("https://s3.amazonaws.com")))
		return -ENOMEM;
	if (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0) {
		snprintf(err, errlen, "endpoint '%s' must start with http:// or https://", o->endpoint);
		return -EINVAL;
	}
	if (!o->region && !(o->region = strdup("us-east-1")))
		return -ENOMEM;
	if (o->path_style < 0)
		o->path_style = strstr(o->endpoint, "amazonaws.com") ? 0 : 1;
	o->part_size = 8ull << 20;
	if (o->part_size_s) {
		if (opt_parse_size(o->part_size_s, &o->part_size) < 0 || o->part_size < S3_MIN_PART_SIZE ||
		    o->part_size > S3_MAX_PART_SIZE) {
			snprintf(err, errlen, "part_size=%s: expected a size from 5M to 5G", o->part_size_s);
			return -EINVAL;
		}
	}
	o->mem_limit = 256ull << 20;
	if (o->mem_limit_s) {
		if (opt_parse_size(o->mem_limit_s, &o->mem_limit) < 0 || o->mem_limit < (1ull << 20)) {
			snprintf(err, errlen, "mem_limit=%s: expected a size of at least 1M", o->mem_limit_s);
			return -EINVAL;
		}
	}
	if (o->max_inflight_parts < 1 || o->max_inflight_parts > 256) {
		snprintf(err, errlen, "max_inflight_parts=%d: expected 1..256", o->max_inflight_parts);
		return -EINVAL;
	}
	if (o->max_parts < 20 || o->max_parts > S3_MAX_PARTS) {
		snprintf(err, errlen, "max_parts=%d: expected 20..10000", o->max_parts);
		return -EINVAL;
	}
	if (o->durability_s) {
		if (strcmp(o->durability_s, "close") == 0)
			o->durability = LAND_DUR_CLOSE;
		else if (strcmp(o->durability_s, "async") == 0)
			o->durability = LAND_DUR_ASYNC;
		else {
			snprintf(err, errlen, "durability=%s: expected close or async", o->durability_s);
			return -EINVAL;
		}
	}
	if (o->unlink_s) {
		if (strcmp(o->unlink_s, "delete") == 0)
			o->unlink_mode = LAND_UNLINK_DELETE;
		else if (strcmp(o->unlink_s, "keep") == 0)
			o->unlink_mode = LAND_UNLINK_KEEP;
		else {
			snprintf(err, errlen, "unlink=%s: expected delete or keep", o->unlink_s);
			return -EINVAL;
		}
	}
	if (o->overwrite_s) {
		if (strcmp(o->overwrite_s, "version") == 0)
			o->overwrite = LAND_OVERWRITE_VERSION;
		else if (strcmp(o->overwrite_s, "replace") == 0)
			o->overwrite = LAND_OVERWRITE_REPLACE;
		else if (strcmp(o->overwrite_s, "deny") == 0)
			o->overwrite = LAND_OVERWRITE_DENY;
		else {
			snprintf(err, errlen, "overwrite=%s: expected version, replace or deny",
				 o->overwrite_s);
			return -EINVAL;
		}
	}
	if (o->retention_s) {
		const char *r = o->retention_s;
		char *end;
		if (strcmp(r, "keep") == 0) {
			o->evict_after = 0;
			o->high_watermark = 0;
		} else if (strncmp(r, "evict-after=", 12) == 0 &&
			   opt_parse_duration(r + 12, &o->evict_after) == 0 && o->evict_after > 0) {
			o->high_watermark = 0;
		} else if (strncmp(r, "high-watermark=", 15) == 0 &&
			   (o->high_watermark = (int)strtol(r + 15, &end, 10)) > 0 &&
			   o->high_watermark < 100 && (*end == '\0' || strcmp(end, "%") == 0)) {
			o->evict_after = 0;
		} else {
			snprintf(err, errlen, "retention=%s: expected keep, evict-after=DURATION (e.g. 6h) "
					      "or high-watermark=PERCENT (1-99)", r);
			return -EINVAL;
		}
	}
	if (o->rescan_stat_s) {
		if (strcmp(o->rescan_stat_s, "changed") == 0)
			o->rescan_stat_all = 0;
		else if (strcmp(o->rescan_stat_s, "all") == 0)
			o->rescan_stat_all = 1;
		else {
			snprintf(err, errlen, "rescan_stat=%s: expected changed or all", o->rescan_stat_s);
			return -EINVAL;
		}
	}
	if (o->log_level_s) {
		int lv = log_level_parse(o->log_level_s);
		if (lv < 0) {
			snprintf(err, errlen, "log_level=%s: expected error, warn, notice, info or debug",
				 o->log_level_s);
			return -EINVAL;
		}
		o->log_level = lv;
	}
	if (o->retry_budget < 1 || o->connect_timeout < 1 || o->drain_timeout < 0 ||
	    o->retry_interval < 1) {
		snprintf(err, errlen, "retry_budget, connect_timeout and retry_interval must be >= 1 s, "
				      "drain_timeout >= 0");
		return -EINVAL;
	}
	if (o->rescan_interval < 0 || o->settle_time < 0 || o->settle_time > 86400 ||
	    o->files_per_task < 1 || o->files_per_task > 10000 || o->rescan_workers < 1 ||
	    o->rescan_workers > 64) {
		snprintf(err, errlen, "rescan_interval must be >= 0 (0: no rescanner), settle_time "
				      "0..86400, files_per_task 1..10000, rescan_workers 1..64");
		return -EINVAL;
	}
	return 0;
}

void opts_free(struct lzfs_opts *o)
{
	char **strs[] = {&o->url, &o->bucket, &o->prefix, &o->mountpoint, &o->endpoint, &o->region,
			 &o->credentials, &o->profile, &o->catalog, &o->landing, &o->part_size_s,
			 &o->mem_limit_s, &o->durability_s, &o->unlink_s, &o->overwrite_s, &o->retention_s, &o->rescan_stat_s, &o->log_level_s, &o->log_file, &o->ca_file,
			 &o->config_file, &o->mount_name};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

int opt_make_absolute(char **path)
{
	if (!*path || (*path)[0] == '/')
		return 0;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return -errno;
	char *abs;
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
		return -ENOMEM;
	free(*path);
	*path = abs;
	return 0;
}
