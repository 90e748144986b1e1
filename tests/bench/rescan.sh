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
# runs (making it takes minutes); RM=1 removes it at the end. Walk times are
# the median of 3 runs with warm caches, the walks interleaved so that a
# change in the machine's load hits all of them; the new-file times are the
# best of 2. Prints a Markdown table.
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
# median3 A B C: the middle one.
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
# timed1 CMD...: the wall time of one run, in seconds.
timed1() {
	local t0
	t0=$(now)
	"$@" >/dev/null 2>&1
	printf '%.3f' "$(echo "$(now) - $t0" | bc)"
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
"$BUILD/bench-rescan" statwalk "$tree" 1 >/dev/null
fi_=() fp=() s1=() s2=() first=() periodic=() pall=()
for i in 1 2 3; do
	fi_+=("$(timed1 find "$tree")")
	fp+=("$(timed1 find "$tree" -printf '%s %T@\n')")
	s1+=("$("$BUILD/bench-rescan" statwalk "$tree" 1 | awk '/^statwalk_s/ {print $2}')")
	s2+=("$("$BUILD/bench-rescan" statwalk "$tree" 2 | awk '/^statwalk_s/ {print $2}')")
	out=$("$BUILD/bench-rescan" walk "$tree") || { echo "bench-rescan walk failed: $out" >&2; exit 1; }
	first+=("$(awk '/^first_walk_s/ {print $2}' <<<"$out")")
	periodic+=("$(awk '/^periodic_walk_s/ {print $2}' <<<"$out")")
	unstated=$(awk '/^unstated/ {print $2}' <<<"$out")
	out=$("$BUILD/bench-rescan" walk "$tree" all) || { echo "bench-rescan walk all failed: $out" >&2; exit 1; }
	pall+=("$(awk '/^periodic_walk_s/ {print $2}' <<<"$out")")
	echo "# run $i: find ${fi_[-1]}, find -printf ${fp[-1]}, statwalk ${s1[-1]} / ${s2[-1]} (2 threads)," \
		"rescanner periodic ${periodic[-1]} ($unstated files not stated in 2 walks)," \
		"with rescan_stat=all ${pall[-1]}, first ${first[-1]}; load $(cut -d' ' -f1 /proc/loadavg)"
done
t_find=$(median3 "${fi_[@]}")
t_fstat=$(median3 "${fp[@]}")
t_s1=$(median3 "${s1[@]}")
t_s2=$(median3 "${s2[@]}")
t_first=$(median3 "${first[@]}")
t_periodic=$(median3 "${periodic[@]}")
t_pall=$(median3 "${pall[@]}")
echo
echo "## $N files, nothing new (median of 3, warm cache)"
echo
echo "| walk | seconds | vs find | vs find -printf (stats) |"
echo "|---|---:|---:|---:|"
row() { echo "| $1 | $2 | $(ratio "$2" "$t_find") | $(ratio "$2" "$t_fstat") |"; }
row "find DIR" "$t_find"
row "find DIR -printf '%s %T@'" "$t_fstat"
row "readdir + fstatat of every file, nothing else (bench-rescan statwalk, 1 thread)" "$t_s1"
row "the same, 2 threads" "$t_s2"
row "rescanner, periodic walk (rescan_stat=changed, the default: fanotify)" "$t_periodic"
row "rescanner, periodic walk with rescan_stat=all (stats every file)" "$t_pall"
row "rescanner, first walk after start (reads the catalog)" "$t_first"
echo "# load average after the walks: $(cut -d' ' -f1-3 /proc/loadavg)"

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
