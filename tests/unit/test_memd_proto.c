/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of remoca-memd's frame processing (memd/proto.c) without
 * sockets: request bytes in, response bytes out.  Checks HELLO-first, pool
 * handles per session, the GET/TAKE response layout (bitmap + pages), error
 * replies that keep the stream in sync, closing on bad magic / oversized
 * length, partial frames, the output high-water mark, and when SHM_MAP is
 * answered (a --shm store, a unix socket, an open handle, nothing before it
 * in the output) and with what; POOL_KEEP keeping exactly the chunks the
 * receiver owns, and refusing hostile bodies; sealed pools (page || 32-byte
 * sidecar units, refusals of the other kind, SHM_MAP with the sidecars). */
#include "test_memd_proto_fx.h"

#include "remoca/placement.h"
#include "remoca/shm.h"

static int setup(void **state) { return fx_setup(state, false); }

static int setup_shm(void **state) { return fx_setup(state, true); }

static void hello_and_open(struct fx *f, uint32_t *handle)
{
    struct remoca_hdr h = fx_hello_and_open(f);
    assert_int_equal(h.op, REMOCA_OP_POOL_OPEN);
    *handle = h.pool;
    assert_int_equal(*handle, 1);
}

static void test_hello_first(void **state)
{
    struct fx *f = *state;
    struct remoca_hdr h;
    req(f, REMOCA_OP_PING, 7, 0, 0, 0, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    const uint8_t *msg = resp(f, 7, REMOCA_E_STATE, &h);
    assert_true(h.len > 0 && h.len <= REMOCA_MAX_ERRMSG);
    assert_non_null(memmem(msg, h.len, "HELLO", 5));
    uint32_t handle;
    hello_and_open(f, &handle);
    req(f, REMOCA_OP_PING, 8, 0, 0, 0, NULL, 0);
    run(f);
    resp(f, 8, REMOCA_OK, &h);
    assert_int_equal(h.op, REMOCA_OP_PING);
}

static void test_get_layout(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    static uint8_t pages[3 * PAGE];
    for (int i = 0; i < 3; i++) memset(pages + i * PAGE, 'a' + i, PAGE);
    req(f, REMOCA_OP_PUT, 10, p, 70, 1, pages, PAGE);           /* key 70 = 'a' */
    req(f, REMOCA_OP_PUT, 11, p, 5, 2, pages + PAGE, 2 * PAGE); /* 5 = 'b', 6 = 'c' */
    req(f, REMOCA_OP_GET, 12, p, 5, 66, NULL, 0);               /* keys 5..70 */
    req(f, REMOCA_OP_TAKE, 13, p, 6, 1, NULL, 0);
    req(f, REMOCA_OP_GET, 14, p, 6, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    struct remoca_hdr h;
    resp(f, 10, REMOCA_OK, &h);
    resp(f, 11, REMOCA_OK, &h);
    const uint8_t *b = resp(f, 12, REMOCA_OK, &h);
    uint32_t bm = remoca_bitmap_bytes(66);
    assert_int_equal(bm, 16);
    assert_int_equal(h.count, 66);
    assert_int_equal(h.key, 5);
    assert_int_equal(h.len, bm + 3 * PAGE);
    assert_int_equal(b[0], 0x03); /* keys 5, 6 */
    for (int i = 1; i < 8; i++) assert_int_equal(b[i], 0);
    assert_int_equal(b[8], 0x02); /* key 70 = bit 65 */
    assert_int_equal(b[9], 0);
    assert_int_equal(b[bm], 'b');
    assert_int_equal(b[bm + PAGE], 'c');
    assert_int_equal(b[bm + 2 * PAGE], 'a');
    b = resp(f, 13, REMOCA_OK, &h);
    assert_int_equal(h.len, 8 + PAGE);
    assert_int_equal(b[8], 'c');
    b = resp(f, 14, REMOCA_OK, &h);
    assert_int_equal(h.len, 8); /* taken: a miss now */
    assert_int_equal(b[0], 0);
}

static void test_errors_keep_sync(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    static uint8_t junk[3 * PAGE];
    struct remoca_hdr h;
    req(f, 42, 20, p, 0, 0, junk, 100);                           /* unknown op, payload skipped */
    req(f, REMOCA_OP_PUT, 21, p, 0, 2, junk, 3 * PAGE);           /* wrong length */
    req(f, REMOCA_OP_GET, 22, p + 1, 0, 1, NULL, 0);              /* handle not opened here */
    req(f, REMOCA_OP_DELETE, 23, p, 0, 300, NULL, 0);             /* count above batch */
    req(f, REMOCA_OP_DELETE_RANGE, 24, p, 10, 1u << 31, NULL, 0); /* fine */
    req(f, REMOCA_OP_PING, 25, 0, 0, 0, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    assert_int_equal(f->in_len, 0);
    resp(f, 20, REMOCA_E_OP, &h);
    resp(f, 21, REMOCA_E_SIZE, &h);
    resp(f, 22, REMOCA_E_POOL, &h);
    resp(f, 23, REMOCA_E_RANGE, &h);
    resp(f, 24, REMOCA_OK, &h);
    resp(f, 25, REMOCA_OK, &h);
    assert_int_equal(f->ss.errors, 4);
}

static void test_close_on_desync(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    struct remoca_hdr h;
    req(f, REMOCA_OP_PING, 30, 0, 0, 0, NULL, 0);
    struct remoca_hdr big = {.magic = REMOCA_MAGIC_REQ,
                             .version = 1,
                             .op = REMOCA_OP_PUT,
                             .id = 31,
                             .pool = p,
                             .count = 1,
                             .len = REMOCA_MAX_REQ_PAYLOAD + 1};
    remoca_hdr_encode(f->in + f->in_len, &big);
    f->in_len += REMOCA_HDR_SIZE;
    req(f, REMOCA_OP_PING, 32, 0, 0, 0, NULL, 0); /* never executed */
    assert_int_equal(proto_frame_size(f->in + REMOCA_HDR_SIZE, REMOCA_HDR_SIZE), 0);
    assert_int_equal(run(f), PROTO_CLOSE);
    resp(f, 30, REMOCA_OK, &h);
    resp(f, 31, REMOCA_E_SIZE, &h);
    assert_int_equal(f->rd, f->out.len);

    /* bad magic */
    f->out.len = f->rd = 0;
    f->in_len = 0;
    memset(f->in, 0x5a, 40);
    f->in_len = 40;
    assert_int_equal(run(f), PROTO_CLOSE);
    resp(f, 0x5a5a5a5a, REMOCA_E_PROTO, &h);
}

static void test_partial_frames(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    static uint8_t page[PAGE];
    memset(page, 7, PAGE);
    req(f, REMOCA_OP_PUT, 40, p, 1, 1, page, PAGE);
    size_t total = f->in_len;
    /* Feed it one piece at a time: nothing happens until the frame is whole. */
    static uint8_t whole[REMOCA_HDR_SIZE + PAGE];
    memcpy(whole, f->in, total);
    size_t cuts[] = {5, 32, 33, 4000, total};
    f->in_len = 0;
    size_t fed = 0;
    for (size_t i = 0; i < 5; i++) {
        memcpy(f->in + f->in_len, whole + fed, cuts[i] - fed);
        f->in_len += cuts[i] - fed;
        fed = cuts[i];
        size_t out_before = f->out.len;
        assert_int_equal(run(f), PROTO_MORE);
        if (fed < total) {
            assert_int_equal(f->out.len, out_before);
            assert_int_equal(f->in_len, fed);
            assert_int_equal(proto_frame_size(f->in, f->in_len),
                             fed < REMOCA_HDR_SIZE ? REMOCA_HDR_SIZE : total);
        }
    }
    assert_int_equal(f->in_len, 0);
    struct remoca_hdr h;
    resp(f, 40, REMOCA_OK, &h);
}

static void test_output_high_water(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    static uint8_t pages[64 * PAGE];
    req(f, REMOCA_OP_PUT, 50, p, 0, 64, pages, sizeof pages);
    for (uint32_t i = 0; i < 8; i++) req(f, REMOCA_OP_GET, 51 + i, p, 0, 64, NULL, 0);
    /* 8 x 256 KiB of responses: processing stops at the high-water mark. */
    f->out.len = f->rd = 0;
    assert_int_equal(run(f), PROTO_FULL);
    assert_true(f->in_len > 0);
    size_t n = 0;
    while (f->rd < f->out.len) {
        struct remoca_hdr h;
        resp(f, 50 + (uint32_t)n, REMOCA_OK, &h);
        n++;
    }
    assert_true(n >= 2 && n < 9);
    for (int round = 0; round < 10 && f->in_len; round++) {
        f->out.len = f->rd = 0;
        run(f);
    }
    assert_int_equal(f->in_len, 0);
}

/* Without --shm the store has nothing to map, whatever the socket. */
static void test_shm_map_needs_shm(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    f->ss.unix_socket = true;
    req(f, REMOCA_OP_SHM_MAP, 60, p, 0, 0, NULL, 0);
    run(f);
    expect_error(f, 60, REMOCA_E_STATE, "shm not enabled (start remoca-memd with --shm)");
    assert_int_equal(f->ss.nattach, 0);
}

static void test_shm_map(void **state)
{
    struct fx *f = *state;
    struct remoca_hdr h;
    req(f, REMOCA_OP_SHM_MAP, 60, 1, 0, 0, NULL, 0); /* before HELLO */
    run(f);
    expect_error(f, 60, REMOCA_E_STATE, "HELLO");
    uint32_t p;
    hello_and_open(f, &p);
    req(f, REMOCA_OP_SHM_MAP, 61, p, 0, 0, NULL, 0); /* TCP */
    run(f);
    expect_error(f, 61, REMOCA_E_STATE, "shm only over a unix socket");
    f->ss.unix_socket = true;
    req(f, REMOCA_OP_SHM_MAP, 62, p + 1, 0, 0, NULL, 0); /* handle not open */
    run(f);
    expect_error(f, 62, REMOCA_E_POOL, "not open");
    req(f, REMOCA_OP_PING, 63, 0, 0, 0, NULL, 0); /* a response ahead of it */
    req(f, REMOCA_OP_SHM_MAP, 64, p, 0, 0, NULL, 0);
    run(f);
    resp(f, 63, REMOCA_OK, &h);
    expect_error(f, 64, REMOCA_E_STATE, "alone");
    assert_int_equal(f->ss.nattach, 0);
    assert_int_equal(f->store.shm_maps, 0);

    /* Alone in the output: OK, the layout, and the session marked for the fds. */
    f->out.len = f->rd = 0;
    req(f, REMOCA_OP_SHM_MAP, 65, p, 0, 0, NULL, 0);
    req(f, REMOCA_OP_PING, 66, 0, 0, 0, NULL, 0); /* may follow it */
    run(f);
    const uint8_t *b = resp(f, 65, REMOCA_OK, &h);
    assert_int_equal(h.op, REMOCA_OP_SHM_MAP);
    assert_int_equal(h.pool, p);
    assert_int_equal(h.len, REMOCA_SHM_LAYOUT_SIZE);
    assert_int_equal(remoca_resp_check(&h, REMOCA_OP_SHM_MAP, 0), REMOCA_OK);
    struct remoca_shm_layout l;
    char why[128];
    assert_int_equal(remoca_shm_layout_decode(b, h.len, &l, why, sizeof why), 0);
    assert_int_equal(l.pool, f->ss.handles[p - 1]);
    assert_int_equal(l.npages, 64);
    assert_int_equal(l.data_size, f->store.shm->layout.data_size);
    assert_int_equal(f->ss.nattach, 2);
    assert_int_equal(f->ss.attach_fds[0], f->store.shm->data_ro_fd);
    assert_int_equal(f->ss.attach_fds[1], f->store.shm->touch_fd);
    assert_false(f->ss.attach_close);
    resp(f, 66, REMOCA_OK, &h);
    assert_int_equal(f->store.shm_maps, 1);
    char stats[4096];
    store_stats(&f->store, NULL, false, stats, sizeof stats);
    assert_non_null(strstr(stats, " shm=1 shm_maps=1 "));
}

/* POOL_KEEP: of one page in each of 40 chunks, exactly those whose owner
 * among 3 members (weights 1, 2, 1) is member 1 stay; bad bodies get errors
 * and drop nothing. */
static void test_pool_keep(void **state)
{
    struct fx *f = *state;
    uint32_t p;
    hello_and_open(f, &p);
    static uint8_t page[PAGE];
    const unsigned nchunks = 40;
    uint32_t id = 100;
    for (unsigned ch = 0; ch < nchunks; ch++) {
        memset(page, (int)ch, PAGE);
        req(f, REMOCA_OP_PUT, id++, p, (uint64_t)ch * REMOCA_PLACEMENT_CHUNK + ch % 7, 1, page,
            PAGE);
    }
    uint64_t seeds[3] = {remoca_placement_seed("unix:/a", 7), remoca_placement_seed("unix:/b", 7),
                         remoca_placement_seed("unix:/c", 7)};
    uint8_t weights[3] = {1, 2, 1};
    struct remoca_placement m;
    remoca_placement_set(&m, 3, seeds, weights);
    uint8_t body[REMOCA_KEEP_MAX_BODY];
    uint32_t len = (uint32_t)remoca_keep_encode(body, sizeof body, &m, 1);
    uint8_t bad[REMOCA_KEEP_MAX_BODY];
    memcpy(bad, body, len);
    bad[2] = 3; /* self out of range */
    req(f, REMOCA_OP_POOL_KEEP, 200, p, 0, 0, bad, len);
    req(f, REMOCA_OP_POOL_KEEP, 201, p, 0, 0, body, 5);       /* too short for one member */
    req(f, REMOCA_OP_POOL_KEEP, 202, p + 1, 0, 0, body, len); /* handle not open */
    req(f, REMOCA_OP_POOL_KEEP, 203, p, 0, 0, body, len);
    for (unsigned ch = 0; ch < nchunks; ch++)
        req(f, REMOCA_OP_GET, 300 + ch, p, (uint64_t)ch * REMOCA_PLACEMENT_CHUNK + ch % 7, 1, NULL,
            0);
    assert_int_equal(run(f), PROTO_MORE);
    struct remoca_hdr h;
    for (uint32_t i = 100; i < id; i++) resp(f, i, REMOCA_OK, &h);
    expect_error(f, 200, REMOCA_E_PROTO, "malformed POOL_KEEP");
    resp(f, 201, REMOCA_E_SIZE, &h);
    resp(f, 202, REMOCA_E_POOL, &h);
    resp(f, 203, REMOCA_OK, &h);
    assert_int_equal(h.op, REMOCA_OP_POOL_KEEP);
    unsigned kept = 0, mine = 0;
    for (unsigned ch = 0; ch < nchunks; ch++) {
        const uint8_t *b = resp(f, 300 + ch, REMOCA_OK, &h);
        bool owner = remoca_placement_chunk(&m, ch) == 1;
        mine += owner;
        assert_int_equal(b[0] & 1, owner ? 1 : 0);
        if (owner) {
            assert_int_equal(b[8], (uint8_t)ch); /* the page itself */
            kept++;
        }
    }
    assert_int_equal(kept, mine);
    assert_true(mine > 5 && mine < nchunks - 5); /* both cases were exercised */
}

/* A request with header flags (req() sends none). */
static void req_flags(struct fx *f, uint16_t flags, uint8_t op, uint32_t id, uint32_t pool,
                      uint64_t key, uint32_t count, const void *payload, uint32_t len)
{
    size_t at = f->in_len;
    req(f, op, id, pool, key, count, payload, len);
    remoca_put_le16(f->in + at + 6, flags);
}

static void open_named(struct fx *f, uint16_t flags, uint32_t id, const char *name)
{
    uint8_t b[300];
    struct remoca_pool_open pb = {.name = name, .name_len = strlen(name)};
    req_flags(f, flags, REMOCA_OP_POOL_OPEN, id, 0, 0, 0, b,
              (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb));
}

#define UNIT REMOCA_SEALED_UNIT
#define SEALED REMOCA_F_SEALED

/* Unit i: page of byte 'a'+i, sidecar of bytes 0xa0+i with the key in it. */
static void fill_units(uint8_t *u, unsigned n, uint64_t key0)
{
    for (unsigned i = 0; i < n; i++) {
        memset(u + i * UNIT, 'a' + i, PAGE);
        memset(u + i * UNIT + PAGE, 0xa0 + i, REMOCA_SIDE_SIZE);
        remoca_put_le64(u + i * UNIT + PAGE, key0 + i);
    }
}

static void test_sealed_pool(void **state)
{
    struct fx *f = *state;
    struct remoca_hdr h;
    uint32_t plain;
    hello_and_open(f, &plain); /* "vm/d", unsealed: handle 1 */
    open_named(f, SEALED, 20, "vm/sealed");
    run(f);
    resp(f, 20, REMOCA_OK, &h);
    uint32_t sp = h.pool;
    assert_int_equal(sp, 2);

    static uint8_t units[3 * UNIT];
    fill_units(units, 3, 70);
    req_flags(f, SEALED, REMOCA_OP_PUT, 21, sp, 70, 1, units, UNIT); /* 70 */
    fill_units(units, 3, 5);
    req_flags(f, SEALED, REMOCA_OP_PUT, 22, sp, 5, 2, units, 2 * UNIT); /* 5, 6 */
    req_flags(f, SEALED, REMOCA_OP_GET, 23, sp, 5, 66, NULL, 0);
    req_flags(f, SEALED, REMOCA_OP_TAKE, 24, sp, 6, 1, NULL, 0);
    req_flags(f, SEALED, REMOCA_OP_GET, 25, sp, 6, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    resp(f, 21, REMOCA_OK, &h);
    resp(f, 22, REMOCA_OK, &h);
    const uint8_t *b = resp(f, 23, REMOCA_OK, &h);
    assert_int_equal(h.len, 16 + 3 * UNIT);
    assert_int_equal(remoca_resp_check_sealed(&h, REMOCA_OP_GET, 66, true), REMOCA_OK);
    assert_int_equal(b[0], 0x03);
    assert_int_equal(b[8], 0x02);
    const uint8_t *u = b + 16;
    assert_int_equal(u[0], 'a'); /* key 5 */
    assert_int_equal(u[PAGE - 1], 'a');
    assert_int_equal(remoca_get_le64(u + PAGE), 5);
    assert_int_equal(u[PAGE + 8], 0xa0);
    assert_int_equal(u[UNIT - 1], 0xa0);
    u += UNIT; /* key 6 */
    assert_int_equal(u[0], 'b');
    assert_int_equal(remoca_get_le64(u + PAGE), 6);
    assert_int_equal(u[UNIT - 1], 0xa1);
    u += UNIT; /* key 70, put first */
    assert_int_equal(u[0], 'a');
    assert_int_equal(remoca_get_le64(u + PAGE), 70);
    b = resp(f, 24, REMOCA_OK, &h);
    assert_int_equal(h.len, 8 + UNIT);
    assert_int_equal(b[8], 'b');
    assert_int_equal(remoca_get_le64(b + 8 + PAGE), 6);
    resp(f, 25, REMOCA_OK, &h);
    assert_int_equal(h.len, 8); /* taken */

    /* Overwrite replaces the sidecar too. */
    fill_units(units, 1, 900);
    req_flags(f, SEALED, REMOCA_OP_PUT, 26, sp, 5, 1, units, UNIT);
    req_flags(f, SEALED, REMOCA_OP_GET, 27, sp, 5, 1, NULL, 0);
    run(f);
    resp(f, 26, REMOCA_OK, &h);
    b = resp(f, 27, REMOCA_OK, &h);
    assert_int_equal(h.len, 8 + UNIT);
    assert_int_equal(remoca_get_le64(b + 8 + PAGE), 900);

    /* Frames of the other kind are refused, the stream stays in sync. */
    static uint8_t pages[2 * PAGE];
    req(f, REMOCA_OP_PUT, 30, sp, 5, 1, pages, PAGE);
    req(f, REMOCA_OP_GET, 31, sp, 5, 1, NULL, 0);
    req(f, REMOCA_OP_TAKE, 32, sp, 5, 1, NULL, 0);
    req_flags(f, SEALED, REMOCA_OP_PUT, 33, plain, 5, 1, units, UNIT);
    req_flags(f, SEALED, REMOCA_OP_GET, 34, plain, 5, 1, NULL, 0);
    req_flags(f, SEALED, REMOCA_OP_PUT, 35, sp, 5, 1, pages, PAGE); /* wrong length */
    req_flags(f, SEALED, REMOCA_OP_DELETE, 36, sp, 5, 1, NULL, 0);  /* flag not here */
    req(f, REMOCA_OP_PUT, 37, plain, 5, 1, pages, PAGE);
    req(f, REMOCA_OP_GET, 38, plain, 5, 1, NULL, 0);
    assert_int_equal(run(f), PROTO_MORE);
    expect_error(f, 30, REMOCA_E_STATE, "pool is sealed: put needs the sealed flag");
    expect_error(f, 31, REMOCA_E_STATE, "pool is sealed: get needs the sealed flag");
    expect_error(f, 32, REMOCA_E_STATE, "pool is sealed: take needs the sealed flag");
    expect_error(f, 33, REMOCA_E_STATE, "pool is not sealed");
    expect_error(f, 34, REMOCA_E_STATE, "pool is not sealed");
    expect_error(f, 35, REMOCA_E_SIZE, "rejected");
    expect_error(f, 36, REMOCA_E_PROTO, "rejected");
    resp(f, 37, REMOCA_OK, &h);
    resp(f, 38, REMOCA_OK, &h);
    assert_int_equal(h.len, 8 + PAGE); /* an unsealed pool never returns sidecars */
    req_flags(f, SEALED, REMOCA_OP_GET, 39, sp, 5, 1, NULL, 0);
    run(f);
    b = resp(f, 39, REMOCA_OK, &h); /* the refused frames changed nothing */
    assert_int_equal(h.len, 8 + UNIT);
    assert_int_equal(remoca_get_le64(b + 8 + PAGE), 900);

    /* A pool is sealed or not from its creation. */
    open_named(f, 0, 40, "vm/sealed");
    open_named(f, SEALED, 41, "vm/d");
    open_named(f, SEALED, 42, "vm/sealed"); /* the same kind: the same handle */
    run(f);
    expect_error(f, 40, REMOCA_E_STATE, "pool is sealed (open it with the sealed flag)");
    expect_error(f, 41, REMOCA_E_STATE, "pool is not sealed (open it without the sealed flag)");
    resp(f, 42, REMOCA_OK, &h);
    assert_int_equal(h.pool, sp);
}

/* A full sealed batch: the largest request (256 x 4128 bytes) and response. */
static void test_sealed_full_batch(void **state)
{
    struct fx *f = *state;
    struct remoca_hdr h;
    uint32_t plain;
    hello_and_open(f, &plain);
    open_named(f, SEALED, 20, "big");
    run(f);
    resp(f, 20, REMOCA_OK, &h);
    uint32_t sp = h.pool;
    static uint8_t units[REMOCA_MAX_BATCH * UNIT];
    for (unsigned i = 0; i < REMOCA_MAX_BATCH; i++) {
        memset(units + i * UNIT, i, PAGE);
        memset(units + i * UNIT + PAGE, 255 - i, REMOCA_SIDE_SIZE);
    }
    /* 64 pages in the store: the last 64 keys of the batch stay. */
    req_flags(f, SEALED, REMOCA_OP_PUT, 21, sp, 0, REMOCA_MAX_BATCH, units, sizeof units);
    run(f);
    resp(f, 21, REMOCA_OK, &h);
    req_flags(f, SEALED, REMOCA_OP_GET, 22, sp, 0, REMOCA_MAX_BATCH, NULL, 0);
    run(f);
    const uint8_t *b = resp(f, 22, REMOCA_OK, &h);
    assert_int_equal(remoca_resp_check_sealed(&h, REMOCA_OP_GET, REMOCA_MAX_BATCH, true),
                     REMOCA_OK);
    unsigned hits = (h.len - 32) / UNIT, seen = 0;
    assert_true(hits > 0 && hits <= 64);
    for (unsigned i = 0; i < REMOCA_MAX_BATCH; i++) {
        if (!(b[i / 8] >> (i % 8) & 1)) continue;
        const uint8_t *u = b + 32 + (size_t)seen++ * UNIT;
        assert_memory_equal(u, units + i * UNIT, UNIT);
    }
    assert_int_equal(seen, hits);
}

/* SHM_MAP of a sealed pool: the layout places the sidecars in the shared
 * memfd, and a one-sided read of a sealed page gives page and sidecar as a
 * GET would; overwrites and removals are seen. */
static void test_sealed_shm_map(void **state)
{
    struct fx *f = *state;
    uint32_t plain;
    hello_and_open(f, &plain);
    f->ss.unix_socket = true;
    open_named(f, SEALED, 20, "s");
    static uint8_t units[2 * UNIT];
    fill_units(units, 2, 40);
    req_flags(f, SEALED, REMOCA_OP_PUT, 21, 2, 40, 2, units, 2 * UNIT);
    run(f);
    struct remoca_hdr h;
    resp(f, 20, REMOCA_OK, &h);
    resp(f, 21, REMOCA_OK, &h);
    f->rd = f->out.len = 0;
    req(f, REMOCA_OP_SHM_MAP, 22, 2, 0, 0, NULL, 0);
    run(f);
    const uint8_t *b = resp(f, 22, REMOCA_OK, &h);
    assert_int_equal(h.len, REMOCA_SHM_LAYOUT_SIZE);
    assert_int_equal(f->ss.nattach, 2);
    struct remoca_shm_layout l;
    char why[128];
    assert_int_equal(remoca_shm_layout_decode(b, h.len, &l, why, sizeof why), 0);
    assert_true(l.off_sides >= l.off_buckets + (uint64_t)(l.bmask + 1) * 4);
    assert_true(l.off_sides + (uint64_t)l.npages * REMOCA_SIDE_SIZE <= l.off_arena);
    struct remoca_shm_view v;
    remoca_shm_view_init(&v, &l, f->store.shm->data, NULL);
    static uint8_t page[PAGE];
    uint8_t side[REMOCA_SIDE_SIZE];
    assert_true(remoca_shm_read_sealed(&v, 41, page, side));
    assert_memory_equal(page, units + UNIT, PAGE);
    assert_memory_equal(side, units + UNIT + PAGE, REMOCA_SIDE_SIZE);
    assert_false(remoca_shm_read_sealed(&v, 42, page, side));

    fill_units(units, 1, 777); /* overwrite key 40: page and sidecar */
    units[0] = 'z';
    f->rd = f->out.len = 0;
    session_attached_sent(&f->ss);
    req_flags(f, SEALED, REMOCA_OP_PUT, 23, 2, 40, 1, units, UNIT);
    req_flags(f, SEALED, REMOCA_OP_TAKE, 24, 2, 41, 1, NULL, 0);
    run(f);
    resp(f, 23, REMOCA_OK, &h);
    resp(f, 24, REMOCA_OK, &h);
    assert_true(remoca_shm_read_sealed(&v, 40, page, side));
    assert_int_equal(page[0], 'z');
    assert_int_equal(remoca_get_le64(side), 777);
    assert_false(remoca_shm_read_sealed(&v, 41, page, side)); /* taken */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_first, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_layout, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors_keep_sync, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_on_desync, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_partial_frames, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_output_high_water, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shm_map_needs_shm, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shm_map, setup_shm, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pool_keep, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_pool, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_full_batch, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_shm_map, setup_shm, fx_teardown),
    };
    return cmocka_run_group_tests_name("memd_proto", tests, NULL, NULL);
}
