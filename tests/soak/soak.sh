#!/usr/bin/env bash
# Soak: steady traffic through the HA lab pair (lbd + keepalived on lb1 and
# lb2) for SOAK_SECONDS (default 300; `make soak`), with a failover every
# SOAK_FAILOVER_EVERY seconds (default 20): the master is killed, the
# backup must be master within SOAK_TAKEOVER_S, and the dead node is
# revived (resynced, backup, ready) for the next round. At the end:
#   - no connection lost: every lbdrill stream (byte-verified both ways)
#     connected and survived every failover, no reset, no corrupt byte;
#   - lbd's memory flat: each lbd's VmRSS, sampled every 5 s from 10 s
#     after its start, grows by at most SOAK_RSS_SLACK_KB (default 8192)
#     over its life;
#   - every packet accounted for: no queue overflow or lost verdict in the
#     kernel or in lbd, and on each running lbd, once the traffic stopped,
#     the packets its workers took (nfqN_packets) equal what the engine
#     counted (pkts_orig + pkts_reply + every drop_* reason).
# tests/integration/soak_minute.sh runs a one-minute version in make test.
set -u
. "$(dirname "$0")/../integration/lib.bash"

SECONDS_TOTAL=${SOAK_SECONDS:-300}
EVERY=${SOAK_FAILOVER_EVERY:-20}
TAKEOVER_S=${SOAK_TAKEOVER_S:-5}
RSS_SLACK_KB=${SOAK_RSS_SLACK_KB:-8192}
CONNS4=${SOAK_CONNS4:-100}
CONNS6=${SOAK_CONNS6:-10}
RATE=16384
export LAB_HA=1
OUT=
DRILL_PIDS=
. "$(dirname "$0")/../integration/pair_drill.bash"

stats() { lab ctl "$1" stats 2>/dev/null; }
now_s() { echo $(( ${EPOCHREALTIME/./} / 1000000 )); }

# RSS samples: "pid kb" lines per node, and the start time of each pid.
sample_rss() {
	local node pid kb
	for node in lb1 lb2; do
		pid=$(lab pid "$node" lbd 2>/dev/null) || continue
		[ -n "${BORN[$pid]:-}" ] || BORN[$pid]=$(now_s)
		[ $(( $(now_s) - BORN[$pid] )) -ge 10 ] || continue
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
		[ -n "$kb" ] || continue
		[ -n "${RSS_FIRST[$pid]:-}" ] || RSS_FIRST[$pid]=$kb
		RSS_LAST[$pid]=$kb
		RSS_NODE[$pid]=$node
	done
}

start_stream() {
	lab_exec client "$LBDRILL" stream --target "$2" --conns "$3" --duration "$SECONDS_TOTAL" \
		--rate "$RATE" --json "$OUT/$1.json" --report-every 30 >"$OUT/$1.out" 2>"$OUT/$1.err" &
	DRILL_PIDS="$DRILL_PIDS $!"
}

# failover: kill the master, the backup takes over, revive the dead one.
failover() {
	local victim survivor end
	if [ "$(role lb1)" = master ]; then victim=lb1 survivor=lb2; else victim=lb2 survivor=lb1; fi
	lab kill "$victim" >/dev/null 2>&1
	end=$(( $(now_s) + TAKEOVER_S ))
	while [ "$(role "$survivor")" != master ] && [ "$(now_s)" -lt "$end" ]; do sleep 0.05; done
	expect_eq "failover $((FAILOVERS + 1)) at $(( $(now_s) - T0 )) s: $survivor is master" \
		"$(role "$survivor")" master
	if lab revive "$victim" >"$OUT/revive.log" 2>&1; then
		ok "  $victim revived: backup and ready"
	else
		not_ok "  $victim revived"
		sed 's/^/# /' "$OUT/revive.log" | tail -n 10
	fi
	FAILOVERS=$((FAILOVERS + 1))
}

# accounted NODE: the packet balance of NODE's lbd, traffic stopped.
accounted() {
	local s taken counted
	s=$(stats "$1")
	taken=$(awk '$1 ~ /^nfq[0-9]+_packets$/ { t += $2 } END { print t + 0 }' <<<"$s")
	counted=$(awk '$1 == "pkts_orig" || $1 == "pkts_reply" || $1 ~ /^drop_/ { t += $2 }
		       END { print t + 0 }' <<<"$s")
	# a backup revived since the last failover may have seen no packet
	check "$1 ($(role "$1")): every packet its workers took is counted by the engine ($taken taken, $counted counted)" \
		[ "$taken" = "$counted" ] && { [ "$taken" -gt 0 ] || [ "$(role "$1")" != master ]; }
	expect_eq "$1: no queue overflow, no packet dropped by the kernel queue, no verdict lost" \
		"$(awk '$1 ~ /^nfq[0-9]+_(queue_dropped|user_dropped|verdicts_lost)$/ { t += $2 } END { print t + 0 }' <<<"$s")" 0
	note "$1 drops: $(awk '$1 ~ /^drop_/ && $2 != 0' <<<"$s" | tr '\n' ' ')"
}

declare -A BORN RSS_FIRST RSS_LAST RSS_NODE
lab_start soak
OUT=$(mktemp -d /tmp/soak.XXXXXX)
trap drill_cleanup EXIT
check "lbdrill is built ($LBDRILL)" test -x "$LBDRILL"
check "lb2 is ready" eval "lab ctl lb2 ready >/dev/null"
note "soak: ${SECONDS_TOTAL} s, a failover every ${EVERY} s, $CONNS4 + $CONNS6 streams"
FAILOVERS=0
T0=$(now_s)
start_stream v4 198.18.0.100:9000 "$CONNS4"
start_stream v6 "[2001:db8::100]:9000" "$CONNS6"
next_fo=$((T0 + EVERY))
# the last failover leaves the pair at least 10 s to settle before the end
while [ $(( $(now_s) - T0 )) -lt "$SECONDS_TOTAL" ]; do
	sample_rss
	if [ "$(now_s)" -ge "$next_fo" ] && [ $(( next_fo - T0 + 10 )) -le "$SECONDS_TOTAL" ]; then
		failover
		next_fo=$((next_fo + EVERY))
	fi
	sleep 1
done
for pid in $DRILL_PIDS; do
	wait_until 30 eval "! running $pid" || kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
DRILL_PIDS=
check "at least one failover happened" [ "$FAILOVERS" -ge 1 ]
verdict v4 "$CONNS4" "$FAILOVERS failovers"
verdict v6 "$CONNS6" "$FAILOVERS failovers"
sleep 1
accounted lb1
accounted lb2
for pid in "${!RSS_FIRST[@]}"; do
	growth=$(( RSS_LAST[$pid] - RSS_FIRST[$pid] ))
	check "${RSS_NODE[$pid]} lbd pid $pid: RSS ${RSS_FIRST[$pid]} -> ${RSS_LAST[$pid]} kB (<= +$RSS_SLACK_KB)" \
		[ "$growth" -le "$RSS_SLACK_KB" ]
done
[ "${#RSS_FIRST[@]}" -gt 0 ] || not_ok "no lbd lived long enough for an RSS sample"
finish
