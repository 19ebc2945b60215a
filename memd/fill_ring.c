/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's fill ring of one connection (see fill_ring.h). */
#include "fill_ring.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

struct fill_ring *fill_ring_create(uint32_t nslots)
{
    if (!remoca_ring_slots_ok(nslots)) {
        errno = EINVAL;
        return NULL;
    }
    struct fill_ring *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->nslots = nslots;
    r->size = remoca_ring_size(nslots);
    r->fd = memfd_create("remoca-fill-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd < 0) goto fail;
    if (ftruncate(r->fd, (off_t)r->size) < 0) goto fail;
    void *p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (p == MAP_FAILED) goto fail;
    r->base = p; /* a new memfd reads as zeros: head = tail = 0 */
    /* The client gets the fd read-write; the seals keep it from shrinking
     * the file under our mapping (our accesses would fault). */
    if (fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) goto fail;
    return r;
fail:;
    int e = errno;
    fill_ring_destroy(r);
    errno = e;
    return NULL;
}

void fill_ring_destroy(struct fill_ring *r)
{
    if (!r) return;
    if (r->base) munmap(r->base, r->size);
    if (r->fd >= 0) close(r->fd);
    free(r);
}

int fill_ring_drain(const struct proto_ctx *ctx, struct session *ss, uint32_t upto_id)
{
    struct fill_ring *r = ss->ring;
    uint64_t head = le64toh(
        __atomic_load_n((const uint64_t *)(r->base + REMOCA_RING_OFF_HEAD), __ATOMIC_ACQUIRE));
    if (head == r->tail) return 0;
    if (head - r->tail > r->nslots) { /* also a head behind the tail (wraps) */
        log_warn("%s (%s): fill ring head out of range (head %llu, tail %llu, %u slots): "
                 "connection closed",
                 ss->peer ? ss->peer : "-", ss->client, (unsigned long long)head,
                 (unsigned long long)r->tail, r->nslots);
        proto_count_error(ctx, ss);
        return -1;
    }
    const uint8_t *pages = r->base + remoca_ring_off_pages(r->nslots);
    const uint8_t *sides = r->base + remoca_ring_off_sides(r->nslots);
    uint64_t t = r->tail, done = 0;
    for (; t != head; t++) {
        uint32_t idx = (uint32_t)t & (r->nslots - 1);
        struct remoca_ring_entry e;
        remoca_ring_entry_read(r->base, idx, &e);
        if (!remoca_id_at_or_before(e.after_id, upto_id)) break; /* later in the stream */
        if (e.handle < 1 || e.handle > ss->nhandles) {
            proto_count_error(ctx, ss);
            log_debug("%s (%s): fill ring entry %llu: pool handle %u not open here: skipped",
                      ss->peer ? ss->peer : "-", ss->client, (unsigned long long)t, e.handle);
            continue;
        }
        uint32_t pool = ss->handles[e.handle - 1];
        const uint8_t *page = pages + (size_t)idx * REMOCA_PAGE_SIZE;
        uint8_t unit[REMOCA_SEALED_UNIT];
        if (store_pool_sealed(ctx->store, pool)) {
            /* A sealed pool's entry: its page and its sidecar, as a PUT's unit. */
            memcpy(unit, page, REMOCA_PAGE_SIZE);
            memcpy(unit + REMOCA_PAGE_SIZE, sides + (size_t)idx * REMOCA_SIDE_SIZE,
                   REMOCA_SIDE_SIZE);
            page = unit;
        }
        /* Never leave an older page behind: what cannot be stored is dropped. */
        if (store_put(ctx->store, pool, e.key, 1, page) != REMOCA_OK)
            store_delete(ctx->store, pool, e.key, 1);
        done++;
    }
    if (t != r->tail) {
        r->tail = t;
        __atomic_store_n((uint64_t *)(r->base + REMOCA_RING_OFF_TAIL), htole64(t),
                         __ATOMIC_RELEASE);
    }
    if (done) __atomic_fetch_add(&ctx->store->ring_puts, done, __ATOMIC_RELAXED);
    return 0;
}
