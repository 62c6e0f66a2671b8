/*
 * drill_pair: an active and a standby engine in one process, linked by the
 * real sync stack (sync_node: records, batching, the authenticated reliable
 * link) over a simulated network with loss and delay, on a simulated clock.
 * It is what `lbdrill replay` fails over: everything but the kernel queue
 * and keepalived, with the same code lbd runs.
 *
 * Time: the caller drives a monotonic millisecond clock forward with
 * drill_pair_advance(); datagrams arrive at send time + delay, and both
 * nodes' and engines' timers run in order in between.
 */
#ifndef DRILL_PAIR_H
#define DRILL_PAIR_H

#include <stdint.h>

#include "lb_conf.h"
#include "lb_engine.h"

struct drill_pair_conf {
	const struct lb_conf *conf;	/* services and engine settings */
	size_t max_conns;		/* 0: the configuration's */
	double loss;			/* probability a sync datagram is lost */
	uint32_t delay_ms;		/* one-way delay of the sync link */
	uint32_t flush_delay_ms;	/* from a batched record's flush to its
					 * datagram leaving the node; 0: 1 ms (an
					 * urgent record leaves before the next
					 * packet: lbd's eventfd wake) */
	int defer;			/* zero-loss mode */
	uint32_t interval_ms;		/* replication interval; 0: the conf's sync
					 * section, else 200 */
	uint64_t seed;			/* of the loss pattern */
};

struct drill_pair;

/*
 * Builds the pair at time now_ms: node 1 is master, node 2 joins and
 * resyncs (time advances until it is ready, at most 5 s; *now_ms is moved).
 * Returns NULL and a message in err.
 */
struct drill_pair *drill_pair_new(const struct drill_pair_conf *conf, uint64_t *now_ms,
				  char *err, size_t errlen);
void drill_pair_free(struct drill_pair *p);

/* Runs the simulated network and timers up to now_ms. */
void drill_pair_advance(struct drill_pair *p, uint64_t now_ms);

/*
 * Hands a packet to the current active engine. In defer mode a packet that
 * gets a ticket is held as lbd holds it: simulated time runs until the peer
 * acknowledges the ticket or the defer timeout passes; *now_ms moves on by
 * that wait (the connection's setup is that much later).
 */
enum lb_verdict drill_pair_packet(struct drill_pair *p, struct lb_packet *pkt, uint64_t *now_ms);

/*
 * The active dies at *now_ms: whatever it had not yet sent is lost (also
 * batched datagrams flushed less than flush_delay_ms before, and the urgent
 * records of its last packet within the next millisecond), what was in flight
 * still arrives; then the standby becomes master. *now_ms moves on by the
 * delivery of what was in flight.
 */
void drill_pair_failover(struct drill_pair *p, uint64_t *now_ms);

/* The engine that is master now (the standby after a failover). */
struct lb_engine *drill_pair_active(struct drill_pair *p);

/* The other one. */
struct lb_engine *drill_pair_standby(struct drill_pair *p);

/*
 * True while the active's sync node takes its peer for up (after a
 * failover, until the dead one's heartbeats are missed): in defer mode a
 * packet may then be held.
 */
int drill_pair_peer_up(struct drill_pair *p);

#endif
