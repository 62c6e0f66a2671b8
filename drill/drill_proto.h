/*
 * drill_proto: the drill stream protocol that `lbdrill serve` and
 * `lbdrill stream`/`live` speak, one TCP connection per stream: the hello
 * codec and the stream pattern (drill/proto.c). Pure: no I/O.
 *
 *   client -> server: hello (24 bytes), then the client stream, forever
 *   server -> client: the server stream, forever, once the hello arrived
 *
 *   0        4     5       6       8             12            16              24
 *   +--------+-----+-------+-------+-------------+-------------+---------------+
 *   | "LBDR" | ver | flags | 0 0   | rate (be32) | limit (be32)| seed (be64)   |
 *   +--------+-----+-------+-------+-------------+-------------+---------------+
 *
 * ver is 1; flags and the reserved bytes are 0 (anything else is refused);
 * rate is how many bytes per second the server sends back (0: none); limit,
 * when not 0, makes the stream a download: the server sends exactly
 * limit KiB of its stream and then closes its side (FIN), so the client
 * can tell a complete download from one cut short (a server that predates
 * the field refuses such a hello as "reserved bits set"); seed names the
 * stream. A stream is a function of (seed, offset) alone, so
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
#ifndef DRILL_PROTO_H
#define DRILL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define DRILL_HELLO_LEN		24
#define DRILL_VERSION		1
#define DRILL_SERVER_SALT	0x5352565253525652ull	/* "SRVRSRVR" */

/* The hello's fields (ver, flags and reserved are checked, not kept). */
struct drill_hello {
	uint32_t rate;		/* bytes per second, server -> client */
	uint32_t limit_kib;	/* a download of this many KiB, then FIN; 0: forever */
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

/* --- stream bytes --- */

/* Writes len bytes of stream seed starting at offset off into buf. */
void drill_pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len);

/* Index of the first byte of buf that differs from stream seed at off;
 * len if all match. */
size_t drill_pattern_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len);

/* The seed of the server's stream for a hello's seed. */
uint64_t drill_server_seed(uint64_t seed);

/* A well-mixed 64-bit value from x (splitmix64's finaliser). */
uint64_t drill_mix64(uint64_t x);

/* --- the hello --- */

/* Writes h as the DRILL_HELLO_LEN bytes of a hello into out. */
void drill_hello_encode(uint8_t out[static DRILL_HELLO_LEN], const struct drill_hello *h);

/* Decodes the len bytes at p; fills h only when it returns DRILL_HELLO_OK. */
enum drill_hello_status drill_hello_decode(struct drill_hello *h, const uint8_t *p, size_t len);

/* A status's text ("bad magic", ...); "?" out of range. Static storage. */
const char *drill_hello_status_str(enum drill_hello_status st);

#endif
