#!/usr/bin/env bash
# Benchmarks of the rescanner and of lzfsctl scan, for docs/bench/rescan.md.
#
#   tests/bench/rescan.sh           a 1,000,000-file tree with nothing new:
#                                   the rescanner's walk vs find, same run;
#                                   10,000 new 64 KiB files: lzfsctl scan and
#                                   the daemon's rescanner vs aws s3 cp
#   QUICK=1 tests/bench/rescan.sh   100,000 files and 2,000 new files
#   PART=1 or PART=2                only the walk, or only the new files
#
# The big tree is kept in $BENCH_DIR (default /tmp/lzfs-bench-rescan) between
# runs (making it takes minutes); RM=1 removes it at the end. Times are the
# best of 3 runs with warm caches. Prints a Markdown table.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${N:-1000000}
NEW=${NEW:-10000}
if [ -n "${QUICK:-}" ]; then N=100000; NEW=2000; fi
WORK=${BENCH_DIR:-/tmp/lzfs-bench-rescan}
AWS=/usr/bin/aws
mkdir -p "$WORK"
export AWS_ACCESS_KEY_ID=lzfstest AWS_SECRET_ACCESS_KEY=lzfstestsecret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

now() { date +%s.%N; }
# best CMD...: the shortest wall time of 3 runs, in seconds.
best() {
	local b="" i t0 t
	for i in 1 2 3; do
		t0=$(now)
		"$@" >/dev/null 2>&1
		t=$(echo "$(now) - $t0" | bc)
		if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
	done
	printf '%.3f' "$b"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }

echo "# rescan benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# PART=1 or PART=2 runs one half.
PART=${PART:-all}
if [ "$PART" != 2 ]; then
# ---- 1. a big tree with nothing new
tree=$WORK/tree-$N
"$BUILD/bench-rescan" populate "$tree" "$N" | sed 's/^/# populate: /'
find "$tree" >/dev/null # warm the caches
t_find=$(best find "$tree")
t_fstat=$(best find "$tree" -printf '%s %T@\n')
first="" periodic=""
for i in 1 2 3; do
	out=$("$BUILD/bench-rescan" walk "$tree") || { echo "bench-rescan walk failed: $out" >&2; exit 1; }
	f=$(awk '/^first_walk_s/ {print $2}' <<<"$out")
	p=$(awk '/^periodic_walk_s/ {print $2}' <<<"$out")
	[ -z "$first" ] || [ "$(echo "$f < $first" | bc)" = 1 ] && first=$f
	[ -z "$periodic" ] || [ "$(echo "$p < $periodic" | bc)" = 1 ] && periodic=$p
done
echo
echo "## $N files, nothing new (best of 3, warm cache)"
echo
echo "| walk | seconds | vs find | vs find -printf (stats) |"
echo "|---|---:|---:|---:|"
echo "| find DIR | $t_find | 1.00 | $(ratio "$t_find" "$t_fstat") |"
echo "| find DIR -printf '%s %T@' | $t_fstat | $(ratio "$t_fstat" "$t_find") | 1.00 |"
echo "| rescanner, periodic walk | $periodic | $(ratio "$periodic" "$t_find") | $(ratio "$periodic" "$t_fstat") |"
echo "| rescanner, first walk after start (reads the catalog) | $first | $(ratio "$first" "$t_find") | $(ratio "$first" "$t_fstat") |"

fi
[ "$PART" = 1 ] && exit 0

# ---- 2. new small files
src=$WORK/new-$NEW
if [ ! -f "$src/.done" ]; then
	rm -rf "$src"
	for ((i = 0; i < NEW; i++)); do
		d=$src/d$((i / 1000))
		[ $((i % 1000)) = 0 ] && mkdir -p "$d"
		head -c 65536 /dev/urandom >"$d/f$i"
	done
	touch "$src/.done"
fi
s3dir=$WORK/s3
rm -rf "$s3dir"
endpoint=$("$ROOT/tests/s3/server" start "$s3dir") || exit 1
trap '"$ROOT/tests/s3/server" stop "$s3dir" >/dev/null 2>&1' EXIT
export AWS_ENDPOINT_URL=$endpoint
# The same tree, three times, into fresh prefixes (each run uploads every file).
run_lzfsctl() { rm -f "$WORK/c$1.db"*; "$BUILD/lzfsctl" -c "$WORK/c$1.db" scan --no-progress -q --exclude-file-name '\.done' --workers "$1" "$src" "s3://lzfs-test/lz$1-$2"; }
run_aws() { "$AWS" --endpoint-url "$endpoint" s3 cp --quiet --recursive --exclude .done "$src" "s3://lzfs-test/aws-$1"; }
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $t0" | bc; }
t_lz8=$(timed run_lzfsctl 8 a)
t_lz16=$(timed run_lzfsctl 16 a)
t_aws=$(timed run_aws a)
t_lz16b=$(timed run_lzfsctl 16 b)
t_awsb=$(timed run_aws b)
t_lz32=$(timed run_lzfsctl 32 a)
minf() { if [ "$(echo "$1 < $2" | bc)" = 1 ]; then echo "$1"; else echo "$2"; fi; }
t_lz16=$(minf "$t_lz16" "$t_lz16b")
t_aws=$(minf "$t_aws" "$t_awsb")
fps() { printf '%.0f' "$(echo "$NEW / $1" | bc -l)"; }
# The daemon: the tree is moved into the spool of a running mount (a rename,
# so only the ingest is timed) and the rescanner takes it from there.
# run_daemon NAME OPTIONS: seconds until every file is ingested.
run_daemon() {
	local mnt=$WORK/mnt spool=$WORK/spool-$1 creds=$WORK/credentials t0 n lpid
	rm -rf "$spool" && mkdir -p "$mnt" "$spool"
	(umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$creds")
	"$BUILD/lzfs" -f -o "endpoint=$endpoint,credentials=$creds,landing=$spool,log_level=warn,$2" \
		"s3://lzfs-test/daemon-$1" "$mnt" 2>"$WORK/lzfs-$1.log" &
	lpid=$!
	for i in $(seq 1 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
	rm -rf "$WORK/moved" && cp -a "$src" "$WORK/moved" && rm -f "$WORK/moved/.done"
	t0=$(now)
	mv "$WORK/moved" "$spool/new"
	while :; do
		n=$("$BUILD/lzfsctl" -c "$spool/.lzfs/catalog.db" --json status 2>/dev/null | jq -r .ingested)
		[ "${n:-0}" -ge "$NEW" ] && break
		[ "$(echo "$(now) - $t0 > 900" | bc)" = 1 ] && break
		sleep 0.2
	done
	echo "$(now) - $t0" | bc
	fusermount3 -u "$mnt"
	wait "$lpid"
	rm -rf "$spool"
}
t_daemon="" t_daemon16=""
if [ -e /dev/fuse ]; then
	t_daemon=$(run_daemon d8 settle_time=1)
	t_daemon16=$(run_daemon d16 settle_time=1,rescan_workers=16,max_connections=32)
fi
echo
echo "## $NEW new files of 64 KiB into the test S3 (s3rver behind the SigV4 proxy, same host)"
echo
echo "| client | seconds | files/s | vs aws s3 cp |"
echo "|---|---:|---:|---:|"
echo "| /usr/bin/aws s3 cp --recursive (10 requests in flight) | $(printf '%.1f' "$t_aws") | $(fps "$t_aws") | 1.00 |"
echo "| lzfsctl scan --workers 8 | $(printf '%.1f' "$t_lz8") | $(fps "$t_lz8") | $(ratio "$t_aws" "$t_lz8") |"
echo "| lzfsctl scan (--workers 16, the default) | $(printf '%.1f' "$t_lz16") | $(fps "$t_lz16") | $(ratio "$t_aws" "$t_lz16") |"
echo "| lzfsctl scan --workers 32 | $(printf '%.1f' "$t_lz32") | $(fps "$t_lz32") | $(ratio "$t_aws" "$t_lz32") |"
if [ -n "$t_daemon" ]; then
	echo "| lzfs rescanner, mv into the spool (settle_time=1, rescan_workers=8: the default) | $(printf '%.1f' "$t_daemon") | $(fps "$t_daemon") | $(ratio "$t_aws" "$t_daemon") |"
	echo "| lzfs rescanner, same with rescan_workers=16, max_connections=32 | $(printf '%.1f' "$t_daemon16") | $(fps "$t_daemon16") | $(ratio "$t_aws" "$t_daemon16") |"
fi
echo
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${RM:-}" ] && rm -rf "$WORK"
exit 0
