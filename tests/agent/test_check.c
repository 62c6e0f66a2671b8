/*
 * Unit tests of the health checker (agent_check.h) with exec checks, which
 * need no network: rise/fall hysteresis, one report per change, the reasons
 * ("exit status 1", "timeout after 200 ms"), and a report the caller could
 * not take being offered again.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_check.h"

struct reports {
	pthread_mutex_t lock;
	int n, refuse;		/* reports seen; how many more to refuse */
	bool last_up;
	char why[128];
};

static int on_report(void *arg, size_t idx, bool up, const char *why)
{
	struct reports *r = arg;
	int rc = 0;

	assert_int_equal(idx, 0);
	pthread_mutex_lock(&r->lock);
	if (r->refuse > 0) {
		r->refuse--;
		rc = -EBUSY;
	} else {
		r->n++;
		r->last_up = up;
		snprintf(r->why, sizeof(r->why), "%s", why);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static struct agent_check_target exec_target(const char *command, uint32_t timeout_ms)
{
	struct agent_check_target t;

	memset(&t, 0, sizeof(t));
	assert_int_equal(lb_addr_parse(&t.vip, "198.18.0.100"), 0);
	assert_int_equal(lb_addr_parse(&t.addr, "198.18.1.11"), 0);
	t.vport = t.port = 80;
	agent_check_conf_defaults(&t.conf);
	t.conf.kind = AGENT_CHECK_EXEC;
	t.conf.interval_ms = 100;
	t.conf.timeout_ms = timeout_ms;
	t.conf.rise = 2;
	t.conf.fall = 3;
	snprintf(t.conf.command, sizeof(t.conf.command), "%s", command);
	return t;
}

/* Waits up to 5 s for the target's check count to reach n. */
static void wait_checks(struct agent_checker *c, uint64_t n, struct agent_check_status *st)
{
	for (int i = 0; i < 500; i++) {
		assert_int_equal(agent_checker_status(c, 0, st), 0);
		if (st->checks >= n)
			return;
		usleep(10000);
	}
	fail_msg("only %llu checks after 5 s", (unsigned long long)st->checks);
}

static void test_fall_then_rise(void **state)
{
	struct reports r = { .lock = PTHREAD_MUTEX_INITIALIZER };
	/* Fails while the flag file exists. */
	char flag[] = "/tmp/test_check.XXXXXX", cmd[128];
	struct agent_check_target t;
	struct agent_check_status st;
	struct agent_checker *c;
	int fd = mkstemp(flag);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "test ! -e %s", flag);
	t = exec_target(cmd, 1000);
	c = agent_checker_new(&t, 1, on_report, &r);
	assert_non_null(c);
	assert_int_equal(agent_checker_start(c), 0);
	wait_checks(c, 2, &st);
	assert_true(st.up);		/* two failures: not yet */
	assert_int_equal(r.n, 0);
	wait_checks(c, 4, &st);
	assert_false(st.up);		/* the third went down */
	pthread_mutex_lock(&r.lock);
	assert_int_equal(r.n, 1);
	assert_false(r.last_up);
	assert_string_equal(r.why, "exit status 1");
	pthread_mutex_unlock(&r.lock);
	assert_string_equal(st.last_error, "exit status 1");

	unlink(flag);
	assert_int_equal(agent_checker_status(c, 0, &st), 0);
	wait_checks(c, st.checks + 1, &st);
	wait_checks(c, st.checks + 2, &st);
	assert_true(st.up);
	pthread_mutex_lock(&r.lock);
	assert_int_equal(r.n, 2);
	assert_true(r.last_up);
	pthread_mutex_unlock(&r.lock);
	agent_checker_free(c);
}

static void test_timeout_is_a_failure(void **state)
{
	struct reports r = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct agent_check_target t = exec_target("sleep 5", 50);
	struct agent_check_status st;
	struct agent_checker *c;
	struct timespec t0, t1;

	(void)state;
	t.conf.fall = 1;
	c = agent_checker_new(&t, 1, on_report, &r);
	assert_non_null(c);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(agent_checker_start(c), 0);
	wait_checks(c, 1, &st);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_false(st.up);
	assert_string_equal(st.last_error, "timeout after 50 ms");
	/* Killed, not waited for: well under the 5 s it would sleep. */
	assert_true(t1.tv_sec - t0.tv_sec < 4);
	agent_checker_free(c);
}

static void test_refused_report_offered_again(void **state)
{
	struct reports r = { .lock = PTHREAD_MUTEX_INITIALIZER, .refuse = 2 };
	struct agent_check_target t = exec_target("false", 1000);
	struct agent_check_status st;
	struct agent_checker *c;

	(void)state;
	t.conf.fall = 1;
	c = agent_checker_new(&t, 1, on_report, &r);
	assert_non_null(c);
	assert_int_equal(agent_checker_start(c), 0);
	wait_checks(c, 4, &st);
	pthread_mutex_lock(&r.lock);
	assert_int_equal(r.refuse, 0);
	assert_int_equal(r.n, 1);	/* taken on the third offer, and only once */
	assert_false(r.last_up);
	pthread_mutex_unlock(&r.lock);
	agent_checker_free(c);
}

static void test_start_down_needs_rise(void **state)
{
	struct reports r = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct agent_check_target t = exec_target("true", 1000);
	struct agent_check_status st;
	struct agent_checker *c;

	(void)state;
	t.start_down = true;
	c = agent_checker_new(&t, 1, on_report, &r);
	assert_non_null(c);
	assert_int_equal(agent_checker_status(c, 0, &st), 0);
	assert_false(st.up);
	assert_int_equal(agent_checker_start(c), 0);
	wait_checks(c, 1, &st);
	assert_int_equal(r.n, 0);
	wait_checks(c, 2, &st);
	assert_true(st.up);
	pthread_mutex_lock(&r.lock);
	assert_int_equal(r.n, 1);
	assert_true(r.last_up);
	pthread_mutex_unlock(&r.lock);
	agent_checker_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fall_then_rise),
		cmocka_unit_test(test_timeout_is_a_failure),
		cmocka_unit_test(test_refused_report_offered_again),
		cmocka_unit_test(test_start_down_needs_rise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
