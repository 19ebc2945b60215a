/* SPDX-License-Identifier: BSD-3-Clause */
/* harden_client: clients that misbehave in time rather than in bytes, for
 * remoca-memd's limits and timeouts (test_memd_harden.sh, test_memd_soak.sh).
 *
 *   harden_client ADDR stall N SECS   N connections that stall in the
 *       handshake (nothing sent, half a HELLO header, a HELLO header and half
 *       its payload) must each be closed between SECS - 0.2 and SECS + 3 after
 *       connecting, while a good client gets a PING answered every 50 ms
 *   harden_client ADDR slow SECS      after HELLO: half a PUT (header and half
 *       the page), half a GET header, and a PUT trickled a byte every 250 ms
 *       must each be closed between SECS - 0.2 and SECS + 3 after their first
 *       byte; an idle connection (HELLO, POOL_OPEN, nothing) still answers a
 *       PUT and a GET 1.5 * SECS + 1 later
 *   harden_client ADDR cap N          N connections complete HELLO; one more
 *       is closed unanswered; once one of the N is closed a new one is served
 *   harden_client ADDR slowread N SECS  N connections that pipeline GETs of
 *       256 cached pages (1 MiB answers) and never read: each sends until the
 *       socket is full, then all are held SECS seconds (the test samples the
 *       server's memory meanwhile); prints how many the server closed
 *   harden_client ADDR good SECS ID   (soak) connections opened and closed in
 *       a loop: HELLO, POOL_OPEN, 32 PUTs and GETs with their bytes checked,
 *       close; a server that is away (restart) is retried every 100 ms.
 *       Fails only on wrong bytes or if nothing was ever served.
 *   harden_client ADDR abuse SECS     (soak) in a loop: bad magic, random
 *       bytes, stalled handshakes and half frames after HELLO (up to 16 of
 *       them held, each for up to 4 s: longer than the soak's timeouts); a
 *       server that is away is retried.
 *
 * ADDR is HOST:PORT or unix:PATH.  Exit 0 if every expectation held, else
 * the first failure is printed and the exit status is 1. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "raw_wire.h"
#include "remoca/wire.h"

#define PAGE REMOCA_PAGE_SIZE

static const char *addr;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* raw_dial without dying: -1 if the server is not there (a restart). */
static int try_dial(void)
{
    int fd;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", addr + 5);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        if (!colon) die("bad address %s", addr);
        snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
        if (getaddrinfo(host, colon + 1, &hints, &res)) die("cannot resolve %s", addr);
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1; /* a PUT is two sends: no Nagle wait for the ACK of the first */
        if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
        freeaddrinfo(res);
        if (ok) return fd;
    }
    if (fd >= 0) close(fd);
    return -1;
}

/* send without dying (the server may be gone); false on failure. */
static bool try_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static bool try_req(int fd, uint8_t op, uint32_t id, uint32_t pool, uint64_t key, uint32_t count,
                    const void *payload, uint32_t len)
{
    uint8_t h[REMOCA_HDR_SIZE];
    encode_req(h, op, id, pool, key, count, len, 0);
    return try_send(fd, h, sizeof h) && (!len || try_send(fd, payload, len));
}

/* Reads n bytes within timeout_ms in all; false on EOF, error or timeout. */
static bool recv_n(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    double end = now_s() + timeout_ms / 1000.0;
    while (n) {
        int left = (int)((end - now_s()) * 1000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) != 1) return false;
        ssize_t got = recv(fd, b, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        b += got;
        n -= (size_t)got;
    }
    return true;
}

static uint8_t resp_buf[REMOCA_MAX_BATCH * PAGE + 4096];

/* Reads one response into h and resp_buf; false if none came (closed,
 * timeout) or it is not a response to id. */
static bool try_resp(int fd, uint32_t id, struct remoca_hdr *h)
{
    uint8_t hb[REMOCA_HDR_SIZE];
    if (!recv_n(fd, hb, sizeof hb, 5000)) return false;
    remoca_hdr_decode(hb, h);
    if (h->magic != REMOCA_MAGIC_RESP || h->len > sizeof resp_buf) return false;
    if (!recv_n(fd, resp_buf, h->len, 5000)) return false;
    return h->id == id;
}

/* HELLO; true if answered OK. */
static bool try_hello(int fd, const char *name)
{
    uint8_t b[600];
    struct remoca_hello hb = {.name = name, .name_len = strlen(name)};
    size_t n = remoca_hello_encode(b, sizeof b, &hb);
    struct remoca_hdr h;
    return try_req(fd, REMOCA_OP_HELLO, 1, 0, 0, 0, b, (uint32_t)n) && try_resp(fd, 1, &h) &&
           h.flags == REMOCA_OK;
}

/* POOL_OPEN; the handle, 0 on failure. */
static uint32_t try_pool(int fd, const char *name)
{
    uint8_t b[600];
    struct remoca_pool_open pb = {.weight = 1, .name = name, .name_len = strlen(name)};
    size_t n = remoca_pool_open_encode(b, sizeof b, &pb);
    struct remoca_hdr h;
    if (!try_req(fd, REMOCA_OP_POOL_OPEN, 2, 0, 0, 0, b, (uint32_t)n) || !try_resp(fd, 2, &h) ||
        h.flags != REMOCA_OK)
        return 0;
    return h.pool;
}

static int dial_hello(const char *name)
{
    int fd = raw_dial(addr);
    if (!try_hello(fd, name)) die("%s: HELLO not answered", name);
    return fd;
}

/* True if the server closed fd (EOF or reset) within timeout_ms. */
static bool closed_within(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint8_t b[64];
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((end - now_s()) * 1000);
        if (left < 0) left = 0;
        if (poll(&pfd, 1, left) != 1) return false;
        ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
}

static void fill_page(uint8_t *p, uint64_t key, uint32_t salt)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 0x9e3779b97f4a7c15ull ^ (i + salt);
        memcpy(p + i, &v, 8);
    }
}

/* ---- stall: handshake timeout ------------------------------------------ */

static void stall(int n, double secs)
{
    int good = dial_hello("good");
    int *fds = calloc((size_t)n, sizeof *fds);
    double *born = calloc((size_t)n, sizeof *born), *gone = calloc((size_t)n, sizeof *gone);
    uint8_t hb[REMOCA_HDR_SIZE + 8];
    encode_req(hb, REMOCA_OP_HELLO, 1, 0, 0, 0, 64, 0);
    memset(hb + REMOCA_HDR_SIZE, 'x', 8);
    for (int i = 0; i < n; i++) {
        if ((fds[i] = try_dial()) < 0) die("connect %d: %s", i, strerror(errno));
        born[i] = now_s();
        if (i % 3 == 1) try_send(fds[i], hb, REMOCA_HDR_SIZE / 2); /* half a header */
        if (i % 3 == 2) try_send(fds[i], hb, sizeof hb);           /* header, 8 of 64 bytes */
    }
    int left = n, pings = 0;
    uint32_t id = 100;
    while (left) {
        if (now_s() > born[n - 1] + secs + 3) die("%d stalled connections still open", left);
        /* The good client is answered throughout. */
        send_req(good, REMOCA_OP_PING, ++id, 0, 0, 0, NULL, 0, 0);
        struct remoca_hdr h;
        if (!try_resp(good, id, &h) || h.flags != REMOCA_OK) die("PING %u not answered", id);
        pings++;
        for (int i = 0; i < n; i++) {
            if (gone[i] || !closed_within(fds[i], 0)) continue;
            gone[i] = now_s();
            left--;
            double t = gone[i] - born[i];
            if (t < secs - 0.2) die("stalled connection %d closed after %.2f s only", i, t);
        }
        sleep_ms(50);
    }
    double lo = 1e9, hi = 0;
    for (int i = 0; i < n; i++) {
        double t = gone[i] - born[i];
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
        close(fds[i]);
    }
    close(good);
    printf("stall: %d stalled handshakes closed after %.2f to %.2f s (timeout %.0f s), "
           "good client answered %d PINGs meanwhile\n",
           n, lo, hi, secs, pings);
}

/* ---- slow: frame timeout ----------------------------------------------- */

static void slow(double secs)
{
    enum { HALF_PUT, HALF_HDR, TRICKLE, N };
    static const char *const what[N] = {"half a PUT", "half a GET header", "a trickled PUT"};
    int fds[N];
    double born[N] = {0}, gone[N] = {0};
    uint8_t frame[REMOCA_HDR_SIZE + PAGE];
    int idle = dial_hello("idle");
    uint32_t idle_pool = try_pool(idle, "harden/idle");
    if (!idle_pool) die("idle: POOL_OPEN");
    for (int i = 0; i < N; i++) {
        fds[i] = dial_hello(what[i]);
        uint32_t p = try_pool(fds[i], "harden/slow");
        if (!p) die("%s: POOL_OPEN", what[i]);
        encode_req(frame, i == HALF_HDR ? REMOCA_OP_GET : REMOCA_OP_PUT, 7, p, 1, 1,
                   i == HALF_HDR ? 0 : PAGE, 0);
        memset(frame + REMOCA_HDR_SIZE, 0x5a, PAGE);
        size_t first = i == HALF_PUT ? REMOCA_HDR_SIZE + PAGE / 2 : i == HALF_HDR ? 10 : 1;
        if (!try_send(fds[i], frame, first)) die("%s: send", what[i]);
        born[i] = now_s();
    }
    size_t trickled = 1;
    int left = N;
    while (left) {
        if (now_s() > born[N - 1] + secs + 3) die("slow senders still open after %.0f s", secs + 3);
        for (int i = 0; i < N; i++) {
            if (gone[i] || !closed_within(fds[i], 0)) continue;
            gone[i] = now_s();
            left--;
            if (gone[i] - born[i] < secs - 0.2)
                die("%s: closed after %.2f s only", what[i], gone[i] - born[i]);
        }
        if (!gone[TRICKLE]) try_send(fds[TRICKLE], frame + trickled++, 1);
        sleep_ms(250);
    }
    for (int i = 0; i < N; i++) {
        printf("slow: %s closed after %.2f s (timeout %.0f s)\n", what[i], gone[i] - born[i], secs);
        close(fds[i]);
    }
    /* The idle connection was left alone: it still works. */
    double until = born[0] + 1.5 * secs + 1;
    while (now_s() < until) sleep_ms(100);
    if (closed_within(idle, 0)) die("the idle connection was closed");
    uint8_t page[PAGE], *got = resp_buf + remoca_bitmap_bytes(1);
    fill_page(page, 3, 1);
    struct remoca_hdr h;
    if (!try_req(idle, REMOCA_OP_PUT, 10, idle_pool, 3, 1, page, PAGE) || !try_resp(idle, 10, &h) ||
        h.flags != REMOCA_OK)
        die("idle connection: PUT not answered after %.1f s", now_s() - born[0]);
    if (!try_req(idle, REMOCA_OP_GET, 11, idle_pool, 3, 1, NULL, 0) || !try_resp(idle, 11, &h) ||
        h.flags != REMOCA_OK || h.len != remoca_bitmap_bytes(1) + PAGE || memcmp(got, page, PAGE))
        die("idle connection: GET wrong after %.1f s", now_s() - born[0]);
    close(idle);
    printf("slow: idle connection still served %.1f s later\n", until - born[0]);
}

/* ---- cap: connections per address -------------------------------------- */

static void cap(int n)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) fds[i] = dial_hello("cap");
    int extra = try_dial();
    if (extra >= 0 && !closed_within(extra, 3000))
        die("connection %d was not refused (--max-conns-per-addr %d)", n + 1, n);
    if (extra >= 0) close(extra);
    close(fds[0]); /* a slot comes free: the acceptor sees it once the worker closed it */
    int again = -1;
    for (int tries = 0; tries < 50 && again < 0; tries++) {
        sleep_ms(100);
        int fd = try_dial();
        if (fd >= 0 && try_hello(fd, "cap-again"))
            again = fd;
        else if (fd >= 0)
            close(fd);
    }
    if (again < 0) die("no connection served after one of %d closed", n);
    for (int i = 1; i < n; i++) close(fds[i]);
    close(again);
    printf("cap: %d connections served, connection %d refused, a new one served after a close\n", n,
           n + 1);
}

/* ---- slowread: a reader that never reads ------------------------------- */

static void slowread(int n, double secs)
{
    static uint8_t pages[REMOCA_MAX_BATCH * PAGE];
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = raw_dial(addr);
        if (!try_hello(fds[i], "slowread")) die("slowread %d: HELLO", i);
        uint32_t p = try_pool(fds[i], "harden/slowread");
        struct remoca_hdr h;
        if (!p || !try_req(fds[i], REMOCA_OP_PUT, 3, p, 0, REMOCA_MAX_BATCH, pages, sizeof pages) ||
            !try_resp(fds[i], 3, &h) || h.flags != REMOCA_OK)
            die("slowread %d: PUT of %u pages", i, REMOCA_MAX_BATCH);
        /* GETs until the socket stays full for 1 s (the server stopped reading). */
        uint8_t hb[REMOCA_HDR_SIZE];
        size_t off = sizeof hb;
        for (uint32_t id = 10;;) {
            if (off == sizeof hb) {
                encode_req(hb, REMOCA_OP_GET, id++, p, 0, REMOCA_MAX_BATCH, 0, 0);
                off = 0;
            }
            struct pollfd pfd = {.fd = fds[i], .events = POLLOUT};
            if (poll(&pfd, 1, 1000) != 1 || !(pfd.revents & POLLOUT)) break;
            ssize_t w = send(fds[i], hb + off, sizeof hb - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w <= 0) break;
            off += (size_t)w;
        }
    }
    printf("slowread: %d connections full, held %.0f s\n", n, secs);
    fflush(stdout);
    sleep_ms((unsigned)(secs * 1000));
    int closed = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
        /* A closed one shows EOF (or a reset) once its pending answers are read. */
        uint8_t b[65536];
        ssize_t r = 1;
        while (poll(&pfd, 1, 0) == 1 && (r = recv(fds[i], b, sizeof b, MSG_DONTWAIT)) > 0) {
        }
        if (r == 0 || (r < 0 && errno == ECONNRESET)) closed++;
        close(fds[i]);
    }
    printf("slowread: %d of %d closed by the server\n", closed, n);
}

/* ---- soak clients ------------------------------------------------------ */

static void good(double secs, unsigned who)
{
    double end = now_s() + secs;
    unsigned long conns = 0, ops = 0, misses = 0, lost = 0;
    uint8_t page[PAGE];
    char name[32];
    snprintf(name, sizeof name, "soak/%u", who);
    for (unsigned round = 0; now_s() < end; round++) {
        int fd = try_dial();
        uint32_t pool = 0;
        if (fd < 0 || !try_hello(fd, "soak") || !(pool = try_pool(fd, name))) {
            if (fd >= 0) close(fd);
            lost++;
            sleep_ms(100);
            continue;
        }
        conns++;
        for (uint32_t k = 0; k < 32; k++) {
            uint64_t key = (round * 32u + k) % 4096u;
            struct remoca_hdr h;
            fill_page(page, key, who);
            if (!try_req(fd, REMOCA_OP_PUT, 10 + 2 * k, pool, key, 1, page, PAGE) ||
                !try_resp(fd, 10 + 2 * k, &h))
                break; /* the server went away: reconnect */
            if (!try_req(fd, REMOCA_OP_GET, 11 + 2 * k, pool, key, 1, NULL, 0) ||
                !try_resp(fd, 11 + 2 * k, &h))
                break;
            ops += 2;
            if (h.flags != REMOCA_OK) die("GET %llu: status %u", (unsigned long long)key, h.flags);
            if (h.len == remoca_bitmap_bytes(1)) { /* evicted already: a miss */
                misses++;
                continue;
            }
            if (h.len != remoca_bitmap_bytes(1) + PAGE ||
                memcmp(resp_buf + remoca_bitmap_bytes(1), page, PAGE))
                die("GET %llu: wrong bytes", (unsigned long long)key);
        }
        close(fd);
        sleep_ms(20); /* a soak, not a benchmark: leave the CPUs some room */
    }
    if (!conns) die("good %u: never served", who);
    printf("good %u: %lu connections, %lu ops, %lu misses, %lu failed connects\n", who, conns, ops,
           misses, lost);
}

static void abuse(double secs)
{
    enum { HELD = 16 };
    int held[HELD];
    double since[HELD];
    for (int i = 0; i < HELD; i++) held[i] = -1;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    unsigned long rounds = 0, stalls = 0;
    double end = now_s() + secs;
    uint8_t junk[512];
    while (now_s() < end) {
        rounds++;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int slot = -1; /* a free place to hold a stall in, after ending the old ones */
        for (int i = 0; i < HELD; i++) {
            if (held[i] >= 0 && now_s() - since[i] > 4) {
                close(held[i]);
                held[i] = -1;
            }
            if (held[i] < 0) slot = i;
        }
        int fd = try_dial();
        if (fd < 0) {
            sleep_ms(100);
            continue;
        }
        bool hold = false;
        switch ((rng >> 33) % 4) {
        case 0: /* bad magic */
            memset(junk, 0, REMOCA_HDR_SIZE);
            try_send(fd, junk, REMOCA_HDR_SIZE);
            closed_within(fd, 1000);
            close(fd);
            break;
        case 1: /* random bytes */
            for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(rng >> (i % 56));
            try_send(fd, junk, sizeof junk);
            closed_within(fd, 1000);
            close(fd);
            break;
        case 2: /* a stalled handshake, held (or closed by the server) */ hold = true; break;
        default: /* half a PUT after HELLO, held like a stall */
            if (try_hello(fd, "abuse")) {
                uint8_t h[REMOCA_HDR_SIZE];
                encode_req(h, REMOCA_OP_PUT, 3, 1, 0, 1, PAGE, 0);
                try_send(fd, h, sizeof h);
                try_send(fd, junk, 100);
            }
            hold = true;
        }
        if (hold && slot < 0) {
            close(fd);
        } else if (hold) {
            held[slot] = fd;
            since[slot] = now_s();
            stalls++;
        }
        sleep_ms(20);
    }
    for (int i = 0; i < HELD; i++)
        if (held[i] >= 0) close(held[i]);
    printf("abuse: %lu rounds, %lu stalled handshakes or frames\n", rounds, stalls);
}

int main(int argc, char **argv)
{
    raw_prog = "harden_client";
    if (argc < 4) {
        fprintf(stderr, "usage: harden_client ADDR stall N SECS|slow SECS|cap N|good SECS ID|"
                        "abuse SECS\n");
        return 2;
    }
    addr = argv[1];
    const char *cmd = argv[2];
    if (!strcmp(cmd, "stall") && argc > 4)
        stall(atoi(argv[3]), atof(argv[4]));
    else if (!strcmp(cmd, "slow"))
        slow(atof(argv[3]));
    else if (!strcmp(cmd, "cap"))
        cap(atoi(argv[3]));
    else if (!strcmp(cmd, "slowread") && argc > 4)
        slowread(atoi(argv[3]), atof(argv[4]));
    else if (!strcmp(cmd, "good") && argc > 4)
        good(atof(argv[3]), (unsigned)atoi(argv[4]));
    else if (!strcmp(cmd, "abuse"))
        abuse(atof(argv[3]));
    else
        die("unknown command %s", cmd);
    return 0;
}
