/* ctl_util.c - helpers shared by lzfsctl's commands: see ctl.h. */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "catalog.h"

void ctl_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lzfsctl: ");
	if (cmd)
		fprintf(stderr, "%s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ctl_usage(const char *usage, int help)
{
	fputs(usage, help ? stdout : stderr);
	return help ? CTL_OK : CTL_USAGE;
}

int ctl_exit_of(int err)
{
	switch (err) {
	case 0:
		return CTL_OK;
	case -ENOENT:
	case -ENOTDIR:
		return CTL_NOTFOUND;
	case -EINVAL:
	case -EISDIR:
	case -ENOTEMPTY:
		return CTL_USAGE;
	default:
		return CTL_ERROR;
	}
}

int ctl_open(const struct ctl_opts *o, const char *cmd, int flags, struct cat **out)
{
	int rc = cat_open(o->catalog, flags, out);
	if (rc == 0)
		return CTL_OK;
	/* The catalog has logged the details; this line names the file. */
	ctl_err(cmd, "cannot open catalog %s: %s", o->catalog_name, strerror(-rc));
	return CTL_ERROR;
}

char *ctl_path(const char *cmd, const char *arg)
{
	size_t n = strlen(arg);
	char *out = malloc(n + 1), *w = out;
	if (!out) {
		ctl_err(cmd, "out of memory");
		return NULL;
	}
	for (const char *s = arg; *s;) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 1 && s[0] == '.') {
			s += len;
			continue;
		}
		if (len == 2 && s[0] == '.' && s[1] == '.') {
			ctl_err(cmd, "%s: '..' is not allowed in catalog paths", arg);
			free(out);
			return NULL;
		}
		if (w != out)
			*w++ = '/';
		memcpy(w, s, len);
		w += len;
		s += len;
	}
	*w = '\0';
	return out;
}

const char *ctl_basename(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int ctl_utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	int n;
	unsigned min;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, min = 0x80, cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, min = 0x800, cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, min = 0x10000, cp = c & 0x07;
	} else {
		return 0;
	}
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void ctl_put_name(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		switch (*p) {
		case '\\':
			fputs("\\\\", f);
			p++;
			continue;
		case '\n':
			fputs("\\n", f);
			p++;
			continue;
		case '\t':
			fputs("\\t", f);
			p++;
			continue;
		case '\r':
			fputs("\\r", f);
			p++;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\x%02x", *p++);
			continue;
		}
		int n = ctl_utf8_len(p);
		if (n == 0) {
			fprintf(f, "\\x%02x", *p++);
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
}

void ctl_put_json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', f);
	while (*p) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			p++;
		} else if (c == '\n') {
			fputs("\\n", f);
			p++;
		} else if (c == '\t') {
			fputs("\\t", f);
			p++;
		} else if (c == '\r') {
			fputs("\\r", f);
			p++;
		} else if (c < 0x20) {
			fprintf(f, "\\u%04x", c);
			p++;
		} else {
			int n = ctl_utf8_len(p);
			if (n == 0) {
				fprintf(f, "\\udc%02x", c);
				p++;
			} else {
				fwrite(p, 1, n, f);
				p += n;
			}
		}
	}
	fputc('"', f);
}

void ctl_json_begin(struct ctl_json *j, FILE *f)
{
	j->f = f;
	j->n = 0;
	fputc('{', f);
}

void ctl_json_key(struct ctl_json *j, const char *key)
{
	if (j->n++)
		fputc(',', j->f);
	ctl_put_json_str(j->f, key);
	fputc(':', j->f);
}

void ctl_json_str(struct ctl_json *j, const char *key, const char *value)
{
	ctl_json_key(j, key);
	ctl_put_json_str(j->f, value);
}

void ctl_json_int(struct ctl_json *j, const char *key, int64_t value)
{
	ctl_json_key(j, key);
	fprintf(j->f, "%lld", (long long)value);
}

void ctl_json_bool(struct ctl_json *j, const char *key, int value)
{
	ctl_json_key(j, key);
	fputs(value ? "true" : "false", j->f);
}

void ctl_json_time(struct ctl_json *j, const char *key, int64_t ns)
{
	ctl_json_key(j, key);
	if (ns <= 0) {
		fputs("null", j->f);
		return;
	}
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(j->f, "\"%s.%09lldZ\"", buf, (long long)(ns % 1000000000LL));
}

void ctl_json_end(struct ctl_json *j)
{
	fputc('}', j->f);
}

const char *ctl_fmt_size(int64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	if (bytes < 1024) {
		snprintf(buf, size, "%lld B", (long long)bytes);
		return buf;
	}
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

const char *ctl_fmt_time(int64_t ns, char *buf, size_t size)
{
	if (ns <= 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

const char *ctl_fmt_age(int64_t ns, char *buf, size_t size)
{
	int64_t s = ns / 1000000000LL;
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, size, "%lldd %lldh", (long long)(s / 86400),
		         (long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, size, "%lldh %lldm", (long long)(s / 3600),
		         (long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, size, "%lldm %llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(buf, size, "%llds", (long long)s);
	return buf;
}

const char *ctl_fmt_mode(uint32_t mode, char buf[11])
{
	char t = '-';
	switch (mode & S_IFMT) {
	case S_IFDIR:
		t = 'd';
		break;
	case S_IFLNK:
		t = 'l';
		break;
	case S_IFIFO:
		t = 'p';
		break;
	case S_IFSOCK:
		t = 's';
		break;
	case S_IFCHR:
		t = 'c';
		break;
	case S_IFBLK:
		t = 'b';
		break;
	}
	buf[0] = t;
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		buf[1 + i] = (mode & (0400 >> i)) ? rwx[i] : '-';
	if (mode & S_ISUID)
		buf[3] = (mode & 0100) ? 's' : 'S';
	if (mode & S_ISGID)
		buf[6] = (mode & 0010) ? 's' : 'S';
	if (mode & S_ISVTX)
		buf[9] = (mode & 0001) ? 't' : 'T';
	buf[10] = '\0';
	return buf;
}

int ctl_parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || v < 0 || isspace((unsigned char)*s))
		return -EINVAL;
	static const char units[] = "KMGTPE";
	double mult = 1;
	if (*end) {
		const char *u = strchr(units, toupper((unsigned char)*end));
		if (!u)
			return (strcmp(end, "B") == 0 || strcmp(end, "b") == 0)
			           ? (*out = (int64_t)v, 0)
			           : -EINVAL;
		for (const char *p = units; p <= u; p++)
			mult *= 1024;
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	v *= mult;
	if (v > 9.2e18)
		return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

int64_t ctl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ctl_parse_time(const char *s, int64_t now_ns, int64_t *out_ns)
{
	char *end;
	if (!*s)
		return -EINVAL;
	/* An age: digits and one unit. */
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (end != s && !errno && n >= 0 && end[0] && !end[1] && strchr("smhdw", end[0])) {
		static const int64_t unit[] = {
		    ['s'] = 1, ['m'] = 60, ['h'] = 3600, ['d'] = 86400, ['w'] = 604800};
		*out_ns = now_ns - (int64_t)n * unit[(unsigned char)end[0]] * 1000000000LL;
		return 0;
	}
	/* Epoch seconds. */
	const char *e = s[0] == '@' ? s + 1 : s;
	errno = 0;
	double secs = strtod(e, &end);
	if (end != e && !*end && !errno && (s[0] == '@' || !strchr(e, '-'))) {
		*out_ns = (int64_t)(secs * 1e9);
		return 0;
	}
	static const char *const fmts[] = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
	                                   "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"};
	for (unsigned i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		struct tm tm;
		memset(&tm, 0, sizeof tm);
		const char *rest = strptime(s, fmts[i], &tm);
		if (!rest)
			continue;
		time_t t;
		if (strcmp(rest, "Z") == 0) {
			t = timegm(&tm);
		} else if (!*rest) {
			tm.tm_isdst = -1;
			t = mktime(&tm);
		} else {
			continue;
		}
		if (t == (time_t)-1)
			return -EINVAL;
		*out_ns = (int64_t)t * 1000000000LL;
		return 0;
	}
	return -EINVAL;
}
