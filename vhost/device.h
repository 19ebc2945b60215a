/* SPDX-License-Identifier: BSD-3-Clause */
/* The vhost-user device: the state one front-end connection builds up with
 * its messages, and the handler of each message.  The handler does no socket
 * I/O (the caller sends the reply it fills in), and starts and stops queue
 * workers only through the ops table, so unit tests and the fuzzer drive it
 * with fake ops.
 *
 *   struct vu_dev (one per connection; reset when it closes)
 *   ┌──────────────────────────────────────────────────────────────────────┐
 *   │ features (virtio), protocol_features     offered: vu_dev_features()  │
 *   │ mem: struct vmem (mem.h)                 SET_MEM_TABLE, ADD/REM_MEM_REG│
 *   │ q[i], i < nqueues:                                                    │
 *   │   num, addr (QEMU VAs), base  ──┐        SET_VRING_NUM/ADDR/BASE       │
 *   │   kick, call, err fds           │        SET_VRING_KICK/CALL/ERR       │
 *   │   enabled, started, broken      ├─ all set and memory mapped:         │
 *   │   running ◀─ ops->queue_start ──┘  vring_map + ops->queue_start       │
 *   │   vr: struct vring (vring.h), owned by the queue's worker while      │
 *   │       running; read back by GET_VRING_BASE after ops->queue_stop     │
 *   └──────────────────────────────────────────────────────────────────────┘
 *
 * Every message that changes state first stops all running queues (QEMU
 * sends none during I/O, so this costs nothing), is applied, and then every
 * queue that can run is started again: a worker never sees a memory table or
 * ring address change under it.
 */
#ifndef REMOCA_VHOST_DEVICE_H
#define REMOCA_VHOST_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "msg.h"
#include "vring.h"

#define VU_MAX_QUEUES 64

struct vu_dev;

struct vu_queue {
    unsigned num;
    struct vu_vring_addr addr;
    bool addr_set;
    uint16_t base; /* next avail index to take, while stopped */
    int kick_fd, call_fd, err_fd;
    bool enabled, started, broken, running;
    struct vring vr;
};

struct vu_dev_ops {
    uint64_t device_features; /* the device type's feature bits (virtio-blk's) */
    unsigned nqueues;         /* queues offered (GET_QUEUE_NUM) */
    /* Fills buf (VU_CONFIG_MAX bytes, zeroed) with the config space. */
    void (*get_config)(void *ctx, uint8_t *buf);
    /* q->vr is mapped: start serving queue i.  0 or -1. */
    int (*queue_start)(void *ctx, struct vu_dev *d, unsigned i);
    /* Stop serving queue i and wait until its worker is idle for good. */
    void (*queue_stop)(void *ctx, struct vu_dev *d, unsigned i);
    /* The memory table changed (may be NULL). */
    void (*mem_changed)(void *ctx, const struct vmem *m);
};

struct vu_dev {
    const struct vu_dev_ops *ops;
    void *ctx;
    uint64_t features, protocol_features;
    bool owner;
    struct vmem mem;
    struct vu_queue q[VU_MAX_QUEUES];
};

struct vu_reply {
    bool send;
    uint32_t size;
    union vu_payload p;
};

void vu_dev_init(struct vu_dev *d, const struct vu_dev_ops *ops, void *ctx);
/* The connection closed: stops the queues, unmaps memory, closes fds; the
 * device is as new (vu_dev_init) for the next connection. */
void vu_dev_reset(struct vu_dev *d);

uint64_t vu_dev_features(const struct vu_dev *d);
uint64_t vu_dev_protocol_features(void);

/* Handles one message that passed vu_msg_check; takes the fds it keeps and
 * closes the rest.  Fills *r when a reply is due.  Returns 0, or -1: the
 * connection must be closed (reason in err). */
int vu_dev_handle(struct vu_dev *d, struct vu_msg *m, struct vu_reply *r, char *err, size_t errlen);

#endif
