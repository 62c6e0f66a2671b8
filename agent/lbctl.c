/*
 * lbctl: the operator's client for lbd's control socket.
 *
 *   lbctl [-s SOCKET] [--json] COMMAND [ARGS...]
 *
 * Sends the command line and reads the answer: JSON lines, rows first and a
 * status line last (lbd/lbd_reply.h). By default it prints tables with
 * headers for rows and "name value" lines for the status line's fields;
 * with --json one JSON document: the status line's object with the rows
 * under the command's name. Rows are printed as they arrive, so a large
 * `conns` needs no memory for the whole table.
 *
 * Exit status, from the answer's "status": 0 ok, 1 error (lbd said why),
 * 2 lbd cannot be reached or the answer is cut short or unreadable. The
 * socket defaults to $LBCTL_SOCKET, then /run/lbd.sock.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lb_version.h"


/* Columns of the tables lbd's row commands answer with; others get every key. */
struct column {
	const char *key, *head;
	int width;		/* at least; conns streams with these widths */
	bool left;
};

static const struct column conn_cols[] = {
	{ "client", "CLIENT", 21, true }, { "vip", "VIP", 21, true },
	{ "backend", "BACKEND", 21, true }, { "state", "STATE", 11, true },
	{ "expires_ms", "EXPIRES_MS", 10, false }, { "pkts_orig", "PKTS_IN", 8, false },
	{ "pkts_reply", "PKTS_OUT", 8, false }, { "bytes_orig", "BYTES_IN", 10, false },
	{ "bytes_reply", "BYTES_OUT", 10, false }, { NULL, NULL, 0, false },
};

static const struct column backend_cols[] = {
	{ "service", "SERVICE", 0, true }, { "backend", "BACKEND", 0, true },
	{ "weight", "WEIGHT", 0, false }, { "state", "STATE", 0, true },
	{ "health", "HEALTH", 0, true }, { "active", "ACTIVE", 0, false },
	{ "inactive", "INACTIVE", 0, false }, { "conns", "CONNS", 0, false },
	{ "pkts_in", "PKTS_IN", 0, false }, { "bytes_in", "BYTES_IN", 0, false },
	{ "pkts_out", "PKTS_OUT", 0, false }, { "bytes_out", "BYTES_OUT", 0, false },
	{ "check", "CHECK", 0, true }, { "last_error", "LAST_ERROR", 0, true },
	{ NULL, NULL, 0, false },
};

struct view {
	const char *command;
	bool json;
	bool stream;			/* print rows as they come (conns) */
	const struct column *cols;
	json_t *rows;			/* buffered rows when not streaming */
	size_t nrows;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lbctl [-s SOCKET] [-j|--json] [--rate[=SECONDS]] COMMAND [ARGS...]\n"
		   "       lbctl --help | --version\n"
		   "  -s, --socket PATH  lbd's control socket ($LBCTL_SOCKET, /run/lbd.sock)\n"
		   "  -j, --json         print the answer as one JSON document\n"
		   "      --rate[=SECONDS]  stats, sync: each counter's change per second,\n"
		   "                     measured over SECONDS (1)\n"
		   "commands (`lbctl help` asks lbd for the full list):\n"
		   "  stats | conns [service VIP:PORT] [backend ADDR[:PORT]] [state S] [client ADDR[:PORT]]\n"
		   "  backends | reload | role [master|backup|fault] | ready | sync | help\n"
		   "  weight VIP:PORT BACKEND[:PORT] N | drain|undrain|remove VIP:PORT BACKEND[:PORT]\n"
		   "  add VIP:PORT BACKEND[:PORT] [weight=N] [max_conns=N] | enable|disable VIP:PORT\n"
		   "  capture [status] | capture start PREFIX [max_packets=N] [max_bytes=N] [snaplen=N]\n"
		   "  | capture stop\n"
		   "exit status: 0 ok, 1 lbd answered with an error, 2 no answer or a cut-short one\n");
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 30 };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "lbctl: socket path too long: %s\n", path);
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

/* Sends the words joined by spaces and a newline; lbd judges the length. */
static int send_command(int fd, int argc, char **argv)
{
	size_t len = 1;
	char *line, *p;
	int rc = 0;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	line = p = malloc(len);
	if (!line)
		return -1;
	for (int i = 0; i < argc; i++)
		p += sprintf(p, "%s%s", i ? " " : "", argv[i]);
	*p++ = '\n';
	for (size_t off = 0; off < (size_t)(p - line);) {
		ssize_t n = write(fd, line + off, (size_t)(p - line) - off);

		if (n <= 0) {
			/* lbd stops reading an over-long line and answers. */
			if (errno != EPIPE && errno != ECONNRESET)
				rc = -1;
			break;
		}
		off += (size_t)n;
	}
	free(line);
	shutdown(fd, SHUT_WR);
	return rc;
}

/* A value as a table cell or a "name value" line. */
static void cell_text(const json_t *v, char *buf, size_t len)
{
	if (!v || json_is_null(v))
		snprintf(buf, len, "-");
	else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "1");
	else if (json_is_false(v))
		snprintf(buf, len, "0");
	else if (json_is_real(v))
		snprintf(buf, len, "%g", json_real_value(v));
	else
		snprintf(buf, len, "?");
}

static void print_row(const struct column *cols, const int *width, const json_t *row)
{
	char cell[512];

	for (int c = 0; cols[c].key; c++) {
		cell_text(json_object_get(row, cols[c].key), cell, sizeof(cell));
		printf(cols[c + 1].key ? (cols[c].left ? "%-*s  " : "%*s  ") :
			 (cols[c].left ? "%-*s" : "%*s"), cols[c + 1].key || !cols[c].left ? width[c] : 0,
		       cell);
	}
	printf("\n");
}

static void print_header(const struct column *cols, const int *width)
{
	for (int c = 0; cols[c].key; c++)
		printf(cols[c + 1].key ? (cols[c].left ? "%-*s  " : "%*s  ") : "%*s",
		       cols[c + 1].key || !cols[c].left ? width[c] : 0, cols[c].head);
	printf("\n");
}

/* Columns for an unknown table: every key of its first row. */
static struct column *generic_columns(const json_t *row)
{
	struct column *cols = calloc(json_object_size(row) + 1, sizeof(*cols));
	const char *key;
	json_t *v;
	int c = 0;

	if (!cols)
		return NULL;
	json_object_foreach((json_t *)row, key, v) {
		cols[c].key = key;
		cols[c].head = key;
		cols[c].left = !json_is_number(v);
		c++;
	}
	return cols;
}

static void print_table(struct view *v)
{
	const struct column *cols = v->cols;
	struct column *own = NULL;
	int width[64] = { 0 };
	char cell[512];
	size_t i;
	json_t *row;

	if (v->nrows == 0)
		return;
	if (!cols)
		cols = own = generic_columns(json_array_get(v->rows, 0));
	if (!cols)
		return;
	for (int c = 0; cols[c].key && c < 64; c++)
		width[c] = cols[c].width > (int)strlen(cols[c].head) ? cols[c].width
								     : (int)strlen(cols[c].head);
	json_array_foreach(v->rows, i, row)
		for (int c = 0; cols[c].key && c < 64; c++) {
			cell_text(json_object_get(row, cols[c].key), cell, sizeof(cell));
			if ((int)strlen(cell) > width[c])
				width[c] = (int)strlen(cell);
		}
	print_header(cols, width);
	json_array_foreach(v->rows, i, row)
		print_row(cols, width, row);
	free(own);
}

/* One row line from lbd. */
static void on_row(struct view *v, json_t *row)
{
	char *text;

	if (v->json && v->cols) {
		text = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s%s", v->nrows ? ",\n  " : "\n  ", text ? text : "null");
		free(text);
	} else if (v->stream) {
		int width[16] = { 0 };

		for (int c = 0; v->cols[c].key; c++)
			width[c] = v->cols[c].width;
		if (v->nrows == 0)
			print_header(v->cols, width);
		print_row(v->cols, width, row);
	} else {
		json_array_append(v->rows, row);
	}
	v->nrows++;
}

/* The status line; returns the exit status. */
static int on_status(struct view *v, json_t *st)
{
	bool ok = strcmp(json_string_value(json_object_get(st, "status")), "ok") == 0;
	const char *key;
	json_t *val;
	char cell[4096];

	if (v->json && v->cols) {
		char *text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		/* The rows' array was opened before the first row came. */
		printf("\n],\n  %s\n", text ? text + 1 + strspn(text + 1, "\n ") : "}");
		free(text);
		return ok ? 0 : 1;
	}
	if (v->json) {
		char *text;

		if (v->nrows)
			json_object_set(st, "rows", v->rows);
		text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "{}");
		free(text);
		return ok ? 0 : 1;
	}
	if (!v->stream)
		print_table(v);
	if (json_is_string(json_object_get(st, "warning")))
		fprintf(stderr, "warning: %s\n", json_string_value(json_object_get(st, "warning")));
	if (!ok) {
		val = json_object_get(st, "error");
		fprintf(stderr, "error: %s\n", json_is_string(val) ? json_string_value(val) : "?");
	} else if (json_is_string(json_object_get(st, "message"))) {
		/* The message says it all; the fields are for --json. */
		printf("ok: %s\n", json_string_value(json_object_get(st, "message")));
		return 0;
	}
	json_object_foreach(st, key, val) {
		if (!strcmp(key, "status") || !strcmp(key, "error") || !strcmp(key, "message") ||
		    !strcmp(key, "warning") || (v->cols && !strcmp(key, "count")))
			continue;
		cell_text(val, cell, sizeof(cell));
		if (!strcmp(key, "help"))
			printf("%s\n", cell);
		else
			printf("%s %s\n", key, cell);
	}
	return ok ? 0 : 1;
}

/* Reads the answer line by line; returns the exit status. */
static int read_answer(int fd, struct view *v)
{
	FILE *in = fdopen(fd, "r");
	char *line = NULL;
	size_t cap = 0;
	int rc = -1;

	if (!in)
		return 2;
	/* conns and backends stream their rows under the command's name. */
	if (v->json && v->cols)
		printf("{\"%s\": [", v->command);
	while (rc < 0 && getline(&line, &cap, in) > 0) {
		json_error_t jerr;
		json_t *obj = json_loads(line, 0, &jerr);

		if (!json_is_object(obj)) {
			fprintf(stderr, "lbctl: unreadable answer from lbd: %s\n", jerr.text);
			json_decref(obj);
			rc = 2;
			break;
		}
		if (json_is_string(json_object_get(obj, "status")))
			rc = on_status(v, obj);
		else
			on_row(v, obj);
		json_decref(obj);
	}
	if (rc < 0) {
		if (v->json && v->cols)
			printf("\n]}\n");
		fprintf(stderr, "lbctl: the answer was cut short after %zu rows%s%s\n", v->nrows,
			ferror(in) ? ": " : "", ferror(in) ? strerror(errno) : "");
		rc = 2;
	}
	free(line);
	fclose(in);
	return rc;
}

/* The status line of one command with no rows (stats), or NULL (said why). */
static json_t *fetch_status(const char *path, int argc, char **argv)
{
	int fd = connect_to(path);
	FILE *in;
	char *line = NULL;
	size_t cap = 0;
	json_t *st = NULL;

	if (fd < 0)
		return NULL;
	if (send_command(fd, argc, argv) < 0 || !(in = fdopen(fd, "r"))) {
		close(fd);
		return NULL;
	}
	while (!st && getline(&line, &cap, in) > 0) {
		json_t *obj = json_loads(line, 0, NULL);

		if (json_is_string(json_object_get(obj, "status")))
			st = obj;
		else
			json_decref(obj);
	}
	if (!st)
		fprintf(stderr, "lbctl: no answer from lbd\n");
	free(line);
	fclose(in);
	return st;
}

/*
 * --rate: asks twice, seconds apart, and prints every counter's change per
 * second (as ipvsadm --rate); gauges (conns, *_waiting) are rates too, read
 * them as such. Only for answers without rows: stats, sync.
 */
static int show_rates(const char *path, int argc, char **argv, unsigned seconds, bool json)
{
	json_t *a = fetch_status(path, argc, argv), *b = NULL, *out = json_object(), *v;
	const char *key;
	int rc = 2;

	if (!a || !out)
		goto done;
	if (strcmp(json_string_value(json_object_get(a, "status")), "ok") != 0) {
		fprintf(stderr, "error: %s\n", json_string_value(json_object_get(a, "error")));
		rc = 1;
		goto done;
	}
	sleep(seconds);
	b = fetch_status(path, argc, argv);
	if (!b)
		goto done;
	json_object_foreach(b, key, v) {
		json_t *was = json_object_get(a, key);

		if (json_is_integer(v) && json_is_integer(was))
			json_object_set_new(out, key, json_real((double)(json_integer_value(v) -
								 json_integer_value(was)) /
								seconds));
	}
	if (json) {
		char *text;

		json_object_set_new(out, "interval_s", json_integer(seconds));
		json_object_set_new(out, "status", json_string("ok"));
		text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "{}");
		free(text);
	} else {
		json_object_foreach(out, key, v)
			printf("%s/s %.1f\n", key, json_real_value(v));
	}
	rc = 0;
done:
	json_decref(a);
	json_decref(b);
	json_decref(out);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },	    { "version", no_argument, NULL, 'V' },
		{ "rate", optional_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("LBCTL_SOCKET");
	struct view v = { 0 };
	unsigned rate = 0;
	int o, fd, rc;

	if (!path)
		path = "/run/lbd.sock";
	while ((o = getopt_long(argc, argv, "+s:jhV", opts, NULL)) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'j': v.json = true; break;
		case 'r':
			rate = 1;
			if (optarg && (sscanf(optarg, "%u", &rate) != 1 || rate == 0 || rate > 3600)) {
				fprintf(stderr, "lbctl: --rate '%s': seconds from 1 to 3600\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("lbctl %s\n", LB_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	v.command = argv[optind];
	if (rate) {
		if (strcmp(v.command, "stats") != 0 && strcmp(v.command, "sync") != 0) {
			fprintf(stderr, "lbctl: --rate is for stats and sync, not '%s'\n", v.command);
			return 2;
		}
		return show_rates(path, argc - optind, argv + optind, rate, v.json);
	}
	v.stream = strcmp(v.command, "conns") == 0;
	v.cols = v.stream ? conn_cols : strcmp(v.command, "backends") == 0 ? backend_cols : NULL;
	v.rows = json_array();
	fd = connect_to(path);
	if (fd < 0)
		return 2;
	if (send_command(fd, argc - optind, argv + optind) < 0) {
		fprintf(stderr, "lbctl: sending the command: %s\n", strerror(errno));
		close(fd);
		return 2;
	}
	rc = read_answer(fd, &v);
	json_decref(v.rows);
	return rc;
}
