#!/usr/bin/env bash
# Scans and scan jobs on a PostgreSQL catalog: `lzfsctl scan` registers
# into the shared catalog, two runs of one scan exclude each other across
# processes (an advisory lock in the database, not a lock file), `lzfsctl
# job start|list` keep jobs in the catalog and a daemon on that catalog
# runs them.
. "$(dirname "$0")/lib.sh"
require_fuse "scan jobs on PostgreSQL"
pg_start "scan jobs on PostgreSQL"
s3_start
B=$TEST_BUCKET
creds=$(make_creds)
ctl() { "$LZFSCTL" -c "$PG_URL" "$@"; }
S3OPT=(--endpoint "$S3_ENDPOINT")

mkdir -p "$T_DIR/src/d" "$T_DIR/src2"
for i in $(seq 1 20); do printf 'file %s\n' "$i" >"$T_DIR/src/d/f$i"; done
out=$(ctl scan "${S3OPT[@]}" --once --name first "$T_DIR/src" "s3://$B/pgscan" 2>&1)
rc=$?
check_eq "lzfsctl scan on a PostgreSQL catalog: exit 0" 0 "$rc"
[ "$rc" = 0 ] || diag "$out"
check_eq "its 20 files are in the shared catalog, ingested" 20 \
	"$(pgq "SELECT count(*) FROM objects WHERE path LIKE 'pgscan/%' AND state = 2 AND source = 'scan:first'")"
check "... and in S3" obj_matches "pgscan/d/f7" "$T_DIR/src/d/f7"
check_eq "lzfsctl find sees them" 20 "$(ctl find pgscan | grep -c .)"
check_eq "no lock file was made next to the URL" "" "$(ls "$T_DIR" | grep -i 'scan-.*lock')"

# Two runs of one scan: a watching run holds the lock until it ends.
"$LZFSCTL" -c "$PG_URL" scan "${S3OPT[@]}" --watch --name held --settle-time 0 "$T_DIR/src2" "s3://$B/held" >"$T_DIR/watch.out" 2>&1 &
wpid=$!
at_exit "kill $wpid 2>/dev/null"
for i in $(seq 1 100); do
	[ "$(pgq "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" -ge 1 ] && break
	sleep 0.1
done
out=$(ctl scan "${S3OPT[@]}" --once --name held "$T_DIR/src2" "s3://$B/held" 2>&1)
rc=$?
check_eq "a second run of the same scan is refused while the first runs" 3 "$rc"
check "... saying why" grep -q "another run of this scan is in progress" <<<"$out"
out=$(ctl scan "${S3OPT[@]}" --once --name other "$T_DIR/src2" "s3://$B/other" 2>&1)
check_eq "another scan runs meanwhile" 0 "$?"
kill -TERM $wpid
wait $wpid
out=$(ctl scan "${S3OPT[@]}" --once --name held "$T_DIR/src2" "s3://$B/held" 2>&1)
rc=$?
check_eq "once the first ended, the scan runs" 0 "$rc"
[ "$rc" = 0 ] || diag "$out"

# Jobs in the catalog, run by a daemon mounted on it.
out=$(ctl job start --name pgjob --once "$T_DIR/src" "s3://$B/jobs/pg" 2>&1)
check_eq "job start on a PostgreSQL catalog: exit 0" 0 "$?"
check_eq "the job is a row of the shared catalog" queued "$(pgq "SELECT state FROM jobs WHERE name = 'pgjob'")"
check "job list shows it" bash -c "'$LZFSCTL' -c '$PG_URL' job list | grep -q '^pgjob *queued'"
lzfs_mount jm -o "catalog=$PG_URL,rescan_interval=60,settle_time=1" || exit 1
for i in $(seq 1 300); do
	[ "$(pgq "SELECT state FROM jobs WHERE name = 'pgjob'")" = done ] && break
	sleep 0.1
done
check_eq "the daemon ran the job to the end" done "$(pgq "SELECT state FROM jobs WHERE name = 'pgjob'")"
check_eq "its files are ingested with the job as their source" 20 \
	"$(pgq "SELECT count(*) FROM objects WHERE path LIKE 'jobs/pg/%' AND state = 2 AND source = 'scan:pgjob'")"
check "... and in S3" obj_matches "jobs/pg/d/f3" "$T_DIR/src/d/f3"
check "lzfsctl check passes" ctl check
if grep -q "lzfstest@" "$LZFS_LOG" "$T_DIR/watch.out"; then not_ok "the catalog password is never logged"; else ok "the catalog password is never logged"; fi
exit 0
