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
 * What cannot be replayed is skipped and counted by reason; a packet whose
 * capture was cut short (snaplen) is zero-filled to its length on the wire
 * when its IP and TCP headers are complete, since the tracker needs only the
 * lengths, not the payload.
 */
#ifndef LB_AGENT_DRILL_TRACE_H
#define LB_AGENT_DRILL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_conf.h"
#include "lb_tcp.h"

enum trace_skip {
	TRACE_SKIP_LINK,	/* not IP, or shorter than its link header */
	TRACE_SKIP_TRUNCATED,	/* cut short before the end of the TCP header */
	TRACE_SKIP_MALFORMED,	/* the engine's parser refuses it */
	TRACE_SKIP_FRAGMENT,
	TRACE_SKIP_NOT_TCP,
	TRACE_SKIP_NO_SERVICE,	/* TCP, but no configured service on either side */
	TRACE_SKIP_ORPHAN,	/* a backend's reply before any packet of its connection */
	TRACE_SKIP_COUNT
};

struct trace_pkt {
	uint64_t index;		/* record number in the capture, from 1 */
	uint64_t ts_us;		/* from the start of the capture */
	uint32_t conn;		/* index into trace.conns */
	uint8_t dir;		/* LB_DIR_ORIG or LB_DIR_REPLY */
	uint8_t tcp_flags;
	uint32_t len;
	uint8_t *data;
};

struct trace_conn {
	struct lb_tuple orig;	/* client -> VIP:port */
	size_t first;		/* its first packet (index into trace.pkts) */
	size_t last;
	size_t syn;		/* its first client SYN, or SIZE_MAX */
	uint32_t npkts;
};

struct trace {
	struct trace_pkt *pkts;
	size_t npkts;
	struct trace_conn *conns;
	size_t nconns;
	uint64_t records;	/* in the capture */
	uint64_t padded;	/* truncated by the capture, zero-filled */
	uint64_t skipped[TRACE_SKIP_COUNT];
	char linktype[32];
};

/*
 * Reads a capture for the services of conf. Returns 0, or -1 with a message
 * in err (unreadable or malformed file, nothing to replay).
 */
int trace_load(struct trace *t, const char *path, const struct lb_conf *conf, char *err,
	       size_t errlen);
void trace_free(struct trace *t);

const char *trace_skip_name(enum trace_skip why);

#endif
