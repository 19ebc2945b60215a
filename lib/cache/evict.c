/* SPDX-License-Identifier: BSD-3-Clause */
/* Page and block maps of exclusive mode: the memory of eviction inference.
 *
 *   page map: one entry per guest page, indexed by its dense page index P
 *
 *   page[]  ┌─────────────────────────┐┌─────────────────────────┐
 *           │ block X │ hash │ gen    ││ EVICT_NONE │  -  │  -   │ ...  24 bytes each
 *           └─────────────────────────┘└─────────────────────────┘
 *                ▲ P = slot - 1           (no association)
 *                │
 *   slot[]  ┌───┬───┬─────┬───┬───┬───┐  block map: linear probing, 2 slots per
 *           │ 0 │ 0 │ P+1 │ 0 │Q+1│ 0 │  guest page (load <= 1/2), 4 bytes each;
 *           └───┴───┴─────┴───┴───┴───┘  home(X) = mix(X) * cap >> 64
 *
 * A slot stores only a page: its key is page[slot - 1].block, so a slot costs
 * 4 bytes, not 12 (32 bytes per guest page in all: 8 MiB per GiB of guest
 * RAM, whatever the disk's size).  That needs one invariant, kept by every
 * function here: a slot naming P is for block page[P].block.  So a slot is
 * removed before its page's entry changes (evict_detach), and a page whose
 * block got a newer page keeps its entry without a slot (the newest-page rule:
 * only the newest page of X may be put as X).  At most one slot per page, so
 * at most npages slots are used of 2 * npages: a probe always ends at an
 * empty slot, and is short.  Removal shifts the later entries of the probe run
 * back (Knuth's algorithm R): no tombstones, no rehashing ever.
 *
 * One mutex guards both maps.  The engine takes it once per request for all
 * its pages and holds it only for these lookups, never together with a
 * generation stripe lock and never across a copy, hash or remote call
 * (lib/cache/pages.c).
 */
#include <errno.h>
#include <stdlib.h>

#include "evict.h"

size_t evict_bytes(uint64_t npages)
{
    return (size_t)npages * (sizeof(struct evict_assoc) + 2 * sizeof(uint32_t));
}

static int alloc_maps(struct evict_maps *m, uint64_t npages)
{
    m->npages = 0;
    m->cap = 0;
    m->page = NULL;
    m->slot = NULL;
    if (npages == 0) return 0;
    if (npages > EVICT_MAX_PAGES) return -1;
    m->page = malloc(npages * sizeof *m->page);
    m->slot = calloc(2 * npages, sizeof *m->slot);
    if (!m->page || !m->slot) {
        free(m->page);
        free(m->slot);
        m->page = NULL;
        m->slot = NULL;
        return -1;
    }
    for (uint64_t p = 0; p < npages; p++) m->page[p].block = EVICT_NONE;
    m->npages = npages;
    m->cap = 2 * npages;
    return 0;
}

int evict_init(struct evict_maps *m, uint64_t npages)
{
    pthread_mutex_init(&m->lock, NULL);
    return alloc_maps(m, npages);
}

void evict_destroy(struct evict_maps *m)
{
    free(m->page);
    free(m->slot);
    m->page = NULL;
    m->slot = NULL;
    pthread_mutex_destroy(&m->lock);
}

int evict_reset(struct evict_maps *m, uint64_t npages)
{
    pthread_mutex_lock(&m->lock);
    free(m->page);
    free(m->slot);
    int r = alloc_maps(m, npages);
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* The home slot of block: a 64-bit mix (murmur3's finalizer), then a
 * multiply-shift into [0, cap) (cap need not be a power of two). */
static uint64_t home(const struct evict_maps *m, uint64_t block)
{
    uint64_t h = block;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (uint64_t)(((unsigned __int128)h * m->cap) >> 64);
}

static uint64_t next(const struct evict_maps *m, uint64_t i) { return i + 1 == m->cap ? 0 : i + 1; }

/* The slot of block, or (not found) the empty slot where it would go. */
static uint64_t find(const struct evict_maps *m, uint64_t block, bool *found)
{
    uint64_t i = home(m, block);
    while (m->slot[i]) {
        if (m->page[m->slot[i] - 1].block == block) {
            *found = true;
            return i;
        }
        i = next(m, i);
    }
    *found = false;
    return i;
}

/* Empties slot i, moving back the entries after it whose home allows. */
static void remove_slot(struct evict_maps *m, uint64_t i)
{
    for (uint64_t j = next(m, i); m->slot[j]; j = next(m, j)) {
        uint64_t k = home(m, m->page[m->slot[j] - 1].block);
        /* The entry at j stays if its home k lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        m->slot[i] = m->slot[j];
        i = j;
    }
    m->slot[i] = 0;
}

uint64_t evict_lookup(const struct evict_maps *m, uint64_t block)
{
    bool found;
    if (!m->cap) return EVICT_NONE;
    uint64_t i = find(m, block, &found);
    return found ? m->slot[i] - 1 : EVICT_NONE;
}

bool evict_detach(struct evict_maps *m, uint64_t p, struct evict_assoc *a)
{
    a->block = EVICT_NONE;
    if (p >= m->npages) return false;
    *a = m->page[p];
    if (a->block == EVICT_NONE) return false;
    bool found, newest = false;
    uint64_t i = find(m, a->block, &found);
    if (found && m->slot[i] == p + 1) {
        remove_slot(m, i);
        newest = true;
    }
    m->page[p].block = EVICT_NONE;
    return newest;
}

void evict_attach(struct evict_maps *m, uint64_t p, const struct evict_assoc *a)
{
    struct evict_assoc old;
    if (p >= m->npages) return;
    evict_detach(m, p, &old);
    if (a->block == EVICT_NONE) return;
    m->page[p] = *a;
    bool found;
    uint64_t i = find(m, a->block, &found);
    m->slot[i] = (uint32_t)(p + 1); /* found: an older page loses its slot */
}
