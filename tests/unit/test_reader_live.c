/* test_reader_live.c - the parallel reader against the real test S3 (s3rver
 * behind the strict SigV4 proxy).
 *
 * Object contents are a deterministic function of (seed, offset), so every
 * byte a reader returns is checked against what was uploaded. Overlap of the
 * read-ahead is shown by counting GETs in flight (the reader's own counter
 * and the S3 client's, sampled by a thread) under injected latency.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reader.h"
#include "s3.h"
#include "testsrv.h"

#define MiB (1024ull * 1024)
#define KiB 1024ull

static struct ts_s3 srv;
static struct s3_creds creds = {.access_key = "lzfstest", .secret_key = "lzfstestsecret"};
static struct s3_client *s3;

struct obj {
	const char *key;
	uint64_t seed;
	uint64_t size;
	char etag[S3_ETAG_MAX];
};
static struct obj big = {"rd/big", 1, 100 * MiB, ""};
static struct obj mid = {"rd/mid", 2, 40 * MiB + 12345, ""};
static struct obj empty = {"rd/empty", 3, 0, ""};

/* ---- helpers ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct s3_client *client_new(int budget_ms, int retries)
{
	struct s3_config cfg = {
	    .endpoint = srv.endpoint,
	    .region = "us-east-1",
	    .bucket = "lzfs-test",
	    .path_style = 1,
	    .creds = &creds,
	    .max_connections = 32,
	    .max_retries = retries,
	    .retry_base_ms = 20,
	    .retry_max_ms = 200,
	    .retry_budget_ms = budget_ms,
	    .connect_timeout_ms = 1000,
	};
	struct s3_client *c;
	assert_int_equal(s3_client_new(&cfg, &c), 0);
	return c;
}

/* Uploads (seed, size) as key: one PUT up to 32 MiB, else multipart with
 * 16 MiB parts (a multipart ETag, as large ingested files have). */
static void put(const char *key, uint64_t seed, uint64_t size, char etag[S3_ETAG_MAX])
{
	const uint64_t part = 16 * MiB;
	unsigned char *buf = malloc(size < part ? (size ? size : 1) : part);

	assert_non_null(buf);
	if (size <= 32 * MiB) {
		unsigned char *all = realloc(buf, size ? size : 1);
		assert_non_null(all);
		ts_fill(seed, 0, all, size);
		struct s3_body b = {.buf = all, .len = size};
		assert_int_equal(s3_put_object(s3, key, &b, NULL, etag, NULL), 0);
		free(all);
		return;
	}
	char *upload_id;
	int n = (int)((size + part - 1) / part);
	struct s3_part *parts = calloc(n, sizeof(*parts));
	assert_int_equal(s3_mpu_create(s3, key, NULL, &upload_id, NULL), 0);
	for (int i = 0; i < n; i++) {
		uint64_t off = i * part, len = size - off < part ? size - off : part;
		ts_fill(seed, off, buf, len);
		struct s3_body b = {.buf = buf, .len = len};
		parts[i].number = i + 1;
		parts[i].size = len;
		assert_int_equal(
		    s3_mpu_upload_part(s3, key, upload_id, i + 1, &b, parts[i].etag, NULL), 0);
	}
	assert_int_equal(s3_mpu_complete(s3, key, upload_id, parts, n, etag, NULL), 0);
	free(upload_id);
	free(parts);
	free(buf);
}

static struct rd_pool *pool_new(uint64_t chunk, int workers, uint64_t mem, int ahead,
                                struct s3_client *c)
{
	struct rd_config cfg = {
	    .chunk_size = chunk, .workers = workers, .mem_limit = mem, .max_ahead = ahead};
	struct rd_pool *p;
	assert_int_equal(rd_pool_new(&cfg, c ? c : s3, &p), 0);
	return p;
}

/* Reads [0, end) in reads of `step` and checks every byte; returns 0 or
 * the first error. */
static int read_prefix(struct rd_reader *r, const struct obj *o, uint64_t end, size_t step)
{
	unsigned char *buf = malloc(step);
	uint64_t off = 0;
	int rc = 0;

	while (off < end) {
		ssize_t n = rd_read(r, buf, step, off);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		size_t want = o->size - off < step ? o->size - off : step;
		if ((size_t)n != want || !ts_matches(o->seed, off, buf, n)) {
			fprintf(stderr, "# %s: wrong bytes at %llu (%zd of %zu)\n", o->key,
			        (unsigned long long)off, n, want);
			rc = -EILSEQ;
			break;
		}
		off += n;
	}
	free(buf);
	return rc;
}

static int read_all(struct rd_reader *r, const struct obj *o, size_t step)
{
	return read_prefix(r, o, o->size, step);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	log_init("test_reader_live", LZ_WARN, 0);
	if (ts_s3_start(&srv, "lzfs-reader-test") < 0)
		return -1;
	s3 = client_new(20000, 6);
	put(big.key, big.seed, big.size, big.etag);
	put(mid.key, mid.seed, mid.size, mid.etag);
	put(empty.key, empty.seed, empty.size, empty.etag);
	return 0;
}

static int group_teardown(void **state)
{
	s3_client_free(s3);
	ts_s3_stop(&srv);
	return 0;
}

/* ---- tests ---- */

/* 100 MiB (multipart ETag) read in order in 128 KiB reads, as the kernel
 * reads a file: every byte right, chunks fetched once, read-ahead used. */
static void test_sequential_100mib(void **state)
{
	struct rd_pool *p = pool_new(0, 0, 0, 0, NULL);
	struct rd_reader *r;
	struct rd_pool_stats st;

	assert_non_null(strchr(big.etag, '-'));
	assert_int_equal(rd_open(p, big.key, big.size, big.etag, 0, &r), 0);
	double t0 = now();
	assert_int_equal(read_all(r, &big, 128 * KiB), 0);
	double dt = now() - t0;
	rd_pool_stats(p, &st);
	fprintf(stderr, "# 100 MiB in 128 KiB reads: %.0f MiB/s, %d GETs in flight at most\n",
	        100 / dt, st.fetches_peak);
	assert_int_equal(st.chunks_fetched, 13); /* 100 MiB / 8 MiB, each once */
	assert_int_equal(st.direct_reads, 0);
	assert_true(st.readahead_hits >= 10);
	assert_true(st.fetches_peak >= 2);
	rd_close(r);
	rd_pool_stats(p, &st);
	assert_int_equal(st.mem_used, 0);
	rd_pool_free(p);
}

/* Random reads at odd offsets and lengths, across chunk boundaries, mixed
 * with returns to sequential reading. */
static void test_random(void **state)
{
	struct rd_pool *p = pool_new(1 * MiB, 4, 16 * MiB, 4, NULL);
	struct rd_reader *r;
	struct rd_pool_stats st;
	unsigned char *buf = malloc(3 * MiB);
	uint64_t x = 42;

	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	for (int i = 0; i < 120; i++) {
		x = ts_mix(x);
		uint64_t off = x % mid.size;
		/* mostly small, sometimes over several chunks */
		size_t len = 1 + (size_t)(ts_mix(x + 1) % (i % 8 ? 300 * KiB : 3 * MiB - 1));
		if (i % 10 == 0)
			off = (x % 39) * MiB - 1 - (x % 7); /* just before a chunk boundary */
		ssize_t n = rd_read(r, buf, len, off);
		size_t want = off >= mid.size ? 0 : (mid.size - off < len ? mid.size - off : len);
		assert_int_equal(n, want);
		assert_true(ts_matches(mid.seed, off, buf, n));
		if (i % 20 == 0) {
			/* reading on from there: a short sequential run */
			for (int k = 0; k < 20 && off + n < mid.size; k++) {
				off += n;
				n = rd_read(r, buf, 256 * KiB, off);
				assert_true(n > 0);
				assert_true(ts_matches(mid.seed, off, buf, n));
			}
		}
	}
	rd_pool_stats(p, &st);
	assert_true(st.direct_reads >= 90);
	assert_true(st.chunks_fetched > 0); /* the sequential runs used chunks */
	assert_true(st.mem_peak <= 16 * MiB);
	rd_close(r);
	rd_pool_free(p);
	free(buf);
}

static void test_eof_and_empty(void **state)
{
	struct rd_pool *p = pool_new(4 * MiB, 2, 0, 0, NULL);
	struct rd_reader *r;
	unsigned char buf[4096];
	struct s3_stats before, after;

	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, mid.size), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, mid.size + 100), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, UINT64_MAX - 10), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, mid.size - 100), 100);
	assert_true(ts_matches(mid.seed, mid.size - 100, buf, 100));
	assert_int_equal(rd_read(r, buf, 1, mid.size - 1), 1);
	assert_true(ts_matches(mid.seed, mid.size - 1, buf, 1));
	assert_int_equal(rd_read(r, buf, 0, 0), 0);
	rd_close(r);

	/* a 0-byte object: no request at all */
	s3_get_stats(s3, &before);
	assert_int_equal(rd_open(p, empty.key, 0, empty.etag, 0, &r), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, 0), 0);
	assert_int_equal(rd_read(r, buf, sizeof buf, 5), 0);
	rd_close(r);
	s3_get_stats(s3, &after);
	assert_int_equal(after.requests, before.requests);
	rd_pool_free(p);
}

struct sampler {
	struct s3_client *c;
	atomic_int stop;
	int peak;
};

static void *sample(void *arg)
{
	struct sampler *s = arg;
	while (!atomic_load(&s->stop)) {
		struct s3_stats st;
		s3_get_stats(s->c, &st);
		if (st.in_flight > s->peak)
			s->peak = st.in_flight;
		usleep(2000);
	}
	return NULL;
}

/* With 250 ms added to every GET, 16 chunks fetched one after the other
 * take at least 4 s; read-ahead keeps several GETs in flight and finishes in
 * a fraction of that. */
static void test_readahead_overlaps(void **state)
{
	struct rd_pool *p = pool_new(1 * MiB, 8, 0, 8, NULL);
	struct rd_reader *r;
	struct rd_pool_stats st;
	struct sampler smp = {.c = s3};
	pthread_t th;

	assert_int_equal(ts_s3_fault(&srv, "{\"latency_ms\":250,\"ops\":[\"GetObject\"]}"), 0);
	assert_int_equal(pthread_create(&th, NULL, sample, &smp), 0);
	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	double t0 = now();
	int rc = read_prefix(r, &mid, 16 * MiB, 128 * KiB);
	double dt = now() - t0;
	atomic_store(&smp.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(ts_s3_fault(&srv, "off"), 0);
	assert_int_equal(rc, 0);
	rd_pool_stats(p, &st);
	fprintf(stderr,
	        "# 16 chunks with 250 ms latency each: %.2f s, %d GETs in flight (s3: %d)\n", dt,
	        st.fetches_peak, smp.peak);
	assert_true(st.fetches_peak >= 6);
	assert_true(smp.peak >= 6);
	assert_true(dt < 4.0 * 0.6);
	rd_close(r);

	/* no read-ahead configured: one GET at a time */
	rd_pool_free(p);
	p = pool_new(4 * MiB, 8, 0, -1, NULL);
	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	assert_int_equal(read_all(r, &mid, 128 * KiB), 0);
	rd_pool_stats(p, &st);
	assert_int_equal(st.fetches_peak, 1);
	assert_int_equal(st.chunks_fetched, 11);
	rd_close(r);
	rd_pool_free(p);
}

/* Three threads read one reader, each taking the next 128 KiB block from a
 * shared counter: the kernel's concurrent reads of one file, which reach
 * the reader slightly out of order. Still chunks, each fetched about once. */
struct alt {
	struct rd_reader *r;
	atomic_ullong *next;
	int rc;
};

static void *alt_reader(void *arg)
{
	struct alt *a = arg;
	unsigned char *buf = malloc(128 * KiB);
	uint64_t nblocks = (mid.size + 128 * KiB - 1) / (128 * KiB), b;

	while (!a->rc && (b = atomic_fetch_add(a->next, 1)) < nblocks) {
		uint64_t off = b * 128 * KiB;
		ssize_t n = rd_read(a->r, buf, 128 * KiB, off);
		size_t want = mid.size - off < 128 * KiB ? mid.size - off : 128 * KiB;
		if (n != (ssize_t)want || !ts_matches(mid.seed, off, buf, n))
			a->rc = n < 0 ? (int)n : -EILSEQ;
	}
	free(buf);
	return NULL;
}

static void test_concurrent_one_reader(void **state)
{
	struct rd_pool *p = pool_new(4 * MiB, 4, 0, 4, NULL);
	struct rd_reader *r;
	struct rd_pool_stats st;
	atomic_ullong next = 0;
	struct alt a[3];
	pthread_t th[3];

	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct alt){.r = r, .next = &next};
		assert_int_equal(pthread_create(&th[i], NULL, alt_reader, &a[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, 0);
	}
	rd_pool_stats(p, &st);
	fprintf(stderr, "# three threads, one reader: %llu chunk GETs, %llu direct\n",
	        (unsigned long long)st.chunks_fetched, (unsigned long long)st.direct_reads);
	/* A thread preempted between taking a block and reading it can come
	 * late (a random read, or a chunk fetched again); a few at most. */
	assert_true(st.chunks_fetched >= 11 && st.chunks_fetched <= 13);
	assert_true(st.direct_reads <= 6);
	rd_close(r);
	rd_pool_free(p);
}

/* Four readers at once in a pool whose budget holds six chunks, plus an
 * idle reader whose read-ahead sits in the budget: the budget is never
 * passed, and every reader finishes with the right bytes. */
struct job {
	struct rd_pool *p;
	const struct obj *o;
	int rc;
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct rd_reader *r;

	j->rc = rd_open(j->p, j->o->key, j->o->size, j->o->etag, 0, &r);
	if (j->rc == 0) {
		j->rc = read_all(r, j->o, 128 * KiB);
		rd_close(r);
	}
	return NULL;
}

static void test_memory_budget(void **state)
{
	const uint64_t limit = 24 * MiB;
	struct rd_pool *p = pool_new(4 * MiB, 8, limit, 8, NULL);
	struct rd_reader *idle;
	struct rd_pool_stats st;
	unsigned char buf[4096];
	struct job j[4];
	pthread_t th[4];

	/* the idle reader: three chunks read in order, then nothing */
	assert_int_equal(rd_open(p, big.key, big.size, big.etag, 0, &idle), 0);
	for (uint64_t off = 0; off < 12 * MiB; off += sizeof buf)
		assert_int_equal(rd_read(idle, buf, sizeof buf, off), sizeof buf);
	for (int i = 0; i < 4; i++) {
		j[i] = (struct job){.p = p, .o = i % 2 ? &big : &mid};
		assert_int_equal(pthread_create(&th[i], NULL, job_run, &j[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(j[i].rc, 0);
	}
	rd_pool_stats(p, &st);
	fprintf(stderr,
	        "# 4 readers + 1 idle, budget %llu MiB: peak %llu MiB, %llu waits, "
	        "%llu chunks dropped, %d GETs in flight at most\n",
	        (unsigned long long)(limit / MiB), (unsigned long long)(st.mem_peak / MiB),
	        (unsigned long long)st.mem_waits, (unsigned long long)st.chunks_dropped,
	        st.fetches_peak);
	assert_true(st.mem_peak <= limit);
	assert_true(st.mem_peak >= limit / 2); /* the budget was actually used */
	/* the idle reader still reads right (what it lost is fetched again) */
	assert_int_equal(rd_read(idle, buf, sizeof buf, 12 * MiB), sizeof buf);
	assert_true(ts_matches(big.seed, 12 * MiB, buf, sizeof buf));
	rd_close(idle);
	rd_pool_stats(p, &st);
	assert_int_equal(st.mem_used, 0);
	rd_pool_free(p);
}

/* The object is replaced behind the reader: -ESTALE, never bytes of the new
 * version, and it stays stale. */
static void test_stale(void **state)
{
	const uint64_t size = 24 * MiB;
	struct obj v1 = {"rd/stale", 11, size, ""}, v2 = {"rd/stale", 12, size, ""},
	           v3 = {"rd/stale", 13, size, ""};
	struct rd_pool *p = pool_new(4 * MiB, 4, 0, 2, NULL);
	struct rd_reader *r;
	unsigned char *buf = malloc(128 * KiB);
	uint64_t off = 0;
	ssize_t n = 0;

	put(v1.key, v1.seed, v1.size, v1.etag);
	assert_int_equal(rd_open(p, v1.key, v1.size, v1.etag, 0, &r), 0);
	assert_int_equal(rd_read(r, buf, 128 * KiB, 0), 128 * KiB);
	assert_true(ts_matches(v1.seed, 0, buf, 128 * KiB));
	put(v2.key, v2.seed, v2.size, v2.etag);
	assert_string_not_equal(v1.etag, v2.etag);
	for (off = 128 * KiB; off < size; off += n) {
		n = rd_read(r, buf, 128 * KiB, off);
		if (n < 0)
			break;
		assert_true(ts_matches(v1.seed, off, buf, n)); /* only old bytes */
	}
	assert_int_equal(n, -ESTALE);
	assert_true(off < size);
	assert_int_equal(rd_read(r, buf, 100, 0), -ESTALE); /* sticky */
	assert_int_equal(rd_read(r, buf, 100, 5 * MiB), -ESTALE);
	rd_close(r);

	/* an expected ETag that is not the object's: the first read fails */
	assert_int_equal(rd_open(p, v1.key, size, v1.etag, 0, &r), 0);
	assert_int_equal(rd_read(r, buf, 100, 3 * MiB), -ESTALE);
	rd_close(r);

	/* no ETag given: the first answer's is kept, a replacement is seen
	 * by a later random read */
	assert_int_equal(rd_open(p, v2.key, size, NULL, 0, &r), 0);
	assert_int_equal(rd_read(r, buf, 4096, 10 * MiB), 4096);
	assert_true(ts_matches(v2.seed, 10 * MiB, buf, 4096));
	put(v3.key, v3.seed, v3.size, v3.etag);
	assert_int_equal(rd_read(r, buf, 4096, 20 * MiB), -ESTALE);
	rd_close(r);

	/* the new version with its ETag reads fine */
	assert_int_equal(rd_open(p, v3.key, size, v3.etag, 0, &r), 0);
	assert_int_equal(read_all(r, &v3, 128 * KiB), 0);
	rd_close(r);

	/* deleted behind the reader */
	assert_int_equal(rd_open(p, v3.key, size, v3.etag, 0, &r), 0);
	assert_int_equal(s3_delete_object(s3, v3.key, NULL), 0);
	assert_int_equal(rd_read(r, buf, 100, 0), -ESTALE);
	rd_close(r);

	/* a shorter object than expected (no ETag to catch it) */
	assert_int_equal(rd_open(p, mid.key, mid.size + 1000, NULL, RD_SEQUENTIAL, &r), 0);
	for (off = 0, n = 0; off < mid.size + 1000; off += n) {
		n = rd_read(r, buf, 128 * KiB, off);
		if (n <= 0)
			break;
	}
	assert_int_equal(n, -ESTALE);
	rd_close(r);
	rd_pool_free(p);
	free(buf);
}

/* S3 errors after the client's retries are -EIO, in bounded time, and the
 * reader works again once S3 does. */
static void test_errors(void **state)
{
	struct s3_client *c = client_new(1500, 3);
	struct rd_pool *p = pool_new(4 * MiB, 4, 0, 4, c);
	struct rd_reader *r;
	unsigned char *buf = malloc(128 * KiB);
	double t0;
	ssize_t n;

	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, 0, &r), 0);
	assert_int_equal(ts_s3_fault(&srv, "{\"error_rate\":1,\"error_status\":500,\"ops\":[\"GetObject\"]}"),
	                 0);
	t0 = now();
	assert_int_equal(rd_read(r, buf, 128 * KiB, 0), -EIO);
	assert_int_equal(rd_read(r, buf, 4096, 7 * MiB + 3), -EIO); /* random */
	assert_true(now() - t0 < 5);
	assert_int_equal(ts_s3_fault(&srv, "off"), 0);
	n = rd_read(r, buf, 128 * KiB, 0);
	assert_int_equal(n, 128 * KiB);
	assert_true(ts_matches(mid.seed, 0, buf, n));

	/* the server stops accepting connections */
	assert_int_equal(ts_s3_fault(&srv, "{\"down_secs\":3}"), 0);
	usleep(200 * 1000);
	t0 = now();
	n = 0;
	for (uint64_t off = 128 * KiB; off < mid.size; off += n) {
		n = rd_read(r, buf, 128 * KiB, off);
		if (n < 0)
			break;
		assert_true(ts_matches(mid.seed, off, buf, n));
	}
	double dt = now() - t0;
	fprintf(stderr, "# server down: %s after %.1f s\n", strerror((int)-n), dt);
	assert_int_equal(n, -EIO);
	assert_true(dt < 5);
	rd_close(r);
	/* back up: reads work again */
	struct s3_object_info info;
	int rc = -1;
	for (int i = 0; i < 100 && rc; i++) {
		rc = s3_head_object(c, mid.key, &info, NULL);
		if (rc)
			usleep(200 * 1000);
		else
			s3_object_info_clear(&info);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(rd_open(p, mid.key, mid.size, mid.etag, RD_SEQUENTIAL, &r), 0);
	assert_int_equal(read_all(r, &mid, 1 * MiB), 0);
	rd_close(r);
	rd_pool_free(p);
	s3_client_free(c);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sequential_100mib),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_eof_and_empty),
	    cmocka_unit_test(test_readahead_overlaps),
	    cmocka_unit_test(test_concurrent_one_reader),
	    cmocka_unit_test(test_memory_budget),
	    cmocka_unit_test(test_stale),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
