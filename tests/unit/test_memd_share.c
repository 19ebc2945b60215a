/* SPDX-License-Identifier: BSD-3-Clause */
/* Sharing one memory budget between pools (issue 12), measured on the store
 * itself (no network): three pools with different working sets, driven as a
 * cache client drives memd (GET; on a miss, PUT), interleaved at random
 * (deterministic PRNG), in one budget of BUDGET pages:
 *
 *   loop   keys 0..LOOP-1 over and over: fits only in more than a third
 *   zipf   Zipf(0.9) over ZIPF_KEYS keys: every page helps a little
 *   scan   keys never seen before: no page helps
 *
 * Each layout replays exactly the same trace:
 *
 *   static  each pool min = max = BUDGET / 3 (an equal static split)
 *   shared  each pool min = MIN_PAGES, max = the budget, weight 1: what memd
 *           does by default when pools compete (utility-based sharing)
 *
 * The test asserts that sharing cuts total misses by at least 20 % against
 * the static split, and that no pool ever loses a page below its minimum
 * once it has reached it nor goes above its maximum (checked after every
 * access).  It prints the miss counts, quoted in memd/README.md.  Before the
 * marginal-utility rebalance (store.c), memd tilted fair shares by up to 4x
 * by ghost hits per page, over one direct-mapped ghost table of all pools:
 *
 *   static  196219 misses (loop/zipf/scan 52226/44280/99713)
 *   shared  179082 misses (34213/45156/99713), pages 1278/925/797: -8.7 %
 *
 * Now: static 204814 (60851/44250/99713: the exact per-pool ghosts change
 * S3-FIFO's admission, memd/README.md), shared 143570 (3683/40174/99713),
 * pages 1400/1490/110: -29.9 % (-26.8 % against the old static figure).
 *
 * The ghost tests check the per-pool bound of ghost.c: a pool's ghosts are
 * its latest `cap` evictions, and another pool's scan does not wash them
 * out. */
#include <math.h>
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
#define BUDGET 3000u
#define MIN_PAGES 100u
#define LOOP 1400u
#define ZIPF_KEYS 20000u
#define ACCESSES 300000u /* all pools together */
#define NPOOLS 3

static const char *const pool_names[NPOOLS] = {"loop", "zipf", "scan"};

static uint64_t rng;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double zipf_cdf[ZIPF_KEYS];
static void zipf_init(void)
{
    double sum = 0, acc = 0;
    for (unsigned i = 0; i < ZIPF_KEYS; i++) sum += 1.0 / pow(i + 1, 0.9);
    for (unsigned i = 0; i < ZIPF_KEYS; i++) {
        acc += 1.0 / pow(i + 1, 0.9) / sum;
        zipf_cdf[i] = acc;
    }
}

static uint64_t zipf_key(void)
{
    double u = (double)(next_rand() >> 11) / (double)(1ull << 53);
    unsigned lo = 0, hi = ZIPF_KEYS - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct limits {
    uint64_t min[NPOOLS], max[NPOOLS]; /* pages; max 0 = the budget */
};

struct result {
    uint64_t misses[NPOOLS];
    uint64_t gets[NPOOLS];
    uint64_t pages[NPOOLS];      /* at the end */
    uint64_t ghost_hits[NPOOLS]; /* at the end */
};

static uint32_t open_pool(struct store *s, const char *name, uint64_t min_pages, uint64_t max_pages)
{
    struct remoca_pool_open po = {.min_bytes = min_pages * PAGE,
                                  .max_bytes = max_pages * PAGE,
                                  .weight = 1,
                                  .name = name,
                                  .name_len = strlen(name)};
    uint32_t id = 0;
    assert_int_equal(store_pool_open(s, &po, &id), REMOCA_OK);
    return id;
}

/* Replays the trace (the same for every layout: the PRNG restarts) on a
 * fresh store whose pools have the limits given. */
static void replay(const struct limits *lim, uint32_t accesses, struct result *r)
{
    static uint8_t page[PAGE], out[PAGE];
    struct store s;
    assert_int_equal(store_init(&s, (uint64_t)BUDGET * PAGE, POLICY_S3FIFO, 16), 0);
    uint32_t id[NPOOLS];
    for (int k = 0; k < NPOOLS; k++) id[k] = open_pool(&s, pool_names[k], lim->min[k], lim->max[k]);
    bool reached[NPOOLS] = {false};
    uint64_t loop_pos = 0, scan_pos = 0;
    rng = 88172645463325252ull;
    memset(r, 0, sizeof *r);
    for (uint32_t n = 0; n < accesses; n++) {
        int k = (int)(next_rand() % NPOOLS);
        uint64_t key = k == 0 ? loop_pos++ % LOOP : k == 1 ? zipf_key() : 1000000 + scan_pos++;
        uint8_t bm[8] = {0}; /* remoca_bitmap_bytes(1) */
        r->gets[k]++;
        if (!store_get(&s, id[k], key, 1, false, bm, out)) {
            r->misses[k]++;
            memcpy(page, &key, sizeof key);
            assert_int_equal(store_put(&s, id[k], key, 1, page), REMOCA_OK);
        }
        /* Never below the minimum once reached, never above the maximum;
         * every page free or in a pool. */
        uint64_t used = 0;
        for (int j = 0; j < NPOOLS; j++) {
            const struct pool *p = store_pool(&s, id[j]);
            if (p->pages >= p->min_pages) reached[j] = true;
            if (reached[j]) assert_true(p->pages >= p->min_pages);
            assert_true(p->pages <= p->max_pages);
            used += p->pages;
        }
        assert_int_equal(used + s.nfree, s.npages);
    }
    for (int k = 0; k < NPOOLS; k++) {
        r->pages[k] = store_pool(&s, id[k])->pages;
        r->ghost_hits[k] = store_pool(&s, id[k])->st.ghost_hits;
        assert_int_equal(store_pool(&s, id[k])->st.misses, r->misses[k]);
    }
    store_destroy(&s);
}

static uint64_t total(const uint64_t *v)
{
    uint64_t t = 0;
    for (int k = 0; k < NPOOLS; k++) t += v[k];
    return t;
}

static void show(const char *layout, const struct result *r)
{
    print_message("%-7s misses=%llu hit_ratio=%.3f per_pool_misses=%llu/%llu/%llu "
                  "pages=%llu/%llu/%llu ghost_hits=%llu/%llu/%llu\n",
                  layout, (unsigned long long)total(r->misses),
                  1.0 - (double)total(r->misses) / (double)total(r->gets),
                  (unsigned long long)r->misses[0], (unsigned long long)r->misses[1],
                  (unsigned long long)r->misses[2], (unsigned long long)r->pages[0],
                  (unsigned long long)r->pages[1], (unsigned long long)r->pages[2],
                  (unsigned long long)r->ghost_hits[0], (unsigned long long)r->ghost_hits[1],
                  (unsigned long long)r->ghost_hits[2]);
}

static void test_sharing_beats_static_split(void **state)
{
    (void)state;
    struct result st, sh;
    const uint64_t third = BUDGET / NPOOLS;
    replay(&(struct limits){{third, third, third}, {third, third, third}}, ACCESSES, &st);
    replay(&(struct limits){{MIN_PAGES, MIN_PAGES, MIN_PAGES}, {0, 0, 0}}, ACCESSES, &sh);
    show("static", &st);
    show("shared", &sh);
    uint64_t ms = total(st.misses), mh = total(sh.misses);
    print_message("miss_reduction=%.3f (loop/zipf/scan, %u accesses, %u pages)\n",
                  1.0 - (double)mh / (double)ms, ACCESSES, BUDGET);
    /* At least 20 % fewer misses than the equal static split. */
    assert_true(mh * 5 <= ms * 4);
    /* The scan pool is kept near its minimum; the loop fits (its misses are
     * its first round and a few at the edge of its cliff). */
    assert_true(sh.pages[2] <= MIN_PAGES + MIN_PAGES / 2);
    assert_true(sh.misses[0] * 10 < st.misses[0]);
    assert_true(sh.misses[1] < st.misses[1]);
}

/* The same with the loop's maximum below its size: it can never fit, and
 * memory goes where it still helps, but never beyond a maximum. */
static void test_sharing_honours_max(void **state)
{
    (void)state;
    struct result sh;
    replay(&(struct limits){{MIN_PAGES, MIN_PAGES, MIN_PAGES}, {LOOP - 200, 0, 0}}, ACCESSES / 2,
           &sh);
    show("max", &sh);
    assert_true(sh.pages[0] <= LOOP - 200);
    assert_true(sh.pages[2] <= MIN_PAGES + MIN_PAGES / 2);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* ghost.c alone: pool 1 evicts 300 keys, then pool 2 evicts 100 000 (a scan)
 * into the same 1024-entry table.  Each pool keeps at most its cap; pool 1
 * keeps nearly all its ghosts (some lose their way in a full set while pool 2
 * is below its cap; once at it, pool 2 only replaces its own), pool 2
 * remembers only its latest.  (The direct-mapped table of before kept none of
 * pool 1's.) */
static void test_ghosts_bounded_per_pool(void **state)
{
    (void)state;
    struct ghost g;
    assert_int_equal(ghost_init(&g, 1024, 4), 0);
    assert_int_equal(ghost_size(&g), 1024);
    ghost_set_cap(&g, 1, 400);
    ghost_set_cap(&g, 2, 400);
    for (uint64_t k = 0; k < 300; k++) ghost_add(&g, 1, mix(1000 + k), k % 2);
    for (uint64_t k = 0; k < 100000; k++) ghost_add(&g, 2, mix(5000000 + k), false);
    assert_true(ghost_count(&g, 2) <= 400);
    unsigned found1 = 0, found2_new = 0, found2_old = 0;
    for (uint64_t k = 0; k < 300; k++) found1 += ghost_test(&g, 1, mix(1000 + k));
    for (uint64_t k = 100000 - 400; k < 100000; k++)
        found2_new += ghost_test(&g, 2, mix(5000000 + k));
    for (uint64_t k = 0; k < 100000 - 400; k++) found2_old += ghost_test(&g, 2, mix(5000000 + k));
    print_message("ghosts: pool 1 %u/300, pool 2 latest %u/400, older %u\n", found1, found2_new,
                  found2_old);
    assert_int_equal(ghost_count(&g, 1), found1);
    assert_true(found1 >= 240);
    assert_true(found2_new >= 300);
    assert_int_equal(found2_old, 0);
    /* Ghosts are per pool; take removes and returns the admit mark. */
    uint64_t k1 = 299; /* pool 1's latest: is it there, with its admit mark? */
    while (!ghost_test(&g, 1, mix(1000 + k1))) k1--;
    assert_false(ghost_test(&g, 2, mix(1000 + k1)));
    assert_int_equal(ghost_take(&g, 1, mix(1000 + k1)), k1 % 2);
    assert_false(ghost_test(&g, 1, mix(1000 + k1)));
    assert_int_equal(ghost_count(&g, 1), found1 - 1);
    /* A lower cap ages out the older ones at once. */
    ghost_set_cap(&g, 1, 100);
    found1 = 0;
    for (uint64_t k = 0; k < 200; k++) found1 += ghost_test(&g, 1, mix(1000 + k));
    assert_int_equal(found1, 0);
    ghost_free(&g);
}

int main(void)
{
    memd_log_level = LOG_ERROR;
    zipf_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharing_beats_static_split),
        cmocka_unit_test(test_sharing_honours_max),
        cmocka_unit_test(test_ghosts_bounded_per_pool),
    };
    return cmocka_run_group_tests_name("memd_share", tests, NULL, NULL);
}
