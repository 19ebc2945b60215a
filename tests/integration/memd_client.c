/* SPDX-License-Identifier: BSD-3-Clause */
/* memd_client: a raw-socket client for remoca-memd's integration tests.
 *
 *   memd_client ADDR check            a well-behaved client: HELLO, POOL_OPEN,
 *                                     PUT, GET and compare bytes
 *   memd_client ADDR badinput         bad input of every kind, each on its own
 *                                     connection, with a well-behaved client
 *                                     checked (bytes compared) after each one
 *   memd_client ADDR idle N           N idle connections (some mid-HELLO, some
 *                                     mid-frame), then a good client, then STATS
 *   memd_client ADDR hog N            N connections each stalled in the middle of
 *                                     a 1 MiB PUT: the server must close those
 *                                     beyond --max-buffers, and keep serving
 *   memd_client ADDR fill MB          PUT MB MiB of distinct pages into pool "fill"
 *   memd_client ADDR ops              a known set of operations on pool "stats/p"
 *                                     whose counts the test reads back in STATS
 *   memd_client ADDR stress N         N threads, one connection each, PUT / GET /
 *                                     TAKE / DELETE the same keys of one small
 *                                     pool under eviction; every page read back
 *                                     must be whole (one writer's bytes, right key)
 *   memd_client ADDR auth SECRET      HMAC-SHA256 challenge-response against a
 *                                     server started with --secret: wrong and
 *                                     replayed answers fail, the right one works,
 *                                     3 failures close the connection
 *
 * ADDR is HOST:PORT or unix:PATH.  Exit 0 if every expectation held; otherwise
 * the first failure is printed and the exit status is 1.  Every wait is
 * bounded (10 s). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "raw_wire.h"
#include "remoca/wire.h"

#define PAGE REMOCA_PAGE_SIZE
#define TIMEOUT_MS 10000

static const char *addr;

static void set_send_timeout(int fd)
{
    struct timeval tv = {.tv_sec = TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A connection to addr whose sends, too, are bounded. */
static int dial(void)
{
    int fd = raw_dial(addr);
    set_send_timeout(fd);
    return fd;
}

/* Reads n bytes; returns 0, or -1 on EOF/reset (die on timeout). */
static int recv_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, TIMEOUT_MS);
        if (r == 0) die("timed out waiting for the server");
        ssize_t got = recv(fd, b, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        b += got;
        n -= (size_t)got;
    }
    return 0;
}

struct resp {
    struct remoca_hdr h;
    uint8_t *payload;
};

/* Reads one response; returns -1 if the connection ended instead. */
static int read_resp(int fd, struct resp *r)
{
    uint8_t h[REMOCA_HDR_SIZE];
    if (recv_all(fd, h, sizeof h) < 0) return -1;
    remoca_hdr_decode(h, &r->h);
    if (r->h.magic != REMOCA_MAGIC_RESP) die("response with bad magic 0x%08x", r->h.magic);
    if (r->h.len > (1u << 21)) die("response length %u absurd", r->h.len);
    r->payload = malloc(r->h.len + 1);
    if (recv_all(fd, r->payload, r->h.len) < 0) die("short response payload");
    r->payload[r->h.len] = 0;
    return 0;
}

/* Expects a response to `id` with status st; returns it (payload to free). */
static struct resp expect(int fd, uint32_t id, uint16_t st, const char *what)
{
    struct resp r;
    if (read_resp(fd, &r) < 0)
        die("%s: connection closed, expected %s", what, remoca_status_name(st));
    if (r.h.id != id) die("%s: response id %u, expected %u", what, r.h.id, id);
    if (r.h.flags != st)
        die("%s: status %s (%s), expected %s", what, remoca_status_name(r.h.flags),
            (char *)r.payload, remoca_status_name(st));
    return r;
}

static void expect_closed(int fd, const char *what)
{
    struct resp r;
    while (read_resp(fd, &r) == 0) free(r.payload); /* error replies may come first */
    (void)what;
}

static void hello(int fd, const char *name)
{
    uint8_t b[600];
    struct remoca_hello hb = {.name = name, .name_len = strlen(name)};
    size_t n = remoca_hello_encode(b, sizeof b, &hb);
    send_req(fd, REMOCA_OP_HELLO, 1, 0, 0, 0, b, (uint32_t)n, 0);
    free(expect(fd, 1, REMOCA_OK, "HELLO").payload);
}

static uint32_t pool_open(int fd, const char *name, uint64_t min, uint64_t max, uint32_t w)
{
    uint8_t b[600];
    struct remoca_pool_open pb = {
        .min_bytes = min, .max_bytes = max, .weight = w, .name = name, .name_len = strlen(name)};
    size_t n = remoca_pool_open_encode(b, sizeof b, &pb);
    send_req(fd, REMOCA_OP_POOL_OPEN, 2, 0, 0, 0, b, (uint32_t)n, 0);
    struct resp r = expect(fd, 2, REMOCA_OK, "POOL_OPEN");
    free(r.payload);
    if (r.h.pool == 0) die("POOL_OPEN returned handle 0");
    return r.h.pool;
}

static void fill_page(uint8_t *p, uint64_t key, uint32_t salt)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = (key * 0x9E3779B97F4A7C15ull) ^ (i * 31) ^ salt;
        memcpy(p + i, &v, 8);
    }
}

/* The well-behaved client: one connection kept open across the scenarios. */
static int good_fd = -1;
static uint32_t good_pool, good_round;

static void good_check(const char *after)
{
    if (good_fd < 0) {
        good_fd = dial();
        hello(good_fd, "good-client");
        good_pool = pool_open(good_fd, "good/pool", 0, 0, 1);
    }
    good_round++;
    static uint8_t pages[8 * PAGE], want[8 * PAGE];
    uint64_t key = 1000 + good_round * 16; /* rounds never overlap */
    for (int i = 0; i < 8; i++) fill_page(pages + i * PAGE, key + i, good_round);
    memcpy(want, pages, sizeof want);
    send_req(good_fd, REMOCA_OP_PUT, 10, good_pool, key, 8, pages, sizeof pages, 0);
    send_req(good_fd, REMOCA_OP_GET, 11, good_pool, key - 2, 12, NULL, 0,
             0); /* 2 misses each side */
    send_req(good_fd, REMOCA_OP_PING, 12, 0, 0, 0, NULL, 0, 0);
    free(expect(good_fd, 10, REMOCA_OK, "good PUT").payload);
    struct resp r = expect(good_fd, 11, REMOCA_OK, "good GET");
    uint32_t bm = remoca_bitmap_bytes(12);
    if (r.h.len != bm + 8 * PAGE) die("after %s: good GET returned %u bytes", after, r.h.len);
    if (r.payload[0] != 0xfc || r.payload[1] != 0x03)
        die("after %s: good GET bitmap %02x %02x", after, r.payload[0], r.payload[1]);
    if (memcmp(r.payload + bm, want, sizeof want))
        die("after %s: good GET returned wrong bytes", after);
    free(r.payload);
    free(expect(good_fd, 12, REMOCA_OK, "good PING").payload);
}

static uint64_t rng = 0x1234567;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void badinput(void)
{
    good_check("start");

    /* Random bytes: the server answers errors and/or closes; never crashes. */
    for (int t = 0; t < 20; t++) {
        int fd = dial();
        if (t % 2) hello(fd, "random");
        uint8_t junk[3000];
        size_t n = 1 + rnd() % sizeof junk;
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)rnd();
        if (t % 4 == 3) remoca_put_le32(junk, REMOCA_MAGIC_REQ); /* a plausible start */
        send_all(fd, junk, n);
        shutdown(fd, SHUT_WR);
        expect_closed(fd, "random bytes");
        close(fd);
    }
    good_check("random bytes");

    /* Bad magic: one E_PROTO reply, then the connection is closed. */
    {
        int fd = dial();
        uint8_t z[REMOCA_HDR_SIZE] = {0};
        send_all(fd, z, sizeof z);
        struct resp r;
        if (read_resp(fd, &r) < 0 || r.h.flags != REMOCA_E_PROTO) die("bad magic: no E_PROTO");
        free(r.payload);
        if (read_resp(fd, &r) == 0) die("bad magic: connection not closed");
        close(fd);
    }
    good_check("bad magic");

    /* Oversized length: E_SIZE, then closed (the payload cannot be skipped). */
    {
        int fd = dial();
        hello(fd, "oversized");
        send_req(fd, REMOCA_OP_PUT, 5, 1, 0, 257, NULL, 0, 0); /* header only... */
        free(expect(fd, 5, REMOCA_E_RANGE, "PUT count 257 with len 0").payload);
        uint8_t h[REMOCA_HDR_SIZE];
        struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ,
                                .version = REMOCA_VERSION,
                                .op = REMOCA_OP_PUT,
                                .id = 6,
                                .count = 1,
                                .len = REMOCA_MAX_REQ_PAYLOAD + 1};
        remoca_hdr_encode(h, &hd);
        send_all(fd, h, sizeof h);
        free(expect(fd, 6, REMOCA_E_SIZE, "oversized length").payload);
        struct resp r;
        if (read_resp(fd, &r) == 0) die("oversized length: connection not closed");
        close(fd);
        fd = dial();
        hd.len = 0xffffffffu;
        remoca_hdr_encode(h, &hd);
        send_all(fd, h, sizeof h);
        expect_closed(fd, "4 GiB length");
        close(fd);
    }
    good_check("oversized length");

    /* Errors that keep the stream in sync: reply, skip, carry on. */
    {
        int fd = dial();
        send_req(fd, REMOCA_OP_GET, 20, 1, 0, 1, NULL, 0, 0);
        free(expect(fd, 20, REMOCA_E_STATE, "GET before HELLO").payload);
        uint8_t bad_hello[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
        send_req(fd, REMOCA_OP_HELLO, 21, 0, 0, 0, bad_hello, sizeof bad_hello, 0);
        free(expect(fd, 21, REMOCA_E_PROTO, "malformed HELLO body").payload);
        hello(fd, "in-sync-errors");
        send_req(fd, 99, 22, 0, 0, 0, "abc", 3, 0);
        free(expect(fd, 22, REMOCA_E_OP, "unknown opcode with payload").payload);
        send_req(fd, 0, 23, 0, 0, 0, NULL, 0, 0);
        free(expect(fd, 23, REMOCA_E_OP, "opcode 0").payload);
        send_req(fd, REMOCA_OP_GET, 24, 12345, 0, 1, NULL, 0, 0);
        free(expect(fd, 24, REMOCA_E_POOL, "invalid pool handle").payload);
        send_req(fd, REMOCA_OP_GET, 25, 0, 0, 1, NULL, 0, 0);
        free(expect(fd, 25, REMOCA_E_POOL, "pool handle 0").payload);
        /* the handle of another connection's pool is not valid here */
        send_req(fd, REMOCA_OP_POOL_RESET, 26, good_pool + 1, 0, 0, NULL, 0, 0);
        free(expect(fd, 26, REMOCA_E_POOL, "someone else's handle").payload);
        static uint8_t pages[2 * PAGE];
        send_req(fd, REMOCA_OP_PUT, 27, 1, 0, 1, pages, 2 * PAGE, 0);
        free(expect(fd, 27, REMOCA_E_SIZE, "PUT len != count*4096").payload);
        send_req(fd, REMOCA_OP_GET, 28, 1, 0, 0, NULL, 0, 0);
        free(expect(fd, 28, REMOCA_E_RANGE, "GET count 0").payload);
        send_req(fd, REMOCA_OP_GET, 29, 1, UINT64_MAX, 2, NULL, 0, 0);
        free(expect(fd, 29, REMOCA_E_RANGE, "GET wrapping range").payload);
        send_req(fd, REMOCA_OP_PING, 30, 0, 0, 0, NULL, 0, 0x8000);
        free(expect(fd, 30, REMOCA_E_PROTO, "unknown flags").payload);
        uint8_t h[REMOCA_HDR_SIZE];
        struct remoca_hdr hd = {
            .magic = REMOCA_MAGIC_REQ, .version = 9, .op = REMOCA_OP_PING, .id = 31};
        remoca_hdr_encode(h, &hd);
        send_all(fd, h, sizeof h);
        free(expect(fd, 31, REMOCA_E_VERSION, "version 9").payload);
        send_req(fd, REMOCA_OP_HELLO, 32, 0, 0, 0, "\x01\x00x\x00\x00", 5, 0);
        free(expect(fd, 32, REMOCA_E_STATE, "second HELLO").payload);
        /* still in sync: a real request works, and its own pool is separate */
        uint32_t p = pool_open(fd, "bad/pool", 0, 0, 1);
        send_req(fd, REMOCA_OP_PUT, 33, p, 1000 + good_round * 16, 1, pages, PAGE, 0);
        free(expect(fd, 33, REMOCA_OK, "PUT after errors").payload);
        /* huge deletes and a reset of its own pool never touch the good pool */
        send_req(fd, REMOCA_OP_DELETE_RANGE, 34, p, 0, 0xffffffffu, NULL, 0, 0);
        free(expect(fd, 34, REMOCA_OK, "DELETE_RANGE 2^32-1 keys").payload);
        send_req(fd, REMOCA_OP_POOL_RESET, 35, p, 0, 0, NULL, 0, 0);
        free(expect(fd, 35, REMOCA_OK, "POOL_RESET").payload);
        send_req(fd, REMOCA_OP_PING, 36, 0, 0, 0, NULL, 0, 0);
        free(expect(fd, 36, REMOCA_OK, "PING").payload);
        close(fd);
    }
    good_check("in-sync errors");

    /* Disconnects in the middle of a header and of a payload. */
    for (int t = 0; t < 4; t++) {
        int fd = dial();
        hello(fd, "quitter");
        uint32_t p = pool_open(fd, "quitter/pool", 0, 0, 1);
        uint8_t h[REMOCA_HDR_SIZE];
        struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ,
                                .version = REMOCA_VERSION,
                                .op = REMOCA_OP_PUT,
                                .id = 40,
                                .pool = p,
                                .key = 5,
                                .count = 64,
                                .len = 64 * PAGE};
        remoca_hdr_encode(h, &hd);
        static uint8_t part[40 * PAGE];
        if (t == 0)
            send_all(fd, h, 13); /* mid-header */
        else
            send_all(fd, h, sizeof h);
        if (t == 1) send_all(fd, part, 100);         /* a little of the payload */
        if (t == 2) send_all(fd, part, sizeof part); /* most of it */
        close(fd);
    }
    good_check("disconnect mid-frame");

    /* Pipelined mix on one connection: responses in order, by id. */
    {
        int fd = dial();
        hello(fd, "pipeline");
        uint32_t p = pool_open(fd, "pipe/pool", 0, 0, 1);
        static uint8_t pg[PAGE];
        /* 20 rounds of 10 PUT+GET+DELETE triples sent back to back, then read:
         * a client that never reads would deadlock against the server's
         * backpressure, as with any pipelining protocol. */
        for (uint32_t b = 0; b < 200; b += 10) {
            for (uint32_t i = b; i < b + 10; i++) {
                fill_page(pg, i, 77);
                send_req(fd, REMOCA_OP_PUT, 100 + 3 * i, p, i, 1, pg, PAGE, 0);
                send_req(fd, REMOCA_OP_GET, 101 + 3 * i, p, i, 1, NULL, 0, 0);
                send_req(fd, REMOCA_OP_DELETE, 102 + 3 * i, p, i, 1, NULL, 0, 0);
            }
            for (uint32_t i = b; i < b + 10; i++) {
                free(expect(fd, 100 + 3 * i, REMOCA_OK, "pipelined PUT").payload);
                struct resp r = expect(fd, 101 + 3 * i, REMOCA_OK, "pipelined GET");
                fill_page(pg, i, 77);
                if (r.h.len != 8 + PAGE || r.payload[0] != 1 || memcmp(r.payload + 8, pg, PAGE))
                    die("pipelined GET %u: PUT not visible or wrong bytes", i);
                free(r.payload);
                free(expect(fd, 102 + 3 * i, REMOCA_OK, "pipelined DELETE").payload);
            }
        }
        close(fd);
    }
    good_check("pipelined mix");
    printf("badinput: all scenarios passed, good client verified %u times\n", good_round);
}

static void idle(int n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int *fds = malloc(n * sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = dial();
        if (i % 4 == 1) hello(fds[i], "idle");
        if (i % 4 == 2) send_all(fds[i], "RMCQ\x01", 5); /* stalls mid-header */
        if (i % 4 == 3) {                                /* stalls mid-payload */
            uint8_t b[REMOCA_HDR_SIZE + 10];
            struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ,
                                    .version = REMOCA_VERSION,
                                    .op = REMOCA_OP_HELLO,
                                    .id = 1,
                                    .len = 100};
            remoca_hdr_encode(b, &hd);
            memset(b + REMOCA_HDR_SIZE, 'x', 10);
            send_all(fds[i], b, sizeof b);
        }
    }
    good_check("idle connections");
    /* The server counts them all (plus the good client). */
    send_req(good_fd, REMOCA_OP_STATS, 50, 0, 0, 0, NULL, 0, 0);
    struct resp r = expect(good_fd, 50, REMOCA_OK, "STATS");
    const char *c = strstr((char *)r.payload, " connections=");
    if (!c || strtoul(c + 13, NULL, 10) < (unsigned long)n + 1)
        die("STATS says %s connections, expected >= %d", c ? c + 13 : "?", n + 1);
    free(r.payload);
    for (int i = 0; i < n; i++) close(fds[i]);
    free(fds);
    good_check("closing idle connections");
    printf("idle: %d idle connections held, good client fine\n", n);
}

static void hog(int n)
{
    int *fds = malloc(n * sizeof *fds);
    static uint8_t part[512 * 1024];
    for (int i = 0; i < n; i++) {
        fds[i] = dial();
        hello(fds[i], "hog");
        uint32_t p = pool_open(fds[i], "hog/pool", 0, 0, 1);
        uint8_t h[REMOCA_HDR_SIZE];
        struct remoca_hdr hd = {.magic = REMOCA_MAGIC_REQ,
                                .version = REMOCA_VERSION,
                                .op = REMOCA_OP_PUT,
                                .id = 9,
                                .pool = p,
                                .count = REMOCA_MAX_BATCH,
                                .len = REMOCA_MAX_REQ_PAYLOAD};
        remoca_hdr_encode(h, &hd);
        send_all(fds[i], h, sizeof h);
        /* The server may close this connection while it is being sent
         * (that is the point): a failed send is expected here. */
        size_t off = 0;
        while (off < sizeof part) {
            ssize_t w = send(fds[i], part + off, sizeof part - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
    }
    good_check("connections hogging buffers");
    int closed = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
        uint8_t b;
        if (poll(&pfd, 1, 2000) == 1 && recv(fds[i], &b, 1, MSG_DONTWAIT) <= 0) closed++;
        close(fds[i]);
    }
    free(fds);
    if (closed == 0) die("hog: no connection was closed for exceeding --max-buffers");
    if (closed == n) die("hog: every connection was closed");
    good_check("hogs gone");
    printf("hog: %d of %d stalled 1 MiB frames closed by the buffer limit\n", closed, n);
}

static void fill(unsigned mb)
{
    int fd = dial();
    hello(fd, "filler");
    uint32_t p = pool_open(fd, "fill", 0, 0, 1);
    static uint8_t batch[REMOCA_MAX_BATCH * PAGE];
    uint64_t pages = (uint64_t)mb * 256, key = 0;
    uint32_t id = 100, inflight = 0;
    while (key < pages) {
        for (uint32_t i = 0; i < REMOCA_MAX_BATCH; i++) fill_page(batch + i * PAGE, key + i, 5);
        send_req(fd, REMOCA_OP_PUT, id++, p, key, REMOCA_MAX_BATCH, batch, sizeof batch, 0);
        key += REMOCA_MAX_BATCH;
        if (++inflight == 4) {
            free(expect(fd, id - 4, REMOCA_OK, "fill PUT").payload);
            inflight--;
        }
    }
    while (inflight) free(expect(fd, id - inflight--, REMOCA_OK, "fill PUT").payload);
    /* The newest pages must read back intact. */
    send_req(fd, REMOCA_OP_GET, 1, p, pages - 256, 256, NULL, 0, 0);
    struct resp r = expect(fd, 1, REMOCA_OK, "fill GET");
    uint32_t bm = remoca_bitmap_bytes(256);
    uint32_t hits = (r.h.len - bm) / PAGE;
    uint8_t want[PAGE];
    for (uint32_t i = 0, h = 0; i < 256; i++) {
        if (!(r.payload[i / 8] >> (i % 8) & 1)) continue;
        fill_page(want, pages - 256 + i, 5);
        if (memcmp(r.payload + bm + (size_t)h++ * PAGE, want, PAGE)) die("fill: wrong bytes");
    }
    if (hits < 128) die("fill: only %u of the last 256 pages present", hits);
    free(r.payload);
    /* The first pages were evicted if MB exceeds the budget: ask for them so
     * that the server counts misses (and ghost hits). */
    send_req(fd, REMOCA_OP_GET, 2, p, 0, 256, NULL, 0, 0);
    free(expect(fd, 2, REMOCA_OK, "fill GET of old keys").payload);
    close(fd);
    printf("fill: %u MiB put\n", mb);
}

static void ops(void)
{
    int fd = dial();
    hello(fd, "ops");
    uint32_t p = pool_open(fd, "stats/p", 0, 0, 1);
    static uint8_t pages[10 * PAGE];
    for (int i = 0; i < 10; i++) fill_page(pages + i * PAGE, i, 9);
    send_req(fd, REMOCA_OP_PUT, 3, p, 0, 10, pages, sizeof pages, 0); /* puts=10 */
    free(expect(fd, 3, REMOCA_OK, "PUT").payload);
    send_req(fd, REMOCA_OP_GET, 4, p, 0, 15, NULL, 0, 0); /* 10 hits, 5 misses */
    struct resp r = expect(fd, 4, REMOCA_OK, "GET");
    if (r.h.len != remoca_bitmap_bytes(15) + 10 * PAGE ||
        memcmp(r.payload + remoca_bitmap_bytes(15), pages, sizeof pages))
        die("GET returned wrong bytes");
    free(r.payload);
    send_req(fd, REMOCA_OP_TAKE, 5, p, 0, 2, NULL, 0, 0); /* takes=2, hits 12 */
    free(expect(fd, 5, REMOCA_OK, "TAKE").payload);
    send_req(fd, REMOCA_OP_DELETE, 6, p, 2, 3, NULL, 0, 0); /* deletes=3 */
    free(expect(fd, 6, REMOCA_OK, "DELETE").payload);
    send_req(fd, REMOCA_OP_GET, 7, 77, 0, 1, NULL, 0, 0); /* an error */
    free(expect(fd, 7, REMOCA_E_POOL, "bad handle").payload);
    close(fd);
    printf("ops: done\n");
}

/* Sends HELLO with cred; expects E_AUTH "challenge HEX"; returns the nonce. */
static void hello_challenged(int fd, const char *name, const uint8_t *cred, size_t cred_len,
                             uint32_t id, uint8_t nonce[16])
{
    uint8_t b[600];
    struct remoca_hello hb = {
        .name = name, .name_len = strlen(name), .cred = cred, .cred_len = cred_len};
    size_t n = remoca_hello_encode(b, sizeof b, &hb);
    send_req(fd, REMOCA_OP_HELLO, id, 0, 0, 0, b, (uint32_t)n, 0);
    struct resp r = expect(fd, id, REMOCA_E_AUTH, "HELLO with a wrong credential");
    const char *c = (const char *)r.payload;
    if (r.h.len != 10 + 32 || strncmp(c, "challenge ", 10)) die("no challenge: '%s'", c);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(c + 10 + 2 * i, "%2x", &v) != 1) die("bad challenge '%s'", c);
        nonce[i] = (uint8_t)v;
    }
    free(r.payload);
}

static void mac(const char *secret, const uint8_t nonce[16], const char *name, uint8_t out[32])
{
    uint8_t msg[16 + 256];
    memcpy(msg, nonce, 16);
    memcpy(msg + 16, name, strlen(name));
    unsigned len = 32;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, 16 + strlen(name), out, &len);
}

static void auth(const char *secret)
{
    int fd = dial();
    uint8_t n1[16], n2[16], n3[16], m[32];
    send_req(fd, REMOCA_OP_PING, 60, 0, 0, 0, NULL, 0, 0);
    free(expect(fd, 60, REMOCA_E_STATE, "PING before authentication").payload);
    hello_challenged(fd, "authed", NULL, 0, 61, n1);
    mac("not the secret", n1, "authed", m);
    hello_challenged(fd, "authed", m, 32, 62, n2); /* wrong secret: new challenge */
    if (!memcmp(n1, n2, 16)) die("the server reused a nonce");
    mac(secret, n1, "authed", m); /* right secret, old nonce: replay */
    hello_challenged(fd, "authed", m, 32, 63, n3);
    send_req(fd, REMOCA_OP_GET, 64, 1, 0, 1, NULL, 0, 0);
    free(expect(fd, 64, REMOCA_E_STATE, "GET while unauthenticated").payload);
    mac(secret, n3, "authed", m);
    uint8_t b[600];
    struct remoca_hello hb = {.name = "authed", .name_len = 6, .cred = m, .cred_len = 32};
    size_t n = remoca_hello_encode(b, sizeof b, &hb);
    send_req(fd, REMOCA_OP_HELLO, 65, 0, 0, 0, b, (uint32_t)n, 0);
    free(expect(fd, 65, REMOCA_OK, "HELLO with the right answer").payload);
    uint32_t p = pool_open(fd, "auth/pool", 0, 0, 1);
    static uint8_t pg[PAGE];
    fill_page(pg, 3, 3);
    send_req(fd, REMOCA_OP_PUT, 66, p, 3, 1, pg, PAGE, 0);
    free(expect(fd, 66, REMOCA_OK, "PUT after authentication").payload);
    send_req(fd, REMOCA_OP_GET, 67, p, 3, 1, NULL, 0, 0);
    struct resp r = expect(fd, 67, REMOCA_OK, "GET after authentication");
    if (r.h.len != 8 + PAGE || memcmp(r.payload + 8, pg, PAGE)) die("auth: wrong bytes");
    free(r.payload);
    close(fd);

    /* Three wrong answers: the connection is closed. */
    fd = dial();
    hello_challenged(fd, "guesser", NULL, 0, 70, n1);
    for (uint32_t i = 0; i < 2; i++) {
        memset(m, (int)i, sizeof m);
        hello_challenged(fd, "guesser", m, 32, 71 + i, n1);
    }
    struct remoca_hello hg = {.name = "guesser", .name_len = 7, .cred = m, .cred_len = 32};
    n = remoca_hello_encode(b, sizeof b, &hg);
    send_req(fd, REMOCA_OP_HELLO, 80, 0, 0, 0, b, (uint32_t)n, 0);
    free(expect(fd, 80, REMOCA_E_AUTH, "third wrong answer").payload);
    if (read_resp(fd, &r) == 0) die("connection not closed after 3 failures");
    close(fd);
    printf("auth: challenge-response verified\n");
}

/* A stress page: every 8-byte word is (key << 24 | writer << 16 | seq). */
static void stress_page(uint8_t *p, uint64_t key, uint32_t writer, uint32_t seq)
{
    uint64_t v = (key << 24) | ((uint64_t)(writer & 0xff) << 16) | (seq & 0xffff);
    for (size_t i = 0; i < PAGE; i += 8) memcpy(p + i, &v, 8);
}

static void stress_check(const uint8_t *p, uint64_t key)
{
    uint64_t v0;
    memcpy(&v0, p, 8);
    if (v0 >> 24 != key)
        die("stress: key %llu returned the page of key %llu", (unsigned long long)key,
            (unsigned long long)(v0 >> 24));
    for (size_t i = 8; i < PAGE; i += 8)
        if (memcmp(p + i, &v0, 8)) die("stress: torn page for key %llu", (unsigned long long)key);
}

struct stress_arg {
    uint32_t writer;
    uint64_t hits, ops;
};

static void *stress_thread(void *arg)
{
    struct stress_arg *a = arg;
    int fd = dial();
    hello(fd, "stress");
    uint32_t p = pool_open(fd, "stress/pool", 0, 0, 1);
    static __thread uint8_t batch[8 * PAGE];
    uint64_t r = 0x9E3779B97F4A7C15ull * (a->writer + 1);
    for (uint32_t seq = 0; seq < 3000; seq++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint64_t key = r % 4096; /* 16 MiB of keys in an 8 MiB server: evictions */
        uint32_t n = 1 + (uint32_t)(r >> 40) % 8;
        uint32_t id = seq * 4;
        switch ((r >> 32) % 4) {
        case 0:
        case 1: {
            for (uint32_t i = 0; i < n; i++) stress_page(batch + i * PAGE, key + i, a->writer, seq);
            send_req(fd, REMOCA_OP_PUT, id, p, key, n, batch, n * PAGE, 0);
            free(expect(fd, id, REMOCA_OK, "stress PUT").payload);
            break;
        }
        case 2: {
            bool take = (r >> 50) & 1;
            send_req(fd, take ? REMOCA_OP_TAKE : REMOCA_OP_GET, id, p, key, n, NULL, 0, 0);
            struct resp rs = expect(fd, id, REMOCA_OK, "stress GET");
            uint32_t bm = remoca_bitmap_bytes(n), h = 0;
            for (uint32_t i = 0; i < n; i++)
                if (rs.payload[i / 8] >> (i % 8) & 1)
                    stress_check(rs.payload + bm + (size_t)h++ * PAGE, key + i);
            if (rs.h.len != bm + h * PAGE) die("stress: GET length and bitmap disagree");
            a->hits += h;
            free(rs.payload);
            break;
        }
        default:
            send_req(fd, REMOCA_OP_DELETE, id, p, key, n, NULL, 0, 0);
            free(expect(fd, id, REMOCA_OK, "stress DELETE").payload);
            break;
        }
        a->ops++;
    }
    close(fd);
    return NULL;
}

static void stress(int n)
{
    pthread_t th[64];
    struct stress_arg args[64];
    if (n < 1 || n > 64) die("stress: 1..64 threads");
    for (int i = 0; i < n; i++) {
        args[i] = (struct stress_arg){.writer = (uint32_t)i};
        pthread_create(&th[i], NULL, stress_thread, &args[i]);
    }
    uint64_t ops = 0, hits = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ops += args[i].ops;
        hits += args[i].hits;
    }
    if (hits == 0) die("stress: no hit at all");
    printf("stress: %d threads, %llu requests, %llu pages read back whole\n", n,
           (unsigned long long)ops, (unsigned long long)hits);
}

int main(int argc, char **argv)
{
    raw_prog = "memd_client";
    if (argc < 3) {
        fprintf(stderr, "usage: memd_client ADDR check|badinput|idle N|hog N|fill MB|ops|auth "
                        "SECRET|stress N\n");
        return 2;
    }
    addr = argv[1];
    const char *cmd = argv[2];
    if (!strcmp(cmd, "check"))
        good_check("nothing");
    else if (!strcmp(cmd, "badinput"))
        badinput();
    else if (!strcmp(cmd, "idle") && argc > 3)
        idle(atoi(argv[3]));
    else if (!strcmp(cmd, "fill") && argc > 3)
        fill((unsigned)atoi(argv[3]));
    else if (!strcmp(cmd, "hog") && argc > 3)
        hog(atoi(argv[3]));
    else if (!strcmp(cmd, "auth") && argc > 3)
        auth(argv[3]);
    else if (!strcmp(cmd, "stress") && argc > 3)
        stress(atoi(argv[3]));
    else if (!strcmp(cmd, "ops"))
        ops();
    else
        die("unknown command %s", cmd);
    return 0;
}
