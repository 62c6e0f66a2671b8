#!/usr/bin/env bash
# deploy/pair/lbpair, the renderer operators use, and a pair run from what it
# writes:
#   - inventories of each family render what they should (a v4-only pair has
#     no IPv6 instance, rule or service; router ids come from the
#     inventory), a bad inventory is refused naming section and key, the
#     sync key is 32 bytes, mode 0600, and kept when rendering again;
#   - the lab (which renders its pair with lbpair) runs lbd and keepalived
#     on exactly the rendered files; lbd --check and keepalived -t accept
#     them;
#   - with the rendered firewall rules loaded on both nodes and INPUT and
#     FORWARD policies DROP, the pair works and fails over under a live
#     drill (lbdrill live, IPv4, plus IPv6 streams) with every stream
#     surviving; the rules' counters show VRRP, sync and the UNTRACKED
#     balanced flows were accepted by them;
#   - lbd crashing on a live master (SIGKILL, the node fine): the link lbd
#     holds (alive_link) goes with it, keepalived leaves MASTER through
#     track_interface at once rather than at its next track script, and
#     every stream survives on the peer.
set -u
. "$(dirname "$0")/lib.bash"
LBPAIR=$REPO/deploy/pair/lbpair
LBDRILL=$REPO/build/lbdrill
W=$(mktemp -d /tmp/lb-pair.XXXXXX)
DRILL_PIDS=
pair_cleanup() {
	local rc=$? pid
	for pid in $DRILL_PIDS; do kill -TERM "$pid" 2>/dev/null; done
	rm -rf "$W"
	"$LAB" down >/dev/null 2>&1 || true
	exit "$rc"
}

# inventory FAMILIES ROUTER_IDS [EXTRA-PAIR-LINES]: a small pair on made-up
# interfaces (rendering needs no namespace).
inventory() {
	local fam=$1 ids=$2 b='198.18.1.11 198.18.1.12'
	[ "$fam" = v4 ] || b="$b 2001:db8:1::11"
	[ "$fam" = v6 ] && b='2001:db8:1::11'
	cat <<INV
[pair]
families = $fam
vip4 = 198.18.0.100/24
gw4 = 198.18.1.1/24
vip6 = 2001:db8::100/64
gw6 = 2001:db8:1::1/64
front_if = eth0
back_if = eth1
sync_if = eth2
router_ids = $ids
advert_int = 0.5
${3:-}
[node a]
priority = 150
node_id = 7
sync = 198.18.2.1
front4 = 198.18.0.2
back4 = 198.18.1.2
front6 = 2001:db8::2
back6 = 2001:db8:1::2
[node b]
priority = 100
node_id = 8
sync = 198.18.2.2
front4 = 198.18.0.3
back4 = 198.18.1.3
front6 = 2001:db8::3
back6 = 2001:db8:1::3
[service web]
port = 80
scheduler = rr
backends = $b
INV
}

# ---- rendering, no namespaces
inventory v4 "61 62" >"$W/v4.inv"
"$LBPAIR" render "$W/v4.inv" "$W/v4" >"$W/out" 2>&1
check "a v4-only inventory renders" [ $? -eq 0 ]
ka=$W/v4/a/keepalived.conf
expect_eq "v4-only: two VRRP instances" "$(grep -c '^vrrp_instance' "$ka")" 2
expect_eq "v4-only: no IPv6 instance or address in keepalived.conf" "$(grep -cE 'front6|back6|2001:db8' "$ka")" 0
expect_eq "v4-only: router ids 61 and 62 from the inventory" \
	"$(awk '$1 == "virtual_router_id" { printf "%s ", $2 }' "$ka")" "61 62 "
expect_eq "v4-only: advert_int from the inventory" "$(awk '$1 == "advert_int" { print $2 }' "$ka" | sort -u)" 0.5
expect_eq "v4-only: no IPv6 service in lbd.conf" "$(grep -c '2001:db8' "$W/v4/a/lbd.conf")" 0
check "v4-only: no firewall.v6" [ ! -e "$W/v4/a/firewall.v6" ]
expect_eq "node a's lbd peers with b" "$(grep -E 'node_id|peer' "$W/v4/a/lbd.conf" | tr -d ' \n')" \
	'node_id=7;peer_id=8;peer="198.18.2.2";'
expect_eq "sync.key: 32 bytes, mode 600" "$(command stat -c '%s %a' "$W/v4/sync.key")" "32 600"
sum=$(sha256sum <"$W/v4/sync.key")
"$LBPAIR" render "$W/v4.inv" "$W/v4" >/dev/null 2>&1
expect_eq "rendering again keeps the key" "$(sha256sum <"$W/v4/sync.key")" "$sum"
for n in a b; do
	out=$("$REPO/build/lbd" -c "$W/v4/$n/lbd.conf" --check 2>&1)
	check "lbd --check accepts v4 node $n ($(head -n 1 <<<"$out"))" grep -q ': ok' <<<"$out"
done
# Not on this host: eth2 and the key's path are node a's, not ours.
expect_eq "lbd --check reports the missing sync interface" \
	"$(grep -c 'error: sync interface eth2 does not exist' <<<"$out")" 1

inventory v6 "71 72" >"$W/v6.inv"
"$LBPAIR" render "$W/v6.inv" "$W/v6" >/dev/null 2>&1
check "a v6-only inventory renders" [ $? -eq 0 ]
expect_eq "v6-only: instances front6 back6 only" \
	"$(awk '$1 == "vrrp_instance" { printf "%s ", $2 }' "$W/v6/a/keepalived.conf")" "front6 back6 "
expect_eq "v6-only: no IPv4 service" "$(grep -c '198.18.0.100' "$W/v6/a/lbd.conf")" 0

inventory both "51 52 53" >"$W/bad.inv"
msg=$("$LBPAIR" render "$W/bad.inv" "$W/bad" 2>&1)
check "three router ids for a dual-stack pair: refused ($msg)" grep -q 'bad.inv: \[pair\] router_ids: give 4 ids' <<<"$msg"
check "and nothing written" [ ! -e "$W/bad" ]
inventory both "51 52 53 54" 'vip4 = 198.18.0.300/24' >"$W/bad2.inv"
sed -i '0,/^vip4 = 198.18.0.100/{/^vip4 = 198.18.0.100/d}' "$W/bad2.inv"
msg=$("$LBPAIR" render "$W/bad2.inv" "$W/bad2" 2>&1)
check "a bad VIP: refused naming it ($msg)" grep -q "\[pair\] vip4: '198.18.0.300/24' is not ADDRESS/PREFIX" <<<"$msg"

# ---- the lab runs the rendered files
lab_start pair
trap pair_cleanup EXIT
for n in lb1 lb2; do
	check "$n's lbd runs the rendered lbd.conf" cmp -s "$RUN/pair/$n/lbd.conf" "$RUN/$n.conf"
	check "$n's keepalived runs the rendered keepalived.conf" \
		cmp -s "$RUN/pair/$n/keepalived.conf" "$RUN/$n.keepalived.conf"
	check "keepalived -t accepts $n's keepalived.conf" \
		lab_exec "$n" keepalived -t -f "$RUN/pair/$n/keepalived.conf"
	out=$(lab_exec "$n" "$REPO/build/lbd" -c "$RUN/pair/$n/lbd.conf" --check 2>&1)
	rc=$?
	expect_eq "lbd --check on $n: the file is ok and the host has nothing to report (exit $rc)" \
		"$out" "$RUN/pair/$n/lbd.conf: ok (6 services)"
	check "$n: the rendered firewall loads" lab_exec "$n" "$RUN/pair/$n/firewall.sh"
	check "$n: loading it again adds no second jump" lab_exec "$n" "$RUN/pair/$n/firewall.sh"
	expect_eq "$n: one jump to LBPAIR-IN" "$(lab_exec "$n" iptables -S INPUT | grep -c 'LBPAIR-IN')" 1
	for t in iptables ip6tables; do
		lab_exec "$n" $t -P INPUT DROP
		lab_exec "$n" $t -P FORWARD DROP
	done
done

# The pair still elects and syncs behind the firewall: lb2 resyncs.
sleep 1
expect_eq "lb1 is master behind the firewall" "$(lab role lb1)" master
expect_eq "lb2 is backup behind the firewall" "$(lab role lb2)" backup
check "lb2 is ready behind the firewall" eval "lab ctl lb2 ready >/dev/null"

lab_exec client "$LBDRILL" stream --target "[2001:db8::100]:9000" --conns 20 --duration 14 \
	--json "$W/v6.json" >"$W/v6.out" 2>&1 &
DRILL_PIDS=$!
lab_exec client "$LBDRILL" live --target 198.18.0.100:9000 --conns 60 --duration 14 \
	--failover "5:$LAB kill lb1" --json "$W/live.json" >"$W/live.out" 2>&1
rc=$?
sed 's/^/# /' "$W/live.out" | tail -n 12
check "lbdrill live: lb1 killed at 5 s, every IPv4 stream survived (exit $rc)" [ "$rc" -eq 0 ]
wait_until 30 eval "! kill -0 $DRILL_PIDS 2>/dev/null"
wait "$DRILL_PIDS"
rc=$?
DRILL_PIDS=
sed 's/^/# /' "$W/v6.out" | tail -n 4
check "every IPv6 stream survived the failover too (exit $rc)" [ "$rc" -eq 0 ]
expect_eq "lb2 is master" "$(lab role lb2)" master

# What the firewall let through, by its own rules' counters (on lb2, which
# saw VRRP and sync before the failover and the balanced flows after it).
count() { lab_exec lb2 iptables -vnxL "$1" | awk -v m="$2" '$0 ~ m { s += $1 } END { print s + 0 }'; }
check "lb2 accepted VRRP from lb1 ($(count LBPAIR-IN 'prot 112|  112  ') packets)" [ "$(count LBPAIR-IN '112')" -gt 0 ]
check "lb2 accepted sync datagrams ($(count LBPAIR-IN 'dpt:7788') packets)" [ "$(count LBPAIR-IN 'dpt:7788')" -gt 0 ]
check "lb2 forwarded UNTRACKED balanced flows ($(count LBPAIR-FWD UNTRACKED) packets)" \
	[ "$(count LBPAIR-FWD UNTRACKED)" -gt 0 ]

# ---- lbd dies on the live master (lb2 now)
if lab revive lb1 >"$W/revive.log" 2>&1; then
	ok "lb1 revived behind the firewall: resynced, backup, ready"
else
	not_ok "lb1 revived behind the firewall"
	sed 's/^/# /' "$W/revive.log" | tail -n 8
fi
check "lb2's lbd holds its alive link" eval "lab_exec lb2 ip link show lbd-alive >/dev/null"
pid=$(lab pid lb2 lbd)
lab_exec client "$LBDRILL" live --target 198.18.0.100:9000 --conns 40 --duration 7 \
	--failover "2:kill -KILL $pid" --json "$W/crash.json" >"$W/crash.out" 2>&1
rc=$?
sed 's/^/# /' "$W/crash.out" | grep -E 'survived|longest stall|traffic back'
check "lbd killed on the master at 2 s: every stream survived on lb1 (exit $rc)" [ "$rc" -eq 0 ]
check "the alive link went with lb2's lbd" eval "! lab_exec lb2 ip link show lbd-alive >/dev/null 2>&1"
check "lb2's keepalived left MASTER because the link went" \
	grep -q 'Netlink reports lbd-alive down' "$RUN/lb2.keepalived.log"
expect_eq "lb1 is master" "$(lab role lb1)" master
finish
