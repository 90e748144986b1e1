/* s3.h - a small S3 client on libcurl.
 *
 * Synchronous calls, safe to make from many threads at once: each call takes
 * an easy handle from the client's pool, connections are reused through a
 * shared connection cache, and at most cfg.max_connections requests are in
 * flight (callers beyond that wait). Parallelism comes from the caller's
 * threads (the upload workers), not from callbacks.
 *
 * Every function returns 0 or a negative errno. On failure it has already
 * logged one line with the operation, key, HTTP status, S3 error code,
 * message and request id; if `st` is not NULL the same details are copied
 * there for the caller. Errno mapping:
 *   404 NoSuchKey/NoSuchUpload -> -ENOENT, NoSuchBucket -> -ENXIO,
 *   403 -> -EACCES, 400 EntityTooSmall/InvalidPart -> -EINVAL,
 *   BadDigest/checksum mismatch -> -EBADMSG, 5xx after retries -> -EIO,
 *   connection refused/unreachable -> -ECONNREFUSED / -EHOSTUNREACH,
 *   timeouts -> -ETIMEDOUT, malformed response -> -EPROTO, OOM -> -ENOMEM.
 *
 * Retries: idempotent requests (everything but CompleteMultipartUpload and
 * CreateMultipartUpload, which are handled specially) are retried on 5xx,
 * 429/SlowDown, timeouts and connection errors with exponential backoff and
 * full jitter, until cfg.max_retries or cfg.retry_budget_ms is exhausted.
 * CompleteMultipartUpload, when its answer is lost, is resolved by a HEAD of
 * the key compared with the expected multipart ETag, never by blindly
 * completing again.
 *
 * Keys are raw byte strings (no leading '/'); the client percent-encodes
 * them. Secrets are never logged.
 */
#ifndef LZFS_S3_H
#define LZFS_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define S3_MIN_PART_SIZE (5ull * 1024 * 1024)
#define S3_MAX_PART_SIZE (5ull * 1024 * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_MAX_OBJECT_SIZE (5ull * 1024 * 1024 * 1024 * 1024)
#define S3_ETAG_MAX 80 /* quoted md5 hex, or md5-N for multipart, plus NUL */

struct s3_creds {
	char *access_key;
	char *secret_key;
	char *session_token; /* may be NULL */
};

/* Loads credentials: from `file` if not NULL (AWS credentials INI format,
 * [profile] with aws_access_key_id / aws_secret_access_key /
 * aws_session_token; profile NULL means "default"), else from the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
 * A file readable by group or others is refused with -EPERM and a message
 * saying which mode it has and that it must be 0600. */
int s3_creds_load(const char *file, const char *profile, struct s3_creds *out);
void s3_creds_clear(struct s3_creds *c); /* wipes and frees */

struct s3_config {
	const char *endpoint;      /* "https://s3.amazonaws.com", "http://127.0.0.1:9000" */
	const char *region;        /* "us-east-1" if NULL */
	const char *bucket;
	int path_style;            /* 1: endpoint/bucket/key; 0: bucket.host/key */
	const struct s3_creds *creds;
	int insecure_tls;          /* 1 disables certificate verification */
	const char *ca_file;       /* optional CA bundle */
	int max_connections;       /* requests in flight; default 16 */
	int max_retries;           /* default 6 */
	int retry_base_ms;         /* first backoff; default 100 */
	int retry_max_ms;          /* cap per backoff; default 5000 */
	int retry_budget_ms;       /* total time for one call incl. retries; default 60000 */
	int connect_timeout_ms;    /* default 5000 */
	int request_timeout_ms;    /* whole request; default 0 = none (low-speed rules) */
	int low_speed_bytes;       /* abort when slower than this ... default 1024 */
	int low_speed_secs;        /* ... for this long; default 30 */
};

struct s3_client;

/* Copies what it needs from cfg (strings included). */
int s3_client_new(const struct s3_config *cfg, struct s3_client **out);
void s3_client_free(struct s3_client *c);

/* Details of the last failure of a call, for callers that report them. */
struct s3_status {
	long http_status;          /* 0 if no HTTP answer */
	char code[64];             /* S3 error code, e.g. "NoSuchKey", or curl's */
	char message[256];
	char request_id[128];
	int attempts;              /* requests sent, including retries */
};

/* A request body: memory (buf != NULL) or a range of a file (fd, off), read
 * with pread while sending (no copy of the whole body in memory). The
 * payload is signed: x-amz-content-sha256 carries the body's SHA-256, which
 * the client computes (one extra read pass for fd bodies) unless the caller
 * passes it. MD5 is optional and costly (slower than SHA-256 with SHA-NI):
 * only when the caller passes it is Content-MD5 sent and the returned ETag
 * compared with it. */
struct s3_body {
	const void *buf;
	int fd;
	off_t off;
	uint64_t len;
	const unsigned char *sha256; /* optional, 32 bytes, precomputed */
	const unsigned char *md5;    /* optional, 16 bytes, precomputed */
};

struct s3_meta {
	const char *name;  /* without the x-amz-meta- prefix */
	const char *value;
};

struct s3_put_opts {
	const char *content_type;         /* default application/octet-stream */
	const struct s3_meta *meta;
	int nmeta;
	int checksum_sha256;              /* send x-amz-checksum-sha256 (PUT, parts) */
};

struct s3_object_info {
	uint64_t size;
	char etag[S3_ETAG_MAX];           /* without quotes */
	time_t last_modified;
	char content_type[128];
	char checksum_sha256[64];         /* base64, if the server stored one */
	/* user metadata: "name=value\n" lines, malloc'd, may be NULL */
	char *meta;
};
void s3_object_info_clear(struct s3_object_info *i);

/* HEAD bucket: 0 if it exists and is reachable with these credentials. */
int s3_check_bucket(struct s3_client *c, struct s3_status *st);

int s3_put_object(struct s3_client *c, const char *key, const struct s3_body *body,
		  const struct s3_put_opts *opts, char etag[S3_ETAG_MAX],
		  struct s3_status *st);

/* Whole object into fd (written from offset 0 of fd, fd not truncated). */
int s3_get_object_fd(struct s3_client *c, const char *key, int fd,
		     struct s3_object_info *info, struct s3_status *st);

/* Bytes [off, off+len) into buf. *got is set to the bytes received (less than
 * len at the end of the object). */
int s3_get_range(struct s3_client *c, const char *key, uint64_t off, size_t len,
		 void *buf, size_t *got, struct s3_status *st);

/* s3_get_range for one known version of the object. if_match (ETag without
 * quotes, may be NULL) is sent as If-Match: a different object answers 412,
 * returned as -ESTALE without retries. etag (may be NULL) receives the
 * answer's ETag without quotes ("" if the server sent none), so callers can
 * also catch servers that ignore If-Match. */
int s3_get_range_ex(struct s3_client *c, const char *key, uint64_t off, size_t len,
		    void *buf, size_t *got, const char *if_match, char etag[S3_ETAG_MAX],
		    struct s3_status *st);

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		   struct s3_status *st);

/* Succeeds for a missing key, as S3 does. */
int s3_delete_object(struct s3_client *c, const char *key, struct s3_status *st);

/* Server-side copy within the bucket (objects up to 5 GiB; larger ones are
 * copied with a multipart UploadPartCopy sequence internally). */
int s3_copy_object(struct s3_client *c, const char *src_key, const char *dst_key,
		   char etag[S3_ETAG_MAX], struct s3_status *st);

struct s3_list_entry {
	const char *key;
	uint64_t size;
	const char *etag;     /* without quotes */
	time_t last_modified;
	int is_prefix;        /* a CommonPrefixes entry (with delimiter) */
};

/* ListObjectsV2 with pagination; cb is called per entry and may return
 * non-zero to stop (that value is returned). delimiter may be NULL. */
int s3_list(struct s3_client *c, const char *prefix, const char *delimiter,
	    int (*cb)(const struct s3_list_entry *e, void *arg), void *arg,
	    struct s3_status *st);

/* Multipart upload. upload_id is malloc'd by create. */
int s3_mpu_create(struct s3_client *c, const char *key, const struct s3_put_opts *opts,
		  char **upload_id, struct s3_status *st);

/* part_number is 1..10000. With body->md5 the returned etag is checked
 * against it (mismatch -> -EBADMSG). */
int s3_mpu_upload_part(struct s3_client *c, const char *key, const char *upload_id,
		       int part_number, const struct s3_body *body,
		       char etag[S3_ETAG_MAX], struct s3_status *st);

/* Part of an existing object as a part of this upload (UploadPartCopy).
 * Range is [off, off+len). */
int s3_mpu_upload_part_copy(struct s3_client *c, const char *key, const char *upload_id,
			    int part_number, const char *src_key, uint64_t off,
			    uint64_t len, char etag[S3_ETAG_MAX], struct s3_status *st);

struct s3_part {
	int number;
	char etag[S3_ETAG_MAX];           /* without quotes */
	unsigned char md5[16];            /* for the expected multipart ETag */
	uint64_t size;
};

/* Completes. When every part has its md5 set (non-zero), verifies the
 * result's ETag equals md5(concat(md5s))-N (mismatch -> -EBADMSG). A lost
 * answer is resolved by HEAD, not by completing twice. etag may be NULL. */
int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id,
		    const struct s3_part *parts, int nparts, char etag[S3_ETAG_MAX],
		    struct s3_status *st);

/* Succeeds for an upload that no longer exists. */
int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id,
		 struct s3_status *st);

/* ListParts: cb per uploaded part (number, etag, size; md5 unset). */
int s3_mpu_list_parts(struct s3_client *c, const char *key, const char *upload_id,
		      int (*cb)(const struct s3_part *p, void *arg), void *arg,
		      struct s3_status *st);

/* ListMultipartUploads under prefix, with pagination: cb per upload in
 * progress; a non-zero return stops and is returned. */
struct s3_upload_entry {
	const char *key;
	const char *upload_id;
	time_t initiated;     /* 0 if the server did not say */
};
int s3_list_uploads(struct s3_client *c, const char *prefix,
		    int (*cb)(const struct s3_upload_entry *u, void *arg), void *arg,
		    struct s3_status *st);

/* Expected multipart ETag "hex-N" from the parts' MD5s (out >= S3_ETAG_MAX). */
void s3_multipart_etag(const struct s3_part *parts, int nparts, char *out);

/* Percent-encodes a key for a URL path: unreserved bytes kept, '/' kept,
 * everything else %XX (uppercase). Returns malloc'd string or NULL. */
char *s3_encode_key(const char *key);

/* Counters for status reporting (monotonic since start). */
struct s3_stats {
	uint64_t requests, retries, failures, bytes_sent, bytes_received;
	int in_flight;
};
void s3_get_stats(struct s3_client *c, struct s3_stats *out);

#endif
