/*
 * lbd_cmd: the daemon's commands (cmd.c), what `lbctl stats|conns|backends|
 * reload|role|ready|sync` do and answer, for the control socket and the
 * signals. They run on the main thread; what must happen on the engine's
 * control thread (reload, role) they hand to the loop (lbd_loop.h). Each
 * takes the rest of the command line (NULL when empty) and fills the reply
 * (lbd_reply.h); r may be NULL for reload and set_role (a signal), which
 * log. Each returns 0, or -1 with the reply's error set. Private to lbd/.
 */
#ifndef LBD_CMD_H
#define LBD_CMD_H

#include "lb_repl.h"

struct lbd;
struct lbd_reply;

/* Every counter: the engine's, the queues', the kernel's, the capture's. */
int lbd_cmd_stats(struct lbd *d, const char *arg, struct lbd_reply *r);

/* The connection table, one row per connection; arg: filters
 * "[service A[:P]] [backend A[:P]] [state S] [client A[:P]]". */
int lbd_cmd_conns(struct lbd *d, const char *arg, struct lbd_reply *r);

/* One row per backend, draining ones too, with state and health. */
int lbd_cmd_backends(struct lbd *d, const char *arg, struct lbd_reply *r);

/* Re-reads the configuration file and applies its services. */
int lbd_cmd_reload(struct lbd *d, struct lbd_reply *r);

/* `role`: the role (arg NULL) or sets it (master, backup, fault). */
int lbd_cmd_role(struct lbd *d, const char *arg, struct lbd_reply *r);

/* Sets the role, as `role ROLE` and SIGUSR1/SIGUSR2 ask. */
int lbd_cmd_set_role(struct lbd *d, enum lb_role role, struct lbd_reply *r);

/* `ready`: ok when this node may become master, else an error saying why. */
int lbd_cmd_ready(struct lbd *d, const char *arg, struct lbd_reply *r);

/* `sync`: the role, the sync channel's counters and the defer counters. */
int lbd_cmd_sync(struct lbd *d, const char *arg, struct lbd_reply *r);

/* Why a command handed to the loop failed (a negative errno from lbd_loop.h). */
const char *lbd_cmd_loop_error(int rc);

#endif
