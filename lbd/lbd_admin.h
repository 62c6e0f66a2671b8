/*
 * lbd_admin: the runtime API's commands (admin.c), `lbctl weight|drain|
 * undrain|add|remove|enable|disable`. Each parses its arguments, hands the
 * change to the loop (lbd_loop_admin()) and waits; the change applies at
 * once and lasts until the next reload, on this node only (the peer is not
 * told: run the same command on both nodes). Private to lbd/.
 */
#ifndef LBD_ADMIN_H
#define LBD_ADMIN_H

struct lbd;
struct lbd_reply;

/* name: the command word; arg: the rest of the line (NULL when empty). */
int lbd_admin_command(struct lbd *d, const char *name, const char *arg, struct lbd_reply *r);

/* 1 if name is one of the runtime API's commands. */
int lbd_admin_is_command(const char *name);

#endif
