/* s3xml.h - S3 response bodies parsed with expat, and the one request body
 * the client builds (CompleteMultipartUpload).
 *
 * Every parser takes a whole body. It returns 0 for the expected document,
 * S3X_ERROR when the body is an <Error> document (err filled; S3 answers
 * some failures with status 200), -EPROTO for anything malformed, truncated
 * or unexpected (err->message says what), -ENOMEM. Bodies with a DOCTYPE
 * are refused: S3 never sends one, and entities are an attack surface.
 */
#ifndef LZFS_S3XML_H
#define LZFS_S3XML_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "s3.h"

#define S3X_ERROR 1

struct s3x_error {
	char code[64];
	char message[256];
	char request_id[128];
	char key[256];
};

int s3x_error(const char *xml, size_t len, struct s3x_error *err);

struct s3x_entry {
	char *key;          /* decoded when the page is url-encoded */
	uint64_t size;
	char etag[S3_ETAG_MAX];
	time_t last_modified;
	int is_prefix;
};

/* One ListObjectsV2 page. */
struct s3x_list {
	struct s3x_entry *e;
	int n, cap;
	int truncated;
	char *next_token;   /* NextContinuationToken, NULL if none */
	int url_encoded;    /* EncodingType was url: keys were decoded */
};
int s3x_list(const char *xml, size_t len, struct s3x_list *out, struct s3x_error *err);
void s3x_list_free(struct s3x_list *l);

/* InitiateMultipartUploadResult: *upload_id malloc'd. */
int s3x_initiate(const char *xml, size_t len, char **upload_id, struct s3x_error *err);
/* CompleteMultipartUploadResult: the object's ETag, unquoted. */
int s3x_complete(const char *xml, size_t len, char etag[S3_ETAG_MAX], struct s3x_error *err);
/* CopyObjectResult or CopyPartResult: the ETag, unquoted. */
int s3x_copy(const char *xml, size_t len, char etag[S3_ETAG_MAX], struct s3x_error *err);

/* One ListParts page. */
struct s3x_parts {
	struct s3_part *p;
	int n, cap;
	int truncated;
	int next_marker;    /* NextPartNumberMarker */
};
int s3x_parts(const char *xml, size_t len, struct s3x_parts *out, struct s3x_error *err);
void s3x_parts_free(struct s3x_parts *p);

/* One ListMultipartUploads page. */
struct s3x_upload {
	char *key;
	char *upload_id;
	time_t initiated;       /* 0 if absent */
};
struct s3x_uploads {
	struct s3x_upload *u;
	int n, cap;
	int truncated;
	int url_encoded;        /* EncodingType url: keys and markers to decode */
	char *next_key;         /* NextKeyMarker */
	char *next_id;          /* NextUploadIdMarker */
};
int s3x_uploads(const char *xml, size_t len, struct s3x_uploads *out, struct s3x_error *err);
void s3x_uploads_free(struct s3x_uploads *u);

/* The CompleteMultipartUpload request body; malloc'd, *len set. */
char *s3x_complete_body(const struct s3_part *parts, int nparts, size_t *len);

/* Copies an ETag without its surrounding quotes (and W/ prefix) into out;
 * -EPROTO if it does not fit. */
int s3x_etag_unquote(const char *in, size_t len, char out[S3_ETAG_MAX]);
/* "2009-10-12T17:50:30.000Z" -> time_t, or -1. */
time_t s3x_iso8601(const char *s);
/* In place: %XX -> byte, '+' -> ' ' (S3's encoding-type=url). -EPROTO if
 * malformed. */
int s3x_url_decode(char *s);

#endif
