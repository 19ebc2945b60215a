/* SPDX-License-Identifier: BSD-3-Clause */
/* client_sealed: sealed pools end to end (opts.sealed, remoca_get_sealed,
 * remoca_put_sealed; docs/protocol.md, Sealed pools) against real servers.
 *
 *   client_sealed SERVERS memd|memd-shm|mc
 *
 * SERVERS is a client server list (remoca-memd over TCP or unix, --shm or
 * not, memcached entries, or a mix).
 * 1. put_sealed (waited, no-wait one-page puts through the send queue, and
 *    a 1024-key put cut into frames) and get_sealed give back every page AND
 *    every sidecar byte for byte; a later put of the same key replaces both;
 *    a miss leaves its page and sidecar untouched;
 * 2. take: the hits come back exact, then miss; delete: the deleted keys
 *    miss, the others hit; pool reset: everything misses;
 * 3. the plain calls fail on a sealed client (0 hits, -1), the sealed calls
 *    on a plain client, and a sealed call without sidecars;
 * 4. on a --shm server over a unix socket (memd-shm: at least one is) a
 *    sealed client maps the store and takes a fill ring: its gets are served
 *    one-sidedly and its no-wait one-page puts go through the ring, sidecars
 *    included (1. checks them byte for byte); elsewhere neither is used;
 * 5. memd only: the pool exists sealed, so a plain client of the same pool
 *    is refused by every server (never up, "pool is sealed" logged), and a
 *    sealed client of a plain pool likewise ("pool is not sealed");
 *    remoca_pool_update of the sealed pool (one server) succeeds and keeps
 *    its pages.
 * Exit 0 on success.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remoca/client.h"

#define PAGE 4096u
#define SIDE REMOCA_SIDE_SIZE
#define N 1024u

static void die(const char *msg)
{
    fprintf(stderr, "client_sealed: FAIL: %s\n", msg);
    exit(1);
}

static void fill(uint8_t *page, uint8_t *side, uint64_t key, uint32_t ver)
{
    for (unsigned i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 0x9e3779b97f4a7c15ull ^ ((uint64_t)ver << 32) ^ i;
        memcpy(page + i, &v, 8);
    }
    for (unsigned i = 0; i < SIDE; i += 8) {
        uint64_t v = ~key * 0xc2b2ae3d27d4eb4full ^ ((uint64_t)ver << 40) ^ (i + 1);
        memcpy(side + i, &v, 8);
    }
}

static uint8_t *pages, *sides, *want_p, *want_s;
static uint64_t hits[(N + 63) / 64];

/* What the client logged (to check refusals' reasons). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[16384];
static void log_sink(void *opaque, int level, const char *msg)
{
    (void)opaque;
    (void)level;
    pthread_mutex_lock(&log_lock);
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof logged - l, "%s\n", msg);
    pthread_mutex_unlock(&log_lock);
}
static bool logged_has(const char *s)
{
    pthread_mutex_lock(&log_lock);
    bool r = strstr(logged, s) != NULL;
    pthread_mutex_unlock(&log_lock);
    return r;
}

static struct remoca_client *client(const char *servers, const char *pool, bool sealed)
{
    char err[256];
    struct remoca_client_opts o = {.servers = servers,
                                   .pool = pool,
                                   .name = "client_sealed",
                                   .timeout_ms = 1000,
                                   .log = log_sink,
                                   .sealed = sealed};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) die(err);
    return c;
}

/* Puts keys [key, key+n) at version ver, the model (want_*) too. */
static void put(struct remoca_client *c, uint64_t key, uint32_t n, uint32_t ver, bool wait)
{
    for (uint32_t i = 0; i < n; i++)
        fill(want_p + (key + i) * PAGE, want_s + (key + i) * SIDE, key + i, ver);
    if (remoca_put_sealed(c, key, n, want_p + key * PAGE, want_s + key * SIDE, wait) != 0)
        die("put_sealed");
}

/* Gets [key, key+n): every key in [hit_lo, hit_hi) must hit with the model's
 * page and sidecar, every other must miss and leave its buffers as they were. */
static void expect(struct remoca_client *c, uint64_t key, uint32_t n, uint64_t hit_lo,
                   uint64_t hit_hi, bool take)
{
    memset(pages, 0xee, (size_t)n * PAGE);
    memset(sides, 0xdd, (size_t)n * SIDE);
    unsigned got = remoca_get_sealed(c, key, n, pages, sides, hits, take);
    unsigned want = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = key + i;
        bool h = hits[i / 64] >> (i % 64) & 1;
        bool should = k >= hit_lo && k < hit_hi;
        char msg[200];
        if (h != should) {
            snprintf(msg, sizeof msg, "key %llu: %s, expected %s", (unsigned long long)k,
                     h ? "hit" : "miss", should ? "hit" : "miss");
            die(msg);
        }
        want += should;
        if (h) {
            if (memcmp(pages + (size_t)i * PAGE, want_p + k * PAGE, PAGE)) {
                snprintf(msg, sizeof msg, "key %llu: page differs", (unsigned long long)k);
                die(msg);
            }
            if (memcmp(sides + (size_t)i * SIDE, want_s + k * SIDE, SIDE)) {
                snprintf(msg, sizeof msg, "key %llu: sidecar differs", (unsigned long long)k);
                die(msg);
            }
        } else {
            for (unsigned b = 0; b < PAGE; b++)
                if (pages[(size_t)i * PAGE + b] != 0xee) die("a miss's page was written");
            for (unsigned b = 0; b < SIDE; b++)
                if (sides[(size_t)i * SIDE + b] != 0xdd) die("a miss's sidecar was written");
        }
    }
    if (got != want) die("hit count differs from the bitmap");
}

/* Waits until the no-wait puts before it were executed: a waited put behind
 * them on every server (each server executes a connection in order). */
static void settle(struct remoca_client *c)
{
    uint8_t p[PAGE] = {0}, s[SIDE] = {0};
    for (unsigned i = 0; i < remoca_server_count(c); i++)
        for (uint64_t k = 100000; k < 100000 + 64 * 64; k += 64)
            if (remoca_server_of(c, k) == i) {
                if (remoca_put_sealed(c, k, 1, p, s, true) != 0) die("settle put");
                break;
            }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: client_sealed SERVERS memd|memd-shm|mc\n");
        return 2;
    }
    const char *servers = argv[1];
    bool shm = !strcmp(argv[2], "memd-shm");
    bool memd = shm || !strcmp(argv[2], "memd");
    pages = malloc((size_t)N * PAGE);
    sides = malloc((size_t)N * SIDE);
    want_p = calloc(N, PAGE);
    want_s = calloc(N, SIDE);
    if (!pages || !sides || !want_p || !want_s) die("out of memory");

    struct remoca_client *c = client(servers, "sealed/vda", true);
    unsigned n = remoca_server_count(c);
    if (remoca_client_wait_ready(c, 5000) != n) die("sealed client: servers not ready");

    /* 1. round trips */
    put(c, 0, 3, 1, true);
    expect(c, 0, 8, 0, 3, false);
    for (uint64_t k = 10; k < 20; k++) put(c, k, 1, 1, false); /* the send queue */
    settle(c);
    expect(c, 8, 16, 10, 20, false);
    put(c, 0, N, 2, true); /* many frames (several servers: several connections) */
    expect(c, 0, N, 0, N, false);
    put(c, 5, 1, 3, true); /* a new version replaces page and sidecar */
    expect(c, 4, 3, 4, 7, false);
    for (uint64_t k = 300; k < 340; k++) put(c, k, 1, 4, false);
    for (unsigned s = 0; s < n; s++) /* a no-wait one-page put on every server */
        for (uint64_t k = 400; k < N; k++)
            if (remoca_server_of(c, k) == s) {
                put(c, k, 1, 6, false);
                break;
            }
    settle(c);
    expect(c, 0, N, 0, N, false);

    /* 2. take, delete, reset */
    expect(c, 40, 10, 40, 50, true);
    expect(c, 38, 2, 38, 40, false);
    expect(c, 40, 10, 0, 0, false); /* taken */
    expect(c, 50, 2, 50, 52, false);
    expect(c, 40, 10, 0, 0, true); /* a take of nothing */
    if (remoca_delete(c, 100, 50, true) != 0) die("delete");
    expect(c, 95, 55, 95, 100, false); /* 100..149 deleted */
    expect(c, 150, 5, 150, 155, false);
    if (remoca_pool_reset(c) != 0) die("pool reset");
    expect(c, 0, N, 0, 0, false);
    put(c, 7, 2, 5, true);
    expect(c, 6, 4, 7, 9, false);

    /* 3. the calls of the other kind fail */
    uint64_t h[(N + 63) / 64];
    h[0] = ~0ull;
    if (remoca_get(c, 7, 2, pages, h, false) != 0 || h[0] != 0)
        die("remoca_get on a sealed client did not fail");
    if (remoca_put(c, 7, 1, pages, true) != -1) die("remoca_put on a sealed client did not fail");
    if (remoca_get_sealed(c, 7, 2, pages, NULL, h, false) != 0) die("get_sealed without sides");
    if (remoca_put_sealed(c, 7, 1, pages, NULL, true) != -1) die("put_sealed without sides");
    expect(c, 6, 4, 7, 9, false); /* nothing changed */

    /* 4. socket only */
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    if (shm && (st.servers_shm == 0 || st.one_sided_hits == 0))
        die("a sealed client did not read one-sidedly from a --shm server");
    if (shm && (st.servers_ring == 0 || st.ring_puts == 0))
        die("a sealed client did not put through the fill ring of a unix-socket server");
    if (!shm && (st.servers_shm != 0 || st.one_sided_lookups != 0 || st.ring_puts != 0))
        die("one-sided reads or a fill ring without a --shm unix-socket server");
    if (st.bad_values != 0) die("bad values counted");

    struct remoca_client *p = client(servers, "plain/vda", false);
    if (remoca_client_wait_ready(p, 5000) != n) die("plain client: servers not ready");
    if (remoca_get_sealed(p, 0, 1, pages, sides, h, false) != 0)
        die("get_sealed on a plain client did not fail");
    if (remoca_put_sealed(p, 0, 1, pages, sides, true) != -1)
        die("put_sealed on a plain client did not fail");
    if (remoca_put(p, 0, 1, want_p, true) != 0) die("plain put");
    memset(pages, 0, PAGE);
    if (remoca_get(p, 0, 1, pages, h, false) != 1 || memcmp(pages, want_p, PAGE)) die("plain get");

    /* 5. a pool is sealed or not from its creation (memd decides; memcached
     *    has no pools of its own) */
    if (memd) {
        struct remoca_client *q = client(servers, "sealed/vda", false);
        if (remoca_client_wait_ready(q, 1500) != 0) die("a plain client opened a sealed pool");
        if (!logged_has("pool is sealed (open it with the sealed flag)"))
            die("the refusal of a plain open of a sealed pool was not logged with its reason");
        remoca_client_free(q);
        struct remoca_client *r = client(servers, "plain/vda", true);
        if (remoca_client_wait_ready(r, 1500) != 0) die("a sealed client opened a plain pool");
        if (!logged_has("pool is not sealed (open it without the sealed flag)"))
            die("the refusal of a sealed open of a plain pool was not logged with its reason");
        remoca_client_free(r);
        expect(c, 6, 4, 7, 9, false); /* the pool is untouched */
        if (!strchr(servers, ',')) {  /* remoca-balancer's update of a sealed pool */
            char err[256];
            if (remoca_pool_update(servers, NULL, "sealed/vda", 0, 0, 3, 1000, err, sizeof err))
                die(err);
            expect(c, 6, 4, 7, 9, false);
        }
    }
    remoca_client_free(p);
    remoca_client_free(c);
    printf("client_sealed: ok (%u servers, %s)\n", n, argv[2]);
    return 0;
}
