/* SPDX-License-Identifier: BSD-3-Clause */
/* Ghost table (see ghost.h): 4-way sets of 64-bit entries, aged per pool.
 * Callers pass a well-mixed hash of (pool, key): bits 20.. pick the set, the
 * top 20 bits are the fingerprint; 0 marks an empty entry. */
#include "ghost.h"

#include <stdlib.h>
#include <string.h>

#define VALID 1ull
#define ADMIT 2ull
#define FP_SHIFT 2
#define POOL_SHIFT 22
#define STAMP_SHIFT 42
#define STAMP_MASK ((1ull << 22) - 1)
#define POOL_MASK ((1ull << 20) - 1)
#define ID_MASK (((1ull << STAMP_SHIFT) - 1) & ~ADMIT) /* valid, fp, pool */

int ghost_init(struct ghost *g, uint64_t capacity, uint32_t max_pools)
{
    memset(g, 0, sizeof *g);
    uint64_t n = 1024;
    while (n < capacity) n <<= 1;
    if (max_pools == 0 || max_pools > POOL_MASK + 1) return -1;
    g->entries = calloc(n, sizeof *g->entries);
    g->clock = calloc(max_pools, sizeof *g->clock);
    g->cap = calloc(max_pools, sizeof *g->cap);
    g->count = calloc(max_pools, sizeof *g->count);
    if (!g->entries || !g->clock || !g->cap || !g->count) {
        ghost_free(g);
        return -1;
    }
    g->smask = n / GHOST_WAYS - 1;
    g->max_pools = max_pools;
    /* Stamps have 22 bits: a cap of the whole table must stay well inside
     * them (2^21 units), so that a live entry's age never wraps.  An entry
     * 2^22 units old would look young again, but its set is refilled long
     * before (every insert prefers it). */
    while ((n >> g->shift) >= (1ull << 21)) g->shift++;
    return 0;
}

void ghost_free(struct ghost *g)
{
    free(g->entries);
    free(g->clock);
    free(g->cap);
    free(g->count);
    memset(g, 0, sizeof *g);
}

/* cap[k] == 0 stands for the whole table: the arrays are calloc'ed and stay
 * untouched (not resident) for pools never created. */
static inline uint64_t cap_k(const struct ghost *g, uint64_t k)
{
    return g->cap[k] ? g->cap[k] : ghost_size(g);
}

void ghost_set_cap(struct ghost *g, uint32_t pool, uint64_t cap)
{
    uint64_t n = ghost_size(g);
    if (pool >= 1 && pool <= g->max_pools) g->cap[pool - 1] = cap == 0 ? 1 : cap < n ? cap : n;
}

uint64_t ghost_cap(const struct ghost *g, uint32_t pool)
{
    return pool >= 1 && pool <= g->max_pools ? cap_k(g, pool - 1) : 0;
}

uint64_t ghost_count(const struct ghost *g, uint32_t pool)
{
    if (pool < 1 || pool > g->max_pools) return 0;
    uint64_t c = cap_k(g, pool - 1);
    return g->count[pool - 1] < c ? g->count[pool - 1] : c;
}

static inline uint64_t ident(uint32_t pool, uint64_t h)
{
    return VALID | (h >> 44) << FP_SHIFT | (uint64_t)(pool - 1) << POOL_SHIFT;
}

static inline uint64_t *set_of(const struct ghost *g, uint64_t h)
{
    return &g->entries[((h >> 20) & g->smask) * GHOST_WAYS];
}

/* Age of entry e in its pool's stamp units, and that pool's cap in them. */
static inline uint64_t age_of(const struct ghost *g, uint64_t e)
{
    uint64_t k = (e >> POOL_SHIFT) & POOL_MASK;
    return ((g->clock[k] >> g->shift) - (e >> STAMP_SHIFT)) & STAMP_MASK;
}

static inline uint64_t cap_of(const struct ghost *g, uint64_t e)
{
    uint64_t k = (e >> POOL_SHIFT) & POOL_MASK;
    return (cap_k(g, k) + (1ull << g->shift) - 1) >> g->shift;
}

static inline bool live(const struct ghost *g, uint64_t e)
{
    return (e & VALID) && age_of(g, e) < cap_of(g, e);
}

void ghost_add(struct ghost *g, uint32_t pool, uint64_t h, bool admit)
{
    if (pool < 1 || pool > g->max_pools) return;
    uint64_t id = ident(pool, h), *set = set_of(g, h);
    uint64_t stamp = (++g->clock[pool - 1] >> g->shift) & STAMP_MASK;
    /* The way to take: the same key, else empty or aged out; else a pool that
     * holds its cap already takes its own oldest, or drops the new ghost (it
     * never displaces another pool's live one); else the entry oldest for
     * its own pool (largest age / cap, compared crosswise). */
    unsigned pick = GHOST_WAYS;
    for (unsigned w = 0; w < GHOST_WAYS && pick == GHOST_WAYS; w++)
        if ((set[w] & ID_MASK) == id) pick = w;
    for (unsigned w = 0; w < GHOST_WAYS && pick == GHOST_WAYS; w++)
        if (!live(g, set[w])) pick = w;
    if (pick == GHOST_WAYS && g->count[pool - 1] >= cap_k(g, pool - 1)) {
        uint64_t best_age = 0;
        for (unsigned w = 0; w < GHOST_WAYS; w++) {
            uint64_t e = set[w];
            if (((e >> POOL_SHIFT) & POOL_MASK) == pool - 1 && age_of(g, e) >= best_age) {
                pick = w;
                best_age = age_of(g, e);
            }
        }
        if (pick == GHOST_WAYS) return;
    }
    if (pick == GHOST_WAYS) {
        pick = 0;
        uint64_t best_age = age_of(g, set[0]), best_cap = cap_of(g, set[0]);
        for (unsigned w = 1; w < GHOST_WAYS; w++) {
            uint64_t age = age_of(g, set[w]), cap = cap_of(g, set[w]);
            if ((unsigned __int128)age * best_cap > (unsigned __int128)best_age * cap) {
                pick = w;
                best_age = age;
                best_cap = cap;
            }
        }
    }
    if (set[pick] & VALID) g->count[(set[pick] >> POOL_SHIFT) & POOL_MASK]--;
    g->count[pool - 1]++;
    set[pick] = id | (admit ? ADMIT : 0) | stamp << STAMP_SHIFT;
}

/* The way holding pool's live ghost h, or -1. */
static int find(const struct ghost *g, uint32_t pool, uint64_t h)
{
    if (pool < 1 || pool > g->max_pools) return -1;
    uint64_t id = ident(pool, h);
    const uint64_t *set = set_of(g, h);
    for (unsigned w = 0; w < GHOST_WAYS; w++)
        if ((set[w] & ID_MASK) == id && live(g, set[w])) return (int)w;
    return -1;
}

bool ghost_test(const struct ghost *g, uint32_t pool, uint64_t h) { return find(g, pool, h) >= 0; }

bool ghost_take(struct ghost *g, uint32_t pool, uint64_t h)
{
    int w = find(g, pool, h);
    if (w < 0) return false;
    uint64_t *e = &set_of(g, h)[w];
    bool admit = *e & ADMIT;
    *e = 0;
    g->count[pool - 1]--;
    return admit;
}
