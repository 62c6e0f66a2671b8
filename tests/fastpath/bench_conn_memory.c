/*
 * Memory per connection, measured (bench/conn_memory.sh runs it): N
 * connections go through a real handshake (SYN, SYN/ACK, ACK) in one engine
 * of capacity N, and, with the fast path, are installed in the kernel's maps
 * as they become established (the loader alone: no interface is attached,
 * the maps are what a running lbd holds per connection). Reported:
 *   user   the process's resident memory grown since before the engine was
 *          made (VmRSS): the engine's table, its half-open ring and hash
 *          buckets, and with the fast path the loader's slots, / N
 *   kernel every BPF map the process holds, as the kernel accounts it
 *          (memlock in /proc/self/fdinfo of each map), / N
 *   sum    and by how much it misses the target of 192 bytes.
 *
 * Usage: bench_conn_memory engine|fast [N] (N: 1000000).
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lb/pktbuild.h"
#include "fastpath.h"
#include "lb_engine.h"
#include "lb_fastpath.h"

#define TARGET 192.0
#define VIP "198.18.0.100"
#define NBACKENDS 4
#define T0 1000000u
#define CI 1000u
#define SI 500000u

/* VmRSS of this process, bytes. */
static long long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* Sums memlock over every BPF map among our descriptors, printing each. */
static long long maps_bytes(int print, size_t n)
{
	DIR *d = opendir("/proc/self/fdinfo");
	struct dirent *de;
	long long total = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], line[256], type[32] = "";
		long long memlock = -1, entries = 0;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "map_type: %31s", type);
			sscanf(line, "max_entries: %lld", &entries);
			sscanf(line, "memlock: %lld", &memlock);
		}
		fclose(f);
		if (!type[0] || memlock < 0)
			continue;
		if (print) {
			struct bpf_map_info info = { 0 };
			uint32_t len = sizeof(info);

			if (bpf_obj_get_info_by_fd(atoi(de->d_name), &info, &len))
				info.name[0] = 0;
			printf("#   map %-16s type %-3s max_entries %10lld memlock %12lld (%.1f B "
			       "per connection)\n", info.name, type, entries, memlock,
			       (double)memlock / (double)n);
		}
		total += memlock;
	}
	closedir(d);
	return total;
}

static struct lb_engine *make_engine(size_t n, struct lb_worker **w)
{
	static struct lb_backend_conf be[NBACKENDS];
	struct lb_service_conf svc = { .port = 80, .scheduler = "rr", .backends = be,
				       .nbackends = NBACKENDS };
	struct lb_engine_conf ec;
	struct lb_engine *e;

	for (int i = 0; i < NBACKENDS; i++) {
		char a[32];

		snprintf(a, sizeof(a), "198.18.1.%d", 11 + i);
		lb_addr_parse(&be[i].addr, a);
		be[i].port = 8080;
		be[i].weight = 1;
	}
	lb_engine_conf_defaults(&ec);
	ec.max_conns = n;
	ec.seed = 7;
	lb_addr_parse(&svc.vip, VIP);
	e = lb_engine_new(&ec, T0);
	if (!e || lb_engine_set_services(e, &svc, 1) < 0) {
		fprintf(stderr, "bench_conn_memory: cannot make an engine of %zu connections\n", n);
		exit(1);
	}
	*w = lb_engine_worker_new(e);
	return e;
}

/* One segment through the engine; the rewritten packet stays in buf. */
static enum lb_verdict seg(struct lb_engine *e, struct lb_worker *w, uint8_t *buf,
			   const struct pb_spec *s, enum lb_hook hook)
{
	struct lb_packet pkt = { .data = buf, .hook = hook,
				 .flags = LB_PKT_F_CSUM_PARTIAL };

	pkt.len = (uint32_t)pb_build(buf, 256, s);
	return lb_engine_packet(e, w, &pkt, T0 + 10);
}

/* Connection i's handshake; 0 when it ended established. */
static int handshake(struct lb_engine *e, struct lb_worker *w, size_t i)
{
	char client[32], backend[32];
	uint8_t buf[256];
	struct pb_spec s;

	snprintf(client, sizeof(client), "198.18.%zu.%zu", 64 + i / 60000 / 250,
		 1 + i / 60000 % 250);
	s = pb_spec_v4(client, (uint16_t)(1024 + i % 60000), VIP, 80);
	s.csum = PB_CSUM_PARTIAL;
	s.seq = CI;
	s.flags = LB_TCP_SYN;
	s.win = 64240;
	s.wscale = 7;
	if (seg(e, w, buf, &s, LB_HOOK_PRE) != LB_VERDICT_ACCEPT)
		return -1;
	pb_dst_text(buf, backend, sizeof(backend));	/* the backend it chose */
	s = pb_spec_v4(backend, 8080, client, (uint16_t)(1024 + i % 60000));
	s.csum = PB_CSUM_PARTIAL;
	s.seq = SI;
	s.ack = CI + 1;
	s.flags = LB_TCP_SYN | LB_TCP_ACK;
	s.win = 65160;
	s.wscale = 7;
	if (seg(e, w, buf, &s, LB_HOOK_POST) != LB_VERDICT_ACCEPT)
		return -1;
	s = pb_spec_v4(client, (uint16_t)(1024 + i % 60000), VIP, 80);
	s.csum = PB_CSUM_PARTIAL;
	s.seq = CI + 1;
	s.ack = SI + 1;
	s.flags = LB_TCP_ACK;
	s.win = 502;
	s.wscale = PB_NO_OPT;
	return seg(e, w, buf, &s, LB_HOOK_PRE) == LB_VERDICT_ACCEPT ? 0 : -1;
}

int main(int argc, char **argv)
{
	int fast = argc > 1 && strcmp(argv[1], "fast") == 0;
	size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	long long rss0, rss1, maps0, maps1;
	uint64_t cnt[LB_CNT_COUNT];
	struct lb_worker *w;
	struct lb_engine *e;
	struct fp *fp = NULL;
	double user, kernel;
	char err[256];

	if (argc < 2 || (!fast && strcmp(argv[1], "engine")) || n == 0) {
		fprintf(stderr, "usage: bench_conn_memory engine|fast [N]\n");
		return 2;
	}
	rss0 = rss_bytes();
	maps0 = maps_bytes(0, n);
	e = make_engine(n, &w);
	if (fast) {
		struct fp_conf fc = { .max_conns = (uint32_t)n, .stack = 1 };

		fp = fp_open(&fc, err, sizeof(err));
		if (!fp) {
			printf("not ok - fast path: %s\n", err);
			return 1;
		}
		lb_engine_set_fastpath(e, &fp_engine_ops, fp);
	}
	for (size_t i = 0; i < n; i++)
		if (handshake(e, w, i) < 0) {
			printf("not ok - connection %zu did not become established\n", i);
			return 1;
		}
	lb_engine_counters(e, cnt);
	if (lb_engine_conn_count(e) != n || (fast && fp_conn_count(fp) != n)) {
		printf("not ok - %zu connections in the engine, %zu in the map, of %zu\n",
		       lb_engine_conn_count(e), fp ? fp_conn_count(fp) : 0, n);
		return 1;
	}
	rss1 = rss_bytes();
	maps1 = maps_bytes(fast, n);
	user = (double)(rss1 - rss0) / (double)n;
	kernel = (double)(maps1 - maps0) / (double)n;
	printf("# %s: %zu established connections (fast_installs %llu)\n",
	       fast ? "engine + fast path" : "engine alone", n,
	       (unsigned long long)cnt[LB_CNT_FAST_INSTALLS]);
	printf("# user space (RSS delta / N): %.1f B per connection\n", user);
	if (fast)
		printf("# kernel maps (memlock / N):  %.1f B per connection\n", kernel);
	printf("# total: %.1f B per connection; target %.0f: %s by %.1f B (%.2fx)\n",
	       user + kernel, TARGET, user + kernel <= TARGET ? "met" : "missed",
	       user + kernel > TARGET ? user + kernel - TARGET : TARGET - (user + kernel),
	       (user + kernel) / TARGET);
	printf("ok - %s: %.0f B per connection (user %.0f + kernel %.0f)\n",
	       fast ? "fast" : "engine", user + kernel, user, kernel);
	fp_close(fp);
	lb_engine_free(e);
	return 0;
}
