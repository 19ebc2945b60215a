/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest page hooks: reads and writes whose blocks are guest pages, and in
 * exclusive mode the eviction inference (lib/cache/include/remoca/cache.h, "exclusive
 * mode"; the proof for eviction puts is at the top of lib/cache/cache.c).
 *
 * remoca_cache_read_pages, exclusive, whole blocks inside the disk:
 *
 *   pages[i] ──(1) detach P's association (X, hash, gen) ──▶ copy P into
 *              bounce[i], XXH3 the copy; newest page of X, same hash, stripe
 *              of X still at gen with no writer: put the copy as X under the
 *              stripe lock (an inferred eviction)
 *   bounce   ◀─(2) the read itself (lib/cache/cache.c): snapshots, takes of the
 *              blocks the directory marks, the rest from backing
 *   pages[i] ◀─(3) XXH3 of bounce[i], copied into P; P ──▶ (block, hash, the
 *              snapshot of its unit) if no write was in progress there
 *
 * The map lock (lib/cache/evict.c) is taken once in (1) and once in (3) and
 * released before any copy, hash, stripe lock or remote call: it is never held
 * together with a generation stripe lock, so there is no lock order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine.h"

/* Largest request: its byte count must fit the hooks' uint32_t. */
#define MAX_PAGES (UINT32_MAX / BS)

static bool exclusive(const struct remoca_cache *c) { return c->mode == REMOCA_MODE_EXCLUSIVE; }

/* Whole blocks inside the disk: the requests whose pages are blocks. */
static bool whole(const struct remoca_cache *c, uint32_t npages, uint64_t offset)
{
    return offset % BS == 0 && offset / BS + npages <= c->nblocks;
}

/* Per request memory: the bounce buffer, then per page an association and a
 * generation.  NULL with *err = ENOMEM. */
struct req_mem {
    char *bounce;
    struct evict_assoc *as;
    bool *newest;
    uint64_t *gens;
};

static int req_alloc(struct req_mem *m, uint32_t npages, int *err)
{
    size_t n = npages;
    m->bounce = malloc(n * BS + n * (sizeof *m->as + sizeof *m->gens + sizeof *m->newest));
    if (!m->bounce) {
        *err = ENOMEM;
        return -1;
    }
    m->as = (struct evict_assoc *)(m->bounce + n * BS);
    m->gens = (uint64_t *)(m->as + n);
    m->newest = (bool *)(m->gens + n);
    return 0;
}

/* (1), first half, under the map lock: every page index in bounds (else
 * EINVAL, nothing touched), then each page's association detached. */
static int detach_all(struct remoca_cache *c, const struct remoca_guest_page *pages,
                      uint32_t npages, struct req_mem *m, int *err)
{
    pthread_mutex_lock(&c->ev.lock);
    for (uint32_t i = 0; i < npages; i++)
        if (pages[i].index >= c->ev.npages) {
            pthread_mutex_unlock(&c->ev.lock);
            *err = EINVAL;
            return -1;
        }
    for (uint32_t i = 0; i < npages; i++)
        m->newest[i] = evict_detach(&c->ev, pages[i].index, &m->as[i]);
    pthread_mutex_unlock(&c->ev.lock);
    return 0;
}

/* (1), second half: page host, about to be overwritten, held a's block.
 * copy is a page of scratch. */
static void evict_page(struct remoca_cache *c, const struct evict_assoc *a, bool newest,
                       const void *host, char *copy)
{
    if (a->block == EVICT_NONE) return;
    COUNT(c, evictions_inferred, 1);
    if (!newest) { /* a newer page received the block: that one is put, or nothing */
        COUNT(c, evictions_stale, 1);
        return;
    }
    /* Copy first, then hash the copy: the guest may be writing the live page. */
    memcpy(copy, host, BS);
    if (XXH3_64bits(copy, BS) != a->hash) {
        COUNT(c, evictions_mismatched, 1);
        return;
    }
    struct gen_stripe *s = gen_stripe(&c->gens, gen_unit(a->block));
    pthread_mutex_lock(&s->lock);
    if (s->gen == a->gen && s->writers == 0) {
        /* Ordered under the lock: any later write's delete comes after. */
        COUNT(c, evictions_verified, 1);
        if (c->r->put(c->rctx, a->block, 1, copy) == -1) {
            COUNT(c, remote_errors, 1);
        } else {
            dir_set_range(&c->dir, a->block, 1);
            COUNT(c, eviction_puts, 1);
        }
    } else {
        COUNT(c, evictions_stale, 1); /* a write to the stripe since the delivery */
    }
    pthread_mutex_unlock(&s->lock);
}

/* (3) under the map lock: the pages whose data are valid at a generation
 * hold their block now. */
static void attach_all(struct remoca_cache *c, const struct remoca_guest_page *pages,
                       uint32_t npages, uint64_t block0, const struct req_mem *m)
{
    pthread_mutex_lock(&c->ev.lock);
    for (uint32_t i = 0; i < npages; i++) {
        struct evict_assoc a = {EVICT_NONE, 0, 0};
        if (m->gens[i] != GEN_NONE) a = (struct evict_assoc){block0 + i, m->as[i].hash, m->gens[i]};
        evict_attach(&c->ev, pages[i].index, &a); /* EVICT_NONE: detach */
    }
    pthread_mutex_unlock(&c->ev.lock);
}

int remoca_cache_read_pages(struct remoca_cache *c, const struct remoca_backing *b,
                            const struct remoca_guest_page *pages, uint32_t npages, uint64_t offset,
                            uint32_t flags, int *err)
{
    struct req_mem m;
    *err = 0;
    COUNT(c, reads, 1);
    if (npages == 0) return 0;
    if (npages > MAX_PAGES) {
        *err = EINVAL;
        goto fail;
    }
    uint32_t count = npages * BS;
    cache_mrc_feed(c, offset, count); /* before evictions and takes: the guest's misses */
    if (req_alloc(&m, npages, err)) goto fail;
    bool excl = exclusive(c), rec = excl && whole(c, npages, offset);
    if (excl) {
        if (detach_all(c, pages, npages, &m, err)) goto fail_free;
        for (uint32_t i = 0; i < npages; i++)
            evict_page(c, &m.as[i], m.newest[i], pages[i].host, m.bounce + (size_t)i * BS);
    }
    if (cache_read_blocks(c, b, m.bounce, count, offset, flags, err, rec ? m.gens : NULL)) {
        free(m.bounce); /* counted as an error there */
        return -1;
    }
    for (uint32_t i = 0; i < npages; i++) {
        const char *src = m.bounce + (size_t)i * BS;
        if (rec) m.as[i].hash = XXH3_64bits(src, BS); /* the data as delivered */
        memcpy(pages[i].host, src, BS);
    }
    if (rec) attach_all(c, pages, npages, offset / BS, &m);
    free(m.bounce);
    return 0;
fail_free:
    free(m.bounce);
fail:
    COUNT(c, errors, 1);
    return -1;
}

int remoca_cache_write_pages(struct remoca_cache *c, const struct remoca_backing *b,
                             const struct remoca_guest_page *pages, uint32_t npages,
                             uint64_t offset, uint32_t flags, int *err)
{
    struct req_mem m;
    *err = 0;
    COUNT(c, writes, 1);
    if (npages == 0) return cache_modify(c, b, OP_WRITE, NULL, 0, offset, flags, err, NULL);
    if (npages > MAX_PAGES) {
        *err = EINVAL;
        goto fail;
    }
    bool excl = exclusive(c), rec = excl && whole(c, npages, offset);
    if (excl) { /* bounds first: nothing touched for a bad index */
        pthread_mutex_lock(&c->ev.lock);
        bool bad = false;
        for (uint32_t i = 0; i < npages; i++) bad |= pages[i].index >= c->ev.npages;
        pthread_mutex_unlock(&c->ev.lock);
        if (bad) {
            *err = EINVAL;
            goto fail;
        }
    }
    if (req_alloc(&m, npages, err)) goto fail;
    for (uint32_t i = 0; i < npages; i++) memcpy(m.bounce + (size_t)i * BS, pages[i].host, BS);
    /* cache_modify counts its own errors. */
    int r = cache_modify(c, b, OP_WRITE, m.bounce, npages * BS, offset, flags, err,
                         rec ? m.gens : NULL);
    if (rec) {
        /* P holds what was written, valid at the write's end if it was alone;
         * hashed from the copy written, not from P. */
        for (uint32_t i = 0; i < npages; i++) {
            if (r) m.gens[i] = GEN_NONE;
            if (m.gens[i] != GEN_NONE) m.as[i].hash = XXH3_64bits(m.bounce + (size_t)i * BS, BS);
        }
        attach_all(c, pages, npages, offset / BS, &m);
    }
    free(m.bounce);
    return r;
fail:
    COUNT(c, errors, 1);
    return -1;
}

int remoca_cache_pages_reset(struct remoca_cache *c, uint64_t guest_pages)
{
    if (!exclusive(c)) return 0;
    if (guest_pages > EVICT_MAX_PAGES) {
        errno = EINVAL;
        return -1;
    }
    int r = evict_reset(&c->ev, guest_pages);
    atomic_store(&c->st[STAT(evict_map_bytes)], evict_bytes(r ? 0 : guest_pages));
    if (r) errno = ENOMEM;
    return r;
}
