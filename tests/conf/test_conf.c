/*
 * Unit tests of lb_conf: a full configuration with every key, the defaults,
 * and every kind of error, which must be reported as "FILE:LINE: message"
 * with the line of the offending setting. Configurations are written to
 * temporary files (mkstemp) and removed after each load.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lb_conf.h"

struct loaded {
	char path[64];
	char err[512];
	int rc;
	struct lb_conf conf;
};

/* Writes text to a new temporary file and loads it; the file is removed. */
static void load_text(struct loaded *l, const char *text)
{
	int fd;
	size_t len = strlen(text);

	memset(l, 0, sizeof(*l));
	snprintf(l->path, sizeof(l->path), "/tmp/test_conf.XXXXXX");
	fd = mkstemp(l->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	l->rc = lb_conf_load(l->path, &l->conf, l->err, sizeof(l->err));
	unlink(l->path);
}

/* Loads text, which must fail with exactly "PATH:line: message". */
static void expect_error(const char *text, int line, const char *message)
{
	struct loaded l;
	char want[600];

	load_text(&l, text);
	assert_int_equal(l.rc, -1);
	/* Line 0: a whole-file problem, reported as "PATH: message". */
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", l.path, line, message);
	else
		snprintf(want, sizeof(want), "%s: %s", l.path, message);
	assert_string_equal(l.err, want);
	/* The conf is left empty (defaults, no services). */
	assert_null(l.conf.services);
	assert_int_equal(l.conf.nservices, 0);
	lb_conf_free(&l.conf);
}

/*
 * Like expect_error, but only "PATH:line: start" is compared: for libconfig's
 * own messages, and where the end of ours is wording, not substance.
 */
static void expect_error_start(const char *text, int line, const char *start)
{
	struct loaded l;
	char want[600];

	load_text(&l, text);
	assert_int_equal(l.rc, -1);
	snprintf(want, sizeof(want), "%s:%d: %s", l.path, line, start);
	if (strncmp(l.err, want, strlen(want)) != 0)
		fail_msg("error '%s' does not start with '%s'", l.err, want);
	assert_true(strlen(l.err) > strlen(want));
	assert_null(l.conf.services);
	lb_conf_free(&l.conf);
}

static void assert_addr_text(const struct lb_addr *a, const char *text)
{
	char buf[LB_ADDR_STRLEN];

	assert_string_equal(lb_addr_format(a, buf, sizeof(buf)), text);
}

static const char full_conf[] =
	"# every key there is\n"
	"daemon: {\n"
	"  workers = 4;\n"
	"  queue = 10;\n"
	"  queue_maxlen = 4096;\n"
	"  control = \"/tmp/lbd-test.sock\";\n"
	"  chain = \"LBT_1\";\n"
	"  max_conns = 1000;\n"
	"  max_persist = 500;\n"
	"  max_embryonic = 250;\n"
	"};\n"
	"timeouts: {\n"
	"  syn_sent = 11; syn_recv = 12; established = 13; fin_wait = 14;\n"
	"  close_wait = 15; last_ack = 16; time_wait = 17; close = 18;\n"
	"};\n"
	"services = (\n"
	"  { vip = \"198.18.0.100\"; port = 80; scheduler = \"wrr\"; persistence = 60;\n"
	"    backends = (\n"
	"      { address = \"198.18.1.11\"; port = 8080; weight = 3; max_conns = 100; },\n"
	"      { address = \"198.18.1.12\"; }\n"
	"    ); },\n"
	"  { vip = \"2001:db8::100\"; port = 443; scheduler = \"mh\";\n"
	"    backends = ( { address = \"2001:db8:1::11\"; port = 8443; weight = 0; } ); }\n"
	");\n";

static void test_full_config(void **state)
{
	struct loaded l;
	const struct lb_conf *c = &l.conf;
	const struct lb_service_conf *s;

	(void)state;
	load_text(&l, full_conf);
	if (l.rc != 0)
		fail_msg("load failed: %s", l.err);
	assert_int_equal(c->daemon.workers, 4);
	assert_int_equal(c->daemon.queue, 10);
	assert_int_equal(c->daemon.queue_maxlen, 4096);
	assert_string_equal(c->daemon.control, "/tmp/lbd-test.sock");
	assert_string_equal(c->daemon.chain, "LBT_1");
	assert_int_equal(c->engine.max_conns, 1000);
	assert_int_equal(c->engine.max_persist, 500);
	assert_int_equal(c->engine.max_embryonic, 250);
	for (int st = LB_TCP_SYN_SENT; st <= LB_TCP_CLOSE; st++)
		assert_int_equal(c->engine.timeout_s[st], 10 + st);
	assert_int_equal(c->nservices, 2);

	s = &c->services[0];
	assert_addr_text(&s->vip, "198.18.0.100");
	assert_int_equal(s->port, 80);
	assert_string_equal(s->scheduler, "wrr");
	assert_int_equal(s->persistence_s, 60);
	assert_int_equal(s->nbackends, 2);
	assert_addr_text(&s->backends[0].addr, "198.18.1.11");
	assert_int_equal(s->backends[0].port, 8080);
	assert_int_equal(s->backends[0].weight, 3);
	assert_int_equal(s->backends[0].max_conns, 100);
	assert_addr_text(&s->backends[1].addr, "198.18.1.12");
	assert_int_equal(s->backends[1].port, 80);	/* the service's port */
	assert_int_equal(s->backends[1].weight, 1);
	assert_int_equal(s->backends[1].max_conns, 0);

	s = &c->services[1];
	assert_int_equal(s->vip.family, AF_INET6);
	assert_addr_text(&s->vip, "2001:db8::100");
	assert_int_equal(s->port, 443);
	assert_string_equal(s->scheduler, "mh");
	assert_int_equal(s->persistence_s, 0);
	assert_int_equal(s->nbackends, 1);
	assert_addr_text(&s->backends[0].addr, "2001:db8:1::11");
	assert_int_equal(s->backends[0].port, 8443);
	assert_int_equal(s->backends[0].weight, 0);
	lb_conf_free(&l.conf);
	lb_conf_free(&l.conf);		/* twice is fine */
}

/* The loaded configuration is accepted by the engine as it is. */
static void test_full_config_feeds_engine(void **state)
{
	struct loaded l;
	struct lb_engine *e;

	(void)state;
	load_text(&l, full_conf);
	assert_int_equal(l.rc, 0);
	e = lb_engine_new(&l.conf.engine, 1000);
	assert_non_null(e);
	assert_int_equal(lb_engine_set_services(e, l.conf.services, l.conf.nservices), 0);
	lb_engine_free(e);
	lb_conf_free(&l.conf);
}

static void test_defaults(void **state)
{
	struct loaded l;
	struct lb_engine_conf def;
	const struct lb_service_conf *s;

	(void)state;
	lb_engine_conf_defaults(&def);
	load_text(&l, "services = (\n  { vip = \"198.18.0.100\"; port = 80; }\n);\n");
	if (l.rc != 0)
		fail_msg("load failed: %s", l.err);
	assert_int_equal(l.conf.daemon.workers, 1);
	assert_int_equal(l.conf.daemon.queue, 0);
	assert_int_equal(l.conf.daemon.queue_maxlen, 8192);
	assert_string_equal(l.conf.daemon.control, "/run/lbd.sock");
	assert_string_equal(l.conf.daemon.chain, "LBD");
	assert_int_equal(l.conf.daemon.fast_path, LB_FAST_PATH_ON);
	assert_int_equal(l.conf.engine.max_conns, def.max_conns);
	assert_int_equal(l.conf.engine.max_persist, def.max_persist);
	assert_memory_equal(l.conf.engine.timeout_s, def.timeout_s, sizeof(def.timeout_s));
	assert_int_equal(l.conf.engine.timeout_s[LB_TCP_ESTABLISHED], 900);
	assert_int_equal(l.conf.nservices, 1);
	s = &l.conf.services[0];
	assert_string_equal(s->scheduler, "wlc");
	assert_int_equal(s->persistence_s, 0);
	assert_int_equal(s->nbackends, 0);
	lb_conf_free(&l.conf);
}

/* Setting some timeouts leaves the others at their defaults. */
static void test_partial_timeouts(void **state)
{
	struct loaded l;
	struct lb_engine_conf def;

	(void)state;
	lb_engine_conf_defaults(&def);
	load_text(&l, "timeouts: { established = 3600; };\nservices = ();\n");
	if (l.rc != 0)
		fail_msg("load failed: %s", l.err);
	assert_int_equal(l.conf.engine.timeout_s[LB_TCP_ESTABLISHED], 3600);
	assert_int_equal(l.conf.engine.timeout_s[LB_TCP_TIME_WAIT],
			 def.timeout_s[LB_TCP_TIME_WAIT]);
	assert_int_equal(l.conf.engine.timeout_s[LB_TCP_SYN_SENT], def.timeout_s[LB_TCP_SYN_SENT]);
	assert_int_equal(l.conf.nservices, 0);
	lb_conf_free(&l.conf);
}

static void test_missing_file(void **state)
{
	struct lb_conf c;
	char err[256];

	(void)state;
	assert_int_equal(lb_conf_load("/nonexistent/dir/lbd.conf", &c, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/dir/lbd.conf: cannot read: No such file or directory");
	assert_null(c.services);
	lb_conf_free(&c);
}

static void test_error_syntax(void **state)
{
	(void)state;
	expect_error_start("services = (\n"
			   "  { vip = \"198.18.0.100\";\n"
			   "    port = = 80; }\n"
			   ");\n", 3, "");
	expect_error_start("daemon: {\n  workers = 2;\n  queue = ;\n};\nservices = ();\n", 3, "");
	expect_error_start("services = (\n  { vip = \"198.18.0.100\"; port = 80; }\n\n\n",
			   5, "");
}

static void test_error_unknown_key(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = (\n"
		     "      { address = \"198.18.1.11\";\n"
		     "        wieght = 2; }\n"
		     "    ); }\n"
		     ");\n",
		     5, "unknown setting 'wieght' in a backend");
	expect_error("daemon: {\n  workers = 2;\n  threads = 4;\n};\nservices = ();\n",
		     3, "unknown setting 'threads' in 'daemon'");
	expect_error("services = ();\n\nlisten = 1;\n", 3, "unknown setting 'listen' in the file");
	expect_error("timeouts: {\n  established = 10;\n  none = 5;\n};\nservices = ();\n",
		     3, "unknown setting 'none' in 'timeouts'");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    sched = \"rr\"; }\n);\n",
		     3, "unknown setting 'sched' in a service");
}

static void test_error_bad_address(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = (\n"
		     "      { address = \"198.18.1.300\"; }\n"
		     "    ); }\n"
		     ");\n",
		     4, "'address' is not an IPv4 or IPv6 address: '198.18.1.300'");
	expect_error("services = (\n  {\n    vip = \"lb.example\";\n    port = 80; }\n);\n",
		     3, "'vip' is not an IPv4 or IPv6 address: 'lb.example'");
}

static void test_error_port_out_of_range(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\";\n"
		     "    port = 70000; }\n"
		     ");\n",
		     3, "'port' must be between 1 and 65535, not 70000");
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = ( { address = \"198.18.1.11\";\n"
		     "                   port = 0; } ); }\n"
		     ");\n",
		     4, "'port' must be between 1 and 65535, not 0");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = -1; }\n);\n",
		     2, "'port' must be between 1 and 65535, not -1");
}

static void test_error_unknown_scheduler(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    scheduler = \"fastest\"; }\n"
		     ");\n",
		     3, "unknown scheduler 'fastest' (rr, wrr, lc, wlc, sh, mh)");
}

static void test_error_family_mismatch(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = (\n"
		     "      { address = \"198.18.1.11\"; },\n"
		     "      { address = \"2001:db8:1::11\"; }\n"
		     "    ); }\n"
		     ");\n",
		     5, "backend and VIP must be of the same address family");
}

static void test_error_duplicate_service(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80; },\n"
		     "  { vip = \"198.18.0.101\"; port = 80; },\n"
		     "  { vip = \"198.18.0.100\"; port = 80; }\n"
		     ");\n",
		     4, "service VIP:port defined twice");
}

static void test_error_duplicate_backend(void **state)
{
	(void)state;
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = (\n"
		     "      { address = \"198.18.1.11\"; port = 80; },\n"
		     "      { address = \"198.18.1.12\"; },\n"
		     "      { address = \"198.18.1.11\"; }\n"
		     "    ); }\n"
		     ");\n",
		     6, "backend listed twice in this service");
}

static void test_error_missing_services(void **state)
{
	(void)state;
	expect_error("daemon: {\n  workers = 2;\n};\n", 0, "no 'services' list");
}

static void test_error_string_for_int(void **state)
{
	(void)state;
	expect_error("daemon: {\n  workers = \"4\";\n};\nservices = ();\n",
		     2, "'workers' must be an integer");
	expect_error("services = (\n"
		     "  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    backends = ( { address = \"198.18.1.11\";\n"
		     "                   weight = 1.5; } ); }\n"
		     ");\n",
		     4, "'weight' must be an integer");
	expect_error("services = (\n  { vip = 198; port = 80; }\n);\n",
		     2, "'vip' must be a string");
}

static void test_error_other_values(void **state)
{
	(void)state;
	expect_error("daemon: {\n  workers = 0;\n};\nservices = ();\n",
		     2, "'workers' must be between 1 and 62, not 0");
	expect_error("daemon: {\n  chain = \"LB-D\";\n};\nservices = ();\n",
		     2, "'chain' must be 1-20 letters, digits or '_'");
	expect_error("timeouts: {\n  time_wait = 0;\n};\nservices = ();\n",
		     2, "'time_wait' must be between 1 and 2592000, not 0");
	expect_error("services = (\n  { port = 80; }\n);\n", 2, "missing 'vip'");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; }\n);\n", 2, "missing 'port'");
	expect_error("services = { a = 1; };\n", 1, "'services' must be a list ( {...}, {...} )");
	expect_error("daemon = 5;\nservices = ();\n", 1, "'daemon' must be a group { ... }");
	expect_error("daemon: {\n  fast_path = \"yes\";\n};\nservices = ();\n",
		     2, "'fast_path' must be true, false or \"required\"");
	expect_error("daemon: {\n  fast_path = 1;\n};\nservices = ();\n",
		     2, "'fast_path' must be true, false or \"required\"");
}

/* fast_path = true | false | "required" */
static void test_fast_path(void **state)
{
	static const struct { const char *text; int want; } cases[] = {
		{ "true", LB_FAST_PATH_ON },
		{ "false", LB_FAST_PATH_OFF },
		{ "\"required\"", LB_FAST_PATH_REQUIRED },
	};
	char text[256];
	struct loaded l;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "daemon: { fast_path = %s; };\nservices = ();\n",
			 cases[i].text);
		load_text(&l, text);
		if (l.rc != 0)
			fail_msg("load failed: %s", l.err);
		assert_int_equal(l.conf.daemon.fast_path, cases[i].want);
		lb_conf_free(&l.conf);
	}
}

/* A service's check applies to every backend; a backend's is read over it. */
static void test_checks(void **state)
{
	struct loaded l;
	const struct agent_check_target *t;

	(void)state;
	load_text(&l, "services = (\n"
		      "  { vip = \"198.18.0.100\"; port = 80;\n"
		      "    check = { type = \"http\"; path = \"/health\"; interval = 1000;\n"
		      "              timeout = 500; fall = 4; body = \"ok\"; };\n"
		      "    backends = ( { address = \"198.18.1.11\"; },\n"
		      "                 { address = \"198.18.1.12\"; port = 8080;\n"
		      "                   check = { type = \"exec\"; command = \"true\"; rise = 5; }; } ); },\n"
		      "  { vip = \"198.18.0.100\"; port = 81;\n"
		      "    backends = ( { address = \"198.18.1.13\"; } ); }\n"
		      ");\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.nchecks, 2);	/* port 81 has none */
	t = &l.conf.checks[0];
	assert_int_equal(t->conf.kind, AGENT_CHECK_HTTP);
	assert_string_equal(t->conf.path, "/health");
	assert_string_equal(t->conf.body, "ok");
	assert_int_equal(t->conf.interval_ms, 1000);
	assert_int_equal(t->conf.timeout_ms, 500);
	assert_int_equal(t->conf.fall, 4);
	assert_int_equal(t->conf.rise, 2);
	assert_int_equal(t->conf.expect, 200);
	assert_int_equal(t->vport, 80);
	assert_int_equal(t->port, 80);
	t = &l.conf.checks[1];
	assert_int_equal(t->conf.kind, AGENT_CHECK_EXEC);
	assert_string_equal(t->conf.command, "true");
	assert_int_equal(t->conf.rise, 5);
	assert_int_equal(t->conf.fall, 4);	/* from the service's check */
	assert_int_equal(t->port, 8080);
	lb_conf_free(&l.conf);
}

static void test_check_errors(void **state)
{
	(void)state;
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    check = { type = \"icmp\"; }; }\n);\n",
		     3, "unknown check type 'icmp' (tcp, http, https, exec)");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    check = { type = \"exec\"; }; }\n);\n",
		     3, "an exec check needs a 'command'");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    check = { interval = 1000; timeout = 2000; }; }\n);\n",
		     3, "check 'timeout' (2000 ms) must not exceed 'interval' (1000 ms)");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    check = { tpye = \"tcp\"; }; }\n);\n",
		     3, "unknown setting 'tpye' in a check");
	expect_error("services = (\n  { vip = \"198.18.0.100\"; port = 80;\n"
		     "    check = { fall = 0; }; }\n);\n",
		     3, "'fall' must be between 1 and 100, not 0");
}

/* metrics, control_group and logging in the daemon section. */
static void test_daemon_control_plane(void **state)
{
	struct loaded l;
	char addr[64];

	(void)state;
	load_text(&l, "daemon: { metrics = \"198.18.0.2:9100\"; control_group = \"lbmon\";\n"
		      "          log = \"syslog\"; log_facility = \"local2\"; log_level = \"warn\"; };\n"
		      "services = ();\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.daemon.metrics_port, 9100);
	assert_string_equal(lb_addr_format(&l.conf.daemon.metrics_addr, addr, sizeof(addr)),
			    "198.18.0.2");
	assert_string_equal(l.conf.daemon.control_group, "lbmon");
	assert_int_equal(l.conf.daemon.log_syslog, 1);
	assert_int_equal(l.conf.daemon.log_level, 2);
	lb_conf_free(&l.conf);
	load_text(&l, "services = ();\n");
	assert_int_equal(l.conf.daemon.metrics_port, 0);	/* off by default */
	assert_int_equal(l.conf.daemon.log_level, -1);
	lb_conf_free(&l.conf);
	expect_error("daemon: {\n  metrics = \"198.18.0.2\";\n};\nservices = ();\n", 2,
		     "'metrics' must be ADDRESS:PORT ([ADDRESS]:PORT for IPv6), not '198.18.0.2'");
	expect_error("daemon: {\n  log = \"file\";\n};\nservices = ();\n", 2,
		     "'log' must be \"stderr\" or \"syslog\", not 'file'");
	expect_error("daemon: {\n  log_facility = \"kern\";\n};\nservices = ();\n", 2,
		     "unknown log_facility 'kern' (daemon, user, local0-local7)");
}

/* The sync section: peer_id is required and differs from node_id; the
 * state file defaults to the key file's name + ".epoch". */
#define SYNC_SVC "services = ( { vip = \"198.18.0.100\"; port = 80; backends = (\n" \
	"  { address = \"198.18.1.11\"; port = 80; } ); } );\n"

static void test_sync_peer_and_state(void **state)
{
	struct loaded l;

	(void)state;
	load_text(&l, SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		  "  peer = \"198.18.2.2\"; key_file = \"/etc/lbd/sync.key\"; };\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.sync.peer_id, 2);
	assert_string_equal(l.conf.sync.state_file, "/etc/lbd/sync.key.epoch");
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		  "  peer = \"198.18.2.2\"; key_file = \"/k\"; state_file = \"/var/lib/e\"; };\n");
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.conf.sync.state_file, "/var/lib/e");
	lb_conf_free(&l.conf);
	expect_error(SYNC_SVC "sync: { node_id = 1; local = \"198.18.2.1\";\n"
		     "  peer = \"198.18.2.2\"; key_file = \"/k\"; };\n", 3,
		     "missing 'peer_id' (the other node's node_id)");
	expect_error(SYNC_SVC "sync: { node_id = 1; local = \"198.18.2.1\";\n"
		     "  peer_id = 1;\n  peer = \"198.18.2.2\"; key_file = \"/k\"; };\n", 4,
		     "'peer_id' must differ from 'node_id'");
}

/* The takeover settings: stale_after (0 = never), vip_takeover,
 * takeover_kick, and the heartbeat's floor. */
static void test_sync_takeover_settings(void **state)
{
	struct loaded l;

	(void)state;
	load_text(&l, SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		  "  peer = \"198.18.2.2\"; key_file = \"/k\"; };\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.sync.stale_after_ms, 3000);
	assert_int_equal(l.conf.sync.vip_takeover, 1);
	assert_int_equal(l.conf.sync.takeover_kick, 1);
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		  "  peer = \"198.18.2.2\"; key_file = \"/k\"; stale_after = 0;\n"
		  "  vip_takeover = false; takeover_kick = false; heartbeat = 5; };\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.sync.stale_after_ms, 0);
	assert_int_equal(l.conf.sync.vip_takeover, 0);
	assert_int_equal(l.conf.sync.takeover_kick, 0);
	assert_int_equal(l.conf.sync.heartbeat_ms, 5);
	lb_conf_free(&l.conf);
	expect_error(SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		     "  peer = \"198.18.2.2\"; key_file = \"/k\";\n  vip_takeover = 1; };\n", 5,
		     "'vip_takeover' must be true or false");
	expect_error(SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		     "  peer = \"198.18.2.2\"; key_file = \"/k\";\n  takeover_kick = \"yes\"; };\n", 5,
		     "'takeover_kick' must be true or false");
	expect_error(SYNC_SVC "sync: { node_id = 1; peer_id = 2; local = \"198.18.2.1\";\n"
		     "  peer = \"198.18.2.2\"; key_file = \"/k\";\n  heartbeat = 4; };\n", 5,
		     "'heartbeat' must be between 5 and 10000, not 4");
}

/* The daemon's user and fail_open. */
static void test_daemon_user_and_fail_open(void **state)
{
	struct loaded l;

	(void)state;
	load_text(&l, SYNC_SVC);
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.conf.daemon.user, "nobody");
	assert_int_equal(l.conf.daemon.fail_open, 0);
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "daemon: { user = \"lbd\"; fail_open = true; };\n");
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.conf.daemon.user, "lbd");
	assert_int_equal(l.conf.daemon.fail_open, 1);
	lb_conf_free(&l.conf);
	expect_error(SYNC_SVC "daemon: {\n user = \"a b\"; };\n", 4,
		     "'user' must be a user name (1-32 letters, digits, '_', '.', '-')");
	expect_error(SYNC_SVC "daemon: {\n user = \"\"; };\n", 4,
		     "'user' must be a user name (1-32 letters, digits, '_', '.', '-')");
	expect_error(SYNC_SVC "daemon: {\n fail_open = 1; };\n", 4,
		     "'fail_open' must be true or false");
}

/* syn_queue: on by default; its worker counts against the workers' limit. */
static void test_daemon_syn_queue(void **state)
{
	struct loaded l;

	(void)state;
	load_text(&l, SYNC_SVC);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.daemon.syn_queue, 1);
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "daemon: { workers = 61; };\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.daemon.syn_queue, 1);
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "daemon: { workers = 62; syn_queue = false; };\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.conf.daemon.syn_queue, 0);
	lb_conf_free(&l.conf);
	expect_error(SYNC_SVC "daemon: {\n workers = 62; };\n", 4,
		     "'workers' must be at most 61 with 'syn_queue'");
	expect_error(SYNC_SVC "daemon: {\n syn_queue = \"yes\"; };\n", 4,
		     "'syn_queue' must be true or false");
}

/* alive_link: none by default; an interface name, or refused at its line. */
static void test_daemon_alive_link(void **state)
{
	static const char *const bad[] = { "", "a b", "lbd-alive-too-long", ".x", "a/b" };
	struct loaded l;

	(void)state;
	load_text(&l, SYNC_SVC);
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.conf.daemon.alive_link, "");
	lb_conf_free(&l.conf);
	load_text(&l, SYNC_SVC "daemon: { alive_link = \"lbd-alive\"; };\n");
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.conf.daemon.alive_link, "lbd-alive");
	lb_conf_free(&l.conf);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), SYNC_SVC "daemon: {\n alive_link = \"%s\"; };\n",
			 bad[i]);
		expect_error(text, 4, "'alive_link' must be an interface name of 1-15 letters, "
			     "digits, '_', '.' or '-'");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemon_alive_link),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_full_config_feeds_engine),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_partial_timeouts),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_error_syntax),
		cmocka_unit_test(test_error_unknown_key),
		cmocka_unit_test(test_error_bad_address),
		cmocka_unit_test(test_error_port_out_of_range),
		cmocka_unit_test(test_error_unknown_scheduler),
		cmocka_unit_test(test_error_family_mismatch),
		cmocka_unit_test(test_error_duplicate_service),
		cmocka_unit_test(test_error_duplicate_backend),
		cmocka_unit_test(test_error_missing_services),
		cmocka_unit_test(test_error_string_for_int),
		cmocka_unit_test(test_error_other_values),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_check_errors),
		cmocka_unit_test(test_daemon_control_plane),
		cmocka_unit_test(test_sync_peer_and_state),
		cmocka_unit_test(test_sync_takeover_settings),
		cmocka_unit_test(test_daemon_user_and_fail_open),
		cmocka_unit_test(test_fast_path),
		cmocka_unit_test(test_daemon_syn_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
