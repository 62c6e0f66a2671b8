/*
 * clock: see include/clock.h.
 */
#include <time.h>

#include "clock.h"

static uint64_t us_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_us(void)
{
	return us_of(CLOCK_MONOTONIC);
}

uint64_t clock_mono_ms(void)
{
	return us_of(CLOCK_MONOTONIC) / 1000u;
}

uint64_t clock_real_us(void)
{
	return us_of(CLOCK_REALTIME);
}
