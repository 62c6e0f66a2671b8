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

static const struct sync_records_ops ops = { on_conn, on_delete, on_persist, on_done };

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
