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

void lb_tcp_init(struct lb_tcp *t, const struct lb_pkt_info *syn)
{
	struct lb_tcp_peer *c = &t->peer[LB_DIR_ORIG];

	*t = (struct lb_tcp){ .state = LB_TCP_SYN_SENT };
	t->isn[LB_DIR_ORIG] = syn->seq;
	c->end = c->maxend = seg_end(syn);
	c->maxwin = max_u32(syn->win, 1);
	c->flags = LB_TCP_PF_SEEN;
	if (syn->wscale != LB_PKT_NO_WSCALE) {
		c->wscale = syn->wscale;
		c->flags |= LB_TCP_PF_WSCALE;
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

static enum lb_tcp_result on_syn(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
	if (dir != LB_DIR_ORIG)
		return LB_TCP_BAD_STATE;	/* simultaneous open: not a service */
	switch (t->state) {
	case LB_TCP_SYN_SENT:
		if (pi->seq != t->isn[LB_DIR_ORIG])
			lb_tcp_init(t, pi);	/* a new attempt on the same tuple */
		return LB_TCP_ACCEPT;
	case LB_TCP_SYN_RECV:
		return pi->seq == t->isn[LB_DIR_ORIG] ? LB_TCP_ACCEPT : LB_TCP_BAD_STATE;
	case LB_TCP_TIME_WAIT:
		/* Reuse of the tuple, accepted only past the old sequence space
		 * so a delayed old SYN cannot reopen it (RFC 6191's idea). */
		if (!lb_seq_gt(pi->seq, t->peer[LB_DIR_ORIG].end))
			return LB_TCP_BAD_STATE;
		lb_tcp_init(t, pi);
		return LB_TCP_ACCEPT;
	case LB_TCP_CLOSE:
		lb_tcp_init(t, pi);
		return LB_TCP_ACCEPT;
	default:
		/* A SYN on a synchronized connection (the client rebooted and
		 * reused its port) passes untracked: the server answers with a
		 * challenge ACK (RFC 5961 §4), the client's stack resets, and
		 * the RST closes the entry. Dropping it would wedge the client. */
		return LB_TCP_ACCEPT;
	}
}

static enum lb_tcp_result on_rst(struct lb_tcp *t, enum lb_dir dir, const struct lb_pkt_info *pi)
{
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
	if (!(t->peer[!dir].flags & LB_TCP_PF_SEEN) || !in_window(t, dir, pi)) {
		t->used_slack = 0;
		return LB_TCP_BAD_RST;
	}
	t->state = LB_TCP_CLOSE;
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
			return LB_TCP_BAD_STATE;
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
	if (!lb_tcp_flags_valid(pi->flags))
		return LB_TCP_BAD_FLAGS;
	switch (classify(pi->flags)) {
	case SEG_SYN:
		return on_syn(t, dir, pi);
	case SEG_SYNACK:
		if (dir != LB_DIR_REPLY)
			return LB_TCP_BAD_STATE;
		if (t->state == LB_TCP_SYN_SENT)
			return on_synack(t, pi);
		/* A retransmitted SYN/ACK (our client's ACK was lost). */
		return pi->seq == t->isn[LB_DIR_REPLY] && t->state <= LB_TCP_ESTABLISHED
		       ? LB_TCP_ACCEPT : LB_TCP_BAD_STATE;
	case SEG_RST:
		return on_rst(t, dir, pi);
	default:
		return on_ack(t, dir, pi);
	}
}
