/*
 * sync_base: the Opens both nodes of a pair agree on, by id, so that a
 * connection's later records can travel as small Changes against its Open
 * (sync_codec.h).
 *
 * The sender gives every Open the next id of its epoch (ids are never
 * reused within an epoch) and remembers the state it carried, for its last
 * `window` Opens, findable by incarnation (tuple and created_us). A record
 * of a connection whose Open is among them is a Change; any other is a new
 * Open, which becomes the connection's base from then on.
 *
 * The receiver keeps the same window of Opens, by id. A Change names its
 * Open's id, and since the stream delivers datagrams in arrival order, a
 * Change can come before its Open (the Open's datagram lost and repaired):
 * the receiver holds it (the newest such Change per id) until the Open
 * arrives. A Change whose Open has already left the window is lost; that
 * takes `window` Opens between the Change being sent and it arriving, and
 * the node asks for a bulk resync then.
 *
 * Neither side does I/O or takes locks: the sync node's control thread owns
 * both.
 */
#ifndef SYNC_BASE_H
#define SYNC_BASE_H

#include <stddef.h>
#include <stdint.h>

#include "lb_record.h"
#include "sync_codec.h"

/*
 * Opens each side keeps; a power of two. A Change is lost only if this many
 * newer Opens arrive before it (at 100,000 new connections/s, a repair
 * slower than 160 ms). The memory is taken, and touched, when a side is
 * made: 2.7 MB for the sender, 3.9 MB for the receiver, so a node's
 * footprint does not creep up as its first connections come and go.
 */
#define SYNC_BASE_WINDOW 16384

struct sync_base_tx;

/* window: a power of two. NULL + errno on failure. */
struct sync_base_tx *sync_base_tx_new(size_t window);
void sync_base_tx_free(struct sync_base_tx *t);

/*
 * The Open of st's incarnation the peer can still resolve, and its id;
 * NULL when there is none (st must travel as an Open).
 */
const struct lb_conn_state *sync_base_tx_find(const struct sync_base_tx *t,
					      const struct lb_conn_state *st, uint64_t *id);

/* The id the next Open gets. */
uint64_t sync_base_tx_next(const struct sync_base_tx *t);

/* st went out as an Open with id sync_base_tx_next(); the next id follows. */
void sync_base_tx_opened(struct sync_base_tx *t, const struct lb_conn_state *st);

/* The peer forgot every Open (it restarted): from now on every connection
 * opens again. Ids go on from where they were. */
void sync_base_tx_forget(struct sync_base_tx *t);

struct sync_base_rx;

struct sync_base_rx *sync_base_rx_new(size_t window);
void sync_base_rx_free(struct sync_base_rx *r);

/*
 * An Open arrived. Returns 1 and copies into *waiting a Change of it that
 * arrived first (apply it after the Open), else 0.
 */
int sync_base_rx_open(struct sync_base_rx *r, uint64_t id, const struct lb_conn_state *st,
		      struct sync_change *waiting);

enum sync_base_found {
	SYNC_BASE_FOUND,	/* *open is the Open to apply it to */
	SYNC_BASE_HELD,		/* kept until its Open arrives */
	SYNC_BASE_LOST,		/* its Open left the window: cannot be applied */
};

enum sync_base_found sync_base_rx_change(struct sync_base_rx *r, uint64_t id,
					 const struct sync_change *c,
					 const struct lb_conn_state **open);

/* The peer restarted: its ids start again. */
void sync_base_rx_forget(struct sync_base_rx *r);

#endif
