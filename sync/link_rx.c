/*
 * sync_link, the peer's side: admitting an authenticated datagram (who sent
 * it, which incarnation, seen before?), then acting on it; and the peer's
 * Data stream as we receive it.
 *
 * Admission, after link_wire.c has checked size, prefix, HMAC, decoding and
 * that every sequence number is below 2^62:
 *   node_id == ours                  own_node (a looped datagram)
 *   node_id != conf.peer_id          foreign_node (the pair is fixed)
 *   epoch < the peer's               stale_epoch (its previous life)
 *   epoch > the peer's (or first)    a candidate: echoed in our heartbeats,
 *                                    nothing else until it is proven
 *   epoch not yet proven             unproven, unless this datagram is a
 *                                    Heartbeat naming our own epoch: then
 *                                    the epoch is proven, its replay window
 *                                    starts at this msg_seq (all below
 *                                    refused), its stream after the
 *                                    heartbeat's last_data_seq, and if an
 *                                    earlier epoch had been proven, the peer
 *                                    restarted
 *   msg_seq seen, or 1024 or more
 *   below the highest seen           replayed
 * Only then does the datagram count as received, keep the peer alive, and
 * reach its handler (a table indexed by the already validated body kind).
 *
 * Receiving the peer's stream: data_seq is delivered at once, in arrival
 * order, each only once. Holes wait nack_delay_ms for reordered datagrams,
 * then go out in Nacks every nack_retry_ms until filled. A hole that falls
 * out of the window (a data_seq more than ring beyond the cumulative point)
 * or that the peer says is Gone is given up: holes_lost, ops->lost().
 */
#include <stddef.h>
#include <string.h>

#include "link_impl.h"

/* ---- admission ---- */

static const size_t verdict_counter[LINK_VERDICT_MAX] = {
	[LINK_BAD_SIZE] = offsetof(struct sync_link_stats, bad_size),
	[LINK_BAD_MAGIC] = offsetof(struct sync_link_stats, bad_magic),
	[LINK_BAD_HMAC] = offsetof(struct sync_link_stats, bad_hmac),
	[LINK_BAD_DECODE] = offsetof(struct sync_link_stats, bad_decode),
	[LINK_OWN_NODE] = offsetof(struct sync_link_stats, own_node),
	[LINK_FOREIGN_NODE] = offsetof(struct sync_link_stats, foreign_node),
	[LINK_STALE_EPOCH] = offsetof(struct sync_link_stats, stale_epoch),
	[LINK_REPLAYED] = offsetof(struct sync_link_stats, replayed),
	[LINK_UNPROVEN] = offsetof(struct sync_link_stats, unproven),
};

static void link_count_refused(struct sync_link *link, enum link_verdict v)
{
	uint64_t *counter = (uint64_t *)((char *)&link->stats + verdict_counter[v]);

	(*counter)++;
}

static int replay_bit(const struct link_peer *p, uint64_t seq)
{
	return (p->replay_bits[(seq % LINK_REPLAY_WINDOW) / 64] >> (seq % 64)) & 1;
}

static void replay_set(struct link_peer *p, uint64_t seq, int on)
{
	uint64_t *word = &p->replay_bits[(seq % LINK_REPLAY_WINDOW) / 64];
	uint64_t bit = UINT64_C(1) << (seq % 64);

	*word = on ? *word | bit : *word & ~bit;
}

/* Anti-replay over the peer's msg_seq, as IPsec does it: the highest seen,
 * and one bit for each of the 1024 below it. Returns 1 if seq is new (and
 * records it), 0 if seen or too old. seq >= 1 (checked at decode). */
static int replay_accept(struct link_peer *p, uint64_t seq)
{
	if (seq > p->replay_top) {
		if (seq - p->replay_top >= LINK_REPLAY_WINDOW) {
			memset(p->replay_bits, 0, sizeof(p->replay_bits));
		} else {
			/* the slots the window slides onto held seq - 1024 */
			for (uint64_t s = p->replay_top + 1; s < seq; s++)
				replay_set(p, s, 0);
		}
		p->replay_top = seq;
		replay_set(p, seq, 1);
		return 1;
	}
	if (p->replay_top - seq >= LINK_REPLAY_WINDOW || replay_bit(p, seq))
		return 0;
	replay_set(p, seq, 1);
	return 1;
}

/* A new incarnation of the peer (or the first we hear of): nothing we knew
 * about its stream or its msg_seq applies any more, and it has yet to prove
 * it is live. Our next heartbeat goes out at once to echo its epoch. */
static void peer_start_epoch(struct sync_link *link, uint64_t epoch)
{
	link->peer.known = 1;
	link->peer.proven = 0;
	link->peer.epoch = epoch;
	link->peer.role = SYNC_ROLE_NONE;
	link->peer.ready = 0;
	link->peer.replay_top = 0;
	memset(link->peer.replay_bits, 0, sizeof(link->peer.replay_bits));
	sync_link_rx_reset(link);
	link->next_heartbeat_ms = 0;
}

/* A heartbeat naming our current epoch (which no capture can hold). */
static int proves_live(const struct sync_link *link, const Lbsync__Packet *pkt)
{
	return pkt->body_case == LBSYNC__PACKET__BODY_HEARTBEAT &&
	       pkt->heartbeat->peer_epoch == link->conf.epoch;
}

/*
 * The candidate epoch answered our current epoch, so this heartbeat was made
 * after we started: the epoch is live. Anything of it with a lower msg_seq
 * may come from a capture and is refused from now on (every bit of the
 * window set below replay_top). Its stream starts for us after the
 * heartbeat's last_data_seq: what it sent before was sent to an incarnation
 * of ours it did not know, may be replayed, and is what the bulk resync
 * that a joining node asks for covers; so it is skipped, not lost.
 */
static void peer_prove(struct sync_link *link, const Lbsync__Packet *pkt)
{
	struct link_peer *p = &link->peer;

	p->proven = 1;
	p->replay_top = pkt->msg_seq;
	memset(p->replay_bits, 0xff, sizeof(p->replay_bits));
	link->rx.cum = link->rx.top = pkt->heartbeat->last_data_seq;
	if (p->proven_before) {
		link->stats.peer_restarts++;
		if (link->ops->peer_restarted)
			link->ops->peer_restarted(link->arg, p->epoch);
	}
	p->proven_before = 1;
}

static enum link_verdict peer_admit(struct sync_link *link, const Lbsync__Packet *pkt)
{
	struct link_peer *p = &link->peer;

	if (pkt->node_id == link->conf.node_id)
		return LINK_OWN_NODE;
	if (pkt->node_id != link->conf.peer_id)
		return LINK_FOREIGN_NODE;
	if (p->known && pkt->epoch < p->epoch)
		return LINK_STALE_EPOCH;
	if (!p->known || pkt->epoch > p->epoch)
		peer_start_epoch(link, pkt->epoch);
	if (!p->proven) {
		if (!proves_live(link, pkt))
			return LINK_UNPROVEN;
		peer_prove(link, pkt);
		return LINK_ACCEPT;
	}
	return replay_accept(p, pkt->msg_seq) ? LINK_ACCEPT : LINK_REPLAYED;
}

/* ---- the peer's stream ---- */

static size_t rx_index(const struct sync_link *link, uint64_t data_seq)
{
	return (size_t)(data_seq % link->conf.ring);
}

static int rx_have(const struct sync_link *link, uint64_t data_seq)
{
	return link->rx.seen[rx_index(link, data_seq)] == data_seq;
}

void sync_link_rx_reset(struct sync_link *link)
{
	link->rx.cum = 0;
	link->rx.top = 0;
	/* data_seq 0 is never valid, so a zeroed slot matches nothing */
	memset(link->rx.seen, 0, link->conf.ring * sizeof(*link->rx.seen));
	link->rx.nack_next = LINK_NEVER;
}

/* The cumulative point: every data_seq up to it was delivered, or given up
 * and reported through ops->lost() (which is how it moves past a hole). */
uint64_t sync_link_received_through(const struct sync_link *link)
{
	return link->rx.cum;
}

/* Moves the cumulative point over everything received in a row. */
static void rx_advance(struct sync_link *link)
{
	struct link_rx *rx = &link->rx;

	while (rx->cum < rx->top && rx_have(link, rx->cum + 1))
		rx->cum++;
	if (rx->cum == rx->top)
		rx->nack_next = LINK_NEVER;	/* no hole left */
}

static void rx_lost(struct sync_link *link, uint64_t first, uint64_t last)
{
	link->stats.holes_lost += last - first + 1;
	if (link->ops->lost)
		link->ops->lost(link->arg, first, last);
}

/*
 * Gives up every data_seq <= upto that we lack (upto > cum), reporting each
 * run of missing ones once, and moves the cumulative point there. Only the
 * window (cum, cum + ring] can hold received datagrams; beyond it everything
 * is missing, so the work is bounded by ring whatever upto is.
 */
static void rx_give_up(struct sync_link *link, uint64_t upto)
{
	struct link_rx *rx = &link->rx;
	uint64_t win_end = rx->cum + link->conf.ring;
	uint64_t end = upto < win_end ? upto : win_end, run = 0;

	for (uint64_t s = rx->cum + 1; s <= end; s++) {
		if (!rx_have(link, s)) {
			if (!run)
				run = s;
		} else if (run) {
			rx_lost(link, run, s - 1);
			run = 0;
		}
	}
	if (upto > win_end && !run)
		run = win_end + 1;
	if (run)
		rx_lost(link, run, upto);
	rx->cum = upto;
	if (rx->top < upto)
		rx->top = upto;
	rx_advance(link);
}

/*
 * The peer has sent up to upto (from a Data or a heartbeat): whatever lies
 * between our top and upto is a hole, first reported after nack_delay_ms so
 * that datagrams merely reordered can still arrive. Datagrams further back
 * than the window are given up first, so the new holes fit the window.
 */
static void rx_extend(struct sync_link *link, uint64_t upto, uint64_t now_ms)
{
	struct link_rx *rx = &link->rx;
	uint64_t due = now_ms + link->conf.nack_delay_ms;

	if (upto <= rx->top)
		return;
	if (upto - rx->cum > link->conf.ring)
		rx_give_up(link, upto - link->conf.ring);
	for (uint64_t s = rx->top + 1; s <= upto; s++)
		rx->nack_due[rx_index(link, s)] = due;
	rx->top = upto;
	if (due < rx->nack_next)
		rx->nack_next = due;
}

/* Records data_seq as received; returns 0 if we already had it. */
static int rx_accept(struct sync_link *link, uint64_t data_seq, uint64_t now_ms)
{
	if (data_seq <= link->rx.cum)
		return 0;
	rx_extend(link, data_seq, now_ms);	/* data_seq itself is no hole:
						 * it is marked seen just below */
	if (rx_have(link, data_seq))
		return 0;
	link->rx.seen[rx_index(link, data_seq)] = data_seq;
	rx_advance(link);
	return 1;
}

/*
 * Collects into rx.ranges the holes from *pos on that are due, merging
 * neighbours, until the ranges that fit one Nack are used; re-arms each for
 * nack_retry_ms and lowers *next to the earliest hole still to come. Returns
 * the number of ranges; *pos is where the next Nack should start.
 */
static size_t rx_collect(struct sync_link *link, uint64_t *pos, uint64_t now_ms,
			 uint64_t *next)
{
	struct link_rx *rx = &link->rx;
	uint64_t retry = now_ms + link->conf.nack_retry_ms, s;
	size_t n = 0;

	for (s = *pos; s <= rx->top; s++) {
		uint64_t *due = &rx->nack_due[rx_index(link, s)];

		if (rx_have(link, s))
			continue;
		if (*due > now_ms) {
			*next = *due < *next ? *due : *next;
			continue;
		}
		if (n && rx->ranges[n - 1].last == s - 1) {
			rx->ranges[n - 1].last = s;
		} else {
			if (n == rx->max_ranges)
				break;
			rx->ranges[n].first = rx->ranges[n].last = s;
			n++;
		}
		*due = retry;
		*next = retry < *next ? retry : *next;
	}
	*pos = s;
	return n;
}

static void rx_send_nack(struct sync_link *link, size_t n)
{
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Nack nack = LBSYNC__NACK__INIT;

	nack.peer_epoch = link->peer.epoch;
	nack.n_missing = n;
	nack.missing = link->rx.range_ptrs;
	pkt.body_case = LBSYNC__PACKET__BODY_NACK;
	pkt.nack = &nack;
	if (sync_link_wire_send(link, &pkt) == 0)
		link->stats.nacks_sent++;
}

/* Reports every hole that is due, in as many Nacks as it takes (at most
 * ring / 2 ranges exist, so this is bounded), and re-arms the Nack timer. */
void sync_link_rx_nacks(struct sync_link *link, uint64_t now_ms)
{
	uint64_t pos = link->rx.cum + 1, next = LINK_NEVER;
	size_t n;

	while (pos <= link->rx.top) {
		n = rx_collect(link, &pos, now_ms, &next);
		if (n)
			rx_send_nack(link, n);
	}
	link->rx.nack_next = next;
}

/* ---- handlers, by body kind ---- */

static void on_data(struct sync_link *link, const Lbsync__Packet *pkt, uint64_t now_ms)
{
	const Lbsync__Data *d = pkt->data;

	link->stats.data_received++;
	if (rx_accept(link, d->data_seq, now_ms)) {
		if (link->ops->deliver)
			link->ops->deliver(link->arg, d->payload.data, d->payload.len, d->data_seq);
	} else {
		link->stats.duplicates++;
	}
	/* Even for a duplicate: our previous Ack may be what was lost. */
	if (d->has_ack_request && d->ack_request)
		sync_link_tx_ack(link);
}

static void on_heartbeat(struct sync_link *link, const Lbsync__Packet *pkt, uint64_t now_ms)
{
	const Lbsync__Heartbeat *hb = pkt->heartbeat;

	/* A role from a newer version that we do not know reads as none. */
	link->peer.role = hb->has_role && hb->role <= SYNC_ROLE_FAULT ?
		(enum sync_role)hb->role : SYNC_ROLE_NONE;
	link->peer.ready = hb->has_ready && hb->ready;
	sync_link_tx_on_ack(link, hb->peer_epoch, hb->acked);
	rx_extend(link, hb->last_data_seq, now_ms);	/* loss at the tail */
}

static void on_nack(struct sync_link *link, const Lbsync__Packet *pkt, uint64_t now_ms)
{
	(void)now_ms;
	link->stats.nacks_received++;
	sync_link_tx_on_nack(link, pkt->nack);
}

static void on_ack(struct sync_link *link, const Lbsync__Packet *pkt, uint64_t now_ms)
{
	(void)now_ms;
	sync_link_tx_on_ack(link, pkt->ack->peer_epoch, pkt->ack->acked);
}

static void on_resync_request(struct sync_link *link, const Lbsync__Packet *pkt,
			      uint64_t now_ms)
{
	(void)now_ms;
	if (link->ops->resync_request)
		link->ops->resync_request(link->arg, pkt->resync_request->request_id);
}

/* The peer no longer has anything below first_available: what we still
 * lack of it will never come. */
static void on_gone(struct sync_link *link, const Lbsync__Packet *pkt, uint64_t now_ms)
{
	uint64_t first = pkt->gone->first_available;

	(void)now_ms;
	link->stats.gone_received++;
	if (first > 1 && first - 1 > link->rx.cum)
		rx_give_up(link, first - 1);
}

typedef void link_handler(struct sync_link *, const Lbsync__Packet *, uint64_t);

static link_handler *const handlers[] = {
	[LBSYNC__PACKET__BODY_DATA] = on_data,
	[LBSYNC__PACKET__BODY_HEARTBEAT] = on_heartbeat,
	[LBSYNC__PACKET__BODY_NACK] = on_nack,
	[LBSYNC__PACKET__BODY_ACK] = on_ack,
	[LBSYNC__PACKET__BODY_RESYNC_REQUEST] = on_resync_request,
	[LBSYNC__PACKET__BODY_GONE] = on_gone,
};

void sync_link_input(struct sync_link *link, const uint8_t *buf, size_t len, uint64_t now_ms)
{
	Lbsync__Packet *pkt;
	enum link_verdict v;

	v = sync_link_wire_open(link, buf, len, &pkt);
	if (v == LINK_ACCEPT)
		v = peer_admit(link, pkt);
	if (v != LINK_ACCEPT) {
		link_count_refused(link, v);
		goto out;
	}
	link->stats.received++;
	link->peer.last_heard_ms = now_ms;
	/* body_case was checked against exactly these kinds at decode */
	handlers[pkt->body_case](link, pkt, now_ms);
out:
	sync_link_wire_close(link, pkt);
}
