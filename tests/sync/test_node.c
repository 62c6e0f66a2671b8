/*
 * Two engines, an active and a standby, joined by real sync nodes (codec and
 * link) over a simulated network with a fake clock: connection state goes
 * across, the standby takes over established connections strictly, bulk
 * resync fills a joining node, stale updates never regress it, forged
 * datagrams change nothing, and defer tickets are released by the peer's ack.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../lb/pktbuild.h"
#include "lb_engine.h"
#include "lb_pkt.h"
#include "sync_node.h"

#define VIP "198.18.0.100"
#define CLIENT "198.18.0.10"
#define MAXQ 8192

/* ---- a simulated network between two nodes ---- */

struct dgram {
	uint8_t buf[1500];
	size_t len;
	uint64_t at;
};

struct side {
	struct lb_engine *e;
	struct lb_worker *w, *ctl;
	struct sync_node *node;
	struct dgram *inbox;		/* MAXQ datagrams on their way to this side */
	size_t n;
	struct side *peer;
	uint64_t released;
};

struct net {
	struct side a, b;
	uint64_t now;
	unsigned loss_pct;		/* per datagram */
	int cut;			/* 1: a's datagrams vanish */
	unsigned rng;
	unsigned delay_ms;		/* one way; 0: 1 ms */
	size_t ring, max_conns;		/* of sides set up from now on; 0: defaults */
	uint64_t epoch;			/* of the next side set up; 0: from the clock */
	uint32_t stale_ms;		/* of sides set up from now on */
	struct dgram *cap_a;		/* when set, a copy of everything a sends */
	size_t ncap_a, capmax_a;
};

static struct net *the_net;

static unsigned rnd(struct net *n)
{
	n->rng = n->rng * 1103515245u + 12345u;
	return (n->rng >> 16) % 100;
}

static void op_send(void *arg, const uint8_t *buf, size_t len)
{
	struct side *s = arg;
	struct side *to = s->peer;
	struct net *n = the_net;

	if (s == &n->a && n->cap_a && n->ncap_a < n->capmax_a && len <= 1500) {
		memcpy(n->cap_a[n->ncap_a].buf, buf, len);
		n->cap_a[n->ncap_a++].len = len;
	}
	if ((s == &n->a && n->cut) || rnd(n) < n->loss_pct || to->n == MAXQ || len > 1500)
		return;
	memcpy(to->inbox[to->n].buf, buf, len);
	to->inbox[to->n].len = len;
	to->inbox[to->n].at = n->now + (n->delay_ms ? n->delay_ms : 1);
	to->n++;
}

static void op_wake(void *arg)
{
	(void)arg;
}

static void op_released(void *arg, uint64_t ticket)
{
	struct side *s = arg;

	s->released = ticket;
}

static const struct sync_node_ops ops = { op_send, op_wake, op_released };

static void deliver_due(struct side *s, uint64_t now)
{
	size_t keep = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->inbox[i].at <= now)
			sync_node_input(s->node, s->inbox[i].buf, s->inbox[i].len, now);
		else
			s->inbox[keep++] = s->inbox[i];
	}
	s->n = keep;
}

/* Runs both nodes for ms milliseconds of fake time. */
static void run(struct net *n, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		n->now++;
		deliver_due(&n->a, n->now);
		deliver_due(&n->b, n->now);
		sync_node_tick(n->a.node, n->now);
		sync_node_tick(n->b.node, n->now);
		if (n->now % 100 == 0) {
			lb_engine_tick(n->a.e, n->a.ctl, n->now);
			lb_engine_tick(n->b.e, n->b.ctl, n->now);
		}
	}
}

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";

static struct lb_backend_conf backends[3];

static void setup_side(struct net *n, struct side *s, uint32_t node_id, int defer,
		       const uint8_t *k)
{
	struct lb_engine_conf ec;
	struct lb_service_conf svc = { .port = 80, .scheduler = "rr", .backends = backends,
				       .nbackends = 3 };
	struct sync_node_conf nc = {
		.link = { .node_id = node_id, .peer_id = 3 - node_id,
			  .epoch = n->epoch ? n->epoch : 1000 + n->now, .key = k, .key_len = 32,
			  .ring = n->ring ? n->ring : 1024, .mtu = 1400, .heartbeat_ms = 100, .nack_delay_ms = 2,
			  .nack_retry_ms = 20, .peer_timeout_ms = 1000 },
		.resync_timeout_ms = 3000, .stale_ms = n->stale_ms, .flush_ms = 2, .queue = 4096,
		.defer = defer,
	};
	struct lb_repl_conf rc = { .interval_ms = 100, .defer = defer };

	if (!s->inbox)
		s->inbox = calloc(MAXQ, sizeof(*s->inbox));
	assert_non_null(s->inbox);
	lb_engine_conf_defaults(&ec);
	ec.max_conns = n->max_conns ? n->max_conns : 4096;
	ec.seed = 7;
	lb_addr_parse(&svc.vip, VIP);
	s->e = lb_engine_new(&ec, n->now);
	assert_non_null(s->e);
	assert_int_equal(lb_engine_set_services(s->e, &svc, 1), 0);
	s->w = lb_engine_worker_new(s->e);
	s->ctl = lb_engine_worker_new(s->e);
	s->node = sync_node_new(&nc, s->e, s->ctl, &ops, s, n->now);
	assert_non_null(s->node);
	lb_engine_set_repl(s->e, sync_node_repl_ops(), s->node, &rc);
	lb_engine_set_role(s->e, LB_ROLE_BACKUP);
}

static void set_role(struct side *s, enum lb_role r)
{
	sync_node_set_role(s->node, r);
	lb_engine_set_role(s->e, r);
}

/* A pair: a is master and ready, b has joined and resynced; max_conns and
 * ring 0: the defaults. */
static struct net *pair_stale(int defer, unsigned loss, size_t max_conns, size_t ring,
			      uint32_t stale_ms)
{
	struct net *n = calloc(1, sizeof(*n));
	char why[128];

	the_net = n;
	n->stale_ms = stale_ms;
	n->max_conns = max_conns;
	n->ring = ring;
	n->now = 10000;
	n->rng = 42;
	for (int i = 0; i < 3; i++) {
		char a[32];

		snprintf(a, sizeof(a), "198.18.1.%d", 11 + i);
		lb_addr_parse(&backends[i].addr, a);
		backends[i].port = 80;
		backends[i].weight = 1;
	}
	setup_side(n, &n->a, 1, defer, key);
	setup_side(n, &n->b, 2, defer, key);
	n->a.peer = &n->b;
	n->b.peer = &n->a;
	n->loss_pct = loss;
	set_role(&n->a, LB_ROLE_MASTER);
	sync_node_start(n->b.node, n->now);
	run(n, 500);
	assert_true(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	return n;
}

static struct net *pair_sized(int defer, unsigned loss, size_t max_conns, size_t ring)
{
	return pair_stale(defer, loss, max_conns, ring, 0);
}

static struct net *pair(int defer, unsigned loss)
{
	return pair_sized(defer, loss, 0, 0);
}

static void free_pair(struct net *n)
{
	struct side *sides[2] = { &n->a, &n->b };

	for (int i = 0; i < 2; i++) {
		lb_engine_set_repl(sides[i]->e, NULL, NULL, NULL);
		sync_node_free(sides[i]->node);
		lb_engine_free(sides[i]->e);
		free(sides[i]->inbox);
	}
	free(n);
}

/* ---- driving TCP through an engine ---- */

struct flow {
	uint16_t cport;
	uint32_t cseq, sseq;		/* next sequence number of each side */
	char backend[64];
};

static enum lb_verdict push(struct side *s, struct pb_spec *spec, enum lb_hook hook,
			    uint8_t *out, size_t *out_len, uint64_t now, uint64_t *ticket)
{
	uint8_t buf[2048];
	size_t len = pb_build(buf, sizeof(buf), spec);
	struct lb_packet p = { .data = buf, .len = (uint32_t)len, .hook = hook };
	enum lb_verdict v = lb_engine_packet(s->e, s->w, &p, now);

	if (out) {
		memcpy(out, buf, len);
		*out_len = len;
	}
	if (ticket)
		*ticket = p.defer_ticket;
	return v;
}

static enum lb_verdict client_seg(struct side *s, struct flow *f, uint8_t flags,
				  uint32_t payload, uint64_t now)
{
	struct pb_spec sp = pb_spec_v4(CLIENT, f->cport, VIP, 80);
	enum lb_verdict v;

	sp.seq = f->cseq;
	sp.ack = f->sseq;
	sp.flags = flags;
	sp.payload_len = payload;
	v = push(s, &sp, LB_HOOK_PRE, NULL, NULL, now, NULL);
	if (v == LB_VERDICT_ACCEPT)
		f->cseq += payload;
	return v;
}

static enum lb_verdict server_seg(struct side *s, struct flow *f, uint8_t flags,
				  uint32_t payload, uint64_t now)
{
	struct pb_spec sp = pb_spec_v4(f->backend, 80, CLIENT, f->cport);
	enum lb_verdict v;

	sp.seq = f->sseq;
	sp.ack = f->cseq;
	sp.flags = flags;
	sp.payload_len = payload;
	v = push(s, &sp, LB_HOOK_POST, NULL, NULL, now, NULL);
	if (v == LB_VERDICT_ACCEPT)
		f->sseq += payload;
	return v;
}

/* Opens a connection through s; returns the SYN's and SYN/ACK's tickets. */
static void open_flow(struct side *s, struct flow *f, uint16_t cport, uint64_t now,
		      uint64_t tickets[2])
{
	struct pb_spec sp = pb_spec_v4(CLIENT, cport, VIP, 80);
	uint8_t out[2048];
	size_t len;

	memset(f, 0, sizeof(*f));
	f->cport = cport;
	f->cseq = 1000u * cport;
	f->sseq = 7777u * cport;
	sp.seq = f->cseq;
	sp.flags = LB_TCP_SYN;
	assert_int_equal(push(s, &sp, LB_HOOK_PRE, out, &len, now, tickets ? &tickets[0] : NULL),
			 LB_VERDICT_ACCEPT);
	pb_dst_text(out, f->backend, sizeof(f->backend));
	f->cseq++;
	sp = pb_spec_v4(f->backend, 80, CLIENT, cport);
	sp.seq = f->sseq;
	sp.ack = f->cseq;
	sp.flags = LB_TCP_SYN | LB_TCP_ACK;
	assert_int_equal(push(s, &sp, LB_HOOK_POST, NULL, NULL, now, tickets ? &tickets[1] : NULL),
			 LB_VERDICT_ACCEPT);
	f->sseq++;
	assert_int_equal(client_seg(s, f, LB_TCP_ACK, 0, now), LB_VERDICT_ACCEPT);
}

struct found {
	uint16_t cport;
	int seen;
	uint8_t state;
	char backend[64];
	uint32_t slack;
	uint64_t created_us;
	uint32_t version;
	struct lb_tcp tcp;
};

static void find_conn(const struct lb_conn_info *info, void *arg)
{
	const struct lb_conn_state *c = &info->state;
	struct found *f = arg;

	if (c->orig.sport != f->cport)
		return;
	f->seen = 1;
	f->state = c->tcp.state;
	f->slack = c->tcp.slack[0];
	f->created_us = c->created_us;
	f->version = c->version;
	f->tcp = c->tcp;
	lb_addr_format(&c->backend, f->backend, sizeof(f->backend));
}

static struct found lookup(struct side *s, uint16_t cport)
{
	struct found f = { .cport = cport };

	lb_engine_foreach_conn(s->e, 0, find_conn, &f);
	return f;
}

static uint64_t counter(struct side *s, enum lb_counter c)
{
	uint64_t all[LB_CNT_COUNT];

	lb_engine_counters(s->e, all);
	return all[c];
}

/* ---- tests ---- */

static void test_connection_replicates_and_survives_failover(void **state)
{
	struct net *n = pair(0, 0);
	struct flow f;
	struct found got;

	(void)state;
	open_flow(&n->a, &f, 40000, n->now, NULL);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(client_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 100, n->now),
				 LB_VERDICT_ACCEPT);
		assert_int_equal(server_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now),
				 LB_VERDICT_ACCEPT);
		run(n, 20);
	}
	run(n, 300);
	got = lookup(&n->b, 40000);
	assert_true(got.seen);
	assert_int_equal(got.state, LB_TCP_ESTABLISHED);
	assert_string_equal(got.backend, f.backend);
	/* The standby forwards nothing while backup. */
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK, 0, n->now), LB_VERDICT_DROP);
	assert_int_equal(counter(&n->b, LB_CNT_DROP_NOT_MASTER), 1);

	/* The active dies; the standby takes over and carries on. */
	n->cut = 1;
	set_role(&n->b, LB_ROLE_MASTER);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 100, n->now),
				 LB_VERDICT_ACCEPT);
		assert_int_equal(server_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now),
				 LB_VERDICT_ACCEPT);
	}
	/* Strict: a segment far out of the window is still refused. */
	f.cseq += 0x40000000;
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 100, n->now),
			 LB_VERDICT_DROP);
	assert_int_equal(counter(&n->b, LB_CNT_DROP_OUT_OF_WINDOW), 1);
	free_pair(n);
}

static void test_takeover_slack_covers_unreplicated_data_for_a_grace(void **state)
{
	struct net *n = pair(0, 0);
	struct flow f;
	struct found got;

	(void)state;
	open_flow(&n->a, &f, 40001, n->now, NULL);
	for (int i = 0; i < 10; i++) {
		server_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 1400, n->now);
		client_seg(&n->a, &f, LB_TCP_ACK, 0, n->now);
		run(n, 50);
	}
	run(n, 300);
	/* The link dies first: the last 64 KiB the server sent never reached
	 * the standby, which is now behind by more than one window. */
	n->cut = 1;
	for (int i = 0; i < 50; i++) {
		server_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 1400, n->now);
		client_seg(&n->a, &f, LB_TCP_ACK, 0, n->now);
	}
	run(n, 5);
	got = lookup(&n->b, 40001);
	assert_true(got.seen);
	assert_true(got.slack > 0);
	set_role(&n->b, LB_ROLE_MASTER);
	assert_int_equal(server_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 1400, n->now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(counter(&n->b, LB_CNT_TAKEOVER_SLACK), 1);
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK, 0, n->now), LB_VERDICT_ACCEPT);
	/* Within the grace period the slack stays (retransmissions may still
	 * come in any order); the ACKs have caught the bounds up. */
	got = lookup(&n->b, 40001);
	assert_true(got.slack > 0);
	/* After it, tracking is exact again: the slack is gone, and a segment
	 * beyond what the client allowed is refused. */
	n->now += 3001;
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK, 0, n->now), LB_VERDICT_ACCEPT);
	got = lookup(&n->b, 40001);
	assert_int_equal(got.slack, 0);
	f.sseq += 2 * 65535 + 1;
	assert_int_equal(server_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 1400, n->now),
			 LB_VERDICT_DROP);
	free_pair(n);
}

/*
 * The failure seen in the lab drill: the standby's copy is behind by the
 * client's last segments; after the takeover the client's first packet is a
 * retransmission of one of them (its ACK was lost in the outage), and the
 * server's ACKs cover data the standby never saw. Both must pass, or the
 * connection freezes with no reset.
 */
static void test_takeover_after_retransmission_first(void **state)
{
	struct net *n = pair(0, 0);
	struct flow f;
	uint32_t retrans, next;

	(void)state;
	open_flow(&n->a, &f, 40005, n->now, NULL);
	for (int i = 0; i < 5; i++) {
		client_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now);
		server_seg(&n->a, &f, LB_TCP_ACK, 0, n->now);
		run(n, 50);
	}
	run(n, 300);
	n->cut = 1;
	/* Unreplicated: three more client segments, acked by the server. */
	retrans = f.cseq + 1000;
	for (int i = 0; i < 3; i++)
		client_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now);
	server_seg(&n->a, &f, LB_TCP_ACK, 0, n->now);
	set_role(&n->b, LB_ROLE_MASTER);
	/* The client retransmits its second unreplicated segment first. */
	next = f.cseq;
	f.cseq = retrans;
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now),
			 LB_VERDICT_ACCEPT);
	f.cseq = next;
	/* The server's (duplicate) ACKs of everything must still pass. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(server_seg(&n->b, &f, LB_TCP_ACK, 0, n->now), LB_VERDICT_ACCEPT);
	assert_int_equal(client_seg(&n->b, &f, LB_TCP_ACK | LB_TCP_PSH, 1000, n->now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(server_seg(&n->b, &f, LB_TCP_ACK, 0, n->now), LB_VERDICT_ACCEPT);
	free_pair(n);
}

static void test_bulk_resync_fills_a_joining_node_under_loss(void **state)
{
	struct net *n = pair(0, 0);
	struct side fresh;
	char why[128];
	size_t count;
	uint64_t started;

	(void)state;
	for (uint16_t p = 0; p < 1500; p++) {
		struct flow f;

		open_flow(&n->a, &f, (uint16_t)(20000 + p), n->now, NULL);
	}
	run(n, 200);
	assert_int_equal(lb_engine_conn_count(n->b.e), 1500);
	/* b restarts empty (new epoch) and must resync over a lossy link. */
	lb_engine_set_repl(n->b.e, NULL, NULL, NULL);
	sync_node_free(n->b.node);
	lb_engine_free(n->b.e);
	memset(&fresh, 0, sizeof(fresh));
	fresh.inbox = n->b.inbox;
	n->b = fresh;
	n->b.n = 0;
	n->b.peer = &n->a;
	n->loss_pct = 10;
	setup_side(n, &n->b, 2, 0, key);
	started = n->now;
	sync_node_start(n->b.node, n->now);
	assert_false(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	for (int ms = 0; ms < 3000 && !sync_node_ready(n->b.node, n->now, why, sizeof(why)); ms++)
		run(n, 1);
	assert_true(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	print_message("resync of 1500 connections at 10%% loss: ready after %llu ms\n",
		      (unsigned long long)(n->now - started));
	count = lb_engine_conn_count(n->b.e);
	assert_int_equal(count, 1500);
	free_pair(n);
}

static uint64_t node_stat(struct side *s, uint64_t now, const char *name);

/*
 * The sync link cut while the master lives on: the backup's table goes stale
 * and it stops being ready after stale_ms, stays so however long it is alone,
 * and is ready again only after the link heals and a bulk resync brought
 * what the master did meanwhile. The master itself never goes stale.
 */
static void test_silent_peer_makes_backup_stale(void **state)
{
	struct net *n = pair_stale(0, 0, 0, 0, 2000);
	struct flow f;
	char why[128];
	int p;

	(void)state;
	for (p = 0; p < 20; p++)
		open_flow(&n->a, &f, (uint16_t)(30000 + p), n->now, NULL);
	run(n, 300);
	assert_int_equal(lb_engine_conn_count(n->b.e), 20);
	n->cut = 1;
	run(n, 1500);
	assert_true(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	run(n, 800);
	assert_false(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	assert_non_null(strstr(why, "stale"));
	assert_int_equal(node_stat(&n->b, n->now, "stale_events"), 1);
	/* What the master does meanwhile never reaches b. */
	for (; p < 30; p++)
		open_flow(&n->a, &f, (uint16_t)(30000 + p), n->now, NULL);
	run(n, 6000);	/* twice resync_timeout: alone is not enough */
	assert_false(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	assert_int_equal(lb_engine_conn_count(n->b.e), 20);
	/* a hears b all along; a master is never stale anyway. */
	assert_true(sync_node_ready(n->a.node, n->now, why, sizeof(why)));
	n->cut = 0;
	for (int ms = 0; ms < 2000 && !sync_node_ready(n->b.node, n->now, why, sizeof(why)); ms++)
		run(n, 1);
	assert_true(sync_node_ready(n->b.node, n->now, why, sizeof(why)));
	assert_int_equal(lb_engine_conn_count(n->b.e), 30);
	assert_int_equal(node_stat(&n->b, n->now, "stale_events"), 1);
	assert_int_equal(node_stat(&n->b, n->now, "stale"), 0);
	free_pair(n);
}

static void test_stale_update_never_regresses(void **state)
{
	struct net *n = pair(0, 0);
	struct lb_conn_state st;
	struct flow f;
	struct found got;

	(void)state;
	open_flow(&n->a, &f, 40002, n->now, NULL);
	run(n, 250);			/* the handshake's end waits an interval */
	got = lookup(&n->b, 40002);
	assert_int_equal(got.state, LB_TCP_ESTABLISHED);
	assert_true(got.version >= 2);
	memset(&st, 0, sizeof(st));
	lb_addr_parse(&st.orig.src, CLIENT);
	lb_addr_parse(&st.orig.dst, VIP);
	st.orig.sport = 40002;
	st.orig.dport = 80;
	lb_addr_parse(&st.backend, f.backend);
	st.backend_port = 80;
	st.expires_ms = 1000;
	st.tcp = got.tcp;
	st.tcp.state = LB_TCP_SYN_SENT;
	/* Same incarnation, an older version: refused as stale. */
	st.created_us = got.created_us;
	st.version = got.version - 1;
	assert_int_equal(lb_engine_import_conn(n->b.e, n->b.ctl, &st, n->now), LB_IMPORT_STALE);
	/* A newer version whose state moved backwards: refused as a regression. */
	st.version = got.version + 1;
	assert_int_equal(lb_engine_import_conn(n->b.e, n->b.ctl, &st, n->now), LB_IMPORT_REGRESS);
	/* ... and one whose window edge moved backwards. */
	st.tcp = got.tcp;
	st.tcp.peer[LB_DIR_ORIG].end -= 10;
	assert_int_equal(lb_engine_import_conn(n->b.e, n->b.ctl, &st, n->now), LB_IMPORT_REGRESS);
	/* An older incarnation of the tuple. */
	st.tcp = got.tcp;
	st.created_us = got.created_us - 1;
	st.version = got.version + 5;
	assert_int_equal(lb_engine_import_conn(n->b.e, n->b.ctl, &st, n->now), LB_IMPORT_STALE);
	got = lookup(&n->b, 40002);
	assert_int_equal(got.state, LB_TCP_ESTABLISHED);
	assert_int_equal(counter(&n->b, LB_CNT_IMPORT_STALE), 2);
	assert_int_equal(counter(&n->b, LB_CNT_IMPORT_REGRESS), 2);
	free_pair(n);
}

struct stat_want {
	const char *name;
	uint64_t value;
};

static void pick_stat(void *arg, const char *name, uint64_t value)
{
	struct stat_want *w = arg;

	if (strcmp(name, w->name) == 0)
		w->value = value;
}

static uint64_t node_stat(struct side *s, uint64_t now, const char *name)
{
	struct stat_want w = { name, UINT64_MAX };

	sync_node_stats(s->node, now, pick_stat, &w);
	assert_true(w.value != UINT64_MAX);
	return w.value;
}

static void test_forged_datagrams_change_nothing(void **state)
{
	struct net *n = pair(0, 0);
	static const uint8_t other_key[32] = "not-the-key-not-the-key-not-the-";
	struct side forger;
	struct flow f;
	uint64_t records = node_stat(&n->b, n->now, "records_in");

	(void)state;
	/* A third party with the wrong key, claiming to be node 1. */
	memset(&forger, 0, sizeof(forger));
	setup_side(n, &forger, 1, 0, other_key);
	forger.peer = &n->b;
	set_role(&forger, LB_ROLE_MASTER);
	open_flow(&forger, &f, 40003, n->now, NULL);
	for (int i = 0; i < 50; i++) {
		n->now++;
		sync_node_tick(forger.node, n->now);
		deliver_due(&n->b, n->now);
	}
	assert_false(lookup(&n->b, 40003).seen);
	assert_int_equal(lb_engine_conn_count(n->b.e), 0);
	assert_true(node_stat(&n->b, n->now, "bad_hmac") > 0);
	assert_int_equal(node_stat(&n->b, n->now, "records_in"), records);
	lb_engine_set_repl(forger.e, NULL, NULL, NULL);
	sync_node_free(forger.node);
	lb_engine_free(forger.e);
	free(forger.inbox);
	free_pair(n);
}

static void test_defer_tickets_released_by_peer_ack(void **state)
{
	struct net *n = pair(1, 0);
	uint64_t tickets[2];
	struct flow f;

	(void)state;
	open_flow(&n->a, &f, 40004, n->now, tickets);
	assert_true(tickets[0] > 0);
	assert_true(tickets[1] > tickets[0]);
	assert_true(n->a.released < tickets[1]);
	run(n, 10);
	assert_true(n->a.released >= tickets[1]);
	assert_true(lookup(&n->b, 40004).seen);
	free_pair(n);
}

/*
 * The state changes of a connection inside one flush travel as one record:
 * 50 handshakes (SYN and SYN/ACK replicated at once, the final ACK waiting
 * as window movement does) queued before the node runs reach the standby as
 * 50 records carrying each connection's newest state. In defer mode the
 * ticket of the SYN (the first record's position) is released only once
 * the standby holds the merged, newest state. The handshake's end follows
 * with the interval.
 */
static void test_state_changes_in_one_flush_coalesce(void **state)
{
	for (int defer = 0; defer <= 1; defer++) {
		struct net *n = pair(defer, 0);
		uint64_t in0 = node_stat(&n->b, n->now, "records_in"), tickets[2] = { 0, 0 };
		struct flow f[50];

		(void)state;
		for (int i = 0; i < 50; i++)
			open_flow(&n->a, &f[i], (uint16_t)(41000 + i), n->now, tickets);
		run(n, 1);
		if (defer) {
			/* The last SYN's ticket, released with its merged state. */
			run(n, 10);
			assert_true(n->a.released >= tickets[1]);
		}
		run(n, 20);
		assert_int_equal(node_stat(&n->a, n->now, "coalesced"), 50);
		assert_int_equal(node_stat(&n->b, n->now, "records_in") - in0, 50);
		for (int i = 0; i < 50; i++) {
			struct found got = lookup(&n->b, (uint16_t)(41000 + i));

			assert_true(got.seen);
			assert_int_equal(got.state, LB_TCP_SYN_RECV);
			assert_int_equal(got.version, 2);
		}
		run(n, 200);
		assert_int_equal(node_stat(&n->b, n->now, "records_in") - in0, 100);
		for (int i = 0; i < 50; i++) {
			struct found got = lookup(&n->b, (uint16_t)(41000 + i));

			assert_int_equal(got.state, LB_TCP_ESTABLISHED);
			assert_int_equal(got.version, 3);
		}
		free_pair(n);
	}
}

/* ---- restarts, replays, and a large resync over a slow lossy link ---- */

/* b restarts empty, with epoch (lbd takes it from its state counter). */
static void restart_b(struct net *n, uint64_t epoch)
{
	struct side fresh;

	lb_engine_set_repl(n->b.e, NULL, NULL, NULL);
	sync_node_free(n->b.node);
	lb_engine_free(n->b.e);
	memset(&fresh, 0, sizeof(fresh));
	fresh.inbox = n->b.inbox;
	n->b = fresh;
	n->b.peer = &n->a;
	n->epoch = epoch;
	setup_side(n, &n->b, 2, 0, key);
	n->epoch = 0;
}

static void feed_captured(struct net *n, struct side *to)
{
	for (size_t i = 0; i < n->ncap_a; i++)
		sync_node_input(to->node, n->cap_a[i].buf, n->cap_a[i].len, n->now);
}

static int run_until_ready(struct net *n, struct side *s, unsigned limit_ms)
{
	char why[128];

	for (unsigned ms = 0; ms < limit_ms; ms++) {
		if (sync_node_ready(s->node, n->now, why, sizeof(why)))
			return 1;
		run(n, 1);
	}
	return sync_node_ready(s->node, n->now, why, sizeof(why));
}

struct grab {
	uint16_t cport;
	int seen;
	struct lb_conn_state st;
};

static void grab_conn(const struct lb_conn_info *info, void *arg)
{
	struct grab *g = arg;

	if (info->state.orig.sport == g->cport) {
		g->seen = 1;
		g->st = info->state;
	}
}

/*
 * A capture of the master's datagrams carrying a connection that is gone
 * since, replayed into a standby that restarted (and so knows nothing of the
 * master's msg_seq): before the master's epoch is proven live, and after.
 * The restart takes the next value of an epoch counter (lbd persists it), not
 * the wall clock, which may have stepped back an hour: the pair becomes
 * ready, and the gone connection never comes back.
 */
static void test_restart_and_replayed_capture_leave_no_stale_entry(void **state)
{
	struct net *n = pair(0, 0);
	struct grab g = { .cport = 4242 };
	struct flow f;
	uint64_t b_epoch, replayed;

	(void)state;
	n->capmax_a = 256;
	n->cap_a = calloc(n->capmax_a, sizeof(*n->cap_a));
	assert_non_null(n->cap_a);
	open_flow(&n->a, &f, 4242, n->now, NULL);
	run(n, 300);
	n->capmax_a = n->ncap_a;	/* the capture ends here */
	assert_true(n->ncap_a > 3);
	assert_true(lookup(&n->b, 4242).seen);
	/* the connection goes away on the master */
	lb_engine_foreach_conn(n->a.e, 0, grab_conn, &g);
	assert_true(g.seen);
	lb_engine_set_role(n->a.e, LB_ROLE_BACKUP);	/* a master refuses imports */
	assert_int_equal(lb_engine_import_delete(n->a.e, n->a.ctl, &g.st, n->now), 1);
	lb_engine_set_role(n->a.e, LB_ROLE_MASTER);
	assert_int_equal(lb_engine_conn_count(n->a.e), 0);
	b_epoch = node_stat(&n->a, n->now, "peer_epoch");
	assert_int_equal(b_epoch, node_stat(&n->b, n->now, "epoch"));
	/* b restarts: epoch = counter + 1, whatever the wall clock says */
	restart_b(n, b_epoch + 1);
	feed_captured(n, &n->b);	/* the master's epoch, not yet proven */
	assert_int_equal(lb_engine_conn_count(n->b.e), 0);
	assert_int_equal(node_stat(&n->b, n->now, "unproven"), n->ncap_a);
	assert_int_equal(node_stat(&n->b, n->now, "peer_alive"), 0);
	sync_node_start(n->b.node, n->now);
	assert_true(run_until_ready(n, &n->b, 3000));
	assert_int_equal(node_stat(&n->a, n->now, "peer_restarts"), 1);
	/* proven now: the whole capture is older than the proof */
	replayed = node_stat(&n->b, n->now, "replayed");
	feed_captured(n, &n->b);
	assert_int_equal(node_stat(&n->b, n->now, "replayed"), replayed + n->ncap_a);
	run(n, 500);
	assert_false(lookup(&n->b, 4242).seen);
	assert_int_equal(lb_engine_conn_count(n->b.e), 0);
	free(n->cap_a);
	n->cap_a = NULL;
	free_pair(n);
}

/* count connections through s, established, from 198.18.2.x clients. */
static void open_many(struct side *s, unsigned count, uint64_t now)
{
	for (unsigned i = 0; i < count; i++) {
		char client[32], backend[64];
		uint16_t port = (uint16_t)(1024 + i % 60000);
		struct pb_spec sp;
		uint8_t out[2048];
		size_t len;

		snprintf(client, sizeof(client), "198.18.2.%u", 1 + i / 60000);
		sp = pb_spec_v4(client, port, VIP, 80);
		sp.seq = 1000;
		sp.flags = LB_TCP_SYN;
		assert_int_equal(push(s, &sp, LB_HOOK_PRE, out, &len, now, NULL), LB_VERDICT_ACCEPT);
		pb_dst_text(out, backend, sizeof(backend));
		sp = pb_spec_v4(backend, 80, client, port);
		sp.seq = 5000;
		sp.ack = 1001;
		sp.flags = LB_TCP_SYN | LB_TCP_ACK;
		assert_int_equal(push(s, &sp, LB_HOOK_POST, NULL, NULL, now, NULL),
				 LB_VERDICT_ACCEPT);
		sp = pb_spec_v4(client, port, VIP, 80);
		sp.seq = 1001;
		sp.ack = 5001;
		sp.flags = LB_TCP_ACK;
		assert_int_equal(push(s, &sp, LB_HOOK_PRE, NULL, NULL, now, NULL), LB_VERDICT_ACCEPT);
	}
}

/*
 * 100,000 connections to a joining node over 60 ms one way and 10% loss
 * each way: the joiner asks again every 250 ms while it waits, and the
 * export carries on instead of starting over, so it is ready within 5 s of
 * simulated time.
 */
/* Closes f through s: FIN each way, the last ACK; the entry is in TIME_WAIT. */
static void close_flow(struct side *s, struct flow *f, uint64_t now)
{
	assert_int_equal(client_seg(s, f, LB_TCP_FIN | LB_TCP_ACK, 0, now), LB_VERDICT_ACCEPT);
	f->cseq++;
	assert_int_equal(server_seg(s, f, LB_TCP_FIN | LB_TCP_ACK, 0, now), LB_VERDICT_ACCEPT);
	f->sseq++;
	assert_int_equal(client_seg(s, f, LB_TCP_ACK, 0, now), LB_VERDICT_ACCEPT);
}

#define SHORT_FLOWS 20
#define SHORT_PORT 42000
#define KEPT_PORT 43000

/*
 * Async mode: connections that open and close inside one flush, before any
 * record of them left, cost nothing on the wire: no record, no datagram,
 * no ConnDelete at their expiry, and no place in a bulk resync; the standby
 * never hears of them. One replicated before its close still sends the
 * close and, at expiry, its ConnDelete. Defer mode sends them all.
 */
static void test_open_and_close_in_one_flush_costs_nothing(void **state)
{
	for (int defer = 0; defer <= 1; defer++) {
		struct net *n = pair(defer, 0);
		struct flow kept, f[SHORT_FLOWS];
		uint64_t in0, data0, del0, elided0;

		(void)state;
		open_flow(&n->a, &kept, KEPT_PORT, n->now, NULL);
		run(n, 10);
		in0 = node_stat(&n->b, n->now, "records_in");
		data0 = node_stat(&n->a, n->now, "data_sent");
		for (int i = 0; i < SHORT_FLOWS; i++) {
			open_flow(&n->a, &f[i], (uint16_t)(SHORT_PORT + i), n->now, NULL);
			close_flow(&n->a, &f[i], n->now);
			assert_int_equal(lookup(&n->a, (uint16_t)(SHORT_PORT + i)).state,
					 LB_TCP_TIME_WAIT);
		}
		close_flow(&n->a, &kept, n->now);
		run(n, 20);
		assert_int_equal(lookup(&n->b, KEPT_PORT).state, LB_TCP_TIME_WAIT);
		for (int i = 0; i < SHORT_FLOWS; i++)
			assert_int_equal(lookup(&n->b, (uint16_t)(SHORT_PORT + i)).seen, defer);
		assert_int_equal(node_stat(&n->a, n->now, "unsent"), defer ? 0 : SHORT_FLOWS);
		assert_int_equal(node_stat(&n->b, n->now, "records_in") - in0,
				 1 + (defer ? SHORT_FLOWS : 0));
		if (!defer) {
			/* The kept connection's close: one datagram, alone. */
			assert_int_equal(node_stat(&n->a, n->now, "data_sent") - data0, 1);
			/* A joining node gets the kept one, not the others. */
			restart_b(n, node_stat(&n->b, n->now, "epoch") + 1);
			sync_node_start(n->b.node, n->now);
			assert_true(run_until_ready(n, &n->b, 2000));
			assert_true(lookup(&n->b, KEPT_PORT).seen);
			for (int i = 0; i < SHORT_FLOWS; i++)
				assert_false(lookup(&n->b, (uint16_t)(SHORT_PORT + i)).seen);
		}
		/* Their expiry: no ConnDelete for what the peer never heard of,
		 * and none for what it holds closed (it expires that itself). */
		del0 = counter(&n->a, LB_CNT_REPL_DELETES);
		elided0 = counter(&n->a, LB_CNT_REPL_DELETES_ELIDED);
		lb_engine_tick(n->a.e, n->a.ctl, n->now + 300000);
		assert_int_equal(lb_engine_conn_count(n->a.e), 0);
		assert_int_equal(counter(&n->a, LB_CNT_REPL_DELETES) - del0, 0);
		assert_int_equal(counter(&n->a, LB_CNT_REPL_DELETES_ELIDED) - elided0,
				 1 + (defer ? SHORT_FLOWS : 0));
		free_pair(n);
	}
}

#define CLOSED_PORT 44000
#define OPEN_PORT 44001

/*
 * A connection whose replicated state is closed (TIME_WAIT) expires on the
 * master without a ConnDelete (counted as elided): the standby holds the
 * same state and time left, and expires its entry by itself. An open one
 * still sends its ConnDelete.
 */
static void test_closed_entry_expires_on_the_standby_without_delete(void **state)
{
	struct net *n = pair(0, 0);
	struct flow closed, open;
	uint64_t del0, elided0, queued0;

	(void)state;
	open_flow(&n->a, &closed, CLOSED_PORT, n->now, NULL);
	open_flow(&n->a, &open, OPEN_PORT, n->now, NULL);
	run(n, 250);			/* the handshake's end waits an interval */
	close_flow(&n->a, &closed, n->now);
	run(n, 20);
	assert_int_equal(lookup(&n->b, CLOSED_PORT).state, LB_TCP_TIME_WAIT);
	assert_int_equal(lookup(&n->b, OPEN_PORT).state, LB_TCP_ESTABLISHED);
	del0 = counter(&n->a, LB_CNT_REPL_DELETES);
	elided0 = counter(&n->a, LB_CNT_REPL_DELETES_ELIDED);
	queued0 = node_stat(&n->a, n->now, "records_queued");
	/* Past TIME_WAIT's timeout (2 min), well before ESTABLISHED's (15). */
	lb_engine_tick(n->a.e, n->a.ctl, n->now + 130000);
	assert_false(lookup(&n->a, CLOSED_PORT).seen);
	assert_int_equal(counter(&n->a, LB_CNT_REPL_DELETES_ELIDED) - elided0, 1);
	assert_int_equal(counter(&n->a, LB_CNT_REPL_DELETES) - del0, 0);
	assert_int_equal(node_stat(&n->a, n->now, "records_queued"), queued0);
	/* The standby: the closed one runs out by itself, the open one stays. */
	assert_true(lookup(&n->b, CLOSED_PORT).seen);
	lb_engine_tick(n->b.e, n->b.ctl, n->now + 130000 + 10);
	assert_false(lookup(&n->b, CLOSED_PORT).seen);
	assert_true(lookup(&n->b, OPEN_PORT).seen);
	/* The open one's expiry is told. */
	lb_engine_tick(n->a.e, n->a.ctl, n->now + 1000000);
	assert_int_equal(counter(&n->a, LB_CNT_REPL_DELETES) - del0, 1);
	assert_int_equal(node_stat(&n->a, n->now, "records_queued"), queued0 + 1);
	free_pair(n);
}

static void test_resync_100k_over_slow_lossy_link(void **state)
{
	struct net *n = pair_sized(0, 0, 131072, 4096);
	uint64_t started;
	int ready;

	(void)state;
	lb_engine_set_repl(n->a.e, NULL, NULL, NULL);	/* filled by hand */
	open_many(&n->a, 100000, n->now);
	assert_int_equal(lb_engine_conn_count(n->a.e), 100000);
	n->delay_ms = 60;
	n->loss_pct = 10;
	restart_b(n, node_stat(&n->b, n->now, "epoch") + 1);
	started = n->now;
	sync_node_start(n->b.node, n->now);
	ready = run_until_ready(n, &n->b, 5000);
	print_message("resync of 100000 connections, 60 ms one way, 10%% loss: %s after %llu ms, "
		      "%llu requests, %llu repeats, %llu served\n", ready ? "ready" : "NOT ready",
		      (unsigned long long)(n->now - started),
		      (unsigned long long)node_stat(&n->b, n->now, "resyncs_requested"),
		      (unsigned long long)node_stat(&n->a, n->now, "resync_repeats"),
		      (unsigned long long)node_stat(&n->a, n->now, "resyncs_served"));
	assert_true(ready);
	assert_int_equal(lb_engine_conn_count(n->b.e), 100000);
	free_pair(n);
}

#define REORDER_PORT 45000

/*
 * A connection's first record is an Open, its later ones Changes against
 * it. When the Open's datagram is lost, the Change that follows arrives
 * first: the standby holds it, and once the repaired Open arrives it has
 * both, in the master's order: the same state as the master, nothing
 * refused. A restarted standby holds none of the master's Opens: the master
 * opens its connections again (its bulk resync does, and so does its next
 * record of each), and the standby follows them.
 */
static void test_change_before_its_open_waits_for_it(void **state)
{
	struct net *n = pair(0, 0);
	struct flow f;
	struct found a, b;
	uint64_t opens0 = node_stat(&n->a, n->now, "opens_sent");
	uint64_t changes0 = node_stat(&n->a, n->now, "changes_sent");

	(void)state;
	n->cut = 1;			/* the Open's datagram is lost */
	open_flow(&n->a, &f, REORDER_PORT, n->now, NULL);
	run(n, 5);
	n->cut = 0;
	assert_int_equal(node_stat(&n->a, n->now, "opens_sent") - opens0, 1);
	assert_false(lookup(&n->b, REORDER_PORT).seen);
	assert_int_equal(client_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 100, n->now),
			 LB_VERDICT_ACCEPT);
	assert_int_equal(server_seg(&n->a, &f, LB_TCP_ACK | LB_TCP_PSH, 900, n->now),
			 LB_VERDICT_ACCEPT);
	close_flow(&n->a, &f, n->now);
	run(n, 1);			/* the Change leaves before any repair */
	run(n, 300);
	assert_int_equal(node_stat(&n->a, n->now, "changes_sent") - changes0, 1);
	assert_int_equal(node_stat(&n->b, n->now, "changes_held"), 1);
	assert_int_equal(node_stat(&n->b, n->now, "changes_lost"), 0);
	assert_true(node_stat(&n->a, n->now, "retransmitted") > 0);
	a = lookup(&n->a, REORDER_PORT);
	b = lookup(&n->b, REORDER_PORT);
	assert_true(b.seen);
	assert_int_equal(b.state, LB_TCP_TIME_WAIT);
	assert_int_equal(b.version, a.version);
	/* Its close carries the ends and the FINs, not the window edges: a
	 * closed connection's edges stay the Open's (or later), never past
	 * the master's. LB_TCP_PF_LOCAL is not replicated. */
	for (int d = 0; d < 2; d++) {
		assert_int_equal(b.tcp.peer[d].end, a.tcp.peer[d].end);
		assert_false(lb_seq_gt(b.tcp.peer[d].maxend, a.tcp.peer[d].maxend));
		assert_false(lb_seq_lt(b.tcp.peer[d].maxend, b.tcp.peer[d].end));
		assert_int_equal(b.tcp.peer[d].flags, a.tcp.peer[d].flags & ~LB_TCP_PF_LOCAL);
	}
	assert_int_equal(counter(&n->b, LB_CNT_IMPORT_REGRESS), 0);
	assert_int_equal(counter(&n->b, LB_CNT_IMPORT_STALE), 0);

	/* The standby restarts and resyncs; the next state still gets there. */
	open_flow(&n->a, &f, REORDER_PORT + 1, n->now, NULL);
	run(n, 50);
	restart_b(n, node_stat(&n->b, n->now, "epoch") + 1);
	sync_node_start(n->b.node, n->now);
	assert_true(run_until_ready(n, &n->b, 2000));
	assert_int_equal(lookup(&n->b, REORDER_PORT + 1).state, LB_TCP_ESTABLISHED);
	close_flow(&n->a, &f, n->now);
	run(n, 50);
	assert_int_equal(lookup(&n->b, REORDER_PORT + 1).state, LB_TCP_TIME_WAIT);
	assert_int_equal(node_stat(&n->b, n->now, "changes_held"), 0);
	free_pair(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connection_replicates_and_survives_failover),
		cmocka_unit_test(test_takeover_slack_covers_unreplicated_data_for_a_grace),
		cmocka_unit_test(test_takeover_after_retransmission_first),
		cmocka_unit_test(test_bulk_resync_fills_a_joining_node_under_loss),
		cmocka_unit_test(test_stale_update_never_regresses),
		cmocka_unit_test(test_silent_peer_makes_backup_stale),
		cmocka_unit_test(test_forged_datagrams_change_nothing),
		cmocka_unit_test(test_defer_tickets_released_by_peer_ack),
		cmocka_unit_test(test_state_changes_in_one_flush_coalesce),
		cmocka_unit_test(test_restart_and_replayed_capture_leave_no_stale_entry),
		cmocka_unit_test(test_open_and_close_in_one_flush_costs_nothing),
		cmocka_unit_test(test_closed_entry_expires_on_the_standby_without_delete),
		cmocka_unit_test(test_resync_100k_over_slow_lossy_link),
		cmocka_unit_test(test_change_before_its_open_waits_for_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
