/* SPDX-License-Identifier: BSD-3-Clause */
/* Frame processing (see proto.h).  One function per opcode; replies are
 * written straight into the connection's output buffer (no per-request
 * allocation: the buffer belongs to the worker and only grows). */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "remoca/placement.h"

uint8_t *outbuf_reserve(struct outbuf *o, size_t more)
{
    if (o->cap - o->len < more) {
        size_t cap = o->cap ? o->cap : 64 * 1024;
        while (cap - o->len < more) cap *= 2;
        uint8_t *p = realloc(o->p, cap);
        if (!p) return NULL;
        o->p = p;
        o->cap = cap;
    }
    return o->p + o->len;
}

void outbuf_free(struct outbuf *o)
{
    free(o->p);
    o->p = NULL;
    o->len = o->cap = 0;
}

size_t proto_frame_size(const uint8_t *in, size_t len)
{
    if (len < REMOCA_HDR_SIZE) return REMOCA_HDR_SIZE;
    uint32_t plen = remoca_get_le32(in + 28);
    if (remoca_get_le32(in) != REMOCA_MAGIC_REQ || plen > REMOCA_MAX_REQ_PAYLOAD) return 0;
    return REMOCA_HDR_SIZE + (size_t)plen;
}

/* Appends a response header; payload (len bytes) is written by the caller. */
static bool put_resp(struct outbuf *out, const struct remoca_hdr *req, uint16_t status,
                     uint32_t pool, uint32_t len)
{
    uint8_t *p = outbuf_reserve(out, REMOCA_HDR_SIZE + (size_t)len);
    if (!p) return false;
    struct remoca_hdr h = {
        .magic = REMOCA_MAGIC_RESP,
        .version = REMOCA_VERSION,
        .op = req->op,
        .flags = status,
        .id = req->id,
        .pool = pool,
        .key = req->key,
        .count = req->count,
        .len = len,
    };
    remoca_hdr_encode(p, &h);
    out->len += REMOCA_HDR_SIZE;
    return true;
}

void proto_count_error(const struct proto_ctx *ctx, struct session *ss)
{
    ss->errors++;
    if (ctx->errors) __atomic_fetch_add(ctx->errors, 1, __ATOMIC_RELAXED);
}

static void reply_err(const struct proto_ctx *ctx, struct session *ss, struct outbuf *out,
                      const struct remoca_hdr *req, enum remoca_status st, uint32_t pool_id,
                      const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void reply_err(const struct proto_ctx *ctx, struct session *ss, struct outbuf *out,
                      const struct remoca_hdr *req, enum remoca_status st, uint32_t pool_id,
                      const char *fmt, ...)
{
    bool fatal = req->magic != REMOCA_MAGIC_REQ || req->len > REMOCA_MAX_REQ_PAYLOAD;
    char msg[REMOCA_MAX_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    if (put_resp(out, req, (uint16_t)st, req->pool, (uint32_t)n)) {
        memcpy(out->p + out->len, msg, (size_t)n);
        out->len += (size_t)n;
    }
    proto_count_error(ctx, ss);
    if (pool_id) store_count_error(ctx->store, pool_id);
    if (ss->errors == PROTO_LOG_ERRORS + 1)
        log_info("%s (%s): more than %u errors: no further error lines for this connection",
                 ss->peer ? ss->peer : "-", ss->client, PROTO_LOG_ERRORS);
    if (st == REMOCA_E_FULL || fatal || ss->errors > PROTO_LOG_ERRORS)
        log_debug("%s (%s): %s id=%u: %s: %s", ss->peer ? ss->peer : "-", ss->client,
                  remoca_op_name(req->op), req->id, remoca_status_name(st), msg);
    else
        log_info("%s (%s): %s id=%u: %s: %s", ss->peer ? ss->peer : "-", ss->client,
                 remoca_op_name(req->op), req->id, remoca_status_name(st), msg);
}

static void op_hello(const struct proto_ctx *ctx, struct session *ss, const struct remoca_hdr *h,
                     const uint8_t *payload, struct outbuf *out)
{
    struct remoca_hello b;
    if (ss->hello) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0, "HELLO already received");
        return;
    }
    if (remoca_hello_decode(payload, h->len, &b) < 0) {
        reply_err(ctx, ss, out, h, REMOCA_E_PROTO, 0, "malformed HELLO body");
        return;
    }
    /* Record the name first: log lines name the client even if it fails. */
    size_t n = b.name_len < sizeof ss->client - 1 ? b.name_len : sizeof ss->client - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b.name[i];
        ss->client[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
    }
    ss->client[n] = 0;
    /* --tenants: the tenant named before the first '/' of the name, with its
     * own secret; an unknown tenant is challenged all the same (no hint). */
    struct tenant *tn = ctx->tenants ? tenants_find(ctx->tenants, b.name, b.name_len) : NULL;
    const struct auth *key = ctx->tenants ? (tn ? &tn->auth : NULL) : ctx->auth;
    if (ctx->tenants || (ctx->auth && ctx->auth->len)) { /* challenge-response (auth.h) */
        bool ok = ss->challenged && key &&
                  auth_verify(key, ss->nonce, b.name, b.name_len, b.cred, b.cred_len);
        if (!ok && ss->challenged && tn) tenant_refused(tn);
        if (!ok) {
            if (ss->challenged && ++ss->auth_failures >= 3) {
                reply_err(ctx, ss, out, h, REMOCA_E_AUTH, 0, "authentication failed 3 times");
                log_warn("%s (%s): authentication failed 3 times: connection closed",
                         ss->peer ? ss->peer : "-", ss->client);
                ss->close_now = true;
                return;
            }
            if (ss->challenged)
                log_info("%s (%s): authentication failed", ss->peer ? ss->peer : "-", ss->client);
            auth_new_nonce(ss->nonce);
            ss->challenged = true;
            /* Step one of authentication, not an error: no count, no log. */
            char msg[sizeof "challenge " + 2 * AUTH_NONCE];
            int mlen = snprintf(msg, sizeof msg, "challenge ");
            for (unsigned i = 0; i < AUTH_NONCE; i++)
                mlen += snprintf(msg + mlen, sizeof msg - (size_t)mlen, "%02x", ss->nonce[i]);
            if (put_resp(out, h, REMOCA_E_AUTH, h->pool, (uint32_t)mlen)) {
                memcpy(out->p + out->len, msg, (size_t)mlen);
                out->len += (size_t)mlen;
            }
            return;
        }
    }
    if (tn && !tenant_conn_get(tn)) {
        tenant_refused(tn);
        reply_err(ctx, ss, out, h, REMOCA_E_LIMIT, 0,
                  "tenant %s has its %u connections (conns=): connection closed", tn->acct.name,
                  tn->acct.max_conns);
        ss->close_now = true;
        return;
    }
    ss->tenant = tn;
    ss->hello = true;
    put_resp(out, h, REMOCA_OK, 0, 0);
}

static void op_pool_open(const struct proto_ctx *ctx, struct session *ss,
                         const struct remoca_hdr *h, const uint8_t *payload, struct outbuf *out)
{
    struct remoca_pool_open b;
    if (remoca_pool_open_decode(payload, h->len, &b) < 0) {
        reply_err(ctx, ss, out, h, REMOCA_E_PROTO, 0, "malformed POOL_OPEN body");
        return;
    }
    if (ss->tenant && !tenant_pool_allowed(ss->tenant, b.name, b.name_len)) {
        char name[129]; /* printable for the reply and the log line */
        size_t n = b.name_len < sizeof name - 1 ? b.name_len : sizeof name - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = b.name[i] > 0x20 && b.name[i] < 0x7f ? b.name[i] : '?';
        name[n] = 0;
        tenant_refused(ss->tenant);
        reply_err(ctx, ss, out, h, REMOCA_E_AUTH, 0, "pool %s not allowed for tenant %s", name,
                  ss->tenant->acct.name);
        return;
    }
    b.sealed = h->flags & REMOCA_F_SEALED;
    uint32_t id;
    const char *why;
    enum remoca_status st =
        store_pool_open_tenant(ctx->store, &b, ss->tenant ? &ss->tenant->acct : NULL, &id, &why);
    if (st != REMOCA_OK) {
        if (ss->tenant) tenant_refused(ss->tenant);
        reply_err(ctx, ss, out, h, st, 0, "cannot open pool: %s", why);
        return;
    }
    for (uint32_t k = 0; k < ss->nhandles; k++) {
        if (ss->handles[k] == id) { /* reopened: same handle, parameters updated */
            store_pool_close(ctx->store, id);
            put_resp(out, h, REMOCA_OK, k + 1, 0);
            return;
        }
    }
    if (ss->nhandles == ss->cap) {
        uint32_t cap = ss->cap ? ss->cap * 2 : 4;
        uint32_t *p = cap <= PROTO_MAX_HANDLES ? realloc(ss->handles, cap * sizeof *p) : NULL;
        if (!p) {
            store_pool_close(ctx->store, id);
            reply_err(ctx, ss, out, h, REMOCA_E_LIMIT, 0, "too many pool handles");
            return;
        }
        ss->handles = p;
        ss->cap = cap;
    }
    ss->handles[ss->nhandles++] = id;
    put_resp(out, h, REMOCA_OK, ss->nhandles, 0);
}

static void op_get(const struct proto_ctx *ctx, struct session *ss, const struct remoca_hdr *h,
                   uint32_t pool, struct outbuf *out)
{
    uint32_t bm = remoca_bitmap_bytes(h->count);
    uint32_t unit = remoca_unit_size(h->flags & REMOCA_F_SEALED); /* = the pool's: dispatch */
    size_t max = REMOCA_HDR_SIZE + bm + (size_t)h->count * unit;
    uint8_t *p = outbuf_reserve(out, max);
    if (!p) {
        reply_err(ctx, ss, out, h, REMOCA_E_INTERNAL, pool, "out of memory");
        return;
    }
    memset(p + REMOCA_HDR_SIZE, 0, bm);
    uint32_t hits = store_get(ctx->store, pool, h->key, h->count, h->op == REMOCA_OP_TAKE,
                              p + REMOCA_HDR_SIZE, p + REMOCA_HDR_SIZE + bm);
    put_resp(out, h, REMOCA_OK, h->pool, bm + hits * unit);
    out->len += bm + (size_t)hits * unit;
}

static void op_stats(const struct proto_ctx *ctx, const struct session *ss,
                     const struct remoca_hdr *h, struct outbuf *out)
{
    struct server_counters sc = {0};
    if (ctx->counters) ctx->counters(ctx->arg, &sc);
    uint8_t *p = outbuf_reserve(out, REMOCA_HDR_SIZE + REMOCA_MAX_STATS);
    if (!p) return;
    size_t n = store_stats_for(ctx->store, ctx->counters ? &sc : NULL, h->flags & REMOCA_F_JSON,
                               (char *)p + REMOCA_HDR_SIZE, REMOCA_MAX_STATS,
                               ss->tenant && !ss->tenant->stats_all ? &ss->tenant->acct : NULL);
    put_resp(out, h, REMOCA_OK, h->pool, (uint32_t)n);
    out->len += n;
}

/* SHM_MAP (remoca/shm.h, docs/protocol.md): the layout of the shared store;
 * net.c attaches the fds.  The fds must arrive with the first byte of this
 * response, so it has to be the first response of the output buffer. */
static void op_shm_map(const struct proto_ctx *ctx, struct session *ss, const struct remoca_hdr *h,
                       struct outbuf *out)
{
    struct remoca_shm_layout l;
    if (!ctx->store->shm) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0,
                  "shm not enabled (start remoca-memd with --shm)");
        return;
    }
    if (!ss->unix_socket) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0, "shm only over a unix socket");
        return;
    }
    if (h->pool < 1 || h->pool > ss->nhandles) {
        reply_err(ctx, ss, out, h, REMOCA_E_POOL, 0, "pool handle %u not open here", h->pool);
        return;
    }
    uint32_t pool = ss->handles[h->pool - 1];
    if (out->len != 0 || ss->nattach) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, pool,
                  "SHM_MAP behind other responses: send it alone (nothing else in flight)");
        return;
    }
    store_shm_layout(ctx->store, pool, &l);
    if (!put_resp(out, h, REMOCA_OK, h->pool, REMOCA_SHM_LAYOUT_SIZE)) return;
    remoca_shm_layout_encode(out->p + out->len, &l);
    out->len += REMOCA_SHM_LAYOUT_SIZE;
    ss->attach_fds[0] = ctx->store->shm->data_ro_fd;
    ss->attach_fds[1] = ctx->store->shm->touch_fd;
    ss->nattach = 2;
    ss->attach_close = false; /* the store's, for its lifetime */
    __atomic_fetch_add(&ctx->store->shm_maps, 1, __ATOMIC_RELAXED);
}

/* FILL_RING (memd/fill_ring.h, docs/protocol.md): a ring for this connection.
 * Its memfd travels with the first byte of the response, like SHM_MAP's fds,
 * and is closed here once sent (the mapping stays). */
static void op_fill_ring(const struct proto_ctx *ctx, struct session *ss,
                         const struct remoca_hdr *h, struct outbuf *out)
{
    if (!ss->unix_socket) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0, "fill ring only over a unix socket");
        return;
    }
    if (ss->ring) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0, "fill ring already attached");
        return;
    }
    if (out->len != 0 || ss->nattach) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0,
                  "FILL_RING behind other responses: send it alone (nothing else in flight)");
        return;
    }
    uint32_t nslots = h->count ? h->count : REMOCA_RING_DEFAULT_SLOTS; /* checked */
    uint64_t size = remoca_ring_size(nslots);
    if (ctx->buf_bytes) { /* the ring is connection memory: --max-buffers */
        uint64_t total = __atomic_add_fetch(ctx->buf_bytes, size, __ATOMIC_RELAXED);
        if (total > ctx->max_buffers) {
            __atomic_fetch_sub(ctx->buf_bytes, size, __ATOMIC_RELAXED);
            reply_err(ctx, ss, out, h, REMOCA_E_LIMIT, 0,
                      "a fill ring of %llu bytes would exceed --max-buffers",
                      (unsigned long long)size);
            return;
        }
    }
    struct fill_ring *r = fill_ring_create(nslots);
    if (!r || !put_resp(out, h, REMOCA_OK, h->pool, REMOCA_RING_REPLY_SIZE)) {
        const char *why = r ? "out of memory" : strerror(errno);
        fill_ring_destroy(r);
        if (ctx->buf_bytes) __atomic_fetch_sub(ctx->buf_bytes, size, __ATOMIC_RELAXED);
        reply_err(ctx, ss, out, h, REMOCA_E_INTERNAL, 0, "cannot create the fill ring: %s", why);
        return;
    }
    struct remoca_ring_reply rr = {.version = REMOCA_RING_VERSION, .nslots = nslots, .size = size};
    remoca_ring_reply_encode(out->p + out->len, &rr);
    out->len += REMOCA_RING_REPLY_SIZE;
    ss->ring = r;
    ss->attach_fds[0] = r->fd;
    r->fd = -1; /* the attachment's now */
    ss->nattach = 1;
    ss->attach_close = true;
    __atomic_fetch_add(&ctx->store->fill_rings, 1, __ATOMIC_RELAXED);
}

/* POOL_KEEP (docs/protocol.md, lib/client/client_members.c): the client's
 * members changed; keep only the chunks this server owns among them.  The
 * body is hostile like everything else: remoca_keep_decode checks counts,
 * the receiver's index, weights and distinct seeds. */
static void op_pool_keep(const struct proto_ctx *ctx, struct session *ss,
                         const struct remoca_hdr *h, uint32_t pool, const uint8_t *payload,
                         struct outbuf *out)
{
    struct remoca_placement members;
    unsigned self;
    if (remoca_keep_decode(payload, h->len, &members, &self) < 0) {
        reply_err(ctx, ss, out, h, REMOCA_E_PROTO, pool,
                  "malformed POOL_KEEP body (u16 n 1..%u, u16 self < n, n x (u64 seed, u8 "
                  "weight 1..%u), seeds distinct)",
                  REMOCA_MAX_SERVERS, REMOCA_MAX_WEIGHT);
        return;
    }
    uint64_t dropped = store_keep(ctx->store, pool, &members, self);
    log_debug("%s (%s): pool-keep: member %u of %u, %llu pages dropped", ss->peer ? ss->peer : "-",
              ss->client, self, members.n, (unsigned long long)dropped);
    put_resp(out, h, REMOCA_OK, h->pool, 0);
}

static void dispatch(const struct proto_ctx *ctx, struct session *ss, const struct remoca_hdr *h,
                     const uint8_t *payload, struct outbuf *out)
{
    if (h->op == REMOCA_OP_HELLO) {
        op_hello(ctx, ss, h, payload, out);
        return;
    }
    if (!ss->hello) {
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, 0, "HELLO must be the first request");
        return;
    }
    switch (h->op) {
    case REMOCA_OP_POOL_OPEN: op_pool_open(ctx, ss, h, payload, out); return;
    case REMOCA_OP_STATS: op_stats(ctx, ss, h, out); return;
    case REMOCA_OP_PING: put_resp(out, h, REMOCA_OK, h->pool, 0); return;
    case REMOCA_OP_SHM_MAP: op_shm_map(ctx, ss, h, out); return;
    case REMOCA_OP_FILL_RING: op_fill_ring(ctx, ss, h, out); return;
    default: break;
    }
    /* The rest name a pool by handle. */
    if (h->pool < 1 || h->pool > ss->nhandles) {
        reply_err(ctx, ss, out, h, REMOCA_E_POOL, 0, "pool handle %u not open here", h->pool);
        return;
    }
    uint32_t pool = ss->handles[h->pool - 1];
    if ((h->op == REMOCA_OP_GET || h->op == REMOCA_OP_TAKE || h->op == REMOCA_OP_PUT) &&
        !(h->flags & REMOCA_F_SEALED) != !store_pool_sealed(ctx->store, pool)) {
        /* The frame's units (page, or page || sidecar) must be the pool's. */
        reply_err(ctx, ss, out, h, REMOCA_E_STATE, pool,
                  (h->flags & REMOCA_F_SEALED) ? "pool is not sealed: %s without the sealed flag"
                                               : "pool is sealed: %s needs the sealed flag",
                  remoca_op_name(h->op));
        return;
    }
    switch (h->op) {
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE: op_get(ctx, ss, h, pool, out); return;
    case REMOCA_OP_PUT: {
        enum remoca_status st = store_put(ctx->store, pool, h->key, h->count, payload);
        if (st != REMOCA_OK && ss->tenant) tenant_refused(ss->tenant);
        if (st != REMOCA_OK)
            reply_err(ctx, ss, out, h, st, pool, "no page could be freed (pools at minimum)");
        else
            put_resp(out, h, REMOCA_OK, h->pool, 0);
        return;
    }
    case REMOCA_OP_DELETE:
    case REMOCA_OP_DELETE_RANGE:
        store_delete(ctx->store, pool, h->key, h->count);
        put_resp(out, h, REMOCA_OK, h->pool, 0);
        return;
    case REMOCA_OP_POOL_RESET:
        store_reset(ctx->store, pool);
        put_resp(out, h, REMOCA_OK, h->pool, 0);
        return;
    case REMOCA_OP_POOL_KEEP: op_pool_keep(ctx, ss, h, pool, payload, out); return;
    default: reply_err(ctx, ss, out, h, REMOCA_E_OP, 0, "unknown opcode %u", h->op); return;
    }
}

enum proto_result proto_process(const struct proto_ctx *ctx, struct session *ss, const uint8_t *in,
                                size_t len, struct outbuf *out, size_t *used)
{
    size_t off = 0;
    enum proto_result res = PROTO_MORE;
    while (len - off >= REMOCA_HDR_SIZE) {
        if (out->len >= PROTO_OUT_HIGH) {
            res = PROTO_FULL;
            break;
        }
        struct remoca_hdr h;
        remoca_hdr_decode(in + off, &h);
        enum remoca_status st = remoca_req_check(&h);
        if (h.magic != REMOCA_MAGIC_REQ || h.len > REMOCA_MAX_REQ_PAYLOAD) {
            /* Out of sync: nothing after this header can be trusted. */
            reply_err(ctx, ss, out, &h, st, 0,
                      h.magic != REMOCA_MAGIC_REQ ? "bad magic 0x%08x: closing"
                                                  : "payload length %u too large: closing",
                      h.magic != REMOCA_MAGIC_REQ ? h.magic : h.len);
            if (h.magic != REMOCA_MAGIC_REQ)
                log_warn("%s (%s): bad magic 0x%08x: stream out of sync, connection closed",
                         ss->peer ? ss->peer : "-", ss->client, h.magic);
            else
                log_warn("%s (%s): %s payload of %u bytes exceeds %u: connection closed",
                         ss->peer ? ss->peer : "-", ss->client, remoca_op_name(h.op), h.len,
                         REMOCA_MAX_REQ_PAYLOAD);
            *used = len;
            return PROTO_CLOSE;
        }
        size_t total = REMOCA_HDR_SIZE + (size_t)h.len;
        if (len - off < total) break;
        const uint8_t *payload = in + off + REMOCA_HDR_SIZE;
        off += total;
        /* The ring's entries that come before this request in the stream. */
        if (ss->ring && fill_ring_drain(ctx, ss, h.id) < 0) {
            *used = len;
            return PROTO_CLOSE;
        }
        ss->last_id = h.id;
        if (st != REMOCA_OK) {
            reply_err(ctx, ss, out, &h, st, 0, "%s request rejected (%u bytes skipped)",
                      remoca_op_name(h.op), h.len);
            continue;
        }
        dispatch(ctx, ss, &h, payload, out);
        if (ss->close_now) {
            *used = len;
            return PROTO_CLOSE;
        }
    }
    /* Entries placed after the last request (a client with nothing else to
     * send follows them with a PING, whose id is at most last_id + 1). */
    if (ss->ring && fill_ring_drain(ctx, ss, ss->last_id + 1) < 0) {
        *used = len;
        return PROTO_CLOSE;
    }
    *used = off;
    return res;
}

void session_attached_sent(struct session *ss)
{
    if (ss->attach_close)
        for (unsigned k = 0; k < ss->nattach; k++) close(ss->attach_fds[k]);
    ss->nattach = 0;
    ss->attach_close = false;
}

void session_end(const struct proto_ctx *ctx, struct session *ss)
{
    for (uint32_t k = 0; k < ss->nhandles; k++) store_pool_close(ctx->store, ss->handles[k]);
    free(ss->handles);
    ss->handles = NULL;
    if (ss->tenant) tenant_conn_put(ss->tenant);
    ss->tenant = NULL;
    ss->nhandles = ss->cap = 0;
    session_attached_sent(ss); /* never sent: ours to close all the same */
    if (ss->ring) {
        if (ctx->buf_bytes) __atomic_fetch_sub(ctx->buf_bytes, ss->ring->size, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&ctx->store->fill_rings, 1, __ATOMIC_RELAXED);
        fill_ring_destroy(ss->ring);
        ss->ring = NULL;
    }
}
