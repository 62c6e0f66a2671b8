/*
 * lbd_key: reading the sync channel's HMAC key from its file. The link
 * (sync_link.h) is pure and takes the key as bytes; the file, its size and
 * its permissions are the daemon's business. Private to lbd/.
 */
#ifndef LBD_KEY_H
#define LBD_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "sync_link.h"		/* SYNC_KEY_MIN, SYNC_KEY_MAX */

/*
 * Reads an HMAC key file: its bytes are the key (SYNC_KEY_MIN..SYNC_KEY_MAX;
 * a trailing newline is kept as key material, so generate with e.g.
 * `head -c 32 /dev/urandom > key`). Refuses anything but a regular file, and
 * a file that group or others may access. Returns the key length with the
 * key in key, or -1 with a one-line message in err (errlen bytes; err may be
 * NULL).
 */
int lbd_key_load(const char *path, uint8_t key[static SYNC_KEY_MAX], char *err, size_t errlen);

#endif
