/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the sealed remote (lib/seal/seal.c): the engine over
 * remoca_seal_remote_ops over an in-memory fake sealed remote (pages and
 * sidecars), and the fake disk of test_cache_fake.h.
 *
 *   test ──remoca_cache_*──▶ engine ──remote ops──▶ seal ──sealed ops──▶ fake_sealed
 *                              └──backing ops──▶ fake_disk                (tampered with
 *                                                                          by the tests)
 *
 * Every tampering (a flipped bit, swapped blocks, another pool's or key's
 * page, a replay from before a write) must be a miss served from the disk,
 * counted as an integrity failure, with zero wrong bytes.  Plus known
 * answers (AES-256-GCM, HKDF-SHA256), nonce uniqueness, key files, and the
 * CPU cost per page (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "remoca/seal.h"
#include "seal_internal.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the fake remote: not used here */
#include "test_cache_fake.h"
#pragma GCC diagnostic pop

#define SIDE REMOCA_SEAL_SIDE

/* ---- fake sealed remote ------------------------------------------------- */

struct fake_sealed {
    pthread_mutex_t lock;
    uint64_t n;
    uint8_t (*pages)[BS];
    uint8_t (*sides)[SIDE];
    bool *has;
    bool record; /* keep every nonce counter put */
    uint64_t *nonces;
    size_t nnonces, cap;
    bool null_put; /* bench: a put stores nothing */
    /* A malicious server: keeps the last EVIL_HIST puts of each block and
     * answers one hit in 4 with one of them, or with the neighbour block's. */
    bool evil;
    uint8_t (*hist)[4][BS + SIDE];
    uint8_t *nhist;
    uint64_t rnd;
};
#define EVIL_HIST 4u

static struct fake_sealed *fs_new(uint64_t n)
{
    struct fake_sealed *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->n = n;
    f->pages = calloc(n, BS);
    f->sides = calloc(n, SIDE);
    f->has = calloc(n, sizeof *f->has);
    return f;
}

static void fs_free(struct fake_sealed *f)
{
    free(f->pages);
    free(f->sides);
    free(f->has);
    free(f->nonces);
    free(f->hist);
    free(f->nhist);
    free(f);
}

static unsigned fs_lookup(void *ctx, uint64_t key, uint32_t count, void *pages, void *sides,
                          uint64_t *hits, bool take)
{
    struct fake_sealed *f = ctx;
    unsigned h = 0;
    pthread_mutex_lock(&f->lock);
    for (uint32_t i = 0; i < count; i++)
        if (key + i < f->n && f->has[key + i]) {
            memcpy((char *)pages + (size_t)i * BS, f->pages[key + i], BS);
            memcpy((char *)sides + (size_t)i * SIDE, f->sides[key + i], SIDE);
            hits[i / 64] |= 1ull << (i % 64);
            h++;
            if (take) f->has[key + i] = false;
            f->rnd = f->rnd * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t b = (f->rnd >> 40) % 2 ? key + i : (key + i) ^ 1, r = f->rnd >> 20;
            if (f->evil && r % 4 == 0 && b < f->n && f->nhist[b]) {
                const uint8_t *e =
                    f->hist[b][(r >> 3) % (f->nhist[b] < EVIL_HIST ? f->nhist[b] : EVIL_HIST)];
                memcpy((char *)pages + (size_t)i * BS, e, BS);
                memcpy((char *)sides + (size_t)i * SIDE, e + BS, SIDE);
            }
        }
    pthread_mutex_unlock(&f->lock);
    return h;
}

static unsigned fs_get(void *ctx, uint64_t key, uint32_t count, void *pages, void *sides,
                       uint64_t *hits)
{
    return fs_lookup(ctx, key, count, pages, sides, hits, false);
}

static unsigned fs_take(void *ctx, uint64_t key, uint32_t count, void *pages, void *sides,
                        uint64_t *hits)
{
    return fs_lookup(ctx, key, count, pages, sides, hits, true);
}

static int fs_put(void *ctx, uint64_t key, uint32_t count, const void *pages, const void *sides)
{
    struct fake_sealed *f = ctx;
    pthread_mutex_lock(&f->lock);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *sd = (const uint8_t *)sides + (size_t)i * SIDE;
        if (f->record) {
            if (f->nnonces == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 1024;
                f->nonces = realloc(f->nonces, f->cap * sizeof *f->nonces);
            }
            for (int b = 0; b < 4; b++) assert_int_equal(sd[b], 0); /* 4 zero bytes */
            uint64_t c = 0;
            for (int b = 0; b < 8; b++) c |= (uint64_t)sd[4 + b] << (8 * b);
            f->nonces[f->nnonces++] = c;
        }
        if (f->null_put) continue;
        assert_true(key + i < f->n);
        memcpy(f->pages[key + i], (const char *)pages + (size_t)i * BS, BS);
        memcpy(f->sides[key + i], sd, SIDE);
        f->has[key + i] = true;
        if (f->evil) {
            uint8_t *e = f->hist[key + i][f->nhist[key + i]++ % EVIL_HIST];
            memcpy(e, (const char *)pages + (size_t)i * BS, BS);
            memcpy(e + BS, sd, SIDE);
            if (f->nhist[key + i] == 2 * EVIL_HIST) f->nhist[key + i] = EVIL_HIST;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static int fs_del(void *ctx, uint64_t key, uint64_t count)
{
    struct fake_sealed *f = ctx;
    pthread_mutex_lock(&f->lock);
    for (uint64_t i = 0; i < count && key + i < f->n; i++) f->has[key + i] = false;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static int fs_reset(void *ctx)
{
    struct fake_sealed *f = ctx;
    pthread_mutex_lock(&f->lock);
    memset(f->has, 0, f->n * sizeof *f->has);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static const struct remoca_sealed_ops fs_ops = {fs_get, fs_take, fs_put, fs_del, fs_reset};

/* ---- fixture: engine -> seal -> fake sealed; fake disk ------------------- */

#define DISK (4u << 20) /* 1024 blocks, 32 units */

static const uint8_t master[32] = "remoca test master key 32 bytes";
static const uint8_t salt[16] = "0123456789abcdef";

struct fx {
    struct fake_sealed *r;
    struct fake_disk *d;
    struct remoca_backing b;
    struct remoca_seal *s;
    struct remoca_cache *c;
};

static atomic_uint logs; /* messages of the seal instances */

static void count_log(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&logs, 1);
}

static struct remoca_seal *seal_new(struct fake_sealed *r, const char *pool, const uint8_t *key,
                                    const uint8_t *fixed_salt)
{
    char err[200];
    struct remoca_seal_opts o = {.remote = &fs_ops,
                                 .remote_ctx = r,
                                 .key = key,
                                 .key_len = key ? 32 : 0,
                                 .pool = pool,
                                 .nblocks = DISK / BS,
                                 .test_salt = fixed_salt,
                                 .log = count_log};
    struct remoca_seal *s = remoca_seal_new(&o, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    assert_non_null(s);
    return s;
}

static struct fx *fx_new(enum remoca_write_policy w)
{
    struct fx *x = calloc(1, sizeof *x);
    char err[200];
    x->r = fs_new(DISK / BS);
    x->d = fd_new(DISK);
    x->b = (struct remoca_backing){&fd_ops, x->d};
    x->s = seal_new(x->r, "vm1/vda", master, salt);
    struct remoca_cache_opts o = {
        .disk_size = DISK, .write = w, .remote = &remoca_seal_remote_ops, .remote_ctx = x->s};
    x->c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(x->c);
    return x;
}

static void fx_free(struct fx *x)
{
    remoca_cache_free(x->c);
    remoca_seal_free(x->s);
    fs_free(x->r);
    fd_free(x->d);
    free(x);
}

static struct remoca_seal_stats sstats(struct fx *x)
{
    struct remoca_seal_stats s;
    remoca_seal_get_stats(x->s, &s);
    return s;
}

static struct remoca_cache_stats cstats(struct fx *x)
{
    struct remoca_cache_stats s;
    remoca_cache_get_stats(x->c, &s);
    return s;
}

/* Reads through the engine; the bytes must be the disk's. */
static void read_check(struct fx *x, uint64_t off, uint32_t len)
{
    char *buf = malloc(len);
    int err = 0;
    memset(buf, 0x5a, len);
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, len, off, 0, &err), 0);
    assert_memory_equal(buf, x->d->bytes + off, len);
    free(buf);
}

static void write_block(struct fx *x, uint64_t block, char fill)
{
    char buf[BS];
    int err = 0;
    memset(buf, fill, BS);
    assert_int_equal(remoca_cache_write(x->c, &x->b, buf, BS, block * BS, 0, &err), 0);
}

/* ---- known answers --------------------------------------------------------- */

static void unhex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i]; i++) sscanf(h + 2 * i, "%2hhx", &out[i]);
}

/* AES-256-GCM, the GCM specification's test cases 13 and 14 (key 0^256,
 * IV 0^96, no AAD; empty and one zero block of plaintext). */
static void test_kat_gcm(void **state)
{
    uint8_t key[32] = {0}, iv[12] = {0}, in[16] = {0}, out[16], back[16], tag[16], want[16];
    assert_int_equal(seal_gcm_seal(key, iv, NULL, 0, in, out, 0, tag), 0);
    unhex("530f8afbc74536b9a963b4f1c4cb738b", want);
    assert_memory_equal(tag, want, 16);
    assert_int_equal(seal_gcm_seal(key, iv, NULL, 0, in, out, 16, tag), 0);
    unhex("cea7403d4d606b6e074ec5d3baf39d18", want);
    assert_memory_equal(out, want, 16);
    unhex("d0d1c8a799996bf0265b98b5d48ab919", want);
    assert_memory_equal(tag, want, 16);
    assert_int_equal(seal_gcm_open(key, iv, NULL, 0, out, back, 16, tag), 0);
    assert_memory_equal(back, in, 16);
    tag[3] ^= 1;
    assert_int_equal(seal_gcm_open(key, iv, NULL, 0, out, back, 16, tag), -1);
    /* The AAD counts: a page sealed for block 7 does not open as block 8,
     * version 1 or another pool. */
    uint8_t page[BS], ct[BS], pt[BS], aad[64];
    memset(page, 0x33, BS);
    size_t al = seal_aad(aad, "p", 7, 0);
    assert_int_equal(seal_gcm_seal(key, iv, aad, al, page, ct, BS, tag), 0);
    assert_int_equal(seal_gcm_open(key, iv, aad, al, ct, pt, BS, tag), 0);
    assert_memory_equal(pt, page, BS);
    al = seal_aad(aad, "p", 8, 0);
    assert_int_equal(seal_gcm_open(key, iv, aad, al, ct, pt, BS, tag), -1);
    al = seal_aad(aad, "p", 7, 1);
    assert_int_equal(seal_gcm_open(key, iv, aad, al, ct, pt, BS, tag), -1);
    al = seal_aad(aad, "q", 7, 0);
    assert_int_equal(seal_gcm_open(key, iv, aad, al, ct, pt, BS, tag), -1);
}

/* HKDF-SHA256, RFC 5869 test case 1. */
static void test_kat_hkdf(void **state)
{
    uint8_t ikm[22], s[13], info[10], okm[42], want[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++) s[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++) info[i] = (uint8_t)(0xf0 + i);
    assert_int_equal(seal_hkdf(ikm, sizeof ikm, s, sizeof s, info, sizeof info, okm, sizeof okm),
                     0);
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
          want);
    assert_memory_equal(okm, want, sizeof want);
}

static void test_aad_layout(void **state)
{
    uint8_t aad[64];
    /* "RMC1" || u32 LE 3 || "a/b" || u64 LE block || u32 LE version */
    const uint8_t want[] = {'R',  'M',  'C',  '1',  3,    0,    0,    0,    'a',  '/',  'b', 0x07,
                            0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x08, 0x04, 0x03, 0x02, 0x01};
    size_t n = seal_aad(aad, "a/b", 0x0801020304050607ull, 0x01020304);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(aad, want, sizeof want);
}

/* ---- the engine over the seal ------------------------------------------- */

static void test_round_trip(void **state)
{
    struct fx *x = fx_new(REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 256 * 1024); /* 64 misses, filled sealed */
    assert_int_equal(sstats(x).seals, 64);
    for (int i = 0; i < 64; i++) { /* the server holds ciphertext, not the data */
        assert_true(x->r->has[i]);
        assert_memory_not_equal(x->r->pages[i], x->d->bytes + (size_t)i * BS, BS);
    }
    uint64_t preads = x->d->preads;
    read_check(x, 0, 256 * 1024); /* 64 hits, opened in place */
    assert_int_equal(x->d->preads, preads);
    assert_int_equal(cstats(x).remote_hits, 64);
    assert_int_equal(sstats(x).opens, 64);
    assert_int_equal(sstats(x).integrity_failures, 0);
    assert_int_equal(sstats(x).version_bytes, 32 * 4);
    char out[512];
    struct remoca_seal_stats st = sstats(x);
    assert_true(remoca_seal_format_stats(&st, "seal_", out, sizeof out) < sizeof out);
    assert_non_null(strstr(out, "seal_integrity_failures=0\n"));
    fx_free(x);
}

/* Fills blocks [0, 64), tampers, re-reads them: every tampered block is a
 * miss from the disk, counted; the others hit. */
static void tamper_case(void (*tamper)(struct fx *x), unsigned expect_bad)
{
    struct fx *x = fx_new(REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 256 * 1024);
    tamper(x);
    atomic_store(&logs, 0);
    uint64_t misses = cstats(x).misses;
    read_check(x, 0, 256 * 1024);
    assert_int_equal(sstats(x).integrity_failures, expect_bad);
    assert_int_equal(cstats(x).misses - misses, expect_bad);
    assert_int_equal(sstats(x).opens, 64 - expect_bad);
    assert_int_equal(atomic_load(&logs), 1); /* once per instance, not per page */
    read_check(x, 0, 256 * 1024);            /* refilled: all hits again */
    assert_int_equal(sstats(x).integrity_failures, expect_bad);
    fx_free(x);
}

static void flip_page(struct fx *x) { x->r->pages[5][100] ^= 0x10; }
static void flip_tag(struct fx *x) { x->r->sides[6][20] ^= 0x01; }
static void flip_nonce(struct fx *x) { x->r->sides[7][5] ^= 0x80; }
static void flip_version(struct fx *x) { x->r->sides[8][28] ^= 0x01; }

static void swap_blocks(struct fx *x)
{
    uint8_t p[BS], s[SIDE];
    memcpy(p, x->r->pages[3], BS);
    memcpy(s, x->r->sides[3], SIDE);
    memcpy(x->r->pages[3], x->r->pages[40], BS);
    memcpy(x->r->sides[3], x->r->sides[40], SIDE);
    memcpy(x->r->pages[40], p, BS);
    memcpy(x->r->sides[40], s, SIDE);
}

/* The same block sealed by another instance (another pool, or another key,
 * same salt) replaces ours. */
static void foreign(struct fx *x, const char *pool, const uint8_t *key)
{
    struct fake_sealed *o = fs_new(DISK / BS);
    struct remoca_seal *s = seal_new(o, pool, key, salt);
    assert_int_equal(remoca_seal_remote_ops.put(s, 9, 1, x->d->bytes + 9 * BS), 0);
    memcpy(x->r->pages[9], o->pages[9], BS);
    memcpy(x->r->sides[9], o->sides[9], SIDE);
    remoca_seal_free(s);
    fs_free(o);
}

static void other_pool(struct fx *x) { foreign(x, "vm2/vda", master); }

static void other_key(struct fx *x)
{
    uint8_t k[32];
    memcpy(k, master, 32);
    k[0] ^= 1;
    foreign(x, "vm1/vda", k);
}

/* Our own pool and key, but a fresh instance: another salt, another key. */
static void other_session(struct fx *x)
{
    struct fake_sealed *o = fs_new(DISK / BS);
    struct remoca_seal *s = seal_new(o, "vm1/vda", master, NULL);
    assert_int_equal(remoca_seal_remote_ops.put(s, 9, 1, x->d->bytes + 9 * BS), 0);
    memcpy(x->r->pages[9], o->pages[9], BS);
    memcpy(x->r->sides[9], o->sides[9], SIDE);
    remoca_seal_free(s);
    fs_free(o);
}

static void test_flip_page(void **state) { tamper_case(flip_page, 1); }
static void test_flip_tag(void **state) { tamper_case(flip_tag, 1); }
static void test_flip_nonce(void **state) { tamper_case(flip_nonce, 1); }
static void test_flip_version(void **state) { tamper_case(flip_version, 1); }
static void test_swap_blocks(void **state) { tamper_case(swap_blocks, 2); }
static void test_other_pool(void **state) { tamper_case(other_pool, 1); }
static void test_other_key(void **state) { tamper_case(other_key, 1); }
static void test_other_session(void **state) { tamper_case(other_session, 1); }

/* A page from before a write, replayed after it (with its own genuine
 * sidecar): a miss, the new bytes from the disk, an integrity failure. */
static void replay(enum remoca_write_policy w)
{
    struct fx *x = fx_new(w);
    read_check(x, 0, 128 * 1024); /* unit 0 filled at version 0 */
    uint8_t p[BS], s[SIDE];
    memcpy(p, x->r->pages[4], BS);
    memcpy(s, x->r->sides[4], SIDE);
    write_block(x, 4, 'W'); /* unit 0 now at version 1 */
    read_check(x, 0, 128 * 1024);
    if (w == REMOCA_WRITE_INVALIDATE) { /* the read refilled unit 0 at version 1 */
        assert_int_equal(x->r->sides[4][28], 1);
    } else { /* the update put block 4 at version 1 */
        assert_int_equal(x->r->sides[4][28], 1);
        assert_int_equal(cstats(x).updates, 1);
    }
    assert_int_equal(sstats(x).integrity_failures, 0);
    memcpy(x->r->pages[4], p, BS); /* the replay */
    memcpy(x->r->sides[4], s, SIDE);
    uint64_t misses = cstats(x).misses;
    read_check(x, 0, 128 * 1024);
    assert_int_equal(sstats(x).integrity_failures, 1);
    assert_int_equal(sstats(x).stale, 0);
    assert_int_equal(cstats(x).misses - misses, 1);
    char buf[BS];
    int err;
    assert_int_equal(remoca_cache_read(x->c, &x->b, buf, BS, 4 * BS, 0, &err), 0);
    assert_int_equal(buf[0], 'W');
    fx_free(x);
}

static void test_replay_invalidate(void **state) { replay(REMOCA_WRITE_INVALIDATE); }
static void test_replay_update(void **state) { replay(REMOCA_WRITE_UPDATE); }

/* A write of one block invalidates its whole unit, not the next unit. */
static void test_unit_invalidation(void **state)
{
    struct fx *x = fx_new(REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 256 * 1024); /* units 0 and 1 */
    assert_int_equal(remoca_cache_dir_count(x->c), 64);
    write_block(x, 5, 'x');
    for (int i = 0; i < 32; i++) assert_false(x->r->has[i]);
    for (int i = 32; i < 64; i++) assert_true(x->r->has[i]);
    assert_int_equal(remoca_cache_dir_count(x->c), 32);
    /* An unaligned write in unit 1 too. */
    char b[100] = {0};
    int err;
    assert_int_equal(remoca_cache_write(x->c, &x->b, b, sizeof b, 40 * BS + 7, 0, &err), 0);
    for (int i = 32; i < 64; i++) assert_false(x->r->has[i]);
    assert_int_equal(remoca_cache_dir_count(x->c), 0);
    read_check(x, 0, 256 * 1024);
    read_check(x, 0, 256 * 1024);
    assert_int_equal(sstats(x).integrity_failures, 0);
    fx_free(x);
}

/* Trim and zero bump the version too: a page from before either is refused. */
static void test_trim_zero_bump(void **state)
{
    struct fx *x = fx_new(REMOCA_WRITE_INVALIDATE);
    int err;
    for (int op = 0; op < 2; op++) {
        read_check(x, 0, 128 * 1024);
        uint8_t p[BS], s[SIDE];
        memcpy(p, x->r->pages[2], BS);
        memcpy(s, x->r->sides[2], SIDE);
        if (op == 0)
            assert_int_equal(remoca_cache_trim(x->c, &x->b, BS, 2 * BS, 0, &err), 0);
        else
            assert_int_equal(remoca_cache_zero(x->c, &x->b, BS, 2 * BS, 0, &err), 0);
        read_check(x, 0, 128 * 1024);
        memcpy(x->r->pages[2], p, BS);
        memcpy(x->r->sides[2], s, SIDE);
        read_check(x, 0, 128 * 1024);
        assert_int_equal(sstats(x).integrity_failures, (uint64_t)op + 1);
    }
    fx_free(x);
}

/* A read of a unit-mate while a write is in flight finds the older page
 * (the write has not deleted the unit yet): an honest race, a miss counted
 * as stale, not as an integrity failure. */
static struct fx *race_x;

static void read_during_write(struct fake_disk *d, uint64_t off, uint32_t len)
{
    (void)d;
    (void)off;
    (void)len;
    uint64_t misses = cstats(race_x).misses;
    read_check(race_x, 9 * BS, BS); /* block 9: still on the server, version 0 */
    assert_int_equal(cstats(race_x).misses - misses, 1);
}

static void test_race_is_stale(void **state)
{
    struct fx *x = race_x = fx_new(REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 128 * 1024);
    x->d->in_pwrite = read_during_write;
    write_block(x, 4, 'w');
    assert_int_equal(sstats(x).stale, 1);
    assert_int_equal(sstats(x).integrity_failures, 0);
    read_check(x, 0, 128 * 1024);
    read_check(x, 0, 128 * 1024);
    assert_int_equal(sstats(x).integrity_failures, 0);
    fx_free(x);
}

/* A unit's version wraps: a new session key, the pool reset, version 0;
 * pages of the old key no longer open, new ones do. */
static void test_wrap_rekeys(void **state)
{
    struct fx *x = fx_new(REMOCA_WRITE_INVALIDATE);
    read_check(x, 0, 256 * 1024);
    uint8_t p[BS], s[SIDE];
    memcpy(p, x->r->pages[40], BS); /* unit 1, old key */
    memcpy(s, x->r->sides[40], SIDE);
    seal_test_set_version(x->s, 0, UINT32_MAX);
    atomic_store(&logs, 0);
    write_block(x, 1, 'z');
    assert_int_equal(sstats(x).rekeys, 1);
    assert_int_equal(atomic_load(&logs), 1);
    assert_int_equal(seal_test_version(x->s, 0), 0);
    for (int i = 0; i < 64; i++) assert_false(x->r->has[i]); /* reset */
    read_check(x, 0, 256 * 1024);                            /* refill, new key */
    memcpy(x->r->pages[40], p, BS);
    memcpy(x->r->sides[40], s, SIDE);
    read_check(x, 0, 256 * 1024);
    assert_int_equal(sstats(x).integrity_failures, 1);
    assert_int_equal(sstats(x).opens, 63);
    fx_free(x);
}

/* Concurrent readers and writers on 4 units, honest server: the pages read
 * are always well formed (block number, one sequence number throughout),
 * nothing counts as an integrity failure, and the end state is the disk's. */
#define ST_BLOCKS 128u
#define ST_OPS 3000u

struct st {
    struct fx *x;
    unsigned id;
    atomic_uint *readers_left; /* writers run until the readers are done */
};

/* The sequence number of each block's last acknowledged write. */
static _Atomic uint64_t acked[ST_BLOCKS];

static void st_fill(char *p, uint64_t block, uint64_t seq)
{
    memcpy(p, &block, 8);
    memcpy(p + 8, &seq, 8);
    memset(p + 16, (int)(seq & 0xff), BS - 16);
}

static void *st_run(void *arg)
{
    struct st *t = arg;
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (t->id + 1);
    static _Thread_local char buf[8 * BS];
    for (unsigned k = 0; t->id < 2 ? atomic_load(t->readers_left) > 0 : k < ST_OPS; k++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t b = (rnd >> 33) % ST_BLOCKS;
        int err;
        if (t->id < 2) { /* writer: blocks of its parity */
            b = (b & ~1ull) | t->id;
            st_fill(buf, b, k + 1);
            assert_int_equal(remoca_cache_write(t->x->c, &t->x->b, buf, BS, b * BS, 0, &err), 0);
            atomic_store(&acked[b], k + 1);
            usleep(20);
        } else { /* reader: 1..8 blocks */
            uint32_t n = (uint32_t)((rnd >> 20) % 8) + 1;
            if (b + n > ST_BLOCKS) b = ST_BLOCKS - n;
            uint64_t before[8]; /* contract 1: nothing older than acknowledged */
            for (uint32_t i = 0; i < n; i++) before[i] = atomic_load(&acked[b + i]);
            assert_int_equal(remoca_cache_read(t->x->c, &t->x->b, buf, n * BS, b * BS, 0, &err), 0);
            for (uint32_t i = 0; i < n; i++) {
                const char *p = buf + (size_t)i * BS;
                uint64_t blk, seq;
                memcpy(&blk, p, 8);
                memcpy(&seq, p + 8, 8);
                assert_int_equal(blk, b + i);
                assert_true(seq >= before[i]);
                for (size_t j = 16; j < BS; j += 509) assert_int_equal(p[j], (char)(seq & 0xff));
            }
        }
    }
    if (t->id >= 2) atomic_fetch_sub(t->readers_left, 1);
    return NULL;
}

static void concurrent(enum remoca_write_policy w, bool evil)
{
    struct fx *x = fx_new(w);
    if (evil) {
        x->r->hist = calloc(x->r->n, sizeof *x->r->hist);
        x->r->nhist = calloc(x->r->n, 1);
        x->r->evil = true;
    }
    for (uint64_t b = 0; b < ST_BLOCKS; b++) atomic_store(&acked[b], 0);
    for (uint64_t b = 0; b < ST_BLOCKS; b++) st_fill(x->d->bytes + b * BS, b, 0);
    x->d->yield_every = 5; /* sleep inside some disk reads: fills race with writes */
    atomic_uint readers = 2;
    pthread_t th[4];
    struct st a[4];
    for (unsigned i = 0; i < 4; i++) {
        a[i] = (struct st){x, i, &readers};
        pthread_create(&th[i], NULL, st_run, &a[i]);
    }
    for (unsigned i = 0; i < 4; i++) pthread_join(th[i], NULL);
    struct remoca_seal_stats st = sstats(x);
    printf("concurrent: %llu seals, %llu opens, %llu stale (races), %llu integrity failures\n",
           (unsigned long long)st.seals, (unsigned long long)st.opens, (unsigned long long)st.stale,
           (unsigned long long)st.integrity_failures);
    if (evil)
        assert_true(st.integrity_failures > 0);
    else
        assert_int_equal(st.integrity_failures, 0);
    assert_true(st.opens > 0);
    x->r->evil = false;
    read_check(x, 0, ST_BLOCKS * BS);
    read_check(x, 0, ST_BLOCKS * BS);
    fx_free(x);
}

static void test_concurrent_honest(void **state) { concurrent(REMOCA_WRITE_INVALIDATE, false); }
static void test_concurrent_honest_update(void **state) { concurrent(REMOCA_WRITE_UPDATE, false); }
/* The same against a server replaying old pages and swapping neighbours:
 * never a wrong or stale byte, and the attacks are counted. */
static void test_concurrent_evil(void **state) { concurrent(REMOCA_WRITE_INVALIDATE, true); }
static void test_concurrent_evil_update(void **state) { concurrent(REMOCA_WRITE_UPDATE, true); }

/* Exclusive mode: takes open in place; a tampered take is a miss. */
static void test_exclusive_take(void **state)
{
    char err[200];
    struct fake_sealed *r = fs_new(DISK / BS);
    struct fake_disk *d = fd_new(DISK);
    struct remoca_seal *s = seal_new(r, "vm1/vda", master, salt);
    struct remoca_cache_opts o = {.disk_size = DISK,
                                  .remote = &remoca_seal_remote_ops,
                                  .remote_ctx = s,
                                  .mode = REMOCA_MODE_EXCLUSIVE,
                                  .guest_pages = 16};
    struct remoca_cache *c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(c);
    /* Put two blocks as an eviction would (under no lock: no writer here). */
    assert_int_equal(remoca_seal_remote_ops.put(s, 10, 2, d->bytes + 10 * BS), 0);
    r->pages[11][0] ^= 1;
    /* The engine's directory does not know them: a take still uses a hit
     * (exclusive), but here only dir candidates are asked; ask directly. */
    char buf[2 * BS];
    uint64_t hits[4] = {0};
    assert_int_equal(remoca_seal_remote_ops.take(s, 10, 2, buf, hits), 1);
    assert_int_equal(hits[0], 1);
    assert_memory_equal(buf, d->bytes + 10 * BS, BS);
    assert_false(r->has[10]);
    struct remoca_seal_stats st;
    remoca_seal_get_stats(s, &st);
    assert_int_equal(st.integrity_failures, 1);
    remoca_cache_free(c);
    remoca_seal_free(s);
    fs_free(r);
    fd_free(d);
}

/* Exclusive mode through the engine: eviction puts are sealed, takes
 * opened; a tampered eviction copy is a miss; a write to a unit-mate drops
 * the unit's evicted blocks. */
static void xread(struct remoca_cache *c, struct remoca_backing *b, char *guest, uint64_t block,
                  uint64_t p)
{
    struct remoca_guest_page pg = {p, guest + p * BS};
    int err = 0;
    assert_int_equal(remoca_cache_read_pages(c, b, &pg, 1, block * BS, 0, &err), 0);
    assert_memory_equal(guest + p * BS, ((struct fake_disk *)b->ctx)->bytes + block * BS, BS);
}

static void test_exclusive_engine(void **state)
{
    char err[200];
    struct fake_sealed *r = fs_new(DISK / BS);
    struct fake_disk *d = fd_new(DISK);
    struct remoca_backing b = {&fd_ops, d};
    struct remoca_seal *s = seal_new(r, "vm1/vda", master, salt);
    struct remoca_cache_opts o = {.disk_size = DISK,
                                  .remote = &remoca_seal_remote_ops,
                                  .remote_ctx = s,
                                  .mode = REMOCA_MODE_EXCLUSIVE,
                                  .guest_pages = 8};
    struct remoca_cache *c = remoca_cache_new(&o, err, sizeof err);
    assert_non_null(c);
    char *guest = calloc(8, BS);
    struct remoca_seal_stats st;
    xread(c, &b, guest, 5, 0);
    xread(c, &b, guest, 20, 0); /* evicts 5: a sealed put */
    assert_true(r->has[5]);
    assert_memory_not_equal(r->pages[5], d->bytes + 5 * BS, BS);
    xread(c, &b, guest, 5, 3); /* a take, opened in place */
    assert_false(r->has[5]);
    remoca_seal_get_stats(s, &st);
    assert_int_equal(st.seals, 1);
    assert_int_equal(st.opens, 1);
    xread(c, &b, guest, 40, 3); /* evicts 5 again */
    assert_true(r->has[5]);
    r->pages[5][7] ^= 4;
    unsigned preads = d->preads;
    xread(c, &b, guest, 5, 4); /* the take fails verification: from the disk */
    assert_int_equal(d->preads - preads, 1);
    remoca_seal_get_stats(s, &st);
    assert_int_equal(st.integrity_failures, 1);
    xread(c, &b, guest, 41, 4); /* evicts 5 */
    assert_true(r->has[5]);
    int e;
    char w[BS];
    memset(w, 'u', BS);
    assert_int_equal(remoca_cache_write(c, &b, w, BS, 6 * BS, 0, &e), 0); /* unit-mate */
    assert_false(r->has[5]);
    free(guest);
    remoca_cache_free(c);
    remoca_seal_free(s);
    fs_free(r);
    fd_free(d);
}

/* 100k seals under one key: no nonce twice. */
static int cmp64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_nonces_unique(void **state)
{
    struct fake_sealed *r = fs_new(DISK / BS);
    r->record = true;
    r->null_put = true;
    struct remoca_seal *s = seal_new(r, "vm1/vda", NULL, NULL); /* random master */
    static char pages[250 * BS];
    for (int i = 0; i < 400; i++)
        assert_int_equal(remoca_seal_remote_ops.put(s, (uint64_t)(i % 3) * 250, 250, pages), 0);
    assert_int_equal(r->nnonces, 100000);
    qsort(r->nonces, r->nnonces, sizeof *r->nonces, cmp64);
    for (size_t i = 1; i < r->nnonces; i++) assert_true(r->nonces[i] != r->nonces[i - 1]);
    remoca_seal_free(s);
    fs_free(r);
}

/* The counter's last value, 2^64-1, is never used: sealing is refused. */
static void test_nonces_exhausted(void **state)
{
    struct fake_sealed *r = fs_new(8);
    r->record = true;
    struct remoca_seal *s = seal_new(r, "p", master, NULL);
    static char pages[2 * BS];
    seal_test_set_counter(s, UINT64_MAX - 2);
    assert_int_equal(remoca_seal_remote_ops.put(s, 0, 2, pages), 0); /* 2^64-3, 2^64-2 */
    assert_int_equal(r->nonces[1], UINT64_MAX - 1);
    assert_int_equal(remoca_seal_remote_ops.put(s, 0, 1, pages), -1);
    assert_int_equal(remoca_seal_remote_ops.put(s, 0, 1, pages), -1);
    assert_int_equal(r->nnonces, 2);
    struct remoca_seal_stats st;
    remoca_seal_get_stats(s, &st);
    assert_int_equal(st.seal_errors, 2);
    assert_int_equal(st.seals, 2);
    remoca_seal_free(s);
    fs_free(r);
}

static void test_bad_opts(void **state)
{
    char err[200];
    struct fake_sealed *r = fs_new(8);
    struct remoca_seal_opts o = {.remote = &fs_ops, .remote_ctx = r, .pool = "p", .nblocks = 8};
    o.key = master;
    o.key_len = 16;
    assert_null(remoca_seal_new(&o, err, sizeof err));
    o.key_len = 32;
    o.pool = NULL;
    assert_null(remoca_seal_new(&o, err, sizeof err));
    o.pool = "p";
    struct remoca_seal *s = remoca_seal_new(&o, err, sizeof err);
    assert_non_null(s);
    char page[BS] = {0};
    assert_int_equal(remoca_seal_remote_ops.put(s, 8, 1, page), -1); /* beyond the disk */
    remoca_seal_free(s);
    fs_free(r);
}

static void test_load_key(void **state)
{
    char path[] = "/tmp/remoca-seal-keyXXXXXX", err[300];
    uint8_t key[REMOCA_SEAL_KEY_MAX];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, master, 32), 32);
    close(fd);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(remoca_seal_load_key(path, key, sizeof key, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by everyone"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(remoca_seal_load_key(path, key, sizeof key, err, sizeof err), 32);
    assert_memory_equal(key, master, 32);
    assert_int_equal(truncate(path, 31), 0);
    assert_int_equal(remoca_seal_load_key(path, key, sizeof key, err, sizeof err), -1);
    assert_int_equal(truncate(path, 4097), 0);
    assert_int_equal(remoca_seal_load_key(path, key, sizeof key, err, sizeof err), -1);
    unlink(path);
    assert_int_equal(remoca_seal_load_key(path, key, sizeof key, err, sizeof err), -1);
}

/* ---- CPU cost per page (printed, not asserted) --------------------------- */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void test_bench(void **state)
{
    enum { N = 32, ROUNDS = 400 }; /* 12800 pages of 32-page calls, as the engine's fills */
    struct fake_sealed *r = fs_new(N);
    struct remoca_seal *s = seal_new(r, "vm1/vda", master, NULL);
    char *pages = malloc(N * BS), *out = malloc(N * BS);
    for (size_t i = 0; i < N * BS; i++) pages[i] = (char)(i * 31);
    assert_int_equal(remoca_seal_remote_ops.put(s, 0, N, pages), 0); /* warm up */
    double t0 = now_ns();
    for (int k = 0; k < ROUNDS; k++) remoca_seal_remote_ops.put(s, 0, N, pages);
    double t1 = now_ns();
    for (int k = 0; k < ROUNDS; k++) {
        uint64_t hits[4] = {0};
        assert_int_equal(remoca_seal_remote_ops.get(s, 0, N, out, hits), N);
    }
    double t2 = now_ns();
    assert_memory_equal(out, pages, N * BS);
    uint8_t sides[N * SIDE];
    for (int k = 0; k < ROUNDS; k++) { /* the fake's copies alone */
        uint64_t hits[4] = {0};
        fs_get(r, 0, N, out, sides, hits);
    }
    double t3 = now_ns();
    double pg = (double)N * ROUNDS, copy = (t3 - t2) / pg;
    printf("seal bench: %.0f ns per 4 KiB seal, %.0f ns per 4 KiB open "
           "(fake remote's copy, %.0f ns per page, subtracted)\n",
           (t1 - t0) / pg - copy, (t2 - t1) / pg - copy, copy);
    free(pages);
    free(out);
    remoca_seal_free(s);
    fs_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kat_gcm),
        cmocka_unit_test(test_kat_hkdf),
        cmocka_unit_test(test_aad_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_flip_page),
        cmocka_unit_test(test_flip_tag),
        cmocka_unit_test(test_flip_nonce),
        cmocka_unit_test(test_flip_version),
        cmocka_unit_test(test_swap_blocks),
        cmocka_unit_test(test_other_pool),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_other_session),
        cmocka_unit_test(test_replay_invalidate),
        cmocka_unit_test(test_replay_update),
        cmocka_unit_test(test_unit_invalidation),
        cmocka_unit_test(test_trim_zero_bump),
        cmocka_unit_test(test_race_is_stale),
        cmocka_unit_test(test_wrap_rekeys),
        cmocka_unit_test(test_concurrent_honest),
        cmocka_unit_test(test_concurrent_honest_update),
        cmocka_unit_test(test_concurrent_evil),
        cmocka_unit_test(test_concurrent_evil_update),
        cmocka_unit_test(test_exclusive_take),
        cmocka_unit_test(test_exclusive_engine),
        cmocka_unit_test(test_nonces_unique),
        cmocka_unit_test(test_nonces_exhausted),
        cmocka_unit_test(test_bad_opts),
        cmocka_unit_test(test_load_key),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
