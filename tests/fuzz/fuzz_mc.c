/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the memcached meta protocol codec (lib/wire/mc.c): any bytes as a
 * server's stream, fed whole and again in chunks whose sizes come from the
 * input, must give the same events and the same error, never write past the
 * page a VA's data goes to (an exact-size heap buffer, under ASan), and never
 * report a value of a size it was not allowed to accept (with
 * REMOCA_MC_P_SEALED: 1..4128 bytes, each written to a destination of
 * exactly its size at the end of the buffer).  The same bytes as a
 * key: decoding then encoding gives them back, and the builders never write
 * past their buffer. */
#include "remoca/mc.h"

#include <stdlib.h>
#include <string.h>

#define MAXEV 256

struct trace {
    struct remoca_mc_event ev[MAXEV];
    char msg[MAXEV][REMOCA_MC_MSG_MAX + 1];
    int nev;
    int rc;
    enum remoca_mc_err err;
    uint8_t sum[MAXEV]; /* a byte of each VALUE's data, to compare */
};

/* Feeds data in chunks: chunk sizes cycle through sizes[] (0 = the rest). */
static void run(struct trace *t, const uint8_t *data, size_t size, unsigned opts,
                const uint8_t *sizes, size_t nsizes, uint8_t *page)
{
    struct remoca_mc_parser p;
    remoca_mc_parser_init(&p, opts);
    memset(t, 0, sizeof *t);
    uint8_t *dest = page; /* where the last value with a destination went */
    size_t off = 0, k = 0;
    while (off < size && t->nev < MAXEV) {
        size_t chunk = nsizes ? sizes[k++ % nsizes] : 0;
        size_t end = chunk && off + chunk < size ? off + chunk : size;
        while (off < end && t->nev < MAXEV) {
            size_t used;
            struct remoca_mc_event ev;
            int rc = remoca_mc_parse(&p, data + off, end - off, &used, &ev);
            if (used > end - off) abort();
            off += used;
            if (rc < 0) {
                if (p.err == REMOCA_MC_OK || !remoca_mc_parser_error(&p)[0]) abort();
                if (remoca_mc_parse(&p, data, size, &used, &ev) != -1 || used != 0) abort();
                t->rc = -1;
                t->err = p.err;
                return;
            }
            if (rc == 0) {
                if (off != end || ev.kind != REMOCA_MC_NONE) abort();
                continue;
            }
            bool number = (opts & REMOCA_MC_P_NUMBERS) && ev.size >= 1 && ev.size <= 20;
            bool sized = ev.size == REMOCA_MC_VALUE_SIZE ||
                         ((opts & REMOCA_MC_P_SEALED) && ev.size >= 1 &&
                          ev.size <= REMOCA_MC_SEALED_VALUE_SIZE && !number);
            if ((ev.kind == REMOCA_MC_VA || ev.kind == REMOCA_MC_VALUE) && !sized && !number)
                abort();
            if (ev.kind == REMOCA_MC_VA && sized && (ev.opaque & 1)) {
                dest = page + REMOCA_MC_SEALED_VALUE_SIZE - ev.size; /* ends at the buffer's end */
                memset(dest, 0, ev.size);
                if (remoca_mc_parser_dest(&p, dest, ev.size) != 0) abort();
            }
            if (ev.kind == REMOCA_MC_VALUE && sized && ev.stored)
                t->sum[t->nev] = dest[0] ^ dest[ev.size - 1];
            if (ev.msg) {
                if (strlen(ev.msg) > REMOCA_MC_MSG_MAX) abort();
                strcpy(t->msg[t->nev], ev.msg);
                ev.msg = NULL;
            }
            t->ev[t->nev++] = ev;
        }
    }
}

static void same(const struct trace *a, const struct trace *b)
{
    if (a->rc != b->rc || a->err != b->err) abort();
    int n = a->nev < b->nev ? a->nev : b->nev; /* a run may stop at MAXEV */
    for (int i = 0; i < n; i++) {
        const struct remoca_mc_event *x = &a->ev[i], *y = &b->ev[i];
        if (x->kind != y->kind || x->has != y->has || x->opaque != y->opaque || x->cas != y->cas ||
            x->size != y->size || x->stored != y->stored || x->number != y->number)
            abort();
        if (strcmp(a->msg[i], b->msg[i]) != 0 || a->sum[i] != b->sum[i]) abort();
    }
}

static void keys_and_builders(const uint8_t *data, size_t size)
{
    struct remoca_mc_ns ns;
    uint64_t block;
    if (remoca_mc_key_decode((const char *)data, size, &ns, &block) == 0) {
        char k[REMOCA_MC_KEY_LEN];
        size_t n = remoca_mc_key(k, sizeof k, &ns, block);
        if (n != size || memcmp(k, data, n) != 0) abort();
        if (!remoca_mc_key_ok(k, n)) abort();
    }
    size_t klen = size > 300 ? 300 : size;
    struct remoca_mc_cmd c = {.key = (const char *)data,
                              .key_len = klen,
                              .flags = size ? data[0] & 0x3f : 0,
                              .opaque = size > 1 ? data[1] : 0,
                              .cas = size,
                              .initial = klen,
                              .delta = size & 3};
    size_t cap = size > 2 ? data[2] + 64u : REMOCA_MC_CMD_MAX;
    char *out = malloc(cap); /* exact size: ASan sees one byte too far */
    if (!out) return;
    size_t r[5];
    for (int i = 0; i < 5; i++) {
        r[i] = i == 0   ? remoca_mc_mg(out, cap, &c)
               : i == 1 ? remoca_mc_ms(out, cap, &c, (uint32_t)size)
               : i == 2 ? remoca_mc_md(out, cap, &c)
               : i == 3 ? remoca_mc_ma(out, cap, &c)
                        : remoca_mc_mn(out, cap);
        if (r[i] > cap || r[i] > REMOCA_MC_CMD_MAX) abort();
        if (r[i] && (out[r[i] - 2] != '\r' || out[r[i] - 1] != '\n')) abort();
    }
    if (r[0] && !remoca_mc_key_ok(c.key, c.key_len)) abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace whole, cut;
    keys_and_builders(data, size);
    if (size < 4) return 0;
    unsigned opts =
        (data[0] & 1 ? REMOCA_MC_P_NUMBERS : 0) | (data[0] & 2 ? REMOCA_MC_P_SEALED : 0);
    size_t nsizes = (data[1] & 7) + 1;
    const uint8_t *sizes = data + 2;
    if (nsizes > size - 2) nsizes = size - 2;
    data += 2 + nsizes;
    size -= 2 + nsizes;
    uint8_t *page = malloc(REMOCA_MC_SEALED_VALUE_SIZE); /* exact: ASan sees one byte too far */
    if (!page) return 0;
    run(&whole, data, size, opts, NULL, 0, page);
    run(&cut, data, size, opts, sizes, nsizes, page);
    same(&whole, &cut);
    free(page);
    return 0;
}
