/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the queue workers (vhost/queue.c): requests run side by side
 * but complete on the used ring in the order they were taken, stopping a
 * worker finishes every chain it took, and an idle queue whose driver missed
 * an interrupt gets another.  Real threads and eventfds over a fake
 * guest memory (a malloc'd buffer in a memory table, as test_vhost_vring.c),
 * with a fake disk whose reads of chosen sectors wait at a gate the test
 * opens:
 *
 *   gpa  G          G+AVAIL  G+USED       G+DATA + 0x1000 * i   G+SIZE
 *        |desc[NUM]  |avail   |used ...    |request i: header, 4 KiB data, status
 *
 *   test ──publish chains, kick──▶ poller ──▶ executors ──▶ fake disk (gate)
 *        ◀──used ring, call fd───────────────┘
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blk.h"
#include "device.h"
#include "mem.h"
#include "queue.h"
#include "vring.h"

#define G 0x100000ull
#define SIZE (1u << 20)
#define NUM 64u
#define AVAIL (16 * NUM)
#define USED (AVAIL + 0x1000)
#define DATA 0x10000u
#define REQ_BYTES 0x3000u /* header page, data page, status page */

static uint8_t *buf;
static struct vmem mem;
static struct vu_queue q;
static struct blk_dev blk;
static uint16_t aidx;

/* The fake disk: a read of a sector in `held` waits until the gate opens. */
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static uint64_t held = UINT64_MAX;
static unsigned reads_done, reads_running, max_running;

static int f_read(void *ctx, const struct vq_seg *s, unsigned n, uint64_t off, uint32_t len)
{
    pthread_mutex_lock(&lk);
    reads_running++;
    if (reads_running > max_running) max_running = reads_running;
    while (off / 512 == held && !gate_open) pthread_cond_wait(&cv, &lk);
    pthread_mutex_unlock(&lk);
    for (unsigned i = 0; i < n; i++) memset(s[i].host, (int)(off / 512) & 0xff, s[i].len);
    pthread_mutex_lock(&lk);
    reads_running--;
    reads_done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lk);
    return 0;
}
static int f_write(void *ctx, const struct vq_seg *s, unsigned n, uint64_t off, uint32_t len)
{
    return 0;
}
static int f_flush(void *ctx) { return 0; }
static int f_trim(void *ctx, uint64_t off, uint32_t len) { return 0; }
static int f_zero(void *ctx, uint64_t off, uint32_t len, bool unmap) { return 0; }
static const struct blk_io_ops fake = {f_read, f_write, f_flush, f_trim, f_zero};

static int setup(void **state)
{
    char err[128];
    buf = calloc(1, SIZE);
    vmem_init(&mem);
    struct vu_region r = {G, SIZE, (uint64_t)(uintptr_t)buf, 0};
    assert_int_equal(vmem_add_host(&mem, &r, buf, err, sizeof err), 0);
    memset(&q, 0, sizeof q);
    q.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q.err_fd = -1;
    uint64_t u = (uint64_t)(uintptr_t)buf;
    assert_int_equal(vring_map(&q.vr, &mem, NUM, u, u + AVAIL, u + USED, false, err, sizeof err),
                     0);
    blk = (struct blk_dev){.ops = &fake, .size = 1u << 20};
    aidx = 0;
    gate_open = false;
    held = UINT64_MAX;
    reads_done = reads_running = max_running = 0;
    return 0;
}

static int teardown(void **state)
{
    close(q.kick_fd);
    close(q.call_fd);
    vmem_clear(&mem);
    free(buf);
    return 0;
}

/* Request i reads sector `sector` into its own data page: descriptors
 * 3i..3i+2, published on the avail ring, then a kick. */
static void submit(unsigned i, uint64_t sector)
{
    uint32_t base = DATA + i * REQ_BYTES;
    struct virtio_blk_outhdr h = {VIRTIO_BLK_T_IN, 0, sector};
    memcpy(buf + base, &h, sizeof h);
    buf[base + 0x2000] = 0xee;
    struct vring_desc *d = (struct vring_desc *)buf + 3 * i;
    d[0] = (struct vring_desc){G + base, 16, VRING_DESC_F_NEXT, (uint16_t)(3 * i + 1)};
    d[1] = (struct vring_desc){G + base + 0x1000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
                               (uint16_t)(3 * i + 2)};
    d[2] = (struct vring_desc){G + base + 0x2000, 1, VRING_DESC_F_WRITE, 0};
    uint16_t *a = (uint16_t *)(buf + AVAIL);
    a[2 + aidx % NUM] = (uint16_t)(3 * i);
    __atomic_store_n(&a[1], ++aidx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    assert_int_equal(write(q.kick_fd, &one, sizeof one), sizeof one);
}

static uint16_t used_idx(void)
{
    return __atomic_load_n((uint16_t *)(buf + USED) + 1, __ATOMIC_ACQUIRE);
}
static const struct vring_used_elem *used_elem(unsigned k)
{
    return (const struct vring_used_elem *)(buf + USED + 4) + k;
}

/* Waits (at most 10 s) until pred() holds; false on timeout. */
static bool wait_for(bool (*pred)(void))
{
    for (int i = 0; i < 10000; i++) {
        if (pred()) return true;
        usleep(1000);
    }
    return false;
}
static unsigned want_reads;
static bool enough_reads(void)
{
    pthread_mutex_lock(&lk);
    bool r = reads_done >= want_reads;
    pthread_mutex_unlock(&lk);
    return r;
}
static uint16_t want_used;
static bool enough_used(void) { return used_idx() >= want_used; }

static void open_gate(void)
{
    pthread_mutex_lock(&lk);
    gate_open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lk);
}

/* Request 0 waits at the gate; requests 1..3 finish meanwhile, but nothing is
 * on the used ring until request 0 is done; then all four, in order. */
static void test_in_order_completion(void **state)
{
    struct vh_worker w;
    held = 8;
    assert_int_equal(vh_worker_start(&w, &q, 0, &blk, NULL, 4), 0);
    submit(0, 8);
    for (unsigned i = 1; i < 4; i++) submit(i, 8 * (i + 1));
    want_reads = 3;
    assert_true(wait_for(enough_reads)); /* 1..3 ran while 0 is held */
    usleep(20000);
    assert_int_equal(used_idx(), 0);
    open_gate();
    want_used = 4;
    assert_true(wait_for(enough_used));
    for (unsigned k = 0; k < 4; k++) {
        assert_int_equal(used_elem(k)->id, 3 * k);
        assert_int_equal(used_elem(k)->len, 4096 + 1);
        uint32_t base = DATA + k * REQ_BYTES;
        assert_int_equal(buf[base + 0x2000], VIRTIO_BLK_S_OK);
        assert_int_equal(buf[base + 0x1000], (8 * (k + 1)) & 0xff);
    }
    uint64_t calls = 0;
    assert_true(read(q.call_fd, &calls, sizeof calls) == sizeof calls && calls >= 1);
    vh_worker_stop(&w);
    assert_true(max_running >= 2);
}

/* More requests than slots: all complete; stop returns with the ring idle
 * and every chain taken on the used ring. */
static void test_more_than_inflight_and_stop(void **state)
{
    struct vh_worker w;
    gate_open = true;
    assert_int_equal(vh_worker_start(&w, &q, 0, &blk, NULL, 2), 0);
    for (unsigned i = 0; i < 16; i++) submit(i, i);
    want_used = 16;
    assert_true(wait_for(enough_used));
    vh_worker_stop(&w);
    assert_int_equal(q.vr.last_avail, 16);
    assert_int_equal(used_idx(), 16);
    assert_true(max_running <= 2);
    for (unsigned k = 0; k < 16; k++) assert_int_equal(used_elem(k)->id, 3 * k);
}

/* Stopping while a request waits at the gate: stop waits for it (it is on
 * the used ring when stop returns), then the gate is opened by a thread. */
static void *opener(void *arg)
{
    usleep(50000);
    open_gate();
    return NULL;
}
static void test_stop_drains(void **state)
{
    struct vh_worker w;
    held = 0;
    assert_int_equal(vh_worker_start(&w, &q, 0, &blk, NULL, 4), 0);
    submit(0, 0);
    submit(1, 8);
    want_reads = 1;
    assert_true(wait_for(enough_reads));
    pthread_t t;
    pthread_create(&t, NULL, opener, NULL);
    vh_worker_stop(&w);
    pthread_join(t, NULL);
    assert_int_equal(used_idx(), 2);
    assert_int_equal(q.vr.last_avail, 2);
}

/* EVENT_IDX: every request complete, the driver's used_event still behind
 * (an interrupt it never saw): the idle queue interrupts it again within
 * about a second; once it has caught up, no more. */
static void test_idle_reinterrupt(void **state)
{
    char err[128];
    uint64_t u = (uint64_t)(uintptr_t)buf, v;
    assert_int_equal(vring_map(&q.vr, &mem, NUM, u, u + AVAIL, u + USED, true, err, sizeof err), 0);
    uint16_t *used_event = (uint16_t *)(buf + AVAIL) + 2 + NUM;
    struct vh_worker w;
    gate_open = true;
    assert_int_equal(vh_worker_start(&w, &q, 0, &blk, NULL, 4), 0);
    for (unsigned i = 0; i < 3; i++) submit(i, i);
    want_used = 3;
    assert_true(wait_for(enough_used));
    usleep(20000);
    while (read(q.call_fd, &v, sizeof v) == sizeof v) {
    }
    __atomic_store_n(used_event, 1, __ATOMIC_RELEASE); /* saw 1 of 3 */
    usleep(1500 * 1000);
    assert_true(read(q.call_fd, &v, sizeof v) == sizeof v && v >= 1);
    __atomic_store_n(used_event, 3, __ATOMIC_RELEASE); /* caught up */
    usleep(1200 * 1000);
    assert_true(read(q.call_fd, &v, sizeof v) < 0 && errno == EAGAIN);
    vh_worker_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_than_inflight_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_reinterrupt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
