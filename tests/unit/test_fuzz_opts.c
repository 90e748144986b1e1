/* test_fuzz_opts.c - the corpus of tests/fuzz/fuzz_opts.c replayed (replay.h). */
#include "../fuzz/replay.h"
#include "../fuzz/fuzz_opts.c"

static void test_corpus(void **state) { replay_corpus("opts"); }

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
