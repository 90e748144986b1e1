#!/usr/bin/env bash
# The catalog benchmark (make bench-catalog): registrations per second from
# many threads, path lookup latency at ROWS rows, bytes per row. Writes the
# results section of docs/bench/catalog.md (between the results markers; the
# rest of the file is kept).
#   ROWS=1000000 THREADS=64 tests/bench/catalog.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
ROWS=${ROWS:-1000000}
THREADS=${THREADS:-64}
SMALL=$((ROWS / 5))
BENCH=$BUILD/bench-catalog
DOC=docs/bench/catalog.md
[ -x "$BENCH" ] || { echo "catalog.sh: $BENCH is not built" >&2; exit 1; }
DIR=$(mktemp -d /var/tmp/lzfs-bench-catalog.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

# run NAME ARGS...: one bench run; its "key value" lines in $DIR/NAME.out.
run() {
	local name=$1; shift
	echo "== $name: $BENCH $*" >&2
	local l0; l0=$(cut -d' ' -f1 /proc/loadavg)
	"$BENCH" -d "$DIR" "$@" >"$DIR/$name.out"
	echo "load_before $l0" >>"$DIR/$name.out"
	echo "load_after $(cut -d' ' -f1 /proc/loadavg)" >>"$DIR/$name.out"
	echo "command bench-catalog $*" >>"$DIR/$name.out"
	sed 's/^/   /' "$DIR/$name.out" >&2
}
v() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$DIR/$1.out"; }

run add -n "$ROWS" -t "$THREADS" -m add -l 100000
run full -n "$ROWS" -t "$THREADS" -m full -l 100000
run ingested -n "$ROWS" -t "$THREADS" -m ingested -l 0
run batch50 -n "$ROWS" -t "$THREADS" -m ingested -b 50 -l 100000
run batch1000 -n "$ROWS" -t "$THREADS" -m ingested -b 1000 -l 0
run add256 -n "$SMALL" -t 256 -m add -l 0
run add16 -n "$SMALL" -t 16 -m add -l 0
run spread -n "$SMALL" -t "$THREADS" -m add -l 0 -s

row() {
	local n=$1 label=$2
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(v "$n" rows)" \
		"$(v "$n" threads)" "$(v "$n" rows_per_s)" "$(v "$n" requests_per_s)" \
		"$(v "$n" requests_per_transaction)" "$(v "$n" writer_cpu_us_per_row)" \
		"$(v "$n" seconds)" \
		"$(v "$n" writer_busy_s) / $(v "$n" writer_cpu_s) / $(v "$n" writer_commit_s) / $(v "$n" writer_waiting_s)" \
		"$(v "$n" load_before) / $(v "$n" load_after)"
}

results=$(
	echo "<!-- results:begin (written by tests/bench/catalog.sh) -->"
	echo "## Results"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
	echo "- Storage: $(df -T "$DIR" | awk 'NR == 2 {print $2 " on " $1}') ($DIR)"
	echo "- SQLite $(pkg-config --modversion sqlite3), WAL, synchronous=FULL (one fsync per commit)"
	echo "- Command: \`make bench-catalog\` (ROWS=$ROWS THREADS=$THREADS tests/bench/catalog.sh)"
	echo
	echo "Registrations (each call waits for its commit; names in sequence unless noted; a batch is one \`cat_obj_add_many\` call, one writer request):"
	echo
	echo "| run | rows | threads | rows/s | requests/s | requests/commit | writer CPU µs/row | seconds | writer s: busy / CPU / in COMMIT / waiting for a core | load avg before / after |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	row add "add only"
	row full "add + uploading + ingested"
	row ingested "add as ingested (one request)"
	row batch50 "add as ingested, batches of 50"
	row batch1000 "add as ingested, batches of 1000"
	row add256 "add only"
	row add16 "add only"
	row spread "add only, a directory per thread"
	echo
	echo "At $ROWS rows (after the add-only run), one thread, random existing paths:"
	echo
	echo "| lookups | p50 µs | p99 µs | lookups/s | status ms |"
	echo "|---|---|---|---|---|"
	echo "| $(v add lookups) | $(v add lookup_p50_us) | $(v add lookup_p99_us) | $(v add lookups_per_s) | $(v add status_ms) |"
	echo
	echo "At $ROWS rows (after the batches-of-50 run), the same:"
	echo
	echo "| lookups | p50 µs | p99 µs | lookups/s | status ms |"
	echo "|---|---|---|---|---|"
	echo "| $(v batch50 lookups) | $(v batch50 lookup_p50_us) | $(v batch50 lookup_p99_us) | $(v batch50 lookups_per_s) | $(v batch50 status_ms) |"
	echo
	echo "Database size after close (WAL checkpointed):"
	echo
	echo "| run | bytes | bytes/row |"
	echo "|---|---|---|"
	echo "| add only, $ROWS rows | $(v add db_bytes) | $(v add bytes_per_row) |"
	echo "| full sequence, $ROWS rows (3 events per row) | $(v full db_bytes) | $(v full bytes_per_row) |"
	echo "| added as ingested, $ROWS rows (2 events per row) | $(v ingested db_bytes) | $(v ingested bytes_per_row) |"
	echo "| added as ingested in batches of 50, $ROWS rows | $(v batch50 db_bytes) | $(v batch50 bytes_per_row) |"
	echo "<!-- results:end -->"
)

mkdir -p "$(dirname "$DOC")"
if [ -f "$DOC" ] && grep -q '<!-- results:begin' "$DOC"; then
	awk -v r="$results" '
		/<!-- results:begin/ { print r; skip = 1; next }
		/<!-- results:end -->/ { skip = 0; next }
		!skip { print }' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
	{ echo "# Catalog benchmark"; echo; echo "$results"; } >"$DOC"
fi
echo "catalog.sh: results written to $DOC" >&2
