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

static bool host_char_ok(char ch)
{
    return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

static int parse_port(const char *p, size_t len, char out[6], const char *entry, char *err,
                      size_t errlen)
{
    unsigned long v = 0;
    if (len == 0) return fail(err, errlen, "server '%.80s': missing port", entry);
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)p[i]))
            return fail(err, errlen, "server '%.80s': port is not a number", entry);
        v = v * 10 + (unsigned long)(p[i] - '0');
        if (v > 65535) return fail(err, errlen, "server '%.80s': port out of range", entry);
    }
    if (v < 1 || v > 65535) return fail(err, errlen, "server '%.80s': port out of range", entry);
    snprintf(out, 6, "%lu", v);
    return 0;
}

int remoca_addr_parse(const char *s, size_t len, struct remoca_addr *a, char *err,
                      size_t errlen)
{
    char entry[512];
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0) return fail(err, errlen, "empty server entry");
    if (len >= sizeof entry) return fail(err, errlen, "server entry too long");
    memcpy(entry, s, len);
    entry[len] = '\0';
    memset(a, 0, sizeof *a);

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
    a->kind = REMOCA_ADDR_TCP;
    const char *host, *port;
    size_t hlen;
    bool v6 = false;
    if (p[0] == '[') {
        const char *close = strchr(p, ']');
        if (!close) return fail(err, errlen, "server '%.80s': missing ']'", entry);
        if (close[1] != ':')
            return fail(err, errlen, "server '%.80s': expected ':port' after ']'", entry);
        host = p + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        v6 = true;
        for (size_t i = 0; i < hlen; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                return fail(err, errlen, "server '%.80s': bad IPv6 address", entry);
    } else {
        const char *colon = strrchr(p, ':');
        if (!colon) return fail(err, errlen, "server '%.80s': expected host:port or unix:/path", entry);
        host = p;
        hlen = (size_t)(colon - p);
        port = colon + 1;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char_ok(host[i]))
                return fail(err, errlen,
                            "server '%.80s': bad character '%c' in host name (IPv6 needs [brackets])",
                            entry, host[i]);
    }
    if (hlen == 0) return fail(err, errlen, "server '%.80s': empty host", entry);
    if (hlen > REMOCA_ADDR_MAX_HOST) return fail(err, errlen, "server '%.80s': host too long", entry);
    if (parse_port(port, strlen(port), a->port, entry, err, errlen) < 0) return -1;
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    if (v6)
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
        if (remoca_addr_parse(p, len, &out[n], sub, sizeof sub) < 0) {
            if (len == 0 || strspn(p, " \t") == len)
                return fail(err, errlen, "server list '%s': empty entry %u", list, n + 1);
            return fail(err, errlen, "%s", sub);
        }
        for (unsigned i = 0; i < n; i++)
            if (strcmp(out[i].canon, out[n].canon) == 0)
                return fail(err, errlen, "server '%.80s' listed twice", out[n].canon);
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return (int)n;
}
