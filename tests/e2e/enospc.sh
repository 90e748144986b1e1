#!/usr/bin/env bash
# ENOSPC: the spool (and the catalog in it) on a small tmpfs. Writers that
# fill it get ENOSPC (or EIO) quickly and cleanly, never a hang; files closed
# before stay ingested and identical; the catalog stays sound; once space
# returns, new files are ingested and nothing stays pending.
. "$(dirname "$0")/lib.sh"
require_fuse "enospc"
HELP=$LZFS_ROOT/tests/e2e/helpers
s3_start
M=$((1024 * 1024))
SMALL=${ENOSPC_MB:-40}
SPOOL_OVERRIDE=$T_DIR/tmpfs
mkdir -p "$SPOOL_OVERRIDE"
mount -t tmpfs -o "size=${SMALL}m,mode=0755" tmpfs "$SPOOL_OVERRIDE" || { skip "enospc" "cannot mount a tmpfs"; exit 0; }
at_exit "umount -l '$SPOOL_OVERRIDE'"
lzfs_mount e -o "part_size=5M,retry_interval=1,retry_budget=5" || exit 1
src=$T_DIR/src
mkdir -p "$src"

head -c $((6 * M + 3)) /dev/urandom >"$src/before1"
head -c 70000 /dev/urandom >"$src/before2"
cp "$src/before1" "$MNT/before1" && cp "$src/before2" "$MNT/before2"
ingested_ok "a file closed before the spool fills (multipart)" "$MNT/before1" e/before1 "$src/before1"
ingested_ok "a small file closed before the spool fills" "$MNT/before2" e/before2 "$src/before2"

# Fill the spool: one big writer and 4 small ones, each until write() fails.
out=$(timeout 120 python3 - "$MNT" <<'PY'
import errno, os, sys
mnt = sys.argv[1]
res = {}
def fill(name, chunk):
    fd = os.open(os.path.join(mnt, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    err = None
    try:
        while n < 1 << 30:
            n += os.write(fd, os.urandom(chunk))
    except OSError as e:
        err = errno.errorcode[e.errno]
    try:
        os.close(fd)
        cl = "0"
    except OSError as e:
        cl = errno.errorcode[e.errno]
    return "%s write=%s close=%s bytes=%d" % (name, err, cl, n)
print(fill("big", 1 << 20))
for i in range(4):
    print(fill("small%d" % i, 4096))
PY
)
rc=$?
sed 's/^/# /' <<<"$out"
check_eq "writers filling the spool end without a hang" 0 "$rc"
bad=$(grep -vcE 'write=(ENOSPC|EIO|EDQUOT) ' <<<"$out")
check_eq "every writer got ENOSPC/EIO from write()" 0 "$bad"
check "statfs through the mount shows the spool is full" \
	test "$(stat -f -c %a "$MNT")" -lt $((2 * M / $(stat -f -c %S "$MNT")))

ingested_ok "the file closed before is still ingested" "$MNT/before1" e/before1 "$src/before1"
check "its spool copy is intact" cmp -s "$SPOOL/before1" "$src/before1"
check "the small one's spool copy is intact" cmp -s "$SPOOL/before2" "$src/before2"
check "the catalog reads while the spool is full" "$LZFSCTL" -c "$CATALOG" stat before1
check "the daemon still answers" ls "$MNT"
# Space returns: the daemon carries on without a restart.
mount -o remount,size=400m "$SPOOL_OVERRIDE"
head -c $((7 * M)) /dev/urandom >"$src/after"
if cp "$src/after" "$MNT/after"; then ok "writes succeed once space returns"; else not_ok "writes succeed once space returns"; fi
ingested_ok "a file written after space returned is ingested" "$MNT/after" e/after "$src/after"
left=?
for i in $(seq 1 60); do
	left=$(sqlite3 -readonly "$CATALOG" "SELECT count(*) FROM objects WHERE current = 1 AND state IN (0, 1)")
	[ "$left" = 0 ] && break
	sleep 1
done
check_eq "nothing stays pending once space returned" 0 "$left"
for f in big small0 small1 small2 small3; do
	[ -e "$SPOOL/$f" ] || continue
	st=$(xa "$MNT/$f" state)
	if [ "$st" = ingested ] && obj_matches "e/$f" "$SPOOL/$f"; then
		ok "$f (cut by ENOSPC) is in S3 as it is in the spool"
	elif [ -z "$st" ]; then
		diag "$f: no catalog row (left for the rescanner)"
		ok "$f (cut by ENOSPC) stays in the spool"
	else
		not_ok "$f (cut by ENOSPC): state $st"
	fi
done
check "catalog integrity" "$LZFSCTL" -c "$CATALOG" check
check "the spool-full condition was logged" grep -q "spool full" "$LZFS_LOG"
