/*
 * sync_link: the reliable, authenticated datagram channel between the two
 * lbd of a pair; the contract is include/sync_link.h, the wire format
 * sync/lbsync.proto and sync/link_wire.c. This file holds the lifecycle,
 * the timers and the accessors; link_tx.c our stream, link_rx.c the peer's.
 *
 * Memory: everything is allocated in sync_link_new() (the ring, the receive
 * window, one transmit buffer, the arena protobuf-c decodes into, the Nack
 * ranges); nothing on the per-datagram path calls malloc.
 *
 * Callbacks run inside sync_link_input()/sync_link_tick(). They may send
 * (sync_link_send_data(), sync_link_request_resync()) but must not feed the
 * link input or free it: the datagram being handled lives in the link's
 * decode arena until the call returns.
 *
 * Counting: stats.received counts accepted datagrams only; a refused one
 * changes nothing but its own reason's counter.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "link_impl.h"

#define LINK_MTU_MIN 512
#define LINK_MTU_MAX 65535	/* an IPv4/IPv6 UDP datagram cannot be larger */
#define LINK_RING_MIN 64

/* Widest framing of the Packet fields every datagram has (tag + varint):
 * node_id (uint32), epoch and msg_seq (uint64). */
#define LINK_HEAD_MAX (1 + 5 + 1 + 10 + 1 + 10)

/*
 * The largest payload whose Data datagram fits the mtu however wide the
 * varints get: prefix, MAC, the Packet head, the Data field's tag and
 * length, data_seq, ack_request, the payload's tag and length.
 */
static size_t link_payload_room(size_t mtu)
{
	size_t v = sync_link_varint_size(mtu);

	return mtu - LINK_PREFIX_LEN - LINK_MAC_LEN - LINK_HEAD_MAX -
	       (1 + v) - (1 + 10) - (1 + 1) - (1 + v);
}

/* How many SeqRanges (tag, length, two tagged uint64: 24 bytes at most)
 * fit one Nack next to its head and peer_epoch. */
static size_t link_nack_room(size_t mtu)
{
	size_t v = sync_link_varint_size(mtu);

	return (mtu - LINK_PREFIX_LEN - LINK_MAC_LEN - LINK_HEAD_MAX - (1 + v) - (1 + 10)) /
	       (1 + 1 + 11 + 11);
}

static int link_conf_ok(const struct sync_link_conf *c, const struct sync_link_ops *ops)
{
	return c && ops && ops->send && c->node_id != 0 && c->peer_id != 0 &&
	       c->peer_id != c->node_id && c->epoch >= 1 && c->epoch <= SYNC_EPOCH_MAX &&
	       c->key && c->key_len >= SYNC_KEY_MIN && c->key_len <= SYNC_KEY_MAX &&
	       c->ring >= LINK_RING_MIN && c->ring <= LINK_RING_MAX && c->mtu >= LINK_MTU_MIN && c->mtu <= LINK_MTU_MAX &&
	       c->heartbeat_ms > 0 && c->nack_retry_ms > 0 && c->peer_timeout_ms > 0;
}

static int link_alloc(struct sync_link *link)
{
	size_t ring = link->conf.ring, i;

	/* Legitimate datagrams decode into a few structs and one copy of
	 * the payload; hostile nesting gets 32 bytes per wire byte. */
	link->arena_size = 32 * link->conf.mtu + 4096;
	link->arena = malloc(link->arena_size);
	link->txbuf = malloc(link->conf.mtu);
	link->tx.slots = calloc(ring, sizeof(*link->tx.slots));
	link->tx.payloads = calloc(ring, link->max_payload);
	link->rx.seen = calloc(ring, sizeof(*link->rx.seen));
	link->rx.nack_due = calloc(ring, sizeof(*link->rx.nack_due));
	link->rx.ranges = calloc(link->rx.max_ranges, sizeof(*link->rx.ranges));
	link->rx.range_ptrs = calloc(link->rx.max_ranges, sizeof(*link->rx.range_ptrs));
	if (!link->arena || !link->txbuf || !link->tx.slots || !link->tx.payloads ||
	    !link->rx.seen || !link->rx.nack_due || !link->rx.ranges || !link->rx.range_ptrs)
		return -ENOMEM;
	for (i = 0; i < link->rx.max_ranges; i++) {
		lbsync__seq_range__init(&link->rx.ranges[i]);
		link->rx.range_ptrs[i] = &link->rx.ranges[i];
	}
	return 0;
}

struct sync_link *sync_link_new(const struct sync_link_conf *conf,
				const struct sync_link_ops *ops, void *arg, uint64_t now_ms)
{
	struct sync_link *link;

	if (!link_conf_ok(conf, ops)) {
		errno = EINVAL;
		return NULL;
	}
	if (sodium_init() < 0) {
		errno = EIO;	/* no usable randomness source: cannot happen on Linux */
		return NULL;
	}
	link = calloc(1, sizeof(*link));
	if (!link)
		goto err;
	link->conf = *conf;
	memcpy(link->key, conf->key, conf->key_len);
	link->conf.key = link->key;
	link->ops = ops;
	link->arg = arg;
	link->max_payload = link_payload_room(conf->mtu);
	link->rx.max_ranges = link_nack_room(conf->mtu);
	if (link_alloc(link) < 0)
		goto err;
	sync_link_arena_setup(link);
	crypto_auth_hmacsha256_init(&link->mac_base, link->key, link->conf.key_len);
	sync_link_rx_reset(link);
	link->next_heartbeat_ms = now_ms;	/* announce ourselves at once */
	return link;
err:
	sync_link_free(link);
	errno = ENOMEM;
	return NULL;
}

void sync_link_free(struct sync_link *link)
{
	if (!link)
		return;
	sodium_memzero(link->key, sizeof(link->key));
	sodium_memzero(&link->mac_base, sizeof(link->mac_base));
	sodium_memzero(&link->mac_alt, sizeof(link->mac_alt));
	free(link->rx.range_ptrs);
	free(link->rx.ranges);
	free(link->rx.nack_due);
	free(link->rx.seen);
	free(link->tx.payloads);
	free(link->tx.slots);
	free(link->txbuf);
	free(link->arena);
	free(link);
}

/*
 * Two timers: the next heartbeat, and the earliest hole due in a Nack (kept
 * lazily: it may be early, then the Nack pass finds nothing due and re-arms
 * it). The peer timeout needs none: liveness is judged from last_heard_ms
 * when asked, so there is nothing to do when it passes.
 */
/* ---- key rotation ---- */

static void key_swap(struct sync_link *link)
{
	crypto_auth_hmacsha256_state t = link->mac_base;

	link->mac_base = link->mac_alt;
	link->mac_alt = t;
	sodium_memzero(&t, sizeof(t));
}

static void key_forget_alt(struct sync_link *link)
{
	sodium_memzero(&link->mac_alt, sizeof(link->mac_alt));
	link->key_alt_until_ms = 0;
	link->key_alt_new = 0;
}

int sync_link_set_key(struct sync_link *link, const uint8_t *key, size_t len, uint32_t grace_ms,
		      uint64_t now_ms)
{
	if (!key || len < SYNC_KEY_MIN || len > SYNC_KEY_MAX)
		return -EINVAL;
	/* A rotation still under way ends here: its new key is the current
	 * one from now on, and only it and the newest are accepted. */
	if (link->key_alt_until_ms && link->key_alt_new)
		key_swap(link);
	crypto_auth_hmacsha256_init(&link->mac_alt, key, len);
	link->key_alt_until_ms = now_ms + (grace_ms ? grace_ms : 1);
	link->key_alt_new = 1;
	return 0;
}

/* The peer holds the new key: send with it; the old one stays accepted
 * for the rest of the grace period (datagrams already in flight). */
void sync_link_key_alt_seen(struct sync_link *link)
{
	if (!link->key_alt_new)
		return;
	key_swap(link);
	link->key_alt_new = 0;
}

enum sync_key_state sync_link_key_state(const struct sync_link *link)
{
	if (!link->key_alt_until_ms)
		return SYNC_KEY_STEADY;
	return link->key_alt_new ? SYNC_KEY_OFFERED : SYNC_KEY_SWITCHED;
}

/*
 * While the peer has not shown the new key: one heartbeat under it per
 * period, so that a peer which has it too learns we do (one it cannot
 * authenticate is refused there and changes nothing). At the end of the
 * grace period the new key is the only one, whatever the peer did.
 */
static void key_tick(struct sync_link *link, uint64_t now_ms, int heartbeat_sent)
{
	if (!link->key_alt_until_ms)
		return;
	if (now_ms >= link->key_alt_until_ms) {
		if (link->key_alt_new)
			key_swap(link);
		key_forget_alt(link);
		return;
	}
	if (heartbeat_sent && link->key_alt_new) {
		key_swap(link);
		sync_link_tx_heartbeat(link);
		key_swap(link);
	}
}

void sync_link_tick(struct sync_link *link, uint64_t now_ms)
{
	int heartbeat = now_ms >= link->next_heartbeat_ms;

	if (heartbeat) {
		sync_link_tx_heartbeat(link);
		link->next_heartbeat_ms += link->conf.heartbeat_ms;
		/* After a stall, one heartbeat, not a burst of missed ones. */
		if (link->next_heartbeat_ms <= now_ms)
			link->next_heartbeat_ms = now_ms + link->conf.heartbeat_ms;
	}
	if (now_ms >= link->rx.nack_next)
		sync_link_rx_nacks(link, now_ms);
	key_tick(link, now_ms, heartbeat);
}

uint64_t sync_link_next_ms(const struct sync_link *link)
{
	uint64_t next = link->rx.nack_next < link->next_heartbeat_ms ? link->rx.nack_next
								    : link->next_heartbeat_ms;

	return link->key_alt_until_ms && link->key_alt_until_ms < next ? link->key_alt_until_ms
									: next;
}

void sync_link_set_status(struct sync_link *link, enum sync_role role, int ready)
{
	enum sync_role r = (unsigned)role <= SYNC_ROLE_FAULT ? role : SYNC_ROLE_NONE;

	/* A change goes out with the next tick, not the next period: the peer
	 * decides on it (a master defers only to a ready backup). */
	if (r != link->role || (ready != 0) != link->ready)
		link->next_heartbeat_ms = 0;
	link->role = r;
	link->ready = ready != 0;
}

void sync_link_peer(const struct sync_link *link, uint64_t now_ms, struct sync_peer_status *out)
{
	const struct link_peer *p = &link->peer;

	memset(out, 0, sizeof(*out));
	if (!p->proven)
		return;		/* an unproven epoch may be a replay: nothing to say */
	out->alive = now_ms < p->last_heard_ms ||
		     now_ms - p->last_heard_ms < link->conf.peer_timeout_ms;
	out->role = p->role;
	out->ready = p->ready;
	out->node_id = link->conf.peer_id;
	out->epoch = p->epoch;
	out->last_heard_ms = p->last_heard_ms;
}

const struct sync_link_stats *sync_link_stats(const struct sync_link *link)
{
	return &link->stats;
}
