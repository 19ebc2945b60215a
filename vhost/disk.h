/* SPDX-License-Identifier: BSD-3-Clause */
/* The backing disk: a file or block device (pread/pwrite, fallocate for
 * discard and zeroes, fdatasync for flush) or an NBD server through libnbd
 * (--disk nbd://..., nbd+unix://..., nbds://...).  Every call is synchronous:
 * when it returns 0 the data are in the kernel (file) or acknowledged by the
 * server (NBD), so a write acknowledged to the guest survives this process
 * dying; FLUSH makes it survive the host too.  All calls are thread-safe.
 * Each returns 0 or an errno value. */
#ifndef REMOCA_VHOST_DISK_H
#define REMOCA_VHOST_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct disk;

/* nbd_conns: connections to an NBD server (1..16; requests in flight at
 * once), ignored for a file. */
struct disk *disk_open(const char *spec, bool readonly, unsigned nbd_conns, char *err,
                       size_t errlen);
void disk_close(struct disk *d);
uint64_t disk_size(const struct disk *d);
bool disk_is_nbd(const struct disk *d);

int disk_pread(struct disk *d, void *buf, size_t len, uint64_t off);
int disk_pwrite(struct disk *d, const void *buf, size_t len, uint64_t off);
int disk_preadv(struct disk *d, const struct iovec *iov, int n, uint64_t off);
int disk_pwritev(struct disk *d, const struct iovec *iov, int n, uint64_t off);
int disk_flush(struct disk *d);
int disk_discard(struct disk *d, uint64_t off, uint64_t len);
int disk_zero(struct disk *d, uint64_t off, uint64_t len, bool may_unmap);

#endif
