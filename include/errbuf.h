/*
 * errbuf: formatting a one-line error into a caller's buffer, the way
 * functions that return -1 or NULL "with a message in err" do. A NULL or
 * empty buffer is fine (the message is dropped).
 */
#ifndef ERRBUF_H
#define ERRBUF_H

#include <stddef.h>

__attribute__((format(printf, 3, 4)))
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...);

#endif
