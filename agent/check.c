/*
 * Backend health checks (agent_check.h): one thread, one loop.
 *
 * Each round the loop starts the checks that are due, then waits in
 * curl_multi_poll() on libcurl's sockets, the TCP checks' connecting
 * sockets and the stop eventfd together, for at most POLL_MS (exec checks
 * are reaped by waitpid() on every round). Finished checks go through
 * record(), the one place where rise/fall decide a change of state.
 *
 * A target's settings never change after agent_checker_new(); its status is
 * read by other threads under the checker's lock.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_check.h"
#include "clock.h"
#include "sockaddr_util.h"

#define POLL_MS 50		/* exec checks are reaped at least this often */
#define BODY_MAX 65536		/* body kept for the `body` match */

extern char **environ;

enum run_state { IDLE, RUNNING };

struct target {
	struct agent_check_target t;
	char url[512];
	/* the running check */
	enum run_state state;
	uint64_t due_ms, deadline_ms;
	int fd;				/* tcp */
	pid_t pid;			/* exec */
	CURL *easy;			/* http(s) */
	char *body;
	size_t body_len;
	/* hysteresis, under the checker's lock */
	bool up, reported_up;
	uint32_t oks, fails;
	uint64_t checks, failures;
	char last_error[128];
};

struct agent_checker {
	struct target *targets;
	size_t n;
	struct curl_waitfd *wfd;	/* n + 1: the stop fd and every tcp check */
	struct target **tcp_of;		/* the target of each wfd entry */
	agent_check_report_fn report;
	void *arg;
	CURLM *multi;
	int stop_fd;
	atomic_bool stop;
	pthread_t thread;
	bool started;
	bool curl_inited;
	pthread_mutex_t lock;
};

/* "timeout after 2 s" or "... 500 ms". */
static void timeout_text(const struct target *t, char *buf, size_t len)
{
	uint32_t ms = t->t.conf.timeout_ms;

	if (ms % 1000 == 0)
		snprintf(buf, len, "timeout after %u s", ms / 1000);
	else
		snprintf(buf, len, "timeout after %u ms", ms);
}

static uint16_t check_port(const struct target *t)
{
	return t->t.conf.port ? t->t.conf.port : t->t.port;
}

/* ---- hysteresis: the one place a backend changes state ---- */

static void record(struct agent_checker *c, struct target *t, bool ok, const char *why)
{
	bool report = false, up;
	char reason[128];

	pthread_mutex_lock(&c->lock);
	t->checks++;
	if (ok) {
		t->fails = 0;
		if (t->oks < UINT32_MAX)
			t->oks++;
		if (!t->up && t->oks >= t->t.conf.rise)
			t->up = true;
	} else {
		t->failures++;
		t->oks = 0;
		if (t->fails < UINT32_MAX)
			t->fails++;
		snprintf(t->last_error, sizeof(t->last_error), "%s", why);
		if (t->up && t->fails >= t->t.conf.fall)
			t->up = false;
	}
	/* Also retries a report the caller could not take last time. */
	report = t->up != t->reported_up;
	up = t->up;
	snprintf(reason, sizeof(reason), "%s", up ? "" : t->last_error);
	pthread_mutex_unlock(&c->lock);
	if (report && c->report(c->arg, (size_t)(t - c->targets), up, reason) == 0) {
		pthread_mutex_lock(&c->lock);
		t->reported_up = up;
		pthread_mutex_unlock(&c->lock);
	}
}

static void finish(struct agent_checker *c, struct target *t, bool ok, const char *why)
{
	t->state = IDLE;
	record(c, t, ok, why);
}

/* ---- tcp ---- */

static void tcp_start(struct agent_checker *c, struct target *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_build(&ss, t->t.addr.family, t->t.addr.bytes, check_port(t));
	char why[128];

	t->fd = socket(t->t.addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		finish(c, t, false, why);
		return;
	}
	if (connect(t->fd, (struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS)
		return;		/* poll() says when */
	snprintf(why, sizeof(why), "connect: %s",
		 errno == ECONNREFUSED ? "refused" : strerror(errno));
	close(t->fd);
	t->fd = -1;
	finish(c, t, false, why);
}

static void tcp_done(struct agent_checker *c, struct target *t, bool timed_out)
{
	int err = 0;
	socklen_t len = sizeof(err);
	char why[128] = "";

	if (timed_out)
		timeout_text(t, why, sizeof(why));
	else if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (!timed_out && err)
		snprintf(why, sizeof(why), "connect: %s",
			 err == ECONNREFUSED ? "refused" : strerror(err));
	close(t->fd);
	t->fd = -1;
	finish(c, t, !why[0], why);
}

/* ---- http(s) ---- */

static size_t http_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct target *t = arg;
	size_t n = size * nmemb, keep = n;

	if (t->body_len + keep > BODY_MAX)
		keep = BODY_MAX - t->body_len;
	if (keep) {
		char *p = realloc(t->body, t->body_len + keep + 1);

		if (!p)
			return 0;	/* fails the transfer: counted as a failed check */
		t->body = p;
		memcpy(t->body + t->body_len, data, keep);
		t->body_len += keep;
		t->body[t->body_len] = '\0';
	}
	return n;
}

static void http_start(struct agent_checker *c, struct target *t)
{
	t->easy = curl_easy_init();
	if (!t->easy) {
		finish(c, t, false, "curl: cannot create a handle");
		return;
	}
	t->body_len = 0;
	curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)t->t.conf.timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, http_body);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
		finish(c, t, false, "curl: cannot add the transfer");
	}
}

static void http_done(struct agent_checker *c, struct target *t, CURLcode res)
{
	long status = 0, oserr = 0;
	char why[160] = "";

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &oserr);
	if (res == CURLE_OPERATION_TIMEDOUT)
		timeout_text(t, why, sizeof(why));
	else if (res == CURLE_COULDNT_CONNECT)
		snprintf(why, sizeof(why), "connect: %s",
			 oserr == ECONNREFUSED ? "refused" : oserr ? strerror((int)oserr) : "failed");
	else if (res != CURLE_OK)
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
	else if ((uint32_t)status != t->t.conf.expect)
		snprintf(why, sizeof(why), "HTTP %ld", status);
	else if (t->t.conf.body[0] && (!t->body || !strstr(t->body, t->t.conf.body)))
		snprintf(why, sizeof(why), "HTTP %ld: body lacks '%s'", status, t->t.conf.body);
	curl_multi_remove_handle(c->multi, t->easy);
	curl_easy_cleanup(t->easy);
	t->easy = NULL;
	finish(c, t, !why[0], why);
}

/* ---- exec ---- */

static void exec_start(struct agent_checker *c, struct target *t)
{
	char addr[INET6_ADDRSTRLEN] = "", port[8], env_addr[80], env_port[32];
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", t->t.conf.command, NULL };
	char *envp[] = { env_addr, env_port, (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc;

	inet_ntop(t->t.addr.family, t->t.addr.bytes, addr, sizeof(addr));
	snprintf(port, sizeof(port), "%u", check_port(t));
	snprintf(env_addr, sizeof(env_addr), "LB_BACKEND_ADDR=%s", addr);
	snprintf(env_port, sizeof(env_port), "LB_BACKEND_PORT=%s", port);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&attr);
	/* Its own process group, so a timeout kills what the shell started too. */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setpgroup(&attr, 0);
	{
		sigset_t none;

		sigemptyset(&none);
		posix_spawnattr_setsigmask(&attr, &none);
	}
	rc = posix_spawn(&t->pid, argv[0], &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		char why[128];

		t->pid = -1;
		snprintf(why, sizeof(why), "exec: %s", strerror(rc));
		finish(c, t, false, why);
	}
}

/* Reaps an exec check that ended, or kills one past its deadline. */
static void exec_poll(struct agent_checker *c, struct target *t, uint64_t now)
{
	char why[128] = "";
	int status;
	pid_t r = waitpid(t->pid, &status, WNOHANG);

	if (r == 0 && now < t->deadline_ms)
		return;
	if (r == 0) {
		kill(-t->pid, SIGKILL);
		waitpid(t->pid, &status, 0);
		timeout_text(t, why, sizeof(why));
	} else if (r < 0) {
		snprintf(why, sizeof(why), "waitpid: %s", strerror(errno));
	} else if (WIFSIGNALED(status)) {
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
	}
	t->pid = -1;
	finish(c, t, !why[0], why);
}

/* ---- the loop ---- */

static void start_check(struct agent_checker *c, struct target *t, uint64_t now)
{
	t->state = RUNNING;
	t->due_ms = now + t->t.conf.interval_ms;
	t->deadline_ms = now + t->t.conf.timeout_ms;
	switch (t->t.conf.kind) {
	case AGENT_CHECK_TCP: tcp_start(c, t); break;
	case AGENT_CHECK_HTTP:
	case AGENT_CHECK_HTTPS: http_start(c, t); break;
	case AGENT_CHECK_EXEC: exec_start(c, t); break;
	default: t->state = IDLE; break;
	}
}

static void reap_curl(struct agent_checker *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		struct target *t = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t)
			http_done(c, t, m->data.result);
	}
}

static void round_trip(struct agent_checker *c)
{
	struct curl_waitfd *wfd = c->wfd;
	struct target **tcp_of = c->tcp_of;
	unsigned nw = 0;
	int running;
	uint64_t now = clock_mono_ms();

	wfd[nw++] = (struct curl_waitfd){ .fd = c->stop_fd, .events = CURL_WAIT_POLLIN };
	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->targets[i];

		if (t->state == IDLE && now >= t->due_ms)
			start_check(c, t, now);
		if (t->state == RUNNING && t->fd >= 0) {
			tcp_of[nw] = t;
			wfd[nw++] = (struct curl_waitfd){ .fd = t->fd, .events = CURL_WAIT_POLLOUT };
		}
	}
	curl_multi_poll(c->multi, wfd, nw, POLL_MS, NULL);
	curl_multi_perform(c->multi, &running);
	reap_curl(c);
	now = clock_mono_ms();
	for (unsigned w = 1; w < nw; w++)
		if (wfd[w].revents || now >= tcp_of[w]->deadline_ms)
			tcp_done(c, tcp_of[w], !wfd[w].revents);
	for (size_t i = 0; i < c->n; i++)
		if (c->targets[i].state == RUNNING && c->targets[i].pid > 0)
			exec_poll(c, &c->targets[i], now);
}

static void *checker_main(void *arg)
{
	struct agent_checker *c = arg;

	while (!atomic_load(&c->stop))
		round_trip(c);
	return NULL;
}

/* ---- life cycle and status ---- */

static void build_url(struct target *t)
{
	char addr[INET6_ADDRSTRLEN] = "";
	const char *scheme = t->t.conf.kind == AGENT_CHECK_HTTPS ? "https" : "http";
	bool v6 = t->t.addr.family == AF_INET6;

	inet_ntop(t->t.addr.family, t->t.addr.bytes, addr, sizeof(addr));
	snprintf(t->url, sizeof(t->url), "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", addr,
		 v6 ? "]" : "", check_port(t), t->t.conf.path);
}

struct agent_checker *agent_checker_new(const struct agent_check_target *targets, size_t n,
					agent_check_report_fn report, void *arg)
{
	struct agent_checker *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->stop_fd = -1;
	c->n = n;
	c->report = report;
	c->arg = arg;
	/* Once, from the thread that creates the checker, before its thread runs. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->curl_inited = true;
	c->targets = calloc(n + 1, sizeof(*c->targets));
	c->wfd = calloc(n + 1, sizeof(*c->wfd));
	c->tcp_of = calloc(n + 1, sizeof(*c->tcp_of));
	c->multi = curl_multi_init();
	c->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!c->targets || !c->wfd || !c->tcp_of || !c->multi || c->stop_fd < 0) {
		agent_checker_free(c);
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct target *t = &c->targets[i];

		t->t = targets[i];
		t->fd = -1;
		t->pid = -1;
		/* Up until proven down, unless the engine already has it down. */
		t->up = t->reported_up = !targets[i].start_down;
		build_url(t);
	}
	return c;
}

int agent_checker_start(struct agent_checker *c)
{
	int err = pthread_create(&c->thread, NULL, checker_main, c);

	if (err)
		return -err;
	c->started = true;
	return 0;
}

void agent_checker_free(struct agent_checker *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (c->started) {
		atomic_store(&c->stop, true);
		if (write(c->stop_fd, &one, sizeof(one)) < 0)
			curl_multi_wakeup(c->multi);
		pthread_join(c->thread, NULL);
	}
	for (size_t i = 0; c->targets && i < c->n; i++) {
		struct target *t = &c->targets[i];

		if (t->fd >= 0)
			close(t->fd);
		if (t->pid > 0) {
			kill(-t->pid, SIGKILL);
			waitpid(t->pid, NULL, 0);
		}
		if (t->easy) {
			curl_multi_remove_handle(c->multi, t->easy);
			curl_easy_cleanup(t->easy);
		}
		free(t->body);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->curl_inited)
		curl_global_cleanup();
	pthread_mutex_destroy(&c->lock);
	free(c->targets);
	free(c->wfd);
	free(c->tcp_of);
	free(c);
}

ssize_t agent_checker_find(const struct agent_checker *c, const struct lb_addr *vip,
			   uint16_t vport, const struct lb_addr *addr, uint16_t port)
{
	for (size_t i = 0; c && i < c->n; i++) {
		const struct agent_check_target *t = &c->targets[i].t;

		if (t->vport == vport && t->port == port && t->vip.family == vip->family &&
		    t->addr.family == addr->family &&
		    memcmp(t->vip.bytes, vip->bytes, sizeof(vip->bytes)) == 0 &&
		    memcmp(t->addr.bytes, addr->bytes, sizeof(addr->bytes)) == 0)
			return (ssize_t)i;
	}
	return -1;
}

int agent_checker_status(struct agent_checker *c, size_t idx, struct agent_check_status *out)
{
	struct target *t;

	if (idx >= c->n)
		return -ENOENT;
	t = &c->targets[idx];
	pthread_mutex_lock(&c->lock);
	out->up = t->up;
	out->checks = t->checks;
	out->failures = t->failures;
	snprintf(out->last_error, sizeof(out->last_error), "%s", t->last_error);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

const struct agent_check_target *agent_checker_target(const struct agent_checker *c, size_t idx)
{
	return idx < c->n ? &c->targets[idx].t : NULL;
}
