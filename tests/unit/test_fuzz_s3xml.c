/* test_fuzz_s3xml.c - the corpus of tests/fuzz/fuzz_s3xml.c replayed (replay.h). */
#include "../fuzz/replay.h"
#include "../fuzz/fuzz_s3xml.c"

static void test_corpus(void **state) { replay_corpus("s3xml"); }

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
