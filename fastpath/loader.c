/*
 * fastpath loader: loads fp.bpf.c (its skeleton, built into build/gen/ by
 * bpftool), attaches it, and keeps its maps (fp_abi.h) as the engine says.
 *
 * Connection ids (the index into fp_conns) are handed out here from a free
 * list; the slot of an id remembers both tuples (to delete both keys) and
 * the counters last reported (the sweep reports differences).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fastpath.h"
#include "fp_abi.h"
#include "fp.skel.h"

#define FP_MAX_IFS 16
#define FP_NO_ID UINT32_MAX
/* Our filter's place on an interface's ingress: a fixed handle and priority,
 * so that a later run finds and replaces what a crashed one left. */
#define FP_TC_HANDLE 0x1b0
#define FP_TC_PRIO 0x1b0

struct fp_slot {
	struct fp_key orig;		/* client -> VIP:port, as in fp_keys */
	uint32_t backend;		/* with orig, the reply key (slot_reply()) */
	uint16_t backend_port;		/* network order, as in fp_key */
	uint8_t used : 1;
	uint8_t hinted : 1;		/* fp_hints may hold a hint for it */
	uint8_t single : 1;		/* keyed once: its backend's fp_backends ref */
	uint32_t hint_gen;		/* the last fp_hint written */
	uint32_t pkts[2];		/* as last reported (fp_conn's, modulo 2^32) */
	uint64_t bytes[2];
};

struct fp {
	struct fp_bpf *skel;
	int keys_fd, conns_fd, hints_fd, hinted_fd, backends_fd, stats_fd, ctl_fd;
	struct ring_buffer *ring;	/* the program's replication signals */
	void (*sig_fn)(void *arg, const struct lb_tuple *orig,
		       const struct lb_fastpath_seen *s);
	void *sig_arg;			/* fp_signals()'s, while it runs */
	size_t sig_reported;
	uint32_t ctl;
	pthread_mutex_t lock;		/* slots, free list, cursor */
	uint32_t cap;
	struct fp_slot *slots;
	/* Free ids: those freed, linked through their slot's backend field
	 * (a free slot has none), then those never used, from fresh on; so
	 * the slots take memory as connections come and need no free array. */
	uint32_t free_head;		/* FP_NO_ID: none freed */
	uint32_t fresh;
	uint32_t nused;
	uint64_t *hinted;		/* fp_hinted as last written */
	size_t cursor;
	int ifindex[FP_MAX_IFS];
	int nifs;
};

static const char *const counter_names[FP_CNT_COUNT] = {
#define FP_COUNTER_NAME(id, name) [FP_CNT_##id] = name,
	FP_COUNTER_LIST(FP_COUNTER_NAME)
#undef FP_COUNTER_NAME
};

const char *fp_counter_name(enum fp_counter c)
{
	return c < FP_CNT_COUNT ? counter_names[c] : "?";
}

/* libbpf's own messages (the verifier's log among them) are noise next to
 * the reason we report, unless FP_DEBUG is set in the environment. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int loud(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

static void set_print(void)
{
	libbpf_set_print(getenv("FP_DEBUG") ? loud : quiet);
}

static int on_signal(void *ctx, void *data, size_t len);

/*
 * Hints pending at once, at most: a quarter of the connections (the hash's
 * buckets cost 16 bytes each, allocated up front). Past it a hint is not
 * written; the connection stays correct, its packets going up to the engine
 * until the hint fits, which each of them retries.
 */
static uint32_t hints_cap(uint32_t cap)
{
	return cap / 4 > 1024 ? cap / 4 : 1024;
}

/*
 * fp_keys' capacity: a connection takes one key, two when its backend also
 * serves another VIP:port (fp_abi.h). The kernel gives a hash the power of
 * two at or above its capacity in buckets (16 bytes each, up front) and
 * allocates elements as they come, so the capacity is that power of two,
 * with at least a 32nd of the connections to spare for second keys; a
 * connection whose keys do not fit stays on the slow path
 * (fast_install_failed).
 */
static uint32_t keys_cap(uint32_t cap)
{
	uint64_t want = (uint64_t)cap + cap / 32 + 1, p = 1;

	while (p < want)
		p <<= 1;
	return p > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)p;
}

static int load(struct fp *fp, const struct fp_conf *conf, char *err, size_t errlen)
{
	int rc;

	set_print();
	fp->skel = fp_bpf__open();
	if (!fp->skel) {
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(errno));
		return -errno;
	}
	/* The hashes' entries are allocated as connections come, not all up
	 * front; the arrays are, at the capacity. */
	if ((rc = bpf_map__set_max_entries(fp->skel->maps.fp_conns, fp->cap)) ||
	    (rc = bpf_map__set_max_entries(fp->skel->maps.fp_hints, hints_cap(fp->cap))) ||
	    (rc = bpf_map__set_max_entries(fp->skel->maps.fp_hinted, (fp->cap + 63) / 64)) ||
	    (rc = bpf_map__set_max_entries(fp->skel->maps.fp_keys, keys_cap(fp->cap))) ||
	    (rc = bpf_map__set_map_flags(fp->skel->maps.fp_keys, BPF_F_NO_PREALLOC))) {
		snprintf(err, errlen, "cannot size the maps: %s", strerror(-rc));
		return rc;
	}
	fp->skel->rodata->fp_signal_bytes = conf->signal_bytes;
	fp->skel->rodata->fp_signal_ms = conf->signal_ms;
	rc = fp_bpf__load(fp->skel);
	if (rc) {
		snprintf(err, errlen, "cannot load the BPF program (kernel without BPF, "
			 "BTF or spin locks in maps, or locked memory limit?): %s",
			 strerror(-rc));
		return rc;
	}
	fp->keys_fd = bpf_map__fd(fp->skel->maps.fp_keys);
	fp->conns_fd = bpf_map__fd(fp->skel->maps.fp_conns);
	fp->hints_fd = bpf_map__fd(fp->skel->maps.fp_hints);
	fp->hinted_fd = bpf_map__fd(fp->skel->maps.fp_hinted);
	fp->backends_fd = bpf_map__fd(fp->skel->maps.fp_backends);
	fp->stats_fd = bpf_map__fd(fp->skel->maps.fp_stats);
	fp->ctl_fd = bpf_map__fd(fp->skel->maps.fp_ctl);
	fp->ctl = conf->stack ? FP_CTL_STACK : 0;
	fp->ring = ring_buffer__new(bpf_map__fd(fp->skel->maps.fp_ring), on_signal, fp, NULL);
	if (!fp->ring) {
		rc = -errno;
		snprintf(err, errlen, "cannot map the signal ring: %s", strerror(-rc));
		return rc;
	}
	return fp_set_enabled(fp, 0);
}

struct fp *fp_open(const struct fp_conf *conf, char *err, size_t errlen)
{
	struct fp *fp = calloc(1, sizeof(*fp));
	int rc = -ENOMEM;

	if (!fp)
		goto fail;
	fp->cap = conf->max_conns ? conf->max_conns : 1;
	pthread_mutex_init(&fp->lock, NULL);
	fp->slots = calloc(fp->cap, sizeof(*fp->slots));
	fp->hinted = calloc((fp->cap + 63) / 64, sizeof(*fp->hinted));
	if (!fp->slots || !fp->hinted) {
		snprintf(err, errlen, "cannot allocate %u slots", fp->cap);
		goto fail;
	}
	fp->free_head = FP_NO_ID;
	rc = load(fp, conf, err, errlen);
	if (rc < 0)
		goto fail;
	return fp;
fail:
	fp_close(fp);
	errno = rc < 0 ? -rc : ENOMEM;
	return NULL;
}

static void detach(int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FP_TC_HANDLE,
			    .priority = FP_TC_PRIO);

	bpf_tc_detach(&hook, &opts);
}

void fp_close(struct fp *fp)
{
	if (!fp)
		return;
	for (int i = 0; i < fp->nifs; i++)
		detach(fp->ifindex[i]);
	ring_buffer__free(fp->ring);
	fp_bpf__destroy(fp->skel);
	pthread_mutex_destroy(&fp->lock);
	free(fp->slots);
	free(fp->hinted);
	free(fp);
}

void fp_detach_stale(const char *ifname)
{
	int ifindex = (int)if_nametoindex(ifname);

	set_print();	/* "no such qdisc" is the usual answer here */
	if (ifindex)
		detach(ifindex);
}

int fp_attach(struct fp *fp, const char *ifname)
{
	int ifindex = (int)if_nametoindex(ifname), rc;
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FP_TC_HANDLE, .priority = FP_TC_PRIO,
			    .flags = BPF_TC_F_REPLACE,
			    .prog_fd = bpf_program__fd(fp->skel->progs.fp_ingress));

	if (!ifindex)
		return -ENODEV;
	if (fp->nifs == FP_MAX_IFS)
		return -ENOSPC;
	rc = bpf_tc_hook_create(&hook);
	if (rc && rc != -EEXIST)
		return rc;
	rc = bpf_tc_attach(&hook, &opts);
	if (rc)
		return rc;
	fp->ifindex[fp->nifs++] = ifindex;
	return 0;
}

int fp_set_enabled(struct fp *fp, int on)
{
	uint32_t key = FP_CTL_FLAGS;

	fp->ctl = on ? fp->ctl | FP_CTL_ENABLED : fp->ctl & ~FP_CTL_ENABLED;
	return bpf_map_update_elem(fp->ctl_fd, &key, &fp->ctl, BPF_ANY) ? -errno : 0;
}

int fp_set_slack_until(struct fp *fp, uint64_t until_ms)
{
	uint32_t key = FP_CTL_SLACK_UNTIL;
	/* The program's clock's low 32 bits; 0 is none (fp_abi.h). */
	uint32_t v = until_ms ? (uint32_t)until_ms ?: 1 : 0;

	return bpf_map_update_elem(fp->ctl_fd, &key, &v, BPF_ANY) ? -errno : 0;
}

static void key_of(const struct lb_tuple *t, struct fp_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(&k->src, t->src.bytes, 4);
	memcpy(&k->dst, t->dst.bytes, 4);
	k->sport = htons(t->sport);
	k->dport = htons(t->dport);
}

/* The reply key (backend -> client) of a slot: the slot keeps only what
 * the orig key does not say. */
static struct fp_key slot_reply(const struct fp_slot *s)
{
	return (struct fp_key){ .src = s->backend, .dst = s->orig.src,
				.sport = s->backend_port, .dport = s->orig.sport };
}

/* The engine's client-side tuple of a slot. */
static struct lb_tuple slot_orig(const struct fp_slot *s)
{
	struct lb_tuple t = { .src.family = AF_INET, .dst.family = AF_INET,
			      .sport = ntohs(s->orig.sport), .dport = ntohs(s->orig.dport) };

	memcpy(t.src.bytes, &s->orig.src, 4);
	memcpy(t.dst.bytes, &s->orig.dst, 4);
	return t;
}

static void peers_to_kernel(const struct lb_tcp_peer in[2], struct fp_peer out[2])
{
	for (int d = 0; d < 2; d++)
		out[d] = (struct fp_peer){ .end = in[d].end, .maxend = in[d].maxend,
					   .maxwin = in[d].maxwin };
}

/* The id a tuple is installed under, or -ENOENT. */
static int64_t lookup_id(struct fp *fp, const struct lb_tuple *orig)
{
	struct fp_key k;
	struct fp_nat nat;

	if (orig->src.family != AF_INET)
		return -ENOENT;
	key_of(orig, &k);
	if (bpf_map_lookup_elem(fp->keys_fd, &k, &nat) || nat.dir != FP_DIR_ORIG ||
	    nat.id >= fp->cap)
		return -ENOENT;
	return nat.id;
}

/*
 * For a connection keyed once (fp_abi.h): 1 when its backend leads to its
 * VIP:port in fp_backends (now, with one more reference), 0 when it leads
 * to another VIP:port or cannot be added (the connection is keyed twice).
 * fp locked; only lbd writes fp_backends.
 */
static int backend_ref(struct fp *fp, const struct fp_slot *s)
{
	struct fp_backend_key k = { .addr = s->backend, .port = s->backend_port };
	struct fp_backend v;

	if (bpf_map_lookup_elem(fp->backends_fd, &k, &v) == 0) {
		if (v.vip != s->orig.dst || v.vport != s->orig.dport)
			return 0;
		v.refs++;
	} else {
		v = (struct fp_backend){ .vip = s->orig.dst, .vport = s->orig.dport, .refs = 1 };
	}
	return bpf_map_update_elem(fp->backends_fd, &k, &v, BPF_ANY) ? 0 : 1;
}

/* Gives back a reference backend_ref() took; the entry goes with the last. */
static void backend_unref(struct fp *fp, const struct fp_slot *s)
{
	struct fp_backend_key k = { .addr = s->backend, .port = s->backend_port };
	struct fp_backend v;

	if (bpf_map_lookup_elem(fp->backends_fd, &k, &v))
		return;
	if (v.refs <= 1) {
		bpf_map_delete_elem(fp->backends_fd, &k);
		return;
	}
	v.refs--;
	bpf_map_update_elem(fp->backends_fd, &k, &v, BPF_ANY);
}

/* Keys the connection: once when its backend allows, else under both
 * tuples. The backend's entry before the key, so that a reply finds the
 * connection as soon as the client's packets do. fp locked. */
static int put_keys(struct fp *fp, uint32_t id, const struct lb_fastpath_conn *c,
		    struct fp_slot *s)
{
	struct fp_nat to_backend = { .id = id, .dir = FP_DIR_ORIG,
				     .port = htons(c->reply.sport) };
	struct fp_nat to_client = { .id = id, .dir = FP_DIR_REPLY,
				    .port = htons(c->orig.dport) };
	struct fp_key reply;

	memcpy(&to_backend.addr, c->reply.src.bytes, 4);
	memcpy(&to_client.addr, c->orig.dst.bytes, 4);
	key_of(&c->orig, &s->orig);
	key_of(&c->reply, &reply);
	s->backend = reply.src;
	s->backend_port = reply.sport;
	s->single = backend_ref(fp, s);
	if (bpf_map_update_elem(fp->keys_fd, &s->orig, &to_backend, BPF_ANY)) {
		int rc = -errno;

		if (s->single)
			backend_unref(fp, s);
		return rc;
	}
	if (!s->single && bpf_map_update_elem(fp->keys_fd, &reply, &to_client, BPF_ANY)) {
		int rc = -errno;

		bpf_map_delete_elem(fp->keys_fd, &s->orig);
		return rc;
	}
	return 0;
}

/* Sets or clears id's bit in fp_hinted (only lbd writes it, under fp's lock). */
static int set_hinted(struct fp *fp, uint32_t id, int on)
{
	uint32_t word = id / 64;
	uint64_t bit = 1ull << (id % 64);

	fp->hinted[word] = on ? fp->hinted[word] | bit : fp->hinted[word] & ~bit;
	return bpf_map_update_elem(fp->hinted_fd, &word, &fp->hinted[word], BPF_ANY) ? -errno : 0;
}

/* Drops id's hint once the program applied it (gen as in the entry), or
 * whatever it is when the slot is freed (gen 0): the bit before the hint. */
static void drop_hint(struct fp *fp, uint32_t id, uint32_t applied_gen)
{
	struct fp_slot *s = &fp->slots[id];

	if (!s->hinted || (applied_gen && applied_gen != s->hint_gen))
		return;
	set_hinted(fp, id, 0);
	bpf_map_delete_elem(fp->hints_fd, &id);
	s->hinted = 0;
}

/*
 * An installed entry takes the engine's edges where they are ahead, and keeps
 * its own (and its counters) where the kernel is: written as a new fp_hint
 * that the program applies under the entry's lock with its next packet
 * (fp_abi.h says why lbd never rewrites the entry itself).
 */
static int refresh(struct fp *fp, uint32_t id, const struct lb_fastpath_conn *c)
{
	struct fp_hint h = { .gen = ++fp->slots[id].hint_gen };

	if (h.gen == 0)		/* 0 is a fresh slot's: never a new hint */
		h.gen = fp->slots[id].hint_gen = 1;
	peers_to_kernel(c->peer, h.peer);
	h.slack = c->slack;
	/* The hint before its bit: the program never looks for one that is
	 * not there yet (and would only pass the packet if it did). */
	if (bpf_map_update_elem(fp->hints_fd, &id, &h, BPF_ANY))
		return -errno;
	fp->slots[id].hinted = 1;
	return set_hinted(fp, id, 1);
}

/* A free id (there is one: nused < cap); fp locked. */
static uint32_t take_id(struct fp *fp)
{
	uint32_t id = fp->free_head;

	fp->nused++;
	if (id == FP_NO_ID)
		return fp->fresh++;
	fp->free_head = fp->slots[id].backend;
	return id;
}

/* Frees id, its slot cleared but for the link; fp locked. */
static void give_id(struct fp *fp, uint32_t id)
{
	fp->slots[id] = (struct fp_slot){ .backend = fp->free_head };
	fp->free_head = id;
	fp->nused--;
}

/* A new entry: the connection before its keys, so the program never finds a
 * key whose entry is not ready. fp locked. */
static int create(struct fp *fp, const struct lb_fastpath_conn *c)
{
	struct fp_conn v = { .state = FP_STATE_ESTABLISHED };
	struct timespec ts;
	uint32_t id;
	int rc;

	if (fp->nused == fp->cap)
		return -ENOSPC;
	/* The interval's signal counts from now (the engine replicated the
	 * connection as it became established): bpf_ktime_get_ns()'s clock. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	v.sig_ms = (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
	id = take_id(fp);
	peers_to_kernel(c->peer, v.peer);
	v.slack = c->slack;
	v.wscale[0] = c->peer[0].wscale;
	v.wscale[1] = c->peer[1].wscale;
	/* The slot's hint from its last connection went with it
	 * (fp_conn_remove()): gen 0 on both. */
	if (bpf_map_update_elem(fp->conns_fd, &id, &v, BPF_F_LOCK))
		rc = -errno;
	else
		rc = put_keys(fp, id, c, &fp->slots[id]);
	if (rc < 0) {
		give_id(fp, id);
		return rc;
	}
	fp->slots[id].used = 1;
	fp->slots[id].hint_gen = 0;
	memset(fp->slots[id].pkts, 0, sizeof(fp->slots[id].pkts));
	memset(fp->slots[id].bytes, 0, sizeof(fp->slots[id].bytes));
	return 0;
}

int fp_conn_install(struct fp *fp, const struct lb_fastpath_conn *c)
{
	int64_t found;
	int rc;

	if (c->orig.src.family != AF_INET || c->reply.src.family != AF_INET)
		return -EAFNOSUPPORT;
	pthread_mutex_lock(&fp->lock);
	found = lookup_id(fp, &c->orig);
	rc = found >= 0 ? refresh(fp, (uint32_t)found, c) : create(fp, c);
	pthread_mutex_unlock(&fp->lock);
	return rc;
}

/* The CLOCK_MONOTONIC milliseconds whose low 32 bits are t, the nearest to
 * now (fp_abi.h says why that is exact). */
static uint64_t widen_ms(uint32_t t)
{
	struct timespec ts;
	uint64_t now;
	uint32_t back;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	back = (uint32_t)now - t;
	if (back > UINT32_MAX / 2)	/* a packet after our clock read */
		return now + (uint32_t)(t - (uint32_t)now);
	return now - back;
}

/* Fills out from the kernel's entry and the slot's last report; fp locked. */
static int read_locked(struct fp *fp, uint32_t id, struct lb_fastpath_seen *out)
{
	struct fp_slot *s = &fp->slots[id];
	struct fp_conn v;

	if (bpf_map_lookup_elem_flags(fp->conns_fd, &id, &v, BPF_F_LOCK))
		return -errno;
	memset(out, 0, sizeof(*out));
	for (int d = 0; d < 2; d++) {
		out->peer[d] = (struct lb_tcp_peer){ .end = v.peer[d].end,
						     .maxend = v.peer[d].maxend,
						     .maxwin = v.peer[d].maxwin,
						     .wscale = v.wscale[d] };
		if (v.acked & (1u << d)) {
			out->peer[d].maxack = v.ack[d];
			out->peer[d].flags = LB_TCP_PF_MAXACK;
		}
		out->pkts[d] = (uint32_t)(v.pkts[d] - s->pkts[d]);
		out->bytes[d] = v.bytes[d] - s->bytes[d];
		s->pkts[d] = v.pkts[d];
		s->bytes[d] = v.bytes[d];
	}
	out->last_seen_ms = v.last_seen_ms ? widen_ms(v.last_seen_ms) : 0;
	if (v.hint_gen)
		drop_hint(fp, id, v.hint_gen);
	return 0;
}

int fp_conn_read(struct fp *fp, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	int64_t id;
	int rc;

	pthread_mutex_lock(&fp->lock);
	id = lookup_id(fp, orig);
	rc = id < 0 ? (int)id : read_locked(fp, (uint32_t)id, out);
	pthread_mutex_unlock(&fp->lock);
	return rc;
}

int fp_conn_remove(struct fp *fp, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	struct fp_conn idle = { 0 };
	struct fp_key reply;
	struct fp_slot *s;
	int64_t id;
	int rc;

	pthread_mutex_lock(&fp->lock);
	id = lookup_id(fp, orig);
	if (id < 0) {
		pthread_mutex_unlock(&fp->lock);
		return (int)id;
	}
	s = &fp->slots[id];
	/* Keys first, so the program stops finding the entry; then its last
	 * view (a packet already past the key lookup on another CPU may still
	 * land after this read: the slow path's tracker then sees its peer's
	 * answer a little ahead, within the windows it allows). */
	bpf_map_delete_elem(fp->keys_fd, &s->orig);
	if (s->single) {
		backend_unref(fp, s);
	} else {
		reply = slot_reply(s);
		bpf_map_delete_elem(fp->keys_fd, &reply);
	}
	rc = read_locked(fp, (uint32_t)id, out);
	bpf_map_update_elem(fp->conns_fd, &(uint32_t){ (uint32_t)id }, &idle, BPF_F_LOCK);
	drop_hint(fp, (uint32_t)id, 0);
	give_id(fp, (uint32_t)id);
	pthread_mutex_unlock(&fp->lock);
	return rc;
}

size_t fp_conn_count(struct fp *fp)
{
	size_t n;

	pthread_mutex_lock(&fp->lock);
	n = fp->nused;
	pthread_mutex_unlock(&fp->lock);
	return n;
}

size_t fp_sweep(struct fp *fp, size_t budget,
		void (*fn)(void *arg, const struct lb_tuple *orig,
			   const struct lb_fastpath_seen *s),
		void *arg)
{
	size_t reported = 0;

	for (size_t i = 0; i < budget && i < fp->cap; i++) {
		struct lb_fastpath_seen seen;
		struct lb_tuple orig;
		uint32_t id;
		int moved = 0;

		/* One slot at a time: fn takes the engine's connection lock,
		 * which the install and remove hooks hold while taking ours. */
		pthread_mutex_lock(&fp->lock);
		id = (uint32_t)(fp->cursor++ % fp->cap);
		if (fp->slots[id].used && read_locked(fp, id, &seen) == 0) {
			moved = seen.pkts[0] || seen.pkts[1];
			orig = slot_orig(&fp->slots[id]);
		}
		pthread_mutex_unlock(&fp->lock);
		if (moved) {
			fn(arg, &orig, &seen);
			reported++;
		}
	}
	return reported;
}

/* One signal from the ring: report connection id as the sweep would. */
static int on_signal(void *ctx, void *data, size_t len)
{
	struct fp *fp = ctx;
	struct fp_signal sg;
	struct lb_fastpath_seen seen;
	struct lb_tuple orig;
	int moved = 0;

	if (len < sizeof(sg) || !fp->sig_fn)
		return 0;
	memcpy(&sg, data, sizeof(sg));
	pthread_mutex_lock(&fp->lock);
	if (sg.id < fp->cap && fp->slots[sg.id].used && read_locked(fp, sg.id, &seen) == 0) {
		moved = seen.pkts[0] || seen.pkts[1];
		orig = slot_orig(&fp->slots[sg.id]);
	}
	pthread_mutex_unlock(&fp->lock);
	if (moved) {
		fp->sig_fn(fp->sig_arg, &orig, &seen);
		fp->sig_reported++;
	}
	return 0;
}

int fp_signal_fd(struct fp *fp)
{
	return fp && fp->ring ? ring_buffer__epoll_fd(fp->ring) : -1;
}

size_t fp_signals(struct fp *fp,
		  void (*fn)(void *arg, const struct lb_tuple *orig,
			     const struct lb_fastpath_seen *s),
		  void *arg)
{
	size_t n;

	if (!fp->ring)
		return 0;
	fp->sig_fn = fn;
	fp->sig_arg = arg;
	fp->sig_reported = 0;
	ring_buffer__consume(fp->ring);
	n = fp->sig_reported;
	fp->sig_fn = NULL;
	return n;
}

int fp_counters(struct fp *fp, uint64_t out[FP_CNT_COUNT])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (uint32_t c = 0; c < FP_CNT_COUNT; c++) {
		out[c] = 0;
		if (bpf_map_lookup_elem(fp->stats_fd, &c, vals))
			continue;
		for (int i = 0; i < ncpu; i++)
			out[c] += vals[i];
	}
	free(vals);
	return 0;
}

int fp_test_run(struct fp *fp, const void *data, size_t len, void *out, size_t *outlen)
{
	uint8_t in[14 + 65536], res[14 + 65536 + 256];
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_out = res,
			    .data_size_out = sizeof(res));
	int rc;

	if (len > 65536)
		return -EMSGSIZE;
	memset(in, 0, 12);
	in[12] = 0x08;	/* ETH_P_IP */
	in[13] = 0x00;
	memcpy(in + 14, data, len);
	opts.data_size_in = (uint32_t)len + 14;
	rc = bpf_prog_test_run_opts(bpf_program__fd(fp->skel->progs.fp_ingress), &opts);
	if (rc)
		return rc < 0 ? rc : -EIO;
	if (opts.data_size_out < 14 || opts.data_size_out - 14 > *outlen)
		return -EMSGSIZE;
	*outlen = opts.data_size_out - 14;
	memcpy(out, res + 14, *outlen);
	return (int)opts.retval;
}

static int ops_install(void *arg, const struct lb_fastpath_conn *c)
{
	return fp_conn_install(arg, c);
}

static int ops_read(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	return fp_conn_read(arg, orig, out);
}

static int ops_remove(void *arg, const struct lb_tuple *orig, struct lb_fastpath_seen *out)
{
	return fp_conn_remove(arg, orig, out);
}

const struct lb_fastpath_ops fp_engine_ops = {
	.install = ops_install, .read = ops_read, .remove = ops_remove,
};
