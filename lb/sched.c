/*
 * lb_sched: the strategy table of the balancing algorithms and what they
 * share (cursor stepping, bucket walking, weight arithmetic). The algorithms
 * themselves are in sched_rr.c, sched_wrr.c, sched_lc.c, sched_sh.c and
 * sched_mh.c; see lb_sched.h for the contract.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb_sched.h"
#include "sched_impl.h"

static const struct lb_sched_ops *const lb_sched_algos[] = {
	&lb_sched_rr_ops, &lb_sched_wrr_ops, &lb_sched_lc_ops,
	&lb_sched_wlc_ops, &lb_sched_sh_ops, &lb_sched_mh_ops,
};

static const struct lb_sched_ops *lb_sched_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(lb_sched_algos) / sizeof(lb_sched_algos[0]); i++)
		if (strcmp(lb_sched_algos[i]->name, name) == 0)
			return lb_sched_algos[i];
	return NULL;
}

int lb_sched_name_valid(const char *name)
{
	return lb_sched_find(name) != NULL;
}

struct lb_sched *lb_sched_new(const char *name, struct lb_backend *const *backends,
			      size_t n, uint32_t seed)
{
	const struct lb_sched_ops *ops = lb_sched_find(name);
	struct lb_sched *sched;
	int err = ENOMEM;

	if (!ops || (n && !backends)) {
		errno = EINVAL;
		return NULL;
	}
	sched = calloc(1, sizeof(*sched));
	if (!sched)
		goto err;
	sched->ops = ops;
	sched->seed = seed;
	sched->n = n;
	atomic_init(&sched->cursor, 0);
	/* Built with n == 0 too: calloc(0) may return NULL, so ask for one. */
	sched->backends = calloc(n ? n : 1, sizeof(*sched->backends));
	if (!sched->backends)
		goto err;
	if (n)
		memcpy(sched->backends, backends, n * sizeof(*backends));
	if (ops->build) {
		int rc = ops->build(sched);

		if (rc < 0) {
			err = -rc;
			goto err;
		}
	}
	return sched;
err:
	lb_sched_free(sched);
	errno = err;
	return NULL;
}

struct lb_backend *lb_sched_pick(struct lb_sched *sched, const struct lb_addr *client,
				 uint16_t cport)
{
	return sched->ops->pick(sched, client, cport);
}

const char *lb_sched_name(const struct lb_sched *sched)
{
	return sched->ops->name;
}

void lb_sched_free(struct lb_sched *sched)
{
	if (!sched)
		return;
	free(sched->table);
	free(sched->backends);
	free(sched);
}

struct lb_backend *lb_sched_cursor_pick(struct lb_sched *sched, size_t len,
					lb_sched_item_fn *item)
{
	uint64_t pos;

	if (len == 0)
		return NULL;
	pos = atomic_fetch_add_explicit(&sched->cursor, 1, memory_order_relaxed);
	for (size_t t = 0; t < len; t++) {
		struct lb_backend *be = item(sched, (size_t)((pos + t) % len));

		if (!lb_backend_available(be))
			continue;
		/* Move the cursor past the skipped items too, as IPVS rr
		 * resumes after the server it picked: otherwise the backend
		 * behind an unavailable one would take its turns as well and
		 * get twice the share of the others. */
		if (t)
			atomic_fetch_add_explicit(&sched->cursor, t, memory_order_relaxed);
		return be;
	}
	return NULL;
}

struct lb_backend *lb_sched_table_walk(const struct lb_sched *sched, size_t start)
{
	size_t len = sched->table_len;

	/* Fall through to the following buckets rather than rehashing: the
	 * clients of every other bucket stay where they are. */
	for (size_t t = 0; t < len; t++) {
		size_t b = start + t < len ? start + t : start + t - len;
		struct lb_backend *be = sched->backends[sched->table[b]];

		if (lb_backend_available(be))
			return be;
	}
	return NULL;
}

static uint32_t lb_sched_gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t r = a % b;

		a = b;
		b = r;
	}
	return a;
}

uint32_t lb_sched_weight_gcd(const struct lb_sched *sched)
{
	uint32_t g = 0;

	for (size_t i = 0; i < sched->n; i++)
		g = lb_sched_gcd(sched->backends[i]->conf.weight, g);
	return g;
}
