/*
 * sync_link: the reliable, authenticated datagram channel between the two
 * lbd of a pair. Wire format and message kinds: sync/lbsync.proto.
 *
 * The link is a pure state machine: it never touches a socket or a clock.
 * Datagrams from the wire go in through sync_link_input(), datagrams to the
 * wire come out through ops->send(), time is passed in, and
 * sync_link_tick() runs the timers. So the same code runs in lbd (over UDP),
 * in unit tests over a simulated lossy link, and in drill replay.
 *
 * One link carries two independent streams: ours (we send Data, the peer
 * acks/NACKs it) and the peer's (we receive Data, we ack/NACK it). Both sides
 * run the same code.
 *
 * Sending: "send everything at full speed, then repair what was lost". Every
 * Data datagram gets the next data_seq and is kept in a ring of conf.ring
 * datagrams. A Nack from the peer names missing data_seq ranges; those still
 * in the ring are sent again (with a new msg_seq), for older ones the link
 * answers Gone. Heartbeats every conf.heartbeat_ms carry the last data_seq
 * sent, so the receiver notices loss at the tail, and the cumulative ack of
 * the peer's stream. Nothing here ever waits for the peer: a full ring simply
 * overwrites its oldest datagram.
 *
 * Receiving: each data_seq is delivered once, in arrival order (not held back
 * for holes: the application's records carry versions, and it refuses stale
 * ones). A hole is reported with a Nack after conf.nack_delay_ms (to let
 * reordered datagrams arrive) and reported again every conf.nack_retry_ms
 * while it lasts. When the peer answers Gone, or the hole is further back than
 * the receive window (conf.ring datagrams), the hole cannot be repaired: the
 * link skips it and calls ops->lost() so the application requests a bulk
 * resync.
 *
 * Security: the HMAC-SHA256 over each datagram (libsodium) is checked before
 * anything past the 4-byte prefix is decoded. Then: our own node id (a looped
 * datagram), any node id other than conf.peer_id, an epoch older than the
 * peer's current one, and a msg_seq seen before or older than a
 * 1024-datagram window are all refused and counted. Sequence numbers above
 * 2^62 are refused as undecodable, so no arithmetic on them can wrap.
 *
 * Freshness: a datagram can be replayed from a capture, and after our own
 * restart we remember nothing of the peer's msg_seq. So an epoch of the peer
 * counts only once it proves it is live: a Heartbeat of that epoch that
 * names OUR current epoch as peer_epoch (which no capture can hold: our
 * epoch is new with every start). Until then every datagram of it is
 * refused (unproven), except that its epoch is echoed in our heartbeats
 * (at once when first heard). Everything of that epoch sent before the
 * proof is refused as a replay, and its stream starts for us after the
 * proving heartbeat's last_data_seq (earlier Data went to an incarnation of
 * ours it did not know; a joining node gets that state from the bulk
 * resync it asks for). Proving a newer epoch than an earlier
 * proven one is the peer restarting: its stream starts again from data_seq 1
 * and ops->peer_restarted() is called.
 */
#ifndef SYNC_LINK_H
#define SYNC_LINK_H

#include <stddef.h>
#include <stdint.h>

#define SYNC_KEY_MIN 16		/* bytes of key material at least */
#define SYNC_KEY_MAX 256
#define SYNC_EPOCH_MAX ((UINT64_C(1) << 31) - 1)	/* request ids: epoch << 32 | n */

struct sync_link_conf {
	uint32_t node_id;	/* ours; non-zero */
	uint32_t peer_id;	/* the peer's; non-zero, != node_id; no other node is heard */
	uint64_t epoch;		/* ours; 1..SYNC_EPOCH_MAX, must grow across restarts
				 * (lbd persists a counter: a clock may step back) */
	const uint8_t *key;	/* HMAC key, copied by sync_link_new() */
	size_t key_len;		/* SYNC_KEY_MIN..SYNC_KEY_MAX */
	size_t ring;		/* Data datagrams kept for retransmission, and
				 * the receive window; >= 64 */
	size_t mtu;		/* largest datagram the link may send, >= 512 */
	uint32_t heartbeat_ms;	/* e.g. 100 */
	uint32_t nack_delay_ms;	/* e.g. 2 */
	uint32_t nack_retry_ms;	/* e.g. 20 */
	uint32_t peer_timeout_ms; /* no valid datagram this long: peer down, e.g. 1000 */
};

/* Roles as heartbeats carry them. */
enum sync_role { SYNC_ROLE_NONE = 0, SYNC_ROLE_MASTER = 1, SYNC_ROLE_BACKUP = 2,
		 SYNC_ROLE_FAULT = 3 };

struct sync_link_ops {
	/* Puts one datagram on the wire. Must not block; may drop. */
	void (*send)(void *arg, const uint8_t *buf, size_t len);
	/* A Data payload from the peer; each data_seq once. */
	void (*deliver)(void *arg, const uint8_t *payload, size_t len, uint64_t data_seq);
	/* The peer asked us for a bulk resync; echo request_id when done. */
	void (*resync_request)(void *arg, uint64_t request_id);
	/* Part of the peer's stream is lost for good: resync needed. */
	void (*lost)(void *arg, uint64_t first, uint64_t last);
	/* The peer started a new epoch (restarted). */
	void (*peer_restarted)(void *arg, uint64_t epoch);
	/* The peer now acknowledges all our data_seq <= acked. */
	void (*acked)(void *arg, uint64_t acked);
};

/* Counters; every refused datagram has its reason. */
struct sync_link_stats {
	uint64_t sent, sent_bytes, data_sent, retransmitted, heartbeats_sent;
	uint64_t nacks_sent, acks_sent, gone_sent, send_too_big;
	uint64_t received, data_received, duplicates, nacks_received, gone_received;
	uint64_t holes_lost;		/* data_seq given up on */
	uint64_t bad_size;		/* too short or over the mtu */
	uint64_t bad_magic;		/* prefix or version wrong */
	uint64_t bad_hmac;		/* forged or corrupted */
	uint64_t bad_decode;		/* authenticated but not a valid Packet */
	uint64_t own_node;		/* our own node id (looped) */
	uint64_t foreign_node;		/* a node that is not our peer */
	uint64_t stale_epoch;		/* the peer's previous incarnation */
	uint64_t replayed;		/* msg_seq seen before or too old */
	uint64_t unproven;		/* an epoch of the peer not yet proven live */
	uint64_t peer_restarts;
};

struct sync_link;

/*
 * Creates a link. ops and arg are kept; conf->key is copied. now_ms is
 * CLOCK_MONOTONIC milliseconds. Returns NULL and sets errno (EINVAL for a bad
 * conf, ENOMEM).
 */
struct sync_link *sync_link_new(const struct sync_link_conf *conf,
				const struct sync_link_ops *ops, void *arg, uint64_t now_ms);
void sync_link_free(struct sync_link *link);

/*
 * Sends payload as the next Data datagram (ack_request: ask the peer to
 * answer with an Ack at once). Returns the data_seq it got (>= 1), or 0 when
 * the payload does not fit conf.mtu with the framing (then nothing is sent;
 * see sync_link_max_payload()).
 */
uint64_t sync_link_send_data(struct sync_link *link, const uint8_t *payload, size_t len,
			     int ack_request, uint64_t now_ms);

/* Largest payload sync_link_send_data() accepts. */
size_t sync_link_max_payload(const struct sync_link *link);

/* A datagram from the wire (any bytes at all: this is the trust boundary). */
void sync_link_input(struct sync_link *link, const uint8_t *buf, size_t len, uint64_t now_ms);

/* Runs the timers (heartbeats, Nacks, peer timeout). Call at least every
 * sync_link_next_ms() - now. */
void sync_link_tick(struct sync_link *link, uint64_t now_ms);

/* When the next timer is due. */
uint64_t sync_link_next_ms(const struct sync_link *link);

/*
 * Asks the peer for a bulk resync; returns the request id it will echo. Ids
 * are epoch << 32 | n, so they never repeat across restarts: an answer to a
 * previous incarnation's request cannot be taken for ours. again: the id of
 * an earlier request to send once more (the request is not sequenced and
 * may be lost; the peer serving it knows the id and carries on), or 0 for a
 * new one.
 */
uint64_t sync_link_request_resync(struct sync_link *link, uint64_t again, uint64_t now_ms);

/* What our heartbeats tell the peer about us; a change is sent at the next tick. */
void sync_link_set_status(struct sync_link *link, enum sync_role role, int ready);

/* The peer as its last heartbeat described it; alive: heard within peer_timeout_ms. */
struct sync_peer_status {
	int alive;
	enum sync_role role;
	int ready;
	uint32_t node_id;	/* 0 until heard from */
	uint64_t epoch;
	uint64_t last_heard_ms;
};
void sync_link_peer(const struct sync_link *link, uint64_t now_ms, struct sync_peer_status *out);

/* All of the peer's data_seq <= this have been received (the cumulative ack). */
uint64_t sync_link_received_through(const struct sync_link *link);

/* data_seq of our last Data datagram, and how far the peer has acked it. */
uint64_t sync_link_last_sent(const struct sync_link *link);
uint64_t sync_link_peer_acked(const struct sync_link *link);

const struct sync_link_stats *sync_link_stats(const struct sync_link *link);

/*
 * Key rotation without a gap. The two nodes are given the new key one after
 * the other (each with sync_link_set_key()), within grace_ms of each other:
 *
 *   OFFERED   both keys are accepted; we still send with the old one (the
 *             peer may not have the new key yet), plus one heartbeat per
 *             period under the new key, so a peer that has it learns we do;
 *   SWITCHED  a datagram under the new key came from the peer: we send with
 *             it; the old key is still accepted (datagrams in flight);
 *   STEADY    grace_ms after sync_link_set_key(): the new key alone, whatever
 *             the peer did.
 *
 * A peer still on the old key only counts the probe heartbeats as bad_hmac.
 * A second call during a rotation makes the pending key current first.
 * Returns 0, or -EINVAL for a key of the wrong length (nothing changes).
 */
enum sync_key_state { SYNC_KEY_STEADY = 0, SYNC_KEY_OFFERED = 1, SYNC_KEY_SWITCHED = 2 };
int sync_link_set_key(struct sync_link *link, const uint8_t *key, size_t len, uint32_t grace_ms,
		      uint64_t now_ms);
enum sync_key_state sync_link_key_state(const struct sync_link *link);

#endif
