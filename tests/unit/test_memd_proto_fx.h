/* SPDX-License-Identifier: BSD-3-Clause */
/* The proto_process harness of remoca-memd's frame tests (header-only,
 * included by tests/unit/test_memd_proto.c and test_memd_ring.c; not a test
 * program itself).
 *
 * A session over a small store, without sockets: req() queues request frames
 * into `in`, run() hands them to proto_process (keeping a partial frame for
 * the next run), resp() and expect_error() read the responses back from `out`
 * in order.  Each test program wraps fx_setup/fx_teardown in its own
 * setup/teardown for what it checks beyond this. */
#ifndef TEST_MEMD_PROTO_FX_H
#define TEST_MEMD_PROTO_FX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "proto.h"
#include "store.h"

#define PAGE REMOCA_PAGE_SIZE

struct fx {
    struct store store;
    struct proto_ctx ctx;
    struct session ss;
    struct outbuf out;
    uint8_t in[2 << 20];
    size_t in_len;
    size_t rd;       /* read offset into out */
    uint32_t handle; /* the pool fx_hello_and_open opened */
    uint64_t head; /* test_memd_ring: the fill ring's head as the test (the client) publishes it */
};

/* A session over an empty store of 64 pages (with a shared page store if shm). */
static int fx_setup(void **state, bool shm)
{
    memd_log_level = LOG_ERROR;
    struct fx *f = calloc(1, sizeof *f);
    if (shm)
        assert_int_equal(store_init_shm(&f->store, 64 * PAGE, POLICY_S3FIFO, 8), 0);
    else
        assert_int_equal(store_init(&f->store, 64 * PAGE, POLICY_S3FIFO, 8), 0);
    f->ctx.store = &f->store;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    session_end(&f->ctx, &f->ss);
    outbuf_free(&f->out);
    store_destroy(&f->store);
    free(f);
    return 0;
}

static void req(struct fx *f, uint8_t op, uint32_t id, uint32_t pool, uint64_t key, uint32_t count,
                const void *payload, uint32_t len)
{
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ,
                           .version = REMOCA_VERSION,
                           .op = op,
                           .id = id,
                           .pool = pool,
                           .key = key,
                           .count = count,
                           .len = len};
    remoca_hdr_encode(f->in + f->in_len, &h);
    if (len) memcpy(f->in + f->in_len + REMOCA_HDR_SIZE, payload, len);
    f->in_len += REMOCA_HDR_SIZE + len;
}

static enum proto_result run(struct fx *f)
{
    size_t used;
    enum proto_result r = proto_process(&f->ctx, &f->ss, f->in, f->in_len, &f->out, &used);
    memmove(f->in, f->in + used, f->in_len - used);
    f->in_len -= used;
    return r;
}

/* Next response; checks id and status; returns its payload (in out). */
static const uint8_t *resp(struct fx *f, uint32_t id, uint16_t status, struct remoca_hdr *h)
{
    assert_true(f->out.len - f->rd >= REMOCA_HDR_SIZE);
    remoca_hdr_decode(f->out.p + f->rd, h);
    assert_int_equal(h->magic, REMOCA_MAGIC_RESP);
    assert_int_equal(h->id, id);
    assert_int_equal(h->flags, status);
    const uint8_t *p = f->out.p + f->rd + REMOCA_HDR_SIZE;
    f->rd += REMOCA_HDR_SIZE + h->len;
    assert_true(f->rd <= f->out.len);
    return p;
}

/* The error message of the next response, which must be `status`. */
static void expect_error(struct fx *f, uint32_t id, uint16_t status, const char *msg)
{
    struct remoca_hdr h;
    const uint8_t *m = resp(f, id, status, &h);
    if (!memmem(m, h.len, msg, strlen(msg)))
        fail_msg("error %u: '%.*s' lacks '%s'", id, (int)h.len, (const char *)m, msg);
}

/* HELLO (id 1) and POOL_OPEN of "vm/d" (id 2) in one batch, both answered OK;
 * keeps the handle in f->handle and returns the POOL_OPEN response. */
static struct remoca_hdr fx_hello_and_open(struct fx *f)
{
    uint8_t b[600];
    struct remoca_hello hb = {.name = "t", .name_len = 1};
    req(f, REMOCA_OP_HELLO, 1, 0, 0, 0, b, (uint32_t)remoca_hello_encode(b, sizeof b, &hb));
    struct remoca_pool_open pb = {.name = "vm/d", .name_len = 4};
    req(f, REMOCA_OP_POOL_OPEN, 2, 0, 0, 0, b, (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb));
    assert_int_equal(run(f), PROTO_MORE);
    struct remoca_hdr h;
    resp(f, 1, REMOCA_OK, &h);
    resp(f, 2, REMOCA_OK, &h);
    f->handle = h.pool;
    return h;
}

#endif
