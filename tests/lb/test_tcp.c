/*
 * Unit tests of lb_tcp, the middlebox TCP tracker: the state machine of the
 * header comment in include/lb_tcp.h (handshake, closing in every order,
 * resets, reopening), the four window checks at and just past their
 * boundaries, window scaling, zero-window probes, sequence wraparound and
 * invalid flag combinations. A refused segment must leave the tracker
 * exactly as it was, so refusals compare the whole struct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb_tcp.h"

#define CI 1000u		/* client ISN */
#define SI 50000u		/* server ISN */
#define CWIN 64240u		/* client SYN window */
#define SWIN 65160u		/* server SYN/ACK window */

#define ORIG LB_DIR_ORIG
#define REPLY LB_DIR_REPLY

#define F_A LB_TCP_ACK
#define F_S LB_TCP_SYN
#define F_SA (LB_TCP_SYN | LB_TCP_ACK)
#define F_FA (LB_TCP_FIN | LB_TCP_ACK)
#define F_R LB_TCP_RST
#define F_RA (LB_TCP_RST | LB_TCP_ACK)
#define F_PA (LB_TCP_PSH | LB_TCP_ACK)

static struct lb_pkt_info seg(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
			      uint32_t len)
{
	struct lb_pkt_info pi;

	memset(&pi, 0, sizeof(pi));
	pi.seq = seq;
	pi.ack = ack;
	pi.flags = flags;
	pi.win = win;
	pi.payload_len = len;
	pi.wscale = LB_PKT_NO_WSCALE;
	return pi;
}

static struct lb_pkt_info syn_ws(uint32_t seq, uint16_t win, uint8_t wscale)
{
	struct lb_pkt_info pi = seg(seq, 0, F_S, win, 0);

	pi.wscale = wscale;
	pi.mss = 1460;
	return pi;
}

static enum lb_tcp_result track(struct lb_tcp *t, enum lb_dir dir, uint32_t seq, uint32_t ack,
				uint8_t flags, uint16_t win, uint32_t len)
{
	struct lb_pkt_info pi = seg(seq, ack, flags, win, len);

	return lb_tcp_track(t, dir, &pi);
}

/* Feeds a segment that must be refused with want, and checks nothing moved. */
static void refuse(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi,
		   enum lb_tcp_result want)
{
	struct lb_tcp before;
	enum lb_tcp_result r;

	memcpy(&before, t, sizeof(before));
	before.ignored = 0;	/* an out flag: every call resets it */
	r = lb_tcp_track(t, dir, pi);
	if (r != want)
		fail_msg("got %s, want %s", lb_tcp_result_name(r), lb_tcp_result_name(want));
	assert_memory_equal(t, &before, sizeof(before));
}

static void refuse_seg(struct lb_tcp *t, enum lb_dir dir, uint32_t seq, uint32_t ack,
		       uint8_t flags, uint16_t win, uint32_t len, enum lb_tcp_result want)
{
	struct lb_pkt_info pi = seg(seq, ack, flags, win, len);

	refuse(t, dir, &pi, want);
}

/* Accepts a segment and checks the tracker is unchanged (retransmissions). */
static void accept_unchanged(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	struct lb_tcp before;

	memcpy(&before, t, sizeof(before));
	before.ignored = 0;
	assert_int_equal(lb_tcp_track(t, dir, pi), LB_TCP_ACCEPT);
	assert_memory_equal(t, &before, sizeof(before));
}

/*
 * Accepts a segment that must pass without moving the tracker (an inexact
 * RST, a SYN on a live tuple): only the out flag and the remembered SYN
 * may change.
 */
static void accept_ignored(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	struct lb_tcp before = *t, after;

	assert_int_equal(lb_tcp_track(t, dir, pi), LB_TCP_ACCEPT);
	assert_int_equal(t->ignored, 1);
	after = *t;
	after.ignored = before.ignored;
	after.ign = before.ign;
	assert_memory_equal(&after, &before, sizeof(before));
}

/* SYN, SYN/ACK, ACK with the given ISNs and no window scaling. */
static void establish_isn(struct lb_tcp *t, uint32_t ci, uint32_t si)
{
	struct lb_pkt_info syn = seg(ci, 0, F_S, CWIN, 0);

	memset(t, 0, sizeof(*t));
	lb_tcp_init(t, &syn);
	assert_int_equal(track(t, REPLY, si, ci + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(t, ORIG, ci + 1, si + 1, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t->state, LB_TCP_ESTABLISHED);
}

static void establish(struct lb_tcp *t)
{
	establish_isn(t, CI, SI);
}

/* --- handshake ------------------------------------------------------------ */

static void test_init_from_syn(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = syn_ws(CI, CWIN, 7);

	(void)state;
	memset(&t, 0xa5, sizeof(t));
	lb_tcp_init(&t, &syn);
	assert_int_equal(t.state, LB_TCP_SYN_SENT);
	assert_int_equal(t.isn[ORIG], CI);
	assert_int_equal(t.peer[ORIG].end, CI + 1);
	assert_int_equal(t.peer[ORIG].maxend, CI + 1);
	assert_int_equal(t.peer[ORIG].maxwin, CWIN);
	assert_int_equal(t.peer[ORIG].wscale, 7);
	assert_int_equal(t.peer[ORIG].flags, LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE);
	assert_int_equal(t.peer[REPLY].flags, 0);
	assert_int_equal(t.peer[REPLY].end, 0);
}

static void test_handshake_established(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	assert_int_equal(t.isn[REPLY], SI);
	assert_int_equal(t.peer[REPLY].end, SI + 1);
	assert_int_equal(t.peer[REPLY].maxend, SI + 1 + CWIN);
	assert_int_equal(t.peer[REPLY].maxwin, SWIN);
	assert_int_equal(t.peer[REPLY].flags, LB_TCP_PF_SEEN | LB_TCP_PF_MAXACK);
	assert_int_equal(t.peer[REPLY].maxack, CI + 1);
	assert_int_equal(t.peer[ORIG].maxend, CI + 1 + SWIN);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
	assert_int_equal(t.peer[ORIG].end, CI + 1);
	assert_int_equal(t.peer[REPLY].maxend, SI + 1 + CWIN);	/* never backwards */
}

static void test_synack_wrong_ack(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	refuse_seg(&t, REPLY, SI, CI, F_SA, SWIN, 0, LB_TCP_BAD_HANDSHAKE);
	refuse_seg(&t, REPLY, SI, CI + 2, F_SA, SWIN, 0, LB_TCP_BAD_HANDSHAKE);
	refuse_seg(&t, REPLY, SI, 0, F_SA, SWIN, 0, LB_TCP_BAD_HANDSHAKE);
	assert_int_equal(t.state, LB_TCP_SYN_SENT);
}

static void test_synack_from_client_refused(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	refuse_seg(&t, ORIG, SI, CI + 1, F_SA, SWIN, 0, LB_TCP_BAD_STATE);
}

static void test_final_ack_wrong_ack(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	/* Acking the SYN/ACK's own sequence number, not one past it. */
	refuse_seg(&t, ORIG, CI + 1, SI, F_A, 502, 0, LB_TCP_BAD_HANDSHAKE);
	/* Acking past what the server sent fails check III first. */
	refuse_seg(&t, ORIG, CI + 1, SI + 2, F_A, 502, 0, LB_TCP_OUT_OF_WINDOW);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
}

static void test_ack_in_syn_sent_refused(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	refuse_seg(&t, ORIG, CI + 1, 0, F_A, CWIN, 0, LB_TCP_BAD_STATE);
	refuse_seg(&t, REPLY, SI, CI + 1, F_A, SWIN, 0, LB_TCP_BAD_STATE);
}

/* The server waits for the handshake's last ACK before it sends. */
static void test_server_data_in_syn_recv_refused(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	refuse_seg(&t, REPLY, SI + 1, CI + 1, F_PA, SWIN, 10, LB_TCP_BAD_STATE);
}

/* Client data in the same segment as the final ACK moves the state too. */
static void test_final_ack_with_data(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 300), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
	assert_int_equal(t.peer[ORIG].end, CI + 301);
}

/* --- SYN handling --------------------------------------------------------- */

static void test_syn_retransmission_in_syn_sent(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0), again = syn, other;

	(void)state;
	lb_tcp_init(&t, &syn);
	accept_unchanged(&t, ORIG, &again);
	/* Another ISN (a forged SYN, or a new attempt) does not re-seed the
	 * tracker: it passes and is remembered. */
	other = seg(CI + 12345, 0, F_S, 1000, 0);
	accept_ignored(&t, ORIG, &other);
	assert_int_equal(t.isn[ORIG], CI);
	assert_int_equal(t.peer[ORIG].end, CI + 1);
	/* The SYN/ACK for the first one still completes it... */
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	assert_int_equal(t.isn[ORIG], CI);
}

/* ...and a SYN/ACK for the second one makes the tracker follow it. */
static void test_synack_confirms_second_syn(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0), other = syn_ws(CI + 12345, 1000, 3);

	(void)state;
	lb_tcp_init(&t, &syn);
	accept_ignored(&t, ORIG, &other);
	refuse_seg(&t, REPLY, SI, CI + 2, F_SA, SWIN, 0, LB_TCP_BAD_HANDSHAKE);
	assert_int_equal(track(&t, REPLY, SI, CI + 12346, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	assert_int_equal(t.isn[ORIG], CI + 12345);
	assert_int_equal(t.peer[ORIG].end, CI + 12346);
	assert_int_equal(t.peer[ORIG].maxwin, 1000);
	assert_int_equal(t.ign.set, 0);
	assert_int_equal(track(&t, ORIG, CI + 12346, SI + 1, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
}

/*
 * A forged SYN got the tuple into SYN_RECV: the real client's SYN (another
 * ISN) passes; the server's ACK for the forged one passes to the real
 * client, whose exact RST closes the entry; its next SYN opens it.
 */
static void test_syn_recv_real_client_wins(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info forged = seg(CI, 0, F_S, CWIN, 0), real = seg(4242, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &forged);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	accept_unchanged(&t, ORIG, &forged);
	accept_ignored(&t, ORIG, &real);
	/* The server's request socket acks what it holds. */
	refuse_seg(&t, REPLY, SI + 1, CI + 2, F_A, SWIN, 0, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, REPLY, SI + 1, CI + 1, F_PA, SWIN, 5, LB_TCP_BAD_STATE);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_A, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.ignored, 1);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	/* RFC 793: the real client resets <SEQ=SEG.ACK>, exact. */
	assert_int_equal(track(&t, ORIG, CI + 1, 0, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	assert_int_equal(lb_tcp_track(&t, ORIG, &real), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_SENT);
	assert_int_equal(t.isn[ORIG], 4242);
}

static void test_syn_retransmission_in_syn_recv(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0), again = syn,
			   other = seg(CI + 5, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	accept_unchanged(&t, ORIG, &again);
	accept_ignored(&t, ORIG, &other);
	assert_int_equal(t.ign.isn, CI + 5);
}

static void test_synack_retransmission(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);
	struct lb_pkt_info synack = seg(SI, CI + 1, F_SA, SWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(lb_tcp_track(&t, REPLY, &synack), LB_TCP_ACCEPT);
	accept_unchanged(&t, REPLY, &synack);
	refuse_seg(&t, REPLY, SI + 1, CI + 1, F_SA, SWIN, 0, LB_TCP_BAD_STATE);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_A, 502, 0), LB_TCP_ACCEPT);
	accept_unchanged(&t, REPLY, &synack);	/* the final ACK was lost later on */
}

/* A SYN on a synchronized connection passes so that the server can send
 * its challenge ACK (RFC 5961 §4); the tracker does not change. */
static void test_syn_on_established_accepted_unchanged(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(777, 0, F_S, CWIN, 0);

	(void)state;
	establish(&t);
	accept_ignored(&t, ORIG, &syn);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
	/* The server's challenge ACK is an ordinary ACK. */
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_A, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.ignored, 0);
	/* A SYN/ACK for another ISN than the remembered SYN's is refused. */
	refuse_seg(&t, REPLY, 5555, 779, F_SA, SWIN, 0, LB_TCP_BAD_STATE);
}

/*
 * In every synchronized and closing state a SYN is ignored; a SYN/ACK that
 * acks it (the server had forgotten the old connection) opens the new one,
 * and the client's exact RST to a challenge ACK closes the old one.
 */
static void test_syn_in_closing_states(void **state)
{
	static const uint8_t fins[][2] = { { 0, 0 }, { 1, 0 }, { 1, 1 }, { 2, 0 } };

	(void)state;
	for (size_t i = 0; i < sizeof(fins) / sizeof(fins[0]); i++) {
		struct lb_tcp t;
		struct lb_pkt_info syn = seg(70000, 0, F_S, CWIN, 0);
		uint32_t cend = CI + 1, send = SI + 1;

		establish(&t);
		if (fins[i][0] >= 1) {	/* client FIN */
			assert_int_equal(track(&t, ORIG, cend, send, F_FA, 502, 0), LB_TCP_ACCEPT);
			cend++;
		}
		if (fins[i][0] == 2) {	/* server FIN too: LAST_ACK */
			assert_int_equal(track(&t, REPLY, send, cend, F_FA, SWIN, 0), LB_TCP_ACCEPT);
			send++;
		}
		if (fins[i][1])		/* the server acks the client's FIN */
			assert_int_equal(track(&t, REPLY, send, cend, F_A, SWIN, 0), LB_TCP_ACCEPT);
		assert_true(t.state >= LB_TCP_ESTABLISHED && t.state <= LB_TCP_LAST_ACK);
		accept_ignored(&t, ORIG, &syn);
		struct lb_tcp copy = t;

		/* The server resyncs to the new connection. */
		assert_int_equal(track(&t, REPLY, 31337, 70001, F_SA, SWIN, 0), LB_TCP_ACCEPT);
		assert_int_equal(t.state, LB_TCP_SYN_RECV);
		assert_int_equal(t.isn[ORIG], 70000);
		assert_int_equal(t.isn[REPLY], 31337);
		/* Or it challenges, and the true client resets exactly. */
		t = copy;
		refuse_seg(&t, ORIG, cend - 2, 0, F_R, 0, 0, LB_TCP_BAD_RST);
		assert_int_equal(track(&t, ORIG, cend, 0, F_R, 0, 0), LB_TCP_ACCEPT);
		assert_int_equal(t.state, LB_TCP_CLOSE);
	}
}

static void test_syn_from_server_refused(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	refuse_seg(&t, REPLY, SI, 0, F_S, SWIN, 0, LB_TCP_BAD_STATE);
}

/* --- data ----------------------------------------------------------------- */

static void test_data_both_ways(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 100), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, CI + 101);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 101, F_PA, 509, 1448), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[REPLY].end, SI + 1449);
	/* The server's ack + window moved the client's bound. */
	assert_int_equal(t.peer[ORIG].maxend, CI + 1 + SWIN);	/* 101 + 509 is below */
	assert_int_equal(track(&t, REPLY, SI + 1449, CI + 101, F_PA, 65500, 1448), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].maxend, CI + 101 + 65500);
	assert_int_equal(t.peer[REPLY].end, SI + 2897);
	assert_int_equal(track(&t, ORIG, CI + 101, SI + 2897, F_A, 64000, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[REPLY].maxend, SI + 2897 + 64000);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
}

static void test_retransmission_within_window_accepted(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, CI + 1001, SI + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 2001, F_A, 500, 0), LB_TCP_ACCEPT);
	/* The first segment again, already acked: still within one window. */
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, CI + 2001);		/* end never moves back */
	/* A partial overlap (repacketized retransmission). */
	assert_int_equal(track(&t, ORIG, CI + 501, SI + 1, F_PA, 502, 1500), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, CI + 2001);
}

/* --- the four window checks ----------------------------------------------- */

/* I: seq <= S.maxend. */
static void test_check_I_beyond_maxend(void **state)
{
	struct lb_tcp t;
	uint32_t maxend;

	(void)state;
	establish(&t);
	maxend = t.peer[ORIG].maxend;
	assert_int_equal(maxend, CI + 1 + SWIN);
	refuse_seg(&t, ORIG, maxend + 1, SI + 1, F_PA, 502, 10, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, maxend + 100000, SI + 1, F_A, 502, 0, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, maxend + 1, SI + 1, F_RA, 0, 0, LB_TCP_BAD_RST);
	/* At the bound itself: accepted. */
	assert_int_equal(track(&t, ORIG, maxend, SI + 1, F_PA, 502, 10), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, maxend + 10);
}

/* II: end >= S.end - R.maxwin. */
static void test_check_II_too_old(void **state)
{
	struct lb_tcp t;
	uint32_t oldest;

	(void)state;
	establish(&t);
	/* The client sends 200000 bytes, the server acking as it goes. */
	for (uint32_t off = 0; off < 200000; off += 20000) {
		assert_int_equal(track(&t, ORIG, CI + 1 + off, SI + 1, F_PA, 502, 20000),
				 LB_TCP_ACCEPT);
		assert_int_equal(track(&t, REPLY, SI + 1, CI + 1 + off + 20000, F_A, 65000, 0),
				 LB_TCP_ACCEPT);
	}
	assert_int_equal(t.peer[ORIG].end, CI + 200001);
	assert_int_equal(t.peer[REPLY].maxwin, 65160);
	oldest = t.peer[ORIG].end - t.peer[REPLY].maxwin;
	/* A 100-byte segment ending one byte before the oldest acceptable end. */
	refuse_seg(&t, ORIG, oldest - 101, SI + 1, F_PA, 502, 100, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 100, LB_TCP_OUT_OF_WINDOW);
	/* Ending exactly there: accepted. */
	assert_int_equal(track(&t, ORIG, oldest - 100, SI + 1, F_PA, 502, 100), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, CI + 200001);
}

/* III: ack <= R.end. */
static void test_check_III_acks_unsent_data(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_PA, 509, 100), LB_TCP_ACCEPT);
	refuse_seg(&t, ORIG, CI + 1, SI + 102, F_A, 502, 0, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, CI + 1, SI + 1000000, F_PA, 502, 5, LB_TCP_OUT_OF_WINDOW);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 101, F_A, 502, 0), LB_TCP_ACCEPT);
}

/* IV: ack >= R.end - max(S.maxwin, 66000). */
static void test_check_IV_ancient_ack(void **state)
{
	struct lb_tcp t;
	uint32_t send_end;

	(void)state;
	establish(&t);
	/* The server sends 100000 bytes, the client acking each segment. */
	for (uint32_t off = 0; off < 100000; off += 10000) {
		assert_int_equal(track(&t, REPLY, SI + 1 + off, CI + 1, F_PA, 509, 10000),
				 LB_TCP_ACCEPT);
		assert_int_equal(track(&t, ORIG, CI + 1, SI + 1 + off + 10000, F_A, 65535, 0),
				 LB_TCP_ACCEPT);
	}
	send_end = t.peer[REPLY].end;
	assert_int_equal(send_end, SI + 100001);
	assert_int_equal(t.peer[ORIG].maxwin, 65535);	/* below 66000: the floor rules */
	refuse_seg(&t, ORIG, CI + 1, send_end - 66001, F_A, 65535, 0, LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, CI + 1, SI + 1, F_PA, 65535, 10, LB_TCP_OUT_OF_WINDOW);
	assert_int_equal(track(&t, ORIG, CI + 1, send_end - 66000, F_A, 65535, 0),
			 LB_TCP_ACCEPT);
}

/* --- window scaling ------------------------------------------------------- */

static void handshake_ws(struct lb_tcp *t, uint8_t cws, uint8_t sws)
{
	struct lb_pkt_info syn = syn_ws(CI, 500, cws);
	struct lb_pkt_info synack = seg(SI, CI + 1, F_SA, 600, 0);

	synack.wscale = sws;
	lb_tcp_init(t, &syn);
	assert_int_equal(lb_tcp_track(t, REPLY, &synack), LB_TCP_ACCEPT);
	assert_int_equal(track(t, ORIG, CI + 1, SI + 1, F_A, 1000, 0), LB_TCP_ACCEPT);
	assert_int_equal(t->state, LB_TCP_ESTABLISHED);
}

static void test_wscale_both_sides(void **state)
{
	struct lb_tcp t;

	(void)state;
	handshake_ws(&t, 7, 9);
	assert_int_equal(t.peer[ORIG].wscale, 7);
	assert_int_equal(t.peer[REPLY].wscale, 9);
	assert_true(t.peer[REPLY].flags & LB_TCP_PF_WSCALE);
	/* SYN windows are unscaled; after that, each side's own scale. */
	assert_int_equal(t.peer[REPLY].maxend, SI + 1 + (1000u << 7));
	assert_int_equal(t.peer[ORIG].maxwin, 1000u << 7);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_A, 600, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].maxend, CI + 1 + (600u << 9));
	/* And the scaled window really is usable: a segment far past 600. */
	assert_int_equal(track(&t, ORIG, CI + 1 + 100000, SI + 1, F_PA, 1000, 1000),
			 LB_TCP_ACCEPT);
}

static void test_wscale_client_only(void **state)
{
	struct lb_tcp t;

	(void)state;
	handshake_ws(&t, 7, LB_PKT_NO_WSCALE);
	assert_int_equal(t.peer[ORIG].wscale, 0);
	assert_int_equal(t.peer[REPLY].wscale, 0);
	assert_false(t.peer[REPLY].flags & LB_TCP_PF_WSCALE);
	assert_int_equal(t.peer[REPLY].maxend, SI + 1 + 1000);
	assert_int_equal(t.peer[ORIG].maxwin, 1000);
	refuse_seg(&t, ORIG, CI + 1 + 100000, SI + 1, F_PA, 1000, 1000, LB_TCP_OUT_OF_WINDOW);
}

static void test_wscale_server_only(void **state)
{
	struct lb_tcp t;

	(void)state;
	handshake_ws(&t, LB_PKT_NO_WSCALE, 9);
	assert_int_equal(t.peer[ORIG].wscale, 0);
	assert_int_equal(t.peer[REPLY].wscale, 0);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_A, 700, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].maxend, CI + 1 + 700);
}

/* --- zero window ---------------------------------------------------------- */

static void test_zero_window_probe(void **state)
{
	struct lb_tcp t;
	uint32_t end;

	(void)state;
	establish(&t);
	/* Small windows from the start: the client's SYN/ACK-derived bound. */
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 65160), LB_TCP_ACCEPT);
	end = t.peer[ORIG].end;
	assert_int_equal(end, CI + 1 + 65160);
	assert_int_equal(track(&t, REPLY, SI + 1, end, F_A, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].maxend, end);
	/* The one-byte probe at the window's edge passes, repeatedly. */
	assert_int_equal(track(&t, ORIG, end, SI + 1, F_PA, 502, 1), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, end + 1);
	assert_int_equal(track(&t, ORIG, end, SI + 1, F_PA, 502, 1), LB_TCP_ACCEPT);
	/* Data past the closed window does not. */
	refuse_seg(&t, ORIG, end + 1, SI + 1, F_PA, 502, 100, LB_TCP_OUT_OF_WINDOW);
	/* The window opens: the server acks nothing new, offers 1000. */
	assert_int_equal(track(&t, REPLY, SI + 1, end, F_A, 1000, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, end, SI + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
}

/* --- wraparound ----------------------------------------------------------- */

static void test_sequence_wraparound(void **state)
{
	struct lb_tcp t;
	const uint32_t ci = 0xffffff00u, si = 0xfffffff0u;

	(void)state;
	establish_isn(&t, ci, si);
	/* Three client segments before any ack from the server: the last two
	 * start past 2^32. */
	assert_int_equal(track(&t, ORIG, ci + 1, si + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, ci + 1001, si + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, ci + 2001, si + 1, F_PA, 502, 1000), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[ORIG].end, ci + 3001);
	assert_true(t.peer[ORIG].end < 0x1000);
	/* The server's data crosses 2^32 too. */
	assert_int_equal(track(&t, REPLY, si + 1, ci + 3001, F_PA, 65000, 1000), LB_TCP_ACCEPT);
	assert_int_equal(t.peer[REPLY].end, si + 1001);
	assert_int_equal(track(&t, ORIG, ci + 3001, si + 1001, F_A, 502, 0), LB_TCP_ACCEPT);
	/* The checks still bite on the far side of the wrap. */
	refuse_seg(&t, ORIG, t.peer[ORIG].maxend + 1, si + 1001, F_PA, 502, 1,
		   LB_TCP_OUT_OF_WINDOW);
	refuse_seg(&t, ORIG, ci + 3001, si + 1002, F_A, 502, 0, LB_TCP_OUT_OF_WINDOW);
	/* And the close. */
	assert_int_equal(track(&t, ORIG, ci + 3001, si + 1001, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, REPLY, si + 1001, ci + 3002, F_FA, 65000, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, ci + 3002, si + 1002, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
}

/* The SYN/ACK's window itself wraps the client's bound past 2^32. */
static void test_wraparound_in_handshake_window(void **state)
{
	struct lb_tcp t;
	const uint32_t ci = 0xffffffffu - 1000;

	(void)state;
	establish_isn(&t, ci, 7);
	assert_int_equal(t.peer[ORIG].maxend, ci + 1 + SWIN);
	assert_int_equal(track(&t, ORIG, ci + 1, 8, F_PA, 502, 30000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, ORIG, ci + 30001, 8, F_PA, 502, 30000), LB_TCP_ACCEPT);
}

/* --- closing -------------------------------------------------------------- */

static void test_close_client_first(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);
	assert_int_equal(t.peer[ORIG].end, CI + 2);
	assert_true(t.peer[ORIG].flags & LB_TCP_PF_FIN);
	/* An ACK that does not cover the FIN changes nothing. */
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_A, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 2, F_A, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE_WAIT);
	assert_true(t.peer[ORIG].flags & LB_TCP_PF_FIN_ACKED);
	/* The server may still send data in CLOSE_WAIT. */
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 2, F_PA, 509, 50), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE_WAIT);
	assert_int_equal(track(&t, REPLY, SI + 51, CI + 2, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_LAST_ACK);
	assert_int_equal(track(&t, ORIG, CI + 2, SI + 52, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
	/* A late retransmission of the server's FIN keeps TIME_WAIT. */
	assert_int_equal(track(&t, REPLY, SI + 51, CI + 2, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
}

static void test_close_server_first(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 2, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE_WAIT);
	assert_true(t.peer[REPLY].flags & LB_TCP_PF_FIN_ACKED);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 2, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_LAST_ACK);
	assert_int_equal(track(&t, REPLY, SI + 2, CI + 2, F_A, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
}

static void test_close_simultaneous(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	/* Both FINs cross: each acks only the other's data, not its FIN. */
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_LAST_ACK);
	assert_int_equal(track(&t, ORIG, CI + 2, SI + 2, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_LAST_ACK);
	assert_int_equal(track(&t, REPLY, SI + 2, CI + 2, F_A, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
}

/* The server's FIN also acks the client's FIN: LAST_ACK straight away. */
static void test_close_fin_acking_fin(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 2, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_LAST_ACK);
	assert_int_equal(track(&t, ORIG, CI + 2, SI + 2, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_TIME_WAIT);
}

/* --- resets --------------------------------------------------------------- */

static void test_rst_in_window_closes(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, 0, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_RA, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	/* In a closing state too. */
	establish(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 2, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	/* Nothing but a SYN is taken after that. */
	refuse_seg(&t, ORIG, CI + 2, SI + 1, F_A, 502, 0, LB_TCP_BAD_STATE);
}

static void test_rst_out_of_window_refused(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	refuse_seg(&t, ORIG, t.peer[ORIG].maxend + 1, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	refuse_seg(&t, REPLY, t.peer[REPLY].maxend + 1, CI + 1, F_RA, 0, 0, LB_TCP_BAD_RST);
	refuse_seg(&t, REPLY, SI - 100000, CI + 1, F_RA, 0, 0, LB_TCP_BAD_RST);
	/* In-window seq but an ack of unsent data. */
	refuse_seg(&t, REPLY, SI + 1, CI + 5000, F_RA, 0, 0, LB_TCP_BAD_RST);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
	/* The connection goes on. */
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 1, F_PA, 502, 10), LB_TCP_ACCEPT);
}

/* An established connection whose server sent 3000 bytes, of which the
 * client acked the first acked. */
static void server_sent_3000(struct lb_tcp *t, uint32_t acked)
{
	establish(t);
	assert_int_equal(track(t, REPLY, SI + 1, CI + 1, F_PA, SWIN, 3000), LB_TCP_ACCEPT);
	assert_int_equal(track(t, ORIG, CI + 1, SI + 1 + acked, F_A, 502, 0), LB_TCP_ACCEPT);
}

/*
 * RFC 5961 §3: only the exact sequence closes. In the window but inexact,
 * the RST passes unchanged for the endpoint to challenge; below what the
 * receiver acked, it is refused.
 */
static void test_rst_inexact_in_window(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info rst;

	(void)state;
	server_sent_3000(&t, 1000);
	for (uint32_t off = 1; off < 60000; off += 997) {
		rst = seg(CI + 1 + off, 0, F_R, 0, 0);
		accept_ignored(&t, ORIG, &rst);
	}
	rst = seg(SI + 1 + 2000, CI + 1, F_RA, 0, 0);
	accept_ignored(&t, REPLY, &rst);
	assert_int_equal(t.state, LB_TCP_ESTABLISHED);
	/* Below the client's ack: the client would discard it. */
	refuse_seg(&t, REPLY, SI + 500, CI + 1, F_RA, 0, 0, LB_TCP_BAD_RST);
	/* The server's RST at what the client acked (a stack without the
	 * socket answers <SEQ=SEG.ACK>) is exact. */
	assert_int_equal(track(&t, REPLY, SI + 1001, CI + 1, F_RA, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.ignored, 0);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	/* So is its own end (an aborting stack sends snd_nxt). */
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_PA, SWIN, 3000), LB_TCP_ACCEPT);
	assert_int_equal(track(&t, REPLY, SI + 3001, CI + 1, F_RA, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
}

/*
 * A takeover right before the server's FIN: the new master saw no ack of
 * the client (maxack is not replicated), then the FIN, then the server's
 * RST answering a client segment that went through the old master, at the
 * client's ack: the FIN's own sequence number. It closes, as it does on the
 * node that saw the client's acks; once the client's ack is known, the
 * rule is the usual one.
 */
static void test_rst_at_fin_after_takeover(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info rst;

	(void)state;
	server_sent_3000(&t, 3000);
	lb_tcp_strip_local(&t);		/* what the standby imports */
	assert_int_equal(track(&t, REPLY, SI + 3001, CI + 1, F_FA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);
	/* One below the FIN's seq is still only in the window. */
	rst = seg(SI + 3000, 0, F_R, 0, 0);
	accept_ignored(&t, REPLY, &rst);
	assert_int_equal(track(&t, REPLY, SI + 3001, 0, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.ignored, 0);
	assert_int_equal(t.state, LB_TCP_CLOSE);

	/* The client's ack known and below the FIN: the FIN's seq is not exact. */
	server_sent_3000(&t, 1000);
	assert_int_equal(track(&t, REPLY, SI + 3001, CI + 1, F_FA, SWIN, 0), LB_TCP_ACCEPT);
	rst = seg(SI + 3001, 0, F_R, 0, 0);
	accept_ignored(&t, REPLY, &rst);
	assert_int_equal(t.state, LB_TCP_FIN_WAIT);

	/* Nor once the client has acked the FIN (its ack is then the end). */
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_FA, SWIN, 0), LB_TCP_ACCEPT);
	lb_tcp_strip_local(&t);
	assert_int_equal(track(&t, ORIG, CI + 1, SI + 2, F_A, 502, 0), LB_TCP_ACCEPT);
	refuse_seg(&t, REPLY, SI + 1, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	assert_int_equal(t.state, LB_TCP_CLOSE_WAIT);
}

static void test_rst_in_syn_sent(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	/* From the server: only with an ACK of the SYN (RFC 793). */
	refuse_seg(&t, REPLY, 0, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	refuse_seg(&t, REPLY, 0, CI, F_RA, 0, 0, LB_TCP_BAD_RST);
	refuse_seg(&t, REPLY, 0, CI + 2, F_RA, 0, 0, LB_TCP_BAD_RST);
	assert_int_equal(track(&t, REPLY, 0, CI + 1, F_RA, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	/* From the client: at the sequence after its SYN. */
	lb_tcp_init(&t, &syn);
	refuse_seg(&t, ORIG, CI + 2, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	refuse_seg(&t, ORIG, CI, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	assert_int_equal(track(&t, ORIG, CI + 1, 0, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
}

static void test_rst_in_syn_recv(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn = seg(CI, 0, F_S, CWIN, 0);

	(void)state;
	lb_tcp_init(&t, &syn);
	assert_int_equal(track(&t, REPLY, SI, CI + 1, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	refuse_seg(&t, ORIG, CI + 1 + SWIN + 1, 0, F_R, 0, 0, LB_TCP_BAD_RST);
	assert_int_equal(track(&t, ORIG, CI + 1, 0, F_R, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
}

/* --- flags ---------------------------------------------------------------- */

static void test_flags_valid_table(void **state)
{
	(void)state;
	/* Every combination of FIN, SYN, RST and ACK, with and without PSH
	 * and URG: exactly six are valid. */
	for (unsigned f = 0; f < 64; f++) {
		unsigned core = f & (LB_TCP_FIN | LB_TCP_SYN | LB_TCP_RST | LB_TCP_ACK);
		int want = core == F_S || core == F_SA || core == F_R || core == F_RA ||
			   core == F_FA || core == F_A;

		if (lb_tcp_flags_valid((uint8_t)f) != want)
			fail_msg("flags 0x%02x: valid %d, want %d", f,
				 lb_tcp_flags_valid((uint8_t)f), want);
	}
}

static void test_invalid_flags_refused(void **state)
{
	static const uint8_t bad[] = {
		0, LB_TCP_FIN, LB_TCP_PSH, LB_TCP_URG, LB_TCP_SYN | LB_TCP_FIN,
		LB_TCP_SYN | LB_TCP_RST, LB_TCP_SYN | LB_TCP_FIN | LB_TCP_ACK,
		LB_TCP_RST | LB_TCP_FIN, LB_TCP_RST | LB_TCP_FIN | LB_TCP_ACK, 0x3f,
	};
	struct lb_tcp t;

	(void)state;
	establish(&t);
	for (size_t i = 0; i < sizeof(bad); i++) {
		refuse_seg(&t, ORIG, CI + 1, SI + 1, bad[i], 502, 0, LB_TCP_BAD_FLAGS);
		refuse_seg(&t, REPLY, SI + 1, CI + 1, bad[i], 509, 0, LB_TCP_BAD_FLAGS);
	}
}

/* --- reopening ------------------------------------------------------------ */

static void to_time_wait(struct lb_tcp *t)
{
	establish(t);
	assert_int_equal(track(t, ORIG, CI + 1, SI + 1, F_FA, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(t, REPLY, SI + 1, CI + 2, F_FA, 509, 0), LB_TCP_ACCEPT);
	assert_int_equal(track(t, ORIG, CI + 2, SI + 2, F_A, 502, 0), LB_TCP_ACCEPT);
	assert_int_equal(t->state, LB_TCP_TIME_WAIT);
}

static void test_syn_in_time_wait(void **state)
{
	struct lb_tcp t;
	struct lb_pkt_info syn;

	(void)state;
	to_time_wait(&t);
	/* A new connection on the same tuple, whatever its ISN (conntrack
	 * reopens; random-ISN clients and NATs need it). */
	syn = syn_ws(CI - 5000, 2000, 4);
	assert_int_equal(lb_tcp_track(&t, ORIG, &syn), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_SENT);
	assert_int_equal(t.isn[ORIG], CI - 5000);
	assert_int_equal(t.peer[ORIG].end, CI - 4999);
	assert_int_equal(t.peer[ORIG].wscale, 4);
	assert_int_equal(t.peer[REPLY].flags, 0);
	assert_int_equal(track(&t, REPLY, 9999, CI - 4999, F_SA, SWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_RECV);
	/* Above the old space too. */
	to_time_wait(&t);
	assert_int_equal(track(&t, ORIG, CI + 3, 0, F_S, CWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.isn[ORIG], CI + 3);
}

static void test_syn_in_close_reopens(void **state)
{
	struct lb_tcp t;

	(void)state;
	establish(&t);
	assert_int_equal(track(&t, REPLY, SI + 1, CI + 1, F_RA, 0, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_CLOSE);
	/* Any sequence number: a RST ended the old one. */
	assert_int_equal(track(&t, ORIG, 5, 0, F_S, CWIN, 0), LB_TCP_ACCEPT);
	assert_int_equal(t.state, LB_TCP_SYN_SENT);
	assert_int_equal(t.isn[ORIG], 5);
	assert_int_equal(t.peer[ORIG].end, 6);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(lb_tcp_state_name(LB_TCP_NONE), "none");
	assert_string_equal(lb_tcp_state_name(LB_TCP_ESTABLISHED), "established");
	assert_string_equal(lb_tcp_state_name(LB_TCP_TIME_WAIT), "time_wait");
	assert_string_equal(lb_tcp_state_name(LB_TCP_CLOSE), "close");
	assert_string_equal(lb_tcp_state_name(LB_TCP_STATE_COUNT), "?");
	assert_string_equal(lb_tcp_result_name(LB_TCP_ACCEPT), "accept");
	assert_string_equal(lb_tcp_result_name(LB_TCP_BAD_RST), "bad_rst");
	assert_string_equal(lb_tcp_result_name(LB_TCP_BAD_STATE), "bad_state");
	assert_string_equal(lb_tcp_result_name(LB_TCP_RESULT_COUNT), "?");
}

static void test_seq_compare(void **state)
{
	(void)state;
	assert_true(lb_seq_lt(0xfffffff0u, 0x10));
	assert_true(lb_seq_gt(0x10, 0xfffffff0u));
	assert_true(lb_seq_leq(5, 5));
	assert_true(lb_seq_geq(5, 5));
	assert_false(lb_seq_lt(5, 5));
	assert_false(lb_seq_gt(0x7fffffffu, 0x80000000u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_from_syn),
		cmocka_unit_test(test_handshake_established),
		cmocka_unit_test(test_synack_wrong_ack),
		cmocka_unit_test(test_synack_from_client_refused),
		cmocka_unit_test(test_final_ack_wrong_ack),
		cmocka_unit_test(test_ack_in_syn_sent_refused),
		cmocka_unit_test(test_server_data_in_syn_recv_refused),
		cmocka_unit_test(test_final_ack_with_data),
		cmocka_unit_test(test_syn_retransmission_in_syn_sent),
		cmocka_unit_test(test_synack_confirms_second_syn),
		cmocka_unit_test(test_syn_recv_real_client_wins),
		cmocka_unit_test(test_syn_retransmission_in_syn_recv),
		cmocka_unit_test(test_synack_retransmission),
		cmocka_unit_test(test_syn_on_established_accepted_unchanged),
		cmocka_unit_test(test_syn_in_closing_states),
		cmocka_unit_test(test_syn_from_server_refused),
		cmocka_unit_test(test_data_both_ways),
		cmocka_unit_test(test_retransmission_within_window_accepted),
		cmocka_unit_test(test_check_I_beyond_maxend),
		cmocka_unit_test(test_check_II_too_old),
		cmocka_unit_test(test_check_III_acks_unsent_data),
		cmocka_unit_test(test_check_IV_ancient_ack),
		cmocka_unit_test(test_wscale_both_sides),
		cmocka_unit_test(test_wscale_client_only),
		cmocka_unit_test(test_wscale_server_only),
		cmocka_unit_test(test_zero_window_probe),
		cmocka_unit_test(test_sequence_wraparound),
		cmocka_unit_test(test_wraparound_in_handshake_window),
		cmocka_unit_test(test_close_client_first),
		cmocka_unit_test(test_close_server_first),
		cmocka_unit_test(test_close_simultaneous),
		cmocka_unit_test(test_close_fin_acking_fin),
		cmocka_unit_test(test_rst_in_window_closes),
		cmocka_unit_test(test_rst_out_of_window_refused),
		cmocka_unit_test(test_rst_inexact_in_window),
		cmocka_unit_test(test_rst_at_fin_after_takeover),
		cmocka_unit_test(test_rst_in_syn_sent),
		cmocka_unit_test(test_rst_in_syn_recv),
		cmocka_unit_test(test_flags_valid_table),
		cmocka_unit_test(test_invalid_flags_refused),
		cmocka_unit_test(test_syn_in_time_wait),
		cmocka_unit_test(test_syn_in_close_reopens),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_seq_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
