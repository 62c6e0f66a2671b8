/*
 * lbd: the daemon as main.c holds it. struct lbd is everything main starts,
 * owns and stops: the running configuration, the engine, the NFQUEUE
 * workers, the sync channel, the engine's control thread (the loop), the
 * capture, and the control socket. The commands (lbd_cmd.h) are handed it
 * and run on the main thread, so the main thread alone reads and writes
 * conf. Private to lbd/.
 */
#ifndef LBD_H
#define LBD_H

#include <stdint.h>

#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_rules.h"

struct lbd_capture;
struct lbd_health;
struct lbd_metrics;
struct lbd_fastpath;
struct lbd_loop;
struct lbd_queue;
struct lbd_sync;
struct lbd_vipwatch;
struct lbd_kick;

struct lbd {
	const char *conf_path;
	const char *pidfile;		/* --pidfile, or NULL */
	struct lb_conf conf;		/* running; a reload replaces its services */
	struct lb_engine *engine;
	struct lbd_queue *queues[LB_ENGINE_MAX_WORKERS];
	unsigned nqueues;
	struct lbd_sync *sync;		/* NULL without a sync section */
	struct lbd_loop *loop;		/* the engine's control thread */
	struct lbd_capture *capture;	/* `lbctl capture`; idle until started */
	struct lbd_health *health;	/* NULL without checks; restarted by reloads */
	struct lbd_metrics *metrics;	/* NULL when off */
	struct lbd_fastpath *fastpath;	/* the kernel fast path; NULL: off */
	struct lbd_vipwatch *vipwatch;	/* VIP arrivals; NULL without sync */
	struct lbd_kick *kick;		/* the takeover kick; NULL: off */
	int ctl_fd;
	int alive_fd;			/* daemon.alive_link's TUN; -1: none */
	int sig_fd;
	int nfq_proc_fd;		/* /proc/net/netfilter/nfnetlink_queue, opened
					 * while root (it is root's, mode 0440); -1 */
	int rules_installed;
	int debug;			/* -d: debug logging whatever the file says */
	struct lbd_tools tools;		/* absolute paths, found at start */
	unsigned owner_uid;		/* who started lbd (before it became
					 * daemon.user): full control-socket rights */
	uint64_t backends_freed_seen;	/* LB_CNT_BACKENDS_FREED at the last rules install */
};

#endif
