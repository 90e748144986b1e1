/* rescan.c - see rescan.h.
 *
 * The thread's loop: read inotify events (a new or changed file becomes a
 * candidate, a new directory is watched and walked), look again at the
 * candidates whose settle time is up (stable ones go to the scan's
 * workers), walk the whole tree when due, and every few seconds look for
 * due scan jobs. Candidates wait in a FIFO: every look adds the same
 * settle time, so the list stays ordered by due time and the loop only
 * ever looks at its head.
 *
 * Job runs have a thread each, owned by the rescan object: started by the
 * rescanner thread, joined by it once finished, or by rescan_stop.
 */
#include "rescan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fschange.h"
#include "jobs.h"
#include "log.h"
#include "scanjob.h"

#define WATCH_MASK                                                                          \
	(IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |  \
	 IN_MOVE_SELF | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define JOB_POLL_MS 2000
#define JOB_STALE_NS (60ll * 1000000000)
/* With filesystem change events, one walk in this many still stats every
 * file: a second line of defence, not a part of correctness. */
#define STAT_EVERY 6
/* Change events are read this often, not as they come: the kernel merges
 * the events of one file while they wait, so a file written at 100 MB/s
 * costs one event a second instead of one per write (12% more daemon CPU
 * writing 2 GiB through the mount when read at once). */
#define FSC_READ_MS 1000

/* A file waiting to settle. */
struct cand {
	char *rel;
	struct cand *hnext;           /* hash chain */
	struct cand *prev, *next;     /* FIFO by due time */
	off_t size;
	int64_t mtime_ns, ctime_ns;
	ino_t ino;
	int64_t due_ms;
};

/* What the last walks found unchanged and ingested, kept per directory:
 * for each file a hash of its name, a hash of (size, mtime, ctime, inode)
 * and the inode, 24 bytes a file, in the order the directory listed them.
 * A later walk that finds the same attributes does not read the catalog
 * for that file; with complete filesystem change events (fschange.h) it
 * does not even stat a file the directory still lists under the same
 * inode and no event named; any inotify event about it forgets it; each
 * walk of a directory replaces its list with what that walk found, and a
 * full walk drops the directories it did not meet. ctime is in the hash, so even a rewrite
 * that restores size and mtime is noticed.
 *
 * Per directory rather than one table of paths because a directory lists
 * its names in the same order every time (ext4 and xfs by hash of name):
 * the walk reads each list front to back, where a table of 1,000,000 paths
 * cost a cache miss per file (10% of a periodic walk in perf). A name not
 * where it is expected (files added or removed) is found through an index
 * built for that directory on its first miss. */
struct kfile {
	uint64_t name;                /* hash of the name */
	uint64_t attr;                /* hash of the attributes; 0 = forgotten */
	uint64_t ino;
};

struct kdir {
	uint64_t h;                   /* hash of the directory's path; 0 = empty slot */
	struct kfile *f;              /* in listing order */
	uint32_t n;
	uint32_t next;                /* where the walk expects the next name */
	uint32_t *idx;                /* lazy: positions in f + 1 by name hash; 0 = empty */
	uint32_t icap;
	uint8_t gen;                  /* the last full walk that met it */
};

struct wdent {
	int wd;
	char *rel;
	struct wdent *next;
};

struct jobrun {
	struct jobrun *next;
	struct rescan *r;
	char *name;
	pthread_t thread;
	int done;                     /* under r->mu */
};

struct rescan {
	struct rescan_config cfg;
	char *dir, *catalog_file;
	struct s3_config s3cfg;
	int have_s3cfg;
	struct cat *cat;
	struct s3_client *s3;
	struct up_pool *pool;
	struct scan_ctx *sc;
	int rootfd, ifd, efd;
	pthread_t thread;

	/* candidates (rescanner thread only) */
	struct cand **ctab;
	size_t ccap, ncand;
	struct cand *head, *tail;
	/* files known unchanged (rescanner thread only) */
	struct kdir *kdirs;
	size_t kdcap, nkdirs;
	uint8_t gen;
	struct kdir *kcur;            /* the directory being walked (NULL: none) */
	uint64_t kcur_h;
	struct kfile *knew;           /* what this walk found there */
	uint32_t nknew, capknew;
	/* filesystem change events (rescanner thread only; NULL: every walk
	 * stats every file) */
	struct fsc *fsc;
	int trust;                    /* the walk under way may skip stats */
	int stat_walked;              /* a walk stated everything since events began */
	int since_stat;               /* walks since the last one that stated everything */
	uint64_t unstated;            /* files found unchanged without a stat */
	/* watches (rescanner thread only) */
	struct wdent **wtab;
	size_t wcap, nwatch;
	int walk_due;
	int walk_req;                 /* set by rescan_walk_now (atomic) */
	int64_t next_walk_ms, next_jobs_ms, next_fsc_ms;

	pthread_mutex_t mu;           /* stats, stop, jobs list */
	int stopping;
	struct rescan_stats st;
	struct jobrun *jobs;
	struct job_db *jdb;
	char runner[128];
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t wall_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec; }

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int stopping(struct rescan *r)
{
	pthread_mutex_lock(&r->mu);
	int v = r->stopping;
	pthread_mutex_unlock(&r->mu);
	return v;
}

/* ---------- candidates ---------- */

static struct cand *cand_find(struct rescan *r, const char *rel)
{
	if (!r->ccap)
		return NULL;
	for (struct cand *c = r->ctab[str_hash(rel) & (r->ccap - 1)]; c; c = c->hnext)
		if (strcmp(c->rel, rel) == 0)
			return c;
	return NULL;
}

static void fifo_unlink(struct rescan *r, struct cand *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		r->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		r->tail = c->prev;
	c->prev = c->next = NULL;
}

static void fifo_append(struct rescan *r, struct cand *c)
{
	c->prev = r->tail;
	c->next = NULL;
	if (r->tail)
		r->tail->next = c;
	else
		r->head = c;
	r->tail = c;
}

static int cand_grow(struct rescan *r)
{
	size_t cap = r->ccap ? r->ccap * 2 : 1024;
	struct cand **t = calloc(cap, sizeof *t);
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < r->ccap; i++) {
		for (struct cand *c = r->ctab[i], *n; c; c = n) {
			n = c->hnext;
			size_t j = str_hash(c->rel) & (cap - 1);
			c->hnext = t[j];
			t[j] = c;
		}
	}
	free(r->ctab);
	r->ctab = t;
	r->ccap = cap;
	return 0;
}

static void cand_observe(struct cand *c, const struct stat *st)
{
	c->size = st->st_size;
	c->mtime_ns = ts_ns(&st->st_mtim);
	c->ctime_ns = ts_ns(&st->st_ctim);
	c->ino = st->st_ino;
}

/* Starts tracking rel (first look: st). Already tracked: nothing to do, its
 * next look compares. */
static void cand_track(struct rescan *r, const char *rel, const struct stat *st)
{
	if (cand_find(r, rel))
		return;
	if ((r->ncand + 1) * 2 > r->ccap && cand_grow(r) < 0)
		return;
	struct cand *c = calloc(1, sizeof *c);
	if (!c || !(c->rel = strdup(rel))) {
		free(c);
		return; /* the next walk finds it again */
	}
	cand_observe(c, st);
	c->due_ms = mono_ms() + (int64_t)r->cfg.settle * 1000;
	size_t j = str_hash(rel) & (r->ccap - 1);
	c->hnext = r->ctab[j];
	r->ctab[j] = c;
	fifo_append(r, c);
	r->ncand++;
}

static void cand_drop(struct rescan *r, struct cand *c)
{
	struct cand **pp = &r->ctab[str_hash(c->rel) & (r->ccap - 1)];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	fifo_unlink(r, c);
	r->ncand--;
	free(c->rel);
	free(c);
}

/* ---------- files known unchanged ---------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t nz(uint64_t h) { return h ? h : 1; }

static uint64_t attr_hash(const struct stat *st)
{
	return nz(mix64((uint64_t)st->st_size ^ mix64((uint64_t)ts_ns(&st->st_mtim) ^
		  mix64((uint64_t)ts_ns(&st->st_ctim) ^ mix64((uint64_t)st->st_ino)))));
}

/* Splits rel into the hash of its directory and of its name. */
static void split_hash(const char *rel, uint64_t *dir, uint64_t *name)
{
	const char *slash = strrchr(rel, '/');
	uint64_t h = 1469598103934665603ull;
	if (slash)
		for (const char *p = rel; p < slash; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
	*dir = nz(h);
	*name = nz(str_hash(slash ? slash + 1 : rel));
}

static struct kdir *kdir_slot(struct kdir *tab, size_t cap, uint64_t h)
{
	size_t j = mix64(h) & (cap - 1);
	while (tab[j].h && tab[j].h != h)
		j = (j + 1) & (cap - 1);
	return &tab[j];
}

static struct kdir *kdir_find(struct rescan *r, uint64_t h)
{
	if (!r->kdcap)
		return NULL;
	struct kdir *d = kdir_slot(r->kdirs, r->kdcap, h);
	return d->h ? d : NULL;
}

static void kdir_clear(struct kdir *d)
{
	free(d->f);
	free(d->idx);
	memset(d, 0, sizeof *d);
}

/* Rebuilds the table of directories with the ones met by the last full
 * walk (all of them when keep_all), sized for one more. */
static int kdir_rebuild(struct rescan *r, int keep_all)
{
	size_t live = 0;
	for (size_t i = 0; i < r->kdcap; i++)
		if (r->kdirs[i].h && (keep_all || r->kdirs[i].gen == r->gen))
			live++;
	size_t cap = 64;
	while (cap < (live + 1) * 2)
		cap *= 2;
	struct kdir *t = calloc(cap, sizeof *t);
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < r->kdcap; i++) {
		struct kdir *d = &r->kdirs[i];
		if (!d->h)
			continue;
		if (keep_all || d->gen == r->gen)
			*kdir_slot(t, cap, d->h) = *d;
		else
			kdir_clear(d);
	}
	free(r->kdirs);
	r->kdirs = t;
	r->kdcap = cap;
	r->nkdirs = live;
	return 0;
}

/* The position of name in d's list, or -1. */
static int64_t kdir_lookup(struct kdir *d, uint64_t name)
{
	if (d->next < d->n && d->f[d->next].name == name)
		return d->next;
	if (!d->idx) {
		uint32_t cap = 16;
		while (cap < d->n * 2)
			cap *= 2;
		if (!(d->idx = calloc(cap, sizeof *d->idx)))
			return -1;
		d->icap = cap;
		for (uint32_t i = 0; i < d->n; i++) {
			uint32_t j = (uint32_t)mix64(d->f[i].name) & (cap - 1);
			while (d->idx[j])
				j = (j + 1) & (cap - 1);
			d->idx[j] = i + 1;
		}
	}
	for (uint32_t j = (uint32_t)mix64(name) & (d->icap - 1); d->idx[j]; j = (j + 1) & (d->icap - 1))
		if (d->f[d->idx[j] - 1].name == name)
			return d->idx[j] - 1;
	return -1;
}

/* The end of a directory's walk: its list becomes what the walk found. */
static void known_dir_done(struct rescan *r)
{
	if (!r->kcur_h)
		return;
	struct kdir *d = kdir_find(r, r->kcur_h);
	if (!d && (r->nkdirs + 1) * 2 > r->kdcap && kdir_rebuild(r, 1) < 0)
		goto out;
	if (!d) {
		d = kdir_slot(r->kdirs, r->kdcap, r->kcur_h);
		d->h = r->kcur_h;
		r->nkdirs++;
	}
	free(d->f);
	free(d->idx);
	d->f = r->knew;
	d->n = r->nknew;
	d->idx = NULL;
	d->icap = 0;
	d->next = 0;
	d->gen = r->gen;
	r->knew = NULL;
	r->capknew = 0;
out:
	free(r->knew);
	r->knew = NULL;
	r->nknew = r->capknew = 0;
	r->kcur = NULL;
	r->kcur_h = 0;
}

/* Makes dir the directory being walked. The walker meets each directory's
 * files one after another. */
static void known_enter(struct rescan *r, uint64_t dir)
{
	if (dir == r->kcur_h)
		return;
	known_dir_done(r);
	r->kcur_h = dir;
	r->kcur = kdir_find(r, dir);
	if (r->kcur)
		r->kcur->next = 0;
}

static void known_add(struct rescan *r, uint64_t name, uint64_t attr, uint64_t ino)
{
	if (r->nknew == r->capknew) {
		uint32_t cap = r->capknew ? r->capknew * 2 : 64;
		struct kfile *f = realloc(r->knew, cap * sizeof *f);
		if (!f)
			return; /* only a shortcut: the next walk reads the catalog */
		r->knew = f;
		r->capknew = cap;
	}
	r->knew[r->nknew++] = (struct kfile){name, attr, ino};
}

static void known_put(struct rescan *r, const char *rel, const struct stat *st)
{
	uint64_t dir, name;
	split_hash(rel, &dir, &name);
	known_enter(r, dir);
	known_add(r, name, attr_hash(st), (uint64_t)st->st_ino);
}

static void known_forget(struct rescan *r, const char *rel)
{
	uint64_t dir, name;
	split_hash(rel, &dir, &name);
	struct kdir *d = kdir_find(r, dir);
	int64_t i = d ? kdir_lookup(d, name) : -1;
	if (i >= 0)
		d->f[i].attr = 0;
}

/* The walker's question: unchanged since it was last found ingested? */
static int known_cb(void *arg, const char *rel, const struct stat *st)
{
	struct rescan *r = arg;
	uint64_t dir, name;
	split_hash(rel, &dir, &name);
	known_enter(r, dir);
	struct kdir *d = r->kcur;
	int64_t i = d ? kdir_lookup(d, name) : -1;
	if (i < 0)
		return 0;
	d->next = (uint32_t)i + 1;
	uint64_t a = attr_hash(st);
	if (d->f[i].attr != a)
		return 0;
	known_add(r, name, a, (uint64_t)st->st_ino);
	return 1;
}

/* The walker's question before the stat: may it skip the stat? Only in a
 * walk trusting the change events, for a file found unchanged before,
 * listed under the same inode, in a directory on the filesystem the events
 * cover whose entries no event named, and that no event named since. */
static int known_name_cb(void *arg, const char *rel, uint64_t ino, const struct stat *dst)
{
	struct rescan *r = arg;
	if (!r->trust || (uint64_t)dst->st_dev != fsc_dev(r->fsc) ||
	    fsc_changed(r->fsc, (uint64_t)dst->st_ino) || fsc_changed(r->fsc, ino))
		return 0;
	uint64_t dir, name;
	split_hash(rel, &dir, &name);
	known_enter(r, dir);
	struct kdir *d = r->kcur;
	int64_t i = d ? kdir_lookup(d, name) : -1;
	/* On a refusal d->next stays on the entry: known_cb, after the
	 * stat, meets it where it expects it. */
	if (i < 0 || !d->f[i].attr || d->f[i].ino != ino)
		return 0;
	d->next = (uint32_t)i + 1;
	known_add(r, name, d->f[i].attr, ino);
	r->unstated++;
	return 1;
}

/* ---------- looking at files ---------- */

static int stat_beneath(struct rescan *r, const char *rel, struct stat *st)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, r->rootfd, rel, &how, sizeof how);
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Whether the scan has anything to do for rel (row from the catalog). */
static int needs_work(struct rescan *r, const char *rel, const struct stat *st,
		      const struct scan_row *row)
{
	int mode = r->cfg.scan.mode == SCAN_NOOP ? SCAN_PUT_SYNC : r->cfg.scan.mode;
	int a = scan_decide(mode, st->st_size, ts_ns(&st->st_mtim), row);
	return a != SCAN_SKIP && a != SCAN_BUSY;
}

static int busy(struct rescan *r, const char *rel)
{
	return r->cfg.scan.busy && r->cfg.scan.busy(r->cfg.scan.busy_arg, rel);
}

/* An inotify event named a file: track it if the catalog lacks it. */
static void look_at_file(struct rescan *r, const char *rel)
{
	known_forget(r, rel);
	if (cand_find(r, rel) || busy(r, rel))
		return;
	const char *name = strrchr(rel, '/');
	name = name ? name + 1 : rel;
	struct stat st;
	if (stat_beneath(r, rel, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if (scan_filter_excludes(r->cfg.scan.filter, name, st.st_mode))
		return;
	char err[256];
	char *key = NULL, *catpath = NULL;
	int rc = scan_key(r->sc, rel, ts_ns(&st.st_mtim), &key, &catpath, err, sizeof err);
	if (rc < 0) {
		if (rc == -EINVAL)
			log_warn("%s: not ingested: %s", rel, err);
		return;
	}
	struct cat_obj o;
	struct scan_row row, *rowp = NULL;
	rc = cat_obj_get(r->cat, catpath, &o);
	if (rc == 0) {
		row.id = o.id;
		row.size = o.size;
		row.mtime_ns = o.mtime_ns;
		row.state = (int)o.state;
		row.has_sha256 = o.sha256[0] != '\0';
		rowp = &row;
		cat_obj_clear(&o);
	}
	if (rc == 0 || rc == -ENOENT) {
		if (needs_work(r, rel, &st, rowp))
			cand_track(r, rel, &st);
	} else {
		cand_track(r, rel, &st); /* the workers look again */
	}
	free(key);
	free(catpath);
}

/* ---------- watches ---------- */

static struct wdent *wd_find(struct rescan *r, int wd)
{
	if (!r->wcap)
		return NULL;
	for (struct wdent *w = r->wtab[(unsigned)wd & (r->wcap - 1)]; w; w = w->next)
		if (w->wd == wd)
			return w;
	return NULL;
}

static void wd_set(struct rescan *r, int wd, const char *rel)
{
	struct wdent *w = wd_find(r, wd);
	if (w) {
		char *p = strdup(rel);
		if (p) {
			free(w->rel);
			w->rel = p;
		}
		return;
	}
	if ((r->nwatch + 1) * 2 > r->wcap) {
		size_t cap = r->wcap ? r->wcap * 2 : 256;
		struct wdent **t = calloc(cap, sizeof *t);
		if (!t)
			return;
		for (size_t i = 0; i < r->wcap; i++) {
			for (struct wdent *e = r->wtab[i], *n; e; e = n) {
				n = e->next;
				e->next = t[(unsigned)e->wd & (cap - 1)];
				t[(unsigned)e->wd & (cap - 1)] = e;
			}
		}
		free(r->wtab);
		r->wtab = t;
		r->wcap = cap;
	}
	w = calloc(1, sizeof *w);
	if (!w || !(w->rel = strdup(rel))) {
		free(w);
		return;
	}
	w->wd = wd;
	w->next = r->wtab[(unsigned)wd & (r->wcap - 1)];
	r->wtab[(unsigned)wd & (r->wcap - 1)] = w;
	r->nwatch++;
}

static void wd_forget(struct rescan *r, int wd)
{
	if (!r->wcap)
		return;
	struct wdent **pp = &r->wtab[(unsigned)wd & (r->wcap - 1)];
	while (*pp && (*pp)->wd != wd)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	struct wdent *w = *pp;
	*pp = w->next;
	free(w->rel);
	free(w);
	r->nwatch--;
}

/* Watches directory rel, reached without following symlinks (the watch is
 * added through /proc/self/fd of an O_PATH descriptor opened beneath the
 * root). */
static void watch_dir(struct rescan *r, const char *rel)
{
	int fd;
	if (!*rel) {
		fd = fcntl(r->rootfd, F_DUPFD_CLOEXEC, 0);
	} else {
		struct open_how how = {
			.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		fd = (int)syscall(SYS_openat2, r->rootfd, rel, &how, sizeof how);
	}
	if (fd < 0)
		return;
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int wd = inotify_add_watch(r->ifd, proc, WATCH_MASK);
	int e = errno;
	close(fd);
	if (wd >= 0) {
		wd_set(r, wd, rel);
		return;
	}
	if (e == ENOSPC) {
		pthread_mutex_lock(&r->mu);
		int first = !r->st.watch_limit;
		r->st.watch_limit = 1;
		pthread_mutex_unlock(&r->mu);
		if (first)
			log_warn("rescan %s: inotify watch limit reached (fs.inotify.max_user_watches); "
				 "directories beyond it are found by the walk every %d s", r->dir,
				 r->cfg.interval);
	} else if (e != ENOENT) {
		log_warn("rescan %s: cannot watch %s: %s", r->dir, *rel ? rel : ".", strerror(e));
	}
}

/* The walker's callback: watch directories, track files with work. */
static int walk_cb(const struct scan_entry *e, void *arg)
{
	struct rescan *r = arg;
	if (S_ISDIR(e->st->st_mode)) {
		watch_dir(r, e->relpath);
		return stopping(r);
	}
	if (!e->catpath)
		return 0; /* the template refused it (logged) */
	if (cand_find(r, e->relpath))
		return 0;
	if (needs_work(r, e->relpath, e->st, e->row)) {
		if (!busy(r, e->relpath))
			cand_track(r, e->relpath, e->st);
	} else if (e->row && e->row->state == CAT_INGESTED) {
		known_put(r, e->relpath, e->st);
	}
	return 0;
}

static void walk(struct rescan *r, const char *rel)
{
	if (!*rel)
		watch_dir(r, "");
	int rc = scan_walk(r->sc, r->rootfd, rel, walk_cb, r);
	known_dir_done(r);
	if (rc < 0 && rc != -ECANCELED)
		log_warn("rescan %s: walk of %s failed: %s", r->dir, *rel ? rel : ".", strerror(-rc));
}

static void full_walk(struct rescan *r)
{
	int64_t t0 = mono_ms();
	r->gen = r->gen == 255 ? 1 : r->gen + 1;
	if (r->fsc) {
		/* Events read up to here are what the walk must not trust;
		 * later ones wait in the queue for the next walk. */
		fsc_read(r->fsc);
		r->trust = r->stat_walked && fsc_complete(r->fsc) && r->since_stat + 1 < STAT_EVERY;
		if (!r->trust)
			fsc_restart(r->fsc);
	}
	uint64_t unstated = r->unstated;
	walk(r, "");
	/* Directories not met by this walk are gone (or moved): forget them. */
	kdir_rebuild(r, 0);
	if (r->fsc) {
		fsc_clear(r->fsc);
		if (r->trust) {
			r->since_stat++;
		} else if (!stopping(r)) {
			r->stat_walked = 1;
			r->since_stat = 0;
		}
	}
	pthread_mutex_lock(&r->mu);
	r->st.walks++;
	r->st.trusted_walks += r->trust != 0;
	r->st.unstated = r->unstated;
	pthread_mutex_unlock(&r->mu);
	log_debug("rescan %s: walked in %lld ms (%s, %llu file(s) not stated); %zu file(s) "
		  "waiting to settle", r->dir, (long long)(mono_ms() - t0),
		  r->trust ? "changed files only" : "every file",
		  (unsigned long long)(r->unstated - unstated), r->ncand);
	r->trust = 0;
	r->walk_due = 0;
	r->next_walk_ms = mono_ms() + (int64_t)r->cfg.interval * 1000;
}

static char *join(const char *a, const char *b)
{
	if (!*a)
		return strdup(b);
	char *p;
	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static void read_events(struct rescan *r)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(r->ifd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		uint64_t count = 0;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			count++;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_notice("rescan %s: inotify queue overflowed; walking the tree", r->dir);
				pthread_mutex_lock(&r->mu);
				r->st.overflows++;
				pthread_mutex_unlock(&r->mu);
				r->walk_due = 1;
				continue;
			}
			if (ev->mask & IN_IGNORED) {
				wd_forget(r, ev->wd);
				continue;
			}
			if (ev->mask & IN_MOVE_SELF) {
				/* Its path is not ours any more: the walk re-watches it
				 * if it is still in the tree. */
				inotify_rm_watch(r->ifd, ev->wd);
				r->walk_due = 1;
				continue;
			}
			struct wdent *w = wd_find(r, ev->wd);
			if (!w || !ev->len)
				continue;
			if (!*w->rel && r->cfg.scan.skip_top && strcmp(ev->name, r->cfg.scan.skip_top) == 0)
				continue;
			char *rel = join(w->rel, ev->name);
			if (!rel)
				continue;
			if (ev->mask & IN_ISDIR) {
				if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) &&
				    !scan_filter_excludes(r->cfg.scan.filter, ev->name, S_IFDIR)) {
					watch_dir(r, rel);
					walk(r, rel); /* files created before the watch */
				} else if (ev->mask & IN_MOVED_FROM) {
					r->walk_due = 1;
				}
			} else if (!(ev->mask & IN_MOVED_FROM)) {
				look_at_file(r, rel);
			}
			free(rel);
		}
		pthread_mutex_lock(&r->mu);
		r->st.events += count;
		pthread_mutex_unlock(&r->mu);
	}
}

/* Looks again at the candidates whose settle time is up. */
static void settle(struct rescan *r)
{
	int64_t now = mono_ms();
	struct scan_openset *open = NULL;
	int loaded = 0;
	/* Entries re-queued below go to the tail with a later due time, so
	 * this stops at the first one not yet due. */
	while (r->head && r->head->due_ms <= now && !stopping(r)) {
		struct cand *c = r->head;
		struct stat st;
		if (stat_beneath(r, c->rel, &st) < 0 || !S_ISREG(st.st_mode)) {
			cand_drop(r, c);
			continue;
		}
		int same = st.st_size == c->size && ts_ns(&st.st_mtim) == c->mtime_ns &&
			   ts_ns(&st.st_ctim) == c->ctime_ns && st.st_ino == c->ino;
		if (same && !loaded) {
			if (scan_openset_load(&open) < 0)
				open = NULL;
			loaded = 1;
		}
		if (!same || scan_openset_has(open, st.st_dev, st.st_ino) || busy(r, c->rel)) {
			if (same)
				log_debug("%s: open for writing; waiting", c->rel);
			cand_observe(c, &st);
			c->due_ms = now + (int64_t)r->cfg.settle * 1000;
			fifo_unlink(r, c);
			fifo_append(r, c);
			if (r->cfg.settle == 0)
				break; /* looked at once this round */
			continue;
		}
		scan_submit(r->sc, r->rootfd, c->rel, st.st_size);
		cand_drop(r, c);
	}
	scan_openset_free(open);
	scan_flush(r->sc);
}

/* ---------- jobs ---------- */

struct job_tick {
	struct rescan *r;
	struct job *j;
	int64_t last_ms;
};

static void job_counts(struct job *j, const struct scan_stats *st)
{
	j->files_total = (int64_t)st->queued;
	j->files_done = (int64_t)st->done;
	j->bytes_total = (int64_t)st->queued_bytes;
	j->bytes_done = (int64_t)st->done_bytes;
	j->files_failed = (int64_t)st->failed;
	j->files_skipped = (int64_t)(st->unchanged + st->busy + st->hook_skipped + st->excluded +
				     st->not_regular);
}

/* Progress once a second; a stop asked in the jobs table, or the daemon
 * stopping, cancels the run. */
static int job_tick_fn(void *arg, const struct scan_stats *st, int walking)
{
	struct job_tick *t = arg;
	if (stopping(t->r))
		return 1;
	int64_t now = mono_ms();
	if (now - t->last_ms < 1000)
		return 0;
	t->last_ms = now;
	job_counts(t->j, st);
	int stop = 0;
	job_progress(t->r->jdb, t->j, &stop);
	return stop;
}

static void run_job(struct rescan *r, const char *name)
{
	struct job j;
	if (job_get(r->jdb, name, &j) < 0)
		return;
	char err[256] = "";
	struct sj_spec *s = NULL;
	struct s3_client *s3 = r->s3, *own = NULL;
	const char *state = "failed";
	int64_t next = 0;
	int rc = sj_parse_job(j.args, j.source, j.target, &s, err, sizeof err);
	if (rc == 0 && s->run != SJ_WATCH && s->cfg.mode != SCAN_REGISTER && !s->source) {
		snprintf(err, sizeof err, "no source directory");
		rc = -EINVAL;
	}
	if (rc == 0 && strcmp(s->bucket, r->cfg.scan.bucket ? r->cfg.scan.bucket : "") != 0) {
		if (!r->have_s3cfg) {
			snprintf(err, sizeof err, "bucket %s is not this daemon's and no S3 settings "
						  "are at hand", s->bucket);
			rc = -EINVAL;
		} else {
			struct s3_config c = r->s3cfg;
			c.bucket = s->bucket;
			if ((rc = s3_client_new(&c, &own)) < 0)
				snprintf(err, sizeof err, "S3 client for %s: %s", s->bucket, strerror(-rc));
			else
				s3 = own;
		}
	}
	free(j.last_error);
	j.last_error = NULL;
	struct scan_stats st = {0};
	struct job_tick t = {.r = r, .j = &j};
	if (rc == 0 && s->run == SJ_WATCH) {
		/* A watching job: a rescanner of its own until stopped. */
		struct job_lock *lockfd = NULL;
		rc = scan_lock(r->catalog_file, s->name, &lockfd);
		struct rescan *w = NULL;
		if (rc == 0) {
			scan_recover(r->cat, r->catalog_file, s3, s->bucket, s->source_tag);
			struct rescan_config wc = {.dir = s->source, .interval = s->interval > 0 ? s->interval : 600,
						   .settle = s->settle, .scan = s->cfg};
			rc = rescan_start(&wc, r->cat, s3, r->pool, &w);
		}
		if (rc == 0) {
			log_notice("job %s: watching %s -> %s", name, s->source, s->target);
			for (;;) {
				struct rescan_stats rs;
				rescan_get_stats(w, &rs);
				t.last_ms = 0;
				if (job_tick_fn(&t, &rs.scan, 1))
					break;
				struct timespec ts = {1, 0};
				nanosleep(&ts, NULL);
			}
			struct rescan_stats rs;
			rescan_stop_stats(w, &rs);
			job_counts(&j, &rs.scan);
			state = "stopped";
		} else {
			snprintf(err, sizeof err, "%s", rc == -EBUSY ? "another run of it is in progress"
								    : strerror(-rc));
		}
		scan_unlock(lockfd);
	} else if (rc == 0) {
		log_notice("job %s: run %lld: %s -> %s (%s)", name, (long long)j.runs,
			   s->source ? s->source : s->target, s->target, scan_mode_name(s->cfg.mode));
		int64_t t0 = mono_ms();
		rc = sj_pass(s, r->catalog_file, r->cat, s3, r->pool, job_tick_fn, &t, &st);
		char sum[512];
		sj_summary(&st, (double)(mono_ms() - t0) / 1000, sum, sizeof sum);
		free(j.summary);
		j.summary = strdup(sum);
		job_counts(&j, &st);
		log_notice("job %s: %s", name, sum);
		if (rc == -ECANCELED)
			state = "stopped";
		else if (s->run == SJ_INTERVAL)
			state = "waiting", next = wall_ns() + (int64_t)s->interval * 1000000000;
		else
			state = rc == 0 ? "done" : "failed";
		if (rc < 0 && rc != -ECANCELED)
			snprintf(err, sizeof err, "%s", rc == -EIO ? "some files failed" : strerror(-rc));
	}
	if (err[0]) {
		j.last_error = strdup(err);
		log_err("job %s: %s", name, err);
	}
	if (stopping(r) && s && (rc == -ECANCELED || s->run == SJ_WATCH)) {
		/* The daemon is going away, not the job: it runs again at the
		 * next start (a stop asked for in the table still wins). */
		state = s->run == SJ_INTERVAL ? "waiting" : "queued";
		next = 0;
	}
	job_finish(r->jdb, &j, state, next);
	if (own)
		s3_client_free(own);
	sj_free(s);
	job_clear(&j);
}

static void *job_main(void *arg)
{
	struct jobrun *jr = arg;
	run_job(jr->r, jr->name);
	pthread_mutex_lock(&jr->r->mu);
	jr->done = 1;
	pthread_mutex_unlock(&jr->r->mu);
	return NULL;
}

static int job_running_here(struct rescan *r, const char *name)
{
	for (struct jobrun *j = r->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return 1;
	return 0;
}

static int job_consider(const struct job *j, void *arg)
{
	struct rescan *r = arg;
	pthread_mutex_lock(&r->mu);
	int here = job_running_here(r, j->name);
	pthread_mutex_unlock(&r->mu);
	if (here || j->stop)
		return 0;
	int64_t stale = JOB_STALE_NS;
	if (j->runner && strcmp(j->state, "running") == 0) {
		/* Its runner on this host is dead (kill -9, crash): no need to
		 * wait for the heartbeat to go stale. */
		const char *at = strchr(j->runner, '@');
		int pid = atoi(j->runner);
		if (at && strcmp(at + 1, strchr(r->runner, '@') + 1) == 0 && pid > 0 &&
		    pid != (int)getpid() && kill(pid, 0) < 0 && errno == ESRCH)
			stale = -1000000000; /* any heartbeat */
	}
	if (job_claim(r->jdb, j->name, r->runner, stale) < 0)
		return 0;
	struct jobrun *jr = calloc(1, sizeof *jr);
	if (!jr || !(jr->name = strdup(j->name))) {
		free(jr);
		return 0;
	}
	jr->r = r;
	if (pthread_create(&jr->thread, NULL, job_main, jr) != 0) {
		struct job k = {.name = j->name, .last_error = "cannot start a thread"};
		job_finish(r->jdb, &k, "failed", 0);
		free(jr->name);
		free(jr);
		return 0;
	}
	pthread_mutex_lock(&r->mu);
	jr->next = r->jobs;
	r->jobs = jr;
	r->st.jobs_started++;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Joins finished job threads; with all, every one (after a stop). */
static void jobs_reap(struct rescan *r, int all)
{
	for (;;) {
		pthread_mutex_lock(&r->mu);
		struct jobrun **pp = &r->jobs, *jr = NULL;
		while (*pp) {
			if ((*pp)->done || all) {
				jr = *pp;
				*pp = jr->next;
				break;
			}
			pp = &(*pp)->next;
		}
		pthread_mutex_unlock(&r->mu);
		if (!jr)
			return;
		pthread_join(jr->thread, NULL);
		free(jr->name);
		free(jr);
	}
}

static void jobs_poll(struct rescan *r)
{
	jobs_reap(r, 0);
	job_list(r->jdb, job_consider, r);
	r->next_jobs_ms = mono_ms() + JOB_POLL_MS;
}

/* ---------- the thread ---------- */

static void *rescan_main(void *arg)
{
	struct rescan *r = arg;
	if (r->jdb) {
		/* Rows of scans that died with the previous daemon (or an
		 * lzfsctl that was killed): abort their uploads. */
		int n = scan_recover(r->cat, r->catalog_file, r->s3, r->cfg.scan.bucket, "scan:*");
		if (n > 0)
			log_notice("rescan: %d interrupted scan file(s) will be uploaded again", n);
	}
	full_walk(r);
	while (!stopping(r)) {
		int64_t now = mono_ms();
		int64_t wait = r->next_walk_ms - now;
		if (r->head && r->head->due_ms - now < wait)
			wait = r->head->due_ms - now;
		if (r->jdb && r->next_jobs_ms - now < wait)
			wait = r->next_jobs_ms - now;
		if (r->fsc && r->next_fsc_ms - now < wait)
			wait = r->next_fsc_ms - now;
		if (r->walk_due || wait < 0)
			wait = 0;
		if (wait > 60000)
			wait = 60000;
		struct pollfd p[2] = {{.fd = r->ifd, .events = POLLIN}, {.fd = r->efd, .events = POLLIN}};
		int n = poll(p, 2, (int)wait);
		if (n < 0 && errno != EINTR) {
			log_err("rescan %s: poll: %s", r->dir, strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			uint64_t v;
			if (read(r->efd, &v, sizeof v) < 0)
				v = 0;
		}
		if (stopping(r))
			break;
		if (p[0].revents & POLLIN)
			read_events(r);
		if (r->fsc && mono_ms() >= r->next_fsc_ms) {
			fsc_read(r->fsc);
			r->next_fsc_ms = mono_ms() + FSC_READ_MS;
		}
		if (__atomic_exchange_n(&r->walk_req, 0, __ATOMIC_ACQ_REL))
			r->walk_due = 1;
		if (r->walk_due || mono_ms() >= r->next_walk_ms)
			full_walk(r);
		settle(r);
		if (r->jdb && mono_ms() >= r->next_jobs_ms)
			jobs_poll(r);
		pthread_mutex_lock(&r->mu);
		r->st.tracked = r->ncand;
		r->st.watches = r->nwatch;
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

static void wake(struct rescan *r)
{
	uint64_t one = 1;
	if (write(r->efd, &one, sizeof one) < 0)
		log_debug("rescan: wake: %s", strerror(errno));
}

void rescan_walk_now(struct rescan *r)
{
	__atomic_store_n(&r->walk_req, 1, __ATOMIC_RELEASE);
	wake(r);
}

void rescan_get_stats(struct rescan *r, struct rescan_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->st;
	pthread_mutex_unlock(&r->mu);
	scan_get_stats(r->sc, &out->scan);
}

static void rescan_free(struct rescan *r)
{
	scan_free(r->sc);
	for (size_t i = 0; i < r->ccap; i++) {
		for (struct cand *c = r->ctab[i], *n; c; c = n) {
			n = c->hnext;
			free(c->rel);
			free(c);
		}
	}
	free(r->ctab);
	for (size_t i = 0; i < r->wcap; i++) {
		for (struct wdent *w = r->wtab[i], *n; w; w = n) {
			n = w->next;
			free(w->rel);
			free(w);
		}
	}
	free(r->wtab);
	for (size_t i = 0; i < r->kdcap; i++)
		kdir_clear(&r->kdirs[i]);
	free(r->kdirs);
	free(r->knew);
	fsc_close(r->fsc);
	job_db_close(r->jdb);
	if (r->ifd >= 0)
		close(r->ifd);
	if (r->efd >= 0)
		close(r->efd);
	if (r->rootfd >= 0)
		close(r->rootfd);
	free(r->dir);
	free(r->catalog_file);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int rescan_start(const struct rescan_config *cfg, struct cat *cat, struct s3_client *s3,
		 struct up_pool *pool, struct rescan **out)
{
	*out = NULL;
	struct rescan *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->rootfd = r->ifd = r->efd = -1;
	pthread_mutex_init(&r->mu, NULL);
	if (r->cfg.interval <= 0)
		r->cfg.interval = 600;
	if (r->cfg.settle < 0)
		r->cfg.settle = 5;
	r->cat = cat;
	r->s3 = s3;
	r->pool = pool;
	int rc = 0;
	char err[256] = "";
	if (!(r->dir = strdup(cfg->dir)) ||
	    (cfg->catalog_file && !(r->catalog_file = strdup(cfg->catalog_file)))) {
		rc = -ENOMEM;
		goto fail;
	}
	r->cfg.dir = r->dir;
	r->cfg.catalog_file = r->catalog_file;
	if (cfg->s3cfg) {
		r->s3cfg = *cfg->s3cfg;
		r->have_s3cfg = 1;
	}
	r->rootfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->rootfd < 0) {
		rc = -errno;
		log_err("rescan %s: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->ifd < 0 || r->efd < 0) {
		rc = -errno;
		log_err("rescan %s: inotify: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	r->cfg.scan.known = known_cb;
	r->cfg.scan.known_arg = r;
	if (!cfg->stat_all) {
		if (fsc_open(cfg->dir, &r->fsc, err, sizeof err) == 0) {
			r->cfg.scan.known_name = known_name_cb;
			log_info("rescan %s: filesystem change events on: walks after the first "
				 "stat only files that changed (one walk in %d stats every file)",
				 cfg->dir, STAT_EVERY);
		} else {
			log_info("rescan %s: no filesystem change events (%s): every walk stats "
				 "every file", cfg->dir, err);
		}
		err[0] = '\0';
	}
	if ((rc = scan_new(&r->cfg.scan, cat, s3, pool, &r->sc, err, sizeof err)) < 0) {
		log_err("rescan %s: %s", cfg->dir, err[0] ? err : strerror(-rc));
		goto fail;
	}
	if (cfg->run_jobs && cfg->catalog_file) {
		char host[64] = "";
		gethostname(host, sizeof host - 1);
		snprintf(r->runner, sizeof r->runner, "%d@%s", (int)getpid(), host);
		if ((rc = job_db_open(cfg->catalog_file, &r->jdb)) < 0)
			goto fail;
	}
	if ((rc = pthread_create(&r->thread, NULL, rescan_main, r)) != 0) {
		rc = -rc;
		goto fail;
	}
	log_info("rescan %s: watching (full walk every %d s, settle %d s, %d workers, %d files per task%s)",
		 r->dir, r->cfg.interval, r->cfg.settle, r->cfg.scan.workers > 0 ? r->cfg.scan.workers : 8,
		 r->cfg.scan.files_per_task > 0 ? r->cfg.scan.files_per_task : 50,
		 r->jdb ? ", running scan jobs" : "");
	*out = r;
	return 0;
fail:
	rescan_free(r);
	return rc;
}

void rescan_stop(struct rescan *r) { rescan_stop_stats(r, NULL); }

void rescan_stop_stats(struct rescan *r, struct rescan_stats *out)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	pthread_mutex_unlock(&r->mu);
	wake(r);
	pthread_join(r->thread, NULL);
	/* Job threads see stopping() at their next tick. */
	jobs_reap(r, 1);
	scan_cancel(r->sc);
	scan_wait(r->sc);
	if (out)
		rescan_get_stats(r, out);
	rescan_free(r);
}
