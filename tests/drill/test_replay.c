/*
 * Unit tests of drill_replay (`lbdrill replay`) through its entry point,
 * without a lab: raw-IP captures are written here with libpcap's dumper
 * (packets crafted by tests/lb/pktbuild.h, with correct sequence numbers
 * and acknowledgements), a configuration is written to a temporary file,
 * and drill_replay_main() runs on argv arrays with its stdout captured.
 *
 *   - a clean capture (connections whose packets are 5 ms apart, replies
 *     from the VIP as a client-side capture has them, or from a backend as
 *     lbd's own capture has them): a sweep in defer mode loses nothing
 *     (exit 0), and so does an async sweep, since every state change is
 *     older than the 2 ms a record waits to be batched;
 *   - a connection that starts right at the failover point (the failover
 *     falls after its SYN and SYN/ACK, within the batching window, with a
 *     slow sync link): an unsynchronised loss in async mode (exit 1, in the
 *     report and in the JSON file), none in defer mode;
 *   - usage and input errors: exit 2 (also for numeric options that are
 *     not numbers).
 */
#include <fcntl.h>
#include <pcap/pcap.h>
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
#include "../lb/pktbuild.h"
#include "lb_pkt.h"

#define VIP "198.18.0.100"
#define BACKEND "198.18.1.12"
#define T0_SEC 1700000000u

static char dir[64];
static char out_text[1 << 16];	/* stdout of the last run */
static char err_text[1 << 14];	/* its stderr */

/*
 * A file in dir. The result lives until 16 more calls: enough for every
 * argv of a test, whose strings must stay put while the replay runs.
 */
static const char *path_of(const char *name)
{
	static char paths[16][sizeof(dir) + 64];
	static unsigned next;
	char *p = paths[next++ % 16];

	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

/* ---- writing captures ---- */

struct rec {
	uint64_t t_us;		/* from the capture's start */
	uint32_t seq;		/* order of writing, to keep sorting stable */
	size_t len;
	uint8_t data[1600];
};

struct capture {
	struct rec recs[256];
	size_t n;
};

static void put(struct capture *c, uint64_t t_us, const struct pb_spec *s)
{
	struct rec *r;

	assert_true(c->n < sizeof(c->recs) / sizeof(c->recs[0]));
	r = &c->recs[c->n];
	r->t_us = t_us;
	r->seq = (uint32_t)c->n++;
	r->len = pb_build(r->data, sizeof(r->data), s);
	assert_true(r->len > 0);
}

static int by_time(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->t_us != y->t_us)
		return x->t_us < y->t_us ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int keep_order;		/* write_capture(): as put, not sorted by time */

/* Writes the records, in time order, as a raw-IP capture. */
static void write_capture(struct capture *c, const char *name)
{
	pcap_t *pd = pcap_open_dead(DLT_RAW, 65535);
	pcap_dumper_t *d;

	assert_non_null(pd);
	d = pcap_dump_open(pd, path_of(name));
	assert_non_null(d);
	if (!keep_order)
		qsort(c->recs, c->n, sizeof(c->recs[0]), by_time);
	for (size_t i = 0; i < c->n; i++) {
		struct pcap_pkthdr h = { .caplen = (bpf_u_int32)c->recs[i].len,
					 .len = (bpf_u_int32)c->recs[i].len };

		h.ts.tv_sec = T0_SEC + (time_t)(c->recs[i].t_us / 1000000u);
		h.ts.tv_usec = (suseconds_t)(c->recs[i].t_us % 1000000u);
		pcap_dump((u_char *)d, &h, c->recs[i].data);
	}
	pcap_dump_close(d);
	pcap_close(pd);
}

/* Where the client sends the packets of the connection connection_to()
 * writes (the server answers from its own address: the same, or a
 * backend's in lbd's own capture), and the server's port. */
static const char *client_dst = VIP;
static uint16_t server_port = 80;
static uint32_t isn_shift;	/* added to both ends' initial sequence numbers */

/* One segment of a connection: from the client when from_client. */
static struct pb_spec seg(int from_client, const char *client, uint16_t sport, const char *server,
			  uint32_t seq, uint32_t ack, uint8_t flags, uint32_t len)
{
	struct pb_spec (*spec)(const char *, uint16_t, const char *, uint16_t) =
		strchr(client, ':') ? pb_spec_v6 : pb_spec_v4;
	struct pb_spec s = from_client ? spec(client, sport, client_dst, server_port)
				       : spec(server, server_port, client, sport);

	s.seq = seq;
	s.ack = ack;
	s.flags = flags;
	s.payload_len = len;
	s.pattern_seed = (uint8_t)sport;
	if (flags & LB_TCP_SYN)
		s.mss = 1460;
	return s;
}

/*
 * A whole connection to client_dst:server_port, answered from server, its packets gap_us apart from
 * t_us on: handshake, a 120-byte request, a 2000-byte response in two
 * segments, FIN both ways; from its packet number from on (0: all; a
 * capture that began mid-connection otherwise). Returns the number of
 * packets written.
 */
static int connection_to(struct capture *c, int idx, uint64_t t_us, uint64_t gap_us,
			 const char *server, int from)
{
	char client[32];
	int len = snprintf(client, sizeof(client), strchr(server, ':') ? "2001:db8::%d"
								      : "198.18.0.%d", 20 + idx);
	uint16_t sport = (uint16_t)(40000 + idx);
	uint32_t ci = 1000u * (uint32_t)idx + 1 + isn_shift, si = 50000u * (uint32_t)idx + 7 + isn_shift;
	const uint8_t A = LB_TCP_ACK, PA = LB_TCP_PSH | LB_TCP_ACK, FA = LB_TCP_FIN | LB_TCP_ACK;
	struct pb_spec s[] = {
		seg(1, client, sport, server, ci, 0, LB_TCP_SYN, 0),
		seg(0, client, sport, server, si, ci + 1, LB_TCP_SYN | A, 0),
		seg(1, client, sport, server, ci + 1, si + 1, A, 0),
		seg(1, client, sport, server, ci + 1, si + 1, PA, 120),
		seg(0, client, sport, server, si + 1, ci + 121, A, 0),
		seg(0, client, sport, server, si + 1, ci + 121, PA, 1000),
		seg(0, client, sport, server, si + 1001, ci + 121, PA, 1000),
		seg(1, client, sport, server, ci + 121, si + 2001, A, 0),
		seg(1, client, sport, server, ci + 121, si + 2001, FA, 0),
		seg(0, client, sport, server, si + 2001, ci + 122, FA, 0),
		seg(1, client, sport, server, ci + 122, si + 2002, A, 0),
	};
	int n = (int)(sizeof(s) / sizeof(s[0]));

	assert_true(len > 0 && (size_t)len < sizeof(client));
	for (int i = from; i < n; i++)
		put(c, t_us + (uint64_t)(i - from) * gap_us, &s[i]);
	return n - from;
}

/* A whole connection to the VIP; see connection_to(). */
static int connection(struct capture *c, int idx, uint64_t t_us, uint64_t gap_us, int backend_view)
{
	client_dst = VIP;
	server_port = 80;
	return connection_to(c, idx, t_us, gap_us, backend_view ? BACKEND : VIP, 0);
}

static void write_config(const char *name, uint16_t port)
{
	FILE *f = fopen(path_of(name), "w");

	assert_non_null(f);
	fprintf(f, "services = (\n"
		   "  { vip = \"%s\"; port = %u; scheduler = \"rr\";\n"
		   "    backends = ( { address = \"198.18.1.11\"; }, { address = \"%s\"; },\n"
		   "                 { address = \"198.18.1.13\"; } ); }\n"
		   ");\n", VIP, port, BACKEND);
	assert_int_equal(fclose(f), 0);
}

/* A service of VIP:80 with scheduler sched and one backend, or three. */
static void write_config_sched(const char *name, const char *sched, int one)
{
	FILE *f = fopen(path_of(name), "w");

	assert_non_null(f);
	fprintf(f, "services = (\n"
		   "  { vip = \"%s\"; port = 80; scheduler = \"%s\";\n"
		   "    backends = ( { address = \"%s\"; }%s ); }\n"
		   ");\n", VIP, sched, BACKEND,
		one ? "" : ", { address = \"198.18.1.11\"; }, { address = \"198.18.1.13\"; }");
	assert_int_equal(fclose(f), 0);
}

/* ---- running the replay ---- */

/* Points fd (1 or 2) at the file path; returns the saved original. */
static int redirect(int fd, const char *path)
{
	int saved = dup(fd), f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(saved >= 0 && f >= 0);
	assert_true(dup2(f, fd) == fd);
	close(f);
	return saved;
}

/* Puts fd back to saved and reads what went to the file path into buf. */
static void restore(int fd, int saved, const char *path, char *buf, size_t size)
{
	ssize_t n;
	int f;

	assert_true(dup2(saved, fd) == fd);
	close(saved);
	f = open(path, O_RDONLY);
	assert_true(f >= 0);
	n = read(f, buf, size - 1);
	close(f);
	buf[n > 0 ? n : 0] = '\0';
}

/*
 * drill_replay_main(argv) with its stdout in out_text and its stderr in
 * err_text. The arguments end with NULL; argv[0] is the subcommand's name,
 * as lbdrill passes it.
 */
static int run_main(int (*fn)(int, char **), const char *name, const char *first, va_list ap)
{
	static char out_path[sizeof(dir) + 16], err_path[sizeof(dir) + 16];
	char *argv[32];
	int argc = 0, rc, out, err;
	const char *a;

	snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", dir);

	argv[argc++] = (char *)name;
	for (a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < 31);
		argv[argc++] = (char *)a;
	}
	argv[argc] = NULL;

	fflush(stdout);
	fflush(stderr);
	out = redirect(STDOUT_FILENO, out_path);
	err = redirect(STDERR_FILENO, err_path);
	rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	restore(STDERR_FILENO, err, err_path, err_text, sizeof(err_text));
	restore(STDOUT_FILENO, out, out_path, out_text, sizeof(out_text));
	return rc;
}

static int replay(const char *first, ...)
{
	va_list ap;
	int rc;

	va_start(ap, first);
	rc = run_main(drill_replay_main, "replay", first, ap);
	va_end(ap);
	return rc;
}

static int audit(const char *first, ...)
{
	va_list ap;
	int rc;

	va_start(ap, first);
	rc = run_main(drill_audit_main, "audit", first, ap);
	va_end(ap);
	return rc;
}

/* The last run failed with usage on stderr and nothing on stdout. */
static void assert_usage_of(const char *text)
{
	assert_string_equal(out_text, "");
	assert_non_null(strstr(err_text, text));
}

static void assert_usage(void)
{
	assert_usage_of("usage: lbdrill replay");
}

/* The last run failed with one line on stderr that contains text. */
static void assert_one_error(const char *text)
{
	const char *nl = strchr(err_text, '\n');

	assert_string_equal(out_text, "");
	if (!strstr(err_text, text) || !nl || nl[1] || strncmp(err_text, "lbdrill replay: ", 16))
		print_error("stderr '%s' is not one line with '%s'\n", err_text, text);
	assert_non_null(strstr(err_text, text));
	assert_true(nl && !nl[1]);
	assert_int_equal(strncmp(err_text, "lbdrill replay: ", 16), 0);
}

/* The report contains text; prints the report when it does not. */
static void assert_report_has(const char *text)
{
	if (!strstr(out_text, text))
		print_error("report lacks '%s':\n%s\n", text, out_text);
	assert_non_null(strstr(out_text, text));
}

static char *read_file(const char *path)
{
	static char buf[1 << 17];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	assert_true(n < sizeof(buf) - 1);	/* all of it */
	buf[n] = '\0';
	return buf;
}

/* ---- the tests ---- */

/* Four overlapping connections, 5 ms between packets, two as lbd sees them. */
static int clean_packets;

static void test_clean_sweep_defer(void **state)
{
	(void)state;
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config", path_of("lb.conf"),
				"--sweep", "--defer", NULL), 0);
	assert_report_has("(RAW)");
	assert_report_has("replayed         44 packets in 4 connections");
	assert_report_has("skipped          0\n");
	assert_report_has("reference        forwarded 44, dropped 0");
	assert_report_has("defer on");
	assert_report_has("sweep            43 failovers (every 1 packet)");
	assert_report_has("with losses      0");
	assert_report_has("unsynchronised   0 connections lost in all");
	assert_report_has("takeover failures 0");
	assert_report_has("result: PASS");
	assert_int_equal(clean_packets, 44);
}

static void test_clean_sweep_async(void **state)
{
	(void)state;
	/* Every state change is 5 ms older than the next packet: replicated. */
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config", path_of("lb.conf"),
				"--sweep", NULL), 0);
	assert_report_has("defer off");
	assert_report_has("unsynchronised   0 connections lost in all");
	assert_report_has("takeover failures 0");
	/* Every 4th boundary, and with a lossy link (repaired by NACK). */
	assert_in_range(replay("--pcap", path_of("clean.pcap"), "--config", path_of("lb.conf"),
			       "--sweep", "--every", "4", "--sync-loss", "20%", NULL), 0, 1);
	assert_report_has("sweep            11 failovers (every 4 packets)");
	assert_report_has("takeover failures 0");
}

static void test_clean_single_failover(void **state)
{
	(void)state;
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config", path_of("lb.conf"),
				"--failover-at", "20", "--json", path_of("clean.json"), NULL), 0);
	assert_report_has("failover         before record #20");
	assert_report_has("LOST 0, MISMATCH 0");
	assert_report_has("result: PASS");
	assert_non_null(strstr(read_file(path_of("clean.json")), "\"failover_record\":20,"));
	assert_non_null(strstr(read_file(path_of("clean.json")), "\"LOST\":0,\"MISMATCH\":0,"));
	assert_non_null(strstr(read_file(path_of("clean.json")), "\"exit\":0,"));
}

/* One connection, 100 us between packets: over before a record is batched. */
static void test_unsynced_async(void **state)
{
	const char *json;

	(void)state;
	/* Before record 3, the client's ACK: the SYN and SYN/ACK passed, but
	 * their records had not left the active (the replay gives lbd's sync
	 * thread 1 ms to send them), and the link takes 50 ms. */
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--failover-at", "3", "--sync-delay", "50", "--json",
				path_of("fast.json"), NULL), 1);
	assert_report_has("sync link        loss 0.0%, delay 50 ms, defer off");
	assert_report_has("failover         before record #3");
	assert_report_has("unsynced 1, LOST 0, MISMATCH 0");
	assert_report_has("unsynced    9 packet(s) dropped (drop_no_conn), first at #3");
	/* Not on the standby at all: the report gives its creation's age (the
	 * SYN, 0.2 ms); the JSON the age of its last state change (the
	 * SYN/ACK, 0.1 ms). */
	assert_report_has("not on the standby: created 0.2 ms before the failover");
	assert_report_has("result: LOSS");
	json = read_file(path_of("fast.json"));
	assert_non_null(strstr(json, "\"unsynced\":1,"));
	assert_non_null(strstr(json, "\"exit\":1,"));
	assert_non_null(strstr(json, "\"status\":\"unsynced\",\"dropped\":9,\"first_record\":3,"
				     "\"reason\":\"drop_no_conn\",\"held\":false,\"age_ms\":0.100}"));

	/* The same point named by time: 0.2 ms from the start is record 3. */
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--failover-at", "0.2ms", NULL), 1);
	assert_report_has("failover         before record #3 (t=+0.000 s)");

	/* A sweep finds the same window, and no takeover failure. */
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--sweep", NULL), 1);
	assert_report_has("sweep            10 failovers (every 1 packet)");
	assert_report_has("takeover failures 0");
	assert_report_has("result: LOSS");
}

static void test_unsynced_defer(void **state)
{
	(void)state;
	/* Defer mode holds the SYN until the standby has it: nothing lost. */
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--failover-at", "3", "--defer", NULL), 0);
	assert_report_has("unsynced 0, LOST 0, MISMATCH 0");
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--sweep", "--defer", NULL), 0);
	assert_report_has("takeover failures 0");
	assert_report_has("result: PASS");
}

/*
 * A sweep writes out every lost connection with its failover point, in
 * the report and in the JSON file; --failover-at that point replays
 * exactly that case.
 */
static void test_sweep_findings_reproduce(void **state)
{
	const char *json, *at;
	char client[64], line[256];
	unsigned long rec;

	(void)state;
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--sweep", "--sync-delay", "50", "--json", path_of("sweep.json"),
				NULL), 1);
	assert_report_has("result: LOSS");
	at = strstr(out_text, "\n  at #");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "\n  at #%lu %63s", &rec, client), 2);
	assert_string_equal(client, "198.18.0.20:40000");
	json = read_file(path_of("sweep.json"));
	snprintf(line, sizeof(line), "{\"failover_record\":%lu,", rec);
	assert_non_null(strstr(json, line));
	assert_non_null(strstr(json, "\"every\":1,\"defer\":false,"));
	assert_non_null(strstr(json, "\"conns\":[{\"client\":\"198.18.0.20:40000\","
				     "\"vip\":\"198.18.0.100:80\",\"first_seen_record\":1,"
				     "\"status\":\"unsynced\""));
	assert_non_null(strstr(json, "\"takeover_failures\":0,\"exit\":1}"));
	/* Each point is one object, its losses listed: as many as reported. */
	{
		size_t points = 0, lost = 0;

		for (const char *p = json; (p = strstr(p, "{\"failover_record\":")); p++)
			points++;
		for (const char *p = json; (p = strstr(p, "\"status\":\"unsynced\"")); p++)
			lost++;
		assert_int_equal(points, 10);
		for (const char *p = out_text; (p = strstr(p, "\n  at #")); p++)
			lost--;
		assert_int_equal(lost, 0);
	}
	/* The finding, replayed alone: the same connection, the same loss. */
	snprintf(line, sizeof(line), "%lu", rec);
	assert_int_equal(replay("--pcap", path_of("fast.pcap"), "--config", path_of("lb.conf"),
				"--failover-at", line, "--sync-delay", "50", NULL), 1);
	snprintf(line, sizeof(line), "failover         before record #%lu ", rec);
	assert_report_has(line);
	assert_report_has("unsynced 1, LOST 0, MISMATCH 0");
	assert_report_has("198.18.0.20:40000");
}

/*
 * --auto-services, without a configuration: every server in the capture is
 * a service (VIP:80, 198.18.5.5:8443, and [2001:db8:5::5]:80 over IPv6,
 * with a synthetic IPv6 backend), every connection is balanced and
 * tracked; one whose capture began mid-connection, its first packet the
 * server's, is still the client's connection to port 80 (the lower port),
 * and the reference drops it (no SYN: no connection).
 */
static void test_auto_services(void **state)
{
	(void)state;
	assert_int_equal(replay("--pcap", path_of("any.pcap"), "--auto-services", "--verbose",
				"--failover-at", "12", NULL), 0);
	assert_report_has("replayed         40 packets in 4 connections");
	assert_report_has("auto services    3 (one synthetic backend each)");
	assert_report_has("reference        forwarded 33, dropped 7 drop_no_conn 7");
	assert_report_has("198.18.0.21:40001            198.18.5.5:8443");
	assert_report_has("198.18.0.22:40002            198.18.0.100:80");
	assert_report_has("[2001:db8::23]:40003         [2001:db8:5::5]:80");
	assert_report_has("LOST 0, MISMATCH 0");
	assert_int_equal(replay("--pcap", path_of("any.pcap"), "--auto-services", "--sweep",
				"--defer", NULL), 0);
	assert_report_has("sweep            39 failovers (every 1 packet)");
	assert_report_has("result: PASS");
	/* Its services replace a configuration's: other.conf names port 8080. */
	assert_int_equal(replay("--pcap", path_of("any.pcap"), "--auto-services", "--config",
				path_of("other.conf"), "--failover-at", "12", NULL), 0);
	assert_report_has("auto services    3 (one synthetic backend each)");
	assert_report_has("reference        forwarded 33, dropped 7");
}

/* A clean capture: nothing dropped, exit 0, in the report and the JSON. */
static void test_audit_clean(void **state)
{
	(void)state;
	assert_int_equal(audit(path_of("clean.pcap"), "--config", path_of("lb.conf"), "--json",
			       path_of("audit.json"), NULL), 0);
	assert_report_has("packets          44 in 4 connections");
	assert_report_has("drops            0 of 44 packets, in 0 of 4 connections");
	assert_report_has("result: PASS: every drop explained");
	assert_non_null(strstr(read_file(path_of("audit.json")), "\"drops\":0,"));
	/* A connection begun before the capture is explained, not a finding. */
	assert_int_equal(audit("--pcap", path_of("any.pcap"), "--auto-services", NULL), 0);
	assert_report_has("auto services    3");
	assert_report_has("midstream        7\n");
	assert_report_has("unexplained      0\n");
	assert_report_has("drop_no_conn             7 (midstream 7)");
}

/*
 * The capture missed the server's second data segment, which the client
 * then ACKs: the tracker drops the ACK (beyond what it saw the server
 * send), and the audit blames the capture.
 */
static void test_audit_capture_loss(void **state)
{
	(void)state;
	assert_int_equal(audit(path_of("lossy.pcap"), "--config", path_of("lb.conf"), "--json",
			       path_of("audit.json"), NULL), 0);
	assert_report_has("capture_loss     ");
	assert_report_has("drop_out_of_window");
	assert_report_has("unexplained      0\n");
	assert_report_has("(established) capture_loss");
	assert_non_null(strstr(read_file(path_of("audit.json")), "\"explained\":\"capture_loss\""));
}

/* A segment far beyond the window that nobody ACKs: unexplained, exit 1. */
static void test_audit_unexplained(void **state)
{
	(void)state;
	assert_int_equal(audit(path_of("wild.pcap"), "--config", path_of("lb.conf"), "--json",
			       path_of("audit.json"), NULL), 1);
	assert_report_has("#5 ");
	assert_report_has("drop_out_of_window (established) unexplained");
	assert_report_has("unexplained      1\n");
	assert_report_has("result: UNEXPLAINED");
	assert_non_null(strstr(read_file(path_of("audit.json")),
			       "\"record\":5,\"t_us\":15000,\"client\":\"198.18.0.20:40000\","
			       "\"vip\":\"198.18.0.100:80\",\"dir\":\"orig\",\"flags\":\"P.\""));
	assert_non_null(strstr(read_file(path_of("audit.json")), "\"unexplained\":1,"));
	/* Usage: a capture and a configuration, or --auto-services. */
	assert_int_equal(audit(path_of("wild.pcap"), NULL), 2);
	assert_usage_of("usage: lbdrill audit");
	assert_int_equal(audit(NULL), 2);
	assert_usage_of("usage: lbdrill audit");
	assert_int_equal(audit(path_of("wild.pcap"), "--config", path_of("lb.conf"), "--list",
			       "x", NULL), 2);
	assert_usage_of("usage: lbdrill audit");
	/* Bad input: one line naming it. */
	assert_int_equal(audit(path_of("lb.conf"), "--auto-services", NULL), 2);
	assert_string_equal(out_text, "");
	assert_non_null(strstr(err_text, "lbdrill audit: "));
	assert_non_null(strstr(err_text, "not a pcap or pcapng file"));
}

/*
 * A client reuses its port: a connection ends (TIME_WAIT), and a new one
 * on the same tuple starts 50 ms later, its handshake 100 us apart. The
 * new SYN reopens the old entry; in defer mode it must be held like any
 * SYN that creates a connection, or a failover between it and the SYN/ACK
 * finds the standby still in TIME_WAIT, which refuses the SYN/ACK.
 */
static void test_reused_port_defer(void **state)
{
	int rc;

	(void)state;
	rc = replay("--pcap", path_of("reuse.pcap"), "--config", path_of("lb.conf"), "--sweep",
		    "--defer", NULL);
	assert_report_has("replayed         22 packets in 2 connections");
	assert_report_has("reference        forwarded 22, dropped 0");
	assert_report_has("unsynchronised   0 connections lost in all");
	assert_report_has("result: PASS");
	assert_int_equal(rc, 0);
}

/* The packets point #record of the last sweep (--verbose) replayed, or -1. */
static long point_replayed(unsigned record)
{
	char key[48];
	const char *at;
	long n;

	snprintf(key, sizeof(key), "  point #%-8u replayed ", record);
	at = strstr(out_text, key);
	if (!at || sscanf(at + strlen(key), "%ld", &n) != 1)
		return -1;
	return n;
}

/*
 * The closed-lane rule of the linear sweep: a client's port comes back
 * (reuse.pcap: a connection of 11 packets, 5 ms apart, then 100 ms later
 * a new one on the same tuple, records #12 to #22). At a failover between
 * the two, the lane is alive only because its tuple comes back, and the
 * new SYN judges the same on the reference's closed entry as on the new
 * active's: a closed entry on the same backend (the first connection was
 * replicated), or none (reusefast.pcap: the first connection opened and
 * closed inside one flush, so the standby never heard of it). The point
 * before the new SYN replays nothing; with more backends (rr) the new
 * active may choose another one, so there the SYN is replayed. Each sweep
 * finds what the quadratic one does (test_linear_equals_full()).
 */
static void test_closed_lane_settles(void **state)
{
	static const char *const pcaps[] = { "reuse.pcap", "reusefast.pcap" };

	(void)state;
	for (size_t p = 0; p < 2; p++) {
		replay("--pcap", path_of(pcaps[p]), "--config", path_of("one.conf"), "--sweep",
		       "--verbose", NULL);
		assert_report_has("replayed         22 packets in 2 connections");
		if (point_replayed(12) != 0)
			print_error("%s: the point before the reused tuple's SYN replayed %ld\n",
				    pcaps[p], point_replayed(12));
		assert_int_equal(point_replayed(12), 0);
		/* before it, the first connection is alive and replayed */
		assert_true(point_replayed(11) > 0);
		/* the quadratic sweep replays everything after the failover */
		replay("--pcap", path_of(pcaps[p]), "--config", path_of("one.conf"),
		       "--sweep-full", "--verbose", NULL);
		assert_int_equal(point_replayed(12), 11);
	}
	replay("--pcap", path_of("reusefast.pcap"), "--config", path_of("lb.conf"), "--sweep",
	       "--verbose", NULL);
	assert_true(point_replayed(12) > 0);
}

/*
 * A record whose timestamp goes back in time (a capture written by several
 * threads): counted, taken as the time of the packet before, and the
 * connection replays as any other.
 */
static void test_out_of_order_time(void **state)
{
	(void)state;
	assert_int_equal(replay("--pcap", path_of("late.pcap"), "--config", path_of("lb.conf"),
				"--sweep", "--defer", NULL), 0);
	assert_report_has("out of order     1 timestamps earlier than the packet before");
	assert_report_has("reference        forwarded 11, dropped 0");
	assert_report_has("result: PASS");
	assert_int_equal(audit(path_of("late.pcap"), "--config", path_of("lb.conf"), NULL), 0);
	assert_report_has("out of order     1 timestamps");
}

/* Each: exit 2, the usage on stderr, nothing on stdout. */
static void test_usage_errors(void **state)
{
	const char *pcap = path_of("clean.pcap"), *conf = path_of("lb.conf");
	const char *const bad[][4] = {
		{ NULL },
		{ "--pcap", pcap, NULL },
		{ "--config", conf, NULL },
		{ "--bogus", NULL },
		{ "extra", NULL },
		{ "--failover-at", "abc", NULL },
		{ "--failover-at", "0", NULL },
		{ "--failover-at", "-1s", NULL },
		{ "--failover-at", "3h", NULL },
		{ "--sync-loss", "1", NULL },
		{ "--sync-loss", "150%", NULL },
		{ "--sync-loss", "x", NULL },
		{ "--sweep", "--every", "0", NULL },
		{ "--every", NULL },
	};

	(void)state;
	assert_int_equal(replay(NULL), 2);
	assert_usage();
	assert_int_equal(replay("--pcap", pcap, NULL), 2);
	assert_usage();
	assert_int_equal(replay("--config", conf, NULL), 2);
	assert_usage();
	for (size_t i = 3; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(replay("--pcap", pcap, "--config", conf, bad[i][0], bad[i][1],
					bad[i][1] ? bad[i][2] : NULL, NULL), 2);
		assert_usage();
	}
}

/* Numbers that are not numbers are usage errors too, not 0 or a prefix. */
static void test_usage_bad_numbers(void **state)
{
	const char *pcap = path_of("clean.pcap"), *conf = path_of("lb.conf");
	const char *const bad[][3] = {
		{ "--sync-delay", "abc", NULL },
		{ "--sync-delay", "5ms", NULL },
		{ "--max-conns", "many", NULL },
		{ "--sweep", "--every", "3x" },
		{ "--failover-at", "1.5", NULL },	/* a record number is whole */
	};

	int accepted = 0;

	(void)state;
	/* Every case is tried, and each one accepted is named, before failing. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = replay("--pcap", pcap, "--config", conf, bad[i][0], bad[i][1], bad[i][2],
				NULL);

		if (rc == 2 && !out_text[0] && strstr(err_text, "usage: lbdrill replay"))
			continue;
		print_error("'%s %s%s%s' was accepted (exit %d)\n", bad[i][0], bad[i][1],
			    bad[i][2] ? " " : "", bad[i][2] ? bad[i][2] : "", rc);
		accepted++;
	}
	assert_int_equal(accepted, 0);
}

/* Each: exit 2, one line on stderr naming the problem, nothing on stdout. */
static void test_input_errors(void **state)
{
	(void)state;
	assert_int_equal(replay("--pcap", path_of("missing.pcap"), "--config", path_of("lb.conf"),
				NULL), 2);
	assert_one_error("missing.pcap: cannot open: No such file or directory");
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config",
				path_of("missing.conf"), NULL), 2);
	assert_one_error("missing.conf");
	/* A configuration without the capture's service: nothing to replay. */
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config", path_of("other.conf"),
				NULL), 2);
	assert_one_error("clean.pcap: no TCP packet of a configured service (44 records)");
	/* More than the memory allowed: refused, with what it would need. */
	assert_int_equal(replay("--pcap", path_of("clean.pcap"), "--config", path_of("lb.conf"),
				"--max-memory", "1", NULL), 2);
	assert_one_error("clean.pcap: 44 packets in 4 connections: the replay would need ");
	assert_non_null(strstr(err_text, "and 1 MiB are allowed"));
	/* A configuration is not a capture. */
	assert_int_equal(replay("--pcap", path_of("lb.conf"), "--config", path_of("lb.conf"),
				NULL), 2);
	assert_one_error("lb.conf: not a pcap or pcapng file");
}

/*
 * The linear sweep (one replay, a forked snapshot per point, lanes replayed
 * until they settle) finds exactly what the quadratic one does, whatever
 * the services' schedulers make of the past: one backend (nothing), rr
 * over three (the sequence of SYNs), sh over three (the engine's seed),
 * wlc over three (every connection's state: the linear sweep then replays
 * everything after each failover).
 */
static void test_linear_equals_full(void **state)
{
	static const char *const pcaps[] = { "clean.pcap", "fast.pcap", "reuse.pcap",
					     "reusefast.pcap" };
	static const char *const confs[] = { "one.conf", "lb.conf", "wlc.conf", "sh.conf" };
	static const char *const modes[][3] = { { "--sync-delay", "50", NULL },
						{ "--defer", NULL, NULL } };
	int differ = 0, findings = 0;

	(void)state;
	for (size_t p = 0; p < 4; p++)
		for (size_t c = 0; c < 4; c++)
			for (size_t m = 0; m < 2; m++) {
				int a = replay("--pcap", path_of(pcaps[p]), "--config",
					       path_of(confs[c]), "--sweep", "--json",
					       path_of("lin.json"), modes[m][0], modes[m][1],
					       NULL);
				int b = replay("--pcap", path_of(pcaps[p]), "--config",
					       path_of(confs[c]), "--sweep-full", "--json",
					       path_of("full.json"), modes[m][0], modes[m][1],
					       NULL);
				char *x = strdup(read_file(path_of("lin.json")));

				assert_non_null(x);
				if (a != b || strcmp(x, read_file(path_of("full.json"))) != 0) {
					print_error("%s %s %s: linear and full sweeps differ\n",
						    pcaps[p], confs[c], modes[m][0]);
					differ++;
				}
				findings += strstr(x, "\"status\":\"") != NULL;
				free(x);
			}
	assert_int_equal(differ, 0);
	assert_true(findings > 0);	/* some runs lost something: compared */
}

/* ---- fixtures ---- */

static int make_files(void **state)
{
	struct capture *c = calloc(1, sizeof(*c));

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_replay.XXXXXX");
	if (!c || !mkdtemp(dir))
		return -1;
	write_config("lb.conf", 80);
	write_config("other.conf", 8080);
	write_config_sched("one.conf", "rr", 1);
	write_config_sched("wlc.conf", "wlc", 0);
	write_config_sched("sh.conf", "sh", 0);
	for (int i = 0; i < 4; i++)
		clean_packets += connection(c, i, (uint64_t)i * 20000, 5000, i % 2);
	write_capture(c, "clean.pcap");
	c->n = 0;
	connection(c, 0, 0, 100, 0);
	write_capture(c, "fast.pcap");
	c->n = 0;
	connection(c, 0, 0, 5000, 0);
	client_dst = "198.18.5.5";
	server_port = 8443;
	connection_to(c, 1, 2000, 5000, "198.18.5.5", 0);
	client_dst = VIP;
	server_port = 80;
	connection_to(c, 2, 3000, 5000, VIP, 4);	/* from the server's ACK on */
	client_dst = "2001:db8:5::5";
	connection_to(c, 3, 4000, 5000, "2001:db8:5::5", 0);
	client_dst = VIP;
	write_capture(c, "any.pcap");
	/* The capture misses the server's second data segment (the 7th). */
	c->n = 0;
	connection(c, 0, 0, 5000, 0);
	memmove(&c->recs[6], &c->recs[7], (c->n - 7) * sizeof(c->recs[0]));
	c->n--;
	write_capture(c, "lossy.pcap");
	/* A client segment 16 MB beyond the window, in the middle. */
	c->n = 0;
	connection(c, 0, 0, 5000, 0);
	{
		struct pb_spec w = seg(1, "198.18.0.20", 40000, VIP, 1 + (16u << 20), 8,
				       LB_TCP_PSH | LB_TCP_ACK, 10);

		put(c, 15000, &w);	/* after the handshake's ACK (10 ms) */
	}
	write_capture(c, "wild.pcap");
	/* The same client port twice: the second connection's sequence
	 * numbers are past the first's (what a reuse needs, RFC 6191). */
	c->n = 0;
	connection(c, 0, 0, 5000, 0);
	isn_shift = 1u << 20;
	connection(c, 0, 100000, 100, 0);
	isn_shift = 0;
	write_capture(c, "reuse.pcap");
	/* The same, the first connection inside one flush (never replicated). */
	c->n = 0;
	connection(c, 0, 0, 50, 0);
	isn_shift = 1u << 20;
	connection(c, 0, 100000, 100, 0);
	isn_shift = 0;
	write_capture(c, "reusefast.pcap");
	/* The 6th packet stamped 19 ms earlier than the 5th, 1 ms after the start. */
	c->n = 0;
	connection(c, 0, 0, 5000, 0);
	c->recs[5].t_us = 1000;
	keep_order = 1;
	write_capture(c, "late.pcap");
	keep_order = 0;
	free(c);
	return 0;
}

static int remove_files(void **state)
{
	static const char *const names[] = { "lb.conf", "other.conf", "clean.pcap", "fast.pcap",
					     "clean.json", "fast.json", "stdout", "stderr",
					     "any.pcap", "sweep.json", "lossy.pcap", "wild.pcap",
					     "audit.json", "reuse.pcap", "late.pcap", "one.conf",
					     "wlc.conf", "lin.json", "full.json", "sh.conf",
					     "reusefast.pcap" };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path_of(names[i]));
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_sweep_defer),
		cmocka_unit_test(test_clean_sweep_async),
		cmocka_unit_test(test_clean_single_failover),
		cmocka_unit_test(test_unsynced_async),
		cmocka_unit_test(test_unsynced_defer),
		cmocka_unit_test(test_sweep_findings_reproduce),
		cmocka_unit_test(test_auto_services),
		cmocka_unit_test(test_audit_clean),
		cmocka_unit_test(test_audit_capture_loss),
		cmocka_unit_test(test_audit_unexplained),
		cmocka_unit_test(test_reused_port_defer),
		cmocka_unit_test(test_closed_lane_settles),
		cmocka_unit_test(test_linear_equals_full),
		cmocka_unit_test(test_out_of_order_time),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_usage_bad_numbers),
		cmocka_unit_test(test_input_errors),
	};

	return cmocka_run_group_tests(tests, make_files, remove_files);
}
