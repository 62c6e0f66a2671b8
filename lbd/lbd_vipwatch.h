/*
 * lbd_vipwatch: learns at once when a service VIP is added to or removed
 * from an interface of this host (vipwatch.c): an rtnetlink socket joined to
 * the IPv4 and IPv6 address groups, read by the loop when it polls. When
 * keepalived makes this node master it adds the VIPs before anything else,
 * so their arrival is the earliest sign of a takeover this host gets, well
 * before lb-notify's `lbctl role master` (a spawned process, ~30 ms). No
 * initial dump: only changes matter. Private to lbd/.
 */
#ifndef LBD_VIPWATCH_H
#define LBD_VIPWATCH_H

#include <stddef.h>

struct lb_service_conf;
struct lbd_vipwatch;

enum { LBD_VIP_ARRIVED = 1, LBD_VIP_LEFT = 2 };

/* Opens the socket and takes the services' VIPs. NULL and errno on failure. */
struct lbd_vipwatch *lbd_vipwatch_open(const struct lb_service_conf *svcs, size_t n);
void lbd_vipwatch_close(struct lbd_vipwatch *w);

/* The services' VIPs after a reload (any thread). */
void lbd_vipwatch_set(struct lbd_vipwatch *w, const struct lb_service_conf *svcs, size_t n);

int lbd_vipwatch_fd(const struct lbd_vipwatch *w);

/* Reads every pending notification (never blocks); returns the LBD_VIP_*
 * bits of what happened to watched addresses, 0 if nothing. ARRIVED only
 * when no departure followed the last arrival: it means "a VIP came and is
 * still here". */
int lbd_vipwatch_read(struct lbd_vipwatch *w);

/* The same for a buffer of rtnetlink messages already read (tests). */
int lbd_vipwatch_parse(struct lbd_vipwatch *w, const void *buf, size_t len);

#endif
