#!/usr/bin/env bash
# Sync channel and process hardening in the HA lab (lbd + keepalived on lb1
# and lb2, state sync between them):
#   - lbd runs as a non-root user with CAP_NET_ADMIN and no other
#     capability, in every thread, its workers under a seccomp allow-list,
#     and still rewrites its iptables rules on a reload (iptables inherits
#     CAP_NET_ADMIN through the ambient set);
#   - a stand-in peer holding the pair's key sends lb2, from lb1's sync
#     address and port, authenticated datagrams with sequence numbers at
#     2^64 - 1: refused (bad_decode), and lb2 keeps answering (no hang);
#   - a capture of lb1's sync datagrams replayed to lb2 changes nothing
#     (replayed), also after lb2 restarted; a capture of lb2's previous life
#     replayed to lb1 is stale;
#   - lb2 restarts with the next epoch of its counter (not the clock) and
#     the pair becomes ready again.
# Every check also asserts that real traffic through the VIP goes on.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_HA=1
PEER="$REPO/tests/integration/sync_peer.py"
lab_start synchard

sc() { lab ctl "$1" sync 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }'; }
conns() { lab ctl "$1" stats 2>/dev/null | awk '$1 == "conns" { print $2 }'; }
vip_ok() { [ "$(http_get "http://198.18.0.100/" | wc -c)" -gt 0 ]; }
ready() { timeout 5 "$LAB" ctl "$1" ready >/dev/null 2>&1; }

# ---- the process
for node in lb1 lb2; do
	pid=$(lab pid "$node" lbd)
	uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
	check "$node's lbd runs as a non-root user (Uid: $uids)" \
		awk '/^Uid:/ { exit !($2 && $3 && $4 && $5) }' "/proc/$pid/status"
	bad=0
	for st in /proc/"$pid"/task/*/status; do
		# CAP_NET_ADMIN is bit 12: 0x1000, and nothing else in any set
		# (the bounding set may be empty: nothing can be gained by exec)
		awk '/^Cap(Eff|Prm|Inh|Amb):/ && $2 != "0000000000001000" { bad = 1 }
		     /^CapBnd:/ && $2 != "0000000000001000" && $2 != "0000000000000000" { bad = 1 }
		     END { exit bad }' "$st" || bad=1
	done
	check "$node's lbd holds CAP_NET_ADMIN only, in all $(ls /proc/"$pid"/task | wc -l) threads" \
		[ "$bad" = 0 ]
	workers=$(lab ctl "$node" stats | grep -c '^nfq[0-9]*_packets ')
	filtered=$(cat /proc/"$pid"/task/*/status | grep -c '^Seccomp:[[:space:]]*2$')
	check "$node's $workers worker thread(s) run under a seccomp filter ($filtered filtered)" \
		[ "$workers" -ge 1 ] && [ "$filtered" = "$workers" ]
done
note "lb1 lbd: $(grep -E '^(Uid|CapEff|CapBnd|CapAmb)' /proc/"$(lab pid lb1 lbd)"/status | tr '\t\n' '  ')"
sed -i -E 's/scheduler = "rr";/scheduler = "wlc";/' "$RUN/lb1.conf"
check "a reload as that user rewrites the iptables rules" reload_conf
check "  and traffic through the VIP flows" vip_ok

# ---- sequence numbers at 2^64 - 1
e1=$(sc lb1 sync_epoch); e2=$(sc lb2 sync_epoch)
bd=$(sc lb2 sync_bad_decode)
sent=$(lab_exec lb1 "$PY" "$PEER" huge "$RUN/pair/sync.key" 198.18.2.1 198.18.2.2 1 "$e1" "$e2")
sleep 0.5
expect_eq "lb2 refused $sent datagrams with a sequence number at 2^64-1 (bad_decode)" \
	"$(( $(sc lb2 sync_bad_decode) - bd ))" "${sent:-x}"
check "  and still answers (no hang)" ready lb2
before=$(sc lb2 sync_heartbeats_sent)
sleep 1
check "  and its sync goes on (heartbeats $before -> $(sc lb2 sync_heartbeats_sent))" \
	[ "$(sc lb2 sync_heartbeats_sent)" -gt "${before:-0}" ]
expect_eq "  and lb2 still hears lb1 alive" "$(sc lb2 sync_peer_alive)" 1
check "  and traffic through the VIP flows" vip_ok

# ---- a capture of lb1's datagrams (with connections in them), replayed
lab_exec lb2 "$PY" "$PEER" sniff sync0 198.18.2.1 3 "$RUN/cap1" >"$RUN/cap1.n" &
cap_pid=$!
lab_exec lb1 "$PY" "$PEER" sniff sync0 198.18.2.2 3 "$RUN/cap2" >"$RUN/cap2.n" &
cap2_pid=$!
sleep 0.5
for i in $(seq 1 20); do http_get "http://198.18.0.100/" >/dev/null; done
wait "$cap_pid" "$cap2_pid"
n1=$(cat "$RUN/cap1.n"); n2=$(cat "$RUN/cap2.n")
check "captured lb1's sync datagrams ($n1) and lb2's ($n2)" [ "${n1:-0}" -gt 5 ] && [ "${n2:-0}" -gt 2 ]
rp=$(sc lb2 sync_replayed); rin=$(sc lb2 sync_records_in); c2=$(conns lb2)
lab_exec lb1 "$PY" "$PEER" replay "$RUN/cap1" 198.18.2.1 198.18.2.2 >/dev/null
sleep 0.5
expect_eq "lb2 refused all $n1 replayed datagrams (replayed)" \
	"$(( $(sc lb2 sync_replayed) - rp ))" "$n1"
expect_eq "  and applied no record from them" "$(sc lb2 sync_records_in)" "$rin"

# ---- lb2 restarts: the next epoch of its counter, the pair ready again
epoch_file="$RUN/lb2.epoch"
lab kill lb2 >/dev/null
lab revive lb2 >/dev/null 2>&1
e2b=$(sc lb2 sync_epoch)
note "lb2's epoch $e2 -> $e2b (state file: $(cat "$epoch_file" 2>/dev/null))"
check "lb2 came back with a higher epoch" [ "${e2b:-0}" -gt "$e2" ]
check "  and is ready" wait_until 10 ready lb2
check "  and lb1 knows it (peer_epoch $(sc lb1 sync_peer_epoch))" \
	wait_until 5 eval '[ "$(sc lb1 sync_peer_epoch)" = "$e2b" ]'
rp=$(sc lb2 sync_replayed); un=$(sc lb2 sync_unproven); rin=$(sc lb2 sync_records_in)
c2=$(conns lb2)
lab_exec lb1 "$PY" "$PEER" replay "$RUN/cap1" 198.18.2.1 198.18.2.2 >/dev/null
sleep 0.5
expect_eq "the fresh lb2 refused the replayed capture (replayed)" \
	"$(( $(sc lb2 sync_replayed) - rp + $(sc lb2 sync_unproven) - un ))" "$n1"
expect_eq "  and applied no record from it" "$(sc lb2 sync_records_in)" "$rin"
expect_eq "  and holds the same connections ($c2)" "$(conns lb2)" "$c2"
st=$(sc lb1 sync_stale_epoch)
lab_exec lb2 "$PY" "$PEER" replay "$RUN/cap2" 198.18.2.2 198.18.2.1 >/dev/null
sleep 0.5
expect_eq "lb1 refused lb2's previous life as stale" "$(( $(sc lb1 sync_stale_epoch) - st ))" "$n2"
check "  and traffic through the VIP flows" vip_ok
check "  and both are ready" eval 'ready lb1 && ready lb2'

finish
