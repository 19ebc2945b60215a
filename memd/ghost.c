/* SPDX-License-Identifier: BSD-3-Clause */
/* Ghost table (see ghost.h): a direct-mapped array of 64-bit fingerprints.
 * Callers pass a well-mixed hash; 0 marks an empty entry. */
#include "ghost.h"

#include <stdlib.h>
#include <string.h>

int ghost_init(struct ghost *g, uint64_t capacity)
{
    uint64_t n = 1024;
    while (n < capacity) n <<= 1;
    g->entries = calloc(n, sizeof *g->entries);
    if (!g->entries) return -1;
    g->mask = n - 1;
    return 0;
}

void ghost_free(struct ghost *g)
{
    free(g->entries);
    g->entries = NULL;
}

/* Fingerprint: bit 0 set (0 = empty), bit 1 = admit mark. */
static inline uint64_t fp(uint64_t h) { return h | 3; }
static inline uint64_t slot_of(const struct ghost *g, uint64_t h) { return (h >> 20) & g->mask; }

void ghost_add(struct ghost *g, uint64_t h, bool admit)
{
    g->entries[slot_of(g, h)] = admit ? fp(h) : fp(h) & ~(uint64_t)2;
}

bool ghost_test(const struct ghost *g, uint64_t h)
{
    return (g->entries[slot_of(g, h)] | 2) == fp(h);
}

bool ghost_take(struct ghost *g, uint64_t h)
{
    uint64_t *e = &g->entries[slot_of(g, h)];
    if ((*e | 2) != fp(h)) return false;
    bool admit = *e & 2;
    *e = 0;
    return admit;
}
