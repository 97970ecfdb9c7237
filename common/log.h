/* log.h: one-line log records to stderr: "<seconds since start> <role>[rank] LEVEL msg".
 * Set the role and rank once at the top of main(); the functions are thread-safe (one fprintf
 * per record). */
#ifndef IB_LOG_H
#define IB_LOG_H

void log_set_role(const char *role, int rank);
/* 0 = errors only, 1 = + warnings, 2 = + info (default), 3 = + debug. */
void log_set_level(int level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* IB_LOG_H */
