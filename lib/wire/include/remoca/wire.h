/* SPDX-License-Identifier: BSD-3-Clause */
/* REMOCA wire protocol: frame layout, opcodes, status codes and the codec.
 *
 * Shared by remoca-memd (server), libremoca (client) and the benchmark's load
 * generator.  The protocol itself is documented in docs/protocol.md; this
 * header is its single source of truth in code.
 *
 * Every frame, request or response, starts with the same 32-byte header,
 * little-endian on the wire:
 *
 *   0      4    5    6         8        12       16                24       28       32
 *   +------+----+----+---------+--------+--------+-----------------+--------+--------+
 *   |magic |ver | op | flags / | req id | pool   | key (first      | count  | payload|
 *   |      |    |    | status  |        | handle |  block number)  |        | length |
 *   +------+----+----+---------+--------+--------+-----------------+--------+--------+
 *   followed by `payload length` bytes.
 *
 * The header alone says how big the frame is and whether it can be valid, so
 * a receiver validates it (remoca_req_check) before reading or allocating
 * anything for the payload.  In a request the 16-bit field carries flags; in a
 * response it carries the status (enum remoca_status).
 *
 * A server executes the requests of one connection in the order it received
 * them.  Clients rely on this: a delete sent after a put of the same key is
 * never overtaken by it.  Responses are matched to requests by id.
 */
#ifndef REMOCA_WIRE_H
#define REMOCA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REMOCA_PAGE_SIZE 4096u
#define REMOCA_PAGE_SHIFT 12
/* Sealed pools (POOL_OPEN with REMOCA_F_SEALED): every page travels and is
 * stored with a sidecar of this many bytes (the client's nonce, tag and
 * version; opaque to the server and to the client's transport). */
#define REMOCA_SIDE_SIZE 32u
#define REMOCA_SEALED_UNIT (REMOCA_PAGE_SIZE + REMOCA_SIDE_SIZE) /* page || sidecar */
#define REMOCA_HDR_SIZE 32u
#define REMOCA_VERSION 1u
#define REMOCA_MAGIC_REQ 0x51434d52u  /* "RMCQ" in memory order */
#define REMOCA_MAGIC_RESP 0x50434d52u /* "RMCP" in memory order */

/* Pages per GET/TAKE/PUT/DELETE frame: a 1 MiB disk read is one round trip. */
#define REMOCA_MAX_BATCH 256u
/* Largest DELETE_RANGE in one frame (2^32-1 pages, 16 TiB). */
#define REMOCA_MAX_NAME 255u        /* pool and client names, credentials */
#define REMOCA_MAX_ERRMSG 256u      /* message carried by an error response */
#define REMOCA_MAX_STATS (1u << 20) /* largest stats response payload */
/* Largest request payload any opcode may carry (a full PUT batch of a
 * sealed pool: 256 x 4128 bytes, 1 MiB + 8 KiB). */
#define REMOCA_MAX_REQ_PAYLOAD (REMOCA_MAX_BATCH * REMOCA_SEALED_UNIT)

enum remoca_op {
    REMOCA_OP_HELLO = 1,        /* payload: hello body; must be the first request */
    REMOCA_OP_POOL_OPEN = 2,    /* payload: pool-open body; response .pool = handle */
    REMOCA_OP_GET = 3,          /* keys [key, key+count); resp: hit bitmap + hit pages */
    REMOCA_OP_TAKE = 4,         /* as GET, and the hits are removed (exclusive caching) */
    REMOCA_OP_PUT = 5,          /* payload: count pages for keys [key, key+count) */
    REMOCA_OP_DELETE = 6,       /* keys [key, key+count), count <= REMOCA_MAX_BATCH */
    REMOCA_OP_DELETE_RANGE = 7, /* keys [key, key+count), any count >= 1 */
    REMOCA_OP_POOL_RESET = 8,   /* drop every page of the pool */
    REMOCA_OP_STATS = 9,        /* resp payload: stats text (or JSON with REMOCA_F_JSON) */
    REMOCA_OP_PING = 10,        /* no payload; liveness and latency probe */
    REMOCA_OP_SHM_MAP = 11,     /* unix socket, memd --shm: resp payload = shm layout
                                 * (remoca/shm.h), data + touch memfds as SCM_RIGHTS */
    REMOCA_OP_FILL_RING = 12,   /* unix socket: count = slots (0: default); resp payload =
                                 * ring reply (remoca/fill_ring.h), its memfd as SCM_RIGHTS */
    REMOCA_OP_POOL_KEEP = 13,   /* payload: the members (remoca/placement.h); drop every page
                                 * of the pool whose chunk the receiver does not own */
    REMOCA_OP__MAX
};

/* Request flags. */
#define REMOCA_F_JSON 0x0001u /* STATS: answer in JSON */
/* POOL_OPEN: the pool is sealed (created so, or refused if it exists
 * unsealed; without the flag, refused if it exists sealed).  GET, TAKE, PUT:
 * the frame is for a sealed pool, every page unit on the wire is a page
 * followed by its sidecar (REMOCA_SEALED_UNIT bytes); refused on a pool of
 * the other kind.  Not valid on any other op. */
#define REMOCA_F_SEALED 0x0002u
#define REMOCA_F_KNOWN_FLAGS 0x0003u

enum remoca_status {
    REMOCA_OK = 0,
    REMOCA_E_PROTO = 1,   /* malformed frame: bad magic, sizes, fields; connection closed */
    REMOCA_E_VERSION = 2, /* unsupported protocol version */
    REMOCA_E_OP = 3,      /* unknown opcode */
    REMOCA_E_POOL = 4,    /* pool handle not opened on this connection */
    REMOCA_E_RANGE = 5,   /* key range wraps around or count out of bounds */
    REMOCA_E_SIZE = 6,    /* payload length wrong for this opcode */
    REMOCA_E_AUTH = 7,    /* bad credential, or pool not allowed for it */
    REMOCA_E_LIMIT = 8,   /* too many pools / connections */
    REMOCA_E_FULL = 9,    /* no page could be freed for a put (all pools at minimum) */
    REMOCA_E_STATE = 10,  /* request not valid now (e.g. GET before HELLO) */
    REMOCA_E_INTERNAL = 11,
    REMOCA_E__MAX
};

struct remoca_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t op;
    uint16_t flags; /* request: REMOCA_F_*; response: enum remoca_status */
    uint32_t id;
    uint32_t pool;
    uint64_t key;
    uint32_t count;
    uint32_t len; /* payload bytes that follow the header */
};

/* HELLO body:     u16 name_len, name bytes, u16 cred_len, credential bytes.
 * POOL_OPEN body: u64 min_bytes, u64 max_bytes (0 = server budget), u32 weight (0 = 1),
 *                 u16 name_len, name bytes.
 * Names are 1..REMOCA_MAX_NAME bytes, no NUL; credentials 0..REMOCA_MAX_NAME bytes. */
struct remoca_hello {
    const char *name;
    size_t name_len;
    const uint8_t *cred;
    size_t cred_len;
};

struct remoca_pool_open {
    uint64_t min_bytes;
    uint64_t max_bytes;
    uint32_t weight;
    const char *name;
    size_t name_len;
    bool sealed; /* not in the body: the header's REMOCA_F_SEALED (ignored by the body codec) */
};

/* Header codec. Encoding writes exactly REMOCA_HDR_SIZE bytes. */
void remoca_hdr_encode(uint8_t out[REMOCA_HDR_SIZE], const struct remoca_hdr *h);
void remoca_hdr_decode(const uint8_t in[REMOCA_HDR_SIZE], struct remoca_hdr *h);

/* Validates a request header before its payload is read.  Returns REMOCA_OK or
 * the status to answer with.  REMOCA_E_PROTO and REMOCA_E_SIZE on a length
 * that cannot be trusted mean the stream cannot be resynchronised: close it. */
enum remoca_status remoca_req_check(const struct remoca_hdr *h);

/* Validates a response header against the request it answers (op, count). */
enum remoca_status remoca_resp_check(const struct remoca_hdr *h, uint8_t req_op,
                                     uint32_t req_count);
/* The same for a request of a sealed pool (REMOCA_F_SEALED): a GET/TAKE
 * response is the bitmap, then REMOCA_SEALED_UNIT bytes per hit.  With
 * sealed false, remoca_resp_check. */
enum remoca_status remoca_resp_check_sealed(const struct remoca_hdr *h, uint8_t req_op,
                                            uint32_t req_count, bool sealed);

/* Bytes of one page unit on the wire: a page, or a page and its sidecar. */
static inline uint32_t remoca_unit_size(bool sealed)
{
    return sealed ? REMOCA_SEALED_UNIT : REMOCA_PAGE_SIZE;
}

/* Whether keys [key, key+count) are a valid range: count >= 1, no wrap-around. */
static inline bool remoca_range_ok(uint64_t key, uint64_t count)
{
    return count >= 1 && key <= UINT64_MAX - (count - 1);
}

/* Bytes of the hit bitmap at the start of a GET/TAKE response payload:
 * one bit per key (bit i of byte i/8 is key+i), rounded up to 8 bytes. */
static inline uint32_t remoca_bitmap_bytes(uint32_t count) { return ((count + 63u) / 64u) * 8u; }

/* Body codecs.  Encoders return bytes written, or 0 if `cap` is too small or
 * a field is out of bounds.  Decoders return 0 on success, -1 if malformed;
 * decoded strings point into `in`. */
size_t remoca_hello_encode(uint8_t *out, size_t cap, const struct remoca_hello *b);
int remoca_hello_decode(const uint8_t *in, size_t len, struct remoca_hello *b);
size_t remoca_pool_open_encode(uint8_t *out, size_t cap, const struct remoca_pool_open *b);
int remoca_pool_open_decode(const uint8_t *in, size_t len, struct remoca_pool_open *b);

const char *remoca_op_name(unsigned op);
const char *remoca_status_name(unsigned status);

/* Little-endian helpers, for bodies and tests. */
static inline void remoca_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void remoca_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void remoca_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t remoca_get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t remoca_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t remoca_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#endif
