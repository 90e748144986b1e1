#!/usr/bin/env bash
# A file the rescanner finds again while its first upload still waits for an
# upload slot (walks every second, one slot, S3 slowed down) is sent and
# cataloged once: one catalog version, one 'ingested' event, one PUT.
# (Found by crash_kill9 under SAN=1: three dropped files got two versions.)
. "$(dirname "$0")/lib.sh"
require_fuse "rescanner: a file queued twice"
s3_start
B=$TEST_BUCKET
N=12
lzfs_mount q -o rescan_interval=1,settle_time=0,rescan_workers=1,files_per_task=1 || exit 1
s3_fault '{"latency_ms": 700, "ops": ["PutObject"]}' >/dev/null
mkdir -p "$T_DIR/src"
for i in $(seq 1 $N); do head -c $((1000 + i)) /dev/urandom >"$T_DIR/src/f$i"; done
cp -r "$T_DIR/src" "$SPOOL/dup"
# One slot at 0.7 s a PUT: the last file waits ~8 s, through several walks.
ingested() {
	sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE current = 1 AND state = 2
		AND path LIKE 'dup/%'" 2>/dev/null || echo 0
}
for i in $(seq 1 120); do [ "$(ingested)" = $N ] && break; sleep 0.5; done
sleep 3 # a duplicate still in a queue would be sent by now
s3_fault off >/dev/null
check_eq "all $N files ingested" $N "$(ingested)"
check_eq "one catalog version per file" $N \
	"$(sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE path LIKE 'dup/%'")"
check_eq "one 'ingested' event per file" $N \
	"$(sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM events e JOIN objects o ON o.id = e.obj_id
		WHERE o.path LIKE 'dup/%' AND e.kind = 'ingested'")"
check_eq "one PUT per file" $N "$(grep -cE " PutObject $B/q/dup/f[0-9]+ 200" "$S3_DIR/access.log")"
for i in 1 $N; do
	ingested_ok "f$i is identical in S3" "$MNT/dup/f$i" "q/dup/f$i" "$T_DIR/src/f$i"
done
