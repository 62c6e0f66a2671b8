/*
 * The host checks (lbd_check.h). Each check reads what it needs under
 * /proc (prefixed by root, so tests can give a tree of their own) and says
 * what is wrong in terms an operator can act on: the sysctl or the file to
 * change.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lb_engine.h"
#include "lbd_check.h"
#include "sync_link.h"		/* SYNC_KEY_MIN, SYNC_KEY_MAX */

struct checker {
	const char *root;
	lbd_check_report report;
	void *arg;
	int errors;
};

__attribute__((format(printf, 3, 4)))
static void say(struct checker *c, enum lbd_check_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level == LBD_CHECK_ERROR)
		c->errors++;
	c->report(c->arg, level, msg);
}

/* Reads one integer from root/rel; returns 0, or -1 if absent or garbled. */
static int read_int(const struct checker *c, const char *rel, long *v)
{
	char path[PATH_MAX];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", c->root, rel);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fscanf(f, "%ld", v) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static int has_family(const struct lb_conf *conf, int family)
{
	for (size_t i = 0; i < conf->nservices; i++)
		if (conf->services[i].vip.family == family)
			return 1;
	return 0;
}

static void check_forwarding(struct checker *c, const struct lb_conf *conf)
{
	long v;

	if (has_family(conf, AF_INET) && read_int(c, "proc/sys/net/ipv4/ip_forward", &v) == 0 &&
	    v != 1)
		say(c, LBD_CHECK_WARN, "net.ipv4.ip_forward is %ld: IPv4 services will not be "
		    "forwarded (sysctl -w net.ipv4.ip_forward=1)", v);
	if (has_family(conf, AF_INET6) &&
	    read_int(c, "proc/sys/net/ipv6/conf/all/forwarding", &v) == 0 && v != 1)
		say(c, LBD_CHECK_WARN, "net.ipv6.conf.all.forwarding is %ld: IPv6 services will "
		    "not be forwarded (sysctl -w net.ipv6.conf.all.forwarding=1)", v);
}

/*
 * The kernel applies max(all, interface). Strict mode (1) drops a packet
 * whose source would not be routed back out of the interface it came in
 * on: with asymmetric routes, or right after a failover, balanced traffic.
 */
static void check_rp_filter(struct checker *c, const struct lb_conf *conf)
{
	char dirpath[PATH_MAX], rel[PATH_MAX], strict[256] = "";
	long all = 0, v;
	struct dirent *de;
	size_t used = 0;
	DIR *d;

	if (!has_family(conf, AF_INET) && !(conf->sync.enabled && conf->sync.local.family == AF_INET))
		return;
	read_int(c, "proc/sys/net/ipv4/conf/all/rp_filter", &all);
	snprintf(dirpath, sizeof(dirpath), "%s/proc/sys/net/ipv4/conf", c->root);
	d = opendir(dirpath);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "all") ||
		    !strcmp(de->d_name, "default") || !strcmp(de->d_name, "lo"))
			continue;
		snprintf(rel, sizeof(rel), "proc/sys/net/ipv4/conf/%s/rp_filter", de->d_name);
		if (read_int(c, rel, &v) < 0)
			continue;
		if ((v > all ? v : all) == 1 && used < sizeof(strict) - IF_NAMESIZE - 2)
			used += (size_t)snprintf(strict + used, sizeof(strict) - used, "%s%s",
						 used ? " " : "", de->d_name);
	}
	closedir(d);
	if (used)
		say(c, LBD_CHECK_WARN, "strict rp_filter on %s: asymmetric balanced traffic is "
		    "dropped (net.ipv4.conf.all.rp_filter and net.ipv4.conf.IF.rp_filter = 0 or 2)",
		    strict);
}

/* The uid lbd runs as after set-up: daemon.user's when started as root
 * (lbd_privs.h), else ours. Returns 0, or -1 when that user does not exist. */
static int runtime_uid(struct checker *c, const struct lb_conf *conf, uid_t *uid)
{
	struct passwd *pw;

	*uid = geteuid();
	if (*uid != 0)
		return 0;
	pw = getpwnam(conf->daemon.user);
	if (!pw) {
		say(c, LBD_CHECK_ERROR, "daemon.user '%s': no such user (lbd switches to it "
		    "after set-up)", conf->daemon.user);
		return -1;
	}
	*uid = pw->pw_uid;
	return 0;
}

static void check_key(struct checker *c, const struct lb_conf *conf)
{
	const char *path = conf->sync.key_file;
	struct stat st;
	uid_t uid;

	if (!conf->sync.enabled)
		return;
	if (stat(path, &st) < 0) {
		say(c, LBD_CHECK_ERROR, "sync key %s: %s", path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		say(c, LBD_CHECK_ERROR, "sync key %s: not a regular file", path);
		return;
	}
	if (st.st_size < SYNC_KEY_MIN || st.st_size > SYNC_KEY_MAX)
		say(c, LBD_CHECK_ERROR, "sync key %s: %lld bytes, want %d to %d "
		    "(head -c 32 /dev/urandom)", path, (long long)st.st_size, SYNC_KEY_MIN,
		    SYNC_KEY_MAX);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		say(c, LBD_CHECK_ERROR, "sync key %s: mode %04o gives group or others access "
		    "(chmod 600)", path, (unsigned)(st.st_mode & 07777));
	/* lbd reads the key again on a reload, as the user it runs as then */
	if (runtime_uid(c, conf, &uid) == 0 && st.st_uid != uid)
		say(c, LBD_CHECK_WARN, "sync key %s: owned by uid %u, lbd runs as %u after "
		    "set-up: a reload cannot read a new key, and its owner can read and "
		    "replace it (chown)", path, (unsigned)st.st_uid, (unsigned)uid);
}

static void check_sync_interface(struct checker *c, const struct lb_conf *conf)
{
	if (conf->sync.enabled && conf->sync.interface[0] &&
	    if_nametoindex(conf->sync.interface) == 0)
		say(c, LBD_CHECK_ERROR, "sync interface %s does not exist", conf->sync.interface);
}

/* MemAvailable from meminfo, in bytes; 0 if unknown. */
static unsigned long long mem_available(const struct checker *c)
{
	char path[PATH_MAX], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/meminfo", c->root);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* The tables are allocated, and the connection pool written, at start. */
static void check_memory(struct checker *c, const struct lb_conf *conf)
{
	unsigned long long need = lb_engine_mem_bytes(&conf->engine), avail = mem_available(c);

	if (avail && need > avail)
		say(c, LBD_CHECK_ERROR, "max_conns %zu and max_persist %zu need %llu MiB, "
		    "only %llu MiB available", conf->engine.max_conns, conf->engine.max_persist,
		    need >> 20, avail >> 20);
	else if (avail && need > avail / 2)
		say(c, LBD_CHECK_WARN, "max_conns %zu and max_persist %zu need %llu MiB, more "
		    "than half of the %llu MiB available", conf->engine.max_conns,
		    conf->engine.max_persist, need >> 20, avail >> 20);
}

int lbd_check_host(const struct lb_conf *conf, const char *root, lbd_check_report report,
		   void *arg)
{
	struct checker c = { root ? root : "", report, arg, 0 };

	check_forwarding(&c, conf);
	check_rp_filter(&c, conf);
	check_key(&c, conf);
	check_sync_interface(&c, conf);
	check_memory(&c, conf);
	return c.errors;
}
