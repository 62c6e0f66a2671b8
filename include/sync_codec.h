/*
 * sync_codec: replication records <-> the Batch payload of sync Data
 * datagrams (sync/lbsync.proto).
 *
 * Encoding appends records one at a time to a batch that never exceeds the
 * payload size it was made for, so a batch always fits one datagram: each
 * record is packed with protobuf-c and framed as one element of a repeated
 * field of Batch (tag, length, bytes), which is exactly how protobuf encodes
 * a repeated field, so the result decodes as an ordinary Batch. Connections
 * go out as Open, Change and close records (version 4): an Open is a
 * connection's whole state, with its addresses named by index into lists the
 * batch carries once (client addresses, services, backends) and its creation
 * time relative to the batch's base_us; it gets an id, the next of the
 * sender's, implied by its place in the batch. A Change is a later state of
 * the same connection told against its Open (by id): only what differs, as
 * small differences. A close is the end of one: its version, state and ends
 * against the Open, a few bytes. Opens and closes are written as columns
 * (one packed field per value, entries in record order), which protobuf
 * encodes without a tag per value; they are assembled after the other
 * fields when the batch is taken. Which Open a Change can name is the
 * sender's business (sync_base.h); the codec only encodes and decodes.
 * Compact records (version 2) can still be written, for tests and
 * benchmarks.
 *
 * Decoding checks every field the engine will rely on (address lengths and
 * families, ports, TCP state, window scale) and skips records that fail,
 * counting them: an authenticated peer can still be buggy or newer.
 */
#ifndef SYNC_CODEC_H
#define SYNC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "lb_record.h"

/* Written: 4 (Open columns, Change records, close columns); read: 1 to 4. */
#define SYNC_RECORD_VERSION 4
#define SYNC_RECORD_VERSION_OLDEST 1

struct sync_batch;

/* A batch for payloads of at most max_payload bytes. NULL + errno on failure. */
struct sync_batch *sync_batch_new(size_t max_payload);
void sync_batch_free(struct sync_batch *b);

/*
 * Appends a record. Returns 0, or -ENOSPC when it does not fit next to what
 * the batch holds (take the batch, then add again), or -EMSGSIZE when it
 * would not fit even an empty batch.
 */
int sync_batch_add_conn(struct sync_batch *b, const struct lb_conn_state *st);
/*
 * A connection's whole state as an Open with id `id`. The ids of a batch's
 * Opens are consecutive: the first sets them, and any other id is -EINVAL.
 */
int sync_batch_add_open(struct sync_batch *b, uint64_t id, const struct lb_conn_state *st);
/* The id the batch's next Open must have, or 0: any (it has none yet). */
uint64_t sync_batch_next_open(const struct sync_batch *b);
/*
 * st, a later state of the connection opened as `base` under `id`, as a
 * Change against base. st must be the same incarnation (tuple, created_us).
 */
int sync_batch_add_change(struct sync_batch *b, uint64_t id, const struct lb_conn_state *base,
			  const struct lb_conn_state *st);
/*
 * True when st can go as a close against base: it is closed (time_wait or
 * close), newer, and its ISNs are the Open's.
 */
int sync_batch_can_close(const struct lb_conn_state *base, const struct lb_conn_state *st);
/* st as a close against base (opened under id); -EINVAL unless it can. */
int sync_batch_add_close(struct sync_batch *b, uint64_t id, const struct lb_conn_state *base,
			 const struct lb_conn_state *st);
int sync_batch_add_delete(struct sync_batch *b, const struct lb_conn_state *st);
int sync_batch_add_persist(struct sync_batch *b, const struct lb_persist_state *st);
int sync_batch_add_resync_done(struct sync_batch *b, uint64_t request_id, uint32_t conns);

/* Records in the batch. */
size_t sync_batch_records(const struct sync_batch *b);

/* The encoded payload (valid until the next add or reset) and its length. */
const uint8_t *sync_batch_data(const struct sync_batch *b, size_t *len);
/* Its length alone, without assembling it. */
size_t sync_batch_len(const struct sync_batch *b);

/* Empties the batch. */
void sync_batch_reset(struct sync_batch *b);

/* A decoded Change: what it says, before the Open it names is known. */
struct sync_change {
	uint32_t version;		/* a close: added to the Open's */
	uint8_t state;
	uint8_t close;			/* a close: ends, expires_ms and no more */
	uint32_t ends[2];		/* a close: each end minus the Open's */
	uint8_t has_isn[2];		/* else the Open's */
	uint8_t has_peers;		/* else the Open's */
	uint32_t isn[2];
	uint32_t peers[8];		/* differences from the Open's packed values */
	uint32_t expires_ms, rate[2], persist_ms;
};

/*
 * The state a Change describes, from the Open it names (base). A close is
 * applied to held, the receiver's state of that incarnation (NULL: none,
 * the Open's then): its ends move forward, never back, and time_wait marks
 * both FINs sent and acked, so the result moves nothing backwards that the
 * Changes before it moved forward. Returns 0, or -EINVAL when the result is
 * invalid (a window scale or flags out of range): the record is bad.
 */
int sync_change_apply(const struct sync_change *c, const struct lb_conn_state *base,
		      const struct lb_conn_state *held, struct lb_conn_state *out);

/*
 * What a decoded batch holds, record by record. open and change may be NULL:
 * an Open then goes to conn (without its id), a Change nowhere.
 */
struct sync_records_ops {
	void (*conn)(void *arg, const struct lb_conn_state *st);
	void (*conn_delete)(void *arg, const struct lb_conn_state *st);
	void (*persist)(void *arg, const struct lb_persist_state *st);
	void (*resync_done)(void *arg, uint64_t request_id, uint32_t conns);
	void (*open)(void *arg, uint64_t id, const struct lb_conn_state *st);
	void (*change)(void *arg, uint64_t id, const struct sync_change *c);
};

struct sync_decode_stats {
	uint64_t batches, records;
	uint64_t bad_batch;	/* not a Batch, or a version we do not speak */
	uint64_t bad_record;	/* a record with an invalid field, skipped */
};

/*
 * Decodes a payload and calls ops for each valid record, in order. Returns 0,
 * or -EINVAL when the payload is not a Batch we understand (nothing called).
 */
int sync_batch_decode(const uint8_t *buf, size_t len, const struct sync_records_ops *ops,
		      void *arg, struct sync_decode_stats *stats);

/*
 * A decoder with its own memory: sync_decoder_decode() is
 * sync_batch_decode() without a malloc per record or per batch (protobuf-c
 * unpacks into the decoder's arena, reused by every call). One decoder per
 * thread; the records handed to ops live until the call returns.
 */
struct sync_decoder;

struct sync_decoder *sync_decoder_new(void);
void sync_decoder_free(struct sync_decoder *d);
int sync_decoder_decode(struct sync_decoder *d, const uint8_t *buf, size_t len,
			const struct sync_records_ops *ops, void *arg,
			struct sync_decode_stats *stats);

/* Allocations a payload too large for the arena sent to malloc (none for a
 * datagram's payload). */
uint64_t sync_decoder_spilled(const struct sync_decoder *d);

#endif
