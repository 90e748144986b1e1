#!/usr/bin/env bash
# systemd integration without a running systemd: the unit passes
# `systemd-analyze verify`; lzfs speaks the notify protocol (READY, STATUS,
# WATCHDOG, STOPPING, EXTEND_TIMEOUT_USEC) to a real notify socket and logs
# structured fields to a real journal socket (both in a private mount
# namespace, read by a small receiver); SIGTERM unmounts, drains and exits 0;
# a restart after a crash detaches the dead mount; the unit's capability set
# and system call filter are enough for lzfs (setpriv with the unit's
# bounding set; strace against `systemd-analyze syscall-filter`).
. "$(dirname "$0")/lib.sh"
UNIT=$LZFS_ROOT/systemd/lzfs@.service

# --- the unit ------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify" "systemd is not installed"
else
	mkdir -p "$T_DIR/units"
	sed "s|@BINDIR@|$(dirname "$LZFS")|g" "$UNIT" >"$T_DIR/units/lzfs@.service"
	cp "$T_DIR/units/lzfs@.service" "$T_DIR/units/lzfs@inst-7.service"
	out=$(systemd-analyze verify --man=no "$T_DIR/units/lzfs@inst-7.service" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify lzfs@.service"; else
		not_ok "systemd-analyze verify lzfs@.service"; diag "exit $rc: $out"; fi
fi
check "the unit runs lzfs in the foreground on the instance's section" \
	grep -q '^ExecStart=@BINDIR@/lzfs -f -o mount=%I$' "$UNIT"
check "the unit is Type=notify with a watchdog" \
	bash -c "grep -q '^Type=notify$' '$UNIT' && grep -q '^WatchdogSec=' '$UNIT'"
# Any of these gives the service its own mount namespace: the FUSE mount
# would then be invisible to the rest of the system.
ns=$(grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|PrivateMounts|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|MountFlags|RootDirectory|RootImage|PrivateUsers)=' "$UNIT")
check_eq "the unit sets nothing that would hide the mount in a namespace" "" "$ns"

require_fuse "systemd integration"
s3_start
creds=$(make_creds)

# A receiver for unix datagram sockets: each datagram, then a separator.
cat >"$T_DIR/recv.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[3], "w").close()
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(1 << 20) + b"\n--\n")
EOF

# --- notify protocol and journal, in a private mount namespace ------------
mkdir -p "$T_DIR/sd.mnt" "$T_DIR/sd.spool"
head -c 300000 /dev/urandom >"$T_DIR/src"
cat >"$T_DIR/ns.sh" <<EOF
set -u
mkdir -p /run/systemd
mount -t tmpfs -o size=1m tmpfs /run/systemd && mkdir /run/systemd/journal || exit 1
python3 "$T_DIR/recv.py" /run/systemd/journal/socket "$T_DIR/journal.dump" "$T_DIR/j.ready" & jp=\$!
python3 "$T_DIR/recv.py" "$T_DIR/notify.sock" "$T_DIR/notify.dump" "$T_DIR/n.ready" & np=\$!
for _ in \$(seq 50); do [ -e "$T_DIR/j.ready" ] && [ -e "$T_DIR/n.ready" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$T_DIR/notify.sock" WATCHDOG_USEC=600000 "$LZFS" -f \
	-o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/sd.spool,drain_timeout=7" \
	"s3://$TEST_BUCKET/sd" "$T_DIR/sd.mnt" 2>"$T_DIR/sd.stderr" & lp=\$!
for _ in \$(seq 100); do mountpoint -q "$T_DIR/sd.mnt" && break; sleep 0.1; done
cp "$T_DIR/src" "$T_DIR/sd.mnt/a.bin"
sleep 1.5
kill -TERM \$lp
wait \$lp
echo \$? >"$T_DIR/sd.rc"
mountpoint -q "$T_DIR/sd.mnt" && echo mounted >"$T_DIR/sd.still"
sleep 0.3
kill \$jp \$np
EOF
timeout 60 unshare --mount --propagation private bash "$T_DIR/ns.sh"
nd=$(cat "$T_DIR/notify.dump" 2>/dev/null)
jd=$(tr -d '\0' <"$T_DIR/journal.dump" 2>/dev/null)
check "READY=1 once the mount is up" grep -q '^READY=1$' <<<"$nd"
check "STATUS with the landing zone's counters" \
	grep -qE '^STATUS=Mounted; 1 files ingested \(29[23]\.[0-9] KiB\), queue 0, 0 open, 0 parked$' <<<"$nd"
n=$(grep -c '^WATCHDOG=1$' <<<"$nd")
check "WATCHDOG=1 every half WATCHDOG_USEC ($n pings in ~2 s)" test "$n" -ge 3
check "STOPPING=1 at unmount" grep -q '^STOPPING=1$' <<<"$nd"
check "the stop timeout is extended to cover drain_timeout" grep -q '^EXTEND_TIMEOUT_USEC=37000000$' <<<"$nd"
check_eq "SIGTERM: exit status 0" 0 "$(cat "$T_DIR/sd.rc" 2>/dev/null)"
check "SIGTERM: unmounted" test ! -e "$T_DIR/sd.still"
check "the file reached S3" obj_matches sd/a.bin "$T_DIR/src"
# the per-file line, as journald receives it
ev=$(awk 'BEGIN{RS="\n--\n"} /MESSAGE=ingested a.bin/' <<<"$jd")
check "journal: the ingest line" grep -q '^MESSAGE=ingested a.bin -> s3://lzfs-test/sd/a.bin (300000 bytes' <<<"$ev"
check "journal: LZFS_FILE" grep -qx 'LZFS_FILE=a.bin' <<<"$ev"
check "journal: LZFS_KEY" grep -qx 'LZFS_KEY=sd/a.bin' <<<"$ev"
check "journal: LZFS_SIZE" grep -qx 'LZFS_SIZE=300000' <<<"$ev"
check "journal: PRIORITY" grep -qx 'PRIORITY=6' <<<"$ev"
check "journal: SYSLOG_IDENTIFIER" grep -qx 'SYSLOG_IDENTIFIER=lzfs' <<<"$ev"
check "journal: the unmount notice" grep -q '^MESSAGE=unmounting .*draining' <<<"$jd"
check "journal, not stderr, under systemd" bash -c "! grep -q ingested '$T_DIR/sd.stderr'"
check "no secret in the journal or the notifications" \
	bash -c "! grep -q lzfstestsecret '$T_DIR/journal.dump' '$T_DIR/notify.dump' '$T_DIR/sd.stderr'"

# --- a crash, then a restart (Restart=on-failure) ---------------------------
lzfs_mount crash || exit 1
kill -9 $LZFS_PID
wait $LZFS_PID 2>/dev/null
err=$(stat "$MNT" 2>&1)
check "after SIGKILL the mount is dead (ENOTCONN)" grep -q "not connected" <<<"$err"
# (mountpoint(1) calls the dead mount a mount point: wait for the log line)
"$LZFS" -f -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$SPOOL" "s3://$TEST_BUCKET/crash" \
	"$MNT" 2>"$T_DIR/restart.log" &
LZFS_PID=$!
at_exit "lzfs_umount '$MNT' $LZFS_PID"
for _ in $(seq 100); do grep -q "notice: mounted" "$T_DIR/restart.log" && break; sleep 0.1; done
check "the next lzfs detaches the dead mount and mounts" grep -q "notice: mounted" "$T_DIR/restart.log"
check "... and says so" grep -q "a previous lzfs died and left its mount" "$T_DIR/restart.log"
check_eq "... leaving one mount there" 1 "$(grep -c " $MNT " /proc/self/mountinfo)"
echo x >"$MNT/after-crash.txt"
check "the new mount works" obj_matches crash/after-crash.txt "$MNT/after-crash.txt"
lzfs_umount "$MNT" $LZFS_PID

# --- the unit's privileges: its capability bounding set and NoNewPrivileges --
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
if ! command -v setpriv >/dev/null; then
	skip "lzfs with the unit's capabilities" "setpriv is missing"
else
	chmod 755 "$T_DIR"
	mkdir -p "$T_DIR/caps.mnt" "$T_DIR/caps.spool"
	setpriv --no-new-privs --bounding-set "-all,$caps" "$LZFS" -f \
		-o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/caps.spool,allow_other" \
		"s3://$TEST_BUCKET/caps" "$T_DIR/caps.mnt" 2>"$T_DIR/caps.log" &
	cp=$!
	at_exit "lzfs_umount '$T_DIR/caps.mnt' $cp"
	for _ in $(seq 100); do mountpoint -q "$T_DIR/caps.mnt" && break; sleep 0.1; done
	check "lzfs mounts with only the unit's capabilities ($caps)" mountpoint -q "$T_DIR/caps.mnt"
	mkdir -m 1777 "$T_DIR/caps.mnt/drop"
	setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "head -c 100000 /dev/urandom >'$T_DIR/caps.mnt/drop/u.bin'"
	check "another user writes through the mount" obj_matches caps/drop/u.bin "$T_DIR/caps.mnt/drop/u.bin"
	check_eq "the spool keeps that user as owner (CAP_CHOWN)" 65534 "$(stat -c %u "$T_DIR/caps.spool/drop/u.bin")"
	check "no permission error in the log" bash -c "! grep -qiE 'cannot set owner|Operation not permitted' '$T_DIR/caps.log'"
	lzfs_umount "$T_DIR/caps.mnt" $cp
fi

# --- the unit's system call filter covers what lzfs calls -------------------
# expand GROUP...: the system calls of systemd's named groups, recursively
# (a bare name is itself).
expand() {
	local g
	for g in "$@"; do
		case $g in @*) ;; *) echo "$g"; continue ;; esac
		systemd-analyze syscall-filter "$g" 2>/dev/null | awk 'NR>1 && $1 !~ /^#/ {print $1}' |
			while read -r s; do
				case $s in @*) expand "$s" ;; *) echo "$s" ;; esac
			done
	done
}
filter=$(sed -n 's/^SystemCallFilter=//p' "$UNIT")
if ! command -v strace >/dev/null || ! command -v systemd-analyze >/dev/null; then
	skip "the unit's system call filter" "strace or systemd-analyze is missing"
else
	allowed=$(expand $filter | sort -u)
	mkdir -p "$T_DIR/sc.mnt" "$T_DIR/sc.spool"
	strace -f -qq -c -o "$T_DIR/strace.sum" "$LZFS" -f \
		-o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/sc.spool,part_size=5M" \
		"s3://$TEST_BUCKET/sc" "$T_DIR/sc.mnt" 2>"$T_DIR/sc.log" &
	sp=$!
	at_exit "lzfs_umount '$T_DIR/sc.mnt' $sp"
	for _ in $(seq 200); do mountpoint -q "$T_DIR/sc.mnt" && break; sleep 0.1; done
	(
		cd "$T_DIR/sc.mnt" || exit 1
		mkdir -p d/e && head -c 12000000 /dev/urandom >d/big.bin && echo hi >small.txt
		setfattr -n user.project -v x small.txt 2>/dev/null
		getfattr -d small.txt >/dev/null 2>&1
		chmod 600 small.txt && touch -d @1000000 small.txt && mv small.txt d/e/moved.txt
		ln -s d/big.bin link && ls -lR >/dev/null && cat d/big.bin >/dev/null
		printf 'x' | dd of=d/big.bin bs=1 seek=5 conv=notrunc 2>/dev/null
		rm link d/e/moved.txt && df . >/dev/null && sync
	)
	fusermount3 -u "$T_DIR/sc.mnt"
	wait $sp
	used=$(awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" {print $NF}' "$T_DIR/strace.sum" | sort -u)
	outside=$(comm -23 <(echo "$used") <(echo "$allowed") | tr '\n' ' ')
	check "strace saw lzfs at work ($(wc -w <<<"$used") system calls)" test "$(wc -w <<<"$used")" -gt 30
	check_eq "every system call lzfs made is allowed by SystemCallFilter=$filter" "" "${outside% }"
fi
