/* s3retry.h - the S3 client's retry policy and errno mapping, as pure
 * functions of one attempt's outcome (so they can be tested as tables).
 *
 * An outcome is curl's result code (CURLE_OK when an HTTP answer came), the
 * OS errno curl saw (CURLINFO_OS_ERRNO), the HTTP status (0 if none) and the
 * S3 error code from the body ("" or NULL if none).
 */
#ifndef LZFS_S3RETRY_H
#define LZFS_S3RETRY_H

#include <stdint.h>

/* 1 if the attempt failed in a way worth retrying: 5xx (but 501), 429,
 * SlowDown / InternalError / RequestTimeout / ServiceUnavailable codes
 * (even with a 200 status, as CompleteMultipartUpload can answer), and
 * transient transport errors (connect, timeout, send, receive, partial
 * body, empty reply, DNS, TLS handshake). 0 for success and for 4xx. */
int s3r_retryable(int curl_code, long http_status, const char *s3_code);

/* 1 if a transport error means the request may have reached the server
 * and its answer was lost (so a non-idempotent request may have happened). */
int s3r_answer_lost(int curl_code);

/* Full jitter: a delay in [0, min(max_ms, base_ms * 2^retry)] chosen by
 * `random` (any 64-bit value, e.g. from a PRNG). retry counts from 0. */
uint64_t s3r_backoff_ms(int retry, int base_ms, int max_ms, uint64_t random);

/* The negative errno for a failed outcome (see s3.h). 0 for success (curl
 * OK, 2xx and no S3 error code). */
int s3r_errno(int curl_code, int os_errno, long http_status, const char *s3_code);

/* A 64-bit mixer (splitmix64) for drawing jitter from a counter. */
uint64_t s3r_mix(uint64_t x);

#endif
