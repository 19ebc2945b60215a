/* SPDX-License-Identifier: BSD-3-Clause */
/* Logging for remoca-memd: one line per event on stderr,
 *   2026-11-26T04:40:00.123Z memd[warn] message
 * filtered by a global level set once at start (--log-level). */
#ifndef MEMD_LOG_H
#define MEMD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level memd_log_level;

/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s);

void memd_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) memd_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) memd_log(LOG_WARN, __VA_ARGS__)
#define log_info(...) memd_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                     \
    do {                                                                   \
        if (memd_log_level >= LOG_DEBUG) memd_log(LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
