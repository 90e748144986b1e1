/* s3retry.c - see s3retry.h. */
#include "s3retry.h"

#include <errno.h>
#include <string.h>
#include <curl/curl.h>

static int code_is(const char *code, const char *name)
{
	return code && strcmp(code, name) == 0;
}

static int transient_code(const char *code)
{
	return code_is(code, "SlowDown") || code_is(code, "InternalError") ||
	       code_is(code, "RequestTimeout") || code_is(code, "ServiceUnavailable") ||
	       code_is(code, "OperationAborted");
}

int s3r_retryable(int curl_code, long http_status, const char *s3_code)
{
	switch (curl_code) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
	if (transient_code(s3_code))
		return 1;
	if (http_status == 429 || (http_status >= 500 && http_status != 501))
		return 1;
	return 0;
}

int s3r_answer_lost(int curl_code)
{
	switch (curl_code) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

uint64_t s3r_backoff_ms(int retry, int base_ms, int max_ms, uint64_t random)
{
	if (base_ms <= 0 || max_ms <= 0)
		return 0;
	uint64_t cap = (uint64_t)max_ms;
	uint64_t ceil = (uint64_t)base_ms;
	for (int i = 0; i < retry && ceil < cap; i++)
		ceil *= 2;
	if (ceil > cap)
		ceil = cap;
	return random % (ceil + 1);
}

uint64_t s3r_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

int s3r_errno(int curl_code, int os_errno, long http_status, const char *s3_code)
{
	switch (curl_code) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_CONNECT:
		if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH)
			return -EHOSTUNREACH;
		if (os_errno == ETIMEDOUT)
			return -ETIMEDOUT;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
	if (code_is(s3_code, "NoSuchBucket"))
		return -ENXIO;
	if (code_is(s3_code, "NoSuchKey") || code_is(s3_code, "NoSuchUpload"))
		return -ENOENT;
	if (code_is(s3_code, "BadDigest") || code_is(s3_code, "XAmzContentSHA256Mismatch") ||
	    code_is(s3_code, "InvalidDigest"))
		return -EBADMSG;
	if (code_is(s3_code, "EntityTooSmall") || code_is(s3_code, "InvalidPart") ||
	    code_is(s3_code, "InvalidPartOrder") || code_is(s3_code, "InvalidArgument"))
		return -EINVAL;
	if (code_is(s3_code, "EntityTooLarge"))
		return -EFBIG;
	if (code_is(s3_code, "RequestTimeout"))
		return -ETIMEDOUT;
	if (http_status >= 200 && http_status < 300)
		return s3_code && *s3_code ? -EIO : 0;
	switch (http_status) {
	case 400:
	case 411:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
	case 501:
		return -EOPNOTSUPP;
	case 409:
		return -EBUSY;
	case 413:
		return -EFBIG;
	case 416:
		return -ERANGE;
	default:
		return -EIO;
	}
}
