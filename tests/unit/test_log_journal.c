/* Logging: when the journal is wanted (JOURNAL_STREAM must name our own
 * stderr), log_file_event on stderr, and no line lost when journald is not
 * there. The structured fields on a real journal socket are checked by
 * tests/e2e/ops_journal.sh. */
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
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char tmpl[] = "/tmp/lzfs-log.XXXXXX";
static int saved_stderr = -1;

/* Sends stderr to a fresh file; returns its fd for reading back. */
static int capture(void)
{
	char path[64];
	snprintf(path, sizeof path, "%s", tmpl);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	if (saved_stderr < 0)
		saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	return fd;
}

static char *captured(int fd)
{
	static char buf[8192];
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_journal_wanted(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(log_journal_wanted(), 0);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	assert_int_equal(log_journal_wanted(), 1);
	unsetenv("NOTIFY_SOCKET");

	int fd = capture();
	struct stat st;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	char js[64];
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	assert_int_equal(log_journal_wanted(), 1);
	/* inherited by a process whose stderr went elsewhere */
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	assert_int_equal(log_journal_wanted(), 0);
	setenv("JOURNAL_STREAM", "garbage", 1);
	assert_int_equal(log_journal_wanted(), 0);
	unsetenv("JOURNAL_STREAM");
	captured(fd);
}

static void test_file_event_stderr(void **state)
{
	log_init("lzfs-test", LZ_INFO, 0);
	int fd = capture();
	log_file_event(LZ_INFO, "run1/a\nb.dat", "inst/run1/a.dat", 1234, 56, 0,
		       "ingested %s (%d bytes)", "run1/a\nb.dat", 1234);
	log_file_event(LZ_DEBUG, "x", "k", 1, 1, 0, "too verbose");
	log_file_event(LZ_WARN, "y", NULL, -1, -1, -EIO, "not in S3 yet");
	char *out = captured(fd);
	assert_non_null(strstr(out, "lzfs-test["));
	assert_non_null(strstr(out, "info: ingested run1/a?b.dat (1234 bytes)\n"));
	assert_non_null(strstr(out, "warning: not in S3 yet\n"));
	assert_null(strstr(out, "too verbose"));
	assert_null(strstr(out, "LZFS_")); /* fields are for the journal only */
}

static void test_journal_absent(void **state)
{
	if (access("/run/systemd/journal/socket", F_OK) == 0)
		skip(); /* a real journald takes the line */
	log_init("lzfs-test", LZ_INFO, 1);
	int fd = capture();
	log_info("plain line");
	log_file_event(LZ_INFO, "f", "k", 3, 4, 0, "event line");
	char *out = captured(fd);
	log_init("lzfs-test", LZ_INFO, 0);
	assert_non_null(strstr(out, "info: plain line\n"));
	assert_non_null(strstr(out, "info: event line\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_wanted),
		cmocka_unit_test(test_file_event_stderr),
		cmocka_unit_test(test_journal_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
