/*
 * sync_codec: see include/sync_codec.h.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lbsync.pb-c.h"
#include "sync_codec.h"

/* Field numbers of Batch (sync/lbsync.proto). */
enum { F_VERSION = 1, F_CONNS = 2, F_DELETES = 3, F_PERSISTS = 4, F_RESYNC_DONE = 5,
       F_COMPACT = 6, F_BASE_US = 7, F_ENDPOINTS = 8, F_CLIENTS = 9, F_OPEN_BASE = 10,
       F_OPENS = 11, F_CHANGE_BASE = 12, F_CHANGES = 13 };

#define PEER_VALUES 8		/* Compact.peers: 4 per direction */
#define PEER_WS_MAX 0xfff	/* wscale (4 bits) | flags (8 bits) << 4 */
/* Entries of a batch's address lists: a datagram holds fewer records than
 * this, and an Open adds at most one client and two endpoints. */
#define DICT_MAX 256
#define PRE_MAX 192		/* fields written ahead of one record, at most */

/* Version 4's columns (Batch fields 14 to 29), in field order. */
enum col { C_CLIENT, C_CLIENT_PORT, C_SERVICE, C_BACKEND, C_CREATED, C_STATE, C_ISN, C_PEERS,
	   C_EXPIRES, C_RATE, C_PERSIST, C_CLOSE_ID, C_CLOSE_STATE, C_CLOSE_ENDS,
	   C_CLOSE_EXPIRES, C_CLOSE_ISN, COLS };
#define F_COL0 14
#define STAGE_MAX 48		/* one record's bytes in one column, at most */

struct endpoint {
	struct lb_addr ip;
	uint16_t port;
};

struct sync_batch {
	uint8_t *buf;
	size_t len, cap;
	size_t records;
	int has_base;		/* base_us written */
	uint64_t base_us;
	/* Version 3: the lists Opens name entries of, and the id bases. */
	struct endpoint endpoints[DICT_MAX];
	struct lb_addr clients[DICT_MAX];
	size_t n_endpoints, n_clients;
	uint64_t open_base, change_base;	/* 0: not written yet */
	size_t n_opens;
	/* Version 4: the columns, laid after buf when the batch is taken. */
	uint8_t *col[COLS];
	size_t col_len[COLS];
	size_t cols_len;		/* what they add, tags and lengths included */
	uint64_t last_close_id;
	uint8_t *out;			/* buf and the columns, assembled */
};

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

void sync_batch_reset(struct sync_batch *b)
{
	/* Every batch starts with its record format version. */
	b->len = put_varint(b->buf, (F_VERSION << 3) | 0);
	b->len += put_varint(b->buf + b->len, SYNC_RECORD_VERSION);
	b->records = 0;
	b->has_base = 0;
	b->n_endpoints = b->n_clients = 0;
	b->open_base = b->change_base = 0;
	b->n_opens = 0;
	memset(b->col_len, 0, sizeof(b->col_len));
	b->cols_len = 0;
	b->last_close_id = 0;
}

struct sync_batch *sync_batch_new(size_t max_payload)
{
	struct sync_batch *b;

	if (max_payload < 64) {
		errno = EINVAL;
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	/* buf, the output, then each column (none outgrows the payload). */
	if (!b || !(b->buf = malloc(max_payload * (COLS + 2)))) {
		free(b);
		errno = ENOMEM;
		return NULL;
	}
	b->out = b->buf + max_payload;
	for (int c = 0; c < COLS; c++)
		b->col[c] = b->buf + max_payload * (size_t)(c + 2);
	b->cap = max_payload;
	sync_batch_reset(b);
	return b;
}

void sync_batch_free(struct sync_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

size_t sync_batch_records(const struct sync_batch *b)
{
	return b->records;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A column's bytes in the payload: tag, length, entries (none: nothing). */
static size_t col_bytes(int c, size_t len)
{
	return len ? varint_len((uint64_t)(F_COL0 + c) << 3) + varint_len(len) + len : 0;
}

size_t sync_batch_len(const struct sync_batch *b)
{
	return b->len + b->cols_len;
}

const uint8_t *sync_batch_data(const struct sync_batch *b, size_t *len)
{
	size_t n = b->len;

	if (!b->cols_len) {
		*len = n;
		return b->buf;
	}
	/* A packed repeated field is a length-delimited field like any other,
	 * so the columns follow the fields written record by record. */
	memcpy(b->out, b->buf, n);
	for (int c = 0; c < COLS; c++) {
		if (!b->col_len[c])
			continue;
		n += put_varint(b->out + n, ((uint64_t)(F_COL0 + c) << 3) | 2);
		n += put_varint(b->out + n, b->col_len[c]);
		memcpy(b->out + n, b->col[c], b->col_len[c]);
		n += b->col_len[c];
	}
	*len = n;
	return b->out;
}

/*
 * Appends one packed message as an element of repeated field `field`,
 * after `pre` (other fields of Batch that must come with it, or nothing).
 */
static int append_after(struct sync_batch *b, const uint8_t *pre, size_t plen, int field,
			const ProtobufCMessage *msg)
{
	uint8_t head[16];
	size_t size = protobuf_c_message_get_packed_size(msg), hlen;

	hlen = put_varint(head, ((uint64_t)field << 3) | 2);
	hlen += put_varint(head + hlen, size);
	if (plen + hlen + size + 8 > b->cap)
		return -EMSGSIZE;
	if (sync_batch_len(b) + plen + hlen + size > b->cap)
		return -ENOSPC;
	if (plen)
		memcpy(b->buf + b->len, pre, plen);
	memcpy(b->buf + b->len + plen, head, hlen);
	protobuf_c_message_pack(msg, b->buf + b->len + plen + hlen);
	b->len += plen + hlen + size;
	b->records++;
	return 0;
}

static int append(struct sync_batch *b, int field, const ProtobufCMessage *msg)
{
	return append_after(b, NULL, 0, field, msg);
}

static ProtobufCBinaryData addr_bytes(const struct lb_addr *a)
{
	return (ProtobufCBinaryData){ lb_addr_len(a), (uint8_t *)a->bytes };
}

/* Compact.peers of one direction: values relative to what the record holds. */
static void peer_pack(uint32_t *v, const struct lb_tcp_peer *p, uint32_t isn)
{
	v[0] = p->end - isn;
	v[1] = p->maxend - p->end;
	v[2] = p->maxwin;
	v[3] = (uint32_t)(p->wscale & 0xf) | (uint32_t)p->flags << 4;
}

/*
 * Open.peers and Change.peers (version 3): as Compact's, except that a
 * side's maxwin is told against the window the other side's bounds imply
 * (its maxend - end), which is almost always the same value.
 */
static void peers_pack3(uint32_t *v, const struct lb_tcp *t)
{
	for (int d = 0; d < 2; d++) {
		const struct lb_tcp_peer *o = &t->peer[!d];

		peer_pack(v + 4 * d, &t->peer[d], t->isn[d]);
		v[4 * d + 2] -= o->maxend - o->end;
	}
}

/* Sets an optional uint32 field, leaving zeros out. */
#define OPT(m, f, v) do { (m).f = (v); (m).has_##f = (m).f != 0; } while (0)

/* The fields every connection record (Compact, Open, Change) ends with. */
#define OPT_TAIL(m, st) do {					\
	OPT(m, expires_ms, (st)->expires_ms);			\
	OPT(m, rate_orig, (st)->rate[0]);			\
	OPT(m, rate_reply, (st)->rate[1]);			\
	OPT(m, persist_ms, (st)->persist_ms);			\
} while (0)

/* ... and back: absent is 0. */
#define TAIL_FROM(st, m) do {					\
	(st)->expires_ms = (m)->has_expires_ms ? (m)->expires_ms : 0;	\
	(st)->rate[0] = (m)->has_rate_orig ? (m)->rate_orig : 0;	\
	(st)->rate[1] = (m)->has_rate_reply ? (m)->rate_reply : 0;	\
	(st)->persist_ms = (m)->has_persist_ms ? (m)->persist_ms : 0;	\
} while (0)

/* Bytes ahead of a record: other Batch fields it needs, written with it. */
struct pre {
	uint8_t buf[PRE_MAX];
	size_t len;
};

static void pre_varint(struct pre *p, int field, uint64_t v)
{
	p->len += put_varint(p->buf + p->len, (uint64_t)field << 3);
	p->len += put_varint(p->buf + p->len, v);
}

static void pre_bytes(struct pre *p, int field, const uint8_t *data, size_t len)
{
	p->len += put_varint(p->buf + p->len, ((uint64_t)field << 3) | 2);
	p->len += put_varint(p->buf + p->len, len);
	memcpy(p->buf + p->len, data, len);
	p->len += len;
}

/* The batch's creation-time base: the batch's first connection sets it
 * (written ahead of that record); the others are told against it. */
static uint64_t pre_base(const struct sync_batch *b, const struct lb_conn_state *st,
			 struct pre *p)
{
	if (b->has_base)
		return b->base_us;
	pre_varint(p, F_BASE_US, st->created_us);
	return st->created_us;
}

static void commit_base(struct sync_batch *b, uint64_t base)
{
	b->has_base = 1;
	b->base_us = base;
}

/* Packed window values that are all zero (a tracker that saw nothing, or
 * nothing moved) are left out. */
static int all_zero(const uint32_t *v)
{
	for (int i = 0; i < PEER_VALUES; i++) {
		if (v[i])
			return 0;
	}
	return 1;
}

int sync_batch_add_conn(struct sync_batch *b, const struct lb_conn_state *st)
{
	Lbsync__Compact m;
	uint32_t peers[PEER_VALUES];
	struct pre p = { .len = 0 };
	uint64_t base = pre_base(b, st, &p);
	int rc;

	lbsync__compact__init(&m);
	m.client_ip = addr_bytes(&st->orig.src);
	m.client_port = st->orig.sport;
	m.vip = addr_bytes(&st->orig.dst);
	m.vport = st->orig.dport;
	m.backend_ip = addr_bytes(&st->backend);
	m.backend_port = st->backend_port;
	m.created = (int64_t)(st->created_us - base);
	m.version = st->version;
	m.state = st->tcp.state;
	OPT(m, isn_orig, st->tcp.isn[0]);
	OPT(m, isn_reply, st->tcp.isn[1]);
	peer_pack(peers, &st->tcp.peer[0], st->tcp.isn[0]);
	peer_pack(peers + 4, &st->tcp.peer[1], st->tcp.isn[1]);
	if (!all_zero(peers)) {
		m.n_peers = PEER_VALUES;
		m.peers = peers;
	}
	OPT_TAIL(m, st);
	rc = append_after(b, p.buf, p.len, F_COMPACT, &m.base);
	if (rc == 0)
		commit_base(b, base);
	return rc;
}

/* ---- version 3: Open and Change ---- */

/* Index of a client address in the batch's list; a new one is added to the
 * list only in *n (committed once the record fits). */
static uint32_t client_index(const struct sync_batch *b, const struct lb_addr *a, size_t *n,
			     struct pre *p)
{
	for (size_t i = 0; i < *n; i++) {
		if (lb_addr_equal(&b->clients[i], a))
			return (uint32_t)i;
	}
	pre_bytes(p, F_CLIENTS, a->bytes, lb_addr_len(a));
	return (uint32_t)(*n)++;
}

static uint32_t endpoint_index(const struct sync_batch *b, const struct endpoint *e,
			       const struct endpoint *pending, size_t *n, struct pre *p)
{
	Lbsync__Endpoint m = LBSYNC__ENDPOINT__INIT;
	uint8_t enc[32];

	for (size_t i = 0; i < *n; i++) {
		const struct endpoint *have = i < b->n_endpoints ? &b->endpoints[i] : pending;

		if (have->port == e->port && lb_addr_equal(&have->ip, &e->ip))
			return (uint32_t)i;
	}
	m.ip = addr_bytes(&e->ip);
	m.port = e->port;
	pre_bytes(p, F_ENDPOINTS, enc, lbsync__endpoint__pack(&m, enc));
	return (uint32_t)(*n)++;
}

uint64_t sync_batch_next_open(const struct sync_batch *b)
{
	return b->open_base ? b->open_base + b->n_opens : 0;
}

/* ---- version 4: columns ---- */

/* One record's entries, column by column, before it is known to fit. */
struct stage {
	uint8_t buf[COLS][STAGE_MAX];
	size_t len[COLS];
	size_t backfill;	/* zeros owed to open_persist_ms first */
};

static void stage_init(struct stage *s)
{
	memset(s->len, 0, sizeof(s->len));	/* buf is written before it is read */
	s->backfill = 0;
}

static void stage_varint(struct stage *s, enum col c, uint64_t v)
{
	s->len[c] += put_varint(s->buf[c] + s->len[c], v);
}

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void stage_fixed32(struct stage *s, enum col c, uint32_t v)
{
	uint32_t le = htole32(v);

	memcpy(s->buf[c] + s->len[c], &le, 4);
	s->len[c] += 4;
}

/* What the columns would add with s staged. */
static size_t staged_cols_len(const struct sync_batch *b, const struct stage *s)
{
	size_t n = 0;

	for (int c = 0; c < COLS; c++) {
		size_t extra = s->len[c] + (c == C_PERSIST ? s->backfill : 0);

		n += col_bytes(c, b->col_len[c] + extra);
	}
	return n;
}

/*
 * Adds the staged record when it fits next to pre (fields written ahead
 * of it). Returns 0, -ENOSPC, or -EMSGSIZE when it fits no batch at all.
 */
static int stage_commit(struct sync_batch *b, const struct stage *s, const struct pre *p)
{
	size_t cols = staged_cols_len(b, s);

	if (b->len + p->len + cols > b->cap)
		return b->records ? -ENOSPC : -EMSGSIZE;
	memcpy(b->buf + b->len, p->buf, p->len);
	b->len += p->len;
	if (s->backfill) {
		memset(b->col[C_PERSIST] + b->col_len[C_PERSIST], 0, s->backfill);
		b->col_len[C_PERSIST] += s->backfill;
	}
	for (int c = 0; c < COLS; c++) {
		memcpy(b->col[c] + b->col_len[c], s->buf[c], s->len[c]);
		b->col_len[c] += s->len[c];
	}
	b->cols_len = cols;
	b->records++;
	return 0;
}

/* Milliseconds as seconds, rounded up: a standby keeps an entry up to a
 * second longer, never shorter. */
static uint32_t ms_to_s(uint32_t ms)
{
	return (uint32_t)(((uint64_t)ms + 999) / 1000);
}

/* Bytes/s as KiB/s, rounded up: a rate only sizes the takeover slack. */
static uint32_t rate_to_kib(uint32_t rate)
{
	return (uint32_t)(((uint64_t)rate + 1023) / 1024);
}

int sync_batch_add_open(struct sync_batch *b, uint64_t id, const struct lb_conn_state *st)
{
	uint32_t peers[PEER_VALUES];
	struct endpoint svc = { st->orig.dst, st->orig.dport };
	struct endpoint be = { st->backend, st->backend_port };
	struct pre p = { .len = 0 };
	struct stage s;
	size_t nc = b->n_clients, ne = b->n_endpoints;
	uint32_t client, service, backend;
	uint64_t base;
	int rc;

	if (!id || (b->open_base && id != b->open_base + b->n_opens))
		return -EINVAL;
	if (nc == DICT_MAX || ne + 2 > DICT_MAX)
		return b->records ? -ENOSPC : -EMSGSIZE;
	stage_init(&s);
	base = pre_base(b, st, &p);
	if (!b->open_base)
		pre_varint(&p, F_OPEN_BASE, id);
	client = client_index(b, &st->orig.src, &nc, &p);
	service = endpoint_index(b, &svc, NULL, &ne, &p);
	/* The backend may equal the service just added (not yet in the list). */
	backend = endpoint_index(b, &be, &svc, &ne, &p);
	stage_varint(&s, C_CLIENT, client);
	stage_varint(&s, C_CLIENT_PORT, st->orig.sport);
	stage_varint(&s, C_SERVICE, service);
	stage_varint(&s, C_BACKEND, backend);
	stage_varint(&s, C_CREATED, zigzag((int64_t)(st->created_us - base)));
	stage_varint(&s, C_STATE, st->tcp.state | (uint64_t)st->version << 4);
	stage_fixed32(&s, C_ISN, st->tcp.isn[0]);
	stage_fixed32(&s, C_ISN, st->tcp.isn[1]);
	peers_pack3(peers, &st->tcp);
	for (int i = 0; i < PEER_VALUES; i++)
		stage_varint(&s, C_PEERS, zigzag((int32_t)peers[i]));
	stage_varint(&s, C_EXPIRES, ms_to_s(st->expires_ms));
	stage_varint(&s, C_RATE, rate_to_kib(st->rate[0]));
	stage_varint(&s, C_RATE, rate_to_kib(st->rate[1]));
	/* The persistence column stays empty while every Open's is 0. */
	if (st->persist_ms || b->col_len[C_PERSIST]) {
		if (!b->col_len[C_PERSIST])
			s.backfill = b->n_opens;
		stage_varint(&s, C_PERSIST, st->persist_ms);
	}
	rc = stage_commit(b, &s, &p);
	if (rc)
		return rc;
	/* It fits: the lists and bases it wrote are the batch's now. */
	if (client == b->n_clients)
		b->clients[b->n_clients++] = st->orig.src;
	if (service == b->n_endpoints)
		b->endpoints[b->n_endpoints++] = svc;
	if (backend == b->n_endpoints)	/* new, and not the service */
		b->endpoints[b->n_endpoints++] = be;
	commit_base(b, base);
	if (!b->open_base)
		b->open_base = id;
	b->n_opens++;
	return 0;
}

/* A close carries the reply ISN when its Open, made at the SYN, had none. */
static int close_with_isn(const struct lb_conn_state *base, const struct lb_conn_state *st)
{
	return !base->tcp.isn[1] && st->tcp.isn[1];
}

int sync_batch_can_close(const struct lb_conn_state *base, const struct lb_conn_state *st)
{
	return lb_tcp_state_closed(st->tcp.state) &&
	       st->tcp.isn[0] == base->tcp.isn[0] &&
	       (st->tcp.isn[1] == base->tcp.isn[1] || close_with_isn(base, st)) &&
	       st->version > base->version;
}

int sync_batch_add_close(struct sync_batch *b, uint64_t id, const struct lb_conn_state *base,
			 const struct lb_conn_state *st)
{
	struct pre p = { .len = 0 };
	struct stage s;
	int rc, isn;

	if (!id || !sync_batch_can_close(base, st))
		return -EINVAL;
	stage_init(&s);
	isn = close_with_isn(base, st);
	stage_varint(&s, C_CLOSE_ID, zigzag((int64_t)(id - b->last_close_id)));
	stage_varint(&s, C_CLOSE_STATE, (uint64_t)(st->version - base->version) << 2 |
					    (uint64_t)isn << 1 | (st->tcp.state == LB_TCP_CLOSE));
	/* Each end against the Open's, or against the ISN the close carries. */
	for (int d = 0; d < 2; d++) {
		uint32_t from = d == LB_DIR_REPLY && isn ? st->tcp.isn[d] : base->tcp.peer[d].end;

		stage_varint(&s, C_CLOSE_ENDS, zigzag((int32_t)(st->tcp.peer[d].end - from)));
	}
	stage_varint(&s, C_CLOSE_EXPIRES, ms_to_s(st->expires_ms));
	if (isn)
		stage_fixed32(&s, C_CLOSE_ISN, st->tcp.isn[LB_DIR_REPLY]);
	rc = stage_commit(b, &s, &p);
	if (rc == 0)
		b->last_close_id = id;
	return rc;
}

int sync_batch_add_change(struct sync_batch *b, uint64_t id, const struct lb_conn_state *base,
			  const struct lb_conn_state *st)
{
	Lbsync__Change m;
	uint32_t vb[PEER_VALUES], vs[PEER_VALUES], d[PEER_VALUES];
	struct pre p = { .len = 0 };
	uint64_t cbase = b->change_base ? b->change_base : id;
	int rc;

	if (!id)
		return -EINVAL;
	lbsync__change__init(&m);
	if (!b->change_base)
		pre_varint(&p, F_CHANGE_BASE, cbase);
	m.id = (int64_t)(id - cbase);
	m.has_id = m.id != 0;
	m.version = st->version;
	m.state = st->tcp.state;
	/* An ISN only when it differs from the Open's (one first seen later). */
	m.isn_orig = st->tcp.isn[0];
	m.has_isn_orig = st->tcp.isn[0] != base->tcp.isn[0];
	m.isn_reply = st->tcp.isn[1];
	m.has_isn_reply = st->tcp.isn[1] != base->tcp.isn[1];
	peers_pack3(vb, &base->tcp);
	peers_pack3(vs, &st->tcp);
	for (int i = 0; i < PEER_VALUES; i++)
		d[i] = vs[i] - vb[i];
	if (!all_zero(d)) {		/* none: as the Open's */
		m.n_peers = PEER_VALUES;
		m.peers = (int32_t *)d;
	}
	OPT_TAIL(m, st);
	rc = append_after(b, p.buf, p.len, F_CHANGES, &m.base);
	if (rc == 0)
		b->change_base = cbase;
	return rc;
}

int sync_batch_add_delete(struct sync_batch *b, const struct lb_conn_state *st)
{
	Lbsync__ConnDelete m;

	lbsync__conn_delete__init(&m);
	m.client_ip = addr_bytes(&st->orig.src);
	m.client_port = st->orig.sport;
	m.vip = addr_bytes(&st->orig.dst);
	m.vport = st->orig.dport;
	m.created_us = st->created_us;
	return append(b, F_DELETES, &m.base);
}

int sync_batch_add_persist(struct sync_batch *b, const struct lb_persist_state *st)
{
	Lbsync__Persist m;

	lbsync__persist__init(&m);
	m.vip = addr_bytes(&st->vip);
	m.vport = st->vport;
	m.client_ip = addr_bytes(&st->client);
	m.backend_ip = addr_bytes(&st->backend);
	m.backend_port = st->backend_port;
	m.expires_ms = st->expires_ms;
	return append(b, F_PERSISTS, &m.base);
}

int sync_batch_add_resync_done(struct sync_batch *b, uint64_t request_id, uint32_t conns)
{
	Lbsync__ResyncDone m;

	lbsync__resync_done__init(&m);
	m.request_id = request_id;
	m.conns = conns;
	return append(b, F_RESYNC_DONE, &m.base);
}

/* ---- decoding ---- */

static int addr_from(struct lb_addr *a, ProtobufCBinaryData d)
{
	memset(a, 0, sizeof(*a));
	if (d.len == 4)
		a->family = AF_INET;
	else if (d.len == 16)
		a->family = AF_INET6;
	else
		return -1;
	memcpy(a->bytes, d.data, d.len);
	return 0;
}

static int port_ok(uint32_t p)
{
	return p > 0 && p <= 65535;
}

static int peer_from(struct lb_tcp_peer *p, const Lbsync__TcpPeer *pb)
{
	if (!pb || pb->wscale > 14 || pb->flags > 0xff)
		return -1;
	p->end = pb->end;
	p->maxend = pb->maxend;
	p->maxwin = pb->maxwin;
	p->wscale = (uint8_t)pb->wscale;
	p->flags = (uint8_t)pb->flags;
	return 0;
}

/* The tuple fields shared by Conn and ConnDelete. */
static int tuple_from(struct lb_tuple *t, ProtobufCBinaryData cip, uint32_t cport,
		      ProtobufCBinaryData vip, uint32_t vport)
{
	memset(t, 0, sizeof(*t));
	if (addr_from(&t->src, cip) < 0 || addr_from(&t->dst, vip) < 0 ||
	    t->src.family != t->dst.family || !port_ok(cport) || !port_ok(vport))
		return -1;
	t->sport = (uint16_t)cport;
	t->dport = (uint16_t)vport;
	return 0;
}

static int peer_from(struct lb_tcp_peer *p, const Lbsync__TcpPeer *pb);

/* One direction of Compact.peers back into a tracker's fields. */
static int peer_unpack(struct lb_tcp_peer *p, const uint32_t *v, uint32_t isn)
{
	Lbsync__TcpPeer pb = LBSYNC__TCP_PEER__INIT;

	if (v[3] > PEER_WS_MAX)
		return -1;
	pb.end = v[0] + isn;
	pb.maxend = v[1] + pb.end;
	pb.maxwin = v[2];
	pb.wscale = v[3] & 0xf;
	pb.flags = v[3] >> 4;
	return peer_from(p, &pb);
}

static int compact_from(struct lb_conn_state *st, const Lbsync__Compact *m, uint64_t base_us)
{
	static const uint32_t none[PEER_VALUES];
	const uint32_t *peers = m->n_peers ? m->peers : none;

	memset(st, 0, sizeof(*st));
	st->tcp.isn[0] = m->has_isn_orig ? m->isn_orig : 0;
	st->tcp.isn[1] = m->has_isn_reply ? m->isn_reply : 0;
	if (tuple_from(&st->orig, m->client_ip, m->client_port, m->vip, m->vport) < 0 ||
	    addr_from(&st->backend, m->backend_ip) < 0 ||
	    st->backend.family != st->orig.src.family || !port_ok(m->backend_port) ||
	    m->state == LB_TCP_NONE || m->state >= LB_TCP_STATE_COUNT ||
	    (m->n_peers != 0 && m->n_peers != PEER_VALUES) ||
	    peer_unpack(&st->tcp.peer[0], peers, st->tcp.isn[0]) < 0 ||
	    peer_unpack(&st->tcp.peer[1], peers + 4, st->tcp.isn[1]) < 0)
		return -1;
	st->backend_port = (uint16_t)m->backend_port;
	/* Modulo 2^64, as it was taken: any created_us is representable. */
	st->created_us = base_us + (uint64_t)m->created;
	st->version = m->version;
	st->tcp.state = (uint8_t)m->state;
	TAIL_FROM(st, m);
	return 0;
}

/* Open.peers and Change.peers back into the tracker's fields (isn set). */
static int peers_unpack3(struct lb_tcp *t, const uint32_t *packed)
{
	uint32_t v[PEER_VALUES];

	memcpy(v, packed, sizeof(v));
	for (int d = 0; d < 2; d++)
		v[4 * d + 2] += v[4 * !d + 1];	/* the other side's maxend - end */
	return peer_unpack(&t->peer[0], v, t->isn[0]) < 0 ||
	       peer_unpack(&t->peer[1], v + 4, t->isn[1]) < 0 ? -1 : 0;
}

static int endpoint_from(struct lb_addr *a, uint16_t *port, const Lbsync__Batch *b,
			 uint32_t i)
{
	if (i >= b->n_endpoints || addr_from(a, b->endpoints[i]->ip) < 0 ||
	    !port_ok(b->endpoints[i]->port))
		return -1;
	*port = (uint16_t)b->endpoints[i]->port;
	return 0;
}

static int open_from(struct lb_conn_state *st, const Lbsync__Open *m, const Lbsync__Batch *b)
{
	static const uint32_t none[PEER_VALUES];
	const uint32_t *peers = m->n_peers ? (const uint32_t *)m->peers : none;

	memset(st, 0, sizeof(*st));
	st->tcp.isn[0] = m->has_isn_orig ? m->isn_orig : 0;
	st->tcp.isn[1] = m->has_isn_reply ? m->isn_reply : 0;
	if (m->client >= b->n_clients || addr_from(&st->orig.src, b->clients[m->client]) < 0 ||
	    !port_ok(m->client_port) ||
	    endpoint_from(&st->orig.dst, &st->orig.dport, b, m->service) < 0 ||
	    endpoint_from(&st->backend, &st->backend_port, b, m->backend) < 0 ||
	    st->orig.dst.family != st->orig.src.family ||
	    st->backend.family != st->orig.src.family ||
	    m->state == LB_TCP_NONE || m->state >= LB_TCP_STATE_COUNT ||
	    (m->n_peers != 0 && m->n_peers != PEER_VALUES) || peers_unpack3(&st->tcp, peers) < 0)
		return -1;
	st->orig.sport = (uint16_t)m->client_port;
	st->created_us = b->base_us + (uint64_t)(m->has_created ? m->created : 0);
	st->version = m->has_version ? m->version : 1;
	st->tcp.state = (uint8_t)m->state;
	TAIL_FROM(st, m);
	return 0;
}

static int change_from(struct sync_change *c, uint64_t *id, const Lbsync__Change *m,
		       uint64_t change_base)
{
	memset(c, 0, sizeof(*c));
	if (m->state == LB_TCP_NONE || m->state >= LB_TCP_STATE_COUNT ||
	    (m->n_peers != 0 && m->n_peers != PEER_VALUES))
		return -1;
	*id = change_base + (uint64_t)(m->has_id ? m->id : 0);
	if (!*id)
		return -1;
	c->version = m->version;
	c->state = (uint8_t)m->state;
	c->has_isn[0] = m->has_isn_orig;
	c->isn[0] = m->isn_orig;
	c->has_isn[1] = m->has_isn_reply;
	c->isn[1] = m->isn_reply;
	c->has_peers = m->n_peers != 0;
	for (size_t i = 0; i < m->n_peers; i++)
		c->peers[i] = (uint32_t)m->peers[i];
	TAIL_FROM(c, m);
	return 0;
}

/* A close applied to held (or the Open, base); see sync_change_apply(). */
static int close_apply(const struct sync_change *c, const struct lb_conn_state *base,
		       const struct lb_conn_state *held, struct lb_conn_state *out)
{
	struct lb_conn_state st = held ? *held : *base;

	if (base->version + c->version < base->version)
		return -EINVAL;		/* past the last version */
	if (c->has_isn[LB_DIR_REPLY] && base->tcp.isn[LB_DIR_REPLY])
		return -EINVAL;		/* the Open has its own */
	st.version = base->version + c->version;
	st.tcp.state = c->state;
	for (int d = 0; d < 2; d++) {
		struct lb_tcp_peer *p = &st.tcp.peer[d];
		uint32_t end = base->tcp.peer[d].end + c->ends[d];

		if (c->has_isn[d]) {
			/* Its Open was made at the SYN: the end is told against
			 * the ISN the close carries, and a state that never saw
			 * that side learns it from the close. */
			end = c->isn[d] + c->ends[d];
			if (st.tcp.isn[d] != c->isn[d]) {
				st.tcp.isn[d] = c->isn[d];
				*p = (struct lb_tcp_peer){ .end = end, .maxend = end,
							   .flags = LB_TCP_PF_SEEN };
			}
		}
		if (lb_seq_gt(end, p->end))
			p->end = end;
		if (lb_seq_lt(p->maxend, p->end))
			p->maxend = p->end;
		/* Time_wait is both FINs sent and acked (lb_tcp's closing states). */
		if (c->state == LB_TCP_TIME_WAIT && (p->flags & LB_TCP_PF_SEEN))
			p->flags |= LB_TCP_PF_FIN | LB_TCP_PF_FIN_ACKED;
	}
	st.expires_ms = c->expires_ms;
	st.rate[0] = st.rate[1] = 0;	/* a closed connection moves no data */
	*out = st;
	return 0;
}

int sync_change_apply(const struct sync_change *c, const struct lb_conn_state *base,
		      const struct lb_conn_state *held, struct lb_conn_state *out)
{
	uint32_t v[PEER_VALUES];
	struct lb_conn_state st = *base;

	if (c->close)
		return close_apply(c, base, held, out);
	st.version = c->version;
	st.tcp.state = c->state;
	for (int i = 0; i < 2; i++)
		st.tcp.isn[i] = c->has_isn[i] ? c->isn[i] : base->tcp.isn[i];
	/* The differences are against the Open's values, taken with its ISNs;
	 * the result is told against this state's ISNs. */
	peers_pack3(v, &base->tcp);
	for (int i = 0; c->has_peers && i < PEER_VALUES; i++)
		v[i] += c->peers[i];
	if (peers_unpack3(&st.tcp, v) < 0)
		return -EINVAL;
	st.expires_ms = c->expires_ms;
	st.rate[0] = c->rate[0];
	st.rate[1] = c->rate[1];
	st.persist_ms = c->persist_ms;
	*out = st;
	return 0;
}

static int conn_from(struct lb_conn_state *st, const Lbsync__Conn *m)
{
	memset(st, 0, sizeof(*st));
	if (tuple_from(&st->orig, m->client_ip, m->client_port, m->vip, m->vport) < 0 ||
	    addr_from(&st->backend, m->backend_ip) < 0 ||
	    st->backend.family != st->orig.src.family || !port_ok(m->backend_port) ||
	    m->state == LB_TCP_NONE || m->state >= LB_TCP_STATE_COUNT ||
	    peer_from(&st->tcp.peer[0], m->orig) < 0 || peer_from(&st->tcp.peer[1], m->reply) < 0)
		return -1;
	st->backend_port = (uint16_t)m->backend_port;
	st->created_us = m->created_us;
	st->version = m->version;
	st->tcp.state = (uint8_t)m->state;
	st->tcp.isn[0] = m->isn_orig;
	st->tcp.isn[1] = m->isn_reply;
	st->expires_ms = m->expires_ms;
	st->rate[0] = m->has_rate_orig ? m->rate_orig : 0;
	st->rate[1] = m->has_rate_reply ? m->rate_reply : 0;
	st->persist_ms = m->has_persist_ms ? m->persist_ms : 0;
	return 0;
}

static int persist_from(struct lb_persist_state *st, const Lbsync__Persist *m)
{
	memset(st, 0, sizeof(*st));
	if (addr_from(&st->vip, m->vip) < 0 || addr_from(&st->client, m->client_ip) < 0 ||
	    addr_from(&st->backend, m->backend_ip) < 0 || st->vip.family != st->client.family ||
	    st->vip.family != st->backend.family || !port_ok(m->vport) ||
	    !port_ok(m->backend_port))
		return -1;
	st->vport = (uint16_t)m->vport;
	st->backend_port = (uint16_t)m->backend_port;
	st->expires_ms = m->expires_ms;
	return 0;
}

/* ---- version 4's columns ---- */

/* Seconds or KiB/s back, saturating. */
static uint32_t scale_up(uint32_t v, uint32_t unit)
{
	uint64_t x = (uint64_t)v * unit;

	return x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}

/* Whether the Open columns have n entries each (two, eight; persistence
 * none or n): a column that does not line up refuses the whole batch. */
static int open_cols_ok(const Lbsync__Batch *m, size_t n)
{
	return m->n_open_client_port == n && m->n_open_service == n && m->n_open_backend == n &&
	       m->n_open_created == n && m->n_open_state == n && m->n_open_isn == 2 * n &&
	       m->n_open_peers == PEER_VALUES * n && m->n_open_expires_s == n &&
	       m->n_open_rate_kib == 2 * n && (m->n_open_persist_ms == 0 || m->n_open_persist_ms == n);
}

static int close_cols_ok(const Lbsync__Batch *m)
{
	size_t n = m->n_close_id, isns = 0;

	if (m->n_close_state != n || m->n_close_ends != 2 * n || m->n_close_expires_s != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		isns += (m->close_state[i] >> 1) & 1;
	return m->n_close_isn == isns;
}

/* Open i of the columns. */
static int open_col_from(struct lb_conn_state *st, const Lbsync__Batch *b, size_t i)
{
	uint32_t peers[PEER_VALUES];
	uint32_t state = b->open_state[i] & 0xf;
	uint64_t version = b->open_state[i] >> 4;

	memset(st, 0, sizeof(*st));
	st->tcp.isn[0] = b->open_isn[2 * i];
	st->tcp.isn[1] = b->open_isn[2 * i + 1];
	for (int k = 0; k < PEER_VALUES; k++)
		peers[k] = (uint32_t)b->open_peers[PEER_VALUES * i + k];
	if (b->open_client[i] >= b->n_clients ||
	    addr_from(&st->orig.src, b->clients[b->open_client[i]]) < 0 ||
	    !port_ok(b->open_client_port[i]) ||
	    endpoint_from(&st->orig.dst, &st->orig.dport, b, b->open_service[i]) < 0 ||
	    endpoint_from(&st->backend, &st->backend_port, b, b->open_backend[i]) < 0 ||
	    st->orig.dst.family != st->orig.src.family ||
	    st->backend.family != st->orig.src.family ||
	    state == LB_TCP_NONE || state >= LB_TCP_STATE_COUNT || version > UINT32_MAX ||
	    peers_unpack3(&st->tcp, peers) < 0)
		return -1;
	st->orig.sport = (uint16_t)b->open_client_port[i];
	st->created_us = b->base_us + (uint64_t)b->open_created[i];
	st->version = (uint32_t)version;
	st->tcp.state = (uint8_t)state;
	st->expires_ms = scale_up(b->open_expires_s[i], 1000);
	st->rate[0] = scale_up(b->open_rate_kib[2 * i], 1024);
	st->rate[1] = scale_up(b->open_rate_kib[2 * i + 1], 1024);
	st->persist_ms = b->n_open_persist_ms ? b->open_persist_ms[i] : 0;
	return 0;
}

/* Close i of the columns; *id runs from the previous entry's, *isn is the
 * next entry of close_isn. */
static int close_col_from(struct sync_change *c, uint64_t *id, size_t *isn,
			  const Lbsync__Batch *b, size_t i)
{
	uint64_t s = b->close_state[i];

	memset(c, 0, sizeof(*c));
	*id += (uint64_t)b->close_id[i];
	c->close = 1;
	c->version = (uint32_t)(s >> 2);
	c->state = (s & 1) ? LB_TCP_CLOSE : LB_TCP_TIME_WAIT;
	if (s & 2) {
		c->has_isn[LB_DIR_REPLY] = 1;
		c->isn[LB_DIR_REPLY] = b->close_isn[(*isn)++];
		if (!c->isn[LB_DIR_REPLY])
			return -1;	/* 0 is "none" in an Open */
	}
	c->ends[0] = (uint32_t)b->close_ends[2 * i];
	c->ends[1] = (uint32_t)b->close_ends[2 * i + 1];
	c->expires_ms = scale_up(b->close_expires_s[i], 1000);
	return *id && c->version && s >> 2 <= UINT32_MAX ? 0 : -1;
}

/* Counts a record decoded (rc 0) or refused; true: hand it on. */
static bool counted(struct sync_decode_stats *stats, int rc)
{
	if (rc < 0) {
		stats->bad_record++;
		return false;
	}
	stats->records++;
	return true;
}

/* An Open decoded (rc 0) or refused, handed on or counted. */
static void deliver_open(const struct sync_records_ops *ops, void *arg,
			 struct sync_decode_stats *stats, int rc, uint64_t id,
			 const struct lb_conn_state *cs)
{
	if (!counted(stats, rc))
		return;
	if (ops->open)
		ops->open(arg, id, cs);
	else
		ops->conn(arg, cs);
}

/* A Change or close decoded (rc 0) or refused, handed on or counted. */
static void deliver_change(const struct sync_records_ops *ops, void *arg,
			   struct sync_decode_stats *stats, int rc, uint64_t id,
			   const struct sync_change *ch)
{
	if (counted(stats, rc) && ops->change)
		ops->change(arg, id, ch);
}

static void deliver_cols(const Lbsync__Batch *m, const struct sync_records_ops *ops, void *arg,
			 struct sync_decode_stats *stats)
{
	struct lb_conn_state cs;
	struct sync_change ch;
	uint64_t id = 0;
	size_t isn = 0;

	for (size_t i = 0; i < m->n_open_client; i++)
		deliver_open(ops, arg, stats, open_col_from(&cs, m, i), m->open_base + i, &cs);
	for (size_t i = 0; i < m->n_close_id; i++) {
		int rc = close_col_from(&ch, &id, &isn, m, i);	/* moves id on */

		deliver_change(ops, arg, stats, rc, id, &ch);
	}
}

static void deliver(const Lbsync__Batch *m, const struct sync_records_ops *ops, void *arg,
		    struct sync_decode_stats *stats)
{
	struct lb_conn_state cs;
	struct lb_persist_state ps;

	for (size_t i = 0; i < m->n_conns; i++) {
		if (conn_from(&cs, m->conns[i]) < 0) {
			stats->bad_record++;
			continue;
		}
		stats->records++;
		ops->conn(arg, &cs);
	}
	for (size_t i = 0; i < m->n_compact; i++) {
		if (compact_from(&cs, m->compact[i], m->base_us) < 0) {
			stats->bad_record++;
			continue;
		}
		stats->records++;
		ops->conn(arg, &cs);
	}
	for (size_t i = 0; i < m->n_opens; i++)
		deliver_open(ops, arg, stats, open_from(&cs, m->opens[i], m), m->open_base + i, &cs);
	for (size_t i = 0; i < m->n_changes; i++) {
		struct sync_change ch;
		uint64_t id = 0;
		int rc = change_from(&ch, &id, m->changes[i], m->change_base);

		deliver_change(ops, arg, stats, rc, id, &ch);
	}
	deliver_cols(m, ops, arg, stats);
	for (size_t i = 0; i < m->n_deletes; i++) {
		const Lbsync__ConnDelete *d = m->deletes[i];

		memset(&cs, 0, sizeof(cs));
		if (tuple_from(&cs.orig, d->client_ip, d->client_port, d->vip, d->vport) < 0) {
			stats->bad_record++;
			continue;
		}
		cs.created_us = d->created_us;
		stats->records++;
		ops->conn_delete(arg, &cs);
	}
	for (size_t i = 0; i < m->n_persists; i++) {
		if (persist_from(&ps, m->persists[i]) < 0) {
			stats->bad_record++;
			continue;
		}
		stats->records++;
		ops->persist(arg, &ps);
	}
	if (m->resync_done)
		ops->resync_done(arg, m->resync_done->request_id, m->resync_done->conns);
}

/*
 * Decoding into an arena: protobuf-c allocates every message and repeated
 * array of a batch, and a datagram's batch fits ARENA_BYTES many times
 * over, so importing costs no malloc per record or per batch. Anything
 * larger (no datagram carries it) spills over to malloc and is freed.
 */
#define ARENA_BYTES (256 * 1024)
#define ARENA_ALIGN 16

struct sync_decoder {
	size_t used;
	uint64_t spilled;		/* allocations the arena could not hold */
	_Alignas(ARENA_ALIGN) uint8_t buf[ARENA_BYTES];
};

struct sync_decoder *sync_decoder_new(void)
{
	struct sync_decoder *d = malloc(sizeof(*d));

	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->used = 0;
	d->spilled = 0;
	return d;
}

void sync_decoder_free(struct sync_decoder *d)
{
	free(d);
}

uint64_t sync_decoder_spilled(const struct sync_decoder *d)
{
	return d->spilled;
}

static void *arena_alloc(void *data, size_t size)
{
	struct sync_decoder *d = data;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

	if (need < size || need > ARENA_BYTES - d->used) {
		d->spilled++;
		return malloc(size);
	}
	d->used += need;
	return d->buf + d->used - need;
}

static void arena_free(void *data, void *p)
{
	struct sync_decoder *d = data;

	if ((uint8_t *)p < d->buf || (uint8_t *)p >= d->buf + ARENA_BYTES)
		free(p);	/* spilled; arena memory goes back all at once */
}

static int decode(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
		  const struct sync_records_ops *ops, void *arg, struct sync_decode_stats *stats)
{
	Lbsync__Batch *m = lbsync__batch__unpack(alloc, len, buf);
	int rc = 0;

	/* Versions 1 and 2 (Conn, Compact records) are still read: a node
	 * upgraded first keeps its peer's state until the peer is upgraded too.
	 * Compact and Open records need the bases they are relative to. */
	size_t opens = m ? m->n_opens + m->n_open_client : 0;

	if (!m || m->version < SYNC_RECORD_VERSION_OLDEST || m->version > SYNC_RECORD_VERSION ||
	    ((m->n_compact || opens) && !m->has_base_us) ||
	    (opens && (!m->has_open_base || !m->open_base || m->open_base + opens < m->open_base)) ||
	    (m->n_opens && m->n_open_client) ||	/* two kinds of Open: whose ids? */
	    !open_cols_ok(m, m->n_open_client) || !close_cols_ok(m) ||
	    (m->n_changes && !m->has_change_base)) {
		stats->bad_batch++;
		rc = -EINVAL;
	} else {
		stats->batches++;
		/* Deletes after conns: a batch may hold a connection's last
		 * update and, once it expired, its removal. */
		deliver(m, ops, arg, stats);
	}
	if (m)
		lbsync__batch__free_unpacked(m, alloc);
	return rc;
}

int sync_decoder_decode(struct sync_decoder *d, const uint8_t *buf, size_t len,
			const struct sync_records_ops *ops, void *arg,
			struct sync_decode_stats *stats)
{
	ProtobufCAllocator alloc = { arena_alloc, arena_free, d };

	d->used = 0;
	return decode(buf, len, &alloc, ops, arg, stats);
}

int sync_batch_decode(const uint8_t *buf, size_t len, const struct sync_records_ops *ops,
		      void *arg, struct sync_decode_stats *stats)
{
	return decode(buf, len, NULL, ops, arg, stats);
}
