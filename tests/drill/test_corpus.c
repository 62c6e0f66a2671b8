/*
 * The public capture corpus (tests/corpus/public, see its SOURCES) through
 * the drills, with --auto-services: real TCP from other stacks than ours.
 *
 *   - `lbdrill audit`: every drop the strict tracker makes is explained
 *     (exit 0: capture loss or a connection begun before the capture);
 *   - a defer-mode sweep (the linear one) loses nothing (exit 0), failing
 *     over before every packet (`make drills` runs async mode and a lossy
 *     sync link too: tests/corpus/run.sh);
 *   - the linear sweep finds exactly what the quadratic one (--sweep-full)
 *     finds: the same JSON, byte for byte, at every 4th failover point, in
 *     async mode, defer mode and defer mode over a lossy, slower sync link.
 *
 * Run from the repository's root (tests/run does); LB_CORPUS_DIR names
 * another directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../drill/drill_audit.h"
#include "../../drill/drill_replay.h"

static const char *corpus_dir(void)
{
	const char *d = getenv("LB_CORPUS_DIR");

	return d && *d ? d : "tests/corpus/public";
}

/* fn(argv) with stdout and stderr sent to /dev/null; its exit status. */
static int quiet(int (*fn)(int, char **), char **argv)
{
	int argc = 0, rc, out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);

	while (argv[argc])
		argc++;
	assert_true(out >= 0 && err >= 0 && null >= 0);
	fflush(stdout);
	fflush(stderr);
	dup2(null, 1);
	dup2(null, 2);
	rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
	return rc;
}

static int is_capture(const char *name)
{
	size_t n = strlen(name);

	return (n > 5 && strcmp(name + n - 5, ".pcap") == 0) ||
	       (n > 7 && strcmp(name + n - 7, ".pcapng") == 0);
}

static void test_corpus(void **state)
{
	DIR *d = opendir(corpus_dir());
	struct dirent *e;
	int files = 0, failed = 0;

	(void)state;
	if (!d)
		print_error("cannot open the corpus %s (run from the repository's root)\n",
			    corpus_dir());
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[512];
		int a, s;

		if (!is_capture(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir(), e->d_name);
		a = quiet(drill_audit_main,
			  (char *[]){ "audit", path, "--auto-services", NULL });
		s = quiet(drill_replay_main,
			  (char *[]){ "replay", "--pcap", path, "--auto-services", "--sweep",
				      "--defer", NULL });
		printf("# %s: audit exit %d, defer sweep exit %d\n", e->d_name, a, s);
		failed += a != 0 || s != 0;
		files++;
	}
	closedir(d);
	assert_true(files >= 3);
	assert_int_equal(failed, 0);
}

/* The whole of a file, NUL-terminated (the caller frees it). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* One sweep of path, linear or full, with extra options, into json. */
static int sweep_json(const char *path, const char *kind, const char *const *extra,
		      const char *json)
{
	char *argv[16] = { "replay", "--pcap", (char *)path, "--auto-services", (char *)kind,
			   "--every", "4", "--json", (char *)json };
	int argc = 9;

	for (; *extra; extra++)
		argv[argc++] = (char *)*extra;
	argv[argc] = NULL;
	return quiet(drill_replay_main, argv);
}

static void test_linear_equals_full(void **state)
{
	static const char *const modes[][6] = {
		{ NULL },
		{ "--defer", NULL },
		{ "--defer", "--sync-loss", "10%", "--sync-delay", "2", NULL },
	};
	char lin[] = "/tmp/lb-corpus-lin-XXXXXX", full[] = "/tmp/lb-corpus-full-XXXXXX";
	int fl = mkstemp(lin), ff = mkstemp(full), files = 0;
	DIR *d = opendir(corpus_dir());
	struct dirent *e;

	(void)state;
	assert_true(fl >= 0 && ff >= 0);
	close(fl);
	close(ff);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[512];

		if (!is_capture(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir(), e->d_name);
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			int a = sweep_json(path, "--sweep", modes[m], lin);
			int b = sweep_json(path, "--sweep-full", modes[m], full);
			char *x = slurp(lin), *y = slurp(full);
			int same = strcmp(x, y) == 0;

			printf("# %s %s: linear exit %d, full exit %d, %s\n", e->d_name,
			       modes[m][0] ? modes[m][0] : "async", a, b,
			       same ? "the same findings" : "DIFFERENT");
			assert_int_equal(a, b);
			assert_true(same);
			assert_non_null(strstr(x, "\"failover_record\":"));
			free(x);
			free(y);
		}
		files++;
	}
	closedir(d);
	unlink(lin);
	unlink(full);
	assert_true(files >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_linear_equals_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
