#!/usr/bin/env bash
# lzfsctl scan in the foreground: --watch (inotify) and --interval pick up
# new files until interrupted; one run of a scan at a time; a scan killed
# with kill -9 in the middle of multipart uploads is recovered by its next
# run (the uploads aborted, the files sent again, once).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
s3_start
export AWS_ENDPOINT_URL=$S3_ENDPOINT
CAT=$T_DIR/catalog.db
B=$TEST_BUCKET
M=$((1024 * 1024))
ctl() { "$LZFSCTL" -c "$CAT" "$@"; }
state_of() { ctl --json stat "$1" 2>/dev/null | jq -r .object.state; }
wait_ingested() {
	local deadline=$((SECONDS + $1))
	while [ "$(state_of "$2")" != ingested ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}

# ---- --watch
mkdir -p "$T_DIR/w"
printf 'before\n' >"$T_DIR/w/before.txt"
"$LZFSCTL" -c "$CAT" scan --watch --settle-time 1 "$T_DIR/w" "s3://$B/w" >"$T_DIR/watch.out" 2>&1 &
wpid=$!
if wait_ingested 15 w/before.txt; then ok "--watch: the files already there are ingested"; else not_ok "--watch: the files already there are ingested"; fi
mkdir -p "$T_DIR/w/new dir"
printf 'after\n' >"$T_DIR/w/new dir/after.txt"
if wait_ingested 15 "w/new dir/after.txt"; then ok "--watch: a file in a new directory is ingested"; else not_ok "--watch: a file in a new directory is ingested"; fi
out=$(ctl scan --once "$T_DIR/w" "s3://$B/w" 2>&1)
rc=$?
check_eq "a second run of the same scan is refused while the first runs" 3 "$rc"
check "... saying why" grep -q "another run of this scan is in progress" <<<"$out"
kill -INT $wpid
wait $wpid
rc=$?
check_eq "--watch ends with Ctrl-C, exit 0" 0 "$rc"
check "--watch prints its summary" grep -q "2 uploaded" "$T_DIR/watch.out"

# ---- --interval
mkdir -p "$T_DIR/i"
printf '1\n' >"$T_DIR/i/one"
"$LZFSCTL" -c "$CAT" scan --interval 1 "$T_DIR/i" "s3://$B/i" >"$T_DIR/interval.out" 2>&1 &
ipid=$!
wait_ingested 15 i/one
printf '2\n' >"$T_DIR/i/two"
if wait_ingested 15 i/two; then ok "--interval: a later pass takes the new file"; else not_ok "--interval: a later pass takes the new file"; fi
kill -TERM $ipid
wait $ipid
rc=$?
check_eq "--interval ends with SIGTERM between passes, exit 0" 0 "$rc"
check "--interval printed one summary per pass" test "$(grep -c 'files seen' "$T_DIR/interval.out")" -ge 2

# ---- kill -9 in the middle of multipart uploads, then the next run
mkdir -p "$T_DIR/k"
for i in 1 2 3 4; do head -c $((12 * M + i)) /dev/urandom >"$T_DIR/k/big$i"; done
for i in $(seq 1 10); do head -c 10000 /dev/urandom >"$T_DIR/k/small$i"; done
s3_fault '{"latency_ms": 500, "ops": ["UploadPart"]}' >/dev/null
"$LZFSCTL" -c "$CAT" scan --name crashy --workers 4 --part-size 5M "$T_DIR/k" "s3://$B/k" >/dev/null 2>&1 &
kpid=$!
deadline=$((SECONDS + 30))
while [ "$("$S3SERVER" uploads "$S3_DIR" | jq length)" -lt 2 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
kill -9 $kpid
wait $kpid 2>/dev/null
open=$("$S3SERVER" uploads "$S3_DIR" | jq length)
rows=$(ctl --json find k | jq '[.[] | select(.state == "pending" or .state == "uploading")] | length')
diag "killed with $open multipart upload(s) open, $rows row(s) unfinished"
check "the kill left uploads open and rows unfinished" test "$open" -ge 1 -a "$rows" -ge 1
s3_fault off >/dev/null
out=$(ctl scan --name crashy --part-size 5M "$T_DIR/k" "s3://$B/k" 2>&1)
rc=$?
check_eq "the next run: exit 0" 0 "$rc"
check "it says it recovered the interrupted files" grep -q "left by an interrupted run will be uploaded again" <<<"$out"
check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
check_eq "all 14 files ingested" 14 "$(ctl --json find --state ingested k | jq length)"
bad=0
for f in "$T_DIR"/k/*; do s3same "k/$(basename "$f")" "$f" || bad=$((bad + 1)); done
check_eq "every object is its file" 0 "$bad"
