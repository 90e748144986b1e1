#!/usr/bin/env python3
"""POSIX conformance of an lzfs mount, operation by operation, with the
exact errno of every refused operation (python's os module, no shell).

  posix.py MOUNTPOINT

Prints TAP lines ("ok N - ..." / "not ok N - ...") and exits with the number
of failures.
"""
import ctypes
import errno
import os
import socket
import stat
import sys

MNT = sys.argv[1]
n = 0
fails = 0


def p(*parts):
    return os.path.join(MNT, *parts)


def ok(desc):
    global n
    n += 1
    print("ok %d - %s" % (n, desc))


def not_ok(desc, why):
    global n, fails
    n += 1
    fails += 1
    print("not ok %d - %s" % (n, desc))
    print("# %s" % why)


def expect(desc, fn):
    """fn() must succeed (and return a truthy value or None)."""
    try:
        r = fn()
    except OSError as e:
        return not_ok(desc, "failed: %s" % e)
    if r is False:
        return not_ok(desc, "returned False")
    ok(desc)


def expect_eq(desc, want, fn):
    try:
        got = fn()
    except OSError as e:
        return not_ok(desc, "failed: %s" % e)
    if got == want:
        ok(desc)
    else:
        not_ok(desc, "expected %r, got %r" % (want, got))


def expect_errno(desc, want, fn):
    """fn() must fail with errno want (one value or a tuple of accepted ones)."""
    wants = want if isinstance(want, tuple) else (want,)
    names = "/".join(errno.errorcode[w] for w in wants)
    try:
        fn()
    except OSError as e:
        if e.errno in wants:
            return ok("%s -> %s" % (desc, errno.errorcode[e.errno]))
        return not_ok("%s -> %s" % (desc, names), "got %s" % errno.errorcode.get(e.errno, e.errno))
    not_ok("%s -> %s" % (desc, names), "succeeded")


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4


def renameat2(a, b, flags):
    r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# ---- create, write, read ----
data = os.urandom(200000)
expect("create + write + close", lambda: write_file(p("a"), data))
expect_eq("read back what was written", data, lambda: read_file(p("a")))
expect_eq("stat size", len(data), lambda: os.stat(p("a")).st_size)
expect_eq("regular file", True, lambda: stat.S_ISREG(os.stat(p("a")).st_mode))
expect_errno("open(O_CREAT|O_EXCL) of an existing file", errno.EEXIST,
             lambda: os.open(p("a"), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
expect_errno("open of a missing file", errno.ENOENT, lambda: os.open(p("missing"), os.O_RDONLY))
expect_errno("open(O_CREAT) under a missing directory", errno.ENOENT,
             lambda: os.open(p("nodir", "x"), os.O_WRONLY | os.O_CREAT))
expect_errno("open(O_CREAT) under a file", errno.ENOTDIR,
             lambda: os.open(p("a", "x"), os.O_WRONLY | os.O_CREAT))
expect_errno("name longer than 255 bytes", errno.ENAMETOOLONG,
             lambda: os.open(p("n" * 256), os.O_WRONLY | os.O_CREAT))


def rw_rewrite():
    fd = os.open(p("a"), os.O_RDWR)
    os.pwrite(fd, b"HELLO", 10)
    got = os.pread(fd, 5, 10)
    os.close(fd)
    return got


expect_eq("O_RDWR pwrite then pread sees the new bytes", b"HELLO", rw_rewrite)
expect_eq("rewrite kept the size", len(data), lambda: os.stat(p("a")).st_size)


def append():
    write_file(p("ap"), b"one\n")
    fd = os.open(p("ap"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"two\n")
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"three\n")  # O_APPEND: still at the end
    os.close(fd)
    return read_file(p("ap"))


expect_eq("O_APPEND writes go to the end", b"one\ntwo\nthree\n", append)


def sparse():
    fd = os.open(p("sparse"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"end", 1000000)
    os.close(fd)
    d = read_file(p("sparse"))
    return len(d) == 1000003 and d[:1000000] == b"\0" * 1000000 and d[-3:] == b"end"


expect("a write past the end leaves a hole of zeros", sparse)
expect_errno("read(2) on a directory", errno.EISDIR,
             lambda: os.read(os.open(p(""), os.O_RDONLY), 1))
expect_errno("open a directory for writing", errno.EISDIR, lambda: os.open(p(""), os.O_WRONLY))

# ---- truncate ----
expect("truncate(path) shrinks", lambda: os.truncate(p("a"), 1000))
expect_eq("size after truncate", 1000, lambda: os.stat(p("a")).st_size)
expect_eq("content after truncate", data[:10] + b"HELLO" + data[15:1000], lambda: read_file(p("a")))


def ftrunc():
    fd = os.open(p("a"), os.O_RDWR)
    os.ftruncate(fd, 5000)
    os.close(fd)
    return os.stat(p("a")).st_size


expect_eq("ftruncate grows with zeros", 5000, ftrunc)
expect_eq("grown part reads as zeros", b"\0" * 4000, lambda: read_file(p("a"))[1000:])
expect_errno("truncate of a directory", errno.EISDIR, lambda: os.truncate(p(""), 0))
expect_errno("truncate of a missing file", errno.ENOENT, lambda: os.truncate(p("missing"), 0))

# ---- mkdir, rmdir, readdir ----
expect("mkdir", lambda: os.mkdir(p("d"), 0o750))
expect_eq("mkdir mode", 0o750, lambda: stat.S_IMODE(os.stat(p("d")).st_mode))
expect_errno("mkdir of an existing directory", errno.EEXIST, lambda: os.mkdir(p("d")))
expect_errno("mkdir of an existing file", errno.EEXIST, lambda: os.mkdir(p("a")))
expect_errno("mkdir under a missing directory", errno.ENOENT, lambda: os.mkdir(p("x", "y")))
expect("nested mkdir", lambda: os.makedirs(p("d", "e", "f")))
expect("file in a nested directory", lambda: write_file(p("d", "e", "f", "g"), b"g"))
expect_eq("readdir lists entries", ["e"], lambda: sorted(os.listdir(p("d"))))
expect_eq("readdir of the root has no .lzfs", False, lambda: ".lzfs" in os.listdir(MNT))
expect_errno("rmdir of a non-empty directory", errno.ENOTEMPTY, lambda: os.rmdir(p("d", "e")))
expect_errno("rmdir of a file", errno.ENOTDIR, lambda: os.rmdir(p("a")))
expect_errno("rmdir of a missing directory", errno.ENOENT, lambda: os.rmdir(p("nope")))
expect_errno("readdir of a file", errno.ENOTDIR, lambda: os.listdir(p("a")))
expect("unlink + rmdir empties a tree", lambda: (os.unlink(p("d", "e", "f", "g")),
                                                  os.rmdir(p("d", "e", "f")), os.rmdir(p("d", "e"))))
expect_eq("rmdir'd directory is gone", False, lambda: os.path.exists(p("d", "e")))

# ---- unlink ----
write_file(p("u"), b"u")
expect("unlink", lambda: os.unlink(p("u")))
expect_errno("stat after unlink", errno.ENOENT, lambda: os.stat(p("u")))
expect_errno("unlink of a missing file", errno.ENOENT, lambda: os.unlink(p("u")))
expect_errno("unlink of a directory", (errno.EISDIR, errno.EPERM), lambda: os.unlink(p("d")))


def unlink_open():
    fd = os.open(p("uo"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"still here")
    os.unlink(p("uo"))
    got = os.pread(fd, 10, 0)
    os.close(fd)
    return got


expect_eq("an unlinked open file stays readable until closed", b"still here", unlink_open)
expect_eq("and is gone after close", False, lambda: os.path.exists(p("uo")))

# ---- rename ----
write_file(p("r1"), b"r1")
write_file(p("r2"), b"r2")
expect("rename to a new name", lambda: os.rename(p("r1"), p("r3")))
expect_eq("renamed file has the content", b"r1", lambda: read_file(p("r3")))
expect_errno("old name is gone", errno.ENOENT, lambda: os.stat(p("r1")))
expect("rename over an existing file replaces it", lambda: os.rename(p("r3"), p("r2")))
expect_eq("replaced content", b"r1", lambda: read_file(p("r2")))
expect("rename to itself", lambda: os.rename(p("r2"), p("r2")))
expect_errno("rename of a missing file", errno.ENOENT, lambda: os.rename(p("r1"), p("r4")))
expect_errno("rename into a missing directory", errno.ENOENT,
             lambda: os.rename(p("r2"), p("nodir", "r2")))
os.makedirs(p("rd", "sub"))
write_file(p("rd", "sub", "x"), b"x")
os.mkdir(p("full"))
write_file(p("full", "y"), b"y")
expect_errno("rename a directory into itself", errno.EINVAL, lambda: os.rename(p("rd"), p("rd", "sub", "in")))
expect_errno("rename a directory over a non-empty one", (errno.ENOTEMPTY, errno.EEXIST),
             lambda: os.rename(p("rd"), p("full")))
expect_errno("rename a directory over a file", errno.ENOTDIR, lambda: os.rename(p("rd"), p("r2")))
expect_errno("rename a file over a directory", errno.EISDIR, lambda: os.rename(p("r2"), p("full")))
expect("rename a directory", lambda: os.rename(p("rd"), p("rd2")))
expect_eq("files move with their directory", b"x", lambda: read_file(p("rd2", "sub", "x")))
write_file(p("nr"), b"nr")
expect_errno("renameat2(RENAME_NOREPLACE) onto an existing file", errno.EEXIST,
             lambda: renameat2(p("nr"), p("r2"), RENAME_NOREPLACE))
expect("renameat2(RENAME_NOREPLACE) to a free name", lambda: renameat2(p("nr"), p("nr2"), RENAME_NOREPLACE))
expect_errno("renameat2(RENAME_EXCHANGE)", errno.EINVAL,
             lambda: renameat2(p("nr2"), p("r2"), RENAME_EXCHANGE))
expect_eq("RENAME_EXCHANGE changed nothing", (b"nr", b"r1"),
          lambda: (read_file(p("nr2")), read_file(p("r2"))))
expect_errno("renameat2(RENAME_WHITEOUT)", (errno.EINVAL, errno.EPERM),
             lambda: renameat2(p("nr2"), p("wo"), RENAME_WHITEOUT))

# ---- attributes ----
write_file(p("m"), b"m")
expect("chmod", lambda: os.chmod(p("m"), 0o604))
expect_eq("chmod is visible", 0o604, lambda: stat.S_IMODE(os.stat(p("m")).st_mode))
expect("chmod of a directory", lambda: os.chmod(p("full"), 0o711))
expect_eq("directory chmod is visible", 0o711, lambda: stat.S_IMODE(os.stat(p("full")).st_mode))
expect_errno("chmod of a missing file", errno.ENOENT, lambda: os.chmod(p("missing"), 0o600))
expect("chown (root)", lambda: os.chown(p("m"), 1234, 5678))
expect_eq("chown is visible", (1234, 5678), lambda: (os.stat(p("m")).st_uid, os.stat(p("m")).st_gid))
expect("utimens with nanoseconds", lambda: os.utime(p("m"), ns=(1000000001, 981173106123456789)))
expect_eq("mtime kept to the nanosecond", 981173106123456789, lambda: os.stat(p("m")).st_mtime_ns)
expect_eq("atime kept", 1000000001, lambda: os.stat(p("m")).st_atime_ns)
expect("utimens of a directory", lambda: os.utime(p("full"), ns=(5, 7000000000)))
expect_eq("directory mtime", 7000000000, lambda: os.stat(p("full")).st_mtime_ns)
expect_errno("utimens of a missing file", errno.ENOENT, lambda: os.utime(p("missing"), ns=(1, 1)))
expect("access(R_OK|W_OK)", lambda: os.access(p("m"), os.R_OK | os.W_OK))

# ---- symlinks ----
expect("symlink", lambda: os.symlink("../some/where", p("sl")))
expect_eq("readlink", "../some/where", lambda: os.readlink(p("sl")))
expect_eq("lstat says symlink", True, lambda: stat.S_ISLNK(os.lstat(p("sl")).st_mode))
expect_errno("symlink over an existing name", errno.EEXIST, lambda: os.symlink("x", p("m")))
expect_errno("readlink of a regular file", errno.EINVAL, lambda: os.readlink(p("m")))
expect_errno("readlink of a missing name", errno.ENOENT, lambda: os.readlink(p("missing")))
expect("symlink to a file in the mount", lambda: os.symlink("m", p("slm")))
expect_eq("opening it follows it inside the mount", b"m", lambda: read_file(p("slm")))
expect("symlink loop can be created", lambda: (os.symlink("loop2", p("loop1")), os.symlink("loop1", p("loop2"))))
expect_errno("opening a symlink loop", errno.ELOOP, lambda: os.open(p("loop1"), os.O_RDONLY))
expect_errno("open(O_NOFOLLOW) of a symlink", errno.ELOOP,
             lambda: os.open(p("slm"), os.O_RDONLY | os.O_NOFOLLOW))
expect("rename a symlink", lambda: os.rename(p("sl"), p("sl2")))
expect_eq("renamed symlink keeps its target", "../some/where", lambda: os.readlink(p("sl2")))
expect("unlink a symlink (not its target)", lambda: os.unlink(p("slm")))
expect_eq("the target stays", b"m", lambda: read_file(p("m")))

# ---- xattrs ----
def libc_getxattr_small(path, name):
    buf = ctypes.create_string_buffer(2)
    r = libc.getxattr(path.encode(), name.encode(), buf, ctypes.c_size_t(2))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


expect("setxattr user.*", lambda: os.setxattr(p("m"), "user.project", b"alpha"))
expect_eq("getxattr user.*", b"alpha", lambda: os.getxattr(p("m"), "user.project"))
expect_eq("listxattr has user.* and user.lzfs.*", True,
          lambda: "user.project" in os.listxattr(p("m")) and "user.lzfs.state" in os.listxattr(p("m")))
expect_errno("setxattr XATTR_CREATE on an existing name", errno.EEXIST,
             lambda: os.setxattr(p("m"), "user.project", b"b", os.XATTR_CREATE))
expect_errno("setxattr XATTR_REPLACE on a missing name", errno.ENODATA,
             lambda: os.setxattr(p("m"), "user.none", b"b", os.XATTR_REPLACE))
expect_errno("getxattr of a missing name", errno.ENODATA, lambda: os.getxattr(p("m"), "user.none"))
expect("removexattr", lambda: os.removexattr(p("m"), "user.project"))
expect_errno("removexattr of a missing name", errno.ENODATA, lambda: os.removexattr(p("m"), "user.project"))
expect_errno("setxattr user.lzfs.state", errno.EPERM, lambda: os.setxattr(p("m"), "user.lzfs.state", b"ingested"))
expect_errno("setxattr user.lzfs.anything", errno.EPERM, lambda: os.setxattr(p("m"), "user.lzfs.new", b"x"))
expect_errno("removexattr user.lzfs.sha256", errno.EPERM, lambda: os.removexattr(p("m"), "user.lzfs.sha256"))
expect_errno("setxattr outside user.* (trusted.x)", (errno.ENOTSUP, errno.EPERM),
             lambda: os.setxattr(p("m"), "trusted.x", b"x"))
expect_eq("user.lzfs.state", b"ingested", lambda: os.getxattr(p("m"), "user.lzfs.state"))
expect_errno("getxattr with a too small buffer", errno.ERANGE,
             lambda: libc_getxattr_small(p("m"), "user.lzfs.state"))



big = os.urandom(3000)
expect("setxattr with a 3000-byte value", lambda: os.setxattr(p("m"), "user.big", big))
expect_eq("and it reads back", big, lambda: os.getxattr(p("m"), "user.big"))
expect("setxattr on a directory", lambda: os.setxattr(p("full"), "user.dir", b"d"))
expect_eq("getxattr on a directory", b"d", lambda: os.getxattr(p("full"), "user.dir"))

expect_errno("lgetxattr user.* of a symlink (none there)", errno.ENODATA,
             lambda: os.getxattr(p("sl2"), "user.x", follow_symlinks=False))
expect_eq("llistxattr of a symlink shows its state", True,
          lambda: "user.lzfs.state" in os.listxattr(p("sl2"), follow_symlinks=False))
expect_errno("lsetxattr user.* on a symlink (as Linux refuses it)", errno.EPERM,
             lambda: os.setxattr(p("sl2"), "user.x", b"x", follow_symlinks=False))

# ---- statfs ----
expect_eq("statfs answers with a block size", True, lambda: os.statvfs(MNT).f_bsize > 0)
expect_eq("statfs reports free space", True, lambda: os.statvfs(MNT).f_bavail > 0)

# ---- refused operations ----
expect_errno("link (hard link)", errno.EPERM, lambda: os.link(p("m"), p("hard")))
expect_errno("mknod S_IFIFO", errno.EPERM, lambda: os.mkfifo(p("fifo")))
expect_errno("mknod S_IFCHR", errno.EPERM, lambda: os.mknod(p("chr"), stat.S_IFCHR | 0o600, os.makedev(1, 3)))
expect_errno("mknod S_IFBLK", errno.EPERM, lambda: os.mknod(p("blk"), stat.S_IFBLK | 0o600, os.makedev(7, 0)))


def bind_socket():
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(p("sock"))
    finally:
        s.close()


expect_errno("bind() of a unix socket (mknod S_IFSOCK)", errno.EPERM, bind_socket)
expect_eq("refused nodes left nothing behind", [],
          lambda: [x for x in ("hard", "fifo", "chr", "blk", "sock") if os.path.lexists(p(x))])

# ---- the reserved .lzfs ----
expect_errno("stat .lzfs", errno.ENOENT, lambda: os.stat(p(".lzfs")))
expect_errno("open .lzfs/catalog.db", errno.ENOENT, lambda: os.open(p(".lzfs", "catalog.db"), os.O_RDONLY))
expect_errno("listdir .lzfs", errno.ENOENT, lambda: os.listdir(p(".lzfs")))
expect_errno("mkdir .lzfs", errno.EPERM, lambda: os.mkdir(p(".lzfs")))
expect_errno("create .lzfs", errno.EPERM, lambda: os.open(p(".lzfs"), os.O_WRONLY | os.O_CREAT, 0o644))
expect_errno("symlink named .lzfs", errno.EPERM, lambda: os.symlink("x", p(".lzfs")))
expect_errno("rename onto .lzfs", errno.EPERM, lambda: os.rename(p("m"), p(".lzfs")))
expect_errno("create .lzfs/x", (errno.ENOENT, errno.EPERM),
             lambda: os.open(p(".lzfs", "x"), os.O_WRONLY | os.O_CREAT, 0o644))
expect_eq("a deeper .lzfs is an ordinary name", b"ok",
          lambda: (os.mkdir(p("full", ".lzfs")), write_file(p("full", ".lzfs", "f"), b"ok"),
                   read_file(p("full", ".lzfs", "f")))[2])

sys.exit(min(fails, 100))
