/*
 * Unit tests of lb_kick, the takeover kick's packets: the prompt to either
 * end parses as our own parser reads a segment of the other direction (its
 * checksums right, its sequence number outside the receiver's window, ACK
 * only), and the notice to either end is an ICMP host unreachable with right
 * checksums that quotes the sender's own segment at the given sequence
 * number. IPv6 and short buffers are refused.
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

static const uint8_t CLIENT[4] = { 198, 18, 0, 10 };
static const uint8_t VIP[4] = { 198, 18, 0, 100 };
static const uint8_t BACKEND[4] = { 198, 19, 0, 11 };

static struct lb_conn_state conn(void)
{
	struct lb_conn_state c = { 0 };

	c.orig.src.family = c.orig.dst.family = c.backend.family = AF_INET;
	memcpy(c.orig.src.bytes, CLIENT, 4);
	memcpy(c.orig.dst.bytes, VIP, 4);
	memcpy(c.backend.bytes, BACKEND, 4);
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
	uint8_t pkt[LB_KICK_PROMPT_LEN];
	struct lb_pkt_info pi;

	assert_int_equal(lb_kick_prompt(&c, dir, pkt, sizeof(pkt)), LB_KICK_PROMPT_LEN);
	assert_int_equal(lb_pkt_parse(pkt, sizeof(pkt), &pi), LB_PKT_OK);
	assert_int_equal(lb_csum_fold(lb_csum_add(0, pkt, 20)), 0);	/* IP header */
	assert_true(lb_pkt_tcp_csum_ok(pkt, &pi));
	assert_memory_equal(pi.tuple.src.bytes, src, 4);
	assert_memory_equal(pi.tuple.dst.bytes, dst, 4);
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
	uint8_t pkt[LB_KICK_NOTICE_LEN + 8];
	const uint8_t *icmp = pkt + 20, *q = pkt + 28;

	assert_int_equal(lb_kick_notice(&c, dir, 0xfffffff0u, pkt, sizeof(pkt)),
			 LB_KICK_NOTICE_LEN);
	assert_int_equal(get16(pkt + 2), LB_KICK_NOTICE_LEN);
	assert_int_equal(pkt[9], IPPROTO_ICMP);
	assert_memory_equal(pkt + 12, zero, 4);	/* the kernel's to pick */
	assert_memory_equal(pkt + 16, to, 4);
	assert_int_equal(lb_csum_fold(lb_csum_add(0, pkt, 20)), 0);
	assert_int_equal(icmp[0], 3);		/* destination unreachable */
	assert_int_equal(icmp[1], 1);		/* host */
	assert_int_equal(lb_csum_fold(lb_csum_add(0, icmp, LB_KICK_NOTICE_LEN - 20)), 0);
	assert_int_equal(q[0], 0x45);
	assert_int_equal(q[9], IPPROTO_TCP);
	assert_int_equal(lb_csum_fold(lb_csum_add(0, q, 20)), 0);
	assert_memory_equal(q + 12, qsrc, 4);
	assert_memory_equal(q + 16, qdst, 4);
	assert_int_equal(get16(q + 20), qsport);
	assert_int_equal(get16(q + 22), qdport);
	assert_int_equal(get32(q + 24), 0xfffffff0u);
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
	uint8_t pkt[LB_KICK_NOTICE_LEN];

	(void)state;
	assert_int_equal(lb_kick_prompt(&c, LB_DIR_REPLY, pkt, LB_KICK_PROMPT_LEN - 1), -ENOSPC);
	assert_int_equal(lb_kick_notice(&c, LB_DIR_REPLY, 1, pkt, LB_KICK_NOTICE_LEN - 1),
			 -ENOSPC);
	c.orig.src.family = c.orig.dst.family = c.backend.family = AF_INET6;
	assert_int_equal(lb_kick_prompt(&c, LB_DIR_REPLY, pkt, sizeof(pkt)), -EAFNOSUPPORT);
	assert_int_equal(lb_kick_notice(&c, LB_DIR_ORIG, 1, pkt, sizeof(pkt)), -EAFNOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prompt_to_client),
		cmocka_unit_test(test_prompt_to_backend),
		cmocka_unit_test(test_notice_to_backend),
		cmocka_unit_test(test_notice_to_client),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
