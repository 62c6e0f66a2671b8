#!/usr/bin/python3
"""Each stream's stall across a failover as the client's kernel saw it.

  drill/wire_stalls.py DRILL.json CLIENT.pcap [--event N] [--client ADDR]
                       [--json OUT]

`lbdrill live` times a stall by the client kernel's receive stamps, in
the order its application reads the bytes; this gives a second opinion
from a capture, counting any new data as progress (also data beyond a
hole, which the drill counts only once the hole is filled, so this figure
can be the lower one). CLIENT.pcap, taken on the client while the drill ran
(`tcpdump -w CLIENT.pcap 'tcp and host ADDR'` suffices), holds the
segments the client received: each one that carries data beyond what the
stream had received before is a moment new data reached the client. (The
client's own ACKs would not do: a delayed ACK can leave the client in the
middle of the outage for data received before it.) A stream's stall on
the wire is the gap between two such moments that spans the outage. The
outage is found in the capture itself, not from the drill's moments (a
watch's stamp can be late on a busy machine): among the gaps longer than
15 ms that overlap the failover (from its command's start to 2 s after it
ended), the moment the most streams were silent at once (of several, the
one whose gaps are longest together); nothing crosses a dead node, so
every stream is. A stream with no gap there is not counted
as seen. Streams are matched by the client's port (the timeline's "port");
times are aligned by a watch line the drill stamped at its source
("@EPOCH ..."), so the drill needs one (deploy/lab watch prints them).
IPv4 over Ethernet or Linux cooked captures; prints one line per kind of
stream and, with --json, every stream's figure.
"""
import argparse
import json
import statistics
import struct
import sys

PCAP_US, PCAP_NS = 0xA1B2C3D4, 0xA1B23C4D
# A gap counts from one and a half of the drill's 10 ms pacing ticks: above
# pacing, and below any outage (VRRP needs 3 adverts: 30 ms at advert_int
# 0.01, where the streams' stalls were 28-35 ms and 30 ms missed some).
MIN_GAP_S = 0.015
LINK_ETHERNET, LINK_SLL = 1, 113


def fail(msg):
    print("wire_stalls: %s" % msg, file=sys.stderr)
    sys.exit(2)


def seq_after(a, b):
    """a is after b in sequence space."""
    return a != b and ((a - b) & 0xFFFFFFFF) < 0x80000000


def read_data(path, client):
    """Yields (time, client port, end) of the TCP segments to the client that
    carry data; end is the sequence number after their last byte."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            fail("%s: not a pcap file" % path)
        magic = struct.unpack("<I", head[:4])[0]
        if magic not in (PCAP_US, PCAP_NS):
            fail("%s: not a little-endian pcap file (magic %#x)" % (path, magic))
        scale = 1e-9 if magic == PCAP_NS else 1e-6
        link = struct.unpack("<I", head[20:24])[0]
        if link not in (LINK_ETHERNET, LINK_SLL):
            fail("%s: link type %d (Ethernet or Linux cooked only)" % (path, link))
        l2 = 14 if link == LINK_ETHERNET else 16
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack("<IIII", rec)
            data = f.read(incl)
            if len(data) < l2 + 20 or data[l2 - 2:l2] != b"\x08\x00":
                continue
            ip = data[l2:]
            ihl = (ip[0] & 15) * 4
            if ip[0] >> 4 != 4 or ip[9] != 6 or len(ip) < ihl + 14 or ip[16:20] != client:
                continue
            tcp = ip[ihl:]
            # The IP header's length, not the captured one (-s cuts the data).
            payload = struct.unpack(">H", ip[2:4])[0] - ihl - (tcp[12] >> 4) * 4
            if payload <= 0:
                continue
            dport = struct.unpack(">H", tcp[2:4])[0]
            seq = struct.unpack(">I", tcp[4:8])[0]
            yield sec + frac * scale, dport, (seq + payload) & 0xFFFFFFFF


def clock_offset(drill):
    """epoch - drill time, from a watch line stamped at its source."""
    for m in drill.get("marks", []):
        line = m.get("line", "")
        if line.startswith("@"):
            try:
                return float(line[1:].split()[0]) - m["t_s"]
            except (ValueError, IndexError, KeyError):
                continue
    fail("the drill's JSON has no stamped watch line (@EPOCH ...) to align the capture with")
    return 0.0


def stalls(drill, pcap, event, client):
    events = drill.get("events", [])
    if not 0 <= event < len(events):
        fail("the drill has no failover %d (it has %d)" % (event, len(events)))
    ev = events[event]
    off = clock_offset(drill)
    lo, hi = ev["at_s"] + off, ev["end_s"] + 2.0 + off
    kinds = {s["port"]: s["kind"] for s in drill["timeline"]["streams"]}
    last, gaps, segments = {}, [], 0
    for t, port, end in read_data(pcap, client):
        segments += 1
        if port not in kinds:
            continue
        prev = last.get(port)
        if prev is None or seq_after(end, prev[0]):
            if prev is not None and t - prev[1] > MIN_GAP_S and prev[1] <= hi and t >= lo:
                gaps.append((prev[1], t, port))
            last[port] = (end, t)
    if not segments:
        fail("%s holds no data segment to the client (take it with 'tcp and host ADDR')" % pcap)
    moment = busiest_moment(gaps)
    gap = {}
    for a, b, port in gaps:
        if a <= moment <= b:
            gap[port] = max(gap.get(port, 0.0), (b - a) * 1e3)
    return kinds, gap


def busiest_moment(gaps):
    """The moment inside the most gaps at once (None: no gap). Among such
    moments, the one whose gaps are longest together: a short pause of
    every stream near the failover (the machine busy as the command
    starts) is not the outage."""
    edges = sorted([(a, 1, b - a) for a, b, _ in gaps] + [(b, -1, b - a) for a, b, _ in gaps],
                   key=lambda e: (e[0], -e[1]))
    best, n, total, moment = (0, 0.0), 0, 0.0, None
    for t, d, length in edges:
        n += d
        total += d * length
        if d > 0 and (n, total) > best:
            best, moment = (n, total), t
    return moment


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("drill")
    ap.add_argument("pcap")
    ap.add_argument("--event", type=int, default=0)
    ap.add_argument("--client", default="198.18.0.10")
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        client = bytes(int(x) for x in a.client.split("."))
        if len(client) != 4:
            raise ValueError
    except ValueError:
        fail("--client %s: an IPv4 address" % a.client)
    try:
        with open(a.drill) as f:
            drill = json.load(f)
        kinds, gap = stalls(drill, a.pcap, a.event, client)
    except (OSError, ValueError, KeyError) as e:
        fail(str(e))
    out = {"event": a.event, "streams": {str(p): round(g, 3) for p, g in sorted(gap.items())}}
    for kind in sorted(set(kinds.values())):
        v = sorted(gap[p] for p in kinds if kinds[p] == kind and p in gap)
        n = sum(1 for p in kinds if kinds[p] == kind)
        out[kind] = {"streams": n, "seen": len(v),
                     "longest_ms": round(v[-1], 1) if v else None,
                     "shortest_ms": round(v[0], 1) if v else None,
                     "p50_ms": round(statistics.median(v), 1) if v else None}
        print("wire %-4s %d of %d streams seen, longest stall %s ms, p50 %s ms"
              % (kind, len(v), n, out[kind]["longest_ms"], out[kind]["p50_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
