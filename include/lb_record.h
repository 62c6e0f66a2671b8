/*
 * lb_record: what the engine replicates, as plain values: one connection's
 * state and one persistence entry. The sync codec (sync_codec.h) turns these
 * into wire records and back; it needs nothing else of the engine.
 */
#ifndef LB_RECORD_H
#define LB_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_tcp.h"

/* A connection's replicated state. */
struct lb_conn_state {
	struct lb_tuple orig;		/* client -> VIP:port */
	struct lb_addr backend;
	uint16_t backend_port;
	uint64_t created_us;
	uint32_t version;
	struct lb_tcp tcp;		/* slack and used_slack are not replicated */
	uint32_t expires_ms;		/* time left to its idle timeout */
	uint32_t rate[2];		/* recent bytes/s by direction */
	uint32_t persist_ms;
};

/* The same incarnation of the same connection: tuple and creation time. */
static inline bool lb_conn_state_same_incarnation(const struct lb_conn_state *a,
						  const struct lb_conn_state *b)
{
	return a->created_us == b->created_us && lb_tuple_equal(&a->orig, &b->orig);
}

/* A persistence entry's replicated state. */
struct lb_persist_state {
	struct lb_addr vip;
	uint16_t vport;
	struct lb_addr client;
	struct lb_addr backend;
	uint16_t backend_port;
	uint32_t expires_ms;		/* time left */
};

#endif
