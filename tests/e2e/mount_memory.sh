#!/usr/bin/env bash
# Bounded memory: 8 concurrent writers of 512 MiB with mem_limit=128MiB.
# The daemon's peak RSS stays under mem_limit + a fixed overhead, and every
# object is right.
. "$(dirname "$0")/lib.sh"
require_fuse "mount memory"
s3_start
MEM_LIMIT_MB=128
OVERHEAD_MB=64   # stated fixed overhead: libraries, curl/TLS buffers, catalog cache, threads
lzfs_mount m -o "mem_limit=${MEM_LIMIT_MB}M,log_level=info" || exit 1
SIZE_MB=${MEMTEST_SIZE_MB:-512}
src=$T_DIR/src
mkdir -p "$src"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$src/big"
pids=()
for i in 1 2 3 4 5 6 7 8; do
	dd if="$src/big" of="$MNT/w$i" bs=1M status=none &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check_eq "8 writers of $SIZE_MB MiB: every close() returned 0" 0 "$fails"
peak_kb=$(daemon_rss_peak "$LZFS_PID")
diag "daemon peak RSS: $((peak_kb / 1024)) MiB (limit $MEM_LIMIT_MB MiB + overhead $OVERHEAD_MB MiB)"
case "$BUILD" in
*/san) skip "peak RSS <= mem_limit + overhead" "RSS means nothing under AddressSanitizer (shadow memory, quarantine)" ;;
*) check "peak RSS $((peak_kb / 1024)) MiB <= mem_limit + overhead" test "$peak_kb" -le $(((MEM_LIMIT_MB + OVERHEAD_MB) * 1024)) ;;
esac
want=$(sha256sum <"$src/big" | cut -d' ' -f1)
bad=0
for i in 1 2 3 4 5 6 7 8; do
	[ "$(xa "$MNT/w$i" state)" = ingested ] && [ "$(xa "$MNT/w$i" sha256)" = "$want" ] || bad=$((bad + 1))
done
check_eq "all 8 ingested with the right sha256" 0 "$bad"
check "one object read back with awscli is identical" obj_matches m/w5 "$src/big"
