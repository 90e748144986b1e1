/* test_fuzz_sigv4.c - the corpus of tests/fuzz/fuzz_sigv4.c replayed (replay.h). */
#include "../fuzz/replay.h"
#include "../fuzz/fuzz_sigv4.c"

static void test_corpus(void **state) { replay_corpus("sigv4"); }

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
