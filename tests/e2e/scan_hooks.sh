#!/usr/bin/env bash
# lzfsctl scan hooks, retries, timeout and workers against the strict test
# S3: hooks get the file's values in the environment only (file names full of
# shell syntax run nothing), a pre-ingest hook's refusal skips the file, a
# hook that hangs is killed after --hook-timeout, on-failure hears why.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
s3_start
export AWS_ENDPOINT_URL=$S3_ENDPOINT
CAT=$T_DIR/catalog.db
B=$TEST_BUCKET
src=$T_DIR/src
hl=$T_DIR/hooks.log
scan() { timeout 120 "$LZFSCTL" -c "$CAT" scan "$@"; }
field() { "$LZFSCTL" -c "$CAT" --json stat "$1" 2>/dev/null | jq -r ".object.$2"; }

mkdir -p "$src/sub"
printf 'a\n' >"$src/plain.txt"
printf 'b\n' >"$src/sub/reject-me.txt"
# Hooks run in the scan's working directory, $T_DIR: an injection would leave pwned* there.
cd "$T_DIR" || exit 1
printf 'c\n' >"$src/\$(touch pwned1)"
printf 'd\n' >"$src/x; touch pwned2; #"
printf 'e\n' >"$src/\`touch pwned3\`"
printf 'f\n' >"$src/bad"$'\xff'"name" # not UTF-8: no S3 key can be made for it

# The hooks record what they see; the pre-ingest hook refuses names with "reject".
pre='printf "pre\t%s\t%s\t%s\n" "$LZFS_PATH" "$LZFS_KEY" "$LZFS_SIZE" >>'"'$hl'"'; case "$LZFS_PATH" in *reject*) echo "refusing $LZFS_PATH"; exit 3;; esac'
post='printf "post\t%s\t%s\t%s\t%s\n" "$LZFS_PATH" "$LZFS_KEY" "$LZFS_SIZE" "$LZFS_SHA256" >>'"'$hl'"
fail='printf "fail\t%s\t%s\n" "$LZFS_PATH" "$LZFS_ERROR" >>'"'$hl'"
out=$(scan --pre-ingest "$pre" --post-ingest "$post" --on-failure "$fail" "$src" "s3://$B/h" 2>"$T_DIR/err")
rc=$?
diag "$out"
check_eq "exit 1: one file could not be ingested" 1 "$rc"
check "no file name ran as a command" bash -c "! ls '$T_DIR'/pwned* 2>/dev/null"
check_eq "pre-ingest ran for each candidate" 5 "$(grep -c '^pre' "$hl")"
check "pre-ingest saw path, key and size" grep -qF "$(printf 'pre\tplain.txt\th/plain.txt\t2')" "$hl"
check "the refused file is not in the catalog" bash -c "! '$LZFSCTL' -c '$CAT' stat h/sub/reject-me.txt >/dev/null 2>&1"
check "the summary counts it" grep -q "1 skipped by hook" <<<"$out"
check "the hook's output is logged" grep -q "hook pre-ingest \[sub/reject-me.txt\]: refusing sub/reject-me.txt" "$T_DIR/err"
check_eq "post-ingest ran once per ingested file" 4 "$(grep -c '^post' "$hl")"
sum=$(sha256sum <"$src/plain.txt" | cut -d' ' -f1)
check "post-ingest saw the SHA-256" grep -qF "$(printf 'post\tplain.txt\th/plain.txt\t2\t%s' "$sum")" "$hl"
check "post-ingest's SHA-256 is the catalog's" test "$(field h/plain.txt sha256)" = "$sum"
check "odd names reach the hooks intact" grep -qF "$(printf 'post\tx; touch pwned2; #\t')" "$hl"
check "on-failure heard the file and why" env LC_ALL=C grep -qE "^fail	bad.name	.*UTF-8" "$hl"

# A hook that hangs is killed; the file is skipped, the scan goes on.
cp "$hl" "$T_DIR/hooks1.log"; : >"$hl"
mkdir -p "$T_DIR/slow"
printf 's\n' >"$T_DIR/slow/s1"
start=$SECONDS
out=$(scan --pre-ingest 'sleep 30' --hook-timeout 1 "$T_DIR/slow" "s3://$B/slow" 2>"$T_DIR/err")
check "a hanging hook is killed after --hook-timeout" test $((SECONDS - start)) -lt 10
check "its timeout is logged" grep -q "hook pre-ingest \[s1\]: timed out after 1 s" "$T_DIR/err"
check "the file is skipped" grep -q "1 skipped by hook" <<<"$out"
check "no sleep left behind" bash -c "! pgrep -f '^sleep 30$' >/dev/null"

# --max-retries: the first upload attempt fails for good (the S3 client's
# own retries exhausted), the scan's retry succeeds.
mkdir -p "$T_DIR/retry"
printf 'r\n' >"$T_DIR/retry/r1"
s3_fault '{"error_rate": 1, "ops": ["PutObject"], "count": 7}'
out=$(scan --max-retries 1 "$T_DIR/retry" "s3://$B/retry" 2>"$T_DIR/err")
rc=$?
s3_fault off
check_eq "--max-retries 1: exit 0 after a failed attempt" 0 "$rc"
check_eq "--max-retries 1: ingested" ingested "$(field retry/r1 state)"
check "--max-retries 1: the retry is logged" grep -q "r1: attempt 1 failed" "$T_DIR/err"
s3_fault '{"error_rate": 1, "ops": ["PutObject"], "count": 7}'
printf 'r\n' >"$T_DIR/retry/r2"
out=$(scan --max-retries 0 "$T_DIR/retry" "s3://$B/retry" 2>"$T_DIR/err")
rc=$?
s3_fault off
check_eq "--max-retries 0: exit 1, the file failed" 1 "$rc"

# --workers and --timeout, with every PUT taking 600 ms.
mkdir -p "$T_DIR/many"
for i in $(seq 1 8); do printf '%s\n' "$i" >"$T_DIR/many/f$i"; done
s3_fault '{"latency_ms": 600, "ops": ["PutObject"]}'
start=$(date +%s%N)
scan --workers 8 "$T_DIR/many" "s3://$B/w8" >/dev/null 2>&1
t8=$((($(date +%s%N) - start) / 1000000))
start=$(date +%s%N)
scan --workers 1 "$T_DIR/many" "s3://$B/w1" >/dev/null 2>&1
t1=$((($(date +%s%N) - start) / 1000000))
diag "8 files, 600 ms per PUT: --workers 8 took $t8 ms, --workers 1 took $t1 ms"
check "--workers 8 puts files in parallel" test "$t8" -lt $((t1 / 2))
check "--workers 1 puts them one by one" test "$t1" -ge 4800
out=$(scan --workers 1 --timeout 2 "$T_DIR/many" "s3://$B/to" 2>&1)
rc=$?
s3_fault off
check_eq "--timeout: exit 4" 4 "$rc"
check "--timeout: the summary says so" grep -q "(timed out)" <<<"$out"
check "--timeout: the files not started are counted cancelled" grep -q "cancelled" <<<"$out"
check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
