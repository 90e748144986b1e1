/* The journal of multipart uploads: survives reopen, odd keys, settle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mpulog.h"

static char dir[] = "/tmp/test_mpulog.XXXXXX";
static char file[256];

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(file, sizeof file, "%s/uploads", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(file);
	rmdir(dir);
	return 0;
}

struct seen {
	char keys[8][128];
	char ids[8][64];
	int n;
	int gone; /* what the callback answers */
};

static int collect(const char *key, const char *id, void *arg)
{
	struct seen *s = arg;
	snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
	snprintf(s->ids[s->n], sizeof s->ids[0], "%s", id);
	s->n++;
	return s->gone;
}

static void test_journal(void **state)
{
	struct mpl *m;
	int owner1, owner2;
	assert_int_equal(mpl_open(file, &m), 0);
	assert_int_equal(mpl_count(m), 0);
	assert_int_equal(mpl_add(m, "a/b c\nd%e", "id-1", &owner1), 0);
	assert_int_equal(mpl_add(m, "plain", "id 2", &owner2), 0);
	assert_int_equal(mpl_add(m, "x/y", "id-3", &owner1), 0);
	assert_int_equal(mpl_remove(m, "id-3"), 0);
	assert_int_equal(mpl_count(m), 2);
	mpl_close(m);

	/* A crash loses nothing recorded: reopen sees both, unowned. */
	assert_int_equal(mpl_open(file, &m), 0);
	assert_int_equal(mpl_count(m), 2);
	struct seen s = {.gone = 0};
	mpl_settle(m, &owner1, collect, &s); /* owners are not persisted */
	assert_int_equal(s.n, 0);
	mpl_settle(m, NULL, collect, &s);
	assert_int_equal(s.n, 2);
	int found = 0;
	for (int i = 0; i < s.n; i++)
		found += (strcmp(s.keys[i], "a/b c\nd%e") == 0 && strcmp(s.ids[i], "id-1") == 0) ||
			 (strcmp(s.keys[i], "plain") == 0 && strcmp(s.ids[i], "id 2") == 0);
	assert_int_equal(found, 2);
	assert_int_equal(mpl_count(m), 2); /* callback said "still there" */

	struct seen g = {.gone = 1};
	mpl_settle(m, NULL, collect, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(mpl_count(m), 0);
	mpl_close(m);
	assert_int_equal(mpl_open(file, &m), 0);
	assert_int_equal(mpl_count(m), 0);
	mpl_close(m);
}

static void test_owner_settle(void **state)
{
	struct mpl *m;
	int a, b;
	unlink(file);
	assert_int_equal(mpl_open(file, &m), 0);
	mpl_add(m, "k1", "u1", &a);
	mpl_add(m, "k2", "u2", &b);
	struct seen s = {.gone = 1};
	mpl_settle(m, &a, collect, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "u1");
	assert_int_equal(mpl_count(m), 1);
	mpl_close(m);
}

static void test_torn_line(void **state)
{
	FILE *f = fopen(file, "w");
	fputs("good k%0Ay\nbroken-without-newline", f);
	fclose(f);
	struct mpl *m;
	assert_int_equal(mpl_open(file, &m), 0);
	assert_int_equal(mpl_count(m), 1);
	struct seen s = {.gone = 1};
	mpl_settle(m, NULL, collect, &s);
	assert_string_equal(s.keys[0], "k\ny");
	mpl_close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_owner_settle),
		cmocka_unit_test(test_torn_line),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
