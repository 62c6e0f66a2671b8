/*
 * lb_addr: parsing, formatting and hashing of addresses and tuples.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb_addr.h"

int lb_addr_parse(struct lb_addr *addr, const char *text)
{
	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, text, addr->bytes) == 1) {
		addr->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr->bytes) == 1) {
		addr->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* A port: 1 to 5 digits, 1..65535. */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 5 || s[n])
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int lb_addr_parse_port(struct lb_addr *addr, uint16_t *port, const char *text)
{
	char buf[LB_ADDR_STRLEN + 8];
	const char *colon = strrchr(text, ':'), *close = strchr(text, ']');
	size_t len = strlen(text);

	*port = 0;
	if (len >= sizeof(buf))
		return -EINVAL;
	if (text[0] == '[') {
		/* [v6]:port or [v6] */
		if (!close || (close[1] && (close[1] != ':' || parse_port(close + 2, port) < 0)))
			return -EINVAL;
		memcpy(buf, text + 1, (size_t)(close - text - 1));
		buf[close - text - 1] = '\0';
		return lb_addr_parse(addr, buf) == 0 && addr->family == AF_INET6 ? 0 : -EINVAL;
	}
	if (colon && strchr(text, ':') == colon) {
		/* one colon: IPv4:port */
		memcpy(buf, text, (size_t)(colon - text));
		buf[colon - text] = '\0';
		if (parse_port(colon + 1, port) < 0 || lb_addr_parse(addr, buf) < 0 ||
		    addr->family != AF_INET)
			return -EINVAL;
		return 0;
	}
	return lb_addr_parse(addr, text);
}

const char *lb_addr_format(const struct lb_addr *addr, char *buf, size_t len)
{
	if (!inet_ntop(addr->family == AF_INET ? AF_INET : AF_INET6, addr->bytes, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

const char *lb_addr_format_port(const struct lb_addr *addr, uint16_t port,
				char *buf, size_t len)
{
	char a[LB_ADDR_STRLEN];

	lb_addr_format(addr, a, sizeof(a));
	if (addr->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
	return buf;
}

bool lb_addr_equal(const struct lb_addr *a, const struct lb_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

bool lb_tuple_equal(const struct lb_tuple *a, const struct lb_tuple *b)
{
	return a->sport == b->sport && a->dport == b->dport &&
	       lb_addr_equal(&a->src, &b->src) && lb_addr_equal(&a->dst, &b->dst);
}

/*
 * Mixing in the style of MurmurHash3's finaliser, fed 32-bit words. Not a
 * cryptographic MAC: the random seed only keeps an outsider from aiming many
 * tuples at one bucket without knowing it.
 */
static inline uint32_t mix(uint32_t h, uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593u;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64u;
}

static inline uint32_t finish(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static uint32_t mix_addr(uint32_t h, const struct lb_addr *addr)
{
	uint32_t w;

	for (size_t i = 0; i < lb_addr_len(addr); i += 4) {
		memcpy(&w, addr->bytes + i, 4);
		h = mix(h, w);
	}
	return h;
}

uint32_t lb_addr_hash(const struct lb_addr *addr, uint32_t seed)
{
	return finish(mix_addr(seed ^ addr->family, addr));
}

uint32_t lb_tuple_hash(const struct lb_tuple *t, uint32_t seed)
{
	uint32_t h = seed ^ t->src.family;

	h = mix_addr(h, &t->src);
	h = mix_addr(h, &t->dst);
	h = mix(h, (uint32_t)t->sport << 16 | t->dport);
	return finish(h);
}
