/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of exclusive mode (lib/cache/pages.c, lib/cache/evict.c): eviction
 * inference over a fake guest memory, with the fakes of test_cache_fake.h.
 *
 *   test ──read_pages / write_pages──▶ engine ──▶ fake_remote, fake_disk
 *     │                                   │ copies into / out of
 *     └──── writes guest pages ──────▶ guest[] (GUEST_PAGES pages of 4 KiB)
 *
 * An eviction is what a read into a page that holds a block does; the races
 * are driven by the fakes' hooks (inside pwrite, put and del).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "remoca/cache.h"
#include "test_cache_fake.h"
#include "evict.h"

#define GUEST_PAGES 64u

struct fx {
    struct fake_remote *r;
    struct fake_disk *d;
    struct remoca_backing b;
    struct remoca_cache *c;
    char *guest; /* GUEST_PAGES pages */
};

static struct fx *fx_g; /* for hooks */

static struct fx *fx_new_mode(uint64_t size, enum remoca_cache_mode mode)
{
    struct fx *x = calloc(1, sizeof *x);
    char err[128];
    x->r = fr_new(size / BS);
    x->d = fd_new(size);
    x->b = (struct remoca_backing){&fd_ops, x->d};
    x->guest = calloc(GUEST_PAGES, BS);
    struct remoca_cache_opts o = {.disk_size = size,
                                  .remote = &fr_ops,
                                  .remote_ctx = x->r,
                                  .mode = mode,
                                  .guest_pages = GUEST_PAGES};
    x->c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(x->c);
    fx_g = x;
    return x;
}

static struct fx *fx_new(uint64_t size) { return fx_new_mode(size, REMOCA_MODE_EXCLUSIVE); }

static void fx_free(struct fx *x)
{
    remoca_cache_free(x->c);
    fr_free(x->r);
    fd_free(x->d);
    free(x->guest);
    free(x);
}

static struct remoca_cache_stats stats(struct fx *x)
{
    struct remoca_cache_stats s;
    remoca_cache_get_stats(x->c, &s);
    return s;
}

static char *gpage(struct fx *x, uint64_t p) { return x->guest + p * BS; }

/* Reads n blocks from block `block` into guest pages p, p+1, ... */
static int read_pages(struct fx *x, uint64_t block, uint64_t p, uint32_t n)
{
    struct remoca_guest_page pg[16];
    int err = 0;
    assert_true(n <= 16);
    for (uint32_t i = 0; i < n; i++)
        pg[i] = (struct remoca_guest_page){p + i, gpage(x, (p + i) % GUEST_PAGES)};
    int r = remoca_cache_read_pages(x->c, &x->b, pg, n, block * BS, 0, &err);
    if (r) return -err;
    return 0;
}

/* A read into one page, checked against the disk. */
static void read_page_check(struct fx *x, uint64_t block, uint64_t p)
{
    assert_int_equal(read_pages(x, block, p, 1), 0);
    assert_memory_equal(gpage(x, p), x->d->bytes + block * BS, BS);
}

/* The guest writes its page p (filled with pattern) to block. */
static void write_page(struct fx *x, uint64_t block, uint64_t p, int pattern)
{
    struct remoca_guest_page pg = {p, gpage(x, p)};
    int err = 0;
    memset(gpage(x, p), pattern, BS);
    assert_int_equal(remoca_cache_write_pages(x->c, &x->b, &pg, 1, block * BS, 0, &err), 0);
}

static void do_write(struct fx *x, uint64_t off, uint32_t len, int pattern)
{
    char *buf = malloc(len);
    int err = 0;
    memset(buf, pattern, len);
    assert_int_equal(remoca_cache_write(x->c, &x->b, buf, len, off, 0, &err), 0);
    free(buf);
}

/* The remote copy of key equals the disk's block (or there is none). */
static void remote_not_stale(struct fx *x, uint64_t key)
{
    if (fr_has(x->r, key)) assert_memory_equal(x->r->pages[key], x->d->bytes + key * BS, BS);
}

/* ---- eviction puts ---------------------------------------------------- */

static char old5[BS];
static void hook_pread_sees_put(struct fake_disk *d, uint64_t off, uint32_t len)
{
    /* The read that reuses page 0 reads block 9 from disk: block 5's eviction
     * put has already happened, with the old data. */
    assert_int_equal(off, 9 * BS);
    assert_true(fr_has(fx_g->r, 5));
    assert_memory_equal(fx_g->r->pages[5], old5, BS);
}

static void test_eviction_put_before_overwrite(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    assert_int_equal(x->r->puts, 0); /* exclusive: a miss is not inserted */
    assert_false(fr_has(x->r, 5));
    memcpy(old5, x->d->bytes + 5 * BS, BS);
    x->d->after_pread = hook_pread_sees_put;
    read_page_check(x, 9, 0); /* page 0 reused: block 5 was evicted */
    assert_null(x->d->after_pread);
    assert_true(fr_has(x->r, 5));
    assert_memory_equal(x->r->pages[5], old5, BS);
    assert_int_equal(remoca_cache_dir_count(x->c), 1);
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.evictions_inferred, 1);
    assert_int_equal(s.evictions_verified, 1);
    assert_int_equal(s.eviction_puts, 1);
    assert_int_equal(s.evictions_mismatched + s.evictions_stale, 0);
    assert_int_equal(s.fills, 0);
    fx_free(x);
}

static void test_mismatch_not_put(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    gpage(x, 0)[100] ^= 1; /* the guest reused the page for something else */
    read_page_check(x, 9, 0);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(x->r->puts, 0);
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.evictions_inferred, 1);
    assert_int_equal(s.evictions_mismatched, 1);
    assert_int_equal(s.eviction_puts, 0);
    fx_free(x);
}

/* A write to X after P received X: P's eviction must not put X (its data are
 * old), whether the write came through pages or not. */
static void test_write_after_read_no_put(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    do_write(x, 5 * BS, BS, 0x42); /* plain write: the block map still says page 0 */
    read_page_check(x, 9, 0);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(stats(x).evictions_stale, 1);
    /* A partial write to a neighbour in the stripe also moves the gen. */
    read_page_check(x, 6, 1);
    do_write(x, 7 * BS + 10, 10, 0x43);
    read_page_check(x, 10, 1);
    assert_false(fr_has(x->r, 6));
    /* A write from page 2 to X: page 2 holds X's new data; page 0's copy is
     * not the newest and not current. */
    read_page_check(x, 5, 0);
    write_page(x, 5, 2, 0x44);
    read_page_check(x, 11, 0);
    assert_false(fr_has(x->r, 5));
    read_page_check(x, 12, 2); /* evicts page 2: its data, as written */
    assert_true(fr_has(x->r, 5));
    remote_not_stale(x, 5);
    assert_int_equal((unsigned char)x->r->pages[5][0], 0x44);
    /* and the next read of X takes it */
    read_page_check(x, 5, 3);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(stats(x).takes, 1);
    fx_free(x);
}

/* A write in progress on X's stripe when P is evicted: no put. */
static void hook_evict_during_write(struct fake_disk *d, uint64_t off, uint32_t len)
{
    read_page_check(fx_g, 9, 0); /* evicts block 5 from page 0 */
}

static void test_concurrent_writer_blocks(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    x->d->in_pwrite = hook_evict_during_write;
    do_write(x, 20 * BS, BS, 0x55); /* block 20: same unit as 5 */
    assert_null(x->d->in_pwrite);
    assert_false(fr_has(x->r, 5));
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.evictions_inferred, 1);
    assert_int_equal(s.evictions_stale, 1);
    assert_int_equal(s.eviction_puts, 0);
    fx_free(x);
}

/* Two overlapping writes to X, from pages 0 and 1: the second runs inside
 * the first's pwrite, so the disk ends with the second's data while the
 * first ends last.  Neither was alone on the stripe: neither page may be put
 * as X later (page 0 would put data the disk no longer has). */
static void hook_nested_write(struct fake_disk *d, uint64_t off, uint32_t len)
{
    write_page(fx_g, 5, 1, 0xb2);
}

static void test_overlapping_writes_not_recorded(void **state)
{
    struct fx *x = fx_new(1 << 20);
    x->d->in_pwrite = hook_nested_write;
    write_page(x, 5, 0, 0xa1);
    assert_int_equal((unsigned char)x->d->bytes[5 * BS], 0xb2);
    read_page_check(x, 9, 0);
    read_page_check(x, 10, 1);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(stats(x).evictions_inferred, 0); /* nothing was recorded */
    /* A write alone is recorded: its page is put when reused. */
    write_page(x, 5, 2, 0xc3);
    read_page_check(x, 11, 2);
    assert_true(fr_has(x->r, 5));
    remote_not_stale(x, 5);
    fx_free(x);
}

/* X read into P, then into Q: only Q is X's page. */
static void test_newest_page(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    read_page_check(x, 5, 1);
    read_page_check(x, 9, 0);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(stats(x).evictions_stale, 1);
    read_page_check(x, 10, 1);
    assert_true(fr_has(x->r, 5));
    remote_not_stale(x, 5);
    assert_int_equal(stats(x).eviction_puts, 1);
    fx_free(x);
}

/* A hit takes the block out of the remote tier; a miss is not inserted. */
static void test_hit_takes(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    read_page_check(x, 6, 1);
    read_page_check(x, 20, 0); /* evicts 5 */
    read_page_check(x, 21, 1); /* evicts 6 */
    assert_true(fr_has(x->r, 5) && fr_has(x->r, 6));
    assert_int_equal(remoca_cache_dir_count(x->c), 2);
    unsigned p0 = x->d->preads;
    assert_int_equal(read_pages(x, 4, 4, 4), 0); /* blocks 4..7: 5 and 6 remote */
    assert_memory_equal(gpage(x, 4), x->d->bytes + 4 * BS, 4 * BS);
    assert_false(fr_has(x->r, 5) || fr_has(x->r, 6)); /* taken */
    assert_int_equal(remoca_cache_dir_count(x->c), 0);
    assert_int_equal(x->d->preads - p0, 2);           /* blocks 4 and 7 */
    assert_false(fr_has(x->r, 4) || fr_has(x->r, 7)); /* misses not inserted */
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.remote_hits, 2);
    assert_int_equal(s.takes, 2);
    assert_int_equal(s.fills, 0);
    assert_int_equal(x->r->takes, 1);
    /* Page 5 received block 5 from the take: evicting it puts it back. */
    read_page_check(x, 30, 5);
    assert_true(fr_has(x->r, 5));
    remote_not_stale(x, 5);
    /* A plain read takes too. */
    char buf[BS];
    int err;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 5 * BS, 0, &err), 0);
    assert_memory_equal(buf, x->d->bytes + 5 * BS, BS);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(stats(x).takes, 3);
    fx_free(x);
}

static void test_pages_reset(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    assert_int_equal(stats(x).evict_map_bytes, GUEST_PAGES * 32);
    assert_int_equal(remoca_cache_pages_reset(x->c, 8), 0);
    assert_int_equal(stats(x).evict_map_bytes, 8 * 32);
    read_page_check(x, 9, 0);
    assert_int_equal(stats(x).evictions_inferred, 0);
    assert_false(fr_has(x->r, 5));
    assert_int_equal(read_pages(x, 9, 8, 1), -EINVAL); /* the new bound */
    assert_int_equal(remoca_cache_pages_reset(x->c, GUEST_PAGES), 0);
    assert_int_equal(remoca_cache_pages_reset(x->c, (uint64_t)1 << 40), -1);
    assert_int_equal(errno, EINVAL);
    fx_free(x);
}

/* ---- races -------------------------------------------------------------- */

static pthread_t race_thread;
static atomic_bool race_done;

static void *write_block5(void *arg)
{
    do_write(fx_g, 5 * BS, BS, 0x66);
    atomic_store(&race_done, true);
    return NULL;
}

/* Inside the eviction put of 5 (ordered under the stripe lock): a write to 5
 * starts in another thread.  It cannot begin before the put is ordered, so
 * its delete comes after the put and removes it. */
static void hook_put_starts_write(struct fake_remote *f, uint64_t key, uint32_t count,
                                  const void *pages)
{
    assert_int_equal(key, 5);
    pthread_create(&race_thread, NULL, write_block5, NULL);
    usleep(20 * 1000); /* the write is blocked on the stripe lock meanwhile */
    assert_false(atomic_load(&race_done));
}

static void test_race_write_during_eviction_put(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    atomic_store(&race_done, false);
    x->r->on_put = hook_put_starts_write;
    read_page_check(x, 9, 0);
    pthread_join(race_thread, NULL); /* the write is acknowledged */
    assert_int_equal(stats(x).eviction_puts, 1);
    assert_false(fr_has(x->r, 5)); /* the put, then the write's delete */
    char buf[BS];
    int err;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 5 * BS, 0, &err), 0);
    assert_int_equal((unsigned char)buf[0], 0x66);
    fx_free(x);
}

/* A read that snapshots after a write's end and takes before that write's
 * delete would take the old data and later put them back as current.  The
 * read is started from inside the write's delete; in exclusive mode that
 * delete is ordered under the stripe lock, so the read can only snapshot
 * after it (it waits for the lock), and takes nothing old. */
static void *read_5_into_1(void *arg)
{
    read_pages(fx_g, 5, 1, 1);
    atomic_store(&race_done, true);
    return NULL;
}

static void hook_del_starts_read(struct fake_remote *f, uint64_t key, uint64_t count)
{
    pthread_create(&race_thread, NULL, read_5_into_1, NULL);
    /* Let it run as far as it can (with the delete under the lock, it waits
     * for the stripe lock until this write's end releases it). */
    for (int i = 0; i < 100 && !atomic_load(&race_done); i++) usleep(2000);
}

static void test_race_take_after_write_end(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    read_page_check(x, 9, 0); /* 5 is remote now, with the disk's data */
    assert_true(fr_has(x->r, 5));
    atomic_store(&race_done, false);
    x->r->on_del = hook_del_starts_read;
    do_write(x, 5 * BS, BS, 0x77); /* acknowledged on return */
    pthread_join(race_thread, NULL);
    assert_int_equal((unsigned char)x->d->bytes[5 * BS], 0x77);
    remote_not_stale(x, 5);
    read_page_check(x, 10, 1); /* evicts whatever page 1 received as 5 */
    remote_not_stale(x, 5);
    char buf[BS];
    int err;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 5 * BS, 0, &err), 0);
    assert_int_equal((unsigned char)buf[0], 0x77);
    fx_free(x);
}

/* ---- bounds, options, other modes -------------------------------------- */

static void test_bounds(void **state)
{
    struct fx *x = fx_new(1 << 20);
    struct remoca_guest_page pg[2] = {{0, gpage(x, 0)}, {GUEST_PAGES, NULL}};
    int err = 0;
    memset(gpage(x, 0), 0xab, BS);
    assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pg, 2, 0, 0, &err), -1);
    assert_int_equal(err, EINVAL);
    assert_int_equal(remoca_cache_write_pages(x->c, &x->b, pg, 2, 0, 0, &err), -1);
    assert_int_equal(err, EINVAL);
    for (unsigned i = 0; i < BS; i++) assert_int_equal((unsigned char)gpage(x, 0)[i], 0xab);
    assert_int_equal(x->d->preads + x->d->pwrites, 0);
    assert_int_equal(x->r->gets + x->r->puts + x->r->dels, 0);
    assert_int_equal(stats(x).errors, 2);
    fx_free(x);
}

static void test_options(void **state)
{
    struct fake_remote *r = fr_new(256);
    struct remoca_remote_ops no_take = fr_ops;
    no_take.take = NULL;
    char err[128];
    struct remoca_cache_opts o = {.disk_size = 1 << 20,
                                  .remote = &no_take,
                                  .remote_ctx = r,
                                  .mode = REMOCA_MODE_EXCLUSIVE,
                                  .guest_pages = 16};
    assert_null(remoca_cache_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "take"));
    o.remote = &fr_ops;
    o.guest_pages = 0;
    assert_null(remoca_cache_new(&o, err, sizeof err));
    o.guest_pages = 16;
    o.write = REMOCA_WRITE_UPDATE;
    assert_null(remoca_cache_new(&o, err, sizeof err));
    o.write = REMOCA_WRITE_INVALIDATE;
    o.mode = (enum remoca_cache_mode)7;
    assert_null(remoca_cache_new(&o, err, sizeof err));
    o.mode = REMOCA_MODE_INCLUSIVE; /* inclusive needs no take and no pages */
    o.remote = &no_take;
    o.guest_pages = 0;
    struct remoca_cache *c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(remoca_cache_pages_reset(c, 100), 0);
    remoca_cache_free(c);
    fr_free(r);
}

/* In an inclusive cache the page hooks are read and write. */
static void test_inclusive_pages(void **state)
{
    struct fx *x = fx_new_mode(1 << 20, REMOCA_MODE_INCLUSIVE);
    assert_int_equal(read_pages(x, 4, 0, 4), 0);
    assert_memory_equal(gpage(x, 0), x->d->bytes + 4 * BS, 4 * BS);
    assert_true(fr_has(x->r, 4) && fr_has(x->r, 7)); /* filled */
    assert_int_equal(read_pages(x, 4, 8, 4), 0);
    assert_memory_equal(gpage(x, 8), x->d->bytes + 4 * BS, 4 * BS);
    assert_true(fr_has(x->r, 4)); /* a hit keeps */
    assert_int_equal(stats(x).remote_hits, 4);
    write_page(x, 5, 20, 0x12);
    assert_false(fr_has(x->r, 5));
    assert_int_equal((unsigned char)x->d->bytes[5 * BS], 0x12);
    struct remoca_guest_page far = {GUEST_PAGES + 5, gpage(x, 30)}; /* index unused */
    int err;
    assert_int_equal(remoca_cache_read_pages(x->c, &x->b, &far, 1, 0, 0, &err), 0);
    assert_memory_equal(gpage(x, 30), x->d->bytes, BS);
    assert_int_equal(stats(x).evictions_inferred + stats(x).takes, 0);
    fx_free(x);
}

/* Requests that are not block-aligned: read through remoca_cache_read,
 * evictions still inferred, nothing recorded. */
static void test_unaligned(void **state)
{
    uint64_t size = (1 << 20) + 1000;
    struct fx *x = fx_new(size);
    read_page_check(x, 5, 0);
    struct remoca_guest_page pg[2] = {{0, gpage(x, 0)}, {1, gpage(x, 1)}};
    int err;
    assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pg, 2, 512, 0, &err), 0);
    assert_memory_equal(gpage(x, 0), x->d->bytes + 512, 2 * BS);
    assert_true(fr_has(x->r, 5)); /* page 0's block 5 was evicted */
    read_page_check(x, 30, 0);    /* page 0 recorded nothing */
    assert_int_equal(stats(x).evictions_inferred, 1);
    fx_free(x);
}

/* ---- the maps alone, against a model ------------------------------------ */

static void test_evict_maps_model(void **state)
{
    enum { NP = 97, NB = 300 };
    struct evict_maps m;
    uint64_t model_block[NP], newest[NB];
    assert_int_equal(evict_init(&m, NP), 0);
    for (unsigned i = 0; i < NP; i++) model_block[i] = EVICT_NONE;
    for (unsigned i = 0; i < NB; i++) newest[i] = EVICT_NONE;
    uint64_t s = 1;
    for (int it = 0; it < 200000; it++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t p = (s >> 33) % NP, blk = (s >> 17) % NB;
        struct evict_assoc a;
        pthread_mutex_lock(&m.lock);
        if ((s >> 60) < 10) {
            struct evict_assoc n = {blk, blk * 3, 7};
            evict_attach(&m, p, &n);
            if (model_block[p] != EVICT_NONE && newest[model_block[p]] == p)
                newest[model_block[p]] = EVICT_NONE;
            model_block[p] = blk;
            newest[blk] = p;
        } else {
            bool nw = evict_detach(&m, p, &a);
            assert_int_equal(a.block, model_block[p]);
            assert_int_equal(nw, model_block[p] != EVICT_NONE && newest[model_block[p]] == p);
            if (nw) newest[model_block[p]] = EVICT_NONE;
            if (a.block != EVICT_NONE) assert_int_equal(a.hash, a.block * 3);
            model_block[p] = EVICT_NONE;
        }
        if (it % 97 == 0)
            for (unsigned b = 0; b < NB; b++) assert_int_equal(evict_lookup(&m, b), newest[b]);
        pthread_mutex_unlock(&m.lock);
    }
    assert_int_equal(evict_bytes(NP), NP * 32);
    assert_int_equal(evict_reset(&m, 10), 0);
    for (unsigned b = 0; b < NB; b++) assert_int_equal(evict_lookup(&m, b), EVICT_NONE);
    evict_destroy(&m);
}

/* ---- threads: never stale ------------------------------------------------ */

/* Each thread owns GUEST_PAGES / ST_THREADS guest pages and the blocks
 * b % ST_THREADS == id (the only writer of them, so versions on disk grow);
 * it reads any blocks into its pages (evictions), writes its blocks from its
 * pages or plainly; a thread evicts remote pages at random.  Every block
 * carries (block, version): a read after version v was acknowledged must see
 * >= v, and every remote copy must be a version the disk has had. */
#define ST_BLOCKS 256u
#define ST_THREADS 4u
static _Atomic uint64_t st_acked[ST_BLOCKS];
static atomic_uint_fast64_t st_stale;

static void st_stamp(char *page, uint64_t block, uint64_t version)
{
    for (unsigned i = 0; i < BS; i += 16) {
        memcpy(page + i, &block, 8);
        memcpy(page + i + 8, &version, 8);
    }
}

static void *st_worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct fx *x = fx_g;
    uint64_t s = id * 2654435761u + 7, version[ST_BLOCKS] = {0};
    uint64_t per = GUEST_PAGES / ST_THREADS, p0 = id * per;
    for (int it = 0; it < 3000; it++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int err;
        uint64_t op = (s >> 33) % 8;
        if (op < 2) { /* write one owned block, from a page or plainly */
            uint64_t b = ((s >> 20) % (ST_BLOCKS / ST_THREADS)) * ST_THREADS + id;
            uint64_t p = p0 + (s >> 45) % per;
            st_stamp(gpage(x, p), b, ++version[b]);
            struct remoca_guest_page pg = {p, gpage(x, p)};
            if (op == 0)
                assert_int_equal(remoca_cache_write_pages(x->c, &x->b, &pg, 1, b * BS, 0, &err), 0);
            else
                assert_int_equal(remoca_cache_write(x->c, &x->b, gpage(x, p), BS, b * BS, 0, &err),
                                 0);
            atomic_store(&st_acked[b], version[b]);
        } else { /* read 1..4 blocks into owned pages */
            uint64_t n = (s >> 40) % 4 + 1, b0 = (s >> 20) % (ST_BLOCKS - n);
            uint64_t p = p0 + (s >> 50) % (per - n + 1);
            uint64_t floor[4];
            struct remoca_guest_page pg[4];
            for (uint64_t k = 0; k < n; k++) {
                floor[k] = atomic_load(&st_acked[b0 + k]);
                pg[k] = (struct remoca_guest_page){p + k, gpage(x, p + k)};
            }
            assert_int_equal(
                remoca_cache_read_pages(x->c, &x->b, pg, (uint32_t)n, b0 * BS, 0, &err), 0);
            for (uint64_t k = 0; k < n; k++) {
                uint64_t blk, ver;
                memcpy(&blk, gpage(x, p + k), 8);
                memcpy(&ver, gpage(x, p + k) + 8, 8);
                if (blk != b0 + k || ver < floor[k]) {
                    fprintf(stderr, "stale: block %llu read (%llu, v%llu) after v%llu acked\n",
                            (unsigned long long)(b0 + k), (unsigned long long)blk,
                            (unsigned long long)ver, (unsigned long long)floor[k]);
                    atomic_fetch_add(&st_stale, 1);
                }
            }
            if ((s >> 58) == 0) gpage(x, p)[100] ^= 1; /* the guest scribbles on a page */
        }
    }
    return NULL;
}

static void test_threads_never_stale(void **state)
{
    struct fx *x = fx_new(ST_BLOCKS * BS);
    for (uint64_t b = 0; b < ST_BLOCKS; b++) {
        st_stamp(x->d->bytes + b * BS, b, 0);
        atomic_store(&st_acked[b], 0);
    }
    x->d->yield_every = 3;
    atomic_store(&st_stale, 0);
    pthread_t th[ST_THREADS];
    struct fr_evictor ev;
    fr_evictor_start(&ev, x->r, ST_BLOCKS, 200);
    for (unsigned i = 0; i < ST_THREADS; i++)
        pthread_create(&th[i], NULL, st_worker, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < ST_THREADS; i++) pthread_join(th[i], NULL);
    fr_evictor_stop(&ev);
    struct remoca_cache_stats st = stats(x);
    fprintf(stderr,
            "exclusive threads: reads=%llu hits=%llu inferred=%llu verified=%llu "
            "mismatched=%llu stale=%llu puts=%llu stale_reads=%llu\n",
            (unsigned long long)st.reads, (unsigned long long)st.remote_hits,
            (unsigned long long)st.evictions_inferred, (unsigned long long)st.evictions_verified,
            (unsigned long long)st.evictions_mismatched, (unsigned long long)st.evictions_stale,
            (unsigned long long)st.eviction_puts, (unsigned long long)atomic_load(&st_stale));
    assert_int_equal(atomic_load(&st_stale), 0);
    assert_true(st.eviction_puts > 0 && st.remote_hits > 0);
    assert_int_equal(st.evictions_inferred,
                     st.evictions_verified + st.evictions_mismatched + st.evictions_stale);
    for (uint64_t b = 0; b < ST_BLOCKS; b++) remote_not_stale(x, b);
    fx_free(x);
}

static void test_stats_format(void **state)
{
    struct fx *x = fx_new(1 << 20);
    read_page_check(x, 5, 0);
    read_page_check(x, 6, 0);
    struct remoca_cache_stats s = stats(x);
    char buf[4096];
    size_t n = remoca_cache_format_stats(&s, "cache_", buf, sizeof buf);
    assert_true(n < sizeof buf);
    assert_non_null(strstr(buf, "cache_remote_errors=0\ncache_evictions_inferred=1\n"));
    assert_non_null(strstr(buf, "cache_eviction_puts=1\n"));
    assert_non_null(strstr(buf, "cache_takes=0\n"));
    assert_non_null(strstr(buf, "cache_evict_map_bytes=2048\n"));
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eviction_put_before_overwrite),
        cmocka_unit_test(test_mismatch_not_put),
        cmocka_unit_test(test_write_after_read_no_put),
        cmocka_unit_test(test_concurrent_writer_blocks),
        cmocka_unit_test(test_overlapping_writes_not_recorded),
        cmocka_unit_test(test_newest_page),
        cmocka_unit_test(test_hit_takes),
        cmocka_unit_test(test_pages_reset),
        cmocka_unit_test(test_race_write_during_eviction_put),
        cmocka_unit_test(test_race_take_after_write_end),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_inclusive_pages),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_evict_maps_model),
        cmocka_unit_test(test_threads_never_stale),
        cmocka_unit_test(test_stats_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
