/* SPDX-License-Identifier: BSD-3-Clause */
/* Generation stripes: the fill race rule (docs/design.md, contract 3).
 *
 *   unit = block >> 5 (32 blocks, 128 KiB)      stripe = unit % 1024
 *
 *   s[]  ┌──────────────────────┐┌──────────────────────┐
 *        │ lock │ gen │ writers ││ lock │ gen │ writers │ ...  (one cache line each)
 *        └──────────────────────┘└──────────────────────┘
 *
 * Two units that share a stripe (they are 128 MiB apart) share its counters:
 * that only makes a fill more often skipped, never wrong.
 *
 * The rule (the proof that it is enough is in lib/cache/cache.c):
 *   write/trim/zero:  {lock; writers++; gen++; unlock}  disk op
 *                     {lock; writers--; gen++; [write-update: put] unlock}
 *                     then order the delete of its blocks, then acknowledge.
 *   read miss (fill): g = {lock; writers ? NONE : gen; unlock}  disk read
 *                     {lock; if g != NONE && gen == g && !writers: order put; unlock}
 * Readers never hold two stripe locks at once and writers neither, so there is
 * no lock ordering to get wrong.
 */
#include <stdlib.h>

#include "gen.h"

int gen_init(struct gen_table *g)
{
    if (posix_memalign((void **)&g->s, 64, GEN_STRIPES * sizeof *g->s)) return -1;
    for (unsigned i = 0; i < GEN_STRIPES; i++) {
        pthread_mutex_init(&g->s[i].lock, NULL);
        g->s[i].gen = 0;
        g->s[i].writers = 0;
    }
    return 0;
}

void gen_destroy(struct gen_table *g)
{
    if (!g->s) return;
    for (unsigned i = 0; i < GEN_STRIPES; i++) pthread_mutex_destroy(&g->s[i].lock);
    free(g->s);
    g->s = NULL;
}

uint64_t gen_snapshot(struct gen_table *g, uint64_t unit)
{
    struct gen_stripe *s = gen_stripe(g, unit);
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->writers ? GEN_NONE : s->gen;
    pthread_mutex_unlock(&s->lock);
    return v;
}

uint64_t gen_write_begin(struct gen_table *g, uint64_t unit, void (*hook)(void *, uint64_t),
                         void *ctx)
{
    struct gen_stripe *s = gen_stripe(g, unit);
    pthread_mutex_lock(&s->lock);
    s->writers++;
    uint64_t v = ++s->gen;
    if (hook) hook(ctx, unit); /* the sealed remote's version bump (lib/seal/) */
    pthread_mutex_unlock(&s->lock);
    return v;
}
