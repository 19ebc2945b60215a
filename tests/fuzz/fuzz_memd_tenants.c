/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the tenants file parser (memd/tenants.c): any bytes must parse or
 * fail with a "FILE:LINE: ..." (or "FILE: ...") message, never read out of
 * bounds or leak; whatever parses obeys the rules the server relies on
 * (names, caps, floors, prefixes of different tenants never overlapping), and
 * every tenant is found again by its name and by NAME/suffix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer calls it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tenants ts;
    char err[512];
    err[0] = 0;
    /* No terminating NUL: the parser must respect len. */
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    int rc = tenants_parse(&ts, text, size, "f", err, sizeof err);
    free(text);
    if (rc < 0) {
        if (strncmp(err, "f:", 2) || ts.n || ts.t) abort();
        return 0;
    }
    if (ts.n == 0 || ts.n > TENANT_MAX) abort();
    for (unsigned i = 0; i < ts.n; i++) {
        const struct tenant *t = &ts.t[i];
        size_t n = strlen(t->acct.name);
        if (n == 0 || strchr(t->acct.name, '/') || ts.accts[i] != &t->acct) abort();
        if (t->acct.max_pages == 0 || t->acct.min_pages > t->acct.max_pages) abort();
        if (t->acct.max_conns == 0 || t->acct.max_conns > TENANT_MAX_CONNS) abort();
        if (t->auth.len == 0 || t->nprefix == 0) abort();
        if (tenants_find(&ts, t->acct.name, n) != t) abort();
        char with[80];
        snprintf(with, sizeof with, "%s/x", t->acct.name);
        if (tenants_find(&ts, with, strlen(with)) != t) abort();
        for (unsigned k = 0; k < t->nprefix; k++) {
            if (!tenant_pool_allowed(t, t->prefix[k], t->prefix_len[k])) abort();
            for (unsigned j = 0; j < ts.n; j++)
                if (j != i && tenant_pool_allowed(&ts.t[j], t->prefix[k], t->prefix_len[k]))
                    abort();
        }
    }
    tenants_free(&ts);
    return 0;
}
