/*
 * sync_link, our side: the Data stream we send, its retransmission ring, the
 * peer's acks and Nacks of it, and the datagrams that carry no data
 * (heartbeats, Acks of the peer's stream, Gone, resync requests).
 *
 * The ring holds the last conf.ring Data datagrams, indexed by
 * data_seq % ring: their payload and ack_request flag, which is all a
 * retransmission needs (it is framed again with a fresh msg_seq and HMAC, so
 * the peer's anti-replay window accepts it). A full ring overwrites its
 * oldest datagram without asking anyone: the sender never waits for acks.
 */
#include <string.h>

#include "link_impl.h"

static uint64_t tx_oldest(const struct sync_link *link)
{
	uint64_t last = link->tx.last_seq;

	return last >= link->conf.ring ? last - link->conf.ring + 1 : 1;
}

static size_t tx_index(const struct sync_link *link, uint64_t data_seq)
{
	return (size_t)(data_seq % link->conf.ring);
}

/* Frames the ring's copy of data_seq (which must be in the ring). */
static void tx_send_slot(struct sync_link *link, uint64_t data_seq)
{
	size_t i = tx_index(link, data_seq);
	const struct link_tx_slot *slot = &link->tx.slots[i];
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Data data = LBSYNC__DATA__INIT;

	data.data_seq = slot->data_seq;
	data.has_ack_request = slot->ack_request;
	data.ack_request = slot->ack_request;
	data.payload.data = link->tx.payloads + i * link->max_payload;
	data.payload.len = slot->len;
	pkt.body_case = LBSYNC__PACKET__BODY_DATA;
	pkt.data = &data;
	/* Cannot fail: max_payload leaves room for the widest framing. */
	(void)sync_link_wire_send(link, &pkt);
}

uint64_t sync_link_send_data(struct sync_link *link, const uint8_t *payload, size_t len,
			     int ack_request, uint64_t now_ms)
{
	struct link_tx_slot *slot;
	uint64_t seq;
	size_t i;

	(void)now_ms;	/* nothing on the send path is timed */
	if (len > link->max_payload || (!payload && len)) {
		link->stats.send_too_big++;
		return 0;
	}
	seq = link->tx.last_seq + 1;
	i = tx_index(link, seq);
	slot = &link->tx.slots[i];
	if (len)
		memcpy(link->tx.payloads + i * link->max_payload, payload, len);
	slot->data_seq = seq;
	slot->len = (uint32_t)len;
	slot->ack_request = ack_request != 0;
	link->tx.last_seq = seq;
	link->stats.data_sent++;
	tx_send_slot(link, seq);
	return seq;
}

size_t sync_link_max_payload(const struct sync_link *link)
{
	return link->max_payload;
}

static void tx_gone(struct sync_link *link, uint64_t first_available)
{
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Gone gone = LBSYNC__GONE__INIT;

	gone.first_available = first_available;
	pkt.body_case = LBSYNC__PACKET__BODY_GONE;
	pkt.gone = &gone;
	if (sync_link_wire_send(link, &pkt) == 0)
		link->stats.gone_sent++;
}

/*
 * A Nack of our stream: resend what the ring still has, at most
 * LINK_RETX_PER_NACK datagrams (the peer asks again for the rest after
 * nack_retry_ms), and answer one Gone if any of it has left the ring.
 * Ranges are clamped to what we actually sent; an inverted range is skipped.
 */
void sync_link_tx_on_nack(struct sync_link *link, const Lbsync__Nack *nack)
{
	uint64_t oldest = tx_oldest(link), budget = LINK_RETX_PER_NACK;
	int gone = 0;
	size_t i;

	/* A Nack of a previous incarnation of ours: that stream is over. */
	if (nack->peer_epoch != link->conf.epoch)
		return;
	for (i = 0; i < nack->n_missing && budget > 0; i++) {
		uint64_t first = nack->missing[i]->first, last = nack->missing[i]->last;

		if (first == 0)
			first = 1;
		if (last > link->tx.last_seq)
			last = link->tx.last_seq;
		if (first > last)
			continue;
		if (first < oldest) {
			gone = 1;
			first = oldest;
		}
		/* last <= tx.last_seq, so s cannot wrap */
		for (uint64_t s = first; s <= last && budget > 0; s++, budget--) {
			tx_send_slot(link, s);
			link->stats.retransmitted++;
		}
	}
	if (gone)
		tx_gone(link, oldest);
}

/* The peer has all our data_seq <= acked (of our stream of epoch). */
void sync_link_tx_on_ack(struct sync_link *link, uint64_t epoch, uint64_t acked)
{
	if (epoch != link->conf.epoch)
		return;	/* about a previous incarnation of ours */
	if (acked > link->tx.last_seq)
		acked = link->tx.last_seq;	/* never ack what was not sent */
	if (acked <= link->tx.acked)
		return;
	link->tx.acked = acked;
	if (link->ops->acked)
		link->ops->acked(link->arg, acked);
}

/* Acks the peer's stream up to its cumulative point. */
void sync_link_tx_ack(struct sync_link *link)
{
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Ack ack = LBSYNC__ACK__INIT;

	ack.peer_epoch = link->peer.epoch;
	ack.acked = link->rx.cum;
	pkt.body_case = LBSYNC__PACKET__BODY_ACK;
	pkt.ack = &ack;
	if (sync_link_wire_send(link, &pkt) == 0)
		link->stats.acks_sent++;
}

/* Our status, the tail of our stream, and the ack of the peer's. */
void sync_link_tx_heartbeat(struct sync_link *link)
{
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Heartbeat hb = LBSYNC__HEARTBEAT__INIT;

	hb.last_data_seq = link->tx.last_seq;
	hb.peer_epoch = link->peer.known ? link->peer.epoch : 0;
	hb.acked = link->rx.cum;
	hb.has_role = 1;
	hb.role = (uint32_t)link->role;
	hb.has_ready = 1;
	hb.ready = link->ready != 0;
	pkt.body_case = LBSYNC__PACKET__BODY_HEARTBEAT;
	pkt.heartbeat = &hb;
	if (sync_link_wire_send(link, &pkt) == 0)
		link->stats.heartbeats_sent++;
}

uint64_t sync_link_request_resync(struct sync_link *link, uint64_t again, uint64_t now_ms)
{
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__ResyncRequest req = LBSYNC__RESYNC_REQUEST__INIT;
	uint64_t base = link->conf.epoch << 32;

	(void)now_ms;
	/* Ids live in our epoch's own range, so a ResyncDone answering a
	 * request of a previous incarnation (retransmitted from the peer's
	 * ring while we repair its stream) can never match one of ours. */
	if (link->last_request_id < base)
		link->last_request_id = base;
	if (again > base && again <= link->last_request_id)
		req.request_id = again;
	else
		req.request_id = ++link->last_request_id;
	pkt.body_case = LBSYNC__PACKET__BODY_RESYNC_REQUEST;
	pkt.resync_request = &req;
	(void)sync_link_wire_send(link, &pkt);
	return req.request_id;
}

uint64_t sync_link_last_sent(const struct sync_link *link)
{
	return link->tx.last_seq;
}

uint64_t sync_link_peer_acked(const struct sync_link *link)
{
	return link->tx.acked;
}
