/*
 * lbd's control socket: a Unix stream socket speaking one command per
 * connection. The client sends "COMMAND [ARGS]\n"; lbd answers with JSON
 * lines ending in a status line (lbd_reply.h) and closes. The socket is
 * 0600 (root only); with a control_group 0660, and members of that group
 * may run the commands that only read (the peer's credentials decide). The main thread
 * serves one client at a time; the commands themselves are in cmd.c,
 * admin.c and capture.c.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lbd.h"
#include "lbd_admin.h"
#include "lbd_capture.h"
#include "lbd_cmd.h"
#include "lbd_ctl.h"
#include "lbd_reply.h"
#include "log.h"

/* Gives the socket to group (0660); it was created 0600, so never wider than meant. */
static int give_to_group(const char *path, const char *group)
{
	struct group *g = getgrnam(group);

	if (!g) {
		log_err("control_group '%s': no such group", group);
		return -1;
	}
	if (chown(path, (uid_t)-1, g->gr_gid) < 0 || chmod(path, 0660) < 0) {
		log_err("control socket %s: group %s: %s", path, group, strerror(errno));
		return -1;
	}
	return 0;
}

int lbd_ctl_listen(const char *path, const char *group)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, rc;

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
	/* Created 0600 by the umask: no moment with wider permissions. */
	old_mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc < 0 || (group && group[0] && give_to_group(path, group) < 0) || listen(fd, 16) < 0) {
		log_err("control socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int cmd_help(struct lbd *d, const char *arg, struct lbd_reply *r);

/* Adapters to one signature: (daemon, rest of the line or NULL, reply). */
static int do_reload(struct lbd *d, const char *a, struct lbd_reply *r)
{
	if (a)
		return lbd_reply_error(r, "reload takes no arguments, not '%s'", a);
	return lbd_cmd_reload(d, r);
}

/*
 * Commands a member of control_group (not root) may run: those that only
 * read, and role and capture without arguments. The rest change the node.
 */
static bool read_only(const char *cmd, const char *arg)
{
	static const char *const readers[] = { "stats", "conns", "backends", "ready", "sync",
					       "help", NULL };

	for (const char *const *n = readers; *n; n++)
		if (strcmp(cmd, *n) == 0)
			return true;
	return (!strcmp(cmd, "role") && !arg) ||
	       (!strcmp(cmd, "capture") && (!arg || !strcmp(arg, "status")));
}

static const struct {
	const char *name;
	int (*fn)(struct lbd *d, const char *arg, struct lbd_reply *r);
	const char *help;
} commands[] = {
	{ "stats", lbd_cmd_stats, "every counter" },
	{ "conns", lbd_cmd_conns,
	  "the connection table; filters: [service VIP:PORT] [backend ADDR[:PORT]]\n"
	  "           [state STATE] [client ADDR[:PORT]]" },
	{ "backends", lbd_cmd_backends, "backends with weight, state, health and live counts" },
	{ "reload", do_reload, "re-read the configuration file" },
	{ "role", lbd_cmd_role, "print the role, or set it: role master|backup|fault" },
	{ "ready", lbd_cmd_ready, "whether this node may become master (resync done)" },
	{ "sync", lbd_cmd_sync, "the sync channel's state and counters" },
	{ "capture", lbd_cmd_capture,
	  "record packets to pcap: capture [status] | capture stop |\n"
	  "           capture start PREFIX [max_packets=N] [max_bytes=N] [snaplen=N]" },
	{ "weight", NULL, "weight VIP:PORT BACKEND[:PORT] N     set a backend's weight" },
	{ "drain", NULL, "drain VIP:PORT BACKEND[:PORT]        no new connections" },
	{ "undrain", NULL, "undrain VIP:PORT BACKEND[:PORT]" },
	{ "add", NULL, "add VIP:PORT BACKEND[:PORT] [weight=N] [max_conns=N]" },
	{ "remove", NULL, "remove VIP:PORT BACKEND[:PORT]       drain, then free" },
	{ "enable", NULL, "enable VIP:PORT" },
	{ "disable", NULL, "disable VIP:PORT                     refuse new connections" },
	{ "help", cmd_help, "this list" },
};

static int cmd_help(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)d;
	(void)arg;
	if (!f)
		return lbd_reply_error(r, "out of memory");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "%-10s %s\n", commands[i].name, commands[i].help);
	fclose(f);
	if (len)
		text[len - 1] = '\0';	/* lbctl adds the last newline */
	lbd_reply_str(r, "help", text);
	free(text);
	return 0;
}

/*
 * Reads one line (up to a newline or EOF). Returns its length, or -1 when
 * it does not fit in size - 1 bytes.
 */
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
	if (!memchr(buf, '\n', len) && len + 1 >= size)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return (ssize_t)strlen(buf);
}

/*
 * Splits "COMMAND [ARGS]" into the command word and the rest of the line
 * (trimmed; NULL when empty), which each command parses itself.
 */
static void dispatch(struct lbd *d, char *line, bool privileged, struct lbd_reply *r)
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
	if (!*cmd) {
		lbd_reply_error(r, "empty command (try 'help')");
		return;
	}
	if (!privileged && !read_only(cmd, arg)) {
		lbd_reply_error(r, "'%.64s' changes the node: root only (control_group may read)",
				cmd);
		return;
	}
	if (lbd_admin_is_command(cmd)) {
		lbd_admin_command(d, cmd, arg, r);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn && strcmp(cmd, commands[i].name) == 0) {
			commands[i].fn(d, arg, r);
			return;
		}
	lbd_reply_error(r, "unknown command '%.64s' (try 'help')", cmd);
}

void lbd_ctl_serve(struct lbd *d, int fd)
{
	struct timeval rcv = { .tv_sec = 1 }, snd = { .tv_sec = LBD_REPLY_SEND_TIMEOUT_S };
	char line[LBD_REPLY_LINE_MAX];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	bool privileged;
	struct lbd_reply *r;

	/* A stuck client must not stall the control thread for long. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
	/* Root (or whoever started lbd) may do anything; the group only read.
	 * Not lbd's uid now: that is daemon.user, shared with other services
	 * when it is nobody. */
	privileged = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
		     (cred.uid == 0 || cred.uid == d->owner_uid);
	r = lbd_reply_new(fd);
	if (!r) {
		close(fd);
		return;
	}
	if (read_line(fd, line, sizeof(line)) < 0)
		lbd_reply_error(r, "command line longer than %d bytes", LBD_REPLY_LINE_MAX - 1);
	else
		dispatch(d, line, privileged, r);
	lbd_reply_finish(r);
	close(fd);
}
