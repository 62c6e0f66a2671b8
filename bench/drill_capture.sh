#!/usr/bin/env bash
# Records a replay capture of a given size in the lab, for measuring sweeps
# (docs/drills.md): many short HTTP requests (one connection each) beside a
# few downloads, captured by lb1's lbd with `lbctl capture` (snaplen 128).
#   bench/drill_capture.sh OUT_PREFIX PACKETS
# writes OUT_PREFIX.in.pcap (the capture) and OUT_PREFIX.conf (lb1's
# configuration, which names the VIPs the replay needs). With ONE_BACKEND=1,
# lb1's services keep only their first backend while it records.
set -u
. "$(dirname "$0")/../tests/integration/lib.bash"
OUT=${1:?usage: drill_capture.sh OUT_PREFIX PACKETS}
WANT=${2:?usage: drill_capture.sh OUT_PREFIX PACKETS}
export LAB_HA=0
lab_start drillcap
VIP=198.18.0.100
DEADLINE=$(( $(date +%s) + 900 ))	# whatever happens, at most 15 minutes

if [ "${ONE_BACKEND:-0}" = 1 ]; then
	"$PY" - "$RUN/lb1.conf" <<'PYEOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r'(backends = \(\s*\{[^}]*\})(,\s*\{[^}]*\})*', r'\1', s)
open(p, 'w').write(s)
PYEOF
	ctl reload >/dev/null || { not_ok "reload with one backend a service"; exit 1; }
fi
answer=$(ctl capture start "$RUN/cap" snaplen=128 max_packets="$WANT" 2>&1)
grep -q '^ok: capturing' <<<"$answer" || { not_ok "capture start ($answer)"; exit 1; }
PIDS=()
# Four downloads, rate-limited so that they span the capture.
for c in 31 32 33 34; do
	lab_exec client curl -s -m 600 --interface 198.18.0.$c --limit-rate 200k \
		-o /dev/null http://$VIP/blob &
	PIDS+=($!)
done
# Short requests, one connection each, 50 per curl, until the capture is full.
n=0
while [ "$(date +%s)" -lt "$DEADLINE" ]; do
	state=$(ctl capture | awk '$1 == "state" { print $2 }')
	[ "$state" = running ] || break
	args=()
	for ((i = 0; i < 50; i++)); do args+=(-o /dev/null "http://$VIP/?r$n-$i"); done
	lab_exec client curl -s -m 20 -H 'Connection: close' "${args[@]}" >/dev/null
	n=$((n + 1))
done
ctl capture stop >/dev/null 2>&1
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
wait
ctl capture
cp "$RUN/cap.in.pcap" "$OUT.in.pcap"
cp "$RUN/lb1.conf" "$OUT.conf"
ok "recorded $(ctl capture | awk '$1 == "in_packets" { print $2 }') packets into $OUT.in.pcap"
