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
};

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
	struct lbd_loop *loop;
};

static int setup(void **state, bool with_sync)
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
	assert_int_equal(lbd_loop_start(f->loop), 0);
	*state = f;
	return 0;
}

static int setup_plain(void **state) { return setup(state, false); }
static int setup_sync(void **state) { return setup(state, true); }

static int teardown(void **state)
{
	struct fx *f = *state;

	stall(&f->sync, &f->sync.stall_run, false);
	stall(&f->sync, &f->sync.stall_role, false);
	lbd_loop_free(f->loop);
	lb_engine_free(f->e);
	close(f->sync.pipe[0]);
	close(f->sync.pipe[1]);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_services, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_role, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_role_reaches_sync_first, setup_sync, teardown),
		cmocka_unit_test_setup_teardown(test_withdrawn, setup_sync, teardown),
		cmocka_unit_test_setup_teardown(test_outlives_caller, setup_sync, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
