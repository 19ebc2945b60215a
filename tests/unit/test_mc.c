/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the memcached meta protocol codec (lib/wire/mc.c): keys,
 * command builders (exact bytes, bounds), the response parser on every reply
 * kind, fed whole, at every split point and byte by byte, and hostile input:
 * long lines, wrong value sizes, missing CRLFs, garbage, overflowing numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "remoca/mc.h"

#define PAGE REMOCA_MC_VALUE_SIZE

static const struct remoca_mc_ns NS = {.pool = 0x0123456789abcdefull, .epoch = 0x2a};

/* ---- keys ---------------------------------------------------------------- */

static void keys(void **state)
{
    char k[REMOCA_MC_KEY_LEN + 8];
    size_t n = remoca_mc_key(k, sizeof k, &NS, 0x1f);
    assert_int_equal(n, 37);
    assert_memory_equal(k, "R0123456789abcdef.000000000000002a.1f", n);
    assert_true(remoca_mc_key_ok(k, n));

    assert_int_equal(remoca_mc_key(k, sizeof k, &NS, 0), 36);
    assert_int_equal(k[35], '0');
    n = remoca_mc_key(k, sizeof k, &NS, UINT64_MAX);
    assert_int_equal(n, REMOCA_MC_KEY_LEN);
    assert_int_equal(remoca_mc_key(k, REMOCA_MC_KEY_LEN - 1, &NS, UINT64_MAX), 0);

    /* Round trip, and every key of another epoch or pool is another key. */
    uint64_t blocks[] = {0, 1, 15, 16, 0x123456789ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        struct remoca_mc_ns ns;
        uint64_t b;
        n = remoca_mc_key(k, sizeof k, &NS, blocks[i]);
        assert_int_equal(remoca_mc_key_decode(k, n, &ns, &b), 0);
        assert_true(ns.pool == NS.pool && ns.epoch == NS.epoch && b == blocks[i]);
        char k2[REMOCA_MC_KEY_LEN];
        struct remoca_mc_ns other = {NS.pool, NS.epoch + 1};
        size_t n2 = remoca_mc_key(k2, sizeof k2, &other, blocks[i]);
        assert_false(n == n2 && memcmp(k, k2, n) == 0);
    }

    /* Not ours: wrong tag, separators, upper case, leading zeros, lengths. */
    const char *bad[] = {
        "X0123456789abcdef.000000000000002a.1f",
        "R0123456789abcdef-000000000000002a.1f",
        "R0123456789ABCDEF.000000000000002a.1f",
        "R0123456789abcdef.000000000000002a.01f",
        "R0123456789abcdef.000000000000002a.",
        "R0123456789abcdef.000000000000002a.1g",
        "R0123456789abcdef.000000000000002a.1ffffffffffffffff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct remoca_mc_ns ns;
        uint64_t b;
        assert_int_equal(remoca_mc_key_decode(bad[i], strlen(bad[i]), &ns, &b), -1);
    }

    /* Pool ids: stable (the scheme is documented), distinct for near names. */
    assert_true(remoca_mc_pool_id("vm42/vda", 8) == remoca_mc_pool_id("vm42/vda", 8));
    assert_true(remoca_mc_pool_id("vm42/vda", 8) != remoca_mc_pool_id("vm42/vdb", 8));
    assert_true(remoca_mc_pool_id("", 0) != remoca_mc_pool_id("a", 1));
}

static void key_ok(void **state)
{
    char big[REMOCA_MC_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    assert_true(remoca_mc_key_ok(big, REMOCA_MC_KEY_MAX));
    assert_false(remoca_mc_key_ok(big, REMOCA_MC_KEY_MAX + 1));
    assert_false(remoca_mc_key_ok("", 0));
    assert_false(remoca_mc_key_ok("a b", 3));
    assert_false(remoca_mc_key_ok("a\tb", 3));
    assert_false(remoca_mc_key_ok("a\r\nb", 4));
    assert_false(remoca_mc_key_ok("a\x7f", 2));
    assert_false(remoca_mc_key_ok("a\x80", 2));
    assert_true(remoca_mc_key_ok("~!:.", 4));
}

/* ---- builders ------------------------------------------------------------ */

typedef size_t (*builder)(char *, size_t, const struct remoca_mc_cmd *);

/* Builds c with b and checks the exact line, and that every smaller buffer
 * is refused without a byte written past its end. */
static void expect_line(builder b, const struct remoca_mc_cmd *c, const char *want)
{
    char buf[REMOCA_MC_CMD_MAX + 16];
    size_t n = b(buf, sizeof buf, c);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_true(n <= REMOCA_MC_CMD_MAX);
    for (size_t cap = 0; cap < n; cap++) {
        memset(buf, '#', sizeof buf);
        assert_int_equal(b(buf, cap, c), 0);
        for (size_t i = cap; i < sizeof buf; i++) assert_int_equal(buf[i], '#');
    }
}

static size_t ms4096(char *o, size_t cap, const struct remoca_mc_cmd *c)
{
    return remoca_mc_ms(o, cap, c, PAGE);
}

static size_t mn(char *o, size_t cap, const struct remoca_mc_cmd *c)
{
    (void)c;
    return remoca_mc_mn(o, cap);
}

static void builders(void **state)
{
    struct remoca_mc_cmd c = {.key = "k1", .key_len = 2};
    c.flags = REMOCA_MC_F_VALUE | REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE;
    c.opaque = 7;
    expect_line(remoca_mc_mg, &c, "mg k1 v q O7\r\n");
    c.flags |= REMOCA_MC_F_RETCAS;
    c.opaque = UINT32_MAX;
    expect_line(remoca_mc_mg, &c, "mg k1 v c q O4294967295\r\n");

    c.flags = REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE;
    c.opaque = 0;
    expect_line(ms4096, &c, "ms k1 4096 q O0\r\n");
    expect_line(remoca_mc_md, &c, "md k1 q O0\r\n");
    c.flags |= REMOCA_MC_F_CMPCAS;
    c.cas = UINT64_MAX;
    expect_line(remoca_mc_md, &c, "md k1 q O0 C18446744073709551615\r\n");
    expect_line(ms4096, &c, "ms k1 4096 q O0 C18446744073709551615\r\n");

    c = (struct remoca_mc_cmd){.key = "ep", .key_len = 2, .flags = REMOCA_MC_F_VALUE};
    expect_line(remoca_mc_ma, &c, "ma ep v\r\n");
    c.flags |= REMOCA_MC_F_VIVIFY;
    c.initial = 123;
    c.delta = 5;
    expect_line(remoca_mc_ma, &c, "ma ep v N0 J123 D5\r\n");
    expect_line(mn, &c, "mn\r\n");

    /* A flag the command does not take, a bad key, a value larger than a page. */
    char buf[REMOCA_MC_CMD_MAX];
    c = (struct remoca_mc_cmd){.key = "k", .key_len = 1, .flags = REMOCA_MC_F_VALUE};
    assert_int_equal(remoca_mc_md(buf, sizeof buf, &c), 0);
    assert_int_equal(remoca_mc_ms(buf, sizeof buf, &c, PAGE), 0);
    c.flags = REMOCA_MC_F_CMPCAS;
    assert_int_equal(remoca_mc_mg(buf, sizeof buf, &c), 0);
    c.flags = REMOCA_MC_F_VIVIFY;
    assert_int_equal(remoca_mc_md(buf, sizeof buf, &c), 0);
    c.flags = 0x4000;
    assert_int_equal(remoca_mc_ma(buf, sizeof buf, &c), 0);
    c.flags = 0;
    assert_int_equal(remoca_mc_ms(buf, sizeof buf, &c, REMOCA_MC_SEALED_VALUE_SIZE + 1), 0);
    assert_int_equal(remoca_mc_ms(buf, sizeof buf, &c, REMOCA_MC_SEALED_VALUE_SIZE),
                     strlen("ms k 4128\r\n")); /* a sealed pool's page || sidecar */
    assert_int_equal(remoca_mc_ms(buf, sizeof buf, &c, 16), strlen("ms k 16\r\n"));
    c.key = "a b";
    c.key_len = 3;
    assert_int_equal(remoca_mc_mg(buf, sizeof buf, &c), 0);
    c.key_len = 0;
    assert_int_equal(remoca_mc_mg(buf, sizeof buf, &c), 0);

    /* The longest line fits REMOCA_MC_CMD_MAX. */
    char big[REMOCA_MC_KEY_MAX];
    memset(big, 'k', sizeof big);
    c = (struct remoca_mc_cmd){.key = big,
                               .key_len = sizeof big,
                               .flags = REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS,
                               .opaque = UINT32_MAX,
                               .cas = UINT64_MAX};
    assert_int_not_equal(remoca_mc_ms(buf, sizeof buf, &c, PAGE), 0);
}

static void get_batch(void **state)
{
    char buf[4 * REMOCA_MC_CMD_MAX];
    size_t n = remoca_mc_get_batch(buf, sizeof buf, &NS, 0xf, 2, false, 10);
    const char *want = "mg R0123456789abcdef.000000000000002a.f v q O10\r\n"
                       "mg R0123456789abcdef.000000000000002a.10 v q O11\r\n"
                       "mn\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    n = remoca_mc_get_batch(buf, sizeof buf, &NS, 0, 1, true, 0);
    want = "mg R0123456789abcdef.000000000000002a.0 v c q O0\r\nmn\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(remoca_mc_get_batch(buf, cap, &NS, 0, 1, true, 0), 0);
    assert_int_equal(remoca_mc_get_batch(buf, sizeof buf, &NS, 0, 0, false, 0), 0);
    assert_int_equal(remoca_mc_get_batch(buf, sizeof buf, &NS, 0, 257, false, 0), 0);
    assert_int_equal(remoca_mc_get_batch(buf, sizeof buf, &NS, UINT64_MAX, 2, false, 0), 0);
    /* 64 keys, the most one placement chunk asks of a server: the longest
     * keys and opaques fill REMOCA_MC_BATCH_BYTES exactly. */
    static char big[REMOCA_MC_BATCH_BYTES(64)];
    assert_int_equal(
        remoca_mc_get_batch(big, sizeof big, &NS, UINT64_MAX - 63, 64, true, UINT32_MAX - 63),
        sizeof big);
    assert_int_equal(
        remoca_mc_get_batch(big, sizeof big - 1, &NS, UINT64_MAX - 63, 64, true, UINT32_MAX - 63),
        0);
}

/* ---- parser -------------------------------------------------------------- */

#define MAXEV 64
#define NPAGES 8

struct run {
    struct remoca_mc_event ev[MAXEV];
    char msgs[MAXEV][REMOCA_MC_MSG_MAX + 1];
    int nev;
    uint8_t pages[NPAGES][PAGE + 64]; /* 64 guard bytes after each page */
    int rc;                           /* 0, or -1: the parser failed */
    enum remoca_mc_err err;
};

/* Feeds stream as a first chunk of `first` bytes (0: none), the rest in chunks
 * of `chunk` bytes (0: all at once).  A VA whose opaque names a page
 * (< NPAGES) goes there; others are dropped. */
static void feed_cut(struct run *r, const void *stream, size_t len, size_t first, size_t chunk,
                     unsigned opts)
{
    struct remoca_mc_parser p;
    remoca_mc_parser_init(&p, opts);
    memset(r, 0, sizeof *r);
    memset(r->pages, 0xee, sizeof r->pages);
    const uint8_t *s = stream;
    size_t off = 0;
    while (off < len) {
        size_t end = chunk && off + chunk < len ? off + chunk : len;
        if (off == 0 && first) end = first < len ? first : len;
        while (off < end) {
            size_t used;
            struct remoca_mc_event ev;
            int rc = remoca_mc_parse(&p, s + off, end - off, &used, &ev);
            assert_true(used <= end - off);
            off += used;
            if (rc < 0) {
                assert_int_not_equal(p.err, REMOCA_MC_OK);
                assert_true(strlen(remoca_mc_parser_error(&p)) > 0);
                r->rc = -1;
                r->err = p.err;
                /* Sticky: nothing more is consumed. */
                assert_int_equal(remoca_mc_parse(&p, "MN\r\n", 4, &used, &ev), -1);
                assert_int_equal(used, 0);
                return;
            }
            if (rc == 0) {
                assert_int_equal(off, end);
                assert_int_equal(ev.kind, REMOCA_MC_NONE);
                continue;
            }
            assert_true(r->nev < MAXEV);
            if (ev.msg) {
                strcpy(r->msgs[r->nev], ev.msg);
                ev.msg = r->msgs[r->nev];
            }
            r->ev[r->nev++] = ev;
            if (ev.kind == REMOCA_MC_VA && ev.size == PAGE && (ev.has & REMOCA_MC_R_OPAQUE) &&
                ev.opaque < NPAGES)
                assert_int_equal(remoca_mc_parser_dest(&p, r->pages[ev.opaque], PAGE), 0);
        }
    }
}

static void feed(struct run *r, const void *stream, size_t len, size_t chunk, unsigned opts)
{
    feed_cut(r, stream, len, 0, chunk, opts);
}

/* Every kind of reply, pages 1 and 3 as values, one value dropped. */
static size_t all_replies(uint8_t *out)
{
    size_t n = 0;
#define ADD(s) (memcpy(out + n, s, sizeof s - 1), n += sizeof s - 1)
#define ADDPAGE(byte)                                         \
    do {                                                      \
        memset(out + n, byte, PAGE);                          \
        out[n] = '\r'; /* data may hold CR and LF anywhere */ \
        out[n + 1] = '\n';                                    \
        n += PAGE;                                            \
        ADD("\r\n");                                          \
    } while (0)
    ADD("HD\r\n");
    ADD("HD O5 c77\r\n");
    ADD("VA 4096 O1\r\n");
    ADDPAGE(0x11);
    ADD("EN\r\n");
    ADD("NF O2\r\n");
    ADD("NS\r\n");
    ADD("EX O9\r\n");
    ADD("VA 4096 c18446744073709551615 O3 k0 s4096 f0 t-1 W X Z\r\n");
    ADDPAGE(0x33);
    ADD("VA 4096 O100\r\n"); /* nobody's page: dropped */
    ADDPAGE(0x55);
    ADD("MN\r\n");
    ADD("ERROR\r\n");
    ADD("CLIENT_ERROR bad command line format\r\n");
    ADD("SERVER_ERROR out of memory storing object\r\n");
    ADD("SERVER_ERROR\r\n");
    return n;
}

static void check_all_replies(const struct run *r)
{
    static const enum remoca_mc_kind kinds[] = {
        REMOCA_MC_HD,           REMOCA_MC_HD,    REMOCA_MC_VA,           REMOCA_MC_VALUE,
        REMOCA_MC_EN,           REMOCA_MC_NF,    REMOCA_MC_NS,           REMOCA_MC_EX,
        REMOCA_MC_VA,           REMOCA_MC_VALUE, REMOCA_MC_VA,           REMOCA_MC_VALUE,
        REMOCA_MC_MN,           REMOCA_MC_ERROR, REMOCA_MC_CLIENT_ERROR, REMOCA_MC_SERVER_ERROR,
        REMOCA_MC_SERVER_ERROR,
    };
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->nev, sizeof kinds / sizeof kinds[0]);
    for (int i = 0; i < r->nev; i++) assert_int_equal(r->ev[i].kind, kinds[i]);
    assert_int_equal(r->ev[0].has, 0);
    assert_int_equal(r->ev[1].has, REMOCA_MC_R_OPAQUE | REMOCA_MC_R_CAS);
    assert_int_equal(r->ev[1].opaque, 5);
    assert_int_equal(r->ev[1].cas, 77);
    assert_int_equal(r->ev[2].size, PAGE);
    assert_int_equal(r->ev[3].opaque, 1);
    assert_true(r->ev[3].stored);
    assert_int_equal(r->ev[5].opaque, 2);
    assert_int_equal(r->ev[7].opaque, 9);
    assert_int_equal(r->ev[9].has, REMOCA_MC_R_OPAQUE | REMOCA_MC_R_CAS | REMOCA_MC_R_WIN |
                                       REMOCA_MC_R_STALE | REMOCA_MC_R_WON);
    assert_true(r->ev[9].cas == UINT64_MAX);
    assert_int_equal(r->ev[9].opaque, 3);
    assert_int_equal(r->ev[11].opaque, 100);
    assert_false(r->ev[11].stored);
    assert_string_equal(r->ev[13].msg, "");
    assert_string_equal(r->ev[14].msg, "bad command line format");
    assert_string_equal(r->ev[15].msg, "out of memory storing object");
    assert_string_equal(r->ev[16].msg, "");
    /* The pages, exactly, and not a byte beyond them. */
    for (int pg = 0; pg < NPAGES; pg++) {
        const uint8_t *d = r->pages[pg];
        uint8_t fill = pg == 1 ? 0x11 : pg == 3 ? 0x33 : 0xee;
        uint8_t want[PAGE + 64];
        memset(want, fill, PAGE);
        memset(want + PAGE, 0xee, 64);
        if (pg == 1 || pg == 3) want[0] = '\r', want[1] = '\n';
        assert_memory_equal(d, want, sizeof want);
    }
}

static void every_reply(void **state)
{
    static uint8_t stream[5 * (PAGE + 100)];
    static struct run r;
    size_t n = all_replies(stream);
    feed(&r, stream, n, 0, 0);
    check_all_replies(&r);
}

static void split_everywhere(void **state)
{
    static uint8_t stream[5 * (PAGE + 100)];
    static struct run r;
    size_t n = all_replies(stream);
    /* Two chunks, cut at every byte boundary... */
    for (size_t cut = 1; cut < n; cut++) {
        feed_cut(&r, stream, n, cut, 0, 0);
        check_all_replies(&r);
    }
    /* ...and one byte at a time. */
    feed(&r, stream, n, 1, 0);
    check_all_replies(&r);
}

static void numbers(void **state)
{
    static struct run r;
    const char s[] = "VA 12 O9\r\n123456789012\r\nVA 20\r\n18446744073709551615\r\nVA 1\r\n0\r\n";
    for (size_t chunk = 0; chunk < 6; chunk++) {
        feed(&r, s, sizeof s - 1, chunk, REMOCA_MC_P_NUMBERS);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.nev, 6);
        assert_int_equal(r.ev[1].kind, REMOCA_MC_VALUE);
        assert_true(r.ev[1].stored);
        assert_int_equal(r.ev[1].opaque, 9);
        assert_true(r.ev[1].number == 123456789012ull);
        assert_true(r.ev[3].number == UINT64_MAX);
        assert_true(r.ev[5].number == 0);
    }
    /* Without the option, a value is a page or an error. */
    feed(&r, s, sizeof s - 1, 0, 0);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.err, REMOCA_MC_E_SIZE);
    /* Not a number, or too big for 64 bits. */
    const char *bad[] = {"VA 3\r\n12a\r\n", "VA 20\r\n18446744073709551616\r\n", "VA 2\r\n-1\r\n",
                         "VA 21\r\n000000000000000000001\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        feed(&r, bad[i], strlen(bad[i]), 0, REMOCA_MC_P_NUMBERS);
        assert_int_equal(r.rc, -1);
        assert_true(r.err == REMOCA_MC_E_NUMBER || r.err == REMOCA_MC_E_SIZE);
    }
}

/* Parses all of in (one event expected per call) into ev[]; the count, or -1. */
static int parse_all(struct remoca_mc_parser *p, const uint8_t *in, size_t len, uint8_t *dest,
                     size_t cap, struct remoca_mc_event *ev, int max)
{
    int n = 0;
    size_t off = 0;
    while (off < len && n < max) {
        size_t used;
        int r = remoca_mc_parse(p, in + off, len - off, &used, &ev[n]);
        off += used;
        if (r < 0) return -1;
        if (r == 0) continue;
        if (ev[n].kind == REMOCA_MC_VA && dest && remoca_mc_parser_dest(p, dest, cap) < 0)
            return -1;
        n++;
    }
    return n;
}

/* REMOCA_MC_P_SEALED: values of 1..4128 bytes (page || sidecar, or a wrong
 * length the client drops as a miss); larger is an error; without the
 * option 4128 bytes is an error too. */
static void sealed_values(void **state)
{
    static uint8_t in[2 * 4200], dest[REMOCA_MC_SEALED_VALUE_SIZE];
    struct remoca_mc_event ev[4];
    struct remoca_mc_parser p;
    int l = snprintf((char *)in, sizeof in, "VA 4128 O7\r\n");
    for (unsigned i = 0; i < REMOCA_MC_SEALED_VALUE_SIZE; i++) in[l + i] = (uint8_t)(i * 7);
    size_t len = (size_t)l + REMOCA_MC_SEALED_VALUE_SIZE;
    memcpy(in + len, "\r\n", 2);
    len += 2;
    remoca_mc_parser_init(&p, REMOCA_MC_P_SEALED);
    assert_int_equal(parse_all(&p, in, len, dest, sizeof dest, ev, 4), 2);
    assert_int_equal(ev[0].kind, REMOCA_MC_VA);
    assert_int_equal(ev[0].size, REMOCA_MC_SEALED_VALUE_SIZE);
    assert_int_equal(ev[0].opaque, 7);
    assert_int_equal(ev[1].kind, REMOCA_MC_VALUE);
    assert_true(ev[1].stored);
    assert_memory_equal(dest, in + l, REMOCA_MC_SEALED_VALUE_SIZE);

    remoca_mc_parser_init(&p, 0);
    assert_int_equal(parse_all(&p, in, len, dest, sizeof dest, ev, 4), -1);
    assert_int_equal(p.err, REMOCA_MC_E_SIZE);

    static const char small[] = "VA 5\r\nabcde\r\nVA 4096\r\n";
    remoca_mc_parser_init(&p, REMOCA_MC_P_SEALED);
    assert_int_equal(parse_all(&p, (const uint8_t *)small, sizeof small - 1, NULL, 0, ev, 4), 3);
    assert_int_equal(ev[0].size, 5);
    assert_false(ev[1].stored); /* no destination: dropped */
    assert_int_equal(ev[2].size, 4096);

    static const char big[] = "VA 4129\r\n";
    remoca_mc_parser_init(&p, REMOCA_MC_P_SEALED);
    assert_int_equal(parse_all(&p, (const uint8_t *)big, sizeof big - 1, NULL, 0, ev, 4), -1);
    assert_int_equal(p.err, REMOCA_MC_E_SIZE);
}

static void expect_error(const char *s, size_t len, enum remoca_mc_err err)
{
    static struct run r;
    feed(&r, s, len, 0, 0);
    if (r.rc != -1 || r.err != err) fail_msg("'%.40s': rc %d err %d, want %d", s, r.rc, r.err, err);
    feed(&r, s, len, 1, 0);
    if (r.rc != -1 || r.err != err)
        fail_msg("'%.40s' byte by byte: rc %d err %d, want %d", s, r.rc, r.err, err);
}
#define BAD(s, err) expect_error(s, sizeof s - 1, err)

static void hostile(void **state)
{
    BAD("VA 4095 O1\r\n", REMOCA_MC_E_SIZE);
    BAD("VA 4097 O1\r\n", REMOCA_MC_E_SIZE);
    BAD("VA 0\r\n\r\n", REMOCA_MC_E_SIZE);
    BAD("VA 1048576\r\n", REMOCA_MC_E_SIZE);
    BAD("VA 4294967296\r\n", REMOCA_MC_E_NUMBER);
    BAD("VA 99999999999999999999999\r\n", REMOCA_MC_E_NUMBER);
    BAD("VA -1\r\n", REMOCA_MC_E_NUMBER);
    BAD("VA\r\n", REMOCA_MC_E_NUMBER);
    BAD("VA 4096x\r\n", REMOCA_MC_E_NUMBER);
    BAD("HD O4294967296\r\n", REMOCA_MC_E_NUMBER);
    BAD("HD O\r\n", REMOCA_MC_E_NUMBER);
    BAD("HD Oabc\r\n", REMOCA_MC_E_NUMBER);
    BAD("HD c18446744073709551616\r\n", REMOCA_MC_E_NUMBER);
    BAD("HD 5\r\n", REMOCA_MC_E_FLAG);
    BAD("HD WX\r\n", REMOCA_MC_E_FLAG);
    BAD("MN O1\r\n", REMOCA_MC_E_CODE);
    BAD("XX\r\n", REMOCA_MC_E_CODE);
    BAD("\r\n", REMOCA_MC_E_CODE);
    BAD("hd\r\n", REMOCA_MC_E_CODE);
    BAD("VALUE k 0 4096\r\n", REMOCA_MC_E_CODE);
    BAD("END\r\n", REMOCA_MC_E_CODE);
    BAD("HD\n", REMOCA_MC_E_CRLF);
    BAD("\n", REMOCA_MC_E_CRLF);
    BAD("HD\rO1\r\n", REMOCA_MC_E_BYTE);
    BAD("HD \x01\r\n", REMOCA_MC_E_BYTE);
    BAD("SERVER_ERROR \xff\r\n", REMOCA_MC_E_BYTE);
    BAD("HD\0\r\n", REMOCA_MC_E_BYTE);

    /* A line of exactly REMOCA_MC_LINE_MAX bytes is fine; one more is not,
     * and is refused before its end arrives. */
    static char line[REMOCA_MC_LINE_MAX + 8];
    memset(line, 'x', sizeof line);
    memcpy(line, "SERVER_ERROR ", 13);
    memcpy(line + REMOCA_MC_LINE_MAX - 2, "\r\n", 2);
    static struct run r;
    feed(&r, line, REMOCA_MC_LINE_MAX, 0, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nev, 1);
    assert_int_equal(strlen(r.ev[0].msg), REMOCA_MC_MSG_MAX);
    memset(line + REMOCA_MC_LINE_MAX - 2, 'x', 2);
    expect_error(line, REMOCA_MC_LINE_MAX + 1, REMOCA_MC_E_LINE); /* no newline yet */

    /* A value not followed by CRLF; the data beyond the page never lands. */
    static uint8_t s[PAGE + 64];
    size_t n = 0;
    memcpy(s, "VA 4096 O0\r\n", 12);
    n = 12;
    memset(s + n, 'd', PAGE + 2);
    n += PAGE + 2;
    feed(&r, s, n, 0, 0);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.err, REMOCA_MC_E_CRLF);
    for (size_t i = 0; i < PAGE; i++) assert_int_equal(r.pages[0][i], 'd');
    for (size_t i = PAGE; i < PAGE + 64; i++) assert_int_equal(r.pages[0][i], 0xee);
    s[12 + PAGE] = '\r';
    feed(&r, s, n, 0, 0); /* "\rd" */
    assert_int_equal(r.err, REMOCA_MC_E_CRLF);
}

static void dest_rules(void **state)
{
    struct remoca_mc_parser p;
    struct remoca_mc_event ev;
    size_t used;
    static uint8_t page[PAGE];

    /* A destination smaller than the value is refused, and that is fatal. */
    remoca_mc_parser_init(&p, 0);
    assert_int_equal(remoca_mc_parse(&p, "VA 4096\r\n", 9, &used, &ev), 1);
    assert_int_equal(used, 9);
    assert_int_equal(remoca_mc_parser_dest(&p, page, PAGE - 1), -1);
    assert_int_equal(p.err, REMOCA_MC_E_SIZE);
    assert_int_equal(remoca_mc_parse(&p, "x", 1, &used, &ev), -1);

    /* Outside a value (or after its first byte) there is no destination to give. */
    remoca_mc_parser_init(&p, 0);
    assert_int_equal(remoca_mc_parser_dest(&p, page, PAGE), -1);
    assert_int_equal(p.err, REMOCA_MC_E_STATE);
    remoca_mc_parser_init(&p, 0);
    assert_int_equal(remoca_mc_parse(&p, "VA 4096\r\nab", 11, &used, &ev), 1);
    assert_int_equal(used, 9); /* stops after the event */
    assert_int_equal(remoca_mc_parse(&p, "ab", 2, &used, &ev), 0);
    assert_int_equal(remoca_mc_parser_dest(&p, page, PAGE), -1);

    /* One event per call: the bytes after it are left for the next call. */
    remoca_mc_parser_init(&p, 0);
    assert_int_equal(remoca_mc_parse(&p, "HD\r\nEN\r\nMN\r\n", 12, &used, &ev), 1);
    assert_int_equal(used, 4);
    assert_int_equal(ev.kind, REMOCA_MC_HD);
    assert_int_equal(remoca_mc_parse(&p, "EN\r\nMN\r\n", 8, &used, &ev), 1);
    assert_int_equal(ev.kind, REMOCA_MC_EN);
    assert_int_equal(remoca_mc_parse(&p, "MN", 2, &used, &ev), 0);
    assert_int_equal(remoca_mc_parse(&p, "\r\n", 2, &used, &ev), 1);
    assert_int_equal(ev.kind, REMOCA_MC_MN);
    assert_string_equal(remoca_mc_kind_name(REMOCA_MC_EX), "EX");
    assert_string_equal(remoca_mc_kind_name((enum remoca_mc_kind)99), "unknown");
}

/* Garbage from a fixed-seed generator never crashes the parser or writes
 * past a page (ASan build), and any error comes with a message. */
static void garbage(void **state)
{
    static uint8_t buf[8192];
    static uint8_t page[PAGE];
    uint64_t x = 88172645463325252ull;
    const char *alphabet = "VAHDENFSXMO0123456789 \r\n\x01zc4096";
    size_t alen = strlen(alphabet);
    for (int round = 0; round < 2000; round++) {
        size_t n = 0;
        size_t len = 1 + round % 200;
        for (; n < len; n++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[n] = (uint8_t)alphabet[x % alen];
        }
        struct remoca_mc_parser p;
        remoca_mc_parser_init(&p, round & 1 ? REMOCA_MC_P_NUMBERS : 0);
        size_t off = 0, used;
        struct remoca_mc_event ev;
        int rc = 0;
        while (off < n && rc >= 0) {
            rc = remoca_mc_parse(&p, buf + off, n - off, &used, &ev);
            off += used;
            if (rc == 1 && ev.kind == REMOCA_MC_VA && ev.size == PAGE)
                assert_int_equal(remoca_mc_parser_dest(&p, page, sizeof page), 0);
        }
        if (rc < 0) assert_true(strlen(remoca_mc_parser_error(&p)) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys),
        cmocka_unit_test(key_ok),
        cmocka_unit_test(builders),
        cmocka_unit_test(sealed_values),
        cmocka_unit_test(get_batch),
        cmocka_unit_test(every_reply),
        cmocka_unit_test(split_everywhere),
        cmocka_unit_test(numbers),
        cmocka_unit_test(hostile),
        cmocka_unit_test(dest_rules),
        cmocka_unit_test(garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
