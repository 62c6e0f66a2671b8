/*
 * Tests for lbdrill flood (drill/flood.c, included for its static
 * functions): every SYN it builds is one the engine's own parser and
 * checksum check accept (a wrong checksum would be dropped before the
 * tracker and the flood would prove nothing), from the range asked for, to
 * the target; and its command line refuses what it cannot use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../drill/flood.c"
#include "lb_csum.h"
#include "lb_pkt.h"

static int parse(const char *target, const char *sources, const char *rate, const char *secs,
		 struct flood_conf *c)
{
	char *argv[] = { "flood", "--target", (char *)target, "--sources", (char *)sources,
			 "--rate", (char *)rate, "--duration", (char *)secs, NULL };

	return flood_parse_args(9, argv, c);
}

static void test_syns_pass_the_engines_checks(void **state)
{
	struct flood_conf c;
	uint8_t p[FLOOD_PKT_LEN];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	unsigned seen_first = 0, seen_last = 0;

	(void)state;
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.128-198.18.0.131", "50000", "10", &c),
			 0);
	assert_int_equal(c.src_count, 4);
	assert_int_equal(c.rate, 50000);
	assert_int_equal(c.duration_ms, 10000);
	for (int i = 0; i < 10000; i++) {
		struct lb_pkt_info pi;
		uint8_t last;

		flood_build(p, &c, &rng);
		assert_int_equal(lb_pkt_parse(p, sizeof(p), &pi), LB_PKT_OK);
		assert_int_equal(lb_csum_fold(lb_csum_add(0, p, 20)), 0);	/* IP header */
		assert_true(lb_pkt_tcp_csum_ok(p, &pi));
		assert_int_equal(pi.flags, LB_TCP_SYN);
		assert_int_equal(pi.payload_len, 0);
		assert_int_equal(pi.tuple.dport, 80);
		assert_true(pi.tuple.sport >= 1024);
		assert_memory_equal(pi.tuple.dst.bytes, "\xc6\x12\x00\x64", 4);
		assert_memory_equal(pi.tuple.src.bytes, "\xc6\x12\x00", 3);
		last = pi.tuple.src.bytes[3];
		assert_true(last >= 128 && last <= 131);
		seen_first |= last == 128;
		seen_last |= last == 131;
	}
	assert_true(seen_first && seen_last);
}

static void test_bad_command_lines(void **state)
{
	struct flood_conf c;

	(void)state;
	assert_int_equal(parse("198.18.0.100", "198.18.0.1-198.18.0.2", "10", "1", &c), -1);
	assert_int_equal(parse("2001:db8::100:80", "198.18.0.1-198.18.0.2", "10", "1", &c), -1);
	assert_int_equal(parse("198.18.0.100:0", "198.18.0.1-198.18.0.2", "10", "1", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.2-198.18.0.1", "10", "1", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.1", "10", "1", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.1-198.18.0.2", "0", "1", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.1-198.18.0.2", "10", "0", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.1-198.18.0.2", "10", "3601", &c), -1);
	assert_int_equal(parse("198.18.0.100:80", "198.18.0.1-198.18.0.1", "10", "1", &c), 0);
	assert_int_equal(c.src_count, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syns_pass_the_engines_checks),
		cmocka_unit_test(test_bad_command_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
