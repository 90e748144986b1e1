#!/usr/bin/env bash
# Retention and overwrite: ingested files leave the spool (evict-after), the
# mount still lists and stats them from the catalog and reads them back from
# S3; rewriting an ingested file keeps every version; overwrite=deny makes
# ingested files read-only.
. "$(dirname "$0")/lib.sh"
require_fuse "mount retention"
s3_start
lzfs_mount r -o "retention=evict-after=1s" || exit 1
M=$((1024 * 1024))
src=$T_DIR/src
mkdir -p "$src" "$MNT/d"
head -c $((13 * M + 5)) /dev/urandom >"$src/big"
head -c 777 /dev/urandom >"$src/small"
cp "$src/big" "$MNT/d/big"
cp "$src/small" "$MNT/d/small"
cp "$src/small" "$MNT/d/moved"
touch -d '2020-01-02 03:04:05 UTC' "$MNT/d/big"
for i in $(seq 1 40); do
	[ ! -e "$SPOOL/d/big" ] && [ ! -e "$SPOOL/d/small" ] && [ ! -e "$SPOOL/d/moved" ] && break
	sleep 0.5
done
check "evict-after: spool copies removed" bash -c "[ ! -e '$SPOOL/d/big' ] && [ ! -e '$SPOOL/d/small' ]"
check "evicted files are still listed" bash -c "ls '$MNT/d' | grep -qx big && ls '$MNT/d' | grep -qx small"
check_eq "stat of an evicted file comes from the catalog" "$((13 * M + 5))" "$(stat -c %s "$MNT/d/big")"
check_eq "mtime of an evicted file" 1577934245 "$(stat -c %Y "$MNT/d/big")"
check_eq "state of an evicted file" ingested "$(xa "$MNT/d/big" state)"
check "cat of an evicted file equals the original" cmp -s "$MNT/d/big" "$src/big"
check_eq "sha256sum through the mount" "$(sha256sum <"$src/small" | cut -d' ' -f1)" "$(sha256sum <"$MNT/d/small" | cut -d' ' -f1)"
check "reads of an evicted file stream from S3 (no restore into the spool)" bash -c "! grep -q 'd/big: restored' '$LZFS_LOG'"
cat "$src/small" >"$src/small2"; printf 'appended\n' >>"$src/small2"
for i in $(seq 1 40); do [ ! -e "$SPOOL/d/small" ] && break; sleep 0.5; done
printf 'appended\n' >>"$MNT/d/small"
check "append to an evicted file restores it first" grep -q "d/small: restored" "$LZFS_LOG"
ingested_ok "append to an evicted file: new version in S3" "$MNT/d/small" r/d/small "$src/small2"
check "the event log records the eviction" bash -c "'$LZFSCTL' -c '$CATALOG' events d/small | grep -q evicted"

# Operations on evicted files work on S3 and the catalog.
for i in $(seq 1 40); do [ ! -e "$SPOOL/d/moved" ] && break; sleep 0.5; done
mv "$MNT/d/moved" "$MNT/d/moved2"
check "rename of an evicted file: new name readable" cmp -s "$MNT/d/moved2" "$src/small"
check "rename of an evicted file: old object gone" bash -c "! awss3 s3api head-object --bucket $TEST_BUCKET --key r/d/moved >/dev/null 2>&1"
chmod 600 "$MNT/d/moved2"
check_eq "chmod of an evicted file" 600 "$(stat -c %a "$MNT/d/moved2")"
for i in $(seq 1 40); do [ ! -e "$SPOOL/d/moved2" ] && break; sleep 0.5; done
rm "$MNT/d/moved2"
check "unlink of an evicted file removes it" test ! -e "$MNT/d/moved2"
check "unlink of an evicted file deletes the object" bash -c "! awss3 s3api head-object --bucket $TEST_BUCKET --key r/d/moved2 >/dev/null 2>&1"

# Overwrite twice: three versions, all readable.
printf 'one\n' >"$MNT/v.txt"
printf 'two\n' >"$MNT/v.txt"
printf 'three\n' >"$MNT/v.txt"
check_eq "current content" three "$(cat "$MNT/v.txt")"
check_eq "current version" 3 "$(xa "$MNT/v.txt" version)"
v1=$(awss3 s3 cp --quiet "s3://$TEST_BUCKET/r/.lzfs/versions/v.txt.v1" - 2>/dev/null)
v2=$(awss3 s3 cp --quiet "s3://$TEST_BUCKET/r/.lzfs/versions/v.txt.v2" - 2>/dev/null)
check_eq "version 1 kept in S3" one "$v1"
check_eq "version 2 kept in S3" two "$v2"
nver=$("$LZFSCTL" -c "$CATALOG" --json ls --versions | jq '[.[] | select(.path == "v.txt")] | length' 2>/dev/null)
check_eq "the catalog lists three versions of v.txt" 3 "$nver"
keys=$("$LZFSCTL" -c "$CATALOG" --json ls --versions | jq -r '[.[] | select(.path == "v.txt") | .key] | sort | join(" ")' 2>/dev/null)
check_eq "each version has its own key" "r/.lzfs/versions/v.txt.v1 r/.lzfs/versions/v.txt.v2 r/v.txt" "$keys"
lzfs_umount "$MNT" "$LZFS_PID"
# The retention pass is always queued: it is not a file left pending.
check "unmount with retention reports no file pending" bash -c "! grep -q 'stay pending' '$LZFS_LOG'"

# overwrite=deny
lzfs_mount deny -o "overwrite=deny" || exit 1
printf 'original\n' >"$MNT/ro.txt"
if (printf 'changed\n' >"$MNT/ro.txt") 2>"$T_DIR/err"; then not_ok "overwrite=deny refuses a rewrite"; else check "overwrite=deny refuses a rewrite with EACCES" grep -q "Permission denied" "$T_DIR/err"; fi
check_eq "content unchanged" original "$(cat "$MNT/ro.txt")"
check "the refusal is logged" grep -q "read-only (overwrite=deny)" "$LZFS_LOG"
