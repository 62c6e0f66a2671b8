/*
 * lbd_rules: lbd's iptables rules (rules.c), the chains that keep the
 * services' and the backends' packets out of conntrack and queue them to the
 * workers. Installing spawns iptables-restore: one thread (main's) does all
 * of it. Private to lbd/.
 */
#ifndef LBD_RULES_H
#define LBD_RULES_H

struct lb_conf;
struct lb_engine;

/*
 * Installs (or replaces) lbd's chains: requests to every service VIP:port
 * and replies from every backend in the engine (draining ones included) are
 * kept out of conntrack and queued to queues [queue, queue + workers).
 * Returns 0 or -1 (logged).
 */
int lbd_rules_install(const struct lb_conf *conf, struct lb_engine *e);

/* Removes lbd's chains and the jumps to them; quiet when none exist. */
void lbd_rules_remove(const char *chain);

#endif
