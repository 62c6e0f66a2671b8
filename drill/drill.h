/*
 * drill: the live drills' subcommands, `lbdrill serve` (drill/serve.c, on
 * the backends) and `lbdrill stream` / `lbdrill live` (drill/stream.c, the
 * clients), and the little their event loops share. They speak the drill
 * stream protocol (drill/drill_proto.h) and set themselves up with
 * drill/drill_sys.h; lbdrill.c dispatches to them.
 */
#ifndef DRILL_H
#define DRILL_H

#define DRILL_BUF		65536	/* one read or write at most */

/* One thing registered with epoll; embedded first in what owns the fd. */
struct drill_ev {
	int kind;		/* the subcommand's own enum */
	int fd;
};

/* Subcommands: argv[0] is the subcommand's name. Return the exit status. */
int drill_serve_main(int argc, char **argv);
int drill_stream_main(int argc, char **argv);
int drill_live_main(int argc, char **argv);
int drill_flood_main(int argc, char **argv);	/* drill/flood.c */

#endif
