/*
 * The engine's thread contract, exercised: worker threads push whole
 * connections through lb_engine_packet() while one control thread reloads
 * (lb_engine_set_services, a backend removed and added back), ticks and
 * changes nothing else, and an observer thread reads what lbctl reads
 * (counters, foreach_conn, foreach_backend). Built under ThreadSanitizer by
 * `make tsan`, where any data race fails the suite; in a plain build it checks
 * that every packet got a sensible verdict and that drained backends are
 * freed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lb_engine.h"
#include "pktbuild.h"

#define WORKERS 2
#define CONNS_PER_WORKER 400
#define RELOADS 200
#define VIP "198.18.0.100"
#define T0 1000000u

static const char *const backends[3] = { "198.18.1.11", "198.18.1.12", "198.18.1.13" };

struct shared {
	struct lb_engine *e;
	atomic_uint_fast64_t now_ms;
	atomic_int workers_done;
	atomic_uint_fast64_t accepted, dropped;
};

struct worker_arg {
	struct shared *sh;
	struct lb_worker *w;
	int idx;
};

static int load(struct lb_engine *e, size_t nbackends)
{
	struct lb_backend_conf b[3];
	struct lb_service_conf s;

	memset(b, 0, sizeof(b));
	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < nbackends; i++) {
		if (lb_addr_parse(&b[i].addr, backends[i]) < 0)
			return -1;
		b[i].port = 8080;
		b[i].weight = 1;
	}
	if (lb_addr_parse(&s.vip, VIP) < 0)
		return -1;
	s.port = 80;
	snprintf(s.scheduler, sizeof(s.scheduler), "rr");
	s.backends = b;
	s.nbackends = nbackends;
	return lb_engine_set_services(e, &s, 1);
}

static enum lb_verdict send_pkt(struct worker_arg *a, struct pb_spec *s, enum lb_hook hook,
				uint8_t *buf, size_t cap)
{
	size_t len = pb_build(buf, cap, s);
	struct lb_packet p = { .data = buf, .len = (uint32_t)len, .hook = hook };
	enum lb_verdict v = lb_engine_packet(a->sh->e, a->w, &p,
					     atomic_load(&a->sh->now_ms));

	atomic_fetch_add(v == LB_VERDICT_ACCEPT ? &a->sh->accepted : &a->sh->dropped, 1);
	return v;
}

/* SYN, SYN/ACK from the backend the engine chose, ACK, data, RST. */
static void one_conn(struct worker_arg *a, uint16_t cport, uint8_t *buf, size_t cap)
{
	char client[32], backend[64];
	struct pb_spec s;
	uint32_t cseq = 1000u + cport, sseq = 500000u + cport;

	snprintf(client, sizeof(client), "198.18.0.%d", 10 + a->idx);
	s = pb_spec_v4(client, cport, VIP, 80);
	s.seq = cseq;
	s.flags = LB_TCP_SYN;
	s.win = 65535;
	s.mss = 1460;
	s.wscale = 7;
	if (send_pkt(a, &s, LB_HOOK_PRE, buf, cap) != LB_VERDICT_ACCEPT)
		return;		/* no backend during a reload window, or clash */
	pb_dst_text(buf, backend, sizeof(backend));
	s = pb_spec_v4(backend, 8080, client, cport);
	s.seq = sseq;
	s.ack = cseq + 1;
	s.flags = LB_TCP_SYN | LB_TCP_ACK;
	s.win = 65535;
	s.mss = 1460;
	s.wscale = 7;
	send_pkt(a, &s, LB_HOOK_POST, buf, cap);
	s = pb_spec_v4(client, cport, VIP, 80);
	s.seq = cseq + 1;
	s.ack = sseq + 1;
	s.flags = LB_TCP_ACK;
	s.win = 512;
	send_pkt(a, &s, LB_HOOK_PRE, buf, cap);
	s.flags = LB_TCP_ACK | LB_TCP_PSH;
	s.payload_len = 100;
	send_pkt(a, &s, LB_HOOK_PRE, buf, cap);
	s.seq += 100;
	s.payload_len = 0;
	s.flags = LB_TCP_RST;
	send_pkt(a, &s, LB_HOOK_PRE, buf, cap);
}

static void *worker_main(void *arg)
{
	struct worker_arg *a = arg;
	static _Thread_local uint8_t buf[2048];

	for (int i = 0; i < CONNS_PER_WORKER; i++)
		one_conn(a, (uint16_t)(10000 + i), buf, sizeof(buf));
	atomic_fetch_add(&a->sh->workers_done, 1);
	return NULL;
}

static void count_conn(const struct lb_conn_info *c, void *arg)
{
	(*(size_t *)arg) += c->state.tcp.state != 0;
}

static void count_backend(const struct lb_backend_info *be, void *arg)
{
	(*(size_t *)arg) += be->weight;
}

/* What lbctl does from the control socket's thread: reads, never writes. */
static void *observer_main(void *arg)
{
	struct shared *sh = arg;
	uint64_t c[LB_CNT_COUNT];

	while (atomic_load(&sh->workers_done) < WORKERS) {
		size_t n = 0;

		lb_engine_counters(sh->e, c);
		lb_engine_foreach_conn(sh->e, atomic_load(&sh->now_ms), count_conn, &n);
		lb_engine_foreach_backend(sh->e, count_backend, &n);
		(void)lb_engine_conn_count(sh->e);
	}
	return NULL;
}

static void test_workers_reload_tick_observer(void **state)
{
	struct shared sh;
	struct worker_arg wa[WORKERS];
	pthread_t wt[WORKERS], ot;
	struct lb_engine_conf conf;
	struct lb_worker *ctl;
	uint64_t c[LB_CNT_COUNT];

	(void)state;
	memset(&sh, 0, sizeof(sh));
	lb_engine_conf_defaults(&conf);
	conf.max_conns = 4096;
	conf.timeout_s[LB_TCP_CLOSE] = 1;
	atomic_init(&sh.now_ms, T0);
	sh.e = lb_engine_new(&conf, T0);
	assert_non_null(sh.e);
	ctl = lb_engine_worker_new(sh.e);
	assert_non_null(ctl);
	assert_int_equal(load(sh.e, 3), 0);
	for (int i = 0; i < WORKERS; i++) {
		wa[i] = (struct worker_arg){ &sh, lb_engine_worker_new(sh.e), i };
		assert_non_null(wa[i].w);
		assert_int_equal(pthread_create(&wt[i], NULL, worker_main, &wa[i]), 0);
	}
	assert_int_equal(pthread_create(&ot, NULL, observer_main, &sh), 0);
	/* The control thread: reloads that drain and restore a backend, and
	 * ticks that expire closed connections and free drained backends. */
	for (int r = 0; r < RELOADS || atomic_load(&sh.workers_done) < WORKERS; r++) {
		assert_int_equal(load(sh.e, r % 2 ? 2 : 3), 0);
		atomic_fetch_add(&sh.now_ms, 50);
		lb_engine_tick(sh.e, ctl, atomic_load(&sh.now_ms));
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(ot, NULL);
	/* Let every connection expire, then the drained backend goes. */
	assert_int_equal(load(sh.e, 2), 0);
	for (int t = 0; t < 400; t++) {
		atomic_fetch_add(&sh.now_ms, 1000);
		lb_engine_tick(sh.e, ctl, atomic_load(&sh.now_ms));
	}
	lb_engine_counters(sh.e, c);
	assert_true(c[LB_CNT_CONNS_CREATED] > 0);
	assert_int_equal(lb_engine_conn_count(sh.e), 0);
	assert_true(c[LB_CNT_BACKENDS_FREED] > 0);
	assert_true(atomic_load(&sh.accepted) >= c[LB_CNT_CONNS_CREATED]);
	lb_engine_free(sh.e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workers_reload_tick_observer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
