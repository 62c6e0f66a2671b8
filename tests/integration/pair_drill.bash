# Helpers shared by the pair drills (failover.sh, sync_partition.sh,
# split_brain.sh, tests/soak/soak.sh): background lbdrill streams through the
# VIP and their verdicts, a node's counters and state. Source after lib.bash;
# set OUT and DRILL_PIDS. A suite whose streams or verdicts differ defines its
# own start_stream / verdict after sourcing this file.
LBDRILL=${LAB_BUILD_DIR:-$REPO/build}/lbdrill

# running PID: our child runs (a zombie does not count).
running() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

# Our own background streams go first, then the lab (lib.bash).
drill_cleanup() {
	local rc=$? pid lb
	# A failed drill shows how VRRP moved (a false failover under load
	# reads differently from lbd's own mistake).
	if [ "${FAILS:-0}" -gt 0 ] && [ -n "${RUN:-}" ]; then
		for lb in lb1 lb2; do
			[ -f "$RUN/$lb.keepalived.log" ] || continue
			grep -hiE "entering|priority|preempt|higher|lower|script|timeout" \
				"$RUN/$lb.keepalived.log" | grep -vE "\((back4|front6|back6)\)" |
				tail -n 30 | sed "s/^/# $lb keepalived: /"
		done
		# PAIR_DRILL_KEEP=DIR: every log of the lab, for a closer look.
		[ -z "${PAIR_DRILL_KEEP:-}" ] || { mkdir -p "$PAIR_DRILL_KEEP" &&
			cp "$RUN"/*.log "$PAIR_DRILL_KEEP"/ 2>/dev/null; }
	fi
	for pid in $DRILL_PIDS; do
		running "$pid" || continue
		kill -TERM "$pid" 2>/dev/null
		wait_until 5 eval "! running $pid" || kill -KILL "$pid" 2>/dev/null
	done
	[ -z "$OUT" ] || rm -rf "$OUT"
	(exit "$rc")
	lab_cleanup
}

role() { lab role "$1" 2>/dev/null; }
vrrp() { lab vrrp "$1" 2>/dev/null; }
is_ready() { lab ctl "$1" ready >/dev/null 2>&1; }
not_ready() { ! is_ready "$1"; }
# lb_stat LB NAME: one number of `lbctl stats` (empty if absent).
lb_stat() { lab ctl "$1" stats 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }'; }
sync_stat() { lab ctl "$1" sync 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }'; }
role_is() { [ "$(role "$1")" = "$2" ]; }
vrrp_is() { [ "$(vrrp "$1")" = "$2" ]; }
floating_on() {
	ip -n "$LAB_PREFIX-$1" -o addr show | grep -cE ' inet6? (198\.18\.0\.100|198\.18\.1\.1|2001:db8::100|2001:db8:1::1)/'
}
master_with_vips() { role_is "$1" master && vrrp_is "$1" MASTER && [ "$(floating_on "$1")" = 4 ]; }
backup_ready() { role_is "$1" backup && vrrp_is "$1" BACKUP && is_ready "$1"; }

# start_stream NAME TARGET CONNS SECONDS: one lbdrill stream in the background.
start_stream() {
	lab_exec client "$LBDRILL" stream --target "$2" --conns "$3" --duration "$4" \
		--rate 16384 --stuck 8 --timeline-ms 100 --json "$OUT/$1.json" \
		>"$OUT/$1.out" 2>"$OUT/$1.err" &
	DRILL_PIDS="$DRILL_PIDS $!"
	eval "STREAM_T0_$1=\${EPOCHREALTIME/./}"
}

# phase NAME: remembers when the drill reached NAME, for stall_report.
PHASES=
phase() { PHASES="$PHASES $1=${EPOCHREALTIME/./}"; }

# stall_report NAME: when a stream did not survive, when its longest stall
# began, next to the drill's phases, all in seconds from NAME's start; and
# what each lbd knows of the first such stream and counted.
stall_report() {
	local f=$OUT/$1.json t0 p port
	eval "t0=\${STREAM_T0_$1:-}"
	[ -s "$f" ] && [ -n "$t0" ] || return 0
	"$PY" - "$f" >"$OUT/$1.stalls" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
bad = [s for s in d.get("timeline", {}).get("streams", [])
       if s["end"] != "complete" or s["stall_ms"] >= 8000]
for s in sorted(bad, key=lambda s: -s["stall_ms"])[:5]:
    print("# stream %d (port %d): %s, longest stall %.0f ms from +%.2f s"
          % (s["i"], s["port"], s["end"], s["stall_ms"], s["stall_from_s"]))
print(bad[0]["port"] if bad else "")
PYEOF
	head -n -1 "$OUT/$1.stalls"
	port=$(tail -n 1 "$OUT/$1.stalls")
	[ -n "$port" ] || return 0
	for p in $PHASES; do
		note "phase ${p%%=*} at +$(( (${p#*=} - t0) / 1000 )) ms"
	done
	for lb in lb1 lb2; do
		note "$lb, port $port: $(lab ctl "$lb" conns 2>&1 | grep -E "^[^ ]*[]:]$port " | head -n 1 | cut -c1-300)"
		note "$lb: role $(role "$lb"), keepalived $(vrrp "$lb"); $(lab ctl "$lb" stats 2>/dev/null |
			awk '(/^drop_|^import_|^takeover/) && $2 != 0 { printf "%s=%s ", $1, $2 }')"
		[ -f "$RUN/$lb.log" ] && tail -n 25 "$RUN/$lb.log" | sed "s/^/# $lb.log: /"
	done
	return 0
}

json() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }

# wait_streams SECONDS: every stream ends by itself (else it is stopped).
wait_streams() {
	local pid
	for pid in $DRILL_PIDS; do
		wait_until "$1" eval "! running $pid" || kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	DRILL_PIDS=
}

# verdict NAME CONNS WHAT: TAP lines from one lbdrill's results.
verdict() {
	local f=$OUT/$1.json n=$2
	if [ ! -s "$f" ]; then
		not_ok "$1: lbdrill wrote its results"
		sed 's/^/# /' "$OUT/$1.out" "$OUT/$1.err" 2>/dev/null | tail -n 20
		return
	fi
	expect_eq "$1: every connection connected" "$(json "$f" connected)/$n" "$n/$n"
	expect_eq "$1: every connection survived $3" "$(json "$f" survived)/$n" "$n/$n"
	[ "$(json "$f" survived)" = "$n" ] || stall_report "$1"
	expect_eq "$1: no connection reset, no corrupt byte, no early EOF" \
		"$(json "$f" reset)/$(json "$f" corrupt)/$(json "$f" eof)" 0/0/0
	note "$1: longest stall $(json "$f" max_stall_ms) ms"
}

# takeover_note LB: what set LB's takeovers off and lbd's share of the last.
takeover_note() {
	local s
	s=$(lab ctl "$1" stats 2>/dev/null | awk '$1 ~ /^takeovers_|^takeover_(vip|deferred|master|lbd)/ { printf "%s=%s ", $1, $2 }')
	note "$1: ${s:-no takeover figures}"
}
