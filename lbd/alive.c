/*
 * The liveness link (lbd_alive.h): TUNSETIFF on /dev/net/tun, then
 * rtnetlink (libmnl) for the rest. The link never carries a packet: it has no
 * address and no route, and IPv6 address generation is off before it comes
 * up, so the kernel sends it no router solicitation or MLD report either.
 */
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lbd_alive.h"

/* One RTM_NEWLINK change of link index: flags, and IPv6 address
 * generation off when gen_none. Returns 0 or -errno. */
static int set_link(unsigned index, unsigned flags, int gen_none)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	unsigned seq = (unsigned)time(NULL);
	int rc = 0;

	if (!nl)
		return -errno;
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)index;
	ifi->ifi_flags = flags;
	ifi->ifi_change = IFF_UP;
	if (gen_none) {
		struct nlattr *spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
		struct nlattr *v6 = mnl_attr_nest_start(nlh, AF_INET6);

		mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
		mnl_attr_nest_end(nlh, v6);
		mnl_attr_nest_end(nlh, spec);
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
	} else {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0 || mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl),
					NULL, NULL) < 0)
			rc = -errno;
	}
	mnl_socket_close(nl);
	return rc;
}

int lbd_alive_open(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	unsigned index;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "/dev/net/tun: %s", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* EBUSY: another process (a second lbd) holds a link of that name. */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errlen, "link %s: %s", name,
			 errno == EBUSY ? "held by another process (another lbd?)" :
			 errno == EINVAL ? "the name belongs to a link that is not ours" :
			 strerror(errno));
		close(fd);
		return -1;
	}
	index = if_nametoindex(name);
	/* Address generation first: once up, it would already have made a
	 * link-local address. An old kernel without it is no reason to fail. */
	if (index)
		set_link(index, 0, 1);
	rc = index ? set_link(index, IFF_UP, 0) : -errno;
	if (rc < 0) {
		snprintf(err, errlen, "link %s: cannot set it up: %s", name, strerror(-rc));
		close(fd);
		return -1;
	}
	return fd;
}
