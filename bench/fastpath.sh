#!/usr/bin/env bash
# The kernel fast path against its contenders (issue 8's benchmark set).
# Five contenders, alternated within each round, each on a fresh
# single-node lab with one backend (be1: nginx :80, iperf3 :5201), so every
# contender sends all traffic to the same server:
#   fast     lbd with the kernel fast path (fast_path = true)
#   nfq      lbd on NFQUEUE alone (fast_path = false)
#   nft      kernel DNAT, no lbd (iptables-nft DNAT + conntrack; the nft
#            tool is not installed here)
#   haproxy  HAProxy `mode tcp` on lb1, listening on the VIP
#   route    plain routing, the topology's limit: the client reaches be1
#            directly through lb1 (a route in the client's namespace), no NAT
# Figures, in this order on each lab: bulk (iperf3) 1 and 4 streams, upload
# and download; new connections/s (wrk, Connection: close, 32 connections);
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
export LAB_PREFIX=bfp$$ LAB_HA=0 LAB_BACKENDS=1
HAP_PID=
cleanup() {
	[ -z "$HAP_PID" ] || kill "$HAP_PID" 2>/dev/null || true
	"$LAB" down >/dev/null 2>&1 || true
	rm -rf "$tmp"
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

# wait_listen NODE PORT: bounded wait until something listens there.
wait_listen() {
	local i
	for i in $(seq 1 50); do
		[ -n "$("$LAB" exec "$1" ss -Hltn "sport = :$2")" ] && return 0
		sleep 0.1
	done
	return 1
}

# up CONTENDER: a lab running that contender.
up() {
	case $1 in
	fast) LAB_LBD=1 LAB_FAST_PATH=true "$LAB" up >/dev/null ;;
	nfq) LAB_LBD=1 LAB_FAST_PATH=false "$LAB" up >/dev/null ;;
	nft)
		LAB_LBD=0 "$LAB" up >/dev/null
		"$LAB" exec lb1 sh -c "
			iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 80 -j DNAT --to-destination $BE &&
			iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 5201 -j DNAT --to-destination $BE"
		;;
	haproxy)
		LAB_LBD=0 "$LAB" up >/dev/null
		ip netns exec "$LAB_PREFIX-lb1" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
		HAP_PID=$!
		wait_listen lb1 5201 || { cat "$tmp/haproxy.log"; echo "not ok - haproxy did not start"; exit 1; }
		;;
	route)
		LAB_LBD=0 "$LAB" up >/dev/null
		"$LAB" exec client ip route add 198.18.1.0/24 via 198.18.0.2
		;;
	*) echo "not ok - unknown contender '$1'"; exit 1 ;;
	esac
	# The servers on CPU 1 (iperf3 -A pins its server again per test).
	for p in $(ip netns pids "$LAB_PREFIX-be1"); do taskset -a -p -c 1 "$p" >/dev/null; done
}

down() {
	if [ -n "$HAP_PID" ]; then
		kill "$HAP_PID" 2>/dev/null || true
		wait "$HAP_PID" 2>/dev/null || true
		HAP_PID=
	fi
	"$LAB" down >/dev/null
}

# iperf TARGET STREAMS [-R]: receiver-side Gbit/s (the first second omitted).
iperf() {
	"$LAB" exec client iperf3 -c "$1" -P "$2" -t "$SECS" -O 1 -A 0,1 -f g -J $3 2>/dev/null |
		$PY -c 'import json,sys
try: print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")'
}

# http TARGET CONNS [close]: "requests/s p50_us p99_us errors" of one wrk run.
http() {
	local hdr=()
	[ "${3:-}" = close ] && hdr=(-H 'Connection: close')
	"$LAB" exec client taskset -c 0 wrk -t1 -c"$2" -d"${SECS}s" --timeout 5s \
		"${hdr[@]}" -s "$tmp/report.lua" "http://$1/" 2>/dev/null |
		awk '$1 == "wrk" && $3 > 0 { printf "%.1f %d %d %d\n", $2 * 1e6 / $3, $5, $6, $4; ok = 1 }
			END { if (!ok) print "0 0 0 -1" }'
}

# measure CONTENDER ROUND: every figure, one line "CONTENDER ROUND FIGURE VALUE" each.
measure() {
	local c=$1 r=$2 t=$VIP n d rps p50 p99 err
	[ "$c" = route ] && t=$BE
	"$LAB" exec client iperf3 -c "$t" -t 1 >/dev/null 2>&1 || true	# warm up: ARP, the server
	for n in 1 4; do
		for d in up down; do
			echo "$c $r bulk${n}_$d $(iperf "$t" "$n" "$([ $d = down ] && echo -R)")"
		done
	done
	http "$t" 4 >/dev/null
	read -r rps p50 p99 err < <(http "$t" 32 close)
	echo "$c $r cps $rps"
	echo "$c $r cps_errors $err"
	for n in 1 32; do
		read -r rps p50 p99 err < <(http "$t" "$n")
		echo "$c $r ka${n}_rps $rps"
		echo "$c $r ka${n}_p50 $p50"
		echo "$c $r ka${n}_p99 $p99"
		echo "$c $r ka${n}_errors $err"
	done
}

# fast_counters ROUND: packets the program forwarded and packets that
# crossed NFQUEUE, so the report can check the fast path carried the load.
fast_counters() {
	"$LAB" ctl lb1 stats | awk -v r="$1" '
		$1 == "fp_fwd_orig" || $1 == "fp_fwd_reply" { fwd += $2 }
		$1 == "pkts_orig" || $1 == "pkts_reply" { slow += $2 }
		END { print "fast " r " fp_forwarded " fwd + 0; print "fast " r " nfqueue_packets " slow + 0 }'
}

for r in $(seq 1 "$ROUNDS"); do
	for c in $CONTENDERS; do
		up "$c"
		measure "$c" "$r" >>"$tmp/results"
		[ "$c" != fast ] || fast_counters "$r" >>"$tmp/results"
		down
	done
	echo "round $r of $ROUNDS done" >&2
done
cp "$tmp/results" "$OUT/fastpath.tsv"
$PY bench/fastpath_report.py "$OUT/fastpath.tsv" "$OUT"
