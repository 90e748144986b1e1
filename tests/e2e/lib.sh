# Shared helpers for end-to-end tests (sourced). Output is TAP-like:
#   ok - DESC / not ok - DESC / ok - DESC # SKIP reason
# tests/run counts those lines. Each script starts its own test S3 server in
# its own temporary directory and cleans up on exit.
set -u
LZFS_ROOT=${LZFS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$LZFS_ROOT/$BUILD ;; esac
LZFS=$BUILD/lzfs
LZFSCTL=$BUILD/lzfsctl
S3SERVER=$LZFS_ROOT/tests/s3/server
# Debian's awscli, not whatever else is first on PATH.
AWS=/usr/bin/aws
[ -x "$AWS" ] || AWS=$(command -v aws || echo aws)

export AWS_ACCESS_KEY_ID=lzfstest
export AWS_SECRET_ACCESS_KEY=lzfstestsecret
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
TEST_BUCKET=lzfs-test

T_FAILS=0
T_N=0
T_DIR=$(mktemp -d /tmp/lzfs-test.XXXXXX)
T_CLEANUP=()

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILS=$((T_FAILS + 1)); echo "not ok $T_N - $*"; }
skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP $2"; }
diag() { echo "# $*"; }

# check DESC CMD...: runs CMD, ok if it exits 0.
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1"; diag "expected: $2"; diag "actual:   $3"; fi
}

at_exit() { T_CLEANUP+=("$*"); }
t_cleanup() {
	local i f
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[$i]}" >/dev/null 2>&1 || true; done
	# Daemons built with SAN=1 report to their logs: any report fails the test.
	for f in "$T_DIR"/*.log; do
		[ -f "$f" ] || continue
		if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f"; then
			not_ok "sanitizer report in $(basename "$f")"
			grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f" | head -30 | sed 's/^/# /'
		fi
	done
	if [ "$T_FAILS" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T_DIR"; else echo "# kept $T_DIR"; fi
}
trap t_cleanup EXIT

# s3_start [NAME]: starts the strict test S3 in $T_DIR/NAME; sets S3_DIR, S3_ENDPOINT.
s3_start() {
	S3_DIR=$T_DIR/${1:-s3}
	S3_ENDPOINT=$("$S3SERVER" start "$S3_DIR") || { not_ok "test S3 server starts"; exit 1; }
	at_exit "'$S3SERVER' stop '$S3_DIR'"
}
s3_fault() { "$S3SERVER" fault "$S3_DIR" "$@"; }
# awss3 ARGS...: Debian's awscli against the test S3.
awss3() { "$AWS" --endpoint-url "$S3_ENDPOINT" "$@"; }

# Writes a credentials file (mode 0600) for lzfs; prints its path.
make_creds() {
	local f=$T_DIR/credentials
	umask 077
	printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$f"
	echo "$f"
}

# Fails the script early (as one failure) when a requirement is missing.
require_fuse() {
	if [ ! -e /dev/fuse ]; then skip "$1" "/dev/fuse is missing"; exit 0; fi
}

# pg_start WHAT: a PostgreSQL server of this test's own (Debian's, in
# $T_DIR/pg on a loopback port, stopped at exit); sets PG_URL. WHAT is the
# test's name in the skip line printed when no server can run here.
pg_start() {
	PGSERVER=$LZFS_ROOT/tests/pg/server
	if ! PG_URL=$(PG_OPTS="-c fsync=off" "$PGSERVER" start "$T_DIR/pg" 2>"$T_DIR/pg-start.err"); then
		skip "$1" "no PostgreSQL server can run here: $(tail -1 "$T_DIR/pg-start.err")"
		exit 0
	fi
	at_exit "'$PGSERVER' stop '$T_DIR/pg'"
}
# pgq SQL: one query on pg_start's database, unaligned.
pgq() { "$PGSERVER" psql "$T_DIR/pg" -d lzfs -At -c "$1"; }

# lzfs_mount NAME [-o OPTS]: mounts s3://$TEST_BUCKET/NAME on $T_DIR/NAME.mnt in
# the foreground (background process), spool $T_DIR/NAME.spool. Sets MNT,
# SPOOL, CATALOG, LZFS_LOG, LZFS_PID. Extra -o options are appended.
lzfs_mount() {
	local name=$1; shift
	local extra=""
	[ "${1:-}" = "-o" ] && { extra=",$2"; shift 2; }
	MNT=$T_DIR/$name.mnt
	SPOOL=${SPOOL_OVERRIDE:-$T_DIR/$name.spool}
	CATALOG=$SPOOL/.lzfs/catalog.db
	LZFS_LOG=$T_DIR/$name.log
	mkdir -p "$MNT" "$SPOOL"
	local creds
	creds=$(make_creds)
	"$LZFS" -f -o "endpoint=$S3_ENDPOINT,credentials=$creds,landing=$SPOOL,log_level=debug$extra" \
		"s3://$TEST_BUCKET/$name" "$MNT" 2>>"$LZFS_LOG" &
	LZFS_PID=$!
	at_exit "lzfs_umount '$MNT' $LZFS_PID"
	local i
	for i in $(seq 1 100); do
		if mountpoint -q "$MNT"; then return 0; fi
		if ! kill -0 $LZFS_PID 2>/dev/null; then break; fi
		sleep 0.1
	done
	not_ok "lzfs mounts $name"
	sed 's/^/# /' "$LZFS_LOG" | tail -20
	return 1
}

# lzfs_umount MNT PID: unmounts and waits for the daemon to exit (drained).
lzfs_umount() {
	local mnt=$1 pid=$2 i
	mountpoint -q "$mnt" && fusermount3 -u "$mnt" 2>/dev/null
	for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	fusermount3 -uz "$mnt" 2>/dev/null
	return 1
}

# obj_matches KEY FILE: the S3 object (read back with awscli) equals FILE.
obj_matches() {
	local out=$T_DIR/.get.$$
	awss3 s3 cp --quiet "s3://$TEST_BUCKET/$1" "$out" >/dev/null 2>&1 && cmp -s "$out" "$2"
	local rc=$?
	rm -f "$out"
	return $rc
}

# xa FILE NAME: a user.lzfs.* attribute of FILE on the mount.
xa() { getfattr --only-values -n "user.lzfs.$2" "$1" 2>/dev/null; }

# ingested_ok DESC MOUNTFILE KEY SOURCE: state ingested, sha256 right, S3 bytes equal.
ingested_ok() {
	local desc=$1 f=$2 key=$3 src=$4
	local state sum want
	state=$(xa "$f" state)
	sum=$(xa "$f" sha256)
	want=$(sha256sum <"$src" | cut -d' ' -f1)
	if [ "$state" = ingested ] && [ "$sum" = "$want" ] && obj_matches "$key" "$src"; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "state=$state sha256=$sum want=$want key=$key"
	fi
}

# daemon_rss_peak PID: VmHWM in KiB.
daemon_rss_peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
