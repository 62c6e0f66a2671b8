/*
 * Unit tests of the engine's fast-path hooks (lb/fastpath.c, lb_fastpath.h)
 * with a stand-in for the kernel: one entry, whose window edges and counters
 * the test moves as the program would. The engine must install a
 * connection when its handshake completes, catch up with the kernel's edges
 * before it judges a packet that went up (or it would refuse it), push its
 * own edges back after accepting one, take the connection back when it
 * leaves ESTABLISHED or expires, and apply the sweep's reports.
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
#include "lb_fastpath.h"
#include "pktbuild.h"

#define T0 5000000u
#define CI 100000u
#define SI 900000u
#define VIP "198.18.0.100"
#define BE "198.18.1.11"
#define CLIENT "198.18.0.10"
#define CPORT 40000
#define BPORT 8080

/* The stand-in kernel: at most one entry. */
struct kernel {
	int installed;
	int installs, refreshes, reads, removes;
	struct lb_fastpath_conn c;
	struct lb_fastpath_seen seen;	/* what the next read reports */
};

static int k_install(void *arg, const struct lb_fastpath_conn *c)
{
	struct kernel *k = arg;

	if (k->installed) {
		k->refreshes++;
		for (int d = 0; d < 2; d++)
			if (lb_seq_gt(c->peer[d].end, k->seen.peer[d].end))
				k->seen.peer[d].end = c->peer[d].end;
		return 0;
	}
	k->installs++;
	k->installed = 1;
	k->c = *c;
	memset(&k->seen, 0, sizeof(k->seen));
	k->seen.peer[0] = c->peer[0];
	k->seen.peer[1] = c->peer[1];
	return 0;
}

static int k_read(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	struct kernel *k = arg;

	if (!k->installed || !lb_tuple_equal(orig, &k->c.orig))
		return -ENOENT;
	k->reads++;
	*out = k->seen;
	memset(k->seen.pkts, 0, sizeof(k->seen.pkts));
	memset(k->seen.bytes, 0, sizeof(k->seen.bytes));
	return 0;
}

static int k_remove(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	struct kernel *k = arg;
	int rc = k_read(arg, orig, out);

	if (rc == 0) {
		k->removes++;
		k->installed = 0;
	}
	return rc;
}

static const struct lb_fastpath_ops k_ops = { k_install, k_read, k_remove };

/* A kernel whose map refuses every entry (full, or an IPv6 tuple). */
static int k_refuse(void *arg, const struct lb_fastpath_conn *c)
{
	struct kernel *k = arg;

	(void)c;
	k->installs++;
	return -ENOSPC;
}

static const struct lb_fastpath_ops k_full_ops = { k_refuse, k_read, k_remove };

struct fx {
	struct lb_engine *e;
	struct lb_worker *w;
	struct kernel k;
	uint8_t buf[4096];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct lb_engine_conf conf;
	struct lb_backend_conf b = { .port = BPORT, .weight = 1 };
	struct lb_service_conf s = { .port = 80, .scheduler = "rr", .backends = &b,
				     .nbackends = 1 };

	assert_non_null(f);
	lb_engine_conf_defaults(&conf);
	conf.max_conns = 16;
	f->e = lb_engine_new(&conf, T0);
	assert_non_null(f->e);
	f->w = lb_engine_worker_new(f->e);
	assert_int_equal(lb_addr_parse(&b.addr, BE), 0);
	assert_int_equal(lb_addr_parse(&s.vip, VIP), 0);
	assert_int_equal(lb_engine_set_services(f->e, &s, 1), 0);
	lb_engine_set_fastpath(f->e, &k_ops, &f->k);
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

/* Sends one segment; returns the verdict. orig: client -> VIP, else backend -> client. */
static enum lb_verdict send_seg(struct fx *f, int orig, uint32_t seq, uint32_t ack,
				uint8_t flags, uint32_t len, uint64_t now)
{
	struct pb_spec s = {
		.src = orig ? CLIENT : BE, .dst = orig ? VIP : CLIENT,
		.sport = orig ? CPORT : BPORT, .dport = orig ? 80 : CPORT,
		.seq = seq, .ack = ack, .flags = flags, .win = 65000, .payload_len = len,
		.wscale = PB_NO_OPT,
	};
	struct lb_packet pkt = { .data = f->buf, .hook = orig ? LB_HOOK_PRE : LB_HOOK_POST };

	pkt.len = (uint32_t)pb_build(f->buf, sizeof(f->buf), &s);
	return lb_engine_packet(f->e, f->w, &pkt, now);
}

static void handshake(struct fx *f)
{
	assert_int_equal(send_seg(f, 1, CI, 0, LB_TCP_SYN, 0, T0), LB_VERDICT_ACCEPT);
	assert_int_equal(send_seg(f, 0, SI, CI + 1, LB_TCP_SYN | LB_TCP_ACK, 0, T0),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(f->k.installs, 0);
	assert_int_equal(send_seg(f, 1, CI + 1, SI + 1, LB_TCP_ACK, 0, T0), LB_VERDICT_ACCEPT);
}

static uint64_t counter(struct fx *f, enum lb_counter c)
{
	uint64_t all[LB_CNT_COUNT];

	lb_engine_counters(f->e, all);
	return all[c];
}

static void test_installed_when_established(void **state)
{
	struct fx *f = *state;
	struct lb_tuple want;

	handshake(f);
	assert_int_equal(f->k.installs, 1);
	assert_int_equal(counter(f, LB_CNT_FAST_INSTALLS), 1);
	assert_int_equal(lb_addr_parse(&want.src, CLIENT), 0);
	assert_int_equal(lb_addr_parse(&want.dst, VIP), 0);
	want.sport = CPORT;
	want.dport = 80;
	assert_true(lb_tuple_equal(&f->k.c.orig, &want));
	assert_int_equal(f->k.c.reply.sport, BPORT);
	assert_int_equal(f->k.c.peer[LB_DIR_ORIG].end, CI + 1);
	assert_int_equal(f->k.c.peer[LB_DIR_REPLY].end, SI + 1);
}

/*
 * The kernel forwarded 50,000 bytes of the server's; the client's ACK of
 * them comes up: without catching up first the engine would refuse it
 * (check III: it acks data the engine never saw).
 */
static void test_catches_up_before_judging(void **state)
{
	struct fx *f = *state;

	handshake(f);
	f->k.seen.peer[LB_DIR_REPLY].end = SI + 1 + 50000;
	f->k.seen.peer[LB_DIR_ORIG].maxend = CI + 1 + 65000;
	f->k.seen.pkts[LB_DIR_REPLY] = 40;
	f->k.seen.bytes[LB_DIR_REPLY] = 52000;
	f->k.seen.last_seen_ms = T0 + 10;
	assert_int_equal(send_seg(f, 1, CI + 1, SI + 1 + 50000, LB_TCP_ACK, 100, T0 + 20),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(counter(f, LB_CNT_DROP_OUT_OF_WINDOW), 0);
	assert_int_equal(counter(f, LB_CNT_FAST_PKTS), 40);
	assert_int_equal(counter(f, LB_CNT_FAST_BYTES), 52000);
	/* The engine's own movement (100 bytes of the client's) went back. */
	assert_int_equal(f->k.refreshes, 1);
	assert_int_equal(f->k.seen.peer[LB_DIR_ORIG].end, CI + 1 + 100);
}

/* Without the hooks the same ACK is refused: the test above can fail. */
static void test_without_catch_up_refused(void **state)
{
	struct fx *f = *state;

	handshake(f);
	lb_engine_set_fastpath(f->e, NULL, NULL);
	assert_int_equal(send_seg(f, 1, CI + 1, SI + 1 + 50000, LB_TCP_ACK, 0, T0 + 20),
			 LB_VERDICT_DROP);
	assert_int_equal(counter(f, LB_CNT_DROP_OUT_OF_WINDOW), 1);
}

static void test_fin_takes_it_back(void **state)
{
	struct fx *f = *state;

	handshake(f);
	f->k.seen.peer[LB_DIR_ORIG].end = CI + 1 + 300;	/* forwarded in the kernel */
	f->k.seen.peer[LB_DIR_ORIG].maxend = CI + 1 + 65000;
	f->k.seen.peer[LB_DIR_REPLY].end = SI + 1;
	assert_int_equal(send_seg(f, 1, CI + 301, SI + 1, LB_TCP_FIN | LB_TCP_ACK, 0, T0 + 5),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(f->k.removes, 1);
	assert_false(f->k.installed);
	assert_int_equal(counter(f, LB_CNT_FAST_REMOVES), 1);
	/* Later packets are the engine's alone. */
	assert_int_equal(send_seg(f, 0, SI + 1, CI + 302, LB_TCP_ACK, 0, T0 + 6),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(f->k.installs, 1);
}

/* The sweep's report keeps a connection the kernel keeps busy alive. */
static void test_seen_restarts_idle_timeout(void **state)
{
	struct fx *f = *state;
	struct lb_fastpath_seen s;
	uint64_t est = 900 * 1000u;

	handshake(f);
	memset(&s, 0, sizeof(s));
	s.peer[0] = f->k.c.peer[0];
	s.peer[1] = f->k.c.peer[1];
	s.last_seen_ms = T0 + est - 1000;
	s.pkts[LB_DIR_REPLY] = 7;
	assert_int_equal(lb_engine_fastpath_seen(f->e, f->w, &f->k.c.orig, &s, T0 + est - 500), 0);
	assert_int_equal(counter(f, LB_CNT_FAST_PKTS), 7);
	lb_engine_tick(f->e, f->w, T0 + est + 1000);
	assert_int_equal(lb_engine_conn_count(f->e), 1);
	assert_int_equal(f->k.removes, 0);
	/* Quiet since: it expires, and leaves the kernel. */
	lb_engine_tick(f->e, f->w, T0 + 2 * est + 5000);
	assert_int_equal(lb_engine_conn_count(f->e), 0);
	assert_int_equal(f->k.removes, 1);
	/* A report for a connection the engine no longer has. */
	assert_int_equal(lb_engine_fastpath_seen(f->e, f->w, &f->k.c.orig, &s, T0 + 2 * est),
			 -ENOENT);
}

/*
 * A refused connection stays on NFQUEUE, is offered again with each packet
 * (the map may have room by then) and is counted once, not per packet.
 */
static void test_refused_counted_once(void **state)
{
	struct fx *f = *state;

	lb_engine_set_fastpath(f->e, &k_full_ops, &f->k);
	handshake(f);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(send_seg(f, 1, CI + 1 + i * 100, SI + 1, LB_TCP_ACK, 100, T0 + i),
				 LB_VERDICT_ACCEPT);
	assert_int_equal(f->k.installs, 6);
	assert_int_equal(counter(f, LB_CNT_FAST_INSTALL_FAILED), 1);
	assert_int_equal(counter(f, LB_CNT_FAST_INSTALLS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_installed_when_established, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_catches_up_before_judging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_catch_up_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fin_takes_it_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seen_restarts_idle_timeout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
