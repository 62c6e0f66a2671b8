/*
 * lbd_sync: the daemon's side of the sync channel (sync.c): the UDP socket
 * to the peer, the HMAC key, and the sync node (sync_node.h) over the
 * engine. It has no thread of its own: the engine's control thread (the
 * loop, lbd_loop.h) polls its descriptors and calls lbd_sync_run(). Workers
 * reach it only through the node's queue and the wake eventfd; other
 * threads read readiness and counters under the node's lock. Private to
 * lbd/.
 */
#ifndef LBD_SYNC_H
#define LBD_SYNC_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lb_repl.h"

struct lb_engine;
struct lb_sync_conf;
struct lbd_queue;
struct lbd_sync;

/* How many descriptors lbd_sync_poll_fds() fills: the socket and the wake eventfd. */
#define LBD_SYNC_POLLFDS 2

/*
 * Opens the sync socket, reads the key and creates the node over engine e,
 * makes the engine a backup that replicates through the node, and asks the
 * peer for a bulk resync. The node releases deferred packets on the nqueues
 * queues (which must outlive it). Engine calls: run it before the loop
 * starts. NULL on failure (logged).
 */
struct lbd_sync *lbd_sync_open(const struct lb_sync_conf *sc, struct lb_engine *e,
			       struct lbd_queue *const *queues, unsigned nqueues);

/* Detaches the node from the engine and frees; after the loop stopped. NULL is fine. */
void lbd_sync_close(struct lbd_sync *s);

/* The descriptors to poll for input (POLLIN), into p[0..LBD_SYNC_POLLFDS). */
void lbd_sync_poll_fds(struct lbd_sync *s, struct pollfd p[static LBD_SYNC_POLLFDS]);

/* When (CLOCK_MONOTONIC ms) lbd_sync_run() is due at the latest. */
uint64_t lbd_sync_next_ms(struct lbd_sync *s, uint64_t now_ms);

/*
 * The control thread's turn, after a poll of p (as lbd_sync_poll_fds() filled
 * it, with revents): takes in the peer's datagrams (imports into the engine),
 * runs the node's timers, and forwards deferred packets that waited too long.
 */
void lbd_sync_run(struct lbd_sync *s, const struct pollfd p[static LBD_SYNC_POLLFDS],
		  uint64_t now_ms);

/*
 * Reads the key file again; when its key differs from the one in use,
 * starts a rotation (sync_link_set_key(): both keys accepted for the sync
 * section's key_grace). Main thread. Returns 1 (rotation started), 0 (same
 * key) or -1 (unreadable or unusable file: the key in use stays), with a
 * one-line account in msg.
 */
int lbd_sync_rekey(struct lbd_sync *s, char *msg, size_t len);

/* Tells the node our role (only a master answers resync requests). Control thread. */
void lbd_sync_set_role(struct lbd_sync *s, enum lb_role role);

/*
 * May this backup take over on its own (a VIP arrived) rather than wait for
 * keepalived's notify? Only when it is ready and its peer is not a master
 * heard within the last three heartbeats: a live master keeps its
 * connections. 1, or 0 with the reason in why.
 */
int lbd_sync_takeover_ok(struct lbd_sync *s, uint64_t now_ms, char *why, size_t len);

/* How long the peer has been silent on the sync link (0: never heard, or
 * s NULL). Control thread. */
uint64_t lbd_sync_peer_silent_ms(struct lbd_sync *s, uint64_t now_ms);

/* 1 when ready to become master, else 0 with the reason in why. Any thread. */
int lbd_sync_ready(struct lbd_sync *s, char *why, size_t len);

/* The sync_* lines of `lbctl sync`. Any thread. */
void lbd_sync_print(struct lbd_sync *s, FILE *out);

#endif
