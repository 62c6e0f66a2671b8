/*
 * pktbuild: crafts IPv4 and IPv6 TCP packets for the unit tests, and checks
 * their checksums with a reference written from scratch.
 *
 * The reference (pb_ref_*) is deliberately naive and shares nothing with
 * lb/csum.c or lb/pkt.c: RFC 1071 as a loop over 16-bit big-endian words,
 * and its own walk over the IP header (and IPv6 extension headers) to find
 * the TCP segment. A packet verifies when the IPv4 header checksum and the
 * TCP checksum over the pseudo-header both sum to 0xffff.
 *
 * Checksum modes of pb_build():
 *   PB_CSUM_COMPLETE  the TCP checksum as a sender computes it
 *   PB_CSUM_PARTIAL   only the folded, non-complemented pseudo-header sum,
 *                     as Linux leaves it for CHECKSUM_PARTIAL packets
 *                     (th->check = ~csum_tcpudp_magic(saddr, daddr, len,
 *                     IPPROTO_TCP, 0))
 *   PB_CSUM_ZERO      zero in the field (for parser tests)
 *
 * Header only: every function is static inline so that a test file which
 * uses only some of them compiles without unused-function warnings.
 */
#ifndef TESTS_LB_PKTBUILD_H
#define TESTS_LB_PKTBUILD_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum pb_csum { PB_CSUM_COMPLETE = 0, PB_CSUM_PARTIAL, PB_CSUM_ZERO };

#define PB_NO_OPT (-1)

struct pb_spec {
	int family;			/* AF_INET (default when 0) or AF_INET6 */
	const char *src, *dst;		/* numeric addresses */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;			/* LB_TCP_* bits */
	uint16_t win;
	uint32_t payload_len;
	const uint8_t *payload;		/* NULL: a pattern keyed on pattern_seed */
	uint8_t pattern_seed;
	int mss;			/* MSS option value, or 0 for none */
	int wscale;			/* window scale option, or PB_NO_OPT (set explicitly) */
	const uint8_t *tcp_opts;	/* raw options instead of mss/wscale */
	size_t tcp_opts_len;		/* padded with EOL to a multiple of 4 */
	int doff_override;		/* > 0: written as the data offset instead */
	size_t ip_opts_len;		/* IPv4 options (NOPs then EOL), multiple of 4 */
	size_t hbh_len;			/* IPv6 hop-by-hop header length, multiple of 8 */
	size_t dstopts_len;		/* IPv6 destination options header, multiple of 8 */
	uint16_t frag;			/* IPv4: flags + fragment offset field, raw */
	int v6_frag;			/* IPv6: add a fragment header */
	uint16_t v6_frag_field;		/* its offset + M field, raw */
	uint8_t proto;			/* 0: TCP; else the protocol / next header */
	enum pb_csum csum;
};

/* --- byte access ---------------------------------------------------------- */

static inline uint16_t pb_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t pb_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void pb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pb_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* --- the reference checksum (RFC 1071, 16-bit big-endian words) ----------- */

static inline uint64_t pb_ref_sum(uint64_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint64_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint64_t)p[len - 1] << 8;
	return sum;
}

/* Folds with end-around carry; not complemented. */
static inline uint16_t pb_ref_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The checksum of len bytes, as a number (host order). */
static inline uint16_t pb_ref_csum(const uint8_t *p, size_t len)
{
	return (uint16_t)~pb_ref_fold(pb_ref_sum(0, p, len));
}

/* Sum of the TCP pseudo-header (RFC 793 / RFC 8200 §8.1). */
static inline uint64_t pb_ref_pseudo(int family, const uint8_t *src, const uint8_t *dst,
				     uint32_t l4_len)
{
	uint8_t ph[40];
	size_t alen = family == AF_INET ? 4 : 16;

	memset(ph, 0, sizeof(ph));
	memcpy(ph, src, alen);
	memcpy(ph + alen, dst, alen);
	if (family == AF_INET) {
		ph[9] = IPPROTO_TCP;
		pb_put16(ph + 10, (uint16_t)l4_len);
		return pb_ref_sum(0, ph, 12);
	}
	pb_put32(ph + 32, l4_len);
	ph[39] = IPPROTO_TCP;
	return pb_ref_sum(0, ph, 40);
}

/*
 * Finds the TCP segment of a packet built as pb_build() builds them: sets
 * *l4_off and *l4_len and returns 0, or -1 when it is not a TCP packet this
 * walk understands.
 */
static inline int pb_ref_locate(const uint8_t *pkt, size_t len, size_t *l4_off,
				uint32_t *l4_len)
{
	if (len >= 20 && pkt[0] >> 4 == 4) {
		size_t ihl = (size_t)(pkt[0] & 0xf) * 4, total = pb_get16(pkt + 2);

		if (ihl < 20 || total < ihl || total > len || pkt[9] != IPPROTO_TCP)
			return -1;
		*l4_off = ihl;
		*l4_len = (uint32_t)(total - ihl);
		return 0;
	}
	if (len >= 40 && pkt[0] >> 4 == 6) {
		size_t end = 40 + (size_t)pb_get16(pkt + 4), off = 40;
		uint8_t next = pkt[6];

		if (end > len)
			return -1;
		while (next == 0 || next == 60 || next == 43) {
			if (off + 8 > end)
				return -1;
			next = pkt[off];
			off += ((size_t)pkt[off + 1] + 1) * 8;
		}
		if (next != IPPROTO_TCP || off > end)
			return -1;
		*l4_off = off;
		*l4_len = (uint32_t)(end - off);
		return 0;
	}
	return -1;
}

/* The correct complete TCP checksum of the packet as it is now (host order). */
static inline uint16_t pb_ref_tcp_csum(const uint8_t *pkt, size_t len)
{
	size_t off;
	uint32_t l4_len;
	uint64_t sum;
	int family = pkt[0] >> 4 == 4 ? AF_INET : AF_INET6;
	const uint8_t *src = pkt + (family == AF_INET ? 12 : 8);
	const uint8_t *dst = pkt + (family == AF_INET ? 16 : 24);

	if (pb_ref_locate(pkt, len, &off, &l4_len) < 0)
		return 0;
	sum = pb_ref_pseudo(family, src, dst, l4_len);
	sum = pb_ref_sum(sum, pkt + off, 16);			/* up to the checksum */
	sum = pb_ref_sum(sum, pkt + off + 18, l4_len - 18);	/* after it */
	return (uint16_t)~pb_ref_fold(sum);
}

/* The value a CHECKSUM_PARTIAL packet carries: the folded pseudo-header sum. */
static inline uint16_t pb_ref_tcp_partial(const uint8_t *pkt, size_t len)
{
	size_t off;
	uint32_t l4_len;
	int family = pkt[0] >> 4 == 4 ? AF_INET : AF_INET6;

	if (pb_ref_locate(pkt, len, &off, &l4_len) < 0)
		return 0;
	return pb_ref_fold(pb_ref_pseudo(family, pkt + (family == AF_INET ? 12 : 8),
					 pkt + (family == AF_INET ? 16 : 24), l4_len));
}

enum pb_verify {
	PB_OK = 0,
	PB_BAD_LOCATE = 1,	/* no TCP segment found */
	PB_BAD_IP_CSUM = 2,	/* IPv4 header checksum does not verify */
	PB_BAD_TCP_CSUM = 3,	/* TCP checksum does not verify */
};

/* Verifies the IPv4 header checksum (if IPv4) and the complete TCP checksum. */
static inline enum pb_verify pb_ref_verify(const uint8_t *pkt, size_t len)
{
	size_t off;
	uint32_t l4_len;
	uint64_t sum;
	int family = pkt[0] >> 4 == 4 ? AF_INET : AF_INET6;

	if (pb_ref_locate(pkt, len, &off, &l4_len) < 0)
		return PB_BAD_LOCATE;
	if (family == AF_INET && pb_ref_fold(pb_ref_sum(0, pkt, off)) != 0xffff)
		return PB_BAD_IP_CSUM;
	sum = pb_ref_pseudo(family, pkt + (family == AF_INET ? 12 : 8),
			    pkt + (family == AF_INET ? 16 : 24), l4_len);
	sum = pb_ref_sum(sum, pkt + off, l4_len);
	return pb_ref_fold(sum) == 0xffff ? PB_OK : PB_BAD_TCP_CSUM;
}

/* --- the builder --------------------------------------------------------- */

/* A deterministic payload byte. */
static inline uint8_t pb_pattern(uint8_t seed, size_t i)
{
	return (uint8_t)(i * 131u + (i >> 8) * 7u + seed * 29u + 17u);
}

static inline size_t pb_tcp_opts(const struct pb_spec *s, uint8_t *o)
{
	size_t n = 0;

	if (s->tcp_opts) {
		memcpy(o, s->tcp_opts, s->tcp_opts_len);
		n = s->tcp_opts_len;
	} else {
		if (s->mss > 0) {
			o[n++] = 2;
			o[n++] = 4;
			pb_put16(o + n, (uint16_t)s->mss);
			n += 2;
		}
		if (s->wscale >= 0) {
			o[n++] = 1;	/* NOP, as stacks align it */
			o[n++] = 3;
			o[n++] = 3;
			o[n++] = (uint8_t)s->wscale;
		}
	}
	while (n % 4)
		o[n++] = 0;		/* EOL padding */
	return n;
}

/* Writes an IPv6 options header of hlen bytes (PadN filling) at p. */
static inline void pb_v6_opts_hdr(uint8_t *p, size_t hlen, uint8_t next)
{
	memset(p, 0, hlen);
	p[0] = next;
	p[1] = (uint8_t)(hlen / 8 - 1);
	p[2] = 1;			/* PadN */
	p[3] = (uint8_t)(hlen - 4);
}

/*
 * Writes the IP header(s) for an L4 part of l4_len bytes; returns the offset
 * of the L4 header, or 0 when cap is too small.
 */
static inline size_t pb_ip(const struct pb_spec *s, uint8_t *buf, size_t cap, size_t l4_len)
{
	uint8_t proto = s->proto ? s->proto : IPPROTO_TCP;

	if (s->family != AF_INET6) {
		size_t ihl = 20 + s->ip_opts_len;

		if (ihl + l4_len > cap || ihl + l4_len > 0xffff)
			return 0;
		memset(buf, 0, ihl);
		buf[0] = (uint8_t)(0x40 | ihl / 4);
		pb_put16(buf + 2, (uint16_t)(ihl + l4_len));
		pb_put16(buf + 4, 0x1234);
		pb_put16(buf + 6, s->frag);
		buf[8] = 64;
		buf[9] = proto;
		inet_pton(AF_INET, s->src, buf + 12);
		inet_pton(AF_INET, s->dst, buf + 16);
		memset(buf + 20, 1, s->ip_opts_len);	/* NOPs */
		if (s->ip_opts_len)
			buf[ihl - 1] = 0;		/* EOL */
		pb_put16(buf + 10, pb_ref_csum(buf, ihl));
		return ihl;
	} else {
		size_t off = 40, ext = s->hbh_len + s->dstopts_len + (s->v6_frag ? 8 : 0);
		uint8_t *next = buf + 6;

		if (off + ext + l4_len > cap || ext + l4_len > 0xffff)
			return 0;
		memset(buf, 0, 40);
		buf[0] = 0x60;
		pb_put16(buf + 4, (uint16_t)(ext + l4_len));
		buf[7] = 64;
		inet_pton(AF_INET6, s->src, buf + 8);
		inet_pton(AF_INET6, s->dst, buf + 24);
		if (s->hbh_len) {
			*next = 0;
			pb_v6_opts_hdr(buf + off, s->hbh_len, 0);
			next = buf + off;
			off += s->hbh_len;
		}
		if (s->dstopts_len) {
			*next = 60;
			pb_v6_opts_hdr(buf + off, s->dstopts_len, 0);
			next = buf + off;
			off += s->dstopts_len;
		}
		if (s->v6_frag) {
			*next = 44;
			memset(buf + off, 0, 8);
			pb_put16(buf + off + 2, s->v6_frag_field);
			pb_put32(buf + off + 4, 0xabcd);
			next = buf + off;
			off += 8;
		}
		*next = proto;
		return off;
	}
}

/*
 * Builds the packet into buf (cap bytes). Returns its length, or 0 when it
 * does not fit (in buf or in the IP length field).
 */
static inline size_t pb_build(uint8_t *buf, size_t cap, const struct pb_spec *s)
{
	uint8_t opts[64];
	size_t olen = pb_tcp_opts(s, opts), thlen = 20 + olen, off;
	size_t l4_len = thlen + s->payload_len;
	uint8_t *t;
	uint16_t check = 0;

	off = pb_ip(s, buf, cap, l4_len);
	if (!off)
		return 0;
	t = buf + off;
	memset(t, 0, thlen);
	pb_put16(t, s->sport);
	pb_put16(t + 2, s->dport);
	pb_put32(t + 4, s->seq);
	pb_put32(t + 8, s->ack);
	t[12] = (uint8_t)((s->doff_override > 0 ? (size_t)s->doff_override : thlen / 4) << 4);
	t[13] = s->flags;
	pb_put16(t + 14, s->win);
	memcpy(t + 20, opts, olen);
	for (size_t i = 0; i < s->payload_len; i++)
		t[thlen + i] = s->payload ? s->payload[i] : pb_pattern(s->pattern_seed, i);
	if (s->csum == PB_CSUM_COMPLETE)
		check = pb_ref_tcp_csum(buf, off + l4_len);
	else if (s->csum == PB_CSUM_PARTIAL)
		check = pb_ref_tcp_partial(buf, off + l4_len);
	pb_put16(t + 16, check);
	return off + l4_len;
}

/* A spec with the usual defaults: IPv4, no options, complete checksum. */
static inline struct pb_spec pb_spec_v4(const char *src, uint16_t sport, const char *dst,
					uint16_t dport)
{
	return (struct pb_spec){ .family = AF_INET, .src = src, .dst = dst, .sport = sport,
				 .dport = dport, .win = 65535, .wscale = PB_NO_OPT };
}

static inline struct pb_spec pb_spec_v6(const char *src, uint16_t sport, const char *dst,
					uint16_t dport)
{
	return (struct pb_spec){ .family = AF_INET6, .src = src, .dst = dst, .sport = sport,
				 .dport = dport, .win = 65535, .wscale = PB_NO_OPT };
}

/* Offset of the TCP header of a packet pb_build() made, or 0. */
static inline size_t pb_l4_off(const uint8_t *pkt, size_t len)
{
	size_t off;
	uint32_t l4_len;

	return pb_ref_locate(pkt, len, &off, &l4_len) < 0 ? 0 : off;
}

/* Source and destination address of a packet, as text. */
static inline const char *pb_src_text(const uint8_t *pkt, char *buf, size_t len)
{
	int v4 = pkt[0] >> 4 == 4;

	return inet_ntop(v4 ? AF_INET : AF_INET6, pkt + (v4 ? 12 : 8), buf, (socklen_t)len);
}

static inline const char *pb_dst_text(const uint8_t *pkt, char *buf, size_t len)
{
	int v4 = pkt[0] >> 4 == 4;

	return inet_ntop(v4 ? AF_INET : AF_INET6, pkt + (v4 ? 16 : 24), buf, (socklen_t)len);
}

#endif
