/*
 * libFuzzer harness: arbitrary bytes as a packet into the engine, at both
 * hooks and with and without the partial-checksum flag. The parser must
 * refuse what it cannot read (and count it), and nothing after it may read
 * or write out of bounds, whatever the headers claim. The first bytes of
 * the input pick hook and flags; a few fixed SYNs first give the engine
 * connections for the rest to hit. Build and run: tests/fuzz/run pkt.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lb_engine *engine;
static struct lb_worker *worker;

static void setup(void)
{
	static struct lb_backend_conf be[2];
	struct lb_service_conf svc[2] = {
		{ .port = 80, .scheduler = "rr", .backends = &be[0], .nbackends = 1 },
		{ .port = 80, .scheduler = "mh", .backends = &be[1], .nbackends = 1 },
	};
	struct lb_engine_conf ec;

	lb_addr_parse(&svc[0].vip, "198.18.0.100");
	lb_addr_parse(&svc[1].vip, "2001:db8::100");
	lb_addr_parse(&be[0].addr, "198.18.1.11");
	lb_addr_parse(&be[1].addr, "2001:db8:1::11");
	be[0].port = be[1].port = 80;
	be[0].weight = be[1].weight = 1;
	lb_engine_conf_defaults(&ec);
	ec.max_conns = 1024;
	ec.seed = 1;
	engine = lb_engine_new(&ec, 1000);
	if (!engine || lb_engine_set_services(engine, svc, 2) < 0)
		abort();
	worker = lb_engine_worker_new(engine);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t now = 1000;
	uint8_t *copy;
	struct lb_packet pkt;

	if (!engine)
		setup();
	if (size < 1)
		return 0;
	/* An exact-size heap copy, so ASan catches a read one past the end. */
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	pkt = (struct lb_packet){ .data = copy, .len = (uint32_t)(size - 1),
				  .hook = (enum lb_hook)(data[0] % 3),
				  .flags = (data[0] >> 2) & (LB_PKT_F_CSUM_PARTIAL | LB_PKT_F_GSO) };
	lb_engine_packet(engine, worker, &pkt, now++);
	if (now % 1024 == 0)
		lb_engine_tick(engine, worker, now + 1000000);
	free(copy);
	return 0;
}
