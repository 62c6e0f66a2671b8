/*
 * lbd_epoch: the sync epoch of this start, from a counter kept in a state
 * file. The link refuses every datagram of an epoch lower than the newest it
 * has seen of its peer (that is how replays of a previous life are told
 * apart), so a restarted lbd must come back with a higher epoch whatever the
 * clocks did meanwhile: a wall-clock epoch stepped back an hour would lock a
 * restarted node out of its pair. Private to lbd/.
 */
#ifndef LBD_EPOCH_H
#define LBD_EPOCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads the counter in path (one decimal number and a newline; a missing
 * file counts as 0), adds one, and writes it back atomically (a temporary
 * file in the same directory, fsync, rename, fsync of the directory; mode
 * 0600) before returning it in *epoch: a crash after this returns can only
 * skip a value, never reuse one. Returns 0, or -1 with a one-line message in
 * err: a file that is not a number, a counter at SYNC_EPOCH_MAX, or a
 * directory we cannot write.
 */
int lbd_epoch_next(const char *path, uint64_t *epoch, char *err, size_t errlen);

#endif
