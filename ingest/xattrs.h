/* xattrs.h - a file's user.* extended attributes as catalog metadata.
 *
 * The mount and scan jobs both register a file's user.* xattrs (except
 * the user.lzfs.* views the mount itself shows) as AVUs of its catalog
 * path, the name without "user.", so metadata set by an instrument with
 * setfattr is searchable with `lzfsctl find --meta`.
 */
#ifndef LZFS_XATTRS_H
#define LZFS_XATTRS_H

#include "catalog.h"

/* Imports fd's user.* xattrs into catpath's metadata. Returns how many
 * were set, or a negative errno if the list could not be read (logged);
 * a value that cannot be read or stored is logged and skipped. */
int xa_import(struct cat *cat, int fd, const char *catpath);

#endif
