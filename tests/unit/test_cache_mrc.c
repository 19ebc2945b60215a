/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the engine's miss-ratio curve (lib/cache/cache.c feeding
 * lib/cache/mrc.c), with the fake remote and disk of test_cache_fake.h.
 *
 *   test ──remoca_cache_read / _read_pages──▶ engine ──▶ fake remote, fake disk
 *                                               │ every block a read touches
 *                                               ▼
 *   remoca_cache_mrc ──▶ remoca_mrc_curve / _get_stats: checked against the
 *                        LRU curve of the trace, known in closed form
 *
 * A loop over N blocks, P passes: an LRU cache smaller than N misses every
 * read, one of N blocks or more only the N first ones (ratio 1/P).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remoca/cache.h"
#include "remoca/mrc.h"
#include "test_cache_fake.h"

#define POINTS 64

struct fx {
    struct fake_remote *r;
    struct fake_disk *d;
    struct remoca_backing b;
    struct remoca_cache *c;
};

static struct fx *fx_new(uint64_t size, uint32_t mrc_samples)
{
    struct fx *x = calloc(1, sizeof *x);
    char err[128];
    x->r = fr_new(size / BS + 1);
    x->d = fd_new(size);
    x->b = (struct remoca_backing){&fd_ops, x->d};
    struct remoca_cache_opts o = {
        .disk_size = size, .remote = &fr_ops, .remote_ctx = x->r, .mrc_samples = mrc_samples};
    x->c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(x->c);
    return x;
}

static void fx_free(struct fx *x)
{
    remoca_cache_free(x->c);
    fr_free(x->r);
    fd_free(x->d);
    free(x);
}

static struct remoca_mrc_stats mrc_stats(struct fx *x)
{
    struct remoca_mrc_stats st;
    assert_non_null(remoca_cache_mrc(x->c));
    remoca_mrc_get_stats(remoca_cache_mrc(x->c), &st);
    return st;
}

static void read_at(struct fx *x, uint64_t off, uint32_t len)
{
    char *buf = malloc(len);
    int err = 0;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, off, 0, &err), 0);
    assert_memory_equal(buf, x->d->bytes + off, len);
    free(buf);
}

/* passes over blocks [0, n), reqblocks per read. */
static void loop(struct fx *x, uint64_t n, unsigned passes, uint32_t reqblocks)
{
    for (unsigned p = 0; p < passes; p++)
        for (uint64_t b = 0; b < n; b += reqblocks) read_at(x, b * BS, reqblocks * BS);
}

/* The curve is ~1 below n blocks (less margin) and ~1/passes from n on. */
static void check_loop_curve(struct fx *x, uint64_t n, unsigned passes, double margin, double tol)
{
    uint64_t sizes[POINTS];
    double mr[POINTS];
    size_t k = remoca_mrc_curve(remoca_cache_mrc(x->c), sizes, mr, POINTS);
    assert_int_equal(k, POINTS);
    unsigned below = 0, above = 0;
    for (size_t i = 0; i < k; i++) {
        if (getenv("MRC_VERBOSE")) printf("%llu %.4f\n", (unsigned long long)sizes[i], mr[i]);
        assert_true(mr[i] >= 0.0 && mr[i] <= 1.0);
        if (i) assert_true(mr[i] <= mr[i - 1]);
        if (sizes[i] < (uint64_t)((double)n * (1.0 - margin))) {
            assert_true(mr[i] > 1.0 - tol);
            below++;
        } else if (sizes[i] >= (uint64_t)((double)n * (1.0 + margin))) {
            assert_true(mr[i] < 1.0 / passes + tol);
            above++;
        }
    }
    assert_true(below >= 4 && above >= 4); /* the test saw both sides */
}

/* Every sample fits (2048 blocks, 8192 samples): the curve is exact. */
static void test_loop_exact(void **state)
{
    struct fx *x = fx_new(32 << 20, 0); /* 8192 blocks: the curve's domain */
    loop(x, 2048, 20, 1);
    struct remoca_mrc_stats st = mrc_stats(x);
    assert_int_equal(st.refs, 20 * 2048);
    assert_int_equal(st.sampled, 20 * 2048);
    assert_true(st.rate == 1.0);
    assert_int_equal(st.max_samples, REMOCA_CACHE_MRC_SAMPLES);
    assert_int_equal(st.max_blocks, 8192);
    check_loop_curve(x, 2048, 20, 0.02, 0.05);
    /* 8 blocks per histogram bucket: sizes inside the loop's bucket interpolate. */
    assert_true(remoca_mrc_miss_ratio_at(remoca_cache_mrc(x->c), 2040) > 0.95);
    assert_true(remoca_mrc_miss_ratio_at(remoca_cache_mrc(x->c), 2048) < 0.05 + 1.0 / 20);
    /* The remote tier served the later passes: the curve ignores it. */
    struct remoca_cache_stats cs;
    remoca_cache_get_stats(x->c, &cs);
    assert_int_equal(cs.remote_hits, 19 * 2048);
    fx_free(x);
}

/* 512 samples for 6000 blocks: sampled (rate ~8.5%), the step within 15%
 * of its size (a size estimated from 512 samples: about 4.4% error, sd),
 * the ratios within 0.05.  64 KiB requests: 16 blocks each. */
static void test_loop_sampled(void **state)
{
    struct fx *x = fx_new(64 << 20, 512); /* 16384 blocks */
    loop(x, 6000, 25, 16);
    struct remoca_mrc_stats st = mrc_stats(x);
    assert_int_equal(st.refs, 25 * 6000);
    assert_true(st.rate < 0.2);
    assert_true(st.samples <= 512);
    assert_true(st.sampled < st.refs / 5);
    check_loop_curve(x, 6000, 25, 0.15, 0.05);
    fx_free(x);
}

/* Each block a request touches counts once: edges, unaligned reads and the
 * disk's partial last block (never cached) included. */
static void test_blocks_counted(void **state)
{
    uint64_t size = (1 << 20) + 1000; /* 256 blocks and a partial one */
    struct fx *x = fx_new(size, 0);
    assert_int_equal(mrc_stats(x).max_blocks, 257);
    read_at(x, 4000, 100); /* blocks 0 and 1 */
    assert_int_equal(mrc_stats(x).refs, 2);
    read_at(x, 8192, 4096); /* block 2 */
    assert_int_equal(mrc_stats(x).refs, 3);
    read_at(x, 100, 10); /* block 0 again, inside one block */
    assert_int_equal(mrc_stats(x).refs, 4);
    read_at(x, 1 << 20, 1000); /* the partial last block */
    assert_int_equal(mrc_stats(x).refs, 5);
    read_at(x, 4095, 4098); /* blocks 0, 1, 2 */
    assert_int_equal(mrc_stats(x).refs, 8);
    int err = 0;
    assert_int_equal(remoca_cache_read(x->c, &x->b, NULL, 0, 0, 0, &err), 0);
    assert_int_equal(mrc_stats(x).refs, 8); /* an empty read touches nothing */

    /* Writes, trims and zeroes are not reads of the guest. */
    char page[BS] = {0};
    assert_int_equal(remoca_cache_write(x->c, &x->b, page, BS, 0, 0, &err), 0);
    assert_int_equal(remoca_cache_trim(x->c, &x->b, BS, BS, 0, &err), 0);
    assert_int_equal(mrc_stats(x).refs, 8);
    fx_free(x);
}

/* Before the remote tier: a dead remote or a warm one, the same refs. */
static void test_fed_before_remote(void **state)
{
    struct fx *x = fx_new(1 << 20, 0);
    x->r->dead = true;
    read_at(x, 0, 65536);
    x->r->dead = false;
    read_at(x, 0, 65536); /* misses, fills */
    read_at(x, 0, 65536); /* remote hits */
    assert_true(fr_has(x->r, 15));
    assert_int_equal(mrc_stats(x).refs, 48);
    /* 16 blocks, 3 passes: any cache of 16 blocks keeps the last two. */
    assert_true(remoca_mrc_miss_ratio_at(remoca_cache_mrc(x->c), 16) < 1.0 / 3 + 1e-9);
    assert_true(remoca_mrc_miss_ratio_at(remoca_cache_mrc(x->c), 15) > 0.999);
    fx_free(x);
}

/* A remote tier that evicts under the engine changes its hits, not the curve. */
static void test_curve_ignores_remote(void **state)
{
    struct fx *calm = fx_new(8 << 20, 0), *busy = fx_new(8 << 20, 0);
    struct fr_evictor ev;
    fr_evictor_start(&ev, busy->r, 2048, 1);
    loop(calm, 1500, 6, 4);
    loop(busy, 1500, 6, 4);
    fr_evictor_stop(&ev);
    uint64_t s1[POINTS], s2[POINTS];
    double m1[POINTS], m2[POINTS];
    size_t k = remoca_mrc_curve(remoca_cache_mrc(calm->c), s1, m1, POINTS);
    assert_int_equal(remoca_mrc_curve(remoca_cache_mrc(busy->c), s2, m2, POINTS), k);
    assert_memory_equal(s1, s2, k * sizeof s1[0]);
    assert_memory_equal(m1, m2, k * sizeof m1[0]);
    struct remoca_cache_stats a, b;
    remoca_cache_get_stats(calm->c, &a);
    remoca_cache_get_stats(busy->c, &b);
    assert_int_equal(a.remote_hits, 5 * 1500);
    assert_true(b.remote_hits < a.remote_hits); /* the evictor did evict */
    fx_free(calm);
    fx_free(busy);
}

/* remoca_cache_read_pages (inclusive here: through a bounce buffer) feeds
 * its pages, one block each. */
static void test_read_pages(void **state)
{
    struct fx *x = fx_new(1 << 20, 0);
    char *mem = malloc(8 * BS);
    struct remoca_guest_page pages[8];
    for (int i = 0; i < 8; i++) pages[i] = (struct remoca_guest_page){(uint64_t)i, mem + i * BS};
    int err = 0;
    assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pages, 8, 16 * BS, 0, &err), 0);
    assert_memory_equal(mem, x->d->bytes + 16 * BS, 8 * BS);
    assert_int_equal(mrc_stats(x).refs, 8);
    assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pages, 0, 0, 0, &err), 0);
    assert_int_equal(mrc_stats(x).refs, 8);
    free(mem);
    fx_free(x);
}

/* Exclusive mode: read_pages feeds before its eviction puts and takes. */
static void test_read_pages_exclusive(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    char err[128];
    x->r = fr_new(256 + 1);
    x->d = fd_new(1 << 20);
    x->b = (struct remoca_backing){&fd_ops, x->d};
    struct remoca_cache_opts o = {.disk_size = 1 << 20,
                                  .remote = &fr_ops,
                                  .remote_ctx = x->r,
                                  .mode = REMOCA_MODE_EXCLUSIVE,
                                  .guest_pages = 4};
    x->c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(x->c);
    char *mem = malloc(4 * BS);
    struct remoca_guest_page pages[4];
    for (int i = 0; i < 4; i++) pages[i] = (struct remoca_guest_page){(uint64_t)i, mem + i * BS};
    int e = 0;
    for (uint64_t off = 0; off < 64 * BS; off += 4 * BS) /* 16 reads over 4 guest pages */
        assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pages, 4, off, 0, &e), 0);
    for (uint64_t off = 0; off < 64 * BS; off += 4 * BS) /* again: taken back from remote */
        assert_int_equal(remoca_cache_read_pages(x->c, &x->b, pages, 4, off, 0, &e), 0);
    struct remoca_cache_stats cs;
    remoca_cache_get_stats(x->c, &cs);
    assert_true(cs.takes > 0);
    assert_int_equal(mrc_stats(x).refs, 128);
    /* A loop of 64 blocks read twice: half the reads hit in 64 blocks. */
    assert_true(remoca_mrc_miss_ratio_at(remoca_cache_mrc(x->c), 64) < 0.5 + 1e-9);
    free(mem);
    fx_free(x);
}

/* mrc_samples: UINT32_MAX turns the curve off; out of range fails; the
 * domain is the disk's blocks capped at 2^24, or mrc_blocks. */
static unsigned nop_get(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return 0;
}
static int nop_put(void *ctx, uint64_t key, uint32_t count, const void *pages) { return 0; }
static int nop_del(void *ctx, uint64_t key, uint64_t count) { return 0; }
static const struct remoca_remote_ops nop_ops = {nop_get, nop_put, nop_del, NULL, NULL};

static void test_options(void **state)
{
    char err[128] = "";
    struct remoca_cache_opts o = {.disk_size = 1 << 20, .remote = &nop_ops};
    struct remoca_mrc_stats st;

    o.mrc_samples = UINT32_MAX;
    struct remoca_cache *c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_null(remoca_cache_mrc(c));
    remoca_cache_free(c);

    o.mrc_samples = 5;
    assert_null(remoca_cache_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "mrc_samples"));

    o.mrc_samples = 64;
    o.mrc_blocks = 100;
    assert_non_null(c = remoca_cache_new(&o, err, sizeof err));
    remoca_mrc_get_stats(remoca_cache_mrc(c), &st);
    assert_int_equal(st.max_samples, 64);
    assert_int_equal(st.max_blocks, 100);
    remoca_cache_free(c);

    o = (struct remoca_cache_opts){.disk_size = 128ull << 30, .remote = &nop_ops}; /* 2^25 */
    assert_non_null(c = remoca_cache_new(&o, err, sizeof err));
    remoca_mrc_get_stats(remoca_cache_mrc(c), &st);
    assert_int_equal(st.max_blocks, REMOCA_CACHE_MRC_MAX_BLOCKS);
    assert_true(st.bytes < 1 << 20); /* fixed: about 520 KiB whatever the disk */
    remoca_cache_free(c);

    o.disk_size = 0; /* an empty disk still has a (one-block) curve */
    assert_non_null(c = remoca_cache_new(&o, err, sizeof err));
    remoca_mrc_get_stats(remoca_cache_mrc(c), &st);
    assert_int_equal(st.max_blocks, 1);
    remoca_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_exact),           cmocka_unit_test(test_loop_sampled),
        cmocka_unit_test(test_blocks_counted),       cmocka_unit_test(test_fed_before_remote),
        cmocka_unit_test(test_curve_ignores_remote), cmocka_unit_test(test_read_pages),
        cmocka_unit_test(test_read_pages_exclusive), cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
