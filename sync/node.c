/*
 * sync_node: see include/sync_node.h.
 *
 * Outgoing records take one of two paths. Incremental ones (the engine's
 * hooks, on worker threads) go through a bounded double-buffered queue: a
 * worker appends under a mutex, the control thread swaps the buffers and
 * encodes. Bulk resync records are encoded straight from a table walk by the
 * control thread, a slice per tick, and only while the peer has acknowledged
 * enough that the link's ring still holds everything in flight, so a resync
 * of any size never outruns the ring it would need for repairs. That window
 * is half the ring, and at most RESYNC_WINDOW datagrams: the other half is
 * room for live records and repairs, and the peer imports what arrives in
 * arrival order, so every bulk datagram in flight is one a live record sent
 * after it waits behind. Half of the default ring (8192 datagrams, 11 MB)
 * overflowed a standby's 4 MiB socket buffer: datagrams were lost, and the
 * live records among them waited for their repair (680 ms and more,
 * bench/sync_resync.sh). 1024 datagrams fit that buffer and keep a live
 * record's wait to some 30-80 ms at a standby's import rate, and still move
 * 100,000 connections over a 60 ms link in under 2 s. Live records go first
 * in every tick and do not wait for the window.
 *
 * A bulk resync continues, it never restarts: a request that repeats the id
 * being served (the asker sends it again while it waits, since requests are
 * not sequenced) changes nothing; a new request while a walk is under way
 * (the asker lost something) moves the walk's end to the current bucket, so
 * the walk goes on to the table's end, wraps to bucket 0 and stops where the
 * new request found it: every bucket is visited once after the newest
 * request, and no request makes the walk start over.
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_base.h"
#include "sync_codec.h"
#include "sync_node.h"

#define EXPORT_BUCKETS 256	/* table slice per step of a bulk resync */
#define EXPORT_STEPS 16		/* steps per tick */
#define ACK_EVERY 32		/* bulk datagrams between ack requests */
#ifndef RESYNC_WINDOW
#define RESYNC_WINDOW 1024	/* bulk datagrams in flight at most (below) */
#endif
#define RESYNC_RETRY_MS 250	/* ResyncRequest is not sequenced: ask again */
#define COALESCE_PROBES 8	/* slots looked at before a record goes alone */

/* REC_MERGED: a record whose state an earlier record of the same queue took;
 * REC_UNSENT: a connection that opened and closed inside the flush. */
enum rec_kind { REC_CONN, REC_DELETE, REC_PERSIST, REC_MERGED, REC_UNSENT };

struct record {
	uint8_t kind;
	uint8_t opens;			/* coalesce(): the incarnation's first record */
	uint64_t ticket;
	union {
		struct lb_conn_state conn;
		struct lb_persist_state persist;
	} u;
};

struct queue {
	struct record *rec;
	size_t n;
};

/*
 * One slot of the coalescing index: the queue position (plus one) of the
 * first record of a connection in the queue being sent. Slots of older
 * flushes are told apart by gen, so the index is never cleared.
 */
struct coalesce_slot {
	uint32_t gen;
	uint32_t pos;
};

struct sync_node_stats_own {
	uint64_t queued, queue_overflow, flushes, datagrams, bulk_datagrams, coalesced;
	uint64_t unsent;		/* opened and closed inside one flush */
	uint64_t resyncs_requested, resyncs_done, resyncs_served, lost_events;
	uint64_t resync_repeats, resync_extended;
	uint64_t released;
	uint64_t stale_events;		/* readiness lost: the peer silent too long */
	uint64_t opens_sent, changes_sent, opens_bytes, changes_bytes;
	uint64_t changes_held;		/* arrived before their Open */
	uint64_t changes_lost;		/* their Open had left the window */
	uint64_t changes_bad;		/* invalid once applied to their Open */
};

struct sync_node {
	struct sync_node_conf conf;
	struct lb_engine *engine;
	struct lb_worker *worker;
	const struct sync_node_ops *ops;
	void *arg;
	struct sync_link *link;
	struct sync_batch *batch;
	struct sync_decoder *decoder;	/* the peer's batches, without malloc */
	struct sync_base_tx *opened;	/* our Opens the peer holds */
	struct sync_base_rx *peer_opens;	/* the peer's Opens we hold */
	enum lb_role role;

	/* Incremental records: workers fill q[fill] under lock. */
	pthread_mutex_t lock;
	struct queue q[2];
	int fill;
	uint64_t next_ticket;		/* under lock */
	uint64_t first_queued_ms;	/* under lock; when the control thread
					 * first saw records waiting, 0: not yet */
	int overflowed;			/* under lock: records were lost */
	int urgent;			/* under lock: flush now (defer) */

	/* Records of one connection in one drained queue travel as one. */
	struct coalesce_slot *index;
	size_t index_mask;
	uint32_t index_gen;

	/* Tickets of the records in each of our data_seq, for releases. */
	uint64_t *ticket_at;
	uint64_t last_ticket_sent;

	/* Bulk resync we serve. */
	int exporting;
	uint64_t export_id;
	uint64_t export_done_id;	/* the last request answered */
	size_t export_cursor;
	size_t export_stop;		/* 0: the table's end; else stop here... */
	int export_wrap;		/* ...after going to the end and wrapping */
	uint32_t export_conns;
	size_t export_datagrams;

	/* Bulk resync we asked for. */
	int joining;
	uint64_t join_ms, resync_id, resync_asked_ms;
	uint64_t join_first_id;		/* our first request of this join */
	int asked_alive;		/* asked while the peer was alive */
	int stale;			/* this join: our table went stale (the peer
					 * fell silent while we were a ready backup) */
	uint64_t resync_done_seq;	/* data_seq that carried our ResyncDone */
	uint64_t delivering_seq;	/* data_seq being decoded */
	uint64_t input_ms;		/* the time of the datagram being handled */
	char not_ready[96];

	struct sync_node_stats_own st;
	struct sync_decode_stats dec;

	/* Set by the control thread, read by workers: the peer is alive and
	 * ready, so a deferred packet can expect its ack. */
	atomic_bool peer_up;
	atomic_uint_fast64_t defer_bypassed;
};

/* ---- the engine's hooks (worker threads) ---- */

/*
 * Appends a record for the control thread. The first record after a flush
 * wakes it (it stamps the time and batches for flush_ms); an urgent record
 * (a state change, a burst, anything in defer mode, where a packet waits for
 * its ticket) is sent at once. Returns the record's ticket.
 */
static uint64_t enqueue(struct sync_node *n, enum rec_kind kind, const void *state, size_t len,
			int urgent)
{
	struct queue *q;
	uint64_t ticket = 0;
	int wake = 0;

	pthread_mutex_lock(&n->lock);
	q = &n->q[n->fill];
	if (q->n == n->conf.queue) {
		n->overflowed = 1;	/* the control thread pushes a full resync */
		n->st.queue_overflow++;
	} else {
		struct record *r = &q->rec[q->n++];

		r->kind = (uint8_t)kind;
		r->opens = 0;
		r->ticket = ticket = ++n->next_ticket;
		memcpy(&r->u, state, len);
		n->st.queued++;
		urgent |= n->conf.defer;
		wake = q->n == 1 || (urgent && !n->urgent);
		n->urgent |= urgent;
	}
	pthread_mutex_unlock(&n->lock);
	if (wake && n->ops->wake)
		n->ops->wake(n->arg);
	return ticket;
}

static uint64_t hook_conn(void *arg, const struct lb_conn_state *st, int urgent)
{
	struct sync_node *n = arg;
	uint64_t ticket = enqueue(n, REC_CONN, st, sizeof(*st), urgent);

	/* Defer only while a peer can acknowledge: with the peer down or not
	 * yet resynced, holding a SYN would only add defer_timeout to every
	 * new connection (pfsync defers only with a peer, too). */
	if (!atomic_load_explicit(&n->peer_up, memory_order_relaxed)) {
		if (n->conf.defer)
			atomic_fetch_add_explicit(&n->defer_bypassed, 1, memory_order_relaxed);
		return 0;
	}
	return ticket;
}

static void hook_delete(void *arg, const struct lb_conn_state *st)
{
	enqueue(arg, REC_DELETE, st, sizeof(*st), 0);
}

static void hook_persist(void *arg, const struct lb_persist_state *st)
{
	enqueue(arg, REC_PERSIST, st, sizeof(*st), 0);
}

static const struct lb_repl_ops repl_ops = {
	.conn = hook_conn, .conn_delete = hook_delete, .persist = hook_persist,
};

const struct lb_repl_ops *sync_node_repl_ops(void)
{
	return &repl_ops;
}

/* ---- sending ---- */

/* Sends the batch as one Data datagram and remembers its last ticket. */
static void send_batch(struct sync_node *n, int ack_request, uint64_t now_ms)
{
	const uint8_t *p;
	size_t len;
	uint64_t seq;

	if (!sync_batch_records(n->batch))
		return;
	p = sync_batch_data(n->batch, &len);
	seq = sync_link_send_data(n->link, p, len, ack_request, now_ms);
	if (seq)
		n->ticket_at[seq % n->conf.link.ring] = n->last_ticket_sent;
	n->st.datagrams++;
	sync_batch_reset(n->batch);
}

/*
 * A connection's state: a Change against its Open when the peer holds that
 * Open (a close when it can be one: sync_batch_can_close()), else an Open
 * (and from then on the connection's base). A bulk
 * resync opens every connection again (reopen): the peer that asked may
 * have lost any Open. A closed connection (both FINs seen) moves no more
 * data, so its byte rates, which only size the takeover slack for data in
 * flight, are not sent.
 */
static int add_conn(struct sync_node *n, const struct lb_conn_state *st, int reopen)
{
	const struct lb_conn_state *open = NULL;
	struct lb_conn_state quiet;
	size_t before = sync_batch_len(n->batch);
	uint64_t id = 0;
	int rc;

	if (lb_tcp_state_closed(st->tcp.state) && (st->rate[0] || st->rate[1])) {
		quiet = *st;
		quiet.rate[0] = quiet.rate[1] = 0;
		st = &quiet;
	}
	if (!reopen)
		open = sync_base_tx_find(n->opened, st, &id);
	if (open) {
		if (sync_batch_can_close(open, st))
			rc = sync_batch_add_close(n->batch, id, open, st);
		else
			rc = sync_batch_add_change(n->batch, id, open, st);
		if (rc == 0) {
			n->st.changes_sent++;
			n->st.changes_bytes += sync_batch_len(n->batch) - before;
		}
		return rc;
	}
	rc = sync_batch_add_open(n->batch, sync_base_tx_next(n->opened), st);
	if (rc == 0) {
		sync_base_tx_opened(n->opened, st);
		n->st.opens_sent++;
		n->st.opens_bytes += sync_batch_len(n->batch) - before;
	}
	return rc;
}

static int add_record(struct sync_node *n, const struct record *r)
{
	switch (r->kind) {
	case REC_CONN: return add_conn(n, &r->u.conn, 0);
	case REC_DELETE: return sync_batch_add_delete(n->batch, &r->u.conn);
	case REC_PERSIST: return sync_batch_add_persist(n->batch, &r->u.persist);
	default: return 0;
	}
}

/*
 * Gives the first record of each connection in q the newest state the queue
 * holds for it and marks the later ones REC_MERGED: a connection's state
 * changes inside one flush go out as one record. The first position is the
 * one kept, so a deferred packet waiting for a later record's ticket is
 * released only once a datagram at or after that position is acknowledged,
 * and that datagram's predecessors carry the merged state. Collisions beyond
 * COALESCE_PROBES slots (chosen tuples) only cost coalescing, never a record.
 */
static void coalesce(struct sync_node *n, struct queue *q)
{
	uint32_t gen = ++n->index_gen;

	if (!gen) {		/* wrapped: slots of 2^32 flushes ago would match */
		memset(n->index, 0, (n->index_mask + 1) * sizeof(*n->index));
		gen = n->index_gen = 1;
	}
	for (size_t i = 0; i < q->n; i++) {
		struct record *r = &q->rec[i];
		uint32_t h;

		if (r->kind != REC_CONN)
			continue;
		h = lb_tuple_hash(&r->u.conn.orig, (uint32_t)r->u.conn.created_us);
		for (int k = 0; k < COALESCE_PROBES; k++) {
			struct coalesce_slot *s = &n->index[(h + (uint32_t)k) & n->index_mask];
			struct record *first;

			if (s->gen != gen) {
				*s = (struct coalesce_slot){ gen, (uint32_t)i + 1 };
				r->opens = r->u.conn.version == 1;
				break;
			}
			first = &q->rec[s->pos - 1];
			if (!lb_conn_state_same_incarnation(&first->u.conn, &r->u.conn))
				continue;
			if (r->u.conn.version > first->u.conn.version)
				first->u.conn = r->u.conn;
			r->kind = REC_MERGED;
			n->st.coalesced++;
			break;
		}
	}
}

/*
 * Async mode: a connection whose first record (version 1) is in this queue
 * and whose merged state is closed opened and closed inside the flush, and
 * the peer has never heard of it. Nothing of it needs to cross: a standby
 * that takes over would only hold a closed entry the connection no longer
 * uses. The engine is told, so that neither its expiry nor a bulk resync
 * names it later. In defer mode a creation is sent at once and its ack
 * awaited, so it never gets here unsent, and nothing is dropped there.
 */
static void drop_unsent(struct sync_node *n, struct queue *q)
{
	if (n->conf.defer)
		return;
	for (size_t i = 0; i < q->n; i++) {
		struct record *r = &q->rec[i];

		if (r->kind != REC_CONN || !r->opens || !lb_tcp_state_closed(r->u.conn.tcp.state))
			continue;
		r->kind = REC_UNSENT;
		n->st.unsent++;
		lb_engine_repl_unsent(n->engine, &r->u.conn);
	}
}

/* Encodes a drained queue into as few datagrams as fit. */
static void send_queue(struct sync_node *n, struct queue *q, int ack_request, uint64_t now_ms)
{
	coalesce(n, q);
	drop_unsent(n, q);
	for (size_t i = 0; i < q->n; i++) {
		if (add_record(n, &q->rec[i]) == -ENOSPC) {
			send_batch(n, ack_request, now_ms);
			add_record(n, &q->rec[i]);
		}
		n->last_ticket_sent = q->rec[i].ticket;
	}
	send_batch(n, ack_request, now_ms);
	q->n = 0;
}

static void start_export(struct sync_node *n, uint64_t request_id);

/* Sends what workers queued, when it has waited long enough or is urgent. */
static void flush(struct sync_node *n, uint64_t now_ms)
{
	struct queue *q;
	int urgent, overflowed;

	pthread_mutex_lock(&n->lock);
	if (!n->q[n->fill].n && !n->overflowed) {
		pthread_mutex_unlock(&n->lock);
		return;
	}
	if (!n->first_queued_ms)
		n->first_queued_ms = now_ms;
	if (!n->urgent && now_ms < n->first_queued_ms + n->conf.flush_ms &&
	    n->q[n->fill].n < n->conf.queue / 2) {
		pthread_mutex_unlock(&n->lock);
		return;
	}
	q = &n->q[n->fill];
	n->fill ^= 1;
	urgent = n->urgent;
	overflowed = n->overflowed;
	n->urgent = n->overflowed = 0;
	n->first_queued_ms = 0;
	pthread_mutex_unlock(&n->lock);
	send_queue(n, q, urgent, now_ms);
	n->st.flushes++;
	/* Lost records cannot be named: send the peer the whole table. */
	if (overflowed && n->role == LB_ROLE_MASTER)
		start_export(n, 0);
}

/* ---- bulk resync we serve ---- */

/* request_id 0: our own (lost records); any other is the peer's. */
static void start_export(struct sync_node *n, uint64_t request_id)
{
	if (request_id && (request_id == n->export_id || request_id == n->export_done_id) &&
	    (n->exporting || request_id == n->export_done_id)) {
		n->st.resync_repeats++;	/* the same request again: carry on */
		return;
	}
	if (n->exporting) {
		/* Finish the walk, then wrap round to here. */
		n->export_stop = n->export_cursor;
		n->export_wrap = 1;
		if (request_id)
			n->export_id = request_id;
		n->st.resync_extended++;
		return;
	}
	n->exporting = 1;
	n->export_id = request_id;
	n->export_cursor = 0;
	n->export_stop = 0;
	n->export_wrap = 0;
	n->export_conns = 0;
	n->export_datagrams = 0;
	n->st.resyncs_served++;
}

struct export_ctx {
	struct sync_node *n;
	uint64_t now_ms;
};

static void bulk_send(struct sync_node *n, uint64_t now_ms)
{
	/* Ask for an ack now and then so the window below keeps moving. */
	send_batch(n, ++n->export_datagrams % ACK_EVERY == 0, now_ms);
	n->st.bulk_datagrams++;
}

static void export_conn(void *arg, const struct lb_conn_state *st)
{
	struct export_ctx *x = arg;

	if (add_conn(x->n, st, 1) == -ENOSPC) {
		bulk_send(x->n, x->now_ms);
		add_conn(x->n, st, 1);
	}
	x->n->export_conns++;
}

static void export_persist(void *arg, const struct lb_persist_state *st)
{
	struct export_ctx *x = arg;

	if (sync_batch_add_persist(x->n->batch, st) == -ENOSPC) {
		bulk_send(x->n, x->now_ms);
		sync_batch_add_persist(x->n->batch, st);
	}
}

static void finish_export(struct sync_node *n, uint64_t now_ms)
{
	struct export_ctx x = { n, now_ms };

	lb_engine_export_persist(n->engine, now_ms, export_persist, &x);
	if (sync_batch_add_resync_done(n->batch, n->export_id, n->export_conns) == -ENOSPC) {
		bulk_send(n, now_ms);
		sync_batch_add_resync_done(n->batch, n->export_id, n->export_conns);
	}
	send_batch(n, 1, now_ms);
	n->exporting = 0;
	n->export_done_id = n->export_id;
}

/* In flight: sent but not yet acknowledged by the peer. */
static uint64_t in_flight(const struct sync_node *n)
{
	return sync_link_last_sent(n->link) - sync_link_peer_acked(n->link);
}

/* One slice of the walk; returns 0 when the walk is over. */
static int export_slice(struct sync_node *n, struct export_ctx *x, uint64_t now_ms)
{
	size_t nb = EXPORT_BUCKETS;

	if (!n->export_wrap && n->export_stop) {
		if (n->export_cursor >= n->export_stop)
			return 0;
		if (n->export_stop - n->export_cursor < nb)
			nb = n->export_stop - n->export_cursor;
	}
	if (lb_engine_export_conns(n->engine, &n->export_cursor, nb, now_ms, export_conn, x))
		return 1;
	if (!n->export_wrap || !n->export_stop)
		return 0;
	n->export_wrap = 0;		/* at the end: round to bucket 0 */
	n->export_cursor = 0;
	return 1;
}

/* How far the walk may run ahead of the peer's acks. */
static uint64_t export_window(const struct sync_node *n)
{
	uint64_t half = n->conf.link.ring / 2;

	return half < RESYNC_WINDOW ? half : RESYNC_WINDOW;
}

static void export_step(struct sync_node *n, uint64_t now_ms)
{
	struct export_ctx x = { n, now_ms };

	for (int i = 0; i < EXPORT_STEPS && n->exporting; i++) {
		if (in_flight(n) > export_window(n))
			return;		/* wait for acks; never overrun the ring */
		if (!export_slice(n, &x, now_ms))
			finish_export(n, now_ms);
	}
	if (n->exporting)
		bulk_send(n, now_ms);
}

/* ---- receiving ---- */

static void rec_conn(void *arg, const struct lb_conn_state *st)
{
	struct sync_node *n = arg;

	lb_engine_import_conn(n->engine, n->worker, st, n->input_ms);
}

static void ask_resync(struct sync_node *n, int again, uint64_t now_ms);

/*
 * Imports the state Change c gives once applied to its Open; a close, once
 * applied to what this node holds of that connection (its Open and any
 * Changes since).
 */
static void import_change(struct sync_node *n, const struct sync_change *c,
			  const struct lb_conn_state *open)
{
	struct lb_conn_state st, held;
	int have = c->close && lb_engine_repl_held(n->engine, open, n->input_ms, &held) == 0;

	if (sync_change_apply(c, open, have ? &held : NULL, &st) < 0)
		n->st.changes_bad++;
	else
		lb_engine_import_conn(n->engine, n->worker, &st, n->input_ms);
}

static void rec_open(void *arg, uint64_t id, const struct lb_conn_state *st)
{
	struct sync_node *n = arg;
	struct sync_change waiting;

	lb_engine_import_conn(n->engine, n->worker, st, n->input_ms);
	if (sync_base_rx_open(n->peer_opens, id, st, &waiting))
		import_change(n, &waiting, st);
}

static void rec_change(void *arg, uint64_t id, const struct sync_change *c)
{
	struct sync_node *n = arg;
	const struct lb_conn_state *open;

	switch (sync_base_rx_change(n->peer_opens, id, c, &open)) {
	case SYNC_BASE_FOUND:
		import_change(n, c, open);
		break;
	case SYNC_BASE_HELD:
		n->st.changes_held++;
		break;
	case SYNC_BASE_LOST:
		/* A state we cannot place: only a bulk resync restores it. */
		n->st.changes_lost++;
		if (n->role != LB_ROLE_MASTER)
			ask_resync(n, 0, n->input_ms);
		break;
	}
}

static void rec_delete(void *arg, const struct lb_conn_state *st)
{
	struct sync_node *n = arg;

	lb_engine_import_delete(n->engine, n->worker, st, n->input_ms);
}

static void rec_persist(void *arg, const struct lb_persist_state *st)
{
	struct sync_node *n = arg;

	lb_engine_import_persist(n->engine, n->worker, st, n->input_ms);
}

static void rec_resync_done(void *arg, uint64_t request_id, uint32_t conns)
{
	struct sync_node *n = arg;

	(void)conns;
	/* Any of this join's requests will do: on a lossy link an answer
	 * can arrive after we asked again, and it is just as complete. */
	if (n->joining && request_id >= n->join_first_id && request_id <= n->resync_id &&
	    !n->resync_done_seq)
		n->resync_done_seq = n->delivering_seq;
}

static const struct sync_records_ops record_ops = {
	.conn = rec_conn, .conn_delete = rec_delete, .persist = rec_persist,
	.resync_done = rec_resync_done, .open = rec_open, .change = rec_change,
};

/* ---- the link's callbacks ---- */

static void link_send(void *arg, const uint8_t *buf, size_t len)
{
	struct sync_node *n = arg;

	n->ops->send(n->arg, buf, len);
}

static void link_deliver(void *arg, const uint8_t *payload, size_t len, uint64_t data_seq)
{
	struct sync_node *n = arg;

	n->delivering_seq = data_seq;
	sync_decoder_decode(n->decoder, payload, len, &record_ops, n, &n->dec);
}

static void link_resync_request(void *arg, uint64_t request_id)
{
	struct sync_node *n = arg;

	/* Only the master's table is the truth; a backup's may be partial.
	 * The asker sees our role in heartbeats and stops waiting. */
	if (n->role == LB_ROLE_MASTER)
		start_export(n, request_id);
}

/* A new request (again 0), or the same one once more: an answer to it is
 * still on its way or the request was lost; the peer carries on with it. */
static void ask_resync(struct sync_node *n, int again, uint64_t now_ms)
{
	n->resync_id = sync_link_request_resync(n->link, again ? n->resync_id : 0, now_ms);
	n->resync_asked_ms = now_ms;
	if (!again)
		n->resync_done_seq = 0;
	n->st.resyncs_requested++;
}

static void link_lost(void *arg, uint64_t first, uint64_t last)
{
	struct sync_node *n = arg;

	(void)first;
	(void)last;
	n->st.lost_events++;
	if (n->role != LB_ROLE_MASTER)
		ask_resync(n, 0, n->input_ms);
}

static void link_peer_restarted(void *arg, uint64_t epoch)
{
	struct sync_node *n = arg;

	(void)epoch;	/* the restarted peer asks us for its table itself */
	/* It holds none of our Opens, and its ids start again. */
	sync_base_tx_forget(n->opened);
	sync_base_rx_forget(n->peer_opens);
}

static void link_acked(void *arg, uint64_t acked)
{
	struct sync_node *n = arg;
	uint64_t ticket;

	if (acked + n->conf.link.ring <= sync_link_last_sent(n->link))
		return;		/* older than the ticket ring: nothing to learn */
	ticket = n->ticket_at[acked % n->conf.link.ring];
	if (ticket > n->st.released) {
		n->st.released = ticket;
		if (n->ops->released)
			n->ops->released(n->arg, ticket);
	}
}

static const struct sync_link_ops link_ops = {
	.send = link_send, .deliver = link_deliver, .resync_request = link_resync_request,
	.lost = link_lost, .peer_restarted = link_peer_restarted, .acked = link_acked,
};

/* ---- the node ---- */

struct sync_node *sync_node_new(const struct sync_node_conf *conf, struct lb_engine *e,
				struct lb_worker *w, const struct sync_node_ops *ops, void *arg,
				uint64_t now_ms)
{
	struct sync_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->conf = *conf;
	if (!n->conf.queue)
		n->conf.queue = 65536;
	n->engine = e;
	n->worker = w;
	n->ops = ops;
	n->arg = arg;
	n->role = LB_ROLE_BACKUP;
	pthread_mutex_init(&n->lock, NULL);
	n->q[0].rec = calloc(n->conf.queue, sizeof(struct record));
	n->q[1].rec = calloc(n->conf.queue, sizeof(struct record));
	n->ticket_at = calloc(conf->link.ring ? conf->link.ring : 1, sizeof(uint64_t));
	/* Twice the queue, a power of two: short probe chains. */
	for (n->index_mask = 1; n->index_mask < 2 * n->conf.queue; n->index_mask <<= 1)
		;
	n->index = calloc(n->index_mask, sizeof(*n->index));
	n->index_mask--;
	n->link = sync_link_new(&conf->link, &link_ops, n, now_ms);
	if (!n->q[0].rec || !n->q[1].rec || !n->ticket_at || !n->index || !n->link ||
	    !(n->batch = sync_batch_new(sync_link_max_payload(n->link))) ||
	    !(n->decoder = sync_decoder_new()) ||
	    !(n->opened = sync_base_tx_new(SYNC_BASE_WINDOW)) ||
	    !(n->peer_opens = sync_base_rx_new(SYNC_BASE_WINDOW))) {
		int err = errno ? errno : ENOMEM;

		sync_node_free(n);
		errno = err;
		return NULL;
	}
	sync_link_set_status(n->link, SYNC_ROLE_BACKUP, 0);
	return n;
}

void sync_node_free(struct sync_node *n)
{
	if (!n)
		return;
	sync_link_free(n->link);
	sync_batch_free(n->batch);
	sync_decoder_free(n->decoder);
	sync_base_tx_free(n->opened);
	sync_base_rx_free(n->peer_opens);
	free(n->q[0].rec);
	free(n->q[1].rec);
	free(n->ticket_at);
	free(n->index);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void sync_node_start(struct sync_node *n, uint64_t now_ms)
{
	n->joining = 1;
	n->join_ms = now_ms;
	snprintf(n->not_ready, sizeof(n->not_ready), "waiting for the peer");
	ask_resync(n, 0, now_ms);
	n->join_first_id = n->resync_id;
	n->asked_alive = 0;
}

static void update_peer_up(struct sync_node *n, uint64_t now_ms)
{
	struct sync_peer_status peer;

	sync_link_peer(n->link, now_ms, &peer);
	atomic_store_explicit(&n->peer_up, peer.alive && peer.ready, memory_order_relaxed);
}

void sync_node_input(struct sync_node *n, const uint8_t *buf, size_t len, uint64_t now_ms)
{
	n->input_ms = now_ms;
	sync_link_input(n->link, buf, len, now_ms);
	update_peer_up(n, now_ms);
}

static void set_ready(struct sync_node *n)
{
	n->joining = 0;
	n->stale = 0;
	sync_link_set_status(n->link, (enum sync_role)n->role, 1);
}

/* Decides whether a joining node may stop waiting for its resync. */
static void check_join(struct sync_node *n, uint64_t now_ms)
{
	struct sync_peer_status peer;

	sync_link_peer(n->link, now_ms, &peer);
	if (n->resync_done_seq &&
	    sync_link_received_through(n->link) >= n->resync_done_seq) {
		n->st.resyncs_done++;
		set_ready(n);
	} else if (peer.alive && peer.role != SYNC_ROLE_NONE && peer.role != SYNC_ROLE_MASTER) {
		set_ready(n);		/* nobody holds a better table than ours */
	} else if (!n->stale && !peer.alive && now_ms >= n->join_ms + n->conf.resync_timeout_ms &&
		   (!peer.last_heard_ms ||
		    now_ms >= peer.last_heard_ms + n->conf.resync_timeout_ms)) {
		set_ready(n);		/* alone */
	} else if (peer.alive && !n->resync_done_seq &&
		   (!n->asked_alive || now_ms >= n->resync_asked_ms + RESYNC_RETRY_MS)) {
		/* The request may have been lost, or refused before the peer's
		 * epoch was proven: the same one again, at once when the peer
		 * comes alive. */
		ask_resync(n, 1, now_ms);
		n->asked_alive = 1;
	}
	if (n->joining && n->stale && !peer.alive)
		snprintf(n->not_ready, sizeof(n->not_ready),
			 "sync link silent for %llu ms: our table is stale until the peer resyncs us",
			 (unsigned long long)(now_ms - peer.last_heard_ms));
	else if (n->joining)
		snprintf(n->not_ready, sizeof(n->not_ready), "%s",
			 n->resync_done_seq ? "bulk resync: repairing the last datagrams"
			 : peer.alive ? "bulk resync from the master in progress"
				      : "waiting for the peer");
}

/*
 * A ready backup whose peer has been silent for stale_ms while it was heard
 * before: every change the peer made since is missing here, so this table
 * must not be taken over. Readiness goes (keepalived's track script puts the
 * node in FAULT) until the peer is back and a bulk resync has completed; being
 * alone does not make it ready again. A master never goes stale: its table
 * is the truth, and a peer that dies is what a takeover looks like from here.
 */
static void check_stale(struct sync_node *n, uint64_t now_ms)
{
	struct sync_peer_status peer;

	if (n->joining || !n->conf.stale_ms || n->role == LB_ROLE_MASTER)
		return;
	sync_link_peer(n->link, now_ms, &peer);
	if (!peer.last_heard_ms || now_ms < peer.last_heard_ms + n->conf.stale_ms)
		return;
	n->st.stale_events++;
	sync_node_start(n, now_ms);
	n->stale = 1;
	sync_link_set_status(n->link, (enum sync_role)n->role, 0);
	check_join(n, now_ms);
}

void sync_node_tick(struct sync_node *n, uint64_t now_ms)
{
	n->input_ms = now_ms;
	update_peer_up(n, now_ms);
	flush(n, now_ms);
	if (n->exporting)
		export_step(n, now_ms);
	sync_link_tick(n->link, now_ms);
	if (n->joining)
		check_join(n, now_ms);
	else
		check_stale(n, now_ms);
}

uint64_t sync_node_next_ms(struct sync_node *n, uint64_t now_ms)
{
	uint64_t next = sync_link_next_ms(n->link);

	pthread_mutex_lock(&n->lock);
	if (n->q[n->fill].n) {
		uint64_t due = n->urgent || !n->first_queued_ms ? now_ms
								 : n->first_queued_ms + n->conf.flush_ms;

		if (due < next)
			next = due;
	}
	pthread_mutex_unlock(&n->lock);
	if (n->exporting && in_flight(n) <= export_window(n))
		next = now_ms;
	if (n->joining && now_ms + 50 < next)
		next = now_ms + 50;
	if (!n->joining && n->conf.stale_ms && now_ms + 100 < next)
		next = now_ms + 100;	/* check_stale()'s resolution */
	return next;
}

struct sync_link *sync_node_link(struct sync_node *n)
{
	return n->link;
}

void sync_node_set_role(struct sync_node *n, enum lb_role role)
{
	n->role = role;
	sync_link_set_status(n->link, (enum sync_role)role, !n->joining);
}

int sync_node_peer_up(struct sync_node *n)
{
	return atomic_load(&n->peer_up);
}

int sync_node_ready(struct sync_node *n, uint64_t now_ms, char *why, size_t len)
{
	(void)now_ms;
	if (!n->joining)
		return 1;
	snprintf(why, len, "%s", n->not_ready);
	return 0;
}

void sync_node_stats(struct sync_node *n, uint64_t now_ms,
		     void (*fn)(void *arg, const char *name, uint64_t value), void *arg)
{
	const struct sync_link_stats *l = sync_link_stats(n->link);
	struct sync_peer_status peer;
	struct sync_node_stats_own own;

	pthread_mutex_lock(&n->lock);
	own = n->st;
	pthread_mutex_unlock(&n->lock);
	sync_link_peer(n->link, now_ms, &peer);
#define S(name, v) fn(arg, name, (uint64_t)(v))
	S("peer_alive", peer.alive); S("peer_role", peer.role); S("peer_ready", peer.ready);
	S("peer_node", peer.node_id); S("peer_epoch", peer.epoch);
	S("epoch", n->conf.link.epoch); S("ready", !n->joining);
	S("last_sent", sync_link_last_sent(n->link));
	S("peer_acked", sync_link_peer_acked(n->link));
	S("received_through", sync_link_received_through(n->link));
	S("records_queued", own.queued); S("queue_overflow", own.queue_overflow);
	S("flushes", own.flushes); S("datagrams", own.datagrams); S("coalesced", own.coalesced);
	S("unsent", own.unsent);
	S("bulk_datagrams", own.bulk_datagrams); S("resyncs_requested", own.resyncs_requested);
	S("resyncs_done", own.resyncs_done); S("resyncs_served", own.resyncs_served);
	S("lost_events", own.lost_events); S("released_ticket", own.released);
	S("resync_repeats", own.resync_repeats); S("resync_extended", own.resync_extended);
	S("stale_events", own.stale_events); S("stale", n->stale);
	S("opens_sent", own.opens_sent); S("changes_sent", own.changes_sent);
	S("opens_bytes", own.opens_bytes); S("changes_bytes", own.changes_bytes);
	S("changes_held", own.changes_held); S("changes_lost", own.changes_lost);
	S("changes_bad", own.changes_bad);
	S("defer_bypassed", atomic_load(&n->defer_bypassed));
	S("batches_in", n->dec.batches); S("records_in", n->dec.records);
	S("bad_batch", n->dec.bad_batch); S("bad_record", n->dec.bad_record);
	S("decode_spilled", sync_decoder_spilled(n->decoder));
	S("sent", l->sent); S("sent_bytes", l->sent_bytes); S("data_sent", l->data_sent);
	S("retransmitted", l->retransmitted); S("heartbeats_sent", l->heartbeats_sent);
	S("nacks_sent", l->nacks_sent); S("acks_sent", l->acks_sent); S("gone_sent", l->gone_sent);
	S("send_too_big", l->send_too_big); S("received", l->received);
	S("data_received", l->data_received); S("duplicates", l->duplicates);
	S("nacks_received", l->nacks_received); S("gone_received", l->gone_received);
	S("holes_lost", l->holes_lost); S("bad_size", l->bad_size); S("bad_magic", l->bad_magic);
	S("bad_hmac", l->bad_hmac); S("bad_decode", l->bad_decode); S("own_node", l->own_node);
	S("foreign_node", l->foreign_node); S("stale_epoch", l->stale_epoch);
	S("replayed", l->replayed); S("unproven", l->unproven);
	S("peer_restarts", l->peer_restarts);
#undef S
}
