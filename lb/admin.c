/*
 * Runtime changes to the services (lb_admin.h). The engine keeps no copy of
 * its configuration, so each change rebuilds one from the live services
 * (lb_service and lb_backend hold every setting), edits it and hands it to
 * lb_engine_set_services(): weights, additions and removals then take the
 * same path as a reload, with its matching by identity, its draining and its
 * scheduler rebuild, and nothing new to get wrong.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "lb_admin.h"

/* The configuration the engine runs, as lb_engine_set_services() takes it. */
struct svc_copy {
	struct lb_service_conf *svcs;
	size_t n;
};

static void copy_free(struct svc_copy *c)
{
	for (size_t i = 0; c->svcs && i < c->n; i++)
		free(c->svcs[i].backends);
	free(c->svcs);
}

/* One spare backend slot per service, for an addition. svc_lock held. */
static int copy_services(const struct lb_svcset *set, struct svc_copy *c)
{
	c->n = set ? set->n : 0;
	c->svcs = calloc(c->n ? c->n : 1, sizeof(*c->svcs));
	if (!c->svcs)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		const struct lb_service *s = &set->svcs[i];
		struct lb_service_conf *sc = &c->svcs[i];

		sc->vip = s->vip;
		sc->port = s->port;
		memcpy(sc->scheduler, s->scheduler, sizeof(sc->scheduler));
		sc->persistence_s = s->persistence_ms / 1000u;
		sc->disabled = s->disabled;
		sc->backends = calloc(s->nbackends + 1, sizeof(*sc->backends));
		if (!sc->backends)
			return -ENOMEM;
		for (size_t b = 0; b < s->nbackends; b++)
			sc->backends[b] = s->backends[b]->conf;
		sc->nbackends = s->nbackends;
	}
	return 0;
}

static int snapshot(struct lb_engine *e, struct svc_copy *c)
{
	int rc;

	pthread_rwlock_rdlock(&e->svc_lock);
	rc = copy_services(e->svcset, c);
	pthread_rwlock_unlock(&e->svc_lock);
	if (rc < 0)
		copy_free(c);
	return rc;
}

static struct lb_service_conf *find_svc(struct svc_copy *c, const struct lb_backend_ref *ref)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->svcs[i].port == ref->vport && lb_addr_equal(&c->svcs[i].vip, &ref->vip))
			return &c->svcs[i];
	return NULL;
}

static ssize_t find_be(const struct lb_service_conf *s, const struct lb_addr *addr,
		       uint16_t port)
{
	for (size_t b = 0; b < s->nbackends; b++)
		if (s->backends[b].port == port && lb_addr_equal(&s->backends[b].addr, addr))
			return (ssize_t)b;
	return -1;
}

enum edit { EDIT_WEIGHT, EDIT_DRAIN, EDIT_ADD, EDIT_REMOVE, EDIT_ENABLE };

/* Applies one edit to the copy; 0 or a negative errno (nothing applied). */
static int edit_copy(struct svc_copy *c, const struct lb_backend_ref *ref, enum edit op,
		     uint32_t value, const struct lb_backend_conf *add)
{
	struct lb_service_conf *s = find_svc(c, ref);
	ssize_t b;

	if (!s)
		return -ESRCH;
	if (op == EDIT_ENABLE) {
		s->disabled = !value;
		return 0;
	}
	if (op == EDIT_ADD) {
		if (find_be(s, &add->addr, add->port) >= 0)
			return -EEXIST;
		if (add->addr.family != s->vip.family || add->port == 0)
			return -EINVAL;
		s->backends[s->nbackends++] = *add;
		return 0;
	}
	b = find_be(s, &ref->addr, ref->port);
	if (b < 0)
		return -ENOENT;
	if (op == EDIT_WEIGHT)
		s->backends[b].weight = value;
	else if (op == EDIT_DRAIN)
		s->backends[b].drain = value != 0;
	else
		memmove(&s->backends[b], &s->backends[b + 1],
			(s->nbackends-- - (size_t)b - 1) * sizeof(*s->backends));
	return 0;
}

static int apply(struct lb_engine *e, const struct lb_backend_ref *ref, enum edit op,
		 uint32_t value, const struct lb_backend_conf *add)
{
	struct svc_copy c = { 0 };
	int rc = snapshot(e, &c);

	if (rc == 0)
		rc = edit_copy(&c, ref, op, value, add);
	if (rc == 0)
		rc = lb_engine_set_services(e, c.svcs, c.n);
	copy_free(&c);
	return rc;
}

int lb_engine_backend_set_weight(struct lb_engine *e, const struct lb_backend_ref *ref,
				 uint32_t weight)
{
	return apply(e, ref, EDIT_WEIGHT, weight, NULL);
}

int lb_engine_backend_set_drain(struct lb_engine *e, const struct lb_backend_ref *ref,
				bool drain)
{
	return apply(e, ref, EDIT_DRAIN, drain, NULL);
}

int lb_engine_backend_add(struct lb_engine *e, const struct lb_backend_ref *ref,
			  const struct lb_backend_conf *be)
{
	return apply(e, ref, EDIT_ADD, 0, be);
}

int lb_engine_backend_remove(struct lb_engine *e, const struct lb_backend_ref *ref)
{
	return apply(e, ref, EDIT_REMOVE, 0, NULL);
}

int lb_engine_service_set_enabled(struct lb_engine *e, const struct lb_backend_ref *ref,
				  bool enabled)
{
	return apply(e, ref, EDIT_ENABLE, enabled, NULL);
}

int lb_engine_backend_set_health(struct lb_engine *e, const struct lb_backend_ref *ref,
				 bool up)
{
	struct lb_service *s;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&e->svc_lock);
	s = lb_svcset_find(e->svcset, &ref->vip, ref->vport);
	if (!s)
		rc = -ESRCH;
	for (size_t b = 0; s && b < s->nbackends && rc == -ENOENT; b++) {
		struct lb_backend *be = s->backends[b];

		if (be->conf.port == ref->port && lb_addr_equal(&be->conf.addr, &ref->addr))
			rc = atomic_exchange(&be->down, !up) != !up;
	}
	pthread_rwlock_unlock(&e->svc_lock);
	return rc;
}
