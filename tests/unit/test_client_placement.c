/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: rendezvous placement (lib/client/placement.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"

#define NCHUNKS 100000u

static void make_addrs(struct remoca_addr *a, unsigned n, unsigned skip)
{
    unsigned j = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i == skip) continue;
        char s[64];
        snprintf(s, sizeof s, "10.0.0.%u:7000", i + 1);
        assert_int_equal(remoca_addr_parse(s, strlen(s), &a[j++], NULL, 0), 0);
    }
}

static void test_single_server(void **state)
{
    struct remoca_addr a[1];
    make_addrs(a, 1, ~0u);
    struct remoca_placement p;
    remoca_placement_init(&p, a, 1);
    for (uint64_t k = 0; k < 1000; k++) assert_int_equal(remoca_placement_key(&p, k), 0);
}

static void test_deterministic_and_chunked(void **state)
{
    struct remoca_addr a[5];
    make_addrs(a, 5, ~0u);
    struct remoca_placement p1, p2;
    remoca_placement_init(&p1, a, 5);
    remoca_placement_init(&p2, a, 5);
    for (uint64_t k = 0; k < 100000; k += 7) {
        unsigned s = remoca_placement_key(&p1, k);
        assert_int_equal(s, remoca_placement_key(&p2, k));
        /* Every key of a chunk goes to the same server. */
        uint64_t first = k / REMOCA_PLACEMENT_CHUNK * REMOCA_PLACEMENT_CHUNK;
        assert_int_equal(s, remoca_placement_key(&p1, first));
        assert_int_equal(s, remoca_placement_key(&p1, first + REMOCA_PLACEMENT_CHUNK - 1));
    }
    /* Same servers in another order: same server *address* for every key. */
    struct remoca_addr r[5] = {a[3], a[1], a[4], a[0], a[2]};
    struct remoca_placement pr;
    remoca_placement_init(&pr, r, 5);
    for (uint64_t ch = 0; ch < 10000; ch++)
        assert_string_equal(a[remoca_placement_chunk(&p1, ch)].canon,
                            r[remoca_placement_chunk(&pr, ch)].canon);
}

static void test_spread(void **state)
{
    for (unsigned n = 2; n <= 8; n++) {
        struct remoca_addr a[8];
        make_addrs(a, n, ~0u);
        struct remoca_placement p;
        remoca_placement_init(&p, a, n);
        unsigned cnt[8] = {0};
        for (uint64_t ch = 0; ch < NCHUNKS; ch++) cnt[remoca_placement_chunk(&p, ch)]++;
        double expect = (double)NCHUNKS / n;
        for (unsigned i = 0; i < n; i++) {
            /* Binomial sd is < 1% of expect here; allow 5%. */
            if (cnt[i] < expect * 0.95 || cnt[i] > expect * 1.05)
                fail_msg("n=%u server %u got %u chunks, expected ~%.0f", n, i, cnt[i], expect);
        }
    }
}

static void test_removal_moves_only_its_keys(void **state)
{
    const unsigned n = 6;
    struct remoca_addr all[6], less[5];
    make_addrs(all, n, ~0u);
    for (unsigned gone = 0; gone < n; gone++) {
        make_addrs(less, n, gone);
        struct remoca_placement pa, pl;
        remoca_placement_init(&pa, all, n);
        remoca_placement_init(&pl, less, n - 1);
        unsigned moved = 0;
        for (uint64_t ch = 0; ch < NCHUNKS; ch++) {
            unsigned sa = remoca_placement_chunk(&pa, ch);
            unsigned sl = remoca_placement_chunk(&pl, ch);
            if (sa == gone) {
                moved++;
                continue;
            }
            assert_string_equal(all[sa].canon, less[sl].canon);
        }
        /* The removed server's share is redistributed: ~1/n of the chunks. */
        assert_true(moved > NCHUNKS / n * 0.9 && moved < NCHUNKS / n * 1.1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_server),
        cmocka_unit_test(test_deterministic_and_chunked),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_removal_moves_only_its_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
