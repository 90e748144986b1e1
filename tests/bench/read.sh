#!/usr/bin/env bash
# Read throughput of one object: the parallel reader (bench-read: 1 MiB
# reads as lzfsctl get does, 128 KiB reads as the kernel reads the mount,
# and 1 MiB reads with SHA-256 as lzfsctl get/verify do), Debian's awscli
# (`aws s3 cp` download, its default 8 MiB parts and 10 threads) and one
# single-stream GET (bench-read --single), on the same object from the same
# test S3 in the same run. The modes take turns, RUNS times, and the table
# shows the median of each. Every download lands in a file on tmpfs (same
# sink for all). Prints the table and appends it to docs/bench/read.md.
#   SIZE_MIB=1024  RUNS=3  BUILD=build
# The test S3 (node proxy + s3rver) runs on this machine too: the numbers
# measure client + server together, on a loopback without network latency.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
AWS=/usr/bin/aws
OUT=docs/bench/read.md
KEY=bench/read

dir=$(mktemp -d /tmp/lzfs-bench-read.XXXXXX)
shm=$(mktemp -d /dev/shm/lzfs-bench-read.XXXXXX 2>/dev/null || mktemp -d /tmp/lzfs-bench-read-out.XXXXXX)
cleanup() { tests/s3/server stop "$dir/s3" >/dev/null 2>&1 || true; rm -rf "$dir" "$shm"; }
trap cleanup EXIT
ep=$(tests/s3/server start "$dir/s3")
export AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true

echo "bench-read: writing and uploading a ${SIZE_MIB} MiB object" >&2
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$shm/src"
want=$(sha256sum "$shm/src" | cut -d' ' -f1)
"$AWS" --endpoint-url "$ep" s3 cp --only-show-errors "$shm/src" "s3://lzfs-test/$KEY"
load=$(cut -d' ' -f1-3 /proc/loadavg)

modes=(reader reader128 readersha aws single)
declare -A label=(
	[reader]="lzfs reader, 1 MiB reads (lzfsctl get)"
	[reader128]="lzfs reader, 128 KiB reads (the mount)"
	[readersha]="lzfs reader, 1 MiB reads + SHA-256 (lzfsctl get/verify)"
	[aws]="aws s3 cp (10 threads, 8 MiB parts)"
	[single]="single-stream GET (bench-read --single)"
)
declare -A runs

# one MODE: prints MiB/s
one() {
	local line start end
	rm -f "$shm/out"
	case "$1" in
	reader) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$KEY" --out "$shm/out") ;;
	reader128) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$KEY" --out "$shm/out" --read-kib 128) ;;
	readersha)
		line=$("$BUILD/bench-read" --endpoint "$ep" --key "$KEY" --out "$shm/out" --sha256)
		local got=${line##*sha256=}
		[ "$got" = "$want" ] || { echo "bench-read: SHA-256 $got, expected $want" >&2; exit 1; }
		;;
	single) line=$("$BUILD/bench-read" --endpoint "$ep" --key "$KEY" --out "$shm/out" --single) ;;
	aws)
		start=$(date +%s.%N)
		"$AWS" --endpoint-url "$ep" s3 cp --only-show-errors "s3://lzfs-test/$KEY" "$shm/out"
		end=$(date +%s.%N)
		line="MiB/s=$(awk -v s="$SIZE_MIB" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", s / (b - a) }')"
		;;
	esac
	cmp -s "$shm/out" "$shm/src" || { echo "bench-read: $1 downloaded different bytes" >&2; exit 1; }
	sed -n 's/.*MiB\/s=\([0-9.]*\).*/\1/p' <<<"$line"
}

for ((i = 1; i <= RUNS; i++)); do
	for m in "${modes[@]}"; do
		r=$(one "$m")
		echo "run $i: $m $r MiB/s" >&2
		runs[$m]="${runs[$m]:-} $r"
	done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }
declare -A med
for m in "${modes[@]}"; do med[$m]=$(median "${runs[$m]}"); done
table=$(
	echo "| client | MiB/s (median) | runs | vs aws s3 cp | vs single GET |"
	echo "|---|---|---|---|---|"
	for m in "${modes[@]}"; do
		echo "| ${label[$m]} | ${med[$m]} |${runs[$m]} | $(ratio "${med[$m]}" "${med[aws]}") | $(ratio "${med[$m]}" "${med[single]}") |"
	done
)
echo "$table"

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
} >>"$OUT"
echo "bench-read: appended to $OUT" >&2
