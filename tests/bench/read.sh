#!/usr/bin/env bash
# Read throughput of one object: the parallel reader (bench-read: 1 MiB
# reads with full read-ahead from the start as lzfsctl get does, 128 KiB
# reads with a growing window as the kernel reads the mount, and the first
# with SHA-256 as lzfsctl get/verify do), Debian's awscli
# (`aws s3 cp` download, its default 8 MiB parts and 10 threads) and one
# single-stream GET (bench-read --single), on the same object from the same
# test S3 in the same run. The modes take turns, RUNS times, and the table
# shows the median of each. Every download lands in a file on tmpfs (same
# sink for all) and is compared with the original.
#
# The test S3 (node proxy + s3rver) runs on this machine too: the numbers
# measure client + server together, on a loopback where one stream is
# limited by nothing but the server's CPU. A second table (a WAN_MIB object;
# WAN_MIB=0 skips it) is taken with the test S3's fault injection holding
# each GET for WAN_LATENCY_MS and capping its answer at WAN_BPS bytes/s, as
# one TCP stream to S3 over a long path is capped: what parallel ranged GETs
# are for. Prints the tables and appends them to docs/bench/read.md.
#   SIZE_MIB=1024 RUNS=3 WAN_MIB=256 WAN_BPS=26214400 WAN_LATENCY_MS=20 BUILD=build
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
WAN_MIB=${WAN_MIB:-256}
WAN_BPS=${WAN_BPS:-26214400}
WAN_LATENCY_MS=${WAN_LATENCY_MS:-20}
AWS=/usr/bin/aws
OUT=docs/bench/read.md

dir=$(mktemp -d /tmp/lzfs-bench-read.XXXXXX)
shm=$(mktemp -d /dev/shm/lzfs-bench-read.XXXXXX 2>/dev/null || mktemp -d /tmp/lzfs-bench-read-out.XXXXXX)
cleanup() { tests/s3/server stop "$dir/s3" >/dev/null 2>&1 || true; rm -rf "$dir" "$shm"; }
trap cleanup EXIT
ep=$(tests/s3/server start "$dir/s3")
export AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true

# upload NAME MIB: a random object bench/NAME, kept as $shm/NAME
upload() {
	echo "bench-read: writing and uploading a $2 MiB object" >&2
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$shm/$1"
	"$AWS" --endpoint-url "$ep" s3 cp --only-show-errors "$shm/$1" "s3://lzfs-test/bench/$1"
}
upload read "$SIZE_MIB"
[ "$WAN_MIB" -gt 0 ] && upload wan "$WAN_MIB"
load=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A label=(
	[reader]="lzfs reader, 1 MiB reads (lzfsctl get)"
	[reader128]="lzfs reader, 128 KiB reads (the mount)"
	[readersha]="lzfs reader, 1 MiB reads + SHA-256 (lzfsctl get/verify)"
	[aws]="aws s3 cp (10 threads, 8 MiB parts)"
	[single]="single-stream GET (bench-read --single)"
)

# one MODE NAME MIB: downloads bench/NAME, checks it, prints MiB/s
one() {
	local line start end key=bench/$2 got want
	rm -f "$shm/out"
	case "$1" in
	reader) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$key" --out "$shm/out" --sequential) ;;
	reader128) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$key" --out "$shm/out" --read-kib 128) ;;
	readersha)
		line=$("$BUILD/bench-read" --endpoint "$ep" --key "$key" --out "$shm/out" --sequential --sha256)
		got=${line##*sha256=}
		want=$(sha256sum "$shm/$2" | cut -d' ' -f1)
		[ "$got" = "$want" ] || { echo "bench-read: SHA-256 $got, expected $want" >&2; exit 1; }
		;;
	single) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$key" --out "$shm/out" --single) ;;
	aws)
		start=$(date +%s.%N)
		"$AWS" --endpoint-url "$ep" s3 cp --only-show-errors "s3://lzfs-test/$key" "$shm/out"
		end=$(date +%s.%N)
		line="MiB/s=$(awk -v s="$3" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", s / (b - a) }')"
		;;
	esac
	cmp -s "$shm/out" "$shm/$2" || { echo "bench-read: $1 downloaded different bytes" >&2; exit 1; }
	sed -n 's/.*MiB\/s=\([0-9.]*\).*/\1/p' <<<"$line"
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }

# phase NAME MIB MODE...: the modes take turns RUNS times; prints the table
phase() {
	local name=$1 mib=$2 m i r
	shift 2
	local -A runs med
	for ((i = 1; i <= RUNS; i++)); do
		for m in "$@"; do
			r=$(one "$m" "$name" "$mib")
			echo "$name run $i: $m $r MiB/s" >&2
			runs[$m]="${runs[$m]:-} $r"
		done
	done
	for m in "$@"; do med[$m]=$(median "${runs[$m]}"); done
	echo "| client | MiB/s (median) | runs | vs aws s3 cp | vs single GET |"
	echo "|---|---|---|---|---|"
	for m in "$@"; do
		echo "| ${label[$m]} | ${med[$m]} |${runs[$m]} | $(ratio "${med[$m]}" "${med[aws]}") | $(ratio "${med[$m]}" "${med[single]}") |"
	done
}

table=$(phase read "$SIZE_MIB" reader reader128 readersha aws single)
echo "$table"
wan=""
if [ "$WAN_MIB" -gt 0 ]; then
	tests/s3/server fault "$dir/s3" \
		"{\"slow_bps\":$WAN_BPS,\"latency_ms\":$WAN_LATENCY_MS,\"ops\":[\"GetObject\"]}" >/dev/null
	wan=$(phase wan "$WAN_MIB" reader reader128 aws single)
	tests/s3/server fault "$dir/s3" off >/dev/null
	echo "$wan"
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mkdir -p "$(dirname "$OUT")"
{
	[ -s "$OUT" ] || printf '# S3 read throughput\n\n`tests/bench/read.sh` appends one section per run.\n'
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), one ${SIZE_MIB} MiB object, ${RUNS} runs per client"
	echo
	echo "Machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
		"Linux $(uname -r); load average before the run: $load."
	echo "Versions: $(curl --version | head -1 | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2)," \
		"node $(node --version), $("$AWS" --version 2>&1 | cut -d' ' -f1)."
	echo "Server: the test S3 on loopback (node SigV4 proxy + s3rver), on the same machine."
	echo "Reader defaults: 8 MiB chunks, 8 workers, read-ahead up to 8 chunks, 256 MiB budget."
	echo
	echo "$table"
	if [ -n "$wan" ]; then
		echo
		echo "The same with every GET held ${WAN_LATENCY_MS} ms and its answer capped at" \
			"$(awk -v b="$WAN_BPS" 'BEGIN { printf "%.0f", b / 1048576 }') MiB/s (test S3 fault injection:" \
			"one stream to S3 over a long path), a ${WAN_MIB} MiB object:"
		echo
		echo "$wan"
	fi
} >>"$OUT"
echo "bench-read: appended to $OUT" >&2
