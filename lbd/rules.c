/*
 * lbd's iptables rules. lbd owns two chains per family and nothing else:
 *
 *   raw    PREROUTING -> <chain>-PRE
 *            -d VIP -p tcp --dport P      -j CT --notrack
 *           [-d VIP -p tcp --dport P --syn -j NFQUEUE --queue-num Q+W  (syn_queue)]
 *            -d VIP -p tcp --dport P      -j NFQUEUE  (requests, before routing)
 *            -s RIP -p tcp --sport RP     -j CT --notrack
 *   mangle FORWARD    -> <chain>-FWD
 *            -s RIP -p tcp --sport RP     -j NFQUEUE  (replies, after routing)
 *
 * Requests are rewritten before routing so the kernel routes them to the
 * backend; replies after routing, because a packet whose source is already
 * the (local) VIP would be a martian to the routing decision
 * (docs/platform.md §5).
 * The kernel's conntrack is kept out of both directions.
 *
 * With daemon.syn_queue, clients' SYNs have a queue and a worker of their
 * own, the one after the workers' queues: a SYN flood then fills that queue
 * alone (its overflow counted as its nfqN_queue_dropped), while the
 * handshakes' SYN/ACKs and ACKs and every established flow keep queues of
 * normal length and latency (docs/architecture.md, SYN floods).
 *
 * The chains are written with iptables-restore --noflush in one transaction
 * per family, so a reload replaces them atomically; the jumps from the
 * built-in chains are added once. Removal is idempotent, so a start after a
 * crash first clears what the crashed run left.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb_conf.h"
#include "lb_engine.h"
#include "lbd_rules.h"
#include "log.h"

extern char **environ;

/* Runs argv with stdin from input (NULL: /dev/null); quiet hides stderr. */
static int run(char *const argv[], const char *input, int quiet)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2] = { -1, -1 }, status = 0, rc;
	pid_t pid;

	if (input && pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	if (input)
		posix_spawn_file_actions_adddup2(&fa, pipefd[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	/* argv[0] is an absolute path (lbd_rules_find_tools): no PATH search. */
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (input) {
		close(pipefd[0]);
		if (rc == 0) {
			size_t len = strlen(input), off = 0;

			while (off < len) {
				ssize_t n = write(pipefd[1], input + off, len - off);

				if (n <= 0)
					break;
				off += (size_t)n;
			}
		}
		close(pipefd[1]);
	}
	if (rc != 0) {
		if (!quiet)
			log_err("cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const char *const tools[2] = { "iptables", "ip6tables" };

#define XTABLES_WAIT "5"	/* seconds iptables waits for the xtables lock */

static int find_one(const char *name, char out[static LBD_TOOL_PATH])
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
	struct stat st;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, LBD_TOOL_PATH, "%s/%s", dirs[i], name);
		if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return 0;
	}
	log_err("%s not found in /usr/sbin, /sbin, /usr/bin or /bin", name);
	out[0] = '\0';
	return -1;
}

int lbd_rules_find_tools(struct lbd_tools *t)
{
	int rc = 0;

	for (int i = 0; i < 2; i++) {
		char restore[32];

		snprintf(restore, sizeof(restore), "%s-restore", tools[i]);
		rc |= find_one(tools[i], t->iptables[i]);
		rc |= find_one(restore, t->restore[i]);
	}
	return rc ? -1 : 0;
}

struct ruleset {
	char *text;
	size_t len;
	FILE *f;
};

static void queue_target(FILE *f, const struct lb_conf *conf)
{
	if (conf->daemon.workers == 1)
		fprintf(f, "-j NFQUEUE --queue-num %u", conf->daemon.queue);
	else
		fprintf(f, "-j NFQUEUE --queue-balance %u:%u", conf->daemon.queue,
			conf->daemon.queue + conf->daemon.workers - 1);
	fprintf(f, "%s\n", conf->daemon.fail_open ? " --queue-bypass" : "");
}

struct backend_rules {
	FILE *pre, *fwd;
	const struct lb_conf *conf;
	int family;
	const char *chain;
};

static void backend_rule(const struct lb_backend_info *be, void *arg)
{
	struct backend_rules *br = arg;
	char a[LB_ADDR_STRLEN];

	if (be->addr.family != br->family)
		return;
	lb_addr_format(&be->addr, a, sizeof(a));
	fprintf(br->pre, "-A %s-PRE -s %s -p tcp -m tcp --sport %u -j CT --notrack\n",
		br->chain, a, be->port);
	fprintf(br->fwd, "-A %s-FWD -s %s -p tcp -m tcp --sport %u ", br->chain, a, be->port);
	queue_target(br->fwd, br->conf);
}

/* The iptables-restore input for one family. Returns malloc'd text or NULL. */
static char *build(const struct lb_conf *conf, struct lb_engine *e, int family)
{
	const char *chain = conf->daemon.chain;
	char *pre = NULL, *fwd = NULL, *out = NULL;
	size_t plen = 0, flen = 0, olen = 0;
	struct backend_rules br = { open_memstream(&pre, &plen), open_memstream(&fwd, &flen),
				    conf, family, chain };
	FILE *o;

	if (!br.pre || !br.fwd)
		goto done;
	for (size_t i = 0; i < conf->nservices; i++) {
		const struct lb_service_conf *s = &conf->services[i];
		char a[LB_ADDR_STRLEN];

		if (s->vip.family != family)
			continue;
		lb_addr_format(&s->vip, a, sizeof(a));
		fprintf(br.pre, "-A %s-PRE -d %s -p tcp -m tcp --dport %u -j CT --notrack\n",
			chain, a, s->port);
		if (conf->daemon.syn_queue)
			fprintf(br.pre, "-A %s-PRE -d %s -p tcp -m tcp --dport %u --syn "
				"-j NFQUEUE --queue-num %u%s\n", chain, a, s->port,
				conf->daemon.queue + conf->daemon.workers,
				conf->daemon.fail_open ? " --queue-bypass" : "");
		fprintf(br.pre, "-A %s-PRE -d %s -p tcp -m tcp --dport %u ", chain, a, s->port);
		queue_target(br.pre, conf);
	}
	/* Every backend the engine still has, draining ones included: their
	 * connections' replies must keep reaching the engine. */
	lb_engine_foreach_backend(e, backend_rule, &br);
	fclose(br.pre);
	fclose(br.fwd);
	br.pre = br.fwd = NULL;
	o = open_memstream(&out, &olen);
	if (!o)
		goto done;
	fprintf(o, "*raw\n:%s-PRE - [0:0]\n%sCOMMIT\n*mangle\n:%s-FWD - [0:0]\n%sCOMMIT\n",
		chain, pre ? pre : "", chain, fwd ? fwd : "");
	fclose(o);
done:
	if (br.pre)
		fclose(br.pre);
	if (br.fwd)
		fclose(br.fwd);
	free(pre);
	free(fwd);
	return out;
}

/* Adds the jump from a built-in chain unless it is there already. */
static int ensure_jump(const char *tool, const char *table, const char *from, const char *to)
{
	char *check[] = { (char *)tool, "-w", XTABLES_WAIT, "-t", (char *)table, "-C",
			  (char *)from, "-j", (char *)to, NULL };
	char *insert[] = { (char *)tool, "-w", XTABLES_WAIT, "-t", (char *)table, "-I",
			   (char *)from, "1", "-j", (char *)to, NULL };

	if (run(check, NULL, 1) == 0)
		return 0;
	return run(insert, NULL, 0);
}

int lbd_rules_install(const struct lbd_tools *t, const struct lb_conf *conf,
		      struct lb_engine *e)
{
	static const int families[2] = { AF_INET, AF_INET6 };
	char pre[40], fwd[40];

	snprintf(pre, sizeof(pre), "%s-PRE", conf->daemon.chain);
	snprintf(fwd, sizeof(fwd), "%s-FWD", conf->daemon.chain);
	for (int i = 0; i < 2; i++) {
		char *argv[] = { (char *)t->restore[i], "-w", XTABLES_WAIT, "--noflush", NULL };
		char *text = build(conf, e, families[i]);
		int rc;

		if (!text) {
			log_err("out of memory building %s rules", tools[i]);
			return -1;
		}
		rc = run(argv, text, 0);
		free(text);
		if (rc < 0 || ensure_jump(t->iptables[i], "raw", "PREROUTING", pre) < 0 ||
		    ensure_jump(t->iptables[i], "mangle", "FORWARD", fwd) < 0) {
			log_err("%s: cannot install lbd's rules", tools[i]);
			return -1;
		}
	}
	return 0;
}

static void remove_chain(const char *tool, const char *table, const char *from, const char *chain)
{
	char *del[] = { (char *)tool, "-w", XTABLES_WAIT, "-t", (char *)table, "-D",
			(char *)from, "-j", (char *)chain, NULL };
	char *flush[] = { (char *)tool, "-w", XTABLES_WAIT, "-t", (char *)table, "-F",
			  (char *)chain, NULL };
	char *kill[] = { (char *)tool, "-w", XTABLES_WAIT, "-t", (char *)table, "-X",
			 (char *)chain, NULL };

	/* A crashed run may have left the jump more than once; bounded. */
	for (int i = 0; i < 16 && run(del, NULL, 1) == 0; i++)
		;
	run(flush, NULL, 1);
	run(kill, NULL, 1);
}

void lbd_rules_remove(const struct lbd_tools *t, const char *chain)
{
	char pre[40], fwd[40];

	snprintf(pre, sizeof(pre), "%s-PRE", chain);
	snprintf(fwd, sizeof(fwd), "%s-FWD", chain);
	for (int i = 0; i < 2; i++) {
		remove_chain(t->iptables[i], "raw", "PREROUTING", pre);
		remove_chain(t->iptables[i], "mangle", "FORWARD", fwd);
	}
}
