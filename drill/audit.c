/*
 * drill_audit: see drill/drill_audit.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drill_audit.h"
#include "drill_trace.h"
#include "lb_pkt.h"
#include "num.h"

#define START_MS 1000000ull	/* the engine's clock at the first packet */
#define TICK_MS 100

enum explain { EX_MIDSTREAM, EX_CAPTURE_LOSS, EX_UNEXPLAINED, EX_COUNT };

static const char *const explain_names[EX_COUNT] = {
	"midstream", "capture_loss", "unexplained",
};

/* What the capture shows of one direction's sequence space. */
struct dir_view {
	uint8_t seen;
	uint32_t end;		/* highest sequence end seen (SYN and FIN count) */
	uint8_t hole;		/* a forward gap not yet filled */
	uint32_t hole_start;
};

struct conn_view {
	struct dir_view d[2];	/* by sender: LB_DIR_ORIG, LB_DIR_REPLY */
	size_t loss_at;		/* first sign of capture loss (trace index + 1), 0 none */
	uint32_t drops;
};

struct opts {
	const char *pcap, *config, *json;
	int auto_services, verbose;
	unsigned long max_list;
};

struct audit {
	struct opts o;
	struct lb_conf conf;
	struct drill_trace t;
	struct conn_view *views;
	uint8_t *scratch;
	uint64_t by_reason[LB_CNT_COUNT][EX_COUNT];
	uint64_t by_explain[EX_COUNT];
	uint64_t drops;
	size_t conns_with_drops;
	FILE *json;
	int json_first;
};

/* ---- the capture's own view of each connection ---- */

static uint32_t seg_end(const struct lb_pkt_info *pi)
{
	return pi->seq + pi->payload_len + !!(pi->flags & LB_TCP_SYN) + !!(pi->flags & LB_TCP_FIN);
}

/*
 * Follows packet i in the capture's view: a segment starting beyond what
 * its sender was seen to send opens a hole; one that covers the hole's
 * start fills it; an ACK beyond what the other side was seen to send, or
 * beyond an open hole, proves the capture missed bytes the endpoints
 * exchanged.
 */
static void observe(struct audit *a, size_t i, const struct lb_pkt_info *pi)
{
	const struct drill_trace_pkt *tp = &a->t.pkts[i];
	struct conn_view *v = &a->views[tp->conn];
	struct dir_view *snd = &v->d[tp->dir], *rcv = &v->d[!tp->dir];
	uint32_t end = seg_end(pi);

	if (snd->seen && end != pi->seq) {
		if (lb_seq_gt(pi->seq, snd->end) && !snd->hole) {
			snd->hole = 1;
			snd->hole_start = snd->end;
		} else if (snd->hole && lb_seq_leq(pi->seq, snd->hole_start) &&
			   lb_seq_gt(end, snd->hole_start)) {
			snd->hole = 0;
		}
	}
	if (!snd->seen || lb_seq_gt(end, snd->end))
		snd->end = end;
	snd->seen = 1;
	if ((pi->flags & LB_TCP_ACK) && rcv->seen && !v->loss_at &&
	    (lb_seq_gt(pi->ack, rcv->end) || (rcv->hole && lb_seq_gt(pi->ack, rcv->hole_start))))
		v->loss_at = i + 1;
}

static enum explain explain(const struct audit *a, size_t i)
{
	const struct drill_trace_pkt *tp = &a->t.pkts[i];
	const struct drill_trace_conn *tc = &a->t.conns[tp->conn];
	const struct conn_view *v = &a->views[tp->conn];

	if (tc->syn == SIZE_MAX || tc->syn > i)
		return EX_MIDSTREAM;
	if (v->loss_at && v->loss_at - 1 <= i)
		return EX_CAPTURE_LOSS;
	return EX_UNEXPLAINED;
}

/* ---- reporting one drop ---- */

static void flags_text(uint8_t f, char *buf)
{
	static const struct { uint8_t bit; char c; } names[] = {
		{ LB_TCP_SYN, 'S' }, { LB_TCP_FIN, 'F' }, { LB_TCP_RST, 'R' },
		{ LB_TCP_PSH, 'P' }, { LB_TCP_ACK, '.' },
	};
	char *p = buf;

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (f & names[k].bit)
			*p++ = names[k].c;
	*p = '\0';
}

struct drop_info {
	size_t i;
	const struct lb_pkt_info *pi;
	uint8_t reason;
	const char *state;	/* the tracker's state before the packet */
	enum explain ex;
};

static void print_drop(const struct audit *a, const struct drop_info *d)
{
	const struct drill_trace_pkt *tp = &a->t.pkts[d->i];
	const struct drill_trace_conn *tc = &a->t.conns[tp->conn];
	char client[64], vip[64], fl[8];

	lb_addr_format_port(&tc->orig.src, tc->orig.sport, client, sizeof(client));
	lb_addr_format_port(&tc->orig.dst, tc->orig.dport, vip, sizeof(vip));
	flags_text(d->pi->flags, fl);
	printf("  #%-8llu %10.6f %-26s %s %-24s [%-4s] seq %u ack %u len %u  %s (%s) %s\n",
	       (unsigned long long)tp->index, tp->ts_us / 1e6, client,
	       tp->dir == LB_DIR_ORIG ? "->" : "<-", vip, fl, d->pi->seq, d->pi->ack,
	       d->pi->payload_len, lb_counter_name(d->reason), d->state, explain_names[d->ex]);
}

static void json_drop(struct audit *a, const struct drop_info *d)
{
	const struct drill_trace_pkt *tp = &a->t.pkts[d->i];
	const struct drill_trace_conn *tc = &a->t.conns[tp->conn];
	char client[64], vip[64], fl[8];

	if (!a->json)
		return;
	lb_addr_format_port(&tc->orig.src, tc->orig.sport, client, sizeof(client));
	lb_addr_format_port(&tc->orig.dst, tc->orig.dport, vip, sizeof(vip));
	flags_text(d->pi->flags, fl);
	fprintf(a->json, "%s{\"record\":%llu,\"t_us\":%llu,\"client\":\"%s\",\"vip\":\"%s\","
			 "\"dir\":\"%s\",\"flags\":\"%s\",\"seq\":%u,\"ack\":%u,\"len\":%u,"
			 "\"reason\":\"%s\",\"state\":\"%s\",\"explained\":\"%s\"}",
		a->json_first ? "" : ",\n", (unsigned long long)tp->index,
		(unsigned long long)tp->ts_us, client, vip,
		tp->dir == LB_DIR_ORIG ? "orig" : "reply", fl, d->pi->seq, d->pi->ack,
		d->pi->payload_len, lb_counter_name(d->reason), d->state, explain_names[d->ex]);
	a->json_first = 0;
}

/* ---- the run ---- */

/*
 * Readies trace packet i for the engine: a reply's source becomes the
 * backend the engine chose (see drill_replay's prepare()).
 */
static struct lb_packet prepare(struct audit *a, struct lb_engine *e, size_t i, uint64_t now,
				struct lb_conn_state *st, int *known)
{
	const struct drill_trace_pkt *tp = &a->t.pkts[i];
	/* The trace keeps only headers, and captures hold CHECKSUM_PARTIAL
	 * packets (offload): no checksum here is the wire's. */
	struct lb_packet pkt = { .data = a->scratch, .len = tp->len,
				 .flags = LB_PKT_F_CSUM_TRUSTED,
				 .hook = tp->dir == LB_DIR_ORIG ? LB_HOOK_PRE : LB_HOOK_POST };
	struct lb_pkt_info pi;

	/* The engine reads only the headers, which the trace kept. */
	memcpy(a->scratch, tp->data, tp->stored);
	*known = lb_engine_conn_find(e, &a->t.conns[tp->conn].orig, now, st) == 0;
	if (tp->dir == LB_DIR_REPLY && *known &&
	    lb_pkt_parse(a->scratch, tp->len, &pi) == LB_PKT_OK)
		lb_pkt_nat(a->scratch, &pi, 0, &st->backend, st->backend_port, 0);
	return pkt;
}

static void on_drop(struct audit *a, size_t i, const struct lb_pkt_info *pi, uint8_t reason,
		    const char *state)
{
	struct drop_info d = { .i = i, .pi = pi, .reason = reason, .state = state,
			       .ex = explain(a, i) };
	struct conn_view *v = &a->views[a->t.pkts[i].conn];

	a->drops++;
	a->by_reason[reason][d.ex]++;
	a->by_explain[d.ex]++;
	a->conns_with_drops += v->drops++ == 0;
	if (a->o.verbose || (d.ex == EX_UNEXPLAINED && a->by_explain[d.ex] <= a->o.max_list) ||
	    (d.ex != EX_UNEXPLAINED && a->by_explain[d.ex] <= 3))
		print_drop(a, &d);
	json_drop(a, &d);
}

static int run(struct audit *a, char *err, size_t errlen)
{
	struct lb_engine_conf ec = a->conf.engine;
	struct lb_engine *e;
	struct lb_worker *w;
	uint64_t next_tick = START_MS;

	ec.max_conns = a->t.nconns * 2 + 1024;
	ec.seed = 0x5eed;
	e = lb_engine_new(&ec, START_MS);
	if (!e || lb_engine_set_services(e, a->conf.services, a->conf.nservices) < 0) {
		snprintf(err, errlen, "cannot build the engine: %s", strerror(errno));
		lb_engine_free(e);
		return -1;
	}
	w = lb_engine_worker_new(e);
	printf("\n  %-9s %-10s %-26s    %-24s %-6s %s\n", "record", "time", "client", "vip",
	       "flags", "detail (reason, state before, explanation)");
	for (size_t i = 0; i < a->t.npkts; i++) {
		uint64_t now = START_MS + a->t.pkts[i].ts_us / 1000u;
		struct lb_conn_state st;
		struct lb_pkt_info pi;
		struct lb_packet pkt;
		int known;

		for (; next_tick <= now; next_tick += TICK_MS)
			lb_engine_tick(e, w, next_tick);
		/* Parsing reads only headers (a->t kept them), as the engine. */
		if (lb_pkt_parse(a->t.pkts[i].data, a->t.pkts[i].len, &pi) != LB_PKT_OK)
			continue;	/* the trace kept only what parses */
		observe(a, i, &pi);
		pkt = prepare(a, e, i, now, &st, &known);
		if (lb_engine_packet(e, w, &pkt, now) != LB_VERDICT_ACCEPT)
			on_drop(a, i, &pi, (uint8_t)pkt.drop_reason,
				known ? lb_tcp_state_name(st.tcp.state) : "none");
	}
	lb_engine_free(e);
	return 0;
}

/* ---- summary ---- */

static void print_summary(const struct audit *a)
{
	printf("\n  drops            %llu of %zu packets, in %zu of %zu connections\n",
	       (unsigned long long)a->drops, a->t.npkts, a->conns_with_drops, a->t.nconns);
	for (int ex = 0; ex < EX_COUNT; ex++)
		printf("  %-16s %llu\n", explain_names[ex], (unsigned long long)a->by_explain[ex]);
	for (int c = 0; c < LB_CNT_COUNT; c++) {
		uint64_t n = 0;

		for (int ex = 0; ex < EX_COUNT; ex++)
			n += a->by_reason[c][ex];
		if (!n)
			continue;
		printf("  %-24s %llu (", lb_counter_name(c), (unsigned long long)n);
		for (int ex = 0, first = 1; ex < EX_COUNT; ex++)
			if (a->by_reason[c][ex]) {
				printf("%s%s %llu", first ? "" : ", ", explain_names[ex],
				       (unsigned long long)a->by_reason[c][ex]);
				first = 0;
			}
		printf(")\n");
	}
	printf("result: %s\n", a->by_explain[EX_UNEXPLAINED]
		? "UNEXPLAINED: drops that are neither capture loss nor a connection begun "
		  "before the capture (tracker false positives?)"
		: "PASS: every drop explained");
}

static void json_close(struct audit *a)
{
	if (!a->json)
		return;
	fprintf(a->json, "\n],\"records\":%llu,\"packets\":%zu,\"connections\":%zu,"
			 "\"drops\":%llu,\"conns_with_drops\":%zu",
		(unsigned long long)a->t.records, a->t.npkts, a->t.nconns,
		(unsigned long long)a->drops, a->conns_with_drops);
	for (int ex = 0; ex < EX_COUNT; ex++)
		fprintf(a->json, ",\"%s\":%llu", explain_names[ex],
			(unsigned long long)a->by_explain[ex]);
	fprintf(a->json, ",\"by_reason\":{");
	for (int c = 0, first = 1; c < LB_CNT_COUNT; c++) {
		uint64_t n = 0;

		for (int ex = 0; ex < EX_COUNT; ex++)
			n += a->by_reason[c][ex];
		if (n) {
			fprintf(a->json, "%s\"%s\":%llu", first ? "" : ",", lb_counter_name(c),
				(unsigned long long)n);
			first = 0;
		}
	}
	fprintf(a->json, "}}\n");
	fclose(a->json);
	a->json = NULL;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lbdrill audit [--pcap] FILE (--config FILE | --auto-services)\n"
		"                     [--json FILE] [--list N] [--verbose]\n"
		"  every packet the engine's strict tracker drops, with its reason, its\n"
		"  connection's state, and whether the capture explains it\n"
		"  --auto-services every TCP server in the capture becomes a service\n"
		"  --list N        unexplained drops listed (default 100; --verbose: all drops)\n"
		"exit: 0 every drop explained, 1 unexplained drops, 2 bad usage or input\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "pcap", required_argument, NULL, 'p' }, { "config", required_argument, NULL, 'c' },
		{ "json", required_argument, NULL, 'j' }, { "list", required_argument, NULL, 'n' },
		{ "auto-services", no_argument, NULL, 'A' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int c;

	*o = (struct opts){ .max_list = 100 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:c:j:n:Avh", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->pcap = optarg; break;
		case 'c': o->config = optarg; break;
		case 'j': o->json = optarg; break;
		case 'n':
			if (num_parse_u64(optarg, 0, UINT32_MAX, &n) < 0)
				goto bad;
			o->max_list = (unsigned long)n;
			break;
		case 'A': o->auto_services = 1; break;
		case 'v': o->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (!o->pcap && optind < argc)
		o->pcap = argv[optind++];
	if (!o->pcap || (!o->config && !o->auto_services) || optind != argc)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return -1;
}

static int setup(struct audit *a, char *err, size_t errlen)
{
	int rc;

	if (a->o.config) {
		if (lb_conf_load(a->o.config, &a->conf, err, errlen) < 0)
			return -1;
	} else {
		lb_conf_defaults(&a->conf);
	}
	rc = a->o.auto_services ? drill_trace_load_auto(&a->t, a->o.pcap, &a->conf, err, errlen)
				: drill_trace_load(&a->t, a->o.pcap, &a->conf, err, errlen);
	if (rc < 0)
		return -1;
	a->views = calloc(a->t.nconns, sizeof(*a->views));
	a->scratch = malloc(65536);
	if (!a->views || !a->scratch) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (a->o.json && !(a->json = fopen(a->o.json, "w"))) {
		snprintf(err, errlen, "%s: %s", a->o.json, strerror(errno));
		return -1;
	}
	if (a->json)
		fprintf(a->json, "{\"drops_list\":[\n");
	a->json_first = 1;
	return 0;
}

static void print_header(const struct audit *a)
{
	printf("lbdrill audit: %s (%s)\n", a->o.pcap, a->t.linktype);
	printf("  records          %llu\n", (unsigned long long)a->t.records);
	printf("  packets          %zu in %zu connections\n", a->t.npkts, a->t.nconns);
	if (a->o.auto_services)
		printf("  auto services    %zu (one synthetic backend each)\n", a->conf.nservices);
	drill_trace_print_counts(&a->t, stdout);
}

int drill_audit_main(int argc, char **argv)
{
	struct audit a = { 0 };
	char err[512];
	int rc = 2;

	if (parse_args(argc, argv, &a.o) < 0)
		return 2;
	if (setup(&a, err, sizeof(err)) < 0) {
		fprintf(stderr, "lbdrill audit: %s\n", err);
	} else {
		print_header(&a);
		if (run(&a, err, sizeof(err)) < 0) {
			fprintf(stderr, "lbdrill audit: %s\n", err);
		} else {
			print_summary(&a);
			rc = a.by_explain[EX_UNEXPLAINED] ? 1 : 0;
		}
	}
	if (a.json)
		json_close(&a);
	free(a.views);
	free(a.scratch);
	drill_trace_free(&a.t);
	lb_conf_free(&a.conf);
	return rc;
}
