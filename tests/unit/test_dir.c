/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the cache engine's directory (lib/cache/dir.c): the word-at-a-time
 * range operations against a naive model, one bool per block.
 *
 *   words[0]          words[1]          words[2]          words[3]
 *   |0 ........... 63|64 ......... 127|128 ........ 191|192 . 199|(unused)|
 *        within one ^──^  crossing ^─────^   exact ^────────^   ^ last partial
 *
 * After every operation the whole directory is compared with the model,
 * including the bits past nblocks in the last word, which must stay clear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dir.h"

#define NBLOCKS 200u /* 3 whole words + 8 blocks: not a multiple of 64 */

struct model {
    struct remoca_dir d;
    uint64_t nblocks;
    bool *bit;
};

static void m_init(struct model *m, uint64_t nblocks)
{
    assert_int_equal(dir_init(&m->d, nblocks), 0);
    m->nblocks = nblocks;
    m->bit = calloc(nblocks, sizeof *m->bit);
    assert_non_null(m->bit);
}

static void m_free(struct model *m)
{
    dir_destroy(&m->d);
    free(m->bit);
}

static void m_set(struct model *m, uint64_t b, uint64_t n)
{
    dir_set_range(&m->d, b, n);
    for (uint64_t i = b; i < b + n; i++) m->bit[i] = true;
}

/* Clears in both and checks the count of bits that were set. */
static void m_clear(struct model *m, uint64_t b, uint64_t n)
{
    uint64_t was = 0;
    for (uint64_t i = b; i < b + n; i++) {
        was += m->bit[i];
        m->bit[i] = false;
    }
    assert_int_equal(dir_clear_range(&m->d, b, n), was);
}

/* Every bit, the raw words (nothing past nblocks) and the count. */
static void m_check(const struct model *m)
{
    uint64_t count = 0;
    for (uint64_t w = 0; w < m->nblocks / 64 + 1; w++) {
        uint64_t want = 0;
        for (uint64_t i = 0; i < 64 && w * 64 + i < m->nblocks; i++)
            if (m->bit[w * 64 + i]) want |= 1ull << i;
        uint64_t got = atomic_load(&m->d.words[w]);
        if (got != want)
            fail_msg("word %llu: %016llx, model %016llx", (unsigned long long)w,
                     (unsigned long long)got, (unsigned long long)want);
    }
    for (uint64_t b = 0; b < m->nblocks; b++) {
        assert_int_equal(dir_test(&m->d, b), m->bit[b]);
        count += m->bit[b];
    }
    assert_int_equal(dir_count(&m->d), count);
}

/* Sets [b, b+n) on an empty directory, checks, clears it from a full one. */
static void set_then_clear(uint64_t b, uint64_t n)
{
    struct model m;
    m_init(&m, NBLOCKS);
    m_set(&m, b, n);
    m_check(&m);
    m_clear(&m, b, n);
    m_check(&m);
    assert_int_equal(dir_count(&m.d), 0);

    m_set(&m, 0, NBLOCKS);
    m_check(&m);
    m_clear(&m, b, n);
    m_check(&m);
    assert_int_equal(dir_count(&m.d), NBLOCKS - n);
    m_free(&m);
}

static void test_within_one_word(void **state)
{
    set_then_clear(3, 7);   /* inside word 0 */
    set_then_clear(0, 1);   /* first bit */
    set_then_clear(63, 1);  /* last bit of word 0 */
    set_then_clear(70, 50); /* inside word 1 */
    set_then_clear(129, 62);
}

static void test_crossing_words(void **state)
{
    set_then_clear(60, 10);  /* words 0,1 */
    set_then_clear(63, 2);   /* the two bits around a boundary */
    set_then_clear(10, 180); /* partial, whole, partial */
    set_then_clear(1, 198);  /* all but the first and last block */
}

static void test_exact_word_boundaries(void **state)
{
    set_then_clear(0, 64);  /* one whole word */
    set_then_clear(64, 64); /* a whole middle word */
    set_then_clear(0, 192); /* three whole words */
    set_then_clear(64, 65); /* starts on a boundary, ends one past one */
    set_then_clear(63, 65); /* starts one before a boundary, ends on one */
    set_then_clear(128, 64);
}

static void test_last_partial_word(void **state)
{
    set_then_clear(192, 8);     /* exactly the last partial word */
    set_then_clear(199, 1);     /* the last block */
    set_then_clear(190, 10);    /* crossing into it, up to the end */
    set_then_clear(0, NBLOCKS); /* the whole disk */

    /* A disk of exactly one word and one of less than one. */
    struct model m;
    m_init(&m, 64);
    m_set(&m, 0, 64);
    m_check(&m);
    assert_int_equal(atomic_load(&m.d.words[1]), 0);
    m_clear(&m, 0, 64);
    m_check(&m);
    m_free(&m);
    m_init(&m, 5);
    m_set(&m, 2, 3);
    m_check(&m);
    m_clear(&m, 0, 5);
    m_check(&m);
    m_free(&m);
}

static void test_count_zero(void **state)
{
    struct model m;
    m_init(&m, NBLOCKS);
    uint64_t at[] = {0, 5, 63, 64, 199, NBLOCKS}; /* NBLOCKS: the end of the disk */
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        m_set(&m, at[i], 0);
        m_check(&m);
        assert_int_equal(dir_count(&m.d), 0);
    }
    m_set(&m, 0, NBLOCKS);
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        m_clear(&m, at[i], 0); /* returns 0, clears nothing */
        m_check(&m);
        assert_int_equal(dir_count(&m.d), NBLOCKS);
    }
    m_free(&m);
}

/* Random ranges (fixed seed) on a directory whose size is not a multiple of
 * 64, mixed with single-bit clears and full resets, checked after each op. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_random_against_model(void **state)
{
    const uint64_t sizes[] = {NBLOCKS, 1000, 64 * 16, 1};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct model m;
        m_init(&m, sizes[s]);
        for (int it = 0; it < 3000; it++) {
            uint64_t b = rnd() % (m.nblocks + 1);
            /* mostly short ranges (edge masks), sometimes long ones */
            uint64_t room = m.nblocks - b;
            uint64_t n = room == 0   ? 0
                         : rnd() % 4 ? rnd() % (room < 130 ? room + 1 : 130)
                                     : rnd() % (room + 1);
            unsigned op = (unsigned)(rnd() % 16);
            if (op < 7) {
                m_set(&m, b, n);
            } else if (op < 14) {
                m_clear(&m, b, n);
            } else if (op < 15 && b < m.nblocks) {
                assert_int_equal(dir_test_clear(&m.d, b), m.bit[b]);
                m.bit[b] = false;
            } else if (rnd() % 8 == 0) {
                dir_clear_all(&m.d);
                memset(m.bit, 0, m.nblocks * sizeof *m.bit);
            }
            m_check(&m);
        }
        m_free(&m);
    }
}

/* Threads own disjoint bit segments that share words: a range op on one
 * segment must never lose a neighbour's concurrent change (the masks are
 * applied atomically, not as a load and a store of the whole word). */
#define NTHREADS 4
#define SEG 16 /* bits per thread per word */
#define TWORDS 4

static struct remoca_dir shared;

static void *seg_worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    bool mine[TWORDS][SEG] = {{false}};
    uint64_t seed = 0x1234567ull * (t + 1);
    for (int it = 0; it < 20000; it++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned w = (unsigned)(seed >> 60) % TWORDS;
        unsigned lo = (unsigned)(seed >> 40) % SEG;
        unsigned n = (unsigned)(seed >> 20) % (SEG - lo + 1);
        uint64_t b = (uint64_t)w * 64 + t * SEG + lo;
        if ((seed >> 10) & 1) {
            dir_set_range(&shared, b, n);
            for (unsigned i = lo; i < lo + n; i++) mine[w][i] = true;
        } else {
            uint64_t was = 0;
            for (unsigned i = lo; i < lo + n; i++) {
                was += mine[w][i];
                mine[w][i] = false;
            }
            if (dir_clear_range(&shared, b, n) != was) return (void *)1;
        }
        for (unsigned i = 0; i < SEG; i++)
            if (dir_test(&shared, (uint64_t)w * 64 + t * SEG + i) != mine[w][i]) return (void *)1;
    }
    return NULL;
}

static void test_concurrent_neighbours(void **state)
{
    assert_int_equal(dir_init(&shared, TWORDS * 64), 0);
    pthread_t th[NTHREADS];
    for (uintptr_t t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, seg_worker, (void *)t), 0);
    for (unsigned t = 0; t < NTHREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        if (r) fail_msg("thread %u saw its bits changed by a neighbour", t);
    }
    dir_destroy(&shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_within_one_word),
        cmocka_unit_test(test_crossing_words),
        cmocka_unit_test(test_exact_word_boundaries),
        cmocka_unit_test(test_last_partial_word),
        cmocka_unit_test(test_count_zero),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_concurrent_neighbours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
