/* SPDX-License-Identifier: BSD-3-Clause */
/* One-sided reads from a co-located remoca-memd (`--shm`): mapping the
 * server's page store at the handshake, the mapping's lifetime, and serving a
 * GET frame from it (the layout and the validated read: lib/wire/include/remoca/shm.h).
 *
 *   handshake (conn thread)        HELLO, POOL_OPEN, POOL_RESET, SHM_MAP
 *     SHM_MAP ─▶ error reply: not offered (logged once), go on without
 *             └▶ OK: layout + data memfd (read-only) + touch memfd (SCM_RIGHTS)
 *                decode, fstat (sizes must match), mmap, close fds
 *   conn_main: install (shm_view) ─▶ up = true                (one incarnation)
 *   quarantine: nothing (same server, alive; reads need UP anyway)
 *   teardown: up = false, shm_view = NULL ─▶ wait shm_readers == 0 ─▶ munmap
 *             ─▶ only then fail the waiters
 *
 * A reader (any caller thread, rc_shm_get):
 *
 *   shm_readers++ ─▶ v = shm_view, g = gen, up?, no invalidation of the
 *   frame's keys pending (global and their stripes 0: client_inval.c)?
 *   ─▶ remoca_shm_read per key
 *   ─▶ still up and gen == g? else drop the frame's hits ─▶ shm_readers--
 *
 * (not up, no view, or an invalidation of its keys pending: the frame is
 * sent instead.)
 * All seq_cst: either teardown's drain sees the reader counted, or the
 * reader sees the view cleared, so nobody touches an unmapped view.  The
 * re-check after the copies makes every hit a copy taken entirely inside one
 * UP period of one generation: a quarantine or teardown clears up before it
 * fails any waiter (before a failed invalidation is counted as answered,
 * too), and going UP again always bumps gen, after a pool reset that also
 * zeroes the pending counts.  A hit is therefore copied after every
 * invalidation of its key ordered on the connection before the reader
 * looked has been executed
 * (client_ops.c and lib/cache/cache.c say why that suffices).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_conn.h"
#include "client_sock.h"

/* ---- mapping (handshake, conn thread) ---------------------------------- */

void rc_shm_unmap(struct shm_map *map)
{
    if (map->data) munmap(map->data, map->data_len);
    if (map->touch) munmap(map->touch, map->touch_len);
    memset(map, 0, sizeof *map);
}

/* Maps the two memfds of a decoded layout into *map.  0, or -1 with why. */
static int map_fds(const struct remoca_shm_layout *l, int data_fd, int touch_fd,
                   struct shm_map *map, char *why, size_t whylen)
{
    struct stat sd, st;
    if (fstat(data_fd, &sd) < 0 || fstat(touch_fd, &st) < 0) {
        snprintf(why, whylen, "fstat: %s", strerror(errno));
        return -1;
    }
    if ((uint64_t)sd.st_size != l->data_size || (uint64_t)st.st_size != l->touch_size) {
        snprintf(why, whylen, "memfd sizes %lld/%lld differ from the layout's %llu/%llu",
                 (long long)sd.st_size, (long long)st.st_size, (unsigned long long)l->data_size,
                 (unsigned long long)l->touch_size);
        return -1;
    }
    if (l->data_size > SIZE_MAX || l->touch_size > SIZE_MAX) {
        snprintf(why, whylen, "store too big to map");
        return -1;
    }
    map->data_len = (size_t)l->data_size;
    map->touch_len = (size_t)l->touch_size;
    void *d = mmap(NULL, map->data_len, PROT_READ, MAP_SHARED, data_fd, 0);
    if (d == MAP_FAILED) {
        snprintf(why, whylen, "mmap data: %s", strerror(errno));
        return -1;
    }
    void *t = mmap(NULL, map->touch_len, PROT_READ | PROT_WRITE, MAP_SHARED, touch_fd, 0);
    if (t == MAP_FAILED) {
        snprintf(why, whylen, "mmap touch: %s", strerror(errno));
        munmap(d, map->data_len);
        return -1;
    }
    map->data = d;
    map->touch = t;
    remoca_shm_view_init(&map->view, l, d, t);
    return 0;
}

int rc_shm_map(struct conn *cn, int fd, uint32_t pool, const struct timespec *deadline,
               struct shm_map *map, char *why, size_t whylen)
{
    struct remoca_client *c = cn->client;
    memset(map, 0, sizeof *map);
    struct hs_reply r;
    int st = rc_hs_call(cn, fd, REMOCA_OP_SHM_MAP, pool, 0, NULL, 0, deadline, &r, why, whylen);
    if (st < 0) return -1;
    if (st > 0) {
        if (!cn->shm_logged)
            rc_log(c, REMOCA_LOG_INFO, "server %s: no one-sided reads (shm-map: %s%s%s)",
                   cn->addr.canon, remoca_status_name(r.h.flags), r.body_len ? ": " : "",
                   (const char *)r.body);
        cn->shm_logged = true;
        return 0; /* not offered: the socket alone */
    }
    /* A server that offers a broken mapping is used over the socket (a
     * warning): nothing was read from the mapping yet. */
    struct remoca_shm_layout l;
    char bad[160];
    int rc = -1;
    if (r.nfds != 2)
        snprintf(bad, sizeof bad, "%u descriptors passed (expected 2)", r.nfds);
    else if (remoca_shm_layout_decode(r.body, r.body_len, &l, bad, sizeof bad) == 0 &&
             map_fds(&l, r.fds[0], r.fds[1], map, bad, sizeof bad) == 0)
        rc = 0;
    rc_close_fds(r.fds, r.nfds); /* the mappings keep the memory */
    if (rc < 0) {
        rc_log(c, REMOCA_LOG_WARN, "server %s: shm-map unusable (%s); reading over the socket",
               cn->addr.canon, bad);
        memset(map, 0, sizeof *map);
        return 0;
    }
    rc_log(c, REMOCA_LOG_DEBUG, "server %s: page store mapped (%u pages): one-sided reads",
           cn->addr.canon, l.npages);
    return 0;
}

/* ---- lifetime ---------------------------------------------------------- */

void rc_shm_install(struct conn *cn, struct shm_map *map)
{
    cn->shm = *map;
    memset(map, 0, sizeof *map);
    atomic_store(&cn->shm_view, cn->shm.data ? &cn->shm.view : NULL);
}

void rc_shm_uninstall(struct conn *cn)
{
    atomic_store(&cn->shm_view, NULL);
    /* Readers copy at most one frame (REMOCA_MAX_BATCH pages) each. */
    for (unsigned spins = 0; atomic_load(&cn->shm_readers) > 0; spins++) {
        if (spins < 100)
            sched_yield();
        else
            usleep(50);
    }
    rc_shm_unmap(&cn->shm);
}

/* ---- reads (any thread) ------------------------------------------------ */

bool rc_shm_get(struct conn *cn, const struct frame *f, struct waiter *w)
{
    if (!atomic_load(&cn->shm_view)) return false; /* cheap common case: no mapping */
    atomic_fetch_add(&cn->shm_readers, 1);
    const struct remoca_shm_view *v = atomic_load(&cn->shm_view);
    uint64_t gen = atomic_load(&cn->gen); /* gen before up: see the top comment */
    /* An invalidation of these keys ordered but not answered yet may not
     * have executed: the frame goes over the socket, behind it (client_ops.c). */
    if (!v || !atomic_load(&cn->up) || !rc_inval_clear(cn, f->key, f->count)) {
        atomic_fetch_sub(&cn->shm_readers, 1);
        return false;
    }
    memset(w->bits, 0, sizeof w->bits);
    unsigned nhits = 0;
    for (uint32_t i = 0; i < f->count; i++) {
        uint8_t *dst = w->pages + (size_t)i * REMOCA_PAGE_SIZE;
        bool hit = w->sides ? remoca_shm_read_sealed(v, f->key + i, dst,
                                                     w->sides + (size_t)i * REMOCA_SIDE_SIZE)
                            : remoca_shm_read(v, f->key + i, dst);
        if (hit) {
            w->bits[i / 64] |= 1ull << (i % 64);
            nhits++;
        }
    }
    /* Hits count only if copied inside one UP period of this generation. */
    if (!atomic_load(&cn->up) || atomic_load(&cn->gen) != gen) {
        memset(w->bits, 0, sizeof w->bits);
        nhits = 0;
    }
    atomic_fetch_sub(&cn->shm_readers, 1);
    w->nhits = nhits;
    w->result = 0;
    w->registered = false;
    atomic_store(&w->done, true);
    struct remoca_client *c = cn->client;
    atomic_fetch_add_explicit(&c->one_sided_lookups, f->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->one_sided_hits, nhits, memory_order_relaxed);
    return true;
}
