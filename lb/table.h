/*
 * lb_conn: the connection table shared by all worker threads.
 *
 * Each connection is reachable under two tuples: the client's packet as it
 * arrives (orig: client -> VIP) and the backend's reply as it arrives
 * (reply: backend -> client), so a packet of either direction is found with
 * one hash lookup, whichever worker thread receives it.
 *
 * Memory: the pool of connections is allocated once (the capacity limit);
 * inserting takes one from a free list, so the packet path never allocates.
 * An entry keeps its three endpoints rather than its two tuples, which
 * lb_conn_tuple() makes from them, and links its chains by pool index
 * (docs/benchmarks.md measures what that saves).
 *
 * Locking, in this order only:
 *   stripe locks  protect the bucket chains (bucket b uses stripe b % S)
 *   conn->lock    protects the connection's mutable state (tcp, expiry,
 *                 counters); tuples, service and backend never change while
 *                 the connection is in the table and may be read unlocked
 *   wheel lock    protects the expiry wheel
 * A connection is freed only by the table's control thread (one thread,
 * through lb_table_expire() or lb_table_remove()), holding the stripe locks
 * of both its buckets and then its own lock. So a thread that holds a
 * connection's lock may release the stripe lock it found it through: the
 * connection cannot be freed until it lets go of the connection.
 */
#ifndef LB_CONN_H
#define LB_CONN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_tcp.h"
#include "lb_wheel.h"

struct lb_backend;	/* backend_impl.h */

/*
 * A link in a bucket chain: the next node as its connection's pool index
 * times two plus its direction, LB_NODE_NIL at the end. Half a pointer, and
 * the direction and the bucket need no field of their own (the bucket is the
 * tuple's hash again, computed when the connection is unlinked).
 */
struct lb_conn_node {
	uint32_t next;
};
#define LB_NODE_NIL UINT32_MAX

/* Connection flags. */
#define LB_CONN_F_SYNCED	0x01	/* came from the peer over the sync channel */
#define LB_CONN_F_DIRTY		0x02	/* changed since its state was last replicated */
#define LB_CONN_F_FAST		0x04	/* installed on the kernel fast path */
#define LB_CONN_F_FAST_REFUSED	0x08	/* the fast path refused it (IPv6, map full):
					 * counted once, offered again per packet */
#define LB_CONN_F_UNSENT	0x10	/* closed before its first record left: the
					 * peer never heard of this incarnation */

/* The three endpoints of a connection (lb_conn.addr4, port). Its tuples
 * are made of them: orig = client -> VIP, reply = backend -> client. */
enum lb_conn_end { LB_CONN_CLIENT = 0, LB_CONN_VIP, LB_CONN_BACKEND, LB_CONN_ENDS };

struct lb_conn {
	struct lb_conn_node node[2];	/* by direction; stripe locks */
	struct lb_wheel_node timer;	/* wheel lock */
	/* Immutable while in the table: the endpoints, from which
	 * lb_conn_tuple() makes both tuples. IPv4 addresses are here; an IPv6
	 * connection's are in the table's side array, whose pages a table of
	 * IPv4 connections never touches, so IPv4 does not pay for IPv6. */
	uint32_t addr4[LB_CONN_ENDS];	/* network order; 0 for IPv6 */
	uint16_t port[LB_CONN_ENDS];
	uint8_t family;			/* AF_INET or AF_INET6 */
	/* Mutable under lock. */
	uint8_t flags;
	uint32_t service_id;		/* immutable */
	struct lb_backend *backend;	/* immutable */
	pthread_spinlock_t lock;
	struct lb_tcp tcp;
	uint32_t version;		/* replicated updates of this incarnation */
	uint32_t rate[2];		/* recent bytes/s by direction (decaying peak) */
	uint32_t persist_ms;		/* its service's persistence timeout, 0: none */
	uint64_t expires_ms;
	uint64_t last_seen_ms;
	uint64_t wake_ms;		/* call the table's wake function then; 0: never */
	uint64_t created_us;		/* realtime; orders incarnations of a tuple */
	uint64_t last_sync_ms;		/* when its state was last replicated */
	uint64_t sync_bytes[2];		/* bytes[] at that time, for the rate */
	uint64_t persist_touched_ms;	/* when it last extended that entry */
	uint64_t pkts[2];
	uint64_t bytes[2];
};

/* What identifies a new connection; copied into it by lb_table_insert().
 * The reply tuple's destination is the orig tuple's source (NAT rewrites
 * one side only), and all four addresses are of one family. */
struct lb_conn_key {
	struct lb_tuple orig;
	struct lb_tuple reply;
	uint32_t service_id;
	struct lb_backend *backend;
};

struct lb_table;

/*
 * Creates a table for at most capacity connections. seed keys the tuple hash.
 * Returns NULL and sets errno (EINVAL, ENOMEM).
 */
struct lb_table *lb_table_new(size_t capacity, uint32_t seed, uint64_t now_ms);

/* Bytes lb_table_new(capacity, ...) allocates up front. */
size_t lb_table_mem_bytes(size_t capacity);

/* Frees the table and every connection in it; NULL is fine. */
void lb_table_free(struct lb_table *table);

/*
 * Finds the connection a packet with tuple t belongs to. Returns it locked,
 * with *dir set to the direction t travels in, or NULL. Release it with
 * lb_conn_unlock().
 */
struct lb_conn *lb_table_lookup(struct lb_table *table, const struct lb_tuple *t,
				enum lb_dir *dir);

/*
 * The same, taking no lock: only for a caller that knows no other thread
 * uses the table. It writes nothing, so in a forked copy-on-write snapshot
 * of an engine (a drill's) it copies no page.
 */
const struct lb_conn *lb_table_peek(const struct lb_table *table, const struct lb_tuple *t,
				    enum lb_dir *dir);

/*
 * Inserts a connection expiring at expires_ms. Returns 0 and the new
 * connection locked in *out, its mutable state zeroed; the caller fills it
 * before unlocking. Otherwise:
 *   -EEXIST      the orig tuple is taken; *out is that connection, locked
 *   -EADDRINUSE  another connection already has the reply tuple
 *   -ENOSPC      the table is full
 *   -EINVAL      the key's tuples are not of one connection (see above)
 */
int lb_table_insert(struct lb_table *table, const struct lb_conn_key *key,
		    uint64_t now_ms, uint64_t expires_ms, struct lb_conn **out);

/* c's tuple in direction dir (immutable: no lock needed). */
struct lb_tuple lb_conn_tuple(const struct lb_table *table, const struct lb_conn *c,
			      enum lb_dir dir);

static inline void lb_conn_unlock(struct lb_conn *c)
{
	pthread_spin_unlock(&c->lock);
}

/*
 * Removes connections whose expiry is at or before now_ms, at most budget of
 * them. fn is called for each, with the connection unreachable for anyone
 * else, just before it returns to the pool. Connections whose expiry moved
 * are put back on the wheel. One thread at a time. Returns the number removed.
 */
size_t lb_table_expire(struct lb_table *table, uint64_t now_ms, size_t budget,
		       void (*fn)(struct lb_conn *c, void *arg), void *arg);

/*
 * Removes c now and returns it to the pool. Control thread only; c must not
 * be locked by the caller. removed (may be NULL) is called as in
 * lb_table_expire().
 */
void lb_table_remove(struct lb_table *table, struct lb_conn *c,
		     void (*removed)(struct lb_conn *c, void *arg), void *arg);

/*
 * The wake function is called by lb_table_expire(), with the connection
 * locked, once its wake_ms has passed (and it has not expired); it must
 * clear wake_ms or move it into the future.
 */
void lb_table_set_wake(struct lb_table *table,
		       void (*wake)(struct lb_conn *c, uint64_t now_ms, void *arg), void *arg);

/*
 * Asks for c's wake function at when_ms (earlier only). Called with c locked,
 * from any thread.
 */
void lb_table_wake_at(struct lb_table *table, struct lb_conn *c, uint64_t when_ms);

/*
 * Calls fn on every connection, locked; fn must not call into the table.
 * Connections inserted or removed meanwhile may or may not be seen.
 */
void lb_table_foreach(struct lb_table *table,
		      void (*fn)(const struct lb_conn *c, void *arg), void *arg);

/*
 * Like lb_table_foreach() over at most nbuckets buckets starting at *cursor,
 * which it advances; returns 1 while buckets remain, 0 when the walk is done.
 */
int lb_table_foreach_step(struct lb_table *table, size_t *cursor, size_t nbuckets,
			  void (*fn)(const struct lb_conn *c, void *arg), void *arg);

size_t lb_table_count(const struct lb_table *table);
size_t lb_table_capacity(const struct lb_table *table);

#endif
