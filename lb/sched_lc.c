/*
 * lb_sched lc and wlc: least connections, plain and weighted.
 *
 * Both read the live counters of every backend on each pick (IPVS does the
 * same walk); the counters are relaxed atomics, so two workers picking at
 * the same moment may both choose the same backend, which only matters at
 * the margin and is what IPVS accepts too.
 */
#include <stdint.h>

#include "sched_impl.h"

/*
 * IPVS's "overhead": an established connection weighs 256 times an idle
 * one. Clamped to 32 bits so that wlc's cross-multiplication with a 32-bit
 * weight cannot overflow 64 bits; no backend holds 2^24 connections.
 */
static uint64_t lc_overhead(const struct lb_backend *be)
{
	uint64_t active = atomic_load_explicit(&be->active, memory_order_relaxed);
	uint64_t inactive = atomic_load_explicit(&be->inactive, memory_order_relaxed);
	uint64_t oh = active * 256 + inactive;

	return oh > UINT32_MAX ? UINT32_MAX : oh;
}

/*
 * The available backend with the least overhead per weight (weighted), or
 * the least overhead (lc: every weight counts as 1). oh / w < best / best_w
 * is compared without division, exactly: available backends have w > 0.
 * Ties go to the first in the array, as in IPVS.
 */
static struct lb_backend *least(struct lb_sched *sched, int weighted)
{
	struct lb_backend *best = NULL;
	uint64_t best_oh = 0, best_w = 1;

	for (size_t i = 0; i < sched->n; i++) {
		struct lb_backend *be = sched->backends[i];
		uint64_t oh, w;

		if (!lb_backend_available(be))
			continue;
		oh = lc_overhead(be);
		w = weighted ? be->conf.weight : 1;
		if (!best || oh * best_w < best_oh * w) {
			best = be;
			best_oh = oh;
			best_w = w;
		}
	}
	return best;
}

static struct lb_backend *lc_pick(struct lb_sched *sched, const struct lb_addr *client,
				  uint16_t cport)
{
	(void)client;
	(void)cport;
	return least(sched, 0);
}

static struct lb_backend *wlc_pick(struct lb_sched *sched, const struct lb_addr *client,
				   uint16_t cport)
{
	(void)client;
	(void)cport;
	return least(sched, 1);
}

const struct lb_sched_ops lb_sched_lc_ops = {
	.name = "lc",
	.build = NULL,
	.pick = lc_pick,
};

const struct lb_sched_ops lb_sched_wlc_ops = {
	.name = "wlc",
	.build = NULL,
	.pick = wlc_pick,
};
