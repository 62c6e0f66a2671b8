/*
 * sync_link internals shared by sync/link*.c; nothing outside sync/ includes
 * this. The public contract is include/sync_link.h.
 *
 * The files split by concern:
 *   link.c      lifecycle, conf checks, timers, accessors, key file
 *   link_wire.c framing: prefix + Packet + HMAC out, and the checks in
 *               (size, prefix, HMAC, bounded decode, sanity of the Packet)
 *   link_tx.c   our stream: ring, Data, retransmission on Nack, Gone,
 *               acks of our stream, heartbeats, resync requests
 *   link_rx.c   the peer: identity, epochs, anti-replay, and the peer's
 *               stream (delivery once, holes, Nacks, giving up)
 */
#ifndef SYNC_LINK_IMPL_H
#define SYNC_LINK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "lbsync.pb-c.h"
#include "sync_link.h"

#define LINK_PREFIX_LEN 4
#define LINK_MAC_LEN crypto_auth_hmacsha256_BYTES	/* 32 */
#define LINK_REPLAY_WINDOW 1024				/* msg_seq, bits */
#define LINK_RETX_PER_NACK 256	/* retransmissions one Nack may cause */
#define LINK_NEVER UINT64_MAX
/*
 * The largest msg_seq, data_seq, ack or Gone point a peer may send. At one
 * datagram a nanosecond a stream needs 146 years to get there, so nothing
 * legitimate is refused; and with every sequence number below 2^62 and the
 * ring below 2^24 (link_conf_ok), seq + ring and every loop bound over
 * (cum, top] stay far from 2^64: no loop in link_rx.c can wrap.
 */
#define LINK_SEQ_MAX (UINT64_C(1) << 62)
#define LINK_RING_MAX (1u << 24)

/* Why an incoming datagram was refused; doubles as the counter index. */
enum link_verdict {
	LINK_ACCEPT = 0,
	LINK_BAD_SIZE,
	LINK_BAD_MAGIC,
	LINK_BAD_HMAC,
	LINK_BAD_DECODE,
	LINK_OWN_NODE,
	LINK_FOREIGN_NODE,
	LINK_STALE_EPOCH,
	LINK_REPLAYED,
	LINK_UNPROVEN,
	LINK_VERDICT_MAX
};

/* One Data datagram of ours kept for retransmission; its payload is at
 * tx_payloads + index * max_payload. */
struct link_tx_slot {
	uint64_t data_seq;	/* 0: never used */
	uint32_t len;
	uint8_t ack_request;
};

/* Our outgoing stream. */
struct link_tx {
	uint64_t last_seq;		/* data_seq of our last Data */
	uint64_t acked;			/* the peer has all <= acked */
	struct link_tx_slot *slots;	/* conf.ring, by data_seq % ring */
	uint8_t *payloads;
};

/* The peer as we know it: who, which incarnation, and what it told us. */
struct link_peer {
	int known;			/* epoch is the newest we heard of */
	int proven;			/* and it answered our own epoch */
	int proven_before;		/* some earlier epoch was proven */
	uint64_t epoch;
	enum sync_role role;
	int ready;
	uint64_t last_heard_ms;
	uint64_t replay_top;		/* highest msg_seq accepted this epoch */
	uint64_t replay_bits[LINK_REPLAY_WINDOW / 64];	/* by msg_seq % 1024 */
};

/*
 * The peer's stream as we receive it. Every data_seq <= cum is received or
 * given up; of (cum, cum + ring] we track which arrived (seen[] holds the
 * data_seq last received in each slot, so a stale slot never matches) and
 * when each hole is next due in a Nack. top is the highest data_seq we know
 * the peer sent (from Data or a heartbeat); holes lie in (cum, top].
 */
struct link_rx {
	uint64_t cum;
	uint64_t top;
	uint64_t *seen;			/* conf.ring, by data_seq % ring */
	uint64_t *nack_due;		/* conf.ring, valid for holes only */
	uint64_t nack_next;		/* no hole due before; may be early */
	Lbsync__SeqRange *ranges;	/* Nack under construction */
	Lbsync__SeqRange **range_ptrs;
	size_t max_ranges;		/* that fit one Nack in the mtu */
};

struct sync_link {
	struct sync_link_conf conf;	/* conf.key points at key[] */
	uint8_t key[SYNC_KEY_MAX];
	crypto_auth_hmacsha256_state mac_base;	/* keyed once, copied per use */
	/* Key rotation (sync_link_set_key()): the other key, accepted until
	 * key_alt_until_ms (0: no rotation). While key_alt_new, it is the new
	 * key the peer has not yet shown it holds; afterwards the old one. */
	crypto_auth_hmacsha256_state mac_alt;
	uint64_t key_alt_until_ms;
	int key_alt_new;
	const struct sync_link_ops *ops;
	void *arg;
	struct sync_link_stats stats;
	size_t max_payload;

	uint8_t *txbuf;			/* conf.mtu; one datagram being built */
	uint8_t *arena;			/* bounded memory for one unpack */
	size_t arena_size, arena_used;
	ProtobufCAllocator alloc;

	uint64_t msg_seq;		/* last one we sent */
	enum sync_role role;
	int ready;
	uint64_t next_heartbeat_ms;
	uint64_t last_request_id;

	struct link_tx tx;
	struct link_peer peer;
	struct link_rx rx;
};

/* link_wire.c */
size_t sync_link_varint_size(uint64_t v);
int sync_link_wire_send(struct sync_link *link, Lbsync__Packet *pkt);
enum link_verdict sync_link_wire_open(struct sync_link *link, const uint8_t *buf, size_t len,
				      Lbsync__Packet **out);
void sync_link_wire_close(struct sync_link *link, Lbsync__Packet *pkt);
void sync_link_arena_setup(struct sync_link *link);

/* link.c: a datagram authenticated with the alternate key arrived. */
void sync_link_key_alt_seen(struct sync_link *link);

/* link_tx.c */
void sync_link_tx_heartbeat(struct sync_link *link);
void sync_link_tx_on_nack(struct sync_link *link, const Lbsync__Nack *nack);
void sync_link_tx_on_ack(struct sync_link *link, uint64_t epoch, uint64_t acked);
void sync_link_tx_ack(struct sync_link *link);

/* link_rx.c */
void sync_link_rx_reset(struct sync_link *link);
void sync_link_rx_nacks(struct sync_link *link, uint64_t now_ms);

#endif
