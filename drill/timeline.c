/*
 * drill_timeline: progress samples for the drills' timelines
 * (drill/drill_timeline.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "drill_timeline.h"

static int tl_push(struct drill_tl *tl, uint64_t t_ns, uint64_t v)
{
	if (tl->n == tl->cap) {
		uint32_t cap = tl->cap ? tl->cap * 2 : 64;
		struct drill_tl_point *p;

		if (cap < tl->cap)
			return -ENOMEM;
		p = realloc(tl->p, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		tl->p = p;
		tl->cap = cap;
	}
	tl->p[tl->n++] = (struct drill_tl_point){ .t_ns = t_ns, .v = v };
	return 0;
}

static int tl_last_is(const struct drill_tl *tl, uint64_t t_ns)
{
	return tl->n && tl->p[tl->n - 1].t_ns == t_ns;
}

int drill_tl_note(struct drill_tl *tl, uint64_t t_ns, uint64_t v, uint64_t res_ns)
{
	int rc = 0;

	/* A silence: its start is the last note, which must be drawn. */
	if (tl->noted && t_ns - tl->last_t_ns > res_ns && !tl_last_is(tl, tl->last_t_ns))
		rc = tl_push(tl, tl->last_t_ns, tl->last_v);
	if (rc == 0 && (tl->n == 0 || t_ns - tl->p[tl->n - 1].t_ns >= res_ns ||
			t_ns - tl->last_t_ns > res_ns))
		rc = tl_push(tl, t_ns, v);
	tl->last_t_ns = t_ns;
	tl->last_v = v;
	tl->noted = 1;
	return rc;
}

void drill_tl_finish(struct drill_tl *tl, uint64_t end_ns, int open)
{
	if (!tl->noted)
		return;
	if (!tl_last_is(tl, tl->last_t_ns))
		tl_push(tl, tl->last_t_ns, tl->last_v);
	if (open && end_ns > tl->last_t_ns)
		tl_push(tl, end_ns, tl->last_v);
}

void drill_tl_free(struct drill_tl *tl)
{
	free(tl->p);
	*tl = (struct drill_tl){ 0 };
}

void drill_tl_json(const struct drill_tl *tl, FILE *f, uint64_t t0_ns)
{
	fprintf(f, "\"t\":[");
	for (uint32_t i = 0; i < tl->n; i++)
		fprintf(f, "%s%.4f", i ? "," : "",
			tl->p[i].t_ns >= t0_ns ? (double)(tl->p[i].t_ns - t0_ns) / 1e9
					       : -(double)(t0_ns - tl->p[i].t_ns) / 1e9);
	fprintf(f, "],\"v\":[");
	for (uint32_t i = 0; i < tl->n; i++)
		fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)tl->p[i].v);
	fprintf(f, "]");
}

void drill_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}
