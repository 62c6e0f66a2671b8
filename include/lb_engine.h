/*
 * lb_engine: the load balancer's data plane, free of I/O.
 *
 * Packet bytes go in, a verdict and (possibly) rewritten bytes come out. The
 * same engine runs behind NFQUEUE in lbd, in unit tests, under a fuzzer and
 * in pcap replay; two engines (active and standby) can live in one process.
 * It keeps no global state: everything is in struct lb_engine and in the
 * per-thread struct lb_worker of the thread calling it.
 *
 * Packet path (NAT mode, as LVS-NAT):
 *   client -> VIP:port      (hook PRE, before routing)  destination rewritten
 *                            to the backend chosen at the SYN
 *   backend -> client       (hook POST, after routing)  source rewritten back
 *                            to VIP:port
 * Only a SYN may create a connection; any other packet without an entry is
 * dropped (no loose pickup). Every drop has a counter.
 *
 * Threads: lb_engine_packet() may run on any number of threads at once, each
 * with its own struct lb_worker. lb_engine_tick(), lb_engine_set_services(),
 * lb_engine_set_role(), lb_engine_set_clock() and the imports and exports of
 * replication (lb_repl.h) may run concurrently with them from one control
 * thread, always the same one while others run. The readers
 * (lb_engine_counters(), lb_engine_conn_count(), lb_engine_conn_find(), the
 * foreach functions, lb_engine_role()) lock or read atomics and may be
 * called from any thread.
 */
#ifndef LB_ENGINE_H
#define LB_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_addr.h"
#include "lb_backend.h"
#include "lb_record.h"
#include "lb_repl.h"
#include "lb_tcp.h"

/* Every counter, with its name as lbctl prints it. Drops start with drop_. */
#define LB_COUNTER_LIST(X)                                               \
	X(PKTS_ORIG, "pkts_orig")           /* client -> backend, accepted */ \
	X(PKTS_REPLY, "pkts_reply")         /* backend -> client, accepted */ \
	X(BYTES_ORIG, "bytes_orig")                                      \
	X(BYTES_REPLY, "bytes_reply")                                    \
	X(PKTS_GSO, "pkts_gso")             /* segments larger than the MTU */ \
	X(CSUM_FULL, "csum_full")           /* complete checksums written */ \
	X(CONNS_CREATED, "conns_created")                                \
	X(CONNS_REOPENED, "conns_reopened") /* SYN reusing a closed tuple */ \
	X(CONNS_EXPIRED, "conns_expired")                                \
	X(CONNS_EVICTED, "conns_evicted")   /* half-open past max_embryonic, oldest first */ \
	X(BACKENDS_FREED, "backends_freed") /* drained after a reload */ \
	X(PERSIST_FULL, "persist_full")                                  \
	X(DROP_TRUNCATED, "drop_truncated")                              \
	X(DROP_BAD_IP, "drop_bad_ip")                                    \
	X(DROP_FRAGMENT, "drop_fragment")                                \
	X(DROP_NOT_TCP, "drop_not_tcp")                                  \
	X(DROP_BAD_TCP, "drop_bad_tcp")                                  \
	X(DROP_BAD_CSUM, "drop_bad_csum")   /* complete TCP checksum wrong */ \
	X(DROP_BAD_FLAGS, "drop_bad_flags")                              \
	X(DROP_OUT_OF_WINDOW, "drop_out_of_window")                      \
	X(DROP_BAD_RST, "drop_bad_rst")                                  \
	X(DROP_BAD_HANDSHAKE, "drop_bad_handshake")                      \
	X(DROP_BAD_STATE, "drop_bad_state")                              \
	X(DROP_NO_CONN, "drop_no_conn")     /* mid-stream, no entry */    \
	X(DROP_NO_SERVICE, "drop_no_service")                            \
	X(DROP_SERVICE_DISABLED, "drop_service_disabled") /* lb_admin.h */ \
	X(DROP_NO_BACKEND, "drop_no_backend")                            \
	X(DROP_TABLE_FULL, "drop_table_full")                            \
	X(DROP_TUPLE_CLASH, "drop_tuple_clash")                          \
	X(DROP_WRONG_HOOK, "drop_wrong_hook")                            \
	X(DROP_NOT_MASTER, "drop_not_master") /* backup or fault role */ \
	X(RST_INEXACT, "rst_inexact")       /* in-window RST, forwarded, no state change */ \
	X(SYN_IGNORED, "syn_ignored")       /* SYN on a live tuple, forwarded, no state change */ \
	X(TAKEOVER_SLACK, "takeover_slack") /* accepted thanks to slack */ \
	X(REPL_UPDATES, "repl_updates")     /* connection states emitted */ \
	X(REPL_DELETES, "repl_deletes")                                  \
	X(REPL_DELETES_ELIDED, "repl_deletes_elided")                    \
	X(REPL_PERSISTS, "repl_persists")                                \
	X(IMPORT_NEW, "import_new")                                      \
	X(IMPORT_UPDATED, "import_updated")                              \
	X(IMPORT_STALE, "import_stale")     /* older version: refused */  \
	X(IMPORT_REGRESS, "import_regress") /* would move backwards */    \
	X(IMPORT_NO_SERVICE, "import_no_service")                        \
	X(IMPORT_NO_BACKEND, "import_no_backend")                        \
	X(IMPORT_FULL, "import_full")                                    \
	X(IMPORT_CLASH, "import_clash")                                  \
	X(IMPORT_IGNORED, "import_ignored") /* arrived while master */   \
	X(IMPORT_DELETES, "import_deletes")                              \
	X(IMPORT_PERSISTS, "import_persists")                            \
	X(FAST_INSTALLS, "fast_installs")   /* handed to the kernel fast path */ \
	X(FAST_INSTALL_FAILED, "fast_install_failed") /* stayed on NFQUEUE */ \
	X(FAST_REMOVES, "fast_removes")     /* taken back: closing, expired */ \
	X(FAST_PKTS, "fast_pkts")           /* the kernel forwarded them */ \
	X(FAST_BYTES, "fast_bytes")

enum lb_counter {
#define LB_COUNTER_ENUM(id, name) LB_CNT_##id,
	LB_COUNTER_LIST(LB_COUNTER_ENUM)
#undef LB_COUNTER_ENUM
	LB_CNT_COUNT
};

/* Name of a counter, e.g. "drop_no_conn". */
const char *lb_counter_name(enum lb_counter c);

struct lb_service_conf {
	struct lb_addr vip;
	uint16_t port;
	char scheduler[8];
	uint32_t persistence_s;		/* 0: no client persistence */
	bool disabled;			/* set at run time (lb_admin.h): new
					 * connections refused; a reload clears it */
	struct lb_backend_conf *backends;
	size_t nbackends;
};

/* 1 if name is a scheduler the engine has (rr, wrr, lc, wlc, sh, mh). */
int lb_sched_name_valid(const char *name);

struct lb_engine_conf {
	size_t max_conns;			/* table capacity */
	uint32_t timeout_s[LB_TCP_STATE_COUNT];	/* idle timeout per state */
	size_t max_persist;			/* persistence entries */
	size_t max_embryonic;			/* half-open (syn_sent, syn_recv) entries
						 * at most; 0: max_conns / 4 */
	uint32_t seed;				/* hash key, from the caller (lbd: random) */
};

/* Fills conf with the defaults (IPVS's timeouts, 256 Ki connections). */
void lb_engine_conf_defaults(struct lb_engine_conf *conf);

/* Bytes lb_engine_new(conf) allocates up front for its connection and
 * persistence tables: what max_conns and max_persist cost in memory. */
size_t lb_engine_mem_bytes(const struct lb_engine_conf *conf);

enum lb_hook {
	LB_HOOK_ANY = 0,	/* unknown (replay): the table decides */
	LB_HOOK_PRE,		/* before routing: client -> VIP */
	LB_HOOK_POST,		/* after routing: backend -> client */
};

/* Packet flags from the queue. */
#define LB_PKT_F_CSUM_PARTIAL	0x01	/* L4 checksum holds only the pseudo-header sum */
#define LB_PKT_F_GSO		0x02	/* a GSO super-segment */
#define LB_PKT_F_CSUM_TRUSTED	0x04	/* not from the wire (replay of a capture that
					 * may be truncated): skip the checksum check */

struct lb_packet {
	uint8_t *data;		/* starts at the IP header; rewritten in place */
	uint32_t len;
	uint32_t flags;		/* LB_PKT_F_* */
	enum lb_hook hook;
	int modified;		/* out: data changed, return it with the verdict */
	uint64_t defer_ticket;	/* out: in defer mode, hold the (accepted) packet
				 * until the replication ticket is acknowledged */
	enum lb_counter drop_reason; /* out: with a drop, the counter it went to */
};

enum lb_verdict {
	LB_VERDICT_DROP = 0,
	LB_VERDICT_ACCEPT = 1,
};

/* Per-thread context: counters written by one thread, read by any. */
struct lb_worker {
	atomic_uint_fast64_t counters[LB_CNT_COUNT];
};

static inline void lb_worker_count(struct lb_worker *w, enum lb_counter c, uint64_t n)
{
	/* One writer per worker: a relaxed load and store, no locked add. */
	atomic_store_explicit(&w->counters[c],
			      atomic_load_explicit(&w->counters[c], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

struct lb_engine;

/*
 * Creates an engine with no services. now_ms is CLOCK_MONOTONIC milliseconds.
 * Returns NULL and sets errno.
 */
struct lb_engine *lb_engine_new(const struct lb_engine_conf *conf, uint64_t now_ms);
void lb_engine_free(struct lb_engine *e);

/*
 * Registers a new worker context, zeroed, owned by the engine (freed with
 * it). Returns NULL and sets errno (ENOSPC past LB_ENGINE_MAX_WORKERS).
 */
#define LB_ENGINE_MAX_WORKERS 64
struct lb_worker *lb_engine_worker_new(struct lb_engine *e);

/*
 * Replaces the service configuration (initial load or reload). Services and
 * backends are matched by identity (VIP:port, address:port) with the current
 * ones: a kept backend keeps its connections and counters and takes the new
 * weight and limit; a removed one drains (no new connections) and is freed
 * by lb_engine_tick() after its last connection ends. Returns 0, or a
 * negative errno with the old configuration left in place.
 */
int lb_engine_set_services(struct lb_engine *e, const struct lb_service_conf *svcs,
			   size_t n);

/* Handles one packet; see the header comment. */
enum lb_verdict lb_engine_packet(struct lb_engine *e, struct lb_worker *w,
				 struct lb_packet *pkt, uint64_t now_ms);

/* Expires connections and persistence entries, frees drained backends. */
void lb_engine_tick(struct lb_engine *e, struct lb_worker *w, uint64_t now_ms);

/* Sums every worker's counters into out[LB_CNT_COUNT]. */
void lb_engine_counters(struct lb_engine *e, uint64_t out[LB_CNT_COUNT]);

/* What `lbctl conns` shows of a connection: a copy, taken under its lock. */
struct lb_conn_info {
	struct lb_conn_state state;	/* as replication would send it */
	uint32_t service_id;
	uint64_t pkts[2], bytes[2];	/* by direction (enum lb_dir) */
};

/*
 * Calls fn with a snapshot of every connection (expiry relative to now_ms).
 * Connections inserted or removed meanwhile may or may not be seen. fn runs
 * with the connection locked: it must not call into the engine.
 */
void lb_engine_foreach_conn(struct lb_engine *e, uint64_t now_ms,
			    void (*fn)(const struct lb_conn_info *c, void *arg), void *arg);

/*
 * Calls fn with a snapshot of every backend, draining ones too. fn runs under
 * the service lock: it must not call into the engine. The snapshot is valid
 * only during the call.
 */
void lb_engine_foreach_backend(struct lb_engine *e,
			       void (*fn)(const struct lb_backend_info *be, void *arg),
			       void *arg);

/*
 * The same a slice at a time: visits the connections of up to nbuckets hash
 * buckets from *cursor (start at 0), moves *cursor on and returns 1 while
 * there are more, 0 after the last. Between calls nothing is locked, so a
 * caller can send what it gathered; connections that move meanwhile may be
 * missed or seen twice.
 */
int lb_engine_foreach_conn_step(struct lb_engine *e, size_t *cursor, size_t nbuckets,
				uint64_t now_ms,
				void (*fn)(const struct lb_conn_info *c, void *arg), void *arg);

size_t lb_engine_conn_count(struct lb_engine *e);

/*
 * The state of the connection whose client-side tuple (client -> VIP) is
 * orig, as replication would send it (backend, TCP state, version, ...).
 * Returns 0, or -ENOENT.
 */
int lb_engine_conn_find(struct lb_engine *e, const struct lb_tuple *orig, uint64_t now_ms,
			struct lb_conn_state *out);

/*
 * The same as lbctl shows it: the live tracker, takeover slack and this
 * node's own observations (maxack) included, which decide how the next
 * segments are judged. Returns 0, or -ENOENT.
 */
int lb_engine_conn_live(struct lb_engine *e, const struct lb_tuple *orig, uint64_t now_ms,
			struct lb_conn_info *out);

/*
 * The same after catching up with the kernel fast path (its window edges,
 * the acks it saw, its packets, counted on w): what a connection it
 * forwards looks like now, not at the last sweep. Control thread.
 */
int lb_engine_conn_fresh(struct lb_engine *e, struct lb_worker *w, const struct lb_tuple *orig,
			 uint64_t now_ms, struct lb_conn_info *out);

/*
 * lb_engine_conn_live() taking no lock, for a caller that knows no other
 * thread uses the engine (a drill replaying a capture): it writes nothing,
 * so in a forked copy-on-write snapshot of the engine it copies no page.
 */
int lb_engine_conn_peek(const struct lb_engine *e, const struct lb_tuple *orig,
			uint64_t now_ms, struct lb_conn_info *out);

#endif
