/* SPDX-License-Identifier: BSD-3-Clause */
/* Stats of the store and the server, as text or JSON (the STATS op).
 *
 * Sharing (store.h): per pool fair_bytes (weighted fair share), share_bytes
 * (its target: fair share + utility credit, in [min, max]), ghost_entries
 * (evicted keys it remembers now), ghost_recent (decayed ghost hits, the
 * utility signal); on the server line moved_bytes (credit moved, in all).
 *
 * Text: one line for the server, then one line per pool, key=value pairs:
 *   server policy=s3fifo budget_bytes=... pages=... gets=... hits=... ...
 *   pool name=vm42/vda pages=... bytes=... gets=... hits=... ...
 * Pool names are escaped (\xNN for spaces, '=', '\\' and non-printables) so a
 * line always splits on spaces.  JSON: {"server": {...}, "pools": [{...}]}
 * with names escaped as JSON strings (bytes >= 0x7f as \u00NN).
 * The output never exceeds `cap`; pools that do not fit are left out and the
 * server line says how many were (pools_omitted). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

struct sbuf {
    char *p;
    size_t len, cap;
    bool full;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->full) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->full = true;
        b->p[b->len] = 0;
        return;
    }
    b->len += (size_t)n;
}

static void sb_name(struct sbuf *b, const struct pool *p, bool json)
{
    for (size_t i = 0; i < p->name_len; i++) {
        unsigned char c = (unsigned char)p->name[i];
        if (json) {
            if (c == '"' || c == '\\')
                sb_printf(b, "\\%c", c);
            else if (c < 0x20 || c >= 0x7f)
                sb_printf(b, "\\u%04x", c);
            else
                sb_printf(b, "%c", c);
        } else {
            if (c <= 0x20 || c >= 0x7f || c == '=' || c == '\\')
                sb_printf(b, "\\x%02x", c);
            else
                sb_printf(b, "%c", c);
        }
    }
}

struct kv {
    const char *k;
    uint64_t v;
};

static void sb_kvs(struct sbuf *b, const struct kv *kv, size_t n, bool json)
{
    for (size_t i = 0; i < n; i++) {
        if (json)
            sb_printf(b, ", \"%s\": %llu", kv[i].k, (unsigned long long)kv[i].v);
        else
            sb_printf(b, " %s=%llu", kv[i].k, (unsigned long long)kv[i].v);
    }
}

#define STATS_KVS(st)                                                                \
    {"gets", (st).gets}, {"hits", (st).hits}, {"misses", (st).misses},               \
        {"ghost_hits", (st).ghost_hits}, {"puts", (st).puts}, {"takes", (st).takes}, \
        {"deletes", (st).deletes}, {"evictions", (st).evictions},                    \
    {                                                                                \
        "errors", (st).errors                                                        \
    }

size_t store_stats(struct store *s, const struct server_counters *sc, bool json, char *buf,
                   size_t cap)
{
    return store_stats_for(s, sc, json, buf, cap, NULL);
}

/* --tenants: one line (JSON: one object of "tenants") per tenant, or only
 * `only`'s. */
static void sb_tenants(struct sbuf *b, const struct store *s, const struct tenant_acct *only,
                       bool json)
{
    bool first = true;
    for (unsigned i = 0; i < s->ntenants; i++) {
        const struct tenant_acct *t = s->tenants[i];
        if (only && t != only) continue;
        const struct kv tk[] = {
            {"pages", t->pages},
            {"bytes", t->pages * REMOCA_PAGE_SIZE},
            {"cap_bytes", t->max_pages * REMOCA_PAGE_SIZE},
            {"floor_bytes", t->min_pages * REMOCA_PAGE_SIZE},
            {"cap_evictions", t->cap_evictions},
            {"connections", __atomic_load_n(&t->conns, __ATOMIC_RELAXED)},
            {"max_connections", t->max_conns},
            {"refusals", __atomic_load_n(&t->refusals, __ATOMIC_RELAXED)},
        };
        if (json)
            sb_printf(b, "%s\n    {\"name\": \"%s\"", first ? "" : ",", t->name);
        else
            sb_printf(b, "tenant name=%s", t->name);
        sb_kvs(b, tk, sizeof tk / sizeof tk[0], json);
        sb_printf(b, json ? "}" : "\n");
        first = false;
    }
}

size_t store_stats_for(struct store *s, const struct server_counters *sc, bool json, char *buf,
                       size_t cap, const struct tenant_acct *only)
{
    struct sbuf b = {buf, 0, cap, false};
    if (cap == 0) return 0;
    buf[0] = 0;
    pthread_mutex_lock(&s->lock);
    struct pool_stats tot = {0};
    uint64_t used = s->npages - s->nfree; /* every page is free or in a pool */
    for (uint32_t k = 0; k < s->npools; k++) {
        const struct pool *p = s->pools[k];
        if (only && p->tenant != only) continue;
        tot.gets += p->st.gets;
        tot.hits += p->st.hits;
        tot.misses += p->st.misses;
        tot.ghost_hits += p->st.ghost_hits;
        tot.puts += p->st.puts;
        tot.takes += p->st.takes;
        tot.deletes += p->st.deletes;
        tot.evictions += p->st.evictions;
        tot.errors += p->st.errors;
    }
    if (!only) tot.errors = sc ? sc->errors : tot.errors;
    const struct kv server[] = {
        {"budget_bytes", s->budget},
        {"pages_total", s->npages},
        {"pages", used},
        {"bytes", used * REMOCA_PAGE_SIZE},
        {"pages_free", s->nfree},
        {"pools", s->npools},
        {"max_pools", s->max_pools},
        {"threads", sc ? sc->threads : 0},
        {"connections", sc ? sc->conns : 0},
        {"connections_total", sc ? sc->conns_total : 0},
        {"connections_refused", sc ? sc->conns_refused : 0},
        {"connections_refused_addr", sc ? sc->conns_refused_addr : 0},
        {"handshake_timeouts", sc ? sc->handshake_timeouts : 0},
        {"frame_timeouts", sc ? sc->frame_timeouts : 0},
        {"buffer_closes", sc ? sc->buffer_closes : 0},
        {"shm", s->shm != NULL},
        {"shm_maps", __atomic_load_n(&s->shm_maps, __ATOMIC_RELAXED)},
        {"shm_touched", s->shm_touched},
        {"fill_rings", __atomic_load_n(&s->fill_rings, __ATOMIC_RELAXED)},
        {"ring_puts", __atomic_load_n(&s->ring_puts, __ATOMIC_RELAXED)},
        {"moved_bytes", s->moved * REMOCA_PAGE_SIZE},
        STATS_KVS(tot),
    };
    const size_t nserver = sizeof server / sizeof server[0];
    /* Room kept for the closing of the document and the omitted count. */
    const size_t reserve = 128;
    if (cap < 1024) goto out;
    b.cap = cap - reserve;
    if (json) {
        sb_printf(&b, "{\n  \"server\": {\"policy\": \"%s\"", policy_name(s->policy));
        sb_kvs(&b, server, nserver, true);
        if (s->ntenants) {
            sb_printf(&b, "},\n  \"tenants\": [");
            sb_tenants(&b, s, only, true);
            sb_printf(&b, "\n  ]");
        } else {
            sb_printf(&b, "}");
        }
        sb_printf(&b, ",\n  \"pools\": [");
    } else {
        sb_printf(&b, "server policy=%s", policy_name(s->policy));
        sb_kvs(&b, server, nserver, false);
        sb_printf(&b, "\n");
        sb_tenants(&b, s, only, false);
    }
    uint32_t omitted = 0, shown = 0;
    uint64_t active_weights = store_weight_sum_locked(s);
    for (uint32_t k = 0; k < s->npools; k++) {
        const struct pool *p = s->pools[k];
        if (only && p->tenant != only) continue;
        size_t mark = b.len;
        const struct kv pk[] = {
            {"pages", p->pages},
            {"bytes", p->pages * REMOCA_PAGE_SIZE},
            {"min_bytes", p->min_pages * REMOCA_PAGE_SIZE},
            {"max_bytes", p->max_pages * REMOCA_PAGE_SIZE},
            {"weight", p->weight},
            {"fair_bytes", store_fair_share_locked(s, p, active_weights) * REMOCA_PAGE_SIZE},
            {"share_bytes", store_target_locked(s, p, active_weights) * REMOCA_PAGE_SIZE},
            {"ghost_entries", ghost_count(&s->ghost, p->id)},
            {"ghost_recent", p->ghost_recent},
            {"connections", p->conns},
            {"sealed", p->sealed},
            STATS_KVS(p->st),
        };
        if (json) {
            sb_printf(&b, "%s\n    {\"name\": \"", shown ? "," : "");
            sb_name(&b, p, true);
            sb_printf(&b, "\"");
        } else {
            sb_printf(&b, "pool name=");
            sb_name(&b, p, false);
        }
        sb_kvs(&b, pk, sizeof pk / sizeof pk[0], json);
        sb_printf(&b, json ? "}" : "\n");
        if (b.full) {
            b.len = mark;
            b.full = false;
            b.p[b.len] = 0;
            for (uint32_t r = k; r < s->npools; r++)
                omitted += !only || s->pools[r]->tenant == only;
            break;
        }
        shown++;
    }
    b.cap = cap;
    if (json)
        sb_printf(&b, "\n  ],\n  \"pools_omitted\": %u\n}\n", omitted);
    else if (omitted)
        sb_printf(&b, "pools_omitted %u\n", omitted);
out:
    pthread_mutex_unlock(&s->lock);
    return b.len;
}
