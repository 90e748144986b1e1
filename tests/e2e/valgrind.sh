#!/usr/bin/env bash
# The daemon under valgrind memcheck for a short run: a mount, a few files
# (small, multipart, renamed, unlinked, with xattrs, under a few S3 503s),
# unmount. No invalid read or write, no use of uninitialised memory, no
# definite leak.
. "$(dirname "$0")/lib.sh"
require_fuse "valgrind"
command -v valgrind >/dev/null || { skip "daemon under valgrind" "valgrind is not installed"; exit 0; }
s3_start
MNT=$T_DIR/vg.mnt SPOOL=$T_DIR/vg.spool
mkdir -p "$MNT" "$SPOOL"
VGLOG=$T_DIR/valgrind.log
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --track-origins=yes --error-exitcode=99 --log-file="$VGLOG" \
	"$LZFS" -f -o "endpoint=$S3_ENDPOINT,credentials=$(make_creds),landing=$SPOOL,part_size=5M,retry_budget=20,log_level=debug" \
	"s3://$TEST_BUCKET/vg" "$MNT" 2>"$T_DIR/vg.log" &
VGPID=$!
at_exit "fusermount3 -uz '$MNT'; kill -9 $VGPID"
for i in $(seq 1 600); do mountpoint -q "$MNT" && break; kill -0 $VGPID 2>/dev/null || break; sleep 0.1; done
check "lzfs mounts under valgrind" mountpoint -q "$MNT"
head -c $((6 * 1024 * 1024 + 7)) /dev/urandom >"$T_DIR/big"
cp "$T_DIR/big" "$MNT/big"
printf 'small\n' >"$MNT/small"
mkdir -p "$MNT/d/e"
printf 'x\n' >"$MNT/d/e/x"
setfattr -n user.run -v 42 "$MNT/small"
mv "$MNT/small" "$MNT/d/small"
ln -s d/small "$MNT/link"
s3_fault '{"error_rate":0.3,"error_status":503,"seed":5}' >/dev/null
for i in 1 2 3; do printf 'retry %s\n' $i >"$MNT/r$i"; done
s3_fault off >/dev/null
rm "$MNT/r1"
check_eq "files read back through the mount" "small" "$(cat "$MNT/d/small")"
ingested_ok "multipart file ingested under valgrind" "$MNT/big" vg/big "$T_DIR/big"
fusermount3 -u "$MNT"
rc=0
wait $VGPID || rc=$?
check_eq "the daemon exits cleanly after unmount (valgrind found no errors)" 0 "$rc"
errors=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$VGLOG" | awk '{print $3}')
lost=$(grep -oE 'definitely lost: [0-9,]+ bytes' "$VGLOG" | awk '{print $3}' | tr -d ,)
diag "valgrind: ${errors:-?} errors, ${lost:-0} bytes definitely lost"
check_eq "memcheck: no invalid access or uninitialised use" 0 "${errors:-?}"
check_eq "memcheck: no definite leak" 0 "${lost:-0}"
[ "${errors:-1}" = 0 ] || grep -E '^==[0-9]+== (Invalid|Conditional|Use of|  (at|by) )' "$VGLOG" | head -30 | sed 's/^/# /'
