#!/usr/bin/env bash
# Pair drill: the sync link cut while VRRP stays healthy, and what must not
# happen around it (HA lab, real keepalived). While lbdrill streams run
# through the VIP:
#  1. a live master's VIP packets steered to the backup (the client's
#     neighbour entry pointed at lb2, the VIP added on lb2) are not
#     forwarded: lb2 stays backup, counts the arrival as deferred and drops
#     the packets as drop_not_master;
#  2. the sync link is cut (every sync datagram dropped, VRRP untouched):
#     after sync.stale_after lb2 is not ready (`lbctl ready` says the table
#     is stale), keepalived puts it in FAULT, and it does not take over a
#     VIP given to it meanwhile; lb1 serves on, new streams open;
#  3. the link heals: lb2 resyncs (the streams opened during the cut reach
#     its table), is ready and BACKUP again;
#  4. failback onto the node that has just resynced: lb1 dies at once, lb2
#     takes over, and every stream, old and new, survives.
set -u
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/pair_drill.bash"
export LAB_HA=1
OUT=
DRILL_PIDS=
VIP=198.18.0.100

lab_start syncpart
OUT=$(mktemp -d /tmp/sync_partition.XXXXXX)
trap drill_cleanup EXIT
check "lbdrill is built ($LBDRILL)" test -x "$LBDRILL"
check "lb1 master, lb2 backup and ready" eval "master_with_vips lb1 && backup_ready lb2"
start_stream old 198.18.0.100:9000 40 30
sleep 2

# 1. the guard: a live master's packets reaching the backup
phase guard
mac2=$(ip -n "$LAB_PREFIX-lb2" -o link show front0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
drops0=$(lb_stat lb2 drop_not_master) fwd0=$(lb_stat lb2 pkts_orig)
ip -n "$LAB_PREFIX-lb2" addr add "$VIP/32" dev lo
ip -n "$LAB_PREFIX-client" neigh replace "$VIP" lladdr "$mac2" dev front0 nud permanent
sleep 1
role2=$(role lb2) drops1=$(lb_stat lb2 drop_not_master) fwd1=$(lb_stat lb2 pkts_orig)
deferred=$(lb_stat lb2 takeover_deferred)
ip -n "$LAB_PREFIX-lb2" addr del "$VIP/32" dev lo
ip -n "$LAB_PREFIX-client" neigh del "$VIP" dev front0
phase guard_end
expect_eq "VIP on lb2 while lb1 is a live master: lb2 stays backup" "$role2" backup
expect_eq "  the arrival is counted as deferred, no takeover" \
	"$deferred/$(lb_stat lb2 takeovers_vip_arrival)/$(lb_stat lb2 takeovers_peer_silent)" 1/0/0
check "  the VIP's packets reached lb2 and were dropped (drop_not_master $drops0 -> $drops1)" \
	[ "$drops1" -gt "$drops0" ]
expect_eq "  lb2 forwarded none of them (pkts_orig)" "$fwd1" "$fwd0"
check "lb1 still master with the VIPs" master_with_vips lb1

# 2. the sync link cut, VRRP healthy
phase cut
stale0=$(sync_stat lb2 sync_stale_events)
t_cut=${EPOCHREALTIME/./}
check "sync link cut (every sync datagram dropped)" eval "lab sync-loss 1 >/dev/null"
start_stream new 198.18.0.100:9000 20 22
if wait_until 8 not_ready lb2; then
	ok "lb2 not ready $(( (${EPOCHREALTIME/./} - t_cut) / 1000 )) ms after the cut"
else
	not_ok "lb2 not ready within 8 s of the cut"
fi
why=$(lab ctl lb2 ready 2>&1 | head -n 1)
check "  lbctl ready says why: $why" grep -q stale <<<"$why"
expect_eq "  sync_stale_events +1" "$(sync_stat lb2 sync_stale_events)" $((stale0 + 1))
check "  keepalived on lb2 is FAULT, its lbd fault" wait_until 5 eval 'vrrp_is lb2 FAULT && role_is lb2 fault'
ip -n "$LAB_PREFIX-lb2" addr add "$VIP/32" dev lo
sleep 0.5
expect_eq "  a VIP given to stale lb2 is not taken over" "$(role lb2)" fault
ip -n "$LAB_PREFIX-lb2" addr del "$VIP/32" dev lo
check "lb1 master with the VIPs all along" master_with_vips lb1
sleep 2

# 3. the link heals
phase heal
resync0=$(sync_stat lb2 sync_resyncs_done)
t_heal=${EPOCHREALTIME/./}
check "sync link healed" eval "lab sync-loss 0 >/dev/null"
if wait_until 10 backup_ready lb2; then
	ok "lb2 resynced, ready and BACKUP $(( (${EPOCHREALTIME/./} - t_heal) / 1000 )) ms after the heal"
else
	not_ok "lb2 ready and BACKUP within 10 s of the heal ($(role lb2), $(vrrp lb2), $(lab ctl lb2 ready 2>&1 | head -n 1))"
fi
check "  by a bulk resync (sync_resyncs_done $resync0 -> $(sync_stat lb2 sync_resyncs_done))" \
	[ "$(sync_stat lb2 sync_resyncs_done)" -gt "$resync0" ]
c1=$(lb_stat lb1 conns) c2=$(lb_stat lb2 conns)
check "  lb2 holds lb1's connections, those opened during the cut too ($c2 of $c1)" \
	[ "$c2" -ge $((c1 - 2)) ] && [ "$c1" -ge 60 ]

# 4. failback onto the node that has just resynced
phase failback
lab kill lb1 >"$OUT/kill.log" 2>&1
check "lb1 killed" grep -q killed "$OUT/kill.log"
check "lb2 master with the VIPs within 3 s" wait_until 3 master_with_vips lb2
takeover_note lb2

wait_streams 40
verdict old 40 "the guard, the cut, the heal and the failback"
verdict new 20 "the heal and the failback (opened during the cut)"
finish
