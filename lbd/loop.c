/*
 * lbd's loop: the engine's one control thread (lbd_loop.h).
 *
 * One poll() waits for the earliest of: the engine's next tick, the sync
 * node's next timer, a datagram from the peer, a worker's wake-up (defer
 * mode), and a posted command (the loop's eventfd). Each round then runs the
 * sync node, the tick when due, and every queued command, in that order, all
 * on this thread.
 *
 * A command is shared by its caller and the loop and counted: it is freed by
 * whichever of the two lets go of it last, so a caller that gave up waiting
 * leaves nothing dangling. Its state moves QUEUED -> RUNNING -> DONE under
 * the loop's lock; a caller whose wait runs out while it is still QUEUED
 * takes it back out of the queue, so a late command never applies behind the
 * caller's back.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lb_admin.h"
#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_fastpath.h"
#include "lbd_kick.h"
#include "lbd_loop.h"
#include "lbd_sync.h"
#include "lbd_takeover.h"
#include "lbd_vipwatch.h"
#include "log.h"

#define PENDING_POLL_MS 2	/* a deferred VIP takeover looks at the peer this often */

enum cmd_op { CMD_SET_SERVICES, CMD_SET_ROLE, CMD_ADMIN, CMD_HEALTH };
enum cmd_state { CMD_QUEUED, CMD_RUNNING, CMD_DONE };

struct cmd {
	struct cmd *next;		/* in the queue */
	unsigned refs;			/* under the loop's lock */
	enum cmd_state state;		/* under the loop's lock */
	enum cmd_op op;
	int result;			/* written by the loop before DONE */
	struct lb_conf conf;		/* CMD_SET_SERVICES: the services, lent */
	enum lb_role role, was;		/* CMD_SET_ROLE: in, out */
	struct lbd_admin_op admin;	/* CMD_ADMIN, CMD_HEALTH (kind unused) */
};

struct lbd_loop {
	struct lb_engine *engine;
	struct lb_worker *worker;	/* the tick's counters */
	struct lbd_sync *sync;		/* NULL without a sync section */
	struct lbd_fastpath *fastpath;	/* NULL: off */
	struct lbd_kick *kick;		/* NULL: takeovers are not kicked */
	struct lbd_vipwatch *vipwatch;	/* NULL: VIP arrivals not watched */
	bool vip_takeover;		/* act on them (else only count) */
	bool pending;			/* loop thread: a VIP is here, the peer looked
					 * like a live master; keep looking */
	struct lbd_takeover takeover;
	int wake_fd;			/* eventfd: a command or a stop */
	pthread_t thread;
	bool started;
	atomic_bool stop;

	atomic_uint_fast64_t role_changes;

	pthread_mutex_t lock;
	pthread_cond_t done;		/* some command reached DONE */
	struct cmd *head, *tail;	/* queued commands, oldest first */
	unsigned queued;
};

/* ---- commands, on the loop thread ---- */

/* Drops one reference; the last one frees. Under l->lock. */
static void cmd_put(struct cmd *c)
{
	if (--c->refs)
		return;
	lb_conf_free(&c->conf);
	free(c);
}

static int admin_execute(struct lb_engine *e, const struct lbd_admin_op *op)
{
	switch (op->kind) {
	case LBD_ADMIN_WEIGHT:
		return lb_engine_backend_set_weight(e, &op->ref, op->value);
	case LBD_ADMIN_DRAIN:
		return lb_engine_backend_set_drain(e, &op->ref, op->value != 0);
	case LBD_ADMIN_ADD:
		return lb_engine_backend_add(e, &op->ref, &op->backend);
	case LBD_ADMIN_REMOVE:
		return lb_engine_backend_remove(e, &op->ref);
	case LBD_ADMIN_ENABLE:
		return lb_engine_service_set_enabled(e, &op->ref, op->value != 0);
	}
	return -EINVAL;
}

/* Sets the role of the sync node, the fast path and the engine; returns the
 * previous one. Loop thread. */
static enum lb_role apply_role(struct lbd_loop *l, enum lb_role role, enum lbd_trigger trig)
{
	enum lb_role was;

	if (l->sync)
		lbd_sync_set_role(l->sync, role);
	/* The kernel fast path forwards only while the engine does. */
	if (role != LB_ROLE_MASTER) {
		lbd_kick_cancel(l->kick);
		lbd_fastpath_set_master(l->fastpath, 0);
	}
	was = lb_engine_set_role(l->engine, role);
	if (role == LB_ROLE_MASTER) {
		/* The kernel widens its bounds by the slack as the engine does,
		 * so the first segments beyond the replicated ones stay there. */
		if (was != LB_ROLE_MASTER)
			lbd_fastpath_takeover(l->fastpath,
					      clock_mono_ms() + lb_engine_grace_ms(l->engine));
		lbd_fastpath_set_master(l->fastpath, 1);
	}
	if (was != role) {
		if (role == LB_ROLE_MASTER)
			lbd_takeover_promoted(&l->takeover, trig, clock_mono_ns());
		atomic_fetch_add(&l->role_changes, 1);
		log_info("role %s -> %s (%s)", lb_role_name(was), lb_role_name(role),
			 lbd_trigger_name(trig));
		/* After the role: the kick is not on the takeover's path. */
		if (role == LB_ROLE_MASTER) {
			uint64_t now = clock_mono_ms();

			lbd_kick_start(l->kick, l->engine, lbd_sync_peer_silent_ms(l->sync, now), now);
		}
	}
	return was;
}

/*
 * A VIP is on this host and we are backup: take over now unless the peer
 * still looks like a live master (then keepalived's notify decides, and we
 * keep looking: a peer that falls silent or steps down first is a takeover
 * too) or our table is not fit (not ready). first: the arrival itself.
 */
static void vip_takeover(struct lbd_loop *l, uint64_t now_ms, bool first)
{
	char why[128] = "";
	bool ok = l->vip_takeover && lbd_sync_takeover_ok(l->sync, now_ms, why, sizeof(why));

	if (first) {
		lbd_takeover_vip(&l->takeover, clock_mono_ns(), !ok);
		if (!ok)
			log_info("a VIP arrived; not taking over (%s): keepalived's notify decides",
				 l->vip_takeover ? why : "vip_takeover = false");
	}
	l->pending = !ok && l->vip_takeover;
	if (ok)
		apply_role(l, LB_ROLE_MASTER,
			   first ? LBD_TRIGGER_VIP_ARRIVAL : LBD_TRIGGER_PEER_SILENT);
}

static void on_vip_events(struct lbd_loop *l, int events, uint64_t now_ms)
{
	if (!events || !l->sync)
		return;
	if (!(events & LBD_VIP_ARRIVED)) {
		l->pending = false;	/* the VIPs left: nothing to take over */
		return;
	}
	if (lb_engine_role(l->engine) == LB_ROLE_BACKUP)
		vip_takeover(l, now_ms, true);
}

static void cmd_execute(struct lbd_loop *l, struct cmd *c)
{
	switch (c->op) {
	case CMD_SET_SERVICES:
		c->result = lb_engine_set_services(l->engine, c->conf.services, c->conf.nservices);
		break;
	case CMD_SET_ROLE:
		l->pending = false;	/* keepalived has spoken */
		c->was = apply_role(l, c->role, LBD_TRIGGER_NOTIFY);
		c->result = 0;
		break;
	case CMD_ADMIN:
		c->result = admin_execute(l->engine, &c->admin);
		break;
	case CMD_HEALTH:
		c->result = lb_engine_backend_set_health(l->engine, &c->admin.ref,
							 c->admin.value != 0);
		break;
	}
}

/* Runs every queued command; the lock is not held while one runs. */
static void run_commands(struct lbd_loop *l)
{
	pthread_mutex_lock(&l->lock);
	while (l->head) {
		struct cmd *c = l->head;

		l->head = c->next;
		if (!l->head)
			l->tail = NULL;
		l->queued--;
		c->state = CMD_RUNNING;
		pthread_mutex_unlock(&l->lock);
		cmd_execute(l, c);
		pthread_mutex_lock(&l->lock);
		c->state = CMD_DONE;
		pthread_cond_broadcast(&l->done);
		cmd_put(c);
	}
	pthread_mutex_unlock(&l->lock);
}

/* ---- the thread ---- */

static void wake(struct lbd_loop *l)
{
	uint64_t one = 1;

	if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("loop: wake: %s", strerror(errno));
}

static int poll_timeout(struct lbd_loop *l, uint64_t now, uint64_t next_tick)
{
	uint64_t next = next_tick;

	if (l->pending && now + PENDING_POLL_MS < next)
		next = now + PENDING_POLL_MS;
	if (lbd_kick_busy(l->kick) && now + LBD_KICK_POLL_MS < next)
		next = now + LBD_KICK_POLL_MS;
	if (l->sync) {
		uint64_t s = lbd_sync_next_ms(l->sync, now);

		if (s < next)
			next = s;
	}
	return next <= now ? 0 : (int)(next - now);
}

static void *loop_main(void *arg)
{
	struct lbd_loop *l = arg;
	uint64_t next_tick = 0;

	while (!atomic_load(&l->stop)) {
		struct pollfd p[3 + LBD_SYNC_POLLFDS] = {
			{ l->wake_fd, POLLIN, 0 },
			{ lbd_fastpath_signal_fd(l->fastpath), POLLIN, 0 },	/* -1: none */
		};
		nfds_t n = 2, vip = 0;
		uint64_t now = clock_mono_ms();

		if (l->sync) {
			lbd_sync_poll_fds(l->sync, &p[2]);
			n += LBD_SYNC_POLLFDS;
		}
		if (l->vipwatch) {
			vip = n++;
			p[vip] = (struct pollfd){ lbd_vipwatch_fd(l->vipwatch), POLLIN, 0 };
		}
		if (poll(p, n, poll_timeout(l, now, next_tick)) < 0 && errno != EINTR)
			log_debug("loop: poll: %s", strerror(errno));
		if (p[0].revents & POLLIN) {
			uint64_t v;

			if (read(l->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_debug("loop: read: %s", strerror(errno));
		}
		now = clock_mono_ms();
		/* Before the sync turn: the records the signals make go out in
		 * it, not a poll later. */
		if (p[1].revents & POLLIN)
			lbd_fastpath_signals(l->fastpath, l->engine, l->worker, now);
		/* The peer's latest heartbeats first: whether a VIP arrival
		 * may be acted on depends on them. */
		if (l->sync)
			lbd_sync_run(l->sync, &p[2], now);
		if (vip && (p[vip].revents & POLLIN))
			on_vip_events(l, lbd_vipwatch_read(l->vipwatch), now);
		else if (l->pending && lb_engine_role(l->engine) == LB_ROLE_BACKUP)
			vip_takeover(l, now, false);
		else
			l->pending = false;
		lbd_kick_run(l->kick, l->engine, l->worker, now);
		if (now >= next_tick) {
			lb_engine_set_clock(l->engine, now, clock_real_us());
			/* Before the tick: a connection the kernel kept busy
			 * must not expire on the engine's stale last-seen. */
			lbd_fastpath_sweep(l->fastpath, l->engine, l->worker, now);
			lb_engine_tick(l->engine, l->worker, now);
			next_tick = now + LBD_LOOP_TICK_MS;
		}
		run_commands(l);
	}
	return NULL;
}

void lbd_loop_set_fastpath(struct lbd_loop *l, struct lbd_fastpath *f)
{
	l->fastpath = f;
}

void lbd_loop_set_kick(struct lbd_loop *l, struct lbd_kick *k)
{
	l->kick = k;
}

void lbd_loop_set_vipwatch(struct lbd_loop *l, struct lbd_vipwatch *w, bool act)
{
	l->vipwatch = w;
	l->vip_takeover = act;
}

struct lbd_takeover *lbd_loop_takeover(struct lbd_loop *l)
{
	return &l->takeover;
}

struct lbd_loop *lbd_loop_new(struct lb_engine *e, struct lbd_sync *sync)
{
	struct lbd_loop *l = calloc(1, sizeof(*l));
	pthread_condattr_t ca;
	int err;

	if (!l)
		return NULL;
	l->engine = e;
	l->sync = sync;
	l->worker = lb_engine_worker_new(e);
	if (!l->worker) {
		err = errno;
		goto fail;
	}
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		err = errno;
		goto fail;
	}
	pthread_mutex_init(&l->lock, NULL);
	/* Callers wait on the monotonic clock: a clock step must not stretch
	 * or cut their wait. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->done, &ca);
	pthread_condattr_destroy(&ca);
	return l;
fail:
	free(l);
	errno = err;
	return NULL;
}

int lbd_loop_start(struct lbd_loop *l)
{
	int err = pthread_create(&l->thread, NULL, loop_main, l);

	if (err)
		return -err;
	l->started = true;
	return 0;
}

void lbd_loop_free(struct lbd_loop *l)
{
	if (!l)
		return;
	if (l->started) {
		atomic_store(&l->stop, true);
		wake(l);
		pthread_join(l->thread, NULL);
	}
	/* Only the thread that frees the loop posts, so no caller waits on
	 * what is left; a stopped loop simply did not run it. */
	while (l->head) {
		struct cmd *c = l->head;

		l->head = c->next;
		cmd_put(c);
	}
	close(l->wake_fd);
	pthread_cond_destroy(&l->done);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* ---- commands, on the caller's thread ---- */

/* Takes c out of the queue (it is there). Under l->lock. */
static void unqueue(struct lbd_loop *l, struct cmd *c)
{
	struct cmd **pp = &l->head, *prev = NULL;

	while (*pp != c) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = c->next;
	if (l->tail == c)
		l->tail = prev;
	l->queued--;
}

/* Appends c to the queue; lock held, room checked by the caller. */
static void queue_append(struct lbd_loop *l, struct cmd *c)
{
	c->state = CMD_QUEUED;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->queued++;
}

/*
 * Queues c, wakes the loop and waits up to LBD_LOOP_WAIT_MS for it. Returns
 * c's result, or -EBUSY (not queued), -ETIMEDOUT (withdrawn), -EINPROGRESS
 * (still running). The caller keeps its reference to c and drops it under
 * the lock once it has taken what it needs from c.
 */
static int post(struct lbd_loop *l, struct cmd *c)
{
	uint64_t deadline_ns = clock_mono_ns() + (uint64_t)LBD_LOOP_WAIT_MS * 1000000u;
	struct timespec ts = { (time_t)(deadline_ns / 1000000000u),
			       (long)(deadline_ns % 1000000000u) };
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	if (l->queued == LBD_LOOP_QUEUE) {
		pthread_mutex_unlock(&l->lock);
		return -EBUSY;
	}
	c->refs++;		/* the queue's */
	queue_append(l, c);
	pthread_mutex_unlock(&l->lock);
	wake(l);

	pthread_mutex_lock(&l->lock);
	while (c->state != CMD_DONE && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&l->done, &l->lock, &ts);
	if (c->state == CMD_DONE) {
		rc = c->result;
	} else if (c->state == CMD_QUEUED) {
		unqueue(l, c);
		cmd_put(c);	/* the queue's reference */
		rc = -ETIMEDOUT;
	} else {
		rc = -EINPROGRESS;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

static struct cmd *cmd_new(enum cmd_op op)
{
	struct cmd *c = calloc(1, sizeof(*c));

	if (c) {
		c->op = op;
		c->refs = 1;	/* the caller's */
	}
	return c;
}

int lbd_loop_set_services(struct lbd_loop *l, struct lb_conf *conf)
{
	struct cmd *c = cmd_new(CMD_SET_SERVICES);
	int rc;

	if (!c)
		return -ENOMEM;
	c->conf.services = conf->services;
	c->conf.nservices = conf->nservices;
	conf->services = NULL;
	conf->nservices = 0;
	rc = post(l, c);
	pthread_mutex_lock(&l->lock);
	/* Unless the loop may still be reading them, the services go back. */
	if (rc != -EINPROGRESS) {
		conf->services = c->conf.services;
		conf->nservices = c->conf.nservices;
		c->conf.services = NULL;
		c->conf.nservices = 0;
	}
	cmd_put(c);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

uint64_t lbd_loop_role_changes(struct lbd_loop *l)
{
	return atomic_load(&l->role_changes);
}

int lbd_loop_admin(struct lbd_loop *l, const struct lbd_admin_op *op)
{
	struct cmd *c = cmd_new(CMD_ADMIN);
	int rc;

	if (!c)
		return -ENOMEM;
	c->admin = *op;
	rc = post(l, c);
	pthread_mutex_lock(&l->lock);
	cmd_put(c);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int lbd_loop_health(struct lbd_loop *l, const struct lb_backend_ref *ref, bool up)
{
	struct cmd *c = cmd_new(CMD_HEALTH);

	if (!c)
		return -ENOMEM;
	c->admin.ref = *ref;
	c->admin.value = up;
	pthread_mutex_lock(&l->lock);
	if (l->queued == LBD_LOOP_QUEUE) {
		cmd_put(c);
		pthread_mutex_unlock(&l->lock);
		return -EBUSY;
	}
	/* The queue takes over the caller's reference: nobody waits. */
	queue_append(l, c);
	pthread_mutex_unlock(&l->lock);
	wake(l);
	return 0;
}

int lbd_loop_set_role(struct lbd_loop *l, enum lb_role role, enum lb_role *was)
{
	struct cmd *c = cmd_new(CMD_SET_ROLE);
	int rc;

	if (!c)
		return -ENOMEM;
	c->role = role;
	rc = post(l, c);
	pthread_mutex_lock(&l->lock);
	if (rc == 0)
		*was = c->was;
	cmd_put(c);
	pthread_mutex_unlock(&l->lock);
	return rc;
}
