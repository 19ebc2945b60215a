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
                vr->broken = true;
                vu_warn("queue %u: chain %u has no status byte (%s); queue stopped until the "
                        "driver resets it",
                        index, chain->head, chain->error ? "bad descriptor" : "layout");
                signal_fd(q->err_fd);
                return false;
            }
            vring_push(vr, chain->head, (uint32_t)used);
            if (vring_need_notify(vr)) signal_fd(q->call_fd);
        }
        if (r < 0) {
            vu_warn("queue %u: %s", index, err);
            signal_fd(q->err_fd);
            return false;
        }
        if (!vring_enable_kick(vr)) return true;
    }
}

static void *worker_main(void *arg)
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
    bool ok = vh_queue_process(w->q, w->blk, w->io, w->chain, w->index);
    for (;;) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            vu_err("queue %u: epoll_wait: %s", w->index, strerror(errno));
            break;
        }
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
            if (ok) ok = vh_queue_process(w->q, w->blk, w->io, w->chain, w->index);
            if (!ok) epoll_ctl(ep, EPOLL_CTL_DEL, w->q->kick_fd, NULL);
        }
    }
out:
    if (ep >= 0) close(ep);
    return NULL;
}

int vh_worker_start(struct vh_worker *w, struct vu_queue *q, unsigned index, struct blk_dev *blk,
                    void *io)
{
    memset(w, 0, sizeof *w);
    w->q = q;
    w->index = index;
    w->blk = blk;
    w->io = io;
    w->stop_fd = eventfd(0, EFD_CLOEXEC);
    w->chain = malloc(sizeof *w->chain);
    if (w->stop_fd < 0 || !w->chain) goto fail;
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e) {
        vu_err("queue %u: pthread_create: %s", index, strerror(e));
        goto fail;
    }
    w->active = true;
    return 0;
fail:
    if (w->stop_fd >= 0) close(w->stop_fd);
    free(w->chain);
    memset(w, 0, sizeof *w);
    return -1;
}

void vh_worker_stop(struct vh_worker *w)
{
    if (!w->active) return;
    signal_fd(w->stop_fd);
    pthread_join(w->thread, NULL);
    close(w->stop_fd);
    free(w->chain);
    memset(w, 0, sizeof *w);
}
