/* fuzz_tmpl.c - libFuzzer target for the key template engine (scan.h:
 * scan_tmpl_new, scan_tmpl_expand), checked against what it promises.
 *
 * Input: 8 bytes of mtime (ns, little-endian), then TEMPLATE \0 PREFIX \0
 * RELPATH. The fuzzed template is compiled and expanded; so are three fixed
 * templates whose keys are computed here independently.
 *
 * A template is accepted only if it starts with "{prefix}/" and, for an
 * ordinary file, gives a key. A key is never empty, never has a leading
 * '/', an empty, "." or ".." segment, is at most SCAN_KEY_MAX bytes of
 * valid UTF-8 and lies under the prefix; anything else is refused with a
 * reason. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scan.h"

#include "check.h"

/* Segments between '/' are all real names. */
static int segments_ok(const char *k)
{
	if (!*k)
		return 0;
	const char *seg = k;
	for (const char *p = k;; p++) {
		if (*p == '/' || !*p) {
			size_t n = (size_t)(p - seg);
			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (!*p)
				return 1;
			seg = p + 1;
		}
	}
}

/* UTF-8 as RFC 3629 defines it: shortest form, no surrogates, <= U+10FFFF,
 * judged by the table of well-formed byte sequences (Unicode 3.9, D92). */
static int utf8_ok(const unsigned char *s)
{
	while (*s) {
		unsigned char a = s[0];
		if (a <= 0x7f) {
			s++;
			continue;
		}
		unsigned char lo = 0x80, hi = 0xbf;
		int n;
		if (a >= 0xc2 && a <= 0xdf)
			n = 1;
		else if (a >= 0xe0 && a <= 0xef) {
			n = 2;
			if (a == 0xe0)
				lo = 0xa0;
			if (a == 0xed)
				hi = 0x9f;
		} else if (a >= 0xf0 && a <= 0xf4) {
			n = 3;
			if (a == 0xf0)
				lo = 0x90;
			if (a == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (s[1] < lo || s[1] > hi)
			return 0;
		for (int i = 2; i <= n; i++)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return 0;
		s += n + 1;
	}
	return 1;
}

static int key_ok(const char *k, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (k[0] == '/' || !segments_ok(k) || strlen(k) > SCAN_KEY_MAX ||
	    !utf8_ok((const unsigned char *)k))
		return 0;
	return !pl || (strncmp(k, prefix, pl) == 0 && k[pl] == '/' && k[pl + 1]);
}

/* Every expansion: a valid key or a refusal with a reason. */
static int expand(const struct scan_tmpl *t, const char *prefix, const char *rel, int64_t mtime,
		  char **key)
{
	char err[256];
	memset(err, 'x', sizeof err);
	*key = (char *)&err;
	int rc = scan_tmpl_expand(t, prefix, rel, mtime, key, err, sizeof err);
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENAMETOOLONG || rc == -ENOMEM);
	if (rc == 0) {
		CHECK(*key && key_ok(*key, prefix));
	} else {
		CHECK(*key == NULL);
		CHECK(memchr(err, '\0', sizeof err) && err[0] && err[0] != 'x');
	}
	return rc;
}

/* What scan_tmpl_expand must give for a fixed template, or NULL if it must
 * refuse. Only called for relpaths that are real paths. */
static char *ref_key(int which, const char *prefix, const char *rel, int64_t mtime)
{
	const char *slash = strrchr(rel, '/');
	const char *name = slash ? slash + 1 : rel;
	if (strlen(name) > 255 || (slash && (size_t)(slash - rel) > 4095))
		return NULL;
	char mid[64] = "";
	if (which == 2) {
		/* floor, not truncation: -0.5 s is 23:59:59 of the day before */
		int64_t secs = mtime / 1000000000 - (mtime % 1000000000 < 0);
		time_t tt = (time_t)secs;
		struct tm tm;
		CHECK(gmtime_r(&tt, &tm));
		strftime(mid, sizeof mid, "%Y/%m/%d/%H/", &tm);
	}
	const char *tail = which == 2 ? name : rel;
	size_t n = strlen(prefix) + strlen(mid) + strlen(tail) + 2;
	char *k = malloc(n);
	CHECK(k);
	snprintf(k, n, "%s%s%s%s", prefix, *prefix ? "/" : "", mid, tail);
	if (!key_ok(k, prefix)) {
		free(k);
		return NULL;
	}
	return k;
}

static const char *const fixed[] = {
	"{prefix}/{relpath}",
	"{prefix}/{dir}/{name}",
	"{prefix}/{yyyy}/{mm}/{dd}/{hh}/{name}",
};

static void check_fixed(const char *prefix, const char *rel, int64_t mtime)
{
	/* the rules for a prefix are opt_parse_url's; for a relpath, the walker's */
	if ((*prefix && !segments_ok(prefix)) || !segments_ok(rel))
		return;
	for (int i = 0; i < 3; i++) {
		struct scan_tmpl *t;
		char err[256];
		CHECK(scan_tmpl_new(fixed[i], &t, err, sizeof err) == 0);
		CHECK(scan_tmpl_dir_stable(t) == (i < 2));
		char *key;
		int rc = expand(t, prefix, rel, mtime, &key);
		char *want = ref_key(i, prefix, rel, mtime);
		if (rc != -ENOMEM) {
			CHECK((rc == 0) == (want != NULL));
			if (rc == 0)
				CHECK(strcmp(key, want) == 0);
		}
		free(key);
		free(want);
		scan_tmpl_free(t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8 || size > 16 * 1024)
		return 0;
	uint64_t u = 0;
	for (int i = 7; i >= 0; i--)
		u = u << 8 | data[i];
	int64_t mtime = (int64_t)u;
	/* three NUL-separated strings; missing ones are empty */
	char *buf = calloc(1, size - 8 + 3);
	CHECK(buf);
	memcpy(buf, data + 8, size - 8);
	const char *text = buf;
	const char *prefix = text + strlen(text) + 1;
	const char *rel = prefix + strlen(prefix) + 1; /* within the 3 NULs at the end */

	struct scan_tmpl *t = (struct scan_tmpl *)&t;
	char err[256];
	memset(err, 'x', sizeof err);
	int rc = scan_tmpl_new(text, &t, err, sizeof err);
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == 0) {
		CHECK(t && strncmp(text, "{prefix}/", 9) == 0);
		char *key;
		/* an ordinary file under an ordinary prefix gets a key (short
		 * templates: a long one may give a key over SCAN_KEY_MAX) */
		if (utf8_ok((const unsigned char *)text) && strlen(text) < 80) {
			CHECK(expand(t, "pre/fix", "sub/dir/file.dat", 1700000000000000000LL, &key) == 0);
			free(key);
		}
		if (expand(t, prefix, rel, mtime, &key) == 0)
			free(key);
		scan_tmpl_free(t);
	} else {
		CHECK(t == NULL);
		CHECK(rc != -EINVAL || (memchr(err, '\0', sizeof err) && err[0] && err[0] != 'x'));
	}
	check_fixed(prefix, rel, mtime);
	free(buf);
	return 0;
}
