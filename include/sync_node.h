/*
 * sync_node: one node's side of state replication: the engine's replication
 * hooks, the batching of records into datagrams, bulk resync (answering and
 * asking), readiness, and the release of deferred packets. It sits between
 * the engine (lb_repl.h), the record codec (sync_codec.h) and the link
 * (sync_link.h), and like them does no I/O and reads no clock: lbd feeds it
 * datagrams and time, and so can a drill that links two engines in-process.
 *
 * Threads: the repl hooks (sync_node_repl_ops) run on worker threads and only
 * append to a bounded queue; everything else runs on the engine's control
 * thread, the one that calls lb_engine_tick().
 *
 * Readiness (what keepalived's track script asks): a node that starts asks
 * its peer for a bulk resync and is ready when the peer's ResyncDone and every
 * datagram before it have arrived; or at once when the peer says it is not
 * master (nobody holds a better table); or when no peer has been heard for
 * resync_timeout_ms. A later resync (after loss on the link) does not take
 * readiness away, since a nearly complete table is better than none when the
 * master dies. What does is silence: a ready node that is not master and
 * has not heard its peer for stale_ms (the sync link cut while the master
 * lives on) is stale, and ready again only after a bulk resync from the
 * peer once it is heard again; being alone does not do.
 */
#ifndef SYNC_NODE_H
#define SYNC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "lb_repl.h"
#include "sync_link.h"

struct sync_node_conf {
	struct sync_link_conf link;
	uint32_t resync_timeout_ms;	/* alone this long: ready without a resync */
	uint32_t stale_ms;		/* a backup's peer silent this long: not ready
					 * until resynced (0: never) */
	uint32_t flush_ms;		/* longest a record waits for company */
	size_t queue;			/* records queued between flushes */
	int defer;			/* flush at once and ask for acks */
};

struct sync_node_ops {
	/* A datagram for the wire; must not block. */
	void (*send)(void *arg, const uint8_t *buf, size_t len);
	/* A record wants out now (defer mode); from any thread: arrange for
	 * sync_node_tick() to run soon. */
	void (*wake)(void *arg);
	/* The peer holds every record up to this ticket. */
	void (*released)(void *arg, uint64_t ticket);
};

struct sync_node;

/*
 * Creates the node over engine e; w counts the control thread's imports.
 * Returns NULL and sets errno.
 */
struct sync_node *sync_node_new(const struct sync_node_conf *conf, struct lb_engine *e,
				struct lb_worker *w, const struct sync_node_ops *ops, void *arg,
				uint64_t now_ms);
void sync_node_free(struct sync_node *n);

/* The hooks to give lb_engine_set_repl() with the node as their argument. */
const struct lb_repl_ops *sync_node_repl_ops(void);

/* Joins the pair: asks the peer for a bulk resync. */
void sync_node_start(struct sync_node *n, uint64_t now_ms);

void sync_node_input(struct sync_node *n, const uint8_t *buf, size_t len, uint64_t now_ms);
void sync_node_tick(struct sync_node *n, uint64_t now_ms);
uint64_t sync_node_next_ms(struct sync_node *n, uint64_t now_ms);

/* Our role as heartbeats tell it; only a master answers resync requests. */
void sync_node_set_role(struct sync_node *n, enum lb_role role);

/* 1 when the peer is alive and says it is ready (defer mode defers then). */
int sync_node_peer_up(struct sync_node *n);

/* 1 when ready to become master; else 0 and the reason in why. */
int sync_node_ready(struct sync_node *n, uint64_t now_ms, char *why, size_t len);

/* The node's link, for what the node does not wrap (sync_link_set_key(),
 * sync_link_key_state(), sync_link_stats()); call it as the node is called. */
struct sync_link *sync_node_link(struct sync_node *n);

/* Every counter of the node and its link, as name/value. */
void sync_node_stats(struct sync_node *n, uint64_t now_ms,
		     void (*fn)(void *arg, const char *name, uint64_t value), void *arg);

#endif
