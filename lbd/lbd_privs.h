/*
 * lbd_privs: giving up root once set-up is done. lbd needs root to bind its
 * NFQUEUEs, create its control socket, read its key and state files; after
 * that it needs exactly one privilege for the rest of its life:
 * CAP_NET_ADMIN, for the queues' verdicts (nfnetlink checks it on every
 * message) and for the iptables rules it rewrites on every reload, after
 * backends drained, and at exit. So lbd switches to an unprivileged user and
 * keeps CAP_NET_ADMIN alone (effective, permitted, inheritable, bounding, and
 * ambient, so that the iptables it spawns gets it too, without setuid or
 * file capabilities). Private to lbd/.
 *
 * Capabilities are per thread: this must run before lbd starts any thread,
 * and every thread it starts afterwards inherits the reduced set.
 */
#ifndef LBD_PRIVS_H
#define LBD_PRIVS_H

#include <stddef.h>

/*
 * Switches to user (its uid, its primary gid, no supplementary groups) with
 * CAP_NET_ADMIN only, and checks the result. As "root" the uid stays 0 but
 * the capabilities are still cut to CAP_NET_ADMIN. When lbd does not run as
 * root, the uid stays and only the capabilities are cut (to CAP_NET_ADMIN if
 * it has it). Returns 0, or -1 with a one-line reason in err.
 */
int lbd_privs_drop(const char *user, char *err, size_t errlen);

#endif
