/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the frame codec: any bytes decoded as a request or response header,
 * validated, and bodies decoded (HELLO, POOL_OPEN, POOL_KEEP's members), must
 * never read out of bounds, and whatever validates must survive an
 * encode/decode round trip unchanged; a decoded POOL_KEEP member list places
 * a chunk on one of its members; REMOCA_F_SEALED frames (page || sidecar
 * units) are bounded by their unit. */
#include "remoca/placement.h"
#include "remoca/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < REMOCA_HDR_SIZE) return 0;
    struct remoca_hdr h, again;
    remoca_hdr_decode(data, &h);
    uint8_t enc[REMOCA_HDR_SIZE];
    remoca_hdr_encode(enc, &h);
    if (memcmp(enc, data, REMOCA_HDR_SIZE) != 0) abort();
    remoca_hdr_decode(enc, &again);
    if (memcmp(&h, &again, sizeof h) != 0) abort();

    const uint8_t *body = data + REMOCA_HDR_SIZE;
    size_t body_len = size - REMOCA_HDR_SIZE;
    enum remoca_status st = remoca_req_check(&h);
    if (st == REMOCA_OK) {
        /* A valid header bounds its payload. */
        if (h.len > REMOCA_MAX_REQ_PAYLOAD) abort();
        bool sealed = h.flags & REMOCA_F_SEALED;
        if (h.op == REMOCA_OP_PUT && h.len != h.count * remoca_unit_size(sealed)) abort();
        if (sealed && h.op != REMOCA_OP_PUT && h.op != REMOCA_OP_GET && h.op != REMOCA_OP_TAKE &&
            h.op != REMOCA_OP_POOL_OPEN)
            abort();
    }
    (void)remoca_resp_check(&h, h.op, h.count);
    for (int sealed = 0; sealed < 2; sealed++) {
        /* A valid GET/TAKE response holds whole units, at most one per key. */
        if (remoca_resp_check_sealed(&h, h.op, h.count, sealed) != REMOCA_OK ||
            h.flags != REMOCA_OK || (h.op != REMOCA_OP_GET && h.op != REMOCA_OP_TAKE))
            continue;
        uint32_t bm = remoca_bitmap_bytes(h.count), unit = remoca_unit_size(sealed);
        if (h.len < bm || (h.len - bm) % unit || (h.len - bm) / unit > h.count) abort();
    }

    struct remoca_hello hello;
    if (remoca_hello_decode(body, body_len, &hello) == 0) {
        uint8_t buf[4 + 2 * REMOCA_MAX_NAME];
        size_t n = remoca_hello_encode(buf, sizeof buf, &hello);
        if (n != body_len || memcmp(buf, body, n) != 0) abort();
    }
    struct remoca_pool_open po;
    if (remoca_pool_open_decode(body, body_len, &po) == 0) {
        uint8_t buf[22 + REMOCA_MAX_NAME];
        size_t n = remoca_pool_open_encode(buf, sizeof buf, &po);
        if (n != body_len || memcmp(buf, body, n) != 0) abort();
    }
    struct remoca_placement members;
    unsigned self;
    if (remoca_keep_decode(body, body_len, &members, &self) == 0) {
        uint8_t buf[REMOCA_KEEP_MAX_BODY];
        size_t n = remoca_keep_encode(buf, sizeof buf, &members, self);
        if (n != body_len || memcmp(buf, body, n) != 0 || self >= members.n) abort();
        if (remoca_placement_chunk(&members, h.key) >= members.n) abort();
    }
    (void)remoca_op_name(h.op);
    (void)remoca_status_name(h.flags);
    return 0;
}
