/*
 * Unit tests of lb_admin.h: runtime changes to a running engine, checked
 * through SYNs (which backend a new connection gets) and backend snapshots.
 * One service VIP:80, wrr, over three backends; the scheduler's picks tell
 * whether a change took effect and established connections whether it
 * spared them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lb_admin.h"
#include "lb_engine.h"
#include "pktbuild.h"

#define T0 5000000u
#define VIP "198.18.0.100"
static const char *const bes[4] = { "198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14" };

struct fx {
	struct lb_engine *e;
	struct lb_worker *w;
	uint8_t buf[256];
	uint16_t next_port;
};

static struct lb_backend_conf bconf(int i, uint32_t weight)
{
	struct lb_backend_conf b = { .port = 80, .weight = weight };

	assert_int_equal(lb_addr_parse(&b.addr, bes[i]), 0);
	return b;
}

static struct lb_backend_ref ref(int i)
{
	struct lb_backend_ref r = { .vport = 80, .port = 80 };

	assert_int_equal(lb_addr_parse(&r.vip, VIP), 0);
	assert_int_equal(lb_addr_parse(&r.addr, i >= 0 ? bes[i] : "198.18.9.9"), 0);
	return r;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct lb_engine_conf conf;
	struct lb_backend_conf b[3] = { bconf(0, 1), bconf(1, 1), bconf(2, 1) };
	struct lb_service_conf s = { .port = 80, .backends = b, .nbackends = 3 };

	assert_non_null(f);
	lb_engine_conf_defaults(&conf);
	conf.max_conns = 4096;
	conf.max_persist = 16;
	f->e = lb_engine_new(&conf, T0);
	f->w = lb_engine_worker_new(f->e);
	assert_non_null(f->w);
	assert_int_equal(lb_addr_parse(&s.vip, VIP), 0);
	snprintf(s.scheduler, sizeof(s.scheduler), "wrr");
	assert_int_equal(lb_engine_set_services(f->e, &s, 1), 0);
	f->next_port = 20000;
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

/* Sends a new client's SYN; returns the backend index it went to, or -1 if dropped. */
static int syn(struct fx *f)
{
	struct pb_spec s = pb_spec_v4("198.18.5.1", f->next_port++, VIP, 80);
	struct lb_packet pkt;
	char dst[64];
	size_t len;

	s.flags = LB_TCP_SYN;
	s.seq = 1000;
	s.win = 65535;
	len = pb_build(f->buf, sizeof(f->buf), &s);
	pkt = (struct lb_packet){ .data = f->buf, .len = (uint32_t)len, .hook = LB_HOOK_PRE };
	if (lb_engine_packet(f->e, f->w, &pkt, T0) != LB_VERDICT_ACCEPT)
		return -1;
	pb_dst_text(f->buf, dst, sizeof(dst));
	for (int i = 0; i < 4; i++)
		if (strcmp(dst, bes[i]) == 0)
			return i;
	fail_msg("SYN went to %s", dst);
	return -1;
}

/* Counts where n new connections go. */
static void spread(struct fx *f, int n, int seen[4])
{
	memset(seen, 0, 4 * sizeof(int));
	for (int i = 0; i < n; i++) {
		int b = syn(f);

		assert_true(b >= 0);
		seen[b]++;
	}
}

struct find { const char *addr; struct lb_backend_info info; int found; };

static void find_cb(const struct lb_backend_info *be, void *arg)
{
	struct find *x = arg;
	char a[64];

	lb_addr_format(&be->addr, a, sizeof(a));
	if (strcmp(a, x->addr) == 0) {
		x->info = *be;
		x->found++;
	}
}

static struct lb_backend_info info_of(struct fx *f, int i, int *found)
{
	struct find x = { .addr = bes[i] };

	lb_engine_foreach_backend(f->e, find_cb, &x);
	*found = x.found;
	return x.info;
}

static void test_weight_moves_share(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(0);
	int seen[4];

	spread(f, 30, seen);
	assert_int_equal(seen[0], 10);
	assert_int_equal(lb_engine_backend_set_weight(f->e, &r, 4), 0);
	spread(f, 60, seen);
	assert_int_equal(seen[0], 40);
	assert_int_equal(seen[1], 10);
	assert_int_equal(seen[2], 10);
	assert_int_equal(lb_engine_backend_set_weight(f->e, &r, 0), 0);
	spread(f, 20, seen);
	assert_int_equal(seen[0], 0);
}

static void test_drain_keeps_established(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(1);
	struct lb_backend_info bi;
	int seen[4], found;

	spread(f, 30, seen);
	assert_int_equal(lb_engine_backend_set_drain(f->e, &r, true), 0);
	bi = info_of(f, 1, &found);
	assert_int_equal(found, 1);
	assert_true(bi.drain);
	assert_false(bi.draining);	/* still configured, not being freed */
	assert_int_equal(bi.inactive, 10);	/* its connections are kept */
	spread(f, 30, seen);
	assert_int_equal(seen[1], 0);
	assert_int_equal(seen[0] + seen[2], 30);
	lb_engine_tick(f->e, f->w, T0 + 1000);
	info_of(f, 1, &found);
	assert_int_equal(found, 1);	/* a drained backend is not freed */
	assert_int_equal(lb_engine_backend_set_drain(f->e, &r, false), 0);
	spread(f, 30, seen);
	assert_int_equal(seen[1], 10);
}

static void test_add_and_remove_live(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(0);
	struct lb_backend_conf add = bconf(3, 1);
	int seen[4], found;

	assert_int_equal(lb_engine_backend_add(f->e, &r, &add), 0);
	assert_int_equal(lb_engine_backend_add(f->e, &r, &add), -EEXIST);
	spread(f, 40, seen);
	assert_int_equal(seen[3], 10);
	r = ref(3);
	assert_int_equal(lb_engine_backend_remove(f->e, &r), 0);
	assert_int_equal(lb_engine_backend_remove(f->e, &r), -ENOENT);
	spread(f, 30, seen);
	assert_int_equal(seen[3], 0);
	/* Removed with connections: listed as draining until they end. */
	assert_true(info_of(f, 3, &found).draining);
	assert_int_equal(found, 1);
}

static void test_disable_service(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(0);
	uint64_t c[LB_CNT_COUNT];

	assert_int_equal(lb_engine_service_set_enabled(f->e, &r, false), 0);
	assert_int_equal(syn(f), -1);
	lb_engine_counters(f->e, c);
	assert_int_equal(c[LB_CNT_DROP_SERVICE_DISABLED], 1);
	/* Other edits keep it disabled; enabling brings it back. */
	assert_int_equal(lb_engine_backend_set_weight(f->e, &r, 2), 0);
	assert_int_equal(syn(f), -1);
	assert_int_equal(lb_engine_service_set_enabled(f->e, &r, true), 0);
	assert_true(syn(f) >= 0);
}

static void test_health_down_up(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(2);
	struct lb_backend_conf b[3] = { bconf(0, 1), bconf(1, 1), bconf(2, 1) };
	struct lb_service_conf s = { .port = 80, .backends = b, .nbackends = 3 };
	int seen[4], found;

	assert_int_equal(lb_engine_backend_set_health(f->e, &r, false), 1);
	assert_int_equal(lb_engine_backend_set_health(f->e, &r, false), 0);
	assert_true(info_of(f, 2, &found).down);
	spread(f, 20, seen);
	assert_int_equal(seen[2], 0);
	/* Health belongs to the backend: a reload keeps it down. */
	assert_int_equal(lb_addr_parse(&s.vip, VIP), 0);
	snprintf(s.scheduler, sizeof(s.scheduler), "wrr");
	assert_int_equal(lb_engine_set_services(f->e, &s, 1), 0);
	spread(f, 20, seen);
	assert_int_equal(seen[2], 0);
	assert_int_equal(lb_engine_backend_set_health(f->e, &r, true), 1);
	spread(f, 30, seen);
	assert_int_equal(seen[2], 10);
}

static void test_reload_clears_runtime_changes(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(0);
	struct lb_backend_conf b[3] = { bconf(0, 1), bconf(1, 1), bconf(2, 1) };
	struct lb_service_conf s = { .port = 80, .backends = b, .nbackends = 3 };
	int seen[4];

	assert_int_equal(lb_engine_backend_set_drain(f->e, &r, true), 0);
	assert_int_equal(lb_addr_parse(&s.vip, VIP), 0);
	snprintf(s.scheduler, sizeof(s.scheduler), "wrr");
	assert_int_equal(lb_engine_set_services(f->e, &s, 1), 0);
	spread(f, 30, seen);
	assert_int_equal(seen[0], 10);
}

static void test_unknown_targets(void **state)
{
	struct fx *f = *state;
	struct lb_backend_ref r = ref(-1), nosvc = ref(0);
	struct lb_backend_conf v6 = { .port = 80, .weight = 1 };

	nosvc.vport = 81;
	assert_int_equal(lb_engine_backend_set_weight(f->e, &r, 3), -ENOENT);
	assert_int_equal(lb_engine_backend_set_drain(f->e, &nosvc, true), -ESRCH);
	assert_int_equal(lb_engine_service_set_enabled(f->e, &nosvc, false), -ESRCH);
	assert_int_equal(lb_engine_backend_set_health(f->e, &r, false), -ENOENT);
	assert_int_equal(lb_engine_backend_set_health(f->e, &nosvc, false), -ESRCH);
	assert_int_equal(lb_addr_parse(&v6.addr, "2001:db8::1"), 0);
	assert_int_equal(lb_engine_backend_add(f->e, &r, &v6), -EINVAL);
	/* Nothing changed: all three still share. */
	{
		int seen[4];

		spread(f, 30, seen);
		assert_int_equal(seen[0], 10);
		assert_int_equal(seen[1], 10);
		assert_int_equal(seen[2], 10);
	}
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_weight_moves_share),
		T(test_drain_keeps_established),
		T(test_add_and_remove_live),
		T(test_disable_service),
		T(test_health_down_up),
		T(test_reload_clears_runtime_changes),
		T(test_unknown_targets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
