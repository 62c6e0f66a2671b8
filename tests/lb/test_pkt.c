/*
 * Unit tests of lb_pkt: parsing of good IPv4/IPv6 TCP packets, every reason
 * to refuse one, and the NAT rewrite, whose output must verify with the
 * reference checksum of pktbuild.h whether the input carried a complete
 * checksum (incremental update) or only the pseudo-header sum (full
 * recomputation).
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lb_pkt.h"
#include "pktbuild.h"

#define BUFSZ 70000

static uint8_t buf[BUFSZ];

static struct pb_spec v4(void)
{
	struct pb_spec s = pb_spec_v4("198.18.0.10", 40000, "198.18.0.100", 80);

	s.seq = 0x11223344;
	s.ack = 0x55667788;
	s.flags = LB_TCP_ACK | LB_TCP_PSH;
	s.win = 29200;
	return s;
}

static struct pb_spec v6(void)
{
	struct pb_spec s = pb_spec_v6("2001:db8::a", 40001, "2001:db8::100", 443);

	s.seq = 0xfffffff0;
	s.ack = 0x00000010;
	s.flags = LB_TCP_ACK;
	s.win = 512;
	return s;
}

static size_t build(const struct pb_spec *s)
{
	size_t len = pb_build(buf, sizeof(buf), s);

	assert_int_not_equal(len, 0);
	return len;
}

static enum lb_pkt_result parse(size_t len, struct lb_pkt_info *pi)
{
	return lb_pkt_parse(buf, len, pi);
}

static void assert_addr(const struct lb_addr *a, const char *text)
{
	struct lb_addr want;

	assert_int_equal(lb_addr_parse(&want, text), 0);
	assert_int_equal(a->family, want.family);
	assert_memory_equal(a->bytes, want.bytes, 16);
}

/* --- good packets --------------------------------------------------------- */

static void test_parse_v4_fields(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.payload_len = 100;
	len = build(&s);
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	assert_addr(&pi.tuple.src, "198.18.0.10");
	assert_addr(&pi.tuple.dst, "198.18.0.100");
	assert_int_equal(pi.tuple.sport, 40000);
	assert_int_equal(pi.tuple.dport, 80);
	assert_int_equal(pi.seq, 0x11223344);
	assert_int_equal(pi.ack, 0x55667788);
	assert_int_equal(pi.flags, LB_TCP_ACK | LB_TCP_PSH);
	assert_int_equal(pi.win, 29200);
	assert_int_equal(pi.l4_off, 20);
	assert_int_equal(pi.tcp_hlen, 20);
	assert_int_equal(pi.l4_len, 120);
	assert_int_equal(pi.ip_len, 140);
	assert_int_equal(pi.payload_len, 100);
	assert_int_equal(pi.wscale, LB_PKT_NO_WSCALE);
	assert_int_equal(pi.mss, 0);
}

static void test_parse_v6_fields(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.payload_len = 33;
	len = build(&s);
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	assert_addr(&pi.tuple.src, "2001:db8::a");
	assert_addr(&pi.tuple.dst, "2001:db8::100");
	assert_int_equal(pi.tuple.sport, 40001);
	assert_int_equal(pi.tuple.dport, 443);
	assert_int_equal(pi.seq, 0xfffffff0);
	assert_int_equal(pi.ack, 0x10);
	assert_int_equal(pi.flags, LB_TCP_ACK);
	assert_int_equal(pi.win, 512);
	assert_int_equal(pi.l4_off, 40);
	assert_int_equal(pi.l4_len, 53);
	assert_int_equal(pi.ip_len, 93);
	assert_int_equal(pi.payload_len, 33);
}

static void test_parse_flags_masks_ecn_bits(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.flags = 0xc0 | LB_TCP_SYN;	/* CWR and ECE with a SYN */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.flags, LB_TCP_SYN);
}

static void test_parse_v4_ip_options(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.ip_opts_len = 12;
	s.payload_len = 5;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.l4_off, 32);
	assert_int_equal(pi.ip_len, 32 + 20 + 5);
	assert_int_equal(pi.payload_len, 5);
	assert_int_equal(pi.tuple.dport, 80);
	assert_int_equal(pi.seq, 0x11223344);
}

static void test_parse_v4_max_ip_options(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.ip_opts_len = 40;	/* IHL 15 */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.l4_off, 60);
	assert_int_equal(pi.payload_len, 0);
}

static void test_parse_v6_hop_by_hop(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.hbh_len = 16;
	s.payload_len = 7;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.l4_off, 56);
	assert_int_equal(pi.l4_len, 27);
	assert_int_equal(pi.payload_len, 7);
	assert_int_equal(pi.ip_len, 40 + 16 + 27);
	assert_int_equal(pi.tuple.sport, 40001);
	assert_int_equal(pi.ack, 0x10);
}

static void test_parse_v6_hop_by_hop_and_dstopts(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.hbh_len = 8;
	s.dstopts_len = 24;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.l4_off, 72);
	assert_int_equal(pi.tuple.dport, 443);
}

static void test_parse_syn_options(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.flags = LB_TCP_SYN;
	s.mss = 1460;
	s.wscale = 7;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.tcp_hlen, 28);
	assert_int_equal(pi.payload_len, 0);
	assert_int_equal(pi.mss, 1460);
	assert_int_equal(pi.wscale, 7);

	s.flags = LB_TCP_SYN | LB_TCP_ACK;	/* SYN/ACK too */
	s.mss = 8960;
	s.wscale = 0;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.mss, 8960);
	assert_int_equal(pi.wscale, 0);
}

static void test_parse_wscale_capped_at_14(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.flags = LB_TCP_SYN;
	s.wscale = 15;		/* RFC 7323 §2.3: use 14 */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.wscale, 14);
	assert_int_equal(pi.mss, 0);
}

static void test_parse_options_ignored_without_syn(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.mss = 1460;
	s.wscale = 7;
	s.payload_len = 10;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.tcp_hlen, 28);
	assert_int_equal(pi.payload_len, 10);
	assert_int_equal(pi.mss, 0);
	assert_int_equal(pi.wscale, LB_PKT_NO_WSCALE);
}

/* Options after NOPs and a timestamp are still found. */
static void test_parse_options_among_others(void **state)
{
	static const uint8_t opts[] = { 1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8,
					4, 2, 2, 4, 0x05, 0xb4, 3, 3, 9 };
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.flags = LB_TCP_SYN;
	s.tcp_opts = opts;
	s.tcp_opts_len = sizeof(opts);
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.mss, 1460);
	assert_int_equal(pi.wscale, 9);
}

static void check_malformed_opts(const uint8_t *opts, size_t n, uint16_t mss, uint8_t wscale)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	s.flags = LB_TCP_SYN;
	s.tcp_opts = opts;
	s.tcp_opts_len = n;
	s.payload_len = 3;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.mss, mss);
	assert_int_equal(pi.wscale, wscale);
	assert_int_equal(pi.payload_len, 3);
}

static void test_parse_malformed_options_not_refused(void **state)
{
	/* Length 0 after a good MSS: parsing stops, MSS kept, wscale unseen. */
	static const uint8_t zero_len[] = { 2, 4, 0x05, 0xb4, 8, 0, 3, 3, 7, 0, 0, 0 };
	/* Length 1. */
	static const uint8_t one_len[] = { 3, 3, 5, 30, 1, 2, 4, 1, 0, 0, 0, 0 };
	/* An option running past the header. */
	static const uint8_t overrun[] = { 3, 3, 6, 2, 4, 5, 0xb4, 8, 40, 1, 1, 1 };
	/* A kind as the very last byte, with no room for its length. */
	static const uint8_t last_kind[] = { 1, 1, 1, 2 };
	/* Wrong lengths for MSS and wscale are skipped, not read. */
	static const uint8_t wrong_len[] = { 2, 3, 0x05, 3, 4, 1, 1, 2, 4, 0x02, 0x18, 0 };
	/* End of list hides what follows. */
	static const uint8_t eol[] = { 0, 2, 4, 0x05, 0xb4, 3, 3, 7 };

	(void)state;
	check_malformed_opts(zero_len, sizeof(zero_len), 1460, LB_PKT_NO_WSCALE);
	check_malformed_opts(one_len, sizeof(one_len), 0, 5);
	check_malformed_opts(overrun, sizeof(overrun), 1460, 6);
	check_malformed_opts(last_kind, sizeof(last_kind), 0, LB_PKT_NO_WSCALE);
	check_malformed_opts(wrong_len, sizeof(wrong_len), 0x0218, LB_PKT_NO_WSCALE);
	check_malformed_opts(eol, sizeof(eol), 0, LB_PKT_NO_WSCALE);
}

static void test_parse_trailing_bytes_ignored(void **state)
{
	struct pb_spec s4 = v4(), s6 = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s4.payload_len = 10;
	len = build(&s4);
	memset(buf + len, 0xee, 18);	/* Ethernet minimum-frame padding */
	assert_int_equal(parse(len + 18, &pi), LB_PKT_OK);
	assert_int_equal(pi.ip_len, len);
	assert_int_equal(pi.l4_len, 30);
	assert_int_equal(pi.payload_len, 10);

	s6.payload_len = 0;
	len = build(&s6);
	memset(buf + len, 0xee, 6);
	assert_int_equal(parse(len + 6, &pi), LB_PKT_OK);
	assert_int_equal(pi.ip_len, len);
	assert_int_equal(pi.payload_len, 0);
}

/* --- refusals ------------------------------------------------------------- */

static void test_refuse_empty_and_bad_version(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	assert_int_equal(lb_pkt_parse(buf, 0, &pi), LB_PKT_TRUNCATED);
	len = build(&s);
	buf[0] = 0x55;
	assert_int_equal(parse(len, &pi), LB_PKT_BAD_IP);
	buf[0] = 0x05;
	assert_int_equal(parse(len, &pi), LB_PKT_BAD_IP);
	buf[0] = 0x65;		/* says IPv6 but is an IPv4 packet: no room */
	assert_int_equal(parse(len, &pi), LB_PKT_TRUNCATED);
}

static void test_refuse_truncated_v4(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.payload_len = 40;
	len = build(&s);
	/* Every cut inside the IP header, inside the TCP header and inside
	 * the payload: all shorter than the IP total length says. */
	for (size_t cut = 1; cut < len; cut++)
		if (parse(cut, &pi) != LB_PKT_TRUNCATED)
			fail_msg("cut at %zu of %zu: %s", cut, len,
				 lb_pkt_result_name(parse(cut, &pi)));
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
}

static void test_refuse_truncated_v6(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.hbh_len = 8;
	s.payload_len = 9;
	len = build(&s);
	for (size_t cut = 1; cut < len; cut++)
		if (parse(cut, &pi) != LB_PKT_TRUNCATED)
			fail_msg("cut at %zu of %zu: %s", cut, len,
				 lb_pkt_result_name(parse(cut, &pi)));
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
}

/* The IP length leaves less than a TCP header. */
static void test_refuse_truncated_tcp_by_ip_length(void **state)
{
	struct pb_spec s = v4(), s6 = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	len = build(&s);
	pb_put16(buf + 2, 20 + 19);
	assert_int_equal(parse(len, &pi), LB_PKT_TRUNCATED);

	len = build(&s6);
	pb_put16(buf + 4, 19);
	assert_int_equal(parse(len, &pi), LB_PKT_TRUNCATED);
}

/* An extension header longer than the IPv6 payload. */
static void test_refuse_truncated_v6_ext(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.hbh_len = 8;
	len = build(&s);
	buf[41] = 10;		/* hop-by-hop now claims 88 bytes */
	assert_int_equal(parse(len, &pi), LB_PKT_TRUNCATED);
}

static void test_refuse_bad_ihl_and_total_length(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	s.payload_len = 20;
	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		len = build(&s);
		buf[0] = (uint8_t)(0x40 | ihl);
		assert_int_equal(parse(len, &pi), LB_PKT_BAD_IP);
	}
	/* Total length shorter than the header length. */
	s.ip_opts_len = 8;
	len = build(&s);
	pb_put16(buf + 2, 27);
	assert_int_equal(parse(len, &pi), LB_PKT_BAD_IP);
	/* Total length beyond the buffer. */
	len = build(&s);
	pb_put16(buf + 2, (uint16_t)(len + 1));
	assert_int_equal(parse(len, &pi), LB_PKT_TRUNCATED);
}

static void test_refuse_v6_jumbo_length(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len;

	(void)state;
	len = build(&s);
	pb_put16(buf + 4, 0);
	assert_int_equal(parse(len, &pi), LB_PKT_BAD_IP);
}

static void test_refuse_v4_fragments(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;

	(void)state;
	s.frag = 0x2000;		/* MF, offset 0: first fragment */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.frag = 0x0001;		/* last fragment, offset 8 */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.frag = 0x2000 | 0x1fff;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.frag = 0x4000 | 0x0010;	/* DF with an offset is still one */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.frag = 0x4000;		/* DF alone is not a fragment */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	s.frag = 0x8000;		/* the reserved bit alone neither */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
}

static void test_refuse_v6_fragment_header(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.v6_frag = 1;
	s.v6_frag_field = 0x0001;	/* M set, offset 0 */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.v6_frag_field = 0x0000;	/* an atomic fragment, still refused */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
	s.hbh_len = 8;			/* behind a hop-by-hop header */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_FRAGMENT);
}

static void test_refuse_not_tcp(void **state)
{
	struct pb_spec s = v4(), s6 = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.proto = IPPROTO_UDP;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_NOT_TCP);
	s.proto = IPPROTO_ICMP;
	assert_int_equal(parse(build(&s), &pi), LB_PKT_NOT_TCP);
	s6.proto = IPPROTO_UDP;
	assert_int_equal(parse(build(&s6), &pi), LB_PKT_NOT_TCP);
	s6.proto = 51;			/* AH: not skipped */
	s6.hbh_len = 8;
	assert_int_equal(parse(build(&s6), &pi), LB_PKT_NOT_TCP);
	s6.proto = IPPROTO_NONE;
	assert_int_equal(parse(build(&s6), &pi), LB_PKT_NOT_TCP);
}

/* A long chain of extension headers. */
static void test_refuse_v6_long_ext_chain(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len, off = 40;

	(void)state;
	/* The walk looks at 8 "next header" values, the last of which must
	 * be TCP: seven extension headers pass, eight do not. */
	s.dstopts_len = 8 * 8;		/* rewritten below into 8 headers of 8 */
	len = build(&s);
	for (int i = 0; i < 8; i++, off += 8) {
		buf[off] = i < 7 ? 60 : IPPROTO_TCP;
		buf[off + 1] = 0;
		buf[off + 2] = 1;
		buf[off + 3] = 4;
	}
	assert_int_equal(parse(len, &pi), LB_PKT_NOT_TCP);
	s.dstopts_len = 7 * 8;
	len = build(&s);
	off = 40;
	for (int i = 0; i < 7; i++, off += 8) {
		buf[off] = i < 6 ? 60 : IPPROTO_TCP;
		buf[off + 1] = 0;
	}
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	assert_int_equal(pi.l4_off, 40 + 56);
}

static void test_refuse_bad_data_offset(void **state)
{
	struct pb_spec s = v4(), s6 = v6();
	struct lb_pkt_info pi;

	(void)state;
	s.payload_len = 8;
	for (int doff = 1; doff < 5; doff++) {
		s.doff_override = doff;
		assert_int_equal(parse(build(&s), &pi), LB_PKT_BAD_TCP);
	}
	s.doff_override = 7;		/* 28 bytes: exactly header + payload */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_OK);
	assert_int_equal(pi.tcp_hlen, 28);
	assert_int_equal(pi.payload_len, 0);
	s.doff_override = 8;		/* 32 bytes of a 28-byte segment */
	assert_int_equal(parse(build(&s), &pi), LB_PKT_BAD_TCP);
	s6.doff_override = 15;
	assert_int_equal(parse(build(&s6), &pi), LB_PKT_BAD_TCP);
}

static void test_result_names(void **state)
{
	(void)state;
	assert_string_equal(lb_pkt_result_name(LB_PKT_OK), "ok");
	assert_string_equal(lb_pkt_result_name(LB_PKT_TRUNCATED), "truncated");
	assert_string_equal(lb_pkt_result_name(LB_PKT_BAD_IP), "bad_ip");
	assert_string_equal(lb_pkt_result_name(LB_PKT_FRAGMENT), "fragment");
	assert_string_equal(lb_pkt_result_name(LB_PKT_NOT_TCP), "not_tcp");
	assert_string_equal(lb_pkt_result_name(LB_PKT_BAD_TCP), "bad_tcp");
	assert_string_equal(lb_pkt_result_name(LB_PKT_RESULT_COUNT), "?");
}

/* --- NAT ------------------------------------------------------------------ */

/*
 * Builds the packet, rewrites one side with lb_pkt_nat and checks: the new
 * address and port are in place, the packet verifies with the reference, the
 * TCP checksum is exactly the recomputed one, and nothing else changed.
 */
static void nat_check(struct pb_spec *s, int dst_side, const char *addr, uint16_t port)
{
	static uint8_t before[BUFSZ];
	struct lb_pkt_info pi;
	struct lb_addr a;
	size_t len = build(s), l4, alen, aoff;
	int partial = s->csum == PB_CSUM_PARTIAL;

	assert_int_equal(lb_addr_parse(&a, addr), 0);
	memcpy(before, buf, len);
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	if (partial)
		assert_int_equal(pb_get16(buf + pi.l4_off + 16), pb_ref_tcp_partial(buf, len));
	else
		assert_int_equal(pb_ref_verify(buf, len), PB_OK);
	lb_pkt_nat(buf, &pi, dst_side, &a, port, partial);

	if (pb_ref_verify(buf, len) != PB_OK)
		fail_msg("%s %s payload %u partial %d: verify %d", s->family == AF_INET6 ? "v6" : "v4",
			 dst_side ? "dst" : "src", s->payload_len, partial,
			 pb_ref_verify(buf, len));
	l4 = pb_l4_off(buf, len);
	assert_int_equal(pb_get16(buf + l4 + 16), pb_ref_tcp_csum(buf, len));
	alen = s->family == AF_INET6 ? 16 : 4;
	aoff = s->family == AF_INET6 ? (dst_side ? 24 : 8) : (dst_side ? 16 : 12);
	assert_memory_equal(buf + aoff, a.bytes, alen);
	assert_int_equal(pb_get16(buf + l4 + (dst_side ? 2 : 0)), port);
	/* Restore what NAT was meant to change and compare the rest. */
	memcpy(buf + aoff, before + aoff, alen);
	memcpy(buf + l4 + (dst_side ? 2 : 0), before + l4 + (dst_side ? 2 : 0), 2);
	memcpy(buf + l4 + 16, before + l4 + 16, 2);
	if (s->family == AF_INET)
		memcpy(buf + 10, before + 10, 2);
	assert_memory_equal(buf, before, len);
}

static void test_nat_v4_complete(void **state)
{
	struct pb_spec s = v4();

	(void)state;
	s.payload_len = 100;
	nat_check(&s, 1, "198.18.1.11", 8080);
	nat_check(&s, 0, "198.18.0.100", 80);
	s.ip_opts_len = 8;
	nat_check(&s, 1, "198.18.1.255", 65535);
	nat_check(&s, 0, "0.0.0.1", 1);
}

static void test_nat_v6_complete(void **state)
{
	struct pb_spec s = v6();

	(void)state;
	s.payload_len = 100;
	nat_check(&s, 1, "2001:db8:1::11", 8443);
	nat_check(&s, 0, "2001:db8::100", 443);
	s.hbh_len = 8;
	nat_check(&s, 1, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1);
}

static void test_nat_v4_partial(void **state)
{
	struct pb_spec s = v4();

	(void)state;
	s.csum = PB_CSUM_PARTIAL;
	s.payload_len = 1448;
	nat_check(&s, 1, "198.18.1.12", 80);
	nat_check(&s, 0, "198.18.0.100", 80);
}

static void test_nat_v6_partial(void **state)
{
	struct pb_spec s = v6();

	(void)state;
	s.csum = PB_CSUM_PARTIAL;
	s.payload_len = 1428;
	nat_check(&s, 1, "2001:db8:1::12", 443);
	nat_check(&s, 0, "2001:db8::100", 443);
	s.hbh_len = 16;
	nat_check(&s, 0, "2001:db8::101", 444);
}

/* Odd payload lengths: the last byte is the high half of a word. */
static void test_nat_odd_payload_lengths(void **state)
{
	(void)state;
	for (uint32_t n = 0; n < 80; n++) {
		for (int mode = 0; mode < 4; mode++) {
			struct pb_spec s = mode & 1 ? v6() : v4();

			s.payload_len = n;
			s.pattern_seed = (uint8_t)n;
			s.csum = mode & 2 ? PB_CSUM_PARTIAL : PB_CSUM_COMPLETE;
			nat_check(&s, (int)(n & 1),
				  mode & 1 ? "2001:db8:1::13" : "198.18.1.13", (uint16_t)(1000 + n));
		}
	}
}

/* GSO-sized segments, complete and partial, v4 and v6. */
static void test_nat_64k_segments(void **state)
{
	uint32_t sizes[] = { 65000, 65001, 65495 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int mode = 0; mode < 4; mode++) {
			struct pb_spec s = mode & 1 ? v6() : v4();

			s.payload_len = sizes[i];
			if (s.family == AF_INET6)
				s.payload_len = sizes[i] == 65495 ? 65515 : sizes[i];
			s.pattern_seed = (uint8_t)(i * 4 + mode);
			s.csum = mode & 2 ? PB_CSUM_PARTIAL : PB_CSUM_COMPLETE;
			nat_check(&s, 1, mode & 1 ? "2001:db8:1::14" : "198.18.1.14", 8080);
			nat_check(&s, 0, mode & 1 ? "2001:db8::100" : "198.18.0.100", 80);
		}
	}
}

/* Many random rewrites: payloads and addresses chosen so that checksums of
 * every value, 0x0000 and 0xffff included, go through the update. */
static void test_nat_random_rewrites(void **state)
{
	uint32_t x = 12345;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		struct pb_spec s = round & 1 ? v6() : v4();
		char addr[64];

		x = x * 1103515245u + 12345u;
		s.payload_len = (x >> 8) % 300;
		s.pattern_seed = (uint8_t)(x >> 16);
		s.seq = x;
		s.csum = round & 2 ? PB_CSUM_PARTIAL : PB_CSUM_COMPLETE;
		if (round & 1)
			snprintf(addr, sizeof(addr), "2001:db8:%x::%x", (x >> 3) & 0xffff,
				 (x >> 11) & 0xffff);
		else
			snprintf(addr, sizeof(addr), "198.%u.%u.%u", (x >> 3) & 0xff,
				 (x >> 11) & 0xff, (x >> 19) & 0xff);
		nat_check(&s, (round >> 2) & 1, addr, (uint16_t)((x >> 5) | 1));
	}
}

/* A packet whose checksum is 0x0000 before or after the rewrite. */
static void test_nat_zero_checksum(void **state)
{
	struct pb_spec s = v4();
	struct lb_pkt_info pi;
	struct lb_addr a;
	uint8_t payload[2] = { 0, 0 };
	size_t len, l4;
	uint16_t c;

	(void)state;
	s.payload = payload;
	s.payload_len = 2;
	/* Make the original checksum 0x0000: the payload word absorbs it. */
	len = build(&s);
	l4 = pb_l4_off(buf, len);
	c = pb_get16(buf + l4 + 16);	/* = ~sum, with a zero payload word */
	pb_put16(payload, c);
	len = build(&s);
	assert_int_equal(pb_get16(buf + l4 + 16), 0x0000);
	assert_int_equal(pb_ref_verify(buf, len), PB_OK);
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	assert_int_equal(lb_addr_parse(&a, "198.18.1.11"), 0);
	lb_pkt_nat(buf, &pi, 1, &a, 8080, 0);
	assert_int_equal(pb_ref_verify(buf, len), PB_OK);
	assert_int_equal(pb_get16(buf + l4 + 16), pb_ref_tcp_csum(buf, len));

	/* And one whose rewrite lands on 0x0000: build with the payload that
	 * makes the rewritten packet's checksum zero, then rewrite back. */
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	assert_int_equal(lb_addr_parse(&a, "198.18.0.100"), 0);
	lb_pkt_nat(buf, &pi, 1, &a, 80, 0);
	assert_int_equal(pb_get16(buf + l4 + 16), 0x0000);
	assert_int_equal(pb_ref_verify(buf, len), PB_OK);
}

static void test_tcp_csum_full(void **state)
{
	struct pb_spec s = v6();
	struct lb_pkt_info pi;
	size_t len, l4;

	(void)state;
	s.payload_len = 999;
	s.hbh_len = 8;
	s.csum = PB_CSUM_PARTIAL;
	len = build(&s);
	assert_int_equal(parse(len, &pi), LB_PKT_OK);
	l4 = pb_l4_off(buf, len);
	assert_int_equal(pb_get16(buf + l4 + 16), pb_ref_tcp_partial(buf, len));
	lb_pkt_tcp_csum_full(buf, &pi);
	assert_int_equal(pb_ref_verify(buf, len), PB_OK);
	assert_int_equal(pb_get16(buf + l4 + 16), pb_ref_tcp_csum(buf, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4_fields),
		cmocka_unit_test(test_parse_v6_fields),
		cmocka_unit_test(test_parse_flags_masks_ecn_bits),
		cmocka_unit_test(test_parse_v4_ip_options),
		cmocka_unit_test(test_parse_v4_max_ip_options),
		cmocka_unit_test(test_parse_v6_hop_by_hop),
		cmocka_unit_test(test_parse_v6_hop_by_hop_and_dstopts),
		cmocka_unit_test(test_parse_syn_options),
		cmocka_unit_test(test_parse_wscale_capped_at_14),
		cmocka_unit_test(test_parse_options_ignored_without_syn),
		cmocka_unit_test(test_parse_options_among_others),
		cmocka_unit_test(test_parse_malformed_options_not_refused),
		cmocka_unit_test(test_parse_trailing_bytes_ignored),
		cmocka_unit_test(test_refuse_empty_and_bad_version),
		cmocka_unit_test(test_refuse_truncated_v4),
		cmocka_unit_test(test_refuse_truncated_v6),
		cmocka_unit_test(test_refuse_truncated_tcp_by_ip_length),
		cmocka_unit_test(test_refuse_truncated_v6_ext),
		cmocka_unit_test(test_refuse_bad_ihl_and_total_length),
		cmocka_unit_test(test_refuse_v6_jumbo_length),
		cmocka_unit_test(test_refuse_v4_fragments),
		cmocka_unit_test(test_refuse_v6_fragment_header),
		cmocka_unit_test(test_refuse_not_tcp),
		cmocka_unit_test(test_refuse_v6_long_ext_chain),
		cmocka_unit_test(test_refuse_bad_data_offset),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_nat_v4_complete),
		cmocka_unit_test(test_nat_v6_complete),
		cmocka_unit_test(test_nat_v4_partial),
		cmocka_unit_test(test_nat_v6_partial),
		cmocka_unit_test(test_nat_odd_payload_lengths),
		cmocka_unit_test(test_nat_64k_segments),
		cmocka_unit_test(test_nat_random_rewrites),
		cmocka_unit_test(test_nat_zero_checksum),
		cmocka_unit_test(test_tcp_csum_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
