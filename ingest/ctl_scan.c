/* ctl_scan.c - `lzfsctl scan` (ingest a tree or register an S3 prefix,
 * once, every N seconds or watching) and `lzfsctl job` (scan jobs run by
 * the daemon). The scan itself is ingest/scanjob.c; this file is options,
 * S3 set-up, progress output and the jobs table's commands.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "ctl.h"
#include "jobs.h"
#include "log.h"
#include "rescan.h"
#include "s3.h"
#include "scan.h"
#include "scanjob.h"
#include "upload.h"

#define EXIT_FAILED_FILES 1
#define EXIT_TIMEOUT 4
#define EXIT_INTERRUPTED 130

static const char scan_usage[] =
	"usage: lzfsctl [-c CATALOG] scan [--once | --interval SECS | --watch] [OPTIONS]\n"
	"                                 SOURCE_DIR s3://BUCKET[/PREFIX]\n"
	"       lzfsctl [-c CATALOG] scan --mode register [OPTIONS] s3://BUCKET[/PREFIX]\n"
	"\n"
	"Ingests the regular files below SOURCE_DIR into S3 and the catalog (or, in\n"
	"register mode, catalogs the objects already under the prefix). Symlinks,\n"
	"devices, FIFOs and sockets are never followed or read.\n"
	"\n"
	"Runs:  --once (default), --interval SECS (a pass every SECS), --watch (inotify)\n"
	"Modes: --mode put         upload new files; cataloged ones are left alone\n"
	"              put-sync    upload new and changed files (default)\n"
	"              put-append  like put-sync; a file that grew sends only new bytes\n"
	"              register    catalog objects already in S3 (ListObjectsV2)\n"
	"              no-op       print what put-sync would do; change nothing\n"
	"Filters (repeatable; names match a POSIX extended regex as a whole):\n"
	"  --exclude-file-name REGEX  --exclude-directory-name REGEX\n"
	"  --exclude-file-type regular|directory|character|block|socket|pipe|link\n"
	"Keys and catalog:\n"
	"  --key-template T     {prefix}/{relpath} by default; also {dir} {name} {stem}\n"
	"                       {ext} {yyyy} {mm} {dd} {hh} {host}; must start with\n"
	"                       {prefix}; keys with '.', '..' or empty segments refused\n"
	"  --collection PATH    catalog collection of the prefix (default: the prefix,\n"
	"                       i.e. catalog path = key)\n"
	"  --metadata NAME=VALUE  S3 user metadata and catalog metadata (repeatable)\n"
	"  --overwrite version|replace|deny  a changed file's previous object is kept\n"
	"                       under PREFIX/.lzfs/versions/PATH.vN (version, default),\n"
	"                       replaced, or the file is not sent again (deny)\n"
	"Hooks (run by /bin/sh -c CMD; values in LZFS_PATH LZFS_KEY LZFS_SIZE\n"
	"LZFS_SHA256 LZFS_ERROR LZFS_BUCKET LZFS_MODE LZFS_HOOK):\n"
	"  --pre-ingest CMD     a non-zero exit skips the file\n"
	"  --post-ingest CMD  --on-failure CMD  --hook-timeout SECS (60)\n"
	"Work: --workers N (files sent at once; 16) --files-per-task N (50) --max-retries N (2)\n"
	"      --timeout SECS (per pass; 0 none) --settle-time SECS (0 once, else 5)\n"
	"      --name NAME (lock and catalog source scan:NAME; default from the paths)\n"
	"S3:   --endpoint URL ($AWS_ENDPOINT_URL, else AWS)  --region R (us-east-1)\n"
	"      --credentials FILE (else AWS_* variables)  --profile NAME\n"
	"      --path-style | --virtual-host  --insecure  --ca-file FILE\n"
	"      --part-size SIZE (8M)\n"
	"Output: a progress bar on a terminal, else one summary line; --list prints\n"
	"      every file acted on; -q prints nothing but errors.\n"
	"\n"
	"Exit status: 0 done; 1 some files failed; 2 usage; 3 catalog or S3 error;\n"
	"4 timed out; 130 interrupted during a pass (--watch and --interval end with\n"
	"Ctrl-C or SIGTERM: then the last pass's status).\n";

static const char job_usage[] =
	"usage: lzfsctl [-c CATALOG] job start [SCAN OPTIONS] SOURCE_DIR s3://BUCKET[/PREFIX]\n"
	"       lzfsctl [-c CATALOG] job list\n"
	"       lzfsctl [-c CATALOG] job stop NAME\n"
	"       lzfsctl [-c CATALOG] job watch NAME\n"
	"       lzfsctl [-c CATALOG] job rm NAME\n"
	"\n"
	"Scan jobs are run by the lzfs daemon that owns the catalog, with its S3\n"
	"settings: once (--once, the default), every --interval SECS, or --watch.\n"
	"`job start` takes the options of `lzfsctl scan` (--name NAME names the job).\n"
	"`job watch` follows the job's current (or next) run until it ends.\n";

/* ---------- signals ---------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---------- progress ---------- */

struct out {
	int tty;         /* a bar on stderr */
	int quiet;
	int list;        /* a line per file */
	int noop;
	int json;
	int64_t start_ms;
	int64_t last_draw_ms;
	int drawn;
	pthread_mutex_t mu;
};

static void fmt_dur(int64_t secs, char *buf, size_t len)
{
	if (secs < 0)
		snprintf(buf, len, "--:--");
	else if (secs >= 3600)
		snprintf(buf, len, "%lld:%02lld:%02lld", (long long)(secs / 3600),
			 (long long)(secs / 60 % 60), (long long)(secs % 60));
	else
		snprintf(buf, len, "%lld:%02lld", (long long)(secs / 60), (long long)(secs % 60));
}

/* "[=======>      ] 1234/5000+ files  1.2 GiB/4.0 GiB  35.2 MiB/s  ETA 1:47" */
static void draw(struct out *o, const struct scan_stats *st, int walking, int force)
{
	int64_t now = mono_ms();
	if (!o->tty || o->quiet || (!force && now - o->last_draw_ms < 200))
		return;
	o->last_draw_ms = now;
	double secs = (double)(now - o->start_ms) / 1000;
	uint64_t moved = st->uploaded_bytes + st->appended_bytes;
	double rate = secs > 0 ? (double)moved / secs : 0;
	double frac = st->queued_bytes ? (double)st->done_bytes / (double)st->queued_bytes
		      : st->queued ? (double)st->done / (double)st->queued : 0;
	if (frac > 1)
		frac = 1;
	char bar[25];
	int fill = (int)(frac * 24);
	for (int i = 0; i < 24; i++)
		bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
	bar[24] = '\0';
	char done[32], total[32], r[32], eta[32];
	sj_human_bytes(st->done_bytes, done, sizeof done);
	sj_human_bytes(st->queued_bytes, total, sizeof total);
	sj_human_bytes((uint64_t)rate, r, sizeof r);
	int64_t left = -1;
	if (!walking && rate > 0 && st->queued_bytes >= st->done_bytes)
		left = (int64_t)((double)(st->queued_bytes - st->done_bytes) / rate);
	fmt_dur(left, eta, sizeof eta);
	pthread_mutex_lock(&o->mu);
	fprintf(stderr, "\r[%s] %llu/%llu%s files  %s/%s  %s/s  ETA %s  (%llu unchanged)\033[K", bar,
		(unsigned long long)st->done, (unsigned long long)st->queued, walking ? "+" : "",
		done, total, r, eta, (unsigned long long)st->unchanged);
	fflush(stderr);
	o->drawn = 1;
	pthread_mutex_unlock(&o->mu);
}

static void draw_end(struct out *o)
{
	if (o->drawn) {
		fputs("\r\033[K", stderr);
		o->drawn = 0;
	}
}

static void report(void *arg, const char *what, const char *rel, const char *key, int64_t size)
{
	struct out *o = arg;
	if (o->quiet || (!o->list && !o->noop && strcmp(what, "failed") != 0))
		return;
	if (strcmp(what, "failed") == 0 && !o->list)
		return; /* already logged */
	pthread_mutex_lock(&o->mu);
	if (o->drawn) {
		fputs("\r\033[K", stderr);
		o->drawn = 0;
	}
	if (o->noop)
		printf("would %s\t", strcmp(what, "new") == 0 ? "upload" :
				    strcmp(what, "changed") == 0 ? "upload a new version of" :
				    strcmp(what, "append") == 0 ? "append to" :
				    strcmp(what, "touch") == 0 ? "update the times of" : what);
	else
		printf("%s\t", what);
	ctl_put_name(stdout, rel);
	printf("\t%lld\t", (long long)size);
	ctl_put_name(stdout, key ? key : "");
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&o->mu);
}

struct tick {
	struct out *o;
};

static int tick(void *arg, const struct scan_stats *st, int walking)
{
	struct tick *t = arg;
	draw(t->o, st, walking, 0);
	return interrupted != 0;
}

static void summary(struct out *o, const struct sj_spec *s, const struct scan_stats *st, int rc,
		    double secs)
{
	draw_end(o);
	if (o->quiet)
		return;
	char line[768];
	sj_summary(st, secs, line, sizeof line);
	const char *how = rc == -ETIMEDOUT ? " (timed out)" : rc == -ECANCELED ? " (interrupted)" : "";
	printf("scan %s: %s%s\n", s->name, line, how);
	fflush(stdout);
}

/* ---------- S3 ---------- */

struct conn {
	const char *endpoint, *region, *credentials, *profile, *ca_file;
	int path_style;      /* -1 automatic */
	int insecure;
	uint64_t part_size;
	int connections;     /* requests in flight: at least --workers */
};

/* Takes the connection and output options out of argv (in place);
 * returns the new argc or -1 after printing an error. */
static int take_conn_opts(int argc, char **argv, struct conn *c, struct out *o)
{
	int n = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *const valued[] = {"--endpoint", "--region", "--credentials", "--profile",
					      "--ca-file", "--part-size"};
		const char *name = NULL, *val = NULL;
		for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
			size_t l = strlen(valued[k]);
			if (strncmp(a, valued[k], l) == 0 && (a[l] == '\0' || a[l] == '=')) {
				name = valued[k];
				if (a[l] == '=')
					val = a + l + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else {
					ctl_err("scan", "%s needs a value", name);
					return -1;
				}
			}
		}
		if (name) {
			if (strcmp(name, "--endpoint") == 0)
				c->endpoint = val;
			else if (strcmp(name, "--region") == 0)
				c->region = val;
			else if (strcmp(name, "--credentials") == 0)
				c->credentials = val;
			else if (strcmp(name, "--profile") == 0)
				c->profile = val;
			else if (strcmp(name, "--ca-file") == 0)
				c->ca_file = val;
			else {
				int64_t v;
				if (ctl_parse_size(val, &v) < 0 || v < (int64_t)S3_MIN_PART_SIZE ||
				    v > (int64_t)S3_MAX_PART_SIZE) {
					ctl_err("scan", "--part-size %s: expected 5M..5G", val);
					return -1;
				}
				c->part_size = (uint64_t)v;
			}
			continue;
		}
		if (strcmp(a, "--path-style") == 0)
			c->path_style = 1;
		else if (strcmp(a, "--virtual-host") == 0)
			c->path_style = 0;
		else if (strcmp(a, "--insecure") == 0)
			c->insecure = 1;
		else if (strcmp(a, "--list") == 0)
			o->list = 1;
		else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
			o->quiet = 1;
		else if (strcmp(a, "--progress") == 0)
			o->tty = 1;
		else if (strcmp(a, "--no-progress") == 0)
			o->tty = 0;
		else
			argv[n++] = argv[i];
	}
	return n;
}

static int s3_setup(const struct conn *c, const char *bucket, struct s3_creds *creds,
		    struct s3_client **out)
{
	int rc = s3_creds_load(c->credentials, c->profile, creds);
	if (rc < 0) {
		ctl_err("scan", "no usable S3 credentials (%s)", strerror(-rc));
		return rc;
	}
	struct s3_config cfg = {
		.endpoint = c->endpoint,
		.region = c->region,
		.bucket = bucket,
		.path_style = c->path_style >= 0 ? c->path_style : !strstr(c->endpoint, "amazonaws.com"),
		.creds = creds,
		.insecure_tls = c->insecure,
		.ca_file = c->ca_file,
		.max_connections = c->connections,
	};
	if ((rc = s3_client_new(&cfg, out)) < 0) {
		ctl_err("scan", "cannot set up the S3 client: %s", strerror(-rc));
		return rc;
	}
	struct s3_status st;
	memset(&st, 0, sizeof st);
	if ((rc = s3_check_bucket(*out, &st)) < 0) {
		ctl_err("scan", "s3://%s at %s: %s%s%s", bucket, c->endpoint,
			st.code[0] ? st.code : strerror(-rc), st.message[0] ? ": " : "", st.message);
		s3_client_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---------- lzfsctl scan ---------- */

static int exit_of(int rc)
{
	switch (rc) {
	case 0: return CTL_OK;
	case -EIO: return EXIT_FAILED_FILES;
	case -ETIMEDOUT: return EXIT_TIMEOUT;
	case -ECANCELED: return EXIT_INTERRUPTED;
	default: return CTL_ERROR;
	}
}

static int run_watch(const struct sj_spec *s, const struct ctl_opts *co, struct cat *cat,
		     struct s3_client *s3, struct up_pool *pool, struct out *o)
{
	struct job_lock *lockfd = NULL;
	int rc = scan_lock(co->catalog, s->name, &lockfd);
	if (rc < 0) {
		ctl_err("scan", "%s", rc == -EBUSY ? "another run of this scan is in progress (--name "
						     "gives it another name)" : strerror(-rc));
		return CTL_ERROR;
	}
	scan_recover(cat, co->catalog, s3, s->bucket, s->source_tag);
	struct rescan_config wc = {.dir = s->source, .interval = 600, .settle = s->settle,
				   .scan = s->cfg};
	struct rescan *w;
	if ((rc = rescan_start(&wc, cat, s3, pool, &w)) < 0) {
		scan_unlock(lockfd);
		ctl_err("scan", "cannot watch %s: %s", s->source, strerror(-rc));
		return CTL_ERROR;
	}
	if (!o->quiet)
		fprintf(stderr, "watching %s -> %s (Ctrl-C stops)\n", s->source, s->target);
	struct rescan_stats st;
	int64_t deadline = s->timeout > 0 ? mono_ms() + (int64_t)s->timeout * 1000 : 0;
	while (!interrupted && (!deadline || mono_ms() < deadline)) {
		rescan_get_stats(w, &st);
		draw(o, &st.scan, 0, 0);
		struct timespec ts = {0, 250 * 1000000};
		nanosleep(&ts, NULL);
	}
	rescan_stop_stats(w, &st);
	scan_unlock(lockfd);
	/* Ctrl-C is how a watch ends: not an interruption. */
	summary(o, s, &st.scan, 0, (double)(mono_ms() - o->start_ms) / 1000);
	return st.scan.failed ? EXIT_FAILED_FILES : CTL_OK;
}

int ctl_scan(int argc, char **argv, const struct ctl_opts *co)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return ctl_usage(scan_usage, 1);
	struct conn c = {.path_style = -1};
	struct out o = {.tty = isatty(STDERR_FILENO), .json = co->json};
	pthread_mutex_init(&o.mu, NULL);
	int n = take_conn_opts(argc - 1, argv + 1, &c, &o);
	if (n < 0)
		return CTL_USAGE;
	char err[512] = "";
	struct sj_spec *s;
	if (sj_parse(n, argv + 1, &s, err, sizeof err) < 0) {
		ctl_err("scan", "%s", err[0] ? err : "out of memory");
		return ctl_usage(scan_usage, 0);
	}
	if (!c.endpoint && !(c.endpoint = getenv("AWS_ENDPOINT_URL")))
		c.endpoint = "https://s3.amazonaws.com";
	if (!c.region && !(c.region = getenv("AWS_REGION")) && !(c.region = getenv("AWS_DEFAULT_REGION")))
		c.region = "us-east-1";
	o.noop = s->cfg.mode == SCAN_NOOP;
	s->cfg.report = report;
	s->cfg.report_arg = &o;
	s->cfg.part_size = c.part_size ? c.part_size : 8ull << 20;
	/* Problems with single files, retries and refusing hooks are worth
	 * seeing; -v shows everything. */
	if (log_get_level() < LZ_NOTICE)
		log_set_level(LZ_NOTICE);

	int ex = CTL_ERROR;
	struct cat *cat = NULL;
	struct s3_creds creds = {0};
	struct s3_client *s3 = NULL;
	struct up_pool *pool = NULL;
	if ((ex = ctl_open(co, "scan", CAT_CREATE, &cat)) != CTL_OK)
		goto out;
	ex = CTL_ERROR;
	c.connections = s->cfg.workers > 16 ? s->cfg.workers : 16;
	if (s3_setup(&c, s->bucket, &creds, &s3) < 0)
		goto out;
	struct up_config ucfg = {.part_size = s->cfg.part_size, .workers = s->cfg.workers};
	int rc = up_pool_new(&ucfg, s3, &pool);
	if (rc < 0) {
		ctl_err("scan", "upload pool: %s", strerror(-rc));
		goto out;
	}
	catch_signals();
	o.start_ms = mono_ms();
	if (s->run == SJ_WATCH) {
		ex = run_watch(s, co, cat, s3, pool, &o);
		goto out;
	}
	for (;;) {
		struct scan_stats st;
		struct tick t = {.o = &o};
		int64_t t0 = mono_ms();
		o.start_ms = t0;
		rc = sj_pass(s, co->catalog, cat, s3, pool, tick, &t, &st);
		if (rc == -EBUSY) {
			ctl_err("scan", "another run of this scan is in progress (--name gives it another "
					"name)");
			ex = CTL_ERROR;
			break;
		}
		summary(&o, s, &st, rc, (double)(mono_ms() - t0) / 1000);
		ex = exit_of(rc);
		if (s->run != SJ_INTERVAL || interrupted)
			break;
		int64_t next = t0 + (int64_t)s->interval * 1000;
		while (!interrupted && mono_ms() < next) {
			struct timespec ts = {0, 200 * 1000000};
			nanosleep(&ts, NULL);
		}
		if (interrupted)
			break; /* between passes: the way an --interval scan ends */
	}
out:
	up_pool_free(pool);
	if (s3)
		s3_client_free(s3);
	s3_creds_clear(&creds);
	if (cat)
		cat_close(cat);
	sj_free(s);
	pthread_mutex_destroy(&o.mu);
	return ex;
}

/* ---------- lzfsctl job ---------- */

static int open_jobs(const struct ctl_opts *co, const char *cmd, struct job_db **db)
{
	/* Opening the catalog read-write once migrates an older schema. */
	struct cat *cat;
	int ex = ctl_open(co, cmd, CAT_CREATE, &cat);
	if (ex)
		return ex;
	cat_close(cat);
	int rc = job_db_open(co->catalog, db);
	if (rc < 0) {
		ctl_err(cmd, "cannot open the jobs of %s: %s", co->catalog_name, strerror(-rc));
		return CTL_ERROR;
	}
	return CTL_OK;
}

static const char *interval_str(int64_t iv, char *buf, size_t len)
{
	if (iv < 0)
		snprintf(buf, len, "watch");
	else if (iv == 0)
		snprintf(buf, len, "once");
	else
		snprintf(buf, len, "every %llds", (long long)iv);
	return buf;
}

static void job_json(const struct job *j)
{
	struct ctl_json js;
	ctl_json_begin(&js, stdout);
	ctl_json_str(&js, "name", j->name);
	ctl_json_str(&js, "state", j->state);
	ctl_json_str(&js, "source", j->source);
	ctl_json_str(&js, "target", j->target);
	ctl_json_int(&js, "interval", j->interval);
	ctl_json_bool(&js, "stop", j->stop);
	ctl_json_int(&js, "runs", j->runs);
	ctl_json_time(&js, "created", j->created_ns);
	ctl_json_time(&js, "started", j->started_ns);
	ctl_json_time(&js, "finished", j->finished_ns);
	ctl_json_time(&js, "next", j->next_ns);
	ctl_json_str(&js, "runner", j->runner);
	ctl_json_int(&js, "files_total", j->files_total);
	ctl_json_int(&js, "files_done", j->files_done);
	ctl_json_int(&js, "bytes_total", j->bytes_total);
	ctl_json_int(&js, "bytes_done", j->bytes_done);
	ctl_json_int(&js, "files_failed", j->files_failed);
	ctl_json_int(&js, "files_skipped", j->files_skipped);
	ctl_json_str(&js, "last_error", j->last_error);
	ctl_json_str(&js, "summary", j->summary);
	ctl_json_end(&js);
}

struct list_ctx {
	int json;
	int n;
};

static int list_one(const struct job *j, void *arg)
{
	struct list_ctx *l = arg;
	if (l->json) {
		if (l->n++)
			putchar(',');
		job_json(j);
		return 0;
	}
	if (l->n++ == 0)
		printf("%-20s %-8s %-12s %5s %15s %7s  %s\n", "NAME", "STATE", "WHEN", "RUNS",
		       "FILES", "FAILED", "SOURCE -> TARGET");
	char iv[32], files[40];
	snprintf(files, sizeof files, "%lld/%lld", (long long)j->files_done,
		 (long long)j->files_total);
	printf("%-20s %-8s %-12s %5lld %15s %7lld  ", j->name, j->state,
	       interval_str(j->interval, iv, sizeof iv), (long long)j->runs, files,
	       (long long)j->files_failed);
	ctl_put_name(stdout, j->source);
	printf(" -> ");
	ctl_put_name(stdout, j->target);
	putchar('\n');
	if (j->last_error) {
		printf("%-20s error: ", "");
		ctl_put_name(stdout, j->last_error);
		putchar('\n');
	}
	return 0;
}

static void job_line(const struct job *j, int tty)
{
	char done[32], total[32];
	sj_human_bytes((uint64_t)j->bytes_done, done, sizeof done);
	sj_human_bytes((uint64_t)j->bytes_total, total, sizeof total);
	fprintf(tty ? stderr : stdout, "%s%s: %s, run %lld: %lld/%lld files, %s/%s, %lld failed, "
					"%lld skipped%s", tty ? "\r" : "", j->name, j->state,
		(long long)j->runs, (long long)j->files_done, (long long)j->files_total, done, total,
		(long long)j->files_failed, (long long)j->files_skipped, tty ? "\033[K" : "\n");
	fflush(tty ? stderr : stdout);
}

static int job_watch(struct job_db *db, const char *name, int json)
{
	struct job j;
	int rc = job_get(db, name, &j);
	if (rc < 0) {
		ctl_err("job", "%s: %s", name, rc == -ENOENT ? "no such job" : strerror(-rc));
		return rc == -ENOENT ? CTL_NOTFOUND : CTL_ERROR;
	}
	/* The run to follow: the current one, or the next to start. */
	int64_t runs = j.runs;
	int following = strcmp(j.state, "running") == 0;
	int tty = isatty(STDERR_FILENO) && !json;
	catch_signals();
	int64_t last_print = 0;
	while (!interrupted) {
		int running = strcmp(j.state, "running") == 0;
		if (!following && running && j.runs > runs)
			following = 1;
		/* A short run may start and end between two looks. */
		if ((following || j.runs > runs) && !running)
			break;
		if (!following && (strcmp(j.state, "stopped") == 0 || j.stop))
			break;
		if (tty || mono_ms() - last_print >= 5000) {
			if (!json && (running || tty))
				job_line(&j, tty);
			last_print = mono_ms();
		}
		struct timespec ts = {0, 500 * 1000000};
		nanosleep(&ts, NULL);
		job_clear(&j);
		if ((rc = job_get(db, name, &j)) < 0) {
			ctl_err("job", "%s: %s", name, rc == -ENOENT ? "removed" : strerror(-rc));
			return CTL_ERROR;
		}
	}
	if (tty)
		fputs("\r\033[K", stderr);
	int ex = CTL_OK;
	if (json) {
		job_json(&j);
		putchar('\n');
	} else {
		printf("%s: %s after run %lld: %s%s%s\n", j.name, j.state, (long long)j.runs,
		       j.summary ? j.summary : "no summary", j.last_error ? "; error: " : "",
		       j.last_error ? j.last_error : "");
	}
	if (interrupted)
		ex = EXIT_INTERRUPTED;
	else if (j.files_failed || strcmp(j.state, "failed") == 0)
		ex = EXIT_FAILED_FILES;
	job_clear(&j);
	return ex;
}

int ctl_job(int argc, char **argv, const struct ctl_opts *co)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return ctl_usage(job_usage, argc >= 2);
	const char *sub = argv[1];
	struct job_db *db = NULL;
	int ex;
	if (strcmp(sub, "start") == 0) {
		char err[512] = "";
		struct sj_spec *s;
		if (sj_parse(argc - 2, argv + 2, &s, err, sizeof err) < 0) {
			ctl_err("job", "%s", err);
			return ctl_usage(job_usage, 0);
		}
		if ((ex = open_jobs(co, "job", &db)) != CTL_OK) {
			sj_free(s);
			return ex;
		}
		struct job j = {
			.name = s->name,
			.source = s->source ? s->source : s->target,
			.target = s->target,
			.args = s->args,
			.interval = s->run == SJ_WATCH ? -1 : s->run == SJ_INTERVAL ? s->interval : 0,
		};
		int rc = job_add(db, &j);
		if (rc == -EEXIST) {
			ctl_err("job", "a job named %s exists (job rm %s, or --name)", s->name, s->name);
			ex = CTL_USAGE;
		} else if (rc < 0) {
			ctl_err("job", "%s", strerror(-rc));
			ex = CTL_ERROR;
		} else {
			char iv[32];
			printf("job %s queued (%s, %s): the lzfs daemon using %s runs it\n", s->name,
			       interval_str(j.interval, iv, sizeof iv), scan_mode_name(s->cfg.mode),
			       co->catalog_name);
			ex = CTL_OK;
		}
		sj_free(s);
	} else if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0) {
		if ((ex = open_jobs(co, "job", &db)) != CTL_OK)
			return ex;
		struct list_ctx l = {.json = co->json};
		if (co->json)
			putchar('[');
		int rc = job_list(db, list_one, &l);
		if (co->json)
			puts("]");
		else if (l.n == 0)
			printf("no jobs\n");
		ex = rc < 0 ? CTL_ERROR : CTL_OK;
	} else if ((strcmp(sub, "stop") == 0 || strcmp(sub, "watch") == 0 || strcmp(sub, "rm") == 0) &&
		   argc == 3) {
		if ((ex = open_jobs(co, "job", &db)) != CTL_OK)
			return ex;
		const char *name = argv[2];
		int rc = 0;
		if (strcmp(sub, "watch") == 0) {
			ex = job_watch(db, name, co->json);
		} else {
			rc = strcmp(sub, "stop") == 0 ? job_request_stop(db, name) : job_remove(db, name);
			if (rc == -ENOENT) {
				ctl_err("job", "%s: no such job", name);
				ex = CTL_NOTFOUND;
			} else if (rc == -EBUSY) {
				ctl_err("job", "%s is running: job stop %s first", name, name);
				ex = CTL_ERROR;
			} else if (rc < 0) {
				ctl_err("job", "%s: %s", name, strerror(-rc));
				ex = CTL_ERROR;
			} else {
				printf("job %s: %s\n", name, strcmp(sub, "stop") == 0 ? "stop requested"
										: "removed");
				ex = CTL_OK;
			}
		}
	} else {
		ctl_err("job", "unknown or incomplete command '%s'", sub);
		return ctl_usage(job_usage, 0);
	}
	job_db_close(db);
	return ex;
}
