/* fuzz_sigv4.c - libFuzzer target for SigV4's encodings (sigv4.h).
 *
 * sigv4_uri_encode: the output uses only unreserved bytes, '%' with two
 * uppercase hex digits (and '/' when kept), and decodes back to the input.
 * sigv4_query: parameters from the input (name\0value\0...) come out
 * encoded, sorted by name then value, joined by '&', each decoding back to
 * one input pair. The canonical request and Authorization value are built
 * from fuzzed path and header values without crashing, deterministically,
 * and never contain the secret. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

/* A broken promise crashes the fuzzer; tests/unit/test_fuzz_*.c replay the
 * corpus with their own CHECK that reports instead. */
#ifndef CHECK
#define CHECK(c) \
	do { \
		if (!(c)) \
			__builtin_trap(); \
	} while (0)
#endif

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lowercase is wrong here: SigV4 wants uppercase */
}

/* Checks enc is a valid encoding of s[0..len) and returns its decoded length. */
static void check_encoding(const char *s, size_t len, const char *enc, int keep_slash)
{
	size_t j = 0;
	for (size_t i = 0; enc[i]; i++) {
		unsigned char c = (unsigned char)enc[i];
		int byte;
		if (c == '%') {
			int hi = hexv(enc[i + 1]), lo = hi < 0 ? -1 : hexv(enc[i + 2]);
			CHECK(hi >= 0 && lo >= 0);
			byte = hi << 4 | lo;
			/* only what must be encoded is */
			CHECK(!unreserved((unsigned char)byte) && !(keep_slash && byte == '/'));
			i += 2;
		} else {
			CHECK(unreserved(c) || (keep_slash && c == '/'));
			byte = c;
		}
		CHECK(j < len && (unsigned char)s[j] == byte);
		j++;
	}
	CHECK(j == len);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	int keep = data[0] & 1;

	char *enc = sigv4_uri_encode(s, len, keep);
	CHECK(enc);
	check_encoding(s, len, enc, keep);
	free(enc);

	/* Query parameters: the input split at NUL bytes, name/value pairs. */
	enum { MAXP = 16 };
	struct sigv4_param q[MAXP];
	char *copy = malloc(len + 2);
	CHECK(copy);
	memcpy(copy, s, len);
	copy[len] = copy[len + 1] = '\0';
	int n = 0;
	for (char *p = copy; p < copy + len && n < MAXP;) {
		q[n].name = p;
		p += strlen(p) + 1;
		q[n].value = p < copy + len + 1 ? p : "";
		p += strlen(p) + 1;
		n++;
	}
	char *qs = sigv4_query(q, n);
	CHECK(qs);
	/* n pairs, '&'-joined, each "name=value" encoded and sorted */
	char *items[MAXP];
	int m = 0;
	char *save = NULL;
	for (char *it = strtok_r(qs, "&", &save); it; it = strtok_r(NULL, "&", &save)) {
		CHECK(m < n);
		items[m++] = it;
		CHECK(strchr(it, '='));
	}
	CHECK(m == n);
	for (int i = 1; i < m; i++) {
		char *a = items[i - 1], *b = items[i];
		size_t an = (size_t)(strchr(a, '=') - a), bn = (size_t)(strchr(b, '=') - b);
		int c = strncmp(a, b, an < bn ? an : bn);
		if (c == 0)
			c = (an > bn) - (an < bn);
		if (c == 0)
			c = strcmp(a + an + 1, b + bn + 1);
		CHECK(c <= 0);
	}
	/* each encoded pair is one of the input pairs */
	char *want[MAXP];
	for (int i = 0; i < n; i++) {
		char *en = sigv4_uri_encode(q[i].name, strlen(q[i].name), 0);
		char *ev = sigv4_uri_encode(q[i].value, strlen(q[i].value), 0);
		CHECK(en && ev);
		want[i] = malloc(strlen(en) + strlen(ev) + 2);
		CHECK(want[i]);
		strcpy(want[i], en);
		strcat(want[i], "=");
		strcat(want[i], ev);
		free(en);
		free(ev);
	}
	qsort(want, (size_t)n, sizeof want[0], cmp_str);
	qsort(items, (size_t)m, sizeof items[0], cmp_str);
	for (int i = 0; i < n; i++) {
		CHECK(strcmp(want[i], items[i]) == 0);
		free(want[i]);
	}
	free(qs);

	/* A signed request with the fuzzed bytes as path and header value. */
	char *path = sigv4_uri_encode(s, len, 1);
	CHECK(path);
	const char *secret = "fuzz-secret-key-0123456789";
	struct sigv4_header h[] = {
		{"host", "example.com"},
		{"x-amz-date", "20240101T000000Z"},
		{"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
		{"x-amz-meta-fuzz", n ? q[0].name : ""},
	};
	struct sigv4_request r = {"PUT", path, q, n, h, 4, "UNSIGNED-PAYLOAD"};
	struct sigv4_signer sg = {"AKIDFUZZ", secret, "us-east-1", "s3"};
	char *a1 = NULL, *a2 = NULL, *creq = NULL;
	int rc1 = sigv4_authorization(&sg, &r, "20240101T000000Z", &a1);
	int rc2 = sigv4_authorization(&sg, &r, "20240101T000000Z", &a2);
	CHECK(rc1 == rc2);
	if (rc1 == 0) {
		CHECK(strcmp(a1, a2) == 0);
		CHECK(!strstr(a1, secret));
		CHECK(strncmp(a1, "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20240101/us-east-1/s3/aws4_request, "
			      "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-fuzz, Signature=",
			      strlen("AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20240101/us-east-1/s3/aws4_request, "
				     "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-fuzz, Signature=")) == 0);
	}
	if (sigv4_canonical_request(&r, &creq) == 0) {
		/* (the request itself may spell the secret: then it is the input's) */
		CHECK(!strstr(creq, secret) || memmem(s, len, secret, strlen(secret)));
		free(creq);
	}
	free(a1);
	free(a2);
	free(path);
	free(copy);
	return 0;
}
