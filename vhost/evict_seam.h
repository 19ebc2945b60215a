/* SPDX-License-Identifier: BSD-3-Clause */
/* The guest pages of a read or write, for exclusive mode (eviction inference
 * in the cache engine: docs/design.md, "Eviction inference").  For every
 * virtio-blk request io.c knows each whole guest page it fills or writes from:
 *
 *   struct vh_page { gpa, index, host, block }
 *     gpa    guest-physical address of the page (4 KiB aligned)
 *     index  the page's dense index in the memory table (vmem_page_index)
 *     host   where that page is mapped in this process
 *     block  the 4 KiB disk block it receives or holds (disk offset / 4096)
 *
 * A page is a 4 KiB piece of a data segment that starts on a guest page
 * boundary and at a 4 KiB-aligned disk offset.  A request that is exactly
 * such pages, block after block, goes to remoca_cache_read_pages /
 * write_pages; any other (edges, sub-page segments) to the plain hooks, which
 * in exclusive mode take remote hits but record no page.
 */
#ifndef REMOCA_VHOST_EVICT_SEAM_H
#define REMOCA_VHOST_EVICT_SEAM_H

#include <stddef.h>
#include <stdint.h>

struct vh_page {
    uint64_t gpa;
    uint64_t index;
    void *host;
    uint64_t block;
};

#endif
