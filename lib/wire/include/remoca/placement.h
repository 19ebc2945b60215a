/* SPDX-License-Identifier: BSD-3-Clause */
/* Placement of keys on memory servers: weighted rendezvous (highest random
 * weight) hashing over chunks of REMOCA_PLACEMENT_CHUNK consecutive keys,
 * exact in integers, so that a client (lib/client) and a server (memd's
 * POOL_KEEP) compute bit-identical owners.
 *
 *   key ──▶ chunk = key / 64 ──▶ score(s) = max over r < w_s of XXH3_64(chunk_le64, seed_s + r)
 *                               owner = argmax score (ties: lowest index)
 *
 *   server s: seed_s = XXH3_64(canonical address)   weight w_s in 1..16
 *
 * Weights.  A server of weight w draws w independent uniform 64-bit scores
 * per chunk and keeps the largest, which is what w servers of weight 1 would
 * do together: it wins a share w / sum(w) of the chunks, with no floating
 * point (the classic -w/ln(h) form of weighted rendezvous needs logarithms,
 * whose last bits differ between libms).  Weight 1 is the unweighted hash
 * (r = 0: seed_s itself), so lists without weights place as before.
 *
 * Properties (tests/unit/test_placement.c checks each):
 * - deterministic across processes, hosts and list orders (seeds come from
 *   addresses; ties need two equal 64-bit hashes);
 * - adding a server of weight w to a total weight W takes about w/(W+w) of
 *   the chunks, all of them to itself; removing one moves only its own
 *   chunks (every other chunk keeps its maximum); changing a weight moves
 *   chunks only to or from that server.
 * Cost: sum(w) hashes of 8 bytes per chunk, about 2 ns each; one server
 * skips hashing.
 */
#ifndef REMOCA_PLACEMENT_H
#define REMOCA_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#define REMOCA_PLACEMENT_CHUNK 64u /* keys (256 KiB) placed together */
#define REMOCA_MAX_SERVERS 64u
#define REMOCA_MAX_WEIGHT 16u

struct remoca_placement {
    unsigned n;
    uint64_t seed[REMOCA_MAX_SERVERS];  /* remoca_placement_seed of each address */
    uint8_t weight[REMOCA_MAX_SERVERS]; /* 1..REMOCA_MAX_WEIGHT */
};

/* The seed of a server: the hash of its canonical address. */
uint64_t remoca_placement_seed(const char *canon, size_t len);

/* n <= REMOCA_MAX_SERVERS servers; weights are clamped to 1..REMOCA_MAX_WEIGHT
 * (weights NULL: all 1). */
void remoca_placement_set(struct remoca_placement *p, unsigned n, const uint64_t *seeds,
                          const uint8_t *weights);

/* Owner (index) of a chunk (key / REMOCA_PLACEMENT_CHUNK), and of a key. */
unsigned remoca_placement_chunk(const struct remoca_placement *p, uint64_t chunk);
static inline unsigned remoca_placement_key(const struct remoca_placement *p, uint64_t key)
{
    return p->n <= 1 ? 0 : remoca_placement_chunk(p, key / REMOCA_PLACEMENT_CHUNK);
}

/* POOL_KEEP body (docs/protocol.md): the members and which one the receiver
 * is.  u16 n (1..64), u16 self (< n), then n times u64 seed, u8 weight
 * (1..16); seeds distinct.  Encode returns the bytes written (at most
 * REMOCA_KEEP_MAX_BODY) or 0 if p is out of bounds; decode 0 or -1. */
#define REMOCA_KEEP_ENTRY 9u
#define REMOCA_KEEP_MAX_BODY (4u + REMOCA_MAX_SERVERS * REMOCA_KEEP_ENTRY)
size_t remoca_keep_encode(uint8_t *out, size_t cap, const struct remoca_placement *p,
                          unsigned self);
int remoca_keep_decode(const uint8_t *in, size_t len, struct remoca_placement *p, unsigned *self);

#endif
