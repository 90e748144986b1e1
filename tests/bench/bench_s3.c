/* bench_s3.c - upload throughput of the S3 client: a file sent as one
 * multipart upload, parts read with pread and sent by N threads (parts in
 * flight), as the upload pipeline does.
 *
 *   bench-s3 --endpoint URL --file PATH [--bucket lzfs-test] [--key K]
 *            [--part-mib 8] [--inflight 4] [--presha] [--md5] [--keep]
 *
 * Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. By default the
 * client hashes each part (one extra read pass, inside the timing);
 * --presha hashes them beforehand, as a streaming writer that hashes while
 * it writes would. --md5 adds Content-MD5 and the multipart ETag check.
 * Prints one line: "bench-s3 ... cpu_seconds=C ... MiB/s=N" (C: this
 * process's user + system time, hashing included).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "s3.h"

#define MiB (1024.0 * 1024.0)

struct job {
	struct s3_client *c;
	const char *key;
	const char *upload_id;
	int fd;
	uint64_t size;
	uint64_t part_size;
	int nparts;
	struct s3_part *parts;
	unsigned char (*sha)[HASH_SHA256_LEN];
	int md5;
	atomic_int next;
	atomic_int failed;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	int i;
	while ((i = atomic_fetch_add(&j->next, 1)) < j->nparts && !atomic_load(&j->failed)) {
		uint64_t off = (uint64_t)i * j->part_size;
		uint64_t len = j->size - off < j->part_size ? j->size - off : j->part_size;
		struct s3_body b = {.fd = j->fd, .off = (off_t)off, .len = len,
				    .sha256 = j->sha ? j->sha[i] : NULL,
				    .md5 = j->md5 ? j->parts[i].md5 : NULL};
		struct s3_status st;
		if (s3_mpu_upload_part(j->c, j->key, j->upload_id, i + 1, &b, j->parts[i].etag, &st))
			atomic_store(&j->failed, 1);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-s3 --endpoint URL --file PATH [--bucket B] [--key K] "
			"[--part-mib N] [--inflight N] [--presha] [--md5] [--keep]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *file = NULL, *bucket = "lzfs-test", *key = "bench/object";
	int part_mib = 8, inflight = 4, presha = 0, md5 = 0, keep = 0;
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'}, {"file", required_argument, NULL, 'f'},
		{"bucket", required_argument, NULL, 'b'},   {"key", required_argument, NULL, 'k'},
		{"part-mib", required_argument, NULL, 'p'}, {"inflight", required_argument, NULL, 'n'},
		{"presha", no_argument, NULL, 's'},         {"md5", no_argument, NULL, 'm'},
		{"keep", no_argument, NULL, 'K'},           {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'e': endpoint = optarg; break;
		case 'f': file = optarg; break;
		case 'b': bucket = optarg; break;
		case 'k': key = optarg; break;
		case 'p': part_mib = atoi(optarg); break;
		case 'n': inflight = atoi(optarg); break;
		case 's': presha = 1; break;
		case 'm': md5 = 1; break;
		case 'K': keep = 1; break;
		default: usage();
		}
	}
	if (!endpoint || !file || part_mib < 5 || inflight < 1 || inflight > 64)
		usage();
	log_init("bench-s3", LZ_WARN, 0);

	int fd = open(file, O_RDONLY);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size == 0) {
		fprintf(stderr, "bench-s3: %s: %s\n", file, fd < 0 ? strerror(errno) : "empty");
		return 1;
	}
	struct s3_creds creds;
	if (s3_creds_load(NULL, NULL, &creds))
		return 1;
	struct s3_config cfg = {.endpoint = endpoint, .bucket = bucket, .path_style = 1,
				.creds = &creds, .max_connections = inflight};
	struct s3_client *c;
	if (s3_client_new(&cfg, &c))
		return 1;

	struct job j = {.c = c, .key = key, .fd = fd, .size = (uint64_t)sb.st_size,
			.part_size = (uint64_t)part_mib << 20, .md5 = md5};
	j.nparts = (int)((j.size + j.part_size - 1) / j.part_size);
	j.parts = calloc((size_t)j.nparts, sizeof *j.parts);
	if (presha)
		j.sha = calloc((size_t)j.nparts, sizeof *j.sha);
	for (int i = 0; i < j.nparts; i++) {
		uint64_t off = (uint64_t)i * j.part_size;
		uint64_t len = j.size - off < j.part_size ? j.size - off : j.part_size;
		j.parts[i].number = i + 1;
		j.parts[i].size = len;
		if (md5)
			hash_fd(HASH_MD5, fd, (off_t)off, len, j.parts[i].md5);
		if (presha)
			hash_fd(HASH_SHA256, fd, (off_t)off, len, j.sha[i]);
	}

	struct s3_status st;
	char *uid = NULL;
	char etag[S3_ETAG_MAX] = "";
	double t0 = now();
	int rc = s3_mpu_create(c, key, NULL, &uid, &st);
	if (!rc) {
		j.upload_id = uid;
		pthread_t t[64];
		for (int i = 0; i < inflight; i++)
			pthread_create(&t[i], NULL, worker, &j);
		for (int i = 0; i < inflight; i++)
			pthread_join(t[i], NULL);
		rc = atomic_load(&j.failed) ? -EIO : 0;
		if (!rc)
			rc = s3_mpu_complete(c, key, uid, j.parts, j.nparts, etag, &st);
		else
			s3_mpu_abort(c, key, uid, &st);
	}
	double dt = now() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	struct s3_stats s;
	s3_get_stats(c, &s);
	if (rc) {
		fprintf(stderr, "bench-s3: upload failed: %s\n", strerror(-rc));
	} else {
		printf("bench-s3 size_mib=%.0f part_mib=%d inflight=%d presha=%d md5=%d seconds=%.3f "
		       "cpu_seconds=%.2f requests=%llu retries=%llu MiB/s=%.1f\n",
		       (double)j.size / MiB, part_mib, inflight, presha, md5, dt, cpu,
		       (unsigned long long)s.requests, (unsigned long long)s.retries,
		       (double)j.size / MiB / dt);
		if (!keep)
			s3_delete_object(c, key, &st);
	}
	free(uid);
	free(j.parts);
	free(j.sha);
	s3_client_free(c);
	s3_creds_clear(&creds);
	close(fd);
	return rc ? 1 : 0;
}
