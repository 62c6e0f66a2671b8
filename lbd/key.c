/*
 * lbd's sync key file (lbd_key.h): open, check what kind of file it is and
 * who may read it, read at most one byte more than a key may have, and wipe
 * the buffer on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "lbd_key.h"

/* Reads at most cap bytes; returns how many, or -1 with errno. */
static ssize_t key_read(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < cap) {
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int lbd_key_load(const char *path, uint8_t key[static SYNC_KEY_MAX], char *err, size_t errlen)
{
	uint8_t buf[SYNC_KEY_MAX + 1];	/* one more, to tell "too long" */
	struct stat st;
	ssize_t n = -1;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		errbuf_printf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		errbuf_printf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_printf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	/* Whoever can read the key can forge state; whoever can write it
	 * can cut the pair apart. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		errbuf_printf(err, errlen, "%s: mode %04o gives group or others access (chmod 600)",
			path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = key_read(fd, buf, sizeof(buf));
	if (n < 0)
		errbuf_printf(err, errlen, "%s: %s", path, strerror(errno));
	else if (n < SYNC_KEY_MIN)
		errbuf_printf(err, errlen, "%s: key too short (%zd bytes, at least %d)", path, n,
			SYNC_KEY_MIN);
	else if (n > SYNC_KEY_MAX)
		errbuf_printf(err, errlen, "%s: key too long (more than %d bytes)", path, SYNC_KEY_MAX);
	else
		memcpy(key, buf, (size_t)n);
	if (n < SYNC_KEY_MIN || n > SYNC_KEY_MAX)
		n = -1;
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return n < 0 ? -1 : (int)n;
}
