/*
 * lbd: the daemon's private interfaces (NFQUEUE workers, iptables rules,
 * control socket). Only lb/lbd_*.c include this.
 */
#ifndef LBD_H
#define LBD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "lb_conf.h"
#include "lb_engine.h"

/* --- NFQUEUE workers (lbd_nfq.c) --- */

#define LBD_BATCH 32		/* packets per recvmmsg */

struct lbd_queue_stats {
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t recv_errors;
	atomic_uint_fast64_t send_errors;	/* batches refused, then sent one by one */
	atomic_uint_fast64_t verdicts_lost;	/* single verdicts refused too */
	atomic_uint_fast64_t bad_messages;
};

struct lbd_queue;

/*
 * Binds NFQUEUE number num (copy whole packets, GSO on, maxlen packets) and
 * prepares a worker that feeds engine e. Returns NULL and logs why.
 */
struct lbd_queue *lbd_queue_open(unsigned num, unsigned maxlen, struct lb_engine *e);

/* Starts the worker thread; it runs until lbd_queue_stop(). Returns 0 or -errno. */
int lbd_queue_start(struct lbd_queue *q);

/* Asks the worker to stop and joins it (within about 250 ms). */
void lbd_queue_stop(struct lbd_queue *q);

/* Unbinds and frees; NULL is fine. */
void lbd_queue_close(struct lbd_queue *q);

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
void lbd_queue_defer_stats(struct lbd_queue *q, struct lbd_defer_stats *out);

/* --- iptables rules (lbd_rules.c) --- */

/*
 * Installs (or replaces) lbd's chains: requests to every service VIP:port
 * and replies from every backend in the engine (draining ones included) are
 * kept out of conntrack and queued to queues [queue, queue + workers).
 * Returns 0 or -1 (logged).
 */
int lbd_rules_install(const struct lb_conf *conf, struct lb_engine *e);

/* Removes lbd's chains and the jumps to them; quiet when none exist. */
void lbd_rules_remove(const char *chain);

/* --- the sync channel (lbd_sync.c) --- */

struct lbd;
struct lbd_sync;

/*
 * Opens the sync socket and the node over d's engine, asks the peer for a
 * bulk resync, and starts the sync thread, which from then on is the
 * engine's control thread (it runs lb_engine_tick). NULL on failure (logged).
 */
struct lbd_sync *lbd_sync_start(struct lbd *d);
void lbd_sync_stop(struct lbd_sync *s);

/* Role change, as keepalived (through lbctl) or a signal asks. */
void lbd_sync_set_role(struct lbd_sync *s, enum lb_role role);
int lbd_sync_ready(struct lbd_sync *s, char *why, size_t len);
void lbd_sync_print(struct lbd_sync *s, FILE *out);

/* --- control socket (lbd_ctl.c) --- */

/* The daemon: everything the main thread owns. */
struct lbd {
	const char *conf_path;
	struct lb_conf conf;
	struct lb_engine *engine;
	struct lb_worker *ctl_worker;
	struct lbd_queue *queues[LB_ENGINE_MAX_WORKERS];
	unsigned nqueues;
	int ctl_fd;
	int sig_fd;
	int rules_installed;
	uint64_t backends_freed_seen;
	struct lbd_sync *sync;		/* NULL without a sync section */
};


/* Creates the listening socket at path (replacing a stale one). Returns fd or -1. */
int lbd_ctl_listen(const char *path);

/* Serves one client connection on fd: reads one command, answers, closes. */
void lbd_ctl_serve(struct lbd *d, int fd);

/* Commands the control socket calls back into the daemon for. */
void lbd_cmd_stats(struct lbd *d, FILE *out);
void lbd_cmd_conns(struct lbd *d, FILE *out);
void lbd_cmd_backends(struct lbd *d, FILE *out);
int lbd_cmd_reload(struct lbd *d, FILE *out);
int lbd_cmd_role(struct lbd *d, const char *arg, FILE *out);
int lbd_cmd_ready(struct lbd *d, FILE *out);
void lbd_cmd_sync(struct lbd *d, FILE *out);

/* Sets the role of the engine (and of the sync node); logs a change once. */
void lbd_set_role(struct lbd *d, enum lb_role role);

#endif
