/* SPDX-License-Identifier: BSD-3-Clause */
/* The cache modes between virtio-blk (blk.h) and the backing disk (disk.h):
 *
 *   blk_handle ──blk_io_ops──▶ struct vh_io ─┬─ off:       disk directly (preadv/pwritev)
 *                                            ├─ inclusive: remoca_cache_* (libremoca),
 *                                            │             its backing ops over the disk
 *                                            └─ exclusive: whole-page requests through
 *                                                          remoca_cache_read/write_pages
 *                                                          (evict_seam.h), the rest as inclusive
 *
 * The engine reads into and writes from one contiguous buffer.  A request's
 * data segments are first merged where their host ranges touch; one run is
 * one engine call; several runs, each at a 512-aligned disk offset and of a
 * 512-multiple length, are one call per run; anything else goes through a
 * bounce buffer (one call, then a copy).
 */
#ifndef REMOCA_VHOST_IO_H
#define REMOCA_VHOST_IO_H

#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "evict_seam.h"

struct remoca_cache;
struct disk;
struct vmem;

enum vh_mode { VH_MODE_OFF, VH_MODE_INCLUSIVE, VH_MODE_EXCLUSIVE };

struct vh_io_stats {
    uint64_t single_calls, split_calls, bounced; /* how reads/writes reached the engine */
    uint64_t page_calls; /* exclusive: requests through the engine's page hooks */
};

struct vh_io {
    enum vh_mode mode;
    struct disk *disk;
    struct remoca_cache *cache; /* inclusive, exclusive */
    struct remoca_mrc *mrc;     /* off: the reads' miss-ratio curve (the engine keeps its own) */
    const struct vmem *mem;     /* exclusive: names pages */
    struct vh_io_stats st;
};

extern const struct blk_io_ops vh_io_ops; /* ctx: struct vh_io */

/* The whole guest pages a read of segs at disk offset off fills (see
 * evict_seam.h); at most max entries go to out.  Returns the count. */
size_t vh_read_pages(const struct vmem *mem, const struct vq_seg *segs, unsigned n, uint64_t off,
                     struct vh_page *out, size_t max);

#endif
