/* bench_scale.c - registrations per second into one PostgreSQL catalog
 * shared by several hosts, and what the rows cost on disk.
 *
 *   bench-scale -c URL [-n ROWS] [-H HOSTS] [-t THREADS] [-m add|full|ingested]
 *               [-l LOOKUPS] [-o OFFSET]
 *
 * Opens the catalog HOSTS times (each handle has its own writer connection
 * and read pool, owner "benchN", as HOSTS lzfs daemons would) and runs
 * THREADS threads per handle, each call waiting for its commit. Hosts write
 * disjoint trees (hostN/run/sample/file, about 1000 files per collection).
 * Modes as bench-catalog: `add` registers pending rows, `full` adds then
 * moves each row to uploading and ingested (three requests per file),
 * `ingested` registers an already uploaded small file (one request).
 * Then LOOKUPS cat_obj_get of random paths, then the sizes of the tables
 * and indexes (after VACUUM ANALYZE) per row. -o OFFSET numbers files from
 * OFFSET (to grow one catalog over several runs). Prints "key value" lines.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"

#define SHA  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ETAG "d41d8cd98f00b204e9800998ecf8427e"
#define MAX_HOSTS 16

static int64_t rows = 1000000, offset;
static int hosts = 3, threads = 16, lookups = 20000;
static int full, one;

struct host {
	struct cat *cat;
	int n;
	int64_t next, end; /* shared by the host's threads */
	int errors;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void path_of(int h, int64_t i, char *buf, size_t size)
{
	snprintf(buf, size, "host%d/run%03lld/sample%03lld/file%07lld.dat", h,
	         (long long)(i / 100000), (long long)(i / 1000 % 100), (long long)i);
}

static void *work(void *arg)
{
	struct host *h = arg;
	char path[160], key[200];
	for (;;) {
		int64_t i = __atomic_fetch_add(&h->next, 1, __ATOMIC_RELAXED);
		if (i >= h->end)
			break;
		path_of(h->n, i, path, sizeof path);
		snprintf(key, sizeof key, "landing/%s", path);
		struct cat_obj o = {.path = path,
		                    .bucket = "bench",
		                    .key = key,
		                    .size = i & 0xffff,
		                    .mode = 0100644,
		                    .uid = 1000,
		                    .gid = 1000,
		                    .mtime_ns = 1700000000000000000LL + i,
		                    .source = "mount"};
		if (one) {
			o.state = CAT_INGESTED;
			strcpy(o.sha256, SHA);
			strcpy(o.etag, ETAG);
		}
		if (cat_obj_add(h->cat, &o) != 0) {
			__atomic_fetch_add(&h->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (full && (cat_obj_set_uploading(h->cat, o.id, NULL) != 0 ||
		             cat_obj_set_ingested(h->cat, o.id, o.size, SHA, ETAG) != 0))
			__atomic_fetch_add(&h->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Prints "name value" for each row of a two-column query. */
static void print_query(PGconn *db, const char *sql)
{
	PGresult *res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "bench-scale: %s: %s", sql, PQresultErrorMessage(res));
	} else {
		for (int i = 0; i < PQntuples(res); i++)
			printf("%s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	}
	PQclear(res);
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "c:n:H:t:m:l:o:")) != -1) {
		switch (opt) {
		case 'c':
			url = optarg;
			break;
		case 'n':
			rows = atoll(optarg);
			break;
		case 'H':
			hosts = atoi(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'm':
			full = strcmp(optarg, "full") == 0;
			one = strcmp(optarg, "ingested") == 0;
			break;
		case 'l':
			lookups = atoi(optarg);
			break;
		case 'o':
			offset = atoll(optarg);
			break;
		default:
			url = NULL;
			optind = argc + 1;
		}
	}
	if (!url || rows < 1 || hosts < 1 || hosts > MAX_HOSTS || threads < 1 || threads > 256) {
		fprintf(stderr, "usage: bench-scale -c URL [-n ROWS] [-H HOSTS] [-t THREADS] "
		                "[-m add|full|ingested] [-l LOOKUPS] [-o OFFSET]\n");
		return 2;
	}
	log_init("bench-scale", LZ_WARN, 0);
	struct host h[MAX_HOSTS];
	int64_t per = rows / hosts;
	for (int i = 0; i < hosts; i++) {
		h[i] = (struct host){.n = i, .next = offset + i * per};
		h[i].end = i == hosts - 1 ? offset + rows : h[i].next + per;
		int rc = cat_open(url, CAT_CREATE, &h[i].cat);
		if (rc) {
			fprintf(stderr, "bench-scale: cat_open: %s\n", strerror(-rc));
			return 1;
		}
		char owner[32];
		snprintf(owner, sizeof owner, "bench%d", i);
		cat_set_owner(h[i].cat, owner);
	}
	int nt = hosts * threads;
	pthread_t *tid = calloc(nt, sizeof *tid);
	double t0 = now_s();
	for (int i = 0; i < nt; i++)
		pthread_create(&tid[i], NULL, work, &h[i % hosts]);
	for (int i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	double secs = now_s() - t0;
	int errors = 0;
	uint64_t req = 0, tx = 0, maxb = 0;
	double cpu = 0;
	for (int i = 0; i < hosts; i++) {
		struct cat_stats st;
		cat_stats(h[i].cat, &st);
		errors += h[i].errors;
		req += st.requests;
		tx += st.transactions;
		cpu += st.cpu_ns / 1e9;
		if (st.max_batch > maxb)
			maxb = st.max_batch;
	}
	printf("mode %s\nrows %lld\nhosts %d\nthreads_per_host %d\nerrors %d\nseconds %.2f\n"
	       "rows_per_s %.0f\nrequests_per_s %.0f\ntransactions %llu\n"
	       "requests_per_transaction %.1f\nmax_batch %llu\nwriter_cpu_us_per_row %.1f\n",
	       full ? "full" : one ? "ingested" : "add", (long long)rows, hosts, threads, errors,
	       secs, rows / secs, req / secs, (unsigned long long)tx,
	       (double)req / (tx ? tx : 1), (unsigned long long)maxb, cpu * 1e6 / rows);
	fflush(stdout);

	if (lookups > 0) {
		double *lat = calloc(lookups, sizeof *lat);
		unsigned seed = 42;
		int missing = 0;
		double l0 = now_s();
		for (int i = 0; i < lookups; i++) {
			int hh = rand_r(&seed) % hosts;
			int64_t span = h[hh].end - (offset + hh * per);
			int64_t k = offset + hh * per + (int64_t)(rand_r(&seed) % (span ? span : 1));
			char path[160];
			path_of(hh, k, path, sizeof path);
			struct cat_obj o;
			double a = now_s();
			if (cat_obj_get(h[i % hosts].cat, path, &o) != 0)
				missing++;
			lat[i] = now_s() - a;
			cat_obj_clear(&o);
		}
		double lsecs = now_s() - l0;
		qsort(lat, lookups, sizeof *lat, cmp_double);
		printf("lookups %d\nlookup_missing %d\nlookups_per_s %.0f\nlookup_p50_us %.0f\n"
		       "lookup_p99_us %.0f\n",
		       lookups, missing, lookups / lsecs, lat[lookups / 2] * 1e6,
		       lat[lookups * 99 / 100] * 1e6);
		free(lat);
	}
	struct cat_status s;
	if (cat_status(h[0].cat, &s) == 0)
		printf("catalog_versions %lld\ncatalog_collections %lld\n", (long long)s.versions,
		       (long long)s.collections);
	for (int i = 0; i < hosts; i++)
		cat_close(h[i].cat);

	/* Sizes once autovacuum's work is done, as a catalog at rest. */
	PGconn *db = PQconnectdb(url);
	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "bench-scale: %s", PQerrorMessage(db));
		return 1;
	}
	PQclear(PQexec(db, "VACUUM ANALYZE"));
	print_query(db, "SELECT 'rel_' || c.relname, pg_relation_size(c.oid) FROM pg_class c"
	                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ="
	                " current_schema() AND c.relkind IN ('r', 'i') AND"
	                " pg_relation_size(c.oid) > 0 ORDER BY 2 DESC");
	print_query(db, "SELECT 'objects_rows', count(*) FROM objects UNION ALL"
	                " SELECT 'events_rows', count(*) FROM events UNION ALL"
	                " SELECT 'database_bytes', pg_database_size(current_database())");
	PQfinish(db);
	return errors ? 1 : 0;
}
