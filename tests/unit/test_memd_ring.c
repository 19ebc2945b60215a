/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of remoca-memd's fill ring (memd/fill_ring.c, FILL_RING in
 * memd/proto.c) without sockets: proto_process over a session and a store,
 * the test playing the ring's client through the mapping.  Checks when
 * FILL_RING is answered and with what (the memfd attached, to be closed once
 * sent; --max-buffers charged and released), the order of entries among the
 * requests (before the request whose id is their after_id, also across the
 * 2^32 wrap of ids, and after the last request for the one after it), a head
 * out of range (ahead by more than nslots, or behind), entries for closed
 * handles, an entry the store cannot take, and entries for a sealed pool
 * (page and sidecar stored together). */
#include "test_memd_proto_fx.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fill_ring.h"

/* Over a unix socket, as a fill ring needs. */
static int setup(void **state)
{
    fx_setup(state, false);
    ((struct fx *)*state)->ss.unix_socket = true;
    return 0;
}

/* Also checks that ending the session gave its ring back (fill_rings 0). */
static int teardown(void **state)
{
    struct fx *f = *state;
    session_end(&f->ctx, &f->ss);
    assert_int_equal(f->store.fill_rings, 0);
    return fx_teardown(state);
}

/* Starts over with an empty output (as net.c does after sending it). */
static void sent(struct fx *f)
{
    session_attached_sent(&f->ss);
    f->out.len = f->rd = 0;
}

static void hello_and_open(struct fx *f)
{
    fx_hello_and_open(f);
    sent(f);
}

/* FILL_RING (id 3) of nslots: OK, the fd attached; then "sent". */
static void attach(struct fx *f, uint32_t nslots)
{
    req(f, REMOCA_OP_FILL_RING, 3, 0, 0, nslots, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    struct remoca_hdr h;
    const uint8_t *b = resp(f, 3, REMOCA_OK, &h);
    struct remoca_ring_reply rr;
    char why[128];
    assert_int_equal(remoca_ring_reply_decode(b, h.len, &rr, why, sizeof why), 0);
    assert_int_equal(rr.nslots, nslots);
    assert_non_null(f->ss.ring);
    assert_int_equal(f->ss.nattach, 1);
    assert_true(f->ss.attach_close);
    sent(f);
    f->head = 0;
}

static void fill(uint8_t *p, uint64_t key, int version)
{
    memset(p, (int)(key * 16 + (uint64_t)version), PAGE);
}

static void ring_put(struct fx *f, uint32_t handle, uint64_t key, uint32_t after_id, int version)
{
    struct fill_ring *r = f->ss.ring;
    uint32_t idx = (uint32_t)f->head & (r->nslots - 1);
    struct remoca_ring_entry e = {.key = key, .handle = handle, .after_id = after_id};
    remoca_ring_entry_write(r->base, idx, &e);
    fill(r->base + remoca_ring_off_pages(r->nslots) + (size_t)idx * PAGE, key, version);
    f->head++;
}

static void publish(struct fx *f, uint64_t head)
{
    __atomic_store_n((uint64_t *)(f->ss.ring->base + REMOCA_RING_OFF_HEAD), head, __ATOMIC_RELEASE);
}

static uint64_t tail(struct fx *f)
{
    return __atomic_load_n((uint64_t *)(f->ss.ring->base + REMOCA_RING_OFF_TAIL), __ATOMIC_ACQUIRE);
}

/* The next response is a GET of one key: its version, or 0 for a miss. */
static int got_version(struct fx *f, uint32_t id, uint64_t key)
{
    struct remoca_hdr h;
    const uint8_t *b = resp(f, id, REMOCA_OK, &h);
    uint32_t bm = remoca_bitmap_bytes(1);
    if (!(b[0] & 1)) return 0;
    assert_int_equal(h.len, bm + PAGE);
    for (int v = 1; v < 16; v++) {
        uint8_t want[PAGE];
        fill(want, key, v);
        if (!memcmp(b + bm, want, PAGE)) return v;
    }
    fail_msg("GET id %u: bytes of no version", id);
    return -1;
}

/* After the output was sent, a GET of one key in a batch of its own: the
 * version it gets, or 0 for a miss. */
static int get_alone(struct fx *f, uint32_t id, uint64_t key)
{
    sent(f);
    req(f, REMOCA_OP_GET, id, f->handle, key, 1, NULL, 0);
    run(f);
    return got_version(f, id, key);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    req(f, REMOCA_OP_FILL_RING, 1, 0, 0, 0, NULL, 0);
    run(f);
    expect_error(f, 1, REMOCA_E_STATE, "HELLO");
    sent(f);
    hello_and_open(f);
    f->ss.unix_socket = false;
    req(f, REMOCA_OP_FILL_RING, 3, 0, 0, 0, NULL, 0);
    run(f);
    expect_error(f, 3, REMOCA_E_STATE, "fill ring only over a unix socket");
    f->ss.unix_socket = true;
    req(f, REMOCA_OP_FILL_RING, 4, 0, 0, 17, NULL, 0);
    run(f);
    expect_error(f, 4, REMOCA_E_RANGE, "rejected");
    req(f, REMOCA_OP_FILL_RING, 5, 0, 0, 0, NULL, 0); /* behind the two above */
    run(f);
    expect_error(f, 5, REMOCA_E_STATE, "send it alone");
    assert_null(f->ss.ring);
    assert_int_equal(f->ss.nattach, 0);
    sent(f);

    /* Alone: the default ring, the memfd attached (sealed) until sent. */
    req(f, REMOCA_OP_FILL_RING, 6, 5, 0, 0, NULL, 0); /* pool: echoed, not used */
    req(f, REMOCA_OP_FILL_RING, 7, 0, 0, 0, NULL, 0);
    run(f);
    struct remoca_hdr h;
    const uint8_t *b = resp(f, 6, REMOCA_OK, &h);
    assert_int_equal(h.pool, 5);
    assert_int_equal(h.op, REMOCA_OP_FILL_RING);
    assert_int_equal(remoca_resp_check(&h, REMOCA_OP_FILL_RING, 0), REMOCA_OK);
    struct remoca_ring_reply rr;
    char why[128];
    assert_int_equal(remoca_ring_reply_decode(b, h.len, &rr, why, sizeof why), 0);
    assert_int_equal(rr.nslots, REMOCA_RING_DEFAULT_SLOTS);
    assert_int_equal(rr.size, remoca_ring_size(REMOCA_RING_DEFAULT_SLOTS));
    expect_error(f, 7, REMOCA_E_STATE, "fill ring already attached");
    assert_int_equal(f->ss.nattach, 1);
    assert_true(f->ss.attach_close);
    int fd = f->ss.attach_fds[0];
    int seals = fcntl(fd, F_GET_SEALS);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    assert_int_equal(f->store.fill_rings, 1);
    assert_int_equal(f->ss.last_id, 7);
    char stats[4096];
    store_stats(&f->store, NULL, false, stats, sizeof stats);
    assert_non_null(strstr(stats, " fill_rings=1 ring_puts=0 "));
    /* Never sent (the connection closed first): session_end closes the fd. */
    session_end(&f->ctx, &f->ss);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(f->store.fill_rings, 0);
}

/* --max-buffers: a ring is charged to the server's buffers, refused beyond. */
static void test_max_buffers(void **state)
{
    struct fx *f = *state;
    uint64_t bytes = 100;
    f->ctx.buf_bytes = &bytes;
    f->ctx.max_buffers = remoca_ring_size(16) + 99;
    hello_and_open(f);
    req(f, REMOCA_OP_FILL_RING, 3, 0, 0, 16, NULL, 0);
    run(f);
    expect_error(f, 3, REMOCA_E_LIMIT, "would exceed --max-buffers");
    assert_int_equal(bytes, 100);
    assert_null(f->ss.ring);
    sent(f);
    f->ctx.max_buffers++;
    attach(f, 16);
    assert_int_equal(bytes, 100 + remoca_ring_size(16));
    session_end(&f->ctx, &f->ss);
    assert_int_equal(bytes, 100);
}

/* Entries go where their after_id puts them among the requests of a batch. */
static void test_order(void **state)
{
    struct fx *f = *state;
    hello_and_open(f);
    attach(f, 16);
    uint32_t p = f->handle;
    ring_put(f, p, 1, 10, 1); /* before GET 10 */
    ring_put(f, p, 2, 11, 1); /* before DELETE 11 of key 2 */
    ring_put(f, p, 1, 13, 2); /* before GET 13, not before GET 12 */
    ring_put(f, p, 3, 15, 1); /* after the last request (14): its next */
    ring_put(f, p, 4, 16, 1); /* later still: waits */
    publish(f, f->head);
    req(f, REMOCA_OP_GET, 10, p, 1, 1, NULL, 0);
    req(f, REMOCA_OP_DELETE, 11, p, 2, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 12, p, 2, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 12, p, 1, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 13, p, 1, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 14, p, 3, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    struct remoca_hdr h;
    assert_int_equal(got_version(f, 10, 1), 1);
    resp(f, 11, REMOCA_OK, &h);
    assert_int_equal(got_version(f, 12, 2), 0);
    assert_int_equal(got_version(f, 12, 1), 1);
    assert_int_equal(got_version(f, 13, 1), 2);
    assert_int_equal(got_version(f, 14, 3), 0); /* executed after GET 14 */
    assert_int_equal(tail(f), 4);
    assert_int_equal(f->store.ring_puts, 4);
    sent(f);
    req(f, REMOCA_OP_GET, 15, p, 3, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 15, p, 4, 1, NULL, 0);
    run(f);
    assert_int_equal(got_version(f, 15, 3), 1);
    assert_int_equal(got_version(f, 15, 4), 0); /* executed after the last GET 15 */
    assert_int_equal(tail(f), 5);
    assert_int_equal(f->store.ring_puts, 5);
    assert_int_equal(get_alone(f, 16, 4), 1);
}

/* Request ids wrap at 2^32: "at or before" is serial order. */
static void test_id_wrap(void **state)
{
    struct fx *f = *state;
    hello_and_open(f);
    attach(f, 16);
    uint32_t p = f->handle;
    req(f, REMOCA_OP_PING, UINT32_MAX - 1, 0, 0, 0, NULL, 0);
    run(f);
    sent(f);
    ring_put(f, p, 7, 0, 1); /* before request 0, i.e. after request 2^32 - 1 */
    publish(f, f->head);
    req(f, REMOCA_OP_GET, UINT32_MAX, p, 7, 1, NULL, 0);
    run(f); /* the end of the batch executes up to id 0 */
    assert_int_equal(got_version(f, UINT32_MAX, 7), 0);
    assert_int_equal(tail(f), 1);
    assert_int_equal(get_alone(f, 0, 7), 1);
}

/* A head more than nslots ahead of the tail, or behind it, closes. */
static void test_bad_head(void **state)
{
    struct fx *f = *state;
    hello_and_open(f);
    attach(f, 16);
    uint32_t p = f->handle;
    for (int k = 0; k < 16; k++) ring_put(f, p, (uint64_t)k, 4, 1);
    publish(f, 16); /* exactly nslots ahead: fine */
    req(f, REMOCA_OP_PING, 4, 0, 0, 0, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    assert_int_equal(tail(f), 16);
    sent(f);
    publish(f, 15); /* behind the tail */
    req(f, REMOCA_OP_PING, 5, 0, 0, 0, NULL, 0);
    assert_int_equal(run(f), PROTO_CLOSE);
    assert_int_equal(f->out.len, 0);
    session_end(&f->ctx, &f->ss);
    memset(&f->ss, 0, sizeof f->ss);
    f->ss.unix_socket = true;
    f->in_len = 0;
    hello_and_open(f);
    attach(f, 16);
    publish(f, 17);                        /* nslots + 1 ahead */
    assert_int_equal(run(f), PROTO_CLOSE); /* at the end of a batch too */
    assert_int_equal(tail(f), 0);
}

/* An entry for a handle not open is skipped and counted; the rest go on. */
static void test_bad_handle(void **state)
{
    struct fx *f = *state;
    uint64_t errors = 0;
    f->ctx.errors = &errors;
    hello_and_open(f);
    attach(f, 16);
    ring_put(f, 0, 1, 4, 1);
    ring_put(f, 2, 1, 4, 1);
    ring_put(f, f->handle, 1, 4, 3);
    publish(f, f->head);
    req(f, REMOCA_OP_GET, 4, f->handle, 1, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    assert_int_equal(got_version(f, 4, 1), 3);
    assert_int_equal(errors, 2);
    assert_int_equal(f->ss.errors, 2);
    assert_int_equal(f->store.ring_puts, 1);
}

/* A page the store cannot take is dropped; the ring moves on. */
static void test_store_full(void **state)
{
    struct fx *f = *state;
    uint8_t b[600], page[PAGE];
    hello_and_open(f);
    /* A second pool that holds every page at its minimum: nothing can be freed. */
    struct remoca_pool_open pb = {.name = "big", .name_len = 3, .min_bytes = 64 * PAGE};
    req(f, REMOCA_OP_POOL_OPEN, 3, 0, 0, 0, b, (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb));
    run(f);
    struct remoca_hdr h;
    resp(f, 3, REMOCA_OK, &h);
    uint32_t big = h.pool;
    sent(f);
    for (uint64_t k = 0; k < 64; k++) {
        fill(page, k, 1);
        req(f, REMOCA_OP_PUT, 4, big, k, 1, page, PAGE);
        run(f);
        resp(f, 4, REMOCA_OK, &h);
        sent(f);
    }
    req(f, REMOCA_OP_FILL_RING, 5, 0, 0, 16, NULL, 0);
    run(f);
    resp(f, 5, REMOCA_OK, &h);
    sent(f);
    f->head = 0;
    ring_put(f, f->handle, 9, 6, 1);
    publish(f, f->head);
    req(f, REMOCA_OP_GET, 6, f->handle, 9, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    assert_int_equal(got_version(f, 6, 9), 0);
    assert_int_equal(tail(f), 1);
    assert_int_equal(f->store.nfree, 0);
}

/* A sealed pool's entries carry the page's sidecar in the ring's sides
 * area: stored with the page as a sealed PUT would, beside a plain pool's
 * entries. */
static void test_sealed_pool(void **state)
{
    struct fx *f = *state;
    uint64_t errors = 0;
    f->ctx.errors = &errors;
    hello_and_open(f);
    uint8_t b[600];
    struct remoca_pool_open pb = {.name = "sealed", .name_len = 6};
    size_t at = f->in_len;
    req(f, REMOCA_OP_POOL_OPEN, 3, 0, 0, 0, b, (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb));
    remoca_put_le16(f->in + at + 6, REMOCA_F_SEALED);
    uint8_t unit[REMOCA_SEALED_UNIT];
    memset(unit, 0x5a, sizeof unit);
    at = f->in_len;
    req(f, REMOCA_OP_PUT, 4, 2, 7, 1, unit, sizeof unit); /* an older version of key 7 */
    remoca_put_le16(f->in + at + 6, REMOCA_F_SEALED);
    run(f);
    struct remoca_hdr h;
    resp(f, 3, REMOCA_OK, &h);
    assert_int_equal(h.pool, 2);
    resp(f, 4, REMOCA_OK, &h);
    sent(f);
    attach(f, 16);
    struct fill_ring *r = f->ss.ring;
    uint32_t idx = (uint32_t)f->head & (r->nslots - 1);
    ring_put(f, 2, 7, 5, 1); /* the sealed pool's key 7 */
    uint8_t side[REMOCA_SIDE_SIZE];
    for (unsigned i = 0; i < sizeof side; i++) side[i] = (uint8_t)(0xc0 + i);
    memcpy(r->base + remoca_ring_off_sides(r->nslots) + (size_t)idx * REMOCA_SIDE_SIZE, side,
           sizeof side);
    ring_put(f, f->handle, 1, 5, 2);
    publish(f, f->head);
    at = f->in_len;
    req(f, REMOCA_OP_GET, 5, 2, 7, 1, NULL, 0);
    remoca_put_le16(f->in + at + 6, REMOCA_F_SEALED);
    req(f, REMOCA_OP_GET, 6, f->handle, 1, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    const uint8_t *g = resp(f, 5, REMOCA_OK, &h);
    assert_int_equal(h.len, 8 + REMOCA_SEALED_UNIT);
    uint8_t want[PAGE];
    fill(want, 7, 1);
    assert_memory_equal(g + 8, want, PAGE);
    assert_memory_equal(g + 8 + PAGE, side, sizeof side);
    assert_int_equal(got_version(f, 6, 1), 2);
    assert_int_equal(tail(f), 2);
    assert_int_equal(errors, 0);
    assert_int_equal(f->store.ring_puts, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_pool, setup, teardown),
    };
    return cmocka_run_group_tests_name("memd_ring", tests, NULL, NULL);
}
