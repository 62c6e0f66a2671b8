/*
 * drill_replay_tl: the timeline of one replayed failover (drill/replay_tl.c),
 * for `lbdrill replay --json` and drill/plot_timeline.py: every
 * connection's packets forwarded by the pair over the capture's time, and
 * its silence across the failover. The replay's own judgement stays in
 * drill/replay.c; this only draws what it found.
 */
#ifndef DRILL_REPLAY_TL_H
#define DRILL_REPLAY_TL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drill_trace.h"

/*
 * Writes ,"events":[...],"marks":[],"timeline":{...} for a failover
 * before packet k at fail_us (in a replay the active dies and the standby is
 * master at the same instant, so there are no other moments to mark): forwarded[i] says whether the pair forwarded
 * packet i, status[c] is connection c's status ("survived", "LOST", ...).
 * Returns 0, or -ENOMEM (nothing written).
 */
int drill_replay_tl_json(FILE *f, const struct drill_trace *t, const uint8_t *forwarded,
			 const char *const *status, size_t k, uint64_t fail_us);

#endif
