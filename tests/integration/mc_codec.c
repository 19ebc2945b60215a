/* SPDX-License-Identifier: BSD-3-Clause */
/* mc_codec: drives a real memcached with the meta protocol codec
 * (lib/wire/mc.c) over one plain unix-socket connection, and checks what the
 * client will rely on (docs/memcached.md):
 *
 *   mc_codec SOCKET semantics    pipelined gets return exactly the hits (misses
 *                                are silent, MN ends the batch); put then get
 *                                gives the bytes; delete then get misses, also
 *                                pipelined in one write; a take returns the page
 *                                and the next take misses; a put between a
 *                                take's mg and its md survives (CAS); a new
 *                                epoch addresses none of the old pages; ma
 *                                counts (the codec's number values)
 *   mc_codec SOCKET evict PAGES  puts PAGES distinct pages (more than memcached's
 *                                -m): reading them all back gives only misses
 *                                and byte-exact hits, some of each
 *
 * Exit 0 if every expectation held; otherwise the first failure is printed and
 * the exit status is 1.  Every wait is bounded (10 s). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remoca/mc.h"

#define PAGE REMOCA_MC_VALUE_SIZE
#define WAIT_MS 10000

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mc_codec: FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define CHECK(cond, ...)               \
    do {                               \
        if (!(cond)) die(__VA_ARGS__); \
    } while (0)

/* ---- requests: a growing buffer of command lines and values ------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static char *reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->len < n) cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p, "out of memory");
        b->cap = cap;
    }
    return b->p + b->len;
}

static void add_line(struct buf *b, size_t n)
{
    CHECK(n > 0, "a builder refused its command");
    b->len += n;
}

static void add_put(struct buf *b, const struct remoca_mc_ns *ns, uint64_t block, const void *page)
{
    char key[REMOCA_MC_KEY_LEN];
    struct remoca_mc_cmd c = {.key = key, .flags = REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE};
    c.key_len = remoca_mc_key(key, sizeof key, ns, block);
    c.opaque = (uint32_t)block;
    add_line(b, remoca_mc_ms(reserve(b, REMOCA_MC_CMD_MAX), REMOCA_MC_CMD_MAX, &c, PAGE));
    memcpy(reserve(b, PAGE + 2), page, PAGE);
    memcpy(b->p + b->len + PAGE, "\r\n", 2);
    b->len += PAGE + 2;
}

static void add_md(struct buf *b, const struct remoca_mc_ns *ns, uint64_t block, unsigned flags,
                   uint32_t opaque, uint64_t cas)
{
    char key[REMOCA_MC_KEY_LEN];
    struct remoca_mc_cmd c = {.key = key, .flags = flags, .opaque = opaque, .cas = cas};
    c.key_len = remoca_mc_key(key, sizeof key, ns, block);
    add_line(b, remoca_mc_md(reserve(b, REMOCA_MC_CMD_MAX), REMOCA_MC_CMD_MAX, &c));
}

static void add_get(struct buf *b, const struct remoca_mc_ns *ns, uint64_t block, uint32_t count,
                    bool take, uint32_t opaque0)
{
    size_t cap = REMOCA_MC_BATCH_BYTES(count);
    add_line(b, remoca_mc_get_batch(reserve(b, cap), cap, ns, block, count, take, opaque0));
}

static void add_mn(struct buf *b) { add_line(b, remoca_mc_mn(reserve(b, 4), 4)); }

/* ---- responses ----------------------------------------------------------- */

struct got {
    struct remoca_mc_event *ev; /* every event, VALUEs included */
    size_t n, cap;
    unsigned mn;
    uint8_t *pages; /* VA data of opaque o goes to pages + (o - base) * PAGE */
    uint32_t base, npages;
};

struct conn {
    int fd;
    struct remoca_mc_parser p;
    uint8_t in[65536];
};

static void record(struct got *g, const struct remoca_mc_event *ev)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->ev = realloc(g->ev, g->cap * sizeof *g->ev);
        CHECK(g->ev, "out of memory");
    }
    g->ev[g->n++] = *ev;
    if (ev->kind == REMOCA_MC_MN) g->mn++;
    CHECK(ev->kind != REMOCA_MC_ERROR && ev->kind != REMOCA_MC_CLIENT_ERROR &&
              ev->kind != REMOCA_MC_SERVER_ERROR,
          "memcached answered %s %s", remoca_mc_kind_name(ev->kind), ev->msg ? ev->msg : "");
}

static void consume(struct conn *c, const uint8_t *in, size_t len, struct got *g)
{
    while (len > 0) {
        size_t used;
        struct remoca_mc_event ev;
        int rc = remoca_mc_parse(&c->p, in, len, &used, &ev);
        CHECK(rc >= 0, "parser: %s", remoca_mc_parser_error(&c->p));
        in += used;
        len -= used;
        if (rc == 0) break;
        record(g, &ev);
        if (ev.kind == REMOCA_MC_VA && ev.size == PAGE && g->pages) {
            CHECK((ev.has & REMOCA_MC_R_OPAQUE) && ev.opaque - g->base < g->npages,
                  "VA with opaque %u outside [%u, %u)", ev.opaque, g->base, g->base + g->npages);
            CHECK(remoca_mc_parser_dest(&c->p, g->pages + (size_t)(ev.opaque - g->base) * PAGE,
                                        PAGE) == 0,
                  "dest: %s", remoca_mc_parser_error(&c->p));
        }
    }
}

/* Sends out while reading (a pipeline of gets may answer megabytes before it
 * has all been sent), until all is sent and `mn` more MNs have arrived. */
static void exchange(struct conn *c, const struct buf *out, unsigned mn, struct got *g)
{
    size_t sent = 0;
    unsigned want = g->mn + mn;
    while (sent < out->len || g->mn < want) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | (sent < out->len ? POLLOUT : 0)};
        int r = poll(&pfd, 1, WAIT_MS);
        CHECK(r > 0, "no progress for %d ms (sent %zu of %zu, %u of %u MN)", WAIT_MS, sent,
              out->len, g->mn, want);
        if (pfd.revents & POLLOUT) {
            ssize_t w = send(c->fd, out->p + sent, out->len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            CHECK(w >= 0 || errno == EAGAIN, "send: %s", strerror(errno));
            if (w > 0) sent += (size_t)w;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(c->fd, c->in, sizeof c->in, MSG_DONTWAIT);
            CHECK(n != 0, "memcached closed the connection");
            CHECK(n > 0 || errno == EAGAIN, "recv: %s", strerror(errno));
            if (n > 0) consume(c, c->in, (size_t)n, g);
        }
    }
}

static void reset_got(struct got *g, uint8_t *pages, uint32_t base, uint32_t npages)
{
    g->n = 0;
    g->mn = 0;
    g->pages = pages;
    g->base = base;
    g->npages = npages;
}

/* ---- pages: every byte depends on the epoch, the block and a version ----- */

static void fill(uint8_t *page, const struct remoca_mc_ns *ns, uint64_t block, unsigned version)
{
    uint64_t x = (ns->epoch ^ (block * 0x9e3779b97f4a7c15ull) ^ version) | 1;
    for (size_t i = 0; i < PAGE; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(page + i, &x, 8);
    }
}

static bool page_is(const uint8_t *page, const struct remoca_mc_ns *ns, uint64_t block,
                    unsigned version)
{
    uint8_t want[PAGE];
    fill(want, ns, block, version);
    return memcmp(page, want, PAGE) == 0;
}

static struct remoca_mc_ns new_ns(const char *pool)
{
    struct remoca_mc_ns ns = {.pool = remoca_mc_pool_id(pool, strlen(pool))};
    CHECK(getrandom(&ns.epoch, sizeof ns.epoch, 0) == sizeof ns.epoch, "getrandom");
    return ns;
}

/* The VALUE events of g, in order, as (opaque, cas) lists; misses are silent. */
static size_t values(const struct got *g, uint32_t *opaque, uint64_t *cas, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++) {
        const struct remoca_mc_event *ev = &g->ev[i];
        CHECK(ev->kind == REMOCA_MC_VA || ev->kind == REMOCA_MC_VALUE || ev->kind == REMOCA_MC_MN,
              "unexpected %s (opaque %u) in a get's answer", remoca_mc_kind_name(ev->kind),
              ev->opaque);
        if (ev->kind != REMOCA_MC_VALUE) continue;
        CHECK(n < max, "more values than keys asked for");
        opaque[n] = ev->opaque;
        if (cas) cas[n] = (ev->has & REMOCA_MC_R_CAS) ? ev->cas : 0;
        n++;
    }
    return n;
}

/* ---- semantics ------------------------------------------------------------ */

#define N 64

static struct conn C;
static struct got G;
static uint8_t pages[N][PAGE];
static uint8_t page[PAGE];

/* Pipelined get of a batch: misses cost no line, hits are exactly the put keys. */
static void t_pipelined_gets(void)
{
    struct remoca_mc_ns ns = new_ns("itest/gets");
    struct buf b = {0};
    for (uint64_t k = 0; k < N; k++)
        if (k % 3 == 0) {
            fill(page, &ns, k, 1);
            add_put(&b, &ns, k, page);
        }
    add_get(&b, &ns, 0, N, false, 1000);
    reset_got(&G, &pages[0][0], 1000, N);
    exchange(&C, &b, 1, &G);
    uint32_t op[N];
    size_t n = values(&G, op, NULL, N);
    CHECK(n == (N + 2) / 3, "%zu hits, expected %d", n, (N + 2) / 3);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = op[i] - 1000;
        CHECK(k == 3 * i, "hit %zu is key %llu, expected %zu (in order)", i, (unsigned long long)k,
              3 * i);
        CHECK(page_is(pages[k], &ns, k, 1), "key %llu: wrong bytes", (unsigned long long)k);
    }
    /* Overwrite: the newer bytes come back. */
    b.len = 0;
    fill(page, &ns, 3, 2);
    add_put(&b, &ns, 3, page);
    add_get(&b, &ns, 3, 1, false, 3);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    CHECK(values(&G, op, NULL, N) == 1 && op[0] == 3, "overwritten key missing");
    CHECK(page_is(pages[3], &ns, 3, 2), "overwritten key: old bytes");
    free(b.p);
    printf("ok pipelined gets: %zu hits of %d keys, misses silent, put/overwrite/get exact\n", n,
           N);
}

/* Delete then get misses; in one write, order decides every time. */
static void t_delete_order(void)
{
    struct remoca_mc_ns ns = new_ns("itest/order");
    struct buf b = {0};
    enum { ROUNDS = 500 };
    /* Per round r: key 2r is put, deleted and read (must miss); key 2r+1 is
     * put, deleted, put again and read (must hit, second version). */
    for (uint64_t r = 0; r < ROUNDS; r++) {
        uint64_t x = 2 * r, y = 2 * r + 1;
        fill(page, &ns, x, 1);
        add_put(&b, &ns, x, page);
        add_md(&b, &ns, x, REMOCA_MC_F_QUIET, 0, 0);
        add_get(&b, &ns, x, 1, false, (uint32_t)x);
        fill(page, &ns, y, 1);
        add_put(&b, &ns, y, page);
        add_md(&b, &ns, y, REMOCA_MC_F_QUIET, 0, 0);
        fill(page, &ns, y, 2);
        add_put(&b, &ns, y, page);
        add_get(&b, &ns, y, 1, false, (uint32_t)y);
    }
    static uint8_t big[2 * ROUNDS][PAGE];
    reset_got(&G, &big[0][0], 0, 2 * ROUNDS);
    exchange(&C, &b, 2 * ROUNDS, &G);
    static uint32_t op[2 * ROUNDS];
    size_t n = values(&G, op, NULL, 2 * ROUNDS);
    CHECK(n == ROUNDS, "%zu hits, expected %d", n, ROUNDS);
    for (size_t i = 0; i < n; i++) {
        CHECK(op[i] == 2 * i + 1, "a deleted key was read back (opaque %u)", op[i]);
        CHECK(page_is(big[op[i]], &ns, op[i], 2), "key %u: not the put after the delete", op[i]);
    }
    /* A delete of a key that is not there: NF, even quiet (costs a line). */
    b.len = 0;
    add_md(&b, &ns, 1u << 20, REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE, 77, 0);
    add_mn(&b);
    reset_got(&G, NULL, 0, 0);
    exchange(&C, &b, 1, &G);
    CHECK(G.n == 2 && G.ev[0].kind == REMOCA_MC_NF && G.ev[0].opaque == 77,
          "quiet delete of an absent key: expected NF O77 then MN");
    free(b.p);
    printf("ok delete order: %d pipelined put/delete/get rounds, every delete before its get\n",
           ROUNDS);
}

/* Take: mg v c, then md C<cas>; the second take misses. */
static void t_take(void)
{
    struct remoca_mc_ns ns = new_ns("itest/take");
    struct buf b = {0};
    for (uint64_t k = 0; k < 8; k++) {
        fill(page, &ns, k, 1);
        add_put(&b, &ns, k, page);
    }
    add_get(&b, &ns, 0, 16, true, 0);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    uint32_t op[N];
    uint64_t cas[N];
    size_t n = values(&G, op, cas, N);
    CHECK(n == 8, "take: %zu hits, expected 8", n);
    b.len = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(cas[i] != 0, "take: a hit without its CAS");
        CHECK(page_is(pages[op[i]], &ns, op[i], 1), "take: wrong bytes");
        add_md(&b, &ns, op[i], REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS, op[i],
               cas[i]);
    }
    add_mn(&b);
    reset_got(&G, NULL, 0, 0);
    exchange(&C, &b, 1, &G);
    CHECK(G.n == 1, "take's deletes: %zu lines, expected MN alone (first: %s)", G.n,
          remoca_mc_kind_name(G.ev[0].kind));
    b.len = 0;
    add_get(&b, &ns, 0, 16, true, 0);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    CHECK(values(&G, op, cas, N) == 0, "second take hit");
    free(b.p);
    printf("ok take: 8 pages taken with their CAS, a second take misses\n");
}

/* A put between a take's mg and its md: the md fails (EX), the put survives. */
static void t_take_race(void)
{
    struct remoca_mc_ns ns = new_ns("itest/race");
    struct buf b = {0};
    fill(page, &ns, 5, 1);
    add_put(&b, &ns, 5, page);
    add_get(&b, &ns, 5, 1, true, 5);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    uint32_t op[1];
    uint64_t cas[1];
    CHECK(values(&G, op, cas, 1) == 1 && op[0] == 5, "race: the take missed");
    b.len = 0;
    fill(page, &ns, 5, 2);
    add_put(&b, &ns, 5, page); /* the newer value, between mg and md */
    add_md(&b, &ns, 5, REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS, 5, cas[0]);
    add_get(&b, &ns, 5, 1, false, 5);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    CHECK(G.n >= 1 && G.ev[0].kind == REMOCA_MC_EX && G.ev[0].opaque == 5,
          "race: the take's md was not refused (first line %s)",
          G.n ? remoca_mc_kind_name(G.ev[0].kind) : "none");
    G.ev[0].kind = REMOCA_MC_MN; /* let values() skip it */
    CHECK(values(&G, op, NULL, 1) == 1 && page_is(pages[5], &ns, 5, 2),
          "race: the newer put did not survive the take");
    /* Without the race the same md deletes. */
    b.len = 0;
    add_get(&b, &ns, 5, 1, true, 5);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    CHECK(values(&G, op, cas, 1) == 1, "race: second take missed");
    b.len = 0;
    add_md(&b, &ns, 5, REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS, 5, cas[0]);
    add_get(&b, &ns, 5, 1, false, 5);
    reset_got(&G, &pages[0][0], 0, N);
    exchange(&C, &b, 1, &G);
    CHECK(G.n == 1 && G.ev[0].kind == REMOCA_MC_MN, "race: the matching md did not delete");
    free(b.p);
    printf("ok take race: a put between mg and md survives (md C<cas> answered EX)\n");
}

/* A new epoch: none of the old pages is addressed any more. */
static void t_epoch(void)
{
    struct remoca_mc_ns ns = new_ns("itest/epoch");
    struct buf b = {0};
    for (uint64_t k = 0; k < N; k++) {
        fill(page, &ns, k, 1);
        add_put(&b, &ns, k, page);
    }
    struct remoca_mc_ns next = ns;
    next.epoch++; /* the nearest other epoch */
    add_get(&b, &next, 0, N, false, 0);
    add_get(&b, &ns, 0, N, false, 1000);
    reset_got(&G, NULL, 0, 0);
    exchange(&C, &b, 2, &G);
    size_t old = 0, now = 0;
    for (size_t i = 0; i < G.n; i++)
        if (G.ev[i].kind == REMOCA_MC_VALUE) {
            if (G.ev[i].opaque >= 1000)
                old++;
            else
                now++;
        }
    CHECK(now == 0, "new epoch: %zu hits", now);
    CHECK(old == N, "old epoch: %zu of %d pages still stored (unaddressed)", old, N);
    free(b.p);
    printf("ok epoch: %d pages under the old epoch, none reachable under the new one\n", N);
}

/* ma: a counter created with its initial value, then counted (number values). */
static void t_counter(void)
{
    struct remoca_mc_ns ns = new_ns("itest/counter");
    char key[32];
    int kl = snprintf(key, sizeof key, "R%016llx.ctr", (unsigned long long)ns.pool);
    struct remoca_mc_cmd c = {.key = key,
                              .key_len = (size_t)kl,
                              .flags = REMOCA_MC_F_VALUE | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_VIVIFY,
                              .opaque = 1,
                              .initial = ns.epoch >> 1};
    struct buf b = {0};
    add_line(&b, remoca_mc_ma(reserve(&b, REMOCA_MC_CMD_MAX), REMOCA_MC_CMD_MAX, &c));
    c.opaque = 2;
    c.delta = 5;
    add_line(&b, remoca_mc_ma(reserve(&b, REMOCA_MC_CMD_MAX), REMOCA_MC_CMD_MAX, &c));
    add_mn(&b);
    struct conn nc = {.fd = C.fd};
    remoca_mc_parser_init(&nc.p, REMOCA_MC_P_NUMBERS);
    reset_got(&G, NULL, 0, 0);
    exchange(&nc, &b, 1, &G);
    uint64_t v[2];
    size_t n = 0;
    for (size_t i = 0; i < G.n; i++)
        if (G.ev[i].kind == REMOCA_MC_VALUE && n < 2) v[n++] = G.ev[i].number;
    CHECK(n == 2 && v[0] == ns.epoch >> 1 && v[1] == v[0] + 5,
          "ma: expected %llu then +5, got %zu values", (unsigned long long)(ns.epoch >> 1), n);
    free(b.p);
    printf("ok ma: a new counter starts at J, D adds\n");
}

/* ---- eviction ------------------------------------------------------------ */

static void t_evict(unsigned npages)
{
    struct remoca_mc_ns ns = new_ns("itest/evict");
    struct buf b = {0};
    for (uint64_t k = 0; k < npages; k++) {
        fill(page, &ns, k, 1);
        add_put(&b, &ns, k, page);
        if (b.len > (4u << 20)) {
            add_mn(&b);
            reset_got(&G, NULL, 0, 0);
            exchange(&C, &b, 1, &G);
            CHECK(G.n == 1, "puts answered %s", remoca_mc_kind_name(G.ev[0].kind));
            b.len = 0;
        }
    }
    add_mn(&b);
    reset_got(&G, NULL, 0, 0);
    exchange(&C, &b, 1, &G);
    CHECK(G.n == 1, "puts answered %s", remoca_mc_kind_name(G.ev[0].kind));
    size_t hits = 0;
    for (uint64_t k = 0; k < npages; k += N) {
        uint32_t cnt = npages - k < N ? (uint32_t)(npages - k) : N;
        b.len = 0;
        add_get(&b, &ns, k, cnt, false, 0);
        reset_got(&G, &pages[0][0], 0, N);
        exchange(&C, &b, 1, &G);
        uint32_t op[N];
        size_t n = values(&G, op, NULL, N);
        for (size_t i = 0; i < n; i++)
            CHECK(page_is(pages[op[i]], &ns, k + op[i], 1), "evict: key %llu has wrong bytes",
                  (unsigned long long)(k + op[i]));
        hits += n;
    }
    CHECK(hits > 0 && hits < npages, "evict: %zu of %u pages hit; expected some of each", hits,
          npages);
    free(b.p);
    printf("ok evict: %zu of %u pages still there, every one byte-exact, the rest misses\n", hits,
           npages);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with the failures on stderr */
    if (argc < 3) {
        fprintf(stderr, "usage: mc_codec SOCKET semantics | SOCKET evict PAGES\n");
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CHECK(strlen(argv[1]) < sizeof sa.sun_path, "socket path too long");
    strcpy(sa.sun_path, argv[1]);
    C.fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(C.fd >= 0, "socket: %s", strerror(errno));
    CHECK(connect(C.fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", argv[1],
          strerror(errno));
    remoca_mc_parser_init(&C.p, 0);

    if (!strcmp(argv[2], "semantics")) {
        t_pipelined_gets();
        t_delete_order();
        t_take();
        t_take_race();
        t_epoch();
        t_counter();
    } else if (!strcmp(argv[2], "evict") && argc == 4) {
        t_evict((unsigned)strtoul(argv[3], NULL, 10));
    } else {
        die("unknown mode %s", argv[2]);
    }
    close(C.fd);
    return 0;
}
