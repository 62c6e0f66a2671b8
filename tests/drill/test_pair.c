/*
 * Unit tests of drill_pair, the simulated pair `lbdrill replay` fails over:
 * two engines and their sync nodes on a simulated clock and link.
 *
 *   - a burst far above max_lag per millisecond (the drill corpus's iperf3
 *     upload: 2.5 MB in 64 KB segments within one millisecond, right after
 *     the handshake) fails over before the backend's last ACK: the records
 *     the max_lag trigger made during the burst are urgent and left the
 *     active before its next packet, so the standby is at most about
 *     max_lag behind and the ACK passes within its takeover slack. (When
 *     urgent records waited a flush delay like batched ones, every record
 *     of the burst died with the active; the standby had only the
 *     handshake, 2.54 MB behind, beyond its 2.42 MB slack, and dropped the
 *     ACK as out of window.)
 *   - the records of the active's very last packet had not left it: a
 *     connection whose SYN is the last packet is not on the standby.
 *   - a connection that opens and closes inside one flush is never sent
 *     (the sync node drops it), so the replay's standby lacks it as lbd's
 *     would, while one whose close came a flush later holds TIME_WAIT;
 *     after the failover a new SYN on the dropped one's tuple opens a
 *     connection on the new active.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../drill/drill_pair.h"
#include "../lb/pktbuild.h"
#include "lb_conf.h"
#include "lb_engine.h"

#define CLIENT "198.18.0.10"
#define VIP "198.18.0.100"
#define BACKEND "198.18.1.11"
#define PORT 5201
#define SEG 65160u		/* the capture's segment size (GSO) */
#define NSEGS 39u		/* 2,541,240 bytes: beyond the handshake's slack */

struct fx {
	char path[64];
	struct lb_conf conf;
	struct drill_pair *pair;
	uint64_t now;
	uint8_t buf[SEG + 128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	int fd;
	FILE *out;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/test_pair.XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	out = fdopen(fd, "w");
	assert_non_null(out);
	fprintf(out, "services = ( { vip = \"%s\"; port = %d; scheduler = \"rr\";\n"
		     "  backends = ( { address = \"%s\"; } ); } );\n", VIP, PORT, BACKEND);
	fclose(out);
	if (lb_conf_load(f->path, &f->conf, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	drill_pair_free(f->pair);
	lb_conf_free(&f->conf);
	unlink(f->path);
	free(f);
	return 0;
}

/* The pair as the replay builds it: 1 ms link, async or defer mode. */
static void start_pair_mode(struct fx *f, int defer)
{
	struct drill_pair_conf pc = { .conf = &f->conf, .delay_ms = 1, .seed = 1,
				      .defer = defer };
	char err[256];

	f->now = 1000;
	f->pair = drill_pair_new(&pc, &f->now, err, sizeof(err));
	if (!f->pair)
		fail_msg("%s", err);
}

static void start_pair(struct fx *f)
{
	start_pair_mode(f, 0);
}

/* One segment through the active at now; its verdict. */
static enum lb_verdict send_seg(struct fx *f, int from_client, uint16_t cport, uint32_t seq,
				uint32_t ack, uint8_t flags, uint16_t win, uint32_t len)
{
	struct pb_spec s = from_client ? pb_spec_v4(CLIENT, cport, VIP, PORT)
				       : pb_spec_v4(BACKEND, PORT, CLIENT, cport);
	struct lb_packet pkt;
	size_t n;

	s.seq = seq;
	s.ack = ack;
	s.flags = flags;
	s.win = win;
	s.payload_len = len;
	if (flags & LB_TCP_SYN) {
		s.mss = 1460;
		s.wscale = 10;
	}
	n = pb_build(f->buf, sizeof(f->buf), &s);
	assert_int_not_equal(n, 0);
	pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)n,
				  .flags = LB_PKT_F_CSUM_TRUSTED,
				  .hook = from_client ? LB_HOOK_PRE : LB_HOOK_POST };
	return drill_pair_packet(f->pair, &pkt, &f->now);
}

static void handshake(struct fx *f, uint16_t cport, uint32_t ci, uint32_t si)
{
	const uint8_t A = LB_TCP_ACK;

	assert_int_equal(send_seg(f, 1, cport, ci, 0, LB_TCP_SYN, 64240, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, cport, si, ci + 1, LB_TCP_SYN | A, 65160, 0),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 1, cport, ci + 1, si + 1, A, 63, 0), LB_VERDICT_ACCEPT);
}

static void test_burst_within_one_ms(void **state)
{
	struct fx *f = *state;
	const uint8_t A = LB_TCP_ACK;
	const uint32_t ci = 2517200562u, si = 1088451913u;
	uint32_t end = ci + 1 + NSEGS * SEG;
	uint64_t counters[LB_CNT_COUNT];

	start_pair(f);
	handshake(f, 49062, ci, si);
	/* The handshake's records reach the standby; then the burst, all of
	 * it within one millisecond, each segment acknowledged at once with
	 * a window growing as the receiver's autotuning grows it. */
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	for (uint32_t i = 0; i < NSEGS; i++) {
		uint32_t seq = ci + 1 + i * SEG;

		assert_int_equal(send_seg(f, 1, 49062, seq, si + 1, A | LB_TCP_PSH, 63, SEG),
				 LB_VERDICT_ACCEPT);
		if (i + 1 < NSEGS)
			assert_int_equal(send_seg(f, 0, 49062, si + 1, seq + SEG, A,
						  (uint16_t)(64 + 45 * i), 0),
					 LB_VERDICT_ACCEPT);
	}
	/* The active dies before the backend acknowledges the last segment. */
	drill_pair_failover(f->pair, &f->now);
	assert_int_equal(send_seg(f, 0, 49062, si + 1, end, A, 1800, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 1, 49062, end, si + 1, A | LB_TCP_PSH, 63, SEG),
			 LB_VERDICT_ACCEPT);
	lb_engine_counters(drill_pair_active(f->pair), counters);
	assert_int_equal(counters[LB_CNT_DROP_OUT_OF_WINDOW], 0);
}

static void test_last_packet_record_lost(void **state)
{
	struct fx *f = *state;
	uint64_t counters[LB_CNT_COUNT];

	start_pair(f);
	handshake(f, 49062, 1000, 5000);
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	/* A second connection's SYN is the active's last packet. */
	assert_int_equal(send_seg(f, 1, 49064, 7000, 0, LB_TCP_SYN, 64240, 0), LB_VERDICT_ACCEPT);
	drill_pair_failover(f->pair, &f->now);
	/* The first connection is on the standby, the second is not. */
	assert_int_equal(send_seg(f, 1, 49062, 1001, 5001, LB_TCP_ACK, 63, 100),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, 49064, 9000, 7001, LB_TCP_SYN | LB_TCP_ACK, 65160, 0),
			 LB_VERDICT_DROP);
	lb_engine_counters(drill_pair_active(f->pair), counters);
	assert_int_equal(counters[LB_CNT_DROP_NO_CONN], 1);
}

/* Closes cport (ISNs ci, si, nothing sent) at now: FIN each way, last ACK. */
static void close_conn(struct fx *f, uint16_t cport, uint32_t ci, uint32_t si)
{
	const uint8_t FA = LB_TCP_FIN | LB_TCP_ACK;

	assert_int_equal(send_seg(f, 1, cport, ci + 1, si + 1, FA, 63, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, cport, si + 1, ci + 2, FA, 64, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 1, cport, ci + 2, si + 2, LB_TCP_ACK, 63, 0),
			 LB_VERDICT_ACCEPT);
}

static int state_on(struct lb_engine *e, uint16_t cport, uint64_t now)
{
	struct lb_conn_state st;
	struct lb_tuple t = { .sport = cport, .dport = PORT };

	lb_addr_parse(&t.src, CLIENT);
	lb_addr_parse(&t.dst, VIP);
	return lb_engine_conn_find(e, &t, now, &st) == 0 ? st.tcp.state : -1;
}

static void test_open_and_close_in_one_flush_not_sent(void **state)
{
	struct fx *f = *state;

	start_pair(f);
	handshake(f, 49070, 1000, 5000);
	close_conn(f, 49070, 1000, 5000);
	handshake(f, 49072, 3000, 8000);
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	close_conn(f, 49072, 3000, 8000);
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	assert_int_equal(state_on(drill_pair_active(f->pair), 49070, f->now), LB_TCP_TIME_WAIT);
	assert_int_equal(state_on(drill_pair_active(f->pair), 49072, f->now), LB_TCP_TIME_WAIT);
	assert_int_equal(state_on(drill_pair_standby(f->pair), 49070, f->now), -1);
	assert_int_equal(state_on(drill_pair_standby(f->pair), 49072, f->now), LB_TCP_TIME_WAIT);
	drill_pair_failover(f->pair, &f->now);
	assert_int_equal(send_seg(f, 1, 49070, 90000, 0, LB_TCP_SYN, 64240, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(state_on(drill_pair_active(f->pair), 49070, f->now), LB_TCP_SYN_SENT);
}

/*
 * The end of an iperf3 upload: the server has read what it wanted, sends
 * its FIN and closes; the client's next segment (it had acked up to the
 * FIN, not the FIN) draws a RST from the socketless stack at that ack, the
 * FIN's own sequence number. Client 1000, server 5000.
 */
#define UP_CI 1000u
#define UP_SI 5000u

static void upload_until_fin(struct fx *f, uint16_t cport)
{
	const uint8_t A = LB_TCP_ACK;

	handshake(f, cport, UP_CI, UP_SI);
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	assert_int_equal(send_seg(f, 1, cport, UP_CI + 1, UP_SI + 1, A | LB_TCP_PSH, 63, 1000),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, cport, UP_SI + 1, UP_CI + 1001, A, 64, 0),
			 LB_VERDICT_ACCEPT);
}

/* A takeover just before the FIN: the new master has never seen the
 * client's acks, yet the RST at the FIN closes the entry, as on the node
 * that saw them (lb_tcp: its receiver's acks are not replicated). */
static void test_rst_at_fin_after_takeover(void **state)
{
	struct fx *f = *state;

	start_pair(f);
	upload_until_fin(f, 49080);
	drill_pair_advance(f->pair, f->now + 10);
	f->now += 10;
	drill_pair_failover(f->pair, &f->now);
	assert_int_equal(send_seg(f, 0, 49080, UP_SI + 1, UP_CI + 1001, LB_TCP_FIN | LB_TCP_ACK,
				  64, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, 49080, UP_SI + 1, 0, LB_TCP_RST, 0, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(state_on(drill_pair_active(f->pair), 49080, f->now), LB_TCP_CLOSE);
}

/* Defer mode: the RST that closes is held until the peer has the close, so
 * a takeover right after it finds the entry closed, not still waiting for
 * a RST the endpoints will not send again at that sequence number. */
static void test_defer_holds_closing_rst(void **state)
{
	struct fx *f = *state;

	start_pair_mode(f, 1);
	upload_until_fin(f, 49082);
	assert_int_equal(send_seg(f, 0, 49082, UP_SI + 1, UP_CI + 1001, LB_TCP_FIN | LB_TCP_ACK,
				  64, 0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, 49082, UP_SI + 1, 0, LB_TCP_RST, 0, 0), LB_VERDICT_ACCEPT);
	drill_pair_failover(f->pair, &f->now);
	assert_int_equal(state_on(drill_pair_active(f->pair), 49082, f->now), LB_TCP_CLOSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_burst_within_one_ms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_packet_record_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_and_close_in_one_flush_not_sent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rst_at_fin_after_takeover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_holds_closing_rst, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
