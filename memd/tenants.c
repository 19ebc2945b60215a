/* SPDX-License-Identifier: BSD-3-Clause */
/* The tenants file (see tenants.h for the syntax and the rules): a strict
 * parser, since a typo in a cap or a prefix is a security problem, not a
 * detail: every unknown word, repeated key, bad size or overlapping prefix
 * stops the server with FILE:LINE. */
#include "tenants.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remoca/size.h"

#define TENANTS_FILE_MAX (1u << 20)

struct line {
    const char *fname;
    unsigned no;
    char *err;
    size_t errcap;
};

static int fail(const struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const struct line *l, const char *fmt, ...)
{
    int n = snprintf(l->err, l->errcap, "%s:%u: ", l->fname, l->no);
    if (n < 0 || (size_t)n >= l->errcap) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err + n, l->errcap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof((struct tenant_acct *)0)->name) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* A SIZE value (NUL-terminated copy of the token's value). */
static int size_of(const struct line *l, const char *key, const char *v, size_t vn, uint64_t *out)
{
    char buf[64];
    if (vn == 0 || vn >= sizeof buf) return fail(l, "%s=: expected a size such as 64M or 2G", key);
    memcpy(buf, v, vn);
    buf[vn] = 0;
    if (parse_size(buf, out) < 0)
        return fail(l, "%s=%s: expected a size such as 64M or 2G", key, buf);
    return 0;
}

static void tenant_clear(struct tenant *t)
{
    for (unsigned k = 0; k < t->nprefix; k++) free(t->prefix[k]);
    memset(t, 0, sizeof *t);
}

/* Adds PREFIX[,PREFIX...] to t. */
static int prefixes(const struct line *l, struct tenant *t, const char *v, size_t vn)
{
    size_t i = 0;
    if (vn == 0) return fail(l, "pools=: expected PREFIX[,PREFIX...]");
    while (i <= vn) {
        size_t j = i;
        while (j < vn && v[j] != ',') j++;
        if (j == i) return fail(l, "pools=: empty prefix");
        if (j - i > REMOCA_MAX_NAME)
            return fail(l, "pools=: a prefix is at most %u bytes", REMOCA_MAX_NAME);
        if (t->nprefix == TENANT_MAX_PREFIXES)
            return fail(l, "pools=: at most %u prefixes", TENANT_MAX_PREFIXES);
        char *p = malloc(j - i + 1);
        if (!p) return fail(l, "out of memory");
        memcpy(p, v + i, j - i);
        p[j - i] = 0;
        t->prefix_len[t->nprefix] = j - i;
        t->prefix[t->nprefix++] = p;
        i = j + 1;
    }
    return 0;
}

/* One "tenant ..." line, already split into tokens tok[0..ntok). */
static int tenant_line(const struct line *l, struct tenant *t, const char **tok, const size_t *tlen,
                       unsigned ntok)
{
    bool seen_secret = false, seen_pools = false, seen_memory = false, seen_min = false,
         seen_conns = false, seen_stats = false;
    uint64_t memory = 0, min = 0;
    if (ntok < 2) return fail(l, "'tenant' needs a NAME");
    if (!name_ok(tok[1], tlen[1]))
        return fail(l, "tenant name '%.*s': expected 1..%zu of A-Z a-z 0-9 . _ -",
                    (int)(tlen[1] > 64 ? 64 : tlen[1]), tok[1], sizeof t->acct.name - 1);
    memcpy(t->acct.name, tok[1], tlen[1]);
    for (unsigned k = 2; k < ntok; k++) {
        const char *eq = memchr(tok[k], '=', tlen[k]);
        if (!eq)
            return fail(l, "'%.*s': expected KEY=VALUE (secret, pools, memory, min, conns)",
                        (int)(tlen[k] > 64 ? 64 : tlen[k]), tok[k]);
        size_t kn = (size_t)(eq - tok[k]), vn = tlen[k] - kn - 1;
        const char *v = eq + 1;
#define KEY(s) (kn == sizeof s - 1 && !memcmp(tok[k], s, kn))
#define ONCE(flag, s)                                   \
    do {                                                \
        if (flag) return fail(l, "%s= given twice", s); \
        flag = true;                                    \
    } while (0)
        if (KEY("secret")) {
            ONCE(seen_secret, "secret");
            if (vn == 0 || vn > sizeof t->auth.secret)
                return fail(l, "secret=: 1 to %zu bytes", sizeof t->auth.secret);
            memcpy(t->auth.secret, v, vn);
            t->auth.len = vn;
        } else if (KEY("pools")) {
            ONCE(seen_pools, "pools");
            if (prefixes(l, t, v, vn) < 0) return -1;
        } else if (KEY("memory")) {
            ONCE(seen_memory, "memory");
            if (size_of(l, "memory", v, vn, &memory) < 0) return -1;
            if (memory < REMOCA_PAGE_SIZE) return fail(l, "memory=: at least 4K");
        } else if (KEY("min")) {
            ONCE(seen_min, "min");
            if (size_of(l, "min", v, vn, &min) < 0) return -1;
        } else if (KEY("conns")) {
            ONCE(seen_conns, "conns");
            char buf[16];
            char *end;
            if (vn == 0 || vn >= sizeof buf)
                return fail(l, "conns=: expected 1..%u", TENANT_MAX_CONNS);
            memcpy(buf, v, vn);
            buf[vn] = 0;
            errno = 0;
            unsigned long n = strtoul(buf, &end, 10);
            if (errno || *end || buf[0] < '0' || buf[0] > '9' || n < 1 || n > TENANT_MAX_CONNS)
                return fail(l, "conns=%s: expected 1..%u", buf, TENANT_MAX_CONNS);
            t->acct.max_conns = (uint32_t)n;
        } else if (KEY("stats")) {
            ONCE(seen_stats, "stats");
            if (vn == 3 && !memcmp(v, "all", 3))
                t->stats_all = true;
            else if (vn != 3 || memcmp(v, "own", 3))
                return fail(l, "stats=%.*s: expected own or all", (int)(vn > 64 ? 64 : vn), v);
        } else {
            return fail(l, "unknown key '%.*s' (expected secret, pools, memory, min, conns, stats)",
                        (int)(kn > 64 ? 64 : kn), tok[k]);
        }
#undef KEY
#undef ONCE
    }
    if (!seen_secret) return fail(l, "tenant %s: secret= is required", t->acct.name);
    if (!seen_pools) return fail(l, "tenant %s: pools= is required", t->acct.name);
    if (!seen_memory) return fail(l, "tenant %s: memory= is required", t->acct.name);
    if (!seen_conns) return fail(l, "tenant %s: conns= is required", t->acct.name);
    if (min > memory) return fail(l, "tenant %s: min= is above memory=", t->acct.name);
    t->acct.max_pages = memory / REMOCA_PAGE_SIZE;
    t->acct.min_pages = (min + REMOCA_PAGE_SIZE - 1) / REMOCA_PAGE_SIZE;
    if (t->acct.min_pages > t->acct.max_pages) t->acct.min_pages = t->acct.max_pages;
    return 0;
}

/* Whether a is a prefix of b or b of a. */
static bool overlap(const char *a, size_t an, const char *b, size_t bn)
{
    return !memcmp(a, b, an < bn ? an : bn);
}

/* Against the tenants before it: a distinct name, no shared prefix. */
static int check_new(const struct line *l, const struct tenants *ts, const struct tenant *t)
{
    for (unsigned i = 0; i < ts->n; i++) {
        const struct tenant *o = &ts->t[i];
        if (!strcmp(o->acct.name, t->acct.name))
            return fail(l, "tenant %s defined twice", t->acct.name);
        for (unsigned a = 0; a < t->nprefix; a++)
            for (unsigned b = 0; b < o->nprefix; b++)
                if (overlap(t->prefix[a], t->prefix_len[a], o->prefix[b], o->prefix_len[b]))
                    return fail(l, "pools=: prefix '%s' of tenant %s overlaps '%s' of tenant %s",
                                t->prefix[a], t->acct.name, o->prefix[b], o->acct.name);
    }
    return 0;
}

int tenants_parse(struct tenants *ts, const char *text, size_t len, const char *fname, char *err,
                  size_t errcap)
{
    memset(ts, 0, sizeof *ts);
    struct line l = {.fname = fname, .no = 0, .err = err, .errcap = errcap};
    size_t off = 0;
    while (off < len) {
        l.no++;
        size_t end = off;
        while (end < len && text[end] != '\n') end++;
        /* Split into tokens; a token starting with '#' ends the line. */
        const char *tok[2 + 6 + 1];
        size_t tlen[2 + 6 + 1];
        unsigned ntok = 0;
        size_t i = off;
        while (i < end) {
            unsigned char c = (unsigned char)text[i];
            if (c == ' ' || c == '\t' || c == '\r') {
                i++;
                continue;
            }
            if (c == '#') break;
            size_t j = i;
            while (j < end && text[j] != ' ' && text[j] != '\t' && text[j] != '\r') {
                unsigned char d = (unsigned char)text[j];
                if (d < 0x20 || d == 0x7f) {
                    tenants_free(ts);
                    return fail(&l, "control character 0x%02x", d);
                }
                j++;
            }
            if (ntok == sizeof tok / sizeof tok[0]) {
                tenants_free(ts);
                return fail(&l, "too many words (tenant NAME and at most 6 KEY=VALUE)");
            }
            tok[ntok] = text + i;
            tlen[ntok++] = j - i;
            i = j;
        }
        off = end + 1;
        if (ntok == 0) continue;
        if (tlen[0] != 6 || memcmp(tok[0], "tenant", 6)) {
            tenants_free(ts);
            return fail(
                &l, "expected 'tenant NAME secret=... pools=... memory=... conns=...', got '%.*s'",
                (int)(tlen[0] > 64 ? 64 : tlen[0]), tok[0]);
        }
        if (ts->n == TENANT_MAX) {
            tenants_free(ts);
            return fail(&l, "at most %u tenants", TENANT_MAX);
        }
        struct tenant t = {0};
        if (tenant_line(&l, &t, tok, tlen, ntok) < 0 || check_new(&l, ts, &t) < 0) {
            tenant_clear(&t);
            tenants_free(ts);
            return -1;
        }
        struct tenant *nt = realloc(ts->t, (ts->n + 1) * sizeof *nt);
        if (!nt) {
            tenant_clear(&t);
            tenants_free(ts);
            return fail(&l, "out of memory");
        }
        ts->t = nt;
        ts->t[ts->n++] = t;
    }
    if (ts->n == 0) {
        snprintf(err, errcap, "%s: no tenant defined", fname);
        return -1;
    }
    if (!(ts->accts = calloc(ts->n, sizeof *ts->accts))) {
        tenants_free(ts);
        snprintf(err, errcap, "%s: out of memory", fname);
        return -1;
    }
    for (unsigned i = 0; i < ts->n; i++) ts->accts[i] = &ts->t[i].acct;
    return 0;
}

int tenants_load(struct tenants *ts, const char *path, char *err, size_t errcap)
{
    memset(ts, 0, sizeof *ts);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (st.st_mode & 0007) {
        snprintf(err, errcap,
                 "%s: readable or writable by others (mode %03o): it holds secrets; "
                 "chmod o-rwx %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TENANTS_FILE_MAX) {
        snprintf(err, errcap, "%s: not a regular file of at most 1 MiB", path);
        close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errcap, "%s: out of memory", path);
        return -1;
    }
    int rc = tenants_parse(ts, buf, got, path, err, errcap);
    free(buf);
    return rc;
}

void tenants_free(struct tenants *ts)
{
    for (unsigned i = 0; i < ts->n; i++) tenant_clear(&ts->t[i]);
    free(ts->t);
    free(ts->accts);
    memset(ts, 0, sizeof *ts);
}

struct tenant *tenants_find(const struct tenants *ts, const char *hello_name, size_t len)
{
    const char *slash = memchr(hello_name, '/', len);
    size_t n = slash ? (size_t)(slash - hello_name) : len;
    for (unsigned i = 0; i < ts->n; i++)
        if (strlen(ts->t[i].acct.name) == n && !memcmp(ts->t[i].acct.name, hello_name, n))
            return &ts->t[i];
    return NULL;
}

bool tenant_pool_allowed(const struct tenant *t, const char *pool, size_t len)
{
    for (unsigned k = 0; k < t->nprefix; k++)
        if (t->prefix_len[k] <= len && !memcmp(t->prefix[k], pool, t->prefix_len[k])) return true;
    return false;
}

bool tenant_conn_get(struct tenant *t)
{
    uint32_t n = __atomic_load_n(&t->acct.conns, __ATOMIC_RELAXED);
    do {
        if (n >= t->acct.max_conns) return false;
    } while (!__atomic_compare_exchange_n(&t->acct.conns, &n, n + 1, false, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return true;
}

void tenant_conn_put(struct tenant *t) { __atomic_fetch_sub(&t->acct.conns, 1, __ATOMIC_RELAXED); }

void tenant_refused(struct tenant *t)
{
    __atomic_fetch_add(&t->acct.refusals, 1, __ATOMIC_RELAXED);
}
