#!/usr/bin/env bash
# `lbdrill replay` on captures nobody here produced (no lab: the replay is
# offline). scapy writes, against a configuration written here (VIP
# 198.18.0.100:80 and [2001:db8::100]:80, backends .11-.13), what tcpdump
# on someone else's network would record:
#   - an Ethernet capture: client <-> VIP conversations, plain and with IP
#     options, over one and two VLAN tags, with odd TCP options (unknown
#     kinds, lengths 0 and 1, an option running past the header), IPv6; and
#     beside them IPv4 and IPv6 fragments, UDP, ICMP, ARP, a too-deep VLAN
#     stack, records cut short by the snaplen (in the payload, in the TCP
#     header, in the IP header, in the Ethernet header), an EtherType that
#     disagrees with the IP version, malformed IP and TCP headers, TCP to no
#     service, a backend's reply with no connection;
#   - an Ethernet capture cut by a snaplen of 96 (headers whole, payloads
#     zero-filled), and one with records cut at every header boundary;
#   - the same kind of conversation in a Linux cooked (SLL) capture and in
#     raw-IP captures, each with its own kind of junk.
# Every packet the generator writes is tagged with what drill_trace.h says
# the replay does with it, and the generator derives the expected header
# lines ("records", "replayed", "skipped" by reason, "zero-filled") from the
# tags. The replay must not crash (exit 0 or 1, never a signal), must print
# exactly those lines, and its sweeps must find no takeover failure.
# Then broken files (cut mid-record, wrong magic, snaplen 0, empty, a
# directory, no packet of a service) must each give one clear line on stderr
# and exit status 2. Last, valgrind on one foreign capture and one broken
# file: no errors, no leaks.
set -u
. "$(dirname "$0")/lib.bash"

LBDRILL=${LAB_BUILD_DIR:-$REPO/build}/lbdrill
DIR=$(mktemp -d /tmp/drill-robust.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM

if [ ! -x "$LBDRILL" ]; then
	not_ok "no $LBDRILL (run make first)"
	exit 1
fi

CONF=$DIR/lb.conf
cat >"$CONF" <<'EOF'
services = (
  { vip = "198.18.0.100"; port = 80; scheduler = "rr";
    backends = ( { address = "198.18.1.11"; }, { address = "198.18.1.12"; },
                 { address = "198.18.1.13"; } ); },
  { vip = "2001:db8::100"; port = 80; scheduler = "rr";
    backends = ( { address = "2001:db8:1::11"; }, { address = "2001:db8:1::12"; },
                 { address = "2001:db8:1::13"; } ); }
);
EOF

# ---- the captures ----

# gen DIR: writes eth.pcap, sll.pcap, raw.pcap and for each NAME.expect, the
# header lines the replay must print for it.
gen() {
	$PY - "$1" <<'PYEOF'
import sys, struct, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import (Ether, Dot1Q, CookedLinux, ARP, IP, IPv6, IPv6ExtHdrFragment, TCP,
                       UDP, ICMP, Raw, IPOption_Router_Alert, fragment, fragment6, PcapWriter)

out = sys.argv[1]
C4, V4, B4 = "198.18.0.10", "198.18.0.100", "198.18.1.11"
C6, V6 = "2001:db8::10", "2001:db8::100"
SERVICES = {(V4, 80), (V6, 80)}
# What drill_trace does with a packet, and the name it counts a skip under
# (in the order of enum drill_trace_skip: the "skipped" line's order).
SKIP = [("link", "not IP"), ("trunc", "truncated headers"), ("malformed", "malformed"),
        ("fragment", "fragment"), ("nottcp", "not TCP"), ("noservice", "no service"),
        ("orphan", "reply before its connection")]

class Capture:
    def __init__(self, name, linktype, frame, snaplen=65535):
        """snaplen < 65535: every record is cut to that many bytes, as
        tcpdump -s does."""
        self.name, self.frame, self.snaplen = name, frame, snaplen
        self.w = PcapWriter("%s/%s.pcap" % (out, name), linktype=linktype, sync=True,
                            snaplen=snaplen)
        self.w.write_header(None)
        self.t = 1700000000.0
        self.records = self.replayed = self.zero = 0
        self.skips = {k: 0 for k, _ in SKIP}
        self.conns = set()

    def put(self, pkt, expect="replay", keep=None, wirelen=None, framed=False):
        """One record. expect: replay, zero (replayed, zero-filled) or a
        skip key. pkt is an IP packet that gets the capture's link header,
        or with framed a whole frame. keep: bytes captured, counted from
        the IP header (from the frame's start when framed); None: all."""
        raw = bytes(pkt if framed else self.frame(pkt))
        hdr = 0 if framed else len(raw) - len(bytes(pkt))
        data = raw if keep is None else raw[:hdr + keep]
        if len(data) > self.snaplen:
            data = data[:self.snaplen]
            if expect == "replay":
                expect = "zero"
        self.t += 0.0005
        sec = int(self.t)
        self.w.write_packet(data, sec=sec, usec=int(round((self.t - sec) * 1e6)),
                            wirelen=len(raw) if wirelen is None else wirelen)
        self.records += 1
        if expect in ("replay", "zero"):
            self.replayed += 1
            self.zero += expect == "zero"
            ip = pkt[IP] if IP in pkt else pkt[IPv6]
            tcp = pkt[TCP]
            if (ip.dst, tcp.dport) in SERVICES:
                self.conns.add((ip.src, tcp.sport, ip.dst, tcp.dport))
            else:
                self.conns.add((ip.dst, tcp.dport, ip.src, tcp.sport))
        else:
            self.skips[expect] += 1

    def close(self):
        self.w.close()
        total = sum(self.skips.values())
        line = "  skipped          %d" % total
        parts = ["%s %d" % (n, self.skips[k]) for k, n in SKIP if self.skips[k]]
        if parts:
            line += ": " + ", ".join(parts)
        with open("%s/%s.expect" % (out, self.name), "w") as f:
            f.write("  records          %d\n" % self.records)
            f.write("  replayed         %d packets in %d connections\n"
                    % (self.replayed, len(self.conns)))
            f.write(line + "\n")
            if self.zero:
                f.write("  zero-filled      %d (cut short by the capture's snaplen)\n" % self.zero)

def ip4(src, dst, **kw):
    return IP(src=src, dst=dst, **kw)

def ip6(src, dst, **kw):
    return IPv6(src=src, dst=dst, **kw)

def conversation(cap, mk, c, v, sport, req=300, resp=2000, syn_opts=None, expect=None,
                 data_opts=None):
    """A whole connection as a client-side capture sees it: handshake, a
    request, a response in 1000-byte segments, FIN both ways. mk builds the
    IP layer; expect maps a packet number to something else than replay."""
    expect = expect or {}
    ci, si = 1000 + sport * 7, 900000 + sport * 13
    opts = syn_opts if syn_opts is not None else \
        [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
    n = [0]
    def put(pkt):
        cap.put(pkt, **expect.get(n[0], {}))
        n[0] += 1
    def tcp(**kw):
        if data_opts is not None and "options" not in kw and "dataofs" not in kw:
            return TCP(dataofs=5 + len(data_opts) // 4, **kw) / Raw(data_opts)
        return TCP(**kw)
    if isinstance(opts, bytes):
        syn = TCP(sport=sport, dport=80, flags="S", seq=ci, window=64240,
                  dataofs=5 + len(opts) // 4) / Raw(opts)
    else:
        syn = TCP(sport=sport, dport=80, flags="S", seq=ci, window=64240, options=opts)
    put(mk(c, v) / syn)
    put(mk(v, c) / TCP(sport=80, dport=sport, flags="SA", seq=si, ack=ci + 1, window=65160,
                       options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]))
    ci += 1; si += 1
    put(mk(c, v) / tcp(sport=sport, dport=80, flags="A", seq=ci, ack=si, window=502))
    put(mk(c, v) / tcp(sport=sport, dport=80, flags="PA", seq=ci, ack=si, window=502)
        / Raw(b"G" * req))
    ci += req
    put(mk(v, c) / tcp(sport=80, dport=sport, flags="A", seq=si, ack=ci, window=502))
    for off in range(0, resp, 1000):
        put(mk(v, c) / tcp(sport=80, dport=sport, flags="PA", seq=si, ack=ci, window=502)
            / Raw(b"R" * 1000))
        si += 1000
        put(mk(c, v) / tcp(sport=sport, dport=80, flags="A", seq=ci, ack=si, window=502))
    put(mk(c, v) / tcp(sport=sport, dport=80, flags="FA", seq=ci, ack=si, window=502))
    put(mk(v, c) / tcp(sport=80, dport=sport, flags="FA", seq=si, ack=ci + 1, window=502))
    put(mk(c, v) / tcp(sport=sport, dport=80, flags="A", seq=ci + 1, ack=si + 1, window=502))

def junk_ip(cap):
    """Packets that are IP but nothing to replay."""
    for f in fragment(ip4(C4, V4) / TCP(sport=41000, dport=80, flags="PA", seq=5, ack=6)
                      / Raw(b"F" * 1200), fragsize=504):
        cap.put(f, "fragment")				# 3 IPv4 fragments
    for f in fragment6(ip6(C6, V6) / IPv6ExtHdrFragment() / TCP(sport=41001, dport=80,
                       flags="PA", seq=5, ack=6) / Raw(b"F" * 1400), 800):
        cap.put(f, "fragment")				# 2 IPv6 fragments
    cap.put(ip6(C6, V6) / IPv6ExtHdrFragment(offset=0, m=0, id=7)	# atomic fragment
            / TCP(sport=41002, dport=80, flags="S"), "fragment")
    cap.put(ip4(C4, V4) / UDP(sport=5353, dport=53) / Raw(b"q" * 30), "nottcp")
    cap.put(ip4(C4, V4) / ICMP(type=8) / Raw(b"ping"), "nottcp")
    cap.put(ip6(C6, V6, nh=59) / Raw(b"x" * 8), "nottcp")	# no next header
    cap.put(ip4(C4, V4) / TCP(sport=41003, dport=22, flags="S"), "noservice")
    cap.put(ip4("198.19.1.1", "198.19.2.2") / TCP(sport=80, dport=80, flags="A"), "noservice")
    cap.put(ip4(B4, C4) / TCP(sport=80, dport=41004, flags="SA", seq=1, ack=2), "orphan")
    bad = bytearray(bytes(ip4(C4, V4) / TCP(sport=41005, dport=80, flags="A")))
    bad[32] = 0x30					# data offset 3 words
    cap.put(IP(bytes(bad)), "malformed")
    bad = bytearray(bytes(ip4(C4, V4) / TCP(sport=41006, dport=80, flags="A")))
    bad[2:4] = b"\x00\x10"				# total length 16 < header
    cap.put(IP(bytes(bad)), "malformed")

# Odd TCP options in a SYN: an unknown kind, then a valid MSS and window
# scale, then kind 30 claiming 40 bytes (runs past the header).
ODD_SYN = b"\xfd\x06ABCD" + b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07" + b"\x1e\x28\x00\x00"
ZERO_LEN = b"\x02\x04\x05\xb4" + b"\x05\x00\x00\x00"	# MSS, then a SACK of length 0
ONE_LEN = b"\x01\x01\x08\x01"				# NOPs, then a length of 1
DATA_OPTS = b"\xfe\x04\xaa\xbb" + b"\x08\x0a\x00\x00"	# on every non-SYN segment

# ---- Ethernet ----
eth = Capture("eth", 1, lambda p: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01") / p)
conversation(eth, ip4, C4, V4, 40001)
conversation(eth, lambda s, d: IP(src=s, dst=d, options=[IPOption_Router_Alert()]),
             C4, V4, 40002)
conversation(eth, ip4, C4, V4, 40003, syn_opts=ODD_SYN, data_opts=DATA_OPTS)
conversation(eth, ip4, C4, V4, 40004, syn_opts=ZERO_LEN)
conversation(eth, ip4, C4, V4, 40005, syn_opts=ONE_LEN)
conversation(eth, ip6, C6, V6, 40006)
eth.frame = lambda p: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01") / Dot1Q(vlan=7) / p
conversation(eth, ip4, C4, V4, 40009)			# one 802.1Q tag
eth.frame = lambda p: (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01", type=0x88a8)
                       / Dot1Q(vlan=100, type=0x8100) / Dot1Q(vlan=7) / p)
conversation(eth, ip4, C4, V4, 40010)			# QinQ
eth.frame = lambda p: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01") / p
junk_ip(eth)
E = Ether(src="02:00:00:00:00:0a", dst="ff:ff:ff:ff:ff:ff")
eth.put(E / ARP(psrc=C4, pdst=V4), "link", framed=True)
deep = E
for i in range(9):
    deep = deep / Dot1Q(vlan=i + 1)
eth.put(deep / ip4(C4, V4) / TCP(sport=41007, dport=80, flags="S"), "link", framed=True)
eth.put(E / ip4(C4, V4) / TCP(sport=41008, dport=80, flags="S"), "link", framed=True,
        keep=10)						# cut inside the Ethernet header
eth.put(Ether(type=0x0800) / ip6(C6, V6) / TCP(sport=41009, dport=80, flags="S"), "link",
        framed=True)					# EtherType IPv4, an IPv6 packet
eth.put(E / ip4(C4, V4) / TCP(sport=41010, dport=80, flags="S"), "link", framed=True,
        wirelen=20)					# wire length below the captured one
eth.close()

# ---- Ethernet, cut short by a snaplen ----
# tcpdump -s 96: the headers of every packet here fit, payloads are cut.
ETH = lambda p: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01") / p
snap = Capture("snap96", 1, ETH, snaplen=96)
conversation(snap, ip4, C4, V4, 44001)
conversation(snap, lambda s, d: IP(src=s, dst=d, options=[IPOption_Router_Alert()]),
             C4, V4, 44002, syn_opts=ODD_SYN)
conversation(snap, ip6, C6, V6, 44003)
snap.close()
# Records cut at every boundary: in the payload, at the end of the TCP
# header (both zero-filled and replayed); in the TCP options, in the fixed
# TCP header, in the IP header (drill_trace.h: "cut short before the end of
# the TCP header", skipped as truncated headers).
cut = Capture("snapcut", 1, ETH)
conversation(cut, ip4, C4, V4, 45001, data_opts=b"\x01\x01\x08\x0a" + b"\x00" * 8,
             expect={3: dict(expect="zero", keep=20 + 32 + 10),
                     5: dict(expect="zero", keep=20 + 32),
                     6: dict(expect="trunc", keep=20 + 24),
                     7: dict(expect="trunc", keep=20 + 14),
                     8: dict(expect="trunc", keep=20 + 10),
                     9: dict(expect="trunc", keep=10)})
conversation(cut, ip6, C6, V6, 45002, expect={5: dict(expect="zero", keep=40 + 20 + 1),
                                              7: dict(expect="trunc", keep=40 + 8),
                                              8: dict(expect="trunc", keep=30)})
cut.close()

# ---- Linux cooked (SLL) ----
def sll(p, proto=None):
    if proto is None:
        proto = 0x86dd if IPv6 in p else 0x0800
    return CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x0a\0\0",
                       proto=proto) / p
cooked = Capture("sll", 113, sll)
conversation(cooked, ip4, C4, V4, 42001)
conversation(cooked, ip6, C6, V6, 42002)
conversation(cooked, lambda s, d: IP(src=s, dst=d, options=[IPOption_Router_Alert()]),
             C4, V4, 42003, syn_opts=ODD_SYN)
junk_ip(cooked)
cooked.put(sll(ARP(psrc=C4, pdst=V4), 0x0806), "link", framed=True)
cooked.put(sll(ip4(C4, V4) / TCP(sport=42004, dport=80, flags="S")), "link", framed=True,
           keep=12)						# cut inside the cooked header
cooked.put(sll(ip4(C4, V4) / TCP(sport=42005, dport=80, flags="S"), 0x86dd), "link",
           framed=True)					# says IPv6, is IPv4
cooked.close()

# ---- raw IP (LINKTYPE_RAW) ----
raw = Capture("raw", 101, lambda p: p)
conversation(raw, ip4, C4, V4, 43001)
conversation(raw, ip6, C6, V6, 43002, expect={5: dict(expect="zero", keep=40 + 20)})
junk_ip(raw)
raw.put(Raw(b"\x50" + b"\x00" * 39), "link", framed=True)	# version 5
raw.close()

# ---- raw IP, with one kind of junk (the "skipped" line's first reason is
# not the first of the enum) ----
udp = Capture("rawudp", 101, lambda p: p)
conversation(udp, ip4, C4, V4, 46001)
udp.put(ip4(C4, V4) / UDP(sport=5353, dport=53) / Raw(b"q" * 30), "nottcp")
udp.put(ip4(C4, V4) / ICMP(type=8) / Raw(b"ping"), "nottcp")
udp.close()
PYEOF
}

# patch FILE OFFSET HEXBYTES: overwrites bytes of FILE in place.
patch() {
	local hex=$3 esc=
	while [ -n "$hex" ]; do esc+="\\x${hex:0:2}"; hex=${hex:2}; done
	printf '%b' "$esc" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# run NAME ARGS...: the replay, its stdout in $DIR/NAME.out, stderr in
# $DIR/NAME.err; sets RC.
run() {
	local name=$1; shift
	"$LBDRILL" replay "$@" >"$DIR/$name.out" 2>"$DIR/$name.err"
	RC=$?
}

# no_crash DESC: RC is 0 or 1 (not a signal, not an error).
no_crash() {
	if [ "$RC" -eq 0 ] || [ "$RC" -eq 1 ]; then ok "$1 (exit $RC)"
	else not_ok "$1 (exit $RC: $(head -c 300 "$DIR/$name.err" 2>/dev/null))"; fi
}

t0=$(date +%s%N)
if ! gen "$DIR" >"$DIR/gen.log" 2>&1; then
	not_ok "scapy writes the captures"
	sed 's/^/# /' "$DIR/gen.log"
	exit 1
fi
ok "scapy writes the captures ($(cd "$DIR" && echo ./*.pcap))"

for cap in eth snap96 snapcut sll raw rawudp; do
	f=$DIR/$cap.pcap
	name=$cap
	run "$cap" --pcap "$f" --config "$CONF"
	no_crash "$cap: replay with a failover in the middle"
	check "$cap: its link type is named ($(head -1 "$DIR/$cap.out"))" \
		grep -qE '\((EN10MB|LINUX_SLL|RAW)\)$' "$DIR/$cap.out"
	while IFS= read -r want; do
		key=$(awk '{ print $1 }' <<<"$want")
		got=$(grep -E "^  $key " "$DIR/$cap.out" | head -1)
		expect_eq "$cap: $key line" "$got" "$want"
	done <"$DIR/$cap.expect"
	grep -q '^  zero-filled' "$DIR/$cap.expect" ||
		expect_eq "$cap: no zero-filled line" "$(grep -c '^  zero-filled' "$DIR/$cap.out")" 0
	expect_eq "$cap: nothing on stderr" "$(cat "$DIR/$cap.err")" ""
	# Whole conversations: the reference forwards every packet it replays.
	[ "$cap" = snapcut ] ||
		check "$cap: the reference forwards everything ($(grep '^  reference' "$DIR/$cap.out" | sed 's/^ *//'))" \
			grep -qE '^  reference +forwarded [0-9]+, dropped 0$' "$DIR/$cap.out"

	run "$cap-sweep" --pcap "$f" --config "$CONF" --sweep
	name=$cap-sweep
	no_crash "$cap: async sweep"
	check "$cap: async sweep, takeover failures 0" \
		grep -qx '  takeover failures 0' "$DIR/$cap-sweep.out"
	note "$cap async sweep: $(grep -E '^  unsynchronised' "$DIR/$cap-sweep.out" | sed 's/^ *//')"
	run "$cap-defer" --pcap "$f" --config "$CONF" --sweep --defer
	expect_eq "$cap: defer sweep loses nothing (exit)" "$RC" 0
	check "$cap: defer sweep, takeover failures 0 and nothing unsynchronised" \
		grep -q '^  unsynchronised   0 connections' "$DIR/$cap-defer.out"
done

# ---- broken files: one line on stderr, exit 2 ----

# broken DESC FILE PATTERN: the replay of FILE must fail with exit 2 and
# exactly one line on stderr that names FILE and matches PATTERN.
broken() {
	local desc=$1 file=$2 pat=$3 err
	run broken --pcap "$file" --config "$CONF"
	err=$(cat "$DIR/broken.err")
	if [ "$RC" -eq 2 ] && [ "$(wc -l <"$DIR/broken.err")" -eq 1 ] &&
		grep -qF -- "$file" <<<"$err" && grep -qE -- "$pat" <<<"$err"; then
		ok "$desc: exit 2, '$err'"
	else
		not_ok "$desc: exit $RC, stderr '$err' (want exit 2, one line naming the file, /$pat/)"
	fi
	check "$desc: nothing on stdout" [ ! -s "$DIR/broken.out" ]
}

size=$(command stat -c %s "$DIR/eth.pcap")	# lib.bash has its own stat
head -c $((size - 37)) "$DIR/eth.pcap" >"$DIR/cut.pcap"
broken "a file cut mid-record" "$DIR/cut.pcap" 'record [0-9]+: .*truncated'
head -c 60 "$DIR/eth.pcap" >"$DIR/cut-early.pcap"
broken "a file cut in the first record" "$DIR/cut-early.pcap" 'record 1: .*truncated'
head -c 20 "$DIR/eth.pcap" >"$DIR/cut-header.pcap"
broken "a file cut in its header" "$DIR/cut-header.pcap" 'truncated|header'
cp "$DIR/eth.pcap" "$DIR/magic.pcap"
patch "$DIR/magic.pcap" 0 deadbeef
broken "a wrong magic number" "$DIR/magic.pcap" 'not a pcap or pcapng file'
cp "$DIR/eth.pcap" "$DIR/snap0.pcap"
patch "$DIR/snap0.pcap" 16 00000000
broken "snaplen 0 in the header" "$DIR/snap0.pcap" 'snaplen 0'
: >"$DIR/empty.pcap"
broken "an empty file" "$DIR/empty.pcap" 'empty file'
mkdir "$DIR/adir.pcap"
broken "a directory" "$DIR/adir.pcap" 'not a regular file'
broken "a missing file" "$DIR/missing.pcap" 'No such file'
head -c 24 "$DIR/eth.pcap" >"$DIR/header-only.pcap"
broken "a header and no record" "$DIR/header-only.pcap" 'no TCP packet of a configured service \(0 records\)'
cp "$DIR/eth.pcap" "$DIR/dlt.pcap"
patch "$DIR/dlt.pcap" 20 69000000			# LINKTYPE_IEEE802_11 (105)
broken "an unsupported link type" "$DIR/dlt.pcap" 'link type 105 .*not supported'

# ---- valgrind ----
if command -v valgrind >/dev/null; then
	for f in eth.pcap snap0.pcap cut.pcap; do
		valgrind -q --error-exitcode=9 --leak-check=full \
			"$LBDRILL" replay --pcap "$DIR/$f" --config "$CONF" --sweep --every 7 \
			>/dev/null 2>"$DIR/vg.err"
		rc=$?
		if [ "$rc" -ne 9 ] && [ "$rc" -lt 128 ] && ! grep -q '^==[0-9]*==' "$DIR/vg.err"; then
			ok "valgrind: $f clean (exit $rc)"
		else
			not_ok "valgrind: $f (exit $rc)"
			grep '^==' "$DIR/vg.err" | head -30 | sed 's/^/# /'
		fi
	done
else
	note "valgrind not installed: skipped"
fi
note "drill_robustness took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
finish
