/*
 * The standby's side of replication, measured (bench/sync_import.sh runs
 * it; timing lives here, not in the unit suites):
 *
 * 1. CPU per imported record: N established connections encoded as the
 *    master sends them (Open records in datagram-sized batches, then a
 *    Change of each against its Open), then decoded and imported into a
 *    backup engine, first as new entries and then as updates of them (the
 *    steady state), three ways in one run (the receiver's window of Opens
 *    holds all N here, so that every Change finds its Open):
 *      malloc   sync_batch_decode(): protobuf-c's default allocator
 *      arena    sync_decoder_decode(): the node's decoder (no malloc)
 *      decode   the arena decoder alone, no import
 *    Thread CPU time, best of ROUNDS, ns per record, and the ratios.
 * 2. Bulk resync of M connections: a master engine holding M connections
 *    and a joining backup, real sync nodes (records, batching, the HMAC'd
 *    link, the pacing window of half the ring) on a lossless link whose
 *    datagrams arrive in the next millisecond of a simulated clock; the
 *    wall-clock time from the request until the backup is ready and holds
 *    all M, and the simulated time the pacing took.
 * 3. Keeping up: RATE new connections per second for SECS seconds of wall
 *    clock, each a creation record and its close (the records of a short
 *    connection whose close went in a later flush), fed to the backup's
 *    decoder and engine on this thread at the time the master would send
 *    them (a datagram-sized batch of creations, then the batch of their
 *    updates). The lag is how late each batch's import finished after its
 *    send time; the standby keeps up when the lag does not grow: the worst
 *    lag of the last second is printed next to the first second's, with the
 *    thread's CPU share.
 *
 * Usage: bench_import [N [M [ROUNDS [RATE [SECS]]]]] (defaults 200000,
 * 1000000, 3, 100000, 5).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_conns.h"
#include "lb_engine.h"
#include "sync_base.h"
#include "sync_codec.h"
#include "sync_node.h"

#define RING 16384
#define MAX_INBOX 65536

static double now_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct lb_engine *make_engine(size_t max_conns, struct lb_worker **w)
{
	struct lb_engine *e = bench_engine_new("bench_import", max_conns, 1000);

	*w = lb_engine_worker_new(e);
	return e;
}

/* Connection i at its version-th update. */
static void conn_state(struct lb_conn_state *st, size_t i, uint32_t version)
{
	bench_conn_state(st, i, 1700000000000000ull + i * 10, version);
}

/* ---- 1. CPU per imported record ---- */

struct payloads {
	uint8_t *buf;		/* batches back to back */
	size_t *len;
	size_t n, records;
	size_t per_batch;	/* records in the fullest batch */
	size_t least;		/* records in the emptiest batch but the last */
};

/* Version CLOSED: the connection closed (time_wait), as a close record. */
#define CLOSED 0

/* Connection i (id i + 1) as an Open (version 1), as a Change of its Open,
 * or as its close (CLOSED: version 2 in time_wait, both FINs acked). */
static int add_one(struct sync_batch *b, size_t i, uint32_t version)
{
	struct lb_conn_state st, open;

	conn_state(&st, i, version == CLOSED ? 2 : version);
	if (version == 1)
		return sync_batch_add_open(b, i + 1, &st);
	conn_state(&open, i, 1);
	if (version != CLOSED)
		return sync_batch_add_change(b, i + 1, &open, &st);
	st.tcp.state = LB_TCP_TIME_WAIT;
	st.expires_ms = 120000;
	for (int d = 0; d < 2; d++)
		st.tcp.peer[d].flags |= LB_TCP_PF_FIN | LB_TCP_PF_FIN_ACKED;
	return sync_batch_add_close(b, i + 1, &open, &st);
}

/* Every connection's record, in datagram-sized batches of at most
 * per_batch records (0: as many as fit). */
static void encode_all(struct payloads *pl, size_t n, uint32_t version, size_t per_batch)
{
	struct sync_batch *b = sync_batch_new(1400 - 64);
	size_t used = 0, cap = n * 128 + 4096;

	pl->buf = malloc(cap);
	pl->len = malloc(sizeof(size_t) * (n + 1));
	pl->n = 0;
	pl->records = n;
	pl->per_batch = 0;
	pl->least = SIZE_MAX;
	for (size_t i = 0; i <= n; i++) {
		const uint8_t *p;
		size_t len;

		if (i < n && (!per_batch || sync_batch_records(b) < per_batch) &&
		    add_one(b, i, version) == 0)
			continue;
		if (sync_batch_records(b) > pl->per_batch)
			pl->per_batch = sync_batch_records(b);
		if (i < n && sync_batch_records(b) < pl->least)
			pl->least = sync_batch_records(b);
		p = sync_batch_data(b, &len);
		memcpy(pl->buf + used, p, len);
		pl->len[pl->n++] = len;
		used += len;
		sync_batch_reset(b);
		if (i < n)
			add_one(b, i, version);
	}
	sync_batch_free(b);
}

struct importer {
	struct lb_engine *e;
	struct lb_worker *w;
	struct sync_base_rx *opens;	/* what the node keeps of the Opens */
	uint64_t imported;
};

static void imp_open(void *arg, uint64_t id, const struct lb_conn_state *st)
{
	struct importer *im = arg;
	struct sync_change waiting;

	if (im->e) {
		lb_engine_import_conn(im->e, im->w, st, 1000);
		if (sync_base_rx_open(im->opens, id, st, &waiting))
			abort();	/* every Change comes after its Open here */
	}
	im->imported++;
}

static void imp_change(void *arg, uint64_t id, const struct sync_change *c)
{
	struct importer *im = arg;
	const struct lb_conn_state *open;
	struct lb_conn_state st;

	if (im->e) {
		struct lb_conn_state held;
		int have;

		if (sync_base_rx_change(im->opens, id, c, &open) != SYNC_BASE_FOUND)
			return;		/* not counted: the run fails */
		/* A close applies to the state held, as the sync node does. */
		have = c->close && lb_engine_repl_held(im->e, open, 1000, &held) == 0;
		if (sync_change_apply(c, open, have ? &held : NULL, &st) < 0)
			return;
		lb_engine_import_conn(im->e, im->w, &st, 1000);
	}
	im->imported++;
}

static void imp_conn(void *arg, const struct lb_conn_state *st)
{
	struct importer *im = arg;

	if (im->e)
		lb_engine_import_conn(im->e, im->w, st, 1000);
	im->imported++;
}

static void imp_delete(void *arg, const struct lb_conn_state *st)
{
	(void)arg;
	(void)st;
}

static void imp_persist(void *arg, const struct lb_persist_state *st)
{
	(void)arg;
	(void)st;
}

static void imp_done(void *arg, uint64_t id, uint32_t conns)
{
	(void)arg;
	(void)id;
	(void)conns;
}

static const struct sync_records_ops imp_ops = { imp_conn, imp_delete, imp_persist, imp_done,
						 imp_open, imp_change };

enum way { WAY_MALLOC, WAY_ARENA, WAY_DECODE, WAY_COUNT };
static const char *way_name[] = { "malloc", "arena", "decode" };

/* CPU seconds to decode (and import, unless WAY_DECODE) every payload. */
static double run_way(enum way way, const struct payloads *pl, struct lb_engine *e,
		      struct lb_worker *w, struct sync_base_rx *opens)
{
	struct sync_decoder *d = sync_decoder_new();
	struct importer im = { way == WAY_DECODE ? NULL : e, w, opens, 0 };
	struct sync_decode_stats ds = { 0 };
	const uint8_t *p = pl->buf;
	double t0 = now_s(CLOCK_THREAD_CPUTIME_ID), t;

	for (size_t i = 0; i < pl->n; i++) {
		if (way == WAY_MALLOC)
			sync_batch_decode(p, pl->len[i], &imp_ops, &im, &ds);
		else
			sync_decoder_decode(d, p, pl->len[i], &imp_ops, &im, &ds);
		p += pl->len[i];
	}
	t = now_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	if (im.imported != pl->records || ds.bad_batch || ds.bad_record) {
		fprintf(stderr, "bench_import: %s imported %llu of %zu\n", way_name[way],
			(unsigned long long)im.imported, pl->records);
		exit(1);
	}
	sync_decoder_free(d);
	return t;
}

static void bench_cpu(size_t n, int rounds)
{
	struct payloads fresh, update;
	double best[2][WAY_COUNT];
	size_t bytes = 0;

	size_t window = 2;

	while (window < n)
		window <<= 1;
	encode_all(&fresh, n, 1, 0);
	encode_all(&update, n, 2, 0);
	for (size_t i = 0; i < fresh.n; i++)
		bytes += fresh.len[i];
	for (int k = 0; k < 2; k++)
		for (int wy = 0; wy < WAY_COUNT; wy++)
			best[k][wy] = 1e9;
	for (int r = 0; r < rounds; r++) {
		for (int wy = 0; wy < WAY_COUNT; wy++) {
			struct lb_worker *w;
			struct lb_engine *e = make_engine(n * 2, &w);
			struct sync_base_rx *opens = sync_base_rx_new(window);
			double t;

			/* new entries, then updates of the same connections */
			t = run_way((enum way)wy, &fresh, e, w, opens);
			best[0][wy] = t < best[0][wy] ? t : best[0][wy];
			t = run_way((enum way)wy, &update, e, w, opens);
			best[1][wy] = t < best[1][wy] ? t : best[1][wy];
			lb_engine_free(e);
			sync_base_rx_free(opens);
		}
	}
	printf("standby CPU per record, %zu connections in %zu batches (%.1f records, %.0f bytes "
	       "each), best of %d, thread CPU time:\n", n, fresh.n, (double)n / (double)fresh.n,
	       (double)bytes / (double)fresh.n, rounds);
	printf("  %-8s %14s %14s\n", "", "new (ns/rec)", "update (ns/rec)");
	for (int wy = 0; wy < WAY_COUNT; wy++)
		printf("  %-8s %14.0f %14.0f\n", way_name[wy], best[0][wy] * 1e9 / (double)n,
		       best[1][wy] * 1e9 / (double)n);
	printf("  ratio malloc/arena: new %.2f, update %.2f\n",
	       best[0][WAY_MALLOC] / best[0][WAY_ARENA], best[1][WAY_MALLOC] / best[1][WAY_ARENA]);
	printf("  one core imports %.0f updates/s with the arena (%.0f new connections/s)\n",
	       (double)n / best[1][WAY_ARENA], (double)n / best[0][WAY_ARENA]);
	free(fresh.buf);
	free(fresh.len);
	free(update.buf);
	free(update.len);
}

/* ---- 2. bulk resync ---- */

struct dgram {
	uint16_t len;
	uint8_t buf[1500];
};

struct side {
	struct lb_engine *e;
	struct lb_worker *w, *ctl;
	struct sync_node *node;
	struct dgram *inbox;
	size_t n;
	struct side *peer;
};

static void op_send(void *arg, const uint8_t *buf, size_t len)
{
	struct side *s = arg;
	struct side *to = s->peer;

	if (to->n == MAX_INBOX || len > sizeof(to->inbox[0].buf))
		return;		/* lost: the link repairs it */
	memcpy(to->inbox[to->n].buf, buf, len);
	to->inbox[to->n++].len = (uint16_t)len;
}

static void op_wake(void *arg)
{
	(void)arg;
}

static void op_released(void *arg, uint64_t ticket)
{
	(void)arg;
	(void)ticket;
}

static const struct sync_node_ops node_ops = { op_send, op_wake, op_released };
static const uint8_t key[32] = "bench-import-key-0123456789abcde";

static void setup_side(struct side *s, uint32_t id, size_t max_conns, uint64_t now)
{
	struct sync_node_conf nc = {
		.link = { .node_id = id, .peer_id = 3 - id, .epoch = 100 + id, .key = key,
			  .key_len = 32, .ring = RING, .mtu = 1400, .heartbeat_ms = 100,
			  .nack_delay_ms = 2, .nack_retry_ms = 20, .peer_timeout_ms = 1000 },
		.resync_timeout_ms = 3000, .flush_ms = 2,
	};
	struct lb_repl_conf rc = { .interval_ms = 200 };

	s->e = make_engine(max_conns, &s->w);
	s->ctl = lb_engine_worker_new(s->e);
	s->inbox = calloc(MAX_INBOX, sizeof(*s->inbox));
	s->node = sync_node_new(&nc, s->e, s->ctl, &node_ops, s, now);
	if (!s->node || !s->inbox) {
		fprintf(stderr, "bench_import: cannot make a sync node\n");
		exit(1);
	}
	lb_engine_set_repl(s->e, sync_node_repl_ops(), s->node, &rc);
}

static void deliver(struct side *s, uint64_t now)
{
	size_t n = s->n;

	s->n = 0;	/* what the input makes the node send goes to the peer's inbox */
	for (size_t i = 0; i < n; i++)
		sync_node_input(s->node, s->inbox[i].buf, s->inbox[i].len, now);
}

static void count_conn(const struct lb_conn_info *info, void *arg)
{
	(void)info;
	(*(size_t *)arg)++;
}

static void bench_resync(size_t m)
{
	struct side a = { 0 }, b = { 0 };
	struct lb_conn_state st;
	uint64_t now = 1000, start;
	size_t held = 0;
	char why[128];
	double t0, t, c0, c, cpu_a = 0, cpu_b = 0;

	setup_side(&a, 1, m + m / 4, now);
	setup_side(&b, 2, m + m / 4, now);
	a.peer = &b;
	b.peer = &a;
	/* The master's table, filled as a standby fills it. */
	for (size_t i = 0; i < m; i++) {
		conn_state(&st, i, 1);
		lb_engine_import_conn(a.e, a.ctl, &st, now);
	}
	sync_node_set_role(a.node, LB_ROLE_MASTER);
	lb_engine_set_role(a.e, LB_ROLE_MASTER);
	/* Both nodes live and proven before the clock starts. */
	for (int i = 0; i < 300; i++, now++) {
		deliver(&a, now);
		deliver(&b, now);
		sync_node_tick(a.node, now);
		sync_node_tick(b.node, now);
	}
	start = now;
	t0 = now_s(CLOCK_MONOTONIC);
	c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	sync_node_start(b.node, now);
	while (!sync_node_ready(b.node, now, why, sizeof(why)) && now < start + 600000) {
		double x = now_s(CLOCK_THREAD_CPUTIME_ID), y;

		now++;
		deliver(&a, now);
		sync_node_tick(a.node, now);
		y = now_s(CLOCK_THREAD_CPUTIME_ID);
		cpu_a += y - x;
		deliver(&b, now);
		sync_node_tick(b.node, now);
		cpu_b += now_s(CLOCK_THREAD_CPUTIME_ID) - y;
		if (now % 100 == 0) {
			lb_engine_tick(a.e, a.ctl, now);
			lb_engine_tick(b.e, b.ctl, now);
		}
	}
	t = now_s(CLOCK_MONOTONIC) - t0;
	c = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	lb_engine_foreach_conn(b.e, now, count_conn, &held);
	printf("bulk resync of %zu connections, both nodes on one thread: ready after %.2f s "
	       "wall clock, %.2f s CPU: master %.2f s, standby %.2f s (%llu ms of simulated "
	       "pacing); the standby holds %zu%s\n", m, t, c, cpu_a, cpu_b,
	       (unsigned long long)(now - start), held, held == m ? "" : "  INCOMPLETE");
	if (held != m)
		exit(1);
}

/* ---- 3. keeping up with a rate ---- */

#define LAG_SECONDS_MAX 60

static void sleep_until(double t)
{
	struct timespec ts = { (time_t)t, (long)((t - (double)(time_t)t) * 1e9) };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void bench_rate(size_t rate, unsigned secs)
{
	struct payloads fresh, update;
	struct lb_worker *w;
	struct lb_engine *e;
	struct sync_decoder *d = sync_decoder_new();
	struct importer im;
	struct sync_decode_stats ds = { 0 };
	double worst[LAG_SECONDS_MAX] = { 0 }, start, cpu0, lag = 0, sent = 0;
	const uint8_t *pf, *pu;
	size_t n = rate * secs, cap;

	if (secs > LAG_SECONDS_MAX)
		secs = LAG_SECONDS_MAX;
	/* A batch of updates per batch of creations, of the same connections:
	 * both at the number of records every batch of creations holds. */
	encode_all(&fresh, n, 1, 0);
	cap = fresh.least;
	free(fresh.buf);
	free(fresh.len);
	encode_all(&fresh, n, 1, cap);
	encode_all(&update, n, CLOSED, cap);
	e = make_engine(n + n / 2, &w);
	im = (struct importer){ e, w, sync_base_rx_new(SYNC_BASE_WINDOW), 0 };
	pf = fresh.buf;
	pu = update.buf;
	start = now_s(CLOCK_MONOTONIC) + 0.01;
	cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (size_t i = 0; i < fresh.n && i < update.n; i++) {
		double due = start + sent / (double)rate;
		unsigned sec;

		sleep_until(due);
		sync_decoder_decode(d, pf, fresh.len[i], &imp_ops, &im, &ds);
		sync_decoder_decode(d, pu, update.len[i], &imp_ops, &im, &ds);
		pf += fresh.len[i];
		pu += update.len[i];
		sent = (double)im.imported / 2;
		lag = now_s(CLOCK_MONOTONIC) - due;
		sec = (unsigned)(due - start);
		if (sec < secs && lag > worst[sec])
			worst[sec] = lag;
	}
	printf("keeping up with %zu new connections/s for %u s (a creation and a close each, "
	       "%zu records): thread CPU %.0f%% of the wall clock\n", rate, secs,
	       (size_t)im.imported, 100.0 * (now_s(CLOCK_THREAD_CPUTIME_ID) - cpu0) /
				    (now_s(CLOCK_MONOTONIC) - start));
	printf("  worst lag per second (ms):");
	for (unsigned k = 0; k < secs; k++)
		printf(" %.2f", worst[k] * 1e3);
	/* A standby short of CPU falls further behind every second (at 110%
	 * of what it can take, 100 ms more each second); one that keeps up
	 * ends as close as the machine's scheduling allows. The first second
	 * pays for touching the table's memory. */
	printf("; at the end %.2f\n  %s\n", lag * 1e3,
	       lag < 0.050 && worst[secs - 1] < 0.050 ? "keeps up: the lag does not grow"
						      : "FALLS BEHIND: the lag grows");
	if (im.imported != 2 * n || ds.bad_batch || ds.bad_record) {
		fprintf(stderr, "bench_import: imported %llu of %zu\n",
			(unsigned long long)im.imported, 2 * n);
		exit(1);
	}
	sync_decoder_free(d);
	sync_base_rx_free(im.opens);
	lb_engine_free(e);
	free(fresh.buf);
	free(fresh.len);
	free(update.buf);
	free(update.len);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
	size_t m = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	size_t rate = argc > 4 ? strtoull(argv[4], NULL, 10) : 100000;
	unsigned secs = argc > 5 ? (unsigned)atoi(argv[5]) : 5;

	if (n)
		bench_cpu(n, rounds > 0 ? rounds : 1);
	if (m)
		bench_resync(m);
	if (rate && secs)
		bench_rate(rate, secs);
	return 0;
}
