/*
 * lbdrill: the operator's failover drill tool.
 *
 *   lbdrill serve  --listen ADDR:PORT [--listen ...]
 *   lbdrill stream --target ADDR:PORT --conns N --duration S [...]
 *   lbdrill live   --target VIP:PORT ... --failover SECONDS:COMMAND
 *   lbdrill replay --pcap FILE (--config FILE | --auto-services) [...]
 *   lbdrill audit  FILE (--config FILE | --auto-services) [...]
 *   lbdrill flood  --target VIP:PORT --sources FIRST-LAST --rate N --duration S
 *   lbdrill help [SUBCOMMAND]
 *
 * `serve` runs on the backends; `stream` opens many long-lived connections
 * through the VIP, both ends sending deterministic byte streams and
 * verifying every byte they receive (protocol: drill/drill_proto.h), and
 * reports per connection whether it survived, was reset, corrupted or
 * stalled; `live` does so while failing a running pair over; `replay` fails
 * over offline on a capture (drill/drill_replay.h); `audit` lists what the
 * strict tracker drops of a capture (drill/drill_audit.h).
 *
 * This file is only the program: usage and dispatch on the subcommand (a
 * table, so a later subcommand is one row). Everything else is libdrill.a.
 */
#include <stdio.h>
#include <string.h>

#include "drill.h"
#include "drill_audit.h"
#include "drill_replay.h"
#include "lb_version.h"
#include "log.h"

struct drill_cmd {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct drill_cmd drill_cmds[] = {
	{ "serve", drill_serve_main, "verify and send drill streams (run on the backends)" },
	{ "stream", drill_stream_main, "open N verified streams to a VIP and report on them" },
	{ "live", drill_live_main, "fail a running pair over under verified streams" },
	{ "replay", drill_replay_main, "fail over on a packet capture, offline, and compare" },
	{ "audit", drill_audit_main, "list what the strict tracker drops of a capture, and why" },
	{ "flood", drill_flood_main, "a paced, spoofed SYN flood (the lab's SYN-flood drill)" },
};

#define DRILL_NCMDS (sizeof(drill_cmds) / sizeof(drill_cmds[0]))

/* ------------------------------------------------------------ dispatch */

static void usage(FILE *f)
{
	fprintf(f, "usage: lbdrill SUBCOMMAND [OPTIONS]   (lbdrill SUBCOMMAND --help)\n"
		   "       lbdrill --help | --version\n");
	for (size_t i = 0; i < DRILL_NCMDS; i++)
		fprintf(f, "  %-8s %s\n", drill_cmds[i].name, drill_cmds[i].summary);
}

static const struct drill_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < DRILL_NCMDS; i++)
		if (strcmp(drill_cmds[i].name, name) == 0)
			return &drill_cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct drill_cmd *cmd;

	log_set_ident("lbdrill");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("lbdrill %s\n", LB_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		if (argc > 2 && (cmd = find_cmd(argv[2]))) {
			char *args[] = { argv[2], (char *)"--help", NULL };

			return cmd->main(2, args);
		}
		usage(stdout);
		return 0;
	}
	cmd = find_cmd(argv[1]);
	if (!cmd) {
		fprintf(stderr, "lbdrill: unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return cmd->main(argc - 1, argv + 1);
}
