/*
 * lbd NFQUEUE workers: one thread per kernel queue.
 *
 * A worker receives up to LBD_BATCH packets with one recvmmsg(), runs each
 * through the engine, and returns every verdict of the batch in one
 * sendto(): the per-packet cost of crossing into userspace is what limits
 * throughput (docs/platform.md §4), so syscalls are per batch, not per packet.
 * Packets arrive with NFQA_CFG_F_GSO, so one may be a 64 KiB GSO segment
 * (docs/platform.md §3): every receive slot and the verdict buffer are sized
 * for that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lb_engine.h"
#include "lbd_capture.h"
#include "lbd_queue.h"
#include "lbd_takeover.h"
#include "lbd_seccomp.h"
#include "log.h"

#define LBD_BATCH 32				/* packets per recvmmsg */
#define SLOT_SIZE (65536 + 4096)		/* a GSO packet plus netlink headers */
#define TX_LIMIT (256 * 1024)			/* flush verdicts past this */
#define TX_SIZE (TX_LIMIT + SLOT_SIZE)		/* room for one more big verdict */

#define DEFER_SLOTS 4096
#define DEFER_MAX_LEN 512	/* SYN and SYN/ACK segments; never GSO */

/* A packet whose verdict waits for the peer to hold its connection. */
struct deferred {
	uint32_t id;
	uint16_t len;
	uint64_t ticket;
	uint64_t since_us;
	uint8_t data[DEFER_MAX_LEN];
};

struct lbd_queue {
	unsigned num;
	struct mnl_socket *nl;
	uint32_t portid;
	struct lb_engine *engine;
	struct lb_worker *worker;
	struct lbd_capture_tap *capture;
	struct lbd_takeover *takeover;	/* NULL: no probe */
	pthread_t thread;
	int started;
	sem_t filtered;			/* posted by the worker once its filter is in */
	int filter_rc;
	atomic_bool stop;
	struct lbd_queue_stats stats;

	/* Deferred packets, oldest first (tickets grow in arrival order). */
	pthread_mutex_t defer_lock;
	struct deferred *defer;
	size_t defer_head, defer_n;
	atomic_uint_fast64_t released;
	struct lbd_defer_stats dstats;	/* under defer_lock */
	char *dtx;			/* verdicts of released packets */

	struct mmsghdr msgs[LBD_BATCH];
	struct iovec iov[LBD_BATCH];
	char *rx;			/* LBD_BATCH slots of SLOT_SIZE */
	char *tx;			/* verdict batch */
};

/* Sends one configuration message and waits for the kernel's ack. */
static int config_send(struct lbd_queue *q, struct nlmsghdr *nlh)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(q->nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	return mnl_cb_run(buf, (size_t)n, 0, q->portid, NULL, NULL) < 0 ? -errno : 0;
}

static int configure(struct lbd_queue *q, unsigned maxlen, int fail_open)
{
	uint32_t flags = NFQA_CFG_F_GSO | (fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);

	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int err;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if ((err = config_send(q, nlh)) < 0)
		return err;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
	/* Fail-open: a full queue lets packets pass unqueued instead of
	 * dropping them (daemon.fail_open). */
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
	return config_send(q, nlh);
}

static int socket_options(struct lbd_queue *q)
{
	int fd = mnl_socket_get_fd(q->nl), one = 1, rcvbuf = 16 << 20, sndbuf = 4 << 20;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 250000 };

	/* Overruns are counted by the kernel (nfnetlink_queue's
	 * queue_dropped); an ENOBUFS error would only stop the batch. */
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* Netlink refuses a sendto larger than the send buffer (EMSGSIZE), and
	 * a verdict batch can reach TX_SIZE. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* The timeout lets the worker notice lbd_queue_stop(). */
	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

struct lbd_queue *lbd_queue_open(unsigned num, unsigned maxlen, int fail_open,
				 struct lb_engine *e, struct lbd_capture *cap)
{
	struct lbd_queue *q = calloc(1, sizeof(*q));
	int err = -ENOMEM;

	if (!q)
		goto fail;
	q->num = num;
	q->engine = e;
	q->capture = lbd_capture_tap(cap);
	pthread_mutex_init(&q->defer_lock, NULL);
	q->rx = malloc((size_t)LBD_BATCH * SLOT_SIZE);
	q->tx = malloc(TX_SIZE);
	q->dtx = malloc(TX_SIZE);
	q->defer = calloc(DEFER_SLOTS, sizeof(*q->defer));
	q->worker = lb_engine_worker_new(e);
	if (!q->rx || !q->tx || !q->dtx || !q->defer || !q->worker)
		goto fail;
	q->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!q->nl || mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto fail;
	}
	q->portid = mnl_socket_get_portid(q->nl);
	if ((err = configure(q, maxlen, fail_open)) < 0 || (err = socket_options(q) < 0 ? -errno : 0) < 0)
		goto fail;
	for (int i = 0; i < LBD_BATCH; i++) {
		q->iov[i] = (struct iovec){ q->rx + (size_t)i * SLOT_SIZE, SLOT_SIZE };
		q->msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &q->iov[i], .msg_iovlen = 1 };
	}
	return q;
fail:
	log_err("cannot open NFQUEUE %u: %s", num, strerror(-err));
	lbd_queue_close(q);
	return NULL;
}

/* Where one packet of a batch ended up. */
struct verdicts {
	struct lbd_queue *q;
	struct mnl_nlmsg_batch *batch;
	uint64_t now_ms;
};

/*
 * Sends the batch. Should the kernel refuse it whole (memory pressure), the
 * verdicts go one message at a time: a verdict that is never sent leaves its
 * packet stranded in the kernel queue for good.
 */
static void flush(struct verdicts *v)
{
	const char *p = mnl_nlmsg_batch_head(v->batch);
	size_t len = mnl_nlmsg_batch_size(v->batch);

	if (len && mnl_socket_sendto(v->q->nl, p, len) < 0) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)p;
		int left = (int)len;

		atomic_fetch_add(&v->q->stats.send_errors, 1);
		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
			if (mnl_socket_sendto(v->q->nl, nlh, nlh->nlmsg_len) < 0)
				atomic_fetch_add(&v->q->stats.verdicts_lost, 1);
	}
	mnl_nlmsg_batch_reset(v->batch);
}

static void put_verdict(struct verdicts *v, uint32_t id, enum lb_verdict verdict,
			const struct lb_packet *pkt)
{
	struct nlmsghdr *nlh = nfq_nlmsg_put(mnl_nlmsg_batch_current(v->batch),
					     NFQNL_MSG_VERDICT, v->q->num);

	nfq_nlmsg_verdict_put(nlh, (int)id, verdict == LB_VERDICT_ACCEPT ? NF_ACCEPT : NF_DROP);
	if (verdict == LB_VERDICT_ACCEPT && pkt->modified)
		nfq_nlmsg_verdict_put_pkt(nlh, pkt->data, pkt->len);
	/* Past the limit, send the batch without this message; the reset in
	 * flush() moves it to the head of the next batch. */
	if (!mnl_nlmsg_batch_next(v->batch))
		flush(v);
}

/* ---- zero-loss mode: held verdicts ---- */

/* Sends an accept verdict with its packet for each deferred entry taken. */
static void send_deferred(struct lbd_queue *q, const struct deferred *list, size_t n)
{
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(q->dtx, TX_LIMIT);

	for (size_t i = 0; i < n; i++) {
		struct nlmsghdr *nlh = nfq_nlmsg_put(mnl_nlmsg_batch_current(b),
						     NFQNL_MSG_VERDICT, q->num);

		nfq_nlmsg_verdict_put(nlh, (int)list[i].id, NF_ACCEPT);
		nfq_nlmsg_verdict_put_pkt(nlh, list[i].data, list[i].len);
		if (!mnl_nlmsg_batch_next(b)) {
			mnl_socket_sendto(q->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b));
			mnl_nlmsg_batch_reset(b);
		}
	}
	if (mnl_nlmsg_batch_size(b) &&
	    mnl_socket_sendto(q->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		atomic_fetch_add(&q->stats.verdicts_lost, 1);
	mnl_nlmsg_batch_stop(b);
}

/*
 * Takes the deferred entries from the head that are released (ticket at or
 * below `ticket`) or older than `deadline_us`, and forwards them. Runs under
 * defer_lock, which also serialises use of q->dtx.
 */
static void defer_pop(struct lbd_queue *q, uint64_t ticket, uint64_t deadline_us, uint64_t now)
{
	struct deferred *list = &q->defer[q->defer_head];
	size_t n = 0;

	while (q->defer_n && q->defer_head + n < DEFER_SLOTS) {
		const struct deferred *d = &list[n];
		uint64_t wait = now > d->since_us ? now - d->since_us : 0;

		if (d->ticket <= ticket) {
			q->dstats.released++;
		} else if (d->since_us <= deadline_us) {
			q->dstats.timeouts++;
		} else {
			break;
		}
		q->dstats.wait_us_sum += wait;
		if (wait > q->dstats.wait_us_max)
			q->dstats.wait_us_max = wait;
		n++;
		q->defer_n--;
	}
	if (n)
		send_deferred(q, list, n);
	q->defer_head = (q->defer_head + n) % DEFER_SLOTS;
	/* The ring wrapped: what is left starts again at slot 0. */
	if (q->defer_n && q->defer_head == 0 && n)
		defer_pop(q, ticket, deadline_us, now);
}

void lbd_queue_release(struct lbd_queue *q, uint64_t ticket)
{
	uint64_t seen = atomic_load(&q->released);

	while (ticket > seen && !atomic_compare_exchange_weak(&q->released, &seen, ticket))
		;
	pthread_mutex_lock(&q->defer_lock);
	defer_pop(q, ticket, 0, clock_mono_us());
	pthread_mutex_unlock(&q->defer_lock);
}

void lbd_queue_defer_expire(struct lbd_queue *q, uint32_t timeout_ms)
{
	uint64_t now = clock_mono_us();

	pthread_mutex_lock(&q->defer_lock);
	if (q->defer_n)
		defer_pop(q, atomic_load(&q->released), now - (uint64_t)timeout_ms * 1000u, now);
	pthread_mutex_unlock(&q->defer_lock);
}

void lbd_queue_defer_stats(struct lbd_queue *q, struct lbd_defer_stats *out)
{
	pthread_mutex_lock(&q->defer_lock);
	*out = q->dstats;
	pthread_mutex_unlock(&q->defer_lock);
}

/*
 * Holds an accepted packet until its ticket is released. Returns 0 when it
 * cannot be held (already released, too big, no room): send it now.
 */
static int defer_hold(struct lbd_queue *q, uint32_t id, const struct lb_packet *pkt)
{
	struct deferred *d;

	if (pkt->defer_ticket <= atomic_load(&q->released))
		return 0;
	pthread_mutex_lock(&q->defer_lock);
	if (q->defer_n == DEFER_SLOTS || pkt->len > DEFER_MAX_LEN) {
		q->dstats.overflow++;
		pthread_mutex_unlock(&q->defer_lock);
		return 0;
	}
	d = &q->defer[(q->defer_head + q->defer_n) % DEFER_SLOTS];
	d->id = id;
	d->len = (uint16_t)pkt->len;
	d->ticket = pkt->defer_ticket;
	d->since_us = clock_mono_us();
	memcpy(d->data, pkt->data, pkt->len);
	q->defer_n++;
	q->dstats.held++;
	/* A release that came between the check above and now missed us. */
	if (atomic_load(&q->released) >= d->ticket)
		defer_pop(q, atomic_load(&q->released), 0, d->since_us);
	pthread_mutex_unlock(&q->defer_lock);
	return 1;
}

/* One NFQNL_MSG_PACKET: run it through the engine and queue the verdict. */
static int on_packet(const struct nlmsghdr *nlh, void *arg)
{
	struct verdicts *v = arg;
	struct nlattr *attr[NFQA_MAX + 1] = { NULL };
	struct nfqnl_msg_packet_hdr *ph;
	struct lb_packet pkt = { 0 };
	uint32_t skbinfo = 0;
	enum lb_verdict verdict;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR] || !attr[NFQA_PAYLOAD] ||
	    mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(*ph)) {
		atomic_fetch_add(&v->q->stats.bad_messages, 1);
		return MNL_CB_OK;
	}
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	if (attr[NFQA_SKB_INFO])
		skbinfo = ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO]));
	pkt.data = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
	pkt.len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	pkt.flags = ((skbinfo & NFQA_SKB_CSUMNOTREADY) ? LB_PKT_F_CSUM_PARTIAL : 0) |
		    ((skbinfo & NFQA_SKB_GSO) ? LB_PKT_F_GSO : 0);
	pkt.hook = ph->hook == NF_INET_PRE_ROUTING ? LB_HOOK_PRE : LB_HOOK_POST;
	atomic_fetch_add_explicit(&v->q->stats.packets, 1, memory_order_relaxed);
	if (v->q->takeover && pkt.hook == LB_HOOK_PRE)
		lbd_takeover_seen(v->q->takeover);
	/* Before the engine, which rewrites pkt.data in place. */
	lbd_capture_packet(v->q->capture, LBD_CAPTURE_IN, pkt.data, pkt.len);
	verdict = lb_engine_packet(v->q->engine, v->q->worker, &pkt, v->now_ms);
	if (verdict == LB_VERDICT_ACCEPT) {
		lbd_capture_packet(v->q->capture, LBD_CAPTURE_OUT, pkt.data, pkt.len);
		if (v->q->takeover && pkt.hook == LB_HOOK_PRE)
			lbd_takeover_forwarded(v->q->takeover, pkt.data, pkt.len);
	}
	if (verdict == LB_VERDICT_ACCEPT && pkt.defer_ticket &&
	    defer_hold(v->q, ntohl(ph->packet_id), &pkt))
		return MNL_CB_OK;
	put_verdict(v, ntohl(ph->packet_id), verdict, &pkt);
	return MNL_CB_OK;
}

static void run_batch(struct lbd_queue *q, int n)
{
	struct mnl_nlmsg_batch *batch = mnl_nlmsg_batch_start(q->tx, TX_LIMIT);
	struct verdicts v = { q, batch, clock_mono_ms() };

	for (int i = 0; i < n; i++)
		mnl_cb_run(q->iov[i].iov_base, q->msgs[i].msg_len, 0, q->portid, on_packet, &v);
	flush(&v);
	mnl_nlmsg_batch_stop(batch);
	atomic_fetch_add_explicit(&q->stats.batches, 1, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
	struct lbd_queue *q = arg;
	int fd = mnl_socket_get_fd(q->nl);
	char err[160];

	/* Before the first packet: from here on only the allow-list. */
	q->filter_rc = lbd_seccomp_worker(err, sizeof(err));
	if (q->filter_rc < 0)
		log_err("queue %u: %s", q->num, err);
	sem_post(&q->filtered);
	if (q->filter_rc < 0)
		return NULL;

	while (!atomic_load(&q->stop)) {
		/* Blocks for the first packet (up to SO_RCVTIMEO), then takes
		 * whatever else is already queued. */
		int n = recvmmsg(fd, q->msgs, LBD_BATCH, MSG_WAITFORONE, NULL);

		if (n > 0) {
			run_batch(q, n);
		} else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOBUFS) {
			atomic_fetch_add(&q->stats.recv_errors, 1);
		}
	}
	return NULL;
}

int lbd_queue_start(struct lbd_queue *q)
{
	int err;

	if (sem_init(&q->filtered, 0, 0) < 0)
		return -errno;
	err = pthread_create(&q->thread, NULL, worker_main, q);
	if (err) {
		sem_destroy(&q->filtered);
		return -err;
	}
	while (sem_wait(&q->filtered) < 0 && errno == EINTR)
		;
	sem_destroy(&q->filtered);
	if (q->filter_rc < 0) {
		pthread_join(q->thread, NULL);
		return -EPERM;
	}
	q->started = 1;
	return 0;
}

void lbd_queue_stop(struct lbd_queue *q)
{
	if (!q || !q->started)
		return;
	atomic_store(&q->stop, true);
	pthread_join(q->thread, NULL);
	q->started = 0;
}

void lbd_queue_close(struct lbd_queue *q)
{
	if (!q)
		return;
	lbd_queue_stop(q);
	if (q->nl)
		mnl_socket_close(q->nl);	/* the kernel unbinds the queue */
	free(q->rx);
	free(q->tx);
	free(q->dtx);
	free(q->defer);
	pthread_mutex_destroy(&q->defer_lock);
	free(q);
}

const struct lbd_queue_stats *lbd_queue_stats(const struct lbd_queue *q)
{
	return &q->stats;
}

void lbd_queue_set_takeover(struct lbd_queue *q, struct lbd_takeover *t)
{
	q->takeover = t;
}

unsigned lbd_queue_num(const struct lbd_queue *q)
{
	return q->num;
}
