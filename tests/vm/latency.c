/* SPDX-License-Identifier: BSD-3-Clause */
/* latency.c: nbdkit filter that adds a fixed latency, in MICROseconds, to each read and write.
 *
 * The VM benchmarks emulate a slow disk under the REMOCA cache:
 *
 *     guest -> QEMU -> NBD -> [remoca filter] -> [latency filter] -> [stats, log] -> file
 *
 * nbdkit's own delay filter does this for the HDD-like disk (delay-read=5ms), but its
 * resolution is one millisecond (nbdkit 1.32 parses "NNms" or whole seconds), too coarse for an
 * SSD-like disk whose 4 KiB random read takes 100-200 us.  This filter does only that: it sleeps
 * latency-read=US before passing a read down, latency-write=US before a write (also used for
 * zero and trim).  Requests run in parallel under nbdkit's parallel thread model, so, like a
 * device with a queue, concurrent requests overlap their latencies.
 *
 * Usage: nbdkit --filter=./nbdkit-latency-filter.so file disk.img latency-read=150 latency-write=150
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

static unsigned read_us, write_us;

static void pause_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};

    while (us && nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int latency_config(nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
                          const char *value)
{
    if (strcmp(key, "latency-read") == 0) return nbdkit_parse_unsigned(key, value, &read_us);
    if (strcmp(key, "latency-write") == 0) return nbdkit_parse_unsigned(key, value, &write_us);
    return next(nxdata, key, value);
}

static int latency_pread(nbdkit_next *next, void *handle, void *buf, uint32_t count,
                         uint64_t offset, uint32_t flags, int *err)
{
    pause_us(read_us);
    return next->pread(next, buf, count, offset, flags, err);
}

static int latency_pwrite(nbdkit_next *next, void *handle, const void *buf, uint32_t count,
                          uint64_t offset, uint32_t flags, int *err)
{
    pause_us(write_us);
    return next->pwrite(next, buf, count, offset, flags, err);
}

static int latency_zero(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                        uint32_t flags, int *err)
{
    pause_us(write_us);
    return next->zero(next, count, offset, flags, err);
}

static int latency_trim(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                        uint32_t flags, int *err)
{
    pause_us(write_us);
    return next->trim(next, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
    .name = "latency",
    .longname = "REMOCA test latency filter (microseconds)",
    .config = latency_config,
    .config_help = "latency-read=US   Sleep US microseconds before each read.\n"
                   "latency-write=US  Sleep US microseconds before each write, zero, trim.",
    .pread = latency_pread,
    .pwrite = latency_pwrite,
    .zero = latency_zero,
    .trim = latency_trim,
};

/* What NBDKIT_REGISTER_FILTER defines: nbdkit looks it up by name. */
struct nbdkit_filter *filter_init(void);
NBDKIT_REGISTER_FILTER(filter)
