#!/usr/bin/env bash
# Scale-out: three lzfs daemons (three "hosts": each its own spool and
# mount point) share one catalog on PostgreSQL and one bucket and prefix.
# Writers on all three at once, then lzfsctl sees every file exactly once,
# awscli sees every object, and the three hosts writing the same path make
# three versions of it with exactly one current, every row naming a key
# that holds its bytes: a host opening a path another host is writing is
# refused with EBUSY (docs/scale.md). The PostgreSQL server is Debian's,
# started in the test directory on a loopback port.
. "$(dirname "$0")/lib.sh"
require_fuse "scale-out mounts"
pg_start "scale-out on PostgreSQL"
s3_start

# host_mount N: host N mounts s3://lzfs-test/scale on $T_DIR/hN.mnt.
host_mount() {
	local n=$1 mnt=$T_DIR/h$1.mnt spool=$T_DIR/h$1.spool log=$T_DIR/h$1.log creds i
	mkdir -p "$mnt" "$spool"
	creds=$(make_creds)
	"$LZFS" -f -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$spool,log_level=debug,catalog=$PG_URL" \
		"s3://$TEST_BUCKET/scale" "$mnt" 2>>"$log" &
	local pid=$!
	at_exit "lzfs_umount '$mnt' $pid"
	eval "PID$n=$pid"
	for i in $(seq 1 100); do
		mountpoint -q "$mnt" && return 0
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	not_ok "host $n mounts with catalog=postgresql://..."
	sed 's/^/# /' "$log" | tail -20
	exit 1
}
for n in 1 2 3; do host_mount $n; done
ok "three daemons mount with one PostgreSQL catalog"

FILES=60
# writer N: host N writes its own tree, a shared directory, and the clash path.
writer() {
	local n=$1 m=$T_DIR/h$1.mnt i
	mkdir -p "$m/h$n/sub" "$m/shared" "$m/same"
	for i in $(seq 1 $FILES); do
		printf 'host %s file %s\n' "$n" "$i" >"$m/h$n/sub/f$i.txt" || return 1
		printf 'host %s shared %s\n' "$n" "$i" >"$m/shared/h$n-$i.txt" || return 1
	done
	# Hosts writing the path at once are refused (EBUSY) but one: retry.
	head -c $((100000 + n)) /dev/urandom >"$T_DIR/clash$n"
	for i in $(seq 1 200); do
		cp "$T_DIR/clash$n" "$m/same/clash.bin" 2>>"$T_DIR/clash$n.err" && return 0
		grep -q "busy" "$T_DIR/clash$n.err" || return 1
		sleep 0.05
	done
	return 1
}
start=$SECONDS
writer 1 & w1=$!
writer 2 & w2=$!
writer 3 & w3=$!
wrc=0
for w in $w1 $w2 $w3; do wait $w || wrc=1; done
check_eq "writers on three hosts at once succeed" 0 "$wrc"
diag "$((3 * (2 * FILES + 1))) files written on 3 hosts in $((SECONDS - start)) s"

total=$((3 * 2 * FILES + 1))
CTL() { "$LZFSCTL" -c "$PG_URL" "$@"; }
# close() returned once in S3 and the catalog (durability=close).
found=$(CTL find | sort)
check_eq "lzfsctl find sees every file" "$total" "$(echo "$found" | grep -c .)"
check_eq "each path exactly once" "" "$(echo "$found" | uniq -d)"
check_eq "ls of host 2's tree from the catalog" "$FILES" "$(CTL ls h2/sub | grep -c .)"
check_eq "ls of the shared directory" "$((3 * FILES))" "$(CTL ls shared | grep -c .)"
check_eq "all ingested" "$total" "$(CTL find --state ingested | grep -c .)"
check_eq "nothing pending" "" "$(CTL find --state pending)"
st=$(CTL status)
check_eq "status counts every current version ingested" "$total" \
	"$(echo "$st" | awk '$1 == "ingested" {print $2}')"

# The clash: three versions, exactly one current, its bytes those in S3.
check_eq "the clash path has three versions" 3 "$(CTL ls --versions same | grep -c clash.bin)"
check_eq "no path has two current rows" "" \
	"$(pgq "SELECT path FROM objects WHERE current = 1 GROUP BY path HAVING count(*) > 1")"
cur_size=$(pgq "SELECT size FROM objects WHERE path = 'same/clash.bin' AND current = 1")
cur_key=$(pgq "SELECT key FROM objects WHERE path = 'same/clash.bin' AND current = 1")
s3_size=$(awss3 s3api head-object --bucket "$TEST_BUCKET" --key "$cur_key" --query ContentLength --output text 2>/dev/null)
check_eq "the current version's size is the S3 object's" "$cur_size" "$s3_size"
check_eq "rows carry each host's owner" 3 \
	"$(pgq "SELECT count(DISTINCT owner) FROM objects WHERE path LIKE 'shared/%'")"

keys=$(awss3 s3 ls --recursive "s3://$TEST_BUCKET/scale/" | awk '{print $4}' | sort)
check_eq "awscli sees every object" "$total" "$(echo "$keys" | grep -v '^scale/\.lzfs/' | grep -c .)"
# A host that overwrote the clash path saw the version before it in the
# shared catalog and kept it (overwrite=version): no bytes lost.
kept=$(echo "$keys" | grep -c '^scale/\.lzfs/versions/same/clash\.bin\.v[12]$')
check_eq "both replaced versions are kept in S3" 2 "$kept"
diag "clash writers refused: $(cat "$T_DIR"/clash?.err 2>/dev/null | grep -c busy) times"
# rows_hold_bytes PATH: every ingested row of PATH names a key whose bytes
# have the row's size and sha256.
rows_hold_bytes() {
	local key sha size bad=0 got
	while IFS='|' read -r key sha size; do
		awss3 s3 cp --quiet "s3://$TEST_BUCKET/$key" "$T_DIR/.row" >/dev/null 2>&1 || { bad=1; diag "$key: missing"; continue; }
		got=$(sha256sum <"$T_DIR/.row" | cut -d' ' -f1)
		if [ "$got" != "$sha" ] || [ "$(stat -c %s "$T_DIR/.row")" != "$size" ]; then
			bad=1
			diag "$key: row sha256 $sha size $size, S3 holds $got"
		fi
	done < <(pgq "SELECT key, sha256, size FROM objects WHERE path = '$1' AND state = 2")
	return $bad
}
check "every version of the clash path names a key holding its bytes" rows_hold_bytes same/clash.bin
clash_sums=$(for n in 1 2 3; do sha256sum <"$T_DIR/clash$n" | cut -d' ' -f1; done | sort)
check_eq "the three hosts' contents are the three versions" "$clash_sums" \
	"$(pgq "SELECT sha256 FROM objects WHERE path = 'same/clash.bin' AND state = 2 ORDER BY 1")"
for f in h1/sub/f1.txt h3/sub/f$FILES.txt shared/h2-7.txt; do
	src=$T_DIR/.want
	n=${f#h}; n=${n%%/*}
	[ "${f%%/*}" = shared ] && n=$(echo "$f" | sed 's|shared/h\([0-9]\)-.*|\1|')
	case $f in
	shared/*) printf 'host %s shared %s\n' "$n" "${f##*-}" | sed 's/\.txt//' >"$src" ;;
	*) i=${f##*/f}; printf 'host %s file %s\n' "$n" "${i%.txt}" >"$src" ;;
	esac
	if obj_matches "scale/$f" "$src"; then ok "S3 holds $f as written"; else not_ok "S3 holds $f as written"; fi
done
check "lzfsctl check passes on the shared catalog" CTL check

# A path open for writing on host 1 is refused on host 2 (EBUSY, host 1
# named in host 2's log), and written there once host 1 closed it. The
# holder is a process of its own: a descriptor held by this shell would be
# inherited by every command below, and each one's exit flushes (commits)
# the file.
: >"$T_DIR/held1.want"
printf 'host 2\n' >"$T_DIR/held2.want"
sleep 120 >"$T_DIR/h1.mnt/same/held.txt" &
holder=$!
for i in $(seq 1 50); do
	[ "$(pgq "SELECT state FROM objects WHERE path = 'same/held.txt' AND current = 1")" = 0 ] && break
	sleep 0.1
done
if cp "$T_DIR/held2.want" "$T_DIR/h2.mnt/same/held.txt" 2>"$T_DIR/held.err"; then
	not_ok "host 2 cannot open a path host 1 is writing"
else
	check "host 2 cannot open a path host 1 is writing (EBUSY)" grep -q "busy" "$T_DIR/held.err"
fi
check "host 2's log names host 1" grep -q "same/held.txt is being written by [^ ]*:[^ ]*/h1.spool" "$T_DIR/h2.log"
check_eq "host 2 left no spool file" "" "$(ls "$T_DIR/h2.spool/same/held.txt" 2>/dev/null)"
# A rename onto the held path is refused before anything moves: the
# renamed file stays where it was, in the spool, the catalog and S3.
printf 'host 2 moving\n' >"$T_DIR/mover.want"
cp "$T_DIR/mover.want" "$T_DIR/h2.mnt/same/mover.txt"
if mv "$T_DIR/h2.mnt/same/mover.txt" "$T_DIR/h2.mnt/same/held.txt" 2>"$T_DIR/mv.err"; then
	not_ok "host 2 cannot rename onto a path host 1 is writing"
else
	check "host 2 cannot rename onto a path host 1 is writing (EBUSY)" grep -q "busy" "$T_DIR/mv.err"
fi
check "host 2's log names host 1 for the rename" grep -q "rename same/mover.txt -> same/held.txt: refused (EBUSY): [^ ]*:[^ ]*/h1.spool" "$T_DIR/h2.log"
check "the renamed file is still in host 2's spool" cmp "$T_DIR/mover.want" "$T_DIR/h2.spool/same/mover.txt"
check "S3 still holds it under its old name" obj_matches scale/same/mover.txt "$T_DIR/mover.want"
check "its row still names it" rows_hold_bytes same/mover.txt
kill "$holder"; wait "$holder" 2>/dev/null
check "host 2 writes the path once host 1 closed it" cp "$T_DIR/held2.want" "$T_DIR/h2.mnt/same/held.txt"
check_eq "version 1 is host 1's, version 2 host 2's" \
	"$(sha256sum "$T_DIR/held1.want" "$T_DIR/held2.want" | cut -d' ' -f1 | tr '\n' ' ')" \
	"$(pgq "SELECT sha256 FROM objects WHERE path = 'same/held.txt' AND version IN (1, 2) ORDER BY version" | tr '\n' ' ')"
check "host 1's version kept in S3" obj_matches scale/.lzfs/versions/same/held.txt.v1 "$T_DIR/held1.want"
check "every version of it names a key holding its bytes" rows_hold_bytes same/held.txt

# Host 1's spool keeps its copy of a file host 2 then rewrites: that copy
# is an older version, not a change. Host 1 removes it (rather than read
# it, or send it again as the newest version) when it opens the file, or
# at its next walk, and reads host 2's version.
printf 'stale: host 1\n' >"$T_DIR/stale1.want"
printf 'stale: host 2, newer\n' >"$T_DIR/stale2.want"
for f in stale.txt stale-walk.txt; do
	cp "$T_DIR/stale1.want" "$T_DIR/h1.mnt/same/$f"
	cp "$T_DIR/stale2.want" "$T_DIR/h2.mnt/same/$f"
done
check "host 1 reads host 2's version at once" cmp "$T_DIR/stale2.want" "$T_DIR/h1.mnt/same/stale.txt"
check "host 1's open removed its stale copy" grep -q "same/stale.txt: the spool holds an older version of this host's, and [^ ]*:[^ ]*/h2.spool wrote a newer one" "$T_DIR/h1.log"
kill -USR1 "$PID1" # a full walk now
for i in $(seq 1 100); do grep -q "same/stale-walk.txt: the spool holds an older version" "$T_DIR/h1.log" && break; sleep 0.2; done
check "host 1's walk removes the other stale copy" grep -q "same/stale-walk.txt: the spool holds an older version of this host's, and [^ ]*:[^ ]*/h2.spool wrote a newer one" "$T_DIR/h1.log"
for f in stale.txt stale-walk.txt; do
	check_eq "$f: no third version (the stale copy was not sent again)" "2" \
		"$(pgq "SELECT count(*) FROM objects WHERE path = 'same/$f'")"
	check_eq "$f: host 2's version is current" "$(sha256sum <"$T_DIR/stale2.want" | cut -d' ' -f1)" \
		"$(pgq "SELECT sha256 FROM objects WHERE path = 'same/$f' AND current = 1")"
	check "$f: host 1's version kept in S3" obj_matches "scale/.lzfs/versions/same/$f.v1" "$T_DIR/stale1.want"
done
check "host 1 reads host 2's version of the walked file" cmp "$T_DIR/stale2.want" "$T_DIR/h1.mnt/same/stale-walk.txt"

# Every host's own view: a stat through another host's mount is not
# required, but each daemon recovered nothing of the others' at start.
for n in 1 2 3; do
	if grep -q "recovery: " "$T_DIR/h$n.log"; then not_ok "host $n recovered nothing foreign"; else ok "host $n recovered nothing foreign"; fi
done

# A restarted host's sweep of the shared prefix leaves other hosts' live
# uploads alone: host 1 streams a file whose parts S3 answers slowly while
# host 2 restarts (its start aborts leftover multipart uploads).
s3_fault '{"latency_ms":4000,"ops":["UploadPart"]}' >/dev/null
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T_DIR/live.want"
cp "$T_DIR/live.want" "$T_DIR/h1.mnt/same/live.bin" &
cpid=$!
live_id=""
for i in $(seq 1 100); do
	live_id=$(pgq "SELECT upload_id FROM objects WHERE path = 'same/live.bin' AND state = 1 AND upload_id IS NOT NULL")
	[ -n "$live_id" ] && break
	sleep 0.1
done
check "host 1's streaming upload is in its row" test -n "$live_id"

# A restarted host recovers its own pending rows only: leave a pending row
# owned by host 2 and one owned by a host that is not running.
h2owner=$(pgq "SELECT owner FROM objects WHERE path = 'h2/sub/f1.txt' AND current = 1")
pgq "UPDATE objects SET state = 0 WHERE path IN ('h2/sub/f2.txt', 'h1/sub/f2.txt') AND current = 1" >/dev/null
lzfs_umount "$T_DIR/h2.mnt" "$PID2"
host_mount 2
for i in $(seq 1 50); do grep -q "recovery: h2/sub/f2.txt" "$T_DIR/h2.log" && break; sleep 0.1; done
check "restarted host 2 recovers its own pending row" grep -q "recovery: h2/sub/f2.txt" "$T_DIR/h2.log"
if grep -q "recovery: h1/" "$T_DIR/h2.log"; then not_ok "host 2 leaves host 1's pending row alone"; else ok "host 2 leaves host 1's pending row alone"; fi
diag "host 2 owner: $h2owner"
wait $cpid
s3_fault off >/dev/null
check "host 2's start aborted no upload" bash -c "! grep -q 'aborted [0-9]* multipart' '$T_DIR/h2.log'"
check "host 1's upload was never cut off (no fallback to the spool)" \
	bash -c "! grep -q 'live.bin: streamed upload did not complete' '$T_DIR/h1.log'"
for i in $(seq 1 50); do [ "$(pgq "SELECT state FROM objects WHERE path = 'same/live.bin' AND current = 1")" = 2 ] && break; sleep 0.2; done
check "host 1's file is in S3 as written" obj_matches scale/same/live.bin "$T_DIR/live.want"

# The password in the URL appears in no log line.
if grep -l "lzfstest@" "$T_DIR"/h*.log >/dev/null 2>&1; then
	not_ok "the catalog password is never logged"
	grep -h "lzfstest@" "$T_DIR"/h*.log | head -3 | sed 's/^/# /'
else
	ok "the catalog password is never logged"
fi
check "the logs name the catalog with the password masked" grep -q "lzfs:\*\*\*@127.0.0.1" "$T_DIR/h1.log"
errs=$(grep -h " error: " "$T_DIR"/h*.log | grep -v "h2/sub/f2.txt" | grep -v "refused (EBUSY)" | head -5)
check_eq "no errors in the daemons' logs" "" "$errs"
diag "elapsed $SECONDS s"
exit 0
