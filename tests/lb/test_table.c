/*
 * Unit tests of lb_conn, the connection table: lookups under both tuples,
 * the insert errors (EEXIST with the existing connection locked, EADDRINUSE,
 * ENOSPC), expiry (exact deadlines, lazily re-armed deadlines, budget, far
 * deadlines), foreach, counting, and a two-thread smoke test against a
 * concurrently expiring main thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../lb/backend_impl.h"
#include "../../lb/table.h"

#define T0 1000000u	/* a start time that is not a multiple of the wheel tick */
#define SEED 0xc0ffee11u

static struct lb_backend be_a, be_b;

static struct lb_tuple tup(const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
	struct lb_tuple t;

	memset(&t, 0, sizeof(t));
	assert_int_equal(lb_addr_parse(&t.src, src), 0);
	assert_int_equal(lb_addr_parse(&t.dst, dst), 0);
	t.sport = sport;
	t.dport = dport;
	return t;
}

/* Client 198.18.0.N:port -> VIP 198.18.0.100:80, served by 198.18.1.11:8080. */
static struct lb_conn_key key_n(uint32_t n, uint16_t port)
{
	struct lb_conn_key k;
	char client[32];

	snprintf(client, sizeof(client), "198.18.%u.%u", 10 + n / 250, n % 250 + 1);
	memset(&k, 0, sizeof(k));
	k.orig = tup(client, port, "198.18.0.100", 80);
	k.reply = tup("198.18.1.11", 8080, client, port);
	k.service_id = 7;
	k.backend = &be_a;
	return k;
}

static int is_locked(const struct lb_conn *c)
{
	pthread_spinlock_t *l = (pthread_spinlock_t *)&c->lock;

	if (pthread_spin_trylock(l) == 0) {
		pthread_spin_unlock(l);
		return 0;
	}
	return 1;
}

static struct lb_conn *insert_ok(struct lb_table *t, const struct lb_conn_key *k,
				 uint64_t expires)
{
	struct lb_conn *c = NULL;

	assert_int_equal(lb_table_insert(t, k, T0, expires, &c), 0);
	assert_non_null(c);
	assert_true(is_locked(c));
	lb_conn_unlock(c);
	return c;
}

/* Records every expired connection. */
struct expired {
	struct lb_table *table;
	size_t n;
	struct lb_conn *conns[64];
	int still_reachable;
};

static void on_expired(struct lb_conn *c, void *arg)
{
	struct expired *x = arg;
	enum lb_dir dir;
	struct lb_tuple orig = lb_conn_tuple(x->table, c, LB_DIR_ORIG);
	struct lb_conn *found = lb_table_lookup(x->table, &orig, &dir);

	if (found) {
		x->still_reachable++;
		lb_conn_unlock(found);
	}
	if (x->n < 64)
		x->conns[x->n] = c;
	x->n++;
}

static int was_expired(const struct expired *x, const struct lb_conn *c)
{
	for (size_t i = 0; i < x->n && i < 64; i++)
		if (x->conns[i] == c)
			return 1;
	return 0;
}

static void test_new_invalid(void **state)
{
	(void)state;
	errno = 0;
	assert_null(lb_table_new(0, SEED, T0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(lb_table_new((1u << 30) + 1, SEED, T0));
	assert_int_equal(errno, EINVAL);
	lb_table_free(NULL);
}

static void test_insert_fills_and_locks(void **state)
{
	struct lb_table *t = lb_table_new(16, SEED, T0);
	struct lb_conn_key k = key_n(1, 40000);
	struct lb_tuple orig, reply;
	struct lb_conn *c = NULL;

	(void)state;
	assert_non_null(t);
	assert_int_equal(lb_table_capacity(t), 16);
	assert_int_equal(lb_table_count(t), 0);
	assert_int_equal(lb_table_insert(t, &k, T0 + 5, T0 + 60000, &c), 0);
	assert_non_null(c);
	assert_true(is_locked(c));
	orig = lb_conn_tuple(t, c, LB_DIR_ORIG);
	reply = lb_conn_tuple(t, c, LB_DIR_REPLY);
	assert_true(lb_tuple_equal(&orig, &k.orig));
	assert_true(lb_tuple_equal(&reply, &k.reply));
	assert_int_equal(c->service_id, 7);
	assert_ptr_equal(c->backend, &be_a);
	assert_int_equal(c->last_seen_ms, T0 + 5);
	assert_int_equal(c->expires_ms, T0 + 60000);
	assert_int_equal(c->tcp.state, LB_TCP_NONE);
	assert_int_equal(c->pkts[0] + c->pkts[1] + c->bytes[0] + c->bytes[1], 0);
	assert_int_equal(c->flags, 0);
	lb_conn_unlock(c);
	assert_int_equal(lb_table_count(t), 1);
	lb_table_free(t);
}

static void test_lookup_both_directions(void **state)
{
	struct lb_table *t = lb_table_new(16, SEED, T0);
	struct lb_conn_key k = key_n(1, 40000), other = key_n(2, 40000);
	struct lb_conn *c, *found;
	struct lb_tuple reversed;
	enum lb_dir dir = LB_DIR_REPLY;

	(void)state;
	c = insert_ok(t, &k, T0 + 60000);
	insert_ok(t, &other, T0 + 60000);

	found = lb_table_lookup(t, &k.orig, &dir);
	assert_ptr_equal(found, c);
	assert_int_equal(dir, LB_DIR_ORIG);
	assert_true(is_locked(found));
	lb_conn_unlock(found);

	dir = LB_DIR_ORIG;
	found = lb_table_lookup(t, &k.reply, &dir);
	assert_ptr_equal(found, c);
	assert_int_equal(dir, LB_DIR_REPLY);
	assert_true(is_locked(found));
	lb_conn_unlock(found);

	/* The orig tuple turned around is neither direction. */
	reversed = (struct lb_tuple){ .src = k.orig.dst, .dst = k.orig.src,
				      .sport = k.orig.dport, .dport = k.orig.sport };
	assert_null(lb_table_lookup(t, &reversed, &dir));
	/* Another port of the same client neither. */
	reversed = k.orig;
	reversed.sport++;
	assert_null(lb_table_lookup(t, &reversed, &dir));
	assert_int_equal(lb_table_count(t), 2);
	lb_table_free(t);
}

static void test_lookup_ipv6(void **state)
{
	struct lb_table *t = lb_table_new(4, SEED, T0);
	struct lb_conn_key k;
	struct lb_conn *c, *found;
	enum lb_dir dir;

	(void)state;
	memset(&k, 0, sizeof(k));
	k.orig = tup("2001:db8::a", 5000, "2001:db8::100", 443);
	k.reply = tup("2001:db8:1::11", 443, "2001:db8::a", 5000);
	k.backend = &be_b;
	c = insert_ok(t, &k, T0 + 1000);
	found = lb_table_lookup(t, &k.reply, &dir);
	assert_ptr_equal(found, c);
	assert_int_equal(dir, LB_DIR_REPLY);
	lb_conn_unlock(found);
	lb_table_free(t);
}

static void test_insert_existing_returns_it_locked(void **state)
{
	struct lb_table *t = lb_table_new(16, SEED, T0);
	struct lb_conn_key k = key_n(1, 40000), again = key_n(1, 40000);
	struct lb_conn *c, *out = NULL;

	(void)state;
	c = insert_ok(t, &k, T0 + 60000);
	pthread_spin_lock(&c->lock);
	c->tcp.state = LB_TCP_SYN_SENT;
	lb_conn_unlock(c);
	again.backend = &be_b;		/* a racing worker chose another backend */
	assert_int_equal(lb_table_insert(t, &again, T0, T0 + 1, &out), -EEXIST);
	assert_ptr_equal(out, c);
	assert_true(is_locked(out));
	/* The existing connection is untouched. */
	assert_ptr_equal(out->backend, &be_a);
	assert_int_equal(out->tcp.state, LB_TCP_SYN_SENT);
	assert_int_equal(out->expires_ms, T0 + 60000);
	lb_conn_unlock(out);
	assert_int_equal(lb_table_count(t), 1);
	lb_table_free(t);
}

static void test_insert_reply_taken(void **state)
{
	struct lb_table *t = lb_table_new(16, SEED, T0);
	struct lb_conn_key k = key_n(1, 40000), clash;
	struct lb_conn *out = (struct lb_conn *)&clash;

	(void)state;
	insert_ok(t, &k, T0 + 60000);
	/* Another VIP, same backend and client port: the reply tuple is taken. */
	clash = k;
	clash.orig.dst.bytes[3] = 101;
	assert_int_equal(lb_table_insert(t, &clash, T0, T0 + 1000, &out), -EADDRINUSE);
	assert_null(out);
	/* A new orig tuple that is an existing connection's reply tuple (the
	 * new reply tuple goes back to its source, as every key's does). */
	clash = key_n(3, 1);
	clash.orig = k.reply;
	clash.reply = tup("198.18.1.12", 8080, "198.18.1.11", 8080);
	out = (struct lb_conn *)&clash;
	assert_int_equal(lb_table_insert(t, &clash, T0, T0 + 1000, &out), -EADDRINUSE);
	assert_null(out);
	/* A new reply tuple that is an existing connection's orig tuple. */
	clash = key_n(4, 1);
	clash.reply = k.orig;
	clash.orig = tup("198.18.0.100", 80, "198.18.0.101", 80);
	assert_int_equal(lb_table_insert(t, &clash, T0, T0 + 1000, &out), -EADDRINUSE);
	assert_null(out);
	/* Tuples that are not one connection's: the reply not back to the
	 * client, or of another family. */
	clash = key_n(5, 1);
	clash.reply.dport = 2;
	out = (struct lb_conn *)&clash;
	assert_int_equal(lb_table_insert(t, &clash, T0, T0 + 1000, &out), -EINVAL);
	assert_null(out);
	clash = key_n(5, 1);
	clash.reply.src = tup("2001:db8::1", 1, "2001:db8::2", 2).src;
	assert_int_equal(lb_table_insert(t, &clash, T0, T0 + 1000, &out), -EINVAL);
	assert_int_equal(lb_table_count(t), 1);
	lb_table_free(t);
}

/*
 * Entries come from the front of the pool, a freed one before any never
 * used: the order a free list of the whole pool gave (a drill's results
 * depend on it), without writing the entries not used yet.
 */
static void test_pool_order(void **state)
{
	struct lb_table *t = lb_table_new(8, SEED, T0);
	struct expired x = { .table = t };
	struct lb_conn_key k;
	struct lb_conn *c[3], *n;

	(void)state;
	for (uint32_t i = 0; i < 3; i++) {
		k = key_n(i, 1000);
		c[i] = insert_ok(t, &k, i == 1 ? T0 + 1000 : T0 + 90000);
		assert_true(c[i] == c[0] + i);
	}
	assert_int_equal(lb_table_expire(t, T0 + 1000, SIZE_MAX, on_expired, &x), 1);
	k = key_n(3, 1000);
	n = insert_ok(t, &k, T0 + 90000);
	assert_true(n == c[1]);		/* the freed one first */
	k = key_n(4, 1000);
	n = insert_ok(t, &k, T0 + 90000);
	assert_true(n == c[0] + 3);	/* then the next never used */
	lb_table_free(t);
}

static void test_capacity_and_slot_reuse(void **state)
{
	struct lb_table *t = lb_table_new(4, SEED, T0);
	struct lb_conn_key k;
	struct lb_conn *c[4], *out = (struct lb_conn *)&k;
	struct expired x = { .table = t };
	enum lb_dir dir;

	(void)state;
	for (uint32_t i = 0; i < 4; i++) {
		k = key_n(i, 1000);
		c[i] = insert_ok(t, &k, i < 2 ? T0 + 1000 : T0 + 90000);
	}
	k = key_n(4, 1000);
	assert_int_equal(lb_table_insert(t, &k, T0, T0 + 1000, &out), -ENOSPC);
	assert_null(out);
	assert_int_equal(lb_table_count(t), 4);

	/* Dirty the state of a connection that is about to expire. */
	pthread_spin_lock(&c[0]->lock);
	c[0]->tcp.state = LB_TCP_TIME_WAIT;
	c[0]->pkts[1] = 99;
	c[0]->flags = LB_CONN_F_SYNCED;
	lb_conn_unlock(c[0]);

	assert_int_equal(lb_table_expire(t, T0 + 1000, SIZE_MAX, on_expired, &x), 2);
	assert_int_equal(lb_table_count(t), 2);
	for (uint32_t i = 4; i < 6; i++) {
		struct lb_conn *n;

		k = key_n(i, 1000);
		n = insert_ok(t, &k, T0 + 90000);
		assert_true(n == c[0] || n == c[1]);	/* the freed slots */
		assert_int_equal(n->tcp.state, LB_TCP_NONE);
		assert_int_equal(n->pkts[1], 0);
		assert_int_equal(n->flags, 0);
	}
	k = key_n(6, 1000);
	assert_int_equal(lb_table_insert(t, &k, T0, T0 + 1000, &out), -ENOSPC);
	/* The expired ones are gone for lookups. */
	k = key_n(0, 1000);
	assert_null(lb_table_lookup(t, &k.orig, &dir));
	assert_null(lb_table_lookup(t, &k.reply, &dir));
	lb_table_free(t);
}

static void test_expire_exact_deadlines(void **state)
{
	static const uint32_t after[] = { 0, 999, 1000, 1001, 1499, 1500, 1501, 2000, 2999, 3000 };
	enum { N = sizeof(after) / sizeof(after[0]) };
	struct lb_table *t = lb_table_new(32, SEED, T0);
	struct lb_conn *c[N];
	struct lb_conn_key k;
	enum lb_dir dir;

	(void)state;
	for (uint32_t i = 0; i < N; i++) {
		k = key_n(i, 2000);
		c[i] = insert_ok(t, &k, T0 + after[i]);
	}
	/* Step through time; at each step exactly the connections with a
	 * deadline at or before now are removed, each once. */
	for (uint64_t now = T0 - 1; now <= T0 + 3001; now += 1) {
		struct expired x = { .table = t };
		size_t want = 0, removed;

		for (uint32_t i = 0; i < N; i++)
			want += T0 + after[i] == now;
		removed = lb_table_expire(t, now, SIZE_MAX, on_expired, &x);
		if (removed != want || x.n != want)
			fail_msg("now T0%+lld: removed %zu, callback %zu, want %zu",
				 (long long)(now - T0), removed, x.n, want);
		assert_int_equal(x.still_reachable, 0);
		for (uint32_t i = 0; i < N; i++) {
			if (T0 + after[i] == now)
				assert_true(was_expired(&x, c[i]));
		}
	}
	assert_int_equal(lb_table_count(t), 0);
	k = key_n(N - 1, 2000);
	assert_null(lb_table_lookup(t, &k.orig, &dir));
	lb_table_free(t);
}

/* A deadline moved forward under the lock survives until the new time. */
static void test_expire_rearms_moved_deadline(void **state)
{
	struct lb_table *t = lb_table_new(8, SEED, T0);
	struct lb_conn_key k = key_n(1, 3000), k2 = key_n(2, 3000);
	struct expired x = { .table = t };
	struct lb_conn *c, *c2;
	enum lb_dir dir;

	(void)state;
	insert_ok(t, &k, T0 + 1000);
	c2 = insert_ok(t, &k2, T0 + 1000);
	c = lb_table_lookup(t, &k.reply, &dir);
	assert_non_null(c);
	c->expires_ms = T0 + 7500;
	lb_conn_unlock(c);

	assert_int_equal(lb_table_expire(t, T0 + 1000, SIZE_MAX, on_expired, &x), 1);
	assert_int_equal(x.n, 1);
	assert_ptr_equal(x.conns[0], c2);
	assert_int_equal(lb_table_expire(t, T0 + 7499, SIZE_MAX, on_expired, &x), 0);
	assert_int_equal(x.n, 1);
	c = lb_table_lookup(t, &k.orig, &dir);
	assert_non_null(c);
	/* Moved again, while already re-armed. */
	c->expires_ms = T0 + 12000;
	lb_conn_unlock(c);
	assert_int_equal(lb_table_expire(t, T0 + 7500, SIZE_MAX, on_expired, &x), 0);
	assert_int_equal(lb_table_expire(t, T0 + 11999, SIZE_MAX, on_expired, &x), 0);
	assert_int_equal(lb_table_count(t), 1);
	assert_int_equal(lb_table_expire(t, T0 + 12000, SIZE_MAX, on_expired, &x), 1);
	assert_int_equal(x.n, 2);
	assert_ptr_equal(x.conns[1], c);
	assert_int_equal(x.still_reachable, 0);
	assert_int_equal(lb_table_count(t), 0);
	lb_table_free(t);
}

/* Deadlines much further than one wheel revolution, and a big time jump. */
static void test_expire_far_deadlines(void **state)
{
	const uint64_t hour = 3600000u;
	struct lb_table *t = lb_table_new(8, SEED, T0);
	struct lb_conn_key k = key_n(1, 4000), k2 = key_n(2, 4000);
	struct expired x = { .table = t };

	(void)state;
	insert_ok(t, &k, T0 + 5 * hour);
	insert_ok(t, &k2, T0 + 5 * hour + 1);
	for (uint64_t now = T0; now < T0 + 5 * hour; now += 997 * 60)
		assert_int_equal(lb_table_expire(t, now, SIZE_MAX, on_expired, &x), 0);
	assert_int_equal(lb_table_expire(t, T0 + 5 * hour, SIZE_MAX, on_expired, &x), 1);
	assert_int_equal(lb_table_expire(t, T0 + 100 * hour, SIZE_MAX, on_expired, &x), 1);
	assert_int_equal(x.n, 2);
	assert_int_equal(lb_table_count(t), 0);
	lb_table_free(t);
}

static void test_expire_budget(void **state)
{
	struct lb_table *t = lb_table_new(16, SEED, T0);
	struct expired x = { .table = t };
	struct lb_conn_key k;

	(void)state;
	for (uint32_t i = 0; i < 10; i++) {
		k = key_n(i, 5000);
		insert_ok(t, &k, T0 + 100);
	}
	assert_int_equal(lb_table_expire(t, T0 + 100, 3, on_expired, &x), 3);
	assert_int_equal(lb_table_count(t), 7);
	assert_int_equal(lb_table_expire(t, T0 + 100, 3, on_expired, &x), 3);
	assert_int_equal(lb_table_expire(t, T0 + 200, 100, on_expired, &x), 4);
	assert_int_equal(x.n, 10);
	assert_int_equal(lb_table_count(t), 0);
	/* A NULL callback is allowed. */
	k = key_n(11, 5000);
	insert_ok(t, &k, T0 + 300);
	assert_int_equal(lb_table_expire(t, T0 + 300, 100, NULL, NULL), 1);
	lb_table_free(t);
}

struct visit {
	struct lb_table *table;
	unsigned seen[300];
	int unlocked;
	size_t calls;
};

static void on_visit(const struct lb_conn *c, void *arg)
{
	struct visit *v = arg;
	struct lb_tuple orig = lb_conn_tuple(v->table, c, LB_DIR_ORIG);
	char text[LB_ADDR_STRLEN];
	unsigned a, b, n;

	if (!is_locked(c))
		v->unlocked++;
	v->calls++;
	lb_addr_format(&orig.src, text, sizeof(text));
	if (sscanf(text, "198.18.%u.%u", &a, &b) == 2) {
		n = (a - 10) * 250 + b - 1;
		if (n < 300)
			v->seen[n]++;
	}
}

static void test_foreach_visits_each_once(void **state)
{
	struct lb_table *t = lb_table_new(300, SEED, T0);
	struct visit v;
	struct lb_conn_key k;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.table = t;
	lb_table_foreach(t, on_visit, &v);
	assert_int_equal(v.calls, 0);
	for (uint32_t i = 0; i < 300; i++) {
		k = key_n(i, 6000);
		insert_ok(t, &k, T0 + 1000 + i);
	}
	assert_int_equal(lb_table_count(t), 300);
	lb_table_foreach(t, on_visit, &v);
	assert_int_equal(v.calls, 300);
	assert_int_equal(v.unlocked, 0);
	for (uint32_t i = 0; i < 300; i++)
		if (v.seen[i] != 1)
			fail_msg("connection %u visited %u times", i, v.seen[i]);
	/* After half have expired, only the rest. */
	assert_int_equal(lb_table_expire(t, T0 + 1149, SIZE_MAX, NULL, NULL), 150);
	memset(&v, 0, sizeof(v));
	v.table = t;
	lb_table_foreach(t, on_visit, &v);
	assert_int_equal(v.calls, 150);
	for (uint32_t i = 0; i < 300; i++)
		assert_int_equal(v.seen[i], i < 150 ? 0 : 1);
	lb_table_free(t);
}

/* --- threads -------------------------------------------------------------- */

#define THREAD_ITERS 20000

struct worker {
	pthread_t thread;
	struct lb_table *table;
	_Atomic uint64_t *now;
	atomic_int *done;
	atomic_int busy;		/* between its insert and its lookup */
	uint32_t id;
	size_t inserted, full, found, errors;
};

/*
 * A full table frees up only as the control thread moves the clock: wait
 * (at most 2 s) for it to move past then, so that a worker that found the
 * table full keeps going at the control thread's pace, not its own.
 */
static void wait_tick(struct worker *w, uint64_t then)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (atomic_load(w->now) == then && t.tv_sec - t0.tv_sec < 2);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (uint32_t i = 0; i < THREAD_ITERS; i++) {
		struct lb_conn_key k;
		struct lb_conn *c = NULL;
		uint64_t now;
		enum lb_dir dir;
		int rc;

		atomic_store(&w->busy, 1);
		now = atomic_load(w->now);

		memset(&k, 0, sizeof(k));
		k.orig.src.family = k.orig.dst.family = AF_INET;
		k.reply.src.family = k.reply.dst.family = AF_INET;
		k.orig.src.bytes[0] = 10;
		k.orig.src.bytes[1] = (uint8_t)w->id;
		k.orig.src.bytes[2] = (uint8_t)(i >> 8);
		k.orig.src.bytes[3] = (uint8_t)i;
		k.orig.dst.bytes[0] = 198;
		k.orig.sport = (uint16_t)(i * 7);
		k.orig.dport = 80;
		k.reply.src.bytes[0] = 172;
		k.reply.dst = k.orig.src;
		k.reply.sport = 8080;
		k.reply.dport = k.orig.sport;
		rc = lb_table_insert(w->table, &k, now, now + 5 + i % 50, &c);
		if (rc == 0) {
			c->tcp.state = LB_TCP_SYN_SENT;
			c->pkts[0] = 1;
			lb_conn_unlock(c);
			w->inserted++;
		} else if (rc == -ENOSPC) {
			w->full++;
			atomic_store(&w->busy, 0);
			wait_tick(w, now);
			continue;
		} else {
			w->errors++;
			if (c)
				lb_conn_unlock(c);
		}
		c = lb_table_lookup(w->table, i & 1 ? &k.orig : &k.reply, &dir);
		if (c) {
			if (dir != (i & 1 ? LB_DIR_ORIG : LB_DIR_REPLY) || c->pkts[0] != 1)
				w->errors++;
			if (c->expires_ms < now + 20)
				c->expires_ms = now + 20;	/* pushed forward by "traffic" */
			lb_conn_unlock(c);
			w->found++;
		}
		atomic_store(&w->busy, 0);
	}
	atomic_fetch_add(w->done, 1);
	return NULL;
}

struct counter {
	size_t n;
};

static void count_expired(struct lb_conn *c, void *arg)
{
	struct counter *x = arg;

	(void)c;
	x->n++;
}

static void test_threads_smoke(void **state)
{
	struct lb_table *t = lb_table_new(2048, SEED, T0);
	_Atomic uint64_t now = T0;
	atomic_int done = 0;
	struct worker w[2];
	struct counter x = { 0 };
	size_t removed = 0;

	(void)state;
	assert_non_null(t);
	for (uint32_t i = 0; i < 2; i++) {
		w[i] = (struct worker){ .table = t, .now = &now, .done = &done, .id = i + 1 };
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
	/* The main thread plays the control thread: advance time and expire
	 * until both workers are done. The clock moves only while no worker is
	 * between its insert and its lookup: one that is descheduled there (a
	 * loaded machine) would otherwise see its entry expire under it. At
	 * most one step races a worker that just turned busy, and 3 ms is less
	 * than the shortest lifetime (5 ms), so its lookup always finds it. */
	while (atomic_load(&done) < 2) {
		uint64_t tnow;

		if (atomic_load(&w[0].busy) || atomic_load(&w[1].busy)) {
			sched_yield();
			continue;
		}
		tnow = atomic_fetch_add(&now, 3) + 3;
		removed += lb_table_expire(t, tnow, 256, count_expired, &x);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		assert_int_equal(w[i].errors, 0);
		assert_true(w[i].found > 0);
		assert_int_equal(w[i].inserted + w[i].full, THREAD_ITERS);
	}
	print_message("# inserted %zu+%zu, full %zu+%zu, found %zu+%zu, expired %zu meanwhile\n",
		      w[0].inserted, w[1].inserted, w[0].full, w[1].full, w[0].found, w[1].found,
		      removed);
	assert_int_equal(removed, x.n);
	assert_int_equal(lb_table_count(t), w[0].inserted + w[1].inserted - removed);
	removed += lb_table_expire(t, UINT64_MAX / 2, SIZE_MAX, count_expired, &x);
	assert_int_equal(removed, w[0].inserted + w[1].inserted);
	assert_int_equal(x.n, removed);
	assert_int_equal(lb_table_count(t), 0);
	lb_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_invalid),
		cmocka_unit_test(test_insert_fills_and_locks),
		cmocka_unit_test(test_lookup_both_directions),
		cmocka_unit_test(test_lookup_ipv6),
		cmocka_unit_test(test_insert_existing_returns_it_locked),
		cmocka_unit_test(test_insert_reply_taken),
		cmocka_unit_test(test_pool_order),
		cmocka_unit_test(test_capacity_and_slot_reuse),
		cmocka_unit_test(test_expire_exact_deadlines),
		cmocka_unit_test(test_expire_rearms_moved_deadline),
		cmocka_unit_test(test_expire_far_deadlines),
		cmocka_unit_test(test_expire_budget),
		cmocka_unit_test(test_foreach_visits_each_once),
		cmocka_unit_test(test_threads_smoke),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
