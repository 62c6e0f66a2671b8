/*
 * Unit tests of lb_kick, the takeover kick's packets, in IPv4 and IPv6: the
 * prompt to either end parses as our own parser reads a segment of that
 * direction (its checksums right, its sequence number outside the
 * receiver's window, ACK only), and the notice to either end is an ICMP
 * host unreachable (ICMPv6 no route) with right checksums that quotes the
 * sender's own segment at the given sequence number. Mixed families and
 * short buffers are refused.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb_csum.h"
#include "lb_kick.h"
#include "lb_pkt.h"

static const uint8_t CLIENT4[16] = { 198, 18, 0, 10 };
static const uint8_t VIP4[16] = { 198, 18, 0, 100 };
static const uint8_t BACKEND4[16] = { 198, 19, 0, 11 };
static const uint8_t CLIENT6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x10 };
static const uint8_t VIP6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x64 };
static const uint8_t BACKEND6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 0x0b };

/* The family under test: its addresses, its header length. */
static int fam;
static const uint8_t *CLIENT, *VIP, *BACKEND;
static size_t alen, hl;

static int set_family(int family)
{
	fam = family;
	CLIENT = family == AF_INET ? CLIENT4 : CLIENT6;
	VIP = family == AF_INET ? VIP4 : VIP6;
	BACKEND = family == AF_INET ? BACKEND4 : BACKEND6;
	alen = family == AF_INET ? 4 : 16;
	hl = family == AF_INET ? 20 : 40;
	return 0;
}

static int v4(void **state) { (void)state; return set_family(AF_INET); }
static int v6(void **state) { (void)state; return set_family(AF_INET6); }

static struct lb_conn_state conn(void)
{
	struct lb_conn_state c = { 0 };

	c.orig.src.family = c.orig.dst.family = c.backend.family = (uint8_t)fam;
	memcpy(c.orig.src.bytes, CLIENT, 16);
	memcpy(c.orig.dst.bytes, VIP, 16);
	memcpy(c.backend.bytes, BACKEND, 16);
	c.orig.sport = 40001;
	c.orig.dport = 9000;
	c.backend_port = 8080;
	c.tcp.state = LB_TCP_ESTABLISHED;
	c.tcp.peer[LB_DIR_ORIG].end = 1000500;	/* the client's next byte */
	c.tcp.peer[LB_DIR_REPLY].end = 7;	/* the backend's, wrapped past 0 */
	return c;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void check_prompt(enum lb_dir dir, const uint8_t *src, uint16_t sport,
			 const uint8_t *dst, uint16_t dport)
{
	struct lb_conn_state c = conn();
	uint8_t pkt[LB_KICK_MAX_LEN];
	struct lb_pkt_info pi;
	int len = lb_kick_prompt(&c, dir, pkt, sizeof(pkt));

	assert_int_equal(len, fam == AF_INET ? LB_KICK_PROMPT_LEN : LB_KICK_PROMPT6_LEN);
	assert_int_equal(lb_pkt_parse(pkt, (size_t)len, &pi), LB_PKT_OK);
	if (fam == AF_INET)
		assert_int_equal(lb_csum_fold(lb_csum_add(0, pkt, 20)), 0);	/* IP header */
	assert_true(lb_pkt_tcp_csum_ok(pkt, &pi));
	assert_int_equal(pi.tuple.src.family, fam);
	assert_memory_equal(pi.tuple.src.bytes, src, alen);
	assert_memory_equal(pi.tuple.dst.bytes, dst, alen);
	assert_int_equal(pi.tuple.sport, sport);
	assert_int_equal(pi.tuple.dport, dport);
	assert_int_equal(pi.flags, LB_TCP_ACK);
	assert_int_equal(pi.payload_len, 0);
	/* A segment of dir, far behind the receiver's window of it. */
	assert_int_equal(pi.seq, c.tcp.peer[dir].end - LB_KICK_BEHIND);
	assert_true(lb_seq_lt(pi.seq, c.tcp.peer[dir].end));
	assert_int_equal(pi.ack, c.tcp.peer[!dir].end);
}

/* The client gets it as from VIP:port; the backend as from the client. */
static void test_prompt_to_client(void **state)
{
	(void)state;
	check_prompt(LB_DIR_REPLY, VIP, 9000, CLIENT, 40001);
}

static void test_prompt_to_backend(void **state)
{
	(void)state;
	check_prompt(LB_DIR_ORIG, CLIENT, 40001, BACKEND, 8080);
}

static void check_notice(enum lb_dir dir, const uint8_t *to, const uint8_t *qsrc,
			 uint16_t qsport, const uint8_t *qdst, uint16_t qdport)
{
	static const uint8_t zero[4];
	struct lb_conn_state c = conn();
	uint8_t pkt[LB_KICK_MAX_LEN + 8];
	const uint8_t *icmp = pkt + hl, *q = icmp + 8;
	size_t body = 8 + hl + 8;
	uint32_t pseudo = 0;

	assert_int_equal(lb_kick_notice(&c, dir, 0xfffffff0u, pkt, sizeof(pkt)), (int)(hl + body));
	if (fam == AF_INET) {
		assert_int_equal(get16(pkt + 2), LB_KICK_NOTICE_LEN);
		assert_int_equal(pkt[9], IPPROTO_ICMP);
		assert_memory_equal(pkt + 12, zero, 4);	/* the kernel's to pick */
		assert_memory_equal(pkt + 16, to, 4);
		assert_int_equal(lb_csum_fold(lb_csum_add(0, pkt, 20)), 0);
		assert_int_equal(icmp[0], 3);		/* destination unreachable */
		assert_int_equal(icmp[1], 1);		/* host */
		assert_int_equal(q[0], 0x45);
		assert_int_equal(q[9], IPPROTO_TCP);
		assert_int_equal(lb_csum_fold(lb_csum_add(0, q, 20)), 0);
		assert_memory_equal(q + 12, qsrc, 4);
		assert_memory_equal(q + 16, qdst, 4);
	} else {
		assert_int_equal(pkt[0] >> 4, 6);
		assert_int_equal(get16(pkt + 4), body);
		assert_int_equal(pkt[6], IPPROTO_ICMPV6);
		assert_memory_equal(pkt + 8, VIP, 16);	/* from the VIP */
		assert_memory_equal(pkt + 24, to, 16);
		assert_int_equal(icmp[0], 1);		/* destination unreachable */
		assert_int_equal(icmp[1], 0);		/* no route */
		assert_int_equal(q[0] >> 4, 6);
		assert_int_equal(q[6], IPPROTO_TCP);
		assert_memory_equal(q + 8, qsrc, 16);
		assert_memory_equal(q + 24, qdst, 16);
		pseudo = lb_csum_pseudo(pkt + 8, pkt + 24, 16, IPPROTO_ICMPV6, (uint32_t)body);
	}
	assert_int_equal(lb_csum_fold(lb_csum_add(pseudo, icmp, body)), 0);
	assert_int_equal(get16(q + hl), qsport);
	assert_int_equal(get16(q + hl + 2), qdport);
	assert_int_equal(get32(q + hl + 4), 0xfffffff0u);
}

/* The backend's data: it gets the notice, quoting backend -> client. */
static void test_notice_to_backend(void **state)
{
	(void)state;
	check_notice(LB_DIR_REPLY, BACKEND, BACKEND, 8080, CLIENT, 40001);
}

/* The client's data: it gets the notice, quoting client -> VIP:port. */
static void test_notice_to_client(void **state)
{
	(void)state;
	check_notice(LB_DIR_ORIG, CLIENT, CLIENT, 40001, VIP, 9000);
}

static void test_refused(void **state)
{
	struct lb_conn_state c = conn();
	uint8_t pkt[LB_KICK_MAX_LEN];
	int plen = fam == AF_INET ? LB_KICK_PROMPT_LEN : LB_KICK_PROMPT6_LEN;
	int nlen = fam == AF_INET ? LB_KICK_NOTICE_LEN : LB_KICK_NOTICE6_LEN;

	(void)state;
	assert_int_equal(lb_kick_prompt(&c, LB_DIR_REPLY, pkt, (size_t)plen - 1), -ENOSPC);
	assert_int_equal(lb_kick_notice(&c, LB_DIR_REPLY, 1, pkt, (size_t)nlen - 1), -ENOSPC);
	c.backend.family = fam == AF_INET ? AF_INET6 : AF_INET;	/* mixed */
	assert_int_equal(lb_kick_prompt(&c, LB_DIR_REPLY, pkt, sizeof(pkt)), -EAFNOSUPPORT);
	assert_int_equal(lb_kick_notice(&c, LB_DIR_ORIG, 1, pkt, sizeof(pkt)), -EAFNOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_prompt_to_client, v4),
		cmocka_unit_test_setup(test_prompt_to_backend, v4),
		cmocka_unit_test_setup(test_notice_to_backend, v4),
		cmocka_unit_test_setup(test_notice_to_client, v4),
		cmocka_unit_test_setup(test_refused, v4),
		cmocka_unit_test_setup(test_prompt_to_client, v6),
		cmocka_unit_test_setup(test_prompt_to_backend, v6),
		cmocka_unit_test_setup(test_notice_to_backend, v6),
		cmocka_unit_test_setup(test_notice_to_client, v6),
		cmocka_unit_test_setup(test_refused, v6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
