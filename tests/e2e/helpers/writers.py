#!/usr/bin/env python3
"""Concurrent writers for crash and fault tests.

  writers.py DIR LOG NWRITERS SEED [--files N] [--seconds S] [--max-mib M] [--small]

Writer i writes DIR/wI/fJ (J = 0, 1, ...) sequentially in chunks, with
content and sizes drawn from SEED, and after each close() that returned 0
appends "ok REL SIZE SHA256" to LOG (fsync'ed, so a line means close()
really returned 0 before the crash). A failure appends "fail REL STAGE ERRNO"
and ends that writer: once the daemon is gone every call fails. Without
--files a writer goes on until it fails or, with --seconds, starts no new
file after S seconds. Exit status 0.
"""
import argparse
import hashlib
import os
import random
import sys
import time

MiB = 1024 * 1024


def size_for(rng, max_mib, small):
    r = rng.random()
    if small or r < 0.5:
        return rng.randrange(0, 256 * 1024)            # one PUT
    if r < 0.8:
        return rng.randrange(256 * 1024, 5 * MiB)      # one PUT, larger
    return rng.randrange(5 * MiB, max_mib * MiB + 1)   # multipart (part_size=5M)


def log_line(logfd, line):
    os.write(logfd, (line + "\n").encode())
    os.fsync(logfd)


def writer(i, args):
    rng = random.Random(args.seed * 1000003 + i)
    logfd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    d = os.path.join(args.dir, "w%d" % i)
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        log_line(logfd, "fail w%d mkdir %d" % (i, e.errno))
        return
    j = 0
    while args.files is None or j < args.files:
        if args.seconds is not None and time.monotonic() > args.deadline:
            break
        rel = "w%d/f%d" % (i, j)
        size = size_for(rng, args.max_mib, args.small)
        data = rng.randbytes(size)
        stage = "open"
        try:
            fd = os.open(os.path.join(args.dir, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            stage = "write"
            off = 0
            while off < size:
                n = min(size - off, rng.choice((4096, 65536, 131072, 262144)))
                w = os.write(fd, data[off:off + n])
                off += w
            stage = "close"
            os.close(fd)
        except OSError as e:
            log_line(logfd, "fail %s %s %d" % (rel, stage, e.errno))
            return
        log_line(logfd, "ok %s %d %s" % (rel, size, hashlib.sha256(data).hexdigest()))
        j += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("log")
    p.add_argument("n", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("--files", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--max-mib", type=int, default=16)
    p.add_argument("--small", action="store_true")
    args = p.parse_args()
    args.deadline = time.monotonic() + (args.seconds or 0)
    pids = []
    for i in range(args.n):
        pid = os.fork()
        if pid == 0:
            try:
                writer(i, args)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
