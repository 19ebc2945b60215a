/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd_checker: a concurrency and staleness checker for an NBD export.
 *
 *   nbd_checker --uri URI --init FILE [--conns N] [--ops N] [--seed S]
 *               [--max-len BYTES] [--trim-unknown] [--progress FILE] [--model-out FILE]
 *
 * N threads, one libnbd connection each, issue random reads, writes, trims
 * and zeroes (aligned and unaligned, some with FUA, an occasional flush) for
 * a bounded number of operations.  A shared byte-exact model of the disk,
 * initialised from FILE (the disk the server exports), predicts every read:
 *
 *   model[]   bytes of the disk as the acknowledged operations left them
 *   known[]   0 for bytes whose content is unspecified (trimmed, with
 *             --trim-unknown); such bytes are learned on the next read
 *   inflight  ranges of the operations in progress: a thread picks a range
 *             that overlaps none of them, so operations in flight never
 *             overlap (bytes), but they do share 4 KiB blocks and cross
 *             connections: a read on one connection checks another's writes.
 *
 * Every read byte must equal the model: a stale or wrong byte is reported
 * with its offset and the run fails.  Any error returned by the server fails
 * the run too (the remote tier must never cause one).  At the end the model
 * is written to --model-out, to be compared with the disk file.
 * Exit status 0 = no wrong byte, no error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#define MAXCONN 64

static const char *uri, *init_file, *progress_file, *model_out;
static unsigned nconns = 4, max_len = 131072;
static uint64_t nops = 2000, seed = 1;
static bool trim_unknown;

static uint64_t size;
static unsigned char *model, *known;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct {
    uint64_t off, len;
    bool used;
} inflight[MAXCONN];
static atomic_uint_fast64_t done_ops, wrong_bytes, errors, bytes_checked;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool overlaps(uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < nconns; i++)
        if (inflight[i].used && off < inflight[i].off + inflight[i].len &&
            inflight[i].off < off + len)
            return true;
    return false;
}

/* Reserves [off, off+len) for thread id, waiting while it overlaps. */
static void reserve(unsigned id, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&lock);
    while (overlaps(off, len)) pthread_cond_wait(&cond, &lock);
    inflight[id].off = off;
    inflight[id].len = len;
    inflight[id].used = true;
    pthread_mutex_unlock(&lock);
}

static void release(unsigned id)
{
    pthread_mutex_lock(&lock);
    inflight[id].used = false;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void check_read(unsigned id, const unsigned char *buf, uint64_t off, uint64_t len)
{
    /* The range is reserved by this thread: the model cannot change under us. */
    uint64_t bad = 0, first = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (!known[off + i]) {
            model[off + i] = buf[i];
            known[off + i] = 1;
        } else if (model[off + i] != buf[i]) {
            if (!bad) first = off + i;
            bad++;
        }
    }
    atomic_fetch_add(&bytes_checked, len);
    if (bad) {
        fprintf(stderr,
                "nbd_checker: conn %u: WRONG BYTES: read [%" PRIu64 ", +%" PRIu64 "): %" PRIu64
                " bytes differ, first at %" PRIu64 " (block %" PRIu64 "): got 0x%02x want 0x%02x\n",
                id, off, len, bad, first, first / 4096, buf[first - off], model[first]);
        atomic_fetch_add(&wrong_bytes, bad);
    }
}

static void report_error(unsigned id, const char *what, uint64_t off, uint64_t len)
{
    fprintf(stderr, "nbd_checker: conn %u: %s [%" PRIu64 ", +%" PRIu64 ") failed: %s\n", id, what,
            off, len, nbd_get_error());
    atomic_fetch_add(&errors, 1);
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + id * 7919 + 1;
    unsigned char *buf = malloc(max_len);
    struct nbd_handle *h = nbd_create();
    if (!h || nbd_connect_uri(h, uri) == -1) {
        fprintf(stderr, "nbd_checker: conn %u: connect %s: %s\n", id, uri, nbd_get_error());
        atomic_fetch_add(&errors, 1);
        free(buf);
        if (h) nbd_close(h);
        return NULL;
    }
    bool can_trim = nbd_can_trim(h) == 1, can_zero = nbd_can_zero(h) == 1,
         can_fua = nbd_can_fua(h) == 1;
    for (uint64_t n = 0; n < nops; n++) {
        uint64_t r = next_rand(&s);
        uint64_t len = next_rand(&s) % max_len + 1, off;
        if (r % 2) { /* aligned */
            len = (len + 4095) & ~4095ull;
            if (len > max_len) len = max_len & ~4095ull;
            off = (next_rand(&s) % (size / 4096 + 1)) * 4096;
        } else {
            off = next_rand(&s) % size;
        }
        if (off >= size) off = size - 1;
        if (off + len > size) len = size - off;
        unsigned kind = (unsigned)((r >> 8) % 100);
        uint32_t fua = can_fua && (r >> 20) % 8 == 0 ? LIBNBD_CMD_FLAG_FUA : 0;
        reserve(id, off, len);
        if (kind < 55) {
            if (nbd_pread(h, buf, len, off, 0) == -1)
                report_error(id, "read", off, len);
            else
                check_read(id, buf, off, len);
        } else if (kind < 85 || (!can_trim && !can_zero)) {
            for (uint64_t i = 0; i < len; i++) buf[i] = (unsigned char)next_rand(&s);
            if (nbd_pwrite(h, buf, len, off, fua) == -1) {
                report_error(id, "write", off, len);
            } else {
                memcpy(model + off, buf, len);
                memset(known + off, 1, len);
            }
        } else if (kind < 93 && can_zero) {
            if (nbd_zero(h, len, off, fua) == -1) {
                report_error(id, "zero", off, len);
            } else {
                memset(model + off, 0, len);
                memset(known + off, 1, len);
            }
        } else if (can_trim) {
            if (nbd_trim(h, len, off, fua) == -1) {
                report_error(id, "trim", off, len);
            } else {
                memset(model + off, 0, len);
                memset(known + off, trim_unknown ? 0 : 1, len);
            }
        }
        release(id);
        if ((r >> 30) % 64 == 0 && nbd_flush(h, 0) == -1) report_error(id, "flush", 0, 0);
        uint64_t d = atomic_fetch_add(&done_ops, 1) + 1;
        if (progress_file && d % 100 == 0) {
            /* written aside and renamed: a reader never sees the file empty */
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.%u", progress_file, id);
            FILE *f = fopen(tmp, "w");
            if (f) {
                fprintf(f, "%" PRIu64 "\n", d);
                if (fclose(f) == 0) rename(tmp, progress_file);
            }
        }
    }
    nbd_shutdown(h, 0);
    nbd_close(h);
    free(buf);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: nbd_checker --uri URI --init FILE [--conns N] [--ops N] [--seed S]\n"
            "       [--max-len BYTES] [--trim-unknown] [--progress FILE] [--model-out FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--trim-unknown")) {
            trim_unknown = true;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--uri"))
            uri = v;
        else if (!strcmp(a, "--init"))
            init_file = v;
        else if (!strcmp(a, "--conns"))
            nconns = (unsigned)atoi(v);
        else if (!strcmp(a, "--ops"))
            nops = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max-len"))
            max_len = (unsigned)atoi(v);
        else if (!strcmp(a, "--progress"))
            progress_file = v;
        else if (!strcmp(a, "--model-out"))
            model_out = v;
        else
            usage();
    }
    if (!uri || !init_file || nconns < 1 || nconns > MAXCONN || max_len < 4096) usage();

    FILE *f = fopen(init_file, "rb");
    if (!f || fseek(f, 0, SEEK_END) || (size = (uint64_t)ftell(f)) == 0) {
        fprintf(stderr, "nbd_checker: %s: cannot read\n", init_file);
        return 2;
    }
    rewind(f);
    model = malloc(size);
    known = malloc(size);
    if (!model || !known || fread(model, 1, size, f) != size) {
        fprintf(stderr, "nbd_checker: %s: short read\n", init_file);
        return 2;
    }
    fclose(f);
    memset(known, 1, size);

    pthread_t th[MAXCONN];
    for (unsigned i = 0; i < nconns; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < nconns; i++) pthread_join(th[i], NULL);

    /* Final pass on a fresh connection: every byte of the disk. */
    struct nbd_handle *h = nbd_create();
    unsigned char *buf = malloc(1 << 20);
    if (!h || nbd_connect_uri(h, uri) == -1) {
        fprintf(stderr, "nbd_checker: final connect: %s\n", nbd_get_error());
        atomic_fetch_add(&errors, 1);
    } else {
        for (int pass = 0; pass < 2; pass++)
            for (uint64_t off = 0; off < size; off += 1 << 20) {
                uint64_t len = size - off < (1 << 20) ? size - off : (1 << 20);
                if (nbd_pread(h, buf, len, off, 0) == -1)
                    report_error(99, "final read", off, len);
                else
                    check_read(99, buf, off, len);
            }
        nbd_shutdown(h, 0);
        nbd_close(h);
    }
    if (model_out) {
        FILE *o = fopen(model_out, "wb");
        if (!o || fwrite(model, 1, size, o) != size || fclose(o)) {
            fprintf(stderr, "nbd_checker: %s: write failed\n", model_out);
            return 2;
        }
    }
    printf("nbd_checker: conns=%u ops=%" PRIu64 " bytes_checked=%" PRIu64 " wrong_bytes=%" PRIu64
           " errors=%" PRIu64 "\n",
           nconns, (uint64_t)done_ops, (uint64_t)bytes_checked, (uint64_t)wrong_bytes,
           (uint64_t)errors);
    free(buf);
    return wrong_bytes || errors ? 1 : 0;
}
