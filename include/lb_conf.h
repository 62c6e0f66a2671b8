/*
 * lb_conf: lbd's configuration file, parsed with libconfig.
 *
 * Every error, syntactic or semantic, is reported as "file:line: message",
 * and unknown settings are errors too (a mistyped "wieght" must not silently
 * become the default). See docs/configuration.md for the reference.
 */
#ifndef LB_CONF_H
#define LB_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "agent_check.h"
#include "lb_engine.h"

/* daemon.fast_path: the kernel fast path (fastpath.h). */
enum lb_fast_path {
	LB_FAST_PATH_OFF = 0,		/* false: NFQUEUE alone */
	LB_FAST_PATH_ON = 1,		/* true: if it loads; else log why, NFQUEUE alone */
	LB_FAST_PATH_REQUIRED = 2,	/* "required": not starting without it */
};

struct lb_daemon_conf {
	unsigned workers;	/* worker threads, one NFQUEUE each */
	unsigned queue;		/* first queue number */
	unsigned queue_maxlen;	/* packets the kernel holds per queue */
	char control[108];	/* control socket path */
	char chain[24];		/* prefix of the iptables chains lbd owns */
	char control_group[32];	/* group that may read the control socket; "" none */
	struct lb_addr metrics_addr;	/* Prometheus endpoint */
	uint16_t metrics_port;		/* 0: off */
	int log_syslog;			/* log to syslog, not stderr */
	int log_facility;		/* LOG_DAEMON, ... */
	int log_level;			/* enum log_level; -1: not set */
	int fast_path;		/* enum lb_fast_path */
	char user[33];		/* run as this user after set-up (root: uid 0 kept) */
	int fail_open;		/* queue overflow and no lbd: packets pass unqueued */
	int syn_queue;		/* clients' SYNs to a queue (queue + workers) of their own */
	char alive_link[16];	/* a TUN link that lives as long as lbd; "" none */
};

/* The sync channel to the peer (docs/protocol.md); enabled when the section exists. */
struct lb_sync_conf {
	int enabled;
	uint32_t node_id;
	uint32_t peer_id;		/* the only node id we hear */
	struct lb_addr local;		/* bind address on the sync link */
	struct lb_addr peer;		/* the peer's address (unicast) */
	uint16_t port;
	char interface[16];		/* SO_BINDTODEVICE, "" for none */
	char key_file[256];
	char state_file[256];		/* the epoch counter; "" = key_file + ".epoch" */
	uint32_t interval_ms;		/* window refresh while data flows */
	uint32_t max_lag;		/* bytes a connection moves between refreshes, at most */
	int defer;			/* hold new connections until the peer has them */
	uint32_t defer_timeout_ms;
	uint32_t ring;			/* datagrams kept for retransmission */
	uint32_t heartbeat_ms;
	uint32_t peer_timeout_ms;
	uint32_t resync_timeout_ms;	/* no master answered: ready on our own */
	uint32_t key_grace_s;		/* a reloaded key: the old one stays accepted this long */
	uint32_t stale_after_ms;	/* a backup not hearing its peer this long is not
					 * ready until resynced; 0: never */
	int vip_takeover;		/* become master when a VIP appears on this host */
	int takeover_kick;		/* after a takeover, end the backoff of connections
					 * that were moving data (lb_kick.h) */
};

struct lb_conf {
	struct lb_daemon_conf daemon;
	struct lb_sync_conf sync;
	struct lb_engine_conf engine;
	struct lb_service_conf *services;	/* owned, with their backends */
	size_t nservices;
	struct agent_check_target *checks;	/* owned: one per checked backend */
	size_t nchecks;
};

/*
 * What a file that sets nothing but an empty services list gives: lbd's
 * defaults, no services, no sync section. Overwrites *conf (free it first).
 */
void lb_conf_defaults(struct lb_conf *conf);

/*
 * Loads path into *conf. Returns 0, or -1 with a message "file:line: what"
 * in err (errlen bytes) and *conf left empty.
 */
int lb_conf_load(const char *path, struct lb_conf *conf, char *err, size_t errlen);

/* Frees what lb_conf_load() allocated; an empty conf is fine. */
void lb_conf_free(struct lb_conf *conf);

#endif
