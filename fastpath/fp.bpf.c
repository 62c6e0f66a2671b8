/*
 * fp.bpf.c: the kernel fast path, a tc (clsact ingress) program on the
 * balancer's interfaces. It forwards the data segments of established
 * connections that the engine installed (fp_abi.h), with the same NAT and
 * the same window checks as the engine (lb/tcp.c, van Rooij's rules I-IV),
 * and passes everything else up unchanged (TC_ACT_OK) to the iptables rules
 * and the NFQUEUE path, where the engine judges it and counts any drop:
 * SYN, FIN, RST, segments without ACK, unknown tuples, entries not
 * established, out-of-window segments, IPv4 options, fragments, other
 * protocols, TTL about to expire, no route. It never drops.
 *
 * Forwarding: after the rewrite it decrements the TTL (it acts as the
 * router) and redirects with bpf_redirect_neigh() to the egress interface a
 * FIB lookup gives. Redirected packets skip netfilter altogether, which is
 * what they need: a reply whose source is already the VIP would be a
 * martian to the stack's routing (docs/platform.md §5), and the kernel's
 * conntrack never sees these flows anyway (CT --notrack).
 *
 * Headers are read with bpf_skb_load_bytes() (GSO packets may keep little in
 * the linear area) and rewritten with bpf_skb_store_bytes() and the checksum
 * helpers, which are right for complete and for partial (offloaded)
 * checksums alike.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fp_abi.h"

#define MAX_ACK_WINDOW 66000u	/* check IV's floor, as lb/tcp.c */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);		/* set by the loader */
	__type(key, struct fp_key);
	__type(value, struct fp_nat);
} fp_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);		/* set by the loader */
	__type(key, __u32);
	__type(value, struct fp_conn);
} fp_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fp_backend_key);
	__type(value, struct fp_backend);
} fp_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);		/* set by the loader: as fp_conns */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct fp_hint);
} fp_hints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);		/* set by the loader: fp_conns / 64 */
	__type(key, __u32);
	__type(value, __u64);
} fp_hinted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_CNT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} fp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FP_CTL_KEYS);
	__type(key, __u32);
	__type(value, __u32);
} fp_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FP_RING_BYTES);
} fp_ring SEC(".maps");

/* Set by the loader before load; 0 bytes: no signals (no replication). */
const volatile __u64 fp_signal_bytes = 0;
const volatile __u32 fp_signal_ms = 0;

/* What the checks need of a segment. */
struct seg {
	__u32 seq, end, ack;
	__u16 win;
};

static __always_inline void count(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&fp_stats, &c);

	if (v)
		*v += n;
}

static __always_inline int pass(__u32 why)
{
	count(why, 1);
	return TC_ACT_OK;
}

static __always_inline int seq_leq(__u32 a, __u32 b) { return (__s32)(a - b) <= 0; }
static __always_inline int seq_geq(__u32 a, __u32 b) { return (__s32)(a - b) >= 0; }
static __always_inline int seq_gt(__u32 a, __u32 b) { return (__s32)(a - b) > 0; }

/*
 * Checks I-IV of include/lb_tcp.h for an ACK segment without SYN, FIN or RST
 * sent by snd to rcv, every bound widened by slack bytes (0: exact), as
 * lb/tcp.c's window_ok() does.
 */
static __always_inline int window_ok(const struct fp_peer *snd, const struct fp_peer *rcv,
				     const struct seg *s, __u32 slack)
{
	__u32 ackwin = snd->maxwin > MAX_ACK_WINDOW ? snd->maxwin : MAX_ACK_WINDOW;

	if (!seq_leq(s->seq, snd->maxend + slack))
		return 0;
	if (!seq_geq(s->end, snd->end - rcv->maxwin - slack))
		return 0;
	return seq_leq(s->ack, rcv->end + slack) && seq_geq(s->ack, rcv->end - ackwin - slack);
}

/*
 * Moves the bounds after an accepted segment as lb/tcp.c's update_window()
 * does. Called under the entry's lock.
 */
static __always_inline void track(struct fp_peer *snd, struct fp_peer *rcv, __u8 wscale,
				  const struct seg *s)
{
	__u32 win = (__u32)s->win << (wscale & 15);

	if (seq_gt(s->end, snd->end))
		snd->end = s->end;
	if (win > snd->maxwin)
		snd->maxwin = win;
	if (seq_gt(s->ack + win, rcv->maxend))
		rcv->maxend = s->ack + win;
	/* An ACK proves the other side sent that far; only the slack lets
	 * one be beyond what we saw. */
	if (seq_gt(s->ack, rcv->end))
		rcv->end = s->ack;
}

/* Rewrites one IPv4 address and port (at ip_off, port_off) with checksums. */
static __always_inline int rewrite4(struct __sk_buff *skb, __u32 ip_off, __u32 port_off,
				    __u32 old_ip, __u32 new_ip, __u16 old_port, __u16 new_port)
{
	__u32 tcsum = ETH_HLEN + sizeof(struct iphdr) + offsetof(struct tcphdr, check);
	__u32 icsum = ETH_HLEN + offsetof(struct iphdr, check);

	if (bpf_l4_csum_replace(skb, tcsum, old_ip, new_ip, BPF_F_PSEUDO_HDR | 4) ||
	    bpf_l3_csum_replace(skb, icsum, old_ip, new_ip, 4) ||
	    bpf_skb_store_bytes(skb, ip_off, &new_ip, 4, 0))
		return -1;
	if (old_port == new_port)
		return 0;
	if (bpf_l4_csum_replace(skb, tcsum, old_port, new_port, 2) ||
	    bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0))
		return -1;
	return 0;
}

/* The router's part: one less TTL, with the header checksum. */
static __always_inline int ttl_dec(struct __sk_buff *skb, const struct iphdr *ip)
{
	__u32 off = ETH_HLEN + offsetof(struct iphdr, ttl);
	__u16 old = *(const __u16 *)&ip->ttl, new;
	__u8 ttl = ip->ttl - 1;

	new = old;
	*(__u8 *)&new = ttl;
	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2))
		return -1;
	return bpf_skb_store_bytes(skb, off, &ttl, 1, 0);
}

/* The egress interface toward dst, or 0 when the stack must decide. */
static __always_inline __u32 route4(struct __sk_buff *skb, const struct iphdr *ip, __u32 src,
				    __u32 dst)
{
	struct bpf_fib_lookup fib = {
		.family = 2,	/* AF_INET */
		.l4_protocol = IPPROTO_TCP,
		.tos = ip->tos,
		.ipv4_src = src,
		.ipv4_dst = dst,
		.ifindex = skb->ingress_ifindex,
	};

	/* tot_len 0: the kernel checks the MTU against the skb itself, GSO
	 * aware. */
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	return fib.ifindex;
}

/*
 * True when c (locked) moved fp_signal_bytes in a direction, or has not been
 * signalled for fp_signal_ms, since its last signal; then that signal is now.
 * The engine replicates a connection at most every interval, sooner once it
 * moved max_lag bytes: without a signal it would learn of the kernel's
 * packets only at its next sweep, a tick later, while a fast connection
 * runs far past what the standby's takeover slack covers.
 */
static __always_inline int signal_due(struct fp_conn *c, __u32 now)
{
	if (!fp_signal_bytes)
		return 0;
	if (c->sig_moved[0] < fp_signal_bytes && c->sig_moved[1] < fp_signal_bytes &&
	    now - c->sig_ms < fp_signal_ms)
		return 0;
	c->sig_moved[0] = 0;
	c->sig_moved[1] = 0;
	c->sig_ms = now;
	return 1;
}

static __always_inline __u32 seq_max32(__u32 a, __u32 b)
{
	return (__s32)(b - a) > 0 ? b : a;
}

/* The engine's newer edges and slack (struct fp_hint); c's lock held. */
static __always_inline void apply_hint(struct fp_conn *c, const struct fp_hint *h)
{
	for (int d = 0; d < 2; d++) {
		c->peer[d].end = seq_max32(c->peer[d].end, h->peer[d].end);
		c->peer[d].maxend = seq_max32(c->peer[d].maxend, h->peer[d].maxend);
		if (h->peer[d].maxwin > c->peer[d].maxwin)
			c->peer[d].maxwin = h->peer[d].maxwin;
	}
	c->slack = h->slack;
	c->hint_gen = h->gen;
	c->state = FP_STATE_ESTABLISHED;
}

/*
 * Takes the connection's lock, checks and tracks: the exact bounds first,
 * then, until slack_until (0: none), the entry's takeover slack. 0 accepted
 * (*slacked: only with the slack), else a counter; *sig: a replication
 * signal is due.
 */
static __always_inline int judge(struct fp_conn *c, const struct fp_hint *h, __u8 dir,
				 const struct seg *s, __u32 len, __u32 slack_until, int *sig,
				 int *slacked)
{
	struct fp_peer *snd, *rcv;
	int ok = 0, why = FP_CNT_PASS_STATE;
	/* No calls while the lock is held; 0 means no packet (fp_abi.h). */
	__u32 now = (__u32)(bpf_ktime_get_ns() / 1000000) ?: 1;
	int grace = slack_until && (__s32)(slack_until - now) > 0;

	snd = dir ? &c->peer[1] : &c->peer[0];
	rcv = dir ? &c->peer[0] : &c->peer[1];
	bpf_spin_lock(&c->lock);
	if (h && h->gen != c->hint_gen)
		apply_hint(c, h);
	if (c->state == FP_STATE_ESTABLISHED) {
		ok = window_ok(snd, rcv, s, 0);
		if (!ok && grace && c->slack)
			ok = *slacked = window_ok(snd, rcv, s, c->slack);
		why = FP_CNT_PASS_WINDOW;
	}
	if (ok) {
		track(snd, rcv, dir ? c->wscale[1] : c->wscale[0], s);
		c->last_seen_ms = now;
		c->ack[dir & 1] = s->ack;
		c->acked |= 1 << (dir & 1);
		c->pkts[dir & 1] += 1;
		c->bytes[dir & 1] += len;
		if (fp_signal_bytes)
			c->sig_moved[dir & 1] += len;
		*sig = signal_due(c, now);
	}
	bpf_spin_unlock(&c->lock);
	return ok ? 0 : why;
}

/* Connection id's pending hint, if any: a hash lookup only when its bit in
 * fp_hinted is set. A hint lbd replaces is a new element swapped in whole,
 * so the program never reads one half written. */
static __always_inline const struct fp_hint *hint_of(__u32 id)
{
	__u32 word = id / 64;
	__u64 *bits = bpf_map_lookup_elem(&fp_hinted, &word);

	if (!bits || !((*bits >> (id & 63)) & 1))
		return 0;
	return bpf_map_lookup_elem(&fp_hints, &id);
}

/* Tells lbd to read connection id now (after the lock: a helper call). */
static __always_inline void signal(__u32 id)
{
	struct fp_signal sg = { .id = id };

	count(bpf_ringbuf_output(&fp_ring, &sg, sizeof(sg), 0) ? FP_CNT_SIGNALS_LOST
							       : FP_CNT_SIGNALS, 1);
}

/* Where a packet goes: its connection and direction, and its new address. */
struct hit {
	__u32 id;
	__u32 addr;		/* new destination (orig) or source (reply) */
	__u16 port;
	__u8 dir;
};

/*
 * Finds the connection of a packet with tuple key. An element keyed by the
 * tuple itself is an orig tuple, or the reply tuple of a connection keyed
 * twice. Else the packet may be a reply of a connection keyed once, under
 * its orig tuple (fp_abi.h): its source is a backend, fp_backends gives
 * that backend's VIP:port, and the orig tuple is client -> VIP:port. The
 * element found must name the packet's source as its backend: a reply
 * tuple belongs to one connection only (the engine refuses a second), so
 * then it is that connection, whatever VIP the backend's entry said.
 */
static __always_inline int find(const struct fp_key *key, struct hit *h)
{
	struct fp_backend_key bk = { .addr = key->src, .port = key->sport };
	struct fp_nat *nat = bpf_map_lookup_elem(&fp_keys, key);
	struct fp_backend *be;
	struct fp_key orig;

	if (nat) {
		h->id = nat->id;
		h->addr = nat->addr;
		h->port = nat->port;
		h->dir = nat->dir;
		return 1;
	}
	be = bpf_map_lookup_elem(&fp_backends, &bk);
	if (!be)
		return 0;
	orig.src = key->dst;
	orig.dst = be->vip;
	orig.sport = key->dport;
	orig.dport = be->vport;
	nat = bpf_map_lookup_elem(&fp_keys, &orig);
	if (!nat || nat->dir != FP_DIR_ORIG || nat->addr != key->src || nat->port != key->sport)
		return 0;
	h->id = nat->id;
	h->addr = orig.dst;
	h->port = orig.dport;
	h->dir = FP_DIR_REPLY;
	return 1;
}

/* A FIN or RST of an installed connection goes up: the program stops
 * forwarding it (FP_STATE_CLOSING) before, not after, the engine reads the
 * entry back as it takes the connection over. */
static __always_inline void mark_closing(const struct fp_key *key)
{
	struct fp_conn *c;
	struct hit h;

	if (!find(key, &h))
		return;
	c = bpf_map_lookup_elem(&fp_conns, &h.id);
	if (!c)
		return;
	bpf_spin_lock(&c->lock);
	c->state = FP_STATE_CLOSING;
	bpf_spin_unlock(&c->lock);
}

static __always_inline int handle4(struct __sk_buff *skb, __u32 flags, __u32 slack_until)
{
	struct iphdr ip;
	struct tcphdr th;
	struct fp_key key;
	struct hit h;
	struct fp_conn *c;
	struct seg s;
	__u32 hl, tot, new_ip, out = 0, why, id;
	int sig = 0, slacked = 0;
	__u8 tf;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return pass(FP_CNT_PASS_MALFORMED);
	if (ip.version != 4)
		return pass(FP_CNT_PASS_MALFORMED);
	if (ip.ihl != 5)
		return pass(FP_CNT_PASS_IP_OPTIONS);
	if (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return pass(FP_CNT_PASS_FRAGMENT);
	if (ip.protocol != IPPROTO_TCP)
		return pass(FP_CNT_PASS_NOT_TCP);
	if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &th, sizeof(th)))
		return pass(FP_CNT_PASS_MALFORMED);
	tot = bpf_ntohs(ip.tot_len);
	hl = sizeof(ip) + th.doff * 4u;
	if (th.doff < 5 || tot < hl || tot > skb->len - ETH_HLEN)
		return pass(FP_CNT_PASS_MALFORMED);
	tf = ((__u8 *)&th)[13];
	key.src = ip.saddr;
	key.dst = ip.daddr;
	key.sport = th.source;
	key.dport = th.dest;
	if ((tf & (TCPF_SYN | TCPF_FIN | TCPF_RST | TCPF_ACK)) != TCPF_ACK) {
		if (tf & (TCPF_FIN | TCPF_RST))
			mark_closing(&key);
		return pass(FP_CNT_PASS_FLAGS);
	}

	if (!find(&key, &h))
		return pass(FP_CNT_PASS_NO_ENTRY);
	c = bpf_map_lookup_elem(&fp_conns, &h.id);
	if (!c)
		return pass(FP_CNT_PASS_NO_ENTRY);
	if (ip.ttl <= 1)
		return pass(FP_CNT_PASS_TTL);
	new_ip = h.addr;
	if (!(flags & FP_CTL_STACK)) {
		out = h.dir == FP_DIR_ORIG ? route4(skb, &ip, ip.saddr, new_ip)
					   : route4(skb, &ip, ip.saddr, ip.daddr);
		if (!out)
			return pass(FP_CNT_PASS_NO_ROUTE);
	}

	s.seq = bpf_ntohl(th.seq);
	s.ack = bpf_ntohl(th.ack_seq);
	s.end = s.seq + (tot - hl);
	s.win = bpf_ntohs(th.window);
	id = h.id;
	why = judge(c, hint_of(id), h.dir, &s, tot, slack_until, &sig, &slacked);
	if (why)
		return pass(why);
	if (sig)
		signal(id);
	if (slacked)
		count(FP_CNT_FWD_SLACK, 1);

	if (h.dir == FP_DIR_ORIG)
		why = rewrite4(skb, ETH_HLEN + offsetof(struct iphdr, daddr),
			       ETH_HLEN + sizeof(ip) + offsetof(struct tcphdr, dest),
			       ip.daddr, new_ip, th.dest, h.port);
	else
		why = rewrite4(skb, ETH_HLEN + offsetof(struct iphdr, saddr),
			       ETH_HLEN + sizeof(ip) + offsetof(struct tcphdr, source),
			       ip.saddr, new_ip, th.source, h.port);
	/* Tracked but not rewritten: the slow path sees it again, which the
	 * tracker accepts (a duplicate), so the packet is not lost. */
	if (why)
		return pass(FP_CNT_PASS_REWRITE);
	count(h.dir == FP_DIR_ORIG ? FP_CNT_FWD_ORIG : FP_CNT_FWD_REPLY, 1);
	count(FP_CNT_FWD_BYTES, tot);
	if (flags & FP_CTL_STACK)
		return TC_ACT_OK;
	if (ttl_dec(skb, &ip))
		return TC_ACT_SHOT;	/* rewritten already: cannot go up */
	return bpf_redirect_neigh(out, NULL, 0, 0);
}

SEC("tc")
int fp_ingress(struct __sk_buff *skb)
{
	__u32 k_flags = FP_CTL_FLAGS, k_until = FP_CTL_SLACK_UNTIL;
	__u32 *ctl = bpf_map_lookup_elem(&fp_ctl, &k_flags);
	__u32 flags = ctl ? *ctl : 0, *until;

	if (!(flags & FP_CTL_ENABLED))
		return pass(FP_CNT_PASS_DISABLED);
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return pass(FP_CNT_PASS_NOT_IP);
	until = bpf_map_lookup_elem(&fp_ctl, &k_until);
	return handle4(skb, flags, until ? *until : 0);
}

char LICENSE[] SEC("license") = "GPL";
