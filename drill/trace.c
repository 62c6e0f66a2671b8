/*
 * drill_trace: see drill/drill_trace.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drill_pcap.h"
#include "drill_trace.h"
#include "lb_pkt.h"

#define MAX_PKT 65535

static const char *const skip_names[DRILL_TRACE_SKIP_COUNT] = {
	"not IP", "truncated headers", "malformed", "fragment", "not TCP",
	"no service", "reply before its connection",
};

const char *drill_trace_skip_name(enum drill_trace_skip why)
{
	return why < DRILL_TRACE_SKIP_COUNT ? skip_names[why] : "?";
}

/* A small open-addressing map from client tuple to connection index. */
struct conn_map {
	uint32_t *slot;		/* conn index + 1; 0 empty */
	size_t size;		/* power of two */
};

struct loader {
	struct drill_trace *t;
	const struct lb_conf *conf;	/* NULL: --auto-services */
	struct conn_map map;
	size_t cap_pkts, cap_conns;
	uint64_t t0_us;
	int have_t0;
};

static int is_service(const struct lb_conf *c, const struct lb_addr *a, uint16_t port)
{
	for (size_t i = 0; i < c->nservices; i++)
		if (c->services[i].port == port && lb_addr_equal(&c->services[i].vip, a))
			return 1;
	return 0;
}

static int is_backend(const struct lb_conf *c, const struct lb_addr *a, uint16_t port)
{
	for (size_t i = 0; i < c->nservices; i++)
		for (size_t b = 0; b < c->services[i].nbackends; b++)
			if (c->services[i].backends[b].port == port &&
			    lb_addr_equal(&c->services[i].backends[b].addr, a))
				return 1;
	return 0;
}

static int map_grow(struct loader *l)
{
	struct conn_map old = l->map, m = { .size = old.size ? old.size * 2 : 1024 };

	m.slot = calloc(m.size, sizeof(*m.slot));
	if (!m.slot)
		return -1;
	l->map = m;
	for (size_t i = 0; i < old.size; i++) {
		if (!old.slot[i])
			continue;
		size_t h = lb_tuple_hash(&l->t->conns[old.slot[i] - 1].orig, 1) & (m.size - 1);

		while (m.slot[h])
			h = (h + 1) & (m.size - 1);
		m.slot[h] = old.slot[i];
	}
	free(old.slot);
	return 0;
}

/* The connection of a client tuple, created when create is set; -1 if none. */
static long conn_of(struct loader *l, const struct lb_tuple *orig, int create, size_t pkt)
{
	struct drill_trace *t = l->t;
	size_t h;

	if ((t->nconns + 1) * 2 > l->map.size && map_grow(l) < 0)
		return -1;
	for (h = lb_tuple_hash(orig, 1) & (l->map.size - 1); l->map.slot[h];
	     h = (h + 1) & (l->map.size - 1))
		if (lb_tuple_equal(&t->conns[l->map.slot[h] - 1].orig, orig))
			return (long)l->map.slot[h] - 1;
	if (!create)
		return -1;
	if (t->nconns == l->cap_conns) {
		size_t cap = l->cap_conns ? l->cap_conns * 2 : 256;
		struct drill_trace_conn *c = realloc(t->conns, cap * sizeof(*c));

		if (!c)
			return -1;
		t->conns = c;
		l->cap_conns = cap;
	}
	t->conns[t->nconns] = (struct drill_trace_conn){ .orig = *orig, .first = pkt,
							  .last = pkt, .syn = SIZE_MAX };
	l->map.slot[h] = (uint32_t)++t->nconns;
	return (long)t->nconns - 1;
}

/*
 * A backend's reply names the client but not the VIP: it belongs to the
 * client's connection that went to some VIP from that client port. The
 * services are few, so try each VIP.
 */
static long conn_of_backend_reply(struct loader *l, const struct lb_pkt_info *pi)
{
	for (size_t i = 0; i < l->conf->nservices; i++) {
		const struct lb_service_conf *s = &l->conf->services[i];
		struct lb_tuple orig = { .src = pi->tuple.dst, .dst = s->vip,
					 .sport = pi->tuple.dport, .dport = s->port };
		long c;

		if (s->vip.family != pi->tuple.src.family)
			continue;
		c = conn_of(l, &orig, 0, 0);
		if (c >= 0)
			return c;
	}
	return -1;
}

/*
 * A client SYN on a tuple whose connection ended (FIN or RST) is the next
 * connection on a reused port: a connection of its own, which the map
 * gives from now on. Returns its index, or -1 out of memory.
 */
static long conn_renew(struct loader *l, long old, size_t pkt)
{
	struct drill_trace *t = l->t;
	struct lb_tuple orig = t->conns[old].orig;
	size_t h;

	if (t->nconns == l->cap_conns) {
		size_t cap = l->cap_conns * 2;
		struct drill_trace_conn *c = realloc(t->conns, cap * sizeof(*c));

		if (!c)
			return -1;
		t->conns = c;
		l->cap_conns = cap;
	}
	for (h = lb_tuple_hash(&orig, 1) & (l->map.size - 1);
	     l->map.slot[h] != (uint32_t)old + 1; h = (h + 1) & (l->map.size - 1))
		;
	t->conns[t->nconns] = (struct drill_trace_conn){ .orig = orig, .first = pkt,
							  .last = pkt, .syn = SIZE_MAX };
	l->map.slot[h] = (uint32_t)++t->nconns;
	return (long)t->nconns - 1;
}

/* The connection a packet of connection c (or of the tuple's next one) belongs to. */
static long incarnation(struct loader *l, long c, const struct lb_pkt_info *pi, uint8_t dir,
			size_t pkt)
{
	if (c < 0 || !l->t->conns[c].ended || dir != LB_DIR_ORIG ||
	    (pi->flags & (LB_TCP_SYN | LB_TCP_ACK | LB_TCP_RST | LB_TCP_FIN)) != LB_TCP_SYN)
		return c;
	/* Grow the map first: conn_renew() adds a connection, not a slot. */
	if ((l->t->nconns + 1) * 2 > l->map.size && map_grow(l) < 0)
		return -1;
	return conn_renew(l, c, pkt);
}

#define CLASS_OK (-1)		/* classify(): keep the packet */
#define CLASS_NOMEM (-2)

/*
 * Which end of a connection not seen before sent this packet: the sender
 * of a SYN is the client, of a SYN/ACK the server; without either (the
 * capture began mid-connection) the server is the end with the lower port
 * (services listen on low, well-known ports; clients on ephemeral ones),
 * and between equal ports the lower address.
 */
static int sender_is_client(const struct lb_pkt_info *pi)
{
	const struct lb_tuple *tu = &pi->tuple;
	int c;

	if (pi->flags & LB_TCP_SYN)
		return !(pi->flags & LB_TCP_ACK);
	if (tu->sport != tu->dport)
		return tu->sport > tu->dport;
	c = memcmp(tu->src.bytes, tu->dst.bytes, lb_addr_len(&tu->src));
	return c > 0;
}

/* --auto-services: the connection decides, or the packet starts one. */
static int classify_auto(struct loader *l, const struct lb_pkt_info *pi, size_t pkt,
			 uint8_t *dir, long *conn)
{
	const struct lb_tuple *tu = &pi->tuple;
	struct lb_tuple rev = { .src = tu->dst, .dst = tu->src, .sport = tu->dport,
				.dport = tu->sport };
	int client;

	if ((*conn = conn_of(l, tu, 0, 0)) >= 0) {
		*dir = LB_DIR_ORIG;
		return CLASS_OK;
	}
	if ((*conn = conn_of(l, &rev, 0, 0)) >= 0) {
		*dir = LB_DIR_REPLY;
		return CLASS_OK;
	}
	client = sender_is_client(pi);
	if ((client ? tu->dport : tu->sport) == 0)
		return DRILL_TRACE_SKIP_MALFORMED;	/* no service listens on port 0 */
	*dir = client ? LB_DIR_ORIG : LB_DIR_REPLY;
	*conn = conn_of(l, client ? tu : &rev, 1, pkt);
	return *conn < 0 ? CLASS_NOMEM : CLASS_OK;
}

/* Direction and connection of a parsed packet, or the reason to skip it. */
static int classify(struct loader *l, const struct lb_pkt_info *pi, size_t pkt,
		    uint8_t *dir, long *conn)
{
	const struct lb_tuple *tu = &pi->tuple;

	if (!l->conf)
		return classify_auto(l, pi, pkt, dir, conn);
	if (is_service(l->conf, &tu->dst, tu->dport)) {
		*dir = LB_DIR_ORIG;
		*conn = conn_of(l, tu, 1, pkt);
	} else if (is_service(l->conf, &tu->src, tu->sport)) {
		struct lb_tuple orig = { .src = tu->dst, .dst = tu->src, .sport = tu->dport,
					 .dport = tu->sport };

		*dir = LB_DIR_REPLY;
		*conn = conn_of(l, &orig, 1, pkt);
	} else if (is_backend(l->conf, &tu->src, tu->sport)) {
		*dir = LB_DIR_REPLY;
		*conn = conn_of_backend_reply(l, pi);
		if (*conn < 0)
			return DRILL_TRACE_SKIP_ORPHAN;
	} else {
		return DRILL_TRACE_SKIP_NO_SERVICE;
	}
	return *conn < 0 ? CLASS_NOMEM : CLASS_OK;
}

static int skip_of(enum lb_pkt_result r)
{
	switch (r) {
	case LB_PKT_FRAGMENT: return DRILL_TRACE_SKIP_FRAGMENT;
	case LB_PKT_NOT_TCP: return DRILL_TRACE_SKIP_NOT_TCP;
	case LB_PKT_TRUNCATED: return DRILL_TRACE_SKIP_TRUNCATED;
	default: return DRILL_TRACE_SKIP_MALFORMED;
	}
}

static int push_pkt(struct loader *l, const uint8_t *data, size_t len, uint64_t index,
		    uint64_t ts_us, const struct lb_pkt_info *pi, uint8_t dir, long conn)
{
	struct drill_trace *t = l->t;
	struct drill_trace_pkt *p;
	struct drill_trace_conn *c = &t->conns[conn];

	if (t->npkts == l->cap_pkts) {
		size_t cap = l->cap_pkts ? l->cap_pkts * 2 : 1024;
		struct drill_trace_pkt *np = realloc(t->pkts, cap * sizeof(*np));

		if (!np)
			return -1;
		t->pkts = np;
		l->cap_pkts = cap;
	}
	p = &t->pkts[t->npkts];
	p->stored = (uint32_t)(len < DRILL_TRACE_HEAD ? len : DRILL_TRACE_HEAD);
	if ((size_t)pi->l4_off + pi->tcp_hlen > p->stored)
		p->stored = (uint32_t)pi->l4_off + pi->tcp_hlen;	/* long IPv6 chains */
	p->data = malloc(p->stored);
	if (!p->data)
		return -1;
	memcpy(p->data, data, p->stored);
	p->len = (uint32_t)len;
	p->index = index;
	p->ts_us = ts_us;
	p->conn = (uint32_t)conn;
	p->dir = dir;
	p->tcp_flags = pi->flags;
	if (dir == LB_DIR_ORIG && (pi->flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN &&
	    c->syn == SIZE_MAX)
		c->syn = t->npkts;
	if (pi->flags & (LB_TCP_FIN | LB_TCP_RST))
		c->ended = 1;
	c->last = t->npkts;
	c->npkts++;
	t->npkts++;
	return 0;
}

/*
 * A record's time from the first kept one, never earlier than the record
 * kept before it: captures written by several threads or merged from
 * several interfaces go back in time now and then, and the engines' clocks
 * must not (timeouts, replication intervals). Counted.
 */
static uint64_t rel_time(struct loader *l, uint64_t ts_us)
{
	uint64_t t = ts_us >= l->t0_us ? ts_us - l->t0_us : 0;

	if (l->t->npkts && t < l->t->pkts[l->t->npkts - 1].ts_us) {
		l->t->reordered++;
		t = l->t->pkts[l->t->npkts - 1].ts_us;
	}
	return t;
}

/*
 * One record of the capture: normalise, classify, keep or count. A record
 * the capture cut short is zero-filled to its length on the wire, which is
 * replayable only if the cut left its IP and TCP headers whole.
 */
static int take(struct loader *l, const struct drill_pcap_pkt *rec, uint8_t *buf)
{
	size_t len = rec->wirelen > MAX_PKT ? MAX_PKT : rec->wirelen;
	size_t have = rec->caplen < len ? rec->caplen : len;
	struct lb_pkt_info pi;
	enum lb_pkt_result r;
	uint8_t dir = 0;
	long conn = -1;
	int why;

	memcpy(buf, rec->data, have);
	memset(buf + have, 0, len - have);
	r = lb_pkt_parse(buf, len, &pi);
	if (r == LB_PKT_OK && (size_t)pi.l4_off + pi.tcp_hlen > have)
		r = LB_PKT_TRUNCATED;	/* the zeros stood in for header bytes */
	if (r != LB_PKT_OK) {
		/* Whatever a cut record looks like when filled with zeros, what
		 * is wrong with it is the cut. */
		l->t->skipped[have < len ? DRILL_TRACE_SKIP_TRUNCATED : skip_of(r)]++;
		return 0;
	}
	if (!l->have_t0) {
		l->t0_us = rec->ts_us;
		l->have_t0 = 1;
	}
	why = classify(l, &pi, l->t->npkts, &dir, &conn);
	if (why == CLASS_NOMEM)
		return -1;
	if (why != CLASS_OK) {
		l->t->skipped[why]++;
		return 0;
	}
	if ((conn = incarnation(l, conn, &pi, dir, l->t->npkts)) < 0)
		return -1;
	if (have < len)
		l->t->padded++;
	return push_pkt(l, buf, pi.ip_len, rec->index, rel_time(l, rec->ts_us), &pi, dir, conn);
}

/* Reads the capture; conf NULL: --auto-services. */
static int load(struct drill_trace *t, const char *path, const struct lb_conf *conf,
		char *err, size_t errlen)
{
	struct loader l = { .t = t, .conf = conf };
	struct drill_pcap *p;
	struct drill_pcap_pkt rec;
	uint8_t *buf = malloc(MAX_PKT);
	int rc;

	memset(t, 0, sizeof(*t));
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p = drill_pcap_open(path, err, errlen);
	if (!p) {
		free(buf);
		return -1;
	}
	snprintf(t->linktype, sizeof(t->linktype), "%s", drill_pcap_linktype(p));
	while ((rc = drill_pcap_next(p, &rec, err, errlen)) == 1) {
		t->records++;
		if (take(&l, &rec, buf) < 0) {
			snprintf(err, errlen, "out of memory at record %llu",
				 (unsigned long long)rec.index);
			rc = -1;
			break;
		}
	}
	for (int i = 0; i < DRILL_PCAP_SKIP_COUNT; i++)
		t->skipped[DRILL_TRACE_SKIP_LINK] += drill_pcap_skipped(p, (enum drill_pcap_skip)i);
	t->records += t->skipped[DRILL_TRACE_SKIP_LINK];
	drill_pcap_close(p);
	free(buf);
	free(l.map.slot);
	if (rc < 0) {
		drill_trace_free(t);
		return -1;
	}
	if (t->npkts == 0) {
		snprintf(err, errlen, "%s: no TCP packet%s (%llu records)", path,
			 conf ? " of a configured service" : "", (unsigned long long)t->records);
		drill_trace_free(t);
		return -1;
	}
	return 0;
}

int drill_trace_load(struct drill_trace *t, const char *path, const struct lb_conf *conf,
		     char *err, size_t errlen)
{
	return load(t, path, conf, err, errlen);
}

/* Orders servers (a connection's VIP:port) to find the distinct ones. */
static int by_server(const void *a, const void *b)
{
	const struct lb_tuple *x = a, *y = b;
	int c = (int)x->dst.family - (int)y->dst.family;

	if (!c)
		c = memcmp(x->dst.bytes, y->dst.bytes, sizeof(x->dst.bytes));
	if (!c)
		c = (int)x->dport - (int)y->dport;
	return c;
}

/*
 * The synthetic backend of the n-th service: 198.19.240.0/20 or
 * 2001:db8:ffff::/48 (documentation and benchmarking space, which a
 * capture of real traffic does not use), on the service's port.
 */
static void auto_backend(struct lb_backend_conf *be, const struct lb_service_conf *svc, size_t n)
{
	memset(be, 0, sizeof(*be));
	be->addr.family = svc->vip.family;
	be->port = svc->port;
	be->weight = 1;
	if (svc->vip.family == 2 /* AF_INET */) {
		uint32_t a = 0xc613f000u + (uint32_t)n + 1;	/* 198.19.240.0 + n + 1 */

		be->addr.bytes[0] = (uint8_t)(a >> 24);
		be->addr.bytes[1] = (uint8_t)(a >> 16);
		be->addr.bytes[2] = (uint8_t)(a >> 8);
		be->addr.bytes[3] = (uint8_t)a;
	} else {
		static const uint8_t pfx[6] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff };

		memcpy(be->addr.bytes, pfx, sizeof(pfx));
		be->addr.bytes[14] = (uint8_t)((n + 1) >> 8);
		be->addr.bytes[15] = (uint8_t)(n + 1);
	}
}

/* The distinct servers of t's connections, as services of conf. */
static int auto_services(const struct drill_trace *t, struct lb_conf *conf, char *err,
			 size_t errlen)
{
	struct lb_tuple *s = malloc(t->nconns * sizeof(*s));
	size_t n = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < t->nconns; i++)
		s[i] = t->conns[i].orig;
	qsort(s, t->nconns, sizeof(*s), by_server);
	for (size_t i = 0; i < t->nconns; i++)
		if (i == 0 || by_server(&s[i - 1], &s[i]))
			s[n++] = s[i];
	if (n > DRILL_TRACE_MAX_AUTO) {
		snprintf(err, errlen, "%zu servers in the capture; --auto-services makes at most "
			 "%d services (one backend each)", n, DRILL_TRACE_MAX_AUTO);
		free(s);
		return -1;
	}
	lb_conf_free(conf);
	conf->services = calloc(n, sizeof(*conf->services));
	for (size_t i = 0; conf->services && i < n; i++) {
		struct lb_service_conf *svc = &conf->services[i];

		svc->vip = s[i].dst;
		svc->port = s[i].dport;
		snprintf(svc->scheduler, sizeof(svc->scheduler), "rr");
		svc->backends = malloc(sizeof(*svc->backends));
		if (!svc->backends)
			break;
		svc->nbackends = 1;
		auto_backend(svc->backends, svc, i);
		conf->nservices = i + 1;
	}
	free(s);
	if (conf->nservices != n) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int drill_trace_load_auto(struct drill_trace *t, const char *path, struct lb_conf *conf,
			  char *err, size_t errlen)
{
	if (load(t, path, NULL, err, errlen) < 0)
		return -1;
	if (auto_services(t, conf, err, errlen) < 0) {
		drill_trace_free(t);
		return -1;
	}
	return 0;
}

void drill_trace_print_counts(const struct drill_trace *t, FILE *out)
{
	uint64_t skipped = 0;

	for (int i = 0; i < DRILL_TRACE_SKIP_COUNT; i++)
		skipped += t->skipped[i];
	fprintf(out, "  skipped          %llu", (unsigned long long)skipped);
	for (int i = 0, first = 1; i < DRILL_TRACE_SKIP_COUNT; i++)
		if (t->skipped[i]) {
			fprintf(out, "%s %s %llu", first ? ":" : ",", drill_trace_skip_name(i),
				(unsigned long long)t->skipped[i]);
			first = 0;
		}
	fprintf(out, "\n");
	if (t->padded)
		fprintf(out, "  zero-filled      %llu (cut short by the capture's snaplen)\n",
			(unsigned long long)t->padded);
	if (t->reordered)
		fprintf(out, "  out of order     %llu timestamps earlier than the packet before "
			     "(taken as its time)\n", (unsigned long long)t->reordered);
}

void drill_trace_free(struct drill_trace *t)
{
	for (size_t i = 0; i < t->npkts; i++)
		free(t->pkts[i].data);
	free(t->pkts);
	free(t->conns);
	memset(t, 0, sizeof(*t));
}
