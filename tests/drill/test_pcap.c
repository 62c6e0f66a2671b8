/*
 * Unit tests of drill_pcap: capture files written here (with libpcap's
 * dumper for valid ones, byte by byte for broken ones) and read back
 * through the public interface. Every supported link type must yield its
 * IP packets with the right bytes, lengths, timestamps and record numbers;
 * VLAN stacks are walked up to the bound; records that are not IP, too
 * short or inconsistent are skipped and counted by reason; truncated
 * packets are returned with both lengths; and every broken file fails with
 * a message that says what is wrong (and for a damaged record, which one).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../drill/drill_pcap.h"

static char dir[64];

/* ---- files ---- */

/* One record to write: its bytes (caplen of them) and header fields. */
struct rec {
	const uint8_t *data;
	uint32_t caplen, len;
	uint32_t sec, frac;	/* frac: microseconds, or nanoseconds in nano files */
};

static const char *path_of(const char *name)
{
	static char path[sizeof(dir) + 256 + 2];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void write_dump(const char *name, int dlt, int snaplen, unsigned precision,
		       const struct rec *recs, size_t n)
{
	pcap_t *pd = pcap_open_dead_with_tstamp_precision(dlt, snaplen, precision);
	pcap_dumper_t *d;

	assert_non_null(pd);
	d = pcap_dump_open(pd, path_of(name));
	assert_non_null(d);
	for (size_t i = 0; i < n; i++) {
		struct pcap_pkthdr h = { .caplen = recs[i].caplen, .len = recs[i].len };

		h.ts.tv_sec = recs[i].sec;
		h.ts.tv_usec = recs[i].frac;
		pcap_dump((u_char *)d, &h, recs[i].data);
	}
	pcap_dump_close(d);
	pcap_close(pd);
}

static void write_bytes(const char *name, const void *buf, size_t len)
{
	FILE *f = fopen(path_of(name), "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A classic pcap file header, little-endian. */
static size_t put_header(uint8_t *b, uint32_t magic, uint32_t snaplen, uint32_t linktype)
{
	uint32_t w[6] = { magic, 2 | (4u << 16), 0, 0, snaplen, linktype };

	memcpy(b, w, sizeof(w));
	return sizeof(w);
}

/* A classic record header, little-endian, and caplen bytes of fill. */
static size_t put_record(uint8_t *b, uint32_t caplen, uint32_t len, uint32_t data_bytes)
{
	uint32_t w[4] = { 1, 2, caplen, len };

	memcpy(b, w, sizeof(w));
	for (uint32_t i = 0; i < data_bytes; i++)
		b[16 + i] = (uint8_t)(i == 0 ? 0x45 : i);
	return 16 + data_bytes;
}

/* ---- packets ---- */

/* An IPv4 header (20 bytes) and payload, total len bytes. */
static void ipv4(uint8_t *b, size_t len, uint8_t seed)
{
	memset(b, 0, len);
	b[0] = 0x45;
	b[2] = (uint8_t)(len >> 8);
	b[3] = (uint8_t)len;
	b[8] = 64;
	b[9] = 6;
	for (size_t i = 20; i < len; i++)
		b[i] = (uint8_t)(seed + i);
}

/* An IPv6 header (40 bytes) and payload, total len bytes. */
static void ipv6(uint8_t *b, size_t len, uint8_t seed)
{
	memset(b, 0, len);
	b[0] = 0x60;
	b[4] = (uint8_t)((len - 40) >> 8);
	b[5] = (uint8_t)(len - 40);
	b[6] = 6;
	b[7] = 64;
	for (size_t i = 40; i < len; i++)
		b[i] = (uint8_t)(seed * 3 + i);
}

/* Link header bytes hdr (hlen) then the IP packet ip (iplen) into out. */
static size_t frame(uint8_t *out, const uint8_t *hdr, size_t hlen, const uint8_t *ip, size_t iplen)
{
	memcpy(out, hdr, hlen);
	memcpy(out + hlen, ip, iplen);
	return hlen + iplen;
}

/* An Ethernet header with the given 16-bit words after the addresses. */
static size_t eth(uint8_t *h, const uint16_t *types, size_t ntypes)
{
	memset(h, 0, 12);
	h[0] = 0x02;
	h[6] = 0x02;
	h[11] = 1;
	for (size_t i = 0; i < ntypes; i++) {
		uint16_t v = htons(types[i]);

		memcpy(h + 12 + 2 * i, &v, 2);
	}
	return 12 + 2 * ntypes;
}

/* ---- reading ---- */

static struct drill_pcap *open_ok(const char *name)
{
	char err[512] = "";
	struct drill_pcap *p = drill_pcap_open(path_of(name), err, sizeof(err));

	if (!p)
		fail_msg("open %s: %s", name, err);
	return p;
}

/* The next packet must be ip (iplen bytes captured, wirelen on the wire), record index. */
static void expect_pkt(struct drill_pcap *p, const uint8_t *ip, size_t iplen, size_t wirelen,
		       uint64_t index, uint64_t ts_us)
{
	struct drill_pcap_pkt pkt;
	char err[512] = "";
	int rc = drill_pcap_next(p, &pkt, err, sizeof(err));

	if (rc != 1)
		fail_msg("want record %llu, got %d (%s)", (unsigned long long)index, rc, err);
	assert_int_equal(pkt.index, index);
	assert_int_equal(pkt.caplen, iplen);
	assert_int_equal(pkt.wirelen, wirelen);
	assert_memory_equal(pkt.data, ip, iplen);
	if (ts_us)
		assert_int_equal(pkt.ts_us, ts_us);
}

static void expect_end(struct drill_pcap *p)
{
	struct drill_pcap_pkt pkt;
	char err[512] = "";

	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 0);
	/* and stays there */
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 0);
}

static void expect_skipped(struct drill_pcap *p, uint64_t not_ip, uint64_t shrt, uint64_t vlan,
			   uint64_t version, uint64_t bad_len)
{
	assert_int_equal(drill_pcap_skipped(p, DRILL_PCAP_SKIP_NOT_IP), not_ip);
	assert_int_equal(drill_pcap_skipped(p, DRILL_PCAP_SKIP_SHORT), shrt);
	assert_int_equal(drill_pcap_skipped(p, DRILL_PCAP_SKIP_VLAN_DEPTH), vlan);
	assert_int_equal(drill_pcap_skipped(p, DRILL_PCAP_SKIP_IP_VERSION), version);
	assert_int_equal(drill_pcap_skipped(p, DRILL_PCAP_SKIP_BAD_LEN), bad_len);
}

/* Opening name must fail with a message containing each of want[]. */
static void expect_open_error(const char *name, const char *const *want, size_t nwant)
{
	char err[512] = "";
	struct drill_pcap *p = drill_pcap_open(path_of(name), err, sizeof(err));

	if (p) {
		drill_pcap_close(p);
		fail_msg("%s: opened, want an error", name);
	}
	assert_null(strchr(err, '\n'));
	for (size_t i = 0; i < nwant; i++)
		if (!strstr(err, want[i]))
			fail_msg("%s: error '%s' does not say '%s'", name, err, want[i]);
}

/* ---- link types ---- */

static void test_raw(void **state)
{
	uint8_t a[60], b[80], junk[30] = { 0x20 }, c[1500];
	struct rec recs[] = {
		{ a, sizeof(a), sizeof(a), 1000, 1 },
		{ b, sizeof(b), sizeof(b), 1000, 999999 },
		{ junk, sizeof(junk), sizeof(junk), 1001, 0 },	/* version 2 */
		{ NULL, 0, 0, 1001, 1 },			/* nothing captured */
		{ c, sizeof(c), sizeof(c), 4000000000u, 500000 },
	};
	struct drill_pcap *p;

	(void)state;
	ipv4(a, sizeof(a), 1);
	ipv6(b, sizeof(b), 2);
	ipv4(c, sizeof(c), 3);
	write_dump("raw.pcap", DLT_RAW, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, 5);
	p = open_ok("raw.pcap");
	assert_string_equal(drill_pcap_linktype(p), "RAW");
	expect_pkt(p, a, sizeof(a), sizeof(a), 1, 1000000001ull);
	expect_pkt(p, b, sizeof(b), sizeof(b), 2, 1000999999ull);
	expect_pkt(p, c, sizeof(c), sizeof(c), 5, 4000000000500000ull);
	expect_end(p);
	expect_skipped(p, 1, 1, 0, 0, 0);
	assert_int_equal(drill_pcap_truncated(p), 0);
	drill_pcap_close(p);
}

/* LINKTYPE_IPV4 (228) and LINKTYPE_IPV6 (229): the version must agree. */
static void test_ipv4_ipv6_linktypes(void **state)
{
	uint8_t v4[40], v6[60];
	struct rec recs[] = {
		{ v4, sizeof(v4), sizeof(v4), 7, 0 },
		{ v6, sizeof(v6), sizeof(v6), 7, 0 },
	};
	struct drill_pcap *p;

	(void)state;
	ipv4(v4, sizeof(v4), 4);
	ipv6(v6, sizeof(v6), 6);
	write_dump("ipv4.pcap", DLT_IPV4, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, 2);
	write_dump("ipv6.pcap", DLT_IPV6, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, 2);

	p = open_ok("ipv4.pcap");
	assert_string_equal(drill_pcap_linktype(p), "IPV4");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, 7000000);
	expect_end(p);
	expect_skipped(p, 0, 0, 0, 1, 0);
	drill_pcap_close(p);

	p = open_ok("ipv6.pcap");
	assert_string_equal(drill_pcap_linktype(p), "IPV6");
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 2, 7000000);
	expect_end(p);
	expect_skipped(p, 0, 0, 0, 1, 0);
	drill_pcap_close(p);
}

static void test_ethernet_vlans(void **state)
{
	static const uint16_t plain4[] = { 0x0800 }, dot1q6[] = { 0x8100, 0x0064, 0x86dd },
		qinq4[] = { 0x88a8, 0x0010, 0x8100, 0x0064, 0x0800 },
		triple6[] = { 0x9100, 1, 0x8100, 2, 0x8100, 3, 0x86dd },
		arp[] = { 0x0806 }, llc[] = { 0x0040 }, lie[] = { 0x0800 };
	uint16_t deep8[17], deep9[19];
	uint8_t v4[64], v6[100], h[64], f[12][256];
	struct rec recs[12];
	size_t n = 0, hl;
	struct drill_pcap *p;

	(void)state;
	for (int i = 0; i < 8; i++) {
		deep8[2 * i] = 0x8100;
		deep8[2 * i + 1] = (uint16_t)i;
	}
	deep8[16] = 0x0800;
	for (int i = 0; i < 9; i++) {
		deep9[2 * i] = 0x88a8;
		deep9[2 * i + 1] = (uint16_t)i;
	}
	deep9[18] = 0x0800;
	ipv4(v4, sizeof(v4), 8);
	ipv6(v6, sizeof(v6), 9);
#define ADD(types, ip)                                                                    \
	do {                                                                              \
		hl = eth(h, types, sizeof(types) / sizeof(types[0]));                     \
		recs[n] = (struct rec){ f[n], (uint32_t)frame(f[n], h, hl, ip, sizeof(ip)), \
					0, 10, (uint32_t)n };                                \
		recs[n].len = recs[n].caplen;                                             \
		n++;                                                                      \
	} while (0)
	ADD(plain4, v4);	/* 1 */
	ADD(dot1q6, v6);	/* 2 */
	ADD(qinq4, v4);		/* 3 */
	ADD(triple6, v6);	/* 4 */
	ADD(arp, v4);		/* 5: not IP */
	ADD(llc, v4);		/* 6: an 802.3 length, not IP */
	ADD(deep8, v4);		/* 7: 8 tags, the bound */
	ADD(deep9, v4);		/* 8: 9 tags */
	ADD(lie, v6);		/* 9: says IPv4, carries IPv6 */
#undef ADD
	/* 10: cut inside the second VLAN tag; 11: 13 bytes; 12: no IP byte. */
	recs[n++] = (struct rec){ f[2], 12 + 2 + 4 + 2, 12 + 2 + 4 + 2, 10, 0 };
	recs[n++] = (struct rec){ f[0], 13, 13, 10, 0 };
	recs[n++] = (struct rec){ f[0], 14, 14, 10, 0 };
	write_dump("eth.pcap", DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, n);

	p = open_ok("eth.pcap");
	assert_string_equal(drill_pcap_linktype(p), "EN10MB");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, 10000000);
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 2, 10000001);
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 3, 10000002);
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 4, 10000003);
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 7, 10000006);
	expect_end(p);
	expect_skipped(p, 2, 3, 1, 1, 0);
	drill_pcap_close(p);
}

/* PPPoE sessions (an ISP's access link), alone or under a VLAN tag. */
static void test_ethernet_pppoe(void **state)
{
	static const uint16_t ppp4[] = { 0x8864, 0x1100, 0x3b1a, 0x0042, 0x0021 },
		ppp6[] = { 0x8864, 0x1100, 0x3b1a, 0x0066, 0x0057 },
		vlan_ppp4[] = { 0x8100, 0x0064, 0x8864, 0x1100, 0x0001, 0x0042, 0x0021 },
		lcp[] = { 0x8864, 0x1100, 0x3b1a, 0x0042, 0xc021 },
		lie[] = { 0x8864, 0x1100, 0x3b1a, 0x0042, 0x0021 };
	uint8_t v4[64], v6[100], h[64], f[6][256];
	struct rec recs[6];
	size_t n = 0, hl;
	struct drill_pcap *p;

	(void)state;
	ipv4(v4, sizeof(v4), 3);
	ipv6(v6, sizeof(v6), 4);
#define ADD(types, ip)                                                                    \
	do {                                                                              \
		hl = eth(h, types, sizeof(types) / sizeof(types[0]));                     \
		recs[n] = (struct rec){ f[n], (uint32_t)frame(f[n], h, hl, ip, sizeof(ip)), \
					0, 10, (uint32_t)n };                                \
		recs[n].len = recs[n].caplen;                                             \
		n++;                                                                      \
	} while (0)
	ADD(ppp4, v4);		/* 1 */
	ADD(ppp6, v6);		/* 2 */
	ADD(vlan_ppp4, v4);	/* 3 */
	ADD(lcp, v4);		/* 4: PPP's link control, not IP */
	ADD(lie, v6);		/* 5: says IPv4, carries IPv6 */
#undef ADD
	/* 6: cut inside the PPPoE header. */
	recs[n++] = (struct rec){ f[0], 14 + 4, 14 + 4, 10, 0 };
	write_dump("pppoe.pcap", DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, n);

	p = open_ok("pppoe.pcap");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, 10000000);
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 2, 10000001);
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 3, 10000002);
	expect_end(p);
	expect_skipped(p, 1, 1, 0, 1, 0);
	drill_pcap_close(p);
}

static void test_linux_cooked(void **state)
{
	uint8_t v4[48], v6[72], sll[16] = { 0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1 },
		sll2[20] = { 0 }, f[6][256];
	struct rec recs[6];
	struct drill_pcap *p;
	size_t len;

	(void)state;
	ipv4(v4, sizeof(v4), 10);
	ipv6(v6, sizeof(v6), 11);
	/* v1: IPv4, ARP, 15 bytes, VLAN-tagged IPv6 */
	sll[14] = 0x08, sll[15] = 0x00;
	len = frame(f[0], sll, 16, v4, sizeof(v4));
	recs[0] = (struct rec){ f[0], (uint32_t)len, (uint32_t)len, 20, 0 };
	sll[15] = 0x06;
	len = frame(f[1], sll, 16, v4, sizeof(v4));
	recs[1] = (struct rec){ f[1], (uint32_t)len, (uint32_t)len, 20, 1 };
	recs[2] = (struct rec){ f[0], 15, 15, 20, 2 };
	sll[14] = 0x81, sll[15] = 0x00;
	memcpy(f[3], sll, 16);
	memcpy(f[3] + 16, (const uint8_t[]){ 0, 5, 0x86, 0xdd }, 4);
	memcpy(f[3] + 20, v6, sizeof(v6));
	recs[3] = (struct rec){ f[3], 20 + sizeof(v6), 20 + sizeof(v6), 20, 3 };
	write_dump("sll.pcap", DLT_LINUX_SLL, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, 4);

	p = open_ok("sll.pcap");
	assert_string_equal(drill_pcap_linktype(p), "LINUX_SLL");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, 20000000);
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 4, 20000003);
	expect_end(p);
	expect_skipped(p, 1, 1, 0, 0, 0);
	drill_pcap_close(p);

	/* v2: IPv6, 19 bytes, ARP, IPv4 */
	sll2[0] = 0x86, sll2[1] = 0xdd;
	sll2[7] = 2;		/* ifindex */
	sll2[9] = 1;		/* ARPHRD_ETHER */
	sll2[11] = 6;
	len = frame(f[0], sll2, 20, v6, sizeof(v6));
	recs[0] = (struct rec){ f[0], (uint32_t)len, (uint32_t)len, 30, 0 };
	recs[1] = (struct rec){ f[0], 19, 19, 30, 1 };
	sll2[0] = 0x08, sll2[1] = 0x06;
	len = frame(f[2], sll2, 20, v4, sizeof(v4));
	recs[2] = (struct rec){ f[2], (uint32_t)len, (uint32_t)len, 30, 2 };
	sll2[1] = 0x00;
	len = frame(f[3], sll2, 20, v4, sizeof(v4));
	recs[3] = (struct rec){ f[3], (uint32_t)len, (uint32_t)len, 30, 3 };
	write_dump("sll2.pcap", DLT_LINUX_SLL2, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, 4);

	p = open_ok("sll2.pcap");
	assert_string_equal(drill_pcap_linktype(p), "LINUX_SLL2");
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 1, 30000000);
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 4, 30000003);
	expect_end(p);
	expect_skipped(p, 1, 1, 0, 0, 0);
	drill_pcap_close(p);
}

/* DLT_NULL in either byte order, with the BSDs' AF_INET6 values; DLT_LOOP. */
static void test_null_loop(void **state)
{
	static const struct { uint32_t family; int big_endian; int version; } fam[] = {
		{ 2, 0, 4 }, { 2, 1, 4 }, { 10, 0, 6 }, { 24, 1, 6 }, { 28, 0, 6 },
		{ 30, 0, 6 }, { 23, 1, 6 }, { 17, 0, 0 }, { 0, 0, 0 },
	};
	enum { N = sizeof(fam) / sizeof(fam[0]) };
	uint8_t v4[44], v6[64], f[N + 1][128];
	struct rec recs[N + 1];
	struct drill_pcap *p;

	(void)state;
	ipv4(v4, sizeof(v4), 12);
	ipv6(v6, sizeof(v6), 13);
	for (size_t i = 0; i < N; i++) {
		uint32_t v = fam[i].big_endian ? htonl(fam[i].family) : fam[i].family;
		uint8_t hdr[4];
		size_t len;

		memcpy(hdr, &v, 4);	/* host order is little-endian here */
		len = fam[i].version == 6 ? frame(f[i], hdr, 4, v6, sizeof(v6))
					  : frame(f[i], hdr, 4, v4, sizeof(v4));
		recs[i] = (struct rec){ f[i], (uint32_t)len, (uint32_t)len, 40, (uint32_t)i };
	}
	recs[N] = (struct rec){ f[0], 3, 3, 40, N };
	write_dump("null.pcap", DLT_NULL, 65535, PCAP_TSTAMP_PRECISION_MICRO, recs, N + 1);

	p = open_ok("null.pcap");
	assert_string_equal(drill_pcap_linktype(p), "NULL");
	for (size_t i = 0; i < N; i++) {
		if (fam[i].version == 4)
			expect_pkt(p, v4, sizeof(v4), sizeof(v4), i + 1, 40000000 + i);
		else if (fam[i].version == 6)
			expect_pkt(p, v6, sizeof(v6), sizeof(v6), i + 1, 40000000 + i);
	}
	expect_end(p);
	expect_skipped(p, 2, 1, 0, 0, 0);
	drill_pcap_close(p);

	/* LOOP: big-endian */
	write_dump("loop.pcap", DLT_LOOP, 65535, PCAP_TSTAMP_PRECISION_MICRO, &recs[1], 1);
	p = open_ok("loop.pcap");
	assert_string_equal(drill_pcap_linktype(p), "LOOP");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, 40000001);
	expect_end(p);
	drill_pcap_close(p);
}

/* ---- lengths and timestamps ---- */

static void test_truncated_returned(void **state)
{
	static const uint16_t type[] = { 0x0800 };
	uint8_t v4[1500], h[16], f[1514], v4b[60], g[74];
	struct rec recs[4];
	struct drill_pcap *p;
	struct drill_pcap_pkt pkt;
	char err[256];
	size_t hl;

	(void)state;
	ipv4(v4, sizeof(v4), 14);
	ipv4(v4b, sizeof(v4b), 15);
	hl = eth(h, type, 1);
	frame(f, h, hl, v4, sizeof(v4));
	frame(g, h, hl, v4b, sizeof(v4b));
	recs[0] = (struct rec){ f, 96, 1514, 50, 0 };	/* snaplen 96: cut */
	recs[1] = (struct rec){ f, 10, 1514, 50, 1 };	/* cut inside Ethernet */
	recs[2] = (struct rec){ g, 74, 70, 50, 2 };	/* wire shorter than captured */
	recs[3] = (struct rec){ g, 74, 74, 50, 3 };
	write_dump("trunc.pcap", DLT_EN10MB, 96, PCAP_TSTAMP_PRECISION_MICRO, recs, 4);

	p = open_ok("trunc.pcap");
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 1);
	assert_int_equal(pkt.index, 1);
	assert_int_equal(pkt.caplen, 96 - 14);
	assert_int_equal(pkt.wirelen, 1500);
	assert_memory_equal(pkt.data, v4, 96 - 14);
	assert_int_equal(drill_pcap_truncated(p), 1);
	expect_pkt(p, v4b, sizeof(v4b), sizeof(v4b), 4, 50000003);
	expect_end(p);
	expect_skipped(p, 0, 1, 0, 0, 1);
	assert_int_equal(drill_pcap_truncated(p), 1);
	drill_pcap_close(p);
}

/* Nanosecond files come back in microseconds. */
static void test_nanosecond_file(void **state)
{
	uint8_t v6[48];
	struct rec r = { v6, sizeof(v6), sizeof(v6), 5, 123456789 };
	struct drill_pcap *p;

	(void)state;
	ipv6(v6, sizeof(v6), 16);
	write_dump("nano.pcap", DLT_RAW, 65535, PCAP_TSTAMP_PRECISION_NANO, &r, 1);
	p = open_ok("nano.pcap");
	expect_pkt(p, v6, sizeof(v6), sizeof(v6), 1, 5123456);
	expect_end(p);
	drill_pcap_close(p);
}

/* pcapng, which libpcap reads: SHB, IDB (Ethernet, snaplen 0 = no limit), EPB. */
static void test_pcapng(void **state)
{
	static const uint16_t type[] = { 0x0800 };
	uint8_t v4[42], h[16], fr[56], b[256];
	uint32_t w;
	uint64_t ts = 1700000000123456ull;
	size_t n = 0, flen, pad;
	struct drill_pcap *p;

	(void)state;
	ipv4(v4, sizeof(v4), 17);
	flen = frame(fr, h, eth(h, type, 1), v4, sizeof(v4));
	pad = (4 - flen % 4) % 4;
#define PUT32(v) (w = (v), memcpy(b + n, &w, 4), n += 4)
	PUT32(0x0a0d0d0a); PUT32(28); PUT32(0x1a2b3c4d); PUT32(1);
	PUT32(0xffffffff); PUT32(0xffffffff); PUT32(28);
	PUT32(1); PUT32(20); PUT32(1); PUT32(0); PUT32(20);
	PUT32(6); PUT32((uint32_t)(32 + flen + pad)); PUT32(0);
	PUT32((uint32_t)(ts >> 32)); PUT32((uint32_t)ts); PUT32((uint32_t)flen);
	PUT32((uint32_t)flen);
	memcpy(b + n, fr, flen);
	memset(b + n + flen, 0, pad);
	n += flen + pad;
	PUT32((uint32_t)(32 + flen + pad));
#undef PUT32
	write_bytes("ng.pcapng", b, n);

	p = open_ok("ng.pcapng");
	assert_string_equal(drill_pcap_linktype(p), "EN10MB");
	expect_pkt(p, v4, sizeof(v4), sizeof(v4), 1, ts);
	expect_end(p);
	drill_pcap_close(p);
}

/* ---- errors ---- */

static void test_error_missing_and_not_a_file(void **state)
{
	char err[256] = "";

	(void)state;
	expect_open_error("nonexistent.pcap",
			  (const char *[]){ "nonexistent.pcap", "No such file or directory" }, 2);
	assert_null(drill_pcap_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
	/* err is optional */
	assert_null(drill_pcap_open(path_of("nonexistent.pcap"), NULL, 0));
}

static void test_error_magic_and_short_header(void **state)
{
	uint8_t b[64];

	(void)state;
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(0x30 + i);
	write_bytes("magic.pcap", b, 40);
	expect_open_error("magic.pcap", (const char *[]){ "magic.pcap", "not a pcap or pcapng" },
			  2);
	write_bytes("ten.pcap", b, 10);
	expect_open_error("ten.pcap", (const char *[]){ "ten.pcap", "not a pcap or pcapng" }, 2);
	/* A real magic number, then the header stops at 10 bytes. */
	put_header(b, 0xa1b2c3d4, 65535, 1);
	write_bytes("ten_magic.pcap", b, 10);
	expect_open_error("ten_magic.pcap", (const char *[]){ "ten_magic.pcap", "truncated" }, 2);
	write_bytes("empty.pcap", b, 0);
	expect_open_error("empty.pcap", (const char *[]){ "empty.pcap", "empty file" }, 2);
}

static void test_error_snaplen_zero(void **state)
{
	uint8_t b[64];
	size_t n;
	uint32_t w[6];

	(void)state;
	n = put_header(b, 0xa1b2c3d4, 0, 101);
	n += put_record(b + n, 20, 20, 20);
	write_bytes("snap0.pcap", b, n);
	expect_open_error("snap0.pcap", (const char *[]){ "snap0.pcap", "snaplen 0" }, 2);
	/* The same, big-endian, nanosecond magic. */
	for (int i = 0; i < 6; i++)
		w[i] = 0;
	w[0] = htonl(0xa1b23c4d);
	w[1] = htonl(0x00020004);
	w[5] = htonl(101);
	write_bytes("snap0_be.pcap", w, sizeof(w));
	expect_open_error("snap0_be.pcap", (const char *[]){ "snaplen 0" }, 1);
}

static void test_error_record_cut_off(void **state)
{
	uint8_t b[256];
	struct drill_pcap *p;
	struct drill_pcap_pkt pkt;
	char err[512] = "", again[512] = "";
	size_t n;

	(void)state;
	n = put_header(b, 0xa1b2c3d4, 65535, 101);
	n += put_record(b + n, 20, 20, 20);
	n += put_record(b + n, 20, 20, 20);
	n += put_record(b + n, 40, 40, 40) - 25;	/* 15 of 40 bytes */
	write_bytes("cut.pcap", b, n);
	p = open_ok("cut.pcap");
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 1);
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 1);
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cut.pcap: record 3: "));
	assert_non_null(strstr(err, "truncated"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(drill_pcap_next(p, &pkt, again, sizeof(again)), -1);
	assert_string_equal(again, err);
	drill_pcap_close(p);

	/* Cut inside the second record's header. */
	n = put_header(b, 0xa1b2c3d4, 65535, 101);
	n += put_record(b + n, 20, 20, 20);
	write_bytes("cuthdr.pcap", b, n + 7);
	p = open_ok("cuthdr.pcap");
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), 1);
	assert_int_equal(drill_pcap_next(p, &pkt, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "record 2: "));
	drill_pcap_close(p);
}

static void test_error_unsupported_linktype(void **state)
{
	uint8_t frame80211[32] = { 0x08 };
	struct rec r = { frame80211, sizeof(frame80211), sizeof(frame80211), 1, 0 };

	(void)state;
	write_dump("wifi.pcap", DLT_IEEE802_11, 65535, PCAP_TSTAMP_PRECISION_MICRO, &r, 1);
	expect_open_error("wifi.pcap",
			  (const char *[]){ "wifi.pcap", "link type 105 (IEEE802_11)",
					    "not supported" }, 3);
}

static void test_skip_names(void **state)
{
	(void)state;
	for (int i = 0; i < DRILL_PCAP_SKIP_COUNT; i++) {
		assert_non_null(drill_pcap_skip_name(i));
		assert_string_not_equal(drill_pcap_skip_name(i), "unknown");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(drill_pcap_skip_name(i), drill_pcap_skip_name(j));
	}
	assert_string_equal(drill_pcap_skip_name(DRILL_PCAP_SKIP_COUNT), "unknown");
	assert_string_equal(drill_pcap_skip_name(DRILL_PCAP_SKIP_NOT_IP), "not_ip");
	drill_pcap_close(NULL);
}

/* ---- fixture ---- */

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_pcap.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	(void)state;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlink(path_of(e->d_name));
	if (d)
		closedir(d);
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_ipv4_ipv6_linktypes),
		cmocka_unit_test(test_ethernet_vlans),
		cmocka_unit_test(test_linux_cooked),
		cmocka_unit_test(test_null_loop),
		cmocka_unit_test(test_truncated_returned),
		cmocka_unit_test(test_nanosecond_file),
		cmocka_unit_test(test_pcapng),
		cmocka_unit_test(test_ethernet_pppoe),
		cmocka_unit_test(test_error_missing_and_not_a_file),
		cmocka_unit_test(test_error_magic_and_short_header),
		cmocka_unit_test(test_error_snaplen_zero),
		cmocka_unit_test(test_error_record_cut_off),
		cmocka_unit_test(test_error_unsupported_linktype),
		cmocka_unit_test(test_skip_names),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
