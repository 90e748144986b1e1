/* The configuration file: parsing, errors with FILE:LINE, secrets refused,
 * section lookup, and the command line overriding the file. Real files in
 * a temporary directory. */
#include <errno.h>
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

#include <fuse_opt.h>

#include "config.h"
#include "landing.h"
#include "opts.h"

static char dir[] = "/tmp/lzfs-cfg.XXXXXX";
static char path[256];

static void write_conf(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0644);
}

/* Loads text; expects failure whose message contains every fragment. */
static void load_bad(const char *text, ...)
{
	struct cfg *c = (struct cfg *)1;
	char err[512] = "";
	write_conf(text);
	assert_int_equal(cfg_load(path, &c, err, sizeof err), -EINVAL);
	assert_null(c);
	va_list ap;
	va_start(ap, text);
	for (const char *frag; (frag = va_arg(ap, const char *));) {
		if (!strstr(err, frag))
			fail_msg("'%s' not in '%s'", frag, err);
	}
	va_end(ap);
}

static char *at(int line)
{
	static char s[300];
	snprintf(s, sizeof s, "%s:%d: ", path, line);
	return s;
}

static const char good[] =
	"; lzfs.conf\n"
	"[global]            ; defaults for every mount\n"
	"endpoint = https://s3.example.org\n"
	"credentials = /etc/lzfs/credentials\n"
	"part_size = 16M\n"
	"allow_other = yes\n"
	"\n"
	"# a mount\n"
	"[instrument-7]\n"
	"url = s3://bucket/instrument-7\n"
	"   mountpoint = /mnt/instrument-7\n"
	"landing = /var/lib/lzfs/instrument-7\n"
	"part_size = 32M\n"
	"durability = async\n"
	"insecure = yes\n"
	"umask = 002\n"
	"[camera]\n"
	"url = s3://bucket/camera\n"
	"mountpoint = /mnt/camera/\n"
	"spool = /var/lib/lzfs/camera\n"
	"virtual_host = true\n"
	"max_inflight_parts = 4\n";

static void test_good(void **state)
{
	struct cfg *c;
	char err[512] = "";
	write_conf(good);
	assert_int_equal(cfg_load(path, &c, err, sizeof err), 0);
	assert_int_equal(cfg_count(c), 2);
	assert_string_equal(cfg_name(c, 0), "instrument-7");
	assert_string_equal(cfg_name(c, 1), "camera");
	assert_null(cfg_name(c, 2));
	assert_int_equal(cfg_find(c, "camera", NULL, err, sizeof err), 1);
	assert_int_equal(cfg_find(c, NULL, "/mnt/camera", err, sizeof err), 1);
	assert_int_equal(cfg_find(c, NULL, "/mnt/instrument-7/", err, sizeof err), 0);
	assert_int_equal(cfg_find(c, NULL, "/mnt/other", err, sizeof err), -ENOENT);
	assert_int_equal(cfg_find(c, "nope", NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "no section [nope] (sections: instrument-7, camera)"));

	/* instrument-7: section over [global] over defaults */
	struct lzfs_opts o;
	opts_defaults(&o);
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	assert_int_equal(fuse_opt_add_arg(&args, "lzfs"), 0);
	assert_int_equal(cfg_apply(c, 0, 0, &o, &args, err, sizeof err), 0);
	assert_string_equal(o.url, "s3://bucket/instrument-7");
	assert_string_equal(o.mountpoint, "/mnt/instrument-7");
	assert_string_equal(o.endpoint, "https://s3.example.org");
	assert_string_equal(o.credentials, "/etc/lzfs/credentials");
	assert_string_equal(o.landing, "/var/lib/lzfs/instrument-7");
	assert_string_equal(o.part_size_s, "32M");
	assert_string_equal(o.durability_s, "async");
	assert_int_equal(o.insecure_tls, 1);
	assert_int_equal(o.max_inflight_parts, 8);
	assert_int_equal(opts_finish(&o, err, sizeof err), 0);
	assert_true(o.part_size == 32ull << 20);
	assert_int_equal(o.durability, LAND_DUR_ASYNC);
	/* FUSE options of the file come first so that the command line's win */
	assert_int_equal(args.argc, 3);
	assert_string_equal(args.argv[1], "-o");
	assert_string_equal(args.argv[2], "allow_other,umask=002");
	fuse_opt_free_args(&args);
	opts_free(&o);

	/* camera: aliases, and [global] only where the section is silent */
	opts_defaults(&o);
	assert_int_equal(cfg_apply(c, 1, 0, &o, NULL, err, sizeof err), 0);
	assert_string_equal(o.landing, "/var/lib/lzfs/camera");
	assert_string_equal(o.part_size_s, "16M");
	assert_int_equal(o.path_style, 0);
	assert_int_equal(o.max_inflight_parts, 4);
	assert_int_equal(o.insecure_tls, 0);
	opts_free(&o);

	/* a byte order mark and CRLF line ends (files edited elsewhere) */
	write_conf("\xEF\xBB\xBF[global]\r\nregion = eu-west-1\r\n[m]\r\nlanding = /x\r\n");
	struct cfg *c2;
	assert_int_equal(cfg_load(path, &c2, err, sizeof err), 0);
	assert_int_equal(cfg_count(c2), 1);
	opts_defaults(&o);
	assert_int_equal(cfg_apply(c2, 0, 0, &o, NULL, err, sizeof err), 0);
	assert_string_equal(o.region, "eu-west-1");
	assert_string_equal(o.landing, "/x");
	opts_free(&o);
	cfg_free(c2);

	/* only [global] */
	opts_defaults(&o);
	assert_int_equal(cfg_apply(c, -1, 0, &o, NULL, err, sizeof err), 0);
	assert_null(o.url);
	assert_null(o.landing);
	assert_string_equal(o.part_size_s, "16M");
	opts_free(&o);
	cfg_free(c);
}

static void test_bad_values(void **state)
{
	load_bad("[m]\nurl = s3://bucket/x\n\npart_size = 1M\n", at(4), "part_size=1M",
		 "5M to 5G", NULL);
	load_bad("[m]\ndurability = sometimes\n", at(2), "durability=sometimes", NULL);
	load_bad("[m]\nmax_parts = 12\n", at(2), "max_parts=12", NULL);
	load_bad("[m]\nmax_inflight_parts = 8x\n", at(2), "whole number", NULL);
	load_bad("[m]\nmax_connections = 0\n", at(2), "max_connections", NULL);
	load_bad("[m]\nconnect_timeout = -1\n", at(2), "whole number", NULL);
	load_bad("[m]\nurl = http://bucket\n", at(2), "s3://BUCKET", NULL);
	load_bad("[m]\nurl = s3://bucket/../etc\n", at(2), "'..'", NULL);
	load_bad("[m]\nlanding = var/spool\n", at(2), "absolute path", NULL);
	load_bad("[m]\nendpoint = s3.example.org\n", at(2), "http://", NULL);
	load_bad("[m]\nendpoint = https://s3.example.org # prod\n", at(2), "blank", NULL);
	load_bad("[m]\ninsecure = maybe\n", at(2), "yes or no", NULL);
	load_bad("[m]\npath_style = sometimes\n", at(2), "yes, no or auto", NULL);
	load_bad("[m]\nlog_level = chatty\n", at(2), "log_level=chatty", NULL);
	load_bad("[m]\numask = 999\n", at(2), "octal", NULL);
	load_bad("[m]\nuid = root\n", at(2), "numeric id", NULL);
	load_bad("[m]\nregion =\n", at(2), "no value", NULL);
}

static void test_bad_structure(void **state)
{
	load_bad("[m]\nfrobnicate = 1\n", at(2), "unknown key 'frobnicate'", NULL);
	load_bad("[m]\npart_sise = 8M\n", at(2), "did you mean 'part_size'", NULL);
	load_bad("[m]\nlanding = /a\nspool = /b\n", at(3), "already set at line 2", NULL);
	load_bad("[global]\nurl = s3://bucket\n", at(2), "not in [global]", NULL);
	load_bad("[global]\nmountpoint = /mnt\n", at(2), "not in [global]", NULL);
	load_bad("[m]\n[m]\n", at(2), "appears twice (first at line 1)", NULL);
	load_bad("[m x]\nregion = a\n", at(1), "section name", NULL);
	load_bad("[m\nregion = a\n", at(1), "expected [NAME]", NULL);
	load_bad("region = a\n", at(1), "outside any section", NULL);
	load_bad("[m]\nregion a\n", at(2), "expected KEY = VALUE", NULL);
	load_bad("[m]\nconfig = /etc/other.conf\n", at(2), "only be given on the command line",
		 NULL);
	load_bad("[m]\nmount = m\n", at(2), "command line", NULL);
	char big[600];
	memset(big, 'a', sizeof big);
	memcpy(big, "[m]\nregion = ", 13);
	strcpy(big + 590, "\n");
	load_bad(big, at(2), "line too long", NULL);
	/* the first error is the one reported */
	load_bad("[m]\nregion = a\nbogus = 1\nmax_parts = 1\n", at(3), "bogus", NULL);
}

static void test_secrets(void **state)
{
	static const char *names[] = {"aws_secret_access_key", "aws_access_key_id", "secret_key",
				      "aws_session_token", "password", "SecretKey"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char text[256], err[512] = "";
		struct cfg *c;
		snprintf(text, sizeof text, "[m]\n%s = hunter2SECRET\n", names[i]);
		write_conf(text);
		assert_int_equal(cfg_load(path, &c, err, sizeof err), -EINVAL);
		assert_non_null(strstr(err, at(2)));
		assert_non_null(strstr(err, "credentials file"));
		assert_null(strstr(err, "hunter2SECRET"));
	}
	/* a typo'd key is unknown, and its value (maybe a secret) is not echoed */
	char err[512] = "";
	struct cfg *c;
	write_conf("[m]\nsceret = hunter2SECRET\n");
	assert_int_equal(cfg_load(path, &c, err, sizeof err), -EINVAL);
	assert_null(strstr(err, "hunter2SECRET"));
	write_conf("[m]\nendpoint = https://AKIA:hunter2SECRET@s3.example.org\n");
	assert_int_equal(cfg_load(path, &c, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "credentials file"));
	assert_null(strstr(err, "hunter2SECRET"));
}

static void test_file_errors(void **state)
{
	struct cfg *c;
	char err[512] = "", missing[300];
	snprintf(missing, sizeof missing, "%s/none.conf", dir);
	assert_int_equal(cfg_load(missing, &c, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "none.conf: No such file"));
	write_conf(good);
	chmod(path, 0666);
	assert_int_equal(cfg_load(path, &c, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "writable by every user"));
	chmod(path, 0644);
}

static void test_cmdline_overrides(void **state)
{
	char *argv[] = {"lzfs", "-f", "-o", "part_size=64M,insecure,config=/x", "-ovirtual_host",
			"-o", "drain_timeout=60,allow_other,spool=/tmp", "s3://b/x", "/mnt/x", NULL};
	int argc = 9;
	unsigned long long m = cfg_cmdline_mask(argc, argv);
	assert_int_not_equal(m, 0);
	assert_int_equal(cfg_cmdline_mask(1, argv), 0);

	struct cfg *c;
	char err[512];
	write_conf(good);
	assert_int_equal(cfg_load(path, &c, err, sizeof err), 0);
	/* what main does: defaults, the command line, then the file under it */
	struct lzfs_opts o;
	opts_defaults(&o);
	o.part_size_s = strdup("64M");
	o.drain_timeout = 60;
	o.path_style = 0;
	o.landing = strdup("/tmp");
	o.url = strdup("s3://b/x");
	assert_int_equal(cfg_apply(c, 0, m, &o, NULL, err, sizeof err), 0);
	assert_string_equal(o.part_size_s, "64M");
	assert_string_equal(o.landing, "/tmp");
	assert_string_equal(o.url, "s3://b/x");
	assert_string_equal(o.mountpoint, "/mnt/instrument-7");
	assert_string_equal(o.durability_s, "async");
	assert_int_equal(o.drain_timeout, 60);
	opts_free(&o);

	/* path_style given on the command line as a flag keeps the file's virtual_host out */
	char *argv2[] = {"lzfs", "-o", "path_style", NULL};
	opts_defaults(&o);
	o.path_style = 1;
	assert_int_equal(cfg_apply(c, 1, cfg_cmdline_mask(3, argv2), &o, NULL, err, sizeof err), 0);
	assert_int_equal(o.path_style, 1);
	opts_free(&o);
	cfg_free(c);
}

/* cfg_merge as lzfs calls it: the section by name, by source, by mountpoint. */
static void test_merge(void **state)
{
	char err[512] = "", opt[300];
	struct lzfs_opts o;
	write_conf(good);
	snprintf(opt, sizeof opt, "config=%s,mount=camera,max_parts=100", path);
	char *argv[] = {"lzfs", "-f", "-o", opt, NULL};
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.mount_name = strdup("camera");
	o.max_parts = 100;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	fuse_opt_add_arg(&args, "lzfs");
	fuse_opt_add_arg(&args, "-f");
	assert_int_equal(cfg_merge(&o, 4, argv, &args, err, sizeof err), 0);
	assert_string_equal(o.url, "s3://bucket/camera");
	assert_int_equal(o.max_parts, 100);
	assert_int_equal(o.max_inflight_parts, 4);
	/* the file's mountpoint is appended for fuse_parse_cmdline */
	assert_string_equal(args.argv[args.argc - 1], "/mnt/camera/");
	fuse_opt_free_args(&args);
	opts_free(&o);

	/* fstab: `camera /mnt/camera fuse.lzfs config=...` names the section by source */
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.url = strdup("camera");
	o.mountpoint = strdup("/mnt/camera");
	assert_int_equal(cfg_merge(&o, 1, argv, NULL, err, sizeof err), 0);
	assert_string_equal(o.url, "s3://bucket/camera");
	opts_free(&o);

	/* fstab with an s3:// source: the section by mountpoint */
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.url = strdup("s3://other/x");
	o.mountpoint = strdup("/mnt/instrument-7");
	assert_int_equal(cfg_merge(&o, 1, argv, NULL, err, sizeof err), 0);
	assert_string_equal(o.url, "s3://other/x");
	assert_string_equal(o.landing, "/var/lib/lzfs/instrument-7");
	opts_free(&o);

	/* unknown section */
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.mount_name = strdup("nope");
	assert_int_equal(cfg_merge(&o, 1, argv, NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "no section [nope]"));
	opts_free(&o);

	/* a section without a landing directory */
	write_conf("[m]\nurl = s3://bucket\nmountpoint = /mnt/m\n");
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.mount_name = strdup("m");
	assert_int_equal(cfg_merge(&o, 1, argv, NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, at(1)));
	assert_non_null(strstr(err, "needs landing"));
	opts_free(&o);

	/* two sections claim one mountpoint */
	write_conf("[a]\nmountpoint = /mnt/m\n[b]\nmountpoint = /mnt/m\n");
	opts_defaults(&o);
	o.config_file = strdup(path);
	o.url = strdup("s3://bucket");
	o.mountpoint = strdup("/mnt/m");
	assert_int_equal(cfg_merge(&o, 1, argv, NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "[a] and [b] both"));
	opts_free(&o);
}

static char *check_output(struct lzfs_opts *o, int argc, char **argv, int *rc, char **errs)
{
	char *out = NULL, *eb = NULL;
	size_t ol = 0, el = 0;
	FILE *of = open_memstream(&out, &ol), *ef = open_memstream(&eb, &el);
	*rc = cfg_check_main(o, argc, argv, of, ef);
	fclose(of);
	fclose(ef);
	*errs = eb;
	return out;
}

static void test_check(void **state)
{
	char opt[300], *errs;
	int rc;
	char land[300];
	snprintf(land, sizeof land, "%s/spool", dir);
	mkdir(land, 0700);
	char text[1024];
	snprintf(text, sizeof text,
		 "[global]\nendpoint = https://s3.example.org\npart_size = 16M\n"
		 "[m]\nurl = s3://bucket/m\nmountpoint = %s\nlanding = %s\nmax_parts = 500\n",
		 dir, land);
	write_conf(text);
	snprintf(opt, sizeof opt, "config=%s,max_parts=600", path);
	char *argv[] = {"lzfs", "--check-config", "-o", opt, "m", NULL};
	struct lzfs_opts o;
	opts_defaults(&o);
	o.check_config = 1;
	o.config_file = strdup(path);
	o.max_parts = 600;
	o.url = strdup("m");
	char *out = check_output(&o, 5, argv, &rc, &errs);
	assert_int_equal(rc, 0);
	assert_string_equal(errs, "");
	char want[400];
	assert_non_null(strstr(out, "[m]\n"));
	assert_non_null(strstr(out, "url                 = s3://bucket/m"));
	snprintf(want, sizeof want, "; %s:2", path);
	assert_non_null(strstr(out, want)); /* endpoint from [global] */
	assert_non_null(strstr(out, "part_size           = 16M"));
	assert_non_null(strstr(out, "max_parts           = 600"));
	assert_non_null(strstr(out, "; command line"));
	assert_non_null(strstr(out, "mem_limit           = 256M"));
	assert_non_null(strstr(out, "; default"));
	assert_non_null(strstr(out, "not set: AWS_* environment"));
	free(out);
	free(errs);
	opts_free(&o);

	/* problems: a landing directory that does not exist, a credentials file
	 * readable by others */
	char creds[300];
	snprintf(creds, sizeof creds, "%s/creds", dir);
	FILE *f = fopen(creds, "w");
	fputs("[default]\n", f);
	fclose(f);
	chmod(creds, 0644);
	snprintf(text, sizeof text,
		 "[m]\nurl = s3://bucket/m\nmountpoint = %s\nlanding = %s/nope\ncredentials = %s\n",
		 dir, dir, creds);
	write_conf(text);
	opts_defaults(&o);
	o.config_file = strdup(path);
	out = check_output(&o, 1, argv, &rc, &errs);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(errs, "[m] landing"));
	assert_non_null(strstr(errs, "No such file"));
	assert_non_null(strstr(errs, "readable by others"));
	free(out);
	free(errs);
	opts_free(&o);

	/* a bad file: the message with FILE:LINE, exit 1 */
	write_conf("[m]\nmax_parts = 1\n");
	opts_defaults(&o);
	o.config_file = strdup(path);
	out = check_output(&o, 1, argv, &rc, &errs);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(errs, at(2)));
	free(out);
	free(errs);
	opts_free(&o);
	unlink(creds);
	rmdir(land);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/lzfs.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_cmdline_overrides),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
