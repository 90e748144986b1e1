#!/usr/bin/env bash
# POSIX behaviour of the mount beyond sequential writes: random writes and
# sparse files (spool fallback), rewrites, appends, truncate, rename,
# unlink, directories, attributes, symlinks, xattrs, refused operations.
. "$(dirname "$0")/lib.sh"
require_fuse "mount posix"
s3_start
lzfs_mount p || exit 1
M=$((1024 * 1024))
src=$T_DIR/src
mkdir -p "$src"

# Random writes: write, seek back, overwrite (python does what editors do).
head -c $((12 * M)) /dev/urandom >"$src/r"
python3 - "$MNT/rand" "$src/r" <<'PY'
import os, sys
dst, src = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
fd = os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b'\0' * len(data))          # placeholder, then fill backwards
chunk = 1 << 20
for off in range(len(data) - chunk, -1, -chunk):
    os.pwrite(fd, data[off:off + chunk], off)
rem = len(data) % chunk
if rem:
    os.pwrite(fd, data[:rem], 0)
os.close(fd)
PY
ingested_ok "seek back and overwrite: uploaded from the spool, correct" "$MNT/rand" p/rand "$src/r"

# Sparse file: a hole in the middle.
dd if=/dev/urandom of="$src/sparse" bs=1M count=1 status=none
dd if=/dev/urandom of="$src/sparse" bs=1M count=1 seek=9 conv=notrunc status=none
dd if="$src/sparse" of="$MNT/sparse" bs=1M count=1 status=none
dd if="$src/sparse" of="$MNT/sparse" bs=1M count=1 skip=9 seek=9 conv=notrunc status=none
ingested_ok "sparse file with a hole" "$MNT/sparse" p/sparse "$src/sparse"

# O_RDWR rewrite of an ingested file: a new version with the new content.
printf 'first version\n' >"$MNT/rw"
printf 'first version\n' >"$src/rw"
printf 'FIRST' | dd of="$MNT/rw" bs=1 conv=notrunc status=none
printf 'FIRST' | dd of="$src/rw" bs=1 conv=notrunc status=none
ingested_ok "in-place rewrite of an ingested file" "$MNT/rw" p/rw "$src/rw"
check_eq "rewrite made version 2" 2 "$(xa "$MNT/rw" version)"

# Append to an existing file.
printf 'line1\n' >"$MNT/log.txt"; printf 'line1\n' >"$src/log.txt"
printf 'line2\n' >>"$MNT/log.txt"; printf 'line2\n' >>"$src/log.txt"
ingested_ok "append (>>) to an ingested file" "$MNT/log.txt" p/log.txt "$src/log.txt"

# Truncate without opening (truncate(1)) and overwrite with O_TRUNC.
head -c 3000 /dev/urandom >"$src/t"; cp "$src/t" "$MNT/t"
truncate -s 1000 "$MNT/t"; truncate -s 1000 "$src/t"
ingested_ok "truncate(1) shrinks the object" "$MNT/t" p/t "$src/t"
head -c 2000 /dev/urandom >"$src/t2"
cp "$src/t2" "$MNT/t"
ingested_ok "overwrite with O_TRUNC" "$MNT/t" p/t "$src/t2"

# Rename: editors' save and rsync's temp-then-rename end with one object.
printf 'draft\n' >"$MNT/.doc.tmp"
mv "$MNT/.doc.tmp" "$MNT/doc.txt"
printf 'draft\n' >"$src/doc"
ingested_ok "rename of a closed file moves the object" "$MNT/doc.txt" p/doc.txt "$src/doc"
check "old name's object is gone" bash -c "! awss3 s3api head-object --bucket $TEST_BUCKET --key p/.doc.tmp >/dev/null 2>&1"
mkdir -p "$MNT/d1/sub"
printf 'x\n' >"$MNT/d1/sub/x"; printf 'x\n' >"$src/x"
mv "$MNT/d1" "$MNT/d2"
ingested_ok "rename of a directory moves its objects" "$MNT/d2/sub/x" p/d2/sub/x "$src/x"
check "directory's old objects are gone" bash -c "[ -z \"\$(awss3 s3api list-objects-v2 --bucket $TEST_BUCKET --prefix p/d1/ --query 'Contents[].Key' --output text | grep -v None)\" ]"
# Rename while open for writing.
exec 7>"$MNT/open-renamed"
printf 'written before rename\n' >&7
mv "$MNT/open-renamed" "$MNT/renamed-while-open"
printf 'and after\n' >&7
exec 7>&-
printf 'written before rename\nand after\n' >"$src/orw"
ingested_ok "rename while open: object under the final name" "$MNT/renamed-while-open" p/renamed-while-open "$src/orw"
check "rename while open: no object under the first name" bash -c "! awss3 s3api head-object --bucket $TEST_BUCKET --key p/open-renamed >/dev/null 2>&1"

# Unlink removes the spool file, the object, and marks the row deleted.
printf 'bye\n' >"$MNT/gone"
rm "$MNT/gone"
check "unlink: file gone from the mount" test ! -e "$MNT/gone"
check "unlink: object gone from S3" bash -c "! awss3 s3api head-object --bucket $TEST_BUCKET --key p/gone >/dev/null 2>&1"

# Directories.
mkdir "$MNT/emptydir"
check "mkdir" test -d "$MNT/emptydir"
rmdir "$MNT/emptydir"
check "rmdir" test ! -e "$MNT/emptydir"
mkdir "$MNT/full"; printf 'x' >"$MNT/full/f"
if rmdir "$MNT/full" 2>/dev/null; then not_ok "rmdir of a non-empty dir refused"; else ok "rmdir of a non-empty dir refused"; fi

# Attributes.
printf 'attr\n' >"$MNT/attr"
chmod 600 "$MNT/attr"
check_eq "chmod" 600 "$(stat -c %a "$MNT/attr")"
touch -d '2001-02-03 04:05:06 UTC' "$MNT/attr"
check_eq "utimens" 981173106 "$(stat -c %Y "$MNT/attr")"

# Symlinks are stored, not followed.
ln -s ../outside/target "$MNT/link"
check_eq "symlink reads back" ../outside/target "$(readlink "$MNT/link")"
meta=$(awss3 s3api head-object --bucket "$TEST_BUCKET" --key p/link --query 'Metadata."lzfs-symlink"' --output text 2>/dev/null)
check_eq "symlink stored as an object with its target in metadata" ../outside/target "$meta"

# xattrs: state views and user metadata.
printf 'meta\n' >"$MNT/m"
setfattr -n user.instrument -v microscope-7 "$MNT/m"
check_eq "user xattr reads back" microscope-7 "$(getfattr --only-values -n user.instrument "$MNT/m")"
check "user.lzfs.* listed" bash -c "getfattr -d -m - '$MNT/m' | grep -q user.lzfs.state"
if setfattr -n user.lzfs.state -v x "$MNT/m" 2>/dev/null; then not_ok "user.lzfs.* is read-only"; else ok "user.lzfs.* is read-only"; fi

# Refused operations, with their errno.
if ln "$MNT/m" "$MNT/hard" 2>"$T_DIR/err"; then not_ok "hard link refused"; else check "hard link refused with EPERM" grep -q "not permitted" "$T_DIR/err"; fi
if mkfifo "$MNT/fifo" 2>"$T_DIR/err"; then not_ok "mkfifo refused"; else check "mkfifo refused with EPERM" grep -q "not permitted" "$T_DIR/err"; fi
check "the reserved .lzfs directory is invisible" bash -c "! ls -a '$MNT' | grep -qx .lzfs"
if ls "$MNT/.lzfs" >/dev/null 2>&1; then not_ok ".lzfs unreachable"; else ok ".lzfs unreachable"; fi
