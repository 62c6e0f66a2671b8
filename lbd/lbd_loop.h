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
 * (main's) posts commands and starts or frees the loop. Private to lbd/.
 */
#ifndef LBD_LOOP_H
#define LBD_LOOP_H

#include "lb_repl.h"

#define LBD_LOOP_TICK_MS 100	/* lb_engine_tick() period */
#define LBD_LOOP_WAIT_MS 5000	/* how long a caller waits for a command */
#define LBD_LOOP_QUEUE 8	/* commands queued at most */

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

#endif
