/* SPDX-License-Identifier: BSD-3-Clause */
/* Queue workers: per running queue, one poller thread and up to `inflight`
 * executor threads.  The poller sleeps in epoll on the queue's kick eventfd
 * (and a stop eventfd), takes chains off the available ring into free slots
 * and hands them to the executors, which run them (blk_handle) side by side:
 * a request waiting on the disk or a memory server no longer holds up the
 * ones behind it.  Completions are put on the used ring *in the order the
 * chains were taken*, whatever order they finish in, so the used index still
 * says exactly which chains are done: a restarted backend resumes there
 * without the inflight-I/O shared memory (docs/vhost.md, "Reconnect").  A
 * broken ring stops taking chains and signals the queue's err eventfd.
 *
 *   slots[inflight], a ring in the order chains were taken (counters grow
 *   forever; slot = counter % inflight):
 *
 *        pushed          started                 popped
 *          │   RUNNING/DONE │   QUEUED (waiting    │   FREE
 *          ▼  (executing or ▼   for an executor)   ▼
 *   ... ───┼────────────────┼──────────────────────┼──── ...
 *          └ the oldest: its completion goes on the used ring first; a DONE
 *            slot behind a RUNNING one waits (in-order push)
 *
 *   device thread                     poller                   executor k
 *   vh_worker_start ──create──▶ epoll(kick, stop)       wait(work)
 *                               pop into slots[popped] ──▶ blk_handle(slot)
 *                               (waits for a free slot)    DONE; push the
 *                                                          DONE prefix, call
 *   vh_worker_stop: stop the poller, then let the executors finish every
 *   chain taken and exit: when it returns, every chain taken is on the used
 *   ring (or the ring broke) and the queue is idle.
 *
 * One mutex per worker guards the slots, the counters and every vring call
 * (pop, push, notify, enable_kick); blk_handle runs outside it.
 */
#ifndef REMOCA_VHOST_QUEUE_H
#define REMOCA_VHOST_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk.h"
#include "device.h"

#define VH_INFLIGHT_MAX 64
#define VH_INFLIGHT_DEFAULT 8

enum vh_slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

struct vh_slot {
    struct vq_chain chain;
    int64_t used; /* blk_handle's result, once DONE */
    enum vh_slot_state state;
};

struct vh_worker {
    pthread_t poller;
    pthread_t exec[VH_INFLIGHT_MAX];
    unsigned nexec; /* executor threads running */
    int stop_fd;
    bool active;
    unsigned index;
    struct vu_queue *q;
    struct blk_dev *blk;
    void *io;

    pthread_mutex_t lock;
    pthread_cond_t work;  /* executors: a chain was queued, or quit */
    pthread_cond_t space; /* poller: a slot was freed, or stopping */
    struct vh_slot *slots;
    unsigned inflight;                /* slots */
    uint64_t popped, started, pushed; /* see the picture */
    bool stopping, quit, broken;
};

/* Starts queue `index` with `inflight` (1..VH_INFLIGHT_MAX) requests at most
 * in flight: 0, or -1 (logged). */
int vh_worker_start(struct vh_worker *w, struct vu_queue *q, unsigned index, struct blk_dev *blk,
                    void *io, unsigned inflight);
void vh_worker_stop(struct vh_worker *w);

/* Runs the queue until no chain is available, one chain at a time, in the
 * calling thread (the fuzzer and unit tests use it).  Returns false if the
 * ring broke. */
bool vh_queue_process(struct vu_queue *q, struct blk_dev *blk, void *io, struct vq_chain *chain,
                      unsigned index);

#endif
