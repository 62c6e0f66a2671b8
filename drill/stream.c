/*
 * drill_stream: `lbdrill stream`, the client end of a failover drill.
 *
 *   lbdrill stream --target ADDR:PORT --conns N --duration S
 *                  [--rate BYTES_PER_S] [--source ADDR] [--json FILE]
 *                  [--connect-timeout S] [--connect-rate N] [--report-every S]
 *                  [--stuck S] [--tick MS] [--seed N] [--downloads N
 *                  [--download-size S] [--download-rate B]] [--timeline-ms MS]
 *
 * (`lbdrill live` is the same with --failover and --watch: drill/drill_live.h.)
 *
 * Opens N connections (paced: --connect-rate per second, 0 = all at once),
 * each sending its stream (drill/drill_proto.h) at --rate bytes/s while the server
 * sends its own back at the same rate, and verifies every byte received.
 * Per connection it records whether it connected, bytes each way, the first
 * corrupt offset, a reset, an early EOF, and its stall: the longest gap
 * between two receipts of data after the first byte (the gap from the last
 * receipt to the end of the run counts too, so a connection that silently
 * stopped cannot look healthy).
 *
 * Downloads (--downloads) follow the echo streams in the same array: they
 * send nothing after the hello and ask the server for a fixed size at
 * --download-rate; one is complete when every byte matched, exactly that
 * many came, and then the server's FIN. Each kind is summarised apart. With
 * --json, every stream's progress over time (drill/drill_timeline.h) and
 * its silence across each failover go into the JSON too.
 *
 * The run ends after --duration or on SIGINT/SIGTERM; then a summary goes
 * to stdout and, with --json, one JSON object to FILE. Exit status: 0 if
 * every connection connected and survived (open at the end, data within
 * --stuck seconds, no corruption), 1 if not, 2 for bad arguments.
 *
 * Connections live in one array for the whole run (never freed early), so
 * an epoll event for a connection closed earlier in the same batch finds it
 * in state STREAM_CLOSED and is ignored. Pacing, connect pacing and connect
 * timeouts run on one periodic tick that scans the array: every open
 * connection is due on every tick, so a timer heap would buy nothing.
 */
#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "drill.h"
#include "drill_live.h"
#include "drill_proto.h"
#include "drill_sys.h"
#include "drill_timeline.h"
#include "log.h"
#include "sockaddr_util.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define STREAM_MAX_CONNS	200000
#define STREAM_READS_PER_EVENT	16
#define STREAM_EVENTS		256
#define STREAM_LIST_FAILURES	10	/* failed connections listed in the summary */
#define NS_PER_MS		1000000ull

enum stream_kind { STREAM_EV_TICK, STREAM_EV_SIGNAL, STREAM_EV_CONN, STREAM_EV_WATCH };

enum stream_state { STREAM_IDLE, STREAM_CONNECTING, STREAM_OPEN, STREAM_CLOSED };

enum stream_end {
	STREAM_END_NONE,
	STREAM_END_CONNECT,	/* the connect failed or timed out */
	STREAM_END_RESET,	/* ECONNRESET / EPIPE */
	STREAM_END_EOF,		/* the server closed */
	STREAM_END_CORRUPT,	/* a received byte was wrong */
	STREAM_END_ERROR,	/* any other socket error */
	STREAM_END_DONE,	/* a download arrived whole, then the server's FIN */
};

#define STREAM_MAX_EVENTS 8
#define STREAM_MAX_WATCHES 8

/* lbdrill live: a command run at a moment of the drill (a failover). */
struct stream_event {
	uint64_t at_ms;			/* from the start of the drill */
	const char *cmd;		/* run with /bin/sh -c */
	pid_t pid;			/* 0: not started */
	int done, status;		/* status as waitpid gives it */
	uint64_t t_start_ns, t_end_ns;
};

struct stream_conf {
	const char *name;		/* "stream" or "live", for messages */
	struct stream_event events[STREAM_MAX_EVENTS];
	size_t nevents;
	struct drill_addr target;
	struct drill_addr source;	/* len 0: let the kernel choose */
	uint32_t conns;
	uint32_t rate;			/* bytes/s, each direction */
	uint32_t connect_rate;		/* connects/s, 0: all at once */
	uint32_t tick_ms;
	uint64_t duration_ms, connect_timeout_ms, report_ms, stuck_ms;
	uint64_t seed;
	const char *json;
	uint32_t downloads;		/* bulk streams after the echo ones */
	uint32_t download_kib, download_rate;
	uint64_t timeline_ms;		/* 0: no timeline in the JSON */
	struct drill_watch watches[STREAM_MAX_WATCHES];
	size_t nwatches;
};

struct stream_conn {
	struct drill_ev ev;		/* first: epoll hands us &ev */
	uint32_t index;
	int bulk;			/* a download: receives limit bytes, sends none */
	uint64_t limit;
	enum stream_state state;
	enum stream_end end;
	int err;			/* errno behind the end, if any */
	uint16_t lport;
	uint64_t seed;
	uint64_t t_start_ns, t_open_ns, t_first_rx_ns, t_last_rx_ns;
	uint64_t rx, tx;
	uint64_t corrupt_at;		/* offset in the server's stream */
	uint64_t max_stall_ns;
	uint64_t max_stall_at_ns;	/* when that longest gap began */
	uint64_t event_gap_ns[STREAM_MAX_EVENTS]; /* longest gap across each event */
	uint64_t event_gap_from_ns[STREAM_MAX_EVENTS]; /* and when it began */
	struct drill_tl tl;		/* bytes received over time */
};

struct stream {
	struct stream_conf conf;
	int epfd;
	struct drill_ev tick, sig;
	struct stream_conn *conns;
	uint32_t n;			/* conf.conns echo streams, then conf.downloads */
	uint32_t started;		/* conns[0, started) were started */
	struct drill_marks marks;	/* what the watches saw */
	uint64_t t0_ns, t_end_ns, next_report_ns;
	uint64_t ready_ns;		/* when epoll_wait last returned */
	int stop, interrupted;
	uint8_t buf[DRILL_BUF];
};

struct stream_summary {
	uint32_t n, done;		/* streams of the kind; downloads complete */
	uint32_t connected, survived, reset, corrupt, eof, stuck, errors, never;
	uint32_t max_stall_conn;
	uint64_t max_stall_ns, p50_ns, p99_ns, rx, tx;
	double elapsed_s;
};

/* ------------------------------------------------------------ arguments */

static void stream_usage(FILE *f, const char *name)
{
	if (strcmp(name, "live") == 0)
		fprintf(f,
			"usage: lbdrill live --target VIP:PORT --conns N --duration S\n"
			"                    --failover SECONDS:COMMAND [--failover ...] [options]\n"
			"  runs verified streams through a running pair and, SECONDS into the\n"
			"  drill, COMMAND (with /bin/sh -c) to fail it over: e.g.\n"
			"    --failover '5:ssh lb1 systemctl stop keepalived'\n"
			"    --failover '5:deploy/lab kill lb1'   (the namespace lab)\n"
			"  then reports survivors, resets, corruption and stalls around each\n"
			"  failover. Exit 0 when every stream survived every failover and every\n"
			"  command succeeded. Options as for lbdrill stream, and:\n"
			"  --watch NAME:COMMAND  a command run for the whole drill; each line it\n"
			"                       prints is a moment NAME (kill, vip, role: see\n"
			"                       lbdrill(1)), listed and drawn in the timeline; a\n"
			"                       line '@SECONDS ...' (epoch) is timed by its stamp\n");
	fprintf(f,
		"usage: lbdrill stream --target ADDR:PORT --conns N --duration S [options]\n"
		"  --rate B             bytes/s each connection sends, and asks back (16384)\n"
		"  --source ADDR        bind to this local address\n"
		"  --json FILE          write the results as one JSON object\n"
		"  --connect-timeout S  a connect not done by then fails (5)\n"
		"  --connect-rate N     connects started per second, 0 = all at once (100)\n"
		"  --report-every S     progress line on stderr every S seconds\n"
		"  --stuck S            open but silent this long at the end: failed (5)\n"
		"  --tick MS            pacing period (50)\n"
		"  --seed N             base of the stream seeds (default: from the clock)\n"
		"  --downloads N        also N downloads (bulk streams; --conns may be 0)\n"
		"  --download-size S    each download's size: N, NK, NM or NG bytes (64M)\n"
		"  --download-rate B    bytes/s each download is sent at (1048576)\n"
		"  --timeline-ms MS     a progress point per stream at most every MS in the\n"
		"                       JSON, and both ends of every silence (20; 0: none)\n");
}

static int stream_parse_num(const char *arg, uint64_t min, uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (drill_arg_u64(arg, min, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* SECONDS:COMMAND, for lbdrill live. */
static int stream_parse_event(struct stream_conf *c, const char *arg)
{
	const char *colon = strchr(arg, ':');
	char secs[32];
	uint64_t ms;

	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(secs) || !colon[1] ||
	    c->nevents == STREAM_MAX_EVENTS)
		return -1;
	memcpy(secs, arg, (size_t)(colon - arg));
	secs[colon - arg] = '\0';
	if (drill_arg_ms(secs, 0, 86400000, &ms) < 0)
		return -1;
	c->events[c->nevents++] = (struct stream_event){ .at_ms = ms, .cmd = colon + 1 };
	return 0;
}

/* A download's size: bytes with an optional K, M or G (powers of 1024), in
 * whole KiB from 1 KiB to 4 TiB (the hello carries KiB). */
static int stream_parse_size_kib(const char *arg, uint32_t *kib)
{
	static const char units[] = "KMG";
	char num[32];
	size_t len = strlen(arg);
	uint64_t v, shift = 0;
	const char *u;

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, arg, len + 1);
	if ((u = strchr(units, num[len - 1])) != NULL) {
		shift = 10 * (uint64_t)(u - units + 1);
		num[--len] = '\0';
	}
	if (drill_arg_u64(num, 1, UINT64_MAX >> 31, &v) < 0)
		return -1;
	v <<= shift;
	if (v % 1024 || v / 1024 > UINT32_MAX)
		return -1;
	*kib = (uint32_t)(v / 1024);
	return 0;
}

static int stream_parse_opt(struct stream_conf *c, int o, const char *arg)
{
	switch (o) {
	case 'T': return drill_addr_parse(arg, 1, &c->target);
	case 'S': return drill_addr_parse(arg, 0, &c->source);
	case 'n': return stream_parse_num(arg, 0, STREAM_MAX_CONNS, &c->conns);
	case 'd': return drill_arg_ms(arg, 100, 86400000, &c->duration_ms);
	case 'r': return stream_parse_num(arg, 1, 1000000000, &c->rate);
	case 'j': c->json = arg; return 0;
	case 'c': return drill_arg_ms(arg, 100, 600000, &c->connect_timeout_ms);
	case 'C': return stream_parse_num(arg, 0, 1000000, &c->connect_rate);
	case 'R': return drill_arg_ms(arg, 100, 86400000, &c->report_ms);
	case 's': return drill_arg_ms(arg, 100, 86400000, &c->stuck_ms);
	case 't': return stream_parse_num(arg, 1, 1000, &c->tick_ms);
	case 'e': return drill_arg_u64(arg, 0, UINT64_MAX, &c->seed);
	case 'F': return stream_parse_event(c, arg);
	case 'D': return stream_parse_num(arg, 0, STREAM_MAX_CONNS, &c->downloads);
	case 'z': return stream_parse_size_kib(arg, &c->download_kib);
	case 'Z': return stream_parse_num(arg, 1, 1000000000, &c->download_rate);
	case 'L': return drill_arg_u64(arg, 0, 60000, &c->timeline_ms);
	case 'W':
		if (c->nwatches == STREAM_MAX_WATCHES)
			return -1;
		return drill_watch_parse(&c->watches[c->nwatches++], arg) < 0 ? -1 : 0;
	}
	return -1;
}

static void stream_conf_defaults(struct stream_conf *c, const char *name)
{
	struct timespec ts;

	memset(c, 0, sizeof(*c));
	c->name = name;
	c->rate = 16384;
	c->connect_rate = 100;
	c->tick_ms = 50;
	c->connect_timeout_ms = 5000;
	c->stuck_ms = 5000;
	c->download_kib = 64 * 1024;
	c->download_rate = 1048576;
	c->timeline_ms = 20;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->seed = drill_mix64((uint64_t)ts.tv_sec << 30 ^ (uint64_t)ts.tv_nsec ^
			      (uint64_t)getpid() << 48);
}

/* Returns 0 to run, 1 after --help, -1 on a bad argument (usage printed). */
static int stream_parse_args(int argc, char **argv, struct stream_conf *c, const char *name)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 'T' },
		{ "source", required_argument, NULL, 'S' },
		{ "conns", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "json", required_argument, NULL, 'j' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "connect-rate", required_argument, NULL, 'C' },
		{ "report-every", required_argument, NULL, 'R' },
		{ "stuck", required_argument, NULL, 's' },
		{ "tick", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'e' },
		{ "failover", required_argument, NULL, 'F' },
		{ "downloads", required_argument, NULL, 'D' },
		{ "download-size", required_argument, NULL, 'z' },
		{ "download-rate", required_argument, NULL, 'Z' },
		{ "timeline-ms", required_argument, NULL, 'L' },
		{ "watch", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	stream_conf_defaults(c, name);
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'h') {
			stream_usage(stdout, name);
			return 1;
		}
		/* --failover and --watch belong to live: stream has no moment. */
		if (o == '?' || ((o == 'F' || o == 'W') && strcmp(name, "live") != 0) ||
		    stream_parse_opt(c, o, optarg) < 0) {
			if (o != '?')
				fprintf(stderr, "lbdrill %s: bad option or value '%s'\n", name,
					optarg);
			goto bad;
		}
	}
	if (optind != argc || c->target.len == 0 || c->duration_ms == 0 ||
	    c->conns + (uint64_t)c->downloads == 0 ||
	    c->conns + (uint64_t)c->downloads > STREAM_MAX_CONNS)
		goto bad;
	if (strcmp(name, "live") == 0 && c->nevents == 0) {
		fprintf(stderr, "lbdrill live: say when and how to fail over (--failover)\n");
		goto bad;
	}
	if (c->source.len && c->source.ss.ss_family != c->target.ss.ss_family) {
		fprintf(stderr, "lbdrill stream: --source and --target differ in family\n");
		goto bad;
	}
	return 0;
bad:
	stream_usage(stderr, name);
	return -1;
}

/* ------------------------------------------------------------ connections */

static int stream_end_of_errno(int err)
{
	return err == ECONNRESET || err == EPIPE ? STREAM_END_RESET : STREAM_END_ERROR;
}

/* The one way out of STREAM_CONNECTING / STREAM_OPEN; the first end counts. */
static void stream_conn_end(struct stream_conn *c, enum stream_end end, int err)
{
	if (c->state == STREAM_CLOSED)
		return;
	if (c->ev.fd >= 0) {
		if (end == STREAM_END_CORRUPT)
			drill_socket_reset(c->ev.fd);
		else
			close(c->ev.fd);
	}
	c->ev.fd = -1;
	c->state = STREAM_CLOSED;
	c->end = end;
	c->err = err;
}

static void stream_conn_opened(struct stream *s, struct stream_conn *c, uint64_t now)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->ev };
	struct drill_hello h = {
		.rate = c->bulk ? s->conf.download_rate : s->conf.rate,
		.limit_kib = c->bulk ? s->conf.download_kib : 0,
		.seed = c->seed,
	};
	uint8_t hello[DRILL_HELLO_LEN];
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	ssize_t n;

	c->state = STREAM_OPEN;
	c->t_open_ns = now;
	if (getsockname(c->ev.fd, (struct sockaddr *)&local, &len) == 0)
		c->lport = sockaddr_port(&local);
	drill_hello_encode(hello, &h);
	/* A fresh socket's send buffer always takes 24 bytes whole. */
	n = send(c->ev.fd, hello, sizeof(hello), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(hello)) {
		stream_conn_end(c, n < 0 ? stream_end_of_errno(errno) : STREAM_END_ERROR,
				n < 0 ? errno : EIO);
		return;
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->ev.fd, &e) < 0)
		stream_conn_end(c, STREAM_END_ERROR, errno);
}

static void stream_conn_start(struct stream *s, struct stream_conn *c, uint64_t now)
{
	const struct stream_conf *conf = &s->conf;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = &c->ev };
	int fd, one = 1;

	c->state = STREAM_CONNECTING;
	c->t_start_ns = now;
	fd = socket(conf->target.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	c->ev.fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* best effort: without stamps, reads are timed by epoll's return */
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (conf->source.len) {
		/* Ports are picked at connect() time, by 4-tuple, not at bind(). */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)&conf->source.ss, conf->source.len) < 0)
			goto err;
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		goto err;
	if (connect(fd, (const struct sockaddr *)&conf->target.ss, conf->target.len) == 0)
		stream_conn_opened(s, c, now);
	else if (errno != EINPROGRESS)
		goto err;
	return;
err:
	stream_conn_end(c, STREAM_END_CONNECT, errno);
}

static void stream_conn_connected(struct stream *s, struct stream_conn *c, uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		stream_conn_end(c, STREAM_END_CONNECT, err);
	else
		stream_conn_opened(s, c, now);
}

/* Verifies n received bytes; returns -1 if they were wrong (conn closed). */
/*
 * A silence [from, to] belongs to the last failover started before it
 * ended, when it overlaps the time from that command's start to 2 s after it
 * finished (the takeover and TCP's retransmissions happen then). One
 * failover only: a silence around a kill soon after a revive is the kill's.
 */
static void note_event_gaps(const struct stream_conf *conf, struct stream_conn *c,
			    uint64_t from, uint64_t to)
{
	const struct stream_event *ev = NULL;
	size_t i = 0;
	uint64_t end;

	for (size_t j = 0; j < conf->nevents; j++) {
		const struct stream_event *e = &conf->events[j];

		if (e->t_start_ns && e->t_start_ns <= to && (!ev || e->t_start_ns > ev->t_start_ns)) {
			ev = e;
			i = j;
		}
	}
	if (!ev)
		return;
	end = (ev->done ? ev->t_end_ns : to) + 2000 * NS_PER_MS;
	if (from > end || to - from <= c->event_gap_ns[i])
		return;
	c->event_gap_ns[i] = to - from;
	c->event_gap_from_ns[i] = from;
}

/*
 * Takes n bytes that began to arrive at from and had all arrived by now: a
 * silence ends when the first of them arrived, and the next one starts when
 * the last did.
 */
static int stream_conn_consume(const struct stream_conf *conf, struct stream_conn *c,
			       const uint8_t *p, size_t n, uint64_t from, uint64_t now)
{
	size_t bad = drill_pattern_check(drill_server_seed(c->seed), c->rx, p, n);

	/* A download's bytes beyond its size are wrong, whatever they are. */
	if (c->bulk && c->rx + bad > c->limit)
		bad = (size_t)(c->limit - c->rx);

	if (bad < n) {
		c->corrupt_at = c->rx + bad;
		c->rx += bad;
		stream_conn_end(c, STREAM_END_CORRUPT, 0);
		return -1;
	}
	if (c->t_first_rx_ns == 0) {
		c->t_first_rx_ns = from;
	} else {
		if (from - c->t_last_rx_ns > c->max_stall_ns) {
			c->max_stall_ns = from - c->t_last_rx_ns;
			c->max_stall_at_ns = c->t_last_rx_ns;
		}
		note_event_gaps(conf, c, c->t_last_rx_ns, from);
	}
	c->t_last_rx_ns = now;
	c->rx += n;
	if (conf->timeline_ms)
		drill_tl_note(&c->tl, now, c->rx, conf->timeline_ms * NS_PER_MS);
	return 0;
}

/*
 * The receive timestamp (SO_TIMESTAMPNS, wall clock) of the last segment a
 * recvmsg() took, on the monotonic clock (off_ns: wall minus monotonic);
 * fallback when there is none (the option refused, a segment queued before
 * it was set).
 */
static uint64_t stream_rx_stamp(struct msghdr *m, int64_t off_ns, uint64_t fallback)
{
	for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h)) {
		struct timespec ts;
		int64_t t;

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS ||
		    h->cmsg_len < CMSG_LEN(sizeof(ts)))
			continue;
		memcpy(&ts, CMSG_DATA(h), sizeof(ts));
		t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - off_ns;
		return ts.tv_sec > 0 && t > 0 ? (uint64_t)t : fallback;
	}
	return fallback;
}

/* recv() with the receive timestamp of the last segment it took in *at. */
static ssize_t stream_recv_stamped(int fd, void *buf, size_t len, int flags, int64_t off_ns,
				   uint64_t fallback, uint64_t *at)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(fd, &m, flags);

	*at = n > 0 ? stream_rx_stamp(&m, off_ns, fallback) : fallback;
	return n;
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns (to the µs: enough for stalls). */
static int64_t stream_clock_offset_ns(void)
{
	return (int64_t)clock_real_us() * 1000 - (int64_t)clock_mono_ns();
}

/* t, kept within [lo, hi]: a stamp never moves a stream's time backwards,
 * nor past the moment it was read. */
static uint64_t stream_clamp(uint64_t t, uint64_t lo, uint64_t hi)
{
	return t < lo ? lo : t > hi ? hi : t;
}

/*
 * Bytes are timed by when the client's kernel received them, not by when
 * this loop got round to them: after a failover every stream is ready at
 * once, the last of a batch of 140 was read tens of ms after the first
 * (checking the others' bytes), and on a busy machine the drill itself
 * wakes tens of ms late; a stall would count both. A peek at one byte
 * gives the stamp of the first segment waiting (when a silence ended),
 * each read that of the last one it took (when the next silence may
 * start). A segment held out of order and merged into the one that filled
 * the hole lends it its earlier stamp (a capture counts that moment too).
 */
static void stream_conn_readable(struct stream *s, struct stream_conn *c)
{
	int64_t off = stream_clock_offset_ns();
	uint64_t lo = c->t_first_rx_ns ? c->t_last_rx_ns : 0, from, now;

	/* Nothing to peek (an error, the end): from stays epoll's return. */
	(void)stream_recv_stamped(c->ev.fd, s->buf, 1, MSG_PEEK, off, s->ready_ns, &from);
	for (int i = 0; i < STREAM_READS_PER_EVENT; i++) {
		ssize_t n = stream_recv_stamped(c->ev.fd, s->buf, sizeof(s->buf), 0, off,
						s->ready_ns, &now);

		if (n > 0) {
			uint64_t read_at = clock_mono_ns();

			from = stream_clamp(from, lo, read_at);
			now = stream_clamp(now, from, read_at);
			if (stream_conn_consume(&s->conf, c, s->buf, (size_t)n, from, now) < 0)
				return;
			lo = from = now;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == 0)
			stream_conn_end(c, c->bulk && c->rx == c->limit ? STREAM_END_DONE
								 : STREAM_END_EOF, 0);
		else
			stream_conn_end(c, stream_end_of_errno(errno), errno);
		return;
	}
}

/* Sends what the pace allows by now. */
static void stream_conn_send(struct stream *s, struct stream_conn *c, uint64_t now)
{
	uint64_t due = (uint64_t)((double)s->conf.rate * (double)(now - c->t_open_ns) / 1e9);
	uint64_t budget = due > c->tx ? due - c->tx : 0;

	while (budget > 0) {
		size_t chunk = budget < sizeof(s->buf) ? (size_t)budget : sizeof(s->buf);
		ssize_t n;

		drill_pattern_fill(c->seed, c->tx, s->buf, chunk);
		n = send(c->ev.fd, s->buf, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			stream_conn_end(c, n < 0 ? stream_end_of_errno(errno) : STREAM_END_ERROR,
					n < 0 ? errno : EIO);
			return;
		}
		c->tx += (uint64_t)n;
		budget -= (uint64_t)n;
		if ((size_t)n < chunk)
			return;
	}
}

/* ------------------------------------------------------------ the run */

static void stream_report(const struct stream *s, uint64_t now)
{
	uint64_t rx = 0, tx = 0, stall = 0;
	uint32_t open = 0, closed = 0;

	for (uint32_t i = 0; i < s->started; i++) {
		const struct stream_conn *c = &s->conns[i];

		open += c->state == STREAM_OPEN;
		closed += c->state == STREAM_CLOSED;
		rx += c->rx;
		tx += c->tx;
		if (c->max_stall_ns > stall)
			stall = c->max_stall_ns;
	}
	fprintf(stderr, "lbdrill stream: %.1f s: open %u/%u, closed %u, rx %llu, tx %llu, "
		"max stall %llu ms\n", (double)(now - s->t0_ns) / 1e9, open, s->n,
		closed, (unsigned long long)rx, (unsigned long long)tx,
		(unsigned long long)(stall / NS_PER_MS));
}

/* Starts the connections the connect pace allows by now. */
static void stream_start_due(struct stream *s, uint64_t now)
{
	uint64_t due = s->n;

	if (s->conf.connect_rate)
		due = 1 + (now - s->t0_ns) / NS_PER_MS * s->conf.connect_rate / 1000;
	if (due > s->n)
		due = s->n;
	while (s->started < due) {
		struct stream_conn *c = &s->conns[s->started++];

		stream_conn_start(s, c, now);
	}
}

/* ------------------------------------------------------------ live events */

/* Starts a failover command; its output goes where ours goes. */
static void event_start(struct stream_event *ev, uint64_t now)
{
	char *argv[] = { "/bin/sh", "-c", (char *)ev->cmd, NULL };
	extern char **environ;
	pid_t pid;

	ev->t_start_ns = now;
	fflush(stdout);
	if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0) {
		ev->pid = -1;
		ev->done = 1;
		ev->status = 127 << 8;
		ev->t_end_ns = now;
		return;
	}
	ev->pid = pid;
}

/* Starts the events that are due and collects the ones that finished. */
static void stream_events(struct stream *s, uint64_t now)
{
	for (size_t i = 0; i < s->conf.nevents; i++) {
		struct stream_event *ev = &s->conf.events[i];

		if (!ev->pid && now >= s->t0_ns + ev->at_ms * NS_PER_MS)
			event_start(ev, now);
		if (ev->pid > 0 && !ev->done && waitpid(ev->pid, &ev->status, WNOHANG) == ev->pid) {
			ev->done = 1;
			ev->t_end_ns = now;
		}
	}
}

/* At the end: a command still running is waited for (it is ours to reap). */
static void stream_events_finish(struct stream *s)
{
	for (size_t i = 0; i < s->conf.nevents; i++) {
		struct stream_event *ev = &s->conf.events[i];

		if (ev->pid > 0 && !ev->done) {
			while (waitpid(ev->pid, &ev->status, 0) < 0 && errno == EINTR)
				;
			ev->done = 1;
			ev->t_end_ns = clock_mono_ns();
		}
	}
}

static void stream_tick(struct stream *s)
{
	uint64_t now = clock_mono_ns();

	drill_fd_drain(s->tick.fd);
	stream_events(s, now);
	if (now >= s->t_end_ns) {
		s->stop = 1;
		return;
	}
	stream_start_due(s, now);
	for (uint32_t i = 0; i < s->started; i++) {
		struct stream_conn *c = &s->conns[i];

		if (c->state == STREAM_OPEN && !c->bulk)
			stream_conn_send(s, c, now);
		else if (c->state == STREAM_CONNECTING &&
			 now - c->t_start_ns > s->conf.connect_timeout_ms * NS_PER_MS)
			stream_conn_end(c, STREAM_END_CONNECT, ETIMEDOUT);
	}
	if (s->conf.report_ms && now >= s->next_report_ns) {
		stream_report(s, now);
		s->next_report_ns = now + s->conf.report_ms * NS_PER_MS;
	}
}

static void stream_dispatch(struct stream *s, const struct epoll_event *e)
{
	struct drill_ev *ev = e->data.ptr;
	struct stream_conn *c = (struct stream_conn *)ev;

	switch (ev->kind) {
	case STREAM_EV_TICK:
		stream_tick(s);
		break;
	case STREAM_EV_SIGNAL:
		drill_fd_drain(ev->fd);
		s->stop = s->interrupted = 1;
		break;
	case STREAM_EV_WATCH:
		drill_watch_readable((struct drill_watch *)ev, &s->marks, clock_mono_ns());
		break;
	case STREAM_EV_CONN:
		if (c->state == STREAM_CONNECTING)
			stream_conn_connected(s, c, clock_mono_ns());
		else if (c->state == STREAM_OPEN)
			stream_conn_readable(s, c);
		break;
	}
}

static int stream_open(struct stream *s)
{
	struct epoll_event e = { .events = EPOLLIN };

	s->tick.fd = s->sig.fd = -1;
	s->n = s->conf.conns + s->conf.downloads;
	s->conns = calloc(s->n, sizeof(*s->conns));
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->conns || s->epfd < 0)
		return -1;
	for (uint32_t i = 0; i < s->n; i++) {
		s->conns[i].ev.kind = STREAM_EV_CONN;
		s->conns[i].ev.fd = -1;
		s->conns[i].index = i;
		s->conns[i].seed = drill_mix64(s->conf.seed + i);
		s->conns[i].bulk = i >= s->conf.conns;
		s->conns[i].limit = (uint64_t)s->conf.download_kib * 1024;
	}
	for (size_t i = 0; i < s->conf.nwatches; i++) {
		int rc = drill_watch_start(&s->conf.watches[i], s->epfd, STREAM_EV_WATCH);

		if (rc < 0) {
			errno = -rc;
			return -1;
		}
	}
	s->sig.kind = STREAM_EV_SIGNAL;
	s->sig.fd = drill_signals_open();
	s->tick.kind = STREAM_EV_TICK;
	s->tick.fd = drill_ticker_open(s->conf.tick_ms);
	if (s->sig.fd < 0 || s->tick.fd < 0)
		return -1;
	e.data.ptr = &s->sig;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sig.fd, &e) < 0)
		return -1;
	e.data.ptr = &s->tick;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tick.fd, &e);
}

static int stream_run(struct stream *s)
{
	struct epoll_event events[STREAM_EVENTS];

	s->t0_ns = clock_mono_ns();
	s->t_end_ns = s->t0_ns + s->conf.duration_ms * NS_PER_MS;
	s->next_report_ns = s->t0_ns + s->conf.report_ms * NS_PER_MS;
	stream_start_due(s, s->t0_ns);
	while (!s->stop) {
		int n = epoll_wait(s->epfd, events, STREAM_EVENTS, -1);

		s->ready_ns = clock_mono_ns();
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		for (int i = 0; i < n && !s->stop; i++)
			stream_dispatch(s, &events[i]);
	}
	return 0;
}

/* ------------------------------------------------------------ results */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..100] of n sorted values. */
static uint64_t percentile(const uint64_t *v, size_t n, unsigned q)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (n * q + 99) / 100;
	return v[rank ? rank - 1 : 0];
}

/* Adds the silence since the last receipt to each open connection's stall,
 * and closes each timeline. */
static void stream_finish_stalls(struct stream *s, uint64_t now)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct stream_conn *c = &s->conns[i];

		drill_tl_finish(&c->tl, now, c->state == STREAM_OPEN);
		if (c->state != STREAM_OPEN || !c->t_first_rx_ns)
			continue;
		if (now - c->t_last_rx_ns > c->max_stall_ns) {
			c->max_stall_ns = now - c->t_last_rx_ns;
			c->max_stall_at_ns = c->t_last_rx_ns;
		}
		note_event_gaps(&s->conf, c, c->t_last_rx_ns, now);
	}
}

/* Is an open connection silent for too long (or never heard from)? */
static int stream_conn_stuck(const struct stream *s, const struct stream_conn *c, uint64_t now)
{
	if (!c->bulk && s->conf.rate == 0)
		return 0;
	return c->t_first_rx_ns == 0 || now - c->t_last_rx_ns > s->conf.stuck_ms * NS_PER_MS;
}

static void stream_count(const struct stream *s, const struct stream_conn *c, uint64_t now,
			 struct stream_summary *sum)
{
	sum->n++;
	sum->rx += c->rx;
	sum->tx += c->tx;
	sum->connected += c->t_open_ns != 0;
	if (c->t_open_ns == 0) {
		sum->never++;
		return;
	}
	switch (c->state == STREAM_OPEN ? STREAM_END_NONE : c->end) {
	case STREAM_END_NONE:
		if (stream_conn_stuck(s, c, now))
			sum->stuck++;
		else
			sum->survived++;
		break;
	case STREAM_END_DONE: sum->done++; sum->survived++; break;
	case STREAM_END_RESET: sum->reset++; break;
	case STREAM_END_EOF: sum->eof++; break;
	case STREAM_END_CORRUPT: sum->corrupt++; break;
	default: sum->errors++; break;
	}
}

/* The summary of one kind of stream: echo (bulk 0) or downloads (bulk 1). */
static int stream_summarize(const struct stream *s, uint64_t now, int bulk,
			    struct stream_summary *sum)
{
	uint64_t *stalls = calloc(s->n ? s->n : 1, sizeof(*stalls));
	size_t n = 0;

	if (!stalls)
		return -1;
	memset(sum, 0, sizeof(*sum));
	sum->elapsed_s = (double)(now - s->t0_ns) / 1e9;
	for (uint32_t i = 0; i < s->n; i++) {
		const struct stream_conn *c = &s->conns[i];

		if (c->bulk != bulk)
			continue;
		stream_count(s, c, now, sum);
		if (c->t_first_rx_ns)
			stalls[n++] = c->max_stall_ns;
		if (c->max_stall_ns > sum->max_stall_ns || sum->n == 1) {
			sum->max_stall_ns = c->max_stall_ns;
			sum->max_stall_conn = i;
		}
	}
	qsort(stalls, n, sizeof(*stalls), cmp_u64);
	sum->p50_ns = percentile(stalls, n, 50);
	sum->p99_ns = percentile(stalls, n, 99);
	free(stalls);
	return 0;
}

static const char *stream_end_str(const struct stream_conn *c)
{
	static const char *const names[] = {
		[STREAM_END_NONE] = "open", [STREAM_END_CONNECT] = "never connected",
		[STREAM_END_RESET] = "reset", [STREAM_END_EOF] = "early EOF",
		[STREAM_END_CORRUPT] = "corrupt", [STREAM_END_ERROR] = "error",
		[STREAM_END_DONE] = "complete",
	};

	if (c->state == STREAM_IDLE || c->state == STREAM_CONNECTING)
		return "never connected";
	return c->state == STREAM_OPEN ? "silent" : names[c->end];
}

static int stream_conn_ok(const struct stream *s, const struct stream_conn *c, uint64_t now)
{
	if (c->state == STREAM_OPEN)
		return !stream_conn_stuck(s, c, now);
	return c->state == STREAM_CLOSED && c->end == STREAM_END_DONE;
}

/* One line for each of the first few connections that did not survive. */
static void stream_print_failures(const struct stream *s, uint64_t now)
{
	unsigned listed = 0;

	for (uint32_t i = 0; i < s->n && listed < STREAM_LIST_FAILURES; i++) {
		const struct stream_conn *c = &s->conns[i];

		if (stream_conn_ok(s, c, now))
			continue;
		printf("  %s %u (port %u): %s%s%s, rx %llu, tx %llu", c->bulk ? "download" : "conn",
		       i, c->lport, stream_end_str(c), c->err ? ": " : "",
		       c->err ? strerror(c->err) : "", (unsigned long long)c->rx,
		       (unsigned long long)c->tx);
		if (c->end == STREAM_END_CORRUPT)
			printf(", first wrong byte at offset %llu", (unsigned long long)c->corrupt_at);
		printf("\n");
		listed++;
	}
}

static int event_ok(const struct stream_event *ev)
{
	return ev->done && WIFEXITED(ev->status) && WEXITSTATUS(ev->status) == 0;
}

/*
 * What one failover did to one kind of stream: how many stalled (a silence
 * longer than three pacing ticks is a stall, not pacing), the longest, and
 * when traffic came back: the earliest end of a stall that began after the
 * command started (0: none did).
 */
struct event_view {
	uint32_t stalled;
	uint64_t longest_ns, back_ns;
};

static void event_stalls(const struct stream *s, size_t e, int bulk, struct event_view *v)
{
	uint64_t start = s->conf.events[e].t_start_ns;

	memset(v, 0, sizeof(*v));
	for (uint32_t i = 0; i < s->n; i++) {
		const struct stream_conn *c = &s->conns[i];
		uint64_t gap = c->event_gap_ns[e], end = c->event_gap_from_ns[e] + gap;

		if (c->bulk != bulk || gap <= 3 * (uint64_t)s->conf.tick_ms * NS_PER_MS)
			continue;
		v->stalled++;
		if (gap > v->longest_ns)
			v->longest_ns = gap;
		if (end > start && (!v->back_ns || end < v->back_ns))
			v->back_ns = end;
	}
}

/* The window of marks that belong to event e: until the next one starts. */
static uint64_t event_window_end(const struct stream *s, size_t e)
{
	for (size_t i = 0; i < s->conf.nevents; i++) {
		const struct stream_event *ev = &s->conf.events[i];

		if (i != e && ev->t_start_ns > s->conf.events[e].t_start_ns)
			return ev->t_start_ns;	/* events start in the order given... */
	}
	return UINT64_MAX;			/* ...or not at all */
}

/* ms from event e's start to the first mark named name after it; -1: none. */
static long long event_mark_us(const struct stream *s, size_t e, const char *name)
{
	uint64_t start = s->conf.events[e].t_start_ns;
	const struct drill_mark *m;

	if (!start)
		return -1;
	m = drill_marks_first(&s->marks, name, start, event_window_end(s, e));
	return m ? (long long)((m->t_ns - start) / 1000) : -1;	/* in us */
}

/* lbd's share of failover e, in us: role change after the VIP arrived
 * (0 when the role came first); -1 when either moment is unknown. */
static long long event_lbd_delay_us(const struct stream *s, size_t e)
{
	long long vip = event_mark_us(s, e, "vip"), role = event_mark_us(s, e, "role");

	if (vip < 0 || role < 0)
		return -1;
	return role > vip ? role - vip : 0;
}

static void print_us(const char *label, long long us)
{
	if (us >= 0)
		printf(" %s +%.1f ms", label, (double)us / 1000);
}

/* After each failover's row: the moments the watches saw, relative to it. */
static void stream_print_event_marks(const struct stream *s, size_t e,
				     const struct event_view *echo, const struct event_view *bulk)
{
	uint64_t start = s->conf.events[e].t_start_ns, back = echo->back_ns;

	if (bulk->back_ns && (!back || bulk->back_ns < back))
		back = bulk->back_ns;
	printf("  %10s", "");
	for (size_t w = 0; w < s->conf.nwatches; w++)
		print_us(s->conf.watches[w].name, event_mark_us(s, e, s->conf.watches[w].name));
	if (back)
		print_us("traffic back", (long long)((back - start) / 1000));
	if (event_lbd_delay_us(s, e) >= 0)
		printf(";");
	print_us("lbd's added delay (role - vip)", event_lbd_delay_us(s, e));
	printf("\n");
}

static void stream_print_events(const struct stream *s)
{
	printf("\n  %-8s %-9s %-6s %-9s %-9s %-9s %s\n", "at", "took", "exit", "stalled",
	       "echo", "bulk", "failover command (stall: longest of each kind)");
	for (size_t i = 0; i < s->conf.nevents; i++) {
		const struct stream_event *ev = &s->conf.events[i];
		struct event_view echo, bulk;

		event_stalls(s, i, 0, &echo);
		event_stalls(s, i, 1, &bulk);
		char e_ms[24] = "-", b_ms[24] = "-";

		if (s->conf.conns)
			snprintf(e_ms, sizeof(e_ms), "%llu ms",
				 (unsigned long long)(echo.longest_ns / NS_PER_MS));
		if (s->conf.downloads)
			snprintf(b_ms, sizeof(b_ms), "%llu ms",
				 (unsigned long long)(bulk.longest_ns / NS_PER_MS));
		printf("  %6.1fs %6llu ms %-6d %-9u %9s %9s %s\n",
		       (double)(ev->t_start_ns - s->t0_ns) / 1e9,
		       (unsigned long long)((ev->t_end_ns - ev->t_start_ns) / NS_PER_MS),
		       WIFEXITED(ev->status) ? WEXITSTATUS(ev->status) : -1,
		       echo.stalled + bulk.stalled, e_ms, b_ms, ev->cmd);
		if (ev->t_start_ns && (s->conf.nwatches || echo.back_ns || bulk.back_ns))
			stream_print_event_marks(s, i, &echo, &bulk);
	}
}

static void json_us_ms(FILE *f, const char *key, long long us)
{
	if (us >= 0)
		fprintf(f, ",\"%s\":%.3f", key, (double)us / 1000);
	else
		fprintf(f, ",\"%s\":null", key);
}

static void stream_json_event(const struct stream *s, size_t i, FILE *f)
{
	const struct stream_event *ev = &s->conf.events[i];
	struct event_view echo, bulk;
	uint64_t start = ev->t_start_ns;

	event_stalls(s, i, 0, &echo);
	event_stalls(s, i, 1, &bulk);
	fprintf(f, "{\"at_s\":%.3f,\"end_s\":%.3f,\"took_ms\":%llu,\"exit\":%d,\"stalled\":%u,"
		   "\"longest_stall_ms\":%llu,\"stalled_bulk\":%u,\"longest_stall_bulk_ms\":%llu",
		(double)(ev->t_start_ns - s->t0_ns) / 1e9, (double)(ev->t_end_ns - s->t0_ns) / 1e9,
		(unsigned long long)((ev->t_end_ns - ev->t_start_ns) / NS_PER_MS),
		WIFEXITED(ev->status) ? WEXITSTATUS(ev->status) : -1, echo.stalled,
		(unsigned long long)(echo.longest_ns / NS_PER_MS), bulk.stalled,
		(unsigned long long)(bulk.longest_ns / NS_PER_MS));
	json_us_ms(f, "echo_back_ms", echo.back_ns ? (long long)(echo.back_ns - start) / 1000 : -1);
	json_us_ms(f, "bulk_back_ms", bulk.back_ns ? (long long)(bulk.back_ns - start) / 1000 : -1);
	fprintf(f, ",\"marks_ms\":{");
	for (size_t w = 0; w < s->conf.nwatches; w++) {
		long long us = event_mark_us(s, i, s->conf.watches[w].name);

		fprintf(f, "%s\"%s\":", w ? "," : "", s->conf.watches[w].name);
		if (us >= 0)
			fprintf(f, "%.3f", (double)us / 1000);
		else
			fprintf(f, "null");
	}
	fprintf(f, "}");
	json_us_ms(f, "lbd_delay_ms", event_lbd_delay_us(s, i));
	fprintf(f, ",\"command\":");
	drill_json_str(f, ev->cmd);
	fprintf(f, "}");
}

static void stream_json_events(const struct stream *s, FILE *f)
{
	fprintf(f, ",\"events\":[");
	for (size_t i = 0; i < s->conf.nevents; i++) {
		fprintf(f, "%s", i ? "," : "");
		stream_json_event(s, i, f);
	}
	fprintf(f, "]");
}

static int stream_passed(const struct stream *s, const struct stream_summary *echo,
			 const struct stream_summary *bulk)
{
	for (size_t i = 0; i < s->conf.nevents; i++)
		if (!event_ok(&s->conf.events[i]))
			return 0;
	return echo->connected == echo->n && echo->survived == echo->n &&
	       bulk->connected == bulk->n && bulk->survived == bulk->n;
}

static void stream_print_losses(const struct stream_summary *m)
{
	printf("  reset            %u\n  corrupt          %u\n  early eof        %u\n",
	       m->reset, m->corrupt, m->eof);
}

static void stream_print_echo(const struct stream *s, const struct stream_summary *m)
{
	const struct stream_conn *w = &s->conns[m->max_stall_conn];

	printf("  connected        %u/%u\n  survived         %u\n", m->connected, m->n,
	       m->survived);
	stream_print_losses(m);
	printf("  stuck            %u (open, silent > %.1f s at the end)\n  errors           %u\n"
	       "  never connected  %u\n", m->stuck, (double)s->conf.stuck_ms / 1000, m->errors,
	       m->never);
	printf("  longest stall    %llu ms (conn %u, port %u)\n",
	       (unsigned long long)(m->max_stall_ns / NS_PER_MS), m->max_stall_conn, w->lport);
	printf("  stall p50 / p99  %llu / %llu ms (of each connection's longest)\n",
	       (unsigned long long)(m->p50_ns / NS_PER_MS),
	       (unsigned long long)(m->p99_ns / NS_PER_MS));
	printf("  bytes            rx %llu, tx %llu\n", (unsigned long long)m->rx,
	       (unsigned long long)m->tx);
}

static void stream_print_bulk(const struct stream *s, const struct stream_summary *m)
{
	const struct stream_conn *w = &s->conns[m->max_stall_conn];

	printf("  downloads        %u of %u KiB at %u B/s; connected %u/%u\n", m->n,
	       s->conf.download_kib, s->conf.download_rate, m->connected, m->n);
	printf("  complete         %u (every byte verified, exact size, then the server's FIN)\n"
	       "  still running    %u\n", m->done, m->survived - m->done);
	stream_print_losses(m);
	printf("  stuck            %u\n  errors           %u\n  never connected  %u\n",
	       m->stuck, m->errors, m->never);
	printf("  longest stall    %llu ms (download %u, port %u); p50 / p99 %llu / %llu ms\n",
	       (unsigned long long)(m->max_stall_ns / NS_PER_MS), m->max_stall_conn, w->lport,
	       (unsigned long long)(m->p50_ns / NS_PER_MS),
	       (unsigned long long)(m->p99_ns / NS_PER_MS));
	printf("  bytes            rx %llu\n", (unsigned long long)m->rx);
}

static void stream_print(const struct stream *s, const struct stream_summary *echo,
			 const struct stream_summary *bulk, uint64_t now)
{
	char target[DRILL_ADDR_STRLEN];

	drill_addr_format(&s->conf.target.ss, target);
	printf("lbdrill %s: %s, %u conns, %.1f s%s, %u B/s each way\n", s->conf.name, target,
	       s->conf.conns, echo->elapsed_s, s->interrupted ? " (interrupted)" : "",
	       s->conf.rate);
	if (echo->n)
		stream_print_echo(s, echo);
	if (bulk->n)
		stream_print_bulk(s, bulk);
	stream_print_failures(s, now);
	if (s->conf.nevents)
		stream_print_events(s);
	printf("result: %s\n", stream_passed(s, echo, bulk) ? "PASS" : "FAIL");
}

static void stream_json_counts(FILE *f, const struct stream_summary *m)
{
	fprintf(f, "\"connected\":%u,\"survived\":%u,\"reset\":%u,\"corrupt\":%u,"
		"\"eof\":%u,\"stuck\":%u,\"errors\":%u,\"never_connected\":%u,",
		m->connected, m->survived, m->reset, m->corrupt, m->eof, m->stuck,
		m->errors, m->never);
	fprintf(f, "\"max_stall_ms\":%llu,\"max_stall_conn\":%u,\"p50_stall_ms\":%llu,"
		"\"p99_stall_ms\":%llu,\"bytes_rx\":%llu",
		(unsigned long long)(m->max_stall_ns / NS_PER_MS), m->max_stall_conn,
		(unsigned long long)(m->p50_ns / NS_PER_MS),
		(unsigned long long)(m->p99_ns / NS_PER_MS), (unsigned long long)m->rx);
}

/* Every stream's progress, its longest stall and its stall across each
 * failover (drawn by drill/plot_timeline.py). */
static void stream_json_timeline(const struct stream *s, FILE *f)
{
	fprintf(f, ",\"timeline\":{\"resolution_ms\":%llu,\"streams\":[",
		(unsigned long long)s->conf.timeline_ms);
	for (uint32_t i = 0; i < s->n; i++) {
		const struct stream_conn *c = &s->conns[i];

		fprintf(f, "%s{\"i\":%u,\"kind\":\"%s\",\"port\":%u,\"end\":\"%s\","
			   "\"stall_ms\":%.3f,\"stall_from_s\":%.4f,\"event_stalls\":[",
			i ? "," : "", i, c->bulk ? "bulk" : "echo", c->lport, stream_end_str(c),
			(double)c->max_stall_ns / 1e6,
			c->max_stall_at_ns ? (double)(c->max_stall_at_ns - s->t0_ns) / 1e9 : 0.0);
		for (size_t e = 0; e < s->conf.nevents; e++)
			fprintf(f, "%s{\"from_s\":%.4f,\"ms\":%.3f}", e ? "," : "",
				c->event_gap_from_ns[e] ? (double)(c->event_gap_from_ns[e] -
								   s->t0_ns) / 1e9 : 0.0,
				(double)c->event_gap_ns[e] / 1e6);
		fprintf(f, "],");
		drill_tl_json(&c->tl, f, s->t0_ns);
		fprintf(f, "}");
	}
	fprintf(f, "]}");
}

static int stream_write_json(const struct stream *s, const struct stream_summary *echo,
			     const struct stream_summary *bulk)
{
	FILE *f = fopen(s->conf.json, "w");
	int rc;

	if (!f)
		goto err;
	/* The echo streams' figures at the top level, as before downloads. */
	fprintf(f, "{\"conns\":%u,", echo->n);
	stream_json_counts(f, echo);
	fprintf(f, ",\"bytes_tx\":%llu,\"elapsed_s\":%.3f,\"interrupted\":%s,\"passed\":%s",
		(unsigned long long)echo->tx, echo->elapsed_s, s->interrupted ? "true" : "false",
		stream_passed(s, echo, bulk) ? "true" : "false");
	fprintf(f, ",\"downloads\":{\"n\":%u,\"size_kib\":%u,\"rate\":%u,\"complete\":%u,",
		bulk->n, s->conf.download_kib, s->conf.download_rate, bulk->done);
	stream_json_counts(f, bulk);
	fprintf(f, "}");
	if (s->conf.nevents)
		stream_json_events(s, f);
	fprintf(f, ",");
	drill_marks_json(&s->marks, f, s->t0_ns);
	if (s->conf.timeline_ms)
		stream_json_timeline(s, f);
	fprintf(f, "}\n");
	rc = fclose(f);
	if (rc == 0)
		return 0;
err:
	fprintf(stderr, "lbdrill stream: cannot write %s: %s\n", s->conf.json, strerror(errno));
	return -1;
}

static void stream_close(struct stream *s)
{
	for (size_t i = 0; i < s->conf.nwatches; i++)
		drill_watch_stop(&s->conf.watches[i]);
	if (s->conns)
		for (uint32_t i = 0; i < s->n; i++) {
			if (s->conns[i].ev.fd >= 0)
				close(s->conns[i].ev.fd);
			drill_tl_free(&s->conns[i].tl);
		}
	if (s->tick.fd >= 0)
		close(s->tick.fd);
	if (s->sig.fd >= 0)
		close(s->sig.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	drill_marks_free(&s->marks);
	free(s->conns);
}

/* Summary, JSON; returns the exit status. */
static int stream_results(struct stream *s)
{
	uint64_t now = clock_mono_ns();
	struct stream_summary echo, bulk;

	stream_events_finish(s);
	stream_finish_stalls(s, now);
	if (stream_summarize(s, now, 0, &echo) < 0 || stream_summarize(s, now, 1, &bulk) < 0) {
		fprintf(stderr, "lbdrill stream: out of memory\n");
		return 1;
	}
	stream_print(s, &echo, &bulk, now);
	fflush(stdout);
	if (s->conf.json && stream_write_json(s, &echo, &bulk) < 0)
		return 1;
	return stream_passed(s, &echo, &bulk) ? 0 : 1;
}

static int stream_command(int argc, char **argv, const char *name)
{
	struct stream *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		fprintf(stderr, "lbdrill %s: out of memory\n", name);
		return 1;
	}
	s->epfd = -1;
	s->tick.fd = s->sig.fd = -1;
	rc = stream_parse_args(argc, argv, &s->conf, name);
	if (rc != 0) {
		free(s);
		return rc > 0 ? 0 : 2;
	}
	drill_nofile_raise();
	if (stream_open(s) < 0 || stream_run(s) < 0) {
		fprintf(stderr, "lbdrill %s: %s\n", name, strerror(errno));
		stream_events_finish(s);
		rc = 1;
	} else {
		rc = stream_results(s);
	}
	stream_close(s);
	free(s);
	return rc;
}

int drill_stream_main(int argc, char **argv)
{
	return stream_command(argc, argv, "stream");
}

int drill_live_main(int argc, char **argv)
{
	return stream_command(argc, argv, "live");
}
