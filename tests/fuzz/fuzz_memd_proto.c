/* Fuzzes remoca-memd's frame processing: arbitrary bytes are fed into one
 * connection's input path (memd/proto.c) over an in-memory store, split into
 * chunks the way a socket might deliver them (the first input byte picks the
 * chunk size, and whether a valid HELLO + POOL_OPEN comes first so that the
 * fuzzer reaches the pool operations sooner), with partial frames kept exactly
 * as net.c keeps them.
 *
 * Checked on every input: no crash or sanitizer report; every response frame
 * is well formed (response magic, a known status, length within bounds); the
 * store's accounting stays exact (free pages + pool pages == arena pages);
 * a connection that the protocol closes gets no further processing; and a
 * session marked to receive the shm fds has an OK SHM_MAP response as the
 * first bytes of its output (the store is a --shm one, and every other
 * input comes over a "unix socket", where SHM_MAP may succeed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "remoca/shm.h"
#include "store.h"

static struct store store;
static struct proto_ctx ctx;
static struct auth secret = {.secret = "fuzz-secret", .len = 11};

static void check_output(const struct outbuf *o)
{
    size_t off = 0;
    while (off < o->len) {
        if (o->len - off < REMOCA_HDR_SIZE) abort();
        struct remoca_hdr h;
        remoca_hdr_decode(o->p + off, &h);
        if (h.magic != REMOCA_MAGIC_RESP || h.version != REMOCA_VERSION) abort();
        if (h.flags >= REMOCA_E__MAX) abort();
        if (h.flags != REMOCA_OK && h.len > REMOCA_MAX_ERRMSG) abort();
        if (o->len - off - REMOCA_HDR_SIZE < h.len) abort();
        off += REMOCA_HDR_SIZE + h.len;
    }
}

static void check_store(void)
{
    uint64_t used = 0;
    for (uint32_t k = 0; k < store.npools; k++) {
        const struct pool *p = store.pools[k];
        if (p->q[0].len + p->q[1].len != p->pages || p->pages > p->max_pages) abort();
        used += p->pages;
    }
    if (used + store.nfree != store.npages) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store.arena) {
        memd_log_level = LOG_ERROR;
        /* 64 pages: small enough that puts evict and pools compete. */
        if (store_init_shm(&store, 64 * REMOCA_PAGE_SIZE, POLICY_S3FIFO, 8) < 0) abort();
        ctx.store = &store;
    }
    if (size == 0) return 0;
    size_t chunk = 1 + (data[0] >> 1) * 37u;
    bool preamble = data[0] & 1;
    /* Without the preamble, every other input meets a server with --secret. */
    ctx.auth = !preamble && (data[0] & 2) ? &secret : NULL;
    data++;
    size--;
    uint8_t *input = malloc(size + 512);
    if (!input) abort();
    size_t ilen = 0;
    if (preamble) {
        struct remoca_hello hb = {.name = "fuzz", .name_len = 4};
        struct remoca_pool_open pb = {.max_bytes = 32 * REMOCA_PAGE_SIZE, .weight = 2,
                                      .name = "fuzz/pool", .name_len = 9};
        struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION,
                               .op = REMOCA_OP_HELLO, .id = 1};
        h.len = (uint32_t)remoca_hello_encode(input + REMOCA_HDR_SIZE, 200, &hb);
        remoca_hdr_encode(input, &h);
        ilen = REMOCA_HDR_SIZE + h.len;
        h.op = REMOCA_OP_POOL_OPEN;
        h.id = 2;
        h.len = (uint32_t)remoca_pool_open_encode(input + ilen + REMOCA_HDR_SIZE, 300, &pb);
        remoca_hdr_encode(input + ilen, &h);
        ilen += REMOCA_HDR_SIZE + h.len;
    }
    memcpy(input + ilen, data, size);
    size += ilen;
    data = input;

    struct session ss = {.unix_socket = chunk % 2 == 0};
    struct outbuf out = {0};
    uint8_t *pending = NULL; /* the connection's kept input */
    size_t plen = 0;
    bool closed = false;
    for (size_t off = 0; off < size && !closed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        uint8_t *buf = realloc(pending, plen + n);
        if (!buf) abort();
        memcpy(buf + plen, data + off, n);
        pending = buf;
        plen += n;
        size_t used = 0;
        for (;;) {
            size_t u;
            out.len = 0;
            enum proto_result r = proto_process(&ctx, &ss, pending + used, plen - used, &out, &u);
            used += u;
            check_output(&out);
            if (ss.attach_shm_fds) { /* what net.c sends the fds with */
                struct remoca_hdr h;
                if (out.len < REMOCA_HDR_SIZE) abort();
                remoca_hdr_decode(out.p, &h);
                if (h.op != REMOCA_OP_SHM_MAP || h.flags != REMOCA_OK ||
                    h.len != REMOCA_SHM_LAYOUT_SIZE || !ss.unix_socket)
                    abort();
                ss.attach_shm_fds = false; /* sent */
            }
            if (r == PROTO_CLOSE) {
                closed = true;
                break;
            }
            if (r == PROTO_MORE) break;
        }
        /* What is left must be an incomplete frame with a sane header. */
        if (!closed && plen - used) {
            size_t need = proto_frame_size(pending + used, plen - used);
            if (need == 0 || need <= plen - used || need > REMOCA_HDR_SIZE + REMOCA_MAX_REQ_PAYLOAD)
                abort();
        }
        memmove(pending, pending + used, plen - used);
        plen -= used;
    }
    session_end(&ctx, &ss);
    free(pending);
    free(input);
    outbuf_free(&out);
    check_store();
    return 0;
}
