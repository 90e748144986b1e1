/* s3client.c - the S3 client's lifecycle (s3_client_new/free, stats) and
 * its pool of curl handles (see s3req.h).
 *
 * Connections: a pool of curl easy handles, one per request in flight, at
 * most cfg.max_connections of them; a caller beyond that waits for a handle.
 * The handles share one connection cache, DNS cache and TLS sessions
 * (CURLSH), so a connection opened by one handle is reused by the next
 * request on any handle.
 */
#include "s3req.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- client lifecycle ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct s3_client *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	struct s3_client *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_lock[data]);
}

static char *dup_or_null(const char *s, int *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

static int valid_bucket(const char *b)
{
	size_t n = strlen(b);
	if (n < 1 || n > 255)
		return 0;
	for (const char *p = b; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return 0;
	return 1;
}

/* endpoint: scheme://authority[/path] -> base, host, path prefix. */
static int parse_endpoint(struct s3_client *c, const char *ep, const char *bucket, int path_style)
{
	const char *rest;
	const char *scheme;
	if (strncasecmp(ep, "http://", 7) == 0) {
		scheme = "http";
		rest = ep + 7;
	} else if (strncasecmp(ep, "https://", 8) == 0) {
		scheme = "https";
		rest = ep + 8;
	} else {
		log_err("s3: endpoint %s: must start with http:// or https://", ep);
		return -EINVAL;
	}
	size_t alen = strcspn(rest, "/?#");
	if (alen == 0 || memchr(rest, '@', alen)) {
		log_err("s3: endpoint %s: no host, or user info in it", ep);
		return -EINVAL;
	}
	const char *path = rest + alen;
	if (*path == '?' || *path == '#') {
		log_err("s3: endpoint %s: a query or fragment is not allowed", ep);
		return -EINVAL;
	}
	size_t plen = strlen(path);
	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	struct buf host = BUF_INIT, base = BUF_INIT, prefix = BUF_INIT;
	if (!path_style) {
		buf_adds(&host, bucket);
		buf_addc(&host, '.');
	}
	for (size_t i = 0; i < alen; i++)
		buf_addc(&host, (char)tolower((unsigned char)rest[i]));
	buf_addf(&base, "%s://%s", scheme, buf_str(&host));
	buf_add(&prefix, path, plen);
	if (path_style) {
		buf_addc(&prefix, '/');
		buf_adds(&prefix, bucket);
	}
	c->host = buf_detach(&host);
	c->base = buf_detach(&base);
	c->prefix = buf_detach(&prefix);
	return c->host && c->base && c->prefix ? 0 : -ENOMEM;
}

static int def(int v, int d)
{
	return v > 0 ? v : d;
}

int s3_client_new(const struct s3_config *cfg, struct s3_client **out)
{
	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		log_err("s3: curl_global_init failed: %s", curl_easy_strerror(global_rc));
		return -EIO;
	}
	if (!cfg->endpoint || !cfg->bucket || !valid_bucket(cfg->bucket)) {
		log_err("s3: configuration needs an endpoint and a valid bucket name (got %s)",
			cfg->bucket ? cfg->bucket : "none");
		return -EINVAL;
	}
	if (!cfg->creds || !cfg->creds->access_key || !cfg->creds->secret_key) {
		log_err("s3: configuration has no credentials");
		return -EINVAL;
	}
	struct s3_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int oom = 0;
	c->bucket = dup_or_null(cfg->bucket, &oom);
	c->region = dup_or_null(cfg->region ? cfg->region : "us-east-1", &oom);
	c->access_key = dup_or_null(cfg->creds->access_key, &oom);
	c->secret_key = dup_or_null(cfg->creds->secret_key, &oom);
	c->session_token = dup_or_null(cfg->creds->session_token, &oom);
	c->ca_file = dup_or_null(cfg->ca_file, &oom);
	c->insecure_tls = cfg->insecure_tls;
	c->max_conn = def(cfg->max_connections, 16);
	c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : cfg->max_retries < 0 ? 0 : 6;
	c->retry_base_ms = def(cfg->retry_base_ms, 100);
	c->retry_max_ms = def(cfg->retry_max_ms, 5000);
	c->retry_budget_ms = def(cfg->retry_budget_ms, 60000);
	c->connect_timeout_ms = def(cfg->connect_timeout_ms, 5000);
	c->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 0;
	c->low_speed_bytes = def(cfg->low_speed_bytes, 1024);
	c->low_speed_secs = def(cfg->low_speed_secs, 30);
	c->list_max_keys = 0;
	c->copy_single_max = S3_MAX_PART_SIZE;
	c->copy_part_size = 1024ull * 1024 * 1024;
	atomic_init(&c->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_lock[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_cond_init(&c->pool_cond, NULL);
	c->idle = calloc((size_t)c->max_conn, sizeof *c->idle);
	int rc = oom || !c->idle ? -ENOMEM : 0;
	if (!rc)
		rc = parse_endpoint(c, cfg->endpoint, cfg->bucket, cfg->path_style);
	if (!rc) {
		c->share = curl_share_init();
		if (!c->share ||
		    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
		    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
		    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
		    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
		    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
		    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
			log_err("s3: cannot set up curl's shared connection cache");
			rc = -ENOMEM;
		}
	}
	if (rc) {
		s3_client_free(c);
		return rc;
	}
	log_debug("s3: client for %s%s (region %s, %d connections)", c->base, c->prefix,
		  c->region, c->max_conn);
	*out = c;
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	/* Every call has returned, so every handle is idle. */
	for (int i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	log_debug("s3: client closed: %llu requests, %llu connections opened",
		  (unsigned long long)atomic_load(&c->requests),
		  (unsigned long long)atomic_load(&c->connects));
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_lock[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_cond_destroy(&c->pool_cond);
	free(c->idle);
	free(c->host);
	free(c->base);
	free(c->prefix);
	free(c->bucket);
	free(c->region);
	wipe_free(c->access_key);
	wipe_free(c->secret_key);
	wipe_free(c->session_token);
	free(c->ca_file);
	free(c);
}

void s3_get_stats(struct s3_client *c, struct s3_stats *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
	out->failures = atomic_load(&c->failures);
	out->bytes_sent = atomic_load(&c->bytes_sent);
	out->bytes_received = atomic_load(&c->bytes_received);
	out->in_flight = atomic_load(&c->in_flight);
}

/* ---- handle pool ---- */

CURL *s3req_handle_get(struct s3_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	while (c->nidle == 0 && c->nhandles >= c->max_conn)
		pthread_cond_wait(&c->pool_cond, &c->pool_lock);
	if (c->nidle > 0) {
		h = c->idle[--c->nidle];
	} else {
		h = curl_easy_init();
		if (h && curl_easy_setopt(h, CURLOPT_SHARE, c->share) != CURLE_OK) {
			curl_easy_cleanup(h);
			h = NULL;
		}
		if (h)
			c->nhandles++;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		atomic_fetch_add(&c->in_flight, 1);
	return h;
}

void s3req_handle_put(struct s3_client *c, CURL *h)
{
	atomic_fetch_sub(&c->in_flight, 1);
	pthread_mutex_lock(&c->pool_lock);
	c->idle[c->nidle++] = h;
	pthread_cond_signal(&c->pool_cond);
	pthread_mutex_unlock(&c->pool_lock);
}

