/*
 * Unit tests of the drills' timelines (drill/timeline.c), the watches'
 * arguments and marks (drill/live.c) and the hello's download size
 * (drill/proto.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../drill/drill_live.h"
#include "../../drill/drill_proto.h"
#include "../../drill/drill_replay_tl.h"
#include "../../drill/drill_timeline.h"

#define MS 1000000ull

/* Receipts every 10 ms at 20 ms resolution keep every other one. */
static void test_resolution_thins(void **state)
{
	struct drill_tl tl = { 0 };

	(void)state;
	for (uint64_t t = 0; t <= 100; t += 10)
		assert_int_equal(drill_tl_note(&tl, t * MS, t, 20 * MS), 0);
	assert_int_equal(tl.n, 6);
	for (uint32_t i = 0; i < tl.n; i++)
		assert_int_equal(tl.p[i].t_ns, i * 20 * MS);
	drill_tl_free(&tl);
}

/* A silence keeps both its ends, however coarse the resolution: the last
 * receipt before it (even one thinned out) and the first after it. */
static void test_silence_keeps_both_ends(void **state)
{
	struct drill_tl tl = { 0 };

	(void)state;
	drill_tl_note(&tl, 0, 1, 50 * MS);
	drill_tl_note(&tl, 10 * MS, 2, 50 * MS);	/* thinned... */
	drill_tl_note(&tl, 700 * MS, 3, 50 * MS);	/* ...until the silence ends */
	assert_int_equal(tl.n, 3);
	assert_int_equal(tl.p[1].t_ns, 10 * MS);
	assert_int_equal(tl.p[1].v, 2);
	assert_int_equal(tl.p[2].t_ns, 700 * MS);
	assert_int_equal(tl.p[2].v, 3);
	drill_tl_free(&tl);
}

/* At the end: the last note is kept, and a stream still open is drawn flat
 * up to the end (a stream that went silent must look silent). */
static void test_finish(void **state)
{
	struct drill_tl tl = { 0 };

	(void)state;
	drill_tl_note(&tl, 0, 1, 50 * MS);
	drill_tl_note(&tl, 20 * MS, 5, 50 * MS);
	drill_tl_finish(&tl, 900 * MS, 1);
	assert_int_equal(tl.n, 3);
	assert_int_equal(tl.p[1].t_ns, 20 * MS);
	assert_int_equal(tl.p[2].t_ns, 900 * MS);
	assert_int_equal(tl.p[2].v, 5);
	drill_tl_free(&tl);

	drill_tl_note(&tl, 0, 1, 50 * MS);
	drill_tl_finish(&tl, 900 * MS, 0);		/* closed: no flat tail */
	assert_int_equal(tl.n, 1);
	drill_tl_free(&tl);
}

static void test_json(void **state)
{
	struct drill_tl tl = { 0 };
	char buf[256] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	drill_tl_note(&tl, 1000 * MS, 7, 20 * MS);
	drill_tl_note(&tl, 1500 * MS, 9, 20 * MS);
	drill_tl_json(&tl, f, 500 * MS);
	fputc(' ', f);
	drill_json_str(f, "a\"b\\c\n");
	fclose(f);
	assert_string_equal(buf, "\"t\":[0.5000,1.0000],\"v\":[7,9] \"a\\\"b\\\\c\\u000a\"");
	drill_tl_free(&tl);
}

static void test_watch_parse(void **state)
{
	struct drill_watch w;

	(void)state;
	assert_int_equal(drill_watch_parse(&w, "vip:ip monitor address"), 0);
	assert_string_equal(w.name, "vip");
	assert_string_equal(w.cmd, "ip monitor address");
	assert_int_equal(drill_watch_parse(&w, "role_2:x:y"), 0);
	assert_string_equal(w.cmd, "x:y");
	assert_true(drill_watch_parse(&w, ":cmd") < 0);
	assert_true(drill_watch_parse(&w, "vip:") < 0);
	assert_true(drill_watch_parse(&w, "nocolon") < 0);
	assert_true(drill_watch_parse(&w, "Bad:cmd") < 0);
	assert_true(drill_watch_parse(&w, "a_name_far_too_long:cmd") < 0);
}

/* A watch's lines become marks, timed at arrival; the first of a name in a
 * window is found. */
static void test_watch_marks(void **state)
{
	struct drill_watch w;
	struct drill_marks marks = { 0 };
	const struct drill_mark *m;
	int ep;

	(void)state;
	assert_int_equal(drill_watch_parse(&w, "vip:echo one; echo two"), 0);
	ep = epoll_create1(0);
	assert_true(ep >= 0);
	assert_int_equal(drill_watch_start(&w, ep, 0), 0);
	for (int i = 0; i < 500 && w.ev.fd >= 0; i++) {
		struct epoll_event e;

		if (epoll_wait(ep, &e, 1, 10) == 1)
			drill_watch_readable(&w, &marks, 1000 + (uint64_t)i);
	}
	drill_watch_stop(&w);
	close(ep);
	assert_int_equal(marks.n, 2);
	assert_string_equal(marks.m[0].line, "one");
	assert_string_equal(marks.m[1].line, "two");
	m = drill_marks_first(&marks, "vip", 0, UINT64_MAX);
	assert_ptr_equal(m, &marks.m[0]);
	assert_null(drill_marks_first(&marks, "role", 0, UINT64_MAX));
	assert_null(drill_marks_first(&marks, "vip", marks.m[1].t_ns + 1, UINT64_MAX));
	drill_marks_free(&marks);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* A line stamped "@SECONDS" is timed by its stamp, not by its arrival; a
 * line that only looks like one is timed by its arrival. */
static void test_watch_stamp(void **state)
{
	struct drill_watch w;
	struct drill_marks marks = { 0 };
	uint64_t now;
	int ep;

	(void)state;
	assert_int_equal(drill_watch_parse(&w, "vip:echo \"@$(( $(date +%s) - 5 )).5 old\"; "
						"echo '@12x no stamp'"), 0);
	ep = epoll_create1(0);
	assert_int_equal(drill_watch_start(&w, ep, 0), 0);
	for (int i = 0; i < 500 && w.ev.fd >= 0; i++) {
		struct epoll_event e;

		if (epoll_wait(ep, &e, 1, 10) == 1)
			drill_watch_readable(&w, &marks, mono_ns());
	}
	drill_watch_stop(&w);
	close(ep);
	now = mono_ns();
	assert_int_equal(marks.n, 2);
	/* 5 s back from a whole second, plus .5: 4.5 to 5.5 s ago */
	assert_true(marks.m[0].t_ns < now - 4400 * MS);
	assert_true(marks.m[0].t_ns > now - 6000 * MS);
	assert_true(marks.m[1].t_ns > now - 2000 * MS);
	drill_marks_free(&marks);
}

static void test_hello_download(void **state)
{
	struct drill_hello h = { .rate = 1048576, .limit_kib = 65536, .seed = 42 }, back;
	uint8_t buf[DRILL_HELLO_LEN];

	(void)state;
	drill_hello_encode(buf, &h);
	assert_int_equal(buf[12], 0);
	assert_int_equal(buf[13], 1);		/* 65536 = 0x00010000, big-endian */
	assert_int_equal(drill_hello_decode(&back, buf, sizeof(buf)), DRILL_HELLO_OK);
	assert_int_equal(back.limit_kib, 65536);
	assert_int_equal(back.rate, 1048576);
	buf[5] = 1;				/* flags stay reserved */
	assert_int_equal(drill_hello_decode(&back, buf, sizeof(buf)), DRILL_HELLO_BAD_RESERVED);
}

/*
 * A replayed failover's timeline: connection 0 lives across the failover
 * (before packet 3, at 300 ms); the pair drops its first packet after it,
 * so its silence runs from its last forwarded packet before (20 ms) to its
 * first forwarded after (510 ms). Connection 1 begins after: no silence.
 */
static void test_replay_timeline(void **state)
{
	static const uint64_t ts_ms[] = { 0, 10, 20, 300, 500, 510 };
	static const uint32_t conn[] = { 0, 0, 0, 1, 0, 0 };
	static const uint8_t fwd[] = { 1, 1, 1, 1, 0, 1 };
	static const char *const status[] = { "survived", "new" };
	struct drill_trace_pkt pkts[6];
	struct drill_trace_conn conns[2] = {
		{ .first = 0, .last = 5, .orig = { .sport = 40000 } },
		{ .first = 3, .last = 3, .orig = { .sport = 40001 } },
	};
	struct drill_trace t = { .pkts = pkts, .npkts = 6, .conns = conns, .nconns = 2 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	memset(pkts, 0, sizeof(pkts));
	for (int i = 0; i < 6; i++) {
		pkts[i].ts_us = ts_ms[i] * 1000;
		pkts[i].conn = conn[i];
	}
	assert_int_equal(drill_replay_tl_json(f, &t, fwd, status, 3, 300000), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\"longest_stall_ms\":490.000"));
	assert_non_null(strstr(buf, "\"port\":40000,\"end\":\"survived\",\"stall_ms\":490.000"));
	assert_non_null(strstr(buf, "\"port\":40001,\"end\":\"new\",\"stall_ms\":0.000"));
	/* Connection 0's progress: 3 packets by 20 ms, the 4th at 510 ms. */
	assert_non_null(strstr(buf, "\"t\":[0.0000,0.0100,0.0200,0.5100],\"v\":[1,2,3,4]"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolution_thins),
		cmocka_unit_test(test_silence_keeps_both_ends),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_watch_parse),
		cmocka_unit_test(test_watch_marks),
		cmocka_unit_test(test_watch_stamp),
		cmocka_unit_test(test_hello_download),
		cmocka_unit_test(test_replay_timeline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
