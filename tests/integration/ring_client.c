/* SPDX-License-Identifier: BSD-3-Clause */
/* ring_client: a raw-socket client of remoca-memd's fill ring (FILL_RING,
 * lib/wire/include/remoca/fill_ring.h) for tests/integration/test_memd_ring.sh.
 *
 *   ring_client unix:PATH ring      HELLO, two POOL_OPENs, then:
 *       - FILL_RING behind a PING in the same write: E_STATE "alone";
 *         a slot count that is not a power of two: E_RANGE;
 *       - FILL_RING (16 slots): exactly 1 fd with the response's first byte,
 *         the reply decodes, the memfd's size is the reply's, it is sealed
 *         against shrinking and growing (ftruncate either way fails);
 *         a second FILL_RING: E_STATE "already attached", no fd;
 *       - 3 rounds of 12 entries (wrapping the 16 slots) + pages, after_id =
 *         the next request's id: the next request, a GET, hits every key
 *         with exactly those bytes, and tail == head afterwards;
 *       - order: an entry placed before a DELETE of its key is gone after
 *         the DELETE; an entry placed after a DELETE that was sent *later*
 *         (the entry is in the ring first) survives it;
 *       - an entry whose after_id is further ahead is not executed by the
 *         next request (GET misses, tail stays) but is by the request with
 *         that id; one for the request after the last one is executed
 *         right after the last one (before its response);
 *       - an entry for a handle not open: skipped, the server's errors grow
 *         by 1, the entry after it is executed, the connection goes on;
 *         the stats show fill_rings=1 while the ring is attached;
 *       - a default ring (count 0) on a second connection: 256 slots, size;
 *     prints "ring: ok ring_puts=N" with N the entries the server executed.
 *   ring_client unix:PATH badhead   a head more than nslots ahead of the
 *       tail: the connection is closed without a response; a new connection
 *       is served.
 *   ring_client ADDR refuse STATUS TEXT [COUNT]   FILL_RING (count COUNT,
 *       default 0) after HELLO: STATUS (E_STATE or E_LIMIT) with TEXT in the
 *       message and no fd; the connection goes on (PING).
 *
 * Exit 0 if every expectation held, otherwise the first failure is printed
 * and the exit status is 1.  Every wait is bounded (10 s). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raw_wire.h"
#include "remoca/fill_ring.h"
#include "remoca/wire.h"

#define PAGE REMOCA_PAGE_SIZE

static struct raw_resp r; /* the last response */

/* The next response must answer id with status st; only an OK to FILL_RING may
 * carry fds. */
static void expect(int fd, uint32_t id, uint16_t st, const char *what)
{
    raw_expect(fd, &r, id, st, what, REMOCA_OP_FILL_RING);
}

static uint32_t next_id = 1; /* the id of the next request: after_id of new entries */

static void hello(int fd)
{
    uint8_t b[600];
    struct remoca_hello hb = {.name = "ring_client", .name_len = 11};
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_HELLO, id, 0, 0, 0, b, (uint32_t)remoca_hello_encode(b, sizeof b, &hb),
             0);
    expect(fd, id, REMOCA_OK, "HELLO");
}

static uint32_t pool_open(int fd, const char *name)
{
    uint8_t b[600];
    struct remoca_pool_open pb = {.name = name, .name_len = strlen(name)};
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_POOL_OPEN, id, 0, 0, 0, b,
             (uint32_t)remoca_pool_open_encode(b, sizeof b, &pb), 0);
    expect(fd, id, REMOCA_OK, "POOL_OPEN");
    return r.h.pool;
}

static void ping(int fd)
{
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_PING, id, 0, 0, 0, NULL, 0, 0);
    expect(fd, id, REMOCA_OK, "PING");
}

static void fill(uint8_t *p, uint64_t key, int version)
{
    for (size_t i = 0; i < PAGE; i++) p[i] = (uint8_t)(key * 7 + version * 13 + i % 251);
}

/* GET of count keys from key: 1 for each expected hit with the bytes of
 * `version`, 0 for an expected miss. */
static void get_expect(int fd, uint32_t h, uint64_t key, uint32_t count, const int *want,
                       int version, const char *what)
{
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_GET, id, h, key, count, NULL, 0, 0);
    expect(fd, id, REMOCA_OK, what);
    uint32_t bm = remoca_bitmap_bytes(count), hit = 0;
    static uint8_t page[PAGE];
    for (uint32_t n = 0; n < count; n++) {
        int got = (r.payload[n / 8] >> (n % 8)) & 1;
        if (got != want[n])
            die("%s: key %llu %s, expected a %s", what, (unsigned long long)(key + n),
                got ? "hit" : "missed", want[n] ? "hit" : "miss");
        if (!got) continue;
        fill(page, key + n, version);
        if (memcmp(r.payload + bm + (size_t)hit * PAGE, page, PAGE))
            die("%s: key %llu: wrong bytes", what, (unsigned long long)(key + n));
        hit++;
    }
}

/* The server line's value of `name` in a STATS response. */
static uint64_t server_stat(int fd, const char *name)
{
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_STATS, id, 0, 0, 0, NULL, 0, 0);
    expect(fd, id, REMOCA_OK, "STATS");
    char *nl = strchr((char *)r.payload, '\n');
    if (nl) *nl = 0;
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", name);
    const char *p = strstr((char *)r.payload, pat);
    if (!p) die("STATS: no %s in '%s'", name, (char *)r.payload);
    return strtoull(p + strlen(pat), NULL, 10);
}

struct ring {
    uint8_t *base;
    uint32_t nslots;
    uint64_t size;
    uint64_t head;
};

static uint64_t ring_tail(const struct ring *g)
{
    return __atomic_load_n((uint64_t *)(g->base + REMOCA_RING_OFF_TAIL), __ATOMIC_ACQUIRE);
}

static void ring_publish(struct ring *g)
{
    __atomic_store_n((uint64_t *)(g->base + REMOCA_RING_OFF_HEAD), g->head, __ATOMIC_RELEASE);
}

/* Writes entry `head` and its page (not yet published). */
static void ring_put(struct ring *g, uint32_t handle, uint64_t key, uint32_t after_id, int version)
{
    if (g->head - ring_tail(g) >= g->nslots) die("ring full (test bug)");
    uint32_t idx = (uint32_t)g->head & (g->nslots - 1);
    struct remoca_ring_entry e = {.key = key, .handle = handle, .after_id = after_id};
    remoca_ring_entry_write(g->base, idx, &e);
    fill(g->base + remoca_ring_off_pages(g->nslots) + (size_t)idx * PAGE, key, version);
    g->head++;
}

/* FILL_RING with count: the response's and the memfd's checks, the mapping. */
static void fill_ring(int fd, uint32_t count, struct ring *g)
{
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_FILL_RING, id, 0, 0, count, NULL, 0, 0);
    expect(fd, id, REMOCA_OK, "FILL_RING");
    if (remoca_resp_check(&r.h, REMOCA_OP_FILL_RING, 0) != REMOCA_OK)
        die("FILL_RING response size %u", r.h.len);
    if (r.nfds != 1) die("FILL_RING: %d fds, expected 1", r.nfds);
    struct remoca_ring_reply rr;
    char why[160];
    if (remoca_ring_reply_decode(r.payload, r.h.len, &rr, why, sizeof why) < 0) die("%s", why);
    uint32_t want = count ? count : REMOCA_RING_DEFAULT_SLOTS;
    if (rr.nslots != want) die("FILL_RING: %u slots, asked %u", rr.nslots, want);
    int rfd = r.fds[0];
    struct stat st;
    if (fstat(rfd, &st) < 0 || (uint64_t)st.st_size != rr.size)
        die("the ring memfd is %lld bytes, the reply says %llu", (long long)st.st_size,
            (unsigned long long)rr.size);
    if ((fcntl(rfd, F_GETFL) & O_ACCMODE) != O_RDWR) die("the ring fd is not read-write");
    int seals = fcntl(rfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW) || !(seals & F_SEAL_SEAL))
        die("the ring memfd's seals are 0x%x, expected SHRINK|GROW|SEAL", seals);
    if (ftruncate(rfd, (off_t)rr.size - PAGE) != -1) die("the ring memfd can be shrunk");
    if (ftruncate(rfd, (off_t)rr.size + PAGE) != -1) die("the ring memfd can be grown");
    g->base = mmap(NULL, rr.size, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
    if (g->base == MAP_FAILED) die("mmap of the ring: %s", strerror(errno));
    close(rfd); /* the mapping keeps it */
    g->nslots = rr.nslots;
    g->size = rr.size;
    g->head = 0;
    if (ring_tail(g) != 0 || __atomic_load_n((uint64_t *)g->base, __ATOMIC_ACQUIRE) != 0)
        die("a new ring with head or tail not 0");
}

static void run_ring(const char *addr)
{
    int fd = raw_dial(addr);
    hello(fd);
    uint32_t ha = pool_open(fd, "ring/a"), hb = pool_open(fd, "ring/b");
    uint64_t executed = 0; /* entries with an open handle: the server must execute them */

    /* Refusals first: behind another response, and a bad slot count. */
    uint8_t two[2 * REMOCA_HDR_SIZE];
    struct remoca_hdr q = {.magic = REMOCA_MAGIC_REQ,
                           .version = REMOCA_VERSION,
                           .op = REMOCA_OP_PING,
                           .id = next_id++};
    remoca_hdr_encode(two, &q);
    q.op = REMOCA_OP_FILL_RING;
    q.id = next_id++;
    remoca_hdr_encode(two + REMOCA_HDR_SIZE, &q);
    send_all(fd, two, sizeof two); /* one write: both arrive together */
    expect(fd, q.id - 1, REMOCA_OK, "PING");
    expect(fd, q.id, REMOCA_E_STATE, "FILL_RING behind a PING");
    if (!strstr((char *)r.payload, "alone")) die("FILL_RING behind a PING: '%s'", r.payload);
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_FILL_RING, id, 0, 0, 17, NULL, 0, 0);
    expect(fd, id, REMOCA_E_RANGE, "FILL_RING of 17 slots");

    struct ring g;
    fill_ring(fd, 16, &g);
    id = next_id++;
    send_req(fd, REMOCA_OP_FILL_RING, id, 0, 0, 0, NULL, 0, 0);
    expect(fd, id, REMOCA_E_STATE, "a second FILL_RING");
    if (!strstr((char *)r.payload, "fill ring already attached"))
        die("a second FILL_RING: '%s'", r.payload);

    /* (b) puts through the ring, read back by the next request; 3 rounds wrap 16 slots. */
    int all[12];
    for (int k = 0; k < 12; k++) all[k] = 1;
    for (uint64_t round = 0; round < 3; round++) {
        for (uint64_t k = 0; k < 12; k++) ring_put(&g, ha, round * 12 + k, next_id, 1);
        ring_publish(&g);
        executed += 12;
        get_expect(fd, ha, round * 12, 12, all, 1, "GET after ring puts");
        if (ring_tail(&g) != g.head)
            die("tail %llu after the GET, head %llu", (unsigned long long)ring_tail(&g),
                (unsigned long long)g.head);
    }
    ring_put(&g, hb, 0, next_id, 5); /* the other pool's handle */
    ring_publish(&g);
    executed++;
    get_expect(fd, hb, 0, 1, all, 5, "GET of pool b after a ring put");
    get_expect(fd, ha, 12, 1, all, 1, "pool a's key 12 after pool b's put");

    /* (c) order against a DELETE of the same key. */
    int miss[1] = {0};
    uint32_t del = next_id;
    ring_put(&g, ha, 100, del, 1); /* before the DELETE */
    ring_publish(&g);
    executed++;
    send_req(fd, REMOCA_OP_DELETE, next_id++, ha, 100, 1, NULL, 0, 0);
    expect(fd, del, REMOCA_OK, "DELETE");
    get_expect(fd, ha, 100, 1, miss, 0, "a ring put before a DELETE of its key");

    uint32_t pid = next_id++;
    static uint8_t page[PAGE];
    fill(page, 101, 1);
    send_req(fd, REMOCA_OP_PUT, pid, ha, 101, 1, page, PAGE, 0);
    expect(fd, pid, REMOCA_OK, "PUT");
    del = next_id++;
    ring_put(&g, ha, 101, next_id, 2); /* after the DELETE, which is not sent yet */
    ring_publish(&g);
    executed++;
    uint8_t both[2 * REMOCA_HDR_SIZE];
    struct remoca_hdr d = {.magic = REMOCA_MAGIC_REQ,
                           .version = REMOCA_VERSION,
                           .op = REMOCA_OP_DELETE,
                           .id = del,
                           .pool = ha,
                           .key = 101,
                           .count = 1};
    remoca_hdr_encode(both, &d);
    d.op = REMOCA_OP_GET;
    d.id = next_id++;
    remoca_hdr_encode(both + REMOCA_HDR_SIZE, &d);
    send_all(fd, both, sizeof both);
    expect(fd, del, REMOCA_OK, "DELETE");
    expect(fd, d.id, REMOCA_OK, "GET after DELETE");
    fill(page, 101, 2);
    uint32_t bm = remoca_bitmap_bytes(1);
    if (r.h.len != bm + PAGE || !(r.payload[0] & 1) || memcmp(r.payload + bm, page, PAGE))
        die("a ring put placed after a DELETE (sent later) did not survive it");

    /* (d) an entry further ahead waits for its request. */
    uint32_t later = next_id + 10;
    ring_put(&g, ha, 102, later, 1);
    ring_publish(&g);
    executed++;
    get_expect(fd, ha, 102, 1, miss, 0, "an entry for a later request, too early");
    if (ring_tail(&g) != g.head - 1) die("the entry for a later request was consumed");
    next_id = later;
    get_expect(fd, ha, 102, 1, all, 1, "an entry at its request");
    if (ring_tail(&g) != g.head) die("tail behind head after the entry's request");

    /* After its last request the server also executes the entries for the
     * request after it (they cannot go anywhere else). */
    ring_put(&g, ha, 105, next_id + 1, 1);
    ring_publish(&g);
    executed++;
    ping(fd);
    if (ring_tail(&g) != g.head) die("an entry for the request after the last one waits");
    get_expect(fd, ha, 105, 1, all, 1, "an entry for the request after the last one");

    /* (e) a handle not open: skipped and counted; the next entry is executed. */
    uint64_t e0 = server_stat(fd, "errors");
    ring_put(&g, 99, 103, next_id, 1);
    ring_put(&g, ha, 104, next_id, 1);
    ring_publish(&g);
    executed++;
    ping(fd);
    uint64_t e1 = server_stat(fd, "errors");
    if (e1 != e0 + 1)
        die("errors %llu -> %llu after an entry for handle 99", (unsigned long long)e0,
            (unsigned long long)e1);
    int one_miss[2] = {0, 1};
    get_expect(fd, ha, 103, 2, one_miss, 1, "after an entry for a closed handle");
    if (server_stat(fd, "fill_rings") != 1) die("fill_rings is not 1 with one ring attached");
    if (ring_tail(&g) != g.head) die("tail behind head at the end");

    /* A default ring on a second connection. */
    int fd2 = raw_dial(addr);
    uint32_t saved = next_id;
    next_id = 1;
    hello(fd2);
    struct ring g2;
    fill_ring(fd2, 0, &g2);
    if (g2.nslots != REMOCA_RING_DEFAULT_SLOTS || g2.size != remoca_ring_size(g2.nslots))
        die("default ring: %u slots, %llu bytes", g2.nslots, (unsigned long long)g2.size);
    close(fd2);
    next_id = saved;
    ping(fd);
    close(fd);
    printf("ring: ok ring_puts=%llu\n", (unsigned long long)executed);
}

static void run_badhead(const char *addr)
{
    int fd = raw_dial(addr);
    hello(fd);
    uint32_t h = pool_open(fd, "ring/a");
    struct ring g;
    fill_ring(fd, 16, &g);
    ring_put(&g, h, 1, next_id, 1);
    g.head = g.nslots + 1; /* more than nslots ahead of tail 0 */
    ring_publish(&g);
    send_req(fd, REMOCA_OP_PING, next_id, 0, 0, 0, NULL, 0, 0);
    uint8_t b[REMOCA_HDR_SIZE];
    int nfds = 0;
    if (raw_recv_fds(fd, b, sizeof b, r.fds, &nfds, 1) == 0)
        die("a head out of range got a response instead of a closed connection");
    close(fd);
    fd = raw_dial(addr);
    next_id = 1;
    hello(fd);
    ping(fd);
    close(fd);
    printf("badhead: ok (closed, the server goes on)\n");
}

static void run_refuse(const char *addr, const char *status, const char *text, uint32_t count)
{
    int fd = raw_dial(addr);
    hello(fd);
    uint16_t st;
    if (!strcmp(status, "E_STATE"))
        st = REMOCA_E_STATE;
    else if (!strcmp(status, "E_LIMIT"))
        st = REMOCA_E_LIMIT;
    else
        die("status %s: E_STATE or E_LIMIT", status);
    uint32_t id = next_id++;
    send_req(fd, REMOCA_OP_FILL_RING, id, 0, 0, count, NULL, 0, 0);
    expect(fd, id, st, "FILL_RING");
    if (!strstr((char *)r.payload, text)) die("message '%s' lacks '%s'", r.payload, text);
    printf("refused: %s\n", (char *)r.payload);
    ping(fd); /* the connection goes on */
    close(fd);
}

int main(int argc, char **argv)
{
    raw_prog = "ring_client";
    if (argc == 3 && !strcmp(argv[2], "ring"))
        run_ring(argv[1]);
    else if (argc == 3 && !strcmp(argv[2], "badhead"))
        run_badhead(argv[1]);
    else if ((argc == 5 || argc == 6) && !strcmp(argv[2], "refuse"))
        run_refuse(argv[1], argv[3], argv[4], argc == 6 ? (uint32_t)atoi(argv[5]) : 0);
    else
        die("usage: ring_client unix:PATH ring|badhead | ring_client ADDR refuse STATUS TEXT "
            "[COUNT]");
    return 0;
}
