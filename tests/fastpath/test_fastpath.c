/*
 * The kernel fast path's tc program, run with BPF_PROG_TEST_RUN against the
 * same table of tracker cases as the engine's lb/tcp.c: every segment goes
 * through both, and the program must forward exactly the pure ACK segments
 * of established connections that the engine accepts, with the same window
 * edges afterwards, and pass everything else up unchanged. Needs root (or
 * CAP_BPF + CAP_NET_ADMIN) and a kernel with BPF; there is no skip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/pkt_cls.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../lb/pktbuild.h"
#include "clock.h"
#include "fastpath.h"
#include "lb_pkt.h"
#include "lb_tcp.h"

#define CI 1000u		/* client ISN */
#define SI 50000u		/* server ISN */
#define CWIN 64240u
#define SWIN 65160u
#define WRAP 0xfffff000u	/* an ISN a few KiB before 2^32 */

#define CLIENT "198.18.0.10"
#define VIP "198.18.0.100"
#define BACKEND "198.18.1.10"
#define CPORT 40000
#define VPORT 80
#define BPORT 8080

#define ORIG LB_DIR_ORIG
#define REPLY LB_DIR_REPLY
#define F_A LB_TCP_ACK
#define F_PA (LB_TCP_PSH | LB_TCP_ACK)
#define F_FA (LB_TCP_FIN | LB_TCP_ACK)
#define F_RA (LB_TCP_RST | LB_TCP_ACK)
#define F_S LB_TCP_SYN

#define NO_WS (-1)

enum shape { PLAIN = 0, IP_OPTS, FRAGMENT, UDP, UNKNOWN_TUPLE };

struct step {
	int dir;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	uint32_t len;
	int fast;			/* the program must forward it itself */
	enum lb_tcp_result engine;	/* what lb_tcp_track() says */
	enum shape shape;
};

struct tcase {
	const char *name;
	uint32_t ci, si;
	int cws, sws;			/* window scale options of the SYNs */
	struct step steps[8];
	int nsteps;
	/* Tracked by the engine alone before the connection is installed:
	 * BPF_PROG_TEST_RUN takes packets of up to a page, so the large
	 * movements come from here. */
	struct step pre[4];
	int npre;
};

#define OK LB_TCP_ACCEPT
#define OOW LB_TCP_OUT_OF_WINDOW

static const struct tcase cases[] = {
	{ "data both ways", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 1000, 1, OK },
		{ REPLY, SI + 1, CI + 1001, F_A, 509, 0, 1, OK },
		{ REPLY, SI + 1, CI + 1001, F_PA, 509, 1400, 1, OK },
		{ ORIG, CI + 1001, SI + 1401, F_A, 502, 0, 1, OK },
	}, 4 },
	{ "retransmission within the window", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 1000, 1, OK },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 1000, 1, OK },
	}, 2 },
	{ "check I: beyond what the receiver allowed", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1 + SWIN + 1, SI + 1, F_PA, 502, 100, 0, OOW },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 100, 1, OK },
	}, 2 },
	{ "check II: older than one window", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 120001 - 1000, SI + 1, F_PA, 502, 1000, 1, OK },
		{ ORIG, CI + 120001 - SWIN - 100, SI + 1, F_PA, 502, 99, 0, OOW },
		{ ORIG, CI + 120001 - SWIN - 100, SI + 1, F_PA, 502, 100, 1, OK },
	}, 3, {
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 60000, 1, OK },
		{ REPLY, SI + 1, CI + 60001, F_A, 65000, 0, 1, OK },
		{ ORIG, CI + 60001, SI + 1, F_PA, 502, 60000, 1, OK },
	}, 3 },
	{ "check III: acks data never sent", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 2, F_A, 502, 0, 0, OOW },
		{ ORIG, CI + 1, SI + 1, F_A, 502, 0, 1, OK },
	}, 2 },
	{ "check IV: an ancient ack", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 120001 - 66001, F_A, 65000, 0, 0, OOW },
		{ ORIG, CI + 1, SI + 120001 - 66000, F_A, 65000, 0, 1, OK },
		{ ORIG, CI + 1, SI + 120001, F_A, 65000, 0, 1, OK },
	}, 3, {
		{ REPLY, SI + 1, CI + 1, F_PA, 509, 60000, 1, OK },
		{ ORIG, CI + 1, SI + 60001, F_A, 65000, 0, 1, OK },
		{ REPLY, SI + 60001, CI + 1, F_PA, 509, 60000, 1, OK },
	}, 3 },
	{ "window scaling on both sides", CI, SI, 7, 7, {
		{ REPLY, SI + 1, CI + 1, F_A, 2000, 0, 1, OK },
		/* 2000 << 7 = 256000 bytes allowed */
		{ ORIG, CI + 1 + 200000, SI + 1, F_PA, 500, 1000, 1, OK },
		{ ORIG, CI + 1 + 300000, SI + 1, F_PA, 500, 1000, 0, OOW },
	}, 3 },
	{ "window scale of one side only: none", CI, SI, 7, NO_WS, {
		{ REPLY, SI + 1, CI + 1, F_A, 2000, 0, 1, OK },
		{ ORIG, CI + 1 + 70000, SI + 1, F_PA, 500, 1000, 0, OOW },
	}, 2 },
	{ "zero window probe", CI, SI, NO_WS, NO_WS, {
		{ REPLY, SI + 1, CI + 1, F_A, 0, 0, 1, OK },
		{ ORIG, CI + 1, SI + 1, F_A, 502, 1, 1, OK },
	}, 2 },
	{ "sequence numbers wrapping", WRAP, WRAP - 100, NO_WS, NO_WS, {
		{ ORIG, WRAP + 3001, WRAP - 99, F_PA, 502, 3000, 1, OK },
		{ REPLY, WRAP - 99, WRAP + 6001, F_A, 509, 0, 1, OK },
		{ ORIG, WRAP + 6001, WRAP - 99, F_PA, 502, 1000, 1, OK },
		{ ORIG, WRAP + 6001 + 70000, WRAP - 99, F_PA, 502, 1000, 0, OOW },
	}, 4, {
		{ ORIG, WRAP + 1, WRAP - 99, F_PA, 502, 3000, 1, OK },
	}, 1 },
	{ "FIN, RST and SYN go up to the engine", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 1, F_S, 502, 0, 0, OK },
		{ ORIG, CI + 1, SI + 1, F_RA, 502, 0, 0, OK },
	}, 2 },
	{ "after a FIN the connection is the engine's", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 100, 1, OK },
		{ ORIG, CI + 101, SI + 1, F_FA, 502, 0, 0, OK },
		{ REPLY, SI + 1, CI + 102, F_A, 509, 0, 0, OK },
	}, 3 },
	{ "a segment without ACK goes up", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, 0, LB_TCP_PSH, 502, 10, 0, LB_TCP_BAD_FLAGS },
	}, 1 },
	{ "IP options, fragments, UDP and unknown tuples go up", CI, SI, NO_WS, NO_WS, {
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 10, 0, OK, IP_OPTS },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 10, 0, OK, FRAGMENT },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 10, 0, OK, UDP },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 10, 0, OK, UNKNOWN_TUPLE },
		{ ORIG, CI + 1, SI + 1, F_PA, 502, 10, 1, OK },
	}, 5 },
};

static struct fp *fp;

static int setup(void **state)
{
	struct fp_conf conf = { .max_conns = 64, .stack = 1 };
	char err[256];

	(void)state;
	fp = fp_open(&conf, err, sizeof(err));
	if (!fp) {
		fprintf(stderr, "# fp_open: %s\n", err);
		return -1;
	}
	return fp_set_enabled(fp, 1);
}

static int teardown(void **state)
{
	(void)state;
	fp_close(fp);
	return 0;
}

static struct lb_pkt_info seg(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
			      uint32_t len, int wscale)
{
	struct lb_pkt_info pi;

	memset(&pi, 0, sizeof(pi));
	pi.seq = seq;
	pi.ack = ack;
	pi.flags = flags;
	pi.win = win;
	pi.payload_len = len;
	pi.wscale = wscale < 0 ? LB_PKT_NO_WSCALE : (uint8_t)wscale;
	return pi;
}

static void tuple(struct lb_tuple *t, const char *src, uint16_t sport, const char *dst,
		  uint16_t dport)
{
	assert_int_equal(lb_addr_parse(&t->src, src), 0);
	assert_int_equal(lb_addr_parse(&t->dst, dst), 0);
	t->sport = sport;
	t->dport = dport;
}

static void conn_of(struct lb_fastpath_conn *c, const struct lb_tcp *t)
{
	memset(c, 0, sizeof(*c));
	tuple(&c->orig, CLIENT, CPORT, VIP, VPORT);
	tuple(&c->reply, BACKEND, BPORT, CLIENT, CPORT);
	c->peer[0] = t->peer[0];
	c->peer[1] = t->peer[1];
}

/* The engine's tracker through SYN, SYN/ACK, ACK. */
static void establish(struct lb_tcp *t, const struct tcase *tc)
{
	struct lb_pkt_info syn = seg(tc->ci, 0, F_S, CWIN, 0, tc->cws);
	struct lb_pkt_info sa = seg(tc->si, tc->ci + 1, F_S | F_A, SWIN, 0, tc->sws);
	struct lb_pkt_info ack = seg(tc->ci + 1, tc->si + 1, F_A, 502, 0, NO_WS);

	lb_tcp_init(t, &syn);
	assert_int_equal(lb_tcp_track(t, REPLY, &sa), LB_TCP_ACCEPT);
	assert_int_equal(lb_tcp_track(t, ORIG, &ack), LB_TCP_ACCEPT);
	assert_int_equal(t->state, LB_TCP_ESTABLISHED);
}

static size_t build(const struct step *s, uint8_t *buf, size_t cap)
{
	struct pb_spec sp = {
		.src = s->dir == ORIG ? CLIENT : BACKEND, .dst = s->dir == ORIG ? VIP : CLIENT,
		.sport = s->dir == ORIG ? CPORT : BPORT, .dport = s->dir == ORIG ? VPORT : CPORT,
		.seq = s->seq, .ack = s->ack, .flags = s->flags, .win = s->win,
		.payload_len = s->len, .pattern_seed = 7, .wscale = PB_NO_OPT,
	};

	if (s->shape == IP_OPTS)
		sp.ip_opts_len = 4;
	if (s->shape == FRAGMENT)
		sp.frag = 0x2000;	/* more fragments */
	if (s->shape == UDP)
		sp.proto = IPPROTO_UDP;
	if (s->shape == UNKNOWN_TUPLE)
		sp.sport = CPORT + 1;
	return pb_build(buf, cap, &sp);
}

/* The kernel's edges must be the engine's. */
static void assert_same_edges(const struct lb_tcp *t, const char *what)
{
	struct lb_fastpath_seen seen;
	struct lb_tuple orig;

	tuple(&orig, CLIENT, CPORT, VIP, VPORT);
	assert_int_equal(fp_conn_read(fp, &orig, &seen), 0);
	for (int d = 0; d < 2; d++) {
		if (seen.peer[d].end != t->peer[d].end || seen.peer[d].maxend != t->peer[d].maxend ||
		    seen.peer[d].maxwin != t->peer[d].maxwin)
			fail_msg("%s: dir %d kernel end %u maxend %u maxwin %u, engine %u %u %u",
				 what, d, seen.peer[d].end, seen.peer[d].maxend,
				 seen.peer[d].maxwin, t->peer[d].end, t->peer[d].maxend,
				 t->peer[d].maxwin);
	}
}

/* A forwarded packet carries the NAT and verifies; a passed one is unchanged. */
static void check_packet(const struct step *s, const uint8_t *in, size_t len,
			 const uint8_t *out, size_t outlen, int fast)
{
	uint8_t want[65600];
	uint32_t a;

	assert_int_equal(outlen, len);
	if (!fast) {
		assert_memory_equal(out, in, len);
		return;
	}
	memcpy(want, in, len);
	if (s->dir == ORIG) {
		inet_pton(AF_INET, BACKEND, &a);
		memcpy(want + 16, &a, 4);
		pb_put16(want + 20 + 2, BPORT);
	} else {
		inet_pton(AF_INET, VIP, &a);
		memcpy(want + 12, &a, 4);
		pb_put16(want + 20, VPORT);
	}
	assert_int_equal(pb_ref_verify(out, outlen), PB_OK);
	/* Everything but the two checksums is as the NAT says. */
	memcpy(want + 10, out + 10, 2);
	memcpy(want + 20 + 16, out + 20 + 16, 2);
	assert_memory_equal(out, want, len);
}

static void run_step(const struct tcase *tc, int i, struct lb_tcp *t)
{
	const struct step *s = &tc->steps[i];
	struct lb_pkt_info pi = seg(s->seq, s->ack, s->flags, s->win, s->len, NO_WS);
	uint8_t in[65600], out[65600];
	size_t len = build(s, in, sizeof(in)), outlen = sizeof(out);
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	enum lb_tcp_result r = LB_TCP_ACCEPT;
	int v, fast;

	v = fp_test_run(fp, in, len, out, &outlen);
	if (v != TC_ACT_OK)	/* stack mode: forwarded ones go on too */
		fail_msg("%s, step %d: verdict %d", tc->name, i, v);
	fast = memcmp(in, out, len) != 0;
	if (fast != s->fast)
		fail_msg("%s, step %d: the program %s it", tc->name, i,
			 fast ? "forwarded" : "passed");
	check_packet(s, in, len, out, outlen, fast);
	if (s->shape == PLAIN) {
		r = lb_tcp_track(t, (enum lb_dir)s->dir, &pi);
		if (r != s->engine)
			fail_msg("%s, step %d: engine says %s", tc->name, i, lb_tcp_result_name(r));
	}
	/* Forwarded by the program means accepted by the engine. */
	assert_true(!fast || r == LB_TCP_ACCEPT);
	if (fast) {
		assert_same_edges(t, tc->name);
		return;
	}
	/* What lbd's engine does with a packet that went up: it has already
	 * tracked it; it keeps the connection in the kernel while established
	 * and takes it back otherwise. */
	conn_of(&c, t);
	if (t->state == LB_TCP_ESTABLISHED)
		assert_int_equal(fp_conn_install(fp, &c), 0);
	else if (fp_conn_remove(fp, &c.orig, &seen) == 0)
		assert_int_equal(fp_conn_read(fp, &c.orig, &seen), -ENOENT);
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct tcase *tc = &cases[k];
		struct lb_fastpath_conn c;
		struct lb_fastpath_seen seen;
		struct lb_tcp t;

		establish(&t, tc);
		for (int i = 0; i < tc->npre; i++) {
			const struct step *p = &tc->pre[i];
			struct lb_pkt_info pi = seg(p->seq, p->ack, p->flags, p->win, p->len, NO_WS);

			assert_int_equal(lb_tcp_track(&t, (enum lb_dir)p->dir, &pi), p->engine);
		}
		conn_of(&c, &t);
		assert_int_equal(fp_conn_install(fp, &c), 0);
		assert_same_edges(&t, tc->name);
		for (int i = 0; i < tc->nsteps; i++)
			run_step(tc, i, &t);
		fp_conn_remove(fp, &c.orig, &seen);
		assert_int_equal(fp_conn_count(fp), 0);
	}
}

/* The forwarded packets are counted by direction and in the sweep. */
static void test_counters_and_sweep(void **state)
{
	static const struct tcase *tc = &cases[0];
	uint64_t before[FP_CNT_COUNT], after[FP_CNT_COUNT];
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	struct lb_tcp t;
	size_t n;

	(void)state;
	establish(&t, tc);
	conn_of(&c, &t);
	assert_int_equal(fp_conn_install(fp, &c), 0);
	assert_int_equal(fp_counters(fp, before), 0);
	for (int i = 0; i < tc->nsteps; i++)
		run_step(tc, i, &t);
	assert_int_equal(fp_counters(fp, after), 0);
	assert_int_equal(after[FP_CNT_FWD_ORIG] - before[FP_CNT_FWD_ORIG], 2);
	assert_int_equal(after[FP_CNT_FWD_REPLY] - before[FP_CNT_FWD_REPLY], 2);
	/* run_step read the entry after each packet, so nothing is left to
	 * report; one more packet is. */
	n = fp_sweep(fp, 64, NULL, NULL);
	assert_int_equal(n, 0);
	fp_conn_remove(fp, &c.orig, &seen);
}

static void on_seen(void *arg, const struct lb_tuple *orig, const struct lb_fastpath_seen *s)
{
	struct lb_fastpath_seen *out = arg;

	(void)orig;
	*out = *s;
}

static void test_sweep_reports_movement(void **state)
{
	const struct tcase *tc = &cases[1];
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen = { 0 }, got = { 0 };
	uint8_t in[65600], out[65600];
	size_t len, outlen = sizeof(out);
	struct lb_tcp t;

	(void)state;
	establish(&t, tc);
	conn_of(&c, &t);
	assert_int_equal(fp_conn_install(fp, &c), 0);
	len = build(&tc->steps[0], in, sizeof(in));
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_int_equal(fp_sweep(fp, 64, on_seen, &got), 1);
	assert_int_equal(got.pkts[ORIG], 1);
	assert_int_equal(got.bytes[ORIG], len);
	assert_int_equal(got.pkts[REPLY], 0);
	assert_true(got.last_seen_ms > 0);
	assert_int_equal(got.peer[ORIG].end, CI + 1 + 1000);
	/* The ack the client sent, as the slow path's maxack (the takeover
	 * kick reads it); the backend has sent none through the program. */
	assert_true(got.peer[ORIG].flags & LB_TCP_PF_MAXACK);
	assert_int_equal(got.peer[ORIG].maxack, tc->steps[0].ack);
	assert_false(got.peer[REPLY].flags & LB_TCP_PF_MAXACK);
	assert_int_equal(fp_sweep(fp, 64, on_seen, &got), 0);	/* nothing new */
	fp_conn_remove(fp, &c.orig, &seen);
}

/*
 * The replication signal: a connection that moved signal_bytes in one
 * direction since its last signal is put on the ring, read back as the
 * sweep reads it (what moved since the last report), once.
 */
static void test_signal_after_bytes(void **state)
{
	const struct tcase *tc = &cases[0];	/* 1040, 40, 1440, 40 IP bytes */
	struct fp_conf conf = { .max_conns = 8, .stack = 1, .signal_bytes = 1400,
				.signal_ms = 60000 };
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen = { 0 }, got = { 0 };
	uint8_t in[4096], out[4096];
	uint64_t before[FP_CNT_COUNT], after[FP_CNT_COUNT];
	struct fp *sfp;
	struct pollfd pfd;
	char err[256];
	struct lb_tcp t;

	(void)state;
	sfp = fp_open(&conf, err, sizeof(err));
	assert_non_null(sfp);
	assert_int_equal(fp_set_enabled(sfp, 1), 0);
	pfd = (struct pollfd){ fp_signal_fd(sfp), POLLIN, 0 };
	assert_true(pfd.fd >= 0);
	establish(&t, tc);
	conn_of(&c, &t);
	assert_int_equal(fp_conn_install(sfp, &c), 0);
	assert_int_equal(fp_counters(sfp, before), 0);
	for (int i = 0; i < tc->nsteps; i++) {
		size_t len = build(&tc->steps[i], in, sizeof(in)), outlen = sizeof(out);

		assert_int_equal(fp_test_run(sfp, in, len, out, &outlen), TC_ACT_OK);
		/* Only the 1440-byte reply reaches 1400 bytes in a direction;
		 * the 1080 client bytes after it do not. */
		assert_int_equal(poll(&pfd, 1, 0), i == 2);
		assert_int_equal(fp_signals(sfp, on_seen, &got), i == 2);
		if (i == 2) {
			assert_int_equal(got.pkts[ORIG], 1);
			assert_int_equal(got.pkts[REPLY], 2);
			assert_int_equal(got.bytes[REPLY], 40 + len);
			assert_int_equal(got.peer[REPLY].end, SI + 1 + 1400);
		}
	}
	assert_int_equal(fp_counters(sfp, after), 0);
	assert_int_equal(after[FP_CNT_SIGNALS] - before[FP_CNT_SIGNALS], 1);
	assert_int_equal(after[FP_CNT_SIGNALS_LOST] - before[FP_CNT_SIGNALS_LOST], 0);
	/* The sweep reports only what came after the signal's report. */
	assert_int_equal(fp_sweep(sfp, 8, on_seen, &got), 1);
	assert_int_equal(got.pkts[ORIG], 1);
	assert_int_equal(got.pkts[REPLY], 0);
	fp_conn_remove(sfp, &c.orig, &seen);
	fp_close(sfp);
}

static void test_disabled_passes_everything(void **state)
{
	const struct tcase *tc = &cases[0];
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	uint8_t in[65600], out[65600];
	size_t len, outlen = sizeof(out);
	struct lb_tcp t;

	(void)state;
	establish(&t, tc);
	conn_of(&c, &t);
	assert_int_equal(fp_conn_install(fp, &c), 0);
	assert_int_equal(fp_set_enabled(fp, 0), 0);
	len = build(&tc->steps[0], in, sizeof(in));
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_memory_equal(in, out, len);
	assert_int_equal(fp_set_enabled(fp, 1), 0);
	outlen = sizeof(out);
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_memory_not_equal(in, out, len);
	fp_conn_remove(fp, &c.orig, &seen);
}

/*
 * A FIN or RST goes up and stops the program forwarding the connection
 * (fp_pass_state) until the engine has judged it: the engine's read-back
 * then holds every packet the kernel forwarded. When the engine keeps the
 * connection established (it refused a blind RST, say), its next install
 * (a hint the program applies with the next packet) forwards again.
 */
static void test_fin_stops_forwarding(void **state)
{
	const struct tcase *tc = &cases[0];
	const struct step fin = { ORIG, CI + 1, SI + 1, F_FA, 502, 0, 0, OK, PLAIN };
	const struct step data = { REPLY, SI + 1, CI + 1, F_PA, 502, 100, 1, OK, PLAIN };
	uint64_t before[FP_CNT_COUNT], after[FP_CNT_COUNT];
	uint8_t in[65600], out[65600];
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	size_t len, outlen;
	struct lb_tcp t;

	(void)state;
	establish(&t, tc);
	conn_of(&c, &t);
	assert_int_equal(fp_conn_install(fp, &c), 0);
	len = build(&fin, in, sizeof(in));
	outlen = sizeof(out);
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_memory_equal(in, out, len);		/* the FIN went up */
	assert_int_equal(fp_counters(fp, before), 0);
	len = build(&data, in, sizeof(in));
	outlen = sizeof(out);
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_memory_equal(in, out, len);		/* and so does the data */
	assert_int_equal(fp_counters(fp, after), 0);
	assert_int_equal(after[FP_CNT_PASS_STATE] - before[FP_CNT_PASS_STATE], 1);
	assert_int_equal(after[FP_CNT_FWD_REPLY], before[FP_CNT_FWD_REPLY]);
	/* The engine says established again. */
	assert_int_equal(fp_conn_install(fp, &c), 0);
	outlen = sizeof(out);
	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	check_packet(&data, in, len, out, outlen, 1);
	fp_conn_remove(fp, &c.orig, &seen);
}

static void test_ipv6_refused(void **state)
{
	struct lb_fastpath_conn c = { 0 };

	(void)state;
	tuple(&c.orig, "2001:db8::10", CPORT, "2001:db8::100", VPORT);
	tuple(&c.reply, "2001:db8:1::10", BPORT, "2001:db8::10", CPORT);
	assert_int_equal(fp_conn_install(fp, &c), -EAFNOSUPPORT);
}

static void test_full_map(void **state)
{
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	struct lb_tcp t;
	int i;

	(void)state;
	establish(&t, &cases[0]);
	conn_of(&c, &t);
	for (i = 0; i < 64; i++) {
		c.orig.sport = c.reply.dport = (uint16_t)(1000 + i);
		assert_int_equal(fp_conn_install(fp, &c), 0);
	}
	c.orig.sport = c.reply.dport = 999;
	assert_int_equal(fp_conn_install(fp, &c), -ENOSPC);
	for (i = 0; i < 64; i++) {
		c.orig.sport = (uint16_t)(1000 + i);
		assert_int_equal(fp_conn_remove(fp, &c.orig, &seen), 0);
	}
	assert_int_equal(fp_conn_count(fp), 0);
}

/* A pure ACK from src to dst, in window for t's direction dir; the
 * program's verdict: the source address and port it left with in *saddr,
 * *sport, 1 when it forwarded the packet (rewrote it), 0 when it passed it. */
static int send_ack(const struct lb_tcp *t, int dir, const char *src, uint16_t sport,
		    const char *dst, uint16_t dport, uint32_t *saddr, uint16_t *sport_out)
{
	struct pb_spec sp = {
		.src = src, .dst = dst, .sport = sport, .dport = dport,
		.seq = t->peer[dir].end, .ack = t->peer[!dir].end, .flags = F_A, .win = 500,
		.wscale = PB_NO_OPT,
	};
	uint8_t in[256], out[256];
	size_t len = pb_build(in, sizeof(in), &sp), outlen = sizeof(out);

	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	assert_int_equal(outlen, len);
	memcpy(saddr, out + 12, 4);
	*sport_out = pb_get16(out + 20);
	return memcmp(in, out, len) != 0;
}

static uint32_t ip4(const char *text)
{
	uint32_t a;

	assert_int_equal(inet_pton(AF_INET, text, &a), 1);
	return a;
}

/*
 * A connection is keyed once, under its orig tuple, and its replies found
 * through its backend's VIP (fp_abi.h). A backend that also serves another
 * VIP keys that one's connections twice: each reply must still get its own
 * connection's VIP, and a packet from a backend that is not the
 * connection's must not be taken for its reply.
 */
static void test_backend_in_two_services(void **state)
{
	struct lb_fastpath_conn a, b, other;
	struct lb_fastpath_seen seen;
	struct lb_tcp t;
	uint32_t saddr;
	uint16_t sport;

	(void)state;
	establish(&t, &cases[0]);
	conn_of(&a, &t);				/* CLIENT:CPORT -> VIP via BACKEND */
	conn_of(&b, &t);				/* CLIENT:CPORT+1 -> VIP2 via BACKEND */
	tuple(&b.orig, CLIENT, CPORT + 1, "198.18.0.101", VPORT);
	tuple(&b.reply, BACKEND, BPORT, CLIENT, CPORT + 1);
	conn_of(&other, &t);				/* CLIENT:CPORT+2 -> VIP via BACKEND2 */
	tuple(&other.orig, CLIENT, CPORT + 2, VIP, VPORT);
	tuple(&other.reply, "198.18.1.20", BPORT, CLIENT, CPORT + 2);
	assert_int_equal(fp_conn_install(fp, &a), 0);
	assert_int_equal(fp_conn_install(fp, &b), 0);
	assert_int_equal(fp_conn_install(fp, &other), 0);

	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT, &saddr, &sport), 1);
	assert_int_equal(saddr, ip4(VIP));
	assert_int_equal(sport, VPORT);
	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT + 1, &saddr, &sport), 1);
	assert_int_equal(saddr, ip4("198.18.0.101"));
	assert_int_equal(sport, VPORT);
	assert_int_equal(send_ack(&t, REPLY, "198.18.1.20", BPORT, CLIENT, CPORT + 2, &saddr,
				  &sport), 1);
	assert_int_equal(saddr, ip4(VIP));
	/* BACKEND leads to VIP, and CLIENT:CPORT+2 -> VIP is a connection, but
	 * not BACKEND's: passed up unchanged. */
	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT + 2, &saddr, &sport), 0);
	assert_int_equal(saddr, ip4(BACKEND));
	/* Once the last connection keyed once through BACKEND is gone, its
	 * replies are nobody's; b, keyed twice, is still found. */
	assert_int_equal(fp_conn_remove(fp, &a.orig, &seen), 0);
	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT, &saddr, &sport), 0);
	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT + 1, &saddr, &sport), 1);
	assert_int_equal(saddr, ip4("198.18.0.101"));
	assert_int_equal(fp_conn_remove(fp, &b.orig, &seen), 0);
	assert_int_equal(fp_conn_remove(fp, &other.orig, &seen), 0);
	assert_int_equal(send_ack(&t, REPLY, BACKEND, BPORT, CLIENT, CPORT + 1, &saddr, &sport), 0);
	assert_int_equal(fp_conn_count(fp), 0);
}

/* Sends s through the program: 1 when it forwarded it (rewrote it). */
static int forwards(const struct step *s)
{
	uint8_t in[65600], out[65600];
	size_t len = build(s, in, sizeof(in)), outlen = sizeof(out);
	int fast;

	assert_int_equal(fp_test_run(fp, in, len, out, &outlen), TC_ACT_OK);
	fast = memcmp(in, out, len) != 0;
	check_packet(s, in, len, out, outlen, fast);
	return fast;
}

/*
 * After a takeover the replicated bounds are up to one interval behind: the
 * program accepts a segment beyond them within the entry's takeover slack,
 * as the engine does (lb/tcp.c), but only until fp_set_slack_until()'s
 * deadline, and only with the slack the engine last installed or hinted.
 */
static void test_takeover_slack(void **state)
{
	const struct tcase *tc = &cases[0];
	/* 70,000 bytes past the client's end: beyond the server's window
	 * (maxend), within a slack of 100,000 and not of 50,000. */
	const struct step ahead = { ORIG, CI + 1 + 70000, SI + 1, F_PA, 502, 10, 1, OK, PLAIN };
	const struct step further = { ORIG, CI + 1 + 140000, SI + 1, F_PA, 502, 10, 1, OK, PLAIN };
	uint64_t before[FP_CNT_COUNT], after[FP_CNT_COUNT];
	struct lb_pkt_info pi = seg(ahead.seq, ahead.ack, ahead.flags, ahead.win, ahead.len, NO_WS);
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;
	struct lb_tcp t, exact;

	(void)state;
	establish(&t, tc);
	exact = t;
	conn_of(&c, &t);
	c.slack = 100000;
	assert_int_equal(fp_conn_install(fp, &c), 0);
	assert_int_equal(fp_counters(fp, before), 0);
	/* No grace period: exact bounds. */
	assert_int_equal(fp_set_slack_until(fp, 0), 0);
	assert_int_equal(forwards(&ahead), 0);
	assert_int_equal(lb_tcp_track(&exact, ORIG, &pi), LB_TCP_OUT_OF_WINDOW);
	/* A grace period that has ended: the same. */
	assert_int_equal(fp_set_slack_until(fp, clock_mono_ms() - 1), 0);
	assert_int_equal(forwards(&ahead), 0);
	/* Within one: forwarded, and the edges are the engine's with the
	 * same slack. */
	assert_int_equal(fp_set_slack_until(fp, clock_mono_ms() + 60000), 0);
	assert_int_equal(forwards(&ahead), 1);
	t.slack[0] = t.slack[1] = c.slack;
	assert_int_equal(lb_tcp_track(&t, ORIG, &pi), LB_TCP_ACCEPT);
	assert_true(t.used_slack);
	assert_same_edges(&t, "takeover slack");
	/* 140,000 bytes past the old end is 74,840 past the server's window
	 * edge: within a slack of 100,000, not within the 50,000 of a hint
	 * that narrows it, and again within the 100,000 of the next. */
	conn_of(&c, &t);
	c.slack = 50000;
	assert_int_equal(fp_conn_install(fp, &c), 0);
	assert_int_equal(forwards(&further), 0);
	c.slack = 100000;
	assert_int_equal(fp_conn_install(fp, &c), 0);
	assert_int_equal(forwards(&further), 1);
	assert_int_equal(fp_counters(fp, after), 0);
	assert_int_equal(after[FP_CNT_FWD_SLACK] - before[FP_CNT_FWD_SLACK], 2);
	assert_int_equal(after[FP_CNT_PASS_WINDOW] - before[FP_CNT_PASS_WINDOW], 3);
	assert_int_equal(fp_set_slack_until(fp, 0), 0);
	fp_conn_remove(fp, &c.orig, &seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_counters_and_sweep),
		cmocka_unit_test(test_sweep_reports_movement),
		cmocka_unit_test(test_signal_after_bytes),
		cmocka_unit_test(test_disabled_passes_everything),
		cmocka_unit_test(test_fin_stops_forwarding),
		cmocka_unit_test(test_ipv6_refused),
		cmocka_unit_test(test_full_map),
		cmocka_unit_test(test_backend_in_two_services),
		cmocka_unit_test(test_takeover_slack),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
