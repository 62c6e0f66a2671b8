/*
 * drill_trace: a capture turned into what a replay needs.
 *
 * Every TCP packet of a configured service is kept with its direction and
 * connection. Two kinds of capture are understood:
 *   - lbd's own (`lbctl capture`, the .in.pcap file): client -> VIP:port and
 *     backend -> client, exactly what the engine saw;
 *   - any client-side capture (tcpdump between clients and the service):
 *     client -> VIP:port and VIP:port -> client.
 * A reply's source is rewritten at replay time to the backend the replayed
 * engine chose for its connection, so either kind replays through any
 * configuration whose services name the capture's VIP:ports.
 *
 * With --auto-services (drill_trace_load_auto()), any TCP capture: every
 * connection's server becomes a service.
 *
 * What cannot be replayed is skipped and counted by reason; a packet whose
 * capture was cut short (snaplen) is zero-filled to its length on the wire
 * when its IP and TCP headers are complete, since the tracker needs only the
 * lengths, not the payload.
 */
#ifndef DRILL_TRACE_H
#define DRILL_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lb_addr.h"
#include "lb_conf.h"
#include "lb_tcp.h"

#define DRILL_TRACE_HEAD 256	/* bytes of each packet kept, headers at least */

/* Why a record was not kept; the index of drill_trace.skipped. */
enum drill_trace_skip {
	DRILL_TRACE_SKIP_LINK,		/* not IP, or shorter than its link header */
	DRILL_TRACE_SKIP_TRUNCATED,	/* cut short before the end of the TCP header */
	DRILL_TRACE_SKIP_MALFORMED,	/* the engine's parser refuses it */
	DRILL_TRACE_SKIP_FRAGMENT,
	DRILL_TRACE_SKIP_NOT_TCP,
	DRILL_TRACE_SKIP_NO_SERVICE,	/* TCP, but no configured service on either side */
	DRILL_TRACE_SKIP_ORPHAN,	/* a backend's reply before any packet of its connection */
	DRILL_TRACE_SKIP_COUNT
};

struct drill_trace_pkt {
	uint64_t index;		/* record number in the capture, from 1 */
	uint64_t ts_us;		/* from the start of the capture */
	uint32_t conn;		/* index into drill_trace.conns */
	uint8_t dir;		/* LB_DIR_ORIG or LB_DIR_REPLY */
	uint8_t tcp_flags;
	uint32_t len;		/* on the wire, from the IP header on */
	uint32_t stored;	/* bytes of data: the headers, at least
				 * min(len, DRILL_TRACE_HEAD); the payload
				 * beyond is not kept (the engine reads only
				 * headers; 64 KiB GSO payloads would cost
				 * gigabytes) */
	uint8_t *data;
};

struct drill_trace_conn {
	struct lb_tuple orig;	/* client -> VIP:port */
	size_t first;		/* its first packet (index into drill_trace.pkts) */
	size_t last;
	size_t syn;		/* its first client SYN, or SIZE_MAX */
	uint32_t npkts;
	uint8_t ended;		/* a FIN or RST seen: a client SYN after it
				 * starts the tuple's next connection (a port
				 * reused), a connection of its own here */
};

struct drill_trace {
	struct drill_trace_pkt *pkts;
	size_t npkts;
	struct drill_trace_conn *conns;
	size_t nconns;
	uint64_t records;	/* in the capture */
	uint64_t padded;	/* truncated by the capture, zero-filled */
	uint64_t reordered;	/* timestamps earlier than the packet before,
				 * taken as that packet's time */
	uint64_t skipped[DRILL_TRACE_SKIP_COUNT];
	char linktype[32];
};

/*
 * Reads a capture for the services of conf into t (which the caller owns;
 * its arrays are the trace's, freed by drill_trace_free()). Returns 0, or -1
 * with a message in err (unreadable or malformed file, nothing to replay)
 * and t empty.
 */
int drill_trace_load(struct drill_trace *t, const char *path, const struct lb_conf *conf,
		     char *err, size_t errlen);

/*
 * `--auto-services`: any capture of TCP. The server of every connection
 * (the receiver of its first SYN, the sender of its first SYN/ACK; when the
 * capture holds neither, the end with the lower port, then the lower
 * address) becomes a service of conf (replacing the configured ones), with
 * one synthetic backend: 198.19.240.0/20 or 2001:db8:ffff::/48, on the
 * service's port, numbered in the services' order. Every connection is then
 * balanced, NATed, tracked and replicated as a real one would be. Refused
 * with the figure when the capture has more than DRILL_TRACE_MAX_AUTO
 * servers (the engine's backend slots). Returns 0, or -1 with a message.
 */
#define DRILL_TRACE_MAX_AUTO 4096
int drill_trace_load_auto(struct drill_trace *t, const char *path, struct lb_conf *conf,
			  char *err, size_t errlen);

/* Frees what t holds and empties it; t itself is the caller's. */
void drill_trace_free(struct drill_trace *t);

/* The summary lines of what loading t skipped, zero-filled and reordered,
 * as `lbdrill replay` and `lbdrill audit` print them. */
void drill_trace_print_counts(const struct drill_trace *t, FILE *out);

/* A reason's text ("not IP", ...); "?" out of range. */
const char *drill_trace_skip_name(enum drill_trace_skip why);

#endif
