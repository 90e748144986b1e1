#!/usr/bin/env bash
# make install / make uninstall into a DESTDIR: the tree file by file, the
# unit pointing at the installed program, man pages that render without
# warnings and that the unit's Documentation= finds, the example
# configuration parsing; uninstall leaves nothing of ours (and keeps the
# admin's lzfs.conf).
. "$(dirname "$0")/lib.sh"
cd "$LZFS_ROOT" || exit 1
rel=${BUILD#"$LZFS_ROOT"/}
san=()
case $rel in */san | */san/) san=(SAN=1) ;; esac
dest=$T_DIR/root

if make --no-print-directory install DESTDIR="$dest" PREFIX=/usr BUILD="$rel" "${san[@]}" >"$T_DIR/install.log" 2>&1; then
	ok "make install DESTDIR=... PREFIX=/usr"
else
	not_ok "make install DESTDIR=... PREFIX=/usr"; sed 's/^/# /' "$T_DIR/install.log" | tail; exit 1
fi
want="etc/lzfs/lzfs.conf.example 644
lib/systemd/system/lzfs@.service 644
usr/bin/lzfs 755
usr/share/man/man1/lzfsctl.1 644
usr/share/man/man5/lzfs.conf.5 644
usr/share/man/man8/lzfs.8 644"
[ -x "$BUILD/lzfsctl" ] && want+=$'\nusr/bin/lzfsctl 755'
check_eq "the installed files and their modes" "$(sort <<<"$want")" "$(cd "$dest" && find . -type f -printf '%P %m\n' | sort)"
check "the program is the one built" cmp -s "$BUILD/lzfs" "$dest/usr/bin/lzfs"
check "the installed program runs" "$dest/usr/bin/lzfs" --version
check "the unit runs the installed program" grep -q '^ExecStart=/usr/bin/lzfs -f -o mount=%I$' "$dest/lib/systemd/system/lzfs@.service"
check "no @PLACEHOLDER@ left in the unit" bash -c "! grep -q '@[A-Z]*@' '$dest/lib/systemd/system/lzfs@.service'"

for m in "$dest"/usr/share/man/man*/*; do
	w=$(MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
	check_eq "man -l $(basename "$m") renders without warnings" "" "$w"
done
if command -v systemd-analyze >/dev/null; then
	# verify needs ExecStart= to exist: point it at DESTDIR; man: links must resolve.
	mkdir -p "$T_DIR/units"
	sed "s|/usr/bin/lzfs|$dest/usr/bin/lzfs|" "$dest/lib/systemd/system/lzfs@.service" >"$T_DIR/units/lzfs@inst.service"
	out=$(MANPATH=$dest/usr/share/man systemd-analyze verify "$T_DIR/units/lzfs@inst.service" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify of the installed unit, man: links included"; else
		not_ok "systemd-analyze verify of the installed unit"; diag "exit $rc: $out"; fi
else
	skip "systemd-analyze verify of the installed unit" "systemd is not installed"
fi
out=$("$dest/usr/bin/lzfs" --check-config -o "config=$dest/etc/lzfs/lzfs.conf.example" 2>&1)
check "the example configuration parses" grep -q '^\[instrument-7\]' <<<"$out"
check "... without a FILE:LINE error (only its paths are missing here)" \
	test -z "$(grep 'lzfs: .*lzfs.conf.example:[0-9]' <<<"$out")"

# an admin's configuration survives uninstall
echo "; mine" >"$dest/etc/lzfs/lzfs.conf"
make --no-print-directory uninstall DESTDIR="$dest" PREFIX=/usr BUILD="$rel" "${san[@]}" >"$T_DIR/uninstall.log" 2>&1
check_eq "make uninstall removes every installed file" "etc/lzfs/lzfs.conf" "$(cd "$dest" && find . -type f -printf '%P\n')"
rm "$dest/etc/lzfs/lzfs.conf"
make --no-print-directory uninstall DESTDIR="$dest" PREFIX=/usr BUILD="$rel" "${san[@]}" >/dev/null 2>&1
check "... and /etc/lzfs once it is empty" test ! -e "$dest/etc/lzfs"

# the default prefix
dest2=$T_DIR/root2
make --no-print-directory install DESTDIR="$dest2" BUILD="$rel" "${san[@]}" >"$T_DIR/install2.log" 2>&1
check "PREFIX=/usr/local: programs in /usr/local/bin" test -x "$dest2/usr/local/bin/lzfs"
check "PREFIX=/usr/local: the unit in /usr/local/lib/systemd/system, running /usr/local/bin/lzfs" \
	grep -q '^ExecStart=/usr/local/bin/lzfs ' "$dest2/usr/local/lib/systemd/system/lzfs@.service"
check "PREFIX=/usr/local: man pages in /usr/local/share/man" test -f "$dest2/usr/local/share/man/man5/lzfs.conf.5"
check "PREFIX=/usr/local: the example configuration in /etc/lzfs" test -f "$dest2/etc/lzfs/lzfs.conf.example"
make --no-print-directory uninstall DESTDIR="$dest2" BUILD="$rel" "${san[@]}" >/dev/null 2>&1
check_eq "PREFIX=/usr/local: uninstall empties the tree" "" "$(find "$dest2" -type f)"
