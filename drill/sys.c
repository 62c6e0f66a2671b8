/*
 * drill_sys: addresses, arguments and process set-up for the live drills
 * (see drill/drill_sys.h).
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

#include "drill_sys.h"
#include "num.h"
#include "sockaddr_util.h"

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
	char host[INET6_ADDRSTRLEN];
	uint8_t addr[16];
	const char *port;
	uint64_t p = 0;
	int family;

	if (addr_split(text, host, sizeof(host), &port) < 0 || port_ok != (port != NULL))
		return -EINVAL;
	if (port && drill_arg_u64(port, 1, 65535, &p) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET, host, addr) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		family = AF_INET6;
	else
		return -EINVAL;
	out->len = sockaddr_build(&out->ss, family, addr, (uint16_t)p);
	return 0;
}

const char *drill_addr_format(const struct sockaddr_storage *ss,
			      char buf[static DRILL_ADDR_STRLEN])
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
		snprintf(buf, DRILL_ADDR_STRLEN, "%s:%u", host, sockaddr_port(ss));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host,
			  sizeof(host));
		snprintf(buf, DRILL_ADDR_STRLEN, "[%s]:%u", host, sockaddr_port(ss));
	} else {
		snprintf(buf, DRILL_ADDR_STRLEN, "(family %d)", ss->ss_family);
	}
	return buf;
}

/* ------------------------------------------------------------ arguments */

int drill_arg_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return num_parse_u64(s, min, max, out) < 0 ? -EINVAL : 0;
}

/*
 * Not num_parse_u64: seconds may be fractional. The leading-character check
 * keeps strtod's signs, blanks, "inf" and "nan" out.
 */
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

/* ------------------------------------------------------------ process */

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
