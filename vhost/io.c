/* SPDX-License-Identifier: BSD-3-Clause */
/* The cache modes (io.h): blk_io_ops over the disk, directly or through the
 * remoca_cache engine.  The engine's backing ops are per-call callbacks whose
 * ctx is the struct disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "remoca/cache.h"
#include "remoca/mrc.h"

#include "disk.h"
#include "io.h"
#include "mem.h"

#define VH_ZERO_MAY_UNMAP 1u /* our flag for the engine's zero callback */

static int ret(int e, int *err)
{
    if (!e) return 0;
    *err = e;
    return -1;
}
static int b_pread(void *ctx, void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    return ret(disk_pread(ctx, buf, n, off), err);
}
static int b_pwrite(void *ctx, const void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    return ret(disk_pwrite(ctx, buf, n, off), err);
}
static int b_trim(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    return ret(disk_discard(ctx, off, n), err);
}
static int b_zero(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    return ret(disk_zero(ctx, off, n, fl & VH_ZERO_MAY_UNMAP), err);
}
static int b_flush(void *ctx, uint32_t fl, int *err) { return ret(disk_flush(ctx), err); }

static const struct remoca_backing_ops disk_backing_ops = {b_pread, b_pwrite, b_trim, b_zero,
                                                           b_flush};

/* Merges segments whose host ranges touch into runs. */
static int merge(const struct vq_seg *segs, unsigned n, struct iovec *out)
{
    int k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (k && (uint8_t *)out[k - 1].iov_base + out[k - 1].iov_len == segs[i].host)
            out[k - 1].iov_len += segs[i].len;
        else
            out[k++] = (struct iovec){segs[i].host, segs[i].len};
    }
    return k;
}

static int engine_call(struct vh_io *io, bool write, void *buf, size_t len, uint64_t off)
{
    struct remoca_backing b = {&disk_backing_ops, io->disk};
    int err = EIO;
    int r = write ? remoca_cache_write(io->cache, &b, buf, (uint32_t)len, off, 0, &err)
                  : remoca_cache_read(io->cache, &b, buf, (uint32_t)len, off, 0, &err);
    return r < 0 ? (err ? err : EIO) : 0;
}

/* One engine call per run, or a bounce buffer (io.h). */
static int engine_rw(struct vh_io *io, bool write, const struct iovec *iov, int k, uint64_t off,
                     uint32_t len)
{
    if (k == 1) {
        __atomic_fetch_add(&io->st.single_calls, 1, __ATOMIC_RELAXED);
        return engine_call(io, write, iov[0].iov_base, iov[0].iov_len, off);
    }
    bool split = true;
    uint64_t o = off;
    for (int i = 0; i < k && split; i++) {
        split = o % 512 == 0 && iov[i].iov_len % 512 == 0;
        o += iov[i].iov_len;
    }
    if (split) {
        __atomic_fetch_add(&io->st.split_calls, 1, __ATOMIC_RELAXED);
        for (int i = 0; i < k; i++) {
            int e = engine_call(io, write, iov[i].iov_base, iov[i].iov_len, off);
            if (e) return e;
            off += iov[i].iov_len;
        }
        return 0;
    }
    __atomic_fetch_add(&io->st.bounced, 1, __ATOMIC_RELAXED);
    uint8_t *bounce = malloc(len);
    if (!bounce) return ENOMEM;
    size_t done = 0;
    if (write)
        for (int i = 0; i < k; i++, done += iov[i - 1].iov_len)
            memcpy(bounce + done, iov[i].iov_base, iov[i].iov_len);
    int e = engine_call(io, write, bounce, len, off);
    if (!e && !write)
        for (int i = 0; i < k; i++, done += iov[i - 1].iov_len)
            memcpy(iov[i].iov_base, bounce + done, iov[i].iov_len);
    free(bounce);
    return e;
}

size_t vh_read_pages(const struct vmem *mem, const struct vq_seg *segs, unsigned n, uint64_t off,
                     struct vh_page *out, size_t max)
{
    size_t np = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t gpa = segs[i].gpa, o = off, left = segs[i].len;
        uint8_t *host = segs[i].host;
        /* Skip to the first point that is both a guest page and a disk block
         * boundary; if the two are out of phase there is none. */
        uint64_t skip = (4096 - gpa % 4096) % 4096;
        if ((o + skip) % 4096 == 0 && skip < left) {
            gpa += skip, o += skip, host += skip, left -= skip;
            for (; left >= 4096 && np < max; gpa += 4096, o += 4096, host += 4096, left -= 4096)
                out[np++] = (struct vh_page){gpa, vmem_page_index(mem, gpa), host, o / 4096};
        }
        off += segs[i].len;
    }
    return np;
}

/* Exclusive mode: if the request is exactly whole guest pages holding
 * consecutive blocks from a 4 KiB-aligned offset, the engine's page hooks
 * (eviction inference) do it and 1 is returned with *e set; otherwise 0, and
 * the caller uses the plain hooks. */
static int pages_rw(struct vh_io *io, bool write, const struct vq_seg *segs, unsigned n,
                    uint64_t off, uint32_t len, int *e)
{
    if (off % 4096 || len % 4096 || len == 0) return 0;
    size_t max = len / 4096;
    /* Requests of up to 256 KiB (the guest's usual max) need no allocation. */
    struct vh_page vp_small[64];
    struct remoca_guest_page gp_small[64];
    bool small = max <= 64;
    struct vh_page *vp = small ? vp_small : malloc(max * sizeof *vp);
    struct remoca_guest_page *gp = small ? gp_small : malloc(max * sizeof *gp);
    int used = 0;
    if (!vp || !gp) {
        *e = ENOMEM;
        used = 1;
        goto out;
    }
    size_t np = vh_read_pages(io->mem, segs, n, off, vp, max);
    if (np != max) goto out;
    for (size_t i = 0; i < np; i++) {
        if (vp[i].block != off / 4096 + i || vp[i].index == UINT64_MAX) goto out;
        gp[i] = (struct remoca_guest_page){.index = vp[i].index, .host = vp[i].host};
    }
    struct remoca_backing b = {&disk_backing_ops, io->disk};
    int err = EIO;
    int r = write ? remoca_cache_write_pages(io->cache, &b, gp, (uint32_t)np, off, 0, &err)
                  : remoca_cache_read_pages(io->cache, &b, gp, (uint32_t)np, off, 0, &err);
    *e = r < 0 ? (err ? err : EIO) : 0;
    used = 1;
    __atomic_fetch_add(&io->st.page_calls, 1, __ATOMIC_RELAXED);
out:
    if (!small) {
        free(vp);
        free(gp);
    }
    return used;
}

static int io_read(void *ctx, const struct vq_seg *segs, unsigned n, uint64_t off, uint32_t len)
{
    struct vh_io *io = ctx;
    struct iovec iov[VQ_MAX_SEGS];
    int k = merge(segs, n, iov);
    if (io->mode == VH_MODE_OFF) {
        if (io->mrc) remoca_mrc_access_bytes(io->mrc, off, len); /* as the engine counts */
        return disk_preadv(io->disk, iov, k, off);
    }
    int e;
    if (io->mode == VH_MODE_EXCLUSIVE && pages_rw(io, false, segs, n, off, len, &e)) return e;
    return engine_rw(io, false, iov, k, off, len);
}

static int io_write(void *ctx, const struct vq_seg *segs, unsigned n, uint64_t off, uint32_t len)
{
    struct vh_io *io = ctx;
    struct iovec iov[VQ_MAX_SEGS];
    int k = merge(segs, n, iov);
    if (io->mode == VH_MODE_OFF) return disk_pwritev(io->disk, iov, k, off);
    int e;
    if (io->mode == VH_MODE_EXCLUSIVE && pages_rw(io, true, segs, n, off, len, &e)) return e;
    return engine_rw(io, true, iov, k, off, len);
}

static int io_flush(void *ctx)
{
    struct vh_io *io = ctx;
    if (io->mode == VH_MODE_OFF) return disk_flush(io->disk);
    struct remoca_backing b = {&disk_backing_ops, io->disk};
    int err = EIO;
    return remoca_cache_flush(io->cache, &b, 0, &err) < 0 ? err : 0;
}

static int io_discard(void *ctx, uint64_t off, uint32_t len)
{
    struct vh_io *io = ctx;
    if (io->mode == VH_MODE_OFF) return disk_discard(io->disk, off, len);
    struct remoca_backing b = {&disk_backing_ops, io->disk};
    int err = EIO;
    return remoca_cache_trim(io->cache, &b, len, off, 0, &err) < 0 ? err : 0;
}

static int io_write_zeroes(void *ctx, uint64_t off, uint32_t len, bool unmap)
{
    struct vh_io *io = ctx;
    if (io->mode == VH_MODE_OFF) return disk_zero(io->disk, off, len, unmap);
    struct remoca_backing b = {&disk_backing_ops, io->disk};
    int err = EIO;
    return remoca_cache_zero(io->cache, &b, len, off, unmap ? VH_ZERO_MAY_UNMAP : 0, &err) < 0 ? err
                                                                                               : 0;
}

const struct blk_io_ops vh_io_ops = {io_read, io_write, io_flush, io_discard, io_write_zeroes};
