/* scan.c - see scan.h.
 *
 * Threads: the caller walks (scan_walk, scan_register) and queues files in
 * tasks of files_per_task; cfg.workers threads, owned by the scan, take
 * tasks and act on each file. The queue is bounded, so a walker that finds
 * a million new files waits for the workers instead of holding them all.
 *
 * Locking: c->mu guards the task queue, the batch being filled and the
 * stats. Workers never hold it while doing I/O.
 */
#include "scan.h"
#include "versions.h"
#include "xattrs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "jobs.h"
#include "log.h"

extern char **environ;

#define MIB (1024ull * 1024)
/* Internal: "this is not a regular file" (devices, FIFOs, sockets). */
#define E_NOTREG EMEDIUMTYPE

/* ------------------------------------------------------------------ */
/* modes and decisions */

static const char *const mode_names[] = {
	[SCAN_PUT] = "put",
	[SCAN_PUT_SYNC] = "put-sync",
	[SCAN_PUT_APPEND] = "put-append",
	[SCAN_REGISTER] = "register",
	[SCAN_NOOP] = "no-op",
};

int scan_mode_parse(const char *s)
{
	for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
		if (s && strcmp(s, mode_names[i]) == 0)
			return i;
	if (s && (strcmp(s, "noop") == 0 || strcmp(s, "no_op") == 0))
		return SCAN_NOOP;
	if (s && strcmp(s, "put_sync") == 0)
		return SCAN_PUT_SYNC;
	if (s && strcmp(s, "put_append") == 0)
		return SCAN_PUT_APPEND;
	return -EINVAL;
}

const char *scan_mode_name(int mode)
{
	if (mode < 0 || mode > SCAN_NOOP)
		return "?";
	return mode_names[mode];
}

int scan_overwrite_parse(const char *s)
{
	if (s && strcmp(s, "version") == 0)
		return SCAN_OVERWRITE_VERSION;
	if (s && strcmp(s, "replace") == 0)
		return SCAN_OVERWRITE_REPLACE;
	if (s && strcmp(s, "deny") == 0)
		return SCAN_OVERWRITE_DENY;
	return -EINVAL;
}

const char *scan_action_name(int a)
{
	static const char *const n[] = {"unchanged", "new", "changed", "verify", "append", "busy"};
	return a >= 0 && a <= SCAN_BUSY ? n[a] : "?";
}

int scan_decide(int mode, int64_t size, int64_t mtime_ns, const struct scan_row *row)
{
	if (!row || row->state == CAT_FAILED || row->state == CAT_DELETED)
		return SCAN_NEW;
	if (row->state == CAT_PENDING || row->state == CAT_UPLOADING)
		return SCAN_BUSY;
	/* ingested */
	if (mode == SCAN_PUT || mode == SCAN_REGISTER)
		return SCAN_SKIP;
	if (size == row->size && mtime_ns == row->mtime_ns)
		return SCAN_SKIP;
	if (size == row->size)
		return row->has_sha256 ? SCAN_VERIFY : SCAN_CHANGED;
	/* Appending needs the old object as a >= 5 MiB non-last part and its
	 * checksum to prove the file only grew. */
	if (mode == SCAN_PUT_APPEND && size > row->size && row->size >= (int64_t)S3_MIN_PART_SIZE &&
	    row->has_sha256)
		return SCAN_APPEND;
	return SCAN_CHANGED;
}

/* ------------------------------------------------------------------ */
/* key templates */

enum tvar {
	V_LIT = 0, V_PREFIX, V_RELPATH, V_DIR, V_NAME, V_STEM, V_EXT, V_YYYY, V_MM, V_DD, V_HH,
	V_HOST,
};

static const struct {
	const char *name;
	enum tvar v;
} tvars[] = {
	{"prefix", V_PREFIX}, {"relpath", V_RELPATH}, {"dir", V_DIR}, {"name", V_NAME},
	{"stem", V_STEM}, {"ext", V_EXT}, {"yyyy", V_YYYY}, {"mm", V_MM}, {"dd", V_DD},
	{"hh", V_HH}, {"host", V_HOST},
};

struct ttok {
	enum tvar v;
	char *lit;              /* V_LIT */
};

struct scan_tmpl {
	struct ttok *tok;
	int ntok;
	int dir_stable;
	char host[256];
};

void scan_tmpl_free(struct scan_tmpl *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->ntok; i++)
		free(t->tok[i].lit);
	free(t->tok);
	free(t);
}

static int tok_push(struct scan_tmpl *t, enum tvar v, const char *lit, size_t litlen)
{
	struct ttok *n = realloc(t->tok, (size_t)(t->ntok + 1) * sizeof *n);
	if (!n)
		return -ENOMEM;
	t->tok = n;
	n[t->ntok].v = v;
	n[t->ntok].lit = NULL;
	if (v == V_LIT && !(n[t->ntok].lit = strndup(lit, litlen)))
		return -ENOMEM;
	t->ntok++;
	return 0;
}

/* Appends to a growable string. */
struct sbuf {
	char *s;
	size_t len, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* The key's segments are all real names: no "", "." or "..". */
static const char *bad_segment(const char *key)
{
	for (const char *s = key;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0)
			return "an empty segment";
		if (n == 1 && s[0] == '.')
			return "a '.' segment";
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return "a '..' segment";
		if (!e)
			return NULL;
		s = e + 1;
	}
}

static int utf8_valid(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s;
		int n;
		unsigned min;
		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, min = 0x80, c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, min = 0x800, c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return 0;
		}
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

struct tvals {
	const char *prefix, *relpath;
	char dir[4096];
	const char *name;
	char stem[256], ext[256];
	char yyyy[8], mm[4], dd[4], hh[4];
	const char *host;
};

static const char *tval(const struct tvals *v, enum tvar var)
{
	switch (var) {
	case V_PREFIX: return v->prefix;
	case V_RELPATH: return v->relpath;
	case V_DIR: return v->dir;
	case V_NAME: return v->name;
	case V_STEM: return v->stem;
	case V_EXT: return v->ext;
	case V_YYYY: return v->yyyy;
	case V_MM: return v->mm;
	case V_DD: return v->dd;
	case V_HH: return v->hh;
	case V_HOST: return v->host;
	default: return "";
	}
}

/* Expansion without checks; path variables swallow their '/' when empty. */
static char *tmpl_render(const struct scan_tmpl *t, const struct tvals *v)
{
	struct sbuf b = {0};
	int swallow = 0;
	sb_add(&b, "", 0);
	for (int i = 0; i < t->ntok; i++) {
		const struct ttok *k = &t->tok[i];
		if (k->v == V_LIT) {
			const char *s = k->lit;
			if (swallow && *s == '/')
				s++;
			sb_str(&b, s);
			swallow = 0;
			continue;
		}
		const char *val = tval(v, k->v);
		sb_str(&b, val);
		swallow = (k->v == V_PREFIX || k->v == V_DIR) && !*val;
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

int scan_tmpl_new(const char *text, struct scan_tmpl **out, char *err, size_t errlen)
{
	*out = NULL;
	struct scan_tmpl *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	if (gethostname(t->host, sizeof t->host - 1) < 0 || !t->host[0])
		snprintf(t->host, sizeof t->host, "localhost");
	int rc = 0;
	struct sbuf lit = {0};
	for (const char *p = text; *p && rc == 0;) {
		if (p[0] == '{' && p[1] == '{') {
			sb_add(&lit, "{", 1);
			p += 2;
		} else if (p[0] == '}' && p[1] == '}') {
			sb_add(&lit, "}", 1);
			p += 2;
		} else if (p[0] == '}') {
			snprintf(err, errlen, "key template '%s': unmatched '}' (write '}}' for a brace)",
				 text);
			rc = -EINVAL;
		} else if (p[0] == '{') {
			const char *e = strchr(p, '}');
			if (!e) {
				snprintf(err, errlen, "key template '%s': unterminated '{'", text);
				rc = -EINVAL;
				break;
			}
			size_t n = (size_t)(e - p - 1);
			int found = -1;
			for (size_t i = 0; i < sizeof tvars / sizeof tvars[0]; i++)
				if (strlen(tvars[i].name) == n && strncmp(tvars[i].name, p + 1, n) == 0)
					found = (int)tvars[i].v;
			if (found < 0) {
				snprintf(err, errlen,
					 "key template '%s': unknown variable {%.*s} (known: prefix, "
					 "relpath, dir, name, stem, ext, yyyy, mm, dd, hh, host)",
					 text, (int)n, p + 1);
				rc = -EINVAL;
				break;
			}
			if (lit.len && (rc = tok_push(t, V_LIT, lit.s, lit.len)) < 0)
				break;
			lit.len = 0;
			rc = tok_push(t, (enum tvar)found, NULL, 0);
			p = e + 1;
		} else {
			sb_add(&lit, p, 1);
			p++;
		}
	}
	if (rc == 0 && lit.oom)
		rc = -ENOMEM;
	if (rc == 0 && lit.len)
		rc = tok_push(t, V_LIT, lit.s, lit.len);
	free(lit.s);
	if (rc < 0)
		goto fail;

	/* The shape: must start with {prefix} followed by '/' (or be only it,
	 * which names no file), must name each file, path variables must stand
	 * as whole segments. */
	rc = -EINVAL;
	if (t->ntok == 0 || t->tok[0].v != V_PREFIX) {
		snprintf(err, errlen, "key template '%s' must start with {prefix} so that keys stay "
				      "under the target prefix", text);
		goto fail;
	}
	int names_file = 0;
	for (int i = 0; i < t->ntok; i++) {
		enum tvar v = t->tok[i].v;
		if (v == V_RELPATH || v == V_NAME || v == V_STEM)
			names_file = 1;
		if (v == V_PREFIX && i > 0) {
			snprintf(err, errlen, "key template '%s': {prefix} may only start the template",
				 text);
			goto fail;
		}
		if (v == V_PREFIX || v == V_DIR) {
			int next_slash = i + 1 < t->ntok && t->tok[i + 1].v == V_LIT &&
					 t->tok[i + 1].lit[0] == '/';
			int prev_slash = i == 0 || (t->tok[i - 1].v == V_LIT &&
						    t->tok[i - 1].lit[strlen(t->tok[i - 1].lit) - 1] == '/');
			if (!next_slash || !prev_slash) {
				snprintf(err, errlen, "key template '%s': {%s} must be a whole path "
						      "segment, followed by '/'", text,
					 v == V_PREFIX ? "prefix" : "dir");
				goto fail;
			}
		}
	}
	if (!names_file) {
		snprintf(err, errlen, "key template '%s' names no file ({relpath}, {name} or {stem}): "
				      "every file would get the same key", text);
		goto fail;
	}
	/* Literal segments: render with every variable non-empty and check. */
	struct tvals v = {.prefix = "p", .relpath = "r", .name = "n", .host = "h"};
	strcpy(v.dir, "d");
	strcpy(v.stem, "s");
	strcpy(v.ext, "e");
	strcpy(v.yyyy, "y");
	strcpy(v.mm, "m");
	strcpy(v.dd, "d");
	strcpy(v.hh, "h");
	char *shape = tmpl_render(t, &v);
	if (!shape) {
		rc = -ENOMEM;
		goto fail;
	}
	const char *bad = bad_segment(shape);
	free(shape);
	if (bad) {
		snprintf(err, errlen, "key template '%s' gives keys with %s", text, bad);
		goto fail;
	}
	/* The directory part may use only {prefix}, {dir} and literals for the
	 * catalog to be listed once per directory. */
	int last_slash_tok = -1;
	for (int i = 0; i < t->ntok; i++)
		if (t->tok[i].v == V_LIT && strchr(t->tok[i].lit, '/'))
			last_slash_tok = i;
		else if (t->tok[i].v == V_RELPATH)
			last_slash_tok = i; /* its own '/'s: handled below */
	t->dir_stable = 1;
	for (int i = 0; i < last_slash_tok; i++)
		if (t->tok[i].v != V_LIT && t->tok[i].v != V_PREFIX && t->tok[i].v != V_DIR)
			t->dir_stable = 0;
	if (last_slash_tok >= 0 && t->tok[last_slash_tok].v == V_RELPATH) {
		/* "{prefix}/x/{relpath}[suffix-without-slash]": directory = f(dir). */
		for (int i = last_slash_tok + 1; i < t->ntok; i++)
			if (t->tok[i].v != V_LIT)
				t->dir_stable = 0;
	}
	*out = t;
	return 0;
fail:
	scan_tmpl_free(t);
	return rc;
}

int scan_tmpl_dir_stable(const struct scan_tmpl *t) { return t->dir_stable; }

int scan_tmpl_expand(const struct scan_tmpl *t, const char *prefix, const char *relpath,
		     int64_t mtime_ns, char **key, char *err, size_t errlen)
{
	*key = NULL;
	struct tvals v = {.prefix = prefix ? prefix : "", .relpath = relpath, .host = t->host};
	const char *slash = strrchr(relpath, '/');
	v.name = slash ? slash + 1 : relpath;
	size_t dl = slash ? (size_t)(slash - relpath) : 0;
	if (dl >= sizeof v.dir) {
		snprintf(err, errlen, "path too long");
		return -ENAMETOOLONG;
	}
	memcpy(v.dir, relpath, dl);
	v.dir[dl] = '\0';
	const char *dot = strrchr(v.name, '.');
	if (!dot || dot == v.name)
		dot = NULL;
	size_t sl = dot ? (size_t)(dot - v.name) : strlen(v.name);
	if (sl >= sizeof v.stem || strlen(v.name) >= sizeof v.stem) {
		snprintf(err, errlen, "file name too long");
		return -ENAMETOOLONG;
	}
	memcpy(v.stem, v.name, sl);
	v.stem[sl] = '\0';
	snprintf(v.ext, sizeof v.ext, "%s", dot ? dot + 1 : "");
	/* floor: an mtime of -0.5 s is 23:59:59 on 1969-12-31, not 1970 */
	time_t secs = (time_t)(mtime_ns / 1000000000 - (mtime_ns % 1000000000 < 0));
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(v.yyyy, sizeof v.yyyy, "%04d", (tm.tm_year + 1900) % 10000);
	snprintf(v.mm, sizeof v.mm, "%02d", (tm.tm_mon + 1) % 100);
	snprintf(v.dd, sizeof v.dd, "%02d", tm.tm_mday % 100);
	snprintf(v.hh, sizeof v.hh, "%02d", tm.tm_hour % 100);

	char *k = tmpl_render(t, &v);
	if (!k)
		return -ENOMEM;
	const char *bad = bad_segment(k);
	size_t pl = strlen(v.prefix);
	if (bad) {
		snprintf(err, errlen, "the key template gives a key with %s", bad);
	} else if (pl && (strncmp(k, v.prefix, pl) != 0 || k[pl] != '/' || !k[pl + 1])) {
		bad = "x";
		snprintf(err, errlen, "the key template gives a key outside the prefix '%s'", v.prefix);
	} else if (strlen(k) > SCAN_KEY_MAX) {
		bad = "x";
		snprintf(err, errlen, "the key would be longer than %d bytes", SCAN_KEY_MAX);
	} else if (!utf8_valid((const unsigned char *)k)) {
		bad = "x";
		snprintf(err, errlen, "the key would not be valid UTF-8 (S3 keys must be)");
	}
	if (bad) {
		free(k);
		return -EINVAL;
	}
	*key = k;
	return 0;
}

/* ------------------------------------------------------------------ */
/* filters */

struct scan_filter {
	regex_t *file_re, *dir_re;
	int nfile, ndir;
	unsigned types;        /* bit per S_IFMT >> 12 */
};

int scan_filter_new(struct scan_filter **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void scan_filter_free(struct scan_filter *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->nfile; i++)
		regfree(&f->file_re[i]);
	for (int i = 0; i < f->ndir; i++)
		regfree(&f->dir_re[i]);
	free(f->file_re);
	free(f->dir_re);
	free(f);
}

static int re_add(regex_t **arr, int *n, const char *re, char *err, size_t errlen)
{
	regex_t *a = realloc(*arr, (size_t)(*n + 1) * sizeof *a);
	if (!a)
		return -ENOMEM;
	*arr = a;
	/* Whole-name match: "^(RE)$". */
	size_t l = strlen(re);
	char *full = malloc(l + 5);
	if (!full)
		return -ENOMEM;
	snprintf(full, l + 5, "^(%s)$", re);
	int rc = regcomp(&a[*n], full, REG_EXTENDED | REG_NOSUB);
	free(full);
	if (rc) {
		char msg[128];
		regerror(rc, &a[*n], msg, sizeof msg);
		snprintf(err, errlen, "regular expression '%s': %s", re, msg);
		return -EINVAL;
	}
	(*n)++;
	return 0;
}

int scan_filter_add_file_name(struct scan_filter *f, const char *regex, char *err, size_t errlen)
{
	return re_add(&f->file_re, &f->nfile, regex, err, errlen);
}

int scan_filter_add_dir_name(struct scan_filter *f, const char *regex, char *err, size_t errlen)
{
	return re_add(&f->dir_re, &f->ndir, regex, err, errlen);
}

int scan_filter_add_type(struct scan_filter *f, const char *type)
{
	static const struct {
		const char *name;
		mode_t fmt;
	} types[] = {
		{"regular", S_IFREG}, {"directory", S_IFDIR}, {"character", S_IFCHR},
		{"block", S_IFBLK}, {"socket", S_IFSOCK}, {"pipe", S_IFIFO}, {"link", S_IFLNK},
	};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (strcmp(type, types[i].name) == 0) {
			f->types |= 1u << (types[i].fmt >> 12);
			return 0;
		}
	}
	return -EINVAL;
}

int scan_filter_excludes(const struct scan_filter *f, const char *name, mode_t mode)
{
	if (!f)
		return 0;
	if (f->types & (1u << ((mode & S_IFMT) >> 12)))
		return 1;
	if (S_ISDIR(mode)) {
		for (int i = 0; i < f->ndir; i++)
			if (regexec(&f->dir_re[i], name, 0, NULL, 0) == 0)
				return 1;
		return 0;
	}
	for (int i = 0; i < f->nfile; i++)
		if (regexec(&f->file_re[i], name, 0, NULL, 0) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* hooks */

#define HOOK_LOG_MAX 4096

static int env_drop(const char *e)
{
	return strncmp(e, "LZFS_", 5) == 0 || strncmp(e, "AWS_SECRET_ACCESS_KEY=", 22) == 0 ||
	       strncmp(e, "AWS_SESSION_TOKEN=", 18) == 0;
}

/* Logs the hook's output line by line (up to HOOK_LOG_MAX bytes): at
 * notice when the hook failed (its words are the reason), else at info. */
static void hook_log_lines(const char *what, const char *path, char *buf, size_t len, int level)
{
	char *s = buf;
	for (;;) {
		char *nl = memchr(s, '\n', len - (size_t)(s - buf));
		if (!nl)
			break;
		*nl = '\0';
		log_msg(level, "hook %s [%s]: %s", what, path ? path : "", s);
		s = nl + 1;
	}
	if ((size_t)(s - buf) < len)
		log_msg(level, "hook %s [%s]: %.*s", what, path ? path : "",
			(int)(len - (size_t)(s - buf)), s);
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int scan_run_hook(const char *cmd, const struct scan_hook_env *e, int timeout_s)
{
	const char *what = e->hook ? e->hook : "hook";
	/* The environment: ours minus LZFS_* and secrets, plus the values. */
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 16, sizeof *envp);
	char *own[10] = {0};
	int nown = 0;
	if (!envp)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!env_drop(environ[i]))
			envp[k++] = environ[i];
	char size_s[32];
	snprintf(size_s, sizeof size_s, "%lld", (long long)e->size);
	const char *pairs[][2] = {
		{"LZFS_HOOK", e->hook}, {"LZFS_PATH", e->path}, {"LZFS_KEY", e->key},
		{"LZFS_BUCKET", e->bucket}, {"LZFS_MODE", e->mode},
		{"LZFS_SIZE", e->size >= 0 ? size_s : NULL}, {"LZFS_SHA256", e->sha256},
		{"LZFS_ERROR", e->error},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		if (!pairs[i][1])
			continue;
		if (asprintf(&own[nown], "%s=%s", pairs[i][0], pairs[i][1]) < 0) {
			own[nown] = NULL;
			rc = -ENOMEM;
			break;
		}
		envp[k++] = own[nown++];
	}
	envp[k] = NULL;

	int pfd[2] = {-1, -1};
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int fa_ok = 0, at_ok = 0;
	if (rc == 0 && pipe2(pfd, O_CLOEXEC) < 0)
		rc = -errno;
	if (rc == 0) {
		fa_ok = posix_spawn_file_actions_init(&fa) == 0;
		at_ok = posix_spawnattr_init(&at) == 0;
		if (!fa_ok || !at_ok)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
		sigset_t none, def;
		sigemptyset(&none);
		sigfillset(&def);
		posix_spawnattr_setsigmask(&at, &none);
		posix_spawnattr_setsigdefault(&at, &def);
		posix_spawnattr_setpgroup(&at, 0);
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF);
		char *argv[] = {"sh", "-c", (char *)cmd, NULL};
		int s = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, envp);
		if (s) {
			rc = -s;
			log_err("hook %s [%s]: cannot start /bin/sh: %s", what, e->path ? e->path : "",
				strerror(s));
		}
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	if (pfd[1] >= 0)
		close(pfd[1]);
	for (int i = 0; i < nown; i++)
		free(own[i]);
	free(envp);
	if (rc < 0) {
		if (pfd[0] >= 0)
			close(pfd[0]);
		return rc;
	}

	/* Read its output until EOF or the deadline. */
	char buf[HOOK_LOG_MAX];
	size_t got = 0;
	int64_t deadline = mono_ms() + (int64_t)(timeout_s > 0 ? timeout_s : 60) * 1000;
	int timed_out = 0;
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		char tmp[1024];
		ssize_t m = read(pfd[0], tmp, sizeof tmp);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			break;
		size_t room = sizeof buf - got;
		size_t take = (size_t)m < room ? (size_t)m : room;
		memcpy(buf + got, tmp, take);
		got += take;
	}
	if (timed_out) {
		kill(-pid, SIGTERM);
		usleep(200000);
		kill(-pid, SIGKILL);
	}
	close(pfd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (got)
		hook_log_lines(what, e->path, buf, got, ok ? LZ_INFO : LZ_NOTICE);
	if (timed_out) {
		log_warn("hook %s [%s]: timed out after %d s; killed", what, e->path ? e->path : "",
			 timeout_s);
		return -ETIMEDOUT;
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code)
		log_notice("hook %s [%s]: exit status %d", what, e->path ? e->path : "", code);
	return code;
}

/* ------------------------------------------------------------------ */
/* the scan */

struct titem {
	char *relpath;          /* below rootfd; or the key for register items */
	int64_t size;
	/* register mode: the object as listed */
	char *etag;
	int64_t mtime_ns;
};

struct task {
	struct task *next;
	int rootfd;
	int n, cap;
	struct titem *items;
};

struct scan_ctx {
	struct scan_config cfg;
	char *bucket, *prefix, *collection, *source, *skip_top, *tmpl_text;
	char *pre_hook, *post_hook, *fail_hook;
	struct scan_tmpl *tmpl;
	struct s3_meta *meta;
	char **meta_strs;
	int nmeta;
	struct s3_put_opts put_opts;
	struct cat *cat;
	struct s3_client *s3;
	struct up_pool *pool;

	pthread_mutex_t mu;
	pthread_cond_t cv_work;    /* workers wait for tasks */
	pthread_cond_t cv_room;    /* submitters wait for room */
	pthread_cond_t cv_idle;    /* scan_wait */
	pthread_cond_t cv_cancel;  /* retry sleeps */
	struct task *qhead, *qtail;
	int qlen, qmax;
	int active;                /* tasks being worked on */
	int idle;                  /* workers waiting for a task */
	int stopping, cancelled;
	struct task *batch;        /* being filled by scan_submit */
	struct scan_stats st;
	/* Paths a worker is deciding on or sending (under mu): a path queued
	 * twice (a rescanner walk finds it again before the first upload
	 * registered it) must not be sent, and cataloged, twice. */
	char **claimed;
	int nclaimed, capclaimed;

	pthread_t *threads;
	int nthreads;

	/* Upload slots: cfg.workers files are sent at once, while the other
	 * threads wait for their catalog commits or read files, so that the
	 * catalog's fsync latency does not idle the network. */
	pthread_mutex_t slot_mu;
	pthread_cond_t slot_cv;
	int slots;
};

#define THREADS_PER_SLOT 4

static void slot_get(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->slot_mu);
	while (c->slots == 0)
		pthread_cond_wait(&c->slot_cv, &c->slot_mu);
	c->slots--;
	pthread_mutex_unlock(&c->slot_mu);
}

static void slot_put(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->slot_mu);
	c->slots++;
	pthread_cond_signal(&c->slot_cv);
	pthread_mutex_unlock(&c->slot_mu);
}

#define STAT_ADD(c, field, v)                    \
	do {                                     \
		pthread_mutex_lock(&(c)->mu);    \
		(c)->st.field += (v);            \
		pthread_mutex_unlock(&(c)->mu);  \
	} while (0)

static void task_free(struct task *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n; i++) {
		free(t->items[i].relpath);
		free(t->items[i].etag);
	}
	free(t->items);
	free(t);
}

static int64_t ts_ns(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec; }

static int64_t wall_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return ts_ns(&t);
}

char *scan_catpath(struct scan_ctx *c, const char *relpath, const char *key)
{
	if (c->cfg.path_mode == SCAN_PATH_REL)
		return strdup(relpath);
	/* key = prefix/rest (the template guarantees it) */
	size_t pl = strlen(c->prefix);
	const char *rest = pl ? key + pl + 1 : key;
	if (!c->collection)
		return strdup(key);
	if (!*c->collection)
		return strdup(rest);
	char *p;
	return asprintf(&p, "%s/%s", c->collection, rest) < 0 ? NULL : p;
}

int scan_key(struct scan_ctx *c, const char *relpath, int64_t mtime_ns, char **key, char **catpath,
	     char *err, size_t errlen)
{
	*catpath = NULL;
	int rc = scan_tmpl_expand(c->tmpl, c->prefix, relpath, mtime_ns, key, err, errlen);
	if (rc < 0)
		return rc;
	if (!(*catpath = scan_catpath(c, relpath, *key))) {
		free(*key);
		*key = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Opens relpath below rootfd for reading, only if it is a regular file.
 * The O_PATH open cannot trigger a device's or FIFO's open(); the reopen
 * through /proc/self/fd opens the very inode fstat saw. */
static int open_regular(int rootfd, const char *relpath, struct stat *st)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int pfd = (int)syscall(SYS_openat2, rootfd, relpath, &how, sizeof how);
	if (pfd < 0)
		return errno == ELOOP ? -ELOOP : -errno;
	if (fstat(pfd, st) < 0) {
		int e = errno;
		close(pfd);
		return -e;
	}
	if (!S_ISREG(st->st_mode)) {
		close(pfd);
		return -E_NOTREG;
	}
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int e = errno;
	close(pfd);
	if (fd < 0 && e == ENOENT) {
		/* No /proc: O_NONBLOCK keeps a FIFO swapped in from blocking
		 * us, and the fstat below refuses anything else. */
		how.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
		fd = (int)syscall(SYS_openat2, rootfd, relpath, &how, sizeof how);
		e = errno;
	}
	if (fd < 0)
		return -e;
	struct stat st2;
	if (fstat(fd, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino ||
	    st2.st_dev != st->st_dev) {
		close(fd);
		return -ESTALE;
	}
	*st = st2;
	return fd;
}

/* ------------------------------------------------------------------ */
/* files open for writing */

struct scan_openset {
	uint64_t *keys;         /* open addressing, 0 = empty */
	size_t cap, n;
};

static uint64_t os_key(dev_t dev, ino_t ino)
{
	uint64_t k = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ (uint64_t)ino;
	return k ? k : 1;
}

static int os_put(struct scan_openset *s, uint64_t k)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		uint64_t *keys = calloc(cap, sizeof *keys);
		if (!keys)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->keys[i])
				continue;
			size_t j = s->keys[i] & (cap - 1);
			while (keys[j])
				j = (j + 1) & (cap - 1);
			keys[j] = s->keys[i];
		}
		free(s->keys);
		s->keys = keys;
		s->cap = cap;
	}
	size_t j = k & (s->cap - 1);
	while (s->keys[j] && s->keys[j] != k)
		j = (j + 1) & (s->cap - 1);
	if (!s->keys[j]) {
		s->keys[j] = k;
		s->n++;
	}
	return 0;
}

int scan_openset_has(const struct scan_openset *s, dev_t dev, ino_t ino)
{
	if (!s || !s->cap)
		return 0;
	uint64_t k = os_key(dev, ino);
	size_t j = k & (s->cap - 1);
	while (s->keys[j]) {
		if (s->keys[j] == k)
			return 1;
		j = (j + 1) & (s->cap - 1);
	}
	return 0;
}

void scan_openset_free(struct scan_openset *s)
{
	if (s)
		free(s->keys);
	free(s);
}

/* The "flags:" line of /proc/PID/fdinfo/N, octal. */
static int fdinfo_flags(int dfd, const char *name, long *flags)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *f = strstr(buf, "flags:");
	if (!f)
		return -EIO;
	*flags = strtol(f + 6, NULL, 8);
	return 0;
}

int scan_openset_load(struct scan_openset **out)
{
	struct scan_openset *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	DIR *proc = opendir("/proc");
	if (!proc) {
		*out = s; /* no /proc: nothing known to be open */
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(proc))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof path, "/proc/%s/fdinfo", de->d_name);
		int ifd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ifd < 0)
			continue; /* gone, or not ours to see */
		snprintf(path, sizeof path, "/proc/%s/fd", de->d_name);
		int ffd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *fds = ffd >= 0 ? fdopendir(dup(ifd)) : NULL;
		struct dirent *fe;
		while (fds && (fe = readdir(fds))) {
			if (fe->d_name[0] == '.')
				continue;
			long flags = 0;
			if (fdinfo_flags(ifd, fe->d_name, &flags) < 0 || (flags & O_ACCMODE) == O_RDONLY)
				continue;
			struct stat st;
			if (fstatat(ffd, fe->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
				os_put(s, os_key(st.st_dev, st.st_ino));
		}
		if (fds)
			closedir(fds);
		if (ffd >= 0)
			close(ffd);
		close(ifd);
	}
	closedir(proc);
	*out = s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* setup */

int scan_meta_check(const char *item, char *err, size_t errlen)
{
	const char *eq = strchr(item, '=');
	if (!eq || eq == item) {
		snprintf(err, errlen, "metadata '%s': expected NAME=VALUE", item);
		return -EINVAL;
	}
	for (const char *p = item; p < eq; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_')) {
			snprintf(err, errlen, "metadata name '%.*s': use letters, digits, '-' and '_'",
				 (int)(eq - item), item);
			return -EINVAL;
		}
	}
	for (const char *p = eq + 1; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			snprintf(err, errlen, "metadata %.*s: the value must be printable ASCII",
				 (int)(eq - item), item);
			return -EINVAL;
		}
	}
	return 0;
}

static void *worker_main(void *arg);

static char *dup_or_null(const char *s, int *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

int scan_new(const struct scan_config *cfg, struct cat *cat, struct s3_client *s3,
	     struct up_pool *pool, struct scan_ctx **out, char *err, size_t errlen)
{
	*out = NULL;
	struct scan_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (c->cfg.workers <= 0)
		c->cfg.workers = 8;
	if (c->cfg.workers > 256)
		c->cfg.workers = 256;
	if (c->cfg.files_per_task <= 0)
		c->cfg.files_per_task = 50;
	if (c->cfg.hook_timeout <= 0)
		c->cfg.hook_timeout = 60;
	if (c->cfg.max_retries < 0)
		c->cfg.max_retries = 0;
	if (c->cfg.retry_delay_ms <= 0)
		c->cfg.retry_delay_ms = 1000;
	if (!c->cfg.part_size)
		c->cfg.part_size = 8 * MIB;
	c->cat = cat;
	c->s3 = s3;
	c->pool = pool;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv_work, NULL);
	pthread_cond_init(&c->cv_room, NULL);
	pthread_cond_init(&c->cv_idle, NULL);
	pthread_cond_init(&c->cv_cancel, NULL);
	c->slots = c->cfg.workers;
	pthread_mutex_init(&c->slot_mu, NULL);
	pthread_cond_init(&c->slot_cv, NULL);
	int nthreads = c->cfg.workers * THREADS_PER_SLOT;
	if (nthreads > 256)
		nthreads = 256;
	c->qmax = nthreads * 2;
	int oom = 0, rc;
	c->bucket = dup_or_null(cfg->bucket ? cfg->bucket : "", &oom);
	c->prefix = dup_or_null(cfg->prefix ? cfg->prefix : "", &oom);
	c->collection = dup_or_null(cfg->collection, &oom);
	c->source = dup_or_null(cfg->source ? cfg->source : "scan", &oom);
	c->skip_top = dup_or_null(cfg->skip_top, &oom);
	c->pre_hook = dup_or_null(cfg->pre_hook, &oom);
	c->post_hook = dup_or_null(cfg->post_hook, &oom);
	c->fail_hook = dup_or_null(cfg->fail_hook, &oom);
	c->tmpl_text = dup_or_null(cfg->key_template ? cfg->key_template : SCAN_DEFAULT_TEMPLATE,
				   &oom);
	if (oom) {
		rc = -ENOMEM;
		goto fail;
	}
	c->cfg.bucket = c->bucket;
	c->cfg.prefix = c->prefix;
	c->cfg.collection = c->collection;
	c->cfg.source = c->source;
	c->cfg.skip_top = c->skip_top;
	c->cfg.pre_hook = c->pre_hook;
	c->cfg.post_hook = c->post_hook;
	c->cfg.fail_hook = c->fail_hook;
	c->cfg.key_template = c->tmpl_text;
	c->cfg.meta = NULL;
	if ((rc = scan_tmpl_new(c->tmpl_text, &c->tmpl, err, errlen)) < 0)
		goto fail;
	if (cfg->nmeta > 0) {
		c->meta = calloc((size_t)cfg->nmeta, sizeof *c->meta);
		c->meta_strs = calloc((size_t)cfg->nmeta, sizeof *c->meta_strs);
		if (!c->meta || !c->meta_strs) {
			rc = -ENOMEM;
			goto fail;
		}
		for (int i = 0; i < cfg->nmeta; i++) {
			if ((rc = scan_meta_check(cfg->meta[i], err, errlen)) < 0)
				goto fail;
			char *eq = strchr(cfg->meta[i], '=');
			if (!(c->meta_strs[i] = strdup(cfg->meta[i]))) {
				rc = -ENOMEM;
				goto fail;
			}
			c->nmeta = i + 1;
			char *name = c->meta_strs[i];
			name[eq - cfg->meta[i]] = '\0';
			c->meta[i].name = name;
			c->meta[i].value = name + strlen(name) + 1;
		}
	}
	c->put_opts.checksum_sha256 = 1;
	c->put_opts.meta = c->meta;
	c->put_opts.nmeta = c->nmeta;

	c->threads = calloc((size_t)nthreads, sizeof *c->threads);
	if (!c->threads) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < nthreads; i++) {
		if ((rc = pthread_create(&c->threads[i], NULL, worker_main, c)) != 0) {
			rc = -rc;
			snprintf(err, errlen, "cannot start scan workers: %s", strerror(-rc));
			goto fail;
		}
		c->nthreads++;
	}
	*out = c;
	return 0;
fail:
	scan_free(c);
	return rc;
}

void scan_free(struct scan_ctx *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cv_work);
	pthread_cond_broadcast(&c->cv_room);
	pthread_cond_broadcast(&c->cv_cancel);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
	while (c->qhead) {
		struct task *t = c->qhead;
		c->qhead = t->next;
		task_free(t);
	}
	task_free(c->batch);
	free(c->threads);
	scan_tmpl_free(c->tmpl);
	for (int i = 0; i < c->nmeta; i++)
		free(c->meta_strs[i]);
	free(c->meta_strs);
	free(c->meta);
	free(c->bucket);
	free(c->prefix);
	free(c->collection);
	free(c->source);
	free(c->skip_top);
	free(c->pre_hook);
	free(c->post_hook);
	free(c->fail_hook);
	free(c->tmpl_text);
	pthread_cond_destroy(&c->cv_work);
	pthread_cond_destroy(&c->cv_room);
	pthread_cond_destroy(&c->cv_idle);
	pthread_cond_destroy(&c->cv_cancel);
	pthread_cond_destroy(&c->slot_cv);
	pthread_mutex_destroy(&c->slot_mu);
	pthread_mutex_destroy(&c->mu);
	free(c->claimed);
	free(c);
}

void scan_get_stats(struct scan_ctx *c, struct scan_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	pthread_mutex_unlock(&c->mu);
}

void scan_cancel(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	c->cancelled = 1;
	while (c->qhead) {
		struct task *t = c->qhead;
		c->qhead = t->next;
		c->st.cancelled += (uint64_t)t->n;
		task_free(t);
	}
	c->qtail = NULL;
	c->qlen = 0;
	if (c->batch) {
		c->st.cancelled += (uint64_t)c->batch->n;
		task_free(c->batch);
		c->batch = NULL;
	}
	pthread_cond_broadcast(&c->cv_room);
	pthread_cond_broadcast(&c->cv_idle);
	pthread_cond_broadcast(&c->cv_work);
	pthread_cond_broadcast(&c->cv_cancel);
	pthread_mutex_unlock(&c->mu);
}

static int stopping(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	int v = c->stopping;
	pthread_mutex_unlock(&c->mu);
	return v;
}

int scan_cancelled(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	int v = c->cancelled;
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* ------------------------------------------------------------------ */
/* the queue */

/* Called with c->mu held. Waits for room; the batch is queued or, after a
 * cancel, dropped. */
static void queue_batch_locked(struct scan_ctx *c)
{
	struct task *t = c->batch;
	c->batch = NULL;
	if (!t)
		return;
	while (c->qlen >= c->qmax && !c->cancelled && !c->stopping)
		pthread_cond_wait(&c->cv_room, &c->mu);
	if (c->cancelled || c->stopping) {
		c->st.cancelled += (uint64_t)t->n;
		task_free(t);
		return;
	}
	if (c->qtail)
		c->qtail->next = t;
	else
		c->qhead = t;
	c->qtail = t;
	c->qlen++;
	pthread_cond_signal(&c->cv_work);
}

static int submit_item(struct scan_ctx *c, int rootfd, struct titem *it)
{
	pthread_mutex_lock(&c->mu);
	if (c->cancelled) {
		c->st.cancelled++;
		pthread_mutex_unlock(&c->mu);
		free(it->relpath);
		free(it->etag);
		return -ECANCELED;
	}
	if (c->batch && c->batch->rootfd != rootfd)
		queue_batch_locked(c);
	if (!c->batch) {
		c->batch = calloc(1, sizeof *c->batch);
		if (c->batch) {
			c->batch->rootfd = rootfd;
			c->batch->cap = c->cfg.files_per_task;
			c->batch->items = calloc((size_t)c->batch->cap, sizeof *c->batch->items);
			if (!c->batch->items) {
				free(c->batch);
				c->batch = NULL;
			}
		}
		if (!c->batch) {
			pthread_mutex_unlock(&c->mu);
			free(it->relpath);
			free(it->etag);
			return -ENOMEM;
		}
	}
	c->batch->items[c->batch->n++] = *it;
	c->st.queued++;
	c->st.queued_bytes += (uint64_t)(it->size > 0 ? it->size : 0);
	/* A full batch goes; so does a partial one while a worker has
	 * nothing to do: batching is for when the workers are saturated. */
	if (c->batch->n == c->batch->cap || c->idle > c->qlen)
		queue_batch_locked(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int scan_submit(struct scan_ctx *c, int rootfd, const char *relpath, int64_t size)
{
	struct titem it = {.relpath = strdup(relpath), .size = size};
	if (!it.relpath)
		return -ENOMEM;
	return submit_item(c, rootfd, &it);
}

void scan_flush(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	queue_batch_locked(c);
	pthread_mutex_unlock(&c->mu);
}

void scan_wait(struct scan_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	queue_batch_locked(c);
	while ((c->qlen > 0 || c->active > 0) && !c->stopping)
		pthread_cond_wait(&c->cv_idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/* Sleeps ms unless the scan is cancelled; 1 if cancelled. */
static int sleep_cancellable(struct scan_ctx *c, int ms)
{
	struct timespec abs;
	clock_gettime(CLOCK_REALTIME, &abs);
	abs.tv_sec += ms / 1000;
	abs.tv_nsec += (long)(ms % 1000) * 1000000;
	if (abs.tv_nsec >= 1000000000) {
		abs.tv_sec++;
		abs.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->mu);
	while (!c->cancelled && !c->stopping) {
		if (pthread_cond_timedwait(&c->cv_cancel, &c->mu, &abs) == ETIMEDOUT)
			break;
	}
	int v = c->cancelled || c->stopping;
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* ------------------------------------------------------------------ */
/* acting on one file */

enum outcome {
	O_UPLOADED, O_APPENDED, O_REGISTERED, O_TOUCHED, O_WOULD, O_UNCHANGED, O_BUSY,
	O_HOOK_SKIP, O_GONE, O_NOTREG, O_UNREADABLE, O_FAILED, O_RETRY,
};

/* What one file became, for hooks and logs. */
struct fres {
	char *key;
	char *catpath;
	int64_t size;
	char sha256[65];
	char err[256];
};

static int open_dir_beneath(int rootfd, const char *rel);

/* ver_drop_stale for a file of the tree (the spool: stale_copies). */
static int drop_stale_copy(struct scan_ctx *c, int rootfd, const char *rel, int fd,
			   const struct stat *st, struct fres *f)
{
	const char *slash = strrchr(rel, '/');
	char *dir = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
	if (!dir)
		return -ENOMEM;
	int dfd = open_dir_beneath(rootfd, dir);
	free(dir);
	if (dfd < 0)
		return dfd;
	char who[256];
	int rc = ver_drop_stale(c->cat, f->catpath, dfd, slash ? slash + 1 : rel, fd, st, who,
				sizeof who);
	close(dfd);
	return rc;
}

static void fres_clear(struct fres *f)
{
	free(f->key);
	free(f->catpath);
	memset(f, 0, sizeof *f);
}

static void fill_obj(struct scan_ctx *c, struct cat_obj *o, const char *catpath, const char *key,
		     const struct stat *st)
{
	cat_obj_from_stat(o, catpath, c->bucket, key, st, c->source);
}

static void row_of(const struct cat_obj *o, struct scan_row *r)
{
	r->id = o->id;
	r->size = o->size;
	r->mtime_ns = o->mtime_ns;
	r->state = (int)o->state;
	r->has_sha256 = o->sha256[0] != '\0';
}

/* Registers an object that is already in S3 and verified, in one
 * transaction when the catalog supports adding it as ingested. */
static int add_ingested(struct scan_ctx *c, struct cat_obj *o, const char *sha256,
			const char *etag)
{
	o->state = CAT_INGESTED;
	snprintf(o->sha256, sizeof o->sha256, "%s", sha256 ? sha256 : "");
	snprintf(o->etag, sizeof o->etag, "%s", etag ? etag : "");
	int rc = cat_obj_add(c->cat, o);
	if (rc == 0 && o->state != CAT_INGESTED) {
		/* A catalog that adds every row pending: walk it through. */
		rc = cat_obj_set_uploading(c->cat, o->id, NULL);
		if (rc == 0)
			rc = cat_obj_set_ingested(c->cat, o->id, o->size, sha256 ? sha256 : "",
						  etag ? etag : "");
	}
	return rc;
}

/* --metadata as catalog AVUs, and the file's user.* xattrs like the mount. */
static void apply_meta(struct scan_ctx *c, int fd, const char *catpath)
{
	for (int i = 0; i < c->nmeta; i++)
		cat_meta_set(c->cat, catpath, c->meta[i].name, c->meta[i].value, NULL);
	if (fd >= 0)
		xa_import(c->cat, fd, catpath);
}

struct up_track {
	struct scan_ctx *c;
	int64_t id;
	int uploading;
	time_t unknown_from, unknown_to; /* create_unknown: S3 may hold an upload we never named */
};

/* An upload S3 may have created for a key while its answer to
 * CreateMultipartUpload was lost or unreadable: looked for once the file's
 * own upload is over (completed or aborted, so not in progress any more),
 * and aborted unless another host's row records it. */
static int unknown_keep(void *arg, const char *upload_id)
{
	struct scan_ctx *c = arg;
	return cat_shared(c->cat) && cat_upload_foreign(c->cat, upload_id) != 0;
}

static void abort_unknown(struct scan_ctx *c, const char *key, time_t from, time_t to)
{
	int rc = up_abort_unknown(c->s3, key, from, to, unknown_keep, c);
	if (rc < 0)
		log_warn("%s: cannot look for an upload S3 may have created without its answer (%s): "
			 "it may stay open", key, strerror(-rc));
}

static void track_create_unknown(void *arg, time_t from, time_t to)
{
	struct up_track *t = arg;
	if (!t->unknown_from)
		t->unknown_from = from;
	t->unknown_to = to;
}

static void track_created(void *arg, const char *upload_id)
{
	struct up_track *t = arg;
	if (cat_obj_set_uploading(t->c->cat, t->id, upload_id) == 0)
		__atomic_store_n(&t->uploading, 1, __ATOMIC_RELEASE);
}

static void track_part(void *arg, int part_number, const char *etag, uint64_t size)
{
	struct up_track *t = arg;
	cat_obj_part_done(t->c->cat, t->id, part_number, etag, (int64_t)size);
}

/* overwrite=version: before new content replaces `key`, the newest ingested
 * version of catpath still stored there is copied server-side to
 * PREFIX/.lzfs/versions/PATH.vN and its row points there (what the landing
 * zone does for files rewritten through the mount). If that fails the key
 * must not be overwritten: the caller gives up on this file for now. */
static int keep_previous(struct scan_ctx *c, const char *catpath, const char *key)
{
	if (c->cfg.overwrite != SCAN_OVERWRITE_VERSION)
		return 0;
	size_t pl = strlen(c->prefix);
	const char *rest = c->cfg.path_mode == SCAN_PATH_REL ? catpath : (pl ? key + pl + 1 : key);
	int kept;
	return ver_keep_previous(c->cat, c->s3, c->bucket, c->prefix, catpath, rest, key, 0, &kept);
}

/* Uploads the whole file as a new version of catpath. A file below one part
 * goes out as one PUT and is registered in one transaction afterwards (a
 * crash in between leaves nothing to clean up); a larger one gets its row
 * first so that the multipart upload id is on disk before any part is. */
static int do_upload(struct scan_ctx *c, int fd, const struct stat *st, struct fres *f)
{
	struct cat_obj o;
	struct up_result res;
	fill_obj(c, &o, f->catpath, f->key, st);
	int rc;
	if ((uint64_t)st->st_size < c->cfg.part_size) {
		slot_get(c);
		rc = up_file(c->pool, fd, f->key, &c->put_opts, NULL, &res);
		slot_put(c);
		if (rc < 0)
			return rc;
		o.size = (int64_t)res.size;
		rc = add_ingested(c, &o, res.sha256, res.etag);
		if (rc < 0) {
			snprintf(f->err, sizeof f->err, "uploaded, but the catalog refused it: %s",
				 strerror(-rc));
			return rc;
		}
	} else {
		o.state = CAT_PENDING;
		if ((rc = cat_obj_add(c->cat, &o)) < 0) {
			snprintf(f->err, sizeof f->err, "catalog: %s", strerror(-rc));
			return rc;
		}
		struct up_track t = {.c = c, .id = o.id};
		struct up_hooks hooks = {.created = track_created,
					 .create_unknown = track_create_unknown,
					 .part_done = track_part,
					 .arg = &t};
		slot_get(c);
		rc = up_file(c->pool, fd, f->key, &c->put_opts, &hooks, &res);
		slot_put(c);
		if (t.unknown_from)
			abort_unknown(c, f->key, t.unknown_from, t.unknown_to);
		if (rc == 0 && !__atomic_load_n(&t.uploading, __ATOMIC_ACQUIRE))
			rc = cat_obj_set_uploading(c->cat, o.id, NULL);
		if (rc == 0)
			rc = cat_obj_set_ingested(c->cat, o.id, (int64_t)res.size, res.sha256, res.etag);
		if (rc < 0) {
			cat_obj_set_failed(c->cat, o.id, rc == -EAGAIN ? "changed while being uploaded"
								       : strerror(-rc));
			return rc;
		}
	}
	f->size = (int64_t)res.size;
	memcpy(f->sha256, res.sha256, sizeof f->sha256);
	apply_meta(c, fd, f->catpath);
	log_info("ingested %s -> s3://%s/%s (%" PRIu64 " bytes, sha256 %s, %s)", f->catpath, c->bucket,
		 f->key, res.size, res.sha256, c->source);
	return 0;
}

static int etag_is_md5(const char *e)
{
	if (strlen(e) != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f')))
			return 0;
	return 1;
}

/* Reads [off, off+len) of fd into the hashes (sha may be NULL). */
static int hash_range(int fd, uint64_t off, uint64_t len, struct hash_ctx *sha, struct hash_ctx *md5,
		      unsigned char *buf, size_t bufsize)
{
	while (len) {
		size_t want = len < bufsize ? (size_t)len : bufsize;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN; /* shrank under us */
		if ((sha && hash_update(sha, buf, (size_t)n) < 0) || hash_update(md5, buf, (size_t)n) < 0)
			return -EIO;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* put-append: the new object is the old one (copied server-side with
 * UploadPartCopy, in parts of 5 MiB..5 GiB) followed by the new bytes. The
 * file's first old->size bytes must still hash to the old SHA-256, else
 * -ENOTSUP and the caller uploads the whole file. Every copied part's ETag
 * is checked against the MD5 of the local bytes, so the composed object is
 * verified end to end by its multipart ETag. */
static int do_append(struct scan_ctx *c, int fd, const struct stat *st, const struct cat_obj *old,
		     struct fres *f)
{
	uint64_t osize = (uint64_t)old->size, nsize = (uint64_t)st->st_size;
	int ncopy = (int)((osize + S3_MAX_PART_SIZE - 1) / S3_MAX_PART_SIZE);
	uint64_t psize = 8 * MIB, rest = nsize - osize;
	while (rest / psize + 1 + (uint64_t)ncopy > S3_MAX_PARTS)
		psize *= 2;
	int nappend = (int)((rest + psize - 1) / psize);
	int nparts = ncopy + nappend;
	struct s3_part *parts = calloc((size_t)nparts, sizeof *parts);
	size_t bufsize = 1 << 20;
	unsigned char *buf = malloc(bufsize);
	struct hash_ctx *sha = NULL, *md5 = NULL;
	char *upload_id = NULL;
	int64_t id = 0;
	int rc = 0;
	if (!parts || !buf || hash_new(HASH_SHA256, &sha) < 0 || hash_new(HASH_MD5, &md5) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	/* The old bytes: whole-file hash and one MD5 per copy part. */
	uint64_t off = 0;
	for (int i = 0; i < ncopy; i++) {
		uint64_t len = i < ncopy - 1 ? osize / (uint64_t)ncopy : osize - off;
		if ((rc = hash_range(fd, off, len, sha, md5, buf, bufsize)) < 0)
			goto out;
		parts[i].number = i + 1;
		parts[i].size = len;
		hash_final(md5, parts[i].md5);
		off += len;
	}
	unsigned char d[HASH_SHA256_LEN];
	char hex[65];
	hash_peek(sha, d);
	hash_hex(d, sizeof d, hex);
	if (strcmp(hex, old->sha256) != 0) {
		log_info("%s: its first %" PRIu64 " bytes changed; uploading it whole", f->catpath, osize);
		rc = -ENOTSUP;
		goto out;
	}

	struct cat_obj o;
	fill_obj(c, &o, f->catpath, f->key, st);
	o.state = CAT_PENDING;
	if ((rc = cat_obj_add(c->cat, &o)) < 0)
		goto out;
	id = o.id;
	struct s3_status cst = {0};
	time_t t0 = time(NULL);
	if ((rc = s3_mpu_create(c->s3, f->key, &c->put_opts, &upload_id, &cst)) < 0) {
		if (cst.http_status < 400 || cst.http_status >= 500)
			abort_unknown(c, f->key, t0, time(NULL));
		goto out;
	}
	cat_obj_set_uploading(c->cat, id, upload_id);
	for (int i = 0; i < ncopy; i++) {
		uint64_t coff = (uint64_t)i * (osize / (uint64_t)ncopy);
		rc = s3_mpu_upload_part_copy(c->s3, f->key, upload_id, i + 1, old->key, coff,
					     parts[i].size, parts[i].etag, NULL);
		if (rc < 0)
			goto out;
		char want[33];
		hash_hex(parts[i].md5, 16, want);
		if (etag_is_md5(parts[i].etag) && strcmp(parts[i].etag, want) != 0) {
			log_err("%s: the copied part %d of s3://%s/%s has ETag %s, the local bytes "
				"%s: the old object is not what the catalog says", f->catpath, i + 1,
				c->bucket, old->key, parts[i].etag, want);
			rc = -EBADMSG;
			goto out;
		}
		cat_obj_part_done(c->cat, id, i + 1, parts[i].etag, (int64_t)parts[i].size);
	}
	for (int i = 0; i < nappend; i++) {
		struct s3_part *p = &parts[ncopy + i];
		uint64_t len = rest - (uint64_t)i * psize < psize ? rest - (uint64_t)i * psize : psize;
		if ((rc = hash_range(fd, off, len, sha, md5, buf, bufsize)) < 0)
			goto out;
		hash_final(md5, p->md5);
		p->number = ncopy + i + 1;
		p->size = len;
		struct s3_body body = {.fd = fd, .off = (off_t)off, .len = len, .md5 = p->md5};
		rc = s3_mpu_upload_part(c->s3, f->key, upload_id, p->number, &body, p->etag, NULL);
		if (rc < 0)
			goto out;
		cat_obj_part_done(c->cat, id, p->number, p->etag, (int64_t)len);
		off += len;
	}
	struct stat st2;
	if (fstat(fd, &st2) < 0 || st2.st_size != st->st_size ||
	    ts_ns(&st2.st_mtim) != ts_ns(&st->st_mtim)) {
		rc = -EAGAIN;
		goto out;
	}
	char etag[S3_ETAG_MAX];
	if ((rc = s3_mpu_complete(c->s3, f->key, upload_id, parts, nparts, etag, NULL)) < 0)
		goto out;
	free(upload_id);
	upload_id = NULL;
	hash_final(sha, d);
	hash_hex(d, sizeof d, f->sha256);
	rc = cat_obj_set_ingested(c->cat, id, (int64_t)nsize, f->sha256, etag);
	if (rc == 0) {
		f->size = (int64_t)nsize;
		apply_meta(c, fd, f->catpath);
		log_info("appended %s -> s3://%s/%s (%" PRIu64 " new bytes after %" PRIu64
			 " copied server-side, sha256 %s)", f->catpath, c->bucket, f->key, rest, osize,
			 f->sha256);
	}
out:
	if (upload_id) {
		s3_mpu_abort(c->s3, f->key, upload_id, NULL);
		free(upload_id);
	}
	if (rc < 0 && id)
		cat_obj_set_failed(c->cat, id, rc == -EAGAIN ? "changed while being uploaded"
							     : strerror(-rc));
	hash_free(sha);
	hash_free(md5);
	free(buf);
	free(parts);
	return rc;
}

static void report(struct scan_ctx *c, const char *what, const char *rel, const char *key,
		   int64_t size)
{
	if (c->cfg.report)
		c->cfg.report(c->cfg.report_arg, what, rel, key, size);
}

static int run_hook(struct scan_ctx *c, const char *cmd, const char *which, const char *rel,
		    const struct fres *f, const char *error)
{
	struct scan_hook_env e = {
		.hook = which,
		.path = rel,
		.key = f->key,
		.bucket = c->bucket,
		.mode = scan_mode_name(c->cfg.mode),
		.size = f->size,
		.sha256 = f->sha256[0] ? f->sha256 : NULL,
		.error = error,
	};
	return scan_run_hook(cmd, &e, c->cfg.hook_timeout);
}

/* Errors worth another attempt: the network, S3's 5xx, a busy catalog. */
static int transient(int rc)
{
	switch (rc) {
	case -EIO: case -ETIMEDOUT: case -ECONNREFUSED: case -EHOSTUNREACH: case -ENETUNREACH:
	case -ECONNRESET: case -EBUSY: case -EPROTO: case -EBADMSG: case -ENOMEM:
		return 1;
	default:
		return 0;
	}
}

/* 1 if rel is now this worker's, 0 if another worker has it, -ENOMEM.
 * At most one entry per worker thread: a linear search is enough. */
static int claim(struct scan_ctx *c, const char *rel)
{
	int rc = 1;
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->nclaimed && rc; i++)
		if (strcmp(c->claimed[i], rel) == 0)
			rc = 0;
	if (rc && c->nclaimed == c->capclaimed) {
		int cap = c->capclaimed ? c->capclaimed * 2 : 16;
		char **n = realloc(c->claimed, (size_t)cap * sizeof *n);
		if (n) {
			c->claimed = n;
			c->capclaimed = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 1)
		c->claimed[c->nclaimed++] = (char *)rel;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void unclaim(struct scan_ctx *c, const char *rel)
{
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->nclaimed; i++)
		if (c->claimed[i] == rel) {
			c->claimed[i] = c->claimed[--c->nclaimed];
			break;
		}
	pthread_mutex_unlock(&c->mu);
}

static enum outcome file_attempt(struct scan_ctx *c, int rootfd, const char *rel, struct fres *f);

/* One attempt at the file relpath below rootfd, unless another worker is
 * on the same path: then this copy of the task is dropped (counted busy);
 * the other decides, and anything that changes later is found again. */
static enum outcome file_once(struct scan_ctx *c, int rootfd, const char *rel, struct fres *f)
{
	int rc = claim(c, rel);
	if (rc < 0) {
		snprintf(f->err, sizeof f->err, "%s", strerror(-rc));
		return O_RETRY;
	}
	if (rc == 0) {
		log_debug("%s: queued twice; another worker has it", rel);
		return O_BUSY;
	}
	enum outcome out = file_attempt(c, rootfd, rel, f);
	unclaim(c, rel);
	return out;
}

static enum outcome file_attempt(struct scan_ctx *c, int rootfd, const char *rel, struct fres *f)
{
	struct stat st;
	int fd = open_regular(rootfd, rel, &st);
	if (fd == -ENOENT || fd == -ESTALE) {
		log_debug("%s: vanished before it could be ingested", rel);
		return O_GONE;
	}
	if (fd == -E_NOTREG || fd == -ELOOP) {
		log_debug("%s: not a regular file; left alone", rel);
		return O_NOTREG;
	}
	if (fd < 0) {
		log_warn("%s: cannot open: %s", rel, strerror(-fd));
		snprintf(f->err, sizeof f->err, "cannot open: %s", strerror(-fd));
		return O_UNREADABLE;
	}
	enum outcome out = O_FAILED;
	struct cat_obj row;
	int have_row = 0;
	f->size = st.st_size;
	if (c->cfg.busy && c->cfg.busy(c->cfg.busy_arg, rel)) {
		out = O_BUSY;
		goto done;
	}
	if (!f->key) {
		int rc = scan_tmpl_expand(c->tmpl, c->prefix, rel, ts_ns(&st.st_mtim), &f->key, f->err,
					  sizeof f->err);
		if (rc < 0) {
			log_warn("%s: not ingested: %s", rel, f->err);
			goto done;
		}
		if (!(f->catpath = scan_catpath(c, rel, f->key))) {
			out = O_RETRY;
			goto done;
		}
	}
	int rc = cat_obj_get(c->cat, f->catpath, &row);
	if (rc == 0)
		have_row = 1;
	else if (rc != -ENOENT) {
		snprintf(f->err, sizeof f->err, "catalog: %s", strerror(-rc));
		out = transient(rc) ? O_RETRY : O_FAILED;
		goto done;
	}
	struct scan_row r;
	if (have_row)
		row_of(&row, &r);
	int action = scan_decide(c->cfg.mode == SCAN_NOOP ? SCAN_PUT_SYNC : c->cfg.mode, st.st_size,
				 ts_ns(&st.st_mtim), have_row ? &r : NULL);
	if (action == SCAN_SKIP) {
		out = O_UNCHANGED;
		goto done;
	}
	if (action == SCAN_BUSY) {
		out = O_BUSY;
		goto done;
	}
	if (c->cfg.stale_copies && have_row && row.state == CAT_INGESTED && cat_shared(c->cat) &&
	    c->cfg.mode != SCAN_NOOP && (rc = drop_stale_copy(c, rootfd, rel, fd, &st, f)) != 0) {
		if (rc > 0) {
			out = O_UNCHANGED;
			goto done;
		}
		snprintf(f->err, sizeof f->err, "%s", strerror(-rc));
		out = transient(rc) ? O_RETRY : O_UNREADABLE;
		goto done;
	}
	if (action == SCAN_VERIFY) {
		unsigned char d[HASH_SHA256_LEN];
		if ((rc = hash_fd(HASH_SHA256, fd, 0, (uint64_t)st.st_size, d)) < 0) {
			snprintf(f->err, sizeof f->err, "read: %s", strerror(-rc));
			out = O_UNREADABLE;
			goto done;
		}
		hash_hex(d, sizeof d, f->sha256);
		if (strcmp(f->sha256, row.sha256) == 0) {
			if (c->cfg.mode == SCAN_NOOP) {
				report(c, "touch", rel, f->key, st.st_size);
				out = O_WOULD;
				goto done;
			}
			/* Same bytes, new times: no upload, the row follows the file. */
			rc = cat_obj_set_attr(c->cat, row.id, st.st_mode, st.st_uid, st.st_gid,
					      ts_ns(&st.st_mtim));
			out = rc == 0 ? O_TOUCHED : (transient(rc) ? O_RETRY : O_FAILED);
			goto done;
		}
		f->sha256[0] = '\0';
		action = SCAN_CHANGED;
	}
	if (c->cfg.mode == SCAN_NOOP) {
		report(c, scan_action_name(action), rel, f->key, st.st_size);
		out = O_WOULD;
		goto done;
	}
	if (c->cfg.pre_hook) {
		int h = run_hook(c, c->cfg.pre_hook, "pre-ingest", rel, f, NULL);
		if (h != 0) {
			log_notice("%s: skipped: the pre-ingest hook said %s", rel,
				   h == -ETIMEDOUT ? "nothing in time" : "no");
			out = O_HOOK_SKIP;
			goto done;
		}
	}
	if ((action == SCAN_CHANGED || action == SCAN_APPEND) && c->cfg.overwrite == SCAN_OVERWRITE_DENY) {
		log_warn("%s: changed after it was ingested, and overwrite=deny: not sent again", rel);
		snprintf(f->err, sizeof f->err, "changed after ingest (overwrite=deny)");
		out = O_FAILED;
		goto done;
	}
	if (have_row && row.state == CAT_INGESTED && (rc = keep_previous(c, f->catpath, f->key)) < 0) {
		snprintf(f->err, sizeof f->err, "cannot keep the previous version: %s", strerror(-rc));
		out = transient(rc) ? O_RETRY : O_FAILED;
		goto done;
	}
	if (action == SCAN_APPEND) {
		slot_get(c);
		rc = do_append(c, fd, &st, &row, f);
		slot_put(c);
		if (rc == 0) {
			out = O_APPENDED;
			goto done;
		}
		if (rc != -ENOTSUP && rc != -EINVAL)
			goto failed;
		if (rc == -EINVAL)
			log_notice("%s: server-side append refused (%s); uploading it whole", rel,
				   strerror(-rc));
	}
	rc = do_upload(c, fd, &st, f);
	if (rc == 0) {
		out = O_UPLOADED;
		goto done;
	}
failed:
	if (rc == -EAGAIN) {
		log_notice("%s: changed while being uploaded; left for later", rel);
		out = O_BUSY;
		goto done;
	}
	if (!f->err[0])
		snprintf(f->err, sizeof f->err, "%s", strerror(-rc));
	out = transient(rc) ? O_RETRY : O_FAILED;
done:
	if (have_row)
		cat_obj_clear(&row);
	close(fd);
	return out;
}

/* register mode: one listed object. */
static enum outcome register_once(struct scan_ctx *c, const struct titem *it, struct fres *f)
{
	const char *key = it->relpath;
	size_t pl = strlen(c->prefix);
	const char *rel = pl ? key + pl + 1 : key;
	f->size = it->size;
	if (!f->key && !(f->key = strdup(key)))
		return O_RETRY;
	if (!f->catpath && !(f->catpath = scan_catpath(c, rel, key)))
		return O_RETRY;
	const char *bad = bad_segment(f->catpath);
	if (bad) {
		snprintf(f->err, sizeof f->err, "key has %s: not a catalog path", bad);
		log_warn("s3://%s/%s: not registered: %s", c->bucket, key, f->err);
		return O_FAILED;
	}
	struct cat_obj row;
	int rc = cat_obj_get(c->cat, f->catpath, &row);
	if (rc == 0) {
		int same = row.state == CAT_INGESTED && row.size == it->size &&
			   strcmp(row.etag, it->etag ? it->etag : "") == 0;
		int busy = row.state == CAT_PENDING || row.state == CAT_UPLOADING;
		cat_obj_clear(&row);
		if (same)
			return O_UNCHANGED;
		if (busy)
			return O_BUSY;
	} else if (rc != -ENOENT) {
		snprintf(f->err, sizeof f->err, "catalog: %s", strerror(-rc));
		return transient(rc) ? O_RETRY : O_FAILED;
	}
	if (c->cfg.pre_hook && run_hook(c, c->cfg.pre_hook, "pre-ingest", rel, f, NULL) != 0) {
		log_notice("s3://%s/%s: skipped: the pre-ingest hook said no", c->bucket, key);
		return O_HOOK_SKIP;
	}
	struct cat_obj o;
	struct stat st = {.st_mode = S_IFREG | 0644, .st_size = it->size,
			  .st_uid = geteuid(), .st_gid = getegid()};
	st.st_mtim.tv_sec = (time_t)(it->mtime_ns / 1000000000);
	fill_obj(c, &o, f->catpath, key, &st);
	rc = add_ingested(c, &o, "", it->etag);
	if (rc < 0) {
		snprintf(f->err, sizeof f->err, "catalog: %s", strerror(-rc));
		return transient(rc) ? O_RETRY : O_FAILED;
	}
	apply_meta(c, -1, f->catpath);
	log_info("registered s3://%s/%s as %s (%lld bytes, etag %s)", c->bucket, key, f->catpath,
		 (long long)it->size, it->etag ? it->etag : "");
	return O_REGISTERED;
}

static void process_item(struct scan_ctx *c, int rootfd, const struct titem *it)
{
	struct fres f = {.size = it->size};
	enum outcome out = O_FAILED;
	for (int attempt = 0;; attempt++) {
		f.err[0] = '\0';
		out = c->cfg.mode == SCAN_REGISTER ? register_once(c, it, &f)
						   : file_once(c, rootfd, it->relpath, &f);
		if (out != O_RETRY)
			break;
		if (attempt >= c->cfg.max_retries) {
			out = O_FAILED;
			break;
		}
		STAT_ADD(c, retries, 1);
		int delay = c->cfg.retry_delay_ms << (attempt < 5 ? attempt : 5);
		log_notice("%s: attempt %d failed (%s); retrying in %d ms", it->relpath, attempt + 1,
			   f.err, delay);
		if (sleep_cancellable(c, delay)) {
			out = O_FAILED;
			break;
		}
	}
	if (out == O_FAILED) {
		log_err("%s: not ingested: %s", it->relpath, f.err[0] ? f.err : "failed");
		if (c->cfg.fail_hook)
			run_hook(c, c->cfg.fail_hook, "on-failure", it->relpath, &f,
				 f.err[0] ? f.err : "failed");
	} else if ((out == O_UPLOADED || out == O_APPENDED || out == O_REGISTERED) && c->cfg.post_hook) {
		run_hook(c, c->cfg.post_hook, "post-ingest", it->relpath, &f, NULL);
	}
	if (out == O_UPLOADED)
		report(c, "uploaded", it->relpath, f.key, f.size);
	else if (out == O_APPENDED)
		report(c, "appended", it->relpath, f.key, f.size);
	else if (out == O_REGISTERED)
		report(c, "registered", it->relpath, f.key, f.size);
	else if (out == O_FAILED)
		report(c, "failed", it->relpath, f.key, f.size);

	uint64_t sz = (uint64_t)(it->size > 0 ? it->size : 0);
	pthread_mutex_lock(&c->mu);
	struct scan_stats *s = &c->st;
	s->done++;
	s->done_bytes += sz;
	switch (out) {
	case O_UPLOADED: s->uploaded++; s->uploaded_bytes += (uint64_t)f.size; break;
	case O_APPENDED: s->appended++; s->appended_bytes += (uint64_t)f.size; break;
	case O_REGISTERED: s->registered++; break;
	case O_TOUCHED: s->touched++; break;
	case O_WOULD: s->would++; break;
	case O_UNCHANGED: s->unchanged++; break;
	case O_BUSY: s->busy++; break;
	case O_HOOK_SKIP: s->hook_skipped++; break;
	case O_GONE: s->vanished++; break;
	case O_UNREADABLE: s->unreadable++; break;
	case O_NOTREG: s->not_regular++; break;
	case O_FAILED: case O_RETRY: s->failed++; break;
	}
	pthread_mutex_unlock(&c->mu);
	fres_clear(&f);
}

static void *worker_main(void *arg)
{
	struct scan_ctx *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->qhead && !c->stopping) {
			c->idle++;
			pthread_cond_wait(&c->cv_work, &c->mu);
			c->idle--;
		}
		if (!c->qhead)
			break;
		struct task *t = c->qhead;
		c->qhead = t->next;
		if (!c->qhead)
			c->qtail = NULL;
		c->qlen--;
		c->active++;
		pthread_cond_signal(&c->cv_room);
		pthread_mutex_unlock(&c->mu);
		int i;
		for (i = 0; i < t->n && !scan_cancelled(c) && !stopping(c); i++)
			process_item(c, t->rootfd, &t->items[i]);
		pthread_mutex_lock(&c->mu);
		c->st.cancelled += (uint64_t)(t->n - i);
		c->active--;
		if (c->qlen == 0 && c->active == 0)
			pthread_cond_broadcast(&c->cv_idle);
		pthread_mutex_unlock(&c->mu);
		task_free(t);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the walker */

/* The current catalog rows of one collection, by name: listing the
 * catalog once per directory costs one query instead of one per file. */
struct dent {
	char *name;
	struct scan_row row;
};

struct dcache {
	char *dir;
	int valid;
	struct dent *tab;
	size_t cap, n;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void dcache_clear(struct dcache *d)
{
	for (size_t i = 0; i < d->cap; i++)
		free(d->tab[i].name);
	free(d->tab);
	free(d->dir);
	memset(d, 0, sizeof *d);
}

static int dcache_put(struct dcache *d, const char *name, const struct scan_row *row)
{
	if ((d->n + 1) * 2 > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dent *t = calloc(cap, sizeof *t);
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < d->cap; i++) {
			if (!d->tab[i].name)
				continue;
			size_t j = str_hash(d->tab[i].name) & (cap - 1);
			while (t[j].name)
				j = (j + 1) & (cap - 1);
			t[j] = d->tab[i];
		}
		free(d->tab);
		d->tab = t;
		d->cap = cap;
	}
	size_t j = str_hash(name) & (d->cap - 1);
	while (d->tab[j].name && strcmp(d->tab[j].name, name) != 0)
		j = (j + 1) & (d->cap - 1);
	if (!d->tab[j].name) {
		if (!(d->tab[j].name = strdup(name)))
			return -ENOMEM;
		d->n++;
	}
	d->tab[j].row = *row;
	return 0;
}

static const struct scan_row *dcache_get(const struct dcache *d, const char *name)
{
	if (!d->cap)
		return NULL;
	size_t j = str_hash(name) & (d->cap - 1);
	while (d->tab[j].name) {
		if (strcmp(d->tab[j].name, name) == 0)
			return &d->tab[j].row;
		j = (j + 1) & (d->cap - 1);
	}
	return NULL;
}

static int dcache_fill(const struct cat_coll *cc, const struct cat_obj *o, void *arg)
{
	struct dcache *d = arg;
	if (!o)
		return 0;
	const char *slash = strrchr(o->path, '/');
	struct scan_row r;
	row_of(o, &r);
	return dcache_put(d, slash ? slash + 1 : o->path, &r) < 0 ? -ENOMEM : 0;
}

/* Makes d hold the rows of collection dir. */
static int dcache_load(struct scan_ctx *c, struct dcache *d, const char *dir)
{
	if (d->valid && strcmp(d->dir, dir) == 0)
		return 0;
	dcache_clear(d);
	if (!(d->dir = strdup(dir)))
		return -ENOMEM;
	int rc = cat_list(c->cat, dir, dcache_fill, d);
	if (rc == -ENOENT || rc == -ENOTDIR)
		rc = 0;
	if (rc < 0) {
		dcache_clear(d);
		return rc;
	}
	d->valid = 1;
	return 0;
}

struct walk {
	struct scan_ctx *c;
	int rootfd;
	int (*cb)(const struct scan_entry *e, void *arg);
	void *arg;
	struct dcache dc;
	struct scan_openset *open;
	int64_t now_ns;
	struct scan_stats local;  /* added to the scan's at the end of each directory */
	int stop;
};

static void walk_flush_stats(struct walk *w)
{
	struct scan_ctx *c = w->c;
	pthread_mutex_lock(&c->mu);
	c->st.seen += w->local.seen;
	c->st.excluded += w->local.excluded;
	c->st.unchanged += w->local.unchanged;
	c->st.busy += w->local.busy;
	c->st.unreadable += w->local.unreadable;
	c->st.not_regular += w->local.not_regular;
	c->st.failed += w->local.failed;
	int stop = c->cancelled || c->stopping;
	pthread_mutex_unlock(&c->mu);
	memset(&w->local, 0, sizeof w->local);
	if (stop)
		w->stop = 1;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One regular file: rel is its path, dir its directory ("" at the top),
 * name its last component. */
static void walk_file(struct walk *w, const char *rel, const char *dir, const char *name,
		      const struct stat *st)
{
	struct scan_ctx *c = w->c;
	char err[256];
	char *key = NULL, *catpath = NULL;
	w->local.seen++;
	if (c->cfg.known && c->cfg.known(c->cfg.known_arg, rel, st)) {
		w->local.unchanged++;
		return;
	}
	int rc = 0;
	struct scan_row one;
	const struct scan_row *row = NULL;
	if (c->cfg.path_mode == SCAN_PATH_REL && w->cb) {
		/* The spool: the catalog path is the file's path, and the key is
		 * the workers' business. One catalog listing per directory. */
		rc = dcache_load(c, &w->dc, dir);
		if (rc == 0)
			row = dcache_get(&w->dc, name);
		goto decided;
	}
	rc = scan_tmpl_expand(c->tmpl, c->prefix, rel, ts_ns(&st->st_mtim), &key, err, sizeof err);
	if (rc < 0) {
		if (w->cb) {
			log_warn("%s: not ingested: %s", rel, err);
			struct scan_entry e = {.relpath = rel, .st = st};
			if (w->cb(&e, w->arg))
				w->stop = 1;
		} else if (scan_submit(c, w->rootfd, rel, st->st_size) == -ECANCELED) {
			/* the worker fails it, with the on-failure hook */
			w->stop = 1;
		}
		return;
	}
	catpath = scan_catpath(c, rel, key);
	if (!catpath) {
		free(key);
		w->stop = 1;
		return;
	}
	if (scan_tmpl_dir_stable(c->tmpl) || c->cfg.path_mode == SCAN_PATH_REL) {
		const char *slash = strrchr(catpath, '/');
		char *cdir = slash ? strndup(catpath, (size_t)(slash - catpath)) : strdup("");
		rc = cdir ? dcache_load(c, &w->dc, cdir) : -ENOMEM;
		free(cdir);
		if (rc == 0)
			row = dcache_get(&w->dc, slash ? slash + 1 : catpath);
	} else {
		struct cat_obj o;
		rc = cat_obj_get(c->cat, catpath, &o);
		if (rc == 0) {
			row_of(&o, &one);
			row = &one;
			cat_obj_clear(&o);
		} else if (rc == -ENOENT) {
			rc = 0;
		}
	}
decided:
	if (rc < 0) {
		/* The catalog cannot say: let a worker decide with a fresh look. */
		log_warn("%s: catalog lookup failed (%s)", rel, strerror(-rc));
		row = NULL;
	}
	if (w->cb) {
		struct scan_entry e = {.relpath = rel, .catpath = catpath ? catpath : rel, .key = key,
				       .st = st, .row = row};
		if (w->cb(&e, w->arg))
			w->stop = 1;
		goto out;
	}
	int mode = c->cfg.mode == SCAN_NOOP ? SCAN_PUT_SYNC : c->cfg.mode;
	int action = rc < 0 ? SCAN_NEW : scan_decide(mode, st->st_size, ts_ns(&st->st_mtim), row);
	if (action == SCAN_SKIP) {
		w->local.unchanged++;
		goto out;
	}
	if (action == SCAN_BUSY) {
		w->local.busy++;
		goto out;
	}
	int64_t changed = max64(ts_ns(&st->st_mtim), ts_ns(&st->st_ctim));
	if ((c->cfg.settle_ms > 0 && w->now_ns - changed < (int64_t)c->cfg.settle_ms * 1000000) ||
	    scan_openset_has(w->open, st->st_dev, st->st_ino) ||
	    (c->cfg.busy && c->cfg.busy(c->cfg.busy_arg, rel))) {
		log_info("%s: still being written; left for a later pass", rel);
		w->local.busy++;
		goto out;
	}
	if (scan_submit(c, w->rootfd, rel, st->st_size) == -ECANCELED)
		w->stop = 1;
out:
	free(key);
	free(catpath);
}

static int open_dir_beneath(int rootfd, const char *rel)
{
	if (!*rel) {
		int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
	return fd < 0 ? -errno : fd;
}

#define WALK_MAX_DEPTH 4096

struct dname {
	char *name;
};

static char *join(const char *a, const char *b)
{
	if (!*a)
		return strdup(b);
	char *p;
	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static void walk_dir(struct walk *w, const char *rel, int depth)
{
	struct scan_ctx *c = w->c;
	if (depth > WALK_MAX_DEPTH) {
		log_warn("%s: deeper than %d levels; not descended", rel, WALK_MAX_DEPTH);
		w->local.unreadable++;
		return;
	}
	int dfd = open_dir_beneath(w->rootfd, rel);
	if (dfd < 0) {
		if (dfd == -ENOENT)
			return;
		if (dfd == -ELOOP || dfd == -ENOTDIR) {
			w->local.not_regular++;
			return;
		}
		log_warn("%s: cannot open directory: %s", *rel ? rel : ".", strerror(-dfd));
		w->local.unreadable++;
		return;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		log_warn("%s: cannot read directory: %s", *rel ? rel : ".", strerror(errno));
		close(dfd);
		w->local.unreadable++;
		return;
	}
	struct dname *subs = NULL;
	size_t nsub = 0, capsub = 0;
	struct dirent *de;
	struct stat dst;
	int ask_known = c->cfg.known_name && fstat(dfd, &dst) == 0;
	size_t rl = strlen(rel);
	errno = 0;
	while (!w->stop && (de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
			continue;
		if (!*rel && c->skip_top && strcmp(name, c->skip_top) == 0)
			continue;
		char child[PATH_MAX];
		size_t nl = strlen(name);
		if (rl + nl + 2 > sizeof child) {
			log_warn("%s/%s: path too long; left alone", rel, name);
			w->local.unreadable++;
			continue;
		}
		memcpy(child, rel, rl);
		child[rl] = '/';
		memcpy(child + rl + !!rl, name, nl + 1);
		if (ask_known && de->d_type == DT_REG &&
		    c->cfg.known_name(c->cfg.known_arg, child, (uint64_t)de->d_ino, &dst)) {
			w->local.seen++;
			w->local.unchanged++;
			continue;
		}
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				log_warn("%s%s%s: cannot stat: %s", rel, *rel ? "/" : "", name,
					 strerror(errno));
				w->local.unreadable++;
			}
			continue;
		}
		if (scan_filter_excludes(c->cfg.filter, name, st.st_mode)) {
			w->local.excluded++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			struct scan_entry e = {.relpath = child, .st = &st};
			if (w->cb && w->cb(&e, w->arg)) {
				w->stop = 1;
				break;
			}
			if (nsub == capsub) {
				size_t cap = capsub ? capsub * 2 : 16;
				struct dname *n = realloc(subs, cap * sizeof *n);
				if (!n) {
					w->stop = 1;
					break;
				}
				subs = n;
				capsub = cap;
			}
			if (!(subs[nsub].name = strdup(name))) {
				w->stop = 1;
				break;
			}
			nsub++;
		} else if (S_ISREG(st.st_mode)) {
			walk_file(w, child, rel, name, &st);
		} else {
			log_debug("%s%s%s: not a regular file; left alone", rel, *rel ? "/" : "", name);
			w->local.not_regular++;
		}
	}
	closedir(d);
	walk_flush_stats(w);
	for (size_t i = 0; i < nsub; i++) {
		if (!w->stop) {
			char *child = join(rel, subs[i].name);
			if (child)
				walk_dir(w, child, depth + 1);
			else
				w->stop = 1;
			free(child);
		}
		free(subs[i].name);
	}
	free(subs);
}

int scan_walk(struct scan_ctx *c, int rootfd, const char *rel,
	      int (*cb)(const struct scan_entry *e, void *arg), void *arg)
{
	struct walk w = {.c = c, .rootfd = rootfd, .cb = cb, .arg = arg, .now_ns = wall_ns()};
	if (!cb && scan_openset_load(&w.open) < 0)
		return -ENOMEM;
	walk_dir(&w, rel ? rel : "", 0);
	walk_flush_stats(&w);
	dcache_clear(&w.dc);
	scan_openset_free(w.open);
	if (!cb)
		scan_flush(c);
	return scan_cancelled(c) ? -ECANCELED : 0;
}

/* ------------------------------------------------------------------ */
/* register mode */

struct reg_walk {
	struct scan_ctx *c;
	size_t pl;
	int stop;
};

static int reg_entry(const struct s3_list_entry *e, void *arg)
{
	struct reg_walk *r = arg;
	struct scan_ctx *c = r->c;
	if (e->is_prefix)
		return 0;
	size_t kl = strlen(e->key);
	if (kl == 0 || e->key[kl - 1] == '/')
		return 0; /* a "folder" marker, not an object */
	const char *rel = r->pl ? e->key + r->pl + 1 : e->key;
	/* PREFIX/.lzfs/ holds kept versions and lzfs's own state, not files. */
	if (strncmp(rel, ".lzfs/", 6) == 0)
		return 0;
	/* Filters on the key's segments, as if they were a tree. */
	int excluded = 0;
	for (const char *s = rel; !excluded;) {
		const char *sl = strchr(s, '/');
		size_t n = sl ? (size_t)(sl - s) : strlen(s);
		char seg[1025];
		if (n >= sizeof seg)
			n = sizeof seg - 1;
		memcpy(seg, s, n);
		seg[n] = '\0';
		excluded = scan_filter_excludes(c->cfg.filter, seg, sl ? S_IFDIR : S_IFREG);
		if (!sl)
			break;
		s = sl + 1;
	}
	if (excluded) {
		STAT_ADD(c, excluded, 1);
		return 0;
	}
	STAT_ADD(c, seen, 1);
	struct titem it = {.relpath = strdup(e->key), .size = (int64_t)e->size,
			   .etag = strdup(e->etag ? e->etag : ""),
			   .mtime_ns = (int64_t)e->last_modified * 1000000000};
	if (!it.relpath || !it.etag) {
		free(it.relpath);
		free(it.etag);
		return -ENOMEM;
	}
	int rc = submit_item(c, -1, &it);
	return rc == -ECANCELED ? 1 : rc;
}

int scan_register(struct scan_ctx *c)
{
	struct reg_walk r = {.c = c, .pl = strlen(c->prefix)};
	char *prefix = NULL;
	if (r.pl && asprintf(&prefix, "%s/", c->prefix) < 0)
		return -ENOMEM;
	int rc = s3_list(c->s3, prefix ? prefix : "", NULL, reg_entry, &r, NULL);
	free(prefix);
	scan_flush(c);
	if (rc > 0)
		rc = scan_cancelled(c) ? -ECANCELED : 0;
	return rc;
}

/* ------------------------------------------------------------------ */
/* locks and recovery */

int scan_lock(const char *catalog, const char *name, struct job_lock **lk)
{
	return job_lock(catalog, name, lk);
}

void scan_unlock(struct job_lock *lk)
{
	job_unlock(lk);
}

struct stale {
	int64_t id;
	char *key, *upload_id, *bucket, *source, *path;
};

struct stale_list {
	const char *source;
	struct stale *v;
	size_t n, cap;
};

static int collect_stale(const struct cat_obj *o, void *arg)
{
	struct stale_list *l = arg;
	if (!o->source)
		return 0;
	int all = strcmp(l->source, "scan:*") == 0;
	if (all ? strncmp(o->source, "scan:", 5) != 0 : strcmp(o->source, l->source) != 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct stale *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct stale *s = &l->v[l->n];
	memset(s, 0, sizeof *s);
	s->id = o->id;
	s->key = strdup(o->key ? o->key : "");
	s->upload_id = o->upload_id ? strdup(o->upload_id) : NULL;
	s->bucket = strdup(o->bucket ? o->bucket : "");
	s->source = strdup(o->source);
	s->path = strdup(o->path);
	l->n++;
	if (!s->key || !s->bucket || !s->source || !s->path || (o->upload_id && !s->upload_id))
		return -ENOMEM;
	return 0;
}

int scan_recover(struct cat *cat, const char *catalog_file, struct s3_client *s3,
		 const char *bucket, const char *source)
{
	struct stale_list l = {.source = source};
	int rc = cat_unfinished(cat, collect_stale, &l);
	int recovered = 0;
	/* Sweep mode: only sources whose lock we can take. */
	char *locked_src = NULL;
	struct job_lock *lockfd = NULL;
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		struct stale *s = &l.v[i];
		if (strcmp(source, "scan:*") == 0 && (!locked_src || strcmp(locked_src, s->source))) {
			scan_unlock(lockfd);
			lockfd = NULL;
			free(locked_src);
			locked_src = strdup(s->source);
			if (!locked_src || scan_lock(catalog_file, s->source + 5, &lockfd) < 0) {
				lockfd = NULL;
				log_debug("%s: left to the running scan %s", s->path, s->source);
				continue;
			}
		} else if (strcmp(source, "scan:*") == 0 && !lockfd) {
			continue;
		}
		if (s->upload_id) {
			if (strcmp(s->bucket, bucket) != 0) {
				log_warn("%s: interrupted multipart upload %s in bucket %s cannot be "
					 "aborted from here (this client is for %s)", s->path, s->upload_id,
					 s->bucket, bucket);
				continue;
			}
			int a = s3_mpu_abort(s3, s->key, s->upload_id, NULL);
			if (a < 0) {
				log_warn("%s: cannot abort interrupted upload %s yet (%s); will retry",
					 s->path, s->upload_id, strerror(-a));
				continue;
			}
		}
		int r = cat_obj_set_failed(cat, s->id, "interrupted scan; uploaded again by the next run");
		if (r == 0) {
			recovered++;
			log_notice("recovery: %s (%s) was interrupted%s; the next run uploads it again",
				   s->path, s->source, s->upload_id ? ", its multipart upload aborted" : "");
		}
	}
	scan_unlock(lockfd);
	free(locked_src);
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i].key);
		free(l.v[i].upload_id);
		free(l.v[i].bucket);
		free(l.v[i].source);
		free(l.v[i].path);
	}
	free(l.v);
	return rc < 0 ? rc : recovered;
}
