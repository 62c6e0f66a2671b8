/*
 * lbd: the load balancer daemon.
 *
 *   lbd -c FILE [-d]     run in the foreground (systemd, the lab)
 *   lbd -c FILE --check  validate the configuration, check the host, exit
 *                        (0 fine, 1 the host would stop lbd, 2 bad file)
 *   lbd --version
 * --pidfile FILE writes our pid before lbd gives up root (its directory is
 * root's); under systemd (Type=notify) READY=1 marks readiness (lbd_service.h).
 *
 * Start-up order matters: the configuration is checked before anything is
 * touched, the queues are bound before the rules that feed them exist, and
 * on exit (SIGTERM/SIGINT) the rules go before the queues. SIGHUP reloads;
 * SIGUSR1 makes the node master, SIGUSR2 backup (the same as `lbctl role`).
 *
 * Threads: workers (lbd_queue.h) only move packets. The loop (lbd_loop.h)
 * is the engine's one control thread: it ticks the engine, runs the sync
 * node when there is a sync section, and applies the reloads and role
 * changes the main thread hands it. The main thread owns the configuration,
 * the control socket, the signals and the iptables rules; it makes engine
 * control calls itself only before the loop starts and after it stopped.
 *
 * Calls between lbd's files go one way, down this list: main, ctl, cmd,
 * loop, sync, key, queue, capture, rules, service, check, fastpath. Nothing
 * calls back up; in particular nothing calls into this file.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "clock.h"
#include "lbd.h"
#include "lbd_alive.h"
#include "lbd_capture.h"
#include "lbd_check.h"
#include "lbd_cmd.h"
#include "lbd_ctl.h"
#include "lbd_fastpath.h"
#include "lbd_health.h"
#include "lbd_kick.h"
#include "lbd_metrics.h"
#include "lbd_loop.h"
#include "lbd_privs.h"
#include "lbd_queue.h"
#include "lbd_rules.h"
#include "lbd_service.h"
#include "lbd_sync.h"
#include "lbd_vipwatch.h"
#include "lb_version.h"
#include "log.h"
#include "random_seed.h"

#define RULES_CHECK_MS 200	/* how often freed backends are looked for */


static void usage(FILE *f)
{
	fprintf(f, "usage: lbd -c FILE [-d] [--check] [--pidfile FILE]\n"
		   "  -c, --config FILE  configuration (libconfig syntax)\n"
		   "  -d, --debug        debug logging\n"
		   "      --check        validate the configuration and exit\n"
		   "      --pidfile FILE write our pid there once ready\n"
		   "      --version      print the version and exit\n");
}

/* Host checks at start go to the log; lbd starts anyway and the failing
 * step (key, sync socket, tables) stops it with its own message. */
static void log_finding(void *arg, enum lbd_check_level level, const char *msg)
{
	(void)arg;
	if (level == LBD_CHECK_ERROR)
		log_err("check: %s", msg);
	else
		log_warn("check: %s", msg);
}

/* --check prints each finding under the file's verdict. */
static void print_finding(void *arg, enum lbd_check_level level, const char *msg)
{
	printf("%s: %s: %s\n", (const char *)arg, level == LBD_CHECK_ERROR ? "error" : "warning",
	       msg);
}

/* One queue per worker, and with syn_queue one more, the last, for SYNs. */
static int open_queues(struct lbd *d)
{
	unsigned n = d->conf.daemon.workers + !!d->conf.daemon.syn_queue;

	for (unsigned i = 0; i < n; i++) {
		d->queues[i] = lbd_queue_open(d->conf.daemon.queue + i, d->conf.daemon.queue_maxlen,
					      d->conf.daemon.fail_open, d->engine, d->capture);
		if (!d->queues[i])
			return -1;
		d->nqueues = i + 1;
	}
	return 0;
}

/*
 * Before the first thread starts (capabilities are per thread; the threads
 * started later inherit the reduced set): from here on lbd runs as
 * daemon.user with CAP_NET_ADMIN alone (lbd_privs.h).
 */
static int drop_privileges(struct lbd *d)
{
	char err[256];

	if (lbd_privs_drop(d->conf.daemon.user, err, sizeof(err)) < 0) {
		log_err("privileges: %s", err);
		return -1;
	}
	log_info("running as uid %u with CAP_NET_ADMIN only", (unsigned)getuid());
	return 0;
}

/*
 * The pid file goes out before privileges are dropped (its directory, e.g.
 * /run/lbd, is root's); under systemd (Type=notify) READY=1 still marks
 * readiness. At exit lbd removes it if daemon.user may (systemd removes its
 * RuntimeDirectory anyway).
 */
static int write_pidfile(struct lbd *d)
{
	char msg[256];

	struct passwd *pw;

	if (!d->pidfile)
		return 0;
	if (lbd_service_write_pidfile(d->pidfile, msg, sizeof(msg)) < 0) {
		log_err("pid file %s", msg);
		return -1;
	}
	/* Ours after the switch, so that lbd may remove it where the
	 * directory lets its owner do so (a sticky one). */
	if (geteuid() == 0 && (pw = getpwnam(d->conf.daemon.user)) &&
	    chown(d->pidfile, pw->pw_uid, pw->pw_gid) < 0)
		log_debug("pid file %s: chown: %s", d->pidfile, strerror(errno));
	return 0;
}

/*
 * The link says lbd runs, and vanishes with it (lbd_alive.h). Opened as
 * root: /dev/net/tun is often root's alone. A configured link lbd cannot
 * hold is fatal: keepalived would track nothing, or another lbd's.
 */
static int open_alive_link(struct lbd *d)
{
	char err[256];

	if (!d->conf.daemon.alive_link[0])
		return 0;
	d->alive_fd = lbd_alive_open(d->conf.daemon.alive_link, err, sizeof(err));
	if (d->alive_fd < 0) {
		log_err("alive_link: %s", err);
		return -1;
	}
	log_info("alive_link %s is up; it goes when lbd does", d->conf.daemon.alive_link);
	return 0;
}

static int start(struct lbd *d)
{
	uint64_t now = clock_mono_ms();
	int rc = random_bytes(&d->conf.engine.seed, sizeof(d->conf.engine.seed)), fatal;

	d->owner_uid = (unsigned)geteuid();
	if (lbd_rules_find_tools(&d->tools) < 0)
		return -1;
	/* A guessable hash key lets an outsider aim SYNs at one bucket. */
	if (rc < 0) {
		log_err("cannot read a random hash key: %s", strerror(-rc));
		return -1;
	}
	d->engine = lb_engine_new(&d->conf.engine, now);
	if (!d->engine) {
		log_err("cannot create the engine: %s", strerror(errno));
		return -1;
	}
	if (lb_engine_set_services(d->engine, d->conf.services, d->conf.nservices) < 0) {
		log_err("cannot load the services");
		return -1;
	}
	/* Before the workers: the engine's hooks are set once, before traffic. */
	d->fastpath = lbd_fastpath_open(&d->conf, d->engine, &fatal);
	if (fatal) {
		log_err("fast_path = \"required\" and the fast path is not available");
		return -1;
	}
	d->capture = lbd_capture_new();
	if (!d->capture) {
		log_err("cannot create the capture: %s", strerror(errno));
		return -1;
	}
	if (open_queues(d) < 0)
		return -1;
	/* With a peer, start as backup: keepalived says when to be master. */
	if (d->conf.sync.enabled &&
	    !(d->sync = lbd_sync_open(&d->conf.sync, d->engine, d->queues, d->nqueues)))
		return -1;
	/* The earliest news of a takeover: keepalived adding the VIPs. */
	if (d->sync && !(d->vipwatch = lbd_vipwatch_open(d->conf.services, d->conf.nservices)))
		log_warn("cannot watch the VIPs (%s): takeovers wait for keepalived's notify",
			 strerror(errno));
	/* The takeover kick's raw socket needs CAP_NET_RAW, which goes. */
	if (d->sync && d->conf.sync.takeover_kick && !(d->kick = lbd_kick_open()))
		log_warn("cannot open the takeover kick's raw socket (%s): connections in "
			 "backoff wait out their timers after a takeover", strerror(errno));
	/* The last steps that need root (the directories of the socket and
	 * the pid file); the socket is served only once run() starts. */
	d->ctl_fd = lbd_ctl_listen(d->conf.daemon.control, d->conf.daemon.control_group);
	/* The kernel's queue counters (nfqN_queue_dropped) are root's to
	 * open; the open file stays readable (lbd_cmd.c re-reads it). */
	d->nfq_proc_fd = open("/proc/net/netfilter/nfnetlink_queue", O_RDONLY | O_CLOEXEC);
	if (d->ctl_fd < 0 || write_pidfile(d) < 0 || open_alive_link(d) < 0 ||
	    drop_privileges(d) < 0)
		return -1;
	/* From here on only the loop makes the engine's control calls. */
	d->loop = lbd_loop_new(d->engine, d->sync);
	if (d->loop) {
		lbd_loop_set_fastpath(d->loop, d->fastpath);
		lbd_loop_set_kick(d->loop, d->kick);
		if (d->vipwatch)
			lbd_loop_set_vipwatch(d->loop, d->vipwatch, d->conf.sync.vip_takeover);
		for (unsigned i = 0; i < d->nqueues; i++)
			lbd_queue_set_takeover(d->queues[i], lbd_loop_takeover(d->loop));
	}
	if (!d->loop || (rc = lbd_loop_start(d->loop)) < 0) {
		log_err("cannot start the engine's control thread: %s",
			strerror(d->loop ? -rc : errno));
		return -1;
	}
	if (lbd_health_start(&d->conf, d->engine, d->loop, &d->health) < 0)
		return -1;
	lbd_rules_remove(&d->tools, d->conf.daemon.chain);	/* left by a crashed run */
	if (lbd_rules_install(&d->tools, &d->conf, d->engine) < 0)
		return -1;
	d->rules_installed = 1;
	for (unsigned i = 0; i < d->nqueues; i++)
		if (lbd_queue_start(d->queues[i]) < 0)
			return -1;
	if (lbd_metrics_start(d, &d->metrics) < 0)
		return -1;
	return 0;
}

static void stop(struct lbd *d)
{
	/* First: keepalived hands the VIPs over while the rest winds down. */
	if (d->alive_fd >= 0)
		close(d->alive_fd);
	lbd_metrics_stop(d->metrics);	/* it reads everything below */
	if (d->rules_installed)
		lbd_rules_remove(&d->tools, d->conf.daemon.chain);
	for (unsigned i = 0; i < d->nqueues; i++)
		lbd_queue_stop(d->queues[i]);
	/* The loop before the sync node it drives, and both before the
	 * queues go: the node releases deferred verdicts on them. */
	lbd_health_stop(d->health);	/* it posts to the loop */
	lbd_loop_free(d->loop);
	lbd_kick_close(d->kick);
	lbd_vipwatch_close(d->vipwatch);
	lbd_sync_close(d->sync);
	/* No worker and no loop calls its hooks any more. */
	lbd_fastpath_close(d->fastpath, d->engine);
	for (unsigned i = 0; i < d->nqueues; i++)
		lbd_queue_close(d->queues[i]);
	/* After the workers are gone: flushes and closes a running capture. */
	lbd_capture_free(d->capture);
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		unlink(d->conf.daemon.control);
	}
	if (d->nfq_proc_fd >= 0)
		close(d->nfq_proc_fd);
	lb_engine_free(d->engine);
	lb_conf_free(&d->conf);
}

/* After the loop's tick freed drained backends, their reply rules can go too. */
static void check_rules(struct lbd *d)
{
	uint64_t counters[LB_CNT_COUNT];

	lb_engine_counters(d->engine, counters);
	if (counters[LB_CNT_BACKENDS_FREED] != d->backends_freed_seen) {
		d->backends_freed_seen = counters[LB_CNT_BACKENDS_FREED];
		lbd_rules_install(&d->tools, &d->conf, d->engine);
	}
}

/* Returns 1 to keep running, 0 to stop. */
static int on_signal(struct lbd *d)
{
	struct signalfd_siginfo si;

	if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
		return 1;
	if (si.ssi_signo == SIGHUP) {
		lbd_cmd_reload(d, NULL);
		return 1;
	}
	if (si.ssi_signo == SIGPIPE)
		return 1;
	if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
		lbd_cmd_set_role(d, si.ssi_signo == SIGUSR1 ? LB_ROLE_MASTER : LB_ROLE_BACKUP, NULL);
		return 1;
	}
	log_info("signal %u: shutting down", si.ssi_signo);
	return 0;
}

static void run(struct lbd *d)
{
	uint64_t next_check = clock_mono_ms() + RULES_CHECK_MS;

	for (;;) {
		struct pollfd p[2] = { { d->ctl_fd, POLLIN, 0 }, { d->sig_fd, POLLIN, 0 } };
		uint64_t now = clock_mono_ms();
		int timeout = now >= next_check ? 0 : (int)(next_check - now);

		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if ((p[1].revents & POLLIN) && !on_signal(d))
			break;
		if (p[0].revents & POLLIN) {
			int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				lbd_ctl_serve(d, fd);
		}
		if (clock_mono_ms() >= next_check) {
			check_rules(d);
			/* A capture that stopped on its own limits resumes it. */
			lbd_fastpath_set_enabled(d->fastpath,
						 !atomic_load(&lbd_capture_tap(d->capture)->on));
			next_check = clock_mono_ms() + RULES_CHECK_MS;
		}
	}
}

/* Rules, queues and sync are up: systemd's READY=1. */
static int announce_ready(struct lbd *d)
{
	char msg[256];

	/* The configured workers; the SYN queue's is the log's business. */
	snprintf(msg, sizeof(msg), "%zu services, %u workers, sync %s", d->conf.nservices,
		 d->conf.daemon.workers, d->conf.sync.enabled ? "on" : "off");
	lbd_service_ready(msg);
	return 0;
}

static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	/* Before any thread starts, so workers inherit the mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

static int parse_args(int argc, char **argv, struct lbd *d, int *check)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "debug", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'C' },	    { "help", no_argument, NULL, 'h' },
		{ "pidfile", required_argument, NULL, 'P' }, { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "c:dhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': d->conf_path = optarg; break;
		case 'd': log_set_level(LOG_LVL_DEBUG); d->debug = 1; break;
		case 'C': *check = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'P': d->pidfile = optarg; break;
		case 'V': printf("lbd %s\n", LB_VERSION); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!d->conf_path || optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct lbd d = { .ctl_fd = -1, .alive_fd = -1, .sig_fd = -1, .nfq_proc_fd = -1 };
	char err[512];
	int check = 0, rc = 1;

	log_set_ident("lbd");
	if (parse_args(argc, argv, &d, &check) < 0)
		return 2;
	if (lb_conf_load(d.conf_path, &d.conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "lbd: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok (%zu services)\n", d.conf_path, d.conf.nservices);
		rc = lbd_check_host(&d.conf, "", print_finding, (void *)d.conf_path) ? 1 : 0;
		lb_conf_free(&d.conf);
		return rc;
	}
	if (d.conf.daemon.log_level >= 0 && !d.debug)
		log_set_level((enum log_level)d.conf.daemon.log_level);
	if (d.conf.daemon.log_syslog)
		log_use_syslog(d.conf.daemon.log_facility);
	d.sig_fd = block_signals();
	if (d.sig_fd < 0) {
		log_err("signals: %s", strerror(errno));
		return 1;
	}
	lbd_check_host(&d.conf, "", log_finding, NULL);
	if (start(&d) == 0) {
		log_info("running: %zu services, %u workers on queues %u-%u%s, control %s",
			 d.conf.nservices, d.conf.daemon.workers, d.conf.daemon.queue,
			 d.conf.daemon.queue + d.conf.daemon.workers - 1,
			 d.conf.daemon.syn_queue ? " and SYNs on the next" : "",
			 d.conf.daemon.control);
		rc = announce_ready(&d);
		if (rc == 0)
			run(&d);
	}
	lbd_service_stopping();
	if (d.pidfile)
		lbd_service_remove_pidfile(d.pidfile);
	stop(&d);
	close(d.sig_fd);
	return rc;
}
