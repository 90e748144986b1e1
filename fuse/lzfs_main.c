/* lzfs - mount an S3 landing zone.
 *
 *   lzfs [-f] [-o OPTIONS] s3://BUCKET[/PREFIX] MOUNTPOINT
 *
 * Everything that can be wrong (options, credentials, spool, catalog,
 * endpoint, bucket) is checked before the mount and before daemonizing, so
 * that `mount` prints one clear line and fails. Threads (catalog writer,
 * upload workers, the landing zone's background thread) start only after
 * daemonizing, because fork() keeps only the calling thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "fs.h"
#include <fuse_lowlevel.h>
#include "landing.h"
#include "log.h"
#include "opts.h"
#include "rescan.h"
#include "s3.h"
#include "svc.h"
#include "reader.h"
#include "upload.h"

#define LZFS_VERSION "0.1.0"

enum { KEY_HELP, KEY_VERSION, KEY_CHECK_CONFIG };

#define OPT(t, field, v) {t, offsetof(struct lzfs_opts, field), v}
static const struct fuse_opt lzfs_opt_spec[] = {
	OPT("endpoint=%s", endpoint, 0),
	OPT("region=%s", region, 0),
	OPT("path_style", path_style, 1),
	OPT("path_style=%d", path_style, 0),
	OPT("virtual_host", path_style, 0),
	OPT("credentials=%s", credentials, 0),
	OPT("profile=%s", profile, 0),
	OPT("catalog=%s", catalog, 0),
	OPT("landing=%s", landing, 0),
	OPT("spool=%s", landing, 0),
	OPT("part_size=%s", part_size_s, 0),
	OPT("mem_limit=%s", mem_limit_s, 0),
	OPT("max_inflight_parts=%d", max_inflight_parts, 0),
	OPT("max_parts=%d", max_parts, 0),
	OPT("max_connections=%d", max_connections, 0),
	OPT("durability=%s", durability_s, 0),
	OPT("unlink=%s", unlink_s, 0),
	OPT("overwrite=%s", overwrite_s, 0),
	OPT("retention=%s", retention_s, 0),
	OPT("log_level=%s", log_level_s, 0),
	OPT("log_file=%s", log_file, 0),
	OPT("insecure", insecure_tls, 1),
	OPT("ca_file=%s", ca_file, 0),
	OPT("retry_budget=%d", retry_budget, 0),
	OPT("connect_timeout=%d", connect_timeout, 0),
	OPT("drain_timeout=%d", drain_timeout, 0),
	OPT("retry_interval=%d", retry_interval, 0),
	OPT("offline_ok", offline_ok, 1),
	OPT("rescan_interval=%d", rescan_interval, 0),
	OPT("settle_time=%d", settle_time, 0),
	OPT("files_per_task=%d", files_per_task, 0),
	OPT("rescan_workers=%d", rescan_workers, 0),
	OPT("rescan_stat=%s", rescan_stat_s, 0),
	OPT("config=%s", config_file, 0),
	OPT("mount=%s", mount_name, 0),
	/* fstab noise that is not for FUSE */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("--check-config", KEY_CHECK_CONFIG),
	FUSE_OPT_END,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lzfs [-f] [-o OPTION[,OPTION...]] s3://BUCKET[/PREFIX] MOUNTPOINT\n"
		"       lzfs [-f] -o mount=NAME[,OPTION...]      (a section of the config file)\n"
		"       lzfs --check-config [-o config=FILE] [NAME]\n"
		"\n"
		"Files written into MOUNTPOINT are kept in the landing directory, streamed to S3\n"
		"while they are written, verified and registered in the catalog at close().\n"
		"\n"
		"lzfs options (see lzfs(8) and lzfs.conf(5)):\n"
		"  config=FILE            configuration file (/etc/lzfs/lzfs.conf if it exists)\n"
		"  mount=NAME             its section to use (else the one whose mountpoint matches)\n"
		"  landing=DIR            local spool directory (required)\n"
		"  endpoint=URL           S3 endpoint (https://s3.amazonaws.com)\n"
		"  region=NAME            signing region (us-east-1)\n"
		"  path_style|virtual_host  addressing (default: virtual host for AWS, else path)\n"
		"  credentials=FILE       AWS-style credentials file, mode 0600 (else AWS_* env)\n"
		"  profile=NAME           section of the credentials file (default)\n"
		"  catalog=FILE|URL       SQLite catalog (LANDING/.lzfs/catalog.db), or a\n"
		"                         postgresql:// URL shared by several hosts\n"
		"  part_size=SIZE         first multipart part size, 5M..5G (8M); grows to fit 5 TiB\n"
		"  max_inflight_parts=N   parts uploaded in parallel (8)\n"
		"  mem_limit=SIZE         bytes written but not yet uploaded, all files (256M)\n"
		"  durability=close|async close() returns when in S3+catalog, or once on local disk\n"
		"  unlink=delete|keep     whether rm also deletes the S3 object (delete)\n"
		"  overwrite=version|replace|deny  what rewriting an ingested file does (version)\n"
		"  retention=keep|evict-after=DURATION|high-watermark=PERCENT\n"
		"                         when ingested files leave the spool (keep)\n"
		"  log_level=LEVEL        error, warn, notice, info, debug (info)\n"
		"  log_file=FILE          append log lines to FILE (else stderr / journal)\n"
		"  insecure               do not verify TLS certificates\n"
		"  ca_file=FILE           CA bundle for TLS\n"
		"  retry_budget=SECS      time one S3 request may take with retries (30)\n"
		"  connect_timeout=SECS   (5)\n"
		"  drain_timeout=SECS     wait for queued uploads at unmount (60)\n"
		"  retry_interval=SECS    first background retry of a file S3 refused (5)\n"
		"  offline_ok             mount even if S3 cannot be reached now\n"
		"  rescan_interval=SECS   walk the landing directory for files that did not come\n"
		"                         through the mount (600; 0 = no rescanner); inotify too\n"
		"  settle_time=SECS       such a file must stay unchanged this long (5)\n"
		"  files_per_task=N       files the rescanner gives an upload worker at once (50)\n"
		"  rescan_workers=N       files the rescanner uploads at once (8)\n"
		"  rescan_stat=changed|all  walks after the first stat only files that\n"
		"                         filesystem change events named (changed: the default,\n"
		"                         where fanotify allows it), or every file (all)\n"
		"  allow_other, uid=N, gid=N, umask=M and other FUSE options are passed on.\n"
		"\n"
		"  -f  stay in the foreground    -d  FUSE debug    -s  single-threaded\n");
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	/* fuse_opt stores the templates' values at their offsets in `data`,
	 * so data must be the struct lzfs_opts itself. */
	struct lzfs_opts *o = data;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (o->nonopt++ == 0) {
			o->url = strdup(arg);
			return 0;
		}
		if (o->nonopt == 2) {
			o->mountpoint = strdup(arg);
			return 1; /* fuse_parse_cmdline wants it too */
		}
		fprintf(stderr, "lzfs: unexpected argument '%s'\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		/* x-systemd.*, x-gvfs-*, comment=: for mount(8) and systemd. */
		if (strncmp(arg, "x-", 2) == 0 || strncmp(arg, "comment=", 8) == 0)
			return 0;
		return 1;
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_CHECK_CONFIG:
		o->check_config = 1;
		return 0;
	}
	return 1;
}

/* The spool must be a writable directory: probe with a real file. */
static int check_landing(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "landing directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "landing directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, LAND_RESERVED);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "landing directory %s is not writable: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof path, "%s/%s/.probe.%d", dir, LAND_RESERVED, (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1 || fsync(fd) < 0) {
		int e = errno;
		snprintf(err, errlen, "landing directory %s is not writable: %s", dir, strerror(e));
		if (fd >= 0)
			close(fd);
		unlink(path);
		return -e;
	}
	close(fd);
	unlink(path);
	return 0;
}

static void s3_config_from(const struct lzfs_opts *o, const struct s3_creds *creds,
			   struct s3_config *c, int check_only)
{
	memset(c, 0, sizeof *c);
	c->endpoint = o->endpoint;
	c->region = o->region;
	c->bucket = o->bucket;
	c->path_style = o->path_style;
	c->creds = creds;
	c->insecure_tls = o->insecure_tls;
	c->ca_file = o->ca_file;
	c->max_connections = o->max_connections;
	c->connect_timeout_ms = o->connect_timeout * 1000;
	c->retry_budget_ms = o->retry_budget * 1000;
	if (check_only && c->retry_budget_ms > 10000)
		c->retry_budget_ms = 10000; /* mount must answer quickly */
}

/* Can we talk to the bucket? One line on failure that says why. */
static int check_s3(const struct lzfs_opts *o, const struct s3_creds *creds)
{
	struct s3_config cfg;
	s3_config_from(o, creds, &cfg, 1);
	struct s3_client *c;
	int rc = s3_client_new(&cfg, &c);
	if (rc < 0) {
		fprintf(stderr, "lzfs: cannot set up the S3 client: %s\n", strerror(-rc));
		return rc;
	}
	struct s3_status st;
	memset(&st, 0, sizeof st);
	rc = s3_check_bucket(c, &st);
	s3_client_free(c);
	if (rc == 0)
		return 0;
	const char *why;
	switch (rc) {
	case -ENXIO:
	case -ENOENT:
		why = "the bucket does not exist";
		break;
	case -EACCES:
	case -EPERM:
		why = "access denied: check the credentials and the region";
		break;
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ETIMEDOUT:
		why = "the endpoint cannot be reached";
		break;
	default:
		why = strerror(-rc);
	}
	fprintf(stderr, "lzfs: s3://%s at %s: %s (%s%s%s)%s\n", o->bucket, o->endpoint, why,
		st.code[0] ? st.code : strerror(-rc), st.message[0] ? ": " : "", st.message,
		o->offline_ok ? "; mounting anyway (offline_ok)" : "");
	return o->offline_ok ? 0 : rc;
}

/* The rescanner leaves files the mount has open to the landing zone. */
static int rescan_busy(void *arg, const char *relpath) { return land_is_busy(arg, relpath); }

static struct rescan *sig_rescan;

/* SIGUSR1: walk the landing directory now (write(2) and an atomic store). */
static void on_usr1(int sig)
{
	if (sig_rescan)
		rescan_walk_now(sig_rescan);
}

int main(int argc, char **argv)
{
	struct lzfs_opts o;
	opts_defaults(&o);
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int ret = 1;
	struct fuse *fuse = NULL;
	struct s3_creds creds = {0};
	struct s3_client *s3 = NULL;
	struct cat *cat = NULL;
	struct up_pool *pool = NULL;
	struct rd_pool *rdpool = NULL;
	struct land *land = NULL;
	struct rescan *rescan = NULL;
	struct svc *wd = NULL;
	char err[512];
	struct fuse_cmdline_opts cmd;
	memset(&cmd, 0, sizeof cmd);

	if (fuse_opt_parse(&args, &o, lzfs_opt_spec, opt_proc) < 0) {
		usage(stderr);
		goto out;
	}
	if (o.show_version) {
		printf("lzfs %s (libfuse %s)\n", LZFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (o.show_help) {
		usage(stdout);
		ret = 0;
		goto out;
	}
	if (o.check_config) {
		ret = cfg_check_main(&o, argc, argv, stdout, stderr);
		goto out;
	}
	/* The configuration file fills in what the command line leaves out. */
	if (cfg_merge(&o, argc, argv, &args, err, sizeof err) < 0) {
		fprintf(stderr, "lzfs: %s\n", err);
		goto out;
	}
	if (o.mountpoint)
		svc_clear_dead_mount(o.mountpoint);
	if (fuse_parse_cmdline(&args, &cmd) != 0) {
		usage(stderr);
		goto out;
	}
	if (opts_finish(&o, err, sizeof err) < 0) {
		fprintf(stderr, "lzfs: %s\n", err);
		goto out;
	}
	log_init("lzfs", o.log_level, 0);

	/* fuse_new() only parses: it rejects unknown options before any check. */
	struct land *holder = NULL;
	fuse_opt_add_arg(&args, "-odefault_permissions");
	fuse_opt_add_arg(&args, "-ofsname=lzfs");
	fuse_opt_add_arg(&args, "-osubtype=lzfs");
	fuse = fuse_new(&args, &fs_ops, sizeof fs_ops, &holder);
	if (!fuse) /* libfuse printed which option it does not know */
		goto out;
	int cat_url = o.catalog && strstr(o.catalog, "://"); /* PostgreSQL */
	if (opt_make_absolute(&o.landing) < 0 || (!cat_url && opt_make_absolute(&o.catalog) < 0) ||
	    opt_make_absolute(&o.credentials) < 0 || opt_make_absolute(&o.log_file) < 0 ||
	    opt_make_absolute(&o.ca_file) < 0)
		goto out;
	if (!o.catalog && asprintf(&o.catalog, "%s/%s/catalog.db", o.landing, LAND_RESERVED) < 0)
		goto out;

	/* Everything that can fail is checked while we can still say so. */
	if (check_landing(o.landing, err, sizeof err) < 0) {
		fprintf(stderr, "lzfs: %s\n", err);
		goto out;
	}
	int rc = s3_creds_load(o.credentials, o.profile, &creds);
	if (rc < 0) {
		fprintf(stderr, "lzfs: no usable credentials (%s): see the log line above\n",
			strerror(-rc));
		goto out;
	}
	char cat_name[1024];
	cat_redact(o.catalog, cat_name, sizeof cat_name); /* never log a password */
	rc = cat_open(o.catalog, CAT_CREATE, &cat);
	if (rc < 0) {
		fprintf(stderr, "lzfs: catalog %s cannot be used (%s)\n", cat_name, strerror(-rc));
		goto out;
	}
	cat_close(cat);
	cat = NULL;
	if (check_s3(&o, &creds) < 0)
		goto out;

	/* Core dumps of the daemon would carry the secret key. */
	prctl(PR_SET_DUMPABLE, 0);

	if (fuse_mount(fuse, cmd.mountpoint) != 0)
		goto out;
	if (fuse_daemonize(cmd.foreground) != 0) {
		fprintf(stderr, "lzfs: cannot daemonize\n");
		goto out_unmount;
	}
	if (o.log_file) {
		int fd = open(o.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	} else if (!cmd.foreground || log_journal_wanted()) {
		log_init("lzfs", o.log_level, 1);
	}

	struct s3_config s3cfg;
	s3_config_from(&o, &creds, &s3cfg, 0);
	struct up_config ucfg = {
		.part_size = o.part_size,
		.max_parts = o.max_parts,
		.mem_limit = o.mem_limit,
		.workers = o.max_inflight_parts,
	};
	struct land_config lcfg = {
		.bucket = o.bucket,
		.prefix = o.prefix,
		.spool_dir = o.landing,
		.mountpoint = cmd.mountpoint,
		.durability = o.durability,
		.unlink_mode = o.unlink_mode,
		.overwrite = o.overwrite,
		.evict_after_secs = o.evict_after,
		.high_watermark = o.high_watermark,
		.drain_secs = o.drain_timeout,
		.retry_secs = o.retry_interval,
	};
	/* Reads of evicted files: the defaults (8 MiB chunks, 8 workers) with
	 * the same memory budget as uploads. */
	struct rd_config rcfg = {.mem_limit = o.mem_limit < (64ull << 20) ? 64ull << 20 : o.mem_limit};
	if ((rc = s3_client_new(&s3cfg, &s3)) < 0 || (rc = cat_open(o.catalog, CAT_CREATE, &cat)) < 0 ||
	    (rc = up_pool_new(&ucfg, s3, &pool)) < 0 || (rc = rd_pool_new(&rcfg, s3, &rdpool)) < 0 ||
	    (rc = land_open(&lcfg, s3, cat, pool, &land)) < 0) {
		log_err("start-up failed: %s", strerror(-rc));
		goto out_unmount;
	}
	land_set_reader(land, rdpool);
	holder = land;
	if (o.rescan_interval > 0) {
		struct rescan_config rcfg = {
			.dir = o.landing,
			.interval = o.rescan_interval,
			.settle = o.settle_time,
			.stat_all = o.rescan_stat_all,
			.scan = {
				.mode = SCAN_PUT_SYNC,
				.bucket = o.bucket,
				.prefix = o.prefix,
				.path_mode = SCAN_PATH_REL,
				.overwrite = o.overwrite == LAND_OVERWRITE_REPLACE ? SCAN_OVERWRITE_REPLACE
					     : o.overwrite == LAND_OVERWRITE_DENY  ? SCAN_OVERWRITE_DENY
										   : SCAN_OVERWRITE_VERSION,
				.files_per_task = o.files_per_task,
				.workers = o.rescan_workers,
				.part_size = o.part_size,
				.source = "rescan",
				.skip_top = LAND_RESERVED,
				.stale_copies = 1,
				.busy = rescan_busy,
				.busy_arg = land,
			},
			/* Scan jobs: in the catalog, SQLite or PostgreSQL. */
			.catalog_file = o.catalog,
			.run_jobs = 1,
			.s3cfg = &s3cfg,
		};
		if ((rc = rescan_start(&rcfg, cat, s3, pool, &rescan)) < 0) {
			log_err("start-up failed: rescanner: %s", strerror(-rc));
			goto out_unmount;
		}
		sig_rescan = rescan;
		signal(SIGUSR1, on_usr1);
	}
	log_notice("mounted s3://%s/%s at %s (landing %s, catalog %s, part_size %llu, mem_limit %llu, "
		   "durability %s)", o.bucket, o.prefix, cmd.mountpoint, o.landing, cat_name,
		   (unsigned long long)o.part_size, (unsigned long long)o.mem_limit,
		   o.durability == LAND_DUR_CLOSE ? "close" : "async");

	struct fuse_session *se = fuse_get_session(fuse);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;
	sd_notify(0, "READY=1\nSTATUS=Mounted");
	svc_watchdog_start(land, &wd);
	if (cmd.singlethread) {
		ret = fuse_loop(fuse);
	} else {
		/* libfuse >= 3.12 parses an absent -o max_idle_threads as
		 * UINT_MAX ("unset"), which 3.12-3.15 then reject with "Ignoring
		 * invalid max threads value" on the way through this (3.2) config.
		 * 10 is what older libfuse defaulted to and, with the default of
		 * at most 10 workers, keeps every idle worker as "unset" does. */
		unsigned int idle = cmd.max_idle_threads == UINT_MAX ? 10 : cmd.max_idle_threads;
		struct fuse_loop_config lc = {.clone_fd = cmd.clone_fd, .max_idle_threads = idle};
		ret = fuse_loop_mt(fuse, &lc);
	}
	/* The loop returns the signal that ended it: SIGTERM (systemctl stop),
	 * SIGINT and SIGHUP are an orderly unmount, not a failure. */
	ret = ret == 0 || ret == SIGTERM || ret == SIGINT || ret == SIGHUP ? 0 : 1;
	/* systemd's stop timeout must cover the drain. */
	sd_notifyf(0, "STOPPING=1\nSTATUS=Draining uploads\nEXTEND_TIMEOUT_USEC=%llu",
		   (o.drain_timeout + 30) * 1000000ull);
	fuse_remove_signal_handlers(se);
	log_notice("unmounting %s: draining queued uploads (up to %d s)", cmd.mountpoint,
		   o.drain_timeout);
out_unmount:
	fuse_unmount(fuse);
out:
	if (rescan) {
		signal(SIGUSR1, SIG_IGN);
		sig_rescan = NULL;
		rescan_stop(rescan);
	}
	svc_watchdog_detach(wd);
	if (land)
		land_close(land);
	svc_watchdog_stop(wd);
	if (pool)
		up_pool_free(pool);
	if (rdpool)
		rd_pool_free(rdpool);
	if (cat)
		cat_close(cat);
	if (s3)
		s3_client_free(s3);
	s3_creds_clear(&creds);
	if (fuse)
		fuse_destroy(fuse);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	opts_free(&o);
	return ret;
}
