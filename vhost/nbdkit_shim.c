/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd/statsfile.c, the stats writer shared with the NBD filter, logs through
 * nbdkit_error and nbdkit_debug; outside nbdkit they go to our log. */
#include <stdarg.h>
#include <stdio.h>

#include "vlog.h"

void nbdkit_error(const char *fs, ...) __attribute__((format(printf, 1, 2)));
void nbdkit_debug(const char *fs, ...) __attribute__((format(printf, 1, 2)));

void nbdkit_error(const char *fs, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fs);
    vsnprintf(buf, sizeof buf, fs, ap);
    va_end(ap);
    vu_log(VU_LOG_ERROR, "%s", buf);
}

void nbdkit_debug(const char *fs, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fs);
    vsnprintf(buf, sizeof buf, fs, ap);
    va_end(ap);
    vu_log(VU_LOG_DEBUG, "%s", buf);
}
