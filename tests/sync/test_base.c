/*
 * sync_base: the sender finds a connection's Open while the peer can still
 * resolve it (its last `window` Opens, since the peer last forgot them all)
 * and never after; the receiver resolves a Change against its Open, holds
 * one that comes first (the newest of them), and calls one whose Open has
 * left the window lost.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sync_base.h"

#define WINDOW 8

static struct lb_conn_state conn(uint16_t cport, uint64_t created_us)
{
	struct lb_conn_state st;

	memset(&st, 0, sizeof(st));
	lb_addr_parse(&st.orig.src, "198.18.0.10");
	lb_addr_parse(&st.orig.dst, "198.18.0.100");
	st.orig.sport = cport;
	st.orig.dport = 80;
	st.created_us = created_us;
	st.version = 1;
	st.tcp.state = LB_TCP_ESTABLISHED;
	return st;
}

static void test_tx_finds_opens_inside_the_window(void **state)
{
	struct sync_base_tx *t = sync_base_tx_new(WINDOW);
	struct lb_conn_state first = conn(1000, 5), later = conn(1000, 6);
	uint64_t id = 0;

	(void)state;
	assert_null(sync_base_tx_new(6));		/* not a power of two */
	assert_null(sync_base_tx_find(t, &first, &id));
	assert_int_equal(sync_base_tx_next(t), 1);
	sync_base_tx_opened(t, &first);
	first.version = 4;				/* a later state of it */
	assert_non_null(sync_base_tx_find(t, &first, &id));
	assert_int_equal(id, 1);
	assert_int_equal(sync_base_tx_find(t, &first, &id)->version, 1);
	/* Another incarnation of the tuple is another connection. */
	assert_null(sync_base_tx_find(t, &later, &id));
	/* WINDOW - 1 more Opens: the first is still resolvable; one more and
	 * the peer's slot for it holds another id. */
	for (uint16_t i = 0; i < WINDOW - 1; i++) {
		struct lb_conn_state o = conn((uint16_t)(2000 + i), 5);

		sync_base_tx_opened(t, &o);
	}
	assert_non_null(sync_base_tx_find(t, &first, &id));
	sync_base_tx_opened(t, &later);
	assert_null(sync_base_tx_find(t, &first, &id));
	/* Opened again: a new id, findable. */
	sync_base_tx_opened(t, &first);
	assert_non_null(sync_base_tx_find(t, &first, &id));
	assert_int_equal(id, WINDOW + 2);
	/* The peer restarted: nothing is findable, ids go on. */
	sync_base_tx_forget(t);
	assert_null(sync_base_tx_find(t, &first, &id));
	assert_null(sync_base_tx_find(t, &later, &id));
	assert_int_equal(sync_base_tx_next(t), WINDOW + 3);
	sync_base_tx_opened(t, &first);
	assert_non_null(sync_base_tx_find(t, &first, &id));
	assert_int_equal(id, WINDOW + 3);
	sync_base_tx_free(t);
}

static struct sync_change change(uint32_t version)
{
	struct sync_change c;

	memset(&c, 0, sizeof(c));
	c.version = version;
	c.state = LB_TCP_TIME_WAIT;
	return c;
}

static void test_rx_holds_changes_until_their_open(void **state)
{
	struct sync_base_rx *r = sync_base_rx_new(WINDOW);
	struct lb_conn_state o = conn(1000, 5);
	const struct lb_conn_state *open = NULL;
	struct sync_change c3 = change(3), c5 = change(5), waiting;

	(void)state;
	/* In order: found. */
	assert_int_equal(sync_base_rx_open(r, 1, &o, &waiting), 0);
	assert_int_equal(sync_base_rx_change(r, 1, &c3, &open), SYNC_BASE_FOUND);
	assert_non_null(open);
	assert_int_equal(open->orig.sport, 1000);
	/* Before the Open: held, the newest kept whatever the order. */
	assert_int_equal(sync_base_rx_change(r, 2, &c5, &open), SYNC_BASE_HELD);
	assert_int_equal(sync_base_rx_change(r, 2, &c3, &open), SYNC_BASE_HELD);
	o.orig.sport = 1001;
	assert_int_equal(sync_base_rx_open(r, 2, &o, &waiting), 1);
	assert_int_equal(waiting.version, 5);
	assert_int_equal(sync_base_rx_change(r, 2, &c5, &open), SYNC_BASE_FOUND);
	assert_int_equal(open->orig.sport, 1001);
	/* id 2 + WINDOW took the slot: a late Change of 2 is lost, and so is
	 * a late Open of 2 (not kept, nothing waiting). */
	assert_int_equal(sync_base_rx_open(r, 2 + WINDOW, &o, &waiting), 0);
	assert_int_equal(sync_base_rx_change(r, 2, &c5, &open), SYNC_BASE_LOST);
	assert_int_equal(sync_base_rx_open(r, 2, &o, &waiting), 0);
	assert_int_equal(sync_base_rx_change(r, 2 + WINDOW, &c5, &open), SYNC_BASE_FOUND);
	/* The peer restarted: its ids start again, nothing old resolves. */
	sync_base_rx_forget(r);
	assert_int_equal(sync_base_rx_change(r, 1, &c3, &open), SYNC_BASE_HELD);
	assert_int_equal(sync_base_rx_open(r, 1, &o, &waiting), 1);
	assert_int_equal(waiting.version, 3);
	sync_base_rx_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_finds_opens_inside_the_window),
		cmocka_unit_test(test_rx_holds_changes_until_their_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
