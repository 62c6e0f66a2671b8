/*
 * The VIP watcher's parser (lbd/vipwatch.c): which rtnetlink address
 * messages are an arrival or a departure of a watched VIP.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lbd/vipwatch.c"

struct fx {
	struct lbd_vipwatch *w;
	uint8_t buf[4096];
	size_t len;
};

/* A watcher without a socket, over VIPs 198.18.0.100 and 2001:db8::100. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct lb_service_conf svcs[3] = { { .port = 80 }, { .port = 443 }, { .port = 80 } };

	assert_non_null(f);
	f->w = calloc(1, sizeof(*f->w));
	assert_non_null(f->w);
	pthread_mutex_init(&f->w->lock, NULL);
	assert_int_equal(lb_addr_parse(&svcs[0].vip, "198.18.0.100"), 0);
	assert_int_equal(lb_addr_parse(&svcs[1].vip, "198.18.0.100"), 0);
	assert_int_equal(lb_addr_parse(&svcs[2].vip, "2001:db8::100"), 0);
	lbd_vipwatch_set(f->w, svcs, 3);
	assert_int_equal(f->w->nvips, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	lbd_vipwatch_close(f->w);
	free(f);
	return 0;
}

/* Appends one address message: type, family, and up to two attributes
 * (type 0: left out). */
static void put(struct fx *f, uint16_t type, uint8_t family, uint16_t a1, const char *addr1,
		uint16_t a2, const char *addr2)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf + f->len);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	uint8_t bytes[16];

	nlh->nlmsg_type = type;
	ifa->ifa_family = family;
	ifa->ifa_prefixlen = family == AF_INET ? 24 : 64;
	if (a1) {
		assert_int_equal(inet_pton(family, addr1, bytes), 1);
		mnl_attr_put(nlh, a1, family == AF_INET ? 4 : 16, bytes);
	}
	if (a2) {
		assert_int_equal(inet_pton(family, addr2, bytes), 1);
		mnl_attr_put(nlh, a2, family == AF_INET ? 4 : 16, bytes);
	}
	f->len += nlh->nlmsg_len;
	assert_true(f->len < sizeof(f->buf) - 256);
}

static int parse(struct fx *f)
{
	int events = lbd_vipwatch_parse(f->w, f->buf, f->len);

	f->len = 0;
	return events;
}

static void test_ipv4_arrival_and_departure(void **state)
{
	struct fx *f = *state;

	put(f, RTM_NEWADDR, AF_INET, IFA_ADDRESS, "198.18.0.100", IFA_LOCAL, "198.18.0.100");
	assert_int_equal(parse(f), LBD_VIP_ARRIVED);
	put(f, RTM_DELADDR, AF_INET, IFA_ADDRESS, "198.18.0.100", IFA_LOCAL, "198.18.0.100");
	assert_int_equal(parse(f), LBD_VIP_LEFT);
}

static void test_ipv6_arrival(void **state)
{
	struct fx *f = *state;

	put(f, RTM_NEWADDR, AF_INET6, IFA_ADDRESS, "2001:db8::100", 0, NULL);
	assert_int_equal(parse(f), LBD_VIP_ARRIVED);
}

/* Other addresses, and a point-to-point link whose peer (IFA_ADDRESS) is
 * the VIP while our own address (IFA_LOCAL) is not: nothing. */
static void test_not_ours(void **state)
{
	struct fx *f = *state;

	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.2", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET6, IFA_ADDRESS, "2001:db8::2", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET, IFA_ADDRESS, "198.18.0.100", IFA_LOCAL, "198.18.9.9");
	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.9.9", IFA_ADDRESS, "198.18.0.100");
	assert_int_equal(parse(f), 0);
}

/* Several messages in one read: every event counts. */
static void test_batch(void **state)
{
	struct fx *f = *state;

	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.2", 0, NULL);
	put(f, RTM_DELADDR, AF_INET6, IFA_ADDRESS, "2001:db8::100", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	assert_int_equal(parse(f), LBD_VIP_ARRIVED | LBD_VIP_LEFT);
}

/* A VIP that came and left again before the loop read: not an arrival
 * (nothing to take over); one that left and came back: an arrival. */
static void test_came_and_left(void **state)
{
	struct fx *f = *state;

	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET6, IFA_ADDRESS, "2001:db8::100", 0, NULL);
	put(f, RTM_DELADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.2", 0, NULL);
	assert_int_equal(parse(f), LBD_VIP_LEFT);
	put(f, RTM_DELADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	assert_int_equal(parse(f), LBD_VIP_ARRIVED | LBD_VIP_LEFT);
}

/* An attribute of the wrong size, a message too short for its header, an
 * unknown family: ignored, never read past. */
static void test_malformed(void **state)
{
	struct fx *f = *state;
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	uint8_t six[6] = { 198, 18, 0, 100, 0, 0 };

	nlh = mnl_nlmsg_put_header(f->buf);
	nlh->nlmsg_type = RTM_NEWADDR;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	mnl_attr_put(nlh, IFA_LOCAL, sizeof(six), six);
	f->len = nlh->nlmsg_len;
	assert_int_equal(parse(f), 0);

	nlh = mnl_nlmsg_put_header(f->buf);
	nlh->nlmsg_type = RTM_NEWADDR;
	f->len = nlh->nlmsg_len;	/* no ifaddrmsg at all */
	assert_int_equal(parse(f), 0);

	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	((struct ifaddrmsg *)mnl_nlmsg_get_payload((struct nlmsghdr *)f->buf))->ifa_family = AF_UNIX;
	assert_int_equal(parse(f), 0);
}

/* A reload that drops the service: its VIP is no longer watched. */
static void test_reload(void **state)
{
	struct fx *f = *state;
	struct lb_service_conf svc = { .port = 80 };

	assert_int_equal(lb_addr_parse(&svc.vip, "2001:db8::100"), 0);
	lbd_vipwatch_set(f->w, &svc, 1);
	put(f, RTM_NEWADDR, AF_INET, IFA_LOCAL, "198.18.0.100", 0, NULL);
	assert_int_equal(parse(f), 0);
	put(f, RTM_NEWADDR, AF_INET6, IFA_ADDRESS, "2001:db8::100", 0, NULL);
	assert_int_equal(parse(f), LBD_VIP_ARRIVED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ipv4_arrival_and_departure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_arrival, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_came_and_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
