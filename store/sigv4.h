/* sigv4.h - AWS Signature Version 4 for S3 (Authorization header form).
 *
 * The caller builds the request it will send (method, encoded path, query,
 * headers) and asks for its Authorization header value; the same query
 * string, from sigv4_query(), goes on the wire, so what is signed is what is
 * sent. Secrets stay in this module's stack frames, wiped after use.
 */
#ifndef LZFS_SIGV4_H
#define LZFS_SIGV4_H

#include <stddef.h>
#include <time.h>

/* A query parameter, raw (not encoded). value NULL or "" gives "name=". */
struct sigv4_param {
	const char *name;
	const char *value;
};

/* A header to sign; name in lowercase. The value is trimmed and its inner
 * runs of spaces collapsed for signing, as SigV4 requires. */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *path;                  /* canonical URI, already encoded */
	const struct sigv4_param *query;
	int nquery;
	const struct sigv4_header *headers; /* host, x-amz-date, x-amz-content-sha256, ... */
	int nheaders;
	const char *payload_sha256;        /* lowercase hex */
};

struct sigv4_signer {
	const char *access_key;
	const char *secret_key;
	const char *region;
	const char *service;               /* "s3" */
};

/* URI-encodes len bytes of s: A-Za-z0-9-._~ kept, '/' kept if keep_slash,
 * all other bytes %XX with uppercase hex. Returns malloc'd or NULL. */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* The canonical query string (encoded, sorted by name then value, '&'
 * joined; "" when nquery is 0). Also the query to send. malloc'd or NULL. */
char *sigv4_query(const struct sigv4_param *q, int n);

/* "YYYYMMDDTHHMMSSZ" for t (UTC). */
void sigv4_amz_date(time_t t, char out[17]);

/* The intermediate strings, for tests and debugging (malloc'd). */
int sigv4_canonical_request(const struct sigv4_request *r, char **out);
int sigv4_string_to_sign(const struct sigv4_signer *s, const char *amz_date,
			 const char *canonical_request, char **out);

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=...,Signature=..."), malloc'd. amz_date must equal the
 * x-amz-date header among r->headers. 0, -ENOMEM, -EINVAL or -EIO. */
int sigv4_authorization(const struct sigv4_signer *s, const struct sigv4_request *r,
			const char *amz_date, char **out);

#endif
