/* SPDX-License-Identifier: BSD-3-Clause */
/* client_memcached: the client core against a real memcached
 * (lib/client/client_mc.c, docs/memcached.md).
 *
 *   client_memcached SOCKET|memcached:ENTRY [PID]
 *
 * 1. put (waited and no-wait) and get back byte-exact; a later put of the
 *    same keys wins; misses stay misses;
 * 2. delete (a few keys, and a DELETE_RANGE of many, both per-key mds): the
 *    deleted keys miss, the others hit;
 * 3. take: hits come back exact, a second take and a get miss (the take's
 *    CAS deletes ran before the call returned); a take on a missing key;
 * 4. pool reset and a DELETE_RANGE above the threshold: new epochs, every
 *    key misses, and puts after them hit again;
 * 5. STATS is refused; per-server counters count the hits;
 * 6. a second client of the same pool (its own epoch) does not see the
 *    first one's pages;
 * 7. four threads share the client, each owning a key range with an exact
 *    model (the version of its last put, 0 after a delete or a take):
 *    random puts, gets, takes, deletes of 1..80 keys (across frames), waited
 *    or not; a hit must carry the model's version, a key the model holds
 *    must hit (64 MiB: no eviction), a miss's page stays untouched;
 * 8. with PID (memcached's): a delete lost while memcached hangs leaves
 *    nothing readable: put K; SIGSTOP; a get times out (the connection is
 *    closed); delete K while the server is down (not sent); SIGCONT; after
 *    the reconnect (a new epoch) K misses, although memcached still holds it.
 * Exit 0 on success.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remoca/client.h"

#define PAGE 4096u
#define N 600u

static void die(const char *msg)
{
    fprintf(stderr, "client_memcached: FAIL: %s\n", msg);
    exit(1);
}

static void fill(uint8_t *p, uint64_t key, uint32_t ver)
{
    for (unsigned i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 0x9e3779b97f4a7c15ull ^ ((uint64_t)ver << 32) ^ i;
        memcpy(p + i, &v, 8);
    }
}

static uint8_t *buf;
static uint64_t hits[(N + 63) / 64];

static void put(struct remoca_client *c, uint64_t key, uint32_t n, uint32_t ver, bool wait)
{
    for (uint32_t i = 0; i < n; i++) fill(buf + (size_t)i * PAGE, key + i, ver);
    if (remoca_put(c, key, n, buf, wait) != 0) die("put failed");
}

/* Gets [key, key+n): every key whose want[] is nonzero must hit with that
 * version, every other one miss. */
static void expect(struct remoca_client *c, uint64_t key, uint32_t n, const uint32_t *want,
                   bool take, const char *what)
{
    memset(buf, 0xa5, (size_t)n * PAGE);
    unsigned got = remoca_get(c, key, n, buf, hits, take);
    unsigned nwant = 0;
    uint8_t page[PAGE];
    for (uint32_t i = 0; i < n; i++) {
        bool hit = hits[i / 64] >> (i % 64) & 1;
        if (want[i]) nwant++;
        if (hit != (want[i] != 0)) {
            fprintf(stderr, "%s: key %llu: %s, expected %s\n", what, (unsigned long long)(key + i),
                    hit ? "hit" : "miss", want[i] ? "hit" : "miss");
            die(what);
        }
        if (!hit) continue;
        fill(page, key + i, want[i]);
        if (memcmp(page, buf + (size_t)i * PAGE, PAGE)) {
            fprintf(stderr, "%s: key %llu: wrong bytes\n", what, (unsigned long long)(key + i));
            die(what);
        }
    }
    if (got != nwant) die("hit count differs from the bitmap");
}

#define TKEYS 1000u
#define TOPS 1500u
#define TMAX 80u

struct worker {
    struct remoca_client *c;
    unsigned t;
    uint32_t ver[TKEYS];
    uint8_t pages[TMAX * PAGE];
    uint64_t hits[(TMAX + 63) / 64];
    const char *fail;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t base = 100000u + (uint64_t)w->t * TKEYS, rnd = 0x9e3779b97f4a7c15ull * (w->t + 1);
    uint32_t next = 1;
    uint8_t page[PAGE];
    for (unsigned op = 0; op < TOPS && !w->fail; op++) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        uint32_t n = 1 + (uint32_t)(rnd >> 8) % TMAX;
        uint32_t k = (uint32_t)(rnd >> 24) % (TKEYS - n + 1);
        bool wait = rnd >> 60 & 1;
        switch ((rnd >> 40) % 4) {
        case 0:
            for (uint32_t i = 0; i < n; i++) fill(w->pages + (size_t)i * PAGE, base + k + i, next);
            if (remoca_put(w->c, base + k, n, w->pages, wait) != 0) w->fail = "threaded put";
            for (uint32_t i = 0; i < n; i++) w->ver[k + i] = next;
            next++;
            break;
        case 1:
            if (remoca_delete(w->c, base + k, n, wait) != 0) w->fail = "threaded delete";
            for (uint32_t i = 0; i < n; i++) w->ver[k + i] = 0;
            break;
        default: {
            bool take = (rnd >> 40) % 4 == 3;
            memset(w->pages, 0x5a, (size_t)n * PAGE);
            remoca_get(w->c, base + k, n, w->pages, w->hits, take);
            for (uint32_t i = 0; i < n && !w->fail; i++) {
                bool hit = w->hits[i / 64] >> (i % 64) & 1;
                uint8_t *p = w->pages + (size_t)i * PAGE;
                if (hit != (w->ver[k + i] != 0))
                    w->fail = hit ? "threaded: a hit on a deleted key"
                                  : "threaded: a miss on a stored key";
                else if (hit) {
                    fill(page, base + k + i, w->ver[k + i]);
                    if (memcmp(page, p, PAGE)) w->fail = "threaded: wrong bytes";
                } else if (p[0] != 0x5a || memcmp(p, p + 1, PAGE - 1))
                    w->fail = "threaded: a miss's page was written";
                if (take) w->ver[k + i] = 0;
            }
        }
        }
    }
    return NULL;
}

static void threaded(struct remoca_client *c)
{
    struct worker *w = calloc(4, sizeof *w);
    pthread_t th[4];
    if (!w) die("out of memory");
    for (unsigned t = 0; t < 4; t++) {
        w[t].c = c;
        w[t].t = t;
        if (pthread_create(&th[t], NULL, work, &w[t])) die("pthread_create");
    }
    for (unsigned t = 0; t < 4; t++) pthread_join(th[t], NULL);
    for (unsigned t = 0; t < 4; t++)
        if (w[t].fail) die(w[t].fail);
    free(w);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the server's up flag (and, for up, a reconnect) for up to ms: true
 * once it is as wanted. */
static bool wait_state(struct remoca_client *c, bool up, unsigned ms)
{
    for (unsigned i = 0; i < ms / 50; i++) {
        struct remoca_server_stats st;
        remoca_client_server_stats(c, &st, 1);
        if (st.up == up && (!up || st.reconnects >= 1)) return true;
        sleep_ms(50);
    }
    return false;
}

static void lost_delete(struct remoca_client *c, pid_t pid)
{
    const uint64_t k = 500000;
    uint32_t v9 = 9, none = 0;
    put(c, k, 1, 9, true);
    expect(c, k, 1, &v9, false, "before the hang");
    if (kill(pid, SIGSTOP) != 0) die("SIGSTOP");
    /* A get times out and the connection is closed.  (memcached's threads
     * stop a moment after kill returns: a get sent in that moment is
     * answered; try again.) */
    bool down = false;
    for (unsigned i = 0; i < 5 && !down; i++) {
        sleep_ms(100);
        remoca_get(c, k, 1, buf, hits, false);
        down = wait_state(c, false, 3000);
    }
    if (!down) die("memcached connection not down");
    remoca_delete(c, k, 1, true); /* down: not sent, lost */
    if (kill(pid, SIGCONT) != 0) die("SIGCONT");
    if (!wait_state(c, true, 20000)) die("memcached connection not back up");
    expect(c, k, 1, &none, false, "a delete lost while memcached hung");
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: client_memcached SOCKET|memcached:ENTRY [PID]\n");
        return 2;
    }
    char servers[300], err[256];
    if (!strncmp(argv[1], "memcached:", 10)) /* a whole entry, e.g. a TCP one */
        snprintf(servers, sizeof servers, "%s", argv[1]);
    else
        snprintf(servers, sizeof servers, "memcached:unix:%s", argv[1]);
    struct remoca_client_opts o = {.servers = servers, .pool = "mc-test/vda", .timeout_ms = 2000};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) die(err);
    if (remoca_client_wait_ready(c, 10000) != 1) die("memcached not ready");
    buf = malloc((size_t)N * PAGE);
    uint32_t *want = calloc(N, sizeof *want);
    if (!buf || !want) die("out of memory");

    /* 1. puts and gets */
    expect(c, 0, N, want, false, "empty pool");
    put(c, 0, 300, 1, true);
    put(c, 300, 200, 1, false); /* no-wait: ordered before the get below */
    for (unsigned i = 0; i < 500; i++) want[i] = 1;
    expect(c, 0, N, want, false, "after puts");
    put(c, 100, 50, 2, false);
    for (unsigned i = 100; i < 150; i++) want[i] = 2;
    expect(c, 0, N, want, false, "newer put wins");

    /* 2. deletes */
    if (remoca_delete(c, 10, 5, false) != 0) die("delete");
    if (remoca_delete(c, 200, 280, true) != 0) die("delete range"); /* > one frame */
    for (unsigned i = 10; i < 15; i++) want[i] = 0;
    for (unsigned i = 200; i < 480; i++) want[i] = 0;
    expect(c, 0, N, want, false, "after deletes");
    if (remoca_delete(c, 590, 10, true) != 0) die("delete of absent keys");

    /* 3. take */
    expect(c, 20, 64, want + 20, true, "take");
    memset(want + 20, 0, 64 * sizeof *want);
    expect(c, 20, 64, want + 20, true, "second take");
    expect(c, 0, N, want, false, "get after take");
    put(c, 30, 4, 3, false); /* a put after the take: a new page, kept */
    for (unsigned i = 30; i < 34; i++) want[i] = 3;
    expect(c, 0, N, want, false, "put after take");

    /* 4. new epochs */
    if (remoca_pool_reset(c) != 0) die("pool reset");
    memset(want, 0, N * sizeof *want);
    expect(c, 0, N, want, false, "after pool reset");
    put(c, 0, 100, 4, false);
    for (unsigned i = 0; i < 100; i++) want[i] = 4;
    expect(c, 0, N, want, false, "after reset and puts");
    if (remoca_delete(c, 0, 1u << 20, false) != 0) die("big delete range");
    memset(want, 0, N * sizeof *want);
    expect(c, 0, N, want, false, "after a big delete range");
    put(c, 0, 10, 5, true);
    for (unsigned i = 0; i < 10; i++) want[i] = 5;
    expect(c, 0, N, want, false, "after big delete and puts");

    /* 5. stats (the refused STATS counts as a failure: check before it) */
    struct remoca_client_stats cs;
    remoca_client_get_stats(c, &cs);
    if (cs.failures || cs.timeouts || cs.reconnects) die("client failures, timeouts or reconnects");
    char *text = NULL;
    if (remoca_server_stats(c, 0, false, &text) == 0) die("STATS answered by memcached");
    struct remoca_server_stats st;
    if (remoca_client_server_stats(c, &st, 1) != 1 || st.hits == 0 || !st.up)
        die("per-server counters");
    if (strncmp(st.addr, "memcached:", 10)) die("per-server address");
    printf("server %s: hits=%llu misses=%llu puts=%llu errors=%llu\n", st.addr,
           (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.puts,
           (unsigned long long)st.errors);
    if (st.errors) die("errors counted");

    /* 6. another client, same pool: its own epoch */
    struct remoca_client *c2 = remoca_client_new(&o, err, sizeof err);
    if (!c2 || remoca_client_wait_ready(c2, 10000) != 1) die("second client");
    uint32_t none[10] = {0};
    expect(c2, 0, 10, none, false, "second client sees the first one's pages");
    remoca_client_free(c2);
    expect(c, 0, N, want, false, "first client after the second one");

    /* 7. threads */
    remoca_client_get_stats(c, &cs);
    uint64_t failures0 = cs.failures;
    threaded(c);
    remoca_client_get_stats(c, &cs);
    if (cs.timeouts || cs.reconnects || cs.failures != failures0)
        die("client timeouts, reconnects or failures");

    /* 8. a lost delete (last: it times out and reconnects) */
    if (argc == 3) lost_delete(c, (pid_t)atol(argv[2]));
    remoca_client_free(c);
    free(buf);
    free(want);
    printf("PASS\n");
    return 0;
}
