/* SPDX-License-Identifier: BSD-3-Clause */
/* "host:port" and "[v6addr]:port" (see hostport.h). */
#include "remoca/hostport.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool host_char_ok(char ch)
{
    return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

static int parse_port(const char *p, unsigned min_port, char out[6], char *why, size_t whylen)
{
    unsigned long v = 0;
    if (*p == '\0') return fail(why, whylen, "missing port");
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) return fail(why, whylen, "port is not a number");
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535) return fail(why, whylen, "port out of range");
    }
    if (v < min_port) return fail(why, whylen, "port out of range");
    snprintf(out, 6, "%lu", v);
    return 0;
}

int remoca_hostport_parse(const char *s, unsigned min_port, struct remoca_hostport *hp, char *why,
                          size_t whylen)
{
    const char *host, *port;
    size_t hlen;
    memset(hp, 0, sizeof *hp);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) return fail(why, whylen, "missing ']'");
        if (close[1] != ':') return fail(why, whylen, "expected ':port' after ']'");
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        hp->v6 = true;
        for (size_t i = 0; i < hlen; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                return fail(why, whylen, "bad IPv6 address");
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) return fail(why, whylen, "expected host:port");
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char_ok(host[i]))
                return fail(why, whylen, "bad character '%c' in host name (IPv6 needs [brackets])",
                            host[i]);
    }
    if (hlen == 0) return fail(why, whylen, "empty host");
    if (hlen > REMOCA_HOST_MAX) return fail(why, whylen, "host too long");
    if (parse_port(port, min_port, hp->port, why, whylen) < 0) return -1;
    memcpy(hp->host, host, hlen);
    hp->host[hlen] = '\0';
    return 0;
}
