/*
 * drill_pcap: reads the IP packets out of a capture file, for the drills
 * that replay traffic through an engine offline (lbd's `capture` files, or
 * tcpdump's).
 *
 * libpcap reads the file (pcap, nanosecond pcap, or pcapng with one link
 * type); this module strips the link-layer header of each record and
 * returns what starts at the IP header. Link types:
 *
 *   EN10MB       Ethernet II, under up to DRILL_PCAP_MAX_VLANS 802.1Q
 *                (0x8100), 802.1ad (0x88a8) or old QinQ (0x9100) tags,
 *                and PPPoE sessions (0x8864) carrying IPv4 or IPv6
 *   RAW          raw IP (LINKTYPE_RAW, 101): the version nibble says which
 *   IPV4, IPV6   raw IP of one version (LINKTYPE_IPV4 228, LINKTYPE_IPV6 229)
 *   LINUX_SLL    Linux cooked v1: 16 bytes, the EtherType at offset 14
 *   LINUX_SLL2   Linux cooked v2: 20 bytes, the EtherType at offset 0
 *   NULL, LOOP   BSD loopback: a 4-byte address family (NULL in the writer's
 *                byte order, LOOP big-endian; both orders are accepted)
 *
 * Any other link type fails the open. Records that carry no IPv4 or IPv6
 * packet are skipped and counted by reason (drill_pcap_skipped()), never
 * returned. A record whose capture was truncated (snaplen) is returned,
 * with caplen < wirelen, and counted (drill_pcap_truncated()): whether to
 * use it is the caller's decision. Nothing in a record is trusted: every
 * offset is checked against the captured length.
 *
 * Errors are one line, naming the file and, for a damaged record, its
 * number: "x.pcap: record 3: truncated dump file; ...".
 */
#ifndef DRILL_PCAP_H
#define DRILL_PCAP_H

#include <stddef.h>
#include <stdint.h>

#define DRILL_PCAP_MAX_VLANS 8		/* deeper tag stacks are skipped */

struct drill_pcap;			/* opaque */

/* Why a record was skipped; the index of drill_pcap_skipped()'s counters. */
enum drill_pcap_skip {
	DRILL_PCAP_SKIP_NOT_IP,		/* ARP, LLC, another EtherType or family */
	DRILL_PCAP_SKIP_SHORT,		/* ends before its IP header's first byte */
	DRILL_PCAP_SKIP_VLAN_DEPTH,	/* more than DRILL_PCAP_MAX_VLANS tags */
	DRILL_PCAP_SKIP_IP_VERSION,	/* link header says IPv4/IPv6, the
					 * version nibble says otherwise */
	DRILL_PCAP_SKIP_BAD_LEN,	/* wire length below the captured length */
	DRILL_PCAP_SKIP_COUNT
};

struct drill_pcap_pkt {
	const uint8_t *data;	/* starts at the IP header; valid until the next call */
	size_t caplen;		/* bytes captured from the IP header on */
	size_t wirelen;		/* bytes on the wire from the IP header on (> caplen
				 * when the capture truncated it) */
	uint64_t ts_us;		/* capture timestamp, microseconds */
	uint64_t index;		/* record number in the file, from 1 */
};

/*
 * Opens a capture file (a regular file). Returns the reader, or NULL with a
 * one-line message in err: the file is missing or unreadable, is no capture
 * libpcap knows (wrong magic), its header is cut short, its header's
 * snaplen is 0, or its link type is not one of the above (named).
 */
struct drill_pcap *drill_pcap_open(const char *path, char *err, size_t errlen);

/*
 * The next IP packet: returns 1 and fills pkt, 0 at the end of the file, or
 * -1 with a one-line message in err (a record cut off by the end of the
 * file, or a damaged one); after 0 or -1 every later call returns the same.
 * Skipped records are counted on the way.
 */
int drill_pcap_next(struct drill_pcap *p, struct drill_pcap_pkt *pkt, char *err, size_t errlen);

/* Records skipped for why so far; 0 for a reason out of range. */
uint64_t drill_pcap_skipped(const struct drill_pcap *p, enum drill_pcap_skip why);

/* A reason's name ("not_ip", "short", ...); "unknown" out of range. */
const char *drill_pcap_skip_name(enum drill_pcap_skip why);

/* Packets returned so far with caplen < wirelen. */
uint64_t drill_pcap_truncated(const struct drill_pcap *p);

/* The file's link type as libpcap names it, e.g. "EN10MB", "RAW", "LINUX_SLL2". */
const char *drill_pcap_linktype(const struct drill_pcap *p);

/* Closes the file and frees; NULL is fine. */
void drill_pcap_close(struct drill_pcap *p);

#endif
