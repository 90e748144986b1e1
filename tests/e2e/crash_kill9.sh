#!/usr/bin/env bash
# Crash: kill -9 of the daemon at a random moment while 20 writers write,
# then restart on the same landing directory. Every file whose close()
# returned 0 must be in S3, byte-identical, ingested exactly once; files cut
# off mid-write are complete from the spool or reported failed/pending with
# a reason (or, without a catalog row, still in the spool for the rescanner);
# no multipart upload stays open.
#   TORTURE=1: 20 rounds (else 3). CRASH_SEED=N replays one run.
. "$(dirname "$0")/lib.sh"
require_fuse "crash kill -9"
HELP=$LZFS_ROOT/tests/e2e/helpers
s3_start
ROUNDS=${CRASH_ROUNDS:-$([ -n "${TORTURE:-}" ] && echo 20 || echo 3)}
WRITERS=20
SEED=${CRASH_SEED:-$(( $(date +%s) % 100000 ))}
diag "seed $SEED ($ROUNDS rounds, $WRITERS writers; rerun with CRASH_SEED=$SEED)"
RANDOM=$SEED
OPTS="part_size=5M,retry_interval=1,retry_budget=10,drain_timeout=5"

pending_rows() {
	sqlite3 -readonly "$CATALOG" \
		"SELECT count(*) FROM objects WHERE current = 1 AND state IN (0, 1)" 2>/dev/null || echo '?'
}

lzfs_mount crash -o "$OPTS" || exit 1
total_closed=0 total_cut=0 total_lost=0 total_orphans=0 rounds_ok=0 total_unreg=0 crashes=0
for round in $(seq 1 "$ROUNDS"); do
	dir=r$round
	mkdir -p "$MNT/$dir"
	log=$T_DIR/writers.$round.log
	wseed=$((SEED * 100 + round))
	python3 "$HELP/writers.py" "$MNT/$dir" "$log" $WRITERS $wseed --max-mib 16 &
	wpid=$!
	delay_ms=$((500 + RANDOM % 4000))
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	kill -9 "$LZFS_PID"
	wait "$LZFS_PID" 2>/dev/null
	crashes=$((crashes + 1))
	closed_before=$(grep -c '^ok' "$log" 2>/dev/null || echo 0)
	diag "round $round: kill -9 after ${delay_ms} ms, $closed_before files closed"
	for i in $(seq 1 300); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
	kill -0 $wpid 2>/dev/null && { not_ok "round $round: writers exit after the crash"; kill -9 $wpid; }
	wait $wpid 2>/dev/null
	fusermount3 -uz "$MNT"
	lzfs_mount crash -o "$OPTS" || { not_ok "round $round: restart"; break; }
	if [ $((round % 3)) = 0 ]; then
		# A second crash during recovery: recovery itself must be restartable.
		ms=$((100 + RANDOM % 900))
		sleep "0.$(printf '%03d' $ms)"
		kill -9 "$LZFS_PID"
		wait "$LZFS_PID" 2>/dev/null
		fusermount3 -uz "$MNT"
		diag "round $round: second kill -9 ${ms} ms into recovery"
		crashes=$((crashes + 1))
		lzfs_mount crash -o "$OPTS" || { not_ok "round $round: second restart"; break; }
	fi
	# Recovery: wait for the catalog's pending/uploading rows to drain.
	left=?
	for i in $(seq 1 120); do
		left=$(pending_rows)
		[ "$left" = 0 ] && break
		sleep 0.5
	done
	[ "$left" = 0 ] || diag "round $round: $left rows still pending/uploading after 60 s"
	# Quiesce before the snapshot: the rescanner ingests cut-off files at
	# its own pace; an orderly unmount stops it (and drains) so that S3 and
	# the catalog are read in one state.
	lzfs_umount "$MNT" "$LZFS_PID"
	copy=$T_DIR/s3copy.$round
	awss3 s3 sync --quiet "s3://$TEST_BUCKET/crash/$dir" "$copy" >/dev/null 2>&1
	mkdir -p "$copy"
	out=$(python3 "$HELP/verify.py" "$CATALOG" "$SPOOL" "$copy" "$dir" "$log")
	json=$(tail -1 <<<"$out")
	grep '^#' <<<"$out" | head -20
	closed=$(jq .closed <<<"$json") closed_ok=$(jq .closed_ok <<<"$json")
	problems=$(jq .problems <<<"$json") cut=$(jq .cut <<<"$json")
	unreg=$(jq .cut_unregistered <<<"$json")
	orphans=$("$S3SERVER" uploads "$S3_DIR" | jq 'length')
	diag "round $round: $json, open multipart uploads $orphans"
	if [ "$problems" = 0 ] && [ "$closed" = "$closed_ok" ]; then
		ok "round $round: all $closed closed files ingested once, identical; $cut cut off accounted for"
		rounds_ok=$((rounds_ok + 1))
	else
		not_ok "round $round: closed files all ingested once and identical ($closed_ok of $closed, $problems problems)"
	fi
	if [ "$orphans" = 0 ]; then
		ok "round $round: no multipart upload left open"
	else
		not_ok "round $round: no multipart upload left open ($orphans open)"
		"$S3SERVER" uploads "$S3_DIR" | jq -c '.[] | {key, uploadId}' | sed 's/^/# /' | head
	fi
	total_closed=$((total_closed + closed)) total_cut=$((total_cut + cut))
	total_lost=$((total_lost + closed - closed_ok)) total_orphans=$((total_orphans + orphans))
	total_unreg=$((total_unreg + unreg))
	[ "$round" -lt "$ROUNDS" ] && { lzfs_mount crash -o "$OPTS" || break; }
	rm -rf "$copy"
done
check "recovery is logged" grep -q "recovery:" "$LZFS_LOG"
diag "RESULT crash: seed $SEED, $rounds_ok/$ROUNDS rounds, crashes survived $crashes," \
	"closed files $total_closed, lost $total_lost, cut off $total_cut" \
	"(of which $total_unreg without a catalog row, left for the rescanner), orphan uploads $total_orphans"
