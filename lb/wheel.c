/*
 * lb_wheel: hashed timer wheel; see lb_wheel.h for the contract.
 */
#include <errno.h>
#include <stdlib.h>

#include "lb_wheel.h"

static size_t round_pow2(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

int lb_wheel_init(struct lb_wheel *w, size_t nslots, uint32_t tick_ms, uint64_t now_ms)
{
	w->nslots = round_pow2(nslots ? nslots : 1);
	w->tick_ms = tick_ms ? tick_ms : 1;
	w->slots = calloc(w->nslots, sizeof(*w->slots));
	if (!w->slots)
		return -ENOMEM;
	w->cursor = now_ms / w->tick_ms;
	w->count = 0;
	return 0;
}

void lb_wheel_fini(struct lb_wheel *w)
{
	free(w->slots);
	w->slots = NULL;
}

void lb_wheel_add(struct lb_wheel *w, struct lb_wheel_node *node, uint64_t when_ms)
{
	uint64_t tick = when_ms / w->tick_ms;
	struct lb_wheel_node **head;

	/* A deadline already passed goes in the next slot to be visited, so
	 * the next collect finds it instead of a full revolution later. */
	if (tick < w->cursor)
		tick = w->cursor;
	head = &w->slots[tick & (w->nslots - 1)];
	node->when = when_ms;
	node->next = *head;
	if (*head)
		(*head)->pprev = &node->next;
	node->pprev = head;
	*head = node;
	w->count++;
}

void lb_wheel_del(struct lb_wheel *w, struct lb_wheel_node *node)
{
	if (!node->pprev)
		return;
	*node->pprev = node->next;
	if (node->next)
		node->next->pprev = node->pprev;
	node->next = NULL;
	node->pprev = NULL;
	w->count--;
}

/* Moves the due nodes of one slot to *out; returns how many, at most max. */
static size_t collect_slot(struct lb_wheel *w, struct lb_wheel_node **slot,
			   uint64_t now_ms, struct lb_wheel_node **out, size_t max)
{
	struct lb_wheel_node *node = *slot, *next;
	size_t n = 0;

	for (; node && n < max; node = next) {
		next = node->next;
		if (node->when > now_ms)
			continue;	/* a later revolution */
		lb_wheel_del(w, node);
		node->next = *out;
		*out = node;
		n++;
	}
	return n;
}

size_t lb_wheel_collect(struct lb_wheel *w, uint64_t now_ms,
			struct lb_wheel_node **out, size_t max)
{
	uint64_t now_tick = now_ms / w->tick_ms;
	size_t n = 0;

	*out = NULL;
	/* Visit every passed tick, but at most one revolution: beyond that
	 * the same slots would only be scanned again. */
	if (now_tick >= w->cursor + w->nslots)
		w->cursor = now_tick - w->nslots + 1;
	while (w->cursor <= now_tick && n < max) {
		struct lb_wheel_node **slot = &w->slots[w->cursor & (w->nslots - 1)];

		n += collect_slot(w, slot, now_ms, out, max - n);
		if (n >= max)
			break;		/* slot may hold more: stay on it */
		if (w->cursor == now_tick)
			break;		/* the current tick can still fill up */
		w->cursor++;
	}
	return n;
}
