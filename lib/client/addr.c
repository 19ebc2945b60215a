/* SPDX-License-Identifier: BSD-3-Clause */
/* Server address lists: "host:port,[::1]:port,unix:/run/remoca.sock".
 *
 * Parsing is purely syntactic (no DNS here: a name that does not resolve is a
 * server that is down, retried in the background).  Each entry gets a
 * canonical form, "tcp:HOST:PORT" or "unix:PATH", which names the server in
 * logs and is its identity for placement: two lists holding the same servers
 * in a different order place keys identically, and removing one server moves
 * only that server's keys.
 *
 * Accepted entry forms (surrounding spaces ignored):
 *   host:port        name, IPv4 literal
 *   [v6addr]:port    IPv6 literal
 *   tcp:host:port    explicit TCP (same as above)
 *   unix:/path       unix socket (also a bare "/path")
 *   memcached:ENTRY  any of the above, a memcached server (its meta protocol,
 *                    docs/memcached.md); canonical "memcached:tcp:..." or
 *                    "memcached:unix:...", so its placement seed differs from
 *                    a memd server's at the same address
 * The TCP forms are parsed by hostport.c, which remoca-memd --listen shares.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int remoca_addr_parse(const char *s, size_t len, struct remoca_addr *a, char *err, size_t errlen)
{
    char entry[512];
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0) return fail(err, errlen, "empty server entry");
    if (len >= sizeof entry) return fail(err, errlen, "server entry too long");
    memcpy(entry, s, len);
    entry[len] = '\0';
    memset(a, 0, sizeof *a);
    a->weight = 1;

    if (strncmp(entry, "memcached:", 10) == 0) {
        const char *rest = entry + 10;
        if (strncmp(rest, "memcached:", 10) == 0)
            return fail(err, errlen, "server '%.80s': memcached: given twice", entry);
        if (remoca_addr_parse(rest, strlen(rest), a, err, errlen) < 0) return -1;
        char inner[sizeof a->canon];
        memcpy(inner, a->canon, sizeof inner);
        int w = snprintf(a->canon, sizeof a->canon, "memcached:%s", inner);
        if (w < 0 || (size_t)w >= sizeof a->canon)
            return fail(err, errlen, "server '%.80s': name too long", entry);
        a->mc = true;
        return 0;
    }

    const char *p = entry;
    if (strncmp(p, "unix:", 5) == 0 || p[0] == '/') {
        const char *path = p[0] == '/' ? p : p + 5;
        size_t plen = strlen(path);
        if (plen == 0) return fail(err, errlen, "server '%.80s': empty unix socket path", entry);
        if (plen >= sizeof a->path)
            return fail(err, errlen, "server '%.80s': unix socket path longer than %zu bytes",
                        entry, sizeof a->path - 1);
        a->kind = REMOCA_ADDR_UNIX;
        memcpy(a->path, path, plen + 1);
        snprintf(a->canon, sizeof a->canon, "unix:%s", a->path);
        return 0;
    }

    if (strncmp(p, "tcp:", 4) == 0) p += 4;
    if (p[0] != '[' && !strchr(p, ':')) /* no form at all: name the list's forms */
        return fail(err, errlen, "server '%.80s': expected host:port or unix:/path", entry);
    struct remoca_hostport hp;
    char why[128];
    if (remoca_hostport_parse(p, 1, &hp, why, sizeof why) < 0)
        return fail(err, errlen, "server '%.80s': %s", entry, why);
    a->kind = REMOCA_ADDR_TCP;
    memcpy(a->host, hp.host, sizeof a->host);
    memcpy(a->port, hp.port, sizeof a->port);
    if (hp.v6)
        snprintf(a->canon, sizeof a->canon, "tcp:[%s]:%s", a->host, a->port);
    else
        snprintf(a->canon, sizeof a->canon, "tcp:%s:%s", a->host, a->port);
    return 0;
}

int remoca_addr_parse_list(const char *list, struct remoca_addr *out, unsigned max, char *err,
                           size_t errlen)
{
    if (!list) return fail(err, errlen, "no memory servers given");
    unsigned n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == max) return fail(err, errlen, "too many memory servers (at most %u)", max);
        char sub[256];
        unsigned weight = 1;
        const char *star = memchr(p, '*', len);
        if (star) { /* "ADDR*W": a weight 1..16, digits only */
            const char *w = star + 1, *end = p + len;
            while (end > w && (end[-1] == ' ' || end[-1] == '\t')) end--;
            size_t wl = (size_t)(end - w);
            weight = 0;
            for (size_t i = 0; i < wl && weight <= REMOCA_MAX_WEIGHT; i++)
                weight = w[i] >= '0' && w[i] <= '9' ? weight * 10 + (unsigned)(w[i] - '0') : 999;
            if (wl == 0 || wl > 2 || weight < 1 || weight > REMOCA_MAX_WEIGHT)
                return fail(err, errlen, "server '%.*s': weight '%.*s' is not 1..%u", (int)len, p,
                            (int)wl, w, REMOCA_MAX_WEIGHT);
            len = (size_t)(star - p);
        }
        if (remoca_addr_parse(p, len, &out[n], sub, sizeof sub) < 0) {
            if (len == 0 || strspn(p, " \t") == len)
                return fail(err, errlen, "server list '%s': empty entry %u", list, n + 1);
            return fail(err, errlen, "%s", sub);
        }
        for (unsigned i = 0; i < n; i++)
            if (strcmp(out[i].canon, out[n].canon) == 0)
                return fail(err, errlen, "server '%.80s' listed twice", out[n].canon);
        out[n].weight = (uint8_t)weight;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return (int)n;
}

bool remoca_servers_remote(const char *list)
{
    struct remoca_addr *a = malloc(REMOCA_MAX_SERVERS * sizeof *a);
    char err[256];
    int n = a ? remoca_addr_parse_list(list, a, REMOCA_MAX_SERVERS, err, sizeof err) : -1;
    bool remote = false;
    for (int i = 0; i < n; i++) remote |= a[i].kind == REMOCA_ADDR_TCP;
    free(a);
    return remote;
}
