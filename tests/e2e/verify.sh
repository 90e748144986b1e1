#!/usr/bin/env bash
# lzfsctl verify and get: files written through the mount are read back from
# S3 and checked against the catalog; an object replaced behind lzfs's back
# (with awscli) is reported, exactly that one, and get refuses it.
. "$(dirname "$0")/lib.sh"
require_fuse "lzfsctl verify/get"
s3_start
lzfs_mount v || exit 1
src=$T_DIR/src
mkdir -p "$src" "$MNT/dir/sub"

M=$((1024 * 1024))
head -c 0 /dev/urandom >"$src/empty"
head -c 1 /dev/urandom >"$src/one"
head -c $((5 * M + 1)) /dev/urandom >"$src/five"
head -c $((40 * M + 12345)) /dev/urandom >"$src/big"
head -c $((3 * M)) /dev/urandom >"$src/b"
head -c $((3 * M)) /dev/urandom >"$src/b.other"  # same size, other bytes
head -c 777 /dev/urandom >"$src/c"
cp "$src/empty" "$MNT/empty"
cp "$src/one" "$MNT/one"
cp "$src/five" "$MNT/dir/five"
cp "$src/big" "$MNT/dir/big.bin"
cp "$src/b" "$MNT/dir/sub/b.bin"
cp "$src/c" "$MNT/dir/sub/c.txt"
ln -s one "$MNT/link"
n=0
for f in empty one dir/five dir/big.bin dir/sub/b.bin dir/sub/c.txt link; do
	[ "$(xa "$MNT/$f" state)" = ingested ] && n=$((n + 1))
done
check_eq "7 objects ingested through the mount" 7 "$n"

ctl() { "$LZFSCTL" -c "$CATALOG" "$@"; }
s3o=(--endpoint "$S3_ENDPOINT")

# --- everything matches
out=$(ctl verify --all "${s3o[@]}" 2>"$T_DIR/err")
rc=$?
check_eq "verify --all: exit 0 when every object matches" 0 "$rc"
check "verify --all: summary counts 7 objects" grep -q "^checked 7 objects, $((1 + 5 * M + 1 + 40 * M + 12345 + 3 * M + 777)) bytes" <<<"$out"
check "verify --all: 0 mismatches, 0 missing, 0 errors" grep -q "^7 ok, 0 mismatches, 0 missing, 0 errors" <<<"$out"
check_eq "verify --all: nothing on stderr" "" "$(cat "$T_DIR/err")"
diag "$(head -1 <<<"$out")"
js=$(ctl --json verify --all "${s3o[@]}")
check_eq "verify --json: all_match, checked, no problems" "true 7 0" \
	"$(jq -r '"\(.all_match) \(.checked) \(.problems | length)"' <<<"$js")"
check "verify --json: MiB/s reported" jq -e '.mib_per_s > 0' <<<"$js"
out=$(ctl verify --jobs 1 dir/sub "${s3o[@]}")
check "verify of a collection checks what is below it" grep -q "^checked 2 objects" <<<"$out"
out=$(ctl verify dir/big.bin one "${s3o[@]}")
check "verify of objects by path" grep -q "^checked 2 objects, $((40 * M + 12345 + 1)) bytes" <<<"$out"
ctl verify nosuch "${s3o[@]}" 2>/dev/null
check_eq "verify of a path not in the catalog: exit 1" 1 $?
ctl verify "${s3o[@]}" 2>/dev/null
check_eq "verify without PATH or --all: usage, exit 2" 2 $?

# --- get
ctl get dir/big.bin "$T_DIR/got" "${s3o[@]}"
check_eq "get: exit 0" 0 $?
check "get: the file equals the original" cmp -s "$T_DIR/got" "$src/big"
check_eq "get: mtime of the catalog row" "$(stat -c %Y "$MNT/dir/big.bin")" "$(stat -c %Y "$T_DIR/got")"
check "get to stdout" cmp -s <(ctl get dir/five - "${s3o[@]}") "$src/five"
mkdir "$T_DIR/into"
ctl get empty "$T_DIR/into" "${s3o[@]}" && ctl get one "$T_DIR/into" "${s3o[@]}"
check "get into a directory (0 and 1 bytes)" cmp -s "$T_DIR/into/one" "$src/one"
check "get of the empty object gives an empty file" test -f "$T_DIR/into/empty" -a ! -s "$T_DIR/into/empty"
ctl get --version 1 dir/sub/c.txt "$T_DIR/c1" "${s3o[@]}" && cmp -s "$T_DIR/c1" "$src/c"
check_eq "get --version 1" 0 $?
ctl get --version 7 dir/sub/c.txt "$T_DIR/c7" "${s3o[@]}" 2>/dev/null
check_eq "get of a version that does not exist: exit 1" 1 $?
ctl get nosuch "$T_DIR/x" "${s3o[@]}" 2>/dev/null
check_eq "get of a path not in the catalog: exit 1" 1 $?
ls "$T_DIR"/*.lzfsctl-* >/dev/null 2>&1
check_eq "get leaves no temporary files" 2 $?

# --- one object replaced behind lzfs's back
awss3 s3 cp --quiet "$src/b.other" "s3://$TEST_BUCKET/v/dir/sub/b.bin"
want=$(sha256sum <"$src/b" | cut -d' ' -f1)
got=$(sha256sum <"$src/b.other" | cut -d' ' -f1)
out=$(ctl verify --all "${s3o[@]}" 2>"$T_DIR/err")
rc=$?
check_eq "verify --all after a replacement: exit 4" 4 "$rc"
check "verify: summary counts 1 mismatch" grep -q "^6 ok, 1 mismatches, 0 missing, 0 errors" <<<"$out"
check_eq "verify: exactly one problem line, naming path, key, expected, actual" \
	"lzfsctl: verify: dir/sub/b.bin (s3://$TEST_BUCKET/v/dir/sub/b.bin): SHA-256 mismatch: expected $want, actual $got" \
	"$(cat "$T_DIR/err")"
js=$(ctl --json verify --all "${s3o[@]}" 2>/dev/null)
check_eq "verify --json: the one problem" "false 1 dir/sub/b.bin v/dir/sub/b.bin sha256 $want $got" \
	"$(jq -r '"\(.all_match) \(.problems | length) \(.problems[0].path) \(.problems[0].key) \(.problems[0].problem) \(.problems[0].expected) \(.problems[0].actual)"' <<<"$js")"

ctl get dir/sub/b.bin "$T_DIR/bad" "${s3o[@]}" 2>"$T_DIR/err"
check_eq "get of the replaced object: exit 4" 4 $?
check "get of the replaced object: no DEST left" test ! -e "$T_DIR/bad"
check "get of the replaced object: says why" grep -q "SHA-256 mismatch: expected $want, actual $got" "$T_DIR/err"
cp "$src/one" "$T_DIR/keep"
ctl get dir/sub/b.bin "$T_DIR/keep" "${s3o[@]}" 2>/dev/null
check "get of the replaced object: an existing DEST is left as it was" cmp -s "$T_DIR/keep" "$src/one"
ctl get dir/sub/b.bin - "${s3o[@]}" >/dev/null 2>&1
check_eq "get of the replaced object to stdout: exit 4" 4 $?
ls "$T_DIR"/*.lzfsctl-* >/dev/null 2>&1
check_eq "a refused get leaves no temporary files" 2 $?

# --- other size, and missing
head -c 100 /dev/urandom | awss3 s3 cp --quiet - "s3://$TEST_BUCKET/v/dir/five"
awss3 s3 rm --quiet "s3://$TEST_BUCKET/v/one"
js=$(ctl --json verify --all "${s3o[@]}" 2>/dev/null)
check_eq "verify: exit 4 with size and missing problems" 4 $?
check_eq "verify --json: size, missing and sha256 problems, sorted by path" \
	"dir/five:size:$((5 * M + 1)):100 dir/sub/b.bin:sha256:$want:$got one:missing" \
	"$(jq -r '[.problems[] | [.path, .problem, (.expected // empty | tostring), (.actual // empty | tostring)] | join(":")] | sort | join(" ")' <<<"$js")"
check_eq "verify --json: counts" "4 2 1 0" "$(jq -r '"\(.ok) \(.mismatches) \(.missing) \(.errors)"' <<<"$js")"
ctl get one "$T_DIR/gone" "${s3o[@]}" 2>/dev/null
check_eq "get of an object missing in S3: exit 4" 4 $?

# --- S3 unreachable: errors, exit 5
s3_fault '{"error_rate":1,"error_status":500,"ops":["HeadObject","GetObject"]}' >/dev/null
out=$(timeout 120 "$LZFSCTL" -c "$CATALOG" verify dir/sub/c.txt "${s3o[@]}" 2>"$T_DIR/err")
check_eq "verify with S3 failing: exit 5" 5 $?
check "verify with S3 failing: the error names the object" grep -q "dir/sub/c.txt (s3://$TEST_BUCKET/v/dir/sub/c.txt): S3 error" "$T_DIR/err"
s3_fault off >/dev/null

exit 0
