/* SPDX-License-Identifier: BSD-3-Clause */
/* memd/peer_limit.c, the per-peer connection counts of --max-conns-per-addr:
 * the cap per key, keys of every kind apart (IPv4, IPv4-mapped IPv6 = IPv4,
 * IPv6, uid), and the open-addressing table against a model over random
 * acquires and releases of many keys (growth, and removals that shift runs
 * back: every count must stay exact, every released key must be gone). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "peer_limit.h"

static struct peer_key v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    struct peer_key k;
    peer_key_of(-1, (struct sockaddr *)&a, &k);
    return k;
}

static struct peer_key v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    struct peer_key k;
    peer_key_of(-1, (struct sockaddr *)&a, &k);
    return k;
}

static void cap_per_key(void **state)
{
    (void)state;
    struct peer_table t;
    peer_table_init(&t);
    struct peer_key a = v4("10.0.0.1"), b = v4("10.0.0.2"), m = v6("::ffff:10.0.0.1"),
                    c = v6("2001:db8::1");
    for (int i = 0; i < 3; i++) assert_true(peer_acquire(&t, &a, 3));
    assert_false(peer_acquire(&t, &a, 3));
    assert_false(peer_acquire(&t, &m, 3)); /* IPv4-mapped: the same peer */
    assert_true(peer_acquire(&t, &b, 3));
    assert_true(peer_acquire(&t, &c, 3));
    assert_int_equal(peer_count(&t, &a), 3);
    peer_release(&t, &m);
    assert_int_equal(peer_count(&t, &a), 2);
    assert_true(peer_acquire(&t, &a, 3));
    struct peer_key none = {0}; /* unknown peers are not counted */
    for (int i = 0; i < 10; i++) assert_true(peer_acquire(&t, &none, 1));
    char s[64];
    peer_key_str(&c, s, sizeof s);
    assert_string_equal(s, "[2001:db8::1]");
    peer_key_str(&m, s, sizeof s);
    assert_string_equal(s, "10.0.0.1");
    peer_table_free(&t);
}

#define KEYS 3000

static void table_against_model(void **state)
{
    (void)state;
    struct peer_table t;
    peer_table_init(&t);
    static unsigned model[KEYS];
    uint64_t rng = 42;
    for (int step = 0; step < 200000; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned i = (unsigned)(rng >> 33) % KEYS;
        struct peer_key k = {.kind = i % 3 ? PEER_IPV4 : PEER_UID};
        memcpy(k.addr, &i, sizeof i);
        if ((rng >> 20) & 1 || !model[i]) {
            bool ok = peer_acquire(&t, &k, 4);
            assert_int_equal(ok, model[i] < 4);
            model[i] += ok;
        } else {
            peer_release(&t, &k);
            model[i]--;
        }
        if (step % 997 == 0)
            for (unsigned j = 0; j < KEYS; j++) {
                struct peer_key q = {.kind = j % 3 ? PEER_IPV4 : PEER_UID};
                memcpy(q.addr, &j, sizeof j);
                assert_int_equal(peer_count(&t, &q), model[j]);
            }
    }
    unsigned used = 0;
    for (unsigned j = 0; j < KEYS; j++) used += model[j] != 0;
    assert_int_equal(t.used, used);
    for (unsigned j = 0; j < KEYS; j++) { /* all released: the table is empty */
        struct peer_key q = {.kind = j % 3 ? PEER_IPV4 : PEER_UID};
        memcpy(q.addr, &j, sizeof j);
        while (model[j]--) peer_release(&t, &q);
    }
    assert_int_equal(t.used, 0);
    for (uint32_t s = 0; s < t.cap; s++) assert_int_equal(t.slots[s].count, 0);
    peer_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_per_key),
        cmocka_unit_test(table_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
