/* SPDX-License-Identifier: BSD-3-Clause */
/* Membership at runtime: remoca_client_set_servers, and the per-server
 * counters (remoca_client_server_stats).
 *
 *   set_servers(list)                           callers (any thread)
 *   ─────────────────────────────────────       ──────────────────────────────
 *   parse; reuse the conn of every address      rdlock(members_lock)
 *   that stays, make (not start) new ones         route by c->place, send,
 *   wrlock(members_lock) ◀── waits for the        wait for the answers
 *     calls in flight; new ones wait            unlock
 *     swap n, conns[], place (epoch e -> e+1)
 *     POOL_KEEP(members of e+1, i) to every server i that stays and is UP,
 *     POOL_RESET to every server that leaves and is UP; wait for all answers
 *   unlock
 *   start the new conns (connect, POOL_RESET, UP); stop and free the old
 *
 * Why no read is stale across a change (contract 1; the single-server proof
 * is at the top of lib/cache/cache.c, whose step (d) needs "the server
 * executes ops on one key in the order they were ordered").  Call the span
 * between two swaps an epoch; owner_e(B) is B's server in epoch e.
 *  1. Every op is routed and ordered within one epoch: a call holds
 *     members_lock shared from routing until its last answer (a no-wait call
 *     is ordered when it returns, so also inside), and a swap holds it
 *     exclusively.  So no op routed under the old placement completes, or is
 *     still unordered, after the swap: the case "a get routed before the swap
 *     that completes after it" cannot happen by construction.
 *  2. On each connection, the POOL_KEEP of the change to epoch e+1 is written
 *     after every frame ordered in epoch e (it is sent after the swap, behind
 *     the send queue; fill ring entries carry the id of the next request, so
 *     the server executes those before it).  A server executes a connection
 *     in order, so KEEP runs after every put of epoch e to that server and
 *     drops each page whose chunk it does not own in e+1.  We wait for the
 *     answers before any call of e+1 is routed, so a one-sided read of e+1
 *     sees the store after KEEP.  A KEEP that fails (error reply, timeout,
 *     broken connection) takes the connection out of service until its pool
 *     has been reset, which also drops the pages (contract 4); a server that
 *     is not UP is reset before it is used again anyway; so is a server that
 *     joins.  So: (K) during epoch e, a server holds pages of B only if it
 *     owns B in e, and they were all put during the run of consecutive
 *     epochs, ending with e, in which it owned B without being reset.
 *  3. During such a run every op on B goes to that one server, in the order
 *     it was ordered (1), so cache.c's argument holds on it unchanged: a put
 *     of data older than an acknowledged write W is followed by W's delete,
 *     on the same server, if both fall in the run.  If the stale put P fell
 *     in the run and W's delete before it: impossible, P is ordered before
 *     W's begin (cache.c, (d)).  If P fell before the run: it is gone by (K).
 *     Hence the hazard of a server X that joins and later leaves: the chunks
 *     X took are dropped from their old owners when X joins, so when they
 *     return to them after X leaves they hold nothing written before.
 *  4. A server that leaves gets a POOL_RESET behind everything sent to it
 *     before its connection is closed, so if it is added again later, no old
 *     frame of ours can still execute after the new connection's reset.
 *     Hole: if that reset is not answered (the server hangs), the old frames
 *     may still sit in its socket buffer; re-adding that server while it is
 *     still hung could let them run after the new connection's reset.  We
 *     log it; the cure would be to keep the old connection quarantined until
 *     it answers.
 * Cost: a change stalls calls for the in-flight calls plus one KEEP round
 * trip (up to about the timeout when a server hangs); memd walks the pool's
 * pages once per KEEP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

/* ---- latency histogram ---------------------------------------------------- */

void rc_lat_record(struct rc_server_counters *st, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000u : 0;
    unsigned b = us ? 64u - (unsigned)__builtin_clzll(us) : 0;
    if (b >= LAT_BUCKETS) b = LAT_BUCKETS - 1;
    atomic_fetch_add_explicit(&st->lat[b], 1, memory_order_relaxed);
}

uint64_t rc_lat_percentile(const struct rc_server_counters *st, unsigned permille,
                           uint64_t *samples)
{
    uint64_t n[LAT_BUCKETS], total = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        n[b] = atomic_load_explicit(&st->lat[b], memory_order_relaxed);
        total += n[b];
    }
    if (samples) *samples = total;
    if (!total) return 0;
    uint64_t want = (total * permille + 999) / 1000, seen = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        seen += n[b];
        if (seen >= want) return 1ull << b; /* bucket b: below 2^b us */
    }
    return 1ull << (LAT_BUCKETS - 1);
}

unsigned remoca_client_server_stats(struct remoca_client *c, struct remoca_server_stats *out,
                                    unsigned max)
{
    pthread_rwlock_rdlock(&c->members_lock);
    unsigned n = c->n;
    for (unsigned i = 0; i < n && i < max; i++) {
        const struct conn *cn = c->conns[i];
        const struct rc_server_counters *st = &cn->st;
        struct remoca_server_stats *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->addr, sizeof o->addr, "%s", cn->addr.canon);
        o->weight = cn->addr.weight;
        o->up = atomic_load(&cn->up);
        o->requests = atomic_load(&st->requests);
        o->keys = atomic_load(&st->keys);
        o->hits = atomic_load(&st->hits);
        o->misses = atomic_load(&st->misses);
        o->puts = atomic_load(&st->puts);
        o->errors = atomic_load(&st->errors);
        o->timeouts = atomic_load(&st->timeouts);
        o->reconnects = atomic_load(&st->reconnects);
        o->p50_us = rc_lat_percentile(st, 500, &o->latency_samples);
        o->p99_us = rc_lat_percentile(st, 990, NULL);
    }
    pthread_rwlock_unlock(&c->members_lock);
    return n;
}

/* ---- set_servers ----------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* One request per connection (KEEP with its own body, or POOL_RESET), all
 * sent, then all waited for (members_lock held exclusively).  A failure needs
 * nothing more here: a registered request that fails has taken its
 * connection out of service until its pool is reset (error replies to
 * invalidations, which POOL_KEEP is, quarantine; timeouts quarantine; a
 * broken connection reconnects and resets), and one refused as DOWN is reset
 * when it comes up. */
struct ctl {
    struct conn *cn;
    uint8_t op;
    uint8_t body[REMOCA_KEEP_MAX_BODY];
    uint32_t len;
    bool sent;
};

static void ctl_run(struct remoca_client *c, struct ctl *ctl, unsigned n)
{
    struct completion comp;
    completion_init(&comp);
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    struct waiter *ws = calloc(n ? n : 1, sizeof *ws);
    if (!ws) { /* no waiters: make sure nothing stale stays usable */
        for (unsigned i = 0; i < n; i++)
            rc_conn_kill(ctl[i].cn, atomic_load(&ctl[i].cn->gen), "out of memory");
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        struct waiter *w = &ws[i];
        w->op = ctl[i].op;
        w->comp = &comp;
        w->result = -1;
        atomic_init(&w->done, false);
        struct frame f = {
            .op = ctl[i].op, .payload = ctl[i].len ? ctl[i].body : NULL, .len = ctl[i].len, .w = w};
        ctl[i].sent = rc_conn_send(ctl[i].cn, &f, 1, &deadline) != CONN_DOWN;
    }
    rc_waiters_wait(c, &comp, ws, n, &deadline);
    for (unsigned i = 0; i < n; i++) {
        if (ctl[i].sent && ws[i].result != 0)
            rc_log(c, REMOCA_LOG_WARN, "server %s: %s not answered; its pool is reset before reuse",
                   ctl[i].cn->addr.canon, remoca_op_name(ctl[i].op));
    }
    free(ws);
}

static struct conn *find_conn(struct remoca_client *c, const char *canon)
{
    for (unsigned j = 0; j < c->n; j++)
        if (!strcmp(c->conns[j]->addr.canon, canon)) return c->conns[j];
    return NULL;
}

int remoca_client_set_servers(struct remoca_client *c, const char *list, char *err, size_t errlen)
{
    struct remoca_addr *addrs = calloc(REMOCA_MAX_SERVERS, sizeof *addrs);
    struct ctl *ctl = calloc(2 * REMOCA_MAX_SERVERS, sizeof *ctl);
    if (!addrs || !ctl) {
        free(addrs);
        free(ctl);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    int n = remoca_addr_parse_list(list, addrs, REMOCA_MAX_SERVERS, err, errlen);
    if (n < 0) {
        free(addrs);
        free(ctl);
        return -1;
    }
    pthread_mutex_lock(&c->set_lock); /* only we change conns[]: read it freely */

    struct conn *next[REMOCA_MAX_SERVERS];
    bool fresh[REMOCA_MAX_SERVERS] = {false};
    bool same = (unsigned)n == c->n;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        next[i] = find_conn(c, addrs[i].canon);
        same = same && next[i] == c->conns[i] && next[i]->addr.weight == addrs[i].weight;
        if (next[i]) continue;
        fresh[i] = true;
        next[i] = calloc(1, sizeof *next[i]);
        if (!next[i] || rc_conn_init(next[i], c, &addrs[i]) < 0) {
            free(next[i]);
            for (unsigned k = 0; k < i; k++)
                if (fresh[k]) {
                    rc_conn_destroy(next[k]);
                    free(next[k]);
                }
            pthread_mutex_unlock(&c->set_lock);
            free(addrs);
            free(ctl);
            set_err(err, errlen, "out of memory");
            return -1;
        }
    }
    if (same) { /* nothing changes: no KEEP, no stall */
        pthread_mutex_unlock(&c->set_lock);
        free(addrs);
        free(ctl);
        return 0;
    }
    struct remoca_placement place;
    remoca_placement_init(&place, addrs, (unsigned)n);

    /* Servers that leave: in the old list, not in the new one. */
    struct conn *gone[REMOCA_MAX_SERVERS];
    unsigned ngone = 0, nstay = 0;
    for (unsigned j = 0; j < c->n; j++) {
        bool stays = false;
        for (unsigned i = 0; i < (unsigned)n; i++) stays = stays || next[i] == c->conns[j];
        if (!stays) gone[ngone++] = c->conns[j];
    }

    pthread_rwlock_wrlock(&c->members_lock);
    c->n = (unsigned)n;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        c->conns[i] = next[i];
        next[i]->addr.weight = addrs[i].weight;
    }
    c->place = place;
    unsigned nctl = 0;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        if (fresh[i]) continue; /* connects later, and is reset then */
        ctl[nctl].cn = next[i];
        ctl[nctl].op = REMOCA_OP_POOL_KEEP;
        ctl[nctl].len =
            (uint32_t)remoca_keep_encode(ctl[nctl].body, sizeof ctl[nctl].body, &place, i);
        nctl++;
        nstay++;
    }
    for (unsigned k = 0; k < ngone; k++)
        ctl[nctl++] = (struct ctl){.cn = gone[k], .op = REMOCA_OP_POOL_RESET};
    ctl_run(c, ctl, nctl);
    pthread_rwlock_unlock(&c->members_lock);

    unsigned nfresh = 0;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        if (!fresh[i]) continue;
        nfresh++;
        if (rc_conn_start(next[i]) < 0)
            rc_log(c, REMOCA_LOG_ERROR, "server %s: cannot start its connection thread",
                   next[i]->addr.canon);
    }
    for (unsigned k = 0; k < ngone; k++) {
        rc_conn_stop(gone[k]);
        rc_conn_destroy(gone[k]);
        free(gone[k]);
    }
    atomic_fetch_add(&c->membership_changes, 1);
    rc_notify_ready(c);
    rc_log(c, REMOCA_LOG_INFO,
           "servers changed: %u in the list (%u kept, %u added, %u removed); pool '%s' kept only "
           "where placed",
           (unsigned)n, nstay, nfresh, ngone, c->pool);
    pthread_mutex_unlock(&c->set_lock);
    free(addrs);
    free(ctl);
    return 0;
}
