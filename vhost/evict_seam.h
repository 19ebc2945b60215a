/* SPDX-License-Identifier: BSD-3-Clause */
/* The seam for exclusive mode (eviction inference; docs/design.md,
 * "Eviction inference"), which the cache engine will implement later.  For
 * every virtio-blk read, io.c knows each whole guest page it fills:
 *
 *   struct vh_page { gpa, host, block }
 *     gpa    guest-physical address of the page (4 KiB aligned)
 *     index  the page's dense index in the memory table (vmem_page_index)
 *     host   where that page is mapped in this process
 *     block  the 4 KiB disk block it receives (disk offset / 4096)
 *
 * and calls, in this order, for the pages of one read request:
 *   before_read_overwrites(pages)   the pages still hold what they held
 *                                   before: the moment to save a page the
 *                                   guest has dropped from its page cache
 *   ... the read lands in the pages (remote hit or disk) ...
 *   after_request_completed(pages)  the pages now hold their new blocks;
 *                                   called before the status is written
 *
 * A page is a 4 KiB piece of a data segment that starts on a guest page
 * boundary and at a 4 KiB-aligned disk offset; the rest of a request (edges,
 * sub-page segments) is read without a page entry.  Today both functions are
 * no-ops, and --mode exclusive is refused at startup.
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

void before_read_overwrites(const struct vh_page *pages, size_t n);
void after_request_completed(const struct vh_page *pages, size_t n);

#endif
