/*
 * Unit tests of lbd's loop, the engine's control thread, through
 * lbd_loop.h: services and roles applied on the loop thread, and the
 * bounded wait: a command the loop has not taken in time is withdrawn and
 * never applies; one it is running when the caller gives up still finishes
 * (and frees itself) after the caller has gone.
 *
 * lbd/ is a program, not a library the tests link against, so this test
 * compiles loop.c into itself by including it (as wireguard-tools' fuzzers
 * include the parser they drive), over a real engine and a stand-in for the
 * sync channel (lbd_sync.h) that the test can stall.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lbd/lbd_loop.h"
#include "../../lbd/loop.c"
#include "../../lbd/takeover.c"
#include "../../lbd/kick.c"

/* ---- a sync channel that the test can stall ---- */

struct lbd_sync {
	int pipe[2];			/* a byte written here wakes the loop */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool stall_run;			/* lbd_sync_run() waits while set */
	bool in_run;			/* lbd_sync_run() is waiting */
	bool stall_role;		/* lbd_sync_set_role() waits while set */
	bool in_role;			/* lbd_sync_set_role() is waiting */
	enum lb_role role;
	atomic_bool takeover_ok;	/* what lbd_sync_takeover_ok() answers */
};

int lbd_sync_takeover_ok(struct lbd_sync *s, uint64_t now_ms, char *why, size_t len)
{
	(void)now_ms;
	snprintf(why, len, "the test's peer is a live master");
	return atomic_load(&s->takeover_ok);
}

/* ---- a VIP watcher the test drives: each byte written is one batch of
 * events (the byte's value) ---- */

struct lbd_vipwatch {
	int pipe[2];
};

int lbd_vipwatch_fd(const struct lbd_vipwatch *w)
{
	return w->pipe[0];
}

int lbd_vipwatch_read(struct lbd_vipwatch *w)
{
	uint8_t byte = 0;

	if (read(w->pipe[0], &byte, 1) < 0)
		fail();
	return byte;
}

static void vip_event(struct lbd_vipwatch *w, int events)
{
	uint8_t byte = (uint8_t)events;

	assert_int_equal(write(w->pipe[1], &byte, 1), 1);
}

uint64_t lbd_sync_peer_silent_ms(struct lbd_sync *s, uint64_t now_ms)
{
	(void)s;
	(void)now_ms;
	return 0;
}

void lbd_sync_poll_fds(struct lbd_sync *s, struct pollfd p[static LBD_SYNC_POLLFDS])
{
	p[0] = (struct pollfd){ s->pipe[0], POLLIN, 0 };
	p[1] = (struct pollfd){ s->pipe[0], POLLIN, 0 };
}

uint64_t lbd_sync_next_ms(struct lbd_sync *s, uint64_t now_ms)
{
	(void)s;
	return now_ms + 1000;
}

void lbd_sync_run(struct lbd_sync *s, const struct pollfd p[static LBD_SYNC_POLLFDS],
		  uint64_t now_ms)
{
	char byte;

	(void)now_ms;
	if ((p[0].revents & POLLIN) && read(s->pipe[0], &byte, 1) < 0)
		fail();
	pthread_mutex_lock(&s->lock);
	while (s->stall_run) {
		s->in_run = true;
		pthread_cond_broadcast(&s->changed);
		pthread_cond_wait(&s->changed, &s->lock);
	}
	s->in_run = false;
	pthread_mutex_unlock(&s->lock);
}

/* The loop's fast path hook; these tests run without one. */
void lbd_fastpath_sweep(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			uint64_t now_ms)
{
	assert_null(f);
	(void)e;
	(void)w;
	(void)now_ms;
}

void lbd_fastpath_set_master(struct lbd_fastpath *f, int master)
{
	assert_null(f);
	(void)master;
}

void lbd_fastpath_takeover(struct lbd_fastpath *f, uint64_t until_ms)
{
	assert_null(f);
	(void)until_ms;
}

int lbd_fastpath_signal_fd(struct lbd_fastpath *f)
{
	assert_null(f);
	return -1;
}

void lbd_fastpath_signals(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			  uint64_t now_ms)
{
	(void)f;
	(void)e;
	(void)w;
	(void)now_ms;
	fail();		/* no descriptor: never readable */
}

void lbd_sync_set_role(struct lbd_sync *s, enum lb_role role)
{
	pthread_mutex_lock(&s->lock);
	s->in_role = true;
	pthread_cond_broadcast(&s->changed);
	while (s->stall_role)
		pthread_cond_wait(&s->changed, &s->lock);
	s->role = role;
	s->in_role = false;
	pthread_mutex_unlock(&s->lock);
}

static void stall(struct lbd_sync *s, bool *flag, bool on)
{
	pthread_mutex_lock(&s->lock);
	*flag = on;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

/* Waits until *flag is set (by the loop thread, under the lock). */
static void wait_for(struct lbd_sync *s, bool *flag)
{
	pthread_mutex_lock(&s->lock);
	while (!*flag)
		pthread_cond_wait(&s->changed, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

/* ---- fixture ---- */

struct fx {
	struct lb_engine *e;
	struct lbd_sync sync;
	struct lbd_vipwatch vip;
	struct lbd_loop *loop;
};

static int setup(void **state, bool with_sync, int vip_takeover)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct lb_engine_conf ec;

	assert_non_null(f);
	lb_engine_conf_defaults(&ec);
	ec.max_conns = 64;
	f->e = lb_engine_new(&ec, clock_mono_ms());
	assert_non_null(f->e);
	assert_int_equal(pipe(f->sync.pipe), 0);
	pthread_mutex_init(&f->sync.lock, NULL);
	pthread_cond_init(&f->sync.changed, NULL);
	f->loop = lbd_loop_new(f->e, with_sync ? &f->sync : NULL);
	assert_non_null(f->loop);
	assert_int_equal(pipe(f->vip.pipe), 0);
	if (vip_takeover >= 0)
		lbd_loop_set_vipwatch(f->loop, &f->vip, vip_takeover);
	assert_int_equal(lbd_loop_start(f->loop), 0);
	*state = f;
	return 0;
}

static int setup_plain(void **state) { return setup(state, false, -1); }
static int setup_sync(void **state) { return setup(state, true, -1); }
static int setup_vip(void **state) { return setup(state, true, 1); }
static int setup_vip_off(void **state) { return setup(state, true, 0); }

static int teardown(void **state)
{
	struct fx *f = *state;

	stall(&f->sync, &f->sync.stall_run, false);
	stall(&f->sync, &f->sync.stall_role, false);
	lbd_loop_free(f->loop);
	lb_engine_free(f->e);
	close(f->sync.pipe[0]);
	close(f->sync.pipe[1]);
	close(f->vip.pipe[0]);
	close(f->vip.pipe[1]);
	pthread_cond_destroy(&f->sync.changed);
	pthread_mutex_destroy(&f->sync.lock);
	free(f);
	return 0;
}

/* A configuration of one service VIP:port with one backend. */
static void one_service(struct lb_conf *c, uint16_t port)
{
	struct lb_service_conf *s = calloc(1, sizeof(*s));
	struct lb_backend_conf *b = calloc(1, sizeof(*b));

	assert_non_null(s);
	assert_non_null(b);
	memset(c, 0, sizeof(*c));
	assert_int_equal(lb_addr_parse(&s->vip, "198.18.0.100"), 0);
	s->port = port;
	strcpy(s->scheduler, "rr");
	assert_int_equal(lb_addr_parse(&b->addr, "198.18.1.11"), 0);
	b->port = 80;
	b->weight = 1;
	s->backends = b;
	s->nbackends = 1;
	c->services = s;
	c->nservices = 1;
}

/* Waits up to 2 s for the engine to take role r. */
static bool role_becomes(struct lb_engine *e, enum lb_role r)
{
	for (int i = 0; i < 200; i++) {
		if (lb_engine_role(e) == r)
			return true;
		usleep(10000);
	}
	return false;
}

/* ---- tests ---- */

static void test_services(void **state)
{
	struct fx *f = *state;
	struct lb_conf c;

	one_service(&c, 80);
	assert_int_equal(lbd_loop_set_services(f->loop, &c), 0);
	/* The services are lent, not taken. */
	assert_non_null(c.services);
	assert_int_equal(c.nservices, 1);
	lb_conf_free(&c);

	one_service(&c, 0);		/* port 0: the engine refuses */
	assert_int_equal(lbd_loop_set_services(f->loop, &c), -EINVAL);
	assert_non_null(c.services);
	lb_conf_free(&c);
}

static void test_role(void **state)
{
	struct fx *f = *state;
	enum lb_role was = 0;

	assert_int_equal(lb_engine_role(f->e), LB_ROLE_MASTER);
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), 0);
	assert_int_equal(was, LB_ROLE_MASTER);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), 0);
	assert_int_equal(was, LB_ROLE_BACKUP);
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_FAULT, &was), 0);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_FAULT);
}

static void test_role_reaches_sync_first(void **state)
{
	struct fx *f = *state;
	enum lb_role was;

	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), 0);
	assert_int_equal(f->sync.role, LB_ROLE_BACKUP);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
}

/* The loop is stuck before it takes the command: withdrawn, never applied. */
static void test_withdrawn(void **state)
{
	struct fx *f = *state;
	enum lb_role was = 0;
	struct lb_conf c;

	stall(&f->sync, &f->sync.stall_run, true);
	assert_int_equal(write(f->sync.pipe[1], "x", 1), 1);
	wait_for(&f->sync, &f->sync.in_run);
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_FAULT, &was), -ETIMEDOUT);
	one_service(&c, 80);
	assert_int_equal(lbd_loop_set_services(f->loop, &c), -ETIMEDOUT);
	assert_non_null(c.services);		/* given back */
	lb_conf_free(&c);
	stall(&f->sync, &f->sync.stall_run, false);
	/* The loop runs again, and the withdrawn role change stays undone. */
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_MASTER, &was), 0);
	assert_int_equal(was, LB_ROLE_MASTER);
	assert_int_equal(f->sync.role, LB_ROLE_MASTER);
}

/* The loop is stuck running the command: it finishes after the caller left. */
static void test_outlives_caller(void **state)
{
	struct fx *f = *state;
	enum lb_role was = 0;

	stall(&f->sync, &f->sync.stall_role, true);
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), -EINPROGRESS);
	wait_for(&f->sync, &f->sync.in_role);	/* at once: it is stuck there */
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_MASTER);
	stall(&f->sync, &f->sync.stall_role, false);
	assert_true(role_becomes(f->e, LB_ROLE_BACKUP));
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_MASTER, &was), 0);
	assert_int_equal(was, LB_ROLE_BACKUP);
}

/* Waits up to 2 s for *counter to reach want. */
static bool count_becomes(atomic_uint_fast64_t *counter, uint64_t want)
{
	for (int i = 0; i < 200; i++) {
		if (atomic_load(counter) == want)
			return true;
		usleep(10000);
	}
	return false;
}

static void be_backup(struct fx *f)
{
	enum lb_role was;

	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), 0);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
}

/* A VIP arriving on a backup whose peer is gone: master at once, counted
 * as a vip_arrival takeover, the sync node told first. */
static void test_vip_arrival_takes_over(void **state)
{
	struct fx *f = *state;
	struct lbd_takeover *t = lbd_loop_takeover(f->loop);

	be_backup(f);
	atomic_store(&f->sync.takeover_ok, true);
	vip_event(&f->vip, LBD_VIP_LEFT);	/* nothing to take over */
	usleep(50000);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	vip_event(&f->vip, LBD_VIP_ARRIVED);
	assert_true(role_becomes(f->e, LB_ROLE_MASTER));
	assert_int_equal(f->sync.role, LB_ROLE_MASTER);
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_VIP_ARRIVAL]), 1);
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_NOTIFY]), 0);
	assert_int_equal(atomic_load(&t->deferred), 0);
	assert_true(atomic_load(&t->armed));
	assert_true(atomic_load(&t->seen_armed));
	lbd_takeover_seen(t);
	assert_false(atomic_load(&t->seen_armed));
	assert_true(atomic_load(&t->seen_ns) >= atomic_load(&t->vip_ns));
	/* A SYN does not end the probe; an established segment does. */
	{
		uint8_t syn[40] = { 0x45, [9] = IPPROTO_TCP, [33] = 0x02 };
		uint8_t ack[40] = { 0x45, [9] = IPPROTO_TCP, [33] = 0x10 };

		lbd_takeover_forwarded(t, syn, sizeof(syn));
		assert_true(atomic_load(&t->armed));
		lbd_takeover_forwarded(t, ack, sizeof(ack));
		assert_false(atomic_load(&t->armed));
		assert_true(atomic_load(&t->forward_ns) >= atomic_load(&t->master_ns));
	}
}

/*
 * A VIP arriving while the peer is a live master (a split brain, an
 * address added by hand): we stay backup and count it; when the peer then
 * goes silent before keepalived's notify, we take over (peer_silent).
 */
static void test_vip_with_live_master_waits(void **state)
{
	struct fx *f = *state;
	struct lbd_takeover *t = lbd_loop_takeover(f->loop);

	be_backup(f);
	vip_event(&f->vip, LBD_VIP_ARRIVED);
	assert_true(count_becomes(&t->deferred, 1));
	usleep(100000);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	assert_int_equal(f->sync.role, LB_ROLE_BACKUP);
	atomic_store(&f->sync.takeover_ok, true);
	assert_true(role_becomes(f->e, LB_ROLE_MASTER));
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_PEER_SILENT]), 1);
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_VIP_ARRIVAL]), 0);
}

/* The VIPs leaving, or keepalived's notify, end the wait: a peer that falls
 * silent afterwards is no reason to take over. */
static void test_vip_wait_ends(void **state)
{
	struct fx *f = *state;
	struct lbd_takeover *t = lbd_loop_takeover(f->loop);
	enum lb_role was;

	be_backup(f);
	vip_event(&f->vip, LBD_VIP_ARRIVED);
	assert_true(count_becomes(&t->deferred, 1));
	vip_event(&f->vip, LBD_VIP_LEFT);
	usleep(50000);
	atomic_store(&f->sync.takeover_ok, true);
	usleep(100000);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	atomic_store(&f->sync.takeover_ok, false);
	vip_event(&f->vip, LBD_VIP_ARRIVED);
	assert_true(count_becomes(&t->deferred, 2));
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_BACKUP, &was), 0);
	atomic_store(&f->sync.takeover_ok, true);
	usleep(100000);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	/* Only the notify makes it master now. */
	assert_int_equal(lbd_loop_set_role(f->loop, LB_ROLE_MASTER, &was), 0);
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_NOTIFY]), 1);
	assert_int_equal(atomic_load(&t->by_trigger[LBD_TRIGGER_PEER_SILENT]), 0);
}

/* vip_takeover = false: arrivals are counted, never acted on. */
static void test_vip_takeover_off(void **state)
{
	struct fx *f = *state;
	struct lbd_takeover *t = lbd_loop_takeover(f->loop);

	be_backup(f);
	atomic_store(&f->sync.takeover_ok, true);
	vip_event(&f->vip, LBD_VIP_ARRIVED);
	assert_true(count_becomes(&t->vip_arrivals, 1));
	usleep(100000);
	assert_int_equal(lb_engine_role(f->e), LB_ROLE_BACKUP);
	assert_int_equal(atomic_load(&t->deferred), 1);
}

/* The takeover kick's choices (kick.c, compiled in here): notices per end
 * by the outage (one more than the timeouts at 10, 30, 70, 150, 310 ... ms
 * it spans, 6 at most), and the directions that count as moving data. */
static void test_kick_choices(void **state)
{
	(void)state;
	assert_int_equal(notices_for(0), 1);
	assert_int_equal(notices_for(9), 1);
	assert_int_equal(notices_for(10), 2);
	assert_int_equal(notices_for(29), 2);
	assert_int_equal(notices_for(30), 3);
	assert_int_equal(notices_for(69), 3);
	assert_int_equal(notices_for(70), 4);
	assert_int_equal(notices_for(150), 5);
	assert_int_equal(notices_for(309), 5);
	assert_int_equal(notices_for(310), LBD_KICK_NOTICES);
	assert_int_equal(notices_for(60000), LBD_KICK_NOTICES);
	/* A download's acks are not data; an echo's two sides both are. */
	assert_int_equal(data_directions((uint32_t[2]){ 40000, 2000000 }), 1u << LB_DIR_REPLY);
	assert_int_equal(data_directions((uint32_t[2]){ 3000, 3500 }), 3);
	assert_int_equal(data_directions((uint32_t[2]){ 5000000, 80000 }), 1u << LB_DIR_ORIG);
	assert_int_equal(data_directions((uint32_t[2]){ 0, 0 }), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_services, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_role, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_role_reaches_sync_first, setup_sync, teardown),
		cmocka_unit_test_setup_teardown(test_withdrawn, setup_sync, teardown),
		cmocka_unit_test_setup_teardown(test_outlives_caller, setup_sync, teardown),
		cmocka_unit_test_setup_teardown(test_vip_arrival_takes_over, setup_vip, teardown),
		cmocka_unit_test_setup_teardown(test_vip_with_live_master_waits, setup_vip, teardown),
		cmocka_unit_test_setup_teardown(test_vip_wait_ends, setup_vip, teardown),
		cmocka_unit_test_setup_teardown(test_vip_takeover_off, setup_vip_off, teardown),
		cmocka_unit_test(test_kick_choices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
