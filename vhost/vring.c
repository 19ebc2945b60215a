/* SPDX-License-Identifier: BSD-3-Clause */
/* The split-virtqueue walker (vring.h).  Memory ordering follows virtio
 * 2.7.13: the avail index is read with acquire before the entries it
 * publishes; a used element is written before the used index (release);
 * before deciding whether to interrupt or to sleep, a full fence orders our
 * index store against the driver's flag/event reads (and vice versa). */
#include <stdio.h>
#include <string.h>

#include "vring.h"

static uint16_t load16(const uint16_t *p, int order) { return __atomic_load_n(p, order); }

int vring_map(struct vring *vr, const struct vmem *mem, unsigned num, uint64_t desc_uva,
              uint64_t avail_uva, uint64_t used_uva, bool event_idx, char *err, size_t errlen)
{
    memset(vr, 0, sizeof *vr);
    if (num == 0 || num > VRING_MAX_SIZE || (num & (num - 1))) {
        snprintf(err, errlen, "queue size %u is not a power of 2 up to %u", num, VRING_MAX_SIZE);
        return -1;
    }
    uint64_t ev = event_idx ? 2 : 0;
    void *d = vmem_uva(mem, desc_uva, 16ull * num);
    void *a = vmem_uva(mem, avail_uva, 4 + 2ull * num + ev);
    void *u = vmem_uva(mem, used_uva, 4 + 8ull * num + ev);
    if (!d || !a || !u) {
        snprintf(err, errlen,
                 "ring %s not inside guest memory (desc 0x%llx avail 0x%llx used 0x%llx)",
                 !d   ? "descriptor table"
                 : !a ? "avail ring"
                      : "used ring",
                 (unsigned long long)desc_uva, (unsigned long long)avail_uva,
                 (unsigned long long)used_uva);
        return -1;
    }
    if (((uintptr_t)d & 15) || ((uintptr_t)a & 1) || ((uintptr_t)u & 3)) {
        snprintf(err, errlen, "ring parts misaligned");
        return -1;
    }
    vr->num = num;
    vr->desc = d;
    vr->avail = a;
    vr->used = u;
    vr->event_idx = event_idx;
    vr->mem = mem;
    return 0;
}

uint16_t vring_used_idx_in_ring(const struct vring *vr)
{
    return load16(&vr->used[1], __ATOMIC_ACQUIRE);
}

static void set_error(struct vq_chain *c, enum vq_error e)
{
    if (c->error == VQ_OK) c->error = e;
}

/* One data descriptor (not INDIRECT): its buffer becomes segments. */
static void add_desc(const struct vring *vr, struct vq_chain *c, const struct vring_desc *d,
                     bool *seen_write)
{
    bool w = d->flags & VRING_DESC_F_WRITE;
    c->status = NULL;
    if (d->len == 0) {
        set_error(c, VQ_E_ZERO_LEN);
        return;
    }
    if (!w && *seen_write) set_error(c, VQ_E_ORDER);
    if (w) *seen_write = true;
    if (w)
        c->in_bytes += d->len;
    else
        c->out_bytes += d->len;
    if (c->in_bytes + c->out_bytes > VQ_MAX_BYTES) set_error(c, VQ_E_TOO_LONG);
    uint64_t gpa = d->addr, left = d->len;
    while (left) {
        uint64_t avail;
        uint8_t *host = vmem_gpa_span(vr->mem, gpa, &avail);
        if (!host) {
            set_error(c, VQ_E_UNMAPPED);
            return;
        }
        uint64_t take = left < avail ? left : avail;
        if (c->n < VQ_MAX_SEGS)
            c->seg[c->n++] = (struct vq_seg){host, (uint32_t)take, w, gpa};
        else
            set_error(c, VQ_E_TOO_MANY);
        gpa += take; /* <= the region's end, which does not overflow */
        left -= take;
    }
    /* Fully mapped: its last byte is where a status could go. */
    if (w) c->status = vmem_gpa(vr->mem, d->addr + d->len - 1, 1);
}

static int broken(struct vring *vr, char *err, size_t errlen, const char *why, unsigned v)
{
    vr->broken = true;
    snprintf(err, errlen, "%s (%u); queue stopped until the driver resets it", why, v);
    return -1;
}

int vring_pop(struct vring *vr, struct vq_chain *c, char *err, size_t errlen)
{
    if (vr->broken || !vr->num) return -1;
    uint16_t avail_idx = load16(&vr->avail[1], __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(avail_idx - vr->last_avail);
    if (pending == 0) return 0;
    if (pending > vr->num) return broken(vr, err, errlen, "avail index ran ahead by", pending);
    uint16_t head = load16(&vr->avail[2 + vr->last_avail % vr->num], __ATOMIC_RELAXED);
    if (head >= vr->num) return broken(vr, err, errlen, "chain head out of range", head);
    vr->last_avail++;

    c->head = head;
    c->n = 0;
    c->in_bytes = c->out_bytes = 0;
    c->error = VQ_OK;
    c->status = NULL;
    const uint8_t *table = (const uint8_t *)vr->desc;
    unsigned tsize = vr->num, count = 0, i = head;
    bool indirect = false, seen_write = false;
    for (;;) {
        if (i >= tsize) return broken(vr, err, errlen, "descriptor index out of range", i);
        if (++count > tsize)
            return broken(vr, err, errlen, "descriptor chain longer than its table (a loop?)",
                          tsize);
        struct vring_desc d;
        memcpy(&d, table + (size_t)i * sizeof d, sizeof d); /* one read of the guest's copy */
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (indirect) return broken(vr, err, errlen, "nested indirect table", i);
            if (d.flags & VRING_DESC_F_NEXT)
                return broken(vr, err, errlen, "indirect descriptor with NEXT", i);
            if (d.len == 0 || d.len % sizeof d || d.len / sizeof d > vr->num)
                return broken(vr, err, errlen, "indirect table of bad length", d.len);
            table = vmem_gpa(vr->mem, d.addr, d.len);
            if (!table) return broken(vr, err, errlen, "indirect table outside guest memory", i);
            tsize = d.len / sizeof d;
            i = 0;
            count = 0;
            indirect = true;
            continue;
        }
        add_desc(vr, c, &d, &seen_write);
        if (!(d.flags & VRING_DESC_F_NEXT)) break;
        i = d.next;
    }
    return 1;
}

void vring_push(struct vring *vr, uint16_t head, uint32_t len)
{
    uint32_t *elem = (uint32_t *)(vr->used + 2) + 2 * (size_t)(vr->used_idx % vr->num);
    __atomic_store_n(&elem[0], (uint32_t)head, __ATOMIC_RELAXED);
    __atomic_store_n(&elem[1], len, __ATOMIC_RELAXED);
    vr->used_idx++;
    __atomic_store_n(&vr->used[1], vr->used_idx, __ATOMIC_RELEASE);
}

bool vring_need_notify(struct vring *vr)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t now = vr->used_idx, old = vr->signalled_used;
    bool valid = vr->signalled_valid;
    vr->signalled_used = now;
    vr->signalled_valid = true;
    if (!vr->event_idx)
        return !(load16(&vr->avail[0], __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
    if (!valid) return true;
    uint16_t ev = load16(&vr->avail[2 + vr->num], __ATOMIC_RELAXED);
    return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
}

bool vring_guest_behind(const struct vring *vr)
{
    if (!vr->event_idx) return false;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t ev = load16(&vr->avail[2 + vr->num], __ATOMIC_RELAXED);
    return (uint16_t)(vr->used_idx - ev - 1) < vr->num; /* completions in [ev, used_idx) */
}

bool vring_enable_kick(struct vring *vr)
{
    if (vr->event_idx)
        __atomic_store_n(&vr->used[2 + 4 * (size_t)vr->num], vr->last_avail, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load16(&vr->avail[1], __ATOMIC_ACQUIRE) != vr->last_avail;
}
