/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the miss ratio curve estimator (lib/cache/mrc.c) against exact
 * LRU miss ratio curves computed here from the same synthetic traces.
 *
 *   trace (deterministic PRNG) ──┬──▶ remoca_mrc, max_samples = 1% of the
 *                                │    trace's distinct blocks ──▶ est[256]
 *                                └──▶ exact stack distances ──▶ exact[256]
 *                                     (Fenwick tree over time: O(N log N))
 *   at the same 256 cache sizes:  MAE = mean |est - exact| <= 0.02
 *
 * Exact: the stack distance of a reference is the number of distinct blocks
 * touched since the previous reference to its block; an LRU cache of c blocks
 * hits iff that is < c.  A Fenwick tree over reference times holds a 1 at the
 * last reference of every block, so the distance is the count of ones after
 * the previous reference.  The checker is checked too: a wrong expectation
 * (the curve shifted by a tenth of the domain, or another trace's curve) must
 * fail the bound, and tiny traces held whole (rate 1) must come out exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "remoca/mrc.h"

#define POINTS 256u
#define DOMAIN (1u << 20)    /* curve domain of the big traces, in blocks */
#define MAX_BLOCK (1u << 20) /* every block number of a trace is below */
#define MAE_BOUND 0.02

/* ---- traces ------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd01(uint64_t *s) { return (double)(rnd(s) >> 11) * 0x1p-53; }

static uint32_t uniform(uint64_t *s, uint32_t n) { return (uint32_t)(rnd01(s) * n); }

/* Zipf-like ranks, alpha 0.9, over n blocks: the inverse of the continuous CDF
 * of x^-0.9 on [1, n+1], x = (1 + u (K - 1))^10 with K = (n+1)^0.1.  The
 * exponents are whole, so no libm. */
struct zipf {
    double k1; /* K - 1 */
    uint32_t n;
};

static void zipf_init(struct zipf *z, uint32_t n)
{
    double lo = 1.0, hi = 16.0; /* 10th root of n + 1 by bisection */
    for (int i = 0; i < 100; i++) {
        double mid = (lo + hi) / 2, p = mid * mid;
        p = p * p * mid; /* ^5 */
        if (p * p < (double)n + 1)
            lo = mid;
        else
            hi = mid;
    }
    z->k1 = lo - 1.0;
    z->n = n;
}

static uint32_t zipf(const struct zipf *z, uint64_t *s)
{
    double x = 1.0 + rnd01(s) * z->k1, p = x * x;
    p = p * p * x;
    uint64_t r = (uint64_t)(p * p) - 1;
    return r < z->n ? (uint32_t)r : z->n - 1;
}

struct trace {
    const char *name;
    uint32_t *b;
    size_t n;
};

static struct trace trace_new(const char *name, size_t n)
{
    struct trace t = {name, malloc(n * sizeof(uint32_t)), n};
    assert_non_null(t.b);
    return t;
}

/* Zipf 0.9 over 1M blocks: a long tail that is mostly cold. */
static struct trace t_zipf(size_t n)
{
    struct trace t = trace_new("zipf", n);
    struct zipf z;
    uint64_t s = 1;
    zipf_init(&z, MAX_BLOCK);
    for (size_t i = 0; i < n; i++) t.b[i] = zipf(&z, &s);
    return t;
}

/* A cyclic scan of 400k blocks: LRU misses everything below 400k. */
static struct trace t_loop(size_t n)
{
    struct trace t = trace_new("loop", n);
    for (size_t i = 0; i < n; i++) t.b[i] = (uint32_t)(i % 400000u);
    return t;
}

/* Half the references to a hot set of 16k, half a cyclic scan of 500k. */
static struct trace t_scan_hot(size_t n)
{
    struct trace t = trace_new("scan+hot", n);
    uint64_t s = 2;
    uint32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (rnd(&s) & 1)
            t.b[i] = uniform(&s, 16384u);
        else
            t.b[i] = 16384u + cur++ % 500000u;
    }
    return t;
}

/* Working set A (250k, uniform) for the first half, then B (200k, zipf). */
static struct trace t_phase(size_t n)
{
    struct trace t = trace_new("phase", n);
    struct zipf z;
    uint64_t s = 3;
    zipf_init(&z, 200000u);
    for (size_t i = 0; i < n; i++)
        t.b[i] = i < n / 2 ? uniform(&s, 250000u) : 300000u + zipf(&z, &s);
    return t;
}

/* ---- exact LRU curve and the checker ------------------------------------ */

struct exact {
    uint64_t refs, cold, over; /* over: distances > the domain */
    uint64_t distinct;
    uint32_t *hist; /* references by distance, [0, domain] */
    uint64_t domain;
};

static void exact_run(const struct trace *t, uint64_t domain, struct exact *e)
{
    uint32_t *last = calloc(MAX_BLOCK, sizeof *last); /* time + 1 */
    uint32_t *fen = calloc(t->n + 1, sizeof *fen);
    uint32_t live = 0;
    memset(e, 0, sizeof *e);
    e->hist = calloc(domain + 1, sizeof *e->hist);
    e->domain = domain;
    assert_true(last && fen && e->hist);
    for (size_t i = 0; i < t->n; i++) {
        uint32_t b = t->b[i], p = last[b];
        assert_true(b < MAX_BLOCK);
        if (!p) {
            e->cold++;
            e->distinct++;
        } else {
            uint32_t before = 0; /* ones at times <= p - 1 */
            for (uint32_t j = p; j > 0; j -= j & -j) before += fen[j];
            uint32_t d = live - before;
            if (d > domain)
                e->over++;
            else
                e->hist[d]++;
            for (uint32_t j = p; j <= t->n; j += j & -j) fen[j]--;
            live--;
        }
        for (uint32_t j = (uint32_t)i + 1; j <= t->n; j += j & -j) fen[j]++;
        live++;
        last[b] = (uint32_t)i + 1;
    }
    e->refs = t->n;
    free(last);
    free(fen);
}

/* Exact miss ratios at increasing sizes. */
static void exact_curve(const struct exact *e, const uint64_t *sizes, double *miss, size_t n)
{
    uint64_t hits = 0, d = 0; /* hits: distances < d */
    for (size_t i = 0; i < n; i++) {
        for (; d < sizes[i] && d <= e->domain; d++) hits += e->hist[d];
        miss[i] = (double)(e->refs - hits) / (double)e->refs;
    }
}

static double mae(const double *a, const double *b, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    return sum / (double)n;
}

static void check_curve(const uint64_t *sizes, const double *miss, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(miss[i] >= 0.0 && miss[i] <= 1.0);
        if (i) {
            assert_true(sizes[i] > sizes[i - 1]);
            assert_true(miss[i] <= miss[i - 1]);
        }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void feed(struct remoca_mrc *m, const struct trace *t)
{
    for (size_t i = 0; i < t->n; i++) remoca_mrc_access(m, t->b[i]);
}

/* ---- tests -------------------------------------------------------------- */

/* The checker itself: known distances, and wrong curves that must fail. */
static void test_checker(void **state)
{
    double a[] = {0, 1, 0.5, 0.25}, b[] = {0.5, 0.5, 0.5, 0.25};
    assert_true(mae(a, a, 4) == 0.0);
    assert_true(mae(a, b, 4) == 0.25);

    /* A 3-block loop: every distance is 2, so sizes 1 and 2 miss all, 3 only the cold. */
    uint32_t blocks[] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    struct trace t = {"tiny", blocks, 9};
    struct exact e;
    uint64_t sizes[] = {1, 2, 3, 4};
    double miss[4];
    exact_run(&t, 4, &e);
    exact_curve(&e, sizes, miss, 4);
    assert_true(miss[0] == 1.0 && miss[1] == 1.0);
    assert_true(miss[2] == 3.0 / 9 && miss[3] == 3.0 / 9);
    free(e.hist);
}

/* A trace whose blocks all fit in the sample set is measured at rate 1 and
 * with one-block buckets: the estimate must be the exact curve, through many
 * compactions of the time window. */
static void test_exact_when_all_sampled(void **state)
{
    struct trace t = trace_new("small", 300000);
    struct zipf z;
    uint64_t s = 4;
    zipf_init(&z, 1000);
    for (size_t i = 0; i < t.n; i++) t.b[i] = i % 7 ? zipf(&z, &s) : (uint32_t)(i / 7 % 1000);

    struct remoca_mrc *m = remoca_mrc_new(1024, 1000);
    assert_non_null(m);
    feed(m, &t);
    uint64_t sizes[1000];
    double est[1000], ex[1000];
    size_t n = remoca_mrc_curve(m, sizes, est, 1000);
    assert_int_equal(n, 1000);
    assert_int_equal(sizes[0], 1);
    assert_int_equal(sizes[999], 1000);
    check_curve(sizes, est, n);

    struct exact e;
    exact_run(&t, 1000, &e);
    exact_curve(&e, sizes, ex, n);
    for (size_t i = 0; i < n; i++) {
        if (est[i] < ex[i] - 1e-12 || est[i] > ex[i] + 1e-12)
            fail_msg("size %zu: %.9f, exact %.9f", (size_t)sizes[i], est[i], ex[i]);
        assert_true(remoca_mrc_miss_ratio_at(m, sizes[i]) == est[i]);
    }
    struct remoca_mrc_stats st;
    remoca_mrc_get_stats(m, &st);
    assert_int_equal(st.refs, t.n);
    assert_int_equal(st.sampled, t.n);
    assert_true(st.rate == 1.0);
    assert_int_equal(st.samples, e.distinct);
    assert_true(remoca_mrc_miss_ratio_at(m, 0) == 1.0);
    remoca_mrc_free(m);
    free(e.hist);
    free(t.b);
}

/* Few samples over many blocks: the pool stays full, the rate falls to about
 * max_samples / distinct, and only sampled blocks were counted as sampled. */
static void test_rate_adapts(void **state)
{
    struct remoca_mrc *m = remoca_mrc_new(64, 1000);
    assert_non_null(m);
    uint64_t s = 5;
    for (int i = 0; i < 200000; i++) remoca_mrc_access(m, uniform(&s, 100000));
    struct remoca_mrc_stats st;
    remoca_mrc_get_stats(m, &st);
    assert_int_equal(st.refs, 200000);
    assert_int_equal(st.samples, 64);
    assert_true(st.sampled < st.refs / 100);
    /* ~86k distinct blocks: the 65th smallest hash of them. */
    assert_true(st.rate > 0.4 * 64 / 86000 && st.rate < 2.5 * 64 / 86000);
    assert_null(remoca_mrc_new(8, 1000));
    assert_null(remoca_mrc_new(64, 0));
    remoca_mrc_free(m);
}

/* Exact curves of the four traces: tr[i]'s curve at the sizes of the
 * estimator (same domain for all, so curves of different traces compare). */
#define NTRACES 4
static struct trace tr[NTRACES];
static struct exact ex[NTRACES];

static int setup_traces(void **state)
{
    double t0 = now_s();
    tr[0] = t_zipf(2000000);
    tr[1] = t_loop(2000000);
    tr[2] = t_scan_hot(2400000);
    tr[3] = t_phase(2000000);
    for (int i = 0; i < NTRACES; i++) exact_run(&tr[i], DOMAIN, &ex[i]);
    print_message("traces and exact curves: %.2f s\n", now_s() - t0);
    return 0;
}

static int teardown_traces(void **state)
{
    for (int i = 0; i < NTRACES; i++) {
        free(tr[i].b);
        free(ex[i].hist);
    }
    return 0;
}

static void test_accuracy(void **state)
{
    static double exc[NTRACES][POINTS], est[NTRACES][POINTS];
    uint64_t sizes[POINTS];
    for (int i = 0; i < NTRACES; i++) {
        double t0 = now_s();
        uint32_t max_samples = (uint32_t)(ex[i].distinct / 100);
        struct remoca_mrc *m = remoca_mrc_new(max_samples, DOMAIN);
        assert_non_null(m);
        feed(m, &tr[i]);
        size_t n = remoca_mrc_curve(m, sizes, est[i], POINTS);
        assert_int_equal(n, POINTS);
        assert_int_equal(sizes[POINTS - 1], DOMAIN);
        check_curve(sizes, est[i], n);
        exact_curve(&ex[i], sizes, exc[i], n);

        struct remoca_mrc_stats st;
        remoca_mrc_get_stats(m, &st);
        double err = mae(est[i], exc[i], n);
        print_message("%-9s refs %zu distinct %llu samples %u (%.2f%%) rate %.5f sampled %llu: "
                      "MAE %.4f (%.3f s)\n",
                      tr[i].name, tr[i].n, (unsigned long long)ex[i].distinct, st.samples,
                      100.0 * st.samples / (double)ex[i].distinct, st.rate,
                      (unsigned long long)st.sampled, err, now_s() - t0);
        assert_int_equal(st.refs, tr[i].n);
        assert_true(st.samples > 0 && st.samples <= ex[i].distinct / 100);
        assert_true(err <= MAE_BOUND);

        /* A wrong expectation fails: the exact curve a tenth of the domain
         * later (a loop 100k blocks longer, a hot set of another size...). */
        double wrong[POINTS];
        for (size_t j = 0; j < n; j++)
            wrong[j] = exc[i][j + POINTS / 10 < n ? j + POINTS / 10 : n - 1];
        print_message("%-9s   vs curve shifted by domain/10: MAE %.4f\n", tr[i].name,
                      mae(est[i], wrong, n));
        assert_true(mae(est[i], wrong, n) > MAE_BOUND);
        remoca_mrc_free(m);
    }
    /* ... and so does every other trace's exact curve. */
    for (int i = 0; i < NTRACES; i++)
        for (int j = 0; j < NTRACES; j++)
            if (i != j) assert_true(mae(est[i], exc[j], POINTS) > MAE_BOUND);
}

/* Memory is fixed at creation: the same after 1x and 5x the trace, and no
 * allocation at all while feeding. */
static void test_fixed_memory(void **state)
{
    struct remoca_mrc *m = remoca_mrc_new(8192, DOMAIN);
    struct remoca_mrc_stats st1, st5;
    assert_non_null(m);
    feed(m, &tr[0]);
    remoca_mrc_get_stats(m, &st1);
#ifdef __GLIBC__
    size_t heap1 = mallinfo2().uordblks;
#endif
    for (int k = 0; k < 4; k++) feed(m, &tr[0]);
    remoca_mrc_get_stats(m, &st5);
#ifdef __GLIBC__
    assert_int_equal(mallinfo2().uordblks, heap1);
#endif
    assert_int_equal(st5.refs, 5 * tr[0].n);
    assert_int_equal(st1.bytes, st5.bytes);
    assert_true(st5.bytes < 8192 * 64 + REMOCA_MRC_BUCKETS * 8 + 4096);
    assert_int_equal(st5.samples, 8192);
    assert_true(st5.rate <= st1.rate);
    print_message("bytes %zu for 8192 samples, after %zu and %zu references\n", st5.bytes, tr[0].n,
                  5 * tr[0].n);
    remoca_mrc_free(m);
}

/* Two threads feed one estimator while a third reads its curve. */
struct feeder {
    struct remoca_mrc *m;
    uint64_t seed;
};

static void *feed_thread(void *arg)
{
    struct feeder *f = arg;
    struct zipf z;
    zipf_init(&z, 200000);
    for (int i = 0; i < 300000; i++) remoca_mrc_access(f->m, zipf(&z, &f->seed));
    return NULL;
}

static void test_threads(void **state)
{
    struct remoca_mrc *m = remoca_mrc_new(256, 100000);
    assert_non_null(m);
    struct feeder f[2] = {{m, 6}, {m, 7}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, feed_thread, &f[i]), 0);
    uint64_t sizes[64];
    double miss[64];
    for (int k = 0; k < 50; k++) {
        size_t n = remoca_mrc_curve(m, sizes, miss, 64);
        check_curve(sizes, miss, n);
        struct remoca_mrc_stats st;
        remoca_mrc_get_stats(m, &st);
        assert_true(st.samples <= 256);
    }
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    struct remoca_mrc_stats st;
    remoca_mrc_get_stats(m, &st);
    assert_int_equal(st.refs, 600000);
    assert_int_equal(st.samples, 256);
    size_t n = remoca_mrc_curve(m, sizes, miss, 64);
    check_curve(sizes, miss, n);
    assert_true(miss[n - 1] < miss[0]);
    remoca_mrc_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker),      cmocka_unit_test(test_exact_when_all_sampled),
        cmocka_unit_test(test_rate_adapts),  cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_fixed_memory), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup_traces, teardown_traces);
}
