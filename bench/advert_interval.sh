#!/usr/bin/env bash
# The VRRP advert interval's trade-off, in one run: the same lab pair with
# each advert_int of BENCH_ADVERTS (0.1 0.03 0.02 0.01). For each:
#   - false failovers: BENCH_WATCH seconds (20) of 50 streams through the
#     VIP and no failure at all; every MASTER transition of lb2's keepalived
#     then is a false failover (the machine's other load is the "busy LAN");
#   - keepalived's CPU over that window (both VRRP processes, ms per s);
#   - VRRP processes the kernel killed for running past RLIMIT_RTTIME, over
#     the whole lab run (vrrp_killed; each one is a failover for nothing);
#   - the longest stall of 50 echo streams (lbdrill live, a send every
#     20 ms) across a failover each way (lb1 killed, revived, lb2 killed),
#     and what set lbd's takeover off on the survivor.
# Prints one line per setting and each setting's stall as a ratio of the
# first's.
set -u
cd "$(dirname "$0")/.."
LAB=$PWD/deploy/lab
ADVERTS=${BENCH_ADVERTS:-0.1 0.03 0.02 0.01}
WATCH=${BENCH_WATCH:-20}
PY=/usr/bin/python3
export LAB_PREFIX=badv$$
out=$(mktemp -d)
trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

cpu_ms() {	# cpu_ms PID: utime + stime in ms
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# masters LOG: the node's transitions to MASTER. Every instance of the sync
# group logs its own line, so one instance (front4) counts each failover once.
masters() { local n; n=$(grep -c '(front4) Entering MASTER STATE' "$1" 2>/dev/null); echo "${n:-0}"; }
# killed LOG: VRRP processes the kernel killed for running past RLIMIT_RTTIME
# (the respawn starts as BACKUP: a failover for nothing).
killed() { local n; n=$(grep -c 'rlimit_rttime been exceeded' "$1" 2>/dev/null); echo "${n:-0}"; }
stall() {	# stall JSON: the drill's longest stall
	$PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["max_stall_ms"])' "$1" 2>/dev/null || echo '?'
}
trigger() {	# trigger LB: the takeover counters that are not 0
	"$LAB" ctl "$1" stats 2>/dev/null | awk '$1 ~ /^takeovers_/ && $2 > 0 { sub(/^takeovers_/, "", $1); printf "%s%s", s, $1; s = "," }'
}
live() {	# live NAME VICTIM
	"$LAB" exec client build/lbdrill live --target 198.18.0.100:9000 --conns 50 --tick 20 \
		--duration 8 --failover "3:$LAB kill $2 >/dev/null" --json "$out/$1.json" >/dev/null 2>&1
}

printf '%-10s %-16s %-14s %-10s %-10s %-22s %s\n' advert_int false_failovers keepalived_cpu stall_1 stall_2 triggers \
	vrrp_killed
first=
for adv in $ADVERTS; do
	run=/tmp/lb-lab-$LAB_PREFIX
	if ! LAB_ADVERT_INT=$adv "$LAB" up >"$out/up.log" 2>&1; then
		printf '%-10s lab did not come up (flapping at start?)\n' "$adv"
		tail -n 3 "$out/up.log" | sed 's/^/# /'
		"$LAB" down >/dev/null 2>&1
		continue
	fi
	k1=$("$LAB" pid lb1 keepalived_vrrp) k2=$("$LAB" pid lb2 keepalived_vrrp)
	m0=$(masters "$run/lb2.keepalived.log")
	c0=$(( $(cpu_ms "$k1" | cut -d. -f1) + $(cpu_ms "$k2" | cut -d. -f1) ))
	"$LAB" exec client build/lbdrill stream --target 198.18.0.100:9000 --conns 50 \
		--duration "$WATCH" >/dev/null 2>&1
	c1=$(( $(cpu_ms "$k1" | cut -d. -f1) + $(cpu_ms "$k2" | cut -d. -f1) ))
	false_fo=$(( $(masters "$run/lb2.keepalived.log") - m0 ))
	kills=$(( $(killed "$run/lb1.keepalived.log") + $(killed "$run/lb2.keepalived.log") ))
	live a lb1
	t1=$(trigger lb2)
	"$LAB" revive lb1 >/dev/null 2>&1
	live b lb2
	t2=$(trigger lb1)
	s1=$(stall "$out/a.json") s2=$(stall "$out/b.json")
	printf '%-10s %-16s %-14s %-10s %-10s %-22s %s\n' "$adv" "$false_fo in ${WATCH} s" \
		"$(awk -v c=$((c1 - c0)) -v w="$WATCH" 'BEGIN { printf "%.1f ms/s", c / w }')" \
		"$s1 ms" "$s2 ms" "${t1:-none}/${t2:-none}" "$kills"
	echo "$adv $s1 $s2" >>"$out/stalls"
	"$LAB" down >/dev/null 2>&1
done
$PY - "$out/stalls" <<'PYEOF'
import sys
rows = [l.split() for l in open(sys.argv[1])] if len(sys.argv) > 1 else []
rows = [(a, float(x), float(y)) for a, x, y in rows if x != '?' and y != '?']
if rows:
    base = max(rows[0][1], rows[0][2])
    for a, x, y in rows:
        print("advert_int %s: longest stall %.0f ms, %.2f x that of %s" % (a, max(x, y), max(x, y) / base, rows[0][0]))
PYEOF
