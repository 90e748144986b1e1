/* hash.c - see hash.h. */
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct hash_ctx {
	enum hash_alg alg;
	EVP_MD_CTX *md;
};

static const EVP_MD *alg_md(enum hash_alg alg)
{
	return alg == HASH_MD5 ? EVP_md5() : EVP_sha256();
}

size_t hash_len(enum hash_alg alg)
{
	return alg == HASH_MD5 ? HASH_MD5_LEN : HASH_SHA256_LEN;
}

int hash_new(enum hash_alg alg, struct hash_ctx **out)
{
	struct hash_ctx *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->alg = alg;
	h->md = EVP_MD_CTX_new();
	if (!h->md) {
		free(h);
		return -ENOMEM;
	}
	if (EVP_DigestInit_ex(h->md, alg_md(alg), NULL) != 1) {
		hash_free(h);
		return -EIO;
	}
	*out = h;
	return 0;
}

int hash_update(struct hash_ctx *h, const void *buf, size_t len)
{
	return EVP_DigestUpdate(h->md, buf, len) == 1 ? 0 : -EIO;
}

int hash_final(struct hash_ctx *h, unsigned char *out)
{
	if (EVP_DigestFinal_ex(h->md, out, NULL) != 1)
		return -EIO;
	return EVP_DigestInit_ex(h->md, alg_md(h->alg), NULL) == 1 ? 0 : -EIO;
}

int hash_peek(const struct hash_ctx *h, unsigned char *out)
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	if (!copy)
		return -ENOMEM;
	int ok = EVP_MD_CTX_copy_ex(copy, h->md) == 1 &&
		 EVP_DigestFinal_ex(copy, out, NULL) == 1;
	EVP_MD_CTX_free(copy);
	return ok ? 0 : -EIO;
}

void hash_free(struct hash_ctx *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

static int oneshot(enum hash_alg alg, const void *buf, size_t len, unsigned char *out)
{
	return EVP_Digest(buf, len, out, NULL, alg_md(alg), NULL) == 1 ? 0 : -EIO;
}

int hash_sha256(const void *buf, size_t len, unsigned char out[HASH_SHA256_LEN])
{
	return oneshot(HASH_SHA256, buf, len, out);
}

int hash_md5(const void *buf, size_t len, unsigned char out[HASH_MD5_LEN])
{
	return oneshot(HASH_MD5, buf, len, out);
}

int hash_fd(enum hash_alg alg, int fd, off_t off, uint64_t len, unsigned char *out)
{
	enum { CHUNK = 1 << 20 };
	struct hash_ctx *h;
	int rc = hash_new(alg, &h);
	if (rc)
		return rc;
	char *buf = malloc(len < CHUNK ? (len ? len : 1) : CHUNK);
	if (!buf) {
		hash_free(h);
		return -ENOMEM;
	}
	while (len > 0 && rc == 0) {
		size_t want = len < CHUNK ? len : CHUNK;
		ssize_t n = pread(fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			log_err("hash: read of fd %d at %lld: %s", fd, (long long)off, strerror(errno));
		} else if (n == 0) {
			rc = -EIO;
			log_err("hash: fd %d ends at %lld, %llu bytes short", fd, (long long)off,
				(unsigned long long)len);
		} else {
			rc = hash_update(h, buf, (size_t)n);
			off += n;
			len -= (uint64_t)n;
		}
	}
	if (rc == 0)
		rc = hash_final(h, out);
	free(buf);
	hash_free(h);
	return rc;
}

int hash_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
		     unsigned char out[HASH_SHA256_LEN])
{
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &n) || n != HASH_SHA256_LEN)
		return -EIO;
	return 0;
}

void hash_hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
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

int hash_unhex(const char *hex, unsigned char *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		d[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void hash_base64(const unsigned char *d, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}
