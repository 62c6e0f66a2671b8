/*
 * lbd's sync channel (lbd_sync.h): the UDP socket to the peer, the sync node
 * over the engine, and the node's callbacks. It runs on the engine's control
 * thread (the loop), which polls our descriptors and calls lbd_sync_run():
 * the node imports into the engine, and that must happen on the thread that
 * ticks it. Workers reach us only through the node's queue and the wake
 * eventfd; the main thread reads readiness and counters under node_lock,
 * which the loop holds whenever it drives the node.
 */
#include <errno.h>
#include <stddef.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_epoch.h"
#include "lbd_key.h"
#include "lbd_queue.h"
#include "lbd_sync.h"
#include "log.h"
#include "sockaddr_util.h"
#include "sync_node.h"

#define RX_BATCH 64
#define RX_SLOT 2048
#define DEFER_GRID_MS 5		/* deferred packets time out on this grid at worst */
#define BAD_HMAC_LOG_MS 10000	/* at most one authentication-failure line this often */

#define WATCH_MS 200			/* how often the events below are looked for */

/* What the log says of the sync channel: changes, seen in the node's stats. */
struct sync_watch {
	uint64_t next_ms;
	uint64_t peer_alive, peer_node, resyncs_requested, resyncs_done, resyncs_served,
		 peer_restarts, foreign_node;
};

struct lbd_sync {
	struct lb_sync_conf conf;	/* ours: a reload rewrites main's */
	struct lb_engine *engine;
	struct lbd_queue *queues[LB_ENGINE_MAX_WORKERS];
	unsigned nqueues;
	int fd;
	int wake_fd;			/* written by workers (defer mode) */
	atomic_uint_fast64_t woken_us;	/* the oldest wake not yet run, 0: none */
	uint64_t wakes, wake_total_us, wake_max_us;	/* under node_lock: from a
					 * worker's wake to the loop's run (an
					 * urgent record's wait to be sent) */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct lb_worker *worker;	/* counts the imports */
	pthread_mutex_t node_lock;
	struct sync_node *node;
	uint64_t foreign_source;	/* under node_lock: datagrams not from the peer,
					 * dropped before the HMAC */
	uint64_t send_errors;		/* under node_lock */
	uint8_t key_digest[crypto_generichash_BYTES];	/* of the key in use; main thread */
	enum sync_key_state key_state;	/* under node_lock: as last logged */
	uint64_t bad_hmac_logged;	/* under node_lock: bad_hmac at the last line */
	uint64_t bad_hmac_log_ms;	/* under node_lock: when that line went out */
	struct sync_watch watch;	/* under node_lock: the events last seen */
	uint64_t epoch;			/* ours, this start */
	uint8_t rx[RX_BATCH][RX_SLOT];
	struct mmsghdr msgs[RX_BATCH];
	struct iovec iov[RX_BATCH];
	struct sockaddr_storage from[RX_BATCH];
};

static int open_socket(struct lbd_sync *s, const struct lb_sync_conf *sc)
{
	struct sockaddr_storage local;
	socklen_t len = sockaddr_build(&local, sc->local.family, sc->local.bytes, sc->port);
	int fd = socket(sc->local.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int buf = 4 << 20;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf));
	if (sc->interface[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, sc->interface, strlen(sc->interface)) < 0) {
		log_err("sync: cannot bind to interface %s: %s", sc->interface, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&local, len) < 0) {
		log_err("sync: cannot bind the sync socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	s->peer_len = sockaddr_build(&s->peer, sc->peer.family, sc->peer.bytes, sc->port);
	s->fd = fd;
	return 0;
}

/* ---- the node's callbacks ---- */

static void op_send(void *arg, const uint8_t *buf, size_t len)
{
	struct lbd_sync *s = arg;

	/* Never block: a full socket buffer loses the datagram, and the
	 * peer's Nack brings it back from the ring. */
	if (sendto(s->fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&s->peer, s->peer_len) < 0)
		s->send_errors++;
}

static void op_wake(void *arg)
{
	struct lbd_sync *s = arg;
	uint64_t one = 1, none = 0;

	atomic_compare_exchange_strong(&s->woken_us, &none, clock_mono_us());
	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("sync: wake: %s", strerror(errno));
}

static void op_released(void *arg, uint64_t ticket)
{
	struct lbd_sync *s = arg;

	for (unsigned i = 0; i < s->nqueues; i++)
		lbd_queue_release(s->queues[i], ticket);
}

static const struct sync_node_ops node_ops = {
	.send = op_send, .wake = op_wake, .released = op_released,
};

/* ---- the control thread's turn ---- */

static void receive(struct lbd_sync *s, uint64_t now)
{
	for (int round = 0; round < 8; round++) {
		int n;

		for (int i = 0; i < RX_BATCH; i++) {
			s->iov[i] = (struct iovec){ s->rx[i], RX_SLOT };
			s->msgs[i].msg_hdr = (struct msghdr){
				.msg_name = &s->from[i], .msg_namelen = sizeof(s->from[i]),
				.msg_iov = &s->iov[i], .msg_iovlen = 1 };
		}
		n = recvmmsg(s->fd, s->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			/* Only the peer's address and port get as far as the
			 * HMAC: a stranger costs a compare, not a hash. */
			if (!sockaddr_same_host(&s->from[i], &s->peer) ||
			    sockaddr_port(&s->from[i]) != s->conf.port) {
				s->foreign_source++;
				continue;
			}
			sync_node_input(s->node, s->rx[i], s->msgs[i].msg_len, now);
		}
		if (n < RX_BATCH)
			return;
	}
}

void lbd_sync_poll_fds(struct lbd_sync *s, struct pollfd p[static LBD_SYNC_POLLFDS])
{
	p[0] = (struct pollfd){ s->fd, POLLIN, 0 };
	p[1] = (struct pollfd){ s->wake_fd, POLLIN, 0 };
}

uint64_t lbd_sync_next_ms(struct lbd_sync *s, uint64_t now_ms)
{
	uint64_t next;

	pthread_mutex_lock(&s->node_lock);
	next = sync_node_next_ms(s->node, now_ms);
	pthread_mutex_unlock(&s->node_lock);
	if (s->conf.defer && next > now_ms + DEFER_GRID_MS)
		next = now_ms + DEFER_GRID_MS;
	return next;
}

/*
 * A peer with another key is otherwise only a counter. One line per
 * BAD_HMAC_LOG_MS at most, however many datagrams fail. Under node_lock.
 */
static void log_auth_failures(struct lbd_sync *s, uint64_t now_ms)
{
	uint64_t bad = sync_link_stats(sync_node_link(s->node))->bad_hmac;

	if (bad == s->bad_hmac_logged || now_ms - s->bad_hmac_log_ms < BAD_HMAC_LOG_MS)
		return;
	log_warn("sync: %llu datagrams failed authentication since the last report (another "
		 "key? a rotation gives both nodes the new key within key_grace)",
		 (unsigned long long)(bad - s->bad_hmac_logged));
	s->bad_hmac_logged = bad;
	s->bad_hmac_log_ms = now_ms;
}

/* Under node_lock: says when a key rotation moves on. */
static void log_key_state(struct lbd_sync *s)
{
	enum sync_key_state now = sync_link_key_state(sync_node_link(s->node));

	if (now == s->key_state)
		return;
	if (now == SYNC_KEY_SWITCHED)
		log_info("sync: the peer has the new key; sending with it");
	else if (now == SYNC_KEY_STEADY)
		log_info("sync: key rotation over; only the new key is accepted");
	s->key_state = now;
}

static void watch_stat(void *arg, const char *name, uint64_t v)
{
	struct sync_watch *w = arg;
	static const struct { const char *name; size_t off; } f[] = {
		{ "peer_alive", offsetof(struct sync_watch, peer_alive) },
		{ "peer_node", offsetof(struct sync_watch, peer_node) },
		{ "resyncs_requested", offsetof(struct sync_watch, resyncs_requested) },
		{ "resyncs_done", offsetof(struct sync_watch, resyncs_done) },
		{ "resyncs_served", offsetof(struct sync_watch, resyncs_served) },
		{ "peer_restarts", offsetof(struct sync_watch, peer_restarts) },
		{ "foreign_node", offsetof(struct sync_watch, foreign_node) },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(name, f[i].name) == 0)
			*(uint64_t *)((char *)w + f[i].off) = v;
}

/*
 * One log line per event: peer up/down, resync start/end, a resync served,
 * a peer restart, datagrams of a foreign node id (bad HMACs: see
 * log_auth_failures()). Node lock held.
 */
static void watch_events(struct lbd_sync *s, uint64_t now_ms)
{
	struct sync_watch *w = &s->watch, n = *w;

	if (now_ms < w->next_ms)
		return;
	sync_node_stats(s->node, now_ms, watch_stat, &n);
	n.next_ms = now_ms + WATCH_MS;
	/* The first reading compares with zeros: a peer already up at our
	 * first look is logged as coming up. */
	if (n.peer_alive != w->peer_alive)
		log_info("sync: peer %s (node %llu)", n.peer_alive ? "up" : "down",
			 (unsigned long long)n.peer_node);
	if (n.resyncs_requested > w->resyncs_requested)
		log_info("sync: resync started: asked the peer for its table");
	if (n.resyncs_done > w->resyncs_done)
		log_info("sync: resync done");
	if (n.resyncs_served > w->resyncs_served)
		log_info("sync: sent the peer our table (resync served)");
	if (n.peer_restarts > w->peer_restarts)
		log_warn("sync: the peer restarted");
	if (n.foreign_node > w->foreign_node)
		log_warn("sync: %llu datagrams from a node id that is neither ours nor the "
			 "peer's", (unsigned long long)(n.foreign_node - w->foreign_node));
	*w = n;
}

/*
 * How long the last wake waited for the loop to run the node (node_lock
 * held): an urgent record (a state change, a max_lag burst) is sent then,
 * and what dies with the active is what waits here (docs/drills.md, the
 * replay's model).
 */
static void note_wake(struct lbd_sync *s)
{
	uint64_t at = atomic_exchange(&s->woken_us, 0), d;

	if (!at)
		return;
	d = clock_mono_us() - at;
	s->wakes++;
	s->wake_total_us += d;
	if (d > s->wake_max_us)
		s->wake_max_us = d;
}

void lbd_sync_run(struct lbd_sync *s, const struct pollfd p[static LBD_SYNC_POLLFDS],
		  uint64_t now_ms)
{
	if (p[1].revents & POLLIN) {
		uint64_t v;

		if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("sync: wake: %s", strerror(errno));
	}
	pthread_mutex_lock(&s->node_lock);
	if (p[0].revents & POLLIN)
		receive(s, now_ms);
	sync_node_tick(s->node, now_ms);
	note_wake(s);
	log_auth_failures(s, now_ms);
	log_key_state(s);
	watch_events(s, now_ms);
	pthread_mutex_unlock(&s->node_lock);
	for (unsigned i = 0; i < s->nqueues; i++)
		lbd_queue_defer_expire(s->queues[i], s->conf.defer_timeout_ms);
}

/* ---- setup ---- */

static int load_key(const struct lb_sync_conf *sc, uint8_t key[SYNC_KEY_MAX])
{
	char err[256];
	int len = lbd_key_load(sc->key_file, key, err, sizeof(err));

	if (len < 0)
		log_err("sync: %s", err);
	return len;
}

/* This start's epoch: the persisted counter plus one, never the clock (a
 * clock stepped back would give an epoch the peer refuses as stale). */
static int next_epoch(const struct lb_sync_conf *sc, uint64_t *epoch)
{
	char err[512];

	if (lbd_epoch_next(sc->state_file, epoch, err, sizeof(err)) < 0) {
		log_err("sync: epoch: %s", err);
		return -1;
	}
	return 0;
}

static struct sync_node *make_node(struct lbd_sync *s, const struct lb_sync_conf *sc)
{
	uint8_t key[SYNC_KEY_MAX];
	int key_len = load_key(sc, key);
	uint64_t epoch = 0;
	struct sync_node_conf nc = {
		.link = {
			.node_id = sc->node_id, .peer_id = sc->peer_id, .key = key,
			.key_len = key_len > 0 ? (size_t)key_len : 0, .ring = sc->ring,
			.mtu = 1400, .heartbeat_ms = sc->heartbeat_ms, .nack_delay_ms = 2,
			.nack_retry_ms = 20, .peer_timeout_ms = sc->peer_timeout_ms,
		},
		.resync_timeout_ms = sc->resync_timeout_ms,
		.stale_ms = sc->stale_after_ms,
		.flush_ms = 2,
		.defer = sc->defer,
	};
	struct sync_node *n;

	if (key_len < 0 || next_epoch(sc, &epoch) < 0) {
		memset(key, 0, sizeof(key));
		return NULL;
	}
	crypto_generichash(s->key_digest, sizeof(s->key_digest), key, (size_t)key_len, NULL, 0);
	nc.link.epoch = epoch;
	s->epoch = epoch;
	n = sync_node_new(&nc, s->engine, s->worker, &node_ops, s, clock_mono_ms());
	memset(key, 0, sizeof(key));
	if (!n)
		log_err("sync: cannot create the sync node: %s", strerror(errno));
	return n;
}

struct lbd_sync *lbd_sync_open(const struct lb_sync_conf *sc, struct lb_engine *e,
			       struct lbd_queue *const *queues, unsigned nqueues)
{
	struct lb_repl_conf rc = { .interval_ms = sc->interval_ms, .defer = sc->defer,
				   .max_lag = sc->max_lag };
	struct lbd_sync *s;

	if (nqueues > LB_ENGINE_MAX_WORKERS) {
		log_err("sync: %u queues, at most %d", nqueues, LB_ENGINE_MAX_WORKERS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->conf = *sc;
	s->engine = e;
	for (unsigned i = 0; i < nqueues; i++)
		s->queues[i] = queues[i];
	s->nqueues = nqueues;
	s->fd = -1;
	pthread_mutex_init(&s->node_lock, NULL);
	s->worker = lb_engine_worker_new(e);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!s->worker || s->wake_fd < 0 || open_socket(s, sc) < 0 ||
	    !(s->node = make_node(s, sc)))
		goto fail;
	lb_engine_set_role(e, LB_ROLE_BACKUP);
	lb_engine_set_repl(e, sync_node_repl_ops(), s->node, &rc);
	sync_node_start(s->node, clock_mono_ms());
	log_info("sync: node %u epoch %llu on port %u, peer %u at %s, interval %u ms%s",
		 sc->node_id, (unsigned long long)s->epoch, sc->port, sc->peer_id,
		 lb_addr_format(&sc->peer, (char[LB_ADDR_STRLEN]){ 0 }, LB_ADDR_STRLEN),
		 sc->interval_ms, sc->defer ? ", defer" : "");
	return s;
fail:
	lbd_sync_close(s);
	return NULL;
}

void lbd_sync_close(struct lbd_sync *s)
{
	if (!s)
		return;
	if (s->node) {
		lb_engine_set_repl(s->engine, NULL, NULL, NULL);
		sync_node_free(s->node);
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_mutex_destroy(&s->node_lock);
	free(s);
}

int lbd_sync_rekey(struct lbd_sync *s, char *msg, size_t len)
{
	uint8_t key[SYNC_KEY_MAX], digest[crypto_generichash_BYTES];
	char err[256];
	int key_len = lbd_key_load(s->conf.key_file, key, err, sizeof(err)), rc;

	if (key_len < 0) {
		snprintf(msg, len, "sync key not changed: %s", err);
		return -1;
	}
	crypto_generichash(digest, sizeof(digest), key, (size_t)key_len, NULL, 0);
	if (sodium_memcmp(digest, s->key_digest, sizeof(digest)) == 0) {
		sodium_memzero(key, sizeof(key));
		snprintf(msg, len, "sync key unchanged");
		return 0;
	}
	pthread_mutex_lock(&s->node_lock);
	rc = sync_link_set_key(sync_node_link(s->node), key, (size_t)key_len,
			       s->conf.key_grace_s * 1000, clock_mono_ms());
	if (rc == 0)
		s->key_state = SYNC_KEY_OFFERED;
	pthread_mutex_unlock(&s->node_lock);
	sodium_memzero(key, sizeof(key));
	if (rc < 0) {
		snprintf(msg, len, "sync key not changed: %s", strerror(-rc));
		return -1;
	}
	memcpy(s->key_digest, digest, sizeof(digest));
	snprintf(msg, len, "sync key: new key from %s, the old one accepted for %u s more",
		 s->conf.key_file, s->conf.key_grace_s);
	return 1;
}

void lbd_sync_set_role(struct lbd_sync *s, enum lb_role role)
{
	pthread_mutex_lock(&s->node_lock);
	sync_node_set_role(s->node, role);
	pthread_mutex_unlock(&s->node_lock);
}

int lbd_sync_takeover_ok(struct lbd_sync *s, uint64_t now_ms, char *why, size_t len)
{
	struct sync_peer_status peer;
	uint64_t silent_ms = 3 * (uint64_t)s->conf.heartbeat_ms;
	int ok;

	pthread_mutex_lock(&s->node_lock);
	ok = sync_node_ready(s->node, now_ms, why, len);
	sync_link_peer(sync_node_link(s->node), now_ms, &peer);
	pthread_mutex_unlock(&s->node_lock);
	if (ok && peer.role == SYNC_ROLE_MASTER && peer.last_heard_ms &&
	    now_ms < peer.last_heard_ms + silent_ms) {
		snprintf(why, len, "the peer is master and was heard %llu ms ago",
			 (unsigned long long)(now_ms - peer.last_heard_ms));
		ok = 0;
	}
	return ok;
}

uint64_t lbd_sync_peer_silent_ms(struct lbd_sync *s, uint64_t now_ms)
{
	struct sync_peer_status peer;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->node_lock);
	sync_link_peer(sync_node_link(s->node), now_ms, &peer);
	pthread_mutex_unlock(&s->node_lock);
	return peer.last_heard_ms && now_ms > peer.last_heard_ms ? now_ms - peer.last_heard_ms : 0;
}

int lbd_sync_ready(struct lbd_sync *s, char *why, size_t len)
{
	int ready;

	pthread_mutex_lock(&s->node_lock);
	ready = sync_node_ready(s->node, clock_mono_ms(), why, len);
	pthread_mutex_unlock(&s->node_lock);
	return ready;
}

static void print_stat(void *arg, const char *name, uint64_t value)
{
	fprintf(arg, "sync_%s %llu\n", name, (unsigned long long)value);
}

void lbd_sync_print(struct lbd_sync *s, FILE *out)
{
	pthread_mutex_lock(&s->node_lock);
	sync_node_stats(s->node, clock_mono_ms(), print_stat, out);
	fprintf(out, "sync_foreign_source %llu\nsync_send_errors %llu\nsync_key_state %d\n",
		(unsigned long long)s->foreign_source, (unsigned long long)s->send_errors,
		(int)sync_link_key_state(sync_node_link(s->node)));
	fprintf(out, "sync_wakes %llu\nsync_wake_avg_us %llu\nsync_wake_max_us %llu\n",
		(unsigned long long)s->wakes,
		(unsigned long long)(s->wakes ? s->wake_total_us / s->wakes : 0),
		(unsigned long long)s->wake_max_us);
	pthread_mutex_unlock(&s->node_lock);
}
