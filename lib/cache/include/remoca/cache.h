/* SPDX-License-Identifier: BSD-3-Clause */
/* libremoca cache engine: a remote, write-through block cache in front of a
 * backing disk, inclusive or (with eviction inference) exclusive.  Front ends
 * (the nbdkit filter; remoca-vhost) call its hooks for every guest request;
 * the engine decides what comes from remote memory, what from the backing
 * disk, and what must be inserted or invalidated.
 *
 *   front end (one per virtual disk, many threads)
 *        │ remoca_cache_read / write / trim / zero / flush
 *        ▼
 *   ┌──────────────────────────── struct remoca_cache ───────────────────────┐
 *   │ directory: 1 bit per 4 KiB block, "may be remote"      (lib/cache/dir.c)     │
 *   │ generation stripes: gen + writers per stripe, the fill race rule       │
 *   │                                                        (lib/cache/gen.c)     │
 *   │ page and block maps: exclusive mode                    (lib/cache/evict.c)   │
 *   │ stats: atomic counters                                 (lib/cache/cache.c)   │
 *   │ miss-ratio curve of the reads (SHARDS)                 (lib/cache/mrc.c)     │
 *   └─────────┬───────────────────────────────────────────────┬──────────────┘
 *             │ remoca_remote_ops (get/put/del/reset/take)    │ struct remoca_backing_ops
 *             ▼                                               ▼ (per call: pread/pwrite/...)
 *   libremoca client (lib/cache/cache_remote.c binds it)      backing disk (nbdkit next, a file)
 *   or an in-memory fake in unit tests
 *
 * Blocks are 4 KiB; key = block number.  Only whole blocks that lie entirely
 * inside the disk are ever cached: partial blocks at the edges of a request
 * and the partial last block of an odd-sized disk are read and written
 * through (docs/design.md, contract 5).
 *
 * Remote contract the engine relies on (lib/client/include/remoca/client.h): put and del
 * are no-wait; a call is "ordered" when it returns; calls on one key execute
 * on the server in the order in which they were ordered; failures are misses.
 * The engine orders every put and every write's invalidation while holding
 * the block's generation stripe lock, which is what makes the fill race rule
 * (contract 3) hold; see lib/cache/cache.c for the proof.
 */
#ifndef REMOCA_CACHE_H
#define REMOCA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REMOCA_CACHE_BLOCK 4096u
#define REMOCA_CACHE_BLOCK_SHIFT 12

struct remoca_client;
struct remoca_cache;

/* The remote tier.  ctx is passed back to every call.  All must be
 * thread-safe.  Failures behave as misses / dropped requests. */
struct remoca_remote_ops {
    /* Fetch keys [key, key+count), count <= 256: hit i -> pages + i*4096 and
     * bit i of hits[].  Returns the number of hits. */
    unsigned (*get)(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits);
    /* No-wait put of count <= 256 pages; ordered on return.  0 or -1. */
    int (*put)(void *ctx, uint64_t key, uint32_t count, const void *pages);
    /* No-wait delete of keys [key, key+count); ordered on return.  0 or -1. */
    int (*del)(void *ctx, uint64_t key, uint64_t count);
    /* Drop every page of the pool (waits).  0 or -1. */
    int (*reset)(void *ctx);
    /* Like get, and each hit is removed from the pool (exclusive mode; may
     * be NULL in an inclusive cache).  A take is ordered like a put: it
     * executes after every put and delete of its keys ordered before it. */
    unsigned (*take)(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits);
    /* Optional (NULL for a plain client), both or neither: a remote tier that
     * keeps a version per unit of REMOCA_CACHE_UNIT_BLOCKS blocks (the sealed
     * remote, lib/seal/).  write_begin(unit) is called when a write, trim or
     * zero begins in unit, under that unit's generation stripe lock, where
     * every put of the unit is also ordered; write_end(unit) once the write's
     * invalidation of the unit was ordered.  With them set, a write invalidates
     * (deletes remotely, clears in the directory) every WHOLE unit it touches,
     * not only its own blocks (see lib/cache/cache.c). */
    void (*write_begin)(void *ctx, uint64_t unit);
    void (*write_end)(void *ctx, uint64_t unit);
};

/* The engine's unit of write ordering: 32 blocks (128 KiB). */
#define REMOCA_CACHE_UNIT_SHIFT 5u
#define REMOCA_CACHE_UNIT_BLOCKS (1u << REMOCA_CACHE_UNIT_SHIFT)

/* The backing disk, per call (the nbdkit filter passes its per-connection
 * `next`).  Return 0, or -1 with *err set to an errno value.  flags are the
 * front end's (NBDKIT_FLAG_*): passed through untouched. */
struct remoca_backing_ops {
    int (*pread)(void *ctx, void *buf, uint32_t count, uint64_t offset, uint32_t flags, int *err);
    int (*pwrite)(void *ctx, const void *buf, uint32_t count, uint64_t offset, uint32_t flags,
                  int *err);
    int (*trim)(void *ctx, uint32_t count, uint64_t offset, uint32_t flags, int *err);
    int (*zero)(void *ctx, uint32_t count, uint64_t offset, uint32_t flags, int *err);
    int (*flush)(void *ctx, uint32_t flags, int *err);
};

struct remoca_backing {
    const struct remoca_backing_ops *ops;
    void *ctx;
};

enum remoca_write_policy {
    REMOCA_WRITE_INVALIDATE = 0, /* a write deletes the remote copies (default) */
    REMOCA_WRITE_UPDATE = 1,     /* a write puts its new full blocks */
};

enum remoca_cache_mode {
    REMOCA_MODE_INCLUSIVE = 0, /* a miss inserts, a hit keeps (default) */
    REMOCA_MODE_EXCLUSIVE,     /* eviction inference: see "exclusive mode" below */
};

struct remoca_cache_opts {
    uint64_t disk_size;             /* bytes; any value */
    enum remoca_write_policy write; /* default invalidate; exclusive needs invalidate */
    const struct remoca_remote_ops *remote;
    void *remote_ctx;
    bool no_reset;               /* don't reset the pool at creation */
    enum remoca_cache_mode mode; /* exclusive needs remote->take */
    uint64_t guest_pages;        /* exclusive: bound of the page map (> 0, < 2^32) */
    uint32_t mrc_samples;        /* miss-ratio curve's samples (>= 16); 0: 8192; UINT32_MAX: none */
    uint64_t mrc_blocks;         /* its largest cache size; 0: the disk's blocks, at most 2^24 */
};

#define REMOCA_CACHE_MRC_SAMPLES 8192u           /* mrc_samples 0: about 520 KiB */
#define REMOCA_CACHE_MRC_MAX_BLOCKS (1ull << 24) /* mrc_blocks 0: at most 64 GiB */

struct remoca_cache_stats {
    uint64_t reads;          /* read requests */
    uint64_t read_blocks;    /* cacheable blocks requested by reads */
    uint64_t remote_lookups; /* blocks asked of the remote tier */
    uint64_t remote_gets;    /* remote get calls (round trips) */
    uint64_t remote_hits;    /* blocks served from remote memory */
    uint64_t remote_misses;  /* blocks the directory sent remote that missed */
    uint64_t misses;         /* cacheable blocks read from the backing disk */
    uint64_t backing_reads;  /* backing pread calls */
    uint64_t backing_blocks; /* 4 KiB blocks (rounded up) read from backing */
    uint64_t fills;          /* blocks put after a miss */
    uint64_t fills_skipped;  /* misses not inserted because of the race rule */
    uint64_t writes;         /* write requests */
    uint64_t trims;          /* trim requests */
    uint64_t zeroes;         /* zero requests */
    uint64_t flushes;        /* flush requests */
    uint64_t invalidations;  /* blocks deleted remotely by writes/trims/zeroes */
    uint64_t updates;        /* blocks put by write-update */
    uint64_t errors;         /* backing errors returned to the caller */
    uint64_t remote_errors;  /* remote put/del calls that reported a drop */
    /* exclusive mode (appended: the order above stays) */
    uint64_t evictions_inferred;   /* associated pages about to be overwritten by a read */
    uint64_t evictions_verified;   /* ... whose copy still hashed to the block's data */
    uint64_t evictions_mismatched; /* ... whose copy did not (the guest reused the page) */
    uint64_t evictions_stale;      /* ... dropped unhashed: a newer page holds the block */
    uint64_t eviction_puts;        /* verified evictions put (stripe unchanged, put sent) */
    uint64_t takes;                /* blocks taken out of the remote tier by reads */
    uint64_t evict_map_bytes;      /* memory of the page and block maps (a gauge) */
};

/* Creates an engine; resets the remote pool unless opts->no_reset.  NULL with
 * a message in err on bad options or out of memory. */
struct remoca_cache *remoca_cache_new(const struct remoca_cache_opts *opts, char *err,
                                      size_t errlen);
void remoca_cache_free(struct remoca_cache *c);

uint64_t remoca_cache_disk_size(const struct remoca_cache *c);

/* Hooks.  Each returns 0 or -1 with *err set (an errno value from backing). */
int remoca_cache_read(struct remoca_cache *c, const struct remoca_backing *b, void *buf,
                      uint32_t count, uint64_t offset, uint32_t flags, int *err);
int remoca_cache_write(struct remoca_cache *c, const struct remoca_backing *b, const void *buf,
                       uint32_t count, uint64_t offset, uint32_t flags, int *err);
int remoca_cache_trim(struct remoca_cache *c, const struct remoca_backing *b, uint32_t count,
                      uint64_t offset, uint32_t flags, int *err);
int remoca_cache_zero(struct remoca_cache *c, const struct remoca_backing *b, uint32_t count,
                      uint64_t offset, uint32_t flags, int *err);
int remoca_cache_flush(struct remoca_cache *c, const struct remoca_backing *b, uint32_t flags,
                       int *err);

/* Forget everything: directory cleared, remote pool reset. */
int remoca_cache_reset(struct remoca_cache *c);

void remoca_cache_get_stats(const struct remoca_cache *c, struct remoca_cache_stats *st);
/* Appends "name=value\n" lines (prefix + counter name) to buf; returns the
 * length it needed (like snprintf). */
size_t remoca_cache_format_stats(const struct remoca_cache_stats *st, const char *prefix, char *buf,
                                 size_t len);
/* The same for any counters: "PREFIX NAME=VALUE\n" lines for names[i],
 * v[i], i < n (lib/seal's counters use it too). */
size_t remoca_format_counters(const char *const *names, const uint64_t *v, size_t n,
                              const char *prefix, char *buf, size_t len);
/* Blocks the directory currently marks as maybe remote. */
uint64_t remoca_cache_dir_count(const struct remoca_cache *c);

/* ---- miss-ratio curve ----------------------------------------------------
 *
 * The reads that reach a front end are the guest's page-cache misses.  Every
 * 4 KiB block a read covers (remoca_cache_read, remoca_cache_read_pages;
 * partial blocks once, the disk's partial last block too) is fed to a SHARDS
 * estimator (lib/cache/include/remoca/mrc.h) before the remote tier is asked:
 * the curve is what an LRU cache of each size, added below the guest, would
 * miss of that stream, whatever the remote tier holds now.  Sizes are in 4 KiB
 * blocks, up to the disk's block count (at most REMOCA_CACHE_MRC_MAX_BLOCKS)
 * or opts->mrc_blocks.  Cost per block: a hash and an atomic add; the lock
 * only for sampled blocks.  Memory fixed at creation (remoca_mrc_get_stats).
 *
 * The engine's estimator, for remoca_mrc_curve, remoca_mrc_miss_ratio_at and
 * remoca_mrc_get_stats (all thread-safe); NULL if opts->mrc_samples was
 * UINT32_MAX.  Lives as long as the engine. */
struct remoca_mrc;
const struct remoca_mrc *remoca_cache_mrc(const struct remoca_cache *c);

/* ---- exclusive mode: guest pages and eviction inference ----------------
 *
 * A front end that writes read data straight into guest memory (remoca-vhost)
 * can tell the engine which guest page receives which block.  The engine then
 * caches exclusively (docs/design.md, "Eviction inference"): a block enters
 * the remote cache when the guest drops it from its page cache, a remote hit
 * takes it out again.  The engine keeps, bounded by guest RAM (lib/cache/evict.c):
 *
 *   page map:  guest page index P ──▶ (block X, XXH3 of X's data as delivered,
 *                                      stripe generation when delivered)
 *   block map: block X ──▶ newest page P that received X
 *
 * 32 bytes per guest page (24 in the page map, 2 slots of 4 in the block map):
 * 8 MiB for 1 GiB of guest RAM, 0.8%; stats line evict_map_bytes.
 *
 * When a read is about to overwrite page P that holds X, the guest has evicted
 * X and reused P: if the block map still says P for X, no write to X's stripe
 * began since (generation rule, contract 3) and a copy of P still hashes to the
 * recorded hash, the copy is put as X (ordered under the stripe lock) before
 * the read lands in P; otherwise the association is dropped (a miss later).
 * A read that hits takes the block (it is in the guest now); a miss is not
 * inserted.  A write from page P to X makes P hold X's new data.  Writes, trims
 * and zeroes invalidate as in inclusive mode.  Requests that are not whole
 * blocks inside the disk (unaligned, the partial last block) go through
 * remoca_cache_read / _write and record nothing; plain remoca_cache_read in
 * exclusive mode takes its hits too (see lib/cache/cache.c).
 *
 * A page is named by a dense index in [0, guest_pages) that the front end
 * derives from its memory table, plus where it is mapped now.  The front end
 * calls remoca_cache_pages_reset() whenever its memory table changes.
 */
struct remoca_guest_page {
    uint64_t index; /* dense page index, < guest_pages */
    void *host;     /* the 4 KiB page, mapped in this process */
};

/* Whole-block requests whose every 4 KiB block is one guest page: offset is
 * block-aligned, pages[i] receives (or holds) block offset/4096 + i.
 * Same results and errors as remoca_cache_read / _write; in a cache without
 * exclusive mode they behave exactly like those (through a bounce buffer).
 * A page index >= guest_pages fails the request with EINVAL before any
 * memory is touched.  Thread-safe, like every hook. */
int remoca_cache_read_pages(struct remoca_cache *c, const struct remoca_backing *b,
                            const struct remoca_guest_page *pages, uint32_t npages, uint64_t offset,
                            uint32_t flags, int *err);
int remoca_cache_write_pages(struct remoca_cache *c, const struct remoca_backing *b,
                             const struct remoca_guest_page *pages, uint32_t npages,
                             uint64_t offset, uint32_t flags, int *err);
/* Forget every page association (the guest's memory changed: reboot,
 * reconnect, a new memory table); guest_pages is the new bound (0: no pages;
 * < 2^32).  0, or -1 with errno (ENOMEM: the maps are then empty, bound 0;
 * EINVAL).  Does nothing in an inclusive cache. */
int remoca_cache_pages_reset(struct remoca_cache *c, uint64_t guest_pages);

/* Remote ops bound to a libremoca client (lib/cache/cache_remote.c): pass
 * &remoca_client_remote_ops and the client as remote_ctx. */
extern const struct remoca_remote_ops remoca_client_remote_ops;

#endif
