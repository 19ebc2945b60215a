/* SPDX-License-Identifier: BSD-3-Clause */
/* Cache engine: read, write, trim, zero and flush hooks over a backing disk,
 * with a remote cache of 4 KiB blocks, inclusive or exclusive (the guest page
 * hooks of lib/cache/pages.c; lib/cache/include/remoca/cache.h).
 *
 * A read of [offset, offset+count):
 *
 *   offset                                                        offset+count
 *   │head│  blk fb  │ blk fb+1 │ ...                     │ blk lb-1 │ tail │
 *   └────┴──────────┴──────────┴─────────────────────────┴──────────┴──────┘
 *    read    ▲ whole blocks inside the request and inside the disk:     read
 *   through  │ the only ones ever looked up or inserted                through
 *
 *   0. every block the request touches, edges once, goes to the miss-ratio
 *      curve (lib/cache/mrc.c): the guest's misses, before any lookup;
 *   1. snapshot the generation of every stripe unit the blocks touch;
 *   2. blocks whose directory bit is set are fetched in one batched get per
 *      256 blocks (one round trip for a request up to 1 MiB), straight into
 *      the caller's buffer;
 *   3. everything not served remotely (edges included) is read from backing in
 *      maximal contiguous runs, one pread per run;
 *   4. each missed whole block is put (inclusive fill) if its stripe passed
 *      the race rule, ordering the put under the stripe lock.
 * In exclusive mode step 2 takes (a hit leaves the remote tier) and step 4 is
 * skipped: blocks enter by eviction puts (lib/cache/pages.c).
 *
 * A write/trim/zero: begin on every stripe unit it touches, the disk op, end
 * on every unit (write-update: put the new whole blocks under the lock), then
 * one ordered delete of the range (write-invalidate, and always for partial
 * blocks), then return.  The caller acknowledges only after that.
 *
 * Why no stale block can ever be served (contracts 1 and 3).  Invariant S:
 * once a write W to block B is acknowledged, the server holds for B nothing
 * older than W's data, and will never receive it later.  Data reach the server
 * only through puts: fills and write-updates.
 *  - A fill F of B snapshots gen g (requiring writers == 0) before its disk
 *    read starts, and orders its put under the stripe lock only if still
 *    gen == g and writers == 0.  Take any write W to B; W bumps gen under the
 *    same lock at its begin and its end.  (a) W ended before F's snapshot: W's
 *    disk op completed before F's disk read started, so F read W's data or
 *    newer.  (b) W was in progress at the snapshot: writers > 0, F is not
 *    eligible.  (c) W began after the snapshot and before F's check: gen moved,
 *    F skips.  (d) W began after F's check: F's put was ordered (under the
 *    lock) before W's begin, hence before W's delete, which W orders after its
 *    end and before its acknowledgement; the server executes ops on one key in
 *    the order they were ordered, so W's delete removes whatever F put.
 *    So a put of data older than W is always followed by W's delete.
 *  - A write-update put by W1 is ordered under the lock at W1's end only if
 *    writers == 1 and gen is still W1's begin value: no other write to the
 *    stripe began or ended during W1, so W1's data are the disk's.  A later W2
 *    begins after that point, and orders its own delete (or update) later.
 *    The update put is preceded by a delete of the same blocks, so a put the
 *    server refuses (memory full) cannot leave an older page behind.
 *  - Every write orders a delete of all its blocks regardless of the
 *    directory, so S does not depend on the directory being exact.  The
 *    directory only decides which blocks are worth a lookup; a lookup of a
 *    block whose bit is clear is ignored even if the server answers it.
 *  - Lost requests: the client tears down a connection on which a request
 *    failed and resets the pool before using it again (contract 4).
 *  - One-sided reads (a co-located memd --shm, lib/client/client_shm.c): a get then
 *    copies from the server's memory instead of going behind the earlier
 *    requests on the wire, so it sees the server's state at the moment of
 *    its copy, and "ordered" alone is no longer enough for W's delete D.
 *    D stays no-wait, but from its ordering (before W is acknowledged) until
 *    its answer is read, D counts as pending on its connection for each of
 *    its keys (in the key's stripe, or globally for a wide D), and a get
 *    frame with an invalidation pending for any of its keys is sent over
 *    the wire instead (lib/client/client_ops.c, above remoca_delete; gets of other
 *    keys stay one-sided).  So a read R of B that starts after W's
 *    acknowledgement either goes behind D on the wire, as without one-sided
 *    reads, or copies after D was executed (its answer read) or after a
 *    pool reset that ran after D (a failed D takes the connection out of
 *    service, and one-sided reads resume only after such a reset).
 *    By (d), a put of data older than W was executed before D, so at R's
 *    copy the server's memory holds nothing older than W for B; a copy that
 *    raced with the server changing the slot is rejected by the slot's
 *    seqlock (lib/wire/include/remoca/shm.h), so every hit is one page exactly as the
 *    server held it.  A put not yet executed is only a miss.
 *  - Fill ring (a co-located memd, lib/client/client_ring.c): a put copied into the
 *    ring instead of sent carries the id of the next request on its
 *    connection, and the server executes it after every earlier request and
 *    before that one (lib/wire/include/remoca/fill_ring.h): the order of a PUT frame
 *    written at that moment, so "ordered under the lock" above means the same.
 *  - Exclusive mode (lib/cache/pages.c): no fills and no write-updates; data
 *    reach the server only through eviction puts, reads take instead of get,
 *    and every write orders the delete of each unit under that unit's lock at
 *    its end (not after the last end).  Claim E: every put of B is ordered
 *    carrying the disk's current data of B.  An eviction put of B from guest
 *    page P carries a copy of P whose XXH3 equals that of data D that P
 *    received, recorded with a gen g: (r) a read R delivered D into P, and g
 *    is R's snapshot (writers == 0) taken before its disk read or its take;
 *    (w) a write W wrote D from P, and g is the gen W left at its end, kept
 *    only if W was alone on the stripe (writers == 1 and gen still W's begin
 *    value, as for a write-update).  The put is ordered under the stripe lock
 *    only if still gen == g and writers == 0: no write to the stripe began or
 *    ended since g.  So D is the disk's data at the put if it was at g.
 *    (r, disk) as (a) for a fill: every write that ended before g had its
 *    disk op complete before R's read began.  (r, take) a write W' that ended
 *    before g ordered its delete under the lock at its end, hence before g,
 *    hence before the take, which is ordered after g (a take is never a
 *    one-sided read); every put of B ordered after that delete carried the
 *    disk's data at its ordering time (E, by induction over the puts of B in
 *    their order), and no write was in progress at g: the take returns the
 *    disk's data at g or nothing.  (Without the delete under the lock, R could
 *    snapshot between W''s end and W''s delete, take the data before W', and
 *    put them back after W''s delete.)  (w) no other write touched the stripe
 *    during W, so the disk holds D at W's end.  A copy that hashes to D is D
 *    (a 64-bit hash collision is the one case this does not cover).  Then,
 *    as in (d), a later write's delete is ordered after the put and removes
 *    it, so S holds with eviction puts; and a take, like a get, only reads
 *    what S allows.  The block map (newest page per block) and the directory
 *    only decide which pages are worth hashing and which blocks a lookup;
 *    neither carries correctness.
 *  - Versioned remotes (remote write_begin/write_end set: the sealed remote
 *    of lib/seal/, which binds every page to its unit's version in an
 *    authenticated sidecar).  write_begin bumps the unit's version under the
 *    stripe lock, in the same critical section as the gen bump, and every put
 *    of the unit (fill, update, eviction) is sealed inside its own critical
 *    section of that lock; so a put is sealed at version v exactly when it is
 *    ordered between the begins of the writes that set v and v+1.  Such a write
 *    W then deletes the WHOLE unit (not only its blocks) after its begin, so a
 *    put sealed before W's bump is ordered before W's delete and removed by it:
 *    once write_end(unit) ran (the delete ordered), an honest server holds no
 *    page of the unit older than the unit's version, and a get ordered after
 *    that which returns one is a replay.  Every page sealed at the current
 *    version v of B's unit carries the same bytes, the disk's data of B since
 *    W: a fill passed the rule above after W's end (W was in progress: writers
 *    > 0; W began after its snapshot: gen moved), an update put is W's own
 *    data with W alone, an eviction put is the disk's data by claim E; and no
 *    other write began (it would have bumped v).  So what the sealed remote
 *    accepts (tag valid, version current) is what S allows, from any server.
 * Reads concurrent with an unacknowledged write may see either version, as
 * with any disk.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remoca/cache.h"
#include "remoca/mrc.h"
#include "engine.h"

#define BATCH 256u /* blocks per remote get / put call */

_Static_assert(REMOCA_CACHE_UNIT_SHIFT == GEN_UNIT_SHIFT, "the public unit is the stripe unit");

struct remoca_cache *remoca_cache_new(const struct remoca_cache_opts *o, char *err, size_t errlen)
{
    if (!o->remote || !o->remote->get || !o->remote->put || !o->remote->del) {
        snprintf(err, errlen, "cache: remote ops missing");
        return NULL;
    }
    if (o->write != REMOCA_WRITE_INVALIDATE && o->write != REMOCA_WRITE_UPDATE) {
        snprintf(err, errlen, "cache: unknown write policy %d", (int)o->write);
        return NULL;
    }
    bool excl = o->mode == REMOCA_MODE_EXCLUSIVE;
    if (o->mode != REMOCA_MODE_INCLUSIVE && !excl) {
        snprintf(err, errlen, "cache: unknown mode %d", (int)o->mode);
        return NULL;
    }
    if (!o->remote->write_begin != !o->remote->write_end) {
        snprintf(err, errlen, "cache: remote write_begin and write_end go together");
        return NULL;
    }
    if (excl && !o->remote->take) {
        snprintf(err, errlen, "cache: exclusive mode needs a remote take");
        return NULL;
    }
    if (excl && o->write != REMOCA_WRITE_INVALIDATE) {
        /* A write-update put would keep a second copy of what the guest holds. */
        snprintf(err, errlen, "cache: exclusive mode caches writes by eviction, not update");
        return NULL;
    }
    if (excl && (o->guest_pages == 0 || o->guest_pages > EVICT_MAX_PAGES)) {
        snprintf(err, errlen, "cache: exclusive mode needs 0 < guest_pages <= %llu",
                 (unsigned long long)EVICT_MAX_PAGES);
        return NULL;
    }
    struct remoca_cache *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->size = o->disk_size;
    c->nblocks = o->disk_size / BS;
    c->write = o->write;
    c->mode = o->mode;
    c->r = o->remote;
    c->rctx = o->remote_ctx;
    if (evict_init(&c->ev, excl ? o->guest_pages : 0)) {
        evict_destroy(&c->ev);
        free(c);
        snprintf(err, errlen, "cache: out of memory for %llu guest pages",
                 (unsigned long long)o->guest_pages);
        return NULL;
    }
    atomic_store(&c->st[STAT(evict_map_bytes)], evict_bytes(c->ev.npages));
    if (dir_init(&c->dir, c->nblocks)) goto oom;
    if (gen_init(&c->gens)) goto oom;
    if (o->mrc_samples != UINT32_MAX) {
        uint32_t ns = o->mrc_samples ? o->mrc_samples : REMOCA_CACHE_MRC_SAMPLES;
        uint64_t dom = o->mrc_blocks ? o->mrc_blocks : (c->size + BS - 1) / BS;
        if (!o->mrc_blocks && dom > REMOCA_CACHE_MRC_MAX_BLOCKS) dom = REMOCA_CACHE_MRC_MAX_BLOCKS;
        if (!(c->mrc = remoca_mrc_new(ns, dom ? dom : 1))) {
            if (errno != EINVAL) goto oom;
            snprintf(err, errlen, "cache: mrc_samples %u out of range (16 to 2^26)", ns);
            remoca_cache_free(c);
            return NULL;
        }
    }
    if (!o->no_reset && c->r->reset) c->r->reset(c->rctx);
    return c;
oom:
    snprintf(err, errlen, "cache: out of memory for a %llu-byte disk",
             (unsigned long long)o->disk_size);
    remoca_cache_free(c);
    return NULL;
}

void remoca_cache_free(struct remoca_cache *c)
{
    if (!c) return;
    dir_destroy(&c->dir);
    gen_destroy(&c->gens);
    evict_destroy(&c->ev);
    remoca_mrc_free(c->mrc);
    free(c);
}

uint64_t remoca_cache_disk_size(const struct remoca_cache *c) { return c->size; }

uint64_t remoca_cache_dir_count(const struct remoca_cache *c) { return dir_count(&c->dir); }

const struct remoca_mrc *remoca_cache_mrc(const struct remoca_cache *c) { return c->mrc; }

int remoca_cache_reset(struct remoca_cache *c)
{
    dir_clear_all(&c->dir);
    return c->r->reset ? c->r->reset(c->rctx) : 0;
}

/* ---- reads ------------------------------------------------------------ */

static inline bool bit(const uint64_t *m, uint64_t i) { return (m[i / 64] >> (i % 64)) & 1; }
static inline void setbit(uint64_t *m, uint64_t i) { m[i / 64] |= 1ull << (i % 64); }

static int backing_pread(struct remoca_cache *c, const struct remoca_backing *b, char *buf,
                         uint64_t len, uint64_t off, uint32_t flags, int *err)
{
    COUNT(c, backing_reads, 1);
    COUNT(c, backing_blocks, (off + len + BS - 1) / BS - off / BS);
    if (b->ops->pread(b->ctx, buf, (uint32_t)len, off, flags, err) == -1) {
        if (!*err) *err = EIO;
        return -1;
    }
    return 0;
}

/* Step 2: one get per window of <= BATCH blocks spanning candidates.
 * Exclusive mode takes instead (the block is in the guest now): the bits of
 * the candidates are cleared before the take, so that an eviction put of one
 * of them ordered meanwhile keeps its bit; and a take's hit is used even where
 * the bit was clear, since the take removed it (by S it is no older than any
 * write acknowledged before the read began). */
static void fetch_remote(struct remoca_cache *c, char *blk0, uint64_t fb, uint64_t n,
                         const uint64_t *cand, uint64_t *have)
{
    bool take = c->mode == REMOCA_MODE_EXCLUSIVE;
    uint64_t hits[BATCH / 64];
    uint64_t i = 0;
    while (i < n) {
        while (i < n && !bit(cand, i)) i++;
        if (i == n) break;
        uint64_t ws = i, we = i + 1;
        for (uint64_t j = i + 1; j < n && j < ws + BATCH; j++)
            if (bit(cand, j)) we = j + 1;
        memset(hits, 0, sizeof hits);
        COUNT(c, remote_gets, 1);
        if (take) {
            for (uint64_t j = ws; j < we; j++)
                if (bit(cand, j)) dir_test_clear(&c->dir, fb + j);
            c->r->take(c->rctx, fb + ws, (uint32_t)(we - ws), blk0 + ws * BS, hits);
        } else {
            c->r->get(c->rctx, fb + ws, (uint32_t)(we - ws), blk0 + ws * BS, hits);
        }
        uint64_t nh = 0, nm = 0, nl = 0;
        for (uint64_t j = ws; j < we; j++) {
            if (!bit(cand, j)) {
                if (take && bit(hits, j - ws)) { /* taken: ours now */
                    setbit(have, j);
                    nh++;
                }
                continue; /* a get's answer is not trusted: read from disk */
            }
            nl++;
            if (bit(hits, j - ws)) {
                setbit(have, j);
                nh++;
            } else {
                if (!take) dir_test_clear(&c->dir, fb + j); /* evicted: forget it */
                nm++;
            }
        }
        COUNT(c, remote_lookups, nl);
        COUNT(c, remote_hits, nh);
        COUNT(c, remote_misses, nm);
        if (take) COUNT(c, takes, nh);
        i = we;
    }
}

/* Step 4: insert the missed blocks [i, j) of unit u if the race rule allows. */
static void fill_run(struct remoca_cache *c, const char *blk0, uint64_t fb, uint64_t i, uint64_t j,
                     uint64_t snap)
{
    uint64_t unit = gen_unit(fb + i);
    struct gen_stripe *s = gen_stripe(&c->gens, unit);
    pthread_mutex_lock(&s->lock);
    if (snap != GEN_NONE && s->gen == snap && s->writers == 0) {
        /* Ordered under the lock: any later write's delete comes after. */
        if (c->r->put(c->rctx, fb + i, (uint32_t)(j - i), blk0 + i * BS) == -1) {
            COUNT(c, remote_errors, 1); /* dropped: not remote, don't look it up */
        } else {
            dir_set_range(&c->dir, fb + i, j - i);
            COUNT(c, fills, j - i);
        }
    } else {
        COUNT(c, fills_skipped, j - i);
    }
    pthread_mutex_unlock(&s->lock);
}

/* In exclusive mode a plain read (the NBD-style hook; remoca-vhost for
 * requests that are not whole guest pages) takes its hits and does not fill
 * its misses, like remoca_cache_read_pages, but records no page association:
 * a block it took is cached by nobody once the guest drops it (a later miss),
 * where a get would have left a second copy in the remote tier. */
int remoca_cache_read(struct remoca_cache *c, const struct remoca_backing *b, void *buf,
                      uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
    COUNT(c, reads, 1);
    cache_mrc_feed(c, offset, count);
    return cache_read_blocks(c, b, buf, count, offset, flags, err, NULL);
}

/* Step 0.  Every block, not only the cacheable ones: the curve is the guest's
 * miss stream, and a cache below the guest would see the edges too. */
void cache_mrc_feed(struct remoca_cache *c, uint64_t offset, uint32_t count)
{
    if (c->mrc) remoca_mrc_access_bytes(c->mrc, offset, count);
}

int cache_read_blocks(struct remoca_cache *c, const struct remoca_backing *b, void *buf,
                      uint32_t count, uint64_t offset, uint32_t flags, int *err, uint64_t *gens)
{
    char *p = buf;
    uint64_t end = offset + count;
    *err = 0;
    if (count == 0) return 0;

    /* Whole blocks inside the request and inside the disk: [fb, lb). */
    uint64_t fb = (offset + BS - 1) / BS;
    uint64_t lb = end / BS < c->nblocks ? end / BS : c->nblocks;
    if (fb >= lb) {
        if (backing_pread(c, b, p, count, offset, flags, err) == -1) goto fail;
        return 0;
    }
    uint64_t n = lb - fb;
    char *blk0 = p + (fb * BS - offset); /* block fb in the caller's buffer */
    COUNT(c, read_blocks, n);

    /* Per-request state: candidate and hit bitmaps, one snapshot per unit. */
    uint64_t u0 = gen_unit(fb), nunits = gen_unit(lb - 1) - u0 + 1;
    uint64_t words = n / 64 + 1;
    uint64_t stack[3 * 8 + 8];
    uint64_t *mem = stack;
    if (2 * words + nunits > sizeof stack / sizeof stack[0]) {
        mem = calloc(2 * words + nunits, sizeof *mem);
        if (!mem) {
            *err = ENOMEM;
            goto fail;
        }
    } else {
        memset(stack, 0, sizeof stack);
    }
    uint64_t *cand = mem, *have = mem + words, *snap = mem + 2 * words;

    /* 1. Snapshots before any disk read (or take) starts. */
    for (uint64_t u = 0; u < nunits; u++) snap[u] = gen_snapshot(&c->gens, u0 + u);
    if (gens)
        for (uint64_t i = 0; i < n; i++) gens[i] = snap[gen_unit(fb + i) - u0];

    /* 2. Remote lookups for the blocks the directory says may be remote. */
    bool any = false;
    for (uint64_t i = 0; i < n; i++)
        if (dir_test(&c->dir, fb + i)) {
            setbit(cand, i);
            any = true;
        }
    if (any) fetch_remote(c, blk0, fb, n, cand, have);

    /* 3. Backing reads: maximal byte runs not served remotely. */
    uint64_t pos = offset;
    while (pos < end) {
        /* skip bytes served remotely */
        uint64_t bi = pos / BS;
        if (pos % BS == 0 && bi >= fb && bi < lb && bit(have, bi - fb)) {
            pos += BS;
            continue;
        }
        uint64_t run = pos;
        while (run < end) {
            uint64_t bj = run / BS;
            if (run % BS == 0 && bj >= fb && bj < lb && bit(have, bj - fb)) break;
            run = (bj + 1) * BS < end ? (bj + 1) * BS : end;
        }
        if (backing_pread(c, b, p + (pos - offset), run - pos, pos, flags, err) == -1) {
            if (mem != stack) free(mem);
            goto fail;
        }
        pos = run;
    }

    /* 4. Fills: runs of missed blocks, one put per run within a unit
     * (inclusive mode only: exclusive blocks enter by eviction). */
    uint64_t nmiss = 0;
    bool fill = c->mode == REMOCA_MODE_INCLUSIVE;
    for (uint64_t i = 0; i < n;) {
        if (bit(have, i)) {
            i++;
            continue;
        }
        uint64_t unit = gen_unit(fb + i);
        uint64_t j = i + 1;
        while (j < n && !bit(have, j) && gen_unit(fb + j) == unit && j - i < BATCH) j++;
        if (fill) fill_run(c, blk0, fb, i, j, snap[unit - u0]);
        nmiss += j - i;
        i = j;
    }
    COUNT(c, misses, nmiss);
    if (mem != stack) free(mem);
    return 0;
fail:
    COUNT(c, errors, 1);
    return -1;
}

/* ---- writes, trims, zeroes -------------------------------------------- */

/* Blocks [a, z) of unit touched by [tb, te). */
static void unit_range(uint64_t unit, uint64_t tb, uint64_t te, uint64_t *a, uint64_t *z)
{
    *a = gen_unit_first(unit) > tb ? gen_unit_first(unit) : tb;
    *z = gen_unit_first(unit + 1) < te ? gen_unit_first(unit + 1) : te;
}

/* Deletes blocks [a, z) remotely and in the directory. */
static void invalidate(struct remoca_cache *c, uint64_t a, uint64_t z)
{
    if (c->r->del(c->rctx, a, z - a) == -1) COUNT(c, remote_errors, 1);
    COUNT(c, invalidations, dir_clear_range(&c->dir, a, z - a));
}

/* Write-update of unit, under its stripe lock: delete the touched blocks
 * (so that a refused put leaves nothing older behind), then put the whole
 * blocks of the request inside the unit. */
static void update_unit(struct remoca_cache *c, const char *buf, uint64_t offset, uint64_t end,
                        uint64_t a, uint64_t z)
{
    uint64_t fb = (offset + BS - 1) / BS, lb = end / BS;
    invalidate(c, a, z);
    if (fb < a) fb = a;
    if (lb > z) lb = z;
    if (fb >= lb) return;
    if (c->r->put(c->rctx, fb, (uint32_t)(lb - fb), buf + (fb * BS - offset)) == -1) {
        COUNT(c, remote_errors, 1);
        return;
    }
    dir_set_range(&c->dir, fb, lb - fb);
    COUNT(c, updates, lb - fb);
}

int cache_modify(struct remoca_cache *c, const struct remoca_backing *b, enum wop op,
                 const void *buf, uint32_t count, uint64_t offset, uint32_t flags, int *err,
                 uint64_t *gens)
{
    uint64_t end = offset + count;
    int r;
    *err = 0;
    /* Cacheable blocks touched, partial ones included: [tb, te). */
    uint64_t tb = offset / BS;
    uint64_t te = (end + BS - 1) / BS;
    if (te > c->nblocks) te = c->nblocks;
    if (count == 0 || tb >= te) tb = te = 0; /* nothing cacheable: pass through */
    uint64_t u0 = tb < te ? gen_unit(tb) : 0, nunits = tb < te ? gen_unit(te - 1) - u0 + 1 : 0;
    uint64_t stack[16], *mine = stack;
    if (nunits > 16 && !(mine = malloc(nunits * sizeof *mine))) {
        *err = ENOMEM;
        COUNT(c, errors, 1);
        return -1;
    }

    for (uint64_t u = 0; u < nunits; u++)
        mine[u] = gen_write_begin(&c->gens, u0 + u, c->r->write_begin, c->rctx);
    /* A versioned remote (write_begin set): invalidate whole units, [wb, we). */
    bool whole = c->r->write_begin != NULL;
    uint64_t wb = whole && tb < te ? gen_unit_first(u0) : tb;
    uint64_t we = whole && tb < te ? gen_unit_first(u0 + nunits) : te;
    if (we > c->nblocks) we = c->nblocks;

    switch (op) {
    case OP_WRITE: r = b->ops->pwrite(b->ctx, buf, count, offset, flags, err); break;
    case OP_TRIM: r = b->ops->trim(b->ctx, count, offset, flags, err); break;
    default: r = b->ops->zero(b->ctx, count, offset, flags, err); break;
    }
    if (r == -1 && !*err) *err = EIO;

    bool update = op == OP_WRITE && r == 0 && c->write == REMOCA_WRITE_UPDATE;
    /* Exclusive mode orders each unit's delete under its lock, at the end:
     * a take after a snapshot then executes after the delete of every write
     * that ended before the snapshot (the proof at the top, eviction puts). */
    bool locked = update || c->mode == REMOCA_MODE_EXCLUSIVE;
    for (uint64_t u = 0; u < nunits; u++) {
        struct gen_stripe *s = gen_stripe(&c->gens, u0 + u);
        pthread_mutex_lock(&s->lock);
        bool alone = s->writers == 1 && s->gen == mine[u];
        s->writers--;
        s->gen++;
        uint64_t a, z, ia, iz;
        unit_range(u0 + u, tb, te, &a, &z);
        unit_range(u0 + u, wb, we, &ia, &iz); /* what to invalidate: [a, z) or the unit */
        if (gens) /* a write's data are the disk's at this gen only if alone */
            for (uint64_t k = a; k < z; k++)
                gens[k - tb] = alone && r == 0 && op == OP_WRITE ? s->gen : GEN_NONE;
        if (update && alone) /* per unit, under the lock */
            update_unit(c, buf, offset, end, ia, iz);
        else if (locked)
            invalidate(c, ia, iz);
        pthread_mutex_unlock(&s->lock);
    }
    /* Write-invalidate: one delete for the whole range, ordered after every
     * unit's end (see the proof at the top) and before the acknowledgement. */
    if (!locked && tb < te) invalidate(c, wb, we);
    if (whole) /* every unit's invalidation is ordered now */
        for (uint64_t u = 0; u < nunits; u++) c->r->write_end(c->rctx, u0 + u);
    if (mine != stack) free(mine);
    if (r == -1) COUNT(c, errors, 1);
    return r;
}

int remoca_cache_write(struct remoca_cache *c, const struct remoca_backing *b, const void *buf,
                       uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
    COUNT(c, writes, 1);
    return cache_modify(c, b, OP_WRITE, buf, count, offset, flags, err, NULL);
}

int remoca_cache_trim(struct remoca_cache *c, const struct remoca_backing *b, uint32_t count,
                      uint64_t offset, uint32_t flags, int *err)
{
    COUNT(c, trims, 1);
    return cache_modify(c, b, OP_TRIM, NULL, count, offset, flags, err, NULL);
}

int remoca_cache_zero(struct remoca_cache *c, const struct remoca_backing *b, uint32_t count,
                      uint64_t offset, uint32_t flags, int *err)
{
    COUNT(c, zeroes, 1);
    return cache_modify(c, b, OP_ZERO, NULL, count, offset, flags, err, NULL);
}

int remoca_cache_flush(struct remoca_cache *c, const struct remoca_backing *b, uint32_t flags,
                       int *err)
{
    *err = 0;
    COUNT(c, flushes, 1);
    if (b->ops->flush(b->ctx, flags, err) == -1) {
        if (!*err) *err = EIO;
        COUNT(c, errors, 1);
        return -1;
    }
    return 0;
}

/* ---- stats ------------------------------------------------------------ */

static const char *const stat_names[] = {
    "reads",
    "read_blocks",
    "remote_lookups",
    "remote_gets",
    "remote_hits",
    "remote_misses",
    "misses",
    "backing_reads",
    "backing_blocks",
    "fills",
    "fills_skipped",
    "writes",
    "trims",
    "zeroes",
    "flushes",
    "invalidations",
    "updates",
    "errors",
    "remote_errors",
    "evictions_inferred",
    "evictions_verified",
    "evictions_mismatched",
    "evictions_stale",
    "eviction_puts",
    "takes",
    "evict_map_bytes",
};
_Static_assert(sizeof stat_names / sizeof stat_names[0] == NSTATS,
               "stat_names out of step with struct remoca_cache_stats");

void remoca_cache_get_stats(const struct remoca_cache *c, struct remoca_cache_stats *st)
{
    uint64_t *v = (uint64_t *)st;
    for (size_t i = 0; i < NSTATS; i++)
        v[i] = atomic_load_explicit(&((struct remoca_cache *)c)->st[i], memory_order_relaxed);
}

size_t remoca_format_counters(const char *const *names, const uint64_t *v, size_t n,
                              const char *prefix, char *buf, size_t len)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(buf ? buf + (used < len ? used : len) : NULL, used < len ? len - used : 0,
                         "%s%s=%llu\n", prefix ? prefix : "", names[i], (unsigned long long)v[i]);
        if (k > 0) used += (size_t)k;
    }
    return used;
}

size_t remoca_cache_format_stats(const struct remoca_cache_stats *st, const char *prefix, char *buf,
                                 size_t len)
{
    return remoca_format_counters(stat_names, (const uint64_t *)st, NSTATS, prefix, buf, len);
}
