/*
 * drill_sys: what the live drills (`lbdrill serve`, `stream`, `live`) need
 * of the system, apart from the protocol (drill/sys.c): socket addresses on
 * the command line and in messages, command-line numbers, and process
 * set-up (signals, the open-file limit, periodic timers, resets).
 */
#ifndef DRILL_SYS_H
#define DRILL_SYS_H

#include <stdint.h>
#include <sys/socket.h>

#define DRILL_ADDR_STRLEN	64	/* "[v6]:port" and a NUL */

/* A socket address and its length. */
struct drill_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* --- addresses --- */

/*
 * Parses "ADDR:PORT" ("198.18.0.100:9000", "[2001:db8::100]:9000",
 * "[::]:9000"), or with port_ok == 0 a bare "ADDR" (brackets optional for
 * IPv6) whose port is 0. Returns 0, or -EINVAL (nothing written to out).
 */
int drill_addr_parse(const char *text, int port_ok, struct drill_addr *out);

/* "a.b.c.d:port" or "[v6]:port" into buf (DRILL_ADDR_STRLEN bytes); returns buf. */
const char *drill_addr_format(const struct sockaddr_storage *ss,
			      char buf[static DRILL_ADDR_STRLEN]);

/* --- arguments --- */

/* A whole number in [min, max] (num_parse_u64); returns 0 or -EINVAL. */
int drill_arg_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Seconds, possibly fractional ("25", "0.5"), as milliseconds in
 * [min_ms, max_ms]; returns 0 or -EINVAL. */
int drill_arg_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out);

/* --- process set-up --- */

/* Blocks SIGINT and SIGTERM and returns a non-blocking signalfd for them
 * (-1 and errno on failure); ignores SIGPIPE (sends use MSG_NOSIGNAL too). */
int drill_signals_open(void);

/* Raises the soft open-file limit to the hard one (best effort). */
void drill_nofile_raise(void);

/* A periodic timerfd (non-blocking) firing every period_ms; -1 and errno. */
int drill_ticker_open(uint32_t period_ms);

/* Drains a timerfd or signalfd that epoll reported readable. */
void drill_fd_drain(int fd);

/* Closes fd so that the peer gets a RST instead of a FIN. */
void drill_socket_reset(int fd);

#endif
