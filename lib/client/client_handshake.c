/* SPDX-License-Identifier: BSD-3-Clause */
/* The handshake of a new connection, before it may carry data: HELLO
 * (answering the server's HMAC-SHA256 challenge when it requires a secret),
 * POOL_OPEN, POOL_RESET (docs/design.md, contract 4), and on a unix socket
 * SHM_MAP (one-sided reads, client_shm.c) and FILL_RING (puts through shared
 * memory, client_ring.c).  Synchronous, on the
 * connection thread, bounded by one timeout overall.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client_conn.h"
#include "client_sock.h"

/* ---- handshake --------------------------------------------------------- */

void rc_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) close(fds[i]);
}

int rc_hs_call(struct conn *cn, int fd, uint8_t op, uint32_t pool, uint32_t count, const void *body,
               uint32_t len, const struct timespec *deadline, struct hs_reply *r, char *why,
               size_t whylen)
{
    r->nfds = 0;
    r->body_len = 0;
    r->body[0] = '\0';
    if (cn->rb.pos != cn->rb.end) {
        snprintf(why, whylen, "protocol error: %zu unrequested bytes before %s",
                 cn->rb.end - cn->rb.pos, remoca_op_name(op));
        return -1;
    }
    bool sealed = op == REMOCA_OP_POOL_OPEN && cn->client->sealed;
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_REQ,
                           .version = REMOCA_VERSION,
                           .op = op,
                           .flags = sealed ? REMOCA_F_SEALED : 0,
                           .id = cn->next_id++,
                           .pool = pool,
                           .count = count,
                           .len = len};
    uint8_t hb[REMOCA_HDR_SIZE];
    remoca_hdr_encode(hb, &h);
    struct iovec iov[2] = {{hb, REMOCA_HDR_SIZE}, {(void *)body, len}};
    if (rc_sock_send(fd, iov, len ? 2 : 1, deadline, 0, NULL, why, whylen) < 0) return -1;

    /* Header first (into hb), then the body it announces (checked first:
     * an error message or the op's fixed-size reply, both fit). */
    uint8_t *dst = hb;
    size_t got = 0, want = REMOCA_HDR_SIZE;
    while (got < want) {
        ssize_t n = rc_sock_recv_fds(fd, dst + got, want - got, r->fds, &r->nfds, RC_SOCK_MAX_FDS,
                                     deadline, cn->stop_fd);
        if (n <= 0) {
            snprintf(why, whylen, "%s: %s", remoca_op_name(op),
                     n == 0               ? "connection closed by server"
                     : errno == ETIMEDOUT ? "no response (timed out)"
                     : errno == ECANCELED ? "client stopping"
                                          : strerror(errno));
            goto fail;
        }
        got += (size_t)n;
        if (got == want && dst == hb) {
            remoca_hdr_decode(hb, &r->h);
            enum remoca_status st = remoca_resp_check(&r->h, op, 0);
            if (st != REMOCA_OK || r->h.id != h.id || r->h.len >= sizeof r->body) {
                snprintf(why, whylen, "bad %s response: %s", remoca_op_name(op),
                         st != REMOCA_OK   ? remoca_status_name(st)
                         : r->h.id != h.id ? "wrong id"
                                           : "too long");
                goto fail;
            }
            dst = r->body;
            got = 0;
            want = r->h.len;
        }
    }
    r->body_len = r->h.len;
    r->body[r->body_len] = '\0';
    if (r->h.flags == REMOCA_OK) return 0;
    snprintf(why, whylen, "%s refused: %s%s%s", remoca_op_name(op), remoca_status_name(r->h.flags),
             r->body_len ? ": " : "", (const char *)r->body);
    rc_close_fds(r->fds, r->nfds);
    r->nfds = 0;
    return 1;
fail:
    rc_close_fds(r->fds, r->nfds);
    r->nfds = 0;
    return -1;
}

/* A handshake request whose response carries no descriptors (any sent are
 * closed).  0, 1 (refused: why says so, r->body the message) or -1. */
static int hs_call(struct conn *cn, int fd, uint8_t op, uint32_t pool, const void *body,
                   uint32_t len, const struct timespec *deadline, struct hs_reply *r, char *why,
                   size_t whylen)
{
    int st = rc_hs_call(cn, fd, op, pool, 0, body, len, deadline, r, why, whylen);
    rc_close_fds(r->fds, r->nfds);
    r->nfds = 0;
    return st;
}

/* HELLO, answering the server's challenge when it requires a secret:
 * credential = HMAC-SHA256(key = secret, message = nonce || name). */
static int hello(struct conn *cn, int fd, const struct timespec *deadline, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    uint8_t body[4 + 2 * REMOCA_MAX_NAME];
    uint8_t mac[RC_AUTH_MAC_BYTES];
    unsigned mac_len = 0;
    size_t name_len = strlen(c->name);
    struct hs_reply resp;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct remoca_hello hb = {
            .name = c->name, .name_len = name_len, .cred = mac, .cred_len = mac_len};
        size_t len = remoca_hello_encode(body, sizeof body, &hb);
        if (len == 0) {
            snprintf(why, whylen, "cannot encode HELLO");
            return -1;
        }
        int r =
            hs_call(cn, fd, REMOCA_OP_HELLO, 0, body, (uint32_t)len, deadline, &resp, why, whylen);
        if (r <= 0) return r;
        uint8_t nonce[RC_AUTH_NONCE_BYTES];
        if (resp.h.flags == REMOCA_E_AUTH && attempt > 0) {
            snprintf(why, whylen, "authentication failed (wrong secret?)");
            return -1;
        }
        if (resp.h.flags != REMOCA_E_AUTH ||
            !rc_auth_parse_challenge((const char *)resp.body, resp.body_len, nonce))
            return -1; /* why says what the server refused */
        if (c->secret_len == 0) {
            snprintf(why, whylen, "the server requires a secret (none configured)");
            return -1;
        }
        if (!rc_auth_credential(c->secret, c->secret_len, nonce, c->name, name_len, mac,
                                &mac_len)) {
            snprintf(why, whylen, "HMAC-SHA256 failed");
            return -1;
        }
    }
    return -1;
}

int rc_handshake(struct conn *cn, int fd, uint32_t *pool, struct shm_map *map,
                 struct ring_map *ring, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    struct hs_reply resp;
    uint8_t body[4 + 2 * REMOCA_MAX_NAME + 32];

    if (hello(cn, fd, &deadline, why, whylen) != 0) return -1;

    struct remoca_pool_open po = {.min_bytes = c->pool_min,
                                  .max_bytes = c->pool_max,
                                  .weight = c->pool_weight,
                                  .name = c->pool,
                                  .name_len = strlen(c->pool)};
    size_t len = remoca_pool_open_encode(body, sizeof body, &po);
    if (len == 0 || hs_call(cn, fd, REMOCA_OP_POOL_OPEN, 0, body, (uint32_t)len, &deadline, &resp,
                            why, whylen) != 0)
        return -1;
    *pool = resp.h.pool;

    if (hs_call(cn, fd, REMOCA_OP_POOL_RESET, *pool, NULL, 0, &deadline, &resp, why, whylen) != 0)
        return -1;

    /* One-sided reads: only a server on this host (unix socket) can share
     * its memory; one that does not offer it answers with an error. */
    memset(map, 0, sizeof *map);
    memset(ring, 0, sizeof *ring);
    if (cn->addr.kind != REMOCA_ADDR_UNIX || c->shm == REMOCA_SHM_OFF) return 0;
    if (rc_shm_map(cn, fd, *pool, &deadline, map, why, whylen) < 0) return -1;
    /* Puts through shared memory: offered on any unix socket (the ring is
     * the server's memory lent to this connection alone). */
    if (rc_ring_attach(cn, fd, &deadline, ring, why, whylen) < 0) {
        rc_shm_unmap(map);
        return -1;
    }
    return 0;
}
