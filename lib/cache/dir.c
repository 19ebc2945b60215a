/* SPDX-License-Identifier: BSD-3-Clause */
/* Directory of the cache engine: one bit per 4 KiB disk block, "may be remote".
 *
 *   words[]  ┌──────────────── 64 blocks ───────────────┐┌──── next 64 ───...
 *            │ bit b%64 of words[b/64] = block b         ││
 *            └───────────────────────────────────────────┘└────────────────...
 *
 * The bit is set when a put of the block is ordered (fill or write-update), and
 * cleared on a remote miss, an invalidation and a reset.  It is a hint, never a
 * source of truth for data: a set bit costs at most one wasted lookup when the
 * server evicted the page (the miss clears it); a clear bit only makes a read go
 * to disk.  Correctness (never stale) is carried by the generation stripes and
 * the ordering of puts and deletes, not by this map.  That is why plain atomic
 * bit operations without any lock are enough: 1 bit per block, lock-free,
 * 32 MiB of metadata for a 1 TiB disk (docs/design.md, contract 7).
 */
#include <stdlib.h>

#include "dir.h"

int dir_init(struct remoca_dir *d, uint64_t nblocks)
{
    d->nblocks = nblocks;
    d->words = calloc(nblocks / 64 + 1, sizeof *d->words);
    return d->words ? 0 : -1;
}

void dir_destroy(struct remoca_dir *d)
{
    free(d->words);
    d->words = NULL;
}

bool dir_test(const struct remoca_dir *d, uint64_t b)
{
    return (atomic_load_explicit(&d->words[b / 64], memory_order_acquire) >> (b % 64)) & 1;
}

bool dir_test_clear(struct remoca_dir *d, uint64_t b)
{
    uint64_t m = 1ull << (b % 64);
    return atomic_fetch_and_explicit(&d->words[b / 64], ~m, memory_order_acq_rel) & m;
}

/* Bits [lo, hi) of one word, 0 <= lo < hi <= 64. */
static uint64_t word_mask(uint64_t lo, uint64_t hi)
{
    uint64_t m = ~0ull << lo;
    return hi == 64 ? m : m & ((1ull << hi) - 1);
}

/* Ranges go one word at a time: one atomic op per 64 blocks instead of one
 * per block, with a partial mask for the first and last word.  Each bit sees
 * the same operation with the same memory order as with per-block calls; the
 * bits of one word just change together. */
void dir_set_range(struct remoca_dir *d, uint64_t b, uint64_t n)
{
    uint64_t end = b + n;
    while (b < end) {
        uint64_t w = b / 64, hi = end - w * 64 < 64 ? end - w * 64 : 64;
        atomic_fetch_or_explicit(&d->words[w], word_mask(b % 64, hi), memory_order_acq_rel);
        b = w * 64 + hi;
    }
}

uint64_t dir_clear_range(struct remoca_dir *d, uint64_t b, uint64_t n)
{
    uint64_t end = b + n, cleared = 0;
    while (b < end) {
        uint64_t w = b / 64, hi = end - w * 64 < 64 ? end - w * 64 : 64;
        uint64_t m = word_mask(b % 64, hi);
        uint64_t old = atomic_fetch_and_explicit(&d->words[w], ~m, memory_order_acq_rel);
        cleared += (uint64_t)__builtin_popcountll(old & m);
        b = w * 64 + hi;
    }
    return cleared;
}

void dir_clear_all(struct remoca_dir *d)
{
    for (uint64_t i = 0; i < d->nblocks / 64 + 1; i++)
        atomic_store_explicit(&d->words[i], 0, memory_order_release);
}

uint64_t dir_count(const struct remoca_dir *d)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < d->nblocks / 64 + 1; i++)
        n += (uint64_t)__builtin_popcountll(
            atomic_load_explicit(&d->words[i], memory_order_relaxed));
    return n;
}
