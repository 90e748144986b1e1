#!/usr/bin/env bash
# Hostile file names through the mount: control bytes, invalid UTF-8, long
# names, deep trees. Each is ingested byte-identical under its own key, or,
# where S3 cannot store the key, `failed` with a reason and intact in the
# spool. lzfsctl shows them escaped. (tests/e2e/helpers/names.py)
. "$(dirname "$0")/lib.sh"
require_fuse "hostile names"
s3_start
lzfs_mount hn -o "part_size=5M" || exit 1
export T_DIR
python3 "$LZFS_ROOT/tests/e2e/helpers/names.py" "$MNT" "$SPOOL" "$CATALOG" "$S3_ENDPOINT" "$TEST_BUCKET" hn
T_FAILS=$((T_FAILS + $?))
out=$("$LZFSCTL" -c "$CATALOG" ls 2>&1)
check "lzfsctl ls escapes control bytes and invalid UTF-8" \
	bash -c "grep -qF 'cr\\rhere' <<<\"\$1\" && grep -qF 'over\\xc0\\xaflong' <<<\"\$1\" && ! grep -q \$'\\r' <<<\"\$1\"" _ "$out"
check "lzfsctl --json ls is valid JSON" bash -c "'$LZFSCTL' -c '$CATALOG' --json ls | jq -e . >/dev/null"
# A symlink made while S3 is away is stored once S3 is back.
s3_fault '{"down_secs":5}' >/dev/null
ln -s ../made/during/outage "$MNT/outage-link"
row_state() {
	sqlite3 -readonly "$CATALOG" "SELECT CASE state WHEN 0 THEN 'pending' WHEN 1 THEN 'uploading'
		WHEN 2 THEN 'ingested' WHEN 3 THEN 'failed' ELSE 'deleted' END
		FROM objects WHERE path = '$1' AND current = 1"
}
for i in $(seq 1 60); do [ "$(row_state outage-link)" = ingested ] && break; sleep 1; done
check_eq "a symlink made during an S3 outage is ingested once S3 is back" ingested "$(row_state outage-link)"
meta=$(awss3 s3api head-object --bucket "$TEST_BUCKET" --key hn/outage-link --query 'Metadata."lzfs-symlink"' --output text 2>/dev/null)
check_eq "and its object holds the target" ../made/during/outage "$meta"
check "catalog integrity" "$LZFSCTL" -c "$CATALOG" check
