/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: puts through the fill ring (lib/client/client_ring.c) against the
 * in-process fake server of test_client_fake.h, which executes ring entries
 * strictly where their after_id puts them in the request stream and only
 * when it executes a request (as remoca-memd does).
 *
 * What must hold: FILL_RING not offered is no failure (puts go over the
 * socket); no-wait puts go through the ring (no PUT frame) and reach the
 * server without any other request (the client writes a PING); an entry
 * executes exactly at its place among the requests (a put, a delete, a put
 * of the same key leaves the second put's page; a put then a delete leaves
 * nothing); a full ring sends puts over the socket, in order; a reconnect
 * attaches a new ring and unmaps the old one.
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

static bool ring_up(void *arg)
{
    struct remoca_client_stats st = stats(arg);
    return st.servers_up == 1 && st.servers_ring == 1;
}

static struct remoca_client *connect_ring(struct fake *f, bool expect_ring)
{
    char err[256], servers[200];
    snprintf(servers, sizeof servers, "unix:%s", f->path);
    struct remoca_client_opts o = {.servers = servers, .pool = "test/vda", .timeout_ms = 2000};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) fail_msg("remoca_client_new: %s", err);
    assert_int_equal(remoca_client_wait_ready(c, 5000), 1);
    if (expect_ring) assert_true(wait_until(ring_up, c, 2000));
    return c;
}

struct ring_wait {
    struct fake *f;
    unsigned n;
};

static bool ring_executed(void *arg)
{
    struct ring_wait *w = arg;
    return atomic_load(&w->f->ring_puts) >= w->n;
}

/* ---- not offered ------------------------------------------------------- */

static void test_not_offered(void **state)
{
    (void)state;
    struct fake *f = fake_start(NULL); /* FILL_RING: E_OP, like an older server */
    struct remoca_client *c = connect_ring(f, false);
    uint8_t *buf = malloc(4 * PG), *out = malloc(4 * PG);
    uint64_t hits[1];
    for (unsigned i = 0; i < 4; i++) fill(buf + i * PG, 10 + i, 1);
    assert_int_equal(remoca_put(c, 10, 4, buf, false), 0);
    assert_int_equal(remoca_get(c, 10, 4, out, hits, false), 4);
    assert_true(check(out + 3 * PG, 13, 1));
    assert_int_equal(stats(c).servers_ring, 0);
    assert_int_equal(stats(c).ring_puts, 0);
    assert_int_equal(atomic_load(&f->puts), 1);
    assert_int_equal(atomic_load(&f->rings), 0);
    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

/* ---- the data path ----------------------------------------------------- */

static void test_puts_through_ring(void **state)
{
    (void)state;
    struct fake *f = fake_start(NULL);
    fake_ring_enable(f);
    struct remoca_client *c = connect_ring(f, true);
    uint8_t *buf = malloc(PG), *out = malloc(8 * PG);
    uint64_t hits[1];

    /* Fewer entries than make the client kick at once: the send queue's
     * delay must bring a PING that makes the server execute them. */
    for (unsigned k = 0; k < 8; k++) {
        fill(buf, 100 + k, 1);
        assert_int_equal(remoca_put(c, 100 + k, 1, buf, false), 0);
    }
    assert_int_equal(stats(c).ring_puts, 8);
    struct ring_wait w = {f, 8};
    assert_true(wait_until(ring_executed, &w, 2000));
    assert_true(atomic_load(&f->pings) >= 1);
    assert_int_equal(atomic_load(&f->puts), 0); /* no PUT frame at all */
    assert_int_equal(remoca_get(c, 100, 8, out, hits, false), 8);
    for (unsigned k = 0; k < 8; k++) assert_true(check(out + k * PG, 100 + k, 1));

    /* Many at once (a 64-block fill run): over RING_KICK, kicked now. */
    uint8_t *run = malloc(200 * PG);
    for (unsigned k = 0; k < 200; k++) fill(run + k * PG, 1000 + k, 2);
    assert_int_equal(remoca_put(c, 1000, 200, run, false), 0);
    w.n = 208;
    assert_true(wait_until(ring_executed, &w, 2000));
    uint8_t *back = malloc(200 * PG);
    uint64_t bits[4];
    assert_int_equal(remoca_get(c, 1000, 200, back, bits, false), 200);
    assert_memory_equal(back, run, 200 * PG);
    assert_int_equal(atomic_load(&f->puts), 0);
    assert_int_equal(stats(c).failures, 0);
    remoca_client_free(c);
    free(buf);
    free(out);
    free(run);
    free(back);
    fake_stop(f, true);
}

/* Entries execute exactly where they were ordered among the requests. */
static void test_order_with_deletes(void **state)
{
    (void)state;
    struct fake *f = fake_start(NULL);
    fake_ring_enable(f);
    struct remoca_client *c = connect_ring(f, true);
    uint8_t *v1 = malloc(PG), *v2 = malloc(PG), *out = malloc(PG);
    uint64_t hits[1];
    for (unsigned round = 0; round < 200; round++) {
        uint64_t k = 5000 + round;
        fill(v1, k, 1);
        fill(v2, k, 2);
        /* put v1 (ring), delete (socket, queued), put v2 (ring): v2 stays.
         * Entries run before requests they precede: executing both puts
         * before the delete would leave nothing. */
        assert_int_equal(remoca_put(c, k, 1, v1, false), 0);
        assert_int_equal(remoca_delete(c, k, 1, false), 0);
        assert_int_equal(remoca_put(c, k, 1, v2, false), 0);
        assert_int_equal(remoca_get(c, k, 1, out, hits, false), 1);
        assert_true(check(out, k, 2));
        /* put v1 (ring), delete: nothing (executing the put after the
         * delete would leave v1). */
        uint64_t k2 = 9000 + round;
        fill(v1, k2, 1);
        assert_int_equal(remoca_put(c, k2, 1, v1, false), 0);
        assert_int_equal(remoca_delete(c, k2, 1, false), 0);
        assert_int_equal(remoca_get(c, k2, 1, out, hits, false), 0);
    }
    assert_int_equal(atomic_load(&f->puts), 0);
    assert_int_equal(stats(c).ring_puts, 600);
    remoca_client_free(c);
    free(v1);
    free(v2);
    free(out);
    fake_stop(f, true);
}

/* A full ring: the puts that do not fit go over the socket, in order. */
static void test_full_ring(void **state)
{
    (void)state;
    struct fake *f = fake_start(NULL);
    fake_ring_enable(f);
    struct remoca_client *c = connect_ring(f, true);
    unsigned slots = REMOCA_RING_DEFAULT_SLOTS;
    uint8_t *a = malloc(slots * PG), *b = malloc(slots * PG), *out = malloc(slots * PG);
    uint64_t bits[REMOCA_BITMAP_WORDS];
    for (unsigned k = 0; k < slots; k++) {
        fill(a + k * PG, 20000 + k, 1);
        fill(b + k * PG, 20000 + k, 2);
    }
    atomic_store(&f->stall, true); /* the server executes nothing for now */
    usleep(60000);                 /* (it looks at stall between polls of 20 ms) */
    assert_int_equal(remoca_put(c, 20000, slots - 8, a, false), 0); /* ring: fits */
    uint64_t ring0 = stats(c).ring_puts;
    assert_int_equal(ring0, slots - 8);
    pthread_t t;
    struct unstall u = {f, 100};
    pthread_create(&t, NULL, unstall_later, &u);
    /* Does not fit: a PUT frame (the same keys: must land after the ring's). */
    assert_int_equal(remoca_put(c, 20000, 16, b, false), 0);
    pthread_join(t, NULL);
    assert_int_equal(stats(c).ring_puts, ring0);
    assert_int_equal(remoca_get(c, 20000, 16, out, bits, false), 16);
    assert_memory_equal(out, b, 16 * PG);
    assert_int_equal(remoca_get(c, 20016, slots - 24, out, bits, false), slots - 24);
    assert_memory_equal(out, a + 16 * PG, (slots - 24) * PG);
    assert_true(atomic_load(&f->puts) >= 1);
    remoca_client_free(c);
    free(a);
    free(b);
    free(out);
    fake_stop(f, true);
}

static bool two_rings(void *arg)
{
    struct fake *f = arg;
    return atomic_load(&f->rings) == 2;
}

static void test_reconnect(void **state)
{
    (void)state;
    struct fake *f = fake_start(NULL);
    fake_ring_enable(f);
    struct remoca_client *c = connect_ring(f, true);
    assert_int_equal(memfd_mappings("fake-ring"), 2);
    atomic_store(&f->close_now, true);
    assert_true(wait_until(two_rings, f, 3000));
    assert_true(wait_until(ring_up, c, 3000));
    assert_int_equal(memfd_mappings("fake-ring"), 2); /* the old one is gone on both sides */
    uint8_t *buf = malloc(PG), *out = malloc(PG);
    uint64_t hits[1];
    fill(buf, 7, 3);
    assert_int_equal(remoca_put(c, 7, 1, buf, false), 0);
    assert_int_equal(remoca_get(c, 7, 1, out, hits, false), 1);
    assert_true(check(out, 7, 3));
    remoca_client_free(c);
    free(buf);
    free(out);
    fake_stop(f, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_offered),        cmocka_unit_test(test_puts_through_ring),
        cmocka_unit_test(test_order_with_deletes), cmocka_unit_test(test_full_ring),
        cmocka_unit_test(test_reconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
