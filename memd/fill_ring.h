/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's side of one connection's fill ring (layout and contract:
 * lib/wire/include/remoca/fill_ring.h; the op: docs/protocol.md, "Fill ring").
 *
 *   fill_ring_create   memfd (sealed: no shrink, no grow), mapped read-write;
 *                      the fd goes to the client with the FILL_RING response
 *   fill_ring_drain    executes the published entries up to a request id,
 *                      each as a one-page PUT of the connection, in order
 *   fill_ring_destroy  unmaps (the client's mapping lives on, harmlessly)
 *
 * The client writes the ring while the server reads it: head is read once
 * per drain and checked against the server's own tail (never read back from
 * the ring), each entry is read once into locals, and every index is masked,
 * so whatever the client writes, the server touches only the mapping and
 * does at most nslots entries per drain.
 */
#ifndef MEMD_FILL_RING_H
#define MEMD_FILL_RING_H

#include <stdint.h>

#include "remoca/fill_ring.h"

struct proto_ctx;
struct session;

struct fill_ring {
    uint8_t *base; /* the mapping, remoca_ring_size(nslots) bytes */
    uint64_t size;
    uint32_t nslots; /* a power of two (remoca_ring_slots_ok) */
    uint64_t tail;   /* entries executed: the server's count, published at OFF_TAIL */
    int fd;          /* the memfd until it is handed over to be sent, then -1 */
};

/* A new ring of nslots slots with head = tail = 0; NULL with errno set. */
struct fill_ring *fill_ring_create(uint32_t nslots);
/* Unmaps and frees (closes the fd if it was never handed over); NULL is fine. */
void fill_ring_destroy(struct fill_ring *r);

/* Executes ss->ring's entries tail..head-1 in order while their after_id is
 * at or before upto_id (serial order), then publishes the tail.  An empty
 * ring costs one load.  Returns 0, or -1 if head is out of range (logged):
 * the caller closes the connection. */
int fill_ring_drain(const struct proto_ctx *ctx, struct session *ss, uint32_t upto_id);

#endif
