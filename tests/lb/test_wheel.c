/*
 * Unit tests of lb_wheel: placement, collection at the right time (not
 * before, not a revolution late), deletion, the max bound, and a randomized
 * comparison with a trivially correct model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../lb/lb_wheel.h"

static size_t list_len(struct lb_wheel_node *n)
{
	size_t len = 0;

	for (; n; n = n->next)
		len++;
	return len;
}

static void test_basic_timing(void **state)
{
	struct lb_wheel w;
	struct lb_wheel_node a = { 0 }, b = { 0 }, *out;

	(void)state;
	assert_int_equal(lb_wheel_init(&w, 6, 10, 1000), 0);
	assert_int_equal(w.nslots, 8);
	lb_wheel_add(&w, &a, 1025);
	lb_wheel_add(&w, &b, 1025 + 8 * 10);	/* same slot, next revolution */
	assert_int_equal(w.count, 2);
	assert_int_equal(lb_wheel_collect(&w, 1024, &out, SIZE_MAX), 0);
	assert_null(out);
	assert_int_equal(lb_wheel_collect(&w, 1025, &out, SIZE_MAX), 1);
	assert_ptr_equal(out, &a);
	assert_null(out->next);
	assert_false(lb_wheel_node_armed(&a));
	assert_true(lb_wheel_node_armed(&b));
	assert_int_equal(lb_wheel_collect(&w, 1104, &out, SIZE_MAX), 0);
	assert_int_equal(lb_wheel_collect(&w, 1105, &out, SIZE_MAX), 1);
	assert_ptr_equal(out, &b);
	assert_int_equal(w.count, 0);
	lb_wheel_fini(&w);
}

static void test_past_and_del(void **state)
{
	struct lb_wheel w;
	struct lb_wheel_node a = { 0 }, b = { 0 }, *out;

	(void)state;
	assert_int_equal(lb_wheel_init(&w, 8, 10, 1000), 0);
	lb_wheel_add(&w, &a, 500);		/* already due */
	lb_wheel_add(&w, &b, 1001);
	lb_wheel_del(&w, &b);
	lb_wheel_del(&w, &b);			/* not on the wheel: no-op */
	assert_int_equal(w.count, 1);
	assert_int_equal(lb_wheel_collect(&w, 1000, &out, SIZE_MAX), 1);
	assert_ptr_equal(out, &a);
	assert_int_equal(lb_wheel_collect(&w, 5000, &out, SIZE_MAX), 0);
	lb_wheel_fini(&w);
}

static void test_max_and_long_gap(void **state)
{
	struct lb_wheel w;
	struct lb_wheel_node n[20], *out;

	(void)state;
	memset(n, 0, sizeof(n));
	assert_int_equal(lb_wheel_init(&w, 4, 5, 0), 0);
	for (size_t i = 0; i < 20; i++)
		lb_wheel_add(&w, &n[i], i * 7);	/* spans several revolutions */
	/* Far beyond a revolution later everything is due, in batches. */
	assert_int_equal(lb_wheel_collect(&w, 100000, &out, 8), 8);
	assert_int_equal(list_len(out), 8);
	assert_int_equal(lb_wheel_collect(&w, 100000, &out, 8), 8);
	assert_int_equal(lb_wheel_collect(&w, 100000, &out, 8), 4);
	assert_int_equal(w.count, 0);
	lb_wheel_fini(&w);
}

/* A reference: the wheel must return exactly the armed nodes that are due. */
#define RN 64
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void check_collect(struct lb_wheel *w, struct lb_wheel_node *nodes, uint64_t now,
			  size_t max)
{
	struct lb_wheel_node *out;
	size_t due = 0, got;

	for (size_t i = 0; i < RN; i++)
		due += lb_wheel_node_armed(&nodes[i]) && nodes[i].when <= now;
	got = lb_wheel_collect(w, now, &out, max);
	assert_int_equal(got, due < max ? due : max);
	assert_int_equal(list_len(out), got);
	for (; out; out = out->next) {
		assert_true(out->when <= now);
		assert_false(lb_wheel_node_armed(out));
	}
}

static void test_random_model(void **state)
{
	struct lb_wheel w;
	struct lb_wheel_node nodes[RN];
	uint32_t seed = 12345;
	uint64_t now = 77777;

	(void)state;
	memset(nodes, 0, sizeof(nodes));
	assert_int_equal(lb_wheel_init(&w, 16, 10, now), 0);
	for (int step = 0; step < 200000; step++) {
		struct lb_wheel_node *node = &nodes[rnd(&seed) % RN];
		uint32_t op = rnd(&seed) % 100;

		if (op < 40 && !lb_wheel_node_armed(node))
			lb_wheel_add(&w, node, now - 50 + rnd(&seed) % 600);
		else if (op < 50)
			lb_wheel_del(&w, node);
		else if (op < 90)
			check_collect(&w, nodes, now += rnd(&seed) % 15, 1 + rnd(&seed) % 8);
		else if (op < 99)
			check_collect(&w, nodes, now += rnd(&seed) % 40, SIZE_MAX);
		else
			check_collect(&w, nodes, now += rnd(&seed) % 2000, SIZE_MAX);
	}
	lb_wheel_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_timing),
		cmocka_unit_test(test_past_and_del),
		cmocka_unit_test(test_max_and_long_gap),
		cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
