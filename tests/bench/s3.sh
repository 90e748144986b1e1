#!/usr/bin/env bash
# Upload throughput: bench-s3 with 1, 4 and 8 parts in flight, and Debian's
# awscli (`aws s3 cp`, its default 8 MiB parts and 10 threads) on the same
# file to the same test S3 in the same run. Prints a table and appends it
# to docs/bench/s3.md.
#   SIZE_MIB=1024 (file size)  PART_MIB=8  BUILD=build
# The test S3 (node proxy verifying SHA-256 + s3rver writing to disk) runs
# on this machine too: the numbers measure client + server together.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SIZE_MIB=${SIZE_MIB:-1024}
PART_MIB=${PART_MIB:-8}
AWS=/usr/bin/aws
OUT=docs/bench/s3.md

dir=$(mktemp -d /tmp/lzfs-bench-s3.XXXXXX)
cleanup() { tests/s3/server stop "$dir/s3" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
ep=$(tests/s3/server start "$dir/s3")
export AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true

echo "bench-s3: writing a ${SIZE_MIB} MiB file" >&2
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$dir/file"
sync
load=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A rate cpu
for n in 1 4 8; do
	line=$("$BUILD/bench-s3" --endpoint "$ep" --file "$dir/file" --part-mib "$PART_MIB" \
		--inflight "$n" --key "bench/lzfs-$n")
	echo "$line" >&2
	rate[$n]=$(sed -n 's/.*MiB\/s=\([0-9.]*\).*/\1/p' <<<"$line")
	cpu[$n]=$(sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p' <<<"$line")
done

start=$(date +%s.%N)
TIMEFORMAT='%U %S'
{ time "$AWS" --endpoint-url "$ep" s3 cp --only-show-errors "$dir/file" s3://lzfs-test/bench/aws; } \
	2>"$dir/aws.time" || { cat "$dir/aws.time" >&2; exit 1; }
cpu[aws]=$(awk 'END { printf "%.2f", $1 + $2 }' "$dir/aws.time")
end=$(date +%s.%N)
rate[aws]=$(awk -v s="$SIZE_MIB" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", s / (b - a) }')
echo "aws s3 cp: ${rate[aws]} MiB/s" >&2

ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }
table=$(
	echo "| client | parts in flight | MiB/s | vs aws s3 cp | client CPU s |"
	echo "|---|---|---|---|---|"
	for n in 1 4 8; do
		echo "| bench-s3 (lzfs) | $n | ${rate[$n]} | $(ratio "${rate[$n]}" "${rate[aws]}") | ${cpu[$n]} |"
	done
	echo "| aws s3 cp | 10 (default) | ${rate[aws]} | 1.00 | ${cpu[aws]} |"
)
echo "$table"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
	[ -s "$OUT" ] || printf '# S3 upload throughput\n\n`make bench-s3` (tests/bench/s3.sh) appends one section per run.\n'
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), ${SIZE_MIB} MiB in ${PART_MIB} MiB parts"
	echo
	echo "Machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
		"Linux $(uname -r); load average before the run: $load."
	echo "Versions: $(curl --version | head -1 | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2)," \
		"node $(node --version), $("$AWS" --version 2>&1 | cut -d' ' -f1)."
	echo "Server: the test S3 on loopback (node SigV4 proxy + s3rver), on the same machine and"
	echo "sharing its CPUs, so MiB/s is client + server; \"client CPU s\" is the uploader's own"
	echo "user + system time (bench-s3 hashes each part with SHA-256 inside that time)."
	echo
	echo "$table"
} >>"$OUT"
echo "bench-s3: appended to $OUT" >&2
