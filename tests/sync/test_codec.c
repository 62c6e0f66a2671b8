/*
 * sync_codec: records survive a round trip field for field, batches never
 * exceed their payload size, and truncated, corrupted or invalid input is
 * refused (whole payloads) or skipped and counted (single records).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lbsync.pb-c.h"
#include "sync_codec.h"

#define MAXREC 256

struct got {
	struct lb_conn_state conns[MAXREC];
	size_t nconns;
	struct lb_conn_state dels[MAXREC];
	size_t ndels;
	struct lb_persist_state persists[MAXREC];
	size_t npersists;
	uint64_t done_id;
	uint32_t done_conns;
	int dones;
	struct lb_conn_state opens[MAXREC];
	uint64_t open_ids[MAXREC];
	size_t nopens;
	struct sync_change changes[MAXREC];
	uint64_t change_ids[MAXREC];
	size_t nchanges;
};

static void on_conn(void *arg, const struct lb_conn_state *st)
{
	struct got *g = arg;

	if (g->nconns < MAXREC)
		g->conns[g->nconns++] = *st;
}

static void on_delete(void *arg, const struct lb_conn_state *st)
{
	struct got *g = arg;

	if (g->ndels < MAXREC)
		g->dels[g->ndels++] = *st;
}

static void on_persist(void *arg, const struct lb_persist_state *st)
{
	struct got *g = arg;

	if (g->npersists < MAXREC)
		g->persists[g->npersists++] = *st;
}

static void on_done(void *arg, uint64_t id, uint32_t conns)
{
	struct got *g = arg;

	g->done_id = id;
	g->done_conns = conns;
	g->dones++;
}

static void on_open(void *arg, uint64_t id, const struct lb_conn_state *st)
{
	struct got *g = arg;

	if (g->nopens < MAXREC) {
		g->open_ids[g->nopens] = id;
		g->opens[g->nopens++] = *st;
	}
}

static void on_change(void *arg, uint64_t id, const struct sync_change *c)
{
	struct got *g = arg;

	if (g->nchanges < MAXREC) {
		g->change_ids[g->nchanges] = id;
		g->changes[g->nchanges++] = *c;
	}
}

static const struct sync_records_ops ops = { on_conn, on_delete, on_persist, on_done };
static const struct sync_records_ops ops3 = { on_conn, on_delete, on_persist, on_done,
					      on_open, on_change };

static struct lb_conn_state sample_conn(int v6, uint16_t cport)
{
	struct lb_conn_state st;

	memset(&st, 0, sizeof(st));
	lb_addr_parse(&st.orig.src, v6 ? "2001:db8::10" : "198.18.0.10");
	lb_addr_parse(&st.orig.dst, v6 ? "2001:db8::100" : "198.18.0.100");
	lb_addr_parse(&st.backend, v6 ? "2001:db8:1::12" : "198.18.1.12");
	st.orig.sport = cport;
	st.orig.dport = 80;
	st.backend_port = 8080;
	st.created_us = 1700000000123456ull + cport;
	st.version = 7;
	st.tcp.state = LB_TCP_ESTABLISHED;
	st.tcp.isn[0] = 0xfffffff0u;
	st.tcp.isn[1] = 12345;
	st.tcp.peer[0] = (struct lb_tcp_peer){ 0xfffffff1u, 0x10000, 65535, 7,
					       LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE };
	st.tcp.peer[1] = (struct lb_tcp_peer){ 99999, 200000, 1 << 20, 14,
					       LB_TCP_PF_SEEN | LB_TCP_PF_FIN };
	st.expires_ms = 899000;
	st.rate[0] = 1000;
	st.rate[1] = 123456789;
	st.persist_ms = 60000;
	return st;
}

static void assert_conn_equal(const struct lb_conn_state *a, const struct lb_conn_state *b)
{
	assert_true(lb_tuple_equal(&a->orig, &b->orig));
	assert_true(lb_addr_equal(&a->backend, &b->backend));
	assert_int_equal(a->backend_port, b->backend_port);
	assert_int_equal(a->created_us, b->created_us);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->tcp.state, b->tcp.state);
	assert_memory_equal(a->tcp.isn, b->tcp.isn, sizeof(a->tcp.isn));
	assert_memory_equal(a->tcp.peer, b->tcp.peer, sizeof(a->tcp.peer));
	assert_int_equal(a->expires_ms, b->expires_ms);
	assert_memory_equal(a->rate, b->rate, sizeof(a->rate));
	assert_int_equal(a->persist_ms, b->persist_ms);
}

static void test_round_trip_every_record(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	struct lb_conn_state c4 = sample_conn(0, 40000), c6 = sample_conn(1, 40001);
	struct lb_persist_state ps;
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	const uint8_t *p;
	size_t len;

	(void)state;
	memset(&ps, 0, sizeof(ps));
	lb_addr_parse(&ps.vip, "198.18.0.100");
	lb_addr_parse(&ps.client, "198.18.0.21");
	lb_addr_parse(&ps.backend, "198.18.1.13");
	ps.vport = 443;
	ps.backend_port = 8443;
	ps.expires_ms = 1234;
	assert_int_equal(sync_batch_add_conn(b, &c4), 0);
	assert_int_equal(sync_batch_add_conn(b, &c6), 0);
	assert_int_equal(sync_batch_add_delete(b, &c4), 0);
	assert_int_equal(sync_batch_add_persist(b, &ps), 0);
	assert_int_equal(sync_batch_add_resync_done(b, 0xabcdef0123ull, 2), 0);
	assert_int_equal(sync_batch_records(b), 5);
	p = sync_batch_data(b, &len);
	assert_int_equal(sync_batch_decode(p, len, &ops, g, &st), 0);
	assert_int_equal(g->nconns, 2);
	assert_conn_equal(&g->conns[0], &c4);
	assert_conn_equal(&g->conns[1], &c6);
	assert_int_equal(g->ndels, 1);
	assert_true(lb_tuple_equal(&g->dels[0].orig, &c4.orig));
	assert_int_equal(g->dels[0].created_us, c4.created_us);
	assert_int_equal(g->npersists, 1);
	assert_true(lb_addr_equal(&g->persists[0].client, &ps.client));
	assert_true(lb_addr_equal(&g->persists[0].backend, &ps.backend));
	assert_int_equal(g->persists[0].vport, 443);
	assert_int_equal(g->persists[0].backend_port, 8443);
	assert_int_equal(g->persists[0].expires_ms, 1234);
	assert_int_equal(g->dones, 1);
	assert_int_equal(g->done_id, 0xabcdef0123ull);
	assert_int_equal(g->done_conns, 2);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.records, 4);
	assert_int_equal(st.bad_record, 0);
	free(g);
	sync_batch_free(b);
}

static void test_batch_never_exceeds_its_size(void **state)
{
	struct sync_batch *b = sync_batch_new(600);
	struct lb_conn_state c = sample_conn(1, 1);
	size_t len, added = 0;

	(void)state;
	while (sync_batch_add_conn(b, &c) == 0)
		added++;
	assert_true(added >= 3);
	sync_batch_data(b, &len);
	assert_true(len <= 600);
	assert_int_equal(sync_batch_add_conn(b, &c), -ENOSPC);
	/* After a reset the same record fits again. */
	sync_batch_reset(b);
	assert_int_equal(sync_batch_records(b), 0);
	assert_int_equal(sync_batch_add_conn(b, &c), 0);
	sync_batch_free(b);
	/* A batch too small for even one record says so. */
	b = sync_batch_new(100);
	assert_int_equal(sync_batch_add_conn(b, &c), -EMSGSIZE);
	sync_batch_free(b);
	assert_null(sync_batch_new(10));
}

static void encode_two(struct sync_batch *b, const uint8_t **p, size_t *len)
{
	struct lb_conn_state c4 = sample_conn(0, 5000), c6 = sample_conn(1, 5001);

	sync_batch_reset(b);
	sync_batch_add_conn(b, &c4);
	sync_batch_add_conn(b, &c6);
	*p = sync_batch_data(b, len);
}

static void test_truncated_payloads_refused_whole(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	const uint8_t *p;
	size_t len, refused = 0;

	(void)state;
	encode_two(b, &p, &len);
	/* Every cut inside a record leaves an invalid protobuf: nothing may be
	 * delivered from it, not even the complete record before the cut.
	 * Cuts exactly between records are valid shorter batches. */
	for (size_t cut = 0; cut < len; cut++) {
		struct got *g = calloc(1, sizeof(*g));
		struct sync_decode_stats st = { 0 };
		int rc = sync_batch_decode(p, cut, &ops, g, &st);

		if (rc < 0) {
			assert_int_equal(g->nconns, 0);
			assert_int_equal(st.bad_batch, 1);
			refused++;
		} else {
			assert_true(g->nconns < 2);
		}
		free(g);
	}
	assert_true(refused > len - 4);
	sync_batch_free(b);
}

static void test_corrupted_payloads_never_deliver_garbage(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	uint8_t buf[1400];
	const uint8_t *p;
	size_t len;

	(void)state;
	encode_two(b, &p, &len);
	/* Flip each byte in turn: whatever decodes must be a valid record
	 * (the codec checks every field the engine relies on). */
	for (size_t i = 0; i < len; i++) {
		struct got *g = calloc(1, sizeof(*g));
		struct sync_decode_stats st = { 0 };

		memcpy(buf, p, len);
		buf[i] ^= 0xff;
		sync_batch_decode(buf, len, &ops, g, &st);
		for (size_t k = 0; k < g->nconns; k++) {
			const struct lb_conn_state *c = &g->conns[k];

			assert_true(c->orig.src.family == c->orig.dst.family);
			assert_true(c->backend.family == c->orig.src.family);
			assert_true(c->orig.sport && c->orig.dport && c->backend_port);
			assert_true(c->tcp.state > LB_TCP_NONE && c->tcp.state < LB_TCP_STATE_COUNT);
			assert_true(c->tcp.peer[0].wscale <= 14 && c->tcp.peer[1].wscale <= 14);
		}
		free(g);
	}
	sync_batch_free(b);
}

/* Records with invalid fields, hand-built: skipped and counted, the rest kept. */
static void test_invalid_records_skipped_and_counted(void **state)
{
	Lbsync__Batch m = LBSYNC__BATCH__INIT;
	Lbsync__Conn good = LBSYNC__CONN__INIT, bad_ip = LBSYNC__CONN__INIT,
		     bad_state = LBSYNC__CONN__INIT, bad_ws = LBSYNC__CONN__INIT,
		     bad_family = LBSYNC__CONN__INIT;
	Lbsync__TcpPeer peer = LBSYNC__TCP_PEER__INIT, wide = LBSYNC__TCP_PEER__INIT;
	Lbsync__Conn *list[] = { &bad_ip, &good, &bad_state, &bad_ws, &bad_family };
	uint8_t v4[4] = { 198, 18, 0, 10 }, v4b[4] = { 198, 18, 1, 11 }, three[3] = { 1, 2, 3 };
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	uint8_t buf[2048];
	size_t len;

	(void)state;
	wide.wscale = 15;
	good.client_ip = (ProtobufCBinaryData){ 4, v4 };
	good.vip = (ProtobufCBinaryData){ 4, v4 };
	good.backend_ip = (ProtobufCBinaryData){ 4, v4b };
	good.client_port = 1000;
	good.vport = 80;
	good.backend_port = 80;
	good.state = LB_TCP_ESTABLISHED;
	good.orig = good.reply = &peer;
	bad_ip = good;
	bad_ip.client_ip = (ProtobufCBinaryData){ 3, three };
	bad_state = good;
	bad_state.state = LB_TCP_STATE_COUNT;
	bad_ws = good;
	bad_ws.reply = &wide;
	bad_family = good;
	bad_family.backend_ip = (ProtobufCBinaryData){ 16, v6 };
	m.version = SYNC_RECORD_VERSION;
	m.n_conns = 5;
	m.conns = list;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops, g, &st), 0);
	assert_int_equal(g->nconns, 1);
	assert_int_equal(g->conns[0].orig.sport, 1000);
	assert_int_equal(st.bad_record, 4);
	assert_int_equal(st.records, 1);
	/* A batch of a record version we do not speak is refused whole. */
	m.version = SYNC_RECORD_VERSION + 1;
	len = lbsync__batch__pack(&m, buf);
	memset(g, 0, sizeof(*g));
	assert_int_equal(sync_batch_decode(buf, len, &ops, g, &st), -EINVAL);
	assert_int_equal(g->nconns, 0);
	assert_int_equal(st.bad_batch, 1);
	free(g);
}

/* Packed size of one connection record as the encoder writes it. */
static size_t record_bytes(const struct lb_conn_state *c)
{
	struct sync_batch *b = sync_batch_new(1400);
	size_t before, after;

	sync_batch_data(b, &before);
	assert_int_equal(sync_batch_add_conn(b, c), 0);
	sync_batch_data(b, &before);
	assert_int_equal(sync_batch_add_conn(b, c), 0);
	sync_batch_data(b, &after);
	sync_batch_free(b);
	return after - before;
}

/*
 * Version 2's Compact record: a short IPv4 connection's state (sequence
 * ends near their ISNs, no persistence) takes under 80 bytes (version 1's
 * Conn: 99); edge values (a creation before the batch's
 * base, ends that wrapped below their ISN, zero ISNs, a direction never
 * seen) survive exactly.
 */
static void test_compact_records_small_and_exact(void **state)
{
	struct lb_conn_state c = sample_conn(0, 40000), edge = sample_conn(1, 1);
	struct lb_conn_state early = sample_conn(0, 2), *all[3] = { &c, &edge, &early };
	struct sync_batch *b = sync_batch_new(1400);
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	const uint8_t *p;
	size_t len;

	(void)state;
	c.tcp.peer[0] = (struct lb_tcp_peer){ c.tcp.isn[0] + 80, c.tcp.isn[0] + 80 + 64240,
					      64240, 7, LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE };
	c.tcp.peer[1] = (struct lb_tcp_peer){ c.tcp.isn[1] + 900, c.tcp.isn[1] + 900 + 65160,
					      65160, 7, LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE };
	c.rate[0] = 8000;
	c.rate[1] = 90000;
	c.persist_ms = 0;
	assert_true(record_bytes(&c) < 80);
	printf("# compact record of a short IPv4 connection: %zu bytes\n", record_bytes(&c));
	edge.tcp.isn[0] = 0;
	edge.tcp.isn[1] = 0;
	memset(&edge.tcp.peer[1], 0, sizeof(edge.tcp.peer[1]));
	edge.tcp.peer[0].end = 5;		/* below isn 0 + ... */
	edge.tcp.peer[0].maxend = 0xfffffff0u;	/* maxend - end wraps */
	edge.rate[0] = edge.rate[1] = 0;
	edge.expires_ms = 0;
	early.created_us = c.created_us - 5000000;	/* before the base */
	for (int i = 0; i < 3; i++)
		assert_int_equal(sync_batch_add_conn(b, all[i]), 0);
	p = sync_batch_data(b, &len);
	assert_int_equal(sync_batch_decode(p, len, &ops, g, &st), 0);
	assert_int_equal(g->nconns, 3);
	for (int i = 0; i < 3; i++)
		assert_conn_equal(&g->conns[i], all[i]);
	assert_int_equal(st.bad_record, 0);
	free(g);
	sync_batch_free(b);
}

/* Compact records with invalid fields are skipped and counted; compact
 * records without the base they are relative to refuse the batch. */
static void test_invalid_compact_records(void **state)
{
	Lbsync__Batch m = LBSYNC__BATCH__INIT;
	Lbsync__Compact good = LBSYNC__COMPACT__INIT, short_peers, wide_ws, bad_flags, bad_port;
	Lbsync__Compact *list[] = { &short_peers, &good, &wide_ws, &bad_flags, &bad_port };
	uint8_t v4[4] = { 198, 18, 0, 10 }, v4b[4] = { 198, 18, 1, 11 };
	uint32_t peers[8] = { 1, 2, 3, 7 | 0x3 << 4, 1, 2, 3, 7 };
	uint32_t ws15[8] = { 1, 2, 3, 15, 1, 2, 3, 7 }, flags9[8] = { 1, 2, 3, 0x1007, 1, 2, 3, 7 };
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	uint8_t buf[2048];
	size_t len;

	(void)state;
	good.client_ip = (ProtobufCBinaryData){ 4, v4 };
	good.vip = (ProtobufCBinaryData){ 4, v4 };
	good.backend_ip = (ProtobufCBinaryData){ 4, v4b };
	good.client_port = 1000;
	good.vport = 80;
	good.backend_port = 80;
	good.state = LB_TCP_ESTABLISHED;
	good.created = -3;
	good.n_peers = 8;
	good.peers = peers;
	short_peers = good;
	short_peers.n_peers = 5;
	wide_ws = good;
	wide_ws.peers = ws15;
	bad_flags = good;
	bad_flags.peers = flags9;
	bad_port = good;
	bad_port.backend_port = 65536;
	m.version = SYNC_RECORD_VERSION;
	m.n_compact = 5;
	m.compact = list;
	m.has_base_us = 1;
	m.base_us = 1000;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops, g, &st), 0);
	assert_int_equal(g->nconns, 1);
	assert_int_equal(g->conns[0].created_us, 997);
	assert_int_equal(g->conns[0].tcp.peer[0].wscale, 7);
	assert_int_equal(g->conns[0].tcp.peer[0].flags, 3);
	assert_int_equal(st.bad_record, 4);
	m.has_base_us = 0;
	len = lbsync__batch__pack(&m, buf);
	memset(g, 0, sizeof(*g));
	assert_int_equal(sync_batch_decode(buf, len, &ops, g, &st), -EINVAL);
	assert_int_equal(g->nconns, 0);
	assert_int_equal(st.bad_batch, 1);
	free(g);
}

/*
 * The decoder's arena: a full datagram's batch decodes without spilling to
 * malloc, again and again; a payload larger than any datagram spills and
 * still decodes every record (ASan checks that the spilled memory is freed).
 */
static void test_decoder_arena(void **state)
{
	struct sync_decoder *d = sync_decoder_new();
	struct sync_batch *b = sync_batch_new(1400), *big = sync_batch_new(200000);
	struct lb_conn_state c = sample_conn(0, 1);
	struct got *g = calloc(1, sizeof(*g));
	const uint8_t *p;
	size_t len, n = 0, nbig = 0;

	(void)state;
	while (sync_batch_add_conn(b, &c) == 0) {
		c.orig.sport++;
		n++;
	}
	while (sync_batch_add_conn(big, &c) == 0)
		nbig++;
	for (int round = 0; round < 3; round++) {
		struct sync_decode_stats st = { 0 };

		memset(g, 0, sizeof(*g));
		p = sync_batch_data(b, &len);
		assert_int_equal(sync_decoder_decode(d, p, len, &ops, g, &st), 0);
		assert_int_equal(st.records, n);
		assert_int_equal(g->nconns, n < MAXREC ? n : MAXREC);
		assert_int_equal(g->conns[n - 1].orig.sport, 1 + n - 1);
	}
	assert_int_equal(sync_decoder_spilled(d), 0);
	{
		struct sync_decode_stats st = { 0 };

		p = sync_batch_data(big, &len);
		assert_int_equal(sync_decoder_decode(d, p, len, &ops, g, &st), 0);
		assert_int_equal(st.records, nbig);
		assert_true(sync_decoder_spilled(d) > 0);
	}
	free(g);
	sync_batch_free(b);
	sync_batch_free(big);
	sync_decoder_free(d);
}

/* A short HTTP connection as the tracker holds it after the handshake. */
static struct lb_conn_state handshake_conn(uint16_t cport, const char *backend)
{
	struct lb_conn_state c = sample_conn(0, cport);

	lb_addr_parse(&c.backend, backend);
	c.version = 1;
	c.tcp.isn[0] = 0x9e3779b9u + cport;
	c.tcp.isn[1] = 0x7f4a7c15u - cport;
	c.tcp.peer[0] = (struct lb_tcp_peer){ c.tcp.isn[0] + 1, c.tcp.isn[0] + 1 + 64256,
					      64240, 7, LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE };
	c.tcp.peer[1] = (struct lb_tcp_peer){ c.tcp.isn[1] + 1, c.tcp.isn[1] + 1 + 64256,
					      65160, 7, LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE };
	c.expires_ms = 900000;
	c.rate[0] = c.rate[1] = 0;
	c.persist_ms = 0;
	return c;
}

/* The same connection closed: request and response moved, both FINs; the
 * rates the codec carries (the node leaves them out of a closed one). */
static struct lb_conn_state closed_conn(const struct lb_conn_state *open)
{
	struct lb_conn_state c = *open;

	c.version = open->version + 4;
	c.tcp.state = LB_TCP_TIME_WAIT;
	/* Each side's upper bound moves with the other side's acks of it. */
	c.tcp.peer[0].end += 80;
	c.tcp.peer[0].maxend += 80;
	c.tcp.peer[0].flags |= LB_TCP_PF_FIN;
	c.tcp.peer[1].end += 612;
	c.tcp.peer[1].maxend += 612;
	c.tcp.peer[1].flags |= LB_TCP_PF_FIN;
	c.expires_ms = 120000;
	c.rate[0] = 8000;
	c.rate[1] = 61000;
	return c;
}

/* An Open as the receiver gets it: time left in whole seconds and rates
 * in whole KiB/s, both rounded up. */
static struct lb_conn_state as_opened(const struct lb_conn_state *c)
{
	struct lb_conn_state o = *c;

	o.expires_ms = (uint32_t)((c->expires_ms + 999ull) / 1000 * 1000);
	for (int d = 0; d < 2; d++) {
		uint64_t r = (c->rate[d] + 1023ull) / 1024 * 1024;

		o.rate[d] = r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
	}
	return o;
}

static void assert_opened(const struct lb_conn_state *got, const struct lb_conn_state *sent)
{
	struct lb_conn_state want = as_opened(sent);

	assert_conn_equal(got, &want);
}

static void assert_change_gives(const struct got *g, size_t i, const struct lb_conn_state *open,
				const struct lb_conn_state *want)
{
	struct lb_conn_state got;

	assert_int_equal(sync_change_apply(&g->changes[i], open, NULL, &got), 0);
	assert_conn_equal(&got, want);
}

/*
 * Opens name their addresses by index into lists the batch carries once,
 * get consecutive ids, and come back field for field; Changes come back as
 * the later state once applied to their Open, whatever moved (windows,
 * flags, an ISN first seen after the Open, IPv6). The short connection's
 * two records are printed: they are what a connection costs.
 */
static void test_open_change_round_trip(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	struct lb_conn_state c1 = handshake_conn(40000, "198.18.1.11");
	struct lb_conn_state c2 = handshake_conn(40001, "198.18.1.12");
	struct lb_conn_state c6 = sample_conn(1, 40002), self = handshake_conn(40003, "198.18.0.100");
	struct lb_conn_state c1b = closed_conn(&c1), c6b, syn = handshake_conn(40004, "198.18.1.11");
	struct lb_conn_state synb;
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	const uint8_t *p;
	size_t len, open_bytes, change_bytes;

	(void)state;
	self.backend_port = self.orig.dport;	/* a backend equal to the service */
	/* Opened at the SYN: the reply direction not seen yet. */
	syn.tcp.state = LB_TCP_SYN_SENT;
	syn.tcp.isn[1] = 0;
	memset(&syn.tcp.peer[1], 0, sizeof(syn.tcp.peer[1]));
	synb = handshake_conn(40004, "198.18.1.11");
	synb.version = 3;
	c6b = c6;
	c6b.version += 2;
	c6b.tcp.peer[1].end -= 10;		/* a difference below zero */
	c6b.tcp.peer[0].wscale = 3;
	c6b.rate[1] = 0;
	c6b.persist_ms = 0;

	assert_int_equal(sync_batch_add_open(b, 0, &c1), -EINVAL);
	assert_int_equal(sync_batch_next_open(b), 0);
	assert_int_equal(sync_batch_add_open(b, 7, &c1), 0);
	assert_int_equal(sync_batch_add_open(b, 8, &c2), 0);
	assert_int_equal(sync_batch_add_open(b, 10, &c6), -EINVAL);	/* not the next */
	assert_int_equal(sync_batch_next_open(b), 9);
	assert_int_equal(sync_batch_add_open(b, 9, &c6), 0);
	assert_int_equal(sync_batch_add_open(b, 10, &self), 0);
	assert_int_equal(sync_batch_add_open(b, 11, &syn), 0);
	assert_int_equal(sync_batch_add_change(b, 7, &c1, &c1b), 0);
	assert_int_equal(sync_batch_add_change(b, 9, &c6, &c6b), 0);
	assert_int_equal(sync_batch_add_change(b, 11, &syn, &synb), 0);
	assert_int_equal(sync_batch_add_change(b, 3, &c2, &c2), 0);	/* nothing moved */
	{
		struct sync_batch *one = sync_batch_new(1400);
		size_t empty;

		sync_batch_data(one, &empty);
		assert_int_equal(sync_batch_add_change(one, 1000, &c1, &c1b), 0);
		assert_int_equal(sync_batch_add_change(one, 1001, &c1, &c1b), 0);
		sync_batch_data(one, &change_bytes);
		sync_batch_data(one, &len);
		assert_int_equal(sync_batch_add_change(one, 1002, &c1, &c1b), 0);
		sync_batch_data(one, &change_bytes);
		change_bytes -= len;
		/* An Open whose addresses the batch already lists. */
		assert_int_equal(sync_batch_add_open(one, 50, &c1), 0);
		c1.orig.sport++;
		sync_batch_data(one, &len);
		assert_int_equal(sync_batch_add_open(one, 51, &c1), 0);
		sync_batch_data(one, &open_bytes);
		open_bytes -= len;
		c1.orig.sport--;
		sync_batch_free(one);
	}
	printf("# short IPv4 connection: Open %zu bytes, its close as a Change %zu bytes "
	       "(a Compact record: %zu)\n", open_bytes, change_bytes, record_bytes(&c1b));
	assert_true(open_bytes <= 36);
	assert_true(change_bytes <= 36);
	p = sync_batch_data(b, &len);
	assert_int_equal(sync_batch_decode(p, len, &ops3, g, &st), 0);
	assert_int_equal(st.bad_record, 0);
	assert_int_equal(g->nconns, 0);
	assert_int_equal(g->nopens, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(g->open_ids[i], 7 + i);
	assert_opened(&g->opens[0], &c1);
	assert_opened(&g->opens[1], &c2);
	assert_opened(&g->opens[2], &c6);
	assert_opened(&g->opens[3], &self);
	assert_opened(&g->opens[4], &syn);
	assert_int_equal(g->nchanges, 4);
	assert_int_equal(g->change_ids[0], 7);
	assert_int_equal(g->change_ids[1], 9);
	assert_int_equal(g->change_ids[2], 11);
	assert_int_equal(g->change_ids[3], 3);
	assert_change_gives(g, 0, &g->opens[0], &c1b);
	assert_change_gives(g, 1, &g->opens[2], &c6b);
	assert_change_gives(g, 2, &g->opens[4], &synb);
	assert_change_gives(g, 3, &g->opens[1], &c2);
	/* Without the version 3 hooks, Opens still arrive as connections. */
	memset(g, 0, sizeof(*g));
	assert_int_equal(sync_batch_decode(p, len, &ops, g, &st), 0);
	assert_int_equal(g->nconns, 5);
	assert_opened(&g->conns[3], &self);
	free(g);
	sync_batch_free(b);
}

/* Opens that name entries the batch does not have, or mix families, are
 * skipped and counted; Opens or Changes without their bases refuse the
 * batch; a Change that would give an invalid window scale is refused when
 * applied. */
static void test_invalid_open_change(void **state)
{
	Lbsync__Batch m = LBSYNC__BATCH__INIT;
	Lbsync__Endpoint svc = LBSYNC__ENDPOINT__INIT, be6 = LBSYNC__ENDPOINT__INIT;
	Lbsync__Endpoint *eps[] = { &svc, &be6 };
	Lbsync__Open good = LBSYNC__OPEN__INIT, bad_client, bad_backend, v6_backend, bad_port;
	Lbsync__Open *opens[] = { &bad_client, &good, &bad_backend, &v6_backend, &bad_port };
	Lbsync__Change ch = LBSYNC__CHANGE__INIT, short_peers;
	Lbsync__Change *changes[] = { &ch, &short_peers };
	uint8_t v4[4] = { 198, 18, 0, 10 }, vip[4] = { 198, 18, 0, 100 }, v6[16] = { 0x20, 1, 0xd, 0xb8 };
	ProtobufCBinaryData clients[] = { { 4, v4 } };
	int32_t d[8] = { 0, 0, 0, 8, 0, 0, 0, 0 };
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	struct lb_conn_state out;
	uint8_t buf[2048];
	size_t len;

	(void)state;
	svc.ip = (ProtobufCBinaryData){ 4, vip };
	svc.port = 80;
	be6.ip = (ProtobufCBinaryData){ 16, v6 };
	be6.port = 80;
	good.client = 0;
	good.client_port = 1000;
	good.service = 0;
	good.backend = 0;
	good.state = LB_TCP_ESTABLISHED;
	bad_client = good;
	bad_client.client = 1;
	bad_backend = good;
	bad_backend.backend = 2;
	v6_backend = good;
	v6_backend.backend = 1;
	bad_port = good;
	bad_port.client_port = 0;
	ch.version = 2;
	ch.state = LB_TCP_FIN_WAIT;
	ch.n_peers = 8;
	ch.peers = d;			/* wscale 7 + 8: too wide once applied */
	short_peers = ch;
	short_peers.n_peers = 3;
	m.version = SYNC_RECORD_VERSION;
	m.n_endpoints = 2;
	m.endpoints = eps;
	m.n_clients = 1;
	m.clients = clients;
	m.n_opens = 5;
	m.opens = opens;
	m.has_base_us = 1;
	m.base_us = 5000;
	m.has_open_base = 1;
	m.open_base = 100;
	m.n_changes = 2;
	m.changes = changes;
	m.has_change_base = 1;
	m.change_base = 101;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops3, g, &st), 0);
	assert_int_equal(st.bad_record, 5);	/* 4 Opens, 1 Change */
	assert_int_equal(g->nopens, 1);
	assert_int_equal(g->open_ids[0], 101);	/* its place in the batch */
	assert_int_equal(g->opens[0].created_us, 5000);
	assert_int_equal(g->opens[0].version, 1);
	assert_int_equal(g->nchanges, 1);
	assert_int_equal(g->change_ids[0], 101);
	g->opens[0].tcp.peer[0].wscale = 7;
	assert_int_equal(sync_change_apply(&g->changes[0], &g->opens[0], NULL, &out), -EINVAL);
	d[3] = 1;
	memset(g, 0, sizeof(*g));
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops3, g, &st), 0);
	assert_int_equal(sync_change_apply(&g->changes[0], &g->opens[0], NULL, &out), 0);
	assert_int_equal(out.tcp.state, LB_TCP_FIN_WAIT);
	assert_int_equal(out.version, 2);
	/* Without the bases: the whole batch is refused. */
	m.has_open_base = 0;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops3, g, &st), -EINVAL);
	m.has_open_base = 1;
	m.has_change_base = 0;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops3, g, &st), -EINVAL);
	m.has_change_base = 1;
	m.has_base_us = 0;
	len = lbsync__batch__pack(&m, buf);
	assert_int_equal(sync_batch_decode(buf, len, &ops3, g, &st), -EINVAL);
	assert_int_equal(st.bad_batch, 3);
	free(g);
}

/*
 * A close names its Open and carries its version, state, how far each end
 * moved and its time left, in a few bytes. Applied to the Open it gives the
 * closed connection: ends moved, both FINs sent and acked. Applied to what
 * the receiver holds after a later Change (a larger window edge), it keeps
 * that edge: nothing moves backwards. A close of an RST is told apart; a
 * close whose Open was made at the SYN carries the reply ISN; a record that
 * cannot be a close (not closed, not newer, an ISN other than the Open's)
 * is refused by add_close.
 */
static void test_close_round_trip(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	struct lb_conn_state c1 = handshake_conn(40000, "198.18.1.11");
	struct lb_conn_state c2 = handshake_conn(40001, "198.18.1.12");
	struct lb_conn_state c1b = closed_conn(&c1), c2b = c2, held, out, syn = c1, synb, other;
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	const uint8_t *p;
	size_t len, before, close_bytes, isn_bytes;

	(void)state;
	c2b.version += 2;
	c2b.tcp.state = LB_TCP_CLOSE;
	c2b.tcp.peer[0].end -= 5;		/* an end below the Open's */
	c2b.expires_ms = 9500;
	/* Opened at the SYN: the reply side unseen, its ISN unknown. */
	syn.orig.sport = 40009;
	syn.tcp.state = LB_TCP_SYN_SENT;
	syn.version = 1;
	syn.tcp.isn[1] = 0;
	memset(&syn.tcp.peer[1], 0, sizeof(syn.tcp.peer[1]));
	synb = closed_conn(&c1);
	synb.orig.sport = syn.orig.sport;
	other = c1b;
	other.tcp.isn[1]++;
	assert_int_equal(sync_batch_add_close(b, 7, &c1, &c2), -EINVAL);	/* not closed */
	assert_int_equal(sync_batch_add_close(b, 7, &c1, &other), -EINVAL);	/* another ISN */
	assert_int_equal(sync_batch_add_close(b, 7, &c1b, &c1b), -EINVAL);	/* not newer */
	assert_int_equal(sync_batch_add_open(b, 7, &c1), 0);
	assert_int_equal(sync_batch_add_open(b, 8, &c2), 0);
	assert_int_equal(sync_batch_add_open(b, 9, &syn), 0);
	assert_int_equal(sync_batch_add_close(b, 7, &c1, &c1b), 0);
	before = sync_batch_len(b);
	assert_int_equal(sync_batch_add_close(b, 8, &c2, &c2b), 0);
	close_bytes = sync_batch_len(b) - before;
	before = sync_batch_len(b);
	assert_int_equal(sync_batch_add_close(b, 9, &syn, &synb), 0);
	isn_bytes = sync_batch_len(b) - before;
	printf("# a close after the first in its batch: %zu bytes (%zu with the reply ISN its "
	       "Open lacked)\n", close_bytes, isn_bytes);
	assert_true(close_bytes <= 8);
	assert_true(isn_bytes <= 18);
	p = sync_batch_data(b, &len);
	assert_int_equal(len, sync_batch_len(b));
	assert_int_equal(sync_batch_decode(p, len, &ops3, g, &st), 0);
	assert_int_equal(st.bad_record, 0);
	assert_int_equal(g->nopens, 3);
	assert_int_equal(g->nchanges, 3);
	assert_int_equal(g->change_ids[0], 7);
	assert_int_equal(g->change_ids[1], 8);
	assert_int_equal(g->change_ids[2], 9);
	assert_true(g->changes[0].close && g->changes[1].close && g->changes[2].close);
	/* The SYN's Open closed: the reply side learnt from the close. */
	assert_int_equal(sync_change_apply(&g->changes[2], &g->opens[2], NULL, &out), 0);
	assert_int_equal(out.tcp.isn[1], synb.tcp.isn[1]);
	assert_int_equal(out.tcp.peer[1].end, synb.tcp.peer[1].end);
	assert_int_equal(out.tcp.peer[0].end, synb.tcp.peer[0].end);
	assert_int_equal(out.tcp.peer[1].flags,
			 LB_TCP_PF_SEEN | LB_TCP_PF_FIN | LB_TCP_PF_FIN_ACKED);
	assert_int_equal(out.version, synb.version);
	/* Held after the Change that brought the reply ISN: ends move on. */
	held = synb;
	held.version = syn.version + 1;
	held.tcp.state = LB_TCP_ESTABLISHED;
	held.tcp.peer[1].end -= 100;
	assert_int_equal(sync_change_apply(&g->changes[2], &g->opens[2], &held, &out), 0);
	assert_int_equal(out.tcp.peer[1].end, synb.tcp.peer[1].end);
	assert_int_equal(out.tcp.peer[1].maxend, held.tcp.peer[1].maxend);
	assert_int_equal(out.tcp.peer[1].wscale, held.tcp.peer[1].wscale);
	held = c1;

	assert_int_equal(sync_change_apply(&g->changes[0], &g->opens[0], NULL, &out), 0);
	assert_int_equal(out.version, c1b.version);
	assert_int_equal(out.tcp.state, LB_TCP_TIME_WAIT);
	assert_int_equal(out.expires_ms, 120000);
	assert_int_equal(out.rate[0], 0);
	for (int d = 0; d < 2; d++) {
		assert_int_equal(out.tcp.peer[d].end, c1b.tcp.peer[d].end);
		assert_int_equal(out.tcp.peer[d].flags, c1b.tcp.peer[d].flags | LB_TCP_PF_FIN_ACKED);
		assert_false(lb_seq_lt(out.tcp.peer[d].maxend, out.tcp.peer[d].end));
	}
	/* Held after a Change that moved a window edge further. */
	held.version = c1.version + 2;
	held.tcp.peer[1].maxend += 100000;
	held.tcp.peer[0].end += 40;
	assert_int_equal(sync_change_apply(&g->changes[0], &g->opens[0], &held, &out), 0);
	assert_int_equal(out.tcp.peer[1].maxend, held.tcp.peer[1].maxend);
	assert_int_equal(out.tcp.peer[0].end, c1b.tcp.peer[0].end);
	assert_int_equal(out.version, c1b.version);
	/* The RST's close: its end below the Open's does not move it back. */
	assert_int_equal(sync_change_apply(&g->changes[1], &g->opens[1], NULL, &out), 0);
	assert_int_equal(out.tcp.state, LB_TCP_CLOSE);
	assert_int_equal(out.version, c2b.version);
	assert_int_equal(out.expires_ms, 10000);
	assert_int_equal(out.tcp.peer[0].end, c2.tcp.peer[0].end);
	assert_int_equal(out.tcp.peer[0].flags, c2.tcp.peer[0].flags);
	free(g);
	sync_batch_free(b);
}

/* Columns that do not line up (an ISN missing, a close without its ends)
 * refuse the whole batch: no entry can be trusted to be whose it says. */
static void test_misaligned_columns_refused(void **state)
{
	struct sync_batch *b = sync_batch_new(1400);
	struct lb_conn_state c1 = handshake_conn(40000, "198.18.1.11"), c1b = closed_conn(&c1);
	struct sync_decode_stats st = { 0 };
	struct got *g = calloc(1, sizeof(*g));
	Lbsync__Batch *m;
	const uint8_t *p;
	uint8_t buf[2048];
	size_t len;

	(void)state;
	assert_int_equal(sync_batch_add_open(b, 7, &c1), 0);
	assert_int_equal(sync_batch_add_close(b, 7, &c1, &c1b), 0);
	p = sync_batch_data(b, &len);
	m = lbsync__batch__unpack(NULL, len, p);
	assert_non_null(m);
	assert_int_equal(m->n_open_client, 1);
	assert_int_equal(m->n_close_id, 1);
	assert_int_equal(sync_batch_decode(buf, lbsync__batch__pack(m, buf), &ops3, g, &st), 0);
	m->n_open_isn = 1;
	assert_int_equal(sync_batch_decode(buf, lbsync__batch__pack(m, buf), &ops3, g, &st), -EINVAL);
	m->n_open_isn = 2;
	m->n_close_ends = 1;
	assert_int_equal(sync_batch_decode(buf, lbsync__batch__pack(m, buf), &ops3, g, &st), -EINVAL);
	m->n_close_ends = 2;
	m->close_state[0] |= 2;		/* says it carries an ISN it does not */
	assert_int_equal(sync_batch_decode(buf, lbsync__batch__pack(m, buf), &ops3, g, &st), -EINVAL);
	m->close_state[0] &= ~(uint64_t)2;
	m->open_state[0] = 0;		/* state none: that Open alone is bad */
	memset(g, 0, sizeof(*g));
	assert_int_equal(sync_batch_decode(buf, lbsync__batch__pack(m, buf), &ops3, g, &st), 0);
	assert_int_equal(g->nopens, 0);
	assert_int_equal(st.bad_batch, 3);
	assert_int_equal(st.bad_record, 1);
	lbsync__batch__free_unpacked(m, NULL);
	free(g);
	sync_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_record),
		cmocka_unit_test(test_batch_never_exceeds_its_size),
		cmocka_unit_test(test_truncated_payloads_refused_whole),
		cmocka_unit_test(test_corrupted_payloads_never_deliver_garbage),
		cmocka_unit_test(test_invalid_records_skipped_and_counted),
		cmocka_unit_test(test_compact_records_small_and_exact),
		cmocka_unit_test(test_invalid_compact_records),
		cmocka_unit_test(test_decoder_arena),
		cmocka_unit_test(test_open_change_round_trip),
		cmocka_unit_test(test_invalid_open_change),
		cmocka_unit_test(test_close_round_trip),
		cmocka_unit_test(test_misaligned_columns_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
