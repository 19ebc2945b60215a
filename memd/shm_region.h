/* SPDX-License-Identifier: BSD-3-Clause */
/* The shared memory of a store started with --shm (layout and reader
 * contract: lib/wire/include/remoca/shm.h).
 *
 *   data memfd (sealed: no new writer, no resize)     touch memfd (sealed size)
 *   ├─ slots ─┼─ seqs ─┼─ buckets ─┼─ (2 MiB) ─┼─ arena ─┤   ├─ touched[npages] ─┤
 *   mapped read-write here; clients get data_ro_fd         read-write for clients
 *
 * data_ro_fd is a read-only reopen of the data memfd (/proc/self/fd/N,
 * O_RDONLY): a mapping made from it can never become writable.  The seals
 * close the other way in: a client that reopens its fd through /proc with
 * O_RDWR still cannot write or map the data writable (F_SEAL_FUTURE_WRITE),
 * and nobody can shrink either memfd under the server (which would make its
 * own accesses fault).  The fds live as long as the store.
 */
#ifndef MEMD_SHM_REGION_H
#define MEMD_SHM_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "remoca/shm.h"

struct shm_region {
    int data_fd;    /* read-write, the server's own */
    int data_ro_fd; /* read-only: what SHM_MAP hands out */
    int touch_fd;   /* read-write, handed out as is */
    uint8_t *data, *touch;
    struct remoca_shm_layout layout; /* .pool = 0: SHM_MAP fills it in per handle */
};

/* Creates and maps both memfds for npages pages and nbuckets buckets (a power
 * of two).  0, or -1 with errno set and the failing step logged. */
int shm_region_create(struct shm_region *r, uint32_t npages, uint32_t nbuckets);
void shm_region_destroy(struct shm_region *r);

#endif
