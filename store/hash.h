/* hash.h - SHA-256 / MD5 / HMAC-SHA-256 over OpenSSL EVP, hex and base64.
 *
 * A hash_ctx is a streaming digest owned by one thread at a time. Every
 * function returns 0 or a negative errno (-ENOMEM, -EIO from OpenSSL or
 * pread).
 */
#ifndef LZFS_HASH_H
#define LZFS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum hash_alg {
	HASH_SHA256,
	HASH_MD5,
};

#define HASH_SHA256_LEN 32
#define HASH_MD5_LEN 16
#define HASH_MAX_LEN 32

size_t hash_len(enum hash_alg alg);

struct hash_ctx;

int hash_new(enum hash_alg alg, struct hash_ctx **out);
int hash_update(struct hash_ctx *h, const void *buf, size_t len);
/* Writes hash_len() bytes to out and resets h for a new message. */
int hash_final(struct hash_ctx *h, unsigned char *out);
/* The digest of what was hashed so far, leaving h unchanged. */
int hash_peek(const struct hash_ctx *h, unsigned char *out);
void hash_free(struct hash_ctx *h);

/* One-shot digests. */
int hash_sha256(const void *buf, size_t len, unsigned char out[HASH_SHA256_LEN]);
int hash_md5(const void *buf, size_t len, unsigned char out[HASH_MD5_LEN]);
/* Digest of bytes [off, off+len) of fd, read with pread. A short file is
 * -EIO (ENODATA in the log). */
int hash_fd(enum hash_alg alg, int fd, off_t off, uint64_t len, unsigned char *out);

int hash_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
		     unsigned char out[HASH_SHA256_LEN]);

/* Lowercase hex; out holds 2 * n + 1 bytes. */
void hash_hex(const unsigned char *d, size_t n, char *out);
/* Parses 2 * n hex digits (either case) into d; -EINVAL if malformed. */
int hash_unhex(const char *hex, unsigned char *d, size_t n);
/* Standard base64 with padding; out holds 4 * ((n + 2) / 3) + 1 bytes. */
void hash_base64(const unsigned char *d, size_t n, char *out);

#endif
