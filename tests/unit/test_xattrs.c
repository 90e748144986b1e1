/* ingest/xattrs: a real file's user.* xattrs imported into a real catalog:
 * user.lzfs.* and other namespaces left out, long name lists and values
 * past any small fixed buffer kept whole, a file without xattrs. */
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
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "catalog.h"
#include "log.h"
#include "xattrs.h"

/* On the disk, not tmpfs: user xattrs on tmpfs need a recent kernel. */
static char dir[] = "/var/tmp/lzfs-test-xattrs.XXXXXX";
static struct cat *cat;

struct seen {
	int n;
	char names[400][64];
	size_t lens[400];
};

static int on_avu(const struct cat_avu *a, void *arg)
{
	struct seen *s = arg;
	if (s->n < 400) {
		snprintf(s->names[s->n], sizeof s->names[0], "%s", a->name);
		s->lens[s->n] = strlen(a->value);
		s->n++;
	}
	return 0;
}

static int new_file_in(const char *base, const char *name, const char *catpath)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", base, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	struct cat_obj o = {.path = (char *)catpath, .bucket = "b", .key = (char *)catpath,
			    .mode = S_IFREG | 0644, .source = "mount"};
	assert_int_equal(cat_obj_add(cat, &o), 0);
	return fd;
}

static int new_file(const char *name, const char *catpath) { return new_file_in(dir, name, catpath); }

static int find(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return i;
	return -1;
}

static void test_namespaces(void **state)
{
	int fd = new_file("a", "a");
	if (fsetxattr(fd, "user.sample", "S-17", 4, 0) < 0 && errno == ENOTSUP) {
		close(fd);
		skip();
	}
	assert_int_equal(fsetxattr(fd, "user.lzfs.state", "x", 1, 0), 0);
	assert_int_equal(fsetxattr(fd, "trusted.secret", "t", 1, 0), 0); /* (root) */
	assert_int_equal(xa_import(cat, fd, "a"), 1);
	struct seen s = {0};
	assert_int_equal(cat_meta_list(cat, "a", on_avu, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "sample");
	close(fd);
}

/* 300 names (about 8 KB of list) and a 10,000-byte value: on tmpfs, whose
 * xattrs are not held to one 4 KiB block as ext4's are. */
static void test_long_list_and_value(void **state)
{
	char shm[] = "/dev/shm/lzfs-test-xattrs.XXXXXX";
	int fd = mkdtemp(shm) ? new_file_in(shm, "b", "b") : new_file("b", "b");
	char name[64];
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "user.instrument_setting_%04d", i);
		if (fsetxattr(fd, name, "v", 1, 0) < 0) {
			/* ext4 keeps all xattrs in one block unless ea_inode is on */
			assert_int_equal(errno, ENOSPC);
			break;
		}
	}
	ssize_t listed = flistxattr(fd, NULL, 0);
	char *big = malloc(10000);
	memset(big, 'q', 10000);
	int big_ok = fsetxattr(fd, "user.big", big, 10000, 0) == 0;
	free(big);
	int want = 0;
	char *names = malloc((size_t)flistxattr(fd, NULL, 0) + 1);
	ssize_t n = flistxattr(fd, names, (size_t)flistxattr(fd, NULL, 0));
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		want += strncmp(names + i, "user.", 5) == 0;
	free(names);
	print_message("# %zd bytes of names before the big value (%s), %d user xattrs\n", listed,
		      big_ok ? "10,000-byte value set" : "no room for a 10,000-byte value", want);
	assert_int_equal(xa_import(cat, fd, "b"), want);
	struct seen s = {0};
	assert_int_equal(cat_meta_list(cat, "b", on_avu, &s), 0);
	assert_int_equal(s.n, want);
	assert_true(find(&s, "instrument_setting_0000") >= 0);
	if (big_ok)
		assert_int_equal(s.lens[find(&s, "big")], 10000);
	close(fd);
	char cmd[100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", shm);
	assert_int_equal(system(cmd), 0);
}

static void test_none(void **state)
{
	int fd = new_file("c", "c");
	assert_int_equal(xa_import(cat, fd, "c"), 0);
	close(fd);
	assert_true(xa_import(cat, -1, "c") < 0); /* a bad fd: an error, not a crash */
}

static int setup(void **state)
{
	log_init("test_xattrs", LZ_ERR, 0);
	if (!mkdtemp(dir))
		return -1;
	char file[600];
	snprintf(file, sizeof file, "%s/catalog.db", dir);
	return cat_open(file, CAT_CREATE, &cat);
}

static int teardown(void **state)
{
	cat_close(cat);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_namespaces),
	    cmocka_unit_test(test_long_list_and_value),
	    cmocka_unit_test(test_none),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
