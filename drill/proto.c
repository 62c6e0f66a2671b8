/*
 * drill_proto: the drill stream protocol (see drill/drill_proto.h): the
 * stream pattern and the hello codec.
 */
#include <string.h>

#include "drill_proto.h"

#define DRILL_GOLDEN 0x9e3779b97f4a7c15ull

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
	put_be32(out + 12, h->limit_kib);
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
	if (p[5] || p[6] || p[7])
		return DRILL_HELLO_BAD_RESERVED;
	h->rate = get_be32(p + 8);
	h->limit_kib = get_be32(p + 12);
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
