/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: weighted rendezvous placement and the POOL_KEEP body
 * (lib/wire/placement.c), shared by the client and memd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "remoca/placement.h"

#define NCHUNKS 200000u

static uint64_t seed_of(unsigned i)
{
    char s[64];
    int n = snprintf(s, sizeof s, "tcp:10.0.0.%u:7400", i + 1);
    return remoca_placement_seed(s, (size_t)n);
}

/* Servers ids[0..n) (seed_of(id)) with the given weights (NULL: 1). */
static void make(struct remoca_placement *p, const unsigned *ids, unsigned n, const uint8_t *w)
{
    uint64_t seeds[REMOCA_MAX_SERVERS];
    for (unsigned i = 0; i < n; i++) seeds[i] = seed_of(ids[i]);
    remoca_placement_set(p, n, seeds, w);
}

static void test_weight_one_is_unweighted(void **state)
{
    /* weight 1 draws the single score XXH3(chunk, seed): the placement of
     * lists without weights does not move with this change */
    unsigned ids[4] = {0, 1, 2, 3};
    uint8_t ones[4] = {1, 1, 1, 1};
    struct remoca_placement a, b;
    make(&a, ids, 4, NULL);
    make(&b, ids, 4, ones);
    for (uint64_t ch = 0; ch < 10000; ch++)
        assert_int_equal(remoca_placement_chunk(&a, ch), remoca_placement_chunk(&b, ch));
    /* and a single server owns everything */
    make(&a, ids, 1, NULL);
    for (uint64_t k = 0; k < 1000; k += 13) assert_int_equal(remoca_placement_key(&a, k), 0);
}

static void test_spread_follows_weights(void **state)
{
    static const uint8_t sets[][5] = {{1, 2, 3, 4, 6}, {1, 1, 1, 1, 16}, {8, 8, 1, 2, 5}};
    unsigned ids[5] = {0, 1, 2, 3, 4};
    for (unsigned t = 0; t < 3; t++) {
        struct remoca_placement p;
        make(&p, ids, 5, sets[t]);
        unsigned cnt[5] = {0}, total = 0;
        for (unsigned i = 0; i < 5; i++) total += sets[t][i];
        for (uint64_t ch = 0; ch < NCHUNKS; ch++) cnt[remoca_placement_chunk(&p, ch)]++;
        for (unsigned i = 0; i < 5; i++) {
            double expect = (double)NCHUNKS * sets[t][i] / total;
            /* within 3% of the server's share, or 3 sd for the small ones */
            double tol = expect * 0.03 > 600 ? expect * 0.03 : 600;
            if (cnt[i] < expect - tol || cnt[i] > expect + tol)
                fail_msg("set %u: server %u (weight %u) got %u chunks, expected ~%.0f", t, i,
                         sets[t][i], cnt[i], expect);
        }
    }
}

static void test_add_moves_its_share_to_itself(void **state)
{
    for (unsigned n = 2; n <= 8; n++) {
        unsigned ids[9];
        for (unsigned i = 0; i <= n; i++) ids[i] = i;
        struct remoca_placement before, after;
        make(&before, ids, n, NULL);
        make(&after, ids, n + 1, NULL); /* server n added at the end */
        unsigned moved = 0;
        for (uint64_t ch = 0; ch < NCHUNKS; ch++) {
            unsigned a = remoca_placement_chunk(&before, ch),
                     b = remoca_placement_chunk(&after, ch);
            if (a != b) {
                assert_int_equal(b, n); /* only to the new server */
                moved++;
            }
        }
        double expect = (double)NCHUNKS / (n + 1);
        if (moved < expect * 0.95 || moved > expect * 1.05)
            fail_msg("adding 1 to %u moved %u chunks, expected ~%.0f", n, moved, expect);
    }
}

static void test_remove_moves_only_its_chunks(void **state)
{
    const unsigned n = 5;
    uint8_t w[5] = {1, 3, 2, 1, 4};
    unsigned ids[5] = {0, 1, 2, 3, 4};
    struct remoca_placement all;
    make(&all, ids, n, w);
    for (unsigned gone = 0; gone < n; gone++) {
        unsigned lids[4];
        uint8_t lw[4];
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++)
            if (i != gone) lids[k] = ids[i], lw[k++] = w[i];
        struct remoca_placement less;
        make(&less, lids, n - 1, lw);
        for (uint64_t ch = 0; ch < NCHUNKS / 4; ch++) {
            unsigned a = remoca_placement_chunk(&all, ch);
            if (a == gone) continue;
            assert_int_equal(lids[remoca_placement_chunk(&less, ch)], ids[a]);
        }
    }
}

static void test_weight_change_moves_only_to_it(void **state)
{
    unsigned ids[4] = {0, 1, 2, 3};
    uint8_t w1[4] = {1, 1, 1, 1}, w2[4] = {1, 1, 4, 1};
    struct remoca_placement a, b;
    make(&a, ids, 4, w1);
    make(&b, ids, 4, w2);
    for (uint64_t ch = 0; ch < NCHUNKS / 4; ch++) {
        unsigned x = remoca_placement_chunk(&a, ch), y = remoca_placement_chunk(&b, ch);
        if (x != y) assert_int_equal(y, 2);
    }
}

static void test_order_independent(void **state)
{
    unsigned ids[4] = {0, 1, 2, 3}, rev[4] = {3, 2, 1, 0};
    uint8_t w[4] = {1, 2, 3, 4}, wrev[4] = {4, 3, 2, 1};
    struct remoca_placement a, b;
    make(&a, ids, 4, w);
    make(&b, rev, 4, wrev);
    for (uint64_t ch = 0; ch < 20000; ch++)
        assert_int_equal(ids[remoca_placement_chunk(&a, ch)], rev[remoca_placement_chunk(&b, ch)]);
}

static void test_keep_body(void **state)
{
    unsigned ids[3] = {0, 1, 2};
    uint8_t w[3] = {1, 16, 2};
    struct remoca_placement p, q;
    make(&p, ids, 3, w);
    uint8_t buf[REMOCA_KEEP_MAX_BODY];
    size_t len = remoca_keep_encode(buf, sizeof buf, &p, 2);
    assert_int_equal(len, 4 + 3 * REMOCA_KEEP_ENTRY);
    unsigned self = 99;
    assert_int_equal(remoca_keep_decode(buf, len, &q, &self), 0);
    assert_int_equal(self, 2);
    assert_int_equal(q.n, 3);
    assert_memory_equal(q.seed, p.seed, sizeof p.seed[0] * 3);
    assert_memory_equal(q.weight, p.weight, 3);
    /* hostile bodies */
    assert_int_equal(remoca_keep_decode(buf, len - 1, &q, &self), -1); /* short */
    assert_int_equal(remoca_keep_decode(buf, 3, &q, &self), -1);
    uint8_t bad[REMOCA_KEEP_MAX_BODY];
    memcpy(bad, buf, len);
    bad[2] = 3; /* self == n */
    assert_int_equal(remoca_keep_decode(bad, len, &q, &self), -1);
    memcpy(bad, buf, len);
    bad[0] = 0; /* n = 0 */
    assert_int_equal(remoca_keep_decode(bad, 4, &q, &self), -1);
    memcpy(bad, buf, len);
    bad[4 + 8] = 0; /* weight 0 */
    assert_int_equal(remoca_keep_decode(bad, len, &q, &self), -1);
    bad[4 + 8] = 17; /* weight 17 */
    assert_int_equal(remoca_keep_decode(bad, len, &q, &self), -1);
    memcpy(bad, buf, len);
    memcpy(bad + 4 + REMOCA_KEEP_ENTRY, bad + 4, 8); /* duplicate seed */
    assert_int_equal(remoca_keep_decode(bad, len, &q, &self), -1);
    memcpy(bad, buf, len);
    bad[0] = 65; /* n above the maximum */
    assert_int_equal(remoca_keep_decode(bad, len, &q, &self), -1);
    /* encode refuses what decode would */
    assert_int_equal(remoca_keep_encode(buf, sizeof buf, &p, 3), 0);
    assert_int_equal(remoca_keep_encode(buf, 10, &p, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_one_is_unweighted),
        cmocka_unit_test(test_spread_follows_weights),
        cmocka_unit_test(test_add_moves_its_share_to_itself),
        cmocka_unit_test(test_remove_moves_only_its_chunks),
        cmocka_unit_test(test_weight_change_moves_only_to_it),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_keep_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
