/*
 * Private to the engine library: struct lb_backend, the live object behind
 * a configured backend. Callers outside lb/ see only snapshots of it
 * (struct lb_backend_info, from lb_engine_foreach_backend()).
 *
 * Address and port are fixed for the life of the object; weight and
 * max_conns change only on a reload, under the engine's service lock, which
 * every reader of them (the schedulers) holds too. Live counters are atomics
 * because every worker thread updates them. A backend removed by a
 * reload is marked draining: it takes no new connection but lives on until
 * the last connection that points at it has expired, as IPVS keeps a removed
 * real server in its trash list while it still has connections.
 */
#ifndef LB_BACKEND_IMPL_H
#define LB_BACKEND_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_backend.h"

struct lb_backend {
	struct lb_backend_conf conf;
	uint32_t id;			/* slot in the engine's backend array */
	uint32_t service_id;		/* the service it belongs to */
	struct lb_addr vip;		/* that service's VIP and port */
	uint16_t vport;
	atomic_bool draining;		/* removed from config, waiting for conns to end */
	atomic_bool down;		/* failed its health check; kept across reloads */
	atomic_uint active;		/* connections in ESTABLISHED */
	atomic_uint inactive;		/* connections in any other state */
	atomic_uint_fast64_t conns_total;
	atomic_uint_fast64_t pkts_in, bytes_in;	  /* client -> backend */
	atomic_uint_fast64_t pkts_out, bytes_out; /* backend -> client */
};

/* Connections currently pointing at the backend. */
static inline uint32_t lb_backend_conns(const struct lb_backend *be)
{
	return atomic_load_explicit(&be->active, memory_order_relaxed) +
	       atomic_load_explicit(&be->inactive, memory_order_relaxed);
}

/*
 * True when a scheduler may give the backend a new connection: positive
 * weight, not draining (removed or drained at run time), not down, and
 * under its connection limit.
 */
static inline bool lb_backend_available(const struct lb_backend *be)
{
	if (be->conf.weight == 0 || be->conf.drain ||
	    atomic_load_explicit(&be->draining, memory_order_relaxed) ||
	    atomic_load_explicit(&be->down, memory_order_relaxed))
		return false;
	return be->conf.max_conns == 0 || lb_backend_conns(be) < be->conf.max_conns;
}

#endif
