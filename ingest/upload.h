/* upload.h - the upload pipeline: objects streamed to S3 while they are
 * written, with bounded memory, and whole-file uploads from the spool.
 *
 * The part buffer is the spool file. Every byte written through the mount is
 * first written to its spool file; a stream only records what arrived in
 * order: it hashes the bytes as they pass (SHA-256 of the whole file and of
 * the current part), and when a part's range is complete it queues an upload
 * job for that range of the spool file. Worker threads send the range with
 * pread (curl's own upload buffer, no copy of the part in the heap), signed
 * with the part's SHA-256 so that S3 rejects any byte changed on the way.
 *
 * Memory is bounded by mem_limit: the bytes written but not yet uploaded,
 * summed over all streams, never exceed it. A writer that would pass it
 * waits in up_stream_write() until workers catch up (back-pressure), so a
 * writer that outruns S3 is throttled, not buffered without bound. The
 * daemon's heap holds no part data; its size is independent of the number
 * of writers.
 *
 * Part sizes: part n is up_part_size(cfg, n). Parts start at cfg.part_size
 * (>= 5 MiB) and double every max_parts/20 parts, capped at 5 GiB, so any
 * object up to 5 TiB fits in max_parts parts and no non-last part is ever
 * under 5 MiB.
 *
 * A stream that sees a write out of order (seek back, sparse write, truncate
 * below what was queued) is "broken": its multipart upload is aborted and
 * the caller uploads the spool file whole with up_file() after close.
 */
#ifndef LZFS_UPLOAD_H
#define LZFS_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "s3.h"

struct up_config {
	uint64_t part_size;   /* first part size; 0 = 8 MiB; < 5 MiB is raised to 5 MiB */
	int max_parts;        /* 0 = 10000; a lower limit (tests, some stores) */
	uint64_t mem_limit;   /* bytes written but not uploaded, all streams; 0 = 256 MiB */
	int workers;          /* upload threads = parts in flight; 0 = 8 */
};

/* Size of part `part_number` (1-based) under cfg's schedule. */
uint64_t up_part_size(const struct up_config *cfg, int part_number);

struct up_pool;

/* Starts cfg.workers threads owned by the pool. */
int up_pool_new(const struct up_config *cfg, struct s3_client *s3, struct up_pool **out);
/* Joins the workers. Every stream must have been finished or aborted. */
void up_pool_free(struct up_pool *p);

struct up_pool_stats {
	uint64_t backlog_bytes;     /* written, not yet uploaded */
	uint64_t backlog_peak;
	int parts_in_flight;
	int parts_queued;
	uint64_t parts_uploaded;
	uint64_t bytes_uploaded;
	uint64_t throttle_waits;    /* times a writer waited for the backlog */
};
void up_pool_stats(struct up_pool *p, struct up_pool_stats *out);

/* Called from worker threads (keep them short). For the catalog: the upload
 * id once the multipart upload exists, and each part once S3 has it. */
struct up_hooks {
	void (*created)(void *arg, const char *upload_id);
	/* CreateMultipartUpload failed in a way that may have created an
	 * upload whose id never reached us (an answer lost, unreadable or a
	 * server error): S3 may hold one for the key, dated in [from, to]. */
	void (*create_unknown)(void *arg, time_t from, time_t to);
	void (*part_done)(void *arg, int part_number, const char *etag, uint64_t size);
	void *arg;
};

/* What to do after create_unknown: lists the multipart uploads of key and
 * aborts those S3 dates within UP_UNKNOWN_SKEW_S of [from, to] that
 * keep(arg, upload_id) does not claim (the caller's live uploads, another
 * host's). Returns how many were aborted, or a negative errno (listing
 * failed, or an abort did: try again later); 0 without ListMultipartUploads. */
#define UP_UNKNOWN_SKEW_S 120
int up_abort_unknown(struct s3_client *s3, const char *key, time_t from, time_t to,
		     int (*keep)(void *arg, const char *upload_id), void *arg);

struct up_result {
	uint64_t size;
	char sha256[65];            /* hex of the whole object */
	char etag[S3_ETAG_MAX];
	int parts;                  /* 0 for a single PUT */
};

struct up_stream;

/* A stream for `key`, sourced from spool_fd (the stream reads part ranges
 * with pread; the caller keeps the fd open until finish/abort returns).
 * Nothing is sent until the first part is complete; the multipart upload is
 * created then. opts and hooks are copied. */
int up_stream_open(struct up_pool *p, const char *key, int spool_fd,
		   const struct s3_put_opts *opts, const struct up_hooks *hooks,
		   struct up_stream **out);

/* The caller has written [off, off+len) of buf to the spool file. In order
 * (off == bytes seen so far): hashed and parts queued, possibly waiting for
 * the backlog. Out of order: the stream breaks (returns -ESPIPE once, then
 * 0: a broken stream ignores further writes). Returns -EIO if an earlier
 * part upload failed for good (the stream is then broken too). */
int up_stream_write(struct up_stream *s, off_t off, const void *buf, size_t len);

/* The file was truncated to `size`. Below what was queued: breaks. */
void up_stream_truncate(struct up_stream *s, off_t size);

/* 1 if the stream broke or failed: the caller must use up_file(). */
int up_stream_broken(const struct up_stream *s);
uint64_t up_stream_size(const struct up_stream *s); /* bytes seen in order */

/* Sends what remains (a single PUT when the object never reached one part,
 * else the last part), waits for every part, completes the multipart upload
 * and verifies it. 0 and *res filled, or a negative errno (the upload is
 * aborted; the caller falls back to up_file() or parks the file). The
 * stream is freed either way. */
int up_stream_finish(struct up_stream *s, struct up_result *res);

/* Aborts the multipart upload (if any), waits for its parts, frees. */
void up_stream_abort(struct up_stream *s);

/* Uploads the whole file fd as key: a single PUT below one part, else a
 * multipart upload with parts sent in parallel by the pool's workers. Hashes
 * the file as it goes. Used after a broken stream, for the rescanner and for
 * retries from the spool. hooks may be NULL. */
int up_file(struct up_pool *p, int fd, const char *key, const struct s3_put_opts *opts,
	    const struct up_hooks *hooks, struct up_result *res);

#endif
