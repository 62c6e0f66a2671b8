#!/usr/bin/env bash
# Failover drill with real keepalived (HA lab: lbd + keepalived on lb1 and
# lb2, state sync between them). While 200 IPv4 and 20 IPv6 lbdrill streams
# run through the VIP for 25 s:
#     3 s   forged sync datagrams (wrong key) sent to lb2 change nothing
#           there and are counted in `lbctl sync` (sync_bad_hmac);
#     6 s   lb1 (the master) dies: lb2 must be lbd master within 2 s;
#    12 s   lb1 comes back: it must resync and be BACKUP and ready;
#  +2 s     lb2 dies: lb1 must be master again within 2 s;
#  at the end every stream must have survived both failovers: connected,
#  no reset, no early EOF, not a single wrong byte. The longest stall a
#  stream saw is reported (and must stay under FAILOVER_MAX_STALL_MS).
#
# Variants (separate suites): FAILOVER_VARIANT=plain (this file),
# loss (10% of sync datagrams dropped each way: failover_loss.sh) and
# defer (lbd's zero-loss `defer` mode: failover_defer.sh).
set -u
. "$(dirname "$0")/lib.bash"

VARIANT=${FAILOVER_VARIANT:-plain}
CONNS4=${FAILOVER_CONNS4:-200}
CONNS6=${FAILOVER_CONNS6:-20}
DURATION=${FAILOVER_DURATION:-25}
RATE=16384
MAX_STALL_MS=${FAILOVER_MAX_STALL_MS:-3000}
TAKEOVER_S=2
case $VARIANT in
plain) ;;
loss) SYNC_LOSS=0.1 ;;
defer) export LAB_DEFER=1 ;;
*) echo "FAILOVER_VARIANT '$VARIANT': use plain, loss or defer" >&2; exit 2 ;;
esac
export LAB_HA=1
OUT=
DRILL_PIDS=
. "$(dirname "$0")/pair_drill.bash"

# ---- helpers

T0=
elapsed_ms() { echo $(( (${EPOCHREALTIME/./} - T0) / 1000 )); }
# at SECONDS: sleeps until that many seconds after the streams started.
at() {
	local wait_ms=$(( $1 * 1000 - $(elapsed_ms) ))
	[ "$wait_ms" -le 0 ] || sleep "$(awk -v m="$wait_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
}
floating_all_on() { [ "$(floating_on "$1")" = 4 ]; }

# failover VICTIM SURVIVOR: kills VICTIM, checks that SURVIVOR's lbd is
# master within TAKEOVER_S seconds and holds the floating addresses.
failover() {
	local victim=$1 survivor=$2 t_kill t_master='' limit
	t_kill=${EPOCHREALTIME/./}
	note "$(elapsed_ms) ms: killing $victim"
	lab kill "$victim" >"$OUT/kill-$victim.log" 2>&1
	check "$victim killed (lbd and keepalived gone, links down)" grep -q killed "$OUT/kill-$victim.log"
	limit=$((t_kill + TAKEOVER_S * 1000000))
	while [ "${EPOCHREALTIME/./}" -lt "$limit" ]; do
		if [ "$(role "$survivor")" = master ]; then t_master=${EPOCHREALTIME/./}; break; fi
		sleep 0.02
	done
	if [ -n "$t_master" ]; then
		ok "$survivor's lbd is master $(( (t_master - t_kill) / 1000 )) ms after $victim was killed"
	else
		not_ok "$survivor's lbd is master within $TAKEOVER_S s of $victim's death (role: $(role "$survivor"))"
	fi
	wait_until 2 floating_all_on "$survivor" || true
	expect_eq "$survivor holds the VIPs and back gateways (v4, v6)" "$(floating_on "$survivor")" 4
	expect_eq "keepalived on $survivor is MASTER" "$(lab vrrp "$survivor")" MASTER
	takeover_note "$survivor"
}

# forged_datagrams: 5 datagrams with a plausible prefix ('L' 'B' 1 0), junk
# and a 32-byte "HMAC", from lb1's sync address and port (a raw socket
# writes the UDP header: lbd holds the port) to lb2's sync port.
forged_datagrams() {
	lab_exec lb1 "$PY" -c '
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind(("198.18.2.1", 0))
for _ in range(5):
    body = b"LB\x01\x00" + os.urandom(60) + os.urandom(32)
    s.sendto(struct.pack("!HHHH", 7788, 7788, 8 + len(body), 0) + body, ("198.18.2.2", 0))
'
}

# stranger_datagrams: the same from lb1's sync address but another port:
# dropped before the HMAC, counted as sync_foreign_source.
stranger_datagrams() {
	lab_exec lb1 "$PY" -c '
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.2.1", 0))
for _ in range(5):
    s.sendto(b"LB\x01\x00" + os.urandom(60) + os.urandom(32), ("198.18.2.2", 7788))
'
}

check_forgery() {
	local before after conns_before conns_after counted fs_before fs_after hm
	before=$(sync_stat lb2 sync_bad_hmac)
	fs_before=$(sync_stat lb2 sync_foreign_source)
	conns_before=$(lb_stat lb2 conns)
	check "5 sync datagrams from another port sent to lb2" stranger_datagrams
	sleep 0.5
	fs_after=$(sync_stat lb2 sync_foreign_source)
	hm=$(sync_stat lb2 sync_bad_hmac)
	# The loss variant drops some of them on lb2's sync interface first
	# (the lab's loss rule matches the sync port): all that arrive count.
	local fs=$((fs_after - fs_before)) fs_ok=0
	if [ "$VARIANT" = loss ]; then
		[ "$fs" -ge 1 ] && [ "$fs" -le 5 ] && fs_ok=1
	else
		[ "$fs" -eq 5 ] && fs_ok=1
	fi
	expect_eq "lb2 dropped them before the HMAC (foreign_source +$fs, bad_hmac $before -> $hm)" \
		"$fs_ok:$hm" "1:$before"
	check "5 forged sync datagrams sent to lb2" forged_datagrams
	sleep 0.5
	after=$(sync_stat lb2 sync_bad_hmac)
	conns_after=$(lb_stat lb2 conns)
	if [ -z "$before" ] || [ -z "$after" ]; then
		not_ok "lb2's 'lbctl sync' shows sync_bad_hmac (no such counter or command yet)"
	else
		counted=0
		[ "$after" -gt "$before" ] && [ "$after" -le $((before + 5)) ] && counted=1
		expect_eq "lb2 counted the forgeries as bad HMAC ($before -> $after)" "$counted" 1
		check "lb2 logged them, rate limited: $(grep -c 'failed authentication' "$RUN/lb2.log") line(s)" \
			wait_until 2 grep -q 'sync: [0-9]* datagrams failed authentication' "$RUN/lb2.log"
		check "lb2 logged the peer coming up" grep -q 'sync: peer up' "$RUN/lb2.log"
	fi
	expect_eq "the forgeries left lb2's connection table alone" "$conns_after" "$conns_before"
}

# start_stream NAME TARGET CONNS: one lbdrill in the background.
start_stream() {
	lab_exec client "$LBDRILL" stream --target "$2" --conns "$3" --duration "$DURATION" \
		--rate "$RATE" --json "$OUT/$1.json" --report-every 5 >"$OUT/$1.out" 2>"$OUT/$1.err" &
	DRILL_PIDS="$DRILL_PIDS $!"
}

# verdict NAME CONNS: TAP lines from one lbdrill's results.
verdict() {
	local f=$OUT/$1.json n=$2
	if [ ! -s "$f" ]; then
		not_ok "$1: lbdrill wrote its results"
		sed 's/^/# /' "$OUT/$1.out" "$OUT/$1.err" 2>/dev/null | tail -n 20
		return
	fi
	sed 's/^/# /' "$OUT/$1.out"
	expect_eq "$1: every connection connected" "$(json "$f" connected)/$n" "$n/$n"
	expect_eq "$1: every connection survived both failovers" "$(json "$f" survived)/$n" "$n/$n"
	expect_eq "$1: no connection reset" "$(json "$f" reset)" 0
	expect_eq "$1: no corrupt byte" "$(json "$f" corrupt)" 0
	expect_eq "$1: no early EOF" "$(json "$f" eof)" 0
	STALL=$(json "$f" max_stall_ms)
	note "$1: longest stall ${STALL} ms (p99 of per-connection longest $(json "$f" p99_stall_ms) ms)"
	check "$1: longest stall ${STALL} ms <= ${MAX_STALL_MS} ms" [ "${STALL:-999999}" -le "$MAX_STALL_MS" ]
}

# diagnose: for connections that did not survive, what the master (lb1)
# knows about them, and its non-zero drop counters.
diagnose() {
	local ports port
	ports=$(cat "$OUT"/v4.out "$OUT"/v6.out 2>/dev/null | sed -n 's/^  conn [0-9]* (port \([0-9]*\)).*/\1/p')
	[ -n "$ports" ] || return 0
	lab ctl lb1 conns >"$OUT/conns" 2>&1
	for port in $ports; do
		note "port $port on lb1: $(grep -E "^[^ ]*[]:]$port " "$OUT/conns" | head -n 1 | cut -c1-300)"
	done
	note "lb1 drops: $(lab ctl lb1 stats | awk '/^drop_/ && $2 != 0' | tr '\n' ' ')"
	note "lb1 role $(role lb1), keepalived $(lab vrrp lb1), $(lb_stat lb1 conns) connections"
	# What lb1's lbd and keepalived did since the revival: a role change or
	# a fault after the takeover shows here.
	local f
	for f in lb1.log lb1.keepalived.log lb1.notify.log; do
		[ -f "$RUN/$f" ] || continue
		echo "# --- tail of $f"
		tail -n 40 "$RUN/$f" | sed 's/^/#   /'
	done
}

# ---- the drill

lab_start "fo${VARIANT:0:3}"
OUT=$(mktemp -d /tmp/failover.XXXXXX)
trap drill_cleanup EXIT
note "variant $VARIANT; lab $LAB_PREFIX"
check "lbdrill is built ($LBDRILL)" test -x "$LBDRILL"
expect_eq "lb1 starts as master" "$(role lb1)" master
expect_eq "lb2 starts as backup" "$(role lb2)" backup
check "lb2 is ready (lbctl ready)" eval "lab ctl lb2 ready >/dev/null"
if [ -n "${SYNC_LOSS:-}" ]; then
	check "sync link loses $SYNC_LOSS of datagrams each way" lab sync-loss "$SYNC_LOSS"
fi

T0=${EPOCHREALTIME/./}
start_stream v4 198.18.0.100:9000 "$CONNS4"
start_stream v6 "[2001:db8::100]:9000" "$CONNS6"

at 3
note "$(elapsed_ms) ms: lb1 has $(lb_stat lb1 conns) connections, lb2 (backup) $(lb_stat lb2 conns)"
check_forgery

at 6
failover lb1 lb2

at 12
note "$(elapsed_ms) ms: reviving lb1"
if lab revive lb1 >"$OUT/revive.log" 2>&1; then
	ok "lb1 revived ($(elapsed_ms) ms): resynced, BACKUP, ready"
else
	not_ok "lb1 revived"
	sed 's/^/# /' "$OUT/revive.log"
fi
expect_eq "lb1's lbd is backup after the revival" "$(role lb1)" backup
expect_eq "keepalived on lb1 is BACKUP (nopreempt: lb2 stays master)" "$(lab vrrp lb1)" BACKUP
expect_eq "lb2 is still master" "$(role lb2)" master
note "$(elapsed_ms) ms: lb1 (backup) has $(lb_stat lb1 conns) connections, lb2 $(lb_stat lb2 conns)"

at 14
failover lb2 lb1

# The streams end by themselves after DURATION seconds.
for pid in $DRILL_PIDS; do
	wait_until $((DURATION + 20)) eval "! running $pid" || kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
DRILL_PIDS=
verdict v4 "$CONNS4"
verdict v6 "$CONNS6"
diagnose
[ -z "${SYNC_LOSS:-}" ] || check "sync loss removed" lab sync-loss 0
note "lb1 sync: $(lab ctl lb1 sync 2>/dev/null | awk '$1 ~ /^sync_(resyncs_done|retransmitted|nacks_sent|holes_lost|bad_hmac|queue_overflow)$/' | tr '\n' ' ')"
finish
