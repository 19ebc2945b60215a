/* The send side of a connection: frames are written under the send lock in
 * call order (which is wire order, which is the server's execution order),
 * with a deadline on the lock and on every write.  A write that times out
 * half way through a frame keeps a copy of the rest for the quarantine
 * drain, so the stream stays well formed (client_conn.c).
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
static int lock_until(pthread_mutex_t *m, const struct timespec *deadline)
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

enum conn_send_result rc_conn_send(struct conn *cn, struct frame *f, unsigned n,
                                const struct timespec *deadline)
{
    struct remoca_client *c = cn->client;
    if (!atomic_load_explicit(&cn->up, memory_order_acquire)) return CONN_DOWN;
    uint64_t gen0 = atomic_load(&cn->gen);
    atomic_fetch_add(&cn->senders, 1);
    int locked = lock_until(&cn->send_lock, deadline);
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
            if (f[i].w) rc_table_insert(cn, f[i].w);
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
        /* Corking: when another sender is queued on the lock, it will push
         * our frames out with its own (one segment and one wakeup of the
         * server for the lot; measured: a quarter less CPU per request on
         * both sides at 16 threads).  The last sender of a burst sends
         * without MSG_MORE.  A queued sender that then sends nothing found
         * the connection quarantined (its drain writes, uncorked) or dead. */
        int more = last == n && atomic_load(&cn->senders) > 0 ? MSG_MORE : 0;
        size_t sent = 0;
        rc = rc_sock_send(fd, iov, cnt, deadline, more, &sent, why, sizeof why);
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
            rc_conn_quarantine(cn, gen, why);
        else
            rc_conn_kill(cn, gen, why);
    }
    pthread_mutex_unlock(&cn->send_lock);
    /* Responses nobody waits for are read by whoever reads; make sure
     * someone does.  (Callers that wait read or kick themselves.) */
    bool nowait = false;
    for (unsigned i = 0; i < n && !nowait; i++) nowait = !f[i].w;
    if (rc == 0 && nowait) rc_conn_need_reader(cn);
    return rc < 0 ? CONN_FAILED : CONN_SENT;
}

