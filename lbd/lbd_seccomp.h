/*
 * lbd_seccomp: the system calls a worker thread may make. A worker only
 * receives packets from its NFQUEUE socket, runs them through the engine,
 * sends verdicts back, and (during `lbctl capture`) appends to the capture
 * files that are already open; so it gets an allow-list of exactly that,
 * and any other system call kills lbd (SECCOMP_RET_KILL_PROCESS): a worker
 * that an attacker's packet took over cannot open, exec, connect or
 * map anything executable. The filter is loaded by each worker for itself
 * (seccomp filters are per thread; the main and loop threads, which spawn
 * iptables and open files, are not filtered). Private to lbd/.
 */
#ifndef LBD_SECCOMP_H
#define LBD_SECCOMP_H

#include <stddef.h>

/* Installs the worker allow-list on the calling thread (no_new_privs set on
 * it first). Returns 0, or -1 with a one-line reason in err. */
int lbd_seccomp_worker(char *err, size_t errlen);

#endif
