/*
 * fp_abi: the maps shared by the tc program (fp.bpf.c) and its loader
 * (loader.c), as both compile them. Private to fastpath/.
 *
 *   fp_keys   hash   struct fp_key  -> struct fp_nat    one or two per connection
 *   fp_backends hash struct fp_backend_key -> struct fp_backend: a backend's VIP
 *   fp_conns  array  id             -> struct fp_conn   shared by both directions
 *   fp_hints  hash   id             -> struct fp_hint   only while one is pending
 *   fp_hinted array  id / 64        -> __u64, bit id % 64: fp_hints may hold id
 *   fp_stats  percpu array  enum fp_counter -> __u64
 *   fp_ctl    array  FP_CTL_FLAGS -> __u32 flags (FP_CTL_*);
 *                    FP_CTL_SLACK_UNTIL -> __u32 ms: the takeover's slack
 *                    holds until then (below)
 *   fp_ring   ring buffer of struct fp_signal: a connection moved far or
 *             long enough since its last signal that the engine must
 *             replicate it (fp_signal_bytes, fp_signal_ms: set at load)
 *
 * A connection is installed under both its tuples (client -> VIP:port and
 * backend -> client); both point at one fp_conn, whose window state both
 * directions need, under its spin lock. Addresses and ports are kept in
 * network order, as on the wire; IPv4 in the first four address bytes.
 */
#ifndef FP_ABI_H
#define FP_ABI_H

#include <linux/types.h>

#include "fp_counter.h"

#define FP_DIR_ORIG 0	/* client -> VIP:port: destination rewritten */
#define FP_DIR_REPLY 1	/* backend -> client: source rewritten */

/* fp_conn.state: only established connections are handled in the kernel. */
#define FP_STATE_ESTABLISHED 1
/* A FIN or RST went up: every later packet goes up too until the engine has
 * judged it (it takes the entry back, or says established again), so the
 * entry it reads back holds every packet the program forwarded. */
#define FP_STATE_CLOSING 2

/* fp_ctl's keys. */
#define FP_CTL_FLAGS 0
#define FP_CTL_SLACK_UNTIL 1
#define FP_CTL_KEYS 2

#define FP_CTL_ENABLED 0x1	/* off: every packet goes up (a capture runs) */
#define FP_CTL_STACK 0x2	/* return rewritten packets to the stack instead
				 * of redirecting them (tests; no routing) */

/*
 * Sized for memory: a million connections hold two fp_keys elements and one
 * fp_conn and fp_hint each, so every byte here is a megabyte there. The
 * hash map's own overhead (about 56 bytes an element, and a bucket) is paid
 * per element whatever the key, so the key and value are as small as IPv4
 * allows: IPv6 connections stay on the slow path.
 */
struct fp_key {
	__u32 src;		/* IPv4, network order */
	__u32 dst;
	__u16 sport;
	__u16 dport;
};

/*
 * A connection is keyed once, under its orig tuple, when its backend's
 * address and port lead to its VIP:port in fp_backends: a reply (backend ->
 * client) then finds it as client -> VIP:port. A backend serves one VIP:port
 * there, the first whose connection used it, until no connection keyed once
 * uses it; a connection to another VIP:port through that backend (a backend
 * in two services) is keyed twice, under both its tuples, as before. The
 * hash map's overhead per element is most of a connection's kernel memory:
 * keyed once, it is paid once.
 */
struct fp_backend_key {
	__u32 addr;		/* network order */
	__u16 port;
	__u16 pad;
};

struct fp_backend {
	__u32 vip;
	__u16 vport;
	__u16 pad;
	__u32 refs;		/* connections keyed once through it (lbd's count) */
};

/* Backend addresses and ports (lb_engine.h's LB_ENGINE_MAX_BACKENDS). */
#define FP_MAX_BACKENDS 4096

struct fp_nat {
	__u32 id;		/* index into fp_conns */
	__u32 addr;		/* new destination (orig) or source (reply) address */
	__u16 port;		/* new destination (orig) or source (reply) port */
	__u8 dir;		/* FP_DIR_* */
	__u8 pad;
};

struct fp_peer {
	__u32 end;		/* as lb_tcp_peer (include/lb_tcp.h) */
	__u32 maxend;
	__u32 maxwin;
};

struct fp_conn {
	struct bpf_spin_lock lock;
	__u8 state;
	__u8 wscale[2];		/* by direction of the sender, as lb_tcp_peer */
	__u8 acked;		/* bit d: ack[d] holds what direction d's sender acked */
	struct fp_peer peer[2];	/* by direction of the sender */
	__u32 hint_gen;		/* the fp_hint last applied */
	/* Bytes since the last signal, by direction: a signal is due at
	 * fp_signal_bytes (a quarter of sync.max_lag, at most 2^28), so 32
	 * bits never wrap between two signals. */
	__u32 sig_moved[2];
	/* CLOCK_MONOTONIC milliseconds (bpf_ktime_get_ns() / 10^6), their low
	 * 32 bits, 0 for none: the loader widens them against its own clock,
	 * exact while the time is less than 49 days old (a connection idle
	 * longer than its timeout, 30 days at most, is gone by then). */
	__u32 last_seen_ms;
	__u32 sig_ms;		/* last_seen_ms at the last signal */
	/* Packets modulo 2^32: the loader reads every entry at least once a
	 * sweep (max_conns / 16384 ticks, 410 s at the largest max_conns),
	 * 5,000 s at the 830,000 packets/s of 10 Gbit/s in full frames. Bytes
	 * need 64 bits: 4 GiB pass in 3.4 s. */
	__u32 pkts[2];
	/* The last ack each sender sent through the program (its maxack on
	 * the slow path): what a takeover kick reads, lbd_kick.h. */
	__u32 ack[2];
	/* The takeover slack (include/lb_tcp.h) the engine had for this
	 * connection when it installed or hinted it: the program widens the
	 * four bounds by it, when the exact ones refuse a segment, until
	 * fp_ctl's FP_CTL_SLACK_UNTIL (CLOCK_MONOTONIC ms, low 32 bits: the
	 * end of the grace period after a promotion). A new master's
	 * replicated bounds are up to one interval behind; without it the
	 * first segments of every connection would go up to the workers. */
	__u32 slack;
	__u64 bytes[2];
};

/*
 * What the engine learned of an installed connection from a packet that went
 * up (fp_hints, keyed by the fp_conns index; a hash, so that only the few
 * connections with a hint pending pay for one, and the program looks one up
 * only when fp_hinted's bit says there may be one). lbd writes fp_hints only and never
 * rewrites an fp_conn after creating it: a read-modify-write from user space
 * would lose the edges of a packet the program forwarded between the two
 * calls, and the engine would then refuse the ACK of data it never saw. The
 * program moves the entry's edges forward to a new hint (gen changed) under
 * the entry's lock, and sets it established again.
 */
struct fp_hint {
	__u32 gen;
	struct fp_peer peer[2];	/* window scales never change: not hinted */
	__u32 slack;		/* the engine's takeover slack now */
};

/* A record in fp_ring: the connection whose entry to read. */
struct fp_signal {
	__u32 id;
};

/* fp_ring's size: 16 bytes a record (with its header), 16384 records. */
#define FP_RING_BYTES (256u * 1024u)

#endif
