#!/usr/bin/env bash
# A forged SYN for a real client's tuple in each closing state (fin_wait,
# close_wait, last_ack, time_wait): the real client wins. The forged SYN
# comes from the client's namespace with the client's own address and port
# and another ISN, as a blind attacker would send it.
#   - fin_wait, close_wait, last_ack: the SYN is forwarded for the backend to
#     challenge (syn_ignored), the entry keeps its state and its tracker, and
#     the connection then finishes: every byte arrives, both FINs are
#     tracked (time_wait).
#   - time_wait: a SYN may reopen the tuple (conns_reopened, as conntrack
#     does), but the forged incarnation cannot keep the real client out: its
#     next connection from the same port works. Twice: with a forged ISN
#     above the old connection's end (the backend's TIME_WAIT accepts it and
#     answers a SYN/ACK, which the real client resets) and below it (the
#     backend only re-acks; the real client's SYN then meets the forged
#     half-open entry, is forwarded as syn_ignored, and the tracker follows
#     the backend's answer to it).
#
# The states are held by the endpoints themselves: a backend server of our
# own (service port 7000, one backend) that sends a response only when told
# to, a client that half-closes first when told to, and, for the states with
# an unacked FIN, a rule in the client's namespace that drops the backend's
# FIN until the checks are done (the backend retransmits it afterwards).
set -u
export LAB_HA=0 LAB_BACKENDS=1
. "$(dirname "$0")/lib.bash"
lab_start forgedsyn

PORT=7000
VIP=198.18.0.100
CLIENT=198.18.0.10
BE=198.18.1.11
SIZE=200000

# The service on port 7000, to our server on be1.
sed -i "s|^services = (|services = (\n  { vip = \"$VIP\"; port = $PORT; scheduler = \"rr\";\n    backends = ( { address = \"$BE\"; port = $PORT; weight = 1; } ); },|" \
	"$RUN/lb1.conf"
check "lbd takes the service on port $PORT" reload_conf

# server.py PORT DIR: per connection, reads "W N TAG\n"; W=e: then reads up
# to the client's FIN; TAG other than "-": then waits (at most 60 s) for
# DIR/release-TAG; then sends N bytes of a fixed pattern and closes.
cat >"$RUN/server.py" <<'PYEOF'
import os, socket, sys, threading, time
port, rundir = int(sys.argv[1]), sys.argv[2]
def pattern(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]
def serve(c):
    try:
        buf = b""
        while b"\n" not in buf:
            d = c.recv(100)
            if not d:
                return
            buf += d
        w, n, tag = buf.split(b"\n")[0].decode().split()
        if w == "e":
            while c.recv(4096):
                pass
        if tag != "-":
            end = time.monotonic() + 60
            while not os.path.exists(os.path.join(rundir, "release-" + tag)):
                if time.monotonic() > end:
                    return
                time.sleep(0.05)
        c.sendall(pattern(int(n)))
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF

# client.py SRC SPORT DST PORT W N TAG: one connection from SRC:SPORT; sends
# the request line, half-closes first if W=e, reads to the end; prints
# "ok N" when exactly the pattern of N bytes arrived.
cat >"$RUN/client.py" <<'PYEOF'
import socket, sys
src, sport, dst, port, w, n, tag = sys.argv[1:8]
n = int(n)
want = (bytes(range(251)) * (n // 251 + 1))[:n]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(60)
s.bind((src, int(sport)))
s.connect((dst, int(port)))
s.sendall(("%s %d %s\n" % (w, n, tag)).encode())
if w == "e":
    s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
s.close()
print("ok %d" % len(got) if got == want else "bad %d bytes" % len(got))
PYEOF

# syn.py SRC SPORT DST DPORT SEQ: one SYN with a correct checksum, sent from
# a raw socket (routed by the kernel).
cat >"$RUN/syn.py" <<'PYEOF'
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, sport, dst, dport, seq = sys.argv[1:6]
sa, da = socket.inet_aton(src), socket.inet_aton(dst)
tcp = struct.pack("!HHIIBBHHH", int(sport), int(dport), int(seq), 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(sa + da + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, sa, da)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
    s.sendto(ip + tcp, (dst, 0))
PYEOF

lab_exec be1 $PY "$RUN/server.py" $PORT "$RUN" >"$RUN/server.log" 2>&1 &
server=$!
# The client's segments of the service, read back only when a close is not
# tracked: which end sent what, to tell a lost or reset segment from a
# tracker fault.
lab_exec client tcpdump -U -n -i any -s 96 -w "$RUN/client.pcap" "tcp and host $VIP and port $PORT" \
	>/dev/null 2>&1 &
capture=$!
trap 'rc=$?; kill "$server" "$capture" 2>/dev/null; (exit $rc); lab_cleanup' EXIT
listening() { lab_exec be1 ss -Hltn "sport = :$PORT" | grep -q .; }
check "our server listens on be1:$PORT" wait_until 10 listening
check "the client's capture runs" wait_until 10 test -s "$RUN/client.pcap"

row() { ctl --json conns client "$CLIENT:$1" | jq -c '.conns[0] // empty'; }
state_is() { [ "$(row "$1" | jq -r '.state // empty')" = "$2" ]; }
forge() { lab_exec client $PY "$RUN/syn.py" $CLIENT "$1" $VIP $PORT "$2"; }
# hold_fin SPORT / release_fin SPORT: the client's namespace drops the
# backend's FINs to SPORT, or stops dropping them.
hold_fin() {
	lab_exec client iptables -w 5 -I INPUT -p tcp -s $VIP --sport $PORT --dport "$1" \
		--tcp-flags FIN FIN -j DROP
}
release_fin() {
	lab_exec client iptables -w 5 -D INPUT -p tcp -s $VIP --sport $PORT --dport "$1" \
		--tcp-flags FIN FIN -j DROP
}
# start_client SPORT W N TAG: a client in the background; its result in
# $RUN/client-SPORT.out, its PID in CL.
start_client() {
	lab_exec client timeout 90 $PY "$RUN/client.py" $CLIENT "$1" $VIP $PORT "$2" "$3" "$4" \
		>"$RUN/client-$1.out" 2>&1 &
	CL=$!
}
# finished SPORT: waits for the client (in this shell: it is our child),
# then OUT is its result.
finished() { wait "$CL"; OUT=$(cat "$RUN/client-$1.out"); }
# forged_isn SPORT: an ISN for the forged SYN, half the sequence space away
# from the client's end (so neither the window nor an exact match).
forged_isn() { echo $(( ($(row "$1" | jq -r .orig_end) + 2147483648) % 4294967296 )); }

# closing_case STATE SPORT HOW: one connection held in STATE, a forged SYN,
# then the connection finishes.
#   HOW=fin:   the backend's FIN is held (fin_wait: the backend closed first)
#   HOW=half:  the client half-closes, the backend waits (close_wait)
#   HOW=both:  the client half-closes, the backend's FIN is held (last_ack)
closing_case() {
	local st=$1 sp=$2 how=$3 w=n tag=- row0 ends0 syn0 reo0
	[ "$how" = fin ] || w=e
	[ "$how" = half ] && tag=$st
	[ "$how" = half ] || hold_fin "$sp"
	start_client "$sp" $w $SIZE $tag
	check "$st: the real connection reaches $st" wait_until 15 state_is "$sp" "$st"
	row0=$(row "$sp")
	ends0=$(jq -r '"\(.orig_end) \(.reply_end)"' <<<"$row0")
	syn0=$(stat syn_ignored); reo0=$(stat conns_reopened)
	forge "$sp" "$(forged_isn "$sp")"
	sleep 0.5
	expect_eq "$st: the forged SYN was forwarded as syn_ignored" \
		$(( $(stat syn_ignored) - syn0 )) 1
	expect_eq "$st: and reopened nothing" $(( $(stat conns_reopened) - reo0 )) 0
	expect_eq "$st: the entry is still in $st" "$(row "$sp" | jq -r .state)" "$st"
	expect_eq "$st: its tracker was not re-seeded" \
		"$(row "$sp" | jq -r '"\(.orig_end) \(.reply_end)"')" "$ends0"
	[ "$how" = half ] && touch "$RUN/release-$st"
	[ "$how" = half ] || release_fin "$sp"
	finished "$sp"
	expect_eq "$st: the real client received every byte" "$OUT" "ok $SIZE"
	if wait_until 15 state_is "$sp" time_wait; then
		ok "$st: and its close was tracked to time_wait"
	else
		not_ok "$st: and its close was tracked to time_wait"
		# Where it stopped, to tell a lost segment from a tracker fault.
		echo "# $st: the entry now: $(row "$sp")"
		echo "# $st: drops: $(ctl stats | awk '/^drop_/ && $2 != 0 { printf "%s %s ", $1, $2 }')"
		echo "# $st: connection counters: $(ctl stats | awk '/^(conns_|rst_|syn_|takeover_)/ && $2 != 0 { printf "%s %s ", $1, $2 }')"
		echo "# $st: the client's last segments of port $sp:"
		lab_exec client tcpdump -r "$RUN/client.pcap" -n -tt "port $sp" 2>/dev/null | tail -n 25 | sed 's/^/#   /'
	fi
}

closing_case fin_wait 41001 fin
closing_case close_wait 41002 half
closing_case last_ack 41003 both
# The backends' challenge ACKs and every segment of the real connections passed.
expect_eq "closing states: nothing dropped in a bad state or out of window" \
	"$(stat drop_bad_state) $(stat drop_out_of_window)" "0 0"

# time_wait_case SPORT above|below: a finished connection in time_wait, a
# forged SYN with an ISN above or below its end, then the real client's next
# connection from the same port.
time_wait_case() {
	local sp=$1 where=$2 end isn reo0 syn0
	start_client "$sp" n 1000 -
	finished "$sp"
	expect_eq "time_wait ($where): the first connection completed" "$OUT" "ok 1000"
	check "time_wait ($where): it is tracked to time_wait" wait_until 15 state_is "$sp" time_wait
	end=$(row "$sp" | jq -r .orig_end)
	if [ "$where" = above ]; then
		isn=$(( (end + 1073741824) % 4294967296 ))
	else
		isn=$(( (end + 4294967296 - 1073741824) % 4294967296 ))
	fi
	reo0=$(stat conns_reopened)
	forge "$sp" "$isn"
	sleep 0.5
	expect_eq "time_wait ($where): the forged SYN reopened the tuple (conns_reopened)" \
		$(( $(stat conns_reopened) - reo0 )) 1
	note "time_wait ($where): after the forged SYN: $(row "$sp" | jq -c '{state, orig_end}')"
	syn0=$(stat syn_ignored)
	start_client "$sp" n $SIZE -
	finished "$sp"
	expect_eq "time_wait ($where): the real client's next connection from port $sp works" \
		"$OUT" "ok $SIZE"
	check "time_wait ($where): and is tracked to time_wait" wait_until 15 state_is "$sp" time_wait
	if [ "$where" = below ]; then
		expect_eq "time_wait (below): its SYN met the forged entry (syn_ignored)" \
			$(( $(stat syn_ignored) - syn0 )) 1
	fi
	# The forged incarnation would have its client's end a byte past the
	# forged ISN; the real one is a request line and an ACK past its own.
	check "time_wait ($where): the tracker follows the real client, not the forged ISN" \
		[ $(( ($(row "$sp" | jq -r .orig_end) - isn + 4294967296) % 4294967296 )) -gt 1048576 ]
}

time_wait_case 41004 above
time_wait_case 41005 below

finish
