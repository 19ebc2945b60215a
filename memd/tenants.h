/* SPDX-License-Identifier: BSD-3-Clause */
/* Tenants of one memory server (remoca-memd --tenants FILE).
 *
 * Why: one server, several mutually distrusting owners of VMs.  Each tenant
 * has its own secret (the HELLO challenge-response of auth.h, keyed by the
 * tenant's secret instead of --secret), its own pool name prefixes (it can
 * open no other pool), a memory cap and floor that the store's allocator
 * obeys (store.h, struct tenant_acct) and a connection cap.
 *
 * The file, one tenant per line ('#' starts a comment, blank lines ignored):
 *
 *   tenant NAME secret=SECRET pools=PREFIX[,PREFIX...] memory=SIZE [min=SIZE] conns=N
 *          [stats=own|all]
 *
 *   NAME     1..63 of [A-Za-z0-9._-]; a client says HELLO as NAME or NAME/anything
 *   SECRET   1..255 bytes, no spaces
 *   PREFIX   1..255 bytes, no spaces or ','; pool names it may open start with
 *            one of them; no prefix of one tenant may be a prefix of another's
 *   SIZE     lib/wire/size.c (64M, 2G); memory >= 4K, min <= memory
 *   N        1..65536 concurrent connections
 *   stats    own (default): STATS shows its own pools only; all: every tenant
 *            and pool (for the operator's monitoring, the balancer)
 *
 *   struct tenants                      struct tenant
 *   +------------+                      +--------------------------------+
 *   | t ---------+--> [0] [1] ... [n-1] | acct (store.h): name, pages,   |
 *   | n          |                      |   caps, conns, refusals        |
 *   | accts -----+--> &t[i].acct        | auth: its secret               |
 *   +------------+    (for the store)   | prefix[np] -> "a/", "shared-a" |
 *                                       +--------------------------------+
 *
 * The whole file is parsed before anything is used; every error names
 * FILE:LINE.  The file must not be readable or writable by others (mode
 * & 007): it holds secrets, so tenants_load refuses it otherwise. */
#ifndef MEMD_TENANTS_H
#define MEMD_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "store.h"

#define TENANT_MAX 256u
#define TENANT_MAX_PREFIXES 16u
#define TENANT_MAX_CONNS 65536u

struct tenant {
    struct tenant_acct acct; /* name, caps and counters: the store's view */
    struct auth auth;        /* the tenant's secret */
    char *prefix[TENANT_MAX_PREFIXES];
    size_t prefix_len[TENANT_MAX_PREFIXES];
    unsigned nprefix;
    bool stats_all; /* stats=all */
};

struct tenants {
    struct tenant *t;
    unsigned n;
    struct tenant_acct **accts; /* &t[i].acct, handed to the store for STATS */
};

/* Parses a tenants file's text (fname only names it in messages).  0, or -1
 * with "FNAME:LINE: what" in err (and nothing allocated). */
int tenants_parse(struct tenants *ts, const char *text, size_t len, const char *fname, char *err,
                  size_t errcap);
/* Reads and parses path; refuses a file others may read or write. */
int tenants_load(struct tenants *ts, const char *path, char *err, size_t errcap);
void tenants_free(struct tenants *ts);

/* The tenant a HELLO name speaks for: the name up to its first '/'. */
struct tenant *tenants_find(const struct tenants *ts, const char *hello_name, size_t len);
/* Whether pool name starts with one of the tenant's prefixes. */
bool tenant_pool_allowed(const struct tenant *t, const char *pool, size_t len);

/* Takes one of the tenant's connection places; false at conns=. */
bool tenant_conn_get(struct tenant *t);
void tenant_conn_put(struct tenant *t);
/* One more refusal (pool not allowed, connection cap, failed authentication, full). */
void tenant_refused(struct tenant *t);

#endif
