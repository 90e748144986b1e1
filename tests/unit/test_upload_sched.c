/* test_upload_sched.c - the part size schedule (pure). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "upload.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

static void test_first_parts(void **state)
{
	struct up_config c = {.part_size = 16 * MiB, .max_parts = 10000};
	for (int n = 1; n <= 500; n++)
		assert_int_equal(up_part_size(&c, n), 16 * MiB);
	assert_int_equal(up_part_size(&c, 501), 32 * MiB);
	assert_int_equal(up_part_size(&c, 1001), 64 * MiB);

	struct up_config d = {0};
	assert_int_equal(up_part_size(&d, 1), 8 * MiB); /* the default */
	assert_int_equal(up_part_size(NULL, 1), 8 * MiB);
}

static void test_min_part(void **state)
{
	uint64_t sizes[] = {1, 4096, 5 * MiB - 1};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct up_config c = {.part_size = sizes[i], .max_parts = 10000};
		for (int n = 1; n <= 10000; n += 97)
			assert_true(up_part_size(&c, n) >= S3_MIN_PART_SIZE);
		assert_int_equal(up_part_size(&c, 1), 5 * MiB);
	}
}

static void test_reaches_5tib(void **state)
{
	struct up_config c = {.part_size = 5 * MiB, .max_parts = 10000};
	uint64_t sum = 0, prev = 0;
	for (int n = 1; n <= 10000; n++) {
		uint64_t s = up_part_size(&c, n);
		assert_true(s >= prev); /* never shrinks */
		assert_true(s <= S3_MAX_PART_SIZE);
		prev = s;
		sum += s;
	}
	assert_true(sum >= 5 * TiB);
	/* And with the default max_parts (0 = 10000). */
	struct up_config d = {.part_size = 5 * MiB};
	sum = 0;
	for (int n = 1; n <= S3_MAX_PARTS; n++)
		sum += up_part_size(&d, n);
	assert_true(sum >= S3_MAX_OBJECT_SIZE);
}

static void test_cap(void **state)
{
	struct up_config c = {.part_size = 5 * MiB, .max_parts = 10000};
	assert_int_equal(up_part_size(&c, 10000), 5 * GiB);
	struct up_config big = {.part_size = 8 * GiB};
	assert_int_equal(up_part_size(&big, 1), 5 * GiB);
	assert_int_equal(up_part_size(&big, 9999), 5 * GiB);
}

static void test_double_every_part(void **state)
{
	struct up_config c = {.part_size = 5 * MiB, .max_parts = 20};
	uint64_t want = 5 * MiB;
	for (int n = 1; n <= 20; n++) {
		assert_int_equal(up_part_size(&c, n), want);
		want = want * 2 < 5 * GiB ? want * 2 : 5 * GiB;
	}
	assert_int_equal(up_part_size(&c, 11), 5 * GiB);
	/* Fewer than 20 parts allowed: every part doubles too. */
	struct up_config f = {.part_size = 5 * MiB, .max_parts = 3};
	assert_int_equal(up_part_size(&f, 2), 10 * MiB);
	assert_int_equal(up_part_size(&f, 3), 20 * MiB);
}

static void test_doubling_step(void **state)
{
	struct up_config c = {.part_size = 5 * MiB, .max_parts = 100}; /* every 5 parts */
	assert_int_equal(up_part_size(&c, 5), 5 * MiB);
	assert_int_equal(up_part_size(&c, 6), 10 * MiB);
	assert_int_equal(up_part_size(&c, 10), 10 * MiB);
	assert_int_equal(up_part_size(&c, 11), 20 * MiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_parts),
		cmocka_unit_test(test_min_part),
		cmocka_unit_test(test_reaches_5tib),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_double_every_part),
		cmocka_unit_test(test_doubling_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
