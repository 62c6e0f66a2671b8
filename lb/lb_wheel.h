/*
 * lb_wheel: a hashed timer wheel keyed on monotonic milliseconds.
 *
 * Nodes are intrusive (embedded in the object they time). A node is placed in
 * the slot of its expiry tick; advancing the wheel visits only the slots of
 * the ticks that have passed, so the work per tick is the size of one slot,
 * not of the whole population. Expiries further away than one revolution
 * simply stay in their slot for more revolutions.
 *
 * Re-arming is lazy, as nginx and the kernel's conntrack do it: the owner of
 * a node that is touched often (a connection on every packet) only moves its
 * own deadline; when the node's placement time comes, lb_wheel_collect()
 * hands it back and the owner either expires it or re-adds it with its new
 * deadline. The wheel itself takes no lock; callers serialise access.
 */
#ifndef LB_WHEEL_H
#define LB_WHEEL_H

#include <stddef.h>
#include <stdint.h>

struct lb_wheel_node {
	struct lb_wheel_node *next;
	struct lb_wheel_node **pprev;	/* NULL when not on the wheel */
	uint64_t when;			/* placement time, ms */
};

struct lb_wheel {
	struct lb_wheel_node **slots;
	size_t nslots;			/* power of two */
	uint32_t tick_ms;
	uint64_t cursor;		/* next tick to visit */
	size_t count;
};

/*
 * Prepares a wheel of nslots (rounded up to a power of two) ticks of tick_ms.
 * now_ms is the current time. Returns 0 or -ENOMEM.
 */
int lb_wheel_init(struct lb_wheel *w, size_t nslots, uint32_t tick_ms, uint64_t now_ms);
void lb_wheel_fini(struct lb_wheel *w);

/* Puts node on the wheel to fire at when_ms; the node must not be on it. */
void lb_wheel_add(struct lb_wheel *w, struct lb_wheel_node *node, uint64_t when_ms);

/* Takes node off the wheel; a node that is not on it is left alone. */
void lb_wheel_del(struct lb_wheel *w, struct lb_wheel_node *node);

static inline int lb_wheel_node_armed(const struct lb_wheel_node *node)
{
	return node->pprev != NULL;
}

/*
 * Detaches up to max nodes whose placement time is at or before now_ms and
 * links them through ->next into *out (NULL-terminated, any order). Ticks it
 * has fully visited are not visited again. Returns the number of nodes.
 */
size_t lb_wheel_collect(struct lb_wheel *w, uint64_t now_ms,
			struct lb_wheel_node **out, size_t max);

#endif
