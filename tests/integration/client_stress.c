/* SPDX-License-Identifier: BSD-3-Clause */
/* client_stress: the client core against a real remoca-memd, every byte
 * checked against a model.
 *
 *   client_stress --memd BIN --dir DIR --memory SIZE --mode evict|noevict
 *                 [--threads 8] [--pools 3] [--ops 3000] [--keys 1500]
 *
 * It starts its own server (DIR/stress.pid, DIR/stress.log), one client per
 * pool ("stress/p0", "stress/p1", ...), and THREADS workers.  Worker t owns
 * keys [t*KEYS, (t+1)*KEYS) of its pool, so its model is exact: for each key,
 * the version of the last put (0 = deleted or taken).  Random operations,
 * single and batched (up to 300 keys, across frame boundaries): put (wait or
 * not), get, take, delete (wait or not), delete of the whole owned range.
 * Checks, on every get/take:
 *   - a hit carries exactly the bytes of the last put of that key;
 *   - a key deleted or taken since its last put never hits;
 *   - the page of a miss is left untouched;
 *   - noevict: no miss at all on a key that is present (valid when the
 *     client saw no failure, which is checked too).
 * Meanwhile the main thread samples the server: stats pages*4096 <= budget
 * and VmRSS <= budget + documented overhead.
 * noevict mode also checks pool isolation: pool p0 is written once at the
 * start and untouched by workers (they use p1..); at the end, after the
 * workers, a whole-key-space DELETE_RANGE and a reset of every other pool,
 * every page of p0 must still read back byte for byte.
 * evict mode: the server must have evicted (budget far below the working set).
 * Exit 0 on success; prints one summary line.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_memd.h"
#include "remoca/size.h"

#define MAX_THREADS 32
#define MAX_POOLS 8
#define MAX_BATCH_KEYS 300u
#define SENTINEL 0x5a

static unsigned nthreads = 8, npools = 3, ops_per_thread = 3000, keys = 1500;
static bool noevict;
static struct remoca_client *pools[MAX_POOLS];

struct worker {
    unsigned id, pool;
    uint64_t base; /* first owned key */
    uint32_t *version;
    uint32_t next_version;
    unsigned seed;
    /* results */
    uint64_t ops, hits, misses, wrong, touched, stale, unexpected_miss;
    char first_error[200];
};

__attribute__((format(printf, 2, 3))) static void note(struct worker *w, const char *fmt, ...)
{
    if (w->first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
    va_end(ap);
}

static uint32_t rnd(struct worker *w, uint32_t n) { return (uint32_t)rand_r(&w->seed) % n; }

static void check_get(struct worker *w, uint32_t first, uint32_t count, const uint8_t *buf,
                      const uint64_t *hits, bool take)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t idx = first + i;
        uint64_t key = w->base + idx;
        const uint8_t *p = buf + (size_t)i * REMOCA_PAGE_SIZE;
        uint32_t v = w->version[idx];
        if (hits[i / 64] >> (i % 64) & 1) {
            w->hits++;
            if (v == 0) {
                w->stale++;
                note(w, "key %llu hit after delete/take (last version %u)", (unsigned long long)key,
                     v);
            } else if (!page_check(p, w->pool, key, v)) {
                w->wrong++;
                note(w, "key %llu: wrong bytes (expected version %u)", (unsigned long long)key, v);
            }
        } else {
            w->misses++;
            if (p[0] != SENTINEL || p[REMOCA_PAGE_SIZE - 1] != SENTINEL) {
                w->touched++;
                note(w, "key %llu: page of a miss was written (version %u)",
                     (unsigned long long)key, v);
            }
            if (noevict && v != 0) {
                w->unexpected_miss++;
                note(w, "key %llu: miss without eviction (version %u)", (unsigned long long)key, v);
            }
        }
        if (take) w->version[idx] = 0;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct remoca_client *c = pools[w->pool];
    uint8_t *buf = malloc((size_t)MAX_BATCH_KEYS * REMOCA_PAGE_SIZE);
    uint64_t hits[(MAX_BATCH_KEYS + 63) / 64];
    for (unsigned op = 0; op < ops_per_thread; op++) {
        uint32_t r = rnd(w, 100);
        uint32_t count = rnd(w, 2) ? 1 : 1 + rnd(w, MAX_BATCH_KEYS);
        uint32_t first = rnd(w, keys - count + 1);
        uint64_t key = w->base + first;
        w->ops++;
        if (r < 30) { /* put */
            for (uint32_t i = 0; i < count; i++) {
                uint32_t v = w->next_version++;
                page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, w->pool, key + i, v);
                w->version[first + i] = v;
            }
            remoca_put(c, key, count, buf, rnd(w, 2));
        } else if (r < 70) { /* get or take */
            bool take = r >= 62;
            memset(buf, SENTINEL, (size_t)count * REMOCA_PAGE_SIZE);
            remoca_get(c, key, count, buf, hits, take);
            check_get(w, first, count, buf, hits, take);
        } else if (r < 85) { /* delete */
            remoca_delete(c, key, count, rnd(w, 2));
            for (uint32_t i = 0; i < count; i++) w->version[first + i] = 0;
        } else if (r < 87) { /* delete-range over everything owned */
            remoca_delete(c, w->base, keys, rnd(w, 2));
            for (uint32_t i = 0; i < keys; i++) w->version[i] = 0;
        } else { /* single-key get of a recently useful key */
            memset(buf, SENTINEL, REMOCA_PAGE_SIZE);
            remoca_get(c, key, 1, buf, hits, false);
            check_get(w, first, 1, buf, hits, false);
        }
    }
    free(buf);
    return NULL;
}

/* Reads all of pool 0's keys [0, n) and checks version 1 bytes. */
static uint64_t verify_pool0(struct remoca_client *c, uint64_t n)
{
    uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
    uint64_t hits[4], bad = 0;
    for (uint64_t k = 0; k < n; k += 256) {
        uint32_t cnt = n - k < 256 ? (uint32_t)(n - k) : 256;
        memset(buf, SENTINEL, (size_t)cnt * REMOCA_PAGE_SIZE);
        unsigned got = remoca_get(c, k, cnt, buf, hits, false);
        if (got != cnt) bad += cnt - got;
        for (uint32_t i = 0; i < cnt; i++)
            if ((hits[i / 64] >> (i % 64) & 1) &&
                !page_check(buf + (size_t)i * REMOCA_PAGE_SIZE, 0, k + i, 1))
                bad++;
    }
    free(buf);
    return bad;
}

int main(int argc, char **argv)
{
    struct memd m = {.threads = 2};
    snprintf(m.name, sizeof m.name, "stress");
    const char *mode = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--memd"))
            snprintf(m.bin, sizeof m.bin, "%s", v);
        else if (!strcmp(k, "--dir"))
            snprintf(m.dir, sizeof m.dir, "%s", v);
        else if (!strcmp(k, "--memory"))
            snprintf(m.memory, sizeof m.memory, "%s", v);
        else if (!strcmp(k, "--mode"))
            mode = v;
        else if (!strcmp(k, "--threads"))
            nthreads = (unsigned)atoi(v);
        else if (!strcmp(k, "--pools"))
            npools = (unsigned)atoi(v);
        else if (!strcmp(k, "--ops"))
            ops_per_thread = (unsigned)atoi(v);
        else if (!strcmp(k, "--keys"))
            keys = (unsigned)atoi(v);
        else
            die("unknown option %s", k);
    }
    if (!m.bin[0] || !m.dir[0] || !m.memory[0] || !mode)
        die("usage: see the top of client_stress.c");
    noevict = !strcmp(mode, "noevict");
    if (nthreads < 1 || nthreads > MAX_THREADS || npools < 2 || npools > MAX_POOLS ||
        keys < MAX_BATCH_KEYS)
        die("bad --threads/--pools/--keys");
    uint64_t budget;
    if (parse_size(m.memory, &budget) < 0) die("bad --memory %s", m.memory);
    /* docs/protocol.md, Memory accounting: the process stays within
     * B + B/64 + 16 MiB, plus about 2.3 MiB per connection that keeps large
     * requests in flight (here: one per pool and the monitor's). */
    uint64_t rss_allowed = budget + budget / 64 + (16ull << 20) + (npools + 1) * (2560ull << 10);

    if (memd_start(&m) < 0) die("cannot start %s (see %s/stress.log)", m.bin, m.dir);
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", m.port);
    for (unsigned p = 0; p < npools; p++) {
        char name[32];
        snprintf(name, sizeof name, "stress/p%u", p);
        pools[p] = client_open(servers, name, 5000);
        if (remoca_client_wait_ready(pools[p], 10000) != 1) die("pool %s: server not ready", name);
    }
    struct remoca_client *mon = client_open(servers, "stress/monitor", 5000);
    remoca_client_wait_ready(mon, 10000);

    /* Pool 0 is the isolation witness in noevict mode. */
    uint64_t p0_keys = (uint64_t)keys * 2;
    if (noevict) {
        uint8_t *buf = malloc(256 * REMOCA_PAGE_SIZE);
        for (uint64_t k = 0; k < p0_keys; k += 256) {
            uint32_t cnt = p0_keys - k < 256 ? (uint32_t)(p0_keys - k) : 256;
            for (uint32_t i = 0; i < cnt; i++)
                page_fill(buf + (size_t)i * REMOCA_PAGE_SIZE, 0, k + i, 1);
            if (remoca_put(pools[0], k, cnt, buf, true) != 0) die("put to pool p0 failed");
        }
        free(buf);
        if (verify_pool0(pools[0], p0_keys) != 0) die("pool p0 does not read back");
    }

    static struct worker ws[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (unsigned t = 0; t < nthreads; t++) {
        struct worker *w = &ws[t];
        w->id = t;
        w->pool = noevict ? 1 + t % (npools - 1) : t % npools;
        w->base = (uint64_t)t * keys;
        w->version = calloc(keys, sizeof *w->version);
        w->next_version = 1;
        w->seed = 1000 + t;
        pthread_create(&th[t], NULL, worker_main, w);
    }

    /* Sample the budget while the workers run. */
    long long max_pages = 0;
    uint64_t max_rss = 0;
    unsigned samples = 0, budget_violations = 0;
    bool joined[MAX_THREADS] = {false};
    for (;;) {
        bool running = false;
        for (unsigned t = 0; t < nthreads; t++) {
            if (!joined[t] && pthread_tryjoin_np(th[t], NULL) == 0) joined[t] = true;
            running |= !joined[t];
        }
        long long pages = server_stat(mon, 0, "server", "pages");
        uint64_t rss = memd_rss(&m);
        samples++;
        if (pages > max_pages) max_pages = pages;
        if (rss > max_rss) max_rss = rss;
        /* A sanitizer build's server holds shadow memory and quarantined
         * blocks: its RSS says nothing about the budget (pages still do). */
        bool rss_over = rss > rss_allowed && !getenv("REMOCA_SANITIZE");
        if ((uint64_t)pages * REMOCA_PAGE_SIZE > budget || rss_over) budget_violations++;
        if (!running) break;
        usleep(50000);
    }

    struct worker tot = {0};
    char first_error[200] = "";
    for (unsigned t = 0; t < nthreads; t++) {
        tot.ops += ws[t].ops;
        tot.hits += ws[t].hits;
        tot.misses += ws[t].misses;
        tot.wrong += ws[t].wrong;
        tot.touched += ws[t].touched;
        tot.stale += ws[t].stale;
        tot.unexpected_miss += ws[t].unexpected_miss;
        if (!first_error[0] && ws[t].first_error[0])
            snprintf(first_error, sizeof first_error, "thread %u: %s", t, ws[t].first_error);
    }
    uint64_t failures = 0, timeouts = 0;
    for (unsigned p = 0; p < npools; p++) {
        struct remoca_client_stats st;
        remoca_client_get_stats(pools[p], &st);
        failures += st.failures;
        timeouts += st.timeouts;
    }
    long long evictions = server_stat(mon, 0, "server", "evictions");

    int rc = 0;
    uint64_t p0_bad = 0;
    if (noevict) {
        /* Heavy operations on the other pools must not touch p0. */
        for (unsigned p = 1; p < npools; p++) {
            remoca_delete(pools[p], 0, 1ull << 33, true); /* DELETE_RANGE frames */
            remoca_pool_reset(pools[p]);
        }
        p0_bad = verify_pool0(pools[0], p0_keys);
        long long p1_pages = server_stat(mon, 0, "pool name=stress/p1", "pages");
        if (p1_pages != 0) {
            fprintf(stderr, "FAIL: pool p1 still has %lld pages after reset\n", p1_pages);
            rc = 1;
        }
    }

    printf("client_stress: mode=%s threads=%u pools=%u ops=%llu hits=%llu misses=%llu "
           "wrong=%llu stale=%llu touched=%llu unexpected_miss=%llu failures=%llu timeouts=%llu "
           "evictions=%lld budget_pages=%llu max_pages=%lld max_rss_mib=%.1f rss_allowed_mib=%.1f "
           "samples=%u p0_bad=%llu\n",
           mode, nthreads, npools, (unsigned long long)tot.ops, (unsigned long long)tot.hits,
           (unsigned long long)tot.misses, (unsigned long long)tot.wrong,
           (unsigned long long)tot.stale, (unsigned long long)tot.touched,
           (unsigned long long)tot.unexpected_miss, (unsigned long long)failures,
           (unsigned long long)timeouts, evictions, (unsigned long long)(budget / REMOCA_PAGE_SIZE),
           max_pages, max_rss / 1048576.0, rss_allowed / 1048576.0, samples,
           (unsigned long long)p0_bad);
    if (first_error[0]) fprintf(stderr, "first error: %s\n", first_error);

    if (tot.wrong || tot.stale || tot.touched) {
        fprintf(stderr, "FAIL: the client returned wrong bytes or stale pages\n");
        rc = 1;
    }
    if (budget_violations) {
        fprintf(stderr, "FAIL: budget exceeded in %u of %u samples\n", budget_violations, samples);
        rc = 1;
    }
    if (tot.hits == 0) {
        fprintf(stderr, "FAIL: no hits at all\n");
        rc = 1;
    }
    if (noevict) {
        if (failures == 0 && tot.unexpected_miss) {
            fprintf(stderr, "FAIL: misses without eviction or failure\n");
            rc = 1;
        } else if (failures) {
            fprintf(stderr,
                    "WARNING: %llu client failures (overloaded machine?): exact-miss "
                    "check skipped\n",
                    (unsigned long long)failures);
        }
        if (evictions != 0) {
            fprintf(stderr, "FAIL: the server evicted %lld pages below its budget\n", evictions);
            rc = 1;
        }
        if (p0_bad) {
            fprintf(stderr, "FAIL: pool isolation: %llu pages of p0 changed or lost\n",
                    (unsigned long long)p0_bad);
            rc = 1;
        }
    } else if (evictions <= 0) {
        fprintf(stderr, "FAIL: no evictions with a budget below the working set\n");
        rc = 1;
    }

    for (unsigned p = 0; p < npools; p++) remoca_client_free(pools[p]);
    remoca_client_free(mon);
    memd_kill(&m, SIGTERM);
    for (unsigned t = 0; t < nthreads; t++) free(ws[t].version);
    return rc;
}
