/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: one-sided reads of the client core (lib/client/client_shm.c) against
 * the in-process fake server of test_client_fake.h with its shared store
 * (the server side of lib/wire/include/remoca/shm.h, written under the seqlock rules
 * by the fake's thread while the client reads it).
 *
 * What must hold: SHM_MAP not offered is no failure; gets are served from
 * the mapping without a frame; a no-wait delete returns once ordered, and a
 * get after it never sees the deleted page: it goes over the socket while
 * the delete is unanswered, and is one-sided again once the answer is read;
 * only gets of the deleted keys' stripes wait so (a pending delete of one
 * key leaves another stripe's reads one-sided; a delete too wide to stripe
 * holds them all);
 * the mapping is kept through a quarantine and replaced at a reconnect (the
 * old one unmapped); and under concurrent puts, deletes and evictions a hit
 * is always the last page put (never stale, never torn).
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

static struct remoca_client *connect_shm(struct fake *f, unsigned timeout_ms,
                                         enum remoca_shm_opt shm)
{
    char err[256], servers[200];
    snprintf(servers, sizeof servers, "unix:%s", f->path);
    struct remoca_client_opts o = {
        .servers = servers, .pool = "test/vda", .timeout_ms = timeout_ms, .shm = shm};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) fail_msg("remoca_client_new: %s", err);
    return c;
}

static bool shm_up(void *arg)
{
    struct remoca_client_stats st = stats(arg);
    return st.servers_up == 1 && st.servers_shm == 1;
}

/* A client with one-sided reads on, once its connection is up and mapped. */
static struct remoca_client *connect_mapped(struct fake *f, unsigned timeout_ms)
{
    struct remoca_client *c = connect_shm(f, timeout_ms, REMOCA_SHM_ON);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    assert_true(wait_until(shm_up, c, 2000));
    return c;
}

/* ---- not offered ------------------------------------------------------- */

static void test_not_offered(void **state)
{
    struct fake *f = fake_start(NULL); /* SHM_MAP: E_OP, like an older server */
    struct remoca_client *c = connect_shm(f, 2000, REMOCA_SHM_ON);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    uint8_t *buf = malloc(4 * PG), *out = malloc(4 * PG);
    uint64_t hits[1];
    for (unsigned i = 0; i < 4; i++) fill(buf + i * PG, 10 + i, 1);
    assert_int_equal(remoca_put(c, 10, 4, buf, true), 0);
    assert_int_equal(remoca_get(c, 10, 4, out, hits, false), 4);
    assert_true(check(out + 3 * PG, 13, 1));
    struct remoca_client_stats st = stats(c);
    assert_int_equal(st.servers_shm, 0);
    assert_int_equal(st.one_sided_lookups, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(atomic_load(&f->gets), 1);
    remoca_client_free(c);

    /* Refused (E_STATE: e.g. memd without --shm) is the same. */
    fake_shm_enable(f, 64);
    atomic_store(&f->shm_refuse, true);
    c = connect_shm(f, 2000, REMOCA_SHM_ON);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    assert_int_equal(stats(c).servers_shm, 0);
    assert_int_equal(remoca_put(c, 10, 4, buf, true), 0);
    assert_int_equal(remoca_get(c, 10, 4, out, hits, false), 4);
    assert_int_equal(atomic_load(&f->shm_maps), 0);
    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

/* ---- the data path ----------------------------------------------------- */

static void test_one_sided_reads(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 1024);
    unsigned maps0 = memfd_mappings("fake-shm-data");
    struct remoca_client *c = connect_mapped(f, 2000);
    assert_int_equal(atomic_load(&f->shm_maps), 1);
    assert_int_equal(memfd_mappings("fake-shm-data"), maps0 + 1);

    enum { N = 300 };
    uint8_t *buf = malloc(N * PG), *out = malloc(N * PG);
    uint64_t hits[(N + 63) / 64];
    for (unsigned i = 0; i < N; i++) fill(buf + i * PG, 1000 + i, 1);
    assert_int_equal(remoca_put(c, 1000, N, buf, true), 0);

    /* Served from the mapping: no GET reaches the server. */
    assert_int_equal(remoca_get(c, 1000, N, out, hits, false), N);
    for (unsigned i = 0; i < N; i++) {
        assert_true(hit(hits, i));
        assert_true(check(out + i * PG, 1000 + i, 1));
    }
    assert_int_equal(atomic_load(&f->gets), 0);
    struct remoca_client_stats st = stats(c);
    assert_int_equal(st.one_sided_lookups, N);
    assert_int_equal(st.one_sided_hits, N);
    /* The server learns of the hits through the touch map. */
    uint8_t *touch = mmap(NULL, f->shm->l.touch_size, PROT_READ, MAP_SHARED, f->shm->touch_fd, 0);
    assert_true(touch != MAP_FAILED);
    uint32_t slot = fake_shm_find(f->shm, 1000);
    assert_int_equal(touch[slot], 1);
    munmap(touch, f->shm->l.touch_size);

    /* A no-wait delete: the get after it misses the deleted keys, whichever
     * way it is served (test_no_wait_delete tells the ways apart). */
    assert_int_equal(remoca_delete(c, 1010, 10, false), 0);
    assert_int_equal(remoca_get(c, 1000, N, out, hits, false), N - 10);
    for (unsigned i = 0; i < N; i++) assert_int_equal(hit(hits, i), !(i >= 10 && i < 20));

    /* Big deletes (DELETE_RANGE) and resets too. */
    assert_int_equal(remoca_delete(c, 900, 100000, false), 0);
    assert_int_equal(remoca_get(c, 1000, N, out, hits, false), 0);
    assert_int_equal(remoca_put(c, 5, 3, buf, true), 0);
    assert_int_equal(remoca_get(c, 5, 3, out, hits, false), 3);
    assert_int_equal(remoca_pool_reset(c), 0);
    assert_int_equal(remoca_get(c, 5, 3, out, hits, false), 0);

    /* A no-wait put may not be executed yet: a miss or the new page. */
    fill(buf, 7, 2);
    assert_int_equal(remoca_put(c, 7, 1, buf, false), 0);
    if (remoca_get(c, 7, 1, out, hits, false) == 1) assert_true(check(out, 7, 2));

    /* Take goes over the socket (it changes the server's state). */
    assert_int_equal(remoca_put(c, 20, 2, buf, true), 0);
    unsigned gets = atomic_load(&f->gets);
    uint64_t lookups = stats(c).one_sided_lookups;
    assert_int_equal(remoca_get(c, 20, 2, out, hits, true), 2);
    assert_int_equal(atomic_load(&f->gets), gets + 1);
    assert_int_equal(stats(c).one_sided_lookups, lookups);
    assert_int_equal(remoca_get(c, 20, 2, out, hits, false), 0);

    st = stats(c);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.timeouts, 0);
    remoca_client_free(c);
    assert_int_equal(memfd_mappings("fake-shm-data"), maps0); /* unmapped at free */

    /* shm off: never mapped. */
    c = connect_shm(f, 2000, REMOCA_SHM_OFF);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    assert_int_equal(remoca_put(c, 10, 1, buf, true), 0);
    assert_int_equal(remoca_get(c, 10, 1, out, hits, false), 1);
    assert_int_equal(stats(c).one_sided_lookups, 0);
    assert_int_equal(atomic_load(&f->shm_maps), 1);
    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

/* A no-wait delete returns once ordered (in the send queue).  Until its
 * answer is read, gets on that connection are sent, behind it; once it is
 * read (by the next socket get, or by the connection thread's lazy reads:
 * the fake answers out of order), they are one-sided again.  In every
 * round, the get right after the delete must miss the deleted keys and hit
 * the others with the current version, and both paths must be taken. */
static void test_no_wait_delete(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 1024);
    struct remoca_client *c = connect_mapped(f, 2000);

    enum { N = 64, DEL = 4, ROUNDS = 20, BASE = 100 };
    uint8_t *buf = malloc(N * PG), *out = malloc(N * PG);
    uint64_t hits[1];
    unsigned over_socket = 0, one_sided_after = 0;
    for (unsigned r = 0; r < ROUNDS; r++) {
        uint32_t version = r + 1;
        for (unsigned i = 0; i < N; i++) fill(buf + i * PG, BASE + i, version);
        assert_int_equal(remoca_put(c, BASE, N, buf, true), 0);
        unsigned first = (r * 7) % (N - DEL);
        unsigned deletes = atomic_load(&f->deletes);
        assert_int_equal(remoca_delete(c, BASE + first, DEL, false), 0);

        /* The get right after it. */
        struct remoca_client_stats st0 = stats(c);
        unsigned gets0 = atomic_load(&f->gets);
        assert_int_equal(remoca_get(c, BASE, N, out, hits, false), N - DEL);
        struct remoca_client_stats st1 = stats(c);
        for (unsigned i = 0; i < N; i++) {
            bool deleted = i >= first && i < first + DEL;
            assert_int_equal(hit(hits, i), !deleted);
            if (!deleted) assert_true(check(out + i * PG, BASE + i, version));
        }
        if (st1.one_sided_lookups == st0.one_sided_lookups) {
            /* Sent: one frame, behind the delete. */
            assert_int_equal(st1.requests, st0.requests + 1);
            assert_int_equal(atomic_load(&f->gets), gets0 + 1);
            over_socket++;
        } else {
            /* One-sided: the delete had been executed and answered. */
            assert_int_equal(st1.one_sided_lookups, st0.one_sided_lookups + N);
            assert_int_equal(st1.requests, st0.requests);
            assert_int_equal(atomic_load(&f->deletes), deletes + 1);
        }

        /* Later gets are one-sided again (within the lazy read period), and
         * still miss the deleted keys. */
        bool healed = false;
        for (unsigned t = 0; t < 400 && !healed; t++) {
            st0 = stats(c);
            assert_int_equal(remoca_get(c, BASE, N, out, hits, false), N - DEL);
            for (unsigned i = 0; i < N; i++)
                assert_int_equal(hit(hits, i), !(i >= first && i < first + DEL));
            healed = stats(c).one_sided_lookups == st0.one_sided_lookups + N;
            if (!healed) usleep(5000);
        }
        assert_true(healed);
        assert_int_equal(atomic_load(&f->deletes), deletes + 1);
        one_sided_after++;
    }
    print_message("no-wait deletes: %u of %u gets right after went over the socket\n", over_socket,
                  ROUNDS);
    assert_true(over_socket >= 1);
    assert_int_equal(one_sided_after, ROUNDS);
    struct remoca_client_stats st = stats(c);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.timeouts, 0);
    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

/* Pending deletes are counted by key (client_inval.c): while the server
 * holds a no-wait delete of key A unanswered (stalled), a get of key B in
 * another stripe is still one-sided, and a get of A goes over the socket,
 * behind the delete (answered once the server resumes: a miss).  A delete
 * too wide to stripe stops every one-sided read until it is answered. */
/* Whether a get of B (key 83, version 1) is served one-sidedly now. */
static bool b_one_sided(void *arg)
{
    struct remoca_client *c = arg;
    uint8_t out[PG];
    uint64_t hits[1];
    uint64_t lookups = stats(c).one_sided_lookups;
    if (remoca_get(c, 83, 1, out, hits, false) != 1 || !check(out, 83, 1)) fail();
    return stats(c).one_sided_lookups == lookups + 1;
}

static void test_delete_stripes(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 1024);
    struct remoca_client *c = connect_mapped(f, 3000);

    enum { A = 3, A2 = A + 1, B = A + 5 * INVAL_STRIPE_KEYS, WIDE = 4000 };
    _Static_assert(B == 83, "b_one_sided reads key 83");
    uint8_t page[PG], out[PG];
    uint64_t hits[1];
    const uint64_t keys[] = {A, A2, B};
    for (unsigned i = 0; i < 3; i++) {
        fill(page, keys[i], 1);
        assert_int_equal(remoca_put(c, keys[i], 1, page, true), 0);
    }

    /* Hold the delete of A: the server stops reading. */
    atomic_store(&f->stall, true);
    usleep(100 * 1000); /* the fake may be in a poll that would still read */
    unsigned gets0 = atomic_load(&f->gets);
    assert_int_equal(remoca_delete(c, A, 1, false), 0);

    /* B, in another stripe: one-sided, the current page, no frame. */
    for (unsigned r = 0; r < 10; r++) {
        struct remoca_client_stats st0 = stats(c);
        assert_int_equal(remoca_get(c, B, 1, out, hits, false), 1);
        assert_true(check(out, B, 1));
        struct remoca_client_stats st1 = stats(c);
        assert_int_equal(st1.one_sided_lookups, st0.one_sided_lookups + 1);
        assert_int_equal(st1.requests, st0.requests);
    }
    assert_int_equal(atomic_load(&f->deletes), 0);

    /* A: over the socket, behind the delete; the server resumes meanwhile. */
    struct unstall u = {f, 200};
    pthread_t t;
    pthread_create(&t, NULL, unstall_later, &u);
    struct remoca_client_stats st0 = stats(c);
    assert_int_equal(remoca_get(c, A, 1, out, hits, false), 0);
    struct remoca_client_stats st1 = stats(c);
    pthread_join(t, NULL);
    assert_int_equal(st1.one_sided_lookups, st0.one_sided_lookups);
    assert_int_equal(atomic_load(&f->gets), gets0 + 1);
    assert_int_equal(atomic_load(&f->deletes), 1);
    assert_int_equal(st1.timeouts, 0);

    /* A2 shares A's stripe: one-sided again once the delete's answer is read
     * (by now, or by the lazy reads), and still a hit. */
    bool healed = false;
    for (unsigned r = 0; r < 400 && !healed; r++) {
        st0 = stats(c);
        assert_int_equal(remoca_get(c, A2, 1, out, hits, false), 1);
        assert_true(check(out, A2, 1));
        healed = stats(c).one_sided_lookups == st0.one_sided_lookups + 1;
        if (!healed) usleep(5000);
    }
    assert_true(healed);

    /* A wide delete (more stripes than INVAL_SPAN_MAX) that does not cover B
     * still holds B's reads: it counts globally. */
    atomic_store(&f->stall, true);
    usleep(100 * 1000);
    gets0 = atomic_load(&f->gets);
    assert_int_equal(remoca_delete(c, 1000, WIDE, false), 0);
    pthread_create(&t, NULL, unstall_later, &u);
    st0 = stats(c);
    assert_int_equal(remoca_get(c, B, 1, out, hits, false), 1);
    assert_true(check(out, B, 1));
    st1 = stats(c);
    pthread_join(t, NULL);
    assert_int_equal(st1.one_sided_lookups, st0.one_sided_lookups);
    assert_int_equal(atomic_load(&f->gets), gets0 + 1);
    assert_true(wait_until(b_one_sided, c, 2000));

    /* More deletes pending than the connection records (INVAL_RECS), all far
     * from B: those past the ring count globally and hold B's reads, until
     * answered; then B is one-sided again. */
    atomic_store(&f->stall, true);
    usleep(100 * 1000);
    for (unsigned i = 0; i < INVAL_RECS + 40; i++)
        assert_int_equal(remoca_delete(c, 20000 + i, 1, false), 0);
    pthread_create(&t, NULL, unstall_later, &u);
    st0 = stats(c);
    assert_int_equal(remoca_get(c, B, 1, out, hits, false), 1);
    assert_int_equal(stats(c).one_sided_lookups, st0.one_sided_lookups);
    pthread_join(t, NULL);
    assert_true(wait_until(b_one_sided, c, 2000));

    st1 = stats(c);
    assert_int_equal(st1.failures, 0);
    assert_int_equal(st1.timeouts, 0);
    remoca_client_free(c);
    fake_stop(f, true);
}

/* A delete answered with another key than sent: the client counts down
 * what it sent, not what is echoed, and takes the answer as a protocol
 * error (the server is out of step): the connection goes, and the pool is
 * reset before reads resume. */
static bool reconnected(void *arg);

static void test_delete_bad_echo(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 256);
    struct remoca_client *c = connect_mapped(f, 2000);
    uint8_t page[PG], out[PG];
    uint64_t hits[1];
    fill(page, 5, 1);
    assert_int_equal(remoca_put(c, 5, 1, page, true), 0);
    atomic_store(&f->echo_shift, 5 * INVAL_STRIPE_KEYS);
    assert_int_equal(remoca_delete(c, 5, 1, true), -1);
    assert_true(wait_until(reconnected, c, 5000));
    assert_int_equal(atomic_load(&f->connections), 2);
    atomic_store(&f->echo_shift, 0);
    assert_int_equal(remoca_get(c, 5, 1, out, hits, false), 0);
    remoca_client_free(c);
    fake_stop(f, true);
}

/* ---- lifetime ---------------------------------------------------------- */

static bool reconnected(void *arg)
{
    struct remoca_client_stats st = stats(arg);
    return st.reconnects >= 1 && st.servers_up == 1 && st.servers_shm == 1;
}

static void test_reconnect_remaps(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 256);
    unsigned maps0 = memfd_mappings("fake-shm-data");
    struct remoca_client *c = connect_mapped(f, 1000);
    uint8_t page[PG], out[PG];
    uint64_t hits[1];
    fill(page, 3, 1);
    assert_int_equal(remoca_put(c, 3, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 3, 1, out, hits, false), 1);

    /* The server closes the connection: teardown unmaps; the reconnect maps
     * the store again, after its pool reset. */
    atomic_store(&f->close_now, true);
    assert_true(wait_until(reconnected, c, 5000));
    assert_int_equal(atomic_load(&f->shm_maps), 2);
    assert_int_equal(memfd_mappings("fake-shm-data"), maps0 + 1);
    assert_int_equal(remoca_get(c, 3, 1, out, hits, false), 0); /* reset */
    assert_int_equal(remoca_put(c, 3, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 3, 1, out, hits, false), 1);
    assert_true(check(out, 3, 1));
    remoca_client_free(c);
    assert_int_equal(memfd_mappings("fake-shm-data"), maps0);
    fake_stop(f, true);
}

static void test_quarantine_keeps_mapping(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 256);
    unsigned maps0 = memfd_mappings("fake-shm-data");
    struct remoca_client *c = connect_mapped(f, 300);
    uint8_t page[PG], out[PG];
    uint64_t hits[1];
    fill(page, 4, 1);
    assert_int_equal(remoca_put(c, 4, 1, page, true), 0);

    /* A hung server: the delete is ordered but never executed, so the page
     * it meant to delete is still in the store; the get after it goes over
     * the socket (the delete is unanswered), times out and quarantines the
     * connection; reads are off until the server answers a pool reset. */
    atomic_store(&f->stall, true);
    usleep(100 * 1000); /* the fake may be in a poll that would still read */
    assert_int_equal(remoca_delete(c, 4, 1, false), 0);
    uint64_t lookups = stats(c).one_sided_lookups;
    assert_int_equal(remoca_get(c, 4, 1, out, hits, false), 0);
    assert_int_equal(stats(c).one_sided_lookups, lookups);
    assert_true(stats(c).timeouts >= 1);
    assert_int_equal(stats(c).servers_up, 0);
    assert_int_equal(remoca_get(c, 4, 1, out, hits, false), 0);
    assert_int_equal(stats(c).one_sided_lookups, lookups);
    assert_int_equal(memfd_mappings("fake-shm-data"), maps0 + 1); /* kept */
    atomic_store(&f->stall, false);
    assert_true(wait_until(reconnected, c, 5000));
    assert_int_equal(atomic_load(&f->connections), 1); /* same connection */
    assert_int_equal(atomic_load(&f->shm_maps), 1);
    assert_int_equal(remoca_get(c, 4, 1, out, hits, false), 0); /* reset ran */
    assert_int_equal(remoca_put(c, 4, 1, page, true), 0);
    assert_int_equal(remoca_get(c, 4, 1, out, hits, false), 1);
    assert_true(stats(c).one_sided_hits >= 1);
    remoca_client_free(c);
    fake_stop(f, true);
}

/* ---- concurrency ------------------------------------------------------- */

/* Each thread owns keys k with k % THREADS == id, in [0, KEYS), and uses them
 * as the cache engine does: a page is put only on a deleted key (a new
 * version always follows a delete), so a hit must be exactly the current
 * version, and a deleted key must miss.  The store holds fewer slots than
 * keys: evictions reuse slots under the readers. */
#define THREADS 4u
#define KEYS 2048u
#define OPS 6000u

struct worker {
    struct remoca_client *c;
    unsigned id;
    unsigned bad, hits, errors;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint32_t version[KEYS] = {0}; /* 0: deleted */
    unsigned seed = 77 + w->id;
    uint8_t *buf = malloc(8 * PG), *out = malloc(8 * PG);
    for (unsigned op = 0; op < OPS; op++) {
        uint64_t k = (uint64_t)(rand_r(&seed) % (KEYS / THREADS)) * THREADS + w->id;
        unsigned r = (unsigned)rand_r(&seed) % 10;
        if (r < 3) { /* write: delete, then maybe put the new version */
            if (remoca_delete(w->c, k, 1, false) != 0) w->errors++;
            version[k] = 0;
            if (r < 2) {
                uint32_t v = op + 1;
                fill(buf, k, v);
                if (remoca_put(w->c, k, 1, buf, r == 0) != 0) w->errors++;
                version[k] = v;
            }
        } else { /* read the key (and the thread's next keys) */
            uint32_t n = 1 + (unsigned)rand_r(&seed) % 4;
            uint64_t hits[1];
            uint64_t base = k; /* the thread's keys are THREADS apart */
            for (uint32_t j = 0; j < n; j++) {
                uint64_t kk = base + (uint64_t)j * THREADS;
                if (kk >= KEYS) break;
                if (remoca_get(w->c, kk, 1, out, hits, false)) {
                    w->hits++;
                    if (!version[kk] || !check(out, kk, version[kk])) w->bad++;
                }
            }
        }
    }
    free(buf);
    free(out);
    return NULL;
}

static void test_threads_never_stale(void **state)
{
    struct fake *f = fake_start(NULL);
    fake_shm_enable(f, 512);
    struct remoca_client *c = connect_mapped(f, 2000);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    unsigned bad = 0, hits = 0, errors = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad;
        hits += w[i].hits;
        errors += w[i].errors;
    }
    struct remoca_client_stats st = stats(c);
    print_message("one-sided: %u hits (%u stale), %llu of %llu lookups, server GETs %u, "
                  "failures %llu\n",
                  hits, bad, (unsigned long long)st.one_sided_hits,
                  (unsigned long long)st.one_sided_lookups, atomic_load(&f->gets),
                  (unsigned long long)st.failures);
    assert_int_equal(bad, 0);
    assert_int_equal(errors, 0);
    assert_true(hits > 100);
    /* Both ways were taken: over the socket behind pending deletes, and
     * one-sided in between. */
    assert_true(atomic_load(&f->gets) > 0);
    assert_true(st.one_sided_hits > 0);
    assert_int_equal(st.failures, 0);
    remoca_client_free(c);
    fake_stop(f, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_offered),
        cmocka_unit_test(test_one_sided_reads),
        cmocka_unit_test(test_no_wait_delete),
        cmocka_unit_test(test_delete_stripes),
        cmocka_unit_test(test_delete_bad_echo),
        cmocka_unit_test(test_reconnect_remaps),
        cmocka_unit_test(test_quarantine_keeps_mapping),
        cmocka_unit_test(test_threads_never_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
