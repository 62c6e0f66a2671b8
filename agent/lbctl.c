/*
 * lbctl: the operator's client for lbd's control socket.
 *
 *   lbctl [-s SOCKET] COMMAND [ARGS...]
 *
 * Sends the command line, prints the answer. Exits 1 when lbd answers with
 * an error, 2 when it cannot be reached. The socket defaults to
 * $LBCTL_SOCKET, then /run/lbd.sock.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lb_version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: lbctl [-s SOCKET] COMMAND [ARGS...]\n"
		   "commands: stats, conns, backends, reload, role [master|backup|fault],\n"
		   "          ready, sync, help,\n"
		   "          capture [status]      whether a capture runs, its files and counts\n"
		   "          capture start PREFIX [max_packets=N] [max_bytes=N] [snaplen=N]\n"
		   "                                record PREFIX.in.pcap (packets as received)\n"
		   "                                and PREFIX.out.pcap (accepted, after NAT);\n"
		   "                                PREFIX is absolute, its directory must exist;\n"
		   "                                defaults 1000000 packets, 256 MiB per file,\n"
		   "                                snaplen 65535\n"
		   "          capture stop\n");
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 30 };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "lbctl: socket path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "lbctl: cannot reach lbd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_command(int fd, int argc, char **argv)
{
	char line[256];
	size_t len = 0;

	for (int i = 0; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof(line) - len - 1) {
			fprintf(stderr, "lbctl: command too long\n");
			return -1;
		}
		len += (size_t)n;
	}
	line[len++] = '\n';
	if (write(fd, line, len) != (ssize_t)len)
		return -1;
	shutdown(fd, SHUT_WR);
	return 0;
}

/* Copies the answer to stdout; returns 1 if it is an error, 0 if not, -1 on I/O failure. */
static int relay_answer(int fd)
{
	char buf[65536];
	int first = 1, error = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (first)
			error = n >= 6 && strncmp(buf, "error:", 6) == 0;
		first = 0;
		if (fwrite(buf, 1, (size_t)n, error ? stderr : stdout) != (size_t)n)
			return -1;
	}
	if (n < 0) {
		fprintf(stderr, "lbctl: reading the answer: %s\n", strerror(errno));
		return -1;
	}
	return error;
}

int main(int argc, char **argv)
{
	const char *path = getenv("LBCTL_SOCKET");
	int o, fd, rc;

	if (!path)
		path = "/run/lbd.sock";
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("lbctl %s\n", LB_VERSION);
		return 0;
	}
	while ((o = getopt(argc, argv, "+s:h")) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	fd = connect_to(path);
	if (fd < 0)
		return 2;
	if (send_command(fd, argc - optind, argv + optind) < 0) {
		close(fd);
		return 2;
	}
	rc = relay_answer(fd);
	close(fd);
	return rc < 0 ? 2 : rc;
}
