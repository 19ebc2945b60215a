/* SPDX-License-Identifier: BSD-3-Clause */
/* Weighted rendezvous placement and the POOL_KEEP body (the rules and their
 * properties: include/remoca/placement.h). */
#include "remoca/placement.h"

#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#include "remoca/wire.h"

uint64_t remoca_placement_seed(const char *canon, size_t len) { return XXH3_64bits(canon, len); }

void remoca_placement_set(struct remoca_placement *p, unsigned n, const uint64_t *seeds,
                          const uint8_t *weights)
{
    memset(p, 0, sizeof *p);
    if (n > REMOCA_MAX_SERVERS) n = REMOCA_MAX_SERVERS;
    p->n = n;
    for (unsigned i = 0; i < n; i++) {
        unsigned w = weights ? weights[i] : 1;
        p->seed[i] = seeds[i];
        p->weight[i] = (uint8_t)(w < 1 ? 1 : w > REMOCA_MAX_WEIGHT ? REMOCA_MAX_WEIGHT : w);
    }
}

unsigned remoca_placement_chunk(const struct remoca_placement *p, uint64_t chunk)
{
    if (p->n <= 1) return 0;
    uint8_t le[8];
    remoca_put_le64(le, chunk);
    unsigned best = 0;
    uint64_t best_score = 0;
    bool scored = false;
    for (unsigned i = 0; i < p->n; i++) {
        for (unsigned r = 0; r < p->weight[i]; r++) {
            uint64_t s = XXH3_64bits_withSeed(le, sizeof le, p->seed[i] + r);
            if (!scored || s > best_score) { /* strict: ties keep the lowest index */
                best_score = s;
                best = i;
                scored = true;
            }
        }
    }
    return best;
}

size_t remoca_keep_encode(uint8_t *out, size_t cap, const struct remoca_placement *p, unsigned self)
{
    if (p->n < 1 || p->n > REMOCA_MAX_SERVERS || self >= p->n) return 0;
    size_t need = 4 + (size_t)p->n * REMOCA_KEEP_ENTRY;
    if (cap < need) return 0;
    remoca_put_le16(out, (uint16_t)p->n);
    remoca_put_le16(out + 2, (uint16_t)self);
    for (unsigned i = 0; i < p->n; i++) {
        uint8_t *e = out + 4 + (size_t)i * REMOCA_KEEP_ENTRY;
        if (p->weight[i] < 1 || p->weight[i] > REMOCA_MAX_WEIGHT) return 0;
        remoca_put_le64(e, p->seed[i]);
        e[8] = p->weight[i];
    }
    return need;
}

int remoca_keep_decode(const uint8_t *in, size_t len, struct remoca_placement *p, unsigned *self)
{
    if (len < 4) return -1;
    unsigned n = remoca_get_le16(in), s = remoca_get_le16(in + 2);
    if (n < 1 || n > REMOCA_MAX_SERVERS || s >= n || len != 4 + (size_t)n * REMOCA_KEEP_ENTRY)
        return -1;
    memset(p, 0, sizeof *p);
    p->n = n;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = in + 4 + (size_t)i * REMOCA_KEEP_ENTRY;
        p->seed[i] = remoca_get_le64(e);
        p->weight[i] = e[8];
        if (e[8] < 1 || e[8] > REMOCA_MAX_WEIGHT) return -1;
        for (unsigned j = 0; j < i; j++)
            if (p->seed[j] == p->seed[i]) return -1;
    }
    *self = s;
    return 0;
}
