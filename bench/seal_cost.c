/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-sealcost: the CPU that sealing costs per 4 KiB page, for bench/nbd.sh.
 *
 *   remoca-sealcost [--pages N]
 *   prints: seal_ns_per_page=S open_ns_per_page=O
 *
 * Drives lib/seal's remote ops (what the engine calls) over an in-memory
 * sealed remote that keeps the last batch (a stand-in for the client, so that
 * only the crypto is timed: its own copies are timed alone and subtracted).
 * Thread CPU time, not wall time: other load on the machine does not count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remoca/seal.h"

#define BATCH 32u /* pages per call, as the engine's fills */
#define PAGE 4096u

static uint8_t store_pages[BATCH * PAGE], store_sides[BATCH * REMOCA_SEAL_SIDE];

static unsigned mem_get(void *ctx, uint64_t key, uint32_t n, void *pages, void *sides,
                        uint64_t *hits)
{
    memcpy(pages, store_pages, (size_t)n * PAGE);
    memcpy(sides, store_sides, (size_t)n * REMOCA_SEAL_SIDE);
    hits[0] = n == 64 ? ~0ull : (1ull << n) - 1;
    return n;
}
static int mem_put(void *ctx, uint64_t key, uint32_t n, const void *pages, const void *sides)
{
    memcpy(store_pages, pages, (size_t)n * PAGE);
    memcpy(store_sides, sides, (size_t)n * REMOCA_SEAL_SIDE);
    return 0;
}
static int mem_del(void *ctx, uint64_t key, uint64_t n) { return 0; }
static int mem_reset(void *ctx) { return 0; }
static const struct remoca_sealed_ops mem_ops = {mem_get, NULL, mem_put, mem_del, mem_reset};

static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    unsigned long pages = 200000;
    if (argc == 3 && !strcmp(argv[1], "--pages"))
        pages = strtoul(argv[2], NULL, 10);
    else if (argc != 1) {
        fprintf(stderr, "usage: remoca-sealcost [--pages N]\n");
        return 2;
    }
    char err[256];
    struct remoca_seal *s = remoca_seal_new(
        &(struct remoca_seal_opts){.remote = &mem_ops, .pool = "bench", .nblocks = BATCH}, err,
        sizeof err);
    if (!s) {
        fprintf(stderr, "remoca-sealcost: %s\n", err);
        return 1;
    }
    uint8_t *in = malloc(BATCH * PAGE), *out = malloc(BATCH * PAGE);
    if (!in || !out) return 1;
    for (size_t i = 0; i < BATCH * PAGE; i++) in[i] = (uint8_t)(i * 31 + 7);
    unsigned long rounds = pages / BATCH ? pages / BATCH : 1;
    remoca_seal_remote_ops.put(s, 0, BATCH, in); /* warm up */

    double t0 = cpu_ns();
    for (unsigned long r = 0; r < rounds; r++) remoca_seal_remote_ops.put(s, 0, BATCH, in);
    double t1 = cpu_ns();
    for (unsigned long r = 0; r < rounds; r++) {
        uint64_t hits[1] = {0};
        if (remoca_seal_remote_ops.get(s, 0, BATCH, out, hits) != BATCH) {
            fprintf(stderr, "remoca-sealcost: a page did not open\n");
            return 1;
        }
    }
    double t2 = cpu_ns();
    uint8_t sides[BATCH * REMOCA_SEAL_SIDE];
    for (unsigned long r = 0; r < rounds; r++) { /* the stand-in's copies alone */
        uint64_t hits[1];
        mem_put(NULL, 0, BATCH, in, sides);
        mem_get(NULL, 0, BATCH, out, sides, hits);
    }
    double t3 = cpu_ns();
    if (memcmp(in, out, BATCH * PAGE)) {
        fprintf(stderr, "remoca-sealcost: pages differ after open\n");
        return 1;
    }
    double n = (double)rounds * BATCH, copy = (t3 - t2) / n / 2;
    printf("seal_ns_per_page=%.0f open_ns_per_page=%.0f\n", (t1 - t0) / n - copy,
           (t2 - t1) / n - copy);
    remoca_seal_free(s);
    free(in);
    free(out);
    return 0;
}
