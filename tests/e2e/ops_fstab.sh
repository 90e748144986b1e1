#!/usr/bin/env bash
# The fstab route: `mount -T FSTAB MOUNTPOINT` with type fuse.lzfs goes
# through mount(8) and mount.fuse3, which runs `lzfs SOURCE MOUNTPOINT -o
# OPTIONS` from the default PATH (mount(8) drops the caller's PATH, so a
# temporary directory on PATH is not enough). The test therefore works in a
# private mount namespace where /usr/local/bin holds a link to the built lzfs;
# nothing outside the namespace changes. Two lines: a section of a
# configuration file named by the source, and an s3:// source with every
# option in the line. lzfs daemonizes as under mount(8); files arrive in S3.
. "$(dirname "$0")/lib.sh"
require_fuse "fstab mount"
for t in unshare nsenter mount.fuse3; do
	command -v $t >/dev/null || { skip "fstab mount" "$t is missing"; exit 0; }
done
s3_start
creds=$(make_creds)

unshare --mount --propagation private sleep 300 &
NSPID=$!
at_exit "kill $NSPID"
sleep 0.2
ns() { nsenter -t "$NSPID" -m "$@"; }
mkdir -p "$T_DIR/bin"
ln -s "$LZFS" "$T_DIR/bin/lzfs"
ns mount --bind "$T_DIR/bin" /usr/local/bin || { not_ok "bind /usr/local/bin in the namespace"; exit 1; }
check "outside the namespace, /usr/local/bin is untouched" test ! -e /usr/local/bin/lzfs -o "$(readlink /usr/local/bin/lzfs)" != "$LZFS"

mkdir -p "$T_DIR/a.mnt" "$T_DIR/a.spool" "$T_DIR/b.mnt" "$T_DIR/b.spool"
cat >"$T_DIR/lzfs.conf" <<EOF
[global]
endpoint = $S3_ENDPOINT
credentials = $creds
[inst-a]
url = s3://$TEST_BUCKET/fstab-a
mountpoint = $T_DIR/a.mnt
landing = $T_DIR/a.spool
EOF
cat >"$T_DIR/fstab" <<EOF
# lzfs mounts
inst-a  $T_DIR/a.mnt  fuse.lzfs  _netdev,nofail,x-systemd.requires=network-online.target,config=$T_DIR/lzfs.conf  0 0
s3://$TEST_BUCKET/fstab-b  $T_DIR/b.mnt  fuse.lzfs  _netdev,noauto,x-systemd.automount,endpoint=$S3_ENDPOINT,credentials=$creds,landing=$T_DIR/b.spool  0 0
EOF

# daemon_of MNT: the pid of the lzfs serving MNT (it daemonized).
daemon_of() { pgrep -f "^lzfs .* $1 -o" | head -1; }

head -c 2000000 /dev/urandom >"$T_DIR/src"
for m in a b; do
	mnt=$T_DIR/$m.mnt
	out=$(ns timeout 60 mount -T "$T_DIR/fstab" "$mnt" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && ns mountpoint -q "$mnt"; then
		ok "mount -T fstab $m.mnt (exit 0 once the mount is up)"
	else
		not_ok "mount -T fstab $m.mnt"; diag "exit $rc: $out"; continue
	fi
	check "the mount is fuse.lzfs" bash -c "nsenter -t $NSPID -m findmnt -n -o FSTYPE '$mnt' | grep -qx fuse.lzfs"
	check "outside the namespace nothing is mounted" bash -c "! mountpoint -q '$mnt'"
	pid=$(daemon_of "$mnt")
	check "lzfs runs as a daemon" test -n "$pid"
	ns cp "$T_DIR/src" "$mnt/data.bin"
	check "a file written through the fstab mount arrives in S3" obj_matches "fstab-$m/data.bin" "$T_DIR/src"
	check "... and is kept in the spool" cmp -s "$T_DIR/src" "$T_DIR/$m.spool/data.bin"
	ns fusermount3 -u "$mnt"
	for _ in $(seq 100); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	check "fusermount3 -u unmounts and the daemon exits" bash -c "! kill -0 ${pid:-0} 2>/dev/null && ! nsenter -t $NSPID -m mountpoint -q '$mnt'"
done
