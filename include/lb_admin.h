/*
 * lb_admin: changes to the running services without a configuration file,
 * what the runtime API (`lbctl weight|drain|undrain|add|remove|enable|
 * disable`) and the health checks do to the engine.
 *
 * Each call edits the engine's current service configuration and applies it
 * at once; it lasts until the next lb_engine_set_services() (a reload), which
 * replaces it with the file's. Health (lb_engine_backend_set_health()) is
 * the exception: it belongs to the backend, not to the configuration, and
 * survives reloads.
 *
 * Like lb_engine_set_services(), every function here is a control call: one
 * thread at a time, the engine's control thread. Errors: -ESRCH no such
 * service, -ENOENT no such backend in it, -EEXIST already there, -EINVAL a
 * backend of the wrong address family or port 0, -ENOSPC no backend slot
 * left, -ENOMEM.
 */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_backend.h"

struct lb_engine;

/* A service (vip, vport) and, for backend calls, one of its backends. */
struct lb_backend_ref {
	struct lb_addr vip;
	uint16_t vport;		/* host order */
	struct lb_addr addr;
	uint16_t port;		/* host order */
};

/* Sets a backend's weight (0 quiesces it); the scheduler is rebuilt. */
int lb_engine_backend_set_weight(struct lb_engine *e, const struct lb_backend_ref *ref,
				 uint32_t weight);

/* Drains (no new connections, established ones continue) or undrains. */
int lb_engine_backend_set_drain(struct lb_engine *e, const struct lb_backend_ref *ref,
				bool drain);

/* Adds a backend to the service ref names (ref's addr and port are ignored). */
int lb_engine_backend_add(struct lb_engine *e, const struct lb_backend_ref *ref,
			  const struct lb_backend_conf *be);

/* Removes a backend: it drains and is freed once its last connection ended. */
int lb_engine_backend_remove(struct lb_engine *e, const struct lb_backend_ref *ref);

/* Enables or disables a service: disabled, it refuses new connections. */
int lb_engine_service_set_enabled(struct lb_engine *e, const struct lb_backend_ref *ref,
				  bool enabled);

/*
 * Marks a backend up or down by its health: down takes no new connection.
 * Returns 1 if the state changed, 0 if it already was so, or -ESRCH/-ENOENT.
 */
int lb_engine_backend_set_health(struct lb_engine *e, const struct lb_backend_ref *ref,
				 bool up);

#endif
