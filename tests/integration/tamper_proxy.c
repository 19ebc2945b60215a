/* SPDX-License-Identifier: BSD-3-Clause */
/* tamper_proxy: a hostile man in the middle between REMOCA clients and one
 * remoca-memd, for the integrity tests of sealed pools (docs/design.md,
 * "Sealed pages").  It speaks the wire protocol (docs/protocol.md), forwards
 * every frame, and every N-th page unit a GET or TAKE answer carries is
 * replaced, cycling through the enabled modes:
 *
 *   flip    one random bit of the unit (page or sidecar) flipped
 *   swap    the unit of another key of the same pool
 *   pool    a unit of another pool (the same key number if it has one)
 *   replay  the same key's unit from before its last DELETE: a page from
 *           before a write (only units separated by a delete count, since a
 *           copy re-put without a write in between holds the same data)
 *
 *   tamper_proxy --upstream HOST:PORT --port-file FILE [--listen ADDR:PORT]
 *                [--unit BYTES] [--every N] [--modes flip,swap,pool,replay]
 *                [--stats FILE] [--seed S]
 *
 * --unit is the bytes of one page unit on the wire: 4096 + 32 in a sealed
 * pool (the default), 4096 in a plain one (then tampering shows as wrong
 * bytes: the test's negative control).  Every tampering is counted in
 * --stats ("tampered=N flip=.. swap=.. pool=.. replay=.. hits=.."), rewritten
 * atomically after each one, so that the test can compare it with the
 * client's count of integrity failures.
 *
 * What it remembers, to have something to substitute:
 *
 *   history[hash(pool name, key) % HIST]   (direct mapped, newest wins)
 *     cur      the unit last PUT for the key
 *     old      the unit PUT before the last DELETE of the key (or none)
 *     deleted  a DELETE / DELETE_RANGE came after cur
 *
 * Per connection: requests by id (op, pool handle, key, count) until their
 * answer passes, and pool handles to names (from POOL_OPEN's answer).
 * One thread per direction per connection, blocking sockets: a test tool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "remoca/hostport.h"
#include "remoca/wire.h"

#define HIST 8192u
#define MAX_POOLS 32u
#define MAX_UNIT (REMOCA_PAGE_SIZE + 64u)
#define REQ_BUCKETS 1024u

enum mode { M_FLIP, M_SWAP, M_POOL, M_REPLAY, NMODES };
static const char *mode_names[NMODES] = {"flip", "swap", "pool", "replay"};

static const char *upstream, *port_file, *stats_file, *listen_addr = "127.0.0.1:0";
static size_t unit = REMOCA_PAGE_SIZE + 32;
static unsigned every = 10;
static bool enabled[NMODES] = {true, true, true, true};
static uint64_t rng = 88172645463325252ull;

/* ---- shared state (one lock: a test tool, not a fast path) ------------- */

struct hist {
    bool used, has_old, deleted;
    unsigned pool; /* index into pool_names */
    uint64_t key;
    uint8_t cur[MAX_UNIT], old[MAX_UNIT];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct hist *hist;
static char pool_names[MAX_POOLS][REMOCA_MAX_NAME + 1];
static unsigned npools;
static uint64_t units_seen, counts[NMODES], tampered;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned pool_index(const char *name, size_t len)
{
    for (unsigned i = 0; i < npools; i++)
        if (strlen(pool_names[i]) == len && !memcmp(pool_names[i], name, len)) return i;
    if (npools == MAX_POOLS) return MAX_POOLS - 1;
    memcpy(pool_names[npools], name, len);
    pool_names[npools][len] = '\0';
    return npools++;
}

static struct hist *hist_slot(unsigned pool, uint64_t key)
{
    uint64_t h = (key + 0x9e3779b97f4a7c15ull * (pool + 1)) * 0xff51afd7ed558ccdull;
    return &hist[(h >> 32) % HIST];
}

static void write_stats(void)
{
    if (!stats_file) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_file);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "tampered=%llu units=%llu", (unsigned long long)tampered,
            (unsigned long long)units_seen);
    for (unsigned m = 0; m < NMODES; m++)
        fprintf(f, " %s=%llu", mode_names[m], (unsigned long long)counts[m]);
    fprintf(f, "\n");
    fclose(f);
    rename(tmp, stats_file);
}

/* A PUT's unit for (pool, key): the previous one becomes "old" if a delete
 * came in between (lock held). */
static void remember_put(unsigned pool, uint64_t key, const uint8_t *u)
{
    struct hist *h = hist_slot(pool, key);
    if (!h->used || h->pool != pool || h->key != key) {
        memset(h, 0, sizeof *h);
        h->used = true;
        h->pool = pool;
        h->key = key;
    } else if (h->deleted) {
        memcpy(h->old, h->cur, unit);
        h->has_old = true;
    }
    memcpy(h->cur, u, unit);
    h->deleted = false;
}

static void remember_delete(unsigned pool, uint64_t key, uint64_t count)
{
    if (count <= HIST) {
        for (uint64_t i = 0; i < count; i++) {
            struct hist *h = hist_slot(pool, key + i);
            if (h->used && h->pool == pool && h->key == key + i) h->deleted = true;
        }
        return;
    }
    for (unsigned i = 0; i < HIST; i++)
        if (hist[i].used && hist[i].pool == pool && hist[i].key >= key && hist[i].key - key < count)
            hist[i].deleted = true;
}

/* Replaces the unit u of (pool, key) by mode m; false if m has nothing to
 * offer here (lock held). */
static bool tamper_unit(enum mode m, unsigned pool, uint64_t key, uint8_t *u)
{
    switch (m) {
    case M_FLIP: {
        uint64_t bit = next_rand() % (unit * 8);
        u[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        return true;
    }
    case M_REPLAY: {
        struct hist *h = hist_slot(pool, key);
        if (!h->used || h->pool != pool || h->key != key || !h->has_old) return false;
        if (!memcmp(h->old, u, unit)) return false;
        memcpy(u, h->old, unit);
        return true;
    }
    case M_SWAP:
    case M_POOL: {
        /* the first candidate after a random start */
        unsigned start = (unsigned)(next_rand() % HIST);
        if (m == M_POOL) {
            for (unsigned p = 0; p < npools; p++) { /* same key number, other pool */
                if (p == pool) continue;
                struct hist *h = hist_slot(p, key);
                if (h->used && h->pool == p && h->key == key && memcmp(h->cur, u, unit)) {
                    memcpy(u, h->cur, unit);
                    return true;
                }
            }
        }
        for (unsigned i = 0; i < HIST; i++) {
            struct hist *h = &hist[(start + i) % HIST];
            if (!h->used) continue;
            bool ok = m == M_SWAP ? h->pool == pool && h->key != key : h->pool != pool;
            if (ok && memcmp(h->cur, u, unit)) {
                memcpy(u, h->cur, unit);
                return true;
            }
        }
        return false;
    }
    default: return false;
    }
}

/* ---- one proxied connection -------------------------------------------- */

struct req {
    uint32_t id;
    uint8_t op;
    uint32_t pool, count;
    uint64_t key;
    char name[REMOCA_MAX_NAME + 1]; /* POOL_OPEN's */
    struct req *next;
};

struct link {
    int cfd, sfd;
    pthread_mutex_t lock;
    struct req *reqs[REQ_BUCKETS];
    unsigned handle_pool[1024]; /* pool handle -> pool_names index + 1 */
};

static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one frame (header decoded into h, payload into *buf, grown). */
static int read_frame(int fd, uint8_t hb[REMOCA_HDR_SIZE], struct remoca_hdr *h, uint8_t **buf,
                      size_t *cap)
{
    if (read_full(fd, hb, REMOCA_HDR_SIZE) < 0) return -1;
    remoca_hdr_decode(hb, h);
    if (h->len > 2u * REMOCA_MAX_BATCH * MAX_UNIT) return -1; /* out of step */
    if (h->len > *cap) {
        uint8_t *b = realloc(*buf, h->len);
        if (!b) return -1;
        *buf = b;
        *cap = h->len;
    }
    return h->len ? read_full(fd, *buf, h->len) : 0;
}

static unsigned handle_pool(struct link *l, uint32_t handle)
{
    unsigned v = handle < 1024 ? l->handle_pool[handle] : 0;
    return v ? v - 1 : MAX_POOLS - 1;
}

/* client -> server: remember requests, PUT units and deletes. */
static void *c2s(void *arg)
{
    struct link *l = arg;
    uint8_t hb[REMOCA_HDR_SIZE], *buf = NULL;
    size_t cap = 0;
    struct remoca_hdr h;
    while (read_frame(l->cfd, hb, &h, &buf, &cap) == 0) {
        struct req *r = calloc(1, sizeof *r);
        if (!r) break;
        *r = (struct req){.id = h.id, .op = h.op, .pool = h.pool, .count = h.count, .key = h.key};
        if (h.op == REMOCA_OP_POOL_OPEN && h.len > 22) {
            size_t nl = (size_t)buf[20] | (size_t)buf[21] << 8;
            if (nl <= REMOCA_MAX_NAME && 22 + nl <= h.len) memcpy(r->name, buf + 22, nl);
        }
        pthread_mutex_lock(&l->lock);
        r->next = l->reqs[h.id % REQ_BUCKETS];
        l->reqs[h.id % REQ_BUCKETS] = r;
        unsigned pool = handle_pool(l, h.pool);
        pthread_mutex_unlock(&l->lock);

        pthread_mutex_lock(&lock);
        if (h.op == REMOCA_OP_PUT && h.len == (uint64_t)h.count * unit)
            for (uint32_t i = 0; i < h.count; i++) remember_put(pool, h.key + i, buf + i * unit);
        else if (h.op == REMOCA_OP_DELETE || h.op == REMOCA_OP_DELETE_RANGE)
            remember_delete(pool, h.key, h.count);
        pthread_mutex_unlock(&lock);

        if (write_full(l->sfd, hb, sizeof hb) < 0 || write_full(l->sfd, buf, h.len) < 0) break;
    }
    free(buf);
    shutdown(l->sfd, SHUT_RDWR);
    shutdown(l->cfd, SHUT_RDWR);
    return NULL;
}

static struct req *take_req(struct link *l, uint32_t id)
{
    pthread_mutex_lock(&l->lock);
    struct req *r = NULL;
    for (struct req **p = &l->reqs[id % REQ_BUCKETS]; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            r = *p;
            *p = r->next;
            break;
        }
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* The hit units of a GET/TAKE answer, every `every`-th one tampered with. */
static void tamper_answer(struct link *l, const struct req *r, uint8_t *payload, uint32_t len)
{
    uint32_t bm = remoca_bitmap_bytes(r->count);
    if (len < bm || (len - bm) % unit) return;
    unsigned pool = handle_pool(l, r->pool);
    uint8_t *u = payload + bm;
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < r->count; i++) {
        if (!(payload[i / 8] >> (i % 8) & 1)) continue;
        if (++units_seen % every == 0) {
            for (unsigned t = 0; t < NMODES; t++) {
                enum mode m = (enum mode)((tampered + t) % NMODES);
                if (enabled[m] && tamper_unit(m, pool, r->key + i, u)) {
                    counts[m]++;
                    tampered++;
                    write_stats();
                    break;
                }
            }
        }
        u += unit;
    }
    pthread_mutex_unlock(&lock);
}

/* server -> client: tamper with answers, learn pool handles. */
static void *s2c(void *arg)
{
    struct link *l = arg;
    uint8_t hb[REMOCA_HDR_SIZE], *buf = NULL;
    size_t cap = 0;
    struct remoca_hdr h;
    while (read_frame(l->sfd, hb, &h, &buf, &cap) == 0) {
        struct req *r = take_req(l, h.id);
        if (r && h.flags == REMOCA_OK) {
            if (r->op == REMOCA_OP_POOL_OPEN && h.pool < 1024) {
                pthread_mutex_lock(&lock);
                unsigned p = pool_index(r->name, strlen(r->name));
                pthread_mutex_unlock(&lock);
                pthread_mutex_lock(&l->lock);
                l->handle_pool[h.pool] = p + 1;
                pthread_mutex_unlock(&l->lock);
            } else if (r->op == REMOCA_OP_GET || r->op == REMOCA_OP_TAKE) {
                tamper_answer(l, r, buf, h.len);
            }
        }
        free(r);
        if (write_full(l->cfd, hb, sizeof hb) < 0 || write_full(l->cfd, buf, h.len) < 0) break;
    }
    free(buf);
    shutdown(l->sfd, SHUT_RDWR);
    shutdown(l->cfd, SHUT_RDWR);
    return NULL;
}

static int dial(const char *addr)
{
    struct remoca_hostport hp;
    char err[128];
    if (remoca_hostport_parse(addr, 1, &hp, err, sizeof err) < 0) {
        fprintf(stderr, "tamper_proxy: %s: %s\n", addr, err);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(hp.host, hp.port, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void *serve_link(void *arg)
{
    struct link *l = arg;
    pthread_t t;
    if (pthread_create(&t, NULL, s2c, l) != 0) return NULL;
    c2s(l);
    pthread_join(t, NULL);
    close(l->cfd);
    close(l->sfd);
    for (unsigned i = 0; i < REQ_BUCKETS; i++)
        while (l->reqs[i]) {
            struct req *r = l->reqs[i];
            l->reqs[i] = r->next;
            free(r);
        }
    free(l);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tamper_proxy --upstream HOST:PORT --port-file FILE [--listen ADDR:PORT]\n"
            "       [--unit BYTES] [--every N] [--modes flip,swap,pool,replay]\n"
            "       [--stats FILE] [--seed S]\n");
    exit(2);
}

static void parse_modes(const char *v)
{
    for (unsigned m = 0; m < NMODES; m++) enabled[m] = false;
    char *s = strdup(v), *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned m = 0;
        while (m < NMODES && strcmp(t, mode_names[m])) m++;
        if (m == NMODES) usage();
        enabled[m] = true;
    }
    free(s);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(a, "--upstream"))
            upstream = v;
        else if (!strcmp(a, "--port-file"))
            port_file = v;
        else if (!strcmp(a, "--listen"))
            listen_addr = v;
        else if (!strcmp(a, "--unit"))
            unit = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--every"))
            every = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--modes"))
            parse_modes(v);
        else if (!strcmp(a, "--stats"))
            stats_file = v;
        else if (!strcmp(a, "--seed"))
            rng = strtoull(v, NULL, 10) | 1;
        else
            usage();
    }
    if (!upstream || !port_file || unit < REMOCA_PAGE_SIZE || unit > MAX_UNIT || every == 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    hist = calloc(HIST, sizeof *hist);
    if (!hist) return 1;
    write_stats();

    struct remoca_hostport hp;
    char err[128];
    if (remoca_hostport_parse(listen_addr, 0, &hp, err, sizeof err) < 0) usage();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(hp.port))};
    if (inet_pton(AF_INET, hp.host, &sa.sin_addr) != 1) usage();
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("tamper_proxy: listen");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f) return 1;
    fprintf(f, "127.0.0.1:%u\n", ntohs(sa.sin_port));
    fclose(f);
    rename(tmp, port_file);

    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) continue;
        int sfd = dial(upstream);
        if (sfd < 0) {
            close(cfd);
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct link *l = calloc(1, sizeof *l);
        if (!l) return 1;
        l->cfd = cfd;
        l->sfd = sfd;
        pthread_mutex_init(&l->lock, NULL);
        pthread_t t;
        if (pthread_create(&t, NULL, serve_link, l) == 0) pthread_detach(t);
    }
}
