/*
 * drill_live: watches and marks for `lbdrill live` (drill/drill_live.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drill_live.h"
#include "drill_timeline.h"

#define WATCH_STOP_MS	2000

int drill_watch_parse(struct drill_watch *w, const char *arg)
{
	const char *colon = strchr(arg, ':');
	size_t len = colon ? (size_t)(colon - arg) : 0;

	if (len == 0 || len >= DRILL_WATCH_NAME || !colon[1])
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_", arg[i]))
			return -EINVAL;
	memset(w, 0, sizeof(*w));
	memcpy(w->name, arg, len);
	w->cmd = colon + 1;
	w->ev.fd = -1;
	return 0;
}

int drill_watch_start(struct drill_watch *w, int epfd, int kind)
{
	char *argv[] = { "/bin/sh", "-c", (char *)w->cmd, NULL };
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = &w->ev };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	extern char **environ;
	int p[2], rc;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	posix_spawnattr_init(&attr);
	/* A group of its own: a pipeline's every process ends with it. */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	rc = posix_spawn(&w->pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		w->pid = 0;
		return -rc;
	}
	w->ev.kind = kind;
	w->ev.fd = p[0];
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &e) < 0)
		return -errno;
	return 0;
}

/*
 * A line "@SECONDS rest" carries its own moment, SECONDS since the epoch
 * (CLOCK_REALTIME, as `date +%s.%N` prints): stamped where it happened (a
 * log line, `ip -ts monitor`), it does not wait for the watch's pipeline
 * or our loop. Returns it on our clock, or now_ns for any other line.
 */
static uint64_t line_time(const char *line, uint64_t now_ns)
{
	struct timespec rt, mono;
	char *end;
	double secs;
	int64_t ns;

	if (line[0] != '@')
		return now_ns;
	secs = strtod(line + 1, &end);
	if (end == line + 1 || (*end != ' ' && *end != '\0') || !(secs > 0 && secs < 1e11))
		return now_ns;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	/* its age by the wall clock, taken from our clock's now */
	ns = ((int64_t)rt.tv_sec - (int64_t)secs) * 1000000000 + rt.tv_nsec -
	     (int64_t)((secs - (double)(int64_t)secs) * 1e9);
	if (ns < 0 || (uint64_t)ns > (uint64_t)mono.tv_sec * 1000000000 + (uint64_t)mono.tv_nsec)
		return now_ns;	/* from the future, or before boot: not a stamp */
	return (uint64_t)mono.tv_sec * 1000000000 + (uint64_t)mono.tv_nsec - (uint64_t)ns;
}

static void marks_add(struct drill_marks *marks, const struct drill_watch *w, uint64_t now_ns)
{
	struct drill_mark *m;

	if (marks->n == marks->cap) {
		size_t cap = marks->cap ? marks->cap * 2 : 16;

		m = realloc(marks->m, cap * sizeof(*m));
		if (!m)
			return;		/* a mark fewer: the drill goes on */
		marks->m = m;
		marks->cap = cap;
	}
	m = &marks->m[marks->n++];
	memset(m, 0, sizeof(*m));
	memcpy(m->name, w->name, sizeof(m->name));
	memcpy(m->line, w->line, w->len < sizeof(m->line) ? w->len : sizeof(m->line) - 1);
	m->t_ns = line_time(m->line, now_ns);
}

/* Splits what arrived into lines; an overlong line is cut, not split. */
static void watch_take(struct drill_watch *w, struct drill_marks *marks, const char *buf,
		       size_t n, uint64_t now_ns)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			w->line[w->len < sizeof(w->line) ? w->len : sizeof(w->line) - 1] = '\0';
			marks_add(marks, w, now_ns);
			w->len = 0;
		} else if (w->len < sizeof(w->line) - 1) {
			w->line[w->len++] = buf[i];
		}
	}
}

void drill_watch_readable(struct drill_watch *w, struct drill_marks *marks, uint64_t now_ns)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(w->ev.fd, buf, sizeof(buf));

		if (n > 0) {
			watch_take(w, marks, buf, (size_t)n, now_ns);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close(w->ev.fd);	/* EOF or error: closing also leaves epoll */
		w->ev.fd = -1;
		return;
	}
}

static int watch_reaped(struct drill_watch *w)
{
	int st;
	pid_t r = waitpid(w->pid, &st, WNOHANG);

	return r == w->pid || (r < 0 && errno == ECHILD);
}

void drill_watch_stop(struct drill_watch *w)
{
	struct timespec nap = { .tv_nsec = 10 * 1000000 };

	if (w->ev.fd >= 0)
		close(w->ev.fd);
	w->ev.fd = -1;
	if (w->pid <= 0)
		return;
	kill(-w->pid, SIGTERM);
	for (int i = 0; i < WATCH_STOP_MS / 10; i++) {
		if (watch_reaped(w)) {
			kill(-w->pid, SIGKILL);	/* what is left of its pipeline */
			w->pid = 0;
			return;
		}
		nanosleep(&nap, NULL);
	}
	kill(-w->pid, SIGKILL);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
}

const struct drill_mark *drill_marks_first(const struct drill_marks *marks, const char *name,
					   uint64_t from_ns, uint64_t to_ns)
{
	for (size_t i = 0; i < marks->n; i++) {
		const struct drill_mark *m = &marks->m[i];

		if (m->t_ns >= from_ns && m->t_ns < to_ns && strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

void drill_marks_json(const struct drill_marks *marks, FILE *f, uint64_t t0_ns)
{
	fprintf(f, "\"marks\":[");
	for (size_t i = 0; i < marks->n; i++) {
		const struct drill_mark *m = &marks->m[i];

		fprintf(f, "%s{\"name\":", i ? "," : "");
		drill_json_str(f, m->name);
		/* signed: a stamped moment may precede the drill's start */
		fprintf(f, ",\"t_s\":%.4f,\"line\":", ((double)m->t_ns - (double)t0_ns) / 1e9);
		drill_json_str(f, m->line);
		fprintf(f, "}");
	}
	fprintf(f, "]");
}

void drill_marks_free(struct drill_marks *marks)
{
	free(marks->m);
	*marks = (struct drill_marks){ 0 };
}
