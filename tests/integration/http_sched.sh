#!/usr/bin/env bash
# HTTP through the VIP, IPv4 and IPv6, reaches the backends as each
# scheduler says: real nginx backends, real client TCP stacks, lbd on NFQUEUE.
set -u
. "$(dirname "$0")/lib.bash"
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start http

VIP4=198.18.0.100
VIP6='[2001:db8::100]'

# counts URL N [SRC-ADDRESS-LIST]: N requests, one line "be1=a be2=b be3=c".
counts() {
	local url=$1 n=$2 srcs=${3:-} i src out=""
	for ((i = 0; i < n; i++)); do
		if [ -n "$srcs" ]; then
			src=$(echo "$srcs" | cut -d' ' -f$(( i % $(echo "$srcs" | wc -w) + 1 )))
			out+="$(http_get "$url" --interface "$src")"$'\n'
		else
			out+="$(http_get "$url")"$'\n'
		fi
	done
	for b in be1 be2 be3; do printf '%s=%s ' "$b" "$(grep -cx "$b" <<<"$out")"; done
	echo
}

# rr: sequential requests go round the backends exactly.
for fam in 4 6; do
	url=http://$VIP4/; [ $fam = 6 ] && url=http://$VIP6/
	got=$(counts "$url" 30)
	expect_eq "rr over IPv$fam: 30 requests, 10 per backend" "$got" "be1=10 be2=10 be3=10 "
done

# wrr: weights 3:2:1 give 30:20:10 over 60 requests.
sed -i -E '0,/weight = 1;/s//weight = 3;/; 0,/weight = 1;/s//weight = 2;/' "$RUN/lb1.conf"
set_scheduler wrr
got=$(counts http://$VIP4/ 60)
expect_eq "wrr 3:2:1 over IPv4: 60 requests split 30/20/10" "$got" "be1=30 be2=20 be3=10 "
sed -i -E 's/weight = [0-9]+;/weight = 1;/' "$RUN/lb1.conf"

# sh and mh: one client address always lands on one backend, and many
# client addresses use every backend.
SRCS4=$(seq -f '198.18.0.%g' 11 40 | tr '\n' ' ')
SRCS6=$(seq -f '2001:db8::%g' 11 40 | tr '\n' ' ')
for sched in sh mh; do
	set_scheduler "$sched"
	for fam in 4 6; do
		url=http://$VIP4/; srcs=$SRCS4
		[ $fam = 6 ] && { url=http://$VIP6/; srcs=$SRCS6; }
		stable=1
		for src in $(echo "$srcs" | cut -d' ' -f1-5); do
			got=$(counts "$url" 4 "$src")
			[ "$(grep -o '=4' <<<"$got" | wc -l)" = 1 ] || stable=0
		done
		check "$sched over IPv$fam: each client address keeps its backend" [ "$stable" = 1 ]
		got=$(counts "$url" 30 "$srcs")
		check "$sched over IPv$fam: 30 client addresses use every backend ($got)" \
			bash -c "! grep -q '=0 ' <<<'$got'"
	done
done

# rr with persistence: a client keeps its backend; another client may differ.
set_scheduler rr 60
got=$(counts http://$VIP4/ 9 198.18.0.21)
check "rr + persistence: one client, 9 requests, one backend ($got)" \
	bash -c "grep -q '=9 ' <<<'$got'"

# lc: long-lived connections spread by live connection counts.
set_scheduler lc
PIDS=()
for i in 1 2 3 4 5 6; do
	lab_exec client curl -s -o /dev/null --limit-rate 1M -m 20 http://$VIP4/blob &
	PIDS+=($!)
	sleep 0.2
done
sleep 1
est=$(ctl --json backends | jq -j '.backends[] | select(.service == "198.18.0.100:80") | "\(.active) "')
expect_eq "lc: 6 long downloads spread 2/2/2 over the backends" "$est" "2 2 2 "
kill "${PIDS[@]}" 2>/dev/null
wait "${PIDS[@]}" 2>/dev/null

drops=$(ctl stats | awk '/^drop_/ && $1 != "drop_bad_state" && $2 != 0')
check "no unexpected drops (${drops:-none})" [ -z "$drops" ]
finish
