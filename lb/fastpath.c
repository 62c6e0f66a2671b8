/*
 * The engine's side of the kernel fast path (include/lb_fastpath.h): which
 * connections it hands over, and how what the kernel saw flows back into
 * the connection table. The engine never judges a packet of an installed
 * connection before it has caught up with the kernel's window edges, so the
 * slow path's checks are exactly as strict as if it had seen every packet.
 */
#include <errno.h>

#include "engine_impl.h"

void lb_engine_set_fastpath(struct lb_engine *e, const struct lb_fastpath_ops *ops, void *arg)
{
	e->fast = ops;
	e->fast_arg = arg;
}

static uint32_t seq_max(uint32_t a, uint32_t b)
{
	return lb_seq_gt(b, a) ? b : a;
}

/* Window edges and acks move forward only; the larger window wins. */
static void merge_peers(struct lb_conn *c, const struct lb_fastpath_seen *s)
{
	for (int d = 0; d < 2; d++) {
		struct lb_tcp_peer *p = &c->tcp.peer[d];
		const struct lb_tcp_peer *k = &s->peer[d];

		p->end = seq_max(p->end, k->end);
		p->maxend = seq_max(p->maxend, k->maxend);
		if (k->maxwin > p->maxwin)
			p->maxwin = k->maxwin;
		if ((k->flags & LB_TCP_PF_MAXACK) &&
		    (!(p->flags & LB_TCP_PF_MAXACK) || lb_seq_gt(k->maxack, p->maxack))) {
			p->maxack = k->maxack;
			p->flags |= LB_TCP_PF_MAXACK;
		}
	}
}

/* The packets the kernel forwarded, and the idle timeout from its last one. */
static void merge_traffic(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c,
			  const struct lb_fastpath_seen *s)
{
	struct lb_backend *be = c->backend;
	uint64_t expires;

	for (int d = 0; d < 2; d++) {
		c->pkts[d] += s->pkts[d];
		c->bytes[d] += s->bytes[d];
		if (w) {
			lb_worker_count(w, LB_CNT_FAST_PKTS, s->pkts[d]);
			lb_worker_count(w, LB_CNT_FAST_BYTES, s->bytes[d]);
		}
	}
	atomic_fetch_add_explicit(&be->pkts_in, s->pkts[LB_DIR_ORIG], memory_order_relaxed);
	atomic_fetch_add_explicit(&be->bytes_in, s->bytes[LB_DIR_ORIG], memory_order_relaxed);
	atomic_fetch_add_explicit(&be->pkts_out, s->pkts[LB_DIR_REPLY], memory_order_relaxed);
	atomic_fetch_add_explicit(&be->bytes_out, s->bytes[LB_DIR_REPLY], memory_order_relaxed);
	if (s->last_seen_ms <= c->last_seen_ms)
		return;
	c->last_seen_ms = s->last_seen_ms;
	expires = s->last_seen_ms + e->timeout_ms[c->tcp.state];
	if (expires > c->expires_ms)
		c->expires_ms = expires;	/* the wheel re-places it lazily */
}

void lb_fastpath_pull(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c)
{
	struct lb_fastpath_seen s;
	struct lb_tuple orig;

	if (!e->fast || !(c->flags & LB_CONN_F_FAST))
		return;
	orig = lb_conn_tuple(e->table, c, LB_DIR_ORIG);
	if (e->fast->read(e->fast_arg, &orig, &s) == 0) {
		merge_peers(c, &s);
		merge_traffic(e, w, c, &s);
	}
}

static void take_back(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c)
{
	struct lb_fastpath_seen s;
	struct lb_tuple orig = lb_conn_tuple(e->table, c, LB_DIR_ORIG);

	c->flags &= ~LB_CONN_F_FAST;
	if (e->fast->remove(e->fast_arg, &orig, &s) == 0) {
		merge_peers(c, &s);
		merge_traffic(e, w, c, &s);
	}
	if (w)
		lb_worker_count(w, LB_CNT_FAST_REMOVES, 1);
}

/* Pushes the connection's exact edges to the kernel. A refusal (an IPv6
 * tuple, a full map) is counted once per connection, not once for every
 * packet that tries again; w may be NULL (no tick worker yet). */
static void push(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c)
{
	struct lb_fastpath_conn fc;
	int installed = !!(c->flags & LB_CONN_F_FAST);

	fc.orig = lb_conn_tuple(e->table, c, LB_DIR_ORIG);
	fc.reply = lb_conn_tuple(e->table, c, LB_DIR_REPLY);
	fc.peer[0] = c->tcp.peer[0];
	fc.peer[1] = c->tcp.peer[1];
	fc.slack = c->tcp.slack[0] > c->tcp.slack[1] ? c->tcp.slack[0] : c->tcp.slack[1];
	if (e->fast->install(e->fast_arg, &fc) < 0) {
		if (installed)
			return;
		if (w && !(c->flags & LB_CONN_F_FAST_REFUSED))
			lb_worker_count(w, LB_CNT_FAST_INSTALL_FAILED, 1);
		c->flags |= LB_CONN_F_FAST_REFUSED;
		return;
	}
	if (!installed && w)
		lb_worker_count(w, LB_CNT_FAST_INSTALLS, 1);
	c->flags |= LB_CONN_F_FAST;
}

void lb_fastpath_after(struct lb_engine *e, struct lb_worker *w, struct lb_conn *c)
{
	int established = c->tcp.state == LB_TCP_ESTABLISHED;
	int installed = !!(c->flags & LB_CONN_F_FAST);

	if (!e->fast || (!established && !installed))
		return;
	if (!established) {
		take_back(e, w, c);
		return;
	}
	/* Not installed: it has just become established. Installed: this
	 * packet went up (it raced the install, or the program could not
	 * judge it) and moved the edges here; the kernel must see them, or
	 * every later packet would fail its checks there too and come up. */
	push(e, w, c);
}

void lb_fastpath_import(struct lb_engine *e, struct lb_conn *c)
{
	if (!e->fast)
		return;
	if (c->tcp.state != LB_TCP_ESTABLISHED) {
		if (c->flags & LB_CONN_F_FAST)
			take_back(e, e->tick_worker, c);
		return;
	}
	/* The replicated bounds and their slack: after a takeover the
	 * kernel accepts a segment beyond the bounds within the slack until
	 * the grace period ends (fp_set_slack_until()), as the engine would. */
	push(e, e->tick_worker, c);
}

void lb_fastpath_forget(struct lb_engine *e, struct lb_conn *c)
{
	if (e->fast && (c->flags & LB_CONN_F_FAST))
		take_back(e, e->tick_worker, c);
}

int lb_engine_fastpath_seen(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
			    const struct lb_fastpath_seen *s, uint64_t now_ms)
{
	enum lb_dir dir;
	struct lb_conn *c = lb_table_lookup(e->table, orig, &dir);
	int rc = -ENOENT;

	if (!c)
		return rc;
	if (dir == LB_DIR_ORIG && (c->flags & LB_CONN_F_FAST)) {
		merge_peers(c, s);
		merge_traffic(e, w, c, s);
		/* The peer learns what the kernel moved as from any packet: at
		 * most every interval, or once it moved max_lag bytes. */
		if (s->pkts[0] || s->pkts[1])
			lb_repl_after_packet(e, w, c, c->tcp.state, now_ms);
		rc = 0;
	}
	lb_conn_unlock(c);
	return rc;
}
