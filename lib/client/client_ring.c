/* SPDX-License-Identifier: BSD-3-Clause */
/* Fill ring, client side (the layout and the ordering rule:
 * lib/wire/include/remoca/fill_ring.h): no-wait one-page puts of a connection to a
 * co-located server are copied into the ring the server handed out at the
 * handshake instead of going through the socket.
 *
 *   handshake (conn thread)    FILL_RING ─▶ refused: logged once, socket only
 *                                        └▶ OK: reply + 1 memfd ─▶ mmap RW
 *   conn_main: install (before UP)                       (one incarnation)
 *   sender, send_lock held, UP:
 *     rc_ring_put: room for every page?  no ─▶ the frames go the usual way
 *       yes ─▶ entry {key, handle, after_id = next_id} + page (+ sidecar) per key
 *          ─▶ head += pages (release): the server may execute them from now,
 *             and does so before request next_id, i.e. exactly where a PUT
 *             written now would have executed
 *   somebody must make the server look: the next request written does
 *   (client_send.c); with none, a PING is written once RING_KICK entries wait
 *   or when the send queue's delay (SQ_DELAY_US) passes
 *   teardown: UP cleared, then under send_lock (no sender inside) unmapped
 *
 * Quarantine keeps the ring: its POOL_RESET, like any request, executes
 * after the entries ordered before it, and nothing is appended while not UP.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_conn.h"
#include "remoca/fill_ring.h"

void rc_ring_unmap(struct ring_map *r)
{
    if (r->base) munmap(r->base, r->size);
    memset(r, 0, sizeof *r);
}

/* Maps the ring memfd of a decoded reply.  0, or -1 with why. */
static int map_ring(const struct remoca_ring_reply *rr, int fd, struct ring_map *r, char *why,
                    size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(why, whylen, "fstat: %s", strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size != rr->size) {
        snprintf(why, whylen, "memfd of %lld bytes, the reply says %llu", (long long)st.st_size,
                 (unsigned long long)rr->size);
        return -1;
    }
    /* A ring the server could still shrink would fault us (SIGBUS). */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        snprintf(why, whylen, "memfd not sealed against shrinking");
        return -1;
    }
    void *p = mmap(NULL, (size_t)rr->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(why, whylen, "mmap: %s", strerror(errno));
        return -1;
    }
    r->base = p;
    r->size = (size_t)rr->size;
    r->nslots = rr->nslots;
    r->head = le64toh(
        __atomic_load_n((const uint64_t *)(r->base + REMOCA_RING_OFF_HEAD), __ATOMIC_ACQUIRE));
    return 0;
}

int rc_ring_attach(struct conn *cn, int fd, const struct timespec *deadline, struct ring_map *r,
                   char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    memset(r, 0, sizeof *r);
    struct hs_reply rep;
    int st = rc_hs_call(cn, fd, REMOCA_OP_FILL_RING, 0, 0, NULL, 0, deadline, &rep, why, whylen);
    if (st < 0) return -1;
    if (st > 0) {
        if (!cn->ring_logged)
            rc_log(c, REMOCA_LOG_INFO,
                   "server %s: no fill ring (fill-ring: %s%s%s): puts over the socket",
                   cn->addr.canon, remoca_status_name(rep.h.flags), rep.body_len ? ": " : "",
                   (const char *)rep.body);
        cn->ring_logged = true;
        return 0;
    }
    /* A broken ring is not used (a warning): nothing was written to it. */
    struct remoca_ring_reply rr;
    char bad[160];
    int rc = -1;
    if (rep.nfds != 1)
        snprintf(bad, sizeof bad, "%u descriptors passed (expected 1)", rep.nfds);
    else if (remoca_ring_reply_decode(rep.body, rep.body_len, &rr, bad, sizeof bad) == 0 &&
             map_ring(&rr, rep.fds[0], r, bad, sizeof bad) == 0)
        rc = 0;
    rc_close_fds(rep.fds, rep.nfds);
    if (rc < 0) {
        rc_log(c, REMOCA_LOG_WARN, "server %s: fill ring unusable (%s); puts over the socket",
               cn->addr.canon, bad);
        memset(r, 0, sizeof *r);
        return 0;
    }
    rc_log(c, REMOCA_LOG_DEBUG, "server %s: fill ring of %u slots", cn->addr.canon, r->nslots);
    return 0;
}

void rc_ring_install(struct conn *cn, struct ring_map *r)
{
    cn->ring = *r;
    cn->ring_unflushed = 0;
    atomic_store(&cn->ring_on, cn->ring.base != NULL);
    memset(r, 0, sizeof *r);
}

void rc_ring_uninstall(struct conn *cn)
{
    atomic_store(&cn->ring_on, false);
    rc_ring_unmap(&cn->ring);
    cn->ring_unflushed = 0;
}

bool rc_ring_put(struct conn *cn, const struct frame *f, unsigned n)
{
    struct ring_map *r = &cn->ring;
    if (!r->base || n == 0) return false;
    uint64_t pages = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = cn->client->sealed ? REMOCA_F_SEALED : 0; /* the pool's units */
        if (f[i].op != REMOCA_OP_PUT || f[i].w || f[i].flags != flags) return false;
        pages += f[i].count;
    }
    uint64_t tail = le64toh(
        __atomic_load_n((const uint64_t *)(r->base + REMOCA_RING_OFF_TAIL), __ATOMIC_ACQUIRE));
    if (r->head - tail > r->nslots || pages > r->nslots - (r->head - tail))
        return false; /* full (or a server gone astray): the socket keeps order too */

    uint8_t *page0 = r->base + remoca_ring_off_pages(r->nslots);
    uint8_t *side0 = r->base + remoca_ring_off_sides(r->nslots);
    bool sealed = cn->client->sealed;
    uint32_t unit = remoca_unit_size(sealed);
    uint64_t h = r->head;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *src = f[i].payload;
        for (uint32_t k = 0; k < f[i].count; k++, h++) {
            uint32_t idx = (uint32_t)(h & (r->nslots - 1));
            struct remoca_ring_entry e = {
                .key = f[i].key + k, .handle = cn->pool, .after_id = cn->next_id};
            remoca_ring_entry_write(r->base, idx, &e);
            memcpy(page0 + (size_t)idx * REMOCA_PAGE_SIZE, src + (size_t)k * unit,
                   REMOCA_PAGE_SIZE);
            if (sealed)
                memcpy(side0 + (size_t)idx * REMOCA_SIDE_SIZE,
                       src + (size_t)k * unit + REMOCA_PAGE_SIZE, REMOCA_SIDE_SIZE);
        }
    }
    /* Entries and pages before head: the server reads head with acquire. */
    __atomic_store_n((uint64_t *)(r->base + REMOCA_RING_OFF_HEAD), htole64(h), __ATOMIC_RELEASE);
    r->head = h;
    cn->ring_unflushed += (uint32_t)pages;
    atomic_fetch_add_explicit(&cn->client->ring_puts, pages, memory_order_relaxed);
    return true;
}
