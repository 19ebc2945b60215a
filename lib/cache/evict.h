/* SPDX-License-Identifier: BSD-3-Clause */
/* Page and block maps of exclusive mode: which guest page holds which block
 * (lib/cache/evict.c). */
#ifndef REMOCA_LIB_EVICT_H
#define REMOCA_LIB_EVICT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVICT_NONE UINT64_MAX                      /* page map: no block */
#define EVICT_MAX_PAGES ((uint64_t)UINT32_MAX - 1) /* block map slots hold page + 1 */

/* What page P held when it was last delivered or written. */
struct evict_assoc {
    uint64_t block; /* EVICT_NONE: nothing */
    uint64_t hash;  /* XXH3-64 of the block's data as delivered */
    uint64_t gen;   /* stripe generation the data are valid at */
};

struct evict_maps {
    pthread_mutex_t lock; /* guards everything below */
    uint64_t npages;      /* bound: page indices < npages */
    struct evict_assoc *page;
    uint32_t *slot; /* block map: page + 1, 0 = empty; key = page[slot-1].block */
    uint64_t cap;   /* slots: 2 * npages */
};

/* Bytes of both maps for n guest pages. */
size_t evict_bytes(uint64_t npages);
int evict_init(struct evict_maps *m, uint64_t npages);
void evict_destroy(struct evict_maps *m);
/* Forgets everything; npages is the new bound.  -1 (maps empty, bound 0) if
 * out of memory. */
int evict_reset(struct evict_maps *m, uint64_t npages);

/* The following need m->lock held. */

/* Removes page p's association: *a gets it (block EVICT_NONE if none), and
 * the result says whether the block map named p for it (then that entry is
 * removed too).  p >= npages: nothing, false. */
bool evict_detach(struct evict_maps *m, uint64_t p, struct evict_assoc *a);
/* Page p now holds a (after detaching what it held); block a->block ──▶ p.
 * p >= npages (the maps were reset meanwhile): nothing. */
void evict_attach(struct evict_maps *m, uint64_t p, const struct evict_assoc *a);
/* The newest page for block, or EVICT_NONE. */
uint64_t evict_lookup(const struct evict_maps *m, uint64_t block);

#endif
