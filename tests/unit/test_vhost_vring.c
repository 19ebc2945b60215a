/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the split-ring walker (vhost/vring.c) and virtio-blk's
 * request checks (vhost/blk.c) over a fake guest memory: a malloc'd buffer
 * registered in a memory table at gpa G (nothing mapped below G or after it),
 * with the rings inside it.  Under ASan any byte touched outside the buffer
 * is a failure, so every hostile case also proves "nothing outside the
 * mapping is touched".
 *
 *   gpa  G        G+RING        G+IND        G+DATA          G+SIZE
 *        |........|desc avail used|indirect|data ............|  (unmapped after)
 *
 * Each case builds a chain, publishes it, and checks what vring_pop says
 * (a chain, maybe with an error, or a broken ring) and, through blk_handle
 * with a fake disk, the status byte and that the disk was not called.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "mem.h"
#include "vring.h"

#define G 0x100000ull
#define SIZE (2u << 20)
#define NUM 256u
#define RING 0x0
#define AVAIL (RING + 16 * NUM)
#define USED (AVAIL + 0x1000)
#define IND 0x10000u
#define DATA 0x20000u
#define STATUS 0x1ff000u

static uint8_t *buf;
static struct vmem mem;
static struct vring vr;
static struct vq_chain chain;
static uint16_t aidx;
static int disk_calls;

static int f_rw(void *ctx, const struct vq_seg *s, unsigned n, uint64_t off, uint32_t len)
{
    disk_calls++;
    for (unsigned i = 0; i < n; i++) memset(s[i].host, 0xab, s[i].write ? s[i].len : 0);
    return 0;
}
static int f_flush(void *ctx) { return disk_calls++, 0; }
static int f_trim(void *ctx, uint64_t off, uint32_t len) { return disk_calls++, 0; }
static int f_zero(void *ctx, uint64_t off, uint32_t len, bool unmap) { return disk_calls++, 0; }
static const struct blk_io_ops fake = {f_rw, f_rw, f_flush, f_trim, f_zero};
static struct blk_dev blk = {.ops = &fake, .size = 1u << 20};

static int setup(void **state)
{
    char err[128];
    buf = malloc(SIZE); /* exactly the region: ASan sees any byte beyond */
    memset(buf, 0, SIZE);
    vmem_init(&mem);
    struct vu_region r = {G, SIZE, (uint64_t)(uintptr_t)buf, 0};
    assert_int_equal(vmem_add_host(&mem, &r, buf, err, sizeof err), 0);
    uint64_t u = (uint64_t)(uintptr_t)buf;
    assert_int_equal(
        vring_map(&vr, &mem, NUM, u + RING, u + AVAIL, u + USED, true, err, sizeof err), 0);
    aidx = 0;
    disk_calls = 0;
    memset(&blk.st, 0, sizeof blk.st);
    return 0;
}

static int teardown(void **state)
{
    vmem_clear(&mem);
    free(buf);
    return 0;
}

static void reset(void **state)
{
    teardown(state);
    setup(state);
}

static struct vring_desc *desc(unsigned i) { return (struct vring_desc *)(buf + RING) + i; }
static void set_desc(unsigned i, uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next)
{
    *desc(i) = (struct vring_desc){gpa, len, flags, next};
}
static void publish(uint16_t head)
{
    uint16_t *a = (uint16_t *)(buf + AVAIL);
    a[2 + aidx % NUM] = head;
    a[1] = ++aidx;
}
static int pop(void)
{
    char err[256];
    return vring_pop(&vr, &chain, err, sizeof err);
}

/* header (readable) at DATA, data at DATA+0x1000 (len, dir), status at STATUS */
static void blk_chain(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len, bool write)
{
    struct virtio_blk_outhdr h = {type, 0, sector};
    memcpy(buf + DATA, &h, sizeof h);
    buf[STATUS] = 0xee;
    set_desc(0, G + DATA, 16, VRING_DESC_F_NEXT, 1);
    set_desc(1, data_gpa, len, VRING_DESC_F_NEXT | (write ? VRING_DESC_F_WRITE : 0), 2);
    set_desc(2, G + STATUS, 1, VRING_DESC_F_WRITE, 0);
    publish(0);
}

static void test_good_chain(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.error, VQ_OK);
    assert_int_equal(chain.n, 3);
    assert_ptr_equal(chain.status, buf + STATUS);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 4097);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_OK);
    assert_int_equal(disk_calls, 1);
    assert_int_equal(buf[DATA + 0x1000], 0xab);
    vring_push(&vr, chain.head, 4097);
    assert_int_equal(((uint16_t *)(buf + USED))[1], 1);
    assert_true(vring_need_notify(&vr)); /* first one always */
    assert_int_equal(pop(), 0);
}

static void expect_ioerr(enum vq_error e)
{
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.error, e);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 1);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_IOERR);
    assert_int_equal(disk_calls, 0);
    assert_false(vr.broken);
}

static void test_outside_memory(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, 0x1000, 4096, true); /* below G */
    expect_ioerr(VQ_E_UNMAPPED);
    blk_chain(VIRTIO_BLK_T_IN, 0, G + SIZE, 4096, true); /* just after */
    expect_ioerr(VQ_E_UNMAPPED);
    blk_chain(VIRTIO_BLK_T_IN, 0, UINT64_MAX - 100, 4096, true); /* wraps */
    expect_ioerr(VQ_E_UNMAPPED);
}

static void test_straddle_end(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, G + SIZE - 2048, 4096, true);
    expect_ioerr(VQ_E_UNMAPPED);
    blk_chain(VIRTIO_BLK_T_OUT, 0, G + SIZE - 512, 1024, false);
    expect_ioerr(VQ_E_UNMAPPED);
}

static void test_adjacent_regions(void **state)
{
    /* a second region right after the first: a descriptor across the
     * boundary becomes two segments, each inside its own mapping */
    char err[128];
    uint8_t *second = malloc(8192);
    struct vu_region r = {G + SIZE, 8192, 0x7000000000ull, 0};
    assert_int_equal(vmem_add_host(&mem, &r, second, err, sizeof err), 0);
    blk_chain(VIRTIO_BLK_T_IN, 0, G + SIZE - 1024, 4096, true);
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.error, VQ_OK);
    assert_int_equal(chain.n, 4);
    assert_int_equal(chain.seg[1].len, 1024);
    assert_ptr_equal(chain.seg[2].host, second);
    assert_int_equal(chain.seg[2].len, 3072);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 4097);
    vmem_remove(&mem, &r, err, sizeof err);
    free(second);
}

static void test_zero_length(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 0, true);
    expect_ioerr(VQ_E_ZERO_LEN);
}

static void test_direction(void **state)
{
    /* device-readable after device-writable */
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    desc(0)->flags |= VRING_DESC_F_WRITE; /* header writable, then data */
    desc(1)->flags &= (uint16_t)~VRING_DESC_F_WRITE;
    expect_ioerr(VQ_E_ORDER);
    /* a write whose data the device would write: IOERR from blk */
    blk_chain(VIRTIO_BLK_T_OUT, 0, G + DATA + 0x1000, 4096, true);
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.error, VQ_OK);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 1);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_IOERR);
    /* a read whose data the device may not write */
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, false);
    assert_int_equal(pop(), 1);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 1);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_IOERR);
    assert_int_equal(disk_calls, 0);
}

static void test_blk_ranges(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, (1u << 20) / 512 - 4, G + DATA + 0x1000, 4096, true);
    expect_ioerr(VQ_OK); /* beyond the disk's end */
    blk_chain(VIRTIO_BLK_T_IN, UINT64_MAX / 256, G + DATA + 0x1000, 4096, true);
    expect_ioerr(VQ_OK); /* sector * 512 overflows */
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 1000, true);
    expect_ioerr(VQ_OK); /* not a multiple of 512 */
    blk_chain(99, 0, G + DATA + 0x1000, 512, true);
    assert_int_equal(pop(), 1);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 1);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_UNSUPP);
    /* discard with a bad flag, and beyond the end */
    struct virtio_blk_discard_wz d = {0, 8, 1};
    memcpy(buf + DATA + 0x1000, &d, sizeof d);
    blk_chain(VIRTIO_BLK_T_DISCARD, 0, G + DATA + 0x1000, 16, false);
    assert_int_equal(pop(), 1);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 1);
    assert_int_equal(buf[STATUS], VIRTIO_BLK_S_UNSUPP);
    d = (struct virtio_blk_discard_wz){(1u << 20) / 512, 8, 0};
    memcpy(buf + DATA + 0x1000, &d, sizeof d);
    blk_chain(VIRTIO_BLK_T_WRITE_ZEROES, 0, G + DATA + 0x1000, 16, false);
    expect_ioerr(VQ_OK);
    assert_int_equal(disk_calls, 0);
}

static void test_no_status(void **state)
{
    /* the last descriptor is device-readable: no status byte to fail with */
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    desc(2)->flags = 0;
    assert_int_equal(pop(), 1);
    assert_null(chain.status);
    assert_int_equal(blk_handle(&blk, NULL, &chain), -1);
    /* the status descriptor outside memory */
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    desc(2)->addr = G + SIZE;
    assert_int_equal(pop(), 1);
    assert_int_equal(blk_handle(&blk, NULL, &chain), -1);
    assert_int_equal(disk_calls, 0);
}

static void test_loop(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    desc(2)->flags |= VRING_DESC_F_NEXT;
    desc(2)->next = 0; /* 0 -> 1 -> 2 -> 0 */
    assert_int_equal(pop(), -1);
    assert_true(vr.broken);
    assert_int_equal(pop(), -1); /* stays broken */
}

static void test_self_loop(void **state)
{
    set_desc(5, G + DATA, 16, VRING_DESC_F_NEXT, 5);
    publish(5);
    assert_int_equal(pop(), -1);
}

static void test_bad_indices(void **state)
{
    blk_chain(VIRTIO_BLK_T_IN, 0, G + DATA + 0x1000, 4096, true);
    desc(1)->next = NUM; /* next out of range */
    assert_int_equal(pop(), -1);
    reset(state);
    publish(NUM + 3); /* head out of range */
    assert_int_equal(pop(), -1);
    reset(state);
    ((uint16_t *)(buf + AVAIL))[1] = NUM + 1; /* avail index jumps more than num */
    assert_int_equal(pop(), -1);
}

static void indirect(uint64_t gpa, uint32_t len, uint16_t flags)
{
    set_desc(0, gpa, len, VRING_DESC_F_INDIRECT | flags, 0);
    publish(0);
}

/* header, 4 KiB of data, status: a good three-entry indirect table at IND */
static struct vring_desc *fill_table(void)
{
    struct vring_desc *t = (struct vring_desc *)(buf + IND);
    struct virtio_blk_outhdr h = {VIRTIO_BLK_T_IN, 0, 0};
    memcpy(buf + DATA, &h, sizeof h);
    t[0] = (struct vring_desc){G + DATA, 16, VRING_DESC_F_NEXT, 1};
    t[1] = (struct vring_desc){G + DATA + 0x1000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2};
    t[2] = (struct vring_desc){G + STATUS, 1, VRING_DESC_F_WRITE, 0};
    return t;
}

static void test_indirect(void **state)
{
    fill_table();
    indirect(G + IND, 48, 0);
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.error, VQ_OK);
    assert_int_equal(blk_handle(&blk, NULL, &chain), 4097);
    /* a direct descriptor, then the table: also allowed */
    set_desc(3, G + DATA, 16, VRING_DESC_F_NEXT, 4);
    struct vring_desc *t2 = (struct vring_desc *)(buf + IND + 0x100);
    t2[0] = (struct vring_desc){G + DATA + 0x1000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1};
    t2[1] = (struct vring_desc){G + STATUS, 1, VRING_DESC_F_WRITE, 0};
    set_desc(4, G + IND + 0x100, 32, VRING_DESC_F_INDIRECT, 0);
    publish(3);
    assert_int_equal(pop(), 1);
    assert_int_equal(chain.n, 3);
}

static void test_indirect_bad(void **state)
{
    static const struct {
        uint64_t off;
        uint32_t len;
        uint16_t flags;
        int mutate; /* 1: nested, 2: loop in the table */
    } bad[] = {
        {IND, 47, 0, 0},                 /* not a multiple of 16 */
        {IND, 0, 0, 0},                  /* empty */
        {IND, 16 * (NUM + 1), 0, 0},     /* longer than the queue */
        {SIZE - 32, 48, 0, 0},           /* runs off the end of memory */
        {IND, 48, VRING_DESC_F_NEXT, 0}, /* INDIRECT with NEXT */
        {IND, 48, 0, 1},
        {IND, 48, 0, 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reset(state);
        struct vring_desc *t = fill_table();
        if (bad[i].mutate == 1) t[1].flags |= VRING_DESC_F_INDIRECT;
        if (bad[i].mutate == 2) t[2].flags |= VRING_DESC_F_NEXT; /* 2 -> 0 */
        indirect(G + bad[i].off, bad[i].len, bad[i].flags);
        assert_int_equal(pop(), -1);
        assert_true(vr.broken);
        assert_int_equal(disk_calls, 0);
    }
}

static void test_too_long_and_too_many(void **state)
{
    /* 130 descriptors of 1 MiB each (the same buffer): more than VQ_MAX_BYTES */
    struct virtio_blk_outhdr h = {VIRTIO_BLK_T_IN, 0, 0};
    memcpy(buf + DATA, &h, sizeof h);
    buf[STATUS] = 0xee;
    set_desc(0, G + DATA, 16, VRING_DESC_F_NEXT, 1);
    for (unsigned i = 1; i <= 130; i++)
        set_desc(i, G, 1u << 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, (uint16_t)(i + 1));
    set_desc(131, G + STATUS, 1, VRING_DESC_F_WRITE, 0);
    publish(0);
    expect_ioerr(VQ_E_TOO_LONG);
    /* 200 descriptors that each straddle two adjacent regions: 400 segments,
     * more than VQ_MAX_SEGS; the walk still reaches the status byte */
    char err[128];
    uint8_t *second = malloc(8192);
    struct vu_region r = {G + SIZE, 8192, 0x7000000000ull, 0};
    assert_int_equal(vmem_add_host(&mem, &r, second, err, sizeof err), 0);
    for (unsigned i = 1; i <= 200; i++)
        set_desc(i, G + SIZE - 256, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, (uint16_t)(i + 1));
    set_desc(201, G + STATUS, 1, VRING_DESC_F_WRITE, 0);
    publish(0);
    expect_ioerr(VQ_E_TOO_MANY);
    assert_int_equal(chain.n, VQ_MAX_SEGS);
    vmem_remove(&mem, &r, err, sizeof err);
    free(second);
}

static void test_event_idx(void **state)
{
    uint16_t *a = (uint16_t *)(buf + AVAIL), *u = (uint16_t *)(buf + USED);
    for (int i = 0; i < 3; i++) {
        blk_chain(VIRTIO_BLK_T_FLUSH, 0, G + DATA + 0x1000, 0, true);
        set_desc(0, G + DATA, 16, VRING_DESC_F_NEXT, 2); /* header, status */
    }
    /* the driver wants an interrupt only after used index 2 */
    a[2 + NUM] = 2;
    int notified = 0;
    while (pop() == 1) {
        vring_push(&vr, chain.head, (uint32_t)blk_handle(&blk, NULL, &chain));
        notified += vring_need_notify(&vr);
    }
    assert_int_equal(u[1], 3);
    assert_int_equal(notified, 2); /* the first (no previous signal) and crossing 2 */
    assert_false(vring_enable_kick(&vr));
    assert_int_equal(u[2 + 4 * NUM], 3); /* avail_event: kick me at 3 */
}

static void test_map_checks(void **state)
{
    char err[128];
    struct vring v2;
    uint64_t u = (uint64_t)(uintptr_t)buf;
    assert_int_equal(vring_map(&v2, &mem, 100, u, u + AVAIL, u + USED, false, err, sizeof err), -1);
    assert_int_equal(vring_map(&v2, &mem, 0, u, u + AVAIL, u + USED, false, err, sizeof err), -1);
    assert_int_equal(vring_map(&v2, &mem, 65536, u, u + AVAIL, u + USED, false, err, sizeof err),
                     -1);
    assert_int_equal(
        vring_map(&v2, &mem, NUM, u + SIZE - 16, u + AVAIL, u + USED, false, err, sizeof err),
        -1); /* descriptor table runs off the region */
    assert_int_equal(vring_map(&v2, &mem, NUM, u + 8, u + AVAIL, u + USED, false, err, sizeof err),
                     -1); /* misaligned */
    assert_int_equal(vring_map(&v2, &mem, NUM, 0x1000, u + AVAIL, u + USED, false, err, sizeof err),
                     -1); /* not a QEMU address we know */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_straddle_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adjacent_regions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blk_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_indices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long_and_too_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
