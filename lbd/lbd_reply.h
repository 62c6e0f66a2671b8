/*
 * lbd_reply: the answer to one control command (reply.c), as lbctl reads it.
 *
 * The control protocol: the client sends one line "COMMAND [ARGS]\n" (at
 * most LBD_REPLY_LINE_MAX bytes with the newline); lbd answers with JSON
 * objects, one per line, and closes:
 *
 *   {"client": "198.18.0.1:40000", ...}      zero or more rows (conns, backends)
 *   {"status": "ok", "pkts_orig": 12, ...}   the last line: always has "status"
 *
 * "status" is "ok" or "error" (then "error" says why, naming the bad value);
 * only the last line has it, so a client that sees the connection end
 * without it knows the answer was cut short. Rows are written as they are
 * produced, so a long table is never held whole in memory; a client that
 * stops reading for LBD_REPLY_SEND_TIMEOUT_S loses the rest, and the missing
 * last line tells it so. Private to lbd/.
 */
#ifndef LBD_REPLY_H
#define LBD_REPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define LBD_REPLY_LINE_MAX 1024
#define LBD_REPLY_SEND_TIMEOUT_S 5

struct lbd_reply;

/* A reply writing to fd (not owned). NULL and errno on failure. */
struct lbd_reply *lbd_reply_new(int fd);

/* Writes what is buffered and the status line, and frees. NULL is fine. */
void lbd_reply_finish(struct lbd_reply *r);

/*
 * Sets a field of the status line (the last call for a key wins). These,
 * and the error, message and warning calls, do nothing when r is NULL (a
 * command run by a signal, which only logs).
 */
void lbd_reply_u64(struct lbd_reply *r, const char *key, uint64_t v);
void lbd_reply_str(struct lbd_reply *r, const char *key, const char *v);
void lbd_reply_bool(struct lbd_reply *r, const char *key, bool v);

/*
 * Reads "name value" lines (value: the rest of the line) into fields of the
 * status line, values that are decimal numbers as numbers: the form the
 * counters of the sync channel and the capture are printed in.
 */
void lbd_reply_kv_lines(struct lbd_reply *r, const char *text);

/* Runs a "name value" printer on obj and reads what it wrote as above. */
void lbd_reply_kv_printer(struct lbd_reply *r, void (*print)(void *obj, FILE *out), void *obj);

/* Marks the reply failed with a message (printf); the first error wins. Returns -1. */
__attribute__((format(printf, 2, 3)))
int lbd_reply_error(struct lbd_reply *r, const char *fmt, ...);

/* A message for people ("3 services"); lbctl prints it after "ok: ". */
__attribute__((format(printf, 2, 3)))
void lbd_reply_message(struct lbd_reply *r, const char *fmt, ...);

/* A warning that does not make the command fail. */
__attribute__((format(printf, 2, 3)))
void lbd_reply_warning(struct lbd_reply *r, const char *fmt, ...);

bool lbd_reply_failed(const struct lbd_reply *r);

/*
 * Appends a row (taking the reference). Buffered only: safe to call with an
 * engine lock held. lbd_reply_flush() sends what is buffered.
 */
void lbd_reply_row(struct lbd_reply *r, json_t *row);
void lbd_reply_flush(struct lbd_reply *r);

/* True once a write failed (the client went away or stopped reading). */
bool lbd_reply_broken(const struct lbd_reply *r);

#endif
