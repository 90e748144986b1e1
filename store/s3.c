/* s3.c - the S3 operations of s3.h, described as requests for the engine in
 * s3req.c (signing, pooling, retries) and interpreted here. */
#include "s3.h"
#include "buf.h"
#include "hash.h"
#include "log.h"
#include "s3req.h"
#include "s3retry.h"
#include "s3tune.h"
#include "s3xml.h"
#include "sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S3_MAX_KEY 1024
#define LIST_BODY_MAX (16 * 1024 * 1024)

char *s3_encode_key(const char *key)
{
	return sigv4_uri_encode(key, strlen(key), 1);
}

void s3_tune_list_page(struct s3_client *c, int max_keys)
{
	c->list_max_keys = max_keys > 0 ? max_keys : 0;
}

void s3_tune_copy(struct s3_client *c, uint64_t single_max, uint64_t part_size)
{
	c->copy_single_max = single_max ? single_max : S3_MAX_PART_SIZE;
	c->copy_part_size = part_size >= S3_MIN_PART_SIZE ? part_size : S3_MIN_PART_SIZE;
}

void s3_object_info_clear(struct s3_object_info *i)
{
	if (!i)
		return;
	free(i->meta);
	i->meta = NULL;
}

/* A failure found before any request: logged and reported like the others. */
static int fail_early(const char *op, const char *key, int rc, struct s3_status *st,
		      const char *msg)
{
	log_err("s3: %s \"%s\": %s", op, key ? key : "", msg);
	if (st) {
		memset(st, 0, sizeof *st);
		snprintf(st->message, sizeof st->message, "%s", msg);
	}
	return rc;
}

static int check_key(const char *op, const char *key, struct s3_status *st)
{
	if (!key || !*key)
		return fail_early(op, "", -EINVAL, st, "empty key");
	if (strlen(key) > S3_MAX_KEY)
		return fail_early(op, key, -ENAMETOOLONG, st, "key longer than 1024 bytes");
	return 0;
}

static int check_body(const char *op, const char *key, const struct s3_body *b,
		      uint64_t max, struct s3_status *st)
{
	if (!b || (!b->buf && b->fd < 0))
		return fail_early(op, key, -EINVAL, st, "no body");
	if (b->len > max)
		return fail_early(op, key, -EFBIG, st, "body larger than S3 allows for this request");
	return 0;
}

static void set_body(struct s3_req *r, const struct s3_body *b, const unsigned char *sha)
{
	r->has_body = 1;
	r->body_mem = b->buf;
	r->body_fd = b->buf ? -1 : b->fd;
	r->body_off = b->off;
	r->body_len = b->len;
	r->body_sha256 = sha;
}

/* Strings that headers point to, freed after the request. */
struct hdr_store {
	char md5_b64[32];
	char md5_hex[33];
	char sha_b64[48];
	char range[64];
	char *copy_source;
	char *meta[S3REQ_MAX_HEADERS];
	int nmeta;
};

static void store_free(struct hdr_store *s)
{
	free(s->copy_source);
	for (int i = 0; i < s->nmeta; i++)
		free(s->meta[i]);
}

static int valid_meta_name(const char *n)
{
	if (!n || !*n)
		return 0;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '-' && *n != '_')
			return 0;
	return 1;
}

/* Content-Type and x-amz-meta-* of a PUT or CreateMultipartUpload. */
static int add_object_headers(struct s3_req *r, const struct s3_put_opts *opts,
			      struct hdr_store *s)
{
	const char *ct = opts && opts->content_type ? opts->content_type : "application/octet-stream";
	int rc = s3req_header(r, "content-type", ct);
	for (int i = 0; !rc && opts && i < opts->nmeta; i++) {
		if (!valid_meta_name(opts->meta[i].name) || !opts->meta[i].value ||
		    s->nmeta >= S3REQ_MAX_HEADERS)
			return -EINVAL;
		struct buf b = BUF_INIT;
		buf_adds(&b, "x-amz-meta-");
		for (const char *p = opts->meta[i].name; *p; p++)
			buf_addc(&b, (char)tolower((unsigned char)*p));
		char *name = buf_detach(&b);
		if (!name)
			return -ENOMEM;
		s->meta[s->nmeta++] = name;
		rc = s3req_header(r, name, opts->meta[i].value);
	}
	return rc;
}

static int add_md5(struct s3_req *r, const struct s3_body *b, struct hdr_store *s)
{
	if (!b->md5)
		return 0;
	hash_base64(b->md5, HASH_MD5_LEN, s->md5_b64);
	hash_hex(b->md5, HASH_MD5_LEN, s->md5_hex);
	return s3req_header(r, "content-md5", s->md5_b64);
}

/* The ETag S3 returned for a body, compared with its MD5 when known. */
static int take_etag(struct s3_client *c, const struct s3_req *r, const struct s3_resp *p,
		     const struct hdr_store *s, const struct s3_body *b, char etag[S3_ETAG_MAX],
		     struct s3_status *st)
{
	if (!p->have_etag)
		return fail_early(r->op, r->key, -EPROTO, st, "answer without an ETag");
	if (b->md5 && strcasecmp(p->etag, s->md5_hex) != 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "ETag %s is not the body's MD5 %s", p->etag, s->md5_hex);
		return fail_early(r->op, r->key, -EBADMSG, st, msg);
	}
	if (etag)
		snprintf(etag, S3_ETAG_MAX, "%s", p->etag);
	return 0;
}

int s3_check_bucket(struct s3_client *c, struct s3_status *st)
{
	struct s3_req r;
	struct s3_resp p = {0};
	s3req_init(&r, "HeadBucket", "HEAD", NULL);
	int rc = s3req_perform(c, &r, &p, st);
	s3req_resp_free(&p);
	/* HEAD has no body to say NoSuchBucket: a 404 here is the bucket. */
	return rc == -ENOENT ? -ENXIO : rc;
}

int s3_put_object(struct s3_client *c, const char *key, const struct s3_body *body,
		  const struct s3_put_opts *opts, char etag[S3_ETAG_MAX], struct s3_status *st)
{
	int rc = check_key("PutObject", key, st);
	if (!rc)
		rc = check_body("PutObject", key, body, S3_MAX_PART_SIZE, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	struct hdr_store s = {0};
	unsigned char sha[HASH_SHA256_LEN];
	const unsigned char *shap = body->sha256;
	s3req_init(&r, "PutObject", "PUT", key);
	if (!shap && opts && opts->checksum_sha256) {
		/* Hash once here: the payload hash and the checksum are the same. */
		rc = body->buf ? hash_sha256(body->buf, body->len, sha)
			       : hash_fd(HASH_SHA256, body->fd, body->off, body->len, sha);
		if (rc)
			return fail_early(r.op, key, rc, st, "cannot hash the body");
		shap = sha;
	}
	set_body(&r, body, shap);
	rc = add_object_headers(&r, opts, &s);
	if (!rc)
		rc = add_md5(&r, body, &s);
	if (!rc && opts && opts->checksum_sha256) {
		hash_base64(shap, HASH_SHA256_LEN, s.sha_b64);
		rc = s3req_header(&r, "x-amz-checksum-sha256", s.sha_b64);
	}
	if (rc)
		rc = fail_early(r.op, key, rc, st, "bad content type or metadata");
	else
		rc = s3req_perform(c, &r, &p, st);
	if (!rc)
		rc = take_etag(c, &r, &p, &s, body, etag, st);
	store_free(&s);
	s3req_resp_free(&p);
	return rc;
}

static int fill_info(const struct s3_resp *p, struct s3_object_info *info)
{
	if (!info)
		return 0;
	memset(info, 0, sizeof *info);
	info->size = p->have_length ? p->content_length : p->got;
	snprintf(info->etag, sizeof info->etag, "%s", p->etag);
	info->last_modified = p->last_modified;
	snprintf(info->content_type, sizeof info->content_type, "%s", p->content_type);
	snprintf(info->checksum_sha256, sizeof info->checksum_sha256, "%s", p->checksum_sha256);
	if (p->meta.len > 0) {
		info->meta = strdup(buf_str(&p->meta));
		if (!info->meta)
			return -ENOMEM;
	}
	return 0;
}

int s3_get_object_fd(struct s3_client *c, const char *key, int fd, struct s3_object_info *info,
		     struct s3_status *st)
{
	int rc = check_key("GetObject", key, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	s3req_init(&r, "GetObject", "GET", key);
	r.sink = SINK_FD;
	r.out_fd = fd;
	r.want_meta = info != NULL;
	rc = s3req_perform(c, &r, &p, st);
	if (!rc && p.have_length && p.got != p.content_length)
		rc = fail_early(r.op, key, -EPROTO, st, "body shorter than its Content-Length");
	if (!rc)
		rc = fill_info(&p, info);
	s3req_resp_free(&p);
	return rc;
}

int s3_get_range(struct s3_client *c, const char *key, uint64_t off, size_t len, void *buf,
		 size_t *got, struct s3_status *st)
{
	return s3_get_range_ex(c, key, off, len, buf, got, NULL, NULL, st);
}

int s3_get_range_ex(struct s3_client *c, const char *key, uint64_t off, size_t len, void *buf,
		    size_t *got, const char *if_match, char etag[S3_ETAG_MAX],
		    struct s3_status *st)
{
	*got = 0;
	if (etag)
		etag[0] = '\0';
	int rc = check_key("GetObject", key, st);
	if (rc || len == 0)
		return rc;
	if (off > UINT64_MAX - len)
		return fail_early("GetObject", key, -EINVAL, st, "range beyond 2^64");
	struct s3_req r;
	struct s3_resp p = {0};
	char range[64], quoted[S3_ETAG_MAX + 2];
	snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	s3req_init(&r, "GetObject", "GET", key);
	s3req_header(&r, "range", range);
	if (if_match && *if_match) {
		snprintf(quoted, sizeof quoted, "\"%s\"", if_match);
		rc = s3req_header(&r, "if-match", quoted);
		if (rc)
			return fail_early(r.op, key, rc, st, "bad If-Match ETag");
	}
	r.sink = SINK_BUF;
	r.out_buf = buf;
	r.out_len = len;
	r.accept_416 = 1; /* reading at or past the end: zero bytes, like pread */
	rc = s3req_perform(c, &r, &p, st);
	if (rc && p.status == 412)
		rc = -ESTALE; /* another version of the object: not an I/O error */
	if (!rc) {
		if (p.status == 416) {
			*got = 0;
		} else if (p.status == 200 && off != 0) {
			rc = fail_early(r.op, key, -EPROTO, st, "server ignored the Range header");
		} else {
			*got = p.got;
		}
		if (etag && p.have_etag)
			snprintf(etag, S3_ETAG_MAX, "%s", p.etag);
	}
	s3req_resp_free(&p);
	return rc;
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		   struct s3_status *st)
{
	int rc = check_key("HeadObject", key, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	s3req_init(&r, "HeadObject", "HEAD", key);
	/* S3 returns a stored x-amz-checksum-sha256 only when asked. */
	s3req_header(&r, "x-amz-checksum-mode", "ENABLED");
	r.want_meta = info != NULL;
	r.quiet_404 = 1; /* "is it there?" is a question, not a failure */
	rc = s3req_perform(c, &r, &p, st);
	if (!rc)
		rc = fill_info(&p, info);
	s3req_resp_free(&p);
	return rc;
}

int s3_delete_object(struct s3_client *c, const char *key, struct s3_status *st)
{
	int rc = check_key("DeleteObject", key, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	s3req_init(&r, "DeleteObject", "DELETE", key);
	r.accept_404 = 1;
	rc = s3req_perform(c, &r, &p, st);
	s3req_resp_free(&p);
	return rc;
}

static int parse_copy(struct s3_req *r, struct s3_resp *p)
{
	return s3x_copy(buf_str(&p->body), p->body.len, r->parse_arg, &p->err);
}

static char *copy_source(struct s3_client *c, const char *src_key)
{
	char *enc = s3_encode_key(src_key);
	if (!enc)
		return NULL;
	struct buf b = BUF_INIT;
	buf_addf(&b, "/%s/%s", c->bucket, enc);
	free(enc);
	return buf_detach(&b);
}

/* Sends a prepared CopyObject or UploadPartCopy request: the source (and
 * its byte range, if any) in headers, the new ETag from the XML answer. */
static int perform_copy(struct s3_client *c, struct s3_req *r, const char *src_key,
			const char *range, char etag[S3_ETAG_MAX], struct s3_status *st)
{
	struct s3_resp p = {0};
	struct hdr_store s = {0};
	char tag[S3_ETAG_MAX] = "";
	s.copy_source = copy_source(c, src_key);
	if (!s.copy_source)
		return -ENOMEM;
	s3req_header(r, "x-amz-copy-source", s.copy_source);
	if (range) {
		snprintf(s.range, sizeof s.range, "%s", range);
		s3req_header(r, "x-amz-copy-source-range", s.range);
	}
	r->sink = SINK_MEM;
	r->parse = parse_copy;
	r->parse_arg = tag;
	int rc = s3req_perform(c, r, &p, st);
	if (!rc && etag)
		snprintf(etag, S3_ETAG_MAX, "%s", tag);
	store_free(&s);
	s3req_resp_free(&p);
	return rc;
}

int s3_mpu_upload_part_copy(struct s3_client *c, const char *key, const char *upload_id,
			    int part_number, const char *src_key, uint64_t off, uint64_t len,
			    char etag[S3_ETAG_MAX], struct s3_status *st)
{
	int rc = check_key("UploadPartCopy", key, st);
	if (!rc)
		rc = check_key("UploadPartCopy", src_key, st);
	if (rc)
		return rc;
	if (!upload_id || part_number < 1 || part_number > S3_MAX_PARTS || len == 0 ||
	    len > S3_MAX_PART_SIZE)
		return fail_early("UploadPartCopy", key, -EINVAL, st, "bad upload id, part number or range");
	struct s3_req r;
	char num[16], range[64];
	snprintf(num, sizeof num, "%d", part_number);
	snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	s3req_init(&r, "UploadPartCopy", "PUT", key);
	s3req_query(&r, "partNumber", num);
	s3req_query(&r, "uploadId", upload_id);
	return perform_copy(c, &r, src_key, range, etag, st);
}

static int copy_multipart(struct s3_client *c, const char *src_key, const char *dst_key,
			  const struct s3_object_info *src, char etag[S3_ETAG_MAX],
			  struct s3_status *st)
{
	uint64_t part = c->copy_part_size;
	/* S3 allows 10000 parts: grow the part for huge objects. */
	while ((src->size + part - 1) / part > S3_MAX_PARTS)
		part *= 2;
	int nparts = (int)((src->size + part - 1) / part);
	struct s3_part *parts = calloc((size_t)nparts, sizeof *parts);
	if (!parts)
		return -ENOMEM;
	/* Keep the source's type and metadata, as CopyObject does. */
	struct s3_meta meta[S3REQ_MAX_HEADERS - 2];
	int nmeta = 0;
	char *lines = src->meta ? strdup(src->meta) : NULL;
	for (char *save = NULL, *l = lines ? strtok_r(lines, "\n", &save) : NULL;
	     l && nmeta < (int)(sizeof meta / sizeof meta[0]); l = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		meta[nmeta++] = (struct s3_meta){l, eq + 1};
	}
	struct s3_put_opts opts = {.content_type = src->content_type[0] ? src->content_type : NULL,
				   .meta = meta, .nmeta = nmeta};
	char *upload_id = NULL;
	int rc = src->meta && !lines ? -ENOMEM : s3_mpu_create(c, dst_key, &opts, &upload_id, st);
	free(lines);
	for (int i = 0; !rc && i < nparts; i++) {
		uint64_t off = (uint64_t)i * part;
		uint64_t len = src->size - off < part ? src->size - off : part;
		parts[i].number = i + 1;
		parts[i].size = len;
		rc = s3_mpu_upload_part_copy(c, dst_key, upload_id, i + 1, src_key, off, len,
					     parts[i].etag, st);
	}
	if (!rc)
		rc = s3_mpu_complete(c, dst_key, upload_id, parts, nparts, etag, st);
	if (rc && upload_id) {
		struct s3_status ignored;
		s3_mpu_abort(c, dst_key, upload_id, &ignored);
	}
	free(upload_id);
	free(parts);
	return rc;
}

int s3_copy_object(struct s3_client *c, const char *src_key, const char *dst_key,
		   char etag[S3_ETAG_MAX], struct s3_status *st)
{
	int rc = check_key("CopyObject", src_key, st);
	if (!rc)
		rc = check_key("CopyObject", dst_key, st);
	if (rc)
		return rc;
	struct s3_object_info src;
	rc = s3_head_object(c, src_key, &src, st);
	if (rc) {
		if (rc == -ENOENT)
			log_err("s3: CopyObject \"%s\": source \"%s\" does not exist", dst_key, src_key);
		return rc;
	}
	if (src.size > c->copy_single_max) {
		rc = copy_multipart(c, src_key, dst_key, &src, etag, st);
		s3_object_info_clear(&src);
		return rc;
	}
	s3_object_info_clear(&src);
	struct s3_req r;
	s3req_init(&r, "CopyObject", "PUT", dst_key);
	return perform_copy(c, &r, src_key, NULL, etag, st);
}

static int parse_list(struct s3_req *r, struct s3_resp *p)
{
	return s3x_list(buf_str(&p->body), p->body.len, r->parse_arg, &p->err);
}

int s3_list(struct s3_client *c, const char *prefix, const char *delimiter,
	    int (*cb)(const struct s3_list_entry *e, void *arg), void *arg, struct s3_status *st)
{
	char *token = NULL;
	char maxkeys[16];
	int rc = 0;
	snprintf(maxkeys, sizeof maxkeys, "%d", c->list_max_keys);
	do {
		struct s3_req r;
		struct s3_resp p = {0};
		struct s3x_list page = {0};
		s3req_init(&r, "ListObjectsV2", "GET", NULL);
		s3req_query(&r, "list-type", "2");
		/* Keys are raw bytes; XML 1.0 cannot carry every byte (and a CR
		 * would come back as LF): ask for url-encoded keys. */
		s3req_query(&r, "encoding-type", "url");
		if (prefix && *prefix)
			s3req_query(&r, "prefix", prefix);
		if (delimiter && *delimiter)
			s3req_query(&r, "delimiter", delimiter);
		if (token)
			s3req_query(&r, "continuation-token", token);
		if (c->list_max_keys > 0)
			s3req_query(&r, "max-keys", maxkeys);
		r.sink = SINK_MEM;
		r.mem_max = LIST_BODY_MAX;
		r.parse = parse_list;
		r.parse_arg = &page;
		rc = s3req_perform(c, &r, &p, st);
		s3req_resp_free(&p);
		free(token);
		token = NULL;
		if (rc)
			break;
		for (int i = 0; i < page.n && rc == 0; i++) {
			struct s3_list_entry e = {page.e[i].key, page.e[i].size, page.e[i].etag,
						  page.e[i].last_modified, page.e[i].is_prefix};
			rc = cb(&e, arg);
		}
		if (rc == 0 && page.truncated) {
			token = page.next_token;
			page.next_token = NULL;
		}
		s3x_list_free(&page);
	} while (rc == 0 && token);
	free(token);
	return rc;
}

static int parse_initiate(struct s3_req *r, struct s3_resp *p)
{
	char **id = r->parse_arg;
	free(*id);
	*id = NULL;
	return s3x_initiate(buf_str(&p->body), p->body.len, id, &p->err);
}

struct stray_ctx {
	struct s3_client *c;
	const char *key, *keep;
	int aborted;
};

static int stray_one(const struct s3_upload_entry *u, void *arg)
{
	struct stray_ctx *x = arg;
	if (strcmp(u->key, x->key) == 0 && strcmp(u->upload_id, x->keep) != 0 &&
	    s3_mpu_abort(x->c, u->key, u->upload_id, NULL) == 0)
		x->aborted++;
	return 0;
}

static void abort_strays(struct s3_client *c, const char *key, const char *keep)
{
	struct stray_ctx x = {.c = c, .key = key, .keep = keep};
	if (s3_list_uploads(c, key, stray_one, &x, NULL) == 0 && x.aborted)
		log_notice("s3: aborted %d upload(s) of \"%s\" left by a lost CreateMultipartUpload answer",
			   x.aborted, key);
}

int s3_mpu_create(struct s3_client *c, const char *key, const struct s3_put_opts *opts,
		  char **upload_id, struct s3_status *st)
{
	*upload_id = NULL;
	int rc = check_key("CreateMultipartUpload", key, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	struct hdr_store s = {0};
	char *id = NULL;
	s3req_init(&r, "CreateMultipartUpload", "POST", key);
	s3req_query(&r, "uploads", "");
	s3req_body_mem(&r, "", 0);
	r.sink = SINK_MEM;
	r.parse = parse_initiate;
	r.parse_arg = &id;
	/* Retried like any request: if an answer is lost, the retry creates a
	 * second upload and the first is left unused, with an id nobody knows.
	 * So after a retried create, uploads of this very key other than ours
	 * are aborted (lzfs never runs two uploads of one key at once). */
	struct s3_status own;
	if (!st) {
		memset(&own, 0, sizeof own);
		st = &own;
	}
	rc = add_object_headers(&r, opts, &s);
	if (rc)
		rc = fail_early(r.op, key, rc, st, "bad content type or metadata");
	else
		rc = s3req_perform(c, &r, &p, st);
	if (rc) {
		free(id);
		/* Every answer lost is possible too: what S3 did create is ours. */
		if (st->attempts > 1 && rc != -EACCES && rc != -EINVAL)
			abort_strays(c, key, "");
	} else {
		*upload_id = id;
		if (st->attempts > 1)
			abort_strays(c, key, id);
	}
	store_free(&s);
	s3req_resp_free(&p);
	return rc;
}

static int check_upload(const char *op, const char *key, const char *upload_id, int part_number,
			struct s3_status *st)
{
	if (!upload_id || !*upload_id)
		return fail_early(op, key, -EINVAL, st, "no upload id");
	if (part_number < 1 || part_number > S3_MAX_PARTS)
		return fail_early(op, key, -EINVAL, st, "part number outside 1..10000");
	return 0;
}

int s3_mpu_upload_part(struct s3_client *c, const char *key, const char *upload_id,
		       int part_number, const struct s3_body *body, char etag[S3_ETAG_MAX],
		       struct s3_status *st)
{
	int rc = check_key("UploadPart", key, st);
	if (!rc)
		rc = check_upload("UploadPart", key, upload_id, part_number, st);
	if (!rc)
		rc = check_body("UploadPart", key, body, S3_MAX_PART_SIZE, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	struct hdr_store s = {0};
	char num[16];
	snprintf(num, sizeof num, "%d", part_number);
	s3req_init(&r, "UploadPart", "PUT", key);
	s3req_query(&r, "partNumber", num);
	s3req_query(&r, "uploadId", upload_id);
	set_body(&r, body, body->sha256);
	rc = add_md5(&r, body, &s);
	if (!rc)
		rc = s3req_perform(c, &r, &p, st);
	if (!rc)
		rc = take_etag(c, &r, &p, &s, body, etag, st);
	s3req_resp_free(&p);
	return rc;
}

void s3_multipart_etag(const struct s3_part *parts, int nparts, char *out)
{
	struct hash_ctx *h;
	unsigned char d[HASH_MD5_LEN];
	char hex[2 * HASH_MD5_LEN + 1];
	out[0] = '\0';
	if (hash_new(HASH_MD5, &h))
		return;
	for (int i = 0; i < nparts; i++)
		hash_update(h, parts[i].md5, HASH_MD5_LEN);
	if (hash_final(h, d) == 0) {
		hash_hex(d, sizeof d, hex);
		snprintf(out, S3_ETAG_MAX, "%s-%d", hex, nparts);
	}
	hash_free(h);
}

static int all_md5_known(const struct s3_part *parts, int nparts)
{
	static const unsigned char zero[HASH_MD5_LEN];
	for (int i = 0; i < nparts; i++)
		if (memcmp(parts[i].md5, zero, sizeof zero) == 0)
			return 0;
	return 1;
}

struct complete_ctx {
	char etag[S3_ETAG_MAX];
};

static int parse_complete(struct s3_req *r, struct s3_resp *p)
{
	struct complete_ctx *x = r->parse_arg;
	return s3x_complete(buf_str(&p->body), p->body.len, x->etag, &p->err);
}

/* After a lost answer or NoSuchUpload: is the object there, made of these
 * parts? 0 yes (etag set), -EAGAIN not (yet), or another error. */
static int complete_by_head(struct s3_client *c, const char *key, const struct s3_part *parts,
			    int nparts, const char *expected, char etag[S3_ETAG_MAX])
{
	struct s3_object_info info;
	struct s3_status st;
	int rc = s3_head_object(c, key, &info, &st);
	if (rc == -ENOENT)
		return -EAGAIN;
	if (rc)
		return rc;
	s3_object_info_clear(&info);
	if (expected) {
		if (strcasecmp(info.etag, expected) != 0) {
			log_info("s3: CompleteMultipartUpload \"%s\": HEAD shows ETag %s, expected %s",
				 key, info.etag, expected);
			return -EAGAIN;
		}
	} else {
		uint64_t total = 0;
		for (int i = 0; i < nparts; i++)
			total += parts[i].size;
		char suffix[16];
		snprintf(suffix, sizeof suffix, "-%d", nparts);
		size_t el = strlen(info.etag), sl = strlen(suffix);
		if (info.size != total || el <= sl || strcmp(info.etag + el - sl, suffix) != 0) {
			log_info("s3: CompleteMultipartUpload \"%s\": HEAD shows %" PRIu64
				 " bytes, ETag %s; expected %" PRIu64 " bytes in %d parts",
				 key, info.size, info.etag, total, nparts);
			return -EAGAIN;
		}
	}
	snprintf(etag, S3_ETAG_MAX, "%s", info.etag);
	return 0;
}

int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id,
		    const struct s3_part *parts, int nparts, char etag[S3_ETAG_MAX],
		    struct s3_status *st)
{
	const char *op = "CompleteMultipartUpload";
	int rc = check_key(op, key, st);
	if (!rc)
		rc = check_upload(op, key, upload_id, 1, st);
	if (rc)
		return rc;
	if (nparts < 1 || nparts > S3_MAX_PARTS)
		return fail_early(op, key, -EINVAL, st, "part count outside 1..10000");
	for (int i = 0; i < nparts; i++)
		if (parts[i].number < 1 || parts[i].number > S3_MAX_PARTS ||
		    (i > 0 && parts[i].number <= parts[i - 1].number) || !parts[i].etag[0])
			return fail_early(op, key, -EINVAL, st,
					  "parts must have ETags and ascending numbers");
	char expected[S3_ETAG_MAX];
	const char *want = NULL;
	if (all_md5_known(parts, nparts)) {
		s3_multipart_etag(parts, nparts, expected);
		want = expected;
	}
	size_t blen;
	char *body = s3x_complete_body(parts, nparts, &blen);
	if (!body)
		return -ENOMEM;
	struct s3_req r;
	struct s3_resp p = {0};
	struct complete_ctx x = {""};
	char sha[65];
	char result[S3_ETAG_MAX] = "";
	s3req_init(&r, op, "POST", key);
	s3req_query(&r, "uploadId", upload_id);
	s3req_body_mem(&r, body, blen);
	r.sink = SINK_MEM;
	r.parse = parse_complete;
	r.parse_arg = &x;
	r.no_retry = 1;
	rc = s3req_payload_hash(&r, sha);
	uint64_t start = s3req_now_ms();
	const char *why = NULL;
	/* Completing is not idempotent to reason about: after a lost answer or
	 * a NoSuchUpload, HEAD decides whether the object is the one we built,
	 * and the upload is only completed again while it still exists. */
	for (int retry = 0; rc == 0; retry++) {
		rc = s3req_once(c, &r, &p, sha);
		if (rc == 0) {
			snprintf(result, sizeof result, "%s", x.etag);
			break;
		}
		int lost = !p.local_rc && p.curl_rc && s3r_answer_lost(p.curl_rc);
		int gone = strcmp(p.err.code, "NoSuchUpload") == 0;
		if (lost || gone) {
			int hrc = complete_by_head(c, key, parts, nparts, want, result);
			if (hrc == 0) {
				log_info("s3: %s \"%s\": %s; HEAD shows the completed object (ETag %s)",
					 op, key, gone ? "upload no longer exists" : "answer lost", result);
				rc = 0;
				break;
			}
			if (gone) {
				why = "the upload is gone and the object is not the one expected";
				break;
			}
		} else if (!s3req_retryable(&p)) {
			break;
		}
		if (s3req_backoff(c, &r, &p, retry, start, &why))
			break;
		rc = 0;
	}
	if (rc == 0 && want && strcasecmp(result, want) != 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "ETag %s is not the expected %s", result, want);
		rc = fail_early(op, key, -EBADMSG, st, msg);
	} else if (rc) {
		rc = s3req_fail(c, &r, &p, rc, why, st);
	} else if (st) {
		memset(st, 0, sizeof *st);
		st->http_status = p.status;
		st->attempts = p.attempts;
	}
	if (rc == 0 && etag)
		snprintf(etag, S3_ETAG_MAX, "%s", result);
	s3req_resp_free(&p);
	free(body);
	return rc;
}

int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id,
		 struct s3_status *st)
{
	int rc = check_key("AbortMultipartUpload", key, st);
	if (!rc)
		rc = check_upload("AbortMultipartUpload", key, upload_id, 1, st);
	if (rc)
		return rc;
	struct s3_req r;
	struct s3_resp p = {0};
	s3req_init(&r, "AbortMultipartUpload", "DELETE", key);
	s3req_query(&r, "uploadId", upload_id);
	r.accept_404 = 1;
	rc = s3req_perform(c, &r, &p, st);
	s3req_resp_free(&p);
	return rc;
}

static int parse_parts(struct s3_req *r, struct s3_resp *p)
{
	return s3x_parts(buf_str(&p->body), p->body.len, r->parse_arg, &p->err);
}

static int parse_uploads(struct s3_req *r, struct s3_resp *p)
{
	return s3x_uploads(buf_str(&p->body), p->body.len, r->parse_arg, &p->err);
}

int s3_list_uploads(struct s3_client *c, const char *prefix,
		    int (*cb)(const struct s3_upload_entry *u, void *arg), void *arg,
		    struct s3_status *st)
{
	char *key_marker = NULL, *id_marker = NULL;
	int rc;
	for (;;) {
		struct s3_req r;
		struct s3_resp p = {0};
		struct s3x_uploads page = {0};
		s3req_init(&r, "ListMultipartUploads", "GET", NULL);
		s3req_query(&r, "uploads", "");
		s3req_query(&r, "encoding-type", "url");
		if (prefix && *prefix)
			s3req_query(&r, "prefix", prefix);
		if (key_marker)
			s3req_query(&r, "key-marker", key_marker);
		if (id_marker)
			s3req_query(&r, "upload-id-marker", id_marker);
		r.sink = SINK_MEM;
		r.mem_max = LIST_BODY_MAX;
		r.parse = parse_uploads;
		r.parse_arg = &page;
		rc = s3req_perform(c, &r, &p, st);
		s3req_resp_free(&p);
		if (rc)
			break;
		for (int i = 0; i < page.n && rc == 0; i++) {
			struct s3_upload_entry e = {page.u[i].key, page.u[i].upload_id,
						   page.u[i].initiated};
			rc = cb(&e, arg);
		}
		int more = page.truncated && page.next_key &&
			   !(key_marker && strcmp(page.next_key, key_marker) == 0 &&
			     ((!id_marker && !page.next_id) ||
			      (id_marker && page.next_id && strcmp(page.next_id, id_marker) == 0)));
		free(key_marker);
		free(id_marker);
		key_marker = page.next_key;
		id_marker = page.next_id;
		page.next_key = page.next_id = NULL;
		s3x_uploads_free(&page);
		if (rc || !more)
			break;
	}
	free(key_marker);
	free(id_marker);
	return rc;
}

int s3_mpu_list_parts(struct s3_client *c, const char *key, const char *upload_id,
		      int (*cb)(const struct s3_part *p, void *arg), void *arg,
		      struct s3_status *st)
{
	int rc = check_key("ListParts", key, st);
	if (!rc)
		rc = check_upload("ListParts", key, upload_id, 1, st);
	if (rc)
		return rc;
	int marker = 0;
	for (;;) {
		struct s3_req r;
		struct s3_resp p = {0};
		struct s3x_parts page = {0};
		char mark[16];
		snprintf(mark, sizeof mark, "%d", marker);
		s3req_init(&r, "ListParts", "GET", key);
		s3req_query(&r, "uploadId", upload_id);
		if (marker > 0)
			s3req_query(&r, "part-number-marker", mark);
		r.sink = SINK_MEM;
		r.mem_max = LIST_BODY_MAX;
		r.parse = parse_parts;
		r.parse_arg = &page;
		rc = s3req_perform(c, &r, &p, st);
		s3req_resp_free(&p);
		if (rc)
			return rc;
		for (int i = 0; i < page.n && rc == 0; i++)
			rc = cb(&page.p[i], arg);
		int more = page.truncated && page.next_marker > marker;
		marker = page.next_marker;
		s3x_parts_free(&page);
		if (rc || !more)
			return rc;
	}
}
