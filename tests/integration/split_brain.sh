#!/usr/bin/env bash
# Pair drill: a split brain and its healing (HA lab, real keepalived). While
# lbdrill streams run through the VIP, lb2 stops hearing lb1's VRRP adverts
# (the sync link stays up): lb2 becomes MASTER too, both hold the VIPs and
# both lbd are master. lb2's lbd takes the VIPs' arrival as no reason to
# take over by itself (its peer is a live master): only keepalived's notify
# makes it master. When the adverts flow again lb2 steps down (lower
# priority), lb1 keeps the pair, and no connection is reset or lost: both
# nodes replicate to each other meanwhile, so whichever gets a client's
# packets can forward them.
set -u
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/pair_drill.bash"
export LAB_HA=1
OUT=
DRILL_PIDS=

# vrrp_cut on|off: lb2 drops every VRRP advert it receives (v4 and v6).
vrrp_cut() {
	local op=-I t
	[ "$1" = on ] || op=-D
	for t in iptables ip6tables; do
		ip netns exec "$LAB_PREFIX-lb2" "$t" "$op" INPUT -p 112 \
			-m comment --comment lb-split-brain -j DROP || return 1
	done
}

both_masters() { master_with_vips lb1 && role_is lb2 master && vrrp_is lb2 MASTER; }
healed() { master_with_vips lb1 && backup_ready lb2 && [ "$(floating_on lb2)" = 0 ]; }

lab_start splitbr
OUT=$(mktemp -d /tmp/split_brain.XXXXXX)
trap drill_cleanup EXIT
check "lbdrill is built ($LBDRILL)" test -x "$LBDRILL"
check "lb1 master, lb2 backup and ready" eval "master_with_vips lb1 && backup_ready lb2"
start_stream v4 198.18.0.100:9000 40 22
start_stream v6 "[2001:db8::100]:9000" 10 22
sleep 3

t_cut=${EPOCHREALTIME/./}
check "VRRP adverts to lb2 cut (sync link up)" vrrp_cut on
if wait_until 5 both_masters; then
	ok "split brain: lb1 and lb2 both master $(( (${EPOCHREALTIME/./} - t_cut) / 1000 )) ms after the cut"
else
	not_ok "split brain within 5 s (lb2: $(vrrp lb2), lbd $(role lb2))"
fi
check "  lb2 did not take over on the VIPs' arrival (its peer is a live master)" \
	[ "$(lb_stat lb2 takeover_deferred)" -ge 1 ] && [ "$(lb_stat lb2 takeovers_vip_arrival)" = 0 ]
expect_eq "  keepalived's notify made lb2 master" "$(lb_stat lb2 takeovers_notify)" 1
takeover_note lb2
sleep 3
note "during the split: lb1 pkts_orig $(lb_stat lb1 pkts_orig), lb2 pkts_orig $(lb_stat lb2 pkts_orig)"

t_heal=${EPOCHREALTIME/./}
check "VRRP adverts flow again" vrrp_cut off
if wait_until 5 healed; then
	ok "healed $(( (${EPOCHREALTIME/./} - t_heal) / 1000 )) ms later: lb1 master with the VIPs, lb2 BACKUP and ready"
else
	not_ok "healed within 5 s (lb1: $(vrrp lb1)/$(role lb1), lb2: $(vrrp lb2)/$(role lb2), VIPs on lb2: $(floating_on lb2))"
fi
wait_streams 40
verdict v4 40 "the split brain and its healing"
verdict v6 10 "the split brain and its healing"
note "lb2 drops: $(lab ctl lb2 stats | awk '/^drop_/ && $2 != 0' | tr '\n' ' ')"
note "lb1 drops: $(lab ctl lb1 stats | awk '/^drop_/ && $2 != 0' | tr '\n' ' ')"
finish
