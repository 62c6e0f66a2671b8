/*
 * lbd_fastpath: the kernel fast path in the daemon (fastpath.c): opens the
 * loader (fastpath.h) per `daemon.fast_path`, attaches the program to the
 * node's Ethernet interfaces, hands the engine its hooks, and on every tick
 * of the loop thread feeds back what the kernel forwarded. Private to lbd/.
 */
#ifndef LBD_FASTPATH_H
#define LBD_FASTPATH_H

#include <stdint.h>
#include <stdio.h>

struct lb_conf;
struct lb_engine;
struct lb_worker;
struct lbd_fastpath;

/* Connections fed back per tick at most (100 ms): 160,000 a second. */
#define LBD_FASTPATH_SWEEP 16384

/*
 * Opens the fast path for engine e as conf says. Returns it, or NULL when it
 * is off, or could not be had (the reason logged); then *fatal is set when
 * the configuration requires it.
 */
struct lbd_fastpath *lbd_fastpath_open(const struct lb_conf *conf, struct lb_engine *e,
				       int *fatal);

/* Detaches the engine's hooks and the program, and frees; NULL is fine. */
void lbd_fastpath_close(struct lbd_fastpath *f, struct lb_engine *e);

/*
 * The program forwards while the node is master and no capture runs.
 * set_enabled: off while a capture runs (main thread); set_master: the
 * node's role (the loop thread). NULL is fine.
 */
void lbd_fastpath_set_enabled(struct lbd_fastpath *f, int on);
void lbd_fastpath_set_master(struct lbd_fastpath *f, int master);

/* The node is becoming master (loop thread, before set_master): the program
 * accepts segments within the connections' takeover slack until until_ms
 * (CLOCK_MONOTONIC), the end of the grace period. NULL is fine. */
void lbd_fastpath_takeover(struct lbd_fastpath *f, uint64_t until_ms);

/* The loop thread, each tick: what the kernel forwarded goes to the engine. */
void lbd_fastpath_sweep(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			uint64_t now_ms);

/*
 * The program's replication signals (a connection moved a quarter of
 * sync.max_lag, or an interval passed): the descriptor the loop thread
 * polls (-1: none), and what it calls when it is readable; what the kernel
 * forwarded goes to the engine at once, which replicates it.
 */
int lbd_fastpath_signal_fd(struct lbd_fastpath *f);
void lbd_fastpath_signals(struct lbd_fastpath *f, struct lb_engine *e, struct lb_worker *w,
			  uint64_t now_ms);
/* `lbctl stats` lines: fast_path state (on, off, paused: a capture runs,
 * standby: not master), installed entries, counters. */
void lbd_fastpath_print_stats(struct lbd_fastpath *f, FILE *out);

#endif
