/* SPDX-License-Identifier: BSD-3-Clause */
/* shm_client: a raw-socket client of remoca-memd's SHM_MAP for
 * tests/integration/test_memd_shm.sh.
 *
 *   shm_client unix:PATH map        against `remoca-memd --shm --unix PATH`:
 *       HELLO, POOL_OPEN, PUT pages, SHM_MAP (recvmsg: exactly 2 fds, with
 *       the response's first byte); the data fd is read-only (a writable
 *       shared mapping fails, also after a reopen through /proc), the touch fd
 *       writable; remoca_shm_read returns the bytes put, sees an overwrite,
 *       misses after a DELETE and after POOL_RESET, sets the touch byte, and
 *       a second pool's mapping sees only that pool's pages
 *   shm_client ADDR refuse TEXT     SHM_MAP after HELLO and POOL_OPEN must get
 *       E_STATE with TEXT in its message, and no fds
 *
 * ADDR is unix:PATH or HOST:PORT.  Exit 0 if every expectation held,
 * otherwise the first failure is printed and the exit status is 1.  Every
 * wait is bounded (10 s). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raw_wire.h"
#include "remoca/shm.h"
#include "remoca/wire.h"

#define PAGE REMOCA_PAGE_SIZE

static struct raw_resp r; /* the last response */

/* The next response must answer id with status st; only an OK to SHM_MAP may
 * carry fds. */
static void expect(int fd, uint32_t id, uint16_t st, const char *what)
{
    raw_expect(fd, &r, id, st, what, REMOCA_OP_SHM_MAP);
}

static void hello(int fd)
{
    uint8_t b[600];
    struct remoca_hello hb = {.name = "shm_client", .name_len = 10};
    send_req(fd, REMOCA_OP_HELLO, 1, 0, 0, 0, b, (uint32_t)remoca_hello_encode(b, sizeof b, &hb),
             0);
    expect(fd, 1, REMOCA_OK, "HELLO");
}

static uint32_t pool_open(int fd, const char *name)
{
    uint8_t b[600];
    struct remoca_pool_open pb = {.name = name, .name_len = strlen(name)};
    send_req(fd, REMOCA_OP_POOL_OPEN, 2, 0, 0, 0, b,
             (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb), 0);
    expect(fd, 2, REMOCA_OK, "POOL_OPEN");
    return r.h.pool;
}

static void fill(uint8_t *p, char tag, uint64_t key, int version)
{
    for (size_t i = 0; i < PAGE; i++) p[i] = (uint8_t)(tag + key * 7 + version * 13 + i % 251);
}

static void put(int fd, uint32_t h, char tag, uint64_t key, int version)
{
    static uint8_t page[PAGE];
    fill(page, tag, key, version);
    send_req(fd, REMOCA_OP_PUT, 10, h, key, 1, page, PAGE, 0);
    expect(fd, 10, REMOCA_OK, "PUT");
}

struct mapping {
    struct remoca_shm_view v;
    void *data, *touch;
};

/* SHM_MAP for handle h: the response's checks, the fds' checks, the mapping. */
static void shm_map(int fd, uint32_t h, struct mapping *mp)
{
    send_req(fd, REMOCA_OP_SHM_MAP, 20, h, 0, 0, NULL, 0, 0);
    expect(fd, 20, REMOCA_OK, "SHM_MAP");
    if (r.h.pool != h) die("SHM_MAP answered for handle %u, asked %u", r.h.pool, h);
    if (remoca_resp_check(&r.h, REMOCA_OP_SHM_MAP, 0) != REMOCA_OK) die("SHM_MAP response size");
    if (r.nfds != 2) die("SHM_MAP: %d fds, expected 2", r.nfds);
    struct remoca_shm_layout l;
    char why[160];
    if (remoca_shm_layout_decode(r.payload, r.h.len, &l, why, sizeof why) < 0) die("%s", why);
    int dfd = r.fds[0], tfd = r.fds[1];
    if ((fcntl(dfd, F_GETFL) & O_ACCMODE) != O_RDONLY) die("the data fd is not read-only");
    if ((fcntl(tfd, F_GETFL) & O_ACCMODE) != O_RDWR) die("the touch fd is not read-write");
    if (mmap(NULL, l.data_size, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0) != MAP_FAILED)
        die("the data fd can be mapped writable");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", dfd);
    int rw = open(path, O_RDWR);
    if (rw >= 0) {
        if (mmap(NULL, l.data_size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) != MAP_FAILED)
            die("the data memfd, reopened read-write through /proc, can be mapped writable");
        if (pwrite(rw, "x", 1, 0) != -1) die("the reopened data memfd can be written");
        if (ftruncate(rw, 0) != -1) die("the reopened data memfd can be truncated");
        close(rw);
    }
    mp->data = mmap(NULL, l.data_size, PROT_READ, MAP_SHARED, dfd, 0);
    mp->touch = mmap(NULL, l.touch_size, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
    if (mp->data == MAP_FAILED || mp->touch == MAP_FAILED) die("mmap: %s", strerror(errno));
    close(dfd); /* the mappings keep the memory */
    close(tfd);
    remoca_shm_view_init(&mp->v, &l, mp->data, mp->touch);
}

/* Reads key one-sided: 1 with the expected bytes, 0 on a miss. */
static int shm_get(const struct mapping *mp, char tag, uint64_t key, int version)
{
    static uint8_t got[PAGE], want[PAGE];
    if (!remoca_shm_read(&mp->v, key, got)) return 0;
    fill(want, tag, key, version);
    if (memcmp(got, want, PAGE))
        die("key %llu: wrong bytes through the mapping", (unsigned long long)key);
    return 1;
}

static void run_map(const char *addr)
{
    int fd = raw_dial(addr);
    hello(fd);
    uint32_t ha = pool_open(fd, "shm/a");
    for (uint64_t k = 0; k < 8; k++) put(fd, ha, 'a', k, 1);
    struct mapping ma;
    shm_map(fd, ha, &ma);
    for (uint64_t k = 0; k < 8; k++)
        if (!shm_get(&ma, 'a', k, 1))
            die("key %llu: missed through the mapping", (unsigned long long)k);
    if (shm_get(&ma, 'a', 8, 1)) die("key 8 was never put, yet read");
    uint32_t touched = 0;
    for (uint32_t i = 0; i < ma.v.l.npages; i++) touched += ((uint8_t *)ma.touch)[i];
    if (touched != 8) die("%u pages touched after 8 one-sided hits", touched);

    /* Writes still go over the socket; once answered, the mapping shows them. */
    put(fd, ha, 'a', 3, 2);
    if (!shm_get(&ma, 'a', 3, 2)) die("overwritten key 3 missed");
    send_req(fd, REMOCA_OP_DELETE, 11, ha, 2, 1, NULL, 0, 0);
    expect(fd, 11, REMOCA_OK, "DELETE");
    if (shm_get(&ma, 'a', 2, 1)) die("deleted key 2 still read through the mapping");
    if (!shm_get(&ma, 'a', 1, 1)) die("key 1 missed after deleting key 2");

    /* A second pool: its own id in the layout; each view sees its own pool. */
    uint32_t hb = pool_open(fd, "shm/b");
    put(fd, hb, 'b', 0, 1);
    struct mapping mb;
    shm_map(fd, hb, &mb);
    if (mb.v.l.pool == ma.v.l.pool) die("two pools, one pool id %u", ma.v.l.pool);
    if (!shm_get(&mb, 'b', 0, 1) || !shm_get(&ma, 'a', 0, 1)) die("key 0 of a pool missed");
    if (shm_get(&mb, 'b', 1, 1)) die("pool b read a page it never had");

    send_req(fd, REMOCA_OP_POOL_RESET, 12, ha, 0, 0, NULL, 0, 0);
    expect(fd, 12, REMOCA_OK, "POOL_RESET");
    for (uint64_t k = 0; k < 8; k++)
        if (shm_get(&ma, 'a', k, 1) || shm_get(&ma, 'a', k, 2)) die("read after POOL_RESET");
    if (!shm_get(&mb, 'b', 0, 1)) die("pool b lost its page to pool a's reset");
    close(fd);
    printf("map: ok (pools %u and %u, %u pages, %llu bytes mapped)\n", ma.v.l.pool, mb.v.l.pool,
           ma.v.l.npages, (unsigned long long)ma.v.l.data_size);
}

static void run_refuse(const char *addr, const char *text)
{
    int fd = raw_dial(addr);
    hello(fd);
    uint32_t h = pool_open(fd, "shm/a");
    send_req(fd, REMOCA_OP_SHM_MAP, 20, h, 0, 0, NULL, 0, 0);
    expect(fd, 20, REMOCA_E_STATE, "SHM_MAP");
    if (!strstr((char *)r.payload, text)) die("message '%s' lacks '%s'", r.payload, text);
    printf("refused: %s\n", (char *)r.payload);
    send_req(fd, REMOCA_OP_PING, 21, 0, 0, 0, NULL, 0, 0); /* the connection goes on */
    expect(fd, 21, REMOCA_OK, "PING");
    close(fd);
}

int main(int argc, char **argv)
{
    raw_prog = "shm_client";
    if (argc == 3 && !strcmp(argv[2], "map"))
        run_map(argv[1]);
    else if (argc == 4 && !strcmp(argv[2], "refuse"))
        run_refuse(argv[1], argv[3]);
    else
        die("usage: shm_client unix:PATH map | shm_client ADDR refuse TEXT");
    return 0;
}
