/* config.h - the configuration file, /etc/lzfs/lzfs.conf: INI (inih), one
 * section per mount, [global] for what every mount shares.
 *
 *   [global]
 *   endpoint = https://s3.example.org
 *   credentials = /etc/lzfs/credentials
 *   [instrument-7]
 *   url = s3://bucket/instrument-7
 *   mountpoint = /mnt/instrument-7
 *   landing = /var/lib/lzfs/instrument-7
 *
 * Keys are lzfs's -o option names (plus url and mountpoint, and the FUSE
 * options allow_other, allow_root, uid, gid, umask). The command line wins
 * over a mount's section, which wins over [global], which wins over the
 * built-in defaults. Every value is checked when the file is read, with the
 * same rules as the command line, and every error names FILE:LINE.
 * Secrets are refused: they belong in the credentials file (mode 0600).
 * Functions return 0 or a negative errno and write one line into err.
 */
#ifndef LZFS_CONFIG_H
#define LZFS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "opts.h"

#define CFG_DEFAULT_PATH "/etc/lzfs/lzfs.conf"

struct fuse_args;
struct cfg;

/* Reads and checks the whole file. */
int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* Mount sections ([global] is not one), in file order. */
int cfg_count(const struct cfg *c);
const char *cfg_name(const struct cfg *c, int idx);

/* The mount section called name, or else the one whose mountpoint is
 * mountpoint (either may be NULL). Returns its index, -ENOENT if none,
 * -EINVAL (with err) if the name is unknown or two sections claim the
 * mountpoint. */
int cfg_find(const struct cfg *c, const char *name, const char *mountpoint, char *err,
	     size_t errlen);

/* Which options lzfs's own command line (argc/argv as main got them) sets:
 * those the file must not override. Returns a mask for cfg_apply. */
unsigned long long cfg_cmdline_mask(int argc, char **argv);

/* Applies [global], then section idx (or only [global] if idx < 0) to o for
 * every option not in cmdline_mask and not already positional (url,
 * mountpoint). FUSE options of the file are inserted into args (if not
 * NULL) ahead of the command line's. */
int cfg_apply(const struct cfg *c, int idx, unsigned long long cmdline_mask,
	      struct lzfs_opts *o, struct fuse_args *args, char *err, size_t errlen);

/* What lzfs calls after parsing its command line into o: finds the file
 * (-o config=FILE, else CFG_DEFAULT_PATH if it exists) and the section
 * (-o mount=NAME, else a source argument that is not s3://..., else the
 * mountpoint) and applies it. A mountpoint taken from the file is appended
 * to args for fuse_parse_cmdline. Returns 0 also when there is no file. */
int cfg_merge(struct lzfs_opts *o, int argc, char **argv, struct fuse_args *args, char *err,
	      size_t errlen);

/* lzfs --check-config [-o config=FILE] [-o OPTIONS] [NAME|s3://... MOUNTPOINT]:
 * checks the file and prints the effective configuration of NAME (or of
 * every mount) to out, problems to errf. Returns the exit status (0 or 1). */
int cfg_check_main(struct lzfs_opts *o, int argc, char **argv, FILE *out, FILE *errf);

#endif
