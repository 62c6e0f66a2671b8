/*
 * lb_engine: the packet path. One packet: parse, find its connection (or
 * create one from a SYN), track TCP, rewrite, count. See include/lb_engine.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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
	while (e->conf.seed == 0 &&
	       getrandom(&e->conf.seed, sizeof(e->conf.seed), 0) != sizeof(e->conf.seed))
		;
	for (int s = 0; s < LB_TCP_STATE_COUNT; s++)
		e->timeout_ms[s] = conf->timeout_s[s] * 1000u;
	pthread_rwlock_init(&e->svc_lock, NULL);
	pthread_mutex_init(&e->workers_lock, NULL);
	e->next_service_id = 1;
	e->table = lb_table_new(conf->max_conns, e->conf.seed, now_ms);
	e->persist = lb_persist_new(conf->max_persist ? conf->max_persist : 1,
				    e->conf.seed * 31u, now_ms);
	if (!e->table || !e->persist) {
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

/* Moves a connection between its backend's active and inactive counts. */
static void backend_state_change(struct lb_backend *be, uint8_t from, uint8_t to)
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
			       const struct lb_tuple *nat, struct lb_backend *be)
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
	backend_count_packet(be, dir, pi->ip_len);
	return LB_VERDICT_ACCEPT;
}

static int hook_matches(enum lb_hook hook, enum lb_dir dir)
{
	return hook == LB_HOOK_ANY || (hook == LB_HOOK_PRE) == (dir == LB_DIR_ORIG);
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

/* A packet of a known connection; c is locked and is unlocked here. */
static enum lb_verdict on_conn(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			       enum lb_dir dir, struct lb_packet *pkt,
			       const struct lb_pkt_info *pi, uint64_t now_ms)
{
	uint8_t before = c->tcp.state;
	enum lb_tcp_result r;
	struct lb_tuple nat;
	struct lb_backend *be = c->backend;
	uint32_t persist_ms, service_id;
	struct lb_addr client;

	if (!hook_matches(pkt->hook, dir)) {
		lb_conn_unlock(c);
		lb_worker_count(w, LB_CNT_DROP_WRONG_HOOK, 1);
		return LB_VERDICT_DROP;
	}
	r = lb_tcp_track(&c->tcp, dir, pi);
	if (r != LB_TCP_ACCEPT) {
		lb_conn_unlock(c);
		lb_worker_count(w, tcp_drop[r], 1);
		return LB_VERDICT_DROP;
	}
	if (c->tcp.state == LB_TCP_SYN_SENT && before >= LB_TCP_TIME_WAIT)
		lb_worker_count(w, LB_CNT_CONNS_REOPENED, 1);
	backend_state_change(be, before, c->tcp.state);
	c->expires_ms = now_ms + e->timeout_ms[c->tcp.state];
	c->last_seen_ms = now_ms;
	c->pkts[dir]++;
	c->bytes[dir] += pi->ip_len;
	nat = c->tuple[dir == LB_DIR_ORIG ? LB_DIR_REPLY : LB_DIR_ORIG];
	persist_ms = persist_due(c, now_ms) ? c->persist_ms : 0;
	service_id = c->service_id;
	client = c->tuple[LB_DIR_ORIG].src;
	/* Past this point c may be freed by the control thread, so only
	 * copies are used. be stays valid: the expiry was just pushed at
	 * least a second ahead, and a backend is freed only after its last
	 * connection expired. */
	lb_conn_unlock(c);
	if (persist_ms)
		lb_persist_touch(e->persist, service_id, &client, now_ms + persist_ms);
	return forward(w, pkt, pi, dir, &nat, be);
}

/* Chooses the backend of a new connection: persistence first, then the scheduler. */
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
	}
	if (!be)
		be = lb_sched_pick(svc->sched, client, pi->tuple.sport);
	if (be && svc->persistence_ms) {
		struct lb_persist_entry pe = {
			.service_id = svc->id, .client = *client, .backend = be,
			.expires_ms = now_ms + svc->persistence_ms,
		};

		if (lb_persist_set(e->persist, &pe) < 0)
			lb_worker_count(w, LB_CNT_PERSIST_FULL, 1);
	}
	return be;
}

/* Inserts the connection of a SYN to svc; returns it locked, or NULL (counted). */
static struct lb_conn *create_conn(struct lb_engine *e, struct lb_worker *w,
				   struct lb_service *svc, const struct lb_pkt_info *pi,
				   uint64_t now_ms, int *existed)
{
	struct lb_backend *be = choose_backend(e, w, svc, pi, now_ms);
	struct lb_conn_key key;
	struct lb_conn *c;
	int err;

	*existed = 0;
	if (!be) {
		lb_worker_count(w, LB_CNT_DROP_NO_BACKEND, 1);
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
		lb_worker_count(w, err == -ENOSPC ? LB_CNT_DROP_TABLE_FULL
						  : LB_CNT_DROP_TUPLE_CLASH, 1);
		return NULL;
	}
	lb_tcp_init(&c->tcp, pi);
	c->persist_ms = svc->persistence_ms;
	c->persist_touched_ms = now_ms;
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
	struct lb_backend *be;
	int existed;

	if ((pi->flags & (LB_TCP_SYN | LB_TCP_ACK | LB_TCP_RST | LB_TCP_FIN)) != LB_TCP_SYN ||
	    pkt->hook == LB_HOOK_POST) {
		lb_worker_count(w, LB_CNT_DROP_NO_CONN, 1);
		return LB_VERDICT_DROP;
	}
	/* The read lock keeps the chosen backend alive until it is counted. */
	pthread_rwlock_rdlock(&e->svc_lock);
	svc = lb_svcset_find(e->svcset, &pi->tuple.dst, pi->tuple.dport);
	if (!svc) {
		pthread_rwlock_unlock(&e->svc_lock);
		lb_worker_count(w, LB_CNT_DROP_NO_SERVICE, 1);
		return LB_VERDICT_DROP;
	}
	c = create_conn(e, w, svc, pi, now_ms, &existed);
	pthread_rwlock_unlock(&e->svc_lock);
	if (!c)
		return LB_VERDICT_DROP;
	if (existed)
		return on_conn(e, w, c, LB_DIR_ORIG, pkt, pi, now_ms);
	c->pkts[LB_DIR_ORIG]++;
	c->bytes[LB_DIR_ORIG] += pi->ip_len;
	nat = c->tuple[LB_DIR_REPLY];
	be = c->backend;
	lb_conn_unlock(c);
	return forward(w, pkt, pi, LB_DIR_ORIG, &nat, be);
}

enum lb_verdict lb_engine_packet(struct lb_engine *e, struct lb_worker *w,
				 struct lb_packet *pkt, uint64_t now_ms)
{
	struct lb_pkt_info pi;
	enum lb_pkt_result r;
	enum lb_dir dir;
	struct lb_conn *c;

	pkt->modified = 0;
	r = lb_pkt_parse(pkt->data, pkt->len, &pi);
	if (r != LB_PKT_OK) {
		lb_worker_count(w, pkt_drop[r], 1);
		return LB_VERDICT_DROP;
	}
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

/*
 * A connection leaves the table: release its backend; the client's
 * persistence runs for a full timeout from now (set, not touch: the entry may
 * have lapsed during a long idle connection).
 */
static void on_expire(struct lb_conn *c, void *arg)
{
	struct expire_ctx *x = arg;
	struct lb_backend *be = c->backend;

	atomic_fetch_sub(c->tcp.state == LB_TCP_ESTABLISHED ? &be->active : &be->inactive, 1);
	if (c->persist_ms && !atomic_load(&be->draining)) {
		struct lb_persist_entry pe = {
			.service_id = c->service_id, .client = c->tuple[LB_DIR_ORIG].src,
			.backend = be, .expires_ms = x->now_ms + c->persist_ms,
		};

		if (lb_persist_set(x->e->persist, &pe) < 0)
			lb_worker_count(x->w, LB_CNT_PERSIST_FULL, 1);
	}
	lb_worker_count(x->w, LB_CNT_CONNS_EXPIRED, 1);
}

void lb_engine_tick(struct lb_engine *e, struct lb_worker *w, uint64_t now_ms)
{
	struct expire_ctx x = { e, w, now_ms };

	lb_table_expire(e->table, now_ms, 65536, on_expire, &x);
	lb_persist_expire(e->persist, now_ms);
	lb_worker_count(w, LB_CNT_BACKENDS_FREED, lb_engine_reclaim_backends(e));
}

void lb_engine_foreach_conn(struct lb_engine *e,
			    void (*fn)(const struct lb_conn *c, void *arg), void *arg)
{
	lb_table_foreach(e->table, fn, arg);
}

size_t lb_engine_conn_count(struct lb_engine *e)
{
	return lb_table_count(e->table);
}
