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
	log_journal = journal;
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

void log_vmsg(int level, const char *fmt, va_list ap)
{
	static const char *tags[] = {"", "", "", "error", "warning", "notice", "info", "debug"};
	if (level > log_level)
		return;
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	/* Control characters from file names would forge log lines. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	if (log_journal) {
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level,
				"SYSLOG_IDENTIFIER=%s", log_ident, NULL);
		return;
	}
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

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
