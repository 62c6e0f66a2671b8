/*
 * lb_sched mh: Maglev consistent hashing (Eisenbud et al., NSDI 2016).
 *
 * Every backend of positive weight has its own permutation of the
 * LB_SCHED_MH_SIZE buckets, (offset + j * skip) mod M with M prime, offset
 * and skip taken from a seeded hash of its address and port. Backends take
 * turns claiming the next free bucket of their permutation until the table
 * is full; a backend of weight w takes w / gcd turns per round, as IPVS mh
 * does. Since the permutations depend only on backend identity, adding or
 * removing one backend moves few buckets between the others.
 *
 * The population loop visits backends sorted by address and port, not in
 * array order: which backend wins a contested bucket depends on the visiting
 * order, and the table must not change when a reload lists the same
 * backends in another order (or when the standby lists them differently).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched_impl.h"

#define MH_EMPTY UINT32_MAX

struct mh_perm {
	const struct lb_backend *be;
	uint32_t idx;		/* in sched->backends */
	uint32_t next;		/* next bucket of its permutation to try */
	uint32_t skip;
	uint32_t turns;
};

static int mh_perm_cmp(const void *a, const void *b)
{
	const struct mh_perm *pa = a, *pb = b;
	const struct lb_backend_conf *ca = &pa->be->conf, *cb = &pb->be->conf;
	int c;

	if (ca->addr.family != cb->addr.family)
		return ca->addr.family < cb->addr.family ? -1 : 1;
	c = memcmp(ca->addr.bytes, cb->addr.bytes, sizeof(ca->addr.bytes));
	if (c)
		return c;
	if (ca->port != cb->port)
		return ca->port < cb->port ? -1 : 1;
	/* The same address and port twice: only then does order matter. */
	return pa->idx < pb->idx ? -1 : pa->idx > pb->idx;
}

/* Offset and skip of one backend's permutation, from two seeded hashes. */
static void mh_perm_init(struct mh_perm *p, const struct lb_backend *be, uint32_t idx,
			 uint32_t seed, uint32_t gcd)
{
	uint32_t key = seed ^ ((uint32_t)be->conf.port * 0x9e3779b1u);

	p->be = be;
	p->idx = idx;
	p->next = lb_addr_hash(&be->conf.addr, key) % LB_SCHED_MH_SIZE;
	/* skip in [1, M-1]: with M prime every skip visits every bucket. */
	p->skip = lb_addr_hash(&be->conf.addr, key ^ 0x5bd1e995u) % (LB_SCHED_MH_SIZE - 1);
	p->skip += 1;
	p->turns = be->conf.weight / gcd;
}

/* Builds the sorted permutations of the positive-weight backends; count in *m. */
static struct mh_perm *mh_perms(const struct lb_sched *sched, size_t *m)
{
	uint32_t gcd = lb_sched_weight_gcd(sched);
	struct mh_perm *perms = calloc(sched->n ? sched->n : 1, sizeof(*perms));

	*m = 0;
	if (!perms)
		return NULL;
	for (size_t i = 0; i < sched->n; i++)
		if (sched->backends[i]->conf.weight)
			mh_perm_init(&perms[(*m)++], sched->backends[i], (uint32_t)i,
				     sched->seed, gcd);
	qsort(perms, *m, sizeof(*perms), mh_perm_cmp);
	return perms;
}

/* Claims the next free bucket of p's permutation for p's backend. */
static void mh_claim(uint32_t *table, struct mh_perm *p)
{
	while (table[p->next] != MH_EMPTY) {
		p->next += p->skip;
		if (p->next >= LB_SCHED_MH_SIZE)
			p->next -= LB_SCHED_MH_SIZE;
	}
	table[p->next] = p->idx;
}

static void mh_populate(uint32_t *table, struct mh_perm *perms, size_t m)
{
	size_t filled = 0;

	for (size_t b = 0; b < LB_SCHED_MH_SIZE; b++)
		table[b] = MH_EMPTY;
	/* Each claim fills one bucket, so this ends after M claims. */
	for (;;) {
		for (size_t k = 0; k < m; k++) {
			for (uint32_t t = 0; t < perms[k].turns; t++) {
				mh_claim(table, &perms[k]);
				if (++filled == LB_SCHED_MH_SIZE)
					return;
			}
		}
	}
}

static int mh_build(struct lb_sched *sched)
{
	size_t m;
	struct mh_perm *perms = mh_perms(sched, &m);
	int rc = -ENOMEM;

	if (!perms)
		return -ENOMEM;
	if (m == 0) {
		rc = 0;		/* no positive weight: an empty table */
		goto out;
	}
	sched->table = malloc(LB_SCHED_MH_SIZE * sizeof(*sched->table));
	if (!sched->table)
		goto out;
	mh_populate(sched->table, perms, m);
	sched->table_len = LB_SCHED_MH_SIZE;
	rc = 0;
out:
	free(perms);
	return rc;
}

static struct lb_backend *mh_pick(struct lb_sched *sched, const struct lb_addr *client,
				  uint16_t cport)
{
	(void)cport;	/* by client address, as IPVS mh without its port flag */
	if (sched->table_len == 0)
		return NULL;
	return lb_sched_table_walk(sched,
				   lb_addr_hash(client, sched->seed) % sched->table_len);
}

const struct lb_sched_ops lb_sched_mh_ops = {
	.name = "mh",
	.build = mh_build,
	.pick = mh_pick,
};
