/*
 * lbd_service: lbd as a system service. Readiness and status for systemd
 * (sd_notify; a no-op when lbd was not started by systemd with
 * Type=notify), and the optional pid file. Private to lbd/.
 */
#ifndef LBD_SERVICE_H
#define LBD_SERVICE_H

/* Once rules, queues and sync are up: READY=1 and STATUS=text. */
void lbd_service_ready(const char *status);

/* A new STATUS= line (after a reload, a role change). */
void lbd_service_status(const char *status);

/* Before the rules go: STOPPING=1. */
void lbd_service_stopping(void);

/*
 * Writes our pid and a newline to path, replacing the file atomically
 * (through path.tmp). Returns 0, or -1 with a message in err.
 */
int lbd_service_write_pidfile(const char *path, char *err, size_t errlen);

/* Removes the pid file if it still holds our pid. */
void lbd_service_remove_pidfile(const char *path);

#endif
