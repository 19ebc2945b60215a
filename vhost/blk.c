/* SPDX-License-Identifier: BSD-3-Clause */
/* virtio-blk requests (blk.h).  What is checked here, per request: the
 * walker's verdict (vring.c), a status byte at the end of the device-writable
 * part, a 16-byte header in the device-readable part, the exact direction of
 * the other parts for the type, data lengths a multiple of 512, sector
 * ranges inside the disk (64-bit arithmetic, overflow-checked), discard and
 * write-zeroes segments one at a time within the advertised limits and flags,
 * writes refused on a read-only disk.  A failed check is VIRTIO_BLK_S_IOERR
 * (VIRTIO_BLK_S_UNSUPP for an unknown type), never a partial operation. */
#include <string.h>

#include "blk.h"

#define BIT(n) (1ull << (n))
#define STAT(b, f, v) __atomic_fetch_add(&(b)->st.f, (v), __ATOMIC_RELAXED)

uint64_t blk_features(const struct blk_dev *b, unsigned nqueues)
{
    uint64_t f = BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |
                 BIT(VIRTIO_BLK_F_MQ);
    if (b->readonly)
        f |= BIT(VIRTIO_BLK_F_RO);
    else
        f |= BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    (void)nqueues;
    return f;
}

void blk_config(const struct blk_dev *b, unsigned nqueues, uint8_t *buf)
{
    struct virtio_blk_config c;
    memset(&c, 0, sizeof c);
    c.capacity = b->size / 512;
    c.seg_max = BLK_SEG_MAX;
    c.blk_size = 512;
    c.num_queues = (uint16_t)nqueues;
    c.max_discard_sectors = BLK_MAX_DISCARD_SECTORS;
    c.max_discard_seg = 1;
    c.discard_sector_alignment = 8; /* 4 KiB: the cache's block */
    c.max_write_zeroes_sectors = BLK_MAX_DISCARD_SECTORS;
    c.max_write_zeroes_seg = 1;
    c.write_zeroes_may_unmap = 1;
    memcpy(buf, &c, sizeof c);
}

void segs_to_buf(const struct vq_seg *segs, unsigned n, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        size_t k = segs[i].len < len - done ? segs[i].len : len - done;
        memcpy((uint8_t *)buf + done, segs[i].host, k);
        done += k;
    }
}

void buf_to_segs(const struct vq_seg *segs, unsigned n, const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        size_t k = segs[i].len < len - done ? segs[i].len : len - done;
        memcpy(segs[i].host, (const uint8_t *)buf + done, k);
        done += k;
    }
}

/* The bytes [skip, skip+len) of the chain's device-readable (write=false)
 * or device-writable part, as segments into out[].  Returns the count. */
static unsigned slice(const struct vq_chain *c, bool write, uint64_t skip, uint64_t len,
                      struct vq_seg *out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n && len; i++) {
        const struct vq_seg *s = &c->seg[i];
        if (s->write != write) continue;
        if (skip >= s->len) {
            skip -= s->len;
            continue;
        }
        uint64_t k = s->len - skip < len ? s->len - skip : len;
        out[n++] = (struct vq_seg){s->host + skip, (uint32_t)k, write, s->gpa + skip};
        skip = 0;
        len -= k;
    }
    return n;
}

/* Checks [sector*512, +len) against the disk; the byte offset in *off. */
static bool in_range(const struct blk_dev *b, uint64_t sector, uint64_t len, uint64_t *off)
{
    if (sector > UINT64_MAX / 512) return false;
    *off = sector * 512;
    return *off <= b->size && len <= b->size - *off;
}

static uint8_t discard_wz(struct blk_dev *b, void *io, const struct vq_chain *c, bool wz)
{
    struct vq_seg s[2];
    struct virtio_blk_discard_wz seg;
    uint64_t off;
    if (b->readonly || c->out_bytes != 16 + sizeof seg) return VIRTIO_BLK_S_IOERR;
    unsigned n = slice(c, false, 16, sizeof seg, s);
    segs_to_buf(s, n, &seg, sizeof seg);
    if (seg.num_sectors > BLK_MAX_DISCARD_SECTORS ||
        !in_range(b, seg.sector, (uint64_t)seg.num_sectors * 512, &off))
        return VIRTIO_BLK_S_IOERR;
    if (wz ? seg.flags & ~VIRTIO_BLK_WZ_F_UNMAP : seg.flags) return VIRTIO_BLK_S_UNSUPP;
    uint32_t len = seg.num_sectors * 512;
    if (len == 0) return VIRTIO_BLK_S_OK;
    int e = wz ? b->ops->write_zeroes(io, off, len, seg.flags & VIRTIO_BLK_WZ_F_UNMAP)
               : b->ops->discard(io, off, len);
    return e ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

int64_t blk_handle(struct blk_dev *b, void *io, const struct vq_chain *c)
{
    STAT(b, requests, 1);
    if (c->error != VQ_OK || !c->status || c->in_bytes < 1) {
        STAT(b, bad_chains, 1);
        if (!c->status) return -1;
        STAT(b, ioerr, 1);
        __atomic_store_n(c->status, (uint8_t)VIRTIO_BLK_S_IOERR, __ATOMIC_RELAXED);
        return 1;
    }
    struct vq_seg segs[VQ_MAX_SEGS];
    struct virtio_blk_outhdr h;
    uint64_t in_data = c->in_bytes - 1, out_data = c->out_bytes >= 16 ? c->out_bytes - 16 : 0;
    uint8_t status = VIRTIO_BLK_S_IOERR;
    uint32_t written = 0;
    uint64_t off;
    if (c->out_bytes < 16) goto done;
    segs_to_buf(segs, slice(c, false, 0, 16, segs), &h, sizeof h);
    switch (h.type) {
    case VIRTIO_BLK_T_IN: {
        STAT(b, reads, 1);
        if (out_data || in_data % 512 || !in_range(b, h.sector, in_data, &off)) break;
        unsigned n = slice(c, true, 0, in_data, segs);
        if (in_data && b->ops->read(io, segs, n, off, (uint32_t)in_data)) break;
        STAT(b, read_bytes, in_data);
        written = (uint32_t)in_data;
        status = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_OUT: {
        STAT(b, writes, 1);
        if (b->readonly || in_data || out_data % 512 || !in_range(b, h.sector, out_data, &off))
            break;
        unsigned n = slice(c, false, 16, out_data, segs);
        if (out_data && b->ops->write(io, segs, n, off, (uint32_t)out_data)) break;
        STAT(b, write_bytes, out_data);
        status = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        STAT(b, flushes, 1);
        if (!b->ops->flush(io)) status = VIRTIO_BLK_S_OK;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        STAT(b, get_ids, 1);
        if (out_data) break;
        uint64_t k = in_data < VIRTIO_BLK_ID_BYTES ? in_data : VIRTIO_BLK_ID_BYTES;
        buf_to_segs(segs, slice(c, true, 0, k, segs), b->serial, k);
        written = (uint32_t)k;
        status = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_DISCARD:
        STAT(b, discards, 1);
        if (!in_data) status = discard_wz(b, io, c, false);
        break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
        STAT(b, write_zeroes, 1);
        if (!in_data) status = discard_wz(b, io, c, true);
        break;
    default: status = VIRTIO_BLK_S_UNSUPP; break;
    }
done:
    if (status == VIRTIO_BLK_S_IOERR) STAT(b, ioerr, 1);
    if (status == VIRTIO_BLK_S_UNSUPP) STAT(b, unsupp, 1);
    __atomic_store_n(c->status, status, __ATOMIC_RELAXED);
    return (int64_t)written + 1;
}
