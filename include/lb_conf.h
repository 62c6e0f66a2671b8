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

#include "lb_engine.h"

struct lb_daemon_conf {
	unsigned workers;	/* worker threads, one NFQUEUE each */
	unsigned queue;		/* first queue number */
	unsigned queue_maxlen;	/* packets the kernel holds per queue */
	char control[108];	/* control socket path */
	char chain[24];		/* prefix of the iptables chains lbd owns */
};

struct lb_conf {
	struct lb_daemon_conf daemon;
	struct lb_engine_conf engine;
	struct lb_service_conf *services;	/* owned, with their backends */
	size_t nservices;
};

/*
 * Loads path into *conf. Returns 0, or -1 with a message "file:line: what"
 * in err (errlen bytes) and *conf left empty.
 */
int lb_conf_load(const char *path, struct lb_conf *conf, char *err, size_t errlen);

/* Frees what lb_conf_load() allocated; an empty conf is fine. */
void lb_conf_free(struct lb_conf *conf);

#endif
