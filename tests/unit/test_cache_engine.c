/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the cache engine (lib/cache/cache.c) with a fake remote tier and a
 * fake backing disk, both in memory.
 *
 *   test ──remoca_cache_*──▶ engine ──remote ops──▶ fake_remote (page table,
 *                                 │                  call log, eviction, dead)
 *                                 └──backing ops──▶ fake_disk (bytes, call log,
 *                                                    hooks run inside pread/pwrite)
 *
 * The hooks make the fill race deterministic: a write is run from inside the
 * fake disk's pread, i.e. after a miss's disk read began and before its insert.
 * The fakes are in test_cache_fake.h (shared with test_cache_exclusive.c).
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
#include <unistd.h>

#include "remoca/cache.h"
#include "test_cache_fake.h"

/* ---- fixture ---------------------------------------------------------- */

struct fx {
    struct fake_remote *r;
    struct fake_disk *d;
    struct remoca_backing b;
    struct remoca_cache *c;
};

static struct fx *fx_g; /* for hooks */

static struct fx *fx_new(uint64_t size, enum remoca_write_policy w)
{
    struct fx *x = calloc(1, sizeof *x);
    char err[128];
    x->r = fr_new(size / BS);
    x->d = fd_new(size);
    x->b = (struct remoca_backing){&fd_ops, x->d};
    struct remoca_cache_opts o = {
        .disk_size = size, .write = w, .remote = &fr_ops, .remote_ctx = x->r};
    x->c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(x->c);
    assert_int_equal(x->r->resets, 1);
    fx_g = x;
    return x;
}

static void fx_free(struct fx *x)
{
    remoca_cache_free(x->c);
    fr_free(x->r);
    fd_free(x->d);
    free(x);
}

static struct remoca_cache_stats stats(struct fx *x)
{
    struct remoca_cache_stats s;
    remoca_cache_get_stats(x->c, &s);
    return s;
}

/* Reads through the engine and checks the bytes against the fake disk. */
static void read_check(struct fx *x, uint64_t off, uint32_t len)
{
    char *buf = malloc(len);
    int err = 0;
    memset(buf, 0x5a, len);
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, off, 0, &err), 0);
    assert_memory_equal(buf, x->d->bytes + off, len);
    free(buf);
}

static void do_write(struct fx *x, uint64_t off, uint32_t len, int pattern)
{
    char *buf = malloc(len);
    int err = 0;
    memset(buf, pattern, len);
    assert_int_equal(remoca_cache_write(x->c, &x->b, buf, len, off, 0, &err), 0);
    free(buf);
}

/* ---- tests ------------------------------------------------------------ */

static void test_miss_then_hit(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 65536);
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.misses, 16);
    assert_int_equal(s.fills, 16);
    assert_int_equal(s.backing_reads, 1);
    assert_int_equal(s.remote_gets, 0); /* directory empty: a miss costs no round trip */
    assert_int_equal(x->r->gets, 0);
    for (int i = 0; i < 16; i++) assert_true(fr_has(x->r, i));
    assert_int_equal(remoca_cache_dir_count(x->c), 16);

    read_check(x, 0, 65536);
    s = stats(x);
    assert_int_equal(s.remote_hits, 16);
    assert_int_equal(s.backing_reads, 1); /* no new disk read */
    assert_int_equal(x->r->gets, 1);      /* one round trip */
    assert_int_equal(x->d->preads, 1);
    fx_free(x);
}

static void test_batching_one_get(void **state)
{
    struct fx *x = fx_new(4 << 20, REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 1 << 20); /* 256 blocks cached */
    fr_evict(x->r, 3);
    fr_evict(x->r, 7);
    fr_evict(x->r, 8);
    unsigned g0 = x->r->gets, p0 = x->d->preads;
    read_check(x, 0, 1 << 20);
    assert_int_equal(x->r->gets - g0, 1); /* the whole MiB in one get */
    assert_int_equal(x->r->last_get_count, 256);
    assert_int_equal(x->d->preads - p0, 2); /* runs {3} and {7,8} */
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.remote_hits, 253);
    assert_int_equal(s.remote_misses, 3);
    assert_true(fr_has(x->r, 3) && fr_has(x->r, 7) && fr_has(x->r, 8)); /* refilled */

    /* A request larger than a batch: one get per 256 blocks. */
    read_check(x, 0, 2 << 20);
    g0 = x->r->gets;
    p0 = x->d->preads;
    read_check(x, 0, 2 << 20);
    assert_int_equal(x->r->gets - g0, 2);
    assert_int_equal(x->d->preads - p0, 0);

    /* Mixed: cached blocks separated by an uncached range -> get spans only
     * candidates, disk reads only the holes. */
    read_check(x, 3 << 20, 8192); /* blocks 768,769 */
    g0 = x->r->gets;
    p0 = x->d->preads;
    read_check(x, (3 << 20) - 8192, 4 * 8192); /* 766..773: 768,769 cached */
    assert_int_equal(x->r->gets - g0, 1);
    assert_int_equal(x->d->preads - p0, 2);
    fx_free(x);
}

static void test_unaligned_edges(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    /* Only block 1 is whole inside [100, 10100). */
    read_check(x, 100, 10000);
    assert_false(fr_has(x->r, 0));
    assert_true(fr_has(x->r, 1));
    assert_false(fr_has(x->r, 2));
    assert_int_equal(stats(x).backing_reads, 1); /* edges merged with the miss */
    /* Tiny unaligned reads are pure pass-through. */
    read_check(x, 4097, 10);
    assert_int_equal(stats(x).read_blocks, 1);

    /* Cache 0..3, then a partial write inside block 1 invalidates block 1. */
    read_check(x, 0, 16384);
    do_write(x, 5000, 100, 0xee);
    assert_false(fr_has(x->r, 1));
    assert_true(fr_has(x->r, 0) && fr_has(x->r, 2));
    read_check(x, 0, 16384);
    /* A write straddling blocks 2 and 3 invalidates both. */
    do_write(x, 3 * BS - 10, 20, 0xdd);
    assert_false(fr_has(x->r, 2) || fr_has(x->r, 3));
    read_check(x, 0, 16384);
    read_check(x, 3 * BS - 100, 200);
    fx_free(x);
}

static void test_odd_disk_size(void **state)
{
    uint64_t size = (1 << 20) + 1000; /* 256 whole blocks + 1000 bytes */
    struct fx *x = fx_new(size, REMOCA_WRITE_INVALIDATE);
    read_check(x, size - 6000, 6000);
    assert_true(fr_has(x->r, 255));
    assert_false(fr_has(x->r, 256)); /* the partial last block is never cached */
    read_check(x, size - 6000, 6000);
    assert_int_equal(stats(x).remote_hits, 1);
    read_check(x, 1 << 20, 1000);
    read_check(x, 0, (uint32_t)size);
    do_write(x, size - 1500, 1500, 0x11); /* blocks 255 and the tail */
    assert_false(fr_has(x->r, 255));
    read_check(x, 0, (uint32_t)size);
    read_check(x, 0, (uint32_t)size);
    assert_false(fr_has(x->r, 256));

    /* A disk smaller than one block: nothing cacheable at all. */
    struct fx *y = fx_new(1000, REMOCA_WRITE_UPDATE);
    read_check(y, 0, 1000);
    do_write(y, 10, 100, 0x22);
    read_check(y, 0, 1000);
    assert_int_equal(y->r->puts + y->r->gets, 0);
    fx_free(y);
    fx_free(x);
}

/* Race hook: a write to the block being filled lands after the disk read. */
static void hook_write_block2(struct fake_disk *d, uint64_t off, uint32_t len)
{
    do_write(fx_g, 2 * BS, BS, 0x77);
}

static void test_fill_race_write_after_read(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    char buf[4 * BS];
    int err;
    x->d->after_pread = hook_write_block2;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, sizeof buf, 0, 0, &err), 0);
    /* The read returned the old block 2 (it raced with an unacknowledged
     * write); what matters is that it did not insert it. */
    assert_false(fr_has(x->r, 2));
    struct remoca_cache_stats s = stats(x);
    assert_true(s.fills_skipped >= 1);
    assert_int_equal(s.fills + s.fills_skipped, 4);
    /* Every later read sees the write. */
    read_check(x, 0, 4 * BS);
    read_check(x, 0, 4 * BS);
    assert_int_equal(x->d->bytes[2 * BS], 0x77);
    fx_free(x);
}

/* Race hook: a read runs while a write is in progress (inside pwrite). */
static void hook_read_during_write(struct fake_disk *d, uint64_t off, uint32_t len)
{
    char buf[BS];
    int err;
    assert_int_equal(remoca_cache_read(fx_g->c, &fx_g->b, buf, BS, off, 0, &err), 0);
}

static void test_fill_race_read_during_write(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    x->d->in_pwrite = hook_read_during_write;
    do_write(x, 5 * BS, BS, 0x66);
    assert_int_equal(stats(x).fills, 0);
    assert_int_equal(stats(x).fills_skipped, 1);
    assert_false(fr_has(x->r, 5));
    read_check(x, 5 * BS, BS);
    assert_true(fr_has(x->r, 5));
    fx_free(x);
}

/* Race hook: the insert raced with a write that already was in the remote:
 * a write to a neighbouring block of the same stripe also skips the fill
 * (false sharing is allowed: it only costs a fill). */
static void hook_write_block40(struct fake_disk *d, uint64_t off, uint32_t len)
{
    do_write(fx_g, 40 * BS, 10, 0x55);
}

static void test_fill_race_other_stripe(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    char buf[BS];
    int err;
    x->d->after_pread = hook_write_block40; /* block 40 is in unit 1 */
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 0, 0, &err), 0);
    assert_true(fr_has(x->r, 0)); /* unit 0 was untouched: filled */
    fx_free(x);
}

static void test_write_update(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_UPDATE);
    read_check(x, 0, 65536);
    do_write(x, 0, 65536, 0x42);
    for (int i = 0; i < 16; i++) assert_true(fr_has(x->r, i));
    assert_int_equal((unsigned char)x->r->pages[3][100], 0x42);
    unsigned p0 = x->d->preads;
    read_check(x, 0, 65536);
    assert_int_equal(x->d->preads, p0); /* served remotely */
    assert_int_equal(stats(x).updates, 16);

    /* Unaligned write-update: whole blocks put, edges invalidated. */
    do_write(x, 100, 3 * BS, 0x43); /* block 0 partial, 1,2 whole, 3 partial */
    assert_false(fr_has(x->r, 0));
    assert_true(fr_has(x->r, 1) && fr_has(x->r, 2));
    assert_false(fr_has(x->r, 3));
    assert_int_equal((unsigned char)x->r->pages[1][0], 0x43);
    read_check(x, 0, 65536);

    /* A refused put leaves no older page behind (delete before put). */
    x->r->refuse_puts = true;
    do_write(x, 0, 65536, 0x44);
    x->r->refuse_puts = false;
    read_check(x, 0, 65536);
    fx_free(x);
}

static void hook_read_during_update(struct fake_disk *d, uint64_t off, uint32_t len)
{
    do_write(fx_g, off, len, 0x99); /* a second, overlapping write */
}

static void test_write_update_concurrent_writes(void **state)
{
    /* Two overlapping writes in progress: neither may update. */
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_UPDATE);
    x->d->in_pwrite = hook_read_during_update;
    do_write(x, 0, 8192, 0x98);
    /* disk holds 0x98 (outer write landed last in the fake's order? no: the
     * inner write ran inside the outer's pwrite after its memcpy) -> 0x99 */
    assert_int_equal((unsigned char)x->d->bytes[0], 0x99);
    /* the inner write was not alone -> invalidated; the outer: not alone */
    read_check(x, 0, 8192);
    read_check(x, 0, 8192);
    fx_free(x);
}

static void test_trim_zero_invalidate(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_UPDATE);
    int err;
    read_check(x, 0, 65536);
    assert_int_equal(remoca_cache_zero(x->c, &x->b, 8192, 0, 0, &err), 0);
    assert_false(fr_has(x->r, 0) || fr_has(x->r, 1));
    assert_true(fr_has(x->r, 2));
    assert_int_equal(remoca_cache_trim(x->c, &x->b, 4096 + 10, 3 * BS, 0, &err), 0);
    assert_false(fr_has(x->r, 3) || fr_has(x->r, 4));
    read_check(x, 0, 65536);
    assert_int_equal(x->d->bytes[0], 0);
    assert_int_equal(remoca_cache_flush(x->c, &x->b, 0, &err), 0);
    assert_int_equal(x->d->flushes, 1);
    struct remoca_cache_stats s = stats(x);
    assert_int_equal(s.zeroes, 1);
    assert_int_equal(s.trims, 1);
    assert_int_equal(s.invalidations, 4);
    fx_free(x);
}

static void test_dead_remote(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 65536);
    x->r->dead = true; /* the server dies: every call fails */
    read_check(x, 0, 65536);
    do_write(x, 0, 4096, 0x31);
    read_check(x, 0, 65536);
    assert_int_equal(stats(x).errors, 0);
    x->r->dead = false;
    remoca_cache_reset(x->c); /* what a reconnect does */
    read_check(x, 0, 65536);
    read_check(x, 0, 65536);
    fx_free(x);
}

static void test_backing_error(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    char buf[BS];
    int err = 0;
    x->d->fail_reads = true;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 0, 0, &err), -1);
    assert_int_equal(err, EIO);
    assert_false(fr_has(x->r, 0));
    assert_int_equal(stats(x).errors, 1);
    fx_free(x);
}

/* Random single-threaded model test, with random evictions and random writes
 * injected inside disk reads (the race window). */
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t race_off;
static uint32_t race_len;
static void hook_random_write(struct fake_disk *d, uint64_t off, uint32_t len)
{
    do_write(fx_g, race_off, race_len, (int)(rnd() & 0xff));
}

static void random_run(enum remoca_write_policy w, uint64_t size)
{
    struct fx *x = fx_new(size, w);
    char *buf = malloc(256 * 1024);
    for (int it = 0; it < 4000; it++) {
        uint64_t off = rnd() % size;
        uint32_t len = (uint32_t)(rnd() % 3 == 0 ? rnd() % 9000 + 1 : (rnd() % 64 + 1) * BS);
        if (rnd() % 2) off &= ~(uint64_t)(BS - 1);
        if (off + len > size) len = (uint32_t)(size - off);
        if (len == 0) continue;
        int err, op = (int)(rnd() % 10);
        if (rnd() % 8 == 0) fr_evict(x->r, rnd() % (size / BS + 1));
        if (op < 5) {
            if (rnd() % 6 == 0) {
                race_off = off + rnd() % len;
                race_len = (uint32_t)(rnd() % 9000 + 1);
                if (race_off + race_len > size) race_len = (uint32_t)(size - race_off);
                x->d->after_pread = hook_random_write;
                /* the read may see old or new data in the raced range */
                assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, off, 0, &err), 0);
                x->d->after_pread = NULL;
            } else {
                memset(buf, 0xa5, len);
                assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, off, 0, &err), 0);
                assert_memory_equal(buf, x->d->bytes + off, len);
            }
        } else if (op < 8) {
            do_write(x, off, len, (int)(rnd() & 0xff));
        } else if (op < 9) {
            assert_int_equal(remoca_cache_zero(x->c, &x->b, len, off, 0, &err), 0);
        } else {
            assert_int_equal(remoca_cache_trim(x->c, &x->b, len, off, 0, &err), 0);
        }
    }
    /* Final sweep: every byte right, twice (second time mostly remote). */
    read_check(x, 0, (uint32_t)size);
    read_check(x, 0, (uint32_t)size);
    struct remoca_cache_stats s = stats(x);
    assert_true(s.remote_hits > 0);
    assert_true(s.fills_skipped > 0);
    free(buf);
    fx_free(x);
}

static void test_random_invalidate(void **state)
{
    random_run(REMOCA_WRITE_INVALIDATE, (1 << 20) + 1000);
}
static void test_random_update(void **state) { random_run(REMOCA_WRITE_UPDATE, (2 << 20) + 512); }

/* Several threads on disjoint regions with evictions: no wrong bytes. */
struct thr {
    struct fx *x;
    unsigned id;
};

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    struct fx *x = t->x;
    uint64_t base = (uint64_t)t->id << 20, seed = t->id * 7919 + 1;
    char *buf = malloc(65536), *model = malloc(1 << 20);
    memcpy(model, x->d->bytes + base, 1 << 20);
    for (int it = 0; it < 3000; it++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (seed >> 20) % ((1 << 20) - 65536);
        uint32_t len = (uint32_t)((seed >> 50) % 65536 + 1);
        int err;
        if ((seed >> 8) % 3 == 0) {
            memset(buf, (int)(seed >> 40), len);
            assert_int_equal(remoca_cache_write(x->c, &x->b, buf, len, base + off, 0, &err), 0);
            memcpy(model + off, buf, len);
        } else {
            assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, base + off, 0, &err), 0);
            if (memcmp(buf, model + off, len))
                fail_msg("thread %u: wrong bytes at %llu", t->id, (unsigned long long)(base + off));
        }
    }
    free(buf);
    free(model);
    return NULL;
}

static void test_threads(void **state)
{
    /* The fake disk is not thread-safe for overlapping ranges; regions are
     * disjoint but share generation stripes through the table wrap-around. */
    struct fx *x = fx_new(4 << 20, REMOCA_WRITE_UPDATE);
    pthread_t th[4];
    struct thr t[4];
    for (unsigned i = 0; i < 4; i++) {
        t[i] = (struct thr){x, i};
        pthread_create(&th[i], NULL, thread_main, &t[i]);
    }
    for (unsigned i = 0; i < 4; i++) pthread_join(th[i], NULL);
    fx_free(x);
}

/* Concurrent stress with real races: every block has one writer thread (so
 * its versions on disk only grow), any thread reads any range, and a thread
 * evicts remote pages at random.  Each block's bytes carry (block, version).
 * A read that starts after version v of block b was acknowledged must return
 * a version >= v: anything older is a stale block served by the cache. */
#define ST_BLOCKS 512u
#define ST_THREADS 4u
static _Atomic uint64_t st_acked[ST_BLOCKS];
static atomic_uint_fast64_t st_stale, st_reads;

struct st_arg {
    struct fx *x;
    unsigned id;
};

static void st_stamp(char *page, uint64_t block, uint64_t version)
{
    for (unsigned i = 0; i < BS; i += 16) {
        memcpy(page + i, &block, 8);
        memcpy(page + i + 8, &version, 8);
    }
}

static void *st_worker(void *arg)
{
    struct st_arg *a = arg;
    struct fx *x = a->x;
    uint64_t s = a->id * 2654435761u + 7, version[ST_BLOCKS] = {0};
    char *buf = malloc(16 * BS);
    for (int it = 0; it < 4000; it++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int err;
        if ((s >> 33) % 3 == 0) {
            /* write 1..4 blocks, all owned by this thread (b % ST_THREADS == id) */
            uint64_t n = (s >> 40) % 4 + 1;
            uint64_t b0 = ((s >> 20) % (ST_BLOCKS / ST_THREADS - 4)) * ST_THREADS + a->id;
            /* owned blocks are ST_THREADS apart: write them one request each */
            for (uint64_t k = 0; k < n; k++) {
                uint64_t b = b0 + k * ST_THREADS;
                st_stamp(buf, b, ++version[b]);
                assert_int_equal(remoca_cache_write(x->c, &x->b, buf, BS, b * BS, 0, &err), 0);
                atomic_store(&st_acked[b], version[b]);
            }
        } else {
            uint64_t n = (s >> 40) % 16 + 1;
            uint64_t b0 = (s >> 20) % (ST_BLOCKS - n);
            uint64_t floor[16];
            for (uint64_t k = 0; k < n; k++) floor[k] = atomic_load(&st_acked[b0 + k]);
            assert_int_equal(
                remoca_cache_read(x->c, &x->b, buf, (uint32_t)(n * BS), b0 * BS, 0, &err), 0);
            for (uint64_t k = 0; k < n; k++) {
                uint64_t blk, ver;
                memcpy(&blk, buf + k * BS, 8);
                memcpy(&ver, buf + k * BS + 8, 8);
                if (blk != b0 + k || ver < floor[k]) {
                    fprintf(stderr, "stale: block %llu read (%llu, v%llu) after v%llu acked\n",
                            (unsigned long long)(b0 + k), (unsigned long long)blk,
                            (unsigned long long)ver, (unsigned long long)floor[k]);
                    atomic_fetch_add(&st_stale, 1);
                }
            }
            atomic_fetch_add(&st_reads, 1);
        }
    }
    free(buf);
    return NULL;
}

static void stress_run(enum remoca_write_policy w)
{
    struct fx *x = fx_new(ST_BLOCKS * BS, w);
    for (uint64_t b = 0; b < ST_BLOCKS; b++) {
        st_stamp(x->d->bytes + b * BS, b, 0);
        atomic_store(&st_acked[b], 0);
    }
    x->d->yield_every = 3;
    atomic_store(&st_stale, 0);
    pthread_t th[ST_THREADS];
    struct fr_evictor ev;
    struct st_arg args[ST_THREADS];
    fr_evictor_start(&ev, x->r, ST_BLOCKS, 100);
    for (unsigned i = 0; i < ST_THREADS; i++) {
        args[i] = (struct st_arg){x, i};
        pthread_create(&th[i], NULL, st_worker, &args[i]);
    }
    for (unsigned i = 0; i < ST_THREADS; i++) pthread_join(th[i], NULL);
    fr_evictor_stop(&ev);
    struct remoca_cache_stats st = stats(x);
    fprintf(stderr, "stress %s: reads=%llu remote_hits=%llu fills=%llu skipped=%llu stale=%llu\n",
            w == REMOCA_WRITE_UPDATE ? "update" : "invalidate", (unsigned long long)st.reads,
            (unsigned long long)st.remote_hits, (unsigned long long)st.fills,
            (unsigned long long)st.fills_skipped, (unsigned long long)atomic_load(&st_stale));
    assert_int_equal(atomic_load(&st_stale), 0);
    assert_true(st.remote_hits > 0);
    read_check(x, 0, ST_BLOCKS * BS);
    fx_free(x);
}

static void test_stress_invalidate(void **state) { stress_run(REMOCA_WRITE_INVALIDATE); }
static void test_stress_update(void **state) { stress_run(REMOCA_WRITE_UPDATE); }

static void test_stats_format(void **state)
{
    struct fx *x = fx_new(1 << 20, REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 8192);
    struct remoca_cache_stats s = stats(x);
    char buf[2048];
    size_t n = remoca_cache_format_stats(&s, "cache_", buf, sizeof buf);
    assert_true(n < sizeof buf);
    assert_non_null(strstr(buf, "cache_reads=1\n"));
    assert_non_null(strstr(buf, "cache_fills=2\n"));
    assert_non_null(strstr(buf, "cache_remote_errors=0\n"));
    assert_int_equal(remoca_cache_format_stats(&s, "cache_", NULL, 0), n);
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_batching_one_get),
        cmocka_unit_test(test_unaligned_edges),
        cmocka_unit_test(test_odd_disk_size),
        cmocka_unit_test(test_fill_race_write_after_read),
        cmocka_unit_test(test_fill_race_read_during_write),
        cmocka_unit_test(test_fill_race_other_stripe),
        cmocka_unit_test(test_write_update),
        cmocka_unit_test(test_write_update_concurrent_writes),
        cmocka_unit_test(test_trim_zero_invalidate),
        cmocka_unit_test(test_dead_remote),
        cmocka_unit_test(test_backing_error),
        cmocka_unit_test(test_random_invalidate),
        cmocka_unit_test(test_random_update),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_stress_invalidate),
        cmocka_unit_test(test_stress_update),
        cmocka_unit_test(test_stats_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
