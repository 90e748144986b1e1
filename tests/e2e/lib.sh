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
	local i
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[$i]}" >/dev/null 2>&1 || true; done
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
