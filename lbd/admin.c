/*
 * The runtime API (lbd_admin.h):
 *
 *   weight  VIP:PORT BACKEND[:PORT] N
 *   drain   VIP:PORT BACKEND[:PORT]     no new connections; established continue
 *   undrain VIP:PORT BACKEND[:PORT]
 *   add     VIP:PORT BACKEND[:PORT] [weight=N] [max_conns=N]
 *   remove  VIP:PORT BACKEND[:PORT]     drains, then freed when idle
 *   enable  VIP:PORT
 *   disable VIP:PORT                    new connections refused
 *
 * A backend's port defaults to the service's. Every error names the value
 * that was wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lbd.h"
#include "lbd_admin.h"
#include "lbd_cmd.h"
#include "lbd_loop.h"
#include "lbd_reply.h"
#include "lbd_rules.h"
#include "log.h"
#include "num.h"

static const struct {
	const char *name;
	enum lbd_admin_kind kind;
	uint32_t value;
	int backend;		/* takes a BACKEND argument */
	const char *usage;
} commands[] = {
	{ "weight", LBD_ADMIN_WEIGHT, 0, 1, "weight VIP:PORT BACKEND[:PORT] N" },
	{ "drain", LBD_ADMIN_DRAIN, 1, 1, "drain VIP:PORT BACKEND[:PORT]" },
	{ "undrain", LBD_ADMIN_DRAIN, 0, 1, "undrain VIP:PORT BACKEND[:PORT]" },
	{ "add", LBD_ADMIN_ADD, 0, 1, "add VIP:PORT BACKEND[:PORT] [weight=N] [max_conns=N]" },
	{ "remove", LBD_ADMIN_REMOVE, 0, 1, "remove VIP:PORT BACKEND[:PORT]" },
	{ "enable", LBD_ADMIN_ENABLE, 1, 0, "enable VIP:PORT" },
	{ "disable", LBD_ADMIN_ENABLE, 0, 0, "disable VIP:PORT" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

int lbd_admin_is_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(name, commands[i].name) == 0)
			return 1;
	return 0;
}

static int parse_u32(struct lbd_reply *r, const char *what, const char *text, uint64_t max,
		     uint32_t *out)
{
	uint64_t v;

	if (num_parse_u64(text, 0, max, &v) < 0)
		return lbd_reply_error(r, "%s '%s' is not a number from 0 to %llu", what, text,
				       (unsigned long long)max);
	*out = (uint32_t)v;
	return 0;
}

/* add's options: weight=N max_conns=N. */
static int parse_add_option(struct lbd_reply *r, const char *tok, struct lb_backend_conf *be)
{
	if (strncmp(tok, "weight=", 7) == 0)
		return parse_u32(r, "weight", tok + 7, 65535, &be->weight);
	if (strncmp(tok, "max_conns=", 10) == 0)
		return parse_u32(r, "max_conns", tok + 10, 1 << 26, &be->max_conns);
	return lbd_reply_error(r, "unknown option '%s' (weight=N, max_conns=N)", tok);
}

/* Splits args into the op; 0 or -1 with the reply's error set. */
static int parse(struct lbd_reply *r, size_t ci, char *args, struct lbd_admin_op *op)
{
	char *save = NULL, *svc = strtok_r(args, " \t", &save), *be = NULL, *tok;

	op->kind = commands[ci].kind;
	op->value = commands[ci].value;
	op->backend.weight = 1;
	if (!svc)
		return lbd_reply_error(r, "usage: %s", commands[ci].usage);
	if (lb_addr_parse_port(&op->ref.vip, &op->ref.vport, svc) < 0 || !op->ref.vport)
		return lbd_reply_error(r, "service '%s' is not VIP:PORT", svc);
	if (commands[ci].backend) {
		be = strtok_r(NULL, " \t", &save);
		if (!be)
			return lbd_reply_error(r, "usage: %s", commands[ci].usage);
		if (lb_addr_parse_port(&op->ref.addr, &op->ref.port, be) < 0)
			return lbd_reply_error(r, "backend '%s' is not ADDRESS or ADDRESS:PORT", be);
		if (!op->ref.port)
			op->ref.port = op->ref.vport;
		op->backend.addr = op->ref.addr;
		op->backend.port = op->ref.port;
	}
	if (op->kind == LBD_ADMIN_WEIGHT) {
		tok = strtok_r(NULL, " \t", &save);
		if (!tok)
			return lbd_reply_error(r, "usage: %s", commands[ci].usage);
		if (parse_u32(r, "weight", tok, 65535, &op->value) < 0)
			return -1;
	}
	while ((tok = strtok_r(NULL, " \t", &save))) {
		if (op->kind != LBD_ADMIN_ADD)
			return lbd_reply_error(r, "unexpected argument '%s'; usage: %s", tok,
					       commands[ci].usage);
		if (parse_add_option(r, tok, &op->backend) < 0)
			return -1;
	}
	return 0;
}

static int engine_error(struct lbd_reply *r, int rc, const char *svc, const char *be)
{
	switch (rc) {
	case -ESRCH:
		return lbd_reply_error(r, "no service %s", svc);
	case -ENOENT:
		return lbd_reply_error(r, "no backend %s in service %s", be, svc);
	case -EEXIST:
		return lbd_reply_error(r, "backend %s is already in service %s", be, svc);
	case -EINVAL:
		return lbd_reply_error(r, "backend %s does not fit service %s (address family)",
				       be, svc);
	case -ENOSPC:
		return lbd_reply_error(r, "no room for another backend");
	default:
		return lbd_reply_error(r, "%s", lbd_cmd_loop_error(rc));
	}
}

int lbd_admin_command(struct lbd *d, const char *name, const char *arg, struct lbd_reply *r)
{
	struct lbd_admin_op op = { 0 };
	char args[LBD_REPLY_LINE_MAX], svc[64] = "", be[64] = "";
	size_t ci;
	int rc;

	for (ci = 0; ci < NCOMMANDS && strcmp(name, commands[ci].name) != 0; ci++)
		;
	if (ci == NCOMMANDS)
		return lbd_reply_error(r, "unknown command '%s'", name);
	snprintf(args, sizeof(args), "%s", arg ? arg : "");
	if (parse(r, ci, args, &op) < 0)
		return -1;
	lb_addr_format_port(&op.ref.vip, op.ref.vport, svc, sizeof(svc));
	if (commands[ci].backend)
		lb_addr_format_port(&op.ref.addr, op.ref.port, be, sizeof(be));
	rc = lbd_loop_admin(d->loop, &op);
	if (rc < 0)
		return engine_error(r, rc, svc, be);
	/* A new backend needs its reply rule; a removed one keeps it until freed. */
	if (op.kind == LBD_ADMIN_ADD && lbd_rules_install(&d->tools, &d->conf, d->engine) < 0)
		return lbd_reply_error(r, "backend added but rules not updated (see lbd's log)");
	if (op.kind == LBD_ADMIN_WEIGHT)
		log_info("runtime: weight %s %s %u (until the next reload)", svc, be, op.value);
	else
		log_info("runtime: %s %s%s%s (until the next reload)", name, svc, be[0] ? " " : "",
			 be);
	if (op.kind == LBD_ADMIN_WEIGHT)
		lbd_reply_message(r, "weight %s %s %u", svc, be, op.value);
	else
		lbd_reply_message(r, "%s %s%s%s", name, svc, be[0] ? " " : "", be);
	lbd_reply_str(r, "service", svc);
	if (be[0])
		lbd_reply_str(r, "backend", be);
	return 0;
}
