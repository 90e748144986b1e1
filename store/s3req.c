/* s3req.c - the S3 client's request engine (see s3req.h): one signed
 * request on a pooled curl handle, its callbacks, the classification of its
 * outcome, and the retry loop. */
#include "s3req.h"
#include "hash.h"
#include "log.h"
#include "s3retry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERROR_BODY_MAX (64 * 1024)
#define UPLOAD_BUFFER (1024 * 1024)
#define DOWNLOAD_BUFFER (512 * 1024)

uint64_t s3req_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- request description ---- */

void s3req_init(struct s3_req *r, const char *op, const char *method, const char *key)
{
	memset(r, 0, sizeof *r);
	r->op = op;
	r->method = method;
	r->key = key;
	r->body_fd = -1;
	r->out_fd = -1;
	r->mem_max = 1024 * 1024;
}

int s3req_header(struct s3_req *r, const char *name, const char *value)
{
	if (r->nhdr >= S3REQ_MAX_HEADERS)
		return -EINVAL;
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return -EINVAL;
	r->hdr[r->nhdr].name = name;
	r->hdr[r->nhdr].value = value;
	r->nhdr++;
	return 0;
}

void s3req_query(struct s3_req *r, const char *name, const char *value)
{
	if (r->nquery < (int)(sizeof r->query / sizeof r->query[0])) {
		r->query[r->nquery].name = name;
		r->query[r->nquery].value = value;
		r->nquery++;
	}
}

void s3req_body_mem(struct s3_req *r, const void *buf, uint64_t len)
{
	r->has_body = 1;
	r->body_mem = buf;
	r->body_len = len;
}

int s3req_payload_hash(const struct s3_req *r, char hex[65])
{
	unsigned char d[HASH_SHA256_LEN];
	int rc = 0;
	if (!r->has_body || (r->body_len == 0 && !r->body_sha256)) {
		strcpy(hex, EMPTY_SHA256);
		return 0;
	}
	if (r->body_sha256)
		memcpy(d, r->body_sha256, sizeof d);
	else if (r->body_mem)
		rc = hash_sha256(r->body_mem, r->body_len, d);
	else
		rc = hash_fd(HASH_SHA256, r->body_fd, r->body_off, r->body_len, d);
	if (rc == 0)
		hash_hex(d, sizeof d, hex);
	return rc;
}

void s3req_resp_free(struct s3_resp *p)
{
	buf_free(&p->meta);
	buf_free(&p->body);
}

static void resp_reset(struct s3_resp *p)
{
	struct buf meta = p->meta, body = p->body;
	int attempts = p->attempts;
	memset(p, 0, sizeof *p);
	p->meta = meta;
	p->body = body;
	buf_reset(&p->meta);
	buf_reset(&p->body);
	p->attempts = attempts;
	p->last_modified = -1;
}

/* ---- one transfer ---- */

struct xfer {
	struct s3_req *r;
	struct s3_resp *p;
	CURL *h;
	uint64_t upos;
};

static size_t on_read(char *dst, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	struct s3_req *r = x->r;
	uint64_t left = r->body_len - x->upos;
	size_t want = size * n;
	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (r->body_mem) {
		memcpy(dst, r->body_mem + x->upos, want);
	} else {
		ssize_t got;
		do
			got = pread(r->body_fd, dst, want, r->body_off + (off_t)x->upos);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			x->p->local_rc = got < 0 ? -errno : -EIO;
			snprintf(x->p->err.message, sizeof x->p->err.message,
				 "reading the body at offset %llu: %s",
				 (unsigned long long)(r->body_off + (off_t)x->upos),
				 got < 0 ? strerror(errno) : "file is shorter than the body");
			return CURL_READFUNC_ABORT;
		}
		want = (size_t)got;
	}
	x->upos += want;
	return want;
}

/* curl rewinds the body to resend it on a fresh connection. */
static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct xfer *x = ud;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->upos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	struct s3_req *r = x->r;
	struct s3_resp *p = x->p;
	size_t len = size * n;
	if (!p->decided) {
		long status = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		p->body_is_error = status < 200 || status >= 300;
		p->decided = 1;
	}
	if (p->body_is_error) {
		/* Keep the start of an error body; a huge one is cut off. */
		if (p->body.len + len > ERROR_BODY_MAX)
			return CURL_WRITEFUNC_ERROR;
		buf_add(&p->body, data, len);
		return len;
	}
	switch (r->sink) {
	case SINK_NONE:
		return len;
	case SINK_MEM:
		if (p->body.len + len > r->mem_max) {
			p->local_rc = -EPROTO;
			snprintf(p->err.message, sizeof p->err.message,
				 "response body larger than %zu bytes", r->mem_max);
			return CURL_WRITEFUNC_ERROR;
		}
		buf_add(&p->body, data, len);
		if (buf_failed(&p->body)) {
			p->local_rc = -ENOMEM;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	case SINK_BUF: {
		size_t room = r->out_len - p->got;
		size_t k = len < room ? len : room;
		memcpy(r->out_buf + p->got, data, k);
		p->got += k;
		if (k < len) {
			p->sink_full = 1;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	}
	case SINK_FD: {
		size_t done = 0;
		while (done < len) {
			ssize_t w = pwrite(r->out_fd, data + done, len - done, (off_t)(p->got + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				p->local_rc = w < 0 ? -errno : -EIO;
				snprintf(p->err.message, sizeof p->err.message, "writing at offset %llu: %s",
					 (unsigned long long)(p->got + done), w < 0 ? strerror(errno) : "short write");
				return CURL_WRITEFUNC_ERROR;
			}
			done += (size_t)w;
		}
		p->got += len;
		return len;
	}
	}
	return CURL_WRITEFUNC_ERROR;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && strchr(" \t\r\n", (*s)[*len - 1]))
		(*len)--;
}

static int name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

static void copy_value(char *dst, size_t size, const char *v, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	struct s3_resp *p = x->p;
	size_t len = size * n;
	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 1xx): forget the previous headers. */
		p->have_etag = p->have_length = 0;
		p->etag[0] = p->request_id[0] = p->content_type[0] = p->checksum_sha256[0] = '\0';
		p->last_modified = -1;
		buf_reset(&p->meta);
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return len;
	const char *name = data;
	size_t nlen = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vlen = len - nlen - 1;
	trim(&name, &nlen);
	trim(&v, &vlen);
	if (name_is(name, nlen, "etag")) {
		p->have_etag = s3x_etag_unquote(v, vlen, p->etag) == 0;
	} else if (name_is(name, nlen, "content-length")) {
		char tmp[24];
		copy_value(tmp, sizeof tmp, v, vlen);
		char *end;
		errno = 0;
		unsigned long long cl = strtoull(tmp, &end, 10);
		p->have_length = errno == 0 && end != tmp && *end == '\0';
		p->content_length = cl;
	} else if (name_is(name, nlen, "x-amz-request-id")) {
		copy_value(p->request_id, sizeof p->request_id, v, vlen);
	} else if (name_is(name, nlen, "content-type")) {
		copy_value(p->content_type, sizeof p->content_type, v, vlen);
	} else if (name_is(name, nlen, "x-amz-checksum-sha256")) {
		copy_value(p->checksum_sha256, sizeof p->checksum_sha256, v, vlen);
	} else if (name_is(name, nlen, "last-modified")) {
		char tmp[64];
		struct tm tm = {0};
		copy_value(tmp, sizeof tmp, v, vlen);
		if (strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm))
			p->last_modified = timegm(&tm);
	} else if (x->r->want_meta && nlen > 11 && strncasecmp(name, "x-amz-meta-", 11) == 0) {
		for (size_t i = 11; i < nlen; i++)
			buf_addc(&p->meta, (char)tolower((unsigned char)name[i]));
		buf_addc(&p->meta, '=');
		buf_add(&p->meta, v, vlen);
		buf_addc(&p->meta, '\n');
	}
	return len;
}

static const char *status_text(long status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

/* Fills p->err from an error answer's body (or its status if the body is
 * not an S3 error document). */
static void read_error_body(struct s3_resp *p)
{
	if (p->body.len > 0 && s3x_error(p->body.p, p->body.len, &p->err) == 0) {
		if (!p->err.request_id[0])
			copy_value(p->err.request_id, sizeof p->err.request_id, p->request_id,
				   strlen(p->request_id));
		return;
	}
	memset(&p->err, 0, sizeof p->err);
	copy_value(p->err.request_id, sizeof p->err.request_id, p->request_id, strlen(p->request_id));
	if (p->body.len == 0) {
		snprintf(p->err.message, sizeof p->err.message, "%s (no error body)", status_text(p->status));
		return;
	}
	/* Not S3's XML (a proxy's HTML page?): quote its start, made printable. */
	char snippet[96];
	size_t k = 0;
	for (size_t i = 0; i < p->body.len && k < sizeof snippet - 1; i++) {
		unsigned char ch = (unsigned char)p->body.p[i];
		snippet[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
	}
	snippet[k] = '\0';
	snprintf(p->err.message, sizeof p->err.message, "%s; body: %s", status_text(p->status), snippet);
}

static int set_common(struct s3_client *c, CURL *h, struct xfer *x, char *errbuf)
{
	struct s3_req *r = x->r;
	int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(h, opt, val) != CURLE_OK
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PATH_AS_IS, 1L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* With a shared cache, curl closes connections beyond MAXCONNECTS
	 * (default 5) when one is returned: keep one per possible request. */
	SET(CURLOPT_MAXCONNECTS, (long)c->max_conn + 4);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	if (c->request_timeout_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms);
	SET(CURLOPT_LOW_SPEED_LIMIT, (long)c->low_speed_bytes);
	SET(CURLOPT_LOW_SPEED_TIME, (long)c->low_speed_secs);
	SET(CURLOPT_USERAGENT, "lzfs/1");
	if (c->insecure_tls) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->ca_file)
		SET(CURLOPT_CAINFO, c->ca_file);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, x);
	if (r->sink == SINK_FD || r->sink == SINK_BUF)
		SET(CURLOPT_BUFFERSIZE, (long)DOWNLOAD_BUFFER);
	if (strcmp(r->method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (r->has_body) {
		SET(CURLOPT_UPLOAD, 1L);
		if (strcmp(r->method, "PUT") != 0)
			SET(CURLOPT_CUSTOMREQUEST, r->method);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
		if (r->body_len > 64 * 1024)
			SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
	} else {
		SET(CURLOPT_HTTPGET, 1L);
		if (strcmp(r->method, "GET") != 0)
			SET(CURLOPT_CUSTOMREQUEST, r->method);
	}
#undef SET
	return bad ? -EINVAL : 0;
}

/* Builds the URL and the signed header list for this attempt. */
static int build(struct s3_client *c, struct s3_req *r, const char *sha, char **url,
		 struct curl_slist **list)
{
	struct buf path = BUF_INIT, u = BUF_INIT, line = BUF_INIT;
	char *query = NULL, *auth = NULL;
	struct curl_slist *l = NULL;
	int rc = 0;

	buf_adds(&path, c->prefix);
	if (r->key) {
		char *enc = s3_encode_key(r->key);
		if (!enc) {
			rc = -ENOMEM;
			goto out;
		}
		buf_addc(&path, '/');
		buf_adds(&path, enc);
		free(enc);
	} else if (path.len == 0) {
		buf_addc(&path, '/');
	}
	query = sigv4_query(r->query, r->nquery);
	if (!query || buf_failed(&path)) {
		rc = -ENOMEM;
		goto out;
	}
	buf_adds(&u, c->base);
	buf_adds(&u, buf_str(&path));
	if (*query) {
		buf_addc(&u, '?');
		buf_adds(&u, query);
	}

	char date[17];
	sigv4_amz_date(time(NULL), date);
	struct sigv4_header h[S3REQ_MAX_HEADERS + 4];
	int nh = 0;
	h[nh++] = (struct sigv4_header){"host", c->host};
	h[nh++] = (struct sigv4_header){"x-amz-date", date};
	h[nh++] = (struct sigv4_header){"x-amz-content-sha256", sha};
	if (c->session_token)
		h[nh++] = (struct sigv4_header){"x-amz-security-token", c->session_token};
	for (int i = 0; i < r->nhdr; i++)
		h[nh++] = r->hdr[i];
	struct sigv4_request sr = {r->method, buf_str(&path), r->query, r->nquery, h, nh, sha};
	struct sigv4_signer signer = {c->access_key, c->secret_key, c->region, "s3"};
	rc = sigv4_authorization(&signer, &sr, date, &auth);
	if (rc)
		goto out;
	for (int i = 0; i < nh && !rc; i++) {
		buf_reset(&line);
		/* curl drops "Name:" with nothing after it; "Name;" sends it empty. */
		if (h[i].value[strspn(h[i].value, " \t")] == '\0')
			buf_addf(&line, "%s;", h[i].name);
		else
			buf_addf(&line, "%s: %s", h[i].name, h[i].value);
		struct curl_slist *n = buf_failed(&line) ? NULL : curl_slist_append(l, buf_str(&line));
		if (!n)
			rc = -ENOMEM;
		else
			l = n;
	}
	/* No "Expect: 100-continue": it costs a round trip per part. */
	const char *extra[] = {"Expect:", NULL};
	for (int i = 0; extra[i] && !rc; i++) {
		struct curl_slist *n = curl_slist_append(l, extra[i]);
		if (!n)
			rc = -ENOMEM;
		else
			l = n;
	}
	if (!rc) {
		buf_reset(&line);
		buf_addf(&line, "Authorization: %s", auth);
		struct curl_slist *n = buf_failed(&line) ? NULL : curl_slist_append(l, buf_str(&line));
		if (!n)
			rc = -ENOMEM;
		else
			l = n;
	}
	if (!rc && buf_failed(&u))
		rc = -ENOMEM;
out:
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (line.p)
		explicit_bzero(line.p, line.cap);
	buf_free(&line);
	free(query);
	buf_free(&path);
	if (rc) {
		curl_slist_free_all(l);
		buf_free(&u);
		return rc;
	}
	*url = buf_detach(&u);
	*list = l;
	return *url ? 0 : -ENOMEM;
}

static void free_list(struct curl_slist *l)
{
	/* The Authorization line carries a signature: wipe before freeing. */
	for (struct curl_slist *i = l; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

int s3req_once(struct s3_client *c, struct s3_req *r, struct s3_resp *p, const char *sha)
{
	resp_reset(p);
	p->attempts++;
	char *url = NULL;
	struct curl_slist *list = NULL;
	int rc = build(c, r, sha, &url, &list);
	if (rc) {
		p->local_rc = rc;
		return rc;
	}
	CURL *h = s3req_handle_get(c);
	if (!h) {
		free(url);
		free_list(list);
		p->local_rc = -ENOMEM;
		return -ENOMEM;
	}
	curl_easy_reset(h);
	char errbuf[CURL_ERROR_SIZE] = "";
	struct xfer x = {r, p, h, 0};
	rc = set_common(c, h, &x, errbuf);
	if (!rc && (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list) != CURLE_OK))
		rc = -EINVAL;
	CURLcode cc = CURLE_OK;
	if (!rc) {
		atomic_fetch_add(&c->requests, 1);
		cc = curl_easy_perform(h);
		long status = 0, oserr = 0, nconn = 0;
		curl_off_t up = 0, down = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
		curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
		p->status = status;
		p->os_errno = (int)oserr;
		atomic_fetch_add(&c->connects, (uint64_t)nconn);
		atomic_fetch_add(&c->bytes_sent, (uint64_t)(up > 0 ? up : 0));
		atomic_fetch_add(&c->bytes_received, (uint64_t)(down > 0 ? down : 0));
	}
	/* Options point into this frame: detach them before the handle is reused. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	s3req_handle_put(c, h);
	free(url);
	free_list(list);
	if (rc) {
		p->local_rc = rc;
		return rc;
	}
	if (p->local_rc)
		return p->local_rc;
	/* Our own stops: a full caller buffer, or an error body cut short. */
	if (cc == CURLE_WRITE_ERROR && (p->sink_full || p->body_is_error))
		cc = CURLE_OK;
	p->curl_rc = cc;
	if (cc != CURLE_OK) {
		copy_value(p->curl_msg, sizeof p->curl_msg, errbuf[0] ? errbuf : curl_easy_strerror(cc),
			   strlen(errbuf[0] ? errbuf : curl_easy_strerror(cc)));
		snprintf(p->err.code, sizeof p->err.code, "curl %d", (int)cc);
		copy_value(p->err.message, sizeof p->err.message, p->curl_msg, strlen(p->curl_msg));
		return s3r_errno(cc, p->os_errno, 0, NULL);
	}
	if (p->status < 200 || p->status >= 300) {
		if ((r->accept_404 && p->status == 404) || (r->accept_416 && p->status == 416))
			return 0;
		read_error_body(p);
		return s3r_errno(CURLE_OK, 0, p->status, p->err.code);
	}
	if (r->parse) {
		rc = r->parse(r, p);
		if (rc == S3X_ERROR) {
			if (!p->err.request_id[0])
				copy_value(p->err.request_id, sizeof p->err.request_id, p->request_id,
					   strlen(p->request_id));
			return s3r_errno(CURLE_OK, 0, p->status, p->err.code);
		}
		if (rc < 0) {
			p->local_rc = rc;
			return rc;
		}
	}
	return 0;
}

int s3req_retryable(const struct s3_resp *p)
{
	if (p->local_rc)
		return 0;
	return s3r_retryable(p->curl_rc, p->status, p->err.code);
}

static void describe(const struct s3_resp *p, char *out, size_t size)
{
	if (p->local_rc) {
		snprintf(out, size, "%s%s%s", strerror(-p->local_rc), p->err.message[0] ? ": " : "",
			 p->err.message);
	} else if (p->curl_rc) {
		snprintf(out, size, "%s (curl %d)", p->curl_msg, p->curl_rc);
	} else {
		snprintf(out, size, "HTTP %ld%s%s: %s", p->status, p->err.code[0] ? " " : "",
			 p->err.code, p->err.message);
	}
}

int s3req_backoff(struct s3_client *c, const struct s3_req *r, const struct s3_resp *p,
		  int retry, uint64_t start_ms, const char **why)
{
	if (retry >= c->max_retries) {
		*why = "retries exhausted";
		return -1;
	}
	uint64_t rnd = s3r_mix(atomic_fetch_add(&c->rng, 0x9e3779b97f4a7c15ull));
	uint64_t delay = s3r_backoff_ms(retry, c->retry_base_ms, c->retry_max_ms, rnd);
	uint64_t elapsed = s3req_now_ms() - start_ms;
	if (elapsed + delay >= (uint64_t)c->retry_budget_ms) {
		*why = "retry budget exhausted";
		return -1;
	}
	char what[400];
	describe(p, what, sizeof what);
	log_debug("s3: %s \"%s\" attempt %d failed: %s; retrying in %llu ms", r->op,
		  r->key ? r->key : c->bucket, p->attempts, what, (unsigned long long)delay);
	atomic_fetch_add(&c->retries, 1);
	sleep_ms(delay);
	return 0;
}

int s3req_fail(struct s3_client *c, const struct s3_req *r, const struct s3_resp *p, int rc,
	       const char *why, struct s3_status *st)
{
	atomic_fetch_add(&c->failures, 1);
	const char *rid = p->err.request_id[0] ? p->err.request_id : p->request_id;
	char what[400];
	describe(p, what, sizeof what);
	int level = r->quiet_404 && p->status == 404 ? LZ_DEBUG : LZ_ERR;
	log_msg(level, "s3: %s \"%s\" failed: %s (%s%s%s%d attempt%s%s%s)", r->op,
		r->key ? r->key : c->bucket, what, rid[0] ? "request id " : "", rid,
		rid[0] ? ", " : "", p->attempts, p->attempts == 1 ? "" : "s", why ? "; " : "",
		why ? why : "");
	if (st) {
		memset(st, 0, sizeof *st);
		st->http_status = p->status;
		st->attempts = p->attempts;
		copy_value(st->code, sizeof st->code, p->err.code, strlen(p->err.code));
		if (p->local_rc && !p->err.message[0])
			snprintf(st->message, sizeof st->message, "%s", strerror(-p->local_rc));
		else
			copy_value(st->message, sizeof st->message, p->err.message, strlen(p->err.message));
		copy_value(st->request_id, sizeof st->request_id, rid, strlen(rid));
	}
	return rc;
}

int s3req_perform(struct s3_client *c, struct s3_req *r, struct s3_resp *p, struct s3_status *st)
{
	char sha[65];
	int rc = s3req_payload_hash(r, sha);
	if (rc) {
		log_err("s3: %s \"%s\": cannot hash the body: %s", r->op, r->key ? r->key : "",
			strerror(-rc));
		if (st) {
			memset(st, 0, sizeof *st);
			snprintf(st->message, sizeof st->message, "cannot hash the body: %s", strerror(-rc));
		}
		atomic_fetch_add(&c->failures, 1);
		return rc;
	}
	uint64_t start = s3req_now_ms();
	const char *why = NULL;
	for (int retry = 0;; retry++) {
		rc = s3req_once(c, r, p, sha);
		if (rc == 0) {
			if (st) {
				memset(st, 0, sizeof *st);
				st->http_status = p->status;
				st->attempts = p->attempts;
			}
			return 0;
		}
		if (r->no_retry || !s3req_retryable(p))
			break;
		if (s3req_backoff(c, r, p, retry, start, &why))
			break;
	}
	return s3req_fail(c, r, p, rc, why, st);
}
