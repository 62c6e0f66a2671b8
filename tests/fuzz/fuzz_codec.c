/*
 * libFuzzer harness: arbitrary bytes as the payload of an authenticated sync
 * datagram (what a buggy or newer peer could send) into the record decoder,
 * and each record it accepts into a backup engine's import. Records with
 * invalid fields must be skipped and counted; nothing may crash, and the
 * engine's table stays consistent. Every connection record accepted is
 * also encoded again (as a Compact record) and decoded: it must come back
 * field for field, so the decoder accepts nothing the encoder cannot say
 * and the encoder's relative fields undo exactly. Version 3 likewise: each
 * Open accepted is encoded again as an Open and must come back, and each
 * Change is applied to the last Open (a Change names its Open by id, which
 * arbitrary bytes rarely match; any Open will do to exercise the
 * arithmetic): if that gives a valid state, the state is encoded again as a
 * Change against that Open and must come back the same once applied. The
 * input's first bytes are tried three times: as they are, and behind a
 * version-2 and a version-3 prefix with the bases, so that the fuzzer reaches
 * the Compact, Open and Change decoders from any bytes. Build and run:
 * tests/fuzz/run codec.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb_engine.h"
#include "sync_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lb_engine *engine;
static struct lb_worker *worker;
static uint64_t now = 1000;

static struct sync_batch *again;

static void keep(void *arg, const struct lb_conn_state *st)
{
	*(struct lb_conn_state *)arg = *st;
}

static void drop_delete(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
	(void)st;
}

static void drop_persist(void *arg, const struct lb_persist_state *st)
{
	(void)arg;
	(void)st;
}

static void drop_done(void *arg, uint64_t id, uint32_t conns)
{
	(void)arg;
	(void)id;
	(void)conns;
}

static const struct sync_records_ops keep_ops = { keep, drop_delete, drop_persist, drop_done };

/* Version 3's round trips keep what came back here. */
static struct lb_conn_state kept_open;
static uint64_t kept_id;
static struct sync_change kept_change;

static void keep_open(void *arg, uint64_t id, const struct lb_conn_state *st)
{
	(void)arg;
	kept_id = id;
	kept_open = *st;
}

static void keep_change(void *arg, uint64_t id, const struct sync_change *c)
{
	(void)arg;
	kept_id = id;
	kept_change = *c;
}

static const struct sync_records_ops keep3_ops = { keep, drop_delete, drop_persist, drop_done,
						   keep_open, keep_change };

static int same_state(const struct lb_conn_state *a, const struct lb_conn_state *b)
{
	return lb_tuple_equal(&a->orig, &b->orig) && lb_addr_equal(&a->backend, &b->backend) &&
	       a->backend_port == b->backend_port && a->created_us == b->created_us &&
	       a->version == b->version && a->tcp.state == b->tcp.state &&
	       !memcmp(a->tcp.isn, b->tcp.isn, sizeof(a->tcp.isn)) &&
	       !memcmp(a->tcp.peer, b->tcp.peer, sizeof(a->tcp.peer)) &&
	       a->expires_ms == b->expires_ms && !memcmp(a->rate, b->rate, sizeof(a->rate)) &&
	       a->persist_ms == b->persist_ms;
}

/* What the decoder accepted, encoded and decoded again, is the same. */
static void round_trip(const struct lb_conn_state *st)
{
	struct lb_conn_state back;
	struct sync_decode_stats ds = { 0 };
	const uint8_t *p;
	size_t len;

	sync_batch_reset(again);
	if (sync_batch_add_conn(again, st) < 0)
		abort();
	p = sync_batch_data(again, &len);
	memset(&back, 0, sizeof(back));
	if (sync_batch_decode(p, len, &keep_ops, &back, &ds) < 0 || ds.records != 1 ||
	    !lb_tuple_equal(&back.orig, &st->orig) || !lb_addr_equal(&back.backend, &st->backend) ||
	    back.backend_port != st->backend_port || back.created_us != st->created_us ||
	    back.version != st->version || back.tcp.state != st->tcp.state ||
	    memcmp(back.tcp.isn, st->tcp.isn, sizeof(back.tcp.isn)) ||
	    memcmp(back.tcp.peer, st->tcp.peer, sizeof(back.tcp.peer)) ||
	    back.expires_ms != st->expires_ms || memcmp(back.rate, st->rate, sizeof(back.rate)) ||
	    back.persist_ms != st->persist_ms)
		abort();
}

/* The decoded batch in `again`, one record expected, into keep3_ops. */
static void decode_again(void)
{
	struct sync_decode_stats ds = { 0 };
	const uint8_t *p;
	size_t len;

	p = sync_batch_data(again, &len);
	kept_id = 0;
	if (sync_batch_decode(p, len, &keep3_ops, NULL, &ds) < 0 || ds.records != 1)
		abort();
}

static struct lb_conn_state last_open;
static int have_open;

/* An Open as version 4 sends it: time left in seconds and rates in KiB/s,
 * rounded up (saturating). */
static struct lb_conn_state as_opened(const struct lb_conn_state *st)
{
	struct lb_conn_state o = *st;
	uint64_t x = (st->expires_ms + 999ull) / 1000 * 1000;

	o.expires_ms = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
	for (int d = 0; d < 2; d++) {
		x = (st->rate[d] + 1023ull) / 1024 * 1024;
		o.rate[d] = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
	}
	return o;
}

static void on_open(void *arg, uint64_t id, const struct lb_conn_state *st)
{
	struct lb_conn_state want = as_opened(st);

	(void)arg;
	sync_batch_reset(again);
	if (sync_batch_add_open(again, id ? id : 1, st) < 0)
		abort();
	decode_again();
	if (kept_id != (id ? id : 1) || !same_state(&kept_open, &want))
		abort();
	last_open = *st;
	have_open = 1;
	lb_engine_import_conn(engine, worker, st, now);
}

static void on_change(void *arg, uint64_t id, const struct sync_change *c)
{
	struct lb_conn_state st, back;

	(void)arg;
	if (!have_open || sync_change_apply(c, &last_open, NULL, &st) < 0)
		return;
	sync_batch_reset(again);
	/* A close comes back as a close (its held state is the Open here). */
	if ((c->close ? sync_batch_add_close(again, id, &last_open, &st)
		      : sync_batch_add_change(again, id, &last_open, &st)) < 0)
		abort();
	decode_again();
	if (kept_id != id || sync_change_apply(&kept_change, &last_open, NULL, &back) < 0 ||
	    !same_state(&back, &st))
		abort();
	lb_engine_import_conn(engine, worker, &st, now);
}

static void on_conn(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
	round_trip(st);
	lb_engine_import_conn(engine, worker, st, now);
}

static void on_delete(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
	lb_engine_import_delete(engine, worker, st, now);
}

static void on_persist(void *arg, const struct lb_persist_state *st)
{
	(void)arg;
	lb_engine_import_persist(engine, worker, st, now);
}

static void on_done(void *arg, uint64_t id, uint32_t conns)
{
	(void)arg;
	(void)id;
	(void)conns;
}

static const struct sync_records_ops ops = { on_conn, on_delete, on_persist, on_done,
					     on_open, on_change };

static void setup(void)
{
	static struct lb_backend_conf be[1];
	struct lb_service_conf svc = { .port = 80, .scheduler = "rr", .backends = be,
				       .nbackends = 1 };
	struct lb_engine_conf ec;

	lb_addr_parse(&svc.vip, "198.18.0.100");
	lb_addr_parse(&be[0].addr, "198.18.1.11");
	be[0].port = 80;
	be[0].weight = 1;
	lb_engine_conf_defaults(&ec);
	ec.max_conns = 256;
	ec.seed = 1;
	engine = lb_engine_new(&ec, now);
	again = sync_batch_new(1400);
	if (!engine || !again || lb_engine_set_services(engine, &svc, 1) < 0)
		abort();
	worker = lb_engine_worker_new(engine);
	lb_engine_set_role(engine, LB_ROLE_BACKUP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_decode_stats st = { 0 };

	/* Batch.version = 2, Batch.base_us = 1700000000000000 */
	static const uint8_t v2[] = { 0x08, 0x02, 0x38, 0x80, 0x80, 0xf9, 0xc0, 0xc1, 0xc4, 0x82, 0x03 };
	/* Batch.version = 3, base_us as above, clients = [198.18.0.10],
	 * endpoints = [198.18.0.100:80, 198.18.1.11:80], open_base = 1,
	 * change_base = 1 */
	static const uint8_t v3[] = {
		0x08, 0x03, 0x38, 0x80, 0x80, 0xf9, 0xc0, 0xc1, 0xc4, 0x82, 0x03,
		0x4a, 0x04, 198, 18, 0, 10,
		0x42, 0x08, 0x0a, 0x04, 198, 18, 0, 100, 0x10, 0x50,
		0x42, 0x08, 0x0a, 0x04, 198, 18, 1, 11, 0x10, 0x50,
		0x50, 0x01, 0x60, 0x01,
	};
	static uint8_t buf[sizeof(v3) + 70000];

	if (!engine)
		setup();
	sync_batch_decode(data, size, &ops, NULL, &st);
	if (size <= sizeof(buf) - sizeof(v3)) {
		memcpy(buf, v2, sizeof(v2));
		memcpy(buf + sizeof(v2), data, size);
		sync_batch_decode(buf, sizeof(v2) + size, &ops, NULL, &st);
		memcpy(buf, v3, sizeof(v3));
		memcpy(buf + sizeof(v3), data, size);
		sync_batch_decode(buf, sizeof(v3) + size, &ops, NULL, &st);
	}
	now += 10;
	if (now % 4096 == 0)
		lb_engine_tick(engine, worker, now + 10000000);
	return 0;
}
