/* SPDX-License-Identifier: BSD-3-Clause */
/* One worker thread per running queue: it sleeps in epoll on the queue's
 * kick eventfd (and a stop eventfd), takes every available chain, executes it
 * (blk_handle), puts it on the used ring and signals the call eventfd when
 * the driver wants it.  Requests complete in order, one at a time, so the
 * used index always says exactly which chains are done (a restarted backend
 * resumes there).  A broken ring stops the worker's processing and signals
 * the queue's err eventfd; the thread then only waits to be stopped.
 *
 *   device thread                         worker i
 *   vh_worker_start(q) ──pthread_create──▶ loop: epoll(kick, stop)
 *                                            pop ─▶ blk_handle ─▶ push ─▶ call
 *   vh_worker_stop ──write(stop)──────────▶ returns; joined: the ring is idle
 */
#ifndef REMOCA_VHOST_QUEUE_H
#define REMOCA_VHOST_QUEUE_H

#include <pthread.h>
#include <stdbool.h>

#include "blk.h"
#include "device.h"

struct vh_worker {
    pthread_t thread;
    int stop_fd;
    bool active;
    unsigned index;
    struct vu_queue *q;
    struct blk_dev *blk;
    void *io;
    struct vq_chain *chain;
};

int vh_worker_start(struct vh_worker *w, struct vu_queue *q, unsigned index, struct blk_dev *blk,
                    void *io);
void vh_worker_stop(struct vh_worker *w);

/* Runs the queue until no chain is available (no threads; the fuzzer and
 * unit tests use it).  Returns false if the ring broke. */
bool vh_queue_process(struct vu_queue *q, struct blk_dev *blk, void *io, struct vq_chain *chain,
                      unsigned index);

#endif
