#!/usr/bin/env bash
# The rescanner behind a running mount: files that reach the landing
# directory without the mount (cp, rsync, a file that grows for a while,
# files dropped while the daemon was down) are ingested exactly once, a
# growing file only after it settles, rsync's temporary names never.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
require_fuse "rescanner"
s3_start
B=$TEST_BUCKET
lzfs_mount d -o rescan_interval=60,settle_time=3 || exit 1
ctl() { "$LZFSCTL" -c "$CATALOG" "$@"; }
# snap: every catalog row, one TSV line each, into rows.tsv (one lzfsctl and
# one jq per look: jq costs 0.2 s a start on a small box).
snap() {
	ctl --json find --all-versions 2>/dev/null |
		jq -r '.[] | [.path, (.version|tostring), .state, .sha256, .source, (.current|tostring)] | @tsv' \
			>"$T_DIR/rows.tsv"
}
# row PATH FIELD: version, state, sha256 or source of PATH's current row (last snap).
row() {
	local n
	case "$2" in version) n=2 ;; state) n=3 ;; sha256) n=4 ;; source) n=5 ;; esac
	P=${1//$'\n'/\\n} N=$n awk -F'\t' '$1 == ENVIRON["P"] && $6 == "true" { print $ENVIRON["N"] }' "$T_DIR/rows.tsv"
}
field() { snap; row "$@"; }
# puts KEY: objects written to KEY so far (single PUTs and completed multipart uploads).
puts() { grep -cE " (PutObject|CompleteMultipartUpload) $B/$1 200" "$S3_DIR/access.log" | tr -d ' '; }
# wait_ingested SECS PATH...: until every PATH's current row is ingested.
wait_ingested() {
	local deadline=$((SECONDS + $1)) p left
	shift
	while :; do
		snap
		left=0
		for p in "$@"; do [ "$(row "$p" state)" = ingested ] || left=1; done
		[ $left = 0 ] && return 0
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}

# ---- cp of a tree with odd names, straight into the spool.
tree=$T_DIR/tree
mkdir -p "$tree/a b/c%d" "$tree/deep/1/2/3" "$tree/ü"
printf 'space\n' >"$tree/a b/file with spaces.txt"
printf 'pct\n' >"$tree/a b/c%d/100%.dat"
printf 'utf8\n' >"$tree/ü/résumé-日本語.txt"
printf 'nl\n' >"$tree/new"$'\n'"line"
head -c 200000 /dev/urandom >"$tree/deep/1/2/3/blob"
head -c $((12 * 1024 * 1024)) /dev/urandom >"$tree/big.bin" # multipart
cp -r "$tree" "$SPOOL/cp"
files=()
while IFS= read -r -d '' f; do files+=("cp/${f#"$tree/"}"); done < <(find "$tree" -type f -print0)
if wait_ingested 30 "${files[@]}"; then ok "cp: every file ingested"; else not_ok "cp: every file ingested"; fi
bad=0
snap
for p in "${files[@]}"; do
	src=$tree/${p#cp/}
	[ "$(row "$p" sha256)" = "$(sha256sum <"$src" | cut -d' ' -f1)" ] || { bad=$((bad + 1)); diag "sha256: $p"; }
	s3same "d/$p" "$src" || { bad=$((bad + 1)); diag "S3 differs: $p"; }
	[ "$(row "$p" source) $(row "$p" version)" = "rescan 1" ] || { bad=$((bad + 1)); diag "row: $p"; }
	# (the access log splits a key holding a newline over two lines)
	[[ "$p" == *$'\n'* ]] || [ "$(puts "d/$p")" = 1 ] || { bad=$((bad + 1)); diag "sent $(puts "d/$p") times: $p"; }
done
check_eq "cp: every file byte-identical in S3, version 1, sent once" 0 "$bad"

# ---- rsync: temporary names are never ingested, the final names once.
mkdir -p "$T_DIR/rs"
for i in $(seq 1 20); do head -c $((i * 5000)) /dev/urandom >"$T_DIR/rs/r$i.dat"; done
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T_DIR/rs/r-big.dat"
if rsync -a "$T_DIR/rs/" "$SPOOL/rs/"; then ok "rsync -a into the spool"; else not_ok "rsync -a into the spool"; fi
rs=()
for f in "$T_DIR"/rs/*; do rs+=("rs/$(basename "$f")"); done
if wait_ingested 30 "${rs[@]}"; then ok "rsync: every file ingested"; else not_ok "rsync: every file ingested"; fi
snap
tmp=$(cut -f1 "$T_DIR/rows.tsv" | grep -c '^rs/\.' || true)
check_eq "rsync: no temporary name in the catalog" 0 "$tmp"
tmp=$(grep -E " (PutObject|CreateMultipartUpload) $B/d/rs/\." "$S3_DIR/access.log" | wc -l)
check_eq "rsync: no temporary name sent to S3" 0 "$tmp"
bad=0
for p in "${rs[@]}"; do
	[ "$(puts "d/$p")" = 1 ] || { bad=$((bad + 1)); diag "puts $(puts "d/$p"): $p"; }
	[ "$(row "$p" version)" = 1 ] || bad=$((bad + 1))
done
check_eq "rsync: each file sent once, version 1" 0 "$bad"

# ---- a file that grows for ~8 s: appended by short-lived writers (as NFS
# would), then by a writer that keeps it open and pauses longer than the
# settle time.
grow=$SPOOL/grow.log
: >"$T_DIR/grow.src"
early=0
for i in $(seq 1 12); do
	head -c 65536 /dev/urandom | tee -a "$T_DIR/grow.src" >>"$grow"
	sleep 0.5
	[ "$(field grow.log state)" = ingested ] && early=1
done
(
	exec 3>>"$grow"
	head -c 65536 /dev/urandom | tee -a "$T_DIR/grow.src" >&3
	sleep 4 # longer than settle_time: only "open for writing" holds it back
	head -c 65536 /dev/urandom | tee -a "$T_DIR/grow.src" >&3
	exec 3>&-
) &
wpid=$!
while kill -0 $wpid 2>/dev/null; do
	[ "$(field grow.log state)" = ingested ] && early=1
	sleep 0.3
done
check_eq "growing file: not ingested while it grows or is open for writing" 0 "$early"
if wait_ingested 15 grow.log; then ok "growing file: ingested once it settled"; else not_ok "growing file: ingested once it settled"; fi
check_eq "growing file: the whole file, version 1, sent once" \
	"$(sha256sum <"$T_DIR/grow.src" | cut -d' ' -f1) 1 1" "$(row grow.log sha256) $(row grow.log version) $(puts d/grow.log)"

# ---- through the mount at the same time: the rescanner leaves it to the mount.
cp "$T_DIR/rs/r20.dat" "$MNT/via-mount.dat"
sleep 3
snap
check_eq "a file written through the mount: one version, from the mount, sent once" "mount 1 1" \
	"$(row via-mount.dat source) $(row via-mount.dat version) $(puts d/via-mount.dat)"

# ---- a changed file becomes version 2; an unchanged one is never sent again.
printf 'more\n' >>"$SPOOL/cp/a b/file with spaces.txt"
deadline=$((SECONDS + 15))
while snap && [ "$(row "cp/a b/file with spaces.txt" version) $(row "cp/a b/file with spaces.txt" state)" != "2 ingested" ] &&
	[ $SECONDS -lt $deadline ]; do sleep 0.3; done
check_eq "a changed file: version 2, ingested" "2 ingested" \
	"$(row "cp/a b/file with spaces.txt" version) $(row "cp/a b/file with spaces.txt" state)"
check_eq "a changed file: version 1 kept under .lzfs/versions (overwrite=version)" "space" \
	"$(s3cat "d/.lzfs/versions/cp/a b/file with spaces.txt.v1")"
before=$(grep -cE " (PutObject|CompleteMultipartUpload) " "$S3_DIR/access.log")
kill -USR1 "$LZFS_PID" # a full walk now
sleep 2
check_eq "a full walk sends nothing that is unchanged" "$before" \
	"$(grep -cE " (PutObject|CompleteMultipartUpload) " "$S3_DIR/access.log")"

# ---- a change inotify does not report is found by the next full walk: an
# append through a hard link outside the spool (the event goes to the
# other directory). The walk just done remembered the file as unchanged.
ln "$SPOOL/cp/deep/1/2/3/blob" "$T_DIR/blob-link"
printf 'appended through a link\n' >>"$T_DIR/blob-link"
kill -USR1 "$LZFS_PID"
deadline=$((SECONDS + 15))
while snap && [ "$(row cp/deep/1/2/3/blob version) $(row cp/deep/1/2/3/blob state)" != "2 ingested" ] &&
	[ $SECONDS -lt $deadline ]; do sleep 0.3; done
check_eq "a change made through a hard link outside the spool: found by the full walk, version 2" \
	"2 ingested" "$(row cp/deep/1/2/3/blob version) $(row cp/deep/1/2/3/blob state)"
check_eq "a change made through a hard link: the new content in S3" 0 \
	"$(s3same d/cp/deep/1/2/3/blob "$T_DIR/blob-link" && echo 0 || echo 1)"
# that walk trusted the filesystem change events (rescan_stat=changed, the
# default as root on ext4/tmpfs): only they could tell it about the link.
check "the daemon's walks use filesystem change events" grep -q "filesystem change events on" "$LZFS_LOG"
check "a walk stated only the changed files" grep -qE "walked in [0-9]+ ms \(changed files only, [1-9][0-9]* file\(s\) not stated\)" "$LZFS_LOG"
rm -f "$T_DIR/blob-link"

# ---- restart: nothing is sent again; files dropped while down are ingested.
lzfs_umount "$MNT" "$LZFS_PID"
printf 'while down\n' >"$SPOOL/down.txt"
before=$(grep -cE " (PutObject|CompleteMultipartUpload) " "$S3_DIR/access.log")
lzfs_mount d -o rescan_interval=60,settle_time=3 || exit 1
if wait_ingested 20 down.txt; then ok "restart: a file dropped while down is ingested"; else not_ok "restart: a file dropped while down is ingested"; fi
sleep 1
check_eq "restart: nothing else is sent again" $((before + 1)) \
	"$(grep -cE " (PutObject|CompleteMultipartUpload) " "$S3_DIR/access.log")"
snap
vers=$(awk -F'\t' '$2 > 1' "$T_DIR/rows.tsv" | wc -l)
check_eq "restart: the only versions 2 are the two changed files" 2 "$vers"
check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
check "the daemon logged no error" bash -c "! grep -q ' error: ' '$LZFS_LOG'"
