#!/usr/bin/env bash
# The kernel fast path across a takeover (`make fastpath-takeover`; not part
# of `make test`: a round costs a pair's start and a 64 MiB download). Each
# round starts the pair with LAB_FAST_PATH=true,
# kills the active mid-download and checks the standby carries the download
# on in its kernel, byte-exact. FP_TAKEOVER_ROUNDS rounds (default 5).
set -u
. "$(dirname "$0")/integration/lib.bash"
export LAB_FAST_PATH=true
export LAB_HA=1
ROUNDS=${FP_TAKEOVER_ROUNDS:-5}
case "$ROUNDS" in '' | *[!0-9]*) echo "FP_TAKEOVER_ROUNDS: a number" >&2; exit 2 ;; esac

fp_stat() { "$LAB" ctl "$1" stats | awk -v k="$2" '$1 == k { print $2 }'; }
wait_dl() { ! kill -0 "$dl" 2>/dev/null; }
entries() { [ "$(fp_stat lb2 fast_path_entries)" -ge 1 ]; }

for round in $(seq 1 "$ROUNDS"); do
	[ "$round" -gt 1 ] && lab down >/dev/null 2>&1
	lab_start fptakeover
	WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
	rm -f "$RUN/dl.sum"
	lab_exec client sh -c "curl -s -m 40 --limit-rate 8M http://198.18.0.100/blob |
		sha256sum" >"$RUN/dl.sum" 2>/dev/null &
	dl=$!
	check "round $round: the standby installed the imported connection" wait_until 5 entries
	sleep 1
	lab kill lb1 >/dev/null
	wait_until 40 wait_dl || kill "$dl" 2>/dev/null
	wait "$dl" 2>/dev/null
	expect_eq "round $round: the download survived the takeover, byte-exact" \
		"$(cut -d' ' -f1 "$RUN/dl.sum")" "$WANT"
	fwd=$(fp_stat lb2 fp_fwd_reply)
	check "round $round: the new active forwarded it in its kernel (${fwd:-0} replies)" \
		[ "${fwd:-0}" -gt 100 ]
	expect_eq "round $round: the new active's fast path is on" "$(fp_stat lb2 fast_path)" on
	note "round $round: new active drop_out_of_window $(fp_stat lb2 drop_out_of_window)"
done
finish
