/*
 * lbd_metrics: the Prometheus endpoint (metrics.c), off unless the daemon
 * section names an address (`metrics = "198.18.0.1:9100"`). libmicrohttpd
 * serves GET /metrics from its own thread, reading only what any thread may
 * read (counters, backend snapshots, the sync node's stats under its lock).
 * Private to lbd/.
 */
#ifndef LBD_METRICS_H
#define LBD_METRICS_H

struct lbd;
struct lbd_metrics;

/* Starts serving on d->conf.daemon's metrics address; *out NULL when off. 0 or -1 (logged). */
int lbd_metrics_start(struct lbd *d, struct lbd_metrics **out);

/* Stops serving and frees; NULL is fine. Before anything it reads goes. */
void lbd_metrics_stop(struct lbd_metrics *m);

#endif
