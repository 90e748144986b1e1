#!/usr/bin/env bash
# Scan jobs run by the daemon: `lzfsctl job start|list|watch|stop|rm`, their
# state in the catalog's jobs table, once / interval / watch runs, a stop,
# and a kill -9 of the daemon in the middle of a run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
require_fuse "scan jobs"
s3_start
B=$TEST_BUCKET
lzfs_mount jm -o rescan_interval=60,settle_time=1 || exit 1
ctl() { "$LZFSCTL" -c "$CATALOG" "$@"; }
jobj() { ctl --json job list | jq -r --arg n "$1" ".[] | select(.name == \$n) | .$2"; }
# wait_state NAME STATE SECS
wait_state() {
	local deadline=$((SECONDS + $3))
	while [ "$(jobj "$1" state)" != "$2" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}
state_of() { ctl --json stat "$1" 2>/dev/null | jq -r .object.state; }

mkdir -p "$T_DIR/s1/d" "$T_DIR/s2" "$T_DIR/s3"
for i in $(seq 1 30); do printf '%s\n' "$i" >"$T_DIR/s1/d/f $i.txt"; done

# ---- once
out=$(ctl job start --name once1 --once "$T_DIR/s1" "s3://$B/jobs/once")
check_eq "job start: exit 0" 0 "$?"
check "job start: says it is queued" grep -q "job once1 queued (once, put-sync)" <<<"$out"
if wait_state once1 done 30; then ok "the daemon ran the once job to the end"; else not_ok "the daemon ran the once job to the end"; diag "$(ctl job list)"; fi
check_eq "its 30 files are ingested" 30 "$(ctl --json find --state ingested jobs/once | jq length)"
check_eq "... with the job as their source" "scan:once1" "$(ctl --json stat "jobs/once/d/f 7.txt" | jq -r .object.source)"
check_eq "... and in S3" "7" "$(s3cat "jobs/once/d/f 7.txt")"
check_eq "job list: counters of the run" "1 30 30 0" \
	"$(jobj once1 runs) $(jobj once1 files_total) $(jobj once1 files_done) $(jobj once1 files_failed)"
check "job list (text) shows it" bash -c "'$LZFSCTL' -c '$CATALOG' job list | grep -q '^once1 *done *once'"
out=$(ctl job start --name once1 "$T_DIR/s1" "s3://$B/jobs/once" 2>&1)
check_eq "a second job of the same name is refused" 2 "$?"
out=$(ctl job start --name bad --key-template '{prefix}/../{relpath}' "$T_DIR/s1" "s3://$B/x" 2>&1)
check_eq "a job with a hostile key template is refused at start" 2 "$?"

# ---- every 2 s; watch follows a run; stop ends it
printf 'a\n' >"$T_DIR/s2/a"
ctl job start --name every --interval 2 --settle-time 0 "$T_DIR/s2" "s3://$B/jobs/every" >/dev/null
if wait_state every waiting 20; then ok "interval job: first run done, waiting"; else not_ok "interval job: first run done, waiting"; fi
printf 'b\n' >"$T_DIR/s2/b"
out=$(timeout 30 "$LZFSCTL" -c "$CATALOG" job watch every)
rc=$?
check_eq "job watch: exit 0 at the end of the run it followed" 0 "$rc"
check "job watch: prints the run's summary" grep -qE "every: waiting after run [0-9]+: .*files seen" <<<"$out"
check_eq "interval job: the new file came in on a later run" ingested "$(state_of jobs/every/b)"
check "interval job: ran more than once" test "$(jobj every runs)" -ge 2
ctl job stop every >/dev/null
if wait_state every stopped 10; then ok "job stop: stopped"; else not_ok "job stop: stopped"; fi
printf 'c\n' >"$T_DIR/s2/c"
sleep 4
check_eq "a stopped job does not run again" "" "$(state_of jobs/every/c)"
ctl job rm every >/dev/null
check_eq "job rm: gone" "" "$(jobj every name)"

# ---- watch: inotify inside the daemon
ctl job start --name watcher --watch --settle-time 1 "$T_DIR/s3" "s3://$B/jobs/watch" >/dev/null
wait_state watcher running 10
sleep 1
printf 'w\n' >"$T_DIR/s3/w1"
deadline=$((SECONDS + 15))
while [ "$(state_of jobs/watch/w1)" != ingested ] && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
check_eq "watch job: a new file is ingested" ingested "$(state_of jobs/watch/w1)"

# ---- the daemon dies in the middle of a long run; after a restart the
# run is taken up again (its runner is dead) and finishes.
mkdir -p "$T_DIR/s4"
for i in $(seq 1 40); do head -c 50000 /dev/urandom >"$T_DIR/s4/g$i"; done
head -c $((12 * 1024 * 1024)) /dev/urandom >"$T_DIR/s4/big"
s3_fault '{"latency_ms": 300, "ops": ["PutObject", "UploadPart"]}' >/dev/null
ctl job start --name long --workers 2 "$T_DIR/s4" "s3://$B/jobs/long" >/dev/null
deadline=$((SECONDS + 30))
while [ "$(jobj long files_done)" -lt 5 ] 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
kill -9 "$LZFS_PID"
wait "$LZFS_PID" 2>/dev/null
fusermount3 -uz "$MNT" 2>/dev/null
check_eq "killed while the job runs" running "$(jobj long state)"
s3_fault off >/dev/null
lzfs_mount jm -o rescan_interval=60,settle_time=1 || exit 1
if wait_state long done 60; then ok "after a restart the job runs again and finishes"; else
	not_ok "after a restart the job runs again and finishes"; diag "$(ctl job list)"; fi
check_eq "all its 41 files ingested" 41 "$(ctl --json find --state ingested jobs/long | jq length)"
check_eq "one version each" 41 "$(ctl --json find --all-versions jobs/long | jq 'map(select(.state == "ingested")) | length')"
check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
check_eq "the watch job was taken up again by the new daemon" running "$(jobj watcher state)"
printf 'w\n' >"$T_DIR/s3/w2"
deadline=$((SECONDS + 15))
while [ "$(state_of jobs/watch/w2)" != ingested ] && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
check_eq "... and ingests new files" ingested "$(state_of jobs/watch/w2)"
ctl job stop watcher >/dev/null
if wait_state watcher stopped 10; then ok "watch job: stopped"; else not_ok "watch job: stopped"; fi
