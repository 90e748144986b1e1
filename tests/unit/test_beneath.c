/* test_beneath.c - beneath_open: openat2 and the component walk used
 * without it give the same answer for every path, and neither ever leaves
 * the directory or follows a symlink. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"

static char dir[64];
static int root;

static int setup(void **state)
{
	strcpy(dir, "/tmp/test_beneath.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "cd %s && mkdir -p in/d/e out && echo f >in/f && echo e >in/d/e/g && echo secret >out/s && "
		 "ln -s ../out/s in/rel && ln -s %s/out/s in/abs && ln -s %s/out in/dirlink && "
		 "ln -s d in/dlink && ln -s loop in/loop && mkfifo in/fifo",
		 dir, dir, dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(cmd, sizeof cmd, "%s/in", dir);
	root = open(cmd, O_RDONLY | O_DIRECTORY);
	return root < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	close(root);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

/* Both ways: same errno, or both open the same inode. */
static void same(const char *path, int flags, int want)
{
	int a = beneath_open(root, path, flags, 0600);
	int b = beneath_open_walk(root, path, flags, 0600);
	if (flags & O_CREAT && a >= 0) {
		/* the first created it: the walk sees it now (O_EXCL: EEXIST) */
		unlinkat(root, path, 0);
		b = beneath_open_walk(root, path, flags, 0600);
		unlinkat(root, path, 0);
	}
	if ((a < 0 || b < 0) && a != b)
		fail_msg("%s (flags %#x): openat2 %d, walk %d", path, flags, a, b);
	if (a >= 0) {
		struct stat sa, sb;
		assert_int_equal(fstat(a, &sa), 0);
		assert_int_equal(fstat(b, &sb), 0);
		if (!(flags & O_CREAT))
			assert_true(sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev);
		close(a);
		close(b);
	}
	if (want <= 0 && (a < 0 ? a : 0) != want)
		fail_msg("%s (flags %#x): %d, want %d", path, flags, a, want);
}

static void test_same_answers(void **state)
{
	same("f", O_RDONLY, 0);
	same("d/e/g", O_RDONLY, 0);
	same("d//e///g", O_RDONLY, 0);
	same("./d/./e/g", O_RDONLY, 0);
	same("", O_RDONLY | O_DIRECTORY, 0);
	same(".", O_RDONLY | O_DIRECTORY, 0);
	same("d/", O_RDONLY | O_DIRECTORY, 0);
	same("f/", O_RDONLY, -ENOTDIR);
	same("f/x", O_RDONLY, -ENOTDIR);
	same("missing", O_RDONLY, -ENOENT);
	same("d/missing/x", O_RDONLY, -ENOENT);
	same("rel", O_RDONLY, -ELOOP);
	same("abs", O_RDONLY, -ELOOP);
	same("abs", O_PATH, -ELOOP);
	same("dirlink/s", O_RDONLY, -ELOOP);
	same("dlink/e/g", O_RDONLY, -ELOOP);
	same("loop", O_RDONLY, -ELOOP);
	same("dirlink", O_RDONLY | O_DIRECTORY, -ELOOP);
	same("..", O_RDONLY, -EXDEV);
	same("../out/s", O_RDONLY, -EXDEV);
	same("d/../f", O_RDONLY, -EXDEV);
	same("/etc/passwd", O_RDONLY, -EXDEV);
	same("fifo", O_PATH, 0);
	same("fifo", O_RDONLY | O_NONBLOCK, 0);
	same("f", O_WRONLY | O_DIRECTORY, -ENOTDIR);
	same("d", O_WRONLY, -EISDIR);
	same("new", O_WRONLY | O_CREAT | O_EXCL, 0);
	same("d/e/new", O_WRONLY | O_CREAT | O_EXCL, 0);
	same("abs", O_WRONLY | O_CREAT | O_EXCL, -EEXIST);
	same("dirlink/new", O_WRONLY | O_CREAT | O_EXCL, -ELOOP);
	same("f", O_WRONLY | O_CREAT | O_EXCL, -EEXIST);
	/* nothing was written outside */
	char p[128];
	snprintf(p, sizeof p, "%s/out/new", dir);
	assert_int_equal(access(p, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_answers)};
	return cmocka_run_group_tests(tests, setup, teardown);
}
