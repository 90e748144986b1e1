/* bench_read.c - read throughput of one S3 object: with the parallel reader
 * (ingest/reader.h) in reads of a given size, as lzfsctl get and the mount
 * read it, or as one single-stream GET.
 *
 *   bench-read --endpoint URL --key K [--bucket lzfs-test] [--out FILE]
 *              [--read-kib 1024] [--chunk-mib 8] [--workers 8] [--ahead 8]
 *              [--mem-mib 256] [--sequential] [--single] [--sha256]
 *
 * Size and ETag come from a HEAD (outside the timing). --out writes the bytes
 * to FILE (else they are dropped); --sha256 hashes them as they come (inside
 * the timing) and prints the digest. --sequential opens the reader with
 * RD_SEQUENTIAL (full read-ahead from the start, as lzfsctl get and verify
 * do); without it the window grows as it does for the mount. --single: one GET of the whole object
 * streamed into FILE (or /dev/null); not with --sha256. Credentials from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY. Prints one line: "bench-read ... MiB/s=N ...".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "reader.h"
#include "s3.h"

#define MiB (1024ull * 1024)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-read --endpoint URL --key K [--bucket B] [--out FILE] "
	                "[--read-kib N] [--chunk-mib N] [--workers N] [--ahead N] [--mem-mib N] "
	                "[--sequential] [--single] [--sha256]\n");
	exit(2);
}

static int write_all(int fd, const char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *key = NULL, *bucket = "lzfs-test", *out = NULL;
	int read_kib = 1024, single = 0, sha = 0, flags = 0;
	struct rd_config rc = {0};
	static const struct option longopts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"key", required_argument, NULL, 'k'},
	    {"bucket", required_argument, NULL, 'b'},
	    {"out", required_argument, NULL, 'o'},
	    {"read-kib", required_argument, NULL, 'r'},
	    {"chunk-mib", required_argument, NULL, 'c'},
	    {"workers", required_argument, NULL, 'w'},
	    {"ahead", required_argument, NULL, 'a'},
	    {"mem-mib", required_argument, NULL, 'm'},
	    {"single", no_argument, NULL, 's'},
	    {"sha256", no_argument, NULL, 'h'},
	    {"sequential", no_argument, NULL, 'q'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'e':
			endpoint = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'b':
			bucket = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'r':
			read_kib = atoi(optarg);
			break;
		case 'c':
			rc.chunk_size = strtoull(optarg, NULL, 10) * MiB;
			break;
		case 'w':
			rc.workers = atoi(optarg);
			break;
		case 'a':
			rc.max_ahead = atoi(optarg);
			break;
		case 'm':
			rc.mem_limit = strtoull(optarg, NULL, 10) * MiB;
			break;
		case 's':
			single = 1;
			break;
		case 'h':
			sha = 1;
			break;
		case 'q':
			flags |= RD_SEQUENTIAL;
			break;
		default:
			usage();
		}
	}
	if (!endpoint || !key || read_kib <= 0 || (single && sha))
		usage();
	log_init("bench-read", LZ_WARN, 0);

	struct s3_creds creds;
	if (s3_creds_load(NULL, NULL, &creds))
		return 1;
	struct s3_config cfg = {
	    .endpoint = endpoint,
	    .bucket = bucket,
	    .path_style = 1,
	    .creds = &creds,
	    .max_connections = 32,
	};
	struct s3_client *s3;
	if (s3_client_new(&cfg, &s3))
		return 1;
	struct s3_object_info info;
	if (s3_head_object(s3, key, &info, NULL))
		return 1;

	int fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(out);
		return 1;
	}
	struct hash_ctx *h = NULL;
	if (sha && hash_new(HASH_SHA256, &h))
		return 1;

	double t0, dt;
	int err = 0, peak = 1;
	uint64_t bytes = 0;
	if (single) {
		t0 = now();
		err = s3_get_object_fd(s3, key, fd, NULL, NULL);
		dt = now() - t0;
		bytes = info.size;
	} else {
		struct rd_pool *p;
		struct rd_reader *r;
		size_t step = (size_t)read_kib * 1024;
		char *buf = malloc(step);
		if (!buf || rd_pool_new(&rc, s3, &p))
			return 1;
		if (rd_open(p, key, info.size, info.etag, flags, &r))
			return 1;
		t0 = now();
		while (bytes < info.size) {
			ssize_t n = rd_read(r, buf, step, bytes);
			if (n <= 0) {
				err = n < 0 ? (int)n : -EIO;
				break;
			}
			if (h)
				hash_update(h, buf, (size_t)n);
			if (out && (err = write_all(fd, buf, (size_t)n, (off_t)bytes)))
				break;
			bytes += (uint64_t)n;
		}
		dt = now() - t0;
		struct rd_pool_stats st;
		rd_pool_stats(p, &st);
		peak = st.fetches_peak;
		rd_close(r);
		rd_pool_free(p);
		free(buf);
	}
	char hex[2 * HASH_SHA256_LEN + 1] = "-";
	if (h) {
		unsigned char d[HASH_SHA256_LEN];
		hash_final(h, d);
		hash_hex(d, HASH_SHA256_LEN, hex);
	}
	hash_free(h);
	close(fd);
	if (err) {
		fprintf(stderr, "bench-read: %s: %s\n", key, strerror(-err));
		return 1;
	}
	printf("bench-read mode=%s bytes=%llu secs=%.3f MiB/s=%.1f in_flight_peak=%d sha256=%s\n",
	       single ? "single" : "reader", (unsigned long long)bytes, dt,
	       (double)bytes / MiB / dt, peak, hex);
	s3_object_info_clear(&info);
	s3_client_free(s3);
	s3_creds_clear(&creds);
	return 0;
}
