/*
 * lb_sched sh: source hashing, as IPVS sh.
 *
 * LB_SCHED_SH_SIZE buckets are shared among the backends in proportion to
 * weight (weight 0: none) and interleaved, so that when a backend is
 * unavailable and its clients fall through to the following buckets they
 * spread over the others instead of all landing on one neighbour. A client
 * address always maps to the same bucket; the client port is not used, so
 * all connections of a client go to one backend.
 */
#include <errno.h>
#include <stdlib.h>

#include "sched_impl.h"

static int sh_build(struct lb_sched *sched)
{
	uint32_t *counts = calloc(sched->n ? sched->n : 1, sizeof(*counts));
	int rc = -ENOMEM;

	if (!counts)
		return -ENOMEM;
	if (lb_sched_apportion(sched, LB_SCHED_SH_SIZE, counts) == 0) {
		rc = 0;		/* no positive weight: an empty table */
		goto out;
	}
	sched->table = malloc(LB_SCHED_SH_SIZE * sizeof(*sched->table));
	if (!sched->table)
		goto out;
	rc = lb_sched_interleave(counts, sched->n, sched->table, LB_SCHED_SH_SIZE);
	if (rc == 0)
		sched->table_len = LB_SCHED_SH_SIZE;
out:
	free(counts);
	return rc;
}

static struct lb_backend *sh_pick(struct lb_sched *sched, const struct lb_addr *client,
				  uint16_t cport)
{
	(void)cport;
	if (sched->table_len == 0)
		return NULL;
	return lb_sched_table_walk(sched,
				   lb_addr_hash(client, sched->seed) % sched->table_len);
}

const struct lb_sched_ops lb_sched_sh_ops = {
	.name = "sh",
	.build = sh_build,
	.pick = sh_pick,
};
