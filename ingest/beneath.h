/* beneath.h - opening paths below a directory without following symlinks:
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or, where the kernel (or
 * valgrind, or a seccomp filter) does not have openat2, the same rules
 * applied one component at a time with O_NOFOLLOW.
 *
 * The rules: path is relative ("" or "." is the directory itself); any ".."
 * component or an absolute path is refused with -EXDEV; a symlink anywhere on the
 * way, the last component included, is refused with -ELOOP (with O_PATH |
 * O_NOFOLLOW too); nothing is followed, so nothing leads outside. Returns
 * a descriptor or a negative errno. */
#ifndef LZFS_BENEATH_H
#define LZFS_BENEATH_H

#include <sys/types.h>

int beneath_open(int dirfd, const char *path, int flags, mode_t mode);

/* The component walk alone (what beneath_open uses without openat2). */
int beneath_open_walk(int dirfd, const char *path, int flags, mode_t mode);

#endif
