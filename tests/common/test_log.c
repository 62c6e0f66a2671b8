/*
 * Unit tests of log.h's helpers: the level and facility names the
 * configuration uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include <cmocka.h>

#include "log.h"

static void test_names(void **state)
{
	enum log_level l = LOG_LVL_INFO;
	int f = 0;

	(void)state;
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_int_equal(log_facility_parse("local3", &f), 0);
	assert_int_equal(f, LOG_LOCAL3);
	assert_int_equal(log_facility_parse("daemon", &f), 0);
	assert_int_equal(f, LOG_DAEMON);
	assert_int_equal(log_facility_parse("kern", &f), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
