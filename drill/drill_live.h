/*
 * drill_live: the moments `lbdrill live` learns from outside (drill/live.c).
 *
 * A watch is a command (run with /bin/sh -c, in a process group of its own)
 * started with the drill and running until its end; every line it prints
 * is a moment named after the watch, timed when the line arrives. In the lab:
 *
 *   --watch 'vip:ip -n lab-lb2 -o monitor address | grep --line-buffered 198.18.0.100'
 *   --watch 'role:tail -n0 -F lb2.log | grep --line-buffered "role backup -> master"'
 *
 * A line that begins "@SECONDS " (since the epoch, `date +%s.%N`) is timed
 * by that stamp instead: stamped at its source (`deploy/lab watch` does), a
 * moment is not made late by a busy machine's scheduling of the pipeline.
 *
 * Names the drill knows: "kill" (the node died), "vip" (the VIP arrived
 * on the new node) and "role" (its lbd became master); lbd's added delay is
 * role - vip. Any other name is drawn and listed, not interpreted.
 */
#ifndef DRILL_LIVE_H
#define DRILL_LIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "drill.h"

#define DRILL_WATCH_NAME	16
#define DRILL_WATCH_LINE	256

struct drill_watch {
	struct drill_ev ev;		/* first: epoll hands us &ev */
	char name[DRILL_WATCH_NAME];
	const char *cmd;
	pid_t pid;			/* the group's leader; 0: not started */
	char line[DRILL_WATCH_LINE];
	size_t len;
};

struct drill_mark {
	char name[DRILL_WATCH_NAME];
	uint64_t t_ns;			/* CLOCK_MONOTONIC */
	char line[DRILL_WATCH_LINE];
};

struct drill_marks {
	struct drill_mark *m;
	size_t n, cap;
};

/* NAME:COMMAND; NAME is 1..15 of [a-z0-9_]. 0 or -EINVAL. */
int drill_watch_parse(struct drill_watch *w, const char *arg);

/* Starts the command with its stdout on a pipe registered with epfd (the
 * drill_ev's kind is the caller's). 0 or -errno. */
int drill_watch_start(struct drill_watch *w, int epfd, int kind);

/* Reads what the command printed: a mark per complete line. At EOF the
 * pipe is closed (the command may still be reaped by drill_watch_stop). */
void drill_watch_readable(struct drill_watch *w, struct drill_marks *marks, uint64_t now_ns);

/* Ends the command's process group (SIGTERM, then SIGKILL after 2 s) and
 * reaps the leader. */
void drill_watch_stop(struct drill_watch *w);

/* The first mark named name in [from_ns, to_ns); NULL if none. */
const struct drill_mark *drill_marks_first(const struct drill_marks *marks, const char *name,
					   uint64_t from_ns, uint64_t to_ns);

/* "marks":[{"name":..,"t_s":..,"line":..},...] (no braces), t_s from t0_ns. */
void drill_marks_json(const struct drill_marks *marks, FILE *f, uint64_t t0_ns);

void drill_marks_free(struct drill_marks *marks);

#endif
