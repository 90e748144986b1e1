/* bench_rescan.c - the rescanner's walk over a large tree that has nothing
 * new, for tests/bench/rescan.sh.
 *
 *   bench-rescan populate DIR N   N files below DIR (directories of 1000
 *                                 files, 10 per parent), each registered
 *                                 `ingested` in DIR/.lzfs/catalog.db with
 *                                 its size and mtime, as the rescanner
 *                                 would leave them. Kept if already there.
 *   bench-rescan walk DIR         one full walk of the daemon's rescanner
 *                                 (inotify watches included) over DIR
 *                                 against that catalog. Prints "key value"
 *                                 lines: seconds, files, tracked (files it
 *                                 would upload: 0 when nothing is new).
 *   bench-rescan statwalk DIR T   the floor under any walk that must see
 *                                 each file's size and mtime: readdir and
 *                                 one fstatat per file, nothing else, with
 *                                 T threads taking directories from a
 *                                 shared stack. Prints "statwalk_s S".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "landing.h"
#include "log.h"
#include "rescan.h"

#define PER_DIR 1000
#define FANOUT 10
#define THREADS 32

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void rel_of(int64_t i, char *buf, size_t len)
{
	int64_t d = i / PER_DIR;
	snprintf(buf, len, "d%03lld/e%02lld/f%06lld", (long long)(d / FANOUT), (long long)(d % FANOUT),
		 (long long)i);
}

struct pop {
	struct cat *cat;
	const char *dir;
	int64_t n;
	int64_t next;
	pthread_mutex_t mu;
	int errors;
};

static void *pop_worker(void *arg)
{
	struct pop *p = arg;
	char rel[64], path[4200], key[80];
	for (;;) {
		pthread_mutex_lock(&p->mu);
		int64_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n)
			break;
		rel_of(i, rel, sizeof rel);
		snprintf(path, sizeof path, "%s/%s", p->dir, rel);
		struct stat st;
		if (stat(path, &st) < 0) {
			__atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		snprintf(key, sizeof key, "bench/%s", rel);
		struct cat_obj o = {
			.path = rel, .bucket = "bench", .key = key, .size = st.st_size,
			.mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid,
			.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
			.source = "bench", .state = CAT_INGESTED,
		};
		snprintf(o.sha256, sizeof o.sha256, "%064d", 0);
		snprintf(o.etag, sizeof o.etag, "bench");
		if (cat_obj_add(p->cat, &o) < 0)
			__atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int populate(const char *dir, int64_t n)
{
	char marker[4200], cat_file[4200];
	snprintf(marker, sizeof marker, "%s/.lzfs/populated-%lld", dir, (long long)n);
	if (access(marker, F_OK) == 0) {
		printf("populated %lld (kept)\n", (long long)n);
		return 0;
	}
	char path[4200], rel[64];
	snprintf(path, sizeof path, "%s/.lzfs", dir);
	mkdir(dir, 0755);
	mkdir(path, 0700);
	double t0 = now_s();
	for (int64_t i = 0; i < n; i++) {
		rel_of(i, rel, sizeof rel);
		if (i % PER_DIR == 0) {
			snprintf(path, sizeof path, "%s/%.4s", dir, rel);
			mkdir(path, 0755);
			snprintf(path, sizeof path, "%s/%.8s", dir, rel);
			mkdir(path, 0755);
		}
		snprintf(path, sizeof path, "%s/%s", dir, rel);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		/* a few bytes, so sizes are not all 0 */
		if (write(fd, rel, (size_t)(i % 17)) < 0) {
			perror(path);
			close(fd);
			return 1;
		}
		close(fd);
	}
	double t1 = now_s();
	snprintf(cat_file, sizeof cat_file, "%s/.lzfs/catalog.db", dir);
	struct pop p = {.dir = dir, .n = n};
	pthread_mutex_init(&p.mu, NULL);
	if (cat_open(cat_file, CAT_CREATE, &p.cat) < 0)
		return 1;
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, pop_worker, &p);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cat_close(p.cat);
	double t2 = now_s();
	if (p.errors) {
		fprintf(stderr, "populate: %d errors\n", p.errors);
		return 1;
	}
	int fd = open(marker, O_WRONLY | O_CREAT, 0644);
	if (fd >= 0)
		close(fd);
	printf("populated %lld\nfiles_s %.1f\ncatalog_s %.1f\n", (long long)n, t1 - t0, t2 - t1);
	return 0;
}

static int walk(const char *dir, int stat_all)
{
	char cat_file[4200];
	snprintf(cat_file, sizeof cat_file, "%s/.lzfs/catalog.db", dir);
	struct cat *cat;
	if (cat_open(cat_file, CAT_CREATE, &cat) < 0)
		return 1;
	struct rescan_config cfg = {
		.dir = dir,
		.interval = 3600,
		.settle = 5,
		.stat_all = stat_all,
		.scan = {
			.mode = SCAN_PUT_SYNC,
			.bucket = "bench",
			.prefix = "bench",
			.path_mode = SCAN_PATH_REL,
			.source = "rescan",
			.skip_top = LAND_RESERVED,
		},
	};
	double t0 = now_s();
	struct rescan *r;
	/* Nothing is new, so the walk sends nothing: no S3 client needed. */
	if (rescan_start(&cfg, cat, NULL, NULL, &r) < 0) {
		cat_close(cat);
		return 1;
	}
	struct rescan_stats st;
	double t[4] = {t0};
	/* The first walk reads the catalog; the next ones (what the daemon
	 * does every rescan_interval) remember what they found unchanged. */
	for (uint64_t walks = 1; walks <= 3; walks++) {
		if (walks > 1) {
			t[walks - 1] = now_s();
			rescan_walk_now(r);
		}
		for (;;) {
			rescan_get_stats(r, &st);
			if (st.walks >= walks)
				break;
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		t[walks] = now_s();
	}
	rescan_stop(r);
	cat_close(cat);
	printf("first_walk_s %.3f\nperiodic_walk_s %.3f\nfiles %llu\ntracked %llu\n"
	       "trusted_walks %llu\nunstated %llu\n", t[1] - t[0],
	       (t[3] - t[2] < t[2] - t[1] ? t[3] - t[2] : t[2] - t[1]),
	       (unsigned long long)st.scan.seen / 3, (unsigned long long)st.tracked,
	       (unsigned long long)st.trusted_walks, (unsigned long long)st.unstated);
	return st.tracked == 0 ? 0 : 2;
}

struct sw {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **stack;
	size_t n, cap;
	int busy;                     /* threads inside a directory */
	int failed;
	int64_t files;
};

static void sw_push(struct sw *s, char *path)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		char **t = realloc(s->stack, cap * sizeof *t);
		if (!t) {
			s->failed = 1;
			free(path);
			return;
		}
		s->stack = t;
		s->cap = cap;
	}
	s->stack[s->n++] = path;
}

static void *sw_worker(void *arg)
{
	struct sw *s = arg;
	int64_t files = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->n && s->busy)
			pthread_cond_wait(&s->cv, &s->mu);
		if (!s->n)
			break;
		char *dir = s->stack[--s->n];
		s->busy++;
		pthread_mutex_unlock(&s->mu);
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (de->d_type == DT_DIR) {
				char *sub;
				if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0)
					continue;
				pthread_mutex_lock(&s->mu);
				sw_push(s, sub);
				pthread_cond_signal(&s->cv);
				pthread_mutex_unlock(&s->mu);
				continue;
			}
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				files++;
		}
		if (d)
			closedir(d);
		free(dir);
		pthread_mutex_lock(&s->mu);
		s->busy--;
		if (!s->busy && !s->n)
			pthread_cond_broadcast(&s->cv);
	}
	s->files += files;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int statwalk(const char *dir, int threads)
{
	struct sw s = {0};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	if (threads < 1 || threads > THREADS)
		return 2;
	char *top = strdup(dir);
	if (!top)
		return 1;
	double t0 = now_s();
	sw_push(&s, top);
	pthread_t th[THREADS];
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, sw_worker, &s);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double t1 = now_s();
	free(s.stack);
	printf("statwalk_s %.3f\nfiles %lld\n", t1 - t0, (long long)s.files);
	return s.failed;
}

int main(int argc, char **argv)
{
	log_init("bench-rescan", LZ_WARN, 0);
	if (argc == 4 && strcmp(argv[1], "populate") == 0)
		return populate(argv[2], atoll(argv[3]));
	if ((argc == 3 || (argc == 4 && strcmp(argv[3], "all") == 0)) &&
	    strcmp(argv[1], "walk") == 0)
		return walk(argv[2], argc == 4);
	if (argc == 4 && strcmp(argv[1], "statwalk") == 0)
		return statwalk(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: bench-rescan populate DIR N | walk DIR [all] | statwalk DIR THREADS\n");
	return 2;
}
