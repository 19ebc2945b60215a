/* SPDX-License-Identifier: BSD-3-Clause */
/* Binds the seal's sealed remote (remoca/seal.h) to a libremoca client opened
 * with opts.sealed (lib/client: remoca_get_sealed / remoca_put_sealed carry a
 * 32-byte sidecar per page), and decides for the front ends whether to seal.
 *
 *   front end ──▶ engine ──remote ops──▶ seal ──sealed ops (here)──▶ client ──▶ servers
 *
 * The ordering guarantees are the client's own (cache_remote.c): no-wait puts
 * and deletes are ordered on their connection when the call returns, and a
 * take always goes over the wire behind them.
 */
#include <string.h>

#include "remoca/client.h"
#include "remoca/seal.h"

_Static_assert(REMOCA_SIDE_SIZE == REMOCA_SEAL_SIDE, "the wire's sidecar is the seal's");

static unsigned cs_get(void *c, uint64_t key, uint32_t n, void *pages, void *sides, uint64_t *hits)
{
    return remoca_get_sealed(c, key, n, pages, sides, hits, false);
}

static unsigned cs_take(void *c, uint64_t key, uint32_t n, void *pages, void *sides, uint64_t *hits)
{
    return remoca_get_sealed(c, key, n, pages, sides, hits, true);
}

static int cs_put(void *c, uint64_t key, uint32_t n, const void *pages, const void *sides)
{
    return remoca_put_sealed(c, key, n, pages, sides, false);
}

static int cs_del(void *c, uint64_t key, uint64_t n) { return remoca_delete(c, key, n, false); }

static int cs_reset(void *c) { return remoca_pool_reset(c); }

const struct remoca_sealed_ops remoca_client_sealed_ops = {
    .get_sealed = cs_get,
    .take_sealed = cs_take,
    .put_sealed = cs_put,
    .del = cs_del,
    .reset = cs_reset,
};

int remoca_seal_mode_parse(const char *s, enum remoca_seal_mode *m)
{
    if (!strcmp(s, "on"))
        *m = REMOCA_SEAL_ON;
    else if (!strcmp(s, "off"))
        *m = REMOCA_SEAL_OFF;
    else if (!strcmp(s, "auto"))
        *m = REMOCA_SEAL_AUTO;
    else
        return -1;
    return 0;
}

bool remoca_seal_wanted(enum remoca_seal_mode m, const char *servers)
{
    return m == REMOCA_SEAL_AUTO ? remoca_servers_remote(servers) : m == REMOCA_SEAL_ON;
}
