/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the wire codec: header round trip, validation of every
 * opcode's sizes and ranges, body codecs, response checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "remoca/wire.h"

static struct remoca_hdr req(uint8_t op, uint64_t key, uint32_t count, uint32_t len)
{
    return (struct remoca_hdr){.magic = REMOCA_MAGIC_REQ,
                               .version = REMOCA_VERSION,
                               .op = op,
                               .id = 7,
                               .pool = 1,
                               .key = key,
                               .count = count,
                               .len = len};
}

static void header_round_trip(void **state)
{
    struct remoca_hdr h = req(REMOCA_OP_PUT, 0x1122334455667788ull, 3, 3 * 4096), d;
    h.flags = 0xbeef;
    uint8_t buf[REMOCA_HDR_SIZE];
    remoca_hdr_encode(buf, &h);
    /* Little-endian on the wire, whatever the host. */
    assert_int_equal(buf[0], 0x52);
    assert_int_equal(buf[16], 0x88);
    assert_int_equal(buf[23], 0x11);
    remoca_hdr_decode(buf, &d);
    assert_memory_equal(&h, &d, sizeof h);
}

static void request_validation(void **state)
{
    struct remoca_hdr h = req(REMOCA_OP_GET, 10, 4, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h.magic ^= 1;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_PROTO);
    h = req(REMOCA_OP_GET, 10, 4, 0);
    h.version = 9;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_VERSION);
    h = req(REMOCA_OP_GET, 10, 0, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_RANGE);
    h = req(REMOCA_OP_GET, 10, REMOCA_MAX_BATCH + 1, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_RANGE);
    h = req(REMOCA_OP_GET, UINT64_MAX - 1, 3, 0); /* wraps */
    assert_int_equal(remoca_req_check(&h), REMOCA_E_RANGE);
    h = req(REMOCA_OP_GET, UINT64_MAX - 1, 2, 0); /* last two keys: fine */
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h = req(REMOCA_OP_GET, 10, 4, 1);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h = req(REMOCA_OP_PUT, 10, 2, 2 * 4096);
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h = req(REMOCA_OP_PUT, 10, 2, 2 * 4096 - 1);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h = req(REMOCA_OP_PUT, 10, 1, 0xffffffffu);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h = req(REMOCA_OP_DELETE_RANGE, 0, 0xffffffffu, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h = req(REMOCA_OP_DELETE, 0, 1000, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_RANGE);
    h = req(77, 0, 0, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_OP);
    h = req(0, 0, 0, 0);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_OP);
    h = req(REMOCA_OP_STATS, 0, 0, 0);
    h.flags = REMOCA_F_JSON;
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h.flags = 0x8000;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_PROTO);
    h = req(REMOCA_OP_HELLO, 0, 0, 3);
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
}

static void response_validation(void **state)
{
    struct remoca_hdr r = {
        .magic = REMOCA_MAGIC_RESP, .version = REMOCA_VERSION, .op = REMOCA_OP_GET, .count = 70};
    r.len = remoca_bitmap_bytes(70) + 2 * 4096;
    assert_int_equal(remoca_bitmap_bytes(70), 16);
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 70), REMOCA_OK);
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_PUT, 70), REMOCA_E_PROTO);
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 69), REMOCA_E_PROTO);
    r.len = 16 + 71 * 4096; /* more pages than keys */
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 70), REMOCA_E_SIZE);
    r.len = 16 + 100;
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 70), REMOCA_E_SIZE);
    r.flags = REMOCA_E_POOL;
    r.len = 20;
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 70), REMOCA_OK);
    r.flags = 999;
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_GET, 70), REMOCA_E_PROTO);
}

/* Sealed pools: REMOCA_F_SEALED on POOL_OPEN, GET, TAKE, PUT only; a
 * sealed PUT carries count x (page || 32-byte sidecar); a sealed GET/TAKE
 * response the bitmap and 4128 bytes per hit. */
static void sealed_frames(void **state)
{
    assert_int_equal(REMOCA_SIDE_SIZE, 32);
    assert_int_equal(REMOCA_SEALED_UNIT, 4128);
    assert_int_equal(remoca_unit_size(true), 4128);
    assert_int_equal(remoca_unit_size(false), 4096);
    assert_int_equal(REMOCA_MAX_REQ_PAYLOAD, 256 * 4128);

    struct remoca_hdr h = req(REMOCA_OP_PUT, 10, 2, 2 * 4128);
    h.flags = REMOCA_F_SEALED;
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h.len = 2 * 4096; /* plain pages in a sealed frame */
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h.len = 2 * 4128 + 1;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h.flags = 0;
    h.len = 2 * 4128; /* sidecars in a plain frame */
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);
    h = req(REMOCA_OP_PUT, 0, REMOCA_MAX_BATCH, REMOCA_MAX_BATCH * 4128);
    h.flags = REMOCA_F_SEALED; /* the largest request of all */
    assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    h.count = REMOCA_MAX_BATCH + 1;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_RANGE);
    h = req(REMOCA_OP_PUT, 0, 1, REMOCA_MAX_REQ_PAYLOAD + 1);
    h.flags = REMOCA_F_SEALED;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_SIZE);

    static const uint8_t with[] = {REMOCA_OP_GET, REMOCA_OP_TAKE, REMOCA_OP_POOL_OPEN};
    for (unsigned i = 0; i < sizeof with; i++) {
        h = req(with[i], 10, 4, with[i] == REMOCA_OP_POOL_OPEN ? 30 : 0);
        h.flags = REMOCA_F_SEALED;
        assert_int_equal(remoca_req_check(&h), REMOCA_OK);
    }
    static const uint8_t without[] = {
        REMOCA_OP_DELETE, REMOCA_OP_DELETE_RANGE, REMOCA_OP_POOL_RESET, REMOCA_OP_STATS,
        REMOCA_OP_PING,   REMOCA_OP_SHM_MAP,      REMOCA_OP_FILL_RING};
    for (unsigned i = 0; i < sizeof without; i++) {
        h = req(without[i], 10, without[i] == REMOCA_OP_FILL_RING ? 0 : 4, 0);
        assert_int_equal(remoca_req_check(&h), REMOCA_OK);
        h.flags = REMOCA_F_SEALED;
        assert_int_equal(remoca_req_check(&h), REMOCA_E_PROTO);
    }
    h = req(77, 0, 1, 0);
    h.flags = REMOCA_F_SEALED;
    assert_int_equal(remoca_req_check(&h), REMOCA_E_OP);

    struct remoca_hdr r = {
        .magic = REMOCA_MAGIC_RESP, .version = REMOCA_VERSION, .op = REMOCA_OP_TAKE, .count = 70};
    r.len = 16 + 3 * 4128;
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, true), REMOCA_OK);
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, false), REMOCA_E_SIZE);
    assert_int_equal(remoca_resp_check(&r, REMOCA_OP_TAKE, 70), REMOCA_E_SIZE);
    r.len = 16 + 3 * 4096; /* plain pages to a sealed request */
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, true), REMOCA_E_SIZE);
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, false), REMOCA_OK);
    r.len = 16 + 71 * 4128; /* more units than keys */
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, true), REMOCA_E_SIZE);
    r.len = 16 + 70 * 4128;
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, true), REMOCA_OK);
    r.len = 16 + 4128 - 32; /* a hit cut short of its sidecar */
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_TAKE, 70, true), REMOCA_E_SIZE);
    r.op = REMOCA_OP_PUT;
    r.len = 0;
    assert_int_equal(remoca_resp_check_sealed(&r, REMOCA_OP_PUT, 70, true), REMOCA_OK);

    /* The body codec does not carry the flag; decoding clears it. */
    uint8_t buf[64];
    struct remoca_pool_open p = {.name = "s", .name_len = 1, .sealed = true}, q = {.sealed = true};
    size_t n = remoca_pool_open_encode(buf, sizeof buf, &p);
    assert_int_equal(n, 23);
    assert_int_equal(remoca_pool_open_decode(buf, n, &q), 0);
    assert_false(q.sealed);
}

static void bodies(void **state)
{
    uint8_t buf[600];
    struct remoca_hello h = {.name = "nbdkit",
                             .name_len = 6,
                             .cred = (const uint8_t *)"s3cret",
                             .cred_len = 6},
                        d;
    size_t n = remoca_hello_encode(buf, sizeof buf, &h);
    assert_int_equal(n, 16);
    assert_int_equal(remoca_hello_decode(buf, n, &d), 0);
    assert_int_equal(d.name_len, 6);
    assert_memory_equal(d.name, "nbdkit", 6);
    assert_memory_equal(d.cred, "s3cret", 6);
    assert_int_equal(remoca_hello_decode(buf, n - 1, &d), -1);
    assert_int_equal(remoca_hello_decode(buf, n + 1, &d), -1);
    assert_int_equal(remoca_hello_encode(buf, 10, &h), 0);

    struct remoca_pool_open p = {.min_bytes = 1 << 20,
                                 .max_bytes = 1ull << 33,
                                 .weight = 3,
                                 .name = "vm42/vda",
                                 .name_len = 8},
                            q;
    n = remoca_pool_open_encode(buf, sizeof buf, &p);
    assert_int_equal(n, 30);
    assert_int_equal(remoca_pool_open_decode(buf, n, &q), 0);
    assert_int_equal(q.max_bytes, 1ull << 33);
    assert_int_equal(q.weight, 3);
    assert_memory_equal(q.name, "vm42/vda", 8);
    buf[23] = 0; /* NUL inside the name */
    assert_int_equal(remoca_pool_open_decode(buf, n, &q), -1);
    p.name_len = 0;
    assert_int_equal(remoca_pool_open_encode(buf, sizeof buf, &p), 0);
}

static void names(void **state)
{
    assert_string_equal(remoca_op_name(REMOCA_OP_TAKE), "take");
    assert_string_equal(remoca_op_name(200), "unknown");
    assert_string_equal(remoca_status_name(REMOCA_E_FULL), "server full");
    assert_string_equal(remoca_status_name(4000), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(request_validation),
        cmocka_unit_test(response_validation),
        cmocka_unit_test(sealed_frames),
        cmocka_unit_test(bodies),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
