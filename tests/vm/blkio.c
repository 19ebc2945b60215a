/* SPDX-License-Identifier: BSD-3-Clause */
/* blkio.c: the block-device operations of the vhost-user-blk VM tests that busybox lacks.
 *
 *   blkio discard|zeroout|punch|zerorange DEV OFF LEN
 *       ioctl BLKDISCARD, ioctl BLKZEROOUT, fallocate(PUNCH_HOLE|KEEP_SIZE) and
 *       fallocate(ZERO_RANGE) on bytes [OFF, OFF+LEN) of a block device.  On Linux 6.1 the
 *       last three become virtio-blk WRITE_ZEROES requests (punch with the unmap flag, zerorange
 *       without); BLKDISCARD becomes DISCARD.  Busybox has blkdiscard but no BLKZEROOUT, and its
 *       fallocate only preallocates.
 *
 *   blkio records DEV OFF MAX SECONDS SEED
 *       Writes numbered 4 KiB records 0, 1, 2, ... at OFF + 4096 * i, each with O_DIRECT and
 *       followed by fdatasync, for SECONDS, at most MAX records, paced to MAX / SECONDS records
 *       a second (so the writing lasts SECONDS on a fast machine too); after each
 *       record it reads back (O_DIRECT) a pseudo-random earlier record and checks every byte.
 *       Prints one line of key=value: last (the highest record whose write and flush the guest
 *       saw complete; -1 if none), reads, bad_reads, write_errors, read_errors, max_stall_ms
 *       (the longest single write+flush+read iteration) and after_stall (records completed after
 *       it).  Exit 1 if a read returned a wrong byte or an I/O error was seen.
 *
 *   blkio verify FILE OFF LAST SEED [SPAN]
 *       Checks records 0..LAST at OFF of FILE (a block device in the guest, the image on the
 *       host): each must be exactly what `records` wrote.  Records LAST+1 .. SPAN-1 (the ones
 *       that may have been in flight) may hold, sector by sector, only the record or zeroes
 *       (the region is zeroed before the writers start).  Prints ok=1 or the first bad record.
 *
 * Every 512-byte sector of a record names itself (magic, seed, record number, sector index)
 * and the rest is a xorshift stream of those, so a sector written to the wrong place, a stale
 * sector and a torn sector all fail the check.  Built static into the guest by
 * tests/vm/mkguest.sh, and for the host by tests/vm/CMakeLists.txt (vm-blkio).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REC 4096
#define SECT 512
#define MAGIC 0x524d4352454330ull /* "RMCREC0" */

static void fill_sector(unsigned char *p, uint64_t seed, uint64_t rec, uint64_t k)
{
    uint64_t h[4] = {MAGIC, seed, rec, k};
    memcpy(p, h, sizeof h);
    uint64_t s = (seed * 0x9e3779b97f4a7c15ull) ^ (rec * 0xbf58476d1ce4e5b9ull) ^ (k + 1);
    for (size_t i = sizeof h; i < SECT; i += 8) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t v = s * 2685821657736338717ull;
        memcpy(p + i, &v, 8);
    }
}

static void fill_record(unsigned char *p, uint64_t seed, uint64_t rec)
{
    for (uint64_t k = 0; k < REC / SECT; k++) fill_sector(p + k * SECT, seed, rec, k);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int full_pread(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

static int range_op(const char *op, const char *dev, uint64_t off, uint64_t len)
{
    int fd = open(dev, O_RDWR);
    if (fd < 0) {
        perror(dev);
        return 1;
    }
    uint64_t range[2] = {off, len};
    int r;
    if (strcmp(op, "discard") == 0)
        r = ioctl(fd, BLKDISCARD, range);
    else if (strcmp(op, "zeroout") == 0)
        r = ioctl(fd, BLKZEROOUT, range);
    else if (strcmp(op, "punch") == 0)
        r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    else
        r = fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len);
    if (r != 0) {
        fprintf(stderr, "blkio %s %s %" PRIu64 " %" PRIu64 ": %s\n", op, dev, off, len,
                strerror(errno));
        close(fd);
        return 1;
    }
    return close(fd) == 0 ? 0 : 1;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int records(const char *dev, uint64_t off, uint64_t max, double secs, uint64_t seed)
{
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0) {
        perror(dev);
        return 1;
    }
    unsigned char *w, *r, *e;
    if (posix_memalign((void **)&w, REC, REC) || posix_memalign((void **)&r, REC, REC) ||
        posix_memalign((void **)&e, REC, REC))
        return 1;
    rng ^= seed * 0x9e3779b97f4a7c15ull;
    long long last = -1;
    uint64_t reads = 0, bad = 0, werr = 0, rerr = 0, after = 0;
    double t0 = now_s(), max_stall = 0;
    for (uint64_t i = 0; i < max && now_s() - t0 < secs; i++) {
        double a = now_s(), due = t0 + secs * (double)i / (double)max;
        if (a < due) {
            usleep((useconds_t)((due - a) * 1e6));
            a = now_s();
        }
        fill_record(w, seed, i);
        if (full_pwrite(fd, w, REC, (off_t)(off + i * REC)) != 0 || fdatasync(fd) != 0) {
            fprintf(stderr, "blkio records: write %" PRIu64 ": %s\n", i, strerror(errno));
            werr++;
            break; /* a record the guest did not see complete ends the sequence */
        }
        last = (long long)i;
        uint64_t j = rng_next() % (i + 1);
        if (full_pread(fd, r, REC, (off_t)(off + j * REC)) != 0) {
            fprintf(stderr, "blkio records: read %" PRIu64 ": %s\n", j, strerror(errno));
            rerr++;
        } else {
            reads++;
            fill_record(e, seed, j);
            if (memcmp(r, e, REC) != 0) {
                if (bad == 0) fprintf(stderr, "blkio records: record %" PRIu64 " read wrong\n", j);
                bad++;
            }
        }
        double d = now_s() - a;
        if (d > max_stall) {
            max_stall = d;
            after = 0;
        } else {
            after++;
        }
    }
    printf("last=%lld reads=%" PRIu64 " bad_reads=%" PRIu64 " write_errors=%" PRIu64
           " read_errors=%" PRIu64 " max_stall_ms=%.0f after_stall=%" PRIu64 " s=%.2f\n",
           last, reads, bad, werr, rerr, max_stall * 1000, after, now_s() - t0);
    fflush(stdout);
    close(fd);
    return bad || werr || rerr ? 1 : 0;
}

static int verify(const char *path, uint64_t off, long long last, uint64_t seed, uint64_t span)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    unsigned char r[REC], e[REC], z[SECT] = {0};
    uint64_t maybe = 0;
    for (long long i = 0; i < (long long)span || i <= last; i++) {
        if (full_pread(fd, r, REC, (off_t)(off + (uint64_t)i * REC)) != 0) {
            printf("ok=0 record=%lld error=%s\n", i, strerror(errno));
            return 1;
        }
        fill_record(e, seed, (uint64_t)i);
        if (i <= last) {
            if (memcmp(r, e, REC) != 0) {
                printf("ok=0 record=%lld acknowledged_but_wrong=1\n", i);
                return 1;
            }
            continue;
        }
        for (int k = 0; k < REC / SECT; k++) {
            const unsigned char *p = r + k * SECT;
            if (memcmp(p, e + k * SECT, SECT) == 0) {
                maybe++;
            } else if (memcmp(p, z, SECT) != 0) {
                printf("ok=0 record=%lld sector=%d neither_zero_nor_record=1\n", i, k);
                return 1;
            }
        }
    }
    printf("ok=1 records=%lld unacknowledged_sectors_present=%" PRIu64 "\n", last + 1, maybe);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && (strcmp(argv[1], "discard") == 0 || strcmp(argv[1], "zeroout") == 0 ||
                      strcmp(argv[1], "punch") == 0 || strcmp(argv[1], "zerorange") == 0))
        return range_op(argv[1], argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
    if (argc == 7 && strcmp(argv[1], "records") == 0)
        return records(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
                       strtod(argv[5], NULL), strtoull(argv[6], NULL, 0));
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "verify") == 0)
        return verify(argv[2], strtoull(argv[3], NULL, 0), strtoll(argv[4], NULL, 0),
                      strtoull(argv[5], NULL, 0), argc == 7 ? strtoull(argv[6], NULL, 0) : 0);
    fprintf(stderr, "usage: blkio discard|zeroout|punch|zerorange DEV OFF LEN\n"
                    "       blkio records DEV OFF MAX SECONDS SEED\n"
                    "       blkio verify FILE OFF LAST SEED [SPAN]\n");
    return 2;
}
