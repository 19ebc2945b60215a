/* SPDX-License-Identifier: BSD-3-Clause */
/* Placement of keys on memory servers: rendezvous (highest random weight)
 * hashing over chunks of REMOCA_PLACEMENT_CHUNK consecutive keys.
 *
 *   key ──▶ chunk = key / 64 ──▶ for each server s: score(s) = XXH3(chunk, seed_s)
 *                               server = argmax score (ties: lowest index)
 *
 * seed_s is the 64-bit hash of server s's canonical address, so a server's
 * scores do not depend on the other servers or on list order.  Consequences:
 * - deterministic across processes and restarts;
 * - chunks spread uniformly (scores are independent uniform draws);
 * - removing server s moves only the chunks whose argmax was s (every other
 *   chunk keeps the same maximum); adding one takes ~1/(n+1) of the chunks.
 * Chunking keeps a multi-block read (up to 256 KiB aligned) on one server, so
 * it costs one frame and one round trip.  Cost: n hashes of 8 bytes per chunk,
 * about 2 ns each; one server skips hashing entirely.
 */
#include <string.h>
#include <xxhash.h>

#include "client_internal.h"

void remoca_placement_init(struct remoca_placement *p, const struct remoca_addr *addrs, unsigned n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    for (unsigned i = 0; i < n && i < REMOCA_MAX_SERVERS; i++)
        p->seed[i] = XXH3_64bits(addrs[i].canon, strlen(addrs[i].canon));
}

unsigned remoca_placement_chunk(const struct remoca_placement *p, uint64_t chunk)
{
    if (p->n <= 1) return 0;
    uint8_t le[8];
    remoca_put_le64(le, chunk);
    unsigned best = 0;
    uint64_t best_score = XXH3_64bits_withSeed(le, sizeof le, p->seed[0]);
    for (unsigned i = 1; i < p->n; i++) {
        uint64_t s = XXH3_64bits_withSeed(le, sizeof le, p->seed[i]);
        if (s > best_score) {
            best_score = s;
            best = i;
        }
    }
    return best;
}
