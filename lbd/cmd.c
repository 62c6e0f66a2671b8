/*
 * lbd's control commands (lbd_cmd.h): what `lbctl stats|conns|backends|
 * reload|role|ready|sync` do and answer. Each fills a reply (lbd_reply.h):
 * fields of the status line for scalar answers, rows for tables.
 *
 * They run on the main thread and read the engine only through its
 * any-thread calls (counters, foreach, role). What changes the engine
 * (services, role) is handed to its control thread, the loop, and waited
 * for; the iptables rules that follow a reload are the main thread's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lbd.h"
#include "lbd_capture.h"
#include "lbd_fastpath.h"
#include "lbd_kick.h"
#include "lbd_cmd.h"
#include "lbd_health.h"
#include "lbd_loop.h"
#include "lbd_queue.h"
#include "lbd_reply.h"
#include "lbd_rules.h"
#include "lbd_service.h"
#include "lbd_sync.h"
#include "lbd_takeover.h"
#include "lbd_vipwatch.h"
#include "log.h"

/*
 * The kernel's per-queue counters for our queues (this network namespace),
 * from the file main.c opened while lbd was root: a seq file reads afresh
 * from offset 0. One line per bound queue, about 50 bytes each.
 */
static void kernel_queue_stats(struct lbd *d, struct lbd_reply *r)
{
	unsigned num, portid, total, mode, range, qdropped, udropped;
	char buf[8192], key[64], *line, *save = NULL;
	ssize_t n;

	if (d->nfq_proc_fd < 0 || (n = pread(d->nfq_proc_fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%u %u %u %u %u %u %u", &num, &portid, &total, &mode, &range,
			   &qdropped, &udropped) != 7)
			continue;
		if (num < d->conf.daemon.queue || num >= d->conf.daemon.queue + d->nqueues)
			continue;
		snprintf(key, sizeof(key), "nfq%u_waiting", num);
		lbd_reply_u64(r, key, total);
		snprintf(key, sizeof(key), "nfq%u_queue_dropped", num);
		lbd_reply_u64(r, key, qdropped);
		snprintf(key, sizeof(key), "nfq%u_user_dropped", num);
		lbd_reply_u64(r, key, udropped);
	}
}

static void queue_stats(struct lbd *d, struct lbd_reply *r)
{
	static const char *const names[] = { "packets", "batches", "recv_errors", "send_errors",
					      "verdicts_lost", "bad_messages" };
	char key[64];

	for (unsigned i = 0; i < d->nqueues; i++) {
		const struct lbd_queue_stats *s = lbd_queue_stats(d->queues[i]);
		const atomic_uint_fast64_t *v[] = { &s->packets, &s->batches, &s->recv_errors,
						    &s->send_errors, &s->verdicts_lost,
						    &s->bad_messages };

		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			snprintf(key, sizeof(key), "nfq%u_%s", lbd_queue_num(d->queues[i]), names[k]);
			lbd_reply_u64(r, key, atomic_load(v[k]));
		}
	}
}

static void print_capture_stats(void *c, FILE *out) { lbd_capture_print_stats(c, out); }
static void print_fastpath_stats(void *f, FILE *out) { lbd_fastpath_print_stats(f, out); }

static void print_takeover(void *t, FILE *out) { lbd_takeover_print(t, out); }
static void print_kick(void *k, FILE *out) { lbd_kick_print(k, out); }

int lbd_cmd_stats(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	uint64_t c[LB_CNT_COUNT];

	if (arg)
		return lbd_reply_error(r, "stats takes no arguments, not '%s'", arg);
	lb_engine_counters(d->engine, c);
	lbd_reply_u64(r, "conns", lb_engine_conn_count(d->engine));
	lbd_reply_u64(r, "conns_max", d->conf.engine.max_conns);
	for (int i = 0; i < LB_CNT_COUNT; i++)
		lbd_reply_u64(r, lb_counter_name(i), c[i]);
	queue_stats(d, r);
	kernel_queue_stats(d, r);
	lbd_reply_kv_printer(r, print_capture_stats, d->capture);
	lbd_reply_kv_printer(r, print_fastpath_stats, d->fastpath);
	if (d->sync) {
		lbd_reply_kv_printer(r, print_takeover, lbd_loop_takeover(d->loop));
		lbd_reply_kv_printer(r, print_kick, d->kick);
	}
	return 0;
}

/* ---- conns ---- */

/* `conns` filters; an unset one matches everything. */
struct conn_filter {
	bool has_svc, has_be, has_client;
	struct lb_addr svc, be, client;
	uint16_t svc_port, be_port, client_port;	/* 0: any port */
	int state;					/* -1: any */
	struct lbd_reply *r;
	uint64_t rows;
};

static bool addr_match(bool has, const struct lb_addr *want, uint16_t want_port,
		       const struct lb_addr *a, uint16_t port)
{
	return !has || (lb_addr_equal(want, a) && (!want_port || want_port == port));
}

static void conn_row(const struct lb_conn_info *c, void *arg)
{
	struct conn_filter *f = arg;
	const struct lb_conn_state *st = &c->state;
	const struct lb_tcp_peer *o = &st->tcp.peer[LB_DIR_ORIG], *rp = &st->tcp.peer[LB_DIR_REPLY];
	char client[64], vip[64], be[64];

	if (!addr_match(f->has_svc, &f->svc, f->svc_port, &st->orig.dst, st->orig.dport) ||
	    !addr_match(f->has_be, &f->be, f->be_port, &st->backend, st->backend_port) ||
	    !addr_match(f->has_client, &f->client, f->client_port, &st->orig.src, st->orig.sport) ||
	    (f->state >= 0 && (int)st->tcp.state != f->state))
		return;
	lb_addr_format_port(&st->orig.src, st->orig.sport, client, sizeof(client));
	lb_addr_format_port(&st->orig.dst, st->orig.dport, vip, sizeof(vip));
	lb_addr_format_port(&st->backend, st->backend_port, be, sizeof(be));
	f->rows++;
	lbd_reply_row(f->r, json_pack(
		"{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"client", client, "vip", vip, "backend", be,
		"state", lb_tcp_state_name(st->tcp.state), "expires_ms", (json_int_t)st->expires_ms,
		"orig_end", (json_int_t)o->end, "orig_maxend", (json_int_t)o->maxend,
		"orig_maxwin", (json_int_t)o->maxwin, "orig_wscale", (json_int_t)o->wscale,
		"reply_end", (json_int_t)rp->end, "reply_maxend", (json_int_t)rp->maxend,
		"reply_maxwin", (json_int_t)rp->maxwin, "reply_wscale", (json_int_t)rp->wscale,
		"pkts_orig", (json_int_t)c->pkts[0], "pkts_reply", (json_int_t)c->pkts[1],
		"bytes_orig", (json_int_t)c->bytes[0], "bytes_reply", (json_int_t)c->bytes[1],
		"service_id", (json_int_t)c->service_id));
}

static int parse_state(const char *name)
{
	for (int s = 1; s < LB_TCP_STATE_COUNT; s++)
		if (strcmp(name, lb_tcp_state_name(s)) == 0)
			return s;
	return -1;
}

/* Parses "service A[:P] backend A[:P] state S client A[:P]", any subset. */
static int parse_conn_filter(char *args, struct conn_filter *f)
{
	char *save = NULL, *key, *val;

	for (key = strtok_r(args, " \t", &save); key; key = strtok_r(NULL, " \t", &save)) {
		val = strtok_r(NULL, " \t", &save);
		if (!val)
			return lbd_reply_error(f->r, "conns: '%s' needs a value", key);
		if (strcmp(key, "state") == 0) {
			f->state = parse_state(val);
			if (f->state < 0)
				return lbd_reply_error(f->r, "conns: unknown state '%s' (syn_sent, "
						       "syn_recv, established, fin_wait, close_wait, "
						       "last_ack, time_wait, close)", val);
			continue;
		}
		struct lb_addr *a = strcmp(key, "service") == 0 ? &f->svc :
				    strcmp(key, "backend") == 0 ? &f->be :
				    strcmp(key, "client") == 0 ? &f->client : NULL;
		uint16_t *port = a == &f->svc ? &f->svc_port : a == &f->be ? &f->be_port
									: &f->client_port;

		if (!a)
			return lbd_reply_error(f->r, "conns: unknown filter '%s' (service, backend, "
						     "state, client)", key);
		if (lb_addr_parse_port(a, port, val) < 0)
			return lbd_reply_error(f->r, "conns: %s '%s' is not ADDRESS or ADDRESS:PORT",
					       key, val);
		*(a == &f->svc ? &f->has_svc : a == &f->be ? &f->has_be : &f->has_client) = true;
	}
	return 0;
}

int lbd_cmd_conns(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	struct conn_filter f = { .state = -1, .r = r };
	char args[LBD_REPLY_LINE_MAX];
	size_t cursor = 0;
	int more;

	snprintf(args, sizeof(args), "%s", arg ? arg : "");
	if (parse_conn_filter(args, &f) < 0)
		return -1;
	/* A slice of the table at a time: rows are built under the
	 * connections' locks, sent after, and never held whole. */
	do {
		more = lb_engine_foreach_conn_step(d->engine, &cursor, 256, clock_mono_ms(),
						   conn_row, &f);
		lbd_reply_flush(r);
	} while (more && !lbd_reply_broken(r));
	lbd_reply_u64(r, "count", f.rows);
	return 0;
}

/* ---- backends ---- */

static const char *backend_state(const struct lb_backend_info *be)
{
	if (be->draining)
		return "draining";	/* removed: waiting for its connections to end */
	if (be->drain)
		return "drained";
	return be->weight ? "up" : "quiesced";
}

struct backend_rows {
	struct lbd *d;
	struct lbd_reply *r;
	uint64_t rows;
};

static void backend_row(const struct lb_backend_info *be, void *arg)
{
	struct backend_rows *x = arg;
	char svc[64], addr[64];
	json_t *row;

	lb_addr_format_port(&be->vip, be->vport, svc, sizeof(svc));
	lb_addr_format_port(&be->addr, be->port, addr, sizeof(addr));
	row = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"service", svc, "backend", addr, "weight", (json_int_t)be->weight,
			"max_conns", (json_int_t)be->max_conns, "state", backend_state(be),
			"health", be->down ? "down" : "up",
			"active", (json_int_t)be->active, "inactive", (json_int_t)be->inactive,
			"conns", (json_int_t)be->conns_total, "pkts_in", (json_int_t)be->pkts_in,
			"bytes_in", (json_int_t)be->bytes_in, "pkts_out", (json_int_t)be->pkts_out,
			"bytes_out", (json_int_t)be->bytes_out);
	lbd_health_annotate(x->d->health, be, row);
	x->rows++;
	lbd_reply_row(x->r, row);
}

int lbd_cmd_backends(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	struct backend_rows x = { d, r, 0 };

	if (arg)
		return lbd_reply_error(r, "backends takes no arguments, not '%s'", arg);
	lb_engine_foreach_backend(d->engine, backend_row, &x);
	lbd_reply_u64(r, "count", x.rows);
	return 0;
}

/* Why a command handed to the loop failed, for the log and the client. */
const char *lbd_cmd_loop_error(int rc)
{
	switch (rc) {
	case -ETIMEDOUT:
		return "the engine's control thread did not answer in time; nothing changed";
	case -EINPROGRESS:
		return "the engine's control thread did not finish in time; "
		       "the change may still take effect";
	case -EBUSY:
		return "the engine's control thread is busy; try again";
	default:
		return strerror(-rc);
	}
}

/* Settings that only a restart can change; a reload keeps the running ones. */
static void warn_restart_only(const struct lb_conf *old, const struct lb_conf *new,
			      struct lbd_reply *r)
{
	if (memcmp(&old->daemon, &new->daemon, sizeof(old->daemon)) != 0 ||
	    memcmp(&old->sync, &new->sync, sizeof(old->sync)) != 0 ||
	    memcmp(old->engine.timeout_s, new->engine.timeout_s, sizeof(old->engine.timeout_s)) ||
	    old->engine.max_conns != new->engine.max_conns ||
	    old->engine.max_persist != new->engine.max_persist ||
	    old->engine.max_embryonic != new->engine.max_embryonic) {
		log_warn("reload: daemon, sync or timeouts settings changed; "
			 "they take effect on restart");
		lbd_reply_warning(r, "daemon, sync and timeouts settings need a restart");
	}
}

/* systemd's status line (`systemctl status lbd`) follows role and reloads. */
static void update_status(struct lbd *d)
{
	char status[128];

	snprintf(status, sizeof(status), "role %s, %zu services, sync %s",
		 lb_role_name(lb_engine_role(d->engine)), d->conf.nservices,
		 d->sync ? "on" : "off");
	lbd_service_status(status);
}

/*
 * A changed key file starts a key rotation; an unusable one keeps the key
 * and fails the reload's answer (the services were applied all the same).
 */
static void reload_key(struct lbd *d, struct lbd_reply *r)
{
	char msg[512];
	int rc = lbd_sync_rekey(d->sync, msg, sizeof(msg));

	if (rc < 0) {
		log_err("reload: %s", msg);
		lbd_reply_error(r, "%s", msg);
	} else if (rc > 0) {
		log_info("reload: %s", msg);
		lbd_reply_message(r, "%zu services\n%s", d->conf.nservices, msg);
		lbd_reply_str(r, "sync_key", msg);
	}
}

int lbd_cmd_reload(struct lbd *d, struct lbd_reply *r)
{
	struct lb_conf next;
	char err[512];
	int rc;

	if (lb_conf_load(d->conf_path, &next, err, sizeof(err)) < 0) {
		log_err("reload refused, the running configuration stays: %s", err);
		return lbd_reply_error(r, "%s (the running configuration stays)", err);
	}
	warn_restart_only(&d->conf, &next, r);
	/* Keep the running daemon and engine settings; take the services. */
	next.daemon = d->conf.daemon;
	next.engine = d->conf.engine;
	next.sync = d->conf.sync;
	rc = lbd_loop_set_services(d->loop, &next);
	if (rc < 0) {
		/* After -EINPROGRESS the engine may yet take the new services
		 * while conf and the rules keep the old: a reload that
		 * answers in time puts them in step again. */
		log_err("reload refused: %s", lbd_cmd_loop_error(rc));
		lb_conf_free(&next);
		return lbd_reply_error(r, "%s", lbd_cmd_loop_error(rc));
	}
	lb_conf_free(&d->conf);
	d->conf = next;
	if (d->vipwatch)
		lbd_vipwatch_set(d->vipwatch, d->conf.services, d->conf.nservices);
	/* The checks follow the file too; the engine keeps who is down. */
	lbd_health_stop(d->health);
	if (lbd_health_start(&d->conf, d->engine, d->loop, &d->health) < 0)
		lbd_reply_warning(r, "health checks not restarted (see lbd's log)");
	if (lbd_rules_install(&d->tools, &d->conf, d->engine) < 0) {
		log_err("reload: services applied but the iptables rules were not updated");
		return lbd_reply_error(r, "services applied but rules not updated (see lbd's log)");
	}
	log_info("reloaded %s: %zu services", d->conf_path, d->conf.nservices);
	lbd_reply_message(r, "%zu services", d->conf.nservices);
	lbd_reply_u64(r, "services", d->conf.nservices);
	if (d->sync)
		reload_key(d, r);
	update_status(d);
	return 0;
}

int lbd_cmd_set_role(struct lbd *d, enum lb_role role, struct lbd_reply *r)
{
	enum lb_role was;
	int rc = lbd_loop_set_role(d->loop, role, &was);

	if (rc < 0) {
		log_err("role %s refused: %s", lb_role_name(role), lbd_cmd_loop_error(rc));
		return lbd_reply_error(r, "%s", lbd_cmd_loop_error(rc));
	}
	lbd_reply_message(r, "role %s (was %s)", lb_role_name(role), lb_role_name(was));
	lbd_reply_str(r, "role", lb_role_name(role));
	lbd_reply_str(r, "was", lb_role_name(was));
	update_status(d);
	return 0;
}

int lbd_cmd_role(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	static const enum lb_role roles[] = { LB_ROLE_MASTER, LB_ROLE_BACKUP, LB_ROLE_FAULT };

	if (!arg) {
		lbd_reply_str(r, "role", lb_role_name(lb_engine_role(d->engine)));
		return 0;
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(arg, lb_role_name(roles[i])) == 0)
			return lbd_cmd_set_role(d, roles[i], r);
	return lbd_reply_error(r, "unknown role '%s' (master, backup, fault)", arg);
}

int lbd_cmd_ready(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	char why[128];

	if (arg)
		return lbd_reply_error(r, "ready takes no arguments, not '%s'", arg);
	if (d->sync && !lbd_sync_ready(d->sync, why, sizeof(why))) {
		lbd_reply_bool(r, "ready", false);
		return lbd_reply_error(r, "not ready: %s", why);
	}
	lbd_reply_bool(r, "ready", true);
	lbd_reply_message(r, "ready");
	return 0;
}

static void print_sync(void *s, FILE *out) { lbd_sync_print(s, out); }

int lbd_cmd_sync(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	struct lbd_defer_stats total = { 0 };

	if (arg)
		return lbd_reply_error(r, "sync takes no arguments, not '%s'", arg);
	lbd_reply_str(r, "role", lb_role_name(lb_engine_role(d->engine)));
	if (!d->sync) {
		lbd_reply_str(r, "sync", "off");
		return 0;
	}
	lbd_reply_kv_printer(r, print_sync, d->sync);
	for (unsigned i = 0; i < d->nqueues; i++) {
		struct lbd_defer_stats s;

		lbd_queue_defer_stats(d->queues[i], &s);
		total.held += s.held;
		total.released += s.released;
		total.timeouts += s.timeouts;
		total.overflow += s.overflow;
		total.wait_us_sum += s.wait_us_sum;
		if (s.wait_us_max > total.wait_us_max)
			total.wait_us_max = s.wait_us_max;
	}
	lbd_reply_u64(r, "defer_held", total.held);
	lbd_reply_u64(r, "defer_released", total.released);
	lbd_reply_u64(r, "defer_timeouts", total.timeouts);
	lbd_reply_u64(r, "defer_overflow", total.overflow);
	lbd_reply_u64(r, "defer_wait_us_avg", total.released + total.timeouts
			  ? total.wait_us_sum / (total.released + total.timeouts) : 0);
	lbd_reply_u64(r, "defer_wait_us_max", total.wait_us_max);
	return 0;
}
