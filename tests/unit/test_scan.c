/* ingest/scan: key templates (including hostile ones), filters, sync-mode
 * decisions, hooks run as real child processes, and the open-for-writing
 * snapshot from /proc. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "scan.h"

#define MIB (1024ll * 1024)

/* 2024-03-05 07:08:09 UTC */
#define T0 ((int64_t)1709622489 * 1000000000)

static char *expand(const char *tmpl, const char *prefix, const char *rel, int *rc)
{
	struct scan_tmpl *t;
	char err[256] = "";
	int r = scan_tmpl_new(tmpl, &t, err, sizeof err);
	assert_int_equal(r, 0);
	char *key = NULL;
	*rc = scan_tmpl_expand(t, prefix, rel, T0, &key, err, sizeof err);
	if (*rc)
		assert_true(err[0] != '\0');
	scan_tmpl_free(t);
	return key;
}

static void key_is(const char *tmpl, const char *prefix, const char *rel, const char *want)
{
	int rc;
	char *k = expand(tmpl, prefix, rel, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(k, want);
	free(k);
}

static void key_refused(const char *tmpl, const char *prefix, const char *rel)
{
	int rc;
	char *k = expand(tmpl, prefix, rel, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_null(k);
}

static void tmpl_refused(const char *tmpl, const char *why)
{
	struct scan_tmpl *t = NULL;
	char err[256] = "";
	assert_int_equal(scan_tmpl_new(tmpl, &t, err, sizeof err), -EINVAL);
	assert_null(t);
	if (why && !strstr(err, why)) {
		print_error("template '%s': message '%s' lacks '%s'\n", tmpl, err, why);
		fail();
	}
}

static void test_templates(void **state)
{
	key_is(SCAN_DEFAULT_TEMPLATE, "inst1", "a/b/c.dat", "inst1/a/b/c.dat");
	key_is(SCAN_DEFAULT_TEMPLATE, "", "a/b/c.dat", "a/b/c.dat");
	key_is("{prefix}/{yyyy}/{mm}/{relpath}", "raw", "x.tif", "raw/2024/03/x.tif");
	key_is("{prefix}/{yyyy}-{mm}-{dd}T{hh}/{name}", "p", "d/e/x.tif", "p/2024-03-05T07/x.tif");
	key_is("{prefix}/{dir}/{stem}.{ext}.orig", "p", "d/x.tif", "p/d/x.tif.orig");
	/* path variables swallow their '/' when empty */
	key_is("{prefix}/{dir}/{name}", "p", "top.txt", "p/top.txt");
	key_is("{prefix}/{dir}/{name}", "", "top.txt", "top.txt");
	/* stems and extensions of dotfiles and multi-dot names */
	key_is("{prefix}/{stem}-{ext}", "p", ".bashrc", "p/.bashrc-");
	key_is("{prefix}/{stem}_{ext}", "p", "a.tar.gz", "p/a.tar_gz");
	/* odd but legal names go through byte for byte */
	key_is(SCAN_DEFAULT_TEMPLATE, "p", "a b/100%/+x&y?=z#/new\nline", "p/a b/100%/+x&y?=z#/new\nline");
	key_is(SCAN_DEFAULT_TEMPLATE, "p", "r\xc3\xa9sum\xc3\xa9-\xe6\x97\xa5.txt",
	       "p/r\xc3\xa9sum\xc3\xa9-\xe6\x97\xa5.txt");
	key_is("{prefix}/{{literal}}/{name}", "p", "f", "p/{literal}/f");
}

static void test_template_host(void **state)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	char want[512];
	snprintf(want, sizeof want, "p/%s/f", host[0] ? host : "localhost");
	key_is("{prefix}/{host}/{name}", "p", "f", want);
}

static void test_hostile_templates(void **state)
{
	tmpl_refused("{prefix}/../{relpath}", "'..'");
	tmpl_refused("{prefix}/./{relpath}", "'.'");
	tmpl_refused("{prefix}//{relpath}", "empty");
	tmpl_refused("{prefix}/{relpath}/", "empty");
	tmpl_refused("{prefix}/a/../../{relpath}", "'..'");
	tmpl_refused("{relpath}", "{prefix}");
	tmpl_refused("/{prefix}/{relpath}", "{prefix}");
	tmpl_refused("other/{relpath}", "{prefix}");
	tmpl_refused("{prefix}{relpath}", "segment");
	tmpl_refused("{prefix}/{prefix}/{relpath}", "start");
	tmpl_refused("{prefix}/x{dir}/{name}", "segment");
	tmpl_refused("{prefix}/{yyyy}", "same key");
	tmpl_refused("{prefix}/{relpath", "unterminated");
	tmpl_refused("{prefix}/}{relpath}", "unmatched");
	tmpl_refused("{prefix}/{evil}/{relpath}", "unknown variable");
	tmpl_refused("{prefix}/{relpath}{", "unterminated");
	tmpl_refused("", "{prefix}");
	/* per-file refusals: the values make the bad segment */
	key_refused("{prefix}/{stem}/{name}", "p", "..x"); /* stem "." */
	key_refused("{prefix}/{ext}/{name}", "p", "noext"); /* empty ext segment */
	key_refused("{prefix}/{stem}/x", "p", "...");      /* stem ".." */
	/* a key longer than S3 allows */
	char longrel[1100];
	memset(longrel, 'a', sizeof longrel - 1);
	for (size_t i = 100; i < sizeof longrel - 1; i += 101)
		longrel[i] = '/';
	longrel[sizeof longrel - 1] = '\0';
	key_refused(SCAN_DEFAULT_TEMPLATE, "p", longrel);
	/* not UTF-8 */
	key_refused(SCAN_DEFAULT_TEMPLATE, "p", "bad\xff.txt");
	key_refused(SCAN_DEFAULT_TEMPLATE, "p", "overlong\xc0\xaf.txt");
	key_refused(SCAN_DEFAULT_TEMPLATE, "p", "surrogate\xed\xa0\x80.txt");
}

static void test_dir_stable(void **state)
{
	struct scan_tmpl *t;
	char err[256];
	const struct {
		const char *tmpl;
		int stable;
	} cases[] = {
		{SCAN_DEFAULT_TEMPLATE, 1},
		{"{prefix}/fixed/{relpath}", 1},
		{"{prefix}/{dir}/{name}", 1},
		{"{prefix}/{yyyy}/{relpath}", 0},
		{"{prefix}/{relpath}.bak", 1},
		{"{prefix}/{relpath}-{yyyy}", 0},
		{"{prefix}/{name}/{dir}/x", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(scan_tmpl_new(cases[i].tmpl, &t, err, sizeof err), 0);
		if (scan_tmpl_dir_stable(t) != cases[i].stable) {
			print_error("%s: dir_stable %d\n", cases[i].tmpl, scan_tmpl_dir_stable(t));
			fail();
		}
		scan_tmpl_free(t);
	}
}

static void test_filters(void **state)
{
	struct scan_filter *f;
	char err[256];
	assert_int_equal(scan_filter_new(&f), 0);
	/* nothing excluded yet */
	assert_int_equal(scan_filter_excludes(f, "a.tmp", S_IFREG), 0);
	assert_int_equal(scan_filter_add_file_name(f, ".*\\.tmp", err, sizeof err), 0);
	assert_int_equal(scan_filter_add_file_name(f, "\\..*\\.[A-Za-z0-9]{6}", err, sizeof err), 0);
	assert_int_equal(scan_filter_add_dir_name(f, "\\.snapshot|cache", err, sizeof err), 0);
	assert_int_equal(scan_filter_add_type(f, "pipe"), 0);
	assert_int_equal(scan_filter_add_type(f, "socket"), 0);
	assert_int_equal(scan_filter_add_type(f, "bogus"), -EINVAL);
	assert_int_equal(scan_filter_add_file_name(f, "([unclosed", err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "([unclosed"));

	assert_int_equal(scan_filter_excludes(f, "a.tmp", S_IFREG), 1);
	assert_int_equal(scan_filter_excludes(f, "a.tmp.keep", S_IFREG), 0); /* whole-name match */
	assert_int_equal(scan_filter_excludes(f, ".data.bin.Ab12Cd", S_IFREG), 1); /* rsync temp */
	assert_int_equal(scan_filter_excludes(f, "data.bin", S_IFREG), 0);
	assert_int_equal(scan_filter_excludes(f, "x\n.tmp", S_IFREG), 1); /* newline is a char */
	/* file patterns do not apply to directories and vice versa */
	assert_int_equal(scan_filter_excludes(f, "a.tmp", S_IFDIR), 0);
	assert_int_equal(scan_filter_excludes(f, "cache", S_IFDIR), 1);
	assert_int_equal(scan_filter_excludes(f, "cache", S_IFREG), 0);
	assert_int_equal(scan_filter_excludes(f, "mycache", S_IFDIR), 0);
	assert_int_equal(scan_filter_excludes(f, ".snapshot", S_IFDIR), 1);
	/* types */
	assert_int_equal(scan_filter_excludes(f, "fifo", S_IFIFO), 1);
	assert_int_equal(scan_filter_excludes(f, "sock", S_IFSOCK), 1);
	assert_int_equal(scan_filter_excludes(f, "dev", S_IFCHR), 0);
	assert_int_equal(scan_filter_add_type(f, "directory"), 0);
	assert_int_equal(scan_filter_excludes(f, "anydir", S_IFDIR), 1);
	assert_int_equal(scan_filter_excludes(NULL, "x", S_IFREG), 0);
	scan_filter_free(f);
}

static void test_decide(void **state)
{
	const int64_t m5 = 5 * MIB;
	struct scan_row ing = {.id = 1, .size = 100, .mtime_ns = 7, .state = CAT_INGESTED,
			       .has_sha256 = 1};
	/* no row, failed row: upload in every uploading mode */
	for (int mode = SCAN_PUT; mode <= SCAN_PUT_APPEND; mode++) {
		assert_int_equal(scan_decide(mode, 10, 1, NULL), SCAN_NEW);
		struct scan_row failed = {.state = CAT_FAILED};
		assert_int_equal(scan_decide(mode, 10, 1, &failed), SCAN_NEW);
		struct scan_row pend = {.state = CAT_PENDING}, up = {.state = CAT_UPLOADING};
		assert_int_equal(scan_decide(mode, 10, 1, &pend), SCAN_BUSY);
		assert_int_equal(scan_decide(mode, 10, 1, &up), SCAN_BUSY);
		/* unchanged */
		assert_int_equal(scan_decide(mode, 100, 7, &ing), SCAN_SKIP);
	}
	/* put: existing objects are never touched */
	assert_int_equal(scan_decide(SCAN_PUT, 200, 9, &ing), SCAN_SKIP);
	assert_int_equal(scan_decide(SCAN_PUT, 100, 9, &ing), SCAN_SKIP);
	/* put-sync: size change uploads; mtime-only change verifies first */
	assert_int_equal(scan_decide(SCAN_PUT_SYNC, 200, 9, &ing), SCAN_CHANGED);
	assert_int_equal(scan_decide(SCAN_PUT_SYNC, 50, 7, &ing), SCAN_CHANGED);
	assert_int_equal(scan_decide(SCAN_PUT_SYNC, 100, 9, &ing), SCAN_VERIFY);
	struct scan_row nosum = ing;
	nosum.has_sha256 = 0;
	assert_int_equal(scan_decide(SCAN_PUT_SYNC, 100, 9, &nosum), SCAN_CHANGED);
	/* put-append: only a file that grew past >= 5 MiB already sent */
	struct scan_row big = {.size = m5, .mtime_ns = 7, .state = CAT_INGESTED, .has_sha256 = 1};
	assert_int_equal(scan_decide(SCAN_PUT_APPEND, m5 + 1, 9, &big), SCAN_APPEND);
	struct scan_row small = big;
	small.size = m5 - 1;
	assert_int_equal(scan_decide(SCAN_PUT_APPEND, m5 + 10, 9, &small), SCAN_CHANGED);
	assert_int_equal(scan_decide(SCAN_PUT_APPEND, m5 - 1, 9, &big), SCAN_CHANGED); /* shrank */
	assert_int_equal(scan_decide(SCAN_PUT_APPEND, m5, 9, &big), SCAN_VERIFY);
	big.has_sha256 = 0; /* cannot prove it only grew */
	assert_int_equal(scan_decide(SCAN_PUT_APPEND, m5 + 1, 9, &big), SCAN_CHANGED);
	/* register never uploads */
	assert_int_equal(scan_decide(SCAN_REGISTER, 200, 9, &ing), SCAN_SKIP);

	assert_int_equal(scan_mode_parse("put"), SCAN_PUT);
	assert_int_equal(scan_mode_parse("put-sync"), SCAN_PUT_SYNC);
	assert_int_equal(scan_mode_parse("put-append"), SCAN_PUT_APPEND);
	assert_int_equal(scan_mode_parse("register"), SCAN_REGISTER);
	assert_int_equal(scan_mode_parse("no-op"), SCAN_NOOP);
	assert_int_equal(scan_mode_parse("sync"), -EINVAL);
	assert_int_equal(scan_mode_parse(NULL), -EINVAL);
	for (int m = SCAN_PUT; m <= SCAN_NOOP; m++)
		assert_int_equal(scan_mode_parse(scan_mode_name(m)), m);
}

static char tmpdir[] = "/tmp/lzfs-test-scan.XXXXXX";

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_hooks(void **state)
{
	char out[256], cmd[512];
	snprintf(out, sizeof out, "%s/env", tmpdir);
	/* The values arrive in the environment, never in the command: a path
	 * full of shell syntax cannot run anything. */
	const char *evil = "x'; touch /tmp/lzfs-pwned-scan; echo '$(touch /tmp/lzfs-pwned-scan)`id`\n;";
	snprintf(cmd, sizeof cmd, "env | grep -E '^(LZFS_|AWS_)' | sort > '%s'; exit 0", out);
	setenv("AWS_SECRET_ACCESS_KEY", "topsecret", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDPUBLIC", 1);
	setenv("LZFS_PATH", "stale-from-parent", 1);
	struct scan_hook_env e = {.hook = "pre-ingest", .path = evil, .key = "p/k", .bucket = "b",
				  .mode = "put", .size = 1234, .sha256 = "ab", .error = NULL};
	assert_int_equal(scan_run_hook(cmd, &e, 10), 0);
	char *env = slurp(out);
	assert_non_null(env);
	assert_non_null(strstr(env, "LZFS_KEY=p/k\n"));
	assert_non_null(strstr(env, "LZFS_SIZE=1234\n"));
	assert_non_null(strstr(env, "LZFS_SHA256=ab\n"));
	assert_non_null(strstr(env, "LZFS_HOOK=pre-ingest\n"));
	assert_non_null(strstr(env, "LZFS_PATH=x'; touch"));
	assert_null(strstr(env, "stale-from-parent"));
	assert_null(strstr(env, "LZFS_ERROR"));
	assert_null(strstr(env, "topsecret"));
	assert_non_null(strstr(env, "AWS_ACCESS_KEY_ID=AKIDPUBLIC"));
	assert_int_equal(access("/tmp/lzfs-pwned-scan", F_OK), -1);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("LZFS_PATH");

	/* exit status, signals */
	assert_int_equal(scan_run_hook("exit 3", &e, 10), 3);
	assert_int_equal(scan_run_hook("kill -9 $$", &e, 10), 128 + 9);
	assert_int_equal(scan_run_hook("echo out; echo err >&2; exit 0", &e, 10), 0);
	/* a hook that outlives its timeout is killed with its children */
	snprintf(out, sizeof out, "%s/child.pid", tmpdir);
	snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > '%s'; wait", out);
	time_t t0 = time(NULL);
	assert_int_equal(scan_run_hook(cmd, &e, 1), -ETIMEDOUT);
	assert_true(time(NULL) - t0 < 5);
	char *pid = slurp(out);
	assert_non_null(pid);
	int p = atoi(pid);
	assert_true(p > 0);
	usleep(100000);
	char procf[64];
	snprintf(procf, sizeof procf, "/proc/%d/stat", p);
	char *st = slurp(procf);
	/* gone, or a zombie reparented to init */
	assert_true(st == NULL || strstr(st, ") Z ") != NULL);
	/* lots of output does not block the hook */
	assert_int_equal(scan_run_hook("head -c 1000000 /dev/zero | tr '\\0' x; exit 5", &e, 10), 5);
}

static void test_openset(void **state)
{
	char path[256];
	snprintf(path, sizeof path, "%s/open", tmpdir);
	int w = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(w >= 0);
	struct stat st;
	assert_int_equal(fstat(w, &st), 0);
	struct scan_openset *s;
	assert_int_equal(scan_openset_load(&s), 0);
	assert_int_equal(scan_openset_has(s, st.st_dev, st.st_ino), 1);
	scan_openset_free(s);
	close(w);
	/* open read-only: not a writer */
	int r = open(path, O_RDONLY);
	assert_true(r >= 0);
	assert_int_equal(scan_openset_load(&s), 0);
	assert_int_equal(scan_openset_has(s, st.st_dev, st.st_ino), 0);
	scan_openset_free(s);
	close(r);
}

static int setup(void **state)
{
	log_init("test_scan", LZ_WARN, 0);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_template_host),
		cmocka_unit_test(test_hostile_templates),
		cmocka_unit_test(test_dir_stable),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_hooks),
		cmocka_unit_test(test_openset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
