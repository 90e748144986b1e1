/* ctl.h - lzfsctl's commands and the helpers they share.
 *
 * A command is `int ctl_NAME(int argc, char **argv, const struct ctl_opts *o)`
 * with argv[0] the command's name; it returns an exit code (enum ctl_exit).
 * To add one: implement it in ingest/ctl_MODULE.c, declare it below, and add
 * a line to the table in lzfsctl_main.c.
 *
 * Output: human-readable by default, names printed with C-style escapes
 * (ctl_put_name) so that one entry is one line; with --json a single JSON
 * value on stdout, strings escaped by ctl_put_json_str. Errors go to stderr.
 */
#ifndef LZFS_CTL_H
#define LZFS_CTL_H

#include <stdint.h>
#include <stdio.h>

struct cat;

enum ctl_exit {
	CTL_OK = 0,
	CTL_NOTFOUND = 1, /* not found, or no match */
	CTL_USAGE = 2,
	CTL_ERROR = 3,    /* the catalog could not be opened or read */
	CTL_BAD_DATA = 4, /* get/verify: an object in S3 differs from the catalog or is missing */
	CTL_S3_ERROR = 5, /* get/verify: S3 (or DEST) could not be read or written */
};

struct ctl_opts {
	const char *catalog; /* -c, else $LZFS_CATALOG, else CTL_DEFAULT_CATALOG */
	const char *catalog_name; /* catalog for messages: a URL without its password */
	int json;            /* --json */
	int verbose;         /* -v: the catalog's warnings too */
};

#define CTL_DEFAULT_CATALOG "/var/lib/lzfs/catalog.db"

/* catalog commands (ctl_catalog.c) */
int ctl_ls(int argc, char **argv, const struct ctl_opts *o);
int ctl_stat(int argc, char **argv, const struct ctl_opts *o);
int ctl_find(int argc, char **argv, const struct ctl_opts *o);
int ctl_meta(int argc, char **argv, const struct ctl_opts *o);
int ctl_events(int argc, char **argv, const struct ctl_opts *o);
int ctl_status(int argc, char **argv, const struct ctl_opts *o);
int ctl_check(int argc, char **argv, const struct ctl_opts *o);
int ctl_debug_add(int argc, char **argv, const struct ctl_opts *o);

/* scan commands (ctl_scan.c) */
int ctl_scan(int argc, char **argv, const struct ctl_opts *o);
int ctl_job(int argc, char **argv, const struct ctl_opts *o);

/* objects read back from S3 (ctl_get.c) */
int ctl_get(int argc, char **argv, const struct ctl_opts *o);
int ctl_verify(int argc, char **argv, const struct ctl_opts *o);

/* --- helpers (ctl_util.c) --- */

/* "lzfsctl: CMD: message" on stderr. */
void ctl_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints usage (to stdout for --help, else to stderr) and returns the exit
 * code: CTL_OK for help, CTL_USAGE otherwise. */
int ctl_usage(const char *usage, int help);
/* Opens the catalog (cat_open flags) or prints why not; returns CTL_OK or
 * CTL_ERROR. */
int ctl_open(const struct ctl_opts *o, const char *cmd, int flags, struct cat **out);
/* The exit code for a negative errno from the catalog. */
int ctl_exit_of(int err);

/* A path argument as the catalog spells it: no leading, trailing or
 * doubled '/', no "." components. NULL (after ctl_err) for "..". The
 * result is malloc'd. */
char *ctl_path(const char *cmd, const char *arg);
/* The last component of a catalog path. */
const char *ctl_basename(const char *path);

/* Escapes for a terminal: \\ \n \t \r, \xHH for other control bytes and
 * bytes that are not valid UTF-8; valid UTF-8 is printed as is. */
void ctl_put_name(FILE *f, const char *s);
/* A JSON string literal ("null" for NULL). Bytes that are not valid UTF-8
 * become \udcHH (lone surrogates, as Python's surrogateescape: decoders
 * accept them and os.fsencode() gives back the exact bytes). */
void ctl_put_json_str(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence at s, 0 if invalid. */
int ctl_utf8_len(const unsigned char *s);

/* Small JSON object writer: ctl_json_begin prints '{', the kv functions
 * print ",\"key\":value" (no comma before the first), ctl_json_end '}'. */
struct ctl_json {
	FILE *f;
	int n;
};
void ctl_json_begin(struct ctl_json *j, FILE *f);
void ctl_json_str(struct ctl_json *j, const char *key, const char *value);
void ctl_json_int(struct ctl_json *j, const char *key, int64_t value);
void ctl_json_bool(struct ctl_json *j, const char *key, int value);
void ctl_json_time(struct ctl_json *j, const char *key, int64_t ns); /* ISO 8601 UTC or null */
void ctl_json_key(struct ctl_json *j, const char *key); /* then print the value yourself */
void ctl_json_end(struct ctl_json *j);

/* "1.5 MiB" (binary units), "512 B". */
const char *ctl_fmt_size(int64_t bytes, char *buf, size_t size);
/* Local "YYYY-MM-DD HH:MM:SS", "-" for 0. */
const char *ctl_fmt_time(int64_t ns, char *buf, size_t size);
/* "3d 4h", "5m 2s", "12s". */
const char *ctl_fmt_age(int64_t ns, char *buf, size_t size);
/* "-rw-r--r--" from a full st_mode. */
const char *ctl_fmt_mode(uint32_t mode, char buf[11]);

/* 123, 10K, 1.5M, 2GiB, 3T (binary units). 0 or -EINVAL. */
int ctl_parse_size(const char *s, int64_t *out);
/* @EPOCH or EPOCH seconds; YYYY-MM-DD[ HH:MM[:SS]] or with 'T', local
 * time, or UTC with a trailing Z; an age before now: 30s, 15m, 2h, 7d, 1w.
 * 0 or -EINVAL. */
int ctl_parse_time(const char *s, int64_t now_ns, int64_t *out_ns);
int64_t ctl_now_ns(void);

#endif
