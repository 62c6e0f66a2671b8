"""A stand-in sync peer for sync_hardening.sh, run inside a lab namespace.

  sync_peer.py sniff IFACE SRC SECONDS OUT    record the sync datagrams SRC:7788 sends
  sync_peer.py replay FILE SRC DST           send them again, from SRC:7788 to DST:7788
  sync_peer.py huge KEY SRC DST NODE EPOCH PEER_EPOCH
                                             authenticated datagrams (the pair's key)
                                             with sequence numbers at 2^64 - 1

Datagrams go out through a raw socket that writes the UDP header itself,
so they come from the sync port lbd holds (lbd drops any other source
before the HMAC). The protobuf is written by hand: a few varint fields.
"""
import hashlib
import hmac
import socket
import struct
import sys
import time

PORT = 7788
PREFIX = b"LB\x01\x00"
TOP = 2**64 - 1


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, value):
    if isinstance(value, bytes):
        return varint(num << 3 | 2) + varint(len(value)) + value
    return varint(num << 3) + varint(value)


def packet(node, epoch, msg_seq, body_field, body):
    return field(1, node) + field(2, epoch) + field(3, msg_seq) + field(body_field, body)


def seal(key, body):
    dgram = PREFIX + body
    return dgram + hmac.new(key, dgram, hashlib.sha256).digest()


def send_from(src, dst, payloads):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.bind((src, 0))
    for p in payloads:
        s.sendto(struct.pack("!HHHH", PORT, PORT, 8 + len(p), 0) + p, (dst, 0))
        time.sleep(0.002)


def sniff(iface, src, seconds, out):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((iface, 0))
    s.settimeout(0.2)
    end = time.time() + float(seconds)
    got = []
    while time.time() < end:
        try:
            pkt = s.recv(70000)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if pkt[9] != 17 or socket.inet_ntoa(pkt[12:16]) != src:
            continue
        sport, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
        if sport == PORT and dport == PORT:
            got.append(pkt[ihl + 8:ihl + ulen])
    with open(out, "wb") as f:
        for p in got:
            f.write(struct.pack("!I", len(p)) + p)
    print(len(got))


def replay(path, src, dst):
    payloads = []
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i + 4 <= len(data):
        (n,) = struct.unpack("!I", data[i:i + 4])
        payloads.append(data[i + 4:i + 4 + n])
        i += 4 + n
    send_from(src, dst, payloads)
    print(len(payloads))


def huge(keyfile, src, dst, node, epoch, peer_epoch):
    with open(keyfile, "rb") as f:
        key = f.read()
    node, epoch, peer_epoch = int(node), int(epoch), int(peer_epoch)
    hb = lambda last, acked: field(1, last) + field(2, peer_epoch) + field(3, acked) + \
        field(4, 1) + field(5, 1)
    bodies = [
        packet(node, epoch, TOP, 5, hb(0, 0)),                      # msg_seq
        packet(node, epoch, 1, 5, hb(TOP, 0)),                      # last_data_seq
        packet(node, epoch, 1, 5, hb(0, TOP)),                      # acked
        packet(node, epoch, 1, 4, field(1, TOP) + field(3, b"x")),  # data_seq
        packet(node, epoch, 1, 7, field(1, peer_epoch) + field(2, TOP)),  # Ack
        packet(node, epoch, 1, 9, field(1, TOP)),                   # Gone
    ]
    send_from(src, dst, [seal(key, b) for b in bodies])
    print(len(bodies))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"sniff": sniff, "replay": replay, "huge": huge}[cmd](*args)
