/* reader.c - parallel ranged reads of S3 objects (see reader.h).
 *
 * One pool lock guards everything: the job queue, the memory budget and the
 * chunk slots of every reader. It is never held during a GET or a memcpy:
 * a chunk being copied from is pinned instead, so it cannot be released or
 * given to another reader under the copy.
 *
 * A reader has max_ahead + 2 chunk slots: the chunk before the current one
 * (kernel reads of one file may arrive slightly out of order), the current
 * one and the read-ahead window. A slot is FREE, QUEUED (waiting for a
 * worker), FETCHING (a worker or a reader thread is on it), READY or FAILED.
 * The reader that needs a QUEUED chunk takes it off the queue and fetches it
 * itself rather than waiting behind other readers' read-ahead.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "reader.h"

#define MIB (1024ull * 1024)

enum ck_state { CK_FREE, CK_QUEUED, CK_FETCHING, CK_READY, CK_FAILED };

struct rd_chunk {
	struct rd_reader *r;
	enum ck_state state;
	uint64_t index;
	char *buf;
	size_t len;     /* bytes of this chunk; reserved from the budget while buf is set */
	int err;        /* CK_FAILED */
	int pins;       /* threads copying out of buf */
	int used;       /* copied from at least once */
	uint64_t stamp; /* pool clock at last use, for stealing the least recent */
	struct rd_chunk *qnext;
};

struct rd_reader {
	struct rd_pool *p;
	char *key;
	uint64_t size;
	uint64_t nchunks;
	char etag[S3_ETAG_MAX]; /* expected; "" until known */
	int flags;
	struct rd_chunk *slots;
	int nslots;
	uint64_t next; /* where the last read ended */
	int seq;       /* in a sequential run */
	uint64_t cur;  /* chunk of the last sequential read */
	int window;    /* read-ahead chunks */
	int stale;
	int fetching; /* slots in CK_FETCHING */
	struct rd_reader *prev, *nextr;
};

struct rd_pool {
	struct s3_client *s3;
	uint64_t chunk;
	uint64_t mem_limit;
	int max_ahead;
	int nthreads;
	pthread_t *threads;

	pthread_mutex_t lock;
	pthread_cond_t work;    /* workers: a job was queued, or stop */
	pthread_cond_t changed; /* readers: a fetch ended, memory or a slot came free */
	struct rd_chunk *qhead, *qtail;
	int stop;
	struct rd_reader *readers;
	int mem_waiters; /* readers waiting for memory: read-ahead holds back */
	int waiters;     /* readers waiting on `changed` for memory or a slot */
	uint64_t mem_used;
	/* Full-size chunk buffers kept for the next chunk: malloc'ing and
	 * freeing 8 MiB buffers from many threads left glibc's arenas holding
	 * freed ones, and the daemon's RSS at 3x mem_used (docs/bench.md).
	 * Counted with mem_used against mem_limit. */
	void **spare;
	int nspare, max_spare;
	uint64_t clock;
	struct rd_pool_stats st;
};

/* ------------------------------------------------------------ helpers */

static void chunk_span(const struct rd_reader *r, uint64_t index, uint64_t *off, size_t *len)
{
	uint64_t o = index * r->p->chunk;
	uint64_t n = r->size - o;

	*off = o;
	*len = (size_t)(n < r->p->chunk ? n : r->p->chunk);
}

static void inflight_inc(struct rd_pool *p)
{
	if (++p->st.fetches_in_flight > p->st.fetches_peak)
		p->st.fetches_peak = p->st.fetches_in_flight;
}

static void queue_remove(struct rd_pool *p, struct rd_chunk *c)
{
	struct rd_chunk **pp, *prev = NULL;

	for (pp = &p->qhead; *pp; prev = *pp, pp = &(*pp)->qnext) {
		if (*pp != c)
			continue;
		*pp = c->qnext;
		if (p->qtail == c)
			p->qtail = prev;
		c->qnext = NULL;
		return;
	}
}

static void queue_add(struct rd_pool *p, struct rd_chunk *c)
{
	c->qnext = NULL;
	if (p->qtail)
		p->qtail->qnext = c;
	else
		p->qhead = c;
	p->qtail = c;
	pthread_cond_signal(&p->work);
}

/* A buffer for a chunk of len bytes, whose memory is already reserved. */
static char *buf_get(struct rd_pool *p, size_t len)
{
	if (len == p->chunk && p->nspare)
		return p->spare[--p->nspare];
	return malloc(len);
}

/* Takes back a buffer whose memory was already given back to mem_used. */
static void buf_put(struct rd_pool *p, char *buf, size_t len)
{
	if (len == p->chunk && p->nspare < p->max_spare &&
	    p->mem_used + (uint64_t)(p->nspare + 1) * p->chunk <= p->mem_limit)
		p->spare[p->nspare++] = buf;
	else
		free(buf);
}

/* Returns a READY, FAILED or QUEUED slot to FREE with its memory. */
static void chunk_release(struct rd_pool *p, struct rd_chunk *c)
{
	if (c->state == CK_QUEUED)
		queue_remove(p, c);
	if (c->buf) {
		p->mem_used -= c->len;
		buf_put(p, c->buf, c->len);
		c->buf = NULL;
		if (!c->used && c->state == CK_READY)
			p->st.chunks_dropped++;
	}
	c->state = CK_FREE;
	c->pins = 0;
	c->used = 0;
	c->err = 0;
	if (p->waiters)
		pthread_cond_broadcast(&p->changed);
}

static int releasable(const struct rd_chunk *c)
{
	return c->pins == 0 &&
	       (c->state == CK_READY || c->state == CK_FAILED || c->state == CK_QUEUED);
}

static struct rd_chunk *find(struct rd_reader *r, uint64_t index)
{
	for (int i = 0; i < r->nslots; i++)
		if (r->slots[i].state != CK_FREE && r->slots[i].index == index)
			return &r->slots[i];
	return NULL;
}

/* A free slot, else one released from outside chunks [lo, hi]: the farthest
 * behind first, then the farthest ahead. NULL if every slot is busy. */
static struct rd_chunk *take_slot(struct rd_reader *r, uint64_t lo, uint64_t hi)
{
	struct rd_chunk *best = NULL;

	for (int i = 0; i < r->nslots; i++) {
		struct rd_chunk *c = &r->slots[i];

		if (c->state == CK_FREE)
			return c;
		if (!releasable(c) || (c->index >= lo && c->index <= hi))
			continue;
		if (!best)
			best = c;
		else if (c->index < lo && (best->index > hi || c->index < best->index))
			best = c;
		else if (c->index > hi && best->index > hi && c->index > best->index)
			best = c;
	}
	if (best)
		chunk_release(r->p, best);
	return best;
}

/* Reserves len bytes of the budget. With steal, a ready chunk that nobody is
 * reading (the least recently used, of any reader) may be released for it. */
static int mem_reserve(struct rd_pool *p, size_t len, int steal)
{
	/* Spare buffers go first (one of them may be this chunk's). */
	while (p->nspare &&
	       p->mem_used + len + (uint64_t)(p->nspare - (len == p->chunk)) * p->chunk > p->mem_limit)
		free(p->spare[--p->nspare]);
	while (p->mem_used + len > p->mem_limit) {
		struct rd_chunk *victim = NULL;

		if (!steal)
			return 0;
		for (struct rd_reader *o = p->readers; o; o = o->nextr)
			for (int i = 0; i < o->nslots; i++) {
				struct rd_chunk *c = &o->slots[i];

				if (c->state == CK_READY && c->pins == 0 &&
				    (!victim || c->stamp < victim->stamp))
					victim = c;
			}
		if (!victim)
			return 0;
		chunk_release(p, victim);
	}
	p->mem_used += len;
	if (p->mem_used > p->st.mem_peak)
		p->st.mem_peak = p->mem_used;
	return 1;
}

static void stale(struct rd_reader *r, const char *why)
{
	if (r->stale)
		return;
	r->stale = 1;
	log_err("reader: s3 object %s changed behind lzfs (%s): reads fail with ESTALE", r->key,
	        why);
	for (int i = 0; i < r->nslots; i++)
		if (r->slots[i].state == CK_QUEUED)
			chunk_release(r->p, &r->slots[i]);
}

/* The outcome of one ranged GET of [off, off+len), judged under the lock. */
static int verdict(struct rd_reader *r, int rc, uint64_t off, size_t len, size_t got,
                   const char *want, const char *seen)
{
	char why[2 * S3_ETAG_MAX + 64];

	if (rc == -ESTALE) {
		snprintf(why, sizeof(why), "If-Match %s failed", want ? want : "?");
		stale(r, why);
		return -ESTALE;
	}
	if (rc == -ENOENT) {
		stale(r, "the object no longer exists");
		return -ESTALE;
	}
	if (rc < 0) {
		log_err("reader: s3 object %s: bytes %llu-%llu: %s", r->key,
		        (unsigned long long)off, (unsigned long long)(off + len - 1),
		        strerror(-rc));
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	if (r->stale)
		return -ESTALE;
	if (seen[0]) {
		if (!r->etag[0]) {
			snprintf(r->etag, sizeof(r->etag), "%s", seen);
		} else if (strcasecmp(r->etag, seen) != 0) {
			snprintf(why, sizeof(why), "ETag is %s, expected %s", seen, r->etag);
			stale(r, why);
			return -ESTALE;
		}
	}
	if (got != len) {
		snprintf(why, sizeof(why), "shorter than the expected %llu bytes",
		         (unsigned long long)r->size);
		stale(r, why);
		return -ESTALE;
	}
	return 0;
}

/* Fetches [off, off+len) into buf with the lock dropped; returns the verdict. */
static int fetch_unlocked(struct rd_reader *r, uint64_t off, size_t len, void *buf)
{
	struct rd_pool *p = r->p;
	char want[S3_ETAG_MAX], seen[S3_ETAG_MAX] = "";
	size_t got = 0;
	int rc;

	memcpy(want, r->etag, sizeof(want));
	inflight_inc(p);
	pthread_mutex_unlock(&p->lock);
	rc = s3_get_range_ex(p->s3, r->key, off, len, buf, &got, want[0] ? want : NULL, seen, NULL);
	pthread_mutex_lock(&p->lock);
	p->st.fetches_in_flight--;
	if (rc == 0)
		p->st.bytes_fetched += got;
	return verdict(r, rc, off, len, got, want[0] ? want : NULL, seen);
}

/* Fetches chunk c (QUEUED, off the queue, or just set up with its buffer). */
static void chunk_fetch(struct rd_pool *p, struct rd_chunk *c)
{
	struct rd_reader *r = c->r;
	uint64_t off;
	size_t len;
	int rc;

	chunk_span(r, c->index, &off, &len);
	c->state = CK_FETCHING;
	r->fetching++;
	rc = fetch_unlocked(r, off, len, c->buf);
	r->fetching--;
	if (rc == 0) {
		c->state = CK_READY;
		c->stamp = ++p->clock;
		p->st.chunks_fetched++;
	} else {
		c->state = CK_FAILED;
		c->err = rc;
	}
	pthread_cond_broadcast(&p->changed);
}

static void *worker(void *arg)
{
	struct rd_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct rd_chunk *c;

		while (!p->qhead && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->qhead)
			break;
		c = p->qhead;
		queue_remove(p, c);
		chunk_fetch(p, c);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------ pool */

int rd_pool_new(const struct rd_config *cfg, struct s3_client *s3, struct rd_pool **out)
{
	struct rd_pool *p;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->s3 = s3;
	p->chunk = cfg && cfg->chunk_size ? cfg->chunk_size : 8 * MIB;
	if (p->chunk < 4096)
		p->chunk = 4096;
	if (p->chunk > 1024 * MIB)
		p->chunk = 1024 * MIB;
	p->mem_limit = cfg && cfg->mem_limit ? cfg->mem_limit : 256 * MIB;
	if (p->mem_limit < p->chunk)
		p->mem_limit = p->chunk;
	p->max_spare = (int)(p->mem_limit / p->chunk);
	p->spare = calloc((size_t)p->max_spare, sizeof(*p->spare));
	if (!p->spare) {
		free(p);
		return -ENOMEM;
	}
	p->max_ahead = cfg && cfg->max_ahead ? cfg->max_ahead : 8;
	if (p->max_ahead < 0)
		p->max_ahead = 0;
	if (p->max_ahead > 256)
		p->max_ahead = 256;
	p->nthreads = cfg && cfg->workers > 0 ? cfg->workers : 8;
	if (p->max_ahead == 0)
		p->nthreads = 0; /* nothing to fetch ahead: readers fetch for themselves */
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->changed, NULL);
	p->threads = calloc(p->nthreads ? p->nthreads : 1, sizeof(*p->threads));
	if (!p->threads) {
		rd_pool_free(p);
		return -ENOMEM;
	}
	for (int i = 0; i < p->nthreads; i++) {
		rc = pthread_create(&p->threads[i], NULL, worker, p);
		if (rc) {
			log_err("reader: cannot start worker thread: %s", strerror(rc));
			p->nthreads = i;
			rd_pool_free(p);
			return -rc;
		}
	}
	*out = p;
	return 0;
}

void rd_pool_free(struct rd_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->readers)
		log_err("reader: pool freed with readers still open (%s)", p->readers->key);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	while (p->nspare)
		free(p->spare[--p->nspare]);
	free(p->spare);
	pthread_cond_destroy(&p->changed);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void rd_pool_stats(struct rd_pool *p, struct rd_pool_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	out->mem_used = p->mem_used;
	pthread_mutex_unlock(&p->lock);
}

void rd_pool_reset_peaks(struct rd_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->st.mem_peak = p->mem_used;
	p->st.fetches_peak = p->st.fetches_in_flight;
	pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------ readers */

int rd_open(struct rd_pool *p, const char *key, uint64_t size, const char *etag, int flags,
            struct rd_reader **out)
{
	struct rd_reader *r;

	*out = NULL;
	if (!key || !*key)
		return -EINVAL;
	if (etag && strlen(etag) >= S3_ETAG_MAX) {
		log_err("reader: s3 object %s: ETag too long", key);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->p = p;
	r->key = strdup(key);
	r->nslots = p->max_ahead + 2;
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	if (!r->key || !r->slots) {
		free(r->key);
		free(r->slots);
		free(r);
		return -ENOMEM;
	}
	for (int i = 0; i < r->nslots; i++)
		r->slots[i].r = r;
	r->size = size;
	r->nchunks = (size + p->chunk - 1) / p->chunk;
	if (etag)
		snprintf(r->etag, sizeof(r->etag), "%s", etag);
	r->flags = flags;
	pthread_mutex_lock(&p->lock);
	r->nextr = p->readers;
	if (p->readers)
		p->readers->prev = r;
	p->readers = r;
	pthread_mutex_unlock(&p->lock);
	*out = r;
	return 0;
}

void rd_close(struct rd_reader *r)
{
	struct rd_pool *p;

	if (!r)
		return;
	p = r->p;
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < r->nslots; i++)
		if (r->slots[i].state == CK_QUEUED)
			chunk_release(p, &r->slots[i]);
	while (r->fetching)
		pthread_cond_wait(&p->changed, &p->lock);
	for (int i = 0; i < r->nslots; i++)
		if (r->slots[i].state != CK_FREE)
			chunk_release(p, &r->slots[i]);
	if (r->prev)
		r->prev->nextr = r->nextr;
	else
		p->readers = r->nextr;
	if (r->nextr)
		r->nextr->prev = r->prev;
	pthread_mutex_unlock(&p->lock);
	free(r->slots);
	free(r->key);
	free(r);
}

/* Queues chunks ci+1 .. ci+window that are not there yet, with free memory
 * only: read-ahead never takes memory from anyone, nor while a reader waits
 * for memory. */
static void read_ahead(struct rd_reader *r, uint64_t ci)
{
	struct rd_pool *p = r->p;

	for (int k = 1; k <= r->window && !r->stale && !p->mem_waiters; k++) {
		uint64_t idx = ci + k, off;
		struct rd_chunk *c;
		size_t len;

		if (idx >= r->nchunks)
			break;
		if (find(r, idx))
			continue;
		chunk_span(r, idx, &off, &len);
		if (p->mem_used + len > p->mem_limit)
			break;
		c = take_slot(r, ci ? ci - 1 : 0, ci + r->window);
		if (!c)
			break;
		if (!mem_reserve(p, len, 0))
			break;
		c->buf = buf_get(p, len);
		if (!c->buf) {
			p->mem_used -= len;
			break;
		}
		c->index = idx;
		c->len = len;
		c->state = CK_QUEUED;
		queue_add(p, c);
	}
}

/* A sequential run starts at chunk ci or moves on to it: the window grows
 * (it doubles per chunk entered), chunks more than one behind are released. */
static void enter_chunk(struct rd_reader *r, uint64_t ci)
{
	struct rd_pool *p = r->p;

	if (r->flags & RD_SEQUENTIAL)
		r->window = p->max_ahead;
	else if (r->window == 0)
		r->window = p->max_ahead ? 1 : 0;
	else
		r->window = r->window * 2 > p->max_ahead ? p->max_ahead : r->window * 2;
	r->cur = ci;
	for (int i = 0; i < r->nslots; i++) {
		struct rd_chunk *c = &r->slots[i];

		if (c->state != CK_FREE && c->index + 1 < ci && releasable(c))
			chunk_release(p, c);
	}
}

static int is_sequential(const struct rd_reader *r, uint64_t off)
{
	uint64_t ci, cn;

	/* Reading on, or a new pass from the start. */
	if (off == r->next || off == 0)
		return 1;
	if (!r->seq)
		return 0;
	/* Concurrent kernel reads of one file arrive a little out of order. */
	ci = off / r->p->chunk;
	cn = r->next / r->p->chunk;
	return ci + 1 >= cn && ci <= cn + 1;
}

/* A random read: just the range, into the caller's buffer, unless a ready
 * chunk holds it already. Stops the read-ahead. */
static ssize_t read_random(struct rd_reader *r, char *buf, size_t len, uint64_t off)
{
	struct rd_pool *p = r->p;
	uint64_t ci = off / p->chunk;
	struct rd_chunk *c;
	int rc;

	r->seq = 0;
	r->window = 0;
	for (int i = 0; i < r->nslots; i++)
		if (r->slots[i].state == CK_QUEUED)
			chunk_release(p, &r->slots[i]);
	c = find(r, ci);
	if (c && c->state == CK_READY && off + len <= c->index * p->chunk + c->len) {
		c->pins++;
		c->used = 1;
		c->stamp = ++p->clock;
		pthread_mutex_unlock(&p->lock);
		memcpy(buf, c->buf + (off - c->index * p->chunk), len);
		pthread_mutex_lock(&p->lock);
		if (--c->pins == 0 && p->waiters)
			pthread_cond_broadcast(&p->changed);
	} else {
		p->st.direct_reads++;
		rc = fetch_unlocked(r, off, len, buf);
		if (rc < 0)
			return rc;
	}
	r->next = off + len;
	return (ssize_t)len;
}

/* The chunk ci for a sequential read, fetched by this thread if nobody has
 * it yet; returns it READY or FAILED, or NULL with *rc set. A chunk found
 * FAILED is fetched again unless this call waited for that very fetch: an
 * old read-ahead failure must not fail reads once S3 is back. */
static struct rd_chunk *demand(struct rd_reader *r, uint64_t ci, int *hit, int *rc)
{
	struct rd_pool *p = r->p;
	int waited = 0;

	for (;;) {
		struct rd_chunk *c;
		uint64_t off;
		size_t len;

		if (r->stale) {
			*rc = -ESTALE;
			return NULL;
		}
		c = find(r, ci);
		if (c && c->state == CK_FETCHING) {
			*hit = 1;
			waited = 1;
			pthread_cond_wait(&p->changed, &p->lock);
			continue;
		}
		if (c && c->state == CK_FAILED && !waited && c->pins == 0) {
			chunk_release(p, c);
			continue;
		}
		if (c && c->state == CK_QUEUED) {
			*hit = 1;
			queue_remove(p, c);
			chunk_fetch(p, c);
			return c;
		}
		if (c) {
			*hit = 1;
			return c;
		}
		chunk_span(r, ci, &off, &len);
		c = take_slot(r, ci ? ci - 1 : 0, ci + r->window);
		if (!c)
			c = take_slot(r, ci, ci);
		if (!c) {
			/* every slot has a fetch in flight or a copy going on */
			p->waiters++;
			pthread_cond_wait(&p->changed, &p->lock);
			p->waiters--;
			continue;
		}
		if (!mem_reserve(p, len, 1)) {
			/* all memory is in fetches or copies: they end soon */
			p->mem_waiters++;
			p->waiters++;
			p->st.mem_waits++;
			pthread_cond_wait(&p->changed, &p->lock);
			p->waiters--;
			p->mem_waiters--;
			continue;
		}
		c->buf = buf_get(p, len);
		if (!c->buf) {
			p->mem_used -= len;
			*rc = -ENOMEM;
			return NULL;
		}
		c->index = ci;
		c->len = len;
		chunk_fetch(p, c);
		return c;
	}
}

static ssize_t read_sequential(struct rd_reader *r, char *buf, size_t len, uint64_t off)
{
	struct rd_pool *p = r->p;
	int fresh = !r->seq || off == 0;
	size_t done = 0;
	int rc = 0;

	r->seq = 1;
	if (fresh)
		r->window = 0;
	while (done < len) {
		uint64_t pos = off + done, ci = pos / p->chunk, coff;
		struct rd_chunk *c;
		int hit = 0;
		size_t n;

		/* r->cur only moves forward: kernel reads of one file may arrive
		 * out of order, a read of the chunk before must not restart. */
		if (fresh || ci > r->cur)
			enter_chunk(r, ci);
		fresh = 0;
		read_ahead(r, r->cur);
		c = demand(r, ci, &hit, &rc);
		if (!c)
			break;
		if (hit && !c->used)
			p->st.readahead_hits++;
		if (c->state == CK_FAILED) {
			rc = c->err;
			chunk_release(p, c);
			break;
		}
		coff = pos - c->index * p->chunk;
		n = c->len - coff < len - done ? c->len - coff : len - done;
		c->pins++;
		c->used = 1;
		c->stamp = ++p->clock;
		pthread_mutex_unlock(&p->lock);
		memcpy(buf + done, c->buf + coff, n);
		pthread_mutex_lock(&p->lock);
		if (--c->pins == 0 && p->waiters)
			pthread_cond_broadcast(&p->changed);
		done += n;
	}
	if (rc == 0 && r->stale)
		rc = -ESTALE;
	if (rc < 0)
		return rc;
	r->next = off + len;
	return (ssize_t)len;
}

ssize_t rd_read(struct rd_reader *r, void *buf, size_t len, uint64_t off)
{
	struct rd_pool *p = r->p;
	ssize_t rc;

	if (off >= r->size || len == 0)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	pthread_mutex_lock(&p->lock);
	if (r->stale)
		rc = -ESTALE;
	else if (is_sequential(r, off))
		rc = read_sequential(r, buf, len, off);
	else
		rc = read_random(r, buf, len, off);
	pthread_mutex_unlock(&p->lock);
	return rc;
}
