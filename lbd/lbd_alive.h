/*
 * lbd_alive: lbd's liveness as a network link (alive.c). keepalived runs a
 * track script at most once a second (vrrp_script intervals are whole
 * seconds), so a master whose lbd died kept the VIPs for up to a second while
 * nothing forwarded. A TUN link lives exactly as long as the descriptor that
 * made it: when lbd exits or is killed, the kernel deletes the link, and a
 * keepalived that tracks it (track_interface, with dynamic_interfaces) hears
 * that through netlink at once and leaves MASTER. Private to lbd/.
 */
#ifndef LBD_ALIVE_H
#define LBD_ALIVE_H

#include <stddef.h>

/*
 * Creates the TUN link name, without IPv6 addresses, and sets it up.
 * Returns its descriptor, to be kept open for lbd's lifetime, or -1 with
 * why in err (another process holds the name, no /dev/net/tun, ...).
 */
int lbd_alive_open(const char *name, char *err, size_t errlen);

#endif
