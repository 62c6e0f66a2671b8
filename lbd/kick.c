/*
 * The takeover kick (lbd_kick.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "lb_engine.h"
#include "lb_kick.h"
#include "lbd_kick.h"
#include "log.h"

/* A connection kicked: the directions whose sender was moving data. */
struct kicked {
	struct lb_tuple orig;
	uint32_t rate;			/* of its busiest such direction: who goes first */
	uint8_t want;			/* bit d: direction d still needs its notices */
	uint64_t pkts0[2];		/* packets by direction when the kick began */
};

enum { K_CONNS, K_PROMPTS, K_NOTICES, K_UNANSWERED, K_LEFT_OUT, K_ERRORS, K_COUNT };

static const char *const counter_names[K_COUNT] = {
	"conns", "prompts", "notices", "unanswered", "left_out", "errors",
};

/*
 * A kick is list[0..n), busiest first: prompted up to sent, scanned for
 * answers from cursor on, a slice each round, so that the first notices go
 * out while later prompts are still to be sent; left counts the entries
 * still waiting (want != 0).
 */
struct lbd_kick {
	int fd, fd6;			/* raw, our headers (IPPROTO_RAW); fd6 -1: no IPv6 */
	struct kicked list[LBD_KICK_MAX];
	size_t n, sent, cursor, left;
	unsigned notices;		/* per end, for this kick's outage */
	uint64_t start_ms, until_ms;	/* until_ms 0: no kick under way */
	atomic_uint_fast64_t count[K_COUNT];
};

struct lbd_kick *lbd_kick_open(void)
{
	struct lbd_kick *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	/* IPPROTO_RAW: send only, the headers ours (IP_HDRINCL implied). */
	k->fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
	if (k->fd < 0) {
		int err = errno;

		free(k);
		errno = err;
		return NULL;
	}
	/* A host without IPv6 kicks its IPv4 connections only. */
	k->fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
	if (k->fd6 < 0)
		log_warn("takeover kick: no IPv6 raw socket (%s): IPv6 connections are left out",
			 strerror(errno));
	return k;
}

void lbd_kick_close(struct lbd_kick *k)
{
	if (!k)
		return;
	close(k->fd);
	if (k->fd6 >= 0)
		close(k->fd6);
	free(k);
}

static void bump(struct lbd_kick *k, int c, uint64_t n)
{
	atomic_fetch_add_explicit(&k->count[c], n, memory_order_relaxed);
}

/* Sends a packet of ours (its IP header complete) to its destination. */
static void send_ip(struct lbd_kick *k, const uint8_t *pkt, int len, int counter)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct sockaddr_in6 to6 = { .sin6_family = AF_INET6 };
	const struct sockaddr *sa = (const struct sockaddr *)&to;
	socklen_t salen = sizeof(to);
	int fd = k->fd;

	if (len < 0) {
		bump(k, K_ERRORS, 1);
		return;
	}
	if (pkt[0] >> 4 == 6) {
		memcpy(&to6.sin6_addr, pkt + 24, 16);
		sa = (const struct sockaddr *)&to6;
		salen = sizeof(to6);
		fd = k->fd6;
	} else {
		memcpy(&to.sin_addr, pkt + 16, 4);
	}
	if (sendto(fd, pkt, (size_t)len, 0, sa, salen) != len) {
		log_debug("takeover kick: sendto: %s", strerror(errno));
		bump(k, K_ERRORS, 1);
		return;
	}
	bump(k, counter, 1);
}

/* States in which data may still be outstanding in some direction. */
static bool may_move(uint8_t state)
{
	return state == LB_TCP_ESTABLISHED || state == LB_TCP_FIN_WAIT ||
	       state == LB_TCP_CLOSE_WAIT;
}

/*
 * The directions that were moving data. Rates count whole packets, so the
 * acknowledgements of a download have one too: a direction counts when its
 * rate is at least an eighth of the other's (an echo, both; a download,
 * only the backend's).
 */
static uint8_t data_directions(const uint32_t rate[2])
{
	uint8_t want = 0;

	for (int d = 0; d < 2; d++)
		if (rate[d] && rate[d] >= rate[!d] / 8)
			want |= (uint8_t)(1u << d);
	return want;
}

/* foreach_conn: runs with the connection locked, so it only gathers. */
static void pick_conn(const struct lb_conn_info *c, void *arg)
{
	struct lbd_kick *k = arg;
	const uint32_t *rate = c->state.rate;
	uint8_t want = data_directions(rate);

	if (!want || !may_move(c->state.tcp.state))
		return;
	if (k->n == LBD_KICK_MAX || (c->state.orig.src.family == AF_INET6 && k->fd6 < 0)) {
		bump(k, K_LEFT_OUT, 1);
		return;
	}
	k->list[k->n++] = (struct kicked){
		.orig = c->state.orig, .want = want,
		.rate = rate[0] > rate[1] ? rate[0] : rate[1],
		.pkts0 = { c->pkts[0], c->pkts[1] },
	};
}

static int busiest_first(const void *a, const void *b)
{
	uint32_t x = ((const struct kicked *)a)->rate, y = ((const struct kicked *)b)->rate;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Retransmissions an end may have lost in an outage of ms: its timer fires
 * at r, 3r, 7r, ... after its last segment, r its timeout, LBD_KICK_RTO_MS
 * at the least we reckon with (a backend tuned as docs/operations.md says;
 * Linux's own floor is 200 ms). One notice more than that, LBD_KICK_NOTICES
 * at most.
 */
static unsigned notices_for(uint64_t outage_ms)
{
	unsigned n = 1;

	for (uint64_t t = LBD_KICK_RTO_MS; t <= outage_ms && n < LBD_KICK_NOTICES; t = 2 * t + LBD_KICK_RTO_MS)
		n++;
	return n;
}

void lbd_kick_start(struct lbd_kick *k, struct lb_engine *e, uint64_t outage_ms,
		    uint64_t now_ms)
{
	if (!k)
		return;
	lbd_kick_cancel(k);
	lb_engine_foreach_conn(e, now_ms, pick_conn, k);
	if (!k->n)
		return;
	qsort(k->list, k->n, sizeof(k->list[0]), busiest_first);
	bump(k, K_CONNS, k->n);
	k->left = k->n;
	k->notices = notices_for(outage_ms);
	k->start_ms = now_ms;
	k->until_ms = now_ms + LBD_KICK_WAIT_MS;
}

/* kc's connection as it is now, or -ENOENT when it is gone (closed or
 * expired): then it leaves the kick. */
static int current(struct lbd_kick *k, struct lb_engine *e, struct lb_worker *w,
		   struct kicked *kc, uint64_t now_ms, struct lb_conn_info *c)
{
	if (lb_engine_conn_fresh(e, w, &kc->orig, now_ms, c) == 0)
		return 0;
	kc->want = 0;
	k->left--;
	return -ENOENT;
}

static void prompt(struct lbd_kick *k, struct lb_engine *e, struct lb_worker *w,
		   struct kicked *kc, uint64_t now_ms)
{
	uint8_t pkt[LB_KICK_MAX_LEN];
	struct lb_conn_info c;

	if (current(k, e, w, kc, now_ms, &c) < 0)
		return;
	for (int d = 0; d < 2; d++)
		if (kc->want & (1u << d))
			send_ip(k, pkt, lb_kick_prompt(&c.state, (enum lb_dir)d, pkt, sizeof(pkt)),
				K_PROMPTS);
}

/* Sends the notices of kc's ends that answered: the receiver of direction
 * d acked the byte d's sender waits on (the engine's maxack, caught up with
 * the kernel fast path), which has passed through us to the sender. An end
 * has answered once it sent a packet through us since the kick began, the
 * prompt's answer or anything of its own (an echo's client sends every few
 * ms, and needs no prompt): a kernel entry keeps the last ack it saw while
 * this node was master before, and that one may be stale. */
static void answers(struct lbd_kick *k, struct lb_engine *e, struct lb_worker *w,
		    struct kicked *kc, uint64_t now_ms)
{
	uint8_t pkt[LB_KICK_MAX_LEN];
	struct lb_conn_info c;

	if (current(k, e, w, kc, now_ms, &c) < 0)
		return;
	for (int d = 0; d < 2; d++) {
		const struct lb_tcp_peer *rcv = &c.state.tcp.peer[!d];

		if (!(kc->want & (1u << d)) || !(rcv->flags & LB_TCP_PF_MAXACK))
			continue;
		if (c.pkts[!d] == kc->pkts0[!d])
			continue;
		/* One revert per notice: as many as retransmissions may have
		 * died with the old master. */
		for (unsigned i = 0; i < k->notices; i++)
			send_ip(k, pkt, lb_kick_notice(&c.state, (enum lb_dir)d, rcv->maxack, pkt,
						       sizeof(pkt)), K_NOTICES);
		kc->want &= (uint8_t)~(1u << d);
	}
	if (!kc->want)
		k->left--;
}

static void finish(struct lbd_kick *k, uint64_t now_ms)
{
	uint64_t unanswered = 0;

	for (size_t i = 0; i < k->n; i++)
		unanswered += (k->list[i].want & 1) + (k->list[i].want >> 1);
	bump(k, K_UNANSWERED, unanswered);
	log_info("takeover kick: %zu connections moving data, %u notices per end, %llu ends "
		 "unanswered, %llu ms", k->n, k->notices, (unsigned long long)unanswered,
		 (unsigned long long)(now_ms - k->start_ms));
	lbd_kick_cancel(k);
}

bool lbd_kick_run(struct lbd_kick *k, struct lb_engine *e, struct lb_worker *w, uint64_t now_ms)
{
	if (!lbd_kick_busy(k))
		return false;
	for (size_t i = 0; i < LBD_KICK_SLICE && k->sent < k->n; i++) {
		struct kicked *kc = &k->list[k->sent++];

		if (kc->want)	/* not answered before its prompt */
			prompt(k, e, w, kc, now_ms);
	}
	/* All of the list, not only the prompted: an end whose peer has
	 * already spoken through us since the takeover (an echo's client
	 * sends on its own) needs no prompt, and its notice need not wait
	 * for the busier connections' prompts. */
	for (size_t i = 0, scan = k->n < 4 * LBD_KICK_SLICE ? k->n : 4 * LBD_KICK_SLICE;
	     i < scan && k->left; i++) {
		struct kicked *kc = &k->list[k->cursor];

		k->cursor = (k->cursor + 1) % k->n;
		if (kc->want)
			answers(k, e, w, kc, now_ms);
	}
	if (k->left && now_ms < k->until_ms)
		return true;
	finish(k, now_ms);
	return false;
}

void lbd_kick_cancel(struct lbd_kick *k)
{
	if (!k)
		return;
	k->n = k->sent = k->cursor = k->left = 0;
	k->until_ms = 0;
}

bool lbd_kick_busy(const struct lbd_kick *k)
{
	return k && k->until_ms;
}

void lbd_kick_print(struct lbd_kick *k, FILE *out)
{
	if (!k)
		return;
	for (int i = 0; i < K_COUNT; i++)
		fprintf(out, "takeover_kick_%s %llu\n", counter_names[i],
			(unsigned long long)atomic_load(&k->count[i]));
}
