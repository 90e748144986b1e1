/* test_catalog_pg.c - the catalog on a real PostgreSQL (tests/pg/server
 * starts one in a temporary directory): the backend-neutral cases of
 * test_catalog.c, each on a fresh database, then what only a shared
 * catalog has: two "hosts" (two catalog handles, each with its writer and
 * its threads) registering the same paths at once, per-owner recovery, a
 * reconnect after the server dropped every connection, passwords kept out
 * of the logs, foreign databases refused. Skipped, with the reason, only
 * where no PostgreSQL server can run. */
#define main test_catalog_sqlite_main
#include "test_catalog.c"
#undef main

#include <libpq-fe.h>

static char pg_dir[128];
static char pg_url[512]; /* .../lzfs: the admin database */
static char pg_skip[640];
static int pg_dbs;

static void pg_url_for(const char *db, char *out, size_t size)
{
	const char *slash = strrchr(pg_url, '/');
	snprintf(out, size, "%.*s/%s", (int)(slash - pg_url), pg_url, db);
}

static void admin_sql(const char *sql)
{
	PGconn *db = PQconnectdb(pg_url);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(db, sql);
	ExecStatusType s = PQresultStatus(res);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(db);
}

/* One integer from a query on database url. */
static int64_t url_int(const char *url, const char *sql)
{
	PGconn *db = PQconnectdb(url);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(db);
	return v;
}

static int group_setup(void **state)
{
	const char *root = getenv("LZFS_ROOT");
	strcpy(pg_dir, "/tmp/lzfs-pg.XXXXXX");
	if (!mkdtemp(pg_dir))
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "PG_OPTS='-c fsync=off' %s/tests/pg/server start %s/pg 2>&1",
	         root ? root : ".", pg_dir);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	char line[256] = "";
	if (!fgets(line, sizeof line, p))
		line[0] = '\0';
	int st = pclose(p);
	line[strcspn(line, "\n")] = '\0';
	if (st != 0 || strncmp(line, "postgresql://", 13) != 0) {
		snprintf(pg_skip, sizeof pg_skip, "no PostgreSQL server could start here: %s", line);
		return 0;
	}
	snprintf(pg_url, sizeof pg_url, "%s", line);
	return 0;
}

static int group_teardown(void **state)
{
	const char *root = getenv("LZFS_ROOT");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s/tests/pg/server stop %s/pg; rm -rf '%s'", root ? root : ".",
	         pg_dir, pg_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A fresh database per test, the catalog created in it by cat_open. */
static int pg_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	*state = f;
	if (pg_skip[0])
		return 0;
	strcpy(f->dir, "/tmp/lzfs-catpg.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	char sql[64], db[32];
	snprintf(db, sizeof db, "t%d", ++pg_dbs);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
	admin_sql(sql);
	pg_url_for(db, f->file, sizeof f->file);
	return cat_open(f->file, CAT_CREATE, &f->cat) == 0 ? 0 : -1;
}

static int pg_teardown(void **state)
{
	struct fx *f = *state;
	if (pg_skip[0]) {
		free(f);
		return 0;
	}
	return teardown(state);
}

static int skipped(void)
{
	if (!pg_skip[0])
		return 0;
	print_message("# %s\n", pg_skip);
	return 1;
}

#define PG_CASE(name)                                                                              \
	static void pg_##name(void **state)                                                        \
	{                                                                                          \
		if (skipped())                                                                     \
			skip();                                                                    \
		name(state);                                                                       \
	}
PG_CASE(test_transitions)
PG_CASE(test_transition_fields)
PG_CASE(test_add_ingested)
PG_CASE(test_parts)
PG_CASE(test_versions)
PG_CASE(test_delete_promotes)
PG_CASE(test_rename)
PG_CASE(test_meta)
PG_CASE(test_find_odd_paths)
PG_CASE(test_list_and_collections)
PG_CASE(test_invalid_paths)
PG_CASE(test_events)
PG_CASE(test_status)
PG_CASE(test_readonly)
PG_CASE(test_group_commit)
PG_CASE(test_add_many_concurrent)

/* test_add_many_mixed without its SQLite trigger: rows that fail (refused
 * before the server, or by the server's function) fail alone, in one
 * transaction with the rows that succeed. */
static void test_add_many_mixed_pg(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	assert_int_equal(cat_coll_ensure(f->cat, "m/dir", 0755, 0, 0, NULL), 0);
	add_obj(f->cat, "m/file", 5);
	static const struct {
		const char *path;
		int ingested;
		int want;
	} rows[] = {
	    {"m/a", 0, 0},         {"m/dir", 0, -EISDIR},   {"m/b", 1, 0},
	    {"", 0, -EINVAL},      {"m/file/x", 0, -ENOTDIR}, {"m/a", 1, 0},
	    {"m/d/e", 0, 0},       {"m/bad-sha", 1, -EINVAL}, {"m/z", 0, 0},
	};
	enum { N = sizeof rows / sizeof rows[0] };
	struct cat_obj o[N];
	char keys[N][64];
	int res[N];
	for (int i = 0; i < N; i++)
		obj_init(&o[i], rows[i].path, keys[i], sizeof keys[i], 100 + i, rows[i].ingested);
	o[7].sha256[3] = 'X';
	struct cat_stats s0, s1;
	struct status_counts c0, c1;
	status_of(f->cat, &c0);
	cat_stats(f->cat, &s0);
	assert_int_equal(cat_obj_add_many(f->cat, o, N, res), -EISDIR);
	cat_stats(f->cat, &s1);
	status_of(f->cat, &c1);
	for (int i = 0; i < N; i++) {
		if (res[i] != rows[i].want)
			fail_msg("row %d (%s): %d, want %d", i, rows[i].path, res[i], rows[i].want);
		assert_int_equal(o[i].id > 0, rows[i].want == 0);
	}
	assert_int_equal(s1.transactions - s0.transactions, 1);
	assert_int_equal(o[0].version, 1);
	assert_int_equal(o[5].version, 2);
	assert_int_equal(o[5].state, CAT_INGESTED);
	struct cat_obj g;
	assert_int_equal(cat_obj_get(f->cat, "m/a", &g), 0);
	assert_int_equal(g.id, o[5].id);
	cat_obj_clear(&g);
	assert_int_equal(n_events(f->cat, "m/a"), 3);
	assert_int_equal(c1.pending - c0.pending, 2); /* m/d/e, m/z */
	assert_int_equal(c1.ingested - c0.ingested, 2);
	assert_int_equal(c1.bytes - c0.bytes, 102 + 105);
	assert_int_equal(c1.versions - c0.versions, 5);
}

/* --- two hosts on one catalog --- */

struct racer {
	struct cat *cat;
	int paths, rounds;
	int errors;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	for (int k = 0; k < r->rounds; k++)
		for (int i = 0; i < r->paths; i++) {
			char path[64], key[80];
			snprintf(path, sizeof path, "race/d%d/f%d", i % 7, i);
			snprintf(key, sizeof key, "lz/%s", path);
			/* Ingested adds: pending ones of the other host would be
			 * refused (test_two_hosts_in_flight). */
			struct cat_obj o = {.path = path, .bucket = "b", .key = key, .size = 1,
			                    .mode = S_IFREG | 0644, .source = "race",
			                    .state = CAT_INGESTED};
			if (cat_obj_add(r->cat, &o) != 0)
				r->errors++;
		}
	return NULL;
}

static int count_versions(const struct cat_obj *o, void *arg)
{
	int *v = arg;
	v[0]++;
	v[1] += o->current;
	v[2] = o->version > v[2] ? o->version : v[2];
	return 0;
}

/* Two handles, as two lzfs daemons would have, each with four threads, add
 * the same 150 paths three times each at once. Every add is a version:
 * 24 versions per path, numbered 1..24, exactly one current. */

/* A second handle on the fixture's database: f->cat is host A, the one
 * returned host B (the caller closes it). */
static struct cat *two_hosts(struct fx *f)
{
	struct cat *b;
	assert_int_equal(cat_open(f->file, CAT_CREATE, &b), 0);
	assert_int_equal(cat_set_owner(f->cat, "hostA:/spool"), 0);
	assert_int_equal(cat_set_owner(b, "hostB:/spool"), 0);
	return b;
}

static void test_two_hosts_same_paths(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	struct cat *b = two_hosts(f);
	enum { THREADS = 4, PATHS = 150, ROUNDS = 3 };
	pthread_t t[2 * THREADS];
	struct racer r[2 * THREADS];
	for (int i = 0; i < 2 * THREADS; i++) {
		r[i] = (struct racer){.cat = i % 2 ? b : f->cat, .paths = PATHS, .rounds = ROUNDS};
		assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
	}
	for (int i = 0; i < 2 * THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].errors, 0);
	}
	for (int i = 0; i < PATHS; i++) {
		char path[64];
		snprintf(path, sizeof path, "race/d%d/f%d", i % 7, i);
		int v[3] = {0};
		assert_int_equal(cat_obj_versions(b, path, count_versions, v), 0);
		assert_int_equal(v[0], 2 * THREADS * ROUNDS);
		assert_int_equal(v[1], 1);
		assert_int_equal(v[2], 2 * THREADS * ROUNDS);
	}
	assert_int_equal(url_int(f->file, "SELECT count(*) FROM (SELECT path FROM objects"
	                                  " WHERE current = 1 GROUP BY path HAVING count(*) > 1) x"),
	                 0);
	struct cat_status s;
	assert_int_equal(cat_status(b, &s), 0);
	assert_int_equal(s.versions, PATHS * 2 * THREADS * ROUNDS);
	assert_int_equal(s.count[CAT_INGESTED], PATHS);
	assert_int_equal(s.collections, 1 + 1 + 7);
	/* Each host's totals row holds its own share. */
	assert_int_equal(url_int(f->file, "SELECT count(DISTINCT owner) FROM totals"), 2);
	struct cat_stats st;
	cat_stats(b, &st);
	print_message("# host B: %llu requests in %llu transactions\n",
	              (unsigned long long)st.requests, (unsigned long long)st.transactions);
	assert_int_equal(cat_check(b), 0);
	cat_close(b);
}

/* A version in flight (pending or uploading) belongs to the host uploading
 * it to the path's key: another host's add or rename onto the path is
 * refused with -EBUSY until it is ingested, failed or deleted, while its
 * own host may add further versions. */
static int add_as(struct cat *cat, const char *path, int state, int64_t *id)
{
	char key[256];
	snprintf(key, sizeof key, "lz/%s", path);
	struct cat_obj o = {.path = (char *)path, .bucket = "b", .key = key, .size = 3,
	                    .mode = S_IFREG | 0644, .source = "mount", .state = state};
	if (state == CAT_INGESTED)
		memset(o.sha256, 'a', 64);
	int rc = cat_obj_add(cat, &o);
	if (id)
		*id = o.id;
	return rc;
}

static void test_two_hosts_in_flight(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	struct cat *b = two_hosts(f);
	int64_t a1, a2, b1, q;
	assert_int_equal(add_as(f->cat, "fl/p", CAT_PENDING, &a1), 0);
	assert_int_equal(add_as(b, "fl/p", CAT_PENDING, NULL), -EBUSY);
	assert_int_equal(add_as(b, "fl/p", CAT_INGESTED, NULL), -EBUSY);
	char key[] = "lz/fl/p";
	struct cat_obj many[2] = {
	    {.path = "fl/p", .bucket = "b", .key = key, .mode = S_IFREG | 0644},
	    {.path = "fl/other", .bucket = "b", .key = key, .mode = S_IFREG | 0644},
	};
	int res[2];
	assert_int_equal(cat_obj_add_many(b, many, 2, res), -EBUSY);
	assert_int_equal(res[0], -EBUSY);
	assert_int_equal(res[1], 0);
	/* A rename onto the path is refused too; the same host's is not. */
	assert_int_equal(add_as(b, "fl/q", CAT_INGESTED, &q), 0);
	assert_int_equal(cat_obj_rename(b, q, "fl/p", "lz/fl/p"), -EBUSY);
	/* Host A settles its own versions: a second one while the first waits. */
	assert_int_equal(add_as(f->cat, "fl/p", CAT_PENDING, &a2), 0);
	assert_int_equal(cat_obj_set_uploading(f->cat, a2, "up"), 0);
	assert_int_equal(cat_obj_set_deleted(f->cat, a1, "superseded"), 0);
	assert_int_equal(add_as(b, "fl/p", CAT_PENDING, NULL), -EBUSY);
	assert_int_equal(cat_obj_set_ingested(f->cat, a2, 3, NULL, "e"), 0);
	/* Nothing in flight: host B's turn, and now A waits. */
	assert_int_equal(add_as(b, "fl/p", CAT_PENDING, &b1), 0);
	assert_int_equal(add_as(f->cat, "fl/p", CAT_PENDING, NULL), -EBUSY);
	assert_int_equal(cat_obj_set_failed(b, b1, "s3 away"), 0);
	assert_int_equal(add_as(f->cat, "fl/p", CAT_INGESTED, NULL), 0);
	struct cat_obj g;
	assert_int_equal(cat_obj_get(b, "fl/p", &g), 0);
	assert_int_equal(g.version, 4);
	cat_obj_clear(&g);
	/* The refusal is logged naming the other host. */
	assert_int_equal(add_as(f->cat, "fl/r", CAT_PENDING, NULL), 0);
	char log[160];
	snprintf(log, sizeof log, "%s/stderr", f->dir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	int rc = add_as(b, "fl/r", CAT_PENDING, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_int_equal(rc, -EBUSY);
	FILE *fp = fopen(log, "r");
	assert_non_null(fp);
	char text[4096] = "";
	text[fread(text, 1, sizeof text - 1, fp)] = '\0';
	fclose(fp);
	print_message("# logged: %s", text);
	assert_non_null(strstr(text, "fl/r is being written by hostA:/spool"));
	assert_int_equal(url_int(f->file, "SELECT count(*) FROM objects WHERE path = 'fl/r'"), 1);
	assert_int_equal(cat_check(b), 0);
	cat_close(b);
}

/* Both hosts race to start a version of the same fresh paths: each path
 * ends with unfinished versions of one host only, the loser told -EBUSY. */
struct starter {
	struct cat *cat;
	int n, ok, busy, errors;
	int64_t ids[64];
};

static void *start_main(void *arg)
{
	struct starter *s = arg;
	for (int i = 0; i < s->n; i++) {
		char path[64];
		snprintf(path, sizeof path, "start/f%d", i);
		int rc = add_as(s->cat, path, CAT_PENDING, NULL);
		if (rc == 0)
			s->ok++;
		else if (rc == -EBUSY)
			s->busy++;
		else
			s->errors++;
	}
	return NULL;
}

static void test_two_hosts_start_race(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	struct cat *b = two_hosts(f);
	enum { THREADS = 3, PATHS = 60 };
	pthread_t t[2 * THREADS];
	struct starter s[2 * THREADS];
	for (int i = 0; i < 2 * THREADS; i++) {
		s[i] = (struct starter){.cat = i % 2 ? b : f->cat, .n = PATHS};
		assert_int_equal(pthread_create(&t[i], NULL, start_main, &s[i]), 0);
	}
	int ok = 0, busy = 0;
	for (int i = 0; i < 2 * THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].errors, 0);
		ok += s[i].ok;
		busy += s[i].busy;
	}
	print_message("# %d versions started, %d refused\n", ok, busy);
	assert_int_equal(ok + busy, 2 * THREADS * PATHS);
	assert_true(busy > 0);
	assert_int_equal(url_int(f->file, "SELECT count(*) FROM (SELECT path FROM objects"
	                                  " WHERE state IN (0, 1) GROUP BY path"
	                                  " HAVING count(DISTINCT owner) > 1) x"),
	                 0);
	assert_int_equal(url_int(f->file, "SELECT count(DISTINCT path) FROM objects"), PATHS);
	assert_int_equal(url_int(f->file, "SELECT count(*) FROM objects"), ok);
	assert_int_equal(cat_check(b), 0);
	cat_close(b);
}

static void url_sql(const char *url, const char *sql)
{
	PGconn *db = PQconnectdb(url);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(db, sql);
	ExecStatusType s = PQresultStatus(res);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(db);
}

/* A catalog of schema version 1 (rename without the owner) is upgraded by
 * the first writer that opens it. */
static void test_upgrade_v1(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	cat_close(f->cat);
	f->cat = NULL;
	url_sql(f->file, "DROP FUNCTION lzfs_w_rename(bigint, text, text, bigint, text);"
	                 "CREATE FUNCTION lzfs_w_rename(oid bigint, dst text, nkey text, now bigint,"
	                 " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
	                 " LANGUAGE sql AS $$ SELECT -5, NULL::bigint, NULL::int, NULL::bigint[],"
	                 " 'version 1'::text $$;"
	                 "UPDATE lzfs_catalog SET value = '1' WHERE name = 'schema_version'");
	struct cat *ro;
	assert_int_equal(cat_open(f->file, CAT_READONLY, &ro), 0); /* reads need no upgrade */
	cat_close(ro);
	assert_int_equal(url_int(f->file, "SELECT value::int FROM lzfs_catalog"
	                                  " WHERE name = 'schema_version'"),
	                 1);
	assert_int_equal(cat_open(f->file, CAT_CREATE, &f->cat), 0);
	assert_int_equal(url_int(f->file, "SELECT value::int FROM lzfs_catalog"
	                                  " WHERE name = 'schema_version'"),
	                 2);
	int64_t id = add_obj(f->cat, "up/a", 1);
	assert_int_equal(cat_obj_rename(f->cat, id, "up/b", NULL), 0);
	assert_int_equal(url_int(f->file, "SELECT count(*) FROM pg_proc WHERE proname = 'lzfs_w_rename'"),
	                 1);
}

/* Deletes and renames racing with adds on the same paths from two hosts. */
struct churn {
	struct cat *cat;
	int seed;
	int errors;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	unsigned seed = (unsigned)c->seed;
	for (int k = 0; k < 300; k++) {
		char path[64], to[64];
		snprintf(path, sizeof path, "churn/f%d", rand_r(&seed) % 10);
		snprintf(to, sizeof to, "churn/f%d", rand_r(&seed) % 10);
		struct cat_obj o;
		int rc;
		switch (rand_r(&seed) % 4) {
		case 0:
		case 1:
			o = (struct cat_obj){.path = path, .bucket = "b", .key = path, .size = 2,
			                     .mode = S_IFREG | 0644};
			rc = cat_obj_add(c->cat, &o);
			break;
		case 2:
			rc = cat_obj_get(c->cat, path, &o);
			if (rc == 0) {
				rc = cat_obj_set_deleted(c->cat, o.id, "churn");
				cat_obj_clear(&o);
			}
			break;
		default:
			rc = cat_obj_get(c->cat, path, &o);
			if (rc == 0) {
				rc = cat_obj_rename(c->cat, o.id, to, NULL);
				cat_obj_clear(&o);
			}
			break;
		}
		/* Losing a race is fine (the row moved on: -ENOENT, or
		 * deleted already: -EINVAL); anything else is not. */
		if (rc != 0 && rc != -ENOENT && rc != -EINVAL)
			c->errors++;
	}
	return NULL;
}

static void test_two_hosts_churn(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	struct cat *b;
	assert_int_equal(cat_open(f->file, CAT_CREATE, &b), 0);
	unsigned seed = test_seed();
	print_message("# seed %u\n", seed);
	pthread_t t[6];
	struct churn c[6];
	for (int i = 0; i < 6; i++) {
		c[i] = (struct churn){.cat = i % 2 ? b : f->cat, .seed = (int)(seed + i)};
		assert_int_equal(pthread_create(&t[i], NULL, churn_main, &c[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(c[i].errors, 0);
	}
	/* The invariant (current = newest live version) and the totals. */
	assert_int_equal(cat_check(b), 0);
	cat_close(b);
}

static void test_owner_recovery(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	struct cat *b = two_hosts(f);
	add_obj(f->cat, "own/a1", 1);
	int64_t a2 = add_obj(f->cat, "own/a2", 1);
	assert_int_equal(cat_obj_set_uploading(f->cat, a2, "up"), 0);
	add_obj(b, "own/b1", 1);
	int64_t a3 = add_obj(f->cat, "own/a3", 1);
	assert_int_equal(cat_obj_set_uploading(b, a3, NULL), 0); /* B may drive A's rows */
	assert_int_equal(cat_obj_set_ingested(b, a3, 1, "", "e"), 0);
	struct vlist ua = {0}, ub = {0};
	assert_int_equal(cat_unfinished(f->cat, ver_cb, &ua), 0);
	assert_int_equal(cat_unfinished(b, ver_cb, &ub), 0);
	assert_int_equal(ua.n, 2);
	assert_int_equal(ub.n, 1);
	/* A restarted daemon of host A (same owner) finds its rows again. */
	struct cat *a2h;
	assert_int_equal(cat_open(f->file, CAT_CREATE, &a2h), 0);
	assert_int_equal(cat_set_owner(a2h, "hostA:/spool"), 0);
	struct vlist ua2 = {0};
	assert_int_equal(cat_unfinished(a2h, ver_cb, &ua2), 0);
	assert_int_equal(ua2.n, 2);
	assert_int_equal(cat_set_owner(a2h, ""), -EINVAL);
	cat_close(a2h);
	struct cat_status s;
	assert_int_equal(cat_status(b, &s), 0);
	assert_int_equal(s.count[CAT_PENDING], 2);
	assert_int_equal(s.count[CAT_UPLOADING], 1);
	assert_int_equal(s.count[CAT_INGESTED], 1);
	cat_close(b);
}

/* The server drops every connection of the catalog: the next calls
 * reconnect, reads and writes. */
static void test_reconnect(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	add_obj(f->cat, "rc/a", 1);
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "rc/a", &o), 0);
	cat_obj_clear(&o);
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
	         " AND pid <> pg_backend_pid()",
	         strrchr(f->file, '/') + 1);
	assert_true(url_int(pg_url, sql) >= 2); /* the writer and a reader */
	usleep(100000);
	add_obj(f->cat, "rc/b", 1); /* asserts the add succeeded */
	assert_int_equal(cat_obj_get(f->cat, "rc/a", &o), 0);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_get(f->cat, "rc/b", &o), 0);
	cat_obj_clear(&o);
}

/* The connection dies while the COMMIT runs (a deferred trigger makes the
 * first commit slow; the backend is terminated meanwhile): the writer asks
 * the server what became of the transaction, sends the batch again, and
 * the file is registered once. */
static void *add_lost(void *arg)
{
	struct cat *cat = arg;
	add_obj(cat, "lost/a", 5);
	return NULL;
}

static void test_connection_lost_in_commit(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	add_obj(f->cat, "lost/warm", 1); /* statements prepared, collection made */
	PGconn *db = PQconnectdb(f->file);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(
	    db, "CREATE SEQUENCE once;"
	        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	        " IF nextval('once') = 1 THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;"
	        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON events DEFERRABLE INITIALLY"
	        " DEFERRED FOR EACH ROW EXECUTE FUNCTION slow()");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, add_lost, f->cat), 0);
	int killed = 0;
	for (int i = 0; i < 100 && !killed; i++) {
		usleep(50000);
		res = PQexec(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
		                 " WHERE query = 'COMMIT' AND state = 'active' AND pid <>"
		                 " pg_backend_pid()");
		killed = PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) > 0;
		PQclear(res);
	}
	pthread_join(t, NULL); /* add_obj asserted the add returned 0 */
	assert_true(killed);
	res = PQexec(db, "SELECT count(*) FROM objects WHERE path = 'lost/a'");
	assert_int_equal(atoi(PQgetvalue(res, 0, 0)), 1);
	PQclear(res);
	PQfinish(db);
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "lost/a", &o), 0);
	assert_int_equal(o.version, 1);
	cat_obj_clear(&o);
}

/* A password in the URL reaches no log line, even a failed connection's. */
static void test_password_never_logged(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	char buf[256];
	assert_string_equal(cat_redact("postgresql://u:secret@h:5432/db", buf, sizeof buf),
	                    "postgresql://u:***@h:5432/db");
	assert_string_equal(cat_redact("postgres://h/db?sslmode=require&password=secret&x=1", buf,
	                               sizeof buf),
	                    "postgres://h/db?sslmode=require&password=***&x=1");
	assert_string_equal(cat_redact("postgresql://u@h/db", buf, sizeof buf),
	                    "postgresql://u@h/db");
	assert_string_equal(cat_redact("/var/lib/lzfs/catalog.db", buf, sizeof buf),
	                    "/var/lib/lzfs/catalog.db");
	char bad[256], log[160];
	snprintf(bad, sizeof bad, "%s", f->file);
	char *pw = strstr(bad, ":lzfstest@");
	assert_non_null(pw);
	memcpy(pw, ":s3kr1tpw@", 10);
	snprintf(log, sizeof log, "%s/stderr", f->dir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	int old = log_get_level();
	log_set_level(LZ_DEBUG);
	struct cat *c = NULL;
	int rc = cat_open(bad, CAT_READONLY, &c);
	/* A good password with a bad option value, logged with the URL too. */
	log_set_level(old);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_int_equal(rc, -EACCES);
	FILE *fp = fopen(log, "r");
	assert_non_null(fp);
	char text[4096] = "";
	size_t n = fread(text, 1, sizeof text - 1, fp);
	text[n] = '\0';
	fclose(fp);
	print_message("# logged: %s", text);
	assert_null(strstr(text, "s3kr1tpw"));
	assert_non_null(strstr(text, ":***@"));
}

static void test_foreign_database(void **state)
{
	if (skipped())
		skip();
	struct fx *f = *state;
	char url[256];
	struct cat *c = NULL;
	/* No such database. */
	pg_url_for("nosuchdb", url, sizeof url);
	assert_int_equal(cat_open(url, CAT_CREATE, &c), -ENOENT);
	/* An empty database is not created read-only. */
	admin_sql("CREATE DATABASE empty1");
	pg_url_for("empty1", url, sizeof url);
	assert_int_equal(cat_open(url, CAT_READONLY, &c), -ENOENT);
	assert_int_equal(cat_open(url, 0, &c), -ENOENT);
	/* Someone else's tables are never touched. */
	admin_sql("CREATE DATABASE foreign1");
	pg_url_for("foreign1", url, sizeof url);
	PGconn *db = PQconnectdb(url);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PQclear(PQexec(db, "CREATE TABLE objects(x int)"));
	PQfinish(db);
	assert_int_equal(cat_open(url, CAT_CREATE, &c), -ENOTSUP);
	/* A newer schema is refused, an older marker too. */
	url_int(f->file, "SELECT 1");
	db = PQconnectdb(f->file);
	PQclear(PQexec(db, "UPDATE lzfs_catalog SET value = '99' WHERE name = 'schema_version'"));
	assert_int_equal(cat_open(f->file, CAT_READONLY, &c), -ENOTSUP);
	PQclear(PQexec(db, "UPDATE lzfs_catalog SET value = '1' WHERE name = 'schema_version'"));
	PQclear(PQexec(db, "UPDATE lzfs_catalog SET value = 'x' WHERE name = 'format'"));
	assert_int_equal(cat_open(f->file, CAT_CREATE, &c), -ENOTSUP);
	PQclear(PQexec(db, "UPDATE lzfs_catalog SET value = 'lzfs catalog' WHERE name = 'format'"));
	PQfinish(db);
	/* Several daemons starting at once on a new database create it once. */
	admin_sql("CREATE DATABASE fresh1");
	pg_url_for("fresh1", url, sizeof url);
	struct cat *cs[4] = {0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(cat_open(url, CAT_CREATE, &cs[i]), 0);
	for (int i = 0; i < 4; i++)
		cat_close(cs[i]);
	assert_int_equal(url_int(url, "SELECT count(*) FROM collections"), 1);
}

/* A name that is not valid in a UTF-8 database fails alone: the other
 * requests of its batch commit. */
struct utf_arg {
	struct cat *c;
	int i;
	int rc;
};

static void *utf_main(void *arg)
{
	struct utf_arg *a = arg;
	char path[64];
	if (a->i == 7)
		snprintf(path, sizeof path, "u/bad\xff\xfe%d", a->i);
	else
		snprintf(path, sizeof path, "u/ok%d", a->i);
	struct cat_obj o = {.path = path, .bucket = "b", .key = path, .mode = S_IFREG | 0644};
	a->rc = cat_obj_add(a->c, &o);
	return NULL;
}

static void test_failed_request_alone(void **state)
{
	if (skipped())
		skip();
	(void)state;
	admin_sql("CREATE DATABASE utf1 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
	          "TEMPLATE template0");
	char url[256];
	pg_url_for("utf1", url, sizeof url);
	struct cat *c;
	assert_int_equal(cat_open(url, CAT_CREATE, &c), 0);
	enum { N = 40 };
	pthread_t t[N];
	struct utf_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct utf_arg){c, i, 0};
		assert_int_equal(pthread_create(&t[i], NULL, utf_main, &a[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, i == 7 ? -EILSEQ : 0);
	}
	struct cat_status s;
	assert_int_equal(cat_status(c, &s), 0);
	assert_int_equal(s.versions, N - 1);
	assert_int_equal(cat_check(c), 0);
	cat_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(pg_test_transitions, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_transition_fields, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_add_ingested, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_parts, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_versions, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_delete_promotes, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_rename, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_meta, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_find_odd_paths, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_list_and_collections, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_invalid_paths, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_events, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_status, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_readonly, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_group_commit, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(pg_test_add_many_concurrent, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_add_many_mixed_pg, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_two_hosts_same_paths, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_two_hosts_in_flight, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_two_hosts_start_race, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_v1, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_two_hosts_churn, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_owner_recovery, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_connection_lost_in_commit, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_password_never_logged, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_database, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_failed_request_alone, pg_setup, pg_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
