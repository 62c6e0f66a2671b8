/*
 * lb_tcp: the TCP state machine and window checks; see include/lb_tcp.h.
 */
#include "lb_tcp.h"

/* The floor of check IV's tolerance, from van Rooij's paper. */
#define MAX_ACK_WINDOW 66000u

enum seg_class { SEG_SYN, SEG_SYNACK, SEG_RST, SEG_FIN, SEG_ACK };

static const char *const state_names[LB_TCP_STATE_COUNT] = {
	"none", "syn_sent", "syn_recv", "established", "fin_wait",
	"close_wait", "last_ack", "time_wait", "close",
};

static const char *const result_names[LB_TCP_RESULT_COUNT] = {
	"accept", "bad_flags", "out_of_window", "bad_rst", "bad_handshake", "bad_state",
};

const char *lb_tcp_state_name(enum lb_tcp_state s)
{
	return s < LB_TCP_STATE_COUNT ? state_names[s] : "?";
}

const char *lb_tcp_result_name(enum lb_tcp_result r)
{
	return r < LB_TCP_RESULT_COUNT ? result_names[r] : "?";
}

int lb_tcp_flags_valid(uint8_t flags)
{
	uint8_t f = flags & (LB_TCP_FIN | LB_TCP_SYN | LB_TCP_RST | LB_TCP_ACK);

	switch (f) {
	case LB_TCP_SYN:
	case LB_TCP_SYN | LB_TCP_ACK:
	case LB_TCP_RST:
	case LB_TCP_RST | LB_TCP_ACK:
	case LB_TCP_FIN | LB_TCP_ACK:
	case LB_TCP_ACK:
		return 1;
	default:	/* no flags, FIN without ACK, SYN with FIN or RST, ... */
		return 0;
	}
}

static enum seg_class classify(uint8_t flags)
{
	if (flags & LB_TCP_RST)
		return SEG_RST;
	if (flags & LB_TCP_SYN)
		return (flags & LB_TCP_ACK) ? SEG_SYNACK : SEG_SYN;
	return (flags & LB_TCP_FIN) ? SEG_FIN : SEG_ACK;
}

/* Sequence space a segment occupies: payload plus one for SYN and FIN. */
static uint32_t seg_end(const struct lb_pkt_info *pi)
{
	return pi->seq + pi->payload_len + !!(pi->flags & LB_TCP_SYN) +
	       !!(pi->flags & LB_TCP_FIN);
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

/* The client's side of a connection from its SYN's fields. */
static void init_client(struct lb_tcp *t, uint32_t isn, uint32_t end, uint16_t win,
			uint8_t wscale)
{
	struct lb_tcp_peer *c = &t->peer[LB_DIR_ORIG];

	*t = (struct lb_tcp){ .state = LB_TCP_SYN_SENT };
	t->isn[LB_DIR_ORIG] = isn;
	c->end = c->maxend = end;
	c->maxwin = max_u32(win, 1);
	c->flags = LB_TCP_PF_SEEN;
	if (wscale != LB_PKT_NO_WSCALE) {
		c->wscale = wscale;
		c->flags |= LB_TCP_PF_WSCALE;
	}
}

void lb_tcp_init(struct lb_tcp *t, const struct lb_pkt_info *syn)
{
	init_client(t, syn->seq, seg_end(syn), syn->win, syn->wscale);
}

void lb_tcp_strip_local(struct lb_tcp *t)
{
	for (int d = 0; d < 2; d++) {
		t->peer[d].flags &= (uint8_t)~LB_TCP_PF_LOCAL;
		t->peer[d].maxack = 0;
	}
	t->ign = (struct lb_tcp_syn){ 0 };
	t->ignored = 0;
}

/* Records the highest ack side snd has sent: the exact point for an RST to it. */
static void note_ack(struct lb_tcp_peer *snd, uint32_t ack)
{
	if (!(snd->flags & LB_TCP_PF_MAXACK) || lb_seq_gt(ack, snd->maxack)) {
		snd->maxack = ack;
		snd->flags |= LB_TCP_PF_MAXACK;
	}
}

/* The server's SYN/ACK: its side of the connection starts here. */
static enum lb_tcp_result on_synack(struct lb_tcp *t, const struct lb_pkt_info *pi)
{
	struct lb_tcp_peer *c = &t->peer[LB_DIR_ORIG], *s = &t->peer[LB_DIR_REPLY];

	if (pi->ack != t->isn[LB_DIR_ORIG] + 1)
		return LB_TCP_BAD_HANDSHAKE;
	t->isn[LB_DIR_REPLY] = pi->seq;
	s->end = seg_end(pi);
	s->maxwin = max_u32(pi->win, 1);
	s->flags = LB_TCP_PF_SEEN;
	note_ack(s, pi->ack);
	s->wscale = 0;
	if (pi->wscale != LB_PKT_NO_WSCALE && (c->flags & LB_TCP_PF_WSCALE)) {
		s->wscale = pi->wscale;
		s->flags |= LB_TCP_PF_WSCALE;
	} else {
		c->wscale = 0;	/* RFC 7323: scaling needs both sides' option */
	}
	/* Windows in SYN segments are never scaled. */
	s->maxend = s->end + c->maxwin;
	/* Sequence numbers: compare modulo 2^32, not as plain integers. */
	if (lb_seq_gt(pi->ack + pi->win, c->maxend))
		c->maxend = pi->ack + pi->win;
	t->state = LB_TCP_SYN_RECV;
	return LB_TCP_ACCEPT;
}

/*
 * Checks I-IV of the header comment, every bound widened by slack bytes: a
 * stale copy has ends and maxends too low (upper bounds too tight) and
 * maximum windows too small (lower bounds too tight). ack is ignored for
 * segments without ACK.
 */
static int window_ok(const struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi,
		     uint32_t slack)
{
	const struct lb_tcp_peer *snd = &t->peer[dir], *rcv = &t->peer[!dir];
	uint32_t end = seg_end(pi);

	if (!lb_seq_leq(pi->seq, snd->maxend + slack))
		return 0;
	if (!lb_seq_geq(end, snd->end - rcv->maxwin - slack))
		return 0;
	if (!(pi->flags & LB_TCP_ACK))
		return 1;
	return lb_seq_leq(pi->ack, rcv->end + slack) &&
	       lb_seq_geq(pi->ack, rcv->end - max_u32(snd->maxwin, MAX_ACK_WINDOW) - slack);
}

/* Exact check first; the takeover slack only when that fails. */
static int in_window(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	if (window_ok(t, dir, pi, 0))
		return 1;
	if (t->slack[dir] && window_ok(t, dir, pi, t->slack[dir])) {
		t->used_slack = 1;
		return 1;
	}
	return 0;
}

/* Moves the window bounds after an accepted segment. */
static void update_window(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	struct lb_tcp_peer *snd = &t->peer[dir], *rcv = &t->peer[!dir];
	uint32_t end = seg_end(pi), win = (uint32_t)pi->win << snd->wscale;

	if (lb_seq_gt(end, snd->end))
		snd->end = end;
	if (!(pi->flags & LB_TCP_ACK))
		return;
	snd->maxwin = max_u32(snd->maxwin, win);
	note_ack(snd, pi->ack);
	if (lb_seq_gt(pi->ack + win, rcv->maxend))
		rcv->maxend = pi->ack + win;
	/* An ACK proves the other side sent that far; only after a takeover
	 * (slack) can it be beyond what we saw. */
	if (lb_seq_gt(pi->ack, rcv->end))
		rcv->end = pi->ack;
	if ((rcv->flags & LB_TCP_PF_FIN) && lb_seq_geq(pi->ack, rcv->end))
		rcv->flags |= LB_TCP_PF_FIN_ACKED;
	if (pi->flags & LB_TCP_FIN)
		snd->flags |= LB_TCP_PF_FIN;
}

/* The closing states follow from the FIN flags of both sides. */
static enum lb_tcp_state closing_state(const struct lb_tcp *t)
{
	uint8_t a = t->peer[0].flags, b = t->peer[1].flags;
	int fins = !!(a & LB_TCP_PF_FIN) + !!(b & LB_TCP_PF_FIN);
	int acked = !!(a & LB_TCP_PF_FIN_ACKED) + !!(b & LB_TCP_PF_FIN_ACKED);

	if (fins == 0)
		return LB_TCP_ESTABLISHED;
	if (fins == 1)
		return acked ? LB_TCP_CLOSE_WAIT : LB_TCP_FIN_WAIT;
	return acked == 2 ? LB_TCP_TIME_WAIT : LB_TCP_LAST_ACK;
}

/* A client SYN forwarded to the server without acting on it (conntrack: sIG). */
static enum lb_tcp_result ignore_syn(struct lb_tcp *t, const struct lb_pkt_info *pi)
{
	t->ign = (struct lb_tcp_syn){ .isn = pi->seq, .win = pi->win, .wscale = pi->wscale,
				      .set = 1 };
	t->ignored = 1;
	return LB_TCP_ACCEPT;
}

/*
 * A client SYN; see "Off-path attacks" in lb_tcp.h. Whoever sent a SYN
 * first, only a SYN/ACK or an exact RST from the real endpoints moves the
 * tracker, so a forged SYN can neither re-seed it nor hold the tuple.
 */
static enum lb_tcp_result on_syn(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	if (dir != LB_DIR_ORIG)
		return LB_TCP_BAD_STATE;	/* simultaneous open: not a service */
	switch (t->state) {
	case LB_TCP_SYN_SENT:
	case LB_TCP_SYN_RECV:
		if (pi->seq == t->isn[LB_DIR_ORIG])
			return LB_TCP_ACCEPT;	/* retransmission */
		return ignore_syn(t, pi);
	case LB_TCP_TIME_WAIT:
	case LB_TCP_CLOSE:
		/* A new incarnation whatever its ISN, as conntrack reopens
		 * (RFC 1122 4.2.2.13 lets the server decide; random-ISN
		 * clients and NATs need it). */
		lb_tcp_init(t, pi);
		return LB_TCP_ACCEPT;
	default:
		/* A synchronized connection: the client may have rebooted and
		 * reused its port, or the SYN is forged. The server answers a
		 * challenge ACK (RFC 5961 §4), which the true client resets
		 * with an exact RST, or a SYN/ACK if it had forgotten the old
		 * connection, which on_synack_other() follows. */
		return ignore_syn(t, pi);
	}
}

/*
 * A SYN/ACK that is not the answer to the tracked SYN: the answer to an
 * ignored SYN (client and server agree on a new connection, so the tracker
 * follows them), or a retransmission (our client's ACK was lost).
 */
static enum lb_tcp_result on_synack_other(struct lb_tcp *t, const struct lb_pkt_info *pi)
{
	if (t->ign.set && pi->ack == t->ign.isn + 1) {
		struct lb_tcp_syn syn = t->ign;

		init_client(t, syn.isn, syn.isn + 1, syn.win, syn.wscale);
		return on_synack(t, pi);
	}
	if (t->state == LB_TCP_SYN_SENT)
		return LB_TCP_BAD_HANDSHAKE;
	return pi->seq == t->isn[LB_DIR_REPLY] && t->state <= LB_TCP_ESTABLISHED
	       ? LB_TCP_ACCEPT : LB_TCP_BAD_STATE;
}

/*
 * True when seq is where snd's FIN sits and its receiver's acks are unknown
 * here: a taken-over tracker's (maxack is this node's own observation, and
 * comes only with the receiver's next segment through it). A stack whose
 * socket is gone after its FIN answers with the ack of the segment it
 * got, which went through the old master; from a receiver that had not
 * yet seen the FIN, that is the FIN's own sequence number.
 */
static int rst_at_unacked_fin(const struct lb_tcp_peer *snd, const struct lb_tcp_peer *rcv,
			      uint32_t seq)
{
	return !(rcv->flags & LB_TCP_PF_MAXACK) && (snd->flags & LB_TCP_PF_FIN) &&
	       !(snd->flags & LB_TCP_PF_FIN_ACKED) && seq == snd->end - 1;
}

/*
 * RSTs after the SYN/ACK; see "Off-path attacks" in lb_tcp.h. Exact: the
 * sender's end or the receiver's highest ack. The endpoints' own RSTs are
 * exact: an aborting stack sends snd_nxt (our end of its side), a stack
 * without the socket sends the ack of the segment it answers (what the
 * receiver acked; its FIN, when that ack is not known here). A blind
 * attacker hits one with 2 or 3 chances in 2^32, where the old "anywhere in
 * the window" rule gave one in 256.
 */
static enum lb_tcp_result on_rst(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	const struct lb_tcp_peer *snd = &t->peer[dir], *rcv = &t->peer[!dir];
	int rcv_acked = !!(rcv->flags & LB_TCP_PF_MAXACK);

	if (t->state == LB_TCP_SYN_SENT) {
		/* RFC 793: a RST in SYN-SENT is acceptable if it acks the SYN. */
		if (dir == LB_DIR_REPLY ? ((pi->flags & LB_TCP_ACK) &&
					   pi->ack == t->isn[LB_DIR_ORIG] + 1)
					: pi->seq == t->peer[LB_DIR_ORIG].end) {
			t->state = LB_TCP_CLOSE;
			return LB_TCP_ACCEPT;
		}
		return LB_TCP_BAD_RST;
	}
	if (!(rcv->flags & LB_TCP_PF_SEEN) || !in_window(t, dir, pi)) {
		t->used_slack = 0;
		return LB_TCP_BAD_RST;
	}
	if (pi->seq == snd->end || (rcv_acked && pi->seq == rcv->maxack) ||
	    rst_at_unacked_fin(snd, rcv, pi->seq)) {
		t->state = LB_TCP_CLOSE;
		return LB_TCP_ACCEPT;
	}
	t->used_slack = 0;
	/* Below what the receiver acked, the endpoint drops it silently
	 * (RFC 5961 §3.2: out of window); conntrack calls it invalid. */
	if (rcv_acked && lb_seq_lt(pi->seq, rcv->maxack))
		return LB_TCP_BAD_RST;
	/* In the window but inexact: the endpoint will challenge it. A
	 * tracker that came over the sync channel may be behind, so the
	 * real RST of a taken-over connection can land here too; its entry
	 * then ends on the idle timeout, the price of not trusting blind
	 * RSTs during the grace period. */
	t->ignored = 1;
	return LB_TCP_ACCEPT;
}

/*
 * The server's ACK before the client's final one: only the answer to an
 * ignored SYN (a request socket acks what it holds, the client's ISN + 1,
 * RFC 793 p. 69), which the true client resets with an exact RST. Forwarded
 * without a state change, like conntrack's ignored reply ACK.
 */
static enum lb_tcp_result server_ack_early(struct lb_tcp *t, const struct lb_pkt_info *pi)
{
	if (!t->ign.set || pi->payload_len || (pi->flags & LB_TCP_FIN) ||
	    pi->ack != t->isn[LB_DIR_ORIG] + 1 || pi->seq != t->isn[LB_DIR_REPLY] + 1)
		return LB_TCP_BAD_STATE;
	t->ignored = 1;
	return LB_TCP_ACCEPT;
}

/* ACK and FIN segments: the handshake's end, data, and closing. */
static enum lb_tcp_result on_ack(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	if (t->state == LB_TCP_SYN_SENT || t->state == LB_TCP_CLOSE)
		return LB_TCP_BAD_STATE;
	if (!in_window(t, dir, pi)) {
		t->used_slack = 0;
		return LB_TCP_OUT_OF_WINDOW;
	}
	if (t->state == LB_TCP_SYN_RECV) {
		/* The server speaks only after the client's ACK, which we would
		 * have seen, unless this state came over the sync channel just
		 * before a takeover and that ACK did not: then the server's
		 * segment proves the handshake finished. */
		if (dir != LB_DIR_ORIG && !t->slack[dir])
			return server_ack_early(t, pi);
		/* The final ACK acks the SYN/ACK; after a takeover it may ack
		 * server data too (check III bounds it: exactly ISN+1 when we
		 * saw everything). */
		if (dir == LB_DIR_ORIG && lb_seq_lt(pi->ack, t->isn[LB_DIR_REPLY] + 1))
			return LB_TCP_BAD_HANDSHAKE;
		t->state = LB_TCP_ESTABLISHED;
	}
	update_window(t, dir, pi);
	t->state = closing_state(t);
	return LB_TCP_ACCEPT;
}

enum lb_tcp_result lb_tcp_track(struct lb_tcp *t, enum lb_dir dir,
				const struct lb_pkt_info *pi)
{
	t->used_slack = 0;
	t->ignored = 0;
	if (!lb_tcp_flags_valid(pi->flags))
		return LB_TCP_BAD_FLAGS;
	switch (classify(pi->flags)) {
	case SEG_SYN:
		return on_syn(t, dir, pi);
	case SEG_SYNACK:
		if (dir != LB_DIR_REPLY)
			return LB_TCP_BAD_STATE;
		if (t->state == LB_TCP_SYN_SENT && pi->ack == t->isn[LB_DIR_ORIG] + 1)
			return on_synack(t, pi);
		return on_synack_other(t, pi);
	case SEG_RST:
		return on_rst(t, dir, pi);
	default:
		return on_ack(t, dir, pi);
	}
}
