/*
 * Unit tests of the sync link's key rotation (sync_link_set_key()), over
 * the simulated network of tests/sync/simlink.h: the two nodes get the new
 * key one after the other while data flows, and nothing is lost or refused
 * but the probe heartbeats of the node that went first; each node sends
 * under the new key as soon as the peer has shown it holds it; after the
 * grace period the old key is refused; a node left alone on the new key
 * after its grace period is cut off until the peer gets the key too, and
 * then the link repairs itself.
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

#include "simlink.h"
#include "sync_link.h"

#define A 0
#define B 1
#define MAC 32

static const uint8_t *new_key(void)
{
	return (const uint8_t *)"a new key for the pair, 32 bytes";
}

/* Which key the datagrams from each end were sealed with, as last seen. */
enum sealed { SEALED_NONE, SEALED_OLD, SEALED_NEW, SEALED_OTHER };
static enum sealed last_sealed[2];
static uint64_t sealed_new[2];

static int sealed_with(const uint8_t *key, const uint8_t *buf, size_t len)
{
	uint8_t mac[MAC];
	crypto_auth_hmacsha256_state s;

	crypto_auth_hmacsha256_init(&s, key, 32);
	crypto_auth_hmacsha256_update(&s, buf, len - MAC);
	crypto_auth_hmacsha256_final(&s, mac);
	return sodium_memcmp(mac, buf + len - MAC, MAC) == 0;
}

static int watch_keys(struct simlink *sim, int from, const uint8_t *buf, size_t len)
{
	(void)sim;
	if (sealed_with(simlink_key(), buf, len)) {
		last_sealed[from] = SEALED_OLD;
	} else if (sealed_with(new_key(), buf, len)) {
		last_sealed[from] = SEALED_NEW;
		sealed_new[from]++;
	} else {
		last_sealed[from] = SEALED_OTHER;
	}
	return 0;
}

static struct simlink *pair(void)
{
	struct sync_link_conf c = simlink_conf(0, 0);
	struct simlink *sim = simlink_new(&c, 7);

	sim->delay_min = sim->delay_max = 1;
	sim->drop = watch_keys;
	memset(last_sealed, 0, sizeof(last_sealed));
	memset(sealed_new, 0, sizeof(sealed_new));
	/* Data count only once each end has proven the other's epoch live
	 * (sync_link.h, freshness): a few heartbeats first. */
	for (int i = 0; i < 100; i++) {
		struct sync_peer_status pa, pb;

		sync_link_peer(sim->end[0].link, sim->now, &pa);
		sync_link_peer(sim->end[1].link, sim->now, &pb);
		if (pa.alive && pb.alive)
			break;
		simlink_step(sim);
	}
	return sim;
}

static const struct sync_link_stats *st(struct simlink *sim, int idx)
{
	return sync_link_stats(sim->end[idx].link);
}

static int peer_alive(struct simlink *sim, int idx)
{
	struct sync_peer_status p;

	sync_link_peer(sim->end[idx].link, sim->now, &p);
	return p.alive;
}

/* ms of traffic: each end sends one Data datagram every 10 ms. */
static void traffic(struct simlink *sim, uint64_t ms)
{
	for (uint64_t i = 0; i < ms; i++) {
		if (i % 10 == 0) {
			simlink_send(sim, A, 0);
			simlink_send(sim, B, 0);
		}
		simlink_step(sim);
	}
}

/* Everything each end sent was delivered once at the other, nothing lost. */
static void assert_all_delivered(struct simlink *sim)
{
	for (int i = 0; i < 2; i++) {
		struct simlink_end *to = &sim->end[!i];
		uint64_t last = sync_link_last_sent(sim->end[i].link);

		assert_true(last > 0);
		for (uint64_t s = 1; s <= last; s++)
			assert_int_equal(to->delivered[s], 1);
		assert_int_equal(to->payload_bad, 0);
		assert_int_equal(to->lost_total, 0);
	}
}

static void test_rotation_one_after_the_other(void **state)
{
	struct simlink *sim = pair();
	uint64_t bad_b, probes;

	(void)state;
	traffic(sim, 300);
	assert_int_equal(last_sealed[A], SEALED_OLD);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_STEADY);

	/* A first: it still sends under the old key, and probes. */
	assert_int_equal(sync_link_set_key(sim->end[A].link, new_key(), 32, 5000, sim->now), 0);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_OFFERED);
	bad_b = st(sim, B)->bad_hmac;
	traffic(sim, 1000);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_OFFERED);
	probes = st(sim, B)->bad_hmac - bad_b;
	/* One probe heartbeat per 100 ms period, refused by B, nothing else. */
	assert_in_range(probes, 9, 11);
	/* Every datagram A sealed with the new key was a probe (the last one
	 * may still be on the wire). */
	assert_in_range(sealed_new[A] - probes, 0, 1);
	assert_int_equal(st(sim, A)->bad_hmac, 0);
	assert_true(peer_alive(sim, A) && peer_alive(sim, B));

	/* B second: within a heartbeat both send under the new key. */
	assert_int_equal(sync_link_set_key(sim->end[B].link, new_key(), 32, 5000, sim->now), 0);
	traffic(sim, 250);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_SWITCHED);
	assert_int_equal(sync_link_key_state(sim->end[B].link), SYNC_KEY_SWITCHED);
	assert_int_equal(last_sealed[A], SEALED_NEW);
	assert_int_equal(last_sealed[B], SEALED_NEW);
	bad_b = st(sim, B)->bad_hmac;
	traffic(sim, 500);
	assert_int_equal(st(sim, B)->bad_hmac, bad_b);
	assert_int_equal(st(sim, A)->bad_hmac, 0);

	/* Past the grace period: one key again, and the old one is refused. */
	traffic(sim, 5000);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_STEADY);
	assert_int_equal(sync_link_key_state(sim->end[B].link), SYNC_KEY_STEADY);
	assert_all_delivered(sim);
	{
		struct sync_link_conf c = simlink_conf(1, 1000);
		struct simlink_end tap = { .sim = sim, .hold = 1 };
		struct sync_link *old = sync_link_new(&c, &simlink_ops, &tap, sim->now);

		assert_non_null(old);
		sync_link_tick(old, sim->now);
		bad_b = st(sim, B)->bad_hmac;
		sync_link_input(sim->end[B].link, tap.captured, tap.captured_len, sim->now);
		assert_int_equal(st(sim, B)->bad_hmac, bad_b + 1);
		sync_link_free(old);
	}
	simlink_free(sim);
}

static void test_grace_runs_out_alone(void **state)
{
	struct simlink *sim = pair();
	uint64_t bad_a, bad_b;

	(void)state;
	traffic(sim, 300);
	assert_int_equal(sync_link_set_key(sim->end[A].link, new_key(), 32, 1000, sim->now), 0);
	traffic(sim, 800);
	assert_int_equal(st(sim, A)->bad_hmac, 0);
	assert_true(peer_alive(sim, A));
	traffic(sim, 300);
	/* A now has the new key alone: the two refuse each other. */
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_STEADY);
	bad_a = st(sim, A)->bad_hmac;
	bad_b = st(sim, B)->bad_hmac;
	traffic(sim, 1500);
	assert_true(st(sim, A)->bad_hmac > bad_a);
	assert_true(st(sim, B)->bad_hmac > bad_b + 10);
	assert_false(peer_alive(sim, A));
	assert_false(peer_alive(sim, B));

	/* B gets the key: A's datagrams authenticate, and the link recovers
	 * what was refused in between (Nacks and retransmissions). */
	assert_int_equal(sync_link_set_key(sim->end[B].link, new_key(), 32, 1000, sim->now), 0);
	traffic(sim, 300);
	assert_int_equal(sync_link_key_state(sim->end[B].link), SYNC_KEY_SWITCHED);
	assert_true(peer_alive(sim, A) && peer_alive(sim, B));
	traffic(sim, 1500);
	simlink_run(sim, 500);
	assert_all_delivered(sim);
	simlink_free(sim);
}

static void test_set_key_refuses_bad_lengths(void **state)
{
	struct simlink *sim = pair();

	(void)state;
	assert_int_equal(sync_link_set_key(sim->end[A].link, new_key(), SYNC_KEY_MIN - 1, 1000,
					   sim->now), -EINVAL);
	assert_int_equal(sync_link_set_key(sim->end[A].link, new_key(), SYNC_KEY_MAX + 1, 1000,
					   sim->now), -EINVAL);
	assert_int_equal(sync_link_set_key(sim->end[A].link, NULL, 32, 1000, sim->now), -EINVAL);
	assert_int_equal(sync_link_key_state(sim->end[A].link), SYNC_KEY_STEADY);
	traffic(sim, 300);
	assert_int_equal(last_sealed[A], SEALED_OLD);
	assert_int_equal(st(sim, B)->bad_hmac, 0);
	simlink_free(sim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rotation_one_after_the_other),
		cmocka_unit_test(test_grace_runs_out_alone),
		cmocka_unit_test(test_set_key_refuses_bad_lengths),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
