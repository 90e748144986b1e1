/* store/jobs: the jobs table of a real catalog file: add, list, claim (one
 * winner among racing runners, a dead runner's job taken over), progress
 * and stop requests, finish, remove. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "catalog.h"
#include "jobs.h"
#include "log.h"

static char dir[] = "/tmp/lzfs-test-jobs.XXXXXX";
static char file[256];

static struct job_db *open_db(void)
{
	struct cat *c;
	assert_int_equal(cat_open(file, CAT_CREATE, &c), 0); /* creates or migrates */
	cat_close(c);
	struct job_db *db;
	assert_int_equal(job_db_open(file, &db), 0);
	return db;
}

static void test_names(void **state)
{
	assert_true(job_name_ok("nightly-inst7_v2.1"));
	assert_false(job_name_ok(""));
	assert_false(job_name_ok(".hidden"));
	assert_false(job_name_ok("-opt"));
	assert_false(job_name_ok("a/b"));
	assert_false(job_name_ok("../x"));
	assert_false(job_name_ok("sp ace"));
	char longname[80];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_false(job_name_ok(longname));
}

static void test_lifecycle(void **state)
{
	struct job_db *db = open_db();
	struct job j = {.name = "j1", .source = "/data", .target = "s3://b/p",
			.args = "--mode\nput\n", .interval = 0};
	assert_int_equal(job_add(db, &j), 0);
	assert_int_equal(job_add(db, &j), -EEXIST);
	struct job bad = j;
	bad.name = "../evil";
	assert_int_equal(job_add(db, &bad), -EINVAL);

	struct job g;
	assert_int_equal(job_get(db, "j1", &g), 0);
	assert_string_equal(g.state, "queued");
	assert_string_equal(g.args, "--mode\nput\n");
	assert_int_equal(g.runs, 0);
	job_clear(&g);
	assert_int_equal(job_get(db, "nope", &g), -ENOENT);

	/* claim, progress, finish */
	assert_int_equal(job_claim(db, "j1", "1@h", 60ll * 1000000000), 0);
	assert_int_equal(job_claim(db, "j1", "2@h", 60ll * 1000000000), -EBUSY); /* running, fresh */
	struct job p = {.name = "j1", .files_total = 10, .files_done = 4, .bytes_total = 100,
			.bytes_done = 40, .summary = "half"};
	int stop = -1;
	assert_int_equal(job_progress(db, &p, &stop), 0);
	assert_int_equal(stop, 0);
	assert_int_equal(job_get(db, "j1", &g), 0);
	assert_string_equal(g.state, "running");
	assert_string_equal(g.runner, "1@h");
	assert_int_equal(g.runs, 1);
	assert_int_equal(g.files_done, 4);
	job_clear(&g);
	/* a running job cannot be removed; a stop is seen by the runner */
	assert_int_equal(job_remove(db, "j1"), -EBUSY);
	assert_int_equal(job_request_stop(db, "j1"), 0);
	assert_int_equal(job_progress(db, &p, &stop), 0);
	assert_int_equal(stop, 1);
	p.files_done = 10;
	assert_int_equal(job_finish(db, &p, "done", 0), 0);
	assert_int_equal(job_get(db, "j1", &g), 0);
	assert_string_equal(g.state, "stopped"); /* the stop wins over "done" */
	assert_null(g.runner);
	job_clear(&g);
	/* stopped: never claimed again */
	assert_int_equal(job_claim(db, "j1", "1@h", 0), -EBUSY);
	assert_int_equal(job_remove(db, "j1"), 0);
	assert_int_equal(job_get(db, "j1", &g), -ENOENT);
	assert_int_equal(job_request_stop(db, "j1"), -ENOENT);
	job_db_close(db);
}

static void test_interval_and_stale(void **state)
{
	struct job_db *db = open_db();
	struct job j = {.name = "every", .source = "/d", .target = "s3://b", .interval = 60};
	assert_int_equal(job_add(db, &j), 0);
	assert_int_equal(job_claim(db, "every", "1@h", 60ll * 1000000000), 0);
	struct job p = {.name = "every"};
	/* waiting, due in an hour: not claimable now */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t later = ((int64_t)now.tv_sec + 3600) * 1000000000;
	assert_int_equal(job_finish(db, &p, "waiting", later), 0);
	assert_int_equal(job_claim(db, "every", "1@h", 60ll * 1000000000), -EBUSY);
	assert_int_equal(job_finish(db, &p, "waiting", 0), 0); /* due now */
	assert_int_equal(job_claim(db, "every", "1@h", 60ll * 1000000000), 0);
	/* its runner dies: with a heartbeat older than the staleness limit,
	 * another runner takes it over */
	assert_int_equal(job_claim(db, "every", "2@h", 60ll * 1000000000), -EBUSY);
	usleep(20000);
	assert_int_equal(job_claim(db, "every", "2@h", 10 * 1000000), 0);
	struct job g;
	assert_int_equal(job_get(db, "every", &g), 0);
	assert_string_equal(g.runner, "2@h");
	assert_int_equal(g.runs, 3);
	job_clear(&g);
	job_db_close(db);
}

struct racer {
	int won;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct job_db *db;
	if (job_db_open(file, &db) < 0)
		return NULL;
	char me[32];
	snprintf(me, sizeof me, "%p@h", arg);
	r->won = job_claim(db, "race", me, 60ll * 1000000000) == 0;
	job_db_close(db);
	return NULL;
}

static void test_one_winner(void **state)
{
	struct job_db *db = open_db();
	struct job j = {.name = "race", .source = "/d", .target = "s3://b"};
	assert_int_equal(job_add(db, &j), 0);
	enum { N = 8 };
	pthread_t t[N];
	struct racer r[N];
	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, race, &r[i]);
	int won = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		won += r[i].won;
	}
	assert_int_equal(won, 1);
	job_db_close(db);
}

static int count(const struct job *j, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void test_list(void **state)
{
	struct job_db *db = open_db();
	int n = 0;
	assert_int_equal(job_list(db, count, &n), 0);
	assert_true(n >= 2); /* every, race */
	job_db_close(db);
}

static void test_old_catalog(void **state)
{
	/* A file that is not a catalog at all. */
	char p[300];
	snprintf(p, sizeof p, "%s/not.db", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("hello", f);
	fclose(f);
	struct job_db *db;
	assert_true(job_db_open(p, &db) < 0);
}

static int setup(void **state)
{
	log_init("test_jobs", LZ_ERR, 0);
	if (!mkdtemp(dir))
		return -1;
	snprintf(file, sizeof file, "%s/catalog.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_interval_and_stale),
		cmocka_unit_test(test_one_winner),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_old_catalog),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
