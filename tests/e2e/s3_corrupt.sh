#!/usr/bin/env bash
# Damaged S3 answers during ingest (the request applied, its answer
# truncated, an HTML page, 20 MiB of blanks, or a wrong ETag), one per
# operation lzfs uses while writing. Every close() returns 0, nothing hangs,
# every file ends ingested and identical in S3 with the object's real ETag
# in the catalog, and the log says what was wrong.
. "$(dirname "$0")/lib.sh"
require_fuse "s3 corrupt"
s3_start
lzfs_mount k -o "part_size=5M,retry_budget=5,retry_interval=1" || exit 1
M=$((1024 * 1024))
src=$T_DIR/src
mkdir -p "$src"
n=0 fails=0
for op in PutObject CreateMultipartUpload UploadPart CompleteMultipartUpload HeadObject; do
	for kind in truncate garbage huge etag; do
		n=$((n + 1))
		f=$op-$kind
		if [ $op = PutObject ]; then size=$((1000 + n)); else size=$((5 * M + n)); fi
		head -c $size /dev/urandom >"$src/$f"
		s3_fault "{\"corrupt_rate\":1,\"corrupt\":\"$kind\",\"ops\":[\"$op\"],\"count\":1}" >/dev/null
		if ! timeout 120 cp "$src/$f" "$MNT/$f"; then
			fails=$((fails + 1)); diag "$f: cp failed or hung"
		fi
		s3_fault off >/dev/null
	done
done
check_eq "every close() returned 0, none hung ($n files)" 0 "$fails"
faults=$("$S3SERVER" stats "$S3_DIR" | jq '.faults.corrupt // 0')
check_eq "every corrupt fault was injected" "$n" "$faults"
for i in $(seq 1 60); do
	left=$(sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE current = 1 AND state IN (0, 1)")
	[ "$left" = 0 ] && break
	sleep 1
done
copy=$T_DIR/copy
awss3 s3 sync --quiet "s3://$TEST_BUCKET/k" "$copy" >/dev/null 2>&1
etags=$(awss3 s3api list-objects-v2 --bucket "$TEST_BUCKET" --prefix k/ --output json |
	jq -r '.Contents[] | (.Key | ltrimstr("k/")) + " " + (.ETag | gsub("\""; ""))')
bad=0 etag_bad=0
for f in $(ls "$src"); do
	if [ "$(xa "$MNT/$f" state)" != ingested ] || ! cmp -s "$copy/$f" "$src/$f"; then
		bad=$((bad + 1)); diag "$f: state $(xa "$MNT/$f" state)"; continue
	fi
	real=$(awk -v f="$f" '$1 == f {print $2}' <<<"$etags")
	if [ "$(xa "$MNT/$f" etag)" != "$real" ]; then
		etag_bad=$((etag_bad + 1)); diag "$f: catalog ETag $(xa "$MNT/$f" etag), object's $real"
	fi
done
check_eq "every file ingested and identical in S3" 0 "$bad"
check_eq "the catalog holds each object's real ETag" 0 "$etag_bad"
check "truncated answers are logged as malformed XML" grep -q "malformed XML response" "$LZFS_LOG"
check "HTML answers are logged as such" grep -q "unexpected XML document <html>" "$LZFS_LOG"
check "20 MiB answers are refused and logged" grep -q "response body larger than" "$LZFS_LOG"
# An upload whose CreateMultipartUpload answer could not be read exists in
# S3 without lzfs ever learning its id: lzfs finds it by key and date
# (ListMultipartUploads) and aborts it.
for i in $(seq 1 50); do
	[ -z "$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[].key')" ] && break
	sleep 0.2
done
open=$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[].key')
check_eq "no multipart upload left open" "" "$open"
check_eq "the uploads of the three unreadable CreateMultipartUpload answers were found and aborted" 3 \
	"$(grep -c "CreateMultipartUpload-[a-z]*: aborted 1 multipart upload(s) S3 created without its answer" "$LZFS_LOG")"

# The same for lzfsctl scan: the file whose CreateMultipartUpload answer is
# unreadable is sent again, and the upload S3 created meanwhile is found and
# aborted.
ssrc=$T_DIR/scansrc
mkdir -p "$ssrc"
head -c $((20 * M)) /dev/urandom >"$ssrc/big.bin" # multipart (parts of 8 MiB)
s3_fault '{"corrupt_rate":1,"corrupt":"truncate","ops":["CreateMultipartUpload"],"count":1}' >/dev/null
AWS_ENDPOINT_URL=$S3_ENDPOINT timeout 120 "$LZFSCTL" -c "$T_DIR/scan.db" scan --max-retries 3 \
	"$ssrc" "s3://$TEST_BUCKET/sc" >"$T_DIR/scan.out" 2>&1
s3_fault off >/dev/null
awss3 s3 cp --quiet "s3://$TEST_BUCKET/sc/big.bin" "$T_DIR/scan.got" >/dev/null 2>&1
check "lzfsctl scan sent the file again and it is identical in S3" cmp "$ssrc/big.bin" "$T_DIR/scan.got"
check_eq "no multipart upload left open after the scan" "" "$("$S3SERVER" uploads "$S3_DIR" | jq -r '.[].key')"
check "the scan says it aborted the upload S3 created" \
	grep -q "sc/big.bin: aborted 1 multipart upload(s) S3 created without its answer" "$T_DIR/scan.out"
