/* SPDX-License-Identifier: BSD-3-Clause */
/* One connection to one memory server: its thread, its state machine, and
 * who reads its socket.  (The receive side is in client_recv.c, the send
 * side in client_send.c, the handshake in client_handshake.c; the picture of
 * callers and readers is in client_internal.h.)
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
 * its pool has been reset (docs/design.md, contract 4), on the first connect
 * too: a previous incarnation of this client may have left stale pages.
 *
 * One-sided reads (client_shm.c): a server on a unix socket may hand out its
 * page store at the handshake; the mapping belongs to the incarnation (it is
 * installed before UP, kept through quarantines, which only stop reads by
 * clearing UP, and unmapped at teardown after UP is cleared and before any
 * waiter is failed).
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
 * takes the reader role itself when it is free (rc_conn_read_until), so the
 * server's answer wakes the caller directly: at queue depth 1 a round trip
 * costs no thread hop.  It reads other callers' responses too, until its own
 * arrives, then leaves; if callers still wait for responses, the connection
 * thread takes over (kick).  The connection thread otherwise sleeps until
 * kicked (LAZY_MAX unread no-wait responses, a quarantine, a kill) and reads
 * while `outstanding` > 0; every 250 ms it also reads what is pending (the
 * lazy responses) or peeks at an idle socket for EOF.  It also writes the
 * send queue (client_send.c) once it is SQ_DELAY_US old and nobody else
 * has: the first frame queued wakes it to sleep until then.
 *
 *   caller: send ─▶ trylock(recv_lock)? ─yes─▶ read frames, complete waiters
 *                        │no                   until ours is done ─▶ leave:
 *                        ▼                     outstanding > 0 ? kick thread
 *                   sleep on completion ◀──── (reader completes ours)
 *
 * The socket has SO_RCVTIMEO (timeout/4, at most 250 ms) so a reader blocked
 * in recv notices a quarantine, or its own deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_conn.h"
#include "client_sock.h"

/* ---- state transitions ------------------------------------------------- */

static void complete_list(struct waiter *list)
{
    while (list) {
        struct waiter *w = list;
        list = w->next;
        rc_waiter_complete(w, -1);
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
            atomic_fetch_sub(&cn->waiting, 1);
        }
    }
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

void rc_conn_need_reader(struct conn *cn)
{
    if (!atomic_load(&cn->reader_active)) kick(cn);
}

/* Gives the reader role up.  A sender that counted a frame while we were
 * still reader relies on us to see it (seq_cst: it bumps `waiting` and
 * `outstanding` then looks at `reader_active`; we clear that, then look at
 * the counts).  Unanswered no-wait frames alone do not need a reader before
 * LAZY_MAX of them are pending. */
static void reader_leave(struct conn *cn)
{
    atomic_store(&cn->reader_active, false);
    pthread_mutex_unlock(&cn->recv_lock);
    if (atomic_load(&cn->waiting) > 0 || atomic_load(&cn->outstanding) >= LAZY_MAX ||
        atomic_load(&cn->quarantined))
        kick(cn);
}

void rc_conn_read_until(struct conn *cn, uint64_t gen, struct completion *cp,
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
        int r = rc_wait_frame(cn, fd, deadline);
        if (r == 0) break; /* deadline, or quarantined */
        if (r > 0)
            r = rc_recv_one(cn, fd, why, sizeof why);
        else
            snprintf(why, sizeof why, "connection closed");
        if (r < 0) {
            rc_conn_kill(cn, gen, why); /* the connection thread tears it down */
            break;
        }
    }
    cn->reader_deadline = NULL;
    reader_leave(cn);
}

void rc_conn_quarantine(struct conn *cn, uint64_t gen, const char *why)
{
    /* memcached: close instead.  The reconnect draws a new epoch, so what
     * the old connection still executes touches keys nobody reads. */
    if (cn->addr.mc) {
        rc_conn_kill(cn, gen, why);
        return;
    }
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
        rc_log(cn->client, REMOCA_LOG_WARN,
               "server %s: %s; its keys miss until it answers a pool reset", cn->addr.canon, why);
}

void rc_conn_kill(struct conn *cn, uint64_t gen, const char *why)
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

/* QUARANTINE, step 1: takes the rest of a frame cut by a send timeout and
 * numbers a POOL_RESET behind everything sent so far: *out (malloc'd) holds
 * both, to be written.  Barrier: no sender is writing once we hold
 * send_lock, and none will (up is false) until the drain is done.  The
 * quarantine's reason is copied to reason.  0, or -1 (out of memory). */
static int quarantine_prepare(struct conn *cn, uint8_t **out, size_t *out_len, uint32_t *reset_id,
                              char reason[sizeof cn->why])
{
    pthread_mutex_lock(&cn->send_lock);
    rc_sq_drop(cn); /* reset below: queued frames need not run */
    pthread_mutex_lock(&cn->lock);
    uint8_t *rest = cn->qbuf;
    size_t rest_len = cn->qlen;
    cn->qbuf = NULL;
    cn->qlen = 0;
    *reset_id = cn->next_id++;
    uint32_t pool = cn->pool;
    memcpy(reason, cn->why, sizeof cn->why);
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_unlock(&cn->send_lock);

    *out_len = rest_len + REMOCA_HDR_SIZE;
    *out = malloc(*out_len);
    if (!*out) {
        free(rest);
        return -1;
    }
    if (rest_len) memcpy(*out, rest, rest_len);
    free(rest);
    struct remoca_hdr rh = {.magic = REMOCA_MAGIC_REQ,
                            .version = REMOCA_VERSION,
                            .op = REMOCA_OP_POOL_RESET,
                            .id = *reset_id,
                            .pool = pool};
    remoca_hdr_encode(*out + rest_len, &rh);
    return 0;
}

/* QUARANTINE, step 2: writes out[] (without blocking) while skipping every
 * response, until the POOL_RESET's answer arrives after all of out[] went
 * out.  0 when the pool was reset, -1 (reason in why) when the connection
 * must go. */
static int quarantine_exchange(struct conn *cn, int fd, const uint8_t *out, size_t out_len,
                               uint32_t reset_id, char *why, size_t whylen)
{
    size_t out_pos = 0;
    for (;;) {
        if (atomic_load(&cn->stopping)) {
            snprintf(why, whylen, "connection stopping");
            return -1;
        }
        short ev = POLLIN | (out_pos < out_len ? POLLOUT : 0);
        struct pollfd p[2] = {{.fd = fd, .events = ev}, {.fd = cn->stop_fd, .events = POLLIN}};
        if (cn->rb.end == cn->rb.pos && poll(p, 2, 1000) <= 0) continue;
        if (p[0].revents & POLLOUT) {
            ssize_t n = send(fd, out + out_pos, out_len - out_pos, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                out_pos += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                snprintf(why, whylen, "send: %s", strerror(errno));
                return -1;
            }
        }
        if (cn->rb.end == cn->rb.pos && !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        uint8_t hb[REMOCA_HDR_SIZE];
        struct remoca_hdr h;
        if (rc_rbuf_read(cn, fd, hb, sizeof hb, NULL) < 0) {
            snprintf(why, whylen, "connection closed");
            return -1;
        }
        remoca_hdr_decode(hb, &h);
        rc_outstanding_dec(cn);
        if (rc_skip_frame(cn, fd, &h, why, whylen) < 0) return -1;
        if (h.id == reset_id && out_pos == out_len) {
            if (h.op != REMOCA_OP_POOL_RESET || h.flags != REMOCA_OK) {
                snprintf(why, whylen, "pool reset failed: %s", remoca_status_name(h.flags));
                return -1;
            }
            return 0;
        }
    }
}

/* QUARANTINE, step 3: the pool was reset behind every earlier frame: UP
 * again, with a new generation. */
static void quarantine_resume(struct conn *cn, const char *reason)
{
    struct remoca_client *c = cn->client;
    pthread_mutex_lock(&cn->send_lock);
    pthread_mutex_lock(&cn->lock);
    atomic_store(&cn->quarantined, false);
    /* Responses still due (a server may answer out of order) are read as
     * unknown ids; the count restarts here. */
    atomic_store(&cn->outstanding, 0);
    rc_inval_restart(cn); /* the POOL_RESET ran after every earlier frame */
    cn->why[0] = '\0';
    atomic_fetch_add(&cn->gen, 1);
    atomic_store(&cn->up, true);
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_unlock(&cn->send_lock);
    atomic_fetch_add(&c->reconnects, 1);
    rc_log(c, REMOCA_LOG_WARN, "server %s answers again (after: %s); pool '%s' reset",
           cn->addr.canon, reason, c->pool);
    rc_notify_ready(c);
}

/* QUARANTINE: finish a frame cut by a send timeout, send POOL_RESET behind
 * everything sent so far, skip responses until its answer, then UP again.
 * No time limit: while the server is alive but hung there is nothing better
 * to do (a reconnect would race with its old requests); a dead one closes
 * the socket or fails keepalive.  Returns 0 when UP again, -1 to tear down. */
static int quarantine_drain(struct conn *cn, int fd, char *why, size_t whylen)
{
    uint8_t *out;
    size_t out_len;
    uint32_t reset_id;
    char reason[sizeof cn->why];
    if (quarantine_prepare(cn, &out, &out_len, &reset_id, reason) < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    cn->draining = true;
    int rc = quarantine_exchange(cn, fd, out, out_len, reset_id, why, whylen);
    cn->draining = false;
    free(out);
    if (rc < 0) return -1;
    quarantine_resume(cn, reason);
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
    /* One-sided reads stop (and the mapping goes) before any waiter is
     * failed: a caller told that its delete failed must not find reads still
     * served from the dead server's memory. */
    rc_shm_uninstall(cn);

    pthread_mutex_lock(&cn->recv_lock); /* no caller reads the socket now */
    pthread_mutex_lock(&cn->send_lock);
    rc_sq_drop(cn);        /* the pool is reset on reconnect */
    rc_ring_uninstall(cn); /* no sender inside (send_lock), none to come (not UP) */
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
    rc_rbuf_reset(cn);
    pthread_mutex_unlock(&cn->recv_lock);
    complete_list(list);
    if (!atomic_load(&cn->stopping))
        rc_log(c, REMOCA_LOG_WARN, "server %s down: %s (its keys miss until reconnected)",
               cn->addr.canon, reason);
}

static void backoff_sleep(struct conn *cn, unsigned *ms)
{
    struct timespec ts;
    rc_deadline_in(&ts, *ms);
    pthread_mutex_lock(&cn->lock);
    while (!atomic_load(&cn->stopping) &&
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
    bool kicked;
    pthread_mutex_lock(&cn->lock);
    if (!cn->kicked && !atomic_load(&cn->stopping)) {
        /* Until the next read pass (250 ms) or the send queue is due; while
         * the queue was busy lately, at most RING_DELAY_US, so that senders
         * need not wake us (sq_wake): a futex wake in every few fills'
         * path cost more than these wake-ups off it.  wake_at_ns is
         * published before due is read (sq_wake stores due, then reads it). */
        int64_t t = rc_now_ns();
        bool busy = t - cn->last_flush_ns < SQ_LINGER_MS * 1000000LL;
        int64_t until = t + (busy ? RING_DELAY_US * 1000LL : 250000000LL);
        atomic_store(&cn->wake_at_ns, until);
        int64_t due = atomic_load(&cn->sq_due_ns);
        if (due && due < until) atomic_store(&cn->wake_at_ns, until = due);
        struct timespec ts = rc_ns_timespec(until);
        pthread_cond_timedwait(&cn->wake, &cn->lock, &ts);
    }
    kicked = cn->kicked;
    cn->kicked = false;
    pthread_mutex_unlock(&cn->lock);
    if (atomic_load(&cn->stopping)) {
        snprintf(why, whylen, "client stopping");
        return -1;
    }
    int64_t now_ns = rc_now_ns();
    int64_t due = atomic_load(&cn->sq_due_ns);
    if (due && due <= now_ns) {
        rc_conn_flush(cn);
        cn->last_flush_ns = now_ns;
    }
    /* Woken for the send queue only: no read pass unless one is needed. */
    if (!kicked && now_ns - cn->last_read_ns < 250000000LL &&
        atomic_load(&cn->outstanding) < LAZY_MAX && atomic_load(&cn->waiting) <= 0 &&
        !atomic_load(&cn->quarantined))
        return 0;
    cn->last_read_ns = now_ns;

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
        int r = rc_recv_one(cn, fd, why, whylen);
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

    while (!atomic_load(&cn->stopping)) {
        int fd = rc_sock_connect(&cn->addr, c->timeout_ms, cn->stop_fd, why, sizeof why);
        uint32_t pool = 0;
        struct shm_map map = {0};
        struct ring_map ring = {0};
        if (fd >= 0 &&
            (cn->addr.mc ? rc_mc_handshake(cn, fd, why, sizeof why)
                         : rc_handshake(cn, fd, &pool, &map, &ring, why, sizeof why)) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            rc_rbuf_reset(cn);
            if (!cn->logged_down && !atomic_load(&cn->stopping)) {
                rc_log(c, REMOCA_LOG_WARN, "server %s: %s (retrying in the background)",
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
        bool stop = atomic_load(&cn->stopping);
        if (!stop) {
            cn->fd = fd;
            cn->pool = pool;
            cn->why[0] = '\0';
            atomic_store(&cn->outstanding, 0);
            rc_inval_restart(cn); /* the pool was just reset */
            rc_ring_install(cn, &ring);
            rc_shm_install(cn, &map); /* before UP: a sender or reader that sees
                                         UP sees this incarnation's mapping */
            atomic_fetch_add(&cn->gen, 1);
            atomic_store(&cn->up, true);
        }
        pthread_mutex_unlock(&cn->lock);
        pthread_mutex_unlock(&cn->send_lock);
        if (stop) {
            rc_shm_unmap(&map);
            rc_ring_unmap(&ring);
            close(fd);
            break;
        }
        if (cn->ever_up) {
            atomic_fetch_add(&c->reconnects, 1);
            atomic_fetch_add(&cn->st.reconnects, 1);
        }
        rc_log(c, cn->ever_up ? REMOCA_LOG_WARN : REMOCA_LOG_INFO,
               "server %s up (pool '%s' %s%s%s)", cn->addr.canon, c->pool,
               cn->addr.mc ? "in a new epoch" : "reset", cn->shm.data ? "; one-sided reads" : "",
               cn->ring.base ? "; fill ring" : "");
        cn->ever_up = true;
        cn->logged_down = false;
        backoff = 50;
        rc_notify_ready(c);

        while (serve(cn, fd, why, sizeof why) == 0)
            ;
        teardown(cn, why);
        /* The first reconnect attempt is immediate; backoff starts with its
         * failure. */
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

int rc_conn_init(struct conn *cn, struct remoca_client *c, const struct remoca_addr *a)
{
    memset(cn, 0, sizeof *cn);
    cn->client = c;
    cn->addr = *a;
    cn->fd = -1;
    cn->next_id = 1;
    cn->rb.buf = malloc(RBUF_SIZE);
    cn->sq = malloc(SQ_CAP);
    cn->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!cn->rb.buf || !cn->sq || cn->stop_fd < 0 || (a->mc && rc_mc_init(cn) < 0)) {
        rc_mc_destroy(cn);
        free(cn->rb.buf);
        free(cn->sq);
        if (cn->stop_fd >= 0) close(cn->stop_fd);
        cn->rb.buf = NULL;
        cn->sq = NULL;
        cn->stop_fd = -1;
        return -1;
    }
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

int rc_conn_start(struct conn *cn)
{
    if (pthread_create(&cn->thread, NULL, conn_main, cn) != 0) return -1;
    cn->thread_started = true;
    return 0;
}

void rc_conn_signal_stop(struct conn *cn)
{
    atomic_store(&cn->stopping, true);
    uint64_t one = 1;
    ssize_t w = write(cn->stop_fd, &one, sizeof one);
    (void)w;
    pthread_mutex_lock(&cn->lock);
    if (cn->fd >= 0) shutdown(cn->fd, SHUT_RDWR);
    pthread_cond_broadcast(&cn->wake);
    pthread_mutex_unlock(&cn->lock);
}

void rc_conn_stop(struct conn *cn)
{
    rc_conn_signal_stop(cn);
    if (cn->thread_started) pthread_join(cn->thread, NULL);
    cn->thread_started = false;
}

void rc_conn_destroy(struct conn *cn)
{
    rc_shm_unmap(&cn->shm); /* the thread has ended: no reader, no teardown left */
    rc_ring_unmap(&cn->ring);
    rc_mc_destroy(cn);
    free(cn->qbuf);
    free(cn->rb.buf);
    cn->rb.buf = NULL;
    free(cn->sq);
    cn->sq = NULL;
    pthread_cond_destroy(&cn->wake);
    pthread_mutex_destroy(&cn->lock);
    pthread_mutex_destroy(&cn->send_lock);
    pthread_mutex_destroy(&cn->recv_lock);
    if (cn->stop_fd >= 0) close(cn->stop_fd);
    cn->stop_fd = -1;
}
