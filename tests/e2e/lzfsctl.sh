#!/usr/bin/env bash
# lzfsctl against a real catalog built with `lzfsctl debug-add`: every
# command's human and --json output (checked with jq), odd names, exit codes,
# refusal of foreign files, and reads while another process writes.
. "$(dirname "$0")/lib.sh"

CAT=$T_DIR/catalog.db
export LZFS_CATALOG=$CAT
ctl() { "$LZFSCTL" "$@"; }
# rc CMD...: the exit status of CMD, output discarded.
rc() { "$@" >/dev/null 2>&1; echo $?; }
# json_ok CMD...: the output of CMD parses as JSON.
json_ok() { "$@" 2>/dev/null | jq -e . >/dev/null; }

[ -x "$LZFSCTL" ] || { not_ok "lzfsctl is built ($LZFSCTL)"; exit 1; }

NL=$'run1/new\nline.dat'
BAD=$'run1/bad\xff\xfe.dat'
add() { ctl debug-add "$@" >/dev/null; }
add --mtime 2024-01-01 run1/a.dat k/run1/a.dat 1234 ingested
add --mtime 2024-06-01 run1/b.dat k/run1/b.dat 10M pending
add --mtime 2024-06-02 --error "S3 said: SlowDown" "$NL" k/nl 5 failed
add --mtime 2024-06-03 "$BAD" k/bad 7 uploading
add --mtime 2024-06-04 'run1/tab	and\back.txt' k/tab 2K ingested
add run1/sub/c.dat k/c 1 deleted
add run2/d.dat k/d 300 ingested
add run1/a.dat k/run1/a.dat.v2 99 pending       # version 2

# --- exit codes and usage ---
check_eq "--help exits 0" 0 "$(rc ctl --help)"
check "--help lists the commands and exit codes" \
	bash -c "'$LZFSCTL' --help | grep -q 'find' && '$LZFSCTL' --help | grep -q '3 catalog error'"
check_eq "no command: usage, exit 2" 2 "$(rc ctl)"
check_eq "unknown command: exit 2" 2 "$(rc ctl frobnicate)"
check_eq "unknown option: exit 2" 2 "$(rc ctl --frob ls)"
for c in ls stat find meta events status check debug-add; do
	check_eq "$c --help exits 0" 0 "$(rc ctl $c --help)"
done
check_eq "ls with a bad option: exit 2" 2 "$(rc ctl ls --bogus)"
check_eq "stat without a path: exit 2" 2 "$(rc ctl stat)"
check_eq "find --state nonsense: exit 2" 2 "$(rc ctl find --state nonsense)"
check_eq "find --min-size junk: exit 2" 2 "$(rc ctl find --min-size 12Q)"
check_eq "meta with too few args: exit 2" 2 "$(rc ctl meta set run1/a.dat name)"
check_eq "missing catalog: exit 3" 3 "$(rc ctl -c "$T_DIR/none.db" status)"
check_eq "missing path: exit 1" 1 "$(rc ctl ls nothing/here)"
check_eq "stat of a missing path: exit 1" 1 "$(rc ctl stat run1/zzz)"
check_eq "'..' in a path: exit 2" 2 "$(rc ctl ls run1/../x)"

# --- ls ---
check_eq "ls of the root" "$(printf 'run1/\nrun2/')" "$(ctl ls)"
check_eq "ls run1 (sorted, escaped, collections with /)" \
	"$(printf '%s\n' a.dat b.dat 'bad\xff\xfe.dat' 'new\nline.dat' sub/ 'tab\tand\\back.txt')" \
	"$(ctl ls /run1/)"
check "ls -l shows state, version and size" \
	bash -c "'$LZFSCTL' ls -l run1 | grep -E 'pending +v2 +99 .*a\.dat$' >/dev/null"
check "ls -lh shows human sizes" bash -c "'$LZFSCTL' ls -lh run1 | grep -q '10 MiB'"
check_eq "ls --versions of an object lists v1 as older" "run1/a.dat v2
run1/a.dat v1 (older)" "$(ctl ls --versions run1/a.dat)"
check_eq "ls --versions of a collection" "a.dat v2
a.dat v1 (older)
b.dat v1" "$(ctl ls --versions run1 | head -3)"
check_eq "ls of an object lists it" "run1/a.dat" "$(ctl ls run1/a.dat)"
check "ls --json is valid JSON" json_ok ctl --json ls run1
check_eq "ls --json names (exact bytes of valid UTF-8, escapes)" \
	'["a.dat","b.dat","bad��.dat","new\nline.dat","sub","tab\tand\\back.txt"]' \
	"$(ctl --json ls run1 | jq -c '[.[].name]')"
check_eq "--json keeps invalid UTF-8 bytes as \\udcXX" 1 \
	"$(ctl --json ls run1 | grep -c 'bad\\udcff\\udcfe\.dat')"
check_eq "ls --json types" '["object","object","object","object","collection","object"]' \
	"$(ctl --json ls run1 | jq -c '[.[].type]')"

# --- stat ---
out=$(ctl stat run1/a.dat)
check "stat: state" grep -q '^state: *pending$' <<<"$out"
check "stat: key" grep -q '^key: *k/run1/a.dat.v2$' <<<"$out"
check "stat: version 2 of 2" grep -q 'version 2 of 2 (current)' <<<"$out"
out=$(ctl stat --version 1 run1/a.dat)
check "stat --version 1: ingested" grep -q '^state: *ingested' <<<"$out"
check "stat --version 1: etag" grep -q '^etag: *debug-etag' <<<"$out"
check "stat --version 1: sha256" grep -qE '^sha256: *0{61}4d2$' <<<"$out"
check "stat --version 1: older" grep -q 'version 1 of 2 (older)' <<<"$out"
out=$(ctl stat "$NL")
check "stat of a failed object shows the error" grep -q 'last error: *S3 said: SlowDown' <<<"$out"
check "stat of an uploading object shows the upload id" \
	grep -q 'upload id: *debug-upload' <<<"$(ctl stat "$BAD")"
check_eq "stat --json" '"pending 99 k/run1/a.dat.v2 2 true"' \
	"$(ctl --json stat run1/a.dat | jq -c '.object | "\(.state) \(.size) \(.key) \(.version) \(.current)"')"
check "stat of a collection" bash -c "'$LZFSCTL' stat run1 | grep -q '^type: *collection'"
check_eq "stat of a path whose only version is deleted: exit 1" 1 "$(rc ctl stat run1/sub/c.dat)"

# --- find ---
check_eq "find --state failed" 'run1/new\nline.dat' "$(ctl find --state failed)"
check_eq "find --state ingested" "$(printf 'run1/tab\\tand\\\\back.txt\nrun2/d.dat')" \
	"$(ctl find --state ingested)"
check_eq "find --name '*.dat' run1" 4 "$(ctl find --name '*.dat' run1 | wc -l)"
check_eq "find --name with an escaped glob char" 0 "$(rc ctl find --name 'tab?and\\back.txt')"
check_eq "find --min-size 1K --max-size 5K" 'run1/tab\tand\\back.txt' \
	"$(ctl find --min-size 1K --max-size 5K)"
check_eq "find --newer/--older by mtime" 'run1/new\nline.dat' \
	"$(ctl find --newer 2024-06-01T12:00:00Z --older 2024-06-02T12:00:00Z)"
check_eq "find --all-versions" 2 "$(ctl find --all-versions --name a.dat | wc -l)"
check_eq "find --limit" 2 "$(ctl find --limit 2 | wc -l)"
check_eq "find with no match: exit 1" 1 "$(rc ctl find --name 'nothing*')"
check_eq "find under run2" "run2/d.dat" "$(ctl find run2)"
check "find --json" json_ok ctl --json find
check_eq "find --json of no match is []" "[]" "$(ctl --json find --name zzz)"

# --- meta ---
check_eq "meta set" 0 "$(rc ctl meta set run1/a.dat temperature 21.5 C)"
check_eq "meta set (replace)" 0 "$(rc ctl meta set run1/a.dat temperature 22 K)"
check_eq "meta set with odd bytes" 0 "$(rc ctl meta set run1/a.dat note $'line1\nline2 "q"')"
check_eq "meta set on a collection" 0 "$(rc ctl meta set run1 owner lab-7)"
check_eq "meta ls" "$(printf '  note = line1\\nline2 "q"\n  temperature = 22 [K]')" \
	"$(ctl meta ls run1/a.dat)"
check_eq "meta ls --json" '[{"name":"note","value":"line1\nline2 \"q\"","unit":null},{"name":"temperature","value":"22","unit":"K"}]' \
	"$(ctl --json meta ls run1/a.dat | jq -c .)"
check_eq "find --meta KEY=VALUE" "run1/a.dat" "$(ctl find --meta temperature=22)"
check_eq "find --meta KEY" "run1/a.dat" "$(ctl find --meta note)"
check_eq "meta rm" 0 "$(rc ctl meta rm run1/a.dat temperature)"
check_eq "meta rm of a missing name: exit 1" 1 "$(rc ctl meta rm run1/a.dat temperature)"
check_eq "meta set on a missing path: exit 1" 1 "$(rc ctl meta set run1/nope a b)"
check_eq "meta ls of the collection" "  owner = lab-7" "$(ctl meta ls run1)"

# --- events ---
check_eq "events of run1/a.dat (both versions, oldest first)" \
	"add uploading ingested add meta-set meta-set meta-set meta-rm" \
	"$(ctl --json events run1/a.dat | jq -r '[.[].kind] | join(" ")')"
check_eq "events --limit 2" "meta-set meta-rm" \
	"$(ctl --json events --limit 2 run1/a.dat | jq -r '[.[].kind] | join(" ")')"
check "events (all) is valid JSON" json_ok ctl --json events
check "events human output has the failure detail" \
	bash -c "'$LZFSCTL' events | grep -q 'failed .*S3 said: SlowDown'"
check_eq "events of an unknown path: exit 1" 1 "$(rc ctl events no/such)"

# --- status ---
check_eq "status --json counts" '[2,1,2,1,1,4,8]' \
	"$(ctl --json status | jq -c '[.pending,.uploading,.ingested,.failed,.deleted,.collections,.versions]')"
check_eq "status: bytes ingested" $((2048 + 300)) "$(ctl --json status | jq .bytes_ingested)"
check "status human output" bash -c "'$LZFSCTL' status | grep -q '^failed  *1$'"
check "status --json is valid" json_ok ctl --json status
check_eq "check: ok" 0 "$(rc ctl check)"

# --- refusing what is not a catalog, untouched ---
sqlite3 "$T_DIR/foreign.db" "CREATE TABLE objects(x); INSERT INTO objects VALUES(1);"
sum=$(sha256sum <"$T_DIR/foreign.db")
check_eq "foreign SQLite file: exit 3" 3 "$(rc ctl -c "$T_DIR/foreign.db" ls)"
check "foreign file: the message names the file" \
	bash -c "'$LZFSCTL' -c '$T_DIR/foreign.db' status 2>&1 | grep -q 'foreign.db: not an lzfs catalog'"
check_eq "foreign file: meta set refused too" 3 "$(rc ctl -c "$T_DIR/foreign.db" meta set a b c)"
check_eq "foreign file untouched" "$sum" "$(sha256sum <"$T_DIR/foreign.db")"
head -c 5000 /dev/urandom >"$T_DIR/garbage.db"
sum=$(sha256sum <"$T_DIR/garbage.db")
check_eq "garbage file: exit 3" 3 "$(rc ctl -c "$T_DIR/garbage.db" status)"
check_eq "garbage file untouched" "$sum" "$(sha256sum <"$T_DIR/garbage.db")"

# --- reads while another process writes ---
(for i in $(seq 1 100); do "$LZFSCTL" debug-add "busy/f$i" "k/busy/$i" 1 ingested >/dev/null || exit 1; done) &
writer=$!
reads=0 fails=0 last=0 back=0
while kill -0 $writer 2>/dev/null; do
	n=$(ctl --json status | jq .versions) || { fails=$((fails + 1)); continue; }
	[ "$n" -lt "$last" ] && back=$((back + 1))
	last=$n
	reads=$((reads + 1))
done
wait $writer
check_eq "background writer succeeded" 0 $?
diag "$reads status reads during 100 registrations by another process"
check_eq "reads during writes never failed" 0 "$fails"
check_eq "counts never went back" 0 "$back"
check_eq "all 100 rows are there" 100 "$(ctl find busy | wc -l)"
check_eq "meta set while another process writes" 0 "$(rc ctl meta set busy/f1 a b)"

exit 0
