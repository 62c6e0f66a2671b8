#!/usr/bin/env bash
# The Debian package: dpkg-buildpackage -b -us -uc builds it from a copy of
# the tree (deploy/build-deb, also `make deb`); extracted into a test root
# (dpkg -x) its lbd, lbctl and lbdrill report the package's version, its
# lbpair renders the packaged example inventory and its lbd --check accepts
# what lbpair wrote; the unit is where systemd and dh_installsystemd look,
# its maintainer scripts enable it, and every dependency it declares is
# satisfiable here.
set -u
. "$(dirname "$0")/lib.bash"
T=$(mktemp -d /tmp/lb-deb.XXXXXX)
trap 'rc=$?; rm -rf "$T"; exit $rc' EXIT
trap 'exit 130' INT TERM

if ! command -v dpkg-buildpackage >/dev/null || ! dpkg-query -W debhelper >/dev/null 2>&1; then
	not_ok "dpkg-buildpackage and debhelper installed (deploy/install-deps lab)"
	exit 1
fi
"$REPO/deploy/build-deb" "$T/out" >"$T/build.log" 2>&1
check "dpkg-buildpackage -b -us -uc builds the package" [ $? -eq 0 ]
sed 's/^/# /' "$T/build.log" | tail -n 5
DEB=$(ls "$T"/out/lbd_*_*.deb 2>/dev/null | head -n 1)
check "a .deb came out ($(basename "${DEB:-none}"))" [ -s "${DEB:-}" ]
[ -s "${DEB:-}" ] || exit 1

PKGVER=$(dpkg-deb -f "$DEB" Version)
SRCVER=$(sed -n 's/^#define LB_VERSION "\(.*\)"/\1/p' "$REPO/include/lb_version.h")
expect_eq "the package's version starts with lb_version.h's" "${PKGVER%%-*}" "$SRCVER"

R=$T/root
dpkg -x "$DEB" "$R"
for p in usr/sbin/lbd usr/sbin/lbctl usr/bin/lbdrill; do
	expect_eq "$p --version from the package" "$("$R/$p" --version 2>&1)" "$(basename $p) $PKGVER"
done
for f in lib/systemd/system/lbd.service usr/lib/lbd/lb-notify usr/lib/lbd/lbpair \
	usr/lib/lbd/plot_timeline.py \
	usr/share/man/man8/lbd.8.gz usr/share/man/man8/lbctl.8.gz usr/share/man/man1/lbdrill.1.gz \
	usr/share/man/man5/lbd.conf.5.gz usr/share/doc/lbd/examples/pair/example.inventory; do
	check "package holds $f" [ -e "$R/$f" ]
done
check "the unit runs /usr/sbin/lbd" grep -q '^ExecStart=/usr/sbin/lbd -c /etc/lbd/lbd.conf' \
	"$R/lib/systemd/system/lbd.service"
expect_eq "/etc/lbd is mode 750" "$(command stat -c %a "$R/etc/lbd")" 750
dpkg-deb -e "$DEB" "$T/control"
check "postinst enables lbd.service (dh_installsystemd)" grep -q 'deb-systemd-helper.*lbd.service' \
	"$T/control/postinst"
check "lb-notify is root-owned and not group/other writable" \
	bash -c "dpkg-deb -c '$DEB' | grep -E '^-rwxr-xr-x root/root .* ./usr/lib/lbd/lb-notify\$'"

# Every declared dependency is installed here (so the package installs).
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/^ *([^ (]+).*/\1/')
missing=
for d in $deps; do dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'ok installed' || missing="$missing $d"; done
expect_eq "every Depends is satisfiable ($(echo $deps))" "${missing:-none}" none
# ... and `install-deps runtime` installs them (libc6 is always there).
runtime=$(sed -n '/^RUNTIME=(/,/^)/p' "$REPO/deploy/install-deps" | sed '1d;$d' | tr -s ' \t' '\n')
absent=
for d in $deps; do
	[ "$d" = libc6 ] || grep -qx "$d" <<<"$runtime" || absent="$absent $d"
done
expect_eq "install-deps runtime covers every Depends" "${absent:-none}" none

# The packaged renderer and checker agree.
"$R/usr/lib/lbd/lbpair" render "$R/usr/share/doc/lbd/examples/pair/example.inventory" "$T/pair" \
	>"$T/render.log" 2>&1
check "the packaged lbpair renders the packaged example" [ $? -eq 0 ]
for n in lb1 lb2; do
	out=$("$R/usr/sbin/lbd" -c "$T/pair/$n/lbd.conf" --check 2>&1)
	check "the packaged lbd --check accepts $n's lbd.conf ($(head -n 1 <<<"$out"))" \
		grep -q ': ok' <<<"$out"
done
finish
