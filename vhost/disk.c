/* SPDX-License-Identifier: BSD-3-Clause */
/* The backing disk (disk.h): file / block device, or NBD via libnbd.
 *
 *   struct disk
 *   ┌───────────────────────────────────────────────────────────────┐
 *   │ fd >= 0: file or block device (size: fstat / BLKGETSIZE64)    │
 *   │ nbd != NULL: libnbd handles, one connection each: a handle's  │
 *   │   lock serialises its calls, so requests in flight at once    │
 *   │   take the connections in turn (flush: all of them)           │
 *   │ size, readonly                                                │
 *   └───────────────────────────────────────────────────────────────┘
 * Discard is advisory: where the disk cannot punch holes it succeeds doing
 * nothing.  Write-zeroes always leaves zeroes: fallocate (ZERO_RANGE, or
 * PUNCH_HOLE when the guest allows unmapping), else writing zero buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libnbd.h>

#include "disk.h"

#define DISK_NBD_MAX_CONNS 16

struct disk {
    int fd;
    struct nbd_handle *nbd; /* == conns[0]: what the export can do */
    struct nbd_handle *conns[DISK_NBD_MAX_CONNS];
    unsigned nconns, next; /* next: round robin (atomic) */
    uint64_t size;
    bool readonly, can_trim, can_zero, can_flush;
};

static bool is_nbd_uri(const char *s)
{
    return !strncmp(s, "nbd://", 6) || !strncmp(s, "nbds://", 7) ||
           !strncmp(s, "nbd+unix://", 11) || !strncmp(s, "nbds+unix://", 12);
}

static struct disk *open_nbd(struct disk *d, const char *uri, unsigned conns, char *err,
                             size_t errlen)
{
    if (conns < 1) conns = 1;
    if (conns > DISK_NBD_MAX_CONNS) conns = DISK_NBD_MAX_CONNS;
    for (; d->nconns < conns; d->nconns++) {
        struct nbd_handle *h = nbd_create();
        if (!h || nbd_connect_uri(h, uri) == -1) {
            snprintf(err, errlen, "--disk %s: %s", uri, nbd_get_error());
            if (h) nbd_close(h);
            return NULL;
        }
        d->conns[d->nconns] = h;
    }
    d->nbd = d->conns[0];
    int64_t size = nbd_get_size(d->nbd);
    if (size < 0) {
        snprintf(err, errlen, "--disk %s: %s", uri, nbd_get_error());
        return NULL;
    }
    if (!d->readonly && nbd_is_read_only(d->nbd) == 1) {
        snprintf(err, errlen, "--disk %s: the NBD export is read-only (use --readonly)", uri);
        return NULL;
    }
    d->size = (uint64_t)size;
    d->can_trim = nbd_can_trim(d->nbd) == 1;
    d->can_zero = nbd_can_zero(d->nbd) == 1;
    d->can_flush = nbd_can_flush(d->nbd) == 1;
    return d;
}

struct disk *disk_open(const char *spec, bool readonly, unsigned nbd_conns, char *err,
                       size_t errlen)
{
    struct disk *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->fd = -1;
    d->readonly = readonly;
    if (is_nbd_uri(spec)) {
        if (open_nbd(d, spec, nbd_conns, err, errlen)) return d;
        disk_close(d);
        return NULL;
    }
    struct stat st;
    d->fd = open(spec, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (d->fd < 0 || fstat(d->fd, &st) < 0) {
        snprintf(err, errlen, "--disk %s: %s", spec, strerror(errno));
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        d->size = (uint64_t)st.st_size;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(d->fd, BLKGETSIZE64, &d->size) < 0) {
            snprintf(err, errlen, "--disk %s: BLKGETSIZE64: %s", spec, strerror(errno));
            goto fail;
        }
    } else {
        snprintf(err, errlen, "--disk %s: not a file, block device or NBD URI", spec);
        goto fail;
    }
    d->can_trim = d->can_zero = d->can_flush = true;
    return d;
fail:
    disk_close(d);
    return NULL;
}

void disk_close(struct disk *d)
{
    if (!d) return;
    if (d->fd >= 0) close(d->fd);
    for (unsigned i = 0; i < d->nconns; i++) {
        nbd_shutdown(d->conns[i], 0);
        nbd_close(d->conns[i]);
    }
    free(d);
}

uint64_t disk_size(const struct disk *d) { return d->size; }
bool disk_is_nbd(const struct disk *d) { return d->nbd != NULL; }

/* The next connection, in turn. */
static struct nbd_handle *conn(struct disk *d)
{
    return d->conns[__atomic_fetch_add(&d->next, 1, __ATOMIC_RELAXED) % d->nconns];
}

static int nbd_errno(void)
{
    int e = nbd_get_errno();
    return e ? e : EIO;
}

int disk_pread(struct disk *d, void *buf, size_t len, uint64_t off)
{
    if (d->nbd) return nbd_pread(conn(d), buf, len, off, 0) == -1 ? nbd_errno() : 0;
    while (len) {
        ssize_t r = pread(d->fd, buf, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno;
        if (r == 0) { /* beyond the end of a file that shrank: zeroes */
            memset(buf, 0, len);
            return 0;
        }
        buf = (char *)buf + r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int disk_pwrite(struct disk *d, const void *buf, size_t len, uint64_t off)
{
    if (d->readonly) return EROFS;
    if (d->nbd) return nbd_pwrite(conn(d), buf, len, off, 0) == -1 ? nbd_errno() : 0;
    while (len) {
        ssize_t r = pwrite(d->fd, buf, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? errno : EIO;
        buf = (const char *)buf + r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Vectored calls: one preadv/pwritev for a file when it completes at once,
 * else (short transfer, NBD) segment by segment. */
int disk_preadv(struct disk *d, const struct iovec *iov, int n, uint64_t off)
{
    if (!d->nbd && n > 0 && n <= IOV_MAX) {
        size_t total = 0;
        for (int i = 0; i < n; i++) total += iov[i].iov_len;
        ssize_t r = preadv(d->fd, iov, n, (off_t)off);
        if (r >= 0 && (size_t)r == total) return 0;
    }
    for (int i = 0; i < n; i++) {
        int e = disk_pread(d, iov[i].iov_base, iov[i].iov_len, off);
        if (e) return e;
        off += iov[i].iov_len;
    }
    return 0;
}

int disk_pwritev(struct disk *d, const struct iovec *iov, int n, uint64_t off)
{
    if (d->readonly) return EROFS;
    if (!d->nbd && n > 0 && n <= IOV_MAX) {
        size_t total = 0;
        for (int i = 0; i < n; i++) total += iov[i].iov_len;
        ssize_t r = pwritev(d->fd, iov, n, (off_t)off);
        if (r >= 0 && (size_t)r == total) return 0;
    }
    for (int i = 0; i < n; i++) {
        int e = disk_pwrite(d, iov[i].iov_base, iov[i].iov_len, off);
        if (e) return e;
        off += iov[i].iov_len;
    }
    return 0;
}

int disk_flush(struct disk *d)
{
    if (d->nbd) { /* a write acknowledged on any connection: flush them all */
        for (unsigned i = 0; i < d->nconns && d->can_flush; i++)
            if (nbd_flush(d->conns[i], 0) == -1) return nbd_errno();
        return 0;
    }
    return fdatasync(d->fd) < 0 ? errno : 0;
}

int disk_discard(struct disk *d, uint64_t off, uint64_t len)
{
    if (d->readonly) return EROFS;
    if (d->nbd) return !d->can_trim || nbd_trim(conn(d), len, off, 0) != -1 ? 0 : nbd_errno();
    if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
        errno != EOPNOTSUPP && errno != ENOSYS)
        return errno;
    return 0;
}

static int write_zero_buffers(struct disk *d, uint64_t off, uint64_t len)
{
    static const char zero[65536];
    while (len) {
        size_t k = len < sizeof zero ? (size_t)len : sizeof zero;
        int e = disk_pwrite(d, zero, k, off);
        if (e) return e;
        off += k;
        len -= k;
    }
    return 0;
}

int disk_zero(struct disk *d, uint64_t off, uint64_t len, bool may_unmap)
{
    if (d->readonly) return EROFS;
    if (d->nbd) {
        if (d->can_zero)
            return nbd_zero(conn(d), len, off, may_unmap ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) == -1
                       ? nbd_errno()
                       : 0;
        return write_zero_buffers(d, off, len);
    }
    int mode = may_unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                         : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (fallocate(d->fd, mode, (off_t)off, (off_t)len) == 0) return 0;
    return write_zero_buffers(d, off, len);
}
