#!/usr/bin/env bash
# Strict tracking against crafted packets (scapy, from the client's
# namespace): a mid-stream segment that belongs to no connection, and RSTs
# outside the window of a live connection, are dropped and counted while the
# real connection carries on and delivers every byte.
set -u
. "$(dirname "$0")/lib.bash"
lab_start crafted

WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)

# send_tcp SRC SPORT DST DPORT FLAGS SEQ [ACK]: one crafted segment.
send_tcp() {
	lab_exec client $PY - "$@" <<'PYEOF'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, IPv6, TCP, send
src, sport, dst, dport, flags, seq = sys.argv[1:7]
ack = int(sys.argv[7]) if len(sys.argv) > 7 else 0
ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
send(ip / TCP(sport=int(sport), dport=int(dport), flags=flags, seq=int(seq), ack=ack),
     verbose=0)
PYEOF
}

# Mid-stream segments with no entry, IPv4 and IPv6.
before=$(stat drop_no_conn)
send_tcp 198.18.0.10 40001 198.18.0.100 80 A 1000 2000
send_tcp 198.18.0.10 40002 198.18.0.100 80 PA 5000 6000
send_tcp 2001:db8::10 40003 2001:db8::100 80 A 1000 2000
sleep 0.3
expect_eq "3 mid-stream segments without an entry dropped as drop_no_conn" \
	$(( $(stat drop_no_conn) - before )) 3
expect_eq "no connection was created for them" "$(stat conns_created)" 0

# A real download, slowed down so the RSTs land while it runs.
for fam in 4 6; do
	vip=198.18.0.100; client=198.18.0.10; url=http://198.18.0.100/blob
	[ $fam = 6 ] && { vip=2001:db8::100; client=2001:db8::10; url='http://[2001:db8::100]/blob'; }
	out=$(mktemp)
	lab_exec client sh -c "curl -s -m 60 --limit-rate 16M '$url' | sha256sum" >"$out" &
	dl=$!
	line=""
	wait_until 5 sh -c "'$LAB' ctl lb1 conns | grep -q 'state=established'" &&
		line=$(ctl conns | grep 'state=established' | head -1)
	cport=$(sed -E 's/.*client=\[?[0-9a-f.:]+\]?:([0-9]+) .*/\1/' <<<"$line")
	cend=$(sed -E 's/.*orig_end=([0-9]+) .*/\1/' <<<"$line")
	check "IPv$fam: download established (client port $cport)" [ -n "$line" ]
	before=$(stat drop_bad_rst)
	# Far beyond the window, and a window behind the start of what was sent.
	send_tcp "$client" "$cport" "$vip" 80 R $(( (cend + 1073741824) % 4294967296 ))
	send_tcp "$client" "$cport" "$vip" 80 RA $(( (cend + 3221225472) % 4294967296 )) 1
	sleep 0.3
	expect_eq "IPv$fam: 2 out-of-window RSTs dropped as drop_bad_rst" \
		$(( $(stat drop_bad_rst) - before )) 2
	state=$(ctl conns | grep -F ":$cport " | sed -E 's/.*state=([a-z_]+).*/\1/')
	expect_eq "IPv$fam: the connection is still established" "$state" established
	wait "$dl"
	expect_eq "IPv$fam: the download completed intact after the RSTs" "$(cut -d' ' -f1 "$out")" "$WANT"
	rm -f "$out"
done
finish
