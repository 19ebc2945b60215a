/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-loadgen: the three protocols the generator speaks.
 *
 * remoca     REMOCA wire frames (lib/wire/include/remoca/wire.h), count = 1:
 *              GET key        -> status OK, payload = 8-byte bitmap + 4096 bytes
 *              PUT key + page -> status OK, no payload
 *            The request slot travels in the low bits of the request id, so
 *            responses may come back in any order.
 * memcached  the meta text protocol:
 *              "mg rk:KEY v\r\n"                 -> "VA 4096\r\n" data "\r\n" | "EN\r\n"
 *              "ms rk:KEY 4096\r\n" data "\r\n"  -> "HD\r\n"
 *            Responses come in request order.
 * echo       4096 raw bytes out, the same 4096 bytes back.
 *
 * Every response is validated: status, sizes, and for values the key
 * stamped in their first bytes.  Anything else is an error.
 */
#include "loadgen.h"

#include "remoca/wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define LG_SLOT_BITS 10u /* request id = seq << 10 | slot */

int lg_parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= hostcap) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

void lg_value_fill(uint8_t *v, uint64_t key)
{
    remoca_put_le64(v, key);
    for (unsigned i = 8; i < LG_VALUE_SIZE; i++) v[i] = (uint8_t)(i * 7u + 3u);
}

bool lg_value_check(const uint8_t *v, uint64_t key)
{
    return remoca_get_le64(v) == key &&
           v[LG_VALUE_SIZE - 1] == (uint8_t)((LG_VALUE_SIZE - 1) * 7u + 3u);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int dial(const char *host, int port, const char *unix_path)
{
    int fd;
    if (unix_path) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof sun.sun_path) {
            fprintf(stderr, "loadgen: unix path too long: %s\n", unix_path);
            return -1;
        }
        strcpy(sun.sun_path, unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
            fprintf(stderr, "loadgen: connect %s: %s\n", unix_path, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        return fd;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc) {
        fprintf(stderr, "loadgen: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "loadgen: connect %s:%d: %s\n", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* One blocking request/response during the handshake. */
static int remoca_call(int fd, struct remoca_hdr *req, const uint8_t *body, struct remoca_hdr *resp)
{
    uint8_t hdr[REMOCA_HDR_SIZE], rbuf[REMOCA_MAX_ERRMSG + 1];
    remoca_hdr_encode(hdr, req);
    if (write_all(fd, hdr, sizeof hdr) || (req->len && write_all(fd, body, req->len)) ||
        read_all(fd, hdr, sizeof hdr)) {
        fprintf(stderr, "loadgen: %s: connection lost\n", remoca_op_name(req->op));
        return -1;
    }
    remoca_hdr_decode(hdr, resp);
    enum remoca_status st = remoca_resp_check(resp, req->op, req->count);
    if (st != REMOCA_OK || resp->len > REMOCA_MAX_ERRMSG) {
        fprintf(stderr, "loadgen: %s: malformed response (%s)\n", remoca_op_name(req->op),
                remoca_status_name(st));
        return -1;
    }
    if (resp->len && read_all(fd, rbuf, resp->len)) return -1;
    if (resp->flags != REMOCA_OK) {
        rbuf[resp->len] = '\0';
        fprintf(stderr, "loadgen: %s: %s: %s\n", remoca_op_name(req->op),
                remoca_status_name(resp->flags), (char *)rbuf);
        return -1;
    }
    return 0;
}

int lg_proto_connect(struct lg_conn_proto *cp, const char *host, int port, const char *unix_path,
                     const char *pool, const char *cred)
{
    int fd = dial(host, port, unix_path);
    if (fd < 0 || cp->proto != LG_REMOCA) return fd;
    /* A server that does not answer the handshake must not hang us. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    uint8_t body[1024];
    struct remoca_hello hello = {.name = "remoca-loadgen",
                                 .name_len = 14,
                                 .cred = (const uint8_t *)cred,
                                 .cred_len = cred ? strlen(cred) : 0};
    struct remoca_hdr req = {.magic = REMOCA_MAGIC_REQ,
                             .version = REMOCA_VERSION,
                             .op = REMOCA_OP_HELLO,
                             .id = 1},
                      resp;
    req.len = (uint32_t)remoca_hello_encode(body, sizeof body, &hello);
    if (!req.len || remoca_call(fd, &req, body, &resp)) goto fail;

    struct remoca_pool_open po = {.name = pool, .name_len = strlen(pool)};
    req.op = REMOCA_OP_POOL_OPEN;
    req.id = 2;
    req.len = (uint32_t)remoca_pool_open_encode(body, sizeof body, &po);
    if (!req.len || remoca_call(fd, &req, body, &resp)) goto fail;
    cp->pool = resp.pool;
    return fd;
fail:
    close(fd);
    return -1;
}

size_t lg_proto_encode(const struct lg_conn_proto *cp, uint8_t *out, enum lg_op op, uint64_t key,
                       unsigned slot, uint32_t seq)
{
    switch (cp->proto) {
    case LG_REMOCA: {
        struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ,
                               .version = REMOCA_VERSION,
                               .op = op == LG_PUT ? REMOCA_OP_PUT : REMOCA_OP_GET,
                               .id = (seq << LG_SLOT_BITS) | slot,
                               .pool = cp->pool,
                               .key = key,
                               .count = 1,
                               .len = op == LG_PUT ? LG_VALUE_SIZE : 0};
        remoca_hdr_encode(out, &h);
        if (op != LG_PUT) return REMOCA_HDR_SIZE;
        lg_value_fill(out + REMOCA_HDR_SIZE, key);
        return REMOCA_HDR_SIZE + LG_VALUE_SIZE;
    }
    case LG_MEMCACHED: {
        if (op != LG_PUT)
            return (size_t)sprintf((char *)out, "mg rk:%llu v\r\n", (unsigned long long)key);
        size_t n = (size_t)sprintf((char *)out, "ms rk:%llu %u\r\n", (unsigned long long)key,
                                   LG_VALUE_SIZE);
        lg_value_fill(out + n, key);
        memcpy(out + n + LG_VALUE_SIZE, "\r\n", 2);
        return n + LG_VALUE_SIZE + 2;
    }
    case LG_ECHO: lg_value_fill(out, key); return LG_VALUE_SIZE;
    }
    return 0;
}

static ssize_t parse_remoca(enum lg_op op, const uint8_t *in, size_t len, struct lg_completion *c)
{
    if (len < REMOCA_HDR_SIZE) return 0;
    struct remoca_hdr h;
    remoca_hdr_decode(in, &h);
    uint8_t rop = op == LG_PUT ? REMOCA_OP_PUT : REMOCA_OP_GET;
    if (remoca_resp_check(&h, rop, 1) != REMOCA_OK) {
        fprintf(stderr, "loadgen: malformed remoca response (op %u status %u len %u)\n", h.op,
                h.flags, h.len);
        return -1;
    }
    if (len < REMOCA_HDR_SIZE + (size_t)h.len) return 0;
    c->slot = (int)(h.id & ((1u << LG_SLOT_BITS) - 1));
    c->value = NULL;
    const uint8_t *p = in + REMOCA_HDR_SIZE;
    if (h.flags != REMOCA_OK)
        c->result = LG_ERROR;
    else if (op != LG_PUT) {
        uint32_t bm = remoca_bitmap_bytes(1);
        if (h.len == bm + LG_VALUE_SIZE && (p[0] & 1)) {
            c->result = LG_OK;
            c->value = p + bm;
        } else if (h.len == bm && !(p[0] & 1))
            c->result = LG_MISS;
        else
            c->result = LG_ERROR;
    } else
        c->result = LG_OK;
    return (ssize_t)(REMOCA_HDR_SIZE + h.len);
}

static ssize_t parse_memcached(enum lg_op op, const uint8_t *in, size_t len,
                               struct lg_completion *c)
{
    const uint8_t *nl = memchr(in, '\n', len);
    if (!nl) return len > 1024 ? -1 : 0;
    size_t line = (size_t)(nl - in) + 1;
    c->slot = -1;
    c->value = NULL;
    if (line >= 4 && !memcmp(in, "VA ", 3)) {
        char *end;
        unsigned long sz = strtoul((const char *)in + 3, &end, 10);
        if (sz > (1u << 21)) return -1;
        if (len < line + sz + 2) return 0;
        if (memcmp(in + line + sz, "\r\n", 2)) return -1;
        c->result = op != LG_PUT && sz == LG_VALUE_SIZE ? LG_OK : LG_ERROR;
        if (c->result == LG_OK) c->value = in + line;
        return (ssize_t)(line + sz + 2);
    }
    if (line == 4 && !memcmp(in, "HD\r\n", 4))
        c->result = op == LG_PUT ? LG_OK : LG_ERROR;
    else if (line == 4 && !memcmp(in, "EN\r\n", 4))
        c->result = op == LG_PUT ? LG_ERROR : LG_MISS;
    else {
        fprintf(stderr, "loadgen: memcached said: %.*s", (int)line, (const char *)in);
        c->result = LG_ERROR;
    }
    return (ssize_t)line;
}

ssize_t lg_proto_parse(const struct lg_conn_proto *cp, enum lg_op op, const uint8_t *in, size_t len,
                       struct lg_completion *c)
{
    switch (cp->proto) {
    case LG_REMOCA: return parse_remoca(op, in, len, c);
    case LG_MEMCACHED: return parse_memcached(op, in, len, c);
    case LG_ECHO:
        if (len < LG_VALUE_SIZE) return 0;
        c->slot = -1;
        c->result = LG_OK;
        c->value = in;
        return LG_VALUE_SIZE;
    }
    return -1;
}
