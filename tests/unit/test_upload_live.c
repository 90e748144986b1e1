/* test_upload_live.c - the upload pipeline against the real test S3 (s3rver
 * behind the strict SigV4 proxy), with real spool files.
 *
 * Every object is read back (with our client, and once with Debian's awscli)
 * and compared byte for byte with the spool file; its SHA-256 is computed
 * again from the download and compared with the pipeline's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "s3.h"
#include "testsrv.h"
#include "upload.h"

#define MiB (1024ull * 1024)
#define KiB 1024ull

static struct ts_s3 srv;
static struct s3_creds creds = {.access_key = "lzfstest", .secret_key = "lzfstestsecret"};
static struct s3_client *s3;

/* ---- helpers ---- */

/* Runs cmd and returns its whole output (malloc'd), or NULL if it failed. */
static char *run_all(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *out = malloc(cap);
	size_t got;
	while ((got = fread(out + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 1024)
			out = realloc(out, cap *= 2);
	}
	out[n] = '\0';
	int st = pclose(f);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static int spool_new(void)
{
	char path[400];
	snprintf(path, sizeof path, "%s/spool.XXXXXX", srv.tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
		off += n;
	}
}

/* Compares the contents of two fds; returns 1 if equal. */
static int same_content(int a, int b)
{
	struct stat sa, sb;
	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	if (sa.st_size != sb.st_size) {
		print_message("# sizes differ: %jd != %jd\n", (intmax_t)sa.st_size,
			      (intmax_t)sb.st_size);
		return 0;
	}
	static unsigned char x[1 << 20], y[1 << 20];
	for (off_t off = 0; off < sa.st_size;) {
		ssize_t n = pread(a, x, sizeof x, off);
		ssize_t m = pread(b, y, sizeof y, off);
		assert_true(n > 0 && n == m);
		if (memcmp(x, y, (size_t)n) != 0) {
			print_message("# content differs near %jd\n", (intmax_t)off);
			return 0;
		}
		off += n;
	}
	return 1;
}

/* Downloads key and checks it against the spool file and res->sha256. */
static void verify(const char *key, int spool, const struct up_result *res)
{
	int fd = spool_new();
	struct s3_object_info info = {0};
	assert_int_equal(s3_get_object_fd(s3, key, fd, &info, NULL), 0);
	s3_object_info_clear(&info);
	assert_true(same_content(fd, spool));

	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(res->size, (uint64_t)st.st_size);
	unsigned char d[32];
	char hex[65];
	assert_int_equal(hash_fd(HASH_SHA256, fd, 0, (uint64_t)st.st_size, d), 0);
	hash_hex(d, 32, hex);
	assert_string_equal(hex, res->sha256);
	assert_true(res->etag[0] != '\0');
	close(fd);
}

/* The same with Debian's awscli (a second, independent client). */
static void verify_aws(const char *key, int spool)
{
	char path[400], cmd[1400];
	snprintf(path, sizeof path, "%s/aws-download", srv.tmp);
	snprintf(cmd, sizeof cmd,
		 "AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret "
		 "AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true "
		 "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
		 "/usr/bin/aws --endpoint-url '%s' s3 cp --only-show-errors "
		 "'s3://lzfs-test/%s' '%s'",
		 srv.endpoint, key, path);
	assert_int_equal(ts_sh("%s", cmd), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(same_content(fd, spool));
	close(fd);
	unlink(path);
}

struct hook_log {
	pthread_mutex_t lock;
	char upload_id[256];
	int created;
	uint64_t part_size[64];
	int parts;
};

static void on_created(void *arg, const char *id)
{
	struct hook_log *h = arg;
	pthread_mutex_lock(&h->lock);
	snprintf(h->upload_id, sizeof h->upload_id, "%s", id);
	h->created++;
	pthread_mutex_unlock(&h->lock);
}

static void on_part(void *arg, int n, const char *etag, uint64_t size)
{
	struct hook_log *h = arg;
	assert_true(etag && etag[0]);
	pthread_mutex_lock(&h->lock);
	if (n >= 1 && n <= 64)
		h->part_size[n - 1] = size;
	h->parts++;
	pthread_mutex_unlock(&h->lock);
}

static int hook_parts(struct hook_log *h)
{
	pthread_mutex_lock(&h->lock);
	int n = h->parts;
	pthread_mutex_unlock(&h->lock);
	return n;
}

static void hooks_init(struct hook_log *h, struct up_hooks *hk)
{
	memset(h, 0, sizeof *h);
	pthread_mutex_init(&h->lock, NULL);
	*hk = (struct up_hooks){.created = on_created, .part_done = on_part, .arg = h};
}

/* Writes `size` bytes of seed's content through spool and stream, in
 * chunks of `chunk`. Returns the first write error. */
static int stream_write(struct up_stream *s, int spool, uint64_t seed, uint64_t from,
			uint64_t size, size_t chunk)
{
	unsigned char *buf = malloc(chunk);
	assert_non_null(buf);
	int rc = 0;
	for (uint64_t off = from; off < size;) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		ts_fill(seed, off, buf, n);
		pwrite_all(spool, buf, n, (off_t)off);
		int r = up_stream_write(s, (off_t)off, buf, n);
		if (r && !rc)
			rc = r;
		off += n;
	}
	free(buf);
	return rc;
}

static struct up_pool *pool_new(uint64_t part, int max_parts, uint64_t mem, int workers,
				struct s3_client *c)
{
	struct up_config cfg = {
		.part_size = part, .max_parts = max_parts, .mem_limit = mem, .workers = workers};
	struct up_pool *p;
	assert_int_equal(up_pool_new(&cfg, c ? c : s3, &p), 0);
	return p;
}

static struct s3_client *client_new(int budget_ms, int retries)
{
	struct s3_config cfg = {
		.endpoint = srv.endpoint,
		.region = "us-east-1",
		.bucket = "lzfs-test",
		.path_style = 1,
		.creds = &creds,
		.max_retries = retries,
		.retry_base_ms = 20,
		.retry_max_ms = 200,
		.retry_budget_ms = budget_ms,
		.connect_timeout_ms = 2000,
	};
	struct s3_client *c;
	assert_int_equal(s3_client_new(&cfg, &c), 0);
	return c;
}

/* Uploads in progress on the server (its own listing), or NULL. */
static char *server_uploads(void)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "'%s' uploads '%s'", srv.server, srv.dir);
	return run_all(cmd);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	const char *lv = getenv("LZFS_TEST_LOG"); /* e.g. info, to see throughput */
	log_init("test_upload_live", lv && log_level_parse(lv) > 0 ? log_level_parse(lv) : LZ_WARN, 0);
	if (ts_s3_start(&srv, "lzfs-upload-test") < 0)
		return -1;
	s3 = client_new(20000, 6);
	return 0;
}

static int group_teardown(void **state)
{
	s3_client_free(s3);
	ts_s3_stop(&srv);
	return 0;
}

/* ---- tests ---- */

/* Sizes around the part boundary, written in small and large chunks. */
static void test_sizes(void **state)
{
	const uint64_t sizes[] = {0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 100 * MiB};
	const size_t chunks[] = {4 * KiB, 16 * MiB};
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 4, NULL);
	int aws_done = 0;
	for (size_t c = 0; c < 2; c++) {
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			char key[128];
			snprintf(key, sizeof key, "sizes/%" PRIu64 "-%zu", sizes[i], chunks[c]);
			int spool = spool_new();
			struct hook_log h;
			struct up_hooks hk;
			hooks_init(&h, &hk);
			struct up_stream *s;
			assert_int_equal(up_stream_open(p, key, spool, NULL, &hk, &s), 0);
			uint64_t seed = sizes[i] * 31 + c;
			assert_int_equal(stream_write(s, spool, seed, 0, sizes[i], chunks[c]), 0);
			assert_false(up_stream_broken(s));
			assert_int_equal(up_stream_size(s), sizes[i]);
			struct up_result res;
			assert_int_equal(up_stream_finish(s, &res), 0);
			assert_int_equal(res.size, sizes[i]);
			/* One part or less is a single PUT; beyond, parts of 5 MiB. */
			int want_parts = sizes[i] <= 5 * MiB ? 0 : (int)((sizes[i] + 5 * MiB - 1) / (5 * MiB));
			assert_int_equal(res.parts, want_parts);
			assert_int_equal(h.parts, want_parts);
			assert_int_equal(h.created, want_parts ? 1 : 0);
			verify(key, spool, &res);
			if (sizes[i] == 5 * MiB + 1 && !aws_done++)
				verify_aws(key, spool);
			close(spool);
		}
	}
	struct up_pool_stats st;
	up_pool_stats(p, &st);
	assert_int_equal(st.backlog_bytes, 0);
	assert_int_equal(st.parts_in_flight, 0);
	assert_int_equal(st.parts_queued, 0);
	up_pool_free(p);
}

/* Part sizes double every max_parts/20 parts; here every part. The sizes
 * are checked on the server (ListParts) before completion. */
struct listed {
	uint64_t size[64];
	int n;
};

static int on_listed(const struct s3_part *part, void *arg)
{
	struct listed *l = arg;
	if (part->number >= 1 && part->number <= 64)
		l->size[part->number - 1] = part->size;
	l->n++;
	return 0;
}

static void test_part_growth(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 20, 512 * MiB, 4, NULL);
	struct up_config cfg = {.part_size = 5 * MiB, .max_parts = 20};
	const uint64_t size = 200 * MiB;
	int spool = spool_new();
	struct hook_log h;
	struct up_hooks hk;
	hooks_init(&h, &hk);
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, "growth/200m", spool, NULL, &hk, &s), 0);
	assert_int_equal(stream_write(s, spool, 77, 0, size, 1 * MiB), 0);

	/* Every part but the last is queued; wait until S3 has them. */
	struct up_pool_stats st;
	for (int i = 0; i < 600; i++) {
		up_pool_stats(p, &st);
		if (st.parts_in_flight == 0 && st.parts_queued == 0)
			break;
		usleep(50000);
	}
	assert_int_equal(h.created, 1);
	struct listed l = {0};
	assert_int_equal(s3_mpu_list_parts(s3, "growth/200m", h.upload_id, on_listed, &l, NULL), 0);

	uint64_t off = 0;
	int n = 0;
	while (off < size) {
		uint64_t ps = up_part_size(&cfg, n + 1);
		if (n > 0)
			assert_int_equal(ps, 2 * up_part_size(&cfg, n));
		ps = size - off < ps ? size - off : ps;
		off += ps;
		n++;
	}
	assert_true(n < (int)(size / (5 * MiB))); /* fewer parts than fixed 5 MiB ones */
	assert_int_equal(l.n, n - 1);             /* all but the last */
	off = 0;
	for (int i = 0; i < n - 1; i++) {
		assert_int_equal(l.size[i], up_part_size(&cfg, i + 1));
		off += l.size[i];
	}

	struct up_result res;
	assert_int_equal(up_stream_finish(s, &res), 0);
	assert_int_equal(res.parts, n);
	assert_int_equal(h.parts, n);
	for (int i = 0; i < n - 1; i++)
		assert_int_equal(h.part_size[i], up_part_size(&cfg, i + 1));
	assert_int_equal(h.part_size[n - 1], size - off);
	verify("growth/200m", spool, &res);
	close(spool);
	up_pool_free(p);
}

/* A write out of order breaks the stream; up_file() then uploads the file. */
static void test_out_of_order(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 4, NULL);
	const char *key = "order/file";
	int spool = spool_new();
	struct hook_log h;
	struct up_hooks hk;
	hooks_init(&h, &hk);
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, key, spool, NULL, &hk, &s), 0);
	assert_int_equal(stream_write(s, spool, 5, 0, 12 * MiB, 64 * KiB), 0);
	assert_false(up_stream_broken(s));

	/* Rewrite 1 MiB at 3 MiB (a seek back) with other bytes. */
	unsigned char *buf = malloc(MiB);
	ts_fill(6, 0, buf, MiB);
	pwrite_all(spool, buf, MiB, 3 * MiB);
	assert_int_equal(up_stream_write(s, 3 * MiB, buf, MiB), -ESPIPE);
	assert_true(up_stream_broken(s));
	/* Later writes are ignored, once reported. */
	ts_fill(5, 12 * MiB, buf, MiB);
	pwrite_all(spool, buf, MiB, 12 * MiB);
	assert_int_equal(up_stream_write(s, 12 * MiB, buf, MiB), 0);
	free(buf);
	struct up_result res;
	assert_true(up_stream_finish(s, &res) < 0);

	/* The multipart upload the stream had begun is gone. */
	assert_int_equal(h.created, 1);
	char *ups = server_uploads();
	assert_non_null(ups);
	assert_null(strstr(ups, h.upload_id));
	free(ups);

	assert_int_equal(up_file(p, spool, key, NULL, NULL, &res), 0);
	assert_int_equal(res.size, 13 * MiB);
	assert_int_equal(res.parts, 3);
	verify(key, spool, &res);
	close(spool);

	/* A sparse write (past the end) breaks too; a truncate that extends
	 * the file does not, its zeros are part of the object. */
	spool = spool_new();
	assert_int_equal(up_stream_open(p, "order/sparse", spool, NULL, NULL, &s), 0);
	assert_int_equal(stream_write(s, spool, 8, 0, 100, 100), 0);
	unsigned char b[10] = {1, 2, 3};
	pwrite_all(spool, b, sizeof b, 200);
	assert_int_equal(up_stream_write(s, 200, b, sizeof b), -ESPIPE);
	up_stream_abort(s);
	close(spool);

	spool = spool_new();
	assert_int_equal(up_stream_open(p, "order/extended", spool, NULL, NULL, &s), 0);
	assert_int_equal(ftruncate(spool, 6 * MiB), 0);
	up_stream_truncate(s, 6 * MiB);
	assert_int_equal(stream_write(s, spool, 9, 0, 1 * MiB, 64 * KiB), 0);
	pwrite_all(spool, b, sizeof b, 2 * MiB); /* into the extended zeros */
	assert_int_equal(up_stream_write(s, 2 * MiB, b, sizeof b), 0);
	assert_false(up_stream_broken(s));
	assert_int_equal(up_stream_finish(s, &res), 0);
	assert_int_equal(res.size, 6 * MiB);
	assert_int_equal(res.parts, 2);
	verify("order/extended", spool, &res);
	close(spool);

	/* A truncate inside the part not yet queued does not break. */
	spool = spool_new();
	assert_int_equal(up_stream_open(p, "order/shrunk", spool, NULL, NULL, &s), 0);
	assert_int_equal(stream_write(s, spool, 10, 0, 7 * MiB, 64 * KiB), 0);
	assert_int_equal(ftruncate(spool, 6 * MiB), 0);
	up_stream_truncate(s, 6 * MiB);
	assert_false(up_stream_broken(s));
	assert_int_equal(stream_write(s, spool, 11, 6 * MiB, 8 * MiB, 64 * KiB), 0);
	/* ... but one into a queued part does. */
	up_stream_truncate(s, 4 * MiB);
	assert_true(up_stream_broken(s));
	up_stream_abort(s);
	close(spool);

	spool = spool_new();
	assert_int_equal(up_stream_open(p, "order/shrunk2", spool, NULL, NULL, &s), 0);
	assert_int_equal(stream_write(s, spool, 12, 0, 7 * MiB, 64 * KiB), 0);
	assert_int_equal(ftruncate(spool, 6 * MiB), 0);
	up_stream_truncate(s, 6 * MiB);
	assert_int_equal(stream_write(s, spool, 13, 6 * MiB, 8 * MiB, 64 * KiB), 0);
	assert_int_equal(up_stream_finish(s, &res), 0);
	assert_int_equal(res.size, 8 * MiB);
	verify("order/shrunk2", spool, &res);
	close(spool);
	up_pool_free(p);
}

/* up_file() alone, below and above one part, and a file with holes. */
static void test_up_file(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 4, NULL);
	const uint64_t sizes[] = {0, 3 * MiB, 23 * MiB + 7};
	unsigned char *buf = malloc(MiB);
	for (size_t i = 0; i < 3; i++) {
		int fd = spool_new();
		for (uint64_t off = 0; off < sizes[i]; off += MiB) {
			size_t n = sizes[i] - off < MiB ? (size_t)(sizes[i] - off) : MiB;
			ts_fill(40 + i, off, buf, n);
			pwrite_all(fd, buf, n, (off_t)off);
		}
		char key[64];
		snprintf(key, sizeof key, "file/%zu", i);
		struct hook_log h;
		struct up_hooks hk;
		hooks_init(&h, &hk);
		struct up_result res;
		assert_int_equal(up_file(p, fd, key, NULL, &hk, &res), 0);
		assert_int_equal(res.size, sizes[i]);
		assert_int_equal(res.parts, sizes[i] > 5 * MiB ? 5 : 0);
		assert_int_equal(h.parts, res.parts);
		verify(key, fd, &res);
		close(fd);
	}
	free(buf);
	up_pool_free(p);
}

/* Content type, metadata and the SHA-256 checksum reach S3, for a single
 * PUT and a multipart upload, though the caller's opts are gone by then. */
static struct up_stream *open_with_opts(struct up_pool *p, const char *key, int spool)
{
	char ct[32], name[32], value[32];
	snprintf(ct, sizeof ct, "text/x-lzfs");
	snprintf(name, sizeof name, "instrument");
	snprintf(value, sizeof value, "%s", key);
	struct s3_meta meta[1] = {{.name = name, .value = value}};
	struct s3_put_opts opts = {.content_type = ct, .meta = meta, .nmeta = 1,
				   .checksum_sha256 = 1};
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, key, spool, &opts, NULL, &s), 0);
	memset(ct, 'x', sizeof ct - 1);
	memset(name, 'x', sizeof name - 1);
	memset(value, 'x', sizeof value - 1);
	return s;
}

static void test_opts(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 2, NULL);
	const char *keys[] = {"opts/small", "opts/multi"};
	const uint64_t sizes[] = {1000, 11 * MiB};
	for (int i = 0; i < 2; i++) {
		int spool = spool_new();
		struct up_stream *s = open_with_opts(p, keys[i], spool);
		assert_int_equal(stream_write(s, spool, 50 + i, 0, sizes[i], MiB), 0);
		struct up_result res;
		assert_int_equal(up_stream_finish(s, &res), 0);
		assert_int_equal(res.parts, i ? 3 : 0);
		verify(keys[i], spool, &res);
		struct s3_object_info info = {0};
		assert_int_equal(s3_head_object(s3, keys[i], &info, NULL), 0);
		assert_string_equal(info.content_type, "text/x-lzfs");
		char want[128];
		snprintf(want, sizeof want, "instrument=%s\n", keys[i]);
		assert_non_null(info.meta);
		assert_non_null(strstr(info.meta, want));
		if (i == 0) {
			/* S3 checked it (BadDigest otherwise) and kept it. The
			 * client sends none for multipart uploads. */
			unsigned char d[32];
			char b64[64];
			assert_int_equal(hash_unhex(res.sha256, d, 32), 0);
			hash_base64(d, 32, b64);
			assert_string_equal(info.checksum_sha256, b64);
		}
		s3_object_info_clear(&info);
		close(spool);
	}
	up_pool_free(p);
}

struct writer {
	struct up_pool *p;
	char key[64];
	uint64_t seed, size;
	int spool;
	int rc;
	struct up_result res;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct up_stream *s;
	w->rc = up_stream_open(w->p, w->key, w->spool, NULL, NULL, &s);
	if (w->rc)
		return NULL;
	unsigned char *buf = malloc(MiB);
	for (uint64_t off = 0; off < w->size; off += MiB) {
		size_t n = w->size - off < MiB ? (size_t)(w->size - off) : MiB;
		ts_fill(w->seed, off, buf, n);
		if (pwrite(w->spool, buf, n, (off_t)off) != (ssize_t)n)
			w->rc = -EIO;
		int r = up_stream_write(s, (off_t)off, buf, n);
		if (r && !w->rc)
			w->rc = r;
	}
	free(buf);
	int r = up_stream_finish(s, &w->res);
	if (!w->rc)
		w->rc = r;
	return NULL;
}

static void run_writers(struct up_pool *p, const char *prefix, int n, uint64_t size)
{
	struct writer w[16];
	pthread_t t[16];
	assert_true(n <= 16);
	for (int i = 0; i < n; i++) {
		w[i] = (struct writer){.p = p, .seed = 1000 + i, .size = size, .spool = spool_new()};
		snprintf(w[i].key, sizeof w[i].key, "%s/%d", prefix, i);
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < n; i++) {
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(w[i].res.size, size);
		verify(w[i].key, w[i].spool, &w[i].res);
		close(w[i].spool);
	}
}

/* 8 streams of 64 MiB through 32 MiB of backlog. */
static void test_concurrent_backpressure(void **state)
{
	const uint64_t part = 5 * MiB, mem = 32 * MiB;
	struct up_pool *p = pool_new(part, 0, mem, 4, NULL);
	run_writers(p, "conc", 8, 64 * MiB);
	struct up_pool_stats st;
	up_pool_stats(p, &st);
	print_message("# backlog peak %" PRIu64 " MiB, %" PRIu64 " throttle waits, %" PRIu64
		      " parts\n", (uint64_t)(st.backlog_peak / MiB), st.throttle_waits, st.parts_uploaded);
	assert_true(st.backlog_peak <= mem + part);
	assert_true(st.backlog_peak > 0);
	assert_true(st.throttle_waits > 0); /* the writers did outrun S3 */
	assert_int_equal(st.parts_uploaded, 8 * 13);
	assert_int_equal(st.bytes_uploaded, 8 * 64 * MiB);
	assert_int_equal(st.backlog_bytes, 0);
	up_pool_free(p);
}

/* One in five requests answered 503: the client's retries absorb them. */
static void test_injected_503(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 4, NULL);
	assert_int_equal(ts_s3_fault(&srv, "{\"error_rate\":0.2,\"error_status\":503}"), 0);
	run_writers(p, "flaky", 4, 23 * MiB);
	/* up_file through the same faults. */
	int fd = spool_new();
	unsigned char *buf = malloc(MiB);
	for (uint64_t off = 0; off < 12 * MiB; off += MiB) {
		ts_fill(99, off, buf, MiB);
		pwrite_all(fd, buf, MiB, (off_t)off);
	}
	free(buf);
	struct up_result res;
	assert_int_equal(up_file(p, fd, "flaky/file", NULL, NULL, &res), 0);
	assert_int_equal(ts_s3_fault(&srv, "off"), 0);
	verify("flaky/file", fd, &res);
	close(fd);
	struct s3_stats ss;
	s3_get_stats(s3, &ss);
	assert_true(ss.retries > 0);
	up_pool_free(p);
}

/* The server goes away mid-stream for longer than the client's retry
 * budget: finish fails cleanly and the upload is aborted, or is left for
 * the caller (hooks gave it the upload id) to abort once S3 is back. */
static void test_server_down(void **state)
{
	struct s3_client *c = client_new(1500, 3);
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 2, c);
	const char *key = "down/file";
	int spool = spool_new();
	struct hook_log h;
	struct up_hooks hk;
	hooks_init(&h, &hk);
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, key, spool, NULL, &hk, &s), 0);
	assert_int_equal(stream_write(s, spool, 3, 0, 11 * MiB, MiB), 0);
	for (int i = 0; i < 200 && hook_parts(&h) < 2; i++)
		usleep(50000);
	assert_int_equal(hook_parts(&h), 2); /* [0, 10 MiB) is on S3 */

	assert_int_equal(ts_s3_fault(&srv, "{\"down_secs\":6}"), 0);
	int rc = stream_write(s, spool, 3, 11 * MiB, 30 * MiB, MiB);
	assert_true(rc == 0 || rc == -EIO);
	struct up_result res;
	rc = up_stream_finish(s, &res);
	assert_true(rc < 0);
	print_message("# finish while S3 was down: %s\n", strerror(-rc));

	/* S3 is back: whatever is left of the upload can be aborted by id. */
	for (int i = 0; i < 40; i++) {
		if (s3_check_bucket(c, NULL) == 0)
			break;
		usleep(500000);
	}
	assert_int_equal(ts_s3_fault(&srv, "off"), 0);
	assert_int_equal(h.created, 1);
	assert_int_equal(s3_mpu_abort(s3, key, h.upload_id, NULL), 0);
	char *ups = server_uploads();
	assert_non_null(ups);
	assert_null(strstr(ups, h.upload_id));
	free(ups);

	/* And the file still goes up from the spool. */
	assert_int_equal(up_file(p, spool, key, NULL, NULL, &res), 0);
	verify(key, spool, &res);
	close(spool);
	up_pool_free(p);
	s3_client_free(c);
}

/* Abort with parts in flight: nothing of the object or its upload stays. */
static void test_abort(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 0, 64 * MiB, 4, NULL);
	int spool = spool_new();
	struct hook_log h;
	struct up_hooks hk;
	hooks_init(&h, &hk);
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, "abort/file", spool, NULL, &hk, &s), 0);
	assert_int_equal(stream_write(s, spool, 21, 0, 40 * MiB, MiB), 0);
	struct up_pool_stats st;
	up_pool_stats(p, &st);
	assert_true(st.parts_in_flight + st.parts_queued > 0 || st.parts_uploaded > 0);
	up_stream_abort(s);
	up_pool_stats(p, &st);
	assert_int_equal(st.backlog_bytes, 0);
	assert_int_equal(st.parts_in_flight, 0);
	assert_int_equal(st.parts_queued, 0);
	assert_int_equal(h.created, 1);
	char *ups = server_uploads();
	assert_non_null(ups);
	assert_null(strstr(ups, h.upload_id));
	free(ups);
	struct s3_object_info info = {0};
	assert_int_equal(s3_head_object(s3, "abort/file", &info, NULL), -ENOENT);
	close(spool);
	up_pool_free(p);
}

/* An object past max_parts parts fails with -EFBIG; nothing is left. */
static void test_too_many_parts(void **state)
{
	struct up_pool *p = pool_new(5 * MiB, 2, 64 * MiB, 2, NULL); /* 5 + 10 MiB */
	int spool = spool_new();
	struct up_stream *s;
	assert_int_equal(up_stream_open(p, "big/file", spool, NULL, NULL, &s), 0);
	assert_int_equal(stream_write(s, spool, 22, 0, 15 * MiB, MiB), 0);
	assert_false(up_stream_broken(s));
	assert_int_equal(stream_write(s, spool, 22, 15 * MiB, 16 * MiB, MiB), -EFBIG);
	assert_true(up_stream_broken(s));
	struct up_result res;
	assert_int_equal(up_stream_finish(s, &res), -EFBIG);
	assert_int_equal(up_file(p, spool, "big/file", NULL, NULL, &res), -EFBIG);
	/* Exactly max_parts parts is fine. */
	assert_int_equal(ftruncate(spool, 15 * MiB), 0);
	assert_int_equal(up_file(p, spool, "big/file", NULL, NULL, &res), 0);
	assert_int_equal(res.parts, 2);
	verify("big/file", spool, &res);
	close(spool);
	up_pool_free(p);
}

/* A file that changes while up_file() reads it is not uploaded. */
struct appender {
	int fd;
	useconds_t after;
};

static void *append_main(void *arg)
{
	struct appender *a = arg;
	usleep(a->after);
	struct stat st;
	if (fstat(a->fd, &st) == 0 && pwrite(a->fd, "more", 4, st.st_size) != 4)
		abort();
	return NULL;
}

static void test_file_changes(void **state)
{
	/* One part in flight at a time, each slowed: up_file() takes ~2 s. */
	struct up_pool *p = pool_new(5 * MiB, 0, 5 * MiB, 2, NULL);
	int fd = spool_new();
	unsigned char *buf = malloc(MiB);
	for (uint64_t off = 0; off < 30 * MiB; off += MiB) {
		ts_fill(23, off, buf, MiB);
		pwrite_all(fd, buf, MiB, (off_t)off);
	}
	free(buf);
	assert_int_equal(ts_s3_fault(&srv, "{\"latency_ms\":300,\"ops\":[\"UploadPart\"]}"), 0);
	struct appender a = {.fd = fd, .after = 300000};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, append_main, &a), 0);
	struct up_result res;
	int rc = up_file(p, fd, "changing/file", NULL, NULL, &res);
	pthread_join(t, NULL);
	assert_int_equal(ts_s3_fault(&srv, "off"), 0);
	assert_int_equal(rc, -EAGAIN);
	struct s3_object_info info = {0};
	assert_int_equal(s3_head_object(s3, "changing/file", &info, NULL), -ENOENT);
	close(fd);
	up_pool_free(p);
}

/* Every test finished or aborted its uploads: none is left on the server. */
static void test_no_uploads_left(void **state)
{
	char *ups = server_uploads();
	assert_non_null(ups);
	size_t n = strlen(ups);
	while (n > 0 && (ups[n - 1] == '\n' || ups[n - 1] == ' '))
		ups[--n] = '\0';
	assert_string_equal(ups, "[]");
	free(ups);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_part_growth),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_up_file),
		cmocka_unit_test(test_opts),
		cmocka_unit_test(test_concurrent_backpressure),
		cmocka_unit_test(test_injected_503),
		cmocka_unit_test(test_server_down),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_too_many_parts),
		cmocka_unit_test(test_file_changes),
		cmocka_unit_test(test_no_uploads_left),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
