/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-vhost's log: one line per event on stderr, UTC time, level.
 * vu_log_level decides what is printed (the fuzzers set it to -1: silent). */
#ifndef REMOCA_VHOST_VLOG_H
#define REMOCA_VHOST_VLOG_H

enum { VU_LOG_ERROR = 0, VU_LOG_WARN = 1, VU_LOG_INFO = 2, VU_LOG_DEBUG = 3 };
extern int vu_log_level;

#include <stdarg.h>

void vu_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vu_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define vu_err(...) vu_log(VU_LOG_ERROR, __VA_ARGS__)
#define vu_warn(...) vu_log(VU_LOG_WARN, __VA_ARGS__)
#define vu_info(...) vu_log(VU_LOG_INFO, __VA_ARGS__)
#define vu_debug(...) vu_log(VU_LOG_DEBUG, __VA_ARGS__)

#endif
