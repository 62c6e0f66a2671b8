/*
 * lbd_ctl: lbd's control socket (ctl.c), a Unix stream socket speaking one
 * line per connection: the client sends "COMMAND [ARGS]\n", lbd answers
 * with text (the commands are in lbd_cmd.h) and closes. Served by the main
 * thread. Private to lbd/.
 */
#ifndef LBD_CTL_H
#define LBD_CTL_H

struct lbd;

/*
 * Creates the listening socket at path (replacing a stale one), mode 0600,
 * or 0660 owned by group when group is not NULL or "". Returns fd or -1
 * (logged).
 */
int lbd_ctl_listen(const char *path, const char *group);

/* Serves one client connection on fd: reads one command, answers, closes fd. */
void lbd_ctl_serve(struct lbd *d, int fd);

#endif
