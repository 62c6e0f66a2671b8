/*
 * fastpath: the kernel fast path's loader (fastpath/loader.c). It loads the
 * tc program (fastpath/fp.bpf.c, embedded at build time), attaches it to
 * interfaces' clsact ingress, and keeps its connection map as the engine
 * says (lb_fastpath.h). IPv4; IPv6 connections are refused (-EAFNOSUPPORT)
 * and stay on the slow path.
 *
 * Thread-safe: install, read and remove are called from workers, the sweep
 * from the control thread.
 */
#ifndef FASTPATH_H
#define FASTPATH_H

#include <stddef.h>
#include <stdint.h>

#include "fp_counter.h"
#include "lb_fastpath.h"

struct fp;

struct fp_conf {
	uint32_t max_conns;	/* capacity of the connection map */
	int stack;		/* return rewritten packets to the stack instead of
				 * redirecting (tests: no routing needed) */
	uint64_t signal_bytes;	/* signal a connection once it moved this many
				 * bytes in a direction since its last signal;
				 * 0: never (no replication) */
	uint32_t signal_ms;	/* ... or once a packet comes this long after it */
};

/*
 * Loads the program and creates its maps, disabled (every packet passes)
 * until fp_set_enabled(). NULL with errno, and the reason in err, on failure.
 */
struct fp *fp_open(const struct fp_conf *conf, char *err, size_t errlen);

/* Detaches from every interface and frees; NULL is fine. */
void fp_close(struct fp *fp);

/*
 * Attaches to ifname's clsact ingress (creating the qdisc if needed),
 * replacing a filter a crashed run left. 0 or a negative errno.
 */
int fp_attach(struct fp *fp, const char *ifname);

/* Removes a filter a previous run left on ifname, if any (no fp needed). */
void fp_detach_stale(const char *ifname);

/* Switches handling on or off (off: every packet goes to the slow path). */
int fp_set_enabled(struct fp *fp, int on);

/*
 * Until until_ms (CLOCK_MONOTONIC), the program also accepts a segment
 * within an entry's takeover slack (lb_fastpath_conn.slack); 0: never. Set
 * as the node becomes master, to the end of the takeover's grace period.
 * 0 or a negative errno.
 */
int fp_set_slack_until(struct fp *fp, uint64_t until_ms);

/* The lb_fastpath_ops of the engine, on fp (pass fp as their arg). */
extern const struct lb_fastpath_ops fp_engine_ops;

/*
 * Installs c, or, when it is installed, moves the entry's window edges
 * forward to c's where c is ahead (the engine tracked packets that went up
 * to it). 0 or a negative errno (-ENOSPC: the map is full).
 */
int fp_conn_install(struct fp *fp, const struct lb_fastpath_conn *c);
int fp_conn_read(struct fp *fp, const struct lb_tuple *orig, struct lb_fastpath_seen *out);
int fp_conn_remove(struct fp *fp, const struct lb_tuple *orig, struct lb_fastpath_seen *out);

/* Connections installed. */
size_t fp_conn_count(struct fp *fp);

/*
 * Visits up to budget installed connections, round robin, and calls fn for
 * each that moved since its previous report (without holding fp's lock).
 * Returns how many were reported.
 */
size_t fp_sweep(struct fp *fp, size_t budget,
		void (*fn)(void *arg, const struct lb_tuple *orig,
			   const struct lb_fastpath_seen *s),
		void *arg);

/*
 * The program's replication signals (fp_conf.signal_*): a descriptor that
 * polls readable when signals wait, and fp_signals(), which reports each
 * signalled connection that moved to fn as fp_sweep() does (the two share
 * the last report, so nothing is counted twice). Returns how many were
 * reported. One thread at a time.
 */
int fp_signal_fd(struct fp *fp);
size_t fp_signals(struct fp *fp,
		  void (*fn)(void *arg, const struct lb_tuple *orig,
			     const struct lb_fastpath_seen *s),
		  void *arg);

/* The counters, summed over CPUs. 0 or a negative errno. */
int fp_counters(struct fp *fp, uint64_t out[FP_CNT_COUNT]);
const char *fp_counter_name(enum fp_counter c);

/*
 * Runs the program once on an IPv4 packet (data starts at the IP header;
 * an Ethernet header is put in front) with BPF_PROG_TEST_RUN. Returns the
 * tc verdict (TC_ACT_*) and the packet as it left in out (*outlen: its
 * length; the IP packet only), or a negative errno.
 */
int fp_test_run(struct fp *fp, const void *data, size_t len, void *out, size_t *outlen);

#endif
