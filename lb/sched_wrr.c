/*
 * lb_sched wrr: weighted round robin, interleaved.
 *
 * The whole cycle is computed once at build time with smooth weighted round
 * robin (nginx's algorithm), which spreads each backend's turns over the
 * cycle: weights 3 and 1 give A A B A rather than IPVS's A A A B. Picking is
 * then a step of the shared cursor along the precomputed sequence, which
 * keeps pick lock-free. The cycle has sum(weight / gcd) items; weights whose
 * cycle would exceed LB_SCHED_WRR_MAX_SEQ are scaled down to that length
 * (each backend's share is then exact to 1 / LB_SCHED_WRR_MAX_SEQ).
 *
 * lb_sched_interleave() and lb_sched_apportion() are shared with sh, which
 * fills its buckets the same way.
 */
#include <errno.h>
#include <stdlib.h>

#include "sched_impl.h"

int lb_sched_interleave(const uint32_t *counts, size_t n, uint32_t *seq, size_t len)
{
	int64_t *current = calloc(n ? n : 1, sizeof(*current));
	int rc = 0;

	if (!current)
		return -ENOMEM;
	/* Each step every index gains its count and the leader, which has
	 * waited longest relative to its share, takes the turn and pays len
	 * back. Over len steps each index leads exactly counts[i] times. */
	for (size_t k = 0; k < len; k++) {
		size_t best = n;

		for (size_t i = 0; i < n; i++) {
			if (!counts[i])
				continue;
			current[i] += counts[i];
			if (best == n || current[i] > current[best])
				best = i;
		}
		if (best == n) {
			rc = -EINVAL;	/* counts sum to 0, not to len */
			break;
		}
		current[best] -= (int64_t)len;
		seq[k] = (uint32_t)best;
	}
	free(current);
	return rc;
}

/* A backend's share of total slots, rounded down. */
static uint32_t apportion_floor(uint32_t weight, size_t total, uint64_t sum)
{
	return (uint32_t)((uint64_t)weight * total / sum);
}

size_t lb_sched_apportion(const struct lb_sched *sched, size_t total, uint32_t *counts)
{
	uint64_t sum = 0;
	size_t given = 0;

	for (size_t i = 0; i < sched->n; i++)
		sum += sched->backends[i]->conf.weight;
	if (sum == 0) {
		for (size_t i = 0; i < sched->n; i++)
			counts[i] = 0;
		return 0;
	}
	for (size_t i = 0; i < sched->n; i++) {
		counts[i] = apportion_floor(sched->backends[i]->conf.weight, total, sum);
		given += counts[i];
	}
	/* The slots lost to rounding down (fewer than n) go one each to the
	 * largest remainders. A count already raised is told apart by being
	 * above its floor, which spares a scratch array. */
	while (given < total) {
		size_t best = sched->n;
		uint64_t best_rem = 0;

		for (size_t i = 0; i < sched->n; i++) {
			uint32_t w = sched->backends[i]->conf.weight;
			uint64_t rem = (uint64_t)w * total % sum;

			if (w == 0 || counts[i] != apportion_floor(w, total, sum))
				continue;
			if (best == sched->n || rem > best_rem) {
				best = i;
				best_rem = rem;
			}
		}
		counts[best]++;
		given++;
	}
	return given;
}

/* Cycle length and per-backend counts: weight / gcd, or scaled down. */
static size_t wrr_counts(const struct lb_sched *sched, uint32_t *counts)
{
	uint32_t g = lb_sched_weight_gcd(sched);
	uint64_t len = 0;

	if (g == 0)
		return 0;
	for (size_t i = 0; i < sched->n; i++) {
		counts[i] = sched->backends[i]->conf.weight / g;
		len += counts[i];
	}
	if (len > LB_SCHED_WRR_MAX_SEQ)
		len = lb_sched_apportion(sched, LB_SCHED_WRR_MAX_SEQ, counts);
	return (size_t)len;
}

static int wrr_build(struct lb_sched *sched)
{
	uint32_t *counts = calloc(sched->n ? sched->n : 1, sizeof(*counts));
	size_t len;
	int rc = -ENOMEM;

	if (!counts)
		return -ENOMEM;
	len = wrr_counts(sched, counts);
	if (len == 0) {
		rc = 0;		/* no positive weight: pick returns NULL */
		goto out;
	}
	sched->table = malloc(len * sizeof(*sched->table));
	if (!sched->table)
		goto out;
	rc = lb_sched_interleave(counts, sched->n, sched->table, len);
	if (rc == 0)
		sched->table_len = len;
out:
	free(counts);
	return rc;
}

static struct lb_backend *wrr_item(const struct lb_sched *sched, size_t i)
{
	return sched->backends[sched->table[i]];
}

static struct lb_backend *wrr_pick(struct lb_sched *sched, const struct lb_addr *client,
				   uint16_t cport)
{
	(void)client;
	(void)cport;
	return lb_sched_cursor_pick(sched, sched->table_len, wrr_item);
}

const struct lb_sched_ops lb_sched_wrr_ops = {
	.name = "wrr",
	.build = wrr_build,
	.pick = wrr_pick,
};
