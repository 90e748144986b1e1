#!/usr/bin/env bash
# S3 misbehaving during ingest. Phase 1: about 10% of requests get a 500, a
# 503, a connection reset or a slow answer (the kind rotates every 1.5 s)
# while writers write. Phase 2: S3 goes away entirely (60 s with TORTURE=1,
# else 8 s) in the middle of writes. In both, every close() returns 0,
# nothing is lost, everything drains once S3 behaves, retries show in the
# log and the catalog, and no multipart upload stays open.
. "$(dirname "$0")/lib.sh"
require_fuse "s3 chaos"
HELP=$LZFS_ROOT/tests/e2e/helpers
s3_start
SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
if [ -n "${TORTURE:-}" ]; then DOWN=60 WRITERS=20 SECS=120; else DOWN=8 WRITERS=10 SECS=15; fi
diag "seed $SEED; faults for $SECS s; outage ${DOWN} s; $WRITERS writers"
lzfs_mount c -o "part_size=5M,retry_budget=6,retry_interval=1,connect_timeout=2" || exit 1

pending_rows() {
	sqlite3 -readonly "$CATALOG" \
		"SELECT count(*) FROM objects WHERE current = 1 AND state IN (0, 1)" 2>/dev/null || echo '?'
}
# drain SECS: waits until no row is pending or uploading; prints the seconds taken.
drain() {
	local start=$SECONDS left=?
	while [ $((SECONDS - start)) -lt "$1" ]; do
		left=$(pending_rows)
		[ "$left" = 0 ] && break
		sleep 0.5
	done
	echo $((SECONDS - start))
	[ "$left" = 0 ]
}
# verify PHASE DIR LOG: runs verify.py on the objects under c/DIR.
verify() {
	local phase=$1 dir=$2 log=$3 copy=$T_DIR/copy.$2 out json
	awss3 s3 sync --quiet "s3://$TEST_BUCKET/c/$dir" "$copy" >/dev/null 2>&1
	mkdir -p "$copy"
	out=$(python3 "$HELP/verify.py" "$CATALOG" "$SPOOL" "$copy" "$dir" "$log")
	json=$(tail -1 <<<"$out")
	grep '^#' <<<"$out" | head -20
	diag "$phase: $json"
	local closed closed_ok problems cut fails
	closed=$(jq .closed <<<"$json") closed_ok=$(jq .closed_ok <<<"$json")
	problems=$(jq .problems <<<"$json") cut=$(jq .cut <<<"$json")
	fails=$(grep -c '^fail' "$log")
	check_eq "$phase: every close() returned 0 ($closed files)" 0 "$fails"
	check_eq "$phase: every file ingested once, identical in S3 (lost, problems, cut off)" "0 0 0" \
		"$((closed - closed_ok)) $problems $cut"
	LOST=$((LOST + closed - closed_ok))
	CLOSED=$((CLOSED + closed))
}
# open_uploads PHASE: no multipart upload left open, except (reported as
# known gaps) uploads whose abort failed while S3 was unreachable, and
# uploads whose CreateMultipartUpload answer was lost (lzfs never learnt
# their id).
open_uploads() {
	local n ids id key abort_failed=0 create_lost=0 other=0 i
	# Aborts that failed during the faults are retried by the landing zone
	# (upload journal) and uploads left by a lost create answer are found by
	# the S3 client: give the background a moment.
	for i in $(seq 1 60); do
		n=$("$S3SERVER" uploads "$S3_DIR" | jq 'length')
		[ "$n" = 0 ] && break
		sleep 1
	done
	ORPHANS=$((ORPHANS + n))
	if [ "$n" = 0 ]; then ok "$1: no multipart upload left open"; return; fi
	ids=$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[] | .upload_id + " " + .key')
	while read -r id key; do
		if grep -q "upload id $id left behind" "$LZFS_LOG" ||
			grep -q "AbortMultipartUpload \"$key\" failed" "$LZFS_LOG"; then
			abort_failed=$((abort_failed + 1))
		elif ! grep -q "$id" "$LZFS_LOG" &&
			grep -q "CreateMultipartUpload $TEST_BUCKET/$key reset" "$S3_DIR/access.log"; then
			create_lost=$((create_lost + 1))
		else
			other=$((other + 1))
			diag "open upload $id for $key: unexplained"
		fi
	done <<<"$ids"
	ABORT_FAILED=$((ABORT_FAILED + abort_failed)) CREATE_LOST=$((CREATE_LOST + create_lost))
	if [ "$abort_failed" = 0 ] && [ "$other" = 0 ]; then
		# A create whose every answer was lost while S3 went away: its id
		# was never seen, and the stray check (which lists the key) could
		# not reach S3 either. The next start's sweep aborts it.
		skip "$1: no multipart upload left open" \
			"known gap: $create_lost upload(s) whose CreateMultipartUpload answers were all lost; aborted by the next start's sweep"
	else
		not_ok "$1: no multipart upload left open ($n open: $abort_failed after a failed abort, $create_lost after a lost create answer, $other unexplained)"
	fi
}
LOST=0 CLOSED=0 ORPHANS=0 ABORT_FAILED=0 CREATE_LOST=0

# ---- phase 1: 10% faults of every kind ----
specs=(
	"{\"error_rate\":0.1,\"error_status\":500,\"seed\":$SEED}"
	"{\"error_rate\":0.1,\"error_status\":503,\"seed\":$((SEED + 1))}"
	"{\"reset_rate\":0.1,\"seed\":$((SEED + 2))}"
	"{\"latency_ms\":300,\"slow_bps\":2000000,\"count\":6}"
)
mkdir -p "$MNT/faults"
python3 "$HELP/writers.py" "$MNT/faults" "$T_DIR/faults.log" $WRITERS $SEED --seconds $SECS --max-mib 12 &
wpid=$!
i=0
while kill -0 $wpid 2>/dev/null; do
	s3_fault "${specs[i % 4]}" >/dev/null
	i=$((i + 1))
	sleep 1.5
done
wait $wpid
s3_fault off >/dev/null
stats=$("$S3SERVER" stats "$S3_DIR")
faults=$(jq .total_faults <<<"$stats")
requests=$(jq .total_requests <<<"$stats")
diag "phase 1: $faults faults in $requests requests: $(jq -c .faults <<<"$stats")"
check "phase 1: faults were injected ($faults)" test "$faults" -gt 0
secs=$(drain 120) && ok "phase 1: everything drained ($secs s after the faults stopped)" ||
	not_ok "phase 1: everything drained ($(pending_rows) rows left)"
verify "phase 1" faults "$T_DIR/faults.log"
retries=$(grep -c "retrying in" "$LZFS_LOG")
check "phase 1: retries are logged ($retries lines)" test "$retries" -gt 0
open_uploads "phase 1"
FAULTS=$faults
"$S3SERVER" stats "$S3_DIR" >/dev/null && curl -s -X DELETE "$S3_ENDPOINT/__lzfs__/stats" >/dev/null

# ---- phase 2: S3 away for $DOWN s in the middle of writes ----
mkdir -p "$MNT/outage"
python3 "$HELP/writers.py" "$MNT/outage" "$T_DIR/outage.log" $WRITERS $((SEED + 7)) --seconds $((DOWN + 3)) --max-mib 12 &
wpid=$!
sleep 1
s3_fault "{\"down_secs\":$DOWN}" >/dev/null
down_at=$SECONDS
wait $wpid
diag "phase 2: writers done $((SECONDS - down_at)) s after S3 went away"
parked=$(grep -c "not in S3 yet" "$LZFS_LOG")
diag "phase 2: $parked close()s returned with the file pending"
while [ $((SECONDS - down_at)) -lt "$DOWN" ]; do sleep 1; done
secs=$(drain $((DOWN * 3 + 60))) && ok "phase 2: everything drained ($secs s after S3 came back)" ||
	not_ok "phase 2: everything drained ($(pending_rows) rows left)"
verify "phase 2" outage "$T_DIR/outage.log"
check "phase 2: pending files are reported in the log" test "$parked" -gt 0
# Back to pending ("restart" from uploading, "retry" from failed) with the S3 error as detail.
reasons=$("$LZFSCTL" -c "$CATALOG" --json events 2>/dev/null |
	jq '[.[] | select((.kind == "restart" or .kind == "retry") and (.detail // "") != "")] | length')
check "phase 2: the catalog's events record why files went back to pending ($reasons)" test "${reasons:-0}" -gt 0
open_uploads "phase 2"
diag "RESULT chaos: seed $SEED, faults injected $FAULTS (+ ${DOWN} s outage), files closed $CLOSED, lost $LOST, orphan uploads $ORPHANS ($ABORT_FAILED after a failed abort, $CREATE_LOST after a lost create answer)"
