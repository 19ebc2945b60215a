/* SPDX-License-Identifier: BSD-3-Clause */
/* A fake memory server for the client core's unit tests (header-only,
 * included by the other tests/unit/test_client_*.c; not a test program itself).
 *
 * One thread on a unix socket, one connection at a time.  It executes
 * requests in the order received (as remoca-memd does) against a small page
 * store, but sends the responses OUT OF ORDER: they are queued and flushed in
 * a random permutation when no more input is pending or FAKE_QUEUE are
 * queued.  Knobs, all atomics the test may flip at any time:
 *   drop_key   a GET/TAKE frame covering this key is executed but never answered
 *   half_key   a GET/TAKE frame covering this key is answered half way, then
 *              the server stalls (a response stuck in the middle)
 *   drop_every every Nth GET frame is never answered (0 = never)
 *   stall      stop reading the socket (a hung server: the client's sends
 *              block once the socket buffers fill, and nothing is answered)
 *   close_now  close the current connection (a crashed server)
 *   echo_shift DELETE/DELETE_RANGE answers echo key + echo_shift (a server out
 *              of step with the client; 0 = echo the request's key)
 *
 * With fake_shm_enable (before the client connects), it also keeps a shared
 * page store in the layout of lib/wire/include/remoca/shm.h, as remoca-memd --shm
 * does, and answers SHM_MAP with it (the layout, a read-only data memfd and a
 * read-write touch memfd, by SCM_RIGHTS); without, SHM_MAP gets E_OP, as from
 * a server that does not offer it.  The store has few slots (evictions) and
 * is written with the seqlock rules while clients read it.  shm_refuse
 * answers SHM_MAP with E_STATE.
 *
 * With fake_ring_enable, it answers FILL_RING with a ring (a sealed memfd in
 * the layout of lib/wire/include/remoca/fill_ring.h) and executes its entries where
 * their after_id puts them: before the request with that id, or once idle
 * after the request before it; without, FILL_RING gets E_OP.
 *
 *   client ──req──▶ [execute in order: store] ──resp──▶ queue ──shuffle──▶ client
 */
#ifndef TEST_CLIENT_FAKE_H
#define TEST_CLIENT_FAKE_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remoca/client.h"
#include "remoca/fill_ring.h"
#include "remoca/shm.h"
#include "remoca/wire.h"

#define FAKE_KEYS 65536u
#define FAKE_QUEUE 32u

struct fake_resp {
    struct remoca_hdr h;
    uint8_t *payload;
    bool half;
};

struct fake {
    char path[108];
    int lfd;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool stall;
    atomic_bool close_now;
    _Atomic uint64_t drop_key;
    _Atomic uint64_t half_key;
    atomic_uint drop_every;
    _Atomic uint64_t echo_shift;
    /* observations */
    atomic_uint connections, hellos, resets, gets, puts, deletes, dropped;
    atomic_uint reordered; /* responses sent in another order than received */
    /* store */
    uint8_t *pages;
    uint8_t *present;
    unsigned seed;
    /* shared store (fake_shm_enable) */
    struct fake_shm *shm;
    atomic_bool shm_refuse;
    atomic_uint shm_maps; /* SHM_MAP answered with the mapping */
    /* fill ring (fake_ring_enable), of the current connection */
    bool ring_on;
    uint8_t *ring; /* NULL: none attached */
    uint32_t ring_slots;
    uint64_t ring_tail;
    uint32_t ring_last_id; /* last request executed */
    atomic_uint rings, ring_puts, pings;
};

/* ---- the shared page store (server side of lib/wire/include/remoca/shm.h) ---- */

#define FAKE_SHM_POOL 7u /* the pool handle POOL_OPEN returns doubles as its id */

struct fake_shm {
    struct remoca_shm_layout l;
    int data_fd, touch_fd;
    uint8_t *data;
    struct remoca_shm_slot *slots;
    uint32_t *seqs, *buckets;
    uint8_t *arena;
    uint32_t hand; /* next eviction victim */
    uint32_t nfree;
    uint32_t *free; /* free slot stack */
};

static struct fake_shm *fake_shm_new(uint32_t npages, uint32_t nbuckets)
{
    struct fake_shm *m = calloc(1, sizeof *m);
    struct remoca_shm_layout *l = &m->l;
    l->version = REMOCA_SHM_VERSION;
    l->pool = FAKE_SHM_POOL;
    l->npages = npages;
    l->bmask = nbuckets - 1;
    l->off_slots = 0;
    l->off_seqs = (uint64_t)npages * sizeof(struct remoca_shm_slot);
    l->off_buckets = l->off_seqs + 4ull * npages;
    uint64_t end = l->off_buckets + 4ull * nbuckets;
    l->off_arena = (end + REMOCA_PAGE_SIZE - 1) / REMOCA_PAGE_SIZE * REMOCA_PAGE_SIZE;
    l->data_size = l->off_arena + (uint64_t)npages * REMOCA_PAGE_SIZE;
    l->touch_size = (npages + 4095u) / 4096u * 4096u;
    m->data_fd = memfd_create("fake-shm-data", MFD_CLOEXEC);
    m->touch_fd = memfd_create("fake-shm-touch", MFD_CLOEXEC);
    if (m->data_fd < 0 || m->touch_fd < 0 || ftruncate(m->data_fd, (off_t)l->data_size) < 0 ||
        ftruncate(m->touch_fd, (off_t)l->touch_size) < 0)
        abort();
    m->data = mmap(NULL, l->data_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->data_fd, 0);
    if (m->data == MAP_FAILED) abort();
    m->slots = (struct remoca_shm_slot *)(m->data + l->off_slots);
    m->seqs = (uint32_t *)(m->data + l->off_seqs);
    m->buckets = (uint32_t *)(m->data + l->off_buckets);
    m->arena = m->data + l->off_arena;
    for (uint32_t b = 0; b < nbuckets; b++) m->buckets[b] = REMOCA_SHM_NIL;
    m->free = malloc(npages * sizeof *m->free);
    for (uint32_t i = 0; i < npages; i++) m->free[m->nfree++] = npages - 1 - i;
    return m;
}

static void fake_shm_free(struct fake_shm *m)
{
    if (!m) return;
    munmap(m->data, m->l.data_size);
    close(m->data_fd);
    close(m->touch_fd);
    free(m->free);
    free(m);
}

static uint32_t *fake_shm_bucket(struct fake_shm *m, uint64_t key)
{
    return &m->buckets[remoca_shm_hash(FAKE_SHM_POOL, key) & m->l.bmask];
}

static uint32_t fake_shm_find(struct fake_shm *m, uint64_t key)
{
    for (uint32_t i = *fake_shm_bucket(m, key); i != REMOCA_SHM_NIL; i = m->slots[i].hnext)
        if (m->slots[i].key == key && m->slots[i].pool == FAKE_SHM_POOL) return i;
    return REMOCA_SHM_NIL;
}

/* Unlinks slot i (in use) from its chain and frees it. */
static void fake_shm_remove(struct fake_shm *m, uint32_t i)
{
    uint32_t *p = fake_shm_bucket(m, m->slots[i].key);
    while (*p != i) p = &m->slots[*p].hnext;
    remoca_shm_seq_begin(m->seqs, i);
    __atomic_store_n(&m->slots[i].pool, 0, __ATOMIC_RELAXED);
    remoca_shm_seq_end(m->seqs, i);
    __atomic_store_n(p, m->slots[i].hnext, __ATOMIC_RELEASE);
    m->free[m->nfree++] = i;
}

static void fake_shm_put(struct fake_shm *m, uint64_t key, const uint8_t *page)
{
    uint32_t i = fake_shm_find(m, key);
    if (i == REMOCA_SHM_NIL) {
        if (m->nfree == 0) { /* evict the slot under the hand */
            while (m->slots[m->hand].pool == 0) m->hand = (m->hand + 1) % m->l.npages;
            fake_shm_remove(m, m->hand);
            m->hand = (m->hand + 1) % m->l.npages;
        }
        i = m->free[--m->nfree];
        uint32_t *b = fake_shm_bucket(m, key);
        remoca_shm_seq_begin(m->seqs, i);
        __atomic_store_n(&m->slots[i].key, key, __ATOMIC_RELAXED);
        __atomic_store_n(&m->slots[i].pool, FAKE_SHM_POOL, __ATOMIC_RELAXED);
        __atomic_store_n(&m->slots[i].hnext, *b, __ATOMIC_RELAXED);
        memcpy(m->arena + (size_t)i * REMOCA_PAGE_SIZE, page, REMOCA_PAGE_SIZE);
        remoca_shm_seq_end(m->seqs, i);
        __atomic_store_n(b, i, __ATOMIC_RELEASE);
        return;
    }
    remoca_shm_seq_begin(m->seqs, i);
    memcpy(m->arena + (size_t)i * REMOCA_PAGE_SIZE, page, REMOCA_PAGE_SIZE);
    remoca_shm_seq_end(m->seqs, i);
}

static void fake_shm_delete(struct fake_shm *m, uint64_t key)
{
    uint32_t i = fake_shm_find(m, key);
    if (i != REMOCA_SHM_NIL) fake_shm_remove(m, i);
}

static void fake_shm_reset(struct fake_shm *m)
{
    for (uint32_t i = 0; i < m->l.npages; i++)
        if (m->slots[i].pool) fake_shm_remove(m, i);
}

/* Sends buf with n descriptors attached (SCM_RIGHTS). */
static bool fake_send_fds(int fd, const void *buf, size_t len, const int *fds, unsigned n)
{
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.b,
                        .msg_controllen = CMSG_SPACE(n * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Answers SHM_MAP: the layout, then the data memfd reopened read-only (so
 * the client cannot map it writable) and the touch memfd. */
static bool fake_shm_answer(struct fake_shm *m, int fd, const struct remoca_hdr *req)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", m->data_fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    if (ro < 0) abort();
    uint8_t buf[REMOCA_HDR_SIZE + REMOCA_SHM_LAYOUT_SIZE];
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_RESP,
                           .version = REMOCA_VERSION,
                           .op = REMOCA_OP_SHM_MAP,
                           .id = req->id,
                           .pool = req->pool,
                           .len = REMOCA_SHM_LAYOUT_SIZE};
    remoca_hdr_encode(buf, &h);
    remoca_shm_layout_encode(buf + REMOCA_HDR_SIZE, &m->l);
    int fds[2] = {ro, m->touch_fd};
    bool ok = fake_send_fds(fd, buf, sizeof buf, fds, 2);
    close(ro);
    return ok;
}

static bool fake_read_full(int fd, void *p, size_t n)
{
    uint8_t *d = p;
    while (n) {
        ssize_t r = read(fd, d, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        d += r;
        n -= (size_t)r;
    }
    return true;
}

static bool fake_write_full(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n) {
        ssize_t r = send(fd, s, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        s += r;
        n -= (size_t)r;
    }
    return true;
}

static bool fake_flush(struct fake *f, int fd, struct fake_resp *q, unsigned *nq)
{
    /* Fisher-Yates shuffle, then send. */
    for (unsigned i = *nq; i > 1; i--) {
        unsigned j = (unsigned)rand_r(&f->seed) % i;
        struct fake_resp t = q[i - 1];
        q[i - 1] = q[j];
        q[j] = t;
    }
    for (unsigned i = 1; i < *nq; i++)
        if (q[i].h.id < q[i - 1].h.id) atomic_fetch_add(&f->reordered, 1);
    bool ok = true, stuck = false;
    for (unsigned i = 0; i < *nq; i++) {
        uint8_t hb[REMOCA_HDR_SIZE];
        remoca_hdr_encode(hb, &q[i].h);
        if (ok && !stuck) ok = fake_write_full(fd, hb, sizeof hb);
        if (ok && !stuck && q[i].half) {
            fake_write_full(fd, q[i].payload, q[i].h.len / 2);
            atomic_store(&f->stall, true);
            stuck = true; /* nothing more is written on this connection */
        }
        if (ok && !stuck && q[i].h.len) ok = fake_write_full(fd, q[i].payload, q[i].h.len);
        free(q[i].payload);
    }
    *nq = 0;
    return ok;
}

static void fake_put_page(struct fake *f, uint64_t k, const uint8_t *page)
{
    if (k >= FAKE_KEYS) return;
    memcpy(f->pages + k * REMOCA_PAGE_SIZE, page, REMOCA_PAGE_SIZE);
    f->present[k] = 1;
    if (f->shm) fake_shm_put(f->shm, k, page);
}

/* ---- the fill ring (server side of lib/wire/include/remoca/fill_ring.h) ---- */

static void fake_ring_drop(struct fake *f)
{
    if (f->ring) munmap(f->ring, remoca_ring_size(f->ring_slots));
    f->ring = NULL;
}

/* Answers FILL_RING with a fresh sealed ring (synchronous: nothing queued). */
static bool fake_ring_answer(struct fake *f, int fd, const struct remoca_hdr *req)
{
    f->ring_slots = req->count ? req->count : REMOCA_RING_DEFAULT_SLOTS;
    uint64_t size = remoca_ring_size(f->ring_slots);
    int rfd = memfd_create("fake-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (rfd < 0 || ftruncate(rfd, (off_t)size) < 0 ||
        fcntl(rfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        abort();
    f->ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
    if (f->ring == MAP_FAILED) abort();
    f->ring_tail = 0;
    f->ring_last_id = req->id;
    uint8_t buf[REMOCA_HDR_SIZE + REMOCA_RING_REPLY_SIZE];
    struct remoca_hdr h = {.magic = REMOCA_MAGIC_RESP,
                           .version = REMOCA_VERSION,
                           .op = REMOCA_OP_FILL_RING,
                           .id = req->id,
                           .pool = req->pool,
                           .len = REMOCA_RING_REPLY_SIZE};
    remoca_hdr_encode(buf, &h);
    struct remoca_ring_reply rr = {REMOCA_RING_VERSION, f->ring_slots, size};
    remoca_ring_reply_encode(buf + REMOCA_HDR_SIZE, &rr);
    atomic_fetch_add(&f->rings, 1);
    bool ok = fake_send_fds(fd, buf, sizeof buf, &rfd, 1);
    close(rfd);
    return ok;
}

/* Executes the entries ordered at or before request id `upto`. */
static void fake_ring_drain(struct fake *f, uint32_t upto)
{
    if (!f->ring) return;
    uint64_t head = __atomic_load_n((uint64_t *)(f->ring + REMOCA_RING_OFF_HEAD), __ATOMIC_ACQUIRE);
    if (head - f->ring_tail > f->ring_slots) abort(); /* the client broke the ring */
    const uint8_t *pages = f->ring + remoca_ring_off_pages(f->ring_slots);
    while (f->ring_tail < head) {
        uint32_t idx = (uint32_t)(f->ring_tail & (f->ring_slots - 1));
        struct remoca_ring_entry e;
        remoca_ring_entry_read(f->ring, idx, &e);
        if (!remoca_id_at_or_before(e.after_id, upto)) break;
        if (e.handle != FAKE_SHM_POOL) abort();
        fake_put_page(f, e.key, pages + (size_t)idx * REMOCA_PAGE_SIZE);
        atomic_fetch_add(&f->ring_puts, 1);
        f->ring_tail++;
    }
    __atomic_store_n((uint64_t *)(f->ring + REMOCA_RING_OFF_TAIL), f->ring_tail, __ATOMIC_RELEASE);
}

static bool fake_input_pending(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Executes one request; returns false when the connection must close. */
static bool fake_handle(struct fake *f, int fd, const struct remoca_hdr *h, uint8_t *body,
                        struct fake_resp *q, unsigned *nq)
{
    struct fake_resp r = {.h = {.magic = REMOCA_MAGIC_RESP,
                                .version = REMOCA_VERSION,
                                .op = h->op,
                                .id = h->id,
                                .pool = h->pool,
                                .key = h->key,
                                .count = h->count}};
    bool answer = true;
    switch (h->op) {
    case REMOCA_OP_HELLO: atomic_fetch_add(&f->hellos, 1); break;
    case REMOCA_OP_POOL_OPEN: r.h.pool = 7; break;
    case REMOCA_OP_POOL_RESET:
        atomic_fetch_add(&f->resets, 1);
        memset(f->present, 0, FAKE_KEYS);
        if (f->shm) fake_shm_reset(f->shm);
        break;
    case REMOCA_OP_SHM_MAP:
        if (!f->shm || atomic_load(&f->shm_refuse)) {
            r.h.flags = f->shm ? REMOCA_E_STATE : REMOCA_E_OP;
            break;
        }
        /* Synchronous (handshake): nothing else is queued. */
        atomic_fetch_add(&f->shm_maps, 1); /* before the client can see it */
        return fake_flush(f, fd, q, nq) && fake_shm_answer(f->shm, fd, h);
    case REMOCA_OP_FILL_RING:
        if (!f->ring_on) {
            r.h.flags = REMOCA_E_OP;
            break;
        }
        return fake_flush(f, fd, q, nq) && fake_ring_answer(f, fd, h);
    case REMOCA_OP_PING: atomic_fetch_add(&f->pings, 1); break;
    case REMOCA_OP_GET:
    case REMOCA_OP_TAKE: {
        atomic_fetch_add(&f->gets, 1);
        uint32_t bm = remoca_bitmap_bytes(h->count);
        r.payload = calloc(1, bm + (size_t)h->count * REMOCA_PAGE_SIZE);
        uint32_t hits = 0;
        for (uint32_t i = 0; i < h->count; i++) {
            uint64_t k = h->key + i;
            if (k < FAKE_KEYS && f->present[k]) {
                r.payload[i / 8] |= (uint8_t)(1u << (i % 8));
                memcpy(r.payload + bm + (size_t)hits * REMOCA_PAGE_SIZE,
                       f->pages + k * REMOCA_PAGE_SIZE, REMOCA_PAGE_SIZE);
                hits++;
                if (h->op == REMOCA_OP_TAKE) {
                    f->present[k] = 0;
                    if (f->shm) fake_shm_delete(f->shm, k);
                }
            }
        }
        r.h.len = bm + hits * REMOCA_PAGE_SIZE;
        uint64_t hk = atomic_load(&f->half_key);
        if (hk >= h->key && hk - h->key < h->count && r.h.len > 0) r.half = true;
        uint64_t dk = atomic_load(&f->drop_key);
        unsigned every = atomic_load(&f->drop_every);
        if ((dk >= h->key && dk - h->key < h->count) ||
            (every && atomic_load(&f->gets) % every == 0))
            answer = false;
        break;
    }
    case REMOCA_OP_PUT:
        atomic_fetch_add(&f->puts, 1);
        for (uint32_t i = 0; i < h->count; i++)
            fake_put_page(f, h->key + i, body + (size_t)i * REMOCA_PAGE_SIZE);
        break;
    case REMOCA_OP_DELETE:
    case REMOCA_OP_DELETE_RANGE:
        atomic_fetch_add(&f->deletes, 1);
        r.h.key += atomic_load(&f->echo_shift);
        for (uint64_t i = 0; i < h->count; i++) {
            if (h->key + i >= FAKE_KEYS) continue;
            f->present[h->key + i] = 0;
            if (f->shm) fake_shm_delete(f->shm, h->key + i);
        }
        break;
    case REMOCA_OP_STATS: {
        const char *t = h->flags & REMOCA_F_JSON ? "{\"fake\":1}" : "fake 1\n";
        r.h.len = (uint32_t)strlen(t);
        r.payload = (uint8_t *)strdup(t);
        break;
    }
    default: r.h.flags = REMOCA_E_OP; break;
    }
    if (!answer) {
        atomic_fetch_add(&f->dropped, 1);
        free(r.payload);
        return true;
    }
    q[(*nq)++] = r;
    return true;
}

static void fake_serve(struct fake *f, int fd)
{
    struct fake_resp q[FAKE_QUEUE];
    unsigned nq = 0;
    uint8_t *body = malloc(REMOCA_MAX_REQ_PAYLOAD);
    for (;;) {
        while (atomic_load(&f->stall) && !atomic_load(&f->stop)) usleep(2000);
        if (atomic_load(&f->stop) || atomic_exchange(&f->close_now, false)) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) == 0) continue;
        uint8_t hb[REMOCA_HDR_SIZE];
        struct remoca_hdr h;
        if (!fake_read_full(fd, hb, sizeof hb)) break;
        remoca_hdr_decode(hb, &h);
        if (remoca_req_check(&h) != REMOCA_OK) break;
        if (h.len && !fake_read_full(fd, body, h.len)) break;
        fake_ring_drain(f, h.id); /* entries ordered before this request */
        if (!fake_handle(f, fd, &h, body, q, &nq)) break;
        if (h.op != REMOCA_OP_FILL_RING) f->ring_last_id = h.id;
        if (!fake_input_pending(fd)) fake_ring_drain(f, f->ring_last_id + 1);
        if ((nq == FAKE_QUEUE || !fake_input_pending(fd)) && !fake_flush(f, fd, q, &nq)) break;
    }
    fake_flush(f, -1, q, &nq); /* frees */
    fake_ring_drop(f);
    free(body);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) continue;
        atomic_fetch_add(&f->connections, 1);
        fake_serve(f, fd);
        close(fd);
    }
    return NULL;
}

/* Binds the socket (path in a fresh temp dir unless given) and starts. */
static struct fake *fake_start(const char *path)
{
    struct fake *f = calloc(1, sizeof *f);
    f->pages = malloc((size_t)FAKE_KEYS * REMOCA_PAGE_SIZE);
    f->present = calloc(1, FAKE_KEYS);
    f->seed = 12345;
    atomic_store(&f->drop_key, UINT64_MAX);
    atomic_store(&f->half_key, UINT64_MAX);
    if (path) {
        snprintf(f->path, sizeof f->path, "%s", path);
    } else {
        char dir[] = "/tmp/remoca-fake-XXXXXX";
        if (!mkdtemp(dir)) abort();
        snprintf(f->path, sizeof f->path, "%s/memd.sock", dir);
    }
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", f->path);
    unlink(f->path);
    if (bind(f->lfd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(f->lfd, 8) < 0) {
        perror("fake_memd: bind");
        abort();
    }
    pthread_create(&f->thread, NULL, fake_main, f);
    return f;
}

/* Stops the server; keep_path leaves the directory for a restart. */
static void fake_stop(struct fake *f, bool remove_dir)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    unlink(f->path);
    if (remove_dir) {
        char dir[108];
        snprintf(dir, sizeof dir, "%s", f->path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        rmdir(dir);
    }
    free(f->pages);
    free(f->present);
    fake_shm_free(f->shm);
    free(f);
}

/* Makes the fake answer FILL_RING (before clients connect). */
__attribute__((unused)) static void fake_ring_enable(struct fake *f) { f->ring_on = true; }

/* Gives the fake a shared store of npages slots (before clients connect). */
__attribute__((unused)) static void fake_shm_enable(struct fake *f, uint32_t npages)
{
    f->shm = fake_shm_new(npages, 256);
}

/* ---- helpers for the tests that include this ---- */

/* Page contents that say which key and which version they hold. */
__attribute__((unused)) static void fill(uint8_t *p, uint64_t key, uint32_t version)
{
    uint64_t *w = (uint64_t *)p;
    for (unsigned i = 0; i < REMOCA_PAGE_SIZE / 8; i++)
        w[i] = (key * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)version << 40) ^ i;
}

__attribute__((unused)) static bool check(const uint8_t *p, uint64_t key, uint32_t version)
{
    const uint64_t *w = (const uint64_t *)p;
    for (unsigned i = 0; i < REMOCA_PAGE_SIZE / 8; i++)
        if (w[i] != ((key * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)version << 40) ^ i)) return false;
    return true;
}

__attribute__((unused)) static struct remoca_client_stats stats(struct remoca_client *c)
{
    struct remoca_client_stats st;
    remoca_client_get_stats(c, &st);
    return st;
}

/* A thread that clears the fake's stall after ms (pthread_create it with
 * unstall_later and a struct unstall that outlives it). */
struct unstall {
    struct fake *f;
    unsigned ms;
};

__attribute__((unused)) static void *unstall_later(void *arg)
{
    struct unstall *u = arg;
    usleep(u->ms * 1000);
    atomic_store(&u->f->stall, false);
    return NULL;
}

/* Polls cond every 5 ms for up to ms; its last answer. */
__attribute__((unused)) static bool wait_until(bool (*cond)(void *), void *arg, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 5) {
        if (cond(arg)) return true;
        usleep(5000);
    }
    return cond(arg);
}

/* Mappings in this process of memfds named `name` (the fake's own, plus one
 * per client connection that has it mapped). */
__attribute__((unused)) static unsigned memfd_mappings(const char *name)
{
    char want[80];
    snprintf(want, sizeof want, "memfd:%s", name);
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned n = 0;
    while (m && fgets(line, sizeof line, m))
        if (strstr(line, want)) n++;
    if (m) fclose(m);
    return n;
}

#endif
