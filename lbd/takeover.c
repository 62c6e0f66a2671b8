/*
 * Takeover counters and the first-forward probe (lbd_takeover.h).
 */
#include <netinet/in.h>

#include "clock.h"
#include "lbd_takeover.h"

#define TCP_FLAG_SYN 0x02
#define VIP_RECENT_NS (10ull * 1000000000u)	/* a VIP arrival this close explains a promotion */

static const char *const names[LBD_TRIGGER_COUNT] = { "notify", "vip_arrival", "peer_silent" };

const char *lbd_trigger_name(enum lbd_trigger t)
{
	return (unsigned)t < LBD_TRIGGER_COUNT ? names[t] : "?";
}

void lbd_takeover_vip(struct lbd_takeover *t, uint64_t now_ns, int deferred)
{
	atomic_store(&t->vip_ns, now_ns);
	atomic_store(&t->seen_ns, 0);
	atomic_store(&t->seen_armed, 1);
	atomic_fetch_add(&t->vip_arrivals, 1);
	if (deferred)
		atomic_fetch_add(&t->deferred, 1);
}

void lbd_takeover_promoted(struct lbd_takeover *t, enum lbd_trigger trig, uint64_t now_ns)
{
	atomic_fetch_add(&t->by_trigger[trig], 1);
	atomic_store(&t->master_ns, now_ns);
	atomic_store(&t->forward_ns, 0);
	atomic_store(&t->armed, 1);
}

/* 1 when ip holds a TCP segment with SYN clear; 0 for a SYN or anything we
 * cannot read without walking extension headers. */
static int tcp_not_syn(const uint8_t *ip, uint32_t len)
{
	uint32_t off;

	if (len < 1)
		return 0;
	if ((ip[0] >> 4) == 4) {
		if (len < 20 || ip[9] != IPPROTO_TCP)
			return 0;
		off = (uint32_t)(ip[0] & 0x0f) * 4;
	} else if ((ip[0] >> 4) == 6) {
		if (len < 40 || ip[6] != IPPROTO_TCP)
			return 0;
		off = 40;
	} else {
		return 0;
	}
	return len >= off + 14 && !(ip[off + 13] & TCP_FLAG_SYN);
}

void lbd_takeover_forwarded(struct lbd_takeover *t, const uint8_t *ip, uint32_t len)
{
	uint_fast64_t one = 1;

	if (!atomic_load_explicit(&t->armed, memory_order_relaxed) || !tcp_not_syn(ip, len))
		return;
	if (atomic_compare_exchange_strong(&t->armed, &one, 0))
		atomic_store(&t->forward_ns, clock_mono_ns());
}

void lbd_takeover_seen(struct lbd_takeover *t)
{
	uint_fast64_t one = 1;

	if (atomic_load_explicit(&t->seen_armed, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&t->seen_armed, &one, 0))
		atomic_store(&t->seen_ns, clock_mono_ns());
}

static uint64_t us_between(uint64_t from_ns, uint64_t to_ns)
{
	return from_ns && to_ns >= from_ns ? (to_ns - from_ns) / 1000 : 0;
}

void lbd_takeover_print(struct lbd_takeover *t, FILE *out)
{
	uint64_t vip = atomic_load(&t->vip_ns), master = atomic_load(&t->master_ns);
	uint64_t fwd = atomic_load(&t->forward_ns), seen = atomic_load(&t->seen_ns);

	for (int i = 0; i < LBD_TRIGGER_COUNT; i++)
		fprintf(out, "takeovers_%s %llu\n", names[i],
			(unsigned long long)atomic_load(&t->by_trigger[i]));
	fprintf(out, "takeover_vip_arrivals %llu\ntakeover_deferred %llu\n",
		(unsigned long long)atomic_load(&t->vip_arrivals),
		(unsigned long long)atomic_load(&t->deferred));
	/* The last takeover's figures; a VIP arrival counts only if it came
	 * shortly before (not one of a takeover long ago). */
	if (!master || vip > master || master - vip > VIP_RECENT_NS)
		vip = seen = 0;
	fprintf(out, "takeover_vip_to_master_us %llu\ntakeover_vip_to_forward_us %llu\n"
		"takeover_master_to_forward_us %llu\ntakeover_lbd_delay_us %llu\n",
		(unsigned long long)us_between(vip, master),
		(unsigned long long)(vip && fwd ? us_between(vip, fwd) : 0),
		(unsigned long long)us_between(master, fwd),
		/* From the first client packet after the VIP came (it may have
		 * waited for the role) to the first forwarded one. */
		(unsigned long long)(seen && fwd ? us_between(seen, fwd) : 0));
}
