/*
 * lbd's control commands (lbd_cmd.h): what `lbctl stats|conns|backends|
 * reload|role|ready|sync` do and print. Formats are line-oriented
 * "key=value" or "name value" so that shell tests and operators can pick
 * fields with awk.
 *
 * They run on the main thread and read the engine only through its
 * any-thread calls (counters, foreach, role). What changes the engine
 * (services, role) is handed to its control thread, the loop, and waited
 * for; the iptables rules that follow a reload are the main thread's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "lbd.h"
#include "lbd_capture.h"
#include "lbd_fastpath.h"
#include "lbd_cmd.h"
#include "lbd_loop.h"
#include "lbd_queue.h"
#include "lbd_rules.h"
#include "lbd_service.h"
#include "lbd_sync.h"
#include "log.h"

/* The kernel's per-queue counters for our queues (this network namespace). */
static void kernel_queue_stats(struct lbd *d, FILE *out)
{
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
	unsigned num, portid, total, mode, range, qdropped, udropped;
	char line[256];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%u %u %u %u %u %u %u", &num, &portid, &total, &mode, &range,
			   &qdropped, &udropped) != 7)
			continue;
		if (num < d->conf.daemon.queue || num >= d->conf.daemon.queue + d->nqueues)
			continue;
		fprintf(out, "nfq%u_waiting %u\nnfq%u_queue_dropped %u\nnfq%u_user_dropped %u\n",
			num, total, num, qdropped, num, udropped);
	}
	fclose(f);
}

void lbd_cmd_stats(struct lbd *d, FILE *out)
{
	uint64_t c[LB_CNT_COUNT];

	lb_engine_counters(d->engine, c);
	fprintf(out, "conns %zu\nconns_max %zu\n", lb_engine_conn_count(d->engine),
		d->conf.engine.max_conns);
	for (int i = 0; i < LB_CNT_COUNT; i++)
		fprintf(out, "%s %llu\n", lb_counter_name(i), (unsigned long long)c[i]);
	for (unsigned i = 0; i < d->nqueues; i++) {
		const struct lbd_queue_stats *s = lbd_queue_stats(d->queues[i]);
		unsigned n = lbd_queue_num(d->queues[i]);

		fprintf(out, "nfq%u_batches %llu\nnfq%u_recv_errors %llu\nnfq%u_send_errors %llu\n"
			     "nfq%u_verdicts_lost %llu\nnfq%u_bad_messages %llu\n",
			n, (unsigned long long)atomic_load(&s->batches),
			n, (unsigned long long)atomic_load(&s->recv_errors),
			n, (unsigned long long)atomic_load(&s->send_errors),
			n, (unsigned long long)atomic_load(&s->verdicts_lost),
			n, (unsigned long long)atomic_load(&s->bad_messages));
	}
	kernel_queue_stats(d, out);
	lbd_capture_print_stats(d->capture, out);
	lbd_fastpath_print_stats(d->fastpath, out);
}

static void print_conn(const struct lb_conn_info *c, void *arg)
{
	FILE *out = arg;
	const struct lb_conn_state *st = &c->state;
	const struct lb_tcp_peer *o = &st->tcp.peer[LB_DIR_ORIG], *r = &st->tcp.peer[LB_DIR_REPLY];
	char client[64], vip[64], be[64];

	lb_addr_format_port(&st->orig.src, st->orig.sport, client, sizeof(client));
	lb_addr_format_port(&st->orig.dst, st->orig.dport, vip, sizeof(vip));
	lb_addr_format_port(&st->backend, st->backend_port, be, sizeof(be));
	fprintf(out,
		"client=%s vip=%s backend=%s state=%s expires=%u.%03u "
		"orig_end=%u orig_maxend=%u orig_maxwin=%u orig_wscale=%u "
		"reply_end=%u reply_maxend=%u reply_maxwin=%u reply_wscale=%u "
		"pkts_orig=%llu pkts_reply=%llu bytes_orig=%llu bytes_reply=%llu\n",
		client, vip, be, lb_tcp_state_name(st->tcp.state), st->expires_ms / 1000,
		st->expires_ms % 1000, o->end, o->maxend, o->maxwin, o->wscale,
		r->end, r->maxend, r->maxwin, r->wscale,
		(unsigned long long)c->pkts[0], (unsigned long long)c->pkts[1],
		(unsigned long long)c->bytes[0], (unsigned long long)c->bytes[1]);
}

void lbd_cmd_conns(struct lbd *d, FILE *out)
{
	lb_engine_foreach_conn(d->engine, clock_mono_ms(), print_conn, out);
}

static void print_backend(const struct lb_backend_info *be, void *arg)
{
	FILE *out = arg;
	char svc[64], addr[64];

	lb_addr_format_port(&be->vip, be->vport, svc, sizeof(svc));
	lb_addr_format_port(&be->addr, be->port, addr, sizeof(addr));
	fprintf(out,
		"service=%s backend=%s weight=%u max_conns=%u state=%s active=%u inactive=%u "
		"conns=%llu pkts_in=%llu bytes_in=%llu pkts_out=%llu bytes_out=%llu\n",
		svc, addr, be->weight, be->max_conns, be->draining ? "draining" : "up",
		be->active, be->inactive, (unsigned long long)be->conns_total,
		(unsigned long long)be->pkts_in, (unsigned long long)be->bytes_in,
		(unsigned long long)be->pkts_out, (unsigned long long)be->bytes_out);
}

void lbd_cmd_backends(struct lbd *d, FILE *out)
{
	lb_engine_foreach_backend(d->engine, print_backend, out);
}

/* Why a command handed to the loop failed, for the log and the client. */
static const char *loop_error(int rc)
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
static void warn_restart_only(const struct lb_conf *old, const struct lb_conf *new, FILE *out)
{
	if (memcmp(&old->daemon, &new->daemon, sizeof(old->daemon)) != 0 ||
	    memcmp(&old->sync, &new->sync, sizeof(old->sync)) != 0 ||
	    memcmp(old->engine.timeout_s, new->engine.timeout_s, sizeof(old->engine.timeout_s)) ||
	    old->engine.max_conns != new->engine.max_conns ||
	    old->engine.max_persist != new->engine.max_persist ||
	    old->engine.max_embryonic != new->engine.max_embryonic) {
		log_warn("reload: daemon, sync or timeouts settings changed; "
			 "they take effect on restart");
		if (out)
			fprintf(out, "warning: daemon, sync and timeouts settings need a restart\n");
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

/* A changed key file starts a key rotation; an unusable one keeps the key. */
static void reload_key(struct lbd *d, FILE *out)
{
	char msg[512];
	int rc = lbd_sync_rekey(d->sync, msg, sizeof(msg));

	if (rc < 0)
		log_err("reload: %s", msg);
	else if (rc > 0)
		log_info("reload: %s", msg);
	if (out)
		fprintf(out, "%s%s\n", rc < 0 ? "error: " : "", msg);
}

int lbd_cmd_reload(struct lbd *d, FILE *out)
{
	struct lb_conf next;
	char err[512];
	int rc;

	if (lb_conf_load(d->conf_path, &next, err, sizeof(err)) < 0) {
		log_err("reload refused: %s", err);
		if (out)
			fprintf(out, "error: %s\n", err);
		return -1;
	}
	warn_restart_only(&d->conf, &next, out);
	/* Keep the running daemon and engine settings; take the services. */
	next.daemon = d->conf.daemon;
	next.engine = d->conf.engine;
	next.sync = d->conf.sync;
	rc = lbd_loop_set_services(d->loop, &next);
	if (rc < 0) {
		/* After -EINPROGRESS the engine may yet take the new services
		 * while conf and the rules keep the old: a reload that
		 * answers in time puts them in step again. */
		log_err("reload refused: %s", loop_error(rc));
		if (out)
			fprintf(out, "error: %s\n", loop_error(rc));
		lb_conf_free(&next);
		return -1;
	}
	lb_conf_free(&d->conf);
	d->conf = next;
	if (lbd_rules_install(&d->conf, d->engine) < 0 && out)
		fprintf(out, "error: rules not updated (see lbd's log)\n");
	log_info("reloaded %s: %zu services", d->conf_path, d->conf.nservices);
	if (out)
		fprintf(out, "ok: %zu services\n", d->conf.nservices);
	if (d->sync)
		reload_key(d, out);
	update_status(d);
	return 0;
}

int lbd_cmd_set_role(struct lbd *d, enum lb_role role, FILE *out)
{
	enum lb_role was;
	int rc = lbd_loop_set_role(d->loop, role, &was);

	if (rc < 0) {
		log_err("role %s refused: %s", lb_role_name(role), loop_error(rc));
		if (out)
			fprintf(out, "error: %s\n", loop_error(rc));
		return -1;
	}
	if (out)
		fprintf(out, "ok: role %s (was %s)\n", lb_role_name(role), lb_role_name(was));
	update_status(d);
	return 0;
}

int lbd_cmd_role(struct lbd *d, const char *arg, FILE *out)
{
	static const enum lb_role roles[] = { LB_ROLE_MASTER, LB_ROLE_BACKUP, LB_ROLE_FAULT };

	if (!arg) {
		fprintf(out, "role %s\n", lb_role_name(lb_engine_role(d->engine)));
		return 0;
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(arg, lb_role_name(roles[i])) == 0)
			return lbd_cmd_set_role(d, roles[i], out);
	fprintf(out, "error: unknown role '%s' (master, backup, fault)\n", arg);
	return -1;
}

int lbd_cmd_ready(struct lbd *d, FILE *out)
{
	char why[128];

	if (d->sync && !lbd_sync_ready(d->sync, why, sizeof(why))) {
		fprintf(out, "error: not ready: %s\n", why);
		return -1;
	}
	fprintf(out, "ready\n");
	return 0;
}

void lbd_cmd_sync(struct lbd *d, FILE *out)
{
	struct lbd_defer_stats total = { 0 };

	fprintf(out, "role %s\n", lb_role_name(lb_engine_role(d->engine)));
	if (!d->sync) {
		fprintf(out, "sync off\n");
		return;
	}
	lbd_sync_print(d->sync, out);
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
	fprintf(out, "defer_held %llu\ndefer_released %llu\ndefer_timeouts %llu\n"
		     "defer_overflow %llu\ndefer_wait_us_avg %llu\ndefer_wait_us_max %llu\n",
		(unsigned long long)total.held, (unsigned long long)total.released,
		(unsigned long long)total.timeouts, (unsigned long long)total.overflow,
		(unsigned long long)(total.released + total.timeouts
				     ? total.wait_us_sum / (total.released + total.timeouts) : 0),
		(unsigned long long)total.wait_us_max);
}
