/* log.h - leveled logging to stderr or the systemd journal.
 *
 * Every module logs at the point where it knows the most (file, key, errno).
 * Secrets must never be passed to these functions: callers format keys,
 * paths and error codes, never credentials or signatures.
 */
#ifndef LZFS_LOG_H
#define LZFS_LOG_H

#include <stdarg.h>

enum lz_level {
	LZ_ERR = 3,
	LZ_WARN = 4,
	LZ_NOTICE = 5,
	LZ_INFO = 6,
	LZ_DEBUG = 7,
};

/* ident: program name in each line; level: most verbose level printed;
 * journal: 1 sends to journald (structured), 0 to stderr. */
void log_init(const char *ident, int level, int journal);
void log_set_level(int level);
int log_get_level(void);
/* Parses "error", "warn", "notice", "info", "debug" (or 3..7). Returns the
 * level or -EINVAL. */
int log_level_parse(const char *s);

void log_msg(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

/* One line about one file (ingested, parked, failed). In the journal it
 * carries the fields LZFS_FILE (path in the mount), LZFS_KEY (S3 key),
 * LZFS_SIZE (bytes), LZFS_DURATION_MS and LZFS_ERROR (strerror of -err);
 * NULL, negative sizes and durations and err == 0 leave a field out. On
 * stderr only the formatted message appears, as with log_msg. */
void log_file_event(int level, const char *path, const char *key, long long size,
		    long long duration_ms, int err, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* 1 when the journal is the right place for our lines: stderr is a journal
 * stream (JOURNAL_STREAM names its device and inode) or systemd supervises
 * us (NOTIFY_SOCKET). */
int log_journal_wanted(void);

#define log_err(...) log_msg(LZ_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LZ_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LZ_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LZ_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LZ_DEBUG, __VA_ARGS__)

#endif
