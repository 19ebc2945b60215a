/* SPDX-License-Identifier: BSD-3-Clause */
/* Codec for the REMOCA wire protocol (see lib/wire/include/remoca/wire.h and
 * docs/protocol.md).  Pure functions, no I/O, no allocation: the server, the
 * client and the fuzzer all validate frames with exactly this code. */
#include "remoca/wire.h"
#include "remoca/fill_ring.h"
#include "remoca/placement.h"
#include "remoca/shm.h"

#include <string.h>

void remoca_hdr_encode(uint8_t out[REMOCA_HDR_SIZE], const struct remoca_hdr *h)
{
    remoca_put_le32(out + 0, h->magic);
    out[4] = h->version;
    out[5] = h->op;
    remoca_put_le16(out + 6, h->flags);
    remoca_put_le32(out + 8, h->id);
    remoca_put_le32(out + 12, h->pool);
    remoca_put_le64(out + 16, h->key);
    remoca_put_le32(out + 24, h->count);
    remoca_put_le32(out + 28, h->len);
}

void remoca_hdr_decode(const uint8_t in[REMOCA_HDR_SIZE], struct remoca_hdr *h)
{
    h->magic = remoca_get_le32(in + 0);
    h->version = in[4];
    h->op = in[5];
    h->flags = remoca_get_le16(in + 6);
    h->id = remoca_get_le32(in + 8);
    h->pool = remoca_get_le32(in + 12);
    h->key = remoca_get_le64(in + 16);
    h->count = remoca_get_le32(in + 24);
    h->len = remoca_get_le32(in + 28);
}

/* Fixed part of a POOL_OPEN body: min, max, weight, name length. */
#define POOL_OPEN_FIXED (8u + 8u + 4u + 2u)

enum remoca_status remoca_req_check(const struct remoca_hdr *h)
{
    if (h->magic != REMOCA_MAGIC_REQ) return REMOCA_E_PROTO;
    if (h->version != REMOCA_VERSION) return REMOCA_E_VERSION;
    if (h->len > REMOCA_MAX_REQ_PAYLOAD) return REMOCA_E_SIZE;
    if (h->flags & ~REMOCA_F_KNOWN_FLAGS) return REMOCA_E_PROTO;
    bool sealed = h->flags & REMOCA_F_SEALED;
    if (sealed && h->op != REMOCA_OP_POOL_OPEN && h->op != REMOCA_OP_GET &&
        h->op != REMOCA_OP_TAKE && h->op != REMOCA_OP_PUT)
        return h->op == 0 || h->op >= REMOCA_OP__MAX ? REMOCA_E_OP : REMOCA_E_PROTO;

    switch (h->op) {
    case REMOCA_OP_HELLO:
        if (h->len < 4 || h->len > 4 + 2 * REMOCA_MAX_NAME) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_POOL_OPEN:
        if (h->len < POOL_OPEN_FIXED + 1 || h->len > POOL_OPEN_FIXED + REMOCA_MAX_NAME)
            return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE:
    case REMOCA_OP_DELETE:
        if (h->count > REMOCA_MAX_BATCH || !remoca_range_ok(h->key, h->count))
            return REMOCA_E_RANGE;
        if (h->len != 0) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_PUT:
        if (h->count > REMOCA_MAX_BATCH || !remoca_range_ok(h->key, h->count))
            return REMOCA_E_RANGE;
        if (h->len != h->count * remoca_unit_size(sealed)) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_DELETE_RANGE:
        if (!remoca_range_ok(h->key, h->count)) return REMOCA_E_RANGE;
        if (h->len != 0) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_POOL_RESET:
    case REMOCA_OP_STATS:
    case REMOCA_OP_PING:
    case REMOCA_OP_SHM_MAP:
        if (h->len != 0) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_FILL_RING:
        if (h->count != 0 && !remoca_ring_slots_ok(h->count)) return REMOCA_E_RANGE;
        if (h->len != 0) return REMOCA_E_SIZE;
        return REMOCA_OK;
    case REMOCA_OP_POOL_KEEP: /* the body itself: remoca_keep_decode */
        if (h->len < 4 + REMOCA_KEEP_ENTRY || h->len > REMOCA_KEEP_MAX_BODY) return REMOCA_E_SIZE;
        return REMOCA_OK;
    default: return REMOCA_E_OP;
    }
}

enum remoca_status remoca_resp_check(const struct remoca_hdr *h, uint8_t req_op, uint32_t req_count)
{
    return remoca_resp_check_sealed(h, req_op, req_count, false);
}

enum remoca_status remoca_resp_check_sealed(const struct remoca_hdr *h, uint8_t req_op,
                                            uint32_t req_count, bool sealed)
{
    if (h->magic != REMOCA_MAGIC_RESP) return REMOCA_E_PROTO;
    if (h->version != REMOCA_VERSION) return REMOCA_E_VERSION;
    if (h->op != req_op) return REMOCA_E_PROTO;
    if (h->flags >= REMOCA_E__MAX) return REMOCA_E_PROTO;
    if (h->flags != REMOCA_OK) return h->len <= REMOCA_MAX_ERRMSG ? REMOCA_OK : REMOCA_E_SIZE;

    switch (h->op) {
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE: {
        uint32_t bm = remoca_bitmap_bytes(req_count), unit = remoca_unit_size(sealed);
        if (h->count != req_count || req_count == 0 || req_count > REMOCA_MAX_BATCH)
            return REMOCA_E_PROTO;
        if (h->len < bm || (h->len - bm) % unit != 0 || (h->len - bm) / unit > req_count)
            return REMOCA_E_SIZE;
        return REMOCA_OK;
    }
    case REMOCA_OP_STATS: return h->len <= REMOCA_MAX_STATS ? REMOCA_OK : REMOCA_E_SIZE;
    case REMOCA_OP_SHM_MAP: return h->len == REMOCA_SHM_LAYOUT_SIZE ? REMOCA_OK : REMOCA_E_SIZE;
    case REMOCA_OP_FILL_RING: return h->len == REMOCA_RING_REPLY_SIZE ? REMOCA_OK : REMOCA_E_SIZE;
    default: return h->len == 0 ? REMOCA_OK : REMOCA_E_SIZE;
    }
}

static size_t put_str16(uint8_t *out, const void *s, size_t len)
{
    remoca_put_le16(out, (uint16_t)len);
    if (len) memcpy(out + 2, s, len);
    return 2 + len;
}

size_t remoca_hello_encode(uint8_t *out, size_t cap, const struct remoca_hello *b)
{
    if (b->name_len < 1 || b->name_len > REMOCA_MAX_NAME || b->cred_len > REMOCA_MAX_NAME) return 0;
    size_t need = 4 + b->name_len + b->cred_len;
    if (cap < need) return 0;
    size_t n = put_str16(out, b->name, b->name_len);
    n += put_str16(out + n, b->cred, b->cred_len);
    return n;
}

int remoca_hello_decode(const uint8_t *in, size_t len, struct remoca_hello *b)
{
    if (len < 4) return -1;
    size_t name_len = remoca_get_le16(in);
    if (name_len < 1 || name_len > REMOCA_MAX_NAME || 2 + name_len + 2 > len) return -1;
    size_t cred_len = remoca_get_le16(in + 2 + name_len);
    if (cred_len > REMOCA_MAX_NAME || 4 + name_len + cred_len != len) return -1;
    if (memchr(in + 2, 0, name_len)) return -1;
    b->name = (const char *)(in + 2);
    b->name_len = name_len;
    b->cred = in + 4 + name_len;
    b->cred_len = cred_len;
    return 0;
}

size_t remoca_pool_open_encode(uint8_t *out, size_t cap, const struct remoca_pool_open *b)
{
    if (b->name_len < 1 || b->name_len > REMOCA_MAX_NAME) return 0;
    if (cap < POOL_OPEN_FIXED + b->name_len) return 0;
    remoca_put_le64(out, b->min_bytes);
    remoca_put_le64(out + 8, b->max_bytes);
    remoca_put_le32(out + 16, b->weight);
    return 20 + put_str16(out + 20, b->name, b->name_len);
}

int remoca_pool_open_decode(const uint8_t *in, size_t len, struct remoca_pool_open *b)
{
    if (len < POOL_OPEN_FIXED + 1) return -1;
    size_t name_len = remoca_get_le16(in + 20);
    if (name_len < 1 || name_len > REMOCA_MAX_NAME || POOL_OPEN_FIXED + name_len != len) return -1;
    if (memchr(in + POOL_OPEN_FIXED, 0, name_len)) return -1;
    b->min_bytes = remoca_get_le64(in);
    b->max_bytes = remoca_get_le64(in + 8);
    b->weight = remoca_get_le32(in + 16);
    b->name = (const char *)(in + POOL_OPEN_FIXED);
    b->name_len = name_len;
    b->sealed = false; /* the header's REMOCA_F_SEALED says */
    return 0;
}

const char *remoca_op_name(unsigned op)
{
    static const char *const names[REMOCA_OP__MAX] = {
        [REMOCA_OP_HELLO] = "hello",
        [REMOCA_OP_POOL_OPEN] = "pool-open",
        [REMOCA_OP_GET] = "get",
        [REMOCA_OP_TAKE] = "take",
        [REMOCA_OP_PUT] = "put",
        [REMOCA_OP_DELETE] = "delete",
        [REMOCA_OP_DELETE_RANGE] = "delete-range",
        [REMOCA_OP_POOL_RESET] = "pool-reset",
        [REMOCA_OP_STATS] = "stats",
        [REMOCA_OP_PING] = "ping",
        [REMOCA_OP_SHM_MAP] = "shm-map",
        [REMOCA_OP_FILL_RING] = "fill-ring",
        [REMOCA_OP_POOL_KEEP] = "pool-keep",
    };
    return op < REMOCA_OP__MAX && names[op] ? names[op] : "unknown";
}

const char *remoca_status_name(unsigned status)
{
    static const char *const names[REMOCA_E__MAX] = {
        [REMOCA_OK] = "ok",
        [REMOCA_E_PROTO] = "malformed frame",
        [REMOCA_E_VERSION] = "unsupported protocol version",
        [REMOCA_E_OP] = "unknown opcode",
        [REMOCA_E_POOL] = "invalid pool handle",
        [REMOCA_E_RANGE] = "key range out of bounds",
        [REMOCA_E_SIZE] = "wrong payload length",
        [REMOCA_E_AUTH] = "not authorised",
        [REMOCA_E_LIMIT] = "limit reached",
        [REMOCA_E_FULL] = "server full",
        [REMOCA_E_STATE] = "request not valid in this state",
        [REMOCA_E_INTERNAL] = "internal error",
    };
    return status < REMOCA_E__MAX ? names[status] : "unknown status";
}
