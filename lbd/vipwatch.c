/*
 * The VIP watcher (lbd_vipwatch.h): RTM_NEWADDR / RTM_DELADDR through
 * libmnl. A notification names one address: IFA_LOCAL for IPv4 (IFA_ADDRESS
 * is the peer on point-to-point links), IFA_ADDRESS for IPv6.
 */
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lb_addr.h"
#include "lb_engine.h"
#include "lbd_vipwatch.h"
#include "log.h"

#define MAX_VIPS 256

struct lbd_vipwatch {
	struct mnl_socket *nl;
	pthread_mutex_t lock;		/* vips: the main thread sets, the loop reads */
	struct lb_addr vips[MAX_VIPS];
	size_t nvips;
	uint8_t buf[8192];		/* MNL_SOCKET_BUFFER_SIZE for 4 KiB pages */
};

void lbd_vipwatch_set(struct lbd_vipwatch *w, const struct lb_service_conf *svcs, size_t n)
{
	pthread_mutex_lock(&w->lock);
	w->nvips = 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		while (j < w->nvips && !lb_addr_equal(&w->vips[j], &svcs[i].vip))
			j++;
		if (j == w->nvips && w->nvips < MAX_VIPS)
			w->vips[w->nvips++] = svcs[i].vip;
	}
	pthread_mutex_unlock(&w->lock);
}

struct lbd_vipwatch *lbd_vipwatch_open(const struct lb_service_conf *svcs, size_t n)
{
	struct lbd_vipwatch *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	w->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!w->nl || mnl_socket_bind(w->nl, (1u << (RTNLGRP_IPV4_IFADDR - 1)) |
					    (1u << (RTNLGRP_IPV6_IFADDR - 1)),
				      MNL_SOCKET_AUTOPID) < 0) {
		err = errno;
		lbd_vipwatch_close(w);
		errno = err;
		return NULL;
	}
	lbd_vipwatch_set(w, svcs, n);
	return w;
}

void lbd_vipwatch_close(struct lbd_vipwatch *w)
{
	if (!w)
		return;
	if (w->nl)
		mnl_socket_close(w->nl);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int lbd_vipwatch_fd(const struct lbd_vipwatch *w)
{
	return mnl_socket_get_fd(w->nl);
}

static int watched(struct lbd_vipwatch *w, const struct lb_addr *a)
{
	int hit = 0;

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->nvips && !hit; i++)
		hit = lb_addr_equal(&w->vips[i], a);
	pthread_mutex_unlock(&w->lock);
	return hit;
}

struct scan {
	struct lbd_vipwatch *w;
	int events;
};

/* The address of one RTM_NEWADDR / RTM_DELADDR into a, or -1. */
static int msg_addr(const struct nlmsghdr *nlh, struct lb_addr *a)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr, *want = NULL;
	size_t size;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return -1;
	size = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
	if (!size)
		return -1;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		uint16_t type = mnl_attr_get_type(attr);

		if (mnl_attr_get_payload_len(attr) != size)
			continue;
		if (type == IFA_LOCAL || (type == IFA_ADDRESS && !want))
			want = attr;
	}
	if (!want)
		return -1;
	memset(a, 0, sizeof(*a));
	a->family = ifa->ifa_family;
	memcpy(a->bytes, mnl_attr_get_payload(want), size);
	return 0;
}

/*
 * ARRIVED stays set only while no departure came after it: a VIP added and
 * removed again before the loop read both (keepalived flapping, or an
 * operator's test) is not here, and taking over for it would make a master
 * without the address, or leave a deferred takeover pending for a VIP that
 * left (then a peer that falls silent later would promote us without it).
 */
static int on_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct scan *s = arg;
	struct lb_addr a;

	if ((nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR) ||
	    msg_addr(nlh, &a) < 0 || !watched(s->w, &a))
		return MNL_CB_OK;
	if (nlh->nlmsg_type == RTM_NEWADDR)
		s->events |= LBD_VIP_ARRIVED;
	else
		s->events = (s->events & ~LBD_VIP_ARRIVED) | LBD_VIP_LEFT;
	return MNL_CB_OK;
}

static void scan_buf(struct scan *s, const void *buf, size_t len)
{
	mnl_cb_run(buf, len, 0, 0, on_msg, s);
}

int lbd_vipwatch_parse(struct lbd_vipwatch *w, const void *buf, size_t len)
{
	struct scan s = { w, 0 };

	scan_buf(&s, buf, len);
	return s.events;
}

int lbd_vipwatch_read(struct lbd_vipwatch *w)
{
	struct scan s = { w, 0 };

	for (int round = 0; round < 64; round++) {
		ssize_t n = mnl_socket_recvfrom(w->nl, w->buf, sizeof(w->buf));

		if (n < 0) {
			/* ENOBUFS: notifications were lost. Never guess an
			 * arrival from that: a backup that promoted itself
			 * without the VIPs would be a second master.
			 * keepalived's notify still comes. */
			if (errno == ENOBUFS)
				log_warn("vipwatch: address notifications lost; "
					 "leaving this takeover to keepalived's notify");
			else if (errno != EAGAIN && errno != EINTR)
				log_debug("vipwatch: %s", strerror(errno));
			break;
		}
		scan_buf(&s, w->buf, (size_t)n);
	}
	return s.events;
}
