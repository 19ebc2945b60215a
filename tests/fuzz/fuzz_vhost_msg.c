/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes vhost-user message handling (vhost/msg.c, vhost/device.c, and
 * through them vhost/mem.c and the queue start path): the input is a stream
 * of messages, each preceded by one byte that says how many fds travel with
 * it (low 2 bits: 0-3) and of what kind (bit 2: -1 instead of a memfd).  The
 * fds are dups of one 1 MiB memfd, so SET_MEM_TABLE / ADD_MEM_REG really
 * mmap it, with the input's offsets and sizes.  A message that fails
 * vu_msg_check or whose handler asks for a close ends the stream, as the
 * connection would end.  Queue starts run the queue once, synchronously,
 * over a fake disk: rings at the input's addresses, in the mapped memfd.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../vhost/blk.h"
#include "../../vhost/device.h"
#include "../../vhost/msg.h"
#include "../../vhost/queue.h"
#include "../../vhost/vlog.h"

static int f_rw(void *ctx, const struct vq_seg *s, unsigned n, uint64_t off, uint32_t len)
{
    for (unsigned i = 0; i < n; i++)
        if (s[i].write) memset(s[i].host, 0x5a, s[i].len);
    return 0;
}
static int f_flush(void *ctx) { return 0; }
static int f_trim(void *ctx, uint64_t off, uint32_t len) { return 0; }
static int f_zero(void *ctx, uint64_t off, uint32_t len, bool unmap) { return 0; }
static const struct blk_io_ops fake = {f_rw, f_rw, f_flush, f_trim, f_zero};
static struct blk_dev blk = {.ops = &fake, .size = 1u << 20};
static struct vq_chain chain;

static void f_config(void *ctx, uint8_t *buf) { blk_config(&blk, 2, buf); }
static int f_start(void *ctx, struct vu_dev *d, unsigned i)
{
    struct vu_queue q = d->q[i]; /* no eventfd writes into the memfds */
    q.call_fd = q.err_fd = -1;
    vh_queue_process(&q, &blk, NULL, &chain, i);
    d->q[i].vr = q.vr;
    return 0;
}
static void f_stop(void *ctx, struct vu_dev *d, unsigned i) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int memfd = -1;
    if (memfd < 0) {
        vu_log_level = -1;
        memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, 1 << 20) < 0) abort();
    }
    const struct vu_dev_ops ops = {.device_features = blk_features(&blk, 2),
                                   .nqueues = 2,
                                   .get_config = f_config,
                                   .queue_start = f_start,
                                   .queue_stop = f_stop};
    static struct vu_dev d;
    vu_dev_init(&d, &ops, NULL);
    char err[256];
    size_t pos = 0;
    while (pos < size) {
        uint8_t fdspec = data[pos++];
        unsigned nfds = fdspec & 3;
        int fds[3];
        for (unsigned i = 0; i < nfds; i++) fds[i] = fdspec & 4 ? -1 : dup(memfd);
        struct vu_msg m;
        long n = vu_msg_parse(data + pos, size - pos, fds, nfds, &m, err, sizeof err);
        if (n <= 0) {
            for (unsigned i = 0; i < nfds; i++)
                if (fds[i] >= 0) close(fds[i]);
            break;
        }
        pos += (size_t)n;
        if (vu_msg_check(&m, err, sizeof err) < 0) {
            vu_msg_close_fds(&m);
            break;
        }
        struct vu_reply r;
        if (vu_dev_handle(&d, &m, &r, err, sizeof err) < 0) break;
        if (r.send && r.size > sizeof r.p) abort();
    }
    vu_dev_reset(&d);
    return 0;
}
