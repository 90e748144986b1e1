/* fuzz_opts.c - libFuzzer target for the mount option parsers (opts.h):
 * opt_parse_size and opt_parse_url, each checked against what it promises.
 *
 * opt_parse_size accepts exactly DIGITS [K|M|G|T [B|iB]] (suffix case-
 * insensitive) without overflow, and returns digits x multiplier.
 * opt_parse_url accepts s3://BUCKET[/PREFIX] with a valid bucket name and
 * returns the prefix without empty, "." or ".." segments; a refusal says
 * why. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "opts.h"

/* A broken promise crashes the fuzzer; tests/unit/test_fuzz_*.c replay the
 * corpus with their own CHECK that reports instead. */
#ifndef CHECK
#define CHECK(c) \
	do { \
		if (!(c)) \
			__builtin_trap(); \
	} while (0)
#endif

/* The grammar of a size, written out independently. */
static int ref_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	uint64_t mul = 1;
	if (*p) {
		const char *units = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*p));
		if (!u || !*u)
			return -EINVAL;
		mul = 1ull << (10 * (u - units + 1));
		p++;
		if (*p && strcasecmp(p, "B") != 0 && strcasecmp(p, "iB") != 0)
			return -EINVAL;
	}
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static int bucket_ok(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
		      b[i] == '.'))
			return 0;
	return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

/* What opt_parse_url must answer, written out independently: 0 and the
 * bucket and prefix it must return, or -EINVAL. */
static int ref_url(const char *url, char **bucket, char **prefix)
{
	if (strncmp(url, "s3://", 5) != 0)
		return -EINVAL;
	const char *b = url + 5;
	size_t bl = strcspn(b, "/");
	if (!bucket_ok(b, bl))
		return -EINVAL;
	const char *path = b[bl] ? b + bl + 1 : "";
	char *out = calloc(1, strlen(path) + 1);
	CHECK(out);
	size_t o = 0;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			free(out);
			return -EINVAL;
		}
		if (n) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p)
			p++;
	}
	*bucket = strndup(b, bl);
	CHECK(*bucket);
	*prefix = out;
	return 0;
}

static void check_url(const char *url)
{
	char *bucket = NULL, *prefix = NULL, *wb = NULL, *wp = NULL;
	char err[256] = "";
	int rc = opt_parse_url(url, &bucket, &prefix, err, sizeof err);
	int want = ref_url(url, &wb, &wp);
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	CHECK(memchr(err, '\0', sizeof err));
	if (rc == -EINVAL)
		CHECK(err[0] != '\0');
	if (rc != -ENOMEM)
		CHECK(rc == want);
	if (rc == 0 && want == 0)
		CHECK(strcmp(bucket, wb) == 0 && strcmp(prefix, wp) == 0);
	free(bucket);
	free(prefix);
	free(wb);
	free(wp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = strndup((const char *)data + 1, size - 1);
	if (!s)
		return 0;
	if (data[0] & 1) {
		uint64_t got = 0, want = 0;
		int rc = opt_parse_size(s, &got);
		int ref = ref_size(s, &want);
		CHECK(rc == 0 || rc == -EINVAL);
		CHECK((rc == 0) == (ref == 0));
		if (rc == 0)
			CHECK(got == want);
	} else {
		check_url(s);
		/* the same path behind a valid bucket exercises the prefix rules */
		char *u = malloc(strlen(s) + 32);
		if (u) {
			strcpy(u, "s3://fuzz-bucket/");
			strcat(u, s);
			check_url(u);
			free(u);
		}
	}
	free(s);
	return 0;
}
