/* SPDX-License-Identifier: BSD-3-Clause */
/* Creation of a --shm store's memfds (see shm_region.h). */
#include "shm_region.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "remoca/wire.h"

#define HUGE_SZ (2u << 20)

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Maps len bytes of fd shared at a 2 MiB aligned address, so that the kernel
 * can back it with huge pages where shmem THP is enabled (best effort). */
static uint8_t *map_shared(int fd, size_t len)
{
    uint8_t *res =
        mmap(NULL, len + HUGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)res + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
    if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        int e = errno;
        munmap(res, len + HUGE_SZ);
        errno = e;
        return NULL;
    }
    if (p > res) munmap(res, (size_t)(p - res));
    munmap(p + len, (size_t)(res + HUGE_SZ - p));
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

static int fail(const char *step)
{
    int e = errno;
    log_error("--shm: %s: %s", step, strerror(e));
    errno = e;
    return -1;
}

/* A memfd of len bytes, mapped read-write at *map, then sealed: it can never
 * change size, and (future_write) no one can open a new way to write it. */
static int make_memfd(const char *name, size_t len, bool future_write, int *fd, uint8_t **map)
{
    *fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*fd < 0) return fail("memfd_create");
    if (ftruncate(*fd, (off_t)len) < 0) return fail("ftruncate");
    if (!(*map = map_shared(*fd, len))) return fail("mmap");
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | (future_write ? F_SEAL_FUTURE_WRITE : 0);
    if (fcntl(*fd, F_ADD_SEALS, seals | F_SEAL_SEAL) < 0) return fail("sealing the memfd");
    return 0;
}

int shm_region_create(struct shm_region *r, uint32_t npages, uint32_t nbuckets)
{
    memset(r, 0, sizeof *r);
    r->data_fd = r->data_ro_fd = r->touch_fd = -1;
    struct remoca_shm_layout *l = &r->layout;
    l->version = REMOCA_SHM_VERSION;
    l->npages = npages;
    l->bmask = nbuckets - 1;
    l->off_slots = 0;
    l->off_seqs = align_up((uint64_t)npages * sizeof(struct remoca_shm_slot), 64);
    l->off_buckets = align_up(l->off_seqs + (uint64_t)npages * 4, 64);
    l->off_sides = align_up(l->off_buckets + (uint64_t)nbuckets * 4, 64);
    /* The arena starts on a 2 MiB boundary of the file (sparse: costs nothing). */
    l->off_arena = align_up(l->off_sides + (uint64_t)npages * REMOCA_SIDE_SIZE, HUGE_SZ);
    l->data_size = l->off_arena + (uint64_t)npages * REMOCA_PAGE_SIZE;
    l->touch_size = align_up(npages, REMOCA_PAGE_SIZE);

    if (make_memfd("remoca-memd-data", l->data_size, true, &r->data_fd, &r->data) < 0 ||
        make_memfd("remoca-memd-touch", l->touch_size, false, &r->touch_fd, &r->touch) < 0)
        goto err;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r->data_fd);
    r->data_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->data_ro_fd < 0) {
        fail("read-only reopen of the data memfd (is /proc mounted?)");
        goto err;
    }
    return 0;
err:;
    int e = errno;
    shm_region_destroy(r);
    errno = e;
    return -1;
}

void shm_region_destroy(struct shm_region *r)
{
    if (r->data) munmap(r->data, r->layout.data_size);
    if (r->touch) munmap(r->touch, r->layout.touch_size);
    if (r->data_fd >= 0) close(r->data_fd);
    if (r->data_ro_fd >= 0) close(r->data_ro_fd);
    if (r->touch_fd >= 0) close(r->touch_fd);
    memset(r, 0, sizeof *r);
    r->data_fd = r->data_ro_fd = r->touch_fd = -1;
}
