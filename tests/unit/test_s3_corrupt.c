/* test_s3_corrupt.c - the S3 client against answers the test S3 damages
 * after applying the request (tests/s3 fault "corrupt": a truncated XML
 * body, an HTML page with status 200, a 20 MiB body, a wrong ETag). Each
 * must give a clear error, or (CompleteMultipartUpload) be resolved to the
 * right object; none may be taken for success with wrong data.
 * Runs from the repository root (tests/run does). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "s3.h"
#include "testsrv.h"

#define MiB (1024 * 1024)
#define BUCKET "lzfs-test"

static struct {
	struct ts_s3 srv;
	struct s3_creds creds;
	struct s3_client *c;
} g;

/* One damaged answer for the next request of operation op. */
static void corrupt(const char *kind, const char *op)
{
	char spec[160];
	snprintf(spec, sizeof spec, "{\"corrupt_rate\":1,\"corrupt\":\"%s\",\"ops\":[\"%s\"],\"count\":1}",
		 kind, op);
	assert_int_equal(ts_s3_fault(&g.srv, spec), 0);
}

static void faults_off(void)
{
	assert_int_equal(ts_s3_fault(&g.srv, "off"), 0);
}

static void fill(unsigned char *p, size_t n, uint64_t seed) { ts_fill(seed, 0, p, n); }

static int setup(void **state)
{
	if (ts_s3_start(&g.srv, "test_s3_corrupt") < 0)
		return -1;
	g.creds.access_key = "lzfstest";
	g.creds.secret_key = "lzfstestsecret";
	struct s3_config cfg = {
		.endpoint = g.srv.endpoint,
		.bucket = BUCKET,
		.path_style = 1,
		.creds = &g.creds,
		.max_connections = 4,
		.retry_base_ms = 20,
		.retry_max_ms = 200,
		.retry_budget_ms = 10000,
		.connect_timeout_ms = 2000,
		.low_speed_secs = 5,
	};
	return s3_client_new(&cfg, &g.c);
}

static int teardown(void **state)
{
	s3_client_free(g.c);
	ts_s3_stop(&g.srv);
	return 0;
}

/* rc is a clear failure: -EPROTO (or -EBADMSG) and a message saying what. */
static void assert_clear_error(int rc, const struct s3_status *st, int want, const char *words)
{
	if (rc != want || !strstr(st->message, words))
		print_error("rc %d (want %d), message \"%s\" (want \"%s\")\n", rc, want, st->message, words);
	assert_int_equal(rc, want);
	assert_non_null(strstr(st->message, words));
}

static const char *const body_kinds[] = {"truncate", "garbage", "huge"};
static const char *const body_words[] = {"malformed XML", "<html>", "larger than"};

static void test_create(void **state)
{
	for (int k = 0; k < 3; k++) {
		char *id = NULL;
		struct s3_status st;
		corrupt(body_kinds[k], "CreateMultipartUpload");
		int rc = s3_mpu_create(g.c, "corrupt/create", NULL, &id, &st);
		assert_clear_error(rc, &st, -EPROTO, body_words[k]);
		assert_null(id);
	}
	faults_off();
}

static void test_list(void **state)
{
	unsigned char b[10];
	struct s3_body body = {.buf = b, .fd = -1, .len = sizeof b};
	for (int i = 0; i < 3; i++) {
		char key[64];
		snprintf(key, sizeof key, "corrupt/list/%d", i);
		assert_int_equal(s3_put_object(g.c, key, &body, NULL, NULL, NULL), 0);
	}
	for (int k = 0; k < 3; k++) {
		struct s3_status st;
		corrupt(body_kinds[k], "ListObjectsV2");
		int rc = s3_list(g.c, "corrupt/list/", NULL, NULL, NULL, &st);
		assert_clear_error(rc, &st, -EPROTO, body_words[k]);
	}
	faults_off();
}

static void test_copy(void **state)
{
	char etag[S3_ETAG_MAX];
	for (int k = 0; k < 3; k++) {
		struct s3_status st;
		corrupt(body_kinds[k], "CopyObject");
		int rc = s3_copy_object(g.c, "corrupt/list/0", "corrupt/copy", etag, &st);
		assert_clear_error(rc, &st, -EPROTO, body_words[k]);
	}
	faults_off();
}

/* A wrong ETag is caught wherever the client knows the body's MD5. */
static void test_wrong_etag_put_and_part(void **state)
{
	unsigned char data[5000], md5[16];
	fill(data, sizeof data, 1);
	hash_md5(data, sizeof data, md5);
	struct s3_body body = {.buf = data, .fd = -1, .len = sizeof data, .md5 = md5};
	char etag[S3_ETAG_MAX];
	struct s3_status st;
	corrupt("etag", "PutObject");
	assert_clear_error(s3_put_object(g.c, "corrupt/put", &body, NULL, etag, &st), &st, -EBADMSG,
			   "is not the body's MD5");

	char *id = NULL;
	assert_int_equal(s3_mpu_create(g.c, "corrupt/part", NULL, &id, &st), 0);
	corrupt("etag", "UploadPart");
	assert_clear_error(s3_mpu_upload_part(g.c, "corrupt/part", id, 1, &body, etag, &st), &st,
			   -EBADMSG, "is not the body's MD5");
	assert_int_equal(s3_mpu_abort(g.c, "corrupt/part", id, &st), 0);
	free(id);
	faults_off();
}

/* A multipart upload of two parts; returns the upload id, fills parts. */
static char *two_parts(const char *key, struct s3_part parts[2], unsigned char *data, size_t n)
{
	char *id = NULL;
	struct s3_status st;
	assert_int_equal(s3_mpu_create(g.c, key, NULL, &id, &st), 0);
	size_t half = 5 * MiB;
	for (int i = 0; i < 2; i++) {
		memset(&parts[i], 0, sizeof parts[i]);
		parts[i].number = i + 1;
		size_t off = i ? half : 0, len = i ? n - half : half;
		hash_md5(data + off, len, parts[i].md5);
		struct s3_body b = {.buf = data + off, .fd = -1, .len = len, .md5 = parts[i].md5};
		assert_int_equal(s3_mpu_upload_part(g.c, key, id, i + 1, &b, parts[i].etag, &st), 0);
		parts[i].size = len;
	}
	return id;
}

/* CompleteMultipartUpload is applied before its answer is damaged: the
 * client may resolve it (HEAD) or fail clearly, but it may never return 0
 * with an ETag that is not the object's. */
static void test_complete(void **state)
{
	size_t n = 5 * MiB + 4321;
	unsigned char *data = malloc(n);
	assert_non_null(data);
	fill(data, n, 2);
	const char *kinds[] = {"truncate", "garbage", "huge", "etag"};
	for (int k = 0; k < 4; k++) {
		for (int with_md5 = 0; with_md5 < 2; with_md5++) {
			char key[64];
			snprintf(key, sizeof key, "corrupt/complete/%s/%d", kinds[k], with_md5);
			struct s3_part parts[2];
			char *id = two_parts(key, parts, data, n);
			if (!with_md5)
				memset(parts[0].md5, 0, sizeof parts[0].md5); /* the MD5s unknown */
			char want[S3_ETAG_MAX], etag[S3_ETAG_MAX] = "";
			s3_multipart_etag((struct s3_part[]){parts[0], parts[1]}, 2, want);
			struct s3_status st;
			corrupt(kinds[k], "CompleteMultipartUpload");
			int rc = s3_mpu_complete(g.c, key, id, parts, 2, etag, &st);
			struct s3_object_info info;
			assert_int_equal(s3_head_object(g.c, key, &info, NULL), 0);
			s3_object_info_clear(&info);
			print_message("# complete, %s answer, part MD5s %s: rc %d, etag %s, message \"%s\"\n",
				      kinds[k], with_md5 ? "known" : "unknown", rc, etag, st.message);
			if (rc == 0) {
				/* taken as done: then the ETag must be the object's */
				if (strcasecmp(etag, info.etag) != 0 && !(with_md5 == 0 && k == 3))
					fail_msg("complete returned 0 with ETag %s, the object has %s", etag,
						 info.etag);
			} else {
				assert_true(st.message[0] != '\0');
			}
			if (with_md5 && k == 3)
				assert_int_equal(rc, -EBADMSG); /* a wrong ETag, detected */
			free(id);
		}
	}
	free(data);
	faults_off();
}

int main(void)
{
	log_init("test_s3_corrupt", LZ_INFO, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_wrong_etag_put_and_part),
		cmocka_unit_test(test_complete),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
