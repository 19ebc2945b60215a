/* SPDX-License-Identifier: BSD-3-Clause */
/* The placement of a server list: each address's seed (the hash of its
 * canonical name, so placement does not depend on list order) and weight.
 * The hash itself, weighted rendezvous over chunks of 64 keys, is shared
 * with memd's POOL_KEEP: lib/wire/placement.c, where its properties are
 * stated. */
#include <string.h>

#include "client_internal.h"

void remoca_placement_init(struct remoca_placement *p, const struct remoca_addr *addrs, unsigned n)
{
    uint64_t seeds[REMOCA_MAX_SERVERS];
    uint8_t weights[REMOCA_MAX_SERVERS];
    if (n > REMOCA_MAX_SERVERS) n = REMOCA_MAX_SERVERS;
    for (unsigned i = 0; i < n; i++) {
        seeds[i] = remoca_placement_seed(addrs[i].canon, strlen(addrs[i].canon));
        weights[i] = addrs[i].weight ? addrs[i].weight : 1;
    }
    remoca_placement_set(p, n, seeds, weights);
}
