#!/usr/bin/env bash
# make install and what it lays out: programs, lb-notify, the systemd unit,
# man pages and examples (DESTDIR staging, PREFIX, sysconfdir); every man
# page renders with `man -l` and without groff warnings; the unit passes
# `systemd-analyze verify`; and lbd, started as systemd would start it
# (NOTIFY_SOCKET set, --pidfile) in a namespace of our own, sends READY=1
# and a STATUS only once it runs, writes its pid file and removes it at exit
# -- with the unit's capability bounding set and no-new-privileges applied
# by setpriv, and a sync section bound to an interface, so that what the
# unit allows is shown to be enough (the kernel fast path, on by default,
# loads within it).
set -u
. "$(dirname "$0")/lib.bash"
T=$(mktemp -d /tmp/lb-install.XXXXXX)
# lbd gives up root after set-up (daemon.user, nobody): it reaches the
# notify socket here and removes its pid file at exit (root's: the unit's
# bounding set has no CAP_CHOWN), which systemd does for /run/lbd.
chmod 0777 "$T"
NS=lbinst$$
LBD_PID=
cleanup() {
	local rc=$?
	[ -z "$LBD_PID" ] || kill -KILL "$LBD_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
VERSION=$(sed -n 's/^#define LB_VERSION "\(.*\)"/\1/p' "$REPO/include/lb_version.h")

# ---- DESTDIR layout
make -C "$REPO" -s install DESTDIR="$T/stage" >"$T/install.log" 2>&1
check "make install DESTDIR=... succeeds" [ $? -eq 0 ]
S=$T/stage
for f in usr/local/sbin/lbd usr/local/sbin/lbctl usr/local/bin/lbdrill \
	usr/local/lib/lbd/lb-notify usr/local/lib/lbd/lbpair usr/local/lib/lbd/plot_timeline.py; do
	expect_eq "$f installed, mode 755" "$(command stat -c %a "$S/$f" 2>&1)" 755
done
for f in usr/local/lib/systemd/system/lbd.service usr/local/share/man/man8/lbd.8 \
	usr/local/share/man/man8/lbctl.8 usr/local/share/man/man1/lbdrill.1 \
	usr/local/share/man/man5/lbd.conf.5 usr/local/share/doc/lbd/examples/lbd.conf \
	usr/local/share/doc/lbd/examples/pair/example.inventory usr/local/share/doc/lbd/operations.md; do
	expect_eq "$f installed, mode 644" "$(command stat -c %a "$S/$f" 2>&1)" 644
done
expect_eq "etc/lbd is root's alone (750)" "$(command stat -c %a "$S/etc/lbd" 2>&1)" 750
for p in lbd lbctl; do
	expect_eq "installed $p --version" "$("$S/usr/local/sbin/$p" --version 2>&1)" "$p $VERSION"
done
expect_eq "installed lbdrill --version" "$("$S/usr/local/bin/lbdrill" --version 2>&1)" "lbdrill $VERSION"
expect_eq "the unit runs the installed lbd" \
	"$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$S/usr/local/lib/systemd/system/lbd.service")" \
	/usr/local/sbin/lbd
check "the unit reads sysconfdir's lbd.conf" grep -q -- '-c /etc/lbd/lbd.conf' \
	"$S/usr/local/lib/systemd/system/lbd.service"

# ---- man pages
for page in man8/lbd.8 man8/lbctl.8 man1/lbdrill.1 man5/lbd.conf.5; do
	f=$S/usr/local/share/man/$page
	# Overstrike (X backspace X) is how man marks bold; strip it.
	out=$(MANPAGER=cat MANWIDTH=80 man -l -Tutf8 "$f" 2>"$T/man.err" | sed "s/.\x08//g")
	check "man -l $page renders NAME and SYNOPSIS" \
		bash -c 'grep -q "^NAME" <<<"$1" && grep -q "^SYNOPSIS" <<<"$1"' _ "$out"
	MANPAGER=cat man --warnings=w -l -Tutf8 "$f" >/dev/null 2>"$T/man.err"
	check "man $page: no groff warnings" [ ! -s "$T/man.err" ]
	sed 's/^/# /' "$T/man.err" | head -n 5
done

# ---- systemd unit: a PREFIX install, so its paths exist for verify
make -C "$REPO" -s install PREFIX="$T/usr" sysconfdir="$T/etc" >>"$T/install.log" 2>&1
U=$T/usr/lib/systemd/system/lbd.service
if command -v systemd-analyze >/dev/null; then
	MANPATH=$T/usr/share/man systemd-analyze verify "$U" >"$T/verify.log" 2>&1
	rc=$?
	check "systemd-analyze verify: exit 0 ($rc), nothing reported" \
		bash -c "[ $rc -eq 0 ] && [ ! -s '$T/verify.log' ]"
	sed 's/^/# /' "$T/verify.log" | head -n 10
else
	note "systemd-analyze not installed: unit not verified"
fi
for line in Type=notify Before=keepalived.service Restart=on-failure \
	'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_DAC_READ_SEARCH CAP_BPF CAP_PERFMON' \
	SystemCallFilter=@system-service SystemCallFilter=bpf ProtectSystem=strict \
	'ReadWritePaths=/run/lbd /var/lib/lbd' RuntimeDirectory=lbd PrivateTmp=yes NoNewPrivileges=yes \
	DevicePolicy=closed 'DeviceAllow=/dev/net/tun rw'; do
	check "unit: $line" grep -qx "$line" "$U"
done

# ---- readiness: lbd as systemd starts it, in a namespace of our own
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NS" link add sync0 type veth peer name sync1	# no dummy driver here
ip -n "$NS" addr add 198.18.2.1/24 dev sync0
ip -n "$NS" link set sync0 up
(umask 077 && head -c 32 /dev/urandom >"$T/sync.key")
chown nobody "$T/sync.key"	# read again on a reload, as daemon.user (nobody)
cat >"$T/lbd.conf" <<CONF
daemon: { control = "$T/lbd.sock"; chain = "LBI"; };
services = ( { vip = "198.18.0.100"; port = 80; backends = ( { address = "198.18.1.11"; } ); } );
sync: { node_id = 1; peer_id = 2; local = "198.18.2.1"; peer = "198.18.2.2"; interface = "sync0";
        key_file = "$T/sync.key"; };
CONF
CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$T/usr/lib/systemd/system/lbd.service" |
	tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_/+/p' | paste -sd, -)
check "the unit's bounding set read ($CAPS)" \
	[ "$CAPS" = "+net_admin,+net_raw,+setuid,+setgid,+dac_read_search,+bpf,+perfmon" ]
# A notify socket of our own: every datagram lbd sends, one per line.
"$PY" -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)   # lbd sends as daemon.user, like to /run/systemd/notify
s.settimeout(15)
open(sys.argv[2], "w").close()
try:
    while True:
        d = s.recv(4096).decode()
        with open(sys.argv[2], "a") as f:
            f.write(d.replace("\n", " | ") + "\n")
except socket.timeout:
    pass
' "$T/notify.sock" "$T/notify.log" &
LISTENER=$!
wait_until 5 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock ip netns exec "$NS" \
	setpriv --bounding-set "-all,$CAPS" --inh-caps -all --no-new-privs \
	"$S/usr/local/sbin/lbd" -c "$T/lbd.conf" --pidfile "$T/lbd.pid" >"$T/lbd.log" 2>&1 &
LBD_PID=$!
wait_until 10 grep -q READY=1 "$T/notify.log"
check "lbd sent READY=1" grep -q 'READY=1' "$T/notify.log"
check "with a STATUS line (services, workers, sync)" grep -q 'STATUS=1 services, 1 workers, sync on' \
	"$T/notify.log"
# within the unit's bounding set, lbd itself keeps CAP_NET_ADMIN alone, as
# daemon.user (nobody)
expect_eq "lbd runs as nobody with CAP_NET_ADMIN only (Uid, CapPrm, CapEff, CapAmb)" \
	"$(awk '/^Cap(Prm|Eff|Amb):/ { printf "%s ", $2 } /^Uid:/ { printf "uid %s ", $2 }' \
	   "/proc/$LBD_PID/status" 2>&1)" \
	"uid 65534 0000000000001000 0000000000001000 0000000000001000 "
# the fast path is on by default: its program loaded within the unit's
# bounding set, before lbd gave up root
expect_eq "its kernel fast path loaded with those capabilities" \
	"$(ip netns exec "$NS" "$S/usr/local/sbin/lbctl" -s "$T/lbd.sock" stats 2>&1 |
	   awk '$1 == "fast_path" { print $2 }')" standby
check "its rules are installed (iptables-restore ran with those capabilities)" \
	bash -c "ip netns exec '$NS' iptables -t raw -S LBI-PRE | grep -q NFQUEUE"
check "no check or start-up error in its log" bash -c "! grep -E 'error|check:' '$T/lbd.log'"
sed 's/^/# lbd: /' "$T/lbd.log"
check "lbd answers on its control socket once READY" \
	ip netns exec "$NS" "$S/usr/local/sbin/lbctl" -s "$T/lbd.sock" stats
expect_eq "the pid file holds lbd's pid" "$(cat "$T/lbd.pid" 2>&1)" "$LBD_PID"
ip netns exec "$NS" "$S/usr/local/sbin/lbctl" -s "$T/lbd.sock" role master >/dev/null
check "a role change updates the STATUS line" \
	wait_until 5 grep -q 'STATUS=role master, 1 services, sync on' "$T/notify.log"
kill -TERM "$LBD_PID"
wait_until 10 eval "! kill -0 $LBD_PID 2>/dev/null"
wait "$LBD_PID"
expect_eq "lbd stopped cleanly on SIGTERM" $? 0
LBD_PID=
check "STOPPING=1 sent" grep -q 'STOPPING=1' "$T/notify.log"
check "the pid file is gone" [ ! -e "$T/lbd.pid" ]
kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null
sed 's/^/# notify: /' "$T/notify.log"

# ---- a pid file that cannot be written stops the start
ip netns exec "$NS" "$S/usr/local/sbin/lbd" -c "$T/lbd.conf" --pidfile "$T/nodir/lbd.pid" \
	>"$T/lbd2.log" 2>&1
rc=$?
check "an unwritable pid file fails the start (exit $rc)" [ "$rc" -ne 0 ]
check "and says why" grep -q "nodir/lbd.pid.tmp: No such file" "$T/lbd2.log"
finish
