#!/usr/bin/env bash
# Bulk throughput of one TCP stream through the VIP (iperf3, 1 stream, each
# direction), three contenders alternated within each round, each on a
# fresh single-node lab: lbd with the kernel fast path, lbd on NFQUEUE alone
# (fast_path = false), and kernel DNAT (no lbd; iptables-nft DNAT, conntrack
# NAT to one backend). Reports each contender's median and range over the rounds,
# and the medians' ratios to nft DNAT. Client and server pinned to
# different CPUs (docs/platform.md §9); single-stream figures still swing.
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-5}
LAB=deploy/lab
PY=/usr/bin/python3
out=$(mktemp -d)
export LAB_PREFIX=bfp$$ LAB_HA=0
trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

# iperf SECS [-R]: receiver-side Gbit/s of one run.
iperf() {
	"$LAB" exec client iperf3 -c 198.18.0.100 -t "$SECS" -A 0,1 -f g -J $1 2>/dev/null |
		$PY -c 'import json,sys
try: print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")'
}

# kernel_dnat: the VIP's iperf3 port to one backend by the kernel's NAT
# (iptables here is nft-backed; the nft tool is not installed).
kernel_dnat() {
	"$LAB" exec lb1 iptables -t nat -A PREROUTING -d 198.18.0.100 -p tcp --dport 5201 \
		-j DNAT --to-destination 198.18.1.11
}

# up CONTENDER: a lab running that contender.
up() {
	case $1 in
	fast) LAB_LBD=1 LAB_FAST_PATH=true "$LAB" up >/dev/null ;;
	nfq) LAB_LBD=1 LAB_FAST_PATH=false "$LAB" up >/dev/null ;;
	nft) LAB_LBD=0 "$LAB" up >/dev/null && kernel_dnat ;;
	esac
}

for r in $(seq 1 "$ROUNDS"); do
	for c in fast nfq nft; do
		up "$c"
		iperf "" >/dev/null	# warm up: ARP, the server
		echo "$c up $(iperf "")" >>"$out/results"
		echo "$c down $(iperf -R)" >>"$out/results"
		if [ "$c" = fast ]; then
			"$LAB" ctl lb1 stats | awk '$1 ~ /^(fp_fwd_|pkts_orig|pkts_reply)/' |
				tr '\n' ' ' >"$out/fast.stats"
		fi
		"$LAB" down >/dev/null
	done
	echo "round $r done" >&2
done

$PY - "$out/results" <<'PYEOF'
import collections, statistics, sys
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, d, g = line.split()
    v[(c, d)].append(float(g))
names = {"fast": "lbd, fast path", "nfq": "lbd, NFQUEUE only", "nft": "kernel DNAT"}
print("bulk, 1 stream, Gbit/s (median [min-max] of %d runs)" % len(v[("nft", "up")]))
print("  %-20s %-24s %-24s %s" % ("", "upload", "download", "ratio to kernel DNAT (up / down)"))
for c in ("fast", "nfq", "nft"):
    cells, ratios = [], []
    for d in ("up", "down"):
        x = v[(c, d)]
        cells.append("%.2f [%.2f-%.2f]" % (statistics.median(x), min(x), max(x)))
        ref = statistics.median(v[("nft", d)])
        ratios.append("%.2f" % (statistics.median(x) / ref) if ref else "-")
    print("  %-20s %-24s %-24s %s" % (names[c], cells[0], cells[1], " / ".join(ratios)))
PYEOF
echo "lbd fast path, last round's counters: $(cat "$out/fast.stats")"
