#!/usr/bin/env bash
# Crash: kill -9 of the daemon at a random moment while 20 writers write
# through the mount and the rescanner ingests files dropped into the spool
# out of band, then restart on the same landing directory. Every file whose
# close() returned 0 and every dropped file must be in S3, byte-identical,
# ingested exactly once; files cut off mid-write are complete from the spool
# (taken by the rescanner if the daemon never registered them) or reported
# failed/pending with a reason; no multipart upload stays open.
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
OPTS="part_size=5M,retry_interval=1,retry_budget=10,drain_timeout=5,rescan_interval=2,settle_time=1"
OOB=4 # files dropped into the spool per round: 1 multipart, 3 small
M=$((1024 * 1024))

pending_rows() {
	sqlite3 -readonly "$CATALOG" \
		"SELECT count(*) FROM objects WHERE current = 1 AND state IN (0, 1)" 2>/dev/null || echo '?'
}

KILLS=$T_DIR/kills
: >"$KILLS"
# oob_ingested DIR: current ingested rows below the spool's DIR/.
oob_ingested() {
	sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE current = 1 AND state = 2
		AND path LIKE '$1/%'" 2>/dev/null || echo 0
}
# unregistered DIR: files below the spool's DIR/ without a current catalog
# row (the rescanner has not taken them yet).
unregistered() {
	comm -23 <(cd "$SPOOL" && find "$1" -type f | sort) \
		<(sqlite3 -readonly "$CATALOG" "SELECT path FROM objects WHERE current = 1
			AND path LIKE '$1/%'" 2>/dev/null | sort) | wc -l
}
# drop_oob SRC DIR: what an NFS client or a transfer tool does, one file
# every 0.25 s: odd ones staged beside the spool and renamed in (as rsync does),
# even ones copied in place (cp), so the rescanner sees growing files too.
drop_oob() {
	local src=$1 dst=$2 stage=$T_DIR/stage.${2##*/} k=0 f
	mkdir -p "$dst" "$stage"
	for f in "$src"/*; do
		k=$((k + 1))
		if [ $((k % 2)) = 1 ]; then
			cp "$f" "$stage/" && mv "$stage/${f##*/}" "$dst/"
		else
			cp "$f" "$dst/"
		fi
		sleep 0.25
	done
}
kill9() { date +%s.%N >>"$KILLS"; kill -9 "$LZFS_PID"; wait "$LZFS_PID" 2>/dev/null; }
# created_before_kill KEY: S3 created an upload for KEY at most 3 s before a kill.
created_before_kill() {
	python3 - "$KEY_LOG" "$KILLS" "$TEST_BUCKET/$1" <<'PY'
import datetime, sys
log, kills, target = sys.argv[1:4]
ks = [float(l) for l in open(kills) if l.strip()]
for line in open(log):
    f = line.split()
    if len(f) > 4 and f[3] == "CreateMultipartUpload" and f[4] == target:
        t = datetime.datetime.fromisoformat(f[0].replace("Z", "+00:00")).timestamp()
        if any(-1 <= k - t <= 3 for k in ks):  # (the request may be logged just after)
            sys.exit(0)
sys.exit(1)
PY
}
lzfs_mount crash -o "$OPTS" || exit 1
KEY_LOG=$S3_DIR/access.log
total_oob=0 total_oob_ok=0 oob_mid=0
total_closed=0 total_cut=0 total_lost=0 total_orphans=0 rounds_ok=0 total_unreg=0 crashes=0 total_create_lost=0
lost_ids="" # uploads S3 created just before a kill, which the daemon never recorded
for round in $(seq 1 "$ROUNDS"); do
	dir=r$round t_round=$SECONDS
	mkdir -p "$MNT/$dir"
	log=$T_DIR/writers.$round.log
	wseed=$((SEED * 100 + round))
	oob=$dir-oob oob_src=$T_DIR/oob.$round
	mkdir -p "$oob_src"
	for k in $(seq 1 $OOB); do
		size=$((k == 1 ? (6 + RANDOM % 3) * M + RANDOM : 1 + RANDOM * 16))
		head -c $size /dev/urandom >"$oob_src/f$k.dat"
	done
	python3 "$HELP/writers.py" "$MNT/$dir" "$log" $WRITERS $wseed --max-mib 16 &
	wpid=$!
	drop_oob "$oob_src" "$SPOOL/$oob" &
	dpid=$!
	delay_ms=$((500 + RANDOM % 4000))
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	kill9
	crashes=$((crashes + 1))
	closed_before=$(grep -c '^ok' "$log" 2>/dev/null)
	oob_before=$(oob_ingested "$oob")
	oob_uploading=$(sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE current = 1
		AND state IN (0, 1) AND path LIKE '$oob/%'" 2>/dev/null || echo 0)
	[ "$oob_uploading" -gt 0 ] && oob_mid=$((oob_mid + 1))
	diag "round $round: kill -9 after ${delay_ms} ms, ${closed_before:-0} files closed," \
		"$oob_before of $OOB dropped files ingested, $oob_uploading being ingested"
	wait $dpid
	for i in $(seq 1 300); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
	kill -0 $wpid 2>/dev/null && { not_ok "round $round: writers exit after the crash"; kill -9 $wpid; }
	wait $wpid 2>/dev/null
	fusermount3 -uz "$MNT"
	t_restart=$SECONDS
	lzfs_mount crash -o "$OPTS" || { not_ok "round $round: restart"; break; }
	if [ $((round % 3)) = 0 ]; then
		# A second crash during recovery: recovery itself must be restartable.
		ms=$((100 + RANDOM % 900))
		sleep "0.$(printf '%03d' $ms)"
		kill9
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
	for i in $(seq 1 120); do
		[ "$(oob_ingested "$oob")" = $OOB ] && [ "$(pending_rows)" = 0 ] &&
			[ "$(unregistered "$dir")" = 0 ] && break
		sleep 0.5
	done
	diag "round $round: recovered $((SECONDS - t_restart)) s after the restart"
	# Quiesce before the snapshot: the rescanner ingests cut-off files at
	# its own pace; an orderly unmount stops it (and drains) so that S3 and
	# the catalog are read in one state.
	lzfs_umount "$MNT" "$LZFS_PID"
	# One sync for the writers' and the dropped files (awscli starts slowly).
	scopy=$T_DIR/s3copy.$round copy=$T_DIR/s3copy.$round/$dir
	awss3 s3 sync --quiet --exclude '*' --include "$dir/*" --include "$oob/*" \
		"s3://$TEST_BUCKET/crash" "$scopy" >/dev/null 2>&1
	mkdir -p "$copy" "$scopy/$oob"
	# The dropped files are checked like closed ones: one row, ingested,
	# right sha256 and size, identical in S3, one "ingested" event.
	(cd "$oob_src" && for f in *; do echo "ok $f $(stat -c %s "$f") $(sha256sum <"$f" | cut -d' ' -f1)"; done) \
		>"$T_DIR/oob.$round.log"
	oout=$(python3 "$HELP/verify.py" "$CATALOG" "$SPOOL" "$scopy/$oob" "$oob" "$T_DIR/oob.$round.log")
	ojson=$(tail -1 <<<"$oout")
	grep '^#' <<<"$oout" | head -10
	oob_ok=$(jq .closed_ok <<<"$ojson")
	if [ "$(jq .problems <<<"$ojson")" = 0 ] && [ "$oob_ok" = $OOB ]; then
		ok "round $round: all $OOB files dropped into the spool ingested once, identical"
	else
		not_ok "round $round: files dropped into the spool ingested once, identical ($oob_ok of $OOB): $ojson"
	fi
	total_oob=$((total_oob + OOB)) total_oob_ok=$((total_oob_ok + oob_ok))
	out=$(python3 "$HELP/verify.py" "$CATALOG" "$SPOOL" "$copy" "$dir" "$log")
	json=$(tail -1 <<<"$out")
	grep '^#' <<<"$out" | head -20
	closed=$(jq .closed <<<"$json") closed_ok=$(jq .closed_ok <<<"$json")
	problems=$(jq .problems <<<"$json") cut=$(jq .cut <<<"$json")
	unreg=$(jq .cut_unregistered <<<"$json")
	# Open multipart uploads: those lzfs recorded must have been aborted by
	# recovery. One it never recorded, created by S3 in the last 3 s before a
	# kill (the daemon died between S3 creating the upload and the commit of
	# its id), nothing but the next start can abort: its sweep of the prefix,
	# checked at the end.
	orphans=0 create_lost=0
	while read -r id key; do
		[ -n "$id" ] || continue
		if ! sqlite3 -readonly "$CATALOG" .dump | grep -q "$id" && ! grep -q "$id" "$LZFS_LOG" &&
			created_before_kill "$key"; then
			create_lost=$((create_lost + 1)) lost_ids+="$id"$'\n'
		else
			orphans=$((orphans + 1)); diag "open upload $id for $key"
		fi
	done < <("$S3SERVER" uploads "$S3_DIR" | jq -r '.[] | .upload_id + " " + .key')
	diag "round $round: $((SECONDS - t_round)) s; $json, open multipart uploads: $orphans, created just before a kill: $create_lost"
	# With the rescanner on (settle_time=1), a file cut off before the
	# daemon registered it must have been found and ingested meanwhile.
	if [ "$problems" = 0 ] && [ "$closed" = "$closed_ok" ] && [ "$unreg" = 0 ]; then
		ok "round $round: all $closed closed files ingested once, identical; $cut cut off accounted for"
		rounds_ok=$((rounds_ok + 1))
	else
		not_ok "round $round: closed files all ingested once and identical ($closed_ok of $closed, $problems problems, $unreg cut off without a catalog row)"
	fi
	if [ "$orphans" != 0 ]; then
		not_ok "round $round: no multipart upload lzfs knew of left open ($orphans open)"
	else
		ok "round $round: no multipart upload lzfs knew of left open ($create_lost created just before the kill, for the next start's sweep)"
	fi
	total_closed=$((total_closed + closed)) total_cut=$((total_cut + cut))
	total_lost=$((total_lost + closed - closed_ok)) total_orphans=$((total_orphans + orphans))
	total_create_lost=$((total_create_lost + create_lost))
	total_unreg=$((total_unreg + unreg))
	[ "$round" -lt "$ROUNDS" ] && { lzfs_mount crash -o "$OPTS" || break; }
	rm -rf "$scopy" "$oob_src"
done

# A crash while recovery uploads a file: the upload recovery started must be
# known to the next start, which aborts it. Slow parts hold each upload open
# long enough for the kill to land in the middle of it.
before=$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[].upload_id' | sort)
lzfs_mount crash -o "$OPTS" || exit 1 # (each round ends unmounted)
s3_fault '{"latency_ms":3000,"ops":["UploadPart"]}' >/dev/null
head -c $((12 * 1024 * 1024)) /dev/urandom >"$T_DIR/slow"
cp "$T_DIR/slow" "$MNT/slow" 2>/dev/null &
cpid=$!
sleep 2
kill9; wait $cpid 2>/dev/null; fusermount3 -uz "$MNT" # (cp's close fails: the daemon is gone)
lzfs_mount crash -o "$OPTS" || exit 1
for i in $(seq 1 50); do grep -q "recovery: slow" "$LZFS_LOG" && break; sleep 0.1; done
sleep 2
kill9; fusermount3 -uz "$MNT"
s3_fault off >/dev/null
lzfs_mount crash -o "$OPTS" || exit 1
for i in $(seq 1 120); do [ "$(pending_rows)" = 0 ] && break; sleep 0.5; done
ingested_ok "a file interrupted twice (writing, then recovering) is ingested" "$MNT/slow" crash/slow "$T_DIR/slow"
after=$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[].upload_id' | sort)
check_eq "the uploads of the interrupted write and of the interrupted recovery were aborted" \
	"" "$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')"
check_eq "no multipart upload is open at all once recovery is done (the starts' sweeps took the $total_create_lost never recorded)" \
	"" "$after"
check_eq "every upload S3 created just before a kill is gone" "" \
	"$(comm -12 <(sed '/^$/d' <<<"$lost_ids" | sort) <(echo "$after") | sed '/^$/d')"
check "recovery is logged" grep -q "recovery: slow is uploading" "$LZFS_LOG"
crashes=$((crashes + 2))
diag "RESULT crash: seed $SEED, $rounds_ok/$ROUNDS rounds, crashes survived $crashes," \
	"closed files $total_closed, lost $total_lost, cut off $total_cut" \
	"(of which $total_unreg without a catalog row, left for the rescanner), orphan uploads $total_orphans" \
	"(+ $total_create_lost created just before a kill, never recorded);" \
	"dropped into the spool $total_oob, ingested once $total_oob_ok, lost $((total_oob - total_oob_ok))," \
	"rounds killed mid-ingest of a dropped file $oob_mid"
