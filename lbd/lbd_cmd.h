/*
 * lbd_cmd: the daemon's commands (cmd.c), what `lbctl stats|conns|backends|
 * reload|role|ready|sync` do and print, for the control socket and the
 * signals. They run on the main thread; what must happen on the engine's
 * control thread (reload, role) they hand to the loop (lbd_loop.h). Each
 * prints its answer to out, whose first line starts with "error:" on
 * failure; out may be NULL for reload and set_role (a signal), which log.
 * Private to lbd/.
 */
#ifndef LBD_CMD_H
#define LBD_CMD_H

#include <stdio.h>

#include "lb_repl.h"

struct lbd;

void lbd_cmd_stats(struct lbd *d, FILE *out);
void lbd_cmd_conns(struct lbd *d, FILE *out);
void lbd_cmd_backends(struct lbd *d, FILE *out);

/* Re-reads the configuration file and applies its services. Returns 0 or -1. */
int lbd_cmd_reload(struct lbd *d, FILE *out);

/* `role`: prints the role (arg NULL) or sets it (master, backup, fault). Returns 0 or -1. */
int lbd_cmd_role(struct lbd *d, const char *arg, FILE *out);

/* Sets the role, as `role ROLE` and SIGUSR1/SIGUSR2 ask. Returns 0 or -1. */
int lbd_cmd_set_role(struct lbd *d, enum lb_role role, FILE *out);

/* `ready`: 0 when this node may become master, else -1 and why. */
int lbd_cmd_ready(struct lbd *d, FILE *out);

/* `sync`: the role, the sync channel's counters and the defer counters. */
void lbd_cmd_sync(struct lbd *d, FILE *out);

#endif
