/* SPDX-License-Identifier: BSD-3-Clause */
/* The guest memory table: regions of guest RAM that QEMU passes as fds
 * (SET_MEM_TABLE, or ADD_MEM_REG/REM_MEM_REG one at a time), mapped into this
 * process, and the translations the rings need:
 *   guest-physical address (descriptors)  ──▶ host pointer
 *   QEMU virtual address (ring addresses) ──▶ host pointer
 * A translation is for a range [addr, addr+len) and succeeds only if the
 * whole range lies inside one region's mapping; no pointer outside a mapping
 * is ever returned.
 *
 *   struct vmem (one per connection)
 *   ┌───────────────────────────────────────────────────────────────────┐
 *   │ n regions, sorted by nothing, n <= VU_MAX_MEM_SLOTS               │
 *   │ r[i]: gpa ─┬─ size ─┐  uva (QEMU)   host = map + mmap_offset      │
 *   │            ▼        ▼                                             │
 *   │   guest  [gpa ........ gpa+size)   no two regions overlap in gpa  │
 *   │   QEMU   [uva ........ uva+size)   nor in uva                     │
 *   │   here   [host ....... host+size)  inside [map, map+map_len)      │
 *   │ page_base[i]: dense 4 KiB page index of r[i]'s first page         │
 *   │ (guest_pages: their sum; names a guest page for exclusive mode)   │
 *   └───────────────────────────────────────────────────────────────────┘
 */
#ifndef REMOCA_VHOST_MEM_H
#define REMOCA_VHOST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct vmem_region {
    uint64_t gpa, size, uva, mmap_offset;
    uint8_t *host; /* first byte of the region in this process */
    void *map;     /* what mmap returned (NULL: not ours to unmap) */
    size_t map_len;
    uint64_t page_base; /* dense page index of the region's first page */
};

struct vmem {
    unsigned n;
    struct vmem_region r[VU_MAX_MEM_SLOTS];
    uint64_t guest_pages;
};

void vmem_init(struct vmem *m);
/* Unmaps every region. */
void vmem_clear(struct vmem *m);

/* Maps region *reg from fd (which the call always closes) after checking it:
 * size > 0, no overflow of gpa/uva/offset + size, mmap_offset + size within
 * the fd's size, no overlap with a region already present (in gpa or uva),
 * room in the table.  0, or -1 with a message in err. */
int vmem_add_fd(struct vmem *m, const struct vu_region *reg, int fd, char *err, size_t errlen);
/* Registers memory the caller owns (unit tests, fuzzers): same checks. */
int vmem_add_host(struct vmem *m, const struct vu_region *reg, void *host, char *err,
                  size_t errlen);
/* Removes (and unmaps) the region with exactly this gpa and size. 0 or -1. */
int vmem_remove(struct vmem *m, const struct vu_region *reg, char *err, size_t errlen);

/* Host pointer for [gpa, gpa+len) if it lies inside one region, else NULL.
 * len 0 is refused. */
void *vmem_gpa(const struct vmem *m, uint64_t gpa, uint64_t len);
/* Same for QEMU virtual addresses. */
void *vmem_uva(const struct vmem *m, uint64_t uva, uint64_t len);
/* The region holding gpa: host pointer for gpa and, in *avail, the bytes
 * from gpa to the end of that region; NULL if gpa is in no region. */
void *vmem_gpa_span(const struct vmem *m, uint64_t gpa, uint64_t *avail);
/* Dense 4 KiB page index of gpa (exclusive mode names guest pages by it);
 * UINT64_MAX if unmapped. */
uint64_t vmem_page_index(const struct vmem *m, uint64_t gpa);

#endif
