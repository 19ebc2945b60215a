/* SPDX-License-Identifier: BSD-3-Clause */
/* Binds the cache engine's remote ops table to a libremoca client.
 *
 * The engine only needs four verbs (lib/cache/include/remoca/cache.h); the client core
 * (lib/client/include/remoca/client.h) provides them with the ordering guarantee the
 * engine's proof depends on: no-wait puts and deletes are ordered on their
 * connection when the call returns.  get never takes; take (exclusive mode)
 * is remoca_get with take=true, which always goes over the wire, behind every
 * put and delete of its keys ordered before it (never a one-sided read).
 */
#include "remoca/cache.h"
#include "remoca/client.h"

static unsigned cr_get(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return remoca_get(ctx, key, count, pages, hits, false);
}

static unsigned cr_take(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return remoca_get(ctx, key, count, pages, hits, true);
}

static int cr_put(void *ctx, uint64_t key, uint32_t count, const void *pages)
{
    return remoca_put(ctx, key, count, pages, false);
}

static int cr_del(void *ctx, uint64_t key, uint64_t count)
{
    return remoca_delete(ctx, key, count, false);
}

static int cr_reset(void *ctx) { return remoca_pool_reset(ctx); }

const struct remoca_remote_ops remoca_client_remote_ops = {
    .get = cr_get,
    .put = cr_put,
    .del = cr_del,
    .reset = cr_reset,
    .take = cr_take,
};
