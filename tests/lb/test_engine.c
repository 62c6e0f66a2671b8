/*
 * Unit tests of lb_engine: whole TCP connections through lb_engine_packet()
 * with packets crafted by pktbuild.h, v4 and v6. Checks the rewrites (and
 * that every output verifies with the reference checksum), the counters
 * (every counter, so an unexpected drop shows up), scheduling, persistence,
 * reloads that drain a backend, expiry through lb_engine_tick(), and every
 * reason to drop that a packet can trigger.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lb_engine.h"
#include "pktbuild.h"

#define T0 5000000u
#define MAX_CONNS 16
#define CI 100000u		/* client ISN */
#define SI 900000u		/* backend ISN */

#define VIP4 "198.18.0.100"
#define VIP6 "2001:db8::100"
#define BPORT 8080

static const char *const be4[3] = { "198.18.1.11", "198.18.1.12", "198.18.1.13" };
static const char *const be6[3] = { "2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13" };
static const char *const be_persist[3] = { "198.18.2.11", "198.18.2.12", "198.18.2.13" };

struct fx {
	struct lb_engine *e;
	struct lb_worker *w;
	struct lb_engine_conf conf;
	uint64_t want[LB_CNT_COUNT];	/* counters the test expects */
	struct lb_packet pkt;
	size_t len;
	uint8_t buf[70000];
};

/* One client connection through the balancer. */
struct flow {
	int v6;
	char client[64];
	uint16_t cport;
	const char *vip;
	uint16_t vport;
	int backend;			/* index into be4/be6 (or be_persist) */
	const char *baddr;
	uint32_t cseq, sseq;		/* next sequence numbers */
};

/* --- configuration -------------------------------------------------------- */

static struct lb_backend_conf bconf(const char *addr, uint16_t port)
{
	struct lb_backend_conf b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(lb_addr_parse(&b.addr, addr), 0);
	b.port = port;
	b.weight = 1;
	return b;
}

static struct lb_service_conf sconf(const char *vip, uint16_t port, const char *sched,
				    uint32_t persistence_s, struct lb_backend_conf *b, size_t n)
{
	struct lb_service_conf s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(lb_addr_parse(&s.vip, vip), 0);
	s.port = port;
	snprintf(s.scheduler, sizeof(s.scheduler), "%s", sched);
	s.persistence_s = persistence_s;
	s.backends = b;
	s.nbackends = n;
	return s;
}

/*
 * The standard services: VIP4:80 and VIP6:80 with three backends each (rr),
 * VIP4:443 with persistence over three other backends. skip4 and skipp
 * leave out one of the VIP4:80 or VIP4:443 backends (-1: none).
 */
static int set_services_skip(struct lb_engine *e, int skip4, int skipp)
{
	struct lb_backend_conf b4[3], b6[3], bp[3];
	struct lb_service_conf s[3];
	size_t n4 = 0, np = 0;

	for (int i = 0; i < 3; i++) {
		if (i != skip4)
			b4[n4++] = bconf(be4[i], BPORT);
		b6[i] = bconf(be6[i], BPORT);
		if (i != skipp)
			bp[np++] = bconf(be_persist[i], 443);
	}
	s[0] = sconf(VIP4, 80, "rr", 0, b4, n4);
	s[1] = sconf(VIP6, 80, "rr", 0, b6, 3);
	s[2] = sconf(VIP4, 443, "rr", 300, bp, np);
	return lb_engine_set_services(e, s, 3);
}

static int set_standard_services(struct lb_engine *e, int skip4)
{
	return set_services_skip(e, skip4, -1);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	lb_engine_conf_defaults(&f->conf);
	f->conf.max_conns = MAX_CONNS;
	f->conf.max_embryonic = MAX_CONNS;	/* test_embryonic_cap() sets its own */
	f->conf.max_persist = 64;
	f->conf.seed = 0x5eed;
	f->e = lb_engine_new(&f->conf, T0);
	assert_non_null(f->e);
	f->w = lb_engine_worker_new(f->e);
	assert_non_null(f->w);
	assert_int_equal(set_standard_services(f->e, -1), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	lb_engine_free(f->e);
	free(f);
	return 0;
}

/* --- packets -------------------------------------------------------------- */

/* Runs the packet built from s through the engine. */
static enum lb_verdict inject(struct fx *f, const struct pb_spec *s, enum lb_hook hook,
			      uint32_t pkt_flags, uint64_t now)
{
	f->len = pb_build(f->buf, sizeof(f->buf), s);
	assert_int_not_equal(f->len, 0);
	f->pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)f->len,
				     .flags = pkt_flags, .hook = hook, .modified = -1 };
	return lb_engine_packet(f->e, f->w, &f->pkt, now);
}

static struct pb_spec spec(int v6, const char *src, uint16_t sport, const char *dst,
			   uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
			   uint32_t len)
{
	struct pb_spec s = v6 ? pb_spec_v6(src, sport, dst, dport)
			      : pb_spec_v4(src, sport, dst, dport);

	s.seq = seq;
	s.ack = ack;
	s.flags = flags;
	s.win = 65535;
	s.payload_len = len;
	s.pattern_seed = (uint8_t)(seq ^ len);
	return s;
}

/* Asserts that the engine's output has src/dst as given and verifies. */
static void assert_out(struct fx *f, const char *src, uint16_t sport, const char *dst,
		       uint16_t dport)
{
	char text[64];
	size_t l4 = pb_l4_off(f->buf, f->len);

	assert_int_equal(f->pkt.modified, 1);
	assert_int_not_equal(l4, 0);
	assert_int_equal(pb_ref_verify(f->buf, f->len), PB_OK);
	assert_string_equal(pb_src_text(f->buf, text, sizeof(text)), src);
	assert_int_equal(pb_get16(f->buf + l4), sport);
	assert_string_equal(pb_dst_text(f->buf, text, sizeof(text)), dst);
	assert_int_equal(pb_get16(f->buf + l4 + 2), dport);
}

static int backend_index(const char *const *list, const char *addr)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(list[i], addr) == 0)
			return i;
	fail_msg("%s is not a backend", addr);
	return -1;
}

static void flow_init(struct flow *fl, int v6, unsigned client, uint16_t cport,
		      uint16_t vport)
{
	memset(fl, 0, sizeof(*fl));
	fl->v6 = v6;
	if (v6)
		snprintf(fl->client, sizeof(fl->client), "2001:db8::%x", 0x1000 + client);
	else
		snprintf(fl->client, sizeof(fl->client), "198.18.0.%u", 10 + client);
	fl->cport = cport;
	fl->vip = v6 ? VIP6 : VIP4;
	fl->vport = vport;
	fl->backend = -1;
	fl->cseq = CI + cport;
	fl->sseq = SI + cport;
}

static uint16_t flow_bport(const struct flow *fl)
{
	return fl->vport == 443 ? 443 : BPORT;
}

static const char *const *flow_backends(const struct flow *fl)
{
	return fl->vport == 443 ? be_persist : fl->v6 ? be6 : be4;
}

/* Client -> VIP at PRE; on accept checks the rewrite to the backend. */
static enum lb_verdict client_send(struct fx *f, struct flow *fl, uint8_t flags, uint32_t len,
				   uint32_t pkt_flags, uint64_t now)
{
	struct pb_spec s = spec(fl->v6, fl->client, fl->cport, fl->vip, fl->vport, fl->cseq,
				fl->sseq, flags, len);
	enum lb_verdict v;

	if (flags & LB_TCP_SYN) {
		s.ack = 0;
		s.mss = 1460;
		s.wscale = 7;
	}
	if (pkt_flags & LB_PKT_F_CSUM_PARTIAL)
		s.csum = PB_CSUM_PARTIAL;
	v = inject(f, &s, LB_HOOK_PRE, pkt_flags, now);
	if (v != LB_VERDICT_ACCEPT)
		return v;
	if (fl->backend < 0) {
		char text[64];

		pb_dst_text(f->buf, text, sizeof(text));
		fl->backend = backend_index(flow_backends(fl), text);
		fl->baddr = flow_backends(fl)[fl->backend];
	}
	assert_out(f, fl->client, fl->cport, fl->baddr, flow_bport(fl));
	fl->cseq += len + !!(flags & LB_TCP_SYN) + !!(flags & LB_TCP_FIN);
	f->want[LB_CNT_PKTS_ORIG]++;
	f->want[LB_CNT_BYTES_ORIG] += f->len;
	if (pkt_flags & LB_PKT_F_CSUM_PARTIAL)
		f->want[LB_CNT_CSUM_FULL]++;
	if (pkt_flags & LB_PKT_F_GSO)
		f->want[LB_CNT_PKTS_GSO]++;
	return v;
}

/* Backend -> client at POST; on accept checks the rewrite from the VIP. */
static enum lb_verdict backend_send(struct fx *f, struct flow *fl, uint8_t flags, uint32_t len,
				    uint32_t pkt_flags, uint64_t now)
{
	struct pb_spec s = spec(fl->v6, fl->baddr, flow_bport(fl), fl->client, fl->cport,
				fl->sseq, fl->cseq, flags, len);
	enum lb_verdict v;

	if (flags & LB_TCP_SYN) {
		s.mss = 1400;
		s.wscale = 9;
	}
	if (pkt_flags & LB_PKT_F_CSUM_PARTIAL)
		s.csum = PB_CSUM_PARTIAL;
	v = inject(f, &s, LB_HOOK_POST, pkt_flags, now);
	if (v != LB_VERDICT_ACCEPT)
		return v;
	assert_out(f, fl->vip, fl->vport, fl->client, fl->cport);
	fl->sseq += len + !!(flags & LB_TCP_SYN) + !!(flags & LB_TCP_FIN);
	f->want[LB_CNT_PKTS_REPLY]++;
	f->want[LB_CNT_BYTES_REPLY] += f->len;
	if (pkt_flags & LB_PKT_F_CSUM_PARTIAL)
		f->want[LB_CNT_CSUM_FULL]++;
	if (pkt_flags & LB_PKT_F_GSO)
		f->want[LB_CNT_PKTS_GSO]++;
	return v;
}

/* SYN, SYN/ACK, ACK. */
static void flow_open(struct fx *f, struct flow *fl, uint64_t now)
{
	assert_int_equal(client_send(f, fl, LB_TCP_SYN, 0, 0, now), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	assert_int_equal(backend_send(f, fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
}

/* Injects a packet that must be dropped, unmodified, with counter c. */
static void expect_drop(struct fx *f, const struct pb_spec *s, enum lb_hook hook,
			enum lb_counter c, uint64_t now)
{
	static uint8_t before[sizeof(((struct fx *)0)->buf)];

	f->len = pb_build(f->buf, sizeof(f->buf), s);
	assert_int_not_equal(f->len, 0);
	memcpy(before, f->buf, f->len);
	f->pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)f->len, .hook = hook,
				     .modified = -1 };
	assert_int_equal(lb_engine_packet(f->e, f->w, &f->pkt, now), LB_VERDICT_DROP);
	assert_int_equal(f->pkt.modified, 0);
	assert_memory_equal(f->buf, before, f->len);
	f->want[c]++;
}

/* Compares every counter with what the test expects. */
static void check_counters(struct fx *f)
{
	uint64_t got[LB_CNT_COUNT];
	int bad = 0;

	lb_engine_counters(f->e, got);
	for (int c = 0; c < LB_CNT_COUNT; c++) {
		if (got[c] != f->want[c]) {
			print_error("counter %s: %llu, want %llu\n", lb_counter_name(c),
				    (unsigned long long)got[c], (unsigned long long)f->want[c]);
			bad = 1;
		}
	}
	if (bad)
		fail_msg("counters differ");
}

/* --- inspection ----------------------------------------------------------- */

struct be_view {
	char addr[64];
	uint16_t port, vport;
	int draining;
	unsigned active, inactive;
	uint64_t conns_total, pkts_in, pkts_out;
};

struct be_list {
	size_t n;
	struct be_view v[16];
};

static void collect_backend(const struct lb_backend_info *be, void *arg)
{
	struct be_list *l = arg;
	struct be_view *v;

	if (l->n >= 16)
		return;
	v = &l->v[l->n++];
	lb_addr_format(&be->addr, v->addr, sizeof(v->addr));
	v->port = be->port;
	v->vport = be->vport;
	v->draining = be->draining;
	v->active = be->active;
	v->inactive = be->inactive;
	v->conns_total = be->conns_total;
	v->pkts_in = be->pkts_in;
	v->pkts_out = be->pkts_out;
}

static const struct be_view *find_backend(struct fx *f, struct be_list *l, const char *addr,
					  uint16_t port)
{
	memset(l, 0, sizeof(*l));
	lb_engine_foreach_backend(f->e, collect_backend, l);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].addr, addr) == 0 && l->v[i].port == port)
			return &l->v[i];
	return NULL;
}

struct conn_view {
	size_t n;
	uint8_t state;
	uint64_t expires_ms;
	uint64_t pkts[2];
};

static void collect_conn(const struct lb_conn_info *c, void *arg)
{
	struct conn_view *v = arg;

	v->n++;
	v->state = c->state.tcp.state;
	v->expires_ms = c->state.expires_ms;
	v->pkts[0] = c->pkts[0];
	v->pkts[1] = c->pkts[1];
}

/* The state of the only connection in the engine. */
static struct conn_view only_conn(struct fx *f)
{
	struct conn_view v;

	memset(&v, 0, sizeof(v));
	/* Time 0: the expiry comes out absolute. */
	lb_engine_foreach_conn(f->e, 0, collect_conn, &v);
	assert_int_equal(v.n, 1);
	return v;
}

/* --- tests ---------------------------------------------------------------- */

static void test_counter_names(void **state)
{
	(void)state;
	assert_string_equal(lb_counter_name(LB_CNT_PKTS_ORIG), "pkts_orig");
	assert_string_equal(lb_counter_name(LB_CNT_DROP_NO_CONN), "drop_no_conn");
	assert_string_equal(lb_counter_name(LB_CNT_DROP_WRONG_HOOK), "drop_wrong_hook");
	assert_string_equal(lb_counter_name(LB_CNT_COUNT), "?");
}

static void run_whole_connection(struct fx *f, int v6)
{
	struct flow fl;
	struct conn_view cv;
	struct be_list l;
	const struct be_view *bv;
	uint64_t now = T0 + 10;

	flow_init(&fl, v6, 1, 40000, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, now), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	cv = only_conn(f);
	assert_int_equal(cv.state, LB_TCP_SYN_SENT);
	assert_int_equal(cv.expires_ms, now + 120000);

	assert_int_equal(backend_send(f, &fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(only_conn(f).state, LB_TCP_SYN_RECV);
	assert_int_equal(only_conn(f).expires_ms, now + 60000);
	now += 1;
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
	cv = only_conn(f);
	assert_int_equal(cv.state, LB_TCP_ESTABLISHED);
	assert_int_equal(cv.expires_ms, now + 900000);
	bv = find_backend(f, &l, fl.baddr, BPORT);
	assert_non_null(bv);
	assert_int_equal(bv->active, 1);
	assert_int_equal(bv->inactive, 0);

	/* Data both ways, odd sizes, then the close. */
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 517, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 1448, 0, now), LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 1001, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(only_conn(f).state, LB_TCP_FIN_WAIT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(only_conn(f).state, LB_TCP_LAST_ACK);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
	cv = only_conn(f);
	assert_int_equal(cv.state, LB_TCP_TIME_WAIT);
	assert_int_equal(cv.expires_ms, now + 120000);
	assert_int_equal(cv.pkts[LB_DIR_ORIG], 6);
	assert_int_equal(cv.pkts[LB_DIR_REPLY], 4);

	bv = find_backend(f, &l, fl.baddr, BPORT);
	assert_non_null(bv);
	assert_int_equal(bv->active, 0);
	assert_int_equal(bv->inactive, 1);
	assert_int_equal(bv->conns_total, 1);
	assert_int_equal(bv->pkts_in, 6);
	assert_int_equal(bv->pkts_out, 4);
	check_counters(f);
	assert_int_equal(f->want[LB_CNT_PKTS_ORIG], 6);
	assert_int_equal(f->want[LB_CNT_PKTS_REPLY], 4);
}

static void test_whole_connection_v4(void **state)
{
	run_whole_connection(*state, 0);
}

static void test_whole_connection_v6(void **state)
{
	run_whole_connection(*state, 1);
}

static void test_syn_retransmission_same_backend(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	int first;

	flow_init(&fl, 0, 2, 40001, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	first = fl.backend;
	fl.cseq--;			/* the same SYN again */
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 1000), LB_VERDICT_ACCEPT);
	assert_int_equal(fl.backend, first);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	check_counters(f);
}

static void test_midstream_without_conn_dropped(void **state)
{
	struct fx *f = *state;
	struct pb_spec s = spec(0, "198.18.0.20", 40000, VIP4, 80, 5, 6, LB_TCP_ACK, 10);

	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_CONN, T0);
	s.flags = LB_TCP_FIN | LB_TCP_ACK;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_CONN, T0);
	s.flags = LB_TCP_RST;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_CONN, T0);
	/* A backend's SYN/ACK that nobody asked for. */
	s = spec(0, be4[0], BPORT, "198.18.0.20", 40000, 5, 6, LB_TCP_SYN | LB_TCP_ACK, 0);
	expect_drop(f, &s, LB_HOOK_POST, LB_CNT_DROP_NO_CONN, T0);
	/* A SYN seen after routing cannot start a connection. */
	s = spec(0, "198.18.0.20", 40000, VIP4, 80, 5, 0, LB_TCP_SYN, 0);
	expect_drop(f, &s, LB_HOOK_POST, LB_CNT_DROP_NO_CONN, T0);
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	check_counters(f);
}

static void test_bad_rst_dropped_conn_continues(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct pb_spec s;

	flow_init(&fl, 0, 3, 40002, 80);
	flow_open(f, &fl, T0);
	s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq + 1000000000u, 0, LB_TCP_RST, 0);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_BAD_RST, T0);
	s = spec(0, fl.baddr, BPORT, fl.client, fl.cport, fl.sseq - 1000000000u, fl.cseq,
		 LB_TCP_RST | LB_TCP_ACK, 0);
	expect_drop(f, &s, LB_HOOK_POST, LB_CNT_DROP_BAD_RST, T0);
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 10, 0, T0),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	/* An acceptable RST does close it. */
	assert_int_equal(client_send(f, &fl, LB_TCP_RST, 0, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(only_conn(f).state, LB_TCP_CLOSE);
	assert_int_equal(only_conn(f).expires_ms, T0 + 10000);
	check_counters(f);
}

/*
 * RFC 5961: an in-window RST that is not exact is forwarded for the backend
 * to challenge, counted, and changes neither state nor expiry; a corrupted
 * exact RST is dropped before the tracker sees it.
 */
static void test_inexact_rst_forwarded_bad_csum_dropped(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct pb_spec s;
	uint64_t expires;

	flow_init(&fl, 0, 4, 40003, 80);
	flow_open(f, &fl, T0);
	expires = only_conn(f).expires_ms;
	for (uint32_t i = 1; i <= 100; i++) {
		s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq + i * 613, 0, LB_TCP_RST, 0);
		assert_int_equal(inject(f, &s, LB_HOOK_PRE, 0, T0 + i), LB_VERDICT_ACCEPT);
		assert_out(f, fl.client, fl.cport, fl.baddr, BPORT);
		f->want[LB_CNT_PKTS_ORIG]++;
		f->want[LB_CNT_BYTES_ORIG] += f->len;
	}
	f->want[LB_CNT_RST_INEXACT] += 100;
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	assert_int_equal(only_conn(f).expires_ms, expires);	/* not refreshed */
	/* The exact RST with a broken checksum, then one with a zero field. */
	s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq, 0, LB_TCP_RST, 0);
	s.csum = PB_CSUM_ZERO;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_BAD_CSUM, T0);
	s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq, fl.sseq, LB_TCP_ACK | LB_TCP_PSH, 200);
	f->len = pb_build(f->buf, sizeof(f->buf), &s);
	f->buf[f->len - 1] ^= 0x40;	/* one flipped payload bit */
	f->pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)f->len, .hook = LB_HOOK_PRE };
	assert_int_equal(lb_engine_packet(f->e, f->w, &f->pkt, T0), LB_VERDICT_DROP);
	assert_int_equal(f->pkt.drop_reason, LB_CNT_DROP_BAD_CSUM);
	f->want[LB_CNT_DROP_BAD_CSUM]++;
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	/* The backend's challenge ACK and the client's data pass. */
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 10, 0, T0), LB_VERDICT_ACCEPT);
	/* A partial checksum is not checked (the sender's offload completes it). */
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, LB_PKT_F_CSUM_PARTIAL, T0),
			 LB_VERDICT_ACCEPT);
	check_counters(f);
}

/*
 * A forged SYN with a live client's tuple is forwarded unchanged and does
 * not re-seed the entry; when the backend takes the new SYN (a SYN/ACK
 * acking it), the entry follows as a new incarnation.
 */
static void test_forged_syn_live_tuple(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct pb_spec s;
	struct conn_view before;

	flow_init(&fl, 0, 5, 40004, 80);
	flow_open(f, &fl, T0);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 100, 0, T0), LB_VERDICT_ACCEPT);
	before = only_conn(f);
	s = spec(0, fl.client, fl.cport, VIP4, 80, 123456789, 0, LB_TCP_SYN, 0);
	assert_int_equal(inject(f, &s, LB_HOOK_PRE, 0, T0 + 1), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_PKTS_ORIG]++;
	f->want[LB_CNT_BYTES_ORIG] += f->len;
	f->want[LB_CNT_SYN_IGNORED]++;
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	assert_int_equal(only_conn(f).expires_ms, before.expires_ms);
	/* The real client goes on. */
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK | LB_TCP_PSH, 50, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	/* The backend took the new SYN (it had dropped the old socket). */
	s = spec(0, fl.baddr, BPORT, fl.client, fl.cport, 777, 123456790,
		 LB_TCP_SYN | LB_TCP_ACK, 0);
	assert_int_equal(inject(f, &s, LB_HOOK_POST, 0, T0 + 2), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_PKTS_REPLY]++;
	f->want[LB_CNT_BYTES_REPLY] += f->len;
	f->want[LB_CNT_CONNS_REOPENED]++;
	assert_int_equal(only_conn(f).state, LB_TCP_SYN_RECV);
	check_counters(f);
}

static void test_tracker_drops_counted(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct pb_spec s;

	flow_init(&fl, 1, 4, 40003, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	/* SYN/ACK acking the wrong number. */
	s = spec(1, fl.baddr, BPORT, fl.client, fl.cport, fl.sseq, fl.cseq + 1,
		 LB_TCP_SYN | LB_TCP_ACK, 0);
	expect_drop(f, &s, LB_HOOK_POST, LB_CNT_DROP_BAD_HANDSHAKE, T0);
	/* Client data before the handshake is done. */
	s = spec(1, fl.client, fl.cport, VIP6, 80, fl.cseq, 0, LB_TCP_ACK, 5);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_BAD_STATE, T0);
	assert_int_equal(backend_send(f, &fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, T0),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	/* Beyond the window, and a flag combination no stack sends. */
	s = spec(1, fl.client, fl.cport, VIP6, 80, fl.cseq + 1000000000u, fl.sseq, LB_TCP_ACK, 5);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_OUT_OF_WINDOW, T0);
	s = spec(1, fl.client, fl.cport, VIP6, 80, fl.cseq, fl.sseq,
		 LB_TCP_SYN | LB_TCP_FIN, 0);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_BAD_FLAGS, T0);
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	check_counters(f);
}

static void test_malformed_dropped(void **state)
{
	struct fx *f = *state;
	struct pb_spec s = spec(0, "198.18.0.21", 40000, VIP4, 80, 1, 0, LB_TCP_SYN, 0);
	uint8_t before[64];

	/* Truncated: cut the built packet short. */
	f->len = pb_build(f->buf, sizeof(f->buf), &s);
	memcpy(before, f->buf, f->len);
	f->pkt = (struct lb_packet){ .data = f->buf, .len = 30, .hook = LB_HOOK_PRE };
	assert_int_equal(lb_engine_packet(f->e, f->w, &f->pkt, T0), LB_VERDICT_DROP);
	assert_int_equal(f->pkt.modified, 0);
	assert_memory_equal(f->buf, before, f->len);
	f->want[LB_CNT_DROP_TRUNCATED]++;

	s.frag = 0x2000;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_FRAGMENT, T0);
	s.frag = 0;
	s.proto = IPPROTO_UDP;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NOT_TCP, T0);
	s.proto = 0;
	s.doff_override = 3;
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_BAD_TCP, T0);
	s.doff_override = 0;
	s.ip_opts_len = 4;
	f->len = pb_build(f->buf, sizeof(f->buf), &s);
	f->buf[0] = 0x44;		/* IHL 4 */
	f->pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)f->len,
				     .hook = LB_HOOK_PRE };
	assert_int_equal(lb_engine_packet(f->e, f->w, &f->pkt, T0), LB_VERDICT_DROP);
	f->want[LB_CNT_DROP_BAD_IP]++;
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	check_counters(f);
}

static void test_rr_spreads_over_backends(void **state)
{
	struct fx *f = *state;
	int seen[3] = { 0 }, prev = -1;

	for (unsigned i = 0; i < 9; i++) {
		struct flow fl;

		flow_init(&fl, 0, 5, (uint16_t)(41000 + i), 80);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		assert_int_not_equal(fl.backend, prev);
		seen[fl.backend]++;
		prev = fl.backend;
	}
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 3);
	assert_int_equal(seen[2], 3);
	assert_int_equal(lb_engine_conn_count(f->e), 9);
	check_counters(f);
}

static void test_partial_checksums_completed(void **state)
{
	struct fx *f = *state;
	struct flow fl4, fl6;

	flow_init(&fl4, 0, 6, 42000, 80);
	flow_init(&fl6, 1, 6, 42000, 80);
	for (int i = 0; i < 2; i++) {
		struct flow *fl = i ? &fl6 : &fl4;
		const uint32_t p = LB_PKT_F_CSUM_PARTIAL;

		/* client_send/backend_send verify every output with the
		 * reference: complete checksums, IPv4 header checksum. */
		assert_int_equal(client_send(f, fl, LB_TCP_SYN, 0, p, T0), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		assert_int_equal(backend_send(f, fl, LB_TCP_SYN | LB_TCP_ACK, 0, p, T0),
				 LB_VERDICT_ACCEPT);
		assert_int_equal(client_send(f, fl, LB_TCP_ACK, 0, p, T0), LB_VERDICT_ACCEPT);
		assert_int_equal(client_send(f, fl, LB_TCP_ACK, 333, p, T0), LB_VERDICT_ACCEPT);
		/* GSO super-segments, both ways. */
		assert_int_equal(client_send(f, fl, LB_TCP_ACK, 65000, p | LB_PKT_F_GSO, T0),
				 LB_VERDICT_ACCEPT);
		assert_int_equal(backend_send(f, fl, LB_TCP_ACK, 65001, p | LB_PKT_F_GSO, T0),
				 LB_VERDICT_ACCEPT);
		/* A complete checksum on a GSO segment is updated, not redone. */
		assert_int_equal(backend_send(f, fl, LB_TCP_ACK, 64999, LB_PKT_F_GSO, T0),
				 LB_VERDICT_ACCEPT);
	}
	assert_int_equal(f->want[LB_CNT_CSUM_FULL], 12);
	assert_int_equal(f->want[LB_CNT_PKTS_GSO], 6);
	check_counters(f);
}

static void test_wrong_hook_dropped(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct pb_spec s;

	flow_init(&fl, 0, 7, 43000, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	/* The backend's SYN/ACK before routing. */
	s = spec(0, fl.baddr, BPORT, fl.client, fl.cport, fl.sseq, fl.cseq,
		 LB_TCP_SYN | LB_TCP_ACK, 0);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_WRONG_HOOK, T0);
	/* The client's SYN again, after routing. */
	s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq - 1, 0, LB_TCP_SYN, 0);
	expect_drop(f, &s, LB_HOOK_POST, LB_CNT_DROP_WRONG_HOOK, T0);
	/* The tracker did not see them: the right hook works. */
	assert_int_equal(only_conn(f).state, LB_TCP_SYN_SENT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, T0),
			 LB_VERDICT_ACCEPT);
	/* LB_HOOK_ANY (replay) lets the table decide. */
	s = spec(0, fl.client, fl.cport, VIP4, 80, fl.cseq, fl.sseq, LB_TCP_ACK, 0);
	assert_int_equal(inject(f, &s, LB_HOOK_ANY, 0, T0), LB_VERDICT_ACCEPT);
	assert_out(f, fl.client, fl.cport, fl.baddr, BPORT);
	f->want[LB_CNT_PKTS_ORIG]++;
	f->want[LB_CNT_BYTES_ORIG] += f->len;
	assert_int_equal(only_conn(f).state, LB_TCP_ESTABLISHED);
	check_counters(f);
}

static int lists_backend(struct fx *f, const char *addr)
{
	struct be_list l;

	return find_backend(f, &l, addr, BPORT) != NULL;
}

static void test_reload_drains_removed_backend(void **state)
{
	struct fx *f = *state;
	struct flow fl[3], nf;
	struct be_list l;
	const struct be_view *bv;
	int victim = -1;
	uint64_t now = T0;

	for (int i = 0; i < 3; i++) {
		flow_init(&fl[i], 0, 8, (uint16_t)(44000 + i), 80);
		flow_open(f, &fl[i], now);
		if (fl[i].backend == 2)
			victim = i;
	}
	assert_int_not_equal(victim, -1);	/* rr: one went to each backend */

	/* Reload without backend 2. */
	assert_int_equal(set_standard_services(f->e, 2), 0);
	bv = find_backend(f, &l, be4[2], BPORT);
	assert_non_null(bv);
	assert_true(bv->draining);
	assert_int_equal(bv->active, 1);
	bv = find_backend(f, &l, be4[0], BPORT);
	assert_non_null(bv);
	assert_false(bv->draining);
	assert_int_equal(bv->active, 1);	/* kept backends keep their counts */

	/* The existing connection to it keeps working, both ways. */
	now += 1000;
	assert_int_equal(client_send(f, &fl[victim], LB_TCP_ACK | LB_TCP_PSH, 100, 0, now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl[victim], LB_TCP_ACK, 200, 0, now),
			 LB_VERDICT_ACCEPT);
	/* New connections never go to it. */
	for (int i = 0; i < 6; i++) {
		flow_init(&nf, 0, 9, (uint16_t)(45000 + i), 80);
		assert_int_equal(client_send(f, &nf, LB_TCP_SYN, 0, 0, now), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		assert_int_not_equal(nf.backend, 2);
	}
	/* Not freed while its connection lives. */
	lb_engine_tick(f->e, f->w, now + 899999);
	f->want[LB_CNT_CONNS_EXPIRED] += 8;	/* 6 SYN_SENT, 2 idle established */
	assert_true(lists_backend(f, be4[2]));
	check_counters(f);
	/* Its connection expires: freed, no longer listed. */
	lb_engine_tick(f->e, f->w, now + 900000);
	f->want[LB_CNT_CONNS_EXPIRED] += 1;
	f->want[LB_CNT_BACKENDS_FREED] = 1;
	assert_false(lists_backend(f, be4[2]));
	assert_true(lists_backend(f, be4[0]));
	assert_true(lists_backend(f, be4[1]));
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	check_counters(f);
}

/* A persistent client whose backend was removed goes elsewhere, and
 * sticks to its new backend, while its open connection stays where it is. */
static void test_reload_persistent_client_moves(void **state)
{
	struct fx *f = *state;
	struct flow old, nf;
	int moved_to = -1;

	flow_init(&old, 0, 50, 54000, 443);
	flow_open(f, &old, T0);
	assert_int_equal(set_services_skip(f->e, -1, old.backend), 0);
	for (int i = 0; i < 3; i++) {
		flow_init(&nf, 0, 50, (uint16_t)(54001 + i), 443);
		assert_int_equal(client_send(f, &nf, LB_TCP_SYN, 0, 0, T0 + 1000),
				 LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		assert_int_not_equal(nf.backend, old.backend);
		if (moved_to < 0)
			moved_to = nf.backend;
		assert_int_equal(nf.backend, moved_to);
	}
	assert_int_equal(client_send(f, &old, LB_TCP_ACK, 10, 0, T0 + 2000), LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &old, LB_TCP_ACK, 0, 0, T0 + 2000), LB_VERDICT_ACCEPT);
	check_counters(f);
}

static void test_reload_removed_backend_idle_freed_at_once(void **state)
{
	struct fx *f = *state;

	assert_int_equal(set_standard_services(f->e, 0), 0);
	assert_true(lists_backend(f, be4[0]));
	lb_engine_tick(f->e, f->w, T0);
	f->want[LB_CNT_BACKENDS_FREED] = 1;
	assert_false(lists_backend(f, be4[0]));
	/* Put back: a fresh backend, which takes connections again. */
	assert_int_equal(set_standard_services(f->e, -1), 0);
	assert_true(lists_backend(f, be4[0]));
	check_counters(f);
}

static void test_reload_invalid_keeps_old(void **state)
{
	struct fx *f = *state;
	struct lb_backend_conf b[2] = { bconf(be6[0], 80), bconf(be4[0], 80) };
	struct lb_service_conf s[2];
	struct flow fl;

	s[0] = sconf(VIP4, 80, "rr", 0, b, 1);		/* v6 backend, v4 VIP */
	assert_int_equal(lb_engine_set_services(f->e, s, 1), -EINVAL);
	s[0] = sconf(VIP4, 80, "nope", 0, b + 1, 1);
	assert_int_equal(lb_engine_set_services(f->e, s, 1), -EINVAL);
	s[0] = sconf(VIP4, 80, "rr", 0, b + 1, 1);
	s[1] = sconf(VIP4, 80, "wrr", 0, b + 1, 1);
	assert_int_equal(lb_engine_set_services(f->e, s, 2), -EEXIST);
	/* The standard services still work. */
	flow_init(&fl, 1, 10, 46000, 80);
	flow_open(f, &fl, T0);
	check_counters(f);
}

static void test_syn_to_unknown_service_dropped(void **state)
{
	struct fx *f = *state;
	struct pb_spec s = spec(0, "198.18.0.22", 40000, "198.18.0.101", 80, 1, 0, LB_TCP_SYN, 0);

	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_SERVICE, T0);
	s = spec(0, "198.18.0.22", 40000, VIP4, 81, 1, 0, LB_TCP_SYN, 0);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_SERVICE, T0);
	s = spec(1, "2001:db8::22", 40000, "2001:db8::101", 80, 1, 0, LB_TCP_SYN, 0);
	expect_drop(f, &s, LB_HOOK_PRE, LB_CNT_DROP_NO_SERVICE, T0);
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	check_counters(f);
}

static void test_service_without_backends_dropped(void **state)
{
	struct fx *f = *state;
	struct lb_service_conf s = sconf(VIP4, 80, "rr", 0, NULL, 0);
	struct pb_spec p = spec(0, "198.18.0.23", 40000, VIP4, 80, 1, 0, LB_TCP_SYN, 0);

	assert_int_equal(lb_engine_set_services(f->e, &s, 1), 0);
	expect_drop(f, &p, LB_HOOK_PRE, LB_CNT_DROP_NO_BACKEND, T0);
	check_counters(f);
}

/*
 * At most max_embryonic half-open entries: a new SYN past it evicts the
 * oldest one still half-open; entries that finished their handshake are
 * never touched, and the evicted ones leave at the next tick.
 */
static void test_embryonic_cap(void **state)
{
	struct fx *f = *state;
	struct flow est[2], half[6];

	lb_engine_free(f->e);
	f->conf.max_embryonic = 4;
	f->e = lb_engine_new(&f->conf, T0);
	assert_non_null(f->e);
	f->w = lb_engine_worker_new(f->e);
	assert_non_null(f->w);
	assert_int_equal(set_standard_services(f->e, -1), 0);
	for (int i = 0; i < 2; i++) {
		flow_init(&est[i], 0, 20 + i, 41000, 80);
		flow_open(f, &est[i], T0);
	}
	for (int i = 0; i < 6; i++) {
		flow_init(&half[i], 0, 30 + i, 42000, 80);
		assert_int_equal(client_send(f, &half[i], LB_TCP_SYN, 0, 0, T0 + 1), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
	}
	/* The 5th and 6th SYN pushed out the two established records (nothing
	 * to do) and then the 1st and 2nd half-open ones. */
	f->want[LB_CNT_CONNS_EVICTED] += 2;
	check_counters(f);
	lb_engine_tick(f->e, f->w, T0 + 1000);
	f->want[LB_CNT_CONNS_EXPIRED] += 2;
	assert_int_equal(lb_engine_conn_count(f->e), 2 + 4);
	/* The evicted tuples are gone; the others and the established ones live. */
	assert_int_equal(backend_send(f, &half[5], LB_TCP_SYN | LB_TCP_ACK, 0, 0, T0 + 1000),
			 LB_VERDICT_ACCEPT);
	for (int i = 0; i < 2; i++)
		assert_int_equal(client_send(f, &est[i], LB_TCP_ACK | LB_TCP_PSH, 10, 0, T0 + 1000),
				 LB_VERDICT_ACCEPT);
	{
		struct pb_spec p = spec(0, half[0].client, half[0].cport, VIP4, 80, half[0].cseq,
					0, LB_TCP_ACK, 0);

		expect_drop(f, &p, LB_HOOK_PRE, LB_CNT_DROP_NO_CONN, T0 + 1000);
	}
	check_counters(f);
}

static void grab_orig(const struct lb_conn_info *c, void *arg)
{
	*(struct lb_conn_state *)arg = c->state;
}

struct watch_seen {
	unsigned calls;
	struct lb_tuple last;
};

static void watch_import(void *arg, const struct lb_tuple *orig)
{
	struct watch_seen *ws = arg;

	ws->calls++;
	ws->last = *orig;
}

/*
 * A drill's snapshot reads entries without their lock (it writes nothing,
 * so it copies no page): the same as conn_live; and it learns of every
 * record imported, whatever came of it, by the import watch.
 */
static void test_peek_and_import_watch(void **state)
{
	struct fx *f = *state;
	struct lb_conn_info live, peek;
	struct lb_conn_state st;
	struct watch_seen ws = { 0 };
	struct lb_tuple other;
	struct flow fl;

	flow_init(&fl, 0, 70, 44000, 80);
	flow_open(f, &fl, T0);
	lb_engine_foreach_conn(f->e, T0, grab_orig, &st);
	assert_int_equal(lb_engine_conn_live(f->e, &st.orig, T0 + 5, &live), 0);
	assert_int_equal(lb_engine_conn_peek(f->e, &st.orig, T0 + 5, &peek), 0);
	assert_true(lb_addr_equal(&peek.state.backend, &live.state.backend));
	assert_int_equal(peek.state.backend_port, live.state.backend_port);
	assert_int_equal(peek.state.expires_ms, live.state.expires_ms);
	assert_int_equal(peek.state.tcp.state, LB_TCP_ESTABLISHED);
	assert_memory_equal(&peek.state.tcp, &live.state.tcp, sizeof(peek.state.tcp));
	assert_int_equal(peek.pkts[0], 2);
	assert_int_equal(peek.pkts[1], 1);
	other = st.orig;
	other.sport++;
	assert_int_equal(lb_engine_conn_peek(f->e, &other, T0, &peek), -ENOENT);
	/* the reply tuple is not a client's */
	other = (struct lb_tuple){ .src = live.state.backend, .dst = st.orig.src,
				   .sport = live.state.backend_port, .dport = st.orig.sport };
	assert_int_equal(lb_engine_conn_peek(f->e, &other, T0, &peek), -ENOENT);

	lb_engine_set_import_watch(f->e, watch_import, &ws);
	/* ignored (a master imports nothing), but watched all the same */
	assert_int_equal(lb_engine_import_conn(f->e, f->w, &st, T0), LB_IMPORT_IGNORED);
	assert_int_equal(ws.calls, 1);
	assert_true(lb_tuple_equal(&ws.last, &st.orig));
	lb_engine_set_role(f->e, LB_ROLE_BACKUP);
	st.created_us++;	/* a newer incarnation: removes this one */
	assert_int_equal(lb_engine_import_delete(f->e, f->w, &st, T0), 1);
	assert_int_equal(ws.calls, 2);
	assert_int_equal(lb_engine_conn_peek(f->e, &st.orig, T0, &peek), -ENOENT);
	lb_engine_set_import_watch(f->e, NULL, NULL);
	assert_int_equal(lb_engine_import_delete(f->e, f->w, &st, T0), 0);
	assert_int_equal(ws.calls, 2);
	lb_engine_set_role(f->e, LB_ROLE_MASTER);
}

struct repl_count {
	unsigned conns, half_open, persists;
};

static uint64_t count_conn(void *arg, const struct lb_conn_state *st, int urgent)
{
	struct repl_count *r = arg;

	(void)urgent;
	r->conns++;
	r->half_open += st->tcp.state < LB_TCP_ESTABLISHED;
	return 0;
}

static void count_delete(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
	(void)st;
}

static void count_persist(void *arg, const struct lb_persist_state *st)
{
	struct repl_count *r = arg;

	(void)st;
	r->persists++;
}

/*
 * Under a flood (evictions), half-open connections are not replicated in
 * async mode; a real one is at the end of its handshake. Persistence goes
 * to the peer only for a completed handshake.
 */
static void test_flood_replicates_only_handshakes(void **state)
{
	static const struct lb_repl_ops ops = { count_conn, count_delete, count_persist };
	struct fx *f = *state;
	struct repl_count rc = { 0 };
	struct flow fl;

	lb_engine_free(f->e);
	f->conf.max_embryonic = 2;
	f->e = lb_engine_new(&f->conf, T0);
	assert_non_null(f->e);
	f->w = lb_engine_worker_new(f->e);
	assert_non_null(f->w);
	assert_int_equal(set_standard_services(f->e, -1), 0);
	lb_engine_set_repl(f->e, &ops, &rc, NULL);
	/* No pressure yet: a SYN is replicated at once, persistence not. */
	flow_init(&fl, 0, 60, 43000, 443);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(rc.half_open, 1);
	assert_int_equal(rc.persists, 0);
	for (int i = 1; i < 4; i++) {
		flow_init(&fl, 0, 60 + i, 43000, 80);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 1), LB_VERDICT_ACCEPT);
	}
	/* The third SYN (replicated) evicted the first: from then on, pressure. */
	assert_int_equal(rc.half_open, 3);
	rc = (struct repl_count){ 0 };
	flow_init(&fl, 0, 70, 43000, 443);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 2), LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, T0 + 500),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(rc.conns, 0);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, T0 + 600), LB_VERDICT_ACCEPT);
	assert_int_equal(rc.conns, 1);
	assert_int_equal(rc.half_open, 0);
	assert_int_equal(rc.persists, 1);
}

struct repl_urgency {
	unsigned records, urgent;
	uint8_t last_state;
};

static uint64_t note_urgency(void *arg, const struct lb_conn_state *st, int urgent)
{
	struct repl_urgency *r = arg;

	r->records++;
	r->urgent += urgent != 0;
	r->last_state = st->tcp.state;
	return 0;
}

/* The three segments of fl's handshake, at now. */
static void handshake_at(struct fx *f, struct flow *fl, uint64_t now)
{
	assert_int_equal(client_send(f, fl, LB_TCP_SYN, 0, 0, now), LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, fl, LB_TCP_SYN | LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
}

/*
 * Creations and state changes are replicated at once but not urgent (they
 * wait for the sync node's next flush, where a connection's changes merge);
 * only a burst of max_lag bytes is urgent; the FINs before the close wait
 * as window movement does.
 */
static void test_repl_urgent_only_for_bursts(void **state)
{
	static const struct lb_repl_ops ops = { note_urgency, count_delete, count_persist };
	struct lb_repl_conf conf = { .interval_ms = 200, .max_lag = 10000 };
	struct fx *f = *state;
	struct repl_urgency ru = { 0 };
	struct flow fl;

	lb_engine_set_repl(f->e, &ops, &ru, &conf);
	flow_init(&fl, 0, 20, 44000, 80);
	handshake_at(f, &fl, T0);
	/* The handshake's end waits as window movement does. */
	assert_int_equal(ru.records, 2);
	assert_int_equal(ru.urgent, 0);
	assert_int_equal(ru.last_state, LB_TCP_SYN_RECV);
	/* Within the interval: nothing until max_lag bytes have moved (late in
	 * it: at under twice the handshake's rate, which a quarter of max_lag
	 * at a faster pace would re-send early: test_repl_rate_learned_early). */
	for (int i = 0; i < 6; i++)
		assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 1400, 0, T0 + 190),
				 LB_VERDICT_ACCEPT);
	assert_int_equal(ru.records, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 1400, 0, T0 + 190),
				 LB_VERDICT_ACCEPT);
	assert_int_equal(ru.records, 3);
	assert_int_equal(ru.urgent, 1);
	assert_int_equal(ru.last_state, LB_TCP_ESTABLISHED);
	/* A FIN is closing progress, which waits as window movement does;
	 * the close (both FINs acked) is a state change again: replicated at
	 * once, not urgent. */
	assert_int_equal(client_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, T0 + 191),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, T0 + 191),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(ru.records, 3);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, T0 + 192), LB_VERDICT_ACCEPT);
	assert_int_equal(ru.records, 4);
	assert_int_equal(ru.last_state, LB_TCP_TIME_WAIT);
	assert_int_equal(ru.urgent, 1);
	lb_engine_set_repl(f->e, NULL, NULL, NULL);
}

/*
 * A connection that stays half-closed (the client's FIN, the server still
 * sending) is not left behind: its handshake's end and closing progress go
 * with the interval's wake, as window movement does.
 */
static void test_repl_fin_waits_for_the_interval(void **state)
{
	static const struct lb_repl_ops ops = { note_urgency, count_delete, count_persist };
	struct lb_repl_conf conf = { .interval_ms = 200, .max_lag = 1u << 20 };
	struct fx *f = *state;
	struct repl_urgency ru = { 0 };
	struct flow fl;

	lb_engine_set_repl(f->e, &ops, &ru, &conf);
	flow_init(&fl, 0, 20, 44001, 80);
	handshake_at(f, &fl, T0);
	assert_int_equal(ru.records, 2);
	assert_int_equal(client_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, T0 + 10),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_ACK, 1000, 0, T0 + 11), LB_VERDICT_ACCEPT);
	assert_int_equal(ru.records, 2);
	lb_engine_tick(f->e, f->w, T0 + 150);
	assert_int_equal(ru.records, 2);
	lb_engine_tick(f->e, f->w, T0 + 260);
	assert_int_equal(ru.records, 3);
	assert_int_equal(ru.last_state, LB_TCP_CLOSE_WAIT);
	assert_int_equal(ru.urgent, 0);
	lb_engine_set_repl(f->e, NULL, NULL, NULL);
}

struct repl_rate {
	unsigned conns, urgent;
	uint32_t rate;			/* of the last record, client to server */
};

static uint64_t rate_conn(void *arg, const struct lb_conn_state *st, int urgent)
{
	struct repl_rate *r = arg;

	r->conns++;
	r->urgent += !!urgent;
	r->rate = st->rate[LB_DIR_ORIG];
	return 0;
}

/* n segments of 60000 bytes from the client at now, each acknowledged. */
static void burst(struct fx *f, struct flow *fl, int n, uint64_t now)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(client_send(f, fl, LB_TCP_ACK, 60000, 0, now), LB_VERDICT_ACCEPT);
		assert_int_equal(backend_send(f, fl, LB_TCP_ACK, 0, 0, now), LB_VERDICT_ACCEPT);
	}
}

/*
 * The peer's takeover slack grows with the rate a record tells it; the
 * handshake's records tell it almost none. A connection that moves a
 * quarter of max_lag at more than twice the rate last replicated is re-sent
 * at once, before max_lag: a burst right after the handshake must not leave
 * the peer with only the handshake's rate if the max_lag record dies with
 * the active. Once per doubling: the same pace again sends nothing early.
 */
static void test_repl_rate_learned_early(void **state)
{
	static const struct lb_repl_ops ops = { rate_conn, count_delete, count_persist };
	const struct lb_repl_conf conf = { .interval_ms = 200, .max_lag = 1u << 20 };
	struct fx *f = *state;
	struct repl_rate r = { 0 };
	struct flow fl;
	unsigned after_handshake;

	lb_engine_set_repl(f->e, &ops, &r, &conf);
	flow_init(&fl, 0, 80, 44000, 80);
	flow_open(f, &fl, T0);
	after_handshake = r.conns;
	assert_true(r.rate < 100000);
	/* 240,000 bytes in 10 ms: under a quarter of max_lag, nothing. */
	burst(f, &fl, 4, T0 + 10);
	assert_int_equal(r.conns, after_handshake);
	/* The fifth segment makes 300,000 (30 MB/s): re-sent, urgent. */
	burst(f, &fl, 1, T0 + 10);
	assert_int_equal(r.conns, after_handshake + 1);
	assert_int_equal(r.urgent, 1);	/* the handshake's were not */
	assert_true(r.rate >= 29000000u);
	/* The same pace: nothing early (the interval's record is later). */
	burst(f, &fl, 5, T0 + 20);
	assert_int_equal(r.conns, after_handshake + 1);
	/* Then 600,000 more in the next millisecond: over twice 30 MB/s since
	 * the record (after the seventh segment), re-sent once more. */
	burst(f, &fl, 10, T0 + 21);
	assert_int_equal(r.conns, after_handshake + 2);
	assert_true(r.rate >= 60000000u);
	f->want[LB_CNT_CONNS_CREATED]++;
}

static void test_table_full_dropped(void **state)
{
	struct fx *f = *state;
	struct flow fl;

	for (int i = 0; i < MAX_CONNS; i++) {
		flow_init(&fl, i & 1, 11, (uint16_t)(47000 + i), 80);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
	}
	assert_int_equal(lb_engine_conn_count(f->e), MAX_CONNS);
	flow_init(&fl, 0, 11, 48000, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_DROP);
	assert_int_equal(f->pkt.modified, 0);
	f->want[LB_CNT_DROP_TABLE_FULL]++;
	check_counters(f);
	/* Room again once they have expired. */
	lb_engine_tick(f->e, f->w, T0 + 120000);
	f->want[LB_CNT_CONNS_EXPIRED] += MAX_CONNS;
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 120000), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	check_counters(f);
}

/* Two VIPs over the same backend: the same client port to both would give
 * two connections the same reply tuple. */
static void test_reply_tuple_clash_dropped(void **state)
{
	struct fx *f = *state;
	struct lb_backend_conf b[1] = { bconf(be4[0], BPORT) };
	struct lb_service_conf s[2] = { sconf(VIP4, 80, "rr", 0, b, 1),
					sconf("198.18.0.101", 80, "rr", 0, b, 1) };
	struct pb_spec p;
	struct flow fl;

	assert_int_equal(lb_engine_set_services(f->e, s, 2), 0);
	flow_init(&fl, 0, 12, 49000, 80);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	p = spec(0, fl.client, fl.cport, "198.18.0.101", 80, 7, 0, LB_TCP_SYN, 0);
	expect_drop(f, &p, LB_HOOK_PRE, LB_CNT_DROP_TUPLE_CLASH, T0);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	check_counters(f);
}

static void test_persistence_same_backend(void **state)
{
	struct fx *f = *state;
	int first = -1, other_seen = 0;

	for (int i = 0; i < 6; i++) {
		struct flow fl;

		flow_init(&fl, 0, 13, (uint16_t)(50000 + i), 443);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + (uint64_t)i * 1000),
				 LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		if (first < 0)
			first = fl.backend;
		assert_int_equal(fl.backend, first);
	}
	/* Other clients are still spread by rr. */
	for (int i = 0; i < 3; i++) {
		struct flow fl;

		flow_init(&fl, 0, 14 + (unsigned)i, 50000, 443);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
		other_seen += fl.backend != first;
	}
	assert_true(other_seen >= 2);
	check_counters(f);
}

/*
 * A client whose SYN never completes a handshake (a spoofed one) holds its
 * persistence entry only as long as a half-open connection: after the
 * SYN_SENT timeout (120 s) it is balanced anew. A completed handshake
 * gives the full persistence timeout (300 s).
 */
static void test_persistence_only_after_handshake(void **state)
{
	struct fx *f = *state;
	struct flow half, o, full;
	int seen_other = 0, first;

	flow_init(&half, 0, 25, 52000, 443);
	assert_int_equal(client_send(f, &half, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	first = half.backend;
	flow_init(&full, 0, 26, 52000, 443);
	flow_open(f, &full, T0);
	lb_engine_tick(f->e, f->w, T0 + 121000);	/* half-open entry and its persistence gone */
	f->want[LB_CNT_CONNS_EXPIRED]++;
	/* The established client keeps its backend (300 s from its handshake). */
	first = full.backend;
	flow_init(&full, 0, 26, 52010, 443);
	assert_int_equal(client_send(f, &full, LB_TCP_SYN, 0, 0, T0 + 121000), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	assert_int_equal(full.backend, first);
	first = half.backend;
	/* Three new SYNs of the half-open client, other clients in between:
	 * rr spreads them, so at least one lands elsewhere. */
	for (int i = 0; i < 3; i++) {
		flow_init(&o, 0, 27, (uint16_t)(52100 + i), 443);
		assert_int_equal(client_send(f, &o, LB_TCP_SYN, 0, 0, T0 + 121000), LB_VERDICT_ACCEPT);
		flow_init(&half, 0, 25, (uint16_t)(52001 + i), 443);
		assert_int_equal(client_send(f, &half, LB_TCP_SYN, 0, 0, T0 + 121000),
				 LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED] += 2;
		lb_engine_tick(f->e, f->w, T0 + 121000 + 121000 * (uint64_t)(i + 1));
		f->want[LB_CNT_CONNS_EXPIRED] += 2 + (i == 0);	/* and full's second SYN */
		seen_other += half.backend != first;
		first = half.backend;
	}
	assert_true(seen_other >= 1);
	check_counters(f);
}

/* The entry outlives the connection by the persistence timeout. */
static void test_persistence_survives_conn_expiry(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	int first;

	flow_init(&fl, 0, 20, 51000, 443);
	flow_open(f, &fl, T0);
	first = fl.backend;
	lb_engine_tick(f->e, f->w, T0 + 900000);	/* established timeout */
	f->want[LB_CNT_CONNS_EXPIRED]++;
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	/* Other clients move the rr cursor meanwhile (by 3: without
	 * persistence the next pick would not be the first backend). */
	for (int i = 0; i < 3; i++) {
		struct flow o;

		flow_init(&o, 0, 21 + (unsigned)i, 51000, 443);
		assert_int_equal(client_send(f, &o, LB_TCP_SYN, 0, 0, T0 + 900000),
				 LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
	}
	flow_init(&fl, 0, 20, 51001, 443);
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 900000 + 299000),
			 LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_CREATED]++;
	assert_int_equal(fl.backend, first);
	check_counters(f);
}

static void test_expiry_through_tick(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	struct be_list l;

	for (int i = 0; i < 3; i++) {
		flow_init(&fl, 0, 30, (uint16_t)(52000 + i), 80);
		assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0), LB_VERDICT_ACCEPT);
		f->want[LB_CNT_CONNS_CREATED]++;
	}
	flow_init(&fl, 1, 31, 52100, 80);
	flow_open(f, &fl, T0);
	assert_int_equal(lb_engine_conn_count(f->e), 4);

	lb_engine_tick(f->e, f->w, T0 + 119999);
	assert_int_equal(lb_engine_conn_count(f->e), 4);
	check_counters(f);
	lb_engine_tick(f->e, f->w, T0 + 120000);	/* SYN_SENT: 120 s */
	f->want[LB_CNT_CONNS_EXPIRED] += 3;
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	check_counters(f);
	/* Traffic pushes the established one's deadline. */
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 1, 0, T0 + 500000), LB_VERDICT_ACCEPT);
	lb_engine_tick(f->e, f->w, T0 + 900000);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	lb_engine_tick(f->e, f->w, T0 + 1399999);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	lb_engine_tick(f->e, f->w, T0 + 1400000);
	f->want[LB_CNT_CONNS_EXPIRED]++;
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	check_counters(f);
	/* The backends' connection counts are back to zero. */
	memset(&l, 0, sizeof(l));
	lb_engine_foreach_backend(f->e, collect_backend, &l);
	assert_int_equal(l.n, 9);
	for (size_t i = 0; i < l.n; i++)
		assert_int_equal(l.v[i].active + l.v[i].inactive, 0);
	/* And a packet of the expired connection has nothing to match. */
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 1, 0, T0 + 1400001), LB_VERDICT_DROP);
	f->want[LB_CNT_DROP_NO_CONN]++;
	check_counters(f);
}

/* A closed tuple is reused by a new SYN: counted, same backend. */
static void test_reopen_after_time_wait(void **state)
{
	struct fx *f = *state;
	struct flow fl;
	int first;

	flow_init(&fl, 0, 40, 53000, 80);
	flow_open(f, &fl, T0);
	first = fl.backend;
	assert_int_equal(client_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(backend_send(f, &fl, LB_TCP_FIN | LB_TCP_ACK, 0, 0, T0),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(client_send(f, &fl, LB_TCP_ACK, 0, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(only_conn(f).state, LB_TCP_TIME_WAIT);
	fl.cseq += 100000;
	assert_int_equal(client_send(f, &fl, LB_TCP_SYN, 0, 0, T0 + 5000), LB_VERDICT_ACCEPT);
	f->want[LB_CNT_CONNS_REOPENED]++;
	assert_int_equal(fl.backend, first);
	assert_int_equal(only_conn(f).state, LB_TCP_SYN_SENT);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	check_counters(f);
}

static void test_worker_limit(void **state)
{
	struct fx *f = *state;

	/* The fixture holds one already. */
	for (int i = 1; i < LB_ENGINE_MAX_WORKERS; i++)
		assert_non_null(lb_engine_worker_new(f->e));
	errno = 0;
	assert_null(lb_engine_worker_new(f->e));
	assert_int_equal(errno, ENOSPC);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_names),
		T(test_whole_connection_v4),
		T(test_whole_connection_v6),
		T(test_syn_retransmission_same_backend),
		T(test_midstream_without_conn_dropped),
		T(test_bad_rst_dropped_conn_continues),
		T(test_inexact_rst_forwarded_bad_csum_dropped),
		T(test_forged_syn_live_tuple),
		T(test_tracker_drops_counted),
		T(test_embryonic_cap),
		T(test_flood_replicates_only_handshakes),
		T(test_peek_and_import_watch),
		T(test_repl_urgent_only_for_bursts),
		T(test_repl_fin_waits_for_the_interval),
		T(test_repl_rate_learned_early),
		T(test_malformed_dropped),
		T(test_rr_spreads_over_backends),
		T(test_partial_checksums_completed),
		T(test_wrong_hook_dropped),
		T(test_reload_drains_removed_backend),
		T(test_reload_persistent_client_moves),
		T(test_reload_removed_backend_idle_freed_at_once),
		T(test_reload_invalid_keeps_old),
		T(test_syn_to_unknown_service_dropped),
		T(test_service_without_backends_dropped),
		T(test_table_full_dropped),
		T(test_reply_tuple_clash_dropped),
		T(test_persistence_same_backend),
		T(test_persistence_survives_conn_expiry),
		T(test_persistence_only_after_handshake),
		T(test_expiry_through_tick),
		T(test_reopen_after_time_wait),
		T(test_worker_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
