/* s3req.h - the S3 client's request engine (internal to store/s3*.c).
 *
 * A request is described by a struct s3_req; s3req_perform() signs it,
 * sends it on a pooled curl handle, classifies the answer and retries per
 * the policy in s3retry.h. The operations in s3.c only describe requests
 * and interpret results.
 */
#ifndef LZFS_S3REQ_H
#define LZFS_S3REQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <curl/curl.h>

#include "buf.h"
#include "s3.h"
#include "s3xml.h"
#include "sigv4.h"

struct s3_client {
	char *host;              /* Host header: authority, with bucket. for virtual hosts */
	char *base;              /* scheme://host */
	char *prefix;            /* path before "/key": endpoint path [+ "/bucket"] */
	char *bucket;
	char *region;
	char *access_key;
	char *secret_key;
	char *session_token;
	char *ca_file;
	int insecure_tls;
	int max_conn;
	int max_retries;
	int retry_base_ms;
	int retry_max_ms;
	int retry_budget_ms;
	int connect_timeout_ms;
	int request_timeout_ms;
	int low_speed_bytes;
	int low_speed_secs;
	/* tuning (s3tune.h) */
	int list_max_keys;
	uint64_t copy_single_max;
	uint64_t copy_part_size;

	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	/* handle pool; its size bounds the requests in flight */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	CURL **idle;
	int nidle;
	int nhandles;

	atomic_uint_fast64_t requests, retries, failures, bytes_sent, bytes_received;
	atomic_uint_fast64_t connects, rng;
	atomic_int in_flight;
};

struct s3_resp;

enum s3_sink {
	SINK_NONE,   /* body discarded */
	SINK_MEM,    /* into resp.body, up to mem_max */
	SINK_BUF,    /* into out_buf, up to out_len */
	SINK_FD,     /* pwrite into out_fd from offset 0 */
};

#define S3REQ_MAX_HEADERS 24

struct s3_req {
	const char *op;                 /* "PutObject", for logs */
	const char *method;             /* GET HEAD PUT POST DELETE */
	const char *key;                /* NULL: the bucket itself */
	struct sigv4_param query[6];
	int nquery;
	struct sigv4_header hdr[S3REQ_MAX_HEADERS]; /* extra headers, signed; lowercase names */
	int nhdr;
	/* body: memory (body_mem) or fd range; has_body 0 for none */
	int has_body;
	const char *body_mem;
	int body_fd;
	off_t body_off;
	uint64_t body_len;
	const unsigned char *body_sha256; /* precomputed, or NULL */
	/* response */
	enum s3_sink sink;
	size_t mem_max;
	char *out_buf;
	size_t out_len;
	int out_fd;
	int want_meta;                  /* collect x-amz-meta-* */
	/* A 2xx body parser (e.g. to catch a 200 carrying <Error>): returns 0,
	 * S3X_ERROR (resp.err filled) or a negative errno. */
	int (*parse)(struct s3_req *r, struct s3_resp *p);
	void *parse_arg;
	int accept_404;                 /* 404 is success (deletes, aborts) */
	int accept_416;                 /* 416 is success (range past the end) */
	int quiet_404;                  /* a final 404 is logged at debug only */
	int no_retry;                   /* one attempt (the caller retries) */
};

struct s3_resp {
	long status;                    /* 0 if no HTTP answer */
	int curl_rc;
	int os_errno;
	int local_rc;                   /* our own failure: read/write error, OOM, bad body */
	char curl_msg[CURL_ERROR_SIZE];
	struct s3x_error err;           /* S3 error code/message/request id */
	char etag[S3_ETAG_MAX];
	int have_etag;
	char request_id[128];
	char content_type[128];
	char checksum_sha256[64];
	uint64_t content_length;
	int have_length;
	time_t last_modified;
	struct buf meta;                /* "name=value\n" */
	struct buf body;                /* SINK_MEM data, or an error body */
	size_t got;                     /* bytes into SINK_BUF / SINK_FD */
	int decided;                    /* body_is_error known */
	int body_is_error;
	int sink_full;                  /* SINK_BUF filled, more was coming */
	int attempts;
};

/* A handle from the client's pool, waiting while max_connections are in
 * use (s3client.c); NULL if none can be made. */
CURL *s3req_handle_get(struct s3_client *c);
void s3req_handle_put(struct s3_client *c, CURL *h);

void s3req_init(struct s3_req *r, const char *op, const char *method, const char *key);
/* Adds a signed header; the strings must outlive the request. -EINVAL when
 * full or when the value holds control characters. */
int s3req_header(struct s3_req *r, const char *name, const char *value);
void s3req_query(struct s3_req *r, const char *name, const char *value);
void s3req_body_mem(struct s3_req *r, const void *buf, uint64_t len);

/* Sends with retries; returns 0 or a negative errno, logged and copied into
 * st (may be NULL). p must be zeroed before the first use and released with
 * s3req_resp_free(). */
int s3req_perform(struct s3_client *c, struct s3_req *r, struct s3_resp *p, struct s3_status *st);
/* One attempt, nothing logged; p describes the outcome. */
int s3req_once(struct s3_client *c, struct s3_req *r, struct s3_resp *p, const char *payload_sha256);
/* 1 if the outcome is worth another attempt. */
int s3req_retryable(const struct s3_resp *p);
/* The SHA-256 hex of r's body (computed; one read pass for fd bodies). */
int s3req_payload_hash(const struct s3_req *r, char hex[65]);
/* After failed attempt number retry + 1 (outcome p): if the retry limit and
 * the budget that started at start_ms allow, logs the retry at debug, sleeps
 * the backoff and returns 0; else returns -1 and sets *why. */
int s3req_backoff(struct s3_client *c, const struct s3_req *r, const struct s3_resp *p,
		  int retry, uint64_t start_ms, const char **why);
uint64_t s3req_now_ms(void);
/* The failure line (error level) and st; returns rc. */
int s3req_fail(struct s3_client *c, const struct s3_req *r, const struct s3_resp *p, int rc,
	       const char *why, struct s3_status *st);
void s3req_resp_free(struct s3_resp *p);

#endif
