/* fschange.h - which inodes of a filesystem changed since a moment: the
 * rescanner's licence to skip the fstatat() of files it found unchanged.
 *
 * A periodic walk that must notice every change stats every file, and that
 * stat is most of its cost (a 1,000,000-file spool: readdir alone 0.3-0.5 s,
 * with a stat per file 1.2-2 s). inotify cannot stand in for the stat: a
 * write through a hard link named outside the spool, or by knfsd through a
 * disconnected dentry, raises no event on the spool's directory watches.
 * fanotify with a filesystem mark (FAN_MARK_FILESYSTEM) does: every write,
 * truncate, attribute change and directory entry change of the whole
 * filesystem is reported with the inode it touched, whatever the path and
 * whoever made it on this kernel. Writes through a shared mapping raise no
 * event until the last reference to the file is dropped, which raises
 * FAN_CLOSE_WRITE; until then the file is open, and not yet settled.
 *
 * The tracker keeps the set of inode numbers reported (files whose content
 * or attributes changed, directories whose entries changed). The report is
 * complete only while nothing was lost: a queue overflow, a handle that
 * cannot be resolved, or a set grown past its bound each mark it
 * incomplete until the caller restarts it (fsc_restart, at the start of a
 * walk that stats everything again).
 *
 * Only where this kernel sees every change: a local filesystem (ext2/3/4,
 * xfs, btrfs, f2fs, tmpfs), and with CAP_SYS_ADMIN (filesystem marks) and
 * CAP_DAC_READ_SEARCH (open_by_handle_at). Not on NFS/SMB/cluster mounts,
 * where other hosts write behind the kernel's back.
 *
 * One owner thread; no locking. Functions return 0 or a negative errno. */
#ifndef LZFS_FSCHANGE_H
#define LZFS_FSCHANGE_H

#include <stddef.h>
#include <stdint.h>

struct fsc;

/* Starts tracking the filesystem holding dir. On failure (-EPERM not root,
 * -EOPNOTSUPP a filesystem where events are not complete, others) why[]
 * says why in words for the log. */
int fsc_open(const char *dir, struct fsc **out, char *why, size_t whylen);
void fsc_close(struct fsc *t);
/* The device of the directory given to fsc_open: events are only about
 * files on it (a mount below it, or a btrfs subvolume, is not covered). */
uint64_t fsc_dev(const struct fsc *t);
/* Reads every event queued so far into the set. */
void fsc_read(struct fsc *t);
/* Whether nothing was lost since the last fsc_restart (or fsc_open). */
int fsc_complete(const struct fsc *t);
/* Empties the set and marks it complete again: the caller is about to
 * look at everything afresh. Events queued before are read first. */
void fsc_restart(struct fsc *t);
/* Empties the set (the caller has looked at what it named). */
void fsc_clear(struct fsc *t);
/* Whether inode ino was reported since the last clear. */
int fsc_changed(const struct fsc *t, uint64_t ino);
/* Events read and inodes in the set now (statistics). */
uint64_t fsc_events(const struct fsc *t);
size_t fsc_count(const struct fsc *t);

#endif
