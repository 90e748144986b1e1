#!/usr/bin/env bash
# S3 failures during writes: with 20% 503s close() returns 0 and the object
# is right; with S3 down, close() still returns 0 (the file is safe in the
# spool, `pending`) and the object appears once S3 is back.
. "$(dirname "$0")/lib.sh"
require_fuse "mount faults"
s3_start
lzfs_mount f -o "retry_budget=4,retry_interval=1" || exit 1
M=$((1024 * 1024))
src=$T_DIR/src
mkdir -p "$src"

s3_fault '{"error_rate":0.2,"error_status":503,"seed":7}'
for i in 1 2 3; do
	head -c $((i * 9 * M + 17)) /dev/urandom >"$src/f$i"
	if cp "$src/f$i" "$MNT/f$i"; then ok "cp with 20% 503s returns 0 ($i)"; else not_ok "cp with 20% 503s returns 0 ($i)"; fi
done
for i in 1 2 3; do
	small=$T_DIR/small$i; head -c 1000 /dev/urandom >"$small"; cp "$small" "$MNT/small$i"
done
s3_fault off
for i in 1 2 3; do ingested_ok "object right despite 503s ($i)" "$MNT/f$i" "f/f$i" "$src/f$i"; done
for i in 1 2 3; do ingested_ok "small file right despite 503s ($i)" "$MNT/small$i" "f/small$i" "$T_DIR/small$i"; done
faults=$(grep -c . "$S3_DIR/faults.log" 2>/dev/null || echo 0)
check "faults were really injected ($faults)" test "$faults" -gt 0

# S3 down for a while: close() returns 0, the row is pending, then ingested.
s3_fault '{"down_secs":12}'
head -c $((11 * M)) /dev/urandom >"$src/down"
start=$SECONDS
if cp "$src/down" "$MNT/down"; then ok "cp with S3 down returns 0"; else not_ok "cp with S3 down returns 0"; fi
diag "close() returned after $((SECONDS - start)) s"
check_eq "row is pending while S3 is down" pending "$(xa "$MNT/down" state)"
check "the spool holds the file" cmp -s "$SPOOL/down" "$src/down"
check "the failure is logged" grep -q "not in S3 yet" "$LZFS_LOG"
state=""
for i in $(seq 1 60); do
	state=$(xa "$MNT/down" state)
	[ "$state" = ingested ] && break
	sleep 1
done
check_eq "ingested once S3 is back" ingested "$state"
ingested_ok "object right after the outage" "$MNT/down" f/down "$src/down"
check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq 'length')"
