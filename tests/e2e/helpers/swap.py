#!/usr/bin/env python3
"""Out-of-band changes to the spool while the kernel still caches the old
entry (entry/attr timeout 1 s), then operations through the mount on it.

  swap.py MNT SPOOL NAME KIND TARGET

NAME is a regular file created through the mount (d/NAME for KIND=dirlink).
It is looked up through the mount, replaced in the spool by KIND (fifo,
socket, chr, symlink to TARGET, a new regular file for
none (the control), or, for dirlink, its directory replaced by
a symlink to TARGET's directory), and at once opened, read, written,
truncated, chmod'ed, xattr'ed and utime'd through the mount (never
following a symlink on the client side), each in a
child process given 5 s. Prints one line per operation: "OP RESULT" where
RESULT is ok:BYTES-READ, an errno name, or HUNG.
"""
import errno
import os
import socket
import stat
import sys
import time

mnt, spool, name, kind, target = sys.argv[1:6]
path = os.path.join(mnt, "d", name) if kind == "dirlink" else os.path.join(mnt, name)

os.stat(path)  # the kernel now caches a regular file (and its directory)
# Operations go by name from a descriptor of the directory opened now: the
# client never resolves a symlink swapped in for the directory itself.
dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
base = os.path.basename(path)
if kind == "dirlink":
    os.rename(os.path.join(spool, "d"), os.path.join(spool, "d.real"))
    os.symlink(os.path.dirname(target), os.path.join(spool, "d"))
else:
    sp = os.path.join(spool, name)
    os.unlink(sp)
    if kind == "fifo":
        os.mkfifo(sp)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(sp)
    elif kind == "chr":
        os.mknod(sp, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    elif kind == "symlink":
        os.symlink(target, sp)
    elif kind == "none":  # the control: the file is still there
        open(sp, "w").write("data of %s\n" % name)


# Every operation refuses to follow a symlink on the client side (O_NOFOLLOW,
# follow_symlinks=False): once the kernel sees the new entry it fails with
# ELOOP there, so anything that reaches outside the spool was done by the
# daemon.
NOFOLLOW = os.O_NOFOLLOW


def op_read():
    fd = os.open(base, os.O_RDONLY | NOFOLLOW, dir_fd=dfd)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def op_write():
    fd = os.open(base, os.O_WRONLY | NOFOLLOW, dir_fd=dfd)
    try:
        os.write(fd, b"overwritten")
    finally:
        os.close(fd)
    return b""


def op_ftruncate():
    fd = os.open(base, os.O_WRONLY | NOFOLLOW, dir_fd=dfd)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return b""


def op_fchmod():
    fd = os.open(base, os.O_RDONLY | NOFOLLOW, dir_fd=dfd)
    try:
        os.fchmod(fd, 0o666)
    finally:
        os.close(fd)
    return b""


def on_fd(fn):
    fd = os.open(base, os.O_RDONLY | NOFOLLOW, dir_fd=dfd)
    try:
        return fn(fd)
    finally:
        os.close(fd)


ops = [
    ("read", op_read),
    ("write", op_write),
    ("truncate", op_ftruncate),
    ("chmod", op_fchmod),
    ("setxattr", lambda: on_fd(lambda fd: os.setxattr(fd, "user.evil", b"1") or b"")),
    ("getxattr", lambda: on_fd(lambda fd: os.getxattr(fd, "user.o"))),
    ("utime", lambda: os.utime(base, ns=(1, 1), dir_fd=dfd, follow_symlinks=False) or b""),
]
for opname, fn in ops:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # A child stuck in the daemon must not hold the caller's stdout.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)
        os.dup2(null, 2)
        for fd in range(3, 4096):
            if fd not in (w, dfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            out = fn()
            res = "ok:" + out.decode("latin-1").replace("\n", " ")[:60]
        except OSError as e:
            res = errno.errorcode.get(e.errno, str(e.errno))
        os.write(w, res.encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 5
    reaped = False
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            reaped = True
            break
        time.sleep(0.02)
    if reaped:
        print(opname, os.read(r, 200).decode() or "?", flush=True)
    else:
        # Where is it waiting? In a FUSE request the daemon does not answer
        # (HUNG), or in the kernel's own FIFO open once the kernel sees the
        # FIFO (POSIX semantics, not the daemon's doing).
        try:
            wchan = open("/proc/%d/wchan" % pid).read()
        except OSError:
            wchan = "?"
        # A child stuck in a FUSE request cannot die before the request
        # ends: do not wait for it.
        os.kill(pid, 9)
        if "fifo" in wchan or "wait_for_partner" in wchan or "pipe" in wchan:
            print(opname, "kernel-fifo-wait", flush=True)
        else:
            print(opname, "HUNG", wchan, flush=True)
    os.close(r)
