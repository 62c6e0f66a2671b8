/*
 * drill_stream: `lbdrill stream`, the client end of a failover drill.
 *
 *   lbdrill stream --target ADDR:PORT --conns N --duration S
 *                  [--rate BYTES_PER_S] [--source ADDR] [--json FILE]
 *                  [--connect-timeout S] [--connect-rate N] [--report-every S]
 *                  [--stuck S] [--tick MS] [--seed N]
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
#include "drill_proto.h"
#include "drill_sys.h"
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

enum stream_kind { STREAM_EV_TICK, STREAM_EV_SIGNAL, STREAM_EV_CONN };

enum stream_state { STREAM_IDLE, STREAM_CONNECTING, STREAM_OPEN, STREAM_CLOSED };

enum stream_end {
	STREAM_END_NONE,
	STREAM_END_CONNECT,	/* the connect failed or timed out */
	STREAM_END_RESET,	/* ECONNRESET / EPIPE */
	STREAM_END_EOF,		/* the server closed */
	STREAM_END_CORRUPT,	/* a received byte was wrong */
	STREAM_END_ERROR,	/* any other socket error */
};

#define STREAM_MAX_EVENTS 8

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
};

struct stream_conn {
	struct drill_ev ev;		/* first: epoll hands us &ev */
	uint32_t index;
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
};

struct stream {
	struct stream_conf conf;
	int epfd;
	struct drill_ev tick, sig;
	struct stream_conn *conns;
	uint32_t started;		/* conns[0, started) were started */
	uint64_t t0_ns, t_end_ns, next_report_ns;
	int stop, interrupted;
	uint8_t buf[DRILL_BUF];
};

struct stream_summary {
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
			"  command succeeded. Options as for lbdrill stream:\n");
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
		"  --seed N             base of the stream seeds (default: from the clock)\n");
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

static int stream_parse_opt(struct stream_conf *c, int o, const char *arg)
{
	switch (o) {
	case 'T': return drill_addr_parse(arg, 1, &c->target);
	case 'S': return drill_addr_parse(arg, 0, &c->source);
	case 'n': return stream_parse_num(arg, 1, STREAM_MAX_CONNS, &c->conns);
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
		/* --failover belongs to live; stream has no moment to act on. */
		if (o == '?' || (o == 'F' && strcmp(name, "live") != 0) ||
		    stream_parse_opt(c, o, optarg) < 0) {
			if (o != '?')
				fprintf(stderr, "lbdrill %s: bad option or value '%s'\n", name,
					optarg);
			goto bad;
		}
	}
	if (optind != argc || c->target.len == 0 || c->conns == 0 || c->duration_ms == 0)
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
	struct drill_hello h = { .rate = s->conf.rate, .seed = c->seed };
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
 * A silence [from, to] belongs to a failover when it overlaps the time from
 * the command's start to 2 s after it finished (the takeover and TCP's
 * retransmissions happen then).
 */
static void note_event_gaps(const struct stream_conf *conf, struct stream_conn *c,
			    uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < conf->nevents; i++) {
		const struct stream_event *ev = &conf->events[i];
		uint64_t end = (ev->done ? ev->t_end_ns : to) + 2000 * NS_PER_MS;

		if (!ev->t_start_ns || to < ev->t_start_ns || from > end)
			continue;
		if (to - from > c->event_gap_ns[i])
			c->event_gap_ns[i] = to - from;
	}
}

static int stream_conn_consume(const struct stream_conf *conf, struct stream_conn *c,
			       const uint8_t *p, size_t n, uint64_t now)
{
	size_t bad = drill_pattern_check(drill_server_seed(c->seed), c->rx, p, n);

	if (bad < n) {
		c->corrupt_at = c->rx + bad;
		c->rx += bad;
		stream_conn_end(c, STREAM_END_CORRUPT, 0);
		return -1;
	}
	if (c->t_first_rx_ns == 0) {
		c->t_first_rx_ns = now;
	} else {
		if (now - c->t_last_rx_ns > c->max_stall_ns) {
			c->max_stall_ns = now - c->t_last_rx_ns;
			c->max_stall_at_ns = c->t_last_rx_ns;
		}
		note_event_gaps(conf, c, c->t_last_rx_ns, now);
	}
	c->t_last_rx_ns = now;
	c->rx += n;
	return 0;
}

static void stream_conn_readable(struct stream *s, struct stream_conn *c)
{
	uint64_t now = clock_mono_ns();

	for (int i = 0; i < STREAM_READS_PER_EVENT; i++) {
		ssize_t n = recv(c->ev.fd, s->buf, sizeof(s->buf), 0);

		if (n > 0) {
			if (stream_conn_consume(&s->conf, c, s->buf, (size_t)n, now) < 0)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == 0)
			stream_conn_end(c, STREAM_END_EOF, 0);
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
		"max stall %llu ms\n", (double)(now - s->t0_ns) / 1e9, open, s->conf.conns,
		closed, (unsigned long long)rx, (unsigned long long)tx,
		(unsigned long long)(stall / NS_PER_MS));
}

/* Starts the connections the connect pace allows by now. */
static void stream_start_due(struct stream *s, uint64_t now)
{
	uint64_t due = s->conf.conns;

	if (s->conf.connect_rate)
		due = 1 + (now - s->t0_ns) / NS_PER_MS * s->conf.connect_rate / 1000;
	if (due > s->conf.conns)
		due = s->conf.conns;
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

		if (c->state == STREAM_OPEN)
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
	s->conns = calloc(s->conf.conns, sizeof(*s->conns));
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->conns || s->epfd < 0)
		return -1;
	for (uint32_t i = 0; i < s->conf.conns; i++) {
		s->conns[i].ev.kind = STREAM_EV_CONN;
		s->conns[i].ev.fd = -1;
		s->conns[i].index = i;
		s->conns[i].seed = drill_mix64(s->conf.seed + i);
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

/* Adds the silence since the last receipt to each open connection's stall. */
static void stream_finish_stalls(struct stream *s, uint64_t now)
{
	for (uint32_t i = 0; i < s->conf.conns; i++) {
		struct stream_conn *c = &s->conns[i];

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
	if (s->conf.rate == 0)
		return 0;
	return c->t_first_rx_ns == 0 || now - c->t_last_rx_ns > s->conf.stuck_ms * NS_PER_MS;
}

static void stream_count(const struct stream *s, const struct stream_conn *c, uint64_t now,
			 struct stream_summary *sum)
{
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
	case STREAM_END_RESET: sum->reset++; break;
	case STREAM_END_EOF: sum->eof++; break;
	case STREAM_END_CORRUPT: sum->corrupt++; break;
	default: sum->errors++; break;
	}
}

static int stream_summarize(const struct stream *s, uint64_t now, struct stream_summary *sum)
{
	uint64_t *stalls = calloc(s->conf.conns, sizeof(*stalls));
	size_t n = 0;

	if (!stalls)
		return -1;
	memset(sum, 0, sizeof(*sum));
	sum->elapsed_s = (double)(now - s->t0_ns) / 1e9;
	for (uint32_t i = 0; i < s->conf.conns; i++) {
		const struct stream_conn *c = &s->conns[i];

		stream_count(s, c, now, sum);
		if (c->t_first_rx_ns)
			stalls[n++] = c->max_stall_ns;
		if (c->max_stall_ns > sum->max_stall_ns) {
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
	};

	if (c->state == STREAM_IDLE || c->state == STREAM_CONNECTING)
		return "never connected";
	return c->state == STREAM_OPEN ? "silent" : names[c->end];
}

/* One line for each of the first few connections that did not survive. */
static void stream_print_failures(const struct stream *s, uint64_t now)
{
	unsigned listed = 0;

	for (uint32_t i = 0; i < s->conf.conns && listed < STREAM_LIST_FAILURES; i++) {
		const struct stream_conn *c = &s->conns[i];

		if (c->state == STREAM_OPEN && !stream_conn_stuck(s, c, now))
			continue;
		printf("  conn %u (port %u): %s%s%s, rx %llu, tx %llu", i, c->lport,
		       stream_end_str(c), c->err ? ": " : "", c->err ? strerror(c->err) : "",
		       (unsigned long long)c->rx, (unsigned long long)c->tx);
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

/* A silence longer than three pacing ticks is a stall, not pacing. */
static void event_stalls(const struct stream *s, size_t e, uint32_t *count, uint64_t *longest)
{
	*count = 0;
	*longest = 0;
	for (uint32_t i = 0; i < s->conf.conns; i++) {
		uint64_t gap = s->conns[i].event_gap_ns[e];

		if (gap > 3 * (uint64_t)s->conf.tick_ms * NS_PER_MS)
			(*count)++;
		if (gap > *longest)
			*longest = gap;
	}
}

static void stream_print_events(const struct stream *s)
{
	printf("\n  %-8s %-9s %-6s %-9s %-9s %s\n", "at", "took", "exit", "stalled",
	       "longest", "failover command");
	for (size_t i = 0; i < s->conf.nevents; i++) {
		const struct stream_event *ev = &s->conf.events[i];
		uint32_t n;
		uint64_t longest;

		event_stalls(s, i, &n, &longest);
		printf("  %6.1fs %6llu ms %-6d %-9u %6llu ms %s\n",
		       (double)(ev->t_start_ns - s->t0_ns) / 1e9,
		       (unsigned long long)((ev->t_end_ns - ev->t_start_ns) / NS_PER_MS),
		       WIFEXITED(ev->status) ? WEXITSTATUS(ev->status) : -1, n,
		       (unsigned long long)(longest / NS_PER_MS), ev->cmd);
	}
}

static void stream_json_events(const struct stream *s, FILE *f)
{
	fprintf(f, ",\"events\":[");
	for (size_t i = 0; i < s->conf.nevents; i++) {
		const struct stream_event *ev = &s->conf.events[i];
		uint32_t n;
		uint64_t longest;

		event_stalls(s, i, &n, &longest);
		fprintf(f, "%s{\"at_s\":%.3f,\"took_ms\":%llu,\"exit\":%d,\"stalled\":%u,"
			   "\"longest_stall_ms\":%llu,\"command\":\"",
			i ? "," : "", (double)(ev->t_start_ns - s->t0_ns) / 1e9,
			(unsigned long long)((ev->t_end_ns - ev->t_start_ns) / NS_PER_MS),
			WIFEXITED(ev->status) ? WEXITSTATUS(ev->status) : -1, n,
			(unsigned long long)(longest / NS_PER_MS));
		for (const char *p = ev->cmd; *p; p++)	/* JSON string escaping */
			fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : (unsigned char)*p < 0x20
				? "\\u%04x" : "%c", *p);
		fprintf(f, "\"}");
	}
	fprintf(f, "]");
}

static int stream_passed(const struct stream *s, const struct stream_summary *sum)
{
	for (size_t i = 0; i < s->conf.nevents; i++)
		if (!event_ok(&s->conf.events[i]))
			return 0;
	return sum->connected == s->conf.conns && sum->survived == s->conf.conns;
}

static void stream_print(const struct stream *s, const struct stream_summary *m, uint64_t now)
{
	char target[DRILL_ADDR_STRLEN];
	const struct stream_conn *w = &s->conns[m->max_stall_conn];

	drill_addr_format(&s->conf.target.ss, target);
	printf("lbdrill %s: %s, %u conns, %.1f s%s, %u B/s each way\n", s->conf.name, target,
	       s->conf.conns,
	       m->elapsed_s, s->interrupted ? " (interrupted)" : "", s->conf.rate);
	printf("  connected        %u/%u\n  survived         %u\n", m->connected, s->conf.conns,
	       m->survived);
	printf("  reset            %u\n  corrupt          %u\n  early eof        %u\n",
	       m->reset, m->corrupt, m->eof);
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
	stream_print_failures(s, now);
	if (s->conf.nevents)
		stream_print_events(s);
	printf("result: %s\n", stream_passed(s, m) ? "PASS" : "FAIL");
}

static int stream_write_json(const struct stream *s, const struct stream_summary *m)
{
	FILE *f = fopen(s->conf.json, "w");
	int rc;

	if (!f)
		goto err;
	fprintf(f, "{\"conns\":%u,\"connected\":%u,\"survived\":%u,\"reset\":%u,\"corrupt\":%u,"
		"\"eof\":%u,\"stuck\":%u,\"errors\":%u,\"never_connected\":%u,",
		s->conf.conns, m->connected, m->survived, m->reset, m->corrupt, m->eof, m->stuck,
		m->errors, m->never);
	fprintf(f, "\"max_stall_ms\":%llu,\"max_stall_conn\":%u,\"p50_stall_ms\":%llu,"
		"\"p99_stall_ms\":%llu,\"bytes_rx\":%llu,\"bytes_tx\":%llu,\"elapsed_s\":%.3f,"
		"\"interrupted\":%s,\"passed\":%s",
		(unsigned long long)(m->max_stall_ns / NS_PER_MS), m->max_stall_conn,
		(unsigned long long)(m->p50_ns / NS_PER_MS),
		(unsigned long long)(m->p99_ns / NS_PER_MS), (unsigned long long)m->rx,
		(unsigned long long)m->tx, m->elapsed_s, s->interrupted ? "true" : "false",
		stream_passed(s, m) ? "true" : "false");
	if (s->conf.nevents)
		stream_json_events(s, f);
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
	if (s->conns)
		for (uint32_t i = 0; i < s->conf.conns; i++)
			if (s->conns[i].ev.fd >= 0)
				close(s->conns[i].ev.fd);
	if (s->tick.fd >= 0)
		close(s->tick.fd);
	if (s->sig.fd >= 0)
		close(s->sig.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s->conns);
}

/* Summary, JSON; returns the exit status. */
static int stream_results(struct stream *s)
{
	uint64_t now = clock_mono_ns();
	struct stream_summary sum;

	stream_events_finish(s);
	stream_finish_stalls(s, now);
	if (stream_summarize(s, now, &sum) < 0) {
		fprintf(stderr, "lbdrill stream: out of memory\n");
		return 1;
	}
	stream_print(s, &sum, now);
	fflush(stdout);
	if (s->conf.json && stream_write_json(s, &sum) < 0)
		return 1;
	return stream_passed(s, &sum) ? 0 : 1;
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
