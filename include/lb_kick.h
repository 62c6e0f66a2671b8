/*
 * lb_kick: the packets a new master sends to the two ends of a connection it
 * has taken over, so that neither waits out a backed-off retransmission
 * timer (lbd's takeover kick, docs/architecture.md).
 *
 * When the active node dies, the segments in flight die with it. An end with
 * data outstanding retransmits after its timeout; if the VIPs have not moved
 * yet, that retransmission is lost too and the timer doubles, so the
 * connection stalls for up to one doubled timeout after the new node is
 * ready. Two packets undo that, per end with data outstanding:
 *
 *   a prompt, to the other end: a bare ACK, as from its peer, with a
 *   sequence number far behind its window. TCP answers a segment outside
 *   its window with an ACK of what it expects next (RFC 9293 3.10.7.4):
 *   exactly the first byte the sender still waits to see acknowledged.
 *   The engine notes that ack as the connection's maxack.
 *
 *   a notice, to the sender: ICMP host unreachable (ICMPv6 no route)
 *   quoting its own segment at that sequence number. A sender in backoff
 *   that learns of a connectivity disruption at its first unacknowledged
 *   byte reverts one backoff and retransmits at once if the plain timeout
 *   has passed (RFC 6069; Linux does since 2.6.36, for IPv6 since 5.8). A
 *   notice that quotes any other byte, or reaches an end not in backoff,
 *   changes nothing there.
 *
 * Pure: builds bytes from a connection's state, IPv4 or IPv6, each with its
 * IP header complete (for a raw socket with IP_HDRINCL, or an IPv6
 * IPPROTO_RAW one).
 */
#ifndef LB_KICK_H
#define LB_KICK_H

#include <stddef.h>
#include <stdint.h>

#include "lb_record.h"

#define LB_KICK_PROMPT_LEN 40		/* IPv4 + TCP, no options */
#define LB_KICK_PROMPT6_LEN 60		/* IPv6 + TCP */
#define LB_KICK_NOTICE_LEN 56		/* IPv4 + ICMP + quoted IPv4 + 8 bytes of TCP */
#define LB_KICK_NOTICE6_LEN 96		/* the same in IPv6 */
#define LB_KICK_MAX_LEN 96		/* the longest of them */
#define LB_KICK_BEHIND (1u << 30)	/* how far behind its window a prompt's sequence is */

/*
 * The prompt for the end that receives direction dir's data: for
 * LB_DIR_REPLY the client, as from VIP:port; for LB_DIR_ORIG the backend,
 * as from the client. Returns its length (LB_KICK_PROMPT_LEN or
 * LB_KICK_PROMPT6_LEN), -EAFNOSUPPORT for mixed families, -ENOSPC when cap
 * is short.
 */
int lb_kick_prompt(const struct lb_conn_state *c, enum lb_dir dir, uint8_t *buf, size_t cap);

/*
 * The notice for the end that sends direction dir's data (LB_DIR_REPLY: the
 * backend), quoting its segment at seq: the ack its peer answered the
 * prompt with. The outer source is left 0 for the kernel to fill in IPv4,
 * and is the VIP in IPv6 (which has no such rule). Returns its length
 * (LB_KICK_NOTICE_LEN or LB_KICK_NOTICE6_LEN), -EAFNOSUPPORT, -ENOSPC.
 */
int lb_kick_notice(const struct lb_conn_state *c, enum lb_dir dir, uint32_t seq, uint8_t *buf,
		   size_t cap);

#endif
