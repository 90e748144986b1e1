/* testsrv.c - the real test S3 for unit tests (see testsrv.h). */
#include "testsrv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int ts_sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd) {
		fprintf(stderr, "# ts_sh: command too long\n");
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *ts_line(const char *cmd)
{
	fflush(stdout);
	fflush(stderr);
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	char line[1024] = "", rest[1024];
	char *r = fgets(line, sizeof line, f) ? strdup(line) : NULL;
	while (fgets(rest, sizeof rest, f))
		;
	int st = pclose(f);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		free(r);
		return NULL;
	}
	if (r)
		r[strcspn(r, "\r\n")] = '\0';
	return r;
}

int ts_s3_start(struct ts_s3 *t, const char *name)
{
	memset(t, 0, sizeof *t);
	const char *root = getenv("LZFS_ROOT");
	if (root && strlen(root) < sizeof t->root)
		snprintf(t->root, sizeof t->root, "%s", root);
	else if (!getcwd(t->root, sizeof t->root)) {
		fprintf(stderr, "# the source tree's path is too long\n");
		return -1;
	}
	snprintf(t->server, sizeof t->server, "%s/tests/s3/server", t->root);
	snprintf(t->tmp, sizeof t->tmp, "/tmp/%.60s.XXXXXX", name);
	if (!mkdtemp(t->tmp)) {
		perror("# mkdtemp");
		return -1;
	}
	snprintf(t->dir, sizeof t->dir, "%s/s3", t->tmp);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' start '%s'", t->server, t->dir);
	char *url = ts_line(cmd);
	if (!url || strncmp(url, "http", 4) != 0) {
		fprintf(stderr, "# the test S3 did not start (%s)\n", cmd);
		free(url);
		return -1;
	}
	snprintf(t->endpoint, sizeof t->endpoint, "%s", url);
	free(url);
	return 0;
}

void ts_s3_stop(struct ts_s3 *t)
{
	if (!t->tmp[0])
		return;
	ts_sh("'%s' stop '%s' >/dev/null", t->server, t->dir);
	ts_sh("rm -rf '%s'", t->tmp);
	t->tmp[0] = '\0';
}

int ts_s3_fault(const struct ts_s3 *t, const char *spec)
{
	return ts_sh("'%s' fault '%s' '%s' >/dev/null", t->server, t->dir, spec);
}

uint64_t ts_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void ts_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint64_t w = ts_mix(seed * 0x100000001b3ull + ((off + i) >> 3));
		size_t at = (off + i) & 7;
		for (; at < 8 && i < len; at++, i++)
			buf[i] = (unsigned char)(w >> (8 * at));
	}
}

int ts_matches(uint64_t seed, uint64_t off, const unsigned char *buf, size_t len)
{
	unsigned char *want = malloc(len ? len : 1);
	if (!want)
		return 0;
	ts_fill(seed, off, want, len);
	int ok = memcmp(want, buf, len) == 0;
	free(want);
	return ok;
}
