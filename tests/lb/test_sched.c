/*
 * Unit tests of lb_sched: every algorithm's distribution, interleaving and
 * consistency properties, the skipping of unavailable backends, and a
 * concurrency smoke test, all through the public interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../lb/backend_impl.h"
#include "../../lb/lb_sched.h"

#define SEED 0x5eed1234u
#define NCLIENTS 10000
#define MAXB 8

static const char *const algos[] = { "rr", "wrr", "lc", "wlc", "sh", "mh" };
#define NALGOS (sizeof(algos) / sizeof(algos[0]))

static void be_init(struct lb_backend *be, const char *addr, uint16_t port, uint32_t weight)
{
	memset(be, 0, sizeof(*be));
	assert_int_equal(lb_addr_parse(&be->conf.addr, addr), 0);
	be->conf.port = port;
	be->conf.weight = weight;
	atomic_init(&be->draining, false);
	atomic_init(&be->active, 0);
	atomic_init(&be->inactive, 0);
}

/* Backends 198.18.1.1..n, port 80, with the given weights. */
static void be_init_n(struct lb_backend *be, struct lb_backend **ptrs, size_t n,
		      const uint32_t *weights)
{
	for (size_t i = 0; i < n; i++) {
		char text[32];

		snprintf(text, sizeof(text), "198.18.1.%zu", i + 1);
		be_init(&be[i], text, 80, weights[i]);
		ptrs[i] = &be[i];
	}
}

/* A scattered client address: splitmix32 of i, IPv6 for every 8th. */
static void client_addr(struct lb_addr *a, uint32_t i)
{
	uint32_t x = i * 0x9e3779b9u + 0x7f4a7c15u;

	x = (x ^ (x >> 16)) * 0x85ebca6bu;
	x = (x ^ (x >> 13)) * 0xc2b2ae35u;
	x ^= x >> 16;
	memset(a, 0, sizeof(*a));
	if (i % 8 == 7) {
		a->family = AF_INET6;
		a->bytes[0] = 0x20;
		a->bytes[1] = 0x01;
		memcpy(a->bytes + 12, &x, 4);
		memcpy(a->bytes + 8, &i, 4);
	} else {
		a->family = AF_INET;
		memcpy(a->bytes, &x, 4);
	}
}

static size_t be_index(struct lb_backend *const *ptrs, size_t n, const struct lb_backend *be)
{
	for (size_t i = 0; i < n; i++)
		if (ptrs[i] == be)
			return i;
	fail_msg("pick returned a backend not in the array");
	return n;
}

/* Picks count times with one client and tallies per backend. */
static void tally(struct lb_sched *s, struct lb_backend *const *ptrs, size_t n,
		  size_t count, size_t *counts)
{
	struct lb_addr c;

	client_addr(&c, 1);
	memset(counts, 0, n * sizeof(*counts));
	for (size_t k = 0; k < count; k++) {
		struct lb_backend *be = lb_sched_pick(s, &c, 1000);

		assert_non_null(be);
		counts[be_index(ptrs, n, be)]++;
	}
}

/* Tallies over NCLIENTS distinct clients; returns the largest relative
 * deviation from the weighted share, in percent. */
static double tally_clients(struct lb_sched *s, struct lb_backend *const *ptrs, size_t n,
			    size_t *counts)
{
	uint64_t wsum = 0;
	double worst = 0;

	memset(counts, 0, n * sizeof(*counts));
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		struct lb_addr c;

		client_addr(&c, i);
		counts[be_index(ptrs, n, lb_sched_pick(s, &c, 1000))]++;
	}
	for (size_t i = 0; i < n; i++)
		wsum += ptrs[i]->conf.weight;
	for (size_t i = 0; i < n; i++) {
		double share = (double)NCLIENTS * ptrs[i]->conf.weight / wsum;
		double dev = 100.0 * (counts[i] - share) / share;

		if (dev < 0)
			dev = -dev;
		if (dev > worst)
			worst = dev;
	}
	return worst;
}

static void test_name_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < NALGOS; i++)
		assert_true(lb_sched_name_valid(algos[i]));
	assert_false(lb_sched_name_valid("RR"));
	assert_false(lb_sched_name_valid("lblc"));
	assert_false(lb_sched_name_valid(""));
	assert_false(lb_sched_name_valid(NULL));
}

static void test_unknown_name(void **state)
{
	struct lb_backend be;
	struct lb_backend *ptrs[1] = { &be };

	(void)state;
	be_init(&be, "198.18.1.1", 80, 1);
	errno = 0;
	assert_null(lb_sched_new("fair", ptrs, 1, SEED));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(lb_sched_new(NULL, ptrs, 1, SEED));
	assert_int_equal(errno, EINVAL);
	lb_sched_free(NULL);
}

static void test_empty_and_name(void **state)
{
	struct lb_addr c;

	(void)state;
	client_addr(&c, 1);
	for (size_t i = 0; i < NALGOS; i++) {
		struct lb_sched *s = lb_sched_new(algos[i], NULL, 0, SEED);

		assert_non_null(s);
		assert_string_equal(lb_sched_name(s), algos[i]);
		assert_null(lb_sched_pick(s, &c, 1));
		lb_sched_free(s);
	}
}

/* Every weight 0: tables are empty, picks NULL. */
static void test_all_weight_zero(void **state)
{
	struct lb_backend be[3], *ptrs[3];
	const uint32_t w[3] = { 0, 0, 0 };
	struct lb_addr c;

	(void)state;
	be_init_n(be, ptrs, 3, w);
	client_addr(&c, 1);
	for (size_t i = 0; i < NALGOS; i++) {
		struct lb_sched *s = lb_sched_new(algos[i], ptrs, 3, SEED);

		assert_non_null(s);
		assert_null(lb_sched_pick(s, &c, 1));
		lb_sched_free(s);
	}
}

static void test_rr_equal(void **state)
{
	struct lb_backend be[4], *ptrs[4];
	const uint32_t w[4] = { 1, 5, 1, 9 };	/* rr ignores weights */
	size_t counts[4];
	struct lb_sched *s;

	(void)state;
	be_init_n(be, ptrs, 4, w);
	s = lb_sched_new("rr", ptrs, 4, SEED);
	assert_non_null(s);
	tally(s, ptrs, 4, 4000, counts);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(counts[i], 1000);
	lb_sched_free(s);
}

/* The backend after a skipped one must not take the skipped one's turns. */
static void test_rr_equal_over_available(void **state)
{
	struct lb_backend be[5], *ptrs[5];
	const uint32_t w[5] = { 1, 0, 1, 1, 1 };
	size_t counts[5];
	struct lb_sched *s;

	(void)state;
	be_init_n(be, ptrs, 5, w);
	atomic_store(&be[3].draining, true);
	s = lb_sched_new("rr", ptrs, 5, SEED);
	assert_non_null(s);
	tally(s, ptrs, 5, 3000, counts);
	assert_int_equal(counts[0], 1000);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 1000);
	assert_int_equal(counts[3], 0);
	assert_int_equal(counts[4], 1000);
	lb_sched_free(s);
}

/* Longest run of one backend in the cyclic sequence of picks. */
static size_t longest_run(struct lb_backend *const *seq, size_t len)
{
	size_t best = 1;

	for (size_t start = 0; start < len; start++) {
		size_t run = 1;

		while (run < len && seq[(start + run) % len] == seq[start])
			run++;
		if (run > best)
			best = run;
	}
	return best;
}

static void test_wrr_interleaved_3_1(void **state)
{
	struct lb_backend be[2], *ptrs[2], *seq[400];
	const uint32_t w[2] = { 3, 1 };
	struct lb_sched *s;
	struct lb_addr c;
	size_t a = 0;

	(void)state;
	be_init_n(be, ptrs, 2, w);
	client_addr(&c, 1);
	s = lb_sched_new("wrr", ptrs, 2, SEED);
	assert_non_null(s);
	for (size_t k = 0; k < 400; k++) {
		seq[k] = lb_sched_pick(s, &c, 1);
		a += seq[k] == &be[0];
	}
	assert_int_equal(a, 300);
	/* Three A's in four picks always touch across a cycle boundary
	 * (A A B A | A A B A), so the run bound is 3; the order within the
	 * cycle is what tells A A B A from A A A B. */
	assert_true(longest_run(seq, 400) <= 3);
	assert_ptr_equal(seq[0], &be[0]);
	assert_ptr_equal(seq[1], &be[0]);
	assert_ptr_equal(seq[2], &be[1]);
	assert_ptr_equal(seq[3], &be[0]);
	lb_sched_free(s);
}

/* wrr over the weights: exact shares over whole cycles and runs no longer
 * than max_run in the sequence of picks. */
static void check_wrr(const uint32_t *w, size_t n, size_t cycle, size_t max_run)
{
	struct lb_backend be[MAXB], *ptrs[MAXB], *seq[1600];
	size_t counts[MAXB] = { 0 }, picks = cycle * (1600 / cycle);
	uint64_t wsum = 0;
	struct lb_sched *s;
	struct lb_addr c;

	be_init_n(be, ptrs, n, w);
	client_addr(&c, 1);
	s = lb_sched_new("wrr", ptrs, n, SEED);
	assert_non_null(s);
	for (size_t k = 0; k < picks; k++) {
		seq[k] = lb_sched_pick(s, &c, 1);
		counts[be_index(ptrs, n, seq[k])]++;
	}
	for (size_t i = 0; i < n; i++)
		wsum += w[i];
	for (size_t i = 0; i < n; i++)
		assert_int_equal(counts[i], picks * w[i] / wsum);
	assert_true(longest_run(seq, picks) <= max_run);
	lb_sched_free(s);
}

static void test_wrr_proportional(void **state)
{
	const uint32_t w1[4] = { 50, 30, 20, 60 };	/* gcd 10: cycle of 16 */
	const uint32_t w2[5] = { 1, 1, 1, 1, 4 };

	(void)state;
	check_wrr(w1, 4, 16, 2);
	/* IPVS's stepping gives E E E A B C D E: a cyclic run of four E's.
	 * Interleaved, E alternates with the others. */
	check_wrr(w2, 5, 8, 2);
}

/* Weights whose cycle would be longer than the precomputed limit. */
static void test_wrr_large_weights(void **state)
{
	struct lb_backend be[2], *ptrs[2];
	const uint32_t w[2] = { 700001, 299999 };
	size_t counts[2];
	struct lb_sched *s;
	double ratio;

	(void)state;
	be_init_n(be, ptrs, 2, w);
	s = lb_sched_new("wrr", ptrs, 2, SEED);
	assert_non_null(s);
	tally(s, ptrs, 2, 100000, counts);
	ratio = (double)counts[0] / (counts[0] + counts[1]);
	assert_true(ratio > 0.6999 && ratio < 0.7001);
	lb_sched_free(s);
}

static void test_wrr_skips_unavailable(void **state)
{
	struct lb_backend be[3], *ptrs[3];
	const uint32_t w[3] = { 3, 1, 2 };
	size_t counts[3];
	struct lb_sched *s;

	(void)state;
	be_init_n(be, ptrs, 3, w);
	atomic_store(&be[1].draining, true);
	s = lb_sched_new("wrr", ptrs, 3, SEED);
	assert_non_null(s);
	tally(s, ptrs, 3, 5000, counts);
	/* The remaining weights keep their ratio 3:2. */
	assert_int_equal(counts[0], 3000);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 2000);
	lb_sched_free(s);
}

static void set_load(struct lb_backend *be, unsigned active, unsigned inactive)
{
	atomic_store(&be->active, active);
	atomic_store(&be->inactive, inactive);
}

static void test_lc_counters(void **state)
{
	struct lb_backend be[3], *ptrs[3];
	const uint32_t w[3] = { 10, 1, 1 };	/* lc ignores weights */
	struct lb_sched *s;
	struct lb_addr c;

	(void)state;
	be_init_n(be, ptrs, 3, w);
	client_addr(&c, 1);
	s = lb_sched_new("lc", ptrs, 3, SEED);
	assert_non_null(s);
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[0]);	/* tie: first */
	set_load(&be[0], 1, 0);		/* 256 */
	set_load(&be[1], 0, 255);	/* 255 */
	set_load(&be[2], 0, 300);	/* 300 */
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[1]);
	set_load(&be[1], 0, 257);
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[0]);
	set_load(&be[0], 2, 0);		/* 512, despite weight 10 */
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[1]);
	lb_sched_free(s);
}

static void test_wlc_counters(void **state)
{
	struct lb_backend be[2], *ptrs[2];
	const uint32_t w[2] = { 3, 1 };
	struct lb_sched *s;
	struct lb_addr c;

	(void)state;
	be_init_n(be, ptrs, 2, w);
	client_addr(&c, 1);
	s = lb_sched_new("wlc", ptrs, 2, SEED);
	assert_non_null(s);
	set_load(&be[0], 2, 0);		/* 512 / 3 = 170.7 */
	set_load(&be[1], 0, 171);	/* 171 / 1 */
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[0]);
	set_load(&be[1], 0, 170);	/* 170 < 170.7 */
	assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[1]);
	lb_sched_free(s);
}

/* Picks and opens a connection on the chosen backend, n times. */
static void fill_connections(const char *algo, size_t *counts)
{
	struct lb_backend be[3], *ptrs[3];
	const uint32_t w[3] = { 3, 1, 2 };
	struct lb_sched *s;
	struct lb_addr c;

	be_init_n(be, ptrs, 3, w);
	client_addr(&c, 1);
	s = lb_sched_new(algo, ptrs, 3, SEED);
	assert_non_null(s);
	memset(counts, 0, 3 * sizeof(*counts));
	for (size_t k = 0; k < 600; k++) {
		struct lb_backend *be_k = lb_sched_pick(s, &c, 1);

		atomic_fetch_add(&be_k->active, 1);
		counts[be_index(ptrs, 3, be_k)]++;
	}
	lb_sched_free(s);
}

static void test_lc_wlc_fill(void **state)
{
	size_t counts[3];

	(void)state;
	fill_connections("lc", counts);
	assert_int_equal(counts[0], 200);
	assert_int_equal(counts[1], 200);
	assert_int_equal(counts[2], 200);
	fill_connections("wlc", counts);
	assert_int_equal(counts[0], 300);
	assert_int_equal(counts[1], 100);
	assert_int_equal(counts[2], 200);
}

static void test_sh_deterministic_proportional(void **state)
{
	struct lb_backend be[4], *ptrs[4];
	const uint32_t w[4] = { 1, 2, 1, 4 };
	size_t counts[4];
	struct lb_sched *s, *s2;
	double dev;

	(void)state;
	be_init_n(be, ptrs, 4, w);
	s = lb_sched_new("sh", ptrs, 4, SEED);
	s2 = lb_sched_new("sh", ptrs, 4, SEED);
	assert_non_null(s);
	assert_non_null(s2);
	for (uint32_t i = 0; i < 1000; i++) {
		struct lb_addr c;
		struct lb_backend *first;

		client_addr(&c, i);
		first = lb_sched_pick(s, &c, 1);
		/* Same client, other port, other scheduler instance: same. */
		assert_ptr_equal(lb_sched_pick(s, &c, 2), first);
		assert_ptr_equal(lb_sched_pick(s2, &c, 3), first);
	}
	dev = tally_clients(s, ptrs, 4, counts);
	printf("# sh weights 1:2:1:4 over %d clients: %zu %zu %zu %zu, worst %.1f%% off\n",
	       NCLIENTS, counts[0], counts[1], counts[2], counts[3], dev);
	assert_true(dev < 15.0);
	lb_sched_free(s);
	lb_sched_free(s2);
}

static void test_mh_even(void **state)
{
	struct lb_backend be[5], *ptrs[5];
	const uint32_t w[5] = { 1, 1, 1, 1, 1 };
	size_t counts[5];
	struct lb_sched *s;
	double dev;

	(void)state;
	be_init_n(be, ptrs, 5, w);
	s = lb_sched_new("mh", ptrs, 5, SEED);
	assert_non_null(s);
	dev = tally_clients(s, ptrs, 5, counts);
	printf("# mh 5 equal over %d clients: %zu %zu %zu %zu %zu, worst %.1f%% off\n",
	       NCLIENTS, counts[0], counts[1], counts[2], counts[3], counts[4], dev);
	assert_true(dev < 15.0);
	lb_sched_free(s);
}

static void test_mh_weighted(void **state)
{
	struct lb_backend be[4], *ptrs[4];
	const uint32_t w[4] = { 100, 200, 300, 400 };	/* turns 1:2:3:4 */
	size_t counts[4];
	struct lb_sched *s;
	double dev;

	(void)state;
	be_init_n(be, ptrs, 4, w);
	s = lb_sched_new("mh", ptrs, 4, SEED);
	assert_non_null(s);
	dev = tally_clients(s, ptrs, 4, counts);
	printf("# mh weights 1:2:3:4 over %d clients: %zu %zu %zu %zu, worst %.1f%% off\n",
	       NCLIENTS, counts[0], counts[1], counts[2], counts[3], dev);
	assert_true(dev < 15.0);
	lb_sched_free(s);
}

/* Clients that change backend when backend `gone` is left out. */
static void mh_disruption(size_t gone, size_t *moved, size_t *survivors, size_t *orphans)
{
	struct lb_backend be[5], *ptrs[5], *rest[4];
	const uint32_t w[5] = { 1, 1, 1, 1, 1 };
	struct lb_sched *all, *fewer;
	size_t m = 0;

	be_init_n(be, ptrs, 5, w);
	for (size_t i = 0; i < 5; i++)
		if (i != gone)
			rest[m++] = ptrs[i];
	all = lb_sched_new("mh", ptrs, 5, SEED);
	fewer = lb_sched_new("mh", rest, 4, SEED);
	assert_non_null(all);
	assert_non_null(fewer);
	*moved = *survivors = *orphans = 0;
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		struct lb_addr c;
		struct lb_backend *before, *after;

		client_addr(&c, i);
		before = lb_sched_pick(all, &c, 1);
		after = lb_sched_pick(fewer, &c, 1);
		assert_ptr_not_equal(after, &be[gone]);
		if (before == &be[gone]) {
			(*orphans)++;
			continue;
		}
		(*survivors)++;
		*moved += before != after;
	}
	lb_sched_free(all);
	lb_sched_free(fewer);
}

static void test_mh_disruption(void **state)
{
	double worst = 0;

	(void)state;
	for (size_t gone = 0; gone < 5; gone++) {
		size_t moved, survivors, orphans;
		double frac;

		mh_disruption(gone, &moved, &survivors, &orphans);
		frac = (double)moved / survivors;
		printf("# mh 5 -> 4 (removed #%zu): %zu of %zu surviving clients moved"
		       " (%.2f%%), %zu orphans all moved\n",
		       gone, moved, survivors, 100 * frac, orphans);
		assert_true(orphans > NCLIENTS / 10);
		if (frac > worst)
			worst = frac;
	}
	assert_true(worst < 0.03);
}

static void test_mh_order_independent(void **state)
{
	struct lb_backend be[5], *ptrs[5], *shuffled[5];
	const uint32_t w[5] = { 1, 2, 1, 3, 1 };
	const size_t perm[5] = { 3, 0, 4, 2, 1 };
	struct lb_sched *a, *b;

	(void)state;
	be_init_n(be, ptrs, 5, w);
	for (size_t i = 0; i < 5; i++)
		shuffled[i] = ptrs[perm[i]];
	a = lb_sched_new("mh", ptrs, 5, SEED);
	b = lb_sched_new("mh", shuffled, 5, SEED);
	assert_non_null(a);
	assert_non_null(b);
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		struct lb_addr c;

		client_addr(&c, i);
		assert_ptr_equal(lb_sched_pick(a, &c, 1), lb_sched_pick(b, &c, 1));
	}
	lb_sched_free(a);
	lb_sched_free(b);
}

/* sh and mh: an unavailable backend moves only its own clients. */
static void check_fall_through(const char *algo)
{
	struct lb_backend be[4], *ptrs[4], *before[NCLIENTS];
	const uint32_t w[4] = { 1, 1, 1, 1 };
	struct lb_sched *s;
	size_t moved = 0;

	be_init_n(be, ptrs, 4, w);
	s = lb_sched_new(algo, ptrs, 4, SEED);
	assert_non_null(s);
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		struct lb_addr c;

		client_addr(&c, i);
		before[i] = lb_sched_pick(s, &c, 1);
	}
	be[2].conf.max_conns = 5;
	set_load(&be[2], 3, 2);		/* full */
	for (uint32_t i = 0; i < NCLIENTS; i++) {
		struct lb_addr c;
		struct lb_backend *after;

		client_addr(&c, i);
		after = lb_sched_pick(s, &c, 1);
		assert_non_null(after);
		assert_ptr_not_equal(after, &be[2]);
		if (before[i] != &be[2])
			assert_ptr_equal(after, before[i]);
		else
			moved++;
	}
	assert_true(moved > NCLIENTS / 8);
	lb_sched_free(s);
}

static void test_hash_fall_through(void **state)
{
	(void)state;
	check_fall_through("sh");
	check_fall_through("mh");
}

/* Weight 0, draining, full: only the one healthy backend is ever picked. */
static void test_unavailable_skipped_all(void **state)
{
	struct lb_backend be[4], *ptrs[4];
	const uint32_t w[4] = { 0, 1, 1, 1 };
	struct lb_addr c;

	(void)state;
	be_init_n(be, ptrs, 4, w);
	atomic_store(&be[1].draining, true);
	be[2].conf.max_conns = 2;
	set_load(&be[2], 1, 1);
	set_load(&be[3], 50, 50);	/* lc/wlc would rather not */
	for (size_t a = 0; a < NALGOS; a++) {
		struct lb_sched *s = lb_sched_new(algos[a], ptrs, 4, SEED);

		assert_non_null(s);
		for (uint32_t i = 0; i < 1000; i++) {
			client_addr(&c, i);
			assert_ptr_equal(lb_sched_pick(s, &c, 1), &be[3]);
		}
		atomic_store(&be[3].draining, true);
		for (uint32_t i = 0; i < 100; i++) {
			client_addr(&c, i);
			assert_null(lb_sched_pick(s, &c, 1));
		}
		atomic_store(&be[3].draining, false);
		lb_sched_free(s);
	}
}

struct picker {
	struct lb_sched *sched;
	struct lb_backend *const *ptrs;
	size_t counts[4];
};

static void *picker_run(void *arg)
{
	struct picker *p = arg;
	struct lb_addr c;

	client_addr(&c, 1);
	for (size_t k = 0; k < 100000; k++) {
		struct lb_backend *be = lb_sched_pick(p->sched, &c, 1);

		if (be)
			p->counts[be_index(p->ptrs, 4, be)]++;
	}
	return NULL;
}

static void test_rr_concurrent(void **state)
{
	struct lb_backend be[4], *ptrs[4];
	const uint32_t w[4] = { 1, 1, 1, 1 };
	struct picker p[2];
	pthread_t t[2];

	(void)state;
	be_init_n(be, ptrs, 4, w);
	memset(p, 0, sizeof(p));
	p[0].sched = lb_sched_new("rr", ptrs, 4, SEED);
	assert_non_null(p[0].sched);
	p[0].ptrs = ptrs;
	p[1] = p[0];	/* both threads pick from the one scheduler */
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, picker_run, &p[i]), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (size_t b = 0; b < 4; b++)
		assert_int_equal(p[0].counts[b] + p[1].counts[b], 50000);
	lb_sched_free(p[0].sched);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_unknown_name),
		cmocka_unit_test(test_empty_and_name),
		cmocka_unit_test(test_all_weight_zero),
		cmocka_unit_test(test_rr_equal),
		cmocka_unit_test(test_rr_equal_over_available),
		cmocka_unit_test(test_wrr_interleaved_3_1),
		cmocka_unit_test(test_wrr_proportional),
		cmocka_unit_test(test_wrr_large_weights),
		cmocka_unit_test(test_wrr_skips_unavailable),
		cmocka_unit_test(test_lc_counters),
		cmocka_unit_test(test_wlc_counters),
		cmocka_unit_test(test_lc_wlc_fill),
		cmocka_unit_test(test_sh_deterministic_proportional),
		cmocka_unit_test(test_mh_even),
		cmocka_unit_test(test_mh_weighted),
		cmocka_unit_test(test_mh_disruption),
		cmocka_unit_test(test_mh_order_independent),
		cmocka_unit_test(test_hash_fall_through),
		cmocka_unit_test(test_unavailable_skipped_all),
		cmocka_unit_test(test_rr_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
