/*
 * The answer to one control command (lbd_reply.h): rows buffered and sent
 * in batches, then one status line built with jansson.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd_reply.h"
#include "num.h"

struct lbd_reply {
	int fd;
	json_t *status;		/* the last line */
	bool failed;		/* an error was set */
	bool broken;		/* a write failed: send nothing more */
	char *buf;		/* rows not sent yet */
	size_t len, cap;
};

struct lbd_reply *lbd_reply_new(int fd)
{
	struct lbd_reply *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = fd;
	r->status = json_object();
	if (!r->status) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	return r;
}

static void write_all(struct lbd_reply *r, const char *p, size_t len)
{
	while (len && !r->broken) {
		ssize_t n = write(r->fd, p, len);

		if (n <= 0) {
			r->broken = true;	/* gone, or stalled past the send timeout */
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

void lbd_reply_flush(struct lbd_reply *r)
{
	write_all(r, r->buf, r->len);
	r->len = 0;
}

static void append(struct lbd_reply *r, const char *s, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 65536;
		char *p;

		while (cap < r->len + n + 1)
			cap *= 2;
		p = realloc(r->buf, cap);
		if (!p) {
			r->broken = true;	/* the status line will be missing: truncated */
			return;
		}
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
	r->buf[r->len++] = '\n';
}

void lbd_reply_row(struct lbd_reply *r, json_t *row)
{
	char *text;

	if (!row)
		return;
	text = r->broken ? NULL : json_dumps(row, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text)
		append(r, text, strlen(text));
	free(text);
	json_decref(row);
}

void lbd_reply_finish(struct lbd_reply *r)
{
	char *text;

	if (!r)
		return;
	json_object_set_new(r->status, "status", json_string(r->failed ? "error" : "ok"));
	text = json_dumps(r->status, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	/* Without memory for the status line the client sees a truncated answer. */
	if (text && !r->broken)
		append(r, text, strlen(text));
	lbd_reply_flush(r);
	free(text);
	free(r->buf);
	json_decref(r->status);
	free(r);
}

void lbd_reply_u64(struct lbd_reply *r, const char *key, uint64_t v)
{
	if (!r)
		return;
	/* JSON numbers are doubles to many readers; jansson's are 64-bit signed. */
	json_object_set_new(r->status, key, json_integer((json_int_t)(v > INT64_MAX ? INT64_MAX : v)));
}

void lbd_reply_str(struct lbd_reply *r, const char *key, const char *v)
{
	if (!r)
		return;
	json_object_set_new(r->status, key, json_string(v));
}

void lbd_reply_bool(struct lbd_reply *r, const char *key, bool v)
{
	json_object_set_new(r->status, key, json_boolean(v));
}

void lbd_reply_kv_printer(struct lbd_reply *r, void (*print)(void *obj, FILE *out), void *obj)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		lbd_reply_error(r, "out of memory");
		return;
	}
	print(obj, f);
	fclose(f);
	lbd_reply_kv_lines(r, text);
	free(text);
}

void lbd_reply_kv_lines(struct lbd_reply *r, const char *text)
{
	while (text && *text) {
		size_t len = strcspn(text, "\n"), klen = strcspn(text, " \n");
		char key[128], val[512];
		uint64_t n;

		if (klen < len && klen < sizeof(key) && len - klen - 1 < sizeof(val)) {
			memcpy(key, text, klen);
			key[klen] = '\0';
			memcpy(val, text + klen + 1, len - klen - 1);
			val[len - klen - 1] = '\0';
			if (num_parse_u64(val, 0, UINT64_MAX, &n) == 0)
				lbd_reply_u64(r, key, n);
			else
				lbd_reply_str(r, key, val);
		}
		text += len + (text[len] == '\n');
	}
}

static void set_text(struct lbd_reply *r, const char *key, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_object_set_new(r->status, key, json_string(msg));
}

int lbd_reply_error(struct lbd_reply *r, const char *fmt, ...)
{
	va_list ap;

	if (!r || r->failed)
		return -1;
	r->failed = true;
	va_start(ap, fmt);
	set_text(r, "error", fmt, ap);
	va_end(ap);
	return -1;
}

void lbd_reply_message(struct lbd_reply *r, const char *fmt, ...)
{
	va_list ap;

	if (!r)
		return;
	va_start(ap, fmt);
	set_text(r, "message", fmt, ap);
	va_end(ap);
}

void lbd_reply_warning(struct lbd_reply *r, const char *fmt, ...)
{
	va_list ap;

	if (!r)
		return;
	va_start(ap, fmt);
	set_text(r, "warning", fmt, ap);
	va_end(ap);
}

bool lbd_reply_failed(const struct lbd_reply *r)
{
	return r->failed;
}

bool lbd_reply_broken(const struct lbd_reply *r)
{
	return r->broken;
}
