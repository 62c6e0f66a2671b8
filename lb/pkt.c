/*
 * lb_pkt: bounds-checked parsing and NAT of IPv4/IPv6 TCP packets.
 * Every read goes through struct cursor, which checks the length first;
 * header fields are copied out with memcpy and converted with ntohs/ntohl,
 * never read through a cast of the packet bytes.
 */
#include <arpa/inet.h>
#include <string.h>

#include "lb_csum.h"
#include "lb_pkt.h"

struct cursor {
	const uint8_t *p;
	const uint8_t *end;
};

static int cur_left(const struct cursor *c, size_t n)
{
	return (size_t)(c->end - c->p) >= n;
}

static uint8_t get8(const uint8_t *p)
{
	return p[0];
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return ntohs(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, 2);
}

static const char *const result_names[LB_PKT_RESULT_COUNT] = {
	[LB_PKT_OK] = "ok",
	[LB_PKT_TRUNCATED] = "truncated",
	[LB_PKT_BAD_IP] = "bad_ip",
	[LB_PKT_FRAGMENT] = "fragment",
	[LB_PKT_NOT_TCP] = "not_tcp",
	[LB_PKT_BAD_TCP] = "bad_tcp",
};

const char *lb_pkt_result_name(enum lb_pkt_result r)
{
	return r < LB_PKT_RESULT_COUNT ? result_names[r] : "?";
}

static enum lb_pkt_result parse_ipv4(struct cursor *c, struct lb_pkt_info *info)
{
	const uint8_t *h = c->p;
	size_t ihl, total;
	uint16_t frag;

	if (!cur_left(c, 20))
		return LB_PKT_TRUNCATED;
	ihl = (size_t)(get8(h) & 0x0f) * 4;
	total = get16(h + 2);
	if (ihl < 20 || total < ihl)
		return LB_PKT_BAD_IP;
	if (!cur_left(c, total))
		return LB_PKT_TRUNCATED;
	frag = get16(h + 6);
	if (frag & 0x3fff)		/* MF set or a non-zero offset */
		return LB_PKT_FRAGMENT;
	if (get8(h + 9) != IPPROTO_TCP)
		return LB_PKT_NOT_TCP;
	info->tuple.src.family = info->tuple.dst.family = AF_INET;
	memcpy(info->tuple.src.bytes, h + 12, 4);
	memcpy(info->tuple.dst.bytes, h + 16, 4);
	info->ip_len = (uint32_t)total;
	c->end = c->p + total;		/* ignore link-layer padding */
	c->p += ihl;
	return LB_PKT_OK;
}

/* Skips the extension headers we can skip; leaves c at the TCP header. */
static enum lb_pkt_result skip_ipv6_ext(struct cursor *c, uint8_t next)
{
	for (int i = 0; i < 8; i++) {
		size_t hlen;

		switch (next) {
		case IPPROTO_TCP:
			return LB_PKT_OK;
		case IPPROTO_FRAGMENT:
			return LB_PKT_FRAGMENT;
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (!cur_left(c, 8))
				return LB_PKT_TRUNCATED;
			hlen = ((size_t)get8(c->p + 1) + 1) * 8;
			if (!cur_left(c, hlen))
				return LB_PKT_TRUNCATED;
			next = get8(c->p);
			c->p += hlen;
			break;
		default:
			return LB_PKT_NOT_TCP;
		}
	}
	return LB_PKT_NOT_TCP;	/* a chain this long is not traffic we balance */
}

static enum lb_pkt_result parse_ipv6(struct cursor *c, struct lb_pkt_info *info)
{
	const uint8_t *h = c->p;
	size_t plen;

	if (!cur_left(c, 40))
		return LB_PKT_TRUNCATED;
	plen = get16(h + 4);
	if (plen == 0)
		return LB_PKT_BAD_IP;	/* jumbogram: not on our links */
	if (!cur_left(c, 40 + plen))
		return LB_PKT_TRUNCATED;
	info->tuple.src.family = info->tuple.dst.family = AF_INET6;
	memcpy(info->tuple.src.bytes, h + 8, 16);
	memcpy(info->tuple.dst.bytes, h + 24, 16);
	info->ip_len = (uint32_t)(40 + plen);
	c->end = c->p + 40 + plen;
	c->p += 40;
	return skip_ipv6_ext(c, get8(h + 6));
}

/* Reads MSS and window scale from a SYN's options; stops at anything odd. */
static void parse_options(const uint8_t *p, const uint8_t *end, struct lb_pkt_info *info)
{
	while (p < end) {
		uint8_t kind = p[0], olen;

		if (kind == 0)		/* end of list */
			return;
		if (kind == 1) {	/* no-op */
			p++;
			continue;
		}
		if (end - p < 2)
			return;
		olen = p[1];
		if (olen < 2 || olen > end - p)
			return;
		if (kind == 2 && olen == 4)
			info->mss = get16(p + 2);
		else if (kind == 3 && olen == 3)
			info->wscale = p[2] > 14 ? 14 : p[2];	/* RFC 7323 §2.3 */
		p += olen;
	}
}

static enum lb_pkt_result parse_tcp(struct cursor *c, const uint8_t *start,
				    struct lb_pkt_info *info)
{
	const uint8_t *t = c->p;
	size_t l4_len = (size_t)(c->end - c->p), hlen;

	if (l4_len < 20)
		return LB_PKT_TRUNCATED;
	hlen = (size_t)(get8(t + 12) >> 4) * 4;
	if (hlen < 20 || hlen > l4_len)
		return LB_PKT_BAD_TCP;
	info->l4_off = (uint16_t)(t - start);
	info->l4_len = (uint32_t)l4_len;
	info->tcp_hlen = (uint16_t)hlen;
	info->payload_len = (uint32_t)(l4_len - hlen);
	info->tuple.sport = get16(t);
	info->tuple.dport = get16(t + 2);
	info->seq = get32(t + 4);
	info->ack = get32(t + 8);
	info->flags = get8(t + 13) & 0x3f;
	info->win = get16(t + 14);
	info->wscale = LB_PKT_NO_WSCALE;
	info->mss = 0;
	if (info->flags & LB_TCP_SYN)
		parse_options(t + 20, t + hlen, info);
	return LB_PKT_OK;
}

enum lb_pkt_result lb_pkt_parse(const uint8_t *data, size_t len, struct lb_pkt_info *info)
{
	struct cursor c = { data, data + len };
	enum lb_pkt_result r;

	if (len < 1)
		return LB_PKT_TRUNCATED;
	memset(&info->tuple, 0, sizeof(info->tuple));
	switch (data[0] >> 4) {
	case 4:
		r = parse_ipv4(&c, info);
		break;
	case 6:
		r = parse_ipv6(&c, info);
		break;
	default:
		return LB_PKT_BAD_IP;
	}
	if (r != LB_PKT_OK)
		return r;
	/* The IP length may hide a segment larger than 64 KiB - 1 only for
	 * IPv6 jumbograms, refused above; l4_off fits 16 bits. */
	return parse_tcp(&c, data, info);
}

void lb_pkt_tcp_csum_full(uint8_t *data, const struct lb_pkt_info *info)
{
	const struct lb_tuple *t = &info->tuple;
	uint8_t *tcp = data + info->l4_off;
	uint32_t sum;
	uint16_t zero = 0, check;

	memcpy(tcp + 16, &zero, 2);
	sum = lb_csum_pseudo(t->src.bytes, t->dst.bytes, lb_addr_len(&t->src),
			     IPPROTO_TCP, info->l4_len);
	sum = lb_csum_add(sum, tcp, info->l4_len);
	check = lb_csum_fold(sum);
	memcpy(tcp + 16, &check, 2);
}

int lb_pkt_tcp_csum_ok(const uint8_t *data, const struct lb_pkt_info *info)
{
	const struct lb_tuple *t = &info->tuple;
	uint32_t sum;

	sum = lb_csum_pseudo(t->src.bytes, t->dst.bytes, lb_addr_len(&t->src),
			     IPPROTO_TCP, info->l4_len);
	sum = lb_csum_add(sum, data + info->l4_off, info->l4_len);
	/* The checksum field included, a correct segment sums to all ones. */
	return lb_csum_fold(sum) == 0;
}

void lb_pkt_nat(uint8_t *data, const struct lb_pkt_info *info, int dst_side,
		const struct lb_addr *addr, uint16_t port, int csum_partial)
{
	size_t alen = lb_addr_len(addr);
	uint8_t *tcp = data + info->l4_off;
	uint8_t *ip_addr, *tcp_port = tcp + (dst_side ? 2 : 0);
	uint8_t old_addr[16], old_port[2];
	uint16_t check;

	if (addr->family == AF_INET)
		ip_addr = data + (dst_side ? 16 : 12);
	else
		ip_addr = data + (dst_side ? 24 : 8);
	memcpy(old_addr, ip_addr, alen);
	memcpy(old_port, tcp_port, 2);
	memcpy(ip_addr, addr->bytes, alen);
	put16(tcp_port, port);

	if (addr->family == AF_INET) {
		memcpy(&check, data + 10, 2);
		check = lb_csum_update(check, old_addr, ip_addr, 4);
		memcpy(data + 10, &check, 2);
	}
	if (csum_partial) {
		struct lb_pkt_info now = *info;

		if (dst_side) {
			now.tuple.dst = *addr;
			now.tuple.dport = port;
		} else {
			now.tuple.src = *addr;
			now.tuple.sport = port;
		}
		lb_pkt_tcp_csum_full(data, &now);
		return;
	}
	memcpy(&check, tcp + 16, 2);
	check = lb_csum_update(check, old_addr, ip_addr, alen);
	check = lb_csum_update(check, old_port, tcp_port, 2);
	memcpy(tcp + 16, &check, 2);
}
