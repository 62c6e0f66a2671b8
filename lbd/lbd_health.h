/*
 * lbd_health: lbd's side of the backend health checks (health.c). Starts
 * the checker (agent_check.h) over the configuration's `check` targets and
 * turns its reports into commands for the loop (lbd_loop_health()): a
 * backend that goes down gets no new connection, its established ones
 * continue. A reload stops the checker and starts one over the new
 * targets, carrying over what the engine knows (a backend that is down stays
 * down until its check passes `rise` times). Private to lbd/.
 */
#ifndef LBD_HEALTH_H
#define LBD_HEALTH_H

#include <jansson.h>

struct lb_backend_info;
struct lb_conf;
struct lb_engine;
struct lbd_health;
struct lbd_loop;

/*
 * Starts checking conf's targets. *out is NULL when there is nothing to
 * check. Backends the engine has down without a check any more are marked
 * up. Returns 0, or -1 (logged).
 */
int lbd_health_start(const struct lb_conf *conf, struct lb_engine *e, struct lbd_loop *loop,
		     struct lbd_health **out);

/* Stops the checks' thread and frees; NULL is fine. Before the loop goes. */
void lbd_health_stop(struct lbd_health *h);

/* Adds the backend's check, its counts and last error to its `backends` row. */
void lbd_health_annotate(struct lbd_health *h, const struct lb_backend_info *be, json_t *row);

#endif
