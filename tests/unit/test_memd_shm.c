/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of remoca-memd's store in shared memory (--shm; memd/store.c,
 * memd/shm_region.c) against the one-sided reader of lib/wire/shm.c:
 *
 *   - put, overwrite, delete, take, eviction and reset each move the seqlock
 *     word of exactly the slots they change by 2, and never leave one odd;
 *   - the layout the server hands out decodes, and the fds are what they
 *     claim: the data fd is read-only, and not even a reopen through /proc
 *     can write or shrink the store;
 *   - remoca_shm_read on a read-only mapping of the data fd finds exactly
 *     what store_get finds, over thousands of random operations on two pools
 *     (fixed seed) under a budget small enough to evict all the time;
 *   - a page a client touched survives the eviction that would have taken it
 *     (at most 8 such second chances per eviction), and a refilled slot
 *     starts untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "remoca/shm.h"
#include "store.h"

#define PAGE REMOCA_PAGE_SIZE

static void fill(uint8_t *p, uint32_t pool, uint64_t key, uint32_t version)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = key * 1000003u + pool * 7919u + version * 131u + i;
        memcpy(p + i, &v, 8);
    }
}

static uint32_t open_pool(struct store *s, const char *name, uint64_t max_bytes)
{
    struct remoca_pool_open po = {.max_bytes = max_bytes, .name = name, .name_len = strlen(name)};
    uint32_t id = 0;
    assert_int_equal(store_pool_open(s, &po, &id), REMOCA_OK);
    return id;
}

static void put(struct store *s, uint32_t pool, uint64_t key, uint32_t version)
{
    uint8_t page[PAGE];
    fill(page, pool, key, version);
    assert_int_equal(store_put(s, pool, key, 1, page), REMOCA_OK);
}

/* The slot holding (pool, key), or -1. */
static long slot_of(const struct store *s, uint32_t pool, uint64_t key)
{
    for (uint32_t i = 0; i < s->npages; i++)
        if (s->slots[i].pool == pool && s->slots[i].key == key) return i;
    return -1;
}

/* A client's view: the layout through its wire encoding, the data mapped
 * read-only from the fd SHM_MAP hands out, the touch map from its fd (or no
 * feedback).  Unmapped by unmap_view. */
static void map_view(struct store *s, uint32_t pool, bool touch, struct remoca_shm_view *v)
{
    struct remoca_shm_layout l, d;
    uint8_t wire[REMOCA_SHM_LAYOUT_SIZE];
    char why[128];
    assert_true(store_shm_layout(s, pool, &l));
    remoca_shm_layout_encode(wire, &l);
    assert_int_equal(remoca_shm_layout_decode(wire, sizeof wire, &d, why, sizeof why), 0);
    assert_int_equal(d.pool, pool);
    assert_int_equal(d.npages, s->npages);
    void *data = mmap(NULL, d.data_size, PROT_READ, MAP_SHARED, s->shm->data_ro_fd, 0);
    assert_true(data != MAP_FAILED);
    void *t = NULL;
    if (touch) {
        t = mmap(NULL, d.touch_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->shm->touch_fd, 0);
        assert_true(t != MAP_FAILED);
    }
    remoca_shm_view_init(v, &d, data, t);
}

static void unmap_view(struct remoca_shm_view *v)
{
    munmap((void *)((const uint8_t *)v->slots - v->l.off_slots), v->l.data_size);
    if (v->touched) munmap(v->touched, v->l.touch_size);
}

/* A --shm store of `pages` pages as the test state. */
static int new_store(void **state, uint64_t pages, enum policy_kind policy, uint32_t pools)
{
    memd_log_level = LOG_ERROR;
    struct store *s = malloc(sizeof *s);
    assert_int_equal(store_init_shm(s, pages * PAGE, policy, pools), 0);
    *state = s;
    return 0;
}

static int setup_small(void **state) { return new_store(state, 64, POLICY_S3FIFO, 8); }

static int teardown(void **state)
{
    store_destroy(*state);
    free(*state);
    return 0;
}

/* ---- seqlock words ------------------------------------------------------ */

static uint32_t snap[64];

static void take_snapshot(const struct store *s)
{
    assert_true(s->npages <= 64);
    memcpy(snap, s->seqs, s->npages * sizeof *snap);
}

/* Checks that every seqs word is even, that exactly `changed` slots moved,
 * each by `by`; takes a new snapshot. */
static void expect_changes(const struct store *s, unsigned changed, uint32_t by)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < s->npages; i++) {
        assert_int_equal(s->seqs[i] % 2, 0);
        if (s->seqs[i] != snap[i]) {
            assert_int_equal(s->seqs[i] - snap[i], by);
            n++;
        }
    }
    assert_int_equal(n, changed);
    take_snapshot(s);
}

static void test_seqs_move_by_two(void **state)
{
    struct store *s = *state;
    uint8_t page[PAGE], bm[8];
    uint32_t p = open_pool(s, "a", 0);
    take_snapshot(s);
    put(s, p, 10, 1); /* new slot: filled once */
    expect_changes(s, 1, 2);
    long i = slot_of(s, p, 10);
    assert_true(i >= 0);
    uint32_t before = s->seqs[i];
    put(s, p, 10, 2); /* overwrite in place */
    expect_changes(s, 1, 2);
    assert_int_equal(s->seqs[i], before + 2);
    memset(bm, 0, sizeof bm);
    assert_int_equal(store_get(s, p, 10, 1, false, bm, page), 1); /* a GET changes nothing */
    expect_changes(s, 0, 0);
    assert_int_equal(store_delete(s, p, 10, 1), 1);
    expect_changes(s, 1, 2);
    assert_int_equal(store_delete(s, p, 10, 1), 0); /* nothing there: nothing moves */
    expect_changes(s, 0, 0);
    put(s, p, 11, 1);
    expect_changes(s, 1, 2);
    memset(bm, 0, sizeof bm);
    assert_int_equal(store_get(s, p, 11, 1, true, bm, page), 1); /* TAKE removes */
    expect_changes(s, 1, 2);

    /* Fill the store, then one more: the victim's slot is emptied and refilled. */
    for (uint64_t k = 100; k < 100 + s->npages; k++) put(s, p, k, 1);
    take_snapshot(s);
    assert_int_equal(s->nfree, 0);
    put(s, p, 1000, 1);
    expect_changes(s, 1, 4);
    assert_int_equal(s->pools[p - 1]->st.evictions, 1);

    /* Reset: every page of the pool once. */
    assert_int_equal(store_reset(s, p), s->npages);
    expect_changes(s, s->npages, 2);
    assert_int_equal(s->nfree, s->npages);
}

/* ---- the fds ------------------------------------------------------------ */

static void test_fds_read_only(void **state)
{
    struct store *s = *state;
    const struct shm_region *r = s->shm;
    assert_int_equal(fcntl(r->data_ro_fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    assert_int_equal(fcntl(r->touch_fd, F_GETFL) & O_ACCMODE, O_RDWR);
    assert_true(fcntl(r->data_ro_fd, F_GETFD) & FD_CLOEXEC);
    size_t len = r->layout.data_size;
    assert_true(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->data_ro_fd, 0) ==
                MAP_FAILED);
    void *ro = mmap(NULL, len, PROT_READ, MAP_SHARED, r->data_ro_fd, 0);
    assert_true(ro != MAP_FAILED);
    assert_int_not_equal(mprotect(ro, len, PROT_READ | PROT_WRITE), 0);
    munmap(ro, len);
    /* A client may reopen its fd through /proc with O_RDWR: the seals still
     * refuse writes, writable mappings and any change of size. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r->data_ro_fd);
    int rw = open(path, O_RDWR | O_CLOEXEC); /* memfds are mode 0777: this works */
    assert_true(rw >= 0);
    assert_true(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
    assert_int_equal(pwrite(rw, "x", 1, 0), -1);
    assert_int_equal(ftruncate(rw, 4096), -1);
    close(rw);
    assert_int_equal(ftruncate(r->touch_fd, 0), -1);
    assert_true(fcntl(r->data_fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE);
}

/* ---- shm reads against store_get and a model ---------------------------- */

#define KEYS 160u

struct model {
    uint32_t version[2][KEYS]; /* 0: never put, or deleted */
};

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* For every key of both pools: the one-sided read and store_get agree (hit
 * and bytes), and a hit holds the model's last version. */
static void check_all(struct store *s, const uint32_t pools[2], struct remoca_shm_view views[2],
                      const struct model *m)
{
    static uint8_t a[PAGE], b[PAGE], want[PAGE];
    for (int q = 0; q < 2; q++) {
        for (uint64_t k = 0; k < KEYS; k++) {
            bool one_sided = remoca_shm_read(&views[q], k, a);
            uint8_t bm[8] = {0};
            bool hit = store_get(s, pools[q], k, 1, false, bm, b) == 1;
            if (one_sided != hit)
                fail_msg("pool %d key %llu: shm read %d, store_get %d", q, (unsigned long long)k,
                         one_sided, hit);
            if (!hit) continue;
            assert_memory_equal(a, b, PAGE);
            assert_int_not_equal(m->version[q][k], 0);
            fill(want, pools[q], k, m->version[q][k]);
            assert_memory_equal(a, want, PAGE);
        }
    }
}

static void test_reads_match_store(void **state)
{
    struct store *s = *state;
    uint32_t pools[2] = {open_pool(s, "x", 40 * PAGE), open_pool(s, "y", 0)};
    struct remoca_shm_view views[2];
    map_view(s, pools[0], false, &views[0]);
    map_view(s, pools[1], false, &views[1]);
    static struct model m;
    static uint8_t pages[4 * PAGE];
    uint32_t version = 0;
    uint64_t evictions = 0;
    for (int op = 0; op < 4000; op++) {
        int q = (int)(rnd() % 2);
        uint32_t p = pools[q];
        uint64_t k = rnd() % KEYS;
        unsigned what = (unsigned)(rnd() % 100);
        if (what < 60) { /* put 1..4 pages (new keys or overwrites) */
            uint32_t n = 1 + (uint32_t)(rnd() % 4);
            if (k + n > KEYS) n = (uint32_t)(KEYS - k);
            version++;
            for (uint32_t j = 0; j < n; j++) fill(pages + j * PAGE, p, k + j, version);
            assert_int_equal(store_put(s, p, k, n, pages), REMOCA_OK);
            for (uint32_t j = 0; j < n; j++) m.version[q][k + j] = version;
        } else if (what < 75) {
            store_delete(s, p, k, 1);
            m.version[q][k] = 0;
        } else if (what < 85) { /* a range larger than the pool: the sweep path */
            uint64_t n = 1 + rnd() % 1000;
            store_delete(s, p, k, n);
            for (uint64_t j = k; j < KEYS && j - k < n; j++) m.version[q][j] = 0;
        } else if (what < 95) {
            uint8_t bm[8] = {0};
            store_get(s, p, k, 1, true, bm, pages);
            m.version[q][k] = 0;
        } else if (what < 97) {
            store_reset(s, p);
            memset(m.version[q], 0, sizeof m.version[q]);
        } else {
            check_all(s, pools, views, &m);
        }
        if (op % 16 == 0) check_all(s, pools, views, &m);
    }
    check_all(s, pools, views, &m);
    for (int q = 0; q < 2; q++) evictions += s->pools[pools[q] - 1]->st.evictions;
    print_message("evictions: %llu\n", (unsigned long long)evictions);
    assert_true(evictions > 500); /* the budget was a constraint throughout */
    for (uint32_t i = 0; i < s->npages; i++) assert_int_equal(s->seqs[i] % 2, 0);
    unmap_view(&views[0]);
    unmap_view(&views[1]);
}

/* ---- touch feedback ----------------------------------------------------- */

static int setup_lru(void **state) { return new_store(state, 16, POLICY_LRU, 4); }

/* A pool filling the 16-page store (keys 0..15, version 1), and a client's
 * view of it that sets touch flags. */
static uint32_t full_pool(struct store *s, struct remoca_shm_view *v)
{
    uint32_t p = open_pool(s, "t", 0);
    map_view(s, p, true, v);
    for (uint64_t k = 0; k < 16; k++) put(s, p, k, 1);
    return p;
}

static void test_touch_spares_victim(void **state)
{
    struct store *s = *state;
    struct remoca_shm_view v;
    uint32_t p = full_pool(s, &v);
    uint8_t page[PAGE];
    /* LRU: key 0 is the next victim.  A one-sided read touches it ... */
    assert_true(remoca_shm_read(&v, 0, page));
    long i0 = slot_of(s, p, 0);
    assert_int_equal(s->touched[i0], 1);
    put(s, p, 16, 1);
    /* ... so key 1 went instead, and the flag was consumed. */
    assert_true(slot_of(s, p, 0) >= 0);
    assert_int_equal(slot_of(s, p, 1), -1);
    assert_int_equal(s->touched[i0], 0);
    assert_int_equal(s->shm_touched, 1);
    /* Its second chance moved it to the head, behind 16: the next 14 puts
     * evict 2..15, and then, untouched this time, key 0 goes. */
    for (uint64_t k = 17; k < 31; k++) put(s, p, k, 1);
    assert_true(slot_of(s, p, 0) >= 0);
    put(s, p, 31, 1);
    assert_int_equal(slot_of(s, p, 0), -1);
    assert_int_equal(s->shm_touched, 1);
    unmap_view(&v);
}

static void test_touch_retries_bounded(void **state)
{
    struct store *s = *state;
    struct remoca_shm_view v;
    uint32_t p = full_pool(s, &v);
    uint8_t page[PAGE];
    for (uint64_t k = 0; k < 16; k++) assert_true(remoca_shm_read(&v, k, page));
    long i8 = slot_of(s, p, 8);
    put(s, p, 100, 1);
    /* Keys 0..7 had their second chance; the ninth victim went anyway, and
     * the slot it left, refilled with key 100, starts untouched. */
    assert_int_equal(s->shm_touched, 8);
    assert_int_equal(s->pools[p - 1]->st.evictions, 1);
    for (uint64_t k = 0; k < 16; k++) assert_int_equal(slot_of(s, p, k) >= 0, k != 8);
    assert_int_equal(slot_of(s, p, 100), i8);
    assert_int_equal(s->touched[i8], 0);
    assert_true(remoca_shm_read(&v, 100, page));
    assert_int_equal(s->touched[i8], 1);
    unmap_view(&v);
}

/* Without --shm the store has no seqs and no touch map, and no layout. */
static void test_without_shm(void **state)
{
    (void)state;
    struct store s;
    struct remoca_shm_layout l;
    assert_int_equal(store_init(&s, 16 * PAGE, POLICY_LRU, 4), 0);
    assert_null(s.seqs);
    assert_null(s.touched);
    assert_false(store_shm_layout(&s, 1, &l));
    uint32_t p = open_pool(&s, "n", 0);
    for (uint64_t k = 0; k < 40; k++) put(&s, p, k, 1);
    assert_int_equal(s.pools[p - 1]->st.evictions, 24);
    store_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seqs_move_by_two, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_fds_read_only, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_reads_match_store, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_touch_spares_victim, setup_lru, teardown),
        cmocka_unit_test_setup_teardown(test_touch_retries_bounded, setup_lru, teardown),
        cmocka_unit_test(test_without_shm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
