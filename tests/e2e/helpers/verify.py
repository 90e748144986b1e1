#!/usr/bin/env python3
"""Checks what survived a crash or a fault run.

  verify.py CATALOG SPOOL S3COPY ROOT LOG...

ROOT is the directory (relative to the mount) the writers wrote into; LOG
are writers.py logs ("ok REL SIZE SHA256" lines, REL relative to ROOT).
S3COPY is a local copy of the objects under ROOT (aws s3 sync). Prints
"# ..." diagnostics and one JSON object on the last line with the counts:

  closed          files whose close() returned 0
  closed_ok       of those: one catalog row, ingested, right sha256 and size,
                  S3 copy identical, exactly one "ingested" event
  cut             spool files without an ok line (cut off mid-write)
  cut_ingested    of those: ingested, S3 copy == spool file == row's sha256
  cut_reported    of those: failed or pending with a reason
  cut_unregistered of those: no catalog row (left for the rescanner)
  unregistered_objects  S3 objects under ROOT without a catalog row
  problems        everything that is wrong (lost data, double rows, ...)
"""
import hashlib
import json
import os
import sqlite3
import sys

STATES = ["pending", "uploading", "ingested", "failed", "deleted"]


def sha_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    catalog, spool, s3copy, root = sys.argv[1:5]
    logs = sys.argv[5:]
    closed = {}
    for log in logs:
        if not os.path.exists(log):
            continue
        for line in open(log):
            f = line.split()
            if f and f[0] == "ok":
                closed[f[1]] = (int(f[2]), f[3])
    db = sqlite3.connect("file:%s?mode=ro" % catalog, uri=True)
    c = {k: 0 for k in ("closed", "closed_ok", "cut", "cut_ingested", "cut_reported",
                        "cut_unregistered", "unregistered_objects")}
    problems = []

    def rows(path):
        return db.execute("SELECT id, state, sha256, size, current, last_error FROM objects "
                          "WHERE path = ? ORDER BY version", (path,)).fetchall()

    def ingested_events(oid):
        return db.execute("SELECT count(*) FROM events WHERE obj_id = ? AND kind = 'ingested'",
                          (oid,)).fetchone()[0]

    for rel, (size, sha) in sorted(closed.items()):
        c["closed"] += 1
        path = root + "/" + rel
        r = rows(path)
        s3 = os.path.join(s3copy, rel)
        if len(r) != 1:
            problems.append("%s: close() returned 0 but %d catalog rows" % (path, len(r)))
            continue
        oid, state, rsha, rsize, cur, err = r[0]
        if state != 2 or rsha != sha or rsize != size or cur != 1:
            problems.append("%s: close() returned 0 but row is %s sha %s size %d (want %s %d)%s"
                            % (path, STATES[state], rsha or "-", rsize, sha, size,
                               ", error: " + err if err else ""))
            continue
        if not os.path.exists(s3) or sha_file(s3) != sha:
            problems.append("%s: close() returned 0 but the S3 object is %s" %
                            (path, "missing" if not os.path.exists(s3) else "different"))
            continue
        n = ingested_events(oid)
        if n != 1:
            problems.append("%s: %d 'ingested' events (want exactly 1)" % (path, n))
            continue
        c["closed_ok"] += 1

    sroot = os.path.join(spool, root)
    for dirpath, dirs, files in os.walk(sroot):
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, sroot)
            if rel in closed:
                continue
            c["cut"] += 1
            path = root + "/" + rel
            r = [x for x in rows(path) if x[4] == 1]
            if not r:
                # Never registered (cut off before the daemon saw it): still
                # in the spool for the rescanner, which crash_kill9 waits for
                # and requires to have taken every such file.
                c["cut_unregistered"] += 1
                continue
            oid, state, rsha, rsize, cur, err = r[0]
            if state == 2:
                s3 = os.path.join(s3copy, rel)
                ssha = sha_file(full)
                if rsha == ssha and os.path.exists(s3) and sha_file(s3) == ssha:
                    c["cut_ingested"] += 1
                else:
                    problems.append("%s: cut off, ingested, but S3/spool/row differ" % path)
            elif state in (0, 3) and err:
                c["cut_reported"] += 1
                print("# cut off %s: %s (%s)" % (path, STATES[state], err))
            else:
                problems.append("%s: cut off and left %s without a reason (%s)" %
                                (path, STATES[state], err))
    for dirpath, dirs, files in os.walk(s3copy):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), s3copy)
            if not rows(root + "/" + rel):
                c["unregistered_objects"] += 1
    for p in problems:
        print("# PROBLEM " + p)
    c["problems"] = len(problems)
    print(json.dumps(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
