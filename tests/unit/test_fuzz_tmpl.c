/* test_fuzz_tmpl.c - the corpus of tests/fuzz/fuzz_tmpl.c replayed (replay.h). */
#include "../fuzz/replay.h"
#include "../fuzz/fuzz_tmpl.c"

static void test_corpus(void **state) { replay_corpus("tmpl"); }

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
