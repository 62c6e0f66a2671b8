/*
 * lbd_takeover: what a standby's takeovers cost and what set them off
 * (takeover.c). Shared by the loop, which promotes, and the NFQUEUE workers,
 * which note the first packet of an established connection they forward
 * afterwards; read by `lbctl stats`. Every field is an atomic: any thread may
 * read, the loop writes all but the first-forward probe. Private to lbd/.
 *
 * Triggers of a backup -> master change:
 *   notify       `lbctl role master` or SIGUSR1 (keepalived's lb-notify);
 *   vip_arrival  a service VIP appeared on this host (rtnetlink) while the
 *                peer was silent on the sync link or not master;
 *   peer_silent  a VIP had appeared while the peer still looked like a live
 *                master, and then the peer fell silent or stepped down
 *                before the notify came.
 */
#ifndef LBD_TAKEOVER_H
#define LBD_TAKEOVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

enum lbd_trigger { LBD_TRIGGER_NOTIFY, LBD_TRIGGER_VIP_ARRIVAL, LBD_TRIGGER_PEER_SILENT,
		   LBD_TRIGGER_COUNT };

struct lbd_takeover {
	atomic_uint_fast64_t by_trigger[LBD_TRIGGER_COUNT];
	atomic_uint_fast64_t vip_arrivals;	/* VIP appeared while we were backup */
	atomic_uint_fast64_t deferred;		/* ...and the peer was a live master or we
						 * were not ready: left to keepalived */
	atomic_uint_fast64_t vip_ns;		/* the last VIP arrival (monotonic) */
	atomic_uint_fast64_t master_ns;		/* the last promotion */
	atomic_uint_fast64_t armed;		/* 1: the first forward is still to come */
	atomic_uint_fast64_t forward_ns;	/* first established packet forwarded
						 * after the last promotion */
	atomic_uint_fast64_t seen_armed;	/* 1: the first packet after a VIP
						 * arrival is still to come */
	atomic_uint_fast64_t seen_ns;		/* the first client packet after it */
};

const char *lbd_trigger_name(enum lbd_trigger t);

/* The loop: a VIP arrived while we were backup (deferred: not acted on). */
void lbd_takeover_vip(struct lbd_takeover *t, uint64_t now_ns, int deferred);

/* The loop: we just became master through t's trigger. */
void lbd_takeover_promoted(struct lbd_takeover *t, enum lbd_trigger trig, uint64_t now_ns);

/*
 * A worker forwarded this client packet (accepted, before routing); the
 * first one after a promotion that is not a SYN (so of a connection this
 * node did not open: a replicated one) stamps forward_ns. One relaxed load
 * when nothing is armed.
 */
void lbd_takeover_forwarded(struct lbd_takeover *t, const uint8_t *ip, uint32_t len);

/* A worker got a client packet (before the engine): the first one after a
 * VIP arrival stamps seen_ns. lbd's own share of a takeover is from there
 * to forward_ns. */
void lbd_takeover_seen(struct lbd_takeover *t);

/* `lbctl stats` lines: takeovers_<trigger>, takeover_* figures of the last one. */
void lbd_takeover_print(struct lbd_takeover *t, FILE *out);

#endif
