/* SPDX-License-Identifier: BSD-3-Clause */
/* The receive side of a connection: the waiter table, the buffered reader,
 * and the decoding of one response into its waiter (see client_conn.c for
 * who reads and when).  The reader functions run with recv_lock held; the
 * table operations with cn->lock held.
 *
 * The buffered reader: small frames come out of a 64 KiB buffer filled by one
 * recv(); big payloads -- a GET's hit pages -- are read straight into the
 * caller's page buffer with readv once the buffer is drained.
 *
 *   socket ──recv──▶ rb.buf [pos ... end) ──memcpy──▶ header, bitmap
 *          ──readv──────────────────────────────────▶ caller's pages
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_conn.h"
#include "client_sock.h"

/* ---- waiter table (caller holds cn->lock) ------------------------------ */

void rc_table_insert(struct conn *cn, struct waiter *w)
{
    struct waiter **b = &cn->table[w->id % CONN_BUCKETS];
    w->next = *b;
    *b = w;
}

struct waiter *rc_table_take(struct conn *cn, uint32_t id)
{
    for (struct waiter **p = &cn->table[id % CONN_BUCKETS]; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct waiter *w = *p;
            *p = w->next;
            atomic_fetch_sub(&cn->waiting, 1);
            return w;
        }
    }
    return NULL;
}

/* Completes a waiter.  Afterwards the waiter may no longer exist. */
void rc_waiter_complete(struct waiter *w, int result)
{
    w->result = result;
    atomic_store_explicit(&w->done, true, memory_order_release);
    rc_completion_done(w->comp);
}

/* ---- buffered reader (recv_lock holder only) --------------------------- */

void rc_rbuf_reset(struct conn *cn) { cn->rb.pos = cn->rb.end = 0; }

/* After SO_RCVTIMEO expired in the middle of a frame: keep waiting, unless
 * the connection was quarantined meanwhile (then a response is stuck half
 * way and the connection is given up) -- except while draining, when
 * waiting is all there is to do. */
static bool recv_idle(struct conn *cn)
{
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    if (cn->draining) return true;
    if (cn->reader_deadline && rc_deadline_left_ms(cn->reader_deadline) == 0) {
        /* A caller reading for itself, past its deadline, mid-frame. */
        rc_conn_quarantine(cn, atomic_load(&cn->gen), "request timed out");
        return false;
    }
    return !atomic_load(&cn->quarantined);
}

/* Reads exactly n bytes: from the buffer first, then straight into dst for
 * big remainders, else via the buffer.  deadline NULL = block. */
int rc_rbuf_read(struct conn *cn, int fd, void *dst, size_t n, const struct timespec *deadline)
{
    struct rbuf *rb = &cn->rb;
    uint8_t *d = dst;
    int stop_fd = cn->stop_fd;
    while (n > 0) {
        size_t avail = rb->end - rb->pos;
        if (avail) {
            size_t c = avail < n ? avail : n;
            memcpy(d, rb->buf + rb->pos, c);
            rb->pos += c;
            d += c;
            n -= c;
            continue;
        }
        rb->pos = rb->end = 0;
        ssize_t r;
        if (n >= RBUF_SIZE / 2) {
            r = rc_sock_recv(fd, d, n, deadline, stop_fd);
            if (r > 0) d += r, n -= (size_t)r;
        } else {
            r = rc_sock_recv(fd, rb->buf, RBUF_SIZE, deadline, stop_fd);
            if (r > 0) rb->end = (size_t)r;
        }
        if (r < 0 && !deadline && recv_idle(cn)) continue;
        if (r <= 0) return -1;
    }
    return 0;
}

int rc_rbuf_fill(struct conn *cn, int fd)
{
    struct rbuf *rb = &cn->rb;
    if (rb->end > rb->pos) return 0;
    rb->pos = rb->end = 0;
    for (;;) {
        ssize_t r = rc_sock_recv(fd, rb->buf, RBUF_SIZE, NULL, cn->stop_fd);
        if (r > 0) {
            rb->end = (size_t)r;
            return 0;
        }
        if (r < 0 && recv_idle(cn)) continue;
        return -1;
    }
}

static int rbuf_skip(struct conn *cn, int fd, size_t n)
{
    uint8_t tmp[4096];
    while (n > 0) {
        size_t c = n < sizeof tmp ? n : sizeof tmp;
        if (rc_rbuf_read(cn, fd, tmp, c, NULL) < 0) return -1;
        n -= c;
    }
    return 0;
}

/* Fills iov[0..cnt) completely: buffered bytes first, then readv directly. */
static int rbuf_readv(struct conn *cn, int fd, struct iovec *iov, int cnt)
{
    struct rbuf *rb = &cn->rb;
    while (cnt > 0 && rb->end > rb->pos) {
        size_t avail = rb->end - rb->pos;
        size_t c = avail < iov->iov_len ? avail : iov->iov_len;
        memcpy(iov->iov_base, rb->buf + rb->pos, c);
        rb->pos += c;
        rc_iov_advance(&iov, &cnt, c);
    }
    while (cnt > 0) {
        ssize_t r = rc_sock_readv(fd, iov, cnt);
        if (r < 0 && recv_idle(cn)) continue;
        if (r <= 0) return -1;
        rc_iov_advance(&iov, &cnt, (size_t)r);
    }
    return 0;
}

/* ---- receive loop ------------------------------------------------------ */

/* Ops whose failure may leave stale pages on the server: a lost
 * invalidation, or a PUT batch the server stopped executing part way (keys
 * after the failing one may keep older pages).  Their error replies tear the
 * connection down, so the pool is reset before it is used again. */
static void reset_on_error(struct conn *cn, uint8_t op, uint16_t status)
{
    if (!rc_op_invalidates(op) && op != REMOCA_OP_PUT) return;
    char msg[200];
    snprintf(msg, sizeof msg, "%s failed: %s", remoca_op_name(op), remoca_status_name(status));
    rc_conn_quarantine(cn, atomic_load(&cn->gen), msg);
}

/* Reads a GET/TAKE payload: bitmap, then hit pages into the caller's buffer;
 * in a sealed pool each hit page followed by its sidecar, read into the
 * caller's sidecar buffer (alternating iovecs: page, sidecar, page, ...). */
static int recv_pages(struct conn *cn, int fd, struct waiter *w, const struct remoca_hdr *h,
                      char *why, size_t whylen)
{
    uint8_t bm[REMOCA_BITMAP_WORDS * 8];
    uint32_t bmlen = remoca_bitmap_bytes(w->count);
    if (rc_rbuf_read(cn, fd, bm, bmlen, NULL) < 0) goto closed;
    unsigned nhits = 0;
    for (unsigned i = 0; i < bmlen / 8; i++) {
        w->bits[i] = remoca_get_le64(bm + 8 * i);
        nhits += (unsigned)__builtin_popcountll(w->bits[i]);
    }
    unsigned tail = w->count % 64;
    if (tail && (w->bits[bmlen / 8 - 1] >> tail)) {
        snprintf(why, whylen, "protocol error: hit bit beyond count in %s response",
                 remoca_op_name(w->op));
        return -1;
    }
    bool sealed = w->sides != NULL;
    uint32_t unit = remoca_unit_size(sealed);
    if (nhits != (h->len - bmlen) / unit) {
        snprintf(why, whylen, "protocol error: %u hit bits but %u pages in %s response", nhits,
                 (h->len - bmlen) / unit, remoca_op_name(w->op));
        return -1;
    }
    struct iovec iov[2 * REMOCA_MAX_BATCH];
    int cnt = 0;
    for (unsigned wi = 0; wi < bmlen / 8; wi++) {
        uint64_t b = w->bits[wi];
        while (b) {
            unsigned i = wi * 64 + (unsigned)__builtin_ctzll(b);
            b &= b - 1;
            iov[cnt].iov_base = w->pages + (size_t)i * REMOCA_PAGE_SIZE;
            iov[cnt].iov_len = REMOCA_PAGE_SIZE;
            cnt++;
            if (sealed) {
                iov[cnt].iov_base = w->sides + (size_t)i * REMOCA_SIDE_SIZE;
                iov[cnt].iov_len = REMOCA_SIDE_SIZE;
                cnt++;
            }
        }
    }
    if (cnt && rbuf_readv(cn, fd, iov, cnt) < 0) goto closed;
    w->nhits = nhits;
    return 0;
closed:
    snprintf(why, whylen, "connection closed");
    return -1;
}

/* One response read: one less outstanding (never below zero: responses
 * from before a quarantine recovery may come late, uncounted). */
void rc_outstanding_dec(struct conn *cn)
{
    int v = atomic_load(&cn->outstanding);
    while (v > 0 && !atomic_compare_exchange_weak(&cn->outstanding, &v, v - 1))
        ;
}

/* Waits for the start of the next frame (recv_lock held).  1: data
 * buffered; 0: the connection was quarantined, or nothing is outstanding any
 * more; -1: closed or failed.  With a deadline (a caller reading for
 * itself), 0 also when it passes. */
int rc_wait_frame(struct conn *cn, int fd, const struct timespec *deadline)
{
    struct rbuf *rb = &cn->rb;
    while (rb->end == rb->pos) {
        if (atomic_load(&cn->quarantined)) return 0;
        if (deadline && rc_deadline_left_ms(deadline) == 0) return 0;
        rb->pos = rb->end = 0;
        /* A blocking recv, one syscall per response; SO_RCVTIMEO bounds it,
         * so a deadline is noticed within timeout/4 (at most 250 ms). */
        ssize_t r = rc_sock_recv(fd, rb->buf, RBUF_SIZE, NULL, -1);
        if (r > 0) {
            rb->end = (size_t)r;
            break;
        }
        if (r == 0) return -1;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (!deadline && atomic_load(&cn->outstanding) <= 0) return 0;
    }
    return 1;
}

/* Reads a response nobody waits for and skips it.  Returns its header. */
int rc_skip_frame(struct conn *cn, int fd, struct remoca_hdr *h, char *why, size_t whylen)
{
    enum remoca_status st = remoca_resp_check_sealed(h, h->op, h->count, cn->client->sealed);
    if (st != REMOCA_OK) {
        snprintf(why, whylen, "protocol error: bad %s response id %u (%s)", remoca_op_name(h->op),
                 h->id, remoca_status_name(st));
        return -1;
    }
    if (rbuf_skip(cn, fd, h->len) < 0) {
        snprintf(why, whylen, "connection closed");
        return -1;
    }
    return 0;
}

/* A response nobody waits for (a no-wait request's, or one whose caller gave
 * up): skipped; an error status counts as a failure and may reset the pool.
 * 0, or -1 when the connection must go. */
static int recv_unwaited(struct conn *cn, int fd, struct remoca_hdr *h, int taken,
                         const struct inval_rec *rec, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    if (rc_skip_frame(cn, fd, h, why, whylen) < 0) return -1;
    if (h->flags != REMOCA_OK) {
        atomic_fetch_add(&c->failures, 1);
        rc_log(c, REMOCA_LOG_DEBUG, "%s: %s: %s", cn->addr.canon, remoca_op_name(h->op),
               remoca_status_name(h->flags));
        reset_on_error(cn, h->op, h->flags);
    }
    rc_inval_answered(cn, taken, rec);
    return 0;
}

/* An error reply to a waited request: its message read and logged, the
 * waiter failed.  0, or -1 when the connection must go (then the waiter is
 * failed after the connection was killed). */
static int recv_error_reply(struct conn *cn, int fd, struct waiter *w, const struct remoca_hdr *h,
                            int taken, const struct inval_rec *rec, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    char msg[REMOCA_MAX_ERRMSG + 1];
    if (rc_rbuf_read(cn, fd, msg, h->len, NULL) < 0) {
        snprintf(why, whylen, "connection closed");
        rc_conn_kill(cn, w->gen, why);
        rc_waiter_complete(w, -1);
        return -1;
    }
    msg[h->len] = '\0';
    w->status = h->flags;
    uint8_t op = w->op;
    rc_log(c, REMOCA_LOG_DEBUG, "%s: %s: %s%s%s", cn->addr.canon, remoca_op_name(op),
           remoca_status_name(h->flags), msg[0] ? ": " : "", msg);
    reset_on_error(cn, op, h->flags);
    rc_inval_answered(cn, taken, rec);
    rc_waiter_complete(w, -1);
    return 0;
}

/* A STATS reply's text into w->text (malloc'd).  0: read (or, out of
 * memory, skipped with the waiter already failed: *done set); -1: the
 * connection must go (waiter failed). */
static int recv_stats_text(struct conn *cn, int fd, struct waiter *w, const struct remoca_hdr *h,
                           bool *done, char *why, size_t whylen)
{
    w->text = malloc((size_t)h->len + 1);
    if (!w->text) {
        rc_waiter_complete(w, -1);
        *done = true;
        if (rbuf_skip(cn, fd, h->len) < 0) {
            snprintf(why, whylen, "connection closed");
            return -1;
        }
        return 0;
    }
    if (rc_rbuf_read(cn, fd, w->text, h->len, NULL) < 0) {
        free(w->text);
        w->text = NULL;
        rc_waiter_complete(w, -1);
        snprintf(why, whylen, "connection closed");
        return -1;
    }
    w->text[h->len] = '\0';
    return 0;
}

/* Handles one response.  0: go on; 1: quarantined, drain; -1 (with why):
 * the connection must go. */
int rc_recv_one(struct conn *cn, int fd, char *why, size_t whylen)
{
    if (cn->addr.mc) return rc_mc_recv_one(cn, fd, why, whylen); /* client_mc.c */
    uint8_t hb[REMOCA_HDR_SIZE];
    struct remoca_hdr h;
    int ready = rc_wait_frame(cn, fd, NULL);
    if (ready <= 0) {
        if (ready < 0) snprintf(why, whylen, "connection closed");
        return ready < 0 ? -1 : 1;
    }
    if (rc_rbuf_read(cn, fd, hb, sizeof hb, NULL) < 0) {
        snprintf(why, whylen, "connection closed");
        return -1;
    }
    remoca_hdr_decode(hb, &h);
    rc_outstanding_dec(cn);

    pthread_mutex_lock(&cn->lock);
    struct waiter *w = rc_table_take(cn, h.id);
    struct inval_rec rec;
    int taken = rc_inval_take(cn, &h, &rec);
    pthread_mutex_unlock(&cn->lock);

    /* An invalidation answered with another op, key or count than sent: the
     * server is out of step; its answers cannot say what executed. */
    if (taken == 1 && rc_inval_check_echo(&rec, &h, why, whylen) < 0) {
        if (w) {
            rc_conn_kill(cn, w->gen, why);
            rc_waiter_complete(w, -1);
        }
        return -1;
    }
    if (!w) return recv_unwaited(cn, fd, &h, taken, &rec, why, whylen);

    /* A waiter that fails is failed only once the connection is out of
     * service (UP cleared): a caller told that its delete failed must not
     * find one-sided reads still copying what that delete left behind
     * (client_shm.c).  Hence quarantine or kill first, complete after. */
    enum remoca_status st = remoca_resp_check_sealed(&h, w->op, w->count, cn->client->sealed);
    if (st != REMOCA_OK) {
        snprintf(why, whylen, "protocol error in %s response: %s", remoca_op_name(w->op),
                 remoca_status_name(st));
        rc_conn_kill(cn, w->gen, why);
        rc_waiter_complete(w, -1);
        return -1;
    }
    if (h.flags != REMOCA_OK) return recv_error_reply(cn, fd, w, &h, taken, &rec, why, whylen);

    bool done = false;
    switch (w->op) {
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE:
        if (recv_pages(cn, fd, w, &h, why, whylen) < 0) {
            rc_waiter_complete(w, -1);
            return -1;
        }
        break;
    case REMOCA_OP_STATS:
        if (recv_stats_text(cn, fd, w, &h, &done, why, whylen) < 0) return -1;
        if (done) return 0;
        break;
    default: break; /* resp_check guaranteed no payload */
    }
    rc_inval_answered(cn, taken, &rec); /* before the caller of a waited delete returns */
    rc_waiter_complete(w, 0);
    return 0;
}
