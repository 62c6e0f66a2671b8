/*
 * lb_engine: the packet path. One packet: parse, find its connection (or
 * create one from a SYN), track TCP, rewrite, count. See include/lb_engine.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "lb_pkt.h"

static const char *const counter_names[LB_CNT_COUNT] = {
#define LB_COUNTER_NAME(id, name) [LB_CNT_##id] = name,
	LB_COUNTER_LIST(LB_COUNTER_NAME)
#undef LB_COUNTER_NAME
};

const char *lb_counter_name(enum lb_counter c)
{
	return c < LB_CNT_COUNT ? counter_names[c] : "?";
}

/* Parser results and tracker results map onto drop counters. */
static const enum lb_counter pkt_drop[LB_PKT_RESULT_COUNT] = {
	[LB_PKT_TRUNCATED] = LB_CNT_DROP_TRUNCATED,
	[LB_PKT_BAD_IP] = LB_CNT_DROP_BAD_IP,
	[LB_PKT_FRAGMENT] = LB_CNT_DROP_FRAGMENT,
	[LB_PKT_NOT_TCP] = LB_CNT_DROP_NOT_TCP,
	[LB_PKT_BAD_TCP] = LB_CNT_DROP_BAD_TCP,
};

static const enum lb_counter tcp_drop[LB_TCP_RESULT_COUNT] = {
	[LB_TCP_BAD_FLAGS] = LB_CNT_DROP_BAD_FLAGS,
	[LB_TCP_OUT_OF_WINDOW] = LB_CNT_DROP_OUT_OF_WINDOW,
	[LB_TCP_BAD_RST] = LB_CNT_DROP_BAD_RST,
	[LB_TCP_BAD_HANDSHAKE] = LB_CNT_DROP_BAD_HANDSHAKE,
	[LB_TCP_BAD_STATE] = LB_CNT_DROP_BAD_STATE,
};

static void on_wake(struct lb_conn *c, uint64_t now_ms, void *arg);
static void persist_established(struct lb_engine *e, struct lb_worker *w, uint32_t service_id,
				const struct lb_addr *client, struct lb_backend *be,
				uint32_t persist_ms, uint64_t now_ms);

size_t lb_engine_mem_bytes(const struct lb_engine_conf *conf)
{
	return lb_table_mem_bytes(conf->max_conns) +
	       lb_persist_mem_bytes(conf->max_persist ? conf->max_persist : 1);
}

void lb_engine_conf_defaults(struct lb_engine_conf *conf)
{
	/* The idle timeouts of IPVS (ipvsadm --list --timeout and
	 * ip_vs_proto_tcp.c), which operators of LVS pairs know. */
	static const uint32_t timeouts[LB_TCP_STATE_COUNT] = {
		[LB_TCP_NONE] = 10,	  [LB_TCP_SYN_SENT] = 120,
		[LB_TCP_SYN_RECV] = 60,	  [LB_TCP_ESTABLISHED] = 900,
		[LB_TCP_FIN_WAIT] = 120,  [LB_TCP_CLOSE_WAIT] = 60,
		[LB_TCP_LAST_ACK] = 30,	  [LB_TCP_TIME_WAIT] = 120,
		[LB_TCP_CLOSE] = 10,
	};

	memset(conf, 0, sizeof(*conf));
	conf->max_conns = 262144;
	conf->max_persist = 65536;
	memcpy(conf->timeout_s, timeouts, sizeof(timeouts));
}

struct lb_engine *lb_engine_new(const struct lb_engine_conf *conf, uint64_t now_ms)
{
	struct lb_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->conf = *conf;
	for (int s = 0; s < LB_TCP_STATE_COUNT; s++)
		e->timeout_ms[s] = conf->timeout_s[s] * 1000u;
	pthread_rwlock_init(&e->svc_lock, NULL);
	pthread_mutex_init(&e->workers_lock, NULL);
	e->next_service_id = 1;
	atomic_init(&e->role, LB_ROLE_MASTER);
	lb_engine_set_clock(e, now_ms, now_ms * 1000u);
	e->embryos.cap = conf->max_embryonic ? conf->max_embryonic : conf->max_conns / 4;
	if (e->embryos.cap == 0)
		e->embryos.cap = 1;
	pthread_mutex_init(&e->embryos.lock, NULL);
	e->embryos.ring = calloc(e->embryos.cap, sizeof(*e->embryos.ring));
	e->table = lb_table_new(conf->max_conns, e->conf.seed, now_ms);
	e->persist = lb_persist_new(conf->max_persist ? conf->max_persist : 1,
				    e->conf.seed * 31u, now_ms);
	if (e->table)
		lb_table_set_wake(e->table, on_wake, e);
	if (!e->table || !e->persist || !e->embryos.ring) {
		int err = errno;

		lb_engine_free(e);
		errno = err;
		return NULL;
	}
	return e;
}

void lb_engine_free(struct lb_engine *e)
{
	if (!e)
		return;
	lb_table_free(e->table);
	lb_persist_free(e->persist);
	lb_svcset_free(e->svcset);
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++)
		free(e->backends[i]);
	for (size_t i = 0; i < e->nworkers; i++)
		free(e->workers[i]);
	pthread_rwlock_destroy(&e->svc_lock);
	pthread_mutex_destroy(&e->workers_lock);
	pthread_mutex_destroy(&e->embryos.lock);
	free(e->embryos.ring);
	free(e);
}

struct lb_worker *lb_engine_worker_new(struct lb_engine *e)
{
	struct lb_worker *w = NULL;

	pthread_mutex_lock(&e->workers_lock);
	if (e->nworkers == LB_ENGINE_MAX_WORKERS) {
		errno = ENOSPC;
	} else if ((w = calloc(1, sizeof(*w)))) {
		e->workers[e->nworkers++] = w;
	}
	pthread_mutex_unlock(&e->workers_lock);
	return w;
}

const char *lb_role_name(enum lb_role role)
{
	switch (role) {
	case LB_ROLE_MASTER: return "master";
	case LB_ROLE_BACKUP: return "backup";
	case LB_ROLE_FAULT: return "fault";
	}
	return "?";
}

enum lb_role lb_engine_set_role(struct lb_engine *e, enum lb_role role)
{
	enum lb_role was = (enum lb_role)atomic_exchange(&e->role, (int)role);

	/* The takeover's grace period starts with the first packet we see
	 * as the new master (the engine has no clock of its own). */
	if (role == LB_ROLE_MASTER && was != LB_ROLE_MASTER)
		atomic_store(&e->promoted_ms, 0);
	return was;
}

enum lb_role lb_engine_role(struct lb_engine *e)
{
	return (enum lb_role)atomic_load(&e->role);
}

void lb_engine_set_clock(struct lb_engine *e, uint64_t mono_ms, uint64_t real_us)
{
	atomic_store(&e->clock_mono_ms, mono_ms);
	atomic_store(&e->clock_real_us, real_us);
}

uint64_t lb_engine_real_us(struct lb_engine *e, uint64_t now_ms)
{
	uint64_t mono = atomic_load(&e->clock_mono_ms), real = atomic_load(&e->clock_real_us);

	return real + (now_ms - mono) * 1000u;
}

void lb_engine_set_repl(struct lb_engine *e, const struct lb_repl_ops *ops, void *arg,
			const struct lb_repl_conf *conf)
{
	e->repl = ops;
	e->repl_arg = arg;
	if (conf)
		e->repl_conf = *conf;
	if (e->repl_conf.interval_ms == 0)
		e->repl_conf.interval_ms = 200;
	if (e->repl_conf.max_lag == 0)
		e->repl_conf.max_lag = 1u << 20;
	if (e->repl_conf.grace_ms == 0)
		e->repl_conf.grace_ms = e->repl_conf.interval_ms * 10 > 3000
					? e->repl_conf.interval_ms * 10 : 3000;
}

uint32_t lb_engine_grace_ms(const struct lb_engine *e)
{
	return e->repl_conf.grace_ms;
}

void lb_engine_counters(struct lb_engine *e, uint64_t out[LB_CNT_COUNT])
{
	memset(out, 0, sizeof(uint64_t) * LB_CNT_COUNT);
	pthread_mutex_lock(&e->workers_lock);
	for (size_t i = 0; i < e->nworkers; i++)
		for (int c = 0; c < LB_CNT_COUNT; c++)
			out[c] += atomic_load_explicit(&e->workers[i]->counters[c],
						       memory_order_relaxed);
	pthread_mutex_unlock(&e->workers_lock);
}

void lb_backend_state_change(struct lb_backend *be, uint8_t from, uint8_t to)
{
	int was = from == LB_TCP_ESTABLISHED, is = to == LB_TCP_ESTABLISHED;

	if (was == is)
		return;
	atomic_fetch_add(is ? &be->active : &be->inactive, 1);
	atomic_fetch_sub(is ? &be->inactive : &be->active, 1);
}

static void backend_count_packet(struct lb_backend *be, enum lb_dir dir, uint32_t len)
{
	if (dir == LB_DIR_ORIG) {
		atomic_fetch_add_explicit(&be->pkts_in, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&be->bytes_in, len, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&be->pkts_out, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&be->bytes_out, len, memory_order_relaxed);
	}
}

/* Rewrites an accepted packet of a connection and counts it. */
static enum lb_verdict forward(struct lb_worker *w, struct lb_packet *pkt,
			       const struct lb_pkt_info *pi, enum lb_dir dir,
			       const struct lb_tuple *nat)
{
	int partial = !!(pkt->flags & LB_PKT_F_CSUM_PARTIAL);

	/* Requests go to the backend (destination rewritten), replies come
	 * from the VIP (source rewritten). */
	if (dir == LB_DIR_ORIG)
		lb_pkt_nat(pkt->data, pi, 1, &nat->src, nat->sport, partial);
	else
		lb_pkt_nat(pkt->data, pi, 0, &nat->dst, nat->dport, partial);
	pkt->modified = 1;
	lb_worker_count(w, dir == LB_DIR_ORIG ? LB_CNT_PKTS_ORIG : LB_CNT_PKTS_REPLY, 1);
	lb_worker_count(w, dir == LB_DIR_ORIG ? LB_CNT_BYTES_ORIG : LB_CNT_BYTES_REPLY,
			pi->ip_len);
	if (partial)
		lb_worker_count(w, LB_CNT_CSUM_FULL, 1);
	if (pkt->flags & LB_PKT_F_GSO)
		lb_worker_count(w, LB_CNT_PKTS_GSO, 1);
	return LB_VERDICT_ACCEPT;
}

/* Counts a drop under its reason, which the caller also gets in pkt. */
static enum lb_verdict drop(struct lb_worker *w, struct lb_packet *pkt, enum lb_counter why)
{
	lb_worker_count(w, why, 1);
	pkt->drop_reason = why;
	return LB_VERDICT_DROP;
}

static int hook_matches(enum lb_hook hook, enum lb_dir dir)
{
	return hook == LB_HOOK_ANY || (hook == LB_HOOK_PRE) == (dir == LB_DIR_ORIG);
}

void lb_conn_export(const struct lb_table *t, const struct lb_conn *c, uint64_t now_ms,
		    struct lb_conn_state *st)
{
	struct lb_tuple reply = lb_conn_tuple(t, c, LB_DIR_REPLY);

	st->orig = lb_conn_tuple(t, c, LB_DIR_ORIG);
	st->backend = reply.src;
	st->backend_port = reply.sport;
	st->created_us = c->created_us;
	st->version = c->version;
	st->tcp = c->tcp;
	st->tcp.slack[0] = st->tcp.slack[1] = 0;
	st->tcp.used_slack = 0;
	lb_tcp_strip_local(&st->tcp);
	st->expires_ms = c->expires_ms > now_ms ? (uint32_t)(c->expires_ms - now_ms) : 0;
	st->rate[0] = c->rate[0];
	st->rate[1] = c->rate[1];
	st->persist_ms = c->persist_ms;
}

/* Bytes per second since the last replication, as a peak that halves each time. */
static void update_rates(struct lb_conn *c, uint64_t now_ms)
{
	uint64_t elapsed = now_ms > c->last_sync_ms ? now_ms - c->last_sync_ms : 1;

	for (int d = 0; d < 2; d++) {
		uint64_t cur = (c->bytes[d] - c->sync_bytes[d]) * 1000u / elapsed;

		if (cur > UINT32_MAX)
			cur = UINT32_MAX;
		c->rate[d] = cur > c->rate[d] / 2 ? (uint32_t)cur : c->rate[d] / 2;
		c->sync_bytes[d] = c->bytes[d];
	}
}

/*
 * Under a SYN flood (half-open entries evicted within the last SYN_SENT
 * timeout), half-open connections are not replicated in async mode: each
 * spoofed SYN would cost a record and the sync queue would overflow.
 * A real connection is replicated at its handshake's end (a state change),
 * so a takeover loses only handshakes in flight, which the clients retry.
 * Zero-loss (defer) mode keeps replicating them: it promises the half-open
 * connections too, and pays for it under a flood.
 */
static int repl_skip_half_open(struct lb_engine *e, const struct lb_conn *c, uint64_t now_ms)
{
	uint64_t t = atomic_load_explicit(&e->embryo_evicted_ms, memory_order_relaxed);

	return !e->repl_conf.defer && c->tcp.state < LB_TCP_ESTABLISHED && t &&
	       now_ms - t < e->timeout_ms[LB_TCP_SYN_SENT];
}

/* Replicates c (locked) now. Returns the ticket, 0 when not replicating. */
static uint64_t repl_emit(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			  uint64_t now_ms, int urgent)
{
	struct lb_conn_state st;

	if (!e->repl || atomic_load_explicit(&e->role, memory_order_relaxed) != LB_ROLE_MASTER)
		return 0;
	update_rates(c, now_ms);
	c->version++;
	c->last_sync_ms = now_ms;
	c->flags &= ~(LB_CONN_F_DIRTY | LB_CONN_F_UNSENT);
	c->wake_ms = 0;
	lb_conn_export(e->table, c, now_ms, &st);
	lb_worker_count(w, LB_CNT_REPL_UPDATES, 1);
	return e->repl->conn(e->repl_arg, &st, urgent);
}

/*
 * True when c (locked) has moved a quarter of max_lag in a direction since
 * its last record at more than twice the rate that record told the peer.
 * The peer's takeover slack grows with that rate; right after a handshake it
 * knows none, and a burst could run past twice max_lag before the max_lag
 * record, made in the last moments before a crash, leaves the active. So a
 * connection that speeds up is re-sent early, once per doubling.
 */
static int rate_outrun(const struct lb_engine *e, const struct lb_conn *c, uint64_t now_ms)
{
	uint64_t elapsed = now_ms > c->last_sync_ms ? now_ms - c->last_sync_ms : 1;

	for (int d = 0; d < 2; d++) {
		uint64_t moved = c->bytes[d] - c->sync_bytes[d];

		if (moved >= e->repl_conf.max_lag / 4 &&
		    moved * 1000u / elapsed > 2u * (uint64_t)c->rate[d])
			return 1;
	}
	return 0;
}

/*
 * A move between established and closed (a FIN sent or acked, the other
 * side's FIN): the peer needs it no sooner than window movement. A peer
 * that takes over with the state before it follows the rest of the close
 * from the packets (its slack covers the ends that moved) and at worst
 * keeps the entry for the closing state's timeout; meanwhile the close
 * itself, nearly always a few milliseconds later, replaces it. So a short
 * connection costs its Open and its close, not a record per FIN.
 */
static int closing_progress(uint8_t before, uint8_t now)
{
	return before >= LB_TCP_ESTABLISHED && now > before && now < LB_TCP_TIME_WAIT;
}

/*
 * The handshake's end (syn_recv to established) once syn_recv itself was
 * replicated (not under a SYN flood, where half-open states are not): the
 * peer holds both ISNs, and a peer that takes over in syn_recv finishes
 * the handshake from the next segments (lb_tcp follows the server's data
 * as proof of the client's ACK), as it must already when a takeover falls
 * inside one flush. So it waits as window movement does, and a short
 * connection's close replaces it.
 */
static int handshake_end(struct lb_engine *e, const struct lb_conn *c, uint8_t before,
			 uint64_t now_ms)
{
	return before == LB_TCP_SYN_RECV && c->tcp.state == LB_TCP_ESTABLISHED && c->version &&
	       !repl_skip_half_open(e, c, now_ms);
}

/*
 * After an accepted packet of c (locked): a state change is replicated at
 * once (queued for the next flush, where the connection's other changes of
 * that flush join it: a short connection's handshake and close travel as one
 * record), except the handshake's end and closing progress (above), which
 * wait as window movement does: at most every interval, or sooner once it
 * moved max_lag bytes, or a quarter of it at twice its replicated rate (a
 * burst inside one interval must not leave the peer further behind than the
 * takeover slack covers: urgent, sent without waiting for company); a
 * connection that went quiet with unreplicated movement is flushed by the
 * wake timer. So the peer is never more than about one interval, and never
 * more than max_lag bytes, behind.
 */
uint64_t lb_repl_after_packet(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			      uint8_t before, uint64_t now_ms)
{
	uint32_t interval = e->repl_conf.interval_ms;
	int burst;

	if (!e->repl || repl_skip_half_open(e, c, now_ms))
		return 0;
	burst = c->bytes[0] - c->sync_bytes[0] >= e->repl_conf.max_lag ||
		c->bytes[1] - c->sync_bytes[1] >= e->repl_conf.max_lag ||
		rate_outrun(e, c, now_ms);
	if (burst ||
	    (c->tcp.state != before && !closing_progress(before, c->tcp.state) &&
	     !handshake_end(e, c, before, now_ms)) ||
	    now_ms - c->last_sync_ms >= interval)
		return repl_emit(e, w, c, now_ms, burst);
	if (!(c->flags & LB_CONN_F_DIRTY)) {
		c->flags |= LB_CONN_F_DIRTY;
		lb_table_wake_at(e->table, c, c->last_sync_ms + interval);
	}
	return 0;
}

/* The control thread's wake call: flush unreplicated movement. */
static void on_wake(struct lb_conn *c, uint64_t now_ms, void *arg)
{
	struct lb_engine *e = arg;

	c->wake_ms = 0;
	if ((c->flags & LB_CONN_F_DIRTY) && e->tick_worker)
		repl_emit(e, e->tick_worker, c, now_ms, 0);
}

static void repl_persist(struct lb_engine *e, struct lb_worker *w, const struct lb_backend *be,
			 const struct lb_addr *client, uint32_t timeout_ms)
{
	struct lb_persist_state ps;

	if (!e->repl || atomic_load_explicit(&e->role, memory_order_relaxed) != LB_ROLE_MASTER)
		return;
	ps.vip = be->vip;
	ps.vport = be->vport;
	ps.client = *client;
	ps.backend = be->conf.addr;
	ps.backend_port = be->conf.port;
	ps.expires_ms = timeout_ms;
	lb_worker_count(w, LB_CNT_REPL_PERSISTS, 1);
	e->repl->persist(e->repl_arg, &ps);
}

/*
 * While a client has a connection open, its persistence entry must not run
 * out (IPVS keeps a template alive while it controls connections). Refreshing
 * at most every half timeout keeps the persistence lock off the packet path.
 * Called with c locked; returns 1 when the caller must touch the entry.
 */
static int persist_due(struct lb_conn *c, uint64_t now_ms)
{
	if (!c->persist_ms || now_ms - c->persist_touched_ms < c->persist_ms / 2)
		return 0;
	c->persist_touched_ms = now_ms;
	return 1;
}

/* Counts, times and replicates an accepted packet of c (locked). */
static void account(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
		    enum lb_dir dir, struct lb_packet *pkt, const struct lb_pkt_info *pi,
		    uint8_t before, int reopened, uint64_t now_ms)
{
	uint64_t expires = now_ms + e->timeout_ms[c->tcp.state], ticket;

	if (reopened) {
		/* A new incarnation of the tuple. */
		lb_worker_count(w, LB_CNT_CONNS_REOPENED, 1);
		c->created_us = lb_engine_real_us(e, now_ms);
		c->version = 0;
	}
	if (c->tcp.used_slack)
		lb_worker_count(w, LB_CNT_TAKEOVER_SLACK, 1);
	lb_backend_state_change(c->backend, before, c->tcp.state);
	/* A shorter timeout must not wait for the wheel's old placement. */
	if (expires < c->expires_ms)
		lb_table_wake_at(e->table, c, expires);
	c->expires_ms = expires;
	c->last_seen_ms = now_ms;
	c->pkts[dir]++;
	c->bytes[dir] += pi->ip_len;
	ticket = lb_repl_after_packet(e, w, c, before, now_ms);
	/* Zero-loss mode holds the server's SYN/ACK until the peer has the
	 * connection with the server's ISN, and a SYN that reopens a closed
	 * entry as on_new() holds a new one: else a takeover before its SYN/ACK
	 * finds the peer's entry still closed, which refuses the SYN/ACK. It
	 * holds the RST that closes a connection too: a peer that took over
	 * without it kept the entry open, forwarded what the endpoints sent
	 * after it, and refused their later RSTs (below the acks it saw). */
	if (e->repl_conf.defer &&
	    ((before == LB_TCP_SYN_SENT && c->tcp.state == LB_TCP_SYN_RECV) ||
	     (reopened && c->tcp.state == LB_TCP_SYN_RECV) ||	/* an ignored SYN's SYN/ACK */
	     (before >= LB_TCP_TIME_WAIT && c->tcp.state == LB_TCP_SYN_SENT) ||
	     (before != LB_TCP_CLOSE && c->tcp.state == LB_TCP_CLOSE)))
		pkt->defer_ticket = ticket;
}

/* Ends the connection of an old half-open record if it is still that one and half-open. */
static void embryo_evict(struct lb_engine *e, struct lb_worker *w, const struct lb_embryo *old,
			 uint64_t now_ms)
{
	enum lb_dir dir;
	struct lb_conn *c = lb_table_lookup(e->table, &old->orig, &dir);

	if (!c)
		return;
	if (dir == LB_DIR_ORIG && c->created_us == old->created_us &&
	    (c->tcp.state == LB_TCP_SYN_SENT || c->tcp.state == LB_TCP_SYN_RECV) &&
	    c->expires_ms > now_ms) {
		/* The control thread frees it at its next tick; a packet of a
		 * real handshake meanwhile gives it its timeout back. */
		c->expires_ms = now_ms;
		lb_table_wake_at(e->table, c, now_ms);
		lb_worker_count(w, LB_CNT_CONNS_EVICTED, 1);
		atomic_store_explicit(&e->embryo_evicted_ms, now_ms ? now_ms : 1,
				      memory_order_relaxed);
	}
	lb_conn_unlock(c);
}

/*
 * Records a new half-open connection (no connection lock held: the eviction
 * looks another one up). Past max_embryonic the oldest record goes, and
 * with it its connection if that is still half-open.
 */
static void embryo_add(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
		       uint64_t created_us, uint64_t now_ms)
{
	struct lb_embryos *em = &e->embryos;
	struct lb_embryo old;
	int evict = 0;

	pthread_mutex_lock(&em->lock);
	if (em->n == em->cap) {
		old = em->ring[em->head];
		em->head = (em->head + 1) % em->cap;
		em->n--;
		evict = 1;
	}
	em->ring[(em->head + em->n) % em->cap] = (struct lb_embryo){ *orig, created_us };
	em->n++;
	pthread_mutex_unlock(&em->lock);
	if (evict)
		embryo_evict(e, w, &old, now_ms);
}

/*
 * A segment the tracker let through without a state change (an inexact RST
 * for the endpoint to challenge, a SYN on a live tuple for the server to
 * answer): forwarded and counted, but it neither refreshes the entry's
 * timeout nor is replicated, so a blind flood of them keeps nothing alive.
 */
static enum lb_verdict forward_ignored(struct lb_engine *e, struct lb_worker *w,
				       struct lb_conn *c, enum lb_dir dir,
				       struct lb_packet *pkt, const struct lb_pkt_info *pi)
{
	struct lb_tuple nat = lb_conn_tuple(e->table, c, dir == LB_DIR_ORIG ? LB_DIR_REPLY
									   : LB_DIR_ORIG);

	lb_worker_count(w, (pi->flags & LB_TCP_RST) ? LB_CNT_RST_INEXACT : LB_CNT_SYN_IGNORED, 1);
	backend_count_packet(c->backend, dir, pi->ip_len);	/* see on_conn() */
	lb_conn_unlock(c);
	return forward(w, pkt, pi, dir, &nat);
}

/* A packet of a known connection; c is locked and is unlocked here. */
static enum lb_verdict on_conn(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			       enum lb_dir dir, struct lb_packet *pkt,
			       const struct lb_pkt_info *pi, uint64_t now_ms)
{
	uint8_t before = c->tcp.state;
	uint32_t isn_before = c->tcp.isn[LB_DIR_ORIG];
	uint64_t created_us;
	int reopened, established;
	enum lb_tcp_result r;
	struct lb_tuple nat;
	struct lb_backend *be = c->backend;
	uint32_t persist_ms, service_id;
	struct lb_addr client;

	if (!hook_matches(pkt->hook, dir)) {
		lb_conn_unlock(c);
		return drop(w, pkt, LB_CNT_DROP_WRONG_HOOK);
	}
	if ((c->tcp.slack[0] | c->tcp.slack[1]) &&
	    now_ms >= atomic_load_explicit(&e->promoted_ms, memory_order_relaxed) +
		      e->repl_conf.grace_ms)
		c->tcp.slack[0] = c->tcp.slack[1] = 0;	/* tracking is exact again */
	lb_fastpath_pull(e, w, c);
	r = lb_tcp_track(&c->tcp, dir, pi);
	if (r != LB_TCP_ACCEPT) {
		lb_conn_unlock(c);
		return drop(w, pkt, tcp_drop[r]);
	}
	if (c->tcp.ignored)
		return forward_ignored(e, w, c, dir, pkt, pi);
	/* A new incarnation: a SYN reusing a closed tuple, or the server
	 * agreeing to an ignored SYN (another client ISN). */
	reopened = (c->tcp.state == LB_TCP_SYN_SENT && before >= LB_TCP_TIME_WAIT) ||
		   c->tcp.isn[LB_DIR_ORIG] != isn_before;
	account(e, w, c, dir, pkt, pi, before, reopened, now_ms);
	lb_fastpath_after(e, w, c);
	created_us = c->created_us;
	established = before < LB_TCP_ESTABLISHED && c->tcp.state >= LB_TCP_ESTABLISHED &&
		      c->persist_ms;
	if (established)
		c->persist_touched_ms = now_ms;
	nat = lb_conn_tuple(e->table, c, dir == LB_DIR_ORIG ? LB_DIR_REPLY : LB_DIR_ORIG);
	persist_ms = persist_due(c, now_ms) ? c->persist_ms : 0;
	service_id = c->service_id;
	client = pi->tuple.src;
	if (dir != LB_DIR_ORIG)
		client = pi->tuple.dst;
	/* be lives as long as a connection points at it, so everything that
	 * reads it happens before the unlock: past it the control thread may
	 * expire c and free a drained be, however unlikely the timing. */
	backend_count_packet(be, dir, pi->ip_len);
	if (persist_ms && !established)
		repl_persist(e, w, be, &client, persist_ms);
	if (established)
		persist_established(e, w, service_id, &client, be, c->persist_ms, now_ms);
	lb_conn_unlock(c);
	if (persist_ms && !established)
		lb_persist_touch(e->persist, service_id, &client, now_ms + persist_ms);
	if (reopened)
		embryo_add(e, w, &pi->tuple, created_us, now_ms);
	return forward(w, pkt, pi, dir, &nat);
}

/* Records a client's persistence entry; a full table is counted. Returns 0 or -1. */
static int persist_record(struct lb_engine *e, struct lb_worker *w, uint32_t service_id,
			  const struct lb_addr *client, struct lb_backend *be, uint64_t expires_ms)
{
	struct lb_persist_entry pe = { .service_id = service_id, .client = *client,
				       .backend = be, .expires_ms = expires_ms };

	if (lb_persist_set(e->persist, &pe) == 0)
		return 0;
	lb_worker_count(w, LB_CNT_PERSIST_FULL, 1);
	return -1;
}

/*
 * Chooses the backend of a new connection: persistence first, then the
 * scheduler. A client without an entry gets one that lasts only as long as
 * a half-open connection (so its parallel SYNs land together, as with IPVS's
 * templates); it gets the service's full persistence timeout, and goes to
 * the peer, only when a connection completes its handshake (see
 * persist_established()). So a spoofed SYN neither fills the persistence
 * table for long nor costs a sync record.
 */
static struct lb_backend *choose_backend(struct lb_engine *e, struct lb_worker *w,
					 struct lb_service *svc, const struct lb_pkt_info *pi,
					 uint64_t now_ms)
{
	const struct lb_addr *client = &pi->tuple.src;
	struct lb_backend *be = NULL;

	if (svc->persistence_ms) {
		be = lb_persist_lookup(e->persist, svc->id, client, now_ms);
		if (be && !lb_backend_available(be))
			be = NULL;
		if (be)
			return be;
	}
	be = lb_sched_pick(svc->sched, client, pi->tuple.sport);
	if (be && svc->persistence_ms)
		persist_record(e, w, svc->id, client, be,
			       now_ms + e->timeout_ms[LB_TCP_SYN_SENT]);
	return be;
}

/* c's handshake completed: its client's persistence entry now counts. */
static void persist_established(struct lb_engine *e, struct lb_worker *w, uint32_t service_id,
				const struct lb_addr *client, struct lb_backend *be,
				uint32_t persist_ms, uint64_t now_ms)
{
	if (persist_record(e, w, service_id, client, be, now_ms + persist_ms) == 0)
		repl_persist(e, w, be, client, persist_ms);
}

/* Inserts the connection of a SYN to svc; returns it locked, or NULL (counted). */
static struct lb_conn *create_conn(struct lb_engine *e, struct lb_worker *w,
				   struct lb_service *svc, struct lb_packet *pkt,
				   const struct lb_pkt_info *pi, uint64_t now_ms, int *existed)
{
	struct lb_backend *be = choose_backend(e, w, svc, pi, now_ms);
	struct lb_conn_key key;
	struct lb_conn *c;
	int err;

	*existed = 0;
	if (!be) {
		drop(w, pkt, LB_CNT_DROP_NO_BACKEND);
		return NULL;
	}
	key.orig = pi->tuple;
	key.reply = (struct lb_tuple){ .src = be->conf.addr, .dst = pi->tuple.src,
				       .sport = be->conf.port, .dport = pi->tuple.sport };
	key.service_id = svc->id;
	key.backend = be;
	err = lb_table_insert(e->table, &key, now_ms,
			      now_ms + e->timeout_ms[LB_TCP_SYN_SENT], &c);
	if (err == -EEXIST) {
		*existed = 1;	/* another worker created it a moment ago */
		return c;
	}
	if (err < 0) {
		drop(w, pkt, err == -ENOSPC ? LB_CNT_DROP_TABLE_FULL : LB_CNT_DROP_TUPLE_CLASH);
		return NULL;
	}
	lb_tcp_init(&c->tcp, pi);
	c->persist_ms = svc->persistence_ms;
	c->persist_touched_ms = now_ms;
	c->created_us = lb_engine_real_us(e, now_ms);
	atomic_fetch_add(&be->inactive, 1);
	atomic_fetch_add_explicit(&be->conns_total, 1, memory_order_relaxed);
	lb_worker_count(w, LB_CNT_CONNS_CREATED, 1);
	return c;
}

/* A packet that matches no connection: only a client's SYN may start one. */
static enum lb_verdict on_new(struct lb_engine *e, struct lb_worker *w,
			      struct lb_packet *pkt, const struct lb_pkt_info *pi,
			      uint64_t now_ms)
{
	struct lb_service *svc;
	struct lb_conn *c;
	struct lb_tuple nat;
	uint64_t ticket, created_us;
	int existed;

	if ((pi->flags & (LB_TCP_SYN | LB_TCP_ACK | LB_TCP_RST | LB_TCP_FIN)) != LB_TCP_SYN ||
	    pkt->hook == LB_HOOK_POST)
		return drop(w, pkt, LB_CNT_DROP_NO_CONN);
	/* The read lock keeps the chosen backend alive until it is counted. */
	pthread_rwlock_rdlock(&e->svc_lock);
	svc = lb_svcset_find(e->svcset, &pi->tuple.dst, pi->tuple.dport);
	if (!svc) {
		pthread_rwlock_unlock(&e->svc_lock);
		return drop(w, pkt, LB_CNT_DROP_NO_SERVICE);
	}
	if (svc->disabled) {
		pthread_rwlock_unlock(&e->svc_lock);
		return drop(w, pkt, LB_CNT_DROP_SERVICE_DISABLED);
	}
	c = create_conn(e, w, svc, pkt, pi, now_ms, &existed);
	pthread_rwlock_unlock(&e->svc_lock);
	if (!c)
		return LB_VERDICT_DROP;
	if (existed)
		return on_conn(e, w, c, LB_DIR_ORIG, pkt, pi, now_ms);
	c->pkts[LB_DIR_ORIG]++;
	c->bytes[LB_DIR_ORIG] += pi->ip_len;
	ticket = repl_skip_half_open(e, c, now_ms) ? 0 : repl_emit(e, w, c, now_ms, 0);
	if (e->repl_conf.defer)
		pkt->defer_ticket = ticket;
	nat = lb_conn_tuple(e->table, c, LB_DIR_REPLY);
	created_us = c->created_us;
	backend_count_packet(c->backend, LB_DIR_ORIG, pi->ip_len);	/* see on_conn() */
	lb_conn_unlock(c);
	embryo_add(e, w, &pi->tuple, created_us, now_ms);
	return forward(w, pkt, pi, LB_DIR_ORIG, &nat);
}

enum lb_verdict lb_engine_packet(struct lb_engine *e, struct lb_worker *w,
				 struct lb_packet *pkt, uint64_t now_ms)
{
	struct lb_pkt_info pi;
	enum lb_pkt_result r;
	enum lb_dir dir;
	struct lb_conn *c;

	pkt->modified = 0;
	pkt->defer_ticket = 0;
	pkt->drop_reason = 0;
	if (atomic_load_explicit(&e->role, memory_order_relaxed) != LB_ROLE_MASTER)
		return drop(w, pkt, LB_CNT_DROP_NOT_MASTER);
	if (!atomic_load_explicit(&e->promoted_ms, memory_order_relaxed)) {
		uint_fast64_t none = 0;

		atomic_compare_exchange_strong(&e->promoted_ms, &none, now_ms ? now_ms : 1);
	}
	r = lb_pkt_parse(pkt->data, pkt->len, &pi);
	if (r != LB_PKT_OK)
		return drop(w, pkt, pkt_drop[r]);
	/* Nothing may move a tracker on a corrupted segment (a flipped bit
	 * turning data into an RST), and the endpoint would discard it
	 * anyway. A CHECKSUM_PARTIAL packet was built on this host or a
	 * trusted veth peer and carries only the pseudo-header sum. */
	if (!(pkt->flags & (LB_PKT_F_CSUM_PARTIAL | LB_PKT_F_CSUM_TRUSTED)) &&
	    !lb_pkt_tcp_csum_ok(pkt->data, &pi))
		return drop(w, pkt, LB_CNT_DROP_BAD_CSUM);
	c = lb_table_lookup(e->table, &pi.tuple, &dir);
	if (c)
		return on_conn(e, w, c, dir, pkt, &pi, now_ms);
	return on_new(e, w, pkt, &pi, now_ms);
}

struct expire_ctx {
	struct lb_engine *e;
	struct lb_worker *w;
	uint64_t now_ms;
};

void lb_conn_release_backend(struct lb_conn *c)
{
	struct lb_backend *be = c->backend;

	atomic_fetch_sub(c->tcp.state == LB_TCP_ESTABLISHED ? &be->active : &be->inactive, 1);
}

/*
 * Whether the peer expires c by itself: its state is closed, so its last
 * record (every state change is sent) told the peer that state and the
 * time left, and the peer's entry runs out at the same moment plus the
 * record's delivery lag (later packets only move ours later; nothing moves
 * a closed entry's expiry earlier without a record). A ConnDelete would
 * only say it sooner, and a new incarnation of the tuple replaces the entry
 * on the peer either way.
 */
static int peer_expires_itself(const struct lb_conn *c)
{
	return lb_tcp_state_closed(c->tcp.state);
}

/*
 * A connection leaves the table: release its backend, tell the peer unless
 * it expires the entry by itself; the client's persistence runs for a full
 * timeout from now (set, not touch: the entry may have lapsed during a long
 * idle connection).
 */
static void on_expire(struct lb_conn *c, void *arg)
{
	struct expire_ctx *x = arg;
	struct lb_engine *e = x->e;
	struct lb_backend *be = c->backend;

	lb_fastpath_forget(e, c);
	lb_conn_release_backend(c);
	/* An incarnation the peer never heard of needs no removal there. */
	if (e->repl && atomic_load(&e->role) == LB_ROLE_MASTER &&
	    !(c->flags & LB_CONN_F_UNSENT)) {
		struct lb_conn_state st;

		if (peer_expires_itself(c)) {
			lb_worker_count(x->w, LB_CNT_REPL_DELETES_ELIDED, 1);
		} else {
			lb_conn_export(e->table, c, x->now_ms, &st);
			lb_worker_count(x->w, LB_CNT_REPL_DELETES, 1);
			e->repl->conn_delete(e->repl_arg, &st);
		}
	}
	/* Only a client that completed a handshake earns persistence. */
	if (c->persist_ms && !atomic_load(&be->draining) &&
	    c->tcp.state != LB_TCP_SYN_SENT && c->tcp.state != LB_TCP_SYN_RECV) {
		struct lb_tuple orig = lb_conn_tuple(e->table, c, LB_DIR_ORIG);

		persist_record(e, x->w, c->service_id, &orig.src, be, x->now_ms + c->persist_ms);
	}
	lb_worker_count(x->w, LB_CNT_CONNS_EXPIRED, 1);
}

void lb_engine_tick(struct lb_engine *e, struct lb_worker *w, uint64_t now_ms)
{
	struct expire_ctx x = { e, w, now_ms };

	e->tick_worker = w;
	lb_table_expire(e->table, now_ms, 65536, on_expire, &x);
	lb_persist_expire(e->persist, now_ms);
	lb_worker_count(w, LB_CNT_BACKENDS_FREED, lb_engine_reclaim_backends(e));
}

struct foreach_ctx {
	const struct lb_table *table;
	uint64_t now_ms;
	void (*fn)(const struct lb_conn_info *c, void *arg);
	void *arg;
};

static void conn_info(const struct lb_table *t, const struct lb_conn *c, uint64_t now_ms,
		      struct lb_conn_info *info)
{
	*info = (struct lb_conn_info){ .service_id = c->service_id };
	lb_conn_export(t, c, now_ms, &info->state);
	/* The live tracker, takeover slack included: replication leaves the
	 * slack out, an operator looking at a taken-over connection wants it. */
	info->state.tcp = c->tcp;
	for (int d = 0; d < 2; d++) {
		info->pkts[d] = c->pkts[d];
		info->bytes[d] = c->bytes[d];
	}
}

static void visit_conn(const struct lb_conn *c, void *arg)
{
	struct foreach_ctx *x = arg;
	struct lb_conn_info info;

	conn_info(x->table, c, x->now_ms, &info);
	x->fn(&info, x->arg);
}

void lb_engine_foreach_conn(struct lb_engine *e, uint64_t now_ms,
			    void (*fn)(const struct lb_conn_info *c, void *arg), void *arg)
{
	struct foreach_ctx x = { e->table, now_ms, fn, arg };

	lb_table_foreach(e->table, visit_conn, &x);
}

int lb_engine_foreach_conn_step(struct lb_engine *e, size_t *cursor, size_t nbuckets,
				uint64_t now_ms,
				void (*fn)(const struct lb_conn_info *c, void *arg), void *arg)
{
	struct foreach_ctx x = { e->table, now_ms, fn, arg };

	return lb_table_foreach_step(e->table, cursor, nbuckets, visit_conn, &x);
}

size_t lb_engine_conn_count(struct lb_engine *e)
{
	return lb_table_count(e->table);
}

/* The entry keyed by orig in its original direction, locked; NULL when
 * there is none (a reply tuple that matches is not that entry). */
static struct lb_conn *lookup_orig(struct lb_engine *e, const struct lb_tuple *orig)
{
	enum lb_dir dir;
	struct lb_conn *c = lb_table_lookup(e->table, orig, &dir);

	if (c && dir != LB_DIR_ORIG) {
		lb_conn_unlock(c);
		return NULL;
	}
	return c;
}

int lb_engine_conn_find(struct lb_engine *e, const struct lb_tuple *orig, uint64_t now_ms,
			struct lb_conn_state *out)
{
	struct lb_conn *c = lookup_orig(e, orig);

	if (!c)
		return -ENOENT;
	lb_conn_export(e->table, c, now_ms, out);
	lb_conn_unlock(c);
	return 0;
}

/* The connection orig under its lock, caught up with the fast path first
 * when pull is set (w counts what the kernel forwarded). */
static int conn_info_locked(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
			    uint64_t now_ms, bool pull, struct lb_conn_info *out)
{
	struct lb_conn *c = lookup_orig(e, orig);

	if (!c)
		return -ENOENT;
	if (pull)
		lb_fastpath_pull(e, w, c);
	conn_info(e->table, c, now_ms, out);
	lb_conn_unlock(c);
	return 0;
}

int lb_engine_conn_live(struct lb_engine *e, const struct lb_tuple *orig, uint64_t now_ms,
			struct lb_conn_info *out)
{
	return conn_info_locked(e, NULL, orig, now_ms, false, out);
}

int lb_engine_conn_fresh(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
			 uint64_t now_ms, struct lb_conn_info *out)
{
	return conn_info_locked(e, w, orig, now_ms, true, out);
}

int lb_engine_conn_peek(const struct lb_engine *e, const struct lb_tuple *orig,
			uint64_t now_ms, struct lb_conn_info *out)
{
	enum lb_dir dir;
	const struct lb_conn *c = lb_table_peek(e->table, orig, &dir);

	if (!c || dir != LB_DIR_ORIG)
		return -ENOENT;
	conn_info(e->table, c, now_ms, out);
	return 0;
}
