/* SPDX-License-Identifier: BSD-3-Clause */
/* The engine's state and the steps lib/cache/cache.c shares with the guest
 * page hooks of lib/cache/pages.c (private to lib/cache). */
#ifndef REMOCA_LIB_ENGINE_H
#define REMOCA_LIB_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>

#include "remoca/cache.h"
#include "dir.h"
#include "evict.h"
#include "gen.h"

#define BS REMOCA_CACHE_BLOCK

/* Counters, in the order of struct remoca_cache_stats (all uint64_t). */
#define NSTATS (sizeof(struct remoca_cache_stats) / sizeof(uint64_t))

struct remoca_cache {
    uint64_t size;    /* bytes */
    uint64_t nblocks; /* whole blocks: the cacheable ones */
    enum remoca_write_policy write;
    enum remoca_cache_mode mode;
    const struct remoca_remote_ops *r;
    void *rctx;
    struct remoca_dir dir;
    struct gen_table gens;
    struct evict_maps ev;   /* exclusive mode only */
    struct remoca_mrc *mrc; /* the reads' miss-ratio curve; NULL: none */
    _Atomic uint64_t st[NSTATS];
};

#define STAT(field) (offsetof(struct remoca_cache_stats, field) / sizeof(uint64_t))
#define COUNT(c, field, n) \
    atomic_fetch_add_explicit(&(c)->st[STAT(field)], (n), memory_order_relaxed)

enum wop { OP_WRITE, OP_TRIM, OP_ZERO };

/* Feeds every block [offset, offset+count) touches to the miss-ratio curve,
 * partial ones once.  Called by the read hooks before anything else. */
void cache_mrc_feed(struct remoca_cache *c, uint64_t offset, uint32_t count);

/* A read (steps 1-4 of lib/cache/cache.c).  gens, if not NULL, receives for
 * each whole block [fb, lb) of the request the generation its data are valid
 * at: its unit's snapshot taken before its disk read or take (GEN_NONE if a
 * write was in progress).  Does not count the request. */
int cache_read_blocks(struct remoca_cache *c, const struct remoca_backing *b, void *buf,
                      uint32_t count, uint64_t offset, uint32_t flags, int *err, uint64_t *gens);
/* A write, trim or zero.  gens, if not NULL, receives for each block
 * [offset/4096, ...) the request touches (inside the disk) the generation at
 * the write's end if it succeeded and was alone on the stripe, else GEN_NONE.
 * Does not count the request. */
int cache_modify(struct remoca_cache *c, const struct remoca_backing *b, enum wop op,
                 const void *buf, uint32_t count, uint64_t offset, uint32_t flags, int *err,
                 uint64_t *gens);

#endif
