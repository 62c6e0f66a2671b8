/*
 * What the sync benches (bench_import, bench_resync) share: a backup engine
 * with one service on 198.18.0.100:80 over three backends, and connection i
 * of a seeded table, established and mid-stream, as the master would
 * replicate it. Header-only: each bench is one translation unit.
 */
#ifndef BENCH_CONNS_H
#define BENCH_CONNS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_engine.h"

#define BENCH_VIP "198.18.0.100"

/* A backup engine of max_conns entries at now_ms; exits naming who on failure. */
static inline struct lb_engine *bench_engine_new(const char *who, size_t max_conns,
						 uint64_t now_ms)
{
	static struct lb_backend_conf be[3];
	struct lb_service_conf svc = { .port = 80, .scheduler = "rr", .backends = be,
				       .nbackends = 3 };
	struct lb_engine_conf ec;
	struct lb_engine *e;

	for (int i = 0; i < 3; i++) {
		char a[32];

		snprintf(a, sizeof(a), "198.18.1.%d", 11 + i);
		lb_addr_parse(&be[i].addr, a);
		be[i].port = 80;
		be[i].weight = 1;
	}
	lb_engine_conf_defaults(&ec);
	ec.max_conns = max_conns;
	ec.seed = 7;
	lb_addr_parse(&svc.vip, BENCH_VIP);
	e = lb_engine_new(&ec, now_ms);
	if (!e || lb_engine_set_services(e, &svc, 1) < 0) {
		fprintf(stderr, "%s: cannot make an engine of %zu connections\n", who, max_conns);
		exit(1);
	}
	lb_engine_set_role(e, LB_ROLE_BACKUP);
	return e;
}

/* Connection i: a distinct client address and port (up to 15,000,000),
 * established, 300 bytes moved each way per version. */
static inline void bench_conn_state(struct lb_conn_state *st, size_t i, uint64_t created_us,
				    uint32_t version)
{
	char a[32];

	memset(st, 0, sizeof(*st));
	snprintf(a, sizeof(a), "198.18.%zu.%zu", 64 + i / 60000 / 250, 1 + i / 60000 % 250);
	lb_addr_parse(&st->orig.src, a);
	lb_addr_parse(&st->orig.dst, BENCH_VIP);
	st->orig.sport = (uint16_t)(1024 + i % 60000);
	st->orig.dport = 80;
	snprintf(a, sizeof(a), "198.18.1.%zu", 11 + i % 3);
	lb_addr_parse(&st->backend, a);
	st->backend_port = 80;
	st->created_us = created_us;
	st->version = version;
	st->tcp.state = LB_TCP_ESTABLISHED;
	st->tcp.isn[0] = (uint32_t)(i * 2654435761u);
	st->tcp.isn[1] = (uint32_t)(i * 40503u + 17);
	for (int d = 0; d < 2; d++) {
		struct lb_tcp_peer *p = &st->tcp.peer[d];

		p->end = st->tcp.isn[d] + 1 + 300 * version;
		p->maxend = p->end + 64240;
		p->maxwin = 64240;
		p->wscale = 7;
		p->flags = LB_TCP_PF_SEEN | LB_TCP_PF_WSCALE;
	}
	st->expires_ms = 900000;
	st->rate[0] = 4000;
	st->rate[1] = 40000;
}

#endif
