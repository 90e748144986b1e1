/* sigv4.c - see sigv4.h. */
#include "sigv4.h"
#include "buf.h"
#include "hash.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void encode_into(struct buf *b, const char *s, size_t len, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	if (buf_reserve(b, len * 3))
		return;
	char *o = b->p + b->len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
}

char *sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
	struct buf b = BUF_INIT;
	encode_into(&b, s, len, keep_slash);
	return buf_detach(&b);
}

struct enc_param {
	char *name;
	char *value;
};

static int cmp_param(const void *a, const void *b)
{
	const struct enc_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

char *sigv4_query(const struct sigv4_param *q, int n)
{
	struct enc_param *e = calloc(n > 0 ? (size_t)n : 1, sizeof *e);
	if (!e)
		return NULL;
	int ok = 1;
	for (int i = 0; i < n && ok; i++) {
		const char *v = q[i].value ? q[i].value : "";
		e[i].name = sigv4_uri_encode(q[i].name, strlen(q[i].name), 0);
		e[i].value = sigv4_uri_encode(v, strlen(v), 0);
		ok = e[i].name && e[i].value;
	}
	struct buf b = BUF_INIT;
	if (ok) {
		qsort(e, (size_t)n, sizeof *e, cmp_param);
		buf_adds(&b, "");
		for (int i = 0; i < n; i++) {
			if (i)
				buf_addc(&b, '&');
			buf_adds(&b, e[i].name);
			buf_addc(&b, '=');
			buf_adds(&b, e[i].value);
		}
	}
	for (int i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
	free(e);
	if (!ok) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

struct canon_header {
	char *name;      /* lowercased copy */
	const char *value;
};

static int cmp_header(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Trims the value and collapses inner runs of spaces, as SigV4 asks. */
static void add_trimmed(struct buf *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	int space = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == ' ' || v[i] == '\t') {
			space = 1;
			continue;
		}
		if (space)
			buf_addc(b, ' ');
		space = 0;
		buf_addc(b, v[i]);
	}
}

/* Builds the canonical request and, into *signed_headers, the header list. */
static int canonical(const struct sigv4_request *r, struct buf *out, struct buf *signed_headers)
{
	if (r->nheaders <= 0 || !r->method || !r->path || !r->payload_sha256)
		return -EINVAL;
	struct canon_header *h = calloc((size_t)r->nheaders, sizeof *h);
	if (!h)
		return -ENOMEM;
	int rc = 0;
	for (int i = 0; i < r->nheaders && !rc; i++) {
		h[i].name = strdup(r->headers[i].name);
		if (!h[i].name) {
			rc = -ENOMEM;
			break;
		}
		for (char *p = h[i].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		h[i].value = r->headers[i].value ? r->headers[i].value : "";
	}
	char *query = rc ? NULL : sigv4_query(r->query, r->nquery);
	if (!rc && !query)
		rc = -ENOMEM;
	if (!rc) {
		/* A stable sort keeps repeated headers in the caller's order. */
		for (int i = 1; i < r->nheaders; i++)
			for (int j = i; j > 0 && cmp_header(&h[j - 1], &h[j]) > 0; j--) {
				struct canon_header t = h[j];
				h[j] = h[j - 1];
				h[j - 1] = t;
			}
		buf_adds(out, r->method);
		buf_addc(out, '\n');
		buf_adds(out, r->path);
		buf_addc(out, '\n');
		buf_adds(out, query);
		buf_addc(out, '\n');
		for (int i = 0; i < r->nheaders; i++) {
			int repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
			if (repeat) {
				buf_addc(out, ',');
			} else {
				if (i > 0) {
					buf_addc(out, '\n');
					buf_addc(signed_headers, ';');
				}
				buf_adds(out, h[i].name);
				buf_addc(out, ':');
				buf_adds(signed_headers, h[i].name);
			}
			add_trimmed(out, h[i].value);
		}
		buf_adds(out, "\n\n");
		buf_adds(out, buf_str(signed_headers));
		buf_addc(out, '\n');
		buf_adds(out, r->payload_sha256);
		if (buf_failed(out) || buf_failed(signed_headers))
			rc = -ENOMEM;
	}
	free(query);
	for (int i = 0; i < r->nheaders; i++)
		free(h[i].name);
	free(h);
	return rc;
}

int sigv4_canonical_request(const struct sigv4_request *r, char **out)
{
	struct buf b = BUF_INIT, sh = BUF_INIT;
	int rc = canonical(r, &b, &sh);
	buf_free(&sh);
	if (rc) {
		buf_free(&b);
		return rc;
	}
	*out = buf_detach(&b);
	return *out ? 0 : -ENOMEM;
}

static void scope(struct buf *b, const struct sigv4_signer *s, const char *amz_date)
{
	buf_add(b, amz_date, 8);
	buf_addf(b, "/%s/%s/aws4_request", s->region, s->service);
}

int sigv4_string_to_sign(const struct sigv4_signer *s, const char *amz_date,
			 const char *canonical_request, char **out)
{
	if (strlen(amz_date) != 16)
		return -EINVAL;
	unsigned char d[HASH_SHA256_LEN];
	char hex[2 * HASH_SHA256_LEN + 1];
	int rc = hash_sha256(canonical_request, strlen(canonical_request), d);
	if (rc)
		return rc;
	hash_hex(d, sizeof d, hex);
	struct buf b = BUF_INIT;
	buf_adds(&b, "AWS4-HMAC-SHA256\n");
	buf_adds(&b, amz_date);
	buf_addc(&b, '\n');
	scope(&b, s, amz_date);
	buf_addc(&b, '\n');
	buf_adds(&b, hex);
	*out = buf_detach(&b);
	return *out ? 0 : -ENOMEM;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request") */
static int signing_key(const struct sigv4_signer *s, const char *amz_date,
		       unsigned char key[HASH_SHA256_LEN])
{
	size_t slen = strlen(s->secret_key);
	char *k = malloc(slen + 5);
	if (!k)
		return -ENOMEM;
	memcpy(k, "AWS4", 4);
	memcpy(k + 4, s->secret_key, slen + 1);
	int rc = hash_hmac_sha256(k, slen + 4, amz_date, 8, key);
	explicit_bzero(k, slen + 4);
	free(k);
	if (!rc)
		rc = hash_hmac_sha256(key, HASH_SHA256_LEN, s->region, strlen(s->region), key);
	if (!rc)
		rc = hash_hmac_sha256(key, HASH_SHA256_LEN, s->service, strlen(s->service), key);
	if (!rc)
		rc = hash_hmac_sha256(key, HASH_SHA256_LEN, "aws4_request", 12, key);
	return rc;
}

int sigv4_authorization(const struct sigv4_signer *s, const struct sigv4_request *r,
			const char *amz_date, char **out)
{
	if (!s->access_key || !s->secret_key || !s->region || !s->service ||
	    strlen(amz_date) != 16)
		return -EINVAL;
	struct buf creq = BUF_INIT, sh = BUF_INIT;
	char *sts = NULL;
	int rc = canonical(r, &creq, &sh);
	if (!rc)
		rc = sigv4_string_to_sign(s, amz_date, buf_str(&creq), &sts);
	unsigned char key[HASH_SHA256_LEN], sig[HASH_SHA256_LEN];
	char hex[2 * HASH_SHA256_LEN + 1];
	if (!rc)
		rc = signing_key(s, amz_date, key);
	if (!rc)
		rc = hash_hmac_sha256(key, sizeof key, sts, strlen(sts), sig);
	explicit_bzero(key, sizeof key);
	if (!rc) {
		hash_hex(sig, sizeof sig, hex);
		struct buf b = BUF_INIT;
		buf_addf(&b, "AWS4-HMAC-SHA256 Credential=%s/", s->access_key);
		scope(&b, s, amz_date);
		buf_addf(&b, ", SignedHeaders=%s, Signature=%s", buf_str(&sh), hex);
		*out = buf_detach(&b);
		if (!*out)
			rc = -ENOMEM;
	}
	free(sts);
	buf_free(&creq);
	buf_free(&sh);
	return rc;
}
