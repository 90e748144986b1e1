/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

static const char *log_ident = "lzfs";
static int log_level = LZ_INFO;
static int log_journal;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *ident, int level, int journal)
{
	if (ident)
		log_ident = ident;
	log_level = level;
	/* sd_journal_send drops lines silently when journald is not running. */
	log_journal = journal && access("/run/systemd/journal/socket", F_OK) == 0;
}

void log_set_level(int level) { log_level = level; }
int log_get_level(void) { return log_level; }

int log_level_parse(const char *s)
{
	static const char *names[] = {"", "", "", "error", "warn", "notice", "info", "debug"};
	if (!s || !*s)
		return -EINVAL;
	if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	for (int i = LZ_ERR; i <= LZ_DEBUG; i++)
		if (strcasecmp(s, names[i]) == 0)
			return i;
	if (strcasecmp(s, "err") == 0)
		return LZ_ERR;
	if (strcasecmp(s, "warning") == 0)
		return LZ_WARN;
	return -EINVAL;
}

/* Control characters from file names would forge log lines. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			*s = '?';
}

static void to_stderr(int level, const char *msg)
{
	static const char *tags[] = {"", "", "", "error", "warning", "notice", "info", "debug"};
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ld %s[%d] %s: %s\n", when, ts.tv_nsec / 1000000,
		log_ident, (int)getpid(), tags[level], msg);
	pthread_mutex_unlock(&log_lock);
}

/* fields: extra journal fields "NAME=value", n of them. A line journald
 * refuses goes to stderr rather than nowhere. */
static void emit(int level, const char *msg, char **fields, int n)
{
	if (log_journal) {
		char m[2100], p[16], id[80];
		struct iovec iov[3 + 8];
		int k = 0;
		snprintf(m, sizeof m, "MESSAGE=%s", msg);
		snprintf(p, sizeof p, "PRIORITY=%d", level);
		snprintf(id, sizeof id, "SYSLOG_IDENTIFIER=%s", log_ident);
		iov[k++] = (struct iovec){m, strlen(m)};
		iov[k++] = (struct iovec){p, strlen(p)};
		iov[k++] = (struct iovec){id, strlen(id)};
		for (int i = 0; i < n && i < 8; i++)
			iov[k++] = (struct iovec){fields[i], strlen(fields[i])};
		if (sd_journal_sendv(iov, k) >= 0)
			return;
	}
	to_stderr(level, msg);
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (level > log_level)
		return;
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	sanitize(msg);
	emit(level, msg, NULL, 0);
}

void log_file_event(int level, const char *path, const char *key, long long size,
		    long long duration_ms, int err, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sanitize(msg);
	char f[5][1100];
	char *fields[5];
	int n = 0;
	if (path)
		snprintf(f[n], sizeof f[n], "LZFS_FILE=%s", path), fields[n] = f[n], n++;
	if (key)
		snprintf(f[n], sizeof f[n], "LZFS_KEY=%s", key), fields[n] = f[n], n++;
	if (size >= 0)
		snprintf(f[n], sizeof f[n], "LZFS_SIZE=%lld", size), fields[n] = f[n], n++;
	if (duration_ms >= 0)
		snprintf(f[n], sizeof f[n], "LZFS_DURATION_MS=%lld", duration_ms), fields[n] = f[n], n++;
	if (err)
		snprintf(f[n], sizeof f[n], "LZFS_ERROR=%s", strerror(err < 0 ? -err : err)),
			fields[n] = f[n], n++;
	for (int i = 0; i < n; i++)
		sanitize(fields[i]);
	emit(level, msg, fields, n);
}

int log_journal_wanted(void)
{
	if (getenv("NOTIFY_SOCKET"))
		return 1;
	/* JOURNAL_STREAM=DEV:INODE of the stream systemd connected us to; it is
	 * inherited by children whose stderr went elsewhere, so compare. */
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
