/*
 * drill: lbdrill's private header, the pieces its subcommands share.
 *
 * The drill stream protocol, one TCP connection per stream:
 *
 *   client -> server: hello (24 bytes), then the client stream, forever
 *   server -> client: the server stream, forever, once the hello arrived
 *
 *   0        4     5       6       8             12            16              24
 *   +--------+-----+-------+-------+-------------+-------------+---------------+
 *   | "LBDR" | ver | flags | 0 0   | rate (be32) | 0 (be32)    | seed (be64)   |
 *   +--------+-----+-------+-------+-------------+-------------+---------------+
 *
 * ver is 1; flags and the reserved bytes are 0 (anything else is refused);
 * rate is how many bytes per second the server sends back (0: none); seed
 * names the stream. A stream is a function of (seed, offset) alone, so
 * either end can produce or verify any byte without keeping history: the
 * byte at offset i is byte i % 8 (least significant first) of
 *
 *   splitmix64_mix(seed' + (i / 8 + 1) * 0x9e3779b97f4a7c15)
 *
 * with seed' = seed for the client's stream and seed ^ DRILL_SERVER_SALT
 * for the server's, so an echo (or a NAT that crossed two streams) fails
 * verification. Offsets count from the first byte after the hello.
 * A server that receives a wrong byte resets the connection (RST), which is
 * how the client learns that its own direction was corrupted.
 */
#ifndef LB_AGENT_DRILL_H
#define LB_AGENT_DRILL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DRILL_HELLO_LEN		24
#define DRILL_VERSION		1
#define DRILL_SERVER_SALT	0x5352565253525652ull	/* "SRVRSRVR" */
#define DRILL_BUF		65536	/* one read or write at most */
#define DRILL_ADDR_STRLEN	64	/* "[v6%scope]:port" and a NUL */

/* The hello's fields (ver, flags and reserved are checked, not kept). */
struct drill_hello {
	uint32_t rate;		/* bytes per second, server -> client */
	uint64_t seed;		/* the client's stream; the server's is derived */
};

/* Why a hello was refused; DRILL_HELLO_OK is 0. */
enum drill_hello_status {
	DRILL_HELLO_OK,
	DRILL_HELLO_SHORT,
	DRILL_HELLO_BAD_MAGIC,
	DRILL_HELLO_BAD_VERSION,
	DRILL_HELLO_BAD_RESERVED,
};

/* One thing registered with epoll; embedded first in what owns the fd. */
struct drill_ev {
	int kind;		/* the subcommand's own enum */
	int fd;
};

/* A socket address and its length. */
struct drill_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Subcommands: argv[0] is the subcommand's name. Return the exit status. */
int drill_serve_main(int argc, char **argv);
int drill_stream_main(int argc, char **argv);
int drill_live_main(int argc, char **argv);

/* --- stream bytes (lbdrill.c) --- */

/* Writes len bytes of stream seed starting at offset off into buf. */
void drill_pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len);

/* Index of the first byte of buf that differs from stream seed at off;
 * len if all match. */
size_t drill_pattern_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len);

/* The seed of the server's stream for a hello's seed. */
uint64_t drill_server_seed(uint64_t seed);

/* A well-mixed 64-bit value from x (splitmix64's finaliser). */
uint64_t drill_mix64(uint64_t x);

void drill_hello_encode(uint8_t out[static DRILL_HELLO_LEN], const struct drill_hello *h);

/* Decodes the len bytes at p; fills h only when it returns DRILL_HELLO_OK. */
enum drill_hello_status drill_hello_decode(struct drill_hello *h, const uint8_t *p, size_t len);

const char *drill_hello_status_str(enum drill_hello_status st);

/* --- addresses, arguments, time, process set-up (lbdrill.c) --- */

/*
 * Parses "ADDR:PORT" ("198.18.0.100:9000", "[2001:db8::100]:9000",
 * "[::]:9000"), or with port_ok == 0 a bare "ADDR" (brackets optional for
 * IPv6) whose port is 0. Returns 0, or -EINVAL (nothing written to out).
 */
int drill_addr_parse(const char *text, int port_ok, struct drill_addr *out);

/* "a.b.c.d:port" or "[v6]:port" into buf (DRILL_ADDR_STRLEN bytes); returns buf. */
const char *drill_addr_format(const struct sockaddr *sa, char buf[static DRILL_ADDR_STRLEN]);

/* A whole number in [min, max]; returns 0 or -EINVAL. */
int drill_arg_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Seconds, possibly fractional ("25", "0.5"), as milliseconds in
 * [min_ms, max_ms]; returns 0 or -EINVAL. */
int drill_arg_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t drill_now_ns(void);

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
