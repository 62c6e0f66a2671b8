/*
 * The Prometheus endpoint (lbd_metrics.h): text exposition format 0.0.4.
 *
 *   lb_packets_total{direction}          lb_bytes_total{direction}
 *   lb_connections{state}                lb_connections_max
 *   lb_drops_total{reason}               lb_events_total{event}
 *   lb_backend_up{service,backend}       lb_backend_weight{...}
 *   lb_backend_connections{...,state}    lb_backend_connections_total{...}
 *   lb_backend_bytes_total{...,direction}
 *   lb_role{role}                        lb_role_changes_total
 *   lb_takeovers_total{trigger}          lb_takeover_deferred_total
 *   lb_sync_<name>                       every counter of `lbctl sync`
 *   lb_nfqueue_<name>{queue}             the queues' and the kernel's counters
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lb_engine.h"
#include "lbd.h"
#include "lbd_fastpath.h"
#include "lbd_loop.h"
#include "lbd_metrics.h"
#include "lbd_queue.h"
#include "lbd_sync.h"
#include "lbd_takeover.h"
#include "log.h"
#include "sockaddr_util.h"

struct lbd_metrics {
	struct MHD_Daemon *mhd;
	struct lbd *d;
};

static void counters(struct lbd *d, FILE *f)
{
	uint64_t c[LB_CNT_COUNT];

	lb_engine_counters(d->engine, c);
	fprintf(f, "# TYPE lb_packets_total counter\n"
		   "lb_packets_total{direction=\"in\"} %llu\nlb_packets_total{direction=\"out\"} %llu\n"
		   "# TYPE lb_bytes_total counter\n"
		   "lb_bytes_total{direction=\"in\"} %llu\nlb_bytes_total{direction=\"out\"} %llu\n",
		(unsigned long long)c[LB_CNT_PKTS_ORIG], (unsigned long long)c[LB_CNT_PKTS_REPLY],
		(unsigned long long)c[LB_CNT_BYTES_ORIG], (unsigned long long)c[LB_CNT_BYTES_REPLY]);
	fprintf(f, "# TYPE lb_drops_total counter\n");
	for (int i = 0; i < LB_CNT_COUNT; i++)
		if (strncmp(lb_counter_name(i), "drop_", 5) == 0)
			fprintf(f, "lb_drops_total{reason=\"%s\"} %llu\n", lb_counter_name(i) + 5,
				(unsigned long long)c[i]);
	fprintf(f, "# TYPE lb_events_total counter\n");
	for (int i = LB_CNT_PKTS_GSO; i < LB_CNT_COUNT; i++)
		if (strncmp(lb_counter_name(i), "drop_", 5) != 0)
			fprintf(f, "lb_events_total{event=\"%s\"} %llu\n", lb_counter_name(i),
				(unsigned long long)c[i]);
	fprintf(f, "# TYPE lb_connections_max gauge\nlb_connections_max %zu\n",
		d->conf.engine.max_conns);
}

struct by_state {
	uint64_t n[LB_TCP_STATE_COUNT];
};

static void count_state(const struct lb_conn_info *c, void *arg)
{
	struct by_state *s = arg;

	if ((int)c->state.tcp.state < LB_TCP_STATE_COUNT)
		s->n[c->state.tcp.state]++;
}

static void conn_states(struct lbd *d, FILE *f)
{
	struct by_state s = { { 0 } };
	size_t cursor = 0;

	while (lb_engine_foreach_conn_step(d->engine, &cursor, 1024, clock_mono_ms(), count_state,
					   &s))
		;
	fprintf(f, "# TYPE lb_connections gauge\n");
	for (int i = 1; i < LB_TCP_STATE_COUNT; i++)
		fprintf(f, "lb_connections{state=\"%s\"} %llu\n", lb_tcp_state_name(i),
			(unsigned long long)s.n[i]);
}

static void backend_metric(const struct lb_backend_info *be, void *arg)
{
	FILE *f = arg;
	char svc[64], addr[64], l[160];

	lb_addr_format_port(&be->vip, be->vport, svc, sizeof(svc));
	lb_addr_format_port(&be->addr, be->port, addr, sizeof(addr));
	snprintf(l, sizeof(l), "service=\"%s\",backend=\"%s\"", svc, addr);
	fprintf(f, "lb_backend_up{%s} %d\nlb_backend_weight{%s} %u\n"
		   "lb_backend_connections{%s,state=\"active\"} %u\n"
		   "lb_backend_connections{%s,state=\"inactive\"} %u\n"
		   "lb_backend_connections_total{%s} %llu\n"
		   "lb_backend_bytes_total{%s,direction=\"in\"} %llu\n"
		   "lb_backend_bytes_total{%s,direction=\"out\"} %llu\n",
		l, !be->down, l, be->weight, l, be->active, l, be->inactive, l,
		(unsigned long long)be->conns_total, l, (unsigned long long)be->bytes_in, l,
		(unsigned long long)be->bytes_out);
}

/* The sync node's "name value" lines, as lb_sync_<name>. */
static void sync_metrics(struct lbd *d, FILE *f)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *mem;

	if (!d->sync || !(mem = open_memstream(&text, &len)))
		return;
	lbd_sync_print(d->sync, mem);
	fclose(mem);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[96];
		unsigned long long v;

		if (sscanf(line, "sync_%95s %llu", name, &v) == 2)
			fprintf(f, "lb_sync_%s %llu\n", name, v);
	}
	free(text);
}

/*
 * The kernel fast path's "name value" lines (lbctl stats): its state as
 * lb_fast_path{state="on"} 1, the rest as lb_<name> (lb_fp_fwd_reply, ...).
 */
static void fastpath_metrics(struct lbd *d, FILE *f)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);

	if (!mem)
		return;
	lbd_fastpath_print_stats(d->fastpath, mem);
	fclose(mem);
	fprintf(f, "# TYPE lb_fast_path gauge\n");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[96], state[16];
		unsigned long long v;

		if (sscanf(line, "fast_path %15s", state) == 1)
			fprintf(f, "lb_fast_path{state=\"%s\"} 1\n", state);
		else if (sscanf(line, "%95s %llu", name, &v) == 2)
			fprintf(f, "lb_%s %llu\n", name, v);
	}
	free(text);
}

static void queue_metrics(struct lbd *d, FILE *f)
{
	fprintf(f, "# TYPE lb_nfqueue_batches_total counter\n");
	for (unsigned i = 0; i < d->nqueues; i++) {
		const struct lbd_queue_stats *s = lbd_queue_stats(d->queues[i]);
		unsigned q = lbd_queue_num(d->queues[i]);

		fprintf(f, "lb_nfqueue_batches_total{queue=\"%u\"} %llu\n"
			   "lb_nfqueue_verdicts_lost_total{queue=\"%u\"} %llu\n",
			q, (unsigned long long)atomic_load(&s->batches),
			q, (unsigned long long)atomic_load(&s->verdicts_lost));
	}
}

static void takeover_metrics(struct lbd_takeover *t, FILE *f)
{
	fprintf(f, "# TYPE lb_takeovers_total counter\n");
	for (int i = 0; i < LBD_TRIGGER_COUNT; i++)
		fprintf(f, "lb_takeovers_total{trigger=\"%s\"} %llu\n", lbd_trigger_name(i),
			(unsigned long long)atomic_load(&t->by_trigger[i]));
	fprintf(f, "# TYPE lb_takeover_deferred_total counter\nlb_takeover_deferred_total %llu\n",
		(unsigned long long)atomic_load(&t->deferred));
}

static char *render(struct lbd *d, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	enum lb_role role;

	if (!f)
		return NULL;
	counters(d, f);
	conn_states(d, f);
	fprintf(f, "# TYPE lb_backend_up gauge\n");
	lb_engine_foreach_backend(d->engine, backend_metric, f);
	role = lb_engine_role(d->engine);
	fprintf(f, "# TYPE lb_role gauge\n");
	for (enum lb_role r = LB_ROLE_MASTER; r <= LB_ROLE_FAULT; r++)
		fprintf(f, "lb_role{role=\"%s\"} %d\n", lb_role_name(r), r == role);
	fprintf(f, "# TYPE lb_role_changes_total counter\nlb_role_changes_total %llu\n",
		(unsigned long long)lbd_loop_role_changes(d->loop));
	if (d->sync)
		takeover_metrics(lbd_loop_takeover(d->loop), f);
	sync_metrics(d, f);
	queue_metrics(d, f);
	fastpath_metrics(d, f);
	fclose(f);
	return text;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **con_cls)
{
	struct lbd_metrics *m = cls;
	struct MHD_Response *resp;
	enum MHD_Result rc;
	unsigned status = MHD_HTTP_OK;
	char *text = NULL;
	size_t len = 0;

	(void)version; (void)upload; (void)upload_len; (void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		status = MHD_HTTP_NOT_FOUND;
	} else if (!(text = render(m->d, &len))) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	if (!text) {
		static const char msg[] = "GET /metrics\n";

		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	}
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

int lbd_metrics_start(struct lbd *d, struct lbd_metrics **out)
{
	const struct lb_daemon_conf *dc = &d->conf.daemon;
	struct sockaddr_storage ss;
	struct lbd_metrics *m;
	char where[64];

	*out = NULL;
	if (!dc->metrics_port)
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	m->d = d;
	sockaddr_build(&ss, dc->metrics_addr.family, dc->metrics_addr.bytes, dc->metrics_port);
	lb_addr_format_port(&dc->metrics_addr, dc->metrics_port, where, sizeof(where));
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
				  (dc->metrics_addr.family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  dc->metrics_port, NULL, NULL, answer, m,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, 16u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!m->mhd) {
		log_err("metrics: cannot listen on %s", where);
		free(m);
		return -1;
	}
	log_info("metrics: http://%s/metrics", where);
	*out = m;
	return 0;
}

void lbd_metrics_stop(struct lbd_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	free(m);
}
