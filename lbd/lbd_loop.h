/*
 * lbd_loop: the engine's control thread (loop.c). The engine takes
 * lb_engine_packet() from any number of workers but its control calls
 * (lb_engine_tick(), lb_engine_set_services(), lb_engine_set_role(), the
 * imports and exports of replication) from one thread only; in lbd that
 * thread is the loop, with or without a sync section. It ticks the engine
 * every LBD_LOOP_TICK_MS, runs the sync node (lbd_sync.h) when there is one,
 * and executes the commands other threads post to it.
 *
 * Commands: the caller posts one into a bounded queue, wakes the loop and
 * waits at most LBD_LOOP_WAIT_MS for the result. A command the loop has not
 * taken by then is withdrawn (not applied); one it is running finishes
 * anyway, and frees itself when the loop is done with it. Only one thread
 * (main's) posts commands that wait and starts or frees the loop; the
 * health checks' thread posts lbd_loop_health(), which does not wait, and
 * must be stopped before the loop is freed. Private to lbd/.
 */
#ifndef LBD_LOOP_H
#define LBD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_admin.h"
#include "lb_repl.h"

#define LBD_LOOP_TICK_MS 100	/* lb_engine_tick() period */
#define LBD_LOOP_WAIT_MS 5000	/* how long a caller waits for a command */
#define LBD_LOOP_QUEUE 32	/* commands queued at most */

struct lb_conf;
struct lb_engine;
struct lbd_loop;
struct lbd_sync;

/*
 * A loop over engine e and sync (NULL without a sync section; it must
 * outlive the loop). Not running yet: until lbd_loop_start() the caller may
 * still make control calls itself. NULL and errno on failure.
 */
struct lbd_loop *lbd_loop_new(struct lb_engine *e, struct lbd_sync *sync);

/* Feeds back the kernel fast path (lbd_fastpath.h) on every tick; before
 * lbd_loop_start(). f must outlive the loop. */
struct lbd_fastpath;
void lbd_loop_set_fastpath(struct lbd_loop *l, struct lbd_fastpath *f);

/* Kicks the connections of every takeover (lbd_kick.h); before
 * lbd_loop_start(), k must outlive the loop. */
struct lbd_kick;
void lbd_loop_set_kick(struct lbd_loop *l, struct lbd_kick *k);

/*
 * Watches VIP arrivals (lbd_vipwatch.h); before lbd_loop_start(), w must
 * outlive the loop. With a sync section, a VIP that appears while we are
 * backup makes us master at once (act: sync.vip_takeover) when we are ready
 * and the peer is not a master heard within three heartbeats; otherwise
 * the arrival is counted and keepalived's notify decides, and meanwhile a
 * peer that falls silent or steps down is a takeover too (peer_silent).
 */
struct lbd_vipwatch;
void lbd_loop_set_vipwatch(struct lbd_loop *l, struct lbd_vipwatch *w, bool act);

/* Takeover counters and figures (lbd_takeover.h): for the workers' probe
 * and `lbctl stats`; valid as long as the loop. */
struct lbd_takeover *lbd_loop_takeover(struct lbd_loop *l);

/* Starts the thread; from then on it alone calls the engine's control functions. 0 or -errno. */
int lbd_loop_start(struct lbd_loop *l);

/* Stops and joins the thread, then frees; NULL is fine. */
void lbd_loop_free(struct lbd_loop *l);

/*
 * Gives the engine conf's services (lb_engine_set_services()) on the loop
 * thread and waits. conf's services are lent to the command: they are back
 * in conf on return, except after -EINPROGRESS, when the command keeps (and
 * later frees) them and conf is left without services. Returns 0, the
 * engine's negative errno, -ETIMEDOUT (the loop did not take the command in
 * time: nothing changed), -EINPROGRESS (it took it but did not finish in
 * time: the change may still apply) or -EBUSY (the queue is full).
 */
int lbd_loop_set_services(struct lbd_loop *l, struct lb_conf *conf);

/*
 * Sets the role of the sync node (first: as master it must answer resync
 * requests by the time the engine forwards) and of the engine, on the loop
 * thread; a change is logged once. *was gets the previous role. Returns 0 or
 * -ETIMEDOUT, -EINPROGRESS, -EBUSY as above.
 */
int lbd_loop_set_role(struct lbd_loop *l, enum lb_role role, enum lb_role *was);

/* Role changes made so far (any thread). */
uint64_t lbd_loop_role_changes(struct lbd_loop *l);

/* A runtime change (lb_admin.h), as `lbctl weight|drain|...` asks for it. */
enum lbd_admin_kind {
	LBD_ADMIN_WEIGHT,	/* value: the weight */
	LBD_ADMIN_DRAIN,	/* value: 1 drain, 0 undrain */
	LBD_ADMIN_ADD,		/* backend: the new backend */
	LBD_ADMIN_REMOVE,
	LBD_ADMIN_ENABLE,	/* value: 1 enable, 0 disable the service */
};

struct lbd_admin_op {
	enum lbd_admin_kind kind;
	struct lb_backend_ref ref;
	uint32_t value;
	struct lb_backend_conf backend;
};

/*
 * Applies op on the loop thread and waits. Returns the engine's result
 * (lb_admin.h: -ESRCH, -ENOENT, -EEXIST, ...) or -ETIMEDOUT, -EINPROGRESS,
 * -EBUSY as above.
 */
int lbd_loop_admin(struct lbd_loop *l, const struct lbd_admin_op *op);

/*
 * Marks a backend up or down by its health (lb_engine_backend_set_health())
 * on the loop thread, without waiting: the health checks' thread calls it.
 * Returns 0 once queued, -EBUSY when the queue is full (try again later) or
 * -ENOMEM.
 */
int lbd_loop_health(struct lbd_loop *l, const struct lb_backend_ref *ref, bool up);

#endif
