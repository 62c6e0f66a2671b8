/*
 * Unit tests of lbd_check_host() on a /proc tree of the test's own: each
 * finding appears when its cause is there and not otherwise (forwarding
 * per family, strict rp_filter, the key file's existence, size and mode,
 * the sync interface, memory for max_conns).
 *
 * Like test_key.c, it compiles the file it tests into itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lbd/lbd_check.h"
#include "../../lbd/check.c"

static char root[64];
static char found[4096];	/* every finding, "E:msg\n" or "W:msg\n" */

static void collect(void *arg, enum lbd_check_level level, const char *msg)
{
	size_t n = strlen(found);

	(void)arg;
	snprintf(found + n, sizeof(found) - n, "%c:%s\n", level == LBD_CHECK_ERROR ? 'E' : 'W', msg);
}

static void put(const char *rel, const char *text)
{
	char path[256], cmd[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int chmod_key(mode_t mode)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/sync.key", root);
	return chmod(path, mode);
}

/* A healthy host: forwarding on, rp_filter off, plenty of memory. */
static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_check.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	put("proc/sys/net/ipv4/ip_forward", "1\n");
	put("proc/sys/net/ipv6/conf/all/forwarding", "1\n");
	put("proc/sys/net/ipv4/conf/all/rp_filter", "0\n");
	put("proc/sys/net/ipv4/conf/eth0/rp_filter", "0\n");
	put("proc/sys/net/ipv4/conf/eth1/rp_filter", "2\n");
	put("proc/meminfo", "MemTotal:       8000000 kB\nMemAvailable:   4000000 kB\n");
	put("sync.key", "0123456789abcdef0123456789abcdef");
	return chmod_key(0600);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

static struct lb_service_conf svcs[2];

/* A pair node with an IPv4 and an IPv6 service, syncing over lo. */
static struct lb_conf conf_of(void)
{
	struct lb_conf c;

	memset(&c, 0, sizeof(c));
	lb_engine_conf_defaults(&c.engine);
	c.engine.max_conns = 1000;
	c.engine.max_persist = 100;
	svcs[0].vip.family = AF_INET;
	svcs[1].vip.family = AF_INET6;
	c.services = svcs;
	c.nservices = 2;
	c.sync.enabled = 1;
	c.sync.local.family = AF_INET;
	snprintf(c.sync.interface, sizeof(c.sync.interface), "lo");
	snprintf(c.sync.key_file, sizeof(c.sync.key_file), "%s/sync.key", root);
	/* the user lbd runs as after set-up owns the key; here: whoever we are */
	snprintf(c.daemon.user, sizeof(c.daemon.user), "%s",
		 getpwuid(geteuid()) ? getpwuid(geteuid())->pw_name : "root");
	return c;
}

static int run(const struct lb_conf *c)
{
	found[0] = 0;
	return lbd_check_host(c, root, collect, NULL);
}

static void healthy_host_has_no_findings(void **state)
{
	struct lb_conf c = conf_of();

	(void)state;
	assert_int_equal(run(&c), 0);
	assert_string_equal(found, "");
}

static void forwarding_off_per_family(void **state)
{
	struct lb_conf c = conf_of();

	(void)state;
	put("proc/sys/net/ipv6/conf/all/forwarding", "0\n");
	assert_int_equal(run(&c), 0);
	assert_non_null(strstr(found, "W:net.ipv6.conf.all.forwarding is 0"));
	assert_null(strstr(found, "ip_forward"));
	/* Without an IPv6 service, IPv6 forwarding does not matter. */
	c.nservices = 1;
	run(&c);
	assert_string_equal(found, "");
	put("proc/sys/net/ipv6/conf/all/forwarding", "1\n");
	put("proc/sys/net/ipv4/ip_forward", "0\n");
	run(&c);
	assert_non_null(strstr(found, "W:net.ipv4.ip_forward is 0"));
	put("proc/sys/net/ipv4/ip_forward", "1\n");
}

static void strict_rp_filter_names_interfaces(void **state)
{
	struct lb_conf c = conf_of();

	(void)state;
	put("proc/sys/net/ipv4/conf/eth0/rp_filter", "1\n");
	run(&c);
	assert_non_null(strstr(found, "W:strict rp_filter on eth0:"));
	assert_null(strstr(found, "eth1"));	/* loose (2) is fine */
	put("proc/sys/net/ipv4/conf/eth0/rp_filter", "0\n");
	/* all = 1 makes every interface at 0 strict too; loose stays loose. */
	put("proc/sys/net/ipv4/conf/all/rp_filter", "1\n");
	run(&c);
	assert_non_null(strstr(found, "strict rp_filter on eth0:"));
	assert_null(strstr(found, "eth1"));
	put("proc/sys/net/ipv4/conf/all/rp_filter", "0\n");
}

static void key_file_problems_are_errors(void **state)
{
	struct lb_conf c = conf_of();

	(void)state;
	chmod_key(0640);
	assert_int_equal(run(&c), 1);
	assert_non_null(strstr(found, "E:sync key"));
	assert_non_null(strstr(found, "mode 0640 gives group or others access"));
	put("sync.key", "short");
	chmod_key(0600);
	assert_int_equal(run(&c), 1);
	assert_non_null(strstr(found, "5 bytes, want 16 to 256"));
	snprintf(c.sync.key_file, sizeof(c.sync.key_file), "%s/nokey", root);
	assert_int_equal(run(&c), 1);
	assert_non_null(strstr(found, "nokey: No such file or directory"));
	put("sync.key", "0123456789abcdef0123456789abcdef");
	chmod_key(0600);
	/* Without sync there is no key to check. */
	c.sync.enabled = 0;
	assert_int_equal(run(&c), 0);
}

static void missing_sync_interface_is_an_error(void **state)
{
	struct lb_conf c = conf_of();

	(void)state;
	snprintf(c.sync.interface, sizeof(c.sync.interface), "nosuchif0");
	assert_int_equal(run(&c), 1);
	assert_non_null(strstr(found, "E:sync interface nosuchif0 does not exist"));
}

static void max_conns_against_memory(void **state)
{
	struct lb_conf c = conf_of();
	char text[64];
	size_t need;

	(void)state;
	c.engine.max_conns = 1u << 20;
	need = lb_engine_mem_bytes(&c.engine);
	assert_true(need > (size_t)c.engine.max_conns * 64);	/* it does count the pool */
	put("proc/meminfo", "MemAvailable:   1000 kB\n");
	assert_int_equal(run(&c), 1);
	assert_non_null(strstr(found, "E:max_conns 1048576"));
	/* Between half and all of what is available: a warning. */
	snprintf(text, sizeof(text), "MemAvailable: %zu kB\n", need * 3 / 2 / 1024);
	put("proc/meminfo", text);
	assert_int_equal(run(&c), 0);
	assert_non_null(strstr(found, "W:max_conns 1048576"));
	put("proc/meminfo", "MemAvailable:   4000000 kB\n");
	assert_int_equal(run(&c), 0);
	assert_string_equal(found, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(healthy_host_has_no_findings),
		cmocka_unit_test(forwarding_off_per_family),
		cmocka_unit_test(strict_rp_filter_names_interfaces),
		cmocka_unit_test(key_file_problems_are_errors),
		cmocka_unit_test(missing_sync_interface_is_an_error),
		cmocka_unit_test(max_conns_against_memory),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
