/* SPDX-License-Identifier: BSD-3-Clause */
/* The VMs' remote shares on the memory servers.
 *
 *   read:  remoca_stats_query (JSON) ─▶ budget_bytes, and per pool of ours
 *          bytes (pages held now), min_bytes, max_bytes, weight
 *   set:   remoca_pool_update (lib/client/stats_query.c): connect ─▶ HELLO
 *          (answering a --secret challenge) ─▶ POOL_OPEN with the new
 *          min/max/weight ─▶ close
 *
 * Why not remoca_client_new with the new parameters: a client resets its pool
 * when it connects (docs/design.md, contract 4), which would throw away the
 * VM's remote cache at every change of its share.  A POOL_OPEN of an existing
 * name only updates the parameters (memd/proto.c, "reopened"); the pages stay.
 * A front end that reconnects opens its pool with its own parameters again:
 * the balancer sees the difference in the next loop's stats and sets them
 * again. */
#ifndef REMOCA_BALANCER_SHARE_H
#define REMOCA_BALANCER_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct share_pool {
    bool found; /* the server has a pool of that name */
    uint64_t bytes, min_bytes, max_bytes;
    uint32_t weight;
};

struct share_server {
    uint64_t budget;     /* the server's memory, bytes */
    uint64_t others_min; /* minimums of pools that are not ours, bytes */
};

/* One server's stats for the n pools named in names (out[i] for names[i]),
 * asked as tenant (NULL: no tenant). */
int share_read(const char *addr, const char *tenant, const char *secret, unsigned timeout_ms,
               const char *const *names, unsigned n, struct share_server *srv,
               struct share_pool *out, char *err, size_t errlen);

#endif
