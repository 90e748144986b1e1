/* config.c - see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_opt.h>
#include <ini.h>

#include "landing.h"
#include "log.h"
#include "s3.h"

/* Every option the file may set. Aliases share a field: the file may set a
 * field once per section, and the command line overrides it by field. */
enum field {
	F_URL, F_MOUNTPOINT, F_ENDPOINT, F_REGION, F_PATH_STYLE, F_CREDENTIALS, F_PROFILE,
	F_CATALOG, F_LANDING, F_PART_SIZE, F_MEM_LIMIT, F_MAX_INFLIGHT, F_MAX_PARTS, F_MAX_CONN,
	F_DURABILITY, F_UNLINK, F_OVERWRITE, F_RETENTION, F_LOG_LEVEL, F_LOG_FILE, F_INSECURE, F_CA_FILE, F_RETRY_BUDGET,
	F_CONNECT_TIMEOUT, F_DRAIN_TIMEOUT, F_RETRY_INTERVAL, F_OFFLINE_OK,
	F_RESCAN_INTERVAL, F_SETTLE_TIME, F_FILES_PER_TASK, F_RESCAN_WORKERS, F_RESCAN_STAT,
	F_ALLOW_OTHER, F_ALLOW_ROOT, F_UID, F_GID, F_UMASK,
	F_CMDLINE_ONLY, F_COUNT
};

enum kind {
	K_WORD,       /* string without blanks */
	K_PATH,       /* absolute path */
	K_INT,        /* int >= 0 */
	K_BOOL,       /* yes/no -> int 1/0 */
	K_PSTYLE,     /* yes/no/auto -> path_style 1/0/-1 */
	K_VHOST,      /* yes/no -> path_style 0/1 */
	K_FUSE_BOOL,  /* passed to FUSE as -o NAME */
	K_FUSE_ID,    /* passed to FUSE as -o NAME=N */
	K_FUSE_UMASK, /* passed to FUSE as -o umask=OOO */
	K_CMDLINE,    /* only meaningful on the command line */
};

struct key {
	const char *name;
	enum kind kind;
	enum field field;
	size_t off; /* in struct lzfs_opts; unused for FUSE and command-line keys */
};

#define O(f) offsetof(struct lzfs_opts, f)
static const struct key keys[] = {
	{"url", K_WORD, F_URL, O(url)},
	{"mountpoint", K_PATH, F_MOUNTPOINT, O(mountpoint)},
	{"endpoint", K_WORD, F_ENDPOINT, O(endpoint)},
	{"region", K_WORD, F_REGION, O(region)},
	{"path_style", K_PSTYLE, F_PATH_STYLE, O(path_style)},
	{"virtual_host", K_VHOST, F_PATH_STYLE, O(path_style)},
	{"credentials", K_PATH, F_CREDENTIALS, O(credentials)},
	{"profile", K_WORD, F_PROFILE, O(profile)},
	{"catalog", K_PATH, F_CATALOG, O(catalog)},
	{"landing", K_PATH, F_LANDING, O(landing)},
	{"spool", K_PATH, F_LANDING, O(landing)},
	{"part_size", K_WORD, F_PART_SIZE, O(part_size_s)},
	{"mem_limit", K_WORD, F_MEM_LIMIT, O(mem_limit_s)},
	{"max_inflight_parts", K_INT, F_MAX_INFLIGHT, O(max_inflight_parts)},
	{"max_parts", K_INT, F_MAX_PARTS, O(max_parts)},
	{"max_connections", K_INT, F_MAX_CONN, O(max_connections)},
	{"durability", K_WORD, F_DURABILITY, O(durability_s)},
	{"unlink", K_WORD, F_UNLINK, O(unlink_s)},
	{"overwrite", K_WORD, F_OVERWRITE, O(overwrite_s)},
	{"retention", K_WORD, F_RETENTION, O(retention_s)},
	{"log_level", K_WORD, F_LOG_LEVEL, O(log_level_s)},
	{"log_file", K_PATH, F_LOG_FILE, O(log_file)},
	{"insecure", K_BOOL, F_INSECURE, O(insecure_tls)},
	{"ca_file", K_PATH, F_CA_FILE, O(ca_file)},
	{"retry_budget", K_INT, F_RETRY_BUDGET, O(retry_budget)},
	{"connect_timeout", K_INT, F_CONNECT_TIMEOUT, O(connect_timeout)},
	{"drain_timeout", K_INT, F_DRAIN_TIMEOUT, O(drain_timeout)},
	{"retry_interval", K_INT, F_RETRY_INTERVAL, O(retry_interval)},
	{"offline_ok", K_BOOL, F_OFFLINE_OK, O(offline_ok)},
	{"rescan_interval", K_INT, F_RESCAN_INTERVAL, O(rescan_interval)},
	{"settle_time", K_INT, F_SETTLE_TIME, O(settle_time)},
	{"files_per_task", K_INT, F_FILES_PER_TASK, O(files_per_task)},
	{"rescan_workers", K_INT, F_RESCAN_WORKERS, O(rescan_workers)},
	{"rescan_stat", K_WORD, F_RESCAN_STAT, O(rescan_stat_s)},
	{"allow_other", K_FUSE_BOOL, F_ALLOW_OTHER, 0},
	{"allow_root", K_FUSE_BOOL, F_ALLOW_ROOT, 0},
	{"uid", K_FUSE_ID, F_UID, 0},
	{"gid", K_FUSE_ID, F_GID, 0},
	{"umask", K_FUSE_UMASK, F_UMASK, 0},
	{"config", K_CMDLINE, F_CMDLINE_ONLY, 0},
	{"mount", K_CMDLINE, F_CMDLINE_ONLY, 0},
};
#define NKEYS (sizeof keys / sizeof keys[0])

struct entry {
	int section;
	int key;   /* index in keys[] */
	int line;
	char *value;
};

struct section {
	char *name;
	int line;
};

struct cfg {
	char *path;
	struct section *sec; /* sec[0] is [global], present even if the file has none */
	int nsec;
	struct entry *ent;
	int nent;
};

/* ---- values ---- */

static const struct key *key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static int parse_bool(const char *v, int *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = 0, 0;
	}
	return -EINVAL;
}

static int parse_ulong(const char *v, int base, unsigned long max, unsigned long *out)
{
	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, base);
	if (errno || *end || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

/* Stores value into the field of o that k names (not FUSE keys). */
static int set_field(struct lzfs_opts *o, const struct key *k, const char *value)
{
	void *p = (char *)o + k->off;
	unsigned long n;
	int b;
	switch (k->kind) {
	case K_WORD:
	case K_PATH: {
		char *s = strdup(value);
		if (!s)
			return -ENOMEM;
		free(*(char **)p);
		*(char **)p = s;
		return 0;
	}
	case K_INT:
		if (parse_ulong(value, 10, INT_MAX, &n) < 0)
			return -EINVAL;
		*(int *)p = (int)n;
		return 0;
	case K_BOOL:
	case K_VHOST:
		if (parse_bool(value, &b) < 0)
			return -EINVAL;
		*(int *)p = k->kind == K_VHOST ? !b : b;
		return 0;
	case K_PSTYLE:
		if (strcasecmp(value, "auto") == 0)
			b = -1;
		else if (parse_bool(value, &b) < 0)
			return -EINVAL;
		*(int *)p = b;
		return 0;
	default:
		return 0;
	}
}

static int has_blank(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char)*s))
			return 1;
	return 0;
}

static int has_ctrl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* user:password@ in an endpoint would be a secret in the file. */
static int has_userinfo(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	return memchr(p, '@', n) != NULL;
}

/* Checks one value with the rules of the command line: the value is put
 * into otherwise complete default options and opts_finish() judges. */
static int check_value(const struct key *k, const char *v, char *err, size_t errlen)
{
	unsigned long n;
	int b;
	if (!*v) {
		snprintf(err, errlen, "%s has no value", k->name);
		return -EINVAL;
	}
	if (has_ctrl(v)) {
		snprintf(err, errlen, "%s: control characters in the value", k->name);
		return -EINVAL;
	}
	switch (k->kind) {
	case K_WORD:
		if (has_blank(v)) {
			snprintf(err, errlen, "%s: blank in the value (a comment after a value starts "
					      "with ' ;')", k->name);
			return -EINVAL;
		}
		if (k->field == F_ENDPOINT && has_userinfo(v)) {
			snprintf(err, errlen, "endpoint: user:password@ is not allowed here; "
					      "credentials go in the credentials file");
			return -EINVAL;
		}
		break;
	case K_PATH:
		/* catalog= may also be a PostgreSQL URL (store/catalog.h). */
		if (v[0] != '/' && !(k->field == F_CATALOG && strstr(v, "://"))) {
			snprintf(err, errlen, "%s=%s: expected an absolute path", k->name, v);
			return -EINVAL;
		}
		return 0;
	case K_INT:
		if (parse_ulong(v, 10, INT_MAX, &n) < 0) {
			snprintf(err, errlen, "%s=%s: expected a whole number", k->name, v);
			return -EINVAL;
		}
		if (k->field == F_MAX_CONN && n < 1) {
			snprintf(err, errlen, "max_connections=%s: expected at least 1", v);
			return -EINVAL;
		}
		break;
	case K_BOOL:
	case K_VHOST:
	case K_FUSE_BOOL:
		if (parse_bool(v, &b) < 0) {
			snprintf(err, errlen, "%s=%s: expected yes or no", k->name, v);
			return -EINVAL;
		}
		return 0;
	case K_PSTYLE:
		if (strcasecmp(v, "auto") != 0 && parse_bool(v, &b) < 0) {
			snprintf(err, errlen, "%s=%s: expected yes, no or auto", k->name, v);
			return -EINVAL;
		}
		return 0;
	case K_FUSE_ID:
		if (parse_ulong(v, 10, UINT32_MAX - 1, &n) < 0) {
			snprintf(err, errlen, "%s=%s: expected a numeric id", k->name, v);
			return -EINVAL;
		}
		return 0;
	case K_FUSE_UMASK:
		if (parse_ulong(v, 8, 0777, &n) < 0) {
			snprintf(err, errlen, "umask=%s: expected an octal mask such as 022", v);
			return -EINVAL;
		}
		return 0;
	case K_CMDLINE:
		snprintf(err, errlen, "%s= can only be given on the command line", k->name);
		return -EINVAL;
	}
	struct lzfs_opts t;
	opts_defaults(&t);
	int rc = -ENOMEM;
	if ((t.url = strdup("s3://lzfs-check")) && (t.mountpoint = strdup("/")) &&
	    (t.landing = strdup("/"))) {
		rc = set_field(&t, k, v);
		if (rc == 0)
			rc = opts_finish(&t, err, errlen);
		else if (rc == -EINVAL)
			snprintf(err, errlen, "%s=%s: invalid value", k->name, v);
	}
	opts_free(&t);
	return rc;
}

/* Names that look like credentials: refused without echoing the value. */
static int looks_secret(const char *name)
{
	static const char *words[] = {"secret", "password", "passwd", "token", "access_key",
				      "key_id", "signature"};
	char low[128];
	size_t i;
	for (i = 0; name[i] && i < sizeof low - 1; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[i] = '\0';
	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(low, words[i]))
			return 1;
	return 0;
}

/* Edit distance for "did you mean": names are short. */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 40 || lb > 40)
		return 99;
	int d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int c = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) !=
						   tolower((unsigned char)b[j - 1]));
			if (d[i - 1][j] + 1 < c)
				c = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < c)
				c = d[i][j - 1] + 1;
			d[i][j] = c;
		}
	return d[la][lb];
}

static const char *suggest(const char *name)
{
	const char *best = NULL;
	int bd = 3;
	for (size_t i = 0; i < NKEYS; i++) {
		int dd = distance(name, keys[i].name);
		if (dd < bd) {
			bd = dd;
			best = keys[i].name;
		}
	}
	return best;
}

/* ---- reading the file ---- */

struct parse {
	struct cfg *c;
	FILE *f;
	char *buf;
	size_t cap;
	int line;
	int cur;       /* current section index */
	int err_line;  /* first error we diagnosed ourselves */
	char err[384];
	int oom;
};

static void perr(struct parse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parse *ps, const char *fmt, ...)
{
	if (ps->err_line)
		return;
	ps->err_line = ps->line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err, sizeof ps->err, fmt, ap);
	va_end(ap);
}

static int name_ok(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@:", *s))
			return 0;
	return 1;
}

static int section_find(const struct cfg *c, const char *name)
{
	for (int i = 0; i < c->nsec; i++)
		if (strcmp(c->sec[i].name, name) == 0)
			return i;
	return -1;
}

static int section_add(struct cfg *c, const char *name, int line)
{
	struct section *s = realloc(c->sec, (c->nsec + 1) * sizeof *s);
	if (!s)
		return -ENOMEM;
	c->sec = s;
	if (!(s[c->nsec].name = strdup(name)))
		return -ENOMEM;
	s[c->nsec].line = line;
	return c->nsec++;
}

/* inih's reader: one line at a time, so that we know line numbers, see
 * section headers (inih reports only keys) and can refuse over-long lines
 * instead of having inih split them. Leading blanks are dropped, so an
 * indented line is never taken as a continuation of the previous value. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	ssize_t n = getline(&ps->buf, &ps->cap, ps->f);
	if (n < 0)
		return NULL;
	ps->line++;
	char *s = ps->buf;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	if (ps->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* a UTF-8 byte order mark */
	while (*s == ' ' || *s == '\t')
		s++;
	if ((int)strlen(s) + 2 > num) {
		perr(ps, "line too long (at most %d characters)", num - 2);
		str[0] = '\0';
		return str;
	}
	if (*s == '[') {
		char *end = strchr(s, ']');
		char name[128];
		if (!end || (size_t)(end - s - 1) >= sizeof name) {
			perr(ps, "expected [NAME]");
		} else {
			memcpy(name, s + 1, end - s - 1);
			name[end - s - 1] = '\0';
			int i = section_find(ps->c, name);
			if (!name_ok(name))
				perr(ps, "[%s]: a section name is 1-64 of A-Z a-z 0-9 - _ . @ :", name);
			else if (i > 0 || (i == 0 && ps->c->sec[0].line))
				perr(ps, "[%s] appears twice (first at line %d)", name,
				     ps->c->sec[i].line);
			else if (i == 0)
				ps->c->sec[0].line = ps->line, ps->cur = 0;
			else if ((ps->cur = section_add(ps->c, name, ps->line)) < 0)
				ps->oom = 1;
		}
	}
	memcpy(str, s, strlen(s) + 1);
	return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	struct cfg *c = ps->c;
	if (ps->err_line == ps->line)
		return 0; /* the header of this section was bad: say that, not more */
	if (strcmp(c->sec[ps->cur].name, section) != 0) {
		perr(ps, "a setting outside any section");
		return 0;
	}
	const struct key *k = key_find(name);
	if (!k) {
		const char *s = suggest(name);
		if (looks_secret(name))
			perr(ps, "'%s': secrets are not allowed in the configuration file; put the "
				 "keys in a credentials file (mode 0600) and set credentials=FILE",
			     name);
		else if (s)
			perr(ps, "unknown key '%s' (did you mean '%s'?)", name, s);
		else
			perr(ps, "unknown key '%s' (see lzfs.conf(5))", name);
		return 0;
	}
	if (ps->cur == 0 && (k->field == F_URL || k->field == F_MOUNTPOINT)) {
		perr(ps, "%s belongs in a mount's section, not in [global]", k->name);
		return 0;
	}
	for (int i = 0; i < c->nent; i++) {
		const struct entry *e = &c->ent[i];
		if (e->section == ps->cur && keys[e->key].field == k->field) {
			perr(ps, "%s: already set at line %d (as %s)", k->name, e->line,
			     keys[e->key].name);
			return 0;
		}
	}
	char err[300];
	if (check_value(k, value, err, sizeof err) < 0) {
		perr(ps, "%s", err);
		return 0;
	}
	struct entry *e = realloc(c->ent, (c->nent + 1) * sizeof *e);
	if (!e || !(e[c->nent].value = strdup(value))) {
		if (e)
			c->ent = e;
		ps->oom = 1;
		return 0;
	}
	c->ent = e;
	e[c->nent].section = ps->cur;
	e[c->nent].key = (int)(k - keys);
	e[c->nent].line = ps->line;
	c->nent++;
	return 1;
}

int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IWOTH)) {
		/* It chooses paths the daemon (root) writes to. */
		snprintf(err, errlen, "%s: writable by every user; refusing it (chmod o-w)", path);
		fclose(f);
		return -EPERM;
	}
	struct cfg *c = calloc(1, sizeof *c);
	struct parse ps = {.c = c, .f = f};
	int rc = -ENOMEM;
	if (!c || !(c->path = strdup(path)) || section_add(c, "global", 0) < 0)
		goto fail;
	int line = ini_parse_stream(reader, &ps, handler, &ps);
	if (ps.oom || line == -2)
		goto fail;
	rc = -EINVAL;
	if (ps.err_line && (line <= 0 || ps.err_line <= line)) {
		snprintf(err, errlen, "%s:%d: %s", path, ps.err_line, ps.err);
		goto fail;
	}
	if (line > 0) {
		snprintf(err, errlen, "%s:%d: expected KEY = VALUE, [SECTION] or a comment", path,
			 line);
		goto fail;
	}
	if (ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	free(ps.buf);
	fclose(f);
	*out = c;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", path);
	free(ps.buf);
	fclose(f);
	cfg_free(c);
	return rc;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nsec; i++)
		free(c->sec[i].name);
	for (int i = 0; i < c->nent; i++)
		free(c->ent[i].value);
	free(c->sec);
	free(c->ent);
	free(c->path);
	free(c);
}

int cfg_count(const struct cfg *c) { return c->nsec - 1; }

const char *cfg_name(const struct cfg *c, int idx)
{
	return idx >= 0 && idx < c->nsec - 1 ? c->sec[idx + 1].name : NULL;
}

/* The entry for field in section s (internal index), or NULL. */
static const struct entry *entry_get(const struct cfg *c, int s, enum field f)
{
	for (int i = 0; i < c->nent; i++)
		if (c->ent[i].section == s && keys[c->ent[i].key].field == f)
			return &c->ent[i];
	return NULL;
}

/* Same directory? realpath when both exist, else the strings without
 * trailing slashes. */
static int same_dir(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	int same;
	if (ra && rb) {
		same = strcmp(ra, rb) == 0;
	} else {
		size_t la = strlen(a), lb = strlen(b);
		while (la > 1 && a[la - 1] == '/')
			la--;
		while (lb > 1 && b[lb - 1] == '/')
			lb--;
		same = la == lb && strncmp(a, b, la) == 0;
	}
	free(ra);
	free(rb);
	return same;
}

int cfg_find(const struct cfg *c, const char *name, const char *mountpoint, char *err,
	     size_t errlen)
{
	if (name) {
		int i = section_find(c, name);
		if (i > 0)
			return i - 1;
		int n = snprintf(err, errlen, "%s: no section [%s]", c->path, name);
		for (int j = 1; j < c->nsec && n > 0 && (size_t)n < errlen; j++)
			n += snprintf(err + n, errlen - n, "%s%s", j == 1 ? " (sections: " : ", ",
				      c->sec[j].name);
		if (c->nsec > 1 && n > 0 && (size_t)n < errlen)
			snprintf(err + n, errlen - n, ")");
		return -EINVAL;
	}
	if (!mountpoint)
		return -ENOENT;
	int found = -1;
	for (int i = 1; i < c->nsec; i++) {
		const struct entry *e = entry_get(c, i, F_MOUNTPOINT);
		if (!e || !same_dir(e->value, mountpoint))
			continue;
		if (found >= 0) {
			snprintf(err, errlen, "%s: [%s] and [%s] both have mountpoint %s", c->path,
				 c->sec[found].name, c->sec[i].name, mountpoint);
			return -EINVAL;
		}
		found = i;
	}
	return found >= 0 ? found - 1 : -ENOENT;
}

/* ---- the command line ---- */

static int mask_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	if (key >= 0 && key < F_COUNT)
		*(unsigned long long *)data |= 1ull << key;
	return 0;
}

unsigned long long cfg_cmdline_mask(int argc, char **argv)
{
	/* lzfs's options by their names, as fuse_opt matches them: "name=" for
	 * a valued option, "name" for a flag (path_style is both). */
	struct fuse_opt spec[2 * NKEYS + 1];
	char *names[2 * NKEYS];
	size_t n = 0;
	memset(spec, 0, sizeof spec);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->kind >= K_FUSE_BOOL || k->field == F_URL || k->field == F_MOUNTPOINT)
			continue;
		int flag = k->kind == K_BOOL || k->kind == K_PSTYLE || k->kind == K_VHOST;
		int valued = k->kind != K_BOOL && k->kind != K_VHOST;
		if (flag && (names[n] = strdup(k->name)))
			spec[n] = (struct fuse_opt)FUSE_OPT_KEY(names[n], k->field), n++;
		if (valued && asprintf(&names[n], "%s=", k->name) >= 0)
			spec[n] = (struct fuse_opt)FUSE_OPT_KEY(names[n], k->field), n++;
	}
	unsigned long long mask = 0;
	struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&a, &mask, spec, mask_proc) < 0)
		mask = 0;
	fuse_opt_free_args(&a);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return mask;
}

/* ---- applying ---- */

/* origin[field]: 0 default, -1 command line, > 0 the file's line. */
static int apply(const struct cfg *c, int idx, unsigned long long mask, struct lzfs_opts *o,
		 struct fuse_args *args, int *origin, char *err, size_t errlen)
{
	int have_url = o->url != NULL, have_mp = o->mountpoint != NULL;
	const struct entry *fuse_e[F_COUNT] = {0};
	int secs[2] = {0, idx + 1}, nsecs = idx >= 0 ? 2 : 1;
	for (int s = 0; s < nsecs; s++) {
		for (int i = 0; i < c->nent; i++) {
			const struct entry *e = &c->ent[i];
			const struct key *k = &keys[e->key];
			if (e->section != secs[s])
				continue;
			if (k->kind >= K_FUSE_BOOL) {
				fuse_e[k->field] = e;
				continue;
			}
			if ((mask >> k->field) & 1 || (k->field == F_URL && have_url) ||
			    (k->field == F_MOUNTPOINT && have_mp))
				continue;
			int rc = set_field(o, k, e->value);
			if (rc < 0) {
				snprintf(err, errlen, "%s:%d: %s", c->path, e->line, strerror(-rc));
				return rc;
			}
			if (origin)
				origin[k->field] = e->line;
		}
	}
	/* FUSE options: the file's go before the command line's, which win. */
	char fo[256] = "";
	size_t n = 0;
	for (int f = F_ALLOW_OTHER; f <= F_UMASK; f++) {
		const struct entry *e = fuse_e[f];
		int b = 1;
		if (!e)
			continue;
		const struct key *k = &keys[e->key];
		if (origin)
			origin[f] = e->line;
		if (k->kind == K_FUSE_BOOL && (parse_bool(e->value, &b) < 0 || !b))
			continue;
		n += snprintf(fo + n, sizeof fo - n, "%s%s%s%s", n ? "," : "", k->name,
			      k->kind == K_FUSE_BOOL ? "" : "=", k->kind == K_FUSE_BOOL ? "" : e->value);
		if (n >= sizeof fo)
			return -E2BIG;
	}
	if (n && args && (fuse_opt_insert_arg(args, 1, "-o") < 0 || fuse_opt_insert_arg(args, 2, fo) < 0))
		return -ENOMEM;
	return 0;
}

int cfg_apply(const struct cfg *c, int idx, unsigned long long cmdline_mask,
	      struct lzfs_opts *o, struct fuse_args *args, char *err, size_t errlen)
{
	return apply(c, idx, cmdline_mask, o, args, NULL, err, errlen);
}

static const char *config_path(const struct lzfs_opts *o)
{
	if (o->config_file)
		return o->config_file;
	return access(CFG_DEFAULT_PATH, F_OK) == 0 ? CFG_DEFAULT_PATH : NULL;
}

/* A source argument without "://" names a section (fstab: `NAME MOUNTPOINT fuse.lzfs`). */
static int source_is_name(const struct lzfs_opts *o)
{
	return o->url && !strstr(o->url, "://");
}

static int require(const struct cfg *c, int idx, const struct lzfs_opts *o, char *err,
		   size_t errlen)
{
	const char *what = !o->url ? "url = s3://BUCKET[/PREFIX]"
			 : !o->mountpoint ? "mountpoint = DIR"
			 : !o->landing ? "landing = DIR" : NULL;
	if (!what)
		return 0;
	snprintf(err, errlen, "%s:%d: [%s] needs %s (neither the file nor the command line sets it)",
		 c->path, c->sec[idx + 1].line, c->sec[idx + 1].name, what);
	return -EINVAL;
}

int cfg_merge(struct lzfs_opts *o, int argc, char **argv, struct fuse_args *args, char *err,
	      size_t errlen)
{
	const char *path = config_path(o);
	if (!path) {
		if (o->mount_name) {
			snprintf(err, errlen, "mount=%s needs a configuration file, and %s does not exist",
				 o->mount_name, CFG_DEFAULT_PATH);
			return -ENOENT;
		}
		if (source_is_name(o)) {
			snprintf(err, errlen, "expected s3://BUCKET[/PREFIX] or a section of %s (which "
					      "does not exist), got '%s'", CFG_DEFAULT_PATH, o->url);
			return -EINVAL;
		}
		return 0;
	}
	struct cfg *c;
	int rc = cfg_load(path, &c, err, errlen);
	if (rc < 0)
		return rc;
	const char *name = o->mount_name;
	if (source_is_name(o)) {
		if (name && strcmp(name, o->url) != 0) {
			snprintf(err, errlen, "mount=%s and source '%s' name different sections", name,
				 o->url);
			cfg_free(c);
			return -EINVAL;
		}
		name = o->url;
	}
	int idx = cfg_find(c, name, o->mountpoint, err, errlen);
	if (idx == -EINVAL) {
		cfg_free(c);
		return idx;
	}
	if (source_is_name(o)) {
		free(o->url);
		o->url = NULL;
	}
	int had_mp = o->mountpoint != NULL;
	rc = apply(c, idx, cfg_cmdline_mask(argc, argv), o, args, NULL, err, errlen);
	if (rc == 0 && idx >= 0)
		rc = require(c, idx, o, err, errlen);
	if (rc == 0 && !had_mp && o->mountpoint && args && fuse_opt_add_arg(args, o->mountpoint) < 0)
		rc = -ENOMEM;
	cfg_free(c);
	return rc;
}

/* ---- lzfs --check-config ---- */

static void copy_cmdline(struct lzfs_opts *dst, const struct lzfs_opts *src,
			 unsigned long long mask, int *origin)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->kind >= K_FUSE_BOOL || !((mask >> k->field) & 1) || origin[k->field])
			continue;
		const void *s = (const char *)src + k->off;
		void *d = (char *)dst + k->off;
		if (k->kind == K_WORD || k->kind == K_PATH) {
			free(*(char **)d);
			*(char **)d = *(char *const *)s ? strdup(*(char *const *)s) : NULL;
		} else {
			*(int *)d = *(const int *)s;
		}
		origin[k->field] = -1;
	}
}

static void fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (v && v % 1024 == 0 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
}

/* The endpoint as printed: user:password@ (from a command line) masked. */
static void fmt_endpoint(const char *ep, char *buf, size_t len)
{
	const char *p = strstr(ep, "://");
	p = p ? p + 3 : ep;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (!at)
		snprintf(buf, len, "%s", ep);
	else
		snprintf(buf, len, "%.*s***%s", (int)(p - ep), ep, at);
}

static void print_line(FILE *out, const struct cfg *c, const char *name, const char *value,
		       int origin, const char *note)
{
	char where[PATH_MAX + 16];
	if (origin > 0)
		snprintf(where, sizeof where, "%s:%d", c ? c->path : "?", origin);
	else
		snprintf(where, sizeof where, "%s", origin < 0 ? "command line" : "default");
	if (value)
		fprintf(out, "%-19s = %-40s ; %s%s%s\n", name, value, where, note ? ", " : "",
			note ? note : "");
	else
		fprintf(out, ";%-18s   %-40s ; %s\n", name, "", note ? note : "not set");
}

static void print_opts(FILE *out, const struct cfg *c, const char *section,
		       const struct lzfs_opts *o, const int *origin)
{
	static const char *levels[] = {"", "", "", "error", "warn", "notice", "info", "debug"};
	char v[PATH_MAX + 64];
	fprintf(out, "[%s]\n", section);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		int org = origin[k->field];
		const char *val = v, *note = NULL;
		if (k->kind == K_CMDLINE || strcmp(k->name, "spool") == 0 ||
		    strcmp(k->name, "virtual_host") == 0)
			continue;
		switch (k->field) {
		case F_ENDPOINT:
			fmt_endpoint(o->endpoint, v, sizeof v);
			break;
		case F_PATH_STYLE:
			snprintf(v, sizeof v, "%s", o->path_style ? "yes" : "no");
			if (!org)
				note = "automatic";
			break;
		case F_PROFILE:
			snprintf(v, sizeof v, "%s", o->profile ? o->profile : "default");
			break;
		case F_CREDENTIALS:
			val = o->credentials;
			note = o->credentials ? NULL : "not set: AWS_* environment variables";
			break;
		case F_CATALOG:
			cat_redact(o->catalog ? o->catalog : "", v, sizeof v);
			if (!o->catalog)
				snprintf(v, sizeof v, "%s/%s/catalog.db", o->landing, LAND_RESERVED);
			break;
		case F_PART_SIZE:
			fmt_size(o->part_size, v, sizeof v);
			break;
		case F_MEM_LIMIT:
			fmt_size(o->mem_limit, v, sizeof v);
			break;
		case F_DURABILITY:
			snprintf(v, sizeof v, "%s", o->durability == LAND_DUR_ASYNC ? "async" : "close");
			break;
		case F_UNLINK:
			snprintf(v, sizeof v, "%s", o->unlink_mode == LAND_UNLINK_KEEP ? "keep" : "delete");
			break;
		case F_OVERWRITE:
			snprintf(v, sizeof v, "%s", o->overwrite_s ? o->overwrite_s : "version");
			break;
		case F_RETENTION:
			snprintf(v, sizeof v, "%s", o->retention_s ? o->retention_s : "keep");
			break;
		case F_RESCAN_STAT:
			snprintf(v, sizeof v, "%s", o->rescan_stat_all ? "all" : "changed");
			break;
		case F_LOG_LEVEL:
			snprintf(v, sizeof v, "%s", levels[o->log_level]);
			break;
		case F_LOG_FILE:
			val = o->log_file;
			note = o->log_file ? NULL : "not set: stderr, or the journal under systemd";
			break;
		case F_CA_FILE:
			val = o->ca_file;
			note = o->ca_file ? NULL : "not set: the system's CA certificates";
			break;
		default:
			if (k->kind >= K_FUSE_BOOL) {
				const struct entry *e = NULL;
				for (int s = 0; c && org > 0 && s < c->nsec; s++) {
					const struct entry *x = entry_get(c, s, k->field);
					if (x && x->line == org)
						e = x;
				}
				val = e ? e->value : NULL;
				note = e ? NULL : "not set in the file";
			} else if (k->kind == K_WORD || k->kind == K_PATH) {
				val = *(char *const *)((const char *)o + k->off);
			} else if (k->kind == K_BOOL) {
				snprintf(v, sizeof v, "%s",
					 *(const int *)((const char *)o + k->off) ? "yes" : "no");
			} else {
				snprintf(v, sizeof v, "%d", *(const int *)((const char *)o + k->off));
			}
		}
		print_line(out, c, k->name, val, org, note);
	}
}

/* Problems that opts_finish cannot see: files and directories. */
static int check_paths(const struct lzfs_opts *o, FILE *errf, const char *section)
{
	int bad = 0;
	struct stat st;
	const struct {
		const char *what, *path;
		int dir;
	} p[] = {
		{"landing", o->landing, 1},
		{"mountpoint", o->mountpoint, 1},
		{"credentials", o->credentials, 0},
		{"ca_file", o->ca_file, 0},
	};
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
		if (!p[i].path)
			continue;
		if (stat(p[i].path, &st) < 0) {
			fprintf(errf, "lzfs: [%s] %s %s: %s\n", section, p[i].what, p[i].path,
				strerror(errno));
			bad = 1;
		} else if (p[i].dir && !S_ISDIR(st.st_mode)) {
			fprintf(errf, "lzfs: [%s] %s %s is not a directory\n", section, p[i].what,
				p[i].path);
			bad = 1;
		} else if (!p[i].dir && !S_ISREG(st.st_mode)) {
			fprintf(errf, "lzfs: [%s] %s %s is not a regular file\n", section, p[i].what,
				p[i].path);
			bad = 1;
		}
	}
	if (o->credentials && stat(o->credentials, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 077)) {
		fprintf(errf, "lzfs: [%s] credentials %s is readable by others (mode %03o); "
			      "lzfs needs mode 0600\n", section, o->credentials, st.st_mode & 0777);
		bad = 1;
	}
	return bad;
}

static int check_one(const struct cfg *c, int idx, const struct lzfs_opts *cmd,
		     unsigned long long mask, FILE *out, FILE *errf)
{
	struct lzfs_opts e;
	int origin[F_COUNT] = {0};
	char err[512];
	const char *name = c && idx >= 0 ? cfg_name(c, idx) : "command line";
	opts_defaults(&e);
	copy_cmdline(&e, cmd, mask, origin);
	if (cmd->url && !source_is_name(cmd)) {
		e.url = strdup(cmd->url);
		origin[F_URL] = -1;
	}
	if (cmd->mountpoint) {
		e.mountpoint = strdup(cmd->mountpoint);
		origin[F_MOUNTPOINT] = -1;
	}
	int bad = 0;
	if (c && apply(c, idx, mask, &e, NULL, origin, err, sizeof err) < 0) {
		fprintf(errf, "lzfs: %s\n", err);
		bad = 1;
	} else if (c && idx >= 0 && require(c, idx, &e, err, sizeof err) < 0) {
		fprintf(errf, "lzfs: %s\n", err);
		bad = 1;
	} else if (opts_finish(&e, err, sizeof err) < 0) {
		fprintf(errf, "lzfs: [%s] %s\n", name, err);
		bad = 1;
	} else {
		bad = check_paths(&e, errf, name);
		print_opts(out, c, name, &e, origin);
	}
	opts_free(&e);
	return bad;
}

int cfg_check_main(struct lzfs_opts *o, int argc, char **argv, FILE *out, FILE *errf)
{
	const char *path = o->config_file ? o->config_file : CFG_DEFAULT_PATH;
	unsigned long long mask = cfg_cmdline_mask(argc, argv);
	char err[512];
	struct cfg *c = NULL;
	int bad = 0;
	if (!o->config_file && access(path, F_OK) < 0 && !source_is_name(o) && !o->mount_name) {
		if (!o->url) {
			fprintf(errf, "lzfs: no configuration file: %s does not exist\n", path);
			return 1;
		}
		fprintf(out, "; no configuration file (%s does not exist)\n", path);
		return check_one(NULL, -1, o, mask, out, errf);
	}
	if (cfg_load(path, &c, err, sizeof err) < 0) {
		fprintf(errf, "lzfs: %s\n", err);
		return 1;
	}
	const char *name = o->mount_name ? o->mount_name : source_is_name(o) ? o->url : NULL;
	fprintf(out, "; %s: effective configuration (command line > section > [global] > default)\n",
		path);
	if (name || o->mountpoint) {
		int idx = cfg_find(c, name, o->mountpoint, err, sizeof err);
		if (idx == -ENOENT) {
			fprintf(errf, "lzfs: %s: no section has mountpoint %s\n", path, o->mountpoint);
			bad = 1;
		} else if (idx < 0) {
			fprintf(errf, "lzfs: %s\n", err);
			bad = 1;
		} else {
			bad = check_one(c, idx, o, mask, out, errf);
		}
	} else if (cfg_count(c) == 0) {
		fprintf(out, "; no mount sections: nothing to mount\n");
	} else {
		for (int i = 0; i < cfg_count(c); i++) {
			if (i)
				fprintf(out, "\n");
			bad |= check_one(c, i, o, mask, out, errf);
		}
	}
	cfg_free(c);
	return bad ? 1 : 0;
}
