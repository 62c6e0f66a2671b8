/*
 * lbd packet capture: `lbctl capture start|stop|status` (see lbd_capture.h).
 *
 * Two pcap files of link type RAW, written with libpcap's dumper:
 *
 *   PREFIX.in.pcap   each packet as the kernel queued it, before the engine
 *   PREFIX.out.pcap  each accepted packet as lbd returned it, after NAT
 *
 * Every worker calls the hook for every packet, so the off state must cost
 * nothing: the hook inlines a relaxed load of tap.on and returns. When on,
 * records are serialised by one mutex (pcap_dump is not thread-safe, and one
 * lock also keeps each file's timestamps in order), and each file has a
 * 1 MiB stdio buffer so that a worker rarely waits for a write(2).
 *
 * A limit is per file and is checked before a record is written: the record
 * that would pass max_packets or max_bytes is not written and stops the
 * capture, so a file never holds more than its limits allow. The stop is
 * logged once, by whichever thread makes it, and `capture` says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lbd.h"
#include "lbd_capture.h"
#include "lbd_fastpath.h"
#include "lbd_reply.h"
#include "log.h"
#include "num.h"

#define DEFAULT_MAX_PACKETS	1000000u
#define DEFAULT_MAX_BYTES	(256u << 20)
#define DEFAULT_SNAPLEN		65535u		/* a whole GSO packet */
#define MIN_MAX_BYTES		1024u
#define FILE_HEADER_LEN		24u		/* pcap's file header on disk */
#define RECORD_HEADER_LEN	16u		/* and each record's header */
#define FILE_BUFFER		(1u << 20)

static const char *const side_suffix[LBD_CAPTURE_SIDES] = { ".in.pcap", ".out.pcap" };
static const char *const side_name[LBD_CAPTURE_SIDES] = { "in", "out" };

/* One output file and what has gone into it. */
struct capture_file {
	char path[LBD_CAPTURE_PREFIX_MAX + 16];
	pcap_dumper_t *dumper;		/* owns fp */
	FILE *fp;
	char *buffer;			/* fp's stdio buffer; freed after fp closes */
	uint64_t packets;
	uint64_t bytes;			/* the file's size, headers included */
};

/* Counts of one capture; the totals since start-up have the same shape. */
struct capture_counts {
	uint64_t packets[LBD_CAPTURE_SIDES];
	uint64_t bytes[LBD_CAPTURE_SIDES];
	uint64_t truncated;		/* records cut to snaplen */
	uint64_t dropped;		/* seen while running, not written */
};

struct lbd_capture {
	struct lbd_capture_tap tap;
	pthread_mutex_t lock;		/* everything below */
	bool running;
	bool started_once;
	struct lbd_capture_conf conf;
	pcap_t *pcap;			/* the dumpers' link type and snaplen */
	struct capture_file file[LBD_CAPTURE_SIDES];
	struct capture_counts now;	/* the current or last capture */
	struct capture_counts done;	/* every finished capture */
	uint64_t starts;
	uint64_t started_ms, stopped_ms;	/* CLOCK_MONOTONIC */
	enum lbd_capture_reason reason;
	char detail[128];		/* the reason in words, for status */
	char error[160];		/* the last write error, for status */
};

static const char *reason_name(enum lbd_capture_reason r)
{
	switch (r) {
	case LBD_CAPTURE_NOT_STOPPED: return "none";
	case LBD_CAPTURE_BY_OPERATOR: return "stopped";
	case LBD_CAPTURE_MAX_PACKETS: return "max_packets";
	case LBD_CAPTURE_MAX_BYTES: return "max_bytes";
	case LBD_CAPTURE_WRITE_ERROR: return "write_error";
	case LBD_CAPTURE_SHUTDOWN: return "shutdown";
	}
	return "unknown";
}

static const char *reason_text(enum lbd_capture_reason r)
{
	switch (r) {
	case LBD_CAPTURE_BY_OPERATOR: return "capture stop";
	case LBD_CAPTURE_WRITE_ERROR: return "a file could not be written";
	case LBD_CAPTURE_SHUTDOWN: return "lbd exited";
	default: return "a limit was reached";
	}
}

struct lbd_capture *lbd_capture_new(void)
{
	struct lbd_capture *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return NULL;
	atomic_init(&c->tap.on, false);
	c->tap.capture = c;
	if ((err = pthread_mutex_init(&c->lock, NULL)) != 0) {
		free(c);
		errno = err;
		return NULL;
	}
	return c;
}

struct lbd_capture_tap *lbd_capture_tap(struct lbd_capture *c)
{
	return &c->tap;
}

/* ---- arguments ---- */

/* One "key=value" argument of `capture start`. */
static int parse_option(char *tok, struct lbd_capture_conf *conf, char *err, size_t errlen)
{
	char *eq = strchr(tok, '='), *val = eq + 1;
	uint64_t v;

	*eq = '\0';
	if (strcmp(tok, "max_packets") == 0) {
		if (num_parse_u64(val, 1, UINT64_MAX, &conf->max_packets) == 0)
			return 0;
		snprintf(err, errlen, "max_packets '%s': use a number from 1", val);
	} else if (strcmp(tok, "max_bytes") == 0) {
		if (num_parse_u64(val, MIN_MAX_BYTES, UINT64_MAX, &conf->max_bytes) == 0)
			return 0;
		snprintf(err, errlen, "max_bytes '%s': use a number from %u", val, MIN_MAX_BYTES);
	} else if (strcmp(tok, "snaplen") == 0) {
		if (num_parse_u64(val, 1, LBD_CAPTURE_SNAPLEN_MAX, &v) == 0) {
			conf->snaplen = (uint32_t)v;
			return 0;
		}
		snprintf(err, errlen, "snaplen '%s': use 1..%u", val, LBD_CAPTURE_SNAPLEN_MAX);
	} else {
		snprintf(err, errlen, "unknown option '%s' (max_packets, max_bytes, snaplen)", tok);
	}
	return -EINVAL;
}

static int check_prefix(const char *tok, char *err, size_t errlen)
{
	size_t len = strlen(tok);

	if (tok[0] != '/') {
		snprintf(err, errlen, "PREFIX '%s' must be an absolute path", tok);
	} else if (len > LBD_CAPTURE_PREFIX_MAX) {
		snprintf(err, errlen, "PREFIX is longer than %d characters",
			 LBD_CAPTURE_PREFIX_MAX);
	} else if (tok[len - 1] == '/') {
		snprintf(err, errlen, "PREFIX '%s' names a directory; add a file name prefix", tok);
	} else {
		return 0;
	}
	return -EINVAL;
}

int lbd_capture_conf_parse(const char *args, struct lbd_capture_conf *conf, char *err,
			   size_t errlen)
{
	char buf[512], *save = NULL, *tok;
	int rc = 0;

	*conf = (struct lbd_capture_conf){ .max_packets = DEFAULT_MAX_PACKETS,
					   .max_bytes = DEFAULT_MAX_BYTES,
					   .snaplen = DEFAULT_SNAPLEN };
	if (!args || strlen(args) >= sizeof(buf)) {
		snprintf(err, errlen, "%s", args ? "arguments too long" : "PREFIX missing");
		return -EINVAL;
	}
	memcpy(buf, args, strlen(args) + 1);
	tok = strtok_r(buf, " \t", &save);
	for (; tok && rc == 0; tok = strtok_r(NULL, " \t", &save)) {
		if (strchr(tok, '=')) {
			rc = parse_option(tok, conf, err, errlen);
		} else if (conf->prefix[0]) {
			snprintf(err, errlen, "unexpected argument '%s' (one PREFIX only)", tok);
			rc = -EINVAL;
		} else if ((rc = check_prefix(tok, err, errlen)) == 0) {
			memcpy(conf->prefix, tok, strlen(tok) + 1);
		}
	}
	if (rc == 0 && !conf->prefix[0]) {
		snprintf(err, errlen, "PREFIX missing");
		rc = -EINVAL;
	}
	return rc;
}

/* ---- files ---- */

/* PREFIX's directory must exist: lbd creates files, not directories. */
static int check_directory(const char *prefix, char *err, size_t errlen)
{
	char dir[LBD_CAPTURE_PREFIX_MAX + 1];
	size_t len = (size_t)(strrchr(prefix, '/') - prefix);
	struct stat st;

	if (len == 0)
		len = 1;	/* "/name": the root */
	memcpy(dir, prefix, len);
	dir[len] = '\0';
	if (stat(dir, &st) < 0) {
		int e = errno;

		if (e == ENOENT)
			snprintf(err, errlen, "directory %s does not exist", dir);
		else
			snprintf(err, errlen, "directory %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * Opens (creating) one output file without truncating it yet, so that a
 * start that fails on the second file has destroyed nothing; *created says
 * whether it is new (to be removed again on failure). Refuses a symlink and
 * anything that is not a regular file (a FIFO would block the control
 * thread, and a device must not be chmod'ed below). Returns an fd or a
 * negative errno.
 */
static int open_output(const char *path, bool *created, char *err, size_t errlen)
{
	int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	int fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	struct stat st;

	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(path, flags);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot create %s: %s", path,
			 e == ELOOP ? "it is a symbolic link" : strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Empties fd's file, makes it 0600 and puts a pcap dumper on it. */
static int dumper_open(struct lbd_capture *c, struct capture_file *f, int fd, char *err,
		       size_t errlen)
{
	if (ftruncate(fd, 0) < 0 || fchmod(fd, 0600) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", f->path, strerror(e));
		close(fd);
		return -e;
	}
	f->buffer = malloc(FILE_BUFFER);
	f->fp = f->buffer ? fdopen(fd, "wb") : NULL;
	if (!f->fp) {
		snprintf(err, errlen, "%s: %s", f->path, strerror(ENOMEM));
		close(fd);
		return -ENOMEM;
	}
	setvbuf(f->fp, f->buffer, _IOFBF, FILE_BUFFER);
	f->dumper = pcap_dump_fopen(c->pcap, f->fp);
	if (!f->dumper) {
		snprintf(err, errlen, "%s: %s", f->path, pcap_geterr(c->pcap));
		fclose(f->fp);
		f->fp = NULL;
		return -EIO;
	}
	f->packets = 0;
	f->bytes = FILE_HEADER_LEN;
	return 0;
}

/*
 * Flushes and closes both files (whichever are open) and the pcap handle.
 * A failed flush is the capture's write error. Under c->lock.
 */
static void files_close(struct lbd_capture *c)
{
	for (int s = 0; s < LBD_CAPTURE_SIDES; s++) {
		struct capture_file *f = &c->file[s];

		if (f->dumper) {
			int bad = pcap_dump_flush(f->dumper) < 0 || ferror(f->fp);

			if (bad && !c->error[0])
				snprintf(c->error, sizeof(c->error), "writing %s failed: %s",
					 f->path, strerror(errno));
			pcap_dump_close(f->dumper);
		}
		f->dumper = NULL;
		f->fp = NULL;
		free(f->buffer);
		f->buffer = NULL;
	}
	if (c->pcap)
		pcap_close(c->pcap);
	c->pcap = NULL;
}

/* Opens both files for conf, or neither. Under c->lock. */
static int files_open(struct lbd_capture *c, const struct lbd_capture_conf *conf, char *err,
		      size_t errlen)
{
	int fd[LBD_CAPTURE_SIDES] = { -1, -1 }, rc = 0, s;
	bool created[LBD_CAPTURE_SIDES] = { false, false };

	for (s = 0; s < LBD_CAPTURE_SIDES; s++) {
		struct capture_file *f = &c->file[s];

		snprintf(f->path, sizeof(f->path), "%s%s", conf->prefix, side_suffix[s]);
		if ((fd[s] = open_output(f->path, &created[s], err, errlen)) < 0) {
			rc = fd[s];
			goto fail;
		}
	}
	c->pcap = pcap_open_dead(DLT_RAW, (int)conf->snaplen);
	if (!c->pcap) {
		snprintf(err, errlen, "pcap_open_dead failed");
		rc = -ENOMEM;
		goto fail;
	}
	for (s = 0; s < LBD_CAPTURE_SIDES; s++) {
		rc = dumper_open(c, &c->file[s], fd[s], err, errlen);
		fd[s] = -1;		/* closed, or owned by the dumper */
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	for (s = LBD_CAPTURE_SIDES - 1; s >= 0; s--)
		if (fd[s] >= 0)
			close(fd[s]);
	files_close(c);
	for (s = LBD_CAPTURE_SIDES - 1; s >= 0; s--)
		if (created[s])
			unlink(c->file[s].path);
	return rc;
}

/* ---- start, stop ---- */

int lbd_capture_start(struct lbd_capture *c, const struct lbd_capture_conf *conf, char *err,
		      size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	if (c->running) {
		snprintf(err, errlen, "a capture is already running (%s); stop it first",
			 c->conf.prefix);
		rc = -EBUSY;
		goto out;
	}
	if ((rc = check_directory(conf->prefix, err, errlen)) < 0 ||
	    (rc = files_open(c, conf, err, errlen)) < 0)
		goto out;
	c->conf = *conf;
	c->now = (struct capture_counts){ 0 };
	c->now.bytes[LBD_CAPTURE_IN] = c->now.bytes[LBD_CAPTURE_OUT] = FILE_HEADER_LEN;
	c->error[0] = '\0';
	c->reason = LBD_CAPTURE_NOT_STOPPED;
	c->started_ms = clock_mono_ms();
	c->starts++;
	c->started_once = true;
	c->running = true;
	atomic_store_explicit(&c->tap.on, true, memory_order_relaxed);
	log_info("capture started: %s and %s (snaplen %" PRIu32 ", max_packets %" PRIu64
		 ", max_bytes %" PRIu64 ")",
		 c->file[LBD_CAPTURE_IN].path, c->file[LBD_CAPTURE_OUT].path, conf->snaplen,
		 conf->max_packets, conf->max_bytes);
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Turns the capture off, closes its files and logs why, once. Under c->lock. */
static void stop_locked(struct lbd_capture *c, enum lbd_capture_reason why, const char *detail)
{
	c->running = false;
	atomic_store_explicit(&c->tap.on, false, memory_order_relaxed);
	files_close(c);
	c->reason = why;
	snprintf(c->detail, sizeof(c->detail), "%s", detail ? detail : reason_text(why));
	c->stopped_ms = clock_mono_ms();
	for (int s = 0; s < LBD_CAPTURE_SIDES; s++) {
		c->done.packets[s] += c->now.packets[s];
		c->done.bytes[s] += c->now.bytes[s];
	}
	c->done.truncated += c->now.truncated;
	c->done.dropped += c->now.dropped;
	log_info("capture stopped (%s: %s): in %" PRIu64 " packets, out %" PRIu64
		 " packets, %" PRIu64 " dropped",
		 reason_name(why), c->detail, c->now.packets[LBD_CAPTURE_IN],
		 c->now.packets[LBD_CAPTURE_OUT], c->now.dropped);
	if (c->error[0] && why != LBD_CAPTURE_WRITE_ERROR)
		log_warn("capture: %s", c->error);
}

int lbd_capture_stop(struct lbd_capture *c, enum lbd_capture_reason why)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	if (c->running) {
		stop_locked(c, why, NULL);
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void lbd_capture_free(struct lbd_capture *c)
{
	if (!c)
		return;
	lbd_capture_stop(c, LBD_CAPTURE_SHUTDOWN);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- the packet path ---- */

/* Which limit one more record of caplen bytes would pass in f, if any. */
static enum lbd_capture_reason over_limit(const struct lbd_capture *c,
					  const struct capture_file *f, size_t caplen)
{
	if (f->packets >= c->conf.max_packets)
		return LBD_CAPTURE_MAX_PACKETS;
	if (f->bytes + RECORD_HEADER_LEN + caplen > c->conf.max_bytes)
		return LBD_CAPTURE_MAX_BYTES;
	return LBD_CAPTURE_NOT_STOPPED;
}

void lbd_capture_write(struct lbd_capture *c, enum lbd_capture_side side, const void *data,
		       size_t len)
{
	struct capture_file *f = &c->file[side];
	enum lbd_capture_reason limit;
	size_t caplen;
	struct pcap_pkthdr h;
	struct timespec ts;
	char detail[96];

	pthread_mutex_lock(&c->lock);
	if (!c->running)
		goto out;	/* stopped since the caller looked */
	caplen = len < c->conf.snaplen ? len : c->conf.snaplen;
	if ((limit = over_limit(c, f, caplen)) != LBD_CAPTURE_NOT_STOPPED) {
		c->now.dropped++;
		snprintf(detail, sizeof(detail), "the %s-file reached %s %" PRIu64,
			 side_name[side], reason_name(limit),
			 limit == LBD_CAPTURE_MAX_PACKETS ? c->conf.max_packets
							  : c->conf.max_bytes);
		stop_locked(c, limit, detail);
		goto out;
	}
	/* Under the lock, so that each file's timestamps never go back
	 * (unless the wall clock does). */
	clock_gettime(CLOCK_REALTIME, &ts);
	h.ts.tv_sec = ts.tv_sec;
	h.ts.tv_usec = ts.tv_nsec / 1000;
	h.caplen = (bpf_u_int32)caplen;
	h.len = (bpf_u_int32)len;
	pcap_dump((u_char *)f->dumper, &h, data);
	f->packets++;
	f->bytes += RECORD_HEADER_LEN + caplen;
	c->now.packets[side] = f->packets;
	c->now.bytes[side] = f->bytes;
	if (caplen < len)
		c->now.truncated++;
	/* pcap_dump reports nothing; a full disk shows on the stream. */
	if (ferror(f->fp)) {
		snprintf(c->error, sizeof(c->error), "writing %s failed: %s", f->path,
			 strerror(errno));
		stop_locked(c, LBD_CAPTURE_WRITE_ERROR, c->error);
	}
out:
	pthread_mutex_unlock(&c->lock);
}

/* ---- reporting ---- */

void lbd_capture_print_status(struct lbd_capture *c, FILE *out)
{
	const struct capture_counts *n = &c->now;
	uint64_t until;

	pthread_mutex_lock(&c->lock);
	if (!c->started_once) {
		fprintf(out, "state idle\n");
		goto out;
	}
	until = c->running ? clock_mono_ms() : c->stopped_ms;
	fprintf(out, "state %s\nreason %s\n", c->running ? "running" : "stopped",
		reason_name(c->reason));
	if (!c->running)
		fprintf(out, "detail %s\n", c->detail);
	if (c->error[0] && c->reason != LBD_CAPTURE_WRITE_ERROR)
		fprintf(out, "write_error %s\n", c->error);
	fprintf(out,
		"in_file %s.in.pcap\nout_file %s.out.pcap\nsnaplen %" PRIu32
		"\nmax_packets %" PRIu64 "\nmax_bytes %" PRIu64 "\nseconds %" PRIu64 ".%03" PRIu64
		"\nin_packets %" PRIu64 "\nin_bytes %" PRIu64 "\nout_packets %" PRIu64
		"\nout_bytes %" PRIu64 "\ntruncated %" PRIu64 "\ndropped %" PRIu64 "\n",
		c->conf.prefix, c->conf.prefix, c->conf.snaplen, c->conf.max_packets,
		c->conf.max_bytes, (until - c->started_ms) / 1000, (until - c->started_ms) % 1000,
		n->packets[LBD_CAPTURE_IN], n->bytes[LBD_CAPTURE_IN], n->packets[LBD_CAPTURE_OUT],
		n->bytes[LBD_CAPTURE_OUT], n->truncated, n->dropped);
out:
	pthread_mutex_unlock(&c->lock);
}

void lbd_capture_print_stats(struct lbd_capture *c, FILE *out)
{
	struct capture_counts t;

	pthread_mutex_lock(&c->lock);
	t = c->done;
	if (c->running) {
		for (int s = 0; s < LBD_CAPTURE_SIDES; s++) {
			t.packets[s] += c->now.packets[s];
			t.bytes[s] += c->now.bytes[s];
		}
		t.truncated += c->now.truncated;
		t.dropped += c->now.dropped;
	}
	fprintf(out,
		"capture_running %d\ncapture_starts %" PRIu64 "\ncapture_in_packets %" PRIu64
		"\ncapture_in_bytes %" PRIu64 "\ncapture_out_packets %" PRIu64
		"\ncapture_out_bytes %" PRIu64 "\ncapture_truncated %" PRIu64
		"\ncapture_dropped %" PRIu64 "\n",
		c->running ? 1 : 0, c->starts, t.packets[LBD_CAPTURE_IN], t.bytes[LBD_CAPTURE_IN],
		t.packets[LBD_CAPTURE_OUT], t.bytes[LBD_CAPTURE_OUT], t.truncated, t.dropped);
	pthread_mutex_unlock(&c->lock);
}

/* ---- the control command ---- */

static void print_status(void *c, FILE *out) { lbd_capture_print_status(c, out); }

/* The capture's status as fields of the reply. */
static void reply_status(struct lbd_capture *c, struct lbd_reply *r)
{
	lbd_reply_kv_printer(r, print_status, c);
}

static int cmd_start(struct lbd_capture *c, const char *args, struct lbd_reply *r)
{
	struct lbd_capture_conf conf;
	char err[256];

	if (lbd_capture_conf_parse(args, &conf, err, sizeof(err)) < 0)
		return lbd_reply_error(r, "capture start: %s; usage: capture start PREFIX "
					  "[max_packets=N] [max_bytes=N] [snaplen=N]", err);
	if (lbd_capture_start(c, &conf, err, sizeof(err)) < 0)
		return lbd_reply_error(r, "capture start: %s", err);
	lbd_reply_message(r, "capturing to %s.in.pcap and %s.out.pcap (snaplen %" PRIu32
			     ", max_packets %" PRIu64 ", max_bytes %" PRIu64 ")",
			  conf.prefix, conf.prefix, conf.snaplen, conf.max_packets, conf.max_bytes);
	return 0;
}

static int cmd_stop(struct lbd_capture *c, const char *args, struct lbd_reply *r)
{
	if (args)
		return lbd_reply_error(r, "capture stop takes no arguments, not '%s'", args);
	if (lbd_capture_stop(c, LBD_CAPTURE_BY_OPERATOR) < 0) {
		reply_status(c, r);
		return lbd_reply_error(r, "no capture is running");
	}
	lbd_reply_message(r, "capture stopped");
	reply_status(c, r);
	return 0;
}

int lbd_cmd_capture(struct lbd *d, const char *arg, struct lbd_reply *r)
{
	char word[16];
	const char *rest = NULL;
	size_t len = arg ? strcspn(arg, " \t") : 0;

	if (len >= sizeof(word))
		return lbd_reply_error(r, "unknown capture command '%.*s' (start, stop, status)",
				       (int)len, arg);
	memcpy(word, arg ? arg : "", len);
	word[len] = '\0';
	if (arg && arg[len]) {
		rest = arg + len + strspn(arg + len, " \t");
		if (!*rest)
			rest = NULL;
	}
	if (len == 0 || strcmp(word, "status") == 0) {
		if (rest)
			return lbd_reply_error(r, "capture status takes no arguments, not '%s'", rest);
		reply_status(d->capture, r);
		return 0;
	}
	if (strcmp(word, "start") == 0) {
		/* Every packet of a capture crosses NFQUEUE: the kernel fast
		 * path pauses first, so none bypasses it. */
		int rc;

		lbd_fastpath_set_enabled(d->fastpath, 0);
		rc = cmd_start(d->capture, rest, r);
		if (rc < 0)
			lbd_fastpath_set_enabled(d->fastpath, 1);
		return rc;
	}
	if (strcmp(word, "stop") == 0) {
		int rc = cmd_stop(d->capture, rest, r);

		lbd_fastpath_set_enabled(d->fastpath, !atomic_load(&lbd_capture_tap(d->capture)->on));
		return rc;
	}
	return lbd_reply_error(r, "unknown capture command '%s' (start, stop, status)", word);
}
