/*
 * lbd_capture: packet capture (capture.c). `lbctl capture start PREFIX`
 * records what lbd sees into two pcap files (link type RAW: each record
 * starts at the IP header):
 *
 *   PREFIX.in.pcap   every packet as the kernel queued it, before the engine
 *                    (requests from PREROUTING and replies from FORWARD)
 *   PREFIX.out.pcap  every packet returned with an ACCEPT verdict, after NAT
 *
 * so that a replay can feed the in-file to an engine offline and compare
 * what it returns with the out-file. Workers call lbd_capture_packet() for
 * every packet; the main thread (the control socket) starts and stops the
 * capture. Private to lbd/.
 */
#ifndef LBD_CAPTURE_H
#define LBD_CAPTURE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct lbd;
struct lbd_reply;
struct lbd_capture;

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

/*
 * The control command: capture [status] | capture start ARGS | capture stop.
 * Prints the answer to out; returns 0, or -1 after an "error:" line.
 */
int lbd_cmd_capture(struct lbd *d, const char *arg, struct lbd_reply *r);

#endif
