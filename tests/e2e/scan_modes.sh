#!/usr/bin/env bash
# lzfsctl scan against the strict test S3 and a real catalog, on a tree with
# odd names, FIFOs, sockets, devices and symlinks: every mode (put,
# put-sync, put-append, register, no-op), the filters, key templates,
# metadata, and the output (one summary line, a progress bar on a tty).
# Whatever is not a regular file is never followed or read.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scanlib.bash"
s3_start
export AWS_ENDPOINT_URL=$S3_ENDPOINT
CAT=$T_DIR/catalog.db
B=$TEST_BUCKET
M=$((1024 * 1024))
src=$T_DIR/src
ctl() { "$LZFSCTL" -c "$CAT" "$@"; }
# scan ARGS...: a scan with a 60 s safety net (a FIFO read by mistake would hang).
scan() { timeout 60 "$LZFSCTL" -c "$CAT" scan "$@"; }
jstat() { "$LZFSCTL" -c "$CAT" --json stat "$1" 2>/dev/null; }
field() { jstat "$1" | jq -r ".object.$2"; }
# ops OP KEY: requests of one S3 operation on one key so far (access log).
ops() { grep -c " $1 $B/$2 200" "$S3_DIR/access.log" | tr -d ' '; }
mkdir -p "$src/a b/c%d/+plus" "$src/deep/1/2/3/4/5/6/7/8" "$src/.hidden" "$src/cache" "$src/keep"
printf 'space\n' >"$src/a b/file with spaces.txt"
printf 'pct\n' >"$src/a b/c%d/100%.dat"
printf 'plus\n' >"$src/a b/c%d/+plus/a+b=c&d?.bin"
printf 'utf8\n' >"$src/deep/1/2/3/4/5/6/7/8/résumé-日本語.txt"
printf 'nl\n' >"$src/a b/new"$'\n'"line"
printf 'dot\n' >"$src/.hidden/.rc"
printf 'tmp\n' >"$src/keep/x.tmp"
printf 'cached\n' >"$src/cache/c.bin"
long=$(printf 'L%.0s' $(seq 1 200)) # s3rver stores keys as file names
printf 'long\n' >"$src/$long"
head -c $((6 * M)) /dev/urandom >"$src/big.bin"
printf '' >"$src/empty"
# Things that must never be read or followed.
mkfifo "$src/fifo"
mknod "$src/null-device" c 1 3
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$src/sock"
ln -s /etc/passwd "$src/passwd-link"
ln -s /etc "$src/etc-dir-link"
nreg=$(find "$src" -type f -printf x | wc -c)

# ---- put: the first scan uploads every regular file, once.
out=$(scan --mode put "$src" "s3://$B/put" 2>"$T_DIR/err")
rc=$?
check_eq "put: exit 0" 0 "$rc"
check_eq "put: one summary line on stdout (not a tty)" 1 "$(printf '%s\n' "$out" | wc -l)"
diag "$out"
# One listing of S3 and one of the catalog, compared file by file.
ctl --json find put >"$T_DIR/rows-put.json"
bad=0
while IFS= read -r -d '' f; do
	rel=${f#"$src/"}
	s3cat "put/$rel" | cmp -s "$f" - || { bad=$((bad + 1)); diag "S3 differs: $rel"; }
	row=$(jq -r --arg p "put/$rel" '.[] | select(.path == $p) | .state + " " + .sha256' "$T_DIR/rows-put.json")
	[ "$row" = "ingested $(sha256sum <"$f" | cut -d' ' -f1)" ] || { bad=$((bad + 1)); diag "row: $rel: $row"; }
done < <(find "$src" -type f -print0)
check_eq "put: every regular file in S3 and ingested with its SHA-256" 0 "$bad"
nobj=$(s3count put/)
check_eq "put: one object per regular file, nothing else (no FIFO, device, socket, link)" "$nreg" "$nobj"
check_eq "put: the symlinked directory was not descended" "" "$(s3keys put/etc-dir-link/)"
check "put: summary counts what is not a regular file (FIFO, device, socket, 2 links)" grep -q "5 not regular" <<<"$out"

# put leaves cataloged files alone, even changed ones.
printf 'changed\n' >>"$src/a b/file with spaces.txt"
scan --mode put "$src" "s3://$B/put" >/dev/null 2>&1
check_eq "put: a changed file is not sent again" 1 "$(ops PutObject "put/a b/file with spaces.txt")"
check_eq "put: its catalog row stays version 1" 1 "$(field "put/a b/file with spaces.txt" version)"

# ---- put-sync: new and changed files; same bytes with new times only touch the row.
cp -a "$src" "$T_DIR/sync-src"
ssrc=$T_DIR/sync-src
scan --mode put-sync "$ssrc" "s3://$B/sync" >/dev/null 2>&1
puts0=$(grep -c " PutObject $B/sync/" "$S3_DIR/access.log")
out=$(scan --mode put-sync "$ssrc" "s3://$B/sync" 2>&1)
check_eq "put-sync: a second scan sends nothing" "$puts0" "$(grep -c " PutObject $B/sync/" "$S3_DIR/access.log")"
check "put-sync: ... and says every file is unchanged" grep -q "$nreg unchanged" <<<"$out"
printf 'more\n' >>"$ssrc/empty"
touch -d '2020-01-01 00:00:00' "$ssrc/a b/c%d/100%.dat"   # same bytes, other mtime
out=$(scan --mode put-sync "$ssrc" "s3://$B/sync" 2>&1)
check_eq "put-sync: the changed file is version 2" 2 "$(field sync/empty version)"
check_eq "put-sync: ... with the new bytes in S3" "more" "$(s3cat sync/empty)"
check_eq "put-sync: the touched file is not sent again" 1 "$(ops PutObject "sync/a b/c%d/100%.dat")"
check_eq "put-sync: ... its row has the new mtime" \
	"$(date -d '2020-01-01 00:00:00' +%s)000000000" "$(field "sync/a b/c%d/100%.dat" mtime_ns)"
check_eq "put-sync: ... and stays version 1" 1 "$(field "sync/a b/c%d/100%.dat" version)"
check "put-sync: summary: 1 uploaded, 1 touched" bash -c "grep -q ' 1 uploaded' <<<'$out' && grep -q '1 touched' <<<'$out'"
check_eq "put-sync: version 1 was kept under .lzfs/versions (overwrite=version)" "ok " \
	"$(s3cat sync/.lzfs/versions/empty.v1 && echo ok) $(ctl --json stat --version 1 sync/empty | jq -r .object.key | grep -v '^sync/.lzfs/versions/empty.v1$')"
printf 'denied\n' >>"$ssrc/keep/x.tmp"
out=$(scan --overwrite deny "$ssrc" "s3://$B/sync" 2>&1)
check "overwrite=deny: a changed ingested file is refused and said so" \
	bash -c "grep -q 'overwrite=deny' <<<'$out' && grep -q '1 failed' <<<'$out'"
check_eq "overwrite=deny: ... and not sent" "tmp" "$(s3cat sync/keep/x.tmp)"
scan --overwrite replace "$ssrc" "s3://$B/sync" >/dev/null 2>&1
check_eq "overwrite=replace: sent over the old object" "$(cat "$ssrc/keep/x.tmp")" "$(s3cat sync/keep/x.tmp)"
check_eq "overwrite=replace: no version kept" "" "$(s3keys sync/.lzfs/versions/keep/)"
check_eq "put-sync: .lzfs/ keys are never registered as files" 0 \
	"$(scan --mode register "s3://$B/sync" 2>&1 >/dev/null; ctl --json find sync/.lzfs 2>/dev/null | jq length 2>/dev/null || echo 0)"

# ---- put-append: a grown file sends only its new bytes.
asrc=$T_DIR/append-src
mkdir -p "$asrc"
head -c $((6 * M + 123)) /dev/urandom >"$asrc/log.bin"
head -c $((1 * M)) /dev/urandom >"$asrc/small.bin"
head -c $((6 * M)) /dev/urandom >"$asrc/rewritten.bin"
scan --mode put-append "$asrc" "s3://$B/app" >/dev/null 2>&1
head -c $((2 * M + 7)) /dev/urandom >>"$asrc/log.bin"
head -c 1000 /dev/urandom >>"$asrc/small.bin"
# grown, but its first bytes changed too: must be sent whole
{ head -c 100 /dev/urandom; tail -c +101 "$asrc/rewritten.bin"; head -c 100 /dev/urandom; } >"$T_DIR/rw"
mv "$T_DIR/rw" "$asrc/rewritten.bin"
out=$(scan --mode put-append --list "$asrc" "s3://$B/app" 2>&1)
diag "$out"
check "put-append: log.bin reported appended" grep -q "^appended	log.bin" <<<"$out"
check_eq "put-append: log.bin in S3 equals the file" "$(sha256sum <"$asrc/log.bin")" "$(s3cat app/log.bin | sha256sum)"
check_eq "put-append: log.bin's old bytes were copied server-side (UploadPartCopy)" 1 "$(ops UploadPartCopy app/log.bin)"
sent=$(grep " UploadPart $B/app/log.bin 200" "$S3_DIR/access.log" | sed 's/.* in=\([0-9]*\).*/\1/' | paste -sd+ | bc)
check "put-append: only the new bytes of log.bin were uploaded ($sent)" test "$sent" -le $((2 * M + 7 + 65536))
check_eq "put-append: log.bin row: version 2 with the file's SHA-256" \
	"2 $(sha256sum <"$asrc/log.bin" | cut -d' ' -f1)" "$(field app/log.bin version) $(field app/log.bin sha256)"
check_eq "put-append: a file under 5 MiB is sent whole" "$(sha256sum <"$asrc/small.bin")" "$(s3cat app/small.bin | sha256sum)"
check_eq "put-append: ... with no copy" 0 "$(ops UploadPartCopy app/small.bin)"
check_eq "put-append: a grown file whose head changed is sent whole" "$(sha256sum <"$asrc/rewritten.bin")" "$(s3cat app/rewritten.bin | sha256sum)"
check_eq "put-append: ... with no copy" 0 "$(ops UploadPartCopy app/rewritten.bin)"
check_eq "put-append: no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
check_eq "put-append: the old log.bin kept as version 1" "$((6 * M + 123))" "$(s3cat app/.lzfs/versions/log.bin.v1 | wc -c)"

# ---- no-op: reports what put-sync would do and changes nothing.
printf 'x\n' >>"$ssrc/empty"
printf 'new\n' >"$ssrc/brand new.txt"
sleep 0.5 # the proxy logs a request when its connection closes
before=$(wc -l <"$S3_DIR/access.log")
vers=$(ctl --json find --all-versions sync | jq length)
out=$(scan --mode no-op "$ssrc" "s3://$B/sync" 2>&1)
check "no-op: reports the new file" grep -q "^would upload	brand new.txt	4	sync/brand new.txt" <<<"$out"
check "no-op: reports the changed file" grep -q "^would upload a new version of	empty" <<<"$out"
check_eq "no-op: no request changed S3" 0 "$(tail -n +$((before + 1)) "$S3_DIR/access.log" | grep -cE ' (PutObject|CreateMultipartUpload|UploadPart|DeleteObject) ')"
check_eq "no-op: the catalog is unchanged" "$vers" "$(ctl --json find --all-versions sync | jq length)"

# ---- register: objects already in S3 are cataloged, nothing is uploaded.
rdir=$T_DIR/reg
mkdir -p "$rdir/sub dir"
printf 'r1\n' >"$rdir/r1.txt"
printf 'r2\n' >"$rdir/sub dir/r 2+&.txt"
printf 'skip\n' >"$rdir/sub dir/s.tmp"
s3put "$rdir/r1.txt" reg/r1.txt
s3put "$rdir/sub dir/r 2+&.txt" "reg/sub dir/r 2+&.txt"
s3put "$rdir/sub dir/s.tmp" "reg/sub dir/s.tmp"
out=$(scan --mode register --exclude-file-name '.*\.tmp' "s3://$B/reg" 2>&1)
rc=$?
check_eq "register: exit 0" 0 "$rc"
check_eq "register: r1.txt cataloged as ingested" ingested "$(field reg/r1.txt state)"
check_eq "register: ... with its size and ETag" "3 $(s3head reg/r1.txt | tr -d '\r"' | sed -n 's/^etag: //ip')" \
	"$(field reg/r1.txt size) $(field reg/r1.txt etag)"
check_eq "register: odd key cataloged" ingested "$(field "reg/sub dir/r 2+&.txt" state)"
check "register: excluded key not cataloged" bash -c "! '$LZFSCTL' -c '$CAT' stat 'reg/sub dir/s.tmp' >/dev/null 2>&1"
check_eq "register: nothing uploaded (the 3 PUTs are the test's own)" 3 "$(grep -cE " (PutObject|UploadPart) $B/reg/" "$S3_DIR/access.log")"
out=$(scan --mode register "s3://$B/reg" 2>&1)
check "register: a second run finds them unchanged" grep -q "2 unchanged" <<<"$out"

# ---- filters
fsrc=$T_DIR/fsrc
cp -a "$src" "$fsrc"
out=$(scan --exclude-file-name '.*\.tmp' --exclude-file-name '\..*' --exclude-directory-name 'cache|deep' \
	--exclude-file-type pipe --exclude-file-type socket --exclude-file-type link \
	--exclude-file-type character --list "$fsrc" "s3://$B/flt" 2>&1)
keys=$(s3keys flt/)
check "filters: *.tmp excluded" bash -c "! grep -q 'x.tmp' <<<'$keys'"
check "filters: dotfiles excluded (and .hidden/ is a directory, not excluded by a file pattern)" \
	bash -c "! grep -q '\.rc' <<<'$keys' && ! grep -q '^flt/\.' <<<'$keys'"
check "filters: excluded directories not entered" bash -c "! grep -qE 'flt/(cache|deep)/' <<<'$keys'"
check "filters: the rest is there" bash -c "grep -q 'flt/big.bin' <<<'$keys' && grep -q 'flt/a b/c%d/+plus/a+b=c&d?.bin' <<<'$keys'"
check "filters: the excluded special files are counted as excluded" grep -q "excluded" <<<"$out"

# ---- key templates and metadata
tsrc=$T_DIR/tsrc
mkdir -p "$tsrc/d"
printf 'k\n' >"$tsrc/d/k.txt"
touch -d '2021-02-03 04:05:06 UTC' "$tsrc/d/k.txt"
scan --key-template '{prefix}/{yyyy}/{mm}/{relpath}' --metadata project=apollo --metadata 'run_id=42' \
	"$tsrc" "s3://$B/tpl" >/dev/null 2>&1
check_eq "key template: {yyyy}/{mm} from the mtime" "k" "$(s3cat tpl/2021/02/d/k.txt)"
check_eq "key template: the catalog path is the key" ingested "$(field tpl/2021/02/d/k.txt state)"
check_eq "metadata: on the S3 object" "apollo 42" \
	"$(s3head tpl/2021/02/d/k.txt | tr -d '\r' | sed -n 's/^x-amz-meta-\(project\|run_id\): //ip' | paste -sd' ')"
check_eq "metadata: in the catalog" "apollo" "$(ctl --json meta ls tpl/2021/02/d/k.txt | jq -r '.[] | select(.name=="project") | .value')"
for t in '{prefix}/../{relpath}' '{relpath}' '{prefix}//{relpath}' '{prefix}/{nope}/{relpath}' '{prefix}/./{name}'; do
	err=$(scan --key-template "$t" "$tsrc" "s3://$B/tpl" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && grep -q "key template" <<<"$err"; then ok "key template '$t' refused"; else
		not_ok "key template '$t' refused"; diag "rc=$rc $err"; fi
done
scan --collection "archive/tpl" "$tsrc" "s3://$B/col" >/dev/null 2>&1
check_eq "--collection: catalog path under the collection, key under the prefix" "col/d/k.txt" \
	"$(field archive/tpl/d/k.txt key)"

# ---- permission errors are logged and counted; the scan goes on
psrc=$T_DIR/psrc
mkdir -p "$psrc/closed"
printf 'ok\n' >"$psrc/ok.txt"
printf 'no\n' >"$psrc/secret.txt"
printf 'no\n' >"$psrc/closed/inner.txt"
chmod 600 "$psrc/secret.txt"
chmod 700 "$psrc/closed"
chmod 755 "$T_DIR" "$psrc"
chmod 644 "$psrc/ok.txt"
pcat=$T_DIR/nobody
mkdir -p "$pcat"
chown nobody "$pcat"
if command -v setpriv >/dev/null; then
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups timeout 60 "$LZFSCTL" -c "$pcat/c.db" scan \
		"$psrc" "s3://$B/perm" 2>"$T_DIR/perm.err")
	rc=$?
	check_eq "permissions: exit 1 (some files could not be read)" 1 "$rc"
	check_eq "permissions: the readable file is in S3" ok "$(s3cat perm/ok.txt)"
	check "permissions: the unreadable file and directory are counted" grep -q "2 unreadable" <<<"$out"
	check "permissions: and logged with the reason" bash -c "grep -q 'secret.txt.*Permission denied' '$T_DIR/perm.err' && grep -q 'closed.*Permission denied' '$T_DIR/perm.err'"
else
	skip "permissions" "setpriv missing"
fi

# ---- output on a terminal: a progress bar
if command -v script >/dev/null; then
	pg=$T_DIR/pg
	mkdir -p "$pg"
	for i in $(seq 1 200); do head -c 20000 /dev/urandom >"$pg/f$i"; done
	script -qec "timeout 60 '$LZFSCTL' -c '$CAT' scan --workers 2 '$pg' 's3://$B/pg'" "$T_DIR/tty.out" >/dev/null 2>&1
	check "progress: a bar with files, bytes, rate and ETA on a terminal" \
		grep -qaE '\] [0-9]+/[0-9]+\+? files .*/s  ETA' "$T_DIR/tty.out"
	check "progress: the summary line at the end" grep -qa "200 files seen: 200 uploaded" "$T_DIR/tty.out"
else
	skip "progress bar" "script(1) missing"
fi

check_eq "no multipart upload left open" 0 "$("$S3SERVER" uploads "$S3_DIR" | jq length)"
