#!/usr/bin/env bash
# Security: credentials files are checked (mode, owner, type); the secret
# key never reaches a log line, an error message, the catalog or S3, even
# at log_level=debug with S3 errors and retries; the daemon cannot dump
# core; with allow_other the kernel enforces file modes
# (default_permissions), so another user cannot read a 0600 file of root.
. "$(dirname "$0")/lib.sh"
require_fuse "security"
# A secret that appears nowhere else, so any occurrence is a leak.
SECRET="s3cr3t-$RANDOM$RANDOM-$RANDOM/Zq+w"
export AWS_SECRET_ACCESS_KEY=$SECRET LZFS_TEST_SECRET_KEY=$SECRET
s3_start
NOBODY=65534

# ---- credentials files ----
mkdir -p "$T_DIR/mnt0" "$T_DIR/spool0"
base="endpoint=$S3_ENDPOINT,landing=$T_DIR/spool0"
creds=$(make_creds)
# refused CREDSFILE DESC PATTERN
refused() {
	local out rc
	out=$(timeout 60 "$LZFS" -o "$base,credentials=$1" s3://lzfs-test "$T_DIR/mnt0" 2>&1 </dev/null)
	rc=$?
	if [ $rc -ne 0 ] && grep -qiE "$3" <<<"$out" && ! mountpoint -q "$T_DIR/mnt0"; then ok "$2"
	else not_ok "$2"; diag "exit $rc: $out"; mountpoint -q "$T_DIR/mnt0" && fusermount3 -u "$T_DIR/mnt0"; fi
	ERRS+="$out"$'\n'
}
ERRS=""
for m in 640 604 660 644 400; do
	cp "$creds" "$T_DIR/c$m"; chmod $m "$T_DIR/c$m"
done
refused "$T_DIR/c640" "credentials readable by the group (0640) refused" "0600|mode"
refused "$T_DIR/c604" "credentials readable by others (0604) refused" "0600|mode"
refused "$T_DIR/c660" "credentials writable by the group (0660) refused" "0600|mode"
cp "$creds" "$T_DIR/cother"; chmod 600 "$T_DIR/cother"; chown $NOBODY "$T_DIR/cother"
refused "$T_DIR/cother" "credentials owned by another user refused (they could swap in their own keys)" "owner|owned"
mkdir -p "$T_DIR/cdir"; chmod 700 "$T_DIR/cdir"
refused "$T_DIR/cdir" "a directory as credentials file refused" "regular file"
(umask 077; : >"$T_DIR/cempty")
refused "$T_DIR/cempty" "an empty credentials file refused" "no profile|aws_"
(umask 077; printf '[default]\naws_access_key_id = lzfstest\n' >"$T_DIR/cnosecret")
refused "$T_DIR/cnosecret" "credentials without a secret refused" "aws_secret_access_key"
(umask 077; printf '[default]\naws_access_key_id = lzfstest\naws_secret_access_key = %s-wrong\n' "$SECRET" >"$T_DIR/cwrong")
refused "$T_DIR/cwrong" "a wrong secret is refused at mount" "access denied|SignatureDoesNotMatch"
check "0400 (read-only for the owner) is accepted" bash -c \
	"timeout 60 '$LZFS' -o '$base,credentials=$T_DIR/c400' s3://lzfs-test '$T_DIR/mnt0' && fusermount3 -u '$T_DIR/mnt0'"
check "no secret in any error message" bash -c "! grep -qF -- '$SECRET' <<<\"\$1\"" _ "$ERRS"

# ---- a full run at debug level: the secret reaches no log line ----
# The daemon gets its keys from the file only, as in production.
export -n AWS_SECRET_ACCESS_KEY LZFS_TEST_SECRET_KEY # kept for the credentials file, not passed on
chmod 711 "$T_DIR" # other users reach the mount point, nothing else
lzfs_mount sec -o "allow_other,part_size=5M,retry_budget=5,retry_interval=1,log_file=$T_DIR/sec.file.log" || exit 1
export AWS_SECRET_ACCESS_KEY=$SECRET
head -c $((11 * 1024 * 1024)) /dev/urandom >"$T_DIR/big"
cp "$T_DIR/big" "$MNT/big"
printf 'small\n' >"$MNT/small"
s3_fault '{"error_rate":0.3,"error_status":503,"seed":3}' >/dev/null
cp "$T_DIR/big" "$MNT/big503"
s3_fault '{"reset_rate":0.3,"seed":4}' >/dev/null
for i in 1 2 3 4 5; do printf 'reset %s\n' $i >"$MNT/reset$i"; done
s3_fault off >/dev/null
mv "$MNT/small" "$MNT/small2"
setfattr -n user.k -v v "$MNT/small2"
ln -s small2 "$MNT/link"
rm "$MNT/reset1"
ingested_ok "the workload went through (multipart under 503s)" "$MNT/big503" sec/big503 "$T_DIR/big"
check "the workload logged S3 errors and retries" grep -q "retrying in" "$T_DIR/sec.file.log"
check "the log file is not world-readable" test "$(( $(stat -c %#a "$T_DIR/sec.file.log") & 4 ))" = 0
logs="$T_DIR/sec.file.log $LZFS_LOG"
check "the secret is in no log line (log_level=debug)" bash -c "! grep -qF -- '$SECRET' $logs"
check "no signature or Authorization header in the log" bash -c "! grep -qiE 'Signature=|Authorization:' $logs"
check "the secret is not in the catalog" bash -c "! grep -qaF -- '$SECRET' '$SPOOL/.lzfs/'*"
check "the secret is not in the spool" bash -c "! grep -rqaF -- '$SECRET' '$SPOOL'"
check "the secret is not in any object or its metadata" bash -c "! grep -rqaF -- '$SECRET' '$S3_DIR/data'"
check "the secret is not in the daemon's command line or environment" \
	bash -c "! tr '\0' '\n' </proc/$LZFS_PID/cmdline | grep -qF -- '$SECRET' && ! tr '\0' '\n' </proc/$LZFS_PID/environ | grep -qF -- '$SECRET'"

# ---- default_permissions with allow_other ----
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups -- "$@"; }
printf 'root only\n' >"$MNT/private"; chmod 600 "$MNT/private"
printf 'for all\n' >"$MNT/public"; chmod 644 "$MNT/public"
mkdir -m 700 "$MNT/privdir"; mkdir -m 1777 "$MNT/shared"
check "another user can read a 0644 file (allow_other works)" as_nobody cat "$MNT/public"
if as_nobody cat "$MNT/private" >/dev/null 2>"$T_DIR/err"; then not_ok "another user cannot read a 0600 file of root"
else check "another user cannot read a 0600 file of root (EACCES)" grep -q "Permission denied" "$T_DIR/err"; fi
if as_nobody ls "$MNT/privdir" >/dev/null 2>&1; then not_ok "another user cannot list a 0700 directory of root"
else ok "another user cannot list a 0700 directory of root"; fi
if as_nobody sh -c "printf x >'$MNT/public'" 2>/dev/null; then not_ok "another user cannot write a 0644 file of root"
else ok "another user cannot write a 0644 file of root"; fi
if as_nobody sh -c "printf x >'$MNT/newfile'" 2>/dev/null; then not_ok "another user cannot create in a 0755 directory of root"
else ok "another user cannot create in a 0755 directory of root"; fi
if as_nobody chmod 666 "$MNT/private" 2>/dev/null; then not_ok "another user cannot chmod root's file"
else ok "another user cannot chmod root's file"; fi
if as_nobody setfattr -n user.x -v y "$MNT/public" 2>/dev/null; then not_ok "another user cannot set xattrs on root's file"
else ok "another user cannot set xattrs on root's file"; fi
check "another user can write in a 1777 directory" as_nobody sh -c "printf 'mine\n' >'$MNT/shared/n'"
check_eq "the file is owned by that user in the spool" "$NOBODY:$NOBODY" "$(stat -c %u:%g "$SPOOL/shared/n")"
check_eq "and in the catalog" "$NOBODY $NOBODY" \
	"$(sqlite3 -readonly "$CATALOG" "SELECT uid, gid FROM objects WHERE path = 'shared/n' AND current = 1" | tr '|' ' ')"
if as_nobody rm "$MNT/private" 2>/dev/null; then not_ok "another user cannot unlink root's file"
else ok "another user cannot unlink root's file"; fi
check "root's 0600 file is still there" test -f "$SPOOL/private"

# ---- no core dump ----
# The wait status says whether the kernel dumped core (WCOREDUMP), wherever
# core_pattern sends it. Control: an ordinary process with the same limit.
fusermount3 -u "$MNT"; wait "$LZFS_PID" 2>/dev/null
core_dir=$T_DIR/cores
mkdir -p "$core_dir"
dumped=$(cd "$core_dir" && python3 - "$LZFS" "$MNT" \
	"endpoint=$S3_ENDPOINT,credentials=$(make_creds),landing=$SPOOL" "s3://$TEST_BUCKET/sec" <<'PY'
import os, resource, signal, subprocess, sys, time
lzfs, mnt, opts, url = sys.argv[1:5]
def unlimited():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
def aborted(argv, ready):
    p = subprocess.Popen(argv, preexec_fn=unlimited, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if ready():
            break
        time.sleep(0.1)
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGABRT)
    _, status = os.waitpid(p.pid, 0)
    return os.WCOREDUMP(status)
control = aborted(["sleep", "30"], lambda: True)
start = time.time()
daemon = aborted([lzfs, "-f", "-o", opts, url, mnt], lambda: os.path.ismount(mnt))
subprocess.call(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
# A core the daemon should not have written lands in its cwd (/): remove it.
import glob
for f in glob.glob("/core*"):
    if os.path.isfile(f) and os.stat(f).st_mtime >= start:
        os.unlink(f)
print("%d %d" % (control, daemon))
PY
)
rm -f "$core_dir"/core*
if [ "${dumped%% *}" != 1 ]; then
	skip "the daemon leaves no core dump" "no process dumps core on this machine (control: $dumped)"
else
	check_eq "a SIGABRT of the daemon dumps no core (an ordinary process does)" "1 0" "$dumped"
fi
