#!/usr/bin/env bash
# Connection setup latency added by zero-loss mode (sync.defer): the same
# lab twice, defer off then on; N sequential HTTP connections through the
# VIP; curl's time_connect (SYN sent -> handshake done) per connection.
# Reports medians and p90 of both and their ratio, plus lbd's own measure
# of how long it held packets (lbctl sync: defer_wait_us_*).
set -eu
cd "$(dirname "$0")/.."
N=${BENCH_CONNS:-300}
LAB=deploy/lab
PY=/usr/bin/python3
out=$(mktemp -d)
trap 'LAB_PREFIX=$LAB_PREFIX "$LAB" down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

measure() {
	local defer=$1
	export LAB_PREFIX=bdl$$ LAB_DEFER=$defer
	"$LAB" up >/dev/null
	# Warm up: ARP/ND, nginx workers.
	for i in 1 2 3; do "$LAB" exec client curl -s -o /dev/null http://198.18.0.100/; done
	"$LAB" exec client sh -c "for i in \$(seq 1 $N); do curl -s -o /dev/null -w '%{time_connect}\n' http://198.18.0.100/; done" >"$out/$defer"
	"$LAB" ctl lb1 sync | awk '/^defer_/' >"$out/$defer.lbd"
	"$LAB" down >/dev/null
}

measure 0
measure 1
$PY - "$out/0" "$out/1" <<'PYEOF'
import statistics, sys
def load(p):
    return sorted(float(l) * 1e6 for l in open(p) if l.strip())
off, on = load(sys.argv[1]), load(sys.argv[2])
def q(v, p): return v[min(len(v) - 1, int(len(v) * p))]
print("connection setup through the VIP, %d connections each (curl time_connect, us)" % len(off))
print("  %-10s %10s %10s" % ("", "median", "p90"))
print("  %-10s %10.0f %10.0f" % ("defer off", statistics.median(off), q(off, .9)))
print("  %-10s %10.0f %10.0f" % ("defer on", statistics.median(on), q(on, .9)))
print("  ratio      %10.2f %10.2f" % (statistics.median(on) / statistics.median(off), q(on, .9) / q(off, .9)))
print("  added      %10.0f us (median)" % (statistics.median(on) - statistics.median(off)))
PYEOF
echo "lbd's hold times with defer on (lbctl sync):"
sed 's/^/  /' "$out/1.lbd"
