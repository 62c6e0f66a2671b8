/*
 * lb_conf: reading lbd.conf with libconfig into plain structs.
 *
 *   daemon:   { workers = 2; queue = 0; control = "/run/lbd.sock"; ... };
 *   timeouts: { established = 900; ... };
 *   services = ( { vip = "198.18.0.100"; port = 80; scheduler = "wlc";
 *                  backends = ( { address = "198.18.1.11"; weight = 1; } ); } );
 */
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "lb_conf.h"
#include "log.h"

struct reader {
	const char *path;
	char *err;
	size_t errlen;
	int failed;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct reader *r, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int n = 0, line = s ? config_setting_source_line(s) : 0;

	if (r->failed)
		return -1;	/* keep the first error: it is the real one */
	r->failed = 1;
	/* The root setting has no line: say just the file. */
	if (line > 0)
		n = snprintf(r->err, r->errlen, "%s:%d: ", r->path, line);
	else
		n = snprintf(r->err, r->errlen, "%s: ", r->path);
	if (n < 0 || (size_t)n >= r->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Refuses members of group g that are not in the NULL-terminated list; what
 * names the group in the message (libconfig has no name for list elements).
 */
static int check_keys(struct reader *r, const config_setting_t *g, const char *what,
		      const char *const *known)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		int ok = 0;

		for (const char *const *k = known; *k && !ok; k++)
			ok = name && strcmp(name, *k) == 0;
		if (!ok)
			return fail(r, m, "unknown setting '%s' in %s", name ? name : "?", what);
	}
	return 0;
}

/* Reads an optional integer member into *out within [lo, hi]. */
static int get_uint(struct reader *r, const config_setting_t *g, const char *name,
		    long long lo, long long hi, unsigned *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	long long v;

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return fail(r, s, "'%s' must be an integer", name);
	v = config_setting_get_int64(s);
	if (v < lo || v > hi)
		return fail(r, s, "'%s' must be between %lld and %lld, not %lld", name, lo, hi, v);
	*out = (unsigned)v;
	return 0;
}

/* Reads a string member; required ones that are missing are errors. */
static int get_str(struct reader *r, const config_setting_t *g, const char *name,
		   int required, const char **out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	if (!s) {
		if (required)
			return fail(r, g, "missing '%s'", name);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(r, s, "'%s' must be a string", name);
	*out = config_setting_get_string(s);
	return 0;
}

static int get_addr(struct reader *r, const config_setting_t *g, const char *name,
		    struct lb_addr *out)
{
	const char *text = NULL;

	if (get_str(r, g, name, 1, &text) < 0)
		return -1;
	if (lb_addr_parse(out, text) < 0)
		return fail(r, config_setting_get_member(g, name),
			    "'%s' is not an IPv4 or IPv6 address: '%s'", name, text);
	return 0;
}

/* metrics = "ADDR:PORT"; control_group = "NAME". */
static int read_daemon_extras(struct reader *r, const config_setting_t *g, struct lb_conf *c)
{
	const char *metrics = NULL, *group = NULL, *log = NULL, *facility = NULL, *level = NULL;
	const char *alive = NULL;
	enum log_level lvl;

	if (get_str(r, g, "metrics", 0, &metrics) < 0 ||
	    get_str(r, g, "alive_link", 0, &alive) < 0 ||
	    get_str(r, g, "control_group", 0, &group) < 0 || get_str(r, g, "log", 0, &log) < 0 ||
	    get_str(r, g, "log_facility", 0, &facility) < 0 ||
	    get_str(r, g, "log_level", 0, &level) < 0)
		return -1;
	if (log && strcmp(log, "syslog") != 0 && strcmp(log, "stderr") != 0)
		return fail(r, config_setting_get_member(g, "log"),
			    "'log' must be \"stderr\" or \"syslog\", not '%s'", log);
	c->daemon.log_syslog = log && strcmp(log, "syslog") == 0;
	if (facility && log_facility_parse(facility, &c->daemon.log_facility) < 0)
		return fail(r, config_setting_get_member(g, "log_facility"),
			    "unknown log_facility '%s' (daemon, user, local0-local7)", facility);
	if (level && log_level_parse(level, &lvl) < 0)
		return fail(r, config_setting_get_member(g, "log_level"),
			    "unknown log_level '%s' (debug, info, warn, error)", level);
	if (level)
		c->daemon.log_level = (int)lvl;
	if (metrics && (lb_addr_parse_port(&c->daemon.metrics_addr, &c->daemon.metrics_port,
					   metrics) < 0 || !c->daemon.metrics_port))
		return fail(r, config_setting_get_member(g, "metrics"),
			    "'metrics' must be ADDRESS:PORT ([ADDRESS]:PORT for IPv6), not '%s'",
			    metrics);
	/* An interface name the kernel takes (IFNAMSIZ), in a safe alphabet. */
	if (alive && (strlen(alive) == 0 || strlen(alive) >= sizeof(c->daemon.alive_link) ||
		      strspn(alive, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_.-") != strlen(alive) || *alive == '.'))
		return fail(r, config_setting_get_member(g, "alive_link"),
			    "'alive_link' must be an interface name of 1-%zu letters, digits, "
			    "'_', '.' or '-'", sizeof(c->daemon.alive_link) - 1);
	if (alive)
		memmove(c->daemon.alive_link, alive, strlen(alive) + 1);
	if (group && (strlen(group) == 0 || strlen(group) >= sizeof(c->daemon.control_group)))
		return fail(r, config_setting_get_member(g, "control_group"),
			    "'control_group' must be a group name of 1-%zu characters",
			    sizeof(c->daemon.control_group) - 1);
	if (group)
		memmove(c->daemon.control_group, group, strlen(group) + 1);
	return 0;
}

/* fast_path = true | false | "required" */
static int get_fast_path(struct reader *r, const config_setting_t *g, int *out)
{
	const config_setting_t *s = config_setting_get_member(g, "fast_path");

	if (!s)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
		*out = config_setting_get_bool(s) ? LB_FAST_PATH_ON : LB_FAST_PATH_OFF;
		return 0;
	}
	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "required") == 0) {
		*out = LB_FAST_PATH_REQUIRED;
		return 0;
	}
	return fail(r, s, "'fast_path' must be true, false or \"required\"");
}

static int get_bool(struct reader *r, const config_setting_t *g, const char *name, int *out);

/* A user name as useradd takes it: so nothing odd reaches getpwnam(). */
static int user_ok(const char *u)
{
	return *u && strlen(u) <= 32 && *u != '-' &&
	       strspn(u, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
	       strlen(u);
}

static int read_daemon(struct reader *r, const config_setting_t *g, struct lb_conf *c)
{
	static const char *const keys[] = { "workers", "queue", "queue_maxlen", "control",
					     "chain", "max_conns", "max_persist", "max_embryonic",
					     "metrics", "control_group", "log", "log_facility",
					     "log_level", "user", "fail_open", "fast_path", "syn_queue",
					     "alive_link", NULL };
	const char *control = c->daemon.control, *chain = c->daemon.chain;
	const char *user = c->daemon.user;
	unsigned max_conns = (unsigned)c->engine.max_conns;
	unsigned max_persist = (unsigned)c->engine.max_persist;
	unsigned max_embryonic = (unsigned)c->engine.max_embryonic;

	if (check_keys(r, g, "'daemon'", keys) < 0 ||
	    get_uint(r, g, "workers", 1, LB_ENGINE_MAX_WORKERS - 2, &c->daemon.workers) < 0 ||
	    get_uint(r, g, "queue", 0, 65000, &c->daemon.queue) < 0 ||
	    get_uint(r, g, "queue_maxlen", 16, 1 << 20, &c->daemon.queue_maxlen) < 0 ||
	    get_uint(r, g, "max_conns", 1, 1 << 26, &max_conns) < 0 ||
	    get_uint(r, g, "max_persist", 1, 1 << 24, &max_persist) < 0 ||
	    get_uint(r, g, "max_embryonic", 0, 1 << 26, &max_embryonic) < 0 ||
	    get_str(r, g, "control", 0, &control) < 0 || get_str(r, g, "chain", 0, &chain) < 0 ||
	    get_str(r, g, "user", 0, &user) < 0 ||
	    get_bool(r, g, "fail_open", &c->daemon.fail_open) < 0 ||
	    get_bool(r, g, "syn_queue", &c->daemon.syn_queue) < 0 ||
	    get_fast_path(r, g, &c->daemon.fast_path) < 0)
		return -1;
	/* The SYN queue's worker is one more engine worker. */
	if (c->daemon.syn_queue && c->daemon.workers > LB_ENGINE_MAX_WORKERS - 3)
		return fail(r, config_setting_get_member(g, "workers"),
			    "'workers' must be at most %d with 'syn_queue'", LB_ENGINE_MAX_WORKERS - 3);
	if (!user_ok(user))
		return fail(r, config_setting_get_member(g, "user"),
			    "'user' must be a user name (1-32 letters, digits, '_', '.', '-')");
	if (strlen(control) >= sizeof(c->daemon.control))
		return fail(r, config_setting_get_member(g, "control"), "'control' path too long");
	if (strlen(chain) == 0 || strlen(chain) > 20 || strspn(chain,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(chain))
		return fail(r, config_setting_get_member(g, "chain"),
			    "'chain' must be 1-20 letters, digits or '_'");
	if (read_daemon_extras(r, g, c) < 0)
		return -1;
	memmove(c->daemon.control, control, strlen(control) + 1);
	memmove(c->daemon.chain, chain, strlen(chain) + 1);
	memmove(c->daemon.user, user, strlen(user) + 1);
	c->engine.max_conns = max_conns;
	c->engine.max_persist = max_persist;
	c->engine.max_embryonic = max_embryonic;
	return 0;
}

static int read_sync_addrs(struct reader *r, const config_setting_t *g, struct lb_sync_conf *sc)
{
	const char *ifname = "", *key = NULL, *state = "";
	unsigned port = sc->port;

	if (get_addr(r, g, "local", &sc->local) < 0 || get_addr(r, g, "peer", &sc->peer) < 0 ||
	    get_uint(r, g, "port", 1, 65535, &port) < 0 ||
	    get_str(r, g, "interface", 0, &ifname) < 0 || get_str(r, g, "key_file", 1, &key) < 0 ||
	    get_str(r, g, "state_file", 0, &state) < 0)
		return -1;
	if (sc->local.family != sc->peer.family)
		return fail(r, g, "'local' and 'peer' must be of the same address family");
	if (strlen(ifname) >= sizeof(sc->interface))
		return fail(r, config_setting_get_member(g, "interface"), "'interface' name too long");
	if (strlen(key) >= sizeof(sc->key_file))
		return fail(r, config_setting_get_member(g, "key_file"), "'key_file' path too long");
	if (!*state && strlen(key) + sizeof(".epoch") > sizeof(sc->state_file))
		return fail(r, config_setting_get_member(g, "key_file"),
			    "'key_file' path too long to hold the state file next to it");
	if (strlen(state) >= sizeof(sc->state_file))
		return fail(r, config_setting_get_member(g, "state_file"), "'state_file' path too long");
	if (*state)
		memmove(sc->state_file, state, strlen(state) + 1);
	else
		snprintf(sc->state_file, sizeof(sc->state_file), "%s.epoch", key);
	sc->port = (uint16_t)port;
	memmove(sc->interface, ifname, strlen(ifname) + 1);
	memmove(sc->key_file, key, strlen(key) + 1);
	return 0;
}

static int get_bool(struct reader *r, const config_setting_t *g, const char *name, int *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(r, s, "'%s' must be true or false", name);
	*out = config_setting_get_bool(s);
	return 0;
}

static int read_sync(struct reader *r, const config_setting_t *g, struct lb_conf *c)
{
	static const char *const keys[] = { "node_id", "peer_id", "local", "peer", "port",
					    "interface", "key_file", "state_file", "interval", "max_lag", "defer", "defer_timeout",
					    "ring", "heartbeat", "peer_timeout", "resync_timeout",
					    "key_grace", "stale_after", "vip_takeover", "takeover_kick",
					    NULL };
	struct lb_sync_conf *sc = &c->sync;

	if (check_keys(r, g, "'sync'", keys) < 0 ||
	    get_uint(r, g, "node_id", 1, 0xffffffffLL, &sc->node_id) < 0 ||
	    get_uint(r, g, "peer_id", 1, 0xffffffffLL, &sc->peer_id) < 0 ||
	    read_sync_addrs(r, g, sc) < 0 ||
	    get_uint(r, g, "interval", 10, 60000, &sc->interval_ms) < 0 ||
	    get_uint(r, g, "max_lag", 65536, 1 << 30, &sc->max_lag) < 0 ||
	    get_bool(r, g, "defer", &sc->defer) < 0 ||
	    get_uint(r, g, "defer_timeout", 1, 10000, &sc->defer_timeout_ms) < 0 ||
	    get_uint(r, g, "ring", 64, 1 << 20, &sc->ring) < 0 ||
	    get_uint(r, g, "heartbeat", 5, 10000, &sc->heartbeat_ms) < 0 ||
	    get_uint(r, g, "peer_timeout", 50, 60000, &sc->peer_timeout_ms) < 0 ||
	    get_uint(r, g, "resync_timeout", 100, 600000, &sc->resync_timeout_ms) < 0 ||
	    get_uint(r, g, "key_grace", 1, 86400, &sc->key_grace_s) < 0 ||
	    get_uint(r, g, "stale_after", 0, 600000, &sc->stale_after_ms) < 0 ||
	    get_bool(r, g, "vip_takeover", &sc->vip_takeover) < 0 ||
	    get_bool(r, g, "takeover_kick", &sc->takeover_kick) < 0)
		return -1;
	if (sc->node_id == 0)
		return fail(r, g, "missing 'node_id' (1 or more, unique in the pair)");
	if (sc->peer_id == 0)
		return fail(r, g, "missing 'peer_id' (the other node's node_id)");
	if (sc->peer_id == sc->node_id)
		return fail(r, config_setting_get_member(g, "peer_id"),
			    "'peer_id' must differ from 'node_id'");
	sc->enabled = 1;
	return 0;
}

static int read_timeouts(struct reader *r, const config_setting_t *g, struct lb_conf *c)
{
	const char *keys[LB_TCP_STATE_COUNT];

	for (int s = 1; s < LB_TCP_STATE_COUNT; s++)
		keys[s - 1] = lb_tcp_state_name(s);
	keys[LB_TCP_STATE_COUNT - 1] = NULL;
	if (check_keys(r, g, "'timeouts'", keys) < 0)
		return -1;
	for (int s = 1; s < LB_TCP_STATE_COUNT; s++)
		if (get_uint(r, g, lb_tcp_state_name(s), 1, 30 * 86400, &c->engine.timeout_s[s]) < 0)
			return -1;
	return 0;
}

/* Copies a string member into buf (size bytes) if present. */
static int get_strbuf(struct reader *r, const config_setting_t *g, const char *name, char *buf,
		      size_t size)
{
	const char *v = NULL;

	if (get_str(r, g, name, 0, &v) < 0)
		return -1;
	if (!v)
		return 0;
	if (strlen(v) >= size)
		return fail(r, config_setting_get_member(g, name), "'%s' is longer than %zu characters",
			    name, size - 1);
	memmove(buf, v, strlen(v) + 1);
	return 0;
}

/*
 * A `check` group, read over *cc (the service's check, or the defaults):
 *   check = { type = "http"; interval = 2000; timeout = 2000; rise = 2; fall = 3;
 *             port = 8080; path = "/health"; expect = 200; body = "ok";
 *             command = "..."; };
 */
static int read_check(struct reader *r, const config_setting_t *g, struct agent_check_conf *cc)
{
	static const char *const keys[] = { "type", "interval", "timeout", "rise", "fall", "port",
					    "path", "expect", "body", "command", NULL };
	const config_setting_t *ts = config_setting_get_member(g, "type");
	const char *type = NULL;
	unsigned port = cc->port;

	if (!config_setting_is_group(g))
		return fail(r, g, "'check' must be a group { type = ...; }");
	if (check_keys(r, g, "a check", keys) < 0 || get_str(r, g, "type", 0, &type) < 0 ||
	    get_uint(r, g, "interval", 100, 3600000, &cc->interval_ms) < 0 ||
	    get_uint(r, g, "timeout", 10, 600000, &cc->timeout_ms) < 0 ||
	    get_uint(r, g, "rise", 1, 100, &cc->rise) < 0 ||
	    get_uint(r, g, "fall", 1, 100, &cc->fall) < 0 ||
	    get_uint(r, g, "port", 1, 65535, &port) < 0 ||
	    get_uint(r, g, "expect", 100, 599, &cc->expect) < 0 ||
	    get_strbuf(r, g, "path", cc->path, sizeof(cc->path)) < 0 ||
	    get_strbuf(r, g, "body", cc->body, sizeof(cc->body)) < 0 ||
	    get_strbuf(r, g, "command", cc->command, sizeof(cc->command)) < 0)
		return -1;
	cc->port = (uint16_t)port;
	if (type) {
		cc->kind = agent_check_kind_parse(type);
		if (cc->kind == AGENT_CHECK_NONE)
			return fail(r, ts, "unknown check type '%s' (tcp, http, https, exec)", type);
	}
	if (cc->kind == AGENT_CHECK_EXEC && !cc->command[0])
		return fail(r, g, "an exec check needs a 'command'");
	if (cc->path[0] != '/')
		return fail(r, g, "check 'path' must start with '/', not '%s'", cc->path);
	if (cc->timeout_ms > cc->interval_ms)
		return fail(r, g, "check 'timeout' (%u ms) must not exceed 'interval' (%u ms)",
			    cc->timeout_ms, cc->interval_ms);
	return 0;
}

/* Adds a check target for backend be of svc. */
static int add_check(struct reader *r, const config_setting_t *g, struct lb_conf *c,
		     const struct lb_service_conf *svc, const struct lb_backend_conf *be,
		     const struct agent_check_conf *cc)
{
	struct agent_check_target *t = realloc(c->checks, (c->nchecks + 1) * sizeof(*t));

	if (!t)
		return fail(r, g, "out of memory");
	c->checks = t;
	t = &c->checks[c->nchecks++];
	memset(t, 0, sizeof(*t));
	t->vip = svc->vip;
	t->vport = svc->port;
	t->addr = be->addr;
	t->port = be->port;
	t->conf = *cc;
	return 0;
}

static int read_backend(struct reader *r, const config_setting_t *g,
			const struct lb_service_conf *svc, struct lb_backend_conf *be)
{
	static const char *const keys[] = { "address", "port", "weight", "max_conns", "check",
					    NULL };
	unsigned port = svc->port, weight = 1, max_conns = 0;

	if (!config_setting_is_group(g))
		return fail(r, g, "a backend must be a group { address = ...; }");
	if (check_keys(r, g, "a backend", keys) < 0 || get_addr(r, g, "address", &be->addr) < 0 ||
	    get_uint(r, g, "port", 1, 65535, &port) < 0 ||
	    get_uint(r, g, "weight", 0, 65535, &weight) < 0 ||
	    get_uint(r, g, "max_conns", 0, 1 << 26, &max_conns) < 0)
		return -1;
	if (be->addr.family != svc->vip.family)
		return fail(r, g, "backend and VIP must be of the same address family");
	be->port = (uint16_t)port;
	be->weight = weight;
	be->max_conns = max_conns;
	return 0;
}

static int read_backends(struct reader *r, const config_setting_t *svc_g,
			 struct lb_service_conf *svc, struct lb_conf *c)
{
	const config_setting_t *list = config_setting_get_member(svc_g, "backends");
	const config_setting_t *svc_check = config_setting_get_member(svc_g, "check");
	struct agent_check_conf svc_cc;
	int n;

	agent_check_conf_defaults(&svc_cc);
	if (svc_check && read_check(r, svc_check, &svc_cc) < 0)
		return -1;
	if (!list)
		return 0;	/* a service with no backend refuses connections */
	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return fail(r, list, "'backends' must be a list ( {...}, {...} )");
	n = config_setting_length(list);
	svc->backends = calloc((size_t)n + 1, sizeof(*svc->backends));
	if (!svc->backends)
		return fail(r, list, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *b = config_setting_get_elem(list, (unsigned)i);
		struct lb_backend_conf *be = &svc->backends[i];

		const config_setting_t *be_check;
		struct agent_check_conf cc = svc_cc;

		if (read_backend(r, b, svc, be) < 0)
			return -1;
		/* A backend's check is read over its service's. */
		be_check = config_setting_get_member(b, "check");
		if (be_check && read_check(r, be_check, &cc) < 0)
			return -1;
		if ((svc_check || be_check) && add_check(r, b, c, svc, be, &cc) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (svc->backends[j].port == be->port &&
			    lb_addr_equal(&svc->backends[j].addr, &be->addr))
				return fail(r, b, "backend listed twice in this service");
		svc->nbackends = (size_t)i + 1;
	}
	return 0;
}

static int read_service(struct reader *r, const config_setting_t *g, struct lb_service_conf *svc,
			struct lb_conf *c)
{
	static const char *const keys[] = { "vip", "port", "scheduler", "persistence",
					    "backends", "check", NULL };
	const char *sched = "wlc";
	unsigned port = 0, persistence = 0;

	if (!config_setting_is_group(g))
		return fail(r, g, "a service must be a group { vip = ...; port = ...; }");
	if (check_keys(r, g, "a service", keys) < 0 || get_addr(r, g, "vip", &svc->vip) < 0 ||
	    get_uint(r, g, "port", 1, 65535, &port) < 0 ||
	    get_str(r, g, "scheduler", 0, &sched) < 0 ||
	    get_uint(r, g, "persistence", 0, 30 * 86400, &persistence) < 0)
		return -1;
	if (port == 0)
		return fail(r, g, "missing 'port'");
	if (!lb_sched_name_valid(sched))
		return fail(r, config_setting_get_member(g, "scheduler"),
			    "unknown scheduler '%s' (rr, wrr, lc, wlc, sh, mh)", sched);
	svc->port = (uint16_t)port;
	snprintf(svc->scheduler, sizeof(svc->scheduler), "%s", sched);
	svc->persistence_s = persistence;
	return read_backends(r, g, svc, c);
}

static int read_services(struct reader *r, const config_setting_t *list, struct lb_conf *c)
{
	int n;

	if (!config_setting_is_list(list))
		return fail(r, list, "'services' must be a list ( {...}, {...} )");
	n = config_setting_length(list);
	c->services = calloc((size_t)n + 1, sizeof(*c->services));
	if (!c->services)
		return fail(r, list, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct lb_service_conf *svc = &c->services[i];

		c->nservices = (size_t)i + 1;
		if (read_service(r, g, svc, c) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (c->services[j].port == svc->port &&
			    lb_addr_equal(&c->services[j].vip, &svc->vip))
				return fail(r, g, "service VIP:port defined twice");
	}
	return 0;
}

void lb_conf_defaults(struct lb_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->daemon.workers = 1;
	c->daemon.queue_maxlen = 8192;
	c->daemon.syn_queue = 1;	/* a SYN flood overflows its own queue only */
	c->daemon.fast_path = LB_FAST_PATH_ON;	/* if it loads; else NFQUEUE alone */
	snprintf(c->daemon.control, sizeof(c->daemon.control), "/run/lbd.sock");
	snprintf(c->daemon.user, sizeof(c->daemon.user), "nobody");
	snprintf(c->daemon.chain, sizeof(c->daemon.chain), "LBD");
	c->daemon.log_facility = LOG_DAEMON;
	c->daemon.log_level = -1;
	lb_engine_conf_defaults(&c->engine);
	c->sync.port = 7788;
	c->sync.interval_ms = 200;
	c->sync.max_lag = 1u << 20;
	c->sync.defer_timeout_ms = 100;
	c->sync.ring = 16384;
	c->sync.heartbeat_ms = 100;
	c->sync.peer_timeout_ms = 1000;
	c->sync.resync_timeout_ms = 3000;
	c->sync.key_grace_s = 60;
	c->sync.stale_after_ms = 3000;
	c->sync.vip_takeover = 1;
	c->sync.takeover_kick = 1;
}

static int read_root(struct reader *r, const config_t *cfg, struct lb_conf *c)
{
	static const char *const keys[] = { "daemon", "timeouts", "sync", "services", NULL };
	const config_setting_t *root = config_root_setting(cfg), *s;

	if (check_keys(r, root, "the file", keys) < 0)
		return -1;
	if ((s = config_setting_get_member(root, "daemon")) &&
	    (!config_setting_is_group(s) || read_daemon(r, s, c) < 0))
		return fail(r, s, "'daemon' must be a group { ... }");
	if ((s = config_setting_get_member(root, "timeouts")) &&
	    (!config_setting_is_group(s) || read_timeouts(r, s, c) < 0))
		return fail(r, s, "'timeouts' must be a group { ... }");
	if ((s = config_setting_get_member(root, "sync")) &&
	    (!config_setting_is_group(s) || read_sync(r, s, c) < 0))
		return fail(r, s, "'sync' must be a group { ... }");
	s = config_setting_get_member(root, "services");
	if (!s)
		return fail(r, root, "no 'services' list");
	return read_services(r, s, c);
}

int lb_conf_load(const char *path, struct lb_conf *c, char *err, size_t errlen)
{
	struct reader r = { path, err, errlen, 0 };
	config_t cfg;
	int rc = 0;

	lb_conf_defaults(c);
	config_init(&cfg);
	if (!config_read_file(&cfg, path)) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		else
			snprintf(err, errlen, "%s:%d: %s",
				 config_error_file(&cfg) ? config_error_file(&cfg) : path,
				 config_error_line(&cfg), config_error_text(&cfg));
		rc = -1;
	} else if (read_root(&r, &cfg, c) < 0) {
		rc = -1;
	}
	config_destroy(&cfg);
	if (rc < 0) {
		lb_conf_free(c);
		lb_conf_defaults(c);
	}
	return rc;
}

void lb_conf_free(struct lb_conf *c)
{
	for (size_t i = 0; c->services && i < c->nservices; i++)
		free(c->services[i].backends);
	free(c->services);
	c->services = NULL;
	c->nservices = 0;
	free(c->checks);
	c->checks = NULL;
	c->nchecks = 0;
}
