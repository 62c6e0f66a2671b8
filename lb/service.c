/*
 * The engine's virtual services and backends: building a configuration
 * generation, matching it against the running one on reload, draining removed
 * backends and freeing them once idle.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

static uint32_t svc_hash(const struct lb_addr *vip, uint16_t port)
{
	return lb_addr_hash(vip, port * 2654435761u);
}

struct lb_service *lb_svcset_find(const struct lb_svcset *set, const struct lb_addr *vip,
				  uint16_t port)
{
	size_t mask, i;

	if (!set || set->n == 0)
		return NULL;
	mask = set->index_size - 1;
	for (i = svc_hash(vip, port) & mask; set->index[i]; i = (i + 1) & mask) {
		struct lb_service *s = &set->svcs[set->index[i] - 1];

		if (s->port == port && lb_addr_equal(&s->vip, vip))
			return s;
	}
	return NULL;
}

struct lb_service *lb_svcset_find_id(const struct lb_svcset *set, uint32_t id)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (set->svcs[i].id == id)
			return &set->svcs[i];
	return NULL;
}

void lb_svcset_free(struct lb_svcset *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		lb_sched_free(set->svcs[i].sched);
		free(set->svcs[i].backends);
	}
	free(set->svcs);
	free(set->index);
	free(set);
}

/* Checks a configuration before anything is touched. */
static int validate(const struct lb_service_conf *svcs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct lb_service_conf *s = &svcs[i];

		if (!lb_sched_name_valid(s->scheduler) || s->port == 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (svcs[j].port == s->port && lb_addr_equal(&svcs[j].vip, &s->vip))
				return -EEXIST;
		for (size_t b = 0; b < s->nbackends; b++) {
			const struct lb_backend_conf *be = &s->backends[b];

			if (be->addr.family != s->vip.family || be->port == 0)
				return -EINVAL;
			for (size_t c = 0; c < b; c++)
				if (s->backends[c].port == be->port &&
				    lb_addr_equal(&s->backends[c].addr, &be->addr))
					return -EEXIST;
		}
	}
	return 0;
}

static struct lb_backend *find_backend(struct lb_engine *e, uint32_t service_id,
				       const struct lb_backend_conf *conf)
{
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++) {
		struct lb_backend *be = e->backends[i];

		if (be && be->service_id == service_id && be->conf.port == conf->port &&
		    lb_addr_equal(&be->conf.addr, &conf->addr))
			return be;
	}
	return NULL;
}

static uint32_t service_id_for(struct lb_engine *e, const struct lb_service_conf *s)
{
	struct lb_service *old = lb_svcset_find(e->svcset, &s->vip, s->port);

	return old ? old->id : e->next_service_id++;
}

/* How many backend slots the new configuration needs that it does not have. */
static size_t slots_needed(struct lb_engine *e, const struct lb_service_conf *svcs, size_t n)
{
	size_t need = 0;

	for (size_t i = 0; i < n; i++) {
		struct lb_service *old = lb_svcset_find(e->svcset, &svcs[i].vip, svcs[i].port);

		for (size_t b = 0; b < svcs[i].nbackends; b++)
			if (!old || !find_backend(e, old->id, &svcs[i].backends[b]))
				need++;
	}
	return need;
}

static size_t slots_free(const struct lb_engine *e)
{
	size_t n = 0;

	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++)
		n += !e->backends[i];
	return n;
}

/* Finds or creates the backend, and gives it the new settings. */
static struct lb_backend *adopt_backend(struct lb_engine *e, const struct lb_service *svc,
					const struct lb_backend_conf *conf)
{
	struct lb_backend *be = find_backend(e, svc->id, conf);
	size_t slot;

	if (!be) {
		for (slot = 0; slot < LB_ENGINE_MAX_BACKENDS && e->backends[slot]; slot++)
			;
		if (slot == LB_ENGINE_MAX_BACKENDS)
			return NULL;
		be = calloc(1, sizeof(*be));
		if (!be)
			return NULL;
		be->id = (uint32_t)slot;
		be->service_id = svc->id;
		be->vip = svc->vip;
		be->vport = svc->port;
		e->backends[slot] = be;
		if (slot >= e->backends_end)
			e->backends_end = slot + 1;
	}
	be->conf = *conf;
	atomic_store(&be->draining, false);
	return be;
}

static int build_service(struct lb_engine *e, struct lb_service *svc,
			 const struct lb_service_conf *conf)
{
	svc->vip = conf->vip;
	svc->port = conf->port;
	svc->id = service_id_for(e, conf);
	svc->persistence_ms = conf->persistence_s * 1000u;
	svc->disabled = conf->disabled;
	memcpy(svc->scheduler, conf->scheduler, sizeof(svc->scheduler));
	svc->nbackends = conf->nbackends;
	svc->backends = calloc(conf->nbackends ? conf->nbackends : 1, sizeof(*svc->backends));
	if (!svc->backends)
		return -ENOMEM;
	for (size_t b = 0; b < conf->nbackends; b++) {
		svc->backends[b] = adopt_backend(e, svc, &conf->backends[b]);
		if (!svc->backends[b])
			return -ENOMEM;
	}
	svc->sched = lb_sched_new(conf->scheduler, svc->backends, svc->nbackends,
				  e->conf.seed ^ svc->id);
	return svc->sched ? 0 : -errno;
}

static struct lb_svcset *build_set(struct lb_engine *e, const struct lb_service_conf *svcs,
				   size_t n, int *err)
{
	struct lb_svcset *set = calloc(1, sizeof(*set));

	*err = -ENOMEM;
	if (!set)
		return NULL;
	for (set->index_size = 4; set->index_size < 2 * n; set->index_size <<= 1)
		;
	set->svcs = calloc(n ? n : 1, sizeof(*set->svcs));
	set->index = calloc(set->index_size, sizeof(*set->index));
	if (!set->svcs || !set->index)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		size_t mask = set->index_size - 1, h;

		set->n = i + 1;
		*err = build_service(e, &set->svcs[i], &svcs[i]);
		if (*err < 0)
			goto fail;
		for (h = svc_hash(&svcs[i].vip, svcs[i].port) & mask; set->index[h];
		     h = (h + 1) & mask)
			;
		set->index[h] = (uint32_t)(i + 1);
	}
	*err = 0;
	return set;
fail:
	lb_svcset_free(set);
	return NULL;
}

/* Backends that the new set does not name start draining. */
static void drain_unlisted(struct lb_engine *e, const struct lb_svcset *set)
{
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++) {
		struct lb_backend *be = e->backends[i];
		struct lb_service *s;
		int listed = 0;

		if (!be)
			continue;
		s = lb_svcset_find_id(set, be->service_id);
		for (size_t b = 0; s && b < s->nbackends && !listed; b++)
			listed = s->backends[b] == be;
		if (!listed)
			atomic_store(&be->draining, true);
	}
}

/* Persistence of services that are gone is dropped at once. */
static void forget_removed_services(struct lb_engine *e, const struct lb_svcset *old,
				    const struct lb_svcset *set)
{
	for (size_t i = 0; old && i < old->n; i++)
		if (!lb_svcset_find_id(set, old->svcs[i].id))
			lb_persist_forget_service(e->persist, old->svcs[i].id);
}

int lb_engine_set_services(struct lb_engine *e, const struct lb_service_conf *svcs, size_t n)
{
	struct lb_svcset *set, *old;
	int err = validate(svcs, n);

	if (err < 0)
		return err;
	pthread_rwlock_wrlock(&e->svc_lock);
	if (slots_needed(e, svcs, n) > slots_free(e)) {
		pthread_rwlock_unlock(&e->svc_lock);
		return -ENOSPC;
	}
	set = build_set(e, svcs, n, &err);
	if (!set) {
		/* Only memory can fail here; backends adopted so far carry
		 * their new weights, the old set stays in force. */
		pthread_rwlock_unlock(&e->svc_lock);
		return err;
	}
	old = e->svcset;
	e->svcset = set;
	drain_unlisted(e, set);
	forget_removed_services(e, old, set);
	pthread_rwlock_unlock(&e->svc_lock);
	lb_svcset_free(old);
	return 0;
}

size_t lb_engine_reclaim_backends(struct lb_engine *e)
{
	size_t freed = 0;
	int any = 0;

	/* This thread is the only writer of the slots: peek without the lock
	 * and take it as writer only when there is something to free. Every
	 * tick does this: only the slots ever used are looked at. */
	for (size_t i = 0; i < e->backends_end && !any; i++)
		any = e->backends[i] && atomic_load(&e->backends[i]->draining) &&
		      lb_backend_conns(e->backends[i]) == 0;
	if (!any)
		return 0;
	pthread_rwlock_wrlock(&e->svc_lock);
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++) {
		struct lb_backend *be = e->backends[i];

		if (!be || !atomic_load(&be->draining) || lb_backend_conns(be) != 0)
			continue;
		lb_persist_forget_backend(e->persist, be);
		e->backends[i] = NULL;
		free(be);
		freed++;
	}
	pthread_rwlock_unlock(&e->svc_lock);
	return freed;
}

/* Fills info from be; svc_lock held (weight and max_conns are stable). */
static void backend_snapshot(const struct lb_backend *be, struct lb_backend_info *info)
{
	*info = (struct lb_backend_info){
		.service_id = be->service_id,
		.vip = be->vip,
		.vport = be->vport,
		.addr = be->conf.addr,
		.port = be->conf.port,
		.weight = be->conf.weight,
		.max_conns = be->conf.max_conns,
		.draining = atomic_load(&be->draining),
		.drain = be->conf.drain,
		.down = atomic_load(&be->down),
		.active = atomic_load(&be->active),
		.inactive = atomic_load(&be->inactive),
		.conns_total = atomic_load(&be->conns_total),
		.pkts_in = atomic_load(&be->pkts_in),
		.bytes_in = atomic_load(&be->bytes_in),
		.pkts_out = atomic_load(&be->pkts_out),
		.bytes_out = atomic_load(&be->bytes_out),
	};
}

void lb_engine_foreach_backend(struct lb_engine *e,
			       void (*fn)(const struct lb_backend_info *be, void *arg),
			       void *arg)
{
	struct lb_backend_info info;

	pthread_rwlock_rdlock(&e->svc_lock);
	for (size_t i = 0; i < LB_ENGINE_MAX_BACKENDS; i++) {
		if (!e->backends[i])
			continue;
		backend_snapshot(e->backends[i], &info);
		fn(&info, arg);
	}
	pthread_rwlock_unlock(&e->svc_lock);
}
