/*
 * drill_replay: see drill/drill_replay.h.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "clock.h"
#include "drill_pair.h"
#include "drill_replay.h"
#include "drill_replay_tl.h"
#include "drill_trace.h"
#include "num.h"
#include "lb_pkt.h"
#include "lb_repl.h"

#define START_MS 1000000ull	/* simulated clock at the first packet */
#define TICK_MS 100
/*
 * One loss pattern for every failover point: the points of a sweep are then
 * moments of one history (what the linear sweep replays once), and
 * --failover-at replays exactly what the sweep found.
 */
#define PAIR_SEED 0x1234
/*
 * NAT changes only headers, and the replay asks for incremental checksum
 * updates, so the engine reads and writes nothing past them: copying and
 * comparing this much of each packet is comparing all of it, at a fraction
 * of the cost of 64 KiB GSO payloads. The trace keeps at least this much.
 */
#define HEAD_BYTES DRILL_TRACE_HEAD
#define SCRATCH_BYTES 65536	/* a trace packet is at most 65535 bytes */

enum conn_status {
	CS_BEFORE,		/* ended before the failover */
	CS_SURVIVED,
	CS_NEW,			/* created after the failover, went through */
	CS_RESCHEDULED,		/* created after it, sent to another backend */
	CS_UNSYNCED,		/* lost; its handshake was not yet replicated */
	CS_LOST,		/* lost although the standby held its state */
	CS_MISMATCH,		/* rewritten differently than the reference */
};

static const char *const status_names[] = {
	"before", "survived", "new", "rescheduled", "unsynced", "LOST", "MISMATCH",
};

struct pkt_result {
	uint8_t accepted;
	uint8_t reason;		/* enum lb_counter of a drop */
	uint64_t hash;		/* of the packet as forwarded */
};

struct conn_result {
	uint8_t status;
	uint8_t held;		/* the standby had it at the failover */
	uint8_t behind;		/* ... in an older TCP state than the active */
	uint32_t dropped;	/* packets the reference forwarded, we dropped */
	uint32_t extra;		/* packets we forwarded, the reference dropped */
	size_t first_bad;	/* packet (trace index) of the first difference */
	uint8_t first_reason;
	uint64_t last_change_us; /* its last state change on the active, before */
};

/*
 * What decides how a tuple's next packets are judged: its entry on an
 * engine (backend, tracker with takeover slack and maxack, idle timeout).
 * Two engines whose entries for a tuple are the same judge the tuple's
 * next packets the same way.
 */
struct lane_state {
	uint8_t present;
	struct lb_addr backend;
	uint16_t backend_port;
	uint32_t expires_ms;	/* from the time the packet was handed in */
	uint32_t persist_ms;
	struct lb_tcp tcp;
};

#define NO_PKT UINT32_MAX

struct opts {
	const char *pcap, *config, *json;
	long failover_pkt;	/* record number; 0: none */
	double failover_s;	/* < 0: none */
	double loss;
	uint32_t delay_ms;
	int defer;
	int sweep;
	uint32_t every;
	int verbose;
	int auto_services;
	int full_sweep;		/* --sweep-full: every point replays it all */
	uint32_t jobs;		/* failover points replayed at once */
	uint64_t max_mem;	/* --max-memory, bytes; 0: what the system has */
	size_t max_conns;
};

struct replay {
	struct opts o;
	struct lb_conf conf;
	struct drill_trace t;
	struct pkt_result *ref;
	struct pkt_result *run;
	struct conn_result *conns;
	uint8_t *scratch;
	uint64_t ref_drops[LB_CNT_COUNT];
	/* For the linear sweep (sweep_linear()): */
	struct lane_state *ref_state;	/* per packet: its tuple's state after it,
					 * in the reference */
	uint32_t *lane;			/* per connection: its tuple's lane */
	uint32_t nlanes;
	uint32_t *lane_first, *lane_last; /* per lane: its first and last packet */
	uint32_t *next_in_lane;		/* per packet: its lane's next one, or NO_PKT */
	uint8_t *clean_after;		/* per packet: every later packet of its lane
					 * is one the reference forwarded, none a SYN */
	uint8_t *lane_seq;		/* per lane: its service has several backends,
					 * chosen by rr, wrr, sh or mh: every SYN must
					 * be replayed */
	uint32_t *seq_starts;		/* first packets of those lanes, in order */
	size_t nseq_starts;
	uint64_t *closed_syn_ms;	/* per packet j: when its lane's next packet, a
					 * new connection's SYN, comes while the
					 * reference's entry after j stays closed;
					 * else 0 (closed_lane_settled()) */
	uint32_t *lane_map;		/* a tuple's lane + 1, by hash (lane_of()) */
	size_t lane_map_mask;
	void *frozen;			/* the read-only data of a sweep, shared */
	size_t frozen_len;
	const uint32_t *find_idx;	/* reports go through these connections only */
	size_t nfind;			/* (a linear sweep's findings), else all */
};

static size_t report_count(const struct replay *r)
{
	return r->find_idx ? r->nfind : r->t.nconns;
}

static size_t report_conn(const struct replay *r, size_t n)
{
	return r->find_idx ? r->find_idx[n] : n;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/*
 * Readies a copy of trace packet i for engine e: a reply's source becomes
 * the backend e chose for its connection (the capture's backend, or the VIP
 * in a client-side capture, means nothing to this engine).
 */
static struct lb_packet prepare(struct replay *r, struct lb_engine *e, size_t i, uint64_t now)
{
	const struct drill_trace_pkt *tp = &r->t.pkts[i];
	/* A capture keeps HEAD_BYTES of each packet, and lbd's own capture
	 * holds CHECKSUM_PARTIAL packets: no checksum here is the wire's. */
	struct lb_packet pkt = { .data = r->scratch, .len = tp->len,
				 .flags = LB_PKT_F_CSUM_TRUSTED,
				 .hook = tp->dir == LB_DIR_ORIG ? LB_HOOK_PRE : LB_HOOK_POST };
	struct lb_conn_state st;
	struct lb_pkt_info pi;

	/* Only the first HEAD_BYTES of scratch are ever written (the trace's
	 * bytes, then NAT's header rewrite); the rest stays as calloc left it,
	 * zeros standing in for the payload the trace did not keep, so the
	 * engine, handed the packet's full length, reads nothing undefined. */
	if (pkt.len > SCRATCH_BYTES)
		pkt.len = SCRATCH_BYTES;
	memcpy(r->scratch, tp->data, tp->len < HEAD_BYTES ? tp->len : HEAD_BYTES);
	if (tp->dir == LB_DIR_REPLY &&
	    lb_engine_conn_find(e, &r->t.conns[tp->conn].orig, now, &st) == 0 &&
	    lb_pkt_parse(r->scratch, pkt.len, &pi) == LB_PKT_OK)
		lb_pkt_nat(r->scratch, &pi, 0, &st.backend, st.backend_port, 0);
	return pkt;
}

static void record(struct pkt_result *res, enum lb_verdict v, const struct lb_packet *pkt)
{
	res->accepted = v == LB_VERDICT_ACCEPT;
	res->reason = (uint8_t)(res->accepted ? 0 : pkt->drop_reason);
	res->hash = res->accepted ? fnv1a(pkt->data, pkt->len < HEAD_BYTES ? pkt->len
									    : HEAD_BYTES) : 0;
}

static uint64_t pkt_ms(const struct replay *r, size_t i)
{
	return START_MS + r->t.pkts[i].ts_us / 1000u;
}

/* ---- lanes: a tuple's packets, and its entry's state ---- */

/*
 * Tuple's entry on e at now, the packet having been handed in at t_pkt.
 * The replay is single-threaded: a look without the entry's lock writes
 * nothing, so a sweep's snapshot copies no page for it.
 */
static void lane_state_get(const struct lb_engine *e, const struct lb_tuple *t, uint64_t now,
			   uint64_t t_pkt, struct lane_state *out)
{
	struct lb_conn_info ci;

	memset(out, 0, sizeof(*out));
	if (lb_engine_conn_peek(e, t, now, &ci) < 0)
		return;
	out->present = 1;
	out->backend = ci.state.backend;
	out->backend_port = ci.state.backend_port;
	/* A defer hold moves the clock on after the packet; its deadline was
	 * set when it was handed in, so count from then. */
	out->expires_ms = ci.state.expires_ms + (uint32_t)(now - t_pkt);
	out->persist_ms = ci.state.persist_ms;
	out->tcp = ci.state.tcp;
}

static int peer_same(const struct lb_tcp_peer *a, const struct lb_tcp_peer *b)
{
	/* maxack means something only with its flag: note_ack() overwrites it */
	return a->end == b->end && a->maxend == b->maxend && a->maxwin == b->maxwin &&
	       a->wscale == b->wscale && a->flags == b->flags &&
	       (!(a->flags & LB_TCP_PF_MAXACK) || a->maxack == b->maxack);
}

static int tcp_same(const struct lb_tcp *a, const struct lb_tcp *b, int with_slack)
{
	return a->state == b->state && a->isn[0] == b->isn[0] && a->isn[1] == b->isn[1] &&
	       peer_same(&a->peer[0], &b->peer[0]) && peer_same(&a->peer[1], &b->peer[1]) &&
	       a->ign.set == b->ign.set && a->ign.isn == b->ign.isn && a->ign.win == b->ign.win &&
	       a->ign.wscale == b->ign.wscale &&
	       (!with_slack || (a->slack[0] == b->slack[0] && a->slack[1] == b->slack[1]));
}

/*
 * True when cur, a tuple's entry on the taken-over engine after packet j,
 * judges the tuple's later packets as the reference's entry after j does.
 * Takeover slack (which the reference never has) is used only when the
 * exact window check fails, that is on a packet the reference drops, and
 * in SYN_RECV: without such packets later, it changes nothing. Another
 * backend changes only the rewritten bytes: once the connection is already
 * "rescheduled" or "mismatch" (sticky), nothing later changes its status.
 * A lane whose service schedules by sequence settles only when no SYN
 * follows in it (each SYN must reach the scheduler).
 */
static int lane_settled(const struct replay *r, size_t j, const struct lane_state *cur,
			int sticky)
{
	const struct lane_state *ref = &r->ref_state[j];
	int clean = r->clean_after[j];

	if (cur->present != ref->present)
		return 0;
	if (r->lane_seq[r->lane[r->t.pkts[j].conn]] && !clean)
		return 0;
	if (!cur->present)
		return 1;
	if ((!lb_addr_equal(&cur->backend, &ref->backend) ||
	     cur->backend_port != ref->backend_port) && !(sticky && clean))
		return 0;
	if (cur->expires_ms != ref->expires_ms || cur->persist_ms != ref->persist_ms ||
	    !tcp_same(&cur->tcp, &ref->tcp, 0))
		return 0;
	return tcp_same(&cur->tcp, &ref->tcp, 1) ||
	       (cur->tcp.state >= LB_TCP_ESTABLISHED && clean);
}

static const struct drill_trace *qsort_trace;

static int u32_order(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int tuple_order(const void *a, const void *b)
{
	const struct drill_trace_conn *c = qsort_trace->conns;

	return memcmp(&c[*(const uint32_t *)a].orig, &c[*(const uint32_t *)b].orig,
		      sizeof(c->orig));
}

/* Gives every connection its tuple's lane, and every packet its lane's next. */
static int build_lanes(struct replay *r)
{
	size_t nc = r->t.nconns, np = r->t.npkts;
	uint32_t *ord = malloc(nc * sizeof(*ord) + 1);

	r->lane = malloc(nc * sizeof(*r->lane) + 1);
	r->next_in_lane = malloc(np * sizeof(*r->next_in_lane) + 1);
	r->lane_first = malloc(nc * sizeof(*r->lane_first) + 1);
	r->lane_last = malloc(nc * sizeof(*r->lane_last) + 1);
	if (!ord || !r->lane || !r->next_in_lane || !r->lane_first || !r->lane_last) {
		free(ord);
		return -1;
	}
	for (size_t c = 0; c < nc; c++)
		ord[c] = (uint32_t)c;
	qsort_trace = &r->t;
	qsort(ord, nc, sizeof(*ord), tuple_order);
	r->nlanes = 0;
	for (size_t n = 0; n < nc; n++) {
		if (n == 0 || tuple_order(&ord[n - 1], &ord[n]) != 0) {
			r->lane_first[r->nlanes] = NO_PKT;
			r->lane_last[r->nlanes++] = NO_PKT;
		}
		r->lane[ord[n]] = r->nlanes - 1;
	}
	free(ord);
	for (size_t i = np; i-- > 0;) {
		uint32_t l = r->lane[r->t.pkts[i].conn];

		if (r->lane_last[l] == NO_PKT)
			r->lane_last[l] = (uint32_t)i;
		r->next_in_lane[i] = r->lane_first[l];	/* NO_PKT: none after */
		r->lane_first[l] = (uint32_t)i;
	}
	return 0;
}

/* After the reference ran: which packets have only clean ones after them. */
static int build_clean_after(struct replay *r)
{
	r->clean_after = malloc(r->t.npkts + 1);
	if (!r->clean_after)
		return -1;
	for (size_t i = r->t.npkts; i-- > 0;) {
		uint32_t nx = r->next_in_lane[i];

		r->clean_after[i] = nx == NO_PKT ||
				    (r->ref[nx].accepted && !(r->t.pkts[nx].tcp_flags & LB_TCP_SYN) &&
				     r->clean_after[nx]);
	}
	return 0;
}

/* The reference: one engine, never failing over. */
static int run_reference(struct replay *r, char *err, size_t errlen)
{
	struct lb_engine_conf ec = r->conf.engine;
	struct lb_engine *e;
	struct lb_worker *w;
	uint64_t next_tick = START_MS;

	ec.max_conns = r->o.max_conns;
	ec.seed = 0x5eed;	/* as the pair's active: the same choices */
	e = lb_engine_new(&ec, START_MS);
	if (!e || lb_engine_set_services(e, r->conf.services, r->conf.nservices) < 0) {
		snprintf(err, errlen, "cannot build the reference engine: %s", strerror(errno));
		lb_engine_free(e);
		return -1;
	}
	w = lb_engine_worker_new(e);
	for (size_t i = 0; i < r->t.npkts; i++) {
		uint64_t now = pkt_ms(r, i);
		struct lb_packet pkt;

		for (; next_tick <= now; next_tick += TICK_MS)
			lb_engine_tick(e, w, next_tick);
		pkt = prepare(r, e, i, now);
		record(&r->ref[i], lb_engine_packet(e, w, &pkt, now), &pkt);
		lane_state_get(e, &r->t.conns[r->t.pkts[i].conn].orig, now, now, &r->ref_state[i]);
		if (!r->ref[i].accepted)
			r->ref_drops[pkt.drop_reason]++;
	}
	lb_engine_free(e);
	return 0;
}

/* What the standby held of connection c when the active died. */
static void note_standby_one(struct replay *r, struct drill_pair *p, size_t c, uint64_t now)
{
	struct lb_engine *dead = drill_pair_standby(p), *live = drill_pair_active(p);
	struct lb_conn_state a, b;
	int had_a, had_b;

	had_a = lb_engine_conn_find(dead, &r->t.conns[c].orig, now, &a) == 0;
	had_b = lb_engine_conn_find(live, &r->t.conns[c].orig, now, &b) == 0;
	r->conns[c].held = (uint8_t)had_b;
	r->conns[c].behind = (uint8_t)(had_a && (!had_b || b.tcp.state < a.tcp.state ||
						 b.created_us < a.created_us));
}

static void note_standby(struct replay *r, struct drill_pair *p, size_t k, uint64_t now)
{
	for (size_t c = 0; c < r->t.nconns; c++)
		if (r->t.conns[c].first < k)
			note_standby_one(r, p, c, now);
}

/* Moves the simulated clock: the capture's time plus what holds added. */
static uint64_t clock_for(const struct replay *r, size_t i, uint64_t *offset, uint64_t now)
{
	uint64_t want = pkt_ms(r, i) + *offset;

	if (now > want) {
		*offset += now - want;
		want = now;
	}
	return want;
}

/* Tracks when each connection last changed state on the active. */
static void note_change(struct replay *r, struct lb_engine *e, size_t i, uint8_t *last_state,
			uint64_t now)
{
	uint32_t c = r->t.pkts[i].conn;
	struct lb_conn_state st;

	if (lb_engine_conn_find(e, &r->t.conns[c].orig, now, &st) == 0 &&
	    st.tcp.state != last_state[c]) {
		last_state[c] = st.tcp.state;
		r->conns[c].last_change_us = r->t.pkts[i].ts_us;
	}
}

/* The pair, failing over before packet k (trace index). */
static int run_failover(struct replay *r, size_t k, uint64_t *fail_us, char *err, size_t errlen)
{
	struct drill_pair_conf pc = { .conf = &r->conf, .max_conns = r->o.max_conns,
				      .loss = r->o.loss, .delay_ms = r->o.delay_ms,
				      .defer = r->o.defer, .seed = PAIR_SEED };
	uint64_t now = START_MS, offset = 0;
	uint8_t *last_state = calloc(r->t.nconns, 1);
	struct drill_pair *p = last_state ? drill_pair_new(&pc, &now, err, errlen) : NULL;

	if (!p) {
		free(last_state);
		return -1;
	}
	offset = now - START_MS;
	memset(r->conns, 0, r->t.nconns * sizeof(*r->conns));
	for (size_t i = 0; i < r->t.npkts; i++) {
		struct lb_packet pkt;
		enum lb_verdict v;

		now = clock_for(r, i, &offset, now);
		if (i == k) {
			drill_pair_advance(p, now);
			*fail_us = r->t.pkts[i].ts_us;
			drill_pair_failover(p, &now);
			note_standby(r, p, k, now);
		}
		pkt = prepare(r, drill_pair_active(p), i, now);
		v = drill_pair_packet(p, &pkt, &now);
		record(&r->run[i], v, &pkt);
		if (i < k)
			note_change(r, drill_pair_active(p), i, last_state, now);
	}
	drill_pair_free(p);
	free(last_state);
	return 0;
}

/* Compares packet i (after failover point k) of the run, b, with the reference's. */
static void judge_packet(struct replay *r, size_t k, size_t i, const struct pkt_result *b)
{
	const struct pkt_result *a = &r->ref[i];
	struct conn_result *c = &r->conns[r->t.pkts[i].conn];
	int created_after = r->t.conns[r->t.pkts[i].conn].first >= k;

	if (a->accepted && !b->accepted) {
		if (!c->dropped++ && !c->extra)
			c->first_bad = i, c->first_reason = b->reason;
	} else if (!a->accepted && b->accepted) {
		c->extra++;
	} else if (a->accepted && a->hash != b->hash && c->status != CS_MISMATCH &&
		   c->status != CS_RESCHEDULED) {
		c->status = created_after ? CS_RESCHEDULED : CS_MISMATCH;
		if (!c->dropped)
			c->first_bad = i;
	}
}

/* Connection n's status, its packets after point k judged. */
static void judge_status(struct replay *r, size_t k, size_t n)
{
	struct conn_result *c = &r->conns[n];

	if (r->t.conns[n].last < k)
		c->status = CS_BEFORE;
	else if (c->dropped)
		c->status = (r->t.conns[n].first < k && c->behind) ? CS_UNSYNCED : CS_LOST;
	else if (c->status != CS_MISMATCH && c->status != CS_RESCHEDULED)
		c->status = r->t.conns[n].first >= k ? CS_NEW : CS_SURVIVED;
}

/* Compares the runs after packet k and gives every connection its status. */
static void judge(struct replay *r, size_t k)
{
	for (size_t i = k; i < r->t.npkts; i++)
		judge_packet(r, k, i, &r->run[i]);
	for (size_t n = 0; n < r->t.nconns; n++)
		judge_status(r, k, n);
}

struct tally {
	size_t n[sizeof(status_names) / sizeof(status_names[0])];
	double max_unsynced_age_ms;
	size_t replayed;	/* a sweep point's packets replayed after its failover */
};

static void count(const struct replay *r, uint64_t fail_us, struct tally *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t c = 0; c < r->t.nconns; c++) {
		t->n[r->conns[c].status]++;
		if (r->conns[c].status == CS_UNSYNCED) {
			double age = ((double)fail_us - (double)r->conns[c].last_change_us) / 1000.0;

			if (age > t->max_unsynced_age_ms)
				t->max_unsynced_age_ms = age;
		}
	}
}

static int exit_status(const struct tally *t)
{
	if (t->n[CS_LOST] || t->n[CS_MISMATCH])
		return 3;
	return t->n[CS_UNSYNCED] ? 1 : 0;
}

/* ---- reporting ---- */

static void print_conn(const struct replay *r, size_t n, uint64_t fail_us, FILE *f)
{
	const struct drill_trace_conn *tc = &r->t.conns[n];
	const struct conn_result *c = &r->conns[n];
	char client[64], vip[64];

	lb_addr_format_port(&tc->orig.src, tc->orig.sport, client, sizeof(client));
	lb_addr_format_port(&tc->orig.dst, tc->orig.dport, vip, sizeof(vip));
	fprintf(f, "  %-28s %-24s #%-7llu %-11s", client, vip,
		(unsigned long long)r->t.pkts[tc->first].index, status_names[c->status]);
	if (c->dropped)
		fprintf(f, " %u packet(s) dropped (%s), first at #%llu", c->dropped,
			lb_counter_name(c->first_reason),
			(unsigned long long)r->t.pkts[c->first_bad].index);
	else if (c->status == CS_MISMATCH || c->status == CS_RESCHEDULED)
		fprintf(f, " rewritten differently from #%llu",
			(unsigned long long)r->t.pkts[c->first_bad].index);
	if (c->status == CS_UNSYNCED && c->held)
		fprintf(f, "; the standby was behind: last state change %.1f ms before the failover",
			((double)fail_us - (double)c->last_change_us) / 1000.0);
	else if (c->status == CS_UNSYNCED)
		fprintf(f, "; not on the standby: created %.1f ms before the failover",
			((double)fail_us - (double)r->t.pkts[tc->first].ts_us) / 1000.0);
	else if (c->status == CS_LOST)
		fprintf(f, "; the standby held its state (%s)", c->held ? "up to date" : "?");
	if (c->extra)
		fprintf(f, "; %u forwarded that the reference dropped", c->extra);
	fputc('\n', f);
}

static void print_header(const struct replay *r)
{
	printf("lbdrill replay: %s (%s)\n", r->o.pcap, r->t.linktype);
	printf("  records          %llu\n", (unsigned long long)r->t.records);
	printf("  replayed         %zu packets in %zu connections\n", r->t.npkts, r->t.nconns);
	if (r->o.auto_services)
		printf("  auto services    %zu (one synthetic backend each)\n", r->conf.nservices);
	drill_trace_print_counts(&r->t, stdout);
	printf("  sync link        loss %.1f%%, delay %u ms, defer %s\n", r->o.loss * 100,
	       r->o.delay_ms, r->o.defer ? "on" : "off");
	printf("  reference        ");
	{
		size_t acc = 0;

		for (size_t i = 0; i < r->t.npkts; i++)
			acc += r->ref[i].accepted;
		printf("forwarded %zu, dropped %zu", acc, r->t.npkts - acc);
		for (int c = 0; c < LB_CNT_COUNT; c++)
			if (r->ref_drops[c])
				printf(" %s %llu", lb_counter_name(c), (unsigned long long)r->ref_drops[c]);
		printf("\n");
	}
}

static void print_tally(const struct tally *t)
{
	printf("  connections     ");
	for (size_t s = 0; s < sizeof(t->n) / sizeof(t->n[0]); s++)
		printf(" %s %zu%s", status_names[s], t->n[s],
		       s + 1 < sizeof(t->n) / sizeof(t->n[0]) ? "," : "\n");
}

/* A connection's tuple as "client" and "vip" members. */
static void json_tuple(FILE *f, const struct drill_trace_conn *tc)
{
	char client[64], vip[64];

	lb_addr_format_port(&tc->orig.src, tc->orig.sport, client, sizeof(client));
	lb_addr_format_port(&tc->orig.dst, tc->orig.dport, vip, sizeof(vip));
	fprintf(f, "\"client\":\"%s\",\"vip\":\"%s\"", client, vip);
}

/* A connection lost or altered: what a sweep writes out. */
static int is_finding(uint8_t status)
{
	return status == CS_UNSYNCED || status == CS_LOST || status == CS_MISMATCH;
}

/*
 * The connections that did not simply survive, as a JSON array; with
 * lost_only, only the findings (a sweep would otherwise list every
 * rescheduled connection at every point).
 */
static void json_conns(FILE *f, const struct replay *r, uint64_t fail_us, int lost_only)
{
	int first = 1;

	fputc('[', f);
	for (size_t m = 0; m < report_count(r); m++) {
		size_t n = report_conn(r, m);
		const struct conn_result *c = &r->conns[n];

		if (c->status == CS_BEFORE || c->status == CS_SURVIVED || c->status == CS_NEW ||
		    (lost_only && !is_finding(c->status)))
			continue;
		fprintf(f, "%s{", first ? "" : ",");
		json_tuple(f, &r->t.conns[n]);
		fprintf(f, ",\"first_seen_record\":%llu,\"status\":\"%s\",\"dropped\":%u",
			(unsigned long long)r->t.pkts[r->t.conns[n].first].index,
			status_names[c->status], c->dropped);
		if (c->dropped || c->status == CS_MISMATCH || c->status == CS_RESCHEDULED)
			fprintf(f, ",\"first_record\":%llu",
				(unsigned long long)r->t.pkts[c->first_bad].index);
		if (c->dropped)
			fprintf(f, ",\"reason\":\"%s\"", lb_counter_name(c->first_reason));
		if (c->status == CS_UNSYNCED)
			fprintf(f, ",\"held\":%s,\"age_ms\":%.3f", c->held ? "true" : "false",
				((double)fail_us - (double)c->last_change_us) / 1000.0);
		fputc('}', f);
		first = 0;
	}
	fputc(']', f);
}

/* One failover point's figures, without braces. */
static void json_point(FILE *f, const struct replay *r, size_t k, uint64_t fail_us,
		       const struct tally *t, int lost_only)
{
	fprintf(f, "\"failover_record\":%llu,\"failover_ms\":%.3f,",
		(unsigned long long)r->t.pkts[k].index, fail_us / 1000.0);
	for (size_t s = 0; s < sizeof(t->n) / sizeof(t->n[0]); s++)
		fprintf(f, "\"%s\":%zu,", status_names[s], t->n[s]);
	fprintf(f, "\"max_unsynced_age_ms\":%.3f,\"exit\":%d,\"conns\":",
		t->max_unsynced_age_ms, exit_status(t));
	json_conns(f, r, fail_us, lost_only);
}

static FILE *json_open(const struct replay *r)
{
	FILE *f = fopen(r->o.json, "w");

	if (!f)
		fprintf(stderr, "lbdrill replay: %s: %s\n", r->o.json, strerror(errno));
	return f;
}

/* Every connection's progress across the failover (drill/drill_replay_tl.h). */
static void write_timeline(FILE *f, const struct replay *r, size_t k, uint64_t fail_us)
{
	uint8_t *fwd = malloc(r->t.npkts + 1);
	const char **status = calloc(r->t.nconns + 1, sizeof(*status));

	if (fwd && status) {
		for (size_t i = 0; i < r->t.npkts; i++)
			fwd[i] = r->run[i].accepted;
		for (size_t c = 0; c < r->t.nconns; c++)
			status[c] = status_names[r->conns[c].status];
		drill_replay_tl_json(f, &r->t, fwd, status, k, fail_us);
	}
	free(fwd);
	free(status);
}

static void write_json(const struct replay *r, size_t k, uint64_t fail_us, const struct tally *t)
{
	FILE *f = json_open(r);

	if (!f)
		return;
	fprintf(f, "{\"records\":%llu,\"packets\":%zu,\"connections\":%zu,",
		(unsigned long long)r->t.records, r->t.npkts, r->t.nconns);
	json_point(f, r, k, fail_us, t, 0);
	write_timeline(f, r, k, fail_us);
	fprintf(f, "}\n");
	fclose(f);
}

/* ---- one failover, or a sweep over many ---- */

static int replay_once(struct replay *r, size_t k, char *err, size_t errlen)
{
	uint64_t fail_us = 0;
	struct tally t;
	int status;

	if (run_failover(r, k, &fail_us, err, errlen) < 0)
		return -1;
	judge(r, k);
	count(r, fail_us, &t);
	printf("  failover         before record #%llu (t=+%.3f s)\n",
	       (unsigned long long)r->t.pkts[k].index, fail_us / 1e6);
	print_tally(&t);
	if (t.n[CS_UNSYNCED] + t.n[CS_LOST] + t.n[CS_MISMATCH] + t.n[CS_RESCHEDULED] || r->o.verbose) {
		printf("\n  %-28s %-24s %-8s %-11s detail\n", "client", "vip", "first", "status");
		for (size_t n = 0; n < r->t.nconns; n++)
			if (r->o.verbose || (r->conns[n].status != CS_SURVIVED &&
					     r->conns[n].status != CS_NEW &&
					     r->conns[n].status != CS_BEFORE))
				print_conn(r, n, fail_us, stdout);
	}
	if (r->o.json)
		write_json(r, k, fail_us, &t);
	status = exit_status(&t);
	printf("result: %s\n", status == 0 ? "PASS: every connection the reference kept survived"
			       : status == 1 ? "LOSS: only connections created in the unsynchronised window"
					     : "FAIL: the takeover lost or altered a replicated connection");
	return status;
}

struct sweep_sum {
	size_t runs, points, with_loss, unsynced, failures, max_unsynced_one;
	uint64_t replayed;	/* packets replayed after the failovers, in all */
	double max_age_ms;
	FILE *json;		/* --json: one object per failover point */
	uint64_t t0_ns, last_progress_ns;
	int progress;		/* a progress line on stderr (a terminal) */
};

/*
 * Every connection lost or altered at failover point k, one line each,
 * with the record to give --failover-at to replay exactly that case.
 */
static void sweep_findings(const struct replay *r, size_t k, uint64_t fail_us)
{
	for (size_t m = 0; m < report_count(r); m++) {
		size_t n = report_conn(r, m);

		if (!is_finding(r->conns[n].status))
			continue;
		printf("  at #%-8llu", (unsigned long long)r->t.pkts[k].index);
		print_conn(r, n, fail_us, stdout);
	}
}

static void sweep_note(struct sweep_sum *s, const struct replay *r, size_t k, uint64_t fail_us,
		       const struct tally *t)
{
	size_t lost = t->n[CS_UNSYNCED] + t->n[CS_LOST] + t->n[CS_MISMATCH];

	s->runs++;
	s->replayed += t->replayed;
	if (r->o.verbose) {
		/* where a sweep's time goes: the linear sweep replays after a
		 * failover only what can differ from the reference */
		if (s->progress)
			fputs("\r\033[K", stderr);
		printf("  point #%-8llu replayed %zu packet(s)\n",
		       (unsigned long long)r->t.pkts[k].index, t->replayed);
	}
	s->unsynced += t->n[CS_UNSYNCED];
	s->with_loss += (t->n[CS_UNSYNCED] + t->n[CS_LOST]) > 0;
	if (t->n[CS_UNSYNCED] > s->max_unsynced_one)
		s->max_unsynced_one = t->n[CS_UNSYNCED];
	if (t->max_unsynced_age_ms > s->max_age_ms)
		s->max_age_ms = t->max_unsynced_age_ms;
	s->failures += (t->n[CS_LOST] + t->n[CS_MISMATCH]) > 0;
	if (lost) {
		if (s->progress)
			fputs("\r\033[K", stderr);	/* the finding goes where the line was */
		sweep_findings(r, k, fail_us);
		fflush(stdout);
	}
	if (s->json) {
		fprintf(s->json, "%s{", s->runs > 1 ? ",\n" : "");
		json_point(s->json, r, k, fail_us, t, 1);
		fputc('}', s->json);
	}
}

/* "1h02m", "3m05s", "12s": an estimate needs no more. */
static void fmt_duration(char *buf, size_t len, double sec)
{
	unsigned long v = sec < 0 ? 0 : (unsigned long)(sec + 0.5);

	if (v >= 3600)
		snprintf(buf, len, "%luh%02lum", v / 3600, v / 60 % 60);
	else if (v >= 60)
		snprintf(buf, len, "%lum%02lus", v / 60, v % 60);
	else
		snprintf(buf, len, "%lus", v);
}

/* At most twice a second: done/total, the losses so far, the time left. */
static void sweep_progress(struct sweep_sum *s)
{
	uint64_t now = clock_mono_ns();
	double spent = (double)(now - s->t0_ns) / 1e9;
	char eta[32];

	if (!s->progress || now - s->last_progress_ns < 500000000ull)
		return;
	s->last_progress_ns = now;
	fmt_duration(eta, sizeof(eta), spent / (double)s->runs * (double)(s->points - s->runs));
	fprintf(stderr, "\r\033[K  sweep %zu/%zu (%.0f%%), %zu with losses, %zu failures, ETA %s",
		s->runs, s->points, 100.0 * (double)s->runs / (double)s->points, s->with_loss,
		s->failures, eta);
}

static void sweep_json_open(struct sweep_sum *s, const struct replay *r, uint32_t every)
{
	if (!r->o.json || !(s->json = json_open(r)))
		return;
	fprintf(s->json, "{\"records\":%llu,\"packets\":%zu,\"connections\":%zu,\"every\":%u,"
			 "\"defer\":%s,\"sync_loss\":%.4f,\"sync_delay_ms\":%u,\"points\":[\n",
		(unsigned long long)r->t.records, r->t.npkts, r->t.nconns, every,
		r->o.defer ? "true" : "false", r->o.loss, r->o.delay_ms);
}

static void sweep_json_close(struct sweep_sum *s, int status)
{
	if (!s->json)
		return;
	fprintf(s->json, "\n],\"failovers\":%zu,\"with_losses\":%zu,\"unsynced\":%zu,"
			 "\"max_unsynced_one\":%zu,\"max_unsynced_age_ms\":%.3f,"
			 "\"takeover_failures\":%zu,\"exit\":%d}\n",
		s->runs, s->with_loss, s->unsynced, s->max_unsynced_one, s->max_age_ms,
		s->failures, status);
	fclose(s->json);
}

/* The quadratic sweep: every failover point replays the whole capture. */
static int sweep_full(struct replay *r, struct sweep_sum *s, uint32_t every, char *err,
		      size_t errlen)
{
	for (size_t k = 1; k < r->t.npkts; k += every) {
		uint64_t fail_us = 0;
		struct tally t;

		if (run_failover(r, k, &fail_us, err, errlen) < 0)
			return -1;
		judge(r, k);
		count(r, fail_us, &t);
		t.replayed = r->t.npkts - k;
		sweep_note(s, r, k, fail_us, &t);
		sweep_progress(s);
	}
	return 0;
}

/*
 * ---- the linear sweep ----
 *
 * The pair replays the capture once. Before each failover point the process
 * forks: the child, a copy-on-write snapshot of both engines and the sync
 * link in flight, fails over and replays what follows; the parent goes on.
 * The child replays only the lanes (a tuple's packets) that can differ from
 * the reference: those alive at the failover, each until its entry on the
 * new active is the reference's entry after the same packet (lane_settled());
 * from then on the lane's packets are judged as the reference judged them.
 * A lane that begins after the failover starts from no entry on either
 * engine, so it is the reference's from its first packet, provided that
 * nothing but its own packets decides how it is treated: one backend per
 * service, no persistence or backend limits, a table and a half-open limit
 * the capture cannot fill (history_free()). Otherwise, and while a
 * defer-mode active can still hold packets for its dead peer (which moves
 * the clock of every later packet), the child replays every packet.
 */

/*
 * The standby's entry for a lane's tuple as closed_lane_settled() needs it:
 * ok when it judges the lane's next SYN as the reference's closed entry
 * does (closed_seen_of()), and until when (the pair's clock; 0: expired).
 */
struct closed_seen {
	uint8_t ok;
	uint64_t deadline;
};

/* A failover point's result, from the child, in memory shared with it. */
struct point_out {
	int done;
	uint64_t fail_us;
	struct tally t;
	size_t nfind;
	uint32_t *idx;			/* the findings' connections */
	struct conn_result *res;	/* and their results */
};

#define SWEEP_JOBS_MAX 16

struct walk {
	struct drill_pair *p;
	uint64_t now, offset;
	uint8_t *last_state;		/* per connection, for note_change() */
	uint32_t *cursor;		/* per lane: its last packet handed in */
	uint32_t *alive, *alive_pos;	/* lanes with packets on both sides */
	size_t nalive;
	size_t nbefore, nstarted;	/* connections ended, begun before it */
	int history_free;
	const struct replay *r;
	/* What the standby held of each lane's tuple, looked at again only
	 * after it imported a record of the tuple or the lane moved on
	 * (closed_seen_refresh()): */
	struct closed_seen *seen;
	uint8_t *seen_stale;		/* per lane */
	uint32_t *stale;		/* the lanes to look at again */
	size_t nstale;
	uint8_t *settled;		/* per lane: closed_lane_settled() at the next
					 * failover, by the last look */
	uint64_t settled_offset;	/* the clock offset it assumed */
	/* the child's: */
	size_t clock_idx;		/* the last packet its clock moved for */
	size_t replayed;		/* packets handed to the new active */
	uint8_t *diverged, *in_dirty;	/* per lane */
	uint32_t *dirty;		/* lanes diverged at some time */
	size_t ndirty;
	uint8_t *touched;		/* per connection */
	uint32_t *touch;
	size_t ntouch;
	uint32_t *heap;			/* next packets of diverged lanes */
	size_t nheap;
	struct point_out *out;		/* the child's slot */
	/* the points in flight, a ring: */
	struct point_out *slot[SWEEP_JOBS_MAX];
	pid_t slot_pid[SWEEP_JOBS_MAX];
	size_t slot_k[SWEEP_JOBS_MAX];
	size_t jobs, head, inflight;
	void *shared;
	size_t shared_len;
};

/* True when connection c is one of service sv's. */
static int conn_of(const struct replay *r, size_t c, const struct lb_service_conf *sv)
{
	return r->t.conns[c].orig.dport == sv->port &&
	       lb_addr_equal(&r->t.conns[c].orig.dst, &sv->vip);
}

/*
 * How a service's choice of backend for a new connection depends on the
 * past: not at all (one backend), on the choices made before and on the
 * engine (rr and wrr count them; sh and mh hash the client with the
 * engine's seed, which differs between the pair's nodes and the
 * reference): every new connection's SYN is replayed; or on the state of
 * other connections (lc, wlc, persistence, backend limits).
 */
enum sched_dep { DEP_NONE, DEP_SEQUENCE, DEP_STATE };

static enum sched_dep service_dep(const struct lb_service_conf *sv)
{
	if (sv->persistence_s)
		return DEP_STATE;
	for (size_t b = 0; b < sv->nbackends; b++)
		if (sv->backends[b].max_conns || sv->backends[b].drain)
			return DEP_STATE;
	if (sv->nbackends <= 1)
		return DEP_NONE;
	return strcmp(sv->scheduler, "rr") == 0 || strcmp(sv->scheduler, "wrr") == 0 ||
	       strcmp(sv->scheduler, "sh") == 0 || strcmp(sv->scheduler, "mh") == 0
		       ? DEP_SEQUENCE : DEP_STATE;
}

/*
 * Marks the lanes of sequence-scheduled services (lane_seq, seq_starts);
 * returns 1 when lanes may be skipped at all: no connection of a
 * state-scheduled service, and a table and half-open limit the capture
 * cannot fill.
 */
static int classify_lanes(struct replay *r)
{
	int ok = r->o.max_conns >= r->t.nconns && r->conf.engine.max_embryonic >= r->t.nconns;

	for (size_t n = 0; ok && n < r->conf.nservices; n++) {
		const struct lb_service_conf *sv = &r->conf.services[n];
		enum sched_dep dep = service_dep(sv);

		for (size_t c = 0; dep != DEP_NONE && c < r->t.nconns; c++) {
			if (!conn_of(r, c, sv))
				continue;
			if (dep == DEP_STATE)
				ok = 0;
			r->lane_seq[r->lane[c]] = 1;
		}
	}
	for (size_t l = 0; l < r->nlanes; l++)
		if (r->lane_seq[l])
			r->seq_starts[r->nseq_starts++] = r->lane_first[l];
	qsort_trace = &r->t;
	qsort(r->seq_starts, r->nseq_starts, sizeof(*r->seq_starts), u32_order);
	return ok;
}

/*
 * A lane alive at a failover only because its tuple comes back: its
 * connection ended before (the reference's entry after its last packet j
 * closed: TIME_WAIT or CLOSE) and its next packet, a client SYN, starts a
 * new one while that entry lives. Which packets j qualify depends on the
 * reference alone: worked out once, so that a snapshot looks up only the
 * new active's entry (closed_lane_settled()). The deadline is compared
 * with a second of margin (the clock offsets, tick phases).
 */
#define CLOSED_MARGIN_MS 1000

static int build_closed(struct replay *r)
{
	r->closed_syn_ms = calloc(r->t.npkts + 1, sizeof(*r->closed_syn_ms));
	if (!r->closed_syn_ms)
		return -1;
	for (size_t j = 0; j < r->t.npkts; j++) {
		uint32_t nx = r->next_in_lane[j], l = r->lane[r->t.pkts[j].conn];
		const struct lane_state *ref = &r->ref_state[j];
		const struct drill_trace_pkt *syn;
		uint64_t syn_ms;

		if (nx == NO_PKT)
			continue;
		syn = &r->t.pkts[nx];
		if (syn->dir != LB_DIR_ORIG ||
		    (syn->tcp_flags & (LB_TCP_SYN | LB_TCP_ACK | LB_TCP_RST)) != LB_TCP_SYN ||
		    r->t.conns[syn->conn].first != nx || !ref->present ||
		    ref->tcp.state < LB_TCP_TIME_WAIT || (r->lane_seq[l] && !r->clean_after[nx]))
			continue;
		syn_ms = pkt_ms(r, nx);
		if (syn_ms + CLOSED_MARGIN_MS < pkt_ms(r, j) + ref->expires_ms)
			r->closed_syn_ms[j] = syn_ms;
	}
	return 0;
}

/*
 * ---- the frozen data ----
 *
 * fork() copies the page table entries of every private page, and each
 * failover point forks: what a sweep only reads once the reference ran
 * (the trace and its packets' bytes, the reference's results and entry
 * states, the lanes) moves into one mapping of its own, made read-only, so
 * that no child can write into it. Where the kernel gives transparent huge
 * pages on request, it is private and on huge pages: fork() copies one
 * entry per 2 MiB and a child reads it without a fault. Otherwise it is
 * shared: fork() copies nothing of it, a child maps what it reads.
 */
static void *frozen_put(uint8_t **cur, const void *src, size_t len)
{
	void *dst = *cur;

	memcpy(dst, src, len);
	*cur += (len + 63) & ~(size_t)63;
	return dst;
}

#define FROZEN_MOVE(cur, field, len)                          \
	do {                                                  \
		void *old_ = (field);                         \
		(field) = frozen_put((cur), old_, (len));     \
		free(old_);                                   \
	} while (0)

#define HUGE_PAGE (2u << 20)

static int thp_on_request(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "";
	int ok;

	if (!f)
		return 0;
	ok = fgets(line, sizeof(line), f) && !strstr(line, "[never]");
	fclose(f);
	return ok;
}

/* A mapping of *len bytes (rounded up) for the frozen data, or NULL. */
static uint8_t *frozen_map(size_t *len)
{
	uint8_t *m;
	size_t lead;

	if (!thp_on_request()) {
		m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		return m == MAP_FAILED ? NULL : m;
	}
	/* huge pages need 2 MiB alignment: map one more and trim both ends */
	*len = (*len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	m = mmap(NULL, *len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	lead = (HUGE_PAGE - ((uintptr_t)m & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
	if (lead)
		munmap(m, lead);
	munmap(m + lead + *len, HUGE_PAGE - lead);
	m += lead;
	madvise(m, *len, MADV_HUGEPAGE);	/* a hint: 4 KiB pages still work */
	return m;
}

static int freeze(struct replay *r, char *err, size_t errlen)
{
	size_t np = r->t.npkts, nc = r->t.nconns, nl = r->nlanes + 1;
	size_t sizes[] = { np * sizeof(*r->t.pkts), nc * sizeof(*r->t.conns),
			   np * sizeof(*r->ref), np * sizeof(*r->ref_state),
			   np * sizeof(*r->next_in_lane), np, np * sizeof(*r->closed_syn_ms),
			   3 * nc * sizeof(uint32_t), nl, nl * sizeof(*r->seq_starts),
			   (r->lane_map_mask + 1) * sizeof(*r->lane_map) };
	size_t len = 64 * 16;
	uint8_t *cur;

	for (size_t n = 0; n < sizeof(sizes) / sizeof(sizes[0]); n++)
		len += (sizes[n] + 63) & ~(size_t)63;
	for (size_t i = 0; i < np; i++)
		len += (r->t.pkts[i].stored + 7) & ~(size_t)7;
	cur = frozen_map(&len);
	if (!cur) {
		snprintf(err, errlen, "cannot map %zu bytes: %s", len, strerror(errno));
		return -1;
	}
	r->frozen = cur;
	r->frozen_len = len;
	for (size_t i = 0; i < np; i++) {
		uint8_t *old = r->t.pkts[i].data;

		r->t.pkts[i].data = cur;
		memcpy(cur, old, r->t.pkts[i].stored);
		cur += (r->t.pkts[i].stored + 7) & ~(size_t)7;
		free(old);
	}
	cur = (uint8_t *)(((uintptr_t)cur + 63) & ~(uintptr_t)63);
	FROZEN_MOVE(&cur, r->t.pkts, sizes[0]);
	FROZEN_MOVE(&cur, r->t.conns, sizes[1]);
	FROZEN_MOVE(&cur, r->ref, sizes[2]);
	FROZEN_MOVE(&cur, r->ref_state, sizes[3]);
	FROZEN_MOVE(&cur, r->next_in_lane, sizes[4]);
	FROZEN_MOVE(&cur, r->clean_after, sizes[5]);
	FROZEN_MOVE(&cur, r->closed_syn_ms, sizes[6]);
	FROZEN_MOVE(&cur, r->lane, nc * sizeof(uint32_t));
	FROZEN_MOVE(&cur, r->lane_first, nc * sizeof(uint32_t));
	FROZEN_MOVE(&cur, r->lane_last, nc * sizeof(uint32_t));
	FROZEN_MOVE(&cur, r->lane_seq, sizes[8]);
	FROZEN_MOVE(&cur, r->seq_starts, sizes[9]);
	FROZEN_MOVE(&cur, r->lane_map, sizes[10]);
	/* the freed pages go back to the system: fork() would copy them too */
	malloc_trim(0);
	if (mprotect(r->frozen, r->frozen_len, PROT_READ) < 0) {
		snprintf(err, errlen, "mprotect: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Before teardown: nothing in the frozen mapping is free()d. */
static void thaw(struct replay *r)
{
	r->t.pkts = NULL;
	r->t.npkts = 0;
	r->t.conns = NULL;
	r->t.nconns = 0;
	r->ref = NULL;
	r->ref_state = NULL;
	r->next_in_lane = NULL;
	r->clean_after = NULL;
	r->closed_syn_ms = NULL;
	r->lane = r->lane_first = r->lane_last = NULL;
	r->lane_seq = NULL;
	r->seq_starts = NULL;
	r->lane_map = NULL;
	munmap(r->frozen, r->frozen_len);
	r->frozen = NULL;
}

static void heap_push(struct walk *w, uint32_t v)
{
	size_t i = w->nheap++;

	for (; i && w->heap[(i - 1) / 2] > v; i = (i - 1) / 2)
		w->heap[i] = w->heap[(i - 1) / 2];
	w->heap[i] = v;
}

static uint32_t heap_pop(struct walk *w)
{
	uint32_t top = w->heap[0], v = w->heap[--w->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= w->nheap)
			break;
		if (c + 1 < w->nheap && w->heap[c + 1] < w->heap[c])
			c++;
		if (w->heap[c] >= v)
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	w->heap[i] = v;
	return top;
}

static void walk_touch(struct walk *w, uint32_t c)
{
	if (!w->touched[c]) {
		w->touched[c] = 1;
		w->touch[w->ntouch++] = c;
	}
}

static void walk_dirty(struct walk *w, uint32_t l, int diverged)
{
	w->diverged[l] = (uint8_t)diverged;
	if (!w->in_dirty[l]) {
		w->in_dirty[l] = 1;
		w->dirty[w->ndirty++] = l;
	}
}

static void alive_set(struct walk *w, uint32_t l, int on)
{
	if (on) {
		w->alive_pos[l] = (uint32_t)w->nalive;
		w->alive[w->nalive++] = l;
	} else {
		uint32_t last = w->alive[--w->nalive];

		w->alive[w->alive_pos[l]] = last;
		w->alive_pos[last] = w->alive_pos[l];
	}
}

/* Lane l's entry on the standby is to be looked at again. */
static void seen_stale(struct walk *w, uint32_t l)
{
	if (!w->seen_stale[l]) {
		w->seen_stale[l] = 1;
		w->stale[w->nstale++] = l;
	}
}

/* The parent: packet i through the pair, before any failover. */
static void walk_packet(struct replay *r, struct walk *w, size_t i)
{
	uint32_t c = r->t.pkts[i].conn, l = r->lane[c];
	struct lb_packet pkt;

	w->now = clock_for(r, i, &w->offset, w->now);
	pkt = prepare(r, drill_pair_active(w->p), i, w->now);
	drill_pair_packet(w->p, &pkt, &w->now);
	note_change(r, drill_pair_active(w->p), i, w->last_state, w->now);
	w->cursor[l] = (uint32_t)i;
	seen_stale(w, l);
	if (r->lane_first[l] != r->lane_last[l]) {
		if (i == r->lane_first[l])
			alive_set(w, l, 1);
		else if (i == r->lane_last[l])
			alive_set(w, l, 0);
	}
	w->nstarted += r->t.conns[c].first == i;
	w->nbefore += r->t.conns[c].last == i;
}

/* The child: packet j (of point k) through the new active, judged. */
static void child_packet(struct replay *r, struct walk *w, size_t k, size_t j)
{
	uint32_t c = r->t.pkts[j].conn, l = r->lane[c];
	struct lane_state cur;
	struct pkt_result res;
	struct lb_packet pkt;
	uint64_t t_pkt;

	if (j != k) {
		/* Packets skipped since the last one moved the clock only as the
		 * first of them did (nothing is held): once, then to j. */
		if (j > w->clock_idx + 1)
			w->now = clock_for(r, w->clock_idx + 1, &w->offset, w->now);
		w->now = clock_for(r, j, &w->offset, w->now);
	}
	w->clock_idx = j;
	w->replayed++;
	t_pkt = w->now;
	pkt = prepare(r, drill_pair_active(w->p), j, w->now);
	record(&res, drill_pair_packet(w->p, &pkt, &w->now), &pkt);
	judge_packet(r, k, j, &res);
	walk_touch(w, c);
	w->cursor[l] = (uint32_t)j;
	lane_state_get(drill_pair_active(w->p), &r->t.conns[c].orig, w->now, t_pkt, &cur);
	walk_dirty(w, l, !lane_settled(r, j, &cur, r->conns[c].status == CS_MISMATCH ||
						     r->conns[c].status == CS_RESCHEDULED));
}

/* The child: the statuses, the tally and the findings, into w->out. */
static void child_finish(struct replay *r, struct walk *w, size_t k, uint64_t fail_us)
{
	struct point_out *o = w->out;
	size_t alive_touched = 0, new_touched = 0;

	memset(&o->t, 0, sizeof(o->t));
	o->nfind = 0;
	for (size_t m = 0; m < w->ntouch; m++) {
		uint32_t n = w->touch[m];
		struct conn_result *c = &r->conns[n];

		judge_status(r, k, n);
		o->t.n[c->status]++;
		if (r->t.conns[n].first >= k)
			new_touched++;
		else
			alive_touched++;
		if (c->status == CS_UNSYNCED) {
			double age = ((double)fail_us - (double)c->last_change_us) / 1000.0;

			if (age > o->t.max_unsynced_age_ms)
				o->t.max_unsynced_age_ms = age;
		}
		if (is_finding(c->status)) {
			o->idx[o->nfind] = n;
			o->res[o->nfind++] = *c;
		}
	}
	o->t.n[CS_BEFORE] += w->nbefore;
	o->t.n[CS_SURVIVED] += w->nstarted - w->nbefore - alive_touched;
	o->t.n[CS_NEW] += r->t.nconns - w->nstarted - new_touched;
	o->t.replayed = w->replayed;
	o->fail_us = fail_us;
	o->done = 1;
}

/* The lanes by tuple: open addressing, at most half full. */
static int build_lane_map(struct replay *r)
{
	size_t size = 2;

	while (size < 2 * (size_t)r->nlanes)
		size <<= 1;
	r->lane_map = calloc(size, sizeof(*r->lane_map));
	if (!r->lane_map)
		return -1;
	r->lane_map_mask = size - 1;
	for (uint32_t l = 0; l < r->nlanes; l++) {
		const struct lb_tuple *t = &r->t.conns[r->t.pkts[r->lane_first[l]].conn].orig;
		size_t h = lb_tuple_hash(t, 0) & r->lane_map_mask;

		while (r->lane_map[h])
			h = (h + 1) & r->lane_map_mask;
		r->lane_map[h] = l + 1;
	}
	return 0;
}

/* The lane of tuple t, or NO_PKT when the capture has none. */
static uint32_t lane_of(const struct replay *r, const struct lb_tuple *t)
{
	for (size_t h = lb_tuple_hash(t, 0) & r->lane_map_mask; r->lane_map[h];
	     h = (h + 1) & r->lane_map_mask) {
		uint32_t l = r->lane_map[h] - 1;

		if (lb_tuple_equal(&r->t.conns[r->t.pkts[r->lane_first[l]].conn].orig, t))
			return l;
	}
	return NO_PKT;
}

/* The standby imports a record of tuple orig: its entry may change. */
static void seen_import(void *arg, const struct lb_tuple *orig)
{
	struct walk *w = arg;
	uint32_t l = lane_of(w->r, orig);

	if (l != NO_PKT)
		seen_stale(w, l);
}

/*
 * What entry cur, the standby's (or the new active's) for lane l after its
 * packet j, means for the lane's next packet, a SYN that the reference
 * judges on its closed entry (build_closed()). That SYN starts the tracker
 * afresh whatever the closed entry held and keeps its backend (lb_tcp_init
 * on reopening), so a closed entry on the same backend, alive until the SYN,
 * judges it the same. So does no entry at all, where the SYN creates one
 * with the same fresh tracker, provided the service's choice of backend
 * depends on nothing but the SYN (one backend, no persistence or limits:
 * not a sequence-scheduled lane, and history_free) and nothing can refuse
 * it (history_free: a table and a half-open limit the capture cannot
 * fill). That is the common case since a connection that opens and closes
 * inside one flush is never replicated (the standby never hears of it):
 * without it, every such lane was replayed at every later point.
 */
static struct closed_seen closed_seen_of(const struct replay *r, const struct walk *w,
					 uint32_t l, uint32_t j, const struct lane_state *cur)
{
	struct closed_seen cs = { 0 };

	if (!cur->present) {
		cs.ok = w->history_free && !r->lane_seq[l];
		cs.deadline = UINT64_MAX;	/* stays absent until an import */
		return cs;
	}
	cs.ok = cur->tcp.state >= LB_TCP_TIME_WAIT &&
		lb_addr_equal(&cur->backend, &r->ref_state[j].backend) &&
		cur->backend_port == r->ref_state[j].backend_port;
	cs.deadline = cur->expires_ms ? w->now + cur->expires_ms : 0;
	return cs;
}

/*
 * The parent, before a fork: looks again at the standby's entries of the
 * lanes that moved on or whose tuple it imported since the last look. An
 * entry changes only by an import or the lane's own packets (which the
 * standby does not see before it is promoted) until its deadline, and
 * closed_lane_settled() asks for a deadline past the lane's next SYN: what
 * the last look saw holds for every snapshot until the next.
 */
static void closed_seen_refresh(const struct replay *r, struct walk *w)
{
	if (w->offset != w->settled_offset) {
		/* the clock moved on (a defer hold): every deadline again */
		for (size_t a = 0; a < w->nalive; a++)
			seen_stale(w, w->alive[a]);
		w->settled_offset = w->offset;
	}
	for (size_t n = 0; n < w->nstale; n++) {
		uint32_t l = w->stale[n], j = w->cursor[l];
		struct closed_seen *cs = &w->seen[l];
		struct lane_state cur;

		w->seen_stale[l] = 0;
		w->settled[l] = 0;
		*cs = (struct closed_seen){ 0 };
		if (r->lane[r->t.pkts[j].conn] != l || !r->closed_syn_ms[j])
			continue;	/* not begun, or not closed */
		lane_state_get(drill_pair_standby(w->p), &r->t.conns[r->t.pkts[j].conn].orig,
			       w->now, w->now, &cur);
		*cs = closed_seen_of(r, w, l, j, &cur);
		w->settled[l] = cs->ok && r->closed_syn_ms[j] + w->offset + CLOSED_MARGIN_MS <
						  cs->deadline;
	}
	w->nstale = 0;
}

/*
 * A lane alive at the failover only because its tuple comes back (see
 * build_closed()): a SYN on a closed entry starts the tracker afresh
 * whatever it held and keeps the entry's backend, so when the new active
 * too holds a closed entry on the same backend until the SYN comes, or none
 * where a new one would be the same (closed_seen_of()), both judge it and
 * all that follows the same way: the lane is settled without replaying
 * anything.
 */
static int closed_lane_settled(const struct replay *r, struct walk *w, uint32_t l, size_t k)
{
	uint32_t j = w->cursor[l];
	struct closed_seen cs;
	struct lane_state cur;
	uint64_t syn_ms;

	if (j >= k || !(syn_ms = r->closed_syn_ms[j]))
		return 0;
	if (w->seen_stale[l]) {
		/* imported during the failover: look at the new active's entry */
		lane_state_get(drill_pair_active(w->p),
			       &r->t.conns[r->t.pkts[r->next_in_lane[j]].conn].orig, w->now, w->now,
			       &cur);
		cs = closed_seen_of(r, w, l, j, &cur);
	} else {
		cs = w->seen[l];
	}
	return cs.ok && syn_ms + w->offset + CLOSED_MARGIN_MS < cs.deadline;
}

/* The child: fails over before packet k and judges what follows. */
static void child_point(struct replay *r, struct walk *w, size_t k)
{
	uint64_t fail_us = r->t.pkts[k].ts_us;
	size_t i = k;
	int fast;

	w->now = clock_for(r, k, &w->offset, w->now);
	drill_pair_advance(w->p, w->now);
	drill_pair_failover(w->p, &w->now);
	w->clock_idx = k;
	/* Without a replay of every packet first, and at the clock offset of
	 * the last look, a lane the last look found settled (closed_seen_
	 * refresh()) and whose tuple the failover imported nothing of needs
	 * nothing: its connection ended, closed_lane_settled() holds. */
	fast = w->history_free && !(r->o.defer && drill_pair_peer_up(w->p)) &&
	       w->offset == w->settled_offset;
	for (size_t a = 0; a < w->nalive; a++) {
		uint32_t l = w->alive[a], c;

		if (fast && w->settled[l] && !w->seen_stale[l])
			continue;
		c = r->t.pkts[w->cursor[l]].conn;
		walk_dirty(w, l, 1);
		if (r->t.conns[c].last >= k) {
			note_standby_one(r, w->p, c, w->now);
			walk_touch(w, c);
		}
	}
	while (i < r->t.npkts &&
	       (!w->history_free || (r->o.defer && drill_pair_peer_up(w->p))))
		child_packet(r, w, k, i++);
	for (size_t d = 0; i < r->t.npkts && d < w->ndirty; d++) {
		uint32_t l = w->dirty[d], nx = r->next_in_lane[w->cursor[l]];

		if (w->diverged[l] && nx != NO_PKT && !closed_lane_settled(r, w, l, k))
			heap_push(w, nx);
	}
	/* Lanes of rr, wrr, sh and mh services that begin later: the new
	 * active may choose another backend (they are replayed from their
	 * first packet). */
	for (size_t q = 0; i < r->t.npkts && q < r->nseq_starts; q++)
		if (r->seq_starts[q] >= i)
			heap_push(w, r->seq_starts[q]);
	while (w->nheap) {
		uint32_t j = heap_pop(w), l = r->lane[r->t.pkts[j].conn];

		child_packet(r, w, k, j);
		if (w->diverged[l] && r->next_in_lane[j] != NO_PKT)
			heap_push(w, r->next_in_lane[j]);
	}
	child_finish(r, w, k, fail_us);
}

/* The parent: reports the oldest point in flight, once its child is done. */
static int finish_point(struct replay *r, struct walk *w, struct sweep_sum *s, char *err,
			size_t errlen)
{
	size_t slot = w->head, k = w->slot_k[slot];
	struct point_out *o = w->slot[slot];
	int st;

	w->head = (w->head + 1) % w->jobs;
	w->inflight--;
	while (waitpid(w->slot_pid[slot], &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !o->done) {
		snprintf(err, errlen, "the replay of failover point #%llu failed (status %d)",
			 (unsigned long long)r->t.pkts[k].index, st);
		return -1;
	}
	/* The point's results stand in for the walk's own entries (which it has
	 * moved on since: last_change_us) while they are written out. */
	for (size_t f = 0; f < o->nfind; f++) {
		struct conn_result own = r->conns[o->idx[f]];

		r->conns[o->idx[f]] = o->res[f];
		o->res[f] = own;
	}
	r->find_idx = o->idx;
	r->nfind = o->nfind;
	sweep_note(s, r, k, o->fail_us, &o->t);
	r->find_idx = NULL;
	for (size_t f = 0; f < o->nfind; f++)
		r->conns[o->idx[f]] = o->res[f];
	sweep_progress(s);
	return 0;
}

/*
 * The parent: runs point k in a child, up to --jobs at once (a child waits
 * for the CPU, not only computes, on a busy machine); reported in order.
 */
static int start_point(struct replay *r, struct walk *w, struct sweep_sum *s, size_t k,
		       char *err, size_t errlen)
{
	size_t slot;
	pid_t pid;

	if (w->inflight == w->jobs && finish_point(r, w, s, err, errlen) < 0)
		return -1;
	slot = (w->head + w->inflight) % w->jobs;
	w->out = w->slot[slot];
	w->out->done = 0;
	closed_seen_refresh(r, w);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		child_point(r, w, k);
		_exit(0);
	}
	w->slot_pid[slot] = pid;
	w->slot_k[slot] = k;
	w->inflight++;
	return 0;
}

/* After an error: the children still running are waited for, not reported. */
static void reap_points(struct walk *w)
{
	for (; w->inflight; w->inflight--, w->head = (w->head + 1) % w->jobs)
		while (waitpid(w->slot_pid[w->head], NULL, 0) < 0 && errno == EINTR)
			;
}

static void *shared_alloc(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return m == MAP_FAILED ? NULL : m;
}

static void walk_free(struct walk *w)
{
	drill_pair_free(w->p);
	free(w->last_state);
	free(w->cursor);
	free(w->alive);
	free(w->alive_pos);
	free(w->diverged);
	free(w->in_dirty);
	free(w->dirty);
	free(w->touched);
	free(w->touch);
	free(w->heap);
	free(w->seen);
	free(w->seen_stale);
	free(w->stale);
	free(w->settled);
	if (w->shared)
		munmap(w->shared, w->shared_len);
}

static int walk_new(struct replay *r, struct walk *w, char *err, size_t errlen)
{
	struct drill_pair_conf pc = { .conf = &r->conf, .max_conns = r->o.max_conns,
				      .loss = r->o.loss, .delay_ms = r->o.delay_ms,
				      .defer = r->o.defer, .seed = PAIR_SEED };
	size_t nc = r->t.nconns + 1, nl = r->nlanes + 1;
	/* each slot: the header, the findings' indices, their results (aligned) */
	size_t res_off = (sizeof(struct point_out) + nc * sizeof(uint32_t) + 63) & ~(size_t)63;
	size_t slot_len = (res_off + nc * sizeof(struct conn_result) + 63) & ~(size_t)63;
	uint8_t *m;

	*w = (struct walk){ .now = START_MS, .jobs = r->o.jobs };
	/* The pair before freeze(): its large arrays in fresh mappings, not in
	 * the heap that the trace's packets leave free (calloc() would clear
	 * it, writing pages that every fork() then copies). */
	w->p = drill_pair_new(&pc, &w->now, err, errlen);
	if (!w->p)
		return -1;
	r->lane_seq = calloc(nl, 1);
	r->seq_starts = calloc(nl, sizeof(*r->seq_starts));
	if (!r->lane_seq || !r->seq_starts) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->history_free = classify_lanes(r);
	if (build_closed(r) < 0 || build_lane_map(r) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (freeze(r, err, errlen) < 0)
		return -1;
	w->last_state = calloc(nc, 1);
	w->cursor = calloc(nl, sizeof(*w->cursor));
	w->alive = calloc(nl, sizeof(*w->alive));
	w->alive_pos = calloc(nl, sizeof(*w->alive_pos));
	w->diverged = calloc(nl, 1);
	w->in_dirty = calloc(nl, 1);
	w->dirty = calloc(nl, sizeof(*w->dirty));
	w->touched = calloc(nc, 1);
	w->touch = calloc(nc, sizeof(*w->touch));
	w->heap = calloc(nl + 1, sizeof(*w->heap));
	w->seen = calloc(nl, sizeof(*w->seen));
	w->seen_stale = calloc(nl, 1);
	w->stale = calloc(nl, sizeof(*w->stale));
	w->settled = calloc(nl, 1);
	w->shared_len = slot_len * w->jobs;
	w->shared = m = shared_alloc(w->shared_len);
	if (!w->last_state || !w->cursor || !w->alive || !w->alive_pos || !w->diverged ||
	    !w->in_dirty || !w->dirty || !w->touched || !w->touch || !w->heap || !w->seen ||
	    !w->seen_stale || !w->stale || !w->settled || !m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t j = 0; j < w->jobs; j++, m += slot_len) {
		struct point_out *o = (struct point_out *)(void *)m;

		o->idx = (uint32_t *)(void *)(m + sizeof(*o));
		o->res = (struct conn_result *)(void *)(m + res_off);
		w->slot[j] = o;
	}
	w->r = r;
	w->settled_offset = w->offset = w->now - START_MS;
	lb_engine_set_import_watch(drill_pair_standby(w->p), seen_import, w);
	w->offset = w->now - START_MS;
	return 0;
}

static int sweep_linear(struct replay *r, struct sweep_sum *s, uint32_t every, char *err,
			size_t errlen)
{
	struct walk w;
	int rc = walk_new(r, &w, err, errlen);

	for (size_t i = 0; rc == 0 && i < r->t.npkts; i++) {
		if (i >= 1 && (i - 1) % every == 0)
			rc = start_point(r, &w, s, i, err, errlen);
		walk_packet(r, &w, i);
	}
	while (rc == 0 && w.inflight)
		rc = finish_point(r, &w, s, err, errlen);
	reap_points(&w);
	walk_free(&w);
	return rc;
}

static int sweep(struct replay *r, char *err, size_t errlen)
{
	uint32_t every = r->o.every ? r->o.every : 1;
	struct sweep_sum s = { .points = (r->t.npkts - 1 + every - 1) / every,
			       .t0_ns = clock_mono_ns(), .progress = isatty(STDERR_FILENO) };
	int status;

	sweep_json_open(&s, r, every);
	printf("  findings         every connection lost or altered, by failover record "
	       "(replay one with --failover-at RECORD)\n");
	if ((r->o.full_sweep ? sweep_full : sweep_linear)(r, &s, every, err, errlen) < 0) {
		sweep_json_close(&s, 2);
		return -1;
	}
	if (s.progress)
		fputs("\r\033[K", stderr);
	printf("  sweep            %zu failovers (every %u packet%s)\n", s.runs, every,
	       every == 1 ? "" : "s");
	printf("  sweep cost       %llu packets replayed after the failovers (%.1f a point)\n",
	       (unsigned long long)s.replayed, s.runs ? (double)s.replayed / (double)s.runs : 0.0);
	printf("  with losses      %zu\n", s.with_loss);
	printf("  unsynchronised   %zu connections lost in all, at most %zu at one failover, "
	       "last state change at most %.1f ms before it\n",
	       s.unsynced, s.max_unsynced_one, s.max_age_ms);
	printf("  takeover failures %zu\n", s.failures);
	if (s.failures)
		printf("result: FAIL: the takeover lost or altered replicated connections\n");
	else
		printf("result: %s\n", s.unsynced ? "LOSS: only connections created in the "
						    "unsynchronised window"
						  : "PASS: no connection lost at any failover");
	status = s.failures ? 3 : s.unsynced ? 1 : 0;
	sweep_json_close(&s, status);
	return status;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lbdrill replay --pcap FILE (--config FILE | --auto-services)\n"
		"                      [--failover-at RECORD|TIME] [--sweep [--every N]]\n"
		"                      [--sync-loss P] [--sync-delay MS] [--defer] [--max-conns N]\n"
		"                      [--json FILE] [--verbose] [--jobs N] [--max-memory MB]\n"
		"  --auto-services every TCP server in the capture becomes a service with one\n"
		"                  backend (with --config: its settings, not its services)\n"
		"  --failover-at   before this record of the capture (a number), or at this time\n"
		"                  from its start (1.5s, 1500ms); default: its middle\n"
		"  --sweep         fail over at every packet boundary (--every N: every Nth)\n"
		"  --sweep-full    the same, replaying the whole capture for every point\n"
		"                  (slow: the check of the linear sweep)\n"
		"  --jobs N        failover points a sweep replays at once (default: 2 per CPU)\n"
		"  --max-memory MB what the replay may hold (default: the system's available\n"
		"                  memory); a larger capture is refused with what it needs\n"
		"  --sync-loss P   probability (0-1, or N%%) that a sync datagram is lost\n"
		"  --sync-delay MS one-way delay of the sync link (default 1)\n"
		"  --defer         zero-loss mode (hold connection setup until replicated)\n"
		"  --verbose       every connection's status; with a sweep, the packets each\n"
		"                  failover point replayed\n"
		"exit: 0 nothing lost, 1 only unsynchronised connections lost,\n"
		"      3 a replicated connection lost or altered, 2 bad usage or input\n");
}

/* RECORD (a whole number) or TIME with its unit (1.5s, 1500ms). */
static int parse_failover(struct opts *o, const char *v)
{
	uint64_t n;
	char *end;
	double x;

	if (num_parse_u64(v, 1, LONG_MAX, &n) == 0) {
		o->failover_pkt = (long)n;
		return 0;
	}
	x = strtod(v, &end);
	if (end == v || x < 0 || isnan(x))
		return -1;
	if (strcmp(end, "s") == 0)
		o->failover_s = x;
	else if (strcmp(end, "ms") == 0)
		o->failover_s = x / 1000.0;
	else
		return -1;
	return 0;
}

static int parse_loss(double *out, const char *v)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v)
		return -1;
	if (*end == '%')
		x /= 100.0, end++;
	if (*end || x < 0 || x >= 1 || isnan(x))
		return -1;
	*out = x;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "pcap", required_argument, NULL, 'p' }, { "config", required_argument, NULL, 'c' },
		{ "failover-at", required_argument, NULL, 'f' }, { "sweep", no_argument, NULL, 's' },
		{ "every", required_argument, NULL, 'e' }, { "sync-loss", required_argument, NULL, 'l' },
		{ "sync-delay", required_argument, NULL, 'd' }, { "defer", no_argument, NULL, 'D' },
		{ "max-conns", required_argument, NULL, 'm' }, { "json", required_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "auto-services", no_argument, NULL, 'A' },
		{ "sweep-full", no_argument, NULL, 'F' },
		{ "jobs", required_argument, NULL, 'J' },
		{ "max-memory", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int c;

	*o = (struct opts){ .failover_s = -1, .delay_ms = 1 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:c:f:se:l:d:Dm:j:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->pcap = optarg; break;
		case 'c': o->config = optarg; break;
		case 'f': if (parse_failover(o, optarg) < 0) goto bad; break;
		case 's': o->sweep = 1; break;
		case 'e': if (num_parse_u64(optarg, 1, UINT32_MAX, &n)) goto bad; o->every = (uint32_t)n; break;
		case 'l': if (parse_loss(&o->loss, optarg) < 0) goto bad; break;
		case 'd': if (num_parse_u64(optarg, 0, 60000, &n)) goto bad; o->delay_ms = (uint32_t)n; break;
		case 'D': o->defer = 1; break;
		case 'm': if (num_parse_u64(optarg, 1, 1u << 26, &n)) goto bad; o->max_conns = n; break;
		case 'j': o->json = optarg; break;
		case 'v': o->verbose = 1; break;
		case 'A': o->auto_services = 1; break;
		case 'F': o->sweep = o->full_sweep = 1; break;
		case 'M': if (num_parse_u64(optarg, 1, 1u << 30, &n)) goto bad; o->max_mem = n << 20; break;
		case 'J': if (num_parse_u64(optarg, 1, SWEEP_JOBS_MAX, &n)) goto bad; o->jobs = (uint32_t)n; break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (!o->pcap || (!o->config && !o->auto_services) || optind != argc)
		goto bad;
	if (!o->jobs) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		/* twice the CPUs: a child also waits for one, on a busy machine */
		o->jobs = cpus < 1 ? 2 : cpus >= SWEEP_JOBS_MAX / 2 ? SWEEP_JOBS_MAX : (uint32_t)cpus * 2;
	}
	return 0;
bad:
	usage(stderr);
	return -1;
}

/* The trace index to fail over before, from the options. */
static size_t failover_index(const struct replay *r)
{
	size_t k = r->t.npkts / 2;

	if (r->o.failover_pkt > 0) {
		for (k = 0; k < r->t.npkts && r->t.pkts[k].index < (uint64_t)r->o.failover_pkt; k++)
			;
	} else if (r->o.failover_s >= 0) {
		uint64_t at = (uint64_t)(r->o.failover_s * 1e6);

		for (k = 0; k < r->t.npkts && r->t.pkts[k].ts_us < at; k++)
			;
	}
	return k < r->t.npkts ? k : r->t.npkts - 1;
}

/* MemAvailable of /proc/meminfo in bytes; 0 when unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kb * 1024u;
}

/* The trace as loaded: its packets' records and kept bytes, its connections. */
static uint64_t trace_bytes(const struct drill_trace *t)
{
	uint64_t n = (uint64_t)t->npkts * sizeof(*t->pkts) + (uint64_t)t->nconns * sizeof(*t->conns);

	for (size_t i = 0; i < t->npkts; i++)
		n += t->pkts[i].stored;
	return n;
}

/*
 * What the replay will hold beside the trace: per packet, the reference's
 * and the run's results and the reference's entry state; per connection,
 * results and lanes; three engines' tables; the pair's datagrams in flight
 * (at most 2 x 4096 x 1.5 KiB). A sweep's children copy only what they
 * write of it.
 */
static uint64_t replay_bytes(const struct replay *r)
{
	struct lb_engine_conf ec = r->conf.engine;
	uint64_t per_pkt = 2 * sizeof(struct pkt_result) + sizeof(struct lane_state) + 2 *
			   sizeof(uint32_t) + 1;
	uint64_t per_conn = sizeof(struct conn_result) + 8 * sizeof(uint32_t) + 4;

	uint64_t n;

	ec.max_conns = r->o.max_conns;
	n = (uint64_t)r->t.npkts * per_pkt + (uint64_t)r->t.nconns * per_conn +
	    3 * (uint64_t)lb_engine_mem_bytes(&ec) + 2 * 4096 * 1536 + SCRATCH_BYTES;
	/* A linear sweep copies the trace into its frozen mapping (freeze()),
	 * with each packet's closed-lane deadline and the lanes by tuple, in
	 * huge pages, before it frees the original. */
	if (r->o.sweep && !r->o.full_sweep)
		n += trace_bytes(&r->t) + (uint64_t)r->t.npkts * sizeof(uint64_t) +
		     (uint64_t)r->t.nconns * 4 * sizeof(uint32_t) + HUGE_PAGE;
	return n;
}

/* A capture too large for this machine is refused, with what it would need. */
static int check_memory(const struct replay *r, char *err, size_t errlen)
{
	uint64_t need = replay_bytes(r), have = r->o.max_mem ? r->o.max_mem : mem_available();

	if (!have || need <= have)
		return 0;
	snprintf(err, errlen, "%s: %zu packets in %zu connections: the replay would need "
		 "%llu MiB more (beside the %llu MiB the capture's trace holds), and %llu MiB "
		 "are allowed; cut the capture (editcap -r) or replay it on a larger machine",
		 r->o.pcap, r->t.npkts, r->t.nconns, (unsigned long long)(need >> 20),
		 (unsigned long long)(trace_bytes(&r->t) >> 20),
		 (unsigned long long)(have >> 20));
	return -1;
}

static int setup(struct replay *r, char *err, size_t errlen)
{
	int rc;

	if (r->o.config) {
		if (lb_conf_load(r->o.config, &r->conf, err, errlen) < 0)
			return -1;
	} else {
		lb_conf_defaults(&r->conf);
		r->conf.sync.enabled = 1;	/* lbd's sync defaults, as for a pair */
	}
	rc = r->o.auto_services ? drill_trace_load_auto(&r->t, r->o.pcap, &r->conf, err, errlen)
				: drill_trace_load(&r->t, r->o.pcap, &r->conf, err, errlen);
	if (rc < 0)
		return -1;
	if (!r->o.max_conns)
		r->o.max_conns = r->t.nconns * 2 + 1024;
	/* The table is sized to the capture, so the half-open limit drawn from
	 * it (a quarter) would be an accident of this replay: unless the
	 * configuration sets one, none evicts. */
	if (!r->conf.engine.max_embryonic)
		r->conf.engine.max_embryonic = r->o.max_conns;
	if (check_memory(r, err, errlen) < 0)
		return -1;
	r->ref = calloc(r->t.npkts, sizeof(*r->ref));
	r->run = calloc(r->t.npkts, sizeof(*r->run));
	r->conns = calloc(r->t.nconns, sizeof(*r->conns));
	r->scratch = calloc(1, SCRATCH_BYTES);
	r->ref_state = malloc(r->t.npkts * sizeof(*r->ref_state) + 1);
	if (!r->ref || !r->run || !r->conns || !r->scratch || !r->ref_state || build_lanes(r) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (run_reference(r, err, errlen) < 0)
		return -1;
	if (build_clean_after(r) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void teardown(struct replay *r)
{
	if (r->frozen)
		thaw(r);
	free(r->ref);
	free(r->run);
	free(r->conns);
	free(r->scratch);
	free(r->ref_state);
	free(r->lane);
	free(r->lane_first);
	free(r->lane_last);
	free(r->next_in_lane);
	free(r->clean_after);
	free(r->lane_seq);
	free(r->seq_starts);
	free(r->closed_syn_ms);
	free(r->lane_map);
	drill_trace_free(&r->t);
	lb_conf_free(&r->conf);
}

int drill_replay_main(int argc, char **argv)
{
	struct replay r = { 0 };
	char err[512];
	int rc;

	if (parse_args(argc, argv, &r.o) < 0)
		return 2;
	/* Large arrays (the trace's, the tables sized for the capture) each in
	 * a mapping of its own: freed, it goes back whole, and until used it is
	 * not written (calloc() clears reused heap memory). A sweep forks once a
	 * point, and fork() copies an entry for every page written. The
	 * threshold is fixed: glibc raises its own as large arrays are freed. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	if (setup(&r, err, sizeof(err)) < 0) {
		fprintf(stderr, "lbdrill replay: %s\n", err);
		teardown(&r);
		return 2;
	}
	print_header(&r);
	rc = r.o.sweep ? sweep(&r, err, sizeof(err)) : replay_once(&r, failover_index(&r), err,
								    sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "lbdrill replay: %s\n", err);
		rc = 2;
	}
	teardown(&r);
	return rc;
}
