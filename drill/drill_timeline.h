/*
 * drill_timeline: one stream's progress over time, for the drills' JSON and
 * the pictures drawn from it (drill/plot_timeline.py). `lbdrill live` notes
 * bytes received, `lbdrill replay` packets forwarded; either is a count that
 * only grows.
 *
 * A point is kept at most every resolution, except that both ends of a
 * silence longer than the resolution are always kept: a stall is drawn as
 * the flat segment it was, not smoothed into a slope.
 */
#ifndef DRILL_TIMELINE_H
#define DRILL_TIMELINE_H

#include <stdint.h>
#include <stdio.h>

struct drill_tl_point {
	uint64_t t_ns;		/* the caller's clock */
	uint64_t v;		/* progress by then */
};

struct drill_tl {
	struct drill_tl_point *p;
	uint32_t n, cap;
	uint64_t last_t_ns, last_v;	/* the last note, kept or not */
	int noted;
};

/* Progress reached v at t_ns (t_ns never goes back). -ENOMEM when a point
 * could not be kept (the timeline stays valid, only coarser). */
int drill_tl_note(struct drill_tl *tl, uint64_t t_ns, uint64_t v, uint64_t res_ns);

/* At the end: keeps the last note, and for a stream still open at end_ns a
 * flat segment up to then (a stream that went silent shows as one). */
void drill_tl_finish(struct drill_tl *tl, uint64_t end_ns, int open);

void drill_tl_free(struct drill_tl *tl);

/* Writes "t":[seconds from t0_ns, ...],"v":[...] (no braces). */
void drill_tl_json(const struct drill_tl *tl, FILE *f, uint64_t t0_ns);

/* Writes s as a JSON string, quotes included. */
void drill_json_str(FILE *f, const char *s);

#endif
