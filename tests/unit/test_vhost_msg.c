/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of vhost-user message validation (vhost/msg.c), the memory
 * table (vhost/mem.c) and the device's handlers (vhost/device.c, with fake
 * queue ops).  Hostile cases: a size field larger than any payload, unknown
 * requests, fd counts that do not match the request, reply flags on a
 * request; memory tables with overlapping regions, size 0, an mmap offset
 * beyond the fd's size, more regions than the table holds, fds missing;
 * queue indices beyond the queues offered, features not offered (dirty
 * logging), config reads beyond the config space.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "device.h"
#include "vlog.h"
#include "mem.h"
#include "msg.h"

static char err[256];

/* Builds a message as if received: header, payload, fds. */
static struct vu_msg make(uint32_t req, uint32_t flags, const void *p, uint32_t size, unsigned nfds)
{
    struct vu_msg m;
    memset(&m, 0, sizeof m);
    for (unsigned i = 0; i < VU_MAX_FDS; i++) m.fds[i] = -1;
    m.hdr = (struct vu_hdr){req, VU_FLAG_VERSION | flags, size};
    if (p) memcpy(&m.p, p, size);
    for (unsigned i = 0; i < nfds; i++) m.fds[i] = eventfd(0, EFD_CLOEXEC);
    m.nfds = nfds;
    return m;
}

static int check(struct vu_msg m)
{
    int r = vu_msg_check(&m, err, sizeof err);
    vu_msg_close_fds(&m);
    return r;
}

static void test_msg_check(void **state)
{
    uint64_t v = 0;
    assert_int_equal(check(make(VU_GET_FEATURES, 0, NULL, 0, 0)), 0);
    assert_int_equal(check(make(VU_SET_FEATURES, 0, &v, 8, 0)), 0);
    assert_int_equal(check(make(VU_SET_FEATURES, 0, &v, 4, 0)), -1);   /* short */
    assert_int_equal(check(make(VU_GET_FEATURES, 0, NULL, 0, 1)), -1); /* unexpected fd */
    assert_int_equal(check(make(VU_SET_VRING_KICK, 0, &v, 8, 0)), -1); /* fd missing */
    assert_int_equal(check(make(VU_SET_VRING_KICK, 0, &v, 8, 1)), 0);
    v = VU_VRING_NOFD;
    assert_int_equal(check(make(VU_SET_VRING_CALL, 0, &v, 8, 0)), 0);
    assert_int_equal(check(make(VU_SET_VRING_CALL, 0, &v, 8, 1)), -1); /* fd with no-fd bit */
    assert_int_equal(check(make(200, 0, NULL, 0, 0)), -1);             /* unknown */
    assert_int_equal(check(make(VU_SET_LOG_BASE, 0, NULL, 0, 0)), -1); /* not offered */
    assert_int_equal(check(make(VU_GET_FEATURES, VU_FLAG_REPLY, NULL, 0, 0)), -1);
    struct vu_msg m = make(VU_GET_FEATURES, 0, NULL, 0, 0);
    m.hdr.flags = 2; /* version 2 */
    assert_int_equal(check(m), -1);
    m = make(VU_GET_FEATURES, 0, NULL, 0, 0);
    m.hdr.size = sizeof(union vu_payload) + 1; /* larger than any payload */
    assert_int_equal(check(m), -1);
    /* memory table: region count vs size vs fds */
    struct vu_mem_table t = {2, 0, {{0}}};
    assert_int_equal(check(make(VU_SET_MEM_TABLE, 0, &t, 8 + 2 * 32, 2)), 0);
    assert_int_equal(check(make(VU_SET_MEM_TABLE, 0, &t, 8 + 2 * 32, 1)), -1); /* fd missing */
    assert_int_equal(check(make(VU_SET_MEM_TABLE, 0, &t, 8 + 1 * 32, 2)), -1); /* size */
    t.nregions = VU_MEM_TABLE_REGIONS + 1;
    assert_int_equal(check(make(VU_SET_MEM_TABLE, 0, &t, 8, 0)), -1); /* too many */
    /* config: size field vs message size */
    struct vu_config c = {0, 60, 0, {0}};
    assert_int_equal(check(make(VU_GET_CONFIG, 0, &c, 12 + 60, 0)), 0);
    assert_int_equal(check(make(VU_GET_CONFIG, 0, &c, 12 + 59, 0)), -1);
    c.size = 1000;
    assert_int_equal(check(make(VU_GET_CONFIG, 0, &c, 12, 0)), -1);
}

static void test_msg_parse(void **state)
{
    uint8_t bytes[64] = {0};
    struct vu_hdr h = {VU_SET_FEATURES, VU_FLAG_VERSION, 8};
    memcpy(bytes, &h, sizeof h);
    struct vu_msg m;
    assert_int_equal(vu_msg_parse(bytes, 12, NULL, 0, &m, err, sizeof err), 0); /* needs more */
    assert_int_equal(vu_msg_parse(bytes, 20, NULL, 0, &m, err, sizeof err), 20);
    h.size = 100000;
    memcpy(bytes, &h, sizeof h);
    assert_int_equal(vu_msg_parse(bytes, sizeof bytes, NULL, 0, &m, err, sizeof err), -1);
}

static int memfd_of(size_t size)
{
    int fd = memfd_create("t", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static void test_mem(void **state)
{
    struct vmem m;
    vmem_init(&m);
    struct vu_region r = {0x100000, 0x10000, 0x7f0000000000, 0};
    assert_int_equal(vmem_add_fd(&m, &r, memfd_of(0x10000), err, sizeof err), 0);
    uint8_t *p = vmem_gpa(&m, 0x100000, 0x10000);
    assert_non_null(p);
    p[0xffff] = 1;                                /* the whole region is mapped */
    assert_null(vmem_gpa(&m, 0x100000, 0x10001)); /* one byte too long */
    assert_null(vmem_gpa(&m, 0x10ffff, 2));       /* straddles the end */
    assert_null(vmem_gpa(&m, 0x100000, 0));       /* empty */
    assert_null(vmem_gpa(&m, 0xfffff, 1));        /* before */
    assert_null(vmem_gpa(&m, UINT64_MAX, 1));
    assert_ptr_equal(vmem_uva(&m, 0x7f0000000010, 16), p + 16);
    assert_null(vmem_uva(&m, 0x7f0000000000 + 0xfff0, 17));
    /* overlapping in gpa, in uva; size 0; overflow */
    struct vu_region o1 = {0x108000, 0x10000, 0x1000000, 0};
    assert_int_equal(vmem_add_fd(&m, &o1, memfd_of(0x10000), err, sizeof err), -1);
    struct vu_region o2 = {0x200000, 0x10000, 0x7f0000008000, 0};
    assert_int_equal(vmem_add_fd(&m, &o2, memfd_of(0x10000), err, sizeof err), -1);
    struct vu_region z = {0x300000, 0, 0x2000000, 0};
    assert_int_equal(vmem_add_fd(&m, &z, memfd_of(0x10000), err, sizeof err), -1);
    struct vu_region ov = {UINT64_MAX - 0x1000, 0x2000, 0x3000000, 0};
    assert_int_equal(vmem_add_fd(&m, &ov, memfd_of(0x10000), err, sizeof err), -1);
    /* mmap offset beyond the fd's size; offset + size beyond it */
    struct vu_region off = {0x400000, 0x1000, 0x4000000, 0x20000};
    assert_int_equal(vmem_add_fd(&m, &off, memfd_of(0x10000), err, sizeof err), -1);
    off.mmap_offset = 0xf800;
    assert_int_equal(vmem_add_fd(&m, &off, memfd_of(0x10000), err, sizeof err), -1);
    off.mmap_offset = 0x8000; /* fits: mapped at an offset */
    assert_int_equal(vmem_add_fd(&m, &off, memfd_of(0x10000), err, sizeof err), 0);
    assert_int_equal(vmem_add_fd(&m, &off, -1, err, sizeof err), -1); /* no fd */
    assert_int_equal(m.n, 2);
    /* more regions than the table holds */
    for (unsigned i = m.n; i < VU_MAX_MEM_SLOTS; i++) {
        struct vu_region k = {0x10000000ull * (i + 1), 0x1000, 0x100000000ull * (i + 1), 0};
        assert_int_equal(vmem_add_fd(&m, &k, memfd_of(0x1000), err, sizeof err), 0);
    }
    struct vu_region extra = {0x7000000000ull, 0x1000, 0x7100000000ull, 0};
    assert_int_equal(vmem_add_fd(&m, &extra, memfd_of(0x1000), err, sizeof err), -1);
    assert_int_equal(vmem_remove(&m, &r, err, sizeof err), 0);
    assert_null(vmem_gpa(&m, 0x100000, 1));
    assert_int_equal(vmem_remove(&m, &r, err, sizeof err), -1);
    vmem_clear(&m);
}

/* ---- the device, with fake queue ops ---------------------------------- */
static int starts, stops;
static void f_config(void *ctx, uint8_t *buf) { memset(buf, 0x11, 60); }
static int f_start(void *ctx, struct vu_dev *d, unsigned i) { return starts++, 0; }
static void f_stop(void *ctx, struct vu_dev *d, unsigned i) { stops++; }
static const struct vu_dev_ops ops = {.device_features = 1ull << VIRTIO_BLK_F_FLUSH,
                                      .nqueues = 2,
                                      .get_config = f_config,
                                      .queue_start = f_start,
                                      .queue_stop = f_stop};

static int handle(struct vu_dev *d, struct vu_msg m, struct vu_reply *r)
{
    assert_int_equal(vu_msg_check(&m, err, sizeof err), 0);
    return vu_dev_handle(d, &m, r, err, sizeof err);
}

static void test_device(void **state)
{
    struct vu_dev d;
    struct vu_reply r;
    vu_dev_init(&d, &ops, NULL);
    assert_int_equal(handle(&d, make(VU_GET_FEATURES, 0, NULL, 0, 0), &r), 0);
    assert_true(r.send && r.size == 8);
    uint64_t f = r.p.u64;
    assert_false(f & (1ull << VHOST_F_LOG_ALL)); /* live migration: refused */
    uint64_t pf = (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG);
    assert_int_equal(handle(&d, make(VU_SET_PROTOCOL_FEATURES, 0, &pf, 8, 0), &r), 0);
    uint64_t bad = 1ull << 40;
    assert_int_equal(handle(&d, make(VU_SET_PROTOCOL_FEATURES, 0, &bad, 8, 0), &r), -1);
    /* features not offered: with need_reply a failure ack, without a close */
    uint64_t log = f | (1ull << VHOST_F_LOG_ALL);
    assert_int_equal(handle(&d, make(VU_SET_FEATURES, VU_FLAG_NEED_REPLY, &log, 8, 0), &r), 0);
    assert_true(r.send && r.p.u64 != 0);
    assert_int_equal(handle(&d, make(VU_SET_FEATURES, 0, &log, 8, 0), &r), -1);
    assert_int_equal(handle(&d, make(VU_SET_FEATURES, VU_FLAG_NEED_REPLY, &f, 8, 0), &r), 0);
    assert_true(r.send && r.p.u64 == 0);
    assert_int_equal(handle(&d, make(VU_GET_QUEUE_NUM, 0, NULL, 0, 0), &r), 0);
    assert_int_equal(r.p.u64, 2);
    /* queue index beyond the queues offered */
    struct vu_vring_state s = {2, 128};
    assert_int_equal(handle(&d, make(VU_SET_VRING_NUM, 0, &s, 8, 0), &r), -1);
    uint64_t k = 5;
    assert_int_equal(handle(&d, make(VU_SET_VRING_KICK, 0, &k, 8, 1), &r), -1);
    s = (struct vu_vring_state){0, 100}; /* not a power of 2 */
    assert_int_equal(handle(&d, make(VU_SET_VRING_NUM, 0, &s, 8, 0), &r), -1);
    s = (struct vu_vring_state){0, 0x10000}; /* base beyond 16 bits */
    assert_int_equal(handle(&d, make(VU_SET_VRING_BASE, 0, &s, 8, 0), &r), -1);
    struct vu_vring_addr a = {0, 1, 0, 0, 0, 0}; /* logging flag */
    assert_int_equal(handle(&d, make(VU_SET_VRING_ADDR, 0, &a, sizeof a, 0), &r), -1);
    /* config: in range, and beyond the config space (an empty reply) */
    struct vu_config c = {0, 60, 0, {0}};
    assert_int_equal(handle(&d, make(VU_GET_CONFIG, 0, &c, 72, 0), &r), 0);
    assert_true(r.send && r.size == 72 && r.p.config.payload[59] == 0x11);
    c = (struct vu_config){250, 10, 0, {0}};
    assert_int_equal(handle(&d, make(VU_GET_CONFIG, 0, &c, 22, 0), &r), 0);
    assert_true(r.send && r.size == 12 && r.p.config.size == 0);
    c = (struct vu_config){0xffffffff, 10, 0, {0}};
    assert_int_equal(handle(&d, make(VU_GET_CONFIG, 0, &c, 22, 0), &r), 0);
    assert_int_equal(r.p.config.size, 0);
    /* a memory table whose second region's offset is beyond its fd: none kept */
    struct vu_mem_table t = {
        2, 0, {{0, 0x1000, 0x10000000, 0}, {0x1000, 0x1000, 0x20000000, 0x5000}}};
    struct vu_msg m = make(VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, &t, 8 + 64, 0);
    m.fds[0] = memfd_of(0x1000);
    m.fds[1] = memfd_of(0x1000);
    m.nfds = 2;
    assert_int_equal(handle(&d, m, &r), 0);
    assert_true(r.send && r.p.u64 != 0);
    assert_int_equal(d.mem.n, 0);
    /* a queue that is enabled and kicked but has no address is never started */
    s = (struct vu_vring_state){1, 1};
    assert_int_equal(handle(&d, make(VU_SET_VRING_ENABLE, 0, &s, 8, 0), &r), 0);
    k = 1;
    assert_int_equal(handle(&d, make(VU_SET_VRING_KICK, 0, &k, 8, 1), &r), 0);
    assert_int_equal(starts, 0);
    vu_dev_reset(&d);
}

int main(void)
{
    vu_log_level = -1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_check),
        cmocka_unit_test(test_msg_parse),
        cmocka_unit_test(test_mem),
        cmocka_unit_test(test_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
