/* reader.h - fast reads of ingested objects from S3.
 *
 * A reader reads one S3 object of known size (and, when known, ETag) at any
 * offset. One GET per read() would run at single-request speed, so a reader
 * that sees sequential access fetches the object in chunks (ranged GETs of
 * chunk_size) several at a time: the pool's worker threads fetch the chunks
 * ahead of the reader (read-ahead), rd_read() copies from them in order.
 * The read-ahead window starts at one chunk and doubles with each chunk the
 * reader enters, up to max_ahead chunks. A read that does not continue the
 * last one (random access) fetches just the requested range straight into
 * the caller's buffer, and stops the read-ahead; reading on from where that
 * read ended starts it again.
 *
 * Memory: chunk buffers come from one budget (mem_limit) shared by every
 * reader of the pool. Read-ahead only takes memory that is free. A reader
 * that needs a chunk now takes free memory, else the least recently used
 * ready chunk nobody is reading (read-ahead of an idle reader), else waits
 * for a fetch in flight to finish; it never waits for memory held by
 * another idle reader, so idle open files cannot starve active ones.
 *
 * Consistency: every ranged GET carries If-Match with the expected ETag and
 * the answer's ETag is compared too. Without an ETag from the caller the
 * first answer's ETag becomes the expected one. An object that changed (or
 * vanished, or has another size) makes the reader stale: that read and all
 * later ones fail with -ESTALE, so bytes of two versions are never mixed.
 * Other S3 failures (after the S3 client's retries) are -EIO; both are
 * logged with the key.
 *
 * Threads: the pool owns its workers (started by rd_pool_new, joined by
 * rd_pool_free). Readers may be used from several threads at once (FUSE);
 * rd_close must not race with rd_read on the same reader.
 */
#ifndef LZFS_READER_H
#define LZFS_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "s3.h"

struct rd_config {
	uint64_t chunk_size; /* bytes per ranged GET; 0 = 8 MiB */
	int workers;         /* read-ahead threads for all readers; 0 = 8 */
	uint64_t mem_limit;  /* chunk buffers of all readers; 0 = 256 MiB; at least one chunk */
	int max_ahead;       /* read-ahead window per reader, chunks; 0 = 8, -1 = none */
};

struct rd_pool;

int rd_pool_new(const struct rd_config *cfg, struct s3_client *s3, struct rd_pool **out);
/* Joins the workers. Every reader must have been closed. */
void rd_pool_free(struct rd_pool *p);

struct rd_pool_stats {
	uint64_t mem_used; /* chunk buffers now */
	uint64_t mem_peak;
	int fetches_in_flight; /* ranged GETs now (chunks and direct reads) */
	int fetches_peak;
	uint64_t chunks_fetched; /* chunk GETs that completed */
	uint64_t readahead_hits; /* chunks a reader found fetched or in flight */
	uint64_t direct_reads;   /* random reads into the caller's buffer */
	uint64_t chunks_dropped; /* fetched but released before being read */
	uint64_t mem_waits;      /* times a reader waited for memory */
	uint64_t bytes_fetched;
};
void rd_pool_stats(struct rd_pool *p, struct rd_pool_stats *out);
/* Resets the peaks to the current values (tests, benchmarks). */
void rd_pool_reset_peaks(struct rd_pool *p);

enum {
	/* The caller will read the whole object in order (lzfsctl get, verify):
	 * full read-ahead from the first read. */
	RD_SEQUENTIAL = 1,
};

struct rd_reader;

/* key and etag are copied; etag (no quotes) may be NULL or "" if unknown.
 * Sends nothing: a missing object shows at the first read. */
int rd_open(struct rd_pool *p, const char *key, uint64_t size, const char *etag, int flags,
            struct rd_reader **out);
/* Reads up to len bytes at off: the byte count (short only at the end of the
 * object, 0 at or past it), -ESTALE, -EIO or -ENOMEM. */
ssize_t rd_read(struct rd_reader *r, void *buf, size_t len, uint64_t off);
/* Cancels queued read-ahead, waits for this reader's fetches in flight. */
void rd_close(struct rd_reader *r);

#endif
