/* upload.c - see upload.h.
 *
 * Locking: one pool mutex guards the job queue, the backlog, the stats and
 * every stream field that workers touch (upload id, parts, in-flight count,
 * failure). The hashing state and the part cursor of a stream belong to its
 * writer (the caller serializes writes, truncates and finish), so hashing
 * runs without the lock.
 *
 * Backlog: the bytes of parts queued or being sent. A part is added when its
 * range is complete and removed when its upload ends (either way). The bytes
 * of a stream's current, incomplete part are not counted: they cannot be
 * sent yet, and counting them would let slow writers that each hold half a
 * part starve everyone (a waiting writer could be waiting for itself).
 *
 * Back-pressure: a writer queues a part when backlog + part <= mem_limit, or
 * when the backlog is empty (a part larger than mem_limit must still go), so
 * backlog_peak <= max(mem_limit, largest part). Writers waiting for room are
 * served first come first served, so a stream with big parts is not starved
 * by streams with small ones. Nothing waits on a writer, so this cannot
 * deadlock: while a writer waits, the backlog is non-empty and the workers
 * are draining it. Parts that have grown past mem_limit (very large objects)
 * therefore go one at a time: mem_limit should be at least workers x the
 * part size of the objects expected.
 *
 * The multipart upload is created by the first worker that takes a part of
 * the stream, not by the writer: the write that completes the first part
 * returns without a network round trip. Other workers holding parts of the
 * same stream wait for that creation.
 *
 * Parts: a complete part is queued when the next byte arrives (or at
 * finish), so an object of exactly one part is still a single PUT. A
 * truncate that extends the file leaves zeros in the spool: writes into that
 * range (and finish, up to the new size) feed those zeros to the stream
 * instead of breaking it. A truncate inside the current part rehashes the
 * part from the spool file (the whole-file hash restarts from a copy taken at
 * the part's start); one below it breaks the stream.
 *
 * Verification: every part is signed with its SHA-256 (S3 rejects a changed
 * byte); after CompleteMultipartUpload, HEAD must show the streamed size and
 * the same ETag. A single PUT is signed the same way and not HEADed (its 200
 * answer is S3's commit; a HEAD per small file would double their requests).
 *
 * Failures: a part that fails after the S3 client's retries fails its
 * stream: the stream's queued parts are dropped at once (freeing backlog),
 * the next write returns -EIO once (-EFBIG for an object that needs more than
 * max_parts parts) and later writes are ignored (0), and
 * up_stream_broken() says so. finish then aborts the upload and returns the
 * first error. The spool file is untouched, so the caller can up_file() it.
 */
#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hash.h"
#include "log.h"

#define MIB (1024.0 * 1024.0)
#define DEF_PART_SIZE (8ull * 1024 * 1024)
#define DEF_MEM_LIMIT (256ull * 1024 * 1024)
#define DEF_WORKERS 8
#define MAX_WORKERS 256
#define IO_CHUNK (1024 * 1024)

static void cfg_normalize(const struct up_config *in, struct up_config *out)
{
	*out = in ? *in : (struct up_config){0};
	if (out->part_size == 0)
		out->part_size = DEF_PART_SIZE;
	if (out->part_size < S3_MIN_PART_SIZE)
		out->part_size = S3_MIN_PART_SIZE;
	if (out->part_size > S3_MAX_PART_SIZE)
		out->part_size = S3_MAX_PART_SIZE;
	if (out->max_parts <= 0 || out->max_parts > S3_MAX_PARTS)
		out->max_parts = S3_MAX_PARTS;
	if (out->mem_limit == 0)
		out->mem_limit = DEF_MEM_LIMIT;
	if (out->workers <= 0)
		out->workers = DEF_WORKERS;
	if (out->workers > MAX_WORKERS)
		out->workers = MAX_WORKERS;
}

uint64_t up_part_size(const struct up_config *cfg, int part_number)
{
	struct up_config c;
	cfg_normalize(cfg, &c);
	if (part_number < 1)
		part_number = 1;
	/* Ten doublings take 5 MiB to the 5 GiB cap: with 10000 parts (500 per
	 * size) the sum is about 27 TiB, well past S3's 5 TiB object limit. */
	int step = c.max_parts / 20;
	if (step < 1)
		step = 1;
	int doublings = (part_number - 1) / step;
	uint64_t size = c.part_size;
	while (doublings-- > 0 && size < S3_MAX_PART_SIZE)
		size *= 2;
	return size < S3_MAX_PART_SIZE ? size : S3_MAX_PART_SIZE;
}

struct up_job {
	struct up_job *next;
	struct up_stream *s;
	int part;
	off_t off;
	uint64_t len;
	unsigned char sha256[32];
};

/* A writer waiting for room in the backlog, in arrival order. */
struct up_waiter {
	struct up_waiter *next;
};

struct up_pool {
	struct up_config cfg;
	struct s3_client *s3;
	pthread_mutex_t lock;
	pthread_cond_t work;   /* workers: a job was queued, or stop */
	pthread_cond_t space;  /* writers: the backlog shrank or the waiter queue moved */
	pthread_cond_t done;   /* a part ended, an upload was created */
	struct up_job *head, *tail;
	struct up_waiter *wait_head, *wait_tail;
	int stop;
	pthread_t *threads;
	int nthreads;
	struct up_pool_stats st;
};

struct up_stream {
	struct up_pool *p;
	char *key;
	int fd;
	struct s3_put_opts opts;   /* deep copy */
	struct up_hooks hooks;
	struct timespec t_open;

	/* Writer side (no lock). */
	EVP_MD_CTX *whole;         /* SHA-256 of [0, seen) */
	EVP_MD_CTX *part;          /* SHA-256 of [part_start, seen) */
	EVP_MD_CTX *mark;          /* `whole` as it was at part_start */
	uint64_t seen;             /* bytes received in order */
	uint64_t tail;             /* file size set by truncate, if above seen */
	int part_no;               /* current part, not yet queued */
	uint64_t part_start, part_len;
	int err_reported;
	int whole_file;            /* up_file(): a failure is not a "broken stream" */

	/* Shared with workers (pool lock). */
	int broken;                /* out of order: the caller must use up_file() */
	int dead;                  /* finishing or aborting after a failure: drop parts */
	int err;                   /* first failure, negative errno */
	char why[320];             /* what failed, for the log */
	char *upload_id;
	int creating;
	int inflight;              /* parts queued or being sent */
	struct s3_part *parts;     /* index part_number - 1 */
	int parts_cap;
};

static double elapsed_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* snprintf for messages that may be cut (keys and S3 messages are long). */
__attribute__((format(printf, 3, 4)))
static void fmt(char *out, size_t n, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(out, n, f, ap);
	va_end(ap);
}

static void describe(char *out, size_t n, const char *what, int rc, const struct s3_status *st)
{
	if (st && (st->http_status || st->code[0]))
		fmt(out, n, "%s: %s (HTTP %ld %s: %s)", what, strerror(-rc),
		    st->http_status, st->code, st->message);
	else
		fmt(out, n, "%s: %s", what, strerror(-rc));
}

/* ---- pool ---- */

static void job_end(struct up_pool *p, struct up_job *j)
{
	p->st.backlog_bytes -= j->len;
	j->s->inflight--;
	free(j);
	pthread_cond_broadcast(&p->space);
	pthread_cond_broadcast(&p->done);
}

/* Removes the stream's queued parts (lock held): after a failure or a break
 * they would only be aborted, and their bytes hold back other writers. */
static void drop_queued(struct up_pool *p, struct up_stream *s)
{
	struct up_job **pp = &p->head, *prev = NULL;
	while (*pp) {
		struct up_job *j = *pp;
		if (j->s != s) {
			prev = j;
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (p->tail == j)
			p->tail = prev;
		p->st.parts_queued--;
		job_end(p, j);
	}
}

/* Lock held. Keeps the first error. */
static void stream_fail(struct up_stream *s, int rc, const char *why)
{
	if (!s->err) {
		s->err = rc;
		fmt(s->why, sizeof s->why, "%s", why);
	}
	drop_queued(s->p, s);
}

/* Lock held on entry and exit; dropped while talking to S3. */
static void run_job(struct up_pool *p, struct up_job *j)
{
	struct up_stream *s = j->s;
	char why[300];
	struct s3_status st;

	while (!s->upload_id && !s->err && !s->dead && !s->broken) {
		if (s->creating) {
			pthread_cond_wait(&p->done, &p->lock);
			continue;
		}
		s->creating = 1;
		pthread_mutex_unlock(&p->lock);
		char *id = NULL;
		memset(&st, 0, sizeof st);
		time_t t0 = time(NULL);
		int rc = s3_mpu_create(p->s3, s->key, &s->opts, &id, &st);
		if (rc == 0 && s->hooks.created)
			s->hooks.created(s->hooks.arg, id);
		if (rc < 0) {
			describe(why, sizeof why, "CreateMultipartUpload", rc, &st);
			/* Only a 4xx says for sure that nothing was created. */
			if ((st.http_status < 400 || st.http_status >= 500) && s->hooks.create_unknown)
				s->hooks.create_unknown(s->hooks.arg, t0, time(NULL));
		}
		pthread_mutex_lock(&p->lock);
		s->creating = 0;
		if (rc == 0)
			s->upload_id = id;
		else
			stream_fail(s, rc, why);
		pthread_cond_broadcast(&p->done);
	}
	if (s->err || s->dead || s->broken) {
		job_end(p, j);
		return;
	}
	const char *id = s->upload_id; /* stable until the stream is freed */
	pthread_mutex_unlock(&p->lock);

	struct s3_body body = {.fd = s->fd, .off = j->off, .len = j->len, .sha256 = j->sha256};
	char etag[S3_ETAG_MAX] = "";
	memset(&st, 0, sizeof st);
	int rc = s3_mpu_upload_part(p->s3, s->key, id, j->part, &body, etag, &st);
	if (rc == 0 && !etag[0]) {
		rc = -EPROTO;
		fmt(st.message, sizeof st.message, "no ETag in the answer");
	}
	if (rc == 0 && s->hooks.part_done)
		s->hooks.part_done(s->hooks.arg, j->part, etag, j->len);
	if (rc < 0) {
		char what[64];
		fmt(what, sizeof what, "UploadPart %d", j->part);
		describe(why, sizeof why, what, rc, &st);
	}

	pthread_mutex_lock(&p->lock);
	if (rc == 0) {
		struct s3_part *sp = &s->parts[j->part - 1];
		sp->number = j->part;
		fmt(sp->etag, sizeof sp->etag, "%s", etag);
		sp->size = j->len;
		p->st.parts_uploaded++;
		p->st.bytes_uploaded += j->len;
	} else {
		stream_fail(s, rc, why);
	}
	job_end(p, j);
}

static void *worker_main(void *arg)
{
	struct up_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		struct up_job *j = p->head;
		if (!j)
			break;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->st.parts_queued--;
		p->st.parts_in_flight++;
		run_job(p, j);
		p->st.parts_in_flight--;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int up_pool_new(const struct up_config *cfg, struct s3_client *s3, struct up_pool **out)
{
	*out = NULL;
	struct up_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	cfg_normalize(cfg, &p->cfg);
	p->s3 = s3;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->done, NULL);
	p->threads = calloc(p->cfg.workers, sizeof *p->threads);
	if (!p->threads) {
		up_pool_free(p);
		return -ENOMEM;
	}
	for (int i = 0; i < p->cfg.workers; i++) {
		int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
		if (rc) {
			log_err("upload: cannot start worker thread: %s", strerror(rc));
			up_pool_free(p);
			return -rc;
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

void up_pool_free(struct up_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->space);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void up_pool_stats(struct up_pool *p, struct up_pool_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}

/* Queues part s->part_no = [part_start, seen), waiting for room in the
 * backlog. Writer side. */
static int queue_part(struct up_stream *s)
{
	struct up_pool *p = s->p;
	struct up_job *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->s = s;
	j->part = s->part_no;
	j->off = (off_t)s->part_start;
	j->len = s->seen - s->part_start;
	if (EVP_DigestFinal_ex(s->part, j->sha256, NULL) != 1 ||
	    EVP_DigestInit_ex(s->part, EVP_sha256(), NULL) != 1) {
		free(j);
		return -EIO;
	}

	pthread_mutex_lock(&p->lock);
	if (j->part > s->parts_cap) {
		int cap = s->parts_cap ? s->parts_cap * 2 : 16;
		while (cap < j->part)
			cap *= 2;
		struct s3_part *np = realloc(s->parts, (size_t)cap * sizeof *np);
		if (!np) {
			pthread_mutex_unlock(&p->lock);
			free(j);
			return -ENOMEM;
		}
		memset(np + s->parts_cap, 0, (size_t)(cap - s->parts_cap) * sizeof *np);
		s->parts = np;
		s->parts_cap = cap;
	}

	struct up_waiter w = {0};
	if (p->wait_tail)
		p->wait_tail->next = &w;
	else
		p->wait_head = &w;
	p->wait_tail = &w;
	int waited = 0;
	while (!s->err && (p->wait_head != &w ||
			   (p->st.backlog_bytes > 0 &&
			    p->st.backlog_bytes + j->len > p->cfg.mem_limit))) {
		if (!waited++)
			p->st.throttle_waits++;
		pthread_cond_wait(&p->space, &p->lock);
	}
	/* Unlink w (the head, unless the stream failed while waiting). */
	struct up_waiter **pp = &p->wait_head, *prev = NULL;
	while (*pp != &w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = w.next;
	if (p->wait_tail == &w)
		p->wait_tail = prev;
	pthread_cond_broadcast(&p->space);

	int rc = s->err;
	if (rc == 0) {
		if (p->tail)
			p->tail->next = j;
		else
			p->head = j;
		p->tail = j;
		s->inflight++;
		p->st.parts_queued++;
		p->st.backlog_bytes += j->len;
		if (p->st.backlog_bytes > p->st.backlog_peak)
			p->st.backlog_peak = p->st.backlog_bytes;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	if (rc)
		free(j);
	return rc;
}

/* ---- streams ---- */

static void opts_free(struct s3_put_opts *o)
{
	free((char *)o->content_type);
	for (int i = 0; i < o->nmeta; i++) {
		free((char *)o->meta[i].name);
		free((char *)o->meta[i].value);
	}
	free((struct s3_meta *)o->meta);
	memset(o, 0, sizeof *o);
}

static int opts_copy(struct s3_put_opts *dst, const struct s3_put_opts *src)
{
	memset(dst, 0, sizeof *dst);
	if (!src)
		return 0;
	dst->checksum_sha256 = src->checksum_sha256;
	if (src->content_type && !(dst->content_type = strdup(src->content_type)))
		return -ENOMEM;
	if (src->nmeta > 0) {
		struct s3_meta *m = calloc((size_t)src->nmeta, sizeof *m);
		if (!m)
			return -ENOMEM;
		dst->meta = m;
		for (int i = 0; i < src->nmeta; i++) {
			dst->nmeta++;
			m[i].name = strdup(src->meta[i].name);
			m[i].value = strdup(src->meta[i].value);
			if (!m[i].name || !m[i].value)
				return -ENOMEM;
		}
	}
	return 0;
}

static void stream_free(struct up_stream *s)
{
	EVP_MD_CTX_free(s->whole);
	EVP_MD_CTX_free(s->part);
	EVP_MD_CTX_free(s->mark);
	opts_free(&s->opts);
	free(s->key);
	free(s->upload_id);
	free(s->parts);
	free(s);
}

int up_stream_open(struct up_pool *p, const char *key, int spool_fd,
		   const struct s3_put_opts *opts, const struct up_hooks *hooks,
		   struct up_stream **out)
{
	*out = NULL;
	struct up_stream *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->p = p;
	s->fd = spool_fd;
	s->part_no = 1;
	s->part_len = up_part_size(&p->cfg, 1);
	if (hooks)
		s->hooks = *hooks;
	clock_gettime(CLOCK_MONOTONIC, &s->t_open);
	s->key = strdup(key);
	s->whole = EVP_MD_CTX_new();
	s->part = EVP_MD_CTX_new();
	s->mark = EVP_MD_CTX_new();
	int rc = opts_copy(&s->opts, opts);
	if (rc == 0 && (!s->key || !s->whole || !s->part || !s->mark))
		rc = -ENOMEM;
	if (rc == 0 && (EVP_DigestInit_ex(s->whole, EVP_sha256(), NULL) != 1 ||
			EVP_DigestInit_ex(s->part, EVP_sha256(), NULL) != 1 ||
			EVP_MD_CTX_copy_ex(s->mark, s->whole) != 1))
		rc = -EIO;
	if (rc) {
		log_err("upload %s: cannot open a stream: %s", key, strerror(-rc));
		stream_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* Writer side: marks the stream broken and frees its queued parts. */
static void stream_break(struct up_stream *s, const char *why)
{
	struct up_pool *p = s->p;
	pthread_mutex_lock(&p->lock);
	int was = s->broken || s->err;
	s->broken = 1;
	drop_queued(p, s);
	pthread_mutex_unlock(&p->lock);
	if (!was)
		log_warn("upload %s: stream broken (%s); the file will be uploaded whole",
			 s->key, why);
}

/* Writer side: the stream's first failure, as an errno. */
static int stream_err(struct up_stream *s)
{
	pthread_mutex_lock(&s->p->lock);
	int rc = s->err;
	pthread_mutex_unlock(&s->p->lock);
	return rc;
}

static void fail_local(struct up_stream *s, int rc, const char *why)
{
	pthread_mutex_lock(&s->p->lock);
	stream_fail(s, rc, why);
	pthread_mutex_unlock(&s->p->lock);
}

/* Hashes in-order bytes and queues every part they complete. A complete
 * part is queued when the next byte arrives (or at finish), so an object of
 * exactly one part is still a single PUT. */
static int feed(struct up_stream *s, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		if (s->seen == s->part_start + s->part_len) {
			if (s->part_no >= s->p->cfg.max_parts) {
				char why[96];
				fmt(why, sizeof why, "the object needs more than %d parts",
				    s->p->cfg.max_parts);
				fail_local(s, -EFBIG, why);
				return -EFBIG;
			}
			int rc = queue_part(s);
			if (rc < 0)
				return rc;
			s->part_no++;
			s->part_start = s->seen;
			s->part_len = up_part_size(&s->p->cfg, s->part_no);
			if (EVP_MD_CTX_copy_ex(s->mark, s->whole) != 1)
				return -EIO;
		}
		uint64_t room = s->part_start + s->part_len - s->seen;
		size_t n = len < room ? len : (size_t)room;
		if (EVP_DigestUpdate(s->whole, buf, n) != 1 ||
		    EVP_DigestUpdate(s->part, buf, n) != 1)
			return -EIO;
		s->seen += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The file's holes between seen and `to` (after a truncate that extended
 * it) are zeros in the spool file too. */
static int feed_zeros(struct up_stream *s, uint64_t to)
{
	static const unsigned char zeros[64 * 1024];
	while (s->seen < to) {
		uint64_t n = to - s->seen < sizeof zeros ? to - s->seen : sizeof zeros;
		int rc = feed(s, zeros, (size_t)n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Returns the error to give the writer for a failed stream, once: -EIO
 * for S3's failures, -EFBIG for an object past max_parts. */
static int write_failed(struct up_stream *s, int rc)
{
	if (s->err_reported)
		return 0;
	s->err_reported = 1;
	char why[sizeof s->why];
	pthread_mutex_lock(&s->p->lock);
	s->broken = 1;
	fmt(why, sizeof why, "%s", s->why[0] ? s->why : strerror(-rc));
	pthread_mutex_unlock(&s->p->lock);
	if (!s->whole_file)
		log_warn("upload %s: stream broken (%s); the file will be uploaded whole",
			 s->key, why);
	return rc == -EFBIG ? -EFBIG : -EIO;
}

int up_stream_write(struct up_stream *s, off_t off, const void *buf, size_t len)
{
	if (s->err_reported)
		return 0;
	pthread_mutex_lock(&s->p->lock);
	int broken = s->broken, rc = s->err;
	pthread_mutex_unlock(&s->p->lock);
	if (rc)
		return write_failed(s, rc);
	if (broken || len == 0)
		return 0;
	if (off < 0 || (uint64_t)off != s->seen) {
		if (off > 0 && (uint64_t)off > s->seen && (uint64_t)off <= s->tail) {
			rc = feed_zeros(s, (uint64_t)off);
		} else {
			char why[96];
			fmt(why, sizeof why, "write at %jd, expected %" PRIu64,
			    (intmax_t)off, s->seen);
			stream_break(s, why);
			s->err_reported = 1;
			return -ESPIPE;
		}
	}
	if (rc == 0)
		rc = feed(s, buf, len);
	if (rc < 0) {
		if (!stream_err(s))
			fail_local(s, rc, "hashing or queueing a part failed");
		return write_failed(s, rc);
	}
	return 0;
}

/* Rehashes [part_start, size) from the spool file after a truncate inside
 * the current part: the hashes cannot be wound back, but the part start can
 * be returned to. */
static int rewind_to(struct up_stream *s, uint64_t size)
{
	if (EVP_MD_CTX_copy_ex(s->whole, s->mark) != 1 ||
	    EVP_DigestInit_ex(s->part, EVP_sha256(), NULL) != 1)
		return -EIO;
	s->seen = s->part_start;
	unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	while (rc == 0 && s->seen < size) {
		size_t want = size - s->seen < IO_CHUNK ? (size_t)(size - s->seen) : IO_CHUNK;
		ssize_t n = pread(s->fd, buf, want, (off_t)s->seen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? -errno : -EIO;
		else
			rc = feed(s, buf, (size_t)n);
	}
	free(buf);
	return rc;
}

void up_stream_truncate(struct up_stream *s, off_t size)
{
	if (!s || s->err_reported || up_stream_broken(s))
		return;
	uint64_t sz = size < 0 ? 0 : (uint64_t)size;
	if (sz >= s->seen) {
		s->tail = sz;
		return;
	}
	s->tail = 0;
	if (sz < s->part_start) {
		char why[96];
		fmt(why, sizeof why, "truncated to %" PRIu64 ", %" PRIu64 " already queued",
		    sz, s->part_start);
		stream_break(s, why);
		s->err_reported = 1;
		return;
	}
	int rc = rewind_to(s, sz);
	if (rc < 0) {
		char why[96];
		fmt(why, sizeof why, "cannot rehash after a truncate to %" PRIu64 ": %s",
		    sz, strerror(-rc));
		stream_break(s, why);
		s->err_reported = 1;
	}
}

int up_stream_broken(const struct up_stream *s)
{
	pthread_mutex_lock(&s->p->lock);
	int b = s->broken || s->err;
	pthread_mutex_unlock(&s->p->lock);
	return b;
}

uint64_t up_stream_size(const struct up_stream *s)
{
	return s->seen;
}

/* Stops the stream's parts, waits for those being sent, aborts the upload
 * if one was created, frees. */
static void stream_teardown(struct up_stream *s)
{
	struct up_pool *p = s->p;
	pthread_mutex_lock(&p->lock);
	s->dead = 1;
	drop_queued(p, s);
	while (s->inflight > 0 || s->creating)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
	if (s->upload_id) {
		struct s3_status st = {0};
		int rc = s3_mpu_abort(p->s3, s->key, s->upload_id, &st);
		if (rc < 0) {
			char why[300];
			describe(why, sizeof why, "AbortMultipartUpload", rc, &st);
			log_err("upload %s: upload id %s left behind: %s", s->key, s->upload_id, why);
		}
	}
	stream_free(s);
}

static void log_done(struct up_stream *s, const struct up_result *res)
{
	double t = elapsed_since(&s->t_open);
	log_info("uploaded %s: %" PRIu64 " bytes, %d parts, %.1f MiB/s", s->key, res->size,
		 res->parts, t > 0 ? (double)res->size / MIB / t : 0.0);
}

static int put_single(struct up_stream *s, const unsigned char sha[32], struct up_result *res)
{
	struct s3_body body = {.fd = s->fd, .off = 0, .len = s->seen, .sha256 = sha};
	if (s->seen == 0)
		body.buf = "";
	/* With the MD5, s3_put_object checks the answer's ETag, the one the
	 * catalog records (a multipart ETag is checked by HEAD instead). The
	 * object is under one part and in the page cache: about 2 ms per MiB. */
	unsigned char md5[16];
	int rc = body.buf ? hash_md5(body.buf, 0, md5) : hash_fd(HASH_MD5, s->fd, 0, s->seen, md5);
	if (rc == 0)
		body.md5 = md5;
	struct s3_status st = {0};
	rc = s3_put_object(s->p->s3, s->key, &body, &s->opts, res->etag, &st);
	if (rc < 0) {
		describe(s->why, sizeof s->why, "PutObject", rc, &st);
		return rc;
	}
	return 0;
}

static int complete(struct up_stream *s, int n, struct up_result *res)
{
	struct up_pool *p = s->p;
	for (int i = 0; i < n; i++) {
		if (s->parts[i].number != i + 1 || !s->parts[i].etag[0]) {
			fmt(s->why, sizeof s->why, "part %d has no ETag", i + 1);
			return -EIO;
		}
	}
	struct s3_status st = {0};
	int rc = s3_mpu_complete(p->s3, s->key, s->upload_id, s->parts, n, res->etag, &st);
	if (rc < 0) {
		describe(s->why, sizeof s->why, "CompleteMultipartUpload", rc, &st);
		return rc;
	}
	/* The upload is gone now: nothing to abort whatever HEAD says. */
	free(s->upload_id);
	s->upload_id = NULL;

	struct s3_object_info info = {0};
	memset(&st, 0, sizeof st);
	rc = s3_head_object(p->s3, s->key, &info, &st);
	if (rc < 0) {
		describe(s->why, sizeof s->why, "HeadObject after completing", rc, &st);
		return rc;
	}
	if (info.size != s->seen) {
		fmt(s->why, sizeof s->why, "completed object has %" PRIu64 " bytes, %" PRIu64
		    " were streamed", info.size, s->seen);
		rc = -EIO;
	} else if (res->etag[0] && info.etag[0] && strcmp(res->etag, info.etag) != 0) {
		fmt(s->why, sizeof s->why, "completed object has ETag %s, not %s",
		    info.etag, res->etag);
		rc = -EIO;
	}
	s3_object_info_clear(&info);
	return rc;
}

int up_stream_finish(struct up_stream *s, struct up_result *res)
{
	struct up_pool *p = s->p;
	memset(res, 0, sizeof *res);
	int rc = stream_err(s);
	if (rc == 0 && up_stream_broken(s))
		rc = -ESPIPE;
	if (rc == 0 && s->tail > s->seen)
		rc = feed_zeros(s, s->tail);

	unsigned char sha[32];
	if (rc == 0 && EVP_DigestFinal_ex(s->whole, sha, NULL) != 1)
		rc = -EIO;
	if (rc == 0 && s->part_no == 1) {
		rc = put_single(s, sha, res);
	} else if (rc == 0) {
		/* The current part is empty only after a truncate back to its
		 * start: then the previous part, already queued, is the last. */
		int nparts = s->part_no;
		if (s->seen > s->part_start)
			rc = queue_part(s);
		else
			nparts--;
		if (rc == 0) {
			pthread_mutex_lock(&p->lock);
			while (s->inflight > 0)
				pthread_cond_wait(&p->done, &p->lock);
			rc = s->err;
			pthread_mutex_unlock(&p->lock);
		}
		if (rc == 0)
			rc = complete(s, nparts, res);
		if (rc == 0)
			res->parts = nparts;
	}

	if (rc < 0) {
		/* A break was logged when it happened. */
		if (rc != -ESPIPE)
			log_err("upload %s failed (errno %d): %s", s->key, -rc,
				s->why[0] ? s->why : strerror(-rc));
		memset(res, 0, sizeof *res);
		stream_teardown(s);
		return rc;
	}
	res->size = s->seen;
	hash_hex(sha, sizeof sha, res->sha256);
	log_done(s, res);
	stream_teardown(s);
	return 0;
}

void up_stream_abort(struct up_stream *s)
{
	if (s)
		stream_teardown(s);
}

int up_file(struct up_pool *p, int fd, const char *key, const struct s3_put_opts *opts,
	    const struct up_hooks *hooks, struct up_result *res)
{
	memset(res, 0, sizeof *res);
	struct stat st0, st1;
	if (fstat(fd, &st0) < 0) {
		int rc = -errno;
		log_err("upload %s: fstat: %s", key, strerror(errno));
		return rc;
	}
	unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return -ENOMEM;
	struct up_stream *s;
	int rc = up_stream_open(p, key, fd, opts, hooks, &s);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	s->whole_file = 1;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

	uint64_t size = (uint64_t)st0.st_size, off = 0;
	const char *changed = NULL;
	while (rc == 0 && off < size) {
		size_t want = size - off < IO_CHUNK ? (size_t)(size - off) : IO_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			log_err("upload %s: read at %" PRIu64 ": %s", key, off, strerror(errno));
			break;
		}
		if (n == 0) {
			changed = "it shrank";
			break;
		}
		rc = up_stream_write(s, (off_t)off, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (rc == 0 && !changed) {
		if (fstat(fd, &st1) < 0)
			rc = -errno;
		else if (st1.st_size != st0.st_size || st1.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
			 st1.st_mtim.tv_nsec != st0.st_mtim.tv_nsec)
			changed = "it was modified";
	}
	if (changed) {
		/* The parts already sent may mix old and new bytes. */
		log_warn("upload %s: file changed while being uploaded (%s); not uploaded", key,
			 changed);
		up_stream_abort(s);
		return -EAGAIN;
	}
	if (rc < 0 && rc != -EIO) {
		up_stream_abort(s);
		return rc;
	}
	/* After -EIO (a part failed) finish reports the stream's own error. */
	return up_stream_finish(s, res);
}

struct unknown_ctx {
	struct s3_client *s3;
	const char *key;
	time_t from, to;
	int (*keep)(void *arg, const char *upload_id);
	void *arg;
	int aborted, failed;
};

static int unknown_one(const struct s3_upload_entry *u, void *arg)
{
	struct unknown_ctx *k = arg;
	if (strcmp(u->key, k->key) != 0 || u->initiated == 0 ||
	    u->initiated < k->from - UP_UNKNOWN_SKEW_S || u->initiated > k->to + UP_UNKNOWN_SKEW_S ||
	    k->keep(k->arg, u->upload_id))
		return 0;
	if (s3_mpu_abort(k->s3, u->key, u->upload_id, NULL) == 0)
		k->aborted++;
	else
		k->failed++;
	return 0;
}

int up_abort_unknown(struct s3_client *s3, const char *key, time_t from, time_t to,
		     int (*keep)(void *arg, const char *upload_id), void *arg)
{
	struct unknown_ctx k = {.s3 = s3, .key = key, .from = from, .to = to, .keep = keep, .arg = arg};
	int rc = s3_list_uploads(s3, key, unknown_one, &k, NULL);
	if (rc == -ENOTSUP || rc == -ENOSYS)
		return 0; /* no ListMultipartUploads: nothing can find it */
	if (k.aborted)
		log_notice("%s: aborted %d multipart upload(s) S3 created without its answer reaching "
			   "us", key, k.aborted);
	return rc < 0 ? rc : k.failed ? -EAGAIN : k.aborted;
}
