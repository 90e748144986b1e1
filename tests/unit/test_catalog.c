/* test_catalog.c - the catalog against real SQLite files, real threads and
 * real child processes (a reader in another process, a writer killed with
 * SIGKILL). Seeds are printed; LZFS_TEST_SEED=N repeats a run. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog.h"
#include "log.h"

struct fx {
	char dir[64];
	char file[128];
	struct cat *cat;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	strcpy(f->dir, "/tmp/lzfs-cat.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->file, sizeof f->file, "%s/catalog.db", f->dir);
	if (cat_open(f->file, CAT_CREATE, &f->cat) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	/* Every test leaves a catalog whose invariants and totals hold. */
	if (f->cat && cat_check(f->cat) != 0) {
		print_error("cat_check failed on %s\n", f->file);
		return -1;
	}
	cat_close(f->cat);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static unsigned test_seed(void)
{
	const char *s = getenv("LZFS_TEST_SEED");
	return s ? (unsigned)strtoul(s, NULL, 0) : (unsigned)time(NULL) ^ (unsigned)getpid();
}

static int64_t add_obj(struct cat *cat, const char *path, int64_t size)
{
	struct cat_obj o = {0};
	char key[4200];
	snprintf(key, sizeof key, "lz/%s", path);
	o.path = (char *)path;
	o.bucket = "bucket";
	o.key = key;
	o.size = size;
	o.mode = S_IFREG | 0644;
	o.uid = 1000;
	o.gid = 1000;
	o.mtime_ns = 1700000000LL * 1000000000LL;
	o.source = "mount";
	int rc = cat_obj_add(cat, &o);
	assert_int_equal(rc, 0);
	assert_true(o.id > 0);
	return o.id;
}

static int get_state(struct cat *cat, int64_t id)
{
	struct cat_obj o;
	assert_int_equal(cat_obj_get_id(cat, id, &o), 0);
	int s = o.state;
	cat_obj_clear(&o);
	return s;
}

/* A new object driven to state s along legal transitions. */
static int64_t obj_in_state(struct cat *cat, const char *path, int s)
{
	int64_t id = add_obj(cat, path, 10);
	switch (s) {
	case CAT_PENDING:
		break;
	case CAT_UPLOADING:
		assert_int_equal(cat_obj_set_uploading(cat, id, "up-1"), 0);
		break;
	case CAT_INGESTED:
		assert_int_equal(cat_obj_set_uploading(cat, id, "up-1"), 0);
		assert_int_equal(cat_obj_set_ingested(cat, id, 10, "", "etag"), 0);
		break;
	case CAT_FAILED:
		assert_int_equal(cat_obj_set_failed(cat, id, "boom"), 0);
		break;
	case CAT_DELETED:
		assert_int_equal(cat_obj_set_deleted(cat, id, "gone"), 0);
		break;
	}
	assert_int_equal(get_state(cat, id), s);
	return id;
}

static int to_state(struct cat *cat, int64_t id, int s)
{
	switch (s) {
	case CAT_PENDING:
		return cat_obj_set_pending(cat, id, "retry");
	case CAT_UPLOADING:
		return cat_obj_set_uploading(cat, id, "up-2");
	case CAT_INGESTED:
		return cat_obj_set_ingested(cat, id, 10, "", "etag");
	case CAT_FAILED:
		return cat_obj_set_failed(cat, id, "error");
	case CAT_DELETED:
		return cat_obj_set_deleted(cat, id, "reason");
	}
	return -999;
}

struct evlist {
	int n;
	char kinds[64][24];
	char paths[64][64];
};

static int ev_cb(const struct cat_event *e, void *arg)
{
	struct evlist *l = arg;
	if (l->n < 64) {
		snprintf(l->kinds[l->n], sizeof l->kinds[0], "%s", e->kind);
		snprintf(l->paths[l->n], sizeof l->paths[0], "%s", e->path ? e->path : "");
	}
	l->n++;
	return 0;
}

static int n_events(struct cat *cat, const char *path)
{
	struct evlist l = {0};
	assert_int_equal(cat_events(cat, path, 0, ev_cb, &l), 0);
	return l.n;
}

static void test_transitions(void **state)
{
	struct fx *f = *state;
	static const int legal[5][5] = {
	    [CAT_PENDING] = {[CAT_UPLOADING] = 1, [CAT_FAILED] = 1, [CAT_DELETED] = 1},
	    [CAT_UPLOADING] =
	        {[CAT_PENDING] = 1, [CAT_INGESTED] = 1, [CAT_FAILED] = 1, [CAT_DELETED] = 1},
	    [CAT_INGESTED] = {[CAT_DELETED] = 1},
	    [CAT_FAILED] = {[CAT_PENDING] = 1, [CAT_DELETED] = 1},
	};
	int nlegal = 0, nillegal = 0;
	for (int from = 0; from < 5; from++) {
		for (int to = 0; to < 5; to++) {
			char path[64];
			snprintf(path, sizeof path, "t/%s-%s", cat_state_name(from),
			         cat_state_name(to));
			int64_t id = obj_in_state(f->cat, path, from);
			int before = n_events(f->cat, path);
			int rc = to_state(f->cat, id, to);
			int after = n_events(f->cat, path);
			if (legal[from][to]) {
				assert_int_equal(rc, 0);
				assert_int_equal(get_state(f->cat, id), to);
				assert_true(after > before); /* the transition's event */
				nlegal++;
			} else {
				if (rc != -EINVAL)
					fail_msg("%s -> %s gave %d", cat_state_name(from),
					         cat_state_name(to), rc);
				assert_int_equal(get_state(f->cat, id), from);
				assert_int_equal(after, before);
				nillegal++;
			}
		}
	}
	assert_int_equal(nlegal, 10);
	assert_int_equal(nillegal, 15);
	assert_int_equal(cat_obj_set_uploading(f->cat, 999999, NULL), -ENOENT);
	assert_int_equal(cat_obj_set_ingested(f->cat, 1, 1, "not-hex", ""), -EINVAL);
	assert_int_equal(cat_check(f->cat), 0);
}

static void test_transition_fields(void **state)
{
	struct fx *f = *state;
	int64_t id = add_obj(f->cat, "a/b.dat", 100);
	assert_int_equal(cat_obj_set_uploading(f->cat, id, "upload-xyz"), 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 1, "e1", 50), 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 2, "e2", 50), 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 2, "e2b", 50), 0); /* retried part */
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "a/b.dat", &o), 0);
	assert_string_equal(o.upload_id, "upload-xyz");
	assert_int_equal(o.parts_done, 2);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_failed(f->cat, id, "network down"), 0);
	assert_int_equal(cat_obj_get(f->cat, "a/b.dat", &o), 0);
	assert_string_equal(o.last_error, "network down");
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_pending(f->cat, id, "retry"), 0);
	assert_int_equal(cat_obj_get(f->cat, "a/b.dat", &o), 0);
	assert_null(o.last_error);
	assert_null(o.upload_id);
	assert_int_equal(o.parts_done, 0);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_uploading(f->cat, id, NULL), 0);
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	assert_int_equal(cat_obj_set_ingested(f->cat, id, 123, sha, "abc-2"), 0);
	assert_int_equal(cat_obj_get(f->cat, "a/b.dat", &o), 0);
	assert_int_equal(o.state, CAT_INGESTED);
	assert_int_equal(o.size, 123);
	assert_string_equal(o.sha256, sha);
	assert_string_equal(o.etag, "abc-2");
	assert_true(o.ingest_ns >= o.ctime_ns && o.ingest_ns > 0);
	assert_string_equal(o.key, "lz/a/b.dat");
	assert_string_equal(o.bucket, "bucket");
	assert_string_equal(o.source, "mount");
	assert_int_equal(o.mode, S_IFREG | 0644);
	assert_int_equal(o.version, 1);
	assert_int_equal(o.current, 1);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_part_done(f->cat, id, 3, "e3", 1), -EINVAL); /* not uploading */
	assert_int_equal(cat_obj_set_attr(f->cat, id, S_IFREG | 0600, 1, 2, 42), 0);
	assert_int_equal(cat_obj_get_id(f->cat, id, &o), 0);
	assert_int_equal(o.mode, S_IFREG | 0600);
	assert_int_equal(o.uid, 1);
	assert_int_equal(o.gid, 2);
	assert_int_equal(o.mtime_ns, 42);
	assert_int_equal(o.state, CAT_INGESTED);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_attr(f->cat, 987654, 0, 0, 0, 0), -ENOENT);
}

/* A small file already sent and verified: registered as ingested by the
 * add itself, one request and one commit. */
static void test_add_ingested(void **state)
{
	struct fx *f = *state;
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	struct cat_obj o = {.path = "small/f",
	                    .bucket = "b",
	                    .key = "k/small/f",
	                    .size = 42,
	                    .mode = S_IFREG | 0644,
	                    .source = "mount",
	                    .state = CAT_INGESTED};
	strcpy(o.sha256, sha);
	strcpy(o.etag, "abc-1");
	struct cat_stats s0, s1;
	cat_stats(f->cat, &s0);
	assert_int_equal(cat_obj_add(f->cat, &o), 0);
	cat_stats(f->cat, &s1);
	assert_int_equal(s1.requests - s0.requests, 1);
	assert_int_equal(s1.transactions - s0.transactions, 1);
	assert_int_equal(o.state, CAT_INGESTED);
	struct cat_obj g;
	assert_int_equal(cat_obj_get(f->cat, "small/f", &g), 0);
	assert_int_equal(g.id, o.id);
	assert_int_equal(g.state, CAT_INGESTED);
	assert_int_equal(g.size, 42);
	assert_string_equal(g.sha256, sha);
	assert_string_equal(g.etag, "abc-1");
	assert_true(g.ingest_ns > 0 && g.ingest_ns >= g.ctime_ns);
	assert_null(g.upload_id);
	cat_obj_clear(&g);
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "small/f", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.kinds[0], "add");
	assert_string_equal(ev.kinds[1], "ingested");
	struct cat_status st;
	assert_int_equal(cat_status(f->cat, &st), 0);
	assert_int_equal(st.count[CAT_INGESTED], 1);
	assert_int_equal(st.count[CAT_PENDING], 0);
	assert_int_equal(st.bytes_ingested, 42);
	/* Without a checksum is allowed (unknown), a malformed one is not,
	 * and no other starting state. */
	struct cat_obj n = {.path = "small/g", .bucket = "b", .key = "k/g", .state = CAT_INGESTED};
	assert_int_equal(cat_obj_add(f->cat, &n), 0);
	strcpy(n.sha256, "not hex");
	n.path = "small/h";
	assert_int_equal(cat_obj_add(f->cat, &n), -EINVAL);
	n.sha256[0] = 0;
	for (int s = CAT_UPLOADING; s <= CAT_DELETED; s++) {
		if (s == CAT_INGESTED)
			continue;
		n.state = s;
		assert_int_equal(cat_obj_add(f->cat, &n), -EINVAL);
	}
	assert_int_equal(cat_obj_get(f->cat, "small/h", &g), -ENOENT);
	/* It then lives like any ingested version. */
	assert_int_equal(cat_obj_set_uploading(f->cat, o.id, NULL), -EINVAL);
	int64_t v2 = add_obj(f->cat, "small/f", 7);
	assert_int_equal(cat_obj_set_deleted(f->cat, v2, "bad"), 0);
	assert_int_equal(cat_obj_get(f->cat, "small/f", &g), 0);
	assert_int_equal(g.id, o.id);
	cat_obj_clear(&g);
	assert_int_equal(cat_obj_set_deleted(f->cat, o.id, NULL), 0);
}

static int part_cb(int n, const char *etag, int64_t size, void *arg)
{
	char *buf = arg;
	char one[64];
	snprintf(one, sizeof one, "%d:%s:%lld;", n, etag, (long long)size);
	strcat(buf, one);
	return 0;
}

static void test_parts(void **state)
{
	struct fx *f = *state;
	int64_t id = add_obj(f->cat, "p.dat", 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 1, "x", 5), -EINVAL); /* pending */
	assert_int_equal(cat_obj_set_uploading(f->cat, id, "u"), 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 0, "x", 5), -EINVAL);
	assert_int_equal(cat_obj_part_done(f->cat, id, 10001, "x", 5), -EINVAL);
	assert_int_equal(cat_obj_part_done(f->cat, id, 3, "c", 7), 0);
	assert_int_equal(cat_obj_part_done(f->cat, id, 1, "a", 5), 0);
	char buf[256] = "";
	assert_int_equal(cat_obj_parts(f->cat, id, part_cb, buf), 0);
	assert_string_equal(buf, "1:a:5;3:c:7;");
	/* Restart from the spool: the parts of the aborted upload go. */
	assert_int_equal(cat_obj_set_pending(f->cat, id, "aborted"), 0);
	buf[0] = 0;
	assert_int_equal(cat_obj_parts(f->cat, id, part_cb, buf), 0);
	assert_string_equal(buf, "");
	assert_int_equal(cat_obj_part_done(f->cat, 424242, 1, "x", 5), -ENOENT);
}

struct vlist {
	int n;
	int versions[16];
	int current[16];
	int states[16];
	int64_t ids[16];
};

static int ver_cb(const struct cat_obj *o, void *arg)
{
	struct vlist *l = arg;
	l->versions[l->n] = o->version;
	l->current[l->n] = o->current;
	l->states[l->n] = o->state;
	l->ids[l->n] = o->id;
	l->n++;
	return 0;
}

static void test_versions(void **state)
{
	struct fx *f = *state;
	int64_t id1 = add_obj(f->cat, "d/file", 1);
	assert_int_equal(cat_meta_set(f->cat, "d/file", "project", "x1", NULL), 0);
	int64_t id2 = add_obj(f->cat, "d/file", 2);
	assert_true(id2 != id1);
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "d/file", &o), 0);
	assert_int_equal(o.id, id2);
	assert_int_equal(o.version, 2);
	assert_int_equal(o.size, 2);
	cat_obj_clear(&o);
	struct vlist l = {0};
	assert_int_equal(cat_obj_versions(f->cat, "d/file", ver_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.versions[0], 2);
	assert_int_equal(l.current[0], 1);
	assert_int_equal(l.versions[1], 1);
	assert_int_equal(l.current[1], 0);
	/* The old version keeps its data and key; metadata was copied. */
	assert_int_equal(cat_obj_get_id(f->cat, id1, &o), 0);
	assert_int_equal(o.size, 1);
	assert_int_equal(o.current, 0);
	cat_obj_clear(&o);
	struct cat_query q;
	cat_query_init(&q);
	q.meta_key = "project";
	q.meta_value = "x1";
	q.all_versions = 1;
	struct vlist m = {0};
	assert_int_equal(cat_find(f->cat, &q, ver_cb, &m), 0);
	assert_int_equal(m.n, 2);
	assert_int_equal(cat_obj_versions(f->cat, "d/nothing", ver_cb, &l), -ENOENT);
	assert_int_equal(cat_obj_get(f->cat, "d/nothing", &o), -ENOENT);
}

/* Deleting the current version makes the newest live one current again;
 * when every version is deleted the path has no current version. */
static void test_delete_promotes(void **state)
{
	struct fx *f = *state;
	int64_t v1 = add_obj(f->cat, "x", 1);
	int64_t v2 = add_obj(f->cat, "x", 2);
	int64_t v3 = add_obj(f->cat, "x", 3);
	assert_int_equal(cat_obj_set_deleted(f->cat, v2, "old one"), 0); /* not current */
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "x", &o), 0);
	assert_int_equal(o.id, v3);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_deleted(f->cat, v3, "bad"), 0);
	assert_int_equal(cat_obj_get(f->cat, "x", &o), 0);
	assert_int_equal(o.id, v1);
	assert_int_equal(o.current, 1);
	cat_obj_clear(&o);
	/* A new add after deletions gets a fresh version number. */
	int64_t v4 = add_obj(f->cat, "x", 4);
	assert_int_equal(cat_obj_get(f->cat, "x", &o), 0);
	assert_int_equal(o.id, v4);
	assert_int_equal(o.version, 4);
	cat_obj_clear(&o);
	assert_int_equal(cat_obj_set_deleted(f->cat, v4, NULL), 0);
	assert_int_equal(cat_obj_set_deleted(f->cat, v1, NULL), 0);
	assert_int_equal(cat_obj_get(f->cat, "x", &o), -ENOENT);
	assert_int_equal(cat_check(f->cat), 0);
}

struct race {
	struct cat *cat;
	int n;
	int errors;
};

static void *race_add(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < r->n; i++) {
		struct cat_obj o = {
		    .path = "same/path", .bucket = "b", .key = "k", .mode = S_IFREG | 0644};
		if (cat_obj_add(r->cat, &o) != 0)
			__atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_exactly_one_current(void **state)
{
	struct fx *f = *state;
	/* Racing registrations of one path: distinct versions, one current. */
	pthread_t t[8];
	struct race r = {f->cat, 25, 0};
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, race_add, &r);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.errors, 0);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT count(*), count(DISTINCT version),"
	                                    " sum(current), max(version) FROM objects"
	                                    " WHERE path = 'same/path'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 200);
	assert_int_equal(sqlite3_column_int(st, 1), 200);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	assert_int_equal(sqlite3_column_int(st, 3), 200);
	sqlite3_finalize(st);
	/* The schema itself refuses a second current version. */
	int rc = sqlite3_exec(db,
	                      "UPDATE objects SET current = 1 WHERE path = 'same/path'"
	                      " AND version = 1",
	                      NULL, NULL, NULL);
	assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
	rc = sqlite3_exec(db,
	                  "INSERT INTO objects(path, version, bucket, key, mode, uid, gid,"
	                  " mtime_ns, ctime_ns, state, current) VALUES('same/path', 999, 'b', 'k',"
	                  " 0, 0, 0, 0, 0, 0, 1)",
	                  NULL, NULL, NULL);
	assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
	/* Events are append-only. */
	rc = sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL);
	assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
	sqlite3_close(db);
}

static void test_rename(void **state)
{
	struct fx *f = *state;
	int64_t a = add_obj(f->cat, "in/a", 1);
	assert_int_equal(cat_meta_set(f->cat, "in/a", "k", "v", NULL), 0);
	assert_int_equal(cat_obj_rename(f->cat, a, "out/deep/b", "lz/out/deep/b"), 0);
	struct cat_obj o;
	assert_int_equal(cat_obj_get(f->cat, "in/a", &o), -ENOENT);
	assert_int_equal(cat_obj_get(f->cat, "out/deep/b", &o), 0);
	assert_int_equal(o.id, a);
	assert_string_equal(o.key, "lz/out/deep/b");
	assert_int_equal(o.version, 1);
	cat_obj_clear(&o);
	struct cat_coll cc;
	assert_int_equal(cat_coll_get(f->cat, "out/deep", &cc), 0);
	cat_coll_clear(&cc);
	/* Metadata moves with the row. */
	struct cat_query q;
	cat_query_init(&q);
	q.meta_key = "k";
	struct vlist l = {0};
	assert_int_equal(cat_find(f->cat, &q, ver_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.ids[0], a);

	/* Over an existing current path: that one becomes an older version. */
	int64_t c1 = add_obj(f->cat, "c", 1);
	int64_t c2 = add_obj(f->cat, "c", 2);
	int64_t d = add_obj(f->cat, "d", 3);
	assert_int_equal(cat_obj_rename(f->cat, d, "c", NULL), 0);
	assert_int_equal(cat_obj_get(f->cat, "c", &o), 0);
	assert_int_equal(o.id, d);
	assert_int_equal(o.version, 3);
	assert_string_equal(o.key, "lz/d"); /* NULL key: unchanged */
	cat_obj_clear(&o);
	struct vlist v = {0};
	assert_int_equal(cat_obj_versions(f->cat, "c", ver_cb, &v), 0);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.ids[0], d);
	assert_int_equal(v.ids[1], c2);
	assert_int_equal(v.current[1], 0);
	assert_int_equal(v.ids[2], c1);
	assert_int_equal(cat_obj_get(f->cat, "d", &o), -ENOENT);

	/* Renaming the current version away uncovers the older one. */
	assert_int_equal(cat_obj_rename(f->cat, d, "e", "lz/e"), 0);
	assert_int_equal(cat_obj_get(f->cat, "c", &o), 0);
	assert_int_equal(o.id, c2);
	cat_obj_clear(&o);
	/* The renamed object's history follows it. */
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "e", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 3);
	assert_string_equal(ev.kinds[0], "add");
	assert_string_equal(ev.paths[0], "d");
	assert_string_equal(ev.kinds[1], "rename");
	assert_string_equal(ev.kinds[2], "rename");
	assert_string_equal(ev.paths[2], "e");

	/* Same path: only the key changes. */
	assert_int_equal(cat_obj_rename(f->cat, d, "e", "lz/e2"), 0);
	assert_int_equal(cat_obj_get(f->cat, "e", &o), 0);
	assert_string_equal(o.key, "lz/e2");
	assert_int_equal(o.version, 1);
	cat_obj_clear(&o);
	/* Refusals. */
	assert_int_equal(cat_obj_rename(f->cat, d, "out", NULL), -EISDIR);
	assert_int_equal(cat_obj_rename(f->cat, d, "/abs", NULL), -EINVAL);
	assert_int_equal(cat_obj_rename(f->cat, 55555, "z", NULL), -ENOENT);
	assert_int_equal(cat_obj_set_deleted(f->cat, c1, NULL), 0);
	assert_int_equal(cat_obj_rename(f->cat, c1, "z", NULL), -EINVAL);
	assert_int_equal(cat_check(f->cat), 0);
}

struct avus {
	int n;
	char s[512];
};

static int avu_cb(const struct cat_avu *a, void *arg)
{
	struct avus *l = arg;
	char one[128];
	snprintf(one, sizeof one, "%s=%s[%s];", a->name, a->value, a->unit ? a->unit : "");
	strcat(l->s, one);
	l->n++;
	return 0;
}

static void test_meta(void **state)
{
	struct fx *f = *state;
	add_obj(f->cat, "m/one", 1);
	add_obj(f->cat, "m/two", 1);
	assert_int_equal(cat_meta_set(f->cat, "m/one", "temp", "20", "C"), 0);
	assert_int_equal(cat_meta_set(f->cat, "m/one", "sample", "s1", NULL), 0);
	assert_int_equal(cat_meta_set(f->cat, "m/one", "temp", "21", "K"), 0); /* replace */
	assert_int_equal(cat_meta_set(f->cat, "m/two", "sample", "s2", NULL), 0);
	assert_int_equal(cat_meta_set(f->cat, "m", "owner", "lab", NULL), 0); /* collection */
	assert_int_equal(cat_meta_set(f->cat, "", "site", "x", NULL), 0);     /* root */
	struct avus l = {0};
	assert_int_equal(cat_meta_list(f->cat, "m/one", avu_cb, &l), 0);
	assert_string_equal(l.s, "sample=s1[];temp=21[K];");
	memset(&l, 0, sizeof l);
	assert_int_equal(cat_meta_list(f->cat, "m", avu_cb, &l), 0);
	assert_string_equal(l.s, "owner=lab[];");
	memset(&l, 0, sizeof l);
	assert_int_equal(cat_meta_list(f->cat, "", avu_cb, &l), 0);
	assert_string_equal(l.s, "site=x[];");

	struct cat_query q;
	cat_query_init(&q);
	q.meta_key = "sample";
	struct vlist v = {0};
	assert_int_equal(cat_find(f->cat, &q, ver_cb, &v), 0);
	assert_int_equal(v.n, 2);
	q.meta_value = "s2";
	memset(&v, 0, sizeof v);
	assert_int_equal(cat_find(f->cat, &q, ver_cb, &v), 0);
	assert_int_equal(v.n, 1);

	assert_int_equal(cat_meta_rm(f->cat, "m/one", "temp"), 0);
	assert_int_equal(cat_meta_rm(f->cat, "m/one", "temp"), -ENOENT);
	assert_int_equal(cat_meta_rm(f->cat, "m/nope", "temp"), -ENOENT);
	assert_int_equal(cat_meta_set(f->cat, "m/nope", "a", "b", NULL), -ENOENT);
	assert_int_equal(cat_meta_set(f->cat, "m/one", "", "b", NULL), -EINVAL);
	memset(&l, 0, sizeof l);
	assert_int_equal(cat_meta_list(f->cat, "m/one", avu_cb, &l), 0);
	assert_string_equal(l.s, "sample=s1[];");
	assert_int_equal(cat_meta_list(f->cat, "m/nope", avu_cb, &l), -ENOENT);
	/* Each change is in the audit log. */
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "m/one", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 5); /* add, 3 sets, 1 rm */
	assert_string_equal(ev.kinds[4], "meta-rm");
	memset(&ev, 0, sizeof ev);
	assert_int_equal(cat_events(f->cat, "m", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 2); /* mkdir, meta-set */
}

/* Names with every awkward byte a POSIX name may hold. */
static const char *const odd[] = {
    "odd/new\nline.dat",
    "odd/tab\tname.dat",
    "odd/back\\slash.dat",
    "odd/star*.dat",
    "odd/[br].dat",
    "odd/per%cent_.dat",
    "odd/quote\"'.dat",
    "odd/\xff\xfe invalid utf8.dat",
    "odd/\xc3\xa9t\xc3\xa9.dat",
    "odd/sub/deep.dat",
    "odd/ space .txt",
    "odd.x/sib.dat",
    "odd0/sib.dat",
    "oddity/sib.dat",
    "odd/-dash.txt",
};
#define NODD (int)(sizeof odd / sizeof odd[0])

struct names {
	int n;
	char *p[64];
};

static int names_cb(const struct cat_obj *o, void *arg)
{
	struct names *l = arg;
	l->p[l->n++] = strdup(o->path);
	return 0;
}

static void names_free(struct names *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->p[i]);
	memset(l, 0, sizeof *l);
}

static int find_n(struct cat *cat, const struct cat_query *q, struct names *l)
{
	names_free(l);
	assert_int_equal(cat_find(cat, q, names_cb, l), 0);
	return l->n;
}

static int has(const struct names *l, const char *p)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->p[i], p) == 0)
			return 1;
	return 0;
}

static void test_find_odd_paths(void **state)
{
	struct fx *f = *state;
	char longname[300];
	memcpy(longname, "odd/", 4);
	memset(longname + 4, 'L', 255);
	longname[259] = 0;
	int64_t ids[NODD];
	for (int i = 0; i < NODD; i++)
		ids[i] = add_obj(f->cat, odd[i], 100 * (i + 1));
	int64_t lid = add_obj(f->cat, longname, 5);
	/* Exact bytes back. */
	for (int i = 0; i < NODD; i++) {
		struct cat_obj o;
		assert_int_equal(cat_obj_get(f->cat, odd[i], &o), 0);
		assert_int_equal(o.id, ids[i]);
		assert_memory_equal(o.path, odd[i], strlen(odd[i]) + 1);
		cat_obj_clear(&o);
	}
	struct cat_obj lo;
	assert_int_equal(cat_obj_get(f->cat, longname, &lo), 0);
	assert_int_equal(lo.id, lid);
	assert_int_equal(strlen(lo.path), 259);
	cat_obj_clear(&lo);

	struct cat_query q;
	struct names l = {0};
	cat_query_init(&q);
	q.under = "odd";
	assert_int_equal(find_n(f->cat, &q, &l), 13); /* 11 + sub/deep + long, not odd.x etc. */
	assert_false(has(&l, "odd.x/sib.dat"));
	assert_false(has(&l, "odd0/sib.dat"));
	assert_false(has(&l, "oddity/sib.dat"));
	assert_true(has(&l, "odd/sub/deep.dat"));
	assert_true(has(&l, longname));
	/* Sorted bytewise. */
	for (int i = 1; i < l.n; i++)
		assert_true(strcmp(l.p[i - 1], l.p[i]) < 0);
	q.under = "odd/sub";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	q.under = "od";
	assert_int_equal(find_n(f->cat, &q, &l), 0);

	/* Glob on the last component, byte-wise. */
	cat_query_init(&q);
	q.name_glob = "*.dat";
	assert_int_equal(find_n(f->cat, &q, &l), 13);
	q.name_glob = "star\\*.dat"; /* escaped: the literal star only */
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	assert_string_equal(l.p[0], "odd/star*.dat");
	q.name_glob = "*\n*";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	assert_string_equal(l.p[0], "odd/new\nline.dat");
	q.name_glob = "\xff*";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	assert_string_equal(l.p[0], odd[7]);
	q.name_glob = "[[]br].dat";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	q.name_glob = "*%*";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	q.name_glob = "sub*"; /* a collection name never matches an object */
	assert_int_equal(find_n(f->cat, &q, &l), 0);
	q.name_glob = "L*";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	q.name_glob = "*.txt";
	q.under = "odd";
	assert_int_equal(find_n(f->cat, &q, &l), 2);

	/* Size range, state, time, limit. */
	cat_query_init(&q);
	q.min_size = 200;
	q.max_size = 400;
	assert_int_equal(find_n(f->cat, &q, &l), 3);
	assert_int_equal(cat_obj_set_uploading(f->cat, ids[2], NULL), 0);
	assert_int_equal(cat_obj_set_ingested(f->cat, ids[2], 300, "", ""), 0);
	cat_query_init(&q);
	q.state = CAT_INGESTED;
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	assert_string_equal(l.p[0], odd[2]);
	q.state = CAT_PENDING;
	assert_int_equal(find_n(f->cat, &q, &l), NODD);
	assert_int_equal(cat_obj_set_attr(f->cat, ids[0], S_IFREG | 0644, 0, 0, 5000), 0);
	assert_int_equal(cat_obj_set_attr(f->cat, ids[1], S_IFREG | 0644, 0, 0, 6000), 0);
	cat_query_init(&q);
	q.mtime_before_ns = 10000;
	assert_int_equal(find_n(f->cat, &q, &l), 2);
	q.mtime_after_ns = 5000;
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	assert_string_equal(l.p[0], odd[1]);
	cat_query_init(&q);
	q.limit = 4;
	assert_int_equal(find_n(f->cat, &q, &l), 4);
	/* all_versions. */
	add_obj(f->cat, odd[0], 1);
	cat_query_init(&q);
	q.name_glob = "new*";
	assert_int_equal(find_n(f->cat, &q, &l), 1);
	q.all_versions = 1;
	assert_int_equal(find_n(f->cat, &q, &l), 2);
	names_free(&l);
	cat_query_init(&q);
	q.under = "/bad";
	assert_int_equal(cat_find(f->cat, &q, names_cb, &l), -EINVAL);
}

struct lst {
	int n;
	char s[1024];
	int stop_after;
};

static int list_cb(const struct cat_coll *c, const struct cat_obj *o, void *arg)
{
	struct lst *l = arg;
	const char *p = c ? c->path : o->path;
	strcat(l->s, p);
	strcat(l->s, c ? "/;" : ";");
	l->n++;
	return l->stop_after && l->n >= l->stop_after ? 1 : 0;
}

static void test_list_and_collections(void **state)
{
	struct fx *f = *state;
	add_obj(f->cat, "r/b", 1);
	add_obj(f->cat, "r/d/x", 1);
	add_obj(f->cat, "r/a", 1);
	int64_t cid;
	assert_int_equal(cat_coll_ensure(f->cat, "r/c/e/f", 0755, 5, 6, &cid), 0);
	int64_t again;
	assert_int_equal(cat_coll_ensure(f->cat, "r/c/e/f", 0700, 0, 0, &again), 0);
	assert_int_equal(again, cid);
	struct cat_coll cc;
	assert_int_equal(cat_coll_get(f->cat, "r/c/e", &cc), 0);
	assert_int_equal(cc.mode, S_IFDIR | 0755);
	assert_int_equal(cc.uid, 5);
	cat_coll_clear(&cc);
	struct lst l = {0};
	assert_int_equal(cat_list(f->cat, "r", list_cb, &l), 0);
	assert_string_equal(l.s, "r/a;r/b;r/c/;r/d/;");
	memset(&l, 0, sizeof l);
	l.stop_after = 2;
	assert_int_equal(cat_list(f->cat, "r", list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	memset(&l, 0, sizeof l);
	assert_int_equal(cat_list(f->cat, "", list_cb, &l), 0);
	assert_string_equal(l.s, "r/;");
	assert_int_equal(cat_list(f->cat, "r/a", list_cb, &l), -ENOTDIR);
	assert_int_equal(cat_list(f->cat, "nope", list_cb, &l), -ENOENT);
	/* Objects and collections cannot share a path. */
	struct cat_obj o = {.path = "r/c", .bucket = "b", .key = "k"};
	assert_int_equal(cat_obj_add(f->cat, &o), -EISDIR);
	assert_int_equal(cat_coll_ensure(f->cat, "r/a/sub", 0755, 0, 0, NULL), -ENOTDIR);
	/* Nothing of the refused add (no collection "r/a") was left. */
	assert_int_equal(cat_coll_get(f->cat, "r/a", &cc), -ENOENT);
	/* Removal. */
	assert_int_equal(cat_coll_remove(f->cat, "r/c/e"), -ENOTEMPTY);
	assert_int_equal(cat_coll_remove(f->cat, "r/c/e/f"), 0);
	assert_int_equal(cat_coll_remove(f->cat, "r/c/e/f"), -ENOENT);
	assert_int_equal(cat_coll_remove(f->cat, "r/d"), -ENOTEMPTY);
	struct cat_obj x;
	assert_int_equal(cat_obj_get(f->cat, "r/d/x", &x), 0);
	assert_int_equal(cat_obj_set_deleted(f->cat, x.id, NULL), 0);
	cat_obj_clear(&x);
	assert_int_equal(cat_meta_set(f->cat, "r/d", "a", "b", NULL), 0);
	assert_int_equal(cat_coll_remove(f->cat, "r/d"), 0); /* only a deleted version left */
	assert_int_equal(cat_coll_remove(f->cat, ""), -EINVAL);
	/* A new version in a re-created collection. */
	add_obj(f->cat, "r/d/x", 1);
	struct avus av = {0};
	assert_int_equal(cat_meta_list(f->cat, "r/d", avu_cb, &av), 0);
	assert_int_equal(av.n, 0); /* the old collection's metadata went with it */
	assert_int_equal(cat_check(f->cat), 0);
}

static void test_invalid_paths(void **state)
{
	struct fx *f = *state;
	const char *bad[] = {"", "/a", "a/", "a//b", "./a", "a/../b", "a/.", ".."};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cat_obj o = {.path = (char *)bad[i], .bucket = "b", .key = "k"};
		assert_int_equal(cat_obj_add(f->cat, &o), -EINVAL);
		if (*bad[i])
			assert_int_equal(cat_coll_ensure(f->cat, bad[i], 0755, 0, 0, NULL),
			                 -EINVAL);
	}
	struct cat_obj o = {.path = "ok", .bucket = "b", .key = ""};
	assert_int_equal(cat_obj_add(f->cat, &o), -EINVAL); /* empty key */
	assert_int_equal(cat_event_add(f->cat, 0, "x", "", NULL), -EINVAL);
	assert_int_equal(cat_event_add(f->cat, 0, "x", "note", "hello"), 0);
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "x", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.kinds[0], "note");
}

static void test_events(void **state)
{
	struct fx *f = *state;
	int64_t id = add_obj(f->cat, "ev/f", 1);
	assert_int_equal(cat_obj_set_uploading(f->cat, id, "u"), 0);
	assert_int_equal(cat_obj_set_failed(f->cat, id, "x"), 0);
	assert_int_equal(cat_obj_set_pending(f->cat, id, "again"), 0);
	assert_int_equal(cat_obj_set_uploading(f->cat, id, "u2"), 0);
	assert_int_equal(cat_obj_set_pending(f->cat, id, "aborted"), 0);
	assert_int_equal(cat_obj_set_uploading(f->cat, id, "u3"), 0);
	assert_int_equal(cat_obj_set_ingested(f->cat, id, 1, "", ""), 0);
	assert_int_equal(cat_obj_set_deleted(f->cat, id, "rm"), 0);
	const char *want[] = {"add",     "uploading", "failed",   "retry",  "uploading",
	                      "restart", "uploading", "ingested", "deleted"};
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "ev/f", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 9);
	for (int i = 0; i < 9; i++)
		assert_string_equal(ev.kinds[i], want[i]);
	/* A limit keeps the newest, oldest first. */
	memset(&ev, 0, sizeof ev);
	assert_int_equal(cat_events(f->cat, "ev/f", 2, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.kinds[0], "ingested");
	assert_string_equal(ev.kinds[1], "deleted");
	memset(&ev, 0, sizeof ev);
	assert_int_equal(cat_events(f->cat, NULL, 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 10); /* mkdir "ev" and the 9 above */
}

static void test_status(void **state)
{
	struct fx *f = *state;
	struct cat_status s;
	assert_int_equal(cat_status(f->cat, &s), 0);
	assert_int_equal(s.collections, 1); /* the root */
	assert_int_equal(s.versions, 0);
	assert_int_equal(s.oldest_pending_ns, 0);
	int64_t p = add_obj(f->cat, "s/p", 7);
	obj_in_state(f->cat, "s/u", CAT_UPLOADING);
	int64_t i1 = obj_in_state(f->cat, "s/i1", CAT_INGESTED);
	obj_in_state(f->cat, "s/i2", CAT_INGESTED);
	obj_in_state(f->cat, "s/f", CAT_FAILED);
	obj_in_state(f->cat, "s/d", CAT_DELETED);
	add_obj(f->cat, "s/i1", 3); /* i1 v1 stays ingested but is no longer current */
	(void)i1;
	assert_int_equal(cat_status(f->cat, &s), 0);
	assert_int_equal(s.count[CAT_PENDING], 2);
	assert_int_equal(s.count[CAT_UPLOADING], 1);
	assert_int_equal(s.count[CAT_INGESTED], 1);
	assert_int_equal(s.count[CAT_FAILED], 1);
	assert_int_equal(s.count[CAT_DELETED], 1);
	assert_int_equal(s.bytes_ingested, 10);
	assert_int_equal(s.collections, 2);
	assert_int_equal(s.versions, 7);
	struct cat_obj o;
	assert_int_equal(cat_obj_get_id(f->cat, p, &o), 0);
	assert_int_equal(s.oldest_pending_ns, o.ctime_ns);
	cat_obj_clear(&o);
	struct vlist u = {0};
	assert_int_equal(cat_unfinished(f->cat, ver_cb, &u), 0);
	assert_int_equal(u.n, 3);
}

/* --- opening: foreign, garbage, newer, corrupt, migration, read-only --- */

static uint64_t file_sum(const char *path)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	uint64_t h = 1469598103934665603ULL;
	int ch;
	while ((ch = fgetc(fp)) != EOF)
		h = (h ^ (unsigned char)ch) * 1099511628211ULL;
	fclose(fp);
	return h;
}

static void raw_sql(const char *file, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sql: %s", err);
	sqlite3_close(db);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_foreign_and_garbage(void **state)
{
	struct fx *f = *state;
	char p[256], w[300];
	struct cat *c = NULL;
	/* A foreign SQLite database, in WAL mode like ours. */
	snprintf(p, sizeof p, "%s/foreign.db", f->dir);
	raw_sql(p, "PRAGMA journal_mode = WAL; CREATE TABLE objects(x); INSERT INTO objects"
	           " VALUES(1); PRAGMA journal_mode = DELETE;");
	uint64_t before = file_sum(p);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
	assert_int_equal(cat_open(p, 0, &c), -ENOTSUP);
	assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOTSUP);
	assert_null(c);
	assert_true(file_sum(p) == before);
	snprintf(w, sizeof w, "%s-wal", p);
	assert_false(exists(w));
	/* A foreign WAL-mode database whose pages are still in its WAL: SQLite
	 * must read it, and must not checkpoint into it. */
	{
		char src[256], cmd[1200], wsrc[300];
		snprintf(src, sizeof src, "%s/livewal-src.db", f->dir);
		snprintf(p, sizeof p, "%s/livewal.db", f->dir);
		sqlite3 *db;
		assert_int_equal(sqlite3_open(src, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
		                              "PRAGMA journal_mode = WAL; CREATE TABLE t(x);"
		                              " INSERT INTO t VALUES(1)",
		                              NULL, NULL, NULL),
		                 SQLITE_OK);
		snprintf(wsrc, sizeof wsrc, "%s-wal", src);
		snprintf(w, sizeof w, "%s-wal", p);
		snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s' '%s'", src, p, wsrc, w);
		assert_int_equal(system(cmd), 0);
		sqlite3_close(db);
		uint64_t b1 = file_sum(p), b2 = file_sum(w);
		assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
		assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOTSUP);
		assert_true(file_sum(p) == b1);
		assert_true(file_sum(w) == b2);
	}
	/* Our application id but no marker table. */
	snprintf(p, sizeof p, "%s/sneaky.db", f->dir);
	raw_sql(p, "CREATE TABLE t(x); PRAGMA application_id = 1280984659;");
	before = file_sum(p);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
	assert_true(file_sum(p) == before);
	/* Garbage, long and short. */
	snprintf(p, sizeof p, "%s/garbage.db", f->dir);
	FILE *fp = fopen(p, "wb");
	srand(7);
	for (int i = 0; i < 8192; i++)
		fputc(rand() & 0xff, fp);
	fclose(fp);
	before = file_sum(p);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
	assert_true(file_sum(p) == before);
	snprintf(p, sizeof p, "%s/short.db", f->dir);
	fp = fopen(p, "wb");
	fputs("SQLite format 3", fp);
	fclose(fp);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
	/* A directory. */
	assert_int_equal(cat_open(f->dir, CAT_CREATE, &c), -ENOTSUP);
	/* Missing: created only when asked. */
	snprintf(p, sizeof p, "%s/missing.db", f->dir);
	assert_int_equal(cat_open(p, 0, &c), -ENOENT);
	assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOENT);
	assert_false(exists(p));
	/* An empty file (a crash before the first commit) is initialised. */
	snprintf(p, sizeof p, "%s/empty.db", f->dir);
	fclose(fopen(p, "wb"));
	assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOENT);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), 0);
	cat_close(c);
	assert_int_equal(cat_open(p, CAT_READONLY, &c), 0);
	cat_close(c);
}

static void test_newer_and_corrupt(void **state)
{
	struct fx *f = *state;
	add_obj(f->cat, "a", 1);
	cat_close(f->cat);
	f->cat = NULL;
	char p[256];
	snprintf(p, sizeof p, "%s/newer.db", f->dir);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", f->file, p);
	assert_int_equal(system(cmd), 0);
	raw_sql(p, "PRAGMA user_version = 4");
	uint64_t before = file_sum(p);
	struct cat *c = NULL;
	assert_int_equal(cat_open(p, CAT_CREATE, &c), -ENOTSUP);
	assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOTSUP);
	assert_true(file_sum(p) == before);
	/* Page 1 past the header overwritten: the schema is unreadable. */
	snprintf(p, sizeof p, "%s/corrupt.db", f->dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", f->file, p);
	assert_int_equal(system(cmd), 0);
	int fd = open(p, O_WRONLY);
	char junk[3000];
	memset(junk, 0xa5, sizeof junk);
	assert_int_equal(pwrite(fd, junk, sizeof junk, 100), (ssize_t)sizeof junk);
	close(fd);
	before = file_sum(p);
	int rc = cat_open(p, CAT_CREATE, &c);
	assert_true(rc == -EPROTO || rc == -ENOTSUP);
	assert_null(c);
	assert_true(file_sum(p) == before);
	assert_int_equal(cat_open(f->file, CAT_CREATE, &f->cat), 0);
}

/* Version 1 as it was: no parts table, no objects.symlink. */
static const char v1_schema[] =
    "PRAGMA journal_mode = WAL;"
    "BEGIN;"
    "CREATE TABLE lzfs_catalog(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO lzfs_catalog VALUES('format', 'lzfs catalog'), ('created_ns', '1');"
    "CREATE TABLE collections(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
    " parent_id INTEGER REFERENCES collections(id), mode INTEGER NOT NULL,"
    " uid INTEGER NOT NULL, gid INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " ctime_ns INTEGER NOT NULL);"
    "CREATE INDEX collections_parent ON collections(parent_id);"
    "INSERT INTO collections VALUES(1, '', NULL, 16877, 0, 0, 1, 1);"
    "INSERT INTO collections VALUES(2, 'old', 1, 16877, 0, 0, 1, 1);"
    "CREATE TABLE objects(id INTEGER PRIMARY KEY, path TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK(version >= 1),"
    " coll_id INTEGER REFERENCES collections(id) ON DELETE SET NULL,"
    " bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,"
    " mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    " ingest_ns INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL DEFAULT '',"
    " etag TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL CHECK(state BETWEEN 0 AND 4), upload_id TEXT,"
    " parts_done INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " current INTEGER NOT NULL DEFAULT 0, UNIQUE(path, version));"
    "CREATE UNIQUE INDEX objects_current ON objects(path) WHERE current = 1;"
    "CREATE INDEX objects_coll ON objects(coll_id, current);"
    "CREATE INDEX objects_state ON objects(state, current, size);"
    "CREATE INDEX objects_key ON objects(key);"
    "INSERT INTO objects(path, version, coll_id, bucket, key, size, mode, uid, gid, mtime_ns,"
    " ctime_ns, ingest_ns, state, current) VALUES('old/f', 1, 2, 'b', 'k/old/f', 11, 33188,"
    " 0, 0, 5, 5, 6, 2, 1), ('old/g', 1, 2, 'b', 'k/old/g', 12, 33188, 0, 0, 5, 5, 0, 0, 1);"
    "CREATE TABLE meta(id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, target INTEGER NOT NULL,"
    " name TEXT NOT NULL, value TEXT NOT NULL, unit TEXT, UNIQUE(kind, target, name));"
    "CREATE INDEX meta_name ON meta(name, value);"
    "INSERT INTO meta(kind, target, name, value) VALUES(0, 1, 'origin', 'v1');"
    "CREATE TABLE events(id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, obj_id INTEGER,"
    " path TEXT, kind TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX events_obj ON events(obj_id) WHERE obj_id IS NOT NULL;"
    "CREATE INDEX events_path ON events(path) WHERE obj_id IS NULL;"
    "INSERT INTO events(time_ns, obj_id, path, kind) VALUES(5, 1, 'old/f', 'add');"
    "PRAGMA application_id = 1280984659;"
    "PRAGMA user_version = 1;"
    "COMMIT;";

static void test_migration_v1(void **state)
{
	struct fx *f = *state;
	char p[256];
	snprintf(p, sizeof p, "%s/v1.db", f->dir);
	raw_sql(p, v1_schema);
	struct cat *c = NULL;
	/* Readers cannot migrate: refused with a message, file untouched. */
	uint64_t before = file_sum(p);
	assert_int_equal(cat_open(p, CAT_READONLY, &c), -ENOTSUP);
	assert_int_equal(cat_open(p, 0, &c), -ENOTSUP);
	assert_true(file_sum(p) == before);
	assert_int_equal(cat_open(p, CAT_CREATE, &c), 0);
	struct cat_obj o;
	assert_int_equal(cat_obj_get(c, "old/f", &o), 0);
	assert_int_equal(o.state, CAT_INGESTED);
	assert_int_equal(o.size, 11);
	assert_null(o.symlink);
	cat_obj_clear(&o);
	struct avus av = {0};
	assert_int_equal(cat_meta_list(c, "old/f", avu_cb, &av), 0);
	assert_string_equal(av.s, "origin=v1[];");
	/* What v2 added works on the migrated file. */
	assert_int_equal(cat_obj_get(c, "old/g", &o), 0);
	assert_int_equal(cat_obj_set_uploading(c, o.id, "u"), 0);
	assert_int_equal(cat_obj_part_done(c, o.id, 1, "e", 5), 0);
	cat_obj_clear(&o);
	struct cat_obj n = {.path = "old/link", .bucket = "b", .key = "k/link", .symlink = "f"};
	assert_int_equal(cat_obj_add(c, &n), 0);
	assert_int_equal(cat_obj_get(c, "old/link", &o), 0);
	assert_string_equal(o.symlink, "f");
	cat_obj_clear(&o);
	assert_int_equal(cat_check(c), 0);
	cat_close(c);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3);
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* Reopening a migrated catalog, read-only too, works. */
	assert_int_equal(cat_open(p, CAT_READONLY, &c), 0);
	cat_close(c);
}

static int noop_obj(const struct cat_obj *o, void *arg)
{
	return 0;
}

static void test_readonly(void **state)
{
	struct fx *f = *state;
	int64_t id = add_obj(f->cat, "ro/f", 1);
	struct cat *ro;
	assert_int_equal(cat_open(f->file, CAT_READONLY, &ro), 0);
	struct cat_obj o = {.path = "ro/g", .bucket = "b", .key = "k"};
	assert_int_equal(cat_obj_add(ro, &o), -EROFS);
	assert_int_equal(cat_obj_set_uploading(ro, id, NULL), -EROFS);
	assert_int_equal(cat_meta_set(ro, "ro/f", "a", "b", NULL), -EROFS);
	assert_int_equal(cat_meta_rm(ro, "ro/f", "a"), -EROFS);
	assert_int_equal(cat_coll_ensure(ro, "x", 0755, 0, 0, NULL), -EROFS);
	assert_int_equal(cat_event_add(ro, 0, NULL, "x", NULL), -EROFS);
	assert_int_equal(cat_obj_get(ro, "ro/f", &o), 0);
	assert_int_equal(o.id, id);
	cat_obj_clear(&o);
	/* It sees the writer's later commits. */
	add_obj(f->cat, "ro/h", 1);
	assert_int_equal(cat_obj_get(ro, "ro/h", &o), 0);
	cat_obj_clear(&o);
	struct cat_query q;
	cat_query_init(&q);
	assert_int_equal(cat_find(ro, &q, noop_obj, NULL), 0);
	cat_close(ro);
}

static void test_busy(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	cat_set_busy_timeout(f->cat, 200);
	struct cat_obj o = {.path = "busy", .bucket = "b", .key = "k"};
	assert_int_equal(cat_obj_add(f->cat, &o), -EBUSY);
	/* Reads do not wait for the writer's lock. */
	struct cat_status s;
	assert_int_equal(cat_status(f->cat, &s), 0);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(cat_obj_add(f->cat, &o), 0);
}

/* A request that fails after it wrote (a trigger refuses the object row
 * once its parent collection exists) is undone alone: no collection, no
 * event left, and the requests batched with it commit. */
struct boom {
	struct cat *cat;
	int t;
	int ok, failed;
};

static void *boom_thread(void *arg)
{
	struct boom *b = arg;
	for (int i = 0; i < 50; i++) {
		char path[64], key[64];
		int bad = (i % 5) == b->t % 5;
		snprintf(path, sizeof path, "bt%d/%s%d/f", b->t, bad ? "boom" : "fine", i);
		snprintf(key, sizeof key, "k%d", i);
		struct cat_obj o = {.path = path, .bucket = "b", .key = key};
		if (cat_obj_add(b->cat, &o) == 0)
			b->ok++;
		else
			b->failed++;
	}
	return NULL;
}

static void test_savepoint_isolation(void **state)
{
	struct fx *f = *state;
	raw_sql(f->file, "CREATE TRIGGER boom BEFORE INSERT ON objects WHEN NEW.path GLOB"
	                 " '*boom*' BEGIN SELECT RAISE(ABORT, 'boom'); END;");
	struct cat_stats s0, s1;
	cat_stats(f->cat, &s0);
	pthread_t t[8];
	struct boom b[8];
	for (int i = 0; i < 8; i++) {
		b[i] = (struct boom){.cat = f->cat, .t = i};
		pthread_create(&t[i], NULL, boom_thread, &b[i]);
	}
	int ok = 0, failed = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		ok += b[i].ok;
		failed += b[i].failed;
	}
	cat_stats(f->cat, &s1);
	assert_int_equal(ok, 320);
	assert_int_equal(failed, 80);
	assert_int_equal(s1.failed - s0.failed, 80);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT (SELECT count(*) FROM collections WHERE"
	                                    " path GLOB '*boom*'), (SELECT count(*) FROM events"
	                                    " WHERE path GLOB '*boom*'), (SELECT count(*) FROM"
	                                    " collections WHERE path GLOB 'bt*/fine*')",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	assert_int_equal(sqlite3_column_int(st, 2), 320);
	sqlite3_finalize(st);
	sqlite3_close(db);
	print_message("# %llu requests in %llu transactions (max batch %llu)\n",
	              (unsigned long long)(s1.requests - s0.requests),
	              (unsigned long long)(s1.transactions - s0.transactions),
	              (unsigned long long)s1.max_batch);
	raw_sql(f->file, "DROP TRIGGER boom");
	assert_int_equal(cat_check(f->cat), 0);
}

/* --- concurrency and crashes --- */

struct adder {
	struct cat *cat;
	int t, n, errors;
	const char *prefix;
};

static void *adder_main(void *arg)
{
	struct adder *a = arg;
	for (int i = 0; i < a->n; i++) {
		char path[96], key[128];
		snprintf(path, sizeof path, "%s/t%d/f%05d", a->prefix, a->t, i);
		snprintf(key, sizeof key, "k/%s", path);
		struct cat_obj o = {
		    .path = path, .bucket = "b", .key = key, .size = i, .mode = S_IFREG | 0644};
		if (cat_obj_add(a->cat, &o) != 0)
			a->errors++;
	}
	return NULL;
}

static int run_adders(struct cat *cat, const char *prefix, int threads, int per_thread)
{
	pthread_t t[64];
	struct adder a[64];
	int errors = 0;
	for (int i = 0; i < threads; i++) {
		a[i] = (struct adder){.cat = cat, .t = i, .n = per_thread, .prefix = prefix};
		pthread_create(&t[i], NULL, adder_main, &a[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		errors += a[i].errors;
	}
	return errors;
}

struct status_counts {
	int64_t pending, ingested, bytes, versions;
};

static void status_of(struct cat *cat, struct status_counts *out)
{
	struct cat_status s;
	assert_int_equal(cat_status(cat, &s), 0);
	*out = (struct status_counts){s.count[CAT_PENDING], s.count[CAT_INGESTED],
	                              s.bytes_ingested, s.versions};
}

static void obj_init(struct cat_obj *o, const char *path, char *key, size_t ksize, int64_t size,
                     int ingested)
{
	snprintf(key, ksize, "lz/%s", path);
	*o = (struct cat_obj){.path = (char *)path,
	                      .bucket = "bucket",
	                      .key = key,
	                      .size = size,
	                      .mode = S_IFREG | 0644,
	                      .source = "scan:t"};
	if (ingested) {
		o->state = CAT_INGESTED;
		memset(o->sha256, 'a', 64);
		strcpy(o->etag, "etag-x");
	}
}

/* One batch, good and bad rows mixed: each bad row fails alone with its own
 * errno, whether it failed before writing anything (-EISDIR, -EINVAL,
 * -ENOTDIR) or after its parent collections were created (-EEXIST from a
 * constraint, here a trigger): then nothing of it remains, and the good
 * rows before and after it, in the same transaction, are all there. */
static void test_add_many_mixed(void **state)
{
	struct fx *f = *state;
	assert_int_equal(cat_coll_ensure(f->cat, "m/dir", 0755, 0, 0, NULL), 0);
	add_obj(f->cat, "m/file", 5);
	raw_sql(f->file, "CREATE TRIGGER boom BEFORE INSERT ON objects WHEN NEW.path GLOB"
	                 " '*boom*' BEGIN SELECT RAISE(ABORT, 'boom'); END;");
	static const struct {
		const char *path;
		int ingested;
		int want;
	} rows[] = {
	    {"m/a", 0, 0},
	    {"m/dir", 0, -EISDIR},
	    {"m/b", 1, 0},
	    {"", 0, -EINVAL},
	    {"m/file/x", 0, -ENOTDIR},
	    {"m/c/boom/f", 1, -EEXIST},
	    {"m/a", 1, 0}, /* the same path again: its version 2 */
	    {"m/d/e", 0, 0},
	    {"m/bad-sha", 1, -EINVAL},
	    {"m/g/boom2/f", 0, -EEXIST},
	    {"m/z", 0, 0},
	};
	enum { N = sizeof rows / sizeof rows[0] };
	struct cat_obj o[N];
	char keys[N][64];
	int res[N];
	for (int i = 0; i < N; i++)
		obj_init(&o[i], rows[i].path, keys[i], sizeof keys[i], 100 + i, rows[i].ingested);
	o[8].sha256[3] = 'X';
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
	assert_int_equal(s1.requests - s0.requests, N);
	assert_int_equal(s1.failed - s0.failed, 6);
	assert_int_equal(o[0].version, 1);
	assert_int_equal(o[6].version, 2);
	assert_int_equal(o[6].state, CAT_INGESTED);
	assert_int_equal(o[7].state, CAT_PENDING);

	struct cat_obj g;
	assert_int_equal(cat_obj_get(f->cat, "m/a", &g), 0);
	assert_int_equal(g.id, o[6].id);
	assert_int_equal(g.state, CAT_INGESTED);
	cat_obj_clear(&g);
	assert_int_equal(cat_obj_get_id(f->cat, o[0].id, &g), 0);
	assert_int_equal(g.current, 0);
	cat_obj_clear(&g);
	struct cat_coll cc;
	assert_int_equal(cat_coll_get(f->cat, "m/c", &cc), -ENOENT);
	assert_int_equal(cat_coll_get(f->cat, "m/g", &cc), -ENOENT);
	assert_int_equal(cat_coll_get(f->cat, "m/d", &cc), 0);
	cat_coll_clear(&cc);

	/* Events: each good row its own, the bad rows none. */
	struct evlist ev = {0};
	assert_int_equal(cat_events(f->cat, "m/a", 0, ev_cb, &ev), 0);
	assert_int_equal(ev.n, 3); /* add v1; add v2, ingested */
	assert_string_equal(ev.kinds[0], "add");
	assert_string_equal(ev.kinds[1], "add");
	assert_string_equal(ev.kinds[2], "ingested");
	assert_int_equal(n_events(f->cat, "m/b"), 2);
	assert_int_equal(n_events(f->cat, "m/d/e"), 1);
	assert_int_equal(n_events(f->cat, "m/z"), 1);
	assert_int_equal(n_events(f->cat, "m/c"), 0);
	assert_int_equal(n_events(f->cat, "m/c/boom/f"), 0);
	assert_int_equal(n_events(f->cat, "m/d"), 1); /* mkdir */

	/* Totals: m/a v1 left the pending count for m/a v2 (ingested). */
	assert_int_equal(c1.pending - c0.pending, 2); /* m/d/e, m/z */
	assert_int_equal(c1.ingested - c0.ingested, 2);
	assert_int_equal(c1.bytes - c0.bytes, 102 + 106);
	assert_int_equal(c1.versions - c0.versions, 5);
	raw_sql(f->file, "DROP TRIGGER boom");
	assert_int_equal(cat_check(f->cat), 0);
}

struct many_thread {
	struct cat *cat;
	int t, batches, errors;
};

static void *many_main(void *arg)
{
	struct many_thread *m = arg;
	enum { B = 50 };
	struct cat_obj o[B];
	char path[B][64], key[B][80];
	int res[B];
	for (int b = 0; b < m->batches; b++) {
		for (int j = 0; j < B; j++) {
			snprintf(path[j], sizeof path[j], "mt%d/b%03d/f%02d", m->t, b, j);
			obj_init(&o[j], path[j], key[j], sizeof key[j], j, j % 2);
		}
		if (cat_obj_add_many(m->cat, o, B, res) != 0)
			m->errors++;
		for (int j = 0; j < B; j++)
			m->errors += res[j] != 0 || o[j].id <= 0;
	}
	return NULL;
}

/* Batches from several threads beside single adds, and one batch larger
 * than a request holds: everything registered, totals recounted by
 * cat_check. */
static void test_add_many_concurrent(void **state)
{
	struct fx *f = *state;
	pthread_t t[4];
	struct many_thread m[4];
	for (int i = 0; i < 4; i++) {
		m[i] = (struct many_thread){.cat = f->cat, .t = i, .batches = 20};
		pthread_create(&t[i], NULL, many_main, &m[i]);
	}
	assert_int_equal(run_adders(f->cat, "single", 4, 100), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(m[i].errors, 0);
	}
	int n = 2 * CAT_ADD_MANY_MAX + 7;
	struct cat_obj *o = calloc(n, sizeof *o);
	int *res = calloc(n, sizeof *res);
	char(*path)[32] = calloc(n, sizeof *path);
	char(*key)[48] = calloc(n, sizeof *key);
	struct cat_stats s0, s1;
	cat_stats(f->cat, &s0);
	for (int i = 0; i < n; i++) {
		snprintf(path[i], sizeof path[i], "big/f%05d", i);
		obj_init(&o[i], path[i], key[i], sizeof key[i], 1, 1);
	}
	assert_int_equal(cat_obj_add_many(f->cat, o, n, res), 0);
	cat_stats(f->cat, &s1);
	assert_int_equal(s1.transactions - s0.transactions, 3);
	for (int i = 0; i < n; i++)
		assert_int_equal(res[i], 0);
	assert_int_equal(cat_obj_add_many(f->cat, o, 0, res), 0);
	struct cat_status s;
	assert_int_equal(cat_status(f->cat, &s), 0);
	assert_int_equal(s.versions, 4 * 20 * 50 + 4 * 100 + n);
	assert_int_equal(s.count[CAT_INGESTED], 4 * 20 * 25 + n);
	assert_int_equal(s.count[CAT_PENDING], 4 * 20 * 25 + 4 * 100);
	free(key);
	free(path);
	free(res);
	free(o);
}

static void test_group_commit(void **state)
{
	struct fx *f = *state;
	struct cat_stats s0, s1;
	cat_stats(f->cat, &s0);
	assert_int_equal(run_adders(f->cat, "gc", 16, 300), 0);
	cat_stats(f->cat, &s1);
	uint64_t req = s1.requests - s0.requests, tx = s1.transactions - s0.transactions;
	print_message(
	    "# group commit: %llu requests, %llu transactions (%.1f per commit, max %llu)\n",
	    (unsigned long long)req, (unsigned long long)tx, (double)req / tx,
	    (unsigned long long)s1.max_batch);
	assert_int_equal(req, 4800);
	/* 16 writers sharing commits: far fewer fsyncs than requests. */
	assert_true(tx * 2 <= req);
	assert_true(s1.max_batch >= 8);
	struct cat_status st;
	assert_int_equal(cat_status(f->cat, &st), 0);
	assert_int_equal(st.versions, 4800);
}

/* Sustained writes scattered over many directories (several WAL pages per
 * row): the checkpointer thread and the writer together must keep
 * starting the WAL over, or it would grow past 300 MB here. */
struct walwatch {
	const char *wal;
	volatile int stop;
	off_t max;
};

static void *wal_watch(void *arg)
{
	struct walwatch *w = arg;
	while (!w->stop) {
		struct stat st;
		if (stat(w->wal, &st) == 0 && st.st_size > w->max)
			w->max = st.st_size;
		usleep(2000);
	}
	return NULL;
}

static void test_wal_bounded(void **state)
{
	struct fx *f = *state;
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", f->file);
	struct walwatch w = {.wal = wal};
	pthread_t t;
	pthread_create(&t, NULL, wal_watch, &w);
	assert_int_equal(run_adders(f->cat, "wal", 16, 1250), 0);
	w.stop = 1;
	pthread_join(t, NULL);
	struct cat_stats st;
	cat_stats(f->cat, &st);
	print_message("# 20000 scattered rows: largest WAL %lld KiB, %llu background checkpoints\n",
	              (long long)w.max / 1024, (unsigned long long)st.checkpoints);
	assert_true(st.checkpoints > 0);
	assert_true(w.max < 64 << 20);
}

/* A reader in another process, polling while 4 threads write: never an
 * error, and the counts never go back. */
static void test_concurrent_reader(void **state)
{
	struct fx *f = *state;
	cat_close(f->cat);
	f->cat = NULL;
	int ctl[2], res[2];
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(res), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ctl[1]);
		close(res[0]);
		struct cat *ro;
		long reads = 0, errors = 0, backwards = 0;
		int64_t last = -1, last_found = -1;
		if (cat_open(f->file, CAT_READONLY, &ro) != 0)
			_exit(2);
		fcntl(ctl[0], F_SETFL, O_NONBLOCK);
		for (int end = 0; !end;) {
			char ch;
			/* After EOF (all writes returned) one last read, which
			 * must see every row. */
			end = read(ctl[0], &ch, 1) == 0;
			struct cat_status s;
			if (cat_status(ro, &s) != 0) {
				errors++;
				continue;
			}
			if (s.versions < last)
				backwards++;
			last = s.versions;
			/* A lookup of a row that must exist by now. */
			struct cat_query q;
			cat_query_init(&q);
			q.under = "cr";
			int64_t found = 0;
			struct names l = {0};
			q.limit = 50;
			if (cat_find(ro, &q, names_cb, &l) != 0)
				errors++;
			found = l.n;
			names_free(&l);
			if (found < last_found)
				backwards++;
			last_found = found;
			reads++;
		}
		cat_close(ro);
		char buf[128];
		int len = snprintf(buf, sizeof buf, "%ld %ld %ld %lld", reads, errors, backwards,
		                   (long long)last);
		if (write(res[1], buf, len) != len)
			_exit(3);
		_exit(0);
	}
	close(ctl[0]);
	close(res[1]);
	assert_int_equal(cat_open(f->file, CAT_CREATE, &f->cat), 0);
	assert_int_equal(run_adders(f->cat, "cr", 4, 1500), 0);
	close(ctl[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	char buf[128] = "";
	assert_true(read(res[0], buf, sizeof buf - 1) > 0);
	close(res[0]);
	long reads, errors, backwards;
	long long last;
	assert_int_equal(sscanf(buf, "%ld %ld %ld %lld", &reads, &errors, &backwards, &last), 4);
	print_message("# reader: %ld reads during 6000 writes, last count %lld\n", reads, last);
	assert_int_equal(errors, 0);
	assert_int_equal(backwards, 0);
	assert_true(reads >= 10);
	assert_int_equal(last, 6000);
}

struct record {
	int64_t id;
	int32_t state;
	int32_t pad;
};

struct crasher {
	struct cat *cat;
	int fd, t, round;
};

static void report(int fd, int64_t id, int state)
{
	struct record r = {id, state, 0};
	/* Under PIPE_BUF: atomic, records of threads never interleave. */
	if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(4);
}

/* Batches of 20 objects added as ingested, each row reported once the
 * call returned. */
static void crasher_batches(struct crasher *c)
{
	enum { B = 20 };
	struct cat_obj o[B];
	int res[B];
	char path[B][96], key[B][128];
	for (int i = 0;; i += B) {
		for (int j = 0; j < B; j++) {
			snprintf(path[j], sizeof path[j], "k%d/b%d/f%06d", c->round, c->t, i + j);
			snprintf(key[j], sizeof key[j], "lz/%.90s", path[j]);
			o[j] = (struct cat_obj){.path = path[j], .bucket = "b", .key = key[j],
			                        .size = i + j, .state = CAT_INGESTED};
		}
		if (cat_obj_add_many(c->cat, o, B, res) != 0)
			_exit(8);
		for (int j = 0; j < B; j++)
			report(c->fd, o[j].id, CAT_INGESTED);
	}
}

static void *crasher_main(void *arg)
{
	struct crasher *c = arg;
	if (c->t == 3) {
		crasher_batches(c);
		return NULL;
	}
	for (int i = 0;; i++) {
		char path[96], key[128];
		snprintf(path, sizeof path, "k%d/t%d/f%06d", c->round, c->t, i);
		snprintf(key, sizeof key, "lz/%s", path);
		struct cat_obj o = {.path = path, .bucket = "b", .key = key, .size = i};
		if (cat_obj_add(c->cat, &o) != 0)
			_exit(5);
		report(c->fd, o.id, CAT_PENDING);
		if (cat_obj_set_uploading(c->cat, o.id, "u") != 0)
			_exit(6);
		report(c->fd, o.id, CAT_UPLOADING);
		if (cat_obj_set_ingested(c->cat, o.id, i, "", "e") != 0)
			_exit(7);
		report(c->fd, o.id, CAT_INGESTED);
	}
	return NULL;
}

/* Events an object must have in its state: nothing half-written means the
 * state and its history were committed together. Objects added as
 * ingested in batches (paths "kR/bT/...") have two: add, ingested. */
static int events_for(int state, int batched)
{
	if (batched)
		return 2;
	return state == CAT_PENDING ? 1 : state == CAT_UPLOADING ? 2 : 3;
}

static void test_kill9(void **state)
{
	struct fx *f = *state;
	cat_close(f->cat);
	f->cat = NULL;
	unsigned seed = test_seed();
	int rounds = 4;
	for (int round = 0; round < rounds; round++) {
		unsigned rs = seed + round;
		srand(rs);
		int want = 300 + rand() % 3000;
		int delay_us = rand() % 3000;
		print_message("# kill -9 round %d: seed %u, kill after %d reports + %d us\n", round,
		              rs, want, delay_us);
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			struct cat *cat;
			if (cat_open(f->file, CAT_CREATE, &cat) != 0)
				_exit(2);
			pthread_t t[4];
			struct crasher cr[4];
			for (int i = 0; i < 4; i++) {
				cr[i] = (struct crasher){cat, p[1], i, round};
				pthread_create(&t[i], NULL, crasher_main, &cr[i]);
			}
			for (;;)
				pause();
		}
		close(p[1]);
		size_t cap = 1 << 16, n = 0;
		struct record *recs = malloc(cap * sizeof *recs);
		int killed = 0;
		for (;;) {
			struct record r;
			ssize_t got = read(p[0], &r, sizeof r);
			if (got == 0)
				break;
			assert_int_equal(got, (ssize_t)sizeof r);
			if (n == cap)
				recs = realloc(recs, (cap *= 2) * sizeof *recs);
			recs[n++] = r;
			if (!killed && n >= (size_t)want) {
				usleep(delay_us);
				kill(pid, SIGKILL);
				killed = 1;
			}
		}
		close(p[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		/* The daemon restarts. */
		struct cat *cat;
		assert_int_equal(cat_open(f->file, CAT_CREATE, &cat), 0);
		assert_int_equal(cat_check(cat), 0);
		for (size_t i = 0; i < n; i++) {
			struct cat_obj o;
			if (cat_obj_get_id(cat, recs[i].id, &o) != 0)
				fail_msg("object %lld reported committed is missing",
				         (long long)recs[i].id);
			/* At least the reported state: a later commit may
			 * have landed before its report was written. */
			if ((int)o.state < recs[i].state)
				fail_msg("object %lld: state %d < reported %d", (long long)o.id,
				         o.state, recs[i].state);
			cat_obj_clear(&o);
		}
		cat_close(cat);
		sqlite3 *db;
		assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
		sqlite3_stmt *st;
		assert_int_equal(
		    sqlite3_prepare_v2(db,
		                       "SELECT o.id, o.state, (SELECT count(*) FROM"
		                       " events e WHERE e.obj_id = o.id), o.path GLOB 'k*/b*'"
		                       " FROM objects o",
		                       -1, &st, NULL),
		    SQLITE_OK);
		long rows = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			int s = sqlite3_column_int(st, 1), ev = sqlite3_column_int(st, 2);
			if (ev != events_for(s, sqlite3_column_int(st, 3)))
				fail_msg("object %lld: state %d with %d events",
				         (long long)sqlite3_column_int64(st, 0), s, ev);
			rows++;
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
		print_message("# round %d: %zu reports, %ld rows after restart\n", round, n, rows);
		free(recs);
	}
}

int main(void)
{
	log_init("test_catalog", LZ_ERR, 0);
	/* Refusals are logged on purpose; keep the TAP output readable. */
	if (!getenv("LZFS_TEST_VERBOSE"))
		log_set_level(LZ_ERR - 1);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transition_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_ingested, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_promotes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exactly_one_current, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_odd_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_and_collections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_and_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_and_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_savepoint_isolation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_many_mixed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_many_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
