/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the split-ring walker and virtio-blk's request checks
 * (vhost/vring.c, vhost/blk.c) over a fake guest memory.
 *
 *   input: [0] log2 of the queue size (0..8)   [1] flags: bit 0 EVENT_IDX,
 *          bit 1 a second region right after the first
 *          [2..3] the avail index the walk starts from
 *          [4..]  guest memory: descriptor table at 0, avail ring, used ring
 *                 after it (as the driver lays them out), then anything;
 *                 the avail entries and descriptors are whatever the bytes say
 *
 * The memory is a malloc'd copy of exactly the input's size, registered at
 * gpa 0x1000 (nothing below, nothing after unless the second region is on),
 * so ASan reports any access outside it.  The fake disk reads every byte of
 * every device-readable segment and writes every device-writable one.  Every
 * chain is walked until the ring is empty or broken (at most 4096 chains).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vhost/blk.h"
#include "../../vhost/mem.h"
#include "../../vhost/vring.h"

static volatile uint8_t sink;

static int touch(const struct vq_seg *s, unsigned n)
{
    uint8_t x = 0;
    for (unsigned i = 0; i < n; i++) {
        if (s[i].write)
            memset(s[i].host, 0x5a, s[i].len);
        else
            for (uint32_t j = 0; j < s[i].len; j++) x ^= s[i].host[j];
    }
    sink = x;
    return 0;
}
static int f_rw(void *ctx, const struct vq_seg *s, unsigned n, uint64_t off, uint32_t len)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) total += s[i].len;
    if (total != len) abort(); /* the data segments are exactly the data */
    return touch(s, n);
}
static int f_flush(void *ctx) { return 0; }
static int f_trim(void *ctx, uint64_t off, uint32_t len) { return 0; }
static int f_zero(void *ctx, uint64_t off, uint32_t len, bool unmap) { return 0; }
static const struct blk_io_ops fake = {f_rw, f_rw, f_flush, f_trim, f_zero};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    unsigned num = 1u << (data[0] % 9);
    bool event_idx = data[1] & 1, second = data[1] & 2;
    uint16_t start;
    memcpy(&start, data + 2, 2);
    size_t len = size - 4;
    size_t desc = 0, avail = 16 * num, used = (avail + 6 + 2 * num + 3) & ~(size_t)3;
    if (len < used + 6 + 8 * num || len == 0) return 0;
    uint8_t *g = malloc(len), *g2 = NULL;
    memcpy(g, data + 4, len);
    struct vmem mem;
    char err[256];
    vmem_init(&mem);
    struct vu_region r = {0x1000, len, 0x10000000, 0};
    if (vmem_add_host(&mem, &r, g, err, sizeof err) < 0) abort();
    if (second) {
        g2 = malloc(4096);
        memset(g2, 0, 4096);
        struct vu_region r2 = {0x1000 + len, 4096, 0x20000000, 0};
        if (vmem_add_host(&mem, &r2, g2, err, sizeof err) < 0) abort();
    }
    struct vring vr;
    if (vring_map(&vr, &mem, num, 0x10000000 + desc, 0x10000000 + avail, 0x10000000 + used,
                  event_idx, err, sizeof err) == 0) {
        struct blk_dev blk = {.ops = &fake, .size = 1u << 20};
        static struct vq_chain c;
        vr.last_avail = start;
        vr.used_idx = vring_used_idx_in_ring(&vr);
        for (int i = 0; i < 4096; i++) {
            int p = vring_pop(&vr, &c, err, sizeof err);
            if (p <= 0) break;
            for (unsigned k = 0; k < c.n; k++) /* every segment inside a mapping */
                if (!vmem_gpa(&mem, c.seg[k].gpa, c.seg[k].len) ||
                    vmem_gpa(&mem, c.seg[k].gpa, c.seg[k].len) != c.seg[k].host)
                    abort();
            int64_t u = blk_handle(&blk, NULL, &c);
            if (u < 0) break;
            vring_push(&vr, c.head, (uint32_t)u);
            (void)vring_need_notify(&vr);
        }
        (void)vring_enable_kick(&vr);
    }
    vmem_clear(&mem);
    free(g);
    free(g2);
    return 0;
}
