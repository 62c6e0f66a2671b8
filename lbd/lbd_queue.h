/*
 * lbd_queue: the NFQUEUE workers (queue.c). One thread per kernel queue
 * receives packets in batches, runs each through the engine and returns the
 * verdicts; in zero-loss (defer) mode it holds the verdicts of packets that
 * create a connection until the peer has the connection. Private to lbd/.
 */
#ifndef LBD_QUEUE_H
#define LBD_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

struct lb_engine;
struct lbd_capture;
struct lbd_queue;

struct lbd_queue_stats {
	atomic_uint_fast64_t packets;		/* handed to the engine: each gets one
						 * pkts_* or drop_* count there */
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t recv_errors;
	atomic_uint_fast64_t send_errors;	/* batches refused, then sent one by one */
	atomic_uint_fast64_t verdicts_lost;	/* single verdicts refused too */
	atomic_uint_fast64_t bad_messages;
};

/*
 * Binds NFQUEUE number num (copy whole packets, GSO on, maxlen packets,
 * fail_open: NFQA_CFG_F_FAIL_OPEN, a full queue passes packets) and
 * prepares a worker that feeds engine e and shows every packet to capture
 * cap (not NULL; it must outlive the queue). Returns NULL and logs why.
 */
struct lbd_queue *lbd_queue_open(unsigned num, unsigned maxlen, int fail_open,
				 struct lb_engine *e, struct lbd_capture *cap);

/* Starts the worker thread, which confines itself to lbd_seccomp_worker()'s
 * allow-list before its first packet; it runs until lbd_queue_stop().
 * Returns 0 or -errno (-EPERM: the filter could not be loaded). */
int lbd_queue_start(struct lbd_queue *q);

/* The takeover probe (lbd_takeover.h) the worker tells of forwarded client
 * packets; before lbd_queue_start(), t outlives the queue. */
struct lbd_takeover;
void lbd_queue_set_takeover(struct lbd_queue *q, struct lbd_takeover *t);

/* Asks the worker to stop and joins it (within about 250 ms). */
void lbd_queue_stop(struct lbd_queue *q);

/* Unbinds and frees; NULL is fine. */
void lbd_queue_close(struct lbd_queue *q);

/* The worker's counters (atomics: any thread may read them), and its queue number. */
const struct lbd_queue_stats *lbd_queue_stats(const struct lbd_queue *q);
unsigned lbd_queue_num(const struct lbd_queue *q);

/*
 * Zero-loss mode: a worker holds the verdict of a packet whose engine
 * verdict carries a defer ticket until lbd_queue_release() says the peer has
 * that ticket, or lbd_queue_defer_expire() gives up on it (then the packet is
 * forwarded anyway and counted as a defer timeout). Both may be called from
 * any thread.
 */
void lbd_queue_release(struct lbd_queue *q, uint64_t ticket);
void lbd_queue_defer_expire(struct lbd_queue *q, uint32_t timeout_ms);

struct lbd_defer_stats {
	uint64_t held, released, timeouts, overflow;
	uint64_t wait_us_sum, wait_us_max;	/* from hold to release */
};

/* A copy of the defer counters, taken under the queue's lock; any thread. */
void lbd_queue_defer_stats(struct lbd_queue *q, struct lbd_defer_stats *out);

#endif
