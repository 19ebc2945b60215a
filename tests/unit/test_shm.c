/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the shared layout codec and the one-sided read (lib/wire/shm.c),
 * on a hand-built store in ordinary memory:
 *
 *   data: [slots x 8][seqs x 8][buckets x 4][pad][arena: 8 pages]
 *
 * Checked: the codec round trip and every refusal of a layout whose arrays do
 * not fit; a read finds a page through its chain, misses on another pool, a
 * free slot, an odd (changing) sequence, a sequence that moves during the
 * copy (simulated by a writer thread), a chain that loops or leaves the
 * store; a hit sets the touch byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "remoca/shm.h"
#include "remoca/wire.h"

#define NP 8u
#define NB 4u
#define POOL 3u

struct fake {
    struct remoca_shm_layout l;
    uint8_t *data;
    uint8_t touch[NP];
    struct remoca_shm_view v;
};

static struct remoca_shm_slot *slots(struct fake *f)
{
    return (struct remoca_shm_slot *)(f->data + f->l.off_slots);
}
static uint32_t *seqs(struct fake *f) { return (uint32_t *)(f->data + f->l.off_seqs); }
static uint32_t *buckets(struct fake *f) { return (uint32_t *)(f->data + f->l.off_buckets); }
static uint8_t *page(struct fake *f, uint32_t i)
{
    return f->data + f->l.off_arena + (size_t)i * REMOCA_PAGE_SIZE;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->l = (struct remoca_shm_layout){.version = REMOCA_SHM_VERSION,
                                      .pool = POOL,
                                      .npages = NP,
                                      .bmask = NB - 1,
                                      .off_slots = 0,
                                      .off_seqs = NP * sizeof(struct remoca_shm_slot),
                                      .touch_size = NP};
    f->l.off_buckets = f->l.off_seqs + NP * 4;
    f->l.off_arena = REMOCA_PAGE_SIZE;
    f->l.data_size = f->l.off_arena + NP * REMOCA_PAGE_SIZE;
    f->data = aligned_alloc(REMOCA_PAGE_SIZE, f->l.data_size);
    assert_non_null(f->data);
    memset(f->data, 0, f->l.data_size);
    for (uint32_t b = 0; b < NB; b++) buckets(f)[b] = REMOCA_SHM_NIL;
    for (uint32_t i = 0; i < NP; i++) slots(f)[i].hnext = REMOCA_SHM_NIL;
    remoca_shm_view_init(&f->v, &f->l, f->data, f->touch);
}

/* Puts key (of pool) in slot i, at the head of its chain, page filled with fill. */
static void fake_put(struct fake *f, uint32_t i, uint32_t pool, uint64_t key, uint8_t fill)
{
    remoca_shm_seq_begin(seqs(f), i);
    slots(f)[i].key = key;
    slots(f)[i].pool = pool;
    memset(page(f, i), fill, REMOCA_PAGE_SIZE);
    remoca_shm_seq_end(seqs(f), i);
    uint32_t *head = &buckets(f)[remoca_shm_hash(pool, key) & (NB - 1)];
    slots(f)[i].hnext = *head;
    *head = i;
}

static bool all(const uint8_t *p, uint8_t v)
{
    for (size_t i = 0; i < REMOCA_PAGE_SIZE; i++)
        if (p[i] != v) return false;
    return true;
}

static void test_layout_codec(void **state)
{
    (void)state;
    struct fake f;
    fake_init(&f);
    uint8_t b[REMOCA_SHM_LAYOUT_SIZE];
    remoca_shm_layout_encode(b, &f.l);
    struct remoca_shm_layout d;
    char why[128];
    assert_int_equal(remoca_shm_layout_decode(b, sizeof b, &d, why, sizeof why), 0);
    assert_memory_equal(&d, &f.l, sizeof d);
    assert_int_equal(remoca_shm_layout_decode(b, sizeof b - 1, &d, why, sizeof why), -1);

    /* Each broken field is refused, with a reason. */
    struct {
        size_t off;
        unsigned width;
        uint64_t v;
        const char *reason;
    } bad[] = {
        {0, 4, 3, "version"},
        {4, 4, 0, "empty"},
        {8, 4, 0, "empty"},
        {12, 4, 5, "power of two"},
        {16, 8, 4, "misaligned"},
        {40, 8, 100, "misaligned"},
        {40, 8, 1ull << 62, "outside"},
        {32, 8, (uint64_t)-4, "outside"},
        {48, 8, REMOCA_PAGE_SIZE, "outside"},
        {8, 4, 0x7fffffff, "outside"},
        {56, 8, NP - 1, "touch"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint8_t c[REMOCA_SHM_LAYOUT_SIZE];
        memcpy(c, b, sizeof c);
        if (bad[k].width == 4)
            remoca_put_le32(c + bad[k].off, (uint32_t)bad[k].v);
        else
            remoca_put_le64(c + bad[k].off, bad[k].v);
        why[0] = '\0';
        assert_int_equal(remoca_shm_layout_decode(c, sizeof c, &d, why, sizeof why), -1);
        assert_non_null(strstr(why, bad[k].reason));
    }
    free(f.data);
}

static void test_read_chain(void **state)
{
    (void)state;
    struct fake f;
    fake_init(&f);
    uint8_t dst[REMOCA_PAGE_SIZE];
    /* Keys that share bucket 0 of pool POOL, so chains have several links. */
    uint64_t keys[NP];
    unsigned n = 0;
    for (uint64_t k = 0; n < 5; k++)
        if ((remoca_shm_hash(POOL, k) & (NB - 1)) == 0) keys[n++] = k;
    for (uint32_t i = 0; i < 5; i++) fake_put(&f, i, POOL, keys[i], (uint8_t)(0x10 + i));
    for (uint32_t i = 0; i < 5; i++) {
        memset(dst, 0, sizeof dst);
        assert_true(remoca_shm_read(&f.v, keys[i], dst));
        assert_true(all(dst, (uint8_t)(0x10 + i)));
        assert_int_equal(f.touch[i], 1);
    }
    /* Same key in another pool, a key never put: misses. */
    fake_put(&f, 5, POOL + 1, 999, 0x77);
    assert_false(remoca_shm_read(&f.v, 999, dst));
    uint64_t absent = keys[4] + 1;
    while ((remoca_shm_hash(POOL, absent) & (NB - 1)) != 0) absent++;
    assert_false(remoca_shm_read(&f.v, absent, dst));

    /* A slot being changed (odd sequence) is a miss, and a hit again after. */
    remoca_shm_seq_begin(seqs(&f), 2);
    assert_false(remoca_shm_read(&f.v, keys[2], dst));
    remoca_shm_seq_end(seqs(&f), 2);
    assert_true(remoca_shm_read(&f.v, keys[2], dst));

    /* A freed slot (pool 0) still in a chain a reader walks: a miss. */
    remoca_shm_seq_begin(seqs(&f), 3);
    slots(&f)[3].pool = 0;
    remoca_shm_seq_end(seqs(&f), 3);
    assert_false(remoca_shm_read(&f.v, keys[3], dst));

    /* A chain that loops (slot 0 -> 1 -> 0 ...) ends after the step bound;
     * one that leaves the store ends at once. */
    slots(&f)[0].hnext = 1;
    slots(&f)[1].hnext = 0;
    buckets(&f)[0] = 1;
    assert_false(remoca_shm_read(&f.v, absent, dst));
    buckets(&f)[0] = NP + 7;
    assert_false(remoca_shm_read(&f.v, keys[0], dst));
    free(f.data);
}

/* A writer rewrites slot 0 (the only one of its key) again and again with a
 * uniform page of a new byte; a reader's every hit must be uniform: a torn
 * copy must never be reported as a hit. */
struct race {
    struct fake *f;
    uint64_t key;
    atomic_bool stop;
};

static void *writer(void *arg)
{
    struct race *r = arg;
    uint8_t v = 0;
    unsigned rng = 1;
    while (!atomic_load(&r->stop)) {
        remoca_shm_seq_begin(seqs(r->f), 0);
        /* in 64-byte steps with a compiler barrier, so that a reader's copy
         * can overlap the change part way */
        uint8_t *p = page(r->f, 0);
        for (size_t i = 0; i < REMOCA_PAGE_SIZE; i += 64) {
            memset(p + i, v, 64);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
        }
        remoca_shm_seq_end(seqs(r->f), 0);
        v++;
        /* stable for a while: readers start copies while the sequence is even */
        rng = rng * 1103515245u + 12345u;
        for (volatile unsigned k = (rng >> 16) % 4096; k > 0; k--) {
        }
    }
    return NULL;
}

static void test_read_torn(void **state)
{
    (void)state;
    struct fake f;
    fake_init(&f);
    struct race r = {.f = &f, .key = 42};
    fake_put(&f, 0, POOL, r.key, 0);
    atomic_init(&r.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, &r), 0);
    uint8_t dst[REMOCA_PAGE_SIZE];
    unsigned hits = 0, misses = 0;
    unsigned torn = 0;
    for (unsigned n = 0; n < 300000; n++) {
        if (remoca_shm_read(&f.v, r.key, dst)) {
            if (!all(dst, dst[0])) torn++;
            hits++;
        } else {
            misses++;
        }
    }
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    print_message("torn-read race: %u validated hits (%u torn), %u rejected copies\n", hits, torn,
                  misses);
    assert_int_equal(torn, 0);
    assert_true(hits > 0);
    free(f.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_codec),
        cmocka_unit_test(test_read_chain),
        cmocka_unit_test(test_read_torn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
