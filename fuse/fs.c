/* fs.c - see fs.h. Paths arrive absolute ("/a/b"); the landing zone takes
 * them relative ("a/b"). With nullpath_ok, path is NULL for an open file
 * that was unlinked; those requests go by file handle. */
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct land *fs_land(void) { return fuse_get_context()->private_data; }

static const char *rel(const char *path) { return path ? path + 1 : NULL; }

static struct land_fh *fh_of(struct fuse_file_info *fi)
{
	return fi ? (struct land_fh *)(uintptr_t)fi->fh : NULL;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* O_TRUNC arrives with open() instead of as a truncate before it, so
	 * overwriting a file is one new version, not an empty one first. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Unlink must really unlink (no .fuse_hidden renames reaching S3). */
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	cfg->use_ino = 1;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	log_debug("FUSE: max_write %u, max_readahead %u, max_background %u", conn->max_write,
		  conn->max_readahead, conn->max_background);
	/* fuse_new() got the address of main's holder, filled in before the
	 * loop started; from here on private_data is the landing zone. */
	return *(struct land **)fuse_get_context()->private_data;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi)
		return land_fgetattr(fh_of(fi), st);
	return land_getattr(fs_land(), rel(path), st);
}

struct fill_ctx {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fs_fill(void *arg, const char *name, const struct stat *st)
{
	struct fill_ctx *c = arg;
	return c->filler(c->buf, name, st, 0, 0);
}

/* With nullpath_ok, readdir may come without a path: keep the one opendir
 * saw in the handle. */
static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	char *p = strdup(rel(path));
	if (!p)
		return -ENOMEM;
	fi->fh = (uintptr_t)p;
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	free((char *)(uintptr_t)fi->fh);
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fill_ctx c = {buf, filler};
	const char *p = path ? rel(path) : (const char *)(uintptr_t)fi->fh;
	return land_readdir(fs_land(), p, fs_fill, &c);
}

static int fs_mkdir(const char *path, mode_t mode)
{
	struct fuse_context *ctx = fuse_get_context();
	return land_mkdir(fs_land(), rel(path), mode & ~ctx->umask, ctx->uid, ctx->gid);
}

static int fs_rmdir(const char *path) { return land_rmdir(fs_land(), rel(path)); }
static int fs_unlink(const char *path) { return land_unlink(fs_land(), rel(path)); }

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	return land_rename(fs_land(), rel(from), rel(to), flags);
}

static int fs_symlink(const char *target, const char *path)
{
	struct fuse_context *ctx = fuse_get_context();
	return land_symlink(fs_land(), target, rel(path), ctx->uid, ctx->gid);
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	return land_readlink(fs_land(), rel(path), buf, size);
}

static int fs_link(const char *from, const char *to)
{
	return -EPERM; /* one object per name: hard links have no S3 meaning */
}

static int fs_mknod(const char *path, mode_t mode, dev_t dev)
{
	return -EPERM; /* devices, FIFOs and sockets are not data to ingest */
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return path ? land_chmod(fs_land(), rel(path), mode) : -ENOENT;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return path ? land_chown(fs_land(), rel(path), uid, gid) : -ENOENT;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	return land_truncate(fs_land(), path ? rel(path) : "", size, fh_of(fi));
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return path ? land_utimens(fs_land(), rel(path), tv) : -ENOENT;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_context *ctx = fuse_get_context();
	struct land_fh *fh;
	int rc = land_create(fs_land(), rel(path), mode, fi->flags, ctx->uid, ctx->gid, &fh);
	if (rc == 0)
		fi->fh = (uintptr_t)fh;
	return rc;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct land_fh *fh;
	int rc = land_open_file(fs_land(), rel(path), fi->flags, &fh);
	if (rc == 0)
		fi->fh = (uintptr_t)fh;
	return rc;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	return (int)land_read(fh_of(fi), buf, size, off);
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	return (int)land_write(fh_of(fi), buf, size, off);
}

static int fs_statfs(const char *path, struct statvfs *st) { return land_statfs(fs_land(), st); }
static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	return land_flush(fh_of(fi), fuse_get_context()->pid);
}
static int fs_release(const char *path, struct fuse_file_info *fi) { return land_release(fh_of(fi)); }

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return land_fsync(fh_of(fi), datasync);
}

static int fs_access(const char *path, int mask) { return land_access(fs_land(), rel(path), mask); }

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	return land_setxattr(fs_land(), rel(path), name, value, size, flags);
}

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	return (int)land_getxattr(fs_land(), rel(path), name, value, size);
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	return (int)land_listxattr(fs_land(), rel(path), list, size);
}

static int fs_removexattr(const char *path, const char *name)
{
	return land_removexattr(fs_land(), rel(path), name);
}

const struct fuse_operations fs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.symlink = fs_symlink,
	.readlink = fs_readlink,
	.link = fs_link,
	.mknod = fs_mknod,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.create = fs_create,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.access = fs_access,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
};
