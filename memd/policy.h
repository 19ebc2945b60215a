/* SPDX-License-Identifier: BSD-3-Clause */
/* Eviction policies of a pool, over the intrusive queues of store.h.
 *
 *   LRU     q[0]: head = most recently used; victim = tail.
 *   CLOCK   q[0]: FIFO ring with a reference bit; the hand (tail) gives a
 *           second chance to referenced pages.
 *   S3-FIFO q[0] = small FIFO (10 % of the pool), q[1] = main FIFO; 2-bit
 *           frequency.  New keys enter small (or main if the ghost table
 *           remembers them); a small page used again is promoted to main,
 *           others leave after one short stay, so a scan cannot flush main.
 *   2Q      q[0] = A1in FIFO (25 %), q[1] = Am LRU; ghost hits enter Am.
 *
 * All operations are O(1) amortised; victim selection rotates at most each
 * page's small counter, so it is bounded.  Caller holds the store lock.
 *
 * Measured by tests/unit/test_memd_policy.c (hit ratios, 1000-page pool,
 * 200k accesses, GET then PUT on a miss; see docs/protocol.md "Eviction"):
 *   trace                         LRU    CLOCK  S3-FIFO  2Q
 *   hot 600 keys + 30 % scan      0.595  0.636  0.697    0.694   (best: 0.70)
 *   loop over 1200 keys           0.000  0.000  0.544    0.697
 *   zipf 0.9 over 5000 keys       0.655  0.665  0.712    0.687
 * Only keys evicted from the small queue (S3-FIFO) / A1in (2Q) are admitted
 * straight to main on return, as in the papers: admitting main-queue
 * evictions too dropped S3-FIFO's loop figure to 0.000.  The loop figures
 * moved (S3-FIFO 0.665 -> 0.544, 2Q 0.400 -> 0.697) when the ghost table
 * became exact per pool (ghost.c): more of a loop's returns now find ghosts.
 * S3-FIFO is the default (--policy).
 */
#ifndef MEMD_POLICY_H
#define MEMD_POLICY_H

#include "store.h"

void policy_insert(struct store *s, struct pool *p, uint32_t i, bool was_ghost);
void policy_hit(struct store *s, struct pool *p, uint32_t i);
void policy_unlink(struct store *s, struct pool *p, uint32_t i);
/* Picks the pool's next victim (still linked); MEMD_NIL if the pool is empty. */
uint32_t policy_victim(struct store *s, struct pool *p);

#endif
