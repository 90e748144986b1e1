#!/usr/bin/env bash
# The Debian package: dpkg-buildpackage -us -uc -b in a copy of the tree (it
# runs `make clean`), its content (dpkg -c), its metadata (dpkg -I), then
# dpkg -i on this machine: files in place, /var/lib/lzfs created, the unit
# verified with its man pages; dpkg --purge removes everything again.
# About 1-2 minutes (a full build). LZFS_SKIP_DEB=1 skips it.
. "$(dirname "$0")/lib.sh"
if [ -n "${LZFS_SKIP_DEB:-}" ]; then skip "Debian package" "LZFS_SKIP_DEB is set"; exit 0; fi
for t in dpkg-buildpackage dh git; do
	command -v $t >/dev/null || { skip "Debian package" "$t is missing (scripts/deps installs it)"; exit 0; }
done

src=$T_DIR/src/lzfs
mkdir -p "$src"
(cd "$LZFS_ROOT" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$src"
start=$SECONDS
# (make check SAN=1 passes SAN=1 down in MAKEFLAGS: a package build starts clean)
(cd "$src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES DEB_BUILD_OPTIONS="parallel=$(nproc)" timeout 300 dpkg-buildpackage -us -uc -b) \
	>"$T_DIR/build.log" 2>&1
rc=$?
deb=$(ls "$T_DIR"/src/lzfs_*_*.deb 2>/dev/null | grep -v dbgsym | head -1)
if [ $rc -eq 0 ] && [ -n "$deb" ]; then
	ok "dpkg-buildpackage -us -uc -b builds $(basename "$deb") ($((SECONDS - start)) s)"
else
	not_ok "dpkg-buildpackage -us -uc -b"; tail -20 "$T_DIR/build.log" | sed 's/^/# /'; exit 1
fi
check "the package build ran the configuration unit test" grep -q '^ok 8 - test_check' "$T_DIR/build.log"

content=$(dpkg -c "$deb" | awk '{print $1, $NF}')
for f in "-rwxr-xr-x ./usr/bin/lzfs" "-rw-r--r-- ./lib/systemd/system/lzfs@.service" \
	"-rw-r--r-- ./etc/lzfs/lzfs.conf.example" "-rw-r--r-- ./usr/share/man/man8/lzfs.8.gz" \
	"-rw-r--r-- ./usr/share/man/man5/lzfs.conf.5.gz" "-rw-r--r-- ./usr/share/man/man1/lzfsctl.1.gz" \
	"-rw-r--r-- ./usr/share/doc/lzfs/copyright"; do
	check "dpkg -c: $f" grep -qxF -- "$f" <<<"$content"
done
if [ -x "$BUILD/lzfsctl" ]; then
	check "dpkg -c: lzfsctl" grep -qxF -- "-rwxr-xr-x ./usr/bin/lzfsctl" <<<"$content"
fi
info=$(dpkg -I "$deb")
check "Depends: fuse3 and the shared libraries" \
	bash -c "grep -q '^ Depends:.*libfuse3-3.*fuse3' <<<\"\$1\"" _ "$info"
check "the example configuration is a conffile" \
	bash -c "dpkg-deb -e '$deb' '$T_DIR/ctl' && grep -qx /etc/lzfs/lzfs.conf.example '$T_DIR/ctl/conffiles'"

# Installing needs a machine without lzfs installed (a test must not replace it).
if dpkg-query -W -f='${Status}' lzfs 2>/dev/null | grep -q installed || [ -e /usr/bin/lzfs ] ||
	[ -e /etc/lzfs ] || [ -e /var/lib/lzfs ]; then
	skip "dpkg -i" "lzfs is already installed on this machine"
	exit 0
fi
at_exit "dpkg --purge lzfs"
out=$(dpkg -i "$deb" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "dpkg -i installs cleanly"; else not_ok "dpkg -i"; diag "$out"; fi
check "/usr/bin/lzfs runs" /usr/bin/lzfs --version
check_eq "postinst created /var/lib/lzfs (0750 root)" "750 root" "$(stat -c '%a %U' /var/lib/lzfs 2>&1)"
check "man finds lzfs.conf(5)" man -w 5 lzfs.conf
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T_DIR/units"
	cp /lib/systemd/system/lzfs@.service "$T_DIR/units/lzfs@inst.service"
	out=$(systemd-analyze verify "$T_DIR/units/lzfs@inst.service" 2>&1)
	check_eq "systemd-analyze verify of the installed unit (man pages found)" "" "$out"
fi
out=$(dpkg --purge lzfs 2>&1)
rc=$?
check_eq "dpkg --purge lzfs" 0 "$rc"
check "nothing of the package is left" \
	bash -c "! test -e /usr/bin/lzfs && ! test -e /lib/systemd/system/lzfs@.service && ! test -e /etc/lzfs && ! test -e /var/lib/lzfs"
