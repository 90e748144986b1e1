/* Mount option parsing: sizes, URLs, validation messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "landing.h"
#include "opts.h"

static void test_sizes(void **state)
{
	uint64_t v;
	assert_int_equal(opt_parse_size("5242880", &v), 0);
	assert_true(v == 5242880);
	assert_int_equal(opt_parse_size("8M", &v), 0);
	assert_true(v == 8ull << 20);
	assert_int_equal(opt_parse_size("8MiB", &v), 0);
	assert_true(v == 8ull << 20);
	assert_int_equal(opt_parse_size("1g", &v), 0);
	assert_true(v == 1ull << 30);
	assert_int_equal(opt_parse_size("64k", &v), 0);
	assert_true(v == 64ull << 10);
	assert_int_equal(opt_parse_size("2TB", &v), 0);
	assert_true(v == 2ull << 40);
	assert_int_equal(opt_parse_size("", &v), -EINVAL);
	assert_int_equal(opt_parse_size("-1M", &v), -EINVAL);
	assert_int_equal(opt_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(opt_parse_size("M", &v), -EINVAL);
	assert_int_equal(opt_parse_size("8Mx", &v), -EINVAL);
	assert_int_equal(opt_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(opt_parse_size("17179869184T", &v), -EINVAL); /* overflow */
}

static void url_ok(const char *url, const char *bucket, const char *prefix)
{
	char *b = NULL, *p = NULL, err[256] = "";
	assert_int_equal(opt_parse_url(url, &b, &p, err, sizeof err), 0);
	assert_string_equal(b, bucket);
	assert_string_equal(p, prefix);
	free(b);
	free(p);
}

static void url_bad(const char *url, const char *why)
{
	char *b = NULL, *p = NULL, err[256] = "";
	assert_int_equal(opt_parse_url(url, &b, &p, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, why));
	assert_null(b);
}

static void test_urls(void **state)
{
	url_ok("s3://bucket", "bucket", "");
	url_ok("s3://bucket/", "bucket", "");
	url_ok("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b");
	url_ok("s3://bucket//a//b", "bucket", "a/b");
	url_bad("http://bucket", "expected s3://");
	url_bad("s3://", "invalid bucket");
	url_bad("s3://Bucket", "invalid bucket");
	url_bad("s3://ab", "invalid bucket");
	url_bad("s3://bucket/../etc", "'..'");
	url_bad("s3://bucket/a/./b", "'.'");
}

static void test_finish(void **state)
{
	struct lzfs_opts o;
	char err[256];
	opts_defaults(&o);
	assert_int_equal(opts_finish(&o, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "s3://BUCKET"));
	opts_free(&o);

	opts_defaults(&o);
	o.url = strdup("s3://bucket/p");
	o.mountpoint = strdup("/mnt");
	assert_int_equal(opts_finish(&o, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "landing=DIR"));
	o.landing = strdup("/spool");
	assert_int_equal(opts_finish(&o, err, sizeof err), 0);
	assert_string_equal(o.endpoint, "https://s3.amazonaws.com");
	assert_int_equal(o.path_style, 0); /* AWS: virtual host */
	assert_true(o.part_size == 8ull << 20);
	assert_int_equal(o.durability, LAND_DUR_CLOSE);
	opts_free(&o);

	opts_defaults(&o);
	o.url = strdup("s3://bucket");
	o.mountpoint = strdup("/mnt");
	o.landing = strdup("/spool");
	o.endpoint = strdup("http://127.0.0.1:9000");
	o.part_size_s = strdup("4M");
	assert_int_equal(opts_finish(&o, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "part_size=4M"));
	free(o.part_size_s);
	o.part_size_s = strdup("16M");
	o.durability_s = strdup("async");
	o.unlink_s = strdup("bogus");
	assert_int_equal(opts_finish(&o, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "unlink=bogus"));
	free(o.unlink_s);
	o.unlink_s = strdup("keep");
	assert_int_equal(opts_finish(&o, err, sizeof err), 0);
	assert_int_equal(o.path_style, 1); /* not AWS: path style */
	assert_int_equal(o.durability, LAND_DUR_ASYNC);
	assert_int_equal(o.unlink_mode, LAND_UNLINK_KEEP);
	assert_true(o.part_size == 16ull << 20);
	opts_free(&o);

	opts_defaults(&o);
	o.url = strdup("s3://bucket");
	o.mountpoint = strdup("/mnt");
	o.landing = strdup("/spool");
	o.endpoint = strdup("ftp://x");
	assert_int_equal(opts_finish(&o, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "http://"));
	opts_free(&o);
}

static void test_absolute(void **state)
{
	char *p = strdup("rel/dir");
	assert_int_equal(opt_make_absolute(&p), 0);
	assert_true(p[0] == '/');
	assert_non_null(strstr(p, "/rel/dir"));
	free(p);
	p = strdup("/abs");
	assert_int_equal(opt_make_absolute(&p), 0);
	assert_string_equal(p, "/abs");
	free(p);
	p = NULL;
	assert_int_equal(opt_make_absolute(&p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_absolute),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
