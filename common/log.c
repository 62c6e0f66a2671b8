/*
 * log: see include/log.h. The level, ident and target are the only
 * file-level state; they are set before any thread starts and only read
 * afterwards.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static enum log_level min_level = LOG_LVL_INFO;
static const char *ident = "lb";
static bool to_syslog;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	min_level = level;
}

void log_set_ident(const char *name)
{
	ident = name;
}

int log_level_parse(const char *name, enum log_level *level)
{
	for (int i = LOG_LVL_DEBUG; i <= LOG_LVL_ERR; i++)
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	return -1;
}

int log_facility_parse(const char *name, int *facility)
{
	static const struct { const char *name; int facility; } f[] = {
		{ "daemon", LOG_DAEMON }, { "user", LOG_USER },	    { "local0", LOG_LOCAL0 },
		{ "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
		{ "local7", LOG_LOCAL7 },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(name, f[i].name) == 0) {
			*facility = f[i].facility;
			return 0;
		}
	return -1;
}

void log_use_syslog(int facility)
{
	openlog(ident, LOG_PID | LOG_NDELAY, facility);
	to_syslog = true;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int priority[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n = 0;

	if (level < min_level)
		return;
	if (!to_syslog) {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%s] ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000000, ident, level_names[level]);
		if (n < 0 || (size_t)n >= sizeof(line))
			return;
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (to_syslog)
		syslog(priority[level], "%s", line);
	else
		fprintf(stderr, "%s\n", line);	/* one write per line: threads do not interleave */
}
