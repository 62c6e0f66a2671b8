/*
 * sched_impl.h: what the algorithms of lb_sched share; private to lb/sched*.c.
 *
 * Every algorithm is a struct lb_sched_ops: an optional build step run once by
 * lb_sched_new() and a pick function. Precomputed state lives in one table of
 * backend indices (the wrr sequence, the sh buckets, the Maglev lookup table);
 * after build nothing in struct lb_sched changes except the cursor, so pick
 * needs no lock and allocates nothing.
 */
#ifndef LB_SCHED_IMPL_H
#define LB_SCHED_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_impl.h"
#include "lb_sched.h"

/* Longest wrr sequence; bigger weight sums are scaled down to it. */
#define LB_SCHED_WRR_MAX_SEQ 65536u

struct lb_sched_ops {
	const char *name;
	/* Fills sched->table; NULL when the algorithm needs none. 0 or -errno. */
	int (*build)(struct lb_sched *sched);
	struct lb_backend *(*pick)(struct lb_sched *sched, const struct lb_addr *client,
				   uint16_t cport);
};

struct lb_sched {
	const struct lb_sched_ops *ops;
	struct lb_backend **backends;	/* copy of the caller's array */
	size_t n;
	uint32_t seed;
	uint32_t *table;		/* indices into backends; owned */
	size_t table_len;		/* 0: nothing to pick from */
	atomic_uint_fast64_t cursor;	/* rr/wrr position, only ever incremented */
};

extern const struct lb_sched_ops lb_sched_rr_ops;
extern const struct lb_sched_ops lb_sched_wrr_ops;
extern const struct lb_sched_ops lb_sched_lc_ops;
extern const struct lb_sched_ops lb_sched_wlc_ops;
extern const struct lb_sched_ops lb_sched_sh_ops;
extern const struct lb_sched_ops lb_sched_mh_ops;

/*
 * Takes the next position of a cyclic sequence of len items from the cursor
 * and returns the first available backend from there on, trying at most len
 * items; item(sched, i) gives the backend of item i. NULL when none is.
 */
typedef struct lb_backend *lb_sched_item_fn(const struct lb_sched *sched, size_t i);
struct lb_backend *lb_sched_cursor_pick(struct lb_sched *sched, size_t len,
					lb_sched_item_fn *item);

/*
 * Returns the first available backend of sched->table from bucket start on,
 * wrapping, trying every bucket at most once. NULL when none is.
 */
struct lb_backend *lb_sched_table_walk(const struct lb_sched *sched, size_t start);

/*
 * Fills seq[0..len-1] with an interleaved sequence of backend indices in
 * which index i appears exactly counts[i] times (smooth weighted round robin,
 * as nginx does it). counts must sum to len. Returns 0 or -ENOMEM.
 */
int lb_sched_interleave(const uint32_t *counts, size_t n, uint32_t *seq, size_t len);

/*
 * Shares total slots among the backends in proportion to their weights
 * (largest remainder, so the counts sum to total exactly when any weight is
 * positive). Returns the sum of counts[], 0 when every weight is 0.
 */
size_t lb_sched_apportion(const struct lb_sched *sched, size_t total, uint32_t *counts);

/* Greatest common divisor of the positive weights; 0 when there is none. */
uint32_t lb_sched_weight_gcd(const struct lb_sched *sched);

#endif
