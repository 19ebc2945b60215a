/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-loadgen: latency histogram.
 *
 * Log-linear buckets (the HdrHistogram idea, much simplified): a value v in
 * nanoseconds falls in bucket (msb(v) - 5) * 64 + the 6 bits below its msb,
 * so each power of two is split in 64 buckets (precision ~1.5%) and the whole
 * range of uint64 fits in 64 * 64 counters.  Adding is O(1) and branch-light:
 * the generator records every single request.
 */
#include "loadgen.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < LG_HIST_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned sub = (unsigned)(v >> (msb - 6)) & (LG_HIST_SUB - 1);
    return (msb - 5) * LG_HIST_SUB + sub;
}

/* Lowest value and width of a bucket. */
static void bucket_range(unsigned b, double *lo, double *width)
{
    if (b < LG_HIST_SUB) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned msb = b / LG_HIST_SUB + 5, sub = b % LG_HIST_SUB;
    double unit = (double)(1ull << (msb - 6));
    *lo = (double)(1ull << msb) + sub * unit;
    *width = unit;
}

void lg_hist_add(struct lg_hist *h, uint64_t ns)
{
    h->count[bucket_of(ns)]++;
    h->n++;
    h->sum_ns += (double)ns;
}

void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from)
{
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) into->count[i] += from->count[i];
    into->n += from->n;
    into->sum_ns += from->sum_ns;
}

double lg_hist_quantile(const struct lg_hist *h, double q)
{
    if (!h->n) return 0;
    uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
    for (unsigned b = 0; b < LG_HIST_BUCKETS; b++) {
        seen += h->count[b];
        if (seen >= rank) {
            double lo, w;
            bucket_range(b, &lo, &w);
            return lo + w / 2;
        }
    }
    return 0;
}
