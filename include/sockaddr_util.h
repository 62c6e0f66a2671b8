/*
 * sockaddr_util: the one place that builds and compares socket addresses
 * from raw address bytes, for the daemon's sockets and the drill tool's.
 */
#ifndef SOCKADDR_UTIL_H
#define SOCKADDR_UTIL_H

#include <stdint.h>
#include <sys/socket.h>

/*
 * Fills ss with family (AF_INET: 4 bytes at addr, AF_INET6: 16) and port
 * (host order). Returns the length to pass to bind/connect/sendto, or 0 for
 * another family (ss zeroed).
 */
socklen_t sockaddr_build(struct sockaddr_storage *ss, int family, const void *addr,
			 uint16_t port);

/* 1 when a and b have the same family and address (ports aside). */
int sockaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* The port of an AF_INET/AF_INET6 address, host order; 0 otherwise. */
uint16_t sockaddr_port(const struct sockaddr_storage *ss);

#endif
