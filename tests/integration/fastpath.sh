#!/usr/bin/env bash
# The kernel fast path (tc eBPF) in the single-node lab: downloads through
# the VIP are byte-exact with the program forwarding nearly every packet
# (its per-reason counters, and the engine's fed-back counters, move; few
# packets cross NFQUEUE), with checksum offload on and off; IPv6 stays on
# NFQUEUE; a capture pauses the fast path and its end resumes it. Then the
# same download with `fast_path = false`: unchanged behaviour, every packet
# through NFQUEUE. Last, the pair: the standby installs the connections it
# imports, forwards nothing while backup, and after the active is killed
# mid-download carries the download on in its kernel, byte-exact.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_HA=0		# the single-node lab first

WANT=
blob_ok() {
	local got
	got=$(lab_exec client sh -c "curl -s -m 60 '$1' | sha256sum" | cut -d' ' -f1)
	[ "$got" = "$WANT" ]
}
gt() { [ "$1" -gt "$2" ]; }
stat_gt() { gt "$(stat "$1")" "$2"; }

lab_start fastpath
WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
expect_eq "fast path on by default" "$(ctl stats | awk '$1 == "fast_path" { print $2 }')" on

for mode in on off; do
	lab offload "$mode" >/dev/null
	fwd0=$(stat fp_fwd_reply); orig0=$(stat fp_fwd_orig); nfq0=$(stat pkts_reply)
	fed0=$(stat fast_pkts)
	check "offload $mode: 64 MiB blob through the VIP arrives intact" \
		blob_ok http://198.18.0.100/blob
	fwd=$(( $(stat fp_fwd_reply) - fwd0 )); orig=$(( $(stat fp_fwd_orig) - orig0 ))
	nfq=$(( $(stat pkts_reply) - nfq0 ))
	check "offload $mode: the program forwarded the replies ($fwd) and the acks ($orig)" \
		bash -c "[ $fwd -gt 1000 ] && [ $orig -gt 100 ]"
	check "offload $mode: only the handshake and teardown crossed NFQUEUE ($nfq replies)" \
		[ "$nfq" -lt 20 ]
	check "offload $mode: the engine learned what the kernel forwarded (fast_pkts)" \
		wait_until 5 stat_gt fast_pkts $((fed0 + fwd))
done
lab offload on >/dev/null

# The engine's connection carries the bytes the kernel moved (read back).
bytes=$(ctl --json conns | jq '[.conns[].bytes_reply] | max // 0')
check "a connection's bytes include what the kernel forwarded ($bytes)" [ "$bytes" -gt $((64 << 20)) ]

g=$(lab_exec client iperf3 -c 198.18.0.100 -t 2 -f g -R -J 2>/dev/null |
	$PY -c 'import json,sys
try: print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")')
check "iperf3 download through the fast path moves data ($g Gbit/s)" \
	awk -v g="$g" 'BEGIN { exit !(g > 0.05) }'

v6=$(stat fp_pass_not_ip)
check "IPv6 blob intact (NFQUEUE path)" blob_ok 'http://[2001:db8::100]/blob'
check "IPv6 passed up by the program ($(( $(stat fp_pass_not_ip) - v6 )))" \
	stat_gt fp_pass_not_ip $((v6 + 1000))

# A capture sees every packet: the fast path pauses while it runs.
answer=$(ctl capture start "$RUN/cap" 2>&1)
check "capture start ($answer)" [ "$(ctl stats | awk '$1 == "fast_path" { print $2 }')" = paused ]
fwd0=$(stat fp_fwd_reply); off0=$(stat fp_pass_disabled)
check "during a capture: blob intact" blob_ok http://198.18.0.100/blob
expect_eq "during a capture: nothing forwarded by the program" "$(stat fp_fwd_reply)" "$fwd0"
check "during a capture: packets passed as disabled" stat_gt fp_pass_disabled $((off0 + 1000))
ctl capture stop >/dev/null
expect_eq "capture stop resumes the fast path" \
	"$(ctl stats | awk '$1 == "fast_path" { print $2 }')" on

drops=$(ctl stats | awk '/^drop_/ && $1 != "drop_bad_state" && $2 != 0')
check "no unexpected drops (${drops:-none})" [ -z "$drops" ]
lost=$(ctl stats | awk '/_verdicts_lost|_queue_dropped|_user_dropped/ { s += $2 } END { print s + 0 }')
expect_eq "no packet lost in the kernel queues" "$lost" 0

# fast_path = false: the same lab, every packet through NFQUEUE.
lab down >/dev/null 2>&1
export LAB_FAST_PATH=false
lab_start fastpath
WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
expect_eq "fast_path = false: off" "$(ctl stats | awk '$1 == "fast_path" { print $2 }')" off
check "fast_path = false: blob intact" blob_ok http://198.18.0.100/blob
check "fast_path = false: every reply through NFQUEUE ($(stat pkts_reply))" stat_gt pkts_reply 1000
expect_eq "fast_path = false: no fast-path counters" "$(ctl stats | grep -c '^fp_')" 0
expect_eq "fast_path = false: no tc filter on lb1's front" \
	"$(lab_exec lb1 tc filter show dev front0 ingress 2>/dev/null | grep -c bpf)" 0

# The pair, fast path on (the default).
lab down >/dev/null 2>&1
unset LAB_FAST_PATH
export LAB_HA=1
lab_start fastpath
WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
fp_state() { "$LAB" ctl "$1" stats | awk '$1 == "fast_path" { print $2 }'; }
expect_eq "pair: the active forwards in the kernel" "$(fp_state lb1)" on
expect_eq "pair: the standby's program forwards nothing" "$(fp_state lb2)" standby
lab_exec client sh -c "curl -s -m 40 --limit-rate 8M http://198.18.0.100/blob | sha256sum" \
	>"$RUN/dl.sum" 2>/dev/null &
dl=$!
entries() { [ "$("$LAB" ctl lb2 stats | awk '$1 == "fast_path_entries" { print $2 }')" -ge 1 ]; }
check "pair: the standby installed the imported connection" wait_until 5 entries
sleep 1
lab kill lb1 >/dev/null
wait_dl() { ! kill -0 "$dl" 2>/dev/null; }
wait_until 40 wait_dl || kill "$dl" 2>/dev/null
expect_eq "pair: the download survived the takeover, byte-exact" \
	"$(cut -d' ' -f1 "$RUN/dl.sum")" "$WANT"
fwd=$("$LAB" ctl lb2 stats | awk '$1 == "fp_fwd_reply" { print $2 }')
check "pair: the new active forwarded it in its kernel ($fwd replies)" [ "${fwd:-0}" -gt 100 ]
expect_eq "pair: the new active's fast path is on" "$(fp_state lb2)" on
finish
