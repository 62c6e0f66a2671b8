/*
 * lb_persist: client persistence table; see lb_persist.h.
 *
 * Every entry lives in one array allocated at creation; unused ones are
 * chained on a free list, used ones in a chained hash table keyed by
 * (service id, client) with a seeded hash, so a remote client cannot aim its
 * addresses at one chain. One mutex covers everything: only new connections
 * and housekeeping come here, never packets of established connections.
 *
 * Expiry goes through a timer wheel and is lazy: set and touch only move
 * the entry's deadline forward; when the wheel hands the entry back at its
 * old deadline, lb_persist_expire() either frees it or puts it back at the
 * new one. A client that comes back every second therefore costs a wheel
 * operation once per timeout, not once per connection.
 *
 * The functions that take no clock (set, touch) judge liveness against the
 * latest time any call has shown the table (last_ms), so that they agree
 * with lookup about an entry that is past its deadline but not yet freed:
 * touching it does not bring it back, and setting it starts it afresh.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb_persist.h"
#include "lb_wheel.h"

/* 4096 ticks of 100 ms: a revolution of ~410 s covers the usual timeouts
 * (IPVS's default is 300 s) in one pass, and longer ones only cost a skip
 * per extra revolution. */
#define PERSIST_WHEEL_SLOTS 4096
#define PERSIST_WHEEL_TICK_MS 100

struct persist_slot {
	struct lb_persist_entry e;
	struct persist_slot *hnext;	/* hash chain, or free list */
	struct persist_slot **hpprev;	/* NULL while free */
	struct lb_wheel_node timer;	/* armed at or before e.expires_ms */
};

struct lb_persist {
	pthread_mutex_t lock;
	struct persist_slot *slots;
	size_t capacity;
	struct persist_slot *free_list;
	size_t fresh;			/* slots[fresh..capacity) never used, never
					 * written (their pages stay unallocated) */
	struct persist_slot **buckets;
	size_t nbuckets;		/* power of two */
	size_t count;
	uint32_t seed;
	uint64_t last_ms;		/* latest now_ms seen */
	struct lb_wheel wheel;
};

static struct persist_slot *slot_of_timer(struct lb_wheel_node *node)
{
	return (struct persist_slot *)((char *)node - offsetof(struct persist_slot, timer));
}

static size_t persist_bucket(const struct lb_persist *p, uint32_t service_id,
			     const struct lb_addr *client)
{
	/* The service id goes into the seed: multiplied so that services
	 * with neighbouring ids do not just flip the low bits of the seed. */
	return lb_addr_hash(client, p->seed ^ (service_id * 0x9e3779b1u)) & (p->nbuckets - 1);
}

static void persist_seen(struct lb_persist *p, uint64_t now_ms)
{
	if (now_ms > p->last_ms)
		p->last_ms = now_ms;
}

static bool persist_live(const struct persist_slot *s, uint64_t now_ms)
{
	return s->e.expires_ms > now_ms;
}

size_t lb_persist_mem_bytes(size_t capacity)
{
	size_t nbuckets = 1;

	while (nbuckets < capacity)
		nbuckets <<= 1;
	return sizeof(struct lb_persist) + capacity * sizeof(struct persist_slot) +
	       nbuckets * sizeof(((struct lb_persist *)0)->buckets[0]);
}

struct lb_persist *lb_persist_new(size_t capacity, uint32_t seed, uint64_t now_ms)
{
	struct lb_persist *p;
	int err = ENOMEM;

	if (capacity == 0 || capacity > SIZE_MAX / 2 / sizeof(struct persist_slot)) {
		errno = capacity ? ENOMEM : EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto err;
	p->capacity = capacity;
	p->seed = seed;
	p->last_ms = now_ms;
	p->nbuckets = 1;
	while (p->nbuckets < capacity)
		p->nbuckets <<= 1;
	p->slots = calloc(capacity, sizeof(*p->slots));
	p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
	if (!p->slots || !p->buckets)
		goto err;
	if (lb_wheel_init(&p->wheel, PERSIST_WHEEL_SLOTS, PERSIST_WHEEL_TICK_MS, now_ms) < 0)
		goto err;
	err = pthread_mutex_init(&p->lock, NULL);
	if (err)
		goto err_wheel;
	return p;
err_wheel:
	lb_wheel_fini(&p->wheel);
err:
	if (p) {
		free(p->buckets);
		free(p->slots);
	}
	free(p);
	errno = err;
	return NULL;
}

void lb_persist_free(struct lb_persist *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	lb_wheel_fini(&p->wheel);
	free(p->buckets);
	free(p->slots);
	free(p);
}

/* The slot of (service_id, client), live or not yet freed; NULL if none. */
static struct persist_slot *persist_find(const struct lb_persist *p, uint32_t service_id,
					 const struct lb_addr *client)
{
	struct persist_slot *s = p->buckets[persist_bucket(p, service_id, client)];

	for (; s; s = s->hnext)
		if (s->e.service_id == service_id && lb_addr_equal(&s->e.client, client))
			return s;
	return NULL;
}

/* Unlinks a used slot from its chain and the wheel and frees it. */
static void persist_remove(struct lb_persist *p, struct persist_slot *s)
{
	*s->hpprev = s->hnext;
	if (s->hnext)
		s->hnext->hpprev = s->hpprev;
	s->hpprev = NULL;
	lb_wheel_del(&p->wheel, &s->timer);
	s->e.backend = NULL;
	s->hnext = p->free_list;
	p->free_list = s;
	p->count--;
}

/* Takes a free slot and links it for e; NULL when the table is full. */
static struct persist_slot *persist_insert(struct lb_persist *p,
					   const struct lb_persist_entry *e)
{
	struct persist_slot *s = p->free_list;
	struct persist_slot **head;

	if (s)
		p->free_list = s->hnext;
	else if (p->fresh < p->capacity)
		s = &p->slots[p->fresh++];	/* as one free list of them all */
	else
		return NULL;
	s->e = *e;
	head = &p->buckets[persist_bucket(p, e->service_id, &e->client)];
	s->hnext = *head;
	if (*head)
		(*head)->hpprev = &s->hnext;
	s->hpprev = head;
	*head = s;
	s->timer.pprev = NULL;
	lb_wheel_add(&p->wheel, &s->timer, e->expires_ms);
	p->count++;
	return s;
}

struct lb_backend *lb_persist_lookup(struct lb_persist *p, uint32_t service_id,
				     const struct lb_addr *client, uint64_t now_ms)
{
	struct persist_slot *s;
	struct lb_backend *be = NULL;

	pthread_mutex_lock(&p->lock);
	persist_seen(p, now_ms);
	s = persist_find(p, service_id, client);
	if (s && persist_live(s, now_ms))
		be = s->e.backend;
	pthread_mutex_unlock(&p->lock);
	return be;
}

int lb_persist_set(struct lb_persist *p, const struct lb_persist_entry *e)
{
	struct persist_slot *s;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	s = persist_find(p, e->service_id, &e->client);
	if (s && persist_live(s, p->last_ms)) {
		s->e.backend = e->backend;
		if (e->expires_ms > s->e.expires_ms)
			s->e.expires_ms = e->expires_ms;	/* the wheel learns lazily */
	} else if (s) {
		/* Dead but not yet freed: a new entry in the old slot. Its
		 * timer may sit after the new deadline, so place it again. */
		s->e.backend = e->backend;
		s->e.expires_ms = e->expires_ms;
		lb_wheel_del(&p->wheel, &s->timer);
		lb_wheel_add(&p->wheel, &s->timer, e->expires_ms);
	} else if (!persist_insert(p, e)) {
		rc = -ENOSPC;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void lb_persist_touch(struct lb_persist *p, uint32_t service_id,
		      const struct lb_addr *client, uint64_t expires_ms)
{
	struct persist_slot *s;

	pthread_mutex_lock(&p->lock);
	s = persist_find(p, service_id, client);
	if (s && persist_live(s, p->last_ms) && expires_ms > s->e.expires_ms)
		s->e.expires_ms = expires_ms;
	pthread_mutex_unlock(&p->lock);
}

size_t lb_persist_expire(struct lb_persist *p, uint64_t now_ms)
{
	struct lb_wheel_node *node, *next;
	size_t freed = 0;

	pthread_mutex_lock(&p->lock);
	persist_seen(p, now_ms);
	lb_wheel_collect(&p->wheel, now_ms, &node, SIZE_MAX);
	for (; node; node = next) {
		struct persist_slot *s = slot_of_timer(node);

		next = node->next;	/* lb_wheel_add below reuses ->next */
		if (persist_live(s, now_ms)) {
			lb_wheel_add(&p->wheel, &s->timer, s->e.expires_ms);
		} else {
			persist_remove(p, s);
			freed++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return freed;
}

typedef bool persist_match_fn(const struct lb_persist_entry *e, const void *key);

/* Removes every used slot that match() accepts; returns how many. */
static size_t persist_remove_if(struct lb_persist *p, persist_match_fn *match,
				const void *key)
{
	size_t removed = 0;

	pthread_mutex_lock(&p->lock);
	/* A full scan: reloads are rare, and an index per backend or per
	 * service would cost memory and work on every set. */
	for (size_t i = 0; i < p->fresh; i++) {
		struct persist_slot *s = &p->slots[i];

		if (s->hpprev && match(&s->e, key)) {
			persist_remove(p, s);
			removed++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return removed;
}

static bool persist_match_backend(const struct lb_persist_entry *e, const void *key)
{
	return e->backend == key;
}

static bool persist_match_service(const struct lb_persist_entry *e, const void *key)
{
	return e->service_id == *(const uint32_t *)key;
}

size_t lb_persist_forget_backend(struct lb_persist *p, const struct lb_backend *be)
{
	return persist_remove_if(p, persist_match_backend, be);
}

size_t lb_persist_forget_service(struct lb_persist *p, uint32_t service_id)
{
	return persist_remove_if(p, persist_match_service, &service_id);
}

size_t lb_persist_count(struct lb_persist *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->count;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void lb_persist_foreach(struct lb_persist *p, uint64_t now_ms,
			void (*fn)(const struct lb_persist_entry *e, void *arg), void *arg)
{
	pthread_mutex_lock(&p->lock);
	persist_seen(p, now_ms);
	for (size_t i = 0; i < p->fresh; i++) {
		struct lb_persist_entry copy;

		if (!p->slots[i].hpprev || !persist_live(&p->slots[i], now_ms))
			continue;
		copy = p->slots[i].e;
		fn(&copy, arg);
	}
	pthread_mutex_unlock(&p->lock);
}
