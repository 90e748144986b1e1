/* fuzz_s3xml.c - libFuzzer target for the S3 response parsers (s3xml.h).
 *
 * The first byte picks the parser, the rest is the body. Besides crashes
 * and sanitizer reports it checks the contract: the result is 0,
 * S3X_ERROR, -EPROTO or -ENOMEM; a failure says why (err.message); an
 * error document has a Code; a list page's entries all have keys; nothing
 * is left allocated on failure (LeakSanitizer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"

/* A broken promise crashes the fuzzer; tests/unit/test_fuzz_*.c replay the
 * corpus with their own CHECK that reports instead. */
#ifndef CHECK
#define CHECK(c) \
	do { \
		if (!(c)) \
			__builtin_trap(); \
	} while (0)
#endif

static void check_rc(int rc, const struct s3x_error *e)
{
	CHECK(rc == 0 || rc == S3X_ERROR || rc == -EPROTO || rc == -ENOMEM);
	CHECK(memchr(e->message, '\0', sizeof e->message));
	CHECK(memchr(e->code, '\0', sizeof e->code));
	if (rc == -EPROTO)
		CHECK(e->message[0] != '\0');
	if (rc == S3X_ERROR)
		CHECK(e->code[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *xml = (const char *)data + 1;
	size_t len = size - 1;
	struct s3x_error e;
	char etag[S3_ETAG_MAX];
	int rc;
	switch (data[0] % 9) {
	case 0:
		rc = s3x_error(xml, len, &e);
		CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
		if (rc == 0)
			CHECK(e.code[0] != '\0');
		break;
	case 1: {
		struct s3x_list l;
		rc = s3x_list(xml, len, &l, &e);
		check_rc(rc, &e);
		if (rc == 0) {
			for (int i = 0; i < l.n; i++)
				CHECK(l.e[i].key != NULL);
			if (l.truncated)
				CHECK(l.next_token && l.next_token[0]);
			s3x_list_free(&l);
		} else {
			CHECK(l.e == NULL && l.n == 0 && l.next_token == NULL);
		}
		break;
	}
	case 2: {
		char *id = NULL;
		rc = s3x_initiate(xml, len, &id, &e);
		check_rc(rc, &e);
		CHECK((rc == 0) == (id != NULL));
		if (id)
			CHECK(id[0] != '\0');
		free(id);
		break;
	}
	case 3:
		rc = s3x_complete(xml, len, etag, &e);
		check_rc(rc, &e);
		if (rc == 0)
			CHECK(memchr(etag, '\0', sizeof etag));
		break;
	case 4:
		rc = s3x_copy(xml, len, etag, &e);
		check_rc(rc, &e);
		break;
	case 5: {
		struct s3x_parts p;
		rc = s3x_parts(xml, len, &p, &e);
		check_rc(rc, &e);
		if (rc == 0) {
			for (int i = 0; i < p.n; i++)
				CHECK(p.p[i].number >= 1 && p.p[i].number <= S3_MAX_PARTS);
			s3x_parts_free(&p);
		} else {
			CHECK(p.p == NULL && p.n == 0);
		}
		break;
	}
	case 6: {
		char *s = strndup(xml, len);
		if (!s)
			return 0;
		size_t before = strlen(s);
		if (s3x_url_decode(s) == 0)
			CHECK(strlen(s) <= before);
		free(s);
		break;
	}
	case 7:
		if (s3x_etag_unquote(xml, len, etag) == 0) {
			size_t n = strlen(etag);
			CHECK(n < S3_ETAG_MAX && n <= len);
		}
		break;
	case 8: {
		char *s = strndup(xml, len);
		if (!s)
			return 0;
		(void)s3x_iso8601(s);
		free(s);
		break;
	}
	}
	return 0;
}
