/*
 * drill_pcap: IP packets out of a capture file (see drill_pcap.h).
 *
 * libpcap parses the file format; this file checks what libpcap does not
 * (a classic header's snaplen of 0, which libpcap quietly replaces) and
 * decodes the link-layer header of each record with a cursor that checks
 * every read against the record's captured length:
 *
 *   EN10MB      | dst 6 | src 6 | type 2 | (tpid 2 | tci 2 | type 2)... |
 *               ([PPPoE] ver/type 1 | code 1 | session 2 | length 2 | proto 2) | IP
 *   LINUX_SLL   | pkttype 2 | hatype 2 | addrlen 2 | addr 8 | type 2 | IP
 *   LINUX_SLL2  | type 2 | 0 2 | ifindex 4 | hatype 2 | pkttype 1 |
 *               | addrlen 1 | addr 8 | IP
 *   NULL, LOOP  | family 4 | IP
 *   RAW, IPV4, IPV6                    | IP
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errbuf.h"
#include "drill_pcap.h"

#define ETH_HLEN	14
#define SLL_HLEN	16
#define SLL2_HLEN	20
#define NULL_HLEN	4
#define ETHERTYPE_IPV4	0x0800
#define ETHERTYPE_IPV6	0x86dd
#define ETHERTYPE_PPPOE	0x8864		/* PPPoE session stage */
#define PPPOE_HLEN	6		/* ver/type, code, session, length */
#define PPP_IPV4	0x0021
#define PPP_IPV6	0x0057
#define PCAP_HDR_LEN	24		/* a classic pcap file header */
#define PCAP_SNAPLEN_AT	16

/* What link_decode() returns when it found an IP header. */
#define LINK_IP		DRILL_PCAP_SKIP_COUNT

enum reader_state { READING, AT_END, FAILED };

struct drill_pcap {
	pcap_t *pcap;
	char *path;
	int dlt;
	enum reader_state state;
	uint64_t records;		/* read so far, skipped ones included */
	uint64_t skipped[DRILL_PCAP_SKIP_COUNT];
	uint64_t truncated;
	char error[PCAP_ERRBUF_SIZE + 256];
};

static const char *const skip_names[DRILL_PCAP_SKIP_COUNT] = {
	[DRILL_PCAP_SKIP_NOT_IP] = "not_ip",
	[DRILL_PCAP_SKIP_SHORT] = "short",
	[DRILL_PCAP_SKIP_VLAN_DEPTH] = "vlan_depth",
	[DRILL_PCAP_SKIP_IP_VERSION] = "ip_version",
	[DRILL_PCAP_SKIP_BAD_LEN] = "bad_len",
};

/* ---- link-layer headers ---- */

/* Reads a big-endian 16-bit field at *p and moves past it; -1 if it does not fit. */
static int take16(const uint8_t **p, const uint8_t *end, uint16_t *v)
{
	uint16_t n;

	if (end - *p < 2)
		return -1;
	memcpy(&n, *p, 2);
	*v = ntohs(n);
	*p += 2;
	return 0;
}

static int skip_bytes(const uint8_t **p, const uint8_t *end, size_t n)
{
	if ((size_t)(end - *p) < n)
		return -1;
	*p += n;
	return 0;
}

static int is_vlan_tpid(uint16_t type)
{
	return type == 0x8100 || type == 0x88a8 || type == 0x9100;
}

/*
 * From an EtherType at the cursor's back (type), past any VLAN tags and a
 * PPPoE session header (PPP protocol IPv4 or IPv6), to the IP version it
 * announces (*version 4 or 6). Returns LINK_IP or a skip reason.
 */
static int ethertype_ip(const uint8_t **p, const uint8_t *end, uint16_t type, int *version)
{
	for (int tags = 0; is_vlan_tpid(type); tags++) {
		if (tags == DRILL_PCAP_MAX_VLANS)
			return DRILL_PCAP_SKIP_VLAN_DEPTH;
		if (skip_bytes(p, end, 2) < 0 || take16(p, end, &type) < 0)	/* TCI, type */
			return DRILL_PCAP_SKIP_SHORT;
	}
	if (type == ETHERTYPE_PPPOE) {
		/* RFC 2516: the PPP protocol follows, uncompressed. */
		if (skip_bytes(p, end, PPPOE_HLEN) < 0 || take16(p, end, &type) < 0)
			return DRILL_PCAP_SKIP_SHORT;
		type = type == PPP_IPV4 ? ETHERTYPE_IPV4 : type == PPP_IPV6 ? ETHERTYPE_IPV6 : 0;
	}
	if (type == ETHERTYPE_IPV4)
		*version = 4;
	else if (type == ETHERTYPE_IPV6)
		*version = 6;
	else
		return DRILL_PCAP_SKIP_NOT_IP;
	return LINK_IP;
}

/* BSD address families of IPv6 on the systems that write DLT_NULL/LOOP. */
static int is_af_inet6(uint32_t family)
{
	return family == 10 /* Linux */ || family == 23 /* Windows */ ||
	       family == 24 /* OpenBSD, NetBSD */ || family == 28 /* FreeBSD */ ||
	       family == 30 /* Darwin */;
}

/*
 * DLT_NULL's family is in the writer's byte order (LOOP's is big-endian),
 * but every family fits in 16 bits: a value with its low half zero was
 * written in the other order.
 */
static int null_family(const uint8_t **p, const uint8_t *end, int *version)
{
	uint32_t family;

	if (end - *p < NULL_HLEN)
		return DRILL_PCAP_SKIP_SHORT;
	memcpy(&family, *p, 4);
	family = ntohl(family);
	if ((family & 0xffff) == 0)
		family = __builtin_bswap32(family);
	*p += NULL_HLEN;
	if (family == 2)
		*version = 4;
	else if (is_af_inet6(family))
		*version = 6;
	else
		return DRILL_PCAP_SKIP_NOT_IP;
	return LINK_IP;
}

/*
 * Where the IP header of one record starts. *version is what the link
 * layer announces (0: RAW, which announces nothing). Returns LINK_IP or
 * the reason to skip.
 */
static int link_header(int dlt, const uint8_t **p, const uint8_t *end, int *version)
{
	uint16_t type;

	*version = 0;
	switch (dlt) {
	case DLT_RAW:
		return LINK_IP;
	case DLT_IPV4:
		*version = 4;
		return LINK_IP;
	case DLT_IPV6:
		*version = 6;
		return LINK_IP;
	case DLT_EN10MB:
		if (skip_bytes(p, end, 12) < 0 || take16(p, end, &type) < 0)
			return DRILL_PCAP_SKIP_SHORT;
		return ethertype_ip(p, end, type, version);
	case DLT_LINUX_SLL:
		if (skip_bytes(p, end, SLL_HLEN - 2) < 0 || take16(p, end, &type) < 0)
			return DRILL_PCAP_SKIP_SHORT;
		return ethertype_ip(p, end, type, version);
	case DLT_LINUX_SLL2:
		if (take16(p, end, &type) < 0 || skip_bytes(p, end, SLL2_HLEN - 2) < 0)
			return DRILL_PCAP_SKIP_SHORT;
		return ethertype_ip(p, end, type, version);
	case DLT_NULL:
	case DLT_LOOP:
		return null_family(p, end, version);
	}
	return DRILL_PCAP_SKIP_NOT_IP;	/* refused at open; not reached */
}

/* Link header, then the IP version nibble it must agree with. */
static int link_decode(int dlt, const uint8_t *rec, size_t caplen, size_t *ip_off)
{
	const uint8_t *p = rec, *end = rec + caplen;
	int version, rc = link_header(dlt, &p, end, &version), nibble;

	if (rc != LINK_IP)
		return rc;
	if (p == end)
		return DRILL_PCAP_SKIP_SHORT;
	nibble = *p >> 4;
	if (version == 0 && nibble != 4 && nibble != 6)
		return DRILL_PCAP_SKIP_NOT_IP;
	if (version != 0 && nibble != version)
		return DRILL_PCAP_SKIP_IP_VERSION;
	*ip_off = (size_t)(p - rec);
	return LINK_IP;
}

static int dlt_supported(int dlt)
{
	switch (dlt) {
	case DLT_EN10MB: case DLT_RAW: case DLT_IPV4: case DLT_IPV6:
	case DLT_LINUX_SLL: case DLT_LINUX_SLL2: case DLT_NULL: case DLT_LOOP:
		return 1;
	}
	return 0;
}

/* ---- opening ---- */

/*
 * libpcap replaces a classic header's snaplen of 0 by the link type's
 * maximum, so the file's own header is read here first. (In pcapng a
 * snaplen of 0 means "no limit" and is fine.) Leaves fp at the start.
 * Returns 0, or -1 with a message.
 */
static int check_header(FILE *fp, const char *path, char *err, size_t errlen)
{
	uint8_t h[PCAP_HDR_LEN];
	size_t n = fread(h, 1, sizeof(h), fp);
	uint32_t be, le, snaplen = 1;

	if (n == sizeof(h)) {
		memcpy(&be, h, 4);
		be = ntohl(be);
		le = __builtin_bswap32(be);
		memcpy(&snaplen, h + PCAP_SNAPLEN_AT, 4);
		snaplen = ntohl(snaplen);
		if (le == 0xa1b2c3d4 || le == 0xa1b23c4d || le == 0xa1b2cd34)
			snaplen = __builtin_bswap32(snaplen);
		else if (be != 0xa1b2c3d4 && be != 0xa1b23c4d && be != 0xa1b2cd34)
			snaplen = 1;	/* not classic pcap: libpcap decides */
	}
	if (fseek(fp, 0, SEEK_SET) != 0) {
		errbuf_printf(err, errlen, "%s: cannot rewind: %s", path, strerror(errno));
		return -1;
	}
	if (snaplen == 0) {
		errbuf_printf(err, errlen, "%s: snaplen 0 in the file header", path);
		return -1;
	}
	return 0;
}

/* Opens path as a regular file for reading; NULL with a message. */
static FILE *open_regular(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;

	if (!fp) {
		errbuf_printf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		errbuf_printf(err, errlen, "%s: not a regular file", path);
		fclose(fp);
		return NULL;
	}
	if (st.st_size == 0) {
		errbuf_printf(err, errlen, "%s: empty file", path);
		fclose(fp);
		return NULL;
	}
	return fp;
}

/* libpcap over fp, which it owns from then on (also on failure: closed). */
static pcap_t *pcap_over(FILE *fp, const char *path, char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO,
							      ebuf);

	if (pc)
		return pc;
	fclose(fp);
	if (strstr(ebuf, "unknown file format"))
		errbuf_printf(err, errlen, "%s: not a pcap or pcapng file (unknown magic number)", path);
	else
		errbuf_printf(err, errlen, "%s: %s", path, ebuf);
	return NULL;
}

struct drill_pcap *drill_pcap_open(const char *path, char *err, size_t errlen)
{
	struct drill_pcap *p = calloc(1, sizeof(*p));
	const char *name;
	FILE *fp;

	if (!p || !(p->path = strdup(path))) {
		errbuf_printf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}
	if (!(fp = open_regular(path, err, errlen)))
		goto fail;
	if (check_header(fp, path, err, errlen) < 0) {
		fclose(fp);
		goto fail;
	}
	if (!(p->pcap = pcap_over(fp, path, err, errlen)))
		goto fail;
	if (pcap_snapshot(p->pcap) <= 0) {	/* what libpcap once reported */
		errbuf_printf(err, errlen, "%s: snaplen 0 in the file header", path);
		goto fail;
	}
	p->dlt = pcap_datalink(p->pcap);
	if (!dlt_supported(p->dlt)) {
		name = pcap_datalink_val_to_name(p->dlt);
		errbuf_printf(err, errlen,
			"%s: link type %d (%s) is not supported (EN10MB, RAW, IPV4, IPV6, "
			"LINUX_SLL, LINUX_SLL2, NULL, LOOP)",
			path, p->dlt, name ? name : "unknown");
		goto fail;
	}
	return p;
fail:
	drill_pcap_close(p);
	return NULL;
}

/* ---- reading ---- */

/* Records the reader's failure; every later call repeats it. */
static int reader_fail(struct drill_pcap *p, char *err, size_t errlen, const char *why)
{
	snprintf(p->error, sizeof(p->error), "%s: record %llu: %s", p->path,
		 (unsigned long long)p->records + 1, why);
	p->state = FAILED;
	errbuf_printf(err, errlen, "%s", p->error);
	return -1;
}

/*
 * A classic pcap record's time fields are unsigned 32 bits, but libpcap
 * reads them as signed: past 2038 the seconds arrive negative, and are
 * taken back here.
 */
static uint64_t ts_us(const struct timeval *tv)
{
	uint64_t sec = tv->tv_sec < 0 ? (uint32_t)tv->tv_sec : (uint64_t)tv->tv_sec;
	uint64_t usec = tv->tv_usec < 0 ? (uint32_t)tv->tv_usec : (uint64_t)tv->tv_usec;

	return sec * 1000000u + usec;
}

int drill_pcap_next(struct drill_pcap *p, struct drill_pcap_pkt *pkt, char *err, size_t errlen)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	size_t off;
	int rc;

	while (p->state == READING) {
		rc = pcap_next_ex(p->pcap, &h, &data);
		if (rc == PCAP_ERROR_BREAK) {
			p->state = AT_END;
			break;
		}
		if (rc != 1)
			return reader_fail(p, err, errlen, rc == PCAP_ERROR ? pcap_geterr(p->pcap)
									: "unexpected result");
		p->records++;
		if (h->len < h->caplen) {
			p->skipped[DRILL_PCAP_SKIP_BAD_LEN]++;
			continue;
		}
		if ((rc = link_decode(p->dlt, data, h->caplen, &off)) != LINK_IP) {
			p->skipped[rc]++;
			continue;
		}
		*pkt = (struct drill_pcap_pkt){
			.data = data + off,
			.caplen = h->caplen - off,
			.wirelen = h->len - off,
			.ts_us = ts_us(&h->ts),
			.index = p->records,
		};
		if (pkt->caplen < pkt->wirelen)
			p->truncated++;
		return 1;
	}
	if (p->state == FAILED) {
		errbuf_printf(err, errlen, "%s", p->error);
		return -1;
	}
	return 0;
}

uint64_t drill_pcap_skipped(const struct drill_pcap *p, enum drill_pcap_skip why)
{
	return (unsigned)why < DRILL_PCAP_SKIP_COUNT ? p->skipped[why] : 0;
}

const char *drill_pcap_skip_name(enum drill_pcap_skip why)
{
	return (unsigned)why < DRILL_PCAP_SKIP_COUNT ? skip_names[why] : "unknown";
}

uint64_t drill_pcap_truncated(const struct drill_pcap *p)
{
	return p->truncated;
}

const char *drill_pcap_linktype(const struct drill_pcap *p)
{
	const char *name = pcap_datalink_val_to_name(p->dlt);

	return name ? name : "unknown";
}

void drill_pcap_close(struct drill_pcap *p)
{
	if (!p)
		return;
	if (p->pcap)
		pcap_close(p->pcap);
	free(p->path);
	free(p);
}
