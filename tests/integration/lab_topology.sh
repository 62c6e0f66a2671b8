#!/usr/bin/env bash
# Integration test of deploy/lab itself (no lbd): the topology comes up, every
# link and service answers, two labs coexist, a failed `up` cleans up after
# itself, and `down` leaves nothing behind. Prints TAP-style "ok - ..." /
# "not ok - ..." lines; exits non-zero if any check failed.
set -u
cd "$(dirname "$0")/../.." || exit 1

LAB=deploy/lab
P=t$$
P=${P:0:8}
export LAB_PREFIX=$P LAB_LBD=0 LAB_BACKENDS=3 LAB_RUN_DIR=/tmp/lb-lab-$P
unset LAB_FAIL_AT
RUN=$LAB_RUN_DIR
P2=${P}b		# the second lab, for coexistence
P3=${P}c		# the lab whose `up` is made to fail
LOG=$(mktemp /tmp/lab_topology.XXXXXX)
failed=0

cleanup() {
	local p
	trap '' PIPE
	for p in "$P" "$P2" "$P3"; do
		LAB_PREFIX=$p LAB_RUN_DIR=/tmp/lb-lab-$p "$LAB" down >>"$LOG" 2>&1 || true
	done
	rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

pass() { echo "ok - $1"; }
flunk() {
	echo "not ok - $1"
	failed=$((failed + 1))
	[ -s "$LOG" ] && tail -n 8 "$LOG" | sed 's/^/# /'
	return 0
}
# check DESCRIPTION CMD...: one TAP line from CMD's exit status.
check() {
	local d=$1
	shift
	: >"$LOG"
	if "$@" >>"$LOG" 2>&1; then pass "$d"; else flunk "$d"; fi
}

lab() { "$LAB" "$@"; }
ping_ok() { LAB_PING_TIMEOUT=3 lab ping "$@"; }
# our_namespaces PREFIX: the lab's namespaces that exist now.
our_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$1-(sw|client|lb1|lb2|be[0-9]+)\$"; }
all_backends() {
	local fam=$1 gw i
	if [ "$fam" = 4 ]; then gw=198.18.1.1; else gw=2001:db8:1::1; fi
	for ((i = 1; i <= LAB_BACKENDS; i++)); do ping_ok "be$i" "$gw" || return 1; done
}
http_is() { [ "$(lab exec lb1 curl -sS --max-time 3 "$1")" = "$2" ]; }
every_backend_http() {
	local i
	for ((i = 1; i <= LAB_BACKENDS; i++)); do
		http_is "http://198.18.1.$((10 + i))/" "be$i" &&
			http_is "http://[2001:db8:1::$((10 + i))]/" "be$i" || return 1
	done
}
blob_ok() {
	local size sum
	size=$(lab exec lb1 curl -sS --max-time 10 -o /dev/null -w '%{size_download}' http://198.18.1.11/blob)
	[ "$size" = $((64 << 20)) ] || { echo "size $size"; return 1; }
	sum=$(lab exec lb1 curl -sS --max-time 10 'http://[2001:db8:1::13]/blob' | sha256sum | awk '{print $1}')
	[ "$sum" = "$(cat "$RUN/blob.sha256")" ] || { echo "sha256 $sum"; return 1; }
}
iperf_ok() { timeout 15 "$LAB" exec lb1 iperf3 -c "$1" -t 1 --connect-timeout 2000; }
access_logged() { grep -q '"GET / HTTP/1.1" 200' "$RUN/be1/access.log"; }
sysctl_is() { [ "$(lab exec "$1" sysctl -n "$2" | tr -s ' \t' ' ')" = "$3" ]; }
client_sysctls() {
	sysctl_is client net.ipv4.tcp_tw_reuse 1 &&
		sysctl_is client net.ipv4.ip_local_port_range '1024 65535' &&
		sysctl_is lb1 net.ipv4.ip_forward 1 && sysctl_is lb2 net.ipv6.conf.all.forwarding 1 &&
		sysctl_is lb1 net.ipv4.conf.front0.rp_filter 0
}
extra_sources() { ping_ok client 198.18.0.2 198.18.0.49 && ping_ok client 2001:db8::3 2001:db8::11; }
offload_is() { lab exec "$1" ethtool -k "$2" | grep -qx "tx-checksumming: $3"; }
offload_toggles() {
	lab offload off && offload_is client front0 off && offload_is lb1 sync0 off && offload_is be3 back0 off &&
		lab offload on && offload_is client front0 on && offload_is lb2 back0 on
}
status_ok() {
	local out
	out=$(lab status) || return 1
	grep -q "$P-be1" <<<"$out" && grep -q nginx <<<"$out" && grep -q iperf3 <<<"$out" && ! grep -q DEAD <<<"$out"
}
# recorded_pids: every PID recorded in the run dir, plus every process in our namespaces.
recorded_pids() {
	local n
	cut -d' ' -f1 "$RUN"/pids/*.pid
	for n in $(our_namespaces "$P"); do ip netns pids "$n"; done
}
up_again_fails() {
	local out
	if out=$(lab up 2>&1); then echo "second up succeeded"; return 1; fi
	echo "$out"
	grep -q 'already up' <<<"$out" && ping_ok client 198.18.0.100 && http_is http://198.18.1.12/ be2
}
second_lab() {
	LAB_PREFIX=$P2 LAB_RUN_DIR=/tmp/lb-lab-$P2 LAB_BACKENDS=1 "$@"
}
coexist() {
	second_lab "$LAB" up || return 1
	second_lab "$LAB" ping client 198.18.0.100 && ping_ok client 198.18.0.100 &&
		[ "$(second_lab "$LAB" exec lb1 curl -sS --max-time 3 http://198.18.1.11/)" = be1 ] &&
		http_is http://198.18.1.13/ be3 &&
		[ "$(our_namespaces "$P2" | wc -l)" = 5 ] && [ "$(our_namespaces "$P" | wc -l)" = 7 ] || return 1
	second_lab "$LAB" down && [ -z "$(our_namespaces "$P2")" ] && ping_ok client 198.18.0.100
}
failed_up_cleans() {
	local pids
	if LAB_PREFIX=$P3 LAB_RUN_DIR=/tmp/lb-lab-$P3 LAB_FAIL_AT=backends "$LAB" up; then
		echo "up with LAB_FAIL_AT succeeded"
		return 1
	fi
	[ -z "$(our_namespaces "$P3")" ] && [ ! -e "/tmp/lb-lab-$P3" ] || return 1
	pids=$(pgrep -f "lb-lab-$P3/" || true)
	[ -z "$pids" ] || { echo "left running: $pids"; return 1; }
}
nothing_alive() {
	local pid st
	for pid in $PIDS; do
		st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
		if [ -n "$st" ] && [ "$st" != Z ]; then
			echo "pid $pid still alive ($st)"
			return 1
		fi
	done
}

# ---- the checks
t0=$SECONDS
check "up succeeds (prefix $P)" lab up
check "client pings lb1 front (v4)" ping_ok client 198.18.0.2
check "client pings lb1 front (v6)" ping_ok client 2001:db8::2
check "client pings lb2 front (v4, v6)" eval 'ping_ok client 198.18.0.3 && ping_ok client 2001:db8::3'
check "client pings the VIP on lb1 (v4)" ping_ok client 198.18.0.100
check "client pings the VIP on lb1 (v6)" ping_ok client 2001:db8::100
check "client's extra source addresses work (.49, ::11)" extra_sources
check "every backend pings the back gateway (v4)" all_backends 4
check "every backend pings the back gateway (v6)" all_backends 6
check "lb1 gets 'be1' from http://198.18.1.11/" http_is http://198.18.1.11/ be1
check "every backend serves its name over v4 and v6" every_backend_http
check "/blob is 64 MiB and identical across backends" blob_ok
check "backend access log records requests" access_logged
check "iperf3 on be1 answers from lb1 (v4, 1 s)" iperf_ok 198.18.1.11
check "iperf3 on be2 answers from lb1 (v6, 1 s)" iperf_ok 2001:db8:1::12
check "lb1 pings lb2 over sync (v4)" ping_ok lb1 198.18.2.2
check "lb1 pings lb2 over sync (v6)" ping_ok lb1 2001:db8:2::2
check "sysctls: client tw_reuse and port range, lb forwarding, rp_filter" client_sysctls
check "offload off/on toggles tx checksumming" offload_toggles
check "status lists namespaces and live processes" status_ok
check "pid be1 nginx names a live process" eval 'kill -0 "$(lab pid be1 nginx)"'
check "a second up fails clearly and leaves the lab working" up_again_fails
check "a second lab ($P2) coexists and goes down alone" coexist
check "an up failing midway removes what it built" failed_up_cleans
check "unknown command prints usage and fails" eval '! lab frobnicate'
PIDS=$(recorded_pids 2>/dev/null | sort -u | tr '\n' ' ')
check "down succeeds" lab down
check "down leaves no $P-* namespace" eval '[ -z "$(our_namespaces "$P")" ]'
check "down leaves none of our processes alive (${PIDS% })" nothing_alive
check "down removes the run dir" test ! -e "$RUN"
check "a second down is harmless" lab down
check "status of a down lab says so and fails" eval '! lab status'
echo "# $((SECONDS - t0)) s"
[ "$failed" -eq 0 ]
