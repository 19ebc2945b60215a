/* SPDX-License-Identifier: BSD-3-Clause */
/* Fill ring: puts handed to a co-located remoca-memd through shared memory,
 * in the connection's order, without a system call or a wake-up per put.
 *
 * Why: a cold read through the nbdkit filter inserts each missed block
 * remotely (an inclusive fill).  Over a unix socket a 4 KiB put costs two
 * kernel copies, the server's wake-up and a response to read; on a CPU-bound
 * host that halves cold-read throughput (docs/nbd-performance.md).  With the
 * ring the client copies the page once into memory the server maps, and the
 * server copies it once into its store when it next looks.
 *
 * The server creates the ring (a memfd sealed against shrinking and growing,
 * so a client cannot make the server fault) and hands it, read-write, to a
 * client on a unix socket in answer to FILL_RING (docs/protocol.md).  One
 * ring per connection, used only by that connection's client:
 *
 *   0            64           128                    4096
 *   ├─ head ─────┼─ tail ─────┼─ zero ───────────────┼─ entries[nslots] ─┼─ pages ──┼─ sides ─┤
 *     u64: puts    u64: puts                           16 B each           nslots x   nslots x
 *     published    executed                            key, handle,        4 KiB,     32 B,
 *     (client)     (server)                            after_id            page i of  sidecar
 *                                                                          entry i    of entry
 *                                                                                     i (sealed
 *                                                                                     pools)
 *
 *   entry (little-endian): u64 key | u32 handle (a pool handle of the
 *   connection, as in a header's `pool`) | u32 after_id
 *
 * head and tail (little-endian u64, each read and written whole, atomically)
 * count entries from 0 and never wrap in practice;
 * entry n is at index n & (nslots - 1).  The client writes entry n and its
 * page (and, for a sealed pool, the page's sidecar: docs/protocol.md,
 * "Sealed pools"), then publishes head = n + 1 (release); the server reads head
 * (acquire), executes entries tail..head-1 in order, each as a one-page PUT,
 * then publishes tail (release), after which the client may reuse the slots.
 *
 * Order.  The ring is part of the connection's request stream: an entry is
 * executed after every request whose id is below its after_id and before the
 * request with id after_id (ids are the header ids the client numbers its
 * requests with, in the order it writes them, modulo 2^32).  The client sets
 * after_id to the id its next request will carry, so the server executes the
 * entry exactly where a PUT frame sent at that moment would have executed:
 * the cache engine's ordering argument (lib/cache/cache.c) holds unchanged.  The
 * server drains the ring up to the request it is about to execute, and after
 * the last request it has; a client with entries and nothing else to send
 * sends a PING (no-wait), which drains everything before it.
 *
 * A server never trusts the ring: it reads head once per drain and refuses a
 * head more than nslots ahead of its own tail (closing the connection), reads
 * every entry once into locals, and treats an entry for a handle that is not
 * open as an error (skipped, counted).  An entry it cannot store (store full:
 * every pool at its minimum) deletes the key's page instead, so it can never
 * leave an older page behind.  A request the server rejects (an error reply)
 * still takes its place in this order; one whose header cannot be trusted
 * closes the connection, and unexecuted entries die with it.  A client can
 * only hurt itself: an entry whose after_id never comes holds back the
 * entries behind it, and a hole punched in the memfd reads as zeros.
 */
#ifndef REMOCA_FILL_RING_H
#define REMOCA_FILL_RING_H

#include <stdint.h>

#define REMOCA_RING_VERSION 2u /* 2: sides (sealed pools' sidecars) */
#define REMOCA_RING_OFF_HEAD 0u
#define REMOCA_RING_OFF_TAIL 64u
#define REMOCA_RING_OFF_ENTRIES 4096u
#define REMOCA_RING_ENTRY_SIZE 16u
#define REMOCA_RING_MIN_SLOTS 16u
#define REMOCA_RING_MAX_SLOTS 1024u    /* 4 MiB of pages */
#define REMOCA_RING_DEFAULT_SLOTS 256u /* 1 MiB: what FILL_RING with count 0 gets */
#define REMOCA_RING_REPLY_SIZE 16u     /* FILL_RING response payload */

/* Byte offset of the page area, and the memfd's size, for nslots entries. */
static inline uint64_t remoca_ring_off_pages(uint32_t nslots)
{
    uint64_t e = REMOCA_RING_OFF_ENTRIES + (uint64_t)nslots * REMOCA_RING_ENTRY_SIZE;
    return (e + 4095u) & ~(uint64_t)4095u;
}
/* Byte offset of the sidecars: REMOCA_SIDE_SIZE (32) bytes per slot. */
static inline uint64_t remoca_ring_off_sides(uint32_t nslots)
{
    return remoca_ring_off_pages(nslots) + (uint64_t)nslots * 4096u;
}
static inline uint64_t remoca_ring_size(uint32_t nslots)
{
    return remoca_ring_off_sides(nslots) + (((uint64_t)nslots * 32u + 4095u) & ~(uint64_t)4095u);
}

/* FILL_RING response payload: u32 version | u32 nslots | u64 size. */
struct remoca_ring_reply {
    uint32_t version;
    uint32_t nslots;
    uint64_t size;
};

struct remoca_ring_entry {
    uint64_t key;
    uint32_t handle;
    uint32_t after_id;
};

/* Whether n is an acceptable slot count (a power of two in [MIN, MAX]). */
static inline int remoca_ring_slots_ok(uint32_t n)
{
    return n >= REMOCA_RING_MIN_SLOTS && n <= REMOCA_RING_MAX_SLOTS && (n & (n - 1)) == 0;
}

void remoca_ring_reply_encode(uint8_t out[REMOCA_RING_REPLY_SIZE],
                              const struct remoca_ring_reply *r);
/* Decodes and checks version, slot count and size; 0, or -1 with why. */
int remoca_ring_reply_decode(const uint8_t *in, uint32_t len, struct remoca_ring_reply *r,
                             char *why, unsigned long whylen);

/* The entry at index i of a mapped ring (base = the mapping), read or written
 * field by field (the other side may be writing it: a reader gets whatever
 * it holds, once). */
void remoca_ring_entry_write(uint8_t *base, uint32_t i, const struct remoca_ring_entry *e);
void remoca_ring_entry_read(const uint8_t *base, uint32_t i, struct remoca_ring_entry *e);

/* Whether request id `a` comes at or before request id `b` (serial order). */
static inline int remoca_id_at_or_before(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

#endif
