/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of remoca-memd --tenants (memd/tenants.c and the store's tenant
 * accounting in memd/store.c): the file parser accepts the documented syntax
 * and refuses every bad line with FILE:LINE; a file others may read is
 * refused; the HELLO name and pool prefixes map to the right tenant; in the
 * store, a tenant at its cap (memory=) evicts only its own pages, and
 * another tenant's pressure never takes a tenant below its floor (min=). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "store.h"
#include "tenants.h"

#define PAGE REMOCA_PAGE_SIZE

static int parse(struct tenants *ts, const char *text, char *err, size_t errcap)
{
    return tenants_parse(ts, text, strlen(text), "tf", err, errcap);
}

static void test_parse_good(void **state)
{
    (void)state;
    struct tenants ts;
    char err[256] = "";
    const char *text = "# two tenants\n"
                       "\n"
                       "tenant alpha secret=s#1 pools=a/,shared-a memory=64M min=16M conns=3 # c\n"
                       "  tenant\tb-2 conns=1 memory=1G pools=b/ secret=xyz stats=all\r\n";
    assert_int_equal(parse(&ts, text, err, sizeof err), 0);
    assert_int_equal(ts.n, 2);
    const struct tenant *a = &ts.t[0], *b = &ts.t[1];
    assert_string_equal(a->acct.name, "alpha");
    assert_int_equal(a->auth.len, 3);
    assert_memory_equal(a->auth.secret, "s#1", 3);
    assert_int_equal(a->nprefix, 2);
    assert_string_equal(a->prefix[1], "shared-a");
    assert_int_equal(a->acct.max_pages, (64u << 20) / PAGE);
    assert_int_equal(a->acct.min_pages, (16u << 20) / PAGE);
    assert_int_equal(a->acct.max_conns, 3);
    assert_string_equal(b->acct.name, "b-2");
    assert_int_equal(b->acct.min_pages, 0);
    assert_int_equal(b->acct.max_pages, (1u << 30) / PAGE);
    assert_ptr_equal(ts.accts[1], &b->acct);
    assert_false(a->stats_all);
    assert_true(b->stats_all);

    assert_ptr_equal(tenants_find(&ts, "alpha", 5), a);
    assert_ptr_equal(tenants_find(&ts, "alpha/vm42", 10), a);
    assert_ptr_equal(tenants_find(&ts, "b-2/x/y", 7), b);
    assert_null(tenants_find(&ts, "alph", 4));
    assert_null(tenants_find(&ts, "alphabet", 8));
    assert_null(tenants_find(&ts, "/alpha", 6));
    assert_true(tenant_pool_allowed(a, "a/vda", 5));
    assert_true(tenant_pool_allowed(a, "shared-a", 8));
    assert_false(tenant_pool_allowed(a, "a", 1));
    assert_false(tenant_pool_allowed(a, "b/vda", 5));
    assert_false(tenant_pool_allowed(b, "a/vda", 5));
    tenants_free(&ts);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "tf: no tenant defined"},
        {"# only a comment\n", "tf: no tenant defined"},
        {"tenant\n", "tf:1: 'tenant' needs a NAME"},
        {"\nuser a secret=s pools=a/ memory=1M conns=1\n", "tf:2: expected 'tenant NAME"},
        {"tenant a/b secret=s pools=a/ memory=1M conns=1\n", "tf:1: tenant name 'a/b'"},
        {"tenant a secret=s pools=a/ memory=1M\n", "tf:1: tenant a: conns= is required"},
        {"tenant a pools=a/ memory=1M conns=1\n", "tf:1: tenant a: secret= is required"},
        {"tenant a secret=s memory=1M conns=1\n", "tf:1: tenant a: pools= is required"},
        {"tenant a secret=s pools=a/ conns=1\n", "tf:1: tenant a: memory= is required"},
        {"tenant a secret=s pools=a/ memory=1M conns=1 conns=2\n", "tf:1: conns= given twice"},
        {"tenant a secret=s pools=a/ memory=lots conns=1\n", "tf:1: memory=lots: expected a size"},
        {"tenant a secret=s pools=a/ memory=1K conns=1\n", "tf:1: memory=: at least 4K"},
        {"tenant a secret=s pools=a/ memory=1M min=2M conns=1\n", "tf:1: tenant a: min= is above"},
        {"tenant a secret=s pools=a/ memory=1M conns=0\n", "tf:1: conns=0: expected 1..65536"},
        {"tenant a secret=s pools=a/ memory=1M conns=-1\n", "tf:1: conns=-1"},
        {"tenant a secret=s pools=a/,,b memory=1M conns=1\n", "tf:1: pools=: empty prefix"},
        {"tenant a secret=s pools=a/, memory=1M conns=1\n", "tf:1: pools=: empty prefix"},
        {"tenant a secret= pools=a/ memory=1M conns=1\n", "tf:1: secret=: 1 to 256 bytes"},
        {"tenant a secret=s pools=a/ memory=1M conns=1 color=red\n", "tf:1: unknown key 'color'"},
        {"tenant a secret=s pools=a/ memory=1M conns=1 loose\n",
         "tf:1: 'loose': expected KEY=VALUE"},
        {"tenant a secret=s pools=a/ memory=1M conns=1\ntenant a secret=t pools=b/ memory=1M "
         "conns=1\n",
         "tf:2: tenant a defined twice"},
        {"tenant a secret=s pools=vm memory=1M conns=1\ntenant b secret=t pools=x,vm4 memory=1M "
         "conns=1\n",
         "tf:2: pools=: prefix 'vm4' of tenant b overlaps 'vm' of tenant a"},
        {"tenant a secret=s\x01 pools=a/ memory=1M conns=1\n", "tf:1: control character 0x01"},
        {"tenant a secret=s pools=a/ memory=1M conns=1 min=1M min=1M x=1 y=2\n",
         "tf:1: too many words"},
        {"tenant a secret=s pools=a/ memory=1M conns=1 stats=some\n",
         "tf:1: stats=some: expected own or all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tenants ts;
        char err[256] = "";
        if (parse(&ts, cases[i].text, err, sizeof err) == 0)
            fail_msg("accepted: %s", cases[i].text);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)))
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].want);
        assert_int_equal(ts.n, 0);
        assert_null(ts.t);
    }
}

static void test_load_mode(void **state)
{
    (void)state;
    char path[] = "/tmp/remoca-tenants-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "tenant a secret=s pools=a/ memory=1M conns=1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct tenants ts;
    char err[512];
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(tenants_load(&ts, path, err, sizeof err), 0);
    assert_int_equal(ts.n, 1);
    tenants_free(&ts);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(tenants_load(&ts, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable or writable by others (mode 604)"));
    unlink(path);
    assert_int_equal(tenants_load(&ts, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
}

static void fill(uint8_t *p, uint32_t pool, uint64_t key)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 1000003u + pool * 7919u + i;
        memcpy(p + i, &v, 8);
    }
}

static uint32_t open_in(struct store *s, const char *name, struct tenant_acct *t, uint32_t weight)
{
    struct remoca_pool_open po = {.weight = weight, .name = name, .name_len = strlen(name)};
    uint32_t id = 0;
    const char *why;
    assert_int_equal(store_pool_open_tenant(s, &po, t, &id, &why), REMOCA_OK);
    return id;
}

static uint64_t present(struct store *s, uint32_t pool, uint64_t from, uint64_t n)
{
    uint64_t hits = 0;
    uint8_t bm[8], page[PAGE], want[PAGE];
    for (uint64_t k = from; k < from + n; k++) {
        memset(bm, 0, sizeof bm);
        if (store_get(s, pool, k, 1, false, bm, page) == 1) {
            fill(want, pool, k);
            assert_memory_equal(page, want, PAGE);
            hits++;
        }
    }
    return hits;
}

static void put_range(struct store *s, uint32_t pool, uint64_t from, uint64_t n,
                      enum remoca_status want)
{
    uint8_t page[PAGE];
    for (uint64_t k = from; k < from + n; k++) {
        fill(page, pool, k);
        assert_int_equal(store_put(s, pool, k, 1, page), want);
    }
}

/* A 256-page store; A: cap 64 pages; B: floor 100 pages; C: no floor, its
 * pool weighs 10 (a fair share of 196 pages: without the floor, B's pool
 * would be squeezed to its fair share of 19). */
static void test_store_cap_and_floor(void **state)
{
    (void)state;
    struct store s;
    assert_int_equal(store_init(&s, 256 * PAGE, POLICY_S3FIFO, 16), 0);
    struct tenant_acct a = {.name = "A", .max_pages = 64, .min_pages = 0};
    struct tenant_acct b = {.name = "B", .max_pages = 256, .min_pages = 100};
    struct tenant_acct c = {.name = "C", .max_pages = 256};
    uint32_t a1 = open_in(&s, "a/1", &a, 0), a2 = open_in(&s, "a/2", &a, 0);
    uint32_t b1 = open_in(&s, "b/1", &b, 0), c1 = open_in(&s, "c/1", &c, 10);

    /* A's pool max is clamped to its cap; A's minimums cannot exceed it. */
    assert_int_equal(store_pool(&s, a1)->max_pages, 64);
    struct remoca_pool_open po = {.min_bytes = 65 * PAGE, .name = "a/3", .name_len = 3};
    uint32_t id;
    const char *why;
    assert_int_equal(store_pool_open_tenant(&s, &po, &a, &id, &why), REMOCA_E_LIMIT);
    assert_non_null(strstr(why, "floor"));
    /* Pool minimums hold pages against everyone: only up to the floor. */
    po = (struct remoca_pool_open){.min_bytes = 4 * PAGE, .name = "a/1", .name_len = 3};
    assert_int_equal(store_pool_open_tenant(&s, &po, &a, &id, &why), REMOCA_E_LIMIT);
    po = (struct remoca_pool_open){.min_bytes = 101 * PAGE, .name = "b/1", .name_len = 3};
    assert_int_equal(store_pool_open_tenant(&s, &po, &b, &id, &why), REMOCA_E_LIMIT);
    po.min_bytes = 100 * PAGE;
    assert_int_equal(store_pool_open_tenant(&s, &po, &b, &id, &why), REMOCA_OK);
    assert_int_equal(id, b1);
    assert_int_equal(b.min_reserved, 100);
    store_pool_close(&s, b1);
    po.min_bytes = 0;
    assert_int_equal(store_pool_open_tenant(&s, &po, &b, &id, &why), REMOCA_OK);
    store_pool_close(&s, b1);
    assert_int_equal(b.min_reserved, 0);
    /* A pool is its first tenant's. */
    po = (struct remoca_pool_open){.name = "b/1", .name_len = 3};
    assert_int_equal(store_pool_open_tenant(&s, &po, &a, &id, &why), REMOCA_E_LIMIT);

    /* B holds 120 pages; A writes 4 times its cap over two pools: at most
     * 64 pages, the evictions from itself, B untouched. */
    put_range(&s, b1, 0, 120, REMOCA_OK);
    put_range(&s, a1, 0, 128, REMOCA_OK);
    put_range(&s, a2, 0, 128, REMOCA_OK);
    assert_int_equal(a.pages, 64);
    assert_int_equal(store_pool(&s, a1)->pages + store_pool(&s, a2)->pages, 64);
    assert_int_equal(a.cap_evictions, 64 + 128); /* a1 beyond 64 (its max = the cap), a2 */
    assert_int_equal(b.pages, 120);
    assert_int_equal(present(&s, b1, 0, 120), 120);
    assert_int_equal(s.nfree, 256 - 64 - 120);

    /* C fills everything: the store is full, B loses pages exactly down to
     * its floor, A (no floor) loses too; never more than the budget. */
    put_range(&s, c1, 0, 400, REMOCA_OK);
    assert_int_equal(s.nfree, 0);
    assert_int_equal(b.pages, 100);
    assert_true(a.pages < 64);
    assert_int_equal(b.pages, store_pool(&s, b1)->pages);
    assert_int_equal(present(&s, b1, 0, 120), b.pages);
    assert_int_equal(a.pages + b.pages + c.pages, 256);

    /* B at its floor: C's next 600 pages never take one of B's. */
    put_range(&s, c1, 1000, 600, REMOCA_OK);
    assert_int_equal(b.pages, 100);
    assert_int_equal(present(&s, b1, 0, 120), 100);
    assert_int_equal(a.pages + b.pages + c.pages, 256);
    store_destroy(&s);
}

/* A floor is memory a tenant can count on: below it, a tenant takes pages
 * from the others even when its pool is above its fair share (256 pages, C's
 * pool of weight 10 fills them all; B's fair share is 23, its floor 100). */
static void test_store_floor_reached(void **state)
{
    (void)state;
    struct store s;
    assert_int_equal(store_init(&s, 256 * PAGE, POLICY_S3FIFO, 16), 0);
    struct tenant_acct b = {.name = "B", .max_pages = 256, .min_pages = 100};
    struct tenant_acct c = {.name = "C", .max_pages = 256};
    uint32_t b1 = open_in(&s, "b/1", &b, 1), c1 = open_in(&s, "c/1", &c, 10);
    put_range(&s, c1, 0, 300, REMOCA_OK);
    assert_int_equal(c.pages, 256);
    put_range(&s, b1, 0, 100, REMOCA_OK);
    assert_int_equal(b.pages, 100);
    assert_int_equal(present(&s, b1, 0, 100), 100);
    assert_int_equal(c.pages, 156);
    /* Above its floor, the fair share decides again: B evicts itself. */
    put_range(&s, b1, 100, 50, REMOCA_OK);
    assert_int_equal(b.pages, 100);
    assert_int_equal(c.pages, 156);
    store_destroy(&s);
}

int main(void)
{
    memd_log_level = LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),          cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_load_mode),           cmocka_unit_test(test_store_cap_and_floor),
        cmocka_unit_test(test_store_floor_reached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
