/* check.h - CHECK(cond) for the fuzz targets: a broken promise traps, so
 * libFuzzer keeps the input. tests/unit/test_fuzz_*.c replay the corpora
 * with their own CHECK (replay.h) that reports instead. */
#ifndef CHECK
#define CHECK(c) \
	do { \
		if (!(c)) \
			__builtin_trap(); \
	} while (0)
#endif
