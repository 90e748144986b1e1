/* svc.h - running as a service: the systemd watchdog and status thread, and
 * the dead mount a crashed daemon leaves behind.
 *
 * The watchdog thread belongs to main: svc_watchdog_start after
 * daemonizing, svc_watchdog_detach before land_close (the thread stops
 * looking at the landing zone but keeps pinging while it drains), then
 * svc_watchdog_stop, which joins it.
 */
#ifndef LZFS_SVC_H
#define LZFS_SVC_H

struct land;
struct svc;

/* Starts the thread when systemd supervises us (NOTIFY_SOCKET): every
 * half WATCHDOG_USEC (at most every 10 s) it sends WATCHDOG=1 (if
 * systemd asked for a watchdog) and STATUS= with the landing zone's
 * queue depth and counters. Reading them takes the landing zone's locks,
 * so a deadlocked landing zone stops the pings and systemd restarts us.
 * *out is NULL when there is nothing to do. Returns 0 or a negative errno. */
int svc_watchdog_start(struct land *l, struct svc **out);
void svc_watchdog_detach(struct svc *w);
void svc_watchdog_stop(struct svc *w);

/* When MOUNTPOINT is a fuse.lzfs mount whose daemon is gone (stat fails
 * with ENOTCONN), detaches it so that a restarted daemon can mount again.
 * A live mount is never touched. Returns 0 (also when there was nothing to
 * do) or a negative errno. */
int svc_clear_dead_mount(const char *mountpoint);

#endif
