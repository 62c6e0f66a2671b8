/*
 * lbd_check: what lbd checks about the host before it starts, and what
 * `lbd --check` reports: forwarding for each family that has services,
 * strict rp_filter, the sync key file (exists, size, mode, owner), the sync
 * interface, and whether max_conns fits in memory. Private to lbd/.
 */
#ifndef LBD_CHECK_H
#define LBD_CHECK_H

#include "lb_conf.h"

enum lbd_check_level {
	LBD_CHECK_WARN,		/* lbd runs, but something will not work as meant */
	LBD_CHECK_ERROR,	/* lbd will refuse to start, or fail soon after */
};

/* One finding: a level and a one-line message. */
typedef void (*lbd_check_report)(void *arg, enum lbd_check_level level, const char *msg);

/*
 * Runs every check of conf against the host and reports each finding.
 * root prefixes the /proc paths read ("" on a real host; a directory
 * holding proc/sys/... and proc/meminfo in tests). Returns the number of
 * errors.
 */
int lbd_check_host(const struct lb_conf *conf, const char *root, lbd_check_report report,
		   void *arg);

#endif
