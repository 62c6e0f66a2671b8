/*
 * lb_addr: IPv4/IPv6 addresses and connection tuples as the engine sees them.
 *
 * An address is stored in 16 bytes whatever its family, IPv4 in the first four
 * (network order), the rest zero, so comparisons and hashes are one code path.
 * Ports are kept in host byte order everywhere above the packet parser.
 */
#ifndef LB_ADDR_H
#define LB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lb_addr {
	uint8_t family;		/* AF_INET or AF_INET6 */
	uint8_t bytes[16];	/* IPv4 in bytes[0..3], network order; rest 0 */
};

/* A TCP connection as seen in one direction. */
struct lb_tuple {
	struct lb_addr src;
	struct lb_addr dst;
	uint16_t sport;
	uint16_t dport;
};

/* Longest string lb_addr_format() writes, with the NUL. */
#define LB_ADDR_STRLEN 46

/*
 * Parses a numeric IPv4 or IPv6 address. Returns 0, or -EINVAL when the text
 * is not an address.
 */
int lb_addr_parse(struct lb_addr *addr, const char *text);

/*
 * Parses "ADDR", "ADDR:PORT" (IPv4) or "[ADDR]:PORT" (IPv6, also bare ADDR).
 * *port is 0 when the text has none. Returns 0 or -EINVAL.
 */
int lb_addr_parse_port(struct lb_addr *addr, uint16_t *port, const char *text);

/* Writes the address to buf (at least LB_ADDR_STRLEN bytes); returns buf. */
const char *lb_addr_format(const struct lb_addr *addr, char *buf, size_t len);

/* Formats "addr:port" or "[addr]:port"; buf of at least LB_ADDR_STRLEN + 8. */
const char *lb_addr_format_port(const struct lb_addr *addr, uint16_t port,
				char *buf, size_t len);

bool lb_addr_equal(const struct lb_addr *a, const struct lb_addr *b);
bool lb_tuple_equal(const struct lb_tuple *a, const struct lb_tuple *b);

/* Seeded 32-bit hashes; the seed keeps remote peers from choosing collisions. */
uint32_t lb_addr_hash(const struct lb_addr *addr, uint32_t seed);
uint32_t lb_tuple_hash(const struct lb_tuple *t, uint32_t seed);

/* Length in bytes of the address proper: 4 or 16. */
static inline size_t lb_addr_len(const struct lb_addr *addr)
{
	return addr->family == 2 /* AF_INET */ ? 4 : 16;
}

#endif
