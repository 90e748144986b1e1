#!/usr/bin/env bash
# Bad options, credentials, endpoints and spools: lzfs refuses to mount with
# one clear line and a non-zero exit, before daemonizing.
. "$(dirname "$0")/lib.sh"
require_fuse "mount errors"
s3_start
creds=$(make_creds)
mkdir -p "$T_DIR/mnt" "$T_DIR/spool"
base="endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/spool"

# expect_fail DESC PATTERN ARGS...: lzfs exits non-zero, stderr matches, nothing mounted.
expect_fail() {
	local desc=$1 pat=$2; shift 2
	local out rc
	out=$(timeout 60 "$LZFS" "$@" 2>&1 </dev/null)
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qiE "$pat" <<<"$out" && ! mountpoint -q "$T_DIR/mnt"; then
		ok "$desc (exit $rc)"
	else
		not_ok "$desc"
		diag "exit $rc, output: $out"
		mountpoint -q "$T_DIR/mnt" && fusermount3 -u "$T_DIR/mnt"
	fi
}

expect_fail "unknown option" "unknown option" -o "$base,frobnicate=1" s3://lzfs-test "$T_DIR/mnt"
expect_fail "missing landing" "landing=DIR" -o "endpoint=$S3_ENDPOINT,credentials=$creds" s3://lzfs-test "$T_DIR/mnt"
expect_fail "bad part_size" "part_size" -o "$base,part_size=1M" s3://lzfs-test "$T_DIR/mnt"
expect_fail "bad durability" "durability" -o "$base,durability=sometimes" s3://lzfs-test "$T_DIR/mnt"
expect_fail "bad URL" "s3://BUCKET" -o "$base" http://lzfs-test "$T_DIR/mnt"
expect_fail "missing mountpoint argument" "MOUNTPOINT|mountpoint" -o "$base" s3://lzfs-test
expect_fail "missing landing directory" "landing directory.*No such file" -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/nope" s3://lzfs-test "$T_DIR/mnt"
printf 'x' >"$T_DIR/notadir"
expect_fail "landing is a file" "not a directory" -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/notadir" s3://lzfs-test "$T_DIR/mnt"
mkdir -p "$T_DIR/ro"
mount -t tmpfs -o ro,size=1m tmpfs "$T_DIR/ro" && at_exit "umount '$T_DIR/ro'"
expect_fail "read-only landing" "not writable" -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/ro" s3://lzfs-test "$T_DIR/mnt"
cp "$creds" "$T_DIR/creds644"; chmod 644 "$T_DIR/creds644"
expect_fail "credentials readable by others" "0600|mode" -o "endpoint=$S3_ENDPOINT,credentials=$T_DIR/creds644,landing=$T_DIR/spool" s3://lzfs-test "$T_DIR/mnt"
expect_fail "missing credentials file" "credentials|No such file" -o "endpoint=$S3_ENDPOINT,credentials=$T_DIR/none,landing=$T_DIR/spool" s3://lzfs-test "$T_DIR/mnt"
(umask 077; printf '[default]\naws_access_key_id = lzfstest\naws_secret_access_key = wrong\n' >"$T_DIR/badcreds")
expect_fail "wrong secret" "access denied|SignatureDoesNotMatch" -o "endpoint=$S3_ENDPOINT,credentials=$T_DIR/badcreds,landing=$T_DIR/spool" s3://lzfs-test "$T_DIR/mnt"
expect_fail "missing bucket" "does not exist" -o "$base" s3://no-such-bucket "$T_DIR/mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail "unreachable endpoint" "cannot be reached" -o "endpoint=http://127.0.0.1:$port,credentials=$creds,landing=$T_DIR/spool" s3://lzfs-test "$T_DIR/mnt"
expect_fail "endpoint without scheme" "http://" -o "endpoint=127.0.0.1:$port,credentials=$creds,landing=$T_DIR/spool" s3://lzfs-test "$T_DIR/mnt"

out=$(timeout 20 "$LZFS" -o "$base,frobnicate=1" s3://lzfs-test "$T_DIR/mnt" 2>&1)
check_eq "the message is one line" 1 "$(grep -c . <<<"$out")"
check "no secret in any message" bash -c "! timeout 60 '$LZFS' -o 'endpoint=$S3_ENDPOINT,credentials=$T_DIR/badcreds,landing=$T_DIR/spool' s3://lzfs-test '$T_DIR/mnt' 2>&1 | grep -q wrong"
