/* SPDX-License-Identifier: BSD-3-Clause */
/* "host:port" and "[v6addr]:port": the TCP address syntax of the client's
 * server lists (lib/client/addr.c) and of remoca-memd --listen (memd/net.c), parsed
 * in one place so that both take and refuse the same strings.  A file of its
 * own because remoca-memd links nothing else of libremoca.
 *
 * Purely syntactic (no DNS).  A host is a name or IPv4 literal (letters,
 * digits, '-', '.', '_') or a bracketed IPv6 literal: a bare IPv6 address's
 * colons could not be told from the port's.  The port is decimal.
 */
#ifndef REMOCA_HOSTPORT_H
#define REMOCA_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

#define REMOCA_HOST_MAX 253u /* the longest DNS name */

struct remoca_hostport {
    char host[REMOCA_HOST_MAX + 1]; /* name or IP literal, without brackets */
    char port[6];                   /* decimal, without leading zeros */
    bool v6;                        /* the host was written in brackets */
};

/* Parses s (NUL-terminated, no surrounding spaces), accepting ports from
 * min_port to 65535 (a server may take 0: any free port).  Returns 0, or -1
 * with the reason in why (e.g. "missing port"), which the caller prefixes
 * with what it was parsing. */
int remoca_hostport_parse(const char *s, unsigned min_port, struct remoca_hostport *hp, char *why,
                          size_t whylen);

#endif
