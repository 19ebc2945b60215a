/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd/statsfile.c, the stats writer shared with the NBD filter, logs through
 * nbdkit_error and nbdkit_debug; outside nbdkit they go to our log. */
#include <stdarg.h>

#include "vlog.h"

void nbdkit_error(const char *fs, ...) __attribute__((format(printf, 1, 2)));
void nbdkit_debug(const char *fs, ...) __attribute__((format(printf, 1, 2)));

void nbdkit_error(const char *fs, ...)
{
    va_list ap;
    va_start(ap, fs);
    vu_vlog(VU_LOG_ERROR, fs, ap);
    va_end(ap);
}

void nbdkit_debug(const char *fs, ...)
{
    va_list ap;
    va_start(ap, fs);
    vu_vlog(VU_LOG_DEBUG, fs, ap);
    va_end(ap);
}
