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

#endif
