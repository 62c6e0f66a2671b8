#!/usr/bin/env bash
# The kernel fast path against its contenders (issue 8's benchmark set).
# Five contenders, each on a single-node lab of its own with one backend
# (be1: nginx :80, iperf3 :5201), so every contender sends all traffic to
# the same kind of server. Each round brings up fresh labs for all of them
# side by side and measures figure by figure, contender after contender
# (the first one rotating from round to round): what others do on this
# shared machine then reaches every contender within seconds of the same
# moment, not minutes apart. The contenders:
#   fast     lbd with the kernel fast path (fast_path = true)
#   nfq      lbd on NFQUEUE alone (fast_path = false)
#   nft      kernel DNAT, no lbd (iptables-nft DNAT + conntrack; the nft
#            tool is not installed here)
#   haproxy  HAProxy `mode tcp` on lb1, listening on the VIP
#   route    plain routing, the topology's limit: the client reaches be1
#            directly through lb1 (a route in the client's namespace), no NAT
# Figures, in this order: bulk (iperf3) 1 and 4 streams, upload and
# download; new connections/s (wrk, Connection: close, 32 connections);
# keep-alive requests/s with p50 and p99 latency at 1 and 32 connections
# (wrk with a Lua `done` hook that prints its exact percentiles in µs).
# The client is pinned to CPU 0 and the servers to CPU 1 (docs/platform.md
# §9); the balancer's work runs wherever the kernel puts it, as it would.
# bench/fastpath_report.py prints each contender's median and range, the
# medians' ratios to kernel DNAT (latency: the difference in µs), and by
# how much lbd with the fast path misses each target; it writes the data
# ($BENCH_OUT/fastpath.json) and draws the plots ($BENCH_OUT/fastpath-*.png).
# BENCH_ROUNDS (3), BENCH_SECS (3, each figure's measured seconds),
# BENCH_CONTENDERS (all five), BENCH_OUT (build/bench).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-3}
CONTENDERS=${BENCH_CONTENDERS:-fast nfq nft haproxy route}
OUT=${BENCH_OUT:-build/bench}
LAB=deploy/lab
PY=/usr/bin/python3
VIP=198.18.0.100
BE=198.18.1.11
tmp=$(mktemp -d)
PFX=bfp$$
export LAB_HA=0 LAB_BACKENDS=1
HAP_PID=
cleanup() {
	local c
	[ -z "$HAP_PID" ] || kill "$HAP_PID" 2>/dev/null || true
	for c in $CONTENDERS; do lab "$c" down >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}

# lab CONTENDER ARGS...: deploy/lab on that contender's own lab.
lab() {
	local c=$1
	shift
	LAB_PREFIX=${PFX}_$c "$LAB" "$@"
}
trap cleanup EXIT

for t in iperf3 wrk haproxy taskset; do
	command -v $t >/dev/null || { echo "not ok - $t missing (deploy/install-deps)"; exit 1; }
done
mkdir -p "$OUT"

# wrk's done hook: requests, duration (µs), errors, p50, p99 (µs).
cat >"$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("wrk %d %d %d %d %d\n", summary.requests, summary.duration,
		e.connect + e.read + e.write + e.status + e.timeout,
		latency:percentile(50), latency:percentile(99)))
end
LUA

# haproxy.cfg: the VIP's two ports to be1, TCP mode, no logging.
cat >"$tmp/haproxy.cfg" <<CFG
global
	maxconn 8000
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend http
	bind $VIP:80
	default_backend http
backend http
	server be1 $BE:80
frontend iperf3
	bind $VIP:5201
	default_backend iperf3
backend iperf3
	server be1 $BE:5201
CFG

# wait_listen CONTENDER NODE PORT: bounded wait until something listens there.
wait_listen() {
	local i
	for i in $(seq 1 50); do
		[ -n "$(lab "$1" exec "$2" ss -Hltn "sport = :$3")" ] && return 0
		sleep 0.1
	done
	return 1
}

# up CONTENDER: that contender's lab, running it.
up() {
	local c=$1
	case $c in
	fast) LAB_LBD=1 LAB_FAST_PATH=true lab "$c" up >/dev/null ;;
	nfq) LAB_LBD=1 LAB_FAST_PATH=false lab "$c" up >/dev/null ;;
	nft)
		LAB_LBD=0 lab "$c" up >/dev/null
		lab "$c" exec lb1 sh -c "
			iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 80 -j DNAT --to-destination $BE &&
			iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 5201 -j DNAT --to-destination $BE"
		;;
	haproxy)
		LAB_LBD=0 lab "$c" up >/dev/null
		ip netns exec "${PFX}_$c-lb1" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
		HAP_PID=$!
		wait_listen "$c" lb1 5201 ||
			{ cat "$tmp/haproxy.log"; echo "not ok - haproxy did not start"; exit 1; }
		;;
	route)
		LAB_LBD=0 lab "$c" up >/dev/null
		lab "$c" exec client ip route add 198.18.1.0/24 via 198.18.0.2
		;;
	*) echo "not ok - unknown contender '$c'"; exit 1 ;;
	esac
	# The servers on CPU 1 (iperf3 -A pins its server again per test).
	for p in $(ip netns pids "${PFX}_$c-be1"); do taskset -a -p -c 1 "$p" >/dev/null; done
}

down() {
	if [ "$1" = haproxy ] && [ -n "$HAP_PID" ]; then
		kill "$HAP_PID" 2>/dev/null || true
		wait "$HAP_PID" 2>/dev/null || true
		HAP_PID=
	fi
	lab "$1" down >/dev/null
}

# target CONTENDER: where its client connects (plain routing: be1 itself).
target() { if [ "$1" = route ]; then echo $BE; else echo $VIP; fi; }

# iperf CONTENDER STREAMS [-R]: receiver-side Gbit/s (the first second omitted).
iperf() {
	lab "$1" exec client iperf3 -c "$(target "$1")" -P "$2" -t "$SECS" -O 1 -A 0,1 -f g -J $3 \
		2>/dev/null | $PY -c 'import json,sys
try: print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")'
}

# http CONTENDER CONNS [close]: "requests/s p50_us p99_us errors" of one wrk run.
http() {
	local hdr=()
	[ "${3:-}" = close ] && hdr=(-H 'Connection: close')
	lab "$1" exec client taskset -c 0 wrk -t1 -c"$2" -d"${SECS}s" --timeout 5s \
		"${hdr[@]}" -s "$tmp/report.lua" "http://$(target "$1")/" 2>/dev/null |
		awk '$1 == "wrk" && $3 > 0 { printf "%.1f %d %d %d\n", $2 * 1e6 / $3, $5, $6, $4; ok = 1 }
			END { if (!ok) print "0 0 0 -1" }'
}

# warm CONTENDER: ARP, the servers, the first connections.
warm() {
	lab "$1" exec client iperf3 -c "$(target "$1")" -t 1 >/dev/null 2>&1 || true
	http "$1" 4 >/dev/null
}

# figure FIGURE CONTENDER ROUND: lines "CONTENDER ROUND NAME VALUE".
figure() {
	local f=$1 c=$2 r=$3 n rps p50 p99 err
	case $f in
	bulk*)
		n=${f#bulk}
		n=${n%_*}
		echo "$c $r ${f} $(iperf "$c" "$n" "$([ "${f#*_}" = down ] && echo -R)")"
		;;
	cps)
		read -r rps p50 p99 err < <(http "$c" 32 close)
		echo "$c $r cps $rps"
		echo "$c $r cps_errors $err"
		;;
	ka*)
		n=${f#ka}
		read -r rps p50 p99 err < <(http "$c" "$n")
		echo "$c $r ka${n}_rps $rps"
		echo "$c $r ka${n}_p50 $p50"
		echo "$c $r ka${n}_p99 $p99"
		echo "$c $r ka${n}_errors $err"
		;;
	esac
}

# fast_counters ROUND: packets the program forwarded and packets that
# crossed NFQUEUE, so the report can check the fast path carried the load.
fast_counters() {
	lab fast ctl lb1 stats | awk -v r="$1" '
		$1 == "fp_fwd_orig" || $1 == "fp_fwd_reply" { fwd += $2 }
		$1 == "pkts_orig" || $1 == "pkts_reply" { slow += $2 }
		END { print "fast " r " fp_forwarded " fwd + 0; print "fast " r " nfqueue_packets " slow + 0 }'
}

read -r -a all <<<"$CONTENDERS"
for r in $(seq 1 "$ROUNDS"); do
	# This round's order: the list rotated by one more each round.
	k=$(((r - 1) % ${#all[@]}))
	order=("${all[@]:k}" "${all[@]:0:k}")
	for c in "${order[@]}"; do up "$c"; done
	for c in "${order[@]}"; do warm "$c"; done
	for f in bulk1_up bulk1_down bulk4_up bulk4_down cps ka1 ka32; do
		for c in "${order[@]}"; do figure "$f" "$c" "$r" >>"$tmp/results"; done
	done
	case " $CONTENDERS " in *" fast "*) fast_counters "$r" >>"$tmp/results" ;; esac
	for c in "${order[@]}"; do down "$c"; done
	echo "round $r of $ROUNDS done (order: ${order[*]})" >&2
done
cp "$tmp/results" "$OUT/fastpath.tsv"
$PY bench/fastpath_report.py "$OUT/fastpath.tsv" "$OUT"
