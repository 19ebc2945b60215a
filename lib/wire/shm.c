/* SPDX-License-Identifier: BSD-3-Clause */
/* The shared layout codec and the validated one-sided read (lib/wire/include/remoca/shm.h). */
#include "remoca/shm.h"

#include <stdio.h>
#include <string.h>

#include "remoca/wire.h"

void remoca_shm_layout_encode(uint8_t out[REMOCA_SHM_LAYOUT_SIZE],
                              const struct remoca_shm_layout *l)
{
    memset(out, 0, REMOCA_SHM_LAYOUT_SIZE);
    remoca_put_le32(out + 0, l->version);
    remoca_put_le32(out + 4, l->pool);
    remoca_put_le32(out + 8, l->npages);
    remoca_put_le32(out + 12, l->bmask);
    remoca_put_le64(out + 16, l->off_slots);
    remoca_put_le64(out + 24, l->off_seqs);
    remoca_put_le64(out + 32, l->off_buckets);
    remoca_put_le64(out + 40, l->off_arena);
    remoca_put_le64(out + 48, l->data_size);
    remoca_put_le64(out + 56, l->touch_size);
    remoca_put_le64(out + 64, l->off_sides);
}

/* Whether [off, off + n * size) lies inside [0, total), without overflow. */
static bool inside(uint64_t off, uint64_t n, uint64_t size, uint64_t total)
{
    return off <= total && n <= (total - off) / size;
}

int remoca_shm_layout_decode(const uint8_t *in, size_t len, struct remoca_shm_layout *l, char *why,
                             size_t whylen)
{
    if (len != REMOCA_SHM_LAYOUT_SIZE) {
        snprintf(why, whylen, "shm layout of %zu bytes (expected %u)", len, REMOCA_SHM_LAYOUT_SIZE);
        return -1;
    }
    l->version = remoca_get_le32(in + 0);
    l->pool = remoca_get_le32(in + 4);
    l->npages = remoca_get_le32(in + 8);
    l->bmask = remoca_get_le32(in + 12);
    l->off_slots = remoca_get_le64(in + 16);
    l->off_seqs = remoca_get_le64(in + 24);
    l->off_buckets = remoca_get_le64(in + 32);
    l->off_arena = remoca_get_le64(in + 40);
    l->data_size = remoca_get_le64(in + 48);
    l->touch_size = remoca_get_le64(in + 56);
    l->off_sides = remoca_get_le64(in + 64);
    const char *bad = NULL;
    if (l->version != REMOCA_SHM_VERSION)
        bad = "unknown shm layout version";
    else if (l->pool == 0 || l->npages == 0 || l->npages == REMOCA_SHM_NIL)
        bad = "empty store";
    else if ((l->bmask & (l->bmask + 1)) != 0)
        bad = "bucket count not a power of two";
    else if (l->off_slots % 8 || l->off_seqs % 4 || l->off_buckets % 4 || l->off_sides % 8 ||
             l->off_arena % REMOCA_PAGE_SIZE)
        bad = "misaligned array";
    else if (!inside(l->off_slots, l->npages, sizeof(struct remoca_shm_slot), l->data_size) ||
             !inside(l->off_seqs, l->npages, 4, l->data_size) ||
             !inside(l->off_buckets, (uint64_t)l->bmask + 1, 4, l->data_size) ||
             !inside(l->off_arena, l->npages, REMOCA_PAGE_SIZE, l->data_size) ||
             !inside(l->off_sides, l->npages, REMOCA_SIDE_SIZE, l->data_size))
        bad = "array outside the mapping";
    else if (l->touch_size < l->npages)
        bad = "touch map smaller than the store";
    if (bad) {
        snprintf(why, whylen, "bad shm layout: %s", bad);
        return -1;
    }
    return 0;
}

void remoca_shm_view_init(struct remoca_shm_view *v, const struct remoca_shm_layout *l,
                          const void *data, void *touch)
{
    const uint8_t *d = data;
    v->l = *l;
    v->slots = (const struct remoca_shm_slot *)(d + l->off_slots);
    v->seqs = (const uint32_t *)(d + l->off_seqs);
    v->buckets = (const uint32_t *)(d + l->off_buckets);
    v->arena = d + l->off_arena;
    v->sides = d + l->off_sides;
    v->touched = touch;
}

/* Page to dst, and (side != NULL) its sidecar to side, under one check. */
static bool shm_read(const struct remoca_shm_view *v, uint64_t key, void *dst, void *side)
{
    const uint32_t pool = v->l.pool;
    uint64_t h = remoca_shm_hash(pool, key);
    uint32_t i = __atomic_load_n(&v->buckets[h & v->l.bmask], __ATOMIC_ACQUIRE);
    for (unsigned steps = 0; i < v->l.npages && steps < REMOCA_SHM_MAX_CHAIN; steps++) {
        const struct remoca_shm_slot *e = &v->slots[i];
        uint32_t s1 = __atomic_load_n(&v->seqs[i], __ATOMIC_ACQUIRE);
        uint64_t k = __atomic_load_n(&e->key, __ATOMIC_RELAXED);
        uint32_t p = __atomic_load_n(&e->pool, __ATOMIC_RELAXED);
        uint32_t next = __atomic_load_n(&e->hnext, __ATOMIC_RELAXED);
        if (k == key && p == pool) {
            if (s1 & 1) return false; /* being changed right now: a miss */
            /* The copy may race with the server rewriting the page: the
             * sequence check below is what makes it safe to use. */
            memcpy(dst, v->arena + (size_t)i * REMOCA_PAGE_SIZE, REMOCA_PAGE_SIZE);
            if (side) memcpy(side, v->sides + (size_t)i * REMOCA_SIDE_SIZE, REMOCA_SIDE_SIZE);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&v->seqs[i], __ATOMIC_RELAXED) != s1) return false;
            if (v->touched) __atomic_store_n(&v->touched[i], 1, __ATOMIC_RELAXED);
            return true;
        }
        i = next;
    }
    return false;
}

bool remoca_shm_read(const struct remoca_shm_view *v, uint64_t key, void *dst)
{
    return shm_read(v, key, dst, NULL);
}

bool remoca_shm_read_sealed(const struct remoca_shm_view *v, uint64_t key, void *dst, void *side)
{
    return shm_read(v, key, dst, side);
}
