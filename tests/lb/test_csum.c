/*
 * Unit tests of lb_csum against the naive RFC 1071 reference of pktbuild.h:
 * the bulk sum at every length and alignment, chaining, 64 KiB, the
 * incremental update of RFC 1624 (with its §3 corner case) and the
 * pseudo-header sums of IPv4 and IPv6.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lb_csum.h"
#include "pktbuild.h"

/* xorshift32: reproducible random bytes without libc's global state. */
static uint32_t rnd(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void fill_random(uint8_t *p, size_t len, uint32_t *s)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rnd(s);
}

/* lb_csum's field value (network order) as a number, for comparison. */
static uint16_t lb_value(const void *p, size_t len)
{
	return ntohs(lb_csum_fold(lb_csum_add(0, p, len)));
}

static void test_add_every_length_and_alignment(void **state)
{
	enum { MAXLEN = 2000 };
	uint8_t *buf = malloc(MAXLEN + 8);
	uint32_t s = 0x12345678;

	(void)state;
	assert_non_null(buf);
	for (size_t len = 0; len <= MAXLEN; len++) {
		for (size_t align = 0; align < 4; align++) {
			fill_random(buf + align, len, &s);
			if (lb_value(buf + align, len) != pb_ref_csum(buf + align, len))
				fail_msg("len %zu align %zu: lb 0x%04x ref 0x%04x", len, align,
					 lb_value(buf + align, len), pb_ref_csum(buf + align, len));
		}
	}
	free(buf);
}

static void test_add_extreme_patterns(void **state)
{
	uint8_t buf[1501];

	(void)state;
	/* All ones: every word carries. All zeros: the sum is zero and the
	 * field is 0xffff. One odd byte: it is the high half of its word. */
	memset(buf, 0xff, sizeof(buf));
	for (size_t len = 0; len <= sizeof(buf); len += 7)
		assert_int_equal(lb_value(buf, len), pb_ref_csum(buf, len));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(lb_value(buf, sizeof(buf)), 0xffff);
	buf[0] = 0xab;
	assert_int_equal(lb_value(buf, 1), (uint16_t)~0xab00);
	assert_int_equal(lb_value(buf, 0), 0xffff);
}

static void test_add_64k(void **state)
{
	enum { LEN = 65536 };
	uint8_t *buf = malloc(LEN + 1);
	uint32_t s = 0xdeadbeef;

	(void)state;
	assert_non_null(buf);
	fill_random(buf, LEN + 1, &s);
	assert_int_equal(lb_value(buf, LEN), pb_ref_csum(buf, LEN));
	assert_int_equal(lb_value(buf + 1, LEN), pb_ref_csum(buf + 1, LEN));
	assert_int_equal(lb_value(buf, 65535), pb_ref_csum(buf, 65535));
	memset(buf, 0xff, LEN);
	assert_int_equal(lb_value(buf, LEN), pb_ref_csum(buf, LEN));
	free(buf);
}

/* Sums chained at an even split give the sum of the whole (how the engine
 * adds the segment to the pseudo-header sum). */
static void test_add_chained_even_split(void **state)
{
	uint8_t buf[777];
	uint32_t s = 99;

	(void)state;
	fill_random(buf, sizeof(buf), &s);
	for (size_t split = 0; split <= sizeof(buf); split += 2) {
		uint32_t sum = lb_csum_add(lb_csum_add(0, buf, split), buf + split,
					   sizeof(buf) - split);

		assert_int_equal(ntohs(lb_csum_fold(sum)), pb_ref_csum(buf, sizeof(buf)));
	}
}

static void test_fold_values(void **state)
{
	(void)state;
	/* lb_csum_fold returns network order: compare after ntohs. */
	assert_int_equal(ntohs(lb_csum_fold(0)), 0xffff);
	assert_int_equal(lb_csum_fold(0xffffffffu), 0x0000);
	assert_int_equal(lb_csum_fold(0x0000ffffu), 0x0000);
	assert_int_equal(lb_csum_fold(0x00010000u), (uint16_t)~1);
	assert_int_equal(lb_csum_fold(0x0001fffeu), 0x0000);	/* 0xfffe + 1 */
	assert_int_equal(lb_csum_fold(0x1234abcdu), (uint16_t)~(0x1234 + 0xabcd));
}

/* Changes one 16-bit word of a random "header" with a valid checksum and
 * compares the incremental result with the recomputed one. */
static void test_update16_random(void **state)
{
	uint8_t buf[40];
	uint32_t s = 7;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t w = (rnd(&s) % 19) + 1;	/* word 0 holds the checksum */
		uint16_t field, old_word, new_word, got;

		fill_random(buf, sizeof(buf), &s);
		memset(buf, 0, 2);
		field = htons(pb_ref_csum(buf, sizeof(buf)));
		memcpy(buf, &field, 2);
		memcpy(&old_word, buf + 2 * w, 2);
		new_word = (uint16_t)rnd(&s);
		if (round % 5 == 0)
			new_word = (uint16_t)(round % 10 ? 0x0000 : 0xffff);
		memcpy(buf + 2 * w, &new_word, 2);
		got = lb_csum_update16(field, old_word, new_word);
		memset(buf, 0, 2);
		if (ntohs(got) != pb_ref_csum(buf, sizeof(buf)))
			fail_msg("round %d: update 0x%04x, recomputed 0x%04x", round,
				 ntohs(got), pb_ref_csum(buf, sizeof(buf)));
	}
}

/* lb_csum_update over runs of 2..16 bytes (addresses, ports). */
static void test_update_runs_random(void **state)
{
	uint8_t buf[64], old[16];
	uint32_t s = 2024;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = 2 * ((rnd(&s) % 8) + 1);
		size_t at = 2 + 2 * (rnd(&s) % ((sizeof(buf) - 2 - len) / 2));
		uint16_t field, got;

		fill_random(buf, sizeof(buf), &s);
		memset(buf, 0, 2);
		field = htons(pb_ref_csum(buf, sizeof(buf)));
		memcpy(old, buf + at, len);
		fill_random(buf + at, len, &s);
		if (round % 7 == 0)
			memset(buf + at, round % 14 ? 0x00 : 0xff, len);
		got = lb_csum_update(field, old, buf + at, len);
		if (ntohs(got) != pb_ref_csum(buf, sizeof(buf)))
			fail_msg("round %d len %zu at %zu: 0x%04x != 0x%04x", round, len, at,
				 ntohs(got), pb_ref_csum(buf, sizeof(buf)));
	}
}

/*
 * RFC 1624 §3: the other header words sum to 0xCD7A, m changes from 0x5555
 * to 0x3285, so the new sum is 0xFFFF and the checksum must become 0x0000.
 * Eqn. 2 (HC - ~m - m') gives 0xFFFF here; eqn. 3 gives the right 0x0000.
 */
static void test_update16_rfc1624_section3(void **state)
{
	uint16_t hc = htons((uint16_t)~pb_ref_fold(0xCD7A + 0x5555));

	(void)state;
	assert_int_equal(ntohs(hc), 0xDD2F);
	assert_int_equal(ntohs(lb_csum_update16(hc, htons(0x5555), htons(0x3285))), 0x0000);
	/* And back: from a 0x0000 checksum to the original one. */
	assert_int_equal(ntohs(lb_csum_update16(htons(0x0000), htons(0x3285), htons(0x5555))),
			 0xDD2F);
}

/* A header whose checksum is 0x0000 and the change that produces one. */
static void test_update_to_and_from_zero_checksum(void **state)
{
	uint8_t buf[20] = { 0x45, 0, 0, 40, 0x12, 0x34, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1 };
	uint16_t field, need, got, old, nw;

	(void)state;
	/* Choose the last word so that the data sums to 0xffff. */
	memset(buf + 16, 0, 4);
	need = (uint16_t)(0xffff - pb_ref_fold(pb_ref_sum(0, buf, 20)));
	pb_put16(buf + 18, need);
	assert_int_equal(pb_ref_fold(pb_ref_sum(0, buf, 20)), 0xffff);
	assert_int_equal(pb_ref_csum(buf, 20), 0x0000);

	/* From the zero checksum to another value... */
	field = htons(0x0000);
	memcpy(&old, buf + 12, 2);
	nw = htons(0x0a0b);
	memcpy(buf + 12, &nw, 2);
	got = lb_csum_update16(field, old, nw);
	assert_int_equal(ntohs(got), pb_ref_csum(buf, 20));
	assert_int_not_equal(ntohs(got), 0x0000);

	/* ...and a change that brings the checksum to exactly 0x0000. */
	got = lb_csum_update16(got, nw, old);
	memcpy(buf + 12, &old, 2);
	assert_int_equal(ntohs(got), 0x0000);
	assert_int_equal(pb_ref_csum(buf, 20), 0x0000);
}

/* A checksum field holding 0xffff (-0) stays equivalent: the data still
 * verifies after the update, even though 0xffff is not canonical. */
static void test_update_from_negative_zero_field(void **state)
{
	uint8_t buf[8] = { 0x12, 0x34, 0xed, 0xcb, 0, 0, 0, 0 };
	uint16_t old, nw, got;

	(void)state;
	/* 0x1234 + 0xedcb = 0xffff: checksum 0x0000, or equivalently 0xffff. */
	memcpy(&old, buf, 2);
	nw = htons(0x1111);
	got = lb_csum_update16(htons(0xffff), old, nw);
	memcpy(buf, &nw, 2);
	memcpy(buf + 6, &got, 2);
	assert_int_equal(pb_ref_fold(pb_ref_sum(0, buf, 8)), 0xffff);
	assert_int_equal(ntohs(got), pb_ref_csum(buf, 6));
}

static void test_update_odd_len_ignores_last_byte(void **state)
{
	uint8_t o[3] = { 1, 2, 3 }, n[3] = { 1, 2, 9 };

	(void)state;
	/* The header asks for even runs; an odd trailing byte is not summed. */
	assert_int_equal(lb_csum_update(htons(0x1234), o, n, 3), htons(0x1234));
}

static void test_pseudo_v4(void **state)
{
	uint8_t src[4] = { 198, 18, 0, 10 }, dst[4] = { 198, 18, 0, 100 };
	uint32_t lens[] = { 0, 20, 21, 1460, 65515 };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint32_t sum = lb_csum_pseudo(src, dst, 4, IPPROTO_TCP, lens[i]);
		uint16_t ref = (uint16_t)~pb_ref_fold(pb_ref_pseudo(AF_INET, src, dst, lens[i]));

		assert_int_equal(ntohs(lb_csum_fold(sum)), ref);
	}
	/* A known value: 0xc612 + 0x000a + 0xc612 + 0x0064 + 6 + 20 = 0x18cac,
	 * folded 0x8cad. */
	assert_int_equal(ntohs(lb_csum_fold(lb_csum_pseudo(src, dst, 4, 6, 20))),
			 (uint16_t)~0x8cad);
}

static void test_pseudo_v6(void **state)
{
	uint8_t src[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x0a };
	uint8_t dst[16] = { 0x20, 0x01, 0x0d, 0xb8, [14] = 0xff, [15] = 0x01 };
	uint32_t lens[] = { 0, 20, 1461, 65535, 70000, 0x12345678 };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint32_t sum = lb_csum_pseudo(src, dst, 16, IPPROTO_TCP, lens[i]);
		uint16_t ref = (uint16_t)~pb_ref_fold(pb_ref_pseudo(AF_INET6, src, dst, lens[i]));

		assert_int_equal(ntohs(lb_csum_fold(sum)), ref);
	}
}

/* The pseudo-header sum chained with a segment gives the TCP checksum. */
static void test_pseudo_chained_with_segment(void **state)
{
	static uint8_t pkt[2000];
	struct pb_spec s = pb_spec_v6("2001:db8::a", 40000, "2001:db8::100", 80);
	size_t len;
	uint32_t sum;
	uint16_t zero = 0, check;

	(void)state;
	s.payload_len = 1001;
	s.csum = PB_CSUM_ZERO;
	len = pb_build(pkt, sizeof(pkt), &s);
	assert_int_equal(len, 40 + 20 + 1001);
	memcpy(pkt + 40 + 16, &zero, 2);
	sum = lb_csum_pseudo(pkt + 8, pkt + 24, 16, IPPROTO_TCP, 1021);
	sum = lb_csum_add(sum, pkt + 40, 1021);
	check = lb_csum_fold(sum);
	memcpy(pkt + 40 + 16, &check, 2);
	assert_int_equal(pb_ref_verify(pkt, len), PB_OK);
	assert_int_equal(ntohs(check), pb_ref_tcp_csum(pkt, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_every_length_and_alignment),
		cmocka_unit_test(test_add_extreme_patterns),
		cmocka_unit_test(test_add_64k),
		cmocka_unit_test(test_add_chained_even_split),
		cmocka_unit_test(test_fold_values),
		cmocka_unit_test(test_update16_random),
		cmocka_unit_test(test_update_runs_random),
		cmocka_unit_test(test_update16_rfc1624_section3),
		cmocka_unit_test(test_update_to_and_from_zero_checksum),
		cmocka_unit_test(test_update_from_negative_zero_field),
		cmocka_unit_test(test_update_odd_len_ignores_last_byte),
		cmocka_unit_test(test_pseudo_v4),
		cmocka_unit_test(test_pseudo_v6),
		cmocka_unit_test(test_pseudo_chained_with_segment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
