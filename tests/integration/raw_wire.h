/* raw_wire.h: the plumbing shared by the integration tests' raw-socket
 * clients of remoca-memd (memd_client.c, shm_client.c), which speak the
 * REMOCA wire protocol by hand rather than through libremoca, so that they
 * can send what a real client never would and check every byte of the
 * answers.
 *
 * Header-only (static functions): each program in tests/integration is one
 * .c file built on its own (see CMakeLists.txt), so there is no library to
 * link.  What is here is only what the clients do alike: failing with a
 * message, dialling ADDR, sending whole requests.  Reading responses stays
 * in each program, as each needs something different (fds, EOF as a result).
 *
 * Set raw_prog to the program's name first thing in main(): die() prefixes
 * its message with it. */
#ifndef REMOCA_TESTS_RAW_WIRE_H
#define REMOCA_TESTS_RAW_WIRE_H

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remoca/wire.h"

static const char *raw_prog = "raw_wire"; /* the die() prefix, set by main() */

/* Prints "PROG: FAIL: message" and exits 1: the test's first failure. */
static void die(const char *fmt, ...)
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

/* Sends one request: the header built from the arguments, then the payload. */
static void send_req(int fd, uint8_t op, uint32_t id, uint32_t pool, uint64_t key, uint32_t count,
                     const void *payload, uint32_t len, uint16_t flags)
{
    uint8_t h[REMOCA_HDR_SIZE];
    struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION, .op = op,
                            .flags = flags, .id = id, .pool = pool, .key = key,
                            .count = count, .len = len};
    remoca_hdr_encode(h, &hd);
    send_all(fd, h, sizeof h);
    if (len) send_all(fd, payload, len);
}

#endif
