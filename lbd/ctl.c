/*
 * lbd's control socket: a Unix stream socket speaking one line per
 * connection. The client sends "COMMAND [ARGS]\n", lbd answers with text and
 * closes. An answer whose first line starts with "error:" is a failure.
 * Only root (the socket is 0600) may talk to it. The main thread serves one
 * client at a time; the commands themselves are in cmd.c (and capture.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lbd_capture.h"
#include "lbd_cmd.h"
#include "lbd_ctl.h"
#include "log.h"

int lbd_ctl_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("control socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A socket file left by a killed lbd: nobody answers on it. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_err("control socket %s is in use by another lbd", path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 16) < 0) {
		log_err("control socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void cmd_help(struct lbd *d, FILE *out);

/* Adapters to one signature: (daemon, rest of the line or NULL, output). */
static int do_stats(struct lbd *d, const char *a, FILE *o) { (void)a; lbd_cmd_stats(d, o); return 0; }
static int do_conns(struct lbd *d, const char *a, FILE *o) { (void)a; lbd_cmd_conns(d, o); return 0; }
static int do_backends(struct lbd *d, const char *a, FILE *o) { (void)a; lbd_cmd_backends(d, o); return 0; }
static int do_reload(struct lbd *d, const char *a, FILE *o) { (void)a; return lbd_cmd_reload(d, o); }
static int do_ready(struct lbd *d, const char *a, FILE *o) { (void)a; return lbd_cmd_ready(d, o); }
static int do_sync(struct lbd *d, const char *a, FILE *o) { (void)a; lbd_cmd_sync(d, o); return 0; }
static int do_help(struct lbd *d, const char *a, FILE *o) { (void)a; cmd_help(d, o); return 0; }

static const struct {
	const char *name;
	int (*fn)(struct lbd *d, const char *arg, FILE *out);
	const char *help;
} commands[] = {
	{ "stats", do_stats, "every counter, one 'name value' per line" },
	{ "conns", do_conns, "the connection table with TCP state and windows" },
	{ "backends", do_backends, "backends with weights and live counts" },
	{ "reload", do_reload, "re-read the configuration file" },
	{ "role", lbd_cmd_role, "print the role, or set it: role master|backup|fault" },
	{ "ready", do_ready, "whether this node may become master (resync done)" },
	{ "sync", do_sync, "the sync channel's state and counters" },
	{ "capture", lbd_cmd_capture,
	  "record packets to pcap: capture [status] | capture stop |\n"
	  "           capture start PREFIX [max_packets=N] [max_bytes=N] [snaplen=N]" },
	{ "help", do_help, "this list" },
};

static void cmd_help(struct lbd *d, FILE *out)
{
	(void)d;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "%-10s %s\n", commands[i].name, commands[i].help);
}

/* Reads one line (up to a newline, EOF or the buffer's end). */
static ssize_t read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return (ssize_t)len;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n <= 0)
			return;		/* the client went away or timed out */
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Splits "COMMAND [ARGS]" into the command word and the rest of the line
 * (trimmed; NULL when empty), which each command parses itself.
 */
static void dispatch(struct lbd *d, char *line, FILE *out)
{
	char *cmd = line + strspn(line, " \t"), *arg = cmd + strcspn(cmd, " \t"), *end;

	if (*arg) {
		*arg++ = '\0';
		arg += strspn(arg, " \t");
	}
	for (end = arg + strlen(arg); end > arg && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (!*arg)
		arg = NULL;
	if (!*cmd)
		cmd = NULL;
	for (size_t i = 0; cmd && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0) {
			commands[i].fn(d, arg, out);
			return;
		}
	fprintf(out, "error: unknown command '%s' (try 'help')\n", cmd ? cmd : "");
}

void lbd_ctl_serve(struct lbd *d, int fd)
{
	struct timeval rcv = { .tv_sec = 1 }, snd = { .tv_sec = 5 };
	char line[256], *text = NULL;
	size_t len = 0;
	FILE *out;

	/* A stuck client must not stall the control thread for long. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
	read_line(fd, line, sizeof(line));
	out = open_memstream(&text, &len);
	if (out) {
		dispatch(d, line, out);
		fclose(out);
		write_all(fd, text, len);
	}
	free(text);
	close(fd);
}
