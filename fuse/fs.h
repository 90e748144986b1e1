/* fs.h - the FUSE operations: kernel requests translated into landing-zone
 * calls (ingest/landing.h). No policy lives here. */
#ifndef LZFS_FS_H
#define LZFS_FS_H

#define FUSE_USE_VERSION 35
#include <fuse.h>

#include "landing.h"

/* Operations whose private data (fuse_get_context()->private_data) is the
 * struct land given to fuse_new(). */
extern const struct fuse_operations fs_ops;

#endif
