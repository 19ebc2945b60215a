/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca_stats_query and remoca_pool_update: one request to one memory server
 * over a connection of its own (lib/client/include/remoca/client.h), for tools
 * that have no client: `remoca stats`, remoca-balancer.
 *
 *   connect (bounded) ─▶ HELLO ──▶ OK ────────────────────────────▶ STATS ─▶ payload
 *                              └─▶ E_AUTH "challenge <nonce>" ─▶ HELLO + HMAC ─┘   or POOL_OPEN
 *
 * It speaks the wire protocol directly (remoca/wire.h) through the client
 * core's socket helpers, under one deadline for the whole query.  The address
 * syntax, the connect and the credential are the client core's, so a tool
 * accepts exactly what remoca-servers= does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client_internal.h"
#include "client_sock.h"
#include "remoca/wire.h"

struct query {
    int fd;
    struct timespec deadline; /* of the whole query */
    const char *addr;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct query *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->err, q->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads exactly n bytes before the query's deadline: 0, or -1 (errno 0 at
 * the server's EOF). */
static int recv_all(struct query *q, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = rc_sock_recv(q->fd, p, n, &q->deadline, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) errno = 0;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends one request and reads its response: the payload (malloc'd,
 * NUL-terminated) in *out and the response's status in *status. */
static int call(struct query *q, struct remoca_hdr *req, const uint8_t *body, uint8_t **out,
                uint32_t *out_len, uint16_t *status)
{
    uint8_t buf[REMOCA_HDR_SIZE + 4 + 2 * REMOCA_MAX_NAME + 32]; /* HELLO, POOL_OPEN */
    remoca_hdr_encode(buf, req);
    if (req->len) memcpy(buf + REMOCA_HDR_SIZE, body, req->len);
    struct iovec iov = {buf, REMOCA_HDR_SIZE + req->len};
    char why[160];
    if (rc_sock_send(q->fd, &iov, 1, &q->deadline, 0, NULL, why, sizeof why) < 0)
        return fail(q, "%s: connection lost: %s", q->addr, why);
    if (recv_all(q, buf, REMOCA_HDR_SIZE) < 0)
        return fail(q, "%s: connection lost: %s", q->addr,
                    errno ? strerror(errno) : "closed by the server");
    struct remoca_hdr resp;
    remoca_hdr_decode(buf, &resp);
    enum remoca_status st = remoca_resp_check(&resp, req->op, req->count);
    if (st != REMOCA_OK || resp.id != req->id)
        return fail(q, "%s: invalid response (%s)", q->addr, remoca_status_name(st));
    uint8_t *payload = malloc((size_t)resp.len + 1);
    if (!payload || recv_all(q, payload, resp.len) < 0) {
        free(payload);
        return fail(q, "%s: short response", q->addr);
    }
    payload[resp.len] = 0;
    *status = resp.flags;
    *out = payload;
    *out_len = resp.len;
    return 0;
}

/* HELLO as name (NULL: "remoca-stats"), answering a challenge with the
 * secret if the server sends one. */
static int hello(struct query *q, const char *name, const char *secret)
{
    if (!name) name = "remoca-stats";
    uint8_t body[4 + 2 * REMOCA_MAX_NAME];
    struct remoca_hello h = {.name = name, .name_len = strlen(name)};
    if (h.name_len == 0 || h.name_len > REMOCA_MAX_NAME)
        return fail(q, "client name must be 1..%u bytes", REMOCA_MAX_NAME);
    struct remoca_hdr req = {
        .magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION, .op = REMOCA_OP_HELLO, .id = 1};
    req.len = (uint32_t)remoca_hello_encode(body, sizeof body, &h);
    uint8_t *payload;
    uint32_t len;
    uint16_t st;
    if (call(q, &req, body, &payload, &len, &st) < 0) return -1;
    uint8_t nonce[RC_AUTH_NONCE_BYTES];
    if (st == REMOCA_E_AUTH && rc_auth_parse_challenge((char *)payload, len, nonce)) {
        free(payload);
        if (!secret || !secret[0]) return fail(q, "%s needs a secret", q->addr);
        uint8_t mac[RC_AUTH_MAC_BYTES];
        unsigned mlen;
        if (!rc_auth_credential(secret, strlen(secret), nonce, h.name, h.name_len, mac, &mlen))
            return fail(q, "%s: computing the credential failed", q->addr);
        h.cred = mac;
        h.cred_len = mlen;
        req.id = 3;
        req.len = (uint32_t)remoca_hello_encode(body, sizeof body, &h);
        if (call(q, &req, body, &payload, &len, &st) < 0) return -1;
    }
    free(payload);
    if (st != REMOCA_OK)
        return fail(q, "%s: HELLO refused: %s%s", q->addr, remoca_status_name(st),
                    st == REMOCA_E_AUTH ? " (wrong secret?)" : "");
    return 0;
}

/* Connects (under the query's deadline) and says HELLO: 0, or -1 with the
 * message in q->err; q->fd is to be closed by the caller either way. */
static int open_query(struct query *q, const char *name, const char *secret, unsigned timeout_ms)
{
    rc_deadline_in(&q->deadline, timeout_ms);
    struct remoca_addr a;
    char why[256];
    if (remoca_addr_parse(q->addr, strlen(q->addr), &a, why, sizeof why) == 0 && a.mc)
        return fail(q, "%s: not supported on memcached servers (ask memcached's own \"stats\")",
                    q->addr);
    if (remoca_addr_parse(q->addr, strlen(q->addr), &a, why, sizeof why) < 0 ||
        (q->fd = rc_sock_connect(&a, timeout_ms, -1, why, sizeof why)) < 0)
        return fail(q, "cannot connect to %s: %s", q->addr, why);
    return hello(q, name, secret);
}

int remoca_stats_query(const char *addr, const char *secret, bool json, unsigned timeout_ms,
                       char **out, char *err, size_t errlen)
{
    return remoca_stats_query_as(addr, NULL, secret, json, timeout_ms, out, err, errlen);
}

int remoca_stats_query_as(const char *addr, const char *name, const char *secret, bool json,
                          unsigned timeout_ms, char **out, char *err, size_t errlen)
{
    struct query q = {.fd = -1, .addr = addr, .err = err, .errlen = errlen};
    *out = NULL;
    int r = open_query(&q, name, secret, timeout_ms);
    if (r == 0) {
        struct remoca_hdr req = {.magic = REMOCA_MAGIC_REQ,
                                 .version = REMOCA_VERSION,
                                 .op = REMOCA_OP_STATS,
                                 .id = 2,
                                 .flags = json ? REMOCA_F_JSON : 0};
        uint8_t *payload;
        uint32_t len;
        uint16_t st;
        r = call(&q, &req, NULL, &payload, &len, &st);
        if (r == 0 && st != REMOCA_OK) {
            r = fail(&q, "%s: STATS failed: %s: %s", addr, remoca_status_name(st), (char *)payload);
            free(payload);
        } else if (r == 0) {
            *out = (char *)payload;
        }
    }
    if (q.fd >= 0) close(q.fd);
    return r;
}

int remoca_pool_update(const char *addr, const char *secret, const char *pool, uint64_t min_bytes,
                       uint64_t max_bytes, uint32_t weight, unsigned timeout_ms, char *err,
                       size_t errlen)
{
    return remoca_pool_update_as(addr, NULL, secret, pool, min_bytes, max_bytes, weight, timeout_ms,
                                 err, errlen);
}

int remoca_pool_update_as(const char *addr, const char *name, const char *secret, const char *pool,
                          uint64_t min_bytes, uint64_t max_bytes, uint32_t weight,
                          unsigned timeout_ms, char *err, size_t errlen)
{
    struct query q = {.fd = -1, .addr = addr, .err = err, .errlen = errlen};
    struct remoca_pool_open po = {.min_bytes = min_bytes,
                                  .max_bytes = max_bytes,
                                  .weight = weight,
                                  .name = pool,
                                  .name_len = strlen(pool)};
    uint8_t body[4 + 2 * REMOCA_MAX_NAME + 32];
    struct remoca_hdr req = {
        .magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION, .op = REMOCA_OP_POOL_OPEN, .id = 2};
    req.len = (uint32_t)remoca_pool_open_encode(body, sizeof body, &po);
    if (req.len == 0) return fail(&q, "pool name '%s' is not valid", pool);
    int r = open_query(&q, name, secret, timeout_ms);
    if (r == 0) {
        uint8_t *payload;
        uint32_t len;
        uint16_t st;
        r = call(&q, &req, body, &payload, &len, &st);
        if (r == 0 && st == REMOCA_E_STATE && strstr((char *)payload, "pool is sealed")) {
            /* A sealed pool (docs/protocol.md, "Sealed pools"): the same
             * update as a sealed open; a plain one is never made sealed. */
            free(payload);
            req.flags = REMOCA_F_SEALED;
            req.id = 3;
            r = call(&q, &req, body, &payload, &len, &st);
        }
        if (r == 0) {
            if (st != REMOCA_OK)
                r = fail(&q, "%s: POOL_OPEN %s refused: %s: %s", addr, pool, remoca_status_name(st),
                         (char *)payload);
            free(payload);
        }
    }
    if (q.fd >= 0) close(q.fd);
    return r;
}
