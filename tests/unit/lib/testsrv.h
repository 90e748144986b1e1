/* testsrv.h - the real test S3 (tests/s3/server) for unit tests that talk
 * to it: started in a temporary directory, faults injected through its
 * admin endpoint, stopped and removed at the end. Linked into every unit
 * test (tests/unit/lib/). */
#ifndef LZFS_TESTSRV_H
#define LZFS_TESTSRV_H

#include <stddef.h>
#include <stdint.h>

#define TS_BUCKET "lzfs-test"
#define TS_ACCESS_KEY "lzfstest"
#define TS_SECRET_KEY "lzfstestsecret"

struct ts_s3 {
	char root[512];   /* the source tree (LZFS_ROOT or the cwd) */
	char tmp[96];     /* the temporary directory, removed by ts_s3_stop */
	char dir[100];    /* the server's directory (tmp/s3) */
	char server[540]; /* root/tests/s3/server */
	char endpoint[256];    /* http://127.0.0.1:PORT */
};

/* Runs a shell command; its exit status, or -1. stdout/stderr are flushed
 * first so that the test's output stays in order. */
int ts_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts a server in a new /tmp/NAME.XXXXXX; 0 or -1 (reason on stderr). */
int ts_s3_start(struct ts_s3 *t, const char *name);
void ts_s3_stop(struct ts_s3 *t);

/* Sets the fault spec (JSON, see tests/s3/lib/faults.js) or "off". */
int ts_s3_fault(const struct ts_s3 *t, const char *spec);

/* The first line a command prints, without its newline (malloc'ed), or NULL. */
char *ts_line(const char *cmd);

/* A 64-bit mixer (splitmix64's finalizer): pseudo-random from a counter. */
uint64_t ts_mix(uint64_t x);

/* Deterministic bytes: the same seed and offset give the same bytes, so a
 * range can be checked without keeping the whole object. */
void ts_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len);
int ts_matches(uint64_t seed, uint64_t off, const unsigned char *buf, size_t len);

#endif
