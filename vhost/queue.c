/* SPDX-License-Identifier: BSD-3-Clause */
/* Queue workers (queue.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vlog.h"
#include "queue.h"

static void signal_fd(int fd)
{
    if (fd < 0) return;
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* A chain that cannot carry a status byte cannot be failed: the queue stops
 * until the driver resets it. */
static void chain_unfinishable(struct vu_queue *q, unsigned index, const struct vq_chain *c)
{
    q->vr.broken = true;
    vu_warn("queue %u: chain %u has no status byte (%s); queue stopped until the driver resets it",
            index, c->head, c->error ? "bad descriptor" : "layout");
    signal_fd(q->err_fd);
}

static void ring_broken(struct vu_queue *q, unsigned index, const char *err)
{
    vu_warn("queue %u: %s", index, err);
    signal_fd(q->err_fd);
}

bool vh_queue_process(struct vu_queue *q, struct blk_dev *blk, void *io, struct vq_chain *chain,
                      unsigned index)
{
    struct vring *vr = &q->vr;
    char err[256];
    for (;;) {
        int r;
        while ((r = vring_pop(vr, chain, err, sizeof err)) == 1) {
            int64_t used = blk_handle(blk, io, chain);
            if (used < 0) {
                chain_unfinishable(q, index, chain);
                return false;
            }
            vring_push(vr, chain->head, (uint32_t)used);
            if (vring_need_notify(vr)) signal_fd(q->call_fd);
        }
        if (r < 0) {
            ring_broken(q, index, err);
            return false;
        }
        if (!vring_enable_kick(vr)) return true;
    }
}

static struct vh_slot *slot(struct vh_worker *w, uint64_t n) { return &w->slots[n % w->inflight]; }

/* Under the lock: the finished chains at the front go on the used ring, in
 * the order they were taken; one interrupt for all of them if wanted. */
static void push_done_prefix(struct vh_worker *w)
{
    bool pushed = false;
    while (!w->broken && w->pushed < w->started && slot(w, w->pushed)->state == SLOT_DONE) {
        struct vh_slot *s = slot(w, w->pushed);
        if (s->used < 0) {
            w->broken = true; /* nothing after it is pushed either */
            chain_unfinishable(w->q, w->index, &s->chain);
            pthread_cond_broadcast(&w->space); /* the poller stops */
            break;
        }
        vring_push(&w->q->vr, s->chain.head, (uint32_t)s->used);
        s->state = SLOT_FREE;
        w->pushed++;
        pushed = true;
    }
    if (pushed) {
        /* Also when the queue drains: an interrupt too many costs the guest
         * a look at the ring, one too few a request waiting forever. */
        bool notify = vring_need_notify(&w->q->vr);
        if (notify || w->pushed == w->popped) signal_fd(w->q->call_fd);
        pthread_cond_broadcast(&w->space);
    }
}

static void *executor_main(void *arg)
{
    struct vh_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->quit && w->started == w->popped) pthread_cond_wait(&w->work, &w->lock);
        if (w->started == w->popped) break; /* quit, and nothing left to run */
        struct vh_slot *s = slot(w, w->started++);
        s->state = SLOT_RUNNING;
        pthread_mutex_unlock(&w->lock);
        int64_t used = blk_handle(w->blk, w->io, &s->chain);
        pthread_mutex_lock(&w->lock);
        s->used = used;
        s->state = SLOT_DONE;
        push_done_prefix(w);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Takes every available chain into free slots (waiting for one when all are
 * busy).  Returns false once the ring is broken or the worker stops. */
static bool poll_ring(struct vh_worker *w)
{
    char err[256];
    bool ok = true;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stopping && !w->broken && w->popped - w->pushed == w->inflight)
            pthread_cond_wait(&w->space, &w->lock);
        if (w->stopping || w->broken) {
            ok = false;
            break;
        }
        struct vh_slot *s = slot(w, w->popped);
        int r = vring_pop(&w->q->vr, &s->chain, err, sizeof err);
        if (r == 1) {
            s->state = SLOT_QUEUED;
            w->popped++;
            pthread_cond_signal(&w->work);
        } else if (r < 0) {
            w->broken = true;
            ring_broken(w->q, w->index, err);
            ok = false;
            break;
        } else if (!vring_enable_kick(&w->q->vr)) {
            break; /* idle: sleep until the next kick */
        }
    }
    pthread_mutex_unlock(&w->lock);
    return ok;
}

/* An idle queue whose driver has not seen every completion: interrupt it
 * again.  Seen once here under TCG (QEMU 7.2): every request complete, the
 * interrupt for the last ones signalled, and the guest still waiting on them
 * ten minutes later; a second interrupt costs nothing when it was not lost. */
#define IDLE_CHECK_MS 1000

static void idle_check(struct vh_worker *w)
{
    pthread_mutex_lock(&w->lock);
    if (!w->broken && w->popped == w->pushed && vring_guest_behind(&w->q->vr)) {
        vu_info("queue %u: driver behind at %u completions, interrupting again", w->index,
                (unsigned)w->q->vr.used_idx);
        signal_fd(w->q->call_fd);
    }
    pthread_mutex_unlock(&w->lock);
}

static void *poller_main(void *arg)
{
    struct vh_worker *w = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, w->stop_fd, &ev) < 0) {
        vu_err("queue %u: epoll: %s", w->index, strerror(errno));
        goto out;
    }
    ev.data.u32 = 1;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w->q->kick_fd, &ev) < 0) {
        vu_err("queue %u: epoll on the kick fd: %s", w->index, strerror(errno));
        goto out;
    }
    /* Chains may have arrived while the queue was stopped. */
    bool ok = poll_ring(w);
    for (;;) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, IDLE_CHECK_MS);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            vu_err("queue %u: epoll_wait: %s", w->index, strerror(errno));
            break;
        }
        if (n == 0 && ok) idle_check(w);
        bool kicked = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == 0) goto out;
            kicked = true;
        }
        if (kicked) {
            uint64_t v;
            if (read(w->q->kick_fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR) {
                vu_warn("queue %u: kick fd: %s", w->index, strerror(errno));
                epoll_ctl(ep, EPOLL_CTL_DEL, w->q->kick_fd, NULL);
            }
            if (ok) ok = poll_ring(w);
            if (!ok) epoll_ctl(ep, EPOLL_CTL_DEL, w->q->kick_fd, NULL);
        }
    }
out:
    if (ep >= 0) close(ep);
    return NULL;
}

/* Lets the executors finish what was taken, then joins them. */
static void executors_stop(struct vh_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->nexec; i++) pthread_join(w->exec[i], NULL);
    w->nexec = 0;
}

static void worker_free(struct vh_worker *w)
{
    if (w->stop_fd >= 0) close(w->stop_fd);
    pthread_cond_destroy(&w->space);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->lock);
    free(w->slots);
    memset(w, 0, sizeof *w);
}

int vh_worker_start(struct vh_worker *w, struct vu_queue *q, unsigned index, struct blk_dev *blk,
                    void *io, unsigned inflight)
{
    memset(w, 0, sizeof *w);
    if (inflight < 1 || inflight > VH_INFLIGHT_MAX) inflight = VH_INFLIGHT_DEFAULT;
    w->q = q;
    w->index = index;
    w->blk = blk;
    w->io = io;
    w->inflight = inflight;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->space, NULL);
    w->stop_fd = eventfd(0, EFD_CLOEXEC);
    w->slots = calloc(inflight, sizeof *w->slots);
    if (w->stop_fd < 0 || !w->slots) {
        vu_err("queue %u: out of memory or file descriptors", index);
        goto fail;
    }
    int e = 0;
    for (unsigned i = 0; i < inflight && !e; i++)
        if (!(e = pthread_create(&w->exec[i], NULL, executor_main, w))) w->nexec++;
    if (!e) e = pthread_create(&w->poller, NULL, poller_main, w);
    if (e) {
        vu_err("queue %u: pthread_create: %s", index, strerror(e));
        executors_stop(w);
        goto fail;
    }
    w->active = true;
    return 0;
fail:
    worker_free(w);
    return -1;
}

void vh_worker_stop(struct vh_worker *w)
{
    if (!w->active) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true; /* a poller waiting for a free slot */
    pthread_cond_broadcast(&w->space);
    pthread_mutex_unlock(&w->lock);
    signal_fd(w->stop_fd); /* a poller in epoll */
    pthread_join(w->poller, NULL);
    executors_stop(w);
    worker_free(w);
}
