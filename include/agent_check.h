/*
 * agent_check: backend health checks (agent/check.c), run by lbd in a thread
 * of their own, outside the packet path.
 *
 * struct agent_check_conf is what the configuration says of one check
 * (a `check` group in a service, for all its backends, or in a backend);
 * struct agent_check_target is one backend to check with it. The checker
 * runs every target's check every interval and passes the results through
 * rise/fall hysteresis (in one place, as keepalived and HAProxy do): a
 * backend starts up, goes down after `fall` failures in a row and comes
 * back after `rise` successes in a row. Each change is handed to the
 * caller's report function, from the checker's thread.
 *
 * Kinds:
 *   tcp    a TCP connect to the backend (or `port`) within `timeout`;
 *   http,  a GET of `path` (libcurl's multi interface) answered with
 *   https  `expect` (default 200) and, when set, a body containing `body`;
 *          https does not verify the backend's certificate, as keepalived's
 *          SSL_GET does not;
 *   exec   `command` run by /bin/sh with LB_BACKEND_ADDR and LB_BACKEND_PORT
 *          in its environment; exit status 0 is success; past `timeout` its
 *          process group is killed and the check failed.
 */
#ifndef AGENT_CHECK_H
#define AGENT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "lb_addr.h"

enum agent_check_kind {
	AGENT_CHECK_NONE = 0,
	AGENT_CHECK_TCP,
	AGENT_CHECK_HTTP,
	AGENT_CHECK_HTTPS,
	AGENT_CHECK_EXEC,
};

struct agent_check_conf {
	enum agent_check_kind kind;
	uint32_t interval_ms;		/* between the starts of two checks */
	uint32_t timeout_ms;		/* one check, at most */
	uint32_t rise, fall;		/* successes to come up, failures to go down */
	uint16_t port;			/* 0: the backend's port */
	uint32_t expect;		/* http(s): the status wanted */
	char path[256];			/* http(s): what to GET */
	char body[128];			/* http(s): a text the body must contain; "" any */
	char command[512];		/* exec */
};

struct agent_check_target {
	struct lb_addr vip;		/* the service (host-order port) */
	uint16_t vport;
	struct lb_addr addr;		/* the backend */
	uint16_t port;
	struct agent_check_conf conf;
	bool start_down;		/* the engine has it down already (after a reload) */
};

/*
 * The settings' helpers are inline: the configuration parser (conf/) uses
 * them and must not link against the checker.
 */
static const char *const agent_check_kind_names[] = { "none", "tcp", "http", "https", "exec" };

/* Fills conf with the defaults: tcp, every 2 s, timeout 2 s, rise 2, fall 3, expect 200, path "/". */
static inline void agent_check_conf_defaults(struct agent_check_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->kind = AGENT_CHECK_TCP;
	conf->interval_ms = 2000;
	conf->timeout_ms = 2000;
	conf->rise = 2;
	conf->fall = 3;
	conf->expect = 200;
	conf->path[0] = '/';
}

/* "tcp", "http", "https", "exec"; AGENT_CHECK_NONE for anything else. */
static inline enum agent_check_kind agent_check_kind_parse(const char *name)
{
	for (int k = AGENT_CHECK_TCP; k <= AGENT_CHECK_EXEC; k++)
		if (strcmp(name, agent_check_kind_names[k]) == 0)
			return (enum agent_check_kind)k;
	return AGENT_CHECK_NONE;
}

static inline const char *agent_check_kind_name(enum agent_check_kind kind)
{
	return kind <= AGENT_CHECK_EXEC ? agent_check_kind_names[kind] : "?";
}

/*
 * Called from the checker's thread when target idx goes up or down (why: the
 * last failure, "" when it came up). Returns 0, or a negative errno to be
 * called again with the same change after the next check.
 */
typedef int (*agent_check_report_fn)(void *arg, size_t idx, bool up, const char *why);

struct agent_checker;

/*
 * A checker of n targets (copied). Not running until agent_checker_start().
 * NULL and errno on failure.
 */
struct agent_checker *agent_checker_new(const struct agent_check_target *targets, size_t n,
					agent_check_report_fn report, void *arg);

/* Starts the thread. 0 or a negative errno. */
int agent_checker_start(struct agent_checker *c);

/* Stops the thread (killing running commands) and frees; NULL is fine. */
void agent_checker_free(struct agent_checker *c);

/* What `lbctl backends` shows of a target. */
struct agent_check_status {
	bool up;
	uint64_t checks, failures;	/* checks done, of them failed */
	char last_error[128];		/* the last failure, "" if none yet */
};

/* Index of the target for (vip, vport, addr, port), or -1. */
ssize_t agent_checker_find(const struct agent_checker *c, const struct lb_addr *vip,
			   uint16_t vport, const struct lb_addr *addr, uint16_t port);

/* Copies target idx's status. 0, or -ENOENT. Any thread. */
int agent_checker_status(struct agent_checker *c, size_t idx, struct agent_check_status *out);

/* The target list (for lbd to map an index back to its backend). */
const struct agent_check_target *agent_checker_target(const struct agent_checker *c, size_t idx);

#endif
