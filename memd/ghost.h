/* SPDX-License-Identifier: BSD-3-Clause */
/* Ghost table: fingerprints of recently evicted (pool, key) pairs.
 *
 *   fp = hash(pool, key) | 3          entries[index(hash)] = fp, bit 1 = admit
 *                                     (direct-mapped)
 *   +-----+-----+-----+-----+-----+
 *   | fp  |  0  | fp  | fp  | ... |   one u64 per arena page (8 B per 4 KiB)
 *   +-----+-----+-----+-----+-----+
 *
 * A get that misses probes the table: a match is a ghost hit, i.e. the page
 * would have been a hit with more memory.  The table is bounded (as many
 * entries as the arena has pages), shared by all pools but tagged with the
 * pool id inside the fingerprint, so each pool sees only its own ghosts.  A
 * newer eviction that lands on the same entry simply replaces the older one:
 * the table remembers roughly the last `npages` evictions, which is the
 * horizon a ghost list needs (how much would twice the memory save).
 */
#ifndef MEMD_GHOST_H
#define MEMD_GHOST_H

#include <stdbool.h>
#include <stdint.h>

struct ghost {
    uint64_t *entries;
    uint64_t mask;
};

int ghost_init(struct ghost *g, uint64_t capacity);
void ghost_free(struct ghost *g);
/* Remembers h; `admit` marks ghosts that the policy lets skip its probation
 * queue when they come back (S3-FIFO/2Q: evicted from the small queue). */
void ghost_add(struct ghost *g, uint64_t h, bool admit);
/* Is h a ghost (whatever its admit mark)? */
bool ghost_test(const struct ghost *g, uint64_t h);
/* Removes h; true if it was a ghost marked admit. */
bool ghost_take(struct ghost *g, uint64_t h);

#endif
