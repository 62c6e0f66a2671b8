/*
 * Unit tests of lb_persist: insertion and lookup, expiry at the exact
 * millisecond (time is passed in, so the clock here is made up), deadlines
 * that never move backwards, touch, a full table, forgetting by backend and
 * by service, foreach, and reuse of expired slots.
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
#include "../../lb/lb_persist.h"

#define SEED 0xabcdef01u
#define T0 1000000u	/* an arbitrary monotonic start, not 0 */

static struct lb_backend be_a, be_b;

static struct lb_addr client(uint32_t i)
{
	struct lb_addr a;
	uint32_t be32 = htonl(0xc6336400u + i);	/* 198.51.100.0 + i */

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	memcpy(a.bytes, &be32, 4);
	return a;
}

static struct lb_persist_entry entry(uint32_t service, uint32_t i, struct lb_backend *be,
				     uint64_t expires)
{
	struct lb_persist_entry e = {
		.service_id = service,
		.client = client(i),
		.backend = be,
		.expires_ms = expires,
	};

	return e;
}

static struct lb_backend *look(struct lb_persist *p, uint32_t service, uint32_t i,
			       uint64_t now)
{
	struct lb_addr c = client(i);

	return lb_persist_lookup(p, service, &c, now);
}

static void test_new_invalid(void **state)
{
	(void)state;
	errno = 0;
	assert_null(lb_persist_new(0, SEED, T0));
	assert_int_equal(errno, EINVAL);
	lb_persist_free(NULL);
}

static void test_set_lookup(void **state)
{
	struct lb_persist *p = lb_persist_new(16, SEED, T0);
	struct lb_persist_entry e = entry(1, 1, &be_a, T0 + 300);
	struct lb_addr v6;

	(void)state;
	assert_non_null(p);
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_ptr_equal(look(p, 1, 1, T0), &be_a);
	assert_null(look(p, 2, 1, T0));		/* other service */
	assert_null(look(p, 1, 2, T0));		/* other client */
	/* An IPv6 address is a different client from an IPv4 one. */
	assert_int_equal(lb_addr_parse(&v6, "::c633:6401"), 0);
	assert_null(lb_persist_lookup(p, 1, &v6, T0));
	/* Replacing keeps one entry and changes the backend. */
	e.backend = &be_b;
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_ptr_equal(look(p, 1, 1, T0), &be_b);
	assert_int_equal(lb_persist_count(p), 1);
	lb_persist_free(p);
}

static void test_expiry_exact(void **state)
{
	struct lb_persist *p = lb_persist_new(16, SEED, T0);
	struct lb_persist_entry e = entry(1, 1, &be_a, T0 + 300);

	(void)state;
	assert_non_null(p);
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_ptr_equal(look(p, 1, 1, T0 + 299), &be_a);
	assert_int_equal(lb_persist_expire(p, T0 + 299), 0);
	assert_int_equal(lb_persist_count(p), 1);
	/* At the deadline the entry is gone for lookup even before expire. */
	assert_null(look(p, 1, 1, T0 + 300));
	assert_int_equal(lb_persist_expire(p, T0 + 300), 1);
	assert_int_equal(lb_persist_count(p), 0);
	assert_int_equal(lb_persist_expire(p, T0 + 100000), 0);
	lb_persist_free(p);
}

static void test_never_backwards(void **state)
{
	struct lb_persist *p = lb_persist_new(16, SEED, T0);
	struct lb_persist_entry e = entry(1, 1, &be_a, T0 + 1000);
	struct lb_addr c = client(1);

	(void)state;
	assert_non_null(p);
	assert_int_equal(lb_persist_set(p, &e), 0);
	e.expires_ms = T0 + 200;
	e.backend = &be_b;
	assert_int_equal(lb_persist_set(p, &e), 0);
	lb_persist_touch(p, 1, &c, T0 + 100);
	assert_int_equal(lb_persist_expire(p, T0 + 500), 0);
	assert_ptr_equal(look(p, 1, 1, T0 + 999), &be_b);
	assert_int_equal(lb_persist_expire(p, T0 + 1000), 1);
	lb_persist_free(p);
}

/* The deadline moves forward without the wheel; expire must re-arm. */
static void test_touch_extends(void **state)
{
	struct lb_persist *p = lb_persist_new(16, SEED, T0);
	struct lb_persist_entry e = entry(7, 3, &be_a, T0 + 300);
	struct lb_addr c = client(3), other = client(4);

	(void)state;
	assert_non_null(p);
	assert_int_equal(lb_persist_set(p, &e), 0);
	lb_persist_touch(p, 7, &c, T0 + 5000);
	lb_persist_touch(p, 7, &other, T0 + 5000);	/* no entry: nothing */
	assert_int_equal(lb_persist_count(p), 1);
	for (uint64_t t = T0; t < T0 + 5000; t += 97)
		assert_int_equal(lb_persist_expire(p, t), 0);
	assert_ptr_equal(look(p, 7, 3, T0 + 4999), &be_a);
	/* Extended several times more, across wheel revolutions. */
	lb_persist_touch(p, 7, &c, T0 + 900000);
	assert_int_equal(lb_persist_expire(p, T0 + 899999), 0);
	assert_ptr_equal(look(p, 7, 3, T0 + 899999), &be_a);
	assert_int_equal(lb_persist_expire(p, T0 + 900000), 1);
	assert_null(look(p, 7, 3, T0 + 900000));
	lb_persist_free(p);
}

/* Past its deadline but not yet freed: touch does not revive it, set
 * starts it afresh with the new deadline. */
static void test_dead_not_revived(void **state)
{
	struct lb_persist *p = lb_persist_new(16, SEED, T0);
	struct lb_persist_entry e = entry(1, 1, &be_a, T0 + 300);
	struct lb_addr c = client(1);

	(void)state;
	assert_non_null(p);
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_null(look(p, 1, 1, T0 + 400));
	lb_persist_touch(p, 1, &c, T0 + 10000);
	assert_null(look(p, 1, 1, T0 + 401));
	e.backend = &be_b;
	e.expires_ms = T0 + 700;
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_int_equal(lb_persist_count(p), 1);
	assert_ptr_equal(look(p, 1, 1, T0 + 699), &be_b);
	assert_int_equal(lb_persist_expire(p, T0 + 699), 0);
	assert_int_equal(lb_persist_expire(p, T0 + 700), 1);
	lb_persist_free(p);
}

static void test_capacity(void **state)
{
	struct lb_persist *p = lb_persist_new(5, SEED, T0);
	struct lb_persist_entry e;

	(void)state;
	assert_non_null(p);
	for (uint32_t i = 0; i < 5; i++) {
		e = entry(1, i, &be_a, T0 + 100 + i);
		assert_int_equal(lb_persist_set(p, &e), 0);
	}
	e = entry(1, 5, &be_a, T0 + 1000);
	assert_int_equal(lb_persist_set(p, &e), -ENOSPC);
	assert_null(look(p, 1, 5, T0));
	/* Replacing an existing entry needs no new slot. */
	e = entry(1, 4, &be_b, T0 + 1000);
	assert_int_equal(lb_persist_set(p, &e), 0);
	assert_int_equal(lb_persist_count(p), 5);
	lb_persist_free(p);
}

/* Expired slots go back to the free list and take new entries, round
 * after round, without the table ever filling up. */
static void test_slots_reused(void **state)
{
	struct lb_persist *p = lb_persist_new(8, SEED, T0);

	(void)state;
	assert_non_null(p);
	for (uint32_t round = 0; round < 50; round++) {
		uint64_t now = T0 + round * 1000;

		for (uint32_t i = 0; i < 8; i++) {
			struct lb_persist_entry e = entry(round, i, &be_a, now + 500 + i);

			assert_int_equal(lb_persist_set(p, &e), 0);
		}
		assert_int_equal(lb_persist_count(p), 8);
		assert_int_equal(lb_persist_expire(p, now + 503), 4);
		assert_int_equal(lb_persist_count(p), 4);
		assert_int_equal(lb_persist_expire(p, now + 999), 4);
		assert_int_equal(lb_persist_count(p), 0);
	}
	lb_persist_free(p);
}

static void test_forget(void **state)
{
	struct lb_persist *p = lb_persist_new(64, SEED, T0);

	(void)state;
	assert_non_null(p);
	for (uint32_t i = 0; i < 30; i++) {
		struct lb_persist_entry e = entry(i % 3, i, i % 2 ? &be_b : &be_a, T0 + 1000);

		assert_int_equal(lb_persist_set(p, &e), 0);
	}
	assert_int_equal(lb_persist_forget_backend(p, &be_b), 15);
	assert_int_equal(lb_persist_count(p), 15);
	assert_null(look(p, 1, 1, T0));
	assert_ptr_equal(look(p, 0, 0, T0), &be_a);
	/* Service 0 held clients 0, 6, 12, 18, 24 on be_a. */
	assert_int_equal(lb_persist_forget_service(p, 0), 5);
	assert_null(look(p, 0, 0, T0));
	assert_ptr_equal(look(p, 2, 2, T0), &be_a);
	assert_int_equal(lb_persist_count(p), 10);
	assert_int_equal(lb_persist_forget_service(p, 0), 0);
	/* Forgotten entries are off the wheel too: nothing left to expire
	 * but the ten that remain. */
	assert_int_equal(lb_persist_expire(p, T0 + 1000), 10);
	assert_int_equal(lb_persist_count(p), 0);
	lb_persist_free(p);
}

struct seen {
	size_t n;
	uint64_t client_mask;
	int bad;
};

static void collect(const struct lb_persist_entry *e, void *arg)
{
	struct seen *s = arg;
	uint32_t be32;

	memcpy(&be32, e->client.bytes, 4);
	s->client_mask |= 1ull << (ntohl(be32) & 63);
	if (e->backend != &be_a || e->service_id != 9)
		s->bad++;
	s->n++;
}

static void test_foreach_live(void **state)
{
	struct lb_persist *p = lb_persist_new(32, SEED, T0);
	struct seen s = { 0 };

	(void)state;
	assert_non_null(p);
	for (uint32_t i = 0; i < 10; i++) {
		struct lb_persist_entry e = entry(9, i, &be_a, T0 + (i < 4 ? 100 : 200));

		assert_int_equal(lb_persist_set(p, &e), 0);
	}
	/* At T0 + 150 the first four are past due but not yet freed. */
	lb_persist_foreach(p, T0 + 150, collect, &s);
	assert_int_equal(s.n, 6);
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.client_mask, 0x3f0);
	lb_persist_free(p);
}

static void test_many_clients(void **state)
{
	const size_t cap = 20000;
	struct lb_persist *p = lb_persist_new(cap, SEED, T0);

	(void)state;
	assert_non_null(p);
	for (uint32_t i = 0; i < cap; i++) {
		struct lb_persist_entry e = entry(i % 4, i, i % 2 ? &be_a : &be_b,
						  T0 + 1000 + i % 5000);

		assert_int_equal(lb_persist_set(p, &e), 0);
	}
	for (uint32_t i = 0; i < cap; i++)
		assert_ptr_equal(look(p, i % 4, i, T0), i % 2 ? &be_a : &be_b);
	assert_int_equal(lb_persist_expire(p, T0 + 1000 + 2499), 2500 * cap / 5000);
	assert_int_equal(lb_persist_expire(p, T0 + 1000 + 4999), cap / 2);
	assert_int_equal(lb_persist_count(p), 0);
	lb_persist_free(p);
}

struct worker {
	struct lb_persist *p;
	uint32_t service;
	int errors;
};

/* Each worker owns one service and sets, looks up, touches and expires
 * while the others do the same. The threads' clocks drift apart, so
 * deadlines are far enough away that no thread's expire takes entries
 * another still expects. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (uint32_t round = 0; round < 200; round++) {
		uint64_t now = T0 + round * 10;

		for (uint32_t i = 0; i < 50; i++) {
			struct lb_persist_entry e = entry(w->service, i, &be_a, now + 50000);

			w->errors += lb_persist_set(w->p, &e) != 0;
			w->errors += look(w->p, w->service, i, now) != &be_a;
			lb_persist_touch(w->p, w->service, &e.client, now + 60000);
		}
		w->errors += lb_persist_expire(w->p, now) != 0;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct lb_persist *p = lb_persist_new(4 * 50, SEED, T0);
	struct worker w[4];
	pthread_t t[4];

	(void)state;
	assert_non_null(p);
	for (uint32_t i = 0; i < 4; i++) {
		w[i] = (struct worker){ .p = p, .service = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
	}
	assert_int_equal(lb_persist_count(p), 200);
	assert_int_equal(lb_persist_expire(p, T0 + 200 * 10 + 60000), 200);
	assert_int_equal(lb_persist_count(p), 0);
	lb_persist_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_invalid),
		cmocka_unit_test(test_set_lookup),
		cmocka_unit_test(test_expiry_exact),
		cmocka_unit_test(test_never_backwards),
		cmocka_unit_test(test_touch_extends),
		cmocka_unit_test(test_dead_not_revived),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_slots_reused),
		cmocka_unit_test(test_forget),
		cmocka_unit_test(test_foreach_live),
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
