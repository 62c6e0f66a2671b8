/*
 * lbd_rules: lbd's iptables rules (rules.c), the chains that keep the
 * services' and the backends' packets out of conntrack and queue them to the
 * workers. Installing spawns iptables-restore: one thread (main's) does all
 * of it. Every iptables call waits at most LBD_XTABLES_WAIT seconds for the
 * xtables lock (-w), so a stuck iptables elsewhere cannot stall lbd for good.
 * With daemon.fail_open the NFQUEUE rules carry --queue-bypass: while no
 * lbd is bound to the queues, packets pass the kernel unqueued. Private to
 * lbd/.
 */
#ifndef LBD_RULES_H
#define LBD_RULES_H

struct lb_conf;
struct lb_engine;

#define LBD_TOOL_PATH 64

/* Absolute paths of the programs lbd runs, found once at start, so that
 * nothing depends on the PATH lbd inherited. Index 0: IPv4, 1: IPv6. */
struct lbd_tools {
	char iptables[2][LBD_TOOL_PATH];
	char restore[2][LBD_TOOL_PATH];
};

/*
 * Finds iptables, ip6tables, iptables-restore and ip6tables-restore in
 * /usr/sbin, /sbin, /usr/bin, /bin (the first executable regular file).
 * Returns 0, or -1 (logged) when one is missing.
 */
int lbd_rules_find_tools(struct lbd_tools *t);

/*
 * Installs (or replaces) lbd's chains: requests to every service VIP:port
 * and replies from every backend in the engine (draining ones included) are
 * kept out of conntrack and queued to queues [queue, queue + workers).
 * Returns 0 or -1 (logged).
 */
int lbd_rules_install(const struct lbd_tools *t, const struct lb_conf *conf,
		      struct lb_engine *e);

/* Removes lbd's chains and the jumps to them; quiet when none exist. */
void lbd_rules_remove(const struct lbd_tools *t, const char *chain);

#endif
