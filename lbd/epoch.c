/*
 * lbd's epoch counter (lbd_epoch.h): read, check, add one, and replace the
 * file atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "lbd_epoch.h"
#include "num.h"
#include "sync_link.h"		/* SYNC_EPOCH_MAX */

#define EPOCH_FILE_MAX 32	/* 20 digits and a newline, with room */

/* Reads the counter; a missing file is 0. Returns 0 or -1 with err. */
static int epoch_read(const char *path, uint64_t *value, char *err, size_t errlen)
{
	char buf[EPOCH_FILE_MAX + 1];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*value = 0;
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		goto fail;
	n = read(fd, buf, EPOCH_FILE_MAX);
	if (n < 0) {
		close(fd);
		goto fail;
	}
	close(fd);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	if (num_parse_u64(buf, 0, SYNC_EPOCH_MAX, value) < 0) {
		errbuf_printf(err, errlen, "%s: not an epoch counter (a number up to %llu); "
			      "refusing to guess one", path, (unsigned long long)SYNC_EPOCH_MAX);
		return -1;
	}
	return 0;
fail:
	errbuf_printf(err, errlen, "%s: %s", path, strerror(errno));
	return -1;
}

/* fsync of the directory that holds path, so the rename is durable. */
static int sync_dir(const char *path)
{
	char copy[4096];
	int fd, rc;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int epoch_write(const char *path, uint64_t value, char *err, size_t errlen)
{
	char tmp[4096], line[EPOCH_FILE_MAX];
	int fd, len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)value);

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errbuf_printf(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		errbuf_printf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	errno = 0;
	if (write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
		errbuf_printf(err, errlen, "%s: %s", tmp, strerror(errno ? errno : EIO));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		errbuf_printf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (sync_dir(path) < 0) {
		errbuf_printf(err, errlen, "%s: fsync of its directory: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int lbd_epoch_next(const char *path, uint64_t *epoch, char *err, size_t errlen)
{
	uint64_t v;

	if (epoch_read(path, &v, err, errlen) < 0)
		return -1;
	if (v >= SYNC_EPOCH_MAX) {
		errbuf_printf(err, errlen, "%s: the epoch counter is used up", path);
		return -1;
	}
	if (epoch_write(path, v + 1, err, errlen) < 0)
		return -1;
	*epoch = v + 1;
	return 0;
}
