#!/usr/bin/env bash
# Throughput of the test S3: 1 GiB (SIZE_MIB) through the proxy and directly
# to s3rver, with awscli (multipart, 8 MiB parts, 10 threads) and with curl
# (one PUT / GET). Prints MiB/s per line, and the CPU seconds the proxy and
# s3rver spent (less sensitive to a busy machine than the rates). Loopback
# only; takes a minute or two.
#   tests/s3/bench.sh [DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
if [ $# -ge 1 ]; then DIR=$1; OWN_DIR=0; else DIR=$(mktemp -d /tmp/lzfs-s3bench.XXXXXX); OWN_DIR=1; fi
AWS=/usr/bin/aws
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

EP=$("$HERE/server" start "$DIR/s3")
cleanup() {
	"$HERE/server" stop "$DIR/s3"
	if [ "$OWN_DIR" = 1 ]; then rm -rf "$DIR"; else rm -f "$DIR/src" "$DIR/back"; fi
}
trap cleanup EXIT
DIRECT=http://127.0.0.1:$(cat "$DIR/s3/s3rver.port")
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$DIR/src"

PROXY_PID=$(cat "$DIR/s3/proxy.pid")
S3RVER_PID=$(cat "$DIR/s3/s3rver.pid")
TCK=$(getconf CLK_TCK)
cpu() { awk -v t="$TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
timed() { # LABEL CMD...
	local l=$1 t0 t1 p0 p1 s0 s1
	shift
	t0=$(date +%s.%N) p0=$(cpu "$PROXY_PID") s0=$(cpu "$S3RVER_PID")
	"$@"
	t1=$(date +%s.%N) p1=$(cpu "$PROXY_PID") s1=$(cpu "$S3RVER_PID")
	awk -v l="$l" -v a="$t0" -v b="$t1" -v m="$SIZE_MIB" -v p="$(awk -v x="$p0" -v y="$p1" 'BEGIN{print y-x}')" \
		-v s="$(awk -v x="$s0" -v y="$s1" 'BEGIN{print y-x}')" \
		'BEGIN { printf "%-42s %7.1f MiB/s  %5.1f s   cpu: proxy %5.2f s, s3rver %5.2f s\n", l, m / (b - a), b - a, p, s }'
}
via_proxy() { AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret "$AWS" --endpoint-url "$EP" "$@"; }
# s3rver's own (lenient) account, for the direct runs.
direct() { AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$AWS" --endpoint-url "$DIRECT" "$@"; }

echo "# $SIZE_MIB MiB, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
timed "aws s3 cp up,   direct to s3rver" direct s3 cp --only-show-errors "$DIR/src" s3://lzfs-test/direct
timed "aws s3 cp up,   through the proxy" via_proxy s3 cp --only-show-errors "$DIR/src" s3://lzfs-test/proxied
timed "aws s3 cp down, direct to s3rver" direct s3 cp --only-show-errors s3://lzfs-test/direct "$DIR/back"
timed "aws s3 cp down, through the proxy" via_proxy s3 cp --only-show-errors s3://lzfs-test/proxied "$DIR/back"
cmp "$DIR/src" "$DIR/back"
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user lzfstest:lzfstestsecret)
sha=$(sha256sum <"$DIR/src" | cut -d' ' -f1)
empty=$(sha256sum </dev/null | cut -d' ' -f1)
timed "curl PUT, direct to s3rver" curl -sf -o /dev/null -T "$DIR/src" "$DIRECT/lzfs-test/c-direct"
timed "curl PUT, through the proxy (signed body)" curl -sf -o /dev/null "${sig[@]}" -H "x-amz-content-sha256: $sha" \
	-T "$DIR/src" "$EP/lzfs-test/c-proxied"
timed "curl GET, direct to s3rver" curl -sf -o /dev/null "$DIRECT/lzfs-test/c-direct"
timed "curl GET, through the proxy" curl -sf -o /dev/null "${sig[@]}" -H "x-amz-content-sha256: $empty" \
	"$EP/lzfs-test/c-proxied"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
