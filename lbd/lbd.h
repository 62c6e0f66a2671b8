/*
 * lbd: the daemon's private interfaces (NFQUEUE workers, iptables rules,
 * control socket). Private to lbd/.
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
struct lbd_capture;

/*
 * Binds NFQUEUE number num (copy whole packets, GSO on, maxlen packets) and
 * prepares a worker that feeds engine e and shows every packet to capture
 * cap (not NULL; it must outlive the queue). Returns NULL and logs why.
 */
struct lbd_queue *lbd_queue_open(unsigned num, unsigned maxlen, struct lb_engine *e,
				 struct lbd_capture *cap);

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
	struct lbd_capture *capture;	/* `lbctl capture`; idle until started */
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

/* --- packet capture (lbd_capture.c) --- */

/*
 * `lbctl capture start PREFIX` records what lbd sees into two pcap files
 * (link type RAW: each record starts at the IP header):
 *
 *   PREFIX.in.pcap   every packet as the kernel queued it, before the engine
 *                    (requests from PREROUTING and replies from FORWARD)
 *   PREFIX.out.pcap  every packet returned with an ACCEPT verdict, after NAT
 *
 * so that a replay can feed the in-file to an engine offline and compare
 * what it returns with the out-file. Workers call lbd_capture_packet() for
 * every packet; the control thread starts and stops the capture.
 */

#define LBD_CAPTURE_PREFIX_MAX	200		/* the control line is 255 bytes */
#define LBD_CAPTURE_SNAPLEN_MAX	262144		/* libpcap's MAXIMUM_SNAPLEN */

/* Settings of one capture, from `capture start`'s arguments. */
struct lbd_capture_conf {
	char prefix[LBD_CAPTURE_PREFIX_MAX + 1];	/* absolute */
	uint64_t max_packets;	/* per file */
	uint64_t max_bytes;	/* per file, pcap headers included */
	uint32_t snaplen;	/* bytes kept of each packet */
};

/* Why the last capture stopped. */
enum lbd_capture_reason {
	LBD_CAPTURE_NOT_STOPPED,	/* never started, or running */
	LBD_CAPTURE_BY_OPERATOR,	/* capture stop */
	LBD_CAPTURE_MAX_PACKETS,
	LBD_CAPTURE_MAX_BYTES,
	LBD_CAPTURE_WRITE_ERROR,
	LBD_CAPTURE_SHUTDOWN,		/* lbd exited */
};

enum lbd_capture_side { LBD_CAPTURE_IN, LBD_CAPTURE_OUT, LBD_CAPTURE_SIDES };

/*
 * The packet path's view of a capture. The capture itself is opaque, but
 * this switch is public so that the test in lbd_capture_packet() inlines
 * into the workers: with capture off a packet costs one relaxed load. The
 * switch is only a hint; the slow path checks again under the capture's
 * lock, so a packet racing a stop is simply not recorded.
 */
struct lbd_capture_tap {
	atomic_bool on;
	struct lbd_capture *capture;
};

/* An idle capture. NULL and errno on failure. */
struct lbd_capture *lbd_capture_new(void);

/* Stops a running capture (reason shutdown, files flushed) and frees; NULL is fine. */
void lbd_capture_free(struct lbd_capture *c);

/* The switch the workers test; lives as long as c. */
struct lbd_capture_tap *lbd_capture_tap(struct lbd_capture *c);

/*
 * Parses "PREFIX [max_packets=N] [max_bytes=N] [snaplen=N]" into conf
 * (defaults: 1000000 packets, 256 MiB, snaplen 65535). No I/O. Returns 0,
 * or -EINVAL with a one-line reason in err.
 */
int lbd_capture_conf_parse(const char *args, struct lbd_capture_conf *conf, char *err,
			   size_t errlen);

/*
 * Creates PREFIX.in.pcap and PREFIX.out.pcap (mode 0600, truncated) and
 * turns the capture on. Returns 0, or a negative errno with a one-line
 * reason in err: -EBUSY when one is running, -ENOENT/-ENOTDIR when PREFIX's
 * directory does not exist, or what opening a file failed with.
 */
int lbd_capture_start(struct lbd_capture *c, const struct lbd_capture_conf *conf, char *err,
		      size_t errlen);

/* Turns the capture off and closes its files. Returns 0, or -ENOENT when none runs. */
int lbd_capture_stop(struct lbd_capture *c, enum lbd_capture_reason why);

/*
 * Records one packet (data: len bytes from the IP header) in the file of
 * side, with a CLOCK_REALTIME timestamp and at most snaplen bytes. A record
 * that would take its file past max_packets or max_bytes stops the capture
 * instead. Any thread; serialised inside.
 */
void lbd_capture_write(struct lbd_capture *c, enum lbd_capture_side side, const void *data,
		       size_t len);

static inline void lbd_capture_packet(struct lbd_capture_tap *t, enum lbd_capture_side side,
				      const void *data, size_t len)
{
	if (atomic_load_explicit(&t->on, memory_order_relaxed))
		lbd_capture_write(t->capture, side, data, len);
}

/* `capture` status lines: state, reason, files, limits, counts. */
void lbd_capture_print_status(struct lbd_capture *c, FILE *out);

/* The capture_* lines of `lbctl stats`: totals over every capture since lbd started. */
void lbd_capture_print_stats(struct lbd_capture *c, FILE *out);

/* The control command: capture [status] | capture start ARGS | capture stop. */
int lbd_cmd_capture(struct lbd *d, const char *arg, FILE *out);

#endif
