/*
 * drill_pair: see drill/drill_pair.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drill_pair.h"
#include "sync_node.h"

#define QUEUE_MAX 4096		/* datagrams in flight per direction */
#define DEFER_TIMEOUT_MS 100	/* lbd's default */
#define JOIN_LIMIT_MS 30000

struct flight {
	uint8_t buf[1500];
	uint16_t len;
	uint64_t left;			/* when it left the sender */
	uint64_t at;			/* when it arrives */
	uint64_t after;			/* urgent: sent after the sender's packet
					 * number after-1; 0: not urgent */
};

struct side {
	struct drill_pair *pair;
	int idx;
	struct lb_engine *engine;
	struct lb_worker *worker, *ctl;
	struct sync_node *node;
	struct flight *inbox;		/* a ring of datagrams on their way here */
	size_t head, n;
	uint64_t released;		/* highest ticket the peer acknowledged */
	int urgent;			/* an urgent record waits to be sent */
	uint64_t pkts;			/* packets it handled as the active */
	int dead;
};

struct drill_pair {
	struct drill_pair_conf conf;
	struct side side[2];
	int active;			/* index of the master */
	uint64_t now;
	uint64_t next_engine_tick;
	uint64_t rng;
};

static double uniform(struct drill_pair *p)
{
	/* xorshift64*: a reproducible loss pattern from the seed */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return (double)((p->rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static void op_send(void *arg, const uint8_t *buf, size_t len)
{
	struct side *s = arg;
	struct drill_pair *p = s->pair;
	struct side *to = &p->side[!s->idx];
	struct flight *f;

	/* Nothing reaches a dead node (and its inbox is not written for nothing:
	 * a sweep's forked children would copy its pages). */
	if (s->dead || to->dead || len > sizeof(f->buf) || to->n == QUEUE_MAX ||
	    uniform(p) < p->conf.loss)
		return;
	f = &to->inbox[(to->head + to->n++) % QUEUE_MAX];
	memcpy(f->buf, buf, len);
	f->len = (uint16_t)len;
	/* An urgent record (a max_lag burst, anything in defer mode) wakes
	 * lbd's sync thread at once, and it sends the whole
	 * queue: its datagrams leave within the millisecond. Only records
	 * that wait to be batched leave a flush delay later. */
	f->left = p->now + (s->urgent ? 0 : p->conf.flush_delay_ms);
	f->after = s->urgent ? s->pkts + 1 : 0;
	f->at = f->left + p->conf.delay_ms;
}

static void op_wake(void *arg)
{
	(void)arg;	/* time is ours: the next advance runs the node */
}

static void op_released(void *arg, uint64_t ticket)
{
	struct side *s = arg;

	if (ticket > s->released)
		s->released = ticket;
}

static const struct sync_node_ops node_ops = { op_send, op_wake, op_released };

/*
 * The engine's replication hooks, passed through to the node; they note an
 * urgent record as lbd's eventfd wake would (sync_node: an urgent record is
 * sent at once, with whatever else is queued).
 */
static uint64_t hook_conn(void *arg, const struct lb_conn_state *st, int urgent)
{
	struct side *s = arg;

	s->urgent |= urgent || s->pair->conf.defer;
	return sync_node_repl_ops()->conn(s->node, st, urgent);
}

static void hook_delete(void *arg, const struct lb_conn_state *st)
{
	struct side *s = arg;

	sync_node_repl_ops()->conn_delete(s->node, st);
}

static void hook_persist(void *arg, const struct lb_persist_state *st)
{
	struct side *s = arg;

	sync_node_repl_ops()->persist(s->node, st);
}

static const struct lb_repl_ops repl_ops = { hook_conn, hook_delete, hook_persist };

/* Delivers the datagrams due by now to side s. */
static void deliver(struct side *s, uint64_t now)
{
	while (s->n && s->inbox[s->head].at <= now) {
		struct flight *f = &s->inbox[s->head];

		if (!s->dead)
			sync_node_input(s->node, f->buf, f->len, now);
		s->head = (s->head + 1) % QUEUE_MAX;
		s->n--;
	}
	/* An empty ring starts over at its front: the few datagrams in flight
	 * then stay on a few pages, which a sweep's snapshots (forks) copy and
	 * share, instead of walking through all of its 6 MB. */
	if (!s->n)
		s->head = 0;
}

/* The next moment anything is due: a datagram, a node timer, an engine tick. */
static uint64_t next_event(struct drill_pair *p)
{
	uint64_t next = p->next_engine_tick;

	for (int i = 0; i < 2; i++) {
		struct side *s = &p->side[i];
		uint64_t t;

		if (s->dead)
			continue;
		if (s->n && s->inbox[s->head].at < next)
			next = s->inbox[s->head].at;
		t = sync_node_next_ms(s->node, p->now);
		if (t < next)
			next = t;
	}
	return next > p->now ? next : p->now + 1;
}

static void step(struct drill_pair *p, uint64_t t)
{
	p->now = t;
	for (int i = 0; i < 2; i++)
		deliver(&p->side[i], t);
	for (int i = 0; i < 2; i++) {
		struct side *s = &p->side[i];

		if (s->dead)
			continue;
		sync_node_tick(s->node, t);
		s->urgent = 0;	/* the tick sent an urgent queue whole */
	}
	if (t >= p->next_engine_tick) {
		for (int i = 0; i < 2; i++)
			if (!p->side[i].dead)
				lb_engine_tick(p->side[i].engine, p->side[i].ctl, t);
		p->next_engine_tick = t + 100;
	}
}

void drill_pair_advance(struct drill_pair *p, uint64_t now_ms)
{
	/* Event by event, not millisecond by millisecond: a capture may have
	 * minutes between packets. */
	while (p->now < now_ms) {
		uint64_t t = next_event(p);

		step(p, t < now_ms ? t : now_ms);
	}
	/* Work queued at this very moment (a packet's record) goes now. */
	step(p, now_ms);
}

static int make_side(struct drill_pair *p, int idx, char *err, size_t errlen)
{
	static const uint8_t key[32] = "lbdrill-replay-key-not-a-secret!";
	const struct lb_conf *c = p->conf.conf;
	struct side *s = &p->side[idx];
	struct lb_engine_conf ec = c->engine;
	struct lb_repl_conf rc = { .interval_ms = p->conf.interval_ms, .defer = p->conf.defer,
				   .max_lag = c->sync.enabled ? c->sync.max_lag : 0 };
	struct sync_node_conf nc = {
		.link = { .node_id = (uint32_t)idx + 1, .peer_id = 2 - (uint32_t)idx,
			  .epoch = 1000 + (uint64_t)idx, .key = key,
			  .key_len = sizeof(key), .ring = 2048, .mtu = 1400, .heartbeat_ms = 100,
			  .nack_delay_ms = 2, .nack_retry_ms = 20, .peer_timeout_ms = 1000 },
		.resync_timeout_ms = 3000, .flush_ms = 2, .queue = 8192, .defer = p->conf.defer,
	};

	s->pair = p;
	s->idx = idx;
	if (p->conf.max_conns)
		ec.max_conns = p->conf.max_conns;
	ec.seed = 0x5eed + (uint32_t)idx;	/* replays are reproducible */
	s->inbox = calloc(QUEUE_MAX, sizeof(*s->inbox));
	s->engine = lb_engine_new(&ec, p->now);
	if (!s->inbox || !s->engine ||
	    lb_engine_set_services(s->engine, c->services, c->nservices) < 0) {
		snprintf(err, errlen, "cannot build engine %d: %s", idx + 1, strerror(errno));
		return -1;
	}
	s->worker = lb_engine_worker_new(s->engine);
	s->ctl = lb_engine_worker_new(s->engine);
	s->node = sync_node_new(&nc, s->engine, s->ctl, &node_ops, s, p->now);
	if (!s->node) {
		snprintf(err, errlen, "cannot build sync node %d: %s", idx + 1, strerror(errno));
		return -1;
	}
	lb_engine_set_clock(s->engine, p->now, 1700000000000000ull + p->now * 1000u);
	lb_engine_set_repl(s->engine, &repl_ops, s, &rc);
	lb_engine_set_role(s->engine, LB_ROLE_BACKUP);
	return 0;
}

static void set_role(struct side *s, enum lb_role role)
{
	sync_node_set_role(s->node, role);
	lb_engine_set_role(s->engine, role);
}

struct drill_pair *drill_pair_new(const struct drill_pair_conf *conf, uint64_t *now_ms,
				  char *err, size_t errlen)
{
	struct drill_pair *p = calloc(1, sizeof(*p));
	char why[128];

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->conf = *conf;
	if (!p->conf.flush_delay_ms)
		p->conf.flush_delay_ms = 1;
	if (!p->conf.interval_ms)
		p->conf.interval_ms = conf->conf->sync.enabled ? conf->conf->sync.interval_ms : 200;
	p->now = *now_ms;
	p->next_engine_tick = p->now;
	p->rng = conf->seed ? conf->seed : 0x9e3779b97f4a7c15ull;
	if (make_side(p, 0, err, errlen) < 0 || make_side(p, 1, err, errlen) < 0) {
		drill_pair_free(p);
		return NULL;
	}
	set_role(&p->side[0], LB_ROLE_MASTER);
	sync_node_start(p->side[1].node, p->now);
	while (!sync_node_ready(p->side[1].node, p->now, why, sizeof(why)) &&
	       p->now < *now_ms + JOIN_LIMIT_MS)
		drill_pair_advance(p, p->now + 1);
	/* Steady state: the active also knows the standby is ready. */
	while (!sync_node_peer_up(p->side[0].node) && p->now < *now_ms + JOIN_LIMIT_MS)
		drill_pair_advance(p, p->now + 1);
	if (!sync_node_ready(p->side[1].node, p->now, why, sizeof(why)) ||
	    !sync_node_peer_up(p->side[0].node)) {
		snprintf(err, errlen, "the standby never became ready: %s", why);
		drill_pair_free(p);
		return NULL;
	}
	*now_ms = p->now;
	return p;
}

void drill_pair_free(struct drill_pair *p)
{
	if (!p)
		return;
	for (int i = 0; i < 2; i++) {
		struct side *s = &p->side[i];

		if (s->engine)
			lb_engine_set_repl(s->engine, NULL, NULL, NULL);
		sync_node_free(s->node);
		lb_engine_free(s->engine);
		free(s->inbox);
	}
	free(p);
}

enum lb_verdict drill_pair_packet(struct drill_pair *p, struct lb_packet *pkt, uint64_t *now_ms)
{
	struct side *s = &p->side[p->active];
	enum lb_verdict v;
	uint64_t until;

	drill_pair_advance(p, *now_ms);
	v = lb_engine_packet(s->engine, s->worker, pkt, p->now);
	s->pkts++;
	if (v != LB_VERDICT_ACCEPT || !pkt->defer_ticket || s->dead)
		return v;
	/* Held, as lbd holds it: until the peer has the record, or timeout. */
	until = p->now + DEFER_TIMEOUT_MS;
	while (s->released < pkt->defer_ticket && p->now < until)
		drill_pair_advance(p, p->now + 1);
	*now_ms = p->now;
	return v;
}

/*
 * True when f had not left the active (from) when it died at now: a batched
 * record a flush delay after it was made; an urgent one when it carries the
 * records of the active's last packet and the death came within the next
 * millisecond (lbd's sync thread wakes within microseconds of an urgent
 * record, so the records of every earlier packet have left; this
 * millisecond-grained clock cannot tell a death microseconds after the last
 * packet from one before its record left, and counts it lost).
 */
static int not_left(const struct side *from, const struct flight *f, uint64_t now)
{
	if (f->left > now)
		return 1;
	return f->after == from->pkts + 1 && f->left + 1 >= now;
}

void drill_pair_failover(struct drill_pair *p, uint64_t *now_ms)
{
	struct side *old = &p->side[p->active], *new = &p->side[!p->active];

	drill_pair_advance(p, *now_ms);
	/* The active dies: unsent records die with it, and so do datagrams
	 * that had not yet left it; what is in flight arrives (the standby is
	 * promoted only after VRRP notices, much later than one link delay). */
	old->dead = 1;
	while (new->n && not_left(old, &new->inbox[(new->head + new->n - 1) % QUEUE_MAX], p->now))
		new->n--;
	drill_pair_advance(p, p->now + p->conf.flush_delay_ms + p->conf.delay_ms + 1);
	set_role(new, LB_ROLE_MASTER);
	p->active = !p->active;
	*now_ms = p->now;
}

struct lb_engine *drill_pair_active(struct drill_pair *p)
{
	return p->side[p->active].engine;
}

struct lb_engine *drill_pair_standby(struct drill_pair *p)
{
	return p->side[!p->active].engine;
}

int drill_pair_peer_up(struct drill_pair *p)
{
	return sync_node_peer_up(p->side[p->active].node);
}
