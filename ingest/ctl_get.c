/* ctl_get.c - lzfsctl get and verify: catalogued objects read back from S3
 * with the parallel reader (reader.h) and checked against the catalog.
 *
 * Both commands HEAD the object first (missing? the size the catalog has?),
 * then read it with If-Match on the ETag that HEAD saw, so that the bytes
 * hashed all belong to one version, and compare the SHA-256 with the
 * catalog's. The catalog's ETag is not required to match: an object
 * uploaded again with the same bytes is still right.
 *
 * S3 settings come from options, else the environment (LZFS_ENDPOINT,
 * AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_SHARED_CREDENTIALS_FILE and
 * AWS_PROFILE); the bucket comes from each catalog row.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "ctl.h"
#include "hash.h"
#include "log.h"
#include "reader.h"
#include "s3.h"

#define MIB       (1024.0 * 1024.0)
#define READ_SIZE (4u * 1024 * 1024)

/* ------------------------------------------------------------ S3 access */

struct s3set {
	const char *endpoint;
	const char *region;
	const char *credentials;
	const char *profile;
	const char *ca_file;
	int path_style; /* -1: path style unless the endpoint is AWS */
};

struct conn {
	char *bucket;
	struct s3_client *s3;
	struct rd_pool *pool;
};

struct s3ctx {
	const char *cmd;
	struct s3set set;
	struct s3_creds creds;
	struct rd_config rcfg;
	pthread_mutex_t lock;
	struct conn *conns;
	int nconns;
};

enum {
	OPT_ENDPOINT = 0x100,
	OPT_REGION,
	OPT_CREDS,
	OPT_PROFILE,
	OPT_PATH_STYLE,
	OPT_VHOST,
	OPT_CA_FILE
};

/* clang-format off */
#define S3_LONGOPTS                                                          \
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},                 \
	{"region", required_argument, NULL, OPT_REGION},                     \
	{"credentials", required_argument, NULL, OPT_CREDS},                 \
	{"profile", required_argument, NULL, OPT_PROFILE},                   \
	{"path-style", no_argument, NULL, OPT_PATH_STYLE},                   \
	{"virtual-host", no_argument, NULL, OPT_VHOST},                      \
	{"ca-file", required_argument, NULL, OPT_CA_FILE}
/* clang-format on */

#define S3_USAGE                                                                                   \
	"S3 options (else the environment):\n"                                                     \
	"  --endpoint URL        $LZFS_ENDPOINT, $AWS_ENDPOINT_URL, https://s3.amazonaws.com\n"    \
	"  --region NAME         $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1\n"                    \
	"  --credentials FILE    AWS credentials file (mode 0600); else $AWS_ACCESS_KEY_ID\n"      \
	"                        and $AWS_SECRET_ACCESS_KEY, else $AWS_SHARED_CREDENTIALS_FILE\n"  \
	"  --profile NAME        section of the credentials file ($AWS_PROFILE, default)\n"        \
	"  --path-style | --virtual-host  addressing (default: virtual host for AWS)\n"            \
	"  --ca-file FILE        CA bundle for TLS\n"                                              \
	"The bucket of each object is the one recorded in the catalog.\n"

/* 1 if c was an S3 option (and is taken), 0 if not. */
static int s3set_option(struct s3set *s, int c, const char *arg)
{
	switch (c) {
	case OPT_ENDPOINT:
		s->endpoint = arg;
		return 1;
	case OPT_REGION:
		s->region = arg;
		return 1;
	case OPT_CREDS:
		s->credentials = arg;
		return 1;
	case OPT_PROFILE:
		s->profile = arg;
		return 1;
	case OPT_PATH_STYLE:
		s->path_style = 1;
		return 1;
	case OPT_VHOST:
		s->path_style = 0;
		return 1;
	case OPT_CA_FILE:
		s->ca_file = arg;
		return 1;
	default:
		return 0;
	}
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static int s3ctx_init(struct s3ctx *x, const char *cmd)
{
	struct s3set *s = &x->set;
	int rc;

	x->cmd = cmd;
	if (!s->endpoint)
		s->endpoint = env("LZFS_ENDPOINT");
	if (!s->endpoint)
		s->endpoint = env("AWS_ENDPOINT_URL_S3");
	if (!s->endpoint)
		s->endpoint = env("AWS_ENDPOINT_URL");
	if (!s->endpoint)
		s->endpoint = "https://s3.amazonaws.com";
	if (!s->region)
		s->region = env("AWS_REGION");
	if (!s->region)
		s->region = env("AWS_DEFAULT_REGION");
	if (s->path_style < 0)
		s->path_style = strstr(s->endpoint, "amazonaws.com") ? 0 : 1;
	if (!s->credentials && !(env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")))
		s->credentials = env("AWS_SHARED_CREDENTIALS_FILE");
	if (!s->profile)
		s->profile = env("AWS_PROFILE");
	/* s3_creds_load logs why it failed (naming the file or variable) */
	rc = s3_creds_load(s->credentials, s->profile, &x->creds);
	if (rc) {
		ctl_err(cmd, "no usable S3 credentials");
		return rc;
	}
	pthread_mutex_init(&x->lock, NULL);
	return 0;
}

static void s3ctx_free(struct s3ctx *x)
{
	for (int i = 0; i < x->nconns; i++) {
		rd_pool_free(x->conns[i].pool);
		s3_client_free(x->conns[i].s3);
		free(x->conns[i].bucket);
	}
	free(x->conns);
	s3_creds_clear(&x->creds);
	pthread_mutex_destroy(&x->lock);
}

/* The client and reader pool for a bucket, made on first use. */
static int s3ctx_conn(struct s3ctx *x, const char *bucket, struct conn **out)
{
	struct conn *c, *grown;
	int rc = 0;

	pthread_mutex_lock(&x->lock);
	for (int i = 0; i < x->nconns; i++)
		if (strcmp(x->conns[i].bucket, bucket) == 0) {
			*out = &x->conns[i];
			goto out;
		}
	grown = realloc(x->conns, (x->nconns + 1) * sizeof(*grown));
	if (!grown) {
		rc = -ENOMEM;
		goto out;
	}
	x->conns = grown;
	c = &x->conns[x->nconns];
	memset(c, 0, sizeof(*c));
	struct s3_config cfg = {
	    .endpoint = x->set.endpoint,
	    .region = x->set.region,
	    .bucket = bucket,
	    .path_style = x->set.path_style,
	    .creds = &x->creds,
	    .ca_file = x->set.ca_file,
	    .max_connections = 32,
	};
	c->bucket = strdup(bucket);
	if (!c->bucket) {
		rc = -ENOMEM;
		goto out;
	}
	rc = s3_client_new(&cfg, &c->s3);
	if (rc == 0)
		rc = rd_pool_new(&x->rcfg, c->s3, &c->pool);
	if (rc) {
		s3_client_free(c->s3);
		free(c->bucket);
		ctl_err(x->cmd, "cannot set up S3 access to bucket %s at %s: %s", bucket,
		        x->set.endpoint, strerror(-rc));
		goto out;
	}
	x->nconns++;
	*out = c;
out:
	pthread_mutex_unlock(&x->lock);
	return rc;
}

/* ------------------------------------------------------------ one object */

/* What the catalog says about an object (copied out of the callbacks). */
struct objref {
	char *path;
	char *bucket;
	char *key;
	int64_t size;
	int64_t mtime_ns;
	char sha256[65];
	char etag[80];
};

static void objref_clear(struct objref *r)
{
	free(r->path);
	free(r->bucket);
	free(r->key);
	memset(r, 0, sizeof(*r));
}

static int objref_set(struct objref *r, const struct cat_obj *o)
{
	memset(r, 0, sizeof(*r));
	r->path = strdup(o->path);
	r->bucket = strdup(o->bucket ? o->bucket : "");
	r->key = strdup(o->key ? o->key : "");
	r->size = o->size;
	r->mtime_ns = o->mtime_ns;
	memcpy(r->sha256, o->sha256, sizeof(r->sha256));
	memcpy(r->etag, o->etag, sizeof(r->etag));
	if (!r->path || !r->bucket || !r->key) {
		objref_clear(r);
		return -ENOMEM;
	}
	return 0;
}

enum outcome {
	OC_OK,
	OC_MISSING, /* no such object in S3 */
	OC_SIZE,    /* S3 has another size */
	OC_SHA256,  /* other bytes */
	OC_CHANGED, /* replaced while it was being read */
	OC_NOSHA,   /* the catalog has no SHA-256 to compare with */
	OC_ERROR,   /* S3 or local I/O failed */
};

static const char *outcome_name[] = {
    [OC_OK] = "ok",         [OC_MISSING] = "missing", [OC_SIZE] = "size",
    [OC_SHA256] = "sha256", [OC_CHANGED] = "changed", [OC_NOSHA] = "no-sha256",
    [OC_ERROR] = "error",
};

struct result {
	enum outcome what;
	int err;       /* OC_ERROR: negative errno */
	int write_err; /* the error was writing DEST */
	uint64_t s3_size;
	uint64_t bytes;  /* read from S3 */
	char sha256[65]; /* of the bytes read */
	char s3_etag[S3_ETAG_MAX];
};

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads r's object from S3 (into fd unless fd < 0) and judges it. Returns
 * 0 with res filled (res->what says whether it matched), or a negative errno
 * when nothing could be judged (setup failures). */
static int check_object(struct s3ctx *x, const struct objref *r, int fd, char *buf,
                        struct result *res)
{
	struct s3_object_info info;
	struct s3_status st;
	struct hash_ctx *h = NULL;
	struct rd_reader *rd = NULL;
	unsigned char d[HASH_SHA256_LEN];
	struct conn *c;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = s3ctx_conn(x, r->bucket, &c);
	if (rc)
		return rc;
	rc = s3_head_object(c->s3, r->key, &info, &st);
	if (rc == -ENOENT) {
		res->what = OC_MISSING;
		return 0;
	}
	if (rc) {
		res->what = OC_ERROR;
		res->err = rc;
		return 0;
	}
	res->s3_size = info.size;
	snprintf(res->s3_etag, sizeof(res->s3_etag), "%s", info.etag);
	s3_object_info_clear(&info);
	if (res->s3_size != (uint64_t)r->size) {
		res->what = OC_SIZE;
		return 0;
	}
	rc = hash_new(HASH_SHA256, &h);
	if (rc == 0)
		rc = rd_open(c->pool, r->key, res->s3_size, res->s3_etag[0] ? res->s3_etag : NULL,
		             RD_SEQUENTIAL, &rd);
	while (rc == 0 && res->bytes < res->s3_size) {
		ssize_t n = rd_read(rd, buf, READ_SIZE, res->bytes);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			break;
		}
		rc = hash_update(h, buf, (size_t)n);
		if (rc == 0 && fd >= 0 && (rc = write_all(fd, buf, (size_t)n)) != 0)
			res->write_err = 1;
		res->bytes += (uint64_t)n;
	}
	if (rc == 0)
		rc = hash_final(h, d);
	rd_close(rd);
	hash_free(h);
	if (rc == -ESTALE) {
		res->what = OC_CHANGED;
		return 0;
	}
	if (rc) {
		res->what = OC_ERROR;
		res->err = rc;
		return 0;
	}
	hash_hex(d, HASH_SHA256_LEN, res->sha256);
	if (!r->sha256[0])
		res->what = OC_NOSHA;
	else if (strcasecmp(r->sha256, res->sha256) != 0)
		res->what = OC_SHA256;
	else
		res->what = OC_OK;
	return 0;
}

/* One line about a result that is not OC_OK, on stderr. */
static void report_problem(const char *cmd, const struct objref *r, const struct result *res)
{
	char what[400];

	switch (res->what) {
	case OC_MISSING:
		snprintf(what, sizeof what, "missing in S3");
		break;
	case OC_SIZE:
		snprintf(what, sizeof what, "size mismatch: expected %lld bytes, S3 has %llu",
		         (long long)r->size, (unsigned long long)res->s3_size);
		break;
	case OC_SHA256:
		snprintf(what, sizeof what, "SHA-256 mismatch: expected %s, actual %s", r->sha256,
		         res->sha256);
		break;
	case OC_CHANGED:
		snprintf(what, sizeof what, "the object changed in S3 while it was read");
		break;
	case OC_NOSHA:
		snprintf(what, sizeof what, "the catalog has no SHA-256 (actual %s)", res->sha256);
		break;
	case OC_ERROR:
		snprintf(what, sizeof what, "%s: %s", res->write_err ? "cannot write" : "S3 error",
		         strerror(-res->err));
		break;
	default:
		return;
	}
	flockfile(stderr);
	fprintf(stderr, "lzfsctl: %s: ", cmd);
	ctl_put_name(stderr, r->path);
	fprintf(stderr, " (s3://%s/", r->bucket);
	ctl_put_name(stderr, r->key);
	fprintf(stderr, "): %s\n", what);
	funlockfile(stderr);
}

/* ------------------------------------------------------------ get */

static const char get_usage[] =
    "usage: lzfsctl get [--version N] [S3 OPTIONS] PATH DEST\n"
    "  Downloads the current (or Nth) version of PATH from S3 into DEST (a file,\n"
    "  a directory to put it in, or - for stdout), reading ranges in parallel, and\n"
    "  checks its SHA-256 and size against the catalog while writing. On a\n"
    "  mismatch the exit status is 4 and DEST is not left behind (a DEST that\n"
    "  existed is only replaced by a verified download). Exit status: 0 ok,\n"
    "  1 no such object, 2 usage, 3 catalog error, 4 the object in S3 differs\n"
    "  from the catalog or is missing, 5 S3 or DEST could not be read or written.\n"
    "\n" S3_USAGE;

struct pick {
	int version;
	int found_version;
	struct objref ref;
	enum cat_state state;
	char *symlink;
	int found;
	int rc;
};

static int pick_cb(const struct cat_obj *o, void *arg)
{
	struct pick *p = arg;

	if (p->found || (p->version ? o->version != p->version : !o->current))
		return 0;
	p->found = 1;
	p->found_version = o->version;
	p->state = o->state;
	p->rc = objref_set(&p->ref, o);
	if (o->symlink && !(p->symlink = strdup(o->symlink)))
		p->rc = -ENOMEM;
	return 0;
}

/* DEST as a file name: a directory gets the object's name appended. */
static char *dest_file(const char *dest, const char *path)
{
	struct stat st;
	char *out;

	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (asprintf(&out, "%s/%s", dest, ctl_basename(path)) < 0)
			return NULL;
		return out;
	}
	return strdup(dest);
}

int ctl_get(int argc, char **argv, const struct ctl_opts *o)
{
	static const struct option opts[] = {
	    {"version", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'H'},
	    S3_LONGOPTS,
	    {0},
	};
	struct s3ctx x = {.set.path_style = -1};
	struct pick p = {0};
	struct result res;
	char *path = NULL, *file = NULL, *tmp = NULL, *buf = NULL;
	const char *dest;
	int c, ex, rc, fd = -1;
	struct cat *cat;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (s3set_option(&x.set, c, optarg))
			continue;
		switch (c) {
		case 'v':
			p.version = atoi(optarg);
			if (p.version < 1)
				return ctl_usage(get_usage, 0);
			break;
		case 'H':
			return ctl_usage(get_usage, 1);
		default:
			return ctl_usage(get_usage, 0);
		}
	}
	if (argc - optind != 2)
		return ctl_usage(get_usage, 0);
	dest = argv[optind + 1];
	path = ctl_path("get", argv[optind]);
	if (!path)
		return CTL_USAGE;
	ex = ctl_open(o, "get", CAT_READONLY, &cat);
	if (ex) {
		free(path);
		return ex;
	}
	rc = *path ? cat_obj_versions(cat, path, pick_cb, &p) : -ENOENT;
	cat_close(cat);
	if (rc == 0)
		rc = p.rc;
	if (rc == 0 && !p.found)
		rc = -ENOENT;
	if (rc) {
		if (p.version && rc == -ENOENT)
			ctl_err("get", "%s: no version %d", path, p.version);
		else
			ctl_err("get", "%s: %s", path,
			        rc == -ENOENT ? "no such object" : strerror(-rc));
		ex = ctl_exit_of(rc);
		goto out;
	}
	if (p.state != CAT_INGESTED) {
		ctl_err("get", "%s: version %d is %s, not in S3 yet (it is in the landing zone)",
		        path, p.found_version, cat_state_name(p.state));
		ex = CTL_NOTFOUND;
		goto out;
	}
	if (p.symlink) {
		ctl_err("get", "%s is a symbolic link to %s", path, p.symlink);
		ex = CTL_NOTFOUND;
		goto out;
	}
	if (s3ctx_init(&x, "get")) {
		ex = CTL_S3_ERROR;
		goto out;
	}
	if (strcmp(dest, "-") == 0) {
		fd = STDOUT_FILENO;
	} else {
		file = dest_file(dest, path);
		if (!file || asprintf(&tmp, "%s.lzfsctl-XXXXXX", file) < 0) {
			tmp = NULL;
			ctl_err("get", "out of memory");
			ex = CTL_ERROR;
			goto out_s3;
		}
		fd = mkstemp(tmp);
		if (fd < 0) {
			ctl_err("get", "cannot create %s: %s", tmp, strerror(errno));
			free(tmp);
			tmp = NULL;
			ex = CTL_S3_ERROR;
			goto out_s3;
		}
	}
	buf = malloc(READ_SIZE);
	rc = buf ? check_object(&x, &p.ref, fd, buf, &res) : -ENOMEM;
	if (rc) {
		ctl_err("get", "%s: %s", path, strerror(-rc));
		ex = CTL_S3_ERROR;
	} else if (res.what != OC_OK) {
		report_problem("get", &p.ref, &res);
		ex = res.what == OC_ERROR ? CTL_S3_ERROR : CTL_BAD_DATA;
	} else {
		ex = CTL_OK;
	}
	if (tmp) {
		mode_t um = umask(0);
		umask(um);
		struct timespec ts[2] = {
		    {.tv_nsec = UTIME_OMIT},
		    {.tv_sec = p.ref.mtime_ns / 1000000000, .tv_nsec = p.ref.mtime_ns % 1000000000},
		};
		if (ex == CTL_OK && (fchmod(fd, 0666 & ~um) || futimens(fd, ts))) {
			ctl_err("get", "%s: %s", tmp, strerror(errno));
			ex = CTL_S3_ERROR;
		}
		if (close(fd) && ex == CTL_OK) {
			ctl_err("get", "%s: %s", tmp, strerror(errno));
			ex = CTL_S3_ERROR;
		}
		if (ex == CTL_OK && rename(tmp, file)) {
			ctl_err("get", "cannot rename %s to %s: %s", tmp, file, strerror(errno));
			ex = CTL_S3_ERROR;
		}
		if (ex != CTL_OK) {
			unlink(tmp);
			fprintf(stderr, "lzfsctl: get: %s not written\n", file);
		}
	}
out_s3:
	s3ctx_free(&x);
out:
	free(buf);
	free(tmp);
	free(file);
	free(p.symlink);
	objref_clear(&p.ref);
	free(path);
	return ex;
}

/* ------------------------------------------------------------ verify */

static const char verify_usage[] =
    "usage: lzfsctl verify [--jobs N] [S3 OPTIONS] PATH...|--all\n"
    "  Reads ingested objects back from S3 (ranges in parallel) and compares\n"
    "  their size and SHA-256 with the catalog: PATH is an object or a\n"
    "  collection (everything below it), --all the whole catalog (current\n"
    "  versions in state ingested). Reports each object that differs, is\n"
    "  missing or could not be read (path, key, expected, actual), then a\n"
    "  summary. --jobs: objects checked at once (default 4).\n"
    "  Exit status: 0 every object matches, 1 no such PATH, 2 usage, 3 catalog\n"
    "  error, 4 some object differs or is missing, 5 some object could not be\n"
    "  read (and none differs).\n"
    "\n" S3_USAGE;

struct vlist {
	struct objref *v;
	size_t n, cap;
	int rc;
};

static int vlist_add(const struct cat_obj *o, void *arg)
{
	struct vlist *l = arg;

	if (o->state != CAT_INGESTED)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct objref *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->rc = -ENOMEM;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->rc = objref_set(&l->v[l->n], o);
	if (l->rc)
		return 1;
	l->n++;
	return 0;
}

struct vjob {
	struct s3ctx *x;
	struct vlist *list;
	struct result *res;
	atomic_size_t next;
	atomic_int setup_err;
};

static void *verify_worker(void *arg)
{
	struct vjob *j = arg;
	char *buf = malloc(READ_SIZE);
	size_t i;

	if (!buf) {
		atomic_store(&j->setup_err, -ENOMEM);
		return NULL;
	}
	while ((i = atomic_fetch_add(&j->next, 1)) < j->list->n) {
		const struct objref *r = &j->list->v[i];
		int rc = check_object(j->x, r, -1, buf, &j->res[i]);
		if (rc) {
			j->res[i].what = OC_ERROR;
			j->res[i].err = rc;
		}
		report_problem("verify", r, &j->res[i]);
	}
	free(buf);
	return NULL;
}

/* Adds PATH's objects to the list: one object, or all below a collection. */
static int collect(struct cat *cat, const char *path, struct vlist *l)
{
	struct cat_obj obj;
	struct cat_coll coll;
	struct cat_query q;
	int rc;

	if (*path) {
		rc = cat_obj_get(cat, path, &obj);
		if (rc == 0) {
			if (obj.state == CAT_INGESTED)
				vlist_add(&obj, l);
			else
				ctl_err("verify", "%s is %s, not in S3 yet: skipped", path,
				        cat_state_name(obj.state));
			cat_obj_clear(&obj);
			return l->rc;
		}
		if (rc != -ENOENT)
			return rc;
		rc = cat_coll_get(cat, path, &coll);
		if (rc)
			return rc;
		cat_coll_clear(&coll);
	}
	cat_query_init(&q);
	q.under = *path ? path : NULL;
	q.state = CAT_INGESTED;
	rc = cat_find(cat, &q, vlist_add, l);
	return rc ? rc : l->rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ctl_verify(int argc, char **argv, const struct ctl_opts *o)
{
	static const struct option opts[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"jobs", required_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'H'},
	    S3_LONGOPTS,
	    {0},
	};
	struct s3ctx x = {.set.path_style = -1};
	struct vlist list = {0};
	struct vjob job = {0};
	int c, all = 0, jobs = 4, ex, rc = 0;
	struct cat *cat;

	optind = 0;
	while ((c = getopt_long(argc, argv, "j:", opts, NULL)) != -1) {
		if (s3set_option(&x.set, c, optarg))
			continue;
		switch (c) {
		case 'a':
			all = 1;
			break;
		case 'j':
			jobs = atoi(optarg);
			if (jobs < 1 || jobs > 256)
				return ctl_usage(verify_usage, 0);
			break;
		case 'H':
			return ctl_usage(verify_usage, 1);
		default:
			return ctl_usage(verify_usage, 0);
		}
	}
	if (all == (optind < argc))
		return ctl_usage(verify_usage, 0);
	ex = ctl_open(o, "verify", CAT_READONLY, &cat);
	if (ex)
		return ex;
	/* The list is taken first: no read transaction stays open on the
	 * catalog (holding back the daemon's checkpoints) while S3 is read. */
	if (all) {
		rc = collect(cat, "", &list);
	} else {
		for (int i = optind; i < argc && rc == 0; i++) {
			char *path = ctl_path("verify", argv[i]);
			if (!path) {
				rc = -EINVAL;
				break;
			}
			rc = collect(cat, path, &list);
			if (rc == -ENOENT)
				ctl_err("verify", "%s: no such object or collection", path);
			free(path);
		}
	}
	cat_close(cat);
	if (rc) {
		if (rc != -ENOENT && rc != -EINVAL)
			ctl_err("verify", "catalog %s: %s", o->catalog_name, strerror(-rc));
		ex = ctl_exit_of(rc);
		goto out;
	}

	uint64_t n[OC_ERROR + 1] = {0}, bytes = 0;
	double t0 = now_s(), dt;
	job.res = calloc(list.n ? list.n : 1, sizeof(*job.res));
	if (!job.res) {
		ctl_err("verify", "out of memory");
		ex = CTL_ERROR;
		goto out;
	}
	if (list.n > 0) {
		if (s3ctx_init(&x, "verify")) {
			ex = CTL_S3_ERROR;
			goto out;
		}
		pthread_t *th = calloc(jobs, sizeof(*th));
		int started = 0;
		job.x = &x;
		job.list = &list;
		for (; th && started < jobs && (size_t)started < list.n; started++)
			if (pthread_create(&th[started], NULL, verify_worker, &job))
				break;
		if (started == 0)
			verify_worker(&job); /* no thread could start: do it here */
		for (int i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		free(th);
		s3ctx_free(&x);
	}
	dt = now_s() - t0;
	for (size_t i = 0; i < list.n; i++) {
		n[job.res[i].what]++;
		bytes += job.res[i].bytes;
	}
	uint64_t bad = n[OC_SIZE] + n[OC_SHA256] + n[OC_CHANGED] + n[OC_NOSHA];
	double rate = dt > 0 ? (double)bytes / MIB / dt : 0;
	if (o->json) {
		struct ctl_json j;
		ctl_json_begin(&j, stdout);
		ctl_json_key(&j, "problems");
		fputc('[', stdout);
		for (size_t i = 0, k = 0; i < list.n; i++) {
			const struct result *res = &job.res[i];
			const struct objref *r = &list.v[i];
			struct ctl_json p;
			if (res->what == OC_OK)
				continue;
			if (k++)
				fputc(',', stdout);
			ctl_json_begin(&p, stdout);
			ctl_json_str(&p, "path", r->path);
			ctl_json_str(&p, "bucket", r->bucket);
			ctl_json_str(&p, "key", r->key);
			ctl_json_str(&p, "problem", outcome_name[res->what]);
			if (res->what == OC_SIZE) {
				ctl_json_int(&p, "expected", r->size);
				ctl_json_int(&p, "actual", (int64_t)res->s3_size);
			} else if (res->what == OC_SHA256 || res->what == OC_NOSHA) {
				ctl_json_str(&p, "expected", r->sha256);
				ctl_json_str(&p, "actual", res->sha256);
			} else if (res->what == OC_ERROR) {
				ctl_json_str(&p, "error", strerror(-res->err));
			}
			ctl_json_end(&p);
		}
		fputc(']', stdout);
		ctl_json_int(&j, "checked", (int64_t)list.n);
		ctl_json_int(&j, "bytes", (int64_t)bytes);
		ctl_json_key(&j, "seconds");
		printf("%.3f", dt);
		ctl_json_key(&j, "mib_per_s");
		printf("%.1f", rate);
		ctl_json_int(&j, "ok", (int64_t)n[OC_OK]);
		ctl_json_int(&j, "mismatches", (int64_t)bad);
		ctl_json_int(&j, "missing", (int64_t)n[OC_MISSING]);
		ctl_json_int(&j, "errors", (int64_t)n[OC_ERROR]);
		ctl_json_bool(&j, "all_match", n[OC_OK] == list.n);
		ctl_json_end(&j);
		fputc('\n', stdout);
	} else {
		char sz[64];
		printf("checked %zu objects, %llu bytes (%s) in %.1f s, %.1f MiB/s\n", list.n,
		       (unsigned long long)bytes, ctl_fmt_size((int64_t)bytes, sz, sizeof sz), dt,
		       rate);
		printf("%llu ok, %llu mismatches, %llu missing, %llu errors\n",
		       (unsigned long long)n[OC_OK], (unsigned long long)bad,
		       (unsigned long long)n[OC_MISSING], (unsigned long long)n[OC_ERROR]);
	}
	ex = bad || n[OC_MISSING] ? CTL_BAD_DATA : n[OC_ERROR] ? CTL_S3_ERROR : CTL_OK;
out:
	for (size_t i = 0; i < list.n; i++)
		objref_clear(&list.v[i]);
	free(list.v);
	free(job.res);
	return ex;
}
