/*
 * Unit tests of sync_link through its public interface: delivery over a
 * perfect and over lossy, duplicating, reordering simulated networks on a
 * fake clock (tests/sync/simlink.h); Nack timing and ranges; tail loss;
 * ring overflow and Gone; peer restarts and stale epochs; every refusal
 * (size, prefix, HMAC, decoding, own and foreign node, replay) with its
 * counter and without side effects; acks, peer status, resync requests,
 * payload limits and bad configurations.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "lbsync.pb-c.h"
#include "simlink.h"
#include "sync_link.h"

#define A 0
#define B 1
#define PREFIX 4
#define MAC 32

/* ---- helpers ---- */

static const struct sync_link_stats *st(struct simlink *sim, int idx)
{
	return sync_link_stats(sim->end[idx].link);
}

#define STAT_OFF(field) offsetof(struct sync_link_stats, field)

/* Every counter of now equals before, except the one at off, which grew by
 * delta (off SIZE_MAX: none may change). All counters are uint64_t. */
static void assert_stats_only(const struct sync_link_stats *before,
			      const struct sync_link_stats *now, size_t off, uint64_t delta)
{
	const uint64_t *b = (const uint64_t *)before, *n = (const uint64_t *)now;
	size_t i;

	for (i = 0; i < sizeof(*before) / sizeof(uint64_t); i++) {
		uint64_t want = b[i] + (i * sizeof(uint64_t) == off ? delta : 0);

		if (n[i] != want)
			fail_msg("counter at offset %zu: %llu, expected %llu", i * sizeof(uint64_t),
				 (unsigned long long)n[i], (unsigned long long)want);
	}
}

/* Makes end idx capture its next datagram instead of sending it. */
static size_t capture(struct simlink *sim, int idx, uint8_t *out, void (*act)(struct simlink *))
{
	struct simlink_end *e = &sim->end[idx];

	e->hold = 1;
	e->captured_len = 0;
	act(sim);
	e->hold = 0;
	assert_true(e->captured_len > 0);
	memcpy(out, e->captured, e->captured_len);
	return e->captured_len;
}

static void act_send_a(struct simlink *sim)
{
	simlink_send(sim, A, 0);
}

static void act_send_a_ack(struct simlink *sim)
{
	simlink_send(sim, A, 1);
}

/* Runs the clock until end idx sends something, and takes that instead. */
static size_t capture_next(struct simlink *sim, int idx, uint8_t *out)
{
	struct simlink_end *e = &sim->end[idx];
	int i;

	e->hold = 1;
	e->captured_len = 0;
	for (i = 0; i < 1000 && !e->captured_len; i++)
		simlink_step(sim);
	e->hold = 0;
	assert_true(e->captured_len > 0);
	memcpy(out, e->captured, e->captured_len);
	return e->captured_len;
}

/* Decodes a datagram the test saw (trusting it: it came from a link). */
static Lbsync__Packet *decode(const uint8_t *buf, size_t len)
{
	return lbsync__packet__unpack(NULL, len - PREFIX - MAC, buf + PREFIX);
}

/* Frames body as a datagram with a valid HMAC under the simlink key. */
static size_t seal(uint8_t *out, const uint8_t prefix[4], const uint8_t *body, size_t len)
{
	crypto_auth_hmacsha256_state s;

	memcpy(out, prefix, PREFIX);
	memcpy(out + PREFIX, body, len);
	crypto_auth_hmacsha256_init(&s, simlink_key(), 32);
	crypto_auth_hmacsha256_update(&s, out, PREFIX + len);
	crypto_auth_hmacsha256_final(&s, out + PREFIX + len);
	return PREFIX + len + MAC;
}

static const uint8_t good_prefix[4] = { 'L', 'B', 1, 0 };

/* Packs pkt and seals it. */
static size_t seal_packet(uint8_t *out, Lbsync__Packet *pkt)
{
	uint8_t body[SIM_MAX_DGRAM];
	size_t len = lbsync__packet__pack(pkt, body);

	return seal(out, good_prefix, body, len);
}

/* Steps until both ends have heard each other. */
static void establish(struct simlink *sim)
{
	struct sync_peer_status a, b;
	int i;

	for (i = 0; i < 5000; i++) {
		simlink_step(sim);
		sync_link_peer(sim->end[A].link, sim->now, &a);
		sync_link_peer(sim->end[B].link, sim->now, &b);
		if (a.alive && b.alive)
			return;
	}
	fail_msg("the links never heard each other");
}

/* Seals pkt as if from B (node 2, epoch 2000) and gives it to A. Its
 * msg_seq runs ahead of B's own, but close enough that B's next datagrams
 * still fall inside A's replay window. */
static void inject_from_b(struct simlink *sim, Lbsync__Packet *pkt)
{
	static uint64_t extra = 100;
	uint8_t out[SIM_MAX_DGRAM];
	size_t n;

	pkt->node_id = 2;
	pkt->epoch = 2000;
	pkt->msg_seq = st(sim, B)->sent + extra++;
	n = seal_packet(out, pkt);
	sync_link_input(sim->end[A].link, out, n, sim->now);
}

static void send_n(struct simlink *sim, int idx, uint64_t n)
{
	while (n--)
		simlink_send(sim, idx, 0);
}

static struct simlink *perfect(uint32_t delay)
{
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim = simlink_new(&c, 1);

	sim->delay_min = sim->delay_max = delay;
	return sim;
}

/* ---- configuration ---- */

static void test_conf_invalid(void **state)
{
	struct sync_link_conf good = simlink_conf(1, 1), c;
	struct sync_link_ops no_send = simlink_ops;
	struct simlink_end e = { 0 };
	struct sync_link *l;

	(void)state;
	no_send.send = NULL;
#define BAD(mod)                                                                \
	do {                                                                    \
		c = good;                                                       \
		mod;                                                            \
		errno = 0;                                                      \
		assert_null(sync_link_new(&c, &simlink_ops, &e, 0));           \
		assert_int_equal(errno, EINVAL);                                \
	} while (0)
	BAD(c.node_id = 0);
	BAD(c.key = NULL);
	BAD(c.key_len = SYNC_KEY_MIN - 1);
	BAD(c.key_len = SYNC_KEY_MAX + 1);
	BAD(c.ring = 63);
	BAD(c.mtu = 511);
	BAD(c.mtu = 65536);
	BAD(c.heartbeat_ms = 0);
	BAD(c.nack_retry_ms = 0);
	BAD(c.peer_timeout_ms = 0);
#undef BAD
	errno = 0;
	assert_null(sync_link_new(NULL, &simlink_ops, &e, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(sync_link_new(&good, NULL, &e, 0));
	assert_null(sync_link_new(&good, &no_send, &e, 0));
	/* the smallest allowed values work */
	c = good;
	c.ring = 64;
	c.mtu = 512;
	c.key_len = SYNC_KEY_MIN;
	c.nack_delay_ms = 0;
	l = sync_link_new(&c, &simlink_ops, &e, 0);
	assert_non_null(l);
	sync_link_free(l);
	sync_link_free(NULL);
}

/* ---- delivery ---- */

static void test_round_trip(void **state)
{
	struct simlink *sim = perfect(1);
	struct simlink_end *b = &sim->end[B];
	uint64_t i;

	(void)state;
	establish(sim);
	for (i = 1; i <= 100; i++) {
		assert_int_equal(simlink_send(sim, A, 0), i);
		simlink_step(sim);
	}
	simlink_run(sim, 150);	/* a heartbeat carries B's ack back */
	assert_int_equal(b->deliver_calls, 100);
	for (i = 1; i <= 100; i++)
		assert_int_equal(b->delivered[i], 1);
	assert_int_equal(b->out_of_order, 0);
	assert_int_equal(b->payload_bad, 0);
	assert_int_equal(sync_link_last_sent(sim->end[A].link), 100);
	assert_int_equal(sync_link_received_through(sim->end[B].link), 100);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 100);
	assert_int_equal(sim->end[A].acked, 100);
	assert_true(sim->end[A].acked_calls >= 1);
	assert_int_equal(st(sim, A)->data_sent, 100);
	assert_int_equal(st(sim, A)->retransmitted, 0);
	assert_int_equal(st(sim, B)->duplicates, 0);
	assert_int_equal(st(sim, B)->nacks_sent, 0);
	assert_int_equal(st(sim, B)->data_received, 100);
	simlink_free(sim);
}

struct loss_figures {
	double retx_per_data;	/* A's retransmissions per Data it sent */
	uint64_t full_ms;	/* last send to everything delivered and acked */
	uint64_t max_unacked;
	uint64_t nacks, dups;
};

static int all_delivered(const struct simlink_end *e, uint64_t n)
{
	return e->deliver_calls >= n;
}

/*
 * A sends 5000 Data (one a millisecond) and B 1000 (one every 5 ms) while
 * both directions lose `loss`, duplicate 5% and delay 0-5 ms at random;
 * heartbeats and Nacks run on the fake clock. Then the clock runs until all
 * is delivered and acked.
 */
static void run_lossy(double loss, uint64_t seed, struct loss_figures *f)
{
	const uint64_t na = 5000, nb = 1000;
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim = simlink_new(&c, seed);
	struct sync_link *la = sim->end[A].link, *lb = sim->end[B].link;
	uint64_t t, start, unacked;

	sim->loss = loss;
	sim->dup = 0.05;
	sim->delay_min = 0;
	sim->delay_max = 5;
	memset(f, 0, sizeof(*f));
	establish(sim);
	for (t = 1; t <= na; t++) {
		simlink_step(sim);
		simlink_send(sim, A, 0);
		if (t % 5 == 0)
			simlink_send(sim, B, 0);
		unacked = sync_link_last_sent(la) - sync_link_peer_acked(la);
		f->max_unacked = unacked > f->max_unacked ? unacked : f->max_unacked;
	}
	start = sim->now;
	while (!(all_delivered(&sim->end[B], na) && all_delivered(&sim->end[A], nb) &&
		 sync_link_peer_acked(la) == na && sync_link_peer_acked(lb) == nb) &&
	       sim->now - start < 60000)
		simlink_step(sim);
	f->full_ms = sim->now - start;
	for (t = 1; t <= na; t++)
		assert_int_equal(sim->end[B].delivered[t], 1);
	for (t = 1; t <= nb; t++)
		assert_int_equal(sim->end[A].delivered[t], 1);
	assert_int_equal(sim->end[B].deliver_calls, na);
	assert_int_equal(sim->end[A].deliver_calls, nb);
	assert_int_equal(sim->end[B].payload_bad + sim->end[A].payload_bad, 0);
	assert_int_equal(st(sim, B)->holes_lost + st(sim, A)->holes_lost, 0);
	assert_int_equal(sim->end[A].acked, na);
	assert_int_equal(sim->end[B].acked, nb);
	/* repairs happened, and never had to reach back a full ring */
	assert_true(st(sim, A)->retransmitted > 0);
	assert_true(f->max_unacked < c.ring);
	assert_int_equal(st(sim, A)->gone_sent + st(sim, B)->gone_sent, 0);
	f->retx_per_data = (double)st(sim, A)->retransmitted / (double)na;
	f->nacks = st(sim, B)->nacks_sent;
	f->dups = st(sim, B)->duplicates;
	simlink_free(sim);
}

static void check_lossy(double loss)
{
	/* One loss needs one repair; a repair is itself lost with p, and a
	 * Nack too: about p / (1 - p) retransmissions per datagram, a bit
	 * more when a Nack is repeated before its repair arrives. */
	double ideal = loss / (1 - loss);
	uint64_t seed;

	for (seed = 1; seed <= 3; seed++) {
		struct loss_figures f;

		run_lossy(loss, seed * 7919, &f);
		printf("# loss %.0f%% seed %llu: %.3f retransmissions per Data (p/(1-p) = %.3f), "
		       "%llu Nacks, %llu duplicates, fully delivered+acked %llu ms after the "
		       "last send, at most %llu unacked\n",
		       loss * 100, (unsigned long long)seed, f.retx_per_data, ideal,
		       (unsigned long long)f.nacks, (unsigned long long)f.dups,
		       (unsigned long long)f.full_ms, (unsigned long long)f.max_unacked);
		assert_true(f.retx_per_data > 0.7 * ideal);
		assert_true(f.retx_per_data < 2.0 * ideal);
		assert_true(f.full_ms <= 1000);
	}
}

static void test_loss_10(void **state)
{
	(void)state;
	check_lossy(0.10);
}

static void test_loss_30(void **state)
{
	(void)state;
	check_lossy(0.30);
}

/* The last datagrams of a burst are lost: only the heartbeat tells. */
static void test_tail_loss(void **state)
{
	struct simlink *sim = perfect(1);
	struct simlink_end *b = &sim->end[B];
	uint64_t i, t0, hb_due;

	(void)state;
	establish(sim);
	for (i = 1; i <= 7; i++)
		simlink_send(sim, A, 0);
	sim->end[A].drop_next = 3;
	for (i = 8; i <= 10; i++)
		simlink_send(sim, A, 0);
	t0 = sim->now;
	hb_due = sync_link_next_ms(sim->end[A].link);
	simlink_run(sim, 5);
	assert_int_equal(b->deliver_calls, 7);
	assert_int_equal(sync_link_received_through(b->link), 7);
	assert_int_equal(st(sim, B)->nacks_sent, 0);	/* nothing to tell yet */
	while (b->deliver_calls < 10 && sim->now - t0 < 1000)
		simlink_step(sim);
	assert_int_equal(b->deliver_calls, 10);
	for (i = 8; i <= 10; i++)
		assert_int_equal(b->delivered[i], 1);
	/* heartbeat (+1 ms), nack_delay (2), Nack (+1), repair (+1) */
	assert_true(sim->now <= hb_due + 1 + 2 + 1 + 1);
	assert_int_equal(st(sim, B)->nacks_sent, 1);
	assert_int_equal(st(sim, A)->retransmitted, 3);
	simlink_free(sim);
}

/* ---- Nacks ---- */

struct nack_watch {
	uint64_t drop_once[4096];	/* data_seq to drop, times */
	size_t nacks;
	uint64_t nack_ms[64];
	struct sim_range ranges[64][32];
	size_t nranges[64];
	size_t max_len;
};

static struct nack_watch watch;

static int watch_drop(struct simlink *sim, int from, const uint8_t *buf, size_t len)
{
	Lbsync__Packet *p = decode(buf, len);
	int drop = 0;
	size_t i;

	assert_non_null(p);
	if (len > watch.max_len)
		watch.max_len = len;
	if (from == A && p->body_case == LBSYNC__PACKET__BODY_DATA &&
	    p->data->data_seq < 4096 && watch.drop_once[p->data->data_seq]) {
		watch.drop_once[p->data->data_seq]--;
		drop = 1;
	}
	if (from == B && p->body_case == LBSYNC__PACKET__BODY_NACK && watch.nacks < 64) {
		watch.nack_ms[watch.nacks] = sim->now;
		watch.nranges[watch.nacks] = p->nack->n_missing;
		for (i = 0; i < p->nack->n_missing && i < 32; i++)
			watch.ranges[watch.nacks][i] = (struct sim_range){
				p->nack->missing[i]->first, p->nack->missing[i]->last };
		watch.nacks++;
	}
	lbsync__packet__free_unpacked(p, NULL);
	return drop;
}

static void test_nack_timing_and_ranges(void **state)
{
	struct simlink *sim = perfect(1);
	uint64_t i, t0;

	(void)state;
	memset(&watch, 0, sizeof(watch));
	sim->drop = watch_drop;
	establish(sim);
	watch.drop_once[2] = watch.drop_once[3] = watch.drop_once[4] = 1;
	watch.drop_once[7] = 2;	/* and its first repair */
	for (i = 1; i <= 10; i++)
		simlink_send(sim, A, 0);
	t0 = sim->now;
	simlink_step(sim);	/* t0+1: B has 1,5,6,8,9,10 */
	assert_int_equal(sim->end[B].deliver_calls, 6);
	simlink_step(sim);
	assert_int_equal(watch.nacks, 0);	/* reordering gets nack_delay_ms */
	simlink_step(sim);	/* t0+3 = arrival + nack_delay_ms */
	assert_int_equal(watch.nacks, 1);
	assert_int_equal(watch.nack_ms[0], t0 + 3);
	assert_int_equal(watch.nranges[0], 2);	/* 2-4 merged, then 7 */
	assert_int_equal(watch.ranges[0][0].first, 2);
	assert_int_equal(watch.ranges[0][0].last, 4);
	assert_int_equal(watch.ranges[0][1].first, 7);
	assert_int_equal(watch.ranges[0][1].last, 7);
	simlink_run(sim, 2);
	assert_int_equal(sim->end[B].deliver_calls, 9);	/* 7's repair was lost */
	simlink_run(sim, 30);
	assert_int_equal(watch.nacks, 2);	/* once more, after nack_retry_ms */
	assert_int_equal(watch.nack_ms[1], t0 + 3 + 20);
	assert_int_equal(watch.nranges[1], 1);
	assert_int_equal(watch.ranges[1][0].first, 7);
	assert_int_equal(watch.ranges[1][0].last, 7);
	assert_int_equal(sim->end[B].deliver_calls, 10);
	assert_int_equal(sim->end[B].delivered[7], 1);
	assert_int_equal(st(sim, A)->retransmitted, 5);
	simlink_free(sim);
}

/* 300 isolated holes do not fit one Nack in a 512-byte mtu: several go,
 * each within the mtu, together naming every hole. */
static void test_nack_split_mtu(void **state)
{
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim;
	uint64_t i, named = 0;
	size_t n, k;

	(void)state;
	c.mtu = 512;
	sim = simlink_new(&c, 1);
	sim->delay_min = sim->delay_max = 1;
	memset(&watch, 0, sizeof(watch));
	sim->drop = watch_drop;
	establish(sim);
	for (i = 2; i <= 600; i += 2)
		watch.drop_once[i] = 1;
	for (i = 1; i <= 601; i++)	/* 601 arrives: no tail loss here */
		simlink_send(sim, A, 0);
	simlink_run(sim, 10);
	assert_true(watch.nacks > 1);
	assert_true(watch.max_len <= c.mtu);
	for (n = 0; n < watch.nacks; n++) {
		for (k = 0; k < watch.nranges[n]; k++) {
			assert_int_equal(watch.ranges[n][k].first, watch.ranges[n][k].last);
			if (k)
				assert_true(watch.ranges[n][k].first >
					    watch.ranges[n][k - 1].last + 1);
			named++;
		}
	}
	assert_int_equal(named, 300);
	assert_int_equal(sim->end[B].deliver_calls, 601);
	for (i = 1; i <= 601; i++)
		assert_int_equal(sim->end[B].delivered[i], 1);
	simlink_free(sim);
}

/* A Nack causes bounded work: ranges are clamped to what was sent, at most
 * 256 repairs per Nack, one Gone for what left the ring; Nacks of another
 * epoch of ours are ignored. */
static void test_nack_bounds(void **state)
{
	struct simlink *sim = perfect(0);
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Nack nack = LBSYNC__NACK__INIT;
	Lbsync__SeqRange r[3] = { LBSYNC__SEQ_RANGE__INIT, LBSYNC__SEQ_RANGE__INIT,
				  LBSYNC__SEQ_RANGE__INIT };
	Lbsync__SeqRange *rp[3] = { &r[0], &r[1], &r[2] };

	(void)state;
	establish(sim);
	sim->cut[A] = 1;	/* keep the repairs off the wire */
	send_n(sim, A, 1100);	/* the ring (1024) holds 77..1100 */
	pkt.body_case = LBSYNC__PACKET__BODY_NACK;
	pkt.nack = &nack;
	nack.missing = rp;
	nack.peer_epoch = 999;
	nack.n_missing = 1;
	r[0].first = 1;
	r[0].last = 10;
	inject_from_b(sim, &pkt);
	assert_int_equal(st(sim, A)->retransmitted, 0);
	assert_int_equal(st(sim, A)->gone_sent, 0);
	nack.peer_epoch = 1000;
	nack.n_missing = 3;
	r[0].first = 5000;		/* never sent */
	r[0].last = 6000;
	r[1].first = 900;		/* inverted */
	r[1].last = 800;
	r[2].first = 0;
	r[2].last = UINT64_MAX;
	inject_from_b(sim, &pkt);
	assert_int_equal(st(sim, A)->retransmitted, 256);
	assert_int_equal(st(sim, A)->gone_sent, 1);
	nack.n_missing = 1;
	r[0].first = 1000;
	r[0].last = 1100;
	inject_from_b(sim, &pkt);
	assert_int_equal(st(sim, A)->retransmitted, 256 + 101);
	assert_int_equal(st(sim, A)->gone_sent, 1);
	assert_int_equal(st(sim, A)->nacks_received, 3);
	simlink_free(sim);
}

/* ---- ring overflow and Gone ---- */

static int in_lost(const struct simlink_end *e, uint64_t seq)
{
	size_t i;
	int n = 0;

	for (i = 0; i < e->nlost && i < SIM_MAX_LOST; i++)
		n += seq >= e->lost[i].first && seq <= e->lost[i].last;
	return n;
}

static void test_ring_overflow_gone(void **state)
{
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim;
	struct simlink_end *b;
	uint64_t i;

	(void)state;
	c.ring = 64;
	c.heartbeat_ms = 1000;	/* keep heartbeats out of the way */
	sim = simlink_new(&c, 1);
	b = &sim->end[B];
	sim->delay_min = sim->delay_max = 1;
	establish(sim);
	send_n(sim, A, 10);
	simlink_run(sim, 3);
	assert_int_equal(b->deliver_calls, 10);
	sim->cut[A] = 1;
	send_n(sim, A, 30);		/* 11..40 never arrive */
	sim->cut[A] = 0;
	sim->cut[B] = 1;		/* B's Nacks won't arrive */
	send_n(sim, A, 1);		/* 41 tells B of 11..40 */
	simlink_run(sim, 5);
	assert_true(st(sim, B)->nacks_sent >= 1);
	sim->cut[A] = 1;
	send_n(sim, A, 79);		/* 42..120: the ring now holds 57..120 */
	sim->cut[A] = sim->cut[B] = 0;
	simlink_run(sim, 30);		/* a repeated Nack reaches A */
	assert_int_equal(st(sim, A)->gone_sent, 1);
	assert_int_equal(st(sim, B)->gone_received, 1);
	assert_int_equal(b->nlost, 2);
	assert_int_equal(b->lost[0].first, 11);
	assert_int_equal(b->lost[0].last, 40);
	assert_int_equal(b->lost[1].first, 42);
	assert_int_equal(b->lost[1].last, 56);
	assert_int_equal(st(sim, B)->holes_lost, 30 + 15);
	/* received through 56: delivered, or given up and reported */
	assert_int_equal(sync_link_received_through(b->link), 56);
	/* the stream goes on: 57..120 are one beyond the window of 121, the
	 * rest comes back from the ring */
	send_n(sim, A, 1);
	simlink_run(sim, 1100);
	for (i = 1; i <= 121; i++)
		if (b->delivered[i] + in_lost(b, i) != 1)
			fail_msg("data_seq %llu: delivered %u, lost %d", (unsigned long long)i,
				 b->delivered[i], in_lost(b, i));
	assert_int_equal(b->delivered[121], 1);
	assert_int_equal(sync_link_received_through(b->link), 121);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 121);
	simlink_free(sim);
}

/* A data_seq further than the window ahead: the rest is given up at once. */
static void test_window_jump(void **state)
{
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim;
	struct simlink_end *b;

	(void)state;
	c.ring = 64;
	sim = simlink_new(&c, 1);
	b = &sim->end[B];
	sim->delay_min = sim->delay_max = 1;
	establish(sim);
	send_n(sim, A, 5);
	sim->cut[A] = 1;
	send_n(sim, A, 200);		/* 6..205, the ring holds 142..205 */
	sim->cut[A] = 0;
	send_n(sim, A, 1);		/* 206: window (142, 206] */
	simlink_run(sim, 50);
	assert_int_equal(b->lost[0].first, 6);
	assert_int_equal(b->lost[0].last, 142);
	assert_int_equal(st(sim, B)->holes_lost, 137);
	assert_int_equal(b->deliver_calls, 5 + 64);
	assert_int_equal(st(sim, A)->gone_sent, 0);
	simlink_free(sim);
}

/* ---- epochs ---- */

static void test_peer_restart(void **state)
{
	struct simlink *sim = perfect(1);
	struct sync_link_conf c = simlink_conf(1, 1001);
	struct simlink_end *a = &sim->end[A], *b = &sim->end[B];
	struct sync_link *old, *fresh;
	uint8_t old_hb[SIM_MAX_DGRAM], old_ack[SIM_MAX_DGRAM];
	size_t old_hb_len, old_ack_len;
	struct sync_peer_status ps;
	uint64_t i;

	(void)state;
	establish(sim);
	send_n(sim, A, 5);
	simlink_run(sim, 150);
	assert_int_equal(b->deliver_calls, 5);
	assert_int_equal(sync_link_peer_acked(a->link), 5);
	/* B's heartbeat acking epoch 1000's stream, and one of A's, for later */
	old_ack_len = capture_next(sim, B, old_ack);
	old_hb_len = capture_next(sim, A, old_hb);

	/* A restarts: same node, epoch 1001 */
	old = a->link;
	fresh = simlink_new_link(sim, A, &c);
	assert_non_null(fresh);
	a->link = fresh;
	sync_link_send_data(fresh, (const uint8_t *)"early", 5, 0, sim->now);
	/* B echoes the new epoch at once, A answers: proven within a round
	 * trip. Data sent before that went to a B that A did not know yet,
	 * are refused, and skipped (not lost: a joining node resyncs) */
	simlink_run(sim, 30);
	assert_int_equal(st(sim, B)->unproven, 2);	/* A's first heartbeat, the Data */
	assert_int_equal(st(sim, B)->holes_lost, 0);
	assert_int_equal(b->restarts, 1);
	send_n(sim, A, 3);
	simlink_run(sim, 3);
	assert_int_equal(b->restart_epoch, 1001);
	assert_int_equal(st(sim, B)->peer_restarts, 1);
	for (i = 2; i <= 4; i++)
		assert_int_equal(b->delivered[i], 1);	/* counted afresh */
	assert_int_equal(b->delivered[1], 0);	/* the early one: skipped */
	assert_int_equal(b->deliver_calls, 8);
	assert_int_equal(sync_link_received_through(b->link), 4);
	sync_link_peer(b->link, sim->now, &ps);
	assert_int_equal(ps.epoch, 1001);

	/* the previous incarnation's datagrams are refused */
	sync_link_input(b->link, old_hb, old_hb_len, sim->now);
	assert_int_equal(st(sim, B)->stale_epoch, 1);
	sync_link_send_data(old, (const uint8_t *)"x", 1, 1, sim->now);
	simlink_run(sim, 3);
	assert_int_equal(st(sim, B)->stale_epoch, 2);
	assert_int_equal(b->deliver_calls, 8);
	assert_int_equal(st(sim, B)->acks_sent, 0);

	/* an ack of the old epoch's stream does not move the new one's */
	sync_link_input(fresh, old_ack, old_ack_len, sim->now);
	assert_int_equal(sync_link_peer_acked(fresh), 0);
	simlink_run(sim, 150);
	assert_int_equal(sync_link_peer_acked(fresh), 4);
	sync_link_free(old);
	simlink_free(sim);
}

/* ---- refusals ---- */

static void test_hmac_other_key(void **state)
{
	struct simlink *sim = perfect(1);
	/* A's node, as a restart would look: accepted, it would reset B */
	struct sync_link_conf c = simlink_conf(1, 1001);
	struct simlink_end tap = { .sim = sim, .hold = 1 };
	struct sync_link_stats before;
	struct sync_link *forger;
	uint64_t b_sent, acked;

	(void)state;
	establish(sim);
	send_n(sim, A, 3);
	simlink_run(sim, 150);
	c.key = (const uint8_t *)"another key, as long as the ours";
	forger = sync_link_new(&c, &simlink_ops, &tap, sim->now);
	assert_non_null(forger);
	before = *st(sim, B);
	b_sent = sim->end[B].sent;
	acked = sync_link_peer_acked(sim->end[A].link);
	/* Data with ack_request, a heartbeat claiming far more data, a Gone */
	sync_link_send_data(forger, (const uint8_t *)"forged", 6, 1, sim->now);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	sync_link_tick(forger, sim->now);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	sync_link_request_resync(forger, 0, sim->now);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	assert_stats_only(&before, st(sim, B), STAT_OFF(bad_hmac), 3);
	assert_int_equal(sim->end[B].deliver_calls, 3);
	assert_int_equal(sim->end[B].nresync, 0);
	assert_int_equal(sim->end[B].sent, b_sent);
	simlink_run(sim, 300);
	assert_int_equal(sim->end[B].deliver_calls, 3);
	assert_int_equal(st(sim, B)->nacks_sent, 0);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), acked);
	sync_link_free(forger);
	simlink_free(sim);
}

static void test_hmac_bit_flips(void **state)
{
	struct simlink *sim = perfect(1);
	uint8_t dgram[SIM_MAX_DGRAM], bad[SIM_MAX_DGRAM];
	struct sync_link_stats before;
	size_t len, bit;

	(void)state;
	establish(sim);
	len = capture(sim, A, dgram, act_send_a_ack);
	for (bit = 0; bit < len * 8; bit++) {
		size_t off = bit / 8 < PREFIX ? STAT_OFF(bad_magic) : STAT_OFF(bad_hmac);

		memcpy(bad, dgram, len);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		before = *st(sim, B);
		sync_link_input(sim->end[B].link, bad, len, sim->now);
		assert_stats_only(&before, st(sim, B), off, 1);
	}
	assert_int_equal(sim->end[B].deliver_calls, 0);
	/* the original still passes: the flips were refused for themselves */
	sync_link_input(sim->end[B].link, dgram, len, sim->now);
	assert_int_equal(sim->end[B].deliver_calls, 1);
	assert_int_equal(st(sim, B)->acks_sent, 1);
	simlink_free(sim);
}

static void test_size_and_prefix(void **state)
{
	struct simlink *sim = perfect(1);
	struct sync_link *lb = sim->end[B].link;
	uint8_t dgram[SIM_MAX_DGRAM], bad[SIM_MAX_DGRAM];
	uint8_t big[1401];
	const uint8_t wrong[][4] = { { 'X', 'B', 1, 0 }, { 'L', 'B', 2, 0 }, { 'L', 'B', 1, 1 } };
	struct sync_link_stats before;
	size_t len, n, i;

	(void)state;
	establish(sim);
	len = capture(sim, A, dgram, act_send_a);
	for (n = 0; n < len; n++) {
		before = *st(sim, B);
		sync_link_input(lb, dgram, n, sim->now);
		assert_stats_only(&before, st(sim, B),
				  n < PREFIX + MAC ? STAT_OFF(bad_size) : STAT_OFF(bad_hmac), 1);
	}
	before = *st(sim, B);
	sync_link_input(lb, NULL, 0, sim->now);
	memset(big, 0, sizeof(big));
	memcpy(big, dgram, len);
	sync_link_input(lb, big, sizeof(big), sim->now);	/* over the mtu */
	assert_stats_only(&before, st(sim, B), STAT_OFF(bad_size), 2);
	/* a wrong prefix is refused even under a valid HMAC */
	for (i = 0; i < 3; i++) {
		n = seal(bad, wrong[i], dgram + PREFIX, len - PREFIX - MAC);
		before = *st(sim, B);
		sync_link_input(lb, bad, n, sim->now);
		assert_stats_only(&before, st(sim, B), STAT_OFF(bad_magic), 1);
	}
	assert_int_equal(sim->end[B].deliver_calls, 0);
	sync_link_input(lb, dgram, len, sim->now);
	assert_int_equal(sim->end[B].deliver_calls, 1);
	simlink_free(sim);
}

/* Authenticated but not a Packet we can use: bad_decode, nothing else. */
static void test_bad_decode(void **state)
{
	struct simlink *sim = perfect(1);
	struct sync_link *lb = sim->end[B].link;
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Data data = LBSYNC__DATA__INIT;
	uint8_t junk[64], out[SIM_MAX_DGRAM];
	struct sync_link_stats before;
	size_t n;

	(void)state;
	establish(sim);
	memset(junk, 0xff, sizeof(junk));
	before = *st(sim, B);
	n = seal(out, good_prefix, junk, sizeof(junk));
	sync_link_input(lb, out, n, sim->now);
	pkt.node_id = 1;
	pkt.epoch = 1000;
	pkt.msg_seq = 1000000;		/* no body */
	n = seal_packet(out, &pkt);
	sync_link_input(lb, out, n, sim->now);
	pkt.body_case = LBSYNC__PACKET__BODY_DATA;
	pkt.data = &data;
	data.data_seq = 0;		/* data_seq counts from 1 */
	n = seal_packet(out, &pkt);
	sync_link_input(lb, out, n, sim->now);
	data.data_seq = 1;
	pkt.msg_seq = 0;		/* so does msg_seq */
	n = seal_packet(out, &pkt);
	sync_link_input(lb, out, n, sim->now);
	assert_stats_only(&before, st(sim, B), STAT_OFF(bad_decode), 4);
	assert_int_equal(sim->end[B].deliver_calls, 0);
	/* the same, well formed, is taken */
	pkt.msg_seq = 1000000;
	n = seal_packet(out, &pkt);
	sync_link_input(lb, out, n, sim->now);
	assert_int_equal(sim->end[B].deliver_calls, 1);
	simlink_free(sim);
}

static void act_resync_a(struct simlink *sim)
{
	sync_link_request_resync(sim->end[A].link, 0, sim->now);
}

static void test_replay(void **state)
{
	struct simlink *sim = perfect(0);
	struct sync_link *lb = sim->end[B].link;
	uint8_t d1[SIM_MAX_DGRAM], d3[SIM_MAX_DGRAM];
	size_t n1, n3, i;

	(void)state;
	establish(sim);
	n1 = capture(sim, A, d1, act_send_a);	/* data_seq 1, held */
	send_n(sim, A, 1);			/* data_seq 2, later msg_seq */
	simlink_flush(sim);
	assert_int_equal(sim->end[B].deliver_calls, 1);
	/* an older msg_seq not seen yet is fine (reordering) */
	sync_link_input(lb, d1, n1, sim->now);
	assert_int_equal(sim->end[B].deliver_calls, 2);
	assert_int_equal(st(sim, B)->replayed, 0);
	/* the same again is a replay, and delivers nothing */
	sync_link_input(lb, d1, n1, sim->now);
	assert_int_equal(st(sim, B)->replayed, 1);
	assert_int_equal(st(sim, B)->duplicates, 0);
	assert_int_equal(sim->end[B].deliver_calls, 2);
	/* one never seen but 1024 msg_seq behind the newest is too old */
	n3 = capture(sim, A, d3, act_send_a);
	for (i = 0; i < 1100; i++)
		act_resync_a(sim);
	simlink_flush(sim);
	sync_link_input(lb, d3, n3, sim->now);
	assert_int_equal(st(sim, B)->replayed, 2);
	assert_int_equal(sim->end[B].delivered[3], 0);
	simlink_free(sim);
}

static void test_own_and_foreign_node(void **state)
{
	struct simlink *sim = perfect(1);
	struct simlink_end tap = { .sim = sim, .hold = 1 };
	struct sync_link_conf own = simlink_conf(2, 5), third = simlink_conf(3, 5);
	struct sync_link *l;
	struct sync_link_stats before;
	struct sync_peer_status ps;

	(void)state;
	/* before any peer: our own node id must not become the peer */
	l = sync_link_new(&own, &simlink_ops, &tap, sim->now);
	sync_link_send_data(l, (const uint8_t *)"loop", 4, 0, sim->now);
	before = *st(sim, B);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	assert_stats_only(&before, st(sim, B), STAT_OFF(own_node), 1);
	sync_link_peer(sim->end[B].link, sim->now, &ps);
	assert_int_equal(ps.node_id, 0);
	sync_link_free(l);

	establish(sim);
	l = sync_link_new(&third, &simlink_ops, &tap, sim->now);
	sync_link_send_data(l, (const uint8_t *)"hello", 5, 1, sim->now);
	before = *st(sim, B);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	assert_stats_only(&before, st(sim, B), STAT_OFF(foreign_node), 1);
	sync_link_peer(sim->end[B].link, sim->now, &ps);
	assert_int_equal(ps.node_id, 1);
	assert_int_equal(sim->end[B].deliver_calls, 0);
	sync_link_free(l);
	simlink_free(sim);
}

/* ---- acks, status, resync, limits ---- */

static void test_ack_request(void **state)
{
	struct simlink *sim = perfect(0);
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Nack nack = LBSYNC__NACK__INIT;
	Lbsync__SeqRange range = LBSYNC__SEQ_RANGE__INIT, *rp = &range;
	uint64_t seq, seq2, t;

	(void)state;
	establish(sim);
	t = sim->now;
	seq = simlink_send(sim, A, 0);
	simlink_flush(sim);
	assert_int_equal(sim->end[B].deliver_calls, 1);
	assert_int_equal(st(sim, B)->acks_sent, 0);	/* no request, no Ack */
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 0);
	seq = simlink_send(sim, A, 1);
	simlink_flush(sim);				/* no time passes */
	assert_int_equal(sim->now, t);
	assert_int_equal(st(sim, B)->acks_sent, 1);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), seq);
	assert_int_equal(sim->end[A].acked, seq);
	assert_int_equal(sim->end[A].acked_calls, 1);
	/* B's Ack of the next one is lost; a duplicate (here a repair after a
	 * Nack) is answered again */
	seq2 = simlink_send(sim, A, 1);
	sim->end[B].hold = 1;
	simlink_flush(sim);
	sim->end[B].hold = 0;
	assert_int_equal(st(sim, B)->acks_sent, 2);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), seq);
	pkt.body_case = LBSYNC__PACKET__BODY_NACK;
	pkt.nack = &nack;
	nack.peer_epoch = 1000;
	nack.n_missing = 1;
	nack.missing = &rp;
	range.first = range.last = seq2;
	inject_from_b(sim, &pkt);
	assert_int_equal(st(sim, A)->retransmitted, 1);
	simlink_flush(sim);
	assert_int_equal(st(sim, B)->duplicates, 1);
	assert_int_equal(st(sim, B)->acks_sent, 3);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), seq2);
	simlink_free(sim);
}

/* Acks only move forward, never past what was sent, and only for our
 * current epoch; ops->acked is called only when they move. */
static void test_ack_forward_only(void **state)
{
	struct simlink *sim = perfect(0);
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Ack ack = LBSYNC__ACK__INIT;
	uint64_t calls, received;

	(void)state;
	establish(sim);
	send_n(sim, A, 3);
	pkt.body_case = LBSYNC__PACKET__BODY_ACK;
	pkt.ack = &ack;
	ack.peer_epoch = 1000;
	ack.acked = 2;
	inject_from_b(sim, &pkt);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 2);
	calls = sim->end[A].acked_calls;
	received = st(sim, A)->received;
	ack.acked = 1;
	inject_from_b(sim, &pkt);
	ack.peer_epoch = 999;		/* a previous incarnation of A */
	ack.acked = 3;
	inject_from_b(sim, &pkt);
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 2);
	assert_int_equal(sim->end[A].acked_calls, calls);
	ack.peer_epoch = 1000;
	ack.acked = 1000;		/* more than was sent */
	inject_from_b(sim, &pkt);
	assert_int_equal(st(sim, A)->received, received + 3);	/* taken, not refused */
	assert_int_equal(sync_link_peer_acked(sim->end[A].link), 3);
	assert_int_equal(sim->end[A].acked, 3);
	assert_int_equal(sim->end[A].acked_calls, calls + 1);
	simlink_free(sim);
}

static void test_peer_status(void **state)
{
	struct simlink *sim = perfect(1);
	struct sync_peer_status ps;

	(void)state;
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	assert_int_equal(ps.alive, 0);
	assert_int_equal(ps.node_id, 0);
	sync_link_set_status(sim->end[B].link, SYNC_ROLE_MASTER, 1);
	sync_link_set_status(sim->end[A].link, SYNC_ROLE_BACKUP, 0);
	simlink_run(sim, 150);
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	assert_int_equal(ps.alive, 1);
	assert_int_equal(ps.role, SYNC_ROLE_MASTER);
	assert_int_equal(ps.ready, 1);
	assert_int_equal(ps.node_id, 2);
	assert_int_equal(ps.epoch, 2000);
	assert_true(sim->now - ps.last_heard_ms < 100);
	sync_link_peer(sim->end[B].link, sim->now, &ps);
	assert_int_equal(ps.role, SYNC_ROLE_BACKUP);
	assert_int_equal(ps.ready, 0);
	/* the status changes with the next heartbeat */
	sync_link_set_status(sim->end[B].link, SYNC_ROLE_FAULT, 0);
	simlink_run(sim, 101);
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	assert_int_equal(ps.role, SYNC_ROLE_FAULT);
	assert_int_equal(ps.ready, 0);
	/* silence: alive until peer_timeout_ms after the last datagram */
	sim->cut[B] = 1;
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	sync_link_peer(sim->end[A].link, ps.last_heard_ms + 999, &ps);
	assert_int_equal(ps.alive, 1);
	sync_link_peer(sim->end[A].link, ps.last_heard_ms + 1000, &ps);
	assert_int_equal(ps.alive, 0);
	simlink_run(sim, 1001);
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	assert_int_equal(ps.alive, 0);
	assert_int_equal(ps.node_id, 2);
	sim->cut[B] = 0;
	simlink_run(sim, 101);
	sync_link_peer(sim->end[A].link, sim->now, &ps);
	assert_int_equal(ps.alive, 1);
	simlink_free(sim);
}

/* Request ids grow from the requester's epoch, so no incarnation can
 * mistake an answer to an earlier one's request for its own. */
static void test_resync_request(void **state)
{
	struct simlink *sim = perfect(1);
	uint64_t first, second;

	(void)state;
	establish(sim);
	first = sync_link_request_resync(sim->end[A].link, 0, sim->now);
	second = sync_link_request_resync(sim->end[A].link, 0, sim->now);
	assert_true(first > 1000);	/* A's epoch (simlink_new) */
	assert_int_equal(second, first + 1);
	simlink_run(sim, 2);
	assert_int_equal(sim->end[B].nresync, 2);
	assert_int_equal(sim->end[B].resync_ids[0], first);
	assert_int_equal(sim->end[B].resync_ids[1], second);
	assert_int_equal(sim->end[A].nresync, 0);
	simlink_free(sim);
}

/* The largest payload fits the mtu even with the widest identity; one
 * byte more is refused without sending. */
static void test_max_payload(void **state)
{
	struct sync_link_conf ca = simlink_conf(UINT32_MAX, SYNC_EPOCH_MAX - 1);
	struct sync_link_conf cb = simlink_conf(7, SYNC_EPOCH_MAX);
	struct simlink_end ea = { .hold = 1 }, eb = { .hold = 1 };
	struct sync_link *la, *lb;
	uint8_t payload[65536];
	size_t max;
	uint64_t sent;

	(void)state;
	ca.mtu = cb.mtu = 512;
	ca.peer_id = 7;
	cb.peer_id = UINT32_MAX;
	la = sync_link_new(&ca, &simlink_ops, &ea, 0);
	lb = sync_link_new(&cb, &simlink_ops, &eb, 0);
	assert_non_null(la);
	assert_non_null(lb);
	/* hello, echo, echo: each proves the other's epoch */
	sync_link_tick(la, 0);
	sync_link_input(lb, ea.captured, ea.captured_len, 0);
	sync_link_tick(lb, 0);
	sync_link_input(la, eb.captured, eb.captured_len, 0);
	sync_link_tick(la, 0);
	sync_link_input(lb, ea.captured, ea.captured_len, 0);
	assert_int_equal(sync_link_stats(lb)->received, 1);
	assert_int_equal(sync_link_stats(la)->received, 1);
	max = sync_link_max_payload(la);
	assert_true(max >= 400 && max < 512);
	memset(payload, 0xee, sizeof(payload));
	sent = ea.sent;
	assert_int_equal(sync_link_send_data(la, payload, max + 1, 0, 0), 0);
	assert_int_equal(sync_link_stats(la)->send_too_big, 1);
	assert_int_equal(ea.sent, sent);
	assert_int_equal(sync_link_last_sent(la), 0);
	assert_int_equal(sync_link_send_data(la, payload, max, 1, 0), 1);
	assert_true(ea.captured_len <= 512);
	sync_link_input(lb, ea.captured, ea.captured_len, 0);
	assert_int_equal(sync_link_stats(lb)->data_received, 1);
	assert_int_equal(sync_link_stats(lb)->acks_sent, 1);
	assert_int_equal(sync_link_send_data(la, NULL, 0, 0, 0), 2);	/* empty is fine */
	sync_link_free(la);
	sync_link_free(lb);
}

/* ---- sequence numbers at the end of the range ---- */

/* Authenticated datagrams with msg_seq, data_seq, last_data_seq, acked or
 * first_available at 2^64 - 1 (or just above 2^62) are refused as
 * undecodable: nothing loops, nothing moves, and the stream goes on. */
static void test_seq_near_2_64(void **state)
{
	static const uint64_t huge[] = { UINT64_MAX, UINT64_MAX - 1, (UINT64_C(1) << 62) + 1 };
	struct simlink *sim = perfect(1);
	struct sync_link *la = sim->end[A].link;
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Data data = LBSYNC__DATA__INIT;
	Lbsync__Heartbeat hb = LBSYNC__HEARTBEAT__INIT;
	Lbsync__Ack ack = LBSYNC__ACK__INIT;
	Lbsync__Gone gone = LBSYNC__GONE__INIT;
	struct sync_link_stats before;
	uint8_t out[SIM_MAX_DGRAM];
	size_t i, n;

	(void)state;
	establish(sim);
	send_n(sim, B, 3);
	simlink_run(sim, 10);
	assert_int_equal(sync_link_received_through(la), 3);
	before = *st(sim, A);
	for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		pkt.node_id = 2;
		pkt.epoch = 2000;
		pkt.msg_seq = huge[i];		/* msg_seq itself */
		pkt.body_case = LBSYNC__PACKET__BODY_HEARTBEAT;
		pkt.heartbeat = &hb;
		hb.peer_epoch = 1000;
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
		pkt.msg_seq = st(sim, B)->sent + 50 + i;
		hb.last_data_seq = huge[i];	/* the tail of the stream */
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
		hb.last_data_seq = 0;
		hb.acked = huge[i];
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
		hb.acked = 0;
		pkt.body_case = LBSYNC__PACKET__BODY_DATA;
		pkt.data = &data;
		data.data_seq = huge[i];
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
		pkt.body_case = LBSYNC__PACKET__BODY_ACK;
		pkt.ack = &ack;
		ack.peer_epoch = 1000;
		ack.acked = huge[i];
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
		pkt.body_case = LBSYNC__PACKET__BODY_GONE;
		pkt.gone = &gone;
		gone.first_available = huge[i];
		n = seal_packet(out, &pkt);
		sync_link_input(la, out, n, sim->now);
	}
	assert_stats_only(&before, st(sim, A), STAT_OFF(bad_decode), 6 * 3);
	assert_int_equal(sync_link_received_through(la), 3);
	/* the stream goes on */
	send_n(sim, B, 3);
	send_n(sim, A, 3);
	simlink_run(sim, 150);
	assert_int_equal(sync_link_received_through(la), 6);
	assert_int_equal(sync_link_peer_acked(la), 3);
	assert_int_equal(st(sim, A)->holes_lost, 0);
	simlink_free(sim);
}

/* The highest data_seq a peer may send: far ahead, yet given up in time
 * bounded by the ring, and the link still answers. */
static void test_seq_limit_jump(void **state)
{
	struct simlink *sim = perfect(1);
	struct sync_link *la = sim->end[A].link;
	Lbsync__Packet pkt = LBSYNC__PACKET__INIT;
	Lbsync__Data data = LBSYNC__DATA__INIT;
	uint8_t out[SIM_MAX_DGRAM];
	size_t n;

	(void)state;
	establish(sim);
	pkt.node_id = 2;
	pkt.epoch = 2000;
	pkt.msg_seq = st(sim, B)->sent + 50;
	pkt.body_case = LBSYNC__PACKET__BODY_DATA;
	pkt.data = &data;
	data.data_seq = UINT64_C(1) << 62;
	n = seal_packet(out, &pkt);
	sync_link_input(la, out, n, sim->now);
	assert_int_equal(sim->end[A].deliver_calls, 1);
	/* everything further back than the window (ring 1024) is given up;
	 * the window's holes are Nacked, a ring's worth at most */
	assert_int_equal(sync_link_received_through(la), (UINT64_C(1) << 62) - 1024);
	assert_int_equal(st(sim, A)->holes_lost, (UINT64_C(1) << 62) - 1024);
	simlink_run(sim, 150);
	send_n(sim, A, 2);
	simlink_run(sim, 150);
	assert_int_equal(sync_link_peer_acked(la), 2);
	simlink_free(sim);
}

/* ---- replays into a restarted receiver ---- */

static int record_a(struct simlink *sim, int from, const uint8_t *buf, size_t len);

struct tape {
	uint8_t buf[64][SIM_MAX_DGRAM];
	size_t len[64], n;
};

static struct tape the_tape;

static int record_a(struct simlink *sim, int from, const uint8_t *buf, size_t len)
{
	(void)sim;
	if (from == A && the_tape.n < 64) {
		memcpy(the_tape.buf[the_tape.n], buf, len);
		the_tape.len[the_tape.n++] = len;
	}
	return 0;
}

static void play_tape(struct sync_link *to, uint64_t now)
{
	for (size_t i = 0; i < the_tape.n; i++)
		sync_link_input(to, the_tape.buf[i], the_tape.len[i], now);
}

/*
 * A capture of A's datagrams (heartbeats, Data) replayed into B after B
 * restarted: before A proves its epoch they are unproven, after it they are
 * replays; nothing is delivered, and A is never reported alive on their
 * strength. A capture of A's previous epoch, after A restarted, is stale.
 */
static void test_replayed_capture_after_restart(void **state)
{
	struct simlink *sim = perfect(1);
	struct simlink_end *b = &sim->end[B];
	struct sync_link_conf cb = simlink_conf(2, 2001), ca = simlink_conf(1, 1001);
	struct sync_peer_status ps;
	struct sync_link *old_a;
	uint64_t replayed;

	(void)state;
	establish(sim);
	memset(&the_tape, 0, sizeof(the_tape));
	sim->drop = record_a;
	send_n(sim, A, 5);
	simlink_run(sim, 250);		/* Data and heartbeats */
	sim->drop = NULL;
	assert_true(the_tape.n >= 7);
	/* B restarts */
	sync_link_free(b->link);
	b->link = simlink_new_link(sim, B, &cb);
	b->deliver_calls = 0;
	play_tape(b->link, sim->now);
	assert_int_equal(st(sim, B)->unproven, the_tape.n);
	assert_int_equal(b->deliver_calls, 0);
	sync_link_peer(b->link, sim->now, &ps);
	assert_int_equal(ps.alive, 0);
	establish(sim);
	replayed = st(sim, B)->replayed;
	play_tape(b->link, sim->now);
	assert_int_equal(st(sim, B)->replayed, replayed + the_tape.n);
	assert_int_equal(b->deliver_calls, 0);
	/* new Data still flow */
	send_n(sim, A, 2);
	simlink_run(sim, 10);
	assert_int_equal(b->deliver_calls, 2);
	/* A restarts: the capture of its previous epoch is stale */
	old_a = sim->end[A].link;
	sim->end[A].link = simlink_new_link(sim, A, &ca);
	simlink_run(sim, 50);
	sync_link_peer(b->link, sim->now, &ps);
	assert_int_equal(ps.epoch, 1001);
	play_tape(b->link, sim->now);
	assert_int_equal(st(sim, B)->stale_epoch, the_tape.n);
	assert_int_equal(b->deliver_calls, 2);
	sync_link_free(old_a);
	simlink_free(sim);
}

/* A receiver that has heard nobody yet does not take the first node that
 * authenticates as its peer: only conf.peer_id is heard. */
static void test_peer_id_not_pinned(void **state)
{
	struct simlink *sim = perfect(1);
	struct simlink_end tap = { .sim = sim, .hold = 1 };
	struct sync_link_conf third = simlink_conf(3, 5);
	struct sync_link_stats before;
	struct sync_peer_status ps;
	struct sync_link *l;

	(void)state;
	third.peer_id = 2;
	l = sync_link_new(&third, &simlink_ops, &tap, sim->now);
	assert_non_null(l);
	sync_link_tick(l, sim->now);		/* its hello */
	before = *st(sim, B);
	sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
	assert_stats_only(&before, st(sim, B), STAT_OFF(foreign_node), 1);
	establish(sim);			/* and the real peer is heard */
	sync_link_peer(sim->end[B].link, sim->now, &ps);
	assert_int_equal(ps.node_id, 1);
	assert_int_equal(ps.epoch, 1000);
	sync_link_free(l);
	simlink_free(sim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_invalid),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_loss_10),
		cmocka_unit_test(test_loss_30),
		cmocka_unit_test(test_tail_loss),
		cmocka_unit_test(test_nack_timing_and_ranges),
		cmocka_unit_test(test_nack_split_mtu),
		cmocka_unit_test(test_nack_bounds),
		cmocka_unit_test(test_ring_overflow_gone),
		cmocka_unit_test(test_window_jump),
		cmocka_unit_test(test_peer_restart),
		cmocka_unit_test(test_hmac_other_key),
		cmocka_unit_test(test_hmac_bit_flips),
		cmocka_unit_test(test_size_and_prefix),
		cmocka_unit_test(test_bad_decode),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_own_and_foreign_node),
		cmocka_unit_test(test_ack_request),
		cmocka_unit_test(test_ack_forward_only),
		cmocka_unit_test(test_peer_status),
		cmocka_unit_test(test_resync_request),
		cmocka_unit_test(test_max_payload),
		cmocka_unit_test(test_seq_near_2_64),
		cmocka_unit_test(test_seq_limit_jump),
		cmocka_unit_test(test_replayed_capture_after_restart),
		cmocka_unit_test(test_peer_id_not_pinned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
