/* mpulog.h - the journal of multipart uploads that may exist on S3.
 *
 * A multipart upload whose parts were sent but which was neither completed
 * nor aborted costs storage forever and is invisible to users. Every
 * upload the landing zone creates is recorded here (a line in
 * LANDING/.lzfs/uploads) the moment S3 hands out its id, and removed once
 * it is completed or aborted. Entries left over by a failed abort (S3 down)
 * or a crash are aborted by the landing zone's background thread, now or
 * at the next start, until S3 confirms.
 *
 * In memory each entry has an owner (an opaque pointer: the open file whose
 * commit created it) so that the commit can settle its own uploads.
 */
#ifndef LZFS_MPULOG_H
#define LZFS_MPULOG_H

struct mpl;

/* Opens (creating) the journal file and loads its entries, owner NULL. */
int mpl_open(const char *file, struct mpl **out);
void mpl_close(struct mpl *m);

int mpl_add(struct mpl *m, const char *key, const char *upload_id, const void *owner);
int mpl_remove(struct mpl *m, const char *upload_id);
/* 1 if upload_id is in the journal (an upload this daemon created and has
 * not seen completed or aborted). */
int mpl_has(struct mpl *m, const char *upload_id);

/* Calls cb for each entry of owner (NULL: the unowned ones) after removing
 * them from the owner (they become unowned). cb returns 1 if the upload is
 * gone (completed or aborted: the entry is dropped), 0 to keep it. */
int mpl_settle(struct mpl *m, const void *owner,
	       int (*cb)(const char *key, const char *upload_id, void *arg), void *arg);

int mpl_count(struct mpl *m);

#endif
