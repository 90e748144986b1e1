/* test_s3_retry.c - the retry decision, the errno mapping and the backoff
 * bounds of the S3 client (s3retry.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <curl/curl.h>

#include "s3retry.h"

static const struct {
	int curl;
	int os_errno;
	long status;
	const char *code;
	int retry;
	int err;
} table[] = {
	/* success */
	{CURLE_OK, 0, 200, "", 0, 0},
	{CURLE_OK, 0, 204, NULL, 0, 0},
	{CURLE_OK, 0, 206, NULL, 0, 0},
	/* server trouble: retried, -EIO at the end */
	{CURLE_OK, 0, 500, "InternalError", 1, -EIO},
	{CURLE_OK, 0, 502, "", 1, -EIO},
	{CURLE_OK, 0, 503, "SlowDown", 1, -EIO},
	{CURLE_OK, 0, 503, "ServiceUnavailable", 1, -EIO},
	{CURLE_OK, 0, 504, NULL, 1, -EIO},
	{CURLE_OK, 0, 429, "", 1, -EIO},
	{CURLE_OK, 0, 400, "RequestTimeout", 1, -ETIMEDOUT},
	{CURLE_OK, 0, 409, "OperationAborted", 1, -EBUSY},
	{CURLE_OK, 0, 501, "NotImplemented", 0, -EOPNOTSUPP},
	/* a 200 carrying an error document (CompleteMultipartUpload, copies) */
	{CURLE_OK, 0, 200, "InternalError", 1, -EIO},
	{CURLE_OK, 0, 200, "SlowDown", 1, -EIO},
	{CURLE_OK, 0, 200, "AccessDenied", 0, -EIO},
	/* client errors: never retried */
	{CURLE_OK, 0, 404, "NoSuchKey", 0, -ENOENT},
	{CURLE_OK, 0, 404, "NoSuchUpload", 0, -ENOENT},
	{CURLE_OK, 0, 404, "NoSuchBucket", 0, -ENXIO},
	{CURLE_OK, 0, 404, "", 0, -ENOENT},
	{CURLE_OK, 0, 403, "SignatureDoesNotMatch", 0, -EACCES},
	{CURLE_OK, 0, 403, "AccessDenied", 0, -EACCES},
	{CURLE_OK, 0, 403, "", 0, -EACCES},
	{CURLE_OK, 0, 403, "RequestTimeTooSkewed", 0, -EACCES},
	{CURLE_OK, 0, 400, "EntityTooSmall", 0, -EINVAL},
	{CURLE_OK, 0, 400, "InvalidPart", 0, -EINVAL},
	{CURLE_OK, 0, 400, "InvalidPartOrder", 0, -EINVAL},
	{CURLE_OK, 0, 400, "BadDigest", 0, -EBADMSG},
	{CURLE_OK, 0, 400, "XAmzContentSHA256Mismatch", 0, -EBADMSG},
	{CURLE_OK, 0, 400, "InvalidArgument", 0, -EINVAL},
	{CURLE_OK, 0, 400, "EntityTooLarge", 0, -EFBIG},
	{CURLE_OK, 0, 416, "InvalidRange", 0, -ERANGE},
	{CURLE_OK, 0, 405, "MethodNotAllowed", 0, -EOPNOTSUPP},
	/* transport */
	{CURLE_COULDNT_CONNECT, ECONNREFUSED, 0, NULL, 1, -ECONNREFUSED},
	{CURLE_COULDNT_CONNECT, EHOSTUNREACH, 0, NULL, 1, -EHOSTUNREACH},
	{CURLE_COULDNT_CONNECT, ENETUNREACH, 0, NULL, 1, -EHOSTUNREACH},
	{CURLE_COULDNT_RESOLVE_HOST, 0, 0, NULL, 1, -EHOSTUNREACH},
	{CURLE_OPERATION_TIMEDOUT, 0, 0, NULL, 1, -ETIMEDOUT},
	{CURLE_SEND_ERROR, EPIPE, 0, NULL, 1, -EIO},
	{CURLE_RECV_ERROR, ECONNRESET, 0, NULL, 1, -EIO},
	{CURLE_PARTIAL_FILE, 0, 200, NULL, 1, -EIO},
	{CURLE_GOT_NOTHING, 0, 0, NULL, 1, -EIO},
	{CURLE_SSL_CONNECT_ERROR, 0, 0, NULL, 1, -EIO},
	{CURLE_PEER_FAILED_VERIFICATION, 0, 0, NULL, 0, -EPROTO},
	{CURLE_WEIRD_SERVER_REPLY, 0, 0, NULL, 0, -EPROTO},
	{CURLE_ABORTED_BY_CALLBACK, 0, 0, NULL, 0, -EIO},
	{CURLE_WRITE_ERROR, 0, 200, NULL, 0, -EIO},
	{CURLE_OUT_OF_MEMORY, 0, 0, NULL, 0, -ENOMEM},
};

static void test_decision_table(void **state)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		int r = s3r_retryable(table[i].curl, table[i].status, table[i].code);
		int e = s3r_errno(table[i].curl, table[i].os_errno, table[i].status, table[i].code);
		if (r != table[i].retry || e != table[i].err)
			print_error("row %zu: curl %d status %ld code %s: retry %d errno %d\n", i,
				    table[i].curl, table[i].status, table[i].code ? table[i].code : "-", r, e);
		assert_int_equal(r, table[i].retry);
		assert_int_equal(e, table[i].err);
	}
}

static void test_answer_lost(void **state)
{
	/* the request may have been processed: */
	assert_true(s3r_answer_lost(CURLE_OPERATION_TIMEDOUT));
	assert_true(s3r_answer_lost(CURLE_RECV_ERROR));
	assert_true(s3r_answer_lost(CURLE_SEND_ERROR));
	assert_true(s3r_answer_lost(CURLE_GOT_NOTHING));
	assert_true(s3r_answer_lost(CURLE_PARTIAL_FILE));
	/* it never left: */
	assert_false(s3r_answer_lost(CURLE_COULDNT_CONNECT));
	assert_false(s3r_answer_lost(CURLE_COULDNT_RESOLVE_HOST));
	assert_false(s3r_answer_lost(CURLE_OK));
}

static void test_backoff_bounds(void **state)
{
	const int base = 100, cap = 5000;
	uint64_t seed = 12345;
	for (int retry = 0; retry < 40; retry++) {
		uint64_t ceil = (uint64_t)base << (retry < 20 ? retry : 20);
		if (ceil > (uint64_t)cap)
			ceil = cap;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int i = 0; i < 2000; i++) {
			uint64_t d = s3r_backoff_ms(retry, base, cap, s3r_mix(seed++));
			assert_true(d <= ceil);
			if (d < lo)
				lo = d;
			if (d > hi)
				hi = d;
		}
		/* full jitter: the draws spread over the whole window */
		assert_true(lo <= ceil / 10);
		assert_true(hi >= ceil - ceil / 10);
	}
	/* the extremes of the random input hit the ends of the window */
	assert_int_equal(s3r_backoff_ms(0, 100, 5000, 0), 0);
	assert_int_equal(s3r_backoff_ms(0, 100, 5000, 100), 100);
	assert_int_equal(s3r_backoff_ms(3, 100, 5000, 800), 800);
	assert_int_equal(s3r_backoff_ms(3, 100, 5000, 801), 0);
	assert_int_equal(s3r_backoff_ms(10, 100, 5000, 5000), 5000);
	/* no overflow for absurd retry counts */
	assert_true(s3r_backoff_ms(1000, 100, 5000, UINT64_MAX) <= 5000);
	assert_int_equal(s3r_backoff_ms(2, 0, 5000, 7), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decision_table),
		cmocka_unit_test(test_answer_lost),
		cmocka_unit_test(test_backoff_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
