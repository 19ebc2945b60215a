/* SPDX-License-Identifier: BSD-3-Clause */
/* client_membership: remoca_client_set_servers against real remoca-memd
 * servers (lib/client/client_members.c).
 *
 *   client_membership --memd BIN --dir DIR
 *
 * 1. three servers hold exactly the keys placement gives them;
 * 2. a fourth joins: it takes about a quarter of the keys, all from the
 *    others, which drop them (POOL_KEEP: their pages = their new share);
 * 3. while it is in, the keys it owns are rewritten (version 2) through it;
 *    it leaves: those keys return to their old owners, which must not serve
 *    the version 1 they held before it joined (the hazard POOL_KEEP closes);
 *    the keys that never moved still hit;
 * 4. a bad list is refused and the old one kept;
 * 5. four threads read and write (a version per key in a model, each key
 *    owned by one thread) while the list changes 20 times: no wrong byte,
 *    no call far beyond the timeout;
 * 6. per-server stats name every server with its hits.
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

#define TIMEOUT_MS 1000u
#define NKEYS 8192u
#define HANG_MS (8.0 * TIMEOUT_MS)

static struct memd srv[4];
static char addr[4][64];

/* "addr[i],addr[j],..." for the servers whose bit is in mask. */
static const char *list_of(unsigned mask)
{
    static char s[512];
    s[0] = '\0';
    for (unsigned i = 0; i < 4; i++)
        if (mask >> i & 1) {
            if (s[0]) strcat(s, ",");
            strcat(s, addr[i]);
        }
    return s;
}

static void set(struct remoca_client *c, unsigned mask)
{
    char err[256];
    if (remoca_client_set_servers(c, list_of(mask), err, sizeof err) < 0)
        die("set_servers(%s): %s", list_of(mask), err);
}

/* Server index (into srv[]) of the client's list position s under mask. */
static unsigned srv_of(unsigned mask, unsigned s)
{
    for (unsigned i = 0; i < 4; i++)
        if (mask >> i & 1 && s-- == 0) return i;
    die("list position out of range");
}

static void put_keys(struct remoca_client *c, uint64_t first, uint64_t n, const uint32_t *ver)
{
    uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
    for (uint64_t k = first; k < first + n; k += 256) {
        uint32_t cnt = first + n - k < 256 ? (uint32_t)(first + n - k) : 256;
        for (uint32_t i = 0; i < cnt; i++)
            page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, 0, k + i, ver[k + i]);
        if (remoca_put(c, k, cnt, buf, true) != 0) die("put of %llu failed", (unsigned long long)k);
    }
    free(buf);
}

/* Gets [first, first+n): every hit must carry ver[key]; hit bits to *hit. */
static unsigned get_keys(struct remoca_client *c, uint64_t first, uint64_t n, const uint32_t *ver,
                         bool *hit)
{
    uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
    uint64_t bits[4];
    unsigned total = 0;
    for (uint64_t k = first; k < first + n; k += 256) {
        uint32_t cnt = first + n - k < 256 ? (uint32_t)(first + n - k) : 256;
        total += remoca_get(c, k, cnt, buf, bits, false);
        for (uint32_t i = 0; i < cnt; i++) {
            bool h = bits[i / 64] >> (i % 64) & 1;
            if (hit) hit[k + i] = h;
            if (h && !page_check(buf + (size_t)i * REMOCA_PAGE_SIZE, 0, k + i, ver[k + i]))
                die("key %llu: wrong bytes (not version %u: stale)", (unsigned long long)(k + i),
                    ver[k + i]);
        }
    }
    free(buf);
    return total;
}

static long long pages_on(struct remoca_client *c, unsigned s)
{
    return server_stat(c, s, "pool name=memb/x", "pages");
}

static uint32_t ver[NKEYS];
static bool hit[NKEYS];

static void sequence(struct remoca_client *c)
{
    /* 1. three servers */
    for (unsigned k = 0; k < NKEYS; k++) ver[k] = 1;
    if (remoca_client_wait_ready(c, 10000) != 3) die("three servers not ready");
    put_keys(c, 0, NKEYS, ver);
    if (get_keys(c, 0, NKEYS, ver, NULL) != NKEYS) die("not every key hits with 3 servers");
    unsigned owner3[NKEYS], on3[4] = {0};
    for (unsigned k = 0; k < NKEYS; k++) on3[owner3[k] = srv_of(7, remoca_server_of(c, k))]++;
    for (unsigned s = 0; s < 3; s++)
        if (pages_on(c, s) != on3[s])
            die("server %u holds %lld pages, placed %u", s, pages_on(c, s), on3[s]);

    /* 2. a fourth joins */
    set(c, 15);
    if (remoca_client_wait_ready(c, 10000) != 4) die("four servers not ready");
    unsigned owner4[NKEYS], on4[4] = {0}, moved = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        on4[owner4[k] = srv_of(15, remoca_server_of(c, k))]++;
        if (owner4[k] != owner3[k]) {
            if (owner4[k] != 3) die("key %u moved between old servers", k);
            moved++;
        }
    }
    printf("join: %u of %u keys moved to the new server (%.1f%%)\n", moved, NKEYS,
           100.0 * moved / NKEYS);
    if (moved < NKEYS / 8 || moved > NKEYS * 3 / 8) die("the new server took %u keys", moved);
    for (unsigned s = 0; s < 4; s++) {
        long long want = s == 3 ? 0 : on4[s]; /* the newcomer starts empty */
        if (pages_on(c, s) != want)
            die("after the join server %u holds %lld pages, expected %lld (POOL_KEEP)", s,
                pages_on(c, s), want);
    }
    unsigned h = get_keys(c, 0, NKEYS, ver, hit);
    if (h != NKEYS - moved) die("after the join %u hits, expected %u", h, NKEYS - moved);

    /* 3. writes during its tenure, then it leaves */
    for (unsigned k = 0; k < NKEYS; k++)
        if (owner4[k] == 3) ver[k] = 2;
    put_keys(c, 0, NKEYS, ver); /* the newcomer gets version 2 of its keys */
    if (pages_on(c, 3) != on4[3]) die("the new server holds %lld pages", pages_on(c, 3));
    set(c, 7);
    for (unsigned k = 0; k < NKEYS; k++)
        if (owner4[k] == 3) ver[k] = 3; /* written again (invalidate) while it leaves */
    for (unsigned k = 0; k < NKEYS; k++)
        if (owner4[k] == 3 && remoca_delete(c, k, 1, true) != 0) die("delete failed");
    h = get_keys(c, 0, NKEYS, ver, hit); /* version 1 or 2 of a moved key: stale */
    for (unsigned k = 0; k < NKEYS; k++)
        if (owner4[k] == 3 && hit[k]) die("key %u hit after its server left", k);
    if (h != NKEYS - moved) die("after the leave %u hits, expected %u", h, NKEYS - moved);
    printf("leave: %u hits, none of the %u keys that came back\n", h, moved);

    /* 4. a bad list changes nothing */
    char err[256];
    if (remoca_client_set_servers(c, "h:", err, sizeof err) == 0) die("a bad list was taken");
    if (remoca_server_count(c) != 3) die("a bad list changed the servers");
    printf("bad list refused: %s\n", err);
}

/* ---- 5. traffic while the list changes ----------------------------------- */

struct worker {
    struct remoca_client *c;
    unsigned id;
    atomic_bool *stop;
    double max_ms;
    uint64_t calls, hits;
};

#define WKEYS 512u         /* keys per worker: worker w owns WBASE + [w*WKEYS, (w+1)*WKEYS) */
#define WBASE (1ull << 20) /* away from the keys of sequence() */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint32_t v[WKEYS];
    uint8_t *buf = malloc(16 * REMOCA_PAGE_SIZE);
    uint64_t first = WBASE + (uint64_t)w->id * WKEYS;
    unsigned rnd = w->id * 2654435761u + 1;
    for (unsigned i = 0; i < WKEYS; i++) v[i] = 0;
    while (!atomic_load(w->stop)) {
        rnd = rnd * 1103515245u + 12345u;
        unsigned k = (rnd >> 8) % (WKEYS - 16), n = 1 + (rnd >> 20) % 16;
        double t0 = mono_ms();
        if (rnd >> 30 & 1) { /* write: invalidate, then maybe fill the new version */
            for (unsigned i = 0; i < n; i++) v[k + i]++;
            remoca_delete(w->c, first + k, n, false);
            for (unsigned i = 0; i < n; i++)
                page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, 1, first + k + i, v[k + i]);
            remoca_put(w->c, first + k, n, buf, false);
        } else {
            uint64_t bits[1];
            w->hits += remoca_get(w->c, first + k, n, buf, bits, false);
            for (unsigned i = 0; i < n; i++)
                if ((bits[0] >> i & 1) &&
                    !page_check(buf + (size_t)i * REMOCA_PAGE_SIZE, 1, first + k + i, v[k + i]))
                    die("worker %u key %llu: stale or wrong bytes", w->id,
                        (unsigned long long)(first + k + i));
        }
        double dt = mono_ms() - t0;
        if (dt > w->max_ms) w->max_ms = dt;
        w->calls++;
    }
    free(buf);
    return NULL;
}

static void churn(struct remoca_client *c)
{
    atomic_bool stop = false;
    struct worker w[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (struct worker){.c = c, .id = i, .stop = &stop};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    static const unsigned masks[] = {15, 7, 11, 13, 14, 15, 3, 12, 15, 9};
    double worst_change = 0;
    for (unsigned r = 0; r < 20; r++) {
        usleep(50000);
        double t0 = mono_ms();
        set(c, masks[r % 10]);
        double dt = mono_ms() - t0;
        if (dt > worst_change) worst_change = dt;
    }
    usleep(100000);
    atomic_store(&stop, true);
    uint64_t calls = 0, hits = 0;
    double max_ms = 0;
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        calls += w[i].calls;
        hits += w[i].hits;
        if (w[i].max_ms > max_ms) max_ms = w[i].max_ms;
    }
    printf(
        "churn: 20 changes, %llu calls, %llu hits, slowest call %.0f ms, slowest change %.0f ms\n",
        (unsigned long long)calls, (unsigned long long)hits, max_ms, worst_change);
    if (calls < 100 || hits == 0) die("no traffic during the changes");
    if (max_ms > HANG_MS || worst_change > HANG_MS) die("a call or a change hung");
}

int main(int argc, char **argv)
{
    const char *bin = NULL, *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--memd"))
            bin = argv[i + 1];
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else
            die("unknown option %s", argv[i]);
    }
    if (!bin || !dir) die("usage: client_membership --memd BIN --dir DIR");
    static const char *names[4] = {"memb-a", "memb-b", "memb-c", "memb-d"};
    for (unsigned i = 0; i < 4; i++) {
        memd_start_or_die(&srv[i], bin, dir, names[i]);
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", srv[i].port);
    }
    struct remoca_client *c = client_open(list_of(7), "memb/x", TIMEOUT_MS);
    sequence(c);
    churn(c);

    /* 6. per-server stats */
    set(c, 15);
    remoca_client_wait_ready(c, 10000);
    struct remoca_server_stats st[REMOCA_MAX_SERVERS];
    unsigned n = remoca_client_server_stats(c, st, REMOCA_MAX_SERVERS);
    if (n != 4) die("server stats: %u servers", n);
    for (unsigned i = 0; i < n; i++) {
        printf("server%u=%s up=%d requests=%llu hits=%llu misses=%llu errors=%llu p50_us=%llu "
               "p99_us=%llu\n",
               i, st[i].addr, st[i].up, (unsigned long long)st[i].requests,
               (unsigned long long)st[i].hits, (unsigned long long)st[i].misses,
               (unsigned long long)st[i].errors, (unsigned long long)st[i].p50_us,
               (unsigned long long)st[i].p99_us);
        char want[80];
        snprintf(want, sizeof want, "tcp:%s", addr[i]);
        if (strcmp(st[i].addr, want) != 0) die("server %u is %s, expected %s", i, st[i].addr, want);
        if (!st[i].up) die("server %u not up", i);
    }
    if (st[0].hits == 0 || st[0].p50_us == 0 || st[0].p99_us < st[0].p50_us)
        die("server 0: no hits or no latency counted");
    struct remoca_client_stats cs;
    remoca_client_get_stats(c, &cs);
    if (cs.servers != 4 || cs.membership_changes < 20)
        die("client stats: servers=%u changes=%llu", cs.servers,
            (unsigned long long)cs.membership_changes);
    remoca_client_free(c);
    for (unsigned i = 0; i < 4; i++) memd_kill(&srv[i], SIGTERM);
    printf("client_membership: PASS\n");
    return 0;
}
