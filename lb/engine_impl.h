/*
 * Private to the engine's files (engine.c, service.c): the engine's layout.
 */
#ifndef LB_ENGINE_IMPL_H
#define LB_ENGINE_IMPL_H

#include <pthread.h>

#include "backend_impl.h"
#include "lb_engine.h"
#include "lb_fastpath.h"
#include "lb_persist.h"
#include "lb_sched.h"
#include "table.h"

#define LB_ENGINE_MAX_BACKENDS 4096

struct lb_service {
	struct lb_addr vip;
	uint16_t port;
	uint32_t id;			/* stable across reloads */
	uint32_t persistence_ms;
	char scheduler[8];		/* as configured, for lb_admin.h's edits */
	bool disabled;			/* new connections refused */
	struct lb_backend **backends;
	size_t nbackends;
	struct lb_sched *sched;
};

/* One configuration generation, replaced whole by a reload. */
struct lb_svcset {
	struct lb_service *svcs;
	size_t n;
	uint32_t *index;		/* open addressing: service index + 1, 0 empty */
	size_t index_size;		/* power of two */
};

/*
 * The half-open connections in the order they were created, by tuple and
 * creation time (never by pointer: only the control thread frees entries,
 * and a slot may be reused by the time a record is looked at). A full ring
 * evicts the connection of its oldest record if that one is still half-open,
 * so at most cap half-open entries live at once and a SYN flood cannot push
 * out connections that finished their handshake.
 */
struct lb_embryo {
	struct lb_tuple orig;
	uint64_t created_us;
};

struct lb_embryos {
	pthread_mutex_t lock;
	struct lb_embryo *ring;
	size_t cap, head, n;
};

struct lb_engine {
	struct lb_engine_conf conf;
	uint32_t timeout_ms[LB_TCP_STATE_COUNT];
	struct lb_table *table;
	struct lb_persist *persist;

	/* Readers: workers creating connections, tick. Writer: reloads and
	 * freeing drained backends, both from the control thread. */
	pthread_rwlock_t svc_lock;
	struct lb_svcset *svcset;
	/* Written only by the control thread (under svc_lock as writer). */
	struct lb_backend *backends[LB_ENGINE_MAX_BACKENDS];
	size_t backends_end;		/* one past the highest slot ever used */
	uint32_t next_service_id;

	pthread_mutex_t workers_lock;
	struct lb_worker *workers[LB_ENGINE_MAX_WORKERS];
	size_t nworkers;

	atomic_int role;		/* enum lb_role */
	atomic_uint_fast64_t promoted_ms; /* first packet as master; 0: none yet */
	atomic_uint_fast64_t clock_mono_ms, clock_real_us;
	const struct lb_repl_ops *repl;	/* NULL: no replication */
	void *repl_arg;
	void (*import_watch)(void *arg, const struct lb_tuple *orig);	/* NULL: none */
	void *import_watch_arg;
	struct lb_repl_conf repl_conf;
	struct lb_worker *tick_worker;	/* counts for the control thread's callbacks */
	struct lb_embryos embryos;
	atomic_uint_fast64_t embryo_evicted_ms;	/* last eviction; 0: none yet */
	const struct lb_fastpath_ops *fast;	/* NULL: no kernel fast path */
	void *fast_arg;
};

/* The fast path's part of a packet of c (locked), lb/fastpath.c: before
 * tracking, catch up with what the kernel saw; after, install or remove. */
void lb_fastpath_pull(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c);
void lb_fastpath_after(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c);

/* c (locked) leaves the table: take it off the fast path. */
void lb_fastpath_forget(struct lb_engine *e, struct lb_conn *c);

/* c (locked) took a state from the peer: a standby keeps its fast path
 * ready, so that a takeover has nothing left to install. */
void lb_fastpath_import(struct lb_engine *e, struct lb_conn *c);

/* Replicates c (locked) after it moved, when due (engine.c). Returns the
 * defer ticket, 0 when none. */
uint64_t lb_repl_after_packet(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			      uint8_t before, uint64_t now_ms);

/* Wall-clock microseconds for a monotonic time (see lb_engine_set_clock). */
uint64_t lb_engine_real_us(struct lb_engine *e, uint64_t now_ms);

/* Fills st from c (locked). */
void lb_conn_export(const struct lb_table *t, const struct lb_conn *c, uint64_t now_ms,
		    struct lb_conn_state *st);

/* Gives back c's place in its backend's live counts (c leaving the table). */
void lb_conn_release_backend(struct lb_conn *c);

/* Moves a connection between its backend's active and inactive counts. */
void lb_backend_state_change(struct lb_backend *be, uint8_t from, uint8_t to);

/* Service of a VIP:port in the current set, or NULL; svc_lock held. */
struct lb_service *lb_svcset_find(const struct lb_svcset *set, const struct lb_addr *vip,
				  uint16_t port);

/* Service with that id, or NULL; svc_lock held. */
struct lb_service *lb_svcset_find_id(const struct lb_svcset *set, uint32_t id);

void lb_svcset_free(struct lb_svcset *set);

/* Frees drained backends that have no connection left; control thread. */
size_t lb_engine_reclaim_backends(struct lb_engine *e);

#endif
