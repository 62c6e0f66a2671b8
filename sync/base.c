/*
 * sync_base: see include/sync_base.h.
 *
 * Both sides are rings indexed by id modulo the window: slot id & mask holds
 * id's Open until id + window replaces it, so an id is resolvable exactly
 * while it is among the last `window` (the sender's test and the receiver's
 * are the same). The sender finds a connection's id through a small
 * open-addressed index over the ring, hashed by incarnation; a slot whose id
 * has left the window is free, and when INDEX_PROBES slots are all taken
 * the connection just opens again next time (bytes, never correctness).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync_base.h"

#define INDEX_PROBES 8

struct tx_slot {
	uint64_t id;
	struct lb_conn_state open;
};

struct sync_base_tx {
	size_t mask;		/* window - 1 */
	uint64_t next;		/* the next Open's id; ids start at 1 */
	uint64_t forgot;	/* ids below this the peer does not hold */
	struct tx_slot *ring;
	uint64_t *index;	/* ids by incarnation hash; 2 * window slots */
	size_t index_mask;
};

/* Makes zeroed memory resident now rather than at its first use, so that
 * what the tables cost shows at start (calloc's fresh pages are mapped
 * lazily). A write per page, through volatile: a compiler may drop a
 * memset of memory it knows calloc zeroed. */
static void touch(void *p, size_t len)
{
	volatile uint8_t *b = p;

	for (size_t i = 0; i < len; i += 4096)
		b[i] = 0;
}

static int window_ok(size_t window)
{
	return window >= 2 && (window & (window - 1)) == 0;
}

struct sync_base_tx *sync_base_tx_new(size_t window)
{
	struct sync_base_tx *t;

	if (!window_ok(window)) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->mask = window - 1;
	t->next = 1;
	t->forgot = 1;
	t->index_mask = 2 * window - 1;
	t->ring = calloc(window, sizeof(*t->ring));
	t->index = calloc(2 * window, sizeof(*t->index));
	if (!t->ring || !t->index) {
		sync_base_tx_free(t);
		errno = ENOMEM;
		return NULL;
	}
	touch(t->ring, window * sizeof(*t->ring));
	touch(t->index, 2 * window * sizeof(*t->index));
	return t;
}

void sync_base_tx_free(struct sync_base_tx *t)
{
	if (!t)
		return;
	free(t->ring);
	free(t->index);
	free(t);
}

static uint32_t incarnation_hash(const struct lb_conn_state *st)
{
	return lb_tuple_hash(&st->orig, (uint32_t)st->created_us ^ (uint32_t)(st->created_us >> 32));
}

/* An id the peer may still hold: in the window, and opened since it last
 * forgot everything. */
static int tx_live(const struct sync_base_tx *t, uint64_t id)
{
	return id >= t->forgot && id + t->mask + 1 >= t->next && id < t->next;
}

/* The Open with this id, if it is live and of st's incarnation. */
static const struct lb_conn_state *tx_open_of(const struct sync_base_tx *t, uint64_t id,
					      const struct lb_conn_state *st)
{
	const struct tx_slot *s = &t->ring[id & t->mask];

	if (!id || !tx_live(t, id) || s->id != id ||
	    !lb_conn_state_same_incarnation(&s->open, st))
		return NULL;
	return &s->open;
}

const struct lb_conn_state *sync_base_tx_find(const struct sync_base_tx *t,
					      const struct lb_conn_state *st, uint64_t *id)
{
	uint32_t h = incarnation_hash(st);

	for (uint32_t k = 0; k < INDEX_PROBES; k++) {
		uint64_t cand = t->index[(h + k) & t->index_mask];
		const struct lb_conn_state *open = tx_open_of(t, cand, st);

		if (open) {
			*id = cand;
			return open;
		}
	}
	return NULL;
}

uint64_t sync_base_tx_next(const struct sync_base_tx *t)
{
	return t->next;
}

void sync_base_tx_opened(struct sync_base_tx *t, const struct lb_conn_state *st)
{
	uint64_t id = t->next++;
	uint32_t h = incarnation_hash(st);
	uint64_t *victim = &t->index[h & t->index_mask];

	t->ring[id & t->mask] = (struct tx_slot){ id, *st };
	/* The connection's older id, or a slot whose id is no longer live. */
	for (uint32_t k = 0; k < INDEX_PROBES; k++) {
		uint64_t *e = &t->index[(h + k) & t->index_mask];

		if (!*e || !tx_live(t, *e) || tx_open_of(t, *e, st)) {
			victim = e;
			break;
		}
	}
	*victim = id;
}

void sync_base_tx_forget(struct sync_base_tx *t)
{
	t->forgot = t->next;
}

/* ---- the receiver ---- */

struct rx_slot {
	uint64_t id;		/* 0: empty */
	uint8_t has_open, has_change;
	struct lb_conn_state open;
	struct sync_change change;
};

struct sync_base_rx {
	size_t mask;
	struct rx_slot *ring;
};

struct sync_base_rx *sync_base_rx_new(size_t window)
{
	struct sync_base_rx *r;

	if (!window_ok(window)) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->mask = window - 1;
	r->ring = calloc(window, sizeof(*r->ring));
	if (!r->ring) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	touch(r->ring, window * sizeof(*r->ring));
	return r;
}

void sync_base_rx_free(struct sync_base_rx *r)
{
	if (!r)
		return;
	free(r->ring);
	free(r);
}

int sync_base_rx_open(struct sync_base_rx *r, uint64_t id, const struct lb_conn_state *st,
		      struct sync_change *waiting)
{
	struct rx_slot *s = &r->ring[id & r->mask];
	int held = s->id == id && s->has_change;

	if (s->id > id)
		return 0;	/* a newer id has the slot: this Open is of no use */
	if (held)
		*waiting = s->change;
	s->id = id;
	s->has_open = 1;
	s->has_change = 0;
	s->open = *st;
	return held;
}

enum sync_base_found sync_base_rx_change(struct sync_base_rx *r, uint64_t id,
					 const struct sync_change *c,
					 const struct lb_conn_state **open)
{
	struct rx_slot *s = &r->ring[id & r->mask];

	if (s->id > id)
		return SYNC_BASE_LOST;
	if (s->id == id && s->has_open) {
		*open = &s->open;
		return SYNC_BASE_FOUND;
	}
	/* Before its Open: keep the newest Change (each is against the Open,
	 * so the newest says all the others do). */
	if (s->id != id || !s->has_change || c->version > s->change.version) {
		s->change = *c;
		s->has_change = 1;
	}
	s->id = id;
	s->has_open = 0;
	return SYNC_BASE_HELD;
}

void sync_base_rx_forget(struct sync_base_rx *r)
{
	for (size_t i = 0; i <= r->mask; i++)
		r->ring[i].id = 0;
}
