/* SPDX-License-Identifier: BSD-3-Clause */
/* Sealed pages: the engine's remote ops (lib/cache/include/remoca/cache.h) over
 * a sealed remote that stores a 32-byte sidecar with every 4 KiB page
 * (lib/seal/include/remoca/seal.h).  AES-256-GCM (NIST SP 800-38D) through
 * OpenSSL's EVP; the session key from HKDF-SHA256 (RFC 5869).
 *
 * Keys.  One session key per instance and per rekey:
 *   session = HKDF-SHA256(ikm  = master secret (key file, or 32 random bytes),
 *                         salt = 16 fresh random bytes,
 *                         info = "remoca seal v1" || pool name)     -> 32 bytes
 * The salt is never stored: pages sealed by an earlier process (or instance)
 * fail verification, and the engine resets its pool at every connect anyway
 * (docs/design.md, contract 4).
 *
 * A page on the server and its sidecar:
 *
 *   page     ┌──────────────── 4096 bytes: AES-256-GCM ciphertext ─────────────┐
 *   sidecar  ┌──── nonce 12 ─────┬────────── tag 16 ──────────┬ version 4 LE ┐
 *            │ 00 00 00 00 │ ctr │                            │              │
 *            └─────────────┴─ u64 LE, per session key ────────┴──────────────┘
 *   AAD (authenticated, not stored):
 *            ┌ "RMC1" ┬ len u32 LE ┬ pool name (len bytes) ┬ block u64 LE ┬ version u32 LE ┐
 *
 * Nonces: 4 zero bytes || a 64-bit counter of the session key, taken with a
 * compare-and-swap, never reused: a session key belongs to one instance (its
 * salt is fresh random: two instances share a key with probability 2^-128),
 * and its counter would need 2^64 seals to wrap (584 years at 10^9 pages a
 * second); at 2^64-1 sealing is refused (the put is dropped, a miss later).
 *
 * Versions: a u32 per engine unit of 32 blocks (1 bit per disk block),
 * bumped by write_begin under the unit's stripe lock, where every put of the
 * unit is also sealed (lib/cache/cache.c, "Versioned remotes").  A hit is
 * served only if its tag verifies with the AAD of its block, this pool and
 * the version its sidecar names, and that version is the unit's current one.
 * So a page of another block or pool, a flipped bit, another key, or a page
 * sealed before the last write to its unit began, is a miss: never data.
 *
 * A genuine page (tag valid) of an older version is a replay if no write to
 * the unit was in flight: each write (write_begin .. write_end) deletes its
 * whole unit, so an honest server, asked after the writes that set the
 * current version ordered their deletes, no longer holds any page sealed
 * before them.  Counting: the version is read, then the unit's in-flight
 * counter (bumped before the version at write_begin, dropped at write_end
 * after the delete was ordered), before the get; if it was 0 and the version
 * is unchanged after the get, every earlier delete was ordered before the
 * get: integrity_failures.  Otherwise the page may be an honest race with a
 * write (counted as stale).  Both are misses; only the counters differ.
 * In-flight counters are per slot (unit % 1024): a busy neighbour only makes
 * a replay count as stale.
 *
 * A unit whose version would wrap (2^32 writes that began in it) rekeys:
 * a new session key (fresh salt), the pool reset, the unit back to version
 * 0.  Every page sealed before is then unopenable (a miss; a get racing with
 * the reset may count one as an integrity failure).  Retired keys stay
 * allocated (32 bytes each) until the instance is freed.
 *
 * Bytes: 32 per cached page on the server (0.8%), 4 per 32 disk blocks in
 * the client; per thread that seals, a staging buffer as large as its
 * largest put (the engine puts at most a unit: 128 KiB) and two cipher
 * contexts.  The caller's pages are never modified by a put (they are the
 * guest's read buffer); a get opens in place (a miss's page is garbage that
 * the engine overwrites with the disk's data).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "remoca/seal.h"
#include "seal_internal.h"

#define PAGE REMOCA_CACHE_BLOCK
#define SIDE REMOCA_SEAL_SIDE
#define BATCH 256u  /* pages per call, as the engine's */
#define SLOTS 1024u /* in-flight write counters, by unit % SLOTS */
#define UNIT_SHIFT REMOCA_CACHE_UNIT_SHIFT
#define INFO "remoca seal v1"

_Static_assert(SEAL_NONCE + SEAL_TAG + 4 == SIDE, "sidecar layout");

struct seal_key {
    uint8_t k[32];
    _Atomic uint64_t next; /* the next nonce counter */
    struct seal_key *old;  /* retired keys */
};

enum { ST_SEALS, ST_OPENS, ST_INTEGRITY, ST_STALE, ST_SEAL_ERRORS, ST_REKEYS, ST_VBYTES, NST };
_Static_assert(sizeof(struct remoca_seal_stats) == NST * sizeof(uint64_t), "stats");

struct remoca_seal {
    const struct remoca_sealed_ops *r;
    void *rctx;
    uint8_t master[REMOCA_SEAL_KEY_MAX];
    size_t master_len;
    char pool[REMOCA_SEAL_POOL_MAX + 1];
    uint64_t nblocks, nunits;
    _Atomic uint32_t *ver; /* per unit */
    _Atomic uint32_t inflight[SLOTS];
    _Atomic(struct seal_key *) key;
    pthread_mutex_t rekey_lock;
    atomic_bool logged;
    void (*log)(void *, const char *);
    void *log_arg;
    bool fixed_salt;
    uint8_t salt[16];
    _Atomic uint64_t st[NST];
};

#define COUNT(s, i, n) atomic_fetch_add_explicit(&(s)->st[(i)], (n), memory_order_relaxed)

/* ---- primitives --------------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const EVP_CIPHER *gcm;
static EVP_CIPHER *gcm_fetched;
static pthread_key_t tls_key;

struct tls {
    EVP_CIPHER_CTX *enc, *dec;
    uint8_t *stage; /* sealed pages of a put */
    size_t cap;     /* pages */
    uint8_t sides[BATCH * SIDE];
};

static void tls_free(void *p)
{
    struct tls *t = p;
    if (!t) return;
    EVP_CIPHER_CTX_free(t->enc);
    EVP_CIPHER_CTX_free(t->dec);
    free(t->stage);
    free(t);
}

static void init_once(void)
{
    gcm_fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL); /* once, not per init */
    gcm = gcm_fetched ? gcm_fetched : EVP_aes_256_gcm();
    pthread_key_create(&tls_key, tls_free);
}

/* This thread's cipher contexts and buffers. */
static struct tls *tls_get(void)
{
    pthread_once(&once, init_once);
    struct tls *t = pthread_getspecific(tls_key);
    if (t) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    t->enc = EVP_CIPHER_CTX_new();
    t->dec = EVP_CIPHER_CTX_new();
    if (!t->enc || !t->dec || pthread_setspecific(tls_key, t)) {
        tls_free(t);
        return NULL;
    }
    return t;
}

static inline void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t seal_aad(uint8_t *out, const char *pool, uint64_t block, uint32_t version)
{
    size_t n = strlen(pool);
    memcpy(out, "RMC1", 4);
    le32(out + 4, (uint32_t)n);
    memcpy(out + 8, pool, n);
    le64(out + 8 + n, block);
    le32(out + 16 + n, version);
    return 20 + n;
}

int seal_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
              const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *x = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
        OSSL_PARAM_construct_end(),
    };
    int r = x && EVP_KDF_derive(x, out, outlen, p) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(x);
    EVP_KDF_free(kdf);
    return r;
}

/* One page (or any len) with a context already keyed for encryption. */
static int gcm_seal_ctx(EVP_CIPHER_CTX *x, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
                        const uint8_t *in, uint8_t *out, size_t len, uint8_t *tag)
{
    uint8_t fin[16];
    int l;
    if (EVP_EncryptInit_ex(x, NULL, NULL, NULL, nonce) != 1) return -1;
    if (EVP_EncryptUpdate(x, NULL, &l, aad, (int)aadlen) != 1) return -1;
    if (len && EVP_EncryptUpdate(x, out, &l, in, (int)len) != 1) return -1;
    if (EVP_EncryptFinal_ex(x, fin, &l) != 1) return -1; /* GCM: no output */
    return EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag) == 1 ? 0 : -1;
}

/* The inverse, with a context keyed for decryption; 0 if the tag verifies. */
static int gcm_open_ctx(EVP_CIPHER_CTX *x, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
                        const uint8_t *in, uint8_t *out, size_t len, const uint8_t *tag)
{
    uint8_t fin[16], t[SEAL_TAG];
    int l;
    memcpy(t, tag, SEAL_TAG);
    if (EVP_DecryptInit_ex(x, NULL, NULL, NULL, nonce) != 1) return -1;
    if (EVP_DecryptUpdate(x, NULL, &l, aad, (int)aadlen) != 1) return -1;
    if (len && EVP_DecryptUpdate(x, out, &l, in, (int)len) != 1) return -1;
    if (EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, t) != 1) return -1;
    return EVP_DecryptFinal_ex(x, fin, &l) > 0 ? 0 : -1;
}

int seal_gcm_seal(const uint8_t key[32], const uint8_t nonce[SEAL_NONCE], const uint8_t *aad,
                  size_t aadlen, const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[SEAL_TAG])
{
    struct tls *t = tls_get();
    if (!t || EVP_EncryptInit_ex(t->enc, gcm, NULL, key, NULL) != 1) return -1;
    return gcm_seal_ctx(t->enc, nonce, aad, aadlen, in, out, len, tag);
}

int seal_gcm_open(const uint8_t key[32], const uint8_t nonce[SEAL_NONCE], const uint8_t *aad,
                  size_t aadlen, const uint8_t *in, uint8_t *out, size_t len,
                  const uint8_t tag[SEAL_TAG])
{
    struct tls *t = tls_get();
    if (!t || EVP_DecryptInit_ex(t->dec, gcm, NULL, key, NULL) != 1) return -1;
    return gcm_open_ctx(t->dec, nonce, aad, aadlen, in, out, len, tag);
}

/* ---- keys ---------------------------------------------------------------- */

static struct seal_key *derive(struct remoca_seal *s)
{
    uint8_t salt[16], info[sizeof INFO - 1 + REMOCA_SEAL_POOL_MAX];
    size_t pl = strlen(s->pool);
    if (s->fixed_salt) { /* the first key only: a rekey's salt is always fresh */
        memcpy(salt, s->salt, sizeof salt);
        s->fixed_salt = false;
    } else if (RAND_bytes(salt, sizeof salt) != 1)
        return NULL;
    memcpy(info, INFO, sizeof INFO - 1);
    memcpy(info + sizeof INFO - 1, s->pool, pl);
    struct seal_key *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    if (seal_hkdf(s->master, s->master_len, salt, sizeof salt, info, sizeof INFO - 1 + pl, k->k,
                  sizeof k->k)) {
        free(k);
        return NULL;
    }
    atomic_init(&k->next, 0);
    return k;
}

/* The next nonce of k, or false once its counter is exhausted. */
static bool next_nonce(struct seal_key *k, uint8_t *nonce)
{
    uint64_t n = atomic_load_explicit(&k->next, memory_order_relaxed);
    do {
        if (n == UINT64_MAX) return false;
    } while (!atomic_compare_exchange_weak_explicit(&k->next, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    memset(nonce, 0, 4);
    le64(nonce + 4, n);
    return true;
}

static void say(struct remoca_seal *s, const char *msg)
{
    if (s->log)
        s->log(s->log_arg, msg);
    else
        fprintf(stderr, "%s\n", msg);
}

/* ---- the engine's remote ops -------------------------------------------- */

static int sl_put(void *ctx, uint64_t key, uint32_t count, const void *pages)
{
    struct remoca_seal *s = ctx;
    if (count == 0 || count > BATCH || key >= s->nblocks || count > s->nblocks - key) return -1;
    struct tls *t = tls_get();
    if (!t) goto fail;
    if (t->cap < count) {
        uint8_t *p = realloc(t->stage, (size_t)count * PAGE);
        if (!p) goto fail;
        t->stage = p;
        t->cap = count;
    }
    struct seal_key *k = atomic_load_explicit(&s->key, memory_order_acquire);
    if (!k || EVP_EncryptInit_ex(t->enc, gcm, NULL, k->k, NULL) != 1) goto fail;
    uint8_t aad[20 + REMOCA_SEAL_POOL_MAX];
    for (uint32_t i = 0; i < count; i++) {
        uint64_t block = key + i;
        /* Exact: the engine calls put under the unit's stripe lock, where
         * write_begin bumps the version. */
        uint32_t v = atomic_load(&s->ver[block >> UNIT_SHIFT]);
        uint8_t *side = t->sides + (size_t)i * SIDE;
        if (!next_nonce(k, side)) goto fail;
        size_t al = seal_aad(aad, s->pool, block, v);
        if (gcm_seal_ctx(t->enc, side, aad, al, (const uint8_t *)pages + (size_t)i * PAGE,
                         t->stage + (size_t)i * PAGE, PAGE, side + SEAL_NONCE))
            goto fail;
        le32(side + SEAL_NONCE + SEAL_TAG, v);
    }
    int r = s->r->put_sealed(s->rctx, key, count, t->stage, t->sides);
    if (r == 0) COUNT(s, ST_SEALS, count);
    return r;
fail:
    COUNT(s, ST_SEAL_ERRORS, 1);
    return -1;
}

static unsigned lookup(struct remoca_seal *s, uint64_t key, uint32_t count, void *pages,
                       uint64_t *hits, bool take)
{
    if (count == 0 || count > BATCH || key >= s->nblocks) return 0;
    if (count > s->nblocks - key) count = (uint32_t)(s->nblocks - key);
    struct tls *t = tls_get();
    if (!t || (take && !s->r->take_sealed)) return 0;
    /* Before the get: each unit's version, then whether a write is in flight
     * there (see the header: what tells a replay from a race). */
    uint64_t u0 = key >> UNIT_SHIFT, nu = ((key + count - 1) >> UNIT_SHIFT) - u0 + 1;
    uint32_t vb[BATCH / REMOCA_CACHE_UNIT_BLOCKS + 1];
    bool quiet[BATCH / REMOCA_CACHE_UNIT_BLOCKS + 1];
    for (uint64_t u = 0; u < nu; u++) {
        vb[u] = atomic_load(&s->ver[u0 + u]);
        quiet[u] = atomic_load(&s->inflight[(u0 + u) % SLOTS]) == 0;
    }
    uint64_t got[BATCH / 64] = {0};
    if (take)
        s->r->take_sealed(s->rctx, key, count, pages, t->sides, got);
    else
        s->r->get_sealed(s->rctx, key, count, pages, t->sides, got);
    struct seal_key *k = atomic_load_explicit(&s->key, memory_order_acquire);
    bool keyed = k && EVP_DecryptInit_ex(t->dec, gcm, NULL, k->k, NULL) == 1;
    uint8_t aad[20 + REMOCA_SEAL_POOL_MAX];
    unsigned good = 0, bad = 0, stale = 0;
    uint64_t first_bad = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (!((got[i / 64] >> (i % 64)) & 1)) continue;
        uint64_t block = key + i, u = (block >> UNIT_SHIFT) - u0;
        uint8_t *side = t->sides + (size_t)i * SIDE;
        uint8_t *page = (uint8_t *)pages + (size_t)i * PAGE;
        uint32_t sv = get_le32(side + SEAL_NONCE + SEAL_TAG);
        uint32_t now = atomic_load(&s->ver[block >> UNIT_SHIFT]);
        size_t al = seal_aad(aad, s->pool, block, sv);
        bool ok =
            keyed && !gcm_open_ctx(t->dec, side, aad, al, page, page, PAGE, side + SEAL_NONCE);
        if (ok && sv == now) {
            hits[i / 64] |= 1ull << (i % 64);
            good++;
        } else if (!ok || (quiet[u] && vb[u] == now)) {
            if (!bad++) first_bad = block; /* forged, or replayed: never data */
        } else {
            stale++; /* genuine, older, a write in flight: an honest race */
        }
    }
    COUNT(s, ST_OPENS, good);
    if (bad) COUNT(s, ST_INTEGRITY, bad);
    if (stale) COUNT(s, ST_STALE, stale);
    if (bad && !atomic_exchange(&s->logged, true)) {
        char msg[256 + REMOCA_SEAL_POOL_MAX];
        snprintf(msg, sizeof msg,
                 "remoca seal: pool %s: the page of block %llu failed verification (forged, "
                 "replayed or sealed under another key); served from the disk; further failures "
                 "are counted (integrity_failures), not logged",
                 s->pool, (unsigned long long)first_bad);
        say(s, msg);
    }
    return good;
}

static unsigned sl_get(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return lookup(ctx, key, count, pages, hits, false);
}

static unsigned sl_take(void *ctx, uint64_t key, uint32_t count, void *pages, uint64_t *hits)
{
    return lookup(ctx, key, count, pages, hits, true);
}

static int sl_del(void *ctx, uint64_t key, uint64_t count)
{
    struct remoca_seal *s = ctx;
    return s->r->del(s->rctx, key, count);
}

static int sl_reset(void *ctx)
{
    struct remoca_seal *s = ctx;
    return s->r->reset ? s->r->reset(s->rctx) : 0;
}

/* A unit's version would wrap: a new session key, then the pool reset. */
static void rekey(struct remoca_seal *s)
{
    pthread_mutex_lock(&s->rekey_lock);
    struct seal_key *old = atomic_load(&s->key), *k = derive(s);
    if (k) {
        k->old = old;
        atomic_store_explicit(&s->key, k, memory_order_release);
    } else { /* no new key: keep the old one but seal nothing more */
        atomic_store_explicit(&old->next, UINT64_MAX, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->rekey_lock);
    sl_reset(s);
    COUNT(s, ST_REKEYS, 1);
    say(s, k ? "remoca seal: a unit's version wrapped: new session key, pool reset"
             : "remoca seal: a unit's version wrapped and no new key could be derived: "
               "sealing stopped (reads go to the disk)");
}

/* Under the unit's stripe lock (lib/cache/cache.c): one writer of ver[unit]. */
static void sl_write_begin(void *ctx, uint64_t unit)
{
    struct remoca_seal *s = ctx;
    if (unit >= s->nunits) return;
    atomic_fetch_add(&s->inflight[unit % SLOTS], 1); /* before the version: see lookup */
    uint32_t v = atomic_load(&s->ver[unit]);
    if (v == UINT32_MAX) rekey(s);
    atomic_store(&s->ver[unit], v + 1); /* 0 after a rekey */
}

static void sl_write_end(void *ctx, uint64_t unit)
{
    struct remoca_seal *s = ctx;
    if (unit < s->nunits) atomic_fetch_sub(&s->inflight[unit % SLOTS], 1);
}

void seal_test_set_version(struct remoca_seal *s, uint64_t unit, uint32_t v)
{
    atomic_store(&s->ver[unit], v);
}

uint32_t seal_test_version(struct remoca_seal *s, uint64_t unit)
{
    return atomic_load(&s->ver[unit]);
}

void seal_test_set_counter(struct remoca_seal *s, uint64_t next)
{
    atomic_store(&atomic_load(&s->key)->next, next);
}

const struct remoca_remote_ops remoca_seal_remote_ops = {
    .get = sl_get,
    .put = sl_put,
    .del = sl_del,
    .reset = sl_reset,
    .take = sl_take,
    .write_begin = sl_write_begin,
    .write_end = sl_write_end,
};

/* ---- lifecycle, stats, key files ------------------------------------------ */

struct remoca_seal *remoca_seal_new(const struct remoca_seal_opts *o, char *err, size_t errlen)
{
    if (!o->remote || !o->remote->get_sealed || !o->remote->put_sealed || !o->remote->del) {
        snprintf(err, errlen, "seal: sealed remote ops missing");
        return NULL;
    }
    if (!o->pool || strlen(o->pool) > REMOCA_SEAL_POOL_MAX) {
        snprintf(err, errlen, "seal: a pool name of at most %u bytes is needed",
                 REMOCA_SEAL_POOL_MAX);
        return NULL;
    }
    if (o->key && (o->key_len < REMOCA_SEAL_KEY_MIN || o->key_len > REMOCA_SEAL_KEY_MAX)) {
        snprintf(err, errlen, "seal: a master key has %u to %u bytes, not %zu", REMOCA_SEAL_KEY_MIN,
                 REMOCA_SEAL_KEY_MAX, o->key_len);
        return NULL;
    }
    pthread_once(&once, init_once);
    struct remoca_seal *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->r = o->remote;
    s->rctx = o->remote_ctx;
    strcpy(s->pool, o->pool);
    s->nblocks = o->nblocks;
    s->nunits = (o->nblocks + REMOCA_CACHE_UNIT_BLOCKS - 1) >> UNIT_SHIFT;
    s->log = o->log;
    s->log_arg = o->log_arg;
    pthread_mutex_init(&s->rekey_lock, NULL);
    if (o->test_salt) {
        s->fixed_salt = true;
        memcpy(s->salt, o->test_salt, sizeof s->salt);
    }
    if (o->key) {
        memcpy(s->master, o->key, o->key_len);
        s->master_len = o->key_len;
    } else {
        s->master_len = 32;
        if (RAND_bytes(s->master, 32) != 1) {
            snprintf(err, errlen, "seal: no random bytes for a master key");
            remoca_seal_free(s);
            return NULL;
        }
    }
    if (!(s->ver = calloc(s->nunits ? s->nunits : 1, sizeof *s->ver))) goto oom;
    atomic_store(&s->st[ST_VBYTES], s->nunits * sizeof *s->ver);
    struct seal_key *k = derive(s);
    if (!k) {
        snprintf(err, errlen, "seal: deriving the session key failed (OpenSSL HKDF)");
        remoca_seal_free(s);
        return NULL;
    }
    atomic_store(&s->key, k);
    return s;
oom:
    snprintf(err, errlen, "seal: out of memory for %llu blocks", (unsigned long long)o->nblocks);
    remoca_seal_free(s);
    return NULL;
}

void remoca_seal_free(struct remoca_seal *s)
{
    if (!s) return;
    for (struct seal_key *k = atomic_load(&s->key), *n; k; k = n) {
        n = k->old;
        OPENSSL_cleanse(k->k, sizeof k->k);
        free(k);
    }
    OPENSSL_cleanse(s->master, sizeof s->master);
    pthread_mutex_destroy(&s->rekey_lock);
    free(s->ver);
    free(s);
}

static const char *const stat_names[NST] = {
    "seals", "opens", "integrity_failures", "stale", "seal_errors", "rekeys", "version_bytes",
};

void remoca_seal_get_stats(const struct remoca_seal *s, struct remoca_seal_stats *st)
{
    uint64_t *v = (uint64_t *)st;
    for (size_t i = 0; i < NST; i++)
        v[i] = atomic_load_explicit(&((struct remoca_seal *)s)->st[i], memory_order_relaxed);
}

size_t remoca_seal_format_stats(const struct remoca_seal_stats *st, const char *prefix, char *buf,
                                size_t len)
{
    return remoca_format_counters(stat_names, (const uint64_t *)st, NST, prefix, buf, len);
}

int remoca_seal_load_key(const char *path, uint8_t *key, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int r = -1;
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s: not a regular file", path);
    } else if (st.st_mode & S_IROTH) {
        snprintf(err, errlen, "key file %s: readable by everyone (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    } else if (st.st_size < (off_t)REMOCA_SEAL_KEY_MIN || st.st_size > (off_t)REMOCA_SEAL_KEY_MAX) {
        snprintf(err, errlen, "key file %s: %lld bytes; a key has %u to %u", path,
                 (long long)st.st_size, REMOCA_SEAL_KEY_MIN, REMOCA_SEAL_KEY_MAX);
    } else if ((size_t)st.st_size > cap) {
        snprintf(err, errlen, "key file %s: buffer too small", path);
    } else {
        size_t want = (size_t)st.st_size, got = 0;
        while (got < want) {
            ssize_t n = read(fd, key + got, want - got);
            if (n == -1 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got == want)
            r = (int)want;
        else
            snprintf(err, errlen, "key file %s: short read", path);
    }
    close(fd);
    return r;
}
