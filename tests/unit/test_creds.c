/* test_creds.c - credentials from an AWS INI file (mode checks, profiles,
 * missing keys) and from the environment. */
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

#include "log.h"
#include "s3.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	strcpy(dir, "/tmp/test_creds.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/credentials", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Runs s3_creds_load with stderr captured into `msg`. */
static int load_capture(const char *file, const char *profile, struct s3_creds *c, char *msg,
			size_t size)
{
	char errpath[160];
	snprintf(errpath, sizeof errpath, "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	int rc = s3_creds_load(file, profile, c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, msg, size - 1, 0);
	msg[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(errpath);
	return rc;
}

static const char *two_profiles =
	"# comment\n"
	"[default]\n"
	"aws_access_key_id = AKIDDEFAULT\n"
	"aws_secret_access_key = secret/default+key\n"
	"\n"
	"[profile lab]\n"
	"aws_access_key_id=AKIDLAB\n"
	"aws_secret_access_key=secretlab\n"
	"aws_session_token = tok==\n"
	"[other]\n"
	"region = eu-west-1\n";

static void test_mode_0600_accepted(void **state)
{
	write_file(two_profiles, 0600);
	struct s3_creds c;
	assert_int_equal(s3_creds_load(path, NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDDEFAULT");
	assert_string_equal(c.secret_key, "secret/default+key");
	assert_null(c.session_token);
	s3_creds_clear(&c);
	assert_null(c.access_key);
	assert_null(c.secret_key);
	/* 0400 is fine too */
	write_file(two_profiles, 0400);
	assert_int_equal(s3_creds_load(path, "default", &c), 0);
	s3_creds_clear(&c);
}

static void test_group_other_refused(void **state)
{
	static const mode_t modes[] = {0640, 0644, 0604, 0660, 0606};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		write_file(two_profiles, modes[i]);
		struct s3_creds c;
		char msg[1024], mode[16];
		assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -EPERM);
		assert_null(c.access_key);
		snprintf(mode, sizeof mode, "%04o", (unsigned)modes[i]);
		assert_non_null(strstr(msg, path));
		assert_non_null(strstr(msg, mode));
		assert_non_null(strstr(msg, "must be 0600"));
		/* the secret is not in the message */
		assert_null(strstr(msg, "secret"));
	}
}

static void test_missing_and_not_regular(void **state)
{
	struct s3_creds c;
	char msg[1024];
	unlink(path);
	assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -ENOENT);
	assert_non_null(strstr(msg, path));
	assert_int_equal(load_capture(dir, NULL, &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "not a regular file"));
}

static void test_missing_keys(void **state)
{
	struct s3_creds c;
	char msg[1024];
	write_file("[default]\naws_access_key_id = AKID\n", 0600);
	assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "aws_secret_access_key"));
	write_file("[default]\naws_secret_access_key = s\n", 0600);
	assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "aws_access_key_id"));
	write_file("[default]\naws_access_key_id =\naws_secret_access_key = s\n", 0600);
	assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -EINVAL);
	write_file(two_profiles, 0600);
	assert_int_equal(load_capture(path, "nosuch", &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "[nosuch]"));
	/* a profile with no keys at all */
	assert_int_equal(load_capture(path, "other", &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "aws_access_key_id"));
	write_file("this is not ini\n[default\n", 0600);
	assert_int_equal(load_capture(path, NULL, &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "line 1"));
}

static void test_profile_selection(void **state)
{
	write_file(two_profiles, 0600);
	struct s3_creds c;
	assert_int_equal(s3_creds_load(path, "lab", &c), 0);
	assert_string_equal(c.access_key, "AKIDLAB");
	assert_string_equal(c.secret_key, "secretlab");
	assert_string_equal(c.session_token, "tok==");
	s3_creds_clear(&c);
}

static void test_env_fallback(void **state)
{
	struct s3_creds c;
	char msg[1024];
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	unsetenv("AWS_SESSION_TOKEN");
	assert_int_equal(s3_creds_load(NULL, NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDENV");
	assert_string_equal(c.secret_key, "envsecret");
	assert_null(c.session_token);
	s3_creds_clear(&c);
	setenv("AWS_SESSION_TOKEN", "envtok", 1);
	assert_int_equal(s3_creds_load(NULL, "ignored", &c), 0);
	assert_string_equal(c.session_token, "envtok");
	s3_creds_clear(&c);
	/* a file wins over the environment */
	write_file(two_profiles, 0600);
	assert_int_equal(s3_creds_load(path, NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDDEFAULT");
	s3_creds_clear(&c);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(load_capture(NULL, NULL, &c, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "AWS_SECRET_ACCESS_KEY"));
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SESSION_TOKEN");
	s3_creds_clear(&c); /* clearing twice is harmless */
}

int main(void)
{
	log_init("test_creds", LZ_INFO, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mode_0600_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_other_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_not_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_selection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_fallback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
