/*
 * lb_table: the connection table; see table.h for the locking rules.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define MAX_STRIPES 1024u
#define WHEEL_SLOTS 8192u	/* at 100 ms a tick: one revolution is 13.6 minutes */
#define WHEEL_TICK_MS 100u	/* the granularity of replication flushes */

/* An IPv6 connection's addresses (lb_conn.addr4 holds IPv4 ones). */
struct lb_conn_v6 {
	uint8_t addr[LB_CONN_ENDS][16];
};

struct lb_table {
	uint32_t *buckets;		/* first node of each chain (lb_conn_node) */
	size_t nbuckets;		/* power of two */
	pthread_mutex_t *stripes;
	size_t nstripes;		/* power of two, <= nbuckets */
	uint32_t seed;

	struct lb_conn *pool;
	/* By pool index: calloc'd and written only for IPv6 connections, so
	 * its pages stay unallocated while every connection is IPv4. */
	struct lb_conn_v6 *v6;
	size_t capacity;
	pthread_mutex_t pool_lock;
	uint32_t free_list;		/* pool index, linked through node[0] */
	uint32_t fresh;			/* pool[fresh..capacity) never used: not
					 * written, so their pages stay unallocated
					 * (and a fork of a drill copies none) */
	atomic_size_t count;

	pthread_mutex_t wheel_lock;
	struct lb_wheel wheel;

	void (*wake)(struct lb_conn *c, uint64_t now_ms, void *arg);
	void *wake_arg;
};

static size_t pow2_at_least(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static struct lb_conn *conn_of_ref(const struct lb_table *t, uint32_t ref)
{
	return &t->pool[ref >> 1];
}

static uint32_t ref_of(const struct lb_table *t, const struct lb_conn *c, unsigned dir)
{
	return (uint32_t)(c - t->pool) << 1 | dir;
}

/* The endpoints a tuple in direction dir is made of: source, destination. */
static void ends_of(unsigned dir, enum lb_conn_end *src, enum lb_conn_end *dst)
{
	*src = dir == LB_DIR_ORIG ? LB_CONN_CLIENT : LB_CONN_BACKEND;
	*dst = dir == LB_DIR_ORIG ? LB_CONN_VIP : LB_CONN_CLIENT;
}

static void get_addr(const struct lb_table *t, const struct lb_conn *c, enum lb_conn_end end,
		     struct lb_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = c->family;
	if (c->family == AF_INET)
		memcpy(a->bytes, &c->addr4[end], 4);
	else
		memcpy(a->bytes, t->v6[c - t->pool].addr[end], 16);
}

struct lb_tuple lb_conn_tuple(const struct lb_table *t, const struct lb_conn *c,
			      enum lb_dir dir)
{
	struct lb_tuple tuple;
	enum lb_conn_end src, dst;

	ends_of(dir, &src, &dst);
	memset(&tuple, 0, sizeof(tuple));
	get_addr(t, c, src, &tuple.src);
	get_addr(t, c, dst, &tuple.dst);
	tuple.sport = c->port[src];
	tuple.dport = c->port[dst];
	return tuple;
}

static bool addr_is(const struct lb_table *t, const struct lb_conn *c, enum lb_conn_end end,
		    const struct lb_addr *a)
{
	static const uint8_t zero[12];

	if (c->family == AF_INET)
		return memcmp(a->bytes, &c->addr4[end], 4) == 0 &&
		       memcmp(a->bytes + 4, zero, sizeof(zero)) == 0;
	return memcmp(a->bytes, t->v6[c - t->pool].addr[end], 16) == 0;
}

/* lb_tuple_equal(lb_conn_tuple(t, c, dir), k), without making the tuple. */
static bool conn_is(const struct lb_table *t, const struct lb_conn *c, unsigned dir,
		    const struct lb_tuple *k)
{
	enum lb_conn_end src, dst;

	ends_of(dir, &src, &dst);
	return k->sport == c->port[src] && k->dport == c->port[dst] &&
	       k->src.family == c->family && k->dst.family == c->family &&
	       addr_is(t, c, src, &k->src) && addr_is(t, c, dst, &k->dst);
}

static struct lb_conn *conn_of_timer(struct lb_wheel_node *t)
{
	return (struct lb_conn *)((char *)t - offsetof(struct lb_conn, timer));
}

static int alloc_parts(struct lb_table *t)
{
	t->buckets = malloc(t->nbuckets * sizeof(*t->buckets));
	t->stripes = calloc(t->nstripes, sizeof(*t->stripes));
	t->pool = calloc(t->capacity, sizeof(*t->pool));
	t->v6 = calloc(t->capacity, sizeof(*t->v6));
	if (!t->buckets || !t->stripes || !t->pool || !t->v6)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++)
		t->buckets[i] = LB_NODE_NIL;
	for (size_t i = 0; i < t->nstripes; i++)
		pthread_mutex_init(&t->stripes[i], NULL);
	/* Entries freed go to the free list; a new table fills from the front
	 * (pool_get()), without touching the entries it does not use yet. */
	t->free_list = LB_NODE_NIL;
	t->fresh = 0;
	return 0;
}

struct lb_table *lb_table_new(size_t capacity, uint32_t seed, uint64_t now_ms)
{
	struct lb_table *t;

	if (capacity == 0 || capacity > (1u << 30)) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->capacity = capacity;
	t->nbuckets = pow2_at_least(capacity);
	t->nstripes = t->nbuckets < MAX_STRIPES ? t->nbuckets : MAX_STRIPES;
	t->seed = seed;
	pthread_mutex_init(&t->pool_lock, NULL);
	pthread_mutex_init(&t->wheel_lock, NULL);
	if (alloc_parts(t) < 0 ||
	    lb_wheel_init(&t->wheel, WHEEL_SLOTS, WHEEL_TICK_MS, now_ms) < 0) {
		lb_table_free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

size_t lb_table_mem_bytes(size_t capacity)
{
	size_t nbuckets = pow2_at_least(capacity);
	size_t nstripes = nbuckets < MAX_STRIPES ? nbuckets : MAX_STRIPES;

	/* The IPv6 side array is left out: its pages are taken only by IPv6
	 * connections, sizeof(struct lb_conn_v6) each. */
	return sizeof(struct lb_table) + nbuckets * sizeof(((struct lb_table *)0)->buckets[0]) +
	       nstripes * sizeof(pthread_mutex_t) + capacity * sizeof(struct lb_conn);
}

void lb_table_free(struct lb_table *t)
{
	if (!t)
		return;
	if (t->stripes)
		for (size_t i = 0; i < t->nstripes; i++)
			pthread_mutex_destroy(&t->stripes[i]);
	if (t->pool)
		for (size_t i = 0; i < t->fresh; i++)
			pthread_spin_destroy(&t->pool[i].lock);
	pthread_mutex_destroy(&t->pool_lock);
	pthread_mutex_destroy(&t->wheel_lock);
	lb_wheel_fini(&t->wheel);
	free(t->pool);
	free(t->v6);
	free(t->stripes);
	free(t->buckets);
	free(t);
}

static uint32_t bucket_of(const struct lb_table *t, const struct lb_tuple *tuple)
{
	return lb_tuple_hash(tuple, t->seed) & (uint32_t)(t->nbuckets - 1);
}

static pthread_mutex_t *stripe_of(struct lb_table *t, uint32_t bucket)
{
	return &t->stripes[bucket & (t->nstripes - 1)];
}

/* The bucket of c's tuple in direction dir. */
static uint32_t conn_bucket(const struct lb_table *t, const struct lb_conn *c, unsigned dir)
{
	struct lb_tuple tuple = lb_conn_tuple(t, c, (enum lb_dir)dir);

	return bucket_of(t, &tuple);
}

/* The node ref for tuple in its bucket, or LB_NODE_NIL; the bucket's
 * stripe must be held. */
static uint32_t find_node(const struct lb_table *t, uint32_t bucket,
			  const struct lb_tuple *tuple)
{
	for (uint32_t r = t->buckets[bucket]; r != LB_NODE_NIL;
	     r = conn_of_ref(t, r)->node[r & 1].next)
		if (conn_is(t, conn_of_ref(t, r), r & 1, tuple))
			return r;
	return LB_NODE_NIL;
}

struct lb_conn *lb_table_lookup(struct lb_table *t, const struct lb_tuple *tuple,
				enum lb_dir *dir)
{
	uint32_t b = bucket_of(t, tuple);
	pthread_mutex_t *stripe = stripe_of(t, b);
	struct lb_conn *c = NULL;
	uint32_t r;

	pthread_mutex_lock(stripe);
	r = find_node(t, b, tuple);
	if (r != LB_NODE_NIL) {
		c = conn_of_ref(t, r);
		*dir = (enum lb_dir)(r & 1);
		pthread_spin_lock(&c->lock);
	}
	pthread_mutex_unlock(stripe);
	return c;
}

const struct lb_conn *lb_table_peek(const struct lb_table *t, const struct lb_tuple *tuple,
				    enum lb_dir *dir)
{
	uint32_t r = find_node(t, bucket_of(t, tuple), tuple);

	if (r == LB_NODE_NIL)
		return NULL;
	*dir = (enum lb_dir)(r & 1);
	return conn_of_ref(t, r);
}

/* Locks the stripes of two buckets in address order (once if they share one). */
static void lock_pair(struct lb_table *t, uint32_t b0, uint32_t b1)
{
	pthread_mutex_t *s0 = stripe_of(t, b0), *s1 = stripe_of(t, b1);

	if (s0 > s1) {
		pthread_mutex_t *x = s0;

		s0 = s1;
		s1 = x;
	}
	pthread_mutex_lock(s0);
	if (s1 != s0)
		pthread_mutex_lock(s1);
}

static void unlock_pair(struct lb_table *t, uint32_t b0, uint32_t b1)
{
	pthread_mutex_t *s0 = stripe_of(t, b0), *s1 = stripe_of(t, b1);

	pthread_mutex_unlock(s0);
	if (s1 != s0)
		pthread_mutex_unlock(s1);
}

static struct lb_conn *pool_get(struct lb_table *t)
{
	struct lb_conn *c;

	c = NULL;
	pthread_mutex_lock(&t->pool_lock);
	if (t->free_list != LB_NODE_NIL) {
		c = &t->pool[t->free_list];
		t->free_list = c->node[0].next;
	} else if (t->fresh < t->capacity) {
		/* the same order as one free list of the whole pool */
		c = &t->pool[t->fresh++];
		pthread_spin_init(&c->lock, PTHREAD_PROCESS_PRIVATE);
	}
	pthread_mutex_unlock(&t->pool_lock);
	return c;
}

static void pool_put(struct lb_table *t, struct lb_conn *c)
{
	pthread_mutex_lock(&t->pool_lock);
	c->node[0].next = t->free_list;
	t->free_list = (uint32_t)(c - t->pool);
	pthread_mutex_unlock(&t->pool_lock);
}

/* Stores the key's endpoints in c (zeroed). */
static void set_ends(struct lb_table *t, struct lb_conn *c, const struct lb_conn_key *key)
{
	const struct lb_addr *a[LB_CONN_ENDS] = { &key->orig.src, &key->orig.dst,
						  &key->reply.src };

	c->family = key->orig.src.family;
	for (int i = 0; i < LB_CONN_ENDS; i++)
		if (c->family == AF_INET)
			memcpy(&c->addr4[i], a[i]->bytes, 4);
		else
			memcpy(t->v6[c - t->pool].addr[i], a[i]->bytes, 16);
	c->port[LB_CONN_CLIENT] = key->orig.sport;
	c->port[LB_CONN_VIP] = key->orig.dport;
	c->port[LB_CONN_BACKEND] = key->reply.sport;
}

/* True when the key's tuples are those of one connection (table.h). */
static bool key_valid(const struct lb_conn_key *key)
{
	int fam = key->orig.src.family;

	return (fam == AF_INET || fam == AF_INET6) && key->orig.dst.family == fam &&
	       key->reply.src.family == fam && lb_addr_equal(&key->reply.dst, &key->orig.src) &&
	       key->reply.dport == key->orig.sport;
}

/* Fills a fresh connection and links it; both stripes held. */
static void link_new(struct lb_table *t, struct lb_conn *c, const struct lb_conn_key *key,
		     const uint32_t bucket[2], uint64_t now_ms, uint64_t expires_ms)
{
	/* Nobody can reach a pooled entry, so its lock can be made anew
	 * (POSIX leaves copying a lock object undefined). */
	pthread_spin_destroy(&c->lock);
	memset(c, 0, sizeof(*c));
	pthread_spin_init(&c->lock, PTHREAD_PROCESS_PRIVATE);
	pthread_spin_lock(&c->lock);
	set_ends(t, c, key);
	c->service_id = key->service_id;
	c->backend = key->backend;
	c->last_seen_ms = now_ms;
	c->expires_ms = expires_ms;
	for (unsigned d = 0; d < 2; d++) {
		c->node[d].next = t->buckets[bucket[d]];
		t->buckets[bucket[d]] = ref_of(t, c, d);
	}
	atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
	pthread_mutex_lock(&t->wheel_lock);
	lb_wheel_add(&t->wheel, &c->timer, expires_ms);
	pthread_mutex_unlock(&t->wheel_lock);
}

int lb_table_insert(struct lb_table *t, const struct lb_conn_key *key,
		    uint64_t now_ms, uint64_t expires_ms, struct lb_conn **out)
{
	uint32_t bucket[2] = { bucket_of(t, &key->orig), bucket_of(t, &key->reply) };
	struct lb_conn *c;
	uint32_t r;
	int err = 0;

	*out = NULL;
	if (!key_valid(key))
		return -EINVAL;
	lock_pair(t, bucket[0], bucket[1]);
	/* Two workers may race to insert the same new connection (a SYN and
	 * its retransmission): the loser finds the winner's entry here. */
	r = find_node(t, bucket[0], &key->orig);
	if (r != LB_NODE_NIL && (r & 1) == LB_DIR_ORIG) {
		*out = conn_of_ref(t, r);
		pthread_spin_lock(&(*out)->lock);
		err = -EEXIST;
	} else if (r != LB_NODE_NIL || find_node(t, bucket[1], &key->reply) != LB_NODE_NIL) {
		err = -EADDRINUSE;
	} else if (!(c = pool_get(t))) {
		err = -ENOSPC;
	} else {
		link_new(t, c, key, bucket, now_ms, expires_ms);
		*out = c;
	}
	unlock_pair(t, bucket[0], bucket[1]);
	return err;
}

/* Takes c's node of direction dir out of chain b; its stripe held. */
static void unlink_node(struct lb_table *t, struct lb_conn *c, unsigned dir, uint32_t b)
{
	uint32_t self = ref_of(t, c, dir), *pp = &t->buckets[b];

	while (*pp != LB_NODE_NIL && *pp != self)
		pp = &conn_of_ref(t, *pp)->node[*pp & 1].next;
	if (*pp == self)
		*pp = c->node[dir].next;
}

/* The time a connection must next be looked at; c locked. */
static uint64_t next_deadline(const struct lb_conn *c)
{
	return c->wake_ms && c->wake_ms < c->expires_ms ? c->wake_ms : c->expires_ms;
}

static void rearm(struct lb_table *t, struct lb_conn *c, uint64_t when)
{
	pthread_mutex_lock(&t->wheel_lock);
	lb_wheel_add(&t->wheel, &c->timer, when);
	pthread_mutex_unlock(&t->wheel_lock);
}

/* Unlinks c from both chains (buckets b0, b1); both stripes and c's lock held. */
static void unlink_conn(struct lb_table *t, struct lb_conn *c, uint32_t b0, uint32_t b1)
{
	unlink_node(t, c, LB_DIR_ORIG, b0);
	unlink_node(t, c, LB_DIR_REPLY, b1);
}

/* Hands an unlinked connection to removed() and back to the pool. */
static void release(struct lb_table *t, struct lb_conn *c,
		    void (*removed)(struct lb_conn *c, void *arg), void *arg)
{
	/* Unreachable now: no lookup can find it, so removed needs no lock. */
	if (removed)
		removed(c, arg);
	atomic_fetch_sub_explicit(&t->count, 1, memory_order_relaxed);
	pool_put(t, c);
}

/* Expires, wakes or re-arms one collected connection. Returns 1 if removed. */
static int expire_one(struct lb_table *t, struct lb_conn *c, uint64_t now_ms,
		      void (*fn)(struct lb_conn *c, void *arg), void *arg)
{
	uint32_t b0 = conn_bucket(t, c, LB_DIR_ORIG), b1 = conn_bucket(t, c, LB_DIR_REPLY);
	uint64_t when;

	lock_pair(t, b0, b1);
	pthread_spin_lock(&c->lock);
	if (c->expires_ms > now_ms) {
		if (c->wake_ms && c->wake_ms <= now_ms && t->wake)
			t->wake(c, now_ms, t->wake_arg);
		if (c->wake_ms && c->wake_ms <= now_ms)
			c->wake_ms = 0;		/* a wake function that forgot */
		when = next_deadline(c);
		pthread_spin_unlock(&c->lock);
		rearm(t, c, when);
		unlock_pair(t, b0, b1);
		return 0;
	}
	unlink_conn(t, c, b0, b1);
	pthread_spin_unlock(&c->lock);
	unlock_pair(t, b0, b1);
	release(t, c, fn, arg);
	return 1;
}

void lb_table_remove(struct lb_table *t, struct lb_conn *c,
		     void (*removed)(struct lb_conn *c, void *arg), void *arg)
{
	uint32_t b0 = conn_bucket(t, c, LB_DIR_ORIG), b1 = conn_bucket(t, c, LB_DIR_REPLY);

	lock_pair(t, b0, b1);
	pthread_spin_lock(&c->lock);
	unlink_conn(t, c, b0, b1);
	pthread_spin_unlock(&c->lock);
	unlock_pair(t, b0, b1);
	pthread_mutex_lock(&t->wheel_lock);
	lb_wheel_del(&t->wheel, &c->timer);
	pthread_mutex_unlock(&t->wheel_lock);
	release(t, c, removed, arg);
}

void lb_table_set_wake(struct lb_table *t,
		       void (*wake)(struct lb_conn *c, uint64_t now_ms, void *arg), void *arg)
{
	t->wake = wake;
	t->wake_arg = arg;
}

void lb_table_wake_at(struct lb_table *t, struct lb_conn *c, uint64_t when_ms)
{
	if (c->wake_ms && c->wake_ms <= when_ms)
		return;
	c->wake_ms = when_ms;
	pthread_mutex_lock(&t->wheel_lock);
	/* A connection off the wheel is in the control thread's hands right
	 * now; it re-arms it from wake_ms when it gets the lock. */
	if (lb_wheel_node_armed(&c->timer) && c->timer.when > when_ms) {
		lb_wheel_del(&t->wheel, &c->timer);
		lb_wheel_add(&t->wheel, &c->timer, when_ms);
	}
	pthread_mutex_unlock(&t->wheel_lock);
}

size_t lb_table_expire(struct lb_table *t, uint64_t now_ms, size_t budget,
		       void (*fn)(struct lb_conn *c, void *arg), void *arg)
{
	struct lb_wheel_node *due, *next;
	size_t removed = 0;

	pthread_mutex_lock(&t->wheel_lock);
	lb_wheel_collect(&t->wheel, now_ms, &due, budget);
	pthread_mutex_unlock(&t->wheel_lock);
	for (; due; due = next) {
		next = due->next;
		removed += (size_t)expire_one(t, conn_of_timer(due), now_ms, fn, arg);
	}
	return removed;
}

/* Visits the connections of bucket b; its stripe held. */
static void visit_bucket(struct lb_table *t, size_t b,
			 void (*fn)(const struct lb_conn *c, void *arg), void *arg)
{
	for (uint32_t r = t->buckets[b]; r != LB_NODE_NIL;
	     r = conn_of_ref(t, r)->node[r & 1].next) {
		struct lb_conn *c;

		if ((r & 1) != LB_DIR_ORIG)
			continue;	/* visit each connection once */
		c = conn_of_ref(t, r);
		pthread_spin_lock(&c->lock);
		fn(c, arg);
		pthread_spin_unlock(&c->lock);
	}
}

void lb_table_foreach(struct lb_table *t, void (*fn)(const struct lb_conn *c, void *arg),
		      void *arg)
{
	/* Stripe by stripe: each lock is taken once for all its buckets. */
	for (size_t s = 0; s < t->nstripes; s++) {
		pthread_mutex_lock(&t->stripes[s]);
		for (size_t b = s; b < t->nbuckets; b += t->nstripes)
			visit_bucket(t, b, fn, arg);
		pthread_mutex_unlock(&t->stripes[s]);
	}
}

int lb_table_foreach_step(struct lb_table *t, size_t *cursor, size_t nbuckets,
			  void (*fn)(const struct lb_conn *c, void *arg), void *arg)
{
	size_t b = *cursor, end = b + nbuckets < t->nbuckets ? b + nbuckets : t->nbuckets;

	for (; b < end; b++) {
		pthread_mutex_t *stripe = stripe_of(t, (uint32_t)b);

		pthread_mutex_lock(stripe);
		visit_bucket(t, b, fn, arg);
		pthread_mutex_unlock(stripe);
	}
	*cursor = b;
	return b < t->nbuckets;
}

size_t lb_table_count(const struct lb_table *t)
{
	return atomic_load_explicit(&((struct lb_table *)t)->count, memory_order_relaxed);
}

size_t lb_table_capacity(const struct lb_table *t)
{
	return t->capacity;
}
