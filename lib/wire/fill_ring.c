/* SPDX-License-Identifier: BSD-3-Clause */
/* Fill ring codec (lib/wire/include/remoca/fill_ring.h): the FILL_RING response and
 * the ring's entries, shared by the client and remoca-memd. */
#include "remoca/fill_ring.h"

#include <stdio.h>

#include "remoca/wire.h"

void remoca_ring_reply_encode(uint8_t out[REMOCA_RING_REPLY_SIZE],
                              const struct remoca_ring_reply *r)
{
    remoca_put_le32(out, r->version);
    remoca_put_le32(out + 4, r->nslots);
    remoca_put_le64(out + 8, r->size);
}

int remoca_ring_reply_decode(const uint8_t *in, uint32_t len, struct remoca_ring_reply *r,
                             char *why, unsigned long whylen)
{
    if (len != REMOCA_RING_REPLY_SIZE) {
        snprintf(why, whylen, "fill ring reply of %u bytes, expected %u", len,
                 REMOCA_RING_REPLY_SIZE);
        return -1;
    }
    r->version = remoca_get_le32(in);
    r->nslots = remoca_get_le32(in + 4);
    r->size = remoca_get_le64(in + 8);
    if (r->version != REMOCA_RING_VERSION) {
        snprintf(why, whylen, "fill ring version %u, expected %u", r->version, REMOCA_RING_VERSION);
        return -1;
    }
    if (!remoca_ring_slots_ok(r->nslots)) {
        snprintf(why, whylen, "fill ring of %u slots (a power of two in [%u, %u])", r->nslots,
                 REMOCA_RING_MIN_SLOTS, REMOCA_RING_MAX_SLOTS);
        return -1;
    }
    if (r->size != remoca_ring_size(r->nslots)) {
        snprintf(why, whylen, "fill ring of %llu bytes for %u slots, expected %llu",
                 (unsigned long long)r->size, r->nslots,
                 (unsigned long long)remoca_ring_size(r->nslots));
        return -1;
    }
    return 0;
}

void remoca_ring_entry_write(uint8_t *base, uint32_t i, const struct remoca_ring_entry *e)
{
    uint8_t *p = base + REMOCA_RING_OFF_ENTRIES + (uint64_t)i * REMOCA_RING_ENTRY_SIZE;
    remoca_put_le64(p, e->key);
    remoca_put_le32(p + 8, e->handle);
    remoca_put_le32(p + 12, e->after_id);
}

void remoca_ring_entry_read(const uint8_t *base, uint32_t i, struct remoca_ring_entry *e)
{
    /* Byte loads through a volatile pointer: each field read exactly once. */
    const volatile uint8_t *p =
        base + REMOCA_RING_OFF_ENTRIES + (uint64_t)i * REMOCA_RING_ENTRY_SIZE;
    uint8_t b[REMOCA_RING_ENTRY_SIZE];
    for (unsigned k = 0; k < sizeof b; k++) b[k] = p[k];
    e->key = remoca_get_le64(b);
    e->handle = remoca_get_le32(b + 8);
    e->after_id = remoca_get_le32(b + 12);
}
