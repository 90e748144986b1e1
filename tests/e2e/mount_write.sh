#!/usr/bin/env bash
# The write path: ordinary tools write into the mount; the moment each
# command returns, every file is in S3 byte for byte and `ingested` in the
# catalog with the right SHA-256.
. "$(dirname "$0")/lib.sh"
require_fuse "mount write path"
s3_start
lzfs_mount w || exit 1
src=$T_DIR/src
mkdir -p "$src"

# Sizes around the 5 MiB minimum part and a multi-part file.
M=$((1024 * 1024))
for sz in 0 1 $((5 * M - 1)) $((5 * M)) $((5 * M + 1)) $((100 * M)); do
	head -c "$sz" /dev/urandom >"$src/f$sz"
	cp "$src/f$sz" "$MNT/f$sz"
	ingested_ok "cp of $sz bytes: in S3 and ingested at close" "$MNT/f$sz" "w/f$sz" "$src/f$sz"
done

# dd with small and large blocks.
head -c $((37 * M + 123)) /dev/urandom >"$src/dd"
dd if="$src/dd" of="$MNT/dd4k" bs=4k status=none
ingested_ok "dd bs=4k" "$MNT/dd4k" w/dd4k "$src/dd"
dd if="$src/dd" of="$MNT/dd16m" bs=16M status=none
ingested_ok "dd bs=16M" "$MNT/dd16m" w/dd16m "$src/dd"

# rsync -a of a tree with odd names: temp file then rename, times, modes.
tree=$T_DIR/tree
mkdir -p "$tree/a b/c%d/+plus" "$tree/deep/1/2/3/4/5/6/7/8"
printf 'space\n' >"$tree/a b/file with spaces.txt"
printf 'pct\n' >"$tree/a b/c%d/100%.dat"
printf 'plus\n' >"$tree/a b/c%d/+plus/a+b=c&d?.bin"
printf 'utf8\n' >"$tree/deep/1/2/3/4/5/6/7/8/résumé-日本語.txt"
printf 'nl\n' >"$tree/a b/new"$'\n'"line"
# s3rver stores keys as file paths: a segment over 236 bytes cannot be stored there (see tests/s3/README.md).
long=$(printf "L%.0s" $(seq 1 200)).txt  # s3rver: see tests/s3/README.md on long segments
printf 'long\n' >"$tree/$long"
head -c $((6 * M)) /dev/urandom >"$tree/deep/big.bin"
chmod 640 "$tree/a b/file with spaces.txt"
if rsync -a "$tree/" "$MNT/tree/"; then ok "rsync -a into the mount"; else not_ok "rsync -a into the mount"; fi
bad=0
while IFS= read -r -d '' f; do
	rel=${f#"$tree/"}
	[ "$(xa "$MNT/tree/$rel" state)" = ingested ] || { bad=$((bad + 1)); diag "not ingested: $rel"; continue; }
	obj_matches "w/tree/$rel" "$f" || { bad=$((bad + 1)); diag "S3 differs: $rel"; }
done < <(find "$tree" -type f -print0)
check_eq "rsync: every file ingested and byte-identical in S3" 0 "$bad"
leftover=$(awss3 s3api list-objects-v2 --bucket "$TEST_BUCKET" --prefix w/tree/ --query 'Contents[].Key' --output text | tr '\t' '\n' | grep -c '/\.[^/]*\.[A-Za-z0-9]\{6\}$')
check_eq "rsync: no temp-name objects left in S3" 0 "$leftover"
nobj=$(awss3 s3api list-objects-v2 --bucket "$TEST_BUCKET" --prefix w/tree/ --query 'length(Contents)' --output text)
check_eq "rsync: exactly one object per file" "$(find "$tree" -type f -print0 | tr -cd "\\0" | wc -c)" "$nobj"
check "rsync: mode kept" test "$(stat -c %a "$MNT/tree/a b/file with spaces.txt")" = 640
check "rsync: mtime kept" test "$(stat -c %Y "$MNT/tree/deep/big.bin")" = "$(stat -c %Y "$tree/deep/big.bin")"

# tar x into the mount.
tar -C "$tree" -cf "$T_DIR/t.tar" .
mkdir "$MNT/untar"
if tar -C "$MNT/untar" -xf "$T_DIR/t.tar"; then ok "tar x into the mount"; else not_ok "tar x into the mount"; fi
bad=0
while IFS= read -r -d '' f; do
	rel=${f#"$tree/"}
	obj_matches "w/untar/$rel" "$f" || { bad=$((bad + 1)); diag "S3 differs: $rel"; }
	[ "$(xa "$MNT/untar/$rel" state)" = ingested ] || bad=$((bad + 1))
done < <(find "$tree" -type f -print0)
check_eq "tar: every file ingested and byte-identical" 0 "$bad"

# Browsing: ls, stat, cat, cp out of the mount.
check "ls lists what was written" bash -c "ls '$MNT/tree/a b' | grep -q 'file with spaces.txt'"
check "cat reads back" cmp -s "$MNT/tree/deep/big.bin" "$tree/deep/big.bin"
check_eq "stat size" "$((100 * M))" "$(stat -c %s "$MNT/f$((100 * M))")"
check_eq "user.lzfs.key names the object" "w/dd16m" "$(xa "$MNT/dd16m" key)"

# Nothing ingested twice, nothing left over.
uploads=$("$S3SERVER" uploads "$S3_DIR" | jq 'length')
check_eq "no multipart upload left open" 0 "$uploads"
check "the daemon logged no error" bash -c "! grep -q ' error: ' '$LZFS_LOG'"
