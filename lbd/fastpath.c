/*
 * lbd's kernel fast path (lbd_fastpath.h).
 *
 * In a pair: the standby's engine installs the connections it imports, so
 * its map is ready at takeover; the program forwards only on the master.
 * What the kernel forwards reaches the peer through the loop's sweep, which
 * hands it to the engine, which replicates as for any packet.
 */
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_fastpath.h"
#include "log.h"

struct lbd_fastpath {
	struct fp *fp;
	pthread_mutex_t lock;		/* the two switches, from two threads */
	int capture_off, master;
	atomic_int forwarding;		/* what the program was last told */
	unsigned nifs;
};

/* Ethernet interfaces only: the program reads an Ethernet header. */
static int is_ether(const char *ifname)
{
	char path[64], buf[16] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/type", ifname);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return atoi(buf) == 1;	/* ARPHRD_ETHER */
}

/* Attaches to every Ethernet interface there is now. Returns how many, or -errno. */
static int attach_all(struct lbd_fastpath *f)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int rc = 0;

	if (!ifs)
		return -errno;
	for (i = ifs; i->if_index && rc >= 0; i++) {
		if (!is_ether(i->if_name))
			continue;
		rc = fp_attach(f->fp, i->if_name);
		if (rc < 0)
			log_err("fast path: cannot attach to %s: %s", i->if_name, strerror(-rc));
		else
			f->nifs++;
	}
	if_freenameindex(ifs);
	return rc < 0 ? rc : (int)f->nifs;
}

/* A filter left by a run that did not stop cleanly would forward with stale
 * entries: remove it whatever this run's setting. */
static void detach_stale(void)
{
	struct if_nameindex *ifs = if_nameindex(), *i;

	if (!ifs)
		return;
	for (i = ifs; i->if_index; i++)
		fp_detach_stale(i->if_name);
	if_freenameindex(ifs);
}

struct lbd_fastpath *lbd_fastpath_open(const struct lb_conf *conf, struct lb_engine *e,
				       int *fatal)
{
	struct fp_conf fc = { .max_conns = (uint32_t)conf->engine.max_conns };

	/* In a pair the program signals what the engine must replicate: a
	 * quarter of max_lag, so the engine's own max_lag check (it counts
	 * from its last record, which may fall between two signals) fires
	 * within a quarter past it; and every interval while packets flow. */
	int required = conf->daemon.fast_path == LB_FAST_PATH_REQUIRED;
	struct lbd_fastpath *f;
	char err[256];
	int rc;

	*fatal = 0;
	if (conf->sync.enabled) {
		fc.signal_bytes = conf->sync.max_lag / 4;
		fc.signal_ms = conf->sync.interval_ms;
	}
	detach_stale();
	if (conf->daemon.fast_path == LB_FAST_PATH_OFF)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	pthread_mutex_init(&f->lock, NULL);
	/* With a peer lbd starts as backup: keepalived says when to forward. */
	f->master = !conf->sync.enabled;
	f->fp = fp_open(&fc, err, sizeof(err));
	if (!f->fp) {
		log_warn("fast path: %s", err);
		goto fail;
	}
	rc = attach_all(f);
	if (rc <= 0) {
		log_warn("fast path: attached to no interface%s%s", rc < 0 ? ": " : "",
			 rc < 0 ? strerror(-rc) : "");
		goto fail;
	}
	lb_engine_set_fastpath(e, &fp_engine_ops, f->fp);
	f->forwarding = -1;	/* tell the program, whatever it is */
	lbd_fastpath_set_enabled(f, 1);
	log_info("fast path: on, on %u interfaces, room for %u connections", f->nifs,
		 fc.max_conns);
	return f;
fail:
	if (f) {
		fp_close(f->fp);
		pthread_mutex_destroy(&f->lock);
	}
	free(f);
	if (!required)
		log_warn("fast path: running on NFQUEUE alone");
	*fatal = required;
	return NULL;
}

void lbd_fastpath_close(struct lbd_fastpath *f, struct lb_engine *e)
{
	if (!f)
		return;
	lb_engine_set_fastpath(e, NULL, NULL);
	fp_close(f->fp);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Tells the program what the switches say; f->lock held. */
static void apply_switches(struct lbd_fastpath *f)
{
	int on = f->master && !f->capture_off, rc;

	if (atomic_load(&f->forwarding) == on)
		return;
	rc = fp_set_enabled(f->fp, on);
	if (rc < 0) {
		log_err("fast path: cannot switch %s: %s", on ? "on" : "off", strerror(-rc));
		return;
	}
	atomic_store(&f->forwarding, on);
	log_info("fast path: %s", on ? "forwarding"
			      : f->master ? "paused for a capture (every packet to NFQUEUE)"
					  : "standby (not master)");
}

void lbd_fastpath_set_enabled(struct lbd_fastpath *f, int on)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->capture_off = !on;
	apply_switches(f);
	pthread_mutex_unlock(&f->lock);
}

void lbd_fastpath_set_master(struct lbd_fastpath *f, int master)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->master = master;
	apply_switches(f);
	pthread_mutex_unlock(&f->lock);
}

void lbd_fastpath_takeover(struct lbd_fastpath *f, uint64_t until_ms)
{
	int rc;

	if (!f)
		return;
	rc = fp_set_slack_until(f->fp, until_ms);
	/* Not fatal: the first segments beyond the replicated bounds then go
	 * up to the workers, which accept them with the slack themselves. */
	if (rc < 0)
		log_warn("fast path: cannot set the takeover's slack: %s", strerror(-rc));
}

struct sweep_ctx {
	struct lb_engine *e;
	struct lb_worker *w;
	uint64_t now_ms;
};

static void on_seen(void *arg, const struct lb_tuple *orig, const struct lb_fastpath_seen *s)
{
	struct sweep_ctx *x = arg;

	lb_engine_fastpath_seen(x->e, x->w, orig, s, x->now_ms);
}

void lbd_fastpath_sweep(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			uint64_t now_ms)
{
	struct sweep_ctx x = { e, w, now_ms };

	if (f)
		fp_sweep(f->fp, LBD_FASTPATH_SWEEP, on_seen, &x);
}

int lbd_fastpath_signal_fd(struct lbd_fastpath *f)
{
	return f ? fp_signal_fd(f->fp) : -1;
}

void lbd_fastpath_signals(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			  uint64_t now_ms)
{
	struct sweep_ctx x = { e, w, now_ms };

	if (f)
		fp_signals(f->fp, on_seen, &x);
}

void lbd_fastpath_print_stats(struct lbd_fastpath *f, FILE *out)
{
	uint64_t c[FP_CNT_COUNT];
	const char *state = "off";

	if (f) {
		pthread_mutex_lock(&f->lock);
		state = atomic_load(&f->forwarding) == 1 ? "on" : !f->master ? "standby" : "paused";
		pthread_mutex_unlock(&f->lock);
	}
	fprintf(out, "fast_path %s\n", state);
	if (!f)
		return;
	fprintf(out, "fast_path_entries %zu\n", fp_conn_count(f->fp));
	if (fp_counters(f->fp, c) < 0)
		return;
	for (int i = 0; i < FP_CNT_COUNT; i++)
		fprintf(out, "%s %llu\n", fp_counter_name(i), (unsigned long long)c[i]);
}
