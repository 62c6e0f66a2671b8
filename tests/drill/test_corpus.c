/*
 * The public capture corpus (tests/corpus/public, see its SOURCES) through
 * the drills, with --auto-services: real TCP from other stacks than ours.
 *
 *   - `lbdrill audit`: every drop the strict tracker makes is explained
 *     (exit 0: capture loss or a connection begun before the capture);
 *   - a defer-mode sweep loses nothing (exit 0), failing over before every
 *     5th packet (the short subset; `make drills` runs every packet, async
 *     mode and a lossy sync link too: tests/corpus/run.sh).
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
				      "--every", "5", "--defer", NULL });
		printf("# %s: audit exit %d, defer sweep exit %d\n", e->d_name, a, s);
		failed += a != 0 || s != 0;
		files++;
	}
	closedir(d);
	assert_true(files >= 3);
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
