/* SPDX-License-Identifier: BSD-3-Clause */
/* One-sided reads from a co-located remoca-memd (`--shm`): the shared layout
 * of the page store, and the lock-free read that validates what it copied.
 *
 * This is REMOCA's stand-in for RDMA reads (docs/design.md: "they belong behind the client's
 * transport"), on a machine that has no RDMA: a client on the same
 * host maps the server's page store read-only and serves a GET by reading it,
 * with no round trip and no work for the server, as Pilaf and FaRM serve gets
 * with one-sided RDMA reads.  Writes (puts, deletes, resets) still go over the
 * socket, in order, as before.  The server hands the mapping out only over a
 * unix socket, after HELLO (and authentication) and POOL_OPEN, in answer to
 * SHM_MAP (docs/protocol.md); a client that maps it can read every pool of
 * that server, so `--shm` is for a server that serves one trust domain (the
 * embedded server of `remoca serve`).
 *
 * The data memfd (the client maps it read-only, from a read-only fd):
 *
 *   off_slots         off_seqs        off_buckets         off_sides        off_arena
 *   ├─ slots[npages] ─┼─ seqs[npages] ─┼─ buckets[bmask+1] ─┼─ npages x 32 B ─┼─ npages x 4 KiB ─┤
 *      32 B: key,        u32: even =     u32: first slot      sidecar of       page i is
 *      pool, hnext,      stable, odd =   of the chain, or     page i (sealed   described by
 *      private           being changed   REMOCA_SHM_NIL       pools only)      slots[i]
 *
 *   buckets[remoca_shm_hash(pool, key) & bmask] ─▶ slot ─hnext─▶ slot ─▶ ... NIL
 *
 * The touch memfd (read-write for the client): u8 touched[npages].  A client
 * sets touched[i] after a hit on page i; the server counts it as a use of the
 * page when it next considers the page for eviction (a one-sided hit is
 * invisible to it otherwise, and would age like a page nobody reads).
 *
 * Seqlock, per slot.  The server (under its store lock) brackets every change
 * of a slot's key, pool, page or sidecar with remoca_shm_seq_begin/end; a
 * reader takes the page (and, for a sealed pool, its sidecar) only if it saw
 * the same even sequence number before and after its copy of both, with key
 * and pool matching in between.  A chain that changes under a
 * reader can only make it miss (steps are bounded, indices checked): never
 * return the wrong bytes.  The client side of the ordering contract (a write's
 * invalidation executed, not just sent, before the write is acknowledged) is
 * in lib/client/client_ops.c.
 */
#ifndef REMOCA_SHM_H
#define REMOCA_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REMOCA_SHM_VERSION 2u /* 2: off_sides (sealed pools' sidecars) */
#define REMOCA_SHM_NIL UINT32_MAX
#define REMOCA_SHM_LAYOUT_SIZE 72u /* SHM_MAP response payload */
#define REMOCA_SHM_MAX_CHAIN 64u   /* chain steps a reader takes before calling it a miss */

/* The shared prefix of a slot (memd's struct slot starts with these fields). */
struct remoca_shm_slot {
    uint64_t key;
    uint32_t pool;    /* owning pool id, 0 = free */
    uint32_t hnext;   /* next slot in the same hash chain */
    uint32_t priv[4]; /* the server's own (eviction queues) */
};

/* SHM_MAP response payload: 2 x u32, 2 x u32, 7 x u64, little-endian. */
struct remoca_shm_layout {
    uint32_t version;
    uint32_t pool; /* server pool id of the handle SHM_MAP named (slots' `pool`) */
    uint32_t npages;
    uint32_t bmask; /* buckets - 1, buckets a power of two */
    uint64_t off_slots, off_seqs, off_buckets, off_arena;
    uint64_t data_size;  /* bytes of the data memfd */
    uint64_t touch_size; /* bytes of the touch memfd (>= npages) */
    uint64_t off_sides;  /* REMOCA_SIDE_SIZE bytes per page: sidecars of sealed pools */
};

/* Encodes REMOCA_SHM_LAYOUT_SIZE bytes. */
void remoca_shm_layout_encode(uint8_t out[REMOCA_SHM_LAYOUT_SIZE],
                              const struct remoca_shm_layout *l);
/* Decodes and checks that every array lies inside the sizes given; 0, or -1
 * with a reason in why. */
int remoca_shm_layout_decode(const uint8_t *in, size_t len, struct remoca_shm_layout *l, char *why,
                             size_t whylen);

/* splitmix64's finaliser over (pool, key): the server's hash of its index. */
static inline uint64_t remoca_shm_hash(uint32_t pool, uint64_t key)
{
    uint64_t x = key + (uint64_t)pool * 0x9E3779B97F4A7C15ull;
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/* Writer side (the server, under its store lock). */
static inline void remoca_shm_seq_begin(uint32_t *seqs, uint32_t i)
{
    __atomic_store_n(&seqs[i], seqs[i] + 1, __ATOMIC_RELAXED); /* odd: changing */
    __atomic_thread_fence(__ATOMIC_RELEASE); /* ... before any store to the slot */
}
static inline void remoca_shm_seq_end(uint32_t *seqs, uint32_t i)
{
    __atomic_store_n(&seqs[i], seqs[i] + 1, __ATOMIC_RELEASE); /* even: stable */
}

/* A client's view of a mapping. */
struct remoca_shm_view {
    struct remoca_shm_layout l;
    const struct remoca_shm_slot *slots;
    const uint32_t *seqs;
    const uint32_t *buckets;
    const uint8_t *arena;
    const uint8_t *sides;
    uint8_t *touched; /* NULL: no feedback */
};

/* Points a view at mapped memory (data: data_size bytes, touch: touch_size
 * bytes or NULL); the layout must have been decoded (checked) first. */
void remoca_shm_view_init(struct remoca_shm_view *v, const struct remoca_shm_layout *l,
                          const void *data, void *touch);

/* One-sided GET of one key of the view's pool: copies its page to dst and
 * returns true if the server holds it and the copy was validated; false (dst
 * may have been written) otherwise. */
bool remoca_shm_read(const struct remoca_shm_view *v, uint64_t key, void *dst);
/* The same for a sealed pool: also copies the page's REMOCA_SIDE_SIZE byte
 * sidecar to side, validated by the same sequence check as the page. */
bool remoca_shm_read_sealed(const struct remoca_shm_view *v, uint64_t key, void *dst, void *side);

#endif
