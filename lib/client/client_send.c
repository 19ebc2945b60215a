/* SPDX-License-Identifier: BSD-3-Clause */
/* The send side of a connection: frames are written under the send lock in
 * call order (which is wire order, which is the server's execution order),
 * with a deadline on the lock and on every write.  A write that times out
 * half way through a frame keeps a copy of the rest for the quarantine
 * drain, so the stream stays well formed (client_conn.c).
 *
 * No-wait frames (fill puts, invalidations) are copied to the connection's
 * send queue instead of being written in the call: the queue is part of
 * the wire order (every write puts the queue out first, under the same
 * lock), so they are ordered on return exactly as if written, and a cold
 * read does not pay a TCP send (and the server's wakeup) per fill.  The
 * queue is written by the next sender, by the queuer that brings it to
 * SQ_BATCH frames, or by the connection thread once it is SQ_DELAY_US old;
 * it is dropped with the pool state on quarantine and teardown.
 * Invalidations count as pending for their keys from the moment they are
 * ordered (queued or written) until their answer is read: one-sided reads
 * of those keys wait for that (client_inval.c, client_ops.c).
 *
 *   caller: put(no-wait) ─▶ lock send_lock ─▶ copy to sq ─▶ unlock (ordered)
 *           (or into the server's fill ring, if it has one: client_ring.c)
 *   caller: get          ─▶ lock send_lock ─▶ sendmsg(sq + get) ─▶ unlock
 *   conn thread (due)    ─▶ lock send_lock ─▶ sendmsg(sq) ─▶ unlock
 *
 * Measured (nbdkit filter, cold 4 KiB random reads, 2 cores): CPU per read
 * (nbdkit + memd) 100 -> 54 us at queue depth 1 and 41 -> 31 us at 16; p50
 * at depth 1 114 -> 70 us (the file plugin alone: 55-75 us).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "client_conn.h"
#include "client_sock.h"

/* ---- send path (any thread) -------------------------------------------- */

/* Locks m before a CLOCK_MONOTONIC deadline.  (pthread_mutex_clocklock
 * would do, but sanitizers do not know it yet; the REALTIME conversion only
 * matters if the clock jumps while a connection is stuck.) */
int rc_lock_until(pthread_mutex_t *m, const struct timespec *deadline)
{
    if (pthread_mutex_trylock(m) == 0) return 0;
    int left = rc_deadline_left_ms(deadline);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    rt.tv_sec += left / 1000;
    rt.tv_nsec += (long)(left % 1000) * 1000000L;
    if (rt.tv_nsec >= 1000000000L) {
        rt.tv_sec++;
        rt.tv_nsec -= 1000000000L;
    }
    return pthread_mutex_timedlock(m, &rt);
}

/* After a send timeout that cut frame f at byte `off` (of its header +
 * payload): keep a copy of the rest, for quarantine_drain to send before
 * anything else.  send_lock held. */
static bool keep_rest(struct conn *cn, const struct frame *f, size_t off)
{
    size_t total = REMOCA_HDR_SIZE + f->len;
    size_t n = total - off;
    uint8_t *b = malloc(n);
    if (!b) return false; /* the frame cannot be completed: close instead */
    size_t pos = 0;
    if (off < REMOCA_HDR_SIZE) {
        memcpy(b, f->hdr + off, REMOCA_HDR_SIZE - off);
        pos = REMOCA_HDR_SIZE - off;
        off = REMOCA_HDR_SIZE;
    }
    memcpy(b + pos, (const uint8_t *)f->payload + (off - REMOCA_HDR_SIZE), n - pos);
    pthread_mutex_lock(&cn->lock);
    free(cn->qbuf);
    cn->qbuf = b;
    cn->qlen = n;
    pthread_mutex_unlock(&cn->lock);
    return true;
}

void rc_sq_drop(struct conn *cn)
{
    cn->sqlen = 0;
    cn->sqframes = 0;
    atomic_store(&cn->sq_due_ns, 0);
}

/* After a write that stopped `sent` bytes into the send queue (send_lock
 * held): keep the rest of the frame it cut, like keep_rest. */
static bool keep_rest_sq(struct conn *cn, size_t sent)
{
    size_t pos = 0;
    while (pos < cn->sqlen) {
        struct remoca_hdr h;
        remoca_hdr_decode(cn->sq + pos, &h);
        size_t flen = REMOCA_HDR_SIZE + h.len;
        if (sent < pos + flen) {
            if (sent == pos) return true; /* nothing of it left: the stream is whole */
            struct frame f = {.len = h.len, .payload = cn->sq + pos + REMOCA_HDR_SIZE};
            memcpy(f.hdr, cn->sq + pos, REMOCA_HDR_SIZE);
            return keep_rest(cn, &f, sent - pos);
        }
        pos += flen;
    }
    return true;
}

/* Makes the queue due within delay_us at the latest (send_lock held).
 * Returns the new due time if that moved it earlier (the connection thread
 * may need telling: sq_wake), else 0. */
static int64_t sq_arm(struct conn *cn, unsigned delay_us)
{
    int64_t due = rc_now_ns() + delay_us * 1000LL, old = atomic_load(&cn->sq_due_ns);
    if (old && old <= due) return 0;
    atomic_store(&cn->sq_due_ns, due);
    return due;
}

/* Copies no-wait frames (headers encoded) to the send queue.  send_lock held.
 * Returns sq_arm's answer for the queue's first frame. */
static int64_t sq_append(struct conn *cn, const struct frame *f, unsigned n)
{
    int64_t due = cn->sqlen == 0 ? sq_arm(cn, SQ_DELAY_US) : 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(cn->sq + cn->sqlen, f[i].hdr, REMOCA_HDR_SIZE);
        cn->sqlen += REMOCA_HDR_SIZE;
        if (f[i].len) memcpy(cn->sq + cn->sqlen, f[i].payload, f[i].len);
        cn->sqlen += f[i].len;
    }
    cn->sqframes += n;
    return due;
}

/* Tells the connection thread that the queue has become due (at `due`),
 * unless it will look by then anyway (it keeps short sleeps while the queue
 * is busy: client_conn.c, serve).  Either it published a wake-up time late
 * enough before reading sq_due_ns, and then saw `due`, or we see its time. */
static void sq_wake(struct conn *cn, int64_t due)
{
    if (atomic_load(&cn->wake_at_ns) <= due) return;
    pthread_mutex_lock(&cn->lock);
    pthread_cond_signal(&cn->wake);
    pthread_mutex_unlock(&cn->lock);
}

/* Encodes the headers of frames f[0..n) with the connection's next ids and
 * prepares their waiters (not yet in the table).  send_lock held.  Says
 * whether any frame has a waiter, and the bytes of all frames. */
static void number_frames(struct conn *cn, struct frame *f, unsigned n, uint64_t gen,
                          bool *any_waiter, size_t *bytes)
{
    for (unsigned i = 0; i < n; i++) {
        struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ,
                               .version = REMOCA_VERSION,
                               .op = f[i].op,
                               .flags = f[i].flags,
                               .id = cn->next_id++,
                               .pool = cn->pool,
                               .key = f[i].key,
                               .count = f[i].count,
                               .len = f[i].len};
        remoca_hdr_encode(f[i].hdr, &h);
        *bytes += REMOCA_HDR_SIZE + f[i].len;
        if (f[i].w) {
            struct waiter *w = f[i].w;
            w->id = h.id;
            w->gen = gen;
            w->conn = cn;
            w->registered = true;
            completion_add(w->comp);
            *any_waiter = true;
        }
    }
}

/* Inserts the frames' waiters into the table: their number, or -1 if the
 * connection is no longer the one they were numbered for.  A quarantine
 * (which takes only `lock`) may have drained the table since the caller
 * checked `up`: a waiter inserted then would never be completed by anyone,
 * so the caller fails them and sends nothing.  send_lock held. */
static int register_waiters(struct conn *cn, struct frame *f, unsigned n, uint64_t gen)
{
    int nwait = 0;
    pthread_mutex_lock(&cn->lock);
    bool still = atomic_load(&cn->up) && atomic_load(&cn->gen) == gen;
    for (unsigned i = 0; still && i < n; i++)
        if (f[i].w) rc_table_insert(cn, f[i].w), nwait++;
    pthread_mutex_unlock(&cn->lock);
    return still ? nwait : -1;
}

/* Writes the send queue, then frames f[0..n), up to 63 frames per sendmsg.
 * 0, or -1 with errno in *err and a reason in why; on failure the frame a
 * short write cut is kept for the quarantine's drain (keep_rest), and
 * *cut_lost says it could not be.  send_lock held. */
static int write_frames(struct conn *cn, int fd, struct frame *f, unsigned n,
                        const struct timespec *deadline, int *err, bool *cut_lost, char *why,
                        size_t whylen)
{
    struct iovec iov[128];
    int rc = 0;
    unsigned first = 0;
    size_t qlen = cn->sqlen;
    while ((first < n || qlen) && rc == 0) {
        int cnt = 0;
        if (qlen) iov[cnt++] = (struct iovec){cn->sq, qlen};
        unsigned last = first;
        while (last < n && cnt + 2 <= 126) {
            iov[cnt++] = (struct iovec){f[last].hdr, REMOCA_HDR_SIZE};
            if (f[last].len) iov[cnt++] = (struct iovec){(void *)f[last].payload, f[last].len};
            last++;
        }
        /* Corking: when another sender is queued on the lock, it will push
         * our frames out with its own (one segment and one wakeup of the
         * server for the lot; measured: a quarter less CPU per request on
         * both sides at 16 threads).  The last sender of a burst sends
         * without MSG_MORE.  A queued sender that then sends nothing found
         * the connection quarantined (its drain writes, uncorked) or dead. */
        int more = last == n && atomic_load(&cn->senders) > 0 ? MSG_MORE : 0;
        size_t sent = 0;
        rc = rc_sock_send(fd, iov, cnt, deadline, more, &sent, why, whylen);
        if (rc < 0) {
            *err = errno;
            if (sent < qlen) {
                if (!keep_rest_sq(cn, sent)) *cut_lost = true;
            } else {
                sent -= qlen;
                for (unsigned i = first; i < last; i++) {
                    size_t sz = REMOCA_HDR_SIZE + f[i].len;
                    if (sent < sz) {
                        if (sent > 0 && !keep_rest(cn, &f[i], sent)) *cut_lost = true;
                        break;
                    }
                    sent -= sz;
                }
            }
        }
        qlen = 0;
        first = last;
    }
    return rc;
}

/* Orders frames f[0..n) on the connection, in this order, under send_lock:
 *   1. no-wait one-page puts into the fill ring, if it has room (done, unless
 *      enough wait that a PING must follow to make the server look);
 *   2. headers numbered (number_frames), waiters into the table;
 *   3. small no-wait frames copied to the send queue (done, until it holds
 *      SQ_BATCH frames);
 *   4. the queue and the frames written (write_frames); a write that times
 *      out quarantines the connection, any other failure kills it. */
enum conn_send_result rc_conn_send(struct conn *cn, struct frame *f, unsigned n,
                                   const struct timespec *deadline)
{
    struct remoca_client *c = cn->client;
    if (cn->addr.mc) return rc_mc_send(cn, f, n, deadline); /* client_mc.c */
    if (!atomic_load_explicit(&cn->up, memory_order_acquire)) return CONN_DOWN;
    uint64_t gen0 = atomic_load(&cn->gen);
    atomic_fetch_add(&cn->senders, 1);
    int locked = rc_lock_until(&cn->send_lock, deadline);
    atomic_fetch_sub(&cn->senders, 1);
    if (locked != 0) {
        /* Someone is stuck writing to this server: it is hung. */
        rc_conn_quarantine(cn, gen0, "send lock timed out (server not reading)");
        return CONN_DOWN;
    }
    if (!atomic_load(&cn->up)) {
        pthread_mutex_unlock(&cn->send_lock);
        return CONN_DOWN;
    }
    int fd = cn->fd;
    uint64_t gen = atomic_load(&cn->gen);

    /* No-wait puts go through the fill ring when it has room, ordered
     * before the next request (client_ring.c).  The server looks at the
     * ring when it executes a request: if none is written soon, a PING is,
     * once RING_KICK entries wait or when the queue's delay has passed. */
    struct frame ping;
    bool write_now = false;
    if (rc_ring_put(cn, f, n)) {
        if (cn->ring_unflushed < RING_KICK(cn)) {
            int64_t due = sq_arm(cn, RING_DELAY_US);
            pthread_mutex_unlock(&cn->send_lock);
            if (due) sq_wake(cn, due);
            return CONN_SENT;
        }
        n = 0;
    }
    if (n == 0 && cn->ring_unflushed) {
        ping = (struct frame){.op = REMOCA_OP_PING};
        f = &ping;
        n = 1;
        write_now = true;
    }
    if (n > 0) cn->ring_unflushed = 0; /* the first request numbered now follows them all */

    bool any_waiter = false;
    size_t bytes = 0;
    uint32_t id0 = cn->next_id;
    number_frames(cn, f, n, gen, &any_waiter, &bytes);

    /* Small no-wait frames that fit go to the send queue: ordered now,
     * written with the next write.  The caller that fills the queue writes
     * it.  Big ones (a 128 KiB fill run) gain nothing from batching: they
     * are written at once, behind the queue, without a copy. */
    if (n > 0 && !any_waiter && !write_now && bytes <= SQ_CAP / 4 && cn->sqlen + bytes <= SQ_CAP) {
        int64_t due = sq_append(cn, f, n);
        /* Ordered now: one-sided reads of their keys stop until they are
         * answered (client_inval.c; frames that invalidate nothing are
         * skipped there). */
        rc_inval_ordered(cn, f, n, id0);
        atomic_fetch_add(&c->requests, n);
        if (cn->sqframes < SQ_BATCH) {
            pthread_mutex_unlock(&cn->send_lock);
            if (due) sq_wake(cn, due);
            return CONN_SENT;
        }
        n = 0; /* full enough: write it all now, below */
    }

    int nwait = any_waiter ? register_waiters(cn, f, n, gen) : 0;
    if (nwait < 0) {
        pthread_mutex_unlock(&cn->send_lock);
        for (unsigned i = 0; i < n; i++)
            if (f[i].w) rc_waiter_complete(f[i].w, -1);
        return CONN_FAILED;
    }

    /* Counted before they can be answered (see reader_leave), and
     * invalidations before the caller is told they are ordered. */
    if (nwait) atomic_fetch_add(&cn->waiting, nwait);
    rc_inval_ordered(cn, f, n, id0); /* n == 0 if they went to the queue */
    unsigned queued = cn->sqframes;
    int unread = atomic_fetch_add(&cn->outstanding, (int)(n + queued)) + (int)(n + queued);

    char why[160];
    bool cut_lost = false;
    int err = 0;
    int rc = write_frames(cn, fd, f, n, deadline, &err, &cut_lost, why, sizeof why);
    rc_sq_drop(cn);
    atomic_fetch_add(&c->requests, n);
    if (rc < 0) {
        if (err == ETIMEDOUT && !cut_lost)
            rc_conn_quarantine(cn, gen, why);
        else
            rc_conn_kill(cn, gen, why);
    }
    pthread_mutex_unlock(&cn->send_lock);
    /* Responses nobody waits for are read lazily (LAZY_MAX); past that,
     * make sure someone reads.  (Callers that wait read or kick themselves.) */
    if (rc == 0 && nwait < (int)(n + queued) && unread >= LAZY_MAX) rc_conn_need_reader(cn);
    return rc < 0 ? CONN_FAILED : CONN_SENT;
}

void rc_conn_flush(struct conn *cn)
{
    struct timespec deadline;
    rc_deadline_in(&deadline, cn->client->timeout_ms);
    if (atomic_load(&cn->sq_due_ns)) rc_conn_send(cn, NULL, 0, &deadline);
}
