#!/usr/bin/env bash
# A spoofed SYN flood of 50,000 SYN/s for 10 s through the VIP (lbdrill
# flood, from the client's namespace, sources nobody owns, so the backends'
# SYN/ACKs go unanswered), with lbd's SYN queue on (daemon.syn_queue):
#   - new real connections keep succeeding during the flood (counted; each
#     gets 20 s, room for the client's SYN retransmissions);
#   - a download established before the flood completes byte-exact;
#   - the rejections are counted: half-open entries capped at
#     max_embryonic with the oldest evicted (conns_evicted), no SYN finding
#     the table full; the SYN queue's overflow, when lbd cannot take the
#     whole flood (nfqN_queue_dropped of the last queue), is printed;
#   - the workers' queues, which carry the SYN/ACKs, the handshakes' ACKs
#     and every established flow, drop nothing;
#   - once the flood stops and the (shortened) SYN timeouts pass, the table
#     holds no spoofed entry.
# The flood is offered at 50,000 SYN/s (the sender at nice -10); on this
# shared 2-core machine the sender itself (each raw send also pays for the
# receiving veth's softirq work) reaches 33,000-50,000 of them, which it
# prints. lbd's engine takes about 15,000-50,000 SYN/s here, with the
# machine's load; the kernel drops the rest from the SYN queue. Without the SYN queue the same flood
# overflows the shared queues, real SYN/ACKs wait there longer than a
# half-open entry lives, and no new connection completed within 10 s
# (docs/operations.md, SYN floods). With it, a real client's SYN is still
# dropped as often as a spoofed one (40-60% here): most connect at once,
# some after one or more retransmissions.
set -u
# max_embryonic 2048: at the 15,000-40,000 SYN/s the engine takes, a
# half-open entry lives some 50-140 ms before the flood pushes it out, still
# far longer than a real handshake takes through the workers' uncongested
# queues, and the 3 s SYN timeout would otherwise let the flood hold up to
# 120,000 half-open entries (more than the lab's 65,536-entry table).
CAP=2048
RATE=50000
FLOOD_S=10
export LAB_MAX_EMBRYONIC=$CAP LAB_SYN_TIMEOUT=3 LAB_HA=0 LAB_SYN_QUEUE=1
. "$(dirname "$0")/lib.bash"
lab_start synflood

WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
SOURCES=198.18.0.128-198.18.0.250	# on the client's link, owned by no one
# The SYN queue is the one after the workers' (lab: queues 0-1, SYN queue 2).
SYNQ=$(ctl stats | awk '$1 ~ /^nfq[0-9]+_packets$/ { n++ } END { print n - 1 }')
check "lbd runs a SYN queue (nfq$SYNQ) after its workers' queues" \
	lab_exec lb1 iptables -t raw -C LBD-PRE -d 198.18.0.100 -p tcp --dport 80 --syn \
	-j NFQUEUE --queue-num "$SYNQ"

# spoofed: entries of the flood's sources (198.18.0.128-250) in lb1's table.
spoofed() {
	ctl --json conns |
		jq '[.conns[] | select(.client | test("^198\\.18\\.0\\.(1(2[89]|[3-9][0-9])|2[0-4][0-9]|250):"))] | length'
}
# established: whether lb1 has an established connection.
established() { "$LAB" ctl lb1 --json conns state established | jq -e '.count > 0' >/dev/null; }
# qdrops FIRST LAST: the kernel's queue_dropped summed over queues FIRST..LAST.
qdrops() {
	local q sum=0
	for ((q = $1; q <= $2; q++)); do sum=$((sum + $(stat nfq${q}_queue_dropped))); done
	echo $sum
}

full0=$(stat drop_table_full); created0=$(stat conns_created); evicted0=$(stat conns_evicted)
expired0=$(stat conns_expired)
synq0=$(qdrops $SYNQ $SYNQ); workq0=$(qdrops 0 $((SYNQ - 1)))
# A download established before the flood, slow enough to outlast it.
out=$(mktemp)
lab_exec client sh -c "curl -s -m 90 --limit-rate 4M http://198.18.0.100/blob | sha256sum" >"$out" &
dl=$!
check "the download is established before the flood" \
	wait_until 10 established

lab_exec client nice -n -10 "$REPO/build/lbdrill" flood --target 198.18.0.100:80 --sources $SOURCES \
	--rate $RATE --duration $FLOOD_S >"$RUN/flood.out" 2>&1 &
flood=$!
sleep 1
# New real connections while the flood runs, one after the other, from one
# process (a shell loop of `ip netns exec curl` is itself starved of CPU by
# the flood): connect with 20 s for it, room for the kernel's SYN
# retransmissions at 1, 3, 7 and 15 s (a flood that drops 40% of all SYNs
# drops all of a client's first four about once in 40), one HTTP request,
# the whole answer. Each line: the result, the milliseconds it took, and
# the seconds since the probe started when it ended.
cat >"$RUN/probe.py" <<'PYEOF'
import socket, sys, time
start = time.monotonic()
end = start + float(sys.argv[1])
def out(what, t0, extra=""):
    now = time.monotonic()
    print("%s %d %.1f%s" % (what, (now - t0) * 1000, now - start, extra), flush=True)
while time.monotonic() < end:
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("198.18.0.100", 80), timeout=20)
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        body = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            body += d
        s.close()
        ok = body.split(b"\r\n\r\n", 1)[-1].strip().startswith(b"be")
        out("ok" if ok else "bad", t0)
    except OSError as e:
        out("fail", t0, " %s" % e)
PYEOF
lab_exec client $PY "$RUN/probe.py" $((FLOOD_S - 2)) >"$RUN/probe.out" 2>&1 &
probe=$!
# Half-open entries, sampled while the flood runs.
half_max=0
for i in 1 2 3; do
	sleep 2
	# Live ones: an evicted entry's expiry is due (0 ms left) until the
	# control thread's next tick frees it, which a loaded machine delays.
	half=$(ctl --json conns |
		jq '[.conns[] | select((.state | startswith("syn_")) and .expires_ms > 0)] | length')
	[ "$half" -gt "$half_max" ] && half_max=$half
done
wait "$probe"
ok_new=$(grep -c '^ok ' "$RUN/probe.out"); bad_new=$(grep -vc '^ok ' "$RUN/probe.out")
# Completed while the flood still ran: the probe started 1 s into it.
in_flood=$(awk -v t=$((FLOOD_S - 1)) '$1 == "ok" && $3 <= t' "$RUN/probe.out" | wc -l)
slow=$(awk '$1 == "ok" && $2 > 3000' "$RUN/probe.out" | wc -l)
note "new connections: $ok_new ok ($in_flood ended during the flood, $slow needed 3 SYN retransmissions or more), $bad_new not; ms each: $(awk '$1 == "ok" { print $2 }' "$RUN/probe.out" | sort -n |
	awk '{ v[NR] = $1 } END { p = int(NR * 0.99); if (p < 1) p = 1
		if (NR) printf "median %d, 99th %d, max %d", v[int((NR + 1) / 2)], v[p], v[NR] }')"
grep -v '^ok ' "$RUN/probe.out" | head -5 | sed 's/^/# /'
note "during the flood: $(ctl stats | grep -E '^(conns|drop_no_conn|drop_bad_state|drop_out_of_window|nfq[0-9]+_queue_dropped|conns_created|conns_evicted) ' | tr '\n' ' ')"
check "new connections completed while the flood ran ($in_flood)" [ "$in_flood" -ge 3 ]
expect_eq "no new connection made during the flood failed (20 s each)" "$bad_new" 0
wait "$flood"
note "flood: $(cat "$RUN/flood.out")"
sent=$(awk '/^sent/ { print $2 }' "$RUN/flood.out")
# The offered rate, measured by the sender; at least 25,000 SYN/s, or the
# line above says what this machine gave it.
check "the flood offered at least 250,000 SYNs in $FLOOD_S s (${sent:-0})" \
	[ "${sent:-0}" -ge 250000 ]
created=$(( $(stat conns_created) - created0 )); evicted=$(( $(stat conns_evicted) - evicted0 ))
synq=$(( $(qdrops $SYNQ $SYNQ) - synq0 )); workq=$(( $(qdrops 0 $((SYNQ - 1))) - workq0 ))
note "engine took $created SYNs ($(( created / FLOOD_S ))/s), the SYN queue dropped $synq"
# Whether the SYN queue overflows depends on how fast this machine is at
# the moment (lbd took the whole 50,000/s on a quiet one): a figure, not a
# check. What must hold either way is that the workers' queues did not.
note "the SYN queue overflowed by $synq SYNs (nfq${SYNQ}_queue_dropped; 0: lbd took the whole flood)"
expect_eq "the workers' queues (replies, handshakes, established flows) dropped nothing" \
	"$workq" 0
# Every entry created beyond the cap pushed out a half-open one (the real
# connections completed their handshakes and leave no debt). Entries also
# leave by timing out: conns_expired counts those and the evicted ones (an
# evicted entry is freed at the next tick), so the timed-out ones are the
# difference. The SYN queue still drains while the counters are read one
# after the other: a margin of a tenth of a second of arrivals. Without the
# cap nothing would be evicted at all.
expired=$(( $(stat conns_expired) - expired0 ))
timed_out=$(( expired > evicted ? expired - evicted : 0 ))
check "half-open entries capped: $created created ($ok_new real), $evicted evicted, $timed_out timed out, cap $CAP" \
	[ "$evicted" -ge $(( created - ok_new - bad_new - CAP - timed_out - created / (FLOOD_S * 10) )) ]
# The table is read entry by entry while SYNs keep coming, so entries
# created during the read (it takes up to a few hundred ms on a loaded
# machine) count too: a margin of a third of a second of arrivals. Without
# the cap the flood would hold 3 s of them (the SYN timeout).
margin=$(( created / FLOOD_S / 3 ))
check "at most $CAP live half-open entries (+$margin created while the table was read) seen: $half_max" \
	[ "$half_max" -le $(( CAP + margin )) ]
check "the flood reached the engine beyond the cap (else the line above proves little)" \
	[ "$created" -gt "$CAP" ]
expect_eq "no SYN found the table full" $(( $(stat drop_table_full) - full0 )) 0

wait "$dl"
expect_eq "the download established before the flood completed intact" \
	"$(cut -d' ' -f1 "$out")" "$WANT"
rm -f "$out"
# syn_sent/syn_recv time out after 3 s; the wheel's 1 s slots add a little.
check "no spoofed entry left in the table 10 s after the flood" \
	wait_until 10 eval '[ "$(spoofed)" = 0 ]'
note "spoofed entries now: $(spoofed)"
got=$(http_get http://198.18.0.100/)
check "and a new connection after it works ($got)" grep -qE '^be[0-9]+$' <<<"$got"
finish
