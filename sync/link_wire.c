/*
 * sync_link framing: what goes on the wire and the checks on what comes in.
 *
 *   0       2     3     4                               n-32          n
 *   +-------+-----+-----+-------------------------------+-------------+
 *   | 'L''B'| ver | 0   | Packet (protobuf-c, packed)   | HMAC-SHA256 |
 *   +-------+-----+-----+-------------------------------+-------------+
 *
 * Incoming bytes are checked in the order that costs an attacker the most
 * and us the least: size (4 + 32 <= n <= mtu), prefix, then the HMAC over
 * [0, n-32) in constant time. Only an authenticated datagram reaches the
 * protobuf decoder, and the decoder allocates from a per-link arena of fixed
 * size, so even an authenticated peer cannot make one datagram cost more
 * than that arena (an unpack that runs out simply fails: bad_decode).
 */
#include <errno.h>
#include <string.h>

#include "link_impl.h"

static const uint8_t link_prefix[LINK_PREFIX_LEN] = { 'L', 'B', 1, 0 };

size_t sync_link_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* HMAC-SHA256 of buf with a key whose state was prepared once (in
 * sync_link_new(), sync_link_set_key()); copying it saves hashing the key
 * pads per datagram. */
static void link_mac(const crypto_auth_hmacsha256_state *keyed, const uint8_t *buf, size_t len,
		     uint8_t out[static LINK_MAC_LEN])
{
	crypto_auth_hmacsha256_state st = *keyed;

	crypto_auth_hmacsha256_update(&st, buf, len);
	crypto_auth_hmacsha256_final(&st, out);
}

/*
 * Stamps pkt with our identity and the next msg_seq, frames it and hands it
 * to ops->send. Returns 0, or -EMSGSIZE when it would not fit the mtu (our
 * size bounds are computed so that this does not happen; nothing is sent and
 * no msg_seq is used).
 */
int sync_link_wire_send(struct sync_link *link, Lbsync__Packet *pkt)
{
	size_t body, len;

	pkt->node_id = link->conf.node_id;
	pkt->epoch = link->conf.epoch;
	pkt->msg_seq = link->msg_seq + 1;
	body = lbsync__packet__get_packed_size(pkt);
	if (body > link->conf.mtu - LINK_PREFIX_LEN - LINK_MAC_LEN)
		return -EMSGSIZE;
	link->msg_seq++;
	memcpy(link->txbuf, link_prefix, LINK_PREFIX_LEN);
	lbsync__packet__pack(pkt, link->txbuf + LINK_PREFIX_LEN);
	len = LINK_PREFIX_LEN + body;
	link_mac(&link->mac_base, link->txbuf, len, link->txbuf + len);
	len += LINK_MAC_LEN;
	link->stats.sent++;
	link->stats.sent_bytes += len;
	link->ops->send(link->arg, link->txbuf, len);
	return 0;
}

static void *arena_alloc(void *data, size_t size)
{
	struct sync_link *link = data;
	size_t need = (size + 15) & ~(size_t)15;	/* max_align_t */
	void *p;

	if (need < size || need > link->arena_size - link->arena_used)
		return NULL;
	p = link->arena + link->arena_used;
	link->arena_used += need;
	return p;
}

/* Everything goes at once when the next datagram resets the arena. */
static void arena_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

void sync_link_arena_setup(struct sync_link *link)
{
	link->alloc.alloc = arena_alloc;
	link->alloc.free = arena_free;
	link->alloc.allocator_data = link;
}

static int seq_ok(uint64_t seq)
{
	return seq <= LINK_SEQ_MAX;
}

/* What protobuf-c cannot check for us: the values the link relies on.
 * Every sequence number stays below LINK_SEQ_MAX (link_impl.h), so that
 * no window or loop bound computed from one can wrap. */
static int packet_sane(const Lbsync__Packet *pkt)
{
	if (pkt->msg_seq == 0 || !seq_ok(pkt->msg_seq))
		return 0;	/* msg_seq counts from 1; 0 would slip the window */
	switch (pkt->body_case) {
	case LBSYNC__PACKET__BODY_DATA:
		return pkt->data && pkt->data->data_seq != 0 && seq_ok(pkt->data->data_seq);
	case LBSYNC__PACKET__BODY_HEARTBEAT:
		return pkt->heartbeat != NULL && seq_ok(pkt->heartbeat->last_data_seq) &&
		       seq_ok(pkt->heartbeat->acked);
	case LBSYNC__PACKET__BODY_NACK:
		return pkt->nack != NULL;	/* ranges are clamped to what we sent */
	case LBSYNC__PACKET__BODY_ACK:
		return pkt->ack != NULL && seq_ok(pkt->ack->acked);
	case LBSYNC__PACKET__BODY_RESYNC_REQUEST:
		return pkt->resync_request != NULL;
	case LBSYNC__PACKET__BODY_GONE:
		return pkt->gone != NULL && seq_ok(pkt->gone->first_available);
	default:
		return 0;	/* no body, or one from a newer version */
	}
}

/*
 * Checks one datagram from the wire and decodes it. Returns LINK_ACCEPT with
 * *out set (release it with sync_link_wire_close()), or the reason it was
 * refused, with *out NULL. Nothing here changes the link's protocol state.
 */
enum link_verdict sync_link_wire_open(struct sync_link *link, const uint8_t *buf, size_t len,
				      Lbsync__Packet **out)
{
	uint8_t mac[LINK_MAC_LEN];
	Lbsync__Packet *pkt;

	*out = NULL;
	if (!buf || len < LINK_PREFIX_LEN + LINK_MAC_LEN || len > link->conf.mtu)
		return LINK_BAD_SIZE;
	if (memcmp(buf, link_prefix, LINK_PREFIX_LEN) != 0)
		return LINK_BAD_MAGIC;
	link_mac(&link->mac_base, buf, len - LINK_MAC_LEN, mac);
	if (sodium_memcmp(mac, buf + len - LINK_MAC_LEN, LINK_MAC_LEN) != 0) {
		/* During a key rotation the other key is good too. */
		if (!link->key_alt_until_ms)
			return LINK_BAD_HMAC;
		link_mac(&link->mac_alt, buf, len - LINK_MAC_LEN, mac);
		if (sodium_memcmp(mac, buf + len - LINK_MAC_LEN, LINK_MAC_LEN) != 0)
			return LINK_BAD_HMAC;
		sync_link_key_alt_seen(link);
	}
	link->arena_used = 0;
	pkt = lbsync__packet__unpack(&link->alloc, len - LINK_PREFIX_LEN - LINK_MAC_LEN,
				     buf + LINK_PREFIX_LEN);
	if (!pkt)
		return LINK_BAD_DECODE;
	if (!packet_sane(pkt)) {
		sync_link_wire_close(link, pkt);
		return LINK_BAD_DECODE;
	}
	*out = pkt;
	return LINK_ACCEPT;
}

void sync_link_wire_close(struct sync_link *link, Lbsync__Packet *pkt)
{
	if (pkt)
		lbsync__packet__free_unpacked(pkt, &link->alloc);
	link->arena_used = 0;
}
