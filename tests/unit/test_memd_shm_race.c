/* SPDX-License-Identifier: BSD-3-Clause */
/* The seqlock of a --shm store under concurrency (memd/store.c against
 * lib/wire/shm.c): one writer thread puts, overwrites, deletes, takes and resets
 * keys of a pool too big for the store (so evictions reuse slots all the
 * time), with pages whose every 8-byte word is the stamp (key, version);
 * reader threads call remoca_shm_read in a loop, with touch feedback on.
 *
 * Every read that returns true must hold one whole page of one stamp, for
 * the key asked, of a version the writer had started to put, and not older
 * than the version whose put had completed before the read began.  The
 * writer does a fixed number of operations; the readers stop when it is done.
 * The same again in a sealed pool (remoca_shm_read_sealed): the sidecar,
 * stamped like its page, must come from the same put as the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "log.h"
#include "remoca/shm.h"
#include "store.h"

#define PAGE REMOCA_PAGE_SIZE
#define KEYS 128u /* 2 x the store's pages */
#define WRITER_OPS 100000u
#define READERS 2

static struct store st;
static uint32_t pool;
static struct remoca_shm_view view;
static uint32_t issued[KEYS];    /* newest version whose put has begun */
static uint32_t committed[KEYS]; /* newest version whose put has returned */
static int done;
static bool sealed; /* the second run: a sealed pool, page || sidecar units */
#define UNIT REMOCA_SEALED_UNIT

struct reader_result {
    uint64_t reads, hits;
    char err[200]; /* first failure, empty if none */
};

static uint64_t stamp(uint64_t key, uint32_t version) { return key << 32 | version; }

/* A page (and in a sealed pool its sidecar after it) of one stamp. */
static void fill(uint8_t *p, uint64_t key, uint32_t version)
{
    uint64_t w = stamp(key, version);
    for (size_t i = 0; i < remoca_unit_size(sealed); i += 8) memcpy(p + i, &w, 8);
}

static void *writer(void *arg)
{
    (void)arg;
    static uint8_t pages[4 * UNIT];
    size_t unit = remoca_unit_size(sealed);
    uint64_t x = 88172645463325252ull;
    uint32_t version = 0;
    for (unsigned op = 0; op < WRITER_OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t k = x % KEYS;
        unsigned what = (unsigned)(x >> 32) % 100;
        if (what < 75) { /* put 1..4 pages: new keys and overwrites */
            uint32_t n = 1 + (uint32_t)((x >> 20) % 4);
            if (k + n > KEYS) n = (uint32_t)(KEYS - k);
            version++;
            for (uint32_t j = 0; j < n; j++) {
                fill(pages + j * unit, k + j, version);
                __atomic_store_n(&issued[k + j], version, __ATOMIC_RELEASE);
            }
            if (store_put(&st, pool, k, n, pages) != REMOCA_OK) abort();
            for (uint32_t j = 0; j < n; j++)
                __atomic_store_n(&committed[k + j], version, __ATOMIC_RELEASE);
        } else if (what < 88) {
            store_delete(&st, pool, k, 1 + (x >> 40) % 3);
        } else if (what < 98) {
            uint8_t bm[8] = {0};
            store_get(&st, pool, k, 1, true, bm, pages);
        } else {
            store_reset(&st, pool);
        }
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *reader(void *arg)
{
    struct reader_result *r = arg;
    static _Thread_local uint8_t page[UNIT]; /* the sidecar goes after the page */
    uint64_t x = (uintptr_t)arg | 1;
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE) && !r->err[0]) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t k = x % KEYS;
        uint32_t lo = __atomic_load_n(&committed[k], __ATOMIC_ACQUIRE);
        bool hit = sealed ? remoca_shm_read_sealed(&view, k, page, page + PAGE)
                          : remoca_shm_read(&view, k, page);
        uint32_t hi = __atomic_load_n(&issued[k], __ATOMIC_ACQUIRE);
        r->reads++;
        if (!hit) continue;
        r->hits++;
        uint64_t w0;
        memcpy(&w0, page, 8);
        for (size_t i = 8; i < remoca_unit_size(sealed) && !r->err[0]; i += 8) {
            uint64_t w;
            memcpy(&w, page + i, 8);
            if (w != w0)
                snprintf(r->err, sizeof r->err, "key %llu: torn page: word 0 %llx, word %zu %llx",
                         (unsigned long long)k, (unsigned long long)w0, i / 8,
                         (unsigned long long)w);
        }
        uint32_t v = (uint32_t)w0;
        if (!r->err[0] && w0 >> 32 != k)
            snprintf(r->err, sizeof r->err, "key %llu: page of key %llu", (unsigned long long)k,
                     (unsigned long long)(w0 >> 32));
        else if (!r->err[0] && (v < lo || v > hi))
            snprintf(r->err, sizeof r->err, "key %llu: version %u outside [%u, %u]",
                     (unsigned long long)k, v, lo, hi);
    }
    return NULL;
}

static void run_race(bool seal)
{
    memd_log_level = LOG_ERROR;
    sealed = seal;
    done = 0;
    memset(issued, 0, sizeof issued);
    memset(committed, 0, sizeof committed);
    assert_int_equal(store_init_shm(&st, 64 * PAGE, POLICY_S3FIFO, 2), 0);
    struct remoca_pool_open po = {.name = "race", .name_len = 4, .sealed = seal};
    assert_int_equal(store_pool_open(&st, &po, &pool), REMOCA_OK);
    struct remoca_shm_layout l;
    assert_true(store_shm_layout(&st, pool, &l));
    remoca_shm_view_init(&view, &l, st.shm->data, st.shm->touch);

    pthread_t w, rd[READERS];
    struct reader_result res[READERS];
    memset(res, 0, sizeof res);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&rd[i], NULL, reader, &res[i]), 0);
    assert_int_equal(pthread_create(&w, NULL, writer, NULL), 0);
    pthread_join(w, NULL);
    uint64_t reads = 0, hits = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(rd[i], NULL);
        if (res[i].err[0]) fail_msg("reader %d: %s", i, res[i].err);
        reads += res[i].reads;
        hits += res[i].hits;
    }
    const struct pool *p = st.pools[pool - 1];
    print_message("reads %llu, hits %llu, evictions %llu, touched spared %llu\n",
                  (unsigned long long)reads, (unsigned long long)hits,
                  (unsigned long long)p->st.evictions, (unsigned long long)st.shm_touched);
    assert_true(hits > 1000);
    assert_true(p->st.evictions > 1000);
    for (uint32_t i = 0; i < st.npages; i++) assert_int_equal(st.seqs[i] % 2, 0);
    store_destroy(&st);
}

static void test_readers_never_see_torn_pages(void **state)
{
    (void)state;
    run_race(false);
}

static void test_sealed_readers_never_see_torn_units(void **state)
{
    (void)state;
    run_race(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_never_see_torn_pages),
        cmocka_unit_test(test_sealed_readers_never_see_torn_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
