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

/* An IPv4 header of total length len, its checksum done. */
static void ip4(uint8_t *p, uint16_t len, uint8_t proto, const uint8_t *src, const uint8_t *dst)
{
	uint16_t sum;

	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, len);
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

int lb_kick_prompt(const struct lb_conn_state *c, enum lb_dir dir, uint8_t *buf, size_t cap)
{
	const uint8_t *src, *dst;
	uint16_t sport, dport, sum;
	uint8_t *tcp = buf + 20;

	if (c->orig.src.family != AF_INET)
		return -EAFNOSUPPORT;
	if (cap < LB_KICK_PROMPT_LEN)
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
	ip4(buf, LB_KICK_PROMPT_LEN, IPPROTO_TCP, src, dst);
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
	sum = lb_csum_fold(lb_csum_add(lb_csum_pseudo(src, dst, 4, IPPROTO_TCP, 20), tcp, 20));
	memcpy(tcp + 16, &sum, 2);
	return LB_KICK_PROMPT_LEN;
}

int lb_kick_notice(const struct lb_conn_state *c, enum lb_dir dir, uint32_t seq, uint8_t *buf,
		   size_t cap)
{
	static const uint8_t any[4];
	const uint8_t *src, *dst;
	uint16_t sport, dport, sum;
	uint8_t *icmp = buf + 20, *quote = buf + 28;

	if (c->orig.src.family != AF_INET)
		return -EAFNOSUPPORT;
	if (cap < LB_KICK_NOTICE_LEN)
		return -ENOSPC;
	ends(c, dir, &src, &dst, &sport, &dport);
	/* To the sender; the kernel picks our source address (0). */
	ip4(buf, LB_KICK_NOTICE_LEN, IPPROTO_ICMP, any, src);
	/* The quoted header: the sender's own segment as it left it. Its
	 * length is nominal: the kernel reads only addresses and ports. */
	ip4(quote, 40, IPPROTO_TCP, src, dst);
	put16(quote + 20, sport);
	put16(quote + 22, dport);
	put32(quote + 24, seq);
	memset(icmp, 0, 8);
	icmp[0] = ICMP_UNREACH;
	icmp[1] = ICMP_HOST_UNREACH;
	sum = lb_csum_fold(lb_csum_add(0, icmp, LB_KICK_NOTICE_LEN - 20));
	memcpy(icmp + 2, &sum, 2);
	return LB_KICK_NOTICE_LEN;
}
