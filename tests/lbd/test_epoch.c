/*
 * Unit tests of lbd_epoch_next(): the counter grows by one per start from a
 * missing file, survives as a 0600 file with no temporary left behind, and
 * a file that is not a counter, or a used-up counter, is refused rather than
 * guessed at. It reads no clock, so a clock stepped back cannot lower it.
 *
 * Like test_key.c, it compiles the file it tests into itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lbd/lbd_epoch.h"
#include "../../lbd/epoch.c"

static char dir[64], path[128], tmp[140];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_epoch.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/epoch", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	return 0;
}

static int remove_dir(void **state)
{
	(void)state;
	unlink(path);
	unlink(tmp);
	return rmdir(dir);
}

static void put(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_grows_from_missing(void **state)
{
	char err[256];
	uint64_t e = 0;
	struct stat st;

	(void)state;
	unlink(path);
	for (uint64_t want = 1; want <= 5; want++) {
		assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), 0);
		assert_int_equal(e, want);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_continues_a_file(void **state)
{
	char err[256];
	uint64_t e = 0;

	(void)state;
	put("41\n");
	assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), 0);
	assert_int_equal(e, 42);
	put("7");			/* no newline is fine */
	assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), 0);
	assert_int_equal(e, 8);
}

static void test_refuses_garbage(void **state)
{
	static const char *const bad[] = { "", "\n", "x\n", "-1\n", "1 2\n", "12a\n",
					   "99999999999999999999999\n", "2147483648\n" };
	char err[256];
	uint64_t e = 77;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i]);
		err[0] = '\0';
		assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), -1);
		assert_non_null(strstr(err, path));
		assert_int_equal(e, 77);
	}
	put("2147483647\n");		/* SYNC_EPOCH_MAX: used up */
	assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "used up"));
	put("2147483646\n");
	assert_int_equal(lbd_epoch_next(path, &e, err, sizeof(err)), 0);
	assert_int_equal(e, SYNC_EPOCH_MAX);
}

static void test_unwritable_dir(void **state)
{
	char err[256];
	uint64_t e = 0;

	(void)state;
	assert_int_equal(lbd_epoch_next("/nonexistent-dir/epoch", &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent-dir/epoch"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_from_missing),
		cmocka_unit_test(test_continues_a_file),
		cmocka_unit_test(test_refuses_garbage),
		cmocka_unit_test(test_unwritable_dir),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
