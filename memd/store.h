/* SPDX-License-Identifier: BSD-3-Clause */
/* The page store of remoca-memd: a preallocated arena of 4 KiB pages, an
 * O(1) index by (pool, key), named pools with min/max/weight, per-pool
 * eviction queues (policy.c), a bounded ghost table (ghost.c) and counters.
 *
 *   arena (mmap, --memory bytes)       slots[] (one per arena page, 32 B)
 *   +------+------+------+-----+       +----------------------------------+
 *   |page 0|page 1|page 2| ... |  <->  | key | pool | hnext | prev | next |
 *   +------+------+------+-----+       | queue | freq                     |
 *        ^                             +----------------------------------+
 *        |  buckets[hash(pool,key) & mask] -> slot -> hnext -> ... (chain)
 *        |  pool->q[0..1]: doubly linked policy queues through prev/next
 *        |  free pages: singly linked through next from free_head
 *
 *   pools[id-1] -> struct pool { name, min/max/weight, pages, q[2], stats }
 *
 * Page i of the arena is described by slots[i]: slot index == page number, so
 * a page needs no pointer of its own.  A slot is free (pool == 0) or belongs
 * to exactly one pool, is in exactly one hash chain and one of that pool's
 * queues.  Pools are never freed: a client that reconnects reopens its pool by
 * name and finds its pages.
 *
 * Allocation (store_put when no page is free): the victim pool is the one most
 * above its target; a pool never loses pages below its minimum; a pool at its
 * maximum evicts from itself.  The target is the weighted fair share (budget *
 * weight / sum of weights of the pools holding pages) plus the pool's credit,
 * clamped to [min, max].  Credit moves between pools by marginal utility:
 *
 *   every budget/64 evictions (store.c, rebalance):
 *     utility(p) = weight * recent ghost hits / ghost entries p holds
 *                  (misses that one more page would have saved, per page)
 *     hi = highest utility, with >= 2 recent ghost hits, target < max and
 *          target < pages + step (it uses what it has)
 *     lo = lowest utility, target > min, asked for >= as many keys as its
 *          ghost holds (not judged before a long loop comes round)
 *     if utility(hi) > 9/8 utility(lo): step = budget/256 pages, lo -> hi
 *
 *     pool   pages held (#) against its target (|)       credit
 *     loop   ##############|                               +   ghost hits
 *     zipf   ###############|                              +   ghost hits
 *     scan   ##|  (target = min: never fewer pages)        -   none
 *     (an eviction takes from the pool most above its target)
 *
 * Credits sum to zero and do not decay (hysteresis): with no ghost hits
 * anywhere they never move, so the weights alone decide.  Recent ghost hits
 * halve every `budget` evictions.  Each pool's ghost keeps its latest
 * max(pages, table / active pools) evictions (ghost.h).
 *
 * One mutex guards everything.  Critical sections are short: an index
 * operation and one 4 KiB copy; batches drop and retake the lock every few
 * pages so that another worker never waits behind a 1 MiB request.
 *
 * Memory: the arena (budget) + 32 B per page (slots) + 4 B per page (buckets)
 * + 8 B per page (ghost table) + ~400 B per pool + 32 B per --max-pools
 * (pools[], the ghost's per-pool clock, cap, count); about 1.1 % of the
 * budget.  Plus sides[]: REMOCA_SIDE_SIZE (32) B per page, reserved like the
 * arena and touched only by pages of sealed pools (0.8 % of what they hold).
 *
 * --tenants (memd/tenants.h): a pool may belong to a tenant (pool->tenant,
 * struct tenant_acct).  A tenant at its cap (memory=) evicts from its own
 * pools only; choose_victim never takes a page from another tenant at or
 * below its floor (min=), and a tenant below its own floor takes from the
 * other tenants first.  The tenant's page count moves with its pools'.
 *
 * Sealed pools (POOL_OPEN with REMOCA_F_SEALED; sealed from creation, never
 * changed): page i's sidecar is sides[i * 32 .. +32), parallel to the arena
 * and written and read under the lock with its page (store_put, store_get
 * take and give page || sidecar units, the wire's).  Pages of unsealed pools
 * leave their sidecar untouched and nobody reads it.  With --shm, sides[]
 * is in the shared memfd (off_sides) and a sidecar changes inside its
 * slot's seqlock bracket with the page, so one-sided reads of a sealed pool
 * copy both under one check; a fill ring entry for a sealed pool brings
 * its sidecar in the ring's sidecar area (fill_ring.c).
 *
 * --shm (store_init_shm): slots, a seqlock word per slot (seqs), buckets,
 * sides and the arena live in one memfd at the offsets of
 * lib/wire/include/remoca/shm.h, plus a
 * memfd of touched bytes, so that co-located clients can read pages without
 * asking (shm_region.h).  Then every change of a slot's key, pool, page or sidecar is
 * bracketed by remoca_shm_seq_begin/end, links are stored atomically, and a
 * page that a client touched gets a second chance before eviction.  Without
 * --shm, seqs and touched are NULL and those steps are skipped.
 */
#ifndef MEMD_STORE_H
#define MEMD_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ghost.h"
#include "remoca/shm.h"
#include "remoca/wire.h"
#include "shm_region.h"

#define MEMD_NIL UINT32_MAX

struct slot {
    uint64_t key;
    uint32_t pool;  /* owning pool id, 0 = free */
    uint32_t hnext; /* next slot in the same hash bucket */
    uint32_t prev;  /* policy queue links; free list uses next */
    uint32_t next;
    uint8_t queue; /* which of the pool's queues holds the slot */
    uint8_t freq;  /* policy reference counter / bit */
    uint16_t pad;
};

/* Clients of --shm read slots as struct remoca_shm_slot: same prefix, same size. */
_Static_assert(offsetof(struct slot, key) == offsetof(struct remoca_shm_slot, key), "slot.key");
_Static_assert(offsetof(struct slot, pool) == offsetof(struct remoca_shm_slot, pool), "slot.pool");
_Static_assert(offsetof(struct slot, hnext) == offsetof(struct remoca_shm_slot, hnext),
               "slot.hnext");
_Static_assert(sizeof(struct slot) == 32 && sizeof(struct remoca_shm_slot) == 32, "slot size");

struct queue {
    uint32_t head; /* most recently inserted / used */
    uint32_t tail; /* next eviction candidate */
    uint32_t len;
};

struct pool_stats {
    uint64_t gets; /* keys looked up by GET and TAKE */
    uint64_t hits;
    uint64_t misses;
    uint64_t ghost_hits; /* misses whose key was evicted recently */
    uint64_t puts;       /* pages stored */
    uint64_t takes;      /* pages removed by TAKE hits */
    uint64_t deletes;    /* pages removed by DELETE, DELETE_RANGE, POOL_RESET */
    uint64_t evictions;  /* pages evicted to make room */
    uint64_t errors;     /* error replies to requests on this pool */
};

/* A tenant's share of the store (--tenants, memd/tenants.h); pools of no
 * tenant have none.  pages, min_reserved and cap_evictions change under the
 * store lock; conns and refusals are atomic (proto.c). */
struct tenant_acct {
    char name[64];
    uint64_t pages;         /* pages held by its pools */
    uint64_t max_pages;     /* memory=: at the cap it evicts from its own pools */
    uint64_t min_pages;     /* min=: never evicted below for another tenant */
    uint64_t min_reserved;  /* sum of its pools' min_pages (at most min_pages) */
    uint64_t cap_evictions; /* pages it evicted from itself at its cap */
    uint32_t conns, max_conns;
    uint64_t refusals; /* pools not allowed, connections over conns=, failed auth, E_FULL */
};

struct pool {
    uint32_t id;
    struct tenant_acct *tenant; /* NULL: no tenants */
    char name[REMOCA_MAX_NAME + 1];
    size_t name_len;
    uint64_t min_pages, max_pages;
    uint32_t weight;
    uint64_t pages; /* pages held */
    uint32_t conns; /* open handles on all connections */
    struct queue q[2];
    struct pool_stats st;
    uint64_t ghost_recent; /* ghost hits, decayed: the utility signal */
    int64_t credit;        /* pages of target moved here by utility (rebalance) */
    bool sealed;           /* pages carry a sidecar (set at creation, never changed) */
};

enum policy_kind { POLICY_LRU, POLICY_CLOCK, POLICY_S3FIFO, POLICY_2Q, POLICY__MAX };

struct store {
    pthread_mutex_t lock;
    uint8_t *arena;
    uint8_t *sides;  /* REMOCA_SIDE_SIZE per page: sidecars of sealed pools' pages */
    uint64_t budget; /* bytes asked for (--memory) */
    uint32_t npages;
    struct slot *slots;
    uint32_t *buckets;
    uint32_t bmask;
    uint32_t free_head;
    uint32_t nfree;
    struct ghost ghost;
    enum policy_kind policy;
    struct pool **pools; /* pools[id - 1] */
    uint32_t npools, max_pools;
    uint64_t min_reserved; /* sum of the pools' min_pages */
    uint64_t evict_clock;  /* evictions since the last utility decay */
    uint64_t moved;        /* pages of credit moved by rebalance, in all */
    /* --shm only (NULL / unused otherwise): */
    uint32_t *seqs;   /* seqlock word per slot (remoca/shm.h) */
    uint8_t *touched; /* set by clients after a one-sided hit, read atomically */
    struct shm_region *shm;
    uint64_t shm_maps;    /* SHM_MAP responses sent (atomic) */
    uint64_t shm_touched; /* eviction victims spared because a client touched them */
    /* Fill rings (memd/fill_ring.h), whatever --shm says; atomic: */
    uint64_t fill_rings; /* rings attached to connections now open */
    uint64_t ring_puts;  /* ring entries executed */
    /* --tenants: their accounts, for STATS (set once before serving) */
    struct tenant_acct *const *tenants;
    unsigned ntenants;
};

/* Creates a store of `bytes` (rounded down to pages).  0 or -1 with errno. */
int store_init(struct store *s, uint64_t bytes, enum policy_kind policy, uint32_t max_pools);
/* The same in shared memory (--shm; see above): 0, or -1 with errno. */
int store_init_shm(struct store *s, uint64_t bytes, enum policy_kind policy, uint32_t max_pools);
/* The layout SHM_MAP hands out for server pool id `pool`; false without --shm. */
bool store_shm_layout(const struct store *s, uint32_t pool, struct remoca_shm_layout *l);
void store_destroy(struct store *s);

const char *policy_name(enum policy_kind k);
int policy_parse(const char *name); /* -1 if unknown */

/* Opens (or creates) a pool by name.  Returns REMOCA_OK and the pool id, or
 * REMOCA_E_LIMIT (too many pools, or the minimums would exceed the budget),
 * or REMOCA_E_STATE (po->sealed differs from the existing pool's). */
enum remoca_status store_pool_open(struct store *s, const struct remoca_pool_open *po,
                                   uint32_t *id);
/* The same, with the reason for a refusal in *why (decided under the lock). */
enum remoca_status store_pool_open_why(struct store *s, const struct remoca_pool_open *po,
                                       uint32_t *id, const char **why);
/* The same for a pool of tenant t (NULL: none): the pool's max is clamped
 * to the tenant's cap, and E_LIMIT if the tenant's pool minimums would
 * exceed its floor or the pool belongs to another tenant. */
enum remoca_status store_pool_open_tenant(struct store *s, const struct remoca_pool_open *po,
                                          struct tenant_acct *t, uint32_t *id, const char **why);
void store_pool_close(struct store *s, uint32_t id);

/* Looks up keys [key, key+count).  Sets bit i of `bitmap` (zeroed by the
 * caller, remoca_bitmap_bytes(count) bytes) for each hit and copies hit pages
 * one after the other to `pages` (in a sealed pool each followed by its
 * sidecar: REMOCA_SEALED_UNIT bytes per hit).  take removes the hits.
 * Returns hits. */
uint32_t store_get(struct store *s, uint32_t pool, uint64_t key, uint32_t count, bool take,
                   uint8_t *bitmap, uint8_t *pages);

/* Stores count pages (in a sealed pool, count page || sidecar units of
 * REMOCA_SEALED_UNIT bytes).  REMOCA_OK, or REMOCA_E_FULL if some page could
 * not be placed (the pages before it are stored). */
enum remoca_status store_put(struct store *s, uint32_t pool, uint64_t key, uint32_t count,
                             const uint8_t *pages);

/* Removes keys [key, key+count) (any count); O(min(count, pool pages)).
 * Returns pages removed. */
uint64_t store_delete(struct store *s, uint32_t pool, uint64_t key, uint64_t count);

/* Removes every page of a pool.  Returns pages removed. */
uint64_t store_reset(struct store *s, uint32_t pool);

/* POOL_KEEP: removes every page of a pool whose chunk (key /
 * REMOCA_PLACEMENT_CHUNK) is not owned by member `self` of `members`
 * (remoca/placement.h).  One pass over the arena's slots, dropping the lock
 * every few thousand; sum(weights) hashes per page of the pool.  Returns
 * pages removed. */
struct remoca_placement;
uint64_t store_keep(struct store *s, uint32_t pool, const struct remoca_placement *members,
                    unsigned self);

/* Counts an error reply against a pool (0 = none). */
void store_count_error(struct store *s, uint32_t pool);

/* Server-wide counters kept outside the store (net.c fills them in). */
struct server_counters {
    uint64_t conns;       /* open connections */
    uint64_t conns_total; /* accepted since start */
    uint64_t conns_refused;
    uint64_t errors; /* error replies and dropped connections */
    unsigned threads;
    uint64_t conns_refused_addr; /* --max-conns-per-addr */
    uint64_t handshake_timeouts, frame_timeouts;
    uint64_t buffer_closes; /* connections closed by --max-buffers */
};

/* Formats the stats as text or JSON into buf (at most cap bytes, always
 * NUL-terminated).  Returns the length. */
size_t store_stats(struct store *s, const struct server_counters *sc, bool json, char *buf,
                   size_t cap);
/* The same as tenant `only` sees them (NULL: everything): only its pools
 * and its tenant line; the server line's totals are over its pools. */
size_t store_stats_for(struct store *s, const struct server_counters *sc, bool json, char *buf,
                       size_t cap, const struct tenant_acct *only);

/* A pool's weighted fair share and its target (fair share + credit) in
 * pages, both clamped to [min, max] (for stats and tests); lock held.
 * active_weights = store_weight_sum_locked(s), computed once for all pools. */
uint64_t store_weight_sum_locked(struct store *s);
uint64_t store_fair_share_locked(struct store *s, const struct pool *p, uint64_t active_weights);
uint64_t store_target_locked(struct store *s, const struct pool *p, uint64_t active_weights);

static inline struct pool *store_pool(struct store *s, uint32_t id)
{
    return id >= 1 && id <= s->npools ? s->pools[id - 1] : NULL;
}

/* Whether pool `id` is sealed.  Fixed at the pool's creation, under the lock
 * that the opener's store_pool_open took too: a connection may ask without
 * the lock about a pool it opened (npools, which other openers change, is
 * not read; max_pools and pools[] never change). */
static inline bool store_pool_sealed(const struct store *s, uint32_t id)
{
    return id >= 1 && id <= s->max_pools && s->pools[id - 1] && s->pools[id - 1]->sealed;
}

#endif
