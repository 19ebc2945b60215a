/* SPDX-License-Identifier: BSD-3-Clause */
/* virtio-blk (virtio 1.x 5.2) over a descriptor chain: the request header,
 * the data segments, the status byte, and the config space.  The disk
 * itself is behind struct blk_io_ops (io.c: the cache modes over the backing
 * disk; fakes in tests), so this file is libc-only and fuzzable.
 *
 *   a chain from vring_pop (device-readable segments first):
 *   ┌──────────────┬───────────────────────────┬──────────────────┬────────┐
 *   │ header, 16 B │ OUT: data / DISCARD, WZ:  │ IN: data         │ status │
 *   │ type, ioprio,│ 16-byte segments          │ GET_ID: 20 bytes │ 1 byte │
 *   │ sector       │ (device-readable)         │ (device-writable)│  (w)   │
 *   └──────────────┴───────────────────────────┴──────────────────┴────────┘
 *   any of these may be split across descriptors, or share one; blk.c slices
 *   the segment list by bytes into the parts, whatever the layout.
 */
#ifndef REMOCA_VHOST_BLK_H
#define REMOCA_VHOST_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "vring.h"

#define BLK_SEG_MAX 126                    /* config seg_max: data segments per request */
#define BLK_MAX_DISCARD_SECTORS (1u << 22) /* per discard or write-zeroes segment */

/* Each returns 0 or an errno value.  Data segments are guest memory (host
 * pointers with their guest-physical addresses), in disk order from offset. */
struct blk_io_ops {
    int (*read)(void *ctx, const struct vq_seg *segs, unsigned n, uint64_t offset, uint32_t len);
    int (*write)(void *ctx, const struct vq_seg *segs, unsigned n, uint64_t offset, uint32_t len);
    int (*flush)(void *ctx);
    int (*discard)(void *ctx, uint64_t offset, uint32_t len);
    int (*write_zeroes)(void *ctx, uint64_t offset, uint32_t len, bool unmap);
};

struct blk_stats {
    uint64_t requests, reads, writes, flushes, discards, write_zeroes, get_ids;
    uint64_t read_bytes, write_bytes;
    uint64_t ioerr, unsupp, bad_chains;
};

struct blk_dev {
    const struct blk_io_ops *ops;
    uint64_t size; /* bytes; capacity is size / 512 */
    bool readonly;
    char serial[VIRTIO_BLK_ID_BYTES];
    struct blk_stats st; /* updated atomically by the queue threads */
};

/* The device feature bits to offer (RO, FLUSH, DISCARD, WRITE_ZEROES, ...). */
uint64_t blk_features(const struct blk_dev *b, unsigned nqueues);
/* Fills the config space (struct virtio_blk_config) into buf. */
void blk_config(const struct blk_dev *b, unsigned nqueues, uint8_t *buf);

/* Executes one chain: the disk op, then the status byte.  Returns the used
 * length (bytes written into the chain), or -1 when the chain has no status
 * byte to carry a failure (the queue must be treated as broken). */
int64_t blk_handle(struct blk_dev *b, void *io_ctx, const struct vq_chain *c);

/* Helpers also used by io.c and tests: copy between a segment list and a
 * flat buffer (len bytes from the start of the list). */
void segs_to_buf(const struct vq_seg *segs, unsigned n, void *buf, size_t len);
void buf_to_segs(const struct vq_seg *segs, unsigned n, const void *buf, size_t len);

#endif
