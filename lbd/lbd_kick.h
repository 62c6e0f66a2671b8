/*
 * lbd_kick: the takeover kick (kick.c). Right after this node becomes master
 * through a takeover, it prompts the ends of the connections that were
 * moving data, and once an end has answered tells the other end, in
 * backoff, to retransmit now (lb_kick.h has the packets and why).
 *
 * The answers are read from the engine (the connection's maxack), caught up
 * with the kernel fast path, which notes each side's last ack too. An end
 * that spoke through this node since the takeover (an echo's client, which
 * sends on its own) has answered already and is not prompted. Prompts
 * go out and answers are looked for a slice per round of the loop, after
 * the promotion: a kick never delays a takeover. A kick ends when every
 * end has answered, or after LBD_KICK_WAIT_MS. Loop thread only, but for
 * the counters. Private to lbd/.
 */
#ifndef LBD_KICK_H
#define LBD_KICK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct lb_engine;
struct lb_worker;
struct lbd_kick;

#define LBD_KICK_MAX 4096	/* connections kicked per takeover, at most */
#define LBD_KICK_WAIT_MS 500	/* for the answers: a round trip to a far client */
#define LBD_KICK_POLL_MS 1	/* the loop looks for answers this often */
#define LBD_KICK_SLICE 32	/* connections prompted per round (4x as many looked at) */
/* Notices per end: each reverts one doubling of the end's timer, so they
 * go by the outage (kick.c): at most 6, which undo a backoff 2^6 timeouts
 * deep (12.8 s at Linux's 200 ms floor). An end that reverts to a timeout
 * already past retransmits at once; the rest only shorten its next timer. */
#define LBD_KICK_NOTICES 6
/* The shortest retransmission timeout reckoned with: a backend whose floor
 * is tuned down (docs/operations.md suggests 15 ms) loses retransmissions
 * at about 16, 48 and 112 ms into an outage; a notice too many costs
 * nothing there. */
#define LBD_KICK_RTO_MS 10

/* Opens the raw socket (needs CAP_NET_RAW: before privileges drop). NULL
 * and errno on failure. */
struct lbd_kick *lbd_kick_open(void);
void lbd_kick_close(struct lbd_kick *k);	/* NULL is fine */

/* This node just took over after an outage of outage_ms (the peer's
 * silence on the sync link): picks the connections that were moving data
 * (by the rates of their last record), busiest first. NULL is fine. */
void lbd_kick_start(struct lbd_kick *k, struct lb_engine *e, uint64_t outage_ms,
		    uint64_t now_ms);

/* A round: the next prompts, and the notices of the ends that answered
 * (the kernel's packets counted on w); ends the kick when all did or its
 * time is up. Returns true while it still waits. */
bool lbd_kick_run(struct lbd_kick *k, struct lb_engine *e, struct lb_worker *w, uint64_t now_ms);

/* Drops a kick under way (the node is no longer master). */
void lbd_kick_cancel(struct lbd_kick *k);

/* A kick under way (the loop polls every LBD_KICK_POLL_MS). NULL: false. */
bool lbd_kick_busy(const struct lbd_kick *k);

/* `lbctl stats` lines: takeover_kick_* counters. */
void lbd_kick_print(struct lbd_kick *k, FILE *out);

#endif
