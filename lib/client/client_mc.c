/* SPDX-License-Identifier: BSD-3-Clause */
/* A connection to a memcached server: REMOCA's frames as meta commands
 * (docs/memcached.md has the design; lib/wire/mc.c the codec).  The shared
 * connection code (client_conn.c, client_send.c, client_recv.c) calls in here
 * for a connection whose address says "memcached:" (cn->addr.mc); the rest
 * (thread, waiter table, readers, teardown) is shared.
 *
 *   frame (id)        commands, all under send_lock      memcached answers
 *   ──────────        ──────────────────────────────     ─────────────────
 *   GET/TAKE          mg K v [c] q O<id,i> ... mn       VA O<id,i> + page per hit, MN
 *   PUT               ms K 4096 q O<id,i> + page ... mn  MN (errors only otherwise)
 *   DELETE(_RANGE)    md K q O<id,i> ... mn              NF per absent key, MN
 *   DELETE_RANGE big, POOL_RESET, POOL_KEEP: new epoch, mn   MN
 *   PING              mn                                 MN
 *   CASDEL (a take's second half)  md K q C<cas> ... mn   EX/NF per refused key, MN
 *   STATS             not supported (the call fails)
 *
 * Sealed pools (opts.sealed): a value is the page || its 32-byte sidecar
 * (REMOCA_MC_SEALED_VALUE_SIZE bytes), stored as the put's payload unit
 * (client_ops.c interleaves them); a value read back lands in mc_unit and
 * is split into the caller's page and sidecar once complete.  A value of
 * any other length is dropped and counted (bad_values): a miss, never data.
 *
 * Every frame ends with exactly one mn, and memcached executes and answers a
 * connection's commands in order: the n-th MN read answers the n-th frame
 * sent.  So the reader needs no id on the wire to find a frame: ids are
 * numbered per frame from the same start on both sides (mc_rx_id), and an
 * opaque O = (id mod 2^24) << 8 | key index only lets it check that a VA
 * belongs to the frame it is reading and name the page.  A waiter is claimed
 * from the table at its frame's first VA (its pages are written from then
 * on) or at its MN, and completed at the MN.
 *
 * Epochs: keys are written with cn->mc_ns when the command is encoded, under
 * send_lock, which is when it is ordered.  A new epoch (reset) is drawn under
 * the same lock, so every command ordered before it addresses the old epoch
 * and every command after it the new one: nothing ordered before a reset can
 * be stored where a later get looks.  Any error line, parser error or
 * unexpected answer closes the connection; the reconnect draws a new epoch
 * (contract 4), so whatever the failed commands left is unreachable.  For the
 * same reason a memcached connection is never quarantined: a timeout closes
 * it (client_conn.c), and old commands memcached still executes address a
 * dead epoch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "client_conn.h"
#include "client_sock.h"

#define MC_TX_CAP (64u * 1024u) /* command text per write */
#define MC_IOVS 128
/* DELETE_RANGE of more keys than this on one server: a new epoch instead of
 * one md per key (docs/memcached.md: 64 MiB; it costs the pool's pages on
 * that server, never correctness). */
#define MC_RANGE_KEYS 16384u
#define MC_ID_MASK 0xffffffu

int rc_mc_init(struct conn *cn)
{
    cn->mc_tx = malloc(MC_TX_CAP);
    cn->mc_p = malloc(sizeof *cn->mc_p);
    if (!cn->mc_tx || !cn->mc_p) return -1;
    remoca_mc_parser_init(cn->mc_p, cn->client->sealed ? REMOCA_MC_P_SEALED : 0);
    cn->mc_unit_idx = -1;
    return 0;
}

void rc_mc_destroy(struct conn *cn)
{
    free(cn->mc_tx);
    free(cn->mc_p);
    cn->mc_tx = NULL;
    cn->mc_p = NULL;
}

/* 64 random bits, different from the epoch in use. */
static void new_epoch(struct remoca_mc_ns *ns)
{
    uint64_t e = ns->epoch;
    while (e == ns->epoch) {
        size_t got = 0;
        while (got < sizeof e) {
            ssize_t r = getrandom((uint8_t *)&e + got, sizeof e - got, 0);
            if (r > 0) got += (size_t)r;
        }
    }
    ns->epoch = e;
}

/* ---- connect ------------------------------------------------------------- */

/* Reads events of a synchronous exchange until `want` arrives: 0, or -1. */
static int hs_expect(struct conn *cn, int fd, struct remoca_mc_parser *p, enum remoca_mc_kind want,
                     const struct timespec *deadline, char *why, size_t whylen)
{
    struct rbuf *rb = &cn->rb;
    for (;;) {
        if (rb->pos == rb->end) {
            rb->pos = rb->end = 0;
            ssize_t r = rc_sock_recv(fd, rb->buf, RBUF_SIZE, deadline, cn->stop_fd);
            if (r <= 0) {
                snprintf(why, whylen, r == 0 ? "connection closed" : "no answer to the probe: %s",
                         strerror(errno));
                return -1;
            }
            rb->end = (size_t)r;
        }
        size_t used;
        struct remoca_mc_event ev;
        int r = remoca_mc_parse(p, rb->buf + rb->pos, rb->end - rb->pos, &used, &ev);
        rb->pos += used;
        if (r < 0) {
            snprintf(why, whylen, "not memcached's meta protocol: %s", remoca_mc_parser_error(p));
            return -1;
        }
        if (r == 0) continue;
        if (ev.kind != want) {
            snprintf(why, whylen, "probe answered %s%s%s, expected %s",
                     remoca_mc_kind_name(ev.kind), ev.msg && ev.msg[0] ? ": " : "",
                     ev.msg ? ev.msg : "", remoca_mc_kind_name(want));
            return -1;
        }
        return 0;
    }
}

int rc_mc_handshake(struct conn *cn, int fd, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    /* Not UP: nobody sends or reads; UP is published under send_lock. */
    cn->mc_ns.pool = remoca_mc_pool_id(c->pool, strlen(c->pool));
    new_epoch(&cn->mc_ns);
    cn->mc_rx_id = cn->next_id;
    cn->mc_w = NULL;
    cn->mc_claimed = false;
    cn->mc_unit_idx = -1;
    remoca_mc_parser_init(cn->mc_p, c->sealed ? REMOCA_MC_P_SEALED : 0);
    rc_rbuf_reset(cn);

    /* The probe: a page stored and deleted in the new namespace (block
     * 2^64-1, never a disk's), then mn.  Catches a server that is not
     * memcached, one too old for the meta protocol, an -I too small. */
    char key[REMOCA_MC_KEY_LEN];
    size_t kl = remoca_mc_key(key, sizeof key, &cn->mc_ns, UINT64_MAX);
    char line[2 * REMOCA_MC_CMD_MAX + 8];
    struct remoca_mc_cmd cmd = {.key = key, .key_len = kl};
    size_t l1 = remoca_mc_ms(line, sizeof line, &cmd, REMOCA_MC_VALUE_SIZE);
    static const uint8_t zero[REMOCA_MC_VALUE_SIZE];
    char tail[REMOCA_MC_CMD_MAX + 16];
    memcpy(tail, "\r\n", 2);
    size_t l2 = 2;
    l2 += remoca_mc_md(tail + l2, sizeof tail - l2, &cmd);
    l2 += remoca_mc_mn(tail + l2, sizeof tail - l2);
    struct iovec iov[3] = {{line, l1}, {(void *)zero, sizeof zero}, {tail, l2}};
    if (l1 == 0 || rc_sock_send(fd, iov, 3, &deadline, 0, NULL, why, whylen) < 0) return -1;
    struct remoca_mc_parser *p = cn->mc_p;
    if (hs_expect(cn, fd, p, REMOCA_MC_HD, &deadline, why, whylen) < 0 || /* ms */
        hs_expect(cn, fd, p, REMOCA_MC_HD, &deadline, why, whylen) < 0 || /* md */
        hs_expect(cn, fd, p, REMOCA_MC_MN, &deadline, why, whylen) < 0)
        return -1;
    if (cn->rb.pos != cn->rb.end) {
        snprintf(why, whylen, "memcached sent more than the probe's answers");
        return -1;
    }
    if ((c->pool_min || c->pool_max) && !cn->ever_up)
        rc_log(c, REMOCA_LOG_INFO,
               "server %s: memcached has no pools: pool min and max are ignored", cn->addr.canon);
    return 0;
}

/* ---- send ---------------------------------------------------------------- */

/* Command text and pages of one write: text runs in mc_tx, pages in place. */
struct tx {
    struct conn *cn;
    int fd;
    const struct timespec *deadline;
    size_t pos, run; /* mc_tx: bytes used; start of the text not in iov yet */
    struct iovec iov[MC_IOVS];
    int cnt;
    char why[160];
};

static void tx_close_run(struct tx *t)
{
    if (t->pos > t->run) t->iov[t->cnt++] = (struct iovec){t->cn->mc_tx + t->run, t->pos - t->run};
    t->run = t->pos;
}

static int tx_flush(struct tx *t)
{
    tx_close_run(t);
    int rc = t->cnt
                 ? rc_sock_send(t->fd, t->iov, t->cnt, t->deadline, 0, NULL, t->why, sizeof t->why)
                 : 0;
    t->pos = t->run = 0;
    t->cnt = 0;
    return rc;
}

/* Room for `bytes` of text and `iovs` more iovecs, flushing if needed. */
static int tx_room(struct tx *t, size_t bytes, int iovs)
{
    if (MC_TX_CAP - t->pos >= bytes && t->cnt + iovs + 1 <= MC_IOVS) return 0;
    return tx_flush(t);
}

static char *tx_text(struct tx *t) { return t->cn->mc_tx + t->pos; }

static void tx_page(struct tx *t, const void *page, size_t len)
{
    tx_close_run(t);
    t->iov[t->cnt++] = (struct iovec){(void *)page, len};
}

static int tx_mn(struct tx *t)
{
    if (tx_room(t, 4, 1) < 0) return -1;
    t->pos += remoca_mc_mn(tx_text(t), MC_TX_CAP - t->pos);
    return 0;
}

/* One md per key of [key, key+count) (a bitmap and CAS values: only the
 * hits, each conditional on its CAS). */
static int tx_deletes(struct tx *t, uint32_t id, uint64_t key, uint64_t count,
                      const struct rc_mc_casdel *cd)
{
    for (uint64_t i = 0; i < count; i++) {
        if (cd && !(cd->bits[i / 64] >> (i % 64) & 1)) continue;
        if (tx_room(t, REMOCA_MC_CMD_MAX, 1) < 0) return -1;
        char k[REMOCA_MC_KEY_LEN];
        size_t kl = remoca_mc_key(k, sizeof k, &t->cn->mc_ns, key + i);
        struct remoca_mc_cmd cmd = {.key = k,
                                    .key_len = kl,
                                    .flags = REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE |
                                             (cd ? REMOCA_MC_F_CMPCAS : 0),
                                    .opaque = (id & MC_ID_MASK) << 8 | (uint32_t)(i & 0xff),
                                    .cas = cd ? cd->cas[i] : 0};
        size_t l = remoca_mc_md(tx_text(t), MC_TX_CAP - t->pos, &cmd);
        if (l == 0) return -1;
        t->pos += l;
    }
    return 0;
}

static int tx_puts(struct tx *t, uint32_t id, const struct frame *f)
{
    uint32_t vlen = t->cn->client->sealed ? REMOCA_MC_SEALED_VALUE_SIZE : REMOCA_MC_VALUE_SIZE;
    for (uint32_t i = 0; i < f->count; i++) {
        if (tx_room(t, REMOCA_MC_CMD_MAX + 2, 2) < 0) return -1;
        char k[REMOCA_MC_KEY_LEN];
        size_t kl = remoca_mc_key(k, sizeof k, &t->cn->mc_ns, f->key + i);
        struct remoca_mc_cmd cmd = {.key = k,
                                    .key_len = kl,
                                    .flags = REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE,
                                    .opaque = (id & MC_ID_MASK) << 8 | i};
        size_t l = remoca_mc_ms(tx_text(t), MC_TX_CAP - t->pos, &cmd, vlen);
        if (l == 0) return -1;
        t->pos += l;
        tx_page(t, (const uint8_t *)f->payload + (size_t)i * vlen, vlen);
        memcpy(tx_text(t), "\r\n", 2); /* the value's CRLF starts the next text run */
        t->pos += 2;
    }
    return 0;
}

/* Encodes frame f (numbered id) and its mn. */
static int tx_frame(struct tx *t, uint32_t id, const struct frame *f)
{
    struct conn *cn = t->cn;
    switch (f->op) {
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE: {
        if (tx_room(t, REMOCA_MC_BATCH_BYTES(REMOCA_MAX_BATCH), 1) < 0) return -1;
        size_t l = remoca_mc_get_batch(tx_text(t), MC_TX_CAP - t->pos, &cn->mc_ns, f->key, f->count,
                                       f->op == REMOCA_OP_TAKE, (id & MC_ID_MASK) << 8);
        if (l == 0) return -1;
        t->pos += l;
        return 0; /* the batch ends with its mn */
    }
    case REMOCA_OP_PUT:
        if (tx_puts(t, id, f) < 0) return -1;
        break;
    case REMOCA_OP_DELETE_RANGE:
        if (f->count > MC_RANGE_KEYS) {
            new_epoch(&cn->mc_ns);
            break;
        }
        /* fall through */
    case REMOCA_OP_DELETE:
        if (tx_deletes(t, id, f->key, f->count, NULL) < 0) return -1;
        break;
    case RC_OP_MC_CASDEL:
        if (tx_deletes(t, id, f->key, f->count, f->payload) < 0) return -1;
        break;
    case REMOCA_OP_POOL_RESET:
    case REMOCA_OP_POOL_KEEP:
        /* memcached cannot enumerate keys: the pool's pages on this server
         * go with the epoch (POOL_KEEP: those of kept chunks too). */
        new_epoch(&cn->mc_ns);
        break;
    case REMOCA_OP_PING: break;
    default: return -1; /* STATS and the handshake ops never get here */
    }
    return tx_mn(t);
}

enum conn_send_result rc_mc_send(struct conn *cn, struct frame *f, unsigned n,
                                 const struct timespec *deadline)
{
    struct remoca_client *c = cn->client;
    if (!atomic_load_explicit(&cn->up, memory_order_acquire)) return CONN_DOWN;
    for (unsigned i = 0; i < n; i++) {
        if (f[i].op == REMOCA_OP_STATS) {
            rc_log(c, REMOCA_LOG_DEBUG, "server %s: STATS is not supported on memcached",
                   cn->addr.canon);
            return CONN_DOWN; /* nothing sent, no waiter registered */
        }
    }
    uint64_t gen0 = atomic_load(&cn->gen);
    if (rc_lock_until(&cn->send_lock, deadline) != 0) {
        rc_conn_kill(cn, gen0, "send lock timed out (server not reading)");
        return CONN_DOWN;
    }
    if (!atomic_load(&cn->up)) {
        pthread_mutex_unlock(&cn->send_lock);
        return CONN_DOWN;
    }
    int fd = cn->fd;
    uint64_t gen = atomic_load(&cn->gen);

    /* Number the frames and register their waiters before anything is
     * written: a reader may see an MN as soon as the bytes leave. */
    uint32_t id0 = cn->next_id;
    int nwait = 0;
    pthread_mutex_lock(&cn->lock);
    bool still = atomic_load(&cn->up) && atomic_load(&cn->gen) == gen;
    for (unsigned i = 0; still && i < n; i++) {
        struct waiter *w = f[i].w;
        if (!w) continue;
        w->id = id0 + i;
        w->gen = gen;
        w->conn = cn;
        w->registered = true;
        completion_add(w->comp);
        rc_table_insert(cn, w);
        nwait++;
    }
    pthread_mutex_unlock(&cn->lock);
    if (!still) {
        pthread_mutex_unlock(&cn->send_lock);
        return CONN_DOWN;
    }
    cn->next_id += n;
    if (nwait) atomic_fetch_add(&cn->waiting, nwait);
    int unread = atomic_fetch_add(&cn->outstanding, (int)n) + (int)n;

    struct tx t = {.cn = cn, .fd = fd, .deadline = deadline};
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc = tx_frame(&t, id0 + i, &f[i]);
        if (rc < 0 && !t.why[0])
            snprintf(t.why, sizeof t.why, "cannot encode a %s command",
                     f[i].op == RC_OP_MC_CASDEL ? "take's delete" : remoca_op_name(f[i].op));
    }
    if (rc == 0) rc = tx_flush(&t);
    atomic_fetch_add(&c->requests, n);
    /* Any failure may have cut a command: the stream is unusable, close it
     * (the reconnect's new epoch hides whatever was executed). */
    if (rc < 0) rc_conn_kill(cn, gen, t.why);
    pthread_mutex_unlock(&cn->send_lock);
    if (rc == 0 && nwait < (int)n && unread >= LAZY_MAX) rc_conn_need_reader(cn);
    return rc < 0 ? CONN_FAILED : CONN_SENT;
}

/* ---- receive ------------------------------------------------------------- */

/* The waiter of frame mc_rx_id, claimed once (recv_lock held). */
static struct waiter *claim(struct conn *cn)
{
    if (!cn->mc_claimed) {
        pthread_mutex_lock(&cn->lock);
        cn->mc_w = rc_table_take(cn, cn->mc_rx_id);
        pthread_mutex_unlock(&cn->lock);
        cn->mc_claimed = true;
        struct waiter *w = cn->mc_w;
        if (w && (w->op == REMOCA_OP_GET || w->op == REMOCA_OP_TAKE)) {
            memset(w->bits, 0, sizeof w->bits);
            w->nhits = 0;
        }
    }
    return cn->mc_w;
}

/* A VA: checks that it belongs to the frame being read and names the page
 * its value goes to.  0, or -1 with why. */
static int on_value(struct conn *cn, const struct remoca_mc_event *ev, char *why, size_t whylen)
{
    if (!(ev->has & REMOCA_MC_R_OPAQUE) || ev->opaque >> 8 != (cn->mc_rx_id & MC_ID_MASK)) {
        snprintf(why, whylen, "protocol error: memcached value for another request");
        return -1;
    }
    uint32_t idx = ev->opaque & 0xff;
    struct waiter *w = claim(cn);
    if (!w) return 0; /* nobody waits any more: the value is dropped */
    if ((w->op != REMOCA_OP_GET && w->op != REMOCA_OP_TAKE) || idx >= w->count ||
        (w->bits[idx / 64] >> (idx % 64) & 1)) {
        snprintf(why, whylen, "protocol error: unexpected memcached value (key %u)", idx);
        return -1;
    }
    if (w->op == REMOCA_OP_TAKE && w->cas) {
        if (!(ev->has & REMOCA_MC_R_CAS)) {
            snprintf(why, whylen, "protocol error: memcached take's value without its CAS");
            return -1;
        }
        w->cas[idx] = ev->cas;
    }
    if (w->sides && ev->size != REMOCA_MC_SEALED_VALUE_SIZE) {
        /* Not page || sidecar: dropped (no destination), a miss. */
        atomic_fetch_add(&cn->client->bad_values, 1);
        rc_log(cn->client, REMOCA_LOG_DEBUG, "%s: sealed value of %u bytes (key %u): a miss",
               cn->addr.canon, ev->size, idx);
        return 0;
    }
    if (w->sides) {
        cn->mc_unit_idx = (int)idx; /* split at its VALUE (on_event) */
        if (remoca_mc_parser_dest(cn->mc_p, cn->mc_unit, sizeof cn->mc_unit) < 0) {
            snprintf(why, whylen, "protocol error: %s", remoca_mc_parser_error(cn->mc_p));
            return -1;
        }
    } else if (remoca_mc_parser_dest(cn->mc_p, w->pages + (size_t)idx * REMOCA_PAGE_SIZE,
                                     REMOCA_PAGE_SIZE) < 0) {
        snprintf(why, whylen, "protocol error: %s", remoca_mc_parser_error(cn->mc_p));
        return -1;
    }
    w->bits[idx / 64] |= 1ull << (idx % 64);
    w->nhits++;
    return 0;
}

/* One event.  1: an MN (a frame answered); 0: go on; -1 with why. */
static int on_event(struct conn *cn, const struct remoca_mc_event *ev, char *why, size_t whylen)
{
    switch (ev->kind) {
    case REMOCA_MC_VA: return on_value(cn, ev, why, whylen);
    case REMOCA_MC_VALUE:
        if (cn->mc_unit_idx >= 0) { /* a sealed value complete: page, sidecar */
            struct waiter *w = cn->mc_w;
            size_t i = (size_t)cn->mc_unit_idx;
            cn->mc_unit_idx = -1;
            if (w) {
                memcpy(w->pages + i * REMOCA_PAGE_SIZE, cn->mc_unit, REMOCA_PAGE_SIZE);
                memcpy(w->sides + i * REMOCA_SIDE_SIZE, cn->mc_unit + REMOCA_PAGE_SIZE,
                       REMOCA_SIDE_SIZE);
            }
        }
        return 0;
    case REMOCA_MC_NF: /* a delete of an absent key */
    case REMOCA_MC_EX: /* a take's delete refused: the page changed since */ return 0;
    case REMOCA_MC_MN: {
        struct waiter *w = claim(cn);
        cn->mc_w = NULL;
        cn->mc_claimed = false;
        cn->mc_rx_id++;
        rc_outstanding_dec(cn);
        if (w) rc_waiter_complete(w, 0);
        return 1;
    }
    case REMOCA_MC_ERROR:
    case REMOCA_MC_CLIENT_ERROR:
    case REMOCA_MC_SERVER_ERROR:
        snprintf(why, whylen, "memcached: %s%s%s", remoca_mc_kind_name(ev->kind),
                 ev->msg && ev->msg[0] ? " " : "", ev->msg ? ev->msg : "");
        return -1;
    default: /* HD, EN, NS: quiet commands never answer so */
        snprintf(why, whylen, "protocol error: unexpected %s from memcached",
                 remoca_mc_kind_name(ev->kind));
        return -1;
    }
}

int rc_mc_recv_one(struct conn *cn, int fd, char *why, size_t whylen)
{
    int ready = rc_wait_frame(cn, fd, NULL);
    if (ready <= 0) {
        if (ready < 0) snprintf(why, whylen, "connection closed");
        return ready < 0 ? -1 : 1;
    }
    struct rbuf *rb = &cn->rb;
    for (;;) {
        if (rb->pos == rb->end) {
            /* Between frames, or only a dropped value pending: return, the
             * caller decides whether to wait.  Inside a claimed frame: its
             * waiter's pages are being written, read on. */
            if (!cn->mc_claimed) return 0;
            if (rc_rbuf_fill(cn, fd) < 0) {
                snprintf(why, whylen, "connection closed");
                goto fail;
            }
        }
        size_t used;
        struct remoca_mc_event ev;
        int r = remoca_mc_parse(cn->mc_p, rb->buf + rb->pos, rb->end - rb->pos, &used, &ev);
        rb->pos += used;
        if (r < 0) {
            snprintf(why, whylen, "protocol error from memcached: %s",
                     remoca_mc_parser_error(cn->mc_p));
            goto fail;
        }
        if (r == 0) continue;
        r = on_event(cn, &ev, why, whylen);
        if (r < 0) goto fail;
        if (r == 1) return 0;
    }
fail:
    /* The stream is given up: the parser forgets the page it was writing
     * and fails from now on, the buffer is dropped, so nothing more is
     * decoded (into a page whose caller may be gone) until the next
     * connect starts afresh.  Then out of service, then the claimed waiter
     * fails. */
    cn->mc_p->dest = NULL;
    if (!cn->mc_p->err) {
        cn->mc_p->err = REMOCA_MC_E_STATE;
        snprintf(cn->mc_p->why, sizeof cn->mc_p->why, "connection given up");
    }
    rc_rbuf_reset(cn);
    if (cn->mc_claimed) {
        struct waiter *w = cn->mc_w;
        cn->mc_w = NULL;
        cn->mc_claimed = false;
        if (w) {
            rc_conn_kill(cn, w->gen, why);
            rc_waiter_complete(w, -1);
        }
    }
    return -1;
}
