/* SPDX-License-Identifier: BSD-3-Clause */
/* Remote shares, the servers' side read: memd's JSON stats (remoca_stats_query)
 * into the pools' figures (balancer/share.h).  Shares are set with
 * remoca_pool_update (a POOL_OPEN that keeps the pool's pages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "remoca/client.h"
#include "share.h"

static uint64_t member_u64(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) return 0;
    int64_t x = json_object_get_int64(v);
    return x > 0 ? (uint64_t)x : 0;
}

int share_read(const char *addr, const char *tenant, const char *secret, unsigned timeout_ms,
               const char *const *names, unsigned n, struct share_server *srv,
               struct share_pool *out, char *err, size_t errlen)
{
    char *text;
    memset(out, 0, n * sizeof *out);
    memset(srv, 0, sizeof *srv);
    if (remoca_stats_query_as(addr, tenant, secret, true, timeout_ms, &text, err, errlen) < 0)
        return -1;
    json_object *doc = json_tokener_parse(text), *server, *pools;
    free(text);
    if (!doc || !json_object_object_get_ex(doc, "server", &server) ||
        !json_object_object_get_ex(doc, "pools", &pools) ||
        !json_object_is_type(pools, json_type_array)) {
        json_object_put(doc);
        snprintf(err, errlen, "%s: stats are not the JSON of a remoca-memd", addr);
        return -1;
    }
    srv->budget = member_u64(server, "budget_bytes");
    size_t np = json_object_array_length(pools);
    for (size_t k = 0; k < np; k++) {
        json_object *p = json_object_array_get_idx(pools, k), *name;
        if (!json_object_object_get_ex(p, "name", &name)) continue;
        const char *s = json_object_get_string(name);
        unsigned i = 0;
        while (i < n && strcmp(names[i] ? names[i] : "", s)) i++;
        if (i == n) {
            srv->others_min += member_u64(p, "min_bytes");
            continue;
        }
        out[i].found = true;
        out[i].bytes = member_u64(p, "bytes");
        out[i].min_bytes = member_u64(p, "min_bytes");
        out[i].max_bytes = member_u64(p, "max_bytes");
        out[i].weight = (uint32_t)member_u64(p, "weight");
    }
    json_object_put(doc);
    return 0;
}
