/*
 * lb_fastpath: the engine's side of a kernel fast path (fastpath.h), the
 * hooks through which it hands established connections to a packet path
 * outside it and takes back what that path saw.
 *
 * The engine stays the authority: it installs a connection when its
 * handshake completes, and removes it when it leaves the established state
 * (a FIN or RST, judged on the slow path) or expires. Before it judges any
 * packet of an installed connection it reads the fast path's view (window
 * edges) so the slow path's checks start where the kernel's stopped; on its
 * tick the control thread hands it what moved (lb_engine_fastpath_seen()),
 * which keeps expiry and the counters right.
 *
 * The hooks are called with the connection locked, from workers and from the
 * control thread: they must not call back into the engine.
 */
#ifndef LB_FASTPATH_H
#define LB_FASTPATH_H

#include <stdint.h>

#include "lb_addr.h"
#include "lb_tcp.h"

struct lb_engine;
struct lb_worker;

/* An established connection as the fast path needs it. */
struct lb_fastpath_conn {
	struct lb_tuple orig;		/* client -> VIP:port */
	struct lb_tuple reply;		/* backend -> client */
	struct lb_tcp_peer peer[2];	/* by direction of the sender */
	/* The tracker's takeover slack (lb_tcp.h), the larger direction's:
	 * the kernel widens its bounds by it while the grace period after a
	 * promotion lasts, as the engine does; 0 once tracking is exact. */
	uint32_t slack;
};

/* What the fast path saw of a connection. */
struct lb_fastpath_seen {
	struct lb_tcp_peer peer[2];	/* end, maxend, maxwin, as it tracked them */
	uint64_t last_seen_ms;		/* monotonic ms of its last packet; 0: none */
	uint64_t pkts[2], bytes[2];	/* by direction, since the previous report */
};

struct lb_fastpath_ops {
	/* Installs c; when installed already, moves its window edges forward
	 * to c's (the engine accepted a packet that went up to it). 0 or a
	 * negative errno (then the connection stays on the slow path). */
	int (*install)(void *arg, const struct lb_fastpath_conn *c);
	/* Fills out with the connection's view; 0, or -ENOENT. */
	int (*read)(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out);
	/* Removes it and fills out with its last view; 0, or -ENOENT. */
	int (*remove)(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out);
};

/* Starts handing connections to ops (NULL stops). Call before traffic flows. */
void lb_engine_set_fastpath(struct lb_engine *e, const struct lb_fastpath_ops *ops, void *arg);

/*
 * Applies what the fast path saw of the connection orig (control thread):
 * window edges move forward only, the idle timeout restarts from its last
 * packet, the packets and bytes are counted. Returns 0, or -ENOENT when the
 * engine has no such connection on the fast path.
 */
int lb_engine_fastpath_seen(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
			    const struct lb_fastpath_seen *s, uint64_t now_ms);

#endif
