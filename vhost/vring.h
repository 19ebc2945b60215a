/* SPDX-License-Identifier: BSD-3-Clause */
/* The split-virtqueue walker (virtio 1.x 2.7): takes descriptor chains off
 * the available ring, turns each into a list of host segments bounded by the
 * guest memory table, and puts completions on the used ring.  The guest owns
 * every byte of the rings and may change them at any time: each descriptor is
 * copied once and the copy is checked; indices are checked against the queue
 * size; nothing outside a mapping is read or written.
 *
 *   guest memory (mapped)                     struct vring (one per queue)
 *   desc[num]  {addr,len,flags,next} ◀─────── desc
 *   avail      {flags, idx, ring[num],        avail, last_avail (next to take)
 *               used_event}            ◀────
 *   used       {flags, idx, ring[num]         used, used_idx (next to fill),
 *               {id,len}, avail_event} ◀────  signalled_used (for EVENT_IDX)
 *
 *   one chain ──walk──▶ struct vq_chain
 *   head ─▶ d0 ─next─▶ d1 ─next─▶ d2(INDIRECT) ─▶ table[k] ─▶ t0 ─▶ t1 ...
 *          seg[0..n): {host, len, gpa, write}, a descriptor that spans two
 *          adjacent regions becomes two segments; device-readable ones first
 *
 * Errors come in two kinds:
 *  - the chain's *structure* is bad (head or next index >= num, a loop, i.e.
 *    more descriptors than the queue size, an indirect table that is nested,
 *    unmapped, empty, not a multiple of 16 bytes or longer than the queue,
 *    INDIRECT with NEXT, the avail index more than num ahead): the queue is
 *    broken (vring_pop returns -1) and stays stopped until the front end
 *    resets it; nothing is completed, since no status byte can be trusted;
 *  - a descriptor's *data* is bad (a buffer not in guest memory, length 0,
 *    a device-readable buffer after a device-writable one, more than
 *    VQ_MAX_SEGS segments, more than VQ_MAX_BYTES in total): the chain is
 *    returned with `error` set, and `status` points at the last byte of the
 *    last descriptor if that one is device-writable and mapped, so the
 *    request can fail with an I/O error status.
 */
#ifndef REMOCA_VHOST_VRING_H
#define REMOCA_VHOST_VRING_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"

#define VQ_MAX_SEGS 256                     /* segments of one chain (seg_max is 126) */
#define VQ_MAX_BYTES (128ull * 1024 * 1024) /* bytes of one chain */

struct vq_seg {
    uint8_t *host;
    uint32_t len;
    bool write;   /* device-writable (the device fills it) */
    uint64_t gpa; /* guest-physical address of host[0] */
};

enum vq_error {
    VQ_OK = 0,
    VQ_E_UNMAPPED, /* a buffer outside guest memory, or straddling a region end */
    VQ_E_ZERO_LEN, /* a descriptor of length 0 */
    VQ_E_ORDER,    /* device-readable after device-writable */
    VQ_E_TOO_MANY, /* more than VQ_MAX_SEGS segments */
    VQ_E_TOO_LONG, /* more than VQ_MAX_BYTES */
};

struct vq_chain {
    uint16_t head;
    unsigned n; /* segments in seg[] */
    struct vq_seg seg[VQ_MAX_SEGS];
    uint64_t out_bytes, in_bytes; /* device-readable, device-writable totals */
    enum vq_error error;
    uint8_t *status; /* error case: where an I/O error status may go, or NULL */
};

struct vring {
    unsigned num; /* 0: not configured */
    struct vring_desc *desc;
    uint16_t *avail; /* [0] flags, [1] idx, [2 + i] ring, [2 + num] used_event */
    uint16_t *used;  /* [0] flags, [1] idx, then elems, then avail_event */
    uint16_t last_avail, used_idx, signalled_used;
    bool signalled_valid;
    bool event_idx;
    bool broken;
    const struct vmem *mem;
};

/* Translates the ring addresses (QEMU virtual) through mem and checks size,
 * alignment and that each part lies in one region.  0, or -1 with err. */
int vring_map(struct vring *vr, const struct vmem *mem, unsigned num, uint64_t desc_uva,
              uint64_t avail_uva, uint64_t used_uva, bool event_idx, char *err, size_t errlen);

/* Takes the next chain: 1 (a chain in *c, perhaps with c->error set), 0 (none
 * available), -1 (the ring is broken; vr->broken is set, reason in err). */
int vring_pop(struct vring *vr, struct vq_chain *c, char *err, size_t errlen);

/* Puts a completion of `len` device-written bytes for chain `head`. */
void vring_push(struct vring *vr, uint16_t head, uint32_t len);

/* After pushes: whether the driver wants an interrupt now (EVENT_IDX's
 * used_event, or the avail ring's NO_INTERRUPT flag). */
bool vring_need_notify(struct vring *vr);

/* With EVENT_IDX: whether the driver's used_event says it has not seen
 * every completion yet (it processed used_event of used_idx entries). */
bool vring_guest_behind(const struct vring *vr);

/* Before sleeping: tell the driver where to kick (EVENT_IDX's avail_event)
 * and return true if more chains arrived meanwhile. */
bool vring_enable_kick(struct vring *vr);

/* The used index as the ring has it (where a restarted backend resumes). */
uint16_t vring_used_idx_in_ring(const struct vring *vr);

#endif
