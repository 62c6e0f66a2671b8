/*
 * drill_replay_tl: a replayed failover's timeline (drill/drill_replay_tl.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "drill_replay_tl.h"
#include "drill_timeline.h"

#define US_NS 1000ull
#define RTL_RES_NS (1000 * US_NS)	/* a point per ms at most, and every silence */

/* One connection's silence across the failover: from its last forwarded
 * packet before it to its first after it (or the capture's end). */
struct rtl_gap {
	uint64_t from_us, to_us;
	int before, after;
};

static void rtl_gaps(const struct drill_trace *t, const uint8_t *forwarded, size_t k,
		     uint64_t fail_us, struct rtl_gap *gaps)
{
	uint64_t end_us = t->npkts ? t->pkts[t->npkts - 1].ts_us : 0;

	for (size_t c = 0; c < t->nconns; c++)
		gaps[c] = (struct rtl_gap){ .from_us = fail_us, .to_us = end_us };
	for (size_t i = 0; i < t->npkts; i++) {
		struct rtl_gap *g = &gaps[t->pkts[i].conn];

		if (!forwarded[i])
			continue;
		if (i < k) {
			g->from_us = t->pkts[i].ts_us;
			g->before = 1;
		} else if (!g->after) {
			g->to_us = t->pkts[i].ts_us;
			g->after = 1;
		}
	}
}

/* Alive across the failover: packets before it and after it. */
static int rtl_across(const struct drill_trace *t, size_t c, size_t k)
{
	return t->conns[c].first < k && t->conns[c].last >= k;
}

static void rtl_conn(FILE *f, const struct drill_trace *t, const char *status, size_t c,
		     size_t k, const struct rtl_gap *g, struct drill_tl *tl)
{
	uint64_t ms_ns = rtl_across(t, c, k) && g->to_us > g->from_us
			 ? (g->to_us - g->from_us) * US_NS : 0;

	fprintf(f, "%s{\"i\":%zu,\"kind\":\"conn\",\"port\":%u,\"end\":", c ? "," : "", c,
		t->conns[c].orig.sport);
	drill_json_str(f, status);
	fprintf(f, ",\"stall_ms\":%.3f,\"stall_from_s\":%.6f,\"event_stalls\":"
		   "[{\"from_s\":%.6f,\"ms\":%.3f}],",
		(double)ms_ns / 1e6, (double)g->from_us / 1e6, (double)g->from_us / 1e6,
		(double)ms_ns / 1e6);
	drill_tl_json(tl, f, 0);
	fprintf(f, "}");
}

/* Every connection's progress: packets the pair forwarded, over time. */
static int rtl_progress(const struct drill_trace *t, const uint8_t *forwarded,
			struct drill_tl *tls, uint32_t *counts)
{
	int rc = 0;

	for (size_t i = 0; i < t->npkts; i++) {
		uint32_t c = t->pkts[i].conn;

		if (!forwarded[i])
			continue;
		if (drill_tl_note(&tls[c], t->pkts[i].ts_us * US_NS, ++counts[c], RTL_RES_NS) < 0)
			rc = -ENOMEM;
	}
	for (size_t c = 0; c < t->nconns; c++)
		drill_tl_finish(&tls[c], t->npkts ? t->pkts[t->npkts - 1].ts_us * US_NS : 0,
				!t->conns[c].ended);
	return rc;
}

int drill_replay_tl_json(FILE *f, const struct drill_trace *t, const uint8_t *forwarded,
			 const char *const *status, size_t k, uint64_t fail_us)
{
	size_t n = t->nconns ? t->nconns : 1;
	struct drill_tl *tls = calloc(n, sizeof(*tls));
	struct rtl_gap *gaps = calloc(n, sizeof(*gaps));
	uint32_t *counts = calloc(n, sizeof(*counts));
	double longest = 0;
	int rc = -ENOMEM;

	if (!tls || !gaps || !counts || rtl_progress(t, forwarded, tls, counts) < 0)
		goto out;
	rtl_gaps(t, forwarded, k, fail_us, gaps);
	for (size_t c = 0; c < t->nconns; c++)
		if (rtl_across(t, c, k) && gaps[c].to_us > gaps[c].from_us &&
		    (double)(gaps[c].to_us - gaps[c].from_us) / 1e3 > longest)
			longest = (double)(gaps[c].to_us - gaps[c].from_us) / 1e3;
	fprintf(f, ",\"events\":[{\"at_s\":%.6f,\"end_s\":%.6f,\"longest_stall_ms\":%.3f}],"
		   "\"marks\":[],\"timeline\":{\"resolution_ms\":1,\"streams\":[",
		(double)fail_us / 1e6, (double)fail_us / 1e6, longest);
	for (size_t c = 0; c < t->nconns; c++)
		rtl_conn(f, t, status[c], c, k, &gaps[c], &tls[c]);
	fprintf(f, "]}");
	rc = 0;
out:
	for (size_t c = 0; tls && c < t->nconns; c++)
		drill_tl_free(&tls[c]);
	free(tls);
	free(gaps);
	free(counts);
	return rc;
}
