/* svc.c - see svc.h. */
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "landing.h"
#include "log.h"

struct svc {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct land *land; /* NULL once detached */
	int stop;
	int watchdog;
	uint64_t period_us;
};

static void human(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	if (b < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)b);
		return;
	}
	double v = (double)b;
	int u = -1;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %ciB", v, units[u]);
}

static void *svc_thread(void *arg)
{
	struct svc *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		struct timespec due;
		clock_gettime(CLOCK_MONOTONIC, &due);
		due.tv_sec += (time_t)(w->period_us / 1000000);
		due.tv_nsec += (long)(w->period_us % 1000000) * 1000;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &due) != ETIMEDOUT)
			;
		if (w->stop)
			break;
		char status[256];
		if (w->land) {
			/* Under w->mu: detach waits until we are done with the land. */
			struct land_stats st;
			char bytes[32];
			land_get_stats(w->land, &st);
			human(st.bytes_ingested, bytes, sizeof bytes);
			snprintf(status, sizeof status,
				 "Mounted; %llu files ingested (%s), queue %d, %d open, %llu parked",
				 (unsigned long long)st.files_ingested, bytes, st.queue_depth,
				 st.open_files, (unsigned long long)st.files_parked);
		} else {
			snprintf(status, sizeof status, "Draining uploads");
		}
		sd_notifyf(0, "%sSTATUS=%s", w->watchdog ? "WATCHDOG=1\n" : "", status);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int svc_watchdog_start(struct land *l, struct svc **out)
{
	*out = NULL;
	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	uint64_t usec = 0;
	int wd = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
	struct svc *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->land = l;
	w->watchdog = wd;
	w->period_us = wd ? usec / 2 : 10000000;
	if (w->period_us > 10000000)
		w->period_us = 10000000;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals are for the FUSE loop in the main thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&w->thread, NULL, svc_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_err("cannot start the watchdog thread: %s", strerror(rc));
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -rc;
	}
	if (wd)
		log_info("systemd watchdog: pinging every %llu ms",
			 (unsigned long long)(w->period_us / 1000));
	*out = w;
	return 0;
}

void svc_watchdog_detach(struct svc *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->land = NULL;
	pthread_mutex_unlock(&w->mu);
}

void svc_watchdog_stop(struct svc *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Is dir (absolute, no trailing slash) the mount point of a fuse.lzfs mount? */
static int is_lzfs_mount(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	char *line = NULL;
	size_t cap = 0;
	int found = 0;
	while (!found && getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
		char *save = NULL, *mp = NULL, *tok = strtok_r(line, " \n", &save);
		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " \n", &save);
		mp = tok;
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " \n", &save);
		char *type = tok ? strtok_r(NULL, " \n", &save) : NULL;
		if (!mp || !type)
			continue;
		unescape(mp);
		found = strcmp(mp, dir) == 0 && strcmp(type, "fuse.lzfs") == 0;
	}
	free(line);
	fclose(f);
	return found;
}

int svc_clear_dead_mount(const char *mountpoint)
{
	/* Forced to ask the daemon: cached attributes would answer for a
	 * dead mount for up to attr_timeout. */
	struct statx stx;
	if (statx(AT_FDCWD, mountpoint, AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) == 0 ||
	    errno != ENOTCONN)
		return 0;
	char dir[PATH_MAX];
	if (mountpoint[0] == '/') {
		if (strlen(mountpoint) >= sizeof dir)
			return -ENAMETOOLONG;
		strcpy(dir, mountpoint);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return -errno;
		if (strlen(cwd) + strlen(mountpoint) + 2 > sizeof dir)
			return -ENAMETOOLONG;
		strcat(strcat(strcpy(dir, cwd), "/"), mountpoint);
	}
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	if (!is_lzfs_mount(dir))
		return 0;
	if (umount2(dir, MNT_DETACH) < 0) {
		int e = errno;
		log_err("%s: a previous lzfs died and left its mount; cannot detach it (%s): run "
			"fusermount3 -uz %s", dir, strerror(e), dir);
		return -e;
	}
	log_notice("%s: a previous lzfs died and left its mount (Transport endpoint is not "
		   "connected); detached it", dir);
	return 0;
}
