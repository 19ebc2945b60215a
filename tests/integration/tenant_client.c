/* SPDX-License-Identifier: BSD-3-Clause */
/* tenant_client: the two sides of test_memd_tenants.sh against one
 * remoca-memd --tenants server.
 *
 *   tenant_client victim ADDR SECRET_B DIR
 *       tenant B through libremoca (name "B/vm1", pool "b/vda"): puts 256
 *       pages, reads them back (hit ratio, bytes), checks its pool at the
 *       server (STATS over its own connection), writes DIR/ready and waits
 *       for DIR/go; then checks that its pool at the server is unchanged
 *       (pages, hits) and reads every page again, byte for byte.  The same
 *       client throughout: a new one would reset the pool on connect.
 *
 *   tenant_client attacker ADDR SECRET_A
 *       tenant A on the raw wire (raw_wire.h): wrong secret, unknown tenant,
 *       B's name with A's secret: E_AUTH; opening or updating B's pool:
 *       E_AUTH "pool b/vda not allowed for tenant A"; handles it did not
 *       open (B's connection has handle 1 for b/vda; A uses 2, 3): E_POOL
 *       for GET, PUT, DELETE_RANGE, POOL_RESET, POOL_KEEP; STATS shows no
 *       trace of B; 4 times its cap put into its own pool: it keeps 16 pages
 *       (memory=64K), evicted from itself; a third connection beyond conns=2:
 *       E_LIMIT and closed; its refusals counted at the server.
 *
 *   tenant_client flood ADDR SECRET_C NPAGES
 *       tenant C (no floor, a large cap) puts NPAGES pages into pool c/1 of
 *       weight 100 (a fair share of nearly the whole store), every PUT OK;
 *       then checks at the server that the store is full and that C evicted
 *       (from itself and from A, which has no floor): B, below its floor,
 *       must lose nothing (the victim's checks); C has stats=all: its STATS
 *       show B's 256 pages.
 *
 *   tenant_client stats ADDR NAME SECRET
 *       prints the STATS text that tenant NAME sees (the shell's checks).
 *
 * Exit 0 when every check holds; "tenant_client: FAIL: ..." and 1 otherwise. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <time.h>

#include "raw_wire.h"
#include "remoca/client.h"

#define PAGE REMOCA_PAGE_SIZE
#define NB 256u /* B's pages */

static void pattern(uint8_t *p, uint64_t key, uint8_t salt)
{
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t v = (key + 1) * 0x9e3779b97f4a7c15ull ^ (i * 131u) ^ salt;
        memcpy(p + i, &v, 8);
    }
}

/* The value of KEY= on the line of `what` (e.g. "pool name=b/vda") in text
 * stats; dies if absent. */
static uint64_t stat_value(const char *stats, const char *line_start, const char *key)
{
    const char *l = strstr(stats, line_start);
    if (!l) die("stats: no line '%s' in:\n%s", line_start, stats);
    const char *end = strchr(l, '\n');
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *v = strstr(l, k);
    if (!v || (end && v > end)) die("stats: no %s on '%s'", key, line_start);
    return strtoull(v + strlen(k), NULL, 10);
}

/* ---- victim: tenant B through libremoca ---- */

static void read_all(struct remoca_client *c, uint8_t *pages, unsigned *hits)
{
    uint64_t bits[NB / 64];
    *hits = remoca_get(c, 0, NB, pages, bits, false);
    for (unsigned k = 0; k < NB; k++) {
        uint8_t want[PAGE];
        pattern(want, k, 0xb);
        if (!(bits[k / 64] >> (k % 64) & 1)) die("B: key %u missing", k);
        if (memcmp(pages + (size_t)k * PAGE, want, PAGE)) die("B: key %u: wrong bytes", k);
    }
}

static char *server_stats(struct remoca_client *c)
{
    char *s = NULL;
    if (remoca_server_stats(c, 0, false, &s) < 0 || !s) die("B: STATS failed");
    return s;
}

static int victim(const char *addr, const char *secret, const char *dir)
{
    char err[256];
    struct remoca_client_opts o = {.servers = addr,
                                   .pool = "b/vda",
                                   .name = "B/vm1",
                                   .secret = secret,
                                   .timeout_ms = 5000,
                                   .shm = REMOCA_SHM_OFF};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) die("B: %s", err);
    if (remoca_client_wait_ready(c, 5000) != 1) die("B: not connected (authentication?)");
    uint8_t *pages = malloc((size_t)NB * PAGE);
    if (!pages) die("out of memory");
    for (unsigned k = 0; k < NB; k++) pattern(pages + (size_t)k * PAGE, k, 0xb);
    if (remoca_put(c, 0, NB, pages, true) < 0) die("B: put failed");
    memset(pages, 0, (size_t)NB * PAGE);
    unsigned hits;
    read_all(c, pages, &hits);
    printf("B: %u of %u hits (ratio %.3f), %u bytes verified\n", hits, NB, (double)hits / NB,
           hits * PAGE);
    char *s = server_stats(c);
    if (strstr(s, "tenant name=A")) die("B's STATS shows tenant A:\n%s", s);
    uint64_t pages0 = stat_value(s, "pool name=b/vda", "pages");
    uint64_t hits0 = stat_value(s, "pool name=b/vda", "hits");
    if (pages0 != NB || hits0 != NB || stat_value(s, "tenant name=B", "pages") != NB)
        die("B before: pool pages %llu hits %llu, want %u:\n%s", (unsigned long long)pages0,
            (unsigned long long)hits0, NB, s);
    free(s);

    char path[512];
    snprintf(path, sizeof path, "%s/ready", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs("ready\n", f) < 0 || fclose(f)) die("cannot write %s", path);
    snprintf(path, sizeof path, "%s/go", dir);
    for (int i = 0; access(path, F_OK) != 0; i++) {
        if (i > 600) die("B: no %s after 60 s", path);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }

    s = server_stats(c);
    uint64_t pages1 = stat_value(s, "pool name=b/vda", "pages");
    uint64_t hits1 = stat_value(s, "pool name=b/vda", "hits");
    uint64_t evict1 = stat_value(s, "pool name=b/vda", "evictions");
    uint64_t del1 = stat_value(s, "pool name=b/vda", "deletes");
    if (pages1 != NB || hits1 != hits0 || evict1 || del1)
        die("B after A: pages %llu hits %llu evictions %llu deletes %llu (want %u, %llu, 0, 0)",
            (unsigned long long)pages1, (unsigned long long)hits1, (unsigned long long)evict1,
            (unsigned long long)del1, NB, (unsigned long long)hits0);
    printf("B: after A: %s", strstr(s, "tenant name=B"));
    free(s);
    memset(pages, 0, (size_t)NB * PAGE);
    read_all(c, pages, &hits);
    if (hits != NB) die("B after A: %u hits of %u", hits, NB);
    printf("B: after A: %u of %u hits, every byte as written\n", hits, NB);
    free(pages);
    remoca_client_free(c);
    return 0;
}

/* ---- attacker: tenant A on the raw wire ---- */

static uint32_t next_id = 1;

/* Sends a request and expects status st; returns the payload in r. */
static void req(int fd, struct raw_resp *r, uint8_t op, uint32_t pool, uint64_t key, uint32_t count,
                const void *payload, uint32_t len, uint16_t st, const char *what)
{
    uint32_t id = next_id++;
    send_req(fd, op, id, pool, key, count, payload, len, 0);
    raw_expect(fd, r, id, st, what, 0);
}

static void hello(int fd, struct raw_resp *r, const char *name, const uint8_t *cred, size_t clen,
                  uint16_t st, const char *what)
{
    uint8_t body[600];
    struct remoca_hello h = {
        .name = name, .name_len = strlen(name), .cred = cred, .cred_len = clen};
    size_t n = remoca_hello_encode(body, sizeof body, &h);
    req(fd, r, REMOCA_OP_HELLO, 0, 0, 0, body, (uint32_t)n, st, what);
}

/* Answers the challenge in r (E_AUTH "challenge HEX") as name with secret. */
static void answer(const struct raw_resp *r, const char *secret, const char *name, uint8_t mac[32])
{
    uint8_t msg[16 + 256];
    const char *c = (const char *)r->payload;
    if (strncmp(c, "challenge ", 10) || r->h.len != 42) die("no challenge: '%s'", c);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(c + 10 + 2 * i, "%2x", &v) != 1) die("bad challenge '%s'", c);
        msg[i] = (uint8_t)v;
    }
    memcpy(msg + 16, name, strlen(name));
    unsigned len = 32;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, 16 + strlen(name), mac, &len);
}

/* A new connection authenticated as name with secret (expecting st at the end). */
static int login(const char *addr, const char *name, const char *secret, uint16_t st,
                 struct raw_resp *r)
{
    int fd = raw_dial(addr);
    uint8_t mac[32];
    hello(fd, r, name, NULL, 0, REMOCA_E_AUTH, "HELLO (challenge)");
    answer(r, secret, name, mac);
    hello(fd, r, name, mac, 32, st, "HELLO (answer)");
    return fd;
}

static uint32_t open_pool(int fd, struct raw_resp *r, const char *name, uint64_t min, uint64_t max,
                          uint16_t st, const char *what)
{
    uint8_t body[300];
    struct remoca_pool_open po = {
        .min_bytes = min, .max_bytes = max, .weight = 1, .name = name, .name_len = strlen(name)};
    size_t n = remoca_pool_open_encode(body, sizeof body, &po);
    req(fd, r, REMOCA_OP_POOL_OPEN, 0, 0, 0, body, (uint32_t)n, st, what);
    return r->h.pool;
}

static int attacker(const char *addr, const char *secret)
{
    static struct raw_resp r;
    uint8_t mac[32];
    int fd = raw_dial(addr);
    /* Not yet anyone: nothing but HELLO. */
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_E_STATE, "STATS before HELLO");
    hello(fd, &r, "A", NULL, 0, REMOCA_E_AUTH, "HELLO A (challenge)");
    answer(&r, "not-A's-secret", "A", mac);
    hello(fd, &r, "A", mac, 32, REMOCA_E_AUTH, "HELLO A, wrong secret"); /* refusal 1 */
    answer(&r, secret, "Z", mac);
    hello(fd, &r, "Z", mac, 32, REMOCA_E_AUTH, "HELLO as unknown tenant Z");
    close(fd); /* two failures: the next would close it anyway */
    fd = raw_dial(addr);
    hello(fd, &r, "B/vm1", NULL, 0, REMOCA_E_AUTH, "HELLO B (challenge)");
    answer(&r, secret, "B/vm1", mac);
    hello(fd, &r, "B/vm1", mac, 32, REMOCA_E_AUTH, "HELLO as B with A's secret");
    close(fd);

    fd = login(addr, "A/attacker", secret, REMOCA_OK, &r);
    /* B's pool, by name: open, and update (what remoca_pool_update sends). */
    open_pool(fd, &r, "b/vda", 0, 0, REMOCA_E_AUTH, "POOL_OPEN b/vda"); /* refusal 2 */
    if (!strstr((char *)r.payload, "pool b/vda not allowed for tenant A"))
        die("POOL_OPEN b/vda: message '%s'", (char *)r.payload);
    open_pool(fd, &r, "b/vda", 1 << 20, 2 << 20, REMOCA_E_AUTH, "update b/vda");     /* 3 */
    open_pool(fd, &r, "bb", 0, 0, REMOCA_E_AUTH, "POOL_OPEN bb (B's other prefix)"); /* 4 */
    uint32_t mine = open_pool(fd, &r, "a/1", 0, 0, REMOCA_OK, "POOL_OPEN a/1");
    if (mine != 1) die("a/1: handle %u, expected 1", mine);
    /* Handles it never opened (B's connection holds handle 1 for b/vda). */
    uint8_t page[PAGE];
    memset(page, 0xaa, sizeof page);
    uint8_t keep[13] = {1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1}; /* n=1, self=0 */
    for (uint32_t h = 2; h <= 3; h++) {
        req(fd, &r, REMOCA_OP_GET, h, 0, 16, NULL, 0, REMOCA_E_POOL, "GET, foreign handle");
        if (!strstr((char *)r.payload, "not open here")) die("E_POOL message '%s'", r.payload);
        req(fd, &r, REMOCA_OP_TAKE, h, 0, 16, NULL, 0, REMOCA_E_POOL, "TAKE, foreign handle");
        req(fd, &r, REMOCA_OP_PUT, h, 5, 1, page, PAGE, REMOCA_E_POOL, "PUT, foreign handle");
        req(fd, &r, REMOCA_OP_DELETE_RANGE, h, 0, UINT32_MAX, NULL, 0, REMOCA_E_POOL,
            "DELETE_RANGE, foreign handle");
        req(fd, &r, REMOCA_OP_POOL_RESET, h, 0, 0, NULL, 0, REMOCA_E_POOL,
            "POOL_RESET, foreign handle");
        req(fd, &r, REMOCA_OP_POOL_KEEP, h, 0, 0, keep, sizeof keep, REMOCA_E_POOL,
            "POOL_KEEP, foreign handle");
    }
    /* Its own pool: reset and a range delete touch only it. */
    req(fd, &r, REMOCA_OP_POOL_RESET, mine, 0, 0, NULL, 0, REMOCA_OK, "POOL_RESET a/1");
    req(fd, &r, REMOCA_OP_DELETE_RANGE, mine, 0, UINT32_MAX, NULL, 0, REMOCA_OK,
        "DELETE_RANGE a/1");

    /* STATS: only A. */
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_OK, "STATS as A");
    const char *s = (const char *)r.payload;
    if (strstr(s, "b/vda") || strstr(s, "name=B") || !strstr(s, "tenant name=A "))
        die("A's STATS:\n%s", s);
    send_req(fd, REMOCA_OP_STATS, next_id, 0, 0, 0, NULL, 0, REMOCA_F_JSON);
    raw_expect(fd, &r, next_id++, REMOCA_OK, "STATS JSON as A", 0);
    if (strstr(s, "b/vda") || strstr(s, "\"B\"") || !strstr(s, "\"tenants\""))
        die("A's JSON STATS:\n%s", s);

    /* 4 times its cap (64K = 16 pages), 16 pages per PUT. */
    static uint8_t batch[16 * PAGE];
    for (uint64_t k = 0; k < 64; k += 16) {
        for (unsigned i = 0; i < 16; i++) pattern(batch + (size_t)i * PAGE, k + i, 0xa);
        req(fd, &r, REMOCA_OP_PUT, mine, k, 16, batch, sizeof batch, REMOCA_OK, "PUT a/1");
    }
    req(fd, &r, REMOCA_OP_GET, mine, 0, 64, NULL, 0, REMOCA_OK, "GET a/1");
    unsigned hits = 0;
    for (unsigned i = 0; i < 64; i++) hits += r.payload[i / 8] >> (i % 8) & 1;
    if (hits != 16 || r.h.len != 8 + 16 * PAGE) die("A holds %u of its 64 pages, want 16", hits);
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_OK, "STATS as A");
    if (stat_value(s, "tenant name=A", "pages") != 16 ||
        stat_value(s, "tenant name=A", "cap_bytes") != 65536 ||
        stat_value(s, "tenant name=A", "cap_evictions") != 48 ||
        stat_value(s, "pool name=a/1", "pages") != 16)
        die("A at its cap:\n%s", s);

    /* conns=2: this one, a second, and a third refused. */
    int fd2 = login(addr, "A", secret, REMOCA_OK, &r);
    int fd3 = raw_dial(addr);
    uint32_t id = next_id;
    hello(fd3, &r, "A", NULL, 0, REMOCA_E_AUTH, "HELLO A #3 (challenge)");
    answer(&r, secret, "A", mac);
    hello(fd3, &r, "A", mac, 32, REMOCA_E_LIMIT, "HELLO A #3 beyond conns=2"); /* refusal 5 */
    if (!strstr((char *)r.payload, "tenant A has its 2 connections"))
        die("conns message '%s'", (char *)r.payload);
    uint8_t b1;
    if (recv(fd3, &b1, 1, 0) != 0) die("third connection not closed");
    (void)id;
    close(fd3);
    req(fd2, &r, REMOCA_OP_PING, 0, 0, 0, NULL, 0, REMOCA_OK, "PING on the second");
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_OK, "STATS as A");
    if (stat_value(s, "tenant name=A", "refusals") != 5 ||
        stat_value(s, "tenant name=A", "connections") != 2 ||
        stat_value(s, "tenant name=A", "max_connections") != 2)
        die("A's refusals and connections:\n%s", s);
    printf("A: %s", strstr(s, "tenant name=A"));
    close(fd2);
    close(fd);
    return 0;
}

static int flood(const char *addr, const char *secret, unsigned npages)
{
    static struct raw_resp r;
    static uint8_t batch[REMOCA_MAX_BATCH * PAGE];
    int fd = login(addr, "C/flood", secret, REMOCA_OK, &r);
    uint8_t body[300];
    struct remoca_pool_open po = {.weight = 100, .name = "c/1", .name_len = 3};
    size_t n = remoca_pool_open_encode(body, sizeof body, &po);
    req(fd, &r, REMOCA_OP_POOL_OPEN, 0, 0, 0, body, (uint32_t)n, REMOCA_OK, "POOL_OPEN c/1");
    uint32_t h = r.h.pool;
    for (unsigned k = 0; k < npages; k += REMOCA_MAX_BATCH) {
        for (unsigned i = 0; i < REMOCA_MAX_BATCH; i++)
            pattern(batch + (size_t)i * PAGE, k + i, 0xc);
        req(fd, &r, REMOCA_OP_PUT, h, k, REMOCA_MAX_BATCH, batch, sizeof batch, REMOCA_OK,
            "PUT c/1");
    }
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_OK, "STATS as C");
    const char *s = (const char *)r.payload;
    uint64_t free_pages = stat_value(s, "server ", "pages_free");
    uint64_t cpages = stat_value(s, "tenant name=C", "pages");
    uint64_t ev = stat_value(s, "pool name=c/1", "evictions");
    if (free_pages != 0 || ev == 0 || cpages >= npages) die("C's flood:\n%s", s);
    /* stats=all: C sees every tenant and pool. */
    if (stat_value(s, "tenant name=B", "pages") != NB || !strstr(s, "tenant name=A ") ||
        stat_value(s, "pool name=b/vda", "pages") != NB)
        die("C's STATS (stats=all):\n%s", s);
    printf("C: %llu pages held after %u put, %llu evicted from itself\n",
           (unsigned long long)cpages, npages, (unsigned long long)ev);
    close(fd);
    return 0;
}

static int stats(const char *addr, const char *name, const char *secret)
{
    static struct raw_resp r;
    int fd = login(addr, name, secret, REMOCA_OK, &r);
    req(fd, &r, REMOCA_OP_STATS, 0, 0, 0, NULL, 0, REMOCA_OK, "STATS");
    fputs((const char *)r.payload, stdout);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    raw_prog = "tenant_client";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 5 && !strcmp(argv[1], "victim")) return victim(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "attacker")) return attacker(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "stats")) return stats(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "flood"))
        return flood(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 10));
    fprintf(stderr, "usage: tenant_client victim ADDR SECRET_B DIR | attacker ADDR SECRET_A | "
                    "flood ADDR SECRET_C NPAGES | stats ADDR NAME SECRET\n");
    return 2;
}
