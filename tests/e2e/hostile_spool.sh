#!/usr/bin/env bash
# Things dropped into the spool behind the mount's back: FIFOs, sockets,
# device nodes, symlinks (absolute, relative, loops, dangling, to a
# directory outside). The daemon must never open anything outside the spool
# for a request, never hang on one, never upload outside data to S3, and
# never change a file outside the spool.
. "$(dirname "$0")/lib.sh"
require_fuse "hostile spool"
HELP=$LZFS_ROOT/tests/e2e/helpers
s3_start
lzfs_mount hs -o "retry_interval=1,retry_budget=3" || exit 1
out=$T_DIR/outside
mkdir -p "$out"
SECRET="SECRET-$RANDOM$RANDOM-not-for-s3"
printf '%s\n' "$SECRET" >"$out/secret"
chmod 640 "$out/secret"
touch -d '2000-01-01 00:00:00 UTC' "$out/secret"
setfattr -n user.o -v outside "$out/secret"
outside_state() { stat -c '%a %s %Y' "$out/secret"; getfattr -d "$out/secret" 2>/dev/null | grep -c user.; cat "$out/secret"; }
before=$(outside_state)

# ---- nodes dropped into the spool ----
mkfifo "$SPOOL/fifo"
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SPOOL/sock"
mknod "$SPOOL/zero" c 1 5
mknod "$SPOOL/loopdev" b 7 0
ln -s "$out/secret" "$SPOOL/abs"
ln -s ../outside/secret "$SPOOL/rel"
ln -s loop2 "$SPOOL/loop1"; ln -s loop1 "$SPOOL/loop2"; ln -s self "$SPOOL/self"
ln -s /nonexistent/x "$SPOOL/dangling"
ln -s "$out" "$SPOOL/dirlink"
names="fifo sock zero loopdev abs rel loop1 loop2 self dangling dirlink"
check "ls -l of the mount completes" timeout 10 ls -la "$MNT"
check_eq "types are shown as they are" "p s c b l l l l l l l" \
	"$(for n in $names; do timeout 5 stat -c %A "$MNT/$n" | cut -c1; done | tr '\n' ' ' | sed 's/ $//')"
hung=0
for n in $names; do
	timeout 10 getfattr -h -d -m - "$MNT/$n" >/dev/null 2>&1; [ $? = 124 ] && hung=$((hung + 1))
	timeout 10 stat "$MNT/$n" >/dev/null 2>&1; [ $? = 124 ] && hung=$((hung + 1))
	timeout 10 readlink "$MNT/$n" >/dev/null 2>&1; [ $? = 124 ] && hung=$((hung + 1))
done
check_eq "stat, readlink, getfattr of every node return" 0 "$hung"
check "a FIFO opens through the mount as a kernel FIFO (O_NONBLOCK)" timeout 5 python3 -c \
	"import os,sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK))" "$MNT/fifo"
if timeout 5 head -c 16 "$MNT/zero" >/dev/null 2>&1; then not_ok "device nodes cannot be opened (nodev)";
else ok "device nodes cannot be opened (nodev)"; fi
check "the mount is nodev,nosuid" bash -c "findmnt -no OPTIONS '$MNT' | grep -q nodev && findmnt -no OPTIONS '$MNT' | grep -q nosuid"
check_eq "symlinks read back as they are" "$out/secret ../outside/secret" "$(readlink "$MNT/abs") $(readlink "$MNT/rel")"
check "open(O_NOFOLLOW) of a symlink fails" bash -c "! timeout 5 python3 -c 'import os,sys; os.open(sys.argv[1], os.O_RDONLY|os.O_NOFOLLOW)' '$MNT/abs' 2>/dev/null"
check "opening a symlink loop fails with ELOOP" bash -c "timeout 5 cat '$MNT/loop1' 2>&1 | grep -q 'Too many levels'"
check "the reserved name is not reachable through a symlink planted in the spool" \
	bash -c "ln -s .lzfs '$SPOOL/cat' && ! timeout 5 cat '$MNT/cat/catalog.db' >/dev/null 2>&1 ||
		! timeout 5 cat '$MNT/cat/catalog.db' 2>/dev/null | grep -q 'SQLite format'"

# ---- spool entries swapped while the kernel still caches a regular file ----
n=0
res=$(printf 'control\n' >"$MNT/s0"; timeout 60 python3 "$HELP/swap.py" "$MNT" "$SPOOL" s0 none "$out/secret")
sed "s/^/# control: /" <<<"$res"
check_eq "control (no swap): the same operations work on a regular file" \
	"read write truncate chmod setxattr utime" "$(grep ' ok:' <<<"$res" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
for kind in fifo socket chr symlink dirlink; do
	n=$((n + 1))
	if [ $kind = dirlink ]; then mkdir -p "$MNT/d"; f=d/secret; else f=s$n; fi
	printf 'data of %s\n' "$f" >"$MNT/$f"
	res=$(timeout 120 python3 "$HELP/swap.py" "$MNT" "$SPOOL" "$(basename "$f")" $kind "$out/secret" | tr -d '\0')
	sed "s/^/# $kind: /" <<<"$res"
	check_eq "$kind swapped in: every operation through the mount returns (none HUNG)" "7 0" \
		"$(grep -c . <<<"$res") $(grep -c HUNG <<<"$res")"
	# A read may still return the file's own ingested bytes (from S3, via
	# the catalog); anything else it returns came from outside.
	check_eq "$kind swapped in: nothing read or written outside the spool (secret, device, xattr)" 0 \
		"$(grep -v -E "^read ok:data of $f[[:space:]]*$" <<<"$res" |
			grep -c -e "$SECRET" -e 'ok:.*outside' -e '^read ok' -e '^write ok')"
	check_eq "$kind swapped in: the file outside the spool is unchanged" "$before" "$(outside_state)"
	[ $kind = dirlink ] && [ -L "$SPOOL/d" ] && { rm -f "$SPOOL/d"; mv "$SPOOL/d.real" "$SPOOL/d"; }
	rm -f "$SPOOL/s$n"
done
check_eq "the file outside the spool is unchanged (mode, size, mtime, xattrs, content)" "$before" "$(outside_state)"

# ---- pending rows whose spool file is replaced before the retry ----
s3_fault '{"down_secs":15}' >/dev/null
printf 'pending one\n' >"$MNT/p1" & w1=$!
printf 'pending two\n' >"$MNT/p2" & w2=$!
printf 'pending three\n' >"$MNT/p3" & w3=$!
wait $w1 $w2 $w3
check "files written while S3 is away are not ingested" bash -c \
	"! getfattr -n user.lzfs.state '$MNT/p1' '$MNT/p2' '$MNT/p3' 2>/dev/null | grep -q ingested"
rm "$SPOOL/p1" "$SPOOL/p2"
ln -s "$out/secret" "$SPOOL/p1"
mkfifo "$SPOOL/p2"
# The catalog, not getxattr: the kernel answers user.* on a FIFO itself.
row_state() {
	sqlite3 -readonly "$CATALOG" "SELECT CASE state WHEN 0 THEN 'pending' WHEN 1 THEN 'uploading'
		WHEN 2 THEN 'ingested' WHEN 3 THEN 'failed' ELSE 'deleted' END
		FROM objects WHERE path = '$1' AND current = 1"
}
state=""
for i in $(seq 1 60); do
	state="$(row_state p1) $(row_state p2) $(row_state p3)"
	[ "$state" = "failed failed ingested" ] && break
	sleep 1
done
check_eq "retries: symlink and FIFO in place of a pending file fail, the next file is still ingested" \
	"failed failed ingested" "$state"
"$LZFSCTL" -c "$CATALOG" stat p1 | grep -i error | sed 's/^/# p1 /'
"$LZFSCTL" -c "$CATALOG" stat p2 | grep -i error | sed 's/^/# p2 /'
copy=$T_DIR/s3copy
awss3 s3 sync --quiet "s3://$TEST_BUCKET/hs" "$copy" >/dev/null 2>&1
check "no object in S3 holds data from outside the spool" bash -c "! grep -rqF '$SECRET' '$copy'"
check_eq "the file outside the spool is still unchanged" "$before" "$(outside_state)"
lzfs_umount "$MNT" "$LZFS_PID"
check_eq "unmount completes (no request thread stuck in the spool)" 0 $?
