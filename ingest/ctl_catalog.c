/* ctl_catalog.c - lzfsctl's catalog commands: ls, stat, find, meta, events,
 * status, check, and debug-add (for tests). Reads open the catalog
 * read-only; the daemon may be writing meanwhile (WAL). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"

/* GNU getopt, restarted for each command's own argv. */
static void getopt_reset(void)
{
	optind = 0;
	opterr = 1;
}

/* The options of a command whose only option is one positive number,
 * --NAME N (and -SHORT N if short is not 0). Returns -1 when the operands
 * follow (from optind), else the exit status to return. */
static int int_option(int argc, char **argv, const char *usage, const char *name, char short_opt,
		      int *val)
{
	const struct option opts[] = {
	    {name, required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'H'},
	    {0},
	};
	char shorts[3] = {short_opt, ':', '\0'};
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, short_opt ? shorts : "", opts, NULL)) != -1) {
		if (c == 'H')
			return ctl_usage(usage, 1);
		if (c != 'N' && !(short_opt && c == short_opt))
			return ctl_usage(usage, 0);
		char *end;
		errno = 0;
		long v = strtol(optarg, &end, 10);
		if (errno || end == optarg || *end || v < 1 || v > INT_MAX) {
			fprintf(stderr, "lzfsctl: --%s wants a whole number from 1: %s\n", name, optarg);
			return ctl_usage(usage, 0);
		}
		*val = (int)v;
	}
	return -1;
}

/* --- shared output of objects --- */

static void json_obj(FILE *f, const struct cat_obj *o)
{
	struct ctl_json j;
	ctl_json_begin(&j, f);
	ctl_json_str(&j, "type", "object");
	ctl_json_str(&j, "path", o->path);
	ctl_json_str(&j, "name", ctl_basename(o->path));
	ctl_json_int(&j, "id", o->id);
	ctl_json_int(&j, "version", o->version);
	ctl_json_bool(&j, "current", o->current);
	ctl_json_str(&j, "state", cat_state_name(o->state));
	ctl_json_str(&j, "bucket", o->bucket);
	ctl_json_str(&j, "key", o->key);
	ctl_json_int(&j, "size", o->size);
	ctl_json_int(&j, "mode", o->mode);
	ctl_json_int(&j, "uid", o->uid);
	ctl_json_int(&j, "gid", o->gid);
	ctl_json_int(&j, "mtime_ns", o->mtime_ns);
	ctl_json_time(&j, "mtime", o->mtime_ns);
	ctl_json_int(&j, "ctime_ns", o->ctime_ns);
	ctl_json_time(&j, "ctime", o->ctime_ns);
	ctl_json_int(&j, "ingest_ns", o->ingest_ns);
	ctl_json_time(&j, "ingested", o->ingest_ns);
	ctl_json_str(&j, "sha256", o->sha256[0] ? o->sha256 : NULL);
	ctl_json_str(&j, "etag", o->etag[0] ? o->etag : NULL);
	ctl_json_str(&j, "source", o->source);
	ctl_json_str(&j, "upload_id", o->upload_id);
	ctl_json_int(&j, "parts_done", o->parts_done);
	ctl_json_str(&j, "last_error", o->last_error);
	ctl_json_str(&j, "symlink", o->symlink);
	ctl_json_end(&j);
}

static void json_coll(FILE *f, const struct cat_coll *c)
{
	struct ctl_json j;
	ctl_json_begin(&j, f);
	ctl_json_str(&j, "type", "collection");
	ctl_json_str(&j, "path", c->path);
	ctl_json_str(&j, "name", ctl_basename(c->path));
	ctl_json_int(&j, "id", c->id);
	ctl_json_int(&j, "mode", c->mode);
	ctl_json_int(&j, "uid", c->uid);
	ctl_json_int(&j, "gid", c->gid);
	ctl_json_int(&j, "mtime_ns", c->mtime_ns);
	ctl_json_time(&j, "mtime", c->mtime_ns);
	ctl_json_int(&j, "ctime_ns", c->ctime_ns);
	ctl_json_time(&j, "ctime", c->ctime_ns);
	ctl_json_end(&j);
}

struct lsopt {
	const struct ctl_opts *o;
	struct cat *cat;
	int lng, human, versions, full_path;
	int n;   /* entries printed */
	int err; /* a failed nested read */
};

static void size_col(const struct lsopt *l, int64_t size, char *buf, size_t n)
{
	if (l->human)
		ctl_fmt_size(size, buf, n);
	else
		snprintf(buf, n, "%lld", (long long)size);
}

/* One line (or JSON element) for an object version. */
static void put_obj(struct lsopt *l, const struct cat_obj *o)
{
	FILE *f = stdout;
	if (l->o->json) {
		if (l->n++)
			fputc(',', f);
		json_obj(f, o);
		return;
	}
	l->n++;
	const char *name = l->full_path ? o->path : ctl_basename(o->path);
	if (l->lng) {
		char size[32], when[40], mode[11];
		size_col(l, o->size, size, sizeof size);
		printf("%s %-9s v%-3d %10s  %s  ", ctl_fmt_mode(o->mode, mode),
		       cat_state_name(o->state), o->version, size,
		       ctl_fmt_time(o->mtime_ns, when, sizeof when));
	}
	ctl_put_name(f, name);
	if (l->versions)
		printf(" v%d%s", o->version, o->current ? "" : " (older)");
	if (l->lng && o->symlink) {
		fputs(" -> ", f);
		ctl_put_name(f, o->symlink);
	}
	fputc('\n', f);
}

static void put_coll(struct lsopt *l, const struct cat_coll *c)
{
	FILE *f = stdout;
	if (l->o->json) {
		if (l->n++)
			fputc(',', f);
		json_coll(f, c);
		return;
	}
	l->n++;
	if (l->lng) {
		char when[40], mode[11];
		printf("%s %-9s %-4s %10s  %s  ", ctl_fmt_mode(c->mode, mode), "-", "", "-",
		       ctl_fmt_time(c->mtime_ns, when, sizeof when));
	}
	ctl_put_name(f, l->full_path ? c->path : ctl_basename(c->path));
	fputs("/\n", f);
}

static int version_cb(const struct cat_obj *o, void *arg)
{
	put_obj(arg, o);
	return 0;
}

static int ls_cb(const struct cat_coll *c, const struct cat_obj *o, void *arg)
{
	struct lsopt *l = arg;
	if (c) {
		put_coll(l, c);
		return 0;
	}
	if (!l->versions) {
		put_obj(l, o);
		return 0;
	}
	int rc = cat_obj_versions(l->cat, o->path, version_cb, l);
	if (rc < 0)
		l->err = rc;
	return rc < 0 ? rc : 0;
}

static const char ls_usage[] =
    "usage: lzfsctl ls [-l] [-h] [--versions] [PATH]\n"
    "  Lists the collections and current objects in collection PATH (default: the\n"
    "  root); for an object, that object.\n"
    "  -l, --long      mode, state, version, size, mtime\n"
    "  -h, --human     sizes as KiB, MiB, ...\n"
    "  --versions      every version of each object, newest first\n";

int ctl_ls(int argc, char **argv, const struct ctl_opts *o)
{
	static const struct option opts[] = {
	    {"long", no_argument, NULL, 'l'},
	    {"human", no_argument, NULL, 'h'},
	    {"versions", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'H'},
	    {0},
	};
	struct lsopt l = {.o = o};
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "lh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			l.lng = 1;
			break;
		case 'h':
			l.human = 1;
			break;
		case 'V':
			l.versions = 1;
			break;
		case 'H':
			return ctl_usage(ls_usage, 1);
		default:
			return ctl_usage(ls_usage, 0);
		}
	}
	if (argc - optind > 1)
		return ctl_usage(ls_usage, 0);
	char *path = ctl_path("ls", optind < argc ? argv[optind] : "");
	if (!path)
		return CTL_USAGE;
	int ex = ctl_open(o, "ls", CAT_READONLY, &l.cat);
	if (ex) {
		free(path);
		return ex;
	}
	if (o->json)
		fputc('[', stdout);
	int rc = cat_list(l.cat, path, ls_cb, &l);
	if (rc == -ENOTDIR) {
		/* An object: list it, as ls does for a file. */
		struct cat_obj obj;
		rc = cat_obj_get(l.cat, path, &obj);
		if (rc == 0) {
			l.full_path = 1;
			if (l.versions)
				rc = cat_obj_versions(l.cat, path, version_cb, &l);
			else
				put_obj(&l, &obj);
			cat_obj_clear(&obj);
		}
	}
	if (o->json)
		fputs("]\n", stdout);
	if (rc == -ENOENT)
		ctl_err("ls", "%s: no such collection or object", *path ? path : "/");
	else if (rc < 0)
		ctl_err("ls", "%s: %s", *path ? path : "/", strerror(-rc));
	cat_close(l.cat);
	free(path);
	return ctl_exit_of(rc);
}

/* --- stat --- */

struct avu_out {
	FILE *f;
	int json;
	int n;
};

static int avu_cb(const struct cat_avu *a, void *arg)
{
	struct avu_out *x = arg;
	if (x->json) {
		struct ctl_json j;
		if (x->n)
			fputc(',', x->f);
		ctl_json_begin(&j, x->f);
		ctl_json_str(&j, "name", a->name);
		ctl_json_str(&j, "value", a->value);
		ctl_json_str(&j, "unit", a->unit);
		ctl_json_end(&j);
	} else {
		fputs("  ", x->f);
		ctl_put_name(x->f, a->name);
		fputs(" = ", x->f);
		ctl_put_name(x->f, a->value);
		if (a->unit) {
			fputs(" [", x->f);
			ctl_put_name(x->f, a->unit);
			fputc(']', x->f);
		}
		fputc('\n', x->f);
	}
	x->n++;
	return 0;
}

struct pick {
	int version;
	struct cat_obj obj;
	int found, count;
};

static int pick_cb(const struct cat_obj *o, void *arg)
{
	struct pick *p = arg;
	p->count++;
	if (p->found || (p->version ? o->version != p->version : !o->current))
		return 0;
	p->obj = *o;
	/* The callback's strings live only during the call. */
	char **s[] = {&p->obj.path,      &p->obj.bucket,     &p->obj.key,    &p->obj.source,
	              &p->obj.upload_id, &p->obj.last_error, &p->obj.symlink};
	for (unsigned i = 0; i < sizeof s / sizeof s[0]; i++)
		if (*s[i] && !(*s[i] = strdup(*s[i])))
			return -ENOMEM;
	p->found = 1;
	return 0;
}

static void human_line(const char *label, const char *value)
{
	printf("%-12s ", label);
	if (value)
		ctl_put_name(stdout, value);
	else
		fputc('-', stdout);
	fputc('\n', stdout);
}

static void stat_obj_human(const struct cat_obj *o, int versions)
{
	char buf[64], when[40], mode[11];
	human_line("path:", o->path);
	printf("%-12s object, version %d of %d%s\n", "type:", o->version, versions,
	       o->current ? " (current)" : " (older)");
	printf("%-12s %s\n", "state:", cat_state_name(o->state));
	human_line("bucket:", o->bucket);
	human_line("key:", o->key);
	printf("%-12s %lld (%s)\n", "size:", (long long)o->size,
	       ctl_fmt_size(o->size, buf, sizeof buf));
	printf("%-12s %s (%04o)\n", "mode:", ctl_fmt_mode(o->mode, mode), o->mode & 07777);
	printf("%-12s %u/%u\n", "uid/gid:", o->uid, o->gid);
	printf("%-12s %s (%lld ns)\n", "mtime:", ctl_fmt_time(o->mtime_ns, when, sizeof when),
	       (long long)o->mtime_ns);
	printf("%-12s %s\n", "registered:", ctl_fmt_time(o->ctime_ns, when, sizeof when));
	printf("%-12s %s\n", "ingested:", ctl_fmt_time(o->ingest_ns, when, sizeof when));
	human_line("sha256:", o->sha256[0] ? o->sha256 : NULL);
	human_line("etag:", o->etag[0] ? o->etag : NULL);
	human_line("source:", o->source && *o->source ? o->source : NULL);
	human_line("upload id:", o->upload_id);
	printf("%-12s %d\n", "parts done:", o->parts_done);
	human_line("last error:", o->last_error);
	if (o->symlink)
		human_line("symlink:", o->symlink);
	printf("%-12s %lld\n", "id:", (long long)o->id);
}

static const char stat_usage[] =
    "usage: lzfsctl stat [--version N] PATH\n"
    "  State, key, size, checksums, times, upload and metadata of the current\n"
    "  version of object PATH (or version N), or of collection PATH.\n";

int ctl_stat(int argc, char **argv, const struct ctl_opts *o)
{
	int version = 0, ex = int_option(argc, argv, stat_usage, "version", 0, &version);
	if (ex >= 0)
		return ex;
	if (argc - optind != 1)
		return ctl_usage(stat_usage, 0);
	char *path = ctl_path("stat", argv[optind]);
	if (!path)
		return CTL_USAGE;
	struct cat *cat;
	ex = ctl_open(o, "stat", CAT_READONLY, &cat);
	if (ex) {
		free(path);
		return ex;
	}
	struct pick p = {.version = version};
	int rc = *path ? cat_obj_versions(cat, path, pick_cb, &p) : -ENOENT;
	struct avu_out av = {.f = stdout, .json = o->json};
	if (rc == 0 && p.found) {
		if (o->json) {
			/* The object's fields, then its metadata. */
			struct ctl_json j;
			ctl_json_begin(&j, stdout);
			ctl_json_key(&j, "object");
			json_obj(stdout, &p.obj);
			ctl_json_int(&j, "versions", p.count);
			ctl_json_key(&j, "metadata");
			fputc('[', stdout);
		} else {
			stat_obj_human(&p.obj, p.count);
			printf("metadata:\n");
		}
		/* Metadata belongs to the current version; an older one shows
		 * its own only through find --all-versions. */
		if (p.obj.current)
			rc = cat_meta_list(cat, path, avu_cb, &av);
		if (o->json)
			fputs("]}\n", stdout);
		else if (av.n == 0)
			printf("  (none)\n");
	} else if (rc == 0 || rc == -ENOENT) {
		struct cat_coll cc;
		if (version) {
			rc = -ENOENT;
		} else if ((rc = cat_coll_get(cat, path, &cc)) == 0) {
			if (o->json) {
				struct ctl_json j;
				ctl_json_begin(&j, stdout);
				ctl_json_key(&j, "collection");
				json_coll(stdout, &cc);
				ctl_json_key(&j, "metadata");
				fputc('[', stdout);
			} else {
				char when[40], mode[11];
				human_line("path:", *cc.path ? cc.path : "/");
				printf("%-12s collection\n", "type:");
				printf("%-12s %s (%04o)\n", "mode:", ctl_fmt_mode(cc.mode, mode),
				       cc.mode & 07777);
				printf("%-12s %u/%u\n", "uid/gid:", cc.uid, cc.gid);
				printf("%-12s %s\n",
				       "created:", ctl_fmt_time(cc.ctime_ns, when, sizeof when));
				printf("metadata:\n");
			}
			rc = cat_meta_list(cat, path, avu_cb, &av);
			if (o->json)
				fputs("]}\n", stdout);
			else if (av.n == 0)
				printf("  (none)\n");
			cat_coll_clear(&cc);
		}
	}
	if (rc == -ENOENT) {
		if (p.count && !version)
			ctl_err("stat", "%s: no current version (%d older; see ls --versions)",
			        path, p.count);
		else if (version)
			ctl_err("stat", "%s: no version %d", path, version);
		else
			ctl_err("stat", "%s: no such object or collection", path);
	} else if (rc < 0) {
		ctl_err("stat", "%s: %s", path, strerror(-rc));
	}
	cat_obj_clear(&p.obj);
	cat_close(cat);
	free(path);
	return ctl_exit_of(rc);
}

/* --- find --- */

static int find_cb(const struct cat_obj *o, void *arg)
{
	put_obj(arg, o);
	return 0;
}

static const char find_usage[] =
    "usage: lzfsctl find [OPTIONS] [PATH]\n"
    "  Objects (current versions) under collection PATH that match every option.\n"
    "  --name GLOB       last path component matches GLOB (*, ?, [..], \\ escapes)\n"
    "  --state STATE     pending, uploading, ingested, failed or deleted\n"
    "  --min-size N      at least N bytes (K, M, G, T suffixes: binary units)\n"
    "  --max-size N      at most N bytes\n"
    "  --newer TIME      mtime after TIME; --older TIME: before TIME. TIME is\n"
    "                    YYYY-MM-DD[ HH:MM[:SS]][Z], @EPOCH, or an age: 30m, 2h, 7d\n"
    "  --meta KEY[=VAL]  has metadata KEY (with value VAL)\n"
    "  --all-versions    older versions too\n"
    "  --limit N         at most N results\n"
    "  -l, --long, -h, --human   as for ls\n"
    "  Exit status 1 when nothing matches.\n";

int ctl_find(int argc, char **argv, const struct ctl_opts *o)
{
	enum {
		O_NAME = 256,
		O_STATE,
		O_MIN,
		O_MAX,
		O_NEWER,
		O_OLDER,
		O_META,
		O_ALL,
		O_LIMIT,
		O_HELP
	};
	static const struct option opts[] = {
	    {"name", required_argument, NULL, O_NAME},
	    {"state", required_argument, NULL, O_STATE},
	    {"min-size", required_argument, NULL, O_MIN},
	    {"max-size", required_argument, NULL, O_MAX},
	    {"newer", required_argument, NULL, O_NEWER},
	    {"older", required_argument, NULL, O_OLDER},
	    {"meta", required_argument, NULL, O_META},
	    {"all-versions", no_argument, NULL, O_ALL},
	    {"limit", required_argument, NULL, O_LIMIT},
	    {"long", no_argument, NULL, 'l'},
	    {"human", no_argument, NULL, 'h'},
	    {"help", no_argument, NULL, O_HELP},
	    {0},
	};
	struct cat_query q;
	cat_query_init(&q);
	struct lsopt l = {.o = o, .full_path = 1};
	char *meta = NULL;
	int c, bad = 0;
	int64_t now = ctl_now_ns();
	getopt_reset();
	while ((c = getopt_long(argc, argv, "lh", opts, NULL)) != -1) {
		switch (c) {
		case O_NAME:
			q.name_glob = optarg;
			break;
		case O_STATE:
			q.state = cat_state_parse(optarg);
			if (q.state < 0) {
				ctl_err("find", "unknown state '%s'", optarg);
				bad = 1;
			}
			break;
		case O_MIN:
		case O_MAX:
			if (ctl_parse_size(optarg, c == O_MIN ? &q.min_size : &q.max_size)) {
				ctl_err("find", "bad size '%s'", optarg);
				bad = 1;
			}
			break;
		case O_NEWER:
		case O_OLDER:
			if (ctl_parse_time(optarg, now,
			                   c == O_NEWER ? &q.mtime_after_ns : &q.mtime_before_ns)) {
				ctl_err("find", "bad time '%s'", optarg);
				bad = 1;
			}
			break;
		case O_META:
			free(meta);
			meta = strdup(optarg);
			if (!meta)
				return CTL_ERROR;
			q.meta_key = meta;
			char *eq = strchr(meta, '=');
			if (eq) {
				*eq = '\0';
				q.meta_value = eq + 1;
			}
			if (!*meta) {
				ctl_err("find", "--meta needs a key");
				bad = 1;
			}
			break;
		case O_ALL:
			q.all_versions = 1;
			break;
		case O_LIMIT:
			q.limit = atoi(optarg);
			if (q.limit < 1) {
				ctl_err("find", "bad limit '%s'", optarg);
				bad = 1;
			}
			break;
		case 'l':
			l.lng = 1;
			break;
		case 'h':
			l.human = 1;
			break;
		case O_HELP:
			free(meta);
			return ctl_usage(find_usage, 1);
		default:
			bad = 1;
		}
	}
	if (bad || argc - optind > 1) {
		free(meta);
		return ctl_usage(find_usage, 0);
	}
	char *under = ctl_path("find", optind < argc ? argv[optind] : "");
	if (!under) {
		free(meta);
		return CTL_USAGE;
	}
	q.under = under;
	int ex = ctl_open(o, "find", CAT_READONLY, &l.cat);
	if (ex == 0) {
		if (o->json)
			fputc('[', stdout);
		int rc = cat_find(l.cat, &q, find_cb, &l);
		if (o->json)
			fputs("]\n", stdout);
		if (rc < 0) {
			ctl_err("find", "%s", strerror(-rc));
			ex = ctl_exit_of(rc);
		} else {
			ex = l.n ? CTL_OK : CTL_NOTFOUND;
		}
		cat_close(l.cat);
	}
	free(under);
	free(meta);
	return ex;
}

/* --- meta --- */

static const char meta_usage[] =
    "usage: lzfsctl meta set PATH NAME VALUE [UNIT]\n"
    "       lzfsctl meta rm PATH NAME\n"
    "       lzfsctl meta ls PATH\n"
    "  User metadata (name, value, unit) of an object's current version or of a\n"
    "  collection. set replaces NAME; a new version starts with a copy of the\n"
    "  metadata of the version it replaces.\n";

int ctl_meta(int argc, char **argv, const struct ctl_opts *o)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
		return ctl_usage(meta_usage, 1);
	if (argc < 3)
		return ctl_usage(meta_usage, 0);
	const char *sub = argv[1];
	int set = strcmp(sub, "set") == 0, rm = strcmp(sub, "rm") == 0, ls = strcmp(sub, "ls") == 0;
	if (!(set && (argc == 5 || argc == 6)) && !(rm && argc == 4) && !(ls && argc == 3))
		return ctl_usage(meta_usage, 0);
	char *path = ctl_path("meta", argv[2]);
	if (!path)
		return CTL_USAGE;
	struct cat *cat;
	/* set and rm write through the catalog's writer while the daemon may
	 * be writing too: WAL and the busy timeout serialise them. */
	int ex = ctl_open(o, "meta", ls ? CAT_READONLY : 0, &cat);
	if (ex) {
		free(path);
		return ex;
	}
	int rc;
	if (set) {
		if (!*argv[3]) {
			ctl_err("meta", "empty metadata name");
			rc = -EINVAL;
		} else {
			rc = cat_meta_set(cat, path, argv[3], argv[4], argc == 6 ? argv[5] : NULL);
		}
	} else if (rm) {
		rc = cat_meta_rm(cat, path, argv[3]);
	} else {
		struct avu_out av = {.f = stdout, .json = o->json};
		if (o->json)
			fputc('[', stdout);
		rc = cat_meta_list(cat, path, avu_cb, &av);
		if (o->json)
			fputs("]\n", stdout);
	}
	if (rc == -ENOENT && rm)
		ctl_err("meta", "%s: no metadata named %s (or no such path)", path, argv[3]);
	else if (rc == -ENOENT)
		ctl_err("meta", "%s: no such object or collection", path);
	else if (rc < 0 && rc != -EINVAL)
		ctl_err("meta", "%s: %s", path, strerror(-rc));
	cat_close(cat);
	free(path);
	return ctl_exit_of(rc);
}

/* --- events --- */

struct evout {
	int json, n;
};

static int event_cb(const struct cat_event *e, void *arg)
{
	struct evout *x = arg;
	if (x->json) {
		struct ctl_json j;
		if (x->n)
			fputc(',', stdout);
		ctl_json_begin(&j, stdout);
		ctl_json_int(&j, "id", e->id);
		ctl_json_int(&j, "time_ns", e->time_ns);
		ctl_json_time(&j, "time", e->time_ns);
		if (e->obj_id)
			ctl_json_int(&j, "obj_id", e->obj_id);
		else
			ctl_json_str(&j, "obj_id", NULL);
		ctl_json_str(&j, "path", e->path);
		ctl_json_str(&j, "kind", e->kind);
		ctl_json_str(&j, "detail", e->detail);
		ctl_json_end(&j);
	} else {
		char when[40];
		printf("%s  %-10s ", ctl_fmt_time(e->time_ns, when, sizeof when), e->kind);
		ctl_put_name(stdout, e->path ? (*e->path ? e->path : "/") : "-");
		if (e->detail) {
			fputs("  ", stdout);
			ctl_put_name(stdout, e->detail);
		}
		fputc('\n', stdout);
	}
	x->n++;
	return 0;
}

static const char events_usage[] =
    "usage: lzfsctl events [--limit N] [PATH]\n"
    "  The audit log, oldest first: every state change, rename and metadata\n"
    "  change (of PATH's objects and their versions, or of collection PATH).\n"
    "  --limit N   only the newest N events\n";

int ctl_events(int argc, char **argv, const struct ctl_opts *o)
{
	int limit = 0, ex = int_option(argc, argv, events_usage, "limit", 'n', &limit);
	if (ex >= 0)
		return ex;
	if (argc - optind > 1)
		return ctl_usage(events_usage, 0);
	char *path = NULL;
	if (optind < argc && !(path = ctl_path("events", argv[optind])))
		return CTL_USAGE;
	struct cat *cat;
	ex = ctl_open(o, "events", CAT_READONLY, &cat);
	if (ex) {
		free(path);
		return ex;
	}
	struct evout x = {.json = o->json};
	if (o->json)
		fputc('[', stdout);
	int rc = cat_events(cat, path, limit, event_cb, &x);
	if (o->json)
		fputs("]\n", stdout);
	if (rc < 0) {
		ctl_err("events", "%s", strerror(-rc));
		ex = ctl_exit_of(rc);
	} else if (path && x.n == 0) {
		ctl_err("events", "%s: no events", path);
		ex = CTL_NOTFOUND;
	}
	cat_close(cat);
	free(path);
	return ex;
}

/* --- status, check --- */

static const char status_usage[] =
    "usage: lzfsctl status\n"
    "  Objects per state (current versions; deleted: all deleted versions), bytes\n"
    "  ingested, the oldest unfinished registration, collections and versions.\n";

int ctl_status(int argc, char **argv, const struct ctl_opts *o)
{
	if (argc > 1)
		return ctl_usage(status_usage, strcmp(argv[1], "--help") == 0);
	struct cat *cat;
	int ex = ctl_open(o, "status", CAT_READONLY, &cat);
	if (ex)
		return ex;
	struct cat_status s;
	int rc = cat_status(cat, &s);
	cat_close(cat);
	if (rc < 0) {
		ctl_err("status", "%s", strerror(-rc));
		return ctl_exit_of(rc);
	}
	if (o->json) {
		struct ctl_json j;
		ctl_json_begin(&j, stdout);
		ctl_json_str(&j, "catalog", o->catalog_name);
		for (int i = CAT_PENDING; i <= CAT_DELETED; i++)
			ctl_json_int(&j, cat_state_name(i), s.count[i]);
		ctl_json_int(&j, "bytes_ingested", s.bytes_ingested);
		ctl_json_int(&j, "oldest_pending_ns", s.oldest_pending_ns);
		ctl_json_time(&j, "oldest_pending", s.oldest_pending_ns);
		ctl_json_int(&j, "collections", s.collections);
		ctl_json_int(&j, "versions", s.versions);
		ctl_json_end(&j);
		fputc('\n', stdout);
		return CTL_OK;
	}
	char buf[64], when[40];
	printf("%-16s ", "catalog");
	ctl_put_name(stdout, o->catalog_name);
	fputc('\n', stdout);
	for (int i = CAT_PENDING; i <= CAT_DELETED; i++)
		printf("%-16s %lld\n", cat_state_name(i), (long long)s.count[i]);
	printf("%-16s %lld (%s)\n", "bytes ingested", (long long)s.bytes_ingested,
	       ctl_fmt_size(s.bytes_ingested, buf, sizeof buf));
	if (s.oldest_pending_ns)
		printf("%-16s %s (%s ago)\n", "oldest pending",
		       ctl_fmt_time(s.oldest_pending_ns, when, sizeof when),
		       ctl_fmt_age(ctl_now_ns() - s.oldest_pending_ns, buf, sizeof buf));
	else
		printf("%-16s -\n", "oldest pending");
	printf("%-16s %lld\n", "collections", (long long)s.collections);
	printf("%-16s %lld\n", "versions", (long long)s.versions);
	return CTL_OK;
}

int ctl_check(int argc, char **argv, const struct ctl_opts *o)
{
	if (argc > 1)
		return ctl_usage(
		    "usage: lzfsctl check\n"
		    "  Verifies the whole catalog file (SQLite integrity check) and its\n"
		    "  invariants. Exit status 3 on any problem.\n",
		    strcmp(argv[1], "--help") == 0);
	struct cat *cat;
	int ex = ctl_open(o, "check", CAT_READONLY, &cat);
	if (ex)
		return ex;
	int rc = cat_check(cat);
	cat_close(cat);
	if (rc) {
		ctl_err("check", "catalog %s: %s", o->catalog_name,
		        rc == -EPROTO ? "problems found (see above)" : strerror(-rc));
		return CTL_ERROR;
	}
	if (o->json)
		printf("{\"catalog\":"), ctl_put_json_str(stdout, o->catalog_name),
		    printf(",\"ok\":true}\n");
	else
		printf("catalog %s: ok\n", o->catalog_name);
	return CTL_OK;
}

/* --- debug-add: builds catalogs for tests --- */

static const char debug_add_usage[] =
    "usage: lzfsctl debug-add [--mtime TIME] [--source S] [--error MSG] PATH KEY SIZE STATE\n"
    "  For tests: registers PATH (creating the catalog if needed) and drives it to\n"
    "  STATE along legal transitions. Prints the new object's id.\n";

int ctl_debug_add(int argc, char **argv, const struct ctl_opts *o)
{
	static const struct option opts[] = {
	    {"mtime", required_argument, NULL, 'm'},
	    {"source", required_argument, NULL, 's'},
	    {"error", required_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'H'},
	    {0},
	};
	int64_t mtime = ctl_now_ns();
	const char *source = "debug", *error = "debug failure";
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (ctl_parse_time(optarg, ctl_now_ns(), &mtime))
				return ctl_usage(debug_add_usage, 0);
			break;
		case 's':
			source = optarg;
			break;
		case 'e':
			error = optarg;
			break;
		case 'H':
			return ctl_usage(debug_add_usage, 1);
		default:
			return ctl_usage(debug_add_usage, 0);
		}
	}
	int64_t size;
	int state;
	if (argc - optind != 4 || ctl_parse_size(argv[optind + 2], &size) ||
	    (state = cat_state_parse(argv[optind + 3])) < 0)
		return ctl_usage(debug_add_usage, 0);
	char *path = ctl_path("debug-add", argv[optind]);
	if (!path)
		return CTL_USAGE;
	struct cat *cat;
	int ex = ctl_open(o, "debug-add", CAT_CREATE, &cat);
	if (ex) {
		free(path);
		return ex;
	}
	struct cat_obj obj = {.path = path,
	                      .bucket = "debug",
	                      .key = argv[optind + 1],
	                      .size = size,
	                      .mode = S_IFREG | 0644,
	                      .uid = getuid(),
	                      .gid = getgid(),
	                      .mtime_ns = mtime,
	                      .source = (char *)source};
	int rc = cat_obj_add(cat, &obj);
	if (rc == 0 && (state == CAT_UPLOADING || state == CAT_INGESTED))
		rc = cat_obj_set_uploading(cat, obj.id, "debug-upload");
	if (rc == 0 && state == CAT_INGESTED) {
		char sha[65];
		snprintf(sha, sizeof sha, "%064llx", (unsigned long long)size);
		rc = cat_obj_set_ingested(cat, obj.id, size, sha, "debug-etag");
	}
	if (rc == 0 && state == CAT_FAILED)
		rc = cat_obj_set_failed(cat, obj.id, error);
	if (rc == 0 && state == CAT_DELETED)
		rc = cat_obj_set_deleted(cat, obj.id, "debug");
	if (rc == 0)
		printf("%lld\n", (long long)obj.id);
	else
		ctl_err("debug-add", "%s: %s", path, strerror(-rc));
	cat_close(cat);
	free(path);
	return ctl_exit_of(rc);
}
