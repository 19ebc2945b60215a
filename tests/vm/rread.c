/* SPDX-License-Identifier: BSD-3-Clause */
/* rread.c: reads a file or block device in a pseudo-random order of fixed-size chunks.
 *
 *   rread PATH MIB CHUNK_KIB SEED
 *
 * The guest's thrashing workload: applications that thrash (databases, indexes, VM images of
 * other VMs) touch their data in no particular order, so every page-cache miss becomes its own
 * disk request with a seek.  rread visits the chunks of the first MIB MiB of PATH exactly once,
 * in the order of a permutation drawn from SEED (Fisher-Yates over a xorshift64* generator), and
 * reads each with one buffered pread(): the reads go through the guest page cache like an
 * application's would (no O_DIRECT), and Linux's readahead sees a random pattern and adds
 * nothing.  It prints the number of bytes read and a 64-bit sum of the data (so the same data
 * gives the same output whatever served it).  Built static by tests/vm/mkguest.sh so that it
 * runs in the busybox initramfs.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: rread PATH MIB CHUNK_KIB SEED\n");
        return 2;
    }
    uint64_t total = strtoull(argv[2], NULL, 10) << 20;
    size_t chunk = (size_t)strtoul(argv[3], NULL, 10) << 10;
    rng_state = strtoull(argv[4], NULL, 10) * 0x9e3779b97f4a7c15ull + 1;
    if (chunk == 0 || total < chunk) {
        fprintf(stderr, "rread: need MIB*1024 >= CHUNK_KIB > 0\n");
        return 2;
    }
    size_t n = (size_t)(total / chunk);
    uint32_t *order = malloc(n * sizeof *order);
    char *buf = malloc(chunk);
    if (!order || !buf) {
        perror("rread: malloc");
        return 1;
    }
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next() % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    uint64_t bytes = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        off_t off = (off_t)order[i] * (off_t)chunk;
        size_t done = 0;
        while (done < chunk) {
            ssize_t r = pread(fd, buf + done, chunk - done, off + (off_t)done);
            if (r < 0) {
                perror("rread: pread");
                return 1;
            }
            if (r == 0) break;
            done += (size_t)r;
        }
        for (size_t k = 0; k + 8 <= done; k += 512)
            sum += *(uint64_t *)(buf + k) * (off + (off_t)k + 1);
        bytes += done;
    }
    printf("bytes=%" PRIu64 " sum=%016" PRIx64 "\n", bytes, sum);
    close(fd);
    return 0;
}
