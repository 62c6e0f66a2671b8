/*
 * libFuzzer harness: arbitrary bytes as the payload of an authenticated sync
 * datagram (what a buggy or newer peer could send) into the record decoder,
 * and each record it accepts into a backup engine's import. Records with
 * invalid fields must be skipped and counted; nothing may crash, and the
 * engine's table stays consistent. Build and run: tests/fuzz/run codec.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb_engine.h"
#include "sync_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lb_engine *engine;
static struct lb_worker *worker;
static uint64_t now = 1000;

static void on_conn(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
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
	if (!engine || lb_engine_set_services(engine, &svc, 1) < 0)
		abort();
	worker = lb_engine_worker_new(engine);
	lb_engine_set_role(engine, LB_ROLE_BACKUP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_decode_stats st = { 0 };

	if (!engine)
		setup();
	sync_batch_decode(data, size, &ops, NULL, &st);
	now += 10;
	if (now % 4096 == 0)
		lb_engine_tick(engine, worker, now + 10000000);
	return 0;
}
