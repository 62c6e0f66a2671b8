/*
 * Bulk resync of M connections between two processes over real UDP, with
 * live replication flowing meanwhile (bench/sync_resync.sh runs it inside a
 * network namespace it creates, the two addresses on its loopback).
 *
 * Each side is what lbd runs on its engine control thread: an engine, the
 * real sync node (records, batching, the HMAC'd link, Nack repair, the
 * resync walk and its pacing), a UDP socket with lbd's 4 MiB buffers,
 * recvmmsg() in batches of 64, and a poll() loop that sleeps until the
 * node's next deadline, ticking the engine every 100 ms. What is not lbd's:
 * the master's table is seeded through the engine's import API (the path a
 * standby fills its table by), M established connections, before it is made
 * master; and a worker thread of the master sends RATE SYNs per second
 * through lb_engine_packet(), as an NFQUEUE worker would, so that new
 * connections are created and replicated live during the resync.
 *
 * The master forks the standby twice: the first joins and resyncs; it is
 * killed once ready and a second one starts with a newer epoch (a standby
 * restart: the master sees the peer go silent and come back). For each the
 * time from sync_node_start() to ready (ResyncDone and every datagram
 * before it arrived), the table it then holds, and the lag of the live
 * connections created while it resynced: from the worker's SYN to the
 * standby's import of its creation record (the import watch), both on
 * CLOCK_MONOTONIC, which both processes share.
 *
 * Usage: bench_resync M RATE ADDR_MASTER ADDR_STANDBY [HEARTBEAT_MS]
 * Prints TAP lines; exits 1 when a check fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lb/pktbuild.h"
#include "bench_conns.h"
#include "lb_conf.h"
#include "lb_engine.h"
#include "lb_pkt.h"
#include "sync_node.h"

#define VIP BENCH_VIP
#define PORT 7788
#define RX_BATCH 64
#define RX_SLOT 2048
#define LIVE_MAX (1u << 19)		/* live connections a run can create */
#define TICK_MS 100
#define READY_LIMIT_S 60		/* a resync slower than this fails */
#define LAG_LIMIT_US 500000	/* live records later than this: starved */

static const uint8_t key[32] = "bench-resync-key-0123456789abcde";

/* Shared between the processes (MAP_SHARED before fork). */
struct shared {
	atomic_uint_fast64_t live_us[LIVE_MAX];	/* SYN k sent at (mono us), 0: not yet */
	atomic_uint live_n;			/* SYNs sent */
	atomic_int stop;			/* the master's worker and loop end */
	atomic_uint_fast64_t master_cpu_ns;	/* the master loop thread's CPU so far */
};

static struct shared *sh;

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t cpu_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct lb_engine *make_engine(size_t max_conns)
{
	return bench_engine_new("bench_resync", max_conns, mono_us() / 1000);
}

/* Seeded connection i: a distinct client, established, mid-stream. */
static void seed_state(struct lb_conn_state *st, size_t i, uint64_t created_us)
{
	bench_conn_state(st, i, created_us - i % 1000000, 3);
}

/* Live connection k's client: 198.19.a.b:port, k recoverable from it. */
static void live_client(uint32_t k, char *a, size_t len, uint16_t *port)
{
	uint32_t idx = k / 60000;

	snprintf(a, len, "198.19.%u.%u", idx / 250, 1 + idx % 250);
	*port = (uint16_t)(1024 + k % 60000);
}

static int live_index(const struct lb_tuple *t, uint32_t *k)
{
	const uint8_t *b = t->src.bytes;

	if (t->src.family != AF_INET || b[0] != 198 || b[1] != 19 || b[3] == 0 ||
	    t->sport < 1024)
		return -1;
	*k = ((uint32_t)b[2] * 250 + b[3] - 1) * 60000 + (t->sport - 1024u);
	return *k < LIVE_MAX ? 0 : -1;
}

/* ---- one side: engine, node, socket, loop ---- */

struct side {
	const char *name;
	struct lb_engine *e;
	struct lb_worker *ctl;
	struct sync_node *node;
	int fd, wake_fd;
	struct sockaddr_in peer;
	uint64_t send_errors;
	uint8_t rx[RX_BATCH][RX_SLOT];
	struct iovec iov[RX_BATCH];
	struct mmsghdr msgs[RX_BATCH];
};

static void op_send(void *arg, const uint8_t *buf, size_t len)
{
	struct side *s = arg;

	if (sendto(s->fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&s->peer,
		   sizeof(s->peer)) < 0)
		s->send_errors++;
}

static void op_wake(void *arg)
{
	struct side *s = arg;
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		s->send_errors += 0;	/* a full eventfd is already a wake */
}

static void op_released(void *arg, uint64_t ticket)
{
	(void)arg;
	(void)ticket;
}

static const struct sync_node_ops node_ops = { op_send, op_wake, op_released };

static void open_socket(struct side *s, const char *local, const char *peer)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int buf = 4 << 20;

	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->fd < 0 || s->wake_fd < 0 || inet_pton(AF_INET, local, &a.sin_addr) != 1) {
		perror("bench_resync: socket");
		exit(1);
	}
	setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf));
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bench_resync: bind");
		exit(1);
	}
	s->peer = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(PORT) };
	inet_pton(AF_INET, peer, &s->peer.sin_addr);
}

static void make_node(struct side *s, uint32_t id, uint64_t epoch, unsigned heartbeat_ms)
{
	struct lb_conf defaults;
	struct sync_node_conf nc;
	struct lb_repl_conf rc;

	lb_conf_defaults(&defaults);
	nc = (struct sync_node_conf){
		.link = { .node_id = id, .peer_id = 3 - id, .epoch = epoch, .key = key,
			  .key_len = sizeof(key), .ring = defaults.sync.ring, .mtu = 1400,
			  .heartbeat_ms = heartbeat_ms, .nack_delay_ms = 2, .nack_retry_ms = 20,
			  .peer_timeout_ms = 3 * heartbeat_ms },
		.resync_timeout_ms = defaults.sync.resync_timeout_ms,
		.stale_ms = defaults.sync.stale_after_ms, .flush_ms = 2,
	};
	rc = (struct lb_repl_conf){ .interval_ms = defaults.sync.interval_ms,
				    .max_lag = defaults.sync.max_lag };
	s->ctl = lb_engine_worker_new(s->e);
	s->node = sync_node_new(&nc, s->e, s->ctl, &node_ops, s, mono_us() / 1000);
	if (!s->ctl || !s->node) {
		fprintf(stderr, "bench_resync: cannot make a sync node\n");
		exit(1);
	}
	lb_engine_set_repl(s->e, sync_node_repl_ops(), s->node, &rc);
}

static void receive(struct side *s, uint64_t now)
{
	for (int round = 0; round < 8; round++) {
		int n;

		for (int i = 0; i < RX_BATCH; i++) {
			s->iov[i] = (struct iovec){ s->rx[i], RX_SLOT };
			s->msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &s->iov[i],
							      .msg_iovlen = 1 };
		}
		n = recvmmsg(s->fd, s->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			sync_node_input(s->node, s->rx[i], s->msgs[i].msg_len, now);
		if (n < RX_BATCH)
			return;
	}
}

/* One turn of lbd's loop: sleep until something is due, then run it. */
static void turn(struct side *s, uint64_t *next_tick)
{
	uint64_t now = mono_us() / 1000, next = sync_node_next_ms(s->node, now);
	struct pollfd p[2] = { { s->fd, POLLIN, 0 }, { s->wake_fd, POLLIN, 0 } };
	int timeout;

	if (next > *next_tick)
		next = *next_tick;
	timeout = next > now ? (int)(next - now) : 0;
	poll(p, 2, timeout);
	if (p[1].revents & POLLIN) {
		uint64_t v;

		if (read(s->wake_fd, &v, sizeof(v)) < 0)
			v = 0;
	}
	now = mono_us() / 1000;
	if (p[0].revents & POLLIN)
		receive(s, now);
	sync_node_tick(s->node, now);
	if (now >= *next_tick) {
		lb_engine_set_clock(s->e, now, real_us());
		lb_engine_tick(s->e, s->ctl, now);
		*next_tick = now + TICK_MS;
	}
}

/* ---- the master ---- */

struct worker_arg {
	struct lb_engine *e;
	unsigned rate;
};

/* An NFQUEUE worker's part: RATE SYNs a second through the engine. */
static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct lb_worker *w = lb_engine_worker_new(wa->e);
	uint64_t t0 = mono_us();
	uint32_t k = 0;

	while (w && !atomic_load(&sh->stop) && k < LIVE_MAX) {
		uint64_t due = (mono_us() - t0) * wa->rate / 1000000u;
		struct timespec ts = { 0, 1000000 };

		for (; k < due && k < LIVE_MAX; k++) {
			char client[32];
			uint8_t buf[128];
			struct pb_spec sp;
			struct lb_packet p = { .data = buf, .hook = LB_HOOK_PRE };
			uint16_t port;

			live_client(k, client, sizeof(client), &port);
			sp = pb_spec_v4(client, port, VIP, 80);
			sp.seq = k * 2654435761u;
			sp.flags = LB_TCP_SYN;
			sp.mss = 1460;
			sp.wscale = 7;
			p.len = (uint32_t)pb_build(buf, sizeof(buf), &sp);
			atomic_store(&sh->live_us[k], mono_us());
			lb_engine_packet(wa->e, w, &p, mono_us() / 1000);
			atomic_store(&sh->live_n, k + 1);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void master_run(size_t m, unsigned rate, const char *me, const char *peer,
		       unsigned heartbeat_ms)
{
	static struct side s;
	struct lb_conn_state st;
	struct worker_arg wa;
	pthread_t worker;
	uint64_t next_tick = 0, t0 = mono_us(), created = real_us();
	double secs;

	s.name = "master";
	s.e = make_engine(m + m / 4 + LIVE_MAX);
	open_socket(&s, me, peer);
	make_node(&s, 1, 10, heartbeat_ms);
	for (size_t i = 0; i < m; i++) {
		seed_state(&st, i, created);
		lb_engine_import_conn(s.e, s.ctl, &st, mono_us() / 1000);
	}
	secs = (double)(mono_us() - t0) / 1e6;
	printf("# master seeded with %zu connections through the import API in %.2f s\n",
	       lb_engine_conn_count(s.e), secs);
	if (lb_engine_conn_count(s.e) != m) {
		printf("not ok - the master holds %zu of %zu seeded connections\n",
		       lb_engine_conn_count(s.e), m);
		exit(1);
	}
	lb_engine_set_role(s.e, LB_ROLE_MASTER);
	sync_node_set_role(s.node, LB_ROLE_MASTER);
	sync_node_start(s.node, mono_us() / 1000);
	wa = (struct worker_arg){ s.e, rate };
	if (pthread_create(&worker, NULL, worker_main, &wa) != 0)
		exit(1);
	fflush(stdout);
	kill(getppid(), SIGUSR1);	/* seeded: the standbys may start */
	while (!atomic_load(&sh->stop)) {
		turn(&s, &next_tick);
		atomic_store(&sh->master_cpu_ns, cpu_ns(CLOCK_THREAD_CPUTIME_ID));
	}
	pthread_join(worker, NULL);
	exit(0);
}

/* ---- the standby ---- */

struct lagstat {
	uint64_t start_us, ready_us, first_us;	/* first_us: the first import */
	uint32_t seen_during, max_during_us;
	uint64_t sum_during_us;
	uint8_t *seen;
};

static struct lagstat lag;

/* Every import the standby's engine is handed, before it is applied. */
static void on_import(void *arg, const struct lb_tuple *orig)
{
	uint64_t now = mono_us(), sent;
	uint32_t k;

	(void)arg;
	if (!lag.first_us)
		lag.first_us = now;
	if (live_index(orig, &k) < 0 || lag.seen[k])
		return;
	sent = atomic_load(&sh->live_us[k]);
	lag.seen[k] = 1;
	/* Created before the standby's stream from the master began (its
	 * records went to the standby's former incarnation or to nobody: the
	 * walk brings them), or after the resync: not live replication
	 * during it. */
	if (!sent || sent < lag.first_us || lag.ready_us)
		return;
	lag.seen_during++;
	lag.sum_during_us += now - sent;
	if (now - sent > lag.max_during_us)
		lag.max_during_us = (uint32_t)(now - sent);
}

static void print_stat(void *arg, const char *name, uint64_t v)
{
	static const char *const shown[] = { "data_received", "duplicates", "nacks_sent",
					     "holes_lost", "resyncs_requested", "records_in" };

	(void)arg;
	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
		if (strcmp(name, shown[i]) == 0)
			printf(" %s %llu", name, (unsigned long long)v);
}

struct census {
	size_t seeded, live;
};

static void count_conn(const struct lb_conn_info *c, void *arg)
{
	struct census *n = arg;
	uint32_t k;

	if (live_index(&c->state.orig, &k) == 0)
		n->live++;
	else
		n->seeded++;
}

/* Joins, resyncs, reports; exits 0 when every check held. */
static void standby_run(const char *label, size_t m, uint64_t epoch, const char *me,
			const char *peer, unsigned heartbeat_ms)
{
	static struct side s;
	uint64_t next_tick = 0, first_live, last_live, deadline;
	struct census n = { 0 };
	char why[160];
	uint32_t missing = 0;
	uint64_t cpu0, mcpu0;
	double cpu, mcpu;
	int ok = 1;

	s.name = "standby";
	s.e = make_engine(m + m / 4 + LIVE_MAX);
	lag.seen = calloc(LIVE_MAX, 1);
	open_socket(&s, me, peer);
	make_node(&s, 2, epoch, heartbeat_ms);
	lb_engine_set_import_watch(s.e, on_import, NULL);
	lag.start_us = mono_us();
	cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
	mcpu0 = atomic_load(&sh->master_cpu_ns);
	first_live = atomic_load(&sh->live_n);
	sync_node_start(s.node, lag.start_us / 1000);
	deadline = lag.start_us + READY_LIMIT_S * 1000000ull;
	while (!sync_node_ready(s.node, mono_us() / 1000, why, sizeof(why)) &&
	       mono_us() < deadline)
		turn(&s, &next_tick);
	lag.ready_us = mono_us();
	cpu = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;
	mcpu = (double)(atomic_load(&sh->master_cpu_ns) - mcpu0) / 1e9;
	last_live = atomic_load(&sh->live_n);
	/* Live connections created during the resync: each must arrive, within
	 * a second after the ready. */
	while (mono_us() < lag.ready_us + 1000000)
		turn(&s, &next_tick);
	for (uint64_t k = first_live + 1; k < last_live; k++)
		missing += !lag.seen[k];
	lb_engine_foreach_conn(s.e, mono_us() / 1000, count_conn, &n);
	printf("# %s: ready after %.3f s (%s); holds %zu of %zu seeded connections; "
	       "%llu live connections created during the resync, %u of them missing, "
	       "lag from SYN to the standby's import avg %.1f ms max %.1f ms\n",
	       label, (double)(lag.ready_us - lag.start_us) / 1e6,
	       lag.ready_us >= deadline ? "NOT READY" : "ResyncDone", n.seeded, m,
	       (unsigned long long)(last_live > first_live ? last_live - first_live - 1 : 0),
	       missing, lag.seen_during ? (double)lag.sum_during_us / lag.seen_during / 1e3 : 0.0,
	       (double)lag.max_during_us / 1e3);
	printf("# %s: first record %.3f s after the start (the epoch handshake and the "
	       "request); CPU until ready: standby %.2f s, master's sync loop %.2f s\n", label,
	       lag.first_us ? (double)(lag.first_us - lag.start_us) / 1e6 : -1.0, cpu, mcpu);
	printf("# %s: standby's sync counters:", label);
	sync_node_stats(s.node, mono_us() / 1000, print_stat, NULL);
	printf("\n");
	if (lag.ready_us >= deadline || n.seeded != m) {
		printf("not ok - %s: the standby holds all %zu connections when ready\n", label, m);
		ok = 0;
	} else {
		printf("ok - %s: the standby holds all %zu connections when ready\n", label, m);
	}
	if (missing || lag.seen_during == 0 || lag.max_during_us > LAG_LIMIT_US) {
		printf("not ok - %s: live replication flowed during the resync "
		       "(%u missing, %u seen, max lag %.1f ms, limit %d ms)\n", label, missing,
		       lag.seen_during, (double)lag.max_during_us / 1e3, LAG_LIMIT_US / 1000);
		ok = 0;
	} else {
		printf("ok - %s: live replication flowed during the resync (every one of %u "
		       "new connections arrived, max lag %.1f ms <= %d ms)\n", label,
		       lag.seen_during, (double)lag.max_during_us / 1e3, LAG_LIMIT_US / 1000);
	}
	printf("%s: resync_seconds=%.3f max_lag_ms=%.1f target_3s=%s\n", label,
	       (double)(lag.ready_us - lag.start_us) / 1e6, (double)lag.max_during_us / 1e3,
	       lag.ready_us - lag.start_us <= 3000000 ? "met" : "missed");
	fflush(stdout);
	exit(ok ? 0 : 1);
}

static pid_t spawn_standby(const char *label, size_t m, uint64_t epoch, const char *me,
			   const char *peer, unsigned hb)
{
	pid_t pid = fork();

	if (pid == 0)
		standby_run(label, m, epoch, me, peer, hb);
	return pid;
}

static int reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return 1;
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
	size_t m;
	unsigned rate, hb;
	sigset_t set;
	pid_t master, standby;
	int sig, fails = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: bench_resync M RATE ADDR_MASTER ADDR_STANDBY "
			"[HEARTBEAT_MS]\n");
		return 2;
	}
	m = strtoul(argv[1], NULL, 10);
	rate = (unsigned)strtoul(argv[2], NULL, 10);
	hb = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 10;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || m == 0 || hb == 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	master = fork();
	if (master == 0)
		master_run(m, rate, argv[3], argv[4], hb);
	sigwait(&set, &sig);	/* the master is seeded and serving */
	standby = spawn_standby("join", m, 20, argv[4], argv[3], hb);
	fails += reap(standby);
	/* The same standby restarted: a newer epoch, an empty table. */
	standby = spawn_standby("restart", m, 21, argv[4], argv[3], hb);
	fails += reap(standby);
	atomic_store(&sh->stop, 1);
	fails += reap(master);
	printf("# %d failure(s)\n", fails);
	return fails ? 1 : 0;
}
