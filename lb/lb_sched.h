/*
 * lb_sched: the balancing algorithms of a virtual service.
 *
 * Each algorithm installs its own functions (a strategy table, as HAProxy's
 * lb_* and IPVS's ip_vs_scheduler do). A scheduler is built from the list of
 * backends of one service when the config is loaded or reloaded and is
 * immutable afterwards except for atomics (round-robin cursors), so any
 * number of worker threads may call lb_sched_pick() at once without a lock.
 *
 * Algorithms (names as in the config, the same as ipvsadm's):
 *   rr   round robin over available backends
 *   wrr  weighted round robin, interleaved (a weight-3 and a weight-1 backend
 *        give A A B A, never A A A B), like IPVS wrr
 *   lc   least connections: fewest (active * 256 + inactive), IPVS overhead
 *   wlc  weighted least connections: fewest overhead / weight
 *   sh   source hashing on the client address, over a table of
 *        LB_SCHED_SH_SIZE buckets filled in proportion to weight
 *   mh   Maglev consistent hashing (Eisenbud et al., NSDI 2016) on the client
 *        address, table size LB_SCHED_MH_SIZE (prime); weights scale each
 *        backend's share of the table
 *
 * Unavailable backends (lb_backend_available() false) are never returned.
 * For sh and mh a bucket whose backend is unavailable falls through to the
 * following buckets, bounded by the table size, so a full or quiesced
 * backend moves only its own clients.
 */
#ifndef LB_SCHED_H
#define LB_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"

struct lb_backend;	/* backend_impl.h */

#define LB_SCHED_SH_SIZE 256
#define LB_SCHED_MH_SIZE 65537

struct lb_sched;

/* True when name is one of the algorithms above. */
int lb_sched_name_valid(const char *name);

/*
 * Builds a scheduler of the named algorithm over backends[0..n-1]. The array
 * is copied; the backends themselves are borrowed and must outlive the
 * scheduler. seed keys the hashes of sh and mh. Returns NULL and sets errno
 * (EINVAL for an unknown name, ENOMEM).
 */
struct lb_sched *lb_sched_new(const char *name, struct lb_backend *const *backends,
			      size_t n, uint32_t seed);

/*
 * Picks a backend for a new connection from client:cport. Returns NULL when
 * no backend is available. Thread-safe.
 */
struct lb_backend *lb_sched_pick(struct lb_sched *sched, const struct lb_addr *client,
				 uint16_t cport);

const char *lb_sched_name(const struct lb_sched *sched);

/* Frees the scheduler; NULL is fine. */
void lb_sched_free(struct lb_sched *sched);

#endif
