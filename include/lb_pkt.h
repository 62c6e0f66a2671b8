/*
 * lb_pkt: parsing of the IPv4/IPv6 + TCP packets the engine handles.
 *
 * The parser reads a packet that starts at its IP header (as NFQUEUE and raw
 * captures deliver it) through a bounds-checked cursor and fills a
 * struct lb_pkt_info: where the headers are, the tuple, and the TCP fields the
 * tracker needs. It never writes to the packet. Every reason to refuse a
 * packet is an enum value, which the engine uses as its drop counter index.
 *
 *   IPv4 header (RFC 791)          IPv6 header (RFC 8200)
 *   +-------+-------+-------------+ +-------+---------------------+
 *   |v4|IHL| TOS   | total len   | |v6|TC | flow label          |
 *   | id            |flags|frag off| | payload len  |next hdr|hops|
 *   | TTL   | proto | hdr csum    | | source (16)                 |
 *   | source                      | | destination (16)            |
 *   | destination                 | +-----------------------------+
 *   | options (IHL*4 - 20)        |   extension headers (hop-by-hop,
 *   +-----------------------------+   routing, destination) skipped
 *
 * Fragments are refused: without reassembly a non-first fragment has no
 * ports, and balancing does not reassemble (the kernel's conntrack is kept
 * out of these flows).
 */
#ifndef LB_PKT_H
#define LB_PKT_H

#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"

enum lb_pkt_result {
	LB_PKT_OK = 0,
	LB_PKT_TRUNCATED,	/* shorter than its headers say */
	LB_PKT_BAD_IP,		/* version, header or total length inconsistent */
	LB_PKT_FRAGMENT,	/* IPv4 fragment or IPv6 fragment header */
	LB_PKT_NOT_TCP,		/* another protocol, or an unknown IPv6 extension */
	LB_PKT_BAD_TCP,		/* TCP header length out of bounds */
	LB_PKT_RESULT_COUNT
};

#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_PSH 0x08
#define LB_TCP_ACK 0x10
#define LB_TCP_URG 0x20

#define LB_PKT_NO_WSCALE 0xff

struct lb_pkt_info {
	struct lb_tuple tuple;	/* as on the wire, ports in host order */
	uint16_t l4_off;	/* offset of the TCP header */
	uint16_t tcp_hlen;	/* TCP header length with options */
	uint32_t l4_len;	/* TCP header + payload, from the IP length */
	uint32_t ip_len;	/* the packet's length per its IP header */
	uint32_t payload_len;
	uint32_t seq;
	uint32_t ack;
	uint16_t win;		/* raw, unscaled */
	uint8_t flags;		/* LB_TCP_* */
	uint8_t wscale;		/* window scale option, or LB_PKT_NO_WSCALE */
	uint16_t mss;		/* MSS option, or 0 */
};

/*
 * Parses len bytes at data. Returns LB_PKT_OK and fills *info, or the reason
 * the packet cannot be handled (then *info is unspecified). TCP options are
 * read only on SYN segments, and a malformed option list ends option parsing
 * without refusing the packet (the end hosts decide about options).
 */
enum lb_pkt_result lb_pkt_parse(const uint8_t *data, size_t len, struct lb_pkt_info *info);

/* A short name for each result, for counters and logs. */
const char *lb_pkt_result_name(enum lb_pkt_result r);

/*
 * Rewrites the destination (dst_side true) or the source address and port of
 * a parsed packet in place, and fixes the checksums.
 *
 * When csum_partial is true the TCP checksum field holds only the
 * pseudo-header sum that a sender offloading checksums leaves (NFQUEUE's
 * NFQA_SKB_CSUMNOTREADY); the kernel takes a modified packet back as
 * CHECKSUM_NONE, so a complete checksum over the whole segment is written.
 * Otherwise the checksum was complete and is updated incrementally
 * (RFC 1624), which costs the same for 40 bytes as for 64 KiB.
 * The IPv4 header checksum is always updated incrementally.
 */
void lb_pkt_nat(uint8_t *data, const struct lb_pkt_info *info, int dst_side,
		const struct lb_addr *addr, uint16_t port, int csum_partial);

/*
 * True when the TCP checksum of a parsed packet is complete and correct.
 * Only for packets whose checksum the sender completed: a CHECKSUM_PARTIAL
 * packet holds the pseudo-header sum and fails.
 */
int lb_pkt_tcp_csum_ok(const uint8_t *data, const struct lb_pkt_info *info);

/* Writes a complete TCP checksum for the packet, from scratch. */
void lb_pkt_tcp_csum_full(uint8_t *data, const struct lb_pkt_info *info);

#endif
