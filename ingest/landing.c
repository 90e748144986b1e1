/* landing.c - see landing.h for the contract; docs/design.md for the story
 * of a byte.
 *
 * Locking, outermost first:
 *   node->mu    one per open path: serializes writes, truncates and commits
 *               of that file (a file is one stream).
 *   land->lock  the table of open nodes and node paths (rename rewrites them).
 *   node->idmu  the catalog row of the version being written; upload worker
 *               hooks take only this one, never node->mu (the writer may hold
 *               node->mu while it waits for those workers).
 *   land->qmu   the background work queue.
 */
#include "landing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hash.h"
#include "beneath.h"
#include "log.h"
#include "mpulog.h"
#include "reader.h"
#include "versions.h"
#include "xattrs.h"

#define NODE_BUCKETS 256

struct node {
	struct node *next;
	char *path;               /* protected by land->lock */
	int refs;                 /* protected by land->lock */
	pthread_mutex_t mu;
	int dirty;                /* content changed since the last commit */
	int unlinked;
	int writers;              /* handles open for writing */
	struct up_stream *st;     /* streaming upload of the current content */
	int st_fd;
	char *st_key;
	char *st_mpu_id;          /* multipart upload of the stream, once created */
	pthread_mutex_t idmu;
	int64_t obj_id;           /* row of the version being written, 0 if none */
	int obj_uploading;        /* that row is in state uploading */
	struct land *l;
};

struct land_fh {
	struct land *l;
	struct node *n;
	int fd;                   /* spool file, or -1 when reading from S3 */
	int flags;
	struct rd_reader *rd;     /* an evicted file read from S3 */
	struct stat rd_st;
};

struct work {
	struct work *next;
	struct node *n;           /* commit this node (durability=async), or */
	int64_t obj_id;           /* upload this pending row from the spool, or */
	int orphans;              /* abort leftover multipart uploads, or */
	int sweep;                /* abort every upload under the prefix older than the start, or */
	int evict;                /* run the retention policy, or */
	char *ksweep;             /* abort the uploads of this key S3 dates in [kfrom, kto] */
	time_t kfrom, kto;
	struct timespec due;
	int attempts;
};

struct land {
	struct land_config cfg;
	char *bucket, *prefix, *spool_dir, *mountpoint;
	struct s3_client *s3;
	struct cat *cat;
	struct up_pool *pool;
	int rootfd;
	struct mpl *mpl;
	struct rd_pool *rd;
	time_t started;           /* uploads initiated before this are leftovers */

	pthread_mutex_t lock;
	struct node *nodes[NODE_BUCKETS];
	int open_files;

	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct work *queue;
	int qlen;
	int stopping;
	struct timespec drain_deadline;
	pthread_t thread;

	pthread_mutex_t smu;
	struct land_stats stats;
};

static int preserve_previous(struct land *l, const char *path, const char *key, int64_t my_id);
static void obj_stat(const struct cat_obj *o, struct stat *st);

/* ---------- small helpers ---------- */

static int64_t ts_ns(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec; }

static void now_plus(struct timespec *t, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void stat_add(struct land *l, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&l->smu);
	*field += v;
	pthread_mutex_unlock(&l->smu);
}

/* The reserved top-level directory is neither visible nor reachable. */
static int reserved(const char *path)
{
	size_t n = strlen(LAND_RESERVED);
	return strncmp(path, LAND_RESERVED, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *land_key(const struct land *l, const char *path)
{
	char *key;
	if (l->prefix[0] == '\0')
		return strdup(path);
	if (asprintf(&key, "%s/%s", l->prefix, path) < 0)
		return NULL;
	return key;
}

/* Opens a path below the spool root without following any symlink on the
 * way, so nothing dropped into the spool out-of-band can lead outside it.
 * An existing entry is first looked at through an O_PATH descriptor and
 * opened only if it is a regular file or a directory: a FIFO, socket or
 * device put in place of a file the kernel still caches as regular would
 * otherwise block the request thread for good or hand out the device. The
 * O_PATH descriptor is then reopened through /proc, so what is opened is
 * what was checked. */
static int open_beneath(struct land *l, const char *path, int flags, mode_t mode)
{
	int checked = !(flags & (O_CREAT | O_DIRECTORY));
	int fd = beneath_open(l->rootfd, path, checked ? O_PATH : flags, mode);
	if (fd < 0)
		return fd == -ELOOP ? -ENOENT : fd;
	if (!checked)
		return fd;
	struct stat st;
	char proc[64];
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		rc = -ENXIO;
	if (rc == 0) {
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		rc = open(proc, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
		if (rc < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

/* Parent directory fd of path and its last component. */
static int open_parent(struct land *l, const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*name = path;
		int fd = fcntl(l->rootfd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	char dir[PATH_MAX];
	size_t n = (size_t)(slash - path);
	if (n >= sizeof dir)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	*name = slash + 1;
	return open_beneath(l, dir, O_RDONLY | O_DIRECTORY, 0);
}

/* ---------- nodes ---------- */

static unsigned hash_path(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NODE_BUCKETS;
}

/* Finds the node of path (refs+1); creates it if create. */
static struct node *node_get(struct land *l, const char *path, int create)
{
	pthread_mutex_lock(&l->lock);
	unsigned h = hash_path(path);
	struct node *n;
	for (n = l->nodes[h]; n; n = n->next)
		if (strcmp(n->path, path) == 0)
			break;
	if (!n && create) {
		n = calloc(1, sizeof *n);
		if (n && !(n->path = strdup(path))) {
			free(n);
			n = NULL;
		}
		if (n) {
			pthread_mutex_init(&n->mu, NULL);
			pthread_mutex_init(&n->idmu, NULL);
			n->st_fd = -1;
			n->l = l;
			n->next = l->nodes[h];
			l->nodes[h] = n;
		}
	}
	if (n)
		n->refs++;
	pthread_mutex_unlock(&l->lock);
	return n;
}

static void node_unlink_locked(struct land *l, struct node *n)
{
	struct node **pp = &l->nodes[hash_path(n->path)];
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (*pp)
		*pp = n->next;
}

static void node_put(struct land *l, struct node *n)
{
	pthread_mutex_lock(&l->lock);
	int last = --n->refs == 0;
	if (last)
		node_unlink_locked(l, n);
	pthread_mutex_unlock(&l->lock);
	if (!last)
		return;
	if (n->st)
		up_stream_abort(n->st);
	if (n->st_fd >= 0)
		close(n->st_fd);
	pthread_mutex_destroy(&n->mu);
	pthread_mutex_destroy(&n->idmu);
	free(n->st_key);
	free(n->st_mpu_id);
	free(n->path);
	free(n);
}

int land_is_busy(struct land *l, const char *path)
{
	struct node *n = node_get(l, path, 0);
	if (!n)
		return 0;
	node_put(l, n);
	return 1;
}

/* Copy of the node's current path (it changes on rename). */
static char *node_path(struct land *l, struct node *n)
{
	pthread_mutex_lock(&l->lock);
	char *p = strdup(n->path);
	pthread_mutex_unlock(&l->lock);
	return p;
}

/* Renames open nodes: the node at `from` and, for a directory, all below. */
static void nodes_rename(struct land *l, const char *from, const char *to)
{
	size_t fl = strlen(from);
	pthread_mutex_lock(&l->lock);
	struct node *moved = NULL;
	for (int b = 0; b < NODE_BUCKETS; b++) {
		struct node **pp = &l->nodes[b];
		while (*pp) {
			struct node *n = *pp;
			if (strncmp(n->path, from, fl) == 0 && (n->path[fl] == '\0' || n->path[fl] == '/')) {
				char *np;
				if (asprintf(&np, "%s%s", to, n->path + fl) >= 0) {
					free(n->path);
					n->path = np;
				}
				*pp = n->next;
				n->next = moved;
				moved = n;
				continue;
			}
			pp = &n->next;
		}
	}
	while (moved) {
		struct node *n = moved;
		moved = n->next;
		unsigned h = hash_path(n->path);
		n->next = l->nodes[h];
		l->nodes[h] = n;
	}
	pthread_mutex_unlock(&l->lock);
}

/* ---------- catalog rows ---------- */

static void fill_obj(struct land *l, struct cat_obj *o, const char *path, const char *key,
		     const struct stat *st)
{
	cat_obj_from_stat(o, path, l->bucket, key, st, "mount");
}

/* The row of the version being written: created pending on first need. */
static int node_ensure_row(struct land *l, struct node *n, int fd, int64_t *id)
{
	int rc = 0;
	pthread_mutex_lock(&n->idmu);
	if (!n->obj_id) {
		struct stat st;
		char *path = node_path(l, n);
		char *key = path ? land_key(l, path) : NULL;
		if (!key) {
			rc = -ENOMEM;
		} else if (fstat(fd, &st) < 0) {
			rc = -errno;
		} else {
			struct cat_obj o;
			fill_obj(l, &o, path, key, &st);
			o.state = CAT_PENDING;
			rc = cat_obj_add(l->cat, &o);
			if (rc == 0) {
				n->obj_id = o.id;
				n->obj_uploading = 0;
			}
		}
		free(key);
		free(path);
	}
	*id = n->obj_id;
	pthread_mutex_unlock(&n->idmu);
	return rc;
}

/* On a catalog shared by several hosts (PostgreSQL) a version claims its
 * path before its content changes: its pending row exists before a byte
 * can reach the path's key, and the catalog refuses the row (-EBUSY,
 * logged with the other host's name) while another host has a version of
 * the path in flight. The writer gets EBUSY at once, instead of two hosts
 * uploading to one key and a row naming the other host's bytes. On one
 * host (SQLite) there is nobody to claim from: small files keep their
 * single registration at close. Called with n->mu held. */
static int node_claim(struct land *l, struct node *n, int fd)
{
	if (!cat_shared(l->cat))
		return 0;
	int64_t id;
	int rc = node_ensure_row(l, n, fd, &id);
	if (rc == -EBUSY) {
		char *path = node_path(l, n);
		log_err("%s: refused (EBUSY): another landing host is writing this path; it can be "
			"written here once that version is ingested", path ? path : "?");
		free(path);
	}
	return rc;
}

static void queue_key_sweep(struct land *l, const char *key, time_t from, time_t to,
			    int delay_ms, int attempts);

static void hook_created(void *arg, const char *upload_id)
{
	struct node *n = arg;
	int64_t id;
	mpl_add(n->l->mpl, n->st_key, upload_id, n);
	pthread_mutex_lock(&n->idmu);
	free(n->st_mpu_id);
	n->st_mpu_id = strdup(upload_id);
	pthread_mutex_unlock(&n->idmu);
	if (node_ensure_row(n->l, n, n->st_fd, &id) != 0)
		return; /* logged by the catalog; the upload goes on, registration at close */
	pthread_mutex_lock(&n->idmu);
	if (cat_obj_set_uploading(n->l->cat, id, upload_id) == 0)
		n->obj_uploading = 1;
	pthread_mutex_unlock(&n->idmu);
}

static void hook_create_unknown(void *arg, time_t from, time_t to)
{
	struct node *n = arg;
	queue_key_sweep(n->l, n->st_key, from, to, n->l->cfg.retry_secs * 1000, 0);
}

static void hook_part_done(void *arg, int part_number, const char *etag, uint64_t size)
{
	struct node *n = arg;
	pthread_mutex_lock(&n->idmu);
	int64_t id = n->obj_id;
	pthread_mutex_unlock(&n->idmu);
	if (id)
		cat_obj_part_done(n->l->cat, id, part_number, etag, (int64_t)size);
}

/* Records a verified upload: the node's row becomes ingested, or a new row
 * is registered as ingested in one transaction. */
static int node_register(struct land *l, struct node *n, int fd, const char *key,
			 const struct up_result *res)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	char *path = node_path(l, n);
	if (!path)
		return -ENOMEM;
	int rc;
	pthread_mutex_lock(&n->idmu);
	if (n->obj_id) {
		rc = 0;
		if (!n->obj_uploading)
			rc = cat_obj_set_uploading(l->cat, n->obj_id, NULL);
		if (rc == 0)
			rc = cat_obj_set_ingested(l->cat, n->obj_id, (int64_t)res->size, res->sha256,
						  res->etag);
		/* Registered once ingested: attributes are secondary (the catalog logs why). */
		if (rc == 0)
			cat_obj_set_attr(l->cat, n->obj_id, st.st_mode, st.st_uid, st.st_gid,
					 ts_ns(&st.st_mtim));
	} else {
		struct cat_obj o;
		fill_obj(l, &o, path, key, &st);
		o.size = (int64_t)res->size;
		o.state = CAT_INGESTED;
		memcpy(o.sha256, res->sha256, sizeof o.sha256);
		snprintf(o.etag, sizeof o.etag, "%s", res->etag);
		rc = cat_obj_add(l->cat, &o);
	}
	/* A row the catalog could not move to ingested (disk full, I/O error)
	 * stays the node's, so the fallback parks it pending with a retry
	 * instead of leaving it `uploading` until the next start. */
	if (rc == 0) {
		n->obj_id = 0;
		n->obj_uploading = 0;
	}
	pthread_mutex_unlock(&n->idmu);
	if (rc == 0) {
		xa_import(l->cat, fd, path);
		pthread_mutex_lock(&l->smu);
		l->stats.files_ingested++;
		l->stats.bytes_ingested += res->size;
		pthread_mutex_unlock(&l->smu);
		log_file_event(LZ_INFO, path, key, (long long)res->size, -1, 0,
			       "ingested %s -> s3://%s/%s (%llu bytes, sha256 %s)", path, l->bucket, key,
			       (unsigned long long)res->size, res->sha256);
	}
	free(path);
	return rc;
}

/* ---------- multipart uploads to settle ---------- */

/* Hooks of up_file(): journal the upload it creates, keep its id. */
struct file_hook {
	struct land *l;
	struct node *n;          /* for part_done into the catalog, may be NULL */
	const void *owner;
	const char *key;
	char *id;
};

static void hook_file_created(void *arg, const char *upload_id)
{
	struct file_hook *h = arg;
	mpl_add(h->l->mpl, h->key, upload_id, h->owner);
	free(h->id);
	h->id = strdup(upload_id);
}

static void hook_file_create_unknown(void *arg, time_t from, time_t to)
{
	struct file_hook *h = arg;
	queue_key_sweep(h->l, h->key, from, to, h->l->cfg.retry_secs * 1000, 0);
}

static void hook_file_part_done(void *arg, int part_number, const char *etag, uint64_t size)
{
	struct file_hook *h = arg;
	if (h->n)
		hook_part_done(h->n, part_number, etag, size);
}

static void queue_push(struct land *l, struct node *n, int64_t obj_id, int delay_ms, int attempts);

/* Work becomes due delay_ms from now; the background thread is woken. */
static void queue_add(struct land *l, struct work *w, int delay_ms)
{
	now_plus(&w->due, delay_ms);
	pthread_mutex_lock(&l->qmu);
	w->next = l->queue;
	l->queue = w;
	l->qlen++;
	pthread_cond_signal(&l->qcv);
	pthread_mutex_unlock(&l->qmu);
}

enum special { SP_ORPHANS, SP_EVICT, SP_SWEEP };

static void queue_special(struct land *l, enum special what, int delay_ms)
{
	struct work *w = calloc(1, sizeof *w);
	if (!w)
		return;
	w->orphans = what == SP_ORPHANS;
	w->evict = what == SP_EVICT;
	w->sweep = what == SP_SWEEP;
	queue_add(l, w, delay_ms);
}

/* How often retention looks: a quarter of evict-after (1 s .. 60 s), or
 * every 30 s for a fill level. */
static int evict_interval_ms(struct land *l)
{
	int64_t ms = l->cfg.evict_after_secs > 0 ? l->cfg.evict_after_secs * 250 : 30000;
	return (int)(ms < 1000 ? 1000 : ms > 60000 ? 60000 : ms);
}

static void evict_pass(struct land *l);

struct settle_ctx {
	struct land *l;
	const char *ok_id;
	int left;
};

static int settle_one(const char *key, const char *upload_id, void *arg)
{
	struct settle_ctx *c = arg;
	if (c->ok_id && strcmp(upload_id, c->ok_id) == 0)
		return 1; /* completed */
	if (s3_mpu_abort(c->l->s3, key, upload_id, NULL) == 0)
		return 1;
	c->left++;
	return 0;
}

/* After a commit (or a failed one): every multipart upload the owner
 * created but did not complete is aborted; those S3 does not confirm stay
 * in the journal and the background thread tries again. */
static void settle_uploads(struct land *l, const void *owner, const char *ok_id)
{
	struct settle_ctx c = {.l = l, .ok_id = ok_id};
	mpl_settle(l->mpl, owner, settle_one, &c);
	if (c.left) {
		log_warn("%d multipart upload(s) could not be aborted now; retrying in the background",
			 c.left);
		queue_special(l, SP_ORPHANS, l->cfg.retry_secs * 1000);
	}
}

/* An upload can exist that nobody recorded: S3 created it, and the daemon
 * died before the answer arrived. At start every upload under the prefix
 * that S3 says was initiated before this process started is such a
 * leftover (this daemon owns its prefix) and is aborted. */
/* On a shared catalog, the age past which an upload no row records is a
 * leftover. A stream's upload is in its row moments after S3 creates it,
 * but an upload from the spool (a retry) is only in its host's journal:
 * the grace is longer than such an upload takes. */
#define SWEEP_GRACE_S (24 * 3600)

struct sweep_ctx {
	struct land *l;
	int all;
	int aborted, failed;
	int young;                /* shared: leftovers maybe, too young to tell */
};

static int sweep_one(const struct s3_upload_entry *u, void *arg)
{
	struct sweep_ctx *c = arg;
	if (cat_shared(c->l->cat)) {
		/* Other hosts upload under the same prefix: a leftover is one
		 * S3 dates before our start and SWEEP_GRACE_S ago that no
		 * other host's row records (a catalog error leaves it too). */
		if (u->initiated == 0 || u->initiated >= c->l->started)
			return 0;
		if (time(NULL) - u->initiated < SWEEP_GRACE_S) {
			c->young++;
			return 0;
		}
		if (cat_upload_foreign(c->l->cat, u->upload_id) != 0)
			return 0;
	} else if (!c->all && (u->initiated == 0 || u->initiated >= c->l->started)) {
		/* Before the mount serves anything (all set) every upload is
		 * a leftover; later, only those S3 dates before our start. */
		return 0;
	}
	if (s3_mpu_abort(c->l->s3, u->key, u->upload_id, NULL) == 0) {
		c->aborted++;
		mpl_remove(c->l->mpl, u->upload_id);
	} else {
		c->failed++;
	}
	return 0;
}

static int sweep_uploads(struct land *l, int all)
{
	struct sweep_ctx c = {.l = l, .all = all};
	char *prefix = NULL;
	if (l->prefix[0] && asprintf(&prefix, "%s/", l->prefix) < 0)
		return -ENOMEM;
	int rc = s3_list_uploads(l->s3, prefix, sweep_one, &c, NULL);
	free(prefix);
	if (rc == -ENOTSUP || rc == -ENOSYS)
		return 0; /* a store without ListMultipartUploads: the journal must do */
	if (c.aborted)
		log_notice("recovery: aborted %d multipart upload(s) left from before the start",
			   c.aborted);
	if (c.young)
		queue_special(l, SP_SWEEP, SWEEP_GRACE_S * 1000);
	return rc < 0 ? rc : c.failed ? -EAGAIN : 0;
}

/* An upload S3 may have created without its id reaching us (the answer to
 * CreateMultipartUpload lost or unreadable) is found by its key and date,
 * and aborted unless it is one we know of (the journal) or another host's.
 * Live uploads are in the journal from the moment S3's answer is read. */
static void queue_key_sweep(struct land *l, const char *key, time_t from, time_t to,
			    int delay_ms, int attempts)
{
	struct work *w = calloc(1, sizeof *w);
	if (!w || !(w->ksweep = strdup(key))) {
		free(w);
		log_warn("%s: out of memory; an upload S3 may have created for it is left to the next "
			 "start's sweep", key);
		return;
	}
	w->kfrom = from;
	w->kto = to;
	w->attempts = attempts;
	queue_add(l, w, delay_ms);
}

static int ksweep_keep(void *arg, const char *upload_id)
{
	struct land *l = arg;
	return mpl_has(l->mpl, upload_id) ||
	       (cat_shared(l->cat) && cat_upload_foreign(l->cat, upload_id) != 0);
}

static int key_sweep(struct land *l, const struct work *w)
{
	int rc = up_abort_unknown(l->s3, w->ksweep, w->kfrom, w->kto, ksweep_keep, l);
	return rc < 0 ? rc : 0;
}

/* ---------- background work ---------- */

static void queue_push(struct land *l, struct node *n, int64_t obj_id, int delay_ms, int attempts)
{
	struct work *w = calloc(1, sizeof *w);
	if (!w) {
		log_err("out of memory queueing %s; it stays pending in the catalog",
			n ? n->path : "a retry");
		return;
	}
	w->n = n;
	w->obj_id = obj_id;
	w->attempts = attempts;
	queue_add(l, w, delay_ms);
}

static struct s3_put_opts put_opts = {.checksum_sha256 = 1};

/* S3 refused the object itself (a key it cannot store): retrying cannot
 * help, so the row becomes `failed` with the reason, and the file stays in
 * the spool for an admin to rename or fetch. Everything else (outages,
 * throttling, credentials being rotated, a missing bucket) is retried. */
static int permanent(int rc) { return rc == -EINVAL || rc == -ENAMETOOLONG; }

#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Why S3 cannot hold a symlink's target in its metadata (US-ASCII, 2 KB
 * with the name), or NULL. Such a symlink is `failed` with this reason. */
static const char *symlink_unstorable(const char *target)
{
	size_t n = strlen(target);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)target[i] < 0x20 || (unsigned char)target[i] > 0x7e)
			return "symlink target is not printable ASCII: S3 metadata cannot hold it";
	if (n > 2048 - strlen("lzfs-symlink"))
		return "symlink target is over 2 KB: S3 metadata cannot hold it";
	return NULL;
}

/* A symlink is an empty object whose metadata holds the target, so S3
 * alone can restore the tree. */
static int put_symlink(struct land *l, const char *key, const char *target,
		       char etag[S3_ETAG_MAX])
{
	struct s3_meta meta = {.name = "lzfs-symlink", .value = target};
	struct s3_put_opts opts = {.meta = &meta, .nmeta = 1, .checksum_sha256 = 1};
	struct s3_body body = {.buf = "", .fd = -1, .len = 0};
	return s3_put_object(l->s3, key, &body, &opts, etag, NULL);
}

/* retry_row for a symlink: there is no spool file to upload, only the target. */
static int retry_symlink(struct land *l, const struct cat_obj *o)
{
	char etag[S3_ETAG_MAX];
	const char *why = symlink_unstorable(o->symlink);
	int rc = why ? -EINVAL : put_symlink(l, o->key, o->symlink, etag);
	if (rc == 0 && (rc = cat_obj_set_uploading(l->cat, o->id, NULL)) == 0 &&
	    (rc = cat_obj_set_ingested(l->cat, o->id, 0, SHA256_EMPTY, etag)) == 0)
		log_info("ingested symlink %s -> s3://%s/%s", o->path, l->bucket, o->key);
	if (rc < 0 && (why || permanent(rc))) {
		cat_obj_set_failed(l->cat, o->id, why ? why : strerror(-rc));
		rc = 0;
	}
	return rc;
}

/* Uploads a pending row from its spool file (retries, recovery). */
static int retry_row(struct land *l, int64_t id)
{
	struct cat_obj o;
	int rc = cat_obj_get_id(l->cat, id, &o);
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	if (o.state != CAT_PENDING && o.state != CAT_FAILED && o.state != CAT_UPLOADING) {
		cat_obj_clear(&o);
		return 0;
	}
	if (o.upload_id) {
		/* A multipart upload from before a crash: its parts cannot be
		 * trusted to match the spool file any more, so start over. */
		s3_mpu_abort(l->s3, o.key, o.upload_id, NULL);
	}
	if (o.state != CAT_PENDING &&
	    (rc = cat_obj_set_pending(l->cat, id, o.upload_id ? "restart after interrupted upload"
							      : "retry")) < 0) {
		cat_obj_clear(&o); /* the catalog cannot be written now (disk full?): later */
		return rc;
	}
	if (o.symlink) {
		rc = retry_symlink(l, &o);
		cat_obj_clear(&o);
		return rc;
	}
	int fd = open_beneath(l, o.path, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		log_err("cannot upload %s: spool file is gone (%s); marking failed", o.path,
			strerror(-fd));
		cat_obj_set_failed(l->cat, id, "spool file missing");
		cat_obj_clear(&o);
		return 0;
	}
	struct up_result res;
	int owner;
	struct file_hook fh = {.l = l, .owner = &owner, .key = o.key};
	struct up_hooks hooks = {.created = hook_file_created,
				 .create_unknown = hook_file_create_unknown,
				 .arg = &fh};
	rc = cat_obj_set_uploading(l->cat, id, NULL);
	if (rc < 0) {
		/* A catalog error, not S3 refusing the key: retry later. */
		close(fd);
		cat_obj_clear(&o);
		return rc;
	}
	rc = preserve_previous(l, o.path, o.key, id);
	if (rc == 0)
		rc = up_file(l->pool, fd, o.key, &put_opts, &hooks, &res);
	settle_uploads(l, &owner, rc == 0 ? fh.id : NULL);
	free(fh.id);
	if (rc == 0) {
		rc = cat_obj_set_ingested(l->cat, id, (int64_t)res.size, res.sha256, res.etag);
		if (rc == 0) {
			xa_import(l->cat, fd, o.path);
			pthread_mutex_lock(&l->smu);
			l->stats.files_ingested++;
			l->stats.files_from_spool++;
			l->stats.bytes_ingested += res.size;
			pthread_mutex_unlock(&l->smu);
			log_file_event(LZ_INFO, o.path, o.key, (long long)res.size, -1, 0,
				       "ingested %s -> s3://%s/%s (%llu bytes, from the spool, sha256 %s)",
				       o.path, l->bucket, o.key, (unsigned long long)res.size, res.sha256);
		}
	} else if (permanent(rc)) {
		log_err("%s: S3 refuses s3://%s/%s (%s); marked failed, the file stays in the spool",
			o.path, l->bucket, o.key, strerror(-rc));
		cat_obj_set_failed(l->cat, id, strerror(-rc));
		rc = 0;
	} else {
		cat_obj_set_pending(l->cat, id, strerror(-rc)); /* the reason, visible until the retry */
	}
	close(fd);
	cat_obj_clear(&o);
	return rc;
}

static int commit_sync(struct land *l, struct node *n);

static void *land_thread(void *arg)
{
	struct land *l = arg;
	pthread_mutex_lock(&l->qmu);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (l->stopping && !ts_before(&now, &l->drain_deadline))
			break;
		/* The earliest due item; while stopping, only node commits
		 * (retries are safe in the catalog until the next start). */
		struct work **best = NULL;
		for (struct work **pp = &l->queue; *pp; pp = &(*pp)->next) {
			if (l->stopping && !(*pp)->n)
				continue;
			if (!best || ts_before(&(*pp)->due, &(*best)->due))
				best = pp;
		}
		if (!best) {
			if (l->stopping)
				break;
			pthread_cond_wait(&l->qcv, &l->qmu);
			continue;
		}
		if (!l->stopping && ts_before(&now, &(*best)->due)) {
			struct timespec due = (*best)->due;
			struct timespec abs;
			clock_gettime(CLOCK_REALTIME, &abs);
			long ms = (due.tv_sec - now.tv_sec) * 1000 + (due.tv_nsec - now.tv_nsec) / 1000000;
			abs.tv_sec += ms / 1000;
			abs.tv_nsec += (ms % 1000) * 1000000;
			if (abs.tv_nsec >= 1000000000) {
				abs.tv_sec++;
				abs.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&l->qcv, &l->qmu, &abs);
			continue;
		}
		struct work *w = *best;
		*best = w->next;
		l->qlen--;
		pthread_mutex_unlock(&l->qmu);

		if (w->sweep) {
			if (sweep_uploads(l, 0) < 0 && !l->stopping)
				queue_special(l, SP_SWEEP, l->cfg.retry_secs * 1000 * 4);
		} else if (w->ksweep) {
			if (key_sweep(l, w) < 0 && !l->stopping) {
				if (w->attempts < 8)
					queue_key_sweep(l, w->ksweep, w->kfrom, w->kto,
							l->cfg.retry_secs * 1000 << w->attempts,
							w->attempts + 1);
				else
					log_warn("%s: could not look for an upload S3 may have "
						 "created without its answer; the next start's "
						 "sweep aborts it", w->ksweep);
			}
		} else if (w->orphans) {
			settle_uploads(l, NULL, NULL);
		} else if (w->evict) {
			evict_pass(l);
			queue_special(l, SP_EVICT, evict_interval_ms(l));
		} else if (w->n) {
			pthread_mutex_lock(&w->n->mu);
			commit_sync(l, w->n);
			pthread_mutex_unlock(&w->n->mu);
			node_put(l, w->n);
		} else if (retry_row(l, w->obj_id) < 0) {
			int delay = l->cfg.retry_secs * 1000 << (w->attempts < 6 ? w->attempts : 6);
			if (delay > 300000)
				delay = 300000;
			queue_push(l, NULL, w->obj_id, delay, w->attempts + 1);
		}
		free(w->ksweep);
		free(w);
		pthread_mutex_lock(&l->qmu);
	}
	/* What is left stays pending in the catalog and in the spool. */
	int parked = 0;
	while (l->queue) {
		struct work *w = l->queue;
		l->queue = w->next;
		if (w->n) {
			pthread_mutex_unlock(&l->qmu);
			pthread_mutex_lock(&w->n->mu);
			if (w->n->st) {
				up_stream_abort(w->n->st);
				w->n->st = NULL;
			}
			pthread_mutex_unlock(&w->n->mu);
			node_put(l, w->n);
			pthread_mutex_lock(&l->qmu);
		}
		/* The periodic jobs (retention, orphan aborts, sweeps) are
		 * always queued: they are not files. */
		if (w->n || w->obj_id > 0)
			parked++;
		free(w->ksweep);
		free(w);
	}
	l->qlen = 0;
	pthread_mutex_unlock(&l->qmu);
	if (parked)
		log_warn("shutdown: %d file(s) not yet in S3 stay pending in the spool and the catalog; "
			 "they are uploaded at the next start", parked);
	return NULL;
}

static int queue_unfinished(const struct cat_obj *o, void *arg)
{
	struct land *l = arg;
	/* Rows of scan jobs name files outside the spool; the scan that owns
	 * them recovers them (ingest/scan.c scan_recover). */
	if (o->source && strncmp(o->source, "scan:", 5) == 0)
		return 0;
	log_notice("recovery: %s is %s; uploading it from the spool", o->path, cat_state_name(o->state));
	queue_push(l, NULL, o->id, 0, 0);
	return 0;
}

int land_open(const struct land_config *cfg, struct s3_client *s3, struct cat *cat,
	      struct up_pool *pool, struct land **out)
{
	struct land *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	l->started = time(NULL);
	if (l->cfg.drain_secs <= 0)
		l->cfg.drain_secs = 60;
	if (l->cfg.retry_secs <= 0)
		l->cfg.retry_secs = 5;
	l->bucket = strdup(cfg->bucket);
	l->prefix = strdup(cfg->prefix ? cfg->prefix : "");
	l->spool_dir = strdup(cfg->spool_dir);
	l->mountpoint = cfg->mountpoint ? strdup(cfg->mountpoint) : NULL;
	l->s3 = s3;
	l->cat = cat;
	l->pool = pool;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->qmu, NULL);
	pthread_cond_init(&l->qcv, NULL);
	pthread_mutex_init(&l->smu, NULL);
	int rc = 0;
	if (!l->bucket || !l->prefix || !l->spool_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	l->rootfd = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->rootfd < 0) {
		rc = -errno;
		log_err("landing directory %s: %s", cfg->spool_dir, strerror(errno));
		goto fail;
	}
	char *jfile = NULL;
	if (asprintf(&jfile, "%s/%s/uploads", cfg->spool_dir, LAND_RESERVED) < 0) {
		rc = -ENOMEM;
		close(l->rootfd);
		goto fail;
	}
	rc = mpl_open(jfile, &l->mpl);
	free(jfile);
	if (rc < 0) {
		close(l->rootfd);
		goto fail;
	}
	if (mpl_count(l->mpl) > 0)
		log_notice("recovery: %d multipart upload(s) from before are aborted in the background",
			   mpl_count(l->mpl));
	/* A shared (PostgreSQL) catalog: this spool's rows are ours alone
	 * (set before the sweep, which tells ours from other hosts'). */
	char host[256] = "", *owner = NULL;
	gethostname(host, sizeof host - 1);
	if (asprintf(&owner, "%s:%s", host, cfg->spool_dir) >= 0) {
		cat_set_owner(cat, owner);
		free(owner);
	}
	/* Nothing of ours is in flight yet (the background thread, the mount
	 * and the rescanner start after this): sweep every upload under the
	 * prefix now if S3 answers, else later with S3's dates to tell
	 * leftovers from new uploads. */
	int swept = sweep_uploads(l, 1);
	rc = pthread_create(&l->thread, NULL, land_thread, l);
	if (rc) {
		rc = -rc;
		mpl_close(l->mpl);
		close(l->rootfd);
		goto fail;
	}
	cat_unfinished(cat, queue_unfinished, l);
	if (mpl_count(l->mpl) > 0)
		queue_special(l, SP_ORPHANS, 0);
	if (swept < 0)
		queue_special(l, SP_SWEEP, l->cfg.retry_secs * 1000);
	if (l->cfg.evict_after_secs > 0 || l->cfg.high_watermark > 0)
		queue_special(l, SP_EVICT, evict_interval_ms(l));
	*out = l;
	return 0;
fail:
	free(l->mountpoint);
	free(l->bucket);
	free(l->prefix);
	free(l->spool_dir);
	free(l);
	return rc;
}

void land_close(struct land *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->qmu);
	l->stopping = 1;
	now_plus(&l->drain_deadline, l->cfg.drain_secs * 1000);
	pthread_cond_broadcast(&l->qcv);
	pthread_mutex_unlock(&l->qmu);
	pthread_join(l->thread, NULL);
	/* Open nodes at this point belong to handles the kernel never released
	 * (forced unmount): their streams are aborted, the spool keeps the data
	 * and the rescanner or the next start ingests it. */
	for (int b = 0; b < NODE_BUCKETS; b++) {
		while (l->nodes[b]) {
			struct node *n = l->nodes[b];
			log_warn("shutdown: %s was still open; left in the spool", n->path);
			l->nodes[b] = n->next;
			if (n->st)
				up_stream_abort(n->st);
			if (n->st_fd >= 0)
				close(n->st_fd);
			free(n->st_key);
			free(n->st_mpu_id);
			free(n->path);
			free(n);
		}
	}
	close(l->rootfd);
	mpl_close(l->mpl);
	free(l->bucket);
	free(l->prefix);
	free(l->spool_dir);
	free(l->mountpoint);
	free(l);
}

void land_get_stats(struct land *l, struct land_stats *out)
{
	pthread_mutex_lock(&l->smu);
	*out = l->stats;
	pthread_mutex_unlock(&l->smu);
	pthread_mutex_lock(&l->qmu);
	out->queue_depth = l->qlen;
	pthread_mutex_unlock(&l->qmu);
	pthread_mutex_lock(&l->lock);
	out->open_files = l->open_files;
	pthread_mutex_unlock(&l->lock);
}

/* ---------- versions ---------- */

/* Before new content replaces `key` in S3 (overwrite=version); see
 * versions.h. my_id is the row being written. */
static int preserve_previous(struct land *l, const char *path, const char *key, int64_t my_id)
{
	if (l->cfg.overwrite != LAND_OVERWRITE_VERSION)
		return 0;
	int kept;
	int rc = ver_keep_previous(l->cat, l->s3, l->bucket, l->prefix, path, path, key, my_id, &kept);
	if (kept)
		stat_add(l, &l->stats.versions_kept, 1);
	return rc;
}

/* overwrite=deny: an ingested file is read-only. */
static int denied(struct land *l, const char *path, const char *what)
{
	if (l->cfg.overwrite != LAND_OVERWRITE_DENY)
		return 0;
	struct cat_obj o;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return 0;
	int ing = o.state == CAT_INGESTED;
	cat_obj_clear(&o);
	if (ing)
		log_notice("%s: %s refused: ingested files are read-only (overwrite=deny)", path, what);
	return ing ? -EACCES : 0;
}

/* ---------- commit: the end of a version ---------- */

static void stream_drop(struct node *n)
{
	if (n->st) {
		up_stream_abort(n->st);
		n->st = NULL;
	}
	if (n->st_fd >= 0) {
		close(n->st_fd);
		n->st_fd = -1;
	}
	free(n->st_key);
	n->st_key = NULL;
	pthread_mutex_lock(&n->idmu);
	free(n->st_mpu_id);
	n->st_mpu_id = NULL;
	pthread_mutex_unlock(&n->idmu);
}

/* Starts streaming the node's content from offset 0 (new or truncated
 * file). Without a stream the commit uploads the spool file. */
static void stream_start(struct land *l, struct node *n, const char *path)
{
	stream_drop(n);
	n->st_fd = open_beneath(l, path, O_RDONLY | O_NOFOLLOW, 0);
	n->st_key = land_key(l, path);
	if (n->st_fd < 0 || !n->st_key) {
		stream_drop(n);
		return;
	}
	struct up_hooks hooks = {.created = hook_created,
				 .create_unknown = hook_create_unknown,
				 .part_done = hook_part_done,
				 .arg = n};
	if (up_stream_open(l->pool, n->st_key, n->st_fd, &put_opts, &hooks, &n->st) < 0) {
		n->st = NULL;
		stream_drop(n);
	}
}

/* Moves an ingested object to a new key by a server-side copy. */
static int s3_move(struct land *l, const char *from, const char *to)
{
	char etag[S3_ETAG_MAX];
	int rc = s3_copy_object(l->s3, from, to, etag, NULL);
	if (rc == 0)
		rc = s3_delete_object(l->s3, from, NULL);
	return rc;
}

/* Makes the node's current content a committed version: in S3 and the
 * catalog, or (S3 unreachable) fsync'ed in the spool with a pending row
 * and a queued retry. Called with node->mu held. Returns < 0 only when the
 * data could not be made durable anywhere. */
static int commit_sync(struct land *l, struct node *n)
{
	if (!n->dirty)
		return 0;
	if (n->unlinked) {
		stream_drop(n);
		settle_uploads(l, n, NULL);
		pthread_mutex_lock(&n->idmu);
		if (n->obj_id)
			cat_obj_set_deleted(l->cat, n->obj_id, "unlinked while being written");
		n->obj_id = 0;
		pthread_mutex_unlock(&n->idmu);
		n->dirty = 0;
		return 0;
	}
	char *path = node_path(l, n);
	char *key = path ? land_key(l, path) : NULL;
	if (!key) {
		free(path);
		return -ENOMEM;
	}
	struct up_result res;
	int rc;
	char *ok_id = NULL; /* the multipart upload that became the object */
	if (n->st && !up_stream_broken(n->st) &&
	    (rc = preserve_previous(l, path, n->st_key, n->obj_id)) < 0) {
		stream_drop(n); /* the stream would replace an unsaved version */
	}
	if (n->st && !up_stream_broken(n->st)) {
		struct up_stream *st = n->st;
		n->st = NULL;
		rc = up_stream_finish(st, &res);
		pthread_mutex_lock(&n->idmu);
		if (rc == 0 && n->st_mpu_id)
			ok_id = strdup(n->st_mpu_id);
		pthread_mutex_unlock(&n->idmu);
		if (rc == 0 && strcmp(n->st_key, key) != 0) {
			/* Renamed while being written: the upload went to the old name. */
			rc = s3_move(l, n->st_key, key);
			if (rc < 0)
				s3_delete_object(l->s3, n->st_key, NULL);
		}
		if (rc == 0 && (rc = node_register(l, n, n->st_fd, key, &res)) == 0) {
			stat_add(l, &l->stats.files_streamed, 1);
			stream_drop(n);
			n->dirty = 0;
			goto out;
		}
		log_warn("%s: streamed upload did not complete (%s); uploading from the spool", path,
			 strerror(-rc));
		free(ok_id);
		ok_id = NULL;
	}
	stream_drop(n);

	int fd = open_beneath(l, path, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		/* Gone from the spool behind our back (out-of-band delete). */
		log_warn("%s: spool file vanished before it could be uploaded (%s)", path, strerror(-fd));
		n->dirty = 0;
		rc = 0;
		goto out;
	}
	int64_t id;
	rc = node_ensure_row(l, n, fd, &id);
	if (rc == 0) {
		/* The stream's upload is gone: back to pending, so that the spool
		 * upload's id is recorded (hook_created) for recovery to abort. */
		pthread_mutex_lock(&n->idmu);
		if (n->obj_uploading && cat_obj_set_pending(l->cat, id, "uploading from the spool") == 0)
			n->obj_uploading = 0;
		pthread_mutex_unlock(&n->idmu);
		struct file_hook fhk = {.l = l, .n = n, .owner = n, .key = key};
		struct up_hooks hooks = {.created = hook_file_created,
					 .create_unknown = hook_file_create_unknown,
					 .part_done = hook_file_part_done,
					 .arg = &fhk};
		rc = preserve_previous(l, path, key, id);
		if (rc == 0)
			rc = up_file(l->pool, fd, key, &put_opts, &hooks, &res);
		if (rc == 0)
			ok_id = fhk.id;
		else
			free(fhk.id);
		if (rc == 0 && (rc = node_register(l, n, fd, key, &res)) == 0) {
			stat_add(l, &l->stats.files_from_spool, 1);
			n->dirty = 0;
			close(fd);
			goto out;
		}
	}
	/* S3 (or the catalog) failed: the spool copy is the durable one now. */
	if (fsync(fd) < 0) {
		int e = errno;
		log_err("%s: upload failed (%s) and the spool file cannot be synced (%s): data NOT durable",
			path, strerror(-rc), strerror(e));
		close(fd);
		rc = -EIO;
		goto out;
	}
	close(fd);
	pthread_mutex_lock(&n->idmu);
	id = n->obj_id;
	if (id && permanent(rc))
		cat_obj_set_failed(l->cat, id, strerror(-rc));
	else if (id && n->obj_uploading)
		cat_obj_set_pending(l->cat, id, strerror(-rc));
	n->obj_id = 0;
	n->obj_uploading = 0;
	pthread_mutex_unlock(&n->idmu);
	if (id && permanent(rc)) {
		log_err("%s: S3 refuses s3://%s/%s (%s); marked failed, the file stays in the spool",
			path, l->bucket, key, strerror(-rc));
		n->dirty = 0;
		rc = 0;
	} else if (id) {
		log_file_event(LZ_WARN, path, key, -1, -1, rc,
			       "%s: not in S3 yet (%s); kept in the spool, pending, retrying in the "
			       "background", path, strerror(-rc));
		queue_push(l, NULL, id, l->cfg.retry_secs * 1000, 0);
		stat_add(l, &l->stats.files_parked, 1);
		n->dirty = 0;
		rc = 0;
	} else {
		log_err("%s: upload failed (%s) and no catalog row could be written; the file stays "
			"in the spool for the rescanner", path, strerror(-rc));
		rc = 0;
	}
out:
	settle_uploads(l, n, ok_id);
	free(ok_id);
	free(key);
	free(path);
	return rc;
}

/* ---------- files ---------- */

static int is_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

/* A handle on node n (whose reference it takes over) and spool fd. */
static int fh_new(struct land *l, struct node *n, int fd, int flags, struct land_fh **out)
{
	struct land_fh *fh = calloc(1, sizeof *fh);
	if (!fh)
		return -ENOMEM;
	fh->l = l;
	fh->n = n;
	fh->fd = fd;
	fh->flags = flags;
	pthread_mutex_lock(&l->lock);
	l->open_files++;
	pthread_mutex_unlock(&l->lock);
	*out = fh;
	return 0;
}

/* The node exists before the spool file is opened, so the eviction pass
 * (which checks for a node and unlinks under land->lock) never removes a
 * file between our open and our bookkeeping. */
static struct node *node_for_open(struct land *l, const char *path)
{
	return node_get(l, path, 1);
}

int land_create(struct land *l, const char *path, mode_t mode, int flags, uid_t uid, gid_t gid,
		struct land_fh **out)
{
	if (reserved(path))
		return -EPERM;
	int oflags = (flags & ~(O_APPEND | O_CREAT | O_EXCL | O_TRUNC | O_ACCMODE)) | O_RDWR | O_NOFOLLOW;
	struct node *n = node_for_open(l, path);
	if (!n)
		return -ENOMEM;
	int fd = open_beneath(l, path, oflags | O_CREAT | O_EXCL, mode);
	if (fd == -EEXIST && !(flags & O_EXCL)) {
		node_put(l, n);
		return land_open_file(l, path, flags, out);
	}
	int rc = fd;
	if (fd >= 0) {
		if (geteuid() == 0 && fchown(fd, uid, gid) < 0)
			log_warn("%s: cannot set owner %u:%u: %s", path, uid, gid, strerror(errno));
		pthread_mutex_lock(&n->mu);
		rc = node_claim(l, n, fd);
		pthread_mutex_unlock(&n->mu);
		if (rc < 0) {
			/* Ours since O_EXCL: nothing of it may stay behind. */
			const char *name;
			int dfd = open_parent(l, path, &name);
			if (dfd >= 0) {
				unlinkat(dfd, name, 0);
				close(dfd);
			}
		}
		if (rc == 0)
			rc = fh_new(l, n, fd, flags, out);
		if (rc < 0)
			close(fd);
	}
	if (rc < 0) {
		node_put(l, n);
		return rc;
	}
	pthread_mutex_lock(&n->mu);
	n->writers++;
	n->unlinked = 0;
	n->dirty = 1; /* even an empty file is a version */
	stream_start(l, n, path);
	pthread_mutex_unlock(&n->mu);
	return 0;
}

/* An ingested file whose spool copy retention removed: fetch it back into
 * the spool (through .lzfs/fetch, renamed into place when complete and
 * checked against the catalog's SHA-256), with the catalog's attributes,
 * so that it can be opened like any local file. */
static int rehydrate(struct land *l, const char *path)
{
	struct cat_obj o;
	int rc = cat_obj_get(l->cat, path, &o);
	if (rc < 0)
		return -ENOENT;
	if (o.state != CAT_INGESTED || o.symlink) {
		cat_obj_clear(&o);
		return -ENOENT;
	}
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%s/fetch.%lld", LAND_RESERVED, (long long)o.id);
	int fd = openat(l->rootfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	struct s3_object_info info;
	memset(&info, 0, sizeof info);
	rc = s3_get_object_fd(l->s3, o.key, fd, &info, NULL);
	s3_object_info_clear(&info);
	unsigned char md[32];
	char hex[65];
	if (rc == 0 && (rc = hash_fd(HASH_SHA256, fd, 0, (uint64_t)o.size, md)) == 0) {
		hash_hex(md, sizeof md, hex);
		struct stat st;
		if (fstat(fd, &st) < 0 || st.st_size != o.size || strcmp(hex, o.sha256) != 0) {
			log_err("%s: s3://%s/%s does not match the catalog (size or SHA-256); not "
				"restoring it", path, l->bucket, o.key);
			rc = -EIO;
		}
	}
	if (rc == 0) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
					 {.tv_sec = o.mtime_ns / 1000000000,
					  .tv_nsec = o.mtime_ns % 1000000000}};
		if (fchmod(fd, o.mode & 07777) < 0 || (geteuid() == 0 && fchown(fd, o.uid, o.gid) < 0) ||
		    fsync(fd) < 0 || futimens(fd, ts) < 0)
			rc = -errno;
	}
	close(fd);
	if (rc == 0) {
		const char *name;
		int dfd = open_parent(l, path, &name);
		if (dfd < 0)
			rc = dfd;
		else {
			/* RENAME_NOREPLACE: a file that appeared meanwhile wins. */
			if (renameat2(l->rootfd, tmp, dfd, name, RENAME_NOREPLACE) < 0 && errno != EEXIST)
				rc = -errno;
			close(dfd);
		}
	}
	if (rc == 0)
		log_info("%s: restored from s3://%s/%s into the spool", path, l->bucket, o.key);
	unlinkat(l->rootfd, tmp, 0);
out:
	cat_obj_clear(&o);
	return rc;
}

void land_set_reader(struct land *l, struct rd_pool *rd) { l->rd = rd; }

/* A read-only handle on an evicted file: reads stream from S3. */
static int open_remote(struct land *l, struct node *n, const char *path, int flags,
		       struct land_fh **out)
{
	struct cat_obj o;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return -ENOENT;
	int rc = -ENOENT;
	struct rd_reader *rd = NULL;
	if (o.state == CAT_INGESTED && !o.symlink)
		rc = rd_open(l->rd, o.key, (uint64_t)o.size, o.etag[0] ? o.etag : NULL, 0, &rd);
	if (rc == 0 && (rc = fh_new(l, n, -1, flags, out)) == 0) {
		(*out)->rd = rd;
		obj_stat(&o, &(*out)->rd_st);
	} else if (rd) {
		rd_close(rd);
	}
	cat_obj_clear(&o);
	return rc;
}

/* On a shared catalog: is the spool file a copy that another host's newer
 * version made stale? Then it is removed (ver_drop_stale) and the caller
 * reads the current version. Looked at only when the file and the current
 * row disagree, and never for a file the mount is writing. */
static int stale_local(struct land *l, struct node *n, const char *path, int fd)
{
	pthread_mutex_lock(&n->mu);
	int busy = n->writers > 0 || n->dirty;
	pthread_mutex_unlock(&n->mu);
	struct stat st;
	struct cat_obj o;
	if (busy || fstat(fd, &st) < 0 || cat_obj_get(l->cat, path, &o) < 0)
		return 0;
	int differs = o.state == CAT_INGESTED &&
		      (o.size != st.st_size || o.mtime_ns != ts_ns(&st.st_mtim));
	cat_obj_clear(&o);
	if (!differs)
		return 0;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return 0;
	char who[256];
	int rc = ver_drop_stale(l->cat, path, dfd, name, fd, &st, who, sizeof who);
	close(dfd);
	return rc > 0;
}

int land_open_file(struct land *l, const char *path, int flags, struct land_fh **out)
{
	if (reserved(path))
		return -ENOENT;
	/* The spool fd is always readable (the stream and reads use it) and
	 * never O_APPEND: appends are placed at the size under node->mu. */
	int oflags = (flags & ~(O_APPEND | O_CREAT | O_EXCL | O_TRUNC | O_ACCMODE)) | O_NOFOLLOW;
	oflags |= is_write(flags) ? O_RDWR : O_RDONLY;
	int rc;
	if (is_write(flags) && (rc = denied(l, path, "opening for writing")) < 0)
		return rc;
	struct node *n = node_for_open(l, path);
	if (!n)
		return -ENOMEM;
	int fd = open_beneath(l, path, oflags, 0);
	if (fd >= 0 && !is_write(flags) && cat_shared(l->cat) && stale_local(l, n, path, fd)) {
		close(fd);
		fd = -ENOENT;
	}
	if (fd == -ENOENT && !is_write(flags) && l->rd) {
		rc = open_remote(l, n, path, flags, out);
		if (rc < 0)
			node_put(l, n);
		return rc;
	}
	if (fd == -ENOENT && rehydrate(l, path) == 0)
		fd = open_beneath(l, path, oflags, 0);
	rc = fd;
	if (fd >= 0 && (rc = fh_new(l, n, fd, flags, out)) < 0)
		close(fd);
	if (rc < 0) {
		node_put(l, n);
		return rc;
	}
	if (is_write(flags)) {
		pthread_mutex_lock(&n->mu);
		n->writers++;
		n->unlinked = 0;
		if (flags & O_TRUNC) {
			if ((rc = node_claim(l, n, fd)) < 0) {
				;
			} else if (ftruncate(fd, 0) < 0) {
				rc = -errno;
			} else {
				n->dirty = 1;
				stream_start(l, n, path);
			}
		}
		pthread_mutex_unlock(&n->mu);
		if (rc < 0) {
			land_release(*out);
			return rc;
		}
	}
	return 0;
}

ssize_t land_read(struct land_fh *fh, char *buf, size_t size, off_t off)
{
	if (fh->rd)
		return rd_read(fh->rd, buf, size, (uint64_t)off);
	ssize_t r = pread(fh->fd, buf, size, off);
	return r < 0 ? -errno : r;
}

ssize_t land_write(struct land_fh *fh, const char *buf, size_t size, off_t off)
{
	struct node *n = fh->n;
	pthread_mutex_lock(&n->mu);
	if (fh->flags & O_APPEND) {
		struct stat st;
		if (fstat(fh->fd, &st) < 0) {
			pthread_mutex_unlock(&n->mu);
			return -errno;
		}
		off = st.st_size;
	}
	int rc = node_claim(fh->l, n, fh->fd);
	if (rc < 0) {
		pthread_mutex_unlock(&n->mu);
		return rc;
	}
	size_t done = 0;
	while (done < size) {
		ssize_t w = pwrite(fh->fd, buf + done, size - done, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			if (done == 0) {
				pthread_mutex_unlock(&n->mu);
				if (e == ENOSPC || e == EDQUOT)
					log_err("spool full writing %s: %s", n->path, strerror(e));
				return -e;
			}
			break;
		}
		done += (size_t)w;
	}
	n->dirty = 1;
	if (n->st)
		up_stream_write(n->st, off, buf, done); /* a broken stream falls back at commit */
	pthread_mutex_unlock(&n->mu);
	return (ssize_t)done;
}

/* Does process pid still hold an fd on node n's file in the mount? */
static int pid_has_file_open(struct land *l, pid_t pid, struct node *n)
{
	if (pid <= 0 || !l->mountpoint)
		return 0;
	char *path = node_path(l, n);
	char *want = NULL;
	if (!path || asprintf(&want, "%s/%s", l->mountpoint, path) < 0) {
		free(path);
		return 0;
	}
	free(path);
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	int found = 0;
	struct dirent *de;
	while (d && !found && (de = readdir(d))) {
		char link[PATH_MAX];
		ssize_t r = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (r <= 0)
			continue;
		link[r] = '\0';
		found = strcmp(link, want) == 0;
	}
	if (d)
		closedir(d);
	free(want);
	return found;
}

int land_flush(struct land_fh *fh, pid_t pid)
{
	if (!is_write(fh->flags))
		return 0;
	struct land *l = fh->l;
	struct node *n = fh->n;
	int rc = 0;
	pthread_mutex_lock(&n->mu);
	struct stat st;
	if (n->dirty && fstat(fh->fd, &st) == 0 && st.st_size == 0 &&
	    pid_has_file_open(l, pid, n)) {
		/* A shell opens a redirect target, dup2()s it and closes the
		 * first fd: that flush comes before any byte, with the file
		 * still open on another fd of the same process. Committing an
		 * empty version now would be undone by the real content a
		 * moment later; the last flush or the release commits it. */
		pthread_mutex_unlock(&n->mu);
		return 0;
	}
	if (n->dirty && !n->unlinked && l->cfg.durability == LAND_DUR_ASYNC) {
		if (fsync(fh->fd) < 0) {
			rc = -errno;
			log_err("%s: fsync of the spool file failed: %s", n->path, strerror(errno));
		} else {
			int64_t id;
			rc = node_ensure_row(l, n, fh->fd, &id);
			if (rc == 0) {
				pthread_mutex_lock(&l->lock);
				n->refs++;
				pthread_mutex_unlock(&l->lock);
				queue_push(l, n, 0, 0, 0);
			}
		}
	} else {
		rc = commit_sync(l, n);
	}
	pthread_mutex_unlock(&n->mu);
	return rc;
}

int land_fsync(struct land_fh *fh, int datasync)
{
	if (!is_write(fh->flags))
		return 0;
	if ((datasync ? fdatasync(fh->fd) : fsync(fh->fd)) < 0)
		return -errno;
	return land_flush(fh, 0);
}

int land_release(struct land_fh *fh)
{
	struct land *l = fh->l;
	struct node *n = fh->n;
	int rc = 0;
	if (is_write(fh->flags)) {
		pthread_mutex_lock(&n->mu);
		n->writers--;
		/* Left dirty by flush (an empty file) or written after the last
		 * flush through another fd: commit now, nobody waits. */
		if (n->dirty && n->writers == 0)
			rc = commit_sync(l, n);
		pthread_mutex_unlock(&n->mu);
	}
	if (fh->rd)
		rd_close(fh->rd);
	if (fh->fd >= 0)
		close(fh->fd);
	pthread_mutex_lock(&l->lock);
	l->open_files--;
	pthread_mutex_unlock(&l->lock);
	node_put(l, n);
	free(fh);
	return rc;
}

int land_fgetattr(struct land_fh *fh, struct stat *st)
{
	if (fh->rd) {
		*st = fh->rd_st;
		return 0;
	}
	return fstat(fh->fd, st) < 0 ? -errno : 0;
}

/* ---------- namespace ---------- */

/* stat of an ingested object that is only in S3 (retention removed the
 * spool copy): from the catalog, without an S3 request. */
static void obj_stat(const struct cat_obj *o, struct stat *st)
{
	memset(st, 0, sizeof *st);
	/* Inode numbers outside any local filesystem's range (readdir skips 0). */
	st->st_ino = (ino_t)(0x4000000000000000ull | (uint64_t)o->id);
	st->st_mode = (o->mode & S_IFMT) ? o->mode : (S_IFREG | (o->mode & 07777));
	st->st_nlink = 1;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_size = o->size;
	st->st_blksize = 4096;
	st->st_blocks = 0; /* nothing local */
	st->st_mtim.tv_sec = o->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = o->mtime_ns % 1000000000;
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

static int cat_stat(struct land *l, const char *path, struct stat *st)
{
	struct cat_obj o;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return -ENOENT;
	int rc = -ENOENT;
	if (o.state == CAT_INGESTED && !o.symlink) {
		obj_stat(&o, st);
		rc = 0;
	}
	cat_obj_clear(&o);
	return rc;
}

int land_getattr(struct land *l, const char *path, struct stat *st)
{
	if (reserved(path))
		return -ENOENT;
	if (!path[0])
		return fstat(l->rootfd, st) < 0 ? -errno : 0;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd == -ENOENT ? cat_stat(l, path, st) : dfd;
	int rc = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	if (rc == -ENOENT)
		rc = cat_stat(l, path, st);
	return rc;
}

struct list_ctx {
	int dfd;
	int (*fill)(void *arg, const char *name, const struct stat *st);
	void *arg;
	int stop;
};

/* Catalog children that the spool directory does not hold (evicted). */
static int list_evicted(const struct cat_coll *c, const struct cat_obj *o, void *arg)
{
	struct list_ctx *x = arg;
	const char *p = o ? o->path : c->path;
	const char *name = strrchr(p, '/');
	name = name ? name + 1 : p;
	struct stat st;
	if (x->dfd >= 0 && fstatat(x->dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0; /* listed from the spool already */
	if (o) {
		if (o->state != CAT_INGESTED || o->symlink)
			return 0;
		obj_stat(o, &st);
	} else {
		memset(&st, 0, sizeof st);
		st.st_ino = (ino_t)(0x2000000000000000ull | (uint64_t)c->id);
		st.st_mode = S_IFDIR | (c->mode & 07777);
	}
	if (x->fill(x->arg, name, &st)) {
		x->stop = 1;
		return 1;
	}
	return 0;
}

int land_readdir(struct land *l, const char *path,
		 int (*fill)(void *arg, const char *name, const struct stat *st), void *arg)
{
	if (reserved(path))
		return -ENOENT;
	int fd = open_beneath(l, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		if (dfd >= 0)
			close(dfd);
		return -e;
	}
	struct dirent *de;
	int stop = 0;
	while ((de = readdir(d))) {
		if (!path[0] && strcmp(de->d_name, LAND_RESERVED) == 0)
			continue;
		struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type)};
		if (fill(arg, de->d_name, &st)) {
			stop = 1;
			break;
		}
	}
	closedir(d);
	if (!stop) {
		struct list_ctx x = {.dfd = dfd, .fill = fill, .arg = arg};
		cat_list(l->cat, path, list_evicted, &x);
	}
	if (dfd >= 0)
		close(dfd);
	return 0;
}

/* ---------- retention ---------- */

struct cand {
	int64_t id, size, mtime_ns, ingest_ns;
	char *path;
};

struct cand_list {
	struct cand *v;
	size_t n, cap;
};

static int collect_cand(const struct cat_obj *o, void *arg)
{
	struct cand_list *c = arg;
	if (o->symlink || !o->current)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct cand *v = realloc(c->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	struct cand *x = &c->v[c->n];
	if (!(x->path = strdup(o->path)))
		return -ENOMEM;
	x->id = o->id;
	x->size = o->size;
	x->mtime_ns = o->mtime_ns;
	x->ingest_ns = o->ingest_ns;
	c->n++;
	return 0;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	return x->ingest_ns < y->ingest_ns ? -1 : x->ingest_ns > y->ingest_ns;
}

static int spool_fill_percent(struct land *l)
{
	struct statvfs v;
	if (fstatvfs(l->rootfd, &v) < 0 || v.f_blocks == 0)
		return 0;
	return (int)(100 - (v.f_bavail * 100) / v.f_blocks);
}

/* Removes spool copies of ingested files by the retention policy, oldest
 * ingest first: never a file that is open or queued, never one whose spool
 * copy differs from what the catalog says was ingested (size and mtime),
 * never one that is not `ingested` (which means uploaded and verified). */
static void evict_pass(struct land *l)
{
	struct cand_list c = {0};
	struct cat_query q;
	cat_query_init(&q);
	q.state = CAT_INGESTED;
	cat_find(l->cat, &q, collect_cand, &c);
	qsort(c.v, c.n, sizeof *c.v, cand_cmp);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ns = ts_ns(&now);
	int evicted = 0;
	for (size_t i = 0; i < c.n; i++) {
		struct cand *x = &c.v[i];
		if (l->cfg.evict_after_secs > 0 &&
		    now_ns - x->ingest_ns < l->cfg.evict_after_secs * 1000000000)
			break; /* sorted: the rest are younger */
		if (l->cfg.high_watermark > 0 && spool_fill_percent(l) < l->cfg.high_watermark)
			break;
		const char *name;
		int dfd = open_parent(l, x->path, &name);
		if (dfd < 0)
			continue;
		struct stat st;
		pthread_mutex_lock(&l->lock);
		unsigned h = hash_path(x->path);
		int busy = 0;
		for (struct node *n = l->nodes[h]; n; n = n->next)
			busy |= strcmp(n->path, x->path) == 0;
		if (!busy && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size == x->size && ts_ns(&st.st_mtim) == x->mtime_ns &&
		    unlinkat(dfd, name, 0) == 0) {
			evicted++;
			pthread_mutex_unlock(&l->lock);
			cat_event_add(l->cat, x->id, x->path, "evicted", "spool copy removed by retention");
		} else {
			pthread_mutex_unlock(&l->lock);
		}
		close(dfd);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].path);
	free(c.v);
	if (evicted) {
		stat_add(l, &l->stats.files_evicted, (uint64_t)evicted);
		log_info("retention: %d ingested file(s) removed from the spool", evicted);
	}
}

int land_mkdir(struct land *l, const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = 0;
	if (mkdirat(dfd, name, mode) < 0)
		rc = -errno;
	else if (geteuid() == 0 && fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("%s: cannot set owner: %s", path, strerror(errno));
	close(dfd);
	if (rc == 0) {
		int64_t id;
		cat_coll_ensure(l->cat, path, S_IFDIR | mode, uid, gid, &id);
	}
	return rc;
}

int land_rmdir(struct land *l, const char *path)
{
	if (reserved(path) || !path[0])
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
	close(dfd);
	if (rc == 0) {
		int crc = cat_coll_remove(l->cat, path);
		if (crc < 0 && crc != -ENOENT)
			log_warn("%s: removed from the spool; catalog collection kept (%s)", path,
				 strerror(-crc));
	}
	return rc;
}

/* Forgets path's current catalog version (and its S3 object, by policy). */
static void forget_object(struct land *l, const char *path, const char *why)
{
	struct cat_obj o;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return;
	if (l->cfg.unlink_mode == LAND_UNLINK_KEEP && o.state == CAT_INGESTED) {
		cat_event_add(l->cat, o.id, path, "local-delete", "spool copy removed; object kept");
		cat_obj_clear(&o);
		return;
	}
	if (o.state == CAT_INGESTED || o.upload_id) {
		int rc = o.upload_id ? s3_mpu_abort(l->s3, o.key, o.upload_id, NULL) : 0;
		if (o.state == CAT_INGESTED)
			rc = s3_delete_object(l->s3, o.key, NULL);
		if (rc < 0)
			log_warn("%s: could not delete s3://%s/%s (%s); the catalog marks it deleted",
				 path, l->bucket, o.key, strerror(-rc));
	}
	cat_obj_set_deleted(l->cat, o.id, why);
	cat_obj_clear(&o);
}

int land_unlink(struct land *l, const char *path)
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	close(dfd);
	if (rc == -ENOENT) {
		struct stat st;
		if (cat_stat(l, path, &st) < 0)
			return rc;
		rc = 0; /* evicted: only in S3 and the catalog */
	}
	if (rc < 0)
		return rc;
	struct node *n = node_get(l, path, 0);
	if (n) {
		/* Still open: it lives until closed, then leaves no object. */
		pthread_mutex_lock(&n->mu);
		n->unlinked = 1;
		n->dirty = 1;
		pthread_mutex_unlock(&n->mu);
		node_put(l, n);
	}
	forget_object(l, path, "unlinked");
	return 0;
}

struct rename_ctx {
	struct land *l;
	const char *from, *to;
	size_t fl;
	int64_t *ids;
	int nids, cap;
};

static int collect_ids(const struct cat_obj *o, void *arg)
{
	struct rename_ctx *c = arg;
	if (c->nids == c->cap) {
		int cap = c->cap ? c->cap * 2 : 64;
		int64_t *ids = realloc(c->ids, (size_t)cap * sizeof *ids);
		if (!ids)
			return -ENOMEM;
		c->ids = ids;
		c->cap = cap;
	}
	c->ids[c->nids++] = o->id;
	return 0;
}

/* Moves one catalog row (and its ingested S3 object) to a new path. */
static void move_row(struct land *l, int64_t id, const char *from, const char *to)
{
	struct cat_obj o;
	if (cat_obj_get_id(l->cat, id, &o) < 0)
		return;
	size_t fl = strlen(from);
	char *np = NULL, *nk = NULL;
	if (asprintf(&np, "%s%s", to, o.path + fl) < 0 || !(nk = land_key(l, np))) {
		free(np);
		cat_obj_clear(&o);
		return;
	}
	int rc = 0, copied = 0;
	char etag[S3_ETAG_MAX];
	if (o.state == CAT_INGESTED && strcmp(o.key, nk) != 0) {
		rc = preserve_previous(l, np, nk, id);
		if (rc == 0)
			rc = s3_copy_object(l->s3, o.key, nk, etag, NULL);
		if (rc < 0)
			log_err("rename %s -> %s: server-side copy failed (%s); the old object stays and "
				"the catalog keeps the old key", o.path, np, strerror(-rc));
		copied = rc == 0;
	}
	/* The old object goes only once the row names the new one: a row
	 * whose rename is refused (another host began writing the path since
	 * land_rename looked) still names an object that exists. */
	if (rc == 0) {
		rc = cat_obj_rename(l->cat, id, np, nk);
		if (rc < 0)
			log_err("rename %s -> %s: catalog update failed (%s); the row keeps %s, which "
				"stays in S3", o.path, np, strerror(-rc), o.key);
		else if (o.state == CAT_FAILED)
			queue_push(l, NULL, id, 0, 0); /* S3 refused the old key: try the new one */
	}
	if (rc == 0 && copied) {
		int drc = s3_delete_object(l->s3, o.key, NULL);
		if (drc < 0)
			log_warn("rename %s -> %s: the old object %s was not deleted (%s): no row names "
				 "it", o.path, np, o.key, strerror(-drc));
	}
	free(np);
	free(nk);
	cat_obj_clear(&o);
}

int land_rename(struct land *l, const char *from, const char *to, unsigned int flags)
{
	if (reserved(from) || reserved(to))
		return -EPERM;
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE would swap two objects' keys: not supported */
	int drc = denied(l, to, "rename over it");
	if (drc < 0)
		return drc;
	if (cat_shared(l->cat)) {
		/* Nothing moves onto a path another host is uploading to: its
		 * upload and our copy would share the key. */
		char who[256];
		drc = cat_path_claimed(l->cat, to, who, sizeof who);
		if (drc > 0) {
			log_warn("rename %s -> %s: refused (EBUSY): %s is writing %s", from, to, who,
				 to);
			return -EBUSY;
		}
		if (drc < 0) {
			log_err("rename %s -> %s: the catalog cannot say whether another host is "
				"writing %s (%s)", from, to, to, strerror(-drc));
			return drc;
		}
	}
	const char *fname, *tname;
	int fdfd = open_parent(l, from, &fname);
	if (fdfd < 0)
		return fdfd;
	int tdfd = open_parent(l, to, &tname);
	if (tdfd < 0) {
		close(fdfd);
		return tdfd;
	}
	struct stat st;
	int rc = fstatat(fdfd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	int evicted = 0;
	if (rc == -ENOENT && cat_stat(l, from, &st) == 0) {
		/* Evicted: the object moves in S3 and the catalog only. A local
		 * file at the destination would now be shadowed: refuse. */
		struct stat tst;
		evicted = 1;
		rc = fstatat(tdfd, tname, &tst, AT_SYMLINK_NOFOLLOW) == 0 ? -EEXIST : 0;
	} else if (rc == 0 && renameat2(fdfd, fname, tdfd, tname, flags) < 0) {
		rc = -errno;
	}
	close(fdfd);
	close(tdfd);
	if (rc < 0)
		return rc;
	(void)evicted;

	nodes_rename(l, from, to);
	struct rename_ctx c = {.l = l, .from = from, .to = to, .fl = strlen(from)};
	if (S_ISDIR(st.st_mode)) {
		struct cat_query q;
		cat_query_init(&q);
		q.under = from;
		cat_find(l->cat, &q, collect_ids, &c);
		int64_t id;
		cat_coll_ensure(l->cat, to, st.st_mode, st.st_uid, st.st_gid, &id);
	} else {
		struct cat_obj o;
		if (cat_obj_get(l->cat, from, &o) == 0) {
			collect_ids(&o, &c);
			cat_obj_clear(&o);
		}
	}
	for (int i = 0; i < c.nids; i++)
		move_row(l, c.ids[i], from, to);
	free(c.ids);
	if (S_ISDIR(st.st_mode))
		cat_coll_remove(l->cat, from);
	return 0;
}

int land_symlink(struct land *l, const char *target, const char *path, uid_t uid, gid_t gid)
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = symlinkat(target, dfd, name) < 0 ? -errno : 0;
	struct stat st;
	if (rc == 0) {
		if (geteuid() == 0)
			fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	close(dfd);
	if (rc < 0)
		return rc;
	char *key = land_key(l, path);
	if (!key)
		return -ENOMEM;
	char etag[S3_ETAG_MAX];
	struct cat_obj o;
	fill_obj(l, &o, path, key, &st);
	o.size = 0;
	o.symlink = (char *)target;
	const char *why = symlink_unstorable(target);
	rc = why ? -EINVAL : put_symlink(l, key, target, etag);
	if (rc == 0) {
		o.state = CAT_INGESTED;
		snprintf(o.sha256, sizeof o.sha256, "%s", SHA256_EMPTY);
		snprintf(o.etag, sizeof o.etag, "%s", etag);
	} else {
		o.state = CAT_PENDING;
	}
	/* Not in S3: failed with the reason, or retried like any pending file. */
	if (cat_obj_add(l->cat, &o) == 0 && rc < 0) {
		if (why || permanent(rc)) {
			log_err("%s: symlink not stored in S3: %s", path, why ? why : strerror(-rc));
			cat_obj_set_failed(l->cat, o.id, why ? why : strerror(-rc));
		} else {
			log_warn("%s: symlink not in S3 yet (%s); retrying in the background", path,
				 strerror(-rc));
			queue_push(l, NULL, o.id, l->cfg.retry_secs * 1000, 0);
		}
	}
	free(key);
	return 0;
}

int land_readlink(struct land *l, const char *path, char *buf, size_t size)
{
	if (reserved(path))
		return -ENOENT;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	ssize_t r = readlinkat(dfd, name, buf, size - 1);
	int rc = r < 0 ? -errno : 0;
	close(dfd);
	if (rc == 0)
		buf[r] = '\0';
	return rc;
}

int land_truncate(struct land *l, const char *path, off_t size, struct land_fh *fh)
{
	if (reserved(path))
		return -EPERM;
	int rc;
	if (!fh && (rc = denied(l, path, "truncate")) < 0)
		return rc;
	struct node *n = fh ? fh->n : node_get(l, path, 1);
	if (!n)
		return -ENOMEM;
	rc = 0;
	pthread_mutex_lock(&n->mu);
	int fd = fh ? fh->fd : open_beneath(l, path, O_WRONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		rc = fd;
	} else {
		if ((rc = node_claim(l, n, fd)) < 0)
			;
		else if (ftruncate(fd, size) < 0)
			rc = -errno;
		else {
			n->dirty = 1;
			if (n->st) {
				if (size == 0 && fh)
					stream_start(l, n, n->path);
				else
					up_stream_truncate(n->st, size);
			}
			/* Not open for writing: nobody will close it, so this is the
			 * commit (truncate(1), or a kernel that truncates before open). */
			if (!fh && n->writers == 0)
				rc = commit_sync(l, n);
		}
		if (!fh)
			close(fd);
	}
	pthread_mutex_unlock(&n->mu);
	if (!fh)
		node_put(l, n);
	return rc;
}

static void update_attr(struct land *l, const char *path)
{
	struct cat_obj o;
	struct stat st;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return;
	if (land_getattr(l, path, &st) == 0)
		cat_obj_set_attr(l->cat, o.id, st.st_mode, st.st_uid, st.st_gid, ts_ns(&st.st_mtim));
	cat_obj_clear(&o);
}

/* chmod/chown/utimens of an evicted file: the catalog row only. */
static int cat_attr(struct land *l, const char *path, const mode_t *mode, const uid_t *uid,
		    const gid_t *gid, const struct timespec *mtime)
{
	struct cat_obj o;
	if (cat_obj_get(l->cat, path, &o) < 0)
		return -ENOENT;
	int rc = -ENOENT;
	if (o.state == CAT_INGESTED) {
		uint32_t m = mode ? ((o.mode & S_IFMT) | (*mode & 07777)) : o.mode;
		int64_t t = o.mtime_ns;
		if (mtime && mtime->tv_nsec != UTIME_OMIT) {
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			t = mtime->tv_nsec == UTIME_NOW ? ts_ns(&now) : ts_ns(mtime);
		}
		rc = cat_obj_set_attr(l->cat, o.id, m, uid && *uid != (uid_t)-1 ? *uid : o.uid,
				      gid && *gid != (gid_t)-1 ? *gid : o.gid, t);
	}
	cat_obj_clear(&o);
	return rc;
}

int land_chmod(struct land *l, const char *path, mode_t mode)
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	struct stat st;
	int rc = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (rc == 0 && !S_ISLNK(st.st_mode) && fchmodat(dfd, name, mode, 0) < 0)
		rc = -errno;
	close(dfd);
	if (rc == -ENOENT)
		return cat_attr(l, path, &mode, NULL, NULL, NULL);
	if (rc == 0)
		update_attr(l, path);
	return rc;
}

int land_chown(struct land *l, const char *path, uid_t uid, gid_t gid)
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	if (rc == -ENOENT)
		return cat_attr(l, path, NULL, &uid, &gid, NULL);
	if (rc == 0)
		update_attr(l, path);
	return rc;
}

int land_utimens(struct land *l, const char *path, const struct timespec tv[2])
{
	if (reserved(path))
		return -EPERM;
	const char *name;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc;
	if (!path[0])
		rc = futimens(l->rootfd, tv) < 0 ? -errno : 0;
	else
		rc = utimensat(dfd, name, tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	if (rc == -ENOENT)
		return cat_attr(l, path, NULL, NULL, NULL, &tv[1]);
	if (rc == 0)
		update_attr(l, path);
	return rc;
}

int land_statfs(struct land *l, struct statvfs *st)
{
	return fstatvfs(l->rootfd, st) < 0 ? -errno : 0;
}

int land_access(struct land *l, const char *path, int mask)
{
	if (reserved(path))
		return -ENOENT;
	const char *name;
	if (!path[0])
		return faccessat(l->rootfd, ".", mask, 0) < 0 ? -errno : 0;
	int dfd = open_parent(l, path, &name);
	if (dfd < 0)
		return dfd;
	int rc = faccessat(dfd, name, mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

/* ---------- extended attributes ---------- */

#define XA_PREFIX "user.lzfs."

static ssize_t xa_copy(const char *val, char *buf, size_t size)
{
	size_t len = strlen(val);
	if (size == 0)
		return (ssize_t)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, val, len);
	return (ssize_t)len;
}

/* The spool file's xattrs, through an O_PATH-free route: regular files and
 * directories are opened; symlinks have no user xattrs on Linux. */
static int xa_open(struct land *l, const char *path)
{
	int fd = open_beneath(l, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	return fd;
}

ssize_t land_getxattr(struct land *l, const char *path, const char *name, char *buf, size_t size)
{
	if (reserved(path))
		return -ENOENT;
	if (strncmp(name, XA_PREFIX, strlen(XA_PREFIX)) == 0) {
		const char *what = name + strlen(XA_PREFIX);
		struct cat_obj o;
		if (cat_obj_get(l->cat, path, &o) < 0)
			return -ENODATA;
		char tmp[128];
		const char *val = NULL;
		if (strcmp(what, "state") == 0)
			val = cat_state_name(o.state);
		else if (strcmp(what, "key") == 0)
			val = o.key;
		else if (strcmp(what, "sha256") == 0)
			val = o.sha256[0] ? o.sha256 : NULL;
		else if (strcmp(what, "etag") == 0)
			val = o.etag[0] ? o.etag : NULL;
		else if (strcmp(what, "version") == 0)
			snprintf(tmp, sizeof tmp, "%d", o.version), val = tmp;
		else if (strcmp(what, "bucket") == 0)
			val = o.bucket;
		ssize_t r = val ? xa_copy(val, buf, size) : -ENODATA;
		cat_obj_clear(&o);
		return r;
	}
	int fd = xa_open(l, path);
	if (fd < 0)
		return fd == -ELOOP ? -ENODATA : fd;
	ssize_t r = fgetxattr(fd, name, buf, size);
	if (r < 0)
		r = -errno;
	close(fd);
	return r;
}

int land_setxattr(struct land *l, const char *path, const char *name, const char *value,
		  size_t size, int flags)
{
	if (reserved(path))
		return -ENOENT;
	if (strncmp(name, XA_PREFIX, strlen(XA_PREFIX)) == 0)
		return -EPERM;
	if (strncmp(name, "user.", 5) != 0)
		return -ENOTSUP;
	int fd = xa_open(l, path);
	if (fd < 0)
		return fd;
	int rc = fsetxattr(fd, name, value, size, flags) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0) {
		/* Mirror into the catalog when the object is registered; a file
		 * still being written gets them at registration. */
		char *v = strndup(value, size);
		if (v) {
			cat_meta_set(l->cat, path, name + 5, v, NULL);
			free(v);
		}
	}
	return rc;
}

ssize_t land_listxattr(struct land *l, const char *path, char *buf, size_t size)
{
	if (reserved(path))
		return -ENOENT;
	static const char virt[] = XA_PREFIX "state\0" XA_PREFIX "key\0" XA_PREFIX "sha256\0"
				   XA_PREFIX "etag\0" XA_PREFIX "version\0" XA_PREFIX "bucket";
	struct cat_obj o;
	size_t vlen = 0;
	if (cat_obj_get(l->cat, path, &o) == 0) {
		vlen = sizeof virt;
		cat_obj_clear(&o);
	}
	char own[8192];
	ssize_t olen = 0;
	int fd = xa_open(l, path);
	if (fd >= 0) {
		olen = flistxattr(fd, own, sizeof own);
		if (olen < 0)
			olen = 0;
		close(fd);
	}
	size_t total = vlen + (size_t)olen;
	if (size == 0)
		return (ssize_t)total;
	if (total > size)
		return -ERANGE;
	memcpy(buf, virt, vlen);
	memcpy(buf + vlen, own, (size_t)olen);
	return (ssize_t)total;
}

int land_removexattr(struct land *l, const char *path, const char *name)
{
	if (reserved(path))
		return -ENOENT;
	if (strncmp(name, XA_PREFIX, strlen(XA_PREFIX)) == 0)
		return -EPERM;
	int fd = xa_open(l, path);
	if (fd < 0)
		return fd;
	int rc = fremovexattr(fd, name) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0 && strncmp(name, "user.", 5) == 0)
		cat_meta_rm(l->cat, path, name + 5);
	return rc;
}
