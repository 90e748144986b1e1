#!/usr/bin/env bash
# The configuration file end to end: lzfs --check-config, mounts whose options
# come from a section (by -o mount=, by source name, by mountpoint), command
# line over file, errors with FILE:LINE before anything is mounted, secrets
# refused, and every lzfs option known to the file and to lzfs.conf(5).
. "$(dirname "$0")/lib.sh"
require_fuse "config file"
s3_start
creds=$(make_creds)
conf=$T_DIR/lzfs.conf
mkdir -p "$T_DIR/m1.mnt" "$T_DIR/m1.spool" "$T_DIR/m2.mnt" "$T_DIR/m2.spool"
cat >"$conf" <<EOF
; test configuration
[global]
endpoint = $S3_ENDPOINT
credentials = $creds
part_size = 16M
log_level = debug
[m1]
url = s3://$TEST_BUCKET/m1
mountpoint = $T_DIR/m1.mnt
landing = $T_DIR/m1.spool
max_inflight_parts = 4
[m2]
url = s3://$TEST_BUCKET/m2
mountpoint = $T_DIR/m2.mnt
spool = $T_DIR/m2.spool
durability = async
EOF

# --check-config ---------------------------------------------------------
out=$("$LZFS" --check-config -o "config=$conf" 2>&1)
rc=$?
check_eq "--check-config of a good file exits 0" 0 "$rc"
check "it prints every section" grep -q '^\[m2\]' <<<"$out"
check "it shows where a value comes from ([global] line)" \
	grep -qE "^part_size += 16M +; $conf:5\$" <<<"$out"
check "it shows section values" grep -qE "^max_inflight_parts += 4 +; $conf:11\$" <<<"$out"
check "it shows defaults" grep -qE '^mem_limit += 256M +; default$' <<<"$out"
check "aliases resolve (spool -> landing)" grep -qE "^landing += $T_DIR/m2.spool +; $conf:15\$" <<<"$out"

out=$("$LZFS" --check-config -o "config=$conf,part_size=32M,max_parts=500" m1 2>&1)
check_eq "--check-config NAME exits 0" 0 "$?"
check "the command line wins over the file" grep -qE '^part_size += 32M +; command line$' <<<"$out"
lacks() { ! grep -q -- "$1" <<<"$2"; }
check "only the named section is printed" lacks '^\[m2\]' "$out"
check "the credentials path is shown (not a secret)" grep -q "^credentials *= $creds" <<<"$out"

out=$("$LZFS" --check-config -o "config=$conf" nosuch 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "no section \[nosuch\] (sections: m1, m2)" <<<"$out"; then
	ok "--check-config of an unknown section exits 1 and lists the sections"
else
	not_ok "--check-config of an unknown section"; diag "exit $rc: $out"
fi

# expect_bad DESC PATTERN FILE-CONTENT: both --check-config and a mount fail
# with PATTERN (which names FILE:LINE) in one line, and nothing is mounted.
n=0
expect_bad() {
	local desc=$1 pat=$2 text=$3
	n=$((n + 1))
	local f=$T_DIR/bad$n.conf
	printf '%s\n' "$text" >"$f"
	pat=${pat//FILE/$f}
	local out rc out2 rc2
	out=$("$LZFS" --check-config -o "config=$f" 2>&1)
	rc=$?
	out2=$(timeout 30 "$LZFS" -o "config=$f,mount=x" 2>&1 </dev/null)
	rc2=$?
	if [ $rc -eq 1 ] && grep -qF -- "$pat" <<<"$out" && [ $rc2 -eq 1 ] &&
		grep -qF -- "$pat" <<<"$out2" && [ "$(grep -c . <<<"$out2")" -eq 1 ] &&
		! mountpoint -q "$T_DIR/m1.mnt"; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "want: $pat"; diag "check-config (exit $rc): $out"; diag "mount (exit $rc2): $out2"
	fi
}
mp=$T_DIR/m1.mnt
expect_bad "bad value: FILE:LINE and the rule" "FILE:3: part_size=1M: expected a size from 5M to 5G" \
	"[x]
url = s3://$TEST_BUCKET/x
part_size = 1M"
expect_bad "unknown key: FILE:LINE and a suggestion" "FILE:4: unknown key 'drain_timout' (did you mean 'drain_timeout'?)" \
	"[x]
url = s3://$TEST_BUCKET/x
mountpoint = $mp
drain_timout = 5"
expect_bad "repeated key" "FILE:3: spool: already set at line 2 (as landing)" \
	"[x]
landing = /tmp
spool = /tmp"
expect_bad "relative path" "FILE:2: landing=spool: expected an absolute path" \
	"[x]
landing = spool"
expect_bad "malformed section name" "FILE:1: [a b]: a section name" "[a b]"
expect_bad "url in [global]" "FILE:2: url belongs in a mount's section" \
	"[global]
url = s3://$TEST_BUCKET/x"
expect_bad "syntax error" "FILE:2: expected KEY = VALUE" \
	"[x]
just some words"
expect_bad "a section without landing" "FILE:1: [x] needs landing = DIR" \
	"[x]
url = s3://$TEST_BUCKET/x
mountpoint = $mp"

# secrets: refused, never echoed, in the file or in the endpoint
printf '[x]\nurl = s3://%s/x\naws_secret_access_key = Sup3rS3cretValue\n' "$TEST_BUCKET" >"$T_DIR/secret.conf"
out=$("$LZFS" --check-config -o "config=$T_DIR/secret.conf" 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "secret.conf:3: 'aws_secret_access_key': secrets are not allowed" <<<"$out" &&
	grep -q "credentials file (mode 0600)" <<<"$out" && ! grep -q Sup3rS3cretValue <<<"$out"; then
	ok "an inline secret is refused, with FILE:LINE and without its value"
else
	not_ok "an inline secret is refused"; diag "exit $rc: $out"
fi
printf '[x]\nendpoint = https://AKIAX:Sup3rS3cretValue@s3.example.org\n' >"$T_DIR/secret2.conf"
out=$("$LZFS" --check-config -o "config=$T_DIR/secret2.conf" 2>&1)
check "user:password@ in the endpoint is refused" grep -q 'secret2.conf:2: endpoint: user:password@' <<<"$out"
check "... without echoing it" lacks Sup3rS3cretValue "$out"
out=$("$LZFS" --check-config -o "config=$conf,endpoint=http://AKIAX:Sup3rS3cretValue@127.0.0.1:1" m1 2>&1)
check "a command-line endpoint's password is masked in the output" grep -q 'endpoint *= http://\*\*\*@127.0.0.1:1' <<<"$out"
check "... and appears nowhere" lacks Sup3rS3cretValue "$out"
cp "$conf" "$T_DIR/open.conf"; chmod 666 "$T_DIR/open.conf"
out=$("$LZFS" --check-config -o "config=$T_DIR/open.conf" 2>&1)
check "a world-writable file is refused" grep -q "writable by every user" <<<"$out"
out=$("$LZFS" -o "config=$T_DIR/none.conf,mount=m1" 2>&1)
check "a missing -o config= file is an error" grep -q "none.conf: No such file" <<<"$out"

# mounts ------------------------------------------------------------------
# mount_cfg NAME-OF-MNT ARGS...: lzfs -f ARGS in the background, waits for MNT.
mount_cfg() {
	local mnt=$1; shift
	LZFS_LOG=$T_DIR/$(basename "$mnt").log.$RANDOM
	"$LZFS" -f "$@" 2>"$LZFS_LOG" &
	LZFS_PID=$!
	at_exit "lzfs_umount '$mnt' $LZFS_PID"
	for _ in $(seq 100); do
		mountpoint -q "$mnt" && return 0
		kill -0 $LZFS_PID 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$LZFS_LOG" | tail -5
	return 1
}
head -c 300000 /dev/urandom >"$T_DIR/src1"
if mount_cfg "$T_DIR/m1.mnt" -o "config=$conf,mount=m1,part_size=32M"; then
	ok "-o mount=NAME mounts the section (url and mountpoint from the file)"
	cp "$T_DIR/src1" "$T_DIR/m1.mnt/a.bin"
	check "a file written arrives in S3 under the section's url" obj_matches m1/a.bin "$T_DIR/src1"
	check "the command line overrode the file (part_size 32M)" grep -q "part_size 33554432" "$LZFS_LOG"
	check "[global] applied (log_level=debug)" grep -q "debug:" "$LZFS_LOG"
	check "the spool is the section's landing" test -f "$T_DIR/m1.spool/a.bin"
	lzfs_umount "$T_DIR/m1.mnt" $LZFS_PID
else
	not_ok "-o mount=NAME mounts the section"
fi

if mount_cfg "$T_DIR/m2.mnt" -o "config=$conf" m2; then
	ok "a source that is not s3:// names the section (fstab style)"
	cp "$T_DIR/src1" "$T_DIR/m2.mnt/b.bin"
	sleep 1 # durability=async: the upload follows close()
	for _ in $(seq 50); do obj_matches m2/b.bin "$T_DIR/src1" && break; sleep 0.2; done
	check "its file arrives under m2/ (durability=async from the section)" obj_matches m2/b.bin "$T_DIR/src1"
	lzfs_umount "$T_DIR/m2.mnt" $LZFS_PID
else
	not_ok "a source that is not s3:// names the section"
fi

if mount_cfg "$T_DIR/m1.mnt" -o "config=$conf" "s3://$TEST_BUCKET/other" "$T_DIR/m1.mnt/"; then
	ok "an s3:// source with a mountpoint finds the section by mountpoint"
	cp "$T_DIR/src1" "$T_DIR/m1.mnt/c.bin"
	check "the source URL wins over the section's" obj_matches other/c.bin "$T_DIR/src1"
	check "the section's landing is used" test -f "$T_DIR/m1.spool/c.bin"
	lzfs_umount "$T_DIR/m1.mnt" $LZFS_PID
else
	not_ok "an s3:// source finds the section by mountpoint"
fi

# every option lzfs accepts is a key of the file and is documented --------
out=$("$LZFS" --check-config -o "config=$conf" m1 2>&1)
man5=$LZFS_ROOT/docs/man/lzfs.conf.5
missing=()
undocumented=()
for name in $(grep -oE '^\s*OPT\("[a-z_]+' "$LZFS_ROOT/fuse/lzfs_main.c" | sed 's/.*"//' | sort -u); do
	case $name in
	spool | virtual_host | config | mount) ;;
	*) grep -qE "^;?$name( |\$)" <<<"$out" || missing+=("$name") ;;
	esac
	grep -qE "^\.B[IR]? $name( |=|\$)" "$man5" || undocumented+=("$name")
done
check_eq "every -o option of lzfs is a configuration key" "" "${missing[*]}"
check_eq "every -o option of lzfs is in lzfs.conf(5)" "" "${undocumented[*]}"
