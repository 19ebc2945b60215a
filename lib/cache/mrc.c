/* SPDX-License-Identifier: BSD-3-Clause */
/* Miss ratio curve estimator: fixed-size SHARDS with the SHARDS_adj
 * normalization (Waldspurger et al., FAST '15; lib/cache/include/remoca/mrc.h).
 *
 * A reference to block B is sampled iff h = XXH3(B) <= T; the rate is
 * R = (T+1) / 2^64.  Sampling by hash is spatial: a sampled block has every
 * reference sampled, so the reuse distance among sampled blocks, divided by
 * R, estimates the LRU stack distance (distinct blocks touched since B's last
 * reference).  State, all allocated at creation (one arena):
 *
 *   table (linear probing)   s[]: the pool, max_samples + 1 entries
 *   B ──▶ index + 1 ───────▶ { block B, hash h, t: slot of B's last access }
 *                                                 │
 *   heap: pool indices, largest hash on top       │ (whom to drop when T falls)
 *                                                 ▼
 *   time window   slot   0   1   2   3   4   5   6   7   8  ...  now ... win-1
 *                 owner  ·   x   ·   ·   B   y   ·   z   ·          (pool index)
 *                                            └───────┘ d = 2: y and z
 *                 fen    Fenwick tree over the slots: 1 at the last access
 *                        of every sample held
 *
 * A sampled reference of a held block: d = n - fen_prefix(t) (the samples
 * touched after B), hist[(d / R) / width] += 1 / R, then B's slot moves to
 * now.  A first sampled reference: cold += 1 / R and B enters the pool; one
 * sample too many and the largest hash H leaves table, heap and window, and
 * T becomes H - 1, so the window holds exactly the blocks that the current
 * rate samples.  When now reaches win (twice the pool), the live
 * slots are packed to 0..n-1 in time order and the tree is rebuilt: O(win)
 * once per at least win / 2 sampled references, O(log S) each on average.
 *
 * Why weights 1/R: the paper rescales the whole histogram by R_new / R_old at
 * every drop of the rate.  Telescoped, a count added at rate R_i ends up
 * scaled by R_now / R_i: weighting it 1 / R_i when it is added is the same up
 * to the common factor R_now, and costs nothing per drop.  The weights then
 * estimate reference counts.
 *
 * Why divide by refs (SHARDS_adj): miss(c) = (cold + weight of distances
 * >= c) / refs, not / (total weight).  The paper adds refs*R - sampled to the
 * first bucket (distance 0, a hit at every size); in weights that is
 * refs - total weight, and it cancels from every miss count.  It matters when a
 * few very hot blocks are (or are not) sampled: they swing the total weight
 * but only with short distances, while the misses are well estimated.
 *
 * Only sampled references take the mutex: the threshold is also an atomic,
 * and only ever falls, so a reference above a stale threshold is above the
 * current one too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "remoca/mrc.h"

#define NONE UINT32_MAX
#define MIN_SAMPLES 16u
#define MAX_SAMPLES (1u << 26) /* keeps every index and window slot in 32 bits */

struct sample {
    uint64_t block;
    uint64_t hash;
    uint32_t t; /* window slot of the last access */
};

struct remoca_mrc {
    pthread_mutex_t lock;            /* guards everything below but refs */
    _Atomic uint64_t refs;           /* remoca_mrc_access calls */
    _Atomic uint64_t threshold;      /* T; written under lock, read without */
    uint64_t sampled;                /* sampled references */
    uint32_t max_samples, n;         /* pool: max_samples + 1 entries, n in use */
    struct sample *s;                /* the pool */
    uint32_t *freel, nfree;          /* free pool indices, a stack */
    uint32_t *table, tmask;          /* block ──▶ pool index + 1, 0 = empty */
    uint32_t *heap;                  /* n pool indices, a max-heap by hash */
    uint32_t *fen, *owner, win, now; /* the time window: fen[1..win], owner[0..win) */
    double *hist;                    /* weight per distance bucket */
    double cold, over;               /* first references; distances past the domain */
    uint64_t max_blocks, width;      /* domain; blocks per bucket */
    uint32_t nbuckets;               /* ceil(max_blocks / width) <= REMOCA_MRC_BUCKETS */
    size_t bytes;
};

static double rate_of(uint64_t t) { return ((double)t + 1.0) / 18446744073709551616.0; }

/* ---- the time window: a Fenwick tree over slots ------------------------ */

static void fen_add(struct remoca_mrc *m, uint32_t slot, int32_t v)
{
    for (uint32_t i = slot + 1; i <= m->win; i += i & -i) m->fen[i] += (uint32_t)v;
}

/* Live samples whose last access is at a slot <= slot. */
static uint32_t fen_prefix(const struct remoca_mrc *m, uint32_t slot)
{
    uint32_t sum = 0;
    for (uint32_t i = slot + 1; i > 0; i -= i & -i) sum += m->fen[i];
    return sum;
}

/* Packs the live slots to 0..live-1, keeping their order, and rebuilds the
 * tree in O(win): each node adds itself into its parent once it is final. */
static void compact(struct remoca_mrc *m)
{
    uint32_t j = 0;
    for (uint32_t t = 0; t < m->win; t++) {
        uint32_t o = m->owner[t];
        if (o == NONE) continue;
        m->owner[t] = NONE;
        m->owner[j] = o;
        m->s[o].t = j++;
    }
    m->now = j;
    memset(m->fen, 0, (m->win + 1) * sizeof *m->fen);
    for (uint32_t i = 1; i <= m->win; i++) {
        m->fen[i] += i <= j;
        uint32_t p = i + (i & -i);
        if (p <= m->win) m->fen[p] += m->fen[i];
    }
}

static void place(struct remoca_mrc *m, uint32_t idx)
{
    if (m->now == m->win) compact(m);
    m->owner[m->now] = idx;
    m->s[idx].t = m->now;
    fen_add(m, m->now++, 1);
}

static void unplace(struct remoca_mrc *m, uint32_t idx)
{
    m->owner[m->s[idx].t] = NONE;
    fen_add(m, m->s[idx].t, -1);
}

/* ---- the table: linear probing keyed by the hash's low bits ------------ */

/* The slot holding block, or the empty slot where it would go.  A sampled
 * hash is <= T, so its high bits are zero: the low bits are the random ones. */
static uint32_t table_find(const struct remoca_mrc *m, uint64_t block, uint64_t hash)
{
    uint32_t i = (uint32_t)hash & m->tmask;
    while (m->table[i] && m->s[m->table[i] - 1].block != block) i = (i + 1) & m->tmask;
    return i;
}

/* Backward shift deletion: no tombstones, so probes stay short forever. */
static void table_remove(struct remoca_mrc *m, uint32_t i)
{
    uint32_t j = i;
    m->table[i] = 0;
    for (;;) {
        j = (j + 1) & m->tmask;
        if (!m->table[j]) return;
        uint32_t home = (uint32_t)m->s[m->table[j] - 1].hash & m->tmask;
        /* The entry at j may fill the hole at i if i lies on its probe path. */
        if (((j - home) & m->tmask) >= ((j - i) & m->tmask)) {
            m->table[i] = m->table[j];
            m->table[j] = 0;
            i = j;
        }
    }
}

/* ---- the heap: pool indices, largest hash on top ------------------------ */

static void heap_push(struct remoca_mrc *m, uint32_t idx)
{
    uint32_t i = m->n;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (m->s[m->heap[p]].hash >= m->s[idx].hash) break;
        m->heap[i] = m->heap[p];
        i = p;
    }
    m->heap[i] = idx;
}

/* Removes the top; m->n is the count before. */
static uint32_t heap_pop(struct remoca_mrc *m)
{
    uint32_t top = m->heap[0], last = m->heap[m->n - 1], n = m->n - 1, i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && m->s[m->heap[c + 1]].hash > m->s[m->heap[c]].hash) c++;
        if (m->s[m->heap[c]].hash <= m->s[last].hash) break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    m->heap[i] = last;
    return top;
}

/* ---- sampling ----------------------------------------------------------- */

/* Drops the largest hashes until the pool fits and everything held is at or
 * below the lowered threshold (equal hashes leave together). */
static void shrink(struct remoca_mrc *m)
{
    uint64_t t = atomic_load_explicit(&m->threshold, memory_order_relaxed);
    while (m->n > m->max_samples || (m->n > 0 && m->s[m->heap[0]].hash > t)) {
        uint32_t idx = heap_pop(m);
        struct sample *e = &m->s[idx];
        m->n--;
        if (e->hash <= t) t = e->hash ? e->hash - 1 : 0;
        table_remove(m, table_find(m, e->block, e->hash));
        unplace(m, idx);
        m->freel[m->nfree++] = idx;
    }
    atomic_store_explicit(&m->threshold, t, memory_order_relaxed);
}

static void hist_add(struct remoca_mrc *m, double dist, double w)
{
    double b = dist / (double)m->width;
    if (b >= (double)m->nbuckets)
        m->over += w;
    else
        m->hist[(uint32_t)b] += w;
}

void remoca_mrc_access_bytes(struct remoca_mrc *m, uint64_t offset, uint64_t count)
{
    if (count == 0) return;
    for (uint64_t b = offset / 4096, last = (offset + count - 1) / 4096; b <= last; b++)
        remoca_mrc_access(m, b);
}

void remoca_mrc_access(struct remoca_mrc *m, uint64_t block)
{
    uint64_t h = XXH3_64bits(&block, sizeof block);
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    if (h > atomic_load_explicit(&m->threshold, memory_order_relaxed)) return;

    pthread_mutex_lock(&m->lock);
    uint64_t t = atomic_load_explicit(&m->threshold, memory_order_relaxed);
    if (h > t) goto out; /* the rate fell meanwhile */
    m->sampled++;
    double w = 1.0 / rate_of(t);
    uint32_t pos = table_find(m, block, h);
    if (m->table[pos]) {
        uint32_t idx = m->table[pos] - 1;
        hist_add(m, (double)(m->n - fen_prefix(m, m->s[idx].t)) * w, w);
        unplace(m, idx);
        place(m, idx);
    } else {
        m->cold += w;
        uint32_t idx = m->freel[--m->nfree];
        m->s[idx].block = block;
        m->s[idx].hash = h;
        m->table[pos] = idx + 1;
        heap_push(m, idx);
        m->n++;
        place(m, idx);
        if (m->n > m->max_samples) shrink(m);
    }
out:
    pthread_mutex_unlock(&m->lock);
}

/* ---- the curve ---------------------------------------------------------- */

/* Miss weight at cache size c: cold, overflow and the buckets at or past c's,
 * linear inside c's bucket.  prefix = sum of the buckets before c's. */
static double miss_weight(const struct remoca_mrc *m, uint64_t c, double total, double prefix)
{
    uint64_t k = c / m->width;
    double miss = total - prefix;
    if (k < m->nbuckets) miss -= m->hist[k] * (double)(c % m->width) / (double)m->width;
    return miss;
}

static double ratio(double miss, uint64_t refs)
{
    if (!refs) return 1.0;
    double r = miss / (double)refs;
    return r < 0.0 ? 0.0 : r > 1.0 ? 1.0 : r;
}

static double hist_total(const struct remoca_mrc *m)
{
    double total = m->cold + m->over;
    for (uint32_t b = 0; b < m->nbuckets; b++) total += m->hist[b];
    return total;
}

size_t remoca_mrc_curve(const struct remoca_mrc *cm, uint64_t *sizes_blocks, double *miss_ratio,
                        size_t max_points)
{
    struct remoca_mrc *m = (struct remoca_mrc *)cm; /* the lock only */
    size_t n = max_points < REMOCA_MRC_BUCKETS ? max_points : REMOCA_MRC_BUCKETS;
    if (n > m->max_blocks) n = (size_t)m->max_blocks;

    pthread_mutex_lock(&m->lock);
    uint64_t refs = atomic_load_explicit(&m->refs, memory_order_relaxed);
    double total = hist_total(m), prefix = 0.0, prev = 1.0;
    uint64_t k = 0; /* buckets in prefix */
    for (size_t i = 0; i < n; i++) {
        /* (i+1) * max / n without overflow: max = q*n + r. */
        uint64_t q = m->max_blocks / n, r = m->max_blocks % n;
        uint64_t c = q * (i + 1) + r * (i + 1) / n;
        for (; k < c / m->width && k < m->nbuckets; k++) prefix += m->hist[k];
        double mr = ratio(miss_weight(m, c, total, prefix), refs);
        /* Rounding must not break monotonicity. */
        prev = mr < prev ? mr : prev;
        sizes_blocks[i] = c;
        miss_ratio[i] = prev;
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}

double remoca_mrc_miss_ratio_at(const struct remoca_mrc *cm, uint64_t cache_blocks)
{
    struct remoca_mrc *m = (struct remoca_mrc *)cm; /* the lock only */
    if (cache_blocks == 0) return 1.0;
    if (cache_blocks > m->max_blocks) cache_blocks = m->max_blocks;

    pthread_mutex_lock(&m->lock);
    uint64_t refs = atomic_load_explicit(&m->refs, memory_order_relaxed);
    double total = hist_total(m), prefix = 0.0;
    for (uint64_t k = 0; k < cache_blocks / m->width && k < m->nbuckets; k++) prefix += m->hist[k];
    double mr = ratio(miss_weight(m, cache_blocks, total, prefix), refs);
    pthread_mutex_unlock(&m->lock);
    return mr;
}

void remoca_mrc_get_stats(const struct remoca_mrc *cm, struct remoca_mrc_stats *st)
{
    struct remoca_mrc *m = (struct remoca_mrc *)cm; /* the lock only */
    pthread_mutex_lock(&m->lock);
    st->refs = atomic_load_explicit(&m->refs, memory_order_relaxed);
    st->sampled = m->sampled;
    st->rate = rate_of(atomic_load_explicit(&m->threshold, memory_order_relaxed));
    st->samples = m->n;
    st->max_samples = m->max_samples;
    st->max_blocks = m->max_blocks;
    st->bytes = m->bytes;
    pthread_mutex_unlock(&m->lock);
}

/* ---- lifecycle ---------------------------------------------------------- */

struct remoca_mrc *remoca_mrc_new(uint32_t max_samples, uint64_t max_cache_blocks)
{
    if (max_samples < MIN_SAMPLES || max_samples > MAX_SAMPLES || max_cache_blocks == 0) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t pool = max_samples + 1, win = 2 * pool, tcap = 1;
    while (tcap < 2 * pool) tcap *= 2;

    /* One arena, widest elements first: every array stays aligned. */
    size_t bytes = REMOCA_MRC_BUCKETS * sizeof(double) + pool * sizeof(struct sample) +
                   ((size_t)pool * 2 + tcap + (win + 1) + win) * sizeof(uint32_t);
    struct remoca_mrc *m = calloc(1, sizeof *m + bytes);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    m->hist = (double *)(m + 1);
    m->s = (struct sample *)(m->hist + REMOCA_MRC_BUCKETS);
    m->freel = (uint32_t *)(m->s + pool);
    m->heap = m->freel + pool;
    m->table = m->heap + pool;
    m->fen = m->table + tcap;
    m->owner = m->fen + win + 1;
    memset(m->owner, 0xff, win * sizeof *m->owner);

    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->refs, 0);
    atomic_init(&m->threshold, UINT64_MAX);
    m->max_samples = max_samples;
    for (uint32_t i = 0; i < pool; i++) m->freel[i] = pool - 1 - i;
    m->nfree = pool;
    m->tmask = tcap - 1;
    m->win = win;
    m->max_blocks = max_cache_blocks;
    m->width = max_cache_blocks / REMOCA_MRC_BUCKETS + (max_cache_blocks % REMOCA_MRC_BUCKETS != 0);
    m->nbuckets = (uint32_t)(max_cache_blocks / m->width + (max_cache_blocks % m->width != 0));
    m->bytes = sizeof *m + bytes;
    return m;
}

void remoca_mrc_free(struct remoca_mrc *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}
