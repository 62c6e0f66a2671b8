/*
 * drill_serve: `lbdrill serve`, the backend end of drill streams.
 *
 *   lbdrill serve --listen ADDR:PORT [--listen ADDR:PORT ...]
 *                 [--tick MS] [--report-every S] [--verbose]
 *
 * One thread, one epoll set, non-blocking sockets, any number of
 * connections. Per connection: read the hello (drill/drill_proto.h), then verify
 * every byte of the client's stream and send the server's stream at the
 * rate the hello asked for (a download: only its limit, then FIN). A wrong hello or a wrong byte is logged and the
 * connection reset (SO_LINGER 0), so the client sees it.
 *
 * Pacing: one periodic timer; on each tick every streaming connection may
 * send rate * (time since its hello) minus what it has sent. Every
 * connection is due on every tick, so a scan of the list is the cheapest
 * schedule (a timer heap would hold N entries all due at once). A socket
 * whose buffer is full simply sends its backlog on a later tick.
 *
 * Connections closed while an epoll batch is being handled are unlinked at
 * once but freed only after the batch, because a later event of the same
 * batch may still point at them.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "drill.h"
#include "drill_proto.h"
#include "drill_sys.h"
#include "log.h"

#define SERVE_MAX_LISTEN	16
#define SERVE_BACKLOG		4096
#define SERVE_READS_PER_EVENT	16	/* then let other sockets run */
#define SERVE_EVENTS		256

enum serve_kind { SERVE_EV_LISTEN, SERVE_EV_TICK, SERVE_EV_SIGNAL, SERVE_EV_CONN };

struct serve_conf {
	struct drill_addr listen[SERVE_MAX_LISTEN];
	size_t n_listen;
	uint32_t tick_ms;
	uint64_t report_ms;	/* 0: no periodic report */
	int verbose;
};

struct serve_conn {
	struct drill_ev ev;		/* first: epoll hands us &ev */
	struct serve_conn *prev, *next;	/* the live list, or the graveyard */
	struct drill_hello hello;
	uint8_t hello_buf[DRILL_HELLO_LEN];
	size_t hello_len;
	int streaming;			/* the hello arrived and was valid */
	int fin_sent;			/* a download's last byte went out, then FIN */
	uint64_t rx, tx;		/* stream offsets (after the hello) */
	uint64_t t_stream_ns;		/* when the hello arrived */
	char peer[DRILL_ADDR_STRLEN];
};

struct serve_stats {
	uint64_t accepted, active, peak, bad_hello, corrupt, closed;
	uint64_t aborted;		/* reset (clients that stop mid-stream do) or an error */
	uint64_t rx, tx;		/* bytes of closed connections */
};

struct serve {
	struct serve_conf conf;
	int epfd;
	struct drill_ev listen[SERVE_MAX_LISTEN];
	struct drill_ev tick, sig;
	int accept_paused;		/* out of fds: listening sockets muted */
	struct serve_conn live;		/* sentinel of the live list */
	struct serve_conn *graveyard;
	struct serve_stats stats;
	uint64_t next_report_ns;
	int stop;
	uint8_t buf[DRILL_BUF];
};

enum serve_close_how { SERVE_CLOSE_FIN, SERVE_CLOSE_RESET };

/* ------------------------------------------------------------ arguments */

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: lbdrill serve --listen ADDR:PORT [--listen ADDR:PORT ...]\n"
		   "                     [--tick MS] [--report-every S] [--verbose]\n"
		   "  --listen ADDR:PORT  e.g. 0.0.0.0:9000, [::]:9000 (up to %d)\n"
		   "  --tick MS           pacing period of the sent streams (default 50)\n"
		   "  --report-every S    log connection counts every S seconds\n"
		   "  --verbose           log every connection\n", SERVE_MAX_LISTEN);
}

static int serve_parse_opt(struct serve_conf *conf, int o, const char *arg)
{
	uint64_t v;

	switch (o) {
	case 'l':
		if (conf->n_listen >= SERVE_MAX_LISTEN ||
		    drill_addr_parse(arg, 1, &conf->listen[conf->n_listen]) < 0)
			return -1;
		conf->n_listen++;
		return 0;
	case 't':
		if (drill_arg_u64(arg, 1, 1000, &v) < 0)
			return -1;
		conf->tick_ms = (uint32_t)v;
		return 0;
	case 'r':
		return drill_arg_ms(arg, 100, 86400000, &conf->report_ms);
	case 'v':
		conf->verbose = 1;
		return 0;
	}
	return -1;
}

/* Returns 0 to run, 1 after --help, -1 on a bad argument (usage printed). */
static int serve_parse_args(int argc, char **argv, struct serve_conf *conf)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tick", required_argument, NULL, 't' },
		{ "report-every", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	memset(conf, 0, sizeof(*conf));
	conf->tick_ms = 50;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'h') {
			serve_usage(stdout);
			return 1;
		}
		if (o == '?' || serve_parse_opt(conf, o, optarg) < 0) {
			if (o != '?')
				fprintf(stderr, "lbdrill serve: bad value '%s'\n", optarg);
			serve_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || conf->n_listen == 0) {
		serve_usage(stderr);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ set-up */

static int serve_watch(struct serve *s, struct drill_ev *ev, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, ev->fd, &e);
}

static int serve_listen_open(struct serve *s, size_t i)
{
	const struct drill_addr *a = &s->conf.listen[i];
	char name[DRILL_ADDR_STRLEN];
	int fd, one = 1;

	drill_addr_format(&a->ss, name);
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	s->listen[i].kind = SERVE_EV_LISTEN;
	s->listen[i].fd = fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] must not claim v4 too, or 0.0.0.0 on the same port fails. */
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto err;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(fd, SERVE_BACKLOG) < 0 || serve_watch(s, &s->listen[i], EPOLLIN) < 0)
		goto err;
	log_info("listening on %s", name);
	return 0;
err:
	log_err("cannot listen on %s: %s", name, strerror(errno));
	return -1;
}

static int serve_open(struct serve *s)
{
	for (size_t i = 0; i < SERVE_MAX_LISTEN; i++)
		s->listen[i].fd = -1;
	s->tick.fd = s->sig.fd = -1;
	s->live.next = s->live.prev = &s->live;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -1;
	s->sig.kind = SERVE_EV_SIGNAL;
	s->sig.fd = drill_signals_open();
	s->tick.kind = SERVE_EV_TICK;
	s->tick.fd = drill_ticker_open(s->conf.tick_ms);
	if (s->sig.fd < 0 || s->tick.fd < 0 || serve_watch(s, &s->sig, EPOLLIN) < 0 ||
	    serve_watch(s, &s->tick, EPOLLIN) < 0) {
		log_err("cannot set up timers and signals: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->conf.n_listen; i++)
		if (serve_listen_open(s, i) < 0)
			return -1;
	s->next_report_ns = clock_mono_ns() + s->conf.report_ms * 1000000ull;
	return 0;
}

/* ------------------------------------------------------------ connections */

static void serve_conn_close(struct serve *s, struct serve_conn *c, enum serve_close_how how)
{
	if (how == SERVE_CLOSE_RESET)
		drill_socket_reset(c->ev.fd);
	else
		close(c->ev.fd);	/* also leaves the epoll set */
	c->ev.fd = -1;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->next = s->graveyard;
	s->graveyard = c;
	s->stats.active--;
	s->stats.closed++;
	s->stats.rx += c->rx;
	s->stats.tx += c->tx;
	if (s->conf.verbose)
		log_info("%s: closed%s after rx %llu tx %llu", c->peer,
			 how == SERVE_CLOSE_RESET ? " with a reset" : "",
			 (unsigned long long)c->rx, (unsigned long long)c->tx);
}

static void serve_reap(struct serve *s)
{
	while (s->graveyard) {
		struct serve_conn *c = s->graveyard;

		s->graveyard = c->next;
		free(c);
	}
}

static void serve_conn_add(struct serve *s, int fd, const struct sockaddr_storage *peer)
{
	struct serve_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		log_warn("out of memory: refusing a connection");
		drill_socket_reset(fd);
		return;
	}
	c->ev.kind = SERVE_EV_CONN;
	c->ev.fd = fd;
	drill_addr_format(peer, c->peer);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (serve_watch(s, &c->ev, EPOLLIN | EPOLLRDHUP) < 0) {
		log_warn("%s: epoll: %s", c->peer, strerror(errno));
		drill_socket_reset(fd);
		free(c);
		return;
	}
	c->next = s->live.next;
	c->prev = &s->live;
	s->live.next->prev = c;
	s->live.next = c;
	s->stats.accepted++;
	if (++s->stats.active > s->stats.peak)
		s->stats.peak = s->stats.active;
	if (s->conf.verbose)
		log_info("%s: connected", c->peer);
}

static void serve_accept_pause(struct serve *s, int pause)
{
	for (size_t i = 0; i < s->conf.n_listen; i++) {
		struct epoll_event e = { .events = pause ? 0 : EPOLLIN, .data.ptr = &s->listen[i] };

		epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->listen[i].fd, &e);
	}
	s->accept_paused = pause;
}

static void serve_accept(struct serve *s, struct drill_ev *ev)
{
	struct sockaddr_storage peer;
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(peer);
		fd = accept4(ev->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			serve_conn_add(s, fd, &peer);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Level-triggered: muted until the next tick, or we would spin. */
			log_warn("accept: %s; pausing until the next tick", strerror(errno));
			serve_accept_pause(s, 1);
		}
		return;
	}
}

/* Takes the hello from the front of *p; returns -1 if it was refused. */
static int serve_conn_hello(struct serve *s, struct serve_conn *c, const uint8_t **p, size_t *n)
{
	size_t take = DRILL_HELLO_LEN - c->hello_len;
	enum drill_hello_status st;

	if (take > *n)
		take = *n;
	memcpy(c->hello_buf + c->hello_len, *p, take);
	c->hello_len += take;
	*p += take;
	*n -= take;
	if (c->hello_len < DRILL_HELLO_LEN)
		return 0;
	st = drill_hello_decode(&c->hello, c->hello_buf, c->hello_len);
	if (st != DRILL_HELLO_OK) {
		log_warn("%s: %s: resetting", c->peer, drill_hello_status_str(st));
		s->stats.bad_hello++;
		return -1;
	}
	c->streaming = 1;
	c->t_stream_ns = clock_mono_ns();
	return 0;
}

/* Verifies received bytes; returns -1 (and resets) on a wrong byte. */
static int serve_conn_consume(struct serve *s, struct serve_conn *c, const uint8_t *p, size_t n)
{
	uint8_t want[1];
	size_t bad;

	if (!c->streaming && serve_conn_hello(s, c, &p, &n) < 0)
		goto reset;
	if (n == 0)
		return 0;
	bad = drill_pattern_check(c->hello.seed, c->rx, p, n);
	if (bad < n) {
		drill_pattern_fill(c->hello.seed, c->rx + bad, want, 1);
		log_warn("%s: client stream byte %llu is 0x%02x, want 0x%02x: resetting", c->peer,
			 (unsigned long long)(c->rx + bad), p[bad], want[0]);
		s->stats.corrupt++;
		goto reset;
	}
	c->rx += n;
	return 0;
reset:
	serve_conn_close(s, c, SERVE_CLOSE_RESET);
	return -1;
}

static void serve_conn_readable(struct serve *s, struct serve_conn *c)
{
	for (int i = 0; i < SERVE_READS_PER_EVENT; i++) {
		ssize_t n = recv(c->ev.fd, s->buf, sizeof(s->buf), 0);

		if (n > 0) {
			if (serve_conn_consume(s, c, s->buf, (size_t)n) < 0)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			s->stats.aborted++;
			if (s->conf.verbose)
				log_info("%s: %s", c->peer, strerror(errno));
		}
		serve_conn_close(s, c, SERVE_CLOSE_FIN);
		return;
	}
}

/*
 * A download whose last byte is in the socket gets our FIN; the client
 * closes when it has verified everything, and its FIN closes us.
 */
static void serve_conn_download_done(struct serve *s, struct serve_conn *c)
{
	if (!c->hello.limit_kib || c->tx < (uint64_t)c->hello.limit_kib * 1024 || c->fin_sent)
		return;
	c->fin_sent = 1;
	if (shutdown(c->ev.fd, SHUT_WR) < 0 && s->conf.verbose)
		log_info("%s: shutdown: %s", c->peer, strerror(errno));
	if (s->conf.verbose)
		log_info("%s: download of %u KiB sent", c->peer, c->hello.limit_kib);
}

/* Sends what the pace allows by now; returns -1 if the connection closed. */
static int serve_conn_send(struct serve *s, struct serve_conn *c, uint64_t now)
{
	uint64_t due, budget;

	if (!c->streaming || c->hello.rate == 0 || now <= c->t_stream_ns)
		return 0;
	if (c->fin_sent)
		return 0;
	due = (uint64_t)((double)c->hello.rate * (double)(now - c->t_stream_ns) / 1e9);
	if (c->hello.limit_kib && due > (uint64_t)c->hello.limit_kib * 1024)
		due = (uint64_t)c->hello.limit_kib * 1024;
	budget = due > c->tx ? due - c->tx : 0;
	while (budget > 0) {
		size_t chunk = budget < sizeof(s->buf) ? (size_t)budget : sizeof(s->buf);
		ssize_t n;

		drill_pattern_fill(drill_server_seed(c->hello.seed), c->tx, s->buf, chunk);
		n = send(c->ev.fd, s->buf, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			s->stats.aborted++;
			serve_conn_close(s, c, SERVE_CLOSE_FIN);
			return -1;
		}
		c->tx += (uint64_t)n;
		budget -= (uint64_t)n;
		if ((size_t)n < chunk)
			return 0;
	}
	serve_conn_download_done(s, c);
	return 0;
}

/* ------------------------------------------------------------ loop */

static void serve_report(struct serve *s)
{
	log_info("conns active %llu (peak %llu), accepted %llu, closed %llu, bad hello %llu, "
		 "corrupt %llu, aborted %llu",
		 (unsigned long long)s->stats.active, (unsigned long long)s->stats.peak,
		 (unsigned long long)s->stats.accepted, (unsigned long long)s->stats.closed,
		 (unsigned long long)s->stats.bad_hello, (unsigned long long)s->stats.corrupt,
		 (unsigned long long)s->stats.aborted);
}

static void serve_tick(struct serve *s)
{
	uint64_t now = clock_mono_ns();
	struct serve_conn *c, *next;

	drill_fd_drain(s->tick.fd);
	if (s->accept_paused)
		serve_accept_pause(s, 0);
	for (c = s->live.next; c != &s->live; c = next) {
		next = c->next;		/* c may close and move to the graveyard */
		serve_conn_send(s, c, now);
	}
	if (s->conf.report_ms && now >= s->next_report_ns) {
		serve_report(s);
		s->next_report_ns = now + s->conf.report_ms * 1000000ull;
	}
}

static void serve_dispatch(struct serve *s, struct epoll_event *e)
{
	struct drill_ev *ev = e->data.ptr;

	switch (ev->kind) {
	case SERVE_EV_LISTEN:
		serve_accept(s, ev);
		break;
	case SERVE_EV_TICK:
		serve_tick(s);
		break;
	case SERVE_EV_SIGNAL:
		drill_fd_drain(ev->fd);
		s->stop = 1;
		break;
	case SERVE_EV_CONN:
		if (ev->fd >= 0)	/* not closed earlier in this batch */
			serve_conn_readable(s, (struct serve_conn *)ev);
		break;
	}
}

static int serve_run(struct serve *s)
{
	struct epoll_event events[SERVE_EVENTS];

	while (!s->stop) {
		int n = epoll_wait(s->epfd, events, SERVE_EVENTS, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_err("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++)
			serve_dispatch(s, &events[i]);
		serve_reap(s);
	}
	return 0;
}

static void serve_close(struct serve *s)
{
	while (s->live.next && s->live.next != &s->live)
		serve_conn_close(s, s->live.next, SERVE_CLOSE_FIN);
	serve_reap(s);
	for (size_t i = 0; i < SERVE_MAX_LISTEN; i++)
		if (s->listen[i].fd >= 0)
			close(s->listen[i].fd);
	if (s->tick.fd >= 0)
		close(s->tick.fd);
	if (s->sig.fd >= 0)
		close(s->sig.fd);
	if (s->epfd >= 0)
		close(s->epfd);
}

int drill_serve_main(int argc, char **argv)
{
	struct serve *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		fprintf(stderr, "lbdrill serve: out of memory\n");
		return 1;
	}
	s->epfd = -1;
	rc = serve_parse_args(argc, argv, &s->conf);
	if (rc != 0) {
		free(s);
		return rc > 0 ? 0 : 2;
	}
	drill_nofile_raise();
	rc = serve_open(s) == 0 && serve_run(s) == 0 ? 0 : 1;
	if (rc == 0)
		log_info("stopping");
	serve_report(s);
	serve_close(s);
	free(s);
	return rc;
}
