/* SPDX-License-Identifier: BSD-3-Clause */
/* Stats-file parsing and curve interpolation (balancer/curve.h).  The file is
 * replaced by a rename at every rewrite, so one read sees one whole version. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "curve.h"

#define MAX_FILE (1u << 20)

static bool parse_u64(const char *s, const char *end, uint64_t *out)
{
    if (s == end || *s < '0' || *s > '9') return false;
    uint64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* "SIZE:RATIO,SIZE:RATIO,...": sizes strictly increasing, ratios in [0, 1].
 * A ratio a hair above its predecessor (estimator noise, 4 decimals) is
 * clamped to keep the curve non-increasing; a real rise is an error. */
static bool parse_curve(const char *s, const char *end, struct bal_stats *st)
{
    struct bal_curve *c = &st->curve;
    c->n = 0;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        const char *colon = memchr(s, ':', (size_t)(item_end - s));
        uint64_t size;
        char num[32], *e;
        size_t rl = colon ? (size_t)(item_end - colon - 1) : 0;
        if (!colon || !parse_u64(s, colon, &size) || size == 0 || rl == 0 || rl >= sizeof num) {
            snprintf(st->why, sizeof st->why, "mrc= point %u is not SIZE:RATIO", c->n + 1);
            return false;
        }
        memcpy(num, colon + 1, rl);
        num[rl] = 0;
        double r = strtod(num, &e);
        if (*e || !(r >= 0 && r <= 1.0001)) {
            snprintf(st->why, sizeof st->why, "mrc= point %u: ratio '%s' is not in [0, 1]",
                     c->n + 1, num);
            return false;
        }
        if (r > 1) r = 1;
        if (c->n == BAL_CURVE_MAX) {
            snprintf(st->why, sizeof st->why, "mrc= has more than %d points", BAL_CURVE_MAX);
            return false;
        }
        if (c->n && (double)size <= c->size[c->n - 1]) {
            snprintf(st->why, sizeof st->why, "mrc= sizes not increasing at point %u", c->n + 1);
            return false;
        }
        double prev = c->n ? c->ratio[c->n - 1] : 1.0;
        if (r > prev + 0.001) {
            snprintf(st->why, sizeof st->why, "mrc= ratio rises at point %u", c->n + 1);
            return false;
        }
        c->size[c->n] = (double)size;
        c->ratio[c->n++] = r < prev ? r : prev;
        s = comma ? comma + 1 : end;
    }
    if (c->n == 0) {
        snprintf(st->why, sizeof st->why, "mrc= is empty");
        return false;
    }
    return true;
}

void bal_stats_parse(const char *text, size_t len, struct bal_stats *st)
{
    double mtime = st->mtime;
    memset(st, 0, sizeof *st);
    st->mtime = mtime;
    bool saw_mrc = false;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            const char *v = eq + 1;
#define KEY(k) (kl == sizeof(k) - 1 && !memcmp(p, k, kl))
            if (KEY("mrc_refs")) {
                st->has_refs = parse_u64(v, le, &st->mrc_refs);
            } else if (KEY("read_blocks")) {
                parse_u64(v, le, &st->read_blocks);
            } else if (KEY("remote_hits")) {
                parse_u64(v, le, &st->remote_hits);
            } else if (KEY("mrc")) {
                saw_mrc = true;
                st->has_curve = parse_curve(v, le, st);
            }
#undef KEY
        }
        p = nl ? nl + 1 : end;
    }
    if (!saw_mrc)
        snprintf(st->why, sizeof st->why, "no mrc= line (no curve yet)");
    else if (st->has_curve && !st->has_refs) {
        st->has_curve = false;
        snprintf(st->why, sizeof st->why, "mrc= without mrc_refs=");
    }
}

int bal_stats_read(const char *path, struct bal_stats *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat sb;
    char *buf = malloc(MAX_FILE);
    if (!buf || fstat(fd, &sb) < 0) {
        int e = buf ? errno : ENOMEM;
        free(buf);
        close(fd);
        errno = e;
        return -1;
    }
    size_t len = 0;
    while (len < MAX_FILE) {
        ssize_t r = read(fd, buf + len, MAX_FILE - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    st->mtime = (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec * 1e-9;
    bal_stats_parse(buf, len, st);
    free(buf);
    return 0;
}

double bal_curve_at(const struct bal_curve *c, double x)
{
    if (x <= 0 || c->n == 0) return 1.0;
    if (x >= c->size[c->n - 1]) return c->ratio[c->n - 1];
    unsigned lo = 0, hi = c->n - 1; /* first point with size >= x */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (c->size[mid] >= x)
            hi = mid;
        else
            lo = mid + 1;
    }
    double x0 = lo ? c->size[lo - 1] : 0, r0 = lo ? c->ratio[lo - 1] : 1.0;
    return r0 + (c->ratio[lo] - r0) * (x - x0) / (c->size[lo] - x0);
}
