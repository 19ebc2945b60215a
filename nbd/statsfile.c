/* SPDX-License-Identifier: BSD-3-Clause */
/* The stats file of the filter (remoca-statsfile=PATH) and of remoca-vhost
 * (--stats PATH).
 *
 * A thread wakes every second (and once more when stopped) and replaces PATH
 * atomically (write PATH.tmp, rename) with key=value lines:
 *
 *   disk_size=1049576          engine: the counters of struct remoca_cache_stats
 *   dir_blocks=212                     and the directory's population
 *   reads=...  remote_hits=...  misses=...  fills=...  fills_skipped=...
 *   mrc_refs=4098              mrc: the reads' miss-ratio curve, if the engine
 *   mrc_sampled=4098                has one (remoca_cache_mrc): the estimator's
 *   mrc_rate=1  mrc_samples=2049    counters, then the curve in one line of
 *   mrc_bytes=528648                SIZE:RATIO pairs, SIZE in 4 KiB blocks
 *   mrc=32:1.0000,64:1.0000,...,2049:0.5000
 *   seal_seals=...             sealed pages (remoca-seal, --seal): lib/seal's
 *   seal_integrity_failures=0       struct remoca_seal_stats, when sealing is on
 *   client_requests=...        client: struct remoca_client_stats
 *   client_servers_up=1
 *   one_sided_lookups=...      one-sided reads (memd --shm on this host)
 *   one_sided_hits=...
 *   ring_puts=...              pages put through a fill ring (same host)
 *   client_servers_ring=1
 *   client_servers=3           servers in the list now, and list changes
 *   client_membership_changes=1     (remoca-servers-file)
 *   server0=unix:/run/m0.sock up=1 weight=1 requests=.. keys=.. hits=.. misses=..
 *     puts=.. errors=.. timeouts=.. reconnects=.. p50_us=.. p99_us=..
 *                              one line per server of the list (remoca_client_server_stats;
 *                              latencies: upper bounds of log2 buckets)
 *
 * Readers (tests, `remoca stats`, scripts) never see a half-written file.
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "remoca/cache.h"
#include "remoca/client.h"
#include "remoca/mrc.h"
#include "remoca/seal.h"
#include "statsfile.h"

#define MRC_POINTS 64 /* a readable line, enough for a plot (remoca stats --mrc) */

struct statsfile {
    char *path, *tmp;
    struct remoca_cache *const *cache;
    struct remoca_seal *const *_Atomic seal; /* statsfile_set_seal, or NULL */
    struct remoca_client *client;
    const struct remoca_mrc *_Atomic mrc; /* without an engine (statsfile_set_mrc) */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

/* No lines at all without a curve: `remoca stats --mrc` tells "none" apart. */
static void write_mrc(FILE *f, const struct remoca_mrc *m)
{
    if (!m) return;
    struct remoca_mrc_stats ms;
    uint64_t sizes[MRC_POINTS];
    double ratios[MRC_POINTS];
    remoca_mrc_get_stats(m, &ms);
    size_t n = remoca_mrc_curve(m, sizes, ratios, MRC_POINTS);
    fprintf(
        f, "mrc_refs=%llu\nmrc_sampled=%llu\nmrc_rate=%.6g\nmrc_samples=%u\nmrc_bytes=%zu\nmrc=",
        (unsigned long long)ms.refs, (unsigned long long)ms.sampled, ms.rate, ms.samples, ms.bytes);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%llu:%.4f", i ? "," : "", (unsigned long long)sizes[i], ratios[i]);
    fputc('\n', f);
}

static void write_servers(FILE *f, struct remoca_client *client,
                          const struct remoca_client_stats *cs)
{
    fprintf(f, "client_servers=%u\nclient_membership_changes=%llu\n", cs->servers,
            (unsigned long long)cs->membership_changes);
    struct remoca_server_stats *ss = calloc(REMOCA_MAX_SERVERS, sizeof *ss);
    if (!ss) return;
    unsigned n = remoca_client_server_stats(client, ss, REMOCA_MAX_SERVERS);
    for (unsigned i = 0; i < n && i < REMOCA_MAX_SERVERS; i++)
        fprintf(f,
                "server%u=%s up=%d weight=%u requests=%llu keys=%llu hits=%llu misses=%llu "
                "puts=%llu errors=%llu timeouts=%llu reconnects=%llu p50_us=%llu p99_us=%llu\n",
                i, ss[i].addr, ss[i].up ? 1 : 0, ss[i].weight, (unsigned long long)ss[i].requests,
                (unsigned long long)ss[i].keys, (unsigned long long)ss[i].hits,
                (unsigned long long)ss[i].misses, (unsigned long long)ss[i].puts,
                (unsigned long long)ss[i].errors, (unsigned long long)ss[i].timeouts,
                (unsigned long long)ss[i].reconnects, (unsigned long long)ss[i].p50_us,
                (unsigned long long)ss[i].p99_us);
    free(ss);
}

static void write_stats(struct statsfile *s)
{
    struct remoca_cache *c = __atomic_load_n(s->cache, __ATOMIC_ACQUIRE);
    struct remoca_cache_stats st = {0};
    struct remoca_client_stats cs = {0};
    FILE *f = fopen(s->tmp, "w");
    if (!f) {
        nbdkit_debug("remoca-statsfile: %s: %s", s->tmp, strerror(errno));
        return;
    }
    if (c) remoca_cache_get_stats(c, &st);
    fprintf(f, "disk_size=%llu\n", c ? (unsigned long long)remoca_cache_disk_size(c) : 0ull);
    fprintf(f, "dir_blocks=%llu\n", c ? (unsigned long long)remoca_cache_dir_count(c) : 0ull);
    char buf[2048];
    size_t n = remoca_cache_format_stats(&st, "", buf, sizeof buf);
    fwrite(buf, 1, n < sizeof buf ? n : sizeof buf - 1, f);
    write_mrc(f, c ? remoca_cache_mrc(c) : atomic_load(&s->mrc));
    struct remoca_seal *const *sp = atomic_load(&s->seal);
    struct remoca_seal *seal = sp ? __atomic_load_n(sp, __ATOMIC_ACQUIRE) : NULL;
    if (seal) {
        struct remoca_seal_stats ss;
        remoca_seal_get_stats(seal, &ss);
        n = remoca_seal_format_stats(&ss, "seal_", buf, sizeof buf);
        fwrite(buf, 1, n < sizeof buf ? n : sizeof buf - 1, f);
    }
    if (s->client) remoca_client_get_stats(s->client, &cs);
    fprintf(f,
            "client_requests=%llu\nclient_timeouts=%llu\nclient_failures=%llu\n"
            "client_reconnects=%llu\nclient_servers_up=%u\nclient_servers_shm=%u\n"
            "one_sided_lookups=%llu\none_sided_hits=%llu\nring_puts=%llu\n"
            "client_servers_ring=%u\n",
            (unsigned long long)cs.requests, (unsigned long long)cs.timeouts,
            (unsigned long long)cs.failures, (unsigned long long)cs.reconnects, cs.servers_up,
            cs.servers_shm, (unsigned long long)cs.one_sided_lookups,
            (unsigned long long)cs.one_sided_hits, (unsigned long long)cs.ring_puts,
            cs.servers_ring);
    if (s->client) write_servers(f, s->client, &cs);
    if (fclose(f) == 0 && rename(s->tmp, s->path) == -1)
        nbdkit_debug("remoca-statsfile: rename %s: %s", s->path, strerror(errno));
}

void statsfile_set_mrc(struct statsfile *s, const struct remoca_mrc *m)
{
    atomic_store(&s->mrc, m);
}

void statsfile_set_seal(struct statsfile *s, struct remoca_seal *const *seal)
{
    atomic_store(&s->seal, seal);
}

static void *stats_main(void *arg)
{
    struct statsfile *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        write_stats(s);
        pthread_mutex_lock(&s->lock);
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &t) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct statsfile *statsfile_start(const char *path, struct remoca_cache *const *cache,
                                  struct remoca_client *client)
{
    struct statsfile *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)) || asprintf(&s->tmp, "%s.tmp", path) < 0) {
        nbdkit_error("remoca-statsfile: out of memory");
        goto fail;
    }
    s->cache = cache;
    s->client = client;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int e = pthread_create(&s->thread, NULL, stats_main, s);
    if (e) {
        nbdkit_error("remoca-statsfile: pthread_create: %s", strerror(e));
        goto fail;
    }
    return s;
fail:
    if (s) {
        free(s->path);
        free(s->tmp);
        free(s);
    }
    return NULL;
}

void statsfile_stop(struct statsfile *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    write_stats(s); /* final counters, at close */
    free(s->path);
    free(s->tmp);
    free(s);
}
