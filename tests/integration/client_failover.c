/* SPDX-License-Identifier: BSD-3-Clause */
/* client_failover: the client core against real remoca-memd servers that
 * hang, die and come back.
 *
 *   client_failover --memd BIN --dir DIR --case hang|kill|two|auth
 *
 * hang  SIGSTOP the server while 4 threads hammer it: every call returns
 *       (misses) within a few timeouts, none hangs; SIGCONT: the client
 *       works again, and the pages put before the hang are NOT served
 *       (the server kept them in memory; the client reset its pool before
 *       using the server again, docs/design.md, contract 4).
 * kill  SIGKILL the server, misses meanwhile (no errors, no hang), restart it
 *       on the same port: the client reconnects (counter), resets, works.
 *       With two clients on one pool: B's reconnect reset drops A's pages.
 * two   two servers: keys spread over both as placement says (checked in
 *       each server's stats); SIGKILL one: the other's keys still hit.
 * auth  a server with --secret: the HMAC challenge-response of HELLO lets
 *       the right secret in, and keeps a wrong or missing one out.
 * Exit 0 on success; the servers' logs are DIR/NAME.log.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_memd.h"

#define TIMEOUT_MS 300u
#define WARM_KEYS 512u
/* A call may wait for its own timeout, then one more for a response stuck
 * half way; anything far beyond is a hang. */
#define HANG_MS (8.0 * TIMEOUT_MS)

static struct memd srv[2];

static char *addr_of(const struct memd *m)
{
    static char s[2][64];
    static int which;
    which ^= 1;
    snprintf(s[which], sizeof s[which], "127.0.0.1:%d", m->port);
    return s[which];
}

/* Puts keys [0, n) with version v, waits; returns 0 if all were acknowledged. */
static int put_range(struct remoca_client *c, unsigned pool, uint64_t n, uint32_t v)
{
    uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
    int rc = 0;
    for (uint64_t k = 0; k < n; k += 256) {
        uint32_t cnt = n - k < 256 ? (uint32_t)(n - k) : 256;
        for (uint32_t i = 0; i < cnt; i++)
            page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, pool, k + i, v);
        rc |= remoca_put(c, k, cnt, buf, true);
    }
    free(buf);
    return rc;
}

/* Gets keys [0, n); counts hits; any hit with other bytes than version v
 * is fatal. */
static unsigned get_range(struct remoca_client *c, unsigned pool, uint64_t n, uint32_t v)
{
    uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
    uint64_t hits[4];
    unsigned total = 0;
    for (uint64_t k = 0; k < n; k += 256) {
        uint32_t cnt = n - k < 256 ? (uint32_t)(n - k) : 256;
        total += remoca_get(c, k, cnt, buf, hits, false);
        for (uint32_t i = 0; i < cnt; i++)
            if ((hits[i / 64] >> (i % 64) & 1) &&
                !page_check(buf + (size_t)i * REMOCA_PAGE_SIZE, pool, k + i, v))
                die("key %llu: wrong bytes", (unsigned long long)(k + i));
    }
    free(buf);
    return total;
}

/* Puts keys [0, n) through `p` and reads them back through `g`, retrying a
 * few times: on a loaded machine a healthy request may still time out (then
 * the connection is reset and everything misses once).  False if it never
 * reads back completely. */
static bool fill_and_check(struct remoca_client *p, struct remoca_client *g, unsigned pool,
                           uint64_t n, uint32_t v)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (attempt) {
            fprintf(stderr, "retrying a fill after a failure (loaded machine?)\n");
            remoca_client_wait_ready(p, 10000);
            remoca_client_wait_ready(g, 10000);
        }
        if (put_range(p, pool, n, v) == 0 && get_range(g, pool, n, v) == n) return true;
    }
    return false;
}

/* ---- hammering threads ------------------------------------------------- */

struct hammer {
    struct remoca_client *c;
    unsigned id;
    atomic_bool *stop;
    double max_ms;
    _Atomic uint64_t calls;
    uint64_t hits;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    uint8_t *buf = malloc(64 * REMOCA_PAGE_SIZE);
    uint64_t hits[1];
    unsigned seed = 99 + h->id;
    /* Own keys for puts (beyond the warm range), version 7. */
    uint64_t own = 100000 + (uint64_t)h->id * 1000;
    while (!atomic_load(h->stop)) {
        double t0 = mono_ms();
        unsigned r = (unsigned)rand_r(&seed) % 4;
        uint32_t cnt = 1 + (unsigned)rand_r(&seed) % 64;
        if (r == 0) {
            for (uint32_t i = 0; i < cnt; i++)
                page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, 0, own + i, 7);
            remoca_put(h->c, own, cnt, buf, rand_r(&seed) & 1);
        } else if (r == 1) {
            remoca_delete(h->c, own + 100, cnt, rand_r(&seed) & 1);
        } else {
            uint64_t k = (unsigned)rand_r(&seed) % (WARM_KEYS - 64);
            h->hits += remoca_get(h->c, k, cnt, buf, hits, false);
        }
        double dt = mono_ms() - t0;
        if (dt > h->max_ms) h->max_ms = dt;
        atomic_fetch_add(&h->calls, 1);
    }
    free(buf);
    return NULL;
}

static void case_hang(const char *bin, const char *dir)
{
    memd_start_or_die(&srv[0], bin, dir, "hang");
    struct remoca_client *c = client_open(addr_of(&srv[0]), "fo/hang", TIMEOUT_MS);
    if (remoca_client_wait_ready(c, 10000) != 1) die("server not ready");
    if (!fill_and_check(c, c, 0, WARM_KEYS, 1)) die("warm pages do not read back");

    atomic_bool stop = false;
    struct hammer hs[4];
    pthread_t th[4];
    for (unsigned t = 0; t < 4; t++) {
        hs[t] = (struct hammer){.c = c, .id = t, .stop = &stop};
        pthread_create(&th[t], NULL, hammer_main, &hs[t]);
    }
    usleep(200000);
    memd_kill(&srv[0], SIGSTOP);
    printf("hang: server stopped\n");
    unsigned seen_down = 0;
    for (int i = 0; i < 30; i++) { /* 1.5 s */
        usleep(50000);
        struct remoca_client_stats st;
        remoca_client_get_stats(c, &st);
        seen_down += st.servers_up == 0;
    }
    uint64_t calls_during = 0;
    for (unsigned t = 0; t < 4; t++) calls_during += hs[t].calls;
    memd_kill(&srv[0], SIGCONT);
    printf("hang: server continued\n");
    if (remoca_client_wait_ready(c, 10000) != 1) die("not usable again after SIGCONT");
    usleep(300000);
    atomic_store(&stop, true);
    double worst = 0;
    for (unsigned t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        if (hs[t].max_ms > worst) worst = hs[t].max_ms;
    }
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    printf("hang: calls=%llu (%llu by the end of the stop) worst_call_ms=%.0f timeouts=%llu "
           "failures=%llu reconnects=%llu seen_down=%u\n",
           (unsigned long long)(hs[0].calls + hs[1].calls + hs[2].calls + hs[3].calls),
           (unsigned long long)calls_during, worst, (unsigned long long)st.timeouts,
           (unsigned long long)st.failures, (unsigned long long)st.reconnects, seen_down);
    if (worst > HANG_MS) die("a call took %.0f ms (timeout %u ms)", worst, TIMEOUT_MS);
    if (st.timeouts == 0) die("no timeout counted while the server was stopped");
    if (seen_down == 0) die("the server was never seen down while stopped");
    if (st.reconnects < 1) die("no recovery counted");
    /* The server still holds the warm pages in memory, unless the client
     * reset its pool before using the server again. */
    unsigned stale = get_range(c, 0, WARM_KEYS, 1);
    if (stale != 0) die("%u pages from before the hang were served after it", stale);
    long long pages = server_stat(c, 0, "pool name=fo/hang", "pages");
    printf("hang: after recovery: warm hits=%u, pool pages=%lld\n", stale, pages);
    if (!fill_and_check(c, c, 0, WARM_KEYS, 2)) die("puts/gets fail after recovery");
    remoca_client_free(c);
    memd_kill(&srv[0], SIGTERM);
}

static void case_kill(const char *bin, const char *dir)
{
    memd_start_or_die(&srv[0], bin, dir, "kill");
    struct remoca_client *a = client_open(addr_of(&srv[0]), "fo/kill", TIMEOUT_MS);
    struct remoca_client *b = client_open(addr_of(&srv[0]), "fo/kill", TIMEOUT_MS);
    if (remoca_client_wait_ready(a, 10000) != 1 || remoca_client_wait_ready(b, 10000) != 1)
        die("server not ready");
    if (!fill_and_check(a, b, 0, WARM_KEYS, 1)) die("client B does not see A's pages");

    memd_kill(&srv[0], SIGKILL);
    printf("kill: server killed\n");
    double worst = 0;
    unsigned hits = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = mono_ms();
        hits += get_range(a, 0, WARM_KEYS, 1);
        put_range(a, 0, 64, 3); /* dropped: -1, not an error to handle */
        double dt = mono_ms() - t0;
        if (dt > worst) worst = dt;
    }
    if (hits) die("%u hits from a dead server", hits);
    if (worst > HANG_MS) die("calls to a dead server took %.0f ms", worst);

    memd_restart(&srv[0]);
    printf("kill: server restarted on port %d\n", srv[0].port);
    /* B was idle: it notices the old connection's end within a moment (or
     * at its next request) and reconnects. */
    struct remoca_client_stats sa, sb;
    for (int i = 0; i < 300; i++) {
        remoca_client_get_stats(a, &sa);
        remoca_client_get_stats(b, &sb);
        if (sa.reconnects >= 1 && sb.reconnects >= 1) break;
        usleep(50000);
    }
    if (remoca_client_wait_ready(a, 15000) != 1 || remoca_client_wait_ready(b, 15000) != 1)
        die("no reconnect after restart");
    remoca_client_get_stats(a, &sa);
    remoca_client_get_stats(b, &sb);
    printf("kill: reconnects a=%llu b=%llu failures a=%llu\n", (unsigned long long)sa.reconnects,
           (unsigned long long)sb.reconnects, (unsigned long long)sa.failures);
    if (sa.reconnects < 1 || sb.reconnects < 1) die("reconnect not counted");
    if (!fill_and_check(a, a, 0, WARM_KEYS, 4)) die("puts/gets fail after restart");
    if (!fill_and_check(a, b, 0, WARM_KEYS, 4)) die("B misses A's new pages");

    /* A reconnect resets the pool: re-create client B (a new incarnation of
     * the same front end); its connect must drop A's pages. */
    remoca_client_free(b);
    b = client_open(addr_of(&srv[0]), "fo/kill", TIMEOUT_MS);
    if (remoca_client_wait_ready(b, 10000) != 1) die("B not ready");
    unsigned left = get_range(a, 0, WARM_KEYS, 4);
    printf("kill: A's pages after B's (re)connect: %u\n", left);
    if (left != 0) die("pool not reset by a client's connect");
    remoca_client_free(a);
    remoca_client_free(b);
    memd_kill(&srv[0], SIGTERM);
}

static void case_two(const char *bin, const char *dir)
{
    memd_start_or_die(&srv[0], bin, dir, "two-a");
    memd_start_or_die(&srv[1], bin, dir, "two-b");
    char list[160];
    snprintf(list, sizeof list, "%s,%s", addr_of(&srv[0]), addr_of(&srv[1]));
    struct remoca_client *c = client_open(list, "fo/two", TIMEOUT_MS);
    if (remoca_client_wait_ready(c, 10000) != 2) die("servers not ready");
    const uint64_t n = 8192;
    if (!fill_and_check(c, c, 0, n, 1)) die("puts/gets fail with both servers up");
    uint64_t on[2] = {0, 0};
    for (uint64_t k = 0; k < n; k++) on[remoca_server_of(c, k)]++;
    long long pa = server_stat(c, 0, "pool name=fo/two", "pages");
    long long pb = server_stat(c, 1, "pool name=fo/two", "pages");
    printf("two: placement %llu/%llu, server pages %lld/%lld\n", (unsigned long long)on[0],
           (unsigned long long)on[1], pa, pb);
    if (pa != (long long)on[0] || pb != (long long)on[1])
        die("servers do not hold the placed keys");
    if (on[0] < n / 4 || on[1] < n / 4) die("keys not spread over both servers");
    if (get_range(c, 0, n, 1) != n) die("gets missed with both servers up");

    memd_kill(&srv[1], SIGKILL);
    double t0 = mono_ms();
    unsigned hits = get_range(c, 0, n, 1);
    double dt = mono_ms() - t0;
    printf("two: after killing server b: hits=%u (server a holds %llu) in %.0f ms\n", hits,
           (unsigned long long)on[0], dt);
    if (hits != on[0])
        die("expected exactly server a's %llu keys to hit", (unsigned long long)on[0]);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    if (st.servers_up != 1) die("servers_up=%u, expected 1", st.servers_up);
    remoca_client_free(c);
    memd_kill(&srv[0], SIGTERM);
}

/* A server with --secret: the right secret connects and works; a wrong one
 * or none never gets the server (misses, no error, no hang). */
static void case_auth(const char *bin, const char *dir)
{
    snprintf(srv[0].secret, sizeof srv[0].secret, "s3cret-for-tests");
    memd_start_or_die(&srv[0], bin, dir, "auth");
    struct remoca_client *good =
        client_open_secret(addr_of(&srv[0]), "fo/auth", TIMEOUT_MS, "s3cret-for-tests");
    struct remoca_client *bad =
        client_open_secret(addr_of(&srv[0]), "fo/auth", TIMEOUT_MS, "wrong");
    struct remoca_client *none = client_open(addr_of(&srv[0]), "fo/auth", TIMEOUT_MS);
    if (remoca_client_wait_ready(good, 10000) != 1) die("the right secret was refused");
    if (!fill_and_check(good, good, 0, 64, 1)) die("authenticated client does not work");
    if (remoca_client_wait_ready(bad, 1000) != 0) die("a wrong secret was accepted");
    if (remoca_client_wait_ready(none, 200) != 0) die("no secret was accepted");
    if (get_range(bad, 0, 64, 1) != 0 || get_range(none, 0, 64, 1) != 0)
        die("unauthenticated clients got pages");
    if (put_range(bad, 1000, 8, 1) == 0) die("an unauthenticated put was acknowledged");
    printf("auth: right secret up, wrong and missing secrets kept out\n");
    remoca_client_free(good);
    remoca_client_free(bad);
    remoca_client_free(none);
    memd_kill(&srv[0], SIGTERM);
    srv[0].secret[0] = '\0';
}

int main(int argc, char **argv)
{
    const char *bin = NULL, *dir = NULL, *which = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--memd"))
            bin = argv[i + 1];
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--case"))
            which = argv[i + 1];
        else
            die("unknown option %s", argv[i]);
    }
    if (!bin || !dir || !which)
        die("usage: client_failover --memd BIN --dir DIR --case hang|kill|two|auth");
    if (!strcmp(which, "hang"))
        case_hang(bin, dir);
    else if (!strcmp(which, "kill"))
        case_kill(bin, dir);
    else if (!strcmp(which, "two"))
        case_two(bin, dir);
    else if (!strcmp(which, "auth"))
        case_auth(bin, dir);
    else
        die("unknown case %s", which);
    printf("client_failover %s: PASS\n", which);
    return 0;
}
