/*
 * lb_repl: the engine's side of replication, the narrow interface the sync
 * node (sync_node.h) drives: roles, the hooks through which a master emits
 * its connections' state, and the imports and exports of a standby and a
 * bulk resync. Record types are in lb_record.h; the rest of the engine's
 * interface is in lb_engine.h.
 */
#ifndef LB_REPL_H
#define LB_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "lb_record.h"

struct lb_engine;
struct lb_worker;

/*
 * ---- Replication (the sync channel's side of the engine) ----
 *
 * Roles: a master forwards and emits its connections' state through the
 * replication hooks; a backup or fault node forwards nothing (every packet is
 * dropped as drop_not_master) and takes state in through the import
 * functions, straight into the live table, so promotion has no work left to
 * do. Role changes, imports and exports must run on the engine's control
 * thread (the one that calls lb_engine_tick()); lb_engine_role() may be
 * called from any thread.
 */

enum lb_role { LB_ROLE_MASTER = 1, LB_ROLE_BACKUP = 2, LB_ROLE_FAULT = 3 };

const char *lb_role_name(enum lb_role role);

/* Sets the role; returns the previous one (the same when nothing changed). */
enum lb_role lb_engine_set_role(struct lb_engine *e, enum lb_role role);
enum lb_role lb_engine_role(struct lb_engine *e);

/*
 * Ties monotonic milliseconds to wall-clock microseconds, which order the
 * incarnations of a tuple across the pair (created_us).
 */
void lb_engine_set_clock(struct lb_engine *e, uint64_t mono_ms, uint64_t real_us);

struct lb_repl_ops {
	/* A connection changed (created, state change, or a window refresh
	 * due). Called with the connection locked: copy and return quickly.
	 * urgent: send without waiting to batch (a burst that reached
	 * max_lag); creations, state changes and refreshes wait for the next
	 * flush, where a connection's changes coalesce (defer mode sends every
	 * record at once: a packet waits for it). Returns
	 * a ticket to hold a deferred packet for, or 0: do not hold (no
	 * defer, or no peer able to acknowledge it). */
	uint64_t (*conn)(void *arg, const struct lb_conn_state *st, int urgent);
	/* A connection expired. */
	void (*conn_delete)(void *arg, const struct lb_conn_state *st);
	/* A persistence entry was set or extended. */
	void (*persist)(void *arg, const struct lb_persist_state *st);
};

struct lb_repl_conf {
	uint32_t interval_ms;	/* window refresh while data flows */
	int defer;		/* tickets on the packets that create a connection */
	uint32_t grace_ms;	/* how long after a promotion imported connections
				 * keep their takeover slack; 0: max(3 s, 10 intervals) */
	uint32_t max_lag;	/* bytes a connection may move between updates,
				 * whatever the interval; 0: 1 MiB */
};

/* Starts emitting through ops (NULL stops). Call before traffic flows. */
void lb_engine_set_repl(struct lb_engine *e, const struct lb_repl_ops *ops, void *arg,
			const struct lb_repl_conf *conf);

/* How long after a promotion imported connections keep their takeover
 * slack (lb_repl_conf.grace_ms, its default applied). */
uint32_t lb_engine_grace_ms(const struct lb_engine *e);

enum lb_import_result {
	LB_IMPORT_NEW, LB_IMPORT_UPDATED, LB_IMPORT_STALE, LB_IMPORT_REGRESS,
	LB_IMPORT_NO_SERVICE, LB_IMPORT_NO_BACKEND, LB_IMPORT_FULL, LB_IMPORT_CLASH,
	LB_IMPORT_IGNORED,
};

/*
 * Applies a connection state from the peer. The newer state wins: a newer
 * incarnation (created_us) replaces an older one; within one incarnation a
 * higher version applies unless its TCP state or a window edge would move
 * backwards (REGRESS). Ignored while master. Counted in w.
 */
enum lb_import_result lb_engine_import_conn(struct lb_engine *e, struct lb_worker *w,
					    const struct lb_conn_state *st, uint64_t now_ms);

/*
 * Calls fn(arg, orig) with the client-side tuple of every connection state
 * and deletion handed to lb_engine_import_conn() or _delete(), before it
 * is applied, whatever comes of it (NULL stops): an import is the only way
 * a standby's entry changes between its ticks, so a drill that caches what
 * it saw of an entry learns when to look again. The caller's thread.
 */
void lb_engine_set_import_watch(struct lb_engine *e,
				void (*fn)(void *arg, const struct lb_tuple *orig), void *arg);

/* Removes the connection if it is that incarnation or older. Returns 1 if removed. */
int lb_engine_import_delete(struct lb_engine *e, struct lb_worker *w,
			    const struct lb_conn_state *st, uint64_t now_ms);

/* Applies a persistence entry. Returns 0 or a negative errno. */
int lb_engine_import_persist(struct lb_engine *e, struct lb_worker *w,
			     const struct lb_persist_state *st, uint64_t now_ms);

/*
 * The state this node holds of like's incarnation (its tuple and
 * created_us), as replication would send it: what a peer's close record is
 * applied to. Returns 0, or -ENOENT (none, or another incarnation).
 */
int lb_engine_repl_held(struct lb_engine *e, const struct lb_conn_state *like, uint64_t now_ms,
			struct lb_conn_state *out);

/*
 * The sync node dropped st's record without sending it: the incarnation
 * opened and closed inside one flush before any record of it left, so the
 * peer never heard of it. Unless a later record of it was made since, the
 * connection is marked so that neither its expiry (ConnDelete) nor a bulk
 * resync tells the peer about it. Control thread.
 */
void lb_engine_repl_unsent(struct lb_engine *e, const struct lb_conn_state *st);

/*
 * Exports the table for a bulk resync, a slice at a time: calls fn for the
 * connections of up to nbuckets buckets from *cursor (start at 0). Returns 1
 * while more remain.
 */
int lb_engine_export_conns(struct lb_engine *e, size_t *cursor, size_t nbuckets,
			   uint64_t now_ms,
			   void (*fn)(void *arg, const struct lb_conn_state *st), void *arg);

/* Exports every live persistence entry. */
void lb_engine_export_persist(struct lb_engine *e, uint64_t now_ms,
			      void (*fn)(void *arg, const struct lb_persist_state *st),
			      void *arg);

#endif
