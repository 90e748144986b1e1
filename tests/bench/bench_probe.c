/* bench_probe.c - tells when data written by some client is complete in S3,
 * for tests/bench/run: it polls HEAD (one object) or ListObjectsV2 (many)
 * until the expected sizes are there, and prints when that was true.
 *
 *   bench-probe --endpoint URL [--bucket B] [--timeout SECS] head KEY SIZE
 *   bench-probe --endpoint URL [--bucket B] [--timeout SECS] list PREFIX COUNT BYTES
 *
 * Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. On success it
 * prints one line "t_ok=EPOCH polls=N first_ok=0|1", where EPOCH (seconds,
 * CLOCK_REALTIME, so a shell's `date +%s.%N` compares with it) is when the
 * request that found the data complete was sent, and first_ok says that the
 * very first request already found it complete. "list" counts objects under
 * PREFIX and sums their sizes (both must match), leaving out directory
 * markers (keys ending in '/'). Exit 1 on timeout, with
 * what was last seen.
 *
 * A C tool rather than awscli because one awscli call costs about a second
 * of Python start-up, which would be most of what it measures.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "s3.h"

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-probe --endpoint URL [--bucket B] [--timeout SECS] "
			"head KEY SIZE | list PREFIX COUNT BYTES\n");
	exit(2);
}

struct tally {
	unsigned long long count, bytes;
};

static int count_cb(const struct s3_list_entry *e, void *arg)
{
	struct tally *t = arg;
	/* s3fs stores each directory as an empty "dir/" object: not data. */
	size_t n = strlen(e->key);
	if (!e->is_prefix && !(n && e->key[n - 1] == '/')) {
		t->count++;
		t->bytes += e->size;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *bucket = "lzfs-test";
	double timeout = 600;
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'},
		{"bucket", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'e': endpoint = optarg; break;
		case 'b': bucket = optarg; break;
		case 't': timeout = atof(optarg); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	int is_head = argc == 3 && strcmp(argv[0], "head") == 0;
	int is_list = argc == 4 && strcmp(argv[0], "list") == 0;
	if (!endpoint || (!is_head && !is_list) || timeout <= 0)
		usage();
	unsigned long long want_count = is_head ? 1 : strtoull(argv[2], NULL, 10);
	unsigned long long want_bytes = strtoull(argv[is_head ? 2 : 3], NULL, 10);
	/* A 404 while waiting is expected: only real failures are worth a line. */
	log_init("bench-probe", LZ_ERR, 0);

	struct s3_creds creds;
	if (s3_creds_load(NULL, NULL, &creds))
		return 2;
	struct s3_config cfg = {.endpoint = endpoint, .bucket = bucket, .path_style = 1,
				.creds = &creds, .max_connections = 1, .retry_budget_ms = 10000};
	struct s3_client *c;
	if (s3_client_new(&cfg, &c))
		return 2;

	double start = now_real(), sent;
	unsigned polls = 0;
	struct tally seen = {0, 0};
	int done = 0;
	/* HEAD is cheap: poll often, so that a peer's close-to-S3 delay is seen
	 * within ~20 ms. A listing of 10,000 keys is not: wait between them. */
	useconds_t pause = is_head ? 20000 : 200000;
	for (;;) {
		sent = now_real();
		polls++;
		memset(&seen, 0, sizeof seen);
		if (is_head) {
			struct s3_object_info info;
			memset(&info, 0, sizeof info);
			if (s3_head_object(c, argv[1], &info, NULL) == 0) {
				seen.count = 1;
				seen.bytes = info.size;
			}
			s3_object_info_clear(&info);
		} else {
			s3_list(c, argv[1], NULL, count_cb, &seen, NULL);
		}
		if (seen.count == want_count && seen.bytes == want_bytes) {
			done = 1;
			break;
		}
		if (now_real() - start > timeout)
			break;
		usleep(pause);
	}
	if (done)
		printf("t_ok=%.6f polls=%u first_ok=%d\n", sent, polls, polls == 1);
	else
		fprintf(stderr, "bench-probe: %s %s: timeout after %.1f s: %llu objects, %llu bytes "
				"(want %llu, %llu)\n", argv[0], argv[1], timeout, seen.count,
			seen.bytes, want_count, want_bytes);
	s3_client_free(c);
	s3_creds_clear(&creds);
	return done ? 0 : 1;
}
