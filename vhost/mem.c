/* SPDX-License-Identifier: BSD-3-Clause */
/* The guest memory table (mem.h).  Regions are few (QEMU uses 1-3 for a
 * plain guest), so lookups are a linear scan.  All arithmetic on the
 * front end's numbers is checked for overflow before use. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

void vmem_init(struct vmem *m) { memset(m, 0, sizeof *m); }

static void recount_pages(struct vmem *m)
{
    uint64_t p = 0;
    for (unsigned i = 0; i < m->n; i++) {
        m->r[i].page_base = p;
        p += (m->r[i].size + 4095) / 4096;
    }
    m->guest_pages = p;
}

void vmem_clear(struct vmem *m)
{
    for (unsigned i = 0; i < m->n; i++)
        if (m->r[i].map) munmap(m->r[i].map, m->r[i].map_len);
    vmem_init(m);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen; /* callers checked that neither end overflows */
}

static int check_region(const struct vmem *m, const struct vu_region *reg, char *err, size_t errlen)
{
    uint64_t end;
    if (reg->size == 0) {
        snprintf(err, errlen, "memory region of size 0");
        return -1;
    }
    if (__builtin_add_overflow(reg->gpa, reg->size, &end) ||
        __builtin_add_overflow(reg->uva, reg->size, &end) ||
        __builtin_add_overflow(reg->mmap_offset, reg->size, &end) || reg->size > SIZE_MAX / 2) {
        snprintf(err, errlen, "memory region 0x%llx+0x%llx overflows", (unsigned long long)reg->gpa,
                 (unsigned long long)reg->size);
        return -1;
    }
    if (m->n >= VU_MAX_MEM_SLOTS) {
        snprintf(err, errlen, "more than %d memory regions", VU_MAX_MEM_SLOTS);
        return -1;
    }
    for (unsigned i = 0; i < m->n; i++) {
        if (overlaps(reg->gpa, reg->size, m->r[i].gpa, m->r[i].size) ||
            overlaps(reg->uva, reg->size, m->r[i].uva, m->r[i].size)) {
            snprintf(err, errlen, "memory region gpa 0x%llx+0x%llx overlaps region %u",
                     (unsigned long long)reg->gpa, (unsigned long long)reg->size, i);
            return -1;
        }
    }
    return 0;
}

static void append(struct vmem *m, const struct vu_region *reg, uint8_t *host, void *map,
                   size_t map_len)
{
    struct vmem_region *r = &m->r[m->n++];
    r->gpa = reg->gpa;
    r->size = reg->size;
    r->uva = reg->uva;
    r->mmap_offset = reg->mmap_offset;
    r->host = host;
    r->map = map;
    r->map_len = map_len;
    recount_pages(m);
}

int vmem_add_host(struct vmem *m, const struct vu_region *reg, void *host, char *err, size_t errlen)
{
    if (check_region(m, reg, err, errlen) < 0) return -1;
    append(m, reg, host, NULL, 0);
    return 0;
}

int vmem_add_fd(struct vmem *m, const struct vu_region *reg, int fd, char *err, size_t errlen)
{
    struct stat st;
    int r = -1;
    if (fd < 0) {
        snprintf(err, errlen, "memory region without an fd");
        return -1;
    }
    if (check_region(m, reg, err, errlen) < 0) goto out;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "fstat of a memory region fd: %s", strerror(errno));
        goto out;
    }
    /* mmap_offset + size was checked for overflow above. */
    if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
        reg->mmap_offset + reg->size > (uint64_t)st.st_size) {
        snprintf(err, errlen,
                 "memory region fd too small or not a file: offset 0x%llx + size 0x%llx, fd "
                 "size 0x%llx",
                 (unsigned long long)reg->mmap_offset, (unsigned long long)reg->size,
                 (unsigned long long)st.st_size);
        goto out;
    }
    /* Map from offset 0 so that an unaligned mmap_offset is fine. */
    size_t len = (size_t)(reg->mmap_offset + reg->size);
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "mmap of a memory region (%zu bytes): %s", len, strerror(errno));
        goto out;
    }
    madvise(map, len, MADV_DONTDUMP);
    append(m, reg, (uint8_t *)map + reg->mmap_offset, map, len);
    r = 0;
out:
    close(fd);
    return r;
}

int vmem_remove(struct vmem *m, const struct vu_region *reg, char *err, size_t errlen)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->r[i].gpa != reg->gpa || m->r[i].size != reg->size) continue;
        if (m->r[i].map) munmap(m->r[i].map, m->r[i].map_len);
        m->r[i] = m->r[--m->n];
        recount_pages(m);
        return 0;
    }
    snprintf(err, errlen, "no memory region at gpa 0x%llx size 0x%llx to remove",
             (unsigned long long)reg->gpa, (unsigned long long)reg->size);
    return -1;
}

void *vmem_gpa_span(const struct vmem *m, uint64_t gpa, uint64_t *avail)
{
    for (unsigned i = 0; i < m->n; i++) {
        const struct vmem_region *r = &m->r[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            *avail = r->size - (gpa - r->gpa);
            return r->host + (gpa - r->gpa);
        }
    }
    return NULL;
}

void *vmem_gpa(const struct vmem *m, uint64_t gpa, uint64_t len)
{
    uint64_t avail;
    if (len == 0) return NULL;
    void *p = vmem_gpa_span(m, gpa, &avail);
    return p && len <= avail ? p : NULL;
}

void *vmem_uva(const struct vmem *m, uint64_t uva, uint64_t len)
{
    if (len == 0) return NULL;
    for (unsigned i = 0; i < m->n; i++) {
        const struct vmem_region *r = &m->r[i];
        if (uva >= r->uva && uva - r->uva < r->size && len <= r->size - (uva - r->uva))
            return r->host + (uva - r->uva);
    }
    return NULL;
}

uint64_t vmem_page_index(const struct vmem *m, uint64_t gpa)
{
    for (unsigned i = 0; i < m->n; i++) {
        const struct vmem_region *r = &m->r[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) return r->page_base + (gpa - r->gpa) / 4096;
    }
    return UINT64_MAX;
}
