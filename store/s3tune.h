/* s3tune.h - knobs of the S3 client that only tests and benchmarks turn:
 * small list pages (to exercise pagination without thousands of keys) and
 * the size at which s3_copy_object switches to a multipart copy. */
#ifndef LZFS_S3TUNE_H
#define LZFS_S3TUNE_H

#include <stdint.h>

#include "s3.h"

/* max-keys per ListObjectsV2 page (0: the server's default, 1000). */
void s3_tune_list_page(struct s3_client *c, int max_keys);
/* Objects above single_max are copied in parts of part_size bytes
 * (defaults 5 GiB and 1 GiB). */
void s3_tune_copy(struct s3_client *c, uint64_t single_max, uint64_t part_size);

#endif
