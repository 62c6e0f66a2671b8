/*
 * lb_backend: one real server behind a virtual service, as the caller sees
 * it. struct lb_backend_conf is what the configuration says of it;
 * struct lb_backend_info is a plain-value snapshot of the engine's live
 * backend (lb_engine_foreach_backend()), whose own layout is private to the
 * engine.
 *
 * A backend removed by a reload is draining: it takes no new connection but
 * lives on (and is reported) until its last connection has expired, as IPVS
 * keeps a removed real server in its trash list while it still has
 * connections.
 */
#ifndef LB_BACKEND_H
#define LB_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_addr.h"

struct lb_backend_conf {
	struct lb_addr addr;
	uint16_t port;		/* host order */
	uint32_t weight;	/* 0: quiesced, no new connections */
	uint32_t max_conns;	/* 0: unlimited */
	bool drain;		/* set at run time (lb_admin.h): no new connections,
				 * established ones continue; a reload clears it */
};

/* A copy of one backend's settings and counters, taken under the engine's
 * service lock; the counters are read one by one, not as a unit. */
struct lb_backend_info {
	uint32_t service_id;	/* stable across reloads */
	struct lb_addr vip;	/* the service's VIP and port (host order) */
	uint16_t vport;
	struct lb_addr addr;	/* the backend's address and port (host order) */
	uint16_t port;
	uint32_t weight;
	uint32_t max_conns;	/* 0: unlimited */
	bool draining;		/* removed by a reload, waiting for conns to end */
	bool drain;		/* drained at run time (lb_admin.h) */
	bool down;		/* failed its health check (lb_admin.h) */
	uint32_t active;	/* connections in ESTABLISHED */
	uint32_t inactive;	/* connections in any other state */
	uint64_t conns_total;
	uint64_t pkts_in, bytes_in;	/* client -> backend */
	uint64_t pkts_out, bytes_out;	/* backend -> client */
};

#endif
