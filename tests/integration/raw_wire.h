/* SPDX-License-Identifier: BSD-3-Clause */
/* raw_wire.h: the plumbing shared by the integration tests' raw-socket
 * clients of remoca-memd (memd_client.c, shm_client.c), which speak the
 * REMOCA wire protocol by hand rather than through libremoca, so that they
 * can send what a real client never would and check every byte of the
 * answers.
 *
 * Header-only (static functions): each program in tests/integration is one
 * .c file built on its own (see CMakeLists.txt), so there is no library to
 * link.  What is here is only what the clients do alike: failing with a
 * message, dialling ADDR, sending whole requests, and reading responses with
 * the fds that come with them (shm_client.c, ring_client.c: raw_recv_fds,
 * raw_expect).  memd_client.c reads its responses its own way (plain recv,
 * any end of the connection as a result, a malloc'd payload).
 *
 * Set raw_prog to the program's name first thing in main(): die() prefixes
 * its message with it. */
#ifndef REMOCA_TESTS_RAW_WIRE_H
#define REMOCA_TESTS_RAW_WIRE_H

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remoca/wire.h"

#define RAW_TIMEOUT_MS 10000 /* the longest wait for the server's answer */

static const char *raw_prog = "raw_wire"; /* the die() prefix, set by main() */

/* Prints "PROG: FAIL: message" and exits 1: the test's first failure. */
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FAIL: ", raw_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* Connects to addr: unix:PATH, HOST:PORT or [V6]:PORT; dies if it cannot. */
static int raw_dial(const char *addr)
{
    int fd;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", addr + 5);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect %s: %s", addr, strerror(errno));
        return fd;
    }
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon) die("bad address %s", addr);
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [v6]:port */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res)) die("cannot resolve %s", addr);
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("connect %s: %s", addr, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* Sends all n bytes (a short send is continued, not an error); dies on a
 * failed send, such as the server having closed the connection. */
static void send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("send: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

/* A request header from its fields. */
static inline void encode_req(uint8_t h[REMOCA_HDR_SIZE], uint8_t op, uint32_t id, uint32_t pool,
                              uint64_t key, uint32_t count, uint32_t len, uint16_t flags)
{
    struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ,
                            .version = REMOCA_VERSION,
                            .op = op,
                            .flags = flags,
                            .id = id,
                            .pool = pool,
                            .key = key,
                            .count = count,
                            .len = len};
    remoca_hdr_encode(h, &hd);
}

/* Sends one request: the header built from the arguments, then the payload. */
static void send_req(int fd, uint8_t op, uint32_t id, uint32_t pool, uint64_t key, uint32_t count,
                     const void *payload, uint32_t len, uint16_t flags)
{
    uint8_t h[REMOCA_HDR_SIZE];
    encode_req(h, op, id, pool, key, count, len, flags);
    send_all(fd, h, sizeof h);
    if (len) send_all(fd, payload, len);
}

/* Reads n bytes with recvmsg, collecting SCM_RIGHTS fds into fds[*nfds] (at
 * most 4; more, or a truncated control message, or fds after the first byte
 * are a failure).  Returns 0, or -1 at EOF before the first byte if eof_ok;
 * dies on any other end of the connection and after RAW_TIMEOUT_MS.
 * (This and raw_expect are marked unused: memd_client.c reads its own way.) */
__attribute__((unused)) static int raw_recv_fds(int fd, void *p, size_t n, int *fds, int *nfds,
                                                int eof_ok)
{
    uint8_t *b = p;
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, RAW_TIMEOUT_MS) == 0) die("timed out waiting for the server");
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        struct iovec iov = {.iov_base = b, .iov_len = n};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = ctl.buf,
                           .msg_controllen = sizeof ctl.buf};
        ssize_t got = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR) continue;
        if ((got == 0 || (got < 0 && errno == ECONNRESET)) && eof_ok && b == p) return -1;
        if (got <= 0) die("connection closed by the server");
        if (m.msg_flags & MSG_CTRUNC) die("control message truncated");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            if (*nfds + k > 4) die("more than 4 fds received");
            memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
            *nfds += (int)k;
            if (b != p) die("fds arrived after the first byte of the response");
        }
        b += got;
        n -= (size_t)got;
    }
    return 0;
}

/* One response as raw_expect reads it: the payload NUL-terminated, the fds
 * that came with it. */
struct raw_resp {
    struct remoca_hdr h;
    uint8_t payload[REMOCA_MAX_BATCH * REMOCA_PAGE_SIZE + 64];
    int fds[4];
    int nfds;
};
_Static_assert(REMOCA_MAX_STATS <= REMOCA_MAX_BATCH * REMOCA_PAGE_SIZE,
               "raw_resp holds a full GET batch and a STATS response");

/* Reads the next response into *r; dies unless it answers `id` with status
 * st.  Only an OK response to fds_op may carry fds. */
__attribute__((unused)) static void raw_expect(int fd, struct raw_resp *r, uint32_t id, uint16_t st,
                                               const char *what, uint8_t fds_op)
{
    uint8_t h[REMOCA_HDR_SIZE];
    r->nfds = 0;
    raw_recv_fds(fd, h, sizeof h, r->fds, &r->nfds, 0);
    remoca_hdr_decode(h, &r->h);
    if (r->h.magic != REMOCA_MAGIC_RESP || r->h.len > sizeof r->payload - 1)
        die("%s: bad response header", what);
    raw_recv_fds(fd, r->payload, r->h.len, r->fds, &r->nfds, 0);
    r->payload[r->h.len] = 0;
    if (r->h.id != id) die("%s: response id %u, expected %u", what, r->h.id, id);
    if (r->h.flags != st)
        die("%s: status %s (%s), expected %s", what, remoca_status_name(r->h.flags),
            (char *)r->payload, remoca_status_name(st));
    if (st != REMOCA_OK || r->h.op != fds_op)
        if (r->nfds) die("%s: %d fds received with a response that carries none", what, r->nfds);
}

#endif
