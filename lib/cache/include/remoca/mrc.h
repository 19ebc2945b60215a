/* SPDX-License-Identifier: BSD-3-Clause */
/* Miss ratio curve (MRC) estimator: what the LRU miss ratio of a cache of 4 KiB
 * blocks would be at every size up to a bound, from the stream of block reads,
 * in memory fixed at creation (lib/cache/mrc.c).
 *
 *   block reads ──▶ XXH3(block) <= T ? ──no──▶ counted only (refs)
 *                        │ yes: sampled, rate R = (T+1) / 2^64
 *                        ▼
 *   sampled blocks (at most max_samples) ──▶ reuse distance among them / R
 *                        │                         │
 *                        │ one too many: the       ▼
 *                        │ largest hash leaves,  histogram of distances
 *                        └─ T drops below it     (+ cold first references)
 *                                                  │
 *   remoca_mrc_curve / remoca_mrc_miss_ratio_at ◀──┘  miss ratio(size)
 *
 * This is SHARDS (Waldspurger et al., FAST '15), fixed-size variant, with the
 * SHARDS_adj normalization: spatial sampling by hash, so a sampled block has
 * all its references sampled, and the sample set shrinks its rate instead of
 * growing.  Memory: about 65 bytes per sample plus 8 KiB (520 KiB for 8192),
 * whatever the trace length or the number of blocks.  Mean absolute error of
 * the curve, with samples = 1% of the distinct blocks: below 0.004 on the
 * synthetic traces of tests/unit/test_mrc.c.
 *
 * Every call is thread-safe.  remoca_mrc_access takes the internal mutex only
 * for sampled references (about max_samples / distinct blocks of them).
 */
#ifndef REMOCA_MRC_H
#define REMOCA_MRC_H

#include <stddef.h>
#include <stdint.h>

struct remoca_mrc;

/* max_samples: sampled blocks held (>= 16; 8192 is plenty); max_cache_blocks:
 * the curve's domain, largest cache size asked about, in 4 KiB blocks (>= 1).
 * NULL (errno EINVAL or ENOMEM) on failure. */
struct remoca_mrc *remoca_mrc_new(uint32_t max_samples, uint64_t max_cache_blocks);
void remoca_mrc_free(struct remoca_mrc *m);

/* One read of one 4 KiB block. */
void remoca_mrc_access(struct remoca_mrc *m, uint64_t block);
/* A read of bytes [offset, offset + count): every 4 KiB block it touches,
 * partial ones included, once (nothing for count 0). */
void remoca_mrc_access_bytes(struct remoca_mrc *m, uint64_t offset, uint64_t count);

/* The curve at n = min(max_points, REMOCA_MRC_BUCKETS, max_cache_blocks)
 * cache sizes evenly spaced up to max_cache_blocks: sizes_blocks[i] =
 * max_cache_blocks * (i+1) / n (rounded down), miss_ratio[i] in [0, 1],
 * non-increasing in i.  Returns n.  Before any access every miss ratio is 1. */
size_t remoca_mrc_curve(const struct remoca_mrc *m, uint64_t *sizes_blocks, double *miss_ratio,
                        size_t max_points);
/* Miss ratio of an LRU cache of cache_blocks blocks (sizes past
 * max_cache_blocks answer as max_cache_blocks). */
double remoca_mrc_miss_ratio_at(const struct remoca_mrc *m, uint64_t cache_blocks);

/* Resolution of the curve: distance histogram buckets over the domain. */
#define REMOCA_MRC_BUCKETS 1024u

struct remoca_mrc_stats {
    uint64_t refs;        /* remoca_mrc_access calls */
    uint64_t sampled;     /* of those, sampled (hash at most the threshold) */
    double rate;          /* current sampling rate R, in (0, 1] */
    uint32_t samples;     /* sampled blocks held, <= max_samples */
    uint32_t max_samples; /* as created */
    uint64_t max_blocks;  /* the curve's domain, as created */
    size_t bytes;         /* memory of the estimator: fixed at creation */
};
void remoca_mrc_get_stats(const struct remoca_mrc *m, struct remoca_mrc_stats *st);

#endif
