/*
 * lb_persist: client persistence ("sticky" clients) of virtual services.
 *
 * Maps (service id, client address) to the backend that client's connections
 * go to, as IPVS persistence templates do. An entry lives `timeout` after the
 * later of the client's last new connection and the end of its last
 * connection (the engine calls lb_persist_touch() for both). Capacity is fixed
 * at creation: no allocation after lb_persist_new(). All calls are thread-safe
 * (one mutex; only new connections and expiry take it).
 */
#ifndef LB_PERSIST_H
#define LB_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"

struct lb_backend;	/* backend_impl.h */

struct lb_persist;

/* One entry, as handed to lb_persist_foreach() and taken by lb_persist_set(). */
struct lb_persist_entry {
	uint32_t service_id;
	struct lb_addr client;
	struct lb_backend *backend;
	uint64_t expires_ms;	/* CLOCK_MONOTONIC milliseconds */
};

/*
 * Creates a table for at most capacity entries. seed keys the hash; now_ms is
 * the current time. Returns NULL and sets errno (ENOMEM, EINVAL for 0).
 */
struct lb_persist *lb_persist_new(size_t capacity, uint32_t seed, uint64_t now_ms);

/* Bytes lb_persist_new(capacity, ...) allocates up front. */
size_t lb_persist_mem_bytes(size_t capacity);
void lb_persist_free(struct lb_persist *p);

/*
 * Returns the backend of a live entry for (service_id, client), or NULL.
 * An entry past its expiry is treated as absent.
 */
struct lb_backend *lb_persist_lookup(struct lb_persist *p, uint32_t service_id,
				     const struct lb_addr *client, uint64_t now_ms);

/*
 * Inserts or replaces the entry, expiring at expires_ms (an existing entry's
 * expiry never moves backwards). Returns 0, or -ENOSPC when the table is full
 * (counted by the caller).
 */
int lb_persist_set(struct lb_persist *p, const struct lb_persist_entry *e);

/* Extends an existing entry to at least expires_ms; no entry, no effect. */
void lb_persist_touch(struct lb_persist *p, uint32_t service_id,
		      const struct lb_addr *client, uint64_t expires_ms);

/* Frees entries that expired at or before now_ms; returns how many. */
size_t lb_persist_expire(struct lb_persist *p, uint64_t now_ms);

/* Removes every entry pointing at be (before be is freed); returns how many. */
size_t lb_persist_forget_backend(struct lb_persist *p, const struct lb_backend *be);

/* Removes every entry of a service (service removed by a reload). */
size_t lb_persist_forget_service(struct lb_persist *p, uint32_t service_id);

size_t lb_persist_count(struct lb_persist *p);

/* Calls fn on a copy of each live entry, under the lock: fn must not call back. */
void lb_persist_foreach(struct lb_persist *p, uint64_t now_ms,
			void (*fn)(const struct lb_persist_entry *e, void *arg), void *arg);

#endif
