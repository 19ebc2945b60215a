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
        cmocka_unit_test(bodies),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
