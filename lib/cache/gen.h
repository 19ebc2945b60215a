/* SPDX-License-Identifier: BSD-3-Clause */
/* Generation stripes: the fill race rule of the cache engine (lib/cache/gen.c). */
#ifndef REMOCA_LIB_GEN_H
#define REMOCA_LIB_GEN_H

#include <pthread.h>
#include <stdint.h>

#define GEN_UNIT_SHIFT 5u /* 32 blocks (128 KiB) per unit */
#define GEN_STRIPES 1024u /* power of two */

struct gen_stripe {
    pthread_mutex_t lock;
    uint64_t gen;     /* bumped when a write starts and when it ends */
    uint32_t writers; /* writes in progress on this stripe */
} __attribute__((aligned(64)));

struct gen_table {
    struct gen_stripe *s;
};

int gen_init(struct gen_table *g);
void gen_destroy(struct gen_table *g);

static inline uint64_t gen_unit(uint64_t block) { return block >> GEN_UNIT_SHIFT; }
static inline uint64_t gen_unit_first(uint64_t unit) { return unit << GEN_UNIT_SHIFT; }
static inline struct gen_stripe *gen_stripe(struct gen_table *g, uint64_t unit)
{
    return &g->s[unit & (GEN_STRIPES - 1)];
}

#define GEN_NONE UINT64_MAX /* a snapshot taken while a writer was in progress */

/* A reader's snapshot before its disk read: the stripe's gen, or GEN_NONE if a
 * write is in progress there. */
uint64_t gen_snapshot(struct gen_table *g, uint64_t unit);
/* A writer entering the stripe: writers++, gen++, then hook(ctx, unit) if
 * not NULL, all under the stripe lock; returns the new gen. */
uint64_t gen_write_begin(struct gen_table *g, uint64_t unit, void (*hook)(void *, uint64_t),
                         void *ctx);

#endif
