/*
 * lb_tcp: stateful tracking of one TCP connection, as a middlebox sees it.
 *
 * State machine (one transition function, lb_tcp_track()):
 *
 *   NONE --SYN(orig)--> SYN_SENT --SYN/ACK(reply)--> SYN_RECV
 *   SYN_RECV --ACK(orig) of the SYN/ACK--> ESTABLISHED
 *   ESTABLISHED --FIN--> FIN_WAIT --ACK of it--> CLOSE_WAIT
 *   FIN_WAIT|CLOSE_WAIT --FIN(other side)--> LAST_ACK --both acked--> TIME_WAIT
 *   any --exact RST--> CLOSE
 *   TIME_WAIT|CLOSE --new SYN(orig)--> SYN_SENT (tuple reuse, any ISN)
 *   SYN_SENT..LAST_ACK --SYN(orig) with another ISN--> (ignored: forwarded,
 *       remembered) --SYN/ACK acking it--> SYN_RECV of the new connection
 *
 * Off-path attacks (the rules of Linux conntrack, nf_conntrack_proto_tcp):
 *   RST  accepted (state CLOSE) only at the exact sequence number: the
 *        receiver's highest ack (its rcv_nxt as far as we saw it) or the
 *        sender's own end (the RST that ends a train of segments, and the
 *        one a stack sends when it aborts: snd_nxt). An RST inside the
 *        window but not exact is forwarded with the state unchanged, the
 *        way conntrack keeps the state "to allow a possible challenge
 *        ACK": a Linux endpoint answers it with a challenge ACK (RFC 5961
 *        §3.2), which passes as an ordinary ACK, and only the true peer can
 *        answer that with an exact RST. An RST below the receiver's ack
 *        or outside the window is refused (LB_TCP_BAD_RST). A tracker
 *        taken over from the peer does not know the receiver's acks until
 *        the receiver sends through this node (they are this node's own
 *        observation, not replicated): until then a sender's RST at its
 *        unacked FIN (the socketless stack's answer to a receiver that had
 *        not seen the FIN) is exact as well.
 *   SYN  never re-seeds a live tracker. In SYN_SENT..LAST_ACK a SYN with
 *        another ISN is forwarded and remembered (conntrack's "ignored"):
 *        the server decides. If it answers with a SYN/ACK that acks the
 *        remembered SYN, client and server agree on a new connection and
 *        the tracker follows (SYN_RECV); if it answers with a (challenge)
 *        ACK, the true client answers that with an exact RST, which
 *        closes the entry, and its retransmitted SYN reopens it. So a
 *        forged SYN can neither hold a tuple nor replace its ISN; the
 *        real client wins. In TIME_WAIT and CLOSE a SYN opens a new
 *        incarnation whatever its ISN (conntrack: "Reopened connection
 *        (RFC 1122)"); a forged one is again decided by the server.
 * Packets accepted under these rules without changing state set the out
 * flag ignored; the engine forwards them without refreshing the entry.
 *
 * The closing states are derived from which sides have sent a FIN and which
 * FINs were acknowledged, so they can only move forward.
 *
 * Window tracking follows G. van Rooij, "Real Stateful TCP Packet Filtering
 * in IP Filter" (2001). Per direction we keep
 *   end     highest sequence number sent plus its length (with SYN and FIN)
 *   maxend  highest end the receiver has allowed (its ack + window)
 *   maxwin  largest window the sender advertised (scaled)
 *   wscale  the sender's window scale, 0 unless both ends offered it
 * and accept a segment (seq, end, ack) from sender S to receiver R only when
 *   I   seq <= S.maxend                      not beyond what R allowed
 *   II  end >= S.end - R.maxwin              not older than one window
 *   III ack <= R.end                         does not ack unsent data
 *   IV  ack >= R.end - max(S.maxwin, 66000)  not an ancient ack
 * All comparisons are modulo 2^32.
 *
 * Takeover: a connection whose state came from the peer over the sync
 * channel may be up to one replication interval behind: its ends too low,
 * its maximum windows too small. slack[d] widens all four bounds for segments
 * sent in direction d by that many bytes; the engine sets it when state is
 * imported and clears it once
 * the takeover's grace period is over. Meanwhile every accepted ACK also
 * raises the acked side's end to the ack (an ACK proves the data was sent;
 * under exact tracking check III makes this a no-op), so the bounds catch up
 * with the connection whatever order its first segments come in, and
 * tracking is exact again when the slack goes.
 */
#ifndef LB_TCP_H
#define LB_TCP_H

#include <stdint.h>

#include "lb_pkt.h"

enum lb_tcp_state {
	LB_TCP_NONE = 0,
	LB_TCP_SYN_SENT,
	LB_TCP_SYN_RECV,
	LB_TCP_ESTABLISHED,
	LB_TCP_FIN_WAIT,
	LB_TCP_CLOSE_WAIT,
	LB_TCP_LAST_ACK,
	LB_TCP_TIME_WAIT,
	LB_TCP_CLOSE,
	LB_TCP_STATE_COUNT
};

enum lb_dir {
	LB_DIR_ORIG = 0,	/* client -> service */
	LB_DIR_REPLY = 1,	/* backend -> client */
};

enum lb_tcp_result {
	LB_TCP_ACCEPT = 0,
	LB_TCP_BAD_FLAGS,	/* a flag combination no stack sends */
	LB_TCP_OUT_OF_WINDOW,	/* fails one of the four window checks */
	LB_TCP_BAD_RST,		/* RST whose sequence is not acceptable */
	LB_TCP_BAD_HANDSHAKE,	/* SYN/ACK or final ACK acks the wrong number */
	LB_TCP_BAD_STATE,	/* a segment the state does not allow */
	LB_TCP_RESULT_COUNT
};

/* Per-direction flags. */
#define LB_TCP_PF_SEEN		0x01	/* this side has sent its SYN */
#define LB_TCP_PF_WSCALE	0x02	/* its SYN carried a window scale option */
#define LB_TCP_PF_FIN		0x04	/* it has sent a FIN */
#define LB_TCP_PF_FIN_ACKED	0x08	/* and the other side acked it */
#define LB_TCP_PF_MAXACK	0x10	/* maxack holds this side's highest ack */
/* Flags that hold only for this node's own observations: not replicated. */
#define LB_TCP_PF_LOCAL		LB_TCP_PF_MAXACK

struct lb_tcp_peer {
	uint32_t end;
	uint32_t maxend;
	uint32_t maxwin;
	uint8_t wscale;
	uint8_t flags;
	uint32_t maxack;	/* highest ack this side sent (LB_TCP_PF_MAXACK) */
};

/* A client SYN the tracker forwarded without acting on it (see above). */
struct lb_tcp_syn {
	uint32_t isn;
	uint16_t win;
	uint8_t wscale;		/* or LB_PKT_NO_WSCALE */
	uint8_t set;
};

struct lb_tcp {
	uint8_t state;			/* enum lb_tcp_state */
	uint8_t used_slack;		/* out: the last accepted segment needed slack */
	uint8_t ignored;		/* out: accepted, but the state did not move */
	uint32_t isn[2];		/* initial sequence numbers, by direction */
	struct lb_tcp_peer peer[2];	/* by direction of the sender */
	uint32_t slack[2];		/* takeover tolerance by direction, bytes */
	struct lb_tcp_syn ign;		/* the last ignored client SYN (local) */
};

/* Starts tracking from a connection's first SYN (client side). */
void lb_tcp_init(struct lb_tcp *t, const struct lb_pkt_info *syn);

/*
 * Checks a segment travelling in direction dir. When acceptable, advances the
 * state and the window bounds and returns LB_TCP_ACCEPT; otherwise returns
 * the reason and changes nothing.
 */
enum lb_tcp_result lb_tcp_track(struct lb_tcp *t, enum lb_dir dir,
				const struct lb_pkt_info *pi);

/*
 * Clears what only this node observed (maxack, the ignored SYN) before a
 * tracker is replicated or after one is imported.
 */
void lb_tcp_strip_local(struct lb_tcp *t);

/* True when flags form a combination that real stacks send. */
int lb_tcp_flags_valid(uint8_t flags);

/* Lower-case names for logs, counters and lbctl. */
const char *lb_tcp_state_name(enum lb_tcp_state s);
const char *lb_tcp_result_name(enum lb_tcp_result r);

/* Time_wait or close: both FINs acked, or a RST. The tracker's last states. */
static inline int lb_tcp_state_closed(uint8_t s)
{
	return s == LB_TCP_TIME_WAIT || s == LB_TCP_CLOSE;
}

/* Sequence number comparisons modulo 2^32. */
static inline int lb_seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int lb_seq_leq(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline int lb_seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int lb_seq_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

#endif
