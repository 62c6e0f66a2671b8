#!/usr/bin/env bash
# The failover drill corpus, recorded at test time (no capture is kept in
# the repository): a single lbd on lb1 (the replay simulates the pair
# itself) records, with `lbctl capture` (snaplen 256: the replay needs only
# headers), the kinds of traffic a takeover must carry:
#   keepalive  4 clients, 10 HTTP requests each on one connection, 10/s
#   download   8 MB of /blob in one response
#   upload     iperf3 sending 8 MiB (a control and a data connection)
#   short      100 HTTP requests, one connection each
#   mixed      2 rate-limited downloads and a slow keep-alive client while
#              60 short requests run 6 at a time: FIN and TIME_WAIT states
#              in flight at every boundary, beside long connections
#   rst        a service with no listener (RST to the SYN) and lbdrill serve
#              given a wrong hello (RST after the handshake)
#   reuse      20 client ports, each reused for 8 HTTP requests 15 ms apart
#              (the server closes first, so the client may reuse at once):
#              SYNs that reopen closed entries, after FINs the standby may
#              not have had
# Each trace is then swept offline, failing over at every packet boundary
# (every Nth on the longer ones, so the suite stays within minutes):
#   - defer mode: nothing lost (exit 0, no takeover failure, nothing
#     unsynchronised);
#   - async mode: exit 0 or 1, no takeover failure, and every lost
#     connection's last state change within the unsynchronised window:
#     at most 3 ms before the failover (records wait up to 2 ms to be
#     batched, plus 1 ms of link delay).
# The keep-alive trace is also swept over a lossy, slower sync link (10%
# loss, 2 ms): NACK repair must leave no takeover failure. One single
# failover writes its result as JSON, which must parse and agree.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_HA=0		# one lbd on lb1 records; the replay simulates the pair
lab_start drillcorp

LBDRILL=${LAB_BUILD_DIR:-$REPO/build}/lbdrill
VIP=198.18.0.100
CONF=$RUN/lb1.conf
MAX_PKTS=3000		# per trace: sweeps cost packets x failovers
MAX_AGE_MS=4		# the unsynchronised window: a state change waits up to 2 ms for the
			# flush it coalesces in, its datagram leaves 1 ms after it, 1 ms link
T_START=$(date +%s%N)

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# A service whose backends have nothing listening: they reset every SYN.
sed -i 's/^);$/,\n  { vip = "198.18.0.100"; port = 8081; scheduler = "rr";\n    backends = ( { address = "198.18.1.11"; }, { address = "198.18.1.12"; },\n                 { address = "198.18.1.13"; } ); }\n);/' "$CONF"
answer=$(ctl reload 2>&1)
check "lb1 reloads with the no-listener service 8081 ($answer)" grep -q '^ok: 7 services' <<<"$answer"

# ---- recording ----

TRACES=()
declare -A PKTS=()	# packets recorded, by trace

# record NAME FUNCTION: runs FUNCTION while lb1 captures into $RUN/NAME.*.
record() {
	local name=$1 fn=$2 answer n reason
	answer=$(ctl capture start "$RUN/$name" snaplen=256 max_packets=$MAX_PKTS 2>&1)
	if ! grep -q '^ok: capturing' <<<"$answer"; then
		not_ok "$name: capture start ($answer)"
		return
	fi
	"$fn"
	sleep 0.3		# the last FINs and ACKs
	ctl capture stop >/dev/null 2>&1
	n=$(ctl capture | awk '$1 == "in_packets" { print $2 }')
	reason=$(ctl capture | awk '$1 == "reason" { print $2 }')
	check "$name: recorded $n packets, under $MAX_PKTS (capture ended: $reason)" \
		bash -c "[ '$reason' = stopped ] && [ ${n:-0} -gt 0 ] && [ ${n:-0} -lt $MAX_PKTS ]"
	TRACES+=("$name")
	PKTS[$name]=${n:-0}
}

# urls N PREFIX: N URLs of the VIP, each with its own query.
urls() { local i; for ((i = 1; i <= $1; i++)); do printf 'http://%s/?%s%d ' $VIP "$2" "$i"; done; }
# nulls N: one "-o /dev/null" per URL.
nulls() { local i; for ((i = 1; i <= $1; i++)); do printf -- '-o /dev/null '; done; }

keepalive() {
	local c out=$RUN/keepalive.codes
	: >"$out"
	for c in 21 22 23 24; do
		# shellcheck disable=SC2046
		lab_exec client curl -s -m 10 --interface 198.18.0.$c --rate 10/s \
			-w '%{http_code} %{num_connects}\n' $(nulls 10) $(urls 10 "ka$c-") >>"$out" &
	done
	wait
	expect_eq "keepalive: 40 requests answered 200" "$(grep -c '^200 ' "$out")" 40
	expect_eq "keepalive: on 4 connections (one each)" \
		"$(awk '{ n += $2 } END { print n }' "$out")" 4
}

download() {
	local size
	size=$(lab_exec client sh -c "curl -s -m 20 --range 0-7999999 http://$VIP/blob | wc -c")
	expect_eq "download: 8 MB through the VIP" "$size" 8000000
}

upload() {
	local sent
	sent=$(lab_exec client iperf3 -c $VIP -n 8M -J 2>/dev/null | $PY -c 'import json, sys
try: print(json.load(sys.stdin)["end"]["sum_sent"]["bytes"])
except Exception: print(0)')
	check "upload: iperf3 sent 8 MiB through the VIP ($sent bytes)" [ "${sent:-0}" -ge 8388608 ]
}

short() {
	local codes
	# shellcheck disable=SC2046
	codes=$(lab_exec client curl -s -m 20 -H 'Connection: close' \
		-w '%{http_code} %{num_connects}\n' $(nulls 100) $(urls 100 short))
	expect_eq "short: 100 requests answered 200" "$(grep -c '^200 ' <<<"$codes")" 100
	expect_eq "short: on 100 connections" "$(awk '{ n += $2 } END { print n }' <<<"$codes")" 100
}

mixed() {
	local out=$RUN/mixed.codes codes
	: >"$out"
	lab_exec client curl -s -m 20 --interface 198.18.0.31 --limit-rate 1M --range 0-499999 \
		-o /dev/null -w '%{http_code} long\n' http://$VIP/blob >>"$out" &
	lab_exec client curl -s -m 20 --interface 198.18.0.32 --limit-rate 1M --range 0-499999 \
		-o /dev/null -w '%{http_code} long\n' http://$VIP/blob >>"$out" &
	# shellcheck disable=SC2046
	lab_exec client curl -s -m 20 --interface 198.18.0.33 --rate 20/s \
		-w '%{http_code} ka\n' $(nulls 10) $(urls 10 mixka) >>"$out" &
	sleep 0.05
	# shellcheck disable=SC2046
	codes=$(lab_exec client curl -s -m 20 --interface 198.18.0.34 -H 'Connection: close' \
		--parallel --parallel-max 6 -w '%{http_code} short\n' $(nulls 60) $(urls 60 mix) \
		2>/dev/null)
	wait
	cat "$out" - <<<"$codes" >"$out.all"
	expect_eq "mixed: 2 long downloads answered (206)" "$(grep -c '^206 long' "$out.all")" 2
	expect_eq "mixed: 10 keep-alive requests answered" "$(grep -c '^200 ka' "$out.all")" 10
	expect_eq "mixed: 60 short requests answered" "$(grep -c '^200 short' "$out.all")" 60
}

rst() {
	lab_exec client "$PY" - "$VIP" <<'PYEOF' >"$RUN/rst.log" 2>&1
import socket, sys, time
vip = sys.argv[1]
refused = reset = 0
for i in range(10):			# port 8081: the backend resets the SYN
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((vip, 8081))
    except ConnectionRefusedError:
        refused += 1
    s.close()
    time.sleep(0.005)
for i in range(10):			# lbdrill serve: a wrong hello is reset
    s = socket.socket()
    s.settimeout(2)
    s.connect((vip, 9000))
    time.sleep(0.02)			# established, and replicated, first
    s.sendall(b"NOPE" + bytes(20))
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        reset += 1
    s.close()
print("refused", refused, "reset", reset)
PYEOF
	expect_eq "rst: 10 refused by a backend RST, 10 reset after a wrong hello" \
		"$(tail -1 "$RUN/rst.log")" "refused 10 reset 10"
}

reuse() {
	lab_exec client "$PY" - "$VIP" <<'PYEOF' >"$RUN/reuse.log" 2>&1
import socket, sys, time
vip, ok = sys.argv[1], 0
for rnd in range(8):
    for p in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(3)
        s.bind(("198.18.0.10", 41000 + p))
        try:
            s.connect((vip, 80))
            s.sendall(b"GET /?reuse%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % rnd)
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            ok += data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
        except OSError as e:
            print("error", p, e)
        s.close()
    time.sleep(0.01)
print("answered", ok)
PYEOF
	expect_eq "reuse: 160 requests on 20 reused client ports answered 200" \
		"$(tail -1 "$RUN/reuse.log")" "answered 160"
}

record keepalive keepalive
record download download
record upload upload
record short short
record mixed mixed
record rst rst
record reuse reuse
note "recording took $(ms_since "$T_START") ms"

# ---- sweeps ----

# every_for PACKETS: sweep every Nth boundary so that a sweep replays about
# a million packets at most (failovers x packets).
every_for() { local n=$1 e=1; while [ $(( n * n / e )) -gt 1000000 ]; do e=$((e + 1)); done; echo $e; }

# replay NAME OUTFILE ARGS...: lbdrill replay on trace NAME; sets RC, MS.
replay() {
	local name=$1 out=$2 t0; shift 2
	t0=$(date +%s%N)
	"$LBDRILL" replay --pcap "$RUN/$name.in.pcap" --config "$CONF" "$@" >"$out" 2>&1
	RC=$?
	MS=$(ms_since "$t0")
}

# unsynced_of OUTFILE: "N M X" of a sweep's unsynchronised line (lost in
# all, most at one failover, oldest last state change in ms);
# failures_of OUTFILE: its takeover failures.
unsynced_of() {
	sed -nE 's/^  unsynchronised +([0-9]+) connections lost in all, at most ([0-9]+) at one failover, last state change at most ([0-9.]+) ms before it$/\1 \2 \3/p' "$1"
}
failures_of() { sed -nE 's/^  takeover failures ([0-9]+)$/\1/p' "$1"; }

# keep_failed NAME OUTFILE: the first lines of a failed sweep, as notes,
# and the trace kept (the lab's run dir goes away) to reproduce it; only the
# last run's are kept.
KEEP_DIR=$REPO/build/test-logs/drill_corpus.kept
rm -rf "$KEEP_DIR"
keep_failed() {
	grep -E '^  (at #|failure|[0-9])' "$2" | head -6 | sed 's/^/# /'
	mkdir -p "$KEEP_DIR"
	cp "$RUN/$1.in.pcap" "$CONF" "$2" "$KEEP_DIR/"
	note "kept for reproduction: $KEEP_DIR/{$1.in.pcap,lb1.conf,$(basename "$2")}"
}

for name in "${TRACES[@]}"; do
	every=$(every_for "${PKTS[$name]}")
	out=$RUN/$name.defer.txt
	replay "$name" "$out" --sweep --every "$every" --defer
	read -r lost most age <<<"$(unsynced_of "$out")"
	expect_eq "$name: defer sweep, every $every of ${PKTS[$name]} packets: exit 0" "$RC" 0
	expect_eq "$name: defer sweep: takeover failures 0" "$(failures_of "$out")" 0
	expect_eq "$name: defer sweep: unsynchronised 0" "${lost:-?}" 0
	[ "$RC" -eq 0 ] || keep_failed "$name" "$out"
	note "$name defer sweep: $(grep -E '^  sweep' "$out" | sed 's/^ *sweep *//') in $MS ms"

	out=$RUN/$name.async.txt
	replay "$name" "$out" --sweep --every "$every"
	read -r lost most age <<<"$(unsynced_of "$out")"
	check "$name: async sweep: exit 0 or 1 (exit $RC)" [ "$RC" -eq 0 -o "$RC" -eq 1 ]
	expect_eq "$name: async sweep: takeover failures 0" "$(failures_of "$out")" 0
	check "$name: async sweep: unsynchronised losses at most $MAX_AGE_MS ms after their last state change (${age:-?} ms)" \
		awk -v a="${age:-x}" -v m=$MAX_AGE_MS 'BEGIN { exit !(a ~ /^[0-9.]+$/ && a + 0 <= m) }'
	[ "$RC" -le 1 ] || keep_failed "$name" "$out"
	note "$name async sweep: ${lost:-?} unsynchronised lost in all, at most ${most:-?} at one failover, max age ${age:-?} ms; $MS ms"
done

# The keep-alive trace over a lossy, slower sync link: lost datagrams are
# repaired by NACK; only connections not yet replicated may be lost.
out=$RUN/keepalive.lossy.txt
replay keepalive "$out" --sweep --sync-loss 10% --sync-delay 2
read -r lost most age <<<"$(unsynced_of "$out")"
check "keepalive: async sweep, 10% sync loss, 2 ms delay: exit 0 or 1 (exit $RC)" \
	[ "$RC" -eq 0 -o "$RC" -eq 1 ]
expect_eq "keepalive: 10% sync loss: takeover failures 0" "$(failures_of "$out")" 0
[ "$RC" -le 1 ] || keep_failed keepalive "$out"
note "keepalive with 10% sync loss, 2 ms delay: ${lost:-?} unsynchronised lost in all, at most ${most:-?} at one failover, max age ${age:-?} ms; $MS ms"

# One failover in the middle of the short connections, as JSON.
mid=$(( ${PKTS[short]:-2} / 2 ))
json=$RUN/short.json
replay short "$RUN/short.single.txt" --failover-at "$mid" --json "$json"
single_rc=$RC
summary=$($PY - "$json" "$single_rc" "$MAX_AGE_MS" <<'PYEOF' 2>&1
import json, sys
path, rc, max_age = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
d = json.load(open(path))
for k in ("records", "packets", "connections", "failover_record", "failover_ms", "unsynced",
          "LOST", "MISMATCH", "max_unsynced_age_ms", "exit", "conns"):
    assert k in d, "no key " + k
assert d["exit"] == rc, "exit %d in the file, %d returned" % (d["exit"], rc)
unsynced = [c for c in d["conns"] if c["status"] == "unsynced"]
assert len(unsynced) == d["unsynced"], "unsynced count and list disagree"
assert all(c["age_ms"] <= max_age for c in unsynced), "an unsynced age above the window"
print("record %d: %d connections, unsynced %d (max age %.3f ms), lost %d, exit %d" % (
    d["failover_record"], d["connections"], d["unsynced"], d["max_unsynced_age_ms"],
    d["LOST"] + d["MISMATCH"], d["exit"]))
PYEOF
)
json_rc=$?
check "short: --failover-at $mid --json (exit $single_rc) writes valid JSON that agrees ($(tail -1 <<<"$summary"))" \
	[ "$single_rc" -le 1 -a "$json_rc" -eq 0 ]
note "drill_corpus took $(ms_since "$T_START") ms"
finish
