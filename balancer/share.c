/* SPDX-License-Identifier: BSD-3-Clause */
/* Remote shares: memd stats in, POOL_OPEN out (balancer/share.h).  The frames
 * are remoca/wire.h's; the HELLO challenge is answered as docs/protocol.md
 * "Authentication" says (HMAC-SHA256 of nonce || name, keyed by the secret). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "remoca/client.h"
#include "remoca/hostport.h"
#include "remoca/wire.h"
#include "share.h"

#define CLIENT_NAME "remoca-balancer"
#define NONCE_BYTES 16
#define MAX_PAYLOAD 4096 /* answers to HELLO and POOL_OPEN: an error message at most */

struct conn {
    int fd;
    const char *addr;
    struct timespec deadline;
    uint32_t next_id;
};

static int ms_left(const struct conn *c)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
              (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

static int wait_fd(const struct conn *c, short events)
{
    for (;;) {
        struct pollfd p = {c->fd, events, 0};
        int r = poll(&p, 1, ms_left(c));
        if (r > 0) return 0;
        if (r == 0) errno = ETIMEDOUT;
        if (r == 0 || errno != EINTR) return -1;
    }
}

static int connect_fd(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return -1;
    if (connect(c->fd, sa, len) == 0) return 0;
    int e = errno;
    socklen_t el = sizeof e;
    if (e == EINPROGRESS && wait_fd(c, POLLOUT) == 0 &&
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0)
        return 0;
    close(c->fd);
    c->fd = -1;
    errno = e == EINPROGRESS ? ETIMEDOUT : e;
    return -1;
}

/* addr: "unix:PATH" or HOST:PORT (the syntax of a server list entry). */
static int conn_open(struct conn *c, const char *addr, unsigned timeout_ms, char *err,
                     size_t errlen)
{
    c->fd = -1;
    c->addr = addr;
    c->next_id = 1;
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += timeout_ms / 1000;
    c->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (c->deadline.tv_nsec >= 1000000000) {
        c->deadline.tv_sec++;
        c->deadline.tv_nsec -= 1000000000;
    }
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(addr + 5) >= sizeof a.sun_path) {
            snprintf(err, errlen, "%s: path too long", addr);
            return -1;
        }
        strcpy(a.sun_path, addr + 5);
        if (connect_fd(c, (struct sockaddr *)&a, sizeof a) == 0) return 0;
        snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
        return -1;
    }
    struct remoca_hostport hp;
    char why[128];
    if (remoca_hostport_parse(addr, 1, &hp, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", addr, why);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int g = getaddrinfo(hp.host, hp.port, &hints, &res);
    if (g) {
        snprintf(err, errlen, "cannot connect to %s: %s", addr, gai_strerror(g));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next)
        if (connect_fd(c, ai->ai_addr, ai->ai_addrlen) == 0) break;
    int e = errno;
    freeaddrinfo(res);
    if (c->fd >= 0) return 0;
    snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(e));
    return -1;
}

static int io_all(struct conn *c, uint8_t *p, size_t n, bool out)
{
    while (n) {
        if (wait_fd(c, out ? POLLOUT : POLLIN) < 0) return -1;
        ssize_t r = out ? send(c->fd, p, n, MSG_NOSIGNAL) : recv(c->fd, p, n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r == 0) errno = ECONNRESET;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One request and its answer: status in *st, payload (NUL-terminated) in pl. */
static int call(struct conn *c, uint8_t op, const uint8_t *body, uint32_t len, uint16_t *st,
                char pl[MAX_PAYLOAD + 1], uint32_t *pl_len, char *err, size_t errlen)
{
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ,
                           .version = REMOCA_VERSION,
                           .op = op,
                           .id = c->next_id++,
                           .len = len};
    uint8_t buf[REMOCA_HDR_SIZE + 4 + 2 * REMOCA_MAX_NAME + 32];
    remoca_hdr_encode(buf, &h);
    memcpy(buf + REMOCA_HDR_SIZE, body, len);
    struct remoca_hdr r;
    if (io_all(c, buf, REMOCA_HDR_SIZE + len, true) < 0 ||
        io_all(c, buf, REMOCA_HDR_SIZE, false) < 0) {
        snprintf(err, errlen, "%s: %s: %s", c->addr, remoca_op_name(op),
                 errno == ETIMEDOUT ? "no answer (timed out)" : strerror(errno));
        return -1;
    }
    remoca_hdr_decode(buf, &r);
    enum remoca_status s = remoca_resp_check(&r, op, 0);
    if (s != REMOCA_OK || r.id != h.id || r.len > MAX_PAYLOAD) {
        snprintf(err, errlen, "%s: %s: invalid answer", c->addr, remoca_op_name(op));
        return -1;
    }
    if (io_all(c, (uint8_t *)pl, r.len, false) < 0) {
        snprintf(err, errlen, "%s: %s: short answer", c->addr, remoca_op_name(op));
        return -1;
    }
    pl[r.len] = 0;
    *pl_len = r.len;
    *st = r.flags;
    return 0;
}

static bool parse_challenge(const char *msg, uint32_t len, uint8_t nonce[NONCE_BYTES])
{
    static const char prefix[] = "challenge ";
    if (len != sizeof prefix - 1 + 2 * NONCE_BYTES || strncmp(msg, prefix, sizeof prefix - 1))
        return false;
    for (unsigned i = 0; i < NONCE_BYTES; i++) {
        char hex[3] = {msg[sizeof prefix - 1 + 2 * i], msg[sizeof prefix + 2 * i], 0}, *e;
        unsigned long v = strtoul(hex, &e, 16);
        if (*e || e != hex + 2) return false;
        nonce[i] = (uint8_t)v;
    }
    return true;
}

static int hello(struct conn *c, const char *secret, char *err, size_t errlen)
{
    struct remoca_hello h = {.name = CLIENT_NAME, .name_len = sizeof CLIENT_NAME - 1};
    uint8_t body[4 + 2 * REMOCA_MAX_NAME], mac[EVP_MAX_MD_SIZE];
    char pl[MAX_PAYLOAD + 1];
    uint32_t pl_len;
    uint16_t st;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t len = remoca_hello_encode(body, sizeof body, &h);
        if (call(c, REMOCA_OP_HELLO, body, (uint32_t)len, &st, pl, &pl_len, err, errlen) < 0)
            return -1;
        uint8_t nonce[NONCE_BYTES], msg[NONCE_BYTES + sizeof CLIENT_NAME];
        if (st != REMOCA_E_AUTH || attempt || !parse_challenge(pl, pl_len, nonce)) break;
        if (!secret || !secret[0]) {
            snprintf(err, errlen, "%s needs a secret (--secret-file)", c->addr);
            return -1;
        }
        memcpy(msg, nonce, NONCE_BYTES);
        memcpy(msg + NONCE_BYTES, CLIENT_NAME, sizeof CLIENT_NAME - 1);
        unsigned mlen = 0;
        if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg,
                  NONCE_BYTES + sizeof CLIENT_NAME - 1, mac, &mlen)) {
            snprintf(err, errlen, "%s: computing the credential failed", c->addr);
            return -1;
        }
        h.cred = mac;
        h.cred_len = mlen;
    }
    if (st == REMOCA_OK) return 0;
    snprintf(err, errlen, "%s: HELLO refused: %s%s", c->addr, remoca_status_name(st),
             st == REMOCA_E_AUTH ? " (wrong secret?)" : "");
    return -1;
}

int share_set(const char *addr, const char *secret, const char *pool, uint64_t min_bytes,
              uint64_t max_bytes, uint32_t weight, unsigned timeout_ms, char *err, size_t errlen)
{
    struct conn c;
    if (conn_open(&c, addr, timeout_ms, err, errlen) < 0) return -1;
    int rc = hello(&c, secret, err, errlen);
    if (rc == 0) {
        struct remoca_pool_open po = {.min_bytes = min_bytes,
                                      .max_bytes = max_bytes,
                                      .weight = weight,
                                      .name = pool,
                                      .name_len = strlen(pool)};
        uint8_t body[4 + 2 * REMOCA_MAX_NAME + 32];
        char pl[MAX_PAYLOAD + 1];
        uint32_t pl_len;
        uint16_t st;
        size_t len = remoca_pool_open_encode(body, sizeof body, &po);
        if (len == 0) {
            snprintf(err, errlen, "pool name '%s' is not valid", pool);
            rc = -1;
        } else if (call(&c, REMOCA_OP_POOL_OPEN, body, (uint32_t)len, &st, pl, &pl_len, err,
                        errlen) < 0) {
            rc = -1;
        } else if (st != REMOCA_OK) {
            snprintf(err, errlen, "%s: POOL_OPEN %s refused: %s: %s", addr, pool,
                     remoca_status_name(st), pl);
            rc = -1;
        }
    }
    close(c.fd);
    return rc;
}

static uint64_t member_u64(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) return 0;
    int64_t x = json_object_get_int64(v);
    return x > 0 ? (uint64_t)x : 0;
}

int share_read(const char *addr, const char *secret, unsigned timeout_ms, const char *const *names,
               unsigned n, struct share_server *srv, struct share_pool *out, char *err,
               size_t errlen)
{
    char *text;
    memset(out, 0, n * sizeof *out);
    memset(srv, 0, sizeof *srv);
    if (remoca_stats_query(addr, secret, true, timeout_ms, &text, err, errlen) < 0) return -1;
    json_object *doc = json_tokener_parse(text), *server, *pools;
    free(text);
    if (!doc || !json_object_object_get_ex(doc, "server", &server) ||
        !json_object_object_get_ex(doc, "pools", &pools) ||
        !json_object_is_type(pools, json_type_array)) {
        json_object_put(doc);
        snprintf(err, errlen, "%s: stats are not the JSON of a remoca-memd", addr);
        return -1;
    }
    srv->budget = member_u64(server, "budget_bytes");
    size_t np = json_object_array_length(pools);
    for (size_t k = 0; k < np; k++) {
        json_object *p = json_object_array_get_idx(pools, k), *name;
        if (!json_object_object_get_ex(p, "name", &name)) continue;
        const char *s = json_object_get_string(name);
        unsigned i = 0;
        while (i < n && strcmp(names[i] ? names[i] : "", s)) i++;
        if (i == n) {
            srv->others_min += member_u64(p, "min_bytes");
            continue;
        }
        out[i].found = true;
        out[i].bytes = member_u64(p, "bytes");
        out[i].min_bytes = member_u64(p, "min_bytes");
        out[i].max_bytes = member_u64(p, "max_bytes");
        out[i].weight = (uint32_t)member_u64(p, "weight");
    }
    json_object_put(doc);
    return 0;
}
