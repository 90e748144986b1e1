#!/usr/bin/env bash
# The scale-out benchmark (make bench-scale): registrations per second into
# one PostgreSQL catalog from 3 hosts (3 catalog handles in one process,
# each its own writer connection, as 3 lzfs daemons), and bytes per row of
# every table and index. Starts its own PostgreSQL (Debian's) in /var/tmp
# with fsync on (durable commits, as in production) and writes the results
# section of docs/scale.md (between the results markers).
#   ROWS=1000000 HOSTS=3 THREADS=32 tests/bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
ROWS=${ROWS:-1000000}
HOSTS=${HOSTS:-3}
THREADS=${THREADS:-32}
SMALL=$((ROWS / 5))
BENCH=$BUILD/bench-scale
DOC=docs/scale.md
PGSERVER=tests/pg/server
[ -x "$BENCH" ] || { echo "scale.sh: $BENCH is not built" >&2; exit 1; }
DIR=$(mktemp -d /var/tmp/lzfs-bench-scale.XXXXXX)
# Server settings for a catalog host (docs/scale.md says why).
export PG_OPTS="-c shared_buffers=2GB -c max_wal_size=8GB -c checkpoint_timeout=15min -c wal_compression=on -c max_connections=200"
URL=$("$PGSERVER" start "$DIR/pg")
trap '"$PGSERVER" stop "$DIR/pg"; rm -rf "$DIR"' EXIT
PGVER=$("$PGSERVER" psql "$DIR/pg" -d lzfs -At -c "SHOW server_version")

# run NAME DB ARGS...: one bench run on a fresh database; "key value" lines in $DIR/NAME.out.
run() {
	local name=$1 db=$2; shift 2
	"$PGSERVER" psql "$DIR/pg" -d postgres -c "CREATE DATABASE $db" >/dev/null
	local url=${URL%/*}/$db
	echo "== $name: $BENCH $*" >&2
	local l0 c0 c1; l0=$(cut -d' ' -f1 /proc/loadavg)
	c0=$(server_cpu)
	"$BENCH" -c "$url" "$@" >"$DIR/$name.out"
	c1=$(server_cpu)
	local rows; rows=$(awk '$1 == "rows" {print $2}' "$DIR/$name.out")
	echo "server_cpu_us_per_row $(awk -v a="$c0" -v b="$c1" -v n="$rows" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')" >>"$DIR/$name.out"
	echo "load_before $l0" >>"$DIR/$name.out"
	echo "load_after $(cut -d' ' -f1 /proc/loadavg)" >>"$DIR/$name.out"
	echo "command bench-scale $*" >>"$DIR/$name.out"
	sed 's/^/   /' "$DIR/$name.out" >&2
}
# CPU seconds of the server so far: the postmaster, the backends it reaped,
# and its living children (checkpointer, WAL writer, autovacuum, backends).
server_cpu() {
	local pm t=0 p f
	pm=$(head -1 "$DIR/pg/data/postmaster.pid")
	for p in $pm $(pgrep -P "$pm"); do
		f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
		set -- $f
		t=$((t + ${12} + ${13}))
		[ "$p" = "$pm" ] && t=$((t + ${14} + ${15}))
	done
	awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
v() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$DIR/$1.out"; }

run main main -n "$ROWS" -H "$HOSTS" -t "$THREADS" -m ingested -l 20000
run one one -n "$SMALL" -H 1 -t "$THREADS" -m ingested -l 0
run three three -n "$SMALL" -H "$HOSTS" -t "$THREADS" -m ingested -l 0
run add add -n "$SMALL" -H "$HOSTS" -t "$THREADS" -m add -l 0
run full fullrun -n "$SMALL" -H "$HOSTS" -t "$THREADS" -m full -l 0

row() {
	local n=$1 label=$2
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(v "$n" rows)" \
		"$(v "$n" hosts) × $(v "$n" threads_per_host)" "$(v "$n" rows_per_s)" \
		"$(v "$n" requests_per_s)" "$(v "$n" requests_per_transaction)" \
		"$(v "$n" writer_cpu_us_per_row)" "$(v "$n" server_cpu_us_per_row)" "$(v "$n" seconds)" \
		"$(v "$n" load_before) / $(v "$n" load_after)"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
perrow() { awk -v b="$1" -v n="$2" 'BEGIN { printf "%.0f", b / n }'; }

results=$(
	echo "<!-- results:begin (written by tests/bench/scale.sh) -->"
	echo "## Results"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores (shared by the lzfs process, PostgreSQL and whatever else ran: see the load), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
	echo "- Storage: $(df -T "$DIR" | awk 'NR == 2 {print $2 " on " $1}'), PostgreSQL $PGVER on loopback, fsync on, synchronous_commit on"
	echo "- Server options: \`$PG_OPTS\`"
	echo "- Command: \`make bench-scale\` (ROWS=$ROWS HOSTS=$HOSTS THREADS=$THREADS tests/bench/scale.sh)"
	echo
	echo "Registrations (each call waits for its commit; hosts × threads per host):"
	echo
	echo "| run | rows | hosts × threads | rows/s | requests/s | requests/commit | lzfs writer CPU µs/row | server CPU µs/row | seconds | load avg before / after |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	row main "$HOSTS hosts, ingested (1 request per file)"
	row one "1 host, ingested"
	row three "$HOSTS hosts, ingested"
	row add "$HOSTS hosts, add (pending)"
	row full "$HOSTS hosts, full (add, uploading, ingested: 3 requests)"
	echo
	echo "Lookups at $(v main objects_rows) rows (cat_obj_get of random paths, one thread): $(v main lookups_per_s)/s, p50 $(v main lookup_p50_us) µs, p99 $(v main lookup_p99_us) µs."
	echo
	n=$(v main objects_rows)
	echo "Sizes after the main run ($n objects, $(v main events_rows) events, $(v main catalog_collections) collections; VACUUM ANALYZE):"
	echo
	echo "| relation | MiB | bytes per object |"
	echo "|---|---|---|"
	awk '$1 ~ /^rel_/ {print substr($1, 5), $2}' "$DIR/main.out" | while read -r rel bytes; do
		echo "| $rel | $(mib "$bytes") | $(perrow "$bytes" "$n") |"
	done
	db=$(v main database_bytes)
	echo "| **database total** | $(mib "$db") | $(perrow "$db" "$n") |"
	echo "<!-- results:end -->"
)
if [ -f "$DOC" ] && grep -q "results:begin" "$DOC"; then
	awk -v r="$results" '/results:begin/ {print r; skip = 1} /results:end/ {skip = 0; next} !skip' "$DOC" >"$DOC.new"
	mv "$DOC.new" "$DOC"
else
	printf '%s\n' "$results" >>"$DOC"
fi
echo "$results"
