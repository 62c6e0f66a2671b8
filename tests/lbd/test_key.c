/*
 * Unit tests of lbd_key_load(): key sizes at and past both limits, files
 * that group or others may access, missing files and directories.
 *
 * lbd/ is a program, not a library the tests link against, so this test
 * compiles the one file it tests into itself by including lbd/key.c (as
 * wireguard-tools' fuzzers include the parser they drive).
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

#include "../../lbd/lbd_key.h"
#include "../../lbd/key.c"

static char keydir[64];
static const char *const names[] = { "good", "min", "max", "short", "long", "world", "group" };

static int make_dir(void **state)
{
	(void)state;
	snprintf(keydir, sizeof(keydir), "/tmp/test_key.XXXXXX");
	return mkdtemp(keydir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", keydir, names[i]);
		unlink(path);
	}
	return rmdir(keydir);
}

/* Writes len bytes to keydir/name with the given mode; returns the path. */
static const char *key_file(const char *name, const uint8_t *bytes, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", keydir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void fill(uint8_t *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++)
		bytes[i] = (uint8_t)(i * 7 + 1);
}

static void test_sizes(void **state)
{
	uint8_t bytes[SYNC_KEY_MAX + 1], key[SYNC_KEY_MAX];
	char err[256];

	(void)state;
	fill(bytes, sizeof(bytes));
	assert_int_equal(lbd_key_load(key_file("good", bytes, 32, 0600), key, err, sizeof(err)),
			 32);
	assert_memory_equal(key, bytes, 32);
	assert_int_equal(lbd_key_load(key_file("min", bytes, SYNC_KEY_MIN, 0400), key, err,
				      sizeof(err)), SYNC_KEY_MIN);
	assert_int_equal(lbd_key_load(key_file("max", bytes, SYNC_KEY_MAX, 0600), key, err,
				      sizeof(err)), SYNC_KEY_MAX);
	assert_memory_equal(key, bytes, SYNC_KEY_MAX);
	err[0] = 0;
	assert_int_equal(lbd_key_load(key_file("short", bytes, SYNC_KEY_MIN - 1, 0600), key, err,
				      sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(lbd_key_load(key_file("long", bytes, SYNC_KEY_MAX + 1, 0600), key, err,
				      sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

static void test_modes(void **state)
{
	uint8_t bytes[32], key[SYNC_KEY_MAX];
	char err[256];

	(void)state;
	fill(bytes, sizeof(bytes));
	assert_int_equal(lbd_key_load(key_file("world", bytes, 32, 0644), key, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "mode"));
	assert_int_equal(lbd_key_load(key_file("group", bytes, 32, 0640), key, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "mode"));
}

static void test_not_a_key_file(void **state)
{
	uint8_t key[SYNC_KEY_MAX];
	char err[256];

	(void)state;
	assert_int_equal(lbd_key_load("/nonexistent/sync.key", key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/sync.key"));
	assert_int_equal(lbd_key_load(keydir, key, err, sizeof(err)), -1);	/* a directory */
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(lbd_key_load("/nonexistent", key, NULL, 0), -1);	/* no err buffer */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_not_a_key_file),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
