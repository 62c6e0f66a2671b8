/*
 * clock: the daemon's time sources, in the units the engine takes.
 * Monotonic time for timers and intervals (never jumps); wall-clock time only
 * where the pair must agree on an order across nodes (created_us).
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);	/* CLOCK_MONOTONIC, nanoseconds */
uint64_t clock_mono_us(void);	/* CLOCK_MONOTONIC, microseconds */
uint64_t clock_mono_ms(void);	/* CLOCK_MONOTONIC, milliseconds */
uint64_t clock_real_us(void);	/* CLOCK_REALTIME, microseconds */

#endif
