/*
 * The takeover kick's packets (lb_kick.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "lb_csum.h"
#include "lb_kick.h"

#define TTL 64
#define TCP_ACK 0x10
#define ICMP_UNREACH 3
#define ICMP_HOST_UNREACH 1
#define ICMP6_UNREACH 1
#define ICMP6_NOROUTE 0

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static size_t ip_hlen(int family)
{
	return family == AF_INET ? 20 : 40;
}

/* An IP header carrying len bytes after it (IPv4: its checksum done). */
static void ip_header(uint8_t *p, int family, uint16_t len, uint8_t proto, const uint8_t *src,
		      const uint8_t *dst)
{
	uint16_t sum;

	if (family == AF_INET6) {
		memset(p, 0, 8);
		p[0] = 0x60;
		put16(p + 4, len);
		p[6] = proto;
		p[7] = TTL;
		memcpy(p + 8, src, 16);
		memcpy(p + 24, dst, 16);
		return;
	}
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + len));
	p[6] = 0x40;		/* DF */
	p[8] = TTL;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	sum = lb_csum_fold(lb_csum_add(0, p, 20));
	memcpy(p + 10, &sum, 2);
}

/* Direction dir's addresses and ports as its sender puts them on the wire:
 * ORIG client -> VIP:port (as the client sends it), REPLY backend ->
 * client (as the backend sends it, before the engine rewrites it). */
static void ends(const struct lb_conn_state *c, enum lb_dir dir, const uint8_t **src,
		 const uint8_t **dst, uint16_t *sport, uint16_t *dport)
{
	if (dir == LB_DIR_ORIG) {
		*src = c->orig.src.bytes;
		*dst = c->orig.dst.bytes;
		*sport = c->orig.sport;
		*dport = c->orig.dport;
	} else {
		*src = c->backend.bytes;
		*dst = c->orig.src.bytes;
		*sport = c->backend_port;
		*dport = c->orig.sport;
	}
}

static int family_of(const struct lb_conn_state *c)
{
	int f = c->orig.src.family;

	return (f == AF_INET || f == AF_INET6) && c->orig.dst.family == f &&
	       c->backend.family == f ? f : -1;
}

int lb_kick_prompt(const struct lb_conn_state *c, enum lb_dir dir, uint8_t *buf, size_t cap)
{
	int family = family_of(c);
	size_t alen = family == AF_INET ? 4 : 16, hl = ip_hlen(family);
	const uint8_t *src, *dst;
	uint16_t sport, dport, sum;
	uint8_t *tcp = buf + hl;

	if (family < 0)
		return -EAFNOSUPPORT;
	if (cap < hl + 20)
		return -ENOSPC;
	/* The receiver of dir's data gets a segment of dir as from its sender
	 * (the client sees the backend's side as VIP:port: the engine's
	 * rewrite). */
	if (dir == LB_DIR_REPLY) {
		src = c->orig.dst.bytes;
		dst = c->orig.src.bytes;
		sport = c->orig.dport;
		dport = c->orig.sport;
	} else {
		src = c->orig.src.bytes;
		dst = c->backend.bytes;
		sport = c->orig.sport;
		dport = c->backend_port;
	}
	ip_header(buf, family, 20, IPPROTO_TCP, src, dst);
	memset(tcp, 0, 20);
	put16(tcp, sport);
	put16(tcp + 2, dport);
	/* Far behind what the receiver expects from that side: outside its
	 * window whatever moved since the last record, so it is answered
	 * with an ACK and otherwise ignored. */
	put32(tcp + 4, c->tcp.peer[dir].end - LB_KICK_BEHIND);
	put32(tcp + 8, c->tcp.peer[!dir].end);
	tcp[12] = 5 << 4;
	tcp[13] = TCP_ACK;
	sum = lb_csum_fold(lb_csum_add(lb_csum_pseudo(src, dst, alen, IPPROTO_TCP, 20), tcp, 20));
	memcpy(tcp + 16, &sum, 2);
	return (int)(hl + 20);
}

int lb_kick_notice(const struct lb_conn_state *c, enum lb_dir dir, uint32_t seq, uint8_t *buf,
		   size_t cap)
{
	static const uint8_t any[4];
	int family = family_of(c);
	size_t alen = family == AF_INET ? 4 : 16, hl = ip_hlen(family);
	size_t body = 8 + hl + 8;	/* ICMP header, quoted IP header, 8 bytes of TCP */
	const uint8_t *src, *dst, *from;
	uint16_t sport, dport, sum;
	uint8_t *icmp = buf + hl, *quote = icmp + 8;
	uint32_t partial = 0;

	if (family < 0)
		return -EAFNOSUPPORT;
	if (cap < hl + body)
		return -ENOSPC;
	ends(c, dir, &src, &dst, &sport, &dport);
	/* To the sender: IPv4 lets the kernel pick our source (0); IPv6
	 * needs one, the VIP. */
	from = family == AF_INET ? any : c->orig.dst.bytes;
	ip_header(buf, family, (uint16_t)body, family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6,
		  from, src);
	/* The quoted header: the sender's own segment as it left it. Its
	 * length is nominal: the kernel reads only addresses and ports. */
	ip_header(quote, family, 20, IPPROTO_TCP, src, dst);
	put16(quote + hl, sport);
	put16(quote + hl + 2, dport);
	put32(quote + hl + 4, seq);
	memset(icmp, 0, 8);
	icmp[0] = family == AF_INET ? ICMP_UNREACH : ICMP6_UNREACH;
	icmp[1] = family == AF_INET ? ICMP_HOST_UNREACH : ICMP6_NOROUTE;
	/* ICMPv6 sums a pseudo-header too (RFC 4443 2.3). */
	if (family == AF_INET6)
		partial = lb_csum_pseudo(from, src, alen, IPPROTO_ICMPV6, (uint32_t)body);
	sum = lb_csum_fold(lb_csum_add(partial, icmp, body));
	memcpy(icmp + 2, &sum, 2);
	return (int)(hl + body);
}
