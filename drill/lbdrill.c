/*
 * lbdrill: the operator's failover drill tool.
 *
 *   lbdrill serve  --listen ADDR:PORT [--listen ...]
 *   lbdrill stream --target ADDR:PORT --conns N --duration S [...]
 *   lbdrill help [SUBCOMMAND]
 *
 * `serve` runs on the backends; `stream` opens many long-lived connections
 * through the VIP, both ends sending deterministic byte streams and
 * verifying every byte they receive (protocol: drill/drill.h), and reports
 * per connection whether it survived, was reset, corrupted or stalled.
 *
 * This file dispatches on the subcommand (a table, so later subcommands are
 * one row each) and holds what the subcommands share: the stream pattern,
 * the hello codec, address and argument parsing, time and process set-up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "drill.h"
#include "drill_replay.h"
#include "log.h"
#include "num.h"

#define DRILL_GOLDEN 0x9e3779b97f4a7c15ull

struct drill_cmd {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct drill_cmd drill_cmds[] = {
	{ "serve", drill_serve_main, "verify and send drill streams (run on the backends)" },
	{ "stream", drill_stream_main, "open N verified streams to a VIP and report on them" },
	{ "live", drill_live_main, "fail a running pair over under verified streams" },
	{ "replay", drill_replay_main, "fail over on a packet capture, offline, and compare" },
};

#define DRILL_NCMDS (sizeof(drill_cmds) / sizeof(drill_cmds[0]))

/* ------------------------------------------------------------ pattern */

uint64_t drill_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t drill_word(uint64_t seed, uint64_t k)
{
	return drill_mix64(seed + (k + 1) * DRILL_GOLDEN);
}

uint64_t drill_server_seed(uint64_t seed)
{
	return seed ^ DRILL_SERVER_SALT;
}

void drill_pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t k = (off + i) / 8, w = drill_word(seed, k);
		unsigned b = (unsigned)((off + i) % 8);

		for (; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (8 * b));
	}
}

size_t drill_pattern_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t k = (off + i) / 8, w = drill_word(seed, k);
		unsigned b = (unsigned)((off + i) % 8);

		for (; b < 8 && i < len; b++, i++)
			if (buf[i] != (uint8_t)(w >> (8 * b)))
				return i;
	}
	return len;
}

/* ------------------------------------------------------------ hello */

static const uint8_t drill_magic[4] = { 'L', 'B', 'D', 'R' };

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void drill_hello_encode(uint8_t out[static DRILL_HELLO_LEN], const struct drill_hello *h)
{
	memset(out, 0, DRILL_HELLO_LEN);
	memcpy(out, drill_magic, sizeof(drill_magic));
	out[4] = DRILL_VERSION;
	put_be32(out + 8, h->rate);
	put_be64(out + 16, h->seed);
}

enum drill_hello_status drill_hello_decode(struct drill_hello *h, const uint8_t *p, size_t len)
{
	if (len < DRILL_HELLO_LEN)
		return DRILL_HELLO_SHORT;
	if (memcmp(p, drill_magic, sizeof(drill_magic)) != 0)
		return DRILL_HELLO_BAD_MAGIC;
	if (p[4] != DRILL_VERSION)
		return DRILL_HELLO_BAD_VERSION;
	if (p[5] || p[6] || p[7] || get_be32(p + 12))
		return DRILL_HELLO_BAD_RESERVED;
	h->rate = get_be32(p + 8);
	h->seed = (uint64_t)get_be32(p + 16) << 32 | get_be32(p + 20);
	return DRILL_HELLO_OK;
}

const char *drill_hello_status_str(enum drill_hello_status st)
{
	static const char *const names[] = {
		[DRILL_HELLO_OK] = "ok",
		[DRILL_HELLO_SHORT] = "short hello",
		[DRILL_HELLO_BAD_MAGIC] = "bad magic",
		[DRILL_HELLO_BAD_VERSION] = "unknown version",
		[DRILL_HELLO_BAD_RESERVED] = "reserved bits set",
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* ------------------------------------------------------------ addresses */

/* Splits "[host]:port", "host:port" (one colon) or a bare host. */
static int addr_split(const char *text, char *host, size_t hostlen, const char **port)
{
	const char *end;
	size_t n;

	*port = NULL;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || (end[1] != '\0' && end[1] != ':'))
			return -EINVAL;
		n = (size_t)(end - text - 1);
		text++;
		if (end[1] == ':')
			*port = end + 2;
	} else {
		end = strrchr(text, ':');
		if (end && strchr(text, ':') == end) {
			n = (size_t)(end - text);
			*port = end + 1;
		} else {
			n = strlen(text);	/* a bare v4 or unbracketed v6 */
		}
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, text, n);
	host[n] = '\0';
	return 0;
}

int drill_addr_parse(const char *text, int port_ok, struct drill_addr *out)
{
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	char host[INET6_ADDRSTRLEN];
	const char *port;
	uint64_t p = 0;
	struct drill_addr a;

	if (addr_split(text, host, sizeof(host), &port) < 0 || port_ok != (port != NULL))
		return -EINVAL;
	if (port && drill_arg_u64(port, 1, 65535, &p) < 0)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	sin = (struct sockaddr_in *)&a.ss;
	sin6 = (struct sockaddr_in6 *)&a.ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		a.len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		a.len = sizeof(*sin6);
	} else {
		return -EINVAL;
	}
	*out = a;
	return 0;
}

const char *drill_addr_format(const struct sockaddr *sa, char buf[static DRILL_ADDR_STRLEN])
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, DRILL_ADDR_STRLEN, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, DRILL_ADDR_STRLEN, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, DRILL_ADDR_STRLEN, "(family %d)", sa->sa_family);
	}
	return buf;
}

/* ------------------------------------------------------------ arguments */

int drill_arg_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return num_parse_u64(s, min, max, out) < 0 ? -EINVAL : 0;
}

int drill_arg_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	double v;
	char *end;

	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || v != v || v * 1000.0 < (double)min_ms || v * 1000.0 > (double)max_ms)
		return -EINVAL;
	*out = (uint64_t)(v * 1000.0 + 0.5);
	return 0;
}

/* ------------------------------------------------------------ time, process */

uint64_t drill_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int drill_signals_open(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void drill_nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int drill_ticker_open(uint32_t period_ms)
{
	struct itimerspec its = { 0 };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0)
		return -1;
	its.it_interval.tv_sec = period_ms / 1000;
	its.it_interval.tv_nsec = (long)(period_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void drill_fd_drain(int fd)
{
	uint8_t buf[256];	/* a signalfd_siginfo is 128 bytes, a timerfd count 8 */

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

void drill_socket_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* ------------------------------------------------------------ dispatch */

static void usage(FILE *f)
{
	fprintf(f, "usage: lbdrill SUBCOMMAND [OPTIONS]   (lbdrill SUBCOMMAND --help)\n");
	for (size_t i = 0; i < DRILL_NCMDS; i++)
		fprintf(f, "  %-8s %s\n", drill_cmds[i].name, drill_cmds[i].summary);
}

static const struct drill_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < DRILL_NCMDS; i++)
		if (strcmp(drill_cmds[i].name, name) == 0)
			return &drill_cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct drill_cmd *cmd;

	log_set_ident("lbdrill");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		if (argc > 2 && (cmd = find_cmd(argv[2]))) {
			char *args[] = { argv[2], (char *)"--help", NULL };

			return cmd->main(2, args);
		}
		usage(stdout);
		return 0;
	}
	cmd = find_cmd(argv[1]);
	if (!cmd) {
		fprintf(stderr, "lbdrill: unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return cmd->main(argc - 1, argv + 1);
}
