/*
 * simlink: two sync_links joined by a simulated network, in one process,
 * on a fake clock. Header-only test helper.
 *
 * Every datagram a link sends is queued with a delivery time (now + a random
 * delay in [delay_min, delay_max] ms: different delays reorder), may be lost
 * (probability loss), duplicated (probability dup, the copy with its own
 * delay), dropped by a direction being cut, or by a test's drop filter. Time
 * advances only in simlink_step(): one millisecond, then everything due is
 * delivered in due order, then each link whose sync_link_next_ms() has come
 * is ticked. So a link that announces its timers too late is found out.
 *
 * Each end records what its link handed to the application: how often each
 * data_seq was delivered (and whether the payload was the one sent as that
 * data_seq, see simlink_payload()), acks, losses, restarts, resync requests.
 * The PRNG is seeded, so every run of a scenario is the same.
 */
#ifndef SIMLINK_H
#define SIMLINK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_link.h"

#define SIM_MAX_DGRAM 2048
#define SIM_MAX_SEQ 65536	/* data_seq recorded per end */
#define SIM_MAX_LOST 64
#define SIM_MAX_IDS 16

struct simlink;

struct sim_pkt {
	uint64_t due, id;
	int to;
	size_t len;
	uint8_t buf[SIM_MAX_DGRAM];
};

struct sim_range {
	uint64_t first, last;
};

struct simlink_end {
	struct simlink *sim;
	int idx;
	struct sync_link *link;
	/* what the link gave the application */
	uint8_t delivered[SIM_MAX_SEQ];	/* times each data_seq was delivered */
	uint64_t deliver_calls, payload_bad, max_seq;
	uint64_t prev_seq, out_of_order;	/* delivered below the previous */
	uint64_t acked, acked_calls;
	struct sim_range lost[SIM_MAX_LOST];
	size_t nlost;
	uint64_t lost_total;
	uint64_t restarts, restart_epoch;
	uint64_t resync_ids[SIM_MAX_IDS];
	size_t nresync;
	/* what it sent */
	uint64_t sent;
	int hold;			/* capture instead of sending */
	uint8_t captured[SIM_MAX_DGRAM];
	size_t captured_len;
	uint64_t drop_next;		/* drop this many of the next datagrams */
};

struct simlink {
	uint64_t now;
	uint64_t rng;
	double loss, dup;
	uint32_t delay_min, delay_max;
	int cut[2];			/* by sender */
	/* returns non-zero to drop a datagram from end `from` */
	int (*drop)(struct simlink *sim, int from, const uint8_t *buf, size_t len);
	void *drop_arg;
	struct sim_pkt **heap;
	size_t nheap, capheap;
	uint64_t next_id, queued, lost, duplicated;
	struct simlink_end end[2];
};

static inline uint64_t sim_rand(struct simlink *sim)
{
	/* xorshift64* */
	sim->rng ^= sim->rng >> 12;
	sim->rng ^= sim->rng << 25;
	sim->rng ^= sim->rng >> 27;
	return sim->rng * 0x2545f4914f6cdd1dull;
}

static inline double sim_uniform(struct simlink *sim)
{
	return (double)(sim_rand(sim) >> 11) / (double)(1ull << 53);
}

/* The payload the tests send as data_seq seq: its length and bytes are a
 * function of seq, so a receiver can tell it got the right one. */
static inline size_t simlink_payload(uint64_t seq, uint8_t *buf, size_t cap)
{
	size_t len = 8 + (size_t)(seq * 37 % 200), i;

	if (len > cap)
		len = cap;
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq >> (8 * (i % 8))) ^ (uint8_t)(i * 131);
	return len;
}

/* ---- the queue: a binary min-heap on (due, id) ---- */

static inline int sim_before(const struct sim_pkt *a, const struct sim_pkt *b)
{
	return a->due < b->due || (a->due == b->due && a->id < b->id);
}

static inline void sim_heap_push(struct simlink *sim, struct sim_pkt *p)
{
	size_t i;

	if (sim->nheap == sim->capheap) {
		sim->capheap = sim->capheap ? 2 * sim->capheap : 256;
		sim->heap = realloc(sim->heap, sim->capheap * sizeof(*sim->heap));
		if (!sim->heap)
			abort();
	}
	i = sim->nheap++;
	while (i > 0 && sim_before(p, sim->heap[(i - 1) / 2])) {
		sim->heap[i] = sim->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	sim->heap[i] = p;
}

static inline struct sim_pkt *sim_heap_pop(struct simlink *sim)
{
	struct sim_pkt *top = sim->heap[0], *last = sim->heap[--sim->nheap];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < sim->nheap) {
		if (c + 1 < sim->nheap && sim_before(sim->heap[c + 1], sim->heap[c]))
			c++;
		if (!sim_before(sim->heap[c], last))
			break;
		sim->heap[i] = sim->heap[c];
		i = c;
	}
	if (sim->nheap)
		sim->heap[i] = last;
	return top;
}

static inline void sim_queue(struct simlink *sim, int to, const uint8_t *buf, size_t len)
{
	struct sim_pkt *p = malloc(sizeof(*p));
	uint32_t span = sim->delay_max - sim->delay_min + 1;

	if (!p || len > SIM_MAX_DGRAM)
		abort();
	p->due = sim->now + sim->delay_min + (uint32_t)(sim_rand(sim) % span);
	p->id = sim->next_id++;
	p->to = to;
	p->len = len;
	memcpy(p->buf, buf, len);
	sim_heap_push(sim, p);
	sim->queued++;
}

/* ---- the callbacks of each end ---- */

static inline void sim_send(void *arg, const uint8_t *buf, size_t len)
{
	struct simlink_end *e = arg;
	struct simlink *sim = e->sim;

	e->sent++;
	if (e->hold) {
		memcpy(e->captured, buf, len);
		e->captured_len = len;
		return;
	}
	if (e->drop_next) {
		e->drop_next--;
		sim->lost++;
		return;
	}
	if (sim->cut[e->idx] || (sim->drop && sim->drop(sim, e->idx, buf, len)) ||
	    sim_uniform(sim) < sim->loss) {
		sim->lost++;
		return;
	}
	sim_queue(sim, !e->idx, buf, len);
	if (sim_uniform(sim) < sim->dup) {
		sim_queue(sim, !e->idx, buf, len);
		sim->duplicated++;
	}
}

static inline void sim_deliver(void *arg, const uint8_t *payload, size_t len, uint64_t seq)
{
	struct simlink_end *e = arg;
	uint8_t want[SIM_MAX_DGRAM];
	size_t want_len = simlink_payload(seq, want, sizeof(want));

	e->deliver_calls++;
	if (seq < SIM_MAX_SEQ && e->delivered[seq] < 255)
		e->delivered[seq]++;
	if (seq > e->max_seq)
		e->max_seq = seq;
	if (seq <= e->prev_seq)
		e->out_of_order++;
	e->prev_seq = seq;
	if (len != want_len || memcmp(payload, want, len) != 0)
		e->payload_bad++;
}

static inline void sim_resync(void *arg, uint64_t id)
{
	struct simlink_end *e = arg;

	if (e->nresync < SIM_MAX_IDS)
		e->resync_ids[e->nresync] = id;
	e->nresync++;
}

static inline void sim_lost(void *arg, uint64_t first, uint64_t last)
{
	struct simlink_end *e = arg;

	if (e->nlost < SIM_MAX_LOST)
		e->lost[e->nlost] = (struct sim_range){ first, last };
	e->nlost++;
	e->lost_total += last - first + 1;
}

/* A new incarnation of the peer sends its stream from data_seq 1 again. */
static inline void sim_restarted(void *arg, uint64_t epoch)
{
	struct simlink_end *e = arg;

	e->restarts++;
	e->restart_epoch = epoch;
	memset(e->delivered, 0, sizeof(e->delivered));
	e->max_seq = 0;
	e->prev_seq = 0;
}

static inline void sim_acked(void *arg, uint64_t acked)
{
	struct simlink_end *e = arg;

	e->acked = acked;
	e->acked_calls++;
}

static const struct sync_link_ops simlink_ops = {
	.send = sim_send,
	.deliver = sim_deliver,
	.resync_request = sim_resync,
	.lost = sim_lost,
	.peer_restarted = sim_restarted,
	.acked = sim_acked,
};

/* ---- set-up and running ---- */

static inline const uint8_t *simlink_key(void)
{
	return (const uint8_t *)"0123456789abcdef0123456789abcdef";	/* 32 bytes */
}

/* A sane default: the values the header suggests. Node 1's peer is node 2
 * and every other node's peer is node 1. */
static inline struct sync_link_conf simlink_conf(uint32_t node_id, uint64_t epoch)
{
	struct sync_link_conf c = {
		.node_id = node_id, .peer_id = node_id == 1 ? 2 : 1, .epoch = epoch, .key = simlink_key(), .key_len = 32,
		.ring = 1024, .mtu = 1400, .heartbeat_ms = 100, .nack_delay_ms = 2,
		.nack_retry_ms = 20, .peer_timeout_ms = 1000,
	};
	return c;
}

/* Makes a link for end idx with conf (its arg is the end). */
static inline struct sync_link *simlink_new_link(struct simlink *sim, int idx,
						 const struct sync_link_conf *conf)
{
	return sync_link_new(conf, &simlink_ops, &sim->end[idx], sim->now);
}

/* Two links, node ids 1 and 2, epochs 1000 and 2000, conf from conf0 with
 * node_id and epoch replaced. The simulation owns sim (calloc'd). */
static inline struct simlink *simlink_new(const struct sync_link_conf *conf0, uint64_t seed)
{
	struct simlink *sim = calloc(1, sizeof(*sim));
	int i;

	if (!sim)
		abort();
	sim->now = 1000000;	/* an arbitrary monotonic start, not 0 */
	sim->rng = seed ? seed : 1;
	for (i = 0; i < 2; i++) {
		struct sync_link_conf c = *conf0;

		c.node_id = (uint32_t)i + 1;
		c.peer_id = 2 - (uint32_t)i;
		c.epoch = 1000 * ((uint64_t)i + 1);
		sim->end[i].sim = sim;
		sim->end[i].idx = i;
		sim->end[i].link = simlink_new_link(sim, i, &c);
		if (!sim->end[i].link)
			abort();
	}
	return sim;
}

static inline void simlink_free(struct simlink *sim)
{
	if (!sim)
		return;
	while (sim->nheap)
		free(sim_heap_pop(sim));
	free(sim->heap);
	sync_link_free(sim->end[0].link);
	sync_link_free(sim->end[1].link);
	free(sim);
}

/* Delivers everything due by now, including what that provokes with no
 * delay, without moving the clock. */
static inline void simlink_flush(struct simlink *sim)
{
	while (sim->nheap && sim->heap[0]->due <= sim->now) {
		struct sim_pkt *p = sim_heap_pop(sim);
		struct sync_link *to = sim->end[p->to].link;

		if (to)
			sync_link_input(to, p->buf, p->len, sim->now);
		free(p);
	}
}

static inline void simlink_step(struct simlink *sim)
{
	int i;

	sim->now++;
	simlink_flush(sim);
	for (i = 0; i < 2; i++) {
		struct sync_link *l = sim->end[i].link;

		if (l && sim->now >= sync_link_next_ms(l))
			sync_link_tick(l, sim->now);
	}
}

static inline void simlink_run(struct simlink *sim, uint64_t ms)
{
	while (ms--)
		simlink_step(sim);
}

/* Sends the test payload of the next data_seq from end idx. */
static inline uint64_t simlink_send(struct simlink *sim, int idx, int ack_request)
{
	struct sync_link *l = sim->end[idx].link;
	uint8_t buf[SIM_MAX_DGRAM];
	size_t len = simlink_payload(sync_link_last_sent(l) + 1, buf, sizeof(buf));

	return sync_link_send_data(l, buf, len, ack_request, sim->now);
}

#endif
