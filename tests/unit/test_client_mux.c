/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: request multiplexing, ordering, timeouts and reconnects of the
 * client core, against the in-process fake server of test_client_fake.h,
 * which answers out of order, and on demand never, or stops reading.
 *
 * The model used by the threaded tests: each thread owns a disjoint key set
 * and remembers the version of the last put of each key (0 = deleted).  A get
 * may miss (timeouts and reconnects reset the pool), but a hit must carry
 * exactly the bytes of the last put of that key, and a key deleted or taken
 * since must miss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "client_internal.h"
#include "test_client_fake.h"

#define PG REMOCA_PAGE_SIZE

static bool hit(const uint64_t *hits, unsigned i) { return hits[i / 64] >> (i % 64) & 1; }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static struct remoca_client *connect_to(const char *servers, unsigned timeout_ms)
{
    char err[256];
    struct remoca_client_opts o = {
        .servers = servers, .pool = "test/vda", .timeout_ms = timeout_ms};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) fail_msg("remoca_client_new: %s", err);
    return c;
}

static char *unix_list(struct fake *a, struct fake *b)
{
    static char s[300];
    if (b)
        snprintf(s, sizeof s, "unix:%s,unix:%s", a->path, b->path);
    else
        snprintf(s, sizeof s, "unix:%s", a->path);
    return s;
}

/* ---- single-threaded semantics ----------------------------------------- */

static void test_roundtrip(void **state)
{
    struct fake *f = fake_start(NULL);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 2000);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    assert_int_equal(atomic_load(&f->resets), 1); /* reset before first use */

    enum { N = 300 };
    uint8_t *buf = malloc(N * PG), *out = malloc(N * PG);
    uint64_t hits[(N + 63) / 64];
    for (unsigned i = 0; i < N; i++) fill(buf + i * PG, 1000 + i, 1);
    assert_int_equal(remoca_put(c, 1000, N, buf, true), 0);

    memset(out, 0xAB, N * PG);
    assert_int_equal(remoca_get(c, 1000, N, out, hits, false), N);
    for (unsigned i = 0; i < N; i++) {
        assert_true(hit(hits, i));
        assert_true(check(out + i * PG, 1000 + i, 1));
    }

    /* Misses leave their pages untouched; hits bitmap exact. */
    assert_int_equal(remoca_delete(c, 1010, 10, true), 0);
    memset(out, 0xAB, N * PG);
    assert_int_equal(remoca_get(c, 1000, N, out, hits, false), N - 10);
    for (unsigned i = 0; i < N; i++) {
        bool gone = i >= 10 && i < 20;
        assert_int_equal(hit(hits, i), !gone);
        if (gone)
            assert_int_equal(out[i * PG], 0xAB);
        else
            assert_true(check(out + i * PG, 1000 + i, 1));
    }

    /* Take removes. */
    assert_int_equal(remoca_get(c, 1000, 5, out, hits, true), 5);
    assert_int_equal(remoca_get(c, 1000, 5, out, hits, false), 0);

    /* A no-wait put is ordered before a later get; a no-wait delete too. */
    fill(buf, 7, 2);
    assert_int_equal(remoca_put(c, 7, 1, buf, false), 0);
    assert_int_equal(remoca_get(c, 7, 1, out, hits, false), 1);
    assert_true(check(out, 7, 2));
    assert_int_equal(remoca_delete(c, 7, 1, false), 0);
    assert_int_equal(remoca_get(c, 7, 1, out, hits, false), 0);

    /* Big delete (DELETE_RANGE) and pool reset. */
    assert_int_equal(remoca_put(c, 5000, N, buf, true), 0);
    assert_int_equal(remoca_delete(c, 4000, 100000, true), 0);
    assert_int_equal(remoca_get(c, 5000, N, out, hits, false), 0);
    assert_int_equal(remoca_put(c, 5000, 3, buf, true), 0);
    assert_int_equal(remoca_pool_reset(c), 0);
    assert_int_equal(remoca_get(c, 5000, 3, out, hits, false), 0);

    char *text = NULL;
    assert_int_equal(remoca_server_stats(c, 0, false, &text), 0);
    assert_string_equal(text, "fake 1\n");
    free(text);
    assert_int_equal(remoca_server_stats(c, 0, true, &text), 0);
    assert_string_equal(text, "{\"fake\":1}");
    free(text);
    assert_int_equal(remoca_server_stats(c, 1, true, &text), -1);

    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_true(st.requests >= 12);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.servers_up, 1);

    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

/* ---- many threads, model-checked --------------------------------------- */

#define THREADS 8
#define KEYS_PER_THREAD 600

struct worker {
    struct remoca_client *c;
    unsigned id, ops;
    uint32_t version[KEYS_PER_THREAD];
    unsigned hits, wrong, calls_ok;
    double max_call_ms;
};

static uint64_t key_of(struct worker *w, unsigned i)
{
    /* Interleaved key sets, so frames of different threads are neighbours. */
    return (uint64_t)i * THREADS + w->id;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned seed = 777 + w->id;
    uint8_t *buf = malloc(8 * PG), *out = malloc(8 * PG);
    uint64_t hits[1];
    uint32_t next_version = 1;
    for (unsigned op = 0; op < w->ops; op++) {
        unsigned i = (unsigned)rand_r(&seed) % KEYS_PER_THREAD;
        uint64_t k = key_of(w, i);
        unsigned r = (unsigned)rand_r(&seed) % 100;
        double t0 = now_ms();
        if (r < 35) { /* put, wait or not */
            uint32_t v = next_version++;
            fill(buf, k, v);
            remoca_put(w->c, k, 1, buf, r & 1);
            w->version[i] = v;
        } else if (r < 45) {
            remoca_delete(w->c, k, 1, r & 1);
            w->version[i] = 0;
        } else {
            bool take = r >= 90;
            memset(out, 0, PG);
            unsigned n = remoca_get(w->c, k, 1, out, hits, take);
            if (n) {
                w->hits++;
                if (w->version[i] == 0 || !check(out, k, w->version[i])) w->wrong++;
            }
            if (take) w->version[i] = 0;
        }
        double dt = now_ms() - t0;
        if (dt > w->max_call_ms) w->max_call_ms = dt;
    }
    free(buf);
    free(out);
    return NULL;
}

/* Runs the workers once; fresh=false keeps their models (same server state). */
static void run_workers(struct remoca_client *c, unsigned ops, struct worker *ws, bool fresh)
{
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        if (fresh) memset(&ws[t], 0, sizeof ws[t]);
        ws[t].c = c;
        ws[t].id = t;
        ws[t].ops = ops;
        pthread_create(&th[t], NULL, worker_main, &ws[t]);
    }
    for (unsigned t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
}

static void test_threads_out_of_order(void **state)
{
    struct fake *f = fake_start(NULL);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 5000);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    struct worker ws[THREADS];
    run_workers(c, 3000, ws, true);
    unsigned hits = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        assert_int_equal(ws[t].wrong, 0);
        hits += ws[t].hits;
    }
    assert_true(hits > 1000);
    /* The fake really answered out of order, many times. */
    assert_true(atomic_load(&f->reordered) > 100);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.reconnects, 0);
    remoca_client_free(c);
    fake_stop(f, true);
}

static void test_threads_with_drops(void **state)
{
    struct fake *f = fake_start(NULL);
    atomic_store(&f->drop_every, 151);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 100);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    struct worker ws[THREADS];
    struct remoca_client_stats st;
    /* Rounds until several timeouts and reconnects happened mid-run. */
    for (unsigned round = 0; round < 100; round++) {
        run_workers(c, 400, ws, round == 0);
        remoca_client_get_stats(c, &st);
        if (st.reconnects >= 3) break;
    }
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    unsigned hits = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        assert_int_equal(ws[t].wrong, 0);
        hits += ws[t].hits;
        /* No call blocks much longer than the timeout (hang detector only). */
        if (ws[t].max_call_ms > 3000) fail_msg("a call took %.0f ms", ws[t].max_call_ms);
    }
    remoca_client_get_stats(c, &st);
    assert_true(st.timeouts > 0);
    assert_true(st.reconnects > 0);
    assert_int_equal(atomic_load(&f->resets), st.reconnects + 1);
    assert_true(atomic_load(&f->dropped) > 0);
    assert_true(hits > 0);
    remoca_client_free(c);
    fake_stop(f, true);
}

/* ---- timeouts, hung and dead servers ----------------------------------- */

static void test_timeout_resets_pool(void **state)
{
    struct fake *f = fake_start(NULL);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 500);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    uint8_t page[PG], out[PG];
    uint64_t hits[1];
    fill(page, 5, 1);
    assert_int_equal(remoca_put(c, 5, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 5, 1, out, hits, false), 1);

    atomic_store(&f->drop_key, 100);
    assert_int_equal(remoca_get(c, 100, 1, out, hits, false), 0);
    assert_int_equal(hits[0], 0);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_true(st.failures >= 1);

    atomic_store(&f->drop_key, UINT64_MAX);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    /* Waiting for "ready" may race with the teardown; settle. */
    for (int i = 0; i < 100 && atomic_load(&f->resets) < 2; i++) usleep(10000);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(atomic_load(&f->resets), 2);
    /* Key 5 was dropped by the reset: the client must not see it. */
    assert_int_equal(remoca_get(c, 5, 1, out, hits, false), 0);
    assert_int_equal(remoca_put(c, 5, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 5, 1, out, hits, false), 1);
    remoca_client_free(c);
    fake_stop(f, true);
}

static void test_hung_server(void **state)
{
    struct fake *f = fake_start(NULL);
    const unsigned timeout = 200;
    struct remoca_client *c = connect_to(unix_list(f, NULL), timeout);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    uint8_t *buf = calloc(REMOCA_MAX_BATCH, PG);
    uint64_t hits[REMOCA_MAX_BATCH / 64];

    atomic_store(&f->stall, true);
    double worst = 0;
    for (unsigned i = 0; i < 20; i++) {
        double t0 = now_ms();
        remoca_put(c, (uint64_t)i * REMOCA_MAX_BATCH, REMOCA_MAX_BATCH, buf, false);
        remoca_get(c, 3, 1, buf, hits, false);
        double dt = now_ms() - t0;
        if (dt > worst) worst = dt;
    }
    /* Hang detector, not a speed check: a few timeouts at most per call. */
    if (worst > 10.0 * timeout) fail_msg("a call took %.0f ms with timeout %u", worst, timeout);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_true(st.failures > 0);

    atomic_store(&f->stall, false);
    atomic_store(&f->close_now, true);
    assert_int_equal(remoca_client_wait_ready(c, 10000), 1);
    /* Usable again (retry: the first calls may still see the old connection). */
    int ok = -1;
    for (int i = 0; i < 50 && ok != 0; i++) {
        ok = remoca_put(c, 9, 1, buf, true);
        if (ok) usleep(50000);
    }
    assert_int_equal(ok, 0);
    assert_int_equal(remoca_get(c, 9, 1, buf, hits, false), 1);
    remoca_client_free(c);
    free(buf);
    fake_stop(f, true);
}

/* A send that times out half way through a frame: the rest of the frame is
 * sent from a copy once the server reads again, then a POOL_RESET on the
 * SAME connection (the server executes it after everything sent before),
 * and the connection is usable again: no reconnect, no corrupt stream. */
static void test_cut_frame_quarantine(void **state)
{
    struct fake *f = fake_start(NULL);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 200);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    uint8_t *buf = malloc(REMOCA_MAX_BATCH * PG);
    uint64_t hits[REMOCA_MAX_BATCH / 64];
    for (unsigned i = 0; i < REMOCA_MAX_BATCH; i++) fill(buf + i * PG, 20000 + i, 1);
    assert_int_equal(remoca_put(c, 20000, REMOCA_MAX_BATCH, buf, true), 0);

    atomic_store(&f->stall, true);
    usleep(60000); /* the fake is now in its stall loop */
    /* Several 1 MiB puts: the socket buffers fill, a send times out mid-frame. */
    for (unsigned i = 0; i < 4; i++) remoca_put(c, 30000 + i * 256, REMOCA_MAX_BATCH, buf, false);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.servers_up, 0);                             /* quarantined */
    assert_int_equal(remoca_get(c, 20000, 1, buf, hits, false), 0); /* misses meanwhile */

    atomic_store(&f->stall, false);
    assert_int_equal(remoca_client_wait_ready(c, 10000), 1);
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(atomic_load(&f->connections), 1); /* same connection */
    assert_int_equal(atomic_load(&f->resets), 2);
    /* The reset ran after the old puts: nothing old is served. */
    assert_int_equal(remoca_get(c, 20000, REMOCA_MAX_BATCH, buf, hits, false), 0);
    assert_int_equal(remoca_get(c, 30000, REMOCA_MAX_BATCH, buf, hits, false), 0);
    fill(buf, 5, 5);
    assert_int_equal(remoca_put(c, 5, 1, buf, true), 0);
    assert_int_equal(remoca_get(c, 5, 1, buf, hits, false), 1);
    assert_true(check(buf, 5, 5));
    remoca_client_free(c);
    free(buf);
    fake_stop(f, true);
}

/* The server stalls in the middle of a response the receiver is reading
 * into the caller's buffer: the caller still returns (a miss) within about
 * two timeouts, the connection is closed (it cannot be resynchronised), and
 * a new one is made once the server serves again. */
static void test_response_stuck_half_way(void **state)
{
    struct fake *f = fake_start(NULL);
    const unsigned timeout = 200;
    struct remoca_client *c = connect_to(unix_list(f, NULL), timeout);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    uint8_t *buf = malloc(64 * PG);
    uint64_t hits[1];
    for (unsigned i = 0; i < 64; i++) fill(buf + i * PG, 640 + i, 1);
    assert_int_equal(remoca_put(c, 640, 64, buf, true), 0);

    atomic_store(&f->half_key, 650);
    memset(buf, 0, 64 * PG);
    double t0 = now_ms();
    assert_int_equal(remoca_get(c, 640, 64, buf, hits, false), 0);
    double dt = now_ms() - t0;
    if (dt > 10.0 * timeout) fail_msg("get took %.0f ms", dt);
    assert_int_equal(hits[0], 0);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.timeouts, 1);

    atomic_store(&f->half_key, UINT64_MAX);
    atomic_store(&f->stall, false);
    for (int i = 0; i < 500 && atomic_load(&f->connections) < 2; i++) usleep(10000);
    assert_int_equal(remoca_client_wait_ready(c, 10000), 1);
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(atomic_load(&f->connections), 2);
    assert_int_equal(remoca_get(c, 640, 64, buf, hits, false), 0); /* pool was reset */
    remoca_client_free(c);
    free(buf);
    fake_stop(f, true);
}

static void test_server_down_at_start(void **state)
{
    char dir[] = "/tmp/remoca-fake-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[108], list[128];
    snprintf(path, sizeof path, "%s/later.sock", dir);
    snprintf(list, sizeof list, "unix:%s", path);
    struct remoca_client *c = connect_to(list, 200);
    assert_int_equal(remoca_client_wait_ready(c, 100), 0);
    uint8_t page[PG];
    uint64_t hits[1];
    fill(page, 1, 1);
    assert_int_equal(remoca_get(c, 1, 1, page, hits, false), 0);
    assert_int_equal(remoca_put(c, 1, 1, page, true), -1);
    assert_int_equal(remoca_put(c, 1, 1, page, false), -1);
    assert_int_equal(remoca_delete(c, 1, 1, true), -1);
    assert_int_equal(remoca_pool_reset(c), 0); /* down: reset on connect anyway */
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.servers_up, 0);
    assert_true(st.failures >= 4);

    struct fake *f = fake_start(path);
    assert_int_equal(remoca_client_wait_ready(c, 10000), 1);
    assert_int_equal(remoca_put(c, 1, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 1, 1, page, hits, false), 1);
    assert_true(check(page, 1, 1));
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.reconnects, 0); /* first connection */

    /* Server crash and restart on the same path: misses meanwhile, then a
     * reconnect (with its pool reset) and an empty pool. */
    fake_stop(f, false);
    f = fake_start(path);
    for (int i = 0; i < 500 && st.reconnects < 1; i++) {
        remoca_get(c, 1, 1, page, hits, false);
        usleep(20000);
        remoca_client_get_stats(c, &st);
    }
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(remoca_client_wait_ready(c, 10000), 1);
    assert_int_equal(atomic_load(&f->resets), 1);
    assert_int_equal(remoca_get(c, 1, 1, page, hits, false), 0); /* fresh pool */
    remoca_client_free(c);
    fake_stop(f, true);
}

/* A client whose server never answers the handshake frees promptly. */
static void test_free_while_connecting(void **state)
{
    struct fake *f = fake_start(NULL);
    atomic_store(&f->stall, true);
    struct remoca_client *c = connect_to(unix_list(f, NULL), 60000);
    usleep(50000);
    double t0 = now_ms();
    remoca_client_free(c);
    if (now_ms() - t0 > 5000) fail_msg("free took %.0f ms", now_ms() - t0);
    atomic_store(&f->stall, false);
    fake_stop(f, true);
}

/* ---- two servers ------------------------------------------------------- */

static unsigned count_present(struct fake *f, uint64_t from, uint64_t n)
{
    unsigned cnt = 0;
    for (uint64_t k = from; k < from + n; k++) cnt += f->present[k];
    return cnt;
}

static void test_two_servers(void **state)
{
    struct fake *a = fake_start(NULL), *b = fake_start(NULL);
    struct remoca_client *c = connect_to(unix_list(a, b), 1000);
    assert_int_equal(remoca_server_count(c), 2);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 2);
    enum { N = 4096, CALL = 512 };
    uint8_t *buf = malloc(CALL * PG);
    uint64_t hits[CALL / 64];
    for (unsigned base = 0; base < N; base += CALL) {
        for (unsigned i = 0; i < CALL; i++) fill(buf + i * PG, base + i, 3);
        assert_int_equal(remoca_put(c, base, CALL, buf, true), 0);
    }
    unsigned on_a = 0;
    for (uint64_t k = 0; k < N; k++) on_a += remoca_server_of(c, k) == 0;
    /* Each server holds exactly the keys placement gives it. */
    assert_true(on_a > N / 4 && on_a < N * 3 / 4);
    assert_int_equal(count_present(a, 0, N), on_a);
    assert_int_equal(count_present(b, 0, N), N - on_a);

    /* One call spanning both servers: one round trip, all hits, right bytes. */
    memset(buf, 0, CALL * PG);
    assert_int_equal(remoca_get(c, 1000, CALL, buf, hits, false), CALL);
    for (unsigned i = 0; i < CALL; i++) assert_true(check(buf + i * PG, 1000 + i, 3));

    /* A small delete goes per placement run; a big one (DELETE_RANGE to
     * every server) and a huge one (pool reset) reach both servers. */
    assert_int_equal(remoca_delete(c, 100, 300, true), 0);
    assert_int_equal(count_present(a, 100, 300) + count_present(b, 100, 300), 0);
    assert_int_equal(count_present(a, 0, 100) + count_present(b, 0, 100), 100);
    assert_int_equal(remoca_delete(c, 0, 10000, true), 0);
    assert_int_equal(count_present(a, 0, N) + count_present(b, 0, N), 0);
    for (unsigned base = 0; base < N; base += CALL) {
        for (unsigned i = 0; i < CALL; i++) fill(buf + i * PG, base + i, 3);
        assert_int_equal(remoca_put(c, base, CALL, buf, true), 0);
    }
    unsigned resets = atomic_load(&a->resets) + atomic_load(&b->resets);
    assert_int_equal(remoca_delete(c, 0, UINT64_MAX, true), 0);
    assert_int_equal(atomic_load(&a->resets) + atomic_load(&b->resets), resets + 2);
    assert_int_equal(count_present(a, 0, N) + count_present(b, 0, N), 0);
    for (unsigned base = 0; base < N; base += CALL) {
        for (unsigned i = 0; i < CALL; i++) fill(buf + i * PG, base + i, 3);
        assert_int_equal(remoca_put(c, base, CALL, buf, true), 0);
    }

    /* Kill b: its keys miss, a's keys still hit, nothing fails loudly. */
    fake_stop(b, true);
    unsigned got = 0, expect_a = 0;
    for (unsigned base = 0; base < N; base += CALL) {
        memset(buf, 0, CALL * PG);
        got += remoca_get(c, base, CALL, buf, hits, false);
        for (unsigned i = 0; i < CALL; i++) {
            bool on_b = remoca_server_of(c, base + i) == 1;
            expect_a += !on_b;
            if (hit(hits, i)) {
                assert_false(on_b);
                assert_true(check(buf + i * PG, base + i, 3));
            }
        }
    }
    assert_int_equal(got, expect_a);
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    assert_int_equal(st.servers_up, 1);
    remoca_client_free(c);
    free(buf);
    fake_stop(a, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_threads_out_of_order),
        cmocka_unit_test(test_threads_with_drops),
        cmocka_unit_test(test_timeout_resets_pool),
        cmocka_unit_test(test_hung_server),
        cmocka_unit_test(test_cut_frame_quarantine),
        cmocka_unit_test(test_response_stuck_half_way),
        cmocka_unit_test(test_server_down_at_start),
        cmocka_unit_test(test_free_while_connecting),
        cmocka_unit_test(test_two_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
