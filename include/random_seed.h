/*
 * random_seed: keys for hash tables from the kernel's random pool, with a
 * bounded wait: the pure libraries (the engine) take their seeds from the
 * caller and never read randomness themselves.
 */
#ifndef RANDOM_SEED_H
#define RANDOM_SEED_H

#include <stddef.h>
#include <stdint.h>

/*
 * Fills buf with len random bytes from getrandom(). Retries an interrupted
 * call a few times; returns 0, or a negative errno when the pool could not
 * give them (the caller decides whether a weaker key will do).
 */
int random_bytes(void *buf, size_t len);

#endif
