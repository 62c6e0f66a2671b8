/*
 * lb_sched rr: round robin over the available backends.
 *
 * One shared atomic cursor; each pick takes the next position with
 * fetch-and-add, so concurrent workers never take the same turn.
 */
#include "sched_impl.h"

static struct lb_backend *rr_item(const struct lb_sched *sched, size_t i)
{
	return sched->backends[i];
}

static struct lb_backend *rr_pick(struct lb_sched *sched, const struct lb_addr *client,
				  uint16_t cport)
{
	(void)client;
	(void)cport;
	return lb_sched_cursor_pick(sched, sched->n, rr_item);
}

const struct lb_sched_ops lb_sched_rr_ops = {
	.name = "rr",
	.build = NULL,
	.pick = rr_pick,
};
