/* SPDX-License-Identifier: BSD-3-Clause */
/* The data path: get/take, put, delete.
 *
 * A call on keys [key, key+count) is cut into frames:
 *
 *   keys   |<- chunk 64 ->|<- chunk 64 ->|<- chunk 64 ->|<- chunk 64 ->| ...
 *   server      A              A              B              A
 *   frames |<--- frame 0 (A) ----------->|<- 1 (B) ---->|<- 2 (A) ...
 *
 * consecutive chunks placed on the same server share a frame, up to
 * REMOCA_MAX_BATCH keys.  Frames are grouped per server (order of keys kept
 * within a server, which is all the ordering contract needs: a key lives on
 * one server) and each group is written under that connection's send lock in
 * one sendmsg.  Every frame of the call is sent before the caller waits, so a
 * multi-block read costs one round trip whatever the number of servers.
 *
 * Waiters and frames live on the caller's stack for calls of up to
 * STACK_FRAMES frames (a 1 MiB read on up to 4 servers); bigger calls
 * allocate.  Hit pages are read by the connection thread straight into the
 * caller's buffer; hit bits are merged from the waiters after the wait.
 *
 * A GET frame whose connection maps its server's page store (memd --shm on
 * this host) is not sent: it is served by copying from that memory
 * (client_shm.c), unless an invalidation of one of its keys ordered on that
 * connection has not been answered yet (why that keeps reads fresh: above
 * remoca_delete).
 *
 * Sealed pools (opts.sealed): the same frames with REMOCA_F_SEALED; a get's
 * hits carry page || sidecar, read into the caller's two buffers
 * (client_recv.c); a put's payload is interleaved into one buffer per call
 * (page || sidecar per key, the wire's units) before it is sent, so the send
 * queue and a cut frame's rest (client_send.c) carry the sidecars like any
 * payload.  One-sided reads copy page and sidecar under the same sequence
 * check (remoca_shm_read_sealed); no-wait one-page puts through the fill
 * ring copy the sidecar into the ring's sidecar area (client_ring.c).
 *
 * Deletes of more than BROADCAST_KEYS keys on several servers are sent as one
 * DELETE_RANGE to every server instead of being cut per chunk (a trim of a
 * whole disk costs n frames, not millions); deletes beyond RESET_KEYS become
 * a pool reset.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define STACK_FRAMES 8u
#define BROADCAST_KEYS (64u * REMOCA_PLACEMENT_CHUNK)
#define RESET_KEYS (1ull << 40) /* 4 PiB: more than any disk */
#define RANGE_MAX 0xffffffffull /* count field of one DELETE_RANGE */

/* Frames for keys [key, key+count) with at most `max` keys per frame. */
static unsigned max_frames(const struct remoca_client *c, uint64_t count, uint32_t max)
{
    uint64_t n = (count + max - 1) / max;
    if (c->n > 1) n += count / REMOCA_PLACEMENT_CHUNK + 2;
    return (unsigned)n;
}

/* Builds the frames (server, base, key, count) in key order. */
static unsigned build_frames(const struct remoca_client *c, uint64_t key, uint32_t count,
                             uint32_t max, struct frame *f)
{
    unsigned nf = 0;
    uint32_t i = 0;
    while (i < count) {
        uint64_t k = key + i;
        uint32_t len;
        unsigned s;
        if (c->n == 1) {
            len = count - i;
            s = 0;
        } else {
            uint64_t to_chunk_end = REMOCA_PLACEMENT_CHUNK - k % REMOCA_PLACEMENT_CHUNK;
            len = to_chunk_end < count - i ? (uint32_t)to_chunk_end : count - i;
            s = remoca_placement_chunk(&c->place, k / REMOCA_PLACEMENT_CHUNK);
        }
        while (len > 0) {
            struct frame *last = nf ? &f[nf - 1] : NULL;
            uint32_t take;
            if (last && last->server == s && last->key + last->count == k && last->count < max) {
                take = max - last->count < len ? max - last->count : len;
                last->count += take;
            } else {
                take = max < len ? max : len;
                f[nf] = (struct frame){.server = s, .base = i, .key = k, .count = take};
                nf++;
            }
            k += take;
            i += take;
            len -= take;
        }
    }
    return nf;
}

/* Stable sort of frames by server (insertion sort: few frames). */
static void sort_by_server(struct frame *f, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        struct frame t = f[i];
        unsigned j = i;
        while (j > 0 && f[j - 1].server > t.server) {
            f[j] = f[j - 1];
            j--;
        }
        f[j] = t;
    }
}

/* Sends frames grouped by server; marks `sent` for frames handed over. */
static bool send_groups(struct remoca_client *c, struct frame *f, unsigned n,
                        const struct timespec *deadline)
{
    bool all = true;
    unsigned i = 0;
    while (i < n) {
        unsigned j = i + 1;
        while (j < n && f[j].server == f[i].server) j++;
        struct conn *cn = c->conns[f[i].server];
        enum conn_send_result r = rc_conn_send(cn, &f[i], j - i, deadline);
        if (r != CONN_SENT) {
            all = false;
            for (unsigned k = i; k < j; k++)
                if (!f[k].w) atomic_fetch_add(&c->failures, 1);
            if (!f[i].w) atomic_fetch_add_explicit(&cn->st.errors, j - i, memory_order_relaxed);
        } else if (f[i].op == REMOCA_OP_PUT) {
            uint64_t pages = 0;
            for (unsigned k = i; k < j; k++) pages += f[k].count;
            atomic_fetch_add_explicit(&cn->st.puts, pages, memory_order_relaxed);
        }
        i = j;
    }
    return all;
}

/* Per-call scratch: frames and waiters, on the stack when small. */
struct call {
    struct frame sf[STACK_FRAMES];
    struct waiter sw[STACK_FRAMES];
    struct frame *f;
    struct waiter *w;
};

static int call_alloc(struct call *cl, unsigned n, bool waiters)
{
    if (n <= STACK_FRAMES) {
        cl->f = cl->sf;
        cl->w = cl->sw;
        return 0;
    }
    cl->f = malloc(n * sizeof *cl->f);
    cl->w = waiters ? malloc(n * sizeof *cl->w) : NULL;
    if (!cl->f || (waiters && !cl->w)) {
        free(cl->f);
        free(cl->w);
        return -1;
    }
    return 0;
}

static void call_free(struct call *cl)
{
    if (cl->f != cl->sf) free(cl->f);
    if (cl->w != cl->sw) free(cl->w);
}

static void waiter_prep(struct waiter *w, struct frame *f, struct completion *cp)
{
    w->next = NULL;
    w->conn = NULL;
    w->op = f->op;
    w->count = f->count;
    w->base = f->base;
    w->registered = false;
    w->late = false;
    w->server = f->server;
    w->text = NULL;
    w->cas = NULL;
    w->sides = NULL;
    w->nhits = 0;
    w->result = -1;
    w->status = 0;
    atomic_init(&w->done, false);
    w->comp = cp;
    f->w = w;
}

/* Per-server counters of a get call's frames (remoca_client_server_stats). */
static void count_gets(struct remoca_client *c, const struct waiter *w, unsigned n, int64_t ns)
{
    for (unsigned i = 0; i < n; i++) {
        struct rc_server_counters *st = &c->conns[w[i].server]->st;
        atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->keys, w[i].count, memory_order_relaxed);
        if (w[i].result == 0) {
            atomic_fetch_add_explicit(&st->hits, w[i].nhits, memory_order_relaxed);
            atomic_fetch_add_explicit(&st->misses, w[i].count - w[i].nhits, memory_order_relaxed);
            rc_lat_record(st, ns);
        } else {
            atomic_fetch_add_explicit(&st->misses, w[i].count, memory_order_relaxed);
            atomic_fetch_add_explicit(&st->errors, 1, memory_order_relaxed);
            if (w[i].late) atomic_fetch_add_explicit(&st->timeouts, 1, memory_order_relaxed);
        }
    }
}

/* The second half of a take on memcached servers (docs/memcached.md, TAKE):
 * each hit is deleted only if its CAS is still the one the mg returned, so a
 * put ordered after the take's mg (ours, or another client's) survives, as
 * with memd's atomic TAKE.  No-wait, but ordered before the call returns:
 * anything the caller does next is executed after these deletes.  For a take
 * every frame was sent, so f[i] is w[i]'s frame. */
static void take_finish(struct remoca_client *c, const struct frame *f, const struct waiter *w,
                        unsigned nf, const struct timespec *deadline)
{
    for (unsigned i = 0; i < nf; i++) {
        struct conn *cn = c->conns[f[i].server];
        if (!cn->addr.mc || w[i].result != 0 || w[i].nhits == 0 || !w[i].cas) continue;
        struct rc_mc_casdel cd = {.bits = w[i].bits, .cas = w[i].cas};
        struct frame d = {.server = f[i].server,
                          .op = RC_OP_MC_CASDEL,
                          .key = f[i].key,
                          .count = f[i].count,
                          .payload = &cd};
        rc_conn_send(cn, &d, 1, deadline); /* not sent: the epoch changes at reconnect */
    }
}

/* remoca_get and remoca_get_sealed (sides != NULL: the client is sealed). */
static unsigned get_call(struct remoca_client *c, uint64_t key, uint32_t count, void *pages,
                         void *sides, uint64_t *hits, bool take)
{
    if (count == 0) return 0;
    memset(hits, 0, ((size_t)count + 63) / 64 * sizeof *hits);
    if (!remoca_range_ok(key, count) || c->sealed != (sides != NULL)) return 0;

    pthread_rwlock_rdlock(&c->members_lock); /* routing .. last answer: one membership */
    struct call cl;
    if (call_alloc(&cl, max_frames(c, count, REMOCA_MAX_BATCH), true) < 0) {
        pthread_rwlock_unlock(&c->members_lock);
        return 0;
    }
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    struct completion comp;
    completion_init(&comp);
    int64_t t0 = rc_now_ns();

    /* A take on memcached deletes its hits with their CAS (take_finish). */
    uint64_t *cas = take ? malloc((size_t)count * sizeof *cas) : NULL;
    if (take && !cas) {
        call_free(&cl);
        pthread_rwlock_unlock(&c->members_lock);
        return 0;
    }
    unsigned nf = build_frames(c, key, count, REMOCA_MAX_BATCH, cl.f);
    if (c->n > 1) sort_by_server(cl.f, nf);
    /* Frames of a connection that maps its server's memory are served here,
     * one-sidedly; the others are sent (kept in order, grouped by server). */
    unsigned nsend = 0;
    for (unsigned i = 0; i < nf; i++) {
        cl.f[i].op = take ? REMOCA_OP_TAKE : REMOCA_OP_GET;
        waiter_prep(&cl.w[i], &cl.f[i], &comp);
        cl.w[i].pages = (uint8_t *)pages + (size_t)cl.f[i].base * REMOCA_PAGE_SIZE;
        if (sides) {
            cl.f[i].flags = REMOCA_F_SEALED;
            cl.w[i].sides = (uint8_t *)sides + (size_t)cl.f[i].base * REMOCA_SIDE_SIZE;
        }
        if (cas) cl.w[i].cas = cas + cl.f[i].base;
        if (!take && rc_shm_get(c->conns[cl.f[i].server], &cl.f[i], &cl.w[i])) continue;
        cl.f[nsend++] = cl.f[i];
    }
    if (nsend) send_groups(c, cl.f, nsend, &deadline);
    rc_waiters_wait(c, &comp, cl.w, nf, &deadline);
    count_gets(c, cl.w, nf, rc_now_ns() - t0);
    if (take) take_finish(c, cl.f, cl.w, nf, &deadline);
    free(cas);

    unsigned total = 0;
    for (unsigned i = 0; i < nf; i++) {
        struct waiter *w = &cl.w[i];
        if (w->result != 0 || w->nhits == 0) continue;
        total += w->nhits;
        for (unsigned wi = 0; wi < REMOCA_BITMAP_WORDS && wi * 64 < w->count; wi++) {
            uint64_t b = w->bits[wi];
            while (b) {
                uint32_t bit = w->base + wi * 64 + (unsigned)__builtin_ctzll(b);
                b &= b - 1;
                hits[bit / 64] |= 1ull << (bit % 64);
            }
        }
    }
    call_free(&cl);
    pthread_rwlock_unlock(&c->members_lock);
    return total;
}

unsigned remoca_get(struct remoca_client *c, uint64_t key, uint32_t count, void *pages,
                    uint64_t *hits, bool take)
{
    if (c->sealed) rc_log(c, REMOCA_LOG_DEBUG, "remoca_get on a sealed client: refused");
    return get_call(c, key, count, pages, NULL, hits, take);
}

unsigned remoca_get_sealed(struct remoca_client *c, uint64_t key, uint32_t count, void *pages,
                           void *sides, uint64_t *hits, bool take)
{
    if (!sides) {
        if (count) memset(hits, 0, ((size_t)count + 63) / 64 * sizeof *hits);
        return 0;
    }
    return get_call(c, key, count, pages, sides, hits, take);
}

/* Sends prepared frames (op, key, count, payload set); with wait, waits for
 * the replies.  0 when all were sent (and acknowledged), else -1. */
static int send_and_maybe_wait(struct remoca_client *c, struct call *cl, unsigned nf, bool wait,
                               const struct timespec *deadline)
{
    struct completion comp;
    completion_init(&comp);
    if (wait) {
        for (unsigned i = 0; i < nf; i++) waiter_prep(&cl->w[i], &cl->f[i], &comp);
    } else {
        for (unsigned i = 0; i < nf; i++) cl->f[i].w = NULL;
    }
    bool ok = send_groups(c, cl->f, nf, deadline);
    if (wait) {
        rc_waiters_wait(c, &comp, cl->w, nf, deadline);
        for (unsigned i = 0; i < nf; i++) ok &= cl->w[i].result == 0;
    }
    return ok ? 0 : -1;
}

/* remoca_put and remoca_put_sealed (sides != NULL: the client is sealed). */
static int put_call(struct remoca_client *c, uint64_t key, uint32_t count, const void *pages,
                    const void *sides, bool wait)
{
    if (count == 0) return 0;
    if (!remoca_range_ok(key, count) || c->sealed != (sides != NULL)) return -1;
    /* Sealed: the wire's units, page || sidecar, in one buffer.  It must
     * live only through the sends: rc_conn_send copies what it queues. */
    uint8_t *units = NULL;
    if (sides) {
        units = malloc((size_t)count * REMOCA_SEALED_UNIT);
        if (!units) return -1;
        for (uint32_t i = 0; i < count; i++) {
            uint8_t *u = units + (size_t)i * REMOCA_SEALED_UNIT;
            memcpy(u, (const uint8_t *)pages + (size_t)i * REMOCA_PAGE_SIZE, REMOCA_PAGE_SIZE);
            memcpy(u + REMOCA_PAGE_SIZE, (const uint8_t *)sides + (size_t)i * REMOCA_SIDE_SIZE,
                   REMOCA_SIDE_SIZE);
        }
        pages = units;
    }
    uint32_t unit = remoca_unit_size(sides != NULL);
    pthread_rwlock_rdlock(&c->members_lock);
    struct call cl;
    if (call_alloc(&cl, max_frames(c, count, REMOCA_MAX_BATCH), wait) < 0) {
        pthread_rwlock_unlock(&c->members_lock);
        free(units);
        return -1;
    }
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    unsigned nf = build_frames(c, key, count, REMOCA_MAX_BATCH, cl.f);
    if (c->n > 1) sort_by_server(cl.f, nf);
    for (unsigned i = 0; i < nf; i++) {
        cl.f[i].op = REMOCA_OP_PUT;
        cl.f[i].flags = sides ? REMOCA_F_SEALED : 0;
        cl.f[i].payload = (const uint8_t *)pages + (size_t)cl.f[i].base * unit;
        cl.f[i].len = cl.f[i].count * unit;
    }
    int rc = send_and_maybe_wait(c, &cl, nf, wait, &deadline);
    call_free(&cl);
    pthread_rwlock_unlock(&c->members_lock);
    free(units);
    return rc;
}

int remoca_put(struct remoca_client *c, uint64_t key, uint32_t count, const void *pages, bool wait)
{
    if (c->sealed) rc_log(c, REMOCA_LOG_DEBUG, "remoca_put on a sealed client: refused");
    return put_call(c, key, count, pages, NULL, wait);
}

int remoca_put_sealed(struct remoca_client *c, uint64_t key, uint32_t count, const void *pages,
                      const void *sides, bool wait)
{
    return sides ? put_call(c, key, count, pages, sides, wait) : -1;
}

/* Deletes where reads are one-sided.  A one-sided read sees the server's
 * memory as it is, not the wire order: a delete that is merely ordered (in
 * the send queue, or unexecuted in the server's socket buffer) has not
 * removed the old page yet.  Deletes stay no-wait all the same; instead each
 * connection counts, per key, the invalidations (DELETE, DELETE_RANGE,
 * POOL_RESET) ordered on it whose response has not been read
 * (client_inval.c): an invalidation of keys [key, key+count) counts +1 in
 * stripe(k) = (k / INVAL_STRIPE_KEYS) % INVAL_STRIPES for every k in the
 * range -- or, for a pool reset or a range of more than INVAL_SPAN_MAX
 * stripes, +1 in the connection's global count -- under the send lock when
 * ordered; its response counts -1 at the same places (taken from a record
 * of what was sent, not from what the server echoes); all are 0 when the
 * pool is rebuilt before UP.  A get frame is served one-sidedly only while
 * the global count and the stripe of every key of the frame are 0
 * (client_shm.c); otherwise it is sent.
 *
 * Why that is enough, key by key.  A write W of key k is acknowledged after
 * its delete D of k was ordered on the connection C of k's server, so
 * global(C) + stripe_C(k) > 0 from before W's acknowledgement until D's
 * response is read, which happens only after the server executed D (an
 * error reply first takes C out of service, clearing UP).  A read R of k
 * that starts after W's acknowledgement loads those counts (seq_cst, after
 * its reader registration and its UP check) and either
 *  - sees one > 0: its frame goes over the socket, ordered after D on the
 *    wire, and the server executes a connection's frames in order, so it
 *    runs after D exactly as before one-sided reads existed; or
 *  - sees both 0: D's response has been read, so D has executed and its
 *    effect is in the shared store before R copies; or the counts were
 *    reset since D was ordered, which happens only after C's pool was
 *    rebuilt by a POOL_RESET answered after D was ordered (a quarantine's
 *    runs behind D on the same wire; a reconnect's empties the pool on a
 *    fresh connection), so the store holds nothing D was to remove either.
 *    (A copy that straddles a quarantine or teardown is dropped by the
 *    generation check after it.)
 * Either way R cannot copy a page of k that D removed.  Other keys' pending
 * deletes do not matter to R: D removes only its own keys, and a stripe
 * shared with other keys only makes R wait more often.  The counts cannot
 * reach 0 early: each response counts down only what its own request
 * counted up, once, and responses from before a rebuild not at all
 * (client_inval.c, rc_inval_answered).
 *
 * Cost: one socket round trip for a read of a key whose stripe has a delete
 * unanswered (about P/INVAL_STRIPES of random reads with P deletes
 * pending, every read while a wide one is).  That read heals the state:
 * reading its own response reads the delete's first (memd answers a
 * connection in order; the lazy responses are read by whoever reads next),
 * which brings the counts back to 0, and later reads are one-sided again.
 * Fill puts stay no-wait too: a put not yet executed is only a miss. */
static int delete_locked(struct remoca_client *c, uint64_t key, uint64_t count, bool wait)
{
    if (count >= RESET_KEYS) return rc_pool_reset_locked(c);

    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    struct call cl;
    unsigned nf;
    if (c->n > 1 && count <= BROADCAST_KEYS) {
        /* Small: per placement run, like a put. */
        if (call_alloc(&cl, max_frames(c, count, REMOCA_MAX_BATCH), wait) < 0) return -1;
        nf = build_frames(c, key, (uint32_t)count, REMOCA_MAX_BATCH, cl.f);
        sort_by_server(cl.f, nf);
        for (unsigned i = 0; i < nf; i++) cl.f[i].op = REMOCA_OP_DELETE;
    } else {
        /* One server, or big: DELETE_RANGE frames of up to 2^32-1 keys, sent
         * to every server (each deletes what it holds). */
        unsigned per = (unsigned)((count + RANGE_MAX - 1) / RANGE_MAX);
        if (call_alloc(&cl, per * c->n, wait) < 0) return -1;
        nf = 0;
        for (unsigned s = 0; s < c->n; s++) {
            uint64_t done = 0;
            while (done < count) {
                uint64_t n = count - done < RANGE_MAX ? count - done : RANGE_MAX;
                cl.f[nf++] = (struct frame){.server = s,
                                            .key = key + done,
                                            .count = (uint32_t)n,
                                            .op = n <= REMOCA_MAX_BATCH ? REMOCA_OP_DELETE
                                                                        : REMOCA_OP_DELETE_RANGE};
                done += n;
            }
        }
    }
    int rc = send_and_maybe_wait(c, &cl, nf, wait, &deadline);
    call_free(&cl);
    return rc;
}

int remoca_delete(struct remoca_client *c, uint64_t key, uint64_t count, bool wait)
{
    if (count == 0) return 0;
    if (!remoca_range_ok(key, count)) return -1;
    pthread_rwlock_rdlock(&c->members_lock);
    int rc = delete_locked(c, key, count, wait);
    pthread_rwlock_unlock(&c->members_lock);
    return rc;
}
