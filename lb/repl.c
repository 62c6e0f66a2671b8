/*
 * The engine's side of replication: applying the peer's connection and
 * persistence state to the live table, and exporting ours for a bulk resync.
 * See "Replication" in include/lb_engine.h.
 *
 * Ordering rules (pfsync refuses state that would move backwards; so do we):
 *   created_us  a tuple's incarnation; the newer incarnation replaces the
 *               older, whatever arrives in which order
 *   version     the updates of one incarnation; only a higher one applies,
 *               and only if no TCP state or window edge moves backwards
 * All of this runs on the engine's control thread, the only thread that
 * frees connections, so replacing a connection needs no further care.
 */
#include <errno.h>
#include <string.h>

#include "engine_impl.h"

/* Sync lag the takeover slack must cover, on top of the interval: delivery,
 * repair of a lost datagram, and the failover itself. */
#define SLACK_EXTRA_MS 250u
#define SLACK_FLOOR (64u * 1024u)
#define SLACK_CAP (1u << 30)

static const enum lb_counter import_counter[] = {
	[LB_IMPORT_NEW] = LB_CNT_IMPORT_NEW,
	[LB_IMPORT_UPDATED] = LB_CNT_IMPORT_UPDATED,
	[LB_IMPORT_STALE] = LB_CNT_IMPORT_STALE,
	[LB_IMPORT_REGRESS] = LB_CNT_IMPORT_REGRESS,
	[LB_IMPORT_NO_SERVICE] = LB_CNT_IMPORT_NO_SERVICE,
	[LB_IMPORT_NO_BACKEND] = LB_CNT_IMPORT_NO_BACKEND,
	[LB_IMPORT_FULL] = LB_CNT_IMPORT_FULL,
	[LB_IMPORT_CLASH] = LB_CNT_IMPORT_CLASH,
	[LB_IMPORT_IGNORED] = LB_CNT_IMPORT_IGNORED,
};

/*
 * How far past its replicated bounds a connection's sequence numbers may be
 * when the peer dies. The active re-sends a connection before it moves
 * max_lag bytes, so twice that covers any burst; the peak rate over one
 * interval plus the sync lag, doubled, covers the time bound; and a few
 * windows cover data in flight when the state was taken.
 */
static uint32_t takeover_slack(const struct lb_engine *e, const struct lb_conn_state *st)
{
	uint64_t rate = st->rate[0] > st->rate[1] ? st->rate[0] : st->rate[1];
	uint64_t win = st->tcp.peer[0].maxwin > st->tcp.peer[1].maxwin ? st->tcp.peer[0].maxwin
								       : st->tcp.peer[1].maxwin;
	uint64_t slack = rate * (e->repl_conf.interval_ms + SLACK_EXTRA_MS) / 1000u * 2u;

	if (slack < 2u * e->repl_conf.max_lag)
		slack = 2u * e->repl_conf.max_lag;
	slack += 4 * win + SLACK_FLOOR;
	return slack > SLACK_CAP ? SLACK_CAP : (uint32_t)slack;
}

/* True when new would move c's TCP state or a window edge backwards. */
static int regresses(const struct lb_tcp *old, const struct lb_tcp *new)
{
	if (new->state < old->state)
		return 1;
	for (int d = 0; d < 2; d++) {
		const struct lb_tcp_peer *o = &old->peer[d], *n = &new->peer[d];

		if (!(o->flags & LB_TCP_PF_SEEN))
			continue;
		if ((o->flags & ~n->flags) || lb_seq_lt(n->end, o->end) ||
		    lb_seq_lt(n->maxend, o->maxend))
			return 1;
	}
	return 0;
}

/* Writes st into c (locked), the backend being the same. */
static void apply(struct lb_engine *e, struct lb_conn *c, const struct lb_conn_state *st,
		  uint64_t now_ms)
{
	uint8_t before = c->tcp.state;
	uint64_t expires = now_ms + st->expires_ms;
	uint32_t slack = takeover_slack(e, st);

	c->tcp = st->tcp;
	c->tcp.slack[0] = c->tcp.slack[1] = slack;
	c->tcp.used_slack = 0;
	lb_tcp_strip_local(&c->tcp);
	c->created_us = st->created_us;
	c->version = st->version;
	c->rate[0] = st->rate[0];
	c->rate[1] = st->rate[1];
	c->persist_ms = st->persist_ms;
	c->flags |= LB_CONN_F_SYNCED;
	c->flags &= ~(LB_CONN_F_DIRTY | LB_CONN_F_UNSENT);
	c->last_sync_ms = c->last_seen_ms = now_ms;
	if (expires < c->expires_ms)
		lb_table_wake_at(e->table, c, expires);
	c->expires_ms = expires;
	lb_backend_state_change(c->backend, before, c->tcp.state);
	lb_fastpath_import(e, c);
}

enum update_result { UPD_DONE, UPD_REPLACE };

/* Applies st to the existing c (locked); *r says how it went. */
static enum update_result update(struct lb_engine *e, struct lb_conn *c,
				 struct lb_backend *be, const struct lb_conn_state *st,
				 uint64_t now_ms, enum lb_import_result *r)
{
	if (st->created_us < c->created_us) {
		*r = LB_IMPORT_STALE;		/* an older incarnation */
	} else if (st->created_us > c->created_us) {
		if (c->backend != be)
			return UPD_REPLACE;	/* reply tuple differs: re-insert */
		apply(e, c, st, now_ms);
		*r = LB_IMPORT_UPDATED;
	} else if (st->version <= c->version) {
		*r = LB_IMPORT_STALE;
	} else if (regresses(&c->tcp, &st->tcp)) {
		*r = LB_IMPORT_REGRESS;
	} else {
		apply(e, c, st, now_ms);
		*r = LB_IMPORT_UPDATED;
	}
	return UPD_DONE;
}

static void on_removed(struct lb_conn *c, void *arg)
{
	lb_fastpath_forget(arg, c);
	lb_conn_release_backend(c);
}

static enum lb_import_result insert(struct lb_engine *e, struct lb_service *svc,
				    struct lb_backend *be, const struct lb_conn_state *st,
				    uint64_t now_ms)
{
	struct lb_conn_key key = {
		.orig = st->orig,
		.reply = { .src = be->conf.addr, .dst = st->orig.src,
			   .sport = be->conf.port, .dport = st->orig.sport },
		.service_id = svc->id,
		.backend = be,
	};
	struct lb_conn *c;
	int err = lb_table_insert(e->table, &key, now_ms, now_ms + st->expires_ms, &c);

	if (err == -EEXIST)
		lb_conn_unlock(c);
	if (err < 0)
		return err == -ENOSPC ? LB_IMPORT_FULL : LB_IMPORT_CLASH;
	/* Counted as inactive first; apply() moves it to its real state. */
	atomic_fetch_add(&be->inactive, 1);
	atomic_fetch_add_explicit(&be->conns_total, 1, memory_order_relaxed);
	c->tcp.state = LB_TCP_SYN_SENT;
	c->persist_touched_ms = now_ms;
	apply(e, c, st, now_ms);
	lb_conn_unlock(c);
	return LB_IMPORT_NEW;
}

/* The backend a replicated connection names, in the service it names. */
static struct lb_backend *find_backend(struct lb_engine *e, const struct lb_service *svc,
				       const struct lb_addr *addr, uint16_t port)
{
	for (size_t i = 0; i < svc->nbackends; i++) {
		struct lb_backend *be = svc->backends[i];

		if (be->conf.port == port && lb_addr_equal(&be->conf.addr, addr))
			return be;
	}
	/* Not in the current list: perhaps draining after a reload. */
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++) {
		struct lb_backend *be = e->backends[i];

		if (be && be->service_id == svc->id && be->conf.port == port &&
		    lb_addr_equal(&be->conf.addr, addr))
			return be;
	}
	return NULL;
}

static enum lb_import_result import_locked(struct lb_engine *e, const struct lb_conn_state *st,
					   uint64_t now_ms)
{
	struct lb_service *svc = lb_svcset_find(e->svcset, &st->orig.dst, st->orig.dport);
	enum lb_import_result r = LB_IMPORT_UPDATED;
	struct lb_backend *be;
	struct lb_conn *c;
	enum lb_dir dir;

	if (!svc)
		return LB_IMPORT_NO_SERVICE;
	be = find_backend(e, svc, &st->backend, st->backend_port);
	if (!be)
		return LB_IMPORT_NO_BACKEND;
	c = lb_table_lookup(e->table, &st->orig, &dir);
	if (c && dir != LB_DIR_ORIG) {
		lb_conn_unlock(c);
		return LB_IMPORT_CLASH;
	}
	if (c) {
		if (update(e, c, be, st, now_ms, &r) == UPD_DONE) {
			lb_conn_unlock(c);
			return r;
		}
		lb_conn_unlock(c);
		lb_table_remove(e->table, c, on_removed, e);
	}
	return insert(e, svc, be, st, now_ms);
}

void lb_engine_set_import_watch(struct lb_engine *e,
				void (*fn)(void *arg, const struct lb_tuple *orig), void *arg)
{
	e->import_watch = fn;
	e->import_watch_arg = arg;
}

enum lb_import_result lb_engine_import_conn(struct lb_engine *e, struct lb_worker *w,
					    const struct lb_conn_state *st, uint64_t now_ms)
{
	enum lb_import_result r;

	if (e->import_watch)
		e->import_watch(e->import_watch_arg, &st->orig);
	if (atomic_load(&e->role) == LB_ROLE_MASTER) {
		r = LB_IMPORT_IGNORED;
	} else {
		/* As a reader: the backend found must outlive the insert. */
		pthread_rwlock_rdlock(&e->svc_lock);
		r = import_locked(e, st, now_ms);
		pthread_rwlock_unlock(&e->svc_lock);
	}
	lb_worker_count(w, import_counter[r], 1);
	return r;
}

int lb_engine_import_delete(struct lb_engine *e, struct lb_worker *w,
			    const struct lb_conn_state *st, uint64_t now_ms)
{
	struct lb_conn *c;
	enum lb_dir dir;
	int gone;

	(void)now_ms;
	if (e->import_watch)
		e->import_watch(e->import_watch_arg, &st->orig);
	if (atomic_load(&e->role) == LB_ROLE_MASTER) {
		lb_worker_count(w, LB_CNT_IMPORT_IGNORED, 1);
		return 0;
	}
	c = lb_table_lookup(e->table, &st->orig, &dir);
	if (!c)
		return 0;
	gone = dir == LB_DIR_ORIG && c->created_us <= st->created_us;
	lb_conn_unlock(c);
	if (gone) {
		lb_table_remove(e->table, c, on_removed, e);
		lb_worker_count(w, LB_CNT_IMPORT_DELETES, 1);
	}
	return gone;
}

int lb_engine_import_persist(struct lb_engine *e, struct lb_worker *w,
			     const struct lb_persist_state *st, uint64_t now_ms)
{
	struct lb_persist_entry pe = { .expires_ms = now_ms + st->expires_ms, .client = st->client };
	struct lb_service *svc;
	int err = -ENOENT;

	if (atomic_load(&e->role) == LB_ROLE_MASTER) {
		lb_worker_count(w, LB_CNT_IMPORT_IGNORED, 1);
		return 0;
	}
	pthread_rwlock_rdlock(&e->svc_lock);
	svc = lb_svcset_find(e->svcset, &st->vip, st->vport);
	if (svc && (pe.backend = find_backend(e, svc, &st->backend, st->backend_port))) {
		pe.service_id = svc->id;
		err = lb_persist_set(e->persist, &pe);
	}
	pthread_rwlock_unlock(&e->svc_lock);
	lb_worker_count(w, err == 0 ? LB_CNT_IMPORT_PERSISTS : LB_CNT_IMPORT_NO_BACKEND, 1);
	return err;
}

struct export_ctx {
	const struct lb_table *table;
	uint64_t now_ms;
	void (*conn_fn)(void *arg, const struct lb_conn_state *st);
	void (*persist_fn)(void *arg, const struct lb_persist_state *st);
	void *arg;
};

static void export_conn(const struct lb_conn *c, void *arg)
{
	struct export_ctx *x = arg;
	struct lb_conn_state st;

	/* Never sent live, so not in a resync either: both ways the peer
	 * knows nothing of it, and its expiry sends no ConnDelete. */
	if (c->flags & LB_CONN_F_UNSENT)
		return;

	lb_conn_export(x->table, c, x->now_ms, &st);
	x->conn_fn(x->arg, &st);
}

void lb_engine_repl_unsent(struct lb_engine *e, const struct lb_conn_state *st)
{
	struct lb_conn *c;
	enum lb_dir dir;

	c = lb_table_lookup(e->table, &st->orig, &dir);
	if (!c)
		return;
	/* Only that incarnation, and only if no later record of it was made
	 * since (that one will be sent, and its expiry must be too). */
	if (dir == LB_DIR_ORIG && c->created_us == st->created_us && c->version == st->version)
		c->flags |= LB_CONN_F_UNSENT;
	lb_conn_unlock(c);
}

int lb_engine_export_conns(struct lb_engine *e, size_t *cursor, size_t nbuckets,
			   uint64_t now_ms,
			   void (*fn)(void *arg, const struct lb_conn_state *st), void *arg)
{
	struct export_ctx x = { .table = e->table, .now_ms = now_ms, .conn_fn = fn, .arg = arg };

	return lb_table_foreach_step(e->table, cursor, nbuckets, export_conn, &x);
}

static void export_persist(const struct lb_persist_entry *pe, void *arg)
{
	struct export_ctx *x = arg;
	struct lb_persist_state st = {
		.vip = pe->backend->vip, .vport = pe->backend->vport, .client = pe->client,
		.backend = pe->backend->conf.addr, .backend_port = pe->backend->conf.port,
		.expires_ms = pe->expires_ms > x->now_ms ? (uint32_t)(pe->expires_ms - x->now_ms) : 0,
	};

	x->persist_fn(x->arg, &st);
}

void lb_engine_export_persist(struct lb_engine *e, uint64_t now_ms,
			      void (*fn)(void *arg, const struct lb_persist_state *st), void *arg)
{
	struct export_ctx x = { .now_ms = now_ms, .persist_fn = fn, .arg = arg };

	/* Under the service lock: entries point at backends, which a reload
	 * must not free while we read them. */
	pthread_rwlock_rdlock(&e->svc_lock);
	lb_persist_foreach(e->persist, now_ms, export_persist, &x);
	pthread_rwlock_unlock(&e->svc_lock);
}

int lb_engine_repl_held(struct lb_engine *e, const struct lb_conn_state *like, uint64_t now_ms,
			struct lb_conn_state *out)
{
	if (lb_engine_conn_find(e, &like->orig, now_ms, out) < 0 ||
	    out->created_us != like->created_us)
		return -ENOENT;
	return 0;
}
