/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-vhost's log (vlog.h): stderr, one line per call, under a lock so
 * lines of the queue threads do not interleave. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "vlog.h"

int vu_log_level = VU_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void vu_vlog(int level, const char *fmt, va_list ap)
{
    if (level > vu_log_level) return;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char ts[32];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ldZ remoca-vhost %s: ", ts, t.tv_nsec / 1000000, names[level & 3]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
}

void vu_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vu_vlog(level, fmt, ap);
    va_end(ap);
}
