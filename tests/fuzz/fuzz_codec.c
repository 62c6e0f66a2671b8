/*
 * libFuzzer harness: arbitrary bytes as the payload of an authenticated sync
 * datagram (what a buggy or newer peer could send) into the record decoder,
 * and each record it accepts into a backup engine's import. Records with
 * invalid fields must be skipped and counted; nothing may crash, and the
 * engine's table stays consistent. Every connection record accepted is
 * also encoded again (as a Compact record) and decoded: it must come back
 * field for field, so the decoder accepts nothing the encoder cannot say
 * and the encoder's relative fields undo exactly. The input's first bytes
 * are tried twice: as they are, and behind a version-2 prefix with a base,
 * so that the fuzzer reaches the Compact decoder from any bytes. Build and
 * run: tests/fuzz/run codec.
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

static const struct sync_records_ops ops = { on_conn, on_delete, on_persist, on_done };

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
	static uint8_t buf[sizeof(v2) + 70000];

	if (!engine)
		setup();
	sync_batch_decode(data, size, &ops, NULL, &st);
	if (size <= sizeof(buf) - sizeof(v2)) {
		memcpy(buf, v2, sizeof(v2));
		memcpy(buf + sizeof(v2), data, size);
		sync_batch_decode(buf, sizeof(v2) + size, &ops, NULL, &st);
	}
	now += 10;
	if (now % 4096 == 0)
		lb_engine_tick(engine, worker, now + 10000000);
	return 0;
}
