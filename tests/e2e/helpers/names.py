#!/usr/bin/env python3
"""Hostile file names through an lzfs mount, one TAP line per check.

  names.py MNT SPOOL CATALOG ENDPOINT BUCKET PREFIX

Each name is created, written, closed, listed, read back and checked in the
catalog and in S3 (fetched by raw key bytes with s3get.py). Names S3 cannot
store (keys over 1024 bytes, segments the test S3 refuses) must end
`failed` with a reason and stay intact in the spool, never lost.
Exits with the number of failures.
"""
import hashlib
import os
import sqlite3
import subprocess
import sys

MNT, SPOOL, CATALOG, ENDPOINT, BUCKET, PREFIX = [a.encode() for a in sys.argv[1:7]]
HERE = os.path.dirname(os.path.abspath(__file__))
n = fails = 0
states = ["pending", "uploading", "ingested", "failed", "deleted"]


def ok(desc):
    global n
    n += 1
    print("ok %d - %s" % (n, desc), flush=True)


def not_ok(desc, why):
    global n, fails
    n += 1
    fails += 1
    print("not ok %d - %s" % (n, desc))
    print("# %s" % why, flush=True)


def row(rel):
    db = sqlite3.connect("file:%s?mode=ro" % CATALOG.decode(), uri=True)
    db.text_factory = bytes
    r = db.execute("SELECT state, sha256, last_error FROM objects WHERE CAST(path AS BLOB) = ? "
                   "AND current = 1", (rel,)).fetchone()
    db.close()
    return r


def s3_bytes(rel):
    out = os.path.join(os.environ["T_DIR"], "s3get.out")
    key = PREFIX + b"/" + rel
    rc = subprocess.call([sys.executable, os.path.join(HERE, "s3get.py"), ENDPOINT.decode(),
                          BUCKET.decode(), key.hex(), out])
    if rc != 0:
        return None
    with open(out, "rb") as f:
        return f.read()


def check_name(label, rel, data, may_fail=False):
    """rel: path relative to the mount, bytes."""
    path = os.path.join(MNT, rel)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 1048576])
        os.close(fd)
    except OSError as e:
        return not_ok("%s: create, write, close" % label, "failed: %s" % e)
    parent, base = os.path.split(path)
    if base not in os.listdir(parent):
        return not_ok("%s: listed by readdir" % label, "missing from listdir")
    with open(path, "rb") as f:
        if f.read() != data:
            return not_ok("%s: reads back" % label, "content differs")
    r = row(rel)
    if r is None:
        return not_ok("%s: catalog row" % label, "no current row")
    state, sha, err = states[r[0]], r[1].decode(), (r[2] or b"").decode("utf-8", "replace")
    want = hashlib.sha256(data).hexdigest()
    if state == "ingested":
        got = s3_bytes(rel)
        if sha == want and got == data:
            return ok("%s: ingested, S3 object identical" % label)
        return not_ok("%s: ingested, S3 object identical" % label,
                      "sha %s want %s, S3 %s" % (sha, want, "missing" if got is None else "differs"))
    if may_fail and state == "failed" and err:
        with open(os.path.join(SPOOL, rel), "rb") as f:
            intact = f.read() == data
        if intact:
            return ok("%s: S3 cannot store it: failed (%s), kept intact in the spool" % (label, err))
        return not_ok("%s: kept intact in the spool" % label, "spool copy differs")
    not_ok("%s: ingested%s" % (label, " or failed with a reason" if may_fail else ""),
           "state %s, error %s" % (state, err))


names = [
    ("newline", b"new\nline"),
    ("carriage return", b"cr\rhere"),
    ("tab", b"tab\there"),
    ("backslash", b"back\\slash\\"),
    ("control bytes \\x01 \\x1b \\x7f", b"ctl\x01\x1b\x7f"),
    ("UTF-8 emoji and combining marks", "e\u0301t\u00e9 \U0001F600".encode()),
    ("spaces only", b"   "),
    ("leading dash", b"-rf"),
    ("dots", b"..."),
    ("percent and query characters", b"%2F?a=b&c#d+e;f"),
    ("quotes and brackets", b"\"'<>[]{}|`$"),
    ("long name (200 bytes)", b"L" * 200),
]
for label, name in names:
    check_name(label, name, os.urandom(1000 + len(name)))

# S3 keys are UTF-8: a name that is not cannot be stored under its own key.
# It must be `failed` with a reason and kept intact, not lost or retried
# forever.
for label, name in [("invalid UTF-8 \\xff\\xfe", b"bad\xff\xfeutf8"),
                    ("lone continuation byte \\x80", b"\x80lone"),
                    ("overlong UTF-8 \\xc0\\xaf", b"over\xc0\xaflong")]:
    check_name(label, name, os.urandom(1000 + len(name)), may_fail=True)

# A name the kernel allows but the test S3 cannot store as a key segment.
check_name("long name (255 bytes)", b"M" * 255, os.urandom(777), may_fail=True)
# A multipart upload under an odd name.
check_name("multipart object named with a newline", b"big\nfile", os.urandom(6 * 1048576 + 5))

# Deep trees: 60 levels (a 240-byte key) and 400 levels (past S3's 1024).
deep = b"/".join([b"dd%d" % (i % 10) for i in range(60)])
os.makedirs(os.path.join(MNT, deep))
check_name("60 directories deep", deep + b"/leaf", os.urandom(500))
deeper = b"/".join([b"d%d" % (i % 10) for i in range(400)])
os.makedirs(os.path.join(MNT, deeper))
check_name("400 directories deep (key over 1024 bytes)", deeper + b"/leaf", os.urandom(500),
           may_fail=True)

# Rename between hostile names, then unlink: the object follows, then goes.
src, dst = b"new\nline", "renamed\t\\ \u00e9".encode()
try:
    data = open(os.path.join(MNT, src), "rb").read()
    os.rename(os.path.join(MNT, src), os.path.join(MNT, dst))
    if s3_bytes(dst) == data and s3_bytes(src) is None and states[row(dst)[0]] == "ingested":
        ok("rename between hostile names moves the object")
    else:
        not_ok("rename between hostile names moves the object", "S3 or catalog not moved")
    os.unlink(os.path.join(MNT, dst))
    if s3_bytes(dst) is None and row(dst) is None:
        ok("unlink of a hostile name deletes the object")
    else:
        not_ok("unlink of a hostile name deletes the object", "object or row left")
except OSError as e:
    not_ok("rename and unlink of hostile names", str(e))

# Symlink targets: any bytes but NUL, up to 4095. Each symlink reads back
# as it was made and ends ingested (the object in S3) or failed with a
# reason, never pending for ever without one.
import time
targets = [
    ("plain target", b"../some/where"),
    ("target with a newline", b"bad\ntarget"),
    ("non-ASCII UTF-8 target", "caf\u00e9/\u00fcn\u00ef".encode()),
    ("invalid UTF-8 target", b"x\xff\xfe"),
    ("3000-byte target", b"t" * 3000),
    ("4095-byte target", (b"d/" * 2048)[:4095]),
]
links = []
for i, (label, target) in enumerate(targets):
    link = b"link%d" % i
    try:
        os.symlink(target, os.path.join(MNT, link))
        if os.readlink(os.path.join(MNT, link)) != target:
            not_ok("%s: reads back" % label, "readlink differs")
            continue
        links.append((label, link))
    except OSError as e:
        not_ok("%s: symlink" % label, str(e))
deadline = time.monotonic() + 30
for label, link in links:
    while True:
        r = row(link)
        st = states[r[0]] if r else None
        if st in ("ingested", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    err = (r[2] or b"").decode("utf-8", "replace") if r else ""
    if st == "ingested" and s3_bytes(link) is not None:
        ok("%s: ingested (object in S3)" % label)
    elif st == "failed" and err:
        ok("%s: failed with a reason (%s)" % (label, err))
    else:
        not_ok("%s: ingested or failed with a reason" % label, "state %s, error %r" % (st, err))

# The remedy for a name S3 refused: rename it through the mount. The file
# is then ingested under the new name.
try:
    data = open(os.path.join(MNT, b"bad\xff\xfeutf8"), "rb").read()
    os.rename(os.path.join(MNT, b"bad\xff\xfeutf8"), os.path.join(MNT, b"fixed-name"))
    import time
    for i in range(60):
        r = row(b"fixed-name")
        if r and states[r[0]] == "ingested":
            break
        time.sleep(0.5)
    if r and states[r[0]] == "ingested" and s3_bytes(b"fixed-name") == data:
        ok("a refused name renamed to a valid one is ingested")
    else:
        not_ok("a refused name renamed to a valid one is ingested",
               "state %s" % (states[r[0]] if r else "no row"))
except OSError as e:
    not_ok("a refused name renamed to a valid one is ingested", str(e))

sys.exit(min(fails, 100))
