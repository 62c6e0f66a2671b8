#!/usr/bin/env bash
# What the backends' retransmission floor does to a failover's stall, in
# one run: the same lab pair (the lab's advert_int) with the backends' routes at
# each rto_min of BENCH_RTOS ("off" is the kernel's 200 ms), alternated
# within each of BENCH_ROUNDS rounds. Each round and setting: 50 echo streams
# (a send every 20 ms) and 10 downloads at 2 MiB/s (lbdrill live) across a
# kill of lb1. A download whose whole window was lost waits for the backend's
# retransmission timer; an echo stream recovers through SACK as soon as its
# next send gets through, so only the downloads should move.
# Prints every round, then per setting the median and range of the longest
# echo and download stalls and the download stall as a ratio of "off"'s.
set -u
cd "$(dirname "$0")/.."
LAB=$PWD/deploy/lab
RTOS=${BENCH_RTOS:-off 90ms 40ms 15ms}
ROUNDS=${BENCH_ROUNDS:-3}
PY=/usr/bin/python3
export LAB_PREFIX=brto$$
out=$(mktemp -d)
trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

# stalls JSON: "echo_ms bulk_ms" of the drill, or nothing if it failed.
stalls() {
	$PY -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["survived"] == d["conns"] and d["downloads"]["complete"] == d["downloads"]["n"]
print(d["max_stall_ms"], d["downloads"]["max_stall_ms"])' "$1" 2>/dev/null
}

printf '%-6s %-8s %-10s %-10s\n' round rto_min echo_ms bulk_ms
for ((r = 1; r <= ROUNDS; r++)); do
	for rto in $RTOS; do
		set=$rto; [ "$rto" = off ] && set=
		if ! LAB_BACKEND_RTO_MIN=$set "$LAB" up >"$out/up.log" 2>&1; then
			printf '%-6s %-8s lab did not come up\n' "$r" "$rto"
			"$LAB" down >/dev/null 2>&1
			continue
		fi
		"$LAB" exec client build/lbdrill live --target 198.18.0.100:9000 --conns 50 \
			--downloads 10 --download-size 8M --download-rate 2097152 --tick 20 \
			--duration 8 --failover "3:$LAB kill lb1 >/dev/null" \
			--json "$out/$r-$rto.json" >/dev/null 2>&1
		got=$(stalls "$out/$r-$rto.json")
		if [ -n "$got" ]; then
			echo "$rto $got" >>"$out/rows"
			printf '%-6s %-8s %-10s %-10s\n' "$r" "$rto" $got
		else
			printf '%-6s %-8s drill failed (a stream lost): not counted\n' "$r" "$rto"
		fi
		"$LAB" down >/dev/null 2>&1
	done
done
[ -s "$out/rows" ] || { echo "no round completed"; exit 1; }
$PY - "$out/rows" "$RTOS" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
order = sys.argv[2].split()
by = {k: [(float(e), float(b)) for r, e, b in rows if r == k] for k in order}
base = statistics.median(b for _, b in by["off"]) if by.get("off") else None
for k in order:
    v = by[k]
    if not v:
        continue
    e = [x for x, _ in v]; b = [y for _, y in v]
    ratio = " (%.2f x off)" % (statistics.median(b) / base) if base else ""
    print("rto_min %-5s echo %4.0f ms [%.0f-%.0f]  downloads %4.0f ms [%.0f-%.0f]%s  (%d rounds)" % (
        k, statistics.median(e), min(e), max(e), statistics.median(b), min(b), max(b), ratio, len(v)))
PYEOF
