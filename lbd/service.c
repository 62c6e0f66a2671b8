/*
 * lbd as a system service (lbd_service.h): sd_notify and the pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "errbuf.h"
#include "lbd_service.h"
#include "log.h"

/* sd_notify answers 0 when NOTIFY_SOCKET is unset: not under systemd. */
static void notify(const char *what)
{
	int rc = sd_notify(0, what);

	if (rc < 0)
		log_warn("sd_notify: %s", strerror(-rc));
}

void lbd_service_ready(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
	notify(buf);
}

void lbd_service_status(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "STATUS=%s", status);
	notify(buf);
}

void lbd_service_stopping(void)
{
	notify("STOPPING=1");
}

int lbd_service_write_pidfile(const char *path, char *err, size_t errlen)
{
	char tmp[4096], line[32];
	int fd, len, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errbuf_printf(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		errbuf_printf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	ok = write(fd, line, (size_t)len) == len;
	if (close(fd) < 0)
		ok = 0;
	if (!ok || rename(tmp, path) < 0) {
		errbuf_printf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void lbd_service_remove_pidfile(const char *path)
{
	char buf[32] = "";
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	/* A newer lbd may have replaced it; its file is not ours to remove. */
	if (fgets(buf, sizeof(buf), f) && strtol(buf, NULL, 10) == (long)getpid())
		unlink(path);
	fclose(f);
}
