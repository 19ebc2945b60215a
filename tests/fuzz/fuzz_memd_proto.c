/* SPDX-License-Identifier: BSD-3-Clause */
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
 * session marked to receive fds has an OK SHM_MAP (the store's 2 fds) or
 * FILL_RING (the ring's memfd, sealed) response as the first bytes of its
 * output (the store is a --shm one, and every other input comes over a "unix
 * socket", where SHM_MAP and FILL_RING may succeed).  With the preamble,
 * every other input opens a sealed pool instead (page || 32-byte sidecar
 * units; REMOCA_F_SEALED), so that sealed frames reach the store too.
 *
 * Once a FILL_RING succeeded, the fuzzer is also the ring's client: before
 * each chunk, and in up to 16 rounds after the last one, it writes head and
 * entries (plausible entries, raw entries, or a raw head) from bytes of its
 * own: with the preamble that attaches a ring (first byte & 3 == 3), the
 * input's second half, otherwise the stream's bytes read from its end; so
 * that the server's drain (memd/fill_ring.c) is fuzzed too.  Checked: the tail the server
 * publishes is its own, and a connection that is not closed has a head at
 * most nslots ahead of it (a drain never passes head or runs away).
 *
 * With the preamble and bit 2 of the first byte, the connection is tenant
 * "fuzt"'s (--tenants, memd/tenants.h: prefix "fuzt/", a cap of 16 pages, a
 * floor of 8), already authenticated: POOL_OPEN of other names is refused,
 * STATS filtered, puts kept within the cap.  Checked: the tenant's pages are
 * its pools' and never above its cap, and no pool of another tenant is open
 * on the connection. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "fill_ring.h"
#include "log.h"
#include "proto.h"
#include "remoca/fill_ring.h"
#include "remoca/shm.h"
#include "store.h"
#include "tenants.h"

static struct store store;
static struct proto_ctx ctx;
static struct auth secret = {.secret = "fuzz-secret", .len = 11};
static struct tenants tenants;

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
    for (unsigned i = 0; i < tenants.n; i++) {
        const struct tenant_acct *t = &tenants.t[i].acct;
        uint64_t mine = 0;
        for (uint32_t k = 0; k < store.npools; k++)
            if (store.pools[k]->tenant == t) mine += store.pools[k]->pages;
        if (mine != t->pages || t->pages > t->max_pages || t->min_reserved > t->min_pages) abort();
    }
}

/* The fuzzer's side of the ring: bytes read backwards from the input's end. */
struct ring_client {
    const uint8_t *p;
    size_t left;
    uint64_t head; /* published */
};

static uint8_t rbyte(struct ring_client *c) { return c->left ? c->p[--c->left] : 0; }

static void ring_publish(const struct fill_ring *r, uint64_t head)
{
    __atomic_store_n((uint64_t *)(r->base + REMOCA_RING_OFF_HEAD), head, __ATOMIC_RELEASE);
}

/* Writes what the next bytes say into the ring, as a client (or an attacker) might. */
static void ring_write(struct ring_client *c, const struct session *ss)
{
    const struct fill_ring *r = ss->ring;
    uint8_t op = rbyte(c);
    switch (op & 3) {
    case 0: /* nothing: the common case */ return;
    case 1: { /* plausible entries: small keys, handles 0..3, after_id near the stream */
        unsigned n = 1 + rbyte(c) % 8;
        for (unsigned k = 0; k < n; k++) {
            uint32_t idx = (uint32_t)c->head & (r->nslots - 1);
            struct remoca_ring_entry e = {.key = rbyte(c) % 16,
                                          .handle = rbyte(c) % 4,
                                          .after_id = ss->last_id + rbyte(c) % 5 - 1};
            remoca_ring_entry_write(r->base, idx, &e);
            memset(r->base + remoca_ring_off_pages(r->nslots) + (size_t)idx * REMOCA_PAGE_SIZE,
                   rbyte(c), REMOCA_PAGE_SIZE);
            c->head++;
        }
        break;
    }
    case 2: { /* one raw entry */
        uint32_t idx = (uint32_t)c->head & (r->nslots - 1);
        for (unsigned k = 0; k < REMOCA_RING_ENTRY_SIZE; k++)
            r->base[REMOCA_RING_OFF_ENTRIES + idx * REMOCA_RING_ENTRY_SIZE + k] = rbyte(c);
        c->head++;
        break;
    }
    default: /* a raw head: near the tail (either side), or any value at all */
        if (op & 4) {
            c->head = r->tail + (uint64_t)(int64_t)(int8_t)rbyte(c);
        } else {
            c->head = 0;
            for (int k = 0; k < 8; k++) c->head = c->head << 8 | rbyte(c);
        }
        break;
    }
    ring_publish(r, c->head);
}

/* The session is about to send its fds: the response they go with must be first. */
static void check_attach(struct session *ss, const struct outbuf *out)
{
    struct remoca_hdr h;
    if (out->len < REMOCA_HDR_SIZE || !ss->unix_socket) abort();
    remoca_hdr_decode(out->p, &h);
    if (h.flags != REMOCA_OK) abort();
    if (h.op == REMOCA_OP_SHM_MAP) {
        if (h.len != REMOCA_SHM_LAYOUT_SIZE || ss->nattach != 2 || ss->attach_close) abort();
    } else if (h.op == REMOCA_OP_FILL_RING) {
        struct remoca_ring_reply rr;
        char why[128];
        if (ss->nattach != 1 || !ss->attach_close || !ss->ring ||
            out->len < REMOCA_HDR_SIZE + h.len ||
            remoca_ring_reply_decode(out->p + REMOCA_HDR_SIZE, h.len, &rr, why, sizeof why) < 0 ||
            rr.nslots != ss->ring->nslots || rr.size != ss->ring->size)
            abort();
        int seals = fcntl(ss->attach_fds[0], F_GET_SEALS);
        if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
            abort();
    } else {
        abort();
    }
    session_attached_sent(ss); /* what net.c does after sendmsg */
}

/* Processes the connection's kept input pending[0..*plen) as net.c does, with
 * the checks; keeps what is left.  Returns whether the connection closed. */
static bool feed(struct session *ss, struct outbuf *out, struct ring_client *rc,
                 const struct fill_ring **ring, uint8_t *pending, size_t *plen)
{
    size_t used = 0;
    for (;;) {
        size_t u;
        out->len = 0;
        enum proto_result r = proto_process(&ctx, ss, pending + used, *plen - used, out, &u);
        used += u;
        check_output(out);
        if (ss->nattach) check_attach(ss, out); /* what net.c sends the fds with */
        if (ss->ring != *ring) {                /* attached just now: an empty ring, a new client */
            if (*ring || ss->ring->tail != 0) abort();
            *ring = ss->ring;
            rc->head = 0;
        }
        if (*ring) {
            uint64_t tail = __atomic_load_n((uint64_t *)((*ring)->base + REMOCA_RING_OFF_TAIL),
                                            __ATOMIC_ACQUIRE);
            if (tail != (*ring)->tail) abort();
            if (r != PROTO_CLOSE && rc->head - tail > (*ring)->nslots) abort();
        }
        if (r == PROTO_CLOSE) return true;
        if (r == PROTO_MORE) break;
    }
    /* What is left must be an incomplete frame with a sane header. */
    if (*plen - used) {
        size_t need = proto_frame_size(pending + used, *plen - used);
        if (need == 0 || need <= *plen - used || need > REMOCA_HDR_SIZE + REMOCA_MAX_REQ_PAYLOAD)
            abort();
    }
    memmove(pending, pending + used, *plen - used);
    *plen -= used;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store.arena) {
        memd_log_level = LOG_ERROR;
        /* 64 pages: small enough that puts evict and pools compete. */
        if (store_init_shm(&store, 64 * REMOCA_PAGE_SIZE, POLICY_S3FIFO, 8) < 0) abort();
        ctx.store = &store;
        static const char tf[] = "tenant fuzt secret=s pools=fuzt/ memory=64K min=32K conns=4\n";
        char err[256];
        if (tenants_parse(&tenants, tf, sizeof tf - 1, "fuzz", err, sizeof err) < 0) abort();
        store.tenants = tenants.accts;
        store.ntenants = tenants.n;
    }
    if (size == 0) return 0;
    size_t chunk = 1 + (data[0] >> 1) * 37u;
    bool preamble = data[0] & 1;
    struct tenant *tenant = preamble && (data[0] & 4) ? &tenants.t[0] : NULL;
    ctx.tenants = tenant ? &tenants : NULL;
    /* Without the preamble, every other input meets a server with --secret. */
    ctx.auth = !preamble && (data[0] & 2) ? &secret : NULL;
    data++;
    size--;
    uint8_t *input = malloc(size + 512);
    if (!input) abort();
    size_t ilen = 0;
    if (preamble) {
        struct remoca_hello hb = {.name = "fuzz", .name_len = 4};
        struct remoca_pool_open pb = {.max_bytes = 32 * REMOCA_PAGE_SIZE,
                                      .weight = 2,
                                      .name = tenant ? "fuzt/pool" : "fuzz/pool",
                                      .name_len = 9};
        struct remoca_hdr h = {
            .magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION, .op = REMOCA_OP_HELLO, .id = 1};
        h.len = (uint32_t)remoca_hello_encode(input + REMOCA_HDR_SIZE, 200, &hb);
        remoca_hdr_encode(input, &h);
        ilen = REMOCA_HDR_SIZE + h.len;
        h.op = REMOCA_OP_POOL_OPEN;
        h.id = 2;
        if (data[-1] & 4) { /* a sealed pool (its own name: a pool's kind never changes) */
            h.flags = REMOCA_F_SEALED;
            pb.name = "fuzz/sealed";
            pb.name_len = 11;
        }
        h.len = (uint32_t)remoca_pool_open_encode(input + ilen + REMOCA_HDR_SIZE, 300, &pb);
        remoca_hdr_encode(input + ilen, &h);
        ilen += REMOCA_HDR_SIZE + h.len;
        if (data[-1] & 2) { /* and a fill ring (this chunk size means a unix socket) */
            h.op = REMOCA_OP_FILL_RING;
            h.flags = 0;
            h.id = 3;
            h.count = REMOCA_RING_MIN_SLOTS;
            h.len = 0;
            remoca_hdr_encode(input + ilen, &h);
            ilen += REMOCA_HDR_SIZE;
        }
    }
    /* The ring's bytes: with the ring preamble, the input's second half (so
     * that the stream can be valid frames and the ring anything); otherwise
     * read from the end of the stream itself. */
    struct ring_client rc = {.p = data, .left = size};
    if (preamble && (data[-1] & 2)) {
        size_t script = size / 2;
        size -= script;
        rc.p = data + size;
        rc.left = script;
    }
    memcpy(input + ilen, data, size);
    size += ilen;
    data = input;
    const struct fill_ring *ring = NULL; /* the session's, once attached */

    struct session ss = {.unix_socket = chunk % 2 == 0};
    if (tenant) { /* authenticated already: the preamble's HELLO gets E_STATE */
        if (!tenant_conn_get(tenant)) abort();
        ss.tenant = tenant;
        ss.hello = true;
    }
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
        if (ss.ring) ring_write(&rc, &ss);
        closed = feed(&ss, &out, &rc, &ring, pending, &plen);
    }
    /* The client has nothing more to send but keeps writing the ring: the
     * server drains it at the end of each processing (proto_process with
     * only a partial frame, or none). */
    for (int k = 0; k < 16 && !closed && ring && rc.left; k++) {
        ring_write(&rc, &ss);
        closed = feed(&ss, &out, &rc, &ring, pending, &plen);
    }
    for (uint32_t k = 0; tenant && k < ss.nhandles; k++)
        if (store_pool(&store, ss.handles[k])->tenant != &tenant->acct) abort();
    session_end(&ctx, &ss);
    if (tenants.t[0].acct.conns != 0) abort();
    free(pending);
    free(input);
    outbuf_free(&out);
    check_store();
    return 0;
}
