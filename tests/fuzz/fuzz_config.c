/* fuzz_config.c - libFuzzer target for the configuration file reader
 * (config.h), checked against what it promises.
 *
 * Input: byte 0 chooses whether a line carrying a secret is added (and which
 * kind), byte 1 after how many lines of the rest, the rest is the file. The
 * file is a memfd of mode 0644 read through /proc/self/fd/N, a real path.
 *
 * cfg_load either accepts the file or refuses it with one line
 * "PATH:LINE: why", LINE a line of the file (no later than any secret). A
 * file with a secret is always refused and the secret is never echoed, by
 * cfg_load nor by `lzfs --check-config` (cfg_check_main). An accepted file
 * has only valid, distinct section names that cfg_find finds, and applying
 * any section gives options that were checked at load time: no control
 * characters, absolute paths, no user:password@ in the endpoint. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_opt.h>

#include "config.h"
#include "log.h"
#include "opts.h"

#include "check.h"

#define MARK "Fz9SECRETqv7Kx"

/* Lines that carry a secret, each of which the file must refuse. */
static const char *const secret_lines[] = {
	"secret_access_key = " MARK,
	"aws_secret_access_key=" MARK,
	"  Password : " MARK,
	"session_token = " MARK,
	"endpoint = https://AKIAFUZZ:" MARK "@s3.example.org",
	"X-Amz-Signature = " MARK,
};
#define NSECRETS (sizeof secret_lines / sizeof secret_lines[0])

static int memfd = -1;
static char path[64];

static void write_file(const uint8_t *d, size_t n)
{
	if (memfd < 0) {
		/* quiet: the refusals are the point */
		log_set_level(LZ_ERR);
		memfd = memfd_create("lzfs-fuzz.conf", MFD_CLOEXEC);
		CHECK(memfd >= 0);
		CHECK(fchmod(memfd, 0644) == 0);
		snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	}
	CHECK(ftruncate(memfd, 0) == 0);
	size_t off = 0;
	while (off < n) {
		ssize_t w = pwrite(memfd, d + off, n - off, (off_t)off);
		CHECK(w > 0);
		off += (size_t)w;
	}
}

/* 1 + the number of '\n' in d: the lines an error may name. */
static int count_lines(const uint8_t *d, size_t n)
{
	int lines = 1;
	for (size_t i = 0; i < n; i++)
		lines += d[i] == '\n';
	return lines;
}

/* The line number of "PATH:N: why", or -1 if err has another shape. */
static int err_line(const char *err)
{
	size_t pl = strlen(path);
	if (strncmp(err, path, pl) != 0 || err[pl] != ':' || !isdigit((unsigned char)err[pl + 1]))
		return -1;
	char *end;
	long n = strtol(err + pl + 1, &end, 10);
	if (end[0] != ':' || end[1] != ' ' || !end[2])
		return -1;
	return n > 0 && n < 1000000 ? (int)n : -1;
}

static int section_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64 || strcmp(s, "global") == 0)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.@:") == n;
}

static int clean(const char *s)
{
	if (!s)
		return 1;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int abs_or_null(const char *s) { return !s || (s[0] == '/' && clean(s)); }

static void check_applied(const struct lzfs_opts *o)
{
	CHECK(clean(o->url) && clean(o->endpoint) && clean(o->region) && clean(o->profile));
	CHECK(clean(o->part_size_s) && clean(o->mem_limit_s) && clean(o->durability_s));
	CHECK(clean(o->unlink_s) && clean(o->overwrite_s) && clean(o->retention_s));
	CHECK(clean(o->log_level_s));
	CHECK(abs_or_null(o->mountpoint) && abs_or_null(o->credentials) && abs_or_null(o->catalog));
	CHECK(abs_or_null(o->landing) && abs_or_null(o->log_file) && abs_or_null(o->ca_file));
	if (o->endpoint) {
		const char *h = strstr(o->endpoint, "://");
		h = h ? h + 3 : o->endpoint;
		CHECK(!memchr(h, '@', strcspn(h, "/?#")));
	}
	CHECK(o->max_inflight_parts >= 0 && o->max_parts >= 0 && o->max_connections >= 1);
	CHECK(o->settle_time >= 0 && o->rescan_interval >= 0);
}

static void check_accepted(struct cfg *c, const uint8_t *text, size_t len)
{
	int n = cfg_count(c);
	CHECK(n >= 0);
	CHECK(cfg_name(c, n) == NULL && cfg_name(c, -1) == NULL);
	for (int i = 0; i < n; i++) {
		const char *name = cfg_name(c, i);
		CHECK(name && section_name_ok(name));
		char hdr[80];
		snprintf(hdr, sizeof hdr, "[%s]", name);
		CHECK(memmem(text, len, hdr, strlen(hdr)));
		for (int j = 0; j < i; j++)
			CHECK(strcmp(cfg_name(c, j), name) != 0);
		char err[512] = "";
		CHECK(cfg_find(c, name, NULL, err, sizeof err) == i);
	}
	char err[512] = "";
	CHECK(cfg_find(c, NULL, NULL, err, sizeof err) == -ENOENT);
	for (int i = -1; i < n; i++) {
		struct lzfs_opts o;
		opts_defaults(&o);
		struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
		CHECK(fuse_opt_add_arg(&args, "lzfs") == 0);
		char e[512] = "";
		int rc = cfg_apply(c, i, 0, &o, &args, e, sizeof e);
		/* every value was checked when the file was read */
		CHECK(rc == 0 || rc == -ENOMEM);
		if (rc == 0)
			check_applied(&o);
		fuse_opt_free_args(&args);
		opts_free(&o);
	}
}

/* lzfs --check-config -o config=PATH: exit 0 or 1, 1 whenever cfg_load
 * refused the file, and never the secret in what it prints. */
static void check_main(int loaded)
{
	char *outs = NULL, *errs = NULL;
	size_t outn = 0, errn = 0;
	FILE *out = open_memstream(&outs, &outn), *errf = open_memstream(&errs, &errn);
	CHECK(out && errf);
	struct lzfs_opts o;
	opts_defaults(&o);
	o.config_file = strdup(path);
	CHECK(o.config_file);
	char *argv[] = {"lzfs", "--check-config", NULL};
	int rc = cfg_check_main(&o, 2, argv, out, errf);
	fclose(out);
	fclose(errf);
	CHECK(rc == 0 || rc == 1);
	if (!loaded)
		CHECK(rc == 1 && errn > 0);
	CHECK(!strstr(outs, MARK) && !strstr(errs, MARK));
	free(outs);
	free(errs);
	opts_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 64 * 1024)
		return 0;
	unsigned which = data[0] % (2 * NSECRETS); /* half the inputs carry no secret */
	unsigned at = data[1];
	const uint8_t *d = data + 2;
	size_t n = size - 2;
	if (memmem(d, n, MARK, strlen(MARK)))
		return 0; /* only the secret we add is one */
	int secret_line = 0;
	uint8_t *buf = malloc(n + 128);
	CHECK(buf);
	size_t len = 0;
	if (which < NSECRETS) {
		/* after line `at` (or at the end): own line, whatever surrounds it */
		size_t cut = 0;
		int line = 1;
		for (; cut < n && line <= (int)at; cut++)
			line += d[cut] == '\n';
		if (cut == n && n > 0 && d[n - 1] != '\n')
			line++; /* the newline we add ends the last line */
		memcpy(buf, d, cut);
		len = cut;
		if (cut == n && n > 0 && d[n - 1] != '\n')
			buf[len++] = '\n';
		const char *s = secret_lines[which];
		memcpy(buf + len, s, strlen(s));
		len += strlen(s);
		buf[len++] = '\n';
		memcpy(buf + len, d + cut, n - cut);
		len += n - cut;
		secret_line = line;
	} else {
		memcpy(buf, d, n);
		len = n;
	}
	write_file(buf, len);
	int lines = count_lines(buf, len);

	struct cfg *c = (struct cfg *)&c;
	char err[512];
	memset(err, 'x', sizeof err);
	int rc = cfg_load(path, &c, err, sizeof err);
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	CHECK(memchr(err, '\0', sizeof err) || rc == 0);
	if (rc == 0) {
		CHECK(c != NULL);
		CHECK(!secret_line);
		check_accepted(c, buf, len);
		cfg_free(c);
	} else {
		CHECK(c == NULL);
		CHECK(!strstr(err, MARK));
		if (rc == -EINVAL) {
			int l = err_line(err);
			CHECK(l >= 1 && l <= lines);
			if (secret_line)
				CHECK(l <= secret_line);
		}
	}
	check_main(rc == 0);
	free(buf);
	return 0;
}
