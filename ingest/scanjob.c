/* scanjob.c - see scanjob.h. */
#include "scanjob.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "jobs.h"
#include "log.h"
#include "opts.h"

void sj_free(struct sj_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->source);
	free(s->target);
	free(s->bucket);
	free(s->prefix);
	scan_filter_free(s->filter);
	free(s->args);
	free(s->mode_s);
	free(s->tmpl);
	free(s->collection);
	free(s->pre);
	free(s->post);
	free(s->fail);
	free(s->source_tag);
	for (int i = 0; i < s->nmeta; i++)
		free(s->meta[i]);
	free(s->meta);
	free(s);
}

static int parse_int(const char *v, int min, int max, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return -EINVAL;
	*out = (int)n;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

/* Appends "opt\nvalue\n" (or "opt\n") to the stored args. */
static int args_add(struct sj_spec *s, const char *opt, const char *val)
{
	size_t have = s->args ? strlen(s->args) : 0;
	size_t need = have + strlen(opt) + (val ? strlen(val) + 1 : 0) + 2;
	char *a = realloc(s->args, need);
	if (!a)
		return -ENOMEM;
	if (!have)
		a[0] = '\0';
	s->args = a;
	strcat(a, opt);
	strcat(a, "\n");
	if (val) {
		strcat(a, val);
		strcat(a, "\n");
	}
	return 0;
}

int sj_parse(int argc, char **argv, struct sj_spec **out, char *err, size_t errlen)
{
	*out = NULL;
	struct sj_spec *s = calloc(1, sizeof *s);
	if (!s || scan_filter_new(&s->filter) < 0) {
		free(s);
		return -ENOMEM;
	}
	s->cfg.mode = SCAN_PUT_SYNC;
	s->cfg.max_retries = 2;
	s->cfg.workers = 16;
	s->cfg.files_per_task = 50;
	s->settle = -1;
	const char *pos[2] = {NULL, NULL};
	int npos = 0, rc = 0, runs = 0;
	for (int i = 0; i < argc && rc == 0; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || npos) {
			if (a[0] == '-' && a[1] && npos == 0 && strcmp(a, "-") != 0) {
				snprintf(err, errlen, "unknown option '%s'", a);
				rc = -EINVAL;
				break;
			}
			if (npos == 2) {
				snprintf(err, errlen, "unexpected argument '%s'", a);
				rc = -EINVAL;
				break;
			}
			pos[npos++] = a;
			continue;
		}
		/* --opt=value or --opt value */
		char opt[64];
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		size_t ol = eq ? (size_t)(eq - a) : strlen(a);
		if (ol >= sizeof opt) {
			snprintf(err, errlen, "unknown option '%s'", a);
			rc = -EINVAL;
			break;
		}
		memcpy(opt, a, ol);
		opt[ol] = '\0';
		static const char *const flags[] = {"--once", "--watch"};
		int is_flag = 0;
		for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
			if (strcmp(opt, flags[f]) == 0)
				is_flag = 1;
		if (!is_flag) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				snprintf(err, errlen, "option %s needs a value", opt);
				rc = -EINVAL;
				break;
			}
		} else if (eq) {
			snprintf(err, errlen, "option %s takes no value", opt);
			rc = -EINVAL;
			break;
		}
		char msg[256] = "";
		if (strcmp(opt, "--once") == 0) {
			s->run = SJ_ONCE, runs++;
		} else if (strcmp(opt, "--watch") == 0) {
			s->run = SJ_WATCH, runs++;
		} else if (strcmp(opt, "--interval") == 0) {
			s->run = SJ_INTERVAL, runs++;
			if (parse_int(val, 1, 365 * 86400, &s->interval) < 0)
				snprintf(msg, sizeof msg, "--interval %s: expected seconds >= 1", val);
		} else if (strcmp(opt, "--mode") == 0) {
			int m = scan_mode_parse(val);
			if (m < 0)
				snprintf(msg, sizeof msg, "--mode %s: expected put, put-sync, put-append, "
							  "register or no-op", val);
			else
				s->cfg.mode = m;
		} else if (strcmp(opt, "--exclude-file-name") == 0) {
			rc = scan_filter_add_file_name(s->filter, val, msg, sizeof msg);
		} else if (strcmp(opt, "--exclude-directory-name") == 0) {
			rc = scan_filter_add_dir_name(s->filter, val, msg, sizeof msg);
		} else if (strcmp(opt, "--exclude-file-type") == 0) {
			if (scan_filter_add_type(s->filter, val) < 0)
				snprintf(msg, sizeof msg, "--exclude-file-type %s: expected regular, directory, "
							  "character, block, socket, pipe or link", val);
		} else if (strcmp(opt, "--key-template") == 0) {
			rc = set_str(&s->tmpl, val);
		} else if (strcmp(opt, "--overwrite") == 0) {
			int v = scan_overwrite_parse(val);
			if (v < 0)
				snprintf(msg, sizeof msg, "--overwrite %s: expected version, replace or deny", val);
			else
				s->cfg.overwrite = v;
		} else if (strcmp(opt, "--collection") == 0) {
			rc = set_str(&s->collection, val);
		} else if (strcmp(opt, "--metadata") == 0) {
			if (scan_meta_check(val, msg, sizeof msg) < 0)
				goto bad;
			char **m = realloc(s->meta, (size_t)(s->nmeta + 1) * sizeof *m);
			if (!m || !(m[s->nmeta] = strdup(val))) {
				if (m)
					s->meta = m;
				rc = -ENOMEM;
			} else {
				s->meta = m;
				s->nmeta++;
			}
		} else if (strcmp(opt, "--pre-ingest") == 0) {
			rc = set_str(&s->pre, val);
		} else if (strcmp(opt, "--post-ingest") == 0) {
			rc = set_str(&s->post, val);
		} else if (strcmp(opt, "--on-failure") == 0) {
			rc = set_str(&s->fail, val);
		} else if (strcmp(opt, "--hook-timeout") == 0) {
			if (parse_int(val, 1, 86400, &s->cfg.hook_timeout) < 0)
				snprintf(msg, sizeof msg, "--hook-timeout %s: expected 1..86400 seconds", val);
		} else if (strcmp(opt, "--max-retries") == 0) {
			if (parse_int(val, 0, 100, &s->cfg.max_retries) < 0)
				snprintf(msg, sizeof msg, "--max-retries %s: expected 0..100", val);
		} else if (strcmp(opt, "--timeout") == 0) {
			if (parse_int(val, 0, INT_MAX, &s->timeout) < 0)
				snprintf(msg, sizeof msg, "--timeout %s: expected seconds (0 = none)", val);
		} else if (strcmp(opt, "--workers") == 0) {
			if (parse_int(val, 1, 256, &s->cfg.workers) < 0)
				snprintf(msg, sizeof msg, "--workers %s: expected 1..256", val);
		} else if (strcmp(opt, "--files-per-task") == 0) {
			if (parse_int(val, 1, 10000, &s->cfg.files_per_task) < 0)
				snprintf(msg, sizeof msg, "--files-per-task %s: expected 1..10000", val);
		} else if (strcmp(opt, "--settle-time") == 0) {
			if (parse_int(val, 0, 86400, &s->settle) < 0)
				snprintf(msg, sizeof msg, "--settle-time %s: expected 0..86400 seconds", val);
		} else if (strcmp(opt, "--name") == 0) {
			if (!job_name_ok(val))
				snprintf(msg, sizeof msg, "--name %s: use 1-64 of A-Z a-z 0-9 . _ - "
							  "(not starting with . or -)", val);
			else
				rc = set_str(&s->name, val);
		} else {
			snprintf(msg, sizeof msg, "unknown option '%s'", opt);
		}
bad:
		if (rc == -EINVAL || msg[0]) {
			snprintf(err, errlen, "%s", msg);
			rc = -EINVAL;
			break;
		}
		if (rc == 0)
			rc = args_add(s, opt, val);
	}
	if (rc == 0 && runs > 1) {
		snprintf(err, errlen, "--once, --interval and --watch exclude each other");
		rc = -EINVAL;
	}
	/* positionals */
	const char *url = NULL;
	if (rc == 0) {
		if (s->cfg.mode == SCAN_REGISTER) {
			if (npos != 1) {
				snprintf(err, errlen, "register mode takes one argument: s3://BUCKET[/PREFIX]");
				rc = -EINVAL;
			} else {
				url = pos[0];
			}
			if (rc == 0 && s->run == SJ_WATCH) {
				snprintf(err, errlen, "register mode lists S3: use --once or --interval");
				rc = -EINVAL;
			}
			if (rc == 0 && s->tmpl) {
				snprintf(err, errlen, "register mode keeps the keys it finds: no --key-template");
				rc = -EINVAL;
			}
		} else if (npos != 2) {
			snprintf(err, errlen, "expected SOURCE_DIR s3://BUCKET[/PREFIX]");
			rc = -EINVAL;
		} else {
			url = pos[1];
			char *abs = NULL;
			if (pos[0][0] == '/') {
				abs = strdup(pos[0]);
			} else {
				char cwd[PATH_MAX];
				if (getcwd(cwd, sizeof cwd) && asprintf(&abs, "%s/%s", cwd, pos[0]) < 0)
					abs = NULL;
			}
			if (!abs) {
				rc = -ENOMEM;
			} else {
				/* Trailing slashes do not change the tree. */
				size_t l = strlen(abs);
				while (l > 1 && abs[l - 1] == '/')
					abs[--l] = '\0';
				s->source = abs;
				struct stat st;
				if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
					snprintf(err, errlen, "%s: not a directory", abs);
					rc = -EINVAL;
				}
			}
		}
	}
	if (rc == 0) {
		if ((rc = set_str(&s->target, url)) == 0 &&
		    opt_parse_url(url, &s->bucket, &s->prefix, err, errlen) < 0)
			rc = -EINVAL;
	}
	if (rc == 0 && s->settle < 0)
		s->settle = s->run == SJ_ONCE ? 0 : 5;
	if (rc == 0 && !s->name) {
		/* Same source and target, same name: two runs of one scan never
		 * overlap (the lock), different scans never share one. */
		char in[PATH_MAX * 2];
		snprintf(in, sizeof in, "%s\n%s", s->source ? s->source : "", s->target);
		unsigned char d[32];
		char hex[65];
		hash_sha256(in, strlen(in), d);
		hash_hex(d, sizeof d, hex);
		hex[8] = '\0';
		if (asprintf(&s->name, "cli-%s", hex) < 0) {
			s->name = NULL;
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && asprintf(&s->source_tag, "scan:%s", s->name) < 0) {
		s->source_tag = NULL;
		rc = -ENOMEM;
	}
	if (rc == 0) {
		struct scan_tmpl *t;
		if (scan_tmpl_new(s->tmpl ? s->tmpl : SCAN_DEFAULT_TEMPLATE, &t, err, errlen) < 0)
			rc = -EINVAL;
		else
			scan_tmpl_free(t);
	}
	if (rc == 0 && s->collection) {
		for (const char *p = s->collection; *p; p++)
			if (p == s->collection && *p == '/') {
				snprintf(err, errlen, "--collection is a catalog path: no leading '/'");
				rc = -EINVAL;
			}
	}
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		sj_free(s);
		return rc;
	}
	struct scan_config *c = &s->cfg;
	c->bucket = s->bucket;
	c->prefix = s->prefix;
	c->key_template = s->tmpl;
	c->collection = s->collection;
	c->path_mode = SCAN_PATH_KEY;
	c->filter = s->filter;
	c->meta = (const char *const *)s->meta;
	c->nmeta = s->nmeta;
	c->pre_hook = s->pre;
	c->post_hook = s->post;
	c->fail_hook = s->fail;
	c->source = s->source_tag;
	/* A top-level .lzfs is lzfs's own (a spool's catalog, kept versions). */
	c->skip_top = ".lzfs";
	c->settle_ms = s->settle * 1000;
	*out = s;
	return 0;
}

int sj_parse_job(const char *args, const char *source, const char *target, struct sj_spec **out,
		 char *err, size_t errlen)
{
	char *copy = strdup(args ? args : "");
	if (!copy)
		return -ENOMEM;
	int n = 0, cap = 8;
	char **argv = malloc((size_t)cap * sizeof *argv);
	int rc = argv ? 0 : -ENOMEM;
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l && rc == 0; l = strtok_r(NULL, "\n", &save)) {
		if (n + 3 >= cap) {
			char **a = realloc(argv, (size_t)(cap *= 2) * sizeof *a);
			if (!a) {
				rc = -ENOMEM;
				break;
			}
			argv = a;
		}
		argv[n++] = l;
	}
	if (rc == 0) {
		int is_register = strncmp(source, "s3://", 5) == 0;
		if (!is_register)
			argv[n++] = (char *)source;
		argv[n++] = (char *)target;
		rc = sj_parse(n, argv, out, err, errlen);
	}
	free(argv);
	free(copy);
	return rc;
}

void sj_human_bytes(uint64_t b, char *buf, size_t len)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, len, "%.1f %s", v, u[i]);
}

void sj_summary(const struct scan_stats *st, double secs, char *buf, size_t len)
{
	char up[32], rate[32];
	sj_human_bytes(st->uploaded_bytes + st->appended_bytes, up, sizeof up);
	sj_human_bytes(secs > 0 ? (uint64_t)((double)(st->uploaded_bytes + st->appended_bytes) / secs)
				: 0, rate, sizeof rate);
	size_t n = (size_t)snprintf(buf, len,
				    "%llu files seen: %llu uploaded, %llu appended (%s), %llu registered, "
				    "%llu unchanged, %llu touched",
				    (unsigned long long)st->seen, (unsigned long long)st->uploaded,
				    (unsigned long long)st->appended, up,
				    (unsigned long long)st->registered,
				    (unsigned long long)st->unchanged, (unsigned long long)st->touched);
#define MORE(field, what)                                                                  \
	if (st->field && n < len)                                                          \
		n += (size_t)snprintf(buf + n, len - n, ", %llu " what,                    \
				      (unsigned long long)st->field);
	MORE(would, "would change");
	MORE(excluded, "excluded");
	MORE(busy, "busy");
	MORE(hook_skipped, "skipped by hook");
	MORE(not_regular, "not regular");
	MORE(unreadable, "unreadable");
	MORE(vanished, "vanished");
	MORE(cancelled, "cancelled");
#undef MORE
	if (n < len)
		snprintf(buf + n, len - n, ", %llu failed in %.1f s (%s/s)",
			 (unsigned long long)st->failed, secs, rate);
}

/* ---------- one pass ---------- */

struct pass {
	struct scan_ctx *sc;
	const struct sj_spec *s;
	int rootfd;
	int rc;
	int done;
	pthread_mutex_t mu;
};

static void *pass_walker(void *arg)
{
	struct pass *p = arg;
	int rc = p->s->cfg.mode == SCAN_REGISTER ? scan_register(p->sc)
						 : scan_walk(p->sc, p->rootfd, "", NULL, NULL);
	if (rc < 0 && rc != -ECANCELED)
		log_err("scan %s: %s failed: %s", p->s->name,
			p->s->cfg.mode == SCAN_REGISTER ? "listing" : "walking", strerror(-rc));
	scan_wait(p->sc);
	pthread_mutex_lock(&p->mu);
	p->rc = rc;
	p->done = 1;
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int sj_pass(const struct sj_spec *s, const char *catalog_file, struct cat *cat,
	    struct s3_client *s3, struct up_pool *pool, sj_tick_fn tick, void *arg,
	    struct scan_stats *out)
{
	memset(out, 0, sizeof *out);
	struct job_lock *lockfd = NULL;
	int rc = scan_lock(catalog_file, s->name, &lockfd);
	if (rc == -EBUSY) {
		log_warn("scan %s: another run of it is in progress; not starting a second one",
			 s->name);
		return rc;
	}
	if (rc < 0)
		return rc;
	int rec = scan_recover(cat, catalog_file, s3, s->bucket, s->source_tag);
	if (rec > 0)
		log_notice("scan %s: %d file(s) left by an interrupted run will be uploaded again",
			   s->name, rec);
	struct pass p = {.s = s, .rootfd = -1};
	pthread_mutex_init(&p.mu, NULL);
	char err[256] = "";
	if (s->source) {
		p.rootfd = open(s->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (p.rootfd < 0) {
			rc = -errno;
			log_err("scan %s: %s: %s", s->name, s->source, strerror(errno));
			goto out;
		}
	}
	if ((rc = scan_new(&s->cfg, cat, s3, pool, &p.sc, err, sizeof err)) < 0) {
		log_err("scan %s: %s", s->name, err[0] ? err : strerror(-rc));
		goto out;
	}
	pthread_t walker;
	if ((rc = pthread_create(&walker, NULL, pass_walker, &p)) != 0) {
		rc = -rc;
		goto out;
	}
	int64_t start = mono_ms();
	int why = 0; /* 1 timeout, 2 stop */
	for (;;) {
		pthread_mutex_lock(&p.mu);
		int done = p.done;
		pthread_mutex_unlock(&p.mu);
		if (done)
			break;
		struct scan_stats st;
		scan_get_stats(p.sc, &st);
		if (!why && tick && tick(arg, &st, 1)) {
			why = 2;
			scan_cancel(p.sc);
		}
		if (!why && s->timeout > 0 && mono_ms() - start > (int64_t)s->timeout * 1000) {
			why = 1;
			log_warn("scan %s: timed out after %d s; stopping", s->name, s->timeout);
			scan_cancel(p.sc);
		}
		struct timespec ts = {0, 250 * 1000000};
		nanosleep(&ts, NULL);
	}
	pthread_join(walker, NULL);
	scan_get_stats(p.sc, out);
	if (why == 1)
		rc = -ETIMEDOUT;
	else if (why == 2)
		rc = -ECANCELED;
	else if (p.rc < 0)
		rc = p.rc;
	else
		rc = out->failed || out->unreadable ? -EIO : 0;
out:
	scan_free(p.sc);
	if (p.rootfd >= 0)
		close(p.rootfd);
	pthread_mutex_destroy(&p.mu);
	scan_unlock(lockfd);
	return rc;
}
