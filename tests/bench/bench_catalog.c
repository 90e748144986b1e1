/* bench_catalog.c - catalog throughput and lookup latency.
 *
 *   bench-catalog [-n ROWS] [-t THREADS] [-m add|full|ingested] [-b BATCH] [-l LOOKUPS] [-d DIR]
 *                 [-k] [-s]
 *
 * Registers ROWS objects from THREADS threads (each call waits for its
 * commit, like the daemon's threads do), then times LOOKUPS cat_obj_get of
 * random paths, then reports the file size per row. `add`: cat_obj_add only;
 * `full`: add, set_uploading, set_ingested (a file uploaded after close);
 * `ingested`: one add of an object already uploaded (a small file sent in
 * one PUT before it is registered). -b BATCH: each call registers BATCH
 * objects with cat_obj_add_many (add and ingested modes), as the
 * rescanner and lzfsctl scan do with a task's files.
 * Files are named in sequence (run/sample/file numbers) and threads take
 * the next number from a shared counter, as parallel writers of one
 * acquisition do; -s gives each thread its own directory instead (the
 * worst case for index locality). Prints "key value" lines for scripts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"

static int64_t rows = 1000000;
static int threads = 64;
static int full; /* -m full */
static int one;  /* -m ingested: added as ingested, one request */
static int lookups = 100000;
static int batch = 1;    /* -b: rows per cat_obj_add_many, 1 = cat_obj_add */
static int spread;       /* -s: each thread its own directory */
static int64_t next_row; /* shared counter otherwise */

#define SHA  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ETAG "d41d8cd98f00b204e9800998ecf8427e"

struct worker {
	struct cat *cat;
	int t;
	int64_t first, count;
	int errors;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* About 1000 files per collection, like an instrument writing runs. */
static void path_of(int64_t i, char *buf, size_t size)
{
	snprintf(buf, size, "run%03lld/sample%03lld/file%07lld.dat", (long long)(i / 100000),
	         (long long)(i / 1000 % 100), (long long)i);
}

static void fill(int64_t i, struct cat_obj *o, char *path, size_t psize, char *key, size_t ksize)
{
	path_of(i, path, psize);
	snprintf(key, ksize, "landing/%s", path);
	*o = (struct cat_obj){.path = path,
	                      .bucket = "bench",
	                      .key = key,
	                      .size = i & 0xffff,
	                      .mode = 0100644,
	                      .uid = 1000,
	                      .gid = 1000,
	                      .mtime_ns = 1700000000000000000LL + i,
	                      .source = "mount"};
	if (one) {
		o->state = CAT_INGESTED;
		strcpy(o->sha256, SHA);
		strcpy(o->etag, ETAG);
	}
}

/* -b: BATCH rows per call, the numbers taken BATCH at a time. */
static void work_batched(struct worker *w)
{
	struct cat_obj *objs = calloc(batch, sizeof *objs);
	int *results = calloc(batch, sizeof *results);
	char(*paths)[128] = calloc(batch, sizeof *paths);
	char(*keys)[160] = calloc(batch, sizeof *keys);
	for (int64_t n = 0; n < w->count; n += batch) {
		int k = w->count - n < batch ? (int)(w->count - n) : batch;
		int64_t base =
		    spread ? w->first + n : __atomic_fetch_add(&next_row, k, __ATOMIC_RELAXED);
		for (int j = 0; j < k; j++)
			fill(base + j, &objs[j], paths[j], sizeof paths[j], keys[j], sizeof keys[j]);
		cat_obj_add_many(w->cat, objs, k, results);
		for (int j = 0; j < k; j++)
			w->errors += results[j] != 0;
	}
	free(keys);
	free(paths);
	free(results);
	free(objs);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	char path[128], key[160];
	if (batch > 1) {
		work_batched(w);
		return NULL;
	}
	for (int64_t n = 0; n < w->count; n++) {
		int64_t i =
		    spread ? w->first + n : __atomic_fetch_add(&next_row, 1, __ATOMIC_RELAXED);
		struct cat_obj o;
		fill(i, &o, path, sizeof path, key, sizeof key);
		if (cat_obj_add(w->cat, &o) != 0) {
			w->errors++;
			continue;
		}
		if (!full)
			continue;
		if (cat_obj_set_uploading(w->cat, o.id, NULL) != 0 ||
		    cat_obj_set_ingested(w->cat, o.id, o.size, SHA, ETAG) != 0)
			w->errors++;
	}
	return NULL;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int keep = 0, opt;
	while ((opt = getopt(argc, argv, "n:t:m:b:l:d:ks")) != -1) {
		switch (opt) {
		case 'n':
			rows = atoll(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'm':
			full = strcmp(optarg, "full") == 0;
			one = strcmp(optarg, "ingested") == 0;
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'l':
			lookups = atoi(optarg);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'k':
			keep = 1;
			break;
		case 's':
			spread = 1;
			break;
		default:
			fprintf(
			    stderr,
			    "usage: bench-catalog [-n ROWS] [-t THREADS] [-m add|full|ingested] "
			    "[-b BATCH] [-l LOOKUPS] [-d DIR] [-k] [-s]\n");
			return 2;
		}
	}
	if (rows < 1 || threads < 1 || threads > 1024 || batch < 1 || (batch > 1 && full)) {
		fprintf(stderr, "bench-catalog: bad -n, -t or -b (-b is for add and ingested)\n");
		return 2;
	}
	log_init("bench-catalog", LZ_WARN, 0);
	char tmp[] = "/tmp/lzfs-bench-cat.XXXXXX";
	if (!dir && !(dir = mkdtemp(tmp))) {
		perror("mkdtemp");
		return 1;
	}
	char file[4096];
	snprintf(file, sizeof file, "%s/catalog.db", dir);
	unlink(file);
	struct cat *cat;
	int rc = cat_open(file, CAT_CREATE, &cat);
	if (rc) {
		fprintf(stderr, "bench-catalog: cat_open: %s\n", strerror(-rc));
		return 1;
	}

	pthread_t *tid = calloc(threads, sizeof *tid);
	struct worker *w = calloc(threads, sizeof *w);
	int64_t per = rows / threads;
	double t0 = now_s(), c0 = cpu_s();
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){.cat = cat,
		                       .t = i,
		                       .first = i * per,
		                       .count = i == threads - 1 ? rows - i * per : per};
		pthread_create(&tid[i], NULL, work, &w[i]);
	}
	int errors = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		errors += w[i].errors;
	}
	double secs = now_s() - t0;
	struct cat_stats st;
	cat_stats(cat, &st);
	printf(
	    "names %s\nmode %s\nbatch %d\nrows %lld\nthreads %d\nerrors %d\nseconds %.2f\nrows_per_s %.0f\n"
	    "requests_per_s %.0f\ntransactions %llu\nrequests_per_transaction %.1f\n"
	    "max_batch %llu\nwriter_busy_s %.2f\nwriter_cpu_s %.2f\nwriter_cpu_us_per_row %.1f\n"
	    "rows_per_writer_cpu_s %.0f\nprocess_cpu_s %.2f\ncheckpoints %llu\n"
	    "writer_commit_s %.2f\nwriter_commit_cpu_s %.2f\nwriter_waiting_s %.2f\n",
	    spread ? "per-thread" : "sequential",
	    full  ? "full"
	    : one ? "ingested"
	          : "add",
	    batch, (long long)rows, threads, errors, secs, rows / secs, st.requests / secs,
	    (unsigned long long)st.transactions,
	    (double)st.requests / (st.transactions ? st.transactions : 1),
	    (unsigned long long)st.max_batch, st.busy_ns / 1e9, st.cpu_ns / 1e9,
	    st.cpu_ns / 1e3 / rows, rows / (st.cpu_ns / 1e9), cpu_s() - c0,
	    (unsigned long long)st.checkpoints, st.commit_ns / 1e9, st.commit_cpu_ns / 1e9,
	    /* busy, neither on a CPU nor in COMMIT: waiting for a core */
	    (st.busy_ns - (st.commit_ns - st.commit_cpu_ns) - (double)st.busy_cpu_ns) / 1e9);
	fflush(stdout);

	/* Lookups of random existing paths, one thread, each timed. */
	double *lat = calloc(lookups > 0 ? lookups : 1, sizeof *lat);
	srand(12345);
	int missing = 0;
	double l0 = now_s();
	for (int i = 0; i < lookups; i++) {
		char path[128];
		int64_t k = ((int64_t)rand() * RAND_MAX + rand()) % rows;
		path_of(k, path, sizeof path);
		struct cat_obj o;
		double a = now_s();
		if (cat_obj_get(cat, path, &o) != 0)
			missing++;
		lat[i] = now_s() - a;
		cat_obj_clear(&o);
	}
	double lsecs = now_s() - l0;
	if (lookups > 0) {
		qsort(lat, lookups, sizeof *lat, cmp_double);
		printf("lookups %d\nlookup_missing %d\nlookup_p50_us %.1f\nlookup_p99_us %.1f\n"
		       "lookups_per_s %.0f\n",
		       lookups, missing, lat[lookups / 2] * 1e6, lat[lookups * 99 / 100] * 1e6,
		       lookups / lsecs);
	}
	struct cat_status s;
	double s0 = now_s();
	cat_status(cat, &s);
	printf("status_ms %.1f\n", (now_s() - s0) * 1e3);
	cat_close(cat); /* checkpoints and removes the WAL */

	struct stat sb;
	if (stat(file, &sb) == 0)
		printf("db_bytes %lld\nbytes_per_row %.0f\n", (long long)sb.st_size,
		       (double)sb.st_size / rows);
	if (!keep) {
		char cmd[3 * sizeof file + 64];
		snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", file, file, file);
		if (system(cmd) != 0)
			fprintf(stderr, "bench-catalog: cleanup failed\n");
		if (dir == tmp)
			rmdir(tmp);
	}
	free(lat);
	free(w);
	free(tid);
	return errors ? 1 : 0;
}
