/*
 * Health checks in lbd (lbd_health.h): the checker's reports become loop
 * commands; one line in the log per change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent_check.h"
#include "lb_admin.h"
#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_health.h"
#include "lbd_loop.h"
#include "log.h"

struct lbd_health {
	struct agent_checker *checker;
	struct lbd_loop *loop;
};

static int report(void *arg, size_t idx, bool up, const char *why)
{
	struct lbd_health *h = arg;
	const struct agent_check_target *t = agent_checker_target(h->checker, idx);
	struct lb_backend_ref ref = { t->vip, t->vport, t->addr, t->port };
	char svc[64], be[64];
	int rc = lbd_loop_health(h->loop, &ref, up);

	lb_addr_format_port(&t->vip, t->vport, svc, sizeof(svc));
	lb_addr_format_port(&t->addr, t->port, be, sizeof(be));
	if (rc < 0) {
		log_warn("health: backend %s of %s: cannot post the change yet (%s); retrying",
			 be, svc, strerror(-rc));
		return rc;
	}
	if (up)
		log_info("health: backend %s of %s is up (%s check passed)", be, svc,
			 agent_check_kind_name(t->conf.kind));
	else
		log_warn("health: backend %s of %s is down: %s", be, svc, why);
	return 0;
}

struct carry {
	struct agent_check_target *targets;
	size_t n;
	struct lb_backend_ref orphans[64];	/* down, with no check any more */
	size_t norphans;
};

static void carry_state(const struct lb_backend_info *be, void *arg)
{
	struct carry *c = arg;
	bool checked = false;

	for (size_t i = 0; i < c->n; i++) {
		struct agent_check_target *t = &c->targets[i];

		if (t->vport == be->vport && t->port == be->port &&
		    lb_addr_equal(&t->vip, &be->vip) && lb_addr_equal(&t->addr, &be->addr)) {
			t->start_down = be->down;
			checked = true;
		}
	}
	if (be->down && !checked && c->norphans < sizeof(c->orphans) / sizeof(c->orphans[0]))
		c->orphans[c->norphans++] = (struct lb_backend_ref){ be->vip, be->vport,
								     be->addr, be->port };
}

int lbd_health_start(const struct lb_conf *conf, struct lb_engine *e, struct lbd_loop *loop,
		     struct lbd_health **out)
{
	struct carry c = { .n = conf->nchecks };
	struct lbd_health *h = NULL;
	int rc = 0;

	*out = NULL;
	c.targets = calloc(conf->nchecks + 1, sizeof(*c.targets));
	if (!c.targets)
		return -1;
	if (conf->nchecks)
		memcpy(c.targets, conf->checks, conf->nchecks * sizeof(*c.targets));
	lb_engine_foreach_backend(e, carry_state, &c);
	for (size_t i = 0; i < c.norphans; i++)
		lbd_loop_health(loop, &c.orphans[i], true);
	if (conf->nchecks == 0)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -1;
		goto out;
	}
	h->loop = loop;
	h->checker = agent_checker_new(c.targets, c.n, report, h);
	if (!h->checker || agent_checker_start(h->checker) < 0) {
		log_err("health checks: cannot start: %s", strerror(errno));
		lbd_health_stop(h);
		h = NULL;
		rc = -1;
		goto out;
	}
	log_info("health checks: %zu backends", c.n);
	*out = h;
out:
	free(c.targets);
	return rc;
}

void lbd_health_stop(struct lbd_health *h)
{
	if (!h)
		return;
	agent_checker_free(h->checker);
	free(h);
}

void lbd_health_annotate(struct lbd_health *h, const struct lb_backend_info *be, json_t *row)
{
	struct agent_check_status st;
	ssize_t idx;

	if (!h || (idx = agent_checker_find(h->checker, &be->vip, be->vport, &be->addr,
					     be->port)) < 0 ||
	    agent_checker_status(h->checker, (size_t)idx, &st) < 0) {
		json_object_set_new(row, "check", json_string("none"));
		return;
	}
	json_object_set_new(row, "check",
			    json_string(agent_check_kind_name(
				    agent_checker_target(h->checker, (size_t)idx)->conf.kind)));
	json_object_set_new(row, "checks", json_integer((json_int_t)st.checks));
	json_object_set_new(row, "check_failures", json_integer((json_int_t)st.failures));
	json_object_set_new(row, "last_error", st.last_error[0] ? json_string(st.last_error)
								 : json_null());
}
