/*
 * Unit tests of lbd's control replies (lbd_reply.h) over a socketpair, read
 * the way lbctl reads them: rows then one status line that always carries
 * "status"; the first error wins; and a reader that stops reading loses the
 * rest, status line included, so it can tell the answer was cut short
 * rather than take a partial table for a whole one.
 *
 * lbd/ is a program, not a library, so reply.c is compiled in (as
 * test_loop.c does with loop.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lbd/reply.c"

/*
 * Reads everything the peer wrote, as lines, after the writer closed. A line
 * that is not JSON (only a write cut mid-line can make one) is kept as null
 * and counted in *bad.
 */
static size_t read_lines(int fd, json_t *lines, size_t *bad)
{
	FILE *in = fdopen(fd, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;

	assert_non_null(in);
	while (getline(&line, &cap, in) > 0) {
		json_t *obj = json_loads(line, 0, NULL);

		if (!obj)
			(*bad)++;
		json_array_append_new(lines, obj ? obj : json_null());
		n++;
	}
	free(line);
	fclose(in);
	return n;
}

static void test_rows_then_status(void **state)
{
	int sv[2];
	size_t bad = 0;
	struct lbd_reply *r;
	json_t *lines = json_array(), *st;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r = lbd_reply_new(sv[0]);
	lbd_reply_row(r, json_pack("{s:s}", "backend", "198.18.1.11:80"));
	lbd_reply_row(r, json_pack("{s:s}", "backend", "198.18.1.12:80"));
	lbd_reply_flush(r);
	lbd_reply_u64(r, "count", 2);
	lbd_reply_message(r, "%d rows", 2);
	lbd_reply_finish(r);
	close(sv[0]);
	assert_int_equal(read_lines(sv[1], lines, &bad), 3);
	assert_int_equal(bad, 0);
	assert_null(json_object_get(json_array_get(lines, 0), "status"));
	st = json_array_get(lines, 2);
	assert_string_equal(json_string_value(json_object_get(st, "status")), "ok");
	assert_int_equal(json_integer_value(json_object_get(st, "count")), 2);
	assert_string_equal(json_string_value(json_object_get(st, "message")), "2 rows");
	json_decref(lines);
}

static void test_first_error_wins(void **state)
{
	int sv[2];
	size_t bad = 0;
	struct lbd_reply *r;
	json_t *lines = json_array(), *st;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r = lbd_reply_new(sv[0]);
	lbd_reply_warning(r, "settings need a restart");
	assert_int_equal(lbd_reply_error(r, "weight '%s' is not a number", "x"), -1);
	lbd_reply_error(r, "a later error");
	assert_true(lbd_reply_failed(r));
	lbd_reply_finish(r);
	close(sv[0]);
	assert_int_equal(read_lines(sv[1], lines, &bad), 1);
	assert_int_equal(bad, 0);
	st = json_array_get(lines, 0);
	assert_string_equal(json_string_value(json_object_get(st, "status")), "error");
	assert_string_equal(json_string_value(json_object_get(st, "error")),
			    "weight 'x' is not a number");
	assert_string_equal(json_string_value(json_object_get(st, "warning")),
			    "settings need a restart");
	json_decref(lines);
}

static void test_stalled_reader_sees_no_status(void **state)
{
	struct timeval tv = { .tv_usec = 200000 };
	int sv[2], rows = 0;
	struct lbd_reply *r;
	json_t *lines = json_array();
	size_t n, bad = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* lbd sets a send timeout on every client; here a short one. */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	r = lbd_reply_new(sv[0]);
	/* Far more than the socket holds while nobody reads. */
	while (!lbd_reply_broken(r) && rows < 200000) {
		lbd_reply_row(r, json_pack("{s:i, s:s}", "n", rows++, "pad",
					   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
		if (rows % 256 == 0)
			lbd_reply_flush(r);
	}
	assert_true(lbd_reply_broken(r));
	assert_true(rows < 200000);	/* it gave up instead of writing on */
	lbd_reply_finish(r);
	close(sv[0]);
	n = read_lines(sv[1], lines, &bad);
	assert_true(n > 0 && n < (size_t)rows);
	assert_true(bad <= 1);		/* at most the cut line */
	/* The last line is a row (or a cut one): no status, so "cut short". */
	assert_null(json_object_get(json_array_get(lines, n - 1), "status"));
	json_decref(lines);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_then_status),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_stalled_reader_sees_no_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
