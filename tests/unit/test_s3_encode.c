/* test_s3_encode.c - key encoding for URL paths (s3_encode_key) and for
 * query values (sigv4_uri_encode without '/'). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s3.h"
#include "sigv4.h"

static const struct {
	const char *key;
	const char *path;   /* s3_encode_key */
	const char *query;  /* as a query value */
} table[] = {
	{"plain.txt", "plain.txt", "plain.txt"},
	{"a b", "a%20b", "a%20b"},
	{"dir/sub/file", "dir/sub/file", "dir%2Fsub%2Ffile"},
	{"/leading//double/", "/leading//double/", "%2Fleading%2F%2Fdouble%2F"},
	{"\xc3\xa9t\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac", "%C3%A9t%C3%A9/%E6%97%A5%E6%9C%AC",
	 "%C3%A9t%C3%A9%2F%E6%97%A5%E6%9C%AC"},
	{"a+b", "a%2Bb", "a%2Bb"},
	{"100%", "100%25", "100%25"},
	{"%2F", "%252F", "%252F"},
	{"what?", "what%3F", "what%3F"},
	{"#frag", "%23frag", "%23frag"},
	{"line\nbreak\r", "line%0Abreak%0D", "line%0Abreak%0D"},
	{"tilde~dash-under_dot.", "tilde~dash-under_dot.", "tilde~dash-under_dot."},
	{"=&;:@,$!*'()[]", "%3D%26%3B%3A%40%2C%24%21%2A%27%28%29%5B%5D",
	 "%3D%26%3B%3A%40%2C%24%21%2A%27%28%29%5B%5D"},
	{"../up/./here", "../up/./here", "..%2Fup%2F.%2Fhere"},
	{"\x01\x7f\xff", "%01%7F%FF", "%01%7F%FF"},
	{"AZaz09", "AZaz09", "AZaz09"},
	{"\"quote\" <tag> {b} |p| ^c `d` \\e", "%22quote%22%20%3Ctag%3E%20%7Bb%7D%20%7Cp%7C%20%5Ec%20%60d%60%20%5Ce",
	 "%22quote%22%20%3Ctag%3E%20%7Bb%7D%20%7Cp%7C%20%5Ec%20%60d%60%20%5Ce"},
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		char *p = s3_encode_key(table[i].key);
		assert_non_null(p);
		assert_string_equal(p, table[i].path);
		free(p);
		char *q = sigv4_uri_encode(table[i].key, strlen(table[i].key), 0);
		assert_non_null(q);
		assert_string_equal(q, table[i].query);
		free(q);
	}
}

/* Every byte: unreserved and '/' kept, the rest %XX uppercase, and decoding
 * gives the key back. */
static void test_every_byte(void **state)
{
	char key[256];
	for (int i = 1; i < 256; i++)
		key[i - 1] = (char)i;
	key[255] = '\0';
	char *p = s3_encode_key(key);
	assert_non_null(p);
	char back[256];
	size_t n = 0;
	for (const char *s = p; *s; s++) {
		if (*s == '%') {
			assert_true(strchr("0123456789ABCDEF", s[1]) && s[1]);
			assert_true(strchr("0123456789ABCDEF", s[2]) && s[2]);
			char hex[3] = {s[1], s[2], 0};
			unsigned v = (unsigned)strtoul(hex, NULL, 16);
			/* nothing unreserved is ever encoded */
			assert_false((v >= 'A' && v <= 'Z') || (v >= 'a' && v <= 'z') ||
				     (v >= '0' && v <= '9') || strchr("-._~/", (int)v));
			back[n++] = (char)v;
			s += 2;
		} else {
			assert_true((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
				    (*s >= '0' && *s <= '9') || strchr("-._~/", *s));
			back[n++] = *s;
		}
	}
	back[n] = '\0';
	assert_string_equal(back, key);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_every_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
