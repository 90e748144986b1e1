/* buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Allocation failure is sticky: later appends do nothing and buf_failed()
 * reports it, so a sequence of appends needs one check at the end.
 */
#ifndef LZFS_BUF_H
#define LZFS_BUF_H

#include <stddef.h>

struct buf {
	char *p;      /* NULL until the first append */
	size_t len;
	size_t cap;
	int failed;
};

#define BUF_INIT {NULL, 0, 0, 0}

void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reserves room for n more bytes (plus the NUL); 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_failed(const struct buf *b);
/* The contents ("" when empty); valid until the next append. */
const char *buf_str(const struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
/* Hands the malloc'd string to the caller (NULL after a failure). */
char *buf_detach(struct buf *b);
void buf_free(struct buf *b);

#endif
