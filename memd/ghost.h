/* SPDX-License-Identifier: BSD-3-Clause */
/* Ghost table: fingerprints of recently evicted (pool, key) pairs, bounded
 * per pool.
 *
 *   entries: one u64 per arena page (rounded up to a power of two), in sets
 *   of 4 ways; set = bits 20.. of hash(pool, key)
 *
 *          way 0   way 1   way 2   way 3
 *        +-------+-------+-------+-------+
 *   set 0| entry | entry |   0   | entry |
 *   set 1| entry |   0   | entry | entry |
 *    ... |                               |
 *        +-------+-------+-------+-------+
 *
 *   entry = | stamp:22 | pool-1:20 | fp:20 | admit:1 | valid:1 |
 *            fp = top 20 bits of the hash (key hashes only, never data)
 *
 *   per pool (indexed by id - 1):  clock = its evictions so far
 *                                  cap   = how many of the latest it keeps
 *                                  count = entries it holds in the table
 *
 * A get that misses probes its set: a match is a ghost hit, i.e. the page
 * would have been a hit with more memory.  An entry counts only while it is
 * among its pool's latest `cap` evictions (its stamp is that pool's clock at
 * the eviction), so each pool holds at most `cap` live ghosts, whatever the
 * others do: a pool that scans evicts a lot, but its ghosts age out as fast
 * and are the first replaced, so it cannot wash out another pool's ghosts.
 * An insert takes, in its set, an entry of the same key, else an empty or
 * aged-out one; else a pool already holding `cap` entries replaces its own
 * oldest there, or forgets the new ghost (it never displaces another pool's
 * live one); else the entry oldest relative to its own pool's cap goes.  The
 * store sets cap to max(pages, table / pools holding pages) (store.c): the
 * horizon a ghost list needs, what memory beyond the pool's size would save.
 */
#ifndef MEMD_GHOST_H
#define MEMD_GHOST_H

#include <stdbool.h>
#include <stdint.h>

#define GHOST_WAYS 4u

struct ghost {
    uint64_t *entries; /* nsets * GHOST_WAYS */
    uint64_t smask;    /* nsets - 1 */
    uint64_t *clock;   /* per pool: evictions so far */
    uint64_t *cap;     /* per pool: live ghosts kept, <= the table's entries */
    uint64_t *count;   /* per pool: entries it holds in the table (some aged out) */
    uint32_t max_pools;
    unsigned shift; /* stamps count clock >> shift (huge tables only) */
};

/* capacity: entries (rounded up to a power of two, at least 1024);
 * max_pools: pool ids 1..max_pools (at most 2^20).  0, or -1 (no memory). */
int ghost_init(struct ghost *g, uint64_t capacity, uint32_t max_pools);
void ghost_free(struct ghost *g);
/* Sets how many of its latest evictions pool keeps (clamped to the table). */
void ghost_set_cap(struct ghost *g, uint32_t pool, uint64_t cap);
uint64_t ghost_cap(const struct ghost *g, uint32_t pool);
/* Entries of the whole table. */
static inline uint64_t ghost_size(const struct ghost *g) { return (g->smask + 1) * GHOST_WAYS; }
/* Entries pool holds now, at most its cap (aged-out ones count until replaced). */
uint64_t ghost_count(const struct ghost *g, uint32_t pool);
/* Remembers h (= hash(pool, key)) as pool's latest eviction; `admit` marks
 * ghosts that the policy lets skip its probation queue when they come back
 * (S3-FIFO/2Q: evicted from the small queue). */
void ghost_add(struct ghost *g, uint32_t pool, uint64_t h, bool admit);
/* Is h a live ghost of pool (whatever its admit mark)? */
bool ghost_test(const struct ghost *g, uint32_t pool, uint64_t h);
/* Removes h; true if it was a live ghost marked admit. */
bool ghost_take(struct ghost *g, uint32_t pool, uint64_t h);

#endif
