/* SPDX-License-Identifier: BSD-3-Clause */
/* The page store (see store.h for the data structures and the rules).
 *
 * Every public function takes the store lock itself; the *_locked helpers
 * expect it held.  Batched operations work in chunks of LOCK_CHUNK pages and
 * release the lock in between, so that one large request never stalls the
 * other workers for long. */
#include "store.h"

#include "remoca/placement.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "policy.h"

#define LOCK_CHUNK 16u
/* Eviction victims a touch (--shm) may spare before one is evicted anyway. */
#define TOUCH_RETRIES 8u

static const char *const policy_names[POLICY__MAX] = {
    [POLICY_LRU] = "lru", [POLICY_CLOCK] = "clock", [POLICY_S3FIFO] = "s3fifo", [POLICY_2Q] = "2q"};

const char *policy_name(enum policy_kind k) { return k < POLICY__MAX ? policy_names[k] : "?"; }

int policy_parse(const char *name)
{
    for (int i = 0; i < POLICY__MAX; i++)
        if (!strcmp(name, policy_names[i])) return i;
    return -1;
}

/* Keys are hashed with remoca_shm_hash (remoca/shm.h), the one hash of the
 * project: --shm clients walk the same chains.  Well mixed in every bit, so
 * the low bits index buckets and the high bits index the ghost table. */

/* Memory for the big metadata arrays: 2 MiB aligned and backed by
 * transparent huge pages when the kernel allows it (madvise mode), since
 * they are indexed at random on every request.  Freed with huge_free. */
#define HUGE_SZ (2u << 20)

static void *huge_alloc(size_t len)
{
    uint8_t *map = mmap(NULL, len + HUGE_SZ, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)map + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
    if (p > map) munmap(map, (size_t)(p - map));
    munmap(p + len, (size_t)(map + HUGE_SZ - p));
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

static void huge_free(void *p, size_t len)
{
    if (p) munmap(p, len);
}

static int init(struct store *s, uint64_t bytes, enum policy_kind policy, uint32_t max_pools,
                bool shm)
{
    memset(s, 0, sizeof *s);
    uint64_t npages = bytes / REMOCA_PAGE_SIZE;
    if (npages == 0 || npages >= MEMD_NIL || max_pools == 0) {
        errno = EINVAL;
        return -1;
    }
    s->budget = bytes;
    s->npages = (uint32_t)npages;
    s->policy = policy;
    s->max_pools = max_pools;
    /* Adaptive: spin briefly before sleeping; critical sections are short. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&s->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    /* The arena is reserved, not touched: pages become resident as they are
     * first filled, and never exceed the budget.  Huge pages: a GET copies
     * from a random page, and 4 KiB mappings cost a TLB miss on nearly each. */
    uint64_t nb = 1024;
    while (nb < npages) nb <<= 1;
    s->bmask = (uint32_t)(nb - 1);
    s->pools = calloc(max_pools, sizeof *s->pools);
    if (shm) {
        /* One memfd at the layout's offsets (shm_region.c logs what failed). */
        if (!(s->shm = calloc(1, sizeof *s->shm)) ||
            shm_region_create(s->shm, s->npages, (uint32_t)nb) < 0) {
            int e = s->shm ? errno : ENOMEM;
            free(s->shm);
            s->shm = NULL;
            store_destroy(s);
            errno = e;
            return -1;
        }
        const struct remoca_shm_layout *l = &s->shm->layout;
        s->slots = (struct slot *)(s->shm->data + l->off_slots);
        s->seqs = (uint32_t *)(s->shm->data + l->off_seqs);
        s->buckets = (uint32_t *)(s->shm->data + l->off_buckets);
        s->arena = s->shm->data + l->off_arena;
        s->sides = s->shm->data + l->off_sides;
        s->touched = s->shm->touch;
    } else {
        s->arena = huge_alloc(npages * REMOCA_PAGE_SIZE);
        s->slots = huge_alloc(npages * sizeof *s->slots);
        s->buckets = huge_alloc(nb * sizeof *s->buckets);
        s->sides = huge_alloc(npages * REMOCA_SIDE_SIZE); /* reserved; touched by sealed pools */
    }
    if (!s->arena || !s->sides || !s->slots || !s->buckets || !s->pools ||
        ghost_init(&s->ghost, npages, max_pools) < 0) {
        store_destroy(s);
        errno = ENOMEM;
        return -1;
    }
    memset(s->buckets, 0xff, nb * sizeof *s->buckets);
    s->free_head = MEMD_NIL;
    for (uint32_t i = s->npages; i-- > 0;) {
        struct slot *e = &s->slots[i];
        memset(e, 0, sizeof *e);
        e->hnext = e->prev = MEMD_NIL;
        e->next = s->free_head;
        s->free_head = i;
    }
    s->nfree = s->npages;
    return 0;
}

int store_init(struct store *s, uint64_t bytes, enum policy_kind policy, uint32_t max_pools)
{
    return init(s, bytes, policy, max_pools, false);
}

int store_init_shm(struct store *s, uint64_t bytes, enum policy_kind policy, uint32_t max_pools)
{
    return init(s, bytes, policy, max_pools, true);
}

bool store_shm_layout(const struct store *s, uint32_t pool, struct remoca_shm_layout *l)
{
    if (!s->shm) return false;
    *l = s->shm->layout;
    l->pool = pool;
    return true;
}

void store_destroy(struct store *s)
{
    if (!s->npages) return; /* never initialised */
    pthread_mutex_destroy(&s->lock);
    if (s->pools)
        for (uint32_t i = 0; i < s->npools; i++) free(s->pools[i]);
    free(s->pools);
    if (s->shm) {
        shm_region_destroy(s->shm);
        free(s->shm);
    } else {
        huge_free(s->arena, (size_t)s->npages * REMOCA_PAGE_SIZE);
        huge_free(s->slots, (size_t)s->npages * sizeof *s->slots);
        huge_free(s->buckets, ((size_t)s->bmask + 1) * sizeof *s->buckets);
        huge_free(s->sides, (size_t)s->npages * REMOCA_SIDE_SIZE);
    }
    ghost_free(&s->ghost);
    memset(s, 0, sizeof *s);
}

static inline uint8_t *page_of(struct store *s, uint32_t i)
{
    return s->arena + (size_t)i * REMOCA_PAGE_SIZE;
}

static inline uint8_t *side_of(struct store *s, uint32_t i)
{
    return s->sides + (size_t)i * REMOCA_SIDE_SIZE;
}

/* --shm: every change of slot i's key, pool or page is bracketed, so that a
 * one-sided reader never takes a half-changed page (remoca/shm.h). */
static inline void change_begin(struct store *s, uint32_t i)
{
    if (s->seqs) remoca_shm_seq_begin(s->seqs, i);
}

static inline void change_end(struct store *s, uint32_t i)
{
    if (s->seqs) remoca_shm_seq_end(s->seqs, i);
}

/* Chain links (a bucket head or a slot's hnext): one-sided readers may follow
 * them at any time, so each is written with one aligned store (they bound
 * their steps and validate what they find). */
static inline void set_link(uint32_t *link, uint32_t i)
{
    __atomic_store_n(link, i, __ATOMIC_RELAXED);
}

/* Whether a client touched page i since the server last looked (clears it). */
static inline bool touched_take(struct store *s, uint32_t i)
{
    if (!__atomic_load_n(&s->touched[i], __ATOMIC_RELAXED)) return false;
    __atomic_store_n(&s->touched[i], 0, __ATOMIC_RELAXED);
    return true;
}

static uint32_t lookup(struct store *s, uint32_t pool, uint64_t key, uint64_t h)
{
    for (uint32_t i = s->buckets[h & s->bmask]; i != MEMD_NIL; i = s->slots[i].hnext)
        if (s->slots[i].key == key && s->slots[i].pool == pool) return i;
    return MEMD_NIL;
}

static void hash_unlink(struct store *s, uint32_t i, uint64_t h)
{
    uint32_t *pp = &s->buckets[h & s->bmask];
    while (*pp != i) pp = &s->slots[*pp].hnext;
    set_link(pp, s->slots[i].hnext);
}

/* Removes slot i from its pool, its hash chain and its queue; frees it. */
static void remove_slot(struct store *s, struct pool *p, uint32_t i, uint64_t h)
{
    hash_unlink(s, i, h);
    policy_unlink(s, p, i);
    struct slot *e = &s->slots[i];
    change_begin(s, i);
    __atomic_store_n(&e->pool, 0, __ATOMIC_RELAXED);
    change_end(s, i);
    set_link(&e->hnext, MEMD_NIL);
    e->next = s->free_head;
    s->free_head = i;
    s->nfree++;
    p->pages--;
    if (p->tenant) p->tenant->pages--;
}

static void rebalance(struct store *s);

/* Every REBALANCE_DIV-th of the budget evicted, credit moves (rebalance);
 * a move is REBALANCE_STEP-th of the budget. */
#define REBALANCE_DIV 64u
#define REBALANCE_STEP 256u

static void evict_one(struct store *s, struct pool *p)
{
    uint32_t i = policy_victim(s, p);
    /* --shm: one-sided hits are invisible to the policy; a page a client read
     * since the server last looked counts as used now, and the policy picks
     * again (bounded: then the victim goes whatever its flag). */
    for (unsigned r = 0; s->touched && r < TOUCH_RETRIES && touched_take(s, i); r++) {
        policy_hit(s, p, i);
        s->shm_touched++;
        i = policy_victim(s, p);
    }
    uint64_t h = remoca_shm_hash(p->id, s->slots[i].key);
    /* S3-FIFO and 2Q admit a returning key straight to their main queue only
     * if it left from the small/A1in queue (measured: with main-queue
     * evictions admitted too, S3-FIFO's loop hit ratio drops from 0.54 to
     * 0.08, 2Q's from 0.70 to 0.21). */
    bool admit = s->slots[i].queue == 0;
    remove_slot(s, p, i, h);
    ghost_add(&s->ghost, p->id, h, admit);
    p->st.evictions++;
    ++s->evict_clock;
    if (s->evict_clock % (s->npages / REBALANCE_DIV + 1) == 0) rebalance(s);
    /* Utility decay: every `npages` evictions, halve the recent ghost hits. */
    if (s->evict_clock >= s->npages) {
        s->evict_clock = 0;
        for (uint32_t k = 0; k < s->npools; k++) s->pools[k]->ghost_recent /= 2;
    }
}

static uint64_t weight_sum(struct store *s, const struct pool *also)
{
    uint64_t sum = 0;
    for (uint32_t k = 0; k < s->npools; k++) {
        const struct pool *q = s->pools[k];
        if (q->pages > 0 || q == also) sum += q->weight;
    }
    return sum;
}

static uint64_t clamp(const struct pool *p, int64_t pages)
{
    if (pages > (int64_t)p->max_pages) return p->max_pages;
    if (pages < (int64_t)p->min_pages) return p->min_pages;
    return (uint64_t)pages;
}

/* budget * weight / wsum, unclamped (wsum includes p's weight). */
static int64_t fair_of(const struct store *s, const struct pool *p, uint64_t wsum)
{
    return wsum ? (int64_t)((uint64_t)s->npages * p->weight / wsum) : 0;
}

static uint64_t target_of(const struct store *s, const struct pool *p, uint64_t wsum)
{
    return clamp(p, fair_of(s, p, wsum) + p->credit);
}

uint64_t store_weight_sum_locked(struct store *s) { return weight_sum(s, NULL); }

uint64_t store_fair_share_locked(struct store *s, const struct pool *p, uint64_t active_weights)
{
    return clamp(p, fair_of(s, p, active_weights + (p->pages ? 0 : p->weight)));
}

uint64_t store_target_locked(struct store *s, const struct pool *p, uint64_t active_weights)
{
    return target_of(s, p, active_weights + (p->pages ? 0 : p->weight));
}

/* Marginal utility of a pool's next pages: its recent ghost hits per ghost
 * entry (how many misses one more page would have saved), times its weight.
 * The entries are those it holds plus those its hits took back (a pool whose
 * every lost page came back has utility 1: the edge of a loop that fits).
 * Fixed point (x 2^20), exact in 128 bits. */
static unsigned __int128 utility(const struct store *s, const struct pool *p)
{
    uint64_t n = ghost_count(&s->ghost, p->id) + p->ghost_recent;
    return (unsigned __int128)p->weight * p->ghost_recent * (1u << 20) / (n ? n : 1);
}

/* Moves one step of credit from the pool whose memory is worth least to the
 * one whose memory is worth most (store.h), and sets each pool's ghost size:
 * as many entries as it holds pages, but at least an equal share of the
 * ghost table, so that a pool squeezed small still sees what more would save
 * (measured: with an equal share of the budget instead, a loop of 1400 keys
 * squeezed to 100 pages before its first round never saw a ghost hit). */
static void rebalance(struct store *s)
{
    uint64_t wsum = weight_sum(s, NULL), active = 0;
    int64_t step = s->npages / REBALANCE_STEP + 1;
    for (uint32_t k = 0; k < s->npools; k++) active += s->pools[k]->pages > 0;
    if (active < 2) return;
    struct pool *hi = NULL, *lo = NULL;
    unsigned __int128 uhi = 0, ulo = 0;
    for (uint32_t k = 0; k < s->npools; k++) {
        struct pool *q = s->pools[k];
        if (!q->pages) continue;
        uint64_t share = ghost_size(&s->ghost) / active;
        ghost_set_cap(&s->ghost, q->id, q->pages > share ? q->pages : share);
        unsigned __int128 u = utility(s, q);
        /* A receiver needs evidence (2 recent ghost hits), room below max, and
         * to use the target it has: credit beyond a pool's pages would only
         * stay unused while the pools below their targets share it. */
        int64_t t = fair_of(s, q, wsum) + q->credit;
        if (q->ghost_recent >= 2 && t < (int64_t)q->max_pages && t < (int64_t)q->pages + step &&
            (!hi || u > uhi)) {
            hi = q;
            uhi = u;
        }
    }
    if (!hi) return;
    for (uint32_t k = 0; k < s->npools; k++) {
        struct pool *q = s->pools[k];
        /* A donor must be above its minimum, and judged on enough evidence:
         * asked for at least as many keys as its ghost remembers (a pool
         * whose reuse is slow to show, such as a long loop, is not robbed
         * before its first round). */
        if (!q->pages || q == hi || fair_of(s, q, wsum) + q->credit <= (int64_t)q->min_pages ||
            q->st.gets < ghost_cap(&s->ghost, q->id))
            continue;
        unsigned __int128 u = utility(s, q);
        if (!lo || u < ulo) {
            lo = q;
            ulo = u;
        }
    }
    /* Hysteresis: move only for a clear difference (1/8). */
    if (!lo || uhi * 8 <= ulo * 9) return;
    int64_t room_lo = fair_of(s, lo, wsum) + lo->credit - (int64_t)lo->min_pages;
    int64_t room_hi = (int64_t)hi->max_pages - fair_of(s, hi, wsum) - hi->credit;
    if (step > room_lo) step = room_lo;
    if (step > room_hi) step = room_hi;
    lo->credit -= step;
    hi->credit += step;
    s->moved += (uint64_t)step;
}

/* Which pools choose_victim may take from (--tenants). */
enum victims {
    V_ANY,    /* any, except another tenant's at or below its floor */
    V_OWN,    /* only req's tenant's (it is at its cap) */
    V_OTHERS, /* only other tenants' above their floors (req's is below its own) */
};

/* The pool most above its target that is above its minimum, or NULL.
 * --tenants: a pool of another tenant whose tenant is at or below its floor
 * (min=) is never chosen; `which` narrows further. */
static struct pool *choose_victim(struct store *s, struct pool *req, enum victims which)
{
    uint64_t wsum = weight_sum(s, req);
    struct pool *best = NULL;
    int64_t best_over = INT64_MIN;
    for (uint32_t k = 0; k < s->npools; k++) {
        struct pool *q = s->pools[k];
        if (q->pages == 0 || q->pages <= q->min_pages) continue;
        bool other = q->tenant != req->tenant;
        if (other && q->tenant && q->tenant->pages <= q->tenant->min_pages) continue;
        if ((which == V_OWN && other) || (which == V_OTHERS && !other)) continue;
        int64_t over = (int64_t)q->pages + (q == req) - (int64_t)target_of(s, q, wsum);
        if (over > best_over) {
            best_over = over;
            best = q;
        }
    }
    return best;
}

/* A free page for pool p, evicting if needed; MEMD_NIL if none can be had. */
static uint32_t alloc_page(struct store *s, struct pool *p)
{
    if (p->pages >= p->max_pages) {
        if (p->pages == 0) return MEMD_NIL;
        /* At (or, after a reopen lowered max, above) its maximum: shrink to
         * max - 1 from itself, then take the page freed. */
        while (p->pages >= p->max_pages) {
            if (p->tenant && p->tenant->pages >= p->tenant->max_pages) p->tenant->cap_evictions++;
            evict_one(s, p);
        }
    } else if (p->tenant && p->tenant->pages >= p->tenant->max_pages) {
        /* The tenant is at its cap (memory=): one of its own pools gives the
         * page, the one most above its target, else p itself. */
        struct pool *v = choose_victim(s, p, V_OWN);
        if (!v && p->pages == 0) return MEMD_NIL;
        evict_one(s, v ? v : p);
        p->tenant->cap_evictions++;
    } else if (s->nfree == 0) {
        /* A tenant below its floor takes from the others first: the floor
         * is memory it can count on, not only memory it keeps. */
        struct pool *v = NULL;
        if (p->tenant && p->tenant->pages < p->tenant->min_pages) v = choose_victim(s, p, V_OTHERS);
        if (!v) v = choose_victim(s, p, V_ANY);
        if (!v) return MEMD_NIL;
        evict_one(s, v);
    }
    uint32_t i = s->free_head;
    s->free_head = s->slots[i].next;
    s->nfree--;
    return i;
}

enum remoca_status store_pool_open(struct store *s, const struct remoca_pool_open *po, uint32_t *id)
{
    const char *why;
    return store_pool_open_why(s, po, id, &why);
}

enum remoca_status store_pool_open_why(struct store *s, const struct remoca_pool_open *po,
                                       uint32_t *id, const char **why)
{
    return store_pool_open_tenant(s, po, NULL, id, why);
}

enum remoca_status store_pool_open_tenant(struct store *s, const struct remoca_pool_open *po,
                                          struct tenant_acct *t, uint32_t *id, const char **why)
{
    *why = "";
    uint64_t min_pages = (po->min_bytes + REMOCA_PAGE_SIZE - 1) / REMOCA_PAGE_SIZE;
    uint64_t max_pages = po->max_bytes ? po->max_bytes / REMOCA_PAGE_SIZE : s->npages;
    if (po->min_bytes > (uint64_t)s->npages * REMOCA_PAGE_SIZE) min_pages = (uint64_t)s->npages + 1;
    if (max_pages > s->npages) max_pages = s->npages;
    if (t && max_pages > t->max_pages) max_pages = t->max_pages;
    if (max_pages < min_pages) max_pages = min_pages;
    if (max_pages == 0) max_pages = 1;
    enum remoca_status st = REMOCA_OK;

    pthread_mutex_lock(&s->lock);
    struct pool *p = NULL;
    for (uint32_t k = 0; k < s->npools; k++) {
        struct pool *q = s->pools[k];
        if (q->name_len == po->name_len && !memcmp(q->name, po->name, po->name_len)) {
            p = q;
            break;
        }
    }
    uint64_t old_min = p ? p->min_pages : 0;
    if (p && p->tenant != t) {
        st = REMOCA_E_LIMIT;
        *why = "the pool belongs to another tenant";
    } else if (p && p->sealed != po->sealed) {
        st = REMOCA_E_STATE;
        *why = p->sealed ? "pool is sealed (open it with the sealed flag)"
                         : "pool is not sealed (open it without the sealed flag)";
    } else if (s->min_reserved - old_min + min_pages > s->npages) {
        st = REMOCA_E_LIMIT;
        *why = "minimums exceed the budget";
    } else if (t && t->min_reserved - old_min + min_pages > t->min_pages) {
        /* A pool minimum holds pages against everyone: a tenant may hold
         * that way only what its floor already guarantees it. */
        st = REMOCA_E_LIMIT;
        *why = "the tenant's pool minimums exceed its floor (min=)";
    } else if (!p) {
        if (s->npools >= s->max_pools || !(p = calloc(1, sizeof *p))) {
            st = REMOCA_E_LIMIT;
            *why = s->npools >= s->max_pools ? "too many pools" : "out of memory";
        } else {
            p->id = s->npools + 1;
            p->sealed = po->sealed;
            memcpy(p->name, po->name, po->name_len);
            p->name_len = po->name_len;
            p->tenant = t;
            for (int q = 0; q < 2; q++) p->q[q].head = p->q[q].tail = MEMD_NIL;
            s->pools[s->npools++] = p;
        }
    }
    if (st == REMOCA_OK) {
        s->min_reserved = s->min_reserved - old_min + min_pages;
        if (t) t->min_reserved = t->min_reserved - old_min + min_pages;
        p->min_pages = min_pages;
        p->max_pages = max_pages;
        p->weight = po->weight ? po->weight : 1;
        p->conns++;
        *id = p->id;
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

void store_pool_close(struct store *s, uint32_t id)
{
    pthread_mutex_lock(&s->lock);
    struct pool *p = store_pool(s, id);
    if (p && p->conns) p->conns--;
    pthread_mutex_unlock(&s->lock);
}

void store_count_error(struct store *s, uint32_t id)
{
    pthread_mutex_lock(&s->lock);
    struct pool *p = store_pool(s, id);
    if (p) p->st.errors++;
    pthread_mutex_unlock(&s->lock);
}

uint32_t store_get(struct store *s, uint32_t pool, uint64_t key, uint32_t count, bool take,
                   uint8_t *bitmap, uint8_t *pages)
{
    uint32_t hits = 0;
    for (uint32_t base = 0; base < count; base += LOCK_CHUNK) {
        uint32_t end = count - base > LOCK_CHUNK ? base + LOCK_CHUNK : count;
        pthread_mutex_lock(&s->lock);
        struct pool *p = store_pool(s, pool);
        if (!p) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        size_t unit = remoca_unit_size(p->sealed);
        for (uint32_t n = base; n < end; n++) {
            uint64_t h = remoca_shm_hash(pool, key + n);
            uint32_t i = lookup(s, pool, key + n, h);
            if (i == MEMD_NIL) {
                p->st.misses++;
                if (ghost_test(&s->ghost, pool, h)) {
                    p->st.ghost_hits++;
                    p->ghost_recent++;
                }
                continue;
            }
            uint8_t *dst = pages + (size_t)hits * unit;
            memcpy(dst, page_of(s, i), REMOCA_PAGE_SIZE);
            if (p->sealed) memcpy(dst + REMOCA_PAGE_SIZE, side_of(s, i), REMOCA_SIDE_SIZE);
            bitmap[n / 8] |= (uint8_t)(1u << (n % 8));
            hits++;
            p->st.hits++;
            if (take) {
                remove_slot(s, p, i, h);
                p->st.takes++;
            } else {
                policy_hit(s, p, i);
            }
        }
        p->st.gets += end - base;
        pthread_mutex_unlock(&s->lock);
    }
    return hits;
}

enum remoca_status store_put(struct store *s, uint32_t pool, uint64_t key, uint32_t count,
                             const uint8_t *pages)
{
    /* Once a page cannot be allocated, the rest of the batch is not stored,
     * and any page the pool still holds for those keys is dropped: it is older
     * than the data the client just sent, and the client may already count on
     * it being replaced (a put must never leave an older version behind). */
    enum remoca_status st = REMOCA_OK;
    for (uint32_t base = 0; base < count; base += LOCK_CHUNK) {
        uint32_t end = count - base > LOCK_CHUNK ? base + LOCK_CHUNK : count;
        pthread_mutex_lock(&s->lock);
        struct pool *p = store_pool(s, pool);
        size_t unit = p ? remoca_unit_size(p->sealed) : REMOCA_PAGE_SIZE;
        for (uint32_t n = base; p && n < end; n++) {
            const uint8_t *src = pages + (size_t)n * unit;
            uint64_t h = remoca_shm_hash(pool, key + n);
            uint32_t i = lookup(s, pool, key + n, h);
            if (st != REMOCA_OK) {
                if (i != MEMD_NIL) remove_slot(s, p, i, h);
                continue;
            }
            if (i != MEMD_NIL) {
                change_begin(s, i);
                memcpy(page_of(s, i), src, REMOCA_PAGE_SIZE);
                if (p->sealed) memcpy(side_of(s, i), src + REMOCA_PAGE_SIZE, REMOCA_SIDE_SIZE);
                change_end(s, i);
                policy_hit(s, p, i);
                p->st.puts++;
                continue;
            }
            i = alloc_page(s, p);
            if (i == MEMD_NIL) {
                st = REMOCA_E_FULL;
                continue;
            }
            /* Filled, then linked: a reader finds it only complete. */
            struct slot *e = &s->slots[i];
            if (s->touched) __atomic_store_n(&s->touched[i], 0, __ATOMIC_RELAXED);
            change_begin(s, i);
            __atomic_store_n(&e->key, key + n, __ATOMIC_RELAXED);
            __atomic_store_n(&e->pool, pool, __ATOMIC_RELAXED);
            memcpy(page_of(s, i), src, REMOCA_PAGE_SIZE);
            if (p->sealed) memcpy(side_of(s, i), src + REMOCA_PAGE_SIZE, REMOCA_SIDE_SIZE);
            change_end(s, i);
            set_link(&e->hnext, s->buckets[h & s->bmask]);
            set_link(&s->buckets[h & s->bmask], i);
            policy_insert(s, p, i, ghost_take(&s->ghost, pool, h));
            p->pages++;
            if (p->tenant) p->tenant->pages++;
            p->st.puts++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return st;
}

/* Removes every page of queue q of pool p whose key is in [key, key+count). */
static uint64_t sweep_queue(struct store *s, struct pool *p, int q, uint64_t key, uint64_t count)
{
    uint64_t n = 0;
    uint32_t i = p->q[q].head;
    while (i != MEMD_NIL) {
        uint32_t next = s->slots[i].next;
        uint64_t k = s->slots[i].key;
        if (k - key < count) {
            remove_slot(s, p, i, remoca_shm_hash(p->id, k));
            n++;
        }
        i = next;
    }
    return n;
}

uint64_t store_delete(struct store *s, uint32_t pool, uint64_t key, uint64_t count)
{
    uint64_t removed = 0;
    pthread_mutex_lock(&s->lock);
    struct pool *p = store_pool(s, pool);
    if (p && count > p->pages) {
        /* Range larger than the pool: walk the pool's pages instead. */
        removed = sweep_queue(s, p, 0, key, count) + sweep_queue(s, p, 1, key, count);
    } else if (p) {
        for (uint64_t n = 0; n < count; n++) {
            uint64_t h = remoca_shm_hash(pool, key + n);
            uint32_t i = lookup(s, pool, key + n, h);
            if (i != MEMD_NIL) {
                remove_slot(s, p, i, h);
                removed++;
            }
            if ((n + 1) % 1024 == 0) { /* let other workers in */
                pthread_mutex_unlock(&s->lock);
                pthread_mutex_lock(&s->lock);
            }
        }
    }
    if (p) p->st.deletes += removed;
    pthread_mutex_unlock(&s->lock);
    return removed;
}

uint64_t store_reset(struct store *s, uint32_t pool)
{
    uint64_t removed = 0;
    pthread_mutex_lock(&s->lock);
    struct pool *p = store_pool(s, pool);
    if (p) {
        removed = sweep_queue(s, p, 0, 0, UINT64_MAX) + sweep_queue(s, p, 1, 0, UINT64_MAX);
        /* key UINT64_MAX is outside [0, UINT64_MAX): sweep it by lookup */
        uint64_t h = remoca_shm_hash(pool, UINT64_MAX);
        uint32_t i = lookup(s, pool, UINT64_MAX, h);
        if (i != MEMD_NIL) {
            remove_slot(s, p, i, h);
            removed++;
        }
        p->st.deletes += removed;
    }
    pthread_mutex_unlock(&s->lock);
    return removed;
}

/* POOL_KEEP walks the slots by index (slot i describes page i), not the
 * pool's queues: an index stays valid while the lock is dropped, which it is
 * every KEEP_SLICE slots so that other workers never wait behind a walk of a
 * big store.  Pages put meanwhile by other connections are of other pools (a
 * pool has one client, whose connection waits for this request); what is
 * looked at is always the current slot under the lock. */
#define KEEP_SLICE 4096u

uint64_t store_keep(struct store *s, uint32_t pool, const struct remoca_placement *members,
                    unsigned self)
{
    uint64_t removed = 0;
    if (members->n <= 1) return 0; /* the only member owns everything */
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->npages; i++) {
        if ((i + 1) % KEEP_SLICE == 0) { /* let other workers in */
            pthread_mutex_unlock(&s->lock);
            pthread_mutex_lock(&s->lock);
        }
        struct pool *p = store_pool(s, pool);
        if (!p || s->slots[i].pool != pool) continue;
        uint64_t k = s->slots[i].key;
        if (remoca_placement_chunk(members, k / REMOCA_PLACEMENT_CHUNK) == self) continue;
        remove_slot(s, p, i, remoca_shm_hash(pool, k));
        p->st.deletes++;
        removed++;
    }
    pthread_mutex_unlock(&s->lock);
    return removed;
}
