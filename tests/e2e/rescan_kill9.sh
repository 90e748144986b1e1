#!/usr/bin/env bash
# kill -9 of the daemon while the rescanner ingests 50 files dropped into
# the spool (small ones and multipart ones, S3 slowed down so that the kill
# lands mid-upload), then a restart: every file is ingested once (one
# catalog version, one object with its bytes), and no multipart upload is
# left open on the server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
require_fuse "rescanner crash recovery"
s3_start
B=$TEST_BUCKET
M=$((1024 * 1024))
ctl() { "$LZFSCTL" -c "$CATALOG" "$@"; }
snap() {
	ctl --json find --all-versions 2>/dev/null |
		jq -r '.[] | [.path, (.version|tostring), .state, .sha256, (.current|tostring), (.upload_id // "-")] | @tsv' \
			>"$T_DIR/rows.tsv"
}
ningested() { snap; awk -F'\t' '$3 == "ingested" && $5 == "true"' "$T_DIR/rows.tsv" | wc -l; }

lzfs_mount k -o rescan_interval=60,settle_time=1,part_size=5M || exit 1
src=$T_DIR/src
mkdir -p "$src/sub"
for i in $(seq 1 44); do head -c $((i * 3000)) /dev/urandom >"$src/f$i.dat"; done
for i in $(seq 1 6); do head -c $((11 * M + i)) /dev/urandom >"$src/sub/big$i.bin"; done
# Slow S3 down so that the kill finds uploads in flight.
s3_fault '{"latency_ms": 400, "ops": ["PutObject", "UploadPart", "CompleteMultipartUpload"]}' >/dev/null
cp -r "$src/." "$SPOOL/"
# Kill once some files are in and some multipart uploads are open.
deadline=$((SECONDS + 60))
while :; do
	n=$(ningested)
	open=$("$S3SERVER" uploads "$S3_DIR" | jq length)
	[ "$n" -ge 5 ] && [ "$open" -ge 1 ] && break
	if [ $SECONDS -ge $deadline ]; then break; fi
	sleep 0.2
done
kill -9 "$LZFS_PID"
wait "$LZFS_PID" 2>/dev/null
fusermount3 -uz "$MNT" 2>/dev/null
snap
diag "killed with $n of 50 ingested, $open multipart upload(s) open"
check "the kill landed mid-ingest" test "$n" -lt 50 -a "$open" -ge 1
ids=$(awk -F'\t' '$6 != "-" {print $6}' "$T_DIR/rows.tsv" | sort)
diag "upload ids in the catalog: $(echo $ids)"

# Restart, S3 healthy again: landing recovery and the rescanner finish the job.
s3_fault off >/dev/null
lzfs_mount k -o rescan_interval=60,settle_time=1,part_size=5M || exit 1
deadline=$((SECONDS + 90))
while [ "$(ningested)" -lt 50 ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
check_eq "after the restart: all 50 files ingested" 50 "$(ningested)"
sleep 2 # let anything late show up
snap
check_eq "one catalog version per file (none duplicated)" 50 "$(awk -F'\t' '$2 == 1' "$T_DIR/rows.tsv" | wc -l)"
check_eq "no other rows" 50 "$(wc -l <"$T_DIR/rows.tsv")"
check_eq "no multipart upload left open on the server" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
left=0
for id in $ids; do
	"$S3SERVER" uploads "$S3_DIR" | jq -e --arg id "$id" 'map(select(.uploadId == $id or .UploadId == $id or .upload_id == $id)) | length > 0' >/dev/null && left=$((left + 1))
done
check_eq "none of the upload ids the catalog held is still open" 0 "$left"
check_eq "exactly 50 objects under the prefix" 50 "$(s3count k/)"
bad=0
while IFS= read -r -d '' f; do
	rel=${f#"$src/"}
	s3same "k/$rel" "$f" || { bad=$((bad + 1)); diag "S3 differs: $rel"; }
	[ "$(awk -F'\t' -v p="$rel" '$1 == p {print $4}' "$T_DIR/rows.tsv")" = "$(sha256sum <"$f" | cut -d' ' -f1)" ] ||
		{ bad=$((bad + 1)); diag "sha256: $rel"; }
done < <(find "$src" -type f -print0)
check_eq "every object is its file, byte for byte, and the catalog has its SHA-256" 0 "$bad"
check "the restart recovered interrupted uploads" grep -qE "recovery: .* is (pending|uploading)" "$LZFS_LOG"
