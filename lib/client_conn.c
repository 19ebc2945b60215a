/* One connection to one memory server: its thread, its waiter table, its
 * send path.  (See client_internal.h for the picture.)
 *
 * The connection thread runs this state machine for the life of the client:
 *
 *      ┌──────────┐ connect ok  ┌───────────┐ HELLO, POOL_OPEN,  ┌──────┐
 *   ┌─▶│ DOWN     │────────────▶│ HANDSHAKE │──POOL_RESET ok────▶│  UP  │◀───────┐
 *   │  │ (backoff │◀────────────│ (timeout) │                    │ recv │        │
 *   │  │ 50ms..2s)│   failure   └───────────┘                    │ loop │        │
 *   │  └──────────┘                                              └┬──┬──┘        │
 *   │                   timeout, send stall, failed invalidation  │  │  POOL_RESET│
 *   │                          ┌──────────────────────────────────┘  │  answered  │
 *   │                          ▼                                     │            │
 *   │                   ┌─────────────┐  send rest of a cut frame,   │            │
 *   │                   │ QUARANTINE  │  then POOL_RESET on the same ├────────────┘
 *   │                   │ (misses)    │  connection; skip replies    │
 *   │                   └──────┬──────┘                              │
 *   └── teardown: fail every ◀─┴── EOF, socket error, protocol error ┘
 *       waiter, close             (the server process is gone or broken)
 *
 * Only UP connections accept frames, and a connection becomes UP only after
 * its pool has been reset (DESIGN.md cache contract 4), on the first connect
 * too: a previous incarnation of this client may have left stale pages.
 *
 * Why QUARANTINE rather than closing on a timeout: a hung server (stopped,
 * overloaded) still holds the requests we sent in its socket buffer and
 * executes them when it resumes.  Had we closed and reconnected, those old
 * puts could execute *after* the new connection's pool reset (different
 * connections run on different server threads) and bring back pages whose
 * invalidation was lost.  On the same connection, the server executes in
 * order, so a POOL_RESET sent behind the old requests runs after all of
 * them.  Callers see misses meanwhile, exactly as with a closed connection.
 * A frame cut by a send timeout is completed from a copy (the caller's
 * buffer is gone) so the stream stays well formed.  A dead server (EOF,
 * reset, keepalive failure) executes nothing more, so closing is safe then.
 *
 * Receive path: header from the buffered reader, waiter claimed from the
 * table by id (under `lock`), then the payload goes straight where it
 * belongs: a GET's hit pages into the caller's buffer (readv for what is not
 * buffered yet), a STATS reply into a malloc'd string.  Responses nobody
 * waits for (no-wait puts/deletes, and requests whose callers gave up) are
 * validated and skipped.  An error reply to an invalidation (DELETE,
 * DELETE_RANGE, POOL_RESET) or to a PUT quarantines the connection, because a
 * lost invalidation (or a half-executed put batch that left older pages
 * behind) must not be followed by gets on the same pool state.
 *
 * Who reads: whoever holds recv_lock.  A caller waiting on one connection
 * takes the reader role itself when it is free (conn_read_until), so the
 * server's answer wakes the caller directly: at queue depth 1 a round trip
 * costs no thread hop.  It reads other callers' responses too, until its own
 * arrives, then leaves; if responses are still outstanding, the connection
 * thread takes over (kick).  The connection thread otherwise sleeps until
 * kicked (no-wait frames, a quarantine, a kill) and reads while `outstanding`
 * > 0; every 250 ms it also peeks at an idle socket for EOF.
 *
 *   caller: send ─▶ trylock(recv_lock)? ─yes─▶ read frames, complete waiters
 *                        │no                   until ours is done ─▶ leave:
 *                        ▼                     outstanding > 0 ? kick thread
 *                   sleep on completion ◀──── (reader completes ours)
 *
 * The socket has SO_RCVTIMEO (timeout/4, at most 250 ms) so a reader blocked
 * in recv notices a quarantine, or its own deadline.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_internal.h"
#include "client_sock.h"

#define AUTH_NONCE_BYTES 16u /* docs/protocol.md, Authentication */

/* ---- waiter table (caller holds cn->lock) ------------------------------ */

static void table_insert(struct conn *cn, struct waiter *w)
{
    struct waiter **b = &cn->table[w->id % CONN_BUCKETS];
    w->next = *b;
    *b = w;
    cn->inflight++;
}

static struct waiter *table_take(struct conn *cn, uint32_t id)
{
    for (struct waiter **p = &cn->table[id % CONN_BUCKETS]; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct waiter *w = *p;
            *p = w->next;
            cn->inflight--;
            return w;
        }
    }
    return NULL;
}

/* Completes a waiter.  Afterwards the waiter may no longer exist. */
static void complete(struct waiter *w, int result)
{
    w->result = result;
    atomic_store_explicit(&w->done, true, memory_order_release);
    completion_done(w->comp);
}

/* ---- buffered reader (connection thread only) -------------------------- */

static void rbuf_reset(struct conn *cn)
{
    cn->rb.pos = cn->rb.end = 0;
}

/* After SO_RCVTIMEO expired in the middle of a frame: keep waiting, unless
 * the connection was quarantined meanwhile (then a response is stuck half
 * way and the connection is given up) -- except while draining, when
 * waiting is all there is to do. */
static bool recv_idle(struct conn *cn)
{
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    if (cn->draining) return true;
    if (cn->reader_deadline && deadline_left_ms(cn->reader_deadline) == 0) {
        /* A caller reading for itself, past its deadline, mid-frame. */
        conn_quarantine(cn, atomic_load(&cn->gen), "request timed out");
        return false;
    }
    return !atomic_load(&cn->quarantined);
}

/* Reads exactly n bytes: from the buffer first, then straight into dst for
 * big remainders, else via the buffer.  deadline NULL = block. */
static int rbuf_read(struct conn *cn, int fd, void *dst, size_t n, const struct timespec *deadline)
{
    struct rbuf *rb = &cn->rb;
    uint8_t *d = dst;
    int stop_fd = cn->client->stop_fd;
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
            r = sock_recv(fd, d, n, deadline, stop_fd);
            if (r > 0) d += r, n -= (size_t)r;
        } else {
            r = sock_recv(fd, rb->buf, RBUF_SIZE, deadline, stop_fd);
            if (r > 0) rb->end = (size_t)r;
        }
        if (r < 0 && !deadline && recv_idle(cn)) continue;
        if (r <= 0) return -1;
    }
    return 0;
}

static int rbuf_skip(struct conn *cn, int fd, size_t n)
{
    uint8_t tmp[4096];
    while (n > 0) {
        size_t c = n < sizeof tmp ? n : sizeof tmp;
        if (rbuf_read(cn, fd, tmp, c, NULL) < 0) return -1;
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
        iov->iov_base = (uint8_t *)iov->iov_base + c;
        iov->iov_len -= c;
        if (iov->iov_len == 0) iov++, cnt--;
    }
    while (cnt > 0) {
        ssize_t r = sock_readv(fd, iov, cnt);
        if (r < 0 && recv_idle(cn)) continue;
        if (r <= 0) return -1;
        size_t n = (size_t)r;
        while (cnt > 0 && n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return 0;
}

/* ---- handshake --------------------------------------------------------- */

/* One synchronous request on a connection that is not UP yet.  0: OK;
 * 1: the server answered with an error status (resp->flags, its message in
 * msg); -1: transport or protocol failure (reason in why). */
static int hs_call(struct conn *cn, int fd, uint8_t op, uint32_t pool, const void *body,
                   uint32_t len, const struct timespec *deadline, struct remoca_hdr *resp,
                   char msg[REMOCA_MAX_ERRMSG + 1], char *why, size_t whylen)
{
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION, .op = op,
                           .id = cn->next_id++, .pool = pool, .len = len};
    uint8_t hb[REMOCA_HDR_SIZE];
    remoca_hdr_encode(hb, &h);
    struct iovec iov[2] = {{hb, sizeof hb}, {(void *)body, len}};
    msg[0] = '\0';
    if (sock_send(fd, iov, len ? 2 : 1, deadline, NULL, why, whylen) < 0) return -1;
    if (rbuf_read(cn, fd, hb, sizeof hb, deadline) < 0) goto recv_fail;
    remoca_hdr_decode(hb, resp);
    enum remoca_status st = remoca_resp_check(resp, op, 0);
    if (st != REMOCA_OK || resp->id != h.id) {
        snprintf(why, whylen, "bad %s response: %s", remoca_op_name(op),
                 st != REMOCA_OK ? remoca_status_name(st) : "wrong id");
        return -1;
    }
    if (resp->flags != REMOCA_OK) {
        if (rbuf_read(cn, fd, msg, resp->len, deadline) < 0) goto recv_fail;
        msg[resp->len] = '\0';
        snprintf(why, whylen, "%s refused: %s%s%s", remoca_op_name(op),
                 remoca_status_name(resp->flags), msg[0] ? ": " : "", msg);
        return 1;
    }
    return 0;
recv_fail:
    snprintf(why, whylen, "%s: %s", remoca_op_name(op),
             errno == ETIMEDOUT ? "no response (timed out)"
             : errno == ECANCELED ? "client stopping"
                                  : "connection closed by server");
    return -1;
}

/* Parses "challenge <32 hex digits>" (docs/protocol.md, Authentication). */
static bool parse_challenge(const char *msg, uint8_t nonce[AUTH_NONCE_BYTES])
{
    static const char prefix[] = "challenge ";
    if (strncmp(msg, prefix, sizeof prefix - 1) != 0) return false;
    const char *hex = msg + sizeof prefix - 1;
    if (strlen(hex) != 2 * AUTH_NONCE_BYTES) return false;
    for (unsigned i = 0; i < AUTH_NONCE_BYTES; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
            !isxdigit((unsigned char)hex[2 * i + 1]))
            return false;
        nonce[i] = (uint8_t)v;
    }
    return true;
}

/* HELLO, answering the server's challenge when it requires a secret:
 * credential = HMAC-SHA256(key = secret, message = nonce || name). */
static int hello(struct conn *cn, int fd, const struct timespec *deadline, char *why,
                 size_t whylen)
{
    struct remoca_client *c = cn->client;
    uint8_t body[4 + 2 * REMOCA_MAX_NAME];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    size_t name_len = strlen(c->name);
    struct remoca_hdr resp;
    char msg[REMOCA_MAX_ERRMSG + 1];
    for (int attempt = 0; attempt < 2; attempt++) {
        struct remoca_hello hb = {.name = c->name, .name_len = name_len, .cred = mac,
                                  .cred_len = mac_len};
        size_t len = remoca_hello_encode(body, sizeof body, &hb);
        if (len == 0) {
            snprintf(why, whylen, "cannot encode HELLO");
            return -1;
        }
        int r = hs_call(cn, fd, REMOCA_OP_HELLO, 0, body, (uint32_t)len, deadline, &resp, msg, why,
                        whylen);
        if (r <= 0) return r;
        uint8_t nonce[AUTH_NONCE_BYTES];
        if (resp.flags == REMOCA_E_AUTH && attempt > 0) {
            snprintf(why, whylen, "authentication failed (wrong secret?)");
            return -1;
        }
        if (resp.flags != REMOCA_E_AUTH || !parse_challenge(msg, nonce))
            return -1; /* why says what the server refused */
        if (c->secret_len == 0) {
            snprintf(why, whylen, "the server requires a secret (none configured)");
            return -1;
        }
        uint8_t m[AUTH_NONCE_BYTES + REMOCA_MAX_NAME];
        memcpy(m, nonce, AUTH_NONCE_BYTES);
        memcpy(m + AUTH_NONCE_BYTES, c->name, name_len);
        if (!HMAC(EVP_sha256(), c->secret, (int)c->secret_len, m, AUTH_NONCE_BYTES + name_len, mac,
                  &mac_len)) {
            snprintf(why, whylen, "HMAC-SHA256 failed");
            return -1;
        }
    }
    return -1;
}

static int handshake(struct conn *cn, int fd, uint32_t *pool, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    struct timespec deadline;
    deadline_in(&deadline, c->timeout_ms);
    struct remoca_hdr resp;
    char msg[REMOCA_MAX_ERRMSG + 1];
    uint8_t body[4 + 2 * REMOCA_MAX_NAME + 32];

    if (hello(cn, fd, &deadline, why, whylen) != 0) return -1;

    struct remoca_pool_open po = {.min_bytes = c->pool_min, .max_bytes = c->pool_max,
                                  .weight = c->pool_weight, .name = c->pool,
                                  .name_len = strlen(c->pool)};
    size_t len = remoca_pool_open_encode(body, sizeof body, &po);
    if (len == 0 || hs_call(cn, fd, REMOCA_OP_POOL_OPEN, 0, body, (uint32_t)len, &deadline, &resp,
                            msg, why, whylen) != 0)
        return -1;
    *pool = resp.pool;

    return hs_call(cn, fd, REMOCA_OP_POOL_RESET, *pool, NULL, 0, &deadline, &resp, msg, why,
                   whylen) == 0 ? 0 : -1;
}

/* ---- receive loop ------------------------------------------------------ */

/* Ops whose failure may leave stale pages on the server: a lost
 * invalidation, or a PUT batch the server stopped executing part way (keys
 * after the failing one may keep older pages).  Their error replies tear the
 * connection down, so the pool is reset before it is used again. */
static bool must_reset_on_error(uint8_t op)
{
    return op == REMOCA_OP_DELETE || op == REMOCA_OP_DELETE_RANGE ||
           op == REMOCA_OP_POOL_RESET || op == REMOCA_OP_PUT;
}

/* Reads a GET/TAKE payload: bitmap, then hit pages into the caller's buffer. */
static int recv_pages(struct conn *cn, int fd, struct waiter *w, const struct remoca_hdr *h,
                      char *why, size_t whylen)
{
    uint8_t bm[REMOCA_BITMAP_WORDS * 8];
    uint32_t bmlen = remoca_bitmap_bytes(w->count);
    if (rbuf_read(cn, fd, bm, bmlen, NULL) < 0) goto closed;
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
    if (nhits != (h->len - bmlen) / REMOCA_PAGE_SIZE) {
        snprintf(why, whylen, "protocol error: %u hit bits but %u pages in %s response", nhits,
                 (h->len - bmlen) / REMOCA_PAGE_SIZE, remoca_op_name(w->op));
        return -1;
    }
    struct iovec iov[REMOCA_MAX_BATCH];
    int cnt = 0;
    for (unsigned wi = 0; wi < bmlen / 8; wi++) {
        uint64_t b = w->bits[wi];
        while (b) {
            unsigned i = wi * 64 + (unsigned)__builtin_ctzll(b);
            b &= b - 1;
            iov[cnt].iov_base = w->pages + (size_t)i * REMOCA_PAGE_SIZE;
            iov[cnt].iov_len = REMOCA_PAGE_SIZE;
            cnt++;
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
static void outstanding_dec(struct conn *cn)
{
    int v = atomic_load(&cn->outstanding);
    while (v > 0 && !atomic_compare_exchange_weak(&cn->outstanding, &v, v - 1))
        ;
}

/* Waits for the start of the next frame (recv_lock held).  1: data
 * buffered; 0: the connection was quarantined, or nothing is outstanding any
 * more; -1: closed or failed.  With a deadline (a caller reading for
 * itself), 0 also when it passes. */
static int wait_frame(struct conn *cn, int fd, const struct timespec *deadline)
{
    struct rbuf *rb = &cn->rb;
    while (rb->end == rb->pos) {
        if (atomic_load(&cn->quarantined)) return 0;
        if (deadline && deadline_left_ms(deadline) == 0) return 0;
        rb->pos = rb->end = 0;
        /* A blocking recv, one syscall per response; SO_RCVTIMEO bounds it,
         * so a deadline is noticed within timeout/4 (at most 250 ms). */
        ssize_t r = sock_recv(fd, rb->buf, RBUF_SIZE, NULL, -1);
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

static void quarantine_locked(struct conn *cn, const char *why, struct waiter **list);
static void complete_list(struct waiter *list);

/* Reads a response nobody waits for and skips it.  Returns its header. */
static int skip_frame(struct conn *cn, int fd, struct remoca_hdr *h, char *why, size_t whylen)
{
    enum remoca_status st = remoca_resp_check(h, h->op, h->count);
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

/* Handles one response.  0: go on; 1: quarantined, drain; -1 (with why):
 * the connection must go. */
static int recv_one(struct conn *cn, int fd, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    uint8_t hb[REMOCA_HDR_SIZE];
    struct remoca_hdr h;
    int ready = wait_frame(cn, fd, NULL);
    if (ready <= 0) {
        if (ready < 0) snprintf(why, whylen, "connection closed");
        return ready < 0 ? -1 : 1;
    }
    if (rbuf_read(cn, fd, hb, sizeof hb, NULL) < 0) {
        snprintf(why, whylen, "connection closed");
        return -1;
    }
    remoca_hdr_decode(hb, &h);
    outstanding_dec(cn);

    pthread_mutex_lock(&cn->lock);
    struct waiter *w = table_take(cn, h.id);
    pthread_mutex_unlock(&cn->lock);

    if (!w) {
        /* A no-wait request's response, or one whose caller gave up. */
        if (skip_frame(cn, fd, &h, why, whylen) < 0) return -1;
        if (h.flags != REMOCA_OK) {
            atomic_fetch_add(&c->failures, 1);
            client_log(c, REMOCA_LOG_DEBUG, "%s: %s: %s", cn->addr.canon, remoca_op_name(h.op),
                       remoca_status_name(h.flags));
            if (must_reset_on_error(h.op)) {
                char msg[200];
                snprintf(msg, sizeof msg, "%s failed: %s", remoca_op_name(h.op),
                         remoca_status_name(h.flags));
                conn_quarantine(cn, atomic_load(&cn->gen), msg);
            }
        }
        return 0;
    }

    enum remoca_status st = remoca_resp_check(&h, w->op, w->count);
    if (st != REMOCA_OK) {
        snprintf(why, whylen, "protocol error in %s response: %s", remoca_op_name(w->op),
                 remoca_status_name(st));
        complete(w, -1);
        return -1;
    }
    if (h.flags != REMOCA_OK) {
        char msg[REMOCA_MAX_ERRMSG + 1];
        if (rbuf_read(cn, fd, msg, h.len, NULL) < 0) {
            complete(w, -1);
            snprintf(why, whylen, "connection closed");
            return -1;
        }
        msg[h.len] = '\0';
        w->status = h.flags;
        uint8_t op = w->op;
        complete(w, -1);
        client_log(c, REMOCA_LOG_DEBUG, "%s: %s: %s%s%s", cn->addr.canon, remoca_op_name(op),
                   remoca_status_name(h.flags), msg[0] ? ": " : "", msg);
        if (must_reset_on_error(op)) {
            char m2[200];
            snprintf(m2, sizeof m2, "%s failed: %s", remoca_op_name(op), remoca_status_name(h.flags));
            conn_quarantine(cn, atomic_load(&cn->gen), m2);
        }
        return 0;
    }

    switch (w->op) {
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE:
        if (recv_pages(cn, fd, w, &h, why, whylen) < 0) {
            complete(w, -1);
            return -1;
        }
        break;
    case REMOCA_OP_STATS:
        w->text = malloc((size_t)h.len + 1);
        if (!w->text) {
            complete(w, -1);
            if (rbuf_skip(cn, fd, h.len) < 0) {
                snprintf(why, whylen, "connection closed");
                return -1;
            }
            return 0;
        }
        if (rbuf_read(cn, fd, w->text, h.len, NULL) < 0) {
            free(w->text);
            w->text = NULL;
            complete(w, -1);
            snprintf(why, whylen, "connection closed");
            return -1;
        }
        w->text[h.len] = '\0';
        break;
    default:
        break; /* resp_check guaranteed no payload */
    }
    complete(w, 0);
    return 0;
}

/* ---- state transitions ------------------------------------------------- */

static void complete_list(struct waiter *list)
{
    while (list) {
        struct waiter *w = list;
        list = w->next;
        complete(w, -1);
    }
}

/* Moves every waiter of the table to *list (cn->lock held). */
static void drain_table(struct conn *cn, struct waiter **list)
{
    for (unsigned b = 0; b < CONN_BUCKETS; b++) {
        while (cn->table[b]) {
            struct waiter *w = cn->table[b];
            cn->table[b] = w->next;
            w->next = *list;
            *list = w;
        }
    }
    cn->inflight = 0;
}

/* cn->lock held, connection up. */
static void quarantine_locked(struct conn *cn, const char *why, struct waiter **list)
{
    atomic_store(&cn->up, false);
    atomic_store(&cn->quarantined, true);
    snprintf(cn->why, sizeof cn->why, "%s", why);
    drain_table(cn, list);
}

/* Wakes the connection thread to read (or notice a state change). */
static void kick(struct conn *cn)
{
    pthread_mutex_lock(&cn->lock);
    cn->kicked = true;
    pthread_cond_signal(&cn->wake);
    pthread_mutex_unlock(&cn->lock);
}

void conn_need_reader(struct conn *cn)
{
    if (!atomic_load(&cn->reader_active)) kick(cn);
}

/* Gives the reader role up.  A sender that counted a frame while we were
 * still reader relies on us to see it (seq_cst: it bumps `outstanding`
 * then looks at `reader_active`; we clear that, then look at the count). */
static void reader_leave(struct conn *cn)
{
    atomic_store(&cn->reader_active, false);
    pthread_mutex_unlock(&cn->recv_lock);
    if (atomic_load(&cn->outstanding) > 0 || atomic_load(&cn->quarantined)) kick(cn);
}

void conn_read_until(struct conn *cn, uint64_t gen, struct completion *cp,
                     const struct timespec *deadline)
{
    if (pthread_mutex_trylock(&cn->recv_lock) != 0) return; /* someone reads */
    atomic_store(&cn->reader_active, true);
    pthread_mutex_lock(&cn->lock);
    int fd = cn->fd;
    bool ok = fd >= 0 && atomic_load(&cn->up) && atomic_load(&cn->gen) == gen;
    pthread_mutex_unlock(&cn->lock);
    char why[160];
    cn->reader_deadline = deadline;
    while (ok && completion_pending(cp) && !atomic_load(&cn->quarantined)) {
        int r = wait_frame(cn, fd, deadline);
        if (r == 0) break; /* deadline, or quarantined */
        if (r > 0) r = recv_one(cn, fd, why, sizeof why);
        else snprintf(why, sizeof why, "connection closed");
        if (r < 0) {
            conn_kill(cn, gen, why); /* the connection thread tears it down */
            break;
        }
    }
    cn->reader_deadline = NULL;
    reader_leave(cn);
}

void conn_quarantine(struct conn *cn, uint64_t gen, const char *why)
{
    struct waiter *list = NULL;
    bool done = false;
    pthread_mutex_lock(&cn->lock);
    if (cn->fd >= 0 && atomic_load(&cn->up) && atomic_load(&cn->gen) == gen) {
        quarantine_locked(cn, why, &list);
        done = true;
    }
    if (done) {
        cn->kicked = true;
        pthread_cond_signal(&cn->wake);
    }
    pthread_mutex_unlock(&cn->lock);
    complete_list(list);
    if (done)
        client_log(cn->client, REMOCA_LOG_WARN,
                   "server %s: %s; its keys miss until it answers a pool reset", cn->addr.canon,
                   why);
}

void conn_kill(struct conn *cn, uint64_t gen, const char *why)
{
    pthread_mutex_lock(&cn->lock);
    if (cn->fd >= 0 && atomic_load(&cn->gen) == gen) {
        if ((atomic_exchange(&cn->up, false) || atomic_load(&cn->quarantined)) && why)
            snprintf(cn->why, sizeof cn->why, "%s", why);
        shutdown(cn->fd, SHUT_RDWR);
        cn->kicked = true;
        pthread_cond_signal(&cn->wake);
    }
    pthread_mutex_unlock(&cn->lock);
}

/* QUARANTINE: finish a frame cut by a send timeout, send POOL_RESET behind
 * everything sent so far, skip responses until its answer, then UP again.
 * No time limit: while the server is alive but hung there is nothing better
 * to do (a reconnect would race with its old requests); a dead one closes
 * the socket or fails keepalive.  Returns 0 when UP again, -1 to tear down. */
static int quarantine_drain(struct conn *cn, int fd, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;

    /* Barrier: no sender is writing once we hold send_lock, and none will
     * (up is false) until we are done. */
    pthread_mutex_lock(&cn->send_lock);
    pthread_mutex_lock(&cn->lock);
    uint8_t *rest = cn->qbuf;
    size_t rest_len = cn->qlen;
    cn->qbuf = NULL;
    cn->qlen = 0;
    uint32_t reset_id = cn->next_id++;
    uint32_t pool = cn->pool;
    char reason[sizeof cn->why];
    memcpy(reason, cn->why, sizeof reason);
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_unlock(&cn->send_lock);

    size_t out_len = rest_len + REMOCA_HDR_SIZE, out_pos = 0;
    uint8_t *out = malloc(out_len);
    if (!out) {
        free(rest);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (rest_len) memcpy(out, rest, rest_len);
    free(rest);
    struct remoca_hdr rh = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION,
                            .op = REMOCA_OP_POOL_RESET, .id = reset_id, .pool = pool};
    remoca_hdr_encode(out + rest_len, &rh);

    cn->draining = true;
    int rc = -1;
    for (;;) {
        if (atomic_load(&c->stopping)) {
            snprintf(why, whylen, "client stopping");
            break;
        }
        short ev = POLLIN | (out_pos < out_len ? POLLOUT : 0);
        struct pollfd p[2] = {{.fd = fd, .events = ev}, {.fd = c->stop_fd, .events = POLLIN}};
        if (cn->rb.end == cn->rb.pos && poll(p, 2, 1000) <= 0) continue;
        if (p[0].revents & POLLOUT) {
            ssize_t n = send(fd, out + out_pos, out_len - out_pos, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0) out_pos += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                snprintf(why, whylen, "send: %s", strerror(errno));
                break;
            }
        }
        if (cn->rb.end == cn->rb.pos && !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        uint8_t hb[REMOCA_HDR_SIZE];
        struct remoca_hdr h;
        if (rbuf_read(cn, fd, hb, sizeof hb, NULL) < 0) {
            snprintf(why, whylen, "connection closed");
            break;
        }
        remoca_hdr_decode(hb, &h);
        outstanding_dec(cn);
        if (skip_frame(cn, fd, &h, why, whylen) < 0) break;
        if (h.id == reset_id && out_pos == out_len) {
            if (h.op != REMOCA_OP_POOL_RESET || h.flags != REMOCA_OK) {
                snprintf(why, whylen, "pool reset failed: %s", remoca_status_name(h.flags));
                break;
            }
            rc = 0;
            break;
        }
    }
    cn->draining = false;
    free(out);
    if (rc < 0) return -1;

    pthread_mutex_lock(&cn->send_lock);
    pthread_mutex_lock(&cn->lock);
    atomic_store(&cn->quarantined, false);
    /* Responses still due (a server may answer out of order) are read as
     * unknown ids; the count restarts here. */
    atomic_store(&cn->outstanding, 0);
    cn->why[0] = '\0';
    atomic_fetch_add(&cn->gen, 1);
    atomic_store(&cn->up, true);
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_unlock(&cn->send_lock);
    atomic_fetch_add(&c->reconnects, 1);
    client_log(c, REMOCA_LOG_WARN, "server %s answers again (after: %s); pool '%s' reset",
               cn->addr.canon, reason, c->pool);
    client_notify_ready(c);
    return 0;
}

/* After the receive loop ends: no sender can be writing once we hold
 * send_lock; then every waiter is failed and the socket closed. */
static void teardown(struct conn *cn, const char *why)
{
    struct remoca_client *c = cn->client;
    pthread_mutex_lock(&cn->lock);
    if (atomic_exchange(&cn->up, false) || !cn->why[0])
        snprintf(cn->why, sizeof cn->why, "%s", why);
    shutdown(cn->fd, SHUT_RDWR);
    pthread_mutex_unlock(&cn->lock);

    pthread_mutex_lock(&cn->recv_lock); /* no caller reads the socket now */
    pthread_mutex_lock(&cn->send_lock);
    pthread_mutex_lock(&cn->lock);
    int fd = cn->fd;
    cn->fd = -1;
    struct waiter *list = NULL;
    drain_table(cn, &list);
    atomic_store(&cn->quarantined, false);
    free(cn->qbuf);
    cn->qbuf = NULL;
    cn->qlen = 0;
    char reason[sizeof cn->why];
    memcpy(reason, cn->why, sizeof reason);
    cn->why[0] = '\0';
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_unlock(&cn->send_lock);
    close(fd);
    rbuf_reset(cn);
    pthread_mutex_unlock(&cn->recv_lock);
    complete_list(list);
    if (!atomic_load(&c->stopping))
        client_log(c, REMOCA_LOG_WARN, "server %s down: %s (its keys miss until reconnected)",
                   cn->addr.canon, reason);
}

static void backoff_sleep(struct conn *cn, unsigned *ms)
{
    struct timespec ts;
    deadline_in(&ts, *ms);
    pthread_mutex_lock(&cn->lock);
    while (!atomic_load(&cn->client->stopping) &&
           pthread_cond_timedwait(&cn->wake, &cn->lock, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&cn->lock);
    *ms = *ms * 2 > 2000 ? 2000 : *ms * 2;
}

/* One round of the connection thread while the connection is up: sleep
 * until kicked (a frame whose response nobody else will read, a quarantine,
 * a kill) or for a short while; then read while responses are outstanding,
 * drain a quarantine, or notice an idle connection's EOF.  0 to go on, -1
 * (with why) to tear down. */
static int serve(struct conn *cn, int fd, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    pthread_mutex_lock(&cn->lock);
    if (!cn->kicked && !atomic_load(&c->stopping)) {
        struct timespec ts;
        deadline_in(&ts, 250);
        pthread_cond_timedwait(&cn->wake, &cn->lock, &ts);
    }
    cn->kicked = false;
    pthread_mutex_unlock(&cn->lock);
    if (atomic_load(&c->stopping)) {
        snprintf(why, whylen, "client stopping");
        return -1;
    }

    pthread_mutex_lock(&cn->recv_lock);
    atomic_store(&cn->reader_active, true);
    int rc = 0;
    for (;;) {
        if (atomic_load(&cn->quarantined)) {
            if (quarantine_drain(cn, fd, why, whylen) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (cn->rb.end == cn->rb.pos && atomic_load(&cn->outstanding) <= 0) {
            /* Idle: only an EOF or an error can be waiting. */
            uint8_t b;
            ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                snprintf(why, whylen, "connection closed");
                rc = -1;
            }
            if (r <= 0) break;
        }
        int r = recv_one(cn, fd, why, whylen);
        if (r < 0) {
            rc = -1;
            break;
        }
    }
    if (rc < 0) {
        atomic_store(&cn->reader_active, false);
        pthread_mutex_unlock(&cn->recv_lock);
        return -1;
    }
    reader_leave(cn);
    return 0;
}

static void *conn_main(void *arg)
{
    struct conn *cn = arg;
    struct remoca_client *c = cn->client;
    unsigned backoff = 50;
    char why[160];

    while (!atomic_load(&c->stopping)) {
        int fd = sock_connect(&cn->addr, c->timeout_ms, c->stop_fd, why, sizeof why);
        uint32_t pool = 0;
        if (fd >= 0 && handshake(cn, fd, &pool, why, sizeof why) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            rbuf_reset(cn);
            if (!cn->logged_down && !atomic_load(&c->stopping)) {
                client_log(c, REMOCA_LOG_WARN, "server %s: %s (retrying in the background)",
                           cn->addr.canon, why);
                cn->logged_down = true;
            }
            backoff_sleep(cn, &backoff);
            continue;
        }
        unsigned rcv_ms = c->timeout_ms / 4 < 250 ? c->timeout_ms / 4 : 250;
        if (rcv_ms < 1) rcv_ms = 1;
        struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)rcv_ms * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

        pthread_mutex_lock(&cn->send_lock);
        pthread_mutex_lock(&cn->lock);
        bool stop = atomic_load(&c->stopping);
        if (!stop) {
            cn->fd = fd;
            cn->pool = pool;
            cn->why[0] = '\0';
            atomic_store(&cn->outstanding, 0);
            atomic_fetch_add(&cn->gen, 1);
            atomic_store(&cn->up, true);
        }
        pthread_mutex_unlock(&cn->lock);
        pthread_mutex_unlock(&cn->send_lock);
        if (stop) {
            close(fd);
            break;
        }
        if (cn->ever_up) atomic_fetch_add(&c->reconnects, 1);
        client_log(c, cn->ever_up ? REMOCA_LOG_WARN : REMOCA_LOG_INFO,
                   "server %s up (pool '%s' reset)", cn->addr.canon, c->pool);
        cn->ever_up = true;
        cn->logged_down = false;
        backoff = 50;
        client_notify_ready(c);

        while (serve(cn, fd, why, sizeof why) == 0)
            ;
        teardown(cn, why);
        /* The first reconnect attempt is immediate; backoff starts with its
         * failure. */
    }
    return NULL;
}

/* ---- send path (any thread) -------------------------------------------- */

/* Locks m before a CLOCK_MONOTONIC deadline.  (pthread_mutex_clocklock
 * would do, but sanitizers do not know it yet; the REALTIME conversion only
 * matters if the clock jumps while a connection is stuck.) */
static int lock_until(pthread_mutex_t *m, const struct timespec *deadline)
{
    if (pthread_mutex_trylock(m) == 0) return 0;
    int left = deadline_left_ms(deadline);
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

enum conn_send_result conn_send(struct conn *cn, struct frame *f, unsigned n,
                                const struct timespec *deadline)
{
    struct remoca_client *c = cn->client;
    if (!atomic_load_explicit(&cn->up, memory_order_acquire)) return CONN_DOWN;
    uint64_t gen0 = atomic_load(&cn->gen);
    if (lock_until(&cn->send_lock, deadline) != 0) {
        /* Someone is stuck writing to this server: it is hung. */
        conn_quarantine(cn, gen0, "send lock timed out (server not reading)");
        return CONN_DOWN;
    }
    if (!atomic_load(&cn->up)) {
        pthread_mutex_unlock(&cn->send_lock);
        return CONN_DOWN;
    }
    int fd = cn->fd;
    uint64_t gen = atomic_load(&cn->gen);
    uint32_t pool = cn->pool;

    bool any_waiter = false;
    for (unsigned i = 0; i < n; i++) {
        struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION,
                               .op = f[i].op, .flags = f[i].flags, .id = cn->next_id++,
                               .pool = pool, .key = f[i].key, .count = f[i].count,
                               .len = f[i].len};
        remoca_hdr_encode(f[i].hdr, &h);
        if (f[i].w) {
            struct waiter *w = f[i].w;
            w->id = h.id;
            w->gen = gen;
            w->conn = cn;
            w->registered = true;
            completion_add(w->comp);
            any_waiter = true;
        }
    }
    if (any_waiter) {
        pthread_mutex_lock(&cn->lock);
        for (unsigned i = 0; i < n; i++)
            if (f[i].w) table_insert(cn, f[i].w);
        pthread_mutex_unlock(&cn->lock);
    }

    /* Counted before they can be answered (see reader_leave). */
    atomic_fetch_add(&cn->outstanding, (int)n);

    /* Up to 63 frames per sendmsg; on failure, find the frame it cut. */
    char why[160];
    struct iovec iov[128];
    int rc = 0, err = 0;
    bool cut_lost = false;
    unsigned first = 0;
    while (first < n && rc == 0) {
        int cnt = 0;
        unsigned last = first;
        while (last < n && cnt + 2 <= 126) {
            iov[cnt++] = (struct iovec){f[last].hdr, REMOCA_HDR_SIZE};
            if (f[last].len) iov[cnt++] = (struct iovec){(void *)f[last].payload, f[last].len};
            last++;
        }
        size_t sent = 0;
        rc = sock_send(fd, iov, cnt, deadline, &sent, why, sizeof why);
        if (rc < 0) {
            err = errno;
            for (unsigned i = first; i < last; i++) {
                size_t sz = REMOCA_HDR_SIZE + f[i].len;
                if (sent < sz) {
                    if (sent > 0 && !keep_rest(cn, &f[i], sent)) cut_lost = true;
                    break;
                }
                sent -= sz;
            }
        }
        first = last;
    }
    atomic_fetch_add(&c->requests, n);
    if (rc < 0) {
        if (err == ETIMEDOUT && !cut_lost)
            conn_quarantine(cn, gen, why);
        else
            conn_kill(cn, gen, why);
    }
    pthread_mutex_unlock(&cn->send_lock);
    /* Responses nobody waits for are read by whoever reads; make sure
     * someone does.  (Callers that wait read or kick themselves.) */
    bool nowait = false;
    for (unsigned i = 0; i < n && !nowait; i++) nowait = !f[i].w;
    if (rc == 0 && nowait) conn_need_reader(cn);
    return rc < 0 ? CONN_FAILED : CONN_SENT;
}

/* ---- lifecycle --------------------------------------------------------- */

int conn_init(struct conn *cn, struct remoca_client *c, unsigned index,
              const struct remoca_addr *a)
{
    memset(cn, 0, sizeof *cn);
    cn->client = c;
    cn->index = index;
    cn->addr = *a;
    cn->fd = -1;
    cn->next_id = 1;
    cn->rb.buf = malloc(RBUF_SIZE);
    if (!cn->rb.buf) return -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cn->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&cn->lock, NULL);
    pthread_mutex_init(&cn->send_lock, NULL);
    pthread_mutex_init(&cn->recv_lock, NULL);
    return 0;
}

int conn_start(struct conn *cn)
{
    if (pthread_create(&cn->thread, NULL, conn_main, cn) != 0) return -1;
    cn->thread_started = true;
    return 0;
}

void conn_stop(struct conn *cn)
{
    pthread_mutex_lock(&cn->lock);
    if (cn->fd >= 0) shutdown(cn->fd, SHUT_RDWR);
    pthread_cond_broadcast(&cn->wake);
    pthread_mutex_unlock(&cn->lock);
    if (cn->thread_started) pthread_join(cn->thread, NULL);
    cn->thread_started = false;
}

void conn_destroy(struct conn *cn)
{
    free(cn->qbuf);
    free(cn->rb.buf);
    cn->rb.buf = NULL;
    pthread_cond_destroy(&cn->wake);
    pthread_mutex_destroy(&cn->lock);
    pthread_mutex_destroy(&cn->send_lock);
    pthread_mutex_destroy(&cn->recv_lock);
}
