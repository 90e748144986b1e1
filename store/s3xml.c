/* s3xml.c - see s3xml.h.
 *
 * One small driver walks the document: it remembers the element names on
 * the path from the root and collects the text of the current element; each
 * document type supplies a callback for element starts and ends, called
 * with the depth (root = 1) and the names of the element and its parent.
 */
#include "s3xml.h"
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <expat.h>

#define MAX_DEPTH 16
#define NAME_MAX_LEN 64
#define TEXT_MAX (64 * 1024) /* keys are <= 1024 bytes; tokens and ids shorter */

struct xp;
typedef void (*xp_start_fn)(struct xp *x, int depth, const char *name);
typedef void (*xp_end_fn)(struct xp *x, int depth, const char *name, const char *parent,
			  const char *text, size_t len);

struct xp {
	XML_Parser p;
	int depth;
	char names[MAX_DEPTH + 1][NAME_MAX_LEN];
	struct buf text;
	int rc;                 /* sticky: -EPROTO / -ENOMEM */
	int is_error;           /* root is <Error> */
	const char *root;       /* expected root, or NULL for "any but Error" */
	const char *root2;      /* a second accepted root */
	xp_start_fn start;
	xp_end_fn end;
	struct s3x_error *err;
	void *ctx;
};

static void xp_fail(struct xp *x, int rc, const char *fmt, const char *arg)
{
	if (x->rc)
		return;
	x->rc = rc;
	if (x->err)
		snprintf(x->err->message, sizeof x->err->message, fmt, arg);
	XML_StopParser(x->p, XML_FALSE);
}

static void copy_field(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct xp *x = ud;
	if (x->rc)
		return;
	x->depth++;
	if (x->depth == 1) {
		if (strcmp(name, "Error") == 0) {
			x->is_error = 1;
		} else if (x->root && strcmp(name, x->root) != 0 &&
			   !(x->root2 && strcmp(name, x->root2) == 0)) {
			xp_fail(x, -EPROTO, "unexpected XML document <%s>", name);
			return;
		}
	}
	if (x->depth <= MAX_DEPTH)
		copy_field(x->names[x->depth], NAME_MAX_LEN, name, strlen(name));
	buf_reset(&x->text);
	if (!x->is_error && x->start && x->depth <= MAX_DEPTH)
		x->start(x, x->depth, x->names[x->depth]);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xp *x = ud;
	if (x->rc)
		return;
	if (x->depth <= MAX_DEPTH && x->depth >= 1) {
		const char *parent = x->depth >= 2 ? x->names[x->depth - 1] : "";
		const char *me = x->names[x->depth];
		const char *text = buf_str(&x->text);
		size_t len = x->text.len;
		if (x->is_error) {
			if (x->depth == 2 && x->err) {
				struct s3x_error *e = x->err;
				if (strcmp(me, "Code") == 0)
					copy_field(e->code, sizeof e->code, text, len);
				else if (strcmp(me, "Message") == 0)
					copy_field(e->message, sizeof e->message, text, len);
				else if (strcmp(me, "RequestId") == 0)
					copy_field(e->request_id, sizeof e->request_id, text, len);
				else if (strcmp(me, "Key") == 0)
					copy_field(e->key, sizeof e->key, text, len);
			}
		} else if (x->end) {
			x->end(x, x->depth, me, parent, text, len);
		}
	}
	buf_reset(&x->text);
	x->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xp *x = ud;
	if (x->rc)
		return;
	if (x->text.len + (size_t)len > TEXT_MAX) {
		xp_fail(x, -EPROTO, "XML element text longer than %s bytes", "65536");
		return;
	}
	buf_add(&x->text, s, (size_t)len);
	if (buf_failed(&x->text))
		xp_fail(x, -ENOMEM, "out of memory%s", "");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	xp_fail(ud, -EPROTO, "XML with a DOCTYPE refused%s", "");
}

/* Runs the driver. Returns 0, S3X_ERROR, -EPROTO or -ENOMEM. */
static int xp_run(struct xp *x, const char *xml, size_t len)
{
	if (x->err)
		memset(x->err, 0, sizeof *x->err);
	/* S3 may send whitespace to keep a slow CompleteMultipartUpload alive
	 * before the document; an XML declaration must come first for expat. */
	while (len > 0 && (*xml == ' ' || *xml == '\n' || *xml == '\r' || *xml == '\t')) {
		xml++;
		len--;
	}
	if (len == 0) {
		if (x->err)
			snprintf(x->err->message, sizeof x->err->message, "empty response body");
		return -EPROTO;
	}
	if (len > INT32_MAX) {
		if (x->err)
			snprintf(x->err->message, sizeof x->err->message, "response body too large");
		return -EPROTO;
	}
	x->p = XML_ParserCreate(NULL);
	if (!x->p)
		return -ENOMEM;
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, on_start, on_end);
	XML_SetCharacterDataHandler(x->p, on_text);
	XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
	enum XML_Status st = XML_Parse(x->p, xml, (int)len, XML_TRUE);
	if (st != XML_STATUS_OK && !x->rc) {
		x->rc = -EPROTO;
		if (x->err)
			snprintf(x->err->message, sizeof x->err->message,
				 "malformed XML response: %s at line %lu column %lu",
				 XML_ErrorString(XML_GetErrorCode(x->p)),
				 (unsigned long)XML_GetCurrentLineNumber(x->p),
				 (unsigned long)XML_GetCurrentColumnNumber(x->p));
	}
	XML_ParserFree(x->p);
	x->p = NULL;
	buf_free(&x->text);
	if (x->rc)
		return x->rc;
	if (x->is_error) {
		if (x->err && !x->err->code[0]) {
			snprintf(x->err->message, sizeof x->err->message, "S3 error document without a Code");
			return -EPROTO;
		}
		return S3X_ERROR;
	}
	return 0;
}

int s3x_error(const char *xml, size_t len, struct s3x_error *err)
{
	struct xp x = {.root = "Error", .err = err};
	int rc = xp_run(&x, xml, len);
	if (rc == 0) /* an empty <Error/> would be parsed as the expected root */
		rc = -EPROTO;
	return rc == S3X_ERROR ? 0 : rc;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EPROTO;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int s3x_etag_unquote(const char *in, size_t len, char out[S3_ETAG_MAX])
{
	if (len >= 2 && in[0] == 'W' && in[1] == '/') {
		in += 2;
		len -= 2;
	}
	if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
		in++;
		len -= 2;
	}
	if (len >= S3_ETAG_MAX)
		return -EPROTO;
	memcpy(out, in, len);
	out[len] = '\0';
	return 0;
}

time_t s3x_iso8601(const char *s)
{
	struct tm tm = {0};
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	if (*end == '.')
		for (end++; *end >= '0' && *end <= '9'; end++)
			;
	if (*end != 'Z' && !(end[0] == '+' && strcmp(end, "+00:00") == 0))
		return -1;
	return timegm(&tm);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int s3x_url_decode(char *s)
{
	char *o = s;
	for (const char *p = s; *p; p++) {
		if (*p == '+') {
			*o++ = ' ';
		} else if (*p == '%') {
			int hi = hexval(p[1]);
			int lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EPROTO;
			*o++ = (char)(hi << 4 | lo);
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return 0;
}

/* ---- ListObjectsV2 ---- */

static void list_start(struct xp *x, int depth, const char *name)
{
	struct s3x_list *l = x->ctx;
	if (depth != 2 || (strcmp(name, "Contents") != 0 && strcmp(name, "CommonPrefixes") != 0))
		return;
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 64;
		struct s3x_entry *e = realloc(l->e, (size_t)cap * sizeof *e);
		if (!e) {
			xp_fail(x, -ENOMEM, "out of memory%s", "");
			return;
		}
		l->e = e;
		l->cap = cap;
	}
	memset(&l->e[l->n], 0, sizeof l->e[l->n]);
	l->e[l->n].is_prefix = strcmp(name, "CommonPrefixes") == 0;
	l->n++;
}

static char *dup_text(struct xp *x, const char *text, size_t len)
{
	char *s = malloc(len + 1);
	if (!s) {
		xp_fail(x, -ENOMEM, "out of memory%s", "");
		return NULL;
	}
	memcpy(s, text, len);
	s[len] = '\0';
	return s;
}

static void list_end(struct xp *x, int depth, const char *name, const char *parent,
		     const char *text, size_t len)
{
	struct s3x_list *l = x->ctx;
	if (depth == 2) {
		if (strcmp(name, "IsTruncated") == 0) {
			l->truncated = len == 4 && memcmp(text, "true", 4) == 0;
		} else if (strcmp(name, "NextContinuationToken") == 0) {
			free(l->next_token);
			l->next_token = dup_text(x, text, len);
		} else if (strcmp(name, "EncodingType") == 0) {
			l->url_encoded = len == 3 && memcmp(text, "url", 3) == 0;
		} else if ((strcmp(name, "Contents") == 0 || strcmp(name, "CommonPrefixes") == 0) &&
			   l->n > 0 && !l->e[l->n - 1].key) {
			xp_fail(x, -EPROTO, "list entry without a %s", l->e[l->n - 1].is_prefix ? "Prefix" : "Key");
		}
		return;
	}
	if (depth != 3 || l->n == 0)
		return;
	struct s3x_entry *e = &l->e[l->n - 1];
	if (strcmp(parent, "Contents") == 0) {
		if (strcmp(name, "Key") == 0) {
			free(e->key);
			e->key = dup_text(x, text, len);
		} else if (strcmp(name, "Size") == 0) {
			if (parse_u64(text, len, &e->size))
				xp_fail(x, -EPROTO, "bad object Size in list: %s", text);
		} else if (strcmp(name, "ETag") == 0) {
			if (s3x_etag_unquote(text, len, e->etag))
				xp_fail(x, -EPROTO, "ETag too long in list%s", "");
		} else if (strcmp(name, "LastModified") == 0) {
			e->last_modified = s3x_iso8601(text);
		}
	} else if (strcmp(parent, "CommonPrefixes") == 0 && strcmp(name, "Prefix") == 0) {
		free(e->key);
		e->key = dup_text(x, text, len);
	}
}

void s3x_list_free(struct s3x_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->e[i].key);
	free(l->e);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

int s3x_list(const char *xml, size_t len, struct s3x_list *out, struct s3x_error *err)
{
	memset(out, 0, sizeof *out);
	struct xp x = {.root = "ListBucketResult", .start = list_start, .end = list_end,
		       .err = err, .ctx = out};
	int rc = xp_run(&x, xml, len);
	if (rc == 0 && out->truncated && (!out->next_token || !*out->next_token)) {
		rc = -EPROTO;
		if (err)
			snprintf(err->message, sizeof err->message,
				 "truncated list page without NextContinuationToken");
	}
	for (int i = 0; rc == 0 && out->url_encoded && i < out->n; i++)
		if (s3x_url_decode(out->e[i].key)) {
			rc = -EPROTO;
			if (err)
				snprintf(err->message, sizeof err->message, "bad url-encoded key in list");
		}
	if (rc)
		s3x_list_free(out);
	return rc;
}

/* ---- single-value results ---- */

struct one_value {
	const char *name;       /* the leaf under the root */
	char *value;
	char *etag;             /* S3_ETAG_MAX, for ETag results */
	int found;
};

static void one_end(struct xp *x, int depth, const char *name, const char *parent,
		    const char *text, size_t len)
{
	struct one_value *v = x->ctx;
	if (depth != 2 || strcmp(name, v->name) != 0)
		return;
	v->found = 1;
	if (v->etag) {
		if (s3x_etag_unquote(text, len, v->etag))
			xp_fail(x, -EPROTO, "ETag too long%s", "");
		else if (!v->etag[0]) /* S3 always names the object it made */
			xp_fail(x, -EPROTO, "empty ETag%s", "");
	} else {
		free(v->value);
		v->value = dup_text(x, text, len);
	}
}

static int one(const char *xml, size_t len, const char *root, const char *root2,
	       struct one_value *v, struct s3x_error *err)
{
	struct xp x = {.root = root, .root2 = root2, .end = one_end, .err = err, .ctx = v};
	int rc = xp_run(&x, xml, len);
	if (rc == 0 && !v->found) {
		rc = -EPROTO;
		if (err)
			snprintf(err->message, sizeof err->message, "%s without %s", root, v->name);
	}
	return rc;
}

int s3x_initiate(const char *xml, size_t len, char **upload_id, struct s3x_error *err)
{
	struct one_value v = {.name = "UploadId"};
	int rc = one(xml, len, "InitiateMultipartUploadResult", NULL, &v, err);
	if (rc == 0 && (!v.value || !*v.value)) {
		rc = -EPROTO;
		if (err)
			snprintf(err->message, sizeof err->message, "empty UploadId");
	}
	if (rc) {
		free(v.value);
		return rc;
	}
	*upload_id = v.value;
	return 0;
}

int s3x_complete(const char *xml, size_t len, char etag[S3_ETAG_MAX], struct s3x_error *err)
{
	struct one_value v = {.name = "ETag", .etag = etag};
	return one(xml, len, "CompleteMultipartUploadResult", NULL, &v, err);
}

int s3x_copy(const char *xml, size_t len, char etag[S3_ETAG_MAX], struct s3x_error *err)
{
	struct one_value v = {.name = "ETag", .etag = etag};
	return one(xml, len, "CopyObjectResult", "CopyPartResult", &v, err);
}

/* ---- ListParts ---- */

static void parts_start(struct xp *x, int depth, const char *name)
{
	struct s3x_parts *p = x->ctx;
	if (depth != 2 || strcmp(name, "Part") != 0)
		return;
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 64;
		struct s3_part *n = realloc(p->p, (size_t)cap * sizeof *n);
		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory%s", "");
			return;
		}
		p->p = n;
		p->cap = cap;
	}
	memset(&p->p[p->n], 0, sizeof p->p[p->n]);
	p->n++;
}

static void parts_end(struct xp *x, int depth, const char *name, const char *parent,
		      const char *text, size_t len)
{
	struct s3x_parts *p = x->ctx;
	uint64_t v;
	if (depth == 2) {
		if (strcmp(name, "IsTruncated") == 0) {
			p->truncated = len == 4 && memcmp(text, "true", 4) == 0;
		} else if (strcmp(name, "NextPartNumberMarker") == 0) {
			if (parse_u64(text, len, &v) || v > S3_MAX_PARTS)
				xp_fail(x, -EPROTO, "bad NextPartNumberMarker: %s", text);
			else
				p->next_marker = (int)v;
		} else if (strcmp(name, "Part") == 0 && p->n > 0 && p->p[p->n - 1].number == 0) {
			xp_fail(x, -EPROTO, "part without a PartNumber%s", "");
		}
		return;
	}
	if (depth != 3 || strcmp(parent, "Part") != 0 || p->n == 0)
		return;
	struct s3_part *part = &p->p[p->n - 1];
	if (strcmp(name, "PartNumber") == 0) {
		if (parse_u64(text, len, &v) || v < 1 || v > S3_MAX_PARTS)
			xp_fail(x, -EPROTO, "bad PartNumber: %s", text);
		else
			part->number = (int)v;
	} else if (strcmp(name, "ETag") == 0) {
		if (s3x_etag_unquote(text, len, part->etag))
			xp_fail(x, -EPROTO, "ETag too long in part list%s", "");
		else if (!part->etag[0])
			xp_fail(x, -EPROTO, "empty ETag in part list%s", "");
	} else if (strcmp(name, "Size") == 0) {
		if (parse_u64(text, len, &part->size))
			xp_fail(x, -EPROTO, "bad part Size: %s", text);
	}
}

void s3x_parts_free(struct s3x_parts *p)
{
	free(p->p);
	memset(p, 0, sizeof *p);
}

int s3x_parts(const char *xml, size_t len, struct s3x_parts *out, struct s3x_error *err)
{
	memset(out, 0, sizeof *out);
	struct xp x = {.root = "ListPartsResult", .start = parts_start, .end = parts_end,
		       .err = err, .ctx = out};
	int rc = xp_run(&x, xml, len);
	if (rc == 0 && out->truncated && out->next_marker <= 0) {
		rc = -EPROTO;
		if (err)
			snprintf(err->message, sizeof err->message,
				 "truncated part list without NextPartNumberMarker");
	}
	if (rc)
		s3x_parts_free(out);
	return rc;
}

/* ---- ListMultipartUploads ---- */

static void uploads_start(struct xp *x, int depth, const char *name)
{
	struct s3x_uploads *u = x->ctx;
	if (depth != 2 || strcmp(name, "Upload") != 0)
		return;
	if (u->n == u->cap) {
		int cap = u->cap ? u->cap * 2 : 64;
		struct s3x_upload *n = realloc(u->u, (size_t)cap * sizeof *n);
		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory%s", "");
			return;
		}
		u->u = n;
		u->cap = cap;
	}
	memset(&u->u[u->n], 0, sizeof u->u[u->n]);
	u->n++;
}

static void uploads_end(struct xp *x, int depth, const char *name, const char *parent,
			const char *text, size_t len)
{
	struct s3x_uploads *u = x->ctx;
	if (depth == 2) {
		if (strcmp(name, "IsTruncated") == 0)
			u->truncated = len == 4 && memcmp(text, "true", 4) == 0;
		else if (strcmp(name, "EncodingType") == 0)
			u->url_encoded = len == 3 && memcmp(text, "url", 3) == 0;
		else if (strcmp(name, "NextKeyMarker") == 0 && !u->next_key)
			u->next_key = dup_text(x, text, len);
		else if (strcmp(name, "NextUploadIdMarker") == 0 && !u->next_id)
			u->next_id = dup_text(x, text, len);
		else if (strcmp(name, "Upload") == 0 && u->n > 0 &&
			 (!u->u[u->n - 1].key || !u->u[u->n - 1].upload_id))
			xp_fail(x, -EPROTO, "upload without Key or UploadId%s", "");
		return;
	}
	if (depth != 3 || strcmp(parent, "Upload") != 0 || u->n == 0)
		return;
	struct s3x_upload *e = &u->u[u->n - 1];
	if (strcmp(name, "Key") == 0 && !e->key)
		e->key = dup_text(x, text, len);
	else if (strcmp(name, "UploadId") == 0 && !e->upload_id)
		e->upload_id = dup_text(x, text, len);
	else if (strcmp(name, "Initiated") == 0)
		e->initiated = s3x_iso8601(text);
}

void s3x_uploads_free(struct s3x_uploads *u)
{
	for (int i = 0; i < u->n; i++) {
		free(u->u[i].key);
		free(u->u[i].upload_id);
	}
	free(u->u);
	free(u->next_key);
	free(u->next_id);
	memset(u, 0, sizeof *u);
}

int s3x_uploads(const char *xml, size_t len, struct s3x_uploads *out, struct s3x_error *err)
{
	memset(out, 0, sizeof *out);
	struct xp x = {.root = "ListMultipartUploadsResult", .start = uploads_start,
		       .end = uploads_end, .err = err, .ctx = out};
	int rc = xp_run(&x, xml, len);
	if (rc == 0 && out->url_encoded) {
		for (int i = 0; i < out->n && rc == 0; i++)
			rc = s3x_url_decode(out->u[i].key);
		if (rc == 0 && out->next_key)
			rc = s3x_url_decode(out->next_key);
	}
	if (rc == 0 && out->truncated && (!out->next_key || !*out->next_key)) {
		rc = -EPROTO;
		if (err)
			snprintf(err->message, sizeof err->message,
				 "truncated upload list without NextKeyMarker");
	}
	if (rc)
		s3x_uploads_free(out);
	return rc;
}

static void add_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		default: buf_addc(b, *s);
		}
	}
}

char *s3x_complete_body(const struct s3_part *parts, int nparts, size_t *len)
{
	struct buf b = BUF_INIT;
	buf_reserve(&b, 64 + (size_t)nparts * 110);
	buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload "
		     "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (int i = 0; i < nparts; i++) {
		buf_addf(&b, "<Part><PartNumber>%d</PartNumber><ETag>\"", parts[i].number);
		add_escaped(&b, parts[i].etag);
		buf_adds(&b, "\"</ETag></Part>");
	}
	buf_adds(&b, "</CompleteMultipartUpload>");
	*len = b.len;
	return buf_detach(&b);
}
