/* test_s3_live.c - the S3 client against the strict test S3 (tests/s3/server:
 * s3rver behind a SigV4-verifying, fault-injecting proxy) on loopback.
 * Runs from the repository root (tests/run does). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "s3.h"
#include "testsrv.h"
#include "s3tune.h"

#define MiB (1024 * 1024)
#define BUCKET "lzfs-test"

static struct {
	struct ts_s3 srv;
	struct s3_creds creds;
	struct s3_client *c;
} g;

static int fault(const char *spec) { return ts_s3_fault(&g.srv, spec); }

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(unsigned char *p, size_t n, uint64_t seed) { ts_fill(seed, 0, p, n); }

/* A client with quick retries. Stalls are cut after 3 s without progress
 * (the test S3's reset faults can leave a connection open, half answered). */
static struct s3_client *client_r(const char *endpoint, const char *bucket, const char *secret,
				  int max_conn, int budget_ms, int retries)
{
	struct s3_creds creds = g.creds;
	if (secret)
		creds.secret_key = (char *)secret;
	struct s3_config cfg = {
		.endpoint = endpoint,
		.bucket = bucket,
		.path_style = 1,
		.creds = &creds,
		.max_connections = max_conn,
		.max_retries = retries,
		.retry_base_ms = 20,
		.retry_max_ms = 300,
		.retry_budget_ms = budget_ms,
		.connect_timeout_ms = 2000,
		.low_speed_secs = 3,
	};
	struct s3_client *c = NULL;
	assert_int_equal(s3_client_new(&cfg, &c), 0);
	return c;
}

static struct s3_client *client(const char *endpoint, const char *bucket, const char *secret,
				int max_conn, int budget_ms)
{
	return client_r(endpoint, bucket, secret, max_conn, budget_ms, 10);
}

static int setup(void **state)
{
	if (ts_s3_start(&g.srv, "test_s3_live") < 0)
		return -1;
	g.creds.access_key = "lzfstest";
	g.creds.secret_key = "lzfstestsecret";
	g.creds.session_token = NULL;
	g.c = client(g.srv.endpoint, BUCKET, NULL, 8, 20000);
	return 0;
}

static int teardown(void **state)
{
	s3_client_free(g.c);
	ts_s3_stop(&g.srv);
	return 0;
}

/* PUT from memory with MD5, HEAD, GET (range and fd), LIST, DELETE. */
static void roundtrip(const char *key, size_t size)
{
	struct s3_client *c = g.c;
	struct s3_status st;
	unsigned char *data = malloc(size + 1);
	fill(data, size, size + strlen(key));
	unsigned char md5[16];
	char md5hex[33], etag[S3_ETAG_MAX];
	hash_md5(data, size, md5);
	hash_hex(md5, 16, md5hex);
	struct s3_body body = {.buf = data, .fd = -1, .len = size, .md5 = md5};
	struct s3_meta meta[] = {{"origin", "instrument-7"}, {"Run-Id", "42"}, {"empty", ""}};
	struct s3_put_opts opts = {.content_type = "application/x-test", .meta = meta, .nmeta = 3};
	assert_int_equal(s3_put_object(c, key, &body, &opts, etag, &st), 0);
	assert_string_equal(etag, md5hex);

	struct s3_object_info info;
	assert_int_equal(s3_head_object(c, key, &info, &st), 0);
	assert_int_equal(info.size, size);
	assert_string_equal(info.etag, md5hex);
	assert_string_equal(info.content_type, "application/x-test");
	assert_non_null(info.meta);
	assert_non_null(strstr(info.meta, "origin=instrument-7\n"));
	assert_non_null(strstr(info.meta, "run-id=42\n"));
	assert_true(info.last_modified > 1600000000);
	s3_object_info_clear(&info);

	unsigned char *back = malloc(size + 16);
	size_t got = 0;
	assert_int_equal(s3_get_range(c, key, 0, size + 16, back, &got, &st), 0);
	assert_int_equal(got, size);
	assert_memory_equal(back, data, size);

	char path[128];
	snprintf(path, sizeof path, "%s/get.XXXXXX", g.srv.tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(s3_get_object_fd(c, key, fd, &info, &st), 0);
	assert_int_equal(info.size, size);
	assert_int_equal(pread(fd, back, size + 16, 0), (ssize_t)size);
	assert_memory_equal(back, data, size);
	s3_object_info_clear(&info);
	close(fd);

	free(back);
	free(data);
}

struct found {
	const char *want;
	int hits;
	int entries;
	uint64_t size;
};

static int on_entry(const struct s3_list_entry *e, void *arg)
{
	struct found *f = arg;
	f->entries++;
	if (strcmp(e->key, f->want) == 0) {
		f->hits++;
		f->size = e->size;
	}
	return 0;
}

static const char *odd_keys[] = {
	"plain.bin",
	"with space/and  two",
	"utf8/\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa6",
	"plus+sign+",
	"percent%41%2F%",
	"question?mark",
	"hash#tag",
	"equals=and&amp;semi;",
	"new\nline",
	"tilde~star*paren(x)",
	"quote\"apos'back\\slash",
	"dir/sub/deep/file.dat",
};

static void test_odd_keys_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof odd_keys / sizeof odd_keys[0]; i++) {
		const char *key = odd_keys[i];
		roundtrip(key, 1000 + i * 977);
		/* LIST finds exactly this key, byte for byte */
		struct found f = {key, 0, 0, 0};
		struct s3_status st;
		assert_int_equal(s3_list(g.c, key, NULL, on_entry, &f, &st), 0);
		if (f.hits != 1)
			print_error("key %zu: listed %d entries, %d hits\n", i, f.entries, f.hits);
		assert_int_equal(f.hits, 1);
		assert_int_equal(f.size, 1000 + i * 977);
		assert_int_equal(s3_delete_object(g.c, key, &st), 0);
		struct s3_object_info info;
		assert_int_equal(s3_head_object(g.c, key, &info, &st), -ENOENT);
		assert_int_equal(st.http_status, 404);
		f.hits = 0;
		assert_int_equal(s3_list(g.c, key, NULL, on_entry, &f, &st), 0);
		assert_int_equal(f.hits, 0);
	}
}

static void test_empty_and_fd_body(void **state)
{
	struct s3_status st;
	char etag[S3_ETAG_MAX];
	struct s3_body empty = {.buf = "", .fd = -1, .len = 0};
	assert_int_equal(s3_put_object(g.c, "empty", &empty, NULL, etag, &st), 0);
	assert_string_equal(etag, "d41d8cd98f00b204e9800998ecf8427e");
	struct s3_object_info info;
	assert_int_equal(s3_head_object(g.c, "empty", &info, &st), 0);
	assert_int_equal(info.size, 0);
	assert_string_equal(info.content_type, "application/octet-stream");
	char buf[8];
	size_t got = 99;
	assert_int_equal(s3_get_range(g.c, "empty", 0, sizeof buf, buf, &got, &st), 0);
	assert_int_equal(got, 0);

	/* a range of a file, sent with pread, checksum stored */
	char path[128];
	snprintf(path, sizeof path, "%s/body.XXXXXX", g.srv.tmp);
	int fd = mkstemp(path);
	unlink(path);
	size_t n = 3 * MiB + 123;
	unsigned char *data = malloc(n);
	fill(data, n, 7);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	struct s3_body body = {.fd = fd, .off = 1000, .len = n - 2000};
	struct s3_put_opts opts = {.checksum_sha256 = 1};
	assert_int_equal(s3_put_object(g.c, "from-fd", &body, &opts, etag, &st), 0);
	unsigned char md5[16];
	char hex[33];
	hash_md5(data + 1000, n - 2000, md5);
	hash_hex(md5, 16, hex);
	assert_string_equal(etag, hex);
	unsigned char *back = malloc(n);
	assert_int_equal(s3_get_range(g.c, "from-fd", 0, n, back, &got, &st), 0);
	assert_int_equal(got, n - 2000);
	assert_memory_equal(back, data + 1000, n - 2000);
	close(fd);
	free(back);
	free(data);
}

static void test_ranged_gets(void **state)
{
	struct s3_status st;
	size_t n = 2 * MiB + 17;
	unsigned char *data = malloc(n), *back = malloc(n);
	fill(data, n, 99);
	struct s3_body body = {.buf = data, .fd = -1, .len = n};
	assert_int_equal(s3_put_object(g.c, "ranged", &body, NULL, NULL, &st), 0);
	const struct {
		uint64_t off;
		size_t len;
		size_t want;
	} r[] = {
		{0, 10, 10},
		{12345, 1, 1},
		{MiB - 3, MiB + 5, MiB + 5},
		{n - 100, 1000, 100},   /* crosses the end: short */
		{n - 1, 1, 1},
		{n, 10, 0},             /* at the end: nothing, like pread */
		{n + 5000, 10, 0},
		{0, n, n},
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		size_t got = 12345678;
		memset(back, 0, n);
		assert_int_equal(s3_get_range(g.c, "ranged", r[i].off, r[i].len, back, &got, &st), 0);
		assert_int_equal(got, r[i].want);
		if (got)
			assert_memory_equal(back, data + r[i].off, got);
	}
	size_t got = 1;
	assert_int_equal(s3_get_range(g.c, "no-such-key", 0, 10, back, &got, &st), -ENOENT);
	assert_string_equal(st.code, "NoSuchKey");
	assert_int_equal(got, 0);
	free(data);
	free(back);
}

struct mp {
	struct s3_client *c;
	const char *key;
	const char *upload_id;
	int fd;
	uint64_t part_size;
	int nparts;
	struct s3_part *parts;
	atomic_int next;
	atomic_int failed;
	atomic_int max_in_flight;
};

static void *mp_worker(void *arg)
{
	struct mp *m = arg;
	int i;
	while ((i = atomic_fetch_add(&m->next, 1)) < m->nparts) {
		struct s3_body b = {.fd = m->fd, .off = (off_t)(i * m->part_size),
				    .len = m->part_size, .md5 = m->parts[i].md5};
		struct s3_status st;
		struct s3_stats s;
		if (s3_mpu_upload_part(m->c, m->key, m->upload_id, i + 1, &b, m->parts[i].etag, &st))
			atomic_fetch_add(&m->failed, 1);
		s3_get_stats(m->c, &s);
		int seen = atomic_load(&m->max_in_flight);
		while (s.in_flight > seen && !atomic_compare_exchange_weak(&m->max_in_flight, &seen, s.in_flight))
			;
	}
	return NULL;
}

/* Uploads fd's first nparts * part_size bytes as key with `threads` parts in
 * flight; returns complete's result. */
static int multipart(struct s3_client *c, const char *key, int fd, uint64_t part_size, int nparts,
		     int threads, char etag[S3_ETAG_MAX], struct s3_part **out_parts)
{
	struct mp m = {.c = c, .key = key, .fd = fd, .part_size = part_size, .nparts = nparts};
	m.parts = calloc((size_t)nparts, sizeof *m.parts);
	for (int i = 0; i < nparts; i++) {
		m.parts[i].number = i + 1;
		m.parts[i].size = part_size;
		assert_int_equal(hash_fd(HASH_MD5, fd, (off_t)(i * part_size), part_size, m.parts[i].md5), 0);
	}
	char *uid = NULL;
	struct s3_status st;
	assert_int_equal(s3_mpu_create(c, key, NULL, &uid, &st), 0);
	m.upload_id = uid;
	pthread_t t[16];
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, mp_worker, &m);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&m.failed), 0);
	assert_true(atomic_load(&m.max_in_flight) <= threads);
	int rc = s3_mpu_complete(c, key, uid, m.parts, nparts, etag, &st);
	free(uid);
	if (out_parts)
		*out_parts = m.parts;
	else
		free(m.parts);
	return rc;
}

static int temp_file(const unsigned char *data, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "%s/data.XXXXXX", g.srv.tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (size_t done = 0; done < n;) {
		ssize_t w = write(fd, data + done, n - done);
		assert_true(w > 0);
		done += (size_t)w;
	}
	return fd;
}

static void test_multipart_64mib_4_in_flight(void **state)
{
	size_t n = 64 * MiB;
	unsigned char *data = malloc(n);
	fill(data, n, 64);
	int fd = temp_file(data, n);
	struct s3_client *c = client(g.srv.endpoint, BUCKET, NULL, 4, 20000);
	char etag[S3_ETAG_MAX], want[S3_ETAG_MAX];
	struct s3_part *parts;
	uint64_t t0 = now_ms();
	assert_int_equal(multipart(c, "big/64mib.bin", fd, 8 * MiB, 8, 4, etag, &parts), 0);
	uint64_t dt = now_ms() - t0;
	print_message("# 64 MiB in 8 parts, 4 in flight: %llu ms\n", (unsigned long long)dt);
	s3_multipart_etag(parts, 8, want);
	assert_string_equal(etag, want);
	assert_non_null(strstr(etag, "-8"));
	free(parts);

	/* read back by another client: Debian's awscli */
	char out[128];
	snprintf(out, sizeof out, "%s/aws-copy", g.srv.tmp);
	assert_int_equal(ts_sh("AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret "
			    "AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null "
			    "AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true "
			    "/usr/bin/aws --endpoint-url '%s' s3 cp --only-show-errors "
			    "s3://" BUCKET "/big/64mib.bin '%s'", g.srv.endpoint, out), 0);
	int afd = open(out, O_RDONLY);
	assert_true(afd >= 0);
	unsigned char *back = malloc(n);
	assert_int_equal(pread(afd, back, n, 0), (ssize_t)n);
	char extra;
	assert_int_equal(pread(afd, &extra, 1, (off_t)n), 0);
	assert_memory_equal(back, data, n);
	close(afd);
	unlink(out);

	/* and by our own GET into a file */
	int gfd = temp_file((const unsigned char *)"", 0);
	struct s3_object_info info;
	struct s3_status st;
	assert_int_equal(s3_get_object_fd(c, "big/64mib.bin", gfd, &info, &st), 0);
	assert_int_equal(info.size, n);
	assert_string_equal(info.etag, want);
	memset(back, 0, n);
	assert_int_equal(pread(gfd, back, n, 0), (ssize_t)n);
	assert_memory_equal(back, data, n);
	close(gfd);
	assert_int_equal(s3_delete_object(c, "big/64mib.bin", &st), 0);
	s3_client_free(c);
	free(back);
	free(data);
	close(fd);
}

struct collect {
	char **keys;
	int n;
	int prefixes;
	int stop_after;
};

static int on_collect(const struct s3_list_entry *e, void *arg)
{
	struct collect *c = arg;
	c->keys[c->n++] = strdup(e->key);
	c->prefixes += e->is_prefix;
	if (c->stop_after && c->n == c->stop_after)
		return 77;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_list_pagination(void **state)
{
	struct s3_status st;
	enum { N = 230 };
	char *keys[N];
	struct s3_body b = {.buf = "x", .fd = -1, .len = 1};
	for (int i = 0; i < N; i++) {
		char k[64];
		/* names that sort differently as bytes and as text */
		snprintf(k, sizeof k, "page/%c%03d%s", i % 3 == 0 ? 'B' : 'a', i, i % 7 == 0 ? " +x" : "");
		keys[i] = strdup(k);
		assert_int_equal(s3_put_object(g.c, k, &b, NULL, NULL, &st), 0);
	}
	qsort(keys, N, sizeof *keys, cmp_str);
	s3_tune_list_page(g.c, 17);
	struct s3_stats before, after;
	s3_get_stats(g.c, &before);
	struct collect col = {calloc(N + 10, sizeof(char *)), 0, 0, 0};
	assert_int_equal(s3_list(g.c, "page/", NULL, on_collect, &col, &st), 0);
	s3_get_stats(g.c, &after);
	assert_int_equal(col.n, N);
	for (int i = 0; i < N; i++) {
		assert_string_equal(col.keys[i], keys[i]); /* S3 order: bytewise */
		free(col.keys[i]);
	}
	assert_true(after.requests - before.requests >= (N + 16) / 17);

	/* the callback stops the listing */
	col.n = 0;
	col.stop_after = 20;
	assert_int_equal(s3_list(g.c, "page/", NULL, on_collect, &col, &st), 77);
	assert_int_equal(col.n, 20);
	for (int i = 0; i < col.n; i++)
		free(col.keys[i]);

	/* a delimiter folds "directories" into prefixes */
	const char *tree[] = {"tree/a/1", "tree/a/2", "tree/b/1", "tree/c", "tree/d/e/f"};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(s3_put_object(g.c, tree[i], &b, NULL, NULL, &st), 0);
	col = (struct collect){col.keys, 0, 0, 0};
	s3_tune_list_page(g.c, 2);
	assert_int_equal(s3_list(g.c, "tree/", "/", on_collect, &col, &st), 0);
	assert_int_equal(col.n, 4);
	assert_int_equal(col.prefixes, 3);
	assert_string_equal(col.keys[0], "tree/a/");
	assert_string_equal(col.keys[1], "tree/b/");
	assert_string_equal(col.keys[2], "tree/c");
	assert_string_equal(col.keys[3], "tree/d/");
	for (int i = 0; i < col.n; i++)
		free(col.keys[i]);
	s3_tune_list_page(g.c, 0);
	free(col.keys);
	for (int i = 0; i < N; i++) {
		assert_int_equal(s3_delete_object(g.c, keys[i], &st), 0);
		free(keys[i]);
	}
}

static void test_wrong_secret(void **state)
{
	struct s3_client *c = client(g.srv.endpoint, BUCKET, "not-the-secret", 2, 5000);
	struct s3_status st;
	struct s3_body b = {.buf = "data", .fd = -1, .len = 4};
	assert_int_equal(s3_put_object(c, "denied", &b, NULL, NULL, &st), -EACCES);
	assert_int_equal(st.http_status, 403);
	assert_string_equal(st.code, "SignatureDoesNotMatch");
	assert_true(strlen(st.message) > 10);
	assert_true(strlen(st.request_id) > 0);
	assert_int_equal(st.attempts, 1); /* never retried */
	assert_int_equal(s3_check_bucket(c, &st), -EACCES);
	s3_client_free(c);
}

static void test_entity_too_small(void **state)
{
	struct s3_status st;
	size_t n = 5 * MiB;
	unsigned char *data = malloc(n);
	fill(data, n, 5);
	char *uid;
	assert_int_equal(s3_mpu_create(g.c, "small-parts", NULL, &uid, &st), 0);
	struct s3_part parts[2] = {{.number = 1, .size = 4 * MiB}, {.number = 2, .size = MiB}};
	struct s3_body b1 = {.buf = data, .fd = -1, .len = 4 * MiB};
	struct s3_body b2 = {.buf = data + 4 * MiB, .fd = -1, .len = MiB};
	assert_int_equal(s3_mpu_upload_part(g.c, "small-parts", uid, 1, &b1, parts[0].etag, &st), 0);
	assert_int_equal(s3_mpu_upload_part(g.c, "small-parts", uid, 2, &b2, parts[1].etag, &st), 0);
	assert_int_equal(s3_mpu_complete(g.c, "small-parts", uid, parts, 2, NULL, &st), -EINVAL);
	assert_string_equal(st.code, "EntityTooSmall");
	assert_int_equal(st.http_status, 400);
	assert_int_equal(s3_mpu_abort(g.c, "small-parts", uid, &st), 0);
	free(uid);
	free(data);
}

static void test_bad_digests(void **state)
{
	struct s3_status st;
	unsigned char wrong[32];
	memset(wrong, 0xab, sizeof wrong);
	struct s3_body b = {.buf = "payload", .fd = -1, .len = 7, .md5 = wrong};
	assert_int_equal(s3_put_object(g.c, "bad-md5", &b, NULL, NULL, &st), -EBADMSG);
	assert_int_equal(st.http_status, 400);
	b.md5 = NULL;
	b.sha256 = wrong;
	assert_int_equal(s3_put_object(g.c, "bad-sha", &b, NULL, NULL, &st), -EBADMSG);
	assert_int_equal(st.http_status, 400);
	struct s3_object_info info;
	assert_int_equal(s3_head_object(g.c, "bad-md5", &info, &st), -ENOENT);
	assert_int_equal(s3_head_object(g.c, "bad-sha", &info, &st), -ENOENT);
}

static int on_part(const struct s3_part *p, void *arg)
{
	struct s3_part *out = arg;
	out[p->number - 1] = *p;
	return 0;
}

static void test_list_parts_and_abort(void **state)
{
	struct s3_status st;
	size_t n = 5 * MiB + 1024;
	unsigned char *data = malloc(n);
	fill(data, n, 11);
	char *uid;
	assert_int_equal(s3_mpu_create(g.c, "parts/abort me", NULL, &uid, &st), 0);
	char e1[S3_ETAG_MAX], e2[S3_ETAG_MAX];
	struct s3_body b1 = {.buf = data, .fd = -1, .len = 5 * MiB};
	struct s3_body b2 = {.buf = data + 5 * MiB, .fd = -1, .len = 1024};
	assert_int_equal(s3_mpu_upload_part(g.c, "parts/abort me", uid, 2, &b2, e2, &st), 0);
	assert_int_equal(s3_mpu_upload_part(g.c, "parts/abort me", uid, 1, &b1, e1, &st), 0);
	struct s3_part got[2];
	memset(got, 0, sizeof got);
	assert_int_equal(s3_mpu_list_parts(g.c, "parts/abort me", uid, on_part, got, &st), 0);
	assert_int_equal(got[0].number, 1);
	assert_int_equal(got[0].size, 5 * MiB);
	assert_string_equal(got[0].etag, e1);
	assert_int_equal(got[1].number, 2);
	assert_int_equal(got[1].size, 1024);
	assert_string_equal(got[1].etag, e2);
	assert_int_equal(s3_mpu_abort(g.c, "parts/abort me", uid, &st), 0);
	assert_int_equal(s3_mpu_abort(g.c, "parts/abort me", uid, &st), 0); /* already gone */
	assert_int_equal(s3_mpu_list_parts(g.c, "parts/abort me", uid, on_part, got, &st), -ENOENT);
	assert_string_equal(st.code, "NoSuchUpload");
	struct s3_object_info info;
	assert_int_equal(s3_head_object(g.c, "parts/abort me", &info, &st), -ENOENT);
	free(uid);
	free(data);
}

static void test_copy(void **state)
{
	struct s3_status st;
	size_t n = 12 * MiB + 5;
	unsigned char *data = malloc(n), *back = malloc(n);
	fill(data, n, 12);
	const char *src = "copy/src +%?.bin";
	struct s3_body b = {.buf = data, .fd = -1, .len = n};
	char etag[S3_ETAG_MAX], cetag[S3_ETAG_MAX];
	struct s3_meta meta[] = {{"station", "north 7"}};
	struct s3_put_opts opts = {.content_type = "text/x-src", .meta = meta, .nmeta = 1};
	assert_int_equal(s3_put_object(g.c, src, &b, &opts, etag, &st), 0);

	/* CopyObject */
	assert_int_equal(s3_copy_object(g.c, src, "copy/dst one", cetag, &st), 0);
	assert_string_equal(cetag, etag);
	size_t got;
	assert_int_equal(s3_get_range(g.c, "copy/dst one", 0, n, back, &got, &st), 0);
	assert_int_equal(got, n);
	assert_memory_equal(back, data, n);

	/* the multipart UploadPartCopy path: 5 + 5 + 2 MiB */
	s3_tune_copy(g.c, MiB, 5 * MiB);
	assert_int_equal(s3_copy_object(g.c, src, "copy/dst two", cetag, &st), 0);
	assert_non_null(strstr(cetag, "-3"));
	struct s3_object_info info;
	assert_int_equal(s3_head_object(g.c, "copy/dst two", &info, &st), 0);
	assert_int_equal(info.size, n);
	assert_string_equal(info.etag, cetag);
	/* type and metadata travel with the copy, as with CopyObject */
	assert_string_equal(info.content_type, "text/x-src");
	assert_non_null(info.meta);
	assert_string_equal(info.meta, "station=north 7\n");
	s3_object_info_clear(&info);
	assert_int_equal(s3_head_object(g.c, "copy/dst one", &info, &st), 0);
	assert_string_equal(info.content_type, "text/x-src");
	assert_non_null(info.meta);
	assert_string_equal(info.meta, "station=north 7\n");
	s3_object_info_clear(&info);
	memset(back, 0, n);
	assert_int_equal(s3_get_range(g.c, "copy/dst two", 0, n, back, &got, &st), 0);
	assert_int_equal(got, n);
	assert_memory_equal(back, data, n);
	s3_tune_copy(g.c, 0, 0);

	/* a missing source */
	assert_int_equal(s3_copy_object(g.c, "copy/none", "copy/dst three", cetag, &st), -ENOENT);
	/* an UploadPartCopy range past the source's end */
	char *uid;
	assert_int_equal(s3_mpu_create(g.c, "copy/dst four", NULL, &uid, &st), 0);
	assert_int_equal(s3_mpu_upload_part_copy(g.c, "copy/dst four", uid, 1, src, n - 10, 100,
						 cetag, &st), -EINVAL);
	assert_int_equal(s3_mpu_abort(g.c, "copy/dst four", uid, &st), 0);
	free(uid);
	free(data);
	free(back);
}

static void test_head_missing_and_buckets(void **state)
{
	struct s3_status st;
	struct s3_object_info info;
	assert_int_equal(s3_head_object(g.c, "missing/key", &info, &st), -ENOENT);
	assert_int_equal(st.http_status, 404);
	assert_int_equal(s3_delete_object(g.c, "missing/key", &st), 0);
	assert_int_equal(s3_check_bucket(g.c, &st), 0);
	struct s3_client *c = client(g.srv.endpoint, "no-such-bucket", NULL, 2, 5000);
	assert_int_equal(s3_check_bucket(c, &st), -ENXIO);
	assert_int_equal(st.http_status, 404);
	struct s3_body b = {.buf = "x", .fd = -1, .len = 1};
	assert_int_equal(s3_put_object(c, "k", &b, NULL, NULL, &st), -ENXIO);
	assert_string_equal(st.code, "NoSuchBucket");
	s3_client_free(c);
}

/* Every operation, once. */
static void all_operations(struct s3_client *c, const char *prefix)
{
	struct s3_status st;
	char key[128], key2[128], etag[S3_ETAG_MAX];
	size_t n = 11 * MiB;
	unsigned char *data = malloc(n), *back = malloc(n);
	fill(data, n, 3);
	snprintf(key, sizeof key, "%s/obj", prefix);
	snprintf(key2, sizeof key2, "%s/copy", prefix);
	assert_int_equal(s3_check_bucket(c, &st), 0);
	struct s3_body b = {.buf = data, .fd = -1, .len = MiB};
	assert_int_equal(s3_put_object(c, key, &b, NULL, etag, &st), 0);
	struct s3_object_info info;
	assert_int_equal(s3_head_object(c, key, &info, &st), 0);
	assert_int_equal(info.size, MiB);
	size_t got;
	assert_int_equal(s3_get_range(c, key, 100, 1000, back, &got, &st), 0);
	assert_int_equal(got, 1000);
	assert_memory_equal(back, data + 100, 1000);
	assert_int_equal(s3_copy_object(c, key, key2, etag, &st), 0);
	struct found f = {key2, 0, 0, 0};
	assert_int_equal(s3_list(c, prefix, NULL, on_entry, &f, &st), 0);
	assert_int_equal(f.hits, 1);

	char *uid;
	struct s3_part parts[2] = {{.number = 1, .size = 6 * MiB}, {.number = 2, .size = 5 * MiB}};
	hash_md5(data, 6 * MiB, parts[0].md5);
	hash_md5(data + 6 * MiB, 5 * MiB, parts[1].md5);
	snprintf(key, sizeof key, "%s/mpu", prefix);
	assert_int_equal(s3_mpu_create(c, key, NULL, &uid, &st), 0);
	struct s3_body p1 = {.buf = data, .fd = -1, .len = 6 * MiB, .md5 = parts[0].md5};
	struct s3_body p2 = {.buf = data + 6 * MiB, .fd = -1, .len = 5 * MiB, .md5 = parts[1].md5};
	assert_int_equal(s3_mpu_upload_part(c, key, uid, 1, &p1, parts[0].etag, &st), 0);
	assert_int_equal(s3_mpu_upload_part(c, key, uid, 2, &p2, parts[1].etag, &st), 0);
	struct s3_part listed[2];
	assert_int_equal(s3_mpu_list_parts(c, key, uid, on_part, listed, &st), 0);
	assert_int_equal(s3_mpu_complete(c, key, uid, parts, 2, etag, &st), 0);
	free(uid);
	assert_int_equal(s3_mpu_create(c, key2, NULL, &uid, &st), 0);
	assert_int_equal(s3_mpu_upload_part_copy(c, key2, uid, 1, key, 0, 5 * MiB, parts[0].etag, &st), 0);
	assert_int_equal(s3_mpu_abort(c, key2, uid, &st), 0);
	free(uid);
	int fd = temp_file((const unsigned char *)"", 0);
	assert_int_equal(s3_get_object_fd(c, key, fd, &info, &st), 0);
	assert_int_equal(info.size, n);
	close(fd);
	assert_int_equal(s3_delete_object(c, key, &st), 0);
	assert_int_equal(s3_delete_object(c, key2, &st), 0);
	free(data);
	free(back);
}

static void test_faults_503(void **state)
{
	struct s3_client *c = client(g.srv.endpoint, BUCKET, NULL, 4, 30000);
	assert_int_equal(fault("{\"error_rate\":0.2,\"error_status\":503,\"seed\":1}"), 0);
	for (int round = 0; round < 3; round++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "faults503/%d", round);
		all_operations(c, prefix);
	}
	assert_int_equal(fault("off"), 0);
	struct s3_stats s;
	s3_get_stats(c, &s);
	print_message("# with 20%% 503s: %llu requests, %llu retries, %llu failures\n",
		      (unsigned long long)s.requests, (unsigned long long)s.retries,
		      (unsigned long long)s.failures);
	assert_true(s.retries > 0);
	assert_true(s.requests > s.retries);
	/* the expected 404s of the test itself are not retried: nothing failed */
	assert_int_equal(s.failures, 0);
	s3_client_free(c);
}

static void test_faults_resets_and_500(void **state)
{
	struct s3_client *c = client(g.srv.endpoint, BUCKET, NULL, 4, 30000);
	assert_int_equal(fault("{\"reset_rate\":0.15,\"error_rate\":0.1,\"error_status\":500,\"seed\":7}"), 0);
	for (int round = 0; round < 3; round++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "faultsreset/%d", round);
		all_operations(c, prefix);
	}
	assert_int_equal(fault("off"), 0);
	struct s3_stats s;
	s3_get_stats(c, &s);
	print_message("# with resets and 500s: %llu requests, %llu retries\n",
		      (unsigned long long)s.requests, (unsigned long long)s.retries);
	assert_true(s.retries > 0);
	s3_client_free(c);
}

/* A CompleteMultipartUpload whose answer is cut: resolved by HEAD. Then a
 * second complete of the same upload (NoSuchUpload): resolved by HEAD. */
static void test_complete_answer_lost(void **state)
{
	struct s3_status st;
	size_t n = 10 * MiB + 3;
	unsigned char *data = malloc(n);
	fill(data, n, 13);
	struct s3_part parts[2] = {{.number = 1, .size = 5 * MiB}, {.number = 2, .size = n - 5 * MiB}};
	hash_md5(data, 5 * MiB, parts[0].md5);
	hash_md5(data + 5 * MiB, n - 5 * MiB, parts[1].md5);
	char *uid;
	const char *key = "complete/lost answer";
	assert_int_equal(s3_mpu_create(g.c, key, NULL, &uid, &st), 0);
	struct s3_body p1 = {.buf = data, .fd = -1, .len = 5 * MiB, .md5 = parts[0].md5};
	struct s3_body p2 = {.buf = data + 5 * MiB, .fd = -1, .len = n - 5 * MiB, .md5 = parts[1].md5};
	assert_int_equal(s3_mpu_upload_part(g.c, key, uid, 1, &p1, parts[0].etag, &st), 0);
	assert_int_equal(s3_mpu_upload_part(g.c, key, uid, 2, &p2, parts[1].etag, &st), 0);
	assert_int_equal(fault("{\"reset_rate\":1,\"reset_when\":\"response\","
			       "\"ops\":[\"CompleteMultipartUpload\"],\"count\":1}"), 0);
	char etag[S3_ETAG_MAX], want[S3_ETAG_MAX];
	s3_multipart_etag(parts, 2, want);
	assert_int_equal(s3_mpu_complete(g.c, key, uid, parts, 2, etag, &st), 0);
	assert_string_equal(etag, want);
	assert_int_equal(fault("off"), 0);
	/* completing again: the upload is gone, the object is ours */
	assert_int_equal(s3_mpu_complete(g.c, key, uid, parts, 2, etag, &st), 0);
	assert_string_equal(etag, want);
	/* without MD5s: size and part count decide */
	struct s3_part nomd5[2] = {parts[0], parts[1]};
	memset(nomd5[0].md5, 0, 16);
	memset(nomd5[1].md5, 0, 16);
	assert_int_equal(s3_mpu_complete(g.c, key, uid, nomd5, 2, etag, &st), 0);
	/* ... and a different claim is refused */
	nomd5[1].size += 1;
	assert_int_equal(s3_mpu_complete(g.c, key, uid, nomd5, 2, etag, &st), -ENOENT);
	parts[1].md5[0] ^= 1;
	assert_int_equal(s3_mpu_complete(g.c, key, uid, parts, 2, etag, &st), -ENOENT);
	assert_int_equal(s3_delete_object(g.c, key, &st), 0);
	free(uid);
	free(data);
}

static void test_server_down(void **state)
{
	/* a port nothing listens on: refused at once, retried until the budget */
	struct s3_client *c = client("http://127.0.0.1:9", BUCKET, NULL, 2, 1500);
	struct s3_status st;
	struct s3_body b = {.buf = "x", .fd = -1, .len = 1};
	uint64_t t0 = now_ms();
	assert_int_equal(s3_put_object(c, "down", &b, NULL, NULL, &st), -ECONNREFUSED);
	uint64_t dt = now_ms() - t0;
	assert_true(dt < 1500 + 1000);
	assert_true(st.attempts > 1);
	assert_int_equal(st.http_status, 0);
	assert_true(strstr(st.message, "onnect") != NULL);
	struct s3_object_info info;
	assert_int_equal(s3_head_object(c, "down", &info, &st), -ECONNREFUSED);
	size_t got;
	char buf[4];
	assert_int_equal(s3_get_range(c, "down", 0, 4, buf, &got, &st), -ECONNREFUSED);
	s3_client_free(c);

	/* the test S3 going away for 2 s: a generous budget rides it out */
	c = client_r(g.srv.endpoint, BUCKET, NULL, 2, 15000, 1000);
	assert_int_equal(fault("{\"down_secs\":2,\"count\":1}"), 0);
	t0 = now_ms();
	assert_int_equal(s3_put_object(c, "down-then-up", &b, NULL, NULL, &st), 0);
	print_message("# rode out a 2 s outage in %llu ms, %d attempts\n",
		      (unsigned long long)(now_ms() - t0), st.attempts);
	assert_true(st.attempts > 1);
	assert_int_equal(s3_head_object(c, "down-then-up", &info, &st), 0);
	assert_int_equal(fault("off"), 0);
	s3_client_free(c);

	/* the real server stopped: fails within a small budget, never hangs */
	c = client_r(g.srv.endpoint, BUCKET, NULL, 2, 1000, 1000);
	assert_int_equal(ts_sh("'%s' stop '%s'", g.srv.server, g.srv.dir), 0);
	t0 = now_ms();
	int rc = s3_head_object(c, "down-then-up", &info, &st);
	dt = now_ms() - t0;
	assert_true(rc == -ECONNREFUSED || rc == -EIO);
	assert_true(dt < 1000 + 2500);
	s3_client_free(c);
}

int main(void)
{
	log_init("test_s3_live", LZ_DEBUG, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_odd_keys_roundtrip),
		cmocka_unit_test(test_empty_and_fd_body),
		cmocka_unit_test(test_ranged_gets),
		cmocka_unit_test(test_multipart_64mib_4_in_flight),
		cmocka_unit_test(test_list_pagination),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_entity_too_small),
		cmocka_unit_test(test_bad_digests),
		cmocka_unit_test(test_list_parts_and_abort),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_head_missing_and_buckets),
		cmocka_unit_test(test_faults_503),
		cmocka_unit_test(test_faults_resets_and_500),
		cmocka_unit_test(test_complete_answer_lost),
		cmocka_unit_test(test_server_down), /* last: stops the server */
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
