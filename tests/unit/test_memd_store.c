/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of remoca-memd's page store (memd/store.c): bytes in and out,
 * TAKE, DELETE, DELETE_RANGE (including ranges far larger than the pool),
 * POOL_RESET, the budget, pool min/max/weight, fair-share eviction, E_FULL,
 * pool limits and ghost hits.  Every test checks the store's invariants:
 * free pages + pages of all pools == pages of the arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "store.h"

#define PAGE REMOCA_PAGE_SIZE

static void fill(uint8_t *p, uint32_t pool, uint64_t key)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 1000003u + pool * 7919u + i;
        memcpy(p + i, &v, 8);
    }
}

static uint32_t open_pool(struct store *s, const char *name, uint64_t min, uint64_t max,
                          uint32_t weight)
{
    struct remoca_pool_open po = {.min_bytes = min,
                                  .max_bytes = max,
                                  .weight = weight,
                                  .name = name,
                                  .name_len = strlen(name)};
    uint32_t id = 0;
    assert_int_equal(store_pool_open(s, &po, &id), REMOCA_OK);
    assert_true(id >= 1);
    return id;
}

static void put1(struct store *s, uint32_t pool, uint64_t key)
{
    uint8_t page[PAGE];
    fill(page, pool, key);
    assert_int_equal(store_put(s, pool, key, 1, page), REMOCA_OK);
}

/* 1 if key is present with the right bytes, 0 if absent; fails on wrong bytes. */
static int has(struct store *s, uint32_t pool, uint64_t key)
{
    uint8_t bm[8] = {0}, page[PAGE], want[PAGE];
    uint32_t hits = store_get(s, pool, key, 1, false, bm, page);
    if (!hits) {
        assert_int_equal(bm[0], 0);
        return 0;
    }
    assert_int_equal(bm[0], 1);
    fill(want, pool, key);
    assert_memory_equal(page, want, PAGE);
    return 1;
}

static void check_invariants(struct store *s)
{
    uint64_t used = 0;
    for (uint32_t k = 0; k < s->npools; k++) {
        struct pool *p = s->pools[k];
        used += p->pages;
        assert_int_equal(p->q[0].len + p->q[1].len, p->pages);
        assert_true(p->pages <= p->max_pages);
    }
    assert_int_equal(used + s->nfree, s->npages);
}

static int setup(void **state)
{
    memd_log_level = LOG_ERROR;
    struct store *s = malloc(sizeof *s);
    assert_int_equal(store_init(s, 256 * PAGE, POLICY_S3FIFO, 16), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    store_destroy(*state);
    free(*state);
    return 0;
}

static void test_put_get_bytes(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "vm1/vda", 0, 0, 0);
    uint32_t b = open_pool(s, "vm2/vda", 0, 0, 0);
    uint8_t pages[8 * PAGE];
    for (int i = 0; i < 8; i++) fill(pages + i * PAGE, a, 100 + i);
    assert_int_equal(store_put(s, a, 100, 8, pages), REMOCA_OK);
    /* Same keys in another pool are other pages. */
    assert_int_equal(has(s, b, 100), 0);
    put1(s, b, 100);
    assert_int_equal(has(s, a, 100), 1);
    assert_int_equal(has(s, b, 100), 1);

    /* A batch with holes: keys 96..111, hits are 100..107, packed in order. */
    uint8_t bm[8] = {0}, out[16 * PAGE];
    assert_int_equal(store_get(s, a, 96, 16, false, bm, out), 8);
    assert_int_equal(bm[0], 0xf0);
    assert_int_equal(bm[1], 0x0f);
    assert_memory_equal(out, pages, 8 * PAGE);

    /* Overwrite keeps one page and stores the new bytes. */
    uint8_t page[PAGE];
    memset(page, 0xab, PAGE);
    assert_int_equal(store_put(s, a, 103, 1, page), REMOCA_OK);
    memset(bm, 0, sizeof bm);
    assert_int_equal(store_get(s, a, 103, 1, false, bm, out), 1);
    assert_memory_equal(out, page, PAGE);
    assert_int_equal(store_pool(s, a)->pages, 8);
    assert_int_equal(store_pool(s, a)->st.hits, 8 + 1 + 1);
    check_invariants(s);
}

static void test_take_delete(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "p", 0, 0, 0);
    for (uint64_t k = 0; k < 10; k++) put1(s, a, k);
    uint8_t bm[8] = {0}, out[4 * PAGE];
    assert_int_equal(store_get(s, a, 2, 2, true, bm, out), 2);
    assert_int_equal(has(s, a, 2), 0);
    assert_int_equal(has(s, a, 3), 0);
    assert_int_equal(store_pool(s, a)->st.takes, 2);
    assert_int_equal(store_delete(s, a, 5, 2), 2);
    assert_int_equal(has(s, a, 5), 0);
    assert_int_equal(has(s, a, 4), 1);
    assert_int_equal(has(s, a, 7), 1);
    assert_int_equal(store_pool(s, a)->pages, 6);
    check_invariants(s);
}

static void test_delete_range_huge(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "a", 0, 0, 0);
    uint32_t b = open_pool(s, "b", 0, 0, 0);
    uint64_t far = UINT64_MAX - 5;
    for (uint64_t k = 0; k < 50; k++) put1(s, a, k * 1000000007ull);
    put1(s, a, far);
    put1(s, a, UINT64_MAX);
    for (uint64_t k = 0; k < 50; k++) put1(s, b, k * 1000000007ull);
    /* 2^63 keys: must walk the pool's 52 pages, not the range. */
    assert_int_equal(store_delete(s, a, 1000000007ull * 10, 1ull << 63), 40);
    for (uint64_t k = 0; k < 50; k++) assert_int_equal(has(s, a, k * 1000000007ull), k < 10);
    assert_int_equal(has(s, a, far), 1); /* outside [key, key + 2^63) */
    assert_int_equal(has(s, a, UINT64_MAX), 1);
    assert_int_equal(store_delete(s, a, far, 6), 2); /* far .. UINT64_MAX */
    assert_int_equal(has(s, a, far), 0);
    assert_int_equal(has(s, a, UINT64_MAX), 0);
    /* The other pool is untouched. */
    for (uint64_t k = 0; k < 50; k++) assert_int_equal(has(s, b, k * 1000000007ull), 1);
    check_invariants(s);
}

static void test_reset(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "a", 0, 0, 0);
    uint32_t b = open_pool(s, "b", 0, 0, 0);
    for (uint64_t k = 0; k < 100; k++) put1(s, a, k);
    put1(s, a, UINT64_MAX);
    for (uint64_t k = 0; k < 30; k++) put1(s, b, k);
    assert_int_equal(store_reset(s, a), 101);
    assert_int_equal(store_pool(s, a)->pages, 0);
    assert_int_equal(has(s, a, 5), 0);
    assert_int_equal(has(s, b, 5), 1);
    assert_int_equal(s->nfree, 256 - 30);
    check_invariants(s);
}

static void test_budget_never_exceeded(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "a", 0, 0, 0);
    for (uint64_t k = 0; k < 5000; k++) {
        put1(s, a, k);
        assert_true(store_pool(s, a)->pages <= 256);
    }
    assert_int_equal(store_pool(s, a)->pages, 256);
    assert_int_equal(store_pool(s, a)->st.evictions, 5000 - 256);
    /* Whatever is still there has the right bytes. */
    int present = 0;
    for (uint64_t k = 0; k < 5000; k++) present += has(s, a, k);
    assert_int_equal(present, 256);
    check_invariants(s);
}

static void test_max_honoured(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "small", 0, 64 * PAGE, 1);
    uint32_t b = open_pool(s, "big", 0, 0, 1);
    for (uint64_t k = 0; k < 1000; k++) {
        put1(s, a, k);
        assert_true(store_pool(s, a)->pages <= 64);
    }
    assert_int_equal(store_pool(s, a)->pages, 64);
    /* a evicted from itself while the arena still had free pages */
    assert_int_equal(s->nfree, 256 - 64);
    for (uint64_t k = 0; k < 1000; k++) put1(s, b, k);
    assert_int_equal(store_pool(s, b)->pages + store_pool(s, a)->pages, 256);
    /* Reopening with a lower max: the next put shrinks the pool to it. */
    uint32_t a2 = open_pool(s, "small", 0, 16 * PAGE, 1);
    assert_int_equal(a2, a);
    put1(s, a, 5000);
    assert_int_equal(store_pool(s, a)->pages, 16);
    assert_int_equal(has(s, a, 5000), 1);
    check_invariants(s);
}

static void test_min_honoured(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "guaranteed", 100 * PAGE, 0, 1);
    uint32_t b = open_pool(s, "hog", 0, 0, 100);
    for (uint64_t k = 0; k < 150; k++) put1(s, a, k);
    for (uint64_t k = 0; k < 5000; k++) put1(s, b, k);
    /* the hog's weight gives it nearly everything, but never a's minimum */
    assert_int_equal(store_pool(s, a)->pages, 100);
    assert_int_equal(store_pool(s, b)->pages, 156);
    check_invariants(s);
}

static void test_weights_share(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "w1", 0, 0, 1);
    uint32_t b = open_pool(s, "w3", 0, 0, 3);
    for (uint64_t k = 0; k < 4000; k++) {
        put1(s, a, k);
        put1(s, b, k);
    }
    uint64_t pa = store_pool(s, a)->pages, pb = store_pool(s, b)->pages;
    assert_int_equal(pa + pb, 256);
    /* 1:3 of 256 pages = 64:192, within a page or two */
    assert_true(pa >= 62 && pa <= 66);
    check_invariants(s);
}

static void test_full_and_limits(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "all", 256 * PAGE, 0, 1);
    for (uint64_t k = 0; k < 300; k++) put1(s, a, k); /* evicts from itself at its max */
    assert_int_equal(store_pool(s, a)->pages, 256);
    /* Every page is a's minimum: another pool cannot get any. */
    struct remoca_pool_open po = {.name = "b", .name_len = 1};
    uint32_t b;
    assert_int_equal(store_pool_open(s, &po, &b), REMOCA_OK);
    uint8_t page[PAGE] = {0};
    assert_int_equal(store_put(s, b, 1, 1, page), REMOCA_E_FULL);
    /* A minimum that does not fit the budget is refused. */
    struct remoca_pool_open pc = {.min_bytes = PAGE, .name = "c", .name_len = 1};
    uint32_t c;
    assert_int_equal(store_pool_open(s, &pc, &c), REMOCA_E_LIMIT);
    /* Lowering a's minimum by reopening it makes room. */
    struct remoca_pool_open pa = {.min_bytes = 0, .name = "all", .name_len = 3};
    uint32_t a2;
    assert_int_equal(store_pool_open(s, &pa, &a2), REMOCA_OK);
    assert_int_equal(a2, a);
    assert_int_equal(store_put(s, b, 1, 1, page), REMOCA_OK);
    /* --max-pools (16 here) */
    char name[16];
    uint32_t id;
    for (int i = 0; i < 14; i++) { /* 2 + 14 = 16 pools */
        snprintf(name, sizeof name, "x%d", i);
        struct remoca_pool_open px = {.name = name, .name_len = strlen(name)};
        assert_int_equal(store_pool_open(s, &px, &id), REMOCA_OK);
    }
    struct remoca_pool_open py = {.name = "one-too-many", .name_len = 12};
    assert_int_equal(store_pool_open(s, &py, &id), REMOCA_E_LIMIT);
    check_invariants(s);
}

/* A batch put that runs out of pages part way must not leave an older page
 * behind for any key of the batch: the client sent newer data for all of
 * them.  Pool a pins 254 pages as its minimum; pool b pins 2 (keys 10, 11). */
static void test_full_batch_drops_older_pages(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "a", 254 * PAGE, 0, 1);
    uint32_t b = open_pool(s, "b", 2 * PAGE, 2 * PAGE + PAGE, 1);
    for (uint64_t k = 0; k < 254; k++) put1(s, a, k);
    put1(s, b, 10);
    put1(s, b, 11);
    assert_int_equal(s->nfree, 0);
    /* b may grow to 3 pages but nobody can give one: keys 9, 10, 11 newer. */
    uint8_t pages[3 * PAGE];
    memset(pages, 0x5a, sizeof pages);
    enum remoca_status st = store_put(s, b, 9, 3, pages);
    assert_int_equal(st, REMOCA_E_FULL);
    assert_int_equal(has(s, b, 10) + has(s, b, 11), 0);
    assert_int_equal(store_pool(s, a)->pages, 254);
    check_invariants(s);
}

static void test_ghost_hits(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "a", 0, 32 * PAGE, 1);
    uint32_t b = open_pool(s, "b", 0, 0, 1);
    for (uint64_t k = 0; k < 64; k++) put1(s, a, k); /* evicts about 32 keys */
    uint64_t evicted = store_pool(s, a)->st.evictions;
    assert_int_equal(evicted, 32);
    uint64_t ghosts = 0, misses = 0;
    for (uint64_t k = 0; k < 64; k++) misses += !has(s, a, k);
    ghosts = store_pool(s, a)->st.ghost_hits;
    assert_int_equal(misses, 32);
    /* Nearly every evicted key is remembered (the table is direct-mapped). */
    assert_true(ghosts >= 28 && ghosts <= 32);
    /* Keys never stored are not ghosts, nor are another pool's evictions. */
    for (uint64_t k = 1000; k < 1100; k++) has(s, a, k);
    for (uint64_t k = 0; k < 64; k++) has(s, b, k);
    assert_true(store_pool(s, a)->st.ghost_hits <= ghosts + 1);
    assert_int_equal(store_pool(s, b)->st.ghost_hits, 0);
    /* Deleted (not evicted) keys are not ghosts either. */
    uint64_t before = store_pool(s, a)->st.ghost_hits;
    put1(s, a, 5000);
    store_delete(s, a, 5000, 1);
    has(s, a, 5000);
    assert_int_equal(store_pool(s, a)->st.ghost_hits, before);
    check_invariants(s);
}

/* Utility: with equal weights, the pool whose misses keep finding ghosts (it
 * would profit from more memory) ends up with more than half the arena; the
 * pool that only scans (no reuse) with less. */
static void test_ghost_utility_tilts_share(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "reuser", 0, 0, 1);
    uint32_t b = open_pool(s, "scanner", 0, 0, 1);
    uint64_t scan = 1000000;
    for (int round = 0; round < 40; round++) {
        for (uint64_t k = 0; k < 200; k++) {
            if (!has(s, a, k)) put1(s, a, k); /* loop over 200 keys: reuse */
            uint64_t key = scan++;
            if (!has(s, b, key)) put1(s, b, key); /* never reused */
        }
    }
    uint64_t pa = store_pool(s, a)->pages, pb = store_pool(s, b)->pages;
    assert_true(store_pool(s, a)->st.ghost_hits > 0);
    assert_int_equal(store_pool(s, b)->st.ghost_hits, 0);
    assert_int_equal(pa + pb, 256);
    assert_true(pa > 150);
    check_invariants(s);
}

static void test_stats_text_json(void **state)
{
    struct store *s = *state;
    uint32_t a = open_pool(s, "vm 1/\"x\"", 0, 0, 1);
    put1(s, a, 1);
    has(s, a, 1);
    has(s, a, 2);
    char buf[8192];
    struct server_counters sc = {.conns = 3, .threads = 2};
    size_t n = store_stats(s, &sc, false, buf, sizeof buf);
    assert_int_equal(strlen(buf), n);
    assert_non_null(strstr(buf, "server policy=s3fifo"));
    assert_non_null(strstr(buf, "pool name=vm\\x201/\"x\" pages=1 bytes=4096"));
    assert_non_null(strstr(buf, " gets=2 hits=1 misses=1 "));
    assert_non_null(strstr(buf, " connections=3 "));
    n = store_stats(s, &sc, true, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"name\": \"vm 1/\\\"x\\\"\""));
    assert_non_null(strstr(buf, "\"hits\": 1"));
    /* A tiny buffer still gives a terminated, bounded answer. */
    n = store_stats(s, &sc, true, buf, 1500);
    assert_true(n < 1500);
    assert_int_equal(strlen(buf), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_range_huge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_never_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weights_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_drops_older_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ghost_hits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ghost_utility_tilts_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_text_json, setup, teardown),
    };
    return cmocka_run_group_tests_name("memd_store", tests, NULL, NULL);
}
