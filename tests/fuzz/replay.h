/* replay.h - runs a fuzz target (tests/fuzz/fuzz_NAME.c, included after
 * this header) over its corpus, tests/fuzz/corpus/NAME/, as a cmocka test
 * of `make check`: every seed and every input a fuzzer once found stays a
 * regression test, under gcc and SAN=1 as well as under libFuzzer.
 *
 * The target's CHECK reports the broken promise and the input instead of
 * trapping. */
#ifndef LZFS_FUZZ_REPLAY_H
#define LZFS_FUZZ_REPLAY_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *replay_input;
static int replay_failures;

#define CHECK(c) \
	do { \
		if (!(c)) { \
			print_error("# %s:%d: %s does not hold for input %s\n", __FILE__, __LINE__, #c, \
				    replay_input); \
			replay_failures++; \
		} \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds every file of tests/fuzz/corpus/name to the target. */
static void replay_corpus(const char *name)
{
	const char *root = getenv("LZFS_ROOT");
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", root ? root : ".", name);
	DIR *d = opendir(dir);
	assert_non_null(d);
	int inputs = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX + 256];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		fseek(f, 0, SEEK_SET);
		uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
		assert_non_null(buf);
		assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
		fclose(f);
		replay_input = de->d_name;
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		free(buf);
		inputs++;
	}
	closedir(d);
	print_message("# %d inputs of corpus/%s replayed\n", inputs, name);
	assert_true(inputs > 0);
	assert_int_equal(replay_failures, 0);
}

#endif
