/* SPDX-License-Identifier: BSD-3-Clause */
/* In-memory fakes for the cache engine's unit tests (header-only, included by
 * tests/unit/test_cache_engine.c and test_cache_exclusive.c; not a test
 * program itself): a remote tier and a backing disk.
 *
 *   engine ──remote ops──▶ fake_remote (page table, call log, eviction, dead,
 *     │                                 hooks run inside put and del)
 *     └────backing ops──▶ fake_disk (bytes, call log, hooks run inside
 *                                    pread/pwrite)
 *
 * Include after <cmocka.h>.
 */
#ifndef TEST_CACHE_FAKE_H
#define TEST_CACHE_FAKE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remoca/cache.h"

#define BS 4096u

/* ---- fake remote: key -> page, with a call log ------------------------- */

struct fake_remote {
    pthread_mutex_t lock;
    uint64_t nkeys;
    char **pages; /* NULL = absent */
    unsigned gets, puts, dels, resets, takes;
    uint64_t last_get_count;
    bool dead;        /* everything fails */
    bool refuse_puts; /* server answers "full": put dropped */
    /* Hooks run once at the start of a put / del call (before it executes;
     * the engine may hold a stripe lock), then cleared. */
    void (*on_put)(struct fake_remote *f, uint64_t key, uint32_t count, const void *pages);
    void (*on_del)(struct fake_remote *f, uint64_t key, uint64_t count);
};

static struct fake_remote *fr_new(uint64_t nkeys)
{
    struct fake_remote *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->nkeys = nkeys + 64; /* room to detect out-of-range puts */
    f->pages = calloc(f->nkeys, sizeof *f->pages);
    return f;
}

static void fr_free(struct fake_remote *f)
{
    for (uint64_t i = 0; i < f->nkeys; i++) free(f->pages[i]);
    free(f->pages);
    free(f);
}

static void fr_evict(struct fake_remote *f, uint64_t key)
{
    pthread_mutex_lock(&f->lock);
    free(f->pages[key]);
    f->pages[key] = NULL;
    pthread_mutex_unlock(&f->lock);
}

/* A thread that evicts a pseudo-random key below `keys` every `us`
 * microseconds until stopped: a memory server evicting under the engine in
 * the stress tests.  fr_evictor_start, then fr_evictor_stop (joins). */
struct fr_evictor {
    struct fake_remote *r;
    uint64_t keys;
    unsigned us;
    atomic_bool stop;
    pthread_t thread;
};

static void *fr_evictor_run(void *arg)
{
    struct fr_evictor *e = arg;
    uint64_t s = 12345;
    while (!atomic_load(&e->stop)) {
        s = s * 6364136223846793005ull + 1;
        fr_evict(e->r, (s >> 33) % e->keys);
        usleep(e->us);
    }
    return NULL;
}

static void fr_evictor_start(struct fr_evictor *e, struct fake_remote *r, uint64_t keys,
                             unsigned us)
{
    e->r = r;
    e->keys = keys;
    e->us = us;
    atomic_init(&e->stop, false);
    pthread_create(&e->thread, NULL, fr_evictor_run, e);
}

static void fr_evictor_stop(struct fr_evictor *e)
{
    atomic_store(&e->stop, true);
    pthread_join(e->thread, NULL);
}

static bool fr_has(struct fake_remote *f, uint64_t key)
{
    pthread_mutex_lock(&f->lock);
    bool r = f->pages[key] != NULL;
    pthread_mutex_unlock(&f->lock);
    return r;
}

static unsigned fr_lookup(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits,
                          bool take)
{
    struct fake_remote *f = ctx;
    unsigned n = 0;
    assert_true(count >= 1 && count <= 256);
    pthread_mutex_lock(&f->lock);
    f->gets++;
    f->takes += take;
    f->last_get_count = count;
    if (!f->dead)
        for (uint32_t i = 0; i < count; i++)
            if (key + i < f->nkeys && f->pages[key + i]) {
                memcpy((char *)pages + (size_t)i * BS, f->pages[key + i], BS);
                hits[i / 64] |= 1ull << (i % 64);
                n++;
                if (take) {
                    free(f->pages[key + i]);
                    f->pages[key + i] = NULL;
                }
            }
    pthread_mutex_unlock(&f->lock);
    return n;
}

static unsigned fr_get(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return fr_lookup(ctx, key, count, pages, hits, false);
}

static unsigned fr_take(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return fr_lookup(ctx, key, count, pages, hits, true);
}

static int fr_put(void *ctx, uint64_t key, uint32_t count, const void *pages)
{
    struct fake_remote *f = ctx;
    assert_true(count >= 1 && count <= 256);
    if (f->on_put) {
        void (*h)(struct fake_remote *, uint64_t, uint32_t, const void *) = f->on_put;
        f->on_put = NULL; /* once */
        h(f, key, count, pages);
    }
    pthread_mutex_lock(&f->lock);
    f->puts++;
    int r = f->dead ? -1 : 0;
    if (!f->dead && !f->refuse_puts)
        for (uint32_t i = 0; i < count; i++) {
            assert_true(key + i < f->nkeys);
            if (!f->pages[key + i]) f->pages[key + i] = malloc(BS);
            memcpy(f->pages[key + i], (const char *)pages + (size_t)i * BS, BS);
        }
    pthread_mutex_unlock(&f->lock);
    return r;
}

static int fr_del(void *ctx, uint64_t key, uint64_t count)
{
    struct fake_remote *f = ctx;
    if (f->on_del) {
        void (*h)(struct fake_remote *, uint64_t, uint64_t) = f->on_del;
        f->on_del = NULL; /* once */
        h(f, key, count);
    }
    pthread_mutex_lock(&f->lock);
    f->dels++;
    if (!f->dead)
        for (uint64_t i = 0; i < count && key + i < f->nkeys; i++) {
            free(f->pages[key + i]);
            f->pages[key + i] = NULL;
        }
    pthread_mutex_unlock(&f->lock);
    return f->dead ? -1 : 0;
}

static int fr_reset(void *ctx)
{
    struct fake_remote *f = ctx;
    f->resets++;
    for (uint64_t i = 0; i < f->nkeys; i++) {
        free(f->pages[i]);
        f->pages[i] = NULL;
    }
    return 0;
}

static const struct remoca_remote_ops fr_ops = {fr_get, fr_put, fr_del, fr_reset, fr_take};

/* ---- fake disk -------------------------------------------------------- */

struct fake_disk {
    char *bytes;
    uint64_t size;
    unsigned preads, pwrites, trims, zeroes, flushes;
    uint64_t pread_bytes;
    bool fail_reads;
    /* Hook run inside pread after the data were read (the miss's disk read
     * has begun and finished, its insert has not happened yet). */
    void (*after_pread)(struct fake_disk *d, uint64_t off, uint32_t len);
    /* Hook run inside pwrite after the data were written. */
    void (*in_pwrite)(struct fake_disk *d, uint64_t off, uint32_t len);
    void *arg;
    pthread_mutex_t io;   /* makes each pread/pwrite atomic (like a disk's 4 KiB) */
    unsigned yield_every; /* stress: sleep a little inside some preads */
};

static struct fake_disk *fd_new(uint64_t size)
{
    struct fake_disk *d = calloc(1, sizeof *d);
    d->size = size;
    d->bytes = malloc(size);
    pthread_mutex_init(&d->io, NULL);
    for (uint64_t i = 0; i < size; i++) d->bytes[i] = (char)(i * 7 + (i >> 12) * 13 + 1);
    return d;
}

static void fd_free(struct fake_disk *d)
{
    free(d->bytes);
    free(d);
}

static int fd_pread(void *ctx, void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    struct fake_disk *d = ctx;
    assert_true(off + n <= d->size);
    __atomic_add_fetch(&d->preads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->pread_bytes, n, __ATOMIC_RELAXED);
    if (d->fail_reads) {
        *err = EIO;
        return -1;
    }
    pthread_mutex_lock(&d->io);
    memcpy(buf, d->bytes + off, n);
    pthread_mutex_unlock(&d->io);
    if (d->yield_every && (off / BS) % d->yield_every == 0) usleep(50); /* widen the race */
    if (d->after_pread) {
        void (*h)(struct fake_disk *, uint64_t, uint32_t) = d->after_pread;
        d->after_pread = NULL; /* once */
        h(d, off, n);
    }
    return 0;
}

static int fd_pwrite(void *ctx, const void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    struct fake_disk *d = ctx;
    assert_true(off + n <= d->size);
    __atomic_add_fetch(&d->pwrites, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&d->io);
    memcpy(d->bytes + off, buf, n);
    pthread_mutex_unlock(&d->io);
    if (d->in_pwrite) {
        void (*h)(struct fake_disk *, uint64_t, uint32_t) = d->in_pwrite;
        d->in_pwrite = NULL;
        h(d, off, n);
    }
    return 0;
}

static int fd_trim(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    struct fake_disk *d = ctx;
    d->trims++;
    memset(d->bytes + off, 0, n);
    return 0;
}

static int fd_zero(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    struct fake_disk *d = ctx;
    d->zeroes++;
    memset(d->bytes + off, 0, n);
    return 0;
}

static int fd_flush(void *ctx, uint32_t fl, int *err)
{
    ((struct fake_disk *)ctx)->flushes++;
    return 0;
}

static const struct remoca_backing_ops fd_ops = {fd_pread, fd_pwrite, fd_trim, fd_zero, fd_flush};

#endif
