/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd/statsfile.c, the stats writer shared with the NBD filter, logs through
 * nbdkit_error and nbdkit_debug; outside nbdkit they go to our log. */
#include <stdarg.h>
#include <stdio.h>

#include "vlog.h"

void nbdkit_error(const char *fs, ...) __attribute__((format(printf, 1, 2)));
void nbdkit_debug(const char *fs, ...) __attribute__((format(printf, 1, 2)));

__attribute__((format(printf, 2, 0))) static void vlog(int level, const char *fs, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fs, ap);
    vu_log(level, "%s", buf);
}

void nbdkit_error(const char *fs, ...)
{
    va_list ap;
    va_start(ap, fs);
    vlog(VU_LOG_ERROR, fs, ap);
    va_end(ap);
}

void nbdkit_debug(const char *fs, ...)
{
    va_list ap;
    va_start(ap, fs);
    vlog(VU_LOG_DEBUG, fs, ap);
    va_end(ap);
}
