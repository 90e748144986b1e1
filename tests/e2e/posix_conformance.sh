#!/usr/bin/env bash
# POSIX conformance of the mount: every supported operation and the errno of
# every refused one, checked with python's os module (tests/e2e/helpers/
# posix.py), then a look at what reached S3 and the catalog.
. "$(dirname "$0")/lib.sh"
require_fuse "posix conformance"
s3_start
lzfs_mount pc || exit 1
python3 "$LZFS_ROOT/tests/e2e/helpers/posix.py" "$MNT"
fails=$?
T_FAILS=$((T_FAILS + fails))

# What the operations left in S3: renamed and rewritten files under their
# final keys, nothing under the old names, symlinks as objects.
keys=$(awss3 s3api list-objects-v2 --bucket "$TEST_BUCKET" --prefix pc/ --query 'Contents[].Key' --output text | tr '\t' '\n' | sort)
has() { grep -qxF "$1" <<<"$keys"; }
check "S3 has the renamed file under its final name only" bash -c "$(declare -f has); keys='$keys'; has pc/r2 && ! has pc/r1 && ! has pc/r3"
check "S3 has the moved directory's file under the new name" bash -c "$(declare -f has); keys='$keys'; has pc/rd2/sub/x && ! has pc/rd/sub/x"
check "S3 has the symlink, not the unlinked one" bash -c "$(declare -f has); keys='$keys'; has pc/sl2 && ! has pc/slm && ! has pc/sl"
check "no object for refused names" bash -c "$(declare -f has); keys='$keys'; ! has pc/hard && ! has pc/fifo && ! has pc/sock"
check "unlinked files are gone from S3" bash -c "$(declare -f has); keys='$keys'; ! has pc/u && ! has pc/uo"
cp "$MNT/a" "$T_DIR/a.copy"
ingested_ok "truncated and regrown file is right in S3" "$MNT/a" pc/a "$T_DIR/a.copy"
