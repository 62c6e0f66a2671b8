/*
 * num: the one strict parser of decimal numbers from outside (command lines,
 * control commands, capture files' options). Strict: digits only, no sign, no
 * blanks, no empty string, no overflow.
 */
#ifndef NUM_H
#define NUM_H

#include <stdint.h>

/*
 * Parses s as a decimal in [min, max] into *out (untouched on error).
 * Returns 0, or -EINVAL (not a plain decimal, NULL) or -ERANGE (overflow, or
 * outside [min, max]).
 */
int num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
