/* test_rescan.c - filesystem change events (ingest/fschange.c) and the
 * rescanner walks that trust them (ingest/rescan.c), against real files
 * and the real test S3.
 *
 * The changes made here are the ones inotify cannot see: through a hard
 * link whose other name is outside the spool (append, truncate, a write
 * through a shared mapping, a new mtime). A walk that skipped the stat of a
 * file the events did not name would miss them, and the catalog would keep
 * the old version. Everything runs as root on a local filesystem (/tmp);
 * without root the tests that need fanotify say so and skip. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog.h"
#include "fschange.h"
#include "log.h"
#include "rescan.h"
#include "s3.h"
#include "testsrv.h"
#include "upload.h"

static struct ts_s3 srv;
static struct s3_creds creds = {.access_key = TS_ACCESS_KEY, .secret_key = TS_SECRET_KEY};
static struct s3_client *s3;
static struct up_pool *pool;

/* snprintf for paths: too long is a failed test, not a silent cut. */
static void pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static uint64_t ino_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_ino;
}

static int can_fanotify(void)
{
	if (geteuid() == 0)
		return 1;
	print_message("# SKIP: fanotify filesystem marks need root (CAP_SYS_ADMIN)\n");
	return 0;
}

/* Writes "x" into the first byte of path through a shared mapping. */
static void mmap_write(const char *path)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	char *p = mmap(NULL, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	/* The descriptor goes first: only the mapping holds the file now,
	 * and its last reference is what raises the close-write event. */
	assert_int_equal(close(fd), 0);
	p[0] = p[0] == 'x' ? 'y' : 'x';
	assert_int_equal(munmap(p, 1), 0);
}

/* ---- fschange ---- */

static void test_fsc_changes(void **state)
{
	(void)state;
	if (!can_fanotify())
		skip();
	char dir[] = "/tmp/lzfs-fsc.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char spool[64], out[64], a[96], alink[96], b[96];
	pathf(spool, sizeof spool, "%s/spool", dir);
	pathf(out, sizeof out, "%s/out", dir);
	pathf(a, sizeof a, "%s/a", spool);
	pathf(b, sizeof b, "%s/b", spool);
	pathf(alink, sizeof alink, "%s/a-link", out);
	assert_int_equal(mkdir(spool, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	write_file(a, "hello\n");
	write_file(b, "bee\n");
	assert_int_equal(link(a, alink), 0);

	struct fsc *t;
	char why[256] = "";
	int rc = fsc_open(spool, &t, why, sizeof why);
	if (rc < 0)
		fail_msg("fsc_open: %s", why);
	uint64_t ia = ino_of(a), ib = ino_of(b), is = ino_of(spool);
	fsc_restart(t);
	assert_true(fsc_complete(t));
	assert_false(fsc_changed(t, ia));

	/* An append through the name outside the spool. */
	FILE *f = fopen(alink, "a");
	assert_non_null(f);
	fputs("more\n", f);
	fclose(f);
	fsc_read(t);
	assert_true(fsc_changed(t, ia));
	assert_false(fsc_changed(t, ib));
	assert_false(fsc_changed(t, is));
	fsc_clear(t);
	assert_false(fsc_changed(t, ia));

	/* truncate(2) by path: no open, no close. */
	assert_int_equal(truncate(alink, 2), 0);
	fsc_read(t);
	assert_true(fsc_changed(t, ia));
	fsc_clear(t);

	/* A write through a shared mapping, the descriptor closed first. */
	mmap_write(alink);
	fsc_read(t);
	assert_true(fsc_changed(t, ia));
	fsc_clear(t);

	/* Only the mtime. */
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(AT_FDCWD, alink, ts, 0), 0);
	fsc_read(t);
	assert_true(fsc_changed(t, ia));
	fsc_clear(t);

	/* A directory's entries: the directory is named. */
	assert_int_equal(unlink(b), 0);
	fsc_read(t);
	assert_true(fsc_changed(t, is));
	fsc_clear(t);

	/* A file created, written and removed before the events are read:
	 * its handle no longer opens, which is not a lost event. */
	char gone[96];
	pathf(gone, sizeof gone, "%s/gone", out);
	write_file(gone, "short-lived\n");
	assert_int_equal(unlink(gone), 0);
	fsc_read(t);
	assert_true(fsc_complete(t));
	assert_true(fsc_events(t) > 0);

	/* More events than the kernel queues (16384): incomplete until the
	 * next restart. */
	for (int i = 0; i < 20000; i++) {
		char p[128];
		pathf(p, sizeof p, "%s/many-%05d", out, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "z", 1), 1);
		close(fd);
	}
	fsc_read(t);
	assert_false(fsc_complete(t));
	fsc_restart(t);
	assert_true(fsc_complete(t));
	assert_int_equal(fsc_count(t), 0);
	fsc_close(t);

	/* Where other hosts write behind the kernel (here: procfs, as a
	 * filesystem that is not on the list), no events are offered. */
	why[0] = '\0';
	assert_int_equal(fsc_open("/proc", &t, why, sizeof why), -EOPNOTSUPP);
	assert_non_null(strstr(why, "not a local filesystem"));
	assert_int_equal(ts_sh("rm -rf '%s'", dir), 0);
}

/* ---- the rescanner's trusted walks ---- */

struct tree {
	char dir[64], spool[96], out[96], catalog[128], mnt[128];
	struct cat *cat;
	struct rescan *r;
};

static void tree_file(const struct tree *t, int d, int i, char *path, size_t len)
{
	pathf(path, len, "%s/d%d/f%02d", t->spool, d, i);
}

static void tree_make(struct tree *t)
{
	pathf(t->dir, sizeof t->dir, "/tmp/lzfs-rescan.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	pathf(t->spool, sizeof t->spool, "%s/spool", t->dir);
	pathf(t->out, sizeof t->out, "%s/out", t->dir);
	pathf(t->catalog, sizeof t->catalog, "%s/catalog.db", t->dir);
	assert_int_equal(mkdir(t->spool, 0755), 0);
	assert_int_equal(mkdir(t->out, 0755), 0);
	for (int d = 0; d < 3; d++) {
		char p[160];
		pathf(p, sizeof p, "%s/d%d", t->spool, d);
		assert_int_equal(mkdir(p, 0755), 0);
		for (int i = 0; i < 10; i++) {
			char text[64];
			tree_file(t, d, i, p, sizeof p);
			pathf(text, sizeof text, "file %d/%d\n", d, i);
			write_file(p, text);
		}
	}
	assert_int_equal(cat_open(t->catalog, CAT_CREATE, &t->cat), 0);
}

static void start(struct tree *t, int stat_all)
{
	struct rescan_config cfg = {
		.dir = t->spool,
		.interval = 3600,
		.settle = 0,
		.stat_all = stat_all,
		.scan = {
			.mode = SCAN_PUT_SYNC,
			.bucket = TS_BUCKET,
			.prefix = "rescan-test",
			.path_mode = SCAN_PATH_REL,
			.source = "rescan",
			.workers = 4,
			.files_per_task = 5,
		},
	};
	assert_int_equal(rescan_start(&cfg, t->cat, s3, pool, &t->r), 0);
}

static void wait_walks(struct tree *t, uint64_t walks, struct rescan_stats *st)
{
	for (int i = 0; i < 3000; i++) {
		rescan_get_stats(t->r, st);
		if (st->walks >= walks)
			return;
		usleep(10000);
	}
	fail_msg("walk %llu did not happen", (unsigned long long)walks);
}

/* One more walk, waited for. */
static void walk_once(struct tree *t, struct rescan_stats *st)
{
	rescan_get_stats(t->r, st);
	uint64_t w = st->walks;
	rescan_walk_now(t->r);
	wait_walks(t, w + 1, st);
}

/* The catalog's current version of spool-relative path rel, once it is
 * ingested with the file's present SHA-256 (0 if not within 30 s). */
static int wait_version(struct tree *t, const char *rel)
{
	char path[256], cmd[400];
	pathf(path, sizeof path, "%s/%s", t->spool, rel);
	pathf(cmd, sizeof cmd, "sha256sum '%s'", path);
	char *want = ts_line(cmd);
	assert_non_null(want);
	want[64] = '\0';
	int version = 0;
	for (int i = 0; i < 300 && !version; i++) {
		struct cat_obj o;
		if (cat_obj_get(t->cat, rel, &o) == 0) {
			if (o.state == CAT_INGESTED && strcmp(o.sha256, want) == 0)
				version = o.version;
			cat_obj_clear(&o);
		}
		if (!version)
			usleep(100000);
	}
	free(want);
	return version;
}

/* The test's tree, freed by its teardown even when an assertion failed:
 * a tmpfs left mounted would outlive the test. */
static struct tree cur;

static int tree_free(void **state)
{
	(void)state;
	struct tree *t = &cur;
	if (t->r)
		rescan_stop(t->r);
	t->r = NULL;
	if (t->mnt[0] && umount2(t->mnt, MNT_DETACH) < 0)
		print_message("# umount %s: %s\n", t->mnt, strerror(errno));
	if (t->cat)
		cat_close(t->cat);
	if (t->dir[0])
		ts_sh("rm -rf '%s'", t->dir);
	memset(t, 0, sizeof *t);
	return 0;
}

static void test_trusted_walks(void **state)
{
	(void)state;
	if (!can_fanotify())
		skip();
	struct tree *t = &cur;
	tree_make(t);
	/* Another filesystem mounted inside the spool: the events do not
	 * cover it, so its files are stated on every walk. */
	pathf(t->mnt, sizeof t->mnt, "%s/m", t->spool);
	assert_int_equal(mkdir(t->mnt, 0755), 0);
	assert_int_equal(mount("lzfs-test", t->mnt, "tmpfs", 0, "size=1m"), 0);
	char x[256];
	pathf(x, sizeof x, "%s/x", t->mnt);
	write_file(x, "on another filesystem\n");
	start(t, 0);
	struct rescan_stats st;
	wait_walks(t, 1, &st);
	assert_int_equal(wait_version(t, "m/x"), 1);
	for (int d = 0; d < 3; d++)
		for (int i = 0; i < 10; i++) {
			char rel[32];
			pathf(rel, sizeof rel, "d%d/f%02d", d, i);
			assert_int_equal(wait_version(t, rel), 1);
		}
	/* The second walk finds them ingested and remembers them; the third
	 * trusts the events and stats none of them but m/x. */
	walk_once(t, &st);
	uint64_t trusted = st.trusted_walks, unstated = st.unstated;
	walk_once(t, &st);
	assert_int_equal(st.trusted_walks, trusted + 1);
	assert_int_equal(st.unstated, unstated + 30);

	/* Changes through names outside the spool: inotify's directory
	 * watches hear nothing of them. */
	char p[256], l[256];
	tree_file(t, 0, 1, p, sizeof p);
	pathf(l, sizeof l, "%s/append", t->out);
	assert_int_equal(link(p, l), 0);
	FILE *f = fopen(l, "a");
	assert_non_null(f);
	fputs("appended through a link outside the spool\n", f);
	fclose(f);
	tree_file(t, 1, 2, p, sizeof p);
	pathf(l, sizeof l, "%s/truncate", t->out);
	assert_int_equal(link(p, l), 0);
	assert_int_equal(truncate(l, 3), 0);
	tree_file(t, 2, 3, p, sizeof p);
	pathf(l, sizeof l, "%s/mmap", t->out);
	assert_int_equal(link(p, l), 0);
	mmap_write(l);

	walk_once(t, &st);
	assert_int_equal(st.trusted_walks, trusted + 2);
	assert_int_equal(st.unstated, unstated + 30 + 27);
	assert_int_equal(wait_version(t, "d0/f01"), 2);
	assert_int_equal(wait_version(t, "d1/f02"), 2);
	assert_int_equal(wait_version(t, "d2/f03"), 2);
	/* The others were left alone. */
	assert_int_equal(wait_version(t, "d0/f00"), 1);
	assert_int_equal(wait_version(t, "d2/f09"), 1);
	rescan_stop(t->r);
	t->r = NULL;

	/* rescan_stat=all: no walk trusts the events. A restart's first
	 * walk never does either. */
	start(t, 1);
	wait_walks(t, 1, &st);
	walk_once(t, &st);
	walk_once(t, &st);
	assert_int_equal(st.trusted_walks, 0);
	assert_int_equal(st.unstated, 0);
	assert_int_equal(st.scan.seen, 93);
}

/* One walk in STAT_EVERY (6) stats everything even while the events are
 * complete: the second line of defence is there. */
static void test_stat_every(void **state)
{
	(void)state;
	if (!can_fanotify())
		skip();
	struct tree *t = &cur;
	tree_make(t);
	start(t, 0);
	struct rescan_stats st;
	wait_walks(t, 1, &st);
	assert_int_equal(wait_version(t, "d2/f09"), 1);
	uint64_t trusted_before = st.trusted_walks;
	for (int i = 0; i < 7; i++)
		walk_once(t, &st);
	/* Walks 2..6 trusted, walk 7 stats all, walk 8 trusted again. */
	assert_int_equal(st.walks, 8);
	assert_int_equal(st.trusted_walks - trusted_before, 6);
}

static int group_setup(void **state)
{
	(void)state;
	const char *lv = getenv("LZFS_TEST_LOG");
	log_init("test_rescan", lv && log_level_parse(lv) > 0 ? log_level_parse(lv) : LZ_WARN, 0);
	if (ts_s3_start(&srv, "lzfs-rescan-test") < 0)
		return -1;
	struct s3_config cfg = {
		.endpoint = srv.endpoint,
		.region = "us-east-1",
		.bucket = TS_BUCKET,
		.path_style = 1,
		.creds = &creds,
		.retry_budget_ms = 20000,
		.connect_timeout_ms = 2000,
	};
	if (s3_client_new(&cfg, &s3) < 0)
		return -1;
	struct up_config ucfg = {.workers = 4};
	return up_pool_new(&ucfg, s3, &pool) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	up_pool_free(pool);
	s3_client_free(s3);
	ts_s3_stop(&srv);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsc_changes),
		cmocka_unit_test_teardown(test_trusted_walks, tree_free),
		cmocka_unit_test_teardown(test_stat_every, tree_free),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
