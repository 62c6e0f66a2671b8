/*
 * log: levelled logging, to stderr with a dated wall-clock timestamp, or to
 * syslog (the journal picks it up) with a facility. Level, ident and target
 * are process-wide, set once at start-up before any thread starts; messages
 * below the level are discarded before formatting.
 */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

void log_set_level(enum log_level level);
void log_set_ident(const char *ident);

/* "debug", "info", "warn", "error" -> 0 and *level, else -1. */
int log_level_parse(const char *name, enum log_level *level);

/* "daemon", "user", "local0".."local7" -> 0 and *facility (LOG_DAEMON, ...), else -1. */
int log_facility_parse(const char *name, int *facility);

/* From now on messages go to syslog with facility (openlog with the ident). */
void log_use_syslog(int facility);

__attribute__((format(printf, 2, 3)))
void log_msg(enum log_level level, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)

#endif
