/*
 * random_seed: see include/random_seed.h.
 */
#include <errno.h>
#include <sys/random.h>

#include "random_seed.h"

int random_bytes(void *buf, size_t len)
{
	size_t got = 0;

	/* At most a handful of tries: getrandom() only stops short when a
	 * signal interrupts it, and never blocks once the pool is seeded. */
	for (int tries = 0; got < len && tries < 8; tries++) {
		ssize_t n = getrandom((char *)buf + got, len - got, 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	return got == len ? 0 : -EAGAIN;
}
