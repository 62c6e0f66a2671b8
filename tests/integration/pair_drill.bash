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
	local rc=$? pid
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
		--rate 16384 --stuck 8 --json "$OUT/$1.json" >"$OUT/$1.out" 2>"$OUT/$1.err" &
	DRILL_PIDS="$DRILL_PIDS $!"
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
